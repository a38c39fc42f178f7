/* shmkit — work queue: repair.
 * The layout, the slot state machine and the crash story are at the top of src/queue.c;
 * what the queue's files share is in src/queue_impl.h. */
#include "queue_impl.h"

/* --- repair --------------------------------------------------------------------------------- */

/* Lowers a shared position hint to `to` (a re-delivered slot behind it). Relaxed: a hint
 * (see the top of src/queue.c); bounded, a peer rewriting it non-stop only costs a re-try. */
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

/* Repairs what `which` says; returns how many slots, or -ENOMEM. */
int shmkit__queue_sweep_slots(const struct shmkit_queue *q, int which)
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

int shmkit__queue_sweep(struct shmkit_queue *q, bool own_only)
{
	int n = shmkit__queue_sweep_slots(q, own_only ? SWEEP_OWN : SWEEP_ALL);
	if (!own_only)
		shmkit__queue_lease_reap(q); /* a dead claimer no longer keeps the fast path off */
	if (n > 0)
		wake_consumers(q, n); /* after the seq_cst repairs: the handshake's store half */
	return n;
}

int shmkit_queue_recover(struct shmkit_queue *q)
{
	if (!q)
		return -EINVAL;
	return q->observer ? -EPERM : shmkit__queue_sweep(q, false);
}
