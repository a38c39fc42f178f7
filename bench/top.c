/* shmkit benchmark — what `shmkit top` costs the channels it watches.
 *
 * One named stream channel, a producer (this process) and a consumer (a child) moving
 * 64-byte messages as fast as they can, for rounds of a few seconds; every other round a
 * `shmkit top` refreshes in the background (--interval 0.1, ten times its default rate, so
 * any cost shows). Prints msg/s of each round and the median with and without top. Never
 * pass/fail: the numbers depend on the machine and on what else runs on it.
 *
 *   build/bench/top [SECONDS_PER_ROUND] [ROUNDS]    (the CLI: $SHMKIT_CLI or build/shmkit)
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

#include "lib/common.h"

#define MSG 64

static int consume(const char *name)
{
	struct shmkit_chan *ch;
	if (shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &ch) != 0)
		return 1;
	for (;;) {
		const void *buf;
		size_t len;
		int err = shmkit_chan_peek_wait(ch, &buf, &len, NULL);
		if (err)
			break;
		shmkit_chan_release(ch, 0);
	}
	shmkit_chan_close(ch);
	return 0;
}

static double round_rate(double secs)
{
	char name[64];
	snprintf(name, sizeof name, "bench-top.%d", (int)getpid());
	struct shmkit_chan *ch;
	if (shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, NULL, &ch) != 0)
		return -1;
	fflush(stdout); /* the child must not inherit (and later flush) buffered output */
	pid_t pid = fork();
	if (pid == 0)
		_exit(consume(name));
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(secs * 1e9), n = 0;
	for (;;) {
		for (int i = 0; i < 1024; i++, n++) {
			void *buf;
			if (shmkit_chan_loan_wait(ch, MSG, &buf, NULL) != 0)
				goto out;
			memset(buf, (int)n, MSG);
			shmkit_chan_commit(ch, MSG, 0);
		}
		if (bench_now_ns() >= end)
			break;
	}
out:;
	double rate = (double)n * 1e9 / (double)(bench_now_ns() - start);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
	waitpid(pid, NULL, 0);
	return rate;
}

static pid_t start_top(const char *cli)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout))
			_exit(127);
		execl(cli, cli, "top", "--plain", "--interval", "0.1", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	int rounds = argc > 2 ? atoi(argv[2]) : 6;
	const char *cli = getenv("SHMKIT_CLI") ? getenv("SHMKIT_CLI") : "build/shmkit";
	if (secs <= 0 || rounds < 2 || rounds > 100) {
		fprintf(stderr, "usage: %s [SECONDS_PER_ROUND] [ROUNDS (2..100)]\n", argv[0]);
		return 2;
	}
	if (access(cli, X_OK) != 0) {
		printf("bench/top: %s not found (set SHMKIT_CLI); skipped\n", cli);
		return 0;
	}
	double off[100], on[100];
	int noff = 0, non = 0;
	printf("stream, 64 B messages, %.1f s rounds; top --interval 0.1 in every other round\n", secs);
	for (int r = 0; r < rounds; r++) {
		bool with = r % 2 == 1;
		pid_t top = with ? start_top(cli) : -1;
		if (with)
			usleep(200000); /* let it start */
		double rate = round_rate(secs);
		if (with) {
			kill(top, SIGTERM);
			waitpid(top, NULL, 0);
			on[non++] = rate;
		} else {
			off[noff++] = rate;
		}
		printf("round %d: %-8s %.2f M msg/s\n", r + 1, with ? "with top" : "alone", rate / 1e6);
	}
	qsort(off, (size_t)noff, sizeof *off, cmp_double);
	qsort(on, (size_t)non, sizeof *on, cmp_double);
	double m_off = off[noff / 2], m_on = on[non / 2];
	printf("median alone %.2f M msg/s, with top %.2f M msg/s: %+.1f %%\n", m_off / 1e6, m_on / 1e6,
	       (m_on - m_off) / m_off * 100);
	return 0;
}
