/* shmkit — bounded many-producer / many-consumer work queue (include/shmkit/queue.h).
 *
 * Layout of the segment's data area (offsets from shmkit_segment_data()):
 *
 *   offset size  field                          written by
 *        0    8  magic "shmkque1"               creator, before the segment is published
 *        8    4  version (2)                    creator
 *       12    4  max_members                    creator
 *       16    8  nslots (a power of two)        creator
 *       24    8  slot_size (stride)             creator: 16 + max_msg rounded up to 64
 *       32    8  max_msg                        creator
 *       40    8  members_offset (1024)          creator
 *       48    8  slots_offset                   creator: 1024 + 128 × max_members
 *      128    8  enqueue_pos                    producers (CAS) — a hint, see below
 *      256    8  dequeue_pos                    consumers (CAS) — a hint
 *      384   16  data queue: gen, sleepers,     consumers sleep, producers wake
 *                fenced (src/waitq_internal.h)
 *      512   16  space queue (same fields)      producers sleep, consumers wake
 *      640   72  totals: sent, bytes_sent, recv, bytes_recv, producer sleeps, consumer
 *                sleeps, redelivered, skipped, recovered members         (fetch_add, rare)
 *     1024  128  member entry 0, 1, ... max_members-1:
 *                   0  8  owner   pid << 32 | start, 0 = free   (CAS: attacher, closer)
 *                   8 64  sent, bytes_sent, recv, bytes_recv, producer sleeps, consumer
 *                         sleeps, wakes, reserved                       the member only
 *   slots_offset  slot_size × nslots, each:
 *                   0  8  word    position << 13 | member << 3 | state
 *                   8  4  len     payload bytes (written by the producer holding the slot)
 *                  12  4  zero
 *                  16     payload (max_msg bytes)
 *
 * Slot words. The slot for position p is slot p & (nslots - 1). Its word holds the
 * position it is at (51 bits, compared modulo 2^51), a state, and — while a handle holds
 * it — that handle's member index:
 *
 *   EMPTY@p ──producer CAS──▶ WRITING@p,m ──commit──▶ FULL@p ──consumer CAS──▶ READING@p,m
 *                                 │ (m died)             ▲                       │ │ release
 *                                 ▼                      └───(m died: repair)────┘ ▼
 *                              SKIP@p ──consumer CAS──────────────────▶ EMPTY@(p + nslots)
 *
 * Protocol. The claim is the CAS on the slot word, which records the claimer's member
 * index in the same atomic step: there is no moment where a slot is taken but nobody can
 * be named for it. A producer starts at enqueue_pos (a hint) and reads that slot's word
 * (acquire, QUEUE-A1, pairing with a consumer's release QUEUE-R2 so its reads of the old message are
 * done): EMPTY at that position → CAS to WRITING (the claim), then move the hint past it
 * with a plain store; claimed by someone else at that position, or already at a later one
 * → probe the next position privately (a loser costs a read, not a locked operation on
 * the hint's hot line); an earlier position (the previous lap not consumed yet) → full.
 * It writes the payload and len, then stores FULL (QUEUE-R1, release). Consumers mirror this
 * with dequeue_pos, FULL → READING (QUEUE-A2, pairing with QUEUE-R1), and release with EMPTY at
 * position + nslots (QUEUE-R2, release). The positions are only hints — racing stores may even
 * move them back a little — that make the common case one probe: correctness rests on the
 * slot words alone. Batches claim adjacent slots one CAS each and move the hint once.
 *
 * Waiting: the sleep/wake handshake of src/waitq_internal.h. The release stores
 * QUEUE-R1/QUEUE-R2 are its stores; the barrier is on the sleeper's side (membarrier), so
 * publishing needs no fence.
 *
 * When a process dies. Its member entry keeps its owner word, which now names a dead
 * process, and every slot it held still carries its member index:
 *   WRITING@p,m   (died mid-loan) → SKIP@p: consumers step over it (counted as skipped);
 *   READING@p,m   (died mid-take) → FULL@p again, in place (a CAS: one repairer wins),
 *                 and dequeue_pos — only a hint — is moved back to p, so the next consumer
 *                 takes it; consumers then step over the positions already taken
 *                 (counted as redelivered). In place, the repair needs no free slot: it
 *                 works even when the queue is full and this very slot is what blocks the
 *                 producers.
 * Repairs happen in a blocked call every 100 ms of its wait — woken or not: a waiter stuck
 * behind a dead holder is still woken by the traffic around that slot — in a waitset's
 * liveness check (src/wait.c), in shmkit_queue_recover(), and when a process takes over a
 * dead process's member entry (it adopts any claim still tagged with that index and
 * repairs it; its own counters are folded into the totals). A live
 * handle's claims are never touched: liveness is pid + start time, so a recycled pid does
 * not pass for the dead holder. A sleeper killed while counted costs wakers a needless
 * FUTEX_WAKE, nothing more.
 *
 * Hostile peers: every word is decoded and checked (state, member index < max_members,
 * position), every length against max_msg, every loop bounded; garbage yields -EBADMSG,
 * a skipped or dropped message, or a wait until the deadline.
 */
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
#define Q_VERSION 2u /* 2: membarrier handshake (16-byte wait queues) */
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
	uint8_t pad0[72];
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
	_Atomic uint64_t sent, bytes_sent, recv, bytes_recv, psleeps, csleeps, wakes, reserved;
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
static void advance(_Atomic uint64_t *hint, uint64_t from, uint64_t to)
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
static void advance_own(_Atomic uint64_t *hint, uint64_t p)
{
	if ((int64_t)(p + 1 - atomic_load_explicit(hint, memory_order_relaxed)) > 0)
		atomic_store_explicit(hint, p + 1, memory_order_relaxed);
}

/* --- statistics ----------------------------------------------------------------------------- */

/* Relaxed: statistics; each member's counters have one writer. */
static void pub_stat(_Atomic uint64_t *w, uint64_t v)
{
	atomic_store_explicit(w, v, memory_order_relaxed);
}

static void total_add(_Atomic uint64_t *w, uint64_t v)
{
	if (v)
		atomic_fetch_add_explicit(w, v, memory_order_relaxed); /* statistics */
}

/* Adds a member's counters to the totals and zeroes them (the caller owns the entry). */
static void fold_member(struct q_ctl *c, struct q_member *m)
{
	struct q_totals *t = &c->totals;
	/* Relaxed: statistics. */
#define FOLD(from, to)                                                                 \
	do {                                                                           \
		total_add(&t->to, atomic_load_explicit(&m->from, memory_order_relaxed)); \
		pub_stat(&m->from, 0);                                                 \
	} while (0)
	FOLD(sent, sent);
	FOLD(bytes_sent, bytes_sent);
	FOLD(recv, recv);
	FOLD(bytes_recv, bytes_recv);
	FOLD(psleeps, psleeps);
	FOLD(csleeps, csleeps);
	pub_stat(&m->wakes, 0);
#undef FOLD
}

/* --- claiming ------------------------------------------------------------------------------- */

/* Claims one slot for writing: 0 and *posp, -EAGAIN (full, or endless contention).
 * Starts at the shared hint and probes forward privately past slots other producers
 * claimed at this lap, so that losing a race costs a read, not a locked operation on the
 * hint's hot line; the winner moves the hint (advance_own). */
static int claim_write(struct shmkit_queue *q, uint64_t *posp)
{
	struct q_ctl *c = q->ctl;
	/* Relaxed: a hint (see the top of the file). */
	uint64_t p = atomic_load_explicit(&c->enqueue_pos, memory_order_relaxed);
	for (int tries = 0; tries < Q_TRIES; tries++) {
		struct q_slot *s = slot_at(q, p);
		/* QUEUE-A1: pairs with QUEUE-R2 in free_slot(): the last consumer's reads are done. */
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		int64_t d = qw_diff(w, p);
		if (d == 0 && QW_STATE(w) == S_EMPTY) {
			/* Acquire: as QUEUE-A1, for the value the CAS replaces. */
			if (atomic_compare_exchange_strong_explicit(&s->word, &w,
								    qw(p, q->idx, S_WRITING),
								    memory_order_acquire,
								    memory_order_relaxed)) {
				advance_own(&c->enqueue_pos, p);
				*posp = p;
				return 0;
			}
			continue; /* changed under us: look again */
		}
		if (d < 0)
			return -EAGAIN; /* the previous lap is still in this slot: full */
		/* Claimed by another at this lap, or already reused at a later one (our view is
		 * stale): go forward, jumping to the hint when it is ahead. */
		uint64_t h = atomic_load_explicit(&c->enqueue_pos, memory_order_relaxed);
		p = (int64_t)(h - p) > 1 && h - p <= q->nslots ? h : p + 1;
	}
	return -EAGAIN;
}

/* Claims `pos` for writing only if it is EMPTY at that position (batch extension). */
static bool claim_write_at(struct shmkit_queue *q, uint64_t pos)
{
	struct q_slot *s = slot_at(q, pos);
	uint64_t w = qw(pos, 0, S_EMPTY);
	/* Acquire: as QUEUE-A1. */
	return atomic_compare_exchange_strong_explicit(&s->word, &w, qw(pos, q->idx, S_WRITING),
						       memory_order_acquire, memory_order_relaxed);
}

/* Publishes a written slot (QUEUE-R1); also the store of the sleep/wake handshake with sleeping
 * consumers (src/waitq_internal.h: release suffices). */
static void commit_slot(struct shmkit_queue *q, uint64_t pos, uint32_t len)
{
	struct q_slot *s = slot_at(q, pos);
	/* Relaxed: ordered before the word store below (release). */
	atomic_store_explicit(&s->len, len, memory_order_relaxed);
	/* QUEUE-R1: publishes the payload and len; pairs with QUEUE-A2 in claim_read(). */
	atomic_store_explicit(&s->word, qw(pos, 0, S_FULL), memory_order_release);
}

/* Claims one slot for reading: 0 and *posp, -EAGAIN (empty), skipping SKIP slots. Probes
 * forward privately past slots other consumers took, as claim_write() does. */
static int claim_read(struct shmkit_queue *q, uint64_t *posp)
{
	struct q_ctl *c = q->ctl;
	/* Relaxed: a hint. */
	uint64_t p = atomic_load_explicit(&c->dequeue_pos, memory_order_relaxed);
	for (int tries = 0; tries < Q_TRIES; tries++) {
		struct q_slot *s = slot_at(q, p);
		/* QUEUE-A2: pairs with QUEUE-R1 in commit_slot(): the payload is visible. */
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		int64_t d = qw_diff(w, p);
		uint32_t st = QW_STATE(w);
		if (d == 0 && st == S_FULL) {
			/* Acquire: as QUEUE-A2. */
			if (atomic_compare_exchange_strong_explicit(&s->word, &w,
								    qw(p, q->idx, S_READING),
								    memory_order_acquire,
								    memory_order_relaxed)) {
				advance_own(&c->dequeue_pos, p);
				*posp = p;
				return 0;
			}
			continue;
		}
		if (d == 0 && st == S_SKIP) {
			/* QUEUE-R2 for a skipped slot: hands it to the next lap's producer. */
			if (atomic_compare_exchange_strong_explicit(&s->word, &w,
								    qw(p + q->nslots, 0, S_EMPTY),
								    memory_order_release,
								    memory_order_relaxed)) {
				advance_own(&c->dequeue_pos, p);
				if (shmkit__waitq_wake(&c->space_q, 1))
					q->wakes++;
			}
			continue;
		}
		if (d < 0 || (d == 0 && (st == S_EMPTY || st == S_WRITING)))
			return -EAGAIN; /* the next message is not committed yet */
		/* Taken by another at this lap, or freed for a later one: go forward. */
		uint64_t h = atomic_load_explicit(&c->dequeue_pos, memory_order_relaxed);
		p = (int64_t)(h - p) > 1 && h - p <= q->nslots ? h : p + 1;
	}
	return -EAGAIN;
}

static bool claim_read_at(struct shmkit_queue *q, uint64_t pos)
{
	struct q_slot *s = slot_at(q, pos);
	uint64_t w = qw(pos, 0, S_FULL);
	/* Acquire: as QUEUE-A2. */
	return atomic_compare_exchange_strong_explicit(&s->word, &w, qw(pos, q->idx, S_READING),
						       memory_order_acquire, memory_order_relaxed);
}

/* Frees a slot for the next lap (QUEUE-R2); also the store of the handshake with sleeping
 * producers (release suffices, src/waitq_internal.h). */
static void free_slot(struct shmkit_queue *q, uint64_t pos)
{
	/* QUEUE-R2: the reads of the payload are done; pairs with QUEUE-A1 in claim_write(). */
	atomic_store_explicit(&slot_at(q, pos)->word, qw(pos + q->nslots, 0, S_EMPTY),
			      memory_order_release);
}

static void wake_consumers(struct shmkit_queue *q, int n)
{
	if (shmkit__waitq_wake(&q->ctl->data_q, n)) {
		q->wakes++;
		pub_stat(&q->mine->wakes, q->wakes);
	}
}

static void wake_producers(struct shmkit_queue *q, int n)
{
	if (shmkit__waitq_wake(&q->ctl->space_q, n)) {
		q->wakes++;
		pub_stat(&q->mine->wakes, q->wakes);
	}
}

/* Reads a slot's length once and validates it. */
static int slot_len(const struct shmkit_queue *q, uint64_t pos, uint32_t *len)
{
	/* Relaxed: ordered after the claim's acquire (QUEUE-A2). */
	uint32_t n = atomic_load_explicit(&slot_at(q, pos)->len, memory_order_relaxed);
	if (n > q->max_msg)
		return -EBADMSG;
	*len = n;
	return 0;
}

/* --- repair --------------------------------------------------------------------------------- */

/* Lowers a shared position hint to `to` (a re-delivered slot behind it). Relaxed: a hint
 * (see the top of the file); bounded, a peer rewriting it non-stop only costs a re-try. */
static void lower(_Atomic uint64_t *hint, uint64_t to)
{
	uint64_t e = atomic_load_explicit(hint, memory_order_relaxed);
	for (int i = 0; i < 64 && (int64_t)(e - to) > 0; i++)
		if (atomic_compare_exchange_weak_explicit(hint, &e, to, memory_order_relaxed,
							  memory_order_relaxed))
			return;
}

/* Repairs the slot at index i whose word was `w` (held by a dead member, or adopted from
 * one). Returns 1 when repaired, 0 when someone else changed it first. Wakes nobody: the
 * sweep wakes consumers once for all its repairs. */
static int repair_slot(const struct shmkit_queue *q, uint64_t i, uint64_t w)
{
	struct q_ctl *c = q->ctl;
	struct q_slot *s = (struct q_slot *)(void *)(q->slots + i * q->stride);
	uint64_t p = w >> QW_SHIFT; /* the position, modulo 2^51: enough for words */
	bool writing = QW_STATE(w) == S_WRITING;
	/* seq_cst: the CAS succeeds only on the dead holder's word; it is also the store half
	 * of the handshake with consumers sleeping on this slot. For a take (READING), the
	 * RMW continues the release sequence of the producer's QUEUE-R1, so the next consumer's
	 * acquire (QUEUE-A2) still sees the payload. */
	if (!atomic_compare_exchange_strong_explicit(&s->word, &w,
						     qw(p, 0, writing ? S_SKIP : S_FULL),
						     memory_order_seq_cst, memory_order_relaxed))
		return 0;
	if (writing) {
		total_add(&c->totals.skipped, 1);
	} else {
		/* Re-delivered in place: consumers have moved on, so move their hint back to
		 * this position (a hint: slots between here and the real head are found taken
		 * or free-for-a-later-lap and stepped over). The full position from the hint
		 * and the word's 51 bits. */
		uint64_t h = atomic_load_explicit(&c->dequeue_pos, memory_order_relaxed);
		lower(&c->dequeue_pos, h + (uint64_t)qw_diff(qw(p, 0, 0), h));
		total_add(&c->totals.redelivered, 1);
	}
	return 1;
}

/* Whether our own member index on a claimed slot is ours for real: our pending loan or
 * peek. Otherwise the claim was adopted from the dead process whose entry we took over. */
static bool own_claim(const struct shmkit_queue *q, uint64_t w)
{
	uint64_t p = w >> QW_SHIFT;
	uint64_t pmask = ((uint64_t)1 << (64 - QW_SHIFT)) - 1;
	if (q->loaned && QW_STATE(w) == S_WRITING && p == (q->loan_pos & pmask))
		return true;
	return q->peeked && QW_STATE(w) == S_READING && p == (q->peek_pos & pmask);
}

/* What a sweep repairs: the claims tagged with our own index that are not our pending
 * loan or peek (adopted from a dead predecessor), those of dead members, or both; OTHERS
 * reads no private state of the handle (own_claim() does), so any thread may run it. */
enum { SWEEP_OWN, SWEEP_ALL, SWEEP_OTHERS };

/* Repairs what `which` says; returns how many slots, or -ENOMEM. */
static int sweep_slots(const struct shmkit_queue *q, int which)
{
	int8_t *state = calloc(q->max_members, 1); /* 0 unknown, 1 alive, -1 dead */
	if (!state)
		return -ENOMEM;
	int repaired = 0;
	for (uint64_t i = 0; i < q->nslots; i++) {
		struct q_slot *s = (struct q_slot *)(void *)(q->slots + i * q->stride);
		/* Relaxed: the repair's CAS re-checks the value with the right order. */
		uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
		uint32_t st = QW_STATE(w), m = QW_MEMBER(w);
		if ((st != S_WRITING && st != S_READING) || m >= q->max_members)
			continue;
		if (m == q->idx) {
			if (which != SWEEP_OTHERS && !own_claim(q, w))
				repaired += repair_slot(q, i, w);
			continue;
		}
		if (which == SWEEP_OWN)
			continue;
		if (state[m] == 0) {
			/* Relaxed: a liveness probe; a free entry (0) holds no live claim. */
			uint64_t o = atomic_load_explicit(&q->members[m].owner, memory_order_relaxed);
			state[m] = shmkit__owner_state(o) > 0 ? 1 : -1;
		}
		if (state[m] < 0)
			repaired += repair_slot(q, i, w);
	}
	free(state);
	return repaired;
}

static int sweep(struct shmkit_queue *q, bool own_only)
{
	int n = sweep_slots(q, own_only ? SWEEP_OWN : SWEEP_ALL);
	if (n > 0)
		wake_consumers(q, n); /* after the seq_cst repairs: the handshake's store half */
	return n;
}

int shmkit_queue_recover(struct shmkit_queue *q)
{
	if (!q)
		return -EINVAL;
	return q->observer ? -EPERM : sweep(q, false);
}

/* --- creation and attachment ------------------------------------------------------------- */

static int attach_member(struct shmkit_queue *q)
{
	/* A free entry, else a dead process's (src/object.h); acquire orders our use after
	 * the previous holder's release. */
	bool dead;
	int i = shmkit__role_claim_slot(&q->members[0].owner, sizeof q->members[0],
					q->max_members, q->me, &dead);
	if (i < 0)
		return i;
	q->idx = (uint32_t)i;
	q->mine = &q->members[i];
	fold_member(q->ctl, q->mine);
	if (dead) {
		/* Took a dead process's entry: its claims carry our index now. */
		total_add(&q->ctl->totals.recovered, 1);
		sweep(q, true);
	}
	return 0;
}

static int q_attach(struct shmkit_queue *q)
{
	struct q_ctl *c = q->ctl;
	size_t seg_size = shmkit_segment_size(q->seg);
	if (seg_size < sizeof(struct q_ctl))
		return -EBADMSG;
	/* Written before the segment was published; copied once into locals. */
	uint64_t magic = c->magic, n = c->nslots, stride = c->slot_size, max_msg = c->max_msg,
		 moff = c->members_offset, soff = c->slots_offset;
	uint32_t version = c->version, members = c->max_members;
	int err = shmkit__layout_check(magic, Q_MAGIC, version, Q_VERSION);
	if (err)
		return err;
	if (n < 2 || n > SHMKIT_QUEUE_MAX_SLOTS || (n & (n - 1)) || max_msg == 0 ||
	    max_msg > SHMKIT_QUEUE_MAX_MSG || stride != ((Q_SLOT_HDR + max_msg + 63) & ~63ull) ||
	    members == 0 || members > SHMKIT_QUEUE_MAX_MEMBERS || moff != Q_MEMBERS_OFF ||
	    soff != Q_MEMBERS_OFF + (uint64_t)Q_MEMBER_SIZE * members || soff > seg_size ||
	    n * stride > seg_size - soff)
		return -EBADMSG;
	q->nslots = n;
	q->mask = n - 1;
	q->stride = stride;
	q->max_msg = max_msg;
	q->max_members = members;
	q->members = (struct q_member *)(void *)((uint8_t *)c + moff);
	q->slots = (uint8_t *)c + soff;
	if (q->observer)
		return 0;
	/* Before our first sleep or wake. */
	shmkit__wq_attach(&q->wq, q->seg,
			  (struct shmkit__waitq *const[]){&q->ctl->data_q, &q->ctl->space_q}, 2);
	return attach_member(q);
}

static int q_alloc(struct shmkit_segment *seg, const struct shmkit_queue_opts *o,
		   struct shmkit_queue **qp)
{
	struct shmkit_queue *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->seg = seg;
	q->ctl = shmkit_segment_data(seg);
	q->me = shmkit__self_owner();
	q->observer = shmkit__opts_rdonly(o ? &o->seg : NULL); /* read-only: no member entry */
	shmkit__spin_init(&q->spin, o ? o->spin_ns : 0, o && (o->flags & SHMKIT_QUEUE_NO_SPIN));
	*qp = q;
	return 0;
}

static int open_seg(struct shmkit_segment *seg, const struct shmkit_queue_opts *o,
		    struct shmkit_queue **qp, bool unlink_on_error)
{
	struct shmkit_queue *q;
	int err = q_alloc(seg, o, &q);
	if (!err) {
		err = q_attach(q);
		if (err)
			free(q);
	}
	if (err)
		return shmkit__segment_abandon(seg, unlink_on_error, err);
	*qp = q;
	return 0;
}

#define Q_OPT_FLAGS SHMKIT_QUEUE_NO_SPIN

SHMKIT__SYMVER_DEFAULT(shmkit__queue_create, shmkit_queue_create, SHMKIT_0.2);
int shmkit__queue_create(const char *name, const struct shmkit_queue_opts *opts,
			 struct shmkit_queue **qp)
{
	if (!qp)
		return -EINVAL;
	*qp = NULL;
	static const struct shmkit_queue_opts defaults;
	const struct shmkit_queue_opts *o = opts ? opts : &defaults;
	/* A creator attaches as a member: read-only makes no sense (segment create refuses
	 * SHMKIT_SEG_RDONLY too). */
	if (shmkit__opts_check(o->flags, Q_OPT_FLAGS, o->reserved, 4) || shmkit__opts_rdonly(&o->seg))
		return -EINVAL;
	uint64_t n = o->slots ? o->slots : SHMKIT_QUEUE_DEFAULT_SLOTS;
	uint64_t max_msg = o->max_msg ? o->max_msg : SHMKIT_QUEUE_DEFAULT_MAX_MSG;
	uint32_t members = o->max_members ? o->max_members : SHMKIT_QUEUE_DEFAULT_MEMBERS;
	if (n > SHMKIT_QUEUE_MAX_SLOTS || max_msg > SHMKIT_QUEUE_MAX_MSG ||
	    members > SHMKIT_QUEUE_MAX_MEMBERS)
		return -EINVAL;
	n = shmkit__next_pow2(n, 2, SHMKIT_QUEUE_MAX_SLOTS);
	uint64_t stride = (Q_SLOT_HDR + max_msg + 63) & ~63ull;
	uint64_t soff = Q_MEMBERS_OFF + (uint64_t)Q_MEMBER_SIZE * members;

	struct shmkit_segment *seg;
	int err = shmkit__object_create(name, SHMKIT_KIND_QUEUE, soff + n * stride, &o->seg, &seg);
	if (err)
		return err;
	struct q_ctl *c = shmkit_segment_data(seg);
	c->magic = Q_MAGIC;
	c->version = Q_VERSION;
	c->max_members = members;
	c->nslots = n;
	c->slot_size = stride;
	c->max_msg = max_msg;
	c->members_offset = Q_MEMBERS_OFF;
	c->slots_offset = soff;
	uint8_t *slots = (uint8_t *)c + soff;
	for (uint64_t i = 0; i < n; i++) {
		/* Relaxed: before publication; shmkit_segment_publish() releases it. */
		atomic_store_explicit(&((struct q_slot *)(void *)(slots + i * stride))->word,
				      qw(i, 0, S_EMPTY), memory_order_relaxed);
	}
	shmkit_segment_publish(seg);
	return open_seg(seg, o, qp, true);
}

/* What shmkit_queue_open() and shmkit_queue_open_fd() share. */
static int q_open(const struct shmkit__seg_src *src, const struct shmkit_queue_opts *opts,
		  struct shmkit_queue **qp)
{
	if (!qp)
		return -EINVAL;
	*qp = NULL;
	int err = opts ? shmkit__opts_check(opts->flags, Q_OPT_FLAGS, opts->reserved, 4) : 0;
	struct shmkit_segment *seg;
	if (!err)
		err = shmkit__object_open(src, SHMKIT_KIND_QUEUE, Q_MEMBERS_OFF,
					  opts ? &opts->seg : NULL, &seg);
	return err ? err : open_seg(seg, opts, qp, false);
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_open, shmkit_queue_open, SHMKIT_0.2);
int shmkit__queue_open(const char *name, const struct shmkit_queue_opts *opts,
		       struct shmkit_queue **qp)
{
	return q_open(&(struct shmkit__seg_src){.name = name}, opts, qp);
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_open_fd, shmkit_queue_open_fd, SHMKIT_0.2);
int shmkit__queue_open_fd(int fd, const struct shmkit_queue_opts *opts, struct shmkit_queue **qp)
{
	return q_open(&(struct shmkit__seg_src){.fd = fd, .by_fd = true}, opts, qp);
}

/* --- waiting -------------------------------------------------------------------------------- */

struct wctx {
	struct shmkit_queue *q;
	bool sc;
	bool data; /* waiting for data (else for space) */
};

/* Whether a claim may now succeed: the same forward probe from the shared hint as
 * claim_write() / claim_read(), without the CAS, so that "ready" and "claim failed" can
 * never disagree for long. Reads shared words only (the waitset calls it from any thread).
 * sc: the sleep protocol's re-check after WQ-B1 (seq_cst loads, as cheap as acquire
 * here); else acquire (as QUEUE-A1/QUEUE-A2). */
static bool probe(const struct shmkit_queue *q, bool data, bool sc)
{
	struct q_ctl *c = q->ctl;
	memory_order mo = sc ? memory_order_seq_cst : memory_order_acquire;
	_Atomic uint64_t *hint = data ? &c->dequeue_pos : &c->enqueue_pos;
	uint64_t p = atomic_load_explicit(hint, mo);
	for (uint64_t i = 0; i <= q->nslots; i++) {
		uint64_t w = atomic_load_explicit(&slot_at(q, p)->word, mo);
		int64_t d = qw_diff(w, p);
		uint32_t st = QW_STATE(w);
		if (d < 0)
			return false; /* full (producer) / previous lap still held (consumer) */
		if (d == 0 && !data && st == S_EMPTY)
			return true;
		if (d == 0 && data && (st == S_FULL || st == S_SKIP))
			return true;
		if (d == 0 && data && (st == S_EMPTY || st == S_WRITING))
			return false; /* the next message is not committed yet */
		p++; /* taken by another at this lap, or already at a later one */
	}
	return true; /* a whole lap of nonsense (a scribbler): let the claim report it */
}

/* Whether the slot at the shared position may now be claimable. */
static bool q_ready(void *arg)
{
	struct wctx *x = arg;
	return probe(x->q, x->data, x->sc);
}

/* One wait of a blocking call's loop, after its claim failed. *since: 0 at the loop's
 * start, then when this call last checked for dead holders (or began waiting).
 *
 * The check (a sweep) runs once SHMKIT__SLICE_NS passed since then, whether or not the
 * sleeps in between were woken: a waiter blocked by a dead process's slot is still woken
 * by every commit behind that slot (or every release around it), and a check made only
 * after a sleep that nobody interrupted would wait for the traffic to stop — the queue to
 * fill up, or to drain — before repairing (2.4 s with a 256-slot queue and a peer moving a
 * message every 10 ms, without bound for a larger queue). */
static int q_wait(struct shmkit_queue *q, bool data, const struct timespec *deadline,
		  uint64_t *since)
{
	uint64_t now = shmkit_now_ns();
	/* The caller's claim just failed: never try again past the deadline, whatever the
	 * readiness probe says (a peer rewriting words could make it say "ready" forever). */
	if (shmkit__deadline_passed(deadline, now))
		return -ETIMEDOUT;
	if (*since == 0) {
		*since = now;
	} else if (now - *since >= SHMKIT__SLICE_NS) {
		*since = now;
		if (sweep(q, false) > 0)
			return 0; /* a dead holder's slot repaired: claim again */
	}
	struct wctx x = {q, false, data};
	if (shmkit__spin_wait(&q->spin, q_ready, &x))
		return 0;
	x.sc = true;
	bool slept;
	struct shmkit__waitq *wq = data ? &q->ctl->data_q : &q->ctl->space_q;
	/* Sleep no longer than until the next check is due. */
	uint64_t left = *since + SHMKIT__SLICE_NS - shmkit_now_ns();
	left = left > SHMKIT__SLICE_NS ? 0 : left; /* wrapped: due already */
	int r = shmkit__waitq_sleep(wq, &q->wq, q_ready, &x, deadline, left, &slept);
	if (r == 0)
		shmkit__spin_learn(&q->spin); /* woken soon: spin that long next time */
	if (slept) {
		if (data)
			pub_stat(&q->mine->csleeps, ++q->csleeps);
		else
			pub_stat(&q->mine->psleeps, ++q->psleeps);
	}
	if (r == 1 || r == -ETIMEDOUT) {
		/* The check is due (or the deadline came): is a dead process holding the way? */
		*since = shmkit_now_ns();
		if (sweep(q, false) > 0)
			return 0;
	}
	return r == 1 ? 0 : r;
}

/* --- producing ----------------------------------------------------------------------------- */

int shmkit_queue_loan(struct shmkit_queue *q, void **buf)
{
	if (!q || !buf)
		return -EINVAL;
	if (q->observer)
		return -EPERM;
	if (q->loaned)
		return -EBUSY;
	uint64_t p;
	int err = claim_write(q, &p);
	if (err)
		return err;
	q->loaned = true;
	q->loan_pos = p;
	*buf = slot_at(q, p)->data;
	return 0;
}

int shmkit_queue_loan_wait(struct shmkit_queue *q, void **buf, const struct timespec *deadline)
{
	uint64_t since = 0; /* q_wait(): when dead holders were last looked for */
	for (;;) {
		int err = shmkit_queue_loan(q, buf);
		if (err != -EAGAIN)
			return err;
		err = q_wait(q, false, deadline, &since);
		if (err)
			return err;
	}
}

int shmkit_queue_commit(struct shmkit_queue *q, size_t len)
{
	if (!q || !q->loaned || len > q->max_msg)
		return -EINVAL;
	commit_slot(q, q->loan_pos, (uint32_t)len);
	q->loaned = false;
	q->sent++;
	q->bsent += len;
	pub_stat(&q->mine->sent, q->sent);
	pub_stat(&q->mine->bytes_sent, q->bsent);
	wake_consumers(q, 1);
	return 0;
}

int shmkit_queue_cancel(struct shmkit_queue *q)
{
	if (!q || !q->loaned)
		return -EINVAL;
	/* Release: as QUEUE-R1 — consumers may be sleeping on this very slot (the wake below). */
	atomic_store_explicit(&slot_at(q, q->loan_pos)->word, qw(q->loan_pos, 0, S_SKIP),
			      memory_order_release);
	q->loaned = false;
	total_add(&q->ctl->totals.skipped, 1);
	wake_consumers(q, 1);
	return 0;
}

int shmkit_queue_send(struct shmkit_queue *q, const void *buf, size_t len)
{
	if (q && len > q->max_msg)
		return -EMSGSIZE;
	void *p;
	int err = shmkit_queue_loan(q, &p);
	if (err)
		return err;
	shmkit__copy(p, buf, len);
	return shmkit_queue_commit(q, len);
}

int shmkit_queue_send_wait(struct shmkit_queue *q, const void *buf, size_t len,
			   const struct timespec *deadline)
{
	if (q && len > q->max_msg)
		return -EMSGSIZE;
	void *p;
	int err = shmkit_queue_loan_wait(q, &p, deadline);
	if (err)
		return err;
	shmkit__copy(p, buf, len);
	return shmkit_queue_commit(q, len);
}

int shmkit_queue_send_many(struct shmkit_queue *q, const void *buf, size_t stride,
			   const size_t *lens, size_t n)
{
	if (!q || !buf || !lens || n == 0 || n > INT_MAX)
		return -EINVAL;
	if (q->observer)
		return -EPERM;
	if (q->loaned)
		return -EBUSY;
	for (size_t i = 0; i < n; i++)
		if (lens[i] > q->max_msg)
			return -EMSGSIZE;
	uint64_t p;
	int err = claim_write(q, &p);
	if (err)
		return err;
	size_t k = 1;
	while (k < n && k < q->nslots && claim_write_at(q, p + k))
		k++;
	if (k > 1)
		advance(&q->ctl->enqueue_pos, p + 1, p + k);
	const uint8_t *src = buf;
	uint64_t bytes = 0;
	for (size_t i = 0; i < k; i++) {
		shmkit__copy(slot_at(q, p + i)->data, src + i * stride, lens[i]);
		bytes += lens[i];
	}
	for (size_t i = 0; i < k; i++)
		commit_slot(q, p + i, (uint32_t)lens[i]);
	q->sent += k;
	q->bsent += bytes;
	pub_stat(&q->mine->sent, q->sent);
	pub_stat(&q->mine->bytes_sent, q->bsent);
	wake_consumers(q, (int)k);
	return (int)k;
}

int shmkit_queue_send_many_wait(struct shmkit_queue *q, const void *buf, size_t stride,
				const size_t *lens, size_t n, const struct timespec *deadline)
{
	uint64_t since = 0; /* q_wait(): when dead holders were last looked for */
	for (;;) {
		int r = shmkit_queue_send_many(q, buf, stride, lens, n);
		if (r != -EAGAIN)
			return r;
		r = q_wait(q, false, deadline, &since);
		if (r)
			return r;
	}
}

/* --- consuming --------------------------------------------------------------------------------- */

int shmkit_queue_peek(struct shmkit_queue *q, const void **buf, size_t *len)
{
	if (!q || !buf || !len)
		return -EINVAL;
	if (q->observer)
		return -EPERM;
	if (!q->peeked) {
		uint64_t p;
		int err = claim_read(q, &p);
		if (err)
			return err;
		uint32_t n;
		if (slot_len(q, p, &n) < 0) {
			free_slot(q, p); /* drop the corrupt slot */
			wake_producers(q, 1);
			return -EBADMSG;
		}
		q->peeked = true;
		q->peek_pos = p;
		q->peek_len = n;
	}
	*buf = slot_at(q, q->peek_pos)->data;
	*len = q->peek_len;
	return 0;
}

int shmkit_queue_peek_wait(struct shmkit_queue *q, const void **buf, size_t *len,
			   const struct timespec *deadline)
{
	uint64_t since = 0; /* q_wait(): when dead holders were last looked for */
	for (;;) {
		int err = shmkit_queue_peek(q, buf, len);
		if (err != -EAGAIN)
			return err;
		err = q_wait(q, true, deadline, &since);
		if (err)
			return err;
	}
}

int shmkit_queue_release(struct shmkit_queue *q)
{
	if (!q || !q->peeked)
		return -EINVAL;
	free_slot(q, q->peek_pos);
	q->peeked = false;
	q->recvd++;
	q->brecv += q->peek_len;
	pub_stat(&q->mine->recv, q->recvd);
	pub_stat(&q->mine->bytes_recv, q->brecv);
	wake_producers(q, 1);
	return 0;
}

static ssize_t copy_out(struct shmkit_queue *q, int err, const void *p, size_t n, void *buf,
			size_t cap)
{
	if (err)
		return err;
	if (n > cap)
		return -ENOBUFS; /* the caller's buffer is too small (shmkit_errors(7)) */
	shmkit__copy(buf, p, n);
	shmkit_queue_release(q);
	return (ssize_t)n;
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_recv, shmkit_queue_recv, SHMKIT_0.2);
ssize_t shmkit__queue_recv(struct shmkit_queue *q, void *buf, size_t cap)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_queue_peek(q, &p, &n);
	return copy_out(q, err, p, n, buf, cap);
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_recv_wait, shmkit_queue_recv_wait, SHMKIT_0.2);
ssize_t shmkit__queue_recv_wait(struct shmkit_queue *q, void *buf, size_t cap,
				const struct timespec *deadline)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_queue_peek_wait(q, &p, &n, deadline);
	return copy_out(q, err, p, n, buf, cap);
}

int shmkit_queue_recv_many(struct shmkit_queue *q, void *buf, size_t stride, size_t *lens,
			   size_t n)
{
	if (!q || !buf || !lens || n == 0 || n > INT_MAX || stride < q->max_msg)
		return -EINVAL;
	if (q->observer)
		return -EPERM;
	if (q->peeked)
		return -EBUSY;
	uint64_t p;
	int err = claim_read(q, &p);
	if (err)
		return err;
	size_t k = 1;
	while (k < n && k < q->nslots && claim_read_at(q, p + k))
		k++;
	if (k > 1)
		advance(&q->ctl->dequeue_pos, p + 1, p + k);
	uint8_t *dst = buf;
	size_t got = 0;
	uint64_t bytes = 0;
	bool bad = false;
	for (size_t i = 0; i < k; i++) {
		uint32_t len;
		if (slot_len(q, p + i, &len) < 0) {
			bad = true; /* dropped */
			continue;
		}
		shmkit__copy(dst + got * stride, slot_at(q, p + i)->data, len);
		lens[got++] = len;
		bytes += len;
	}
	for (size_t i = 0; i < k; i++)
		free_slot(q, p + i);
	q->recvd += got;
	q->brecv += bytes;
	pub_stat(&q->mine->recv, q->recvd);
	pub_stat(&q->mine->bytes_recv, q->brecv);
	wake_producers(q, (int)k);
	if (got == 0 && bad)
		return -EBADMSG;
	return (int)got;
}

int shmkit_queue_recv_many_wait(struct shmkit_queue *q, void *buf, size_t stride, size_t *lens,
				size_t n, const struct timespec *deadline)
{
	uint64_t since = 0; /* q_wait(): when dead holders were last looked for */
	for (;;) {
		int r = shmkit_queue_recv_many(q, buf, stride, lens, n);
		if (r != -EAGAIN)
			return r;
		r = q_wait(q, true, deadline, &since);
		if (r)
			return r;
	}
}

/* --- lifetime and state ----------------------------------------------------------------------- */

int shmkit_queue_close(struct shmkit_queue *q)
{
	if (!q)
		return 0;
	if (q->loaned)
		shmkit_queue_cancel(q);
	if (q->peeked)
		shmkit_queue_release(q);
	if (!q->observer) {
		fold_member(q->ctl, q->mine);
		/* Release: the next holder of the entry sees our final counters (zeroed). */
		shmkit__role_release(&q->mine->owner, q->me);
	}
	shmkit_segment_close(q->seg);
	free(q);
	return 0;
}

int shmkit_queue_unlink(struct shmkit_queue *q)
{
	return shmkit__object_unlink(q ? q->seg : NULL);
}

struct shmkit_segment *shmkit_queue_segment(const struct shmkit_queue *q)
{
	return q ? q->seg : NULL;
}

size_t shmkit_queue_max_msg(const struct shmkit_queue *q)
{
	return q ? (size_t)q->max_msg : 0;
}

int shmkit_queue_stats(const struct shmkit_queue *q, struct shmkit_queue_stats *st)
{
	if (!q || !st)
		return -EINVAL;
	struct q_ctl *c = q->ctl;
	memset(st, 0, sizeof *st);
	/* Relaxed throughout: a statistics snapshot. */
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
	st->slots = q->nslots;
	st->slot_size = q->stride;
	st->max_msg = q->max_msg;
	st->max_members = q->max_members;
	uint64_t e = LD(c->enqueue_pos), d = LD(c->dequeue_pos);
	st->fill = e - d <= q->nslots ? e - d : 0;
	st->msgs_sent = LD(c->totals.sent);
	st->bytes_sent = LD(c->totals.bytes_sent);
	st->msgs_recv = LD(c->totals.recv);
	st->bytes_recv = LD(c->totals.bytes_recv);
	st->producer_sleeps = LD(c->totals.psleeps);
	st->consumer_sleeps = LD(c->totals.csleeps);
	st->redelivered = LD(c->totals.redelivered);
	st->skipped = LD(c->totals.skipped);
	st->recovered_members = LD(c->totals.recovered);
	for (uint32_t i = 0; i < q->max_members; i++) {
		struct q_member *m = &q->members[i];
		uint64_t w = LD(m->owner);
		if (w == 0)
			continue;
		if (shmkit__owner_state(w) > 0)
			st->members++;
		st->msgs_sent += LD(m->sent);
		st->bytes_sent += LD(m->bytes_sent);
		st->msgs_recv += LD(m->recv);
		st->bytes_recv += LD(m->bytes_recv);
		st->producer_sleeps += LD(m->psleeps);
		st->consumer_sleeps += LD(m->csleeps);
		st->wakes += LD(m->wakes);
	}
#undef LD
	return 0;
}

/* --- waitset hooks (src/wait.c) ------------------------------------------------------------ */

static unsigned watch_poll(const void *src, bool sc)
{
	/* Shared words only: dequeue_pos and the slot words from there. */
	return probe(src, true, sc) ? SHMKIT_WAIT_READABLE : 0;
}

static int watch_peer_dead(const void *src)
{
	(void)src;
	return 0; /* a queue has no single peer to report dead */
}

/* The waitset's liveness check, from any thread: a waitset member blocked behind a dead
 * holder's slot would otherwise wait for some other handle's blocked call to repair it.
 * Never our own claims (their state belongs to the handle's thread), and the wake is not
 * counted (the counters are the handle's too). */
static int watch_repair(const void *src)
{
	const struct shmkit_queue *q = src;
	int n = sweep_slots(q, SWEEP_OTHERS);
	if (n > 0)
		shmkit__waitq_wake(&q->ctl->data_q, n);
	return n;
}

int shmkit__queue_watch(const struct shmkit_queue *q, struct shmkit__watch *w)
{
	if (q->observer)
		return -EPERM;
	w->gen = &q->ctl->data_q.gen;
	w->sleepers = &q->ctl->data_q.sleepers;
	w->poll = watch_poll;
	w->peer_dead = watch_peer_dead;
	w->repair = watch_repair;
	w->src = q;
	w->wq = &q->wq;
	return 0;
}
