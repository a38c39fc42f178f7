/* shmkit benchmarks — the shared table against its ceiling and against Redis.
 *
 * Reusable measuring code (no main): bench/table.c is the standalone driver, and `shmkit
 * bench --table` can call bench_table_run() as well. Everything is measured in one run and
 * reported as ratios (docs/design.md, "Measuring"):
 *
 *   ceiling   the same table used by one process that shares it with nobody: get and put
 *   shared    get from 1 or 2 reader processes with 0 or 1 writer process putting the same
 *             keys; put from a writer process alone
 *   Redis     GET and SET from one client over loopback TCP, one command per round trip
 *             and pipelined, against a redis-server this code starts on a free port and
 *             stops (also on error; the server dies with this process otherwise)
 *
 * The Redis client is a minimal RESP implementation over a blocking socket (two system calls
 * per round trip, like any synchronous client), so neither the driver nor the CLI links
 * hiredis. Without redis-server the Redis rows are reported as skipped.
 */
#ifndef SHMKIT_BENCH_LIB_TABLE_H
#define SHMKIT_BENCH_LIB_TABLE_H

#include <stdio.h>

struct bench_table_opts {
	int quick;           /* shorter runs, for smoke tests */
	double seconds;      /* measuring time per scenario (0: 1.5, quick: 0.2) */
	unsigned keys;       /* distinct keys (0: 10000) */
	unsigned key_len;    /* bytes per key (0: 16; at least 8) */
	unsigned value_len;  /* bytes per value (0: 64; at least 8) */
	int no_redis;        /* skip the Redis comparison */
	const char *redis;   /* redis-server to run (NULL: search PATH, then /usr/bin) */
};

/* Runs every scenario and prints a Markdown table and the headline ratios to `out`.
 * Returns 0, or a negative errno when the shmkit part could not run (an unavailable Redis
 * is reported, not an error). Never a pass/fail on timing. */
int bench_table_run(const struct bench_table_opts *o, FILE *out);

/* Command-line entry: parses --quick, --iters N (distinct keys), --seconds S, --no-redis
 * and --help, runs bench_table_run() to stdout and returns an exit status (0 ok, 1 runtime
 * error, 2 usage error). argv[0] is the name to show in messages: bench/table's main() and
 * `shmkit bench --table` (cli/bench.c) both call it. */
int bench_table_main(int argc, char **argv);

#endif
