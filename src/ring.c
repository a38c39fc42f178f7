/* shmkit — single-producer / single-consumer ring of variable-size records.
 *
 * A pure memory algorithm: no system calls, no names, no waiting (src/chan.c adds those).
 * It is unit-tested alone (tests/ring.c) and its record parser is fuzzed (tests/fuzz/).
 *
 * Shared state: the ring bytes (cap, a power of two) and two free-running 64-bit byte
 * positions, `tail` (written only by the producer) and `head` (written only by the
 * consumer), which the channel keeps 128 bytes apart. Position p is at offset p & (cap-1).
 * They never wrap in practice (2^64 bytes); `tail - head` is the fill (the tail's low
 * bits masked off: they are a flag).
 *
 * Records, each starting at an 8-byte aligned offset:
 *
 *   offset size  field
 *        0    4  len     payload bytes (0 .. max_msg)
 *        4    4  flags   SHMKIT__REC_PAD    padding to the end of the ring (else a message)
 *                        SHMKIT__REC_NOW    published in band (below)
 *                        SHMKIT__REC_NEXT0  the 8 bytes after this record were zeroed first
 *        8  len  payload, then zero to seven bytes to the next multiple of 8
 *
 * A record never wraps: when a message does not fit before the end of the ring, the
 * producer writes a PAD record covering the rest (its len is cap - offset - 8), and the
 * message starts at offset 0. So every message is contiguous: zero copy both ways. A
 * record is at most cap / 2 bytes (max_msg <= cap/2 - 8), which guarantees that a record
 * plus its padding always fits in an empty ring.
 *
 * Two ways to publish a record. By position: the producer stores `tail` (RING-R1) past it, the
 * consumer loads `tail` (RING-A1) and reads the records below it. In band: the header itself,
 * stored with release (RING-R0) after the payload, says REC_NOW, and a consumer that is caught
 * up takes it with an acquire load (RING-A0) of the header — one line to wait for instead of
 * two (the tail's, then the record's), and the consumer never waits on the tail line the
 * producer is still writing. Every commit is in band except a SHMKIT_CHAN_MORE one, which
 * stays invisible until the tail covers it (the batch contract), and the channel stores
 * the tail right after every in-band commit, so waiters, statistics and a taking-over side
 * keep working from positions.
 *
 * In band needs one guarantee: the consumer must never mistake stale bytes (an old header,
 * or old payload that looks like one) for a new header. So at each commit the producer
 * first zeroes the 8 bytes after the record, when they are free space, and says so with
 * REC_NEXT0; the consumer takes a record in band only where the record before it had
 * REC_NEXT0 (or where a PAD taken in band leads: the record at offset 0 is stored before
 * its PAD). The producer stores the PAD header after the record's for the same reason.
 * When the slot after a record is not free (a full ring), the next record comes by the
 * tail. The stored tail's low bit (SHMKIT__TAIL_CLEAN) repeats the last published record's
 * REC_NEXT0, for a taking-over producer (Death, below).
 *
 * Protocol:
 *   producer: loan — check free space against its cached `head`, re-reading the shared
 *             head (RING-A2) only when the cache says full; write the payload; commit —
 *             zero the next slot, store the header (RING-R0; then a PAD header, RING-R0);
 *             publish — store `tail` (RING-R1).
 *   consumer: peek — below its cached `tail`, read the header; past it, first the header
 *             in band (RING-A0), then the shared tail (RING-A1); read the header once,
 *             validate, hand out the payload in place; release — advance; publish — store
 *             `head` (RING-R2).
 * The positions are stored with release only, not seq_cst: a seq_cst store is a full
 * fence, and the sleep/wake handshake puts its barrier on the sleeper's side instead
 * (membarrier, src/waitq_internal.h).
 *
 * Validation: the producer trusts only its own position; the consumer only its own. Every
 * value read from the other side — its position, a record header — is read once into a
 * local and checked against the private geometry before use: a position must be a multiple
 * of 8 (the tail may carry its clean bit), the tail may not move back and may be at most
 * `cap` ahead of our position, a record must have known flags, be no longer than max_msg,
 * lie inside the ring and, when it came by the tail, inside the published region. Anything
 * else is -EBADMSG. The consumer handles at most one PAD per call (a PAD at offset 0 is
 * invalid), so no input makes it loop, and it takes records in band at most a ring ahead of
 * the last tail it saw, so a hostile ring of records chaining in band ends too.
 *
 * Death: a producer that dies leaves `tail` at its last publish; loans and held (MORE)
 * commits are simply not there. A new producer re-reads `tail` and continues — after a
 * record its predecessor committed in band but had not yet published, since the consumer
 * may have taken it or may take it any moment (when the tail's clean bit says the slot
 * there held no stale bytes; with the consumer already past the tail, from the consumer's
 * position). A consumer that dies leaves `head` at its last publish; a new one re-delivers
 * what was peeked but not released, and takes its first record by the tail.
 */
#include <errno.h>
#include <string.h>

#include "ring.h"

bool shmkit__ring_geometry_ok(uint64_t cap, uint64_t max_msg)
{
	if (cap < SHMKIT__RING_MIN_CAP || cap > SHMKIT__RING_MAX_CAP || (cap & (cap - 1)))
		return false;
	/* The header's len field is 32 bits. */
	return max_msg <= cap / 2 - SHMKIT__REC_HDR && max_msg <= UINT32_MAX - 7;
}

void shmkit__ring_view(struct shmkit__ring *r, void *data, uint64_t cap, uint64_t max_msg,
		       _Atomic uint64_t *tail, _Atomic uint64_t *head)
{
	memset(r, 0, sizeof *r);
	r->data = data;
	r->cap = cap;
	r->mask = cap - 1;
	r->max_msg = max_msg;
	r->tail = tail;
	r->head = head;
	r->loan_len = SHMKIT__NO_LOAN;
}

/* The record a producer that died committed in band but did not publish: it died between
 * the header store (RING-R0) and the tail store (RING-R1). A consumer may have taken it already, or
 * may take it any moment, so a new producer must go on after it, not overwrite it. Only
 * asked when the slot at the tail was clean (SHMKIT__TAIL_CLEAN): then a REC_NOW header
 * there was written for this position, not left over from an earlier lap. Returns the
 * position after the record (and its padding), or t when there is none. */
static uint64_t committed_in_band(const struct shmkit__ring *r, uint64_t t)
{
	uint64_t pos = t;
	for (int pads = 0; pads < 2; pads++) {
		uint64_t off = pos & r->mask;
		/* Acquire: pairs with RING-R0; the payload is complete. */
		uint64_t hdr = atomic_load_explicit(shmkit__rec_word(r, off), memory_order_acquire);
		uint64_t need = shmkit__rec_extent(r, hdr, off, r->cap - off, pads > 0);
		if (!((hdr >> 32) & SHMKIT__REC_NOW) || !need)
			return t;
		pos += need;
		/* A PAD is stored after the record at offset 0, which is checked next. */
		if (!((hdr >> 32) & SHMKIT__REC_PAD))
			return pos;
	}
	return t;
}

static int attach(struct shmkit__ring *r, bool producer)
{
	/* Acquire: a taking-over side must see the records the positions cover. */
	uint64_t traw = atomic_load_explicit(r->tail, memory_order_acquire);
	uint64_t h = atomic_load_explicit(r->head, memory_order_acquire);
	if ((traw & 7) & ~SHMKIT__TAIL_CLEAN)
		return -EBADMSG;
	uint64_t t = shmkit__ring_tail_pos(traw), start = t;
	if (!shmkit__ring_pos_ok(h, t, r->cap)) {
		/* The consumer may be ahead of the tail: it took a record in band and the
		 * producer died before storing the tail. A new producer goes on from there. */
		if (!shmkit__ring_pos_ok(t, h, r->cap))
			return -EBADMSG;
		start = h;
	} else if (producer && (traw & SHMKIT__TAIL_CLEAN)) {
		uint64_t e = committed_in_band(r, t);
		if (shmkit__ring_pos_ok(h, e, r->cap))
			start = e;
	}
	if (producer) {
		r->pos = start;
		r->pub = t; /* so the first publish stores the tail past an adopted record */
		r->other = h;
	} else {
		r->pos = r->pub = h;
		r->other = t;
	}
	r->clean = false;  /* the tail's clean bit is set again by the first NEXT0 commit */
	r->inband = false; /* the first record comes with the tail */
	r->loan_len = SHMKIT__NO_LOAN;
	r->peek_need = 0;
	return 0;
}

int shmkit__ring_attach_producer(struct shmkit__ring *r)
{
	return attach(r, true);
}

int shmkit__ring_attach_consumer(struct shmkit__ring *r)
{
	return attach(r, false);
}

/* --- the waiters' re-checks (the per-message operations are inline in ring.h) ------- */

bool shmkit__ring_writable(struct shmkit__ring *r, uint64_t len)
{
	uint64_t need = shmkit__ring_need(len);
	uint64_t off = r->pos & r->mask;
	uint64_t pad = off + need > r->cap ? r->cap - off : 0;
	/* seq_cst: the sleeper's re-check after WQ-B1 (src/waitq_internal.h). A corrupt head reads as
	 * "writable" so the caller wakes and reports it through loan. */
	if (shmkit__ring_refresh_head(r, memory_order_seq_cst) < 0)
		return true;
	return r->pos + pad + need - r->other <= r->cap;
}

bool shmkit__ring_readable(struct shmkit__ring *r)
{
	if (r->peek_need || shmkit__ring_covered(r))
		return true;
	/* seq_cst: the sleeper's re-check after WQ-B1 (src/waitq_internal.h). A corrupt tail reads as
	 * "readable" so the caller wakes and reports it through peek. */
	if (shmkit__ring_refresh_tail(r, memory_order_seq_cst) < 0)
		return true;
	return shmkit__ring_covered(r) || shmkit__ring_inband(r, memory_order_seq_cst);
}
