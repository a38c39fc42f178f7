/* bench/sync — what the sync module costs next to its floors, measured in the same run.
 *
 *   round trips (two processes, pinned to the first two allowed CPUs when there are two):
 *     raw futex     two shared words, FUTEX_WAIT / FUTEX_WAKE straight through syscall();
 *                   the floor for "wake a sleeping process and get an answer"
 *     shmkit event  two shmkit events, prepare / notify / wait with spin 0 (always sleeps)
 *   uncontended lock + unlock pairs (one process):
 *     pthread mutex default attributes, process-private. glibc (2.34+) skips the atomic
 *                   instructions of a private mutex while the process has one thread, so
 *                   it is measured twice: single-threaded (info only) and after a thread
 *                   was created (the floor: every real user of a shared mutex has peers,
 *                   and a process-shared mutex can never take that shortcut)
 *     shmkit mutex  robust, error-checking, process-shared, in shared memory
 *   contended lock + unlock (two processes, pinned as above, each incrementing a shared
 *   counter under the lock; the counter is checked):
 *     pthread mutex robust, process-shared (glibc's; what shmkit's mutex was up to 0.1)
 *     shmkit mutex  as above
 *
 * The two round-trip kinds run interleaved in blocks so that both see the same vCPU placement
 * drift (docs/design.md, "Measuring"); each reports p50/p99/p99.9/max over per-iteration times.
 * Results are ratios to the floors; timing never fails the run (exit 0 unless something broke).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/common.h"
#include "shmkit.h"

#define BLOCKS 10 /* each kind's iterations come in this many interleaved blocks */
#define MUTEX_REPS 5

/* Each word another process writes gets its own 128-byte slot (adjacent-line prefetch). */
struct shared {
	_Alignas(128) _Atomic uint32_t fa; /* raw futex: parent -> child */
	_Alignas(128) _Atomic uint32_t fb; /* raw futex: child -> parent */
	_Alignas(128) struct shmkit_event e1; /* event: parent -> child */
	_Alignas(128) struct shmkit_event e2; /* event: child -> parent */
	_Alignas(128) _Atomic uint32_t child_ready;
	_Atomic int32_t child_err;
	_Alignas(128) struct shmkit_mutex mutex;
	_Alignas(128) pthread_mutex_t pmutex; /* robust, process-shared: the contended reference */
	_Alignas(128) uint64_t counter;       /* plain, under the lock being measured */
	_Alignas(128) _Atomic uint32_t ready;
	_Atomic uint32_t go;
};

static struct shared *sh;
static uint64_t warmup, per_block;

/* --- raw futex ---------------------------------------------------------------------- */

/* Sleeps until *w differs from `old` (at most 10 s per sleep). Returns 0 or -ETIMEDOUT. */
static int raw_wait_change(_Atomic uint32_t *w, uint32_t old)
{
	static const struct timespec limit = {10, 0};
	/* Acquire: the peer's writes before its store are visible once we see it. */
	while (atomic_load_explicit(w, memory_order_acquire) == old) {
		long r = syscall(SYS_futex, w, FUTEX_WAIT, old, &limit, NULL, 0);
		if (r != 0 && errno == ETIMEDOUT)
			return -ETIMEDOUT;
	}
	return 0;
}

static void raw_signal(_Atomic uint32_t *w, uint32_t v)
{
	/* Release: pairs with the acquire load in raw_wait_change(). */
	atomic_store_explicit(w, v, memory_order_release);
	(void)syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* --- the child: answers every ping ---------------------------------------------------- */

static int child_answer(uint64_t rounds_per_kind_block)
{
	uint32_t va = 0, ve = 0;
	uint64_t n = rounds_per_kind_block;
	/* Same block order as the parent: warm-up of each kind, then BLOCKS x (futex, event). */
	for (int blk = -1; blk < BLOCKS; blk++) {
		uint64_t count = blk < 0 ? warmup : n;
		for (uint64_t i = 0; i < count; i++) {
			if (raw_wait_change(&sh->fa, va) != 0)
				return 1;
			va++;
			raw_signal(&sh->fb, va);
		}
		struct timespec d;
		shmkit_deadline_after(&d, 10ull * 1000000000ull + count * 1000000ull);
		for (uint64_t i = 0; i < count; i++) {
			uint32_t g;
			while ((g = shmkit_event_prepare(&sh->e1)) == ve) {
				int r = shmkit_event_wait(&sh->e1, g, &d, 0);
				if (r != 0 && r != -EINTR)
					return 2;
			}
			ve++;
			(void)shmkit_event_notify(&sh->e2);
		}
	}
	return 0;
}

/* --- the parent: times every round trip ------------------------------------------------- */

static int run_round_trips(uint64_t *t_futex, uint64_t *t_event)
{
	uint32_t vb = 0, ge = 0;
	size_t nf = 0, ne = 0;
	for (int blk = -1; blk < BLOCKS; blk++) {
		uint64_t count = blk < 0 ? warmup : per_block;
		for (uint64_t i = 0; i < count; i++) {
			uint64_t t0 = bench_now_ns();
			raw_signal(&sh->fa, vb + 1);
			if (raw_wait_change(&sh->fb, vb) != 0)
				return -ETIMEDOUT;
			vb++;
			uint64_t t1 = bench_now_ns();
			if (blk >= 0)
				t_futex[nf++] = t1 - t0;
		}
		struct timespec d;
		shmkit_deadline_after(&d, 10ull * 1000000000ull + count * 1000000ull);
		for (uint64_t i = 0; i < count; i++) {
			uint64_t t0 = bench_now_ns();
			(void)shmkit_event_notify(&sh->e1);
			uint32_t g;
			while ((g = shmkit_event_prepare(&sh->e2)) == ge) {
				int r = shmkit_event_wait(&sh->e2, g, &d, 0);
				if (r != 0 && r != -EINTR)
					return r;
			}
			ge++;
			uint64_t t1 = bench_now_ns();
			if (blk >= 0)
				t_event[ne++] = t1 - t0;
		}
	}
	return 0;
}

/* --- mutexes ------------------------------------------------------------------------ */

static double time_pthread_mutex(pthread_mutex_t *m, uint64_t ops)
{
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < ops; i++) {
		pthread_mutex_lock(m);
		pthread_mutex_unlock(m);
	}
	return (double)(bench_now_ns() - t0) / (double)ops;
}

static double time_shmkit_mutex(struct shmkit_mutex *m, uint64_t ops, int *err)
{
	uint64_t t0 = bench_now_ns();
	for (uint64_t i = 0; i < ops; i++) {
		int r1 = shmkit_mutex_lock(m);
		int r2 = shmkit_mutex_unlock(m);
		if (r1 | r2) {
			*err = r1 ? r1 : r2;
			break;
		}
	}
	return (double)(bench_now_ns() - t0) / (double)ops;
}

/* --- contended: two processes --------------------------------------------------------- */

/* One contender: `ops` increments of the shared counter under the lock (kind 0: pthread,
 * 1: shmkit). Returns 0 or a nonzero exit code. */
static int contend(int cpu, int kind, uint64_t ops, int pinned)
{
	if (pinned)
		(void)bench_pin_cpu(cpu);
	atomic_fetch_add(&sh->ready, 1);
	while (!atomic_load_explicit(&sh->go, memory_order_acquire))
		;
	for (uint64_t i = 0; i < ops; i++) {
		int r = kind ? shmkit_mutex_lock(&sh->mutex) : -pthread_mutex_lock(&sh->pmutex);
		if (r != 0)
			return 1;
		sh->counter++;
		r = kind ? shmkit_mutex_unlock(&sh->mutex) : -pthread_mutex_unlock(&sh->pmutex);
		if (r != 0)
			return 2;
	}
	return 0;
}

/* ns per lock + unlock with two processes contending; 0 on failure. */
static double time_contended(int kind, uint64_t ops, int pinned)
{
	sh->counter = 0;
	atomic_store(&sh->ready, 0);
	atomic_store(&sh->go, 0);
	fflush(NULL);
	pid_t p[2];
	for (int i = 0; i < 2; i++) {
		p[i] = fork();
		if (p[i] == 0) {
			(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(contend(i, kind, ops, pinned));
		}
		if (p[i] < 0)
			return 0;
	}
	while (atomic_load(&sh->ready) < 2)
		usleep(100);
	uint64_t t0 = bench_now_ns();
	atomic_store_explicit(&sh->go, 1, memory_order_release);
	int ok = 1;
	for (int i = 0; i < 2; i++) {
		int st;
		if (waitpid(p[i], &st, 0) != p[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			ok = 0;
	}
	double ns = (double)(bench_now_ns() - t0) / (double)(2 * ops);
	return ok && sh->counter == 2 * ops ? ns : 0;
}

static int init_robust_pthread(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int r = pthread_mutexattr_init(&a);
	if (!r)
		r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!r)
		r = pthread_mutex_init(m, &a);
	(void)pthread_mutexattr_destroy(&a);
	return r;
}

static void *idle_thread(void *arg)
{
	return arg;
}

/* Makes the process multi-threaded for good (glibc never goes back to its single-thread
 * shortcuts once a thread was created). Returns 0 or a positive errno. */
static int become_multithreaded(void)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, idle_thread, NULL);
	return r ? r : pthread_join(t, NULL);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* --- output ------------------------------------------------------------------------- */

static void print_rt_row(const char *name, const struct bench_stats *st)
{
	char c[5][32];
	bench_fmt_ns(c[0], sizeof c[0], (double)st->p50);
	bench_fmt_pct(c[1], sizeof c[1], st->n, 99, st->p99);
	bench_fmt_pct(c[2], sizeof c[2], st->n, 99.9, st->p999);
	bench_fmt_ns(c[3], sizeof c[3], (double)st->max);
	bench_fmt_ns(c[4], sizeof c[4], st->mean);
	char n[32];
	snprintf(n, sizeof n, "%zu", st->n);
	const char *cells[] = {name, n, c[0], c[1], c[2], c[3], c[4]};
	bench_md_row(stdout, cells, 7);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	int pr = bench_parse_opts(argc, argv, &o,
				  "\n  --iters N: round trips per kind (mutexes: 100 x N lock/unlock pairs)");
	if (pr != 0)
		return pr > 0 ? 0 : 2;
	uint64_t iters = o.iters ? o.iters : (o.quick ? 2000 : 20000);
	if (iters < BLOCKS)
		iters = BLOCKS;
	per_block = iters / BLOCKS;
	iters = per_block * BLOCKS;
	warmup = per_block / 4 + 10;
	uint64_t mutex_ops = iters * 100;

	sh = bench_shared_alloc(sizeof *sh);
	uint64_t *t_futex = malloc(iters * sizeof *t_futex);
	uint64_t *t_event = malloc(iters * sizeof *t_event);
	int rc = 1;
	if (!sh || !t_futex || !t_event) {
		fprintf(stderr, "bench/sync: out of memory\n");
		goto out;
	}
	shmkit_event_init(&sh->e1);
	shmkit_event_init(&sh->e2);
	int r = shmkit_mutex_init(&sh->mutex);
	if (r != 0) {
		fprintf(stderr, "bench/sync: shmkit_mutex_init: %s\n", shmkit_strerror(r));
		goto out;
	}

	int ncpu = bench_ncpus();
	int pinned = ncpu >= 2;
	char placement[96];
	if (pinned)
		snprintf(placement, sizeof placement, "parent on allowed CPU #0, child on #1");
	else
		snprintf(placement, sizeof placement, "not pinned: only %d CPU allowed", ncpu);

	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench/sync: fork");
		goto out;
	}
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed parent */
		if (pinned && bench_pin_cpu(1) != 0)
			atomic_store(&sh->child_err, 1);
		atomic_store_explicit(&sh->child_ready, 1, memory_order_release);
		_exit(child_answer(per_block));
	}
	if (pinned && (r = bench_pin_cpu(0)) != 0) {
		fprintf(stderr, "bench/sync: pinning failed (%s); running unpinned\n",
			shmkit_strerror(r));
		snprintf(placement, sizeof placement, "not pinned: sched_setaffinity failed");
	}
	while (!atomic_load_explicit(&sh->child_ready, memory_order_acquire))
		usleep(100);

	r = run_round_trips(t_futex, t_event);
	int status = 0;
	if (r != 0) {
		fprintf(stderr, "bench/sync: round trips failed: %s\n", shmkit_strerror(r));
		kill(pid, SIGKILL);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "bench/sync: responder process failed (status %#x)\n", status);
		goto out;
	}
	if (r != 0)
		goto out;
	if (atomic_load(&sh->child_err))
		snprintf(placement, sizeof placement, "child not pinned: sched_setaffinity failed");

	/* Uncontended mutexes, alternating so both see the same conditions; median of reps.
	 * First the private mutex in a single-threaded process (glibc's no-atomics shortcut),
	 * then, multi-threaded, the floor and the shmkit mutex. */
	pthread_mutex_t plain = PTHREAD_MUTEX_INITIALIZER;
	double t1[MUTEX_REPS], tp[MUTEX_REPS], ts[MUTEX_REPS];
	int merr = 0;
	(void)time_pthread_mutex(&plain, mutex_ops / 10); /* warm-up */
	for (int i = 0; i < MUTEX_REPS; i++)
		t1[i] = time_pthread_mutex(&plain, mutex_ops / MUTEX_REPS);
	if ((r = become_multithreaded()) != 0) {
		fprintf(stderr, "bench/sync: pthread_create: %s\n", strerror(r));
		goto out;
	}
	(void)time_pthread_mutex(&plain, mutex_ops / 10);
	(void)time_shmkit_mutex(&sh->mutex, mutex_ops / 10, &merr);
	for (int i = 0; i < MUTEX_REPS && !merr; i++) {
		tp[i] = time_pthread_mutex(&plain, mutex_ops / MUTEX_REPS);
		ts[i] = time_shmkit_mutex(&sh->mutex, mutex_ops / MUTEX_REPS, &merr);
	}
	if (merr) {
		fprintf(stderr, "bench/sync: shmkit mutex: %s\n", shmkit_strerror(merr));
		goto out;
	}
	qsort(t1, MUTEX_REPS, sizeof t1[0], cmp_double);
	qsort(tp, MUTEX_REPS, sizeof tp[0], cmp_double);
	qsort(ts, MUTEX_REPS, sizeof ts[0], cmp_double);
	double m1 = t1[MUTEX_REPS / 2], mp = tp[MUTEX_REPS / 2], ms = ts[MUTEX_REPS / 2];

	/* Contended, two processes, alternating kinds; median of 3. */
	double cp[3], cs[3];
	uint64_t cops = mutex_ops / 20;
	if ((r = init_robust_pthread(&sh->pmutex)) != 0) {
		fprintf(stderr, "bench/sync: robust pthread mutex: %s\n", strerror(r));
		goto out;
	}
	for (int i = 0; i < 3; i++) {
		cp[i] = time_contended(0, cops, pinned);
		cs[i] = time_contended(1, cops, pinned);
		if (cp[i] == 0 || cs[i] == 0) {
			fprintf(stderr, "bench/sync: contended run failed (or lost increments)\n");
			goto out;
		}
	}
	qsort(cp, 3, sizeof cp[0], cmp_double);
	qsort(cs, 3, sizeof cs[0], cmp_double);

	struct bench_stats sf, se;
	bench_stats_compute(t_futex, iters, &sf);
	bench_stats_compute(t_event, iters, &se);

	printf("## shmkit sync (%s; %llu round trips per kind in %d interleaved blocks)\n\n",
	       placement, (unsigned long long)iters, BLOCKS);
	static const char *const rt_cols[] = {"round trip", "n", "p50", "p99", "p99.9", "max", "mean"};
	static const int rt_right[] = {0, 1, 1, 1, 1, 1, 1};
	bench_md_header(stdout, rt_cols, rt_right, 7);
	print_rt_row("raw futex (floor)", &sf);
	print_rt_row("shmkit event, spin 0", &se);

	printf("\n");
	static const char *const mx_cols[] = {"lock + unlock, uncontended", "ns/op (median of 5)"};
	static const int mx_right[] = {0, 1};
	bench_md_header(stdout, mx_cols, mx_right, 2);
	char a[32], b[32], c1[32];
	snprintf(c1, sizeof c1, "%.1f", m1);
	snprintf(a, sizeof a, "%.1f", mp);
	snprintf(b, sizeof b, "%.1f", ms);
	const char *row0[] = {"pthread mutex, default, single-threaded process (no atomics)", c1};
	const char *row1[] = {"pthread mutex, default, multi-threaded process (floor)", a};
	const char *row2[] = {"shmkit robust shared mutex", b};
	bench_md_row(stdout, row0, 2);
	bench_md_row(stdout, row1, 2);
	bench_md_row(stdout, row2, 2);

	printf("\n");
	static const char *const cx_cols[] = {"lock + unlock, 2 processes contending",
					      "ns/op (median of 3)"};
	bench_md_header(stdout, cx_cols, mx_right, 2);
	char d1[32], d2[32];
	snprintf(d1, sizeof d1, "%.1f", cp[1]);
	snprintf(d2, sizeof d2, "%.1f", cs[1]);
	const char *crow1[] = {"pthread mutex, robust, process-shared", d1};
	const char *crow2[] = {"shmkit robust shared mutex", d2};
	bench_md_row(stdout, crow1, 2);
	bench_md_row(stdout, crow2, 2);

	printf("\n");
	static const char *const ra_cols[] = {"ratio", "value", "goal"};
	static const int ra_right[] = {0, 1, 1};
	bench_md_header(stdout, ra_cols, ra_right, 3);
	char v1[32], v2[32], v3[32], v4[32];
	snprintf(v1, sizeof v1, "%.2fx", sf.p50 ? (double)se.p50 / (double)sf.p50 : 0.0);
	snprintf(v2, sizeof v2, "%.2fx", sf.p99 ? (double)se.p99 / (double)sf.p99 : 0.0);
	snprintf(v3, sizeof v3, "%.2fx", mp > 0 ? ms / mp : 0.0);
	snprintf(v4, sizeof v4, "%.2fx", m1 > 0 ? ms / m1 : 0.0);
	const char *q1[] = {"event / futex, p50", v1, "<= 1.1x"};
	const char *q2[] = {"event / futex, p99", v2, "(info)"};
	const char *q3[] = {"shmkit mutex / pthread mutex (multi-threaded)", v3, "<= 2x"};
	const char *q4[] = {"shmkit mutex / pthread mutex (single-threaded)", v4, "(info)"};
	bench_md_row(stdout, q1, 3);
	bench_md_row(stdout, q2, 3);
	bench_md_row(stdout, q3, 3);
	bench_md_row(stdout, q4, 3);

	(void)shmkit_mutex_destroy(&sh->mutex);
	rc = 0;
out:
	free(t_futex);
	free(t_event);
	bench_shared_free(sh, sizeof *sh);
	return rc;
}
