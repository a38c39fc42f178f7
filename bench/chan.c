/* bench/chan — the stream channel against its floors, all measured in one run.
 *
 * Two processes pinned to the first two allowed CPUs (bench/lib/ipc.c drives them; the
 * mechanisms are in bench/lib/mech.c):
 *
 *   round trip (ping-pong over two channels, A→B then B→A), 64 B and 4 KiB:
 *     floor         a raw cache-line ping-pong: one word per direction, spinning
 *     futex         the same words with FUTEX_WAIT / FUTEX_WAKE on every message, the
 *                   payload in a shared slot (written and read in place, like shmkit's)
 *     ring          a minimal raw SPSC ring (same record layout as shmkit), spinning
 *     ring-inband   the same ring publishing in band like shmkit (the consumer polls the
 *                   next header): that protocol with nothing else on the critical path
 *     shmkit-spin   loan / memset payload / commit, peek / check / release; adaptive spin
 *     shmkit-block  the same with SHMKIT_CHAN_NO_SPIN (every wait sleeps on the futex)
 *   one-way throughput, 64 B, 4 KiB, 64 KiB, 1 MiB:
 *     ring, shmkit-spin             zero copy: the producer writes the payload in place,
 *                                   one publish per message
 *     ring-batch, shmkit-spin-batch the same, publishing every 16 messages (the ring skips
 *                                   its tail/head store, shmkit uses SHMKIT_CHAN_MORE)
 *     ring-copy, shmkit-spin-copy   copying in and out: the ring with shmkit_copy(), shmkit
 *                                   with shmkit_chan_send_wait/recv_wait (which use it too)
 *
 * The mechanisms run interleaved in blocks, so each sees the same drift of the vCPU placement
 * (docs/design.md, "Measuring"). The result is a table of ratios against the goals of the
 * stream issue; timing never fails the run (exit 0 unless something broke).
 *
 *   usage: bench/chan [--quick] [--duration SEC]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/common.h"
#include "lib/ipc.h"
#include "lib/report.h"

static double p50(const struct ipc_result *r, int n, const char *name, size_t size)
{
	const struct ipc_result *x = ipc_result_find(r, n, name, size);
	return x && !x->err && x->have_rtt ? (double)x->rtt.p50 : 0;
}

static double rate(const struct ipc_result *r, int n, const char *name, size_t size)
{
	const struct ipc_result *x = ipc_result_find(r, n, name, size);
	return x && !x->err && x->have_tput ? x->msgs_per_s : 0;
}

/* One row of the goals table: ratio = num / den, compared with the goal. */
static void goal_row(const char *what, double num, double den, int at_most, double goal)
{
	char v[32], g[32], met[16];
	if (num > 0 && den > 0) {
		double q = num / den;
		snprintf(v, sizeof v, "%.2f", q);
		if (goal > 0)
			snprintf(met, sizeof met, "%s", (at_most ? q <= goal : q >= goal) ? "yes" : "**no**");
		else
			snprintf(met, sizeof met, "(info)");
	} else {
		snprintf(v, sizeof v, "–");
		snprintf(met, sizeof met, "–");
	}
	if (goal > 0)
		snprintf(g, sizeof g, "%s %.1f", at_most ? "≤" : "≥", goal);
	else
		snprintf(g, sizeof g, "–");
	const char *cells[] = {what, v, g, met};
	bench_md_row(stdout, cells, 4);
}

int main(int argc, char **argv)
{
	double budget = 40;
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;
			budget = strtod(argv[++i], &end);
			if (*end || !(budget >= 1 && budget <= 3600)) {
				fprintf(stderr, "%s: bad --duration '%s' (1..3600 s)\n", argv[0], argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: %s [--quick] [--duration SEC]\n", argv[0]);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
			return 2;
		}
	}
	if (quick)
		budget = 4;
	static const char *const names[] = {"futex",        "ring",         "ring-inband",
					    "ring-batch",   "ring-copy",    "shmkit-spin",
					    "shmkit-block", "shmkit-spin-batch", "shmkit-spin-copy"};
	enum { NMECH = sizeof names / sizeof names[0] };
	const struct ipc_mech *mechs[NMECH];
	for (int i = 0; i < NMECH; i++)
		mechs[i] = ipc_find(NULL, names[i]);
	static const size_t sizes[] = {64, 4096, 65536, 1048576};
	struct ipc_plan plan = {
		.mechs = mechs,
		.nmech = NMECH,
		.sizes = sizes,
		.nsize = 4,
		.lat_max_size = 4096,
		.budget_s = budget,
		.blocks = quick ? 3 : 5,
	};
	ipc_default_cpus(plan.cpu);
	if (plan.cpu[1] < 0)
		plan.cpu[0] = -1;
	double load[1] = {0};
	(void)getloadavg(load, 1);
	struct ipc_result *res;
	int n = ipc_run(&plan, &res);
	if (n < 0) {
		fprintf(stderr, "bench/chan: %s\n", strerror(-n));
		return 1;
	}
	int failed = 0;
	for (int i = 0; i < n; i++)
		if (res[i].err) {
			fprintf(stderr, "bench/chan: %s at %zu B failed: %s\n", res[i].mech->name,
				res[i].size, res[i].errmsg);
			failed = 1;
		}
	printf("## shmkit stream channel (load average %.2f at the start)\n\n", load[0]);
	report_placement(stdout, res, n, plan.cpu);
	printf("\n");
	report_markdown(stdout, res, n);

	printf("\n");
	static const char *const cols[] = {"goal (same run)", "ratio", "goal", "met"};
	static const int right[] = {0, 1, 1, 0};
	bench_md_header(stdout, cols, right, 4);
	goal_row("spin round trip p50, 64 B: shmkit-spin / floor", p50(res, n, "shmkit-spin", 64),
		 p50(res, n, "floor", 64), 1, 1.2);
	/* Shown, not judged: the floor moves one word, a 4 KiB message 64 lines; the raw ring
	 * row below is the comparison that means something at this size. */
	goal_row("spin round trip p50, 4 KiB: shmkit-spin / floor",
		 p50(res, n, "shmkit-spin", 4096), p50(res, n, "floor", 4096), 1, 0);
	goal_row("spin round trip p50, 64 B: raw ring / floor", p50(res, n, "ring", 64),
		 p50(res, n, "floor", 64), 1, 0);
	goal_row("spin round trip p50, 64 B: raw in-band ring / floor", p50(res, n, "ring-inband", 64),
		 p50(res, n, "floor", 64), 1, 0);
	goal_row("spin round trip p50, 64 B: shmkit-spin / raw ring", p50(res, n, "shmkit-spin", 64),
		 p50(res, n, "ring", 64), 1, 0);
	goal_row("spin round trip p50, 64 B: shmkit-spin / raw in-band ring",
		 p50(res, n, "shmkit-spin", 64), p50(res, n, "ring-inband", 64), 1, 0);
	goal_row("spin round trip p50, 4 KiB: shmkit-spin / raw ring",
		 p50(res, n, "shmkit-spin", 4096), p50(res, n, "ring", 4096), 1, 0);
	goal_row("blocking round trip p50, 64 B: shmkit-block / futex",
		 p50(res, n, "shmkit-block", 64), p50(res, n, "futex", 64), 1, 1.1);
	goal_row("blocking round trip p50, 4 KiB: shmkit-block / futex",
		 p50(res, n, "shmkit-block", 4096), p50(res, n, "futex", 4096), 1, 1.1);
	goal_row("64 B msg/s, zero copy, publish each: shmkit-spin / ring",
		 rate(res, n, "shmkit-spin", 64), rate(res, n, "ring", 64), 0, 0.8);
	goal_row("64 B msg/s, zero copy, publish every 16: shmkit-spin-batch / ring-batch",
		 rate(res, n, "shmkit-spin-batch", 64), rate(res, n, "ring-batch", 64), 0, 0.8);
	goal_row("64 B msg/s, copy: shmkit-spin-copy / ring-copy",
		 rate(res, n, "shmkit-spin-copy", 64), rate(res, n, "ring-copy", 64), 0, 0);
	goal_row("4 KiB msg/s, zero copy: shmkit-spin / ring", rate(res, n, "shmkit-spin", 4096),
		 rate(res, n, "ring", 4096), 0, 0);
	goal_row("64 KiB msg/s, zero copy: shmkit-spin / ring", rate(res, n, "shmkit-spin", 65536),
		 rate(res, n, "ring", 65536), 0, 0);
	goal_row("1 MiB msg/s, copy: shmkit-spin-copy / ring-copy (same copy)",
		 rate(res, n, "shmkit-spin-copy", 1048576), rate(res, n, "ring-copy", 1048576), 0, 0.9);
	goal_row("1 MiB msg/s, zero copy: shmkit-spin / ring", rate(res, n, "shmkit-spin", 1048576),
		 rate(res, n, "ring", 1048576), 0, 0);
	free(res);
	return failed;
}
