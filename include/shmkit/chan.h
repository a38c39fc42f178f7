/* shmkit — stream channels: one producer → one consumer, variable-size messages, zero copy.
 *
 * A channel is a segment (any backend) holding a ring of variable-size records. The
 * producer loans space in the ring, writes its message in place and commits it; the
 * consumer peeks at the next message in place and releases it. Nothing is copied unless
 * the caller asks for it (shmkit_chan_send / shmkit_chan_recv).
 *
 *   producer                              consumer
 *   shmkit_chan_loan(ch, n, &p)           shmkit_chan_peek(ch, &p, &n)
 *   ...write up to n bytes at p...        ...read n bytes at p...
 *   shmkit_chan_commit(ch, used, 0)       shmkit_chan_release(ch, 0)
 *
 * Every call has a non-blocking form (-EAGAIN when full/empty) and a _wait form that takes
 * an absolute CLOCK_MONOTONIC deadline (NULL = no deadline; -ETIMEDOUT when it passes).
 * Waiting first spins for a bounded, adaptive time, then sleeps on a futex; the other side
 * makes the wake-up system call only when someone really sleeps.
 *
 * End of stream: after the producer closes, the consumer receives everything committed
 * before, then -EPIPE (-ECONNABORTED when the producer aborted instead). After the consumer
 * closes, a producer that must wait for room gets -EPIPE, as a pipe writer does. Dead peer: a _wait call whose peer died (crash, kill -9) returns
 * -EOWNERDEAD within its deadline or 100 ms, whichever comes first — after delivering
 * whatever was committed. Uncommitted loans of a dead producer are never delivered. A new
 * producer (or consumer) may then attach and carry on where the dead one stopped
 * (takeover). Messages a dead consumer had peeked but not released are delivered again to
 * the next consumer (at-least-once across a consumer crash).
 *
 * Trust: positions and record headers read from shared memory are validated before use; a
 * corrupt value makes the call return -EBADMSG, never read or write out of bounds or loop.
 * A zero-copy reader sees the bytes in shared memory: a hostile producer could change
 * them while they are read, so parse defensively or use shmkit_chan_recv (one copy).
 *
 * Threads: a handle is used by one thread at a time. Handles do not survive fork(): the
 * child must open its own.
 */
#ifndef SHMKIT_CHAN_H
#define SHMKIT_CHAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "segment.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

enum shmkit_chan_role {
	SHMKIT_CHAN_OBSERVER = 0, /* no role: the role of a read-only handle (statistics, shmkit
				   * stat), asked for with SHMKIT_SEG_RDONLY in opts->seg.flags */
	SHMKIT_CHAN_PRODUCER = 1,
	SHMKIT_CHAN_CONSUMER = 2,
};

/* Flags. A flag's bit is never used by another flag of the kind, so a flag passed to the
 * wrong call is an unknown bit there (-EINVAL): call flags take the low byte, option flags
 * (shmkit_chan_opts.flags) the second one (docs/design.md, "Object model"). */

/* Flags for shmkit_chan_commit() / shmkit_chan_release(). */
#define SHMKIT_CHAN_MORE 0x1u /* batch: do not publish yet; shmkit_chan_flush() or the next
			       * call without MORE publishes everything at once. Commit: may
			       * also be published earlier (half a ring batched, ring full).
			       * Release: never published earlier — see shmkit_chan_release() */

/* Flags for shmkit_chan_opts.flags. */
#define SHMKIT_CHAN_NO_SPIN 0x100u /* no adaptive spin before sleeping: every wait that finds
				  * nothing sleeps */

/* Default ring size and the default spin budget. */
#define SHMKIT_CHAN_DEFAULT_CAPACITY (1u << 20)
#define SHMKIT_CHAN_DEFAULT_SPIN_NS 50000u

struct shmkit_chan_opts {
	uint64_t capacity; /* create: ring bytes, a power of two (rounded up) from 4 KiB;
			    * 0 = 1 MiB, or 4 × (max_msg + 8) when max_msg is given */
	uint64_t max_msg;  /* create: largest message; 0 = capacity / 4; at most
			    * capacity / 2 - 8 */
	uint32_t spin_ns;  /* longest spin before sleeping (0 = default 50 µs); adaptive */
	uint32_t flags;    /* SHMKIT_CHAN_NO_SPIN; other bits: -EINVAL */
	struct shmkit_segment_opts seg; /* backend, mode, System V key, huge pages,
					 * SHMKIT_SEG_PERSISTENT, SHMKIT_SEG_RDONLY (open) */
	uint64_t reserved[4]; /* must be 0, else -EINVAL (room for later options) */
};

/* Counters and state, as read from shared memory (a snapshot; values another process
 * writes are only as trustworthy as that process). */
struct shmkit_chan_stats {
	uint64_t capacity;     /* ring bytes */
	uint64_t max_msg;      /* largest message */
	uint64_t fill;         /* bytes committed and not yet released */
	uint64_t msgs_sent, bytes_sent;  /* committed by producers */
	uint64_t msgs_recv, bytes_recv;  /* released by consumers */
	uint64_t producer_sleeps, consumer_sleeps; /* futex sleeps (waiting for space/data) */
	uint64_t producer_wakes, consumer_wakes;   /* wake-up calls made for the other side */
	int32_t producer_pid, consumer_pid;        /* 0 when none attached */
	int32_t producer_alive, consumer_alive;    /* 1 alive, 0 dead or none */
	int32_t closed;        /* 1 after the producer closed, 2 after it aborted */
	int32_t reader_closed; /* 1 after the consumer closed (the reader is gone) */
};

struct shmkit_chan;

/* Creates a channel and attaches as `role` (PRODUCER or CONSUMER; OBSERVER is -EINVAL).
 * `name` follows the segment rules (NULL allowed for memfd). The lifetime is ephemeral
 * unless opts->seg.flags has SHMKIT_SEG_PERSISTENT. Errors: those of
 * shmkit_segment_create(), -EINVAL for bad sizes, unknown flag bits (opts->flags,
 * opts->seg.flags) or non-zero reserved fields. */
SHMKIT_API int shmkit_chan_create(const char *name, int role, const struct shmkit_chan_opts *opts,
				  struct shmkit_chan **chp);

/* Opens an existing channel by name and attaches as `role`. Read-only access (statistics,
 * notes, liveness; no role taken, the mapping is read-only) is asked for the one way every
 * kind asks for it: SHMKIT_SEG_RDONLY in opts->seg.flags, with role SHMKIT_CHAN_OBSERVER
 * (either one without the other is -EINVAL). Errors: those of shmkit_segment_open()
 * (-ENOENT, -EAGAIN not ready yet, -EMEDIUMTYPE not a stream...), -EBUSY when a live
 * process already holds the role, -EPROTO (another channel layout version), -EBADMSG for a
 * corrupt control block, -EINVAL as for create. Only opts->spin_ns, opts->flags and
 * opts->seg (backend, flags, key) are used. */
SHMKIT_API int shmkit_chan_open(const char *name, int role, const struct shmkit_chan_opts *opts,
				struct shmkit_chan **chp);

/* Same, from a descriptor (memfd passed with shmkit_segment_send_fd()); dup'ed. */
SHMKIT_API int shmkit_chan_open_fd(int fd, int role, const struct shmkit_chan_opts *opts,
				   struct shmkit_chan **chp);

/* Producer: publishes what is pending, marks the end of the stream (the consumer gets
 * -EPIPE once it has received everything), wakes the consumer, gives the role up.
 * Consumer: publishes its releases (held MORE releases included) and marks the reader as
 * gone, like closing the read end of a pipe: a producer that must wait for room (or
 * drain_wait) gets -EPIPE, until a new consumer attaches. Frees the handle (NULL
 * accepted). The segment stays: see shmkit_chan_unlink().
 * Returns 1 when the other end had closed its side already (producer: the reader closed;
 * consumer: the stream was closed or aborted), so this was the last end to leave and
 * nobody will use the stream again: a program that treats the channel as ephemeral
 * removes it then (shmkit_segment_remove() by name, the handle is gone). When both ends
 * close at the same time at least one of them gets 1 (both may). Returns 0 otherwise. */
SHMKIT_API int shmkit_chan_close(struct shmkit_chan *ch);

/* Producer: like close, but marks the stream as cut short: the consumer receives
 * everything committed, then -ECONNABORTED instead of -EPIPE (so a truncated stream is
 * never taken for a complete one). Consumer: like close, but held MORE releases are
 * dropped, not published: for a consumer whose output failed, so the messages it had not
 * handed on stay in the channel for a next consumer. Frees the handle. Returns 1 or 0 as
 * shmkit_chan_close() does. */
SHMKIT_API int shmkit_chan_abort(struct shmkit_chan *ch);

/* Gives the role up without marking anything: the peer keeps waiting, and a new producer
 * (or consumer) may attach and carry on. Publishes what is pending first (a consumer's
 * held MORE releases included). Frees the handle. Returns 0. */
SHMKIT_API int shmkit_chan_detach(struct shmkit_chan *ch);

/* Removes the channel's name (mapped memory stays valid for whoever has it). 0, -ENOENT
 * (removed already), -EINVAL (NULL); memfd: 0, nothing to remove. */
SHMKIT_API int shmkit_chan_unlink(struct shmkit_chan *ch);

/* The underlying segment (e.g. to pass a memfd with shmkit_segment_send_fd()). */
SHMKIT_API struct shmkit_segment *shmkit_chan_segment(const struct shmkit_chan *ch);

/* Largest message this channel accepts. */
SHMKIT_API size_t shmkit_chan_max_msg(const struct shmkit_chan *ch);

/* --- producer ------------------------------------------------------------------------ */

/* Reserves room for a message of up to `len` bytes and returns where to write it in *buf
 * (8-byte aligned). The loan stays pending until shmkit_chan_commit(); a new loan replaces
 * an uncommitted one. Returns 0, -EAGAIN (full), -EPIPE (full and the consumer closed),
 * -EMSGSIZE (len > max), -EBADMSG (the consumer position in shared memory is corrupt),
 * -EPERM (not the producer). The _wait form also returns -ETIMEDOUT, -EOWNERDEAD (the
 * consumer died), -EINTR, -EINVAL (malformed deadline). */
SHMKIT_API int shmkit_chan_loan(struct shmkit_chan *ch, size_t len, void **buf);
SHMKIT_API int shmkit_chan_loan_wait(struct shmkit_chan *ch, size_t len, void **buf,
				     const struct timespec *deadline);

/* Commits the pending loan as a message of `len` bytes (<= the loaned length) and, unless
 * flags has SHMKIT_CHAN_MORE, publishes it and every earlier MORE commit (and wakes a
 * sleeping consumer). A MORE commit that is never published — the producer died first —
 * is never delivered. 0 or -EINVAL. */
SHMKIT_API int shmkit_chan_commit(struct shmkit_chan *ch, size_t len, unsigned flags);

/* Producer: publishes commits made with SHMKIT_CHAN_MORE. Consumer: publishes releases
 * made with SHMKIT_CHAN_MORE (the space goes back to the producer for good). 0 or
 * -EINVAL. */
SHMKIT_API int shmkit_chan_flush(struct shmkit_chan *ch);

/* Copies `len` bytes in as one message (loan + copy + commit). Large copies go in pieces
 * that keep clear of the C library's non-temporal-store cliff. */
SHMKIT_API int shmkit_chan_send(struct shmkit_chan *ch, const void *buf, size_t len);
SHMKIT_API int shmkit_chan_send_wait(struct shmkit_chan *ch, const void *buf, size_t len,
				     const struct timespec *deadline);

/* Waits until the consumer has released everything published (the stream is drained), or
 * the deadline. 0, -ETIMEDOUT, -EOWNERDEAD (consumer died), -EPIPE (consumer closed),
 * -EBADMSG. */
SHMKIT_API int shmkit_chan_drain_wait(struct shmkit_chan *ch, const struct timespec *deadline);

/* --- consumer ------------------------------------------------------------------------ */

/* Returns the next message in place: *buf (8-byte aligned) and *len, valid until
 * shmkit_chan_release(). Peeking again without releasing returns the same message.
 * Returns 0, -EAGAIN (empty), -EPIPE (producer closed and everything was received),
 * -ECONNABORTED (producer aborted, everything it committed was received), -EBADMSG
 * (corrupt record or position), -EPERM (not the consumer). The _wait form also returns
 * -ETIMEDOUT, -EOWNERDEAD (producer died; all it committed was delivered), -EINTR, -EINVAL
 * (malformed deadline), and -EDEADLK when it would have to wait while this handle holds
 * MORE releases it has not published: the producer may be waiting for that very space.
 * Hand the held messages on, shmkit_chan_flush(), then wait. Neither form publishes held
 * releases. */
SHMKIT_API int shmkit_chan_peek(struct shmkit_chan *ch, const void **buf, size_t *len);
SHMKIT_API int shmkit_chan_peek_wait(struct shmkit_chan *ch, const void **buf, size_t *len,
				     const struct timespec *deadline);

/* Releases the peeked message; unless flags has SHMKIT_CHAN_MORE, publishes the release
 * (and earlier MORE releases) so the producer can reuse the space. 0 or -EINVAL (nothing
 * peeked).
 * With SHMKIT_CHAN_MORE the release stays private to this handle until the consumer
 * publishes it — shmkit_chan_flush(), a later release without MORE, close or detach —
 * and nothing else publishes it (not a long batch, not an empty channel, not a wait).
 * So a consumer that copies messages out to somewhere else (a buffered file, a socket)
 * releases each with MORE as it copies it and calls shmkit_chan_flush() only after the
 * copies reached their destination (write(2) returned): if it dies before, the next
 * consumer gets those messages again (at least once), never loses them. Before waiting
 * for more (peek_wait, recv_wait, a waitset) it must hand on and flush: the _wait calls
 * return -EDEADLK rather than wait while releases are held, since the producer may be
 * waiting for that space. */
SHMKIT_API int shmkit_chan_release(struct shmkit_chan *ch, unsigned flags);

/* Copies the next message into buf and releases it. Returns its length, or the errors of
 * peek, or -ENOBUFS when it is longer than `cap` (the message stays in the channel).
 * (SHMKIT_0.1 returned -EMSGSIZE there; binaries built against it still get that.) */
SHMKIT_API ssize_t shmkit_chan_recv(struct shmkit_chan *ch, void *buf, size_t cap);
SHMKIT_API ssize_t shmkit_chan_recv_wait(struct shmkit_chan *ch, void *buf, size_t cap,
					 const struct timespec *deadline);

/* --- state --------------------------------------------------------------------------- */

/* Fills *st from the shared control block. Any role. */
SHMKIT_API int shmkit_chan_stats(const struct shmkit_chan *ch, struct shmkit_chan_stats *st);

/* Whether the other side is attached and alive (1) or not (0). */
SHMKIT_API int shmkit_chan_peer_alive(const struct shmkit_chan *ch);

/* --- bookkeeping that survives the producer ----------------------------------------------
 * A producer that forwards messages from elsewhere (shmkit bridge) must know after a crash
 * which of them reached the channel. The channel's stream position and a few words the
 * producer keeps in the control block let it decide without a file of its own:
 *
 *   shmkit_chan_position(ch, &p);            store the message's id and p in two notes
 *   loan, write, commit                      (the id last: it marks the pair as current)
 *   after a crash: reopen as producer; the message landed iff the position is now > p.
 *
 * Positions count ring bytes from the channel's creation (64 bits: they never wrap) and
 * survive takeover: a new producer starts where the dead one's last commit ended, a commit
 * it made but did not publish included (src/chan.c). */

/* Words of notes a channel keeps for its producer. */
#define SHMKIT_CHAN_NOTES 8u

/* Producer: stores `val` as note `idx` (< SHMKIT_CHAN_NOTES). The library never reads or
 * clears notes: they are zero in a new channel and keep their value across producers
 * (close, takeover, reopen). The store is ordered before the producer's later commits
 * (release): a consumer or a later producer that sees a commit sees the notes stored
 * before it. Returns 0, -EINVAL (idx out of range, ch NULL), -EPERM (not the producer).
 * Trust: any process that maps the channel writable can change the notes; treat them as
 * input like the messages. */
SHMKIT_API int shmkit_chan_note_store(struct shmkit_chan *ch, unsigned idx, uint64_t val);

/* Any role: reads note `idx` into *val (acquire). 0 or -EINVAL. */
SHMKIT_API int shmkit_chan_note_load(const struct shmkit_chan *ch, unsigned idx, uint64_t *val);

/* This side's stream position in *pos: for the producer, the end of its last commit
 * (MORE commits included; a loan is not a commit); for the consumer, the end of the
 * message it has peeked, or of its last release when none is peeked. Right after
 * attaching, the position is where the previous holder of the role left the stream.
 * Returns 0, -EINVAL, -EPERM (an observer has no position). Thread safety: like the other
 * calls on the handle. */
SHMKIT_API int shmkit_chan_position(const struct shmkit_chan *ch, uint64_t *pos);

#ifdef __cplusplus
}
#endif

#endif
