/* shmkit — synchronization primitives that live inside shared memory.
 *
 * Every object here is a small block of words that any number of processes map, possibly at
 * different addresses: no pointers, only 32-bit atomics (which are lock-free, so the lock
 * state lives in the word itself and works across processes) and, for the mutex, a glibc
 * process-shared pthread_mutex_t.
 *
 * Layouts (offsets in bytes; every field is written by any process using the object):
 *
 *   event (8 bytes, align 4)            sem (8 bytes, align 4)
 *     0  4  gen       futex word         0  4  value     futex word, 0..INT32_MAX
 *     4  4  sleepers  hint, wraps        4  4  sleepers  hint, wraps
 *
 *   mutex (64 bytes, align 8)           seqlock (4 bytes, align 4)
 *     0 40  pthread_mutex_t (x86_64)     0  4  seq       odd while a write is in progress
 *    40 24  zero
 *
 * Waiting protocol (event and sem). A waiter must never sleep through the change it waits
 * for, yet a notifier should not pay a FUTEX_WAKE system call when nobody sleeps. The two
 * sides are a Dekker pair over two words, each side storing to one and then loading the
 * other with a sequentially consistent fence in between:
 *
 *     waiter                                   notifier
 *     W1 sleepers += 1                         N1 gen += 1 (sem: value += 1)
 *     W2 fence(seq_cst)                        N2 fence(seq_cst)
 *     W3 load gen; if changed (sem: nonzero)   N3 load sleepers; if 0: done
 *        undo W1, done
 *     W4 FUTEX_WAIT(gen, old)                  N4 FUTEX_WAKE(gen)
 *     W5 sleepers -= 1
 *
 * The fences W2 and N2 are totally ordered. If W2 comes first, N3 sees W1 (C11's rule for
 * seq_cst fences: a load sequenced after fence Y sees a store sequenced before fence X, or
 * a later one, when X precedes Y), so the notifier calls FUTEX_WAKE. If N2 comes first, W3
 * sees N1 and the waiter does not sleep. The remaining window — W3 saw the old value, then
 * N1..N4 ran before W4 entered the kernel — is closed by the kernel: FUTEX_WAIT re-reads
 * the word under the futex hash-bucket lock and returns EAGAIN when it differs, and
 * FUTEX_WAKE takes the same lock. So no wake-up is lost, and a notify with nobody asleep
 * costs one RMW, one fence and one load. The semaphore wakes one sleeper per post: every
 * post adds one unit and one wake-up, and a woken sleeper that finds its unit taken lost
 * it to a taker that did not need a wake-up, so units and wake-ups stay balanced.
 *
 * When a process dies. A waiter killed between W1 and W5 leaves `sleepers` one too high
 * for good: a cost, not a fault (notifiers make a FUTEX_WAKE that wakes nobody). A notifier
 * killed between N1 and N4, or a semaphore waiter killed after a post woke it but before it
 * took the unit, takes a wake-up with it: the remaining sleepers wake at the next notify or
 * post, or at their deadline — which is why every shmkit wait has one, and why the higher
 * layers check peer liveness on timeout. A mutex owner's death is handled by glibc and the
 * kernel's robust list (the next locker gets EOWNERDEAD). A seqlock writer killed mid-write
 * leaves the sequence odd: readers get -EAGAIN (they never wait on it unboundedly) until
 * the next writer's write_begin/write_end repairs it.
 *
 * Hostile peers. Any word here may be overwritten by another process at any time. The code
 * uses `sleepers` only as "zero or not" and updates it with wrapping unsigned arithmetic, so
 * garbage costs at most spurious system calls (or, if a peer zeroes it, a wake-up as late
 * as the deadline). Semaphore values above INT32_MAX cannot come from shmkit_sem_post();
 * waits still treat them as positive (unsigned arithmetic, no UB) while posts refuse to go
 * higher (-EOVERFLOW), so the value never wraps to 0. Every wait loop over shared words is
 * bounded or checks the caller's deadline, so a peer that keeps rewriting a word can delay
 * a wait until its deadline but not past it (shmkit_sem_post() and shmkit_sem_trywait()
 * retry their CAS for as long as other processes keep changing the value: lock-free, like
 * any CAS loop, not wait-free). The glibc mutex is the exception to "garbage costs only
 * time": glibc trusts the pthread_mutex_t it is handed — its robust-list links are pointers
 * into the holder's address space that the holder's unlock writes through — so a peer that
 * can scribble over a mutex can corrupt the memory of the process holding it. Share shmkit
 * mutexes only between processes that trust each other; crashes are fine, malice is not.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#if defined(__SANITIZE_THREAD__)
#define SYNC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SYNC_TSAN 1
#endif
#endif
#ifdef SYNC_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Bounded spin of semaphore waits before they sleep: long enough to catch a post that is
 * already on its way from the other core (~100 ns .. 1 us), short enough not to matter
 * when the wait really has to sleep. */
#define SEM_SPIN 128u

/* CAS attempts per take inside a wait before it re-checks its deadline. Honest contention
 * between a few processes fails a CAS a handful of times at most. */
#define SEM_CAS_TRIES 64u

/* --- fences ---------------------------------------------------------------------------- */

/* gcc's ThreadSanitizer does not model atomic_thread_fence() and says so with -Wtsan, an
 * error under -Werror. Every shared access in this file is atomic, so a TSan build loses
 * no race report by not modelling the fences (they still execute as real fences), and the
 * happens-before that callers rely on (event notify -> wait, sem post -> wait, seqlock
 * write_end -> read_begin) rides on release/acquire pairs that TSan does model. So keep the
 * fences and silence that one warning around them. */
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define SYNC_TSAN_PRAGMAS 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif

static inline void fence_seq_cst(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}

static inline void fence_acquire(void)
{
	atomic_thread_fence(memory_order_acquire);
}

static inline void fence_release(void)
{
	atomic_thread_fence(memory_order_release);
}

#ifdef SYNC_TSAN_PRAGMAS
#pragma GCC diagnostic pop
#endif

/* --- private layouts ------------------------------------------------------------------- */

struct event_impl {
	_Atomic uint32_t gen;
	_Atomic uint32_t sleepers;
};

struct sem_impl {
	_Atomic uint32_t value;
	_Atomic uint32_t sleepers;
};

struct mutex_impl {
	pthread_mutex_t m;
};

struct seqlock_impl {
	_Atomic uint32_t seq;
};

static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free (address-free)");
static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t),
	      "an atomic futex word has the plain word's size (the kernel reads it as u32)");
static_assert(_Alignof(_Atomic uint32_t) == _Alignof(uint32_t), "futex word alignment");

static_assert(sizeof(struct event_impl) == sizeof(struct shmkit_event), "event size is ABI");
static_assert(_Alignof(struct event_impl) <= _Alignof(struct shmkit_event), "event align");
static_assert(offsetof(struct event_impl, gen) == 0, "event layout");
static_assert(offsetof(struct event_impl, sleepers) == 4, "event layout");

static_assert(sizeof(struct sem_impl) == sizeof(struct shmkit_sem), "sem size is ABI");
static_assert(_Alignof(struct sem_impl) <= _Alignof(struct shmkit_sem), "sem align");
static_assert(offsetof(struct sem_impl, value) == 0, "sem layout");
static_assert(offsetof(struct sem_impl, sleepers) == 4, "sem layout");

static_assert(sizeof(struct mutex_impl) <= sizeof(struct shmkit_mutex),
	      "pthread_mutex_t fits the 64-byte public mutex");
static_assert(_Alignof(struct mutex_impl) <= _Alignof(struct shmkit_mutex), "mutex align");

static_assert(sizeof(struct seqlock_impl) == sizeof(struct shmkit_seqlock), "seqlock size");
static_assert(_Alignof(struct seqlock_impl) <= _Alignof(struct shmkit_seqlock), "seqlock align");

static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "seqlock copies use lock-free 64-bit atomics");
static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8,
	      "seqlock copy words");

static inline struct event_impl *ev_impl(struct shmkit_event *ev)
{
	return (struct event_impl *)(void *)ev;
}

static inline const struct event_impl *ev_cimpl(const struct shmkit_event *ev)
{
	return (const struct event_impl *)(const void *)ev;
}

static inline struct sem_impl *sem_impl(struct shmkit_sem *sem)
{
	return (struct sem_impl *)(void *)sem;
}

static inline struct mutex_impl *mx_impl(struct shmkit_mutex *m)
{
	return (struct mutex_impl *)(void *)m;
}

static inline struct seqlock_impl *sl_impl(struct shmkit_seqlock *sl)
{
	return (struct seqlock_impl *)(void *)sl;
}

static inline const struct seqlock_impl *sl_cimpl(const struct shmkit_seqlock *sl)
{
	return (const struct seqlock_impl *)(const void *)sl;
}

/* --- time ------------------------------------------------------------------------------ */

static_assert(sizeof(time_t) == 8, "deadlines add up to 585 years of seconds to time_t");

uint64_t shmkit_now_ns(void)
{
	struct timespec ts;
	/* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec *shmkit_deadline_after(struct timespec *deadline, uint64_t timeout_ns)
{
	struct timespec now;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t sec = timeout_ns / 1000000000u;
	long nsec = now.tv_nsec + (long)(timeout_ns % 1000000000u);
	if (nsec >= 1000000000L) {
		nsec -= 1000000000L;
		sec++;
	}
	/* No overflow: sec <= UINT64_MAX / 1e9 + 1 (about 585 years) and time_t is 64-bit. */
	deadline->tv_sec = now.tv_sec + (time_t)sec;
	deadline->tv_nsec = nsec;
	return deadline;
}

/* True when the absolute CLOCK_MONOTONIC deadline has passed (NULL never passes). */
static bool deadline_passed(const struct timespec *deadline)
{
	if (!deadline)
		return false;
	struct timespec now;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* --- raw futex ------------------------------------------------------------------------- */

/* The futex calls take the atomic word's address: the kernel reads and compares it as a
 * plain u32 under its own lock, which is what C11 atomics on the same word expect. */
static int futex_wait_word(const _Atomic uint32_t *word, uint32_t expected,
			   const struct timespec *deadline)
{
	/* FUTEX_WAIT_BITSET takes an absolute timeout, on CLOCK_MONOTONIC unless
	 * FUTEX_CLOCK_REALTIME is given; no _PRIVATE flag: the word is shared between
	 * processes. */
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, deadline, NULL,
			 FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	switch (errno) {
	case EAGAIN: /* the word no longer held `expected`: as good as a wake-up */
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default: /* EINVAL (bad deadline, misaligned word), EFAULT */
		return -errno;
	}
}

static int futex_wake_word(const _Atomic uint32_t *word, int count)
{
	/* The kernel wakes at least one waiter even for count 0, so never ask it to. */
	if (count <= 0)
		return 0;
	long r = syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
	if (r < 0)
		return -errno;
	return r > INT_MAX ? INT_MAX : (int)r;
}

int shmkit_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline)
{
	return futex_wait_word((const _Atomic uint32_t *)(const void *)word, expected, deadline);
}

int shmkit_futex_wake(uint32_t *word, int count)
{
	return futex_wake_word((const _Atomic uint32_t *)(const void *)word, count);
}

/* --- event ----------------------------------------------------------------------------- */

void shmkit_event_init(struct shmkit_event *ev)
{
	struct event_impl *e = ev_impl(ev);
	/* Relaxed: init runs before the object is shared; publishing the segment orders it. */
	atomic_store_explicit(&e->gen, 0, memory_order_relaxed);
	atomic_store_explicit(&e->sleepers, 0, memory_order_relaxed);
}

uint32_t shmkit_event_prepare(const struct shmkit_event *ev)
{
	/* A1: sees the notifier's writes once the generation moved; pairs with R1 in
	 * shmkit_event_notify(). */
	return atomic_load_explicit(&ev_cimpl(ev)->gen, memory_order_acquire);
}

int shmkit_event_wait(struct shmkit_event *ev, uint32_t gen, const struct timespec *deadline,
		      unsigned spin)
{
	struct event_impl *e = ev_impl(ev);

	for (unsigned i = 0; i < spin; i++) {
		/* A2: as A1, for waiters that catch the notify while spinning; pairs with R1 in
		 * shmkit_event_notify(). */
		if (atomic_load_explicit(&e->gen, memory_order_acquire) != gen)
			return 0;
		shmkit__cpu_relax();
	}

	for (;;) {
		/* W1: register as a sleeper before the final check (see the protocol above). */
		atomic_fetch_add_explicit(&e->sleepers, 1, memory_order_seq_cst);
		/* W2: orders W1 before W3; pairs with N2 in shmkit_event_notify(). */
		fence_seq_cst();
		/* A3: W3, the final check; pairs with R1 in shmkit_event_notify(). */
		if (atomic_load_explicit(&e->gen, memory_order_acquire) != gen) {
			/* Relaxed: the count is only a hint to notifiers; a stale higher value
			 * costs them a system call, never a lost wake-up. */
			atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_relaxed);
			return 0;
		}
		int r = futex_wait_word(&e->gen, gen, deadline);
		/* Relaxed: as above (W5). */
		atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_relaxed);

		/* A4: woken (or not) — did the generation move? pairs with R1 in
		 * shmkit_event_notify(). */
		if (atomic_load_explicit(&e->gen, memory_order_acquire) != gen)
			return 0;
		if (r < 0)
			return r;
		/* A wake-up without a new generation: another user of the same futex word, or
		 * a peer playing games. Sleep again, but never past the deadline even if
		 * something keeps waking us before the kernel's timer could fire. */
		if (deadline_passed(deadline))
			return -ETIMEDOUT;
	}
}

int shmkit_event_notify(struct shmkit_event *ev)
{
	struct event_impl *e = ev_impl(ev);
	/* R1: N1, publishes the caller's writes before the notify; pairs with A1 in
	 * shmkit_event_prepare() and A2..A4 in shmkit_event_wait(). */
	atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
	/* N2: orders N1 before N3; pairs with W2 in shmkit_event_wait(). */
	fence_seq_cst();
	/* Relaxed (N3): the fence N2 already orders this load; any nonzero value, garbage
	 * included, just means "make the system call". */
	if (atomic_load_explicit(&e->sleepers, memory_order_relaxed) == 0)
		return 0;
	int r = futex_wake_word(&e->gen, INT_MAX);
	/* A failing wake (EFAULT cannot happen on a mapped word) reports nobody woken. */
	return r < 0 ? 0 : r;
}

uint32_t shmkit_event_sleepers(const struct shmkit_event *ev)
{
	/* Relaxed: a diagnostic snapshot that orders nothing. */
	return atomic_load_explicit(&ev_cimpl(ev)->sleepers, memory_order_relaxed);
}

/* --- counting semaphore ---------------------------------------------------------------- */

int shmkit_sem_init(struct shmkit_sem *sem, uint32_t value)
{
	if (value > INT32_MAX)
		return -EINVAL;
	struct sem_impl *s = sem_impl(sem);
	/* Relaxed: init runs before the object is shared; publishing the segment orders it. */
	atomic_store_explicit(&s->value, value, memory_order_relaxed);
	atomic_store_explicit(&s->sleepers, 0, memory_order_relaxed);
	return 0;
}

int shmkit_sem_post(struct shmkit_sem *sem)
{
	struct sem_impl *s = sem_impl(sem);
	/* Relaxed: only the CAS below publishes; this just seeds it. */
	uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
	do {
		/* ">=" also catches a corrupt value above INT32_MAX: never increment it, so it
		 * can never wrap around to 0 and swallow the posts. */
		if (v >= (uint32_t)INT32_MAX)
			return -EOVERFLOW;
		/* R2: N1, publishes the poster's writes to whoever takes this unit; pairs with
		 * A5 in sem_take(). Failure relaxed: it only reloads v for the next try. */
	} while (!atomic_compare_exchange_weak_explicit(&s->value, &v, v + 1, memory_order_release,
							memory_order_relaxed));
	/* N2: orders the increment before the sleeper check; pairs with W2' in sem_sleep(). */
	fence_seq_cst();
	/* Relaxed (N3): ordered by the fence; nonzero (garbage included) means "wake". */
	if (atomic_load_explicit(&s->sleepers, memory_order_relaxed) != 0)
		(void)futex_wake_word(&s->value, 1);
	return 0;
}

/* Takes one unit if the value is positive, trying the CAS at most `tries` times. Returns
 * true on success. Waits pass a small bound so that a peer rewriting the word non-stop
 * cannot keep them away from their deadline check. */
static bool sem_take(struct sem_impl *s, unsigned tries)
{
	/* Relaxed: only seeds the CAS, which does the acquiring. */
	uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);
	for (unsigned i = 0; v != 0 && i < tries; i++) {
		/* A5: sees the writes of the post that produced this unit; pairs with R2 in
		 * shmkit_sem_post(). Failure relaxed: it only reloads v. Any nonzero value,
		 * even a corrupt one above INT32_MAX, can be decremented without UB. */
		if (atomic_compare_exchange_weak_explicit(&s->value, &v, v - 1, memory_order_acquire,
							  memory_order_relaxed))
			return true;
	}
	return false;
}

/* Sleeps until the value may be positive. Returns 0 (retry the take), -ETIMEDOUT, -EINTR or
 * another negative errno from the kernel. */
static int sem_sleep(struct sem_impl *s, const struct timespec *deadline)
{
	/* W1': register before the final check (see the protocol at the top). */
	atomic_fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst);
	/* W2': pairs with N2 in shmkit_sem_post(). */
	fence_seq_cst();
	int r = 0;
	/* Relaxed (W3'): ordered by W2'; the take that follows does the acquiring. */
	if (atomic_load_explicit(&s->value, memory_order_relaxed) == 0)
		r = futex_wait_word(&s->value, 0, deadline);
	/* Relaxed: the count is only a hint to posters. */
	atomic_fetch_sub_explicit(&s->sleepers, 1, memory_order_relaxed);
	return r;
}

static int sem_wait_until(struct sem_impl *s, const struct timespec *deadline)
{
	for (unsigned i = 0; i < SEM_SPIN; i++) {
		if (sem_take(s, SEM_CAS_TRIES))
			return 0;
		shmkit__cpu_relax();
	}
	for (;;) {
		if (sem_take(s, SEM_CAS_TRIES))
			return 0;
		int r = sem_sleep(s, deadline);
		/* Take before reporting a timeout or a signal: a unit that arrived meanwhile is
		 * better used than left for the next caller. */
		if (sem_take(s, SEM_CAS_TRIES))
			return 0;
		if (r < 0)
			return r;
		/* Woken or the value changed, yet nothing to take (another waiter won it, or a
		 * peer keeps toggling the word): loop, but never past the deadline. */
		if (deadline_passed(deadline))
			return -ETIMEDOUT;
	}
}

int shmkit_sem_wait(struct shmkit_sem *sem)
{
	return sem_wait_until(sem_impl(sem), NULL);
}

int shmkit_sem_trywait(struct shmkit_sem *sem)
{
	/* Unbounded: -EAGAIN must mean "the value was 0", not "the CAS was contended". */
	return sem_take(sem_impl(sem), UINT_MAX) ? 0 : -EAGAIN;
}

int shmkit_sem_timedwait(struct shmkit_sem *sem, const struct timespec *deadline)
{
	return sem_wait_until(sem_impl(sem), deadline);
}

uint32_t shmkit_sem_value(const struct shmkit_sem *sem)
{
	const struct sem_impl *s = (const struct sem_impl *)(const void *)sem;
	/* Relaxed: a snapshot that orders nothing. */
	return atomic_load_explicit(&s->value, memory_order_relaxed);
}

/* --- robust process-shared mutex ------------------------------------------------------- */

int shmkit_mutex_init(struct shmkit_mutex *m)
{
	pthread_mutexattr_t attr;
	int r = pthread_mutexattr_init(&attr);
	if (r != 0)
		return -r;
	if ((r = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (r = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (r = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK)) != 0) {
		(void)pthread_mutexattr_destroy(&attr);
		return -r;
	}
	/* Zero the padding too, so the 64 bytes are deterministic (and diff cleanly in a
	 * segment dump). */
	memset(m, 0, sizeof *m);
	r = pthread_mutex_init(&mx_impl(m)->m, &attr);
	(void)pthread_mutexattr_destroy(&attr);
	return -r;
}

int shmkit_mutex_lock(struct shmkit_mutex *m)
{
	return -pthread_mutex_lock(&mx_impl(m)->m);
}

/* glibc workaround (seen in 2.36; upstream's trylock still has the same code): on a robust
 * mutex made not-recoverable, pthread_mutex_trylock() takes the lock word with a CAS from 0,
 * sees the NOTRECOVERABLE owner mark, and then releases the word only `if (oldval == id)` —
 * but oldval is 0 after a successful CAS, so the word keeps the caller's TID. The caller's
 * next lock says -EDEADLK, every other process times out or blocks forever, and since the
 * mutex is not on the caller's robust list even its death does not free the word. So after
 * a trylock that returned ENOTRECOVERABLE, release the word if (and only if) it holds our
 * TID, exactly as glibc's robust unlock does. (A lock we legitimately held would have made
 * trylock return EDEADLK, never ENOTRECOVERABLE.) This reads glibc's lock word, which is
 * part of its process-shared ABI (bits/struct_mutex.h). */
static void release_stuck_word(struct mutex_impl *mi)
{
	_Atomic int *lock = (_Atomic int *)(void *)&mi->m.__data.__lock;
	int tid = (int)gettid();
	/* Relaxed: only a word that already holds our own TID (written by our own trylock,
	 * earlier in this thread) passes the test, so there is nothing to synchronize with. */
	if ((atomic_load_explicit(lock, memory_order_relaxed) & FUTEX_TID_MASK) != tid)
		return;
	/* R5: releases the word as glibc's unlock does; pairs with the acquiring CAS in the
	 * next locker's pthread_mutex_*lock() (glibc). */
	int old = atomic_exchange_explicit(lock, 0, memory_order_release);
	if (old & FUTEX_WAITERS)
		(void)futex_wake_word((_Atomic uint32_t *)(void *)lock, 1);
}

static_assert(sizeof(_Atomic int) == sizeof(int), "glibc lock word");

int shmkit_mutex_trylock(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	int r = pthread_mutex_trylock(&mi->m);
	if (SHMKIT__UNLIKELY(r == ENOTRECOVERABLE))
		release_stuck_word(mi);
	return -r;
}

int shmkit_mutex_timedlock(struct shmkit_mutex *m, const struct timespec *deadline)
{
	pthread_mutex_t *pm = &mx_impl(m)->m;
	if (!deadline)
		return -pthread_mutex_lock(pm);
#ifdef SYNC_TSAN
	/* ThreadSanitizer intercepts pthread_mutex_timedlock() but not clocklock(): tell it
	 * about the lock, or it reports the matching unlock as a bug and misses the
	 * happens-before edge. A lock that can fail is a "try" lock in its terms. */
	__tsan_mutex_pre_lock(pm, __tsan_mutex_try_lock);
	int r = pthread_mutex_clocklock(pm, CLOCK_MONOTONIC, deadline);
	__tsan_mutex_post_lock(pm,
			       __tsan_mutex_try_lock |
				       (r == 0 || r == EOWNERDEAD ? 0 : __tsan_mutex_try_lock_failed),
			       0);
	return -r;
#else
	return -pthread_mutex_clocklock(pm, CLOCK_MONOTONIC, deadline);
#endif
}

int shmkit_mutex_consistent(struct shmkit_mutex *m)
{
	return -pthread_mutex_consistent(&mx_impl(m)->m);
}

int shmkit_mutex_unlock(struct shmkit_mutex *m)
{
	return -pthread_mutex_unlock(&mx_impl(m)->m);
}

int shmkit_mutex_destroy(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	/* glibc's destroy does not check robust mutexes for an owner, so check here: a lock
	 * held by anyone, the caller included, is -EBUSY. */
	int r = shmkit_mutex_trylock(m);
	switch (r) {
	case 0:
		(void)pthread_mutex_unlock(&mi->m);
		break;
	case -EOWNERDEAD:
		/* Its owner died: nobody else can hold it now. Release it cleanly (off our
		 * robust list) before destroying it. */
		(void)pthread_mutex_consistent(&mi->m);
		(void)pthread_mutex_unlock(&mi->m);
		break;
	case -ENOTRECOVERABLE:
		break; /* unlocked and unusable: fine to destroy */
	case -EDEADLK:
	case -EBUSY:
		return -EBUSY;
	default:
		return r;
	}
	return -pthread_mutex_destroy(&mi->m);
}

/* --- seqlock --------------------------------------------------------------------------- */

void shmkit_seqlock_init(struct shmkit_seqlock *sl)
{
	/* Relaxed: init runs before the object is shared; publishing the segment orders it. */
	atomic_store_explicit(&sl_impl(sl)->seq, 0, memory_order_relaxed);
}

int shmkit_seqlock_read_begin(const struct shmkit_seqlock *sl, uint32_t *seq)
{
	/* A6: sees the data of every write that ended at or before this sequence; pairs with
	 * R3 in shmkit_seqlock_write_end(). */
	uint32_t s = atomic_load_explicit(&sl_cimpl(sl)->seq, memory_order_acquire);
	*seq = s;
	return (s & 1u) ? -EAGAIN : 0;
}

int shmkit_seqlock_read_end(const struct shmkit_seqlock *sl, uint32_t seq)
{
	/* A7: keeps the data loads before the re-check below. If any of them saw a store made
	 * after a writer's fence R4, this fence synchronizes with R4, so the writer's odd
	 * sequence (or a later one) is visible to the load below; pairs with R4 in
	 * shmkit_seqlock_write_begin(). */
	fence_acquire();
	/* Relaxed: ordered after the data loads by A7. */
	uint32_t s = atomic_load_explicit(&sl_cimpl(sl)->seq, memory_order_relaxed);
	/* An odd `seq` never matches a consistent read: read_begin already refused it. */
	return (s == seq && !(seq & 1u)) ? 0 : -EAGAIN;
}

void shmkit_seqlock_write_begin(struct shmkit_seqlock *sl)
{
	struct seqlock_impl *l = sl_impl(sl);
	/* Relaxed: writers are serialized by the caller, so this reads our own (or the dead
	 * previous writer's) last store. */
	uint32_t s = atomic_load_explicit(&l->seq, memory_order_relaxed);
	/* Even: mark a write in progress. Odd: a writer died mid-write and the sequence
	 * already tells readers to retry; leave it odd and let this write repair the data.
	 * Relaxed: the fence R4 orders it before the data stores. */
	if (!(s & 1u))
		atomic_store_explicit(&l->seq, s + 1, memory_order_relaxed);
	/* R4: keeps the odd sequence before every data store; pairs with A7 in
	 * shmkit_seqlock_read_end(). (When we left a dead writer's odd value, our relaxed
	 * load of it happens before R4, so by read-read coherence a reader synchronized
	 * with R4 sees that odd value or later: the same guarantee.) */
	fence_release();
}

void shmkit_seqlock_write_end(struct shmkit_seqlock *sl)
{
	struct seqlock_impl *l = sl_impl(sl);
	/* Relaxed: single writer, as in write_begin. */
	uint32_t s = atomic_load_explicit(&l->seq, memory_order_relaxed);
	/* (s | 1) + 1 is the next even value whether s is odd (the normal case) or, after a
	 * misuse or a peer's scribble, even: the lock can never be left odd by a completed
	 * write. Wraps through 0, which is even. */
	/* R3: publishes the data stores with the even sequence; pairs with A6 in
	 * shmkit_seqlock_read_begin(). */
	atomic_store_explicit(&l->seq, (s | 1u) + 1u, memory_order_release);
}

/* The copies go word by word with relaxed atomics so that a racing writer is not a data
 * race (the seqlock re-check discards torn results). The shared side decides the
 * alignment: bytes up to an 8-byte boundary, then 8-byte words, then the tail in bytes.
 * Readers and the writer use the same routine on the same addresses, hence the same access
 * sizes. */
void shmkit_seqlock_load(void *dst, const void *src, size_t len)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (len > 0 && ((uintptr_t)s & 7u) != 0) {
		/* Relaxed: the seqlock (A6/A7) orders these loads; see above. */
		*d++ = atomic_load_explicit((const _Atomic unsigned char *)(const void *)s,
					    memory_order_relaxed);
		s++;
		len--;
	}
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		/* Relaxed: as above. */
		uint64_t w = atomic_load_explicit((const _Atomic uint64_t *)(const void *)s,
						  memory_order_relaxed);
		memcpy(d, &w, 8);
	}
	while (len > 0) {
		/* Relaxed: as above. */
		*d++ = atomic_load_explicit((const _Atomic unsigned char *)(const void *)s,
					    memory_order_relaxed);
		s++;
		len--;
	}
}

void shmkit_seqlock_store(void *dst, const void *src, size_t len)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (len > 0 && ((uintptr_t)d & 7u) != 0) {
		/* Relaxed: the seqlock (R3/R4) orders these stores; see above. */
		atomic_store_explicit((_Atomic unsigned char *)(void *)d, *s++, memory_order_relaxed);
		d++;
		len--;
	}
	for (; len >= 8; len -= 8, s += 8, d += 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		/* Relaxed: as above. */
		atomic_store_explicit((_Atomic uint64_t *)(void *)d, w, memory_order_relaxed);
	}
	while (len > 0) {
		/* Relaxed: as above. */
		atomic_store_explicit((_Atomic unsigned char *)(void *)d, *s++, memory_order_relaxed);
		d++;
		len--;
	}
}

int shmkit_seqlock_read(const struct shmkit_seqlock *sl, void *dst, const void *src, size_t len,
			unsigned tries)
{
	if (tries == 0)
		tries = 1000;
	for (unsigned i = 0; i < tries; i++) {
		uint32_t seq;
		if (shmkit_seqlock_read_begin(sl, &seq) == 0) {
			shmkit_seqlock_load(dst, src, len);
			if (shmkit_seqlock_read_end(sl, seq) == 0)
				return 0;
		}
		shmkit__cpu_relax();
	}
	return -EAGAIN;
}

void shmkit_seqlock_write(struct shmkit_seqlock *sl, void *dst, const void *src, size_t len)
{
	shmkit_seqlock_write_begin(sl);
	shmkit_seqlock_store(dst, src, len);
	shmkit_seqlock_write_end(sl);
}
