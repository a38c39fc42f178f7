/* shmkit benchmarks — the many-party channels: publish/subscribe fan-out and the work queue.
 *
 * Reusable measuring code (no main): bench/pubsub.c is the standalone driver; `shmkit
 * bench --pubsub` calls bench_multi_run() (cli/bench.c), the way --table calls the table
 * benchmark. Everything is measured in one run, every process pinned to its own CPU
 * when there are enough (else the table says "oversubscribed" and the numbers mostly
 * measure the scheduler), and reported as ratios (docs/design.md, "Measuring"):
 *
 *   pub/sub   one publisher, N = 1, 2, 4, 8 subscribers, block policy (lossless): the
 *             rate at which the publisher's messages reach every subscriber, and its ratio
 *             to N = 1 (the target: N = 8 at >= 0.5x N = 1 where there are 9 CPUs). Each
 *             subscriber reads every message in place and checks its sequence number.
 *   queue     P producers x C consumers, P = C = 1, 2, 4, each message to exactly one
 *             consumer (counted): single send/recv, and batches of 16 (send_many /
 *             recv_many); next to the reference design measured in the same run — a plain
 *             sequence-per-slot bounded MPMC queue (one CAS on a shared position per
 *             message, spinning) with the same slot size.
 */
#ifndef SHMKIT_BENCH_LIB_PUBSUB_H
#define SHMKIT_BENCH_LIB_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct bench_multi_opts {
	int quick;        /* fewer messages, for smoke tests */
	uint64_t msgs;    /* messages per configuration (0: 2 M; quick: 200 k) */
	size_t size;      /* message bytes (0: 64; 8..4096) */
	int no_pubsub;    /* skip the pub/sub rows */
	int no_queue;     /* skip the queue rows */
	unsigned max_subs; /* largest N (0: 8) */
	unsigned max_pc;   /* largest P = C (0: 4) */
};

/* Runs the configurations and prints Markdown tables to `out`. Returns 0, or a negative
 * errno when a configuration failed (lost, duplicated or corrupt messages included). Never
 * a pass/fail on timing. */
int bench_multi_run(const struct bench_multi_opts *o, FILE *out);

/* Command-line entry: --quick, --iters N (messages per configuration), --size B,
 * --pubsub-only, --queue-only, --help; prints to stdout; returns an exit status (0 ok,
 * 1 runtime error, 2 usage error). */
int bench_multi_main(int argc, char **argv);

#endif
