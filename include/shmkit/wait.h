/* shmkit — waiting on many channels at once.
 *
 * A waitset holds up to SHMKIT_WAITSET_MAX members — stream channel consumers, pub/sub
 * subscribers, work queues (waiting for a message) and events — each with a caller-chosen
 * 64-bit cookie, and waits until any of them is ready, with one deadline:
 *
 *   struct shmkit_waitset *ws;
 *   shmkit_waitset_create(NULL, &ws);
 *   shmkit_waitset_add_chan(ws, video, 1);
 *   shmkit_waitset_add_pubsub(ws, telemetry, 2);
 *   shmkit_waitset_add_event(ws, &shared->quit, 3);
 *   struct shmkit_waitset_ready r[8];
 *   int n = shmkit_waitset_wait(ws, shmkit_deadline_after(&ts, 1000000000), r, 8);
 *   for (int i = 0; i < n; i++) ... r[i].cookie, r[i].events ...
 *
 * How it waits: a short adaptive spin, then it registers as a sleeper on every member's
 * wait queue (so their producers know to make the wake-up system call), re-checks every
 * member, and sleeps in ONE futex_waitv(2) system call on all their futex words (Linux
 * 5.16 and later). Where the kernel lacks futex_waitv (ENOSYS), or when
 * SHMKIT_WAITSET_FALLBACK is given, it sleeps on one member's futex word (rotating) and
 * polls the others every `poll_us` (default 1 ms): correct, but a wake-up of a member
 * other than the one slept on can take up to poll_us.
 *
 * Readiness is level-triggered: a channel is reported as long as a message is there
 * (READABLE), or its producer closed (CLOSED), or its producer died (DEAD, once its
 * messages are read; checked every 100 ms on a schedule of its own, whatever else is
 * ready, so a member that is always ready does not hide a dead one). A work queue has no
 * single peer to report DEAD: the same check repairs the slots dead processes hold in it
 * (shmkit_queue_recover()), so a message behind them becomes READABLE. An event is reported once per change of its
 * generation (EVENT): the waitset remembers the generation it last reported. A readable
 * report is a hint that the next peek/recv will not return -EAGAIN — except while the
 * consumer holds releases batched with …_MORE: nothing but the consumer publishes those
 * (shmkit_chan_release(3)), and until it does the member reads as ready. Hand the held
 * messages on and flush (shmkit_chan_flush, shmkit_pubsub_flush) before waiting.
 *
 * epoll: shmkit_waitset_fd() returns an eventfd that becomes readable when a member is
 * ready, for programs built around epoll/poll/select. A helper thread (started by the
 * first call) does the waiting and writes the eventfd; it then stays quiet until a
 * shmkit_waitset_wait() call finds nothing ready (returns -ETIMEDOUT), which re-arms it.
 * So: when the fd polls readable, call shmkit_waitset_wait() with a deadline of {0, 0}
 * until it returns -ETIMEDOUT (level-triggered epoll does this naturally). Cost: one
 * thread per waitset that uses an fd, sleeping when idle, and one extra wake-up hop
 * (a few µs) between a member becoming ready and the fd becoming readable.
 *
 * Lifetime: members are borrowed handles; remove a member (or destroy the waitset) before
 * closing its handle. A waitset is used by one thread at a time (its helper thread aside).
 * The handles may be used by their own threads meanwhile: the waitset reads only shared
 * memory through them.
 */
#ifndef SHMKIT_WAIT_H
#define SHMKIT_WAIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Readiness bits in shmkit_waitset_ready.events. */
#define SHMKIT_WAIT_READABLE 0x1u /* a message is there */
#define SHMKIT_WAIT_CLOSED 0x2u   /* the producer / publisher closed (end of stream) */
#define SHMKIT_WAIT_DEAD 0x4u     /* the producer / publisher died */
#define SHMKIT_WAIT_EVENT 0x8u    /* the event was notified since it was last reported */

/* The most members a waitset holds (the kernel's FUTEX_WAITV_MAX). */
#define SHMKIT_WAITSET_MAX 128u

/* Flags for shmkit_waitset_opts.flags. */
#define SHMKIT_WAITSET_FALLBACK 0x1u /* never use futex_waitv: poll (old kernels; tests) */
#define SHMKIT_WAITSET_NO_SPIN 0x2u  /* never spin before sleeping */

struct shmkit_waitset_opts {
	uint32_t flags;    /* SHMKIT_WAITSET_* */
	uint32_t spin_ns;  /* longest spin before sleeping (0 = 20 µs); adaptive */
	uint32_t poll_us;  /* fallback: longest sleep between polls (0 = 1000) */
	uint32_t reserved; /* 0 */
};

struct shmkit_waitset_ready {
	uint64_t cookie;   /* as given to shmkit_waitset_add_*() */
	uint32_t events;   /* SHMKIT_WAIT_* bits */
	uint32_t reserved;
};

struct shmkit_waitset;
struct shmkit_chan;
struct shmkit_pubsub;
struct shmkit_queue;
struct shmkit_event;

/* Creates an empty waitset (opts may be NULL). 0, -EINVAL (unknown flag bits, non-zero
 * reserved field), -ENOMEM. */
SHMKIT_API int shmkit_waitset_create(const struct shmkit_waitset_opts *opts,
				     struct shmkit_waitset **wsp);

/* Stops the helper thread (if any), closes the eventfd and frees the waitset (NULL
 * accepted). The members' handles are not touched. Returns 0. shmkit_waitset_close() is
 * the same call under the name every kind's handle uses (a waitset is private to its
 * process: it has no name and nothing to unlink). */
SHMKIT_API int shmkit_waitset_close(struct shmkit_waitset *ws);
SHMKIT_API int shmkit_waitset_destroy(struct shmkit_waitset *ws);

/* Adds a member. Returns 0; -EPERM when the handle has the wrong role (a stream producer,
 * a publisher, an observer); -EEXIST when the handle (or event) is already a member;
 * -ENOSPC when the set is full. The handle must stay open while it is a member. */
SHMKIT_API int shmkit_waitset_add_chan(struct shmkit_waitset *ws, struct shmkit_chan *ch,
				       uint64_t cookie);
SHMKIT_API int shmkit_waitset_add_pubsub(struct shmkit_waitset *ws, struct shmkit_pubsub *ps,
					 uint64_t cookie);
SHMKIT_API int shmkit_waitset_add_queue(struct shmkit_waitset *ws, struct shmkit_queue *q,
					uint64_t cookie);
/* An event (sync.h) in shared memory; ready once it is notified after this call. */
SHMKIT_API int shmkit_waitset_add_event(struct shmkit_waitset *ws, struct shmkit_event *ev,
					uint64_t cookie);

/* Removes every member with this cookie. Returns how many, or -ENOENT. When the waitset
 * has a helper thread, returns only after that thread stopped using the removed handles. */
SHMKIT_API int shmkit_waitset_remove(struct shmkit_waitset *ws, uint64_t cookie);

/* Number of members. */
SHMKIT_API int shmkit_waitset_count(const struct shmkit_waitset *ws);

/* Waits until at least one member is ready or the deadline (absolute CLOCK_MONOTONIC; NULL
 * = none; {0, 0} = just poll) passes. Fills up to `n` entries of `out` (members are taken
 * round-robin, so a busy member cannot hide the others) and returns how many (>= 1);
 * -ETIMEDOUT when nothing is ready by the deadline (this also re-arms the eventfd of
 * shmkit_waitset_fd()); -EINTR; -EINVAL (n == 0, or an empty set without a deadline). */
SHMKIT_API int shmkit_waitset_wait(struct shmkit_waitset *ws, const struct timespec *deadline,
				   struct shmkit_waitset_ready *out, size_t n);

/* An eventfd (EFD_NONBLOCK | EFD_CLOEXEC, owned by the waitset) that polls readable when a
 * member is ready; see the top of this file. Returns the descriptor or a negative errno
 * (eventfd, pthread_create). */
SHMKIT_API int shmkit_waitset_fd(struct shmkit_waitset *ws);

/* 1 when waits use futex_waitv, 0 when they poll (fallback). */
SHMKIT_API int shmkit_waitset_uses_waitv(const struct shmkit_waitset *ws);

#ifdef __cplusplus
}
#endif

#endif
