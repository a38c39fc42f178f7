/* shmkit — publish/subscribe: one publisher, up to N subscribers, one shared ring
 * (include/shmkit/pubsub.h).
 *
 * Layout of the segment's data area (offsets from shmkit_segment_data()):
 *
 *   offset size  field                          written by
 *        0    8  magic "shmkps01"               creator, before the segment is published
 *        8    4  version (3)                    creator
 *       12    4  policy (BLOCK 0, OVERWRITE 1)  creator
 *       16    8  capacity (ring bytes)          creator
 *       24    8  max_msg                        creator
 *       32    4  max_subs                       creator
 *       36    4  history (K)                    creator
 *       40    8  ring_offset                    creator: 1024 + 128 × max_subs
 *      128    8  tail                           publisher — end of the published records
 *      136    8  next_seq                       publisher — number of the next message
 *      144    8  hist_pos                       publisher — start of the K-th newest record
 *      152    8  publisher owner                publisher — pid << 32 | start time
 *      160    4  closed                         publisher — 1 after close (end of stream)
 *      164    4  pub_gen                        publisher — odd while it stores the three
 *                                                words above (a seqlock for joiners)
 *      168   40  msgs, bytes, sleeps, wakes, dropped subscribers        publisher
 *      256    8  oldest                         publisher — records below may be overwritten
 *      264    4  members_gen                    joining subscribers (fetch_add)
 *      384   16  data queue: gen, sleepers,     subscribers sleep, publisher wakes
 *                fenced (src/waitq_internal.h)
 *      512   16  space queue (same fields)      publisher sleeps, subscribers wake
 *      960   64  notes[8]                       publisher — the application's own words
 *                                                (shmkit_pubsub_note_store); the library
 *                                                never reads them
 *     1024  128  subscriber slot 0, 1, ... max_subs-1, one per 128 bytes:
 *                   0  8  owner   pid << 32 | start, 0 = free        (CAS: joiner, leaver,
 *                                                                      publisher drops dead)
 *                   8  8  pos     published read position, or 1 = not positioned yet
 *                  16  8  seq     number of the next message it expects (lag)
 *                  24 32  msgs, bytes, lost, sleeps                    the holder
 *   ring_offset  cap  the ring
 *
 * The publisher's line, the rarely-written `oldest` line, each wait queue and each
 * subscriber slot sit 128 bytes apart (adjacent-line prefetch): a busy channel moves the
 * ring itself (a caught-up subscriber polls the next record's header: in band, below),
 * the tail line (read by a subscriber once per batch when it is behind, or when nothing
 * came in band) and each subscriber's own line (read by the publisher only when its cache
 * says the ring is full).
 *
 * Records (16-byte aligned; a record never wraps — the publisher pads to the end of the
 * ring with a PAD record when a message does not fit there, as in src/ring.c):
 *
 *   offset size  field
 *        0    4  len      payload bytes (0 .. max_msg); PAD: bytes to the ring's end - 16
 *        4    4  flags    bit 0 PAD (else a message); bit 1 NOW: published in band
 *        8    8  seq      message number (0, 1, 2, ... without gaps); PAD: the number of
 *                         the message after it (diagnostics only)
 *       16  len  payload, then 0..15 bytes up to the next multiple of 16
 *
 * Positions are free-running 64-bit byte counts (offset = pos & (cap - 1)).
 *
 * Protocol
 *
 *   Publishing. The publisher writes records past `tail`, then makes pub_gen odd, stores
 *   next_seq, `tail` (PS-R1, release) and hist_pos, makes pub_gen even again (PS-R5), and wakes
 *   sleeping subscribers (the wait queue protocol of src/waitq_internal.h). Subscribers
 *   keep a private copy of `tail` and re-read the shared one (PS-A1) only when they have
 *   consumed everything up to their copy and nothing came in band: one shared read per
 *   batch, whatever the number of subscribers. pub_gen lets a joiner read (next_seq, tail,
 *   hist_pos) as one consistent triple (PS-A5), so it knows the number of the first message it
 *   must get and can count exactly what it loses even if it is lapped before its first
 *   read.
 *
 *   In band (as src/ring.c's stream, with one difference: the zeroing is unconditional).
 *   A commit stores the record's header with release (PS-R0) after its payload and seq
 *   word, flagged NOW; a caught-up subscriber loads the header at its position with
 *   acquire (PS-A0) and takes a NOW record without waiting for `tail` — one line to wait
 *   for instead of two in series (the tail's, then the record's). The tail is still
 *   stored right after every such commit (PS-R1), so sleepers, joiners, statistics and a
 *   taking-over publisher keep working from positions. The rules that make it safe:
 *   - PS-Z, clear before publish: the subscriber must never take stale bytes (an old
 *     header, or old payload that looks like one) for a header. So every commit first
 *     zeroes the header word right after its record (relaxed; PS-R0 orders it). The loan
 *     reserves those 16 bytes in its space check (reclaim in both policies, the slowest
 *     subscriber in block), so this is always possible: a record plus its padding plus
 *     16 is at most cap, since max_msg <= cap/2 - 16. Invariant: the header word at any
 *     record boundary a subscriber reaches holds 0 or a header written for this lap at
 *     this position, or (overwrite) bytes of a later lap, which the `oldest` check
 *     rejects. It reaches a boundary by taking the record before it (PS-A0 or PS-A1 saw
 *     that record's release, which came after its PS-Z), by joining at an acquired tail
 *     (the same), by a jump to `oldest` (a boundary at or below a tail it acquired: the
 *     same again, or read by that tail), or past a PAD (below). A taking-over publisher
 *     starts at the tail or after an adopted record, where PS-Z holds too.
 *   - PAD: stored in commit after the record at offset 0 (PS-R0 again), flagged NOW with
 *     it: a subscriber that takes the PAD in band finds the record at offset 0 already
 *     there. A PAD reached by the tail is followed by its record under the same tail.
 *   - MORE: a MORE commit is stored without NOW, so it is taken only once the tail covers
 *     it (publish, or the NOW commit that ends the batch). A subscriber cannot pass a
 *     record it has not taken, so a NOW record behind a held one stays invisible too.
 *   - Ahead of the tail: a subscriber may be up to a record (and its PAD) past `tail`
 *     after in-band takes. refresh_tail() accepts any tail from the last one seen on (it
 *     never moves back) and, in block mode, up to a ring ahead of our position; the
 *     waiters' checks (data_ready(), the waitset's watch_poll()) count a tail as news only
 *     when it is ahead of the position, so a publisher that died between PS-R0 and PS-R1
 *     does not leave them spinning. In-band takes stop a ring past the last tail seen, so
 *     a hostile ring of records that chain in band ends (inband_ok()).
 *   - Validation: a header taken in band goes through the one rec_check(), with the
 *     record's bounds from its own header against the private geometry (what is left of
 *     the ring) instead of the published region; everything else as by the tail.
 *   - Overwrite: an in-band read is validated like any other: the header word, seq word
 *     and payload loaded, then PS-A3 (acquire fence, `oldest`). A later lap's bytes at the
 *     position (a header, a PS-Z zero, payload) were written after the PS-R3 release fence
 *     that moved `oldest` past the position, so PS-A3 sees it and the subscriber jumps; a
 *     zero just sends it to the tail, which is then ahead, and the same check applies.
 *   - Joining: a joiner that starts at the tail it read in the triple reads the header
 *     there in band like anyone (PS-Z holds there: it acquired that tail); the join
 *     handshake below protects its start in block mode exactly as before, the `oldest`
 *     check in overwrite mode.
 *
 *   Reclaiming. Before writing a record that ends at position e, the publisher must be
 *   sure nobody still needs the bytes it overwrites, those below L = e - cap. It keeps
 *   `oldest`, a record boundary at or below tail, at or above L: it advances it in steps of
 *   at least cap/16 bytes, walking the record headers it wrote itself (validated as it
 *   reads them back; a bad one moves `oldest` to tail), stores it (PS-R3, release), then
 *   issues a release fence before writing over the reclaimed bytes.
 *   - Block policy: it also needs every live subscriber at or above L. It caches the
 *     minimum of the subscribers' positions and rescans the slots (O(N), acquire loads PS-A2
 *     pairing with the subscribers' releases PS-R2) only when the cache says "full", or after
 *     a subscriber joined (members_gen changed). A joiner stores its position, bumps
 *     members_gen, executes the handshake's barrier (WQ-B1 of src/waitq_internal.h:
 *     membarrier, or a fence in fenced mode), then re-reads `oldest` and moves up if it
 *     was passed. The publisher stores `oldest` (release; WQ-F2 in fenced mode) then loads
 *     members_gen. This is the sleep/wake handshake with the joiner as the sleeper: either
 *     the joiner sees the new `oldest` (and moves above it) or the publisher sees the new
 *     generation (and rescans, finding the joiner's position). So a settled
 *     subscriber's bytes are never overwritten. Subscribers never read `oldest` after they
 *     settle: the block-mode read path has no validation cost. A publisher that finds the
 *     ring full waits until the slowest subscriber has freed cap/16 bytes more than it
 *     needs, polling that one subscriber's line, then rescans: a publisher faster than its
 *     subscribers pays O(N) once per chunk, not once per message.
 *   - Overwrite policy: the publisher never looks at subscribers. Subscribers validate:
 *     after reading a record (header or payload) they issue an acquire fence and load
 *     `oldest` (PS-A3); if it passed the record's start, the publisher's release fence PS-R3
 *     guarantees any byte they read may be from the overwrite — they discard it (seqlock
 *     style: "validate after use"). A subscriber whose position is below `oldest` was
 *     lapped: it jumps to `oldest`, and the gap in message numbers (seq of the record found
 *     there minus the number it expected) is exactly the number of messages it lost.
 *
 *   Joining. A joiner starts at tail, expecting message next_seq; with history K the
 *   publisher keeps the positions of its last K records privately and publishes the first
 *   of them as hist_pos, and the joiner starts at max(hist_pos, oldest) — at `oldest`
 *   also when hist_pos lies more than a ring behind tail (fewer than K still there) —
 *   expecting the number in the header it finds there (read, then validated like any
 *   overwrite-mode read).
 *
 *   Waiting: spin (adaptive), then futex sleep with a sleeper count, in slices of 100 ms.
 *   Subscribers sleep on the data queue; a block-mode publisher sleeps on the space queue,
 *   which subscribers wake after storing their position.
 *
 * When a process dies
 *
 *   A subscriber: its slot keeps its last published position. A block-mode publisher
 *   waiting on it checks the owners of the slots after each 100 ms slice, frees the slots
 *   of dead ones (CAS owner -> 0), counts them as dropped, and goes on with the minimum of
 *   the others. An overwrite-mode publisher never notices; a joiner may take over the
 *   slot of a dead subscriber (CAS dead owner -> itself). A subscriber killed while it
 *   was registered as a sleeper leaves the sleeper count one too high: one needless
 *   FUTEX_WAKE per publish until another sleeper leaves.
 *
 *   The publisher: subscribers receive everything it published, then (waiting) -EOWNERDEAD
 *   within 100 ms. Loans and MORE commits it never published are not delivered. A record
 *   it committed in band (PS-R0) but died before publishing (PS-R1) counts as published:
 *   subscribers may have taken it, so a new publisher adopts it (committed_in_band(): a
 *   NOW header at the tail, after at most one PAD, with the number next_seq or the one
 *   before) and goes on after it. It dies between storing next_seq and tail of a batch
 *   with MORE records only in a window of two stores; the numbers of that batch are then
 *   skipped, and subscribers report them as lost (-ESTALE). A new publisher claims the
 *   role (CAS of the owner word from the dead word), re-reads tail, next_seq and oldest,
 *   validates them (a bad `oldest` is reset to tail), adopts an in-band record, publishes
 *   it and continues.
 *
 * Hostile peers: positions, headers and sequence numbers are read once, validated against
 * the private geometry, and every loop is bounded; garbage yields -EBADMSG, wrong data or
 * a wait until the caller's deadline — never an access outside the mapping or a hang.
 */
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
#define REC_NOW 2u /* published in band (top of file): may be taken before `tail` covers it */
#define SUB_NONE 1u /* slot position "not positioned": odd, never a record boundary */
#define NO_LOAN UINT64_MAX
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
	uint64_t expect;       /* number of the next message */
	bool have_expect;
	bool peeked;
	const uint8_t *peek_ptr;
	uint64_t peek_at, peek_len, peek_need, peek_seq;
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
static uint64_t rec_check(const struct shmkit_pubsub *ps, uint64_t off, uint64_t w0,
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

/* --- creation and attachment ------------------------------------------------------------- */

static bool geometry_ok(uint64_t cap, uint64_t max_msg)
{
	if (cap < PS_MIN_CAP || cap > PS_MAX_CAP || (cap & (cap - 1)))
		return false;
	return max_msg <= cap / 2 - REC_HDR;
}

/* The record a publisher that died committed in band but did not publish: it died between
 * the header store (PS-R0) and the tail store (PS-R1). A subscriber may have taken it already,
 * or may take it any moment, so a new publisher must go on after it, not overwrite it. The
 * slot at the tail was zeroed before the record that ends there was published (PS-Z), so a
 * REC_NOW header there was written for this position — after at most one PAD (stored after
 * the record at offset 0). Its number must be the one the dead publisher was at: next_seq s,
 * or s - 1 when it died after storing next_seq. Returns the position after the record and
 * sets *seq to the number after it and *len to its length, or returns t when there is
 * none. */
static uint64_t committed_in_band(struct shmkit_pubsub *ps, uint64_t t, uint64_t s,
				  uint64_t *seq, uint64_t *len)
{
	uint64_t pos = t;
	for (int pads = 0; pads < 2; pads++) {
		uint64_t off = pos & ps->mask;
		/* Acquire: pairs with PS-R0; the record is complete. */
		uint64_t w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_acquire);
		/* Relaxed: ordered by the acquire above. */
		uint64_t w1 = atomic_load_explicit(rec_word(ps, off, 1), memory_order_relaxed);
		bool pad;
		uint64_t n = rec_check(ps, off, w0, ps->cap - off, &pad);
		if (!((w0 >> 32) & REC_NOW) || !n)
			return t;
		pos += n;
		if (!pad) {
			if (w1 != s && w1 + 1 != s)
				return t; /* not the dead publisher's next record: a scribbler's */
			*seq = w1 + 1;
			*len = (uint32_t)w0;
			return pos;
		}
	}
	return t;
}

static void publish(struct shmkit_pubsub *ps);

static int attach_publisher(struct shmkit_pubsub *ps)
{
	struct ps_ctl *c = ps->ctl;
	/* Acquire on success (src/object.h): after the previous publisher's last publish. */
	int err = shmkit__role_claim(&c->pub_owner, ps->me);
	if (err)
		return err;
	/* Acquire: a taking-over publisher sees the records its predecessor published. */
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_acquire);
	uint64_t s = atomic_load_explicit(&c->next_seq, memory_order_acquire);
	uint64_t o = atomic_load_explicit(&c->oldest, memory_order_acquire);
	if (t & 15) {
		shmkit__role_release(&c->pub_owner, ps->me);
		return -EBADMSG;
	}
	if ((o & 15) || !pos_ge(t, o) || t - o > ps->cap) {
		/* A bad `oldest` (only a scribbler writes one) is reset to tail: everything
		 * before is given up, which is always a safe record boundary. Release: as PS-R3;
		 * the join handshake is not needed here (rescan at the first full ring). */
		o = t;
		atomic_store_explicit(&c->oldest, o, memory_order_release);
	}
	ps->pos = ps->pub = t;
	ps->seq = s;
	/* Adopt a record committed in band but not published; publish() below stores the
	 * tail past it (and next_seq after it), as its dead author would have. */
	uint64_t adopted = 0;
	ps->pos = committed_in_band(ps, t, s, &ps->seq, &adopted);
	/* Relaxed: our own (or the dead predecessor's) value; odd if it died mid-publish. */
	ps->gen = (atomic_load_explicit(&c->pub_gen, memory_order_relaxed) + 1) & ~1u;
	ps->oldest = o;
	ps->loan_len = NO_LOAN;
	ps->min_valid = false;
	ps->min_slot = -1;
	ps->hist_n = 0;
	/* Relaxed: a new session; ordered before our first publish (release). */
	atomic_store_explicit(&c->closed, 0, memory_order_relaxed);
	ps->msgs = atomic_load_explicit(&c->msgs, memory_order_relaxed);
	ps->bytes = atomic_load_explicit(&c->bytes, memory_order_relaxed);
	ps->sleeps = atomic_load_explicit(&c->sleeps, memory_order_relaxed);
	ps->wakes = atomic_load_explicit(&c->wakes, memory_order_relaxed);
	ps->dropped = atomic_load_explicit(&c->dropped, memory_order_relaxed);
	if (ps->pos != t) {
		ps->msgs++; /* the adopted record (its author never counted it) */
		ps->bytes += adopted;
		publish(ps);
	}
	return 0;
}

/* A free slot, else a dead subscriber's (src/object.h); acquire orders our use of it after
 * its previous holder's release (leave). */
static int claim_slot(struct shmkit_pubsub *ps)
{
	bool dead;
	return shmkit__role_claim_slot(&ps->slots[0].owner, sizeof ps->slots[0], ps->max_subs,
				       ps->me, &dead);
}

static void free_slot(struct shmkit_pubsub *ps)
{
	/* PS-R4: "not positioned" before giving the slot up, so a publisher that still sees our
	 * owner word ignores the stale position; pairs with PS-A2 in rescan(). Also the store
	 * half of the handshake with a publisher sleeping on us (see close). */
	atomic_store_explicit(&ps->my->pos, SUB_NONE, memory_order_release);
	shmkit__role_release(&ps->my->owner, ps->me);
}

static bool overwritten(struct shmkit_pubsub *ps, uint64_t at);

/* Reads (next_seq, tail, hist_pos) as one consistent triple. Returns false when the
 * publisher kept pub_gen odd through every try (it died mid-publish): the values are then
 * usable but may not match each other. */
static bool read_triple(struct ps_ctl *c, uint64_t *s, uint64_t *t, uint64_t *h)
{
	for (int tries = 0; tries < PS_TRIES; tries++) {
		/* PS-A5: pairs with PS-R5 in publish(). */
		uint32_t g = atomic_load_explicit(&c->pub_gen, memory_order_acquire);
		/* Relaxed: validated by the seqlock re-check below. */
		*s = atomic_load_explicit(&c->next_seq, memory_order_relaxed);
		/* PS-A1: pairs with PS-R1 in publish(): records below tail are visible. */
		*t = atomic_load_explicit(&c->tail, memory_order_acquire);
		*h = atomic_load_explicit(&c->hist_pos, memory_order_relaxed); /* as next_seq */
		shmkit__fence_acquire(); /* the seqlock reader's pattern (sync.c SEQ-A7) */
		if (!(g & 1) && atomic_load_explicit(&c->pub_gen, memory_order_relaxed) == g)
			return true;
		shmkit__cpu_relax();
	}
	return false;
}

static int attach_subscriber(struct shmkit_pubsub *ps)
{
	struct ps_ctl *c = ps->ctl;
	int slot = claim_slot(ps);
	if (slot < 0)
		return slot;
	ps->my = &ps->slots[slot];
	/* Relaxed: ordered before the position store below (release, then WQ-B1). */
	atomic_store_explicit(&ps->my->pos, SUB_NONE, memory_order_relaxed);
	atomic_store_explicit(&ps->my->msgs, 0, memory_order_relaxed);
	atomic_store_explicit(&ps->my->bytes, 0, memory_order_relaxed);
	atomic_store_explicit(&ps->my->lost, 0, memory_order_relaxed);
	atomic_store_explicit(&ps->my->sleeps, 0, memory_order_relaxed);
	bool history = ps->history && !(ps->flags & SHMKIT_PUBSUB_NO_HISTORY);
	bool ow = ps->policy == SHMKIT_PUBSUB_OVERWRITE;
	for (int tries = 0; tries < PS_TRIES; tries++) {
		uint64_t s, t, h;
		bool exact = read_triple(c, &s, &t, &h);
		/* Acquire: a first look; the join handshake re-reads it after WQ-B1 below. */
		uint64_t o = atomic_load_explicit(&c->oldest, memory_order_acquire);
		if ((t & 15) || (o & 15)) {
			free_slot(ps);
			return -EBADMSG;
		}
		if (!pos_ge(t, o) || t - o > ps->cap)
			continue; /* `oldest` moved past the tail we read: read again */
		/* History: the last K records still in the ring, so start at the K-th newest
		 * (hist_pos) or, when fewer than K are left (it was reclaimed, or lies more
		 * than a ring behind), at the oldest one still valid. Both are then validated
		 * like any start: the handshake below (block), the header read (overwrite). */
		uint64_t start = t;
		if (history && !(h & 15) && pos_ge(t, h))
			start = t - h <= ps->cap && pos_ge(h, o) ? h : o;
		/* Relaxed: statistics (lag) until our first release. */
		atomic_store_explicit(&ps->my->seq, s, memory_order_relaxed);
		/* The join handshake (top of file) — position, then generation, then WQ-B1, then
		 * the re-check. Release: the publisher's rescan (PS-A2) acquires the position. */
		atomic_store_explicit(&ps->my->pos, start, memory_order_release);
		atomic_fetch_add_explicit(&c->members_gen, 1, memory_order_release);
		shmkit__wq_barrier(&ps->wq);
		uint64_t o2 = atomic_load_explicit(&c->oldest, memory_order_acquire);
		if (!ow && !pos_ge(start, o2))
			continue; /* the publisher reclaimed past us meanwhile: move up */
		/* The number of the first message we must get: next_seq when we start at tail,
		 * else the number in the header at our start (after at most one PAD). */
		uint64_t expect = s, at = start;
		bool have = exact;
		for (int pads = 0; at != t && pads < 2; pads++) {
			uint64_t off = at & ps->mask;
			/* Relaxed: ordered by PS-A1; validated below. */
			uint64_t w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_relaxed);
			uint64_t w1 = atomic_load_explicit(rec_word(ps, off, 1), memory_order_relaxed);
			if (ow && overwritten(ps, at)) {
				have = false;
				break;
			}
			bool pad;
			uint64_t n = rec_check(ps, off, w0, t - at, &pad);
			if (n && pad) {
				at += n;
				continue;
			}
			have = n != 0;
			expect = w1;
			break;
		}
		if (ow && !have && tries + 1 < PS_TRIES)
			continue; /* lapped while joining: join again */
		ps->pos = ps->spub = start;
		ps->other = t;
		ps->expect = expect;
		ps->have_expect = have;
		ps->peeked = false;
		return 0;
	}
	free_slot(ps);
	return -EAGAIN;
}

static int ps_alloc(struct shmkit_segment *seg, int role, const struct shmkit_pubsub_opts *o,
		    struct shmkit_pubsub **psp)
{
	struct shmkit_pubsub *ps = calloc(1, sizeof *ps);
	if (!ps)
		return -ENOMEM;
	ps->seg = seg;
	ps->ctl = shmkit_segment_data(seg);
	ps->role = role;
	ps->flags = o ? o->flags : 0;
	ps->me = shmkit__self_owner();
	shmkit__spin_init(&ps->spin, o ? o->spin_ns : 0, o && (o->flags & SHMKIT_PUBSUB_NO_SPIN));
	*psp = ps;
	return 0;
}

/* Validates the control block (copying the immutable part once) and attaches the role. */
static int ps_attach(struct shmkit_pubsub *ps)
{
	struct ps_ctl *c = ps->ctl;
	size_t seg_size = shmkit_segment_size(ps->seg);
	if (seg_size < sizeof(struct ps_ctl))
		return -EBADMSG;
	/* Written before the segment was published; the open acquired its READY state: plain
	 * reads, copied once into locals. */
	uint64_t magic = c->magic, cap = c->capacity, max_msg = c->max_msg, off = c->ring_offset;
	uint32_t version = c->version, policy = c->policy, subs = c->max_subs, hist = c->history;
	int err = shmkit__layout_check(magic, PS_MAGIC, version, PS_VERSION);
	if (err)
		return err;
	if (!geometry_ok(cap, max_msg) || policy > SHMKIT_PUBSUB_OVERWRITE || subs == 0 ||
	    subs > SHMKIT_PUBSUB_MAX_SUBSCRIBERS || hist > SHMKIT_PUBSUB_MAX_HISTORY ||
	    off != PS_SLOTS_OFF + (uint64_t)PS_SLOT_SIZE * subs || off > seg_size ||
	    cap > seg_size - off)
		return -EBADMSG;
	ps->cap = cap;
	ps->mask = cap - 1;
	ps->max_msg = max_msg;
	ps->max_subs = subs;
	ps->history = hist;
	ps->policy = policy;
	ps->slots = (struct ps_slot *)(void *)((uint8_t *)c + PS_SLOTS_OFF);
	ps->ring = (uint8_t *)c + off;
	ps->min_slot = -1;
	ps->loan_len = NO_LOAN;
	if (ps->role != SHMKIT_PUBSUB_OBSERVER) /* before our first sleep, wake or join */
		shmkit__wq_attach(&ps->wq, ps->seg,
				  (struct shmkit__waitq *const[]){&c->data_q, &c->space_q}, 2);
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER) {
		if (hist) {
			ps->hist = calloc(hist, sizeof *ps->hist);
			if (!ps->hist)
				return -ENOMEM;
		}
		return attach_publisher(ps);
	}
	if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER)
		return attach_subscriber(ps);
	return 0;
}

static void ps_free(struct shmkit_pubsub *ps)
{
	free(ps->hist);
	free(ps);
}

/* Makes the handle for an opened (or just created) segment; on failure closes the segment,
 * and unlinks it first when this process created it. */
static int open_seg(struct shmkit_segment *seg, int role, const struct shmkit_pubsub_opts *o,
		    struct shmkit_pubsub **psp, bool unlink_on_error)
{
	struct shmkit_pubsub *ps;
	int err = ps_alloc(seg, role, o, &ps);
	if (!err) {
		err = ps_attach(ps);
		if (err)
			ps_free(ps);
	}
	if (err)
		return shmkit__segment_abandon(seg, unlink_on_error, err);
	*psp = ps;
	return 0;
}

#define PS_OPT_FLAGS (SHMKIT_PUBSUB_NO_SPIN | SHMKIT_PUBSUB_NO_HISTORY)

/* The option flags and reserved words (src/object.h). */
static int ps_opts_check(const struct shmkit_pubsub_opts *o)
{
	if (!o)
		return 0;
	return o->reserved0 ? -EINVAL : shmkit__opts_check(o->flags, PS_OPT_FLAGS, o->reserved, 4);
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_create, shmkit_pubsub_create, SHMKIT_0.2);
int shmkit__pubsub_create(const char *name, int role, const struct shmkit_pubsub_opts *opts,
			  struct shmkit_pubsub **psp)
{
	if (!psp)
		return -EINVAL;
	*psp = NULL;
	static const struct shmkit_pubsub_opts defaults;
	const struct shmkit_pubsub_opts *o = opts ? opts : &defaults;
	int err = ps_opts_check(o);
	if (!err)
		err = shmkit__role_check(role, &o->seg, true);
	if (err)
		return err;
	uint64_t cap = o->capacity, max_msg = o->max_msg;
	uint32_t subs = o->max_subscribers ? o->max_subscribers : SHMKIT_PUBSUB_DEFAULT_SUBSCRIBERS;
	if (cap > PS_MAX_CAP || max_msg > PS_MAX_CAP || subs > SHMKIT_PUBSUB_MAX_SUBSCRIBERS ||
	    o->policy > SHMKIT_PUBSUB_OVERWRITE || o->history > SHMKIT_PUBSUB_MAX_HISTORY)
		return -EINVAL;
	if (cap == 0)
		cap = max_msg ? 4 * (max_msg + REC_HDR) : SHMKIT_PUBSUB_DEFAULT_CAPACITY;
	cap = shmkit__next_pow2(cap, PS_MIN_CAP, PS_MAX_CAP);
	if (max_msg == 0)
		max_msg = cap / 4;
	if (!geometry_ok(cap, max_msg))
		return -EINVAL;
	uint64_t ring_off = PS_SLOTS_OFF + (uint64_t)PS_SLOT_SIZE * subs;

	struct shmkit_segment *seg;
	err = shmkit__object_create(name, SHMKIT_KIND_PUBSUB, ring_off + cap, &o->seg, &seg);
	if (err)
		return err;
	struct ps_ctl *c = shmkit_segment_data(seg);
	/* Zero-filled memory: positions, owners, counters and queues start at 0. */
	c->magic = PS_MAGIC;
	c->version = PS_VERSION;
	c->policy = o->policy;
	c->capacity = cap;
	c->max_msg = max_msg;
	c->max_subs = subs;
	c->history = o->history;
	c->ring_offset = ring_off;
	shmkit_segment_publish(seg); /* release: the fields above are visible to openers */

	return open_seg(seg, role, o, psp, true);
}

/* What shmkit_pubsub_open() and shmkit_pubsub_open_fd() share. */
static int ps_open(const struct shmkit__seg_src *src, int role,
		   const struct shmkit_pubsub_opts *opts, struct shmkit_pubsub **psp)
{
	if (!psp)
		return -EINVAL;
	*psp = NULL;
	int err = ps_opts_check(opts);
	if (!err) /* an observer (no role) is read-only, and only an observer is */
		err = shmkit__role_check(role, opts ? &opts->seg : NULL, false);
	struct shmkit_segment *seg;
	if (!err)
		err = shmkit__object_open(src, SHMKIT_KIND_PUBSUB, PS_SLOTS_OFF,
					  opts ? &opts->seg : NULL, &seg);
	if (err)
		return err;
	return open_seg(seg, role, opts, psp, false);
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_open, shmkit_pubsub_open, SHMKIT_0.2);
int shmkit__pubsub_open(const char *name, int role, const struct shmkit_pubsub_opts *opts,
			struct shmkit_pubsub **psp)
{
	return ps_open(&(struct shmkit__seg_src){.name = name}, role, opts, psp);
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_open_fd, shmkit_pubsub_open_fd, SHMKIT_0.2);
int shmkit__pubsub_open_fd(int fd, int role, const struct shmkit_pubsub_opts *opts,
			   struct shmkit_pubsub **psp)
{
	return ps_open(&(struct shmkit__seg_src){.fd = fd, .by_fd = true}, role, opts, psp);
}

/* --- publisher ------------------------------------------------------------------------------ */

static void publish(struct shmkit_pubsub *ps)
{
	struct ps_ctl *c = ps->ctl;
	if (ps->pos == ps->pub)
		return;
	/* pub_gen odd: a joiner reading the triple below retries. Relaxed + release fence:
	 * the seqlock writer's pattern (sync.c SEQ-R4). */
	atomic_store_explicit(&c->pub_gen, ps->gen + 1, memory_order_relaxed);
	shmkit__fence_release();
	/* Relaxed: ordered before the tail store (PS-R1), which subscribers acquire. */
	atomic_store_explicit(&c->next_seq, ps->seq, memory_order_relaxed);
	/* PS-R1: publishes the records up to pos; pairs with PS-A1 in peek() and attach. Also the
	 * store of the sleep/wake handshake with sleeping subscribers (src/waitq_internal.h):
	 * release, no fence. */
	atomic_store_explicit(&c->tail, ps->pos, memory_order_release);
	ps->pub = ps->pos;
	if (ps->history && ps->hist_n) {
		uint64_t first = ps->hist_n >= ps->history ? ps->hist[ps->hist_n % ps->history]
							   : ps->hist[0];
		/* Relaxed: inside the pub_gen seqlock. */
		atomic_store_explicit(&c->hist_pos, first, memory_order_relaxed);
	}
	ps->gen += 2;
	/* PS-R5: pub_gen even again: the triple is consistent; pairs with PS-A5 in
	 * attach_subscriber(). */
	atomic_store_explicit(&c->pub_gen, ps->gen, memory_order_release);
	/* Relaxed: statistics, single writer. */
	atomic_store_explicit(&c->msgs, ps->msgs, memory_order_relaxed);
	atomic_store_explicit(&c->bytes, ps->bytes, memory_order_relaxed);
	if (shmkit__waitq_wake(&c->data_q, INT_MAX)) {
		ps->wakes++;
		atomic_store_explicit(&c->wakes, ps->wakes, memory_order_relaxed); /* statistics */
	}
}

/* Block mode: recomputes the minimum position of the live subscribers. With check_dead,
 * also frees the slots of dead ones (reads /proc: after a wait slice only). */
static void rescan(struct shmkit_pubsub *ps, bool check_dead)
{
	struct ps_ctl *c = ps->ctl;
	/* Acquire: read before the positions, so a joiner we miss below has changed the
	 * generation we cache (the join handshake's load is in advance_oldest()). */
	uint32_t g = atomic_load_explicit(&c->members_gen, memory_order_acquire);
	uint64_t min = UINT64_MAX;
	int min_slot = -1;
	for (uint32_t i = 0; i < ps->max_subs; i++) {
		struct ps_slot *s = &ps->slots[i];
		/* Acquire: orders the position load after the owner we judge it by. */
		uint64_t w = atomic_load_explicit(&s->owner, memory_order_acquire);
		if (w == 0)
			continue;
		if (check_dead && shmkit__owner_state(w) < 0) {
			/* acq_rel: frees the slot for a joiner; a joiner that took it over first
			 * makes this CAS fail, which is right: then the slot is alive again. */
			if (atomic_compare_exchange_strong_explicit(&s->owner, &w, 0,
								    memory_order_acq_rel,
								    memory_order_relaxed)) {
				ps->dropped++;
				atomic_store_explicit(&c->dropped, ps->dropped,
						      memory_order_relaxed); /* statistics */
			}
			continue;
		}
		/* PS-A2: pairs with PS-R2 in sub_publish() and PS-R4 in free_slot(): what the subscriber
		 * read below its position is done before we overwrite it. Also the re-check of
		 * the sleep/wake handshake (after WQ-B1) when we are about to sleep. */
		uint64_t p = atomic_load_explicit(&s->pos, memory_order_acquire);
		if (p == SUB_NONE)
			continue;
		/* A position outside [pub - cap, pub] cannot come from a subscriber that follows
		 * the protocol: ignore it rather than stall on it. */
		if ((p & 15) || !pos_ge(ps->pub, p) || ps->pub - p > ps->cap)
			continue;
		if (min_slot < 0 || !pos_ge(p, min)) {
			min = p;
			min_slot = (int)i;
		}
	}
	ps->min_cache = min;
	ps->min_slot = min_slot;
	ps->gen_cache = g;
	ps->min_valid = true;
}

/* Whether everything below L is free of live subscribers (block mode). */
static bool space_ok(struct shmkit_pubsub *ps, uint64_t L)
{
	if (ps->min_valid && (ps->min_slot < 0 || pos_ge(ps->min_cache, L)))
		return true;
	rescan(ps, false);
	return ps->min_slot < 0 || pos_ge(ps->min_cache, L);
}

/* Moves `oldest` to a record boundary at or above L (and a chunk beyond, so this runs once
 * per cap/16 bytes), never past the published tail. */
static void advance_oldest(struct shmkit_pubsub *ps, uint64_t L)
{
	struct ps_ctl *c = ps->ctl;
	if (!pos_ge(ps->pub, L))
		publish(ps); /* MORE commits would be overwritten unpublished: publish first */
	uint64_t target = L + ps->cap / 16, limit = ps->pub, cur = ps->oldest;
	bool bad = false;
	/* At most cap/16 records (16 bytes minimum each) lie between cur and limit. */
	for (uint64_t steps = 0; !pos_ge(cur, target) && !pos_ge(cur, limit); steps++) {
		uint64_t off = cur & ps->mask;
		/* Relaxed: our own header, read back; validated like a peer's. */
		uint64_t w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_relaxed);
		bool pad;
		uint64_t n = rec_check(ps, off, w0, limit - cur, &pad);
		if (n == 0 || steps > ps->cap / REC_HDR) {
			bad = true;
			break;
		}
		cur += n;
	}
	if (bad)
		cur = limit; /* give up everything published: always a boundary */
	ps->oldest = cur;
	/* PS-R3: the publisher's store in the join handshake (block) — followed by a release
	 * fence so that no write into the reclaimed bytes becomes visible before the new
	 * `oldest`; pairs with PS-A3 in the subscribers' validation (overwrite). */
	atomic_store_explicit(&c->oldest, cur, memory_order_release);
	shmkit__fence_release();
	if (ps->policy == SHMKIT_PUBSUB_BLOCK) {
		/* The join handshake's load (top of file): WQ-F2 in fenced mode, else ordered by
		 * the joiner's WQ-B1. Relaxed: only compared with our cache. */
		shmkit__wq_waker_barrier(&c->data_q.fenced);
		if (atomic_load_explicit(&c->members_gen, memory_order_relaxed) != ps->gen_cache)
			ps->min_valid = false; /* somebody joined: rescan before overwriting */
	}
}

int shmkit_pubsub_loan(struct shmkit_pubsub *ps, size_t len, void **buf)
{
	if (!ps || !buf)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_PUBLISHER)
		return -EPERM;
	if (len > ps->max_msg)
		return -EMSGSIZE;
	uint64_t need = rec_need(len);
	uint64_t off = ps->pos & ps->mask;
	uint64_t pad = off + need > ps->cap ? ps->cap - off : 0;
	/* The record, its padding, and the next header slot, which commit zeroes (PS-Z). */
	uint64_t end = ps->pos + pad + need + REC_HDR;
	if (end > ps->cap) {
		uint64_t L = end - ps->cap;
		if (!pos_ge(ps->oldest, L))
			advance_oldest(ps, L);
		if (ps->policy == SHMKIT_PUBSUB_BLOCK && !space_ok(ps, L)) {
			publish(ps); /* a full ring must not hide unpublished MORE commits */
			/* Hysteresis for the wait: resume only once the slowest subscriber freed a
			 * chunk (cap/16) beyond what this loan needs, so that a publisher faster
			 * than its subscribers rescans the N slots once per chunk, not once per
			 * message. Never beyond the tail: subscribers cannot pass it. */
			uint64_t want = L + ps->cap / 16;
			ps->want_L = pos_ge(ps->pub, want) ? want : ps->pub;
			return -EAGAIN;
		}
	}
	/* The padding header, if any, is written by commit (after the record's: PS-R0). */
	ps->loan_at = ps->pos + pad;
	ps->loan_len = len;
	*buf = ps->ring + (ps->loan_at & ps->mask) + REC_HDR;
	return 0;
}

int shmkit_pubsub_commit(struct shmkit_pubsub *ps, size_t len, unsigned flags)
{
	if (!ps || (flags & ~SHMKIT_PUBSUB_MORE))
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_PUBLISHER)
		return -EPERM;
	if (ps->loan_len == NO_LOAN || len > ps->loan_len)
		return -EINVAL;
	uint64_t off = ps->loan_at & ps->mask, end = ps->loan_at + rec_need(len);
	uint64_t now = flags & SHMKIT_PUBSUB_MORE ? 0 : (uint64_t)REC_NOW << 32;
	/* PS-Z: zero the next header slot before this record becomes visible, so that a
	 * subscriber that takes this record and moves on finds there either 0 or a header
	 * written for this lap, never stale bytes that look like one (top of file). The loan
	 * reserved the slot. Relaxed: ordered by the release store below. */
	atomic_store_explicit(rec_word(ps, end & ps->mask, 0), 0, memory_order_relaxed);
	/* Relaxed: ordered by the release store below. */
	atomic_store_explicit(rec_word(ps, off, 1), ps->seq, memory_order_relaxed);
	/* PS-R0: release — the payload, the seq word and the zeroed next slot before the
	 * header; pairs with PS-A0 in peek_once() and data_ready() (in band) and, for a
	 * MORE record (no REC_NOW), is published by PS-R1 like before. */
	atomic_store_explicit(rec_word(ps, off, 0), (uint64_t)len | now, memory_order_release);
	if (ps->loan_at != ps->pos) {
		/* The PAD goes last (PS-R0 again): a subscriber that takes it in band goes on
		 * to the record at offset 0, which must be there already. Its seq word is the
		 * number of that record (for diagnostics; readers do not rely on it). */
		uint64_t poff = ps->pos & ps->mask;
		atomic_store_explicit(rec_word(ps, poff, 1), ps->seq, memory_order_relaxed);
		atomic_store_explicit(rec_word(ps, poff, 0),
				      (ps->loan_at - ps->pos - REC_HDR) | (uint64_t)REC_PAD << 32 | now,
				      memory_order_release);
	}
	if (ps->history) {
		ps->hist[ps->hist_n % ps->history] = ps->loan_at;
		ps->hist_n++;
	}
	ps->pos = end;
	ps->seq++;
	ps->loan_len = NO_LOAN;
	ps->msgs++;
	ps->bytes += len;
	if (!(flags & SHMKIT_PUBSUB_MORE))
		publish(ps);
	return 0;
}

struct space_ctx {
	struct shmkit_pubsub *ps;
	bool sc;
};

/* Block-mode publisher: whether the loan that found the ring full may fit now. */
static bool space_ready(void *arg)
{
	struct space_ctx *x = arg;
	struct shmkit_pubsub *ps = x->ps;
	if (!x->sc) {
		/* Cheap pre-check while spinning: did the slowest subscriber get past the mark
		 * (or leave)? One line polled, not N; the rescan that follows re-reads them. */
		if (ps->min_slot < 0)
			return true;
		struct ps_slot *s = &ps->slots[ps->min_slot];
		/* Acquire: as PS-A2. Relaxed owner: a hint to rescan, re-read there. */
		uint64_t p = atomic_load_explicit(&s->pos, memory_order_acquire);
		return (p != SUB_NONE && pos_ge(p, ps->want_L)) ||
		       atomic_load_explicit(&s->owner, memory_order_relaxed) == 0;
	}
	rescan(ps, false); /* the re-check after WQ-B1 */
	return ps->min_slot < 0 || pos_ge(ps->min_cache, ps->want_L);
}

static int wait_space(struct shmkit_pubsub *ps, const struct timespec *deadline)
{
	/* The loan just failed: never try again past the deadline. */
	if (shmkit__deadline_passed(deadline, shmkit_now_ns()))
		return -ETIMEDOUT;
	struct space_ctx x = {ps, false};
	if (shmkit__spin_wait(&ps->spin, space_ready, &x))
		return 0;
	x.sc = true;
	bool slept;
	int r = shmkit__waitq_sleep(&ps->ctl->space_q, &ps->wq, space_ready, &x, deadline,
				    SHMKIT__SLICE_NS, &slept);
	if (r == 0)
		shmkit__spin_learn(&ps->spin); /* woken soon: spin that long next time */
	if (slept) {
		ps->sleeps++;
		atomic_store_explicit(&ps->ctl->sleeps, ps->sleeps, memory_order_relaxed); /* stats */
	}
	if (r == 1 || r == -ETIMEDOUT) {
		/* A slice (or the deadline) passed while full: drop dead subscribers. */
		rescan(ps, true);
		if (ps->min_slot < 0 || pos_ge(ps->min_cache, ps->want_L))
			return 0;
	}
	return r == 1 ? 0 : r;
}

int shmkit_pubsub_loan_wait(struct shmkit_pubsub *ps, size_t len, void **buf,
			    const struct timespec *deadline)
{
	for (;;) {
		int err = shmkit_pubsub_loan(ps, len, buf);
		if (err != -EAGAIN)
			return err;
		err = wait_space(ps, deadline);
		if (err)
			return err;
	}
}

static int send_copy(struct shmkit_pubsub *ps, void *p, const void *buf, size_t len)
{
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE)
		shmkit_seqlock_store(p, buf, len); /* relaxed atomics: lapped readers may race */
	else
		shmkit__copy(p, buf, len);
	return shmkit_pubsub_commit(ps, len, 0);
}

int shmkit_pubsub_send(struct shmkit_pubsub *ps, const void *buf, size_t len)
{
	void *p;
	int err = shmkit_pubsub_loan(ps, len, &p);
	return err ? err : send_copy(ps, p, buf, len);
}

int shmkit_pubsub_send_wait(struct shmkit_pubsub *ps, const void *buf, size_t len,
			    const struct timespec *deadline)
{
	void *p;
	int err = shmkit_pubsub_loan_wait(ps, len, &p, deadline);
	return err ? err : send_copy(ps, p, buf, len);
}

/* --- subscriber ------------------------------------------------------------------------------ */

static void sub_publish(struct shmkit_pubsub *ps)
{
	struct ps_slot *s = ps->my;
	if (ps->pos == ps->spub)
		return;
	/* Relaxed: statistics (lag, counters), single writer. */
	atomic_store_explicit(&s->seq, ps->expect, memory_order_relaxed);
	atomic_store_explicit(&s->msgs, ps->rmsgs, memory_order_relaxed);
	atomic_store_explicit(&s->bytes, ps->rbytes, memory_order_relaxed);
	ps->spub = ps->pos;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE) {
		/* Relaxed: the overwrite publisher never reads it; statistics only. */
		atomic_store_explicit(&s->pos, ps->pos, memory_order_relaxed);
		return;
	}
	/* PS-R2: hands the bytes below pos back to the publisher; pairs with PS-A2 in rescan().
	 * Also the store of the sleep/wake handshake with a sleeping publisher. */
	atomic_store_explicit(&s->pos, ps->pos, memory_order_release);
	shmkit__waitq_wake(&ps->ctl->space_q, 1);
}

static void note_lost(struct shmkit_pubsub *ps, uint64_t n)
{
	ps->lost += n;
	atomic_store_explicit(&ps->my->lost, ps->lost, memory_order_relaxed); /* statistics */
}

/* Overwrite mode: whether the record that starts at `at` may have been overwritten.
 * PS-A3: the acquire fence orders every load of the record before the load of `oldest`;
 * pairs with the release fence PS-R3 in advance_oldest(): if any of our loads saw a byte of
 * an overwrite, we see the `oldest` stored before it. */
static bool overwritten(struct shmkit_pubsub *ps, uint64_t at)
{
	shmkit__fence_acquire();
	/* Relaxed: ordered by the fence above. */
	uint64_t o = atomic_load_explicit(&ps->ctl->oldest, memory_order_relaxed);
	return !pos_ge(at, o);
}

/* Re-reads the tail. It never moves back from the last one seen, and the subscriber may be
 * ahead of it after in-band takes (up to a ring: see inband_ok()); in block mode it is at
 * most a ring ahead of our position. */
static int refresh_tail(struct shmkit_pubsub *ps)
{
	/* PS-A1: pairs with PS-R1 in publish(): the records below tail are visible. */
	uint64_t t = atomic_load_explicit(&ps->ctl->tail, memory_order_acquire);
	if ((t & 15) || !pos_ge(t, ps->other))
		return -EBADMSG;
	if (ps->policy == SHMKIT_PUBSUB_BLOCK && pos_ge(t, ps->pos) && t - ps->pos > ps->cap)
		return -EBADMSG;
	ps->other = t;
	return 0;
}

/* Whether the last tail seen covers a record at our position. */
static inline bool covered(const struct shmkit_pubsub *ps)
{
	return (int64_t)(ps->other - ps->pos) > 0;
}

/* Whether the header at our position may be read in band (the caller knows it is not
 * covered): at most a ring ahead of the last tail seen — an honest publisher is never more
 * than one record (and its PAD) ahead of its tail, and a hostile ring of records that chain
 * in band runs out after one lap. */
static inline bool inband_ok(const struct shmkit_pubsub *ps)
{
	return ps->pos - ps->other <= ps->cap;
}

static int peek_once(struct shmkit_pubsub *ps, const void **buf, uint64_t *len)
{
	bool ow = ps->policy == SHMKIT_PUBSUB_OVERWRITE;
	for (int i = 0; i < PS_TRIES; i++) {
		uint64_t off = ps->pos & ps->mask, w0 = 0;
		bool ib = false;
		if (!covered(ps)) {
			/* Beyond the tail we know: a record published in band first — reading
			 * the tail now would wait for the line the publisher writes after it.
			 * PS-A0: pairs with PS-R0 in commit: the payload and seq word are there. */
			if (inband_ok(ps)) {
				w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_acquire);
				ib = (w0 >> 32) & REC_NOW;
			}
			if (!ib) {
				int err = refresh_tail(ps);
				if (err)
					return err;
				if (!covered(ps))
					return -EAGAIN;
			}
		}
		if (ow) {
			/* Acquire: a jump below lands on records published before this value. */
			uint64_t o = atomic_load_explicit(&ps->ctl->oldest, memory_order_acquire);
			if (o & 15)
				return -EBADMSG;
			if (!pos_ge(ps->pos, o)) {
				if (!pos_ge(ps->other, o)) {
					int err = refresh_tail(ps);
					if (err)
						return err;
					if (!pos_ge(ps->other, o))
						return -EBADMSG; /* oldest beyond tail */
				}
				ps->pos = o; /* lapped: the seq gap below counts the loss */
				continue;
			}
		}
		/* One read of each header word; everything below uses the copies. In band, the
		 * record's bounds come from its own header, checked against the geometry. */
		uint64_t avail = ps->cap - off;
		if (!ib) {
			avail = ps->other - ps->pos;
			if (avail > ps->cap)
				return -EBADMSG; /* lapped, yet `oldest` says not: corrupt */
			/* Relaxed: ordered by PS-A1. */
			w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_relaxed);
		}
		/* Relaxed: ordered by PS-A1 or PS-A0. */
		uint64_t w1 = atomic_load_explicit(rec_word(ps, off, 1), memory_order_relaxed);
		if (ow && overwritten(ps, ps->pos))
			continue; /* lapped while reading the header: jump */
		bool pad;
		uint64_t need = rec_check(ps, off, w0, avail, &pad);
		if (need == 0)
			return -EBADMSG;
		if (pad) {
			ps->pos += need;
			continue;
		}
		uint32_t rlen = (uint32_t)w0;
		if (!ps->have_expect) {
			ps->expect = w1;
			ps->have_expect = true;
		}
		if (w1 != ps->expect) {
			uint64_t gap = w1 - ps->expect;
			if (gap > ((uint64_t)1 << 62))
				return -EBADMSG; /* numbers went backwards */
			note_lost(ps, gap);
			ps->expect = w1;
			return -ESTALE; /* the record stays: the next peek returns it */
		}
		ps->peek_ptr = ps->ring + off + REC_HDR;
		ps->peek_at = ps->pos;
		ps->peek_len = rlen;
		ps->peek_need = need;
		ps->peek_seq = w1;
		ps->peeked = true;
		ps->have_last = true;
		ps->last_seq = w1;
		*buf = ps->peek_ptr;
		*len = rlen;
		return 0;
	}
	return -EAGAIN; /* lapped over and over (or a peer playing games): try again later */
}

int shmkit_pubsub_peek(struct shmkit_pubsub *ps, const void **buf, size_t *len)
{
	if (!ps || !buf || !len)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (ps->peeked) {
		*buf = ps->peek_ptr;
		*len = (size_t)ps->peek_len;
		return 0;
	}
	uint64_t n = 0;
	int err = peek_once(ps, buf, &n);
	if (err == -EAGAIN) {
		/* Held (MORE) releases stay held: only the subscriber knows whether it has
		 * handed those messages on yet (see shmkit_pubsub_release()). PS-A4: pairs with
		 * PS-R4' in shmkit_pubsub_close(): everything published before the close is
		 * visible, so one more peek decides between data and end of stream. */
		if (atomic_load_explicit(&ps->ctl->closed, memory_order_seq_cst)) {
			err = peek_once(ps, buf, &n);
			if (err == -EAGAIN)
				return -EPIPE;
		}
	}
	if (!err)
		*len = (size_t)n;
	return err;
}

/* Drops a peeked message that was overwritten while it was read. */
static int drop_stale(struct shmkit_pubsub *ps)
{
	ps->pos = ps->peek_at + ps->peek_need;
	ps->expect = ps->peek_seq + 1;
	ps->peeked = false;
	note_lost(ps, 1);
	return -ESTALE;
}

int shmkit_pubsub_validate(struct shmkit_pubsub *ps)
{
	if (!ps)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (!ps->peeked)
		return -EINVAL;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE && overwritten(ps, ps->peek_at))
		return drop_stale(ps);
	return 0;
}

int shmkit_pubsub_release(struct shmkit_pubsub *ps, unsigned flags)
{
	if (!ps || (flags & ~SHMKIT_PUBSUB_MORE))
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (!ps->peeked)
		return -EINVAL;
	int err = 0;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE && overwritten(ps, ps->peek_at)) {
		err = drop_stale(ps);
	} else {
		ps->pos = ps->peek_at + ps->peek_need;
		ps->expect = ps->peek_seq + 1;
		ps->peeked = false;
		ps->rmsgs++;
		ps->rbytes += ps->peek_len;
	}
	if (!(flags & SHMKIT_PUBSUB_MORE))
		sub_publish(ps);
	return err;
}

struct data_ctx {
	struct shmkit_pubsub *ps;
	bool sc;
};

/* Called after a peek found nothing. The in-band header first (the line that brings the
 * news first), then the tail; no validation: peek does it. While the slot is still empty,
 * the line after it is prefetched: a 64-byte message continues there (as in src/ring.h). */
static bool data_ready(void *arg)
{
	struct data_ctx *x = arg;
	struct shmkit_pubsub *ps = x->ps;
	struct ps_ctl *c = ps->ctl;
	memory_order mo = x->sc ? memory_order_seq_cst : memory_order_acquire;
	if (!covered(ps) && inband_ok(ps)) {
		/* PS-A0 (as in peek_once). */
		uint64_t w0 = atomic_load_explicit(rec_word(ps, ps->pos & ps->mask, 0), mo);
		if ((w0 >> 32) & REC_NOW)
			return true;
		if (!w0)
			__builtin_prefetch(ps->ring + ((ps->pos + 64) & ps->mask & ~(uint64_t)63));
	}
	/* PS-A1 (as in refresh_tail), also the sleep protocol's re-check after WQ-B1: the
	 * publisher stores the tail after every in-band commit. Ahead of our position only:
	 * we may be ahead of it after in-band takes. */
	return (int64_t)(atomic_load_explicit(&c->tail, mo) - ps->pos) > 0 ||
	       atomic_load_explicit(&c->closed, mo) != 0;
}

static int wait_data(struct shmkit_pubsub *ps, const struct timespec *deadline)
{
	/* The peek just found nothing: never try again past the deadline (a peer rewriting
	 * the tail could keep data_ready() saying yes while peek says no). */
	if (shmkit__deadline_passed(deadline, shmkit_now_ns())) {
		/* Is the publisher still there? As below. */
		uint64_t w = atomic_load_explicit(&ps->ctl->pub_owner, memory_order_acquire);
		return shmkit__owner_state(w) < 0 ? -EOWNERDEAD : -ETIMEDOUT;
	}
	struct data_ctx x = {ps, false};
	if (shmkit__spin_wait(&ps->spin, data_ready, &x))
		return 0;
	x.sc = true;
	bool slept;
	int r = shmkit__waitq_sleep(&ps->ctl->data_q, &ps->wq, data_ready, &x, deadline,
				    SHMKIT__SLICE_NS, &slept);
	if (r == 0)
		shmkit__spin_learn(&ps->spin); /* woken soon: spin that long next time */
	if (slept) {
		ps->rsleeps++;
		atomic_store_explicit(&ps->my->sleeps, ps->rsleeps, memory_order_relaxed); /* stats */
	}
	if (r == 1 || r == -ETIMEDOUT) {
		/* Is the publisher still there? Acquire: its last publish is visible. */
		uint64_t w = atomic_load_explicit(&ps->ctl->pub_owner, memory_order_acquire);
		if (shmkit__owner_state(w) < 0 && !data_ready(&x))
			return -EOWNERDEAD;
	}
	return r == 1 ? 0 : r;
}

int shmkit_pubsub_peek_wait(struct shmkit_pubsub *ps, const void **buf, size_t *len,
			    const struct timespec *deadline)
{
	for (;;) {
		int err = shmkit_pubsub_peek(ps, buf, len);
		if (err != -EAGAIN)
			return err;
		/* Waiting while holding releases could wait forever (block policy: the
		 * publisher may be waiting for that space); publishing them would hand back
		 * what the caller may not have passed on yet. Refuse (shmkit_pubsub(3)). */
		if (ps->pos != ps->spub)
			return -EDEADLK;
		err = wait_data(ps, deadline);
		if (err)
			return err;
	}
}

static ssize_t copy_out(struct shmkit_pubsub *ps, int err, const void *p, size_t n, void *buf,
			size_t cap)
{
	if (err)
		return err;
	if (n > cap)
		return -ENOBUFS; /* the caller's buffer is too small (shmkit_errors(7)) */
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE)
		shmkit_seqlock_load(buf, p, n); /* relaxed atomics: the publisher may be writing */
	else
		shmkit__copy(buf, p, n);
	err = shmkit_pubsub_release(ps, 0);
	return err ? err : (ssize_t)n;
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_recv, shmkit_pubsub_recv, SHMKIT_0.2);
ssize_t shmkit__pubsub_recv(struct shmkit_pubsub *ps, void *buf, size_t cap)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_pubsub_peek(ps, &p, &n);
	return copy_out(ps, err, p, n, buf, cap);
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_recv_wait, shmkit_pubsub_recv_wait, SHMKIT_0.2);
ssize_t shmkit__pubsub_recv_wait(struct shmkit_pubsub *ps, void *buf, size_t cap,
				 const struct timespec *deadline)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_pubsub_peek_wait(ps, &p, &n, deadline);
	return copy_out(ps, err, p, n, buf, cap);
}

uint64_t shmkit_pubsub_lost(struct shmkit_pubsub *ps, uint64_t *since)
{
	if (!ps)
		return 0;
	if (since) {
		*since = ps->lost - ps->lost_seen;
		ps->lost_seen = ps->lost;
	}
	return ps->lost;
}

int shmkit_pubsub_seq(const struct shmkit_pubsub *ps, uint64_t *seq)
{
	if (!ps || !seq || !ps->have_last)
		return -EINVAL;
	*seq = ps->last_seq;
	return 0;
}

/* --- the publisher's notes and the stream position --------------------------------------- */

int shmkit_pubsub_note_store(struct shmkit_pubsub *ps, unsigned idx, uint64_t val)
{
	if (!ps || idx >= SHMKIT_PUBSUB_NOTES)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_PUBLISHER)
		return -EPERM;
	/* PS-R6: release, so a note stored before a commit is visible to whoever sees the
	 * commit (the tail store PS-R1 comes later in program order); pairs with PS-A6 in
	 * shmkit_pubsub_note_load(). A publisher killed after the store leaves it in shared
	 * memory all the same: the store is complete or absent. */
	atomic_store_explicit(&ps->ctl->notes[idx], val, memory_order_release);
	return 0;
}

int shmkit_pubsub_note_load(const struct shmkit_pubsub *ps, unsigned idx, uint64_t *val)
{
	if (!ps || !val || idx >= SHMKIT_PUBSUB_NOTES)
		return -EINVAL;
	/* PS-A6: pairs with PS-R6 in shmkit_pubsub_note_store(). */
	*val = atomic_load_explicit(&ps->ctl->notes[idx], memory_order_acquire);
	return 0;
}

int shmkit_pubsub_position(const struct shmkit_pubsub *ps, uint64_t *pos)
{
	if (!ps || !pos)
		return -EINVAL;
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER)
		*pos = ps->pos; /* past the last commit, published or not (a loan is not) */
	else if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER)
		*pos = ps->peeked ? ps->peek_at + ps->peek_need : ps->pos;
	else
		return -EPERM;
	return 0;
}

/* --- both -------------------------------------------------------------------------------------- */

int shmkit_pubsub_flush(struct shmkit_pubsub *ps)
{
	if (!ps)
		return -EINVAL;
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER)
		publish(ps);
	else if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER)
		sub_publish(ps);
	return 0;
}

int shmkit_pubsub_close(struct shmkit_pubsub *ps)
{
	if (!ps)
		return 0;
	struct ps_ctl *c = ps->ctl;
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER) {
		publish(ps);
		/* PS-R4': end of stream after the last publish; pairs with PS-A4 in peek. Also the
		 * store of the handshake with sleeping subscribers. */
		atomic_store_explicit(&c->closed, 1, memory_order_release);
		shmkit__waitq_wake(&c->data_q, INT_MAX);
		uint64_t mine = ps->me;
		/* Release: whoever claims the role next sees our last positions. */
		atomic_compare_exchange_strong_explicit(&c->pub_owner, &mine, 0,
							memory_order_release, memory_order_relaxed);
	} else if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER) {
		sub_publish(ps);
		free_slot(ps);
		/* A block-mode publisher may be waiting for exactly us: free_slot's position
		 * store, then the handshake's load of the sleeper count. */
		shmkit__waitq_wake(&c->space_q, 1);
	}
	shmkit_segment_close(ps->seg);
	ps_free(ps);
	return 0;
}

int shmkit_pubsub_unlink(struct shmkit_pubsub *ps)
{
	return shmkit__object_unlink(ps ? ps->seg : NULL);
}

struct shmkit_segment *shmkit_pubsub_segment(const struct shmkit_pubsub *ps)
{
	return ps ? ps->seg : NULL;
}

size_t shmkit_pubsub_max_msg(const struct shmkit_pubsub *ps)
{
	return ps ? (size_t)ps->max_msg : 0;
}

int shmkit_pubsub_policy(const struct shmkit_pubsub *ps)
{
	return ps ? (int)ps->policy : -EINVAL;
}

int shmkit_pubsub_stats(const struct shmkit_pubsub *ps, struct shmkit_pubsub_stats *st)
{
	if (!ps || !st)
		return -EINVAL;
	struct ps_ctl *c = ps->ctl;
	memset(st, 0, sizeof *st);
	/* Relaxed throughout: a statistics snapshot. */
#define LD(x) atomic_load_explicit(&c->x, memory_order_relaxed)
	st->capacity = ps->cap;
	st->max_msg = ps->max_msg;
	st->policy = ps->policy;
	st->max_subscribers = ps->max_subs;
	st->history = ps->history;
	st->next_seq = LD(next_seq);
	st->msgs_published = LD(msgs);
	st->bytes_published = LD(bytes);
	st->publisher_sleeps = LD(sleeps);
	st->publisher_wakes = LD(wakes);
	st->subscribers_dropped = LD(dropped);
	uint64_t po = LD(pub_owner);
	st->publisher_pid = (int32_t)(po >> 32);
	st->publisher_alive = shmkit__owner_state(po) > 0;
	st->closed = LD(closed) != 0;
#undef LD
	for (uint32_t i = 0; i < ps->max_subs; i++) {
		uint64_t w = atomic_load_explicit(&ps->slots[i].owner, memory_order_relaxed);
		if (w && shmkit__owner_state(w) > 0)
			st->subscribers++;
	}
	return 0;
}

int shmkit_pubsub_subscribers(const struct shmkit_pubsub *ps, struct shmkit_pubsub_sub_stats *out,
			      size_t n)
{
	if (!ps || (!out && n))
		return -EINVAL;
	struct ps_ctl *c = ps->ctl;
	/* Relaxed throughout: a statistics snapshot; values are only shown. */
	uint64_t t = atomic_load_explicit(&c->tail, memory_order_relaxed);
	uint64_t next = atomic_load_explicit(&c->next_seq, memory_order_relaxed);
	int held = 0;
	for (uint32_t i = 0; i < ps->max_subs; i++) {
		struct ps_slot *s = &ps->slots[i];
		uint64_t w = atomic_load_explicit(&s->owner, memory_order_relaxed);
		if (w == 0)
			continue;
		if ((size_t)held < n) {
			struct shmkit_pubsub_sub_stats *o = &out[held];
			memset(o, 0, sizeof *o);
			uint64_t p = atomic_load_explicit(&s->pos, memory_order_relaxed);
			uint64_t q = atomic_load_explicit(&s->seq, memory_order_relaxed);
			o->slot = i;
			o->pid = (int32_t)(w >> 32);
			o->alive = shmkit__owner_state(w) > 0;
			o->joining = p == SUB_NONE;
			if (p != SUB_NONE && pos_ge(t, p))
				o->lag_bytes = t - p;
			if (pos_ge(next, q))
				o->lag = next - q;
			o->msgs = atomic_load_explicit(&s->msgs, memory_order_relaxed);
			o->bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
			o->lost = atomic_load_explicit(&s->lost, memory_order_relaxed);
			o->sleeps = atomic_load_explicit(&s->sleeps, memory_order_relaxed);
		}
		held++;
	}
	return held;
}

int shmkit_pubsub_peer_alive(const struct shmkit_pubsub *ps)
{
	if (!ps)
		return 0;
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER) {
		int live = 0;
		for (uint32_t i = 0; i < ps->max_subs; i++) {
			/* Relaxed: a liveness snapshot. */
			uint64_t w = atomic_load_explicit(&ps->slots[i].owner, memory_order_relaxed);
			if (w && shmkit__owner_state(w) > 0)
				live++;
		}
		return live;
	}
	/* Relaxed: a liveness snapshot. */
	return shmkit__owner_state(atomic_load_explicit(&ps->ctl->pub_owner,
							memory_order_relaxed)) > 0;
}

/* --- waitset hooks (src/wait.c) ------------------------------------------------------------- */

static unsigned watch_poll(const void *src, bool sc)
{
	const struct shmkit_pubsub *ps = src;
	memory_order mo = sc ? memory_order_seq_cst : memory_order_acquire;
	/* Shared words only (the owning thread may be changing the handle): the published
	 * tail against our slot's published position. Releases held with MORE make this say
	 * "readable" until the subscriber flushes them (shmkit_wait(3): flush before waiting). */
	uint64_t t = atomic_load_explicit(&ps->ctl->tail, mo);
	uint64_t p = atomic_load_explicit(&ps->my->pos, mo);
	unsigned bits = p != SUB_NONE && (int64_t)(t - p) > 0 ? SHMKIT_WAIT_READABLE : 0;
	if (atomic_load_explicit(&ps->ctl->closed, mo))
		bits |= SHMKIT_WAIT_CLOSED;
	return bits;
}

static int watch_peer_dead(const void *src)
{
	const struct shmkit_pubsub *ps = src;
	/* Relaxed: a liveness probe. */
	return shmkit__owner_state(atomic_load_explicit(&ps->ctl->pub_owner,
							memory_order_relaxed)) < 0;
}

int shmkit__pubsub_watch(const struct shmkit_pubsub *ps, struct shmkit__watch *w)
{
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	w->gen = &ps->ctl->data_q.gen;
	w->sleepers = &ps->ctl->data_q.sleepers;
	w->poll = watch_poll;
	w->peer_dead = watch_peer_dead;
	w->src = ps;
	w->wq = &ps->wq;
	return 0;
}
