/* shmkit — single-producer / single-consumer ring of variable-size records.
 *
 * A pure memory algorithm: no system calls, no names, no waiting (src/chan.c adds those).
 * It is unit-tested alone (tests/ring.c) and its record parser is fuzzed (tests/fuzz/).
 *
 * Shared state: the ring bytes (cap, a power of two) and two free-running 64-bit byte
 * positions, `tail` (written only by the producer) and `head` (written only by the
 * consumer), which the channel keeps 128 bytes apart. Position p is at offset p & (cap-1).
 * They never wrap in practice (2^64 bytes); `tail - head` is the fill.
 *
 * Records, each starting at an 8-byte aligned offset:
 *
 *   offset size  field
 *        0    4  len     payload bytes (0 .. max_msg)
 *        4    4  flags   0 = message, SHMKIT__REC_PAD = padding to the end of the ring
 *        8  len  payload, then zero to seven bytes to the next multiple of 8
 *
 * A record never wraps: when a message does not fit before the end of the ring, the
 * producer first writes a PAD record covering the rest (its len is cap - offset - 8), and
 * the message starts at offset 0. So every message is contiguous: zero copy both ways. A
 * record is at most cap / 2 bytes (max_msg <= cap/2 - 8), which guarantees that a record
 * plus its padding always fits in an empty ring.
 *
 * Protocol:
 *   producer: loan — check free space against its cached `head`, re-reading the shared
 *             head (A2) only when the cache says full; write the payload; commit — write
 *             the record header; publish — store `tail` (R1).
 *   consumer: peek — check against its cached `tail`, re-reading the shared tail (A1) only
 *             when the cache says empty; read the header once, validate, hand out the
 *             payload in place; release — advance; publish — store `head` (R2).
 * The positions are stored with release only, not seq_cst: a seq_cst store is a full
 * fence, and the channel's handshake with a sleeping peer tolerates its absence (src/chan.c,
 * SHMKIT__SETTLE_NS in src/waitq_internal.h).
 *
 * Validation: the producer trusts only its own position; the consumer only its own. Every
 * value read from the other side — its position, a record header — is read once into a
 * local and checked against the private geometry before use: a position must be a multiple
 * of 8 and within `cap` of ours in the right direction, a record must be a known type, no
 * longer than max_msg, inside the ring and inside the published region. Anything else is
 * -EBADMSG. The consumer handles at most one PAD per call (a PAD at offset 0 is invalid),
 * so no input makes it loop.
 *
 * Death: a producer that dies leaves `tail` at its last publish; loans and unpublished
 * commits are simply not there. A new producer re-reads `tail` and continues. A consumer
 * that dies leaves `head` at its last publish; a new one re-delivers what was peeked but not
 * released.
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

static int attach(struct shmkit__ring *r, bool producer)
{
	/* Acquire: a taking-over side must see the records the positions cover. */
	uint64_t t = atomic_load_explicit(r->tail, memory_order_acquire);
	uint64_t h = atomic_load_explicit(r->head, memory_order_acquire);
	if (!shmkit__ring_pos_ok(h, t, r->cap))
		return -EBADMSG;
	r->pos = r->pub = producer ? t : h;
	r->other = producer ? h : t;
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
	/* seq_cst: the sleeper's re-check (see src/chan.c). A corrupt head reads as
	 * "writable" so the caller wakes and reports it through loan. */
	if (shmkit__ring_refresh_head(r, memory_order_seq_cst) < 0)
		return true;
	return r->pos + pad + need - r->other <= r->cap;
}

bool shmkit__ring_readable(struct shmkit__ring *r)
{
	if (r->peek_need || r->other != r->pos)
		return true;
	/* seq_cst: the sleeper's re-check (see src/chan.c). A corrupt tail reads as
	 * "readable" so the caller wakes and reports it through peek. */
	if (shmkit__ring_refresh_tail(r, memory_order_seq_cst) < 0)
		return true;
	return r->other != r->pos;
}
