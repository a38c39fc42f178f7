/* shmkit — the SPSC ring of variable-size records (pure memory algorithm, no system calls).
 * See src/ring.c for the record format and the protocol. */
#ifndef SHMKIT_RING_H
#define SHMKIT_RING_H

#include "internal.h"

#define SHMKIT__RING_MIN_CAP 4096u
#define SHMKIT__RING_MAX_CAP ((uint64_t)1 << 40)
#define SHMKIT__REC_HDR 8u
#define SHMKIT__REC_PAD 1u /* record flag: padding up to the end of the ring */

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
	uint64_t pub;           /* last value this side stored to its shared position */
	uint64_t other;         /* last validated position of the other side */
	/* producer: the pending loan */
	uint64_t loan_at;       /* position of the loaned record's header */
	uint64_t loan_len;      /* loaned payload length; UINT64_MAX when none */
	/* consumer: the peeked record */
	const uint8_t *peek_ptr;
	uint64_t peek_len;
	uint64_t peek_need;     /* record bytes; 0 when nothing is peeked */
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

/* Producer. loan: 0, -EAGAIN (full), -EMSGSIZE, -EBADMSG (consumer position corrupt). */
int shmkit__ring_loan(struct shmkit__ring *r, uint64_t len, void **buf);
int shmkit__ring_commit(struct shmkit__ring *r, uint64_t len);
/* Stores the producer position if it moved; returns whether it did. */
bool shmkit__ring_publish_tail(struct shmkit__ring *r);

/* Consumer. peek: 0, -EAGAIN (empty), -EBADMSG. */
int shmkit__ring_peek(struct shmkit__ring *r, const void **buf, uint64_t *len);
int shmkit__ring_release(struct shmkit__ring *r);
bool shmkit__ring_publish_head(struct shmkit__ring *r);

/* Whether the producer has published data this consumer has not seen (reads the shared
 * tail; used by waiters to re-check before sleeping). */
bool shmkit__ring_readable(struct shmkit__ring *r);
/* Whether a record of `len` bytes would fit now (reads the shared head). */
bool shmkit__ring_writable(struct shmkit__ring *r, uint64_t len);

#endif
