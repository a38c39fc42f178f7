/* Tests for src/sync.c: futex, event, semaphore, robust mutex and seqlock, across real
 * processes (fork) sharing real memory (an anonymous MAP_SHARED mapping inherited by the
 * children), with real SIGKILLs.
 *
 * Children never use ck_assert (it would report from the wrong process); they return a
 * distinct nonzero code per failed check and the parent asserts that the code is 0.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shmkit.h"
#include "testutil.h"

/* The mutex is shmkit's own (atomics and a futex), so ThreadSanitizer has no opinion on
 * an unlock by a non-holder: -EPERM is checked in every build. */
#define CHECK_EPERM_UNLOCK(m) ck_assert_int_eq(shmkit_mutex_unlock(m), -EPERM)

#define WAIT_MS 20000 /* how long the parent waits for a child before calling it hung */
#define NS_PER_MS 1000000ull

/* --- helpers ------------------------------------------------------------------------- */

/* The scheduler state letter of `pid` ('R', 'S', ...), or 0 when unreadable. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	return (p && p[1] == ' ') ? p[2] : 0;
}

/* Polls (1 ms steps, up to `ms`) until *flag reaches `value`. Returns 1 on success. */
static int wait_flag(_Atomic uint32_t *flag, uint32_t value, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		if (atomic_load_explicit(flag, memory_order_acquire) >= value)
			return 1;
		t_sleep_ms(1);
	}
	return atomic_load_explicit(flag, memory_order_acquire) >= value;
}

/* Polls until the event has `n` registered sleepers and `pid` is blocked in the kernel
 * ('S'). With only one blocking call in the child (its futex wait), both together mean the
 * child is queued on the futex. Returns 1 on success. */
static int wait_sleeping(const struct shmkit_event *ev, uint32_t n, pid_t pid, unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		if (shmkit_event_sleepers(ev) == n && proc_state(pid) == 'S')
			return 1;
		t_sleep_ms(1);
	}
	return 0;
}

static uint64_t scale(uint64_t normal, uint64_t stress)
{
	return t_stress() ? stress : normal;
}

/* The 32-bit words of an event/semaphore/seqlock, for white-box checks and hostile writes. */
static _Atomic uint32_t *word(void *obj, int i)
{
	return (_Atomic uint32_t *)obj + i;
}

static uint32_t peek(void *obj, int i)
{
	return atomic_load(word(obj, i));
}

/* --- time and raw futex --------------------------------------------------------------- */

START_TEST(test_time_deadline_after)
{
	uint64_t t0 = shmkit_now_ns();
	const uint64_t timeouts[] = {0, 1, 999999999ull, 1000000000ull, 1500000000ull,
				     3999999999ull, 86400ull * 1000000000ull, UINT64_MAX};
	for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
		struct timespec d;
		ck_assert_ptr_eq(shmkit_deadline_after(&d, timeouts[i]), &d);
		ck_assert_int_ge(d.tv_nsec, 0);
		ck_assert_int_lt(d.tv_nsec, 1000000000L);
		if (timeouts[i] == UINT64_MAX) {
			/* About 585 years: fits a 64-bit time_t, seconds carried from the ns. */
			ck_assert_int_ge(d.tv_sec, (time_t)(t0 / 1000000000ull) + 18446744073);
			continue;
		}
		uint64_t dn = (uint64_t)d.tv_sec * 1000000000ull + (uint64_t)d.tv_nsec;
		ck_assert_uint_ge(dn, t0 + timeouts[i]);
		ck_assert_uint_le(dn, shmkit_now_ns() + timeouts[i]);
	}
	ck_assert_uint_ge(shmkit_now_ns(), t0);
}
END_TEST

struct futex_shared {
	uint32_t word;
	_Atomic uint32_t ready;
	int32_t child_rc;
};
static struct futex_shared *fsh;

static int child_futex_sleep(void *arg)
{
	(void)arg;
	struct timespec d;
	atomic_store_explicit(&fsh->ready, 1, memory_order_release);
	int r = shmkit_futex_wait(&fsh->word, 0, shmkit_deadline_after(&d, 10000 * NS_PER_MS));
	fsh->child_rc = r;
	return r == 0 ? 0 : 1;
}

START_TEST(test_futex_raw)
{
	fsh = t_shm_alloc(sizeof *fsh);
	struct timespec d;

	/* Value differs: returns at once with 0. */
	fsh->word = 5;
	ck_assert_int_eq(shmkit_futex_wait(&fsh->word, 4, NULL), 0);

	/* Value matches, nobody wakes: times out no earlier than the deadline. */
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_futex_wait(&fsh->word, 5, shmkit_deadline_after(&d, 30 * NS_PER_MS)),
			 -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 30 * NS_PER_MS);

	/* A deadline in the past times out at once; a malformed one is -EINVAL. */
	struct timespec past = {0, 0};
	ck_assert_int_eq(shmkit_futex_wait(&fsh->word, 5, &past), -ETIMEDOUT);
	struct timespec bad = {d.tv_sec, 2000000000L};
	ck_assert_int_eq(shmkit_futex_wait(&fsh->word, 5, &bad), -EINVAL);

	/* Nobody to wake; count 0 wakes nobody (the kernel would wake one). */
	ck_assert_int_eq(shmkit_futex_wake(&fsh->word, 1), 0);
	ck_assert_int_eq(shmkit_futex_wake(&fsh->word, 0), 0);

	/* Across processes: the child sleeps on the shared word, the parent wakes it. */
	fsh->word = 0;
	pid_t pid = t_fork(child_futex_sleep, NULL);
	ck_assert(wait_flag(&fsh->ready, 1, 5000));
	int woken = 0;
	for (int i = 0; i < 5000 && woken == 0; i++) {
		if (proc_state(pid) == 'S')
			woken = shmkit_futex_wake(&fsh->word, 1);
		else
			t_sleep_ms(1);
	}
	ck_assert_int_eq(woken, 1);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
	ck_assert_int_eq(fsh->child_rc, 0);
}
END_TEST

/* --- event ---------------------------------------------------------------------------- */

struct ev_shared {
	struct shmkit_event ev, ev2;
	_Atomic uint32_t ready;
	uint64_t payload; /* plain: published by notify, read after the wait */
	_Atomic uint64_t notify_ns, return_ns;
	int32_t rc;
	uint32_t spin;
	uint64_t rounds;
	uint64_t counter; /* plain: handed back and forth by the ping-pong */
};
static struct ev_shared *esh;

START_TEST(test_event_zero_and_notify_nobody)
{
	esh = t_shm_alloc(sizeof *esh);
	/* Zero-filled memory is an initialized event. */
	ck_assert_uint_eq(shmkit_event_prepare(&esh->ev), 0);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
	for (uint32_t i = 1; i <= 10; i++) {
		ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0); /* nobody sleeps */
		ck_assert_uint_eq(shmkit_event_prepare(&esh->ev), i);
	}
	/* A stale generation returns at once, spinning or not, without registering. */
	ck_assert_int_eq(shmkit_event_wait(&esh->ev, 3, NULL, 0), 0);
	ck_assert_int_eq(shmkit_event_wait(&esh->ev, 3, NULL, 1000), 0);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
	/* The generation wraps. */
	atomic_store(word(&esh->ev, 0), UINT32_MAX);
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0);
	ck_assert_uint_eq(shmkit_event_prepare(&esh->ev), 0);
	shmkit_event_init(&esh->ev);
	ck_assert_uint_eq(shmkit_event_prepare(&esh->ev), 0);
}
END_TEST

START_TEST(test_event_timeout)
{
	esh = t_shm_alloc(sizeof *esh);
	shmkit_event_init(&esh->ev);
	const unsigned spins[] = {0, 1000};
	for (int i = 0; i < 2; i++) {
		struct timespec d;
		uint32_t g = shmkit_event_prepare(&esh->ev);
		uint64_t t0 = shmkit_now_ns();
		ck_assert_int_eq(shmkit_event_wait(&esh->ev, g, shmkit_deadline_after(&d, 50 * NS_PER_MS),
						   spins[i]),
				 -ETIMEDOUT);
		uint64_t el = shmkit_now_ns() - t0;
		ck_assert_uint_ge(el, 50 * NS_PER_MS);
		ck_assert_uint_lt(el, 10000 * NS_PER_MS);
		ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
	}
	/* A deadline already in the past times out without sleeping. */
	struct timespec past = {0, 0};
	ck_assert_int_eq(shmkit_event_wait(&esh->ev, shmkit_event_prepare(&esh->ev), &past, 0),
			 -ETIMEDOUT);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
}
END_TEST

/* Child: waits for one notify, then checks the payload the notifier wrote before it. */
static int child_event_waiter(void *arg)
{
	(void)arg;
	struct timespec d;
	uint32_t g = shmkit_event_prepare(&esh->ev);
	atomic_store_explicit(&esh->ready, 1, memory_order_release);
	int r = shmkit_event_wait(&esh->ev, g, shmkit_deadline_after(&d, 10000 * NS_PER_MS),
				  esh->spin);
	atomic_store(&esh->return_ns, shmkit_now_ns());
	esh->rc = r;
	if (r != 0)
		return 1;
	if (shmkit_event_prepare(&esh->ev) == g)
		return 2;
	if (esh->payload != 0xfeedface12345678ull)
		return 3; /* the notify did not publish the payload */
	return 0;
}

static void event_wake_case(uint32_t spin)
{
	esh = t_shm_alloc(sizeof *esh);
	shmkit_event_init(&esh->ev);
	esh->spin = spin;
	pid_t pid = t_fork(child_event_waiter, NULL);
	/* The child registers as a sleeper only after its spin budget ran out, and 'S' says it
	 * is blocked in its futex wait: from here on, only our notify can wake it. */
	ck_assert(wait_sleeping(&esh->ev, 1, pid, 5000));
	t_sleep_ms(10);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 1);
	esh->payload = 0xfeedface12345678ull;
	atomic_store(&esh->notify_ns, shmkit_now_ns());
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 1); /* exactly the one sleeper */
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
	ck_assert_int_eq(esh->rc, 0);
	/* It slept until the notify, not just past it. */
	ck_assert_uint_ge(atomic_load(&esh->return_ns), atomic_load(&esh->notify_ns));
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
	/* Nobody sleeps any more: the next notify skips the system call and wakes nobody. */
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0);
}

START_TEST(test_event_wake_across_processes)
{
	event_wake_case(0);
}
END_TEST

START_TEST(test_event_spin_then_sleep)
{
	/* 20000 polling rounds (a few ms at most), then the sleep, then the wake-up. */
	event_wake_case(20000);
}
END_TEST

/* Ping-pong over two events: each side waits for the other's notify and advances a plain
 * counter handed over by the notify/wait pair (so a missing release/acquire would show as
 * a wrong count). A lost wake-up shows as a timeout. Side `parity` 0 moves first; in round
 * i it needs i notifies on its own event, side 1 needs i + 1. */
static int event_pingpong_side(struct shmkit_event *mine, struct shmkit_event *theirs,
			       uint64_t parity, unsigned spin)
{
	for (uint64_t i = 0; i < esh->rounds; i++) {
		uint32_t need = (uint32_t)(i + parity), g;
		while ((g = shmkit_event_prepare(mine)) < need) {
			struct timespec d;
			int r = shmkit_event_wait(mine, g, shmkit_deadline_after(&d, 10000 * NS_PER_MS),
						  spin);
			if (r != 0)
				return 10;
		}
		if (g != need)
			return 12; /* a notify out of turn */
		if (esh->counter != 2 * i + parity)
			return 11;
		esh->counter++;
		(void)shmkit_event_notify(theirs);
	}
	return 0;
}

static int child_event_pingpong(void *arg)
{
	return event_pingpong_side(&esh->ev2, &esh->ev, 1, (unsigned)(uintptr_t)arg);
}

START_TEST(test_event_pingpong)
{
	esh = t_shm_alloc(sizeof *esh);
	const unsigned spins[] = {0, 200};
	for (int k = 0; k < 2; k++) {
		shmkit_event_init(&esh->ev);
		shmkit_event_init(&esh->ev2);
		esh->counter = 0;
		esh->rounds = scale(3000, 100000);
		pid_t pid = t_fork(child_event_pingpong, (void *)(uintptr_t)spins[k]);
		ck_assert_int_eq(event_pingpong_side(&esh->ev, &esh->ev2, 0, spins[k]), 0);
		ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
		ck_assert_uint_eq(esh->counter, 2 * esh->rounds);
	}
}
END_TEST

/* A peer that zeroes the sleeper count while someone sleeps makes the notify skip the
 * system call: the sleeper then wakes late (at its deadline), sees the new generation and
 * still reports success. Garbage in the count only costs system calls. */
static int child_event_short_wait(void *arg)
{
	(void)arg;
	struct timespec d;
	uint32_t g = shmkit_event_prepare(&esh->ev);
	/* Long enough for the parent to see us asleep even on a loaded machine. */
	int r = shmkit_event_wait(&esh->ev, g, shmkit_deadline_after(&d, 1000 * NS_PER_MS), 0);
	esh->rc = r;
	return r == 0 ? 0 : 1;
}

START_TEST(test_event_hostile_sleepers)
{
	esh = t_shm_alloc(sizeof *esh);
	shmkit_event_init(&esh->ev);

	/* Garbage count, nobody really sleeping: notify calls the kernel, wakes nobody. */
	atomic_store(word(&esh->ev, 1), 0xdeadbeefu);
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0);
	struct timespec d;
	ck_assert_int_eq(shmkit_event_wait(&esh->ev, shmkit_event_prepare(&esh->ev),
					   shmkit_deadline_after(&d, 5 * NS_PER_MS), 0),
			 -ETIMEDOUT);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0xdeadbeefu); /* balanced */

	/* Count zeroed under a real sleeper: the sleeper's decrement wraps, nothing breaks. */
	shmkit_event_init(&esh->ev);
	pid_t pid = t_fork(child_event_short_wait, NULL);
	ck_assert(wait_sleeping(&esh->ev, 1, pid, 5000));
	atomic_store(word(&esh->ev, 1), 0);
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0); /* skipped: count says nobody */
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
	ck_assert_int_eq(esh->rc, 0); /* late, but the generation did move */
	ck_assert_uint_lt(shmkit_now_ns() - t0, 10000 * NS_PER_MS);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), UINT32_MAX);
	/* Every later notify now makes a (useless) system call and still works. */
	ck_assert_int_eq(shmkit_event_notify(&esh->ev), 0);
}
END_TEST

/* A signal (handler installed without SA_RESTART) interrupts a sleeping wait: -EINTR. */
static void on_usr1(int sig)
{
	(void)sig;
}

static struct shmkit_sem *eintr_sem;

static int child_eintr(void *arg)
{
	(void)arg;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		return 1;
	struct timespec d;
	shmkit_deadline_after(&d, 10000 * NS_PER_MS);
	atomic_store_explicit(&esh->ready, 1, memory_order_release);
	if (shmkit_event_wait(&esh->ev, shmkit_event_prepare(&esh->ev), &d, 0) != -EINTR)
		return 2;
	atomic_store_explicit(&esh->ready, 2, memory_order_release);
	if (shmkit_sem_timedwait(eintr_sem, &d) != -EINTR)
		return 3;
	return 0;
}

START_TEST(test_wait_eintr)
{
	esh = t_shm_alloc(sizeof *esh + sizeof(struct shmkit_sem));
	eintr_sem = (struct shmkit_sem *)(void *)(esh + 1);
	pid_t pid = t_fork(child_eintr, NULL);
	ck_assert(wait_sleeping(&esh->ev, 1, pid, 5000));
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	ck_assert(wait_flag(&esh->ready, 2, 5000));
	int asleep = 0;
	for (int i = 0; i < 5000 && !asleep; i++) {
		asleep = peek(eintr_sem, 1) == 1 && proc_state(pid) == 'S';
		if (!asleep)
			t_sleep_ms(1);
	}
	ck_assert(asleep);
	ck_assert_int_eq(kill(pid, SIGUSR1), 0);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
	ck_assert_uint_eq(shmkit_event_sleepers(&esh->ev), 0);
	ck_assert_uint_eq(peek(eintr_sem, 1), 0);
}
END_TEST

/* --- semaphore ------------------------------------------------------------------------ */

#define PC_SLOTS 8
struct sem_shared {
	struct shmkit_sem a, b;
	struct shmkit_sem free_slots, full_slots;
	struct shmkit_mutex lock;
	uint64_t counter; /* plain: handed over by post/wait */
	uint64_t rounds;
	uint64_t per_producer;
	uint64_t head, tail; /* plain, under `lock` */
	struct {
		uint64_t v, check;
	} slot[PC_SLOTS];
	uint64_t consumed_sum[2], consumed_n[2];
};
static struct sem_shared *ssh;

#define CHECK_MUL 0x9e3779b97f4a7c15ull

START_TEST(test_sem_basic)
{
	ssh = t_shm_alloc(sizeof *ssh);
	/* Zero-filled memory is a semaphore with value 0. */
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), -EAGAIN);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, (uint32_t)INT32_MAX + 1), -EINVAL);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, UINT32_MAX), -EINVAL);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, 2), 0);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 2);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(shmkit_sem_post(&ssh->a), 0);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 5);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_wait(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), -EAGAIN);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 0);
	/* A positive value is taken even when the deadline has passed. */
	struct timespec past = {0, 0};
	ck_assert_int_eq(shmkit_sem_post(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_timedwait(&ssh->a, &past), 0);
	ck_assert_int_eq(shmkit_sem_timedwait(&ssh->a, &past), -ETIMEDOUT);
	ck_assert_uint_eq(peek(&ssh->a, 1), 0); /* no sleeper left counted */
}
END_TEST

START_TEST(test_sem_timedwait_timeout)
{
	ssh = t_shm_alloc(sizeof *ssh);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, 0), 0);
	struct timespec d;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_sem_timedwait(&ssh->a, shmkit_deadline_after(&d, 50 * NS_PER_MS)),
			 -ETIMEDOUT);
	uint64_t el = shmkit_now_ns() - t0;
	ck_assert_uint_ge(el, 50 * NS_PER_MS);
	ck_assert_uint_lt(el, 10000 * NS_PER_MS);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 0);
	ck_assert_uint_eq(peek(&ssh->a, 1), 0);
}
END_TEST

START_TEST(test_sem_overflow_and_corrupt)
{
	ssh = t_shm_alloc(sizeof *ssh);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, INT32_MAX), 0);
	ck_assert_int_eq(shmkit_sem_post(&ssh->a), -EOVERFLOW);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), INT32_MAX);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_post(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_post(&ssh->a), -EOVERFLOW);

	/* A value no post can produce (a peer's scribble): posts refuse to grow it (it must
	 * never wrap to 0), waits still take from it, without UB (UBSan build). */
	const uint32_t corrupt[] = {(uint32_t)INT32_MAX + 1, 0xfffffff0u, UINT32_MAX};
	for (int i = 0; i < 3; i++) {
		atomic_store(word(&ssh->a, 0), corrupt[i]);
		ck_assert_int_eq(shmkit_sem_post(&ssh->a), -EOVERFLOW);
		ck_assert_uint_eq(shmkit_sem_value(&ssh->a), corrupt[i]);
		ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), 0);
		ck_assert_int_eq(shmkit_sem_wait(&ssh->a), 0);
		ck_assert_uint_eq(shmkit_sem_value(&ssh->a), corrupt[i] - 2);
	}
	/* A garbage sleeper count only costs posts a system call. */
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, 0), 0);
	atomic_store(word(&ssh->a, 1), 0x80000000u);
	ck_assert_int_eq(shmkit_sem_post(&ssh->a), 0);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), 0);
	ck_assert_uint_eq(peek(&ssh->a, 1), 0x80000000u);
}
END_TEST

static int child_sem_pong(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; i < ssh->rounds; i++) {
		if (shmkit_sem_wait(&ssh->a) != 0)
			return 1;
		if (ssh->counter != 2 * i + 1)
			return 2;
		ssh->counter++;
		if (shmkit_sem_post(&ssh->b) != 0)
			return 3;
	}
	return 0;
}

START_TEST(test_sem_pingpong)
{
	ssh = t_shm_alloc(sizeof *ssh);
	ck_assert_int_eq(shmkit_sem_init(&ssh->a, 0), 0);
	ck_assert_int_eq(shmkit_sem_init(&ssh->b, 0), 0);
	ssh->rounds = scale(10000, 300000);
	pid_t pid = t_fork(child_sem_pong, NULL);
	for (uint64_t i = 0; i < ssh->rounds; i++) {
		ck_assert_uint_eq(ssh->counter, 2 * i);
		ssh->counter++;
		ck_assert_int_eq(shmkit_sem_post(&ssh->a), 0);
		struct timespec d;
		ck_assert_int_eq(shmkit_sem_timedwait(&ssh->b, shmkit_deadline_after(&d, 10000 * NS_PER_MS)),
				 0);
		ck_assert_uint_eq(ssh->counter, 2 * i + 2);
	}
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->a), 0);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->b), 0);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->a), -EAGAIN);
	ck_assert_int_eq(shmkit_sem_trywait(&ssh->b), -EAGAIN);
}
END_TEST

/* Bounded buffer: `free_slots` counts empty slots, `full_slots` filled ones, the mutex
 * guards head/tail. Items carry a check word; consumers zero slots they took, so a slot
 * read twice or read before it was written shows up. */
static int child_producer(void *arg)
{
	uint64_t p = (uint64_t)(uintptr_t)arg;
	for (uint64_t i = 1; i <= ssh->per_producer; i++) {
		struct timespec d;
		if (shmkit_sem_timedwait(&ssh->free_slots, shmkit_deadline_after(&d, 10000 * NS_PER_MS)))
			return 1;
		if (shmkit_mutex_lock(&ssh->lock) != 0)
			return 2;
		uint64_t v = (p << 32) | i;
		uint64_t at = ssh->head++ % PC_SLOTS;
		if (ssh->slot[at].v != 0)
			return 3; /* overwriting an unconsumed item */
		ssh->slot[at].v = v;
		ssh->slot[at].check = v * CHECK_MUL;
		if (shmkit_mutex_unlock(&ssh->lock) != 0)
			return 4;
		if (shmkit_sem_post(&ssh->full_slots) != 0)
			return 5;
		if (i % 64 == 0)
			sched_yield();
	}
	return 0;
}

static int child_consumer(void *arg)
{
	uint64_t c = (uint64_t)(uintptr_t)arg;
	uint64_t sum = 0, n = 0;
	for (uint64_t i = 0; i < ssh->per_producer; i++) {
		struct timespec d;
		if (shmkit_sem_timedwait(&ssh->full_slots, shmkit_deadline_after(&d, 10000 * NS_PER_MS)))
			return 1;
		if (shmkit_mutex_lock(&ssh->lock) != 0)
			return 2;
		uint64_t at = ssh->tail++ % PC_SLOTS;
		uint64_t v = ssh->slot[at].v, check = ssh->slot[at].check;
		ssh->slot[at].v = 0;
		ssh->slot[at].check = 0;
		if (shmkit_mutex_unlock(&ssh->lock) != 0)
			return 3;
		if (v == 0 || check != v * CHECK_MUL)
			return 4;
		sum += v;
		n++;
		if (shmkit_sem_post(&ssh->free_slots) != 0)
			return 5;
	}
	ssh->consumed_sum[c] = sum;
	ssh->consumed_n[c] = n;
	return 0;
}

START_TEST(test_sem_producers_consumers)
{
	ssh = t_shm_alloc(sizeof *ssh);
	ck_assert_int_eq(shmkit_sem_init(&ssh->free_slots, PC_SLOTS), 0);
	ck_assert_int_eq(shmkit_sem_init(&ssh->full_slots, 0), 0);
	ck_assert_int_eq(shmkit_mutex_init(&ssh->lock), 0);
	uint64_t n = scale(20000, 500000);
	ssh->per_producer = n;
	/* Consumers first, so they start out asleep. */
	pid_t pids[4];
	pids[0] = t_fork(child_consumer, (void *)0);
	pids[1] = t_fork(child_consumer, (void *)1);
	pids[2] = t_fork(child_producer, (void *)1);
	pids[3] = t_fork(child_producer, (void *)2);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t_wait(pids[i], WAIT_MS), 0);
	/* Sum over both producers of (p << 32 | i), i = 1..n. */
	uint64_t expect = ((1ull << 32) + (2ull << 32)) * n + n * (n + 1);
	ck_assert_uint_eq(ssh->consumed_n[0] + ssh->consumed_n[1], 2 * n);
	ck_assert_uint_eq(ssh->consumed_sum[0] + ssh->consumed_sum[1], expect);
	ck_assert_uint_eq(ssh->head, 2 * n);
	ck_assert_uint_eq(ssh->tail, 2 * n);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->free_slots), PC_SLOTS);
	ck_assert_uint_eq(shmkit_sem_value(&ssh->full_slots), 0);
}
END_TEST

/* --- robust mutex --------------------------------------------------------------------- */

struct mx_shared {
	struct shmkit_mutex m;
	struct shmkit_sem go;
	_Atomic uint32_t locked;
	uint32_t state; /* plain, under the mutex: 1 while "being modified" */
	uint64_t counter; /* plain, under the mutex */
	_Atomic uint32_t inside;
	_Atomic uint32_t overlap;
	uint64_t per_proc;
};
static struct mx_shared *msh;

START_TEST(test_mutex_errors_single)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	CHECK_EPERM_UNLOCK(&msh->m); /* not held */
	ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), -EINVAL); /* not needed */
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -EDEADLK);
	struct timespec d;
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 10 * NS_PER_MS)),
			 -EDEADLK);
	/* glibc reports a robust error-checking trylock by the owner as a deadlock too. */
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -EDEADLK);
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), -EBUSY);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	CHECK_EPERM_UNLOCK(&msh->m);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, NULL), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), 0);
}
END_TEST

/* Child: takes the lock, says so, then waits for `go` and unlocks (or never does, when
 * the parent kills it). */
static int child_mutex_holder(void *arg)
{
	int die = (int)(uintptr_t)arg;
	if (shmkit_mutex_lock(&msh->m) != 0)
		return 1;
	msh->state = 1; /* "half-modified" protected state */
	atomic_store_explicit(&msh->locked, 1, memory_order_release);
	if (die == 2) {
		/* Die holding the lock while the parent is blocked on it. */
		t_sleep_ms(100);
		kill(getpid(), SIGKILL);
	}
	if (shmkit_sem_wait(&msh->go) != 0)
		return 2;
	msh->state = 0;
	return shmkit_mutex_unlock(&msh->m) == 0 ? 0 : 3;
}

/* A child takes the lock and is killed (kill -9) holding it. */
static void kill_holder(void)
{
	pid_t pid = t_fork(child_mutex_holder, (void *)1);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	ck_assert_int_eq(kill(pid, SIGKILL), 0);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 128 + SIGKILL);
}

/* Waits (up to 10 s) for a lock whose holder died with the protected state half-modified,
 * repairs the state, declares it consistent and unlocks. */
static void inherit_and_repair(void)
{
	struct timespec d;
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 10000 * NS_PER_MS)),
			 -EOWNERDEAD);
	ck_assert_uint_eq(msh->state, 1);
	msh->state = 0;
	ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
}

START_TEST(test_mutex_contended_errors)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	pid_t pid = t_fork(child_mutex_holder, (void *)0);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -EBUSY);
	struct timespec d;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 50 * NS_PER_MS)),
			 -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 50 * NS_PER_MS);
	struct timespec bad = {.tv_sec = d.tv_sec, .tv_nsec = 1000000000L};
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, &bad), -EINVAL); /* has to wait */
	CHECK_EPERM_UNLOCK(&msh->m); /* someone else's lock */
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), -EBUSY);
	ck_assert_int_eq(shmkit_sem_post(&msh->go), 0);
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 10000 * NS_PER_MS)),
			 0);
	ck_assert_uint_eq(msh->state, 0); /* the holder finished its update */
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
}
END_TEST

START_TEST(test_mutex_owner_killed)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	kill_holder();

	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -EOWNERDEAD); /* and we hold it */
	ck_assert_uint_eq(msh->state, 1);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -EDEADLK);
	msh->state = 0; /* repair */
	ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	/* Back to normal. */
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);

	/* Destroying a mutex whose owner died is allowed (nobody can hold it any more). */
	atomic_store(&msh->locked, 0);
	kill_holder();
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), 0);
}
END_TEST

START_TEST(test_mutex_owner_dies_while_waited_for)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	pid_t pid = t_fork(child_mutex_holder, (void *)2);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	/* Blocks until the holder kills itself, then inherits the lock. */
	inherit_and_repair();
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 128 + SIGKILL);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
}
END_TEST

static int child_mutex_expect_notrecoverable(void *arg)
{
	(void)arg;
	struct timespec d;
	if (shmkit_mutex_trylock(&msh->m) != -ENOTRECOVERABLE)
		return 1;
	if (shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 2000 * NS_PER_MS)) !=
	    -ENOTRECOVERABLE)
		return 2;
	if (shmkit_mutex_lock(&msh->m) != -ENOTRECOVERABLE)
		return 3;
	return 0;
}

START_TEST(test_mutex_not_recoverable)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	kill_holder();
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -EOWNERDEAD);
	/* Unlock without declaring the state consistent: the mutex is now unusable. */
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -ENOTRECOVERABLE);
	/* A failed trylock must not leave the word naming us (glibc's did): the calls after
	 * it still say ENOTRECOVERABLE (not EDEADLK), in this process... */
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -ENOTRECOVERABLE);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -ENOTRECOVERABLE);
	struct timespec d;
	ck_assert_int_eq(shmkit_mutex_timedlock(&msh->m, shmkit_deadline_after(&d, 10 * NS_PER_MS)),
			 -ENOTRECOVERABLE);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -ENOTRECOVERABLE);
	CHECK_EPERM_UNLOCK(&msh->m);
	/* ... and in another one (instead of a timeout or a hang). */
	pid_t other = t_fork(child_mutex_expect_notrecoverable, NULL);
	ck_assert_int_eq(t_wait(other, WAIT_MS), 0);
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), 0);
	/* Only re-initialization (with nobody using it) brings it back. */
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
}
END_TEST

static int child_mutex_increment(void *arg)
{
	uint64_t seed = t_seed() ^ (uint64_t)(uintptr_t)arg;
	for (uint64_t i = 0; i < msh->per_proc; i++) {
		if (shmkit_mutex_lock(&msh->m) != 0)
			return 1;
		if (atomic_fetch_add(&msh->inside, 1) != 0)
			atomic_store(&msh->overlap, 1);
		/* A wide read-modify-write window on a plain counter: without exclusion,
		 * increments get lost. */
		uint64_t c = msh->counter;
		if (t_rand(&seed) % 16 == 0)
			sched_yield();
		msh->counter = c + 1;
		atomic_fetch_sub(&msh->inside, 1);
		if (shmkit_mutex_unlock(&msh->m) != 0)
			return 2;
	}
	return 0;
}

START_TEST(test_mutex_mutual_exclusion)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	msh->per_proc = scale(20000, 500000);
	pid_t pids[4];
	for (int i = 0; i < 4; i++)
		pids[i] = t_fork(child_mutex_increment, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t_wait(pids[i], WAIT_MS), 0);
	ck_assert_uint_eq(atomic_load(&msh->overlap), 0);
	ck_assert_uint_eq(msh->counter, 4 * msh->per_proc);
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), 0);
}
END_TEST

/* White-box view of the mutex (the byte table at the top of src/sync.c): the owner word at
 * offset 0, the sleeper count at 8. */
#define MX_INCONS (1ull << 62)
#define MX_NOTREC UINT64_MAX

static _Atomic uint64_t *mx_owner(struct shmkit_mutex *m)
{
	return (_Atomic uint64_t *)(void *)m;
}

/* The owner word a thread `tid` writes: tid << 32 | its start time (low 32 bits). */
static uint64_t mx_word_of(pid_t tid)
{
	return (uint64_t)(uint32_t)tid << 32 | (shmkit_pid_start_ticks(tid) & 0xffffffffu);
}

/* Child: waits for the lock (no deadline) and reports what it got. */
static int child_mutex_waiter(void *arg)
{
	(void)arg;
	atomic_fetch_add(&msh->inside, 1); /* "about to wait" */
	int r = shmkit_mutex_lock(&msh->m);
	if (r != -EOWNERDEAD)
		return 10 + (r < 0 ? -r : r) % 100;
	if (msh->state != 1)
		return 2;
	msh->state = 0;
	if (shmkit_mutex_consistent(&msh->m) != 0)
		return 3;
	return shmkit_mutex_unlock(&msh->m) == 0 ? 0 : 4;
}

/* The holder is killed by the parent while another process sleeps in lock() with no
 * deadline: the sleeper sees the death at the end of its slice and takes the lock. */
START_TEST(test_mutex_killed_while_sleeper_waits)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	pid_t holder = t_fork(child_mutex_holder, (void *)1);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	pid_t waiter = t_fork(child_mutex_waiter, NULL);
	ck_assert(wait_flag(&msh->inside, 1, 5000));
	/* Asleep on the futex (best effort: the test is correct either way). */
	for (int i = 0; i < 2000 && proc_state(waiter) != 'S'; i++)
		t_sleep_ms(1);
	ck_assert_int_eq(kill(holder, SIGKILL), 0);
	ck_assert_int_eq(t_wait(holder, WAIT_MS), 128 + SIGKILL);
	ck_assert_int_eq(t_wait(waiter, WAIT_MS), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_uint_eq(msh->state, 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
}
END_TEST

/* A holder killed but not reaped is a zombie: kill(pid, 0) still succeeds, so only the
 * /proc check (state Z) can tell. lock() must still get the lock, the holder's pid still
 * taken. */
START_TEST(test_mutex_zombie_holder)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	pid_t holder = t_fork(child_mutex_holder, (void *)1);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	ck_assert_int_eq(kill(holder, SIGKILL), 0);
	for (int i = 0; i < 5000 && proc_state(holder) != 'Z'; i++)
		t_sleep_ms(1);
	ck_assert_int_eq(proc_state(holder), 'Z');
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -EBUSY); /* the cheap check's limit */
	inherit_and_repair();
	ck_assert_int_eq(proc_state(holder), 'Z'); /* still not reaped */
	ck_assert_int_eq(t_wait(holder, WAIT_MS), 128 + SIGKILL);
}
END_TEST

/* A thread that takes the lock and exits without unlocking. */
static void *thread_lock_and_exit(void *arg)
{
	(void)arg;
	if (shmkit_mutex_lock(&msh->m) != 0)
		return (void *)1;
	msh->state = 1;
	return NULL; /* exits holding it */
}

/* Child: a second thread takes the lock and exits; the process lives on until told. */
static int child_thread_exits_holding(void *arg)
{
	(void)arg;
	pthread_t th;
	void *ret;
	if (pthread_create(&th, NULL, thread_lock_and_exit, NULL) != 0 ||
	    pthread_join(th, &ret) != 0 || ret != NULL)
		return 1;
	atomic_store_explicit(&msh->locked, 1, memory_order_release);
	return shmkit_sem_wait(&msh->go) == 0 ? 0 : 2;
}

START_TEST(test_mutex_thread_exits_holding)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	/* In this process: the thread is joined (and gone) before we lock. */
	pthread_t th;
	void *ret;
	ck_assert_int_eq(pthread_create(&th, NULL, thread_lock_and_exit, NULL), 0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_ptr_null(ret);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -EOWNERDEAD);
	msh->state = 0;
	ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);

	/* In another process that is still alive. */
	pid_t pid = t_fork(child_thread_exits_holding, NULL);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	ck_assert_int_eq(kill(pid, 0), 0); /* the holder's process lives */
	inherit_and_repair();
	ck_assert_int_eq(shmkit_sem_post(&msh->go), 0);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
}
END_TEST

static void *thread_park(void *arg)
{
	(void)arg;
	(void)shmkit_sem_wait(&msh->go);
	_exit(0); /* ends the process: the leader is gone already */
}

/* Child: the main thread takes the lock and exits with pthread_exit() while a second
 * thread keeps the process alive. The leader is a zombie then, its pid alive to kill(). */
static int child_leader_exits_holding(void *arg)
{
	(void)arg;
	pthread_t th;
	if (pthread_create(&th, NULL, thread_park, NULL) != 0)
		return 1;
	if (shmkit_mutex_lock(&msh->m) != 0)
		return 2;
	msh->state = 1;
	atomic_store_explicit(&msh->locked, 1, memory_order_release);
	pthread_exit(NULL);
}

START_TEST(test_mutex_leader_exits_holding)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	pid_t pid = t_fork(child_leader_exits_holding, NULL);
	ck_assert(wait_flag(&msh->locked, 1, 5000));
	inherit_and_repair();
	ck_assert_int_eq(kill(pid, 0), 0); /* the process was alive all along */
	ck_assert_int_eq(shmkit_sem_post(&msh->go), 0);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
}
END_TEST

static void *thread_increment(void *arg)
{
	return (void *)(intptr_t)child_mutex_increment(arg);
}

/* Child: three threads increment (the per-thread identity tells siblings apart). */
static int child_threads_increment(void *arg)
{
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		if (pthread_create(&th[i], NULL, thread_increment,
				   (void *)((uintptr_t)arg * 8 + (uintptr_t)i)) != 0)
			return 10;
	int rc = 0;
	for (int i = 0; i < 3; i++) {
		void *r;
		if (pthread_join(th[i], &r) != 0)
			return 11;
		if (r)
			rc = (int)(intptr_t)r;
	}
	return rc;
}

START_TEST(test_mutex_threads_and_processes)
{
	msh = t_shm_alloc(sizeof *msh);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	msh->per_proc = scale(5000, 200000);
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = t_fork(child_threads_increment, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t_wait(pids[i], WAIT_MS), 0);
	ck_assert_uint_eq(atomic_load(&msh->overlap), 0);
	ck_assert_uint_eq(msh->counter, 9 * msh->per_proc);
	ck_assert_int_eq(shmkit_mutex_destroy(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), -ENOTRECOVERABLE); /* destroyed */
}
END_TEST

/* A glibc 2.36 x86_64 pthread_mutex_t image: lock word, count, owner, nusers, kind, spins,
 * elision, then the robust list's prev/next pointers. */
static void put_glibc_image(struct shmkit_mutex *m, uint32_t lock, uint32_t kind, uint64_t ptr)
{
	uint32_t w32[6] = {lock, 0, lock & 0x3fffffffu, 1, kind, 0};
	_Atomic unsigned char *b = (_Atomic unsigned char *)(void *)m;
	unsigned char img[64] = {0};
	memcpy(img, w32, sizeof w32);
	memcpy(img + 24, &ptr, 8);
	memcpy(img + 32, &ptr, 8);
	for (int i = 0; i < 64; i++)
		atomic_store_explicit(&b[i], img[i], memory_order_relaxed);
}

static int child_exit_now(void *arg)
{
	(void)arg;
	return 0;
}

/* Every kind of value a peer may leave in the owner word, one at a time, with the answer
 * each call must give. */
START_TEST(test_mutex_hostile_values)
{
	msh = t_shm_alloc(sizeof *msh + 128);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	_Atomic uint64_t *ow = mx_owner(&msh->m);
	uint64_t me = mx_word_of(gettid());
	pid_t gone = t_fork(child_exit_now, NULL);
	ck_assert_int_eq(t_wait(gone, WAIT_MS), 0); /* reaped: no such pid now (barring reuse) */
	uint64_t init_start = shmkit_pid_start_ticks(1);
	struct timespec d;

	/* The reproducer's kind (PSHARED | ELISION) with the lock word free: to us, free. */
	put_glibc_image(&msh->m, 0, 384, 0x00007ffc12345678ull);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	/* ... locked by some thread with waiters: a malformed word (thread id 0 above bit 32). */
	put_glibc_image(&msh->m, 0x80000000u | 4242, 384 | 16, 0x00007ffc12345678ull);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -EOWNERDEAD);
	ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);

	struct {
		uint64_t w;
		int lock, trylock; /* timedlock with a short deadline; trylock */
	} cases[] = {
		{0x00007ffc12345678ull, -EOWNERDEAD, -99},  /* a pointer: tid 32764, wrong start */
		{0xdeadbeefdeadbeefull, -EOWNERDEAD, -EOWNERDEAD}, /* tid above PID_MAX_LIMIT */
		{1ull << 63 | 5, -EOWNERDEAD, -EOWNERDEAD},       /* bit 63 */
		{0x12345678u, -EOWNERDEAD, -EOWNERDEAD},          /* pid 0 */
		{(uint64_t)(uint32_t)gone << 32 | 7, -EOWNERDEAD, -EOWNERDEAD}, /* a dead pid */
		{1ull << 32 | ((init_start + 1) & 0xffffffffu), -EOWNERDEAD, -EBUSY}, /* pid 1, wrong start */
		{me, -EDEADLK, -EDEADLK},                         /* our own identity */
		{me | MX_INCONS, -EDEADLK, -EDEADLK},
		{MX_NOTREC, -ENOTRECOVERABLE, -ENOTRECOVERABLE},
		{mx_word_of(getppid()), -ETIMEDOUT, -EBUSY},      /* a live process that never unlocks */
		{MX_INCONS | (uint64_t)(uint32_t)gone << 32, -EOWNERDEAD, -EOWNERDEAD},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		for (int how = 0; how < 2; how++) {
			atomic_store(ow, cases[i].w);
			atomic_store(word(&msh->m, 2), 0xffffffffu); /* a garbage sleeper count */
			int want = how ? cases[i].trylock : cases[i].lock;
			int r = how ? shmkit_mutex_trylock(&msh->m)
				    : shmkit_mutex_timedlock(&msh->m,
							     shmkit_deadline_after(&d, 150 * NS_PER_MS));
			/* -99: the cheap check may or may not know (pid 32764 may exist). */
			if (want == -99)
				ck_assert_msg(r == -EOWNERDEAD || r == -EBUSY, "case %zu: %d", i, r);
			else
				ck_assert_msg(r == want, "case %zu/%d: %s, want %s", i, how,
					      shmkit_strerror(r), shmkit_strerror(want));
			if (r == -EOWNERDEAD) {
				ck_assert_uint_eq(atomic_load(ow), me | MX_INCONS);
				ck_assert_int_eq(shmkit_mutex_consistent(&msh->m), 0);
			}
			/* Ours now, or named ours: the unlock succeeds (an INCONS word of ours
			 * unlocked makes it not recoverable; the next case overwrites it). */
			if (r == 0 || r == -EOWNERDEAD || r == -EDEADLK)
				ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
		}
	}
	/* The last one (an INCONS own word) unlocked without consistent: not recoverable. */
	atomic_store(ow, me | MX_INCONS);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_trylock(&msh->m), -ENOTRECOVERABLE);
	ck_assert_int_eq(shmkit_mutex_init(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&msh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&msh->m), 0);
}
END_TEST

/* --- the scribbler: random and chosen garbage while others lock --------------------------- */

#define SCR_PROCS 3
struct scr_shared {
	unsigned char before[64];
	struct shmkit_mutex m;
	unsigned char after[64];
	_Atomic uint32_t stop;
	_Atomic uint64_t ops[SCR_PROCS];
	_Atomic uint64_t codes[SCR_PROCS][8];
	_Atomic int32_t bad[SCR_PROCS];
	_Atomic int32_t pids[SCR_PROCS + 1];
};
static struct scr_shared *xsh;

/* The result codes a locker may see, as indices into codes[]. */
static int scr_code(int r)
{
	switch (r) {
	case 0: return 0;
	case -EOWNERDEAD: return 1;
	case -ENOTRECOVERABLE: return 2;
	case -EDEADLK: return 3;
	case -ETIMEDOUT: return 4;
	case -EBUSY: return 5;
	default: return -1;
	}
}

static int scr_locker(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = t_seed() * 13 + (uint64_t)id;
	while (!atomic_load(&xsh->stop)) {
		struct timespec d;
		int r = t_rand(&rng) % 4 == 0
				? shmkit_mutex_trylock(&xsh->m)
				: shmkit_mutex_timedlock(&xsh->m,
							 shmkit_deadline_after(&d, (1 + t_rand(&rng) % 20) *
										   NS_PER_MS));
		int c = scr_code(r);
		if (c < 0) {
			atomic_store(&xsh->bad[id], r);
			return 1;
		}
		atomic_fetch_add(&xsh->codes[id][c], 1);
		if (r == -EOWNERDEAD) {
			r = shmkit_mutex_consistent(&xsh->m);
			if (r != 0 && r != -EINVAL) {
				atomic_store(&xsh->bad[id], 1000 + r);
				return 2;
			}
		}
		if (r == 0 || r == -EOWNERDEAD || r == -EINVAL || c == 3) {
			if (t_rand(&rng) % 8 == 0)
				sched_yield();
			r = shmkit_mutex_unlock(&xsh->m);
			if (r != 0 && r != -EPERM) {
				atomic_store(&xsh->bad[id], 2000 + r);
				return 3;
			}
		}
		atomic_fetch_add(&xsh->ops[id], 1);
	}
	return 0;
}

START_TEST(test_mutex_scribbler)
{
	xsh = t_shm_alloc(sizeof *xsh);
	memset(xsh->before, 0xa5, sizeof xsh->before);
	memset(xsh->after, 0x5a, sizeof xsh->after);
	ck_assert_int_eq(shmkit_mutex_init(&xsh->m), 0);
	pid_t pids[SCR_PROCS];
	for (int i = 0; i < SCR_PROCS; i++)
		pids[i] = t_fork(scr_locker, (void *)(intptr_t)i);
	pid_t gone = t_fork(child_exit_now, NULL);
	ck_assert_int_eq(t_wait(gone, WAIT_MS), 0);
	uint64_t rng = t_seed() ^ 0xa11ce;
	_Atomic uint64_t *ow = mx_owner(&xsh->m);
	_Atomic unsigned char *bytes = (_Atomic unsigned char *)(void *)&xsh->m;
	uint64_t end = shmkit_now_ns() + scale(1500, 10000) * NS_PER_MS;
	unsigned writes = 0;
	while (shmkit_now_ns() < end) {
		uint64_t w;
		pid_t victim = pids[t_rand(&rng) % SCR_PROCS];
		switch (t_rand(&rng) % 12) {
		case 0: w = t_rand(&rng); break;
		case 1: w = 0x00007ff000000000ull | (t_rand(&rng) & 0xffffffff8ull); break;
		case 2: w = mx_word_of(victim); break;                /* a locker's own word */
		case 3: w = mx_word_of(victim) | MX_INCONS; break;
		case 4: w = (uint64_t)(uint32_t)gone << 32 | 1; break; /* dead */
		case 5: w = t_rand(&rng) & 0xffffffffu; break;          /* pid 0 */
		case 6: w = 1ull << 32 | (t_rand(&rng) & 3); break;     /* pid 1 */
		case 7: w = MX_NOTREC; break;
		case 8: w = 0; break;
		case 9: w = mx_word_of(getpid()); break;                /* live, never unlocks */
		case 10: /* the old glibc ELISION kind and robust-list pointers */
			put_glibc_image(&xsh->m, (uint32_t)t_rand(&rng), 384,
					0x00007ffc00000000ull | (t_rand(&rng) & 0xfffffff8u));
			w = atomic_load(ow);
			break;
		default: /* random bytes anywhere in the 64 */
			for (int j = 0; j < 8; j++)
				atomic_store_explicit(&bytes[t_rand(&rng) % 64],
						      (unsigned char)t_rand(&rng),
						      memory_order_relaxed);
			w = atomic_load(ow);
			break;
		}
		atomic_store(ow, w);
		if (t_rand(&rng) % 3 == 0)
			atomic_store(word(&xsh->m, 2), (uint32_t)t_rand(&rng)); /* sleepers */
		writes++;
		/* Let the lockers run into it; now and then give them a clean lock. */
		t_sleep_us(t_rand(&rng) % 3000);
		if (t_rand(&rng) % 4 == 0)
			atomic_store(ow, 0);
	}
	atomic_store(&xsh->stop, 1);
	atomic_store(ow, 0); /* a live word would keep a deadline-less locker... none are */
	uint64_t seen[8] = {0};
	for (int i = 0; i < SCR_PROCS; i++) {
		int st = t_wait(pids[i], WAIT_MS);
		ck_assert_msg(st == 0, "locker %d: status %d, bad rc %d", i, st,
			      atomic_load(&xsh->bad[i]));
		ck_assert_uint_gt(atomic_load(&xsh->ops[i]), 0);
		for (int c = 0; c < 8; c++)
			seen[c] += atomic_load(&xsh->codes[i][c]);
	}
	ck_assert_uint_gt(writes, 100);
	/* The garbage was met: dead owners, not-recoverable words and timeouts all came up. */
	ck_assert_uint_gt(seen[0], 0);
	ck_assert_uint_gt(seen[1], 0);
	ck_assert_uint_gt(seen[2], 0);
	/* No write outside the mutex. */
	for (int i = 0; i < 64; i++) {
		ck_assert_uint_eq(xsh->before[i], 0xa5);
		ck_assert_uint_eq(xsh->after[i], 0x5a);
	}
	ck_assert_int_eq(shmkit_mutex_init(&xsh->m), 0);
	ck_assert_int_eq(shmkit_mutex_lock(&xsh->m), 0);
	ck_assert_int_eq(shmkit_mutex_unlock(&xsh->m), 0);
}
END_TEST

/* --- seqlock -------------------------------------------------------------------------- */

/* A self-checking record: every word derives from `seq`, the last is a checksum. A second,
 * odd-sized record sits at an odd address to exercise the byte paths of the copies. */
#define REC_WORDS 14
struct rec {
	uint64_t seq;
	uint64_t w[REC_WORDS];
	uint64_t sum;
};
#define SMALL_LEN 45

struct sl_shared {
	struct shmkit_seqlock sl;
	_Atomic uint32_t stop;
	_Atomic uint32_t writing; /* the killed writer is inside its write */
	struct rec rec;
	unsigned char small_area[SMALL_LEN + 16];
	uint64_t run_ms;
	struct {
		uint64_t ok, busy, distinct;
	} rd[2];
	uint64_t written;
};
static struct sl_shared *qsh;

static void rec_fill(struct rec *r, unsigned char *small, uint64_t seq)
{
	r->seq = seq;
	uint64_t s = seq;
	for (int i = 0; i < REC_WORDS; i++) {
		r->w[i] = seq * (uint64_t)(i + 3) ^ ((uint64_t)i << 56);
		s = s * 31 + r->w[i];
	}
	r->sum = s;
	for (int i = 0; i < SMALL_LEN; i++)
		small[i] = (unsigned char)(seq * 7 + (uint64_t)i);
}

/* 1 when the record (and small area) is one consistent write. */
static int rec_ok(const struct rec *r, const unsigned char *small)
{
	uint64_t s = r->seq;
	for (int i = 0; i < REC_WORDS; i++) {
		if (r->w[i] != (r->seq * (uint64_t)(i + 3) ^ ((uint64_t)i << 56)))
			return 0;
		s = s * 31 + r->w[i];
	}
	if (s != r->sum)
		return 0;
	for (int i = 0; i < SMALL_LEN; i++)
		if (small[i] != (unsigned char)(r->seq * 7 + (uint64_t)i))
			return 0;
	return 1;
}

static unsigned char *small_shared(void)
{
	return qsh->small_area + 3; /* deliberately misaligned */
}

static void seq_write(uint64_t seq)
{
	struct rec r;
	unsigned char small[SMALL_LEN];
	rec_fill(&r, small, seq);
	shmkit_seqlock_write_begin(&qsh->sl);
	shmkit_seqlock_store(&qsh->rec, &r, sizeof r);
	shmkit_seqlock_store(small_shared(), small, SMALL_LEN);
	shmkit_seqlock_write_end(&qsh->sl);
}

/* Takes one snapshot of both records. Returns 0, or -EAGAIN after `tries` busy attempts. */
static int seq_snapshot(struct rec *r, unsigned char *small, unsigned tries)
{
	for (unsigned i = 0; i < tries; i++) {
		uint32_t s;
		if (shmkit_seqlock_read_begin(&qsh->sl, &s) != 0)
			continue;
		shmkit_seqlock_load(r, &qsh->rec, sizeof *r);
		shmkit_seqlock_load(small, small_shared(), SMALL_LEN);
		if (shmkit_seqlock_read_end(&qsh->sl, s) == 0)
			return 0;
	}
	return -EAGAIN;
}

START_TEST(test_seqlock_basic)
{
	qsh = t_shm_alloc(sizeof *qsh);
	uint32_t s;
	/* Zero-filled memory is an initialized seqlock. */
	ck_assert_int_eq(shmkit_seqlock_read_begin(&qsh->sl, &s), 0);
	ck_assert_uint_eq(s, 0);
	ck_assert_int_eq(shmkit_seqlock_read_end(&qsh->sl, s), 0);
	seq_write(1);
	ck_assert_int_eq(shmkit_seqlock_read_end(&qsh->sl, s), -EAGAIN); /* a write came */
	ck_assert_int_eq(shmkit_seqlock_read_begin(&qsh->sl, &s), 0);
	ck_assert_uint_eq(s, 2);
	shmkit_seqlock_write_begin(&qsh->sl);
	uint32_t s2;
	ck_assert_int_eq(shmkit_seqlock_read_begin(&qsh->sl, &s2), -EAGAIN);
	ck_assert_uint_eq(s2, 3);
	ck_assert_int_eq(shmkit_seqlock_read_end(&qsh->sl, s), -EAGAIN);
	struct rec r;
	unsigned char small[SMALL_LEN];
	ck_assert_int_eq(shmkit_seqlock_read(&qsh->sl, &r, &qsh->rec, sizeof r, 5), -EAGAIN);
	shmkit_seqlock_write_end(&qsh->sl);
	ck_assert_int_eq(seq_snapshot(&r, small, 1), 0);
	ck_assert(rec_ok(&r, small));
	ck_assert_uint_eq(r.seq, 1);
	ck_assert_int_eq(shmkit_seqlock_read(&qsh->sl, &r, &qsh->rec, sizeof r, 0), 0);

	/* The copies: every length and alignment, against memcpy. */
	unsigned char src[80], dst[80], back[80];
	for (int i = 0; i < 80; i++)
		src[i] = (unsigned char)(i * 37 + 1);
	for (size_t off = 0; off < 8; off++) {
		for (size_t len = 0; len <= 64; len++) {
			memset(dst, 0xaa, sizeof dst);
			memset(back, 0x55, sizeof back);
			shmkit_seqlock_store(dst + off, src, len);
			ck_assert_int_eq(memcmp(dst + off, src, len), 0);
			ck_assert_uint_eq(dst[off + len], 0xaa); /* no overrun */
			if (off > 0)
				ck_assert_uint_eq(dst[off - 1], 0xaa);
			shmkit_seqlock_load(back + 1, dst + off, len);
			ck_assert_int_eq(memcmp(back + 1, src, len), 0);
			ck_assert_uint_eq(back[len + 1], 0x55);
			ck_assert_uint_eq(back[0], 0x55);
		}
	}
	/* Sequence wrap-around stays even after a write. */
	shmkit_seqlock_init(&qsh->sl);
	atomic_store(word(&qsh->sl, 0), UINT32_MAX - 1);
	seq_write(2);
	ck_assert_int_eq(shmkit_seqlock_read_begin(&qsh->sl, &s), 0);
	ck_assert_uint_eq(s, 0);
}
END_TEST

static int child_seq_writer(void *arg)
{
	(void)arg;
	uint64_t end = shmkit_now_ns() + qsh->run_ms * NS_PER_MS;
	uint64_t seq = 0;
	while (shmkit_now_ns() < end) {
		for (int i = 0; i < 64; i++)
			seq_write(++seq);
	}
	qsh->written = seq;
	atomic_store_explicit(&qsh->stop, 1, memory_order_release);
	return 0;
}

static int child_seq_reader(void *arg)
{
	int id = (int)(uintptr_t)arg;
	uint64_t ok = 0, busy = 0, distinct = 0, last = 0;
	while (!atomic_load_explicit(&qsh->stop, memory_order_acquire)) {
		struct rec r;
		unsigned char small[SMALL_LEN];
		if (seq_snapshot(&r, small, 1000) != 0) {
			busy++; /* the writer was preempted mid-write: fine */
			continue;
		}
		if (!rec_ok(&r, small))
			return 1; /* torn snapshot accepted */
		if (r.seq < last)
			return 2; /* went back in time */
		if (r.seq != last)
			distinct++;
		last = r.seq;
		ok++;
		/* The convenience wrapper too (the record alone). */
		if (ok % 8 == 0 && shmkit_seqlock_read(&qsh->sl, &r, &qsh->rec, sizeof r, 0) == 0) {
			uint64_t s = r.seq;
			for (int i = 0; i < REC_WORDS; i++)
				s = s * 31 + r.w[i];
			if (s != r.sum)
				return 3;
		}
	}
	qsh->rd[id].ok = ok;
	qsh->rd[id].busy = busy;
	qsh->rd[id].distinct = distinct;
	return 0;
}

START_TEST(test_seqlock_no_torn_reads)
{
	qsh = t_shm_alloc(sizeof *qsh);
	qsh->run_ms = scale(1500, 20000);
	seq_write(0); /* a valid initial record */
	pid_t r0 = t_fork(child_seq_reader, (void *)0);
	pid_t r1 = t_fork(child_seq_reader, (void *)1);
	pid_t w = t_fork(child_seq_writer, NULL);
	ck_assert_int_eq(t_wait(w, WAIT_MS + (int)qsh->run_ms), 0);
	ck_assert_int_eq(t_wait(r0, WAIT_MS), 0);
	ck_assert_int_eq(t_wait(r1, WAIT_MS), 0);
	ck_assert_uint_gt(qsh->written, 1000);
	for (int i = 0; i < 2; i++) {
		ck_assert_uint_gt(qsh->rd[i].ok, 100);
		ck_assert_uint_gt(qsh->rd[i].distinct, 10); /* it did read while writes went on */
	}
	struct rec r;
	unsigned char small[SMALL_LEN];
	ck_assert_int_eq(seq_snapshot(&r, small, 1), 0);
	ck_assert(rec_ok(&r, small));
	ck_assert_uint_eq(r.seq, qsh->written);
}
END_TEST

/* Writer that dies between write_begin and write_end, leaving half a record. */
static int child_seq_dying_writer(void *arg)
{
	(void)arg;
	struct rec r;
	unsigned char small[SMALL_LEN];
	rec_fill(&r, small, 777);
	shmkit_seqlock_write_begin(&qsh->sl);
	shmkit_seqlock_store(&qsh->rec, &r, sizeof r / 2);
	atomic_store_explicit(&qsh->writing, 1, memory_order_release);
	t_sleep_ms(60000); /* the parent kills us long before */
	return 99;
}

static int child_seq_bounded_reader(void *arg)
{
	(void)arg;
	struct rec r;
	for (int i = 0; i < 100; i++)
		if (shmkit_seqlock_read(&qsh->sl, &r, &qsh->rec, sizeof r, 1000) != -EAGAIN)
			return 1;
	return 0;
}

START_TEST(test_seqlock_writer_killed)
{
	qsh = t_shm_alloc(sizeof *qsh);
	seq_write(5);
	uint32_t before = peek(&qsh->sl, 0);
	ck_assert_uint_eq(before, 2);

	pid_t w = t_fork(child_seq_dying_writer, NULL);
	ck_assert(wait_flag(&qsh->writing, 1, 5000));
	ck_assert_int_eq(kill(w, SIGKILL), 0);
	ck_assert_int_eq(t_wait(w, WAIT_MS), 128 + SIGKILL);
	ck_assert_uint_eq(peek(&qsh->sl, 0), before + 1); /* left odd */

	/* Readers see "busy", boundedly, in this process and another one. */
	uint32_t s;
	ck_assert_int_eq(shmkit_seqlock_read_begin(&qsh->sl, &s), -EAGAIN);
	struct rec r;
	unsigned char small[SMALL_LEN];
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_seqlock_read(&qsh->sl, &r, &qsh->rec, sizeof r, 0), -EAGAIN);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 5000 * NS_PER_MS);
	pid_t rd = t_fork(child_seq_bounded_reader, NULL);
	ck_assert_int_eq(t_wait(rd, WAIT_MS), 0);

	/* The next writer repairs: the sequence stays odd during its write, even after. */
	shmkit_seqlock_write_begin(&qsh->sl);
	ck_assert_uint_eq(peek(&qsh->sl, 0), before + 1);
	rec_fill(&r, small, 6);
	shmkit_seqlock_store(&qsh->rec, &r, sizeof r);
	shmkit_seqlock_store(small_shared(), small, SMALL_LEN);
	shmkit_seqlock_write_end(&qsh->sl);
	ck_assert_uint_eq(peek(&qsh->sl, 0), before + 2);

	memset(&r, 0, sizeof r);
	ck_assert_int_eq(seq_snapshot(&r, small, 1), 0);
	ck_assert(rec_ok(&r, small));
	ck_assert_uint_eq(r.seq, 6);
}
END_TEST

/* --- suites --------------------------------------------------------------------------- */

/* Normal runs take a few seconds per case; the stress tier runs ~20x longer. */
static TCase *tcase(Suite *s, const char *name)
{
	return t_tcase(s, name, t_stress() ? 300 : 30);
}

static Suite *event_suite(void)
{
	Suite *s = suite_create("sync_event");
	TCase *tc = tcase(s, "futex");
	tcase_add_test(tc, test_time_deadline_after);
	tcase_add_test(tc, test_futex_raw);
	tc = tcase(s, "event");
	tcase_add_test(tc, test_event_zero_and_notify_nobody);
	tcase_add_test(tc, test_event_timeout);
	tcase_add_test(tc, test_event_wake_across_processes);
	tcase_add_test(tc, test_event_spin_then_sleep);
	tcase_add_test(tc, test_event_pingpong);
	tcase_add_test(tc, test_event_hostile_sleepers);
	tcase_add_test(tc, test_wait_eintr);
	return s;
}

static Suite *sem_suite(void)
{
	Suite *s = suite_create("sync_sem");
	TCase *tc = tcase(s, "sem");
	tcase_add_test(tc, test_sem_basic);
	tcase_add_test(tc, test_sem_timedwait_timeout);
	tcase_add_test(tc, test_sem_overflow_and_corrupt);
	tcase_add_test(tc, test_sem_pingpong);
	tcase_add_test(tc, test_sem_producers_consumers);
	return s;
}

static Suite *mutex_suite(void)
{
	Suite *s = suite_create("sync_mutex");
	TCase *tc = tcase(s, "mutex");
	tcase_add_test(tc, test_mutex_errors_single);
	tcase_add_test(tc, test_mutex_contended_errors);
	tcase_add_test(tc, test_mutex_owner_killed);
	tcase_add_test(tc, test_mutex_owner_dies_while_waited_for);
	tcase_add_test(tc, test_mutex_not_recoverable);
	tcase_add_test(tc, test_mutex_mutual_exclusion);
	tcase_add_test(tc, test_mutex_killed_while_sleeper_waits);
	tcase_add_test(tc, test_mutex_zombie_holder);
	tcase_add_test(tc, test_mutex_thread_exits_holding);
	tcase_add_test(tc, test_mutex_leader_exits_holding);
	tcase_add_test(tc, test_mutex_threads_and_processes);
	tcase_add_test(tc, test_mutex_hostile_values);
	tcase_add_test(tc, test_mutex_scribbler);
	return s;
}

static Suite *seqlock_suite(void)
{
	Suite *s = suite_create("sync_seqlock");
	TCase *tc = tcase(s, "seqlock");
	tcase_add_test(tc, test_seqlock_basic);
	tcase_add_test(tc, test_seqlock_no_torn_reads);
	tcase_add_test(tc, test_seqlock_writer_killed);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {event_suite, sem_suite, mutex_suite, seqlock_suite};
	return t_main(makers, (int)(sizeof makers / sizeof makers[0]));
}
