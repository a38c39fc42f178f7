/* shmkit — synchronization primitives that live inside shared memory.
 *
 * Each object below is a fixed-size, fixed-layout block that the caller places in a
 * segment (any backend) and initializes once, before publishing the segment. Processes
 * that map the segment then use it concurrently. The blocks hold no pointers, so they may
 * sit at a different address in every process.
 *
 *   event    an event count: a 32-bit futex word (non-private, so it works across
 *            processes) plus a sleeper count, so notify skips the system call when nobody
 *            sleeps. Wait = bounded spin, then FUTEX_WAIT with an absolute deadline.
 *   sem      a counting semaphore (post / wait / trywait / timedwait) on the same scheme.
 *   mutex    a robust, error-checking mutex on a futex (shmkit's own, not glibc's): the
 *            lock word names the holding thread; when that thread dies holding it (its
 *            process killed, or the thread exiting) the next locker gets -EOWNERDEAD (and
 *            holds the lock), repairs the state it protects, then calls
 *            shmkit_mutex_consistent(). Never a silent deadlock.
 *   seqlock  a sequence lock for consistent snapshots of small shared state: one writer at
 *            a time (the caller serializes writers, e.g. with a shmkit mutex), readers never
 *            block the writer and retry when they saw a write in progress.
 *
 * Deadlines are absolute CLOCK_MONOTONIC times (struct timespec); NULL means "no
 * deadline". Use shmkit_deadline_after() to build one.
 *
 * Trust: these objects sit in memory that other processes can write. A hostile peer can make
 * a wait return early or late, never make the library crash or read or write outside the
 * object. Every word of a mutex is treated as untrusted: whatever a peer writes into one, a
 * lock call returns 0 or one of its documented errors (-EOWNERDEAD, -ENOTRECOVERABLE,
 * -EDEADLK, -ETIMEDOUT at the caller's deadline). What a peer can do is what any process
 * with write access to a lock can do: release it under its holder (breaking mutual
 * exclusion for the data it protects), declare it not recoverable, or name a live thread
 * as its holder, which blocks lockers until their deadline — the one way a hostile peer
 * can make a lock call wait, as a peer that takes a lock and never releases it can.
 *
 * Limits of the mutex's robustness: holders are named by thread id, so every process using
 * a mutex must be in the same pid namespace; a process that execve()s while holding one
 * keeps it held (unlock before exec, as before exit); a holder that died is noticed at once
 * by a locker that is about to sleep, within 100 ms by one already asleep.
 */
#ifndef SHMKIT_SYNC_H
#define SHMKIT_SYNC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Layouts are private; only sizes and alignment are part of the ABI (checked with
 * static_assert inside the library). Zero-filled memory is a valid, initialized event,
 * semaphore (value 0), mutex (unlocked) and seqlock. */
struct shmkit_event {
	uint32_t private_[2];
};
struct shmkit_sem {
	uint32_t private_[2];
};
struct shmkit_mutex {
	uint64_t private_[8]; /* 64 bytes: an owner word, a sleeper count, reserved (src/sync.c) */
};
struct shmkit_seqlock {
	uint32_t private_[1];
};

/* --- time ---------------------------------------------------------------------------- */

/* Current CLOCK_MONOTONIC time in nanoseconds. */
SHMKIT_API uint64_t shmkit_now_ns(void);

/* Sets *deadline to now + timeout_ns on CLOCK_MONOTONIC and returns `deadline`, so the
 * result can be passed straight to a wait. */
SHMKIT_API struct timespec *shmkit_deadline_after(struct timespec *deadline, uint64_t timeout_ns);

/* --- raw futex ----------------------------------------------------------------------- */

/* Sleeps while *word == expected, until woken, the deadline passes or a signal arrives.
 * Shared (non-private) futex: works across processes that map the same memory.
 * Returns 0 (woken — possibly spuriously — or *word already differed), -ETIMEDOUT, -EINTR,
 * or -EINVAL for a malformed deadline (tv_nsec outside 0..999999999) or a misaligned word. */
SHMKIT_API int shmkit_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline);

/* Wakes up to `count` sleepers on `word`. Returns how many were woken (>= 0); a count <= 0
 * wakes nobody and returns 0. A negative errno only if the kernel refuses the address. */
SHMKIT_API int shmkit_futex_wake(uint32_t *word, int count);

/* --- event --------------------------------------------------------------------------- */

/* Resets the event (generation 0, no sleepers). Only while nobody uses it. */
SHMKIT_API void shmkit_event_init(struct shmkit_event *ev);

/* Returns the current generation. The waiting pattern is:
 *     uint32_t gen = shmkit_event_prepare(ev);
 *     if (!condition())            // re-check after reading the generation
 *         shmkit_event_wait(ev, gen, deadline, spin);
 * A notify between prepare and wait makes the wait return at once, so no wake-up is lost.
 * Acquire: what the notifier wrote before its notify is visible once the generation moved. */
SHMKIT_API uint32_t shmkit_event_prepare(const struct shmkit_event *ev);

/* Waits until the generation differs from `gen`: first up to `spin` polling rounds (each a
 * CPU pause; 0 = sleep at once), then a futex sleep until `deadline` (NULL = forever).
 * Returns 0 when the generation moved (never for a spurious wake-up), -ETIMEDOUT, -EINTR
 * (signal), or -EINVAL for a malformed deadline. A notify that happens at the deadline may
 * be reported either way; re-check the condition after -ETIMEDOUT. */
SHMKIT_API int shmkit_event_wait(struct shmkit_event *ev, uint32_t gen,
				 const struct timespec *deadline, unsigned spin);

/* Advances the generation (release: publishes the caller's prior writes) and wakes every
 * sleeper; costs no system call when nobody sleeps. Returns the number of sleepers woken. */
SHMKIT_API int shmkit_event_notify(struct shmkit_event *ev);

/* The number of processes/threads currently registered as sleeping (a hint: a sleeper that
 * was killed stays counted, which only costs notifiers a system call). */
SHMKIT_API uint32_t shmkit_event_sleepers(const struct shmkit_event *ev);

/* --- counting semaphore -------------------------------------------------------------- */

/* Sets the value (0..INT32_MAX). Only while nobody uses it. -EINVAL above INT32_MAX. */
SHMKIT_API int shmkit_sem_init(struct shmkit_sem *sem, uint32_t value);

/* Increments the value and wakes one sleeper if any (release). -EOVERFLOW at INT32_MAX, and
 * for any larger value (only a corrupt or hostile peer writes one): the value never wraps. */
SHMKIT_API int shmkit_sem_post(struct shmkit_sem *sem);

/* Decrements the value, waiting while it is 0 (acquire): a short bounded spin, then a futex
 * sleep. Returns 0 or -EINTR. Any nonzero value counts as positive, including a corrupt one
 * above INT32_MAX (it is decremented like any other). */
SHMKIT_API int shmkit_sem_wait(struct shmkit_sem *sem);

/* Decrements the value if positive: 0, or -EAGAIN when it is 0. */
SHMKIT_API int shmkit_sem_trywait(struct shmkit_sem *sem);

/* Like shmkit_sem_wait() with an absolute CLOCK_MONOTONIC deadline (NULL = none): 0,
 * -ETIMEDOUT, -EINTR, -EINVAL (malformed deadline). A positive value is taken even when
 * the deadline has already passed. */
SHMKIT_API int shmkit_sem_timedwait(struct shmkit_sem *sem, const struct timespec *deadline);

/* The current value (a snapshot). */
SHMKIT_API uint32_t shmkit_sem_value(const struct shmkit_sem *sem);

/* --- robust process-shared mutex ----------------------------------------------------- */

/* Initializes (unlocked, consistent) a process-shared, robust, error-checking mutex. Only
 * while nobody uses it; also the way back from -ENOTRECOVERABLE and after
 * shmkit_mutex_destroy(). Returns 0. */
SHMKIT_API int shmkit_mutex_init(struct shmkit_mutex *m);

/* Locks. Returns 0; -EOWNERDEAD when the previous owner died holding it (the caller now
 * holds the lock; repair the protected state, then call shmkit_mutex_consistent() before
 * unlocking, or the mutex becomes unusable); -ENOTRECOVERABLE when an earlier owner-dead
 * lock was unlocked without shmkit_mutex_consistent() (or the mutex was destroyed);
 * -EDEADLK when the calling thread already holds it. Never -EINTR (signals are handled and
 * the wait goes on). Waits while a live thread holds it, checking every 100 ms whether
 * that thread still exists. The first lock call of a thread reads /proc once (its own
 * start time). Thread-safe; not async-signal-safe. */
SHMKIT_API int shmkit_mutex_lock(struct shmkit_mutex *m);

/* Like shmkit_mutex_lock(), but -EBUSY instead of waiting (-EDEADLK when the calling
 * thread holds it). When the lock is held, one kill(holder, 0) system call tells whether
 * the holder's thread still exists (-EOWNERDEAD if not); a holder that is a zombie (killed,
 * not yet reaped) reads as busy until a lock or timedlock call looks at /proc. */
SHMKIT_API int shmkit_mutex_trylock(struct shmkit_mutex *m);

/* Like shmkit_mutex_lock(), giving up at the absolute CLOCK_MONOTONIC deadline
 * (-ETIMEDOUT, after a last look at whether the holder is alive; -EINVAL for a malformed
 * deadline when it would have to wait). NULL = no deadline. */
SHMKIT_API int shmkit_mutex_timedlock(struct shmkit_mutex *m, const struct timespec *deadline);

/* Declares the state repaired after -EOWNERDEAD. 0, or -EINVAL if not needed/not owner. */
SHMKIT_API int shmkit_mutex_consistent(struct shmkit_mutex *m);

/* Unlocks. 0, or -EPERM when the caller does not hold it. */
SHMKIT_API int shmkit_mutex_unlock(struct shmkit_mutex *m);

/* Destroys an unlocked mutex nobody uses. 0, or -EBUSY while anyone — the caller included —
 * holds it. A mutex whose owner died, or that is not recoverable, may be destroyed. A
 * destroyed mutex reports -ENOTRECOVERABLE to lockers until shmkit_mutex_init(). */
SHMKIT_API int shmkit_mutex_destroy(struct shmkit_mutex *m);

/* --- seqlock ------------------------------------------------------------------------- */

/* Resets the sequence to 0. Only while nobody uses it. */
SHMKIT_API void shmkit_seqlock_init(struct shmkit_seqlock *sl);

/* Starts a read: stores the sequence in *seq and returns 0, or -EAGAIN when a write is in
 * progress (odd sequence) — retry, or give up: a writer that died mid-write leaves the
 * sequence odd until the next writer repairs it, so never wait on it without a bound. */
SHMKIT_API int shmkit_seqlock_read_begin(const struct shmkit_seqlock *sl, uint32_t *seq);

/* Ends a read: returns 0 when the data read since read_begin is a consistent snapshot,
 * -EAGAIN when a writer interfered (discard what was read and retry). Data must be read
 * with relaxed atomic loads or shmkit_seqlock_load(); plain loads are a data race. */
SHMKIT_API int shmkit_seqlock_read_end(const struct shmkit_seqlock *sl, uint32_t seq);

/* Starts a write (the caller serializes writers). Makes the sequence odd; if it is already
 * odd — a writer died mid-write — it stays odd and the new write repairs the data. */
SHMKIT_API void shmkit_seqlock_write_begin(struct shmkit_seqlock *sl);

/* Ends a write: makes the sequence even again (release: readers that see it see the data). */
SHMKIT_API void shmkit_seqlock_write_end(struct shmkit_seqlock *sl);

/* Copies `len` bytes from shared `src` to private `dst` with relaxed atomic loads (no data
 * race with a concurrent writer; the result is only meaningful if read_end returns 0). */
SHMKIT_API void shmkit_seqlock_load(void *dst, const void *src, size_t len);

/* Copies `len` bytes from private `src` to shared `dst` with relaxed atomic stores, between
 * write_begin and write_end. */
SHMKIT_API void shmkit_seqlock_store(void *dst, const void *src, size_t len);

/* Reads a consistent snapshot of `len` bytes at `src` guarded by `sl` into `dst`, trying up
 * to `tries` times (0 = 1000). Returns 0, or -EAGAIN when every try met a write (then `dst`
 * holds garbage). Never blocks: a dead writer makes it return -EAGAIN, not hang. */
SHMKIT_API int shmkit_seqlock_read(const struct shmkit_seqlock *sl, void *dst, const void *src,
				   size_t len, unsigned tries);

/* write_begin + store + write_end. */
SHMKIT_API void shmkit_seqlock_write(struct shmkit_seqlock *sl, void *dst, const void *src,
				     size_t len);

#ifdef __cplusplus
}
#endif

#endif
