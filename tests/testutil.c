/* shmkit tests — helpers shared by every Check suite. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The pid of the process running the suites: every name a test makes starts with
 * "t<run_pid>.", so the runner can sweep what a failed test left behind (Check ends a
 * failed test with _exit(), which skips atexit cleanups). */
static pid_t run_pid;

const char *t_name(char *buf, size_t cap, const char *tag)
{
	static unsigned counter;
	snprintf(buf, cap, "t%d.%d.%s.%u", (int)(run_pid ? run_pid : getpid()), (int)getpid(), tag,
		 counter++);
	return buf;
}

/* Removes every segment named by this run; returns how many there were. */
static int t_sweep(void)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, "t%d.", (int)run_pid);
	struct shmkit_segment_info *l;
	int n = shmkit_segment_list(&l);
	int swept = 0;
	for (int i = 0; i < n; i++) {
		if (strncmp(l[i].name, prefix, strlen(prefix)) != 0)
			continue;
		struct shmkit_segment_opts o = {.backend = l[i].backend};
		if (l[i].backend == SHMKIT_BACKEND_SYSV)
			o.sysv_key = l[i].sysv_key;
		if (shmkit_segment_remove(l[i].backend == SHMKIT_BACKEND_SYSV ? NULL : l[i].name,
					  &o) > 0) {
			fprintf(stderr, "left behind: %s (%s)\n", l[i].name,
				shmkit_backend_name(l[i].backend));
			swept++;
		}
	}
	if (n >= 0)
		shmkit_segment_list_free(l);
	return swept;
}

#define T_TRACK_MAX 64
static struct {
	char name[SHMKIT_NAME_MAX + 1];
	uint32_t backend;
} tracked[T_TRACK_MAX];
static int ntracked;
static pid_t tracker_pid;

static void t_cleanup(void)
{
	if (getpid() != tracker_pid)
		return;
	for (int i = 0; i < ntracked; i++) {
		struct shmkit_segment_opts o = {.backend = tracked[i].backend};
		(void)shmkit_segment_remove(tracked[i].name, &o);
	}
	ntracked = 0;
}

void t_track(const char *name, uint32_t backend)
{
	if (tracker_pid != getpid()) {
		/* First registration in this (test) process. */
		tracker_pid = getpid();
		ntracked = 0;
		atexit(t_cleanup);
	}
	if (ntracked < T_TRACK_MAX) {
		snprintf(tracked[ntracked].name, sizeof tracked[ntracked].name, "%s", name);
		tracked[ntracked].backend = backend;
		ntracked++;
	}
}

pid_t t_fork(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int t_wait(pid_t pid, int timeout_ms)
{
	int status;
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int t_stress(void)
{
	const char *s = getenv("SHMKIT_STRESS");
	return s && *s && strcmp(s, "0") != 0;
}

uint64_t t_seed(void)
{
	static uint64_t seed;
	if (seed == 0) {
		const char *s = getenv("SHMKIT_SEED");
		if (s && *s)
			seed = strtoull(s, NULL, 0);
		else
			seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
		if (seed == 0)
			seed = 1;
	}
	return seed;
}

uint64_t t_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

int t_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

int t_main(Suite *(*const *makers)(void), int count)
{
	run_pid = getpid();
	printf("seed: SHMKIT_SEED=%llu%s\n", (unsigned long long)t_seed(),
	       t_stress() ? " (stress tier)" : "");
	/* Children inherit the seed so a failure replays with the same numbers. */
	char buf[32];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)t_seed());
	setenv("SHMKIT_SEED", buf, 1);
	int failed = 0;
	for (int i = 0; i < count; i++)
		failed += t_run(makers[i]());
	int swept = t_sweep();
	if (swept && !failed) {
		/* Every test passed, yet segments remain: the code under test leaks. */
		fprintf(stderr, "%d segment(s) leaked by passing tests\n", swept);
		failed = 1;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
