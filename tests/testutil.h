/* shmkit tests — helpers shared by every Check suite. */
#ifndef SHMKIT_TESTUTIL_H
#define SHMKIT_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <sys/types.h>

#include "shmkit.h"

/* Check's ck_assert_* macros write a checkpoint to a pipe on every call (a system call),
 * which makes them far too slow inside loops over millions of items. T_CHECK costs nothing
 * when the condition holds and fails the test with a message when it does not. */
#define T_CHECK(cond, ...)                                    \
	do {                                                  \
		if (__builtin_expect(!(cond), 0))             \
			ck_abort_msg("T_CHECK(" #cond ") failed: " __VA_ARGS__); \
	} while (0)

/* Writes a segment name unique to this run, process and call into buf:
 * "t<run pid>.<pid>.<tag>.<n>". t_main() removes whatever such names remain after the
 * suites, and fails the run if passing tests left any. */
const char *t_name(char *buf, size_t cap, const char *tag);

/* Remembers a named segment so it is removed when the registering process exits, even
 * after a failed assertion (Check exits the test process through exit()). Forked
 * children must leave with _exit() so they do not run this cleanup. */
void t_track(const char *name, uint32_t backend);

/* Forks; the child runs fn(arg) and leaves with _exit(its return value). Returns the pid. */
pid_t t_fork(int (*fn)(void *), void *arg);

/* Waits up to timeout_ms for `pid`. Returns its exit status (0..255), 128+signal when it
 * was killed by a signal, or -1 when it is still running at the deadline (then it is
 * killed with SIGKILL and reaped). */
int t_wait(pid_t pid, int timeout_ms);

/* 1 when the stress tier runs (SHMKIT_STRESS=1 in the environment), else 0. */
int t_stress(void);

/* A deterministic seed for this run: SHMKIT_SEED from the environment, else the time. The
 * suite prints it so a failure can be replayed. */
uint64_t t_seed(void);

/* xorshift64* pseudo-random numbers. */
uint64_t t_rand(uint64_t *state);

/* Runs a suite with Check's fork mode (each test in its own process, with its timeout).
 * Returns the number of failed tests. */
int t_run(Suite *s);

/* Runs several suites, then sweeps this run's leftover segments; returns the exit status
 * for main(). */
int t_main(Suite *(*const *makers)(void), int count);

#endif
