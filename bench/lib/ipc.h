/* shmkit benchmarks — IPC mechanisms behind one small interface, and the two-process driver
 * that measures them (ping-pong round trips and one-way streams) in one interleaved run.
 *
 * Shared by bench/chan.c (`make bench`), the CLI (`shmkit bench`, cli/bench.c) and the
 * peer libraries (bench/peers/: iceoryx, Boost.Interprocess), so every number they print
 * comes from the same drivers and can be divided by a floor measured in the same run.
 * The mechanisms and their interface are in mech.h: this header is the driver.
 */
#ifndef SHMKIT_BENCH_IPC_H
#define SHMKIT_BENCH_IPC_H

#include "common.h"
#include "mech.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- the driver ------------------------------------------------------------------------- */

/* One result: one mechanism at one size. */
struct ipc_result {
	const struct ipc_mech *mech;
	size_t size;
	int err;          /* 0, or the negative errno that stopped this mechanism */
	char errmsg[192]; /* what failed */
	int have_rtt;
	struct bench_stats rtt; /* round-trip times, ns */
	int have_tput;
	double msgs_per_s, bytes_per_s;
	uint64_t tput_msgs;     /* messages streamed in the measured blocks */
	uint64_t floor_p50;     /* the floor's round-trip p50 in the same size's schedule, ns */
};

struct ipc_plan {
	const struct ipc_mech *const *mechs; /* what to measure; the floor is always added */
	int nmech;
	const size_t *sizes;
	int nsize;
	size_t lat_max_size;   /* ping-pong only for sizes <= this (0 = every size) */
	int cpu[2];            /* CPU numbers for side A and side B; -1 = do not pin */
	double budget_s;       /* measuring time for the whole plan, seconds (approximate) */
	int blocks;            /* interleaved blocks per mechanism and phase (>= 1) */
	/* Optional progress report: called before each mechanism's block. */
	void (*progress)(void *arg, const char *phase, size_t size, const char *mech, int done,
			 int total);
	void *progress_arg;
};

/* Runs the plan. `res` receives nres = plan's (mechanisms incl. floor) × sizes results,
 * ordered by size, then mechanism (the floor first). Returns the number of results (> 0),
 * or a negative errno when the run as a whole failed (-EINTR: interrupted by
 * SIGINT/SIGTERM); a mechanism that failed alone is reported in its results' err. The
 * caller frees *resp with free(). Every child is reaped and every object removed before
 * it returns. */
int ipc_run(const struct ipc_plan *plan, struct ipc_result **resp);

/* The result for (mechanism name, size) in res, or NULL. */
const struct ipc_result *ipc_result_find(const struct ipc_result *res, int n, const char *name,
					 size_t size);

/* Pins the calling process to CPU number `cpu` (not an index). 0 or a negative errno. */
int ipc_pin(int cpu);

/* The first two CPUs of this process's affinity mask in cpu[0], cpu[1] (-1 when fewer). */
void ipc_default_cpus(int cpu[2]);

#ifdef __cplusplus
}
#endif

#endif
