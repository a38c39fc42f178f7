/* shmkit — work queue: slot claims, waiting, producing and consuming.
 * The layout, the slot state machine and the crash story are at the top of src/queue.c;
 * what the queue's files share is in src/queue_impl.h. */
#include "queue_impl.h"

/* initial-exec: a plain %fs-relative access, not a __tls_get_addr() call per message
 * from the shared library (16 bytes of the static TLS reserve when dlopen()ed). */
__attribute__((tls_model("initial-exec"))) _Thread_local struct shmkit__q_thread
	shmkit__q_thread;

SHMKIT__NOINLINE void shmkit__queue_wake(struct shmkit_queue *q, struct shmkit__waitq *wq,
					 int n)
{
	shmkit__waitq_wake_now(wq, n);
	q->wakes++;
	pub_stat(&q->mine->wakes, q->wakes);
}

/* --- claiming ------------------------------------------------------------------------------- */

/* Takes a slot word from `seen` to `to`. The sole claimer of its kind (`fast`, the lease:
 * lease_enter()) stores it plainly — nobody else writes a word in that state (a repair
 * writes only words of dead holders); relaxed, since the caller's load of `seen` acquired.
 * Otherwise a CAS, acquire: as QUEUE-A1 / QUEUE-A2, for the value it replaces. */
static inline bool take_word(_Atomic uint64_t *word, uint64_t seen, uint64_t to, bool fast)
{
	if (fast) {
		atomic_store_explicit(word, to, memory_order_relaxed);
		return true;
	}
	return atomic_compare_exchange_strong_explicit(word, &seen, to, memory_order_acquire,
						       memory_order_relaxed);
}

/* Claims `pos` only if its word is `from` at that position, for state `to` (the batch
 * extensions). The fast path must look first (a CAS looks by itself); acquire: as
 * QUEUE-A1 / QUEUE-A2. */
static bool claim_at(struct shmkit_queue *q, uint64_t pos, uint32_t from, uint32_t to,
		     bool fast)
{
	_Atomic uint64_t *word = &slot_at(q, pos)->word;
	uint64_t w = qw(pos, 0, from);
	if (fast && atomic_load_explicit(word, memory_order_acquire) != w)
		return false;
	return take_word(word, w, qw(pos, q->idx, to), fast);
}

/* Claims one slot for writing: 0 and *posp, -EAGAIN (full, or endless contention).
 * Starts at the shared hint and probes forward privately past slots other producers
 * claimed at this lap, so that losing a race costs a read, not a locked operation on the
 * hint's hot line; the winner moves the hint (advance_own). Inline in each caller: a call
 * and its register saves fewer per message. */
static SHMKIT__ALWAYS_INLINE int claim_write(struct shmkit_queue *q, uint64_t *posp, bool fast)
{
	struct q_ctl *c = q->ctl;
	/* Relaxed: a hint (see the top of src/queue.c). */
	uint64_t p = atomic_load_explicit(&c->enqueue_pos, memory_order_relaxed);
	for (int tries = 0; tries < Q_TRIES; tries++) {
		struct q_slot *s = slot_at(q, p);
		/* QUEUE-A1: pairs with QUEUE-R2 in free_slot(): the last consumer's reads are
		 * done. */
		uint64_t w = atomic_load_explicit(&s->word, memory_order_acquire);
		int64_t d = qw_diff(w, p);
		if (d == 0 && QW_STATE(w) == S_EMPTY) {
			if (take_word(&s->word, w, qw(p, q->idx, S_WRITING), fast)) {
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

/* Publishes a written slot (QUEUE-R1); also the store of the sleep/wake handshake with sleeping
 * consumers (src/waitq_internal.h: release suffices). */
static void commit_slot(struct shmkit_queue *q, uint64_t pos, uint32_t len)
{
	struct q_slot *s = slot_at(q, pos);
	/* Relaxed: ordered before the word store below (release). */
	atomic_store_explicit(&s->len, len, memory_order_relaxed);
	/* QUEUE-R1: publishes the payload and len; pairs with QUEUE-A2 in claim_read(). */
	atomic_store_explicit(&s->word, qw(pos, 0, S_FULL), memory_order_release);
	shmkit__q_thread.produced++;
}

/* Claims one slot for reading: 0 and *posp, -EAGAIN (empty), skipping SKIP slots. Probes
 * forward privately past slots other consumers took, as claim_write() does. Inline, as
 * claim_write(). */
static SHMKIT__ALWAYS_INLINE int claim_read(struct shmkit_queue *q, uint64_t *posp, bool fast)
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
			/* A message that continues on the slot's second line: that line is
			 * asked for now, before the claim. The claim's CAS is a locked
			 * instruction, and no later load starts before it completes (it needs
			 * the first line exclusive, a round trip to the producer's core), so a
			 * payload read after it would be one more transfer in series: 64 B round
			 * trip 811-821 ns without, 681 ns with (the 2-vCPU EPYC VM; 48 B, one
			 * line, 661-672 ns). The length is only a hint here, read again after
			 * the claim (slot_len()). */
			if (q->stride > 64 &&
			    atomic_load_explicit(&s->len, memory_order_relaxed) > 64 - Q_SLOT_HDR)
				__builtin_prefetch((const uint8_t *)s + 64);
			if (take_word(&s->word, w, qw(p, q->idx, S_READING), fast)) {
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

/* Frees a slot for the next lap (QUEUE-R2); also the store of the handshake with sleeping
 * producers (release suffices, src/waitq_internal.h). */
static void free_slot(struct shmkit_queue *q, uint64_t pos)
{
	/* QUEUE-R2: the reads of the payload are done; pairs with QUEUE-A1 in claim_write(). */
	atomic_store_explicit(&slot_at(q, pos)->word, qw(pos + q->nslots, 0, S_EMPTY),
			      memory_order_release);
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
bool shmkit__queue_probe(const struct shmkit_queue *q, bool data, bool sc)
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
	return shmkit__queue_probe(x->q, x->data, x->sc);
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
		if (shmkit__queue_sweep(q, false) > 0)
			return 0; /* a dead holder's slot repaired: claim again */
	}
	if (data)
		q->waited = true; /* the claim after this wait is a CAS (struct shmkit_queue) */
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
		if (shmkit__queue_sweep(q, false) > 0)
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
	int err = lease_ready(q, 0);
	if (err)
		return err;
	uint64_t p;
	bool fast = lease_enter(q, 0);
	err = claim_write(q, &p, fast);
	lease_exit(q, fast, !err);
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
	int err = lease_ready(q, 0);
	if (err)
		return err;
	uint64_t p;
	bool fast = lease_enter(q, 0);
	err = claim_write(q, &p, fast);
	size_t k = 1;
	while (!err && k < n && k < q->nslots && claim_at(q, p + k, S_EMPTY, S_WRITING, fast))
		k++;
	lease_exit(q, fast, err ? 0 : k);
	if (err)
		return err;
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
		int err = lease_ready(q, 1);
		if (err)
			return err;
		uint64_t p;
		bool fast = lease_enter(q, 1);
		err = claim_read(q, &p, fast);
		lease_exit(q, fast, !err);
		if (err)
			return err;
		q_claimed(q);
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
	int err = lease_ready(q, 1);
	if (err)
		return err;
	uint64_t p;
	bool fast = lease_enter(q, 1);
	err = claim_read(q, &p, fast);
	size_t k = 1;
	while (!err && k < n && k < q->nslots && claim_at(q, p + k, S_FULL, S_READING, fast))
		k++;
	lease_exit(q, fast, err ? 0 : k);
	if (err)
		return err;
	q_claimed(q);
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
