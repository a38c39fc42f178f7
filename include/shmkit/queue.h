/* shmkit — work queue: many producers → many consumers, each message delivered to exactly
 * one consumer.
 *
 * A bounded queue of fixed-size slots (a power-of-two count) in one segment, with a
 * sequence word per slot: producers and consumers claim slots with one compare-and-swap on
 * the slot itself, so they never wait for each other except when the queue is full or
 * empty. Any number of processes attach; each handle may both send and receive.
 *
 *   producer                                consumer
 *   shmkit_queue_loan(q, &p)                shmkit_queue_peek(q, &p, &n)
 *   ...write up to max_msg bytes at p...    ...read n bytes at p...
 *   shmkit_queue_commit(q, used)            shmkit_queue_release(q)
 *
 * or the copying shmkit_queue_send() / shmkit_queue_recv(), and their batch forms, which
 * claim up to n adjacent slots at once and touch the shared claim positions once per batch
 * (the way to keep throughput up when many processes contend). Every call has a
 * non-blocking form (-EAGAIN when full/empty) and a _wait form with an absolute
 * CLOCK_MONOTONIC deadline (NULL = none): spin briefly, then sleep on a futex; the other
 * side makes a wake-up system call only when somebody sleeps.
 *
 * Order: each producer's messages are claimed in the order it sends them; consumers take
 * slots in queue order. A re-delivered message (below) is taken again before the messages
 * still waiting behind it.
 *
 * Crashes. Every claimed slot records which attached handle holds it, and every handle's
 * entry records its process (pid and start time). When a process dies:
 *   - a producer that had loaned a slot and not committed it: the slot is marked skipped
 *     (nothing was committed, nothing is lost) and consumers step over it; counted in
 *     stats.skipped;
 *   - a consumer that had taken a message (peek, or inside recv) and not released it: the
 *     message is RE-DELIVERED — put back in its slot, in place, for the next consumer —
 *     and counted in stats.redelivered. Delivery is therefore at-least-once across a
 *     consumer crash (the dead consumer may have acted on the message before it died) and
 *     exactly-once otherwise. Repairing in place needs no free slot, so it also unblocks
 *     a full queue whose oldest slot the dead consumer held.
 * The repair is made by whichever process finds the slot in its way — a producer waiting
 * for space, a consumer waiting for data, every 100 ms of its wait however often it is
 * woken meanwhile; a waitset (wait.h) the queue is a member of, every 100 ms — or by
 * anyone at shmkit_queue_recover(), and when a process attaches in place of a dead one.
 *
 * Trust: slot words, lengths and positions read from shared memory are validated before
 * use; garbage yields -EBADMSG or a wait until the deadline, never an out-of-bounds access
 * or an endless loop. A zero-copy reader sees the bytes in shared memory: parse
 * defensively, or use shmkit_queue_recv() (one copy).
 *
 * Threads: a handle is used by one thread at a time (open one handle per thread). Handles
 * do not survive fork().
 */
#ifndef SHMKIT_QUEUE_H
#define SHMKIT_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "segment.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for shmkit_queue_opts.flags (the second byte, as every kind's option flags). */
#define SHMKIT_QUEUE_NO_SPIN 0x100u /* never spin before sleeping */

#define SHMKIT_QUEUE_DEFAULT_SLOTS 1024u
#define SHMKIT_QUEUE_DEFAULT_MAX_MSG 240u
#define SHMKIT_QUEUE_DEFAULT_MEMBERS 64u
#define SHMKIT_QUEUE_MAX_SLOTS (1u << 24)
#define SHMKIT_QUEUE_MAX_MEMBERS 1024u
#define SHMKIT_QUEUE_MAX_MSG (64u << 20)

struct shmkit_queue_opts {
	uint32_t slots;       /* create: slot count, a power of two (rounded up), 2..2^24;
			       * 0 = 1024 */
	uint32_t max_members; /* create: handles attached at once, 1..1024; 0 = 64 */
	uint64_t max_msg;     /* create: largest message, 1..64 MiB; 0 = 240 (a slot is
			       * max_msg + 16 bytes rounded up to 64) */
	uint32_t spin_ns;     /* longest spin before sleeping (0 = 50 µs); adaptive */
	uint32_t flags;       /* SHMKIT_QUEUE_NO_SPIN; other bits: -EINVAL */
	struct shmkit_segment_opts seg; /* backend, mode, System V key, huge pages,
					 * SHMKIT_SEG_PERSISTENT, SHMKIT_SEG_RDONLY (open) */
	uint64_t reserved[4]; /* must be 0, else -EINVAL (room for later options) */
};

/* A snapshot of the shared counters (sums over every handle that ever attached). */
struct shmkit_queue_stats {
	uint64_t slots;        /* slot count */
	uint64_t slot_size;    /* bytes per slot */
	uint64_t max_msg;
	uint64_t fill;         /* slots claimed by producers and not yet taken (approximate) */
	uint32_t max_members;
	uint32_t members;      /* handles attached by live processes */
	uint64_t msgs_sent, bytes_sent;  /* committed */
	uint64_t msgs_recv, bytes_recv;  /* released */
	uint64_t producer_sleeps, consumer_sleeps; /* futex sleeps (full / empty) */
	uint64_t wakes;        /* wake-up calls made */
	uint64_t redelivered;  /* messages re-queued after their consumer died mid-take */
	uint64_t skipped;      /* slots abandoned by producers that died (or closed) mid-loan */
	uint64_t recovered_members; /* entries of dead processes taken over */
};

struct shmkit_queue;

/* Creates a queue and attaches to it. `name` follows the segment rules (NULL allowed for
 * memfd). The lifetime is ephemeral unless opts->seg.flags has SHMKIT_SEG_PERSISTENT.
 * Errors: those of shmkit_segment_create(), -EINVAL for bad sizes, unknown flag bits or
 * non-zero reserved fields. */
SHMKIT_API int shmkit_queue_create(const char *name, const struct shmkit_queue_opts *opts,
				   struct shmkit_queue **qp);

/* Opens an existing queue and attaches. Read-only access (statistics, shmkit stat):
 * SHMKIT_SEG_RDONLY in opts->seg.flags maps it read-only and takes no member entry;
 * sending, receiving and repair then return -EPERM. Errors: those of
 * shmkit_segment_open() (-EMEDIUMTYPE when it is not a queue...), -ENOSPC when max_members
 * handles of live processes are attached, -EPROTO (another layout version), -EBADMSG for a
 * corrupt control block, -EINVAL as for create. Only opts->spin_ns, opts->flags and
 * opts->seg (backend, flags, key) are used. */
SHMKIT_API int shmkit_queue_open(const char *name, const struct shmkit_queue_opts *opts,
				 struct shmkit_queue **qp);

/* Same, from a descriptor (memfd); the descriptor is dup'ed. */
SHMKIT_API int shmkit_queue_open_fd(int fd, const struct shmkit_queue_opts *opts,
				    struct shmkit_queue **qp);

/* Detaches: an uncommitted loan is skipped, a peeked message is released (consumed).
 * Frees the handle (NULL accepted). The segment stays: see shmkit_queue_unlink(). */
SHMKIT_API int shmkit_queue_close(struct shmkit_queue *q);

/* Removes the queue's name (mapped memory stays valid for whoever has it). 0, -ENOENT
 * (removed already), -EINVAL (NULL); memfd: 0. */
SHMKIT_API int shmkit_queue_unlink(struct shmkit_queue *q);
SHMKIT_API struct shmkit_segment *shmkit_queue_segment(const struct shmkit_queue *q);
SHMKIT_API size_t shmkit_queue_max_msg(const struct shmkit_queue *q);

/* --- producing ------------------------------------------------------------------------------ */

/* Claims a free slot; *buf (16-byte aligned) has room for max_msg bytes. One loan at a
 * time per handle. Returns 0, -EAGAIN (full), -EBUSY (a loan is already pending),
 * -EBADMSG. The _wait form also returns -ETIMEDOUT, -EINTR. */
SHMKIT_API int shmkit_queue_loan(struct shmkit_queue *q, void **buf);
SHMKIT_API int shmkit_queue_loan_wait(struct shmkit_queue *q, void **buf,
				      const struct timespec *deadline);

/* Commits the loaned slot as a message of `len` bytes (<= max_msg): one consumer will get
 * it. 0, -EINVAL (no loan, or len too large). */
SHMKIT_API int shmkit_queue_commit(struct shmkit_queue *q, size_t len);

/* Gives the loaned slot up without sending (consumers skip it). 0 or -EINVAL. */
SHMKIT_API int shmkit_queue_cancel(struct shmkit_queue *q);

/* loan + copy + commit. -EMSGSIZE when len > max_msg. */
SHMKIT_API int shmkit_queue_send(struct shmkit_queue *q, const void *buf, size_t len);
SHMKIT_API int shmkit_queue_send_wait(struct shmkit_queue *q, const void *buf, size_t len,
				      const struct timespec *deadline);

/* Sends up to n messages in one batch: message i is lens[i] bytes at buf + i × stride.
 * Claims as many adjacent free slots as it can (at least one) and returns how many
 * messages it sent (the first ones), or -EAGAIN (full), -EMSGSIZE (some lens[i] > max_msg:
 * nothing sent), -EINVAL. The _wait form waits until it can send at least one. */
SHMKIT_API int shmkit_queue_send_many(struct shmkit_queue *q, const void *buf, size_t stride,
				      const size_t *lens, size_t n);
SHMKIT_API int shmkit_queue_send_many_wait(struct shmkit_queue *q, const void *buf, size_t stride,
					   const size_t *lens, size_t n,
					   const struct timespec *deadline);

/* --- consuming ---------------------------------------------------------------------------------- */

/* Takes the next message and returns it in place (*buf, 16-byte aligned, and *len), valid
 * until shmkit_queue_release(). Peeking again without releasing returns the same one.
 * Returns 0, -EAGAIN (empty), -EBADMSG (a corrupt slot: it is released and dropped). The
 * _wait form also returns -ETIMEDOUT, -EINTR. */
SHMKIT_API int shmkit_queue_peek(struct shmkit_queue *q, const void **buf, size_t *len);
SHMKIT_API int shmkit_queue_peek_wait(struct shmkit_queue *q, const void **buf, size_t *len,
				      const struct timespec *deadline);

/* Releases the peeked message (its slot becomes free for producers). 0 or -EINVAL. */
SHMKIT_API int shmkit_queue_release(struct shmkit_queue *q);

/* Copies the next message into buf and releases it. Returns its length, the errors of
 * peek, or -ENOBUFS when it is longer than cap (it stays peeked: call again with more
 * room, or release it; SHMKIT_0.1 binaries get -EMSGSIZE). */
SHMKIT_API ssize_t shmkit_queue_recv(struct shmkit_queue *q, void *buf, size_t cap);
SHMKIT_API ssize_t shmkit_queue_recv_wait(struct shmkit_queue *q, void *buf, size_t cap,
					  const struct timespec *deadline);

/* Receives up to n messages in one batch into buf + i × stride (stride >= max_msg, else
 * -EINVAL), their lengths in lens[i]. Returns how many (>= 1), -EAGAIN (empty), -EBADMSG.
 * The _wait form waits until at least one is there. */
SHMKIT_API int shmkit_queue_recv_many(struct shmkit_queue *q, void *buf, size_t stride,
				      size_t *lens, size_t n);
SHMKIT_API int shmkit_queue_recv_many_wait(struct shmkit_queue *q, void *buf, size_t stride,
					   size_t *lens, size_t n,
					   const struct timespec *deadline);

/* --- state and repair ------------------------------------------------------------------------- */

SHMKIT_API int shmkit_queue_stats(const struct shmkit_queue *q, struct shmkit_queue_stats *st);

/* Repairs, now, every slot held by a process that died (skips its loans, re-delivers its
 * takes). Waiting calls do this on their own after each 100 ms sleep slice. Returns the
 * number of slots repaired. */
SHMKIT_API int shmkit_queue_recover(struct shmkit_queue *q);

#ifdef __cplusplus
}
#endif

#endif
