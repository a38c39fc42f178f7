/* shmkit — what the files of the synchronization primitives share (src/sync*.c). Never
 * installed.
 *
 *   src/sync.c        the design (layouts, protocols, dead peers), the event count, the
 *                     counting semaphore, the seqlock
 *   src/sync_futex.c  time (shmkit_now_ns, deadlines) and the raw futex calls
 *   src/sync_mutex.c  the robust process-shared mutex
 * Here: the tunables, the fences, the private layouts behind the public opaque structs
 * with their static_asserts; at the end, what one file calls in another (hidden).
 */
#ifndef SHMKIT_SYNC_IMPL_H
#define SHMKIT_SYNC_IMPL_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "waitq_internal.h"

/* Bounded spin of semaphore waits before they sleep: long enough to catch a post that is
 * already on its way from the other core (~100 ns .. 1 us), short enough not to matter
 * when the wait really has to sleep. */
#define SEM_SPIN 128u

/* CAS attempts per take inside a wait before it re-checks its deadline. Honest contention
 * between a few processes fails a CAS a handful of times at most. */
#define SEM_CAS_TRIES 64u

/* --- fences ---------------------------------------------------------------------------- */

/* gcc's ThreadSanitizer does not model atomic_thread_fence() and says so with -Wtsan, an
 * error under -Werror. Every shared access in src/sync*.c is atomic, so a TSan build loses
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
	_Atomic uint64_t owner;    /* 0 free; holder's word; | MX_INCONS; MX_NOTREC */
	_Atomic uint32_t sleepers; /* hint: nonzero = an unlock makes the FUTEX_WAKE */
	uint32_t reserved0;        /* zero, never read */
	uint64_t reserved[6];      /* zero, never read */
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

static_assert(sizeof(struct mutex_impl) == sizeof(struct shmkit_mutex), "mutex size is ABI");
static_assert(_Alignof(struct mutex_impl) <= _Alignof(struct shmkit_mutex), "mutex align");
static_assert(offsetof(struct mutex_impl, owner) == 0, "mutex layout");
static_assert(offsetof(struct mutex_impl, sleepers) == 8, "mutex layout");
static_assert(sizeof(_Atomic uint64_t) == 8 && _Alignof(_Atomic uint64_t) == 8,
	      "the owner word is a plain, naturally aligned u64 (its high half is a futex word)");

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

/* --- across the sync files ---------------------------------------------------------------- */

/* src/sync_futex.c */
int shmkit__sync_futex_wait_word(const _Atomic uint32_t *word, uint32_t expected,
				 const struct timespec *deadline);
int shmkit__sync_futex_wake_word(const _Atomic uint32_t *word, int count);

#endif
