/* shmkit — publish/subscribe channel: the publisher.
 * The layout, the protocol and the crash story are at the top of src/pubsub.c; what the
 * pub/sub files share is in src/pubsub_impl.h. */
#include "pubsub_impl.h"

/* --- publisher ------------------------------------------------------------------------------ */

/* Somebody sleeps on the data queue. Out of line: the publish saves no registers for it. */
static SHMKIT__NOINLINE void wake_subscribers(struct shmkit_pubsub *ps)
{
	shmkit__waitq_wake_now(&ps->ctl->data_q, INT_MAX);
	ps->wakes++;
	atomic_store_explicit(&ps->ctl->wakes, ps->wakes, memory_order_relaxed); /* statistics */
}

/* Publishes the commits up to pos (below); inline in commit, the one hot caller. */
static SHMKIT__ALWAYS_INLINE void publish(struct shmkit_pubsub *ps)
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
	if (SHMKIT__UNLIKELY(shmkit__waitq_pending(&c->data_q)))
		wake_subscribers(ps);
}

void shmkit__pubsub_publish(struct shmkit_pubsub *ps)
{
	publish(ps);
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
		/* PS-A2: pairs with PS-R2 in shmkit__pubsub_sub_publish() and PS-R4 in free_slot():
		 * what the subscriber read below its position is done before we overwrite it. Also
		 * the re-check of the sleep/wake handshake (after WQ-B1) when we are about to
		 * sleep. */
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

/* Whether the cached minimum says everything below L is free (block mode). */
static inline bool space_cached(const struct shmkit_pubsub *ps, uint64_t L)
{
	return ps->min_valid && (ps->min_slot < 0 || pos_ge(ps->min_cache, L));
}

/* Whether everything below L is free of live subscribers (block mode). */
static bool space_ok(struct shmkit_pubsub *ps, uint64_t L)
{
	if (space_cached(ps, L))
		return true;
	rescan(ps, false);
	return ps->min_slot < 0 || pos_ge(ps->min_cache, L);
}

/* The reclaim memo, for a commit whose records [pos, loan_at) (a PAD, if any) and
 * [loan_at, end) reach the next chunk start: for every chunk that starts in (pos, end], the
 * first record boundary at or after its start is loan_at or end. Out of line: once per
 * cap/PS_CHUNKS bytes. At most PS_CHUNKS + 1 chunk starts lie in one commit (a record and
 * its PAD take less than a lap). */
static SHMKIT__NOINLINE void note_bounds(struct shmkit_pubsub *ps, uint64_t end)
{
	uint64_t cs = ps->chunk_next;
	for (unsigned n = 0; pos_ge(end, cs) && n <= PS_CHUNKS; n++, cs += ps->cap / PS_CHUNKS)
		ps->bnd[(cs >> ps->csh) % PS_CHUNKS] = pos_ge(ps->loan_at, cs) ? ps->loan_at : end;
	ps->chunk_next = cs;
}

/* Moves `oldest` to a record boundary at or above L, never past the published tail. It
 * takes the memo's boundary for the first chunk that starts after L — so this runs once
 * per chunk, cap/PS_CHUNKS bytes — and walks the record headers only where the memo does
 * not know (a publisher that took over, a chunk of an earlier lap). Out of line: the
 * loan's fast path stays small. */
static SHMKIT__NOINLINE void advance_oldest(struct shmkit_pubsub *ps, uint64_t L)
{
	struct ps_ctl *c = ps->ctl;
	if (!pos_ge(ps->pub, L))
		/* MORE commits would be overwritten unpublished: publish first */
		shmkit__pubsub_publish(ps);
	uint64_t limit = ps->pub, cur = ps->oldest;
	uint64_t k = (L >> ps->csh) + 1, target = k << ps->csh, memo = ps->bnd[k % PS_CHUNKS];
	bool bad = false;
	/* The memo is ours, but an entry may be of an earlier lap (then below target: records
	 * are shorter than a lap) or never written (1: odd, never a boundary). */
	if (!(memo & 15) && pos_ge(memo, target) && memo - target < ps->cap && pos_ge(limit, memo))
		cur = memo;
	/* Else walk from `oldest`: at most cap/REC_HDR records lie between cur and limit. */
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
		/* The join handshake's load (top of src/pubsub.c): WQ-F2 in fenced mode, else
		 * ordered by the joiner's WQ-B1. Relaxed: only compared with our cache. */
		shmkit__wq_waker_barrier(&c->data_q.fenced);
		if (atomic_load_explicit(&c->members_gen, memory_order_relaxed) != ps->gen_cache)
			ps->min_valid = false; /* somebody joined: rescan before overwriting */
	}
}

/* Makes room for a loan that overwrites the bytes below L (block: -EAGAIN while a
 * subscriber still needs them). */
static int make_room(struct shmkit_pubsub *ps, uint64_t L)
{
	if (!pos_ge(ps->oldest, L))
		advance_oldest(ps, L);
	if (ps->policy == SHMKIT_PUBSUB_BLOCK && !space_ok(ps, L)) {
		/* a full ring must not hide unpublished MORE commits */
		shmkit__pubsub_publish(ps);
		/* Hysteresis for the wait: resume only once the slowest subscriber freed a
		 * chunk (cap/16) beyond what this loan needs, so that a publisher faster
		 * than its subscribers rescans the N slots once per chunk, not once per
		 * message. Never beyond the tail: subscribers cannot pass it. */
		uint64_t want = L + ps->cap / PS_CHUNKS;
		ps->want_L = pos_ge(ps->pub, want) ? want : ps->pub;
		return -EAGAIN;
	}
	return 0;
}

/* The padding a record of `need` bytes needs at our position: the rest of the ring when it
 * would not fit before the end. */
static inline uint64_t loan_pad(const struct shmkit_pubsub *ps, uint64_t need)
{
	uint64_t off = ps->pos & ps->mask;
	return off + need > ps->cap ? ps->cap - off : 0;
}

static inline int loan_at(struct shmkit_pubsub *ps, size_t len, uint64_t pad, void **buf)
{
	/* The padding header, if any, is written by commit (after the record's: PS-R0). */
	uint64_t at = ps->pos + pad;
	ps->loan_at = at;
	ps->loan_len = len;
	*buf = ps->ring + (at & ps->mask) + REC_HDR;
	return 0;
}

/* The loan that must make room first (once per chunk, or a full ring). Out of line: the
 * fast path below then saves no registers for the call. */
static SHMKIT__NOINLINE int loan_slow(struct shmkit_pubsub *ps, size_t len, void **buf)
{
	uint64_t need = rec_need(len), pad = loan_pad(ps, need);
	int err = make_room(ps, ps->pos + pad + need + REC_HDR - ps->cap);
	return err ? err : loan_at(ps, len, pad, buf);
}

int shmkit_pubsub_loan(struct shmkit_pubsub *ps, size_t len, void **buf)
{
	if (!ps || !buf)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_PUBLISHER)
		return -EPERM;
	if (len > ps->max_msg)
		return -EMSGSIZE;
	uint64_t need = rec_need(len), pad = loan_pad(ps, need);
	/* The record, its padding, and the next header slot, which commit zeroes (PS-Z). */
	uint64_t end = ps->pos + pad + need + REC_HDR;
	if (end > ps->cap) {
		uint64_t L = end - ps->cap;
		/* Inline, the two cached tests that pass for all but one loan per chunk. */
		if (!pos_ge(ps->oldest, L) ||
		    (ps->policy == SHMKIT_PUBSUB_BLOCK && !space_cached(ps, L)))
			return loan_slow(ps, len, buf);
	}
	return loan_at(ps, len, pad, buf);
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
	 * written for this lap, never stale bytes that look like one (top of src/pubsub.c). The
	 * loan reserved the slot. Relaxed: ordered by the release store below. */
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
	if (SHMKIT__UNLIKELY(pos_ge(end, ps->chunk_next)))
		note_bounds(ps, end);
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
