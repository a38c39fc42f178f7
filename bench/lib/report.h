/* shmkit benchmarks — printing ipc_run() results: the Markdown table, JSON rows and gnuplot
 * charts that `shmkit bench`, bench/chan and bench/peers share. */
#ifndef SHMKIT_BENCH_REPORT_H
#define SHMKIT_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "ipc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The mechanism every "× shmkit" column divides by. */
#define REPORT_REF "shmkit-spin"

/* "64 B", "4 KiB", "1 MiB", "1.5 MiB". */
const char *report_fmt_size(char *buf, size_t cap, size_t size);

/* One line naming the CPUs and the floor round trip p50 of each size: the placement the run
 * got, so two runs can be compared. */
void report_placement(FILE *f, const struct ipc_result *res, int n, const int cpu[2]);

/* The Markdown table: one row per result (mechanism × size), with round-trip percentiles,
 * "× floor" (p50 / the floor's p50 at that size, same run), "× shmkit" (p50 / shmkit-spin's
 * p50), msg/s, GB/s and "msg/s × shmkit". Missing values print as "–"; failed rows say why; rows with nothing measured are left out. */
void report_markdown(FILE *f, const struct ipc_result *res, int n);

/* A JSON array, one object per row: mechanism, mode, name, size, rtt_p50_ns, rtt_p99_ns,
 * rtt_p999_ns, rtt_max_ns, msgs_per_s, bytes_per_s, ratio_to_floor, ratio_to_shmkit,
 * floor_rtt_p50_ns, error (null unless the mechanism failed). Values not measured are null. */
void report_json(FILE *f, const struct ipc_result *res, int n);

/* Makes sure gnuplot can be run: when it is missing, tries to install the Debian package
 * gnuplot-nox (through tools/deps.sh next to the binary, or apt-get as root). Returns 0, or
 * -ENOENT after describing the problem in msg. */
int report_need_gnuplot(char *msg, size_t cap);

/* Draws two charts into one file (gnuplot, svg or png by `png`): round-trip percentiles per
 * mechanism at the smallest size (log scale), and throughput against message size. `title`
 * heads the figure. Returns 0 or a negative errno with a message in msg. */
int report_chart(const char *path, int png, const char *title, const struct ipc_result *res,
		 int n, char *msg, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
