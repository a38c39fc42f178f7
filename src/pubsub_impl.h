/* shmkit — what the files of the pub/sub channel share (src/pubsub*.c). Never installed.
 *
 *   src/pubsub.c      the design (layout, protocol, crashes), creation and attachment, the
 *                     publisher's notes and the stream position, what both sides call
 *                     (flush, close, stats, ...) and the waitset hooks
 *   src/pubsub_pub.c  the publisher: loan, commit, send, and making room
 *   src/pubsub_sub.c  a subscriber: peek, release, receive, and losses
 * Here: the control block and slot layouts, the handle, and the record helpers every side
 * uses (static inline, rec_check() the one check of a record header); at the end, what
 * src/pubsub.c calls in the other two (shmkit__pubsub_*, hidden).
 */
#ifndef SHMKIT_PUBSUB_IMPL_H
#define SHMKIT_PUBSUB_IMPL_H

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "object.h"
#include "shmkit/pubsub.h"
#include "waitq_internal.h"

#define PS_MAGIC 0x313073706b6d6873ull /* "shmkps01" */
#define PS_VERSION 3u /* 2: membarrier handshake (16-byte wait queues); 3: in band */
#define PS_SLOTS_OFF 1024u
#define PS_SLOT_SIZE 128u
#define PS_MIN_CAP 4096u
#define PS_MAX_CAP ((uint64_t)1 << 40)
#define REC_HDR 16u
#define REC_PAD 1u
/* REC_NOW: published in band (top of src/pubsub.c): may be taken before `tail` covers it */
#define REC_NOW 2u
#define SUB_NONE 1u /* slot position "not positioned": odd, never a record boundary */
#define NO_LOAN UINT64_MAX
#define PS_CHUNKS 16u /* the reclaim's step: cap / PS_CHUNKS */
#define PS_TRIES 64 /* bound of every retry loop over shared data */

struct ps_ctl {
	/* immutable after creation */
	uint64_t magic;
	uint32_t version;
	uint32_t policy;
	uint64_t capacity;
	uint64_t max_msg;
	uint32_t max_subs;
	uint32_t history;
	uint64_t ring_offset;
	uint8_t pad0[80];
	/* publisher line */
	_Atomic uint64_t tail;
	_Atomic uint64_t next_seq;
	_Atomic uint64_t hist_pos;
	_Atomic uint64_t pub_owner;
	_Atomic uint32_t closed;
	_Atomic uint32_t pub_gen;
	_Atomic uint64_t msgs, bytes, sleeps, wakes, dropped;
	uint8_t pad2[48];
	/* reclaim line */
	_Atomic uint64_t oldest;
	_Atomic uint32_t members_gen;
	uint8_t pad3[116];
	struct shmkit__waitq data_q;
	uint8_t pad4[112];
	struct shmkit__waitq space_q;
	uint8_t pad5[112];
	uint8_t reserved[320];
	/* The publisher's notes, at the end of the reserved area: zero in a new channel, and
	 * never read or written by the library itself (shmkit_pubsub_note_store()). */
	_Atomic uint64_t notes[SHMKIT_PUBSUB_NOTES];
};

struct ps_slot {
	_Atomic uint64_t owner;
	_Atomic uint64_t pos;
	_Atomic uint64_t seq;
	_Atomic uint64_t msgs, bytes, lost, sleeps;
	uint8_t pad[72];
};

static_assert(offsetof(struct ps_ctl, policy) == 12, "layout");
static_assert(offsetof(struct ps_ctl, max_subs) == 32, "layout");
static_assert(offsetof(struct ps_ctl, ring_offset) == 40, "layout");
static_assert(offsetof(struct ps_ctl, tail) == 128, "publisher line");
static_assert(offsetof(struct ps_ctl, next_seq) == 136, "layout");
static_assert(offsetof(struct ps_ctl, hist_pos) == 144, "layout");
static_assert(offsetof(struct ps_ctl, pub_owner) == 152, "layout");
static_assert(offsetof(struct ps_ctl, closed) == 160, "layout");
static_assert(offsetof(struct ps_ctl, pub_gen) == 164, "layout");
static_assert(offsetof(struct ps_ctl, msgs) == 168, "layout");
static_assert(offsetof(struct ps_ctl, dropped) == 200, "layout");
static_assert(offsetof(struct ps_ctl, oldest) == 256, "reclaim line");
static_assert(offsetof(struct ps_ctl, members_gen) == 264, "layout");
static_assert(offsetof(struct ps_ctl, data_q) == 384, "data queue");
static_assert(offsetof(struct ps_ctl, space_q) == 512, "space queue");
static_assert(offsetof(struct ps_ctl, notes) == 960, "notes");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "notes are lock-free");
static_assert(sizeof(struct ps_ctl) == PS_SLOTS_OFF, "slots offset");
static_assert(sizeof(struct ps_slot) == PS_SLOT_SIZE, "slot size");
static_assert(offsetof(struct ps_slot, pos) == 8 && offsetof(struct ps_slot, seq) == 16 &&
		      offsetof(struct ps_slot, lost) == 40,
	      "slot layout");

struct shmkit_pubsub {
	struct shmkit_segment *seg;
	struct ps_ctl *ctl;
	struct ps_slot *slots;
	uint8_t *ring;
	uint64_t cap, mask, max_msg;
	uint32_t max_subs, history, policy;
	int role;
	uint32_t flags;
	uint64_t me;
	struct shmkit__spin spin;
	struct shmkit__wq wq; /* the handshake's mode and the segment's missed counter */

	/* publisher */
	uint64_t pos;          /* own position, including unpublished commits */
	uint64_t pub;          /* last tail stored */
	uint64_t seq;          /* number of the next commit */
	uint32_t gen;          /* pub_gen, even */
	uint64_t oldest;       /* last `oldest` stored: a record boundary <= pub */
	/* The reclaim memo (private, so trusted): bnd[k % PS_CHUNKS] is the first record
	 * boundary at or after the start of chunk k (cap/PS_CHUNKS bytes), noted by commit for
	 * the last lap that reached it; `oldest` advances to one without reading headers back. */
	uint64_t bnd[PS_CHUNKS];
	uint64_t chunk_next;   /* the first chunk start after pos */
	unsigned csh;          /* log2 of the chunk size */
	uint64_t loan_at, loan_len;
	uint64_t min_cache;    /* block: minimum live subscriber position at the last rescan */
	uint32_t gen_cache;    /* members_gen read at the start of that rescan */
	bool min_valid;
	int min_slot;          /* the slot that held the minimum (-1 none) */
	uint64_t want_L;       /* block: lower bound of the loan that found the ring full */
	uint64_t *hist;        /* the last `history` record positions (private ring) */
	uint64_t hist_n;       /* records entered */
	uint64_t msgs, bytes, sleeps, wakes, dropped;

	/* subscriber */
	struct ps_slot *my;
	uint64_t other;        /* last validated tail */
	uint64_t spub;         /* last position stored to the slot */
	bool held;             /* releases made with MORE since then (not handed back) */
	uint64_t expect;       /* number of the next message */
	bool have_expect;
	/* The message peeked (as the stream channel keeps it): it starts at pos, its number
	 * is `expect`, and peek_need (its record bytes, never 0) says one is peeked. */
	const uint8_t *peek_ptr;
	uint64_t peek_len, peek_need;
	bool have_last;
	uint64_t last_seq;
	uint64_t lost, lost_seen;
	uint64_t rmsgs, rbytes, rsleeps;
};

static inline uint64_t rec_need(uint64_t len)
{
	return REC_HDR + ((len + 15) & ~(uint64_t)15);
}

/* Header words are written and read as relaxed 64-bit atomics: single accesses that cannot
 * tear, and no data race for TSan; the ordering comes from tail (PS-R1/PS-A1) and, in overwrite
 * mode, from the `oldest` fences (PS-R3/PS-A3). */
static inline _Atomic uint64_t *rec_word(const struct shmkit_pubsub *ps, uint64_t off, int i)
{
	return (_Atomic uint64_t *)(void *)(ps->ring + off + 8 * (unsigned)i);
}

/* Whether a is at or after b in free-running position arithmetic. */
static inline bool pos_ge(uint64_t a, uint64_t b)
{
	return (int64_t)(a - b) >= 0;
}

/* The one check of a record header read from the ring (untrusted: any peer may have
 * written it). w0 is the header's first word, read once by the caller; off the record's
 * ring offset; avail the bytes published from there on. Returns the bytes the record
 * takes — for a PAD, everything to the ring's end — and sets *is_pad, or returns 0 when
 * the header is corrupt: a PAD must start past offset 0 and say exactly the bytes to the
 * end; a message must be flagged 0, at most max_msg long, and fit before the ring's end;
 * either must lie within what is published (in band: within the ring). The NOW flag is
 * ignored here; the callers that trust it test it. */
static inline uint64_t rec_check(const struct shmkit_pubsub *ps, uint64_t off, uint64_t w0,
			  uint64_t avail, bool *is_pad)
{
	uint32_t len = (uint32_t)w0, flags = (uint32_t)(w0 >> 32) & ~REC_NOW;
	uint64_t need;
	*is_pad = flags == REC_PAD;
	if (*is_pad) {
		need = ps->cap - off;
		if (off == 0 || len != need - REC_HDR)
			return 0;
	} else {
		need = rec_need(len);
		if (flags != 0 || len > ps->max_msg || off + need > ps->cap)
			return 0;
	}
	return need <= avail ? need : 0;
}

/* --- across the pub/sub files ------------------------------------------------------------- */

/* src/pubsub_pub.c */
void shmkit__pubsub_publish(struct shmkit_pubsub *ps);

/* src/pubsub_sub.c */
void shmkit__pubsub_sub_publish(struct shmkit_pubsub *ps);
bool shmkit__pubsub_overwritten(struct shmkit_pubsub *ps, uint64_t at);

#endif
