/* shmkit — what the files of the work queue share (src/queue*.c). Never installed.
 *
 *   src/queue.c         the design (layout, slot state machine, crashes), statistics,
 *                       creation and attachment, lifetime and state, the waitset hooks
 *   src/queue_io.c      the slot claims and the hot path: waiting, producing, consuming
 *   src/queue_repair.c  repair: re-delivering or skipping the slots of a dead member
 * Here: the layouts, the handle, the slot word helpers, the statistics stores and the
 * wake-ups (static inline); at the end, what one file calls in another (shmkit__queue_*,
 * hidden).
 */
#ifndef SHMKIT_QUEUE_IMPL_H
#define SHMKIT_QUEUE_IMPL_H

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "object.h"
#include "shmkit/queue.h"
#include "waitq_internal.h"

#define Q_MAGIC 0x316575716b6d6873ull /* "shmkque1" */
#define Q_VERSION 3u /* 2: membarrier handshake (16-byte wait queues); 3: the lease */
#define Q_MEMBERS_OFF 1024u
#define Q_MEMBER_SIZE 128u
#define Q_SLOT_HDR 16u
#define Q_TRIES 4096 /* bound of the claim loops (each failure means someone else progressed) */

#define QW_SHIFT 13
#define QW_LOW (((uint64_t)1 << QW_SHIFT) - 1)
#define QW_MEMBER(w) ((uint32_t)((w) >> 3) & 1023u)
#define QW_STATE(w) ((uint32_t)(w)&7u)

enum { S_EMPTY = 0, S_WRITING = 1, S_FULL = 2, S_READING = 3, S_SKIP = 4 };

struct q_totals {
	_Atomic uint64_t sent, bytes_sent, recv, bytes_recv, psleeps, csleeps, redelivered, skipped,
		recovered;
};

struct q_ctl {
	/* immutable after creation */
	uint64_t magic;
	uint32_t version;
	uint32_t max_members;
	uint64_t nslots;
	uint64_t slot_size;
	uint64_t max_msg;
	uint64_t members_offset;
	uint64_t slots_offset;
	/* The lease (top of src/queue.c): registration generation << 32 | count of the
	 * producers (preg) and consumers (creg). Written when a handle first claims, closes,
	 * or is found dead; read by every claim, so kept on this read-mostly line. */
	_Atomic uint64_t preg, creg;
	uint8_t pad0[56];
	_Atomic uint64_t enqueue_pos;
	uint8_t pad1[120];
	_Atomic uint64_t dequeue_pos;
	uint8_t pad2[120];
	struct shmkit__waitq data_q;
	uint8_t pad3[112];
	struct shmkit__waitq space_q;
	uint8_t pad4[112];
	struct q_totals totals;
	uint8_t pad5[312];
};

struct q_member {
	_Atomic uint64_t owner;
	_Atomic uint64_t sent, bytes_sent, recv, bytes_recv, psleeps, csleeps, wakes;
	_Atomic uint64_t lease; /* QL_* bits and acknowledged generations (top of src/queue.c) */
	uint8_t pad[56];
};

struct q_slot {
	_Atomic uint64_t word;
	_Atomic uint32_t len;
	uint32_t zero;
	uint8_t data[];
};

static_assert(offsetof(struct q_ctl, nslots) == 16, "layout");
static_assert(offsetof(struct q_ctl, slots_offset) == 48, "layout");
static_assert(offsetof(struct q_ctl, preg) == 56 && offsetof(struct q_ctl, creg) == 64, "lease");
static_assert(offsetof(struct q_member, lease) == 64, "member lease");
static_assert(offsetof(struct q_ctl, enqueue_pos) == 128, "producer line");
static_assert(offsetof(struct q_ctl, dequeue_pos) == 256, "consumer line");
static_assert(offsetof(struct q_ctl, data_q) == 384, "data queue");
static_assert(offsetof(struct q_ctl, space_q) == 512, "space queue");
static_assert(offsetof(struct q_ctl, totals) == 640, "totals");
static_assert(sizeof(struct q_totals) == 72, "totals");
static_assert(sizeof(struct q_ctl) == Q_MEMBERS_OFF, "members offset");
static_assert(sizeof(struct q_member) == Q_MEMBER_SIZE, "member size");
static_assert(offsetof(struct q_slot, len) == 8 && offsetof(struct q_slot, data) == Q_SLOT_HDR,
	      "slot layout");
static_assert(SHMKIT_QUEUE_MAX_MEMBERS <= 1024, "member index fits 10 bits");

struct shmkit_queue {
	struct shmkit_segment *seg;
	struct q_ctl *ctl;
	struct q_member *members;
	uint8_t *slots;
	uint64_t nslots, mask, stride, max_msg;
	uint32_t max_members;
	uint32_t idx;        /* our member index */
	bool observer;       /* opened with SHMKIT_SEG_RDONLY: no member entry */
	struct q_member *mine;
	uint64_t me;
	struct shmkit__spin spin;
	struct shmkit__wq wq; /* the handshake's mode and the segment's missed counter */
	bool loaned;
	uint64_t loan_pos;
	bool peeked;
	uint64_t peek_pos;
	uint32_t peek_len;
	uint64_t sent, bsent, recvd, brecv, psleeps, csleeps, wakes;
	/* The lease: our member's word as we last stored it, without the QL_F* bits; per
	 * kind (0 producer, 1 consumer) how this handle claims (QM_*: while QM_JOIN with our
	 * counted bit set, a join waits for others to leave a fast claim), the join's
	 * generation, and whether it ran the membarrier (else: acknowledgements). */
	uint64_t lease;
	uint8_t lmode[2];
	bool join_mb[2];
	uint32_t join_gen[2];
	uint64_t fast_claims; /* slots claimed on the fast path (tests read it) */
	/* A consumer wait ended (q_wait) since our last claim; and the thread's produced count
	 * at that claim. In a request/response loop (we waited, and this thread produced in
	 * between) the sole consumer claims with a CAS all the same, and so does this thread's
	 * next produce (the reply: q_reply_likely()). Measured on the 2-vCPU VM: a plain store
	 * is still pending in the store buffer when the thread goes on to write, and what it
	 * writes next commits behind it (a 64 B queue round trip 790 -> 900 ns with plain
	 * consumer claims; at times ~1.0 us with plain producer claims against 0.8 us with
	 * the CAS); the CAS completes it first. A thread that only consumes or only produces,
	 * or works through a backlog, keeps the plain stores. */
	bool waited;
	uint64_t produced_seen;
};

static inline uint64_t qw(uint64_t pos, uint32_t member, uint32_t state)
{
	return pos << QW_SHIFT | (uint64_t)member << 3 | state;
}

/* Position of the word minus `pos`, modulo 2^51, as a signed number of positions. */
static inline int64_t qw_diff(uint64_t w, uint64_t pos)
{
	return (int64_t)((w & ~QW_LOW) - (pos << QW_SHIFT)) / ((int64_t)1 << QW_SHIFT);
}

static inline struct q_slot *slot_at(const struct shmkit_queue *q, uint64_t pos)
{
	return (struct q_slot *)(void *)(q->slots + (pos & q->mask) * q->stride);
}

/* Moves a shared position hint from somewhere in [from, to) up to `to`. Relaxed: a hint;
 * the slot words carry all the ordering. */
static inline void advance(_Atomic uint64_t *hint, uint64_t from, uint64_t to)
{
	uint64_t e = atomic_load_explicit(hint, memory_order_relaxed);
	for (int i = 0; i < 8 && e - from < to - from; i++)
		if (atomic_compare_exchange_weak_explicit(hint, &e, to, memory_order_relaxed,
							  memory_order_relaxed))
			return;
}

/* The claimer's own advance, right after it won slot p: a plain store, not a locked
 * compare-and-swap, when the hint is behind p + 1. A racing store can move the hint back a
 * little; that only costs a later claimer a few probes, since a claim is decided by the
 * slot word alone. Relaxed: a hint. */
static inline void advance_own(_Atomic uint64_t *hint, uint64_t p)
{
	if ((int64_t)(p + 1 - atomic_load_explicit(hint, memory_order_relaxed)) > 0)
		atomic_store_explicit(hint, p + 1, memory_order_relaxed);
}

/* Relaxed: statistics; each member's counters have one writer. */
static inline void pub_stat(_Atomic uint64_t *w, uint64_t v)
{
	atomic_store_explicit(w, v, memory_order_relaxed);
}

static inline void total_add(_Atomic uint64_t *w, uint64_t v)
{
	if (v)
		atomic_fetch_add_explicit(w, v, memory_order_relaxed); /* statistics */
}

/* Somebody sleeps on wait queue `wq`: wakes up to n (src/queue_io.c). Out of line: the
 * hot paths below save no registers for the call. */
void shmkit__queue_wake(struct shmkit_queue *q, struct shmkit__waitq *wq, int n);

static inline void wake_consumers(struct shmkit_queue *q, int n)
{
	if (SHMKIT__UNLIKELY(shmkit__waitq_pending(&q->ctl->data_q)))
		shmkit__queue_wake(q, &q->ctl->data_q, n);
}

static inline void wake_producers(struct shmkit_queue *q, int n)
{
	if (SHMKIT__UNLIKELY(shmkit__waitq_pending(&q->ctl->space_q)))
		shmkit__queue_wake(q, &q->ctl->space_q, n);
}

/* --- the lease (the sole producer's / sole consumer's fast path, top of src/queue.c) --- */

#define QL_FP 1ull  /* in a claim as producer that may be fast (LEASE-S1) */
#define QL_FC 2ull  /* same, as consumer */
#define QL_P 4ull   /* counted in preg */
#define QL_C 8ull   /* counted in creg */
#define QL_CAP 16ull /* may take the fast path: its process registered for membarrier */
#define QL_ACK_BITS 28
#define QL_ACK_MASK ((1ull << QL_ACK_BITS) - 1)
#define QL_ACK_SHIFT(k) (8 + (k)*QL_ACK_BITS) /* the last generation seen with company */

static inline uint64_t ql_f(int k)
{
	return k ? QL_FC : QL_FP;
}

static inline _Atomic uint64_t *ql_reg(const struct shmkit_queue *q, int k)
{
	return k ? &q->ctl->creg : &q->ctl->preg;
}

/* How a handle claims as kind k (its lmode[k]): not joined yet (the first claim joins),
 * always by CAS (its process is not registered for membarrier), or as lease_enter() says. */
enum { QM_JOIN = 0, QM_CAS = 1, QM_LEASE = 2 };

int shmkit__queue_lease_join(struct shmkit_queue *q, int k);

/* Before a claim: 0, or -EAGAIN while this handle's first claim of kind k still waits for
 * a sole claimer to leave its fast claim (rare; src/queue.c). */
static inline int lease_ready(struct shmkit_queue *q, int k)
{
	if (SHMKIT__LIKELY(q->lmode[k] != QM_JOIN))
		return 0;
	return shmkit__queue_lease_join(q, k);
}

/* Per thread, across all queues (src/queue_io.c): messages committed, and whether the
 * thread's last consumer claim followed a wait — its next produce is then likely a reply. */
struct shmkit__q_thread {
	uint64_t produced;
	bool replying;
};
extern __attribute__((tls_model("initial-exec"))) _Thread_local struct shmkit__q_thread
	shmkit__q_thread;

/* Whether this claim, by a sole claimer, had better be a CAS all the same: it belongs to a
 * request/response loop (struct shmkit_queue, `waited`). A consumer: it waited for this
 * message and this thread produced since its previous claim here. A producer: the first
 * produce after a consumer claim that waited (the reply); cleared by it. */
static inline bool q_reply_likely(struct shmkit_queue *q, int k)
{
	if (!k) {
		if (SHMKIT__LIKELY(!shmkit__q_thread.replying))
			return false;
		shmkit__q_thread.replying = false;
		return true;
	}
	return q->waited && shmkit__q_thread.produced != q->produced_seen;
}

/* After a consumer's claim succeeded. Only a claim that waited starts a new observation
 * (a stale produced_seen costs at most one CAS after a backlog; the common path of a
 * stream stays two instructions). */
static inline void q_claimed(struct shmkit_queue *q)
{
	if (SHMKIT__UNLIKELY(q->waited)) {
		shmkit__q_thread.replying = true;
		q->waited = false;
		q->produced_seen = shmkit__q_thread.produced;
	}
}

/* Not alone: our word acknowledges the generation seen in `r` (out of the hot path). */
void shmkit__queue_lease_ack(struct shmkit_queue *q, int k, uint64_t r);

/* Whether this claim may be made with plain stores: we are the only registered claimer of
 * kind k. LEASE-S1 / LEASE-L1 are the fast side of an asymmetric Dekker handshake whose
 * other side (a joiner: LEASE-S2, LEASE-B1, LEASE-A1) is in src/queue.c with the argument.
 * Otherwise the claim is a CAS, and our word acknowledges the generation we saw. */
static inline bool lease_enter(struct shmkit_queue *q, int k)
{
	if (q->lmode[k] != QM_LEASE)
		return false;
	/* LEASE-S1: relaxed, no fence: the joiner's membarrier (LEASE-B1) supplies the
	 * barrier between this store and the load below. */
	atomic_store_explicit(&q->mine->lease, q->lease | ql_f(k), memory_order_relaxed);
	/* LEASE-L1: relaxed, as the other half of the same handshake. */
	uint64_t r = atomic_load_explicit(ql_reg(q, k), memory_order_relaxed);
	if (SHMKIT__UNLIKELY((uint32_t)r != 1)) {
		shmkit__queue_lease_ack(q, k, r); /* LEASE-R2 */
		return false;
	}
	if (SHMKIT__UNLIKELY(q_reply_likely(q, k))) {
		/* Part of a request/response loop: a CAS (struct shmkit_queue, `waited`).
		 * Release: as LEASE-R1. */
		atomic_store_explicit(&q->mine->lease, q->lease, memory_order_release);
		return false;
	}
	return true;
}

/* After a fast claim of `n` slots: LEASE-R1 (release: the slot words we stored are ordered
 * before a joiner's acquire of our cleared bit, LEASE-A1). */
static inline void lease_exit(struct shmkit_queue *q, bool fast, uint64_t n)
{
	if (fast) {
		q->fast_claims += n;
		atomic_store_explicit(&q->mine->lease, q->lease, memory_order_release);
	}
}

/* What a sweep repairs: the claims tagged with our own index that are not our pending
 * loan or peek (adopted from a dead predecessor), those of dead members, or both; OTHERS
 * reads no private state of the handle (own_claim() does), so any thread may run it. */
enum { SWEEP_OWN, SWEEP_ALL, SWEEP_OTHERS };

/* --- across the queue's files -------------------------------------------------------------- */

/* src/queue_io.c */
bool shmkit__queue_probe(const struct shmkit_queue *q, bool data, bool sc);

/* src/queue.c: gives back the registrations of dead members (the sweep, a join). */
void shmkit__queue_lease_reap(const struct shmkit_queue *q);

/* src/queue_repair.c */
int shmkit__queue_sweep_slots(const struct shmkit_queue *q, int which);
int shmkit__queue_sweep(struct shmkit_queue *q, bool own_only);

#endif
