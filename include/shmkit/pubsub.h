/* shmkit — publish/subscribe: one publisher → up to N subscribers on ONE shared ring.
 *
 * Every subscriber sees every message (a broadcast), each at its own pace, from the same
 * bytes: publishing costs the same whatever the number of subscribers, and each subscriber
 * has its own position on its own cache line. Messages have variable size; both sides work
 * in place (zero copy), with copying send/recv built on top.
 *
 *   publisher                               subscriber
 *   shmkit_pubsub_loan(ps, n, &p)           shmkit_pubsub_peek(ps, &p, &n)
 *   ...write up to n bytes at p...          ...read n bytes at p...
 *   shmkit_pubsub_commit(ps, used, 0)       shmkit_pubsub_release(ps, 0)   (0 = it was valid)
 *
 * The policy is chosen at creation:
 *
 *   SHMKIT_PUBSUB_BLOCK (lossless). The publisher waits (spin, then futex, with a deadline)
 *     for the slowest live subscriber. A subscriber that dies is noticed within 100 ms of
 *     the publisher waiting on it, dropped (its slot is freed) and never stalls the others.
 *
 *   SHMKIT_PUBSUB_OVERWRITE (latest wins: video frames, telemetry). The publisher never
 *     waits; it overwrites the oldest messages. A subscriber that was lapped gets -ESTALE
 *     once, learns the exact number of messages it lost from shmkit_pubsub_lost(), and its
 *     next peek returns the oldest message still valid. A zero-copy read may be overwritten
 *     WHILE it is read: shmkit_pubsub_release() (or shmkit_pubsub_validate()) then returns
 *     -ESTALE, and the subscriber must discard what it read. Never act on a message before
 *     that check returned 0. The bytes may change under the reader, so read them with
 *     relaxed atomics (shmkit_seqlock_load()) if the program is checked with a race
 *     detector, or use shmkit_pubsub_recv(), which does both (copy, then validate).
 *
 * Joining and leaving: subscribers attach and detach at any time. A new subscriber starts
 * with the next message published, or — when the channel keeps history (opts.history = K)
 * — with the last K messages still in the ring (every one still there when fewer than K
 * are left).
 *
 * End of stream and death, as in the stream channel (chan.h): after the publisher closes,
 * subscribers receive everything published before, then -EPIPE; a publisher killed with
 * SIGKILL is reported to waiting subscribers as -EOWNERDEAD (after everything it published
 * was delivered) within 100 ms, and a new publisher may attach and continue the stream.
 *
 * Lost messages (-ESTALE) are reported only in overwrite mode — and, in either mode, when a
 * publisher died between numbering a batch of messages and publishing it (the numbers of
 * that batch are then skipped and counted as lost).
 *
 * Trust: every position, record header and sequence number read from shared memory is
 * validated before use; a corrupt value yields -EBADMSG, never an out-of-bounds access or
 * a hang. A subscriber whose published position is corrupt is ignored by a block-mode
 * publisher (it cannot belong to a subscriber that follows the protocol).
 *
 * Threads: a handle is used by one thread at a time. Handles do not survive fork().
 */
#ifndef SHMKIT_PUBSUB_H
#define SHMKIT_PUBSUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "segment.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

enum shmkit_pubsub_role {
	SHMKIT_PUBSUB_OBSERVER = 0, /* no role: the role of a read-only handle (statistics),
				     * asked for with SHMKIT_SEG_RDONLY in opts->seg.flags */
	SHMKIT_PUBSUB_PUBLISHER = 1,
	SHMKIT_PUBSUB_SUBSCRIBER = 2,
};

enum shmkit_pubsub_policy {
	SHMKIT_PUBSUB_BLOCK = 0,     /* lossless: the publisher waits for the slowest subscriber */
	SHMKIT_PUBSUB_OVERWRITE = 1, /* latest wins: lapped subscribers lose the oldest messages */
};

/* Flags: call flags in the low byte, option flags in the second (never one bit for two
 * flags of the kind: a flag passed to the wrong call is -EINVAL). */

/* Flags for shmkit_pubsub_commit() / shmkit_pubsub_release(). */
#define SHMKIT_PUBSUB_MORE 0x1u /* batch: publish later (flush, or the next call without it;
				 * a release: nothing else publishes it) */

/* Flags for shmkit_pubsub_opts.flags. */
#define SHMKIT_PUBSUB_NO_SPIN 0x100u    /* never spin before sleeping */
#define SHMKIT_PUBSUB_NO_HISTORY 0x200u /* subscriber: start with the next message even when
				       * the channel keeps history */

#define SHMKIT_PUBSUB_DEFAULT_CAPACITY (1u << 20)
#define SHMKIT_PUBSUB_DEFAULT_SUBSCRIBERS 16u
#define SHMKIT_PUBSUB_MAX_SUBSCRIBERS 1024u
#define SHMKIT_PUBSUB_MAX_HISTORY 65536u

struct shmkit_pubsub_opts {
	uint64_t capacity;        /* create: ring bytes, a power of two (rounded up) from 4 KiB;
				   * 0 = 1 MiB, or 4 × (max_msg + 16) when max_msg is given */
	uint64_t max_msg;         /* create: largest message; 0 = capacity / 4; at most
				   * capacity / 2 - 16 */
	uint32_t max_subscribers; /* create: 1..SHMKIT_PUBSUB_MAX_SUBSCRIBERS (0 = 16) */
	uint32_t policy;          /* create: enum shmkit_pubsub_policy */
	uint32_t history;         /* create: messages a late subscriber starts with
				   * (0..SHMKIT_PUBSUB_MAX_HISTORY, 0 = none) */
	uint32_t spin_ns;         /* longest spin before sleeping (0 = 50 µs); adaptive */
	uint32_t flags;           /* SHMKIT_PUBSUB_NO_SPIN, SHMKIT_PUBSUB_NO_HISTORY; other
				   * bits: -EINVAL */
	uint32_t reserved0;       /* must be 0 */
	struct shmkit_segment_opts seg; /* backend, mode, System V key, huge pages,
					 * SHMKIT_SEG_PERSISTENT, SHMKIT_SEG_RDONLY (open) */
	uint64_t reserved[4];     /* must be 0, else -EINVAL (room for later options) */
};

/* The channel as a whole (a snapshot of shared counters; values another process writes are
 * only as trustworthy as that process). */
struct shmkit_pubsub_stats {
	uint64_t capacity;          /* ring bytes */
	uint64_t max_msg;           /* largest message */
	uint32_t policy;            /* enum shmkit_pubsub_policy */
	uint32_t max_subscribers;
	uint32_t history;
	uint32_t subscribers;       /* slots held by a live process */
	uint64_t next_seq;          /* sequence number of the next message = messages published */
	uint64_t msgs_published, bytes_published; /* by the current publisher session */
	uint64_t publisher_sleeps;  /* futex sleeps waiting for the slowest subscriber */
	uint64_t publisher_wakes;   /* wake-up calls made for sleeping subscribers */
	uint64_t subscribers_dropped; /* dead subscribers the publisher removed */
	int32_t publisher_pid;      /* 0 when none attached */
	int32_t publisher_alive;    /* 1 alive, 0 dead or none */
	int32_t closed;             /* 1 after the publisher closed */
	int32_t reserved;
};

/* One subscriber slot. */
struct shmkit_pubsub_sub_stats {
	uint32_t slot;    /* index 0..max_subscribers-1 */
	int32_t pid;      /* the holder's pid */
	int32_t alive;    /* 1 alive, 0 dead (not yet dropped) */
	int32_t joining;  /* 1 while it has not published a position yet */
	uint64_t lag;     /* messages published that it has not released (0 when unknown) */
	uint64_t lag_bytes; /* the same in ring bytes */
	uint64_t msgs, bytes; /* released by it */
	uint64_t lost;    /* messages it lost (overwritten before or while it read them) */
	uint64_t sleeps;  /* futex sleeps waiting for data */
};

struct shmkit_pubsub;

/* Creates a channel and attaches as `role` (PUBLISHER or SUBSCRIBER). `name` follows the
 * segment rules (NULL allowed for memfd). The lifetime is ephemeral unless opts->seg.flags
 * has SHMKIT_SEG_PERSISTENT. Errors: those of shmkit_segment_create(), -EINVAL for bad
 * sizes, policy or counts, unknown flag bits or non-zero reserved fields. */
SHMKIT_API int shmkit_pubsub_create(const char *name, int role,
				    const struct shmkit_pubsub_opts *opts,
				    struct shmkit_pubsub **psp);

/* Opens an existing channel and attaches as `role`. Read-only access (statistics and
 * liveness, no role, a read-only mapping): SHMKIT_SEG_RDONLY in opts->seg.flags with role
 * SHMKIT_PUBSUB_OBSERVER (either one without the other is -EINVAL). Errors: those of
 * shmkit_segment_open() (-ENOENT, -EAGAIN not ready, -EMEDIUMTYPE not a pub/sub
 * channel...), -EBUSY (a live process is the publisher), -ENOSPC (every subscriber slot is
 * held by a live process), -EPROTO (another layout version), -EBADMSG (corrupt control
 * block), -EINVAL as for create. Only opts->spin_ns, opts->flags and opts->seg (backend,
 * flags, key) are used. */
SHMKIT_API int shmkit_pubsub_open(const char *name, int role,
				  const struct shmkit_pubsub_opts *opts,
				  struct shmkit_pubsub **psp);

/* Same, from a descriptor (memfd); the descriptor is dup'ed. */
SHMKIT_API int shmkit_pubsub_open_fd(int fd, int role, const struct shmkit_pubsub_opts *opts,
				     struct shmkit_pubsub **psp);

/* Publisher: publishes what is pending, marks end of stream, wakes subscribers and gives
 * the role up. Subscriber: leaves (frees its slot; a block-mode publisher stops waiting for
 * it). Frees the handle (NULL accepted). The segment stays: see shmkit_pubsub_unlink(). */
SHMKIT_API int shmkit_pubsub_close(struct shmkit_pubsub *ps);

/* Removes the channel's name (mapped memory stays valid for whoever has it). 0, -ENOENT
 * (removed already), -EINVAL (NULL); memfd: 0. */
SHMKIT_API int shmkit_pubsub_unlink(struct shmkit_pubsub *ps);

SHMKIT_API struct shmkit_segment *shmkit_pubsub_segment(const struct shmkit_pubsub *ps);
SHMKIT_API size_t shmkit_pubsub_max_msg(const struct shmkit_pubsub *ps);
SHMKIT_API int shmkit_pubsub_policy(const struct shmkit_pubsub *ps);

/* --- publisher ---------------------------------------------------------------------------- */

/* Reserves room for a message of up to `len` bytes; *buf (16-byte aligned) is where to
 * write it. A new loan replaces an uncommitted one. Returns 0, -EAGAIN (block mode: the
 * slowest subscriber has not released the space yet), -EMSGSIZE, -EBADMSG, -EPERM (not the
 * publisher). Overwrite mode never returns -EAGAIN. The _wait form waits until the
 * deadline (NULL = none): also -ETIMEDOUT, -EINTR. */
SHMKIT_API int shmkit_pubsub_loan(struct shmkit_pubsub *ps, size_t len, void **buf);
SHMKIT_API int shmkit_pubsub_loan_wait(struct shmkit_pubsub *ps, size_t len, void **buf,
				       const struct timespec *deadline);

/* Commits the loan as a message of `len` bytes (<= the loaned length); publishes it (and
 * earlier MORE commits) unless flags has SHMKIT_PUBSUB_MORE. 0, -EINVAL, -EPERM. */
SHMKIT_API int shmkit_pubsub_commit(struct shmkit_pubsub *ps, size_t len, unsigned flags);

/* Publisher: publishes MORE commits. Subscriber: publishes MORE releases. */
SHMKIT_API int shmkit_pubsub_flush(struct shmkit_pubsub *ps);

/* loan + copy + commit (large copies in pieces, see shmkit__copy). In overwrite mode the
 * copy uses relaxed atomic stores: a subscriber reading concurrently is not a data race. */
SHMKIT_API int shmkit_pubsub_send(struct shmkit_pubsub *ps, const void *buf, size_t len);
SHMKIT_API int shmkit_pubsub_send_wait(struct shmkit_pubsub *ps, const void *buf, size_t len,
				       const struct timespec *deadline);

/* --- subscriber ---------------------------------------------------------------------------- */

/* Returns the next message in place: *buf (16-byte aligned) and *len, valid until
 * shmkit_pubsub_release(). Peeking again without releasing returns the same message.
 * Returns 0; -EAGAIN (nothing new); -EPIPE (publisher closed, everything received);
 * -ESTALE (messages were lost before this one — overwrite mode; shmkit_pubsub_lost() says
 * how many; nothing is returned, peek again); -EBADMSG; -EPERM (not a subscriber). The
 * _wait form also returns -ETIMEDOUT, -EOWNERDEAD (the publisher died; all it published
 * was delivered), -EINTR, and -EDEADLK when it would have to wait while this subscriber
 * holds MORE releases it has not published (hand them on, shmkit_pubsub_flush(), then
 * wait). Neither form publishes held releases. */
SHMKIT_API int shmkit_pubsub_peek(struct shmkit_pubsub *ps, const void **buf, size_t *len);
SHMKIT_API int shmkit_pubsub_peek_wait(struct shmkit_pubsub *ps, const void **buf, size_t *len,
				       const struct timespec *deadline);

/* Overwrite mode: whether the peeked message is still intact — 0, or -ESTALE when the
 * publisher has started to overwrite it (discard what was read; it counts as lost and the
 * peek is dropped). Block mode: always 0. -EINVAL when nothing is peeked. Cheap: one
 * acquire fence and one load of a line that changes rarely. */
SHMKIT_API int shmkit_pubsub_validate(struct shmkit_pubsub *ps);

/* Releases the peeked message after validating it (above): 0, or -ESTALE (what was read is
 * garbage; it counts as lost). Unless flags has SHMKIT_PUBSUB_MORE, publishes the new
 * position (block mode: the publisher may reuse the space). -EINVAL when nothing is
 * peeked. A MORE release stays private to this handle until shmkit_pubsub_flush(), a
 * release without MORE, or close publishes it — nothing else does — so release with MORE
 * as you copy a message out and flush once the copies reached their destination. */
SHMKIT_API int shmkit_pubsub_release(struct shmkit_pubsub *ps, unsigned flags);

/* Copies the next message into buf, validates and releases it. Returns its length, the
 * errors of peek (-ESTALE included: messages were lost, call again), -ESTALE when it was
 * overwritten during the copy, or -ENOBUFS when it is longer than `cap` (it stays;
 * SHMKIT_0.1 binaries get -EMSGSIZE). */
SHMKIT_API ssize_t shmkit_pubsub_recv(struct shmkit_pubsub *ps, void *buf, size_t cap);
SHMKIT_API ssize_t shmkit_pubsub_recv_wait(struct shmkit_pubsub *ps, void *buf, size_t cap,
					   const struct timespec *deadline);

/* Messages this subscriber lost since it joined. When `since` is not NULL, *since receives
 * the number lost since the previous call that passed a non-NULL `since` — e.g. the count
 * behind one -ESTALE. */
SHMKIT_API uint64_t shmkit_pubsub_lost(struct shmkit_pubsub *ps, uint64_t *since);

/* The sequence number of the message last returned by peek (messages are numbered from 0
 * by the publisher, without gaps except for lost ones); -EINVAL when none. */
SHMKIT_API int shmkit_pubsub_seq(const struct shmkit_pubsub *ps, uint64_t *seq);

/* --- state ------------------------------------------------------------------------------- */

SHMKIT_API int shmkit_pubsub_stats(const struct shmkit_pubsub *ps, struct shmkit_pubsub_stats *st);

/* Fills up to `n` entries for the subscriber slots that are held (alive or dead), in slot
 * order. Returns the number of held slots (may exceed n: call again with more room). */
SHMKIT_API int shmkit_pubsub_subscribers(const struct shmkit_pubsub *ps,
					 struct shmkit_pubsub_sub_stats *out, size_t n);

/* Subscriber: whether the publisher is attached and alive (1) or not (0). Publisher: the
 * number of live subscribers. */
SHMKIT_API int shmkit_pubsub_peer_alive(const struct shmkit_pubsub *ps);

/* --- bookkeeping that survives the publisher ----------------------------------------------
 * A publisher that forwards messages from elsewhere (shmkit bridge) must know after a crash
 * which of them reached the channel. As in the stream channel (shmkit_chan_note_store()),
 * the channel's position and a few words the publisher keeps in the control block decide:
 *
 *   shmkit_pubsub_position(ps, &p);          store the message's id and p in two notes
 *   loan, write, commit (without MORE)       (the id last: it marks the pair as current)
 *   after a crash: reopen as publisher; the message landed iff the position is now > p.
 *
 * Positions count ring bytes from the channel's creation (64 bits: they never wrap). A new
 * publisher starts at the end of what the previous one published: commits it made with
 * SHMKIT_PUBSUB_MORE and never published are not in the stream (unlike the stream
 * channel, where they are), so the test above holds for commits without MORE. */

/* Words of notes a pub/sub channel keeps for its publisher. */
#define SHMKIT_PUBSUB_NOTES 8u

/* Publisher: stores `val` as note `idx` (< SHMKIT_PUBSUB_NOTES). The library never reads or
 * clears notes: they are zero in a new channel and keep their value across publishers
 * (close, takeover, reopen). The store is ordered before the publisher's later commits
 * (release): a subscriber or a later publisher that sees a message sees the notes stored
 * before it. Returns 0, -EINVAL (idx out of range, ps NULL), -EPERM (not the publisher).
 * Trust: any process that maps the channel writable can change the notes; treat them as
 * input like the messages. */
SHMKIT_API int shmkit_pubsub_note_store(struct shmkit_pubsub *ps, unsigned idx, uint64_t val);

/* Any role: reads note `idx` into *val (acquire). 0 or -EINVAL. */
SHMKIT_API int shmkit_pubsub_note_load(const struct shmkit_pubsub *ps, unsigned idx,
				       uint64_t *val);

/* This side's position in *pos: for the publisher, the end of its last commit (MORE
 * commits included; a loan is not a commit); for a subscriber, the end of the message it
 * has peeked, or where it stands when none is peeked (after its last release, or where a
 * lapped subscriber resumes). Positions only grow; each message has its own. Right after
 * attaching, a publisher's position is the end of the published stream; a subscriber's is
 * where it joined. Returns 0, -EINVAL, -EPERM (an observer has no position). Thread
 * safety: like the other calls on the handle. */
SHMKIT_API int shmkit_pubsub_position(const struct shmkit_pubsub *ps, uint64_t *pos);

#ifdef __cplusplus
}
#endif

#endif
