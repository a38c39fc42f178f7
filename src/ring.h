/* shmkit — the SPSC ring of variable-size records (pure memory algorithm, no system calls).
 * See src/ring.c for the record format and the protocol. */
#ifndef SHMKIT_RING_H
#define SHMKIT_RING_H

#include <errno.h>

#include "internal.h"

#define SHMKIT__RING_MIN_CAP 4096u
#define SHMKIT__RING_MAX_CAP ((uint64_t)1 << 40)
#define SHMKIT__REC_HDR 8u
/* Record flags (the header's upper 32 bits; src/ring.c describes the protocol). */
#define SHMKIT__REC_PAD 1u   /* padding up to the end of the ring */
#define SHMKIT__REC_NOW 2u   /* published in band: may be taken before `tail` covers it */
#define SHMKIT__REC_NEXT0 4u /* the 8 bytes after this record were zeroed before it */
#define SHMKIT__REC_FLAGS 7u
/* Low bit of the stored tail: the 8 bytes at the tail position were zeroed before anything
 * was written there (the last record published had REC_NEXT0). A taking-over producer
 * needs it to tell a record its predecessor committed from stale bytes (src/ring.c). */
#define SHMKIT__TAIL_CLEAN 1u

/* A process's private view of a ring: geometry copied once at attach (never re-read from
 * shared memory), its own position, and the last position it saw of the other side. */
struct shmkit__ring {
	uint8_t *data;          /* the ring bytes (shared) */
	uint64_t cap;           /* ring bytes, a power of two */
	uint64_t mask;          /* cap - 1 */
	uint64_t max_msg;       /* largest payload */
	_Atomic uint64_t *tail; /* shared: producer's published position */
	_Atomic uint64_t *head; /* shared: consumer's published position */
	uint64_t pos;           /* own position, including unpublished commits/releases */
	uint64_t pub;           /* last position this side stored to its shared word */
	bool clean;             /* producer: the slot at pos is zeroed (SHMKIT__TAIL_CLEAN) */
	uint64_t other;         /* last validated position of the other side; the consumer's
				 * may be behind its own pos after in-band takes */
	/* producer: the pending loan */
	uint64_t loan_at;       /* position of the loaned record's header */
	uint64_t loan_len;      /* loaned payload length; UINT64_MAX when none */
	/* consumer: the peeked record */
	const uint8_t *peek_ptr;
	uint64_t peek_len;
	uint64_t peek_need;     /* record bytes; 0 when nothing is peeked */
	uint32_t peek_flags;    /* the peeked record's flags */
	bool inband;            /* the header word at pos is zero or a real header, so a
				 * REC_NOW there may be taken without the tail */
	/* counters of this side (committed / released), flushed to shared stats by chan */
	uint64_t msgs, bytes;
};

/* Whether (cap, max_msg) is a valid geometry: cap a power of two in
 * [SHMKIT__RING_MIN_CAP, SHMKIT__RING_MAX_CAP], max_msg <= cap / 2 - 8. */
bool shmkit__ring_geometry_ok(uint64_t cap, uint64_t max_msg);

/* Bytes a record with `len` payload bytes occupies. */
static inline uint64_t shmkit__ring_need(uint64_t len)
{
	return SHMKIT__REC_HDR + ((len + 7) & ~(uint64_t)7);
}

/* Sets up a private view. Does not touch shared memory. */
void shmkit__ring_view(struct shmkit__ring *r, void *data, uint64_t cap, uint64_t max_msg,
		       _Atomic uint64_t *tail, _Atomic uint64_t *head);

/* Attaches as producer / consumer: reads both shared positions (a new side takes over
 * where the previous one stopped) and validates them. 0 or -EBADMSG. */
int shmkit__ring_attach_producer(struct shmkit__ring *r);
int shmkit__ring_attach_consumer(struct shmkit__ring *r);

/* Whether the producer has published data this consumer has not seen (reads the shared
 * tail; used by waiters to re-check before sleeping). */
bool shmkit__ring_readable(struct shmkit__ring *r);
/* Whether a record of `len` bytes would fit now (reads the shared head). */
bool shmkit__ring_writable(struct shmkit__ring *r, uint64_t len);

#define SHMKIT__NO_LOAN UINT64_MAX

/* --- the per-message operations (protocol and validation rules: src/ring.c) ----------------
 * Producer. loan: 0, -EAGAIN (full), -EMSGSIZE, -EBADMSG (consumer position corrupt);
 * commit: 0 or -EINVAL (no loan, or longer than loaned); publish_tail stores the producer
 * position if it moved and returns whether it did. Consumer. peek: 0, -EAGAIN (empty),
 * -EBADMSG; release: 0 or -EINVAL (nothing peeked); publish_head as publish_tail. */

/* A position `later` read from shared memory is acceptable if it is 8-aligned and at most
 * `cap` ahead of `earlier` (unsigned arithmetic: "behind" reads as a huge distance). */
static inline bool shmkit__ring_pos_ok(uint64_t earlier, uint64_t later, uint64_t cap)
{
	return ((earlier | later) & 7) == 0 && later - earlier <= cap;
}

/* Record headers are read and written as one 64-bit atomic: a single access, so the
 * consumer's one read cannot tear, and no data race for TSan. Release/acquire where the
 * header publishes (RING-R0/RING-A0, in band); relaxed where a position's pair orders it. */
static inline _Atomic uint64_t *shmkit__rec_word(const struct shmkit__ring *r, uint64_t off)
{
	return (_Atomic uint64_t *)(void *)(r->data + off);
}

static inline uint64_t shmkit__rec_make(uint64_t len, uint32_t flags)
{
	return (uint64_t)(uint32_t)len | (uint64_t)flags << 32;
}

/* Re-reads the consumer position. 0 or -EBADMSG. */
static inline int shmkit__ring_refresh_head(struct shmkit__ring *r, memory_order mo)
{
	/* RING-A2: pairs with RING-R2 in shmkit__ring_publish_head(): the consumer's reads of the bytes
	 * it released happened before we overwrite them. */
	uint64_t h = atomic_load_explicit(r->head, mo);
	if (!shmkit__ring_pos_ok(h, r->pos, r->cap))
		return -EBADMSG;
	r->other = h;
	return 0;
}

static inline int shmkit__ring_loan(struct shmkit__ring *r, uint64_t len, void **buf)
{
	if (len > r->max_msg)
		return -EMSGSIZE;
	uint64_t need = shmkit__ring_need(len);
	uint64_t off = r->pos & r->mask;
	uint64_t pad = off + need > r->cap ? r->cap - off : 0;
	if (r->pos + pad + need - r->other > r->cap) {
		int err = shmkit__ring_refresh_head(r, memory_order_acquire);
		if (err)
			return err;
		if (r->pos + pad + need - r->other > r->cap)
			return -EAGAIN;
	}
	/* The padding header, if any, is written by commit (after the record's). */
	r->loan_at = r->pos + pad;
	r->loan_len = len;
	*buf = r->data + (r->loan_at & r->mask) + SHMKIT__REC_HDR;
	return 0;
}

/* Commits the loan. `now`: publish it in band (REC_NOW) — the caller stores the tail right
 * after (src/chan.c always does); false for a SHMKIT_CHAN_MORE commit, which stays invisible
 * until the tail covers it. */
static inline int shmkit__ring_commit_ex(struct shmkit__ring *r, uint64_t len, bool now)
{
	if (r->loan_len == SHMKIT__NO_LOAN || len > r->loan_len)
		return -EINVAL;
	uint64_t end = r->loan_at + shmkit__ring_need(len);
	uint32_t flags = now ? SHMKIT__REC_NOW : 0;
	/* Zero ahead: the next header slot must not hold a stale word that looks like a
	 * published header (old payload bytes can look like anything). Only when that slot is
	 * free space; otherwise the consumer learns the next record from the tail. */
	r->clean = end + SHMKIT__REC_HDR - r->other <= r->cap;
	if (__builtin_expect(!r->clean, 0)) {
		/* The cached head is old (it is re-read only when the ring looks full): look
		 * again, or every record near the end of a lap would go without NEXT0. */
		r->clean = shmkit__ring_refresh_head(r, memory_order_acquire) == 0 &&
			   end + SHMKIT__REC_HDR - r->other <= r->cap;
	}
	if (r->clean) {
		atomic_store_explicit(shmkit__rec_word(r, end & r->mask), 0, memory_order_relaxed);
		flags |= SHMKIT__REC_NEXT0;
	}
	/* RING-R0: release — the payload and the zeroed slot before the header (pairs with RING-A0 in
	 * shmkit__ring_peek()). A plain store on x86 and arm64's stlr. */
	atomic_store_explicit(shmkit__rec_word(r, r->loan_at & r->mask), shmkit__rec_make(len, flags),
			      memory_order_release);
	if (r->loan_at != r->pos) {
		/* The padding header goes last: the consumer that sees it in band goes on to
		 * the record at offset 0, which must be there already (RING-R0 again). */
		uint64_t pad = r->loan_at - r->pos;
		atomic_store_explicit(shmkit__rec_word(r, r->pos & r->mask),
				      shmkit__rec_make(pad - SHMKIT__REC_HDR,
						       SHMKIT__REC_PAD | (now ? SHMKIT__REC_NOW : 0)),
				      memory_order_release);
	}
	r->pos = end;
	r->loan_len = SHMKIT__NO_LOAN;
	r->msgs++;
	r->bytes += len;
	return 0;
}

static inline int shmkit__ring_commit(struct shmkit__ring *r, uint64_t len)
{
	return shmkit__ring_commit_ex(r, len, true);
}

static inline bool shmkit__ring_publish_tail(struct shmkit__ring *r)
{
	if (r->pos == r->pub)
		return false;
	/* RING-R1: publishes the records up to pos; pairs with RING-A1 in shmkit__ring_refresh_tail().
	 * Release, not seq_cst: see the top of src/ring.c. */
	atomic_store_explicit(r->tail, r->pos | (r->clean ? SHMKIT__TAIL_CLEAN : 0),
			      memory_order_release);
	r->pub = r->pos;
	return true;
}

/* The position in a stored tail word (its low bits are flags: SHMKIT__TAIL_CLEAN). */
static inline uint64_t shmkit__ring_tail_pos(uint64_t word)
{
	return word & ~(uint64_t)7;
}

/* Re-reads the producer position. The tail never moves back, and the consumer may be ahead
 * of it after in-band takes, so a tail is acceptable from the last one seen up to a ring
 * ahead of our position. 0 or -EBADMSG. */
static inline int shmkit__ring_refresh_tail(struct shmkit__ring *r, memory_order mo)
{
	/* RING-A1: pairs with RING-R1 in shmkit__ring_publish_tail(): the record headers and payloads
	 * below tail are visible. */
	uint64_t w = atomic_load_explicit(r->tail, mo);
	uint64_t t = shmkit__ring_tail_pos(w);
	if ((w & 7) & ~SHMKIT__TAIL_CLEAN || t - r->other > r->pos + r->cap - r->other)
		return -EBADMSG;
	r->other = t;
	return 0;
}

/* Whether the cached tail covers data at pos (it may be behind pos: see above). */
static inline bool shmkit__ring_covered(const struct shmkit__ring *r)
{
	return r->other - r->pos - 1 < r->cap;
}

/* The header word at pos when it may be read in band (UINT64_MAX when it may not): only
 * where the slot is known to hold zero or a real header, and at most a ring ahead of the
 * last tail seen — an honest producer is never more than one record ahead of its tail, and
 * a hostile ring of records that chain in band runs out after one lap. Loaded with acquire
 * (RING-A0, pairs with RING-R0). */
static inline uint64_t shmkit__ring_inband_word(const struct shmkit__ring *r, memory_order mo)
{
	if (!r->inband || r->pos - r->other > r->cap)
		return UINT64_MAX;
	return atomic_load_explicit(shmkit__rec_word(r, r->pos & r->mask), mo);
}

/* The record header at pos if it is published in band, else 0. */
static inline uint64_t shmkit__ring_inband(const struct shmkit__ring *r, memory_order mo)
{
	uint64_t hdr = shmkit__ring_inband_word(r, mo);
	return hdr != UINT64_MAX && (hdr >> 32) & SHMKIT__REC_NOW ? hdr : 0;
}

/* Cheap test for the spin loop: the in-band header first (the line that brings the news
 * first), then the tail. No validation: peek does it. While the slot is still empty, the
 * line after it is prefetched: a message of more than 56 bytes continues there, and reading
 * it only after the header arrived would be a second transfer in series (measured on the
 * 2-vCPU EPYC VM: 64 B round trip about 735 ns without, 620 ns with). Not while a held
 * (MORE) header is there: the producer is writing a batch and would only have its line
 * taken away. */
static inline bool shmkit__ring_has_data(const struct shmkit__ring *r)
{
	if (r->peek_need || shmkit__ring_covered(r))
		return true;
	uint64_t hdr = shmkit__ring_inband_word(r, memory_order_acquire);
	if (hdr != UINT64_MAX && (hdr >> 32) & SHMKIT__REC_NOW)
		return true;
	if (!hdr)
		__builtin_prefetch(r->data + ((r->pos + 64) & r->mask & ~(uint64_t)63));
	uint64_t t = shmkit__ring_tail_pos(atomic_load_explicit(r->tail, memory_order_acquire));
	return t - r->pos - 1 < r->cap;
}

/* Validates a record header `hdr` (read once) found at offset `off`, with `avail` bytes
 * known to be published from there; `after_pad`: a PAD was just skipped. Returns the
 * record's size in bytes (a PAD's: the rest of the ring), or 0 when the header is corrupt:
 * unknown flags, longer than max_msg, past the end of the ring or of `avail`, or a PAD that
 * is not exactly the rest of the ring, at offset 0 or right after another. Shared by peek
 * and a taking-over producer (src/ring.c), so both apply the same rules. */
static inline uint64_t shmkit__rec_extent(const struct shmkit__ring *r, uint64_t hdr,
					  uint64_t off, uint64_t avail, bool after_pad)
{
	uint64_t len = (uint32_t)hdr;
	uint32_t flags = (uint32_t)(hdr >> 32);
	if (flags & ~SHMKIT__REC_FLAGS)
		return 0;
	uint64_t need = flags & SHMKIT__REC_PAD ? r->cap - off : shmkit__ring_need(len);
	if (flags & SHMKIT__REC_PAD) {
		if (off == 0 || after_pad || len != need - SHMKIT__REC_HDR)
			return 0;
	} else if (len > r->max_msg || off + need > r->cap) {
		return 0;
	}
	return need <= avail ? need : 0;
}

/* Always inline: the consumer's whole per-message path is this and release. */
__attribute__((always_inline)) static inline int shmkit__ring_peek(struct shmkit__ring *r,
								   const void **buf, uint64_t *len)
{
	if (r->peek_need) {
		*buf = r->peek_ptr;
		*len = r->peek_len;
		return 0;
	}
	for (int pads = 0;; pads++) {
		uint64_t off = r->pos & r->mask;
		uint64_t avail, hdr = 0;
		if (!shmkit__ring_covered(r)) {
			/* Beyond the tail we know: a record published in band first — reading
			 * the tail now would wait for a line the producer writes after it. Its
			 * bounds come from its own header, checked against the geometry. */
			hdr = shmkit__ring_inband(r, memory_order_acquire);
			if (!hdr) {
				int err = shmkit__ring_refresh_tail(r, memory_order_acquire);
				if (err)
					return err;
				if (!shmkit__ring_covered(r))
					return -EAGAIN;
			}
		}
		if (hdr) {
			avail = r->cap - off;
		} else {
			avail = r->other - r->pos;
			/* One read of the header; everything below uses the local copy. */
			hdr = atomic_load_explicit(shmkit__rec_word(r, off), memory_order_relaxed);
		}
		uint64_t need = shmkit__rec_extent(r, hdr, off, avail, pads > 0);
		if (!need)
			return -EBADMSG;
		uint32_t flags = (uint32_t)(hdr >> 32);
		if (flags & SHMKIT__REC_PAD) {
			/* At most one pad per call (shmkit__rec_extent), so this loop runs at
			 * most twice. The record at offset 0 was written before an in-band pad,
			 * so in band stays valid past it. */
			r->pos += need;
			continue;
		}
		uint64_t rlen = (uint32_t)hdr;
		r->peek_ptr = r->data + off + SHMKIT__REC_HDR;
		r->peek_len = rlen;
		r->peek_need = need;
		r->peek_flags = flags;
		*buf = r->peek_ptr;
		*len = rlen;
		return 0;
	}
}

static inline int shmkit__ring_release(struct shmkit__ring *r)
{
	if (!r->peek_need)
		return -EINVAL;
	r->pos += r->peek_need;
	r->inband = (r->peek_flags & SHMKIT__REC_NEXT0) != 0;
	r->msgs++;
	r->bytes += r->peek_len;
	r->peek_need = 0;
	return 0;
}

static inline bool shmkit__ring_publish_head(struct shmkit__ring *r)
{
	if (r->pos == r->pub)
		return false;
	/* RING-R2: hands the released bytes back; pairs with RING-A2 in shmkit__ring_refresh_head().
	 * Release, not seq_cst: see the top of src/ring.c. */
	atomic_store_explicit(r->head, r->pos, memory_order_release);
	r->pub = r->pos;
	return true;
}

#endif
