/* shmkit — pieces shared by every kind that sleeps on shared memory (src/chan.c,
 * src/pubsub.c, src/queue.c, the waitset src/wait.c, the event count src/sync.c): process
 * identity words, the sleep/wake handshake, futex wait queues with a sleeper count, adaptive
 * spinning, deadlines, and fences that gcc's ThreadSanitizer accepts. Never installed.
 *
 * The sleep/wake handshake (docs/design.md, "Sleep/wake handshake", has the long form).
 * A waker makes a condition true with a store X (a position, a slot state: release, so the
 * publish path needs no fence), then loads the sleeper count S. A sleeper adds itself to S,
 * then re-checks X, and only then sleeps. This is Dekker's pattern: store, then load the
 * other's word, on both sides. Without a full barrier between each side's store and load,
 * both loads can run before the other side's store is visible (a store buffer does exactly
 * that), the waker sees no sleeper and the sleeper sees no change: a lost wake-up.
 *
 *     sleeper                                     waker
 *     gen0 = gen (acquire, WQ-A1)                 X = v (release: the kind's R-label)
 *     S += 1                                      [WQ-F2: fence seq_cst, fenced mode only]
 *     WQ-B1: membarrier(GLOBAL_EXPEDITED)         if (S == 0) done   (relaxed load)
 *            (fenced mode: fence seq_cst)         gen += 1 (release, WQ-R1)
 *     re-check X (acquire)                        FUTEX_WAKE(gen)
 *     FUTEX_WAIT(gen, gen0, liveness slice)
 *     S -= 1
 *
 * Asymmetric mode (every attached process registered with MEMBARRIER_CMD_REGISTER_GLOBAL_
 * EXPEDITED): WQ-B1 runs a full memory barrier on every CPU that runs a thread of a
 * registered process, and on the caller, before it returns; a registered thread that is not
 * running passes a barrier (the context switch) before it runs again. Take the point where
 * the waker's CPU executes that barrier. If it comes after the waker's store X, X is
 * globally visible before WQ-B1 returns, so the re-check (after WQ-B1) sees X. If it comes
 * before the store X, the waker's later load of S is ordered after that barrier, which is
 * ordered after the sleeper's S += 1 (sequenced before the system call): the waker sees the
 * sleeper, bumps gen (so a FUTEX_WAIT that has not started yet returns at once, the kernel
 * compares gen under its lock) and wakes it. No fence on the publish path; the 1.5 µs
 * system call is paid only by a process that is about to sleep anyway.
 *
 * Fenced mode (membarrier missing or refused, SHMKIT_NO_MEMBARRIER=1, or a peer that did
 * not register): both sides execute a seq_cst fence (WQ-F2 and WQ-B1). In C11's total order
 * of seq_cst fences one comes first; the side after it sees the other's store. Which mode a
 * waker uses is read from the wait queue's `fenced` word on every wake (same line as S, so
 * no extra cache miss): any process that attaches without taking part in the asymmetric
 * protocol sets it (shmkit__wq_attach) before it can sleep or wake. A waker that is itself
 * unregistered therefore always fences (it reads its own store).
 *
 * The late attacher. A registered waker may have loaded `fenced` = 0 just before an
 * unregistered process set it. That attacher therefore issues one MEMBARRIER_CMD_GLOBAL_
 * EXPEDITED after setting the flag when the system call is available to it (the flag is
 * the unregistered attacher's store, the waker's load of it the load): every waker's load
 * of `fenced` after that barrier sees 1 and fences; a wake whose load of `fenced` ran
 * before it had its store X ordered before the barrier too, so X is visible to every
 * re-check the attacher makes later. When the call is not available to the attacher
 * (seccomp refusing membarrier in one process while its peers use it) that window stays
 * open for wakes racing the attach itself; the attacher's first sleeps are then bounded by
 * the 100 ms liveness slice like any other, and a slice that ends with the condition true
 * and the generation unchanged is counted (below) — a count of zero is the proof.
 *
 * No timing is part of the argument. Sleeps are cut into liveness slices (100 ms: is the
 * peer still alive?). A slice that ends, finds the condition true and the generation
 * unchanged is a wake-up the handshake should have delivered: it is counted in the
 * segment's `wq_missed` (src/internal.h), shown by `shmkit stat`, and every test and
 * benchmark asserts it stays 0.
 *
 * ThreadSanitizer does not model membarrier (nor the store buffer: it executes the
 * handshake sequentially consistently), so it can neither confirm nor refute it; what it
 * checks — that payload bytes are ordered by the kinds' release/acquire pairs — does not
 * depend on it. The TSan build uses the asymmetric mode like the others.
 *
 * A sleeper killed while counted leaves S one too high: the waker then makes one needless
 * system call per wake, never a wrong decision.
 */
#ifndef SHMKIT_WAITQ_INTERNAL_H
#define SHMKIT_WAITQ_INTERNAL_H

#include <time.h>

#include "internal.h"

/* --- fences ------------------------------------------------------------------------------
 * gcc 12's ThreadSanitizer does not model atomic_thread_fence() and rejects it with -Wtsan
 * (an error under -Werror). src/sync.c explains why silencing that one warning is sound for
 * code whose every shared access is atomic; the same holds here: the fences still execute,
 * TSan just does not derive happens-before from them, and nothing in these modules relies
 * on TSan doing so (payload bytes that race on purpose — overwrite-mode pub/sub — are
 * copied with relaxed atomics). */
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define SHMKIT__WQ_TSAN_PRAGMAS 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif

static inline void shmkit__fence_acquire(void)
{
	atomic_thread_fence(memory_order_acquire);
}

static inline void shmkit__fence_release(void)
{
	atomic_thread_fence(memory_order_release);
}

static inline void shmkit__fence_seq_cst(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}

#ifdef SHMKIT__WQ_TSAN_PRAGMAS
#pragma GCC diagnostic pop
#undef SHMKIT__WQ_TSAN_PRAGMAS
#endif

/* --- identity ---------------------------------------------------------------------------
 * A process is named in shared memory by one 64-bit word, pid << 32 | (start time & 2^32-1),
 * as in src/chan.c: the start time keeps a recycled pid from passing for a dead owner. */

static inline uint64_t shmkit__owner_word(int32_t pid, uint64_t start)
{
	return (uint64_t)(uint32_t)pid << 32 | (start & 0xffffffffu);
}

/* This process's word (reads /proc: call once per handle, not per operation). */
uint64_t shmkit__self_owner(void);

/* 1 alive, 0 no owner (w == 0), -1 dead (or a word that names no live process). Reads
 * /proc: slow paths only. */
int shmkit__owner_state(uint64_t w);

/* --- deadlines --------------------------------------------------------------------------- */

static inline uint64_t shmkit__ts_ns(const struct timespec *ts)
{
	return (uint64_t)ts->tv_sec * 1000000000ull + (uint64_t)ts->tv_nsec;
}

static inline bool shmkit__deadline_passed(const struct timespec *deadline, uint64_t now)
{
	return deadline && now >= shmkit__ts_ns(deadline);
}

/* Longest sleep between liveness checks (as in src/chan.c). */
#define SHMKIT__SLICE_NS 100000000ull

/* Sets *until to the earlier of `deadline` (NULL = none) and now + slice_ns; returns
 * whether the deadline is the earlier one. */
bool shmkit__slice_until(struct timespec *until, const struct timespec *deadline,
			 uint64_t slice_ns);

/* --- the handshake's per-process and per-segment state ------------------------------------ */

struct shmkit_segment;

/* What a handle needs to take part in the handshake, filled by shmkit__wq_attach(). */
struct shmkit__wq {
	bool asym;                 /* this handle's sleeps use membarrier (WQ-B1) */
	_Atomic uint64_t *missed;  /* the segment's wq_missed counter (src/internal.h) */
};

/* Whether this process registered for MEMBARRIER_CMD_GLOBAL_EXPEDITED (tried once, on
 * first use; never when SHMKIT_NO_MEMBARRIER=1 is set then). */
bool shmkit__wq_registered(void);

/* Joins the handshake of a segment whose wait queues are qs[0..n-1]: called by every
 * handle that sleeps or wakes on them, before its first sleep or wake. When this process
 * does not take part in the asymmetric mode (not registered, or SHMKIT_NO_MEMBARRIER=1 in
 * its environment now), sets each queue's `fenced` word and the segment's WQ_FENCED flag,
 * then closes the late-attacher window (top of file). Fills *w. */
struct shmkit__waitq;
void shmkit__wq_attach(struct shmkit__wq *w, struct shmkit_segment *seg,
		       struct shmkit__waitq *const *qs, unsigned n);

/* Issues MEMBARRIER_CMD_GLOBAL_EXPEDITED for a caller that need not be registered itself
 * (the work queue's lease join, src/queue.c): true when the barrier ran, false when the
 * system call is missing or refused (or SHMKIT_NO_MEMBARRIER=2 says to act so). */
bool shmkit__membarrier_global(void);

/* The sleeper's barrier WQ-B1 (and the joiner's in pub/sub). */
void shmkit__wq_barrier(const struct shmkit__wq *w);

/* The waker's side of the barrier: WQ-F2 when the queue is in fenced mode. */
static inline void shmkit__wq_waker_barrier(const _Atomic uint32_t *fenced)
{
	/* Relaxed: the flag only selects the mode; the late-attacher argument (top of file)
	 * covers a stale 0. */
	if (SHMKIT__UNLIKELY(atomic_load_explicit(fenced, memory_order_relaxed)))
		shmkit__fence_seq_cst(); /* WQ-F2: pairs with WQ-B1 in fenced mode */
}

/* --- wait queues --------------------------------------------------------------------------- */

/* 16 bytes in shared memory, given its own cache line by the layouts that embed it. */
struct shmkit__waitq {
	_Atomic uint32_t gen;      /* futex word */
	_Atomic uint32_t sleepers; /* a hint: zero means nobody needs a FUTEX_WAKE */
	_Atomic uint32_t fenced;   /* nonzero: wakers fence (WQ-F2); set by shmkit__wq_attach */
	uint32_t reserved;
};
static_assert(sizeof(struct shmkit__waitq) == 16, "wait queue layout");
static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "futex word is a plain u32");

/* Waker side, part 1 (inline): call right after the store that made the condition true.
 * Returns whether somebody sleeps. */
static inline bool shmkit__waitq_pending(struct shmkit__waitq *q)
{
	shmkit__wq_waker_barrier(&q->fenced);
	/* Relaxed: the load half of the handshake; WQ-B1 (or WQ-F2) orders it. */
	return atomic_load_explicit(&q->sleepers, memory_order_relaxed) != 0;
}

/* Waker side, part 2: bumps the generation and wakes up to `n` sleepers. */
static inline void shmkit__waitq_wake_now(struct shmkit__waitq *q, int n)
{
	/* WQ-R1: pairs with WQ-A1 in shmkit__waitq_sleep(); a FUTEX_WAIT on the old value now
	 * fails at once. */
	atomic_fetch_add_explicit(&q->gen, 1, memory_order_release);
	shmkit_futex_wake((uint32_t *)(void *)&q->gen, n);
}

/* Both parts: returns whether it made the system call. */
static inline bool shmkit__waitq_wake(struct shmkit__waitq *q, int n)
{
	if (!shmkit__waitq_pending(q))
		return false;
	shmkit__waitq_wake_now(q, n);
	return true;
}

/* Counts a wake-up the handshake did not deliver: a liveness slice ended with the condition
 * true and the futex word `gen` still at gen0 (nobody bumped it: no waker saw us). */
void shmkit__wq_count_missed(const struct shmkit__wq *w, const _Atomic uint32_t *gen,
			     uint32_t gen0, bool ready);

/* Sleeper side. `ready(ctx)` is the re-check (acquire loads suffice after WQ-B1). Sleeps at
 * most until the earlier of `deadline` and slice_ns from now. Returns 0 (ready or woken:
 * re-try the operation), 1 (the slice ended: check peer liveness, then re-try),
 * -ETIMEDOUT (the deadline passed), -EINTR. *slept is set when a FUTEX_WAIT was really
 * made. */
int shmkit__waitq_sleep(struct shmkit__waitq *q, const struct shmkit__wq *w,
			bool (*ready)(void *), void *ctx, const struct timespec *deadline,
			uint64_t slice_ns, bool *slept);

/* --- adaptive spinning ------------------------------------------------------------------ */

struct shmkit__spin {
	uint32_t max; /* ns; 0 = never spin */
	uint32_t cur; /* ns, halves after a spin that did not pay, doubles after one that did */
	uint64_t started; /* when the current wait began (ns), for shmkit__spin_learn() */
};

/* max_ns 0 = default (50 µs); no_spin or a single allowed CPU = never spin. */
void shmkit__spin_init(struct shmkit__spin *s, uint32_t max_ns, bool no_spin);

/* Polls ready(ctx) (cheap acquire loads) for up to s->cur ns. Returns true when ready. */
bool shmkit__spin_wait(struct shmkit__spin *s, bool (*ready)(void *), void *ctx);

/* After a wait that spun in vain and then slept: when the whole wait was shorter than the
 * spin budget, a spin that long would have paid, so the next spin gets that long and half
 * again. Without this the budget, once halved down to its floor, never grows while every
 * wait is longer than the floor (every message then sleeps). */
void shmkit__spin_learn(struct shmkit__spin *s);

/* --- waitset sources ------------------------------------------------------------------------
 * What src/wait.c needs to wait on one channel: the futex word its wakers bump, the sleeper
 * count they check, and a poll function that reads shared memory only (never the handle's
 * private state, which the thread owning the handle may be changing meanwhile), so a
 * waitset may poll from any thread. */
struct shmkit__watch {
	_Atomic uint32_t *gen;
	_Atomic uint32_t *sleepers;
	/* SHMKIT_WAIT_* bits of what is ready now; sc = the re-check after registering as a
	 * sleeper and WQ-B1 (seq_cst loads, as cheap as acquire on the machines we run on). */
	unsigned (*poll)(const void *src, bool sc);
	/* 1 when the peer whose messages we wait for is known dead (reads /proc: slow). */
	int (*peer_dead)(const void *src);
	/* NULL, or (a work queue) repairs the slots dead processes hold, from any thread;
	 * returns how many (reads /proc: slow). */
	int (*repair)(const void *src);
	const void *src;
	const struct shmkit__wq *wq; /* the handle's handshake state; NULL for an event */
};

struct shmkit_pubsub;
struct shmkit_queue;
struct shmkit_chan;

/* Fill *w for a subscriber / a queue handle; -EPERM for other roles. */
int shmkit__pubsub_watch(const struct shmkit_pubsub *ps, struct shmkit__watch *w);
int shmkit__queue_watch(const struct shmkit_queue *q, struct shmkit__watch *w);

#endif
