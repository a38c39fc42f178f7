/* shmkit — pieces shared by the multi-party channels (src/pubsub.c, src/queue.c) and the
 * waitset (src/wait.c): process identity words, futex wait queues with a sleeper count,
 * adaptive spinning, deadlines, and fences that gcc's ThreadSanitizer accepts. Never
 * installed.
 *
 * The wait queue is the protocol of src/chan.c (see its top comment), factored out so the
 * new channels and the waitset speak exactly the same one:
 *
 *     sleeper                                   waker
 *     gen0 = gen (acquire, A-wq)                store what the sleeper waits for (seq_cst)
 *     sleepers += 1 (seq_cst)                   load sleepers (seq_cst); 0: done
 *     re-check the condition (seq_cst loads)    gen += 1 (release, R-wq)
 *     FUTEX_WAIT(gen, gen0, slice)              FUTEX_WAKE(gen, n)
 *     sleepers -= 1
 *
 * Both sides store then load in the single seq_cst order, so either the sleeper's re-check
 * sees the change or the waker sees the sleeper; the gen bump makes a FUTEX_WAIT that has
 * not started yet return at once. A sleeper killed while counted leaves `sleepers` one too
 * high: the waker then makes one needless system call per wake, never a wrong decision.
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

/* --- wait queues --------------------------------------------------------------------------- */

/* 8 bytes in shared memory, given its own cache line by the layouts that embed it. */
struct shmkit__waitq {
	_Atomic uint32_t gen;      /* futex word */
	_Atomic uint32_t sleepers; /* a hint: zero means nobody needs a FUTEX_WAKE */
};
static_assert(sizeof(struct shmkit__waitq) == 8, "wait queue layout");
static_assert(sizeof(_Atomic uint32_t) == sizeof(uint32_t), "futex word is a plain u32");

/* Waker side: call right after the seq_cst store that made the condition true. Wakes up
 * to `n` sleepers when somebody sleeps; returns whether it made the system call. */
static inline bool shmkit__waitq_wake(struct shmkit__waitq *q, int n)
{
	/* seq_cst: the load half of the Dekker handshake (top of this file). */
	if (atomic_load_explicit(&q->sleepers, memory_order_seq_cst) == 0)
		return false;
	/* R-wq: pairs with A-wq in shmkit__waitq_sleep(); a FUTEX_WAIT on the old value now
	 * fails at once. */
	atomic_fetch_add_explicit(&q->gen, 1, memory_order_release);
	shmkit_futex_wake((uint32_t *)(void *)&q->gen, n);
	return true;
}

/* Settling, for wait queues whose wakers publish with a plain release store instead of a
 * seq_cst one (the stream channel's positions, src/chan.c). A seq_cst store is a full
 * fence: on x86 it stalls the publisher until every record line it wrote has been fetched
 * for writing, which cost a third of the stream's per-message throughput.
 *
 * Without the store-load order the handshake above can miss once: the waker's store still
 * sits in its store buffer when the sleeper re-checks, and the waker's load of `sleepers`
 * ran before the sleeper's registration became visible. (Measured on the 2-CPU test VM,
 * blocking ping-pong, re-check then sleep: about 3 misses in 10,000 sleeps.) Such a
 * waker made its store before the registration was visible, and a store drains from the
 * store buffer within a fraction of a microsecond; so after registering, the sleeper keeps
 * re-checking for SHMKIT__SETTLE_NS before it sleeps (the same test: no miss in 94,000
 * sleeps with half that time), and any later waker sees the registration. As a safety net
 * the first FUTEX_WAIT lasts at most SHMKIT__SETTLE_NET_NS and is followed by one more
 * re-check: C11 only promises that a store becomes visible "within a reasonable amount of
 * time", so a miss costs at most that long, never a hang. (A much shorter net is not
 * free: on the test VM a timer due within a millisecond made every futex wake-up slower,
 * doubling the blocking round trip at 50 µs.) */
#define SHMKIT__SETTLE_NS 1000u
#define SHMKIT__SETTLE_NET_NS 10000000ull

/* Re-checks ready(ctx) for SHMKIT__SETTLE_NS; returns whether it became true. */
bool shmkit__settle(bool (*ready)(void *), void *ctx);

/* Sleeper side. `ready(ctx)` is the seq_cst re-check. Sleeps at most until the earlier of
 * `deadline` and slice_ns from now; `settle`: the waker publishes with a release store,
 * so settle first and cap the first sleep (SHMKIT__SETTLE_NS). Returns 0 (ready or woken:
 * re-try the operation), 1 (the slice ended: check peer liveness, then re-try),
 * -ETIMEDOUT (the deadline passed), -EINTR. *slept is set when a FUTEX_WAIT was really
 * made. */
int shmkit__waitq_sleep(struct shmkit__waitq *q, bool (*ready)(void *), void *ctx,
			const struct timespec *deadline, uint64_t slice_ns, bool settle,
			bool *slept);

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
	/* SHMKIT_WAIT_* bits of what is ready now; sc = seq_cst loads (the re-check after
	 * registering as a sleeper). */
	unsigned (*poll)(const void *src, bool sc);
	/* 1 when the peer whose messages we wait for is known dead (reads /proc: slow). */
	int (*peer_dead)(const void *src);
	/* NULL, or (a work queue) repairs the slots dead processes hold, from any thread;
	 * returns how many (reads /proc: slow). */
	int (*repair)(const void *src);
	const void *src;
};

struct shmkit_pubsub;
struct shmkit_queue;
struct shmkit_chan;

/* Fill *w for a subscriber / a queue handle; -EPERM for other roles. */
int shmkit__pubsub_watch(const struct shmkit_pubsub *ps, struct shmkit__watch *w);
int shmkit__queue_watch(const struct shmkit_queue *q, struct shmkit__watch *w);

#endif
