/* shmkit — synchronization primitives: the robust process-shared mutex.
 * The layouts, the protocols and what a dead peer leaves are at the top of src/sync.c;
 * what the sync files share is in src/sync_impl.h. */
#include "sync_impl.h"

/* --- robust process-shared mutex ------------------------------------------------------- */

/* Owner word values (layout and protocol at the top of src/sync.c). */
#define MX_FREE 0ull
#define MX_NOTREC UINT64_MAX          /* not recoverable, until shmkit_mutex_init() */
#define MX_INCONS (1ull << 62)        /* taken from a dead owner, not yet consistent */
#define MX_TID_MASK 0x3fffffffull     /* bits 32..61: the holder's thread id */
#define MX_TID_MAX (1 << 22)          /* the kernel's PID_MAX_LIMIT: no thread id is above */

/* Bounded spin before a lock sleeps, as SEM_SPIN. */
#define MX_SPIN 128u

/* Attempts per look at the owner word before a lock re-checks its deadline or a trylock
 * says -EBUSY: a peer that rewrites the word non-stop must not keep us in a CAS loop. */
#define MX_CAS_TRIES 64u

/* How hard to look at a holder before calling it alive. */
enum mx_check {
	MX_CHECK_NONE,     /* only malformed words count as dead */
	MX_CHECK_CHEAP,    /* kill(tid, 0): no such thread (one system call) */
	MX_CHECK_THOROUGH, /* and /proc/TID/stat: zombie, or another thread's start time */
};

/* The holder's thread id named by an owner word, or 0 for a word no live thread can have
 * written (bit 63 set, thread id 0 or above PID_MAX_LIMIT): garbage counts as a dead
 * owner. */
static int32_t mx_tid(uint64_t w)
{
	if (w >> 63)
		return 0;
	uint64_t tid = (w >> 32) & MX_TID_MASK;
	return tid == 0 || tid > MX_TID_MAX ? 0 : (int32_t)tid;
}

/* Whether the holder named by w is known to be gone. Only ever errs towards "alive" (the
 * one error that costs time, not mutual exclusion): a thread we cannot see (another
 * user's under hidepid, kill() -> EPERM) counts as alive. */
static bool mx_holder_gone(uint64_t w, enum mx_check how)
{
	int32_t tid = mx_tid(w);
	if (tid == 0)
		return true;
	if (how == MX_CHECK_NONE)
		return false;
	/* No task with this id at all, thread or process: the holder exited (a thread
	 * exiting holding the lock counts as dead, whether or not its process lives on). */
	if (kill((pid_t)tid, 0) < 0 && errno == ESRCH)
		return true;
	if (how == MX_CHECK_CHEAP)
		return false;
	/* /proc/TID/stat describes the thread itself (start time, state), also for a thread
	 * that is not its process's leader. A zombie is gone: a killed process whose parent
	 * has not reaped it yet, or a leader thread that exited while its process lives on. */
	if (!shmkit_pid_alive(tid, 0))
		return true;
	uint64_t start = shmkit_pid_start_ticks(tid);
	/* 0: unreadable (it just exited, or /proc hides it): alive for now, the next slice
	 * looks again. Otherwise a different start time is a reused thread id. */
	return start != 0 && (start & 0xffffffffu) != (w & 0xffffffffu);
}

/* The calling thread's owner word: thread id << 32 | the thread's own start time (low 32
 * bits, clock ticks, /proc/TID/stat) — the same encoding as the process owner words of
 * the channels (shmkit__owner_word), with a thread for the process. The start time keeps
 * a recycled thread id from passing for a dead holder. Cached per thread; a fork()ed child
 * (a new thread id) recomputes it: the atfork handler moves the epoch. */
static _Atomic uint32_t mx_fork_epoch = 1;
static _Thread_local uint64_t mx_self_word;
static _Thread_local uint32_t mx_self_epoch; /* 0: not computed yet */
static pthread_once_t mx_atfork_once = PTHREAD_ONCE_INIT;

static void mx_on_fork_child(void)
{
	/* Relaxed: the child has one thread, the one running this. */
	atomic_fetch_add_explicit(&mx_fork_epoch, 1, memory_order_relaxed);
}

static void mx_register_atfork(void)
{
	/* Cannot fail short of memory; then a forked child keeps its parent's word and its
	 * locks say -EDEADLK / -EPERM rather than break exclusion. */
	(void)pthread_atfork(NULL, NULL, mx_on_fork_child);
}

static uint64_t mx_self_slow(void)
{
	(void)pthread_once(&mx_atfork_once, mx_register_atfork);
	/* Relaxed: only this thread (or the fork child handler, in a child with this thread
	 * alone) looks at the epoch. */
	uint32_t e = atomic_load_explicit(&mx_fork_epoch, memory_order_relaxed);
	int32_t tid = (int32_t)gettid();
	mx_self_word = shmkit__owner_word(tid, shmkit_pid_start_ticks(tid));
	mx_self_epoch = e;
	return mx_self_word;
}

static inline uint64_t mx_self(void)
{
	/* Relaxed: as in mx_self_slow(). */
	if (SHMKIT__LIKELY(mx_self_epoch ==
			   atomic_load_explicit(&mx_fork_epoch, memory_order_relaxed)))
		return mx_self_word;
	return mx_self_slow();
}

/* The futex word: the high half of the owner word (thread id and the INCONS bit). Never
 * accessed as a C object of its own, only handed to the kernel. */
static inline const _Atomic uint32_t *mx_futex(struct mutex_impl *mi)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (const _Atomic uint32_t *)(const void *)((const char *)&mi->owner + 4);
#else
	return (const _Atomic uint32_t *)(const void *)&mi->owner;
#endif
}

/* Looks at the owner word *w (already loaded) and acts on it: takes a free lock (0),
 * takes a dead holder's lock (-EOWNERDEAD), or reports -ENOTRECOVERABLE or -EDEADLK.
 * Returns 1 when a live holder (as far as `how` can tell) holds it, with *w its word. */
static int mx_try(struct mutex_impl *mi, uint64_t me, uint64_t *w, enum mx_check how)
{
	for (unsigned i = 0; i < MX_CAS_TRIES; i++) {
		uint64_t cur = *w;
		if (cur == MX_FREE) {
			/* MX-A1: sees what the previous holder wrote under the lock; pairs with
			 * MX-R1 in shmkit_mutex_unlock(). Failure relaxed: it only reloads *w. */
			if (atomic_compare_exchange_strong_explicit(&mi->owner, w, me,
								    memory_order_acquire,
								    memory_order_relaxed))
				return 0;
			continue;
		}
		if (cur == MX_NOTREC)
			return -ENOTRECOVERABLE;
		if ((cur & ~MX_INCONS) == me)
			return -EDEADLK;
		if (!mx_holder_gone(cur, how))
			return 1;
		/* MX-A2: the dead holder released nothing; acquire orders our reads of the
		 * protected state after the CAS that names us (for the repair). Failure
		 * relaxed: somebody else moved first (another waiter took it): look again. */
		if (atomic_compare_exchange_strong_explicit(&mi->owner, w, me | MX_INCONS,
							    memory_order_acquire,
							    memory_order_relaxed))
			return -EOWNERDEAD;
	}
	return 1; /* the word keeps changing under us: busy */
}

/* The fast path of every lock call: one CAS from free to the caller's word. On failure *w
 * holds the word found. */
static inline bool mx_take_free(struct mutex_impl *mi, uint64_t me, uint64_t *w)
{
	*w = MX_FREE;
	/* MX-A1 (the fast path): pairs with MX-R1 in shmkit_mutex_unlock(). Failure relaxed:
	 * it only reports the word. */
	return atomic_compare_exchange_strong_explicit(&mi->owner, w, me, memory_order_acquire,
						       memory_order_relaxed);
}

static bool bad_deadline(const struct timespec *deadline)
{
	return deadline && (deadline->tv_nsec < 0 || deadline->tv_nsec >= 1000000000L);
}

static int mx_lock_slow(struct mutex_impl *mi, uint64_t me, uint64_t w,
			const struct timespec *deadline)
{
	int r = mx_try(mi, me, &w, MX_CHECK_NONE);
	for (unsigned i = 0; r == 1 && i < MX_SPIN; i++) {
		shmkit__cpu_relax();
		/* Relaxed: a hint; mx_try()'s CAS does the acquiring. */
		uint64_t now = atomic_load_explicit(&mi->owner, memory_order_relaxed);
		if (now != w) {
			w = now;
			r = mx_try(mi, me, &w, MX_CHECK_NONE);
		}
	}
	/* About to sleep: a holder that exited is caught now, for one system call. */
	if (r == 1)
		r = mx_try(mi, me, &w, MX_CHECK_CHEAP);
	if (r != 1)
		return r;
	if (bad_deadline(deadline))
		return -EINVAL;

	/* The /proc look at the holder comes once per slice whatever wakes us meanwhile (a
	 * peer may spam FUTEX_WAKE on the word), and at the deadline. */
	uint64_t look_at = shmkit_now_ns() + SHMKIT__SLICE_NS;
	for (;;) {
		struct timespec until;
		(void)shmkit__slice_until(&until, deadline, SHMKIT__SLICE_NS);
		/* MX-W1: register before the re-check; pairs with MX-N3 in
		 * shmkit_mutex_unlock() (both seq_cst: protocol at the top). */
		atomic_fetch_add_explicit(&mi->sleepers, 1, memory_order_seq_cst);
		/* MX-W3: the re-check, ordered after MX-W1 by seq_cst; pairs with MX-R1. */
		uint64_t cur = atomic_load_explicit(&mi->owner, memory_order_seq_cst);
		int fr = 0;
		if (cur == w)
			fr = shmkit__sync_futex_wait_word(mx_futex(mi), (uint32_t)(w >> 32),
							  &until);
		/* Relaxed: the count is only a hint to unlockers. */
		atomic_fetch_sub_explicit(&mi->sleepers, 1, memory_order_relaxed);

		/* Relaxed: a hint; mx_try()'s CAS does the acquiring. */
		w = atomic_load_explicit(&mi->owner, memory_order_relaxed);
		uint64_t now = shmkit_now_ns();
		bool passed = shmkit__deadline_passed(deadline, now);
		bool look = passed || now >= look_at;
		if (look)
			look_at = now + SHMKIT__SLICE_NS;
		/* Always try to take the lock before reporting a timeout: a wake-up meant for us
		 * must not be lost to our deadline. */
		r = mx_try(mi, me, &w, look ? MX_CHECK_THOROUGH : MX_CHECK_NONE);
		if (r != 1)
			return r;
		if (passed)
			return -ETIMEDOUT;
		if (fr < 0 && fr != -ETIMEDOUT && fr != -EINTR)
			return fr;
	}
}

int shmkit_mutex_init(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	/* Relaxed: init runs before the object is shared (or while nobody uses it);
	 * publishing the segment orders it. */
	atomic_store_explicit(&mi->owner, MX_FREE, memory_order_relaxed);
	atomic_store_explicit(&mi->sleepers, 0, memory_order_relaxed);
	/* The reserved words too, so the 64 bytes are deterministic (and diff cleanly in a
	 * segment dump); nothing reads them. */
	mi->reserved0 = 0;
	memset(mi->reserved, 0, sizeof mi->reserved);
	return 0;
}

int shmkit_mutex_lock(struct shmkit_mutex *m)
{
	return shmkit_mutex_timedlock(m, NULL);
}

int shmkit_mutex_trylock(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	uint64_t me = mx_self(), w;
	if (SHMKIT__LIKELY(mx_take_free(mi, me, &w)))
		return 0;
	int r = mx_try(mi, me, &w, MX_CHECK_CHEAP);
	return r == 1 ? -EBUSY : r;
}

int shmkit_mutex_timedlock(struct shmkit_mutex *m, const struct timespec *deadline)
{
	struct mutex_impl *mi = mx_impl(m);
	uint64_t me = mx_self(), w;
	if (SHMKIT__LIKELY(mx_take_free(mi, me, &w)))
		return 0;
	return mx_lock_slow(mi, me, w, deadline);
}

int shmkit__mutex_lock_for(struct shmkit_mutex *m, uint64_t timeout_ns)
{
	struct mutex_impl *mi = mx_impl(m);
	uint64_t me = mx_self(), w;
	if (SHMKIT__LIKELY(mx_take_free(mi, me, &w)))
		return 0;
	struct timespec deadline;
	return mx_lock_slow(mi, me, w, shmkit_deadline_after(&deadline, timeout_ns));
}

int shmkit_mutex_consistent(struct shmkit_mutex *m)
{
	uint64_t me = mx_self(), w = me | MX_INCONS;
	/* Relaxed: we hold the lock; the flag publishes nothing. */
	return atomic_compare_exchange_strong_explicit(&mx_impl(m)->owner, &w, me,
						       memory_order_relaxed, memory_order_relaxed)
		       ? 0
		       : -EINVAL;
}

int shmkit_mutex_unlock(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	uint64_t me = mx_self();
	/* Relaxed: if the word is ours we wrote it; if a peer rewrote it, the CAS decides. */
	uint64_t w = atomic_load_explicit(&mi->owner, memory_order_relaxed);
	if ((w & ~MX_INCONS) != me)
		return -EPERM;
	/* Unlocked without shmkit_mutex_consistent() after -EOWNERDEAD: never usable again. */
	uint64_t next = (w & MX_INCONS) ? MX_NOTREC : MX_FREE;
	/* MX-R1: publishes the protected state to the next holder (pairs with MX-A1 in the
	 * lock paths); seq_cst: the unlocker's store of the Dekker pair (MX-N1), ordered before
	 * MX-N3 below. Fails only when a peer rewrote the word since the load. */
	if (!atomic_compare_exchange_strong_explicit(&mi->owner, &w, next, memory_order_seq_cst,
						     memory_order_relaxed))
		return -EPERM;
	/* MX-N3: pairs with MX-W1 in mx_lock_slow(); any nonzero value (garbage included)
	 * means "make the system call". Not recoverable: wake everyone to say so. */
	if (atomic_load_explicit(&mi->sleepers, memory_order_seq_cst) != 0)
		(void)shmkit__sync_futex_wake_word(mx_futex(mi), next == MX_NOTREC ? INT_MAX : 1);
	return 0;
}

int shmkit_mutex_destroy(struct shmkit_mutex *m)
{
	struct mutex_impl *mi = mx_impl(m);
	uint64_t me = mx_self();
	/* Relaxed: the CAS below decides. */
	uint64_t w = atomic_load_explicit(&mi->owner, memory_order_relaxed);
	for (unsigned i = 0; i < MX_CAS_TRIES; i++) {
		if (w == MX_NOTREC)
			return 0;
		/* Held by the caller, or by a holder that is alive (a /proc read: destroy is
		 * rare): -EBUSY. A free mutex, or a dead holder's, becomes not recoverable in
		 * one CAS, so that no locker can slip in between the check and the destroy;
		 * using it again needs shmkit_mutex_init(). Relaxed: nothing to publish. */
		if ((w & ~MX_INCONS) == me ||
		    (w != MX_FREE && !mx_holder_gone(w, MX_CHECK_THOROUGH)))
			return -EBUSY;
		if (atomic_compare_exchange_strong_explicit(&mi->owner, &w, MX_NOTREC,
							    memory_order_relaxed,
							    memory_order_relaxed))
			return 0;
	}
	return -EBUSY;
}
