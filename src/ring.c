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
 * The positions are stored seq_cst rather than just release: the same store is the first
 * half of the Dekker handshake with a sleeping peer's waiter count (src/chan.c).
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

#define NO_LOAN UINT64_MAX

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
	r->loan_len = NO_LOAN;
}

/* A position `later` read from shared memory is acceptable if it is 8-aligned and at most
 * `cap` ahead of `earlier` (unsigned arithmetic: "behind" reads as a huge distance). */
static bool pos_ok(uint64_t earlier, uint64_t later, uint64_t cap)
{
	return ((earlier | later) & 7) == 0 && later - earlier <= cap;
}

static int attach(struct shmkit__ring *r, bool producer)
{
	/* Acquire: a taking-over side must see the records the positions cover. */
	uint64_t t = atomic_load_explicit(r->tail, memory_order_acquire);
	uint64_t h = atomic_load_explicit(r->head, memory_order_acquire);
	if (!pos_ok(h, t, r->cap))
		return -EBADMSG;
	r->pos = r->pub = producer ? t : h;
	r->other = producer ? h : t;
	r->loan_len = NO_LOAN;
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

/* Record headers are read and written as one relaxed 64-bit atomic: a single access, so
 * the consumer's one read cannot tear, and no data race for TSan. The ordering comes from
 * the positions' release/acquire pairs. */
static inline _Atomic uint64_t *rec_word(const struct shmkit__ring *r, uint64_t off)
{
	return (_Atomic uint64_t *)(void *)(r->data + off);
}

static inline uint64_t rec_make(uint64_t len, uint32_t flags)
{
	return (uint64_t)(uint32_t)len | (uint64_t)flags << 32;
}

/* --- producer ------------------------------------------------------------------------ */

/* Re-reads the consumer position. 0 or -EBADMSG. */
static int refresh_head(struct shmkit__ring *r, memory_order mo)
{
	/* A2: pairs with R2 in shmkit__ring_publish_head(): the consumer's reads of the bytes
	 * it released happened before we overwrite them. */
	uint64_t h = atomic_load_explicit(r->head, mo);
	if (!pos_ok(h, r->pos, r->cap))
		return -EBADMSG;
	r->other = h;
	return 0;
}

int shmkit__ring_loan(struct shmkit__ring *r, uint64_t len, void **buf)
{
	if (len > r->max_msg)
		return -EMSGSIZE;
	uint64_t need = shmkit__ring_need(len);
	uint64_t off = r->pos & r->mask;
	uint64_t pad = off + need > r->cap ? r->cap - off : 0;
	if (r->pos + pad + need - r->other > r->cap) {
		int err = refresh_head(r, memory_order_acquire);
		if (err)
			return err;
		if (r->pos + pad + need - r->other > r->cap)
			return -EAGAIN;
	}
	if (pad)
		atomic_store_explicit(rec_word(r, off), rec_make(pad - SHMKIT__REC_HDR, SHMKIT__REC_PAD),
				      memory_order_relaxed);
	r->loan_at = r->pos + pad;
	r->loan_len = len;
	*buf = r->data + (r->loan_at & r->mask) + SHMKIT__REC_HDR;
	return 0;
}

int shmkit__ring_commit(struct shmkit__ring *r, uint64_t len)
{
	if (r->loan_len == NO_LOAN || len > r->loan_len)
		return -EINVAL;
	atomic_store_explicit(rec_word(r, r->loan_at & r->mask), rec_make(len, 0),
			      memory_order_relaxed);
	r->pos = r->loan_at + shmkit__ring_need(len);
	r->loan_len = NO_LOAN;
	r->msgs++;
	r->bytes += len;
	return 0;
}

bool shmkit__ring_publish_tail(struct shmkit__ring *r)
{
	if (r->pos == r->pub)
		return false;
	/* R1: publishes the records up to pos; pairs with A1 in refresh_tail(). seq_cst: also
	 * the store half of the Dekker handshake with the consumer's sleeper count. */
	atomic_store_explicit(r->tail, r->pos, memory_order_seq_cst);
	r->pub = r->pos;
	return true;
}

bool shmkit__ring_writable(struct shmkit__ring *r, uint64_t len)
{
	uint64_t need = shmkit__ring_need(len);
	uint64_t off = r->pos & r->mask;
	uint64_t pad = off + need > r->cap ? r->cap - off : 0;
	/* seq_cst: the load half of the Dekker handshake (see src/chan.c). A corrupt head
	 * reads as "writable" so the caller wakes and reports it through loan. */
	if (refresh_head(r, memory_order_seq_cst) < 0)
		return true;
	return r->pos + pad + need - r->other <= r->cap;
}

/* --- consumer ------------------------------------------------------------------------ */

static int refresh_tail(struct shmkit__ring *r, memory_order mo)
{
	/* A1: pairs with R1 in shmkit__ring_publish_tail(): the record headers and payloads
	 * below tail are visible. */
	uint64_t t = atomic_load_explicit(r->tail, mo);
	if (!pos_ok(r->pos, t, r->cap))
		return -EBADMSG;
	r->other = t;
	return 0;
}

int shmkit__ring_peek(struct shmkit__ring *r, const void **buf, uint64_t *len)
{
	if (r->peek_need) {
		*buf = r->peek_ptr;
		*len = r->peek_len;
		return 0;
	}
	for (int pads = 0;; pads++) {
		if (r->other == r->pos) {
			int err = refresh_tail(r, memory_order_acquire);
			if (err)
				return err;
			if (r->other == r->pos)
				return -EAGAIN;
		}
		uint64_t avail = r->other - r->pos;
		uint64_t off = r->pos & r->mask;
		/* One read of the header; everything below uses the local copy. */
		uint64_t hdr = atomic_load_explicit(rec_word(r, off), memory_order_relaxed);
		uint64_t rlen = (uint32_t)hdr;
		uint32_t flags = (uint32_t)(hdr >> 32);
		if (flags == SHMKIT__REC_PAD) {
			uint64_t need = r->cap - off;
			/* A pad fills exactly the rest of the ring; never at offset 0, never two
			 * in a row: so this loop runs at most twice. */
			if (off == 0 || pads > 0 || rlen != need - SHMKIT__REC_HDR || need > avail)
				return -EBADMSG;
			r->pos += need;
			continue;
		}
		if (flags != 0 || rlen > r->max_msg)
			return -EBADMSG;
		uint64_t need = shmkit__ring_need(rlen);
		if (off + need > r->cap || need > avail)
			return -EBADMSG;
		r->peek_ptr = r->data + off + SHMKIT__REC_HDR;
		r->peek_len = rlen;
		r->peek_need = need;
		*buf = r->peek_ptr;
		*len = rlen;
		return 0;
	}
}

int shmkit__ring_release(struct shmkit__ring *r)
{
	if (!r->peek_need)
		return -EINVAL;
	r->pos += r->peek_need;
	r->msgs++;
	r->bytes += r->peek_len;
	r->peek_need = 0;
	return 0;
}

bool shmkit__ring_publish_head(struct shmkit__ring *r)
{
	if (r->pos == r->pub)
		return false;
	/* R2: hands the released bytes back; pairs with A2 in refresh_head(). seq_cst: also
	 * the store half of the Dekker handshake with the producer's sleeper count. */
	atomic_store_explicit(r->head, r->pos, memory_order_seq_cst);
	r->pub = r->pos;
	return true;
}

bool shmkit__ring_readable(struct shmkit__ring *r)
{
	if (r->peek_need || r->other != r->pos)
		return true;
	/* seq_cst: the load half of the Dekker handshake (see src/chan.c). A corrupt tail
	 * reads as "readable" so the caller wakes and reports it through peek. */
	if (refresh_tail(r, memory_order_seq_cst) < 0)
		return true;
	return r->other != r->pos;
}
