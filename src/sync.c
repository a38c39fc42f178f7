/* shmkit — synchronization primitives that live inside shared memory.
 *
 * Every object here is a small block of words that any number of processes map, possibly at
 * different addresses: no pointers, only 32- and 64-bit atomics (lock-free, so the lock
 * state lives in the word itself and works across processes) and shared (non-private)
 * FUTEX_WAIT / FUTEX_WAKE. Nothing here trusts a word it reads (see "Hostile peers").
 *
 * Layouts (offsets in bytes; every field is written by any process using the object):
 *
 *   event (8 bytes, align 4)            sem (8 bytes, align 4)
 *     0  4  gen       futex word         0  4  value     futex word, 0..INT32_MAX
 *     4  4  sleepers  hint, wraps        4  4  sleepers  hint, wraps
 *
 *   mutex (64 bytes, align 8)                                   seqlock (4 bytes, align 4)
 *     0  8  owner     written by the lockers (CAS) and holder:    0  4  seq  odd while a
 *                       0                 free                              write is in
 *                       T << 32 | S       held by thread T, whose           progress
 *                                         start time is S (low 32 bits)
 *                       ... | 1 << 62     held, taken from a dead holder,
 *                                         not yet consistent (INCONS)
 *                       all ones          not recoverable (NOTREC)
 *                       anything else     malformed: a dead holder
 *                     bytes 4..7 (the high half: T and INCONS) are the futex word
 *     8  4  sleepers  hint, wraps (waiters)
 *    12 52  zero      reserved, never read
 *
 * Waiting protocol (event and sem). A waiter must never sleep through the change it waits
 * for, yet a notifier should not pay a FUTEX_WAKE system call when nobody sleeps. The two
 * sides are a Dekker pair over two words, each side storing to one and then loading the
 * other with a sequentially consistent fence in between:
 *
 *     waiter                                      notifier
 *     EV-W1 sleepers += 1                         EV-N1 gen += 1 (sem: value += 1)
 *     EV-W2 fence(seq_cst)                        EV-N2 fence(seq_cst)
 *     EV-W3 load gen; if changed (sem: nonzero)   EV-N3 load sleepers; if 0: done
 *           undo EV-W1, done
 *     EV-W4 FUTEX_WAIT(gen, old)                  EV-N4 FUTEX_WAKE(gen)
 *     EV-W5 sleepers -= 1
 *
 * The fences EV-W2 and EV-N2 are totally ordered. If EV-W2 comes first, EV-N3 sees EV-W1 (C11's
 * rule for seq_cst fences: a load sequenced after fence Y sees a store sequenced before fence X, or
 * a later one, when X precedes Y), so the notifier calls FUTEX_WAKE. If EV-N2 comes first, EV-W3
 * sees EV-N1 and the waiter does not sleep. The remaining window — EV-W3 saw the old value, then
 * EV-N1..EV-N4 ran before EV-W4 entered the kernel — is closed by the kernel: FUTEX_WAIT re-reads
 * the word under the futex hash-bucket lock and returns EAGAIN when it differs, and
 * FUTEX_WAKE takes the same lock. So no wake-up is lost, and a notify with nobody asleep
 * costs one RMW, one fence and one load. The semaphore wakes one sleeper per post: every
 * post adds one unit and one wake-up, and a woken sleeper that finds its unit taken lost
 * it to a taker that did not need a wake-up, so units and wake-ups stay balanced.
 *
 * The mutex. Locking is one CAS of the owner word from 0 to the caller's own word (MX-A1),
 * unlocking one CAS from its own word back to 0 (MX-R1): the word names the holder
 * atomically with the acquisition, and it is the same encoding as the channels' process
 * owner words (shmkit__owner_word) with the thread id for the pid and the thread's own
 * start time (/proc/TID/stat) — so that a thread can be told from its siblings
 * (-EDEADLK on relock, -EPERM on a foreign unlock) and a thread that exits holding the
 * lock counts as dead even while its process lives on. A locker that finds the word held
 * spins briefly, then sleeps on the futex word — the owner word's high half — with the
 * same Dekker pair as above, the owner word playing `gen`:
 *
 *     waiter (mx_lock_slow)                       unlocker (shmkit_mutex_unlock)
 *     MX-W1 sleepers += 1          (seq_cst)      MX-N1 CAS owner: mine -> 0  (seq_cst, MX-R1)
 *     MX-W3 load owner; if not the held value     MX-N3 load sleepers (seq_cst); if 0: done
 *           w it saw: undo MX-W1, look again
 *     MX-W4 FUTEX_WAIT(high half, high(w))        MX-N4 FUTEX_WAKE(high half, 1)
 *     MX-W5 sleepers -= 1
 *
 * Here the four accesses are seq_cst operations rather than relaxed ones around fences:
 * they are in one total order, so if MX-N3 precedes MX-W1, MX-W3 comes after MX-N1 and sees it (or
 * a later value), and otherwise MX-N3 sees MX-W1 and wakes. On x86 that costs the unlock nothing
 * beyond its locked CAS (a seq_cst load is a plain load) — no fence, and no second RMW as a
 * separate generation word would need. The kernel compares only the high half (thread id
 * and INCONS): if the lock was released and re-taken by the same thread before the
 * waiter's FUTEX_WAIT, the waiter sleeps on a held lock whose coming unlock is after its
 * MX-W1 and so wakes it — a release that is superseded by a new hold needs no wake-up of its
 * own. Unlock wakes one sleeper; a woken sleeper always tries to take the lock before it
 * reports a timeout, so a wake-up is never wasted on a waiter that gives up while the
 * lock is free.
 *
 * Liveness. A held word names a thread T with start time S. T is dead when kill(T, 0)
 * says ESRCH (cheap: one system call), or when /proc/T/stat shows a zombie or another
 * start time (a recycled id; a /proc read of a few microseconds). Unreadable (hidepid,
 * EPERM) counts as alive: the check errs only towards waiting, never towards breaking
 * mutual exclusion. Malformed words (bit 63, or T outside 1..PID_MAX_LIMIT) are dead
 * without a look. Who looks, how hard:
 *   trylock            the cheap check when it finds the lock held (one system call)
 *   lock, timedlock    the cheap check once before the first sleep; the /proc check
 *                      once per 100 ms slice of waiting (whatever wakes the waiter in
 *                      between), and at the deadline before -ETIMEDOUT
 *   destroy            the /proc check
 * A dead holder's word is replaced by CAS with the taker's own | INCONS (MX-A2), which
 * returns -EOWNERDEAD. shmkit_mutex_consistent() clears INCONS; an unlock with INCONS set
 * stores NOTREC instead of 0 and wakes every sleeper, which then return -ENOTRECOVERABLE,
 * as every later lock does until shmkit_mutex_init(). destroy stores NOTREC too (by CAS,
 * from a free or dead word), so a locker cannot slip in between its check and the end.
 * The caller's own word is computed once per thread (a /proc read on its first lock) and
 * cached in thread-local storage; a pthread_atfork() child handler invalidates the cache,
 * so a fork()ed child (a new thread id) never passes for its parent.
 *
 * When a process dies. A waiter killed between EV-W1 and EV-W5 leaves `sleepers` one too high
 * for good: a cost, not a fault (notifiers make a FUTEX_WAKE that wakes nobody). A notifier
 * killed between EV-N1 and EV-N4, or a semaphore waiter killed after a post woke it but before it
 * took the unit, takes a wake-up with it: the remaining sleepers wake at the next notify or
 * post, or at their deadline — which is why every shmkit wait has one, and why the higher
 * layers check peer liveness on timeout. A mutex holder that dies (kill -9, a crash, a
 * thread that exits) leaves its word in place: a trylock or a lock about to sleep sees at
 * once that T is gone (ESRCH), a waiter already asleep sees it at the end of its slice
 * (100 ms), and a zombie holder (not reaped yet) is seen at the slice's /proc check; the
 * first to CAS the word gets -EOWNERDEAD. An unlocker killed between MX-N1 and MX-N4 takes a
 * wake-up with it: the lock is free and the sleepers find it so at the end of their
 * slice. A taker killed after MX-A2 is itself a dead holder (INCONS set: the next taker
 * gets -EOWNERDEAD too). What is not seen: a process that execve()s while it holds a lock
 * (its threads' ids and start times live on in the new image, which cannot unlock), and
 * holders in another pid namespace (thread ids are per namespace, as every owner word in
 * shmkit). A seqlock writer killed mid-write leaves the sequence odd: readers get -EAGAIN
 * (they never wait on it unboundedly) until the next writer's write_begin/write_end
 * repairs it.
 *
 * Hostile peers. Any word here may be overwritten by another process at any time. The code
 * uses `sleepers` only as "zero or not" and updates it with wrapping unsigned arithmetic, so
 * garbage costs at most spurious system calls (or, if a peer zeroes it, a wake-up as late
 * as the deadline — for the mutex, as late as the end of the slice). Semaphore values
 * above INT32_MAX cannot come from shmkit_sem_post();
 * waits still treat them as positive (unsigned arithmetic, no UB) while posts refuse to go
 * higher (-EOVERFLOW), so the value never wraps to 0. Every wait loop over shared words is
 * bounded or checks the caller's deadline, so a peer that keeps rewriting a word can delay
 * a wait until its deadline but not past it (shmkit_sem_post() and shmkit_sem_trywait()
 * retry their CAS for as long as other processes keep changing the value: lock-free, like
 * any CAS loop, not wait-free). The mutex's owner word is only ever compared, CASed and
 * handed to FUTEX_WAIT as a value — never followed as a pointer, never used as an index —
 * and every value has a defined meaning (table above), so a scribbled word is, to every
 * caller, one of: free, held by a live thread (wait: until the deadline, or for ever
 * without one — the one thing a peer can make block, as a peer that takes any lock and
 * never releases it can), held by a dead one (-EOWNERDEAD: repair and go on), not
 * recoverable (-ENOTRECOVERABLE), or the caller's own (-EDEADLK on lock, an unlock that
 * succeeds). A peer can of course break mutual exclusion by writing 0 over a held word;
 * what it cannot do is make the library crash, run anything but the plain atomics and
 * futex calls above, or write outside the 12 bytes of the owner word and the sleeper
 * count. The reserved bytes (where a glibc pthread_mutex_t kept its kind and its
 * robust-list pointers) are never read.
 */

/* The code is split by concern (time and futex, the mutex): the list of files is at the top
 * of src/sync_impl.h. */
#include "sync_impl.h"

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
	/* EV-A1: sees the notifier's writes once the generation moved; pairs with EV-R1 in
	 * shmkit_event_notify(). */
	return atomic_load_explicit(&ev_cimpl(ev)->gen, memory_order_acquire);
}

int shmkit_event_wait(struct shmkit_event *ev, uint32_t gen, const struct timespec *deadline,
		      unsigned spin)
{
	struct event_impl *e = ev_impl(ev);

	for (unsigned i = 0; i < spin; i++) {
		/* EV-A2: as EV-A1, for waiters that catch the notify while spinning; pairs with
		 * EV-R1 in shmkit_event_notify(). */
		if (atomic_load_explicit(&e->gen, memory_order_acquire) != gen)
			return 0;
		shmkit__cpu_relax();
	}

	for (;;) {
		/* EV-W1: register as a sleeper before the final check (see the protocol above). */
		atomic_fetch_add_explicit(&e->sleepers, 1, memory_order_seq_cst);
		/* EV-W2: orders EV-W1 before EV-W3; pairs with EV-N2 in shmkit_event_notify(). */
		fence_seq_cst();
		/* EV-A3: EV-W3, the final check; pairs with EV-R1 in shmkit_event_notify(). */
		if (atomic_load_explicit(&e->gen, memory_order_acquire) != gen) {
			/* Relaxed: the count is only a hint to notifiers; a stale higher value
			 * costs them a system call, never a lost wake-up. */
			atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_relaxed);
			return 0;
		}
		int r = shmkit__sync_futex_wait_word(&e->gen, gen, deadline);
		/* Relaxed: as above (EV-W5). */
		atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_relaxed);

		/* EV-A4: woken (or not) — did the generation move? pairs with EV-R1 in
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
	/* EV-R1: EV-N1, publishes the caller's writes before the notify; pairs with EV-A1 in
	 * shmkit_event_prepare() and EV-A2..EV-A4 in shmkit_event_wait(). */
	atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
	/* EV-N2: orders EV-N1 before EV-N3; pairs with EV-W2 in shmkit_event_wait(). */
	fence_seq_cst();
	/* Relaxed (EV-N3): the fence EV-N2 already orders this load; any nonzero value, garbage
	 * included, just means "make the system call". */
	if (atomic_load_explicit(&e->sleepers, memory_order_relaxed) == 0)
		return 0;
	int r = shmkit__sync_futex_wake_word(&e->gen, INT_MAX);
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
		/* EV-R2: EV-N1, publishes the poster's writes to whoever takes this unit; pairs
		 * with EV-A5 in sem_take(). Failure relaxed: it only reloads v for the next try. */
	} while (!atomic_compare_exchange_weak_explicit(&s->value, &v, v + 1, memory_order_release,
							memory_order_relaxed));
	/* EV-N2: orders the increment before the sleeper check; pairs with EV-W2' in
	 * sem_sleep(). */
	fence_seq_cst();
	/* Relaxed (EV-N3): ordered by the fence; nonzero (garbage included) means "wake". */
	if (atomic_load_explicit(&s->sleepers, memory_order_relaxed) != 0)
		(void)shmkit__sync_futex_wake_word(&s->value, 1);
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
		/* EV-A5: sees the writes of the post that produced this unit; pairs with EV-R2 in
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
	/* EV-W1': register before the final check (see the protocol at the top). */
	atomic_fetch_add_explicit(&s->sleepers, 1, memory_order_seq_cst);
	/* EV-W2': pairs with EV-N2 in shmkit_sem_post(). */
	fence_seq_cst();
	int r = 0;
	/* Relaxed (EV-W3'): ordered by EV-W2'; the take that follows does the acquiring. */
	if (atomic_load_explicit(&s->value, memory_order_relaxed) == 0)
		r = shmkit__sync_futex_wait_word(&s->value, 0, deadline);
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

/* --- seqlock --------------------------------------------------------------------------- */

void shmkit_seqlock_init(struct shmkit_seqlock *sl)
{
	/* Relaxed: init runs before the object is shared; publishing the segment orders it. */
	atomic_store_explicit(&sl_impl(sl)->seq, 0, memory_order_relaxed);
}

int shmkit_seqlock_read_begin(const struct shmkit_seqlock *sl, uint32_t *seq)
{
	/* SEQ-A6: sees the data of every write that ended at or before this sequence; pairs with
	 * SEQ-R3 in shmkit_seqlock_write_end(). */
	uint32_t s = atomic_load_explicit(&sl_cimpl(sl)->seq, memory_order_acquire);
	*seq = s;
	return (s & 1u) ? -EAGAIN : 0;
}

int shmkit_seqlock_read_end(const struct shmkit_seqlock *sl, uint32_t seq)
{
	/* SEQ-A7: keeps the data loads before the re-check below. If any of them saw a store made
	 * after a writer's fence SEQ-R4, this fence synchronizes with SEQ-R4, so the writer's odd
	 * sequence (or a later one) is visible to the load below; pairs with SEQ-R4 in
	 * shmkit_seqlock_write_begin(). */
	fence_acquire();
	/* Relaxed: ordered after the data loads by SEQ-A7. */
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
	 * Relaxed: the fence SEQ-R4 orders it before the data stores. */
	if (!(s & 1u))
		atomic_store_explicit(&l->seq, s + 1, memory_order_relaxed);
	/* SEQ-R4: keeps the odd sequence before every data store; pairs with SEQ-A7 in
	 * shmkit_seqlock_read_end(). (When we left a dead writer's odd value, our relaxed
	 * load of it happens before SEQ-R4, so by read-read coherence a reader synchronized
	 * with SEQ-R4 sees that odd value or later: the same guarantee.) */
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
	/* SEQ-R3: publishes the data stores with the even sequence; pairs with SEQ-A6 in
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
		/* Relaxed: the seqlock (SEQ-A6/SEQ-A7) orders these loads; see above. */
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
		/* Relaxed: the seqlock (SEQ-R3/SEQ-R4) orders these stores; see above. */
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
