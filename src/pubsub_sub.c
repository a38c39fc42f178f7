/* shmkit — publish/subscribe channel: a subscriber.
 * The layout, the protocol and the crash story are at the top of src/pubsub.c; what the
 * pub/sub files share is in src/pubsub_impl.h. */
#include "pubsub_impl.h"

/* --- subscriber ------------------------------------------------------------------------------ */

/* Hands the position back (below); inline in release, the one hot caller. */
static SHMKIT__ALWAYS_INLINE void sub_publish(struct shmkit_pubsub *ps)
{
	struct ps_slot *s = ps->my;
	ps->held = false;
	if (ps->pos == ps->spub)
		return;
	/* Relaxed: statistics (lag, counters), single writer. */
	atomic_store_explicit(&s->seq, ps->expect, memory_order_relaxed);
	atomic_store_explicit(&s->msgs, ps->rmsgs, memory_order_relaxed);
	atomic_store_explicit(&s->bytes, ps->rbytes, memory_order_relaxed);
	ps->spub = ps->pos;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE) {
		/* Relaxed: the overwrite publisher never reads it; statistics only. */
		atomic_store_explicit(&s->pos, ps->pos, memory_order_relaxed);
		return;
	}
	/* PS-R2: hands the bytes below pos back to the publisher; pairs with PS-A2 in rescan().
	 * Also the store of the sleep/wake handshake with a sleeping publisher. */
	atomic_store_explicit(&s->pos, ps->pos, memory_order_release);
	if (SHMKIT__UNLIKELY(shmkit__waitq_pending(&ps->ctl->space_q)))
		shmkit__waitq_wake_now(&ps->ctl->space_q, 1);
}

void shmkit__pubsub_sub_publish(struct shmkit_pubsub *ps)
{
	sub_publish(ps);
}

static void note_lost(struct shmkit_pubsub *ps, uint64_t n)
{
	ps->lost += n;
	atomic_store_explicit(&ps->my->lost, ps->lost, memory_order_relaxed); /* statistics */
}

/* Overwrite mode: whether the record that starts at `at` may have been overwritten.
 * PS-A3: the acquire fence orders every load of the record before the load of `oldest`;
 * pairs with the release fence PS-R3 in advance_oldest(): if any of our loads saw a byte of
 * an overwrite, we see the `oldest` stored before it. */
bool shmkit__pubsub_overwritten(struct shmkit_pubsub *ps, uint64_t at)
{
	shmkit__fence_acquire();
	/* Relaxed: ordered by the fence above. */
	uint64_t o = atomic_load_explicit(&ps->ctl->oldest, memory_order_relaxed);
	return !pos_ge(at, o);
}

/* Re-reads the tail. It never moves back from the last one seen, and the subscriber may be
 * ahead of it after in-band takes (up to a ring: see inband_ok()); in block mode it is at
 * most a ring ahead of our position. */
static int refresh_tail(struct shmkit_pubsub *ps)
{
	/* PS-A1: pairs with PS-R1 in shmkit__pubsub_publish(): the records below tail are
	 * visible. */
	uint64_t t = atomic_load_explicit(&ps->ctl->tail, memory_order_acquire);
	if ((t & 15) || !pos_ge(t, ps->other))
		return -EBADMSG;
	if (ps->policy == SHMKIT_PUBSUB_BLOCK && pos_ge(t, ps->pos) && t - ps->pos > ps->cap)
		return -EBADMSG;
	ps->other = t;
	return 0;
}

/* Whether the last tail seen covers a record at our position. */
static inline bool covered(const struct shmkit_pubsub *ps)
{
	return (int64_t)(ps->other - ps->pos) > 0;
}

/* Whether the header at our position may be read in band (the caller knows it is not
 * covered): at most a ring ahead of the last tail seen — an honest publisher is never more
 * than one record (and its PAD) ahead of its tail, and a hostile ring of records that chain
 * in band runs out after one lap. */
static inline bool inband_ok(const struct shmkit_pubsub *ps)
{
	return ps->pos - ps->other <= ps->cap;
}

static SHMKIT__ALWAYS_INLINE int peek_once(struct shmkit_pubsub *ps, const void **buf,
					   size_t *len)
{
	bool ow = ps->policy == SHMKIT_PUBSUB_OVERWRITE;
	for (int i = 0; i < PS_TRIES; i++) {
		uint64_t off = ps->pos & ps->mask, w0 = 0;
		bool ib = false;
		if (!covered(ps)) {
			/* Beyond the tail we know: a record published in band first — reading
			 * the tail now would wait for the line the publisher writes after it.
			 * PS-A0: pairs with PS-R0 in commit: the payload and seq word are there. */
			if (inband_ok(ps)) {
				w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_acquire);
				ib = (w0 >> 32) & REC_NOW;
			}
			if (!ib) {
				int err = refresh_tail(ps);
				if (err)
					return err;
				if (!covered(ps))
					return -EAGAIN;
			}
		}
		if (ow) {
			/* Acquire: a jump below lands on records published before this value. */
			uint64_t o = atomic_load_explicit(&ps->ctl->oldest, memory_order_acquire);
			if (o & 15)
				return -EBADMSG;
			if (!pos_ge(ps->pos, o)) {
				if (!pos_ge(ps->other, o)) {
					int err = refresh_tail(ps);
					if (err)
						return err;
					if (!pos_ge(ps->other, o))
						return -EBADMSG; /* oldest beyond tail */
				}
				ps->pos = o; /* lapped: the seq gap below counts the loss */
				continue;
			}
		}
		/* One read of each header word; everything below uses the copies. In band, the
		 * record's bounds come from its own header, checked against the geometry. */
		uint64_t avail = ps->cap - off;
		if (!ib) {
			avail = ps->other - ps->pos;
			if (avail > ps->cap)
				return -EBADMSG; /* lapped, yet `oldest` says not: corrupt */
			/* Relaxed: ordered by PS-A1. */
			w0 = atomic_load_explicit(rec_word(ps, off, 0), memory_order_relaxed);
		}
		/* Relaxed: ordered by PS-A1 or PS-A0. */
		uint64_t w1 = atomic_load_explicit(rec_word(ps, off, 1), memory_order_relaxed);
		if (ow && shmkit__pubsub_overwritten(ps, ps->pos))
			continue; /* lapped while reading the header: jump */
		bool pad;
		uint64_t need = rec_check(ps, off, w0, avail, &pad);
		if (need == 0)
			return -EBADMSG;
		if (pad) {
			ps->pos += need;
			continue;
		}
		uint32_t rlen = (uint32_t)w0;
		if (!ps->have_expect) {
			ps->expect = w1;
			ps->have_expect = true;
		}
		if (w1 != ps->expect) {
			uint64_t gap = w1 - ps->expect;
			if (gap > ((uint64_t)1 << 62))
				return -EBADMSG; /* numbers went backwards */
			note_lost(ps, gap);
			ps->expect = w1;
			return -ESTALE; /* the record stays: the next peek returns it */
		}
		ps->peek_ptr = ps->ring + off + REC_HDR;
		ps->peek_len = rlen;
		ps->peek_need = need;
		ps->have_last = true;
		ps->last_seq = w1;
		*buf = ps->peek_ptr;
		*len = rlen;
		return 0;
	}
	return -EAGAIN; /* lapped over and over (or a peer playing games): try again later */
}

/* The peek that found nothing: at the end of the stream, or simply nothing yet. Out of
 * line, like every path that is about to wait anyway. */
static SHMKIT__NOINLINE int peek_empty(struct shmkit_pubsub *ps, const void **buf, size_t *len)
{
	/* Held (MORE) releases stay held: only the subscriber knows whether it has handed
	 * those messages on yet (see shmkit_pubsub_release()). PS-A4: pairs with PS-R4' in
	 * shmkit_pubsub_close(): everything published before the close is visible, so one
	 * more peek decides between data and end of stream. */
	if (!atomic_load_explicit(&ps->ctl->closed, memory_order_seq_cst))
		return -EAGAIN;
	int err = peek_once(ps, buf, len);
	return err == -EAGAIN ? -EPIPE : err;
}

int shmkit_pubsub_peek(struct shmkit_pubsub *ps, const void **buf, size_t *len)
{
	if (!ps || !buf || !len)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (ps->peek_need) {
		*buf = ps->peek_ptr;
		*len = (size_t)ps->peek_len;
		return 0;
	}
	int err = peek_once(ps, buf, len);
	return err == -EAGAIN ? peek_empty(ps, buf, len) : err;
}

/* Drops a peeked message that was overwritten while it was read. */
static int drop_stale(struct shmkit_pubsub *ps)
{
	ps->pos += ps->peek_need;
	ps->expect++;
	ps->peek_need = 0;
	note_lost(ps, 1);
	return -ESTALE;
}

int shmkit_pubsub_validate(struct shmkit_pubsub *ps)
{
	if (!ps)
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (!ps->peek_need)
		return -EINVAL;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE && shmkit__pubsub_overwritten(ps, ps->pos))
		return drop_stale(ps);
	return 0;
}

int shmkit_pubsub_release(struct shmkit_pubsub *ps, unsigned flags)
{
	if (!ps || (flags & ~SHMKIT_PUBSUB_MORE))
		return -EINVAL;
	if (ps->role != SHMKIT_PUBSUB_SUBSCRIBER)
		return -EPERM;
	if (!ps->peek_need)
		return -EINVAL;
	int err = 0;
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE && shmkit__pubsub_overwritten(ps, ps->pos)) {
		err = drop_stale(ps);
	} else {
		ps->pos += ps->peek_need;
		ps->expect++;
		ps->peek_need = 0;
		ps->rmsgs++;
		ps->rbytes += ps->peek_len;
	}
	if (flags & SHMKIT_PUBSUB_MORE)
		ps->held = true;
	else
		sub_publish(ps);
	return err;
}

struct data_ctx {
	struct shmkit_pubsub *ps;
	bool sc;
};

/* Called after a peek found nothing. The in-band header first (the line that brings the
 * news first), then the tail; no validation: peek does it. While the slot is still empty,
 * the line after it is prefetched: a 64-byte message continues there (as in src/ring.h). */
static bool data_ready(void *arg)
{
	struct data_ctx *x = arg;
	struct shmkit_pubsub *ps = x->ps;
	struct ps_ctl *c = ps->ctl;
	memory_order mo = x->sc ? memory_order_seq_cst : memory_order_acquire;
	if (!covered(ps) && inband_ok(ps)) {
		/* PS-A0 (as in peek_once). */
		uint64_t w0 = atomic_load_explicit(rec_word(ps, ps->pos & ps->mask, 0), mo);
		if ((w0 >> 32) & REC_NOW)
			return true;
		if (!w0)
			__builtin_prefetch(ps->ring + ((ps->pos + 64) & ps->mask & ~(uint64_t)63));
	}
	/* PS-A1 (as in refresh_tail), also the sleep protocol's re-check after WQ-B1: the
	 * publisher stores the tail after every in-band commit. Ahead of our position only:
	 * we may be ahead of it after in-band takes. */
	return (int64_t)(atomic_load_explicit(&c->tail, mo) - ps->pos) > 0 ||
	       atomic_load_explicit(&c->closed, mo) != 0;
}

static int wait_data(struct shmkit_pubsub *ps, const struct timespec *deadline)
{
	/* The peek just found nothing: never try again past the deadline (a peer rewriting
	 * the tail could keep data_ready() saying yes while peek says no). */
	if (shmkit__deadline_passed(deadline, shmkit_now_ns())) {
		/* Is the publisher still there? As below. */
		uint64_t w = atomic_load_explicit(&ps->ctl->pub_owner, memory_order_acquire);
		return shmkit__owner_state(w) < 0 ? -EOWNERDEAD : -ETIMEDOUT;
	}
	struct data_ctx x = {ps, false};
	if (shmkit__spin_wait(&ps->spin, data_ready, &x))
		return 0;
	x.sc = true;
	bool slept;
	int r = shmkit__waitq_sleep(&ps->ctl->data_q, &ps->wq, data_ready, &x, deadline,
				    SHMKIT__SLICE_NS, &slept);
	if (r == 0)
		shmkit__spin_learn(&ps->spin); /* woken soon: spin that long next time */
	if (slept) {
		ps->rsleeps++;
		atomic_store_explicit(&ps->my->sleeps, ps->rsleeps, memory_order_relaxed); /* stats */
	}
	if (r == 1 || r == -ETIMEDOUT) {
		/* Is the publisher still there? Acquire: its last publish is visible. */
		uint64_t w = atomic_load_explicit(&ps->ctl->pub_owner, memory_order_acquire);
		if (shmkit__owner_state(w) < 0 && !data_ready(&x))
			return -EOWNERDEAD;
	}
	return r == 1 ? 0 : r;
}

int shmkit_pubsub_peek_wait(struct shmkit_pubsub *ps, const void **buf, size_t *len,
			    const struct timespec *deadline)
{
	for (;;) {
		int err = shmkit_pubsub_peek(ps, buf, len);
		if (err != -EAGAIN)
			return err;
		/* Waiting while holding releases could wait forever (block policy: the
		 * publisher may be waiting for that space); publishing them would hand back
		 * what the caller may not have passed on yet. Refuse (shmkit_pubsub(3)). */
		if (ps->held)
			return -EDEADLK;
		/* The position can also have moved with nothing released: a skipped PAD, a
		 * jump to `oldest` after being lapped (overwrite). That is no message of the
		 * caller's: hand it back before sleeping (once, it was refused as a deadlock:
		 * a subscriber lapped to the tail got -EDEADLK). */
		shmkit__pubsub_sub_publish(ps);
		err = wait_data(ps, deadline);
		if (err)
			return err;
	}
}

static ssize_t copy_out(struct shmkit_pubsub *ps, int err, const void *p, size_t n, void *buf,
			size_t cap)
{
	if (err)
		return err;
	if (n > cap)
		return -ENOBUFS; /* the caller's buffer is too small (shmkit_errors(7)) */
	if (ps->policy == SHMKIT_PUBSUB_OVERWRITE)
		shmkit_seqlock_load(buf, p, n); /* relaxed atomics: the publisher may be writing */
	else
		shmkit__copy(buf, p, n);
	err = shmkit_pubsub_release(ps, 0);
	return err ? err : (ssize_t)n;
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_recv, shmkit_pubsub_recv, SHMKIT_0.2);
ssize_t shmkit__pubsub_recv(struct shmkit_pubsub *ps, void *buf, size_t cap)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_pubsub_peek(ps, &p, &n);
	return copy_out(ps, err, p, n, buf, cap);
}

SHMKIT__SYMVER_DEFAULT(shmkit__pubsub_recv_wait, shmkit_pubsub_recv_wait, SHMKIT_0.2);
ssize_t shmkit__pubsub_recv_wait(struct shmkit_pubsub *ps, void *buf, size_t cap,
				 const struct timespec *deadline)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_pubsub_peek_wait(ps, &p, &n, deadline);
	return copy_out(ps, err, p, n, buf, cap);
}

uint64_t shmkit_pubsub_lost(struct shmkit_pubsub *ps, uint64_t *since)
{
	if (!ps)
		return 0;
	if (since) {
		*since = ps->lost - ps->lost_seen;
		ps->lost_seen = ps->lost;
	}
	return ps->lost;
}

int shmkit_pubsub_seq(const struct shmkit_pubsub *ps, uint64_t *seq)
{
	if (!ps || !seq || !ps->have_last)
		return -EINVAL;
	*seq = ps->last_seq;
	return 0;
}
