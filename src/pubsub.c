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
 *   `oldest`, a record boundary at or below tail, at or above L: it advances it a chunk
 *   (cap/16 bytes) at a time, to the first record boundary after the chunk start that
 *   follows L. Those boundaries come from a private memo, one word per chunk that commit
 *   writes when a record reaches a chunk start (so nothing of the ring is read back); where
 *   the memo does not know (a publisher that took over, a boundary not yet published) it
 *   walks the record headers it wrote itself, validated as it reads them back (a bad one
 *   moves `oldest` to tail). It stores `oldest` (PS-R3, release), then issues a release
 *   fence before writing over the reclaimed bytes.
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

/* The code is split by concern (publisher, subscriber): the list of files is at the top of
 * src/pubsub_impl.h. */
#include "pubsub_impl.h"

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
	/* Adopt a record committed in band but not published; shmkit__pubsub_publish() below
	 * stores the tail past it (and next_seq after it), as its dead author would have. */
	uint64_t adopted = 0;
	ps->pos = committed_in_band(ps, t, s, &ps->seq, &adopted);
	/* Relaxed: our own (or the dead predecessor's) value; odd if it died mid-publish. */
	ps->gen = (atomic_load_explicit(&c->pub_gen, memory_order_relaxed) + 1) & ~1u;
	ps->oldest = o;
	for (unsigned i = 0; i < PS_CHUNKS; i++)
		ps->bnd[i] = 1; /* the reclaim memo knows nothing yet (odd: no boundary) */
	ps->chunk_next = ((ps->pos >> ps->csh) + 1) << ps->csh;
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
		shmkit__pubsub_publish(ps);
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

/* Reads (next_seq, tail, hist_pos) as one consistent triple. Returns false when the
 * publisher kept pub_gen odd through every try (it died mid-publish): the values are then
 * usable but may not match each other. */
static bool read_triple(struct ps_ctl *c, uint64_t *s, uint64_t *t, uint64_t *h)
{
	for (int tries = 0; tries < PS_TRIES; tries++) {
		/* PS-A5: pairs with PS-R5 in shmkit__pubsub_publish(). */
		uint32_t g = atomic_load_explicit(&c->pub_gen, memory_order_acquire);
		/* Relaxed: validated by the seqlock re-check below. */
		*s = atomic_load_explicit(&c->next_seq, memory_order_relaxed);
		/* PS-A1: pairs with PS-R1 in shmkit__pubsub_publish(): records below tail are
		 * visible. */
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
			if (ow && shmkit__pubsub_overwritten(ps, at)) {
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
		ps->peek_need = 0;
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
	ps->csh = (unsigned)__builtin_ctzll(cap / PS_CHUNKS);
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
		*pos = ps->pos + ps->peek_need; /* past the peeked message, if any */
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
		shmkit__pubsub_publish(ps);
	else if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER)
		shmkit__pubsub_sub_publish(ps);
	return 0;
}

int shmkit_pubsub_close(struct shmkit_pubsub *ps)
{
	if (!ps)
		return 0;
	struct ps_ctl *c = ps->ctl;
	if (ps->role == SHMKIT_PUBSUB_PUBLISHER) {
		shmkit__pubsub_publish(ps);
		/* PS-R4': end of stream after the last publish; pairs with PS-A4 in peek. Also the
		 * store of the handshake with sleeping subscribers. */
		atomic_store_explicit(&c->closed, 1, memory_order_release);
		shmkit__waitq_wake(&c->data_q, INT_MAX);
		uint64_t mine = ps->me;
		/* Release: whoever claims the role next sees our last positions. */
		atomic_compare_exchange_strong_explicit(&c->pub_owner, &mine, 0,
							memory_order_release, memory_order_relaxed);
	} else if (ps->role == SHMKIT_PUBSUB_SUBSCRIBER) {
		shmkit__pubsub_sub_publish(ps);
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
