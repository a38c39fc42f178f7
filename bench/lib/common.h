/* shmkit benchmarks — helpers shared by every benchmark and by `shmkit bench`.
 *
 * Generic on purpose: timing, CPU pinning, shared scratch memory, percentiles, argument
 * parsing and a Markdown table printer. No main(), no shmkit-specific knowledge.
 */
#ifndef SHMKIT_BENCH_COMMON_H
#define SHMKIT_BENCH_COMMON_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Number of CPUs this process may run on (>= 1). */
int bench_ncpus(void);

/* Pins the calling thread (the whole process when single-threaded) to the `index`-th CPU
 * of its current affinity mask, so "CPU 0" and "CPU 1" mean the first two allowed CPUs
 * even inside a restricted cpuset. Returns 0, or a negative errno (-EINVAL when there is
 * no such CPU); on failure the affinity is unchanged. */
int bench_pin_cpu(int index);

/* Maps `size` bytes of zeroed memory shared with children forked afterwards
 * (MAP_SHARED|MAP_ANONYMOUS). Returns NULL on failure. Free with bench_shared_free(). */
void *bench_shared_alloc(size_t size);
void bench_shared_free(void *p, size_t size);

/* Percentile summary of a sample. */
struct bench_stats {
	size_t n;
	uint64_t min, p50, p99, p999, max;
	double mean;
};

/* Sorts samples[0..n) ascending in place and fills *st (all zero when n is 0). */
void bench_stats_compute(uint64_t *samples, size_t n, struct bench_stats *st);

/* Whether n samples support the p-th percentile: at least one sample beyond it (p99 needs
 * 100 samples, p99.9 1 000). With fewer, "p99.9" is just the maximum again, and printing
 * it as a percentile would claim a tail that was never measured. */
bool bench_pct_ok(size_t n, double p);

/* Formats the percentile `v` of n samples like bench_fmt_ns(), or "–" when n samples do
 * not support the p-th percentile. Returns buf. */
char *bench_fmt_pct(char *buf, size_t cap, size_t n, double p, uint64_t v);

/* The p-th percentile (0 <= p <= 100, nearest rank) of an ascending array; 0 when n is 0. */
uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p);

/* Command-line options every benchmark accepts. */
struct bench_opts {
	int quick;      /* --quick: fewer iterations, for smoke runs */
	uint64_t iters; /* --iters N: 0 when not given (the benchmark picks its default) */
};

/* Parses --quick, --iters N (also --iters=N) and --help. Returns 0; 1 when --help was
 * printed (the caller should exit 0); -EINVAL on a bad argument (a message goes to
 * stderr). `usage_extra` is appended to the usage line (may be NULL). */
int bench_parse_opts(int argc, char **argv, struct bench_opts *o, const char *usage_extra);

/* Markdown tables: bench_md_header() prints the header row and the separator; right-aligned
 * columns get a "---:" separator when align_right[i] is nonzero (align_right may be NULL). */
void bench_md_header(FILE *f, const char *const *cols, const int *align_right, int ncols);
void bench_md_row(FILE *f, const char *const *cells, int ncols);

/* Formats nanoseconds compactly into buf ("850 ns", "12.3 us", "4.56 ms"); returns buf. */
const char *bench_fmt_ns(char *buf, size_t cap, double ns);

#endif
