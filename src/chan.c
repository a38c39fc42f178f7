/* shmkit — stream channels: segment + SPSC ring + blocking, peer liveness and statistics.
 *
 * Layout of the segment's data area (offsets from shmkit_segment_data()):
 *
 *   offset size  field                         written by
 *        0    8  magic "shmkchn1"              creator, before the segment is published
 *        8    4  version                       creator
 *       12    4  flags                         creator (reserved, 0)
 *       16    8  capacity (ring bytes)         creator
 *       24    8  max_msg                       creator
 *       32    8  ring_offset (1024)            creator
 *      128    8  tail                          producer — ring position (src/ring.c); low
 *                                                bit: SHMKIT__TAIL_CLEAN
 *      136    8  producer owner                producer — pid << 32 | start time (low 32 bits)
 *      144    4  closed                        producer — 1 after close (end of stream),
 *                                                2 after abort (stream cut short)
 *      152   32  msgs_sent, bytes_sent, producer_sleeps, producer_wakes     producer
 *      256    8  head                          consumer — ring position
 *      264    8  consumer owner                consumer
 *      272   32  msgs_recv, bytes_recv, consumer_sleeps, consumer_wakes     consumer
 *      304    4  reader_closed                 consumer — 1 after close: the reader is gone
 *      384   16  data queue: gen, sleepers,    consumer sleeps here, producer wakes it
 *                fenced (src/waitq_internal.h)
 *      512   16  space queue (same fields)     producer sleeps here, consumer wakes it
 *      960   64  notes[8]                      producer — the application's own words
 *                                                (shmkit_chan_note_store); the library
 *                                                never reads them
 *     1024  cap  the ring
 *
 * The producer's and the consumer's lines are 128 bytes apart (adjacent-line prefetch).
 * A spinning consumer polls the next record's header (in band, src/ring.c) and the
 * producer's line (tail and `closed`), so a busy stream moves only the two position lines
 * and the ring itself between the CPUs. Each side stores its counters
 * before its position: stored after it, they would take the line away from the peer right
 * after it fetched the new position, costing it one more transfer.
 *
 * Roles: a side claims its role by a compare-and-swap of its owner word from 0 (or from
 * the word of a process that is dead: takeover) to its own identity, so two live producers
 * can never both hold the role. The identity includes the start time so a recycled pid does
 * not pass for the dead owner.
 *
 * Waiting: a side that must wait spins for a bounded, adaptive time, then sleeps on its
 * queue's futex word `gen` with the sleep/wake handshake of src/waitq_internal.h (shared by
 * every kind): it counts itself in `sleepers`, executes the handshake's barrier (WQ-B1:
 * membarrier, or a fence in fenced mode), re-checks the peer's position, and sleeps. The
 * peer, after storing its position (release, RING-R1/RING-R2 in src/ring.c), loads `sleepers` and
 * only when it is non-zero bumps gen (WQ-R1) and calls FUTEX_WAKE. Either the re-check
 * sees the new position or the waker sees the sleeper — by construction, not by timing —
 * with no system call and no fence per message while nobody sleeps.
 *
 * Sleeps last at most 100 ms; after each, the sleeper checks that its peer is alive, so a
 * peer killed with SIGKILL is reported (-EOWNERDEAD) within 100 ms, after everything it
 * published was delivered. A sleeper killed while counted leaves `sleepers` too high, which
 * only costs the peer a spurious FUTEX_WAKE per message until the next sleeper leaves.
 *
 * Batching (SHMKIT_CHAN_MORE): the producer's held commits may be published early (half a
 * ring, a full ring): a committed message is whole. The consumer's held releases never
 * are: the consumer publishes them (flush, plain release, close, detach) once it has handed
 * the messages on, so a consumer that dies holding them has them delivered again to the
 * next one. A consumer may hold the whole ring; it must publish before it waits, which
 * the _wait calls enforce (-EDEADLK), so the producer never waits on space that a
 * waiting consumer holds. Closing, each end stores its mark and then loads the other's
 * (both seq_cst, CHAN-L1/CHAN-L2), so of two ends leaving at once at least one learns it was
 * last (shmkit_chan_close() returns 1) and can remove the channel.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan_internal.h"
#include "compat.h"
#include "object.h"
#include "ring.h"
#include "shmkit/chan.h"
#include "waitq_internal.h"

#define CHAN_MAGIC 0x316e68636b6d6873ull /* "shmkchn1" */
#define CHAN_VERSION 3u /* 2: in-band publication; 3: membarrier handshake (16-byte queues) */
#define CHAN_RING_OFFSET 1024u

/* Values of the `closed` word. */
enum { CLOSED_OPEN = 0, CLOSED_EOF = 1, CLOSED_ABORTED = 2 };


struct chan_ctl {
	/* immutable after creation */
	uint64_t magic;
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint64_t max_msg;
	uint64_t ring_offset;
	uint8_t pad0[88];
	/* producer line */
	_Atomic uint64_t tail;
	_Atomic uint64_t prod_owner;
	_Atomic uint32_t closed;
	uint32_t pad1;
	_Atomic uint64_t msgs_sent, bytes_sent, prod_sleeps, prod_wakes;
	uint8_t pad2[72];
	/* consumer line */
	_Atomic uint64_t head;
	_Atomic uint64_t cons_owner;
	_Atomic uint64_t msgs_recv, bytes_recv, cons_sleeps, cons_wakes;
	_Atomic uint32_t reader_closed;
	uint8_t pad3[76];
	struct shmkit__waitq data_q;
	uint8_t pad4[112];
	struct shmkit__waitq space_q;
	uint8_t pad5[112];
	uint8_t reserved[320];
	/* The producer's notes, at the end of the reserved area: zero in a new channel (the
	 * reserved bytes were), so they need no layout version of their own. */
	_Atomic uint64_t notes[SHMKIT_CHAN_NOTES];
};

static_assert(offsetof(struct chan_ctl, tail) == 128, "producer line");
static_assert(offsetof(struct chan_ctl, closed) == 144, "layout");
static_assert(offsetof(struct chan_ctl, msgs_sent) == 152, "layout");
static_assert(offsetof(struct chan_ctl, head) == 256, "consumer line");
static_assert(offsetof(struct chan_ctl, msgs_recv) == 272, "layout");
static_assert(offsetof(struct chan_ctl, reader_closed) == 304, "layout");
static_assert(offsetof(struct chan_ctl, data_q) == 384, "data queue");
static_assert(offsetof(struct chan_ctl, space_q) == 512, "space queue");
static_assert(offsetof(struct chan_ctl, notes) == 960, "notes");
static_assert(sizeof(struct chan_ctl) == CHAN_RING_OFFSET, "ring offset");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "notes and positions are lock-free");

struct shmkit_chan {
	struct shmkit_segment *seg;
	struct chan_ctl *ctl;
	struct shmkit__ring ring;
	int role;
	uint64_t me;         /* our owner word */
	struct shmkit__spin spin;
	struct shmkit__wq wq;   /* the handshake's mode and the segment's missed counter */
	uint64_t sleeps, wakes; /* private counters, published with the position */
};

/* --- identity and liveness ------------------------------------------------------------ */

static _Atomic uint64_t *my_owner(struct shmkit_chan *ch)
{
	return ch->role == SHMKIT_CHAN_PRODUCER ? &ch->ctl->prod_owner : &ch->ctl->cons_owner;
}

static _Atomic uint64_t *peer_owner(const struct shmkit_chan *ch)
{
	return ch->role == SHMKIT_CHAN_PRODUCER ? &ch->ctl->cons_owner : &ch->ctl->prod_owner;
}

/* The role word (src/object.h): acquire on success, so our attach reads come after the
 * previous owner's last publish; the release on leaving lets the next one see ours. */
static int claim_role(struct shmkit_chan *ch)
{
	return shmkit__role_claim(my_owner(ch), ch->me);
}

static void drop_role(struct shmkit_chan *ch)
{
	shmkit__role_release(my_owner(ch), ch->me);
}

int shmkit_chan_peer_alive(const struct shmkit_chan *ch)
{
	return ch ? shmkit__role_state(peer_owner(ch)) > 0 : 0;
}

/* --- creation and attachment ---------------------------------------------------------- */

#define CHAN_OPT_FLAGS SHMKIT_CHAN_NO_SPIN

static int chan_alloc(struct shmkit_segment *seg, int role, const struct shmkit_chan_opts *o,
		      struct shmkit_chan **chp)
{
	struct shmkit_chan *ch = calloc(1, sizeof *ch);
	if (!ch)
		return -ENOMEM;
	ch->seg = seg;
	ch->ctl = shmkit_segment_data(seg);
	ch->role = role;
	ch->me = shmkit__self_owner();
	shmkit__spin_init(&ch->spin, o ? o->spin_ns : 0, o && (o->flags & SHMKIT_CHAN_NO_SPIN));
	*chp = ch;
	return 0;
}

static inline void producer_publish(struct shmkit_chan *ch);

/* Validates the control block (copying the immutable part once) and attaches the role. */
static int chan_attach(struct shmkit_chan *ch)
{
	struct chan_ctl *c = ch->ctl;
	size_t seg_size = shmkit_segment_size(ch->seg);
	if (seg_size < sizeof(struct chan_ctl))
		return -EBADMSG;
	/* The creator wrote these before publishing the segment, and the segment open
	 * acquired its READY state: plain reads, copied once into locals. */
	uint64_t magic = c->magic, cap = c->capacity, max_msg = c->max_msg, off = c->ring_offset;
	uint32_t version = c->version;
	int err = shmkit__layout_check(magic, CHAN_MAGIC, version, CHAN_VERSION);
	if (err)
		return err;
	if (!shmkit__ring_geometry_ok(cap, max_msg) || off != CHAN_RING_OFFSET ||
	    cap > seg_size - CHAN_RING_OFFSET)
		return -EBADMSG;
	shmkit__ring_view(&ch->ring, (uint8_t *)c + off, cap, max_msg, &c->tail, &c->head);
	if (ch->role == SHMKIT_CHAN_OBSERVER)
		return 0;
	/* Before our first wake (the taking-over producer's publish below) or sleep. */
	shmkit__wq_attach(&ch->wq, ch->seg, (struct shmkit__waitq *const[]){&c->data_q, &c->space_q},
			  2);
	err = claim_role(ch);
	if (err)
		return err;
	if (ch->role == SHMKIT_CHAN_PRODUCER) {
		err = shmkit__ring_attach_producer(&ch->ring);
		/* A new producer starts a new stream session. Relaxed: ordered before our
		 * first publish (a release store). */
		if (!err) {
			atomic_store_explicit(&c->closed, 0, memory_order_relaxed);
			/* Publishes at once a record a dead predecessor committed in band
			 * but did not publish (src/ring.c): the consumer may be waiting on
			 * the tail for it. */
			producer_publish(ch);
		}
	} else {
		err = shmkit__ring_attach_consumer(&ch->ring);
		/* A new reader: the producer may write again. Relaxed: ordered before our first
		 * publish (a release store), which is what a waiting producer re-checks. */
		if (!err)
			atomic_store_explicit(&c->reader_closed, 0, memory_order_relaxed);
	}
	if (err)
		drop_role(ch);
	return err;
}

/* Makes the handle for an opened (or just created) segment; on failure closes the segment,
 * and unlinks it first when this process created it. */
static int chan_open_seg(struct shmkit_segment *seg, int role, const struct shmkit_chan_opts *o,
			 struct shmkit_chan **chp, bool unlink_on_error)
{
	struct shmkit_chan *ch;
	int err = chan_alloc(seg, role, o, &ch);
	if (!err) {
		err = chan_attach(ch);
		if (err)
			free(ch);
	}
	if (err)
		return shmkit__segment_abandon(seg, unlink_on_error, err);
	*chp = ch;
	return 0;
}

SHMKIT__SYMVER_DEFAULT(shmkit__chan_create, shmkit_chan_create, SHMKIT_0.2);
int shmkit__chan_create(const char *name, int role, const struct shmkit_chan_opts *opts,
			struct shmkit_chan **chp)
{
	if (!chp)
		return -EINVAL;
	*chp = NULL;
	static const struct shmkit_chan_opts defaults;
	const struct shmkit_chan_opts *o = opts ? opts : &defaults;
	int err = shmkit__opts_check(o->flags, CHAN_OPT_FLAGS, o->reserved, 4);
	if (!err)
		err = shmkit__role_check(role, &o->seg, true);
	if (err)
		return err;
	uint64_t cap = o->capacity, max_msg = o->max_msg;
	if (cap == 0)
		cap = max_msg ? 4 * (max_msg + SHMKIT__REC_HDR) : SHMKIT_CHAN_DEFAULT_CAPACITY;
	if (cap > SHMKIT__RING_MAX_CAP || max_msg > SHMKIT__RING_MAX_CAP)
		return -EINVAL;
	cap = shmkit__next_pow2(cap, SHMKIT__RING_MIN_CAP, SHMKIT__RING_MAX_CAP);
	if (max_msg == 0 && !o->max_msg)
		max_msg = cap / 4;
	if (!shmkit__ring_geometry_ok(cap, max_msg))
		return -EINVAL;

	struct shmkit_segment *seg;
	err = shmkit__object_create(name, SHMKIT_KIND_STREAM, CHAN_RING_OFFSET + cap, &o->seg, &seg);
	if (err)
		return err;
	struct chan_ctl *c = shmkit_segment_data(seg);
	/* The memory is zero-filled: positions, owners, counters and queues start at 0. */
	c->magic = CHAN_MAGIC;
	c->version = CHAN_VERSION;
	c->capacity = cap;
	c->max_msg = max_msg;
	c->ring_offset = CHAN_RING_OFFSET;
	shmkit_segment_publish(seg); /* release: the fields above are visible to openers */

	return chan_open_seg(seg, role, o, chp, true);
}

/* What shmkit_chan_open() and shmkit_chan_open_fd() share. */
static int chan_open(const struct shmkit__seg_src *src, int role,
		     const struct shmkit_chan_opts *opts, struct shmkit_chan **chp)
{
	if (!chp)
		return -EINVAL;
	*chp = NULL;
	int err = opts ? shmkit__opts_check(opts->flags, CHAN_OPT_FLAGS, opts->reserved, 4) : 0;
	if (!err) /* an observer (no role) is read-only, and only an observer is */
		err = shmkit__role_check(role, opts ? &opts->seg : NULL, false);
	struct shmkit_segment *seg;
	if (!err)
		err = shmkit__object_open(src, SHMKIT_KIND_STREAM, CHAN_RING_OFFSET,
					  opts ? &opts->seg : NULL, &seg);
	if (err)
		return err;
	return chan_open_seg(seg, role, opts, chp, false);
}

SHMKIT__SYMVER_DEFAULT(shmkit__chan_open, shmkit_chan_open, SHMKIT_0.2);
int shmkit__chan_open(const char *name, int role, const struct shmkit_chan_opts *opts,
		      struct shmkit_chan **chp)
{
	return chan_open(&(struct shmkit__seg_src){.name = name}, role, opts, chp);
}

SHMKIT__SYMVER_DEFAULT(shmkit__chan_open_fd, shmkit_chan_open_fd, SHMKIT_0.2);
int shmkit__chan_open_fd(int fd, int role, const struct shmkit_chan_opts *opts,
			 struct shmkit_chan **chp)
{
	return chan_open(&(struct shmkit__seg_src){.fd = fd, .by_fd = true}, role, opts, chp);
}

/* --- publishing, waking, waiting ------------------------------------------------------- */

/* Publishes this side's counters next to its position. Relaxed: statistics; each counter
 * has a single writer (the role holder). */
static inline void publish_stats(struct shmkit_chan *ch)
{
	struct chan_ctl *c = ch->ctl;
	if (ch->role == SHMKIT_CHAN_PRODUCER) {
		atomic_store_explicit(&c->msgs_sent, ch->ring.msgs, memory_order_relaxed);
		atomic_store_explicit(&c->bytes_sent, ch->ring.bytes, memory_order_relaxed);
	} else {
		atomic_store_explicit(&c->msgs_recv, ch->ring.msgs, memory_order_relaxed);
		atomic_store_explicit(&c->bytes_recv, ch->ring.bytes, memory_order_relaxed);
	}
}

/* Wakes the peer sleeping on `q`, if any. Called right after a position store (the
 * handshake at the top of this file: no system call while nobody sleeps). The check is
 * inline, the wake-up out of line. */
__attribute__((noinline)) static void wake_slow(struct shmkit_chan *ch, struct shmkit__waitq *q)
{
	shmkit__waitq_wake_now(q, INT_MAX);
	ch->wakes++;
	_Atomic uint64_t *ctr = ch->role == SHMKIT_CHAN_PRODUCER ? &ch->ctl->prod_wakes
								  : &ch->ctl->cons_wakes;
	atomic_store_explicit(ctr, ch->wakes, memory_order_relaxed); /* statistics */
}

static inline void wake(struct shmkit_chan *ch, struct shmkit__waitq *q)
{
	/* The load half of the handshake (src/waitq_internal.h): no fence unless fenced. */
	if (shmkit__waitq_pending(q))
		wake_slow(ch, q);
}

/* The statistics go first: the position must be the last store to the line the peer
 * polls. Stored after it, they take the line away again right after the peer fetched it
 * to see the new position, and the peer's next read of the position misses once more. */
static inline void producer_publish(struct shmkit_chan *ch)
{
	if (ch->ring.pos == ch->ring.pub)
		return;
	publish_stats(ch);
	shmkit__ring_publish_tail(&ch->ring);
	wake(ch, &ch->ctl->data_q);
}

static inline void consumer_publish(struct shmkit_chan *ch)
{
	if (ch->ring.pos == ch->ring.pub)
		return;
	publish_stats(ch);
	shmkit__ring_publish_head(&ch->ring);
	wake(ch, &ch->ctl->space_q);
}

enum wait_what { WAIT_DATA, WAIT_SPACE, WAIT_DRAIN };

struct wait_ctx {
	struct shmkit_chan *ch;
	enum wait_what what;
	uint64_t len;
};

/* Whether what we wait for is there. `sc` selects the full re-check after the handshake's
 * barrier (WQ-B1 orders it; seq_cst loads cost what acquire loads cost here); the spin loop
 * uses cheap acquire loads of lines that rarely change. */
static bool ready(struct wait_ctx *w, bool sc)
{
	struct shmkit_chan *ch = w->ch;
	struct chan_ctl *c = ch->ctl;
	memory_order mo = sc ? memory_order_seq_cst : memory_order_acquire;
	switch (w->what) {
	case WAIT_DATA:
		if (sc)
			return shmkit__ring_readable(&ch->ring) ||
			       atomic_load_explicit(&c->closed, mo);
		/* Spinning: the in-band header, then the tail (see ring.h). */
		return shmkit__ring_has_data(&ch->ring) || atomic_load_explicit(&c->closed, mo);
	case WAIT_SPACE:
		if (atomic_load_explicit(&c->reader_closed, mo))
			return true;
		if (sc)
			return shmkit__ring_writable(&ch->ring, w->len);
		/* Cheap pre-check: any release at all is worth a real loan attempt. */
		return atomic_load_explicit(&c->head, mo) != ch->ring.other;
	default:
		return atomic_load_explicit(&c->head, mo) == ch->ring.pub ||
		       atomic_load_explicit(&c->reader_closed, mo);
	}
}

static bool ready_spin(void *p)
{
	return ready(p, false);
}

static bool ready_sc(void *p)
{
	return ready(p, true);
}

/* Waits until `what` may be ready: a bounded adaptive spin, then a futex sleep of at most
 * one liveness slice. Returns 0 (re-try the operation), -ETIMEDOUT, -EOWNERDEAD (the peer
 * died and what we wait for is not there), -EINTR, -EINVAL (malformed deadline). */
static int wait_for(struct shmkit_chan *ch, enum wait_what what, uint64_t len,
		    const struct timespec *deadline)
{
	struct wait_ctx w = {ch, what, len};
	if (shmkit__spin_wait(&ch->spin, ready_spin, &w))
		return 0;
	struct shmkit__waitq *q = what == WAIT_DATA ? &ch->ctl->data_q : &ch->ctl->space_q;
	bool slept;
	int err = shmkit__waitq_sleep(q, &ch->wq, ready_sc, &w, deadline, SHMKIT__SLICE_NS, &slept);
	if (err == 0)
		shmkit__spin_learn(&ch->spin);
	if (slept) {
		ch->sleeps++;
		_Atomic uint64_t *ctr = ch->role == SHMKIT_CHAN_PRODUCER ? &ch->ctl->prod_sleeps
									  : &ch->ctl->cons_sleeps;
		atomic_store_explicit(ctr, ch->sleeps, memory_order_relaxed); /* statistics */
	}
	if (err == 1 || err == -ETIMEDOUT) {
		/* A slice ended, or the deadline: is the peer still there? Acquire: its owner
		 * word, then a fresh look at what it may have published before dying. */
		uint64_t peer = atomic_load_explicit(peer_owner(ch), memory_order_acquire);
		if (shmkit__owner_state(peer) < 0 && !ready(&w, true))
			return -EOWNERDEAD;
		return err == 1 ? 0 : err;
	}
	return err;
}

/* --- producer ---------------------------------------------------------------------- */

/* The per-message operations come twice: an unchecked one (handle and role already
 * checked by the caller) that the wait loops and send/recv call, and the public one that
 * checks its arguments first. So a loop checks once, not at every turn. */
static inline int loan_(struct shmkit_chan *ch, size_t len, void **buf)
{
	int err = shmkit__ring_loan(&ch->ring, len, buf);
	if (__builtin_expect(err == -EAGAIN, 0)) {
		producer_publish(ch); /* a full ring must not hide unpublished MORE commits */
		/* Full and nobody will ever read: like a pipe whose reader closed. Acquire:
		 * pairs with the consumer's seq_cst store in close. */
		if (atomic_load_explicit(&ch->ctl->reader_closed, memory_order_acquire))
			err = -EPIPE;
	}
	return err;
}

static inline int loan_wait_(struct shmkit_chan *ch, size_t len, void **buf,
			     const struct timespec *deadline)
{
	for (;;) {
		int err = loan_(ch, len, buf);
		if (err != -EAGAIN)
			return err;
		err = wait_for(ch, WAIT_SPACE, len, deadline);
		if (err)
			return err;
	}
}

static int check_role(const struct shmkit_chan *ch, int role)
{
	if (!ch)
		return -EINVAL;
	return ch->role == role ? 0 : -EPERM;
}

int shmkit_chan_loan(struct shmkit_chan *ch, size_t len, void **buf)
{
	int err = buf ? check_role(ch, SHMKIT_CHAN_PRODUCER) : -EINVAL;
	return err ? err : loan_(ch, len, buf);
}

/* The waiting loops out of line: the common case (room, data) then needs no stack frame. */
__attribute__((noinline)) static int loan_wait_slow(struct shmkit_chan *ch, size_t len,
						    void **buf, const struct timespec *deadline)
{
	return loan_wait_(ch, len, buf, deadline);
}

int shmkit_chan_loan_wait(struct shmkit_chan *ch, size_t len, void **buf,
			  const struct timespec *deadline)
{
	int err = buf ? check_role(ch, SHMKIT_CHAN_PRODUCER) : -EINVAL;
	if (err)
		return err;
	err = shmkit__ring_loan(&ch->ring, len, buf);
	return __builtin_expect(err != -EAGAIN, 1) ? err : loan_wait_slow(ch, len, buf, deadline);
}

static inline int commit_(struct shmkit_chan *ch, size_t len, unsigned flags)
{
	/* A MORE commit is not published in band: it becomes visible with the tail. */
	int err = shmkit__ring_commit_ex(&ch->ring, len, !(flags & SHMKIT_CHAN_MORE));
	/* Even a long MORE batch publishes every half ring, so the consumer gets to work. */
	if (!err && (!(flags & SHMKIT_CHAN_MORE) || ch->ring.pos - ch->ring.pub >= ch->ring.cap / 2))
		producer_publish(ch);
	return err;
}

int shmkit_chan_commit(struct shmkit_chan *ch, size_t len, unsigned flags)
{
	if (flags & ~SHMKIT_CHAN_MORE)
		return -EINVAL;
	int err = check_role(ch, SHMKIT_CHAN_PRODUCER);
	return err ? err : commit_(ch, len, flags);
}

int shmkit_chan_flush(struct shmkit_chan *ch)
{
	if (!ch)
		return -EINVAL;
	if (ch->role == SHMKIT_CHAN_PRODUCER)
		producer_publish(ch);
	else if (ch->role == SHMKIT_CHAN_CONSUMER)
		consumer_publish(ch);
	return 0;
}

int shmkit_chan_send(struct shmkit_chan *ch, const void *buf, size_t len)
{
	void *p;
	int err = shmkit_chan_loan(ch, len, &p);
	if (err)
		return err;
	shmkit__copy(p, buf, len);
	return commit_(ch, len, 0);
}

int shmkit_chan_send_wait(struct shmkit_chan *ch, const void *buf, size_t len,
			  const struct timespec *deadline)
{
	void *p;
	int err = shmkit_chan_loan_wait(ch, len, &p, deadline);
	if (err)
		return err;
	shmkit__copy(p, buf, len);
	return commit_(ch, len, 0);
}

int shmkit_chan_drain_wait(struct shmkit_chan *ch, const struct timespec *deadline)
{
	if (!ch)
		return -EINVAL;
	if (ch->role != SHMKIT_CHAN_PRODUCER)
		return -EPERM;
	producer_publish(ch);
	for (;;) {
		uint64_t h = atomic_load_explicit(&ch->ctl->head, memory_order_acquire);
		if (h == ch->ring.pub)
			return 0;
		if (ch->ring.pub - h > ch->ring.cap || (h & 7))
			return -EBADMSG;
		if (atomic_load_explicit(&ch->ctl->reader_closed, memory_order_acquire))
			return -EPIPE;
		int err = wait_for(ch, WAIT_DRAIN, 0, deadline);
		if (err)
			return err;
	}
}

/* --- consumer ---------------------------------------------------------------------- */

static inline int peek_(struct shmkit_chan *ch, const void **buf, size_t *len)
{
	uint64_t n;
	int err = shmkit__ring_peek(&ch->ring, buf, &n);
	if (__builtin_expect(err == -EAGAIN, 0)) {
		/* Held (MORE) releases stay held: only the consumer knows whether it has handed
		 * those messages on yet (see release_()). CHAN-A4: pairs with CHAN-R4 in
		 * shmkit_chan_close(): everything published before the close is visible, so one
		 * more peek decides between data and end of stream. */
		uint32_t closed = atomic_load_explicit(&ch->ctl->closed, memory_order_seq_cst);
		if (closed) {
			err = shmkit__ring_peek(&ch->ring, buf, &n);
			if (err == -EAGAIN)
				return closed == CLOSED_ABORTED ? -ECONNABORTED : -EPIPE;
		}
	}
	if (!err)
		*len = (size_t)n;
	return err;
}

static inline int peek_wait_(struct shmkit_chan *ch, const void **buf, size_t *len,
			     const struct timespec *deadline)
{
	for (;;) {
		int err = peek_(ch, buf, len);
		if (err != -EAGAIN)
			return err;
		/* Waiting for data while holding releases could wait forever: the producer may
		 * be waiting for exactly that space. Publishing them here would hand back what
		 * the caller may not have passed on yet, so refuse instead (shmkit_chan(3)). */
		if (ch->ring.pos != ch->ring.pub)
			return -EDEADLK;
		err = wait_for(ch, WAIT_DATA, 0, deadline);
		if (err)
			return err;
	}
}

static inline int release_(struct shmkit_chan *ch, unsigned flags)
{
	int err = shmkit__ring_release(&ch->ring);
	/* A MORE release stays private to this handle until the consumer publishes it
	 * (flush, a release without MORE, close, detach): nothing publishes it on the
	 * consumer's behalf — not a long batch, not an empty channel — because a release
	 * made public is gone for good, and only the consumer knows when the message has
	 * reached its destination. A crash before that delivers the held messages again
	 * to the next consumer (at least once). */
	if (!err && !(flags & SHMKIT_CHAN_MORE))
		consumer_publish(ch);
	return err;
}

int shmkit_chan_peek(struct shmkit_chan *ch, const void **buf, size_t *len)
{
	int err = buf && len ? check_role(ch, SHMKIT_CHAN_CONSUMER) : -EINVAL;
	return err ? err : peek_(ch, buf, len);
}

__attribute__((noinline)) static int peek_wait_slow(struct shmkit_chan *ch, const void **buf,
						    size_t *len, const struct timespec *deadline)
{
	return peek_wait_(ch, buf, len, deadline);
}

int shmkit_chan_peek_wait(struct shmkit_chan *ch, const void **buf, size_t *len,
			  const struct timespec *deadline)
{
	int err = buf && len ? check_role(ch, SHMKIT_CHAN_CONSUMER) : -EINVAL;
	if (err)
		return err;
	uint64_t n;
	err = shmkit__ring_peek(&ch->ring, buf, &n);
	if (__builtin_expect(err == -EAGAIN, 0))
		return peek_wait_slow(ch, buf, len, deadline);
	if (!err)
		*len = (size_t)n;
	return err;
}

int shmkit_chan_release(struct shmkit_chan *ch, unsigned flags)
{
	if (flags & ~SHMKIT_CHAN_MORE)
		return -EINVAL;
	int err = check_role(ch, SHMKIT_CHAN_CONSUMER);
	return err ? err : release_(ch, flags);
}

static ssize_t copy_out(struct shmkit_chan *ch, int err, const void *p, size_t n, void *buf,
			size_t cap)
{
	if (err)
		return err;
	if (n > cap)
		return -ENOBUFS; /* the caller's buffer is too small (errno table: shmkit_errors(7)) */
	shmkit__copy(buf, p, n);
	release_(ch, 0);
	return (ssize_t)n;
}

SHMKIT__SYMVER_DEFAULT(shmkit__chan_recv, shmkit_chan_recv, SHMKIT_0.2);
ssize_t shmkit__chan_recv(struct shmkit_chan *ch, void *buf, size_t cap)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_chan_peek(ch, &p, &n);
	return copy_out(ch, err, p, n, buf, cap);
}

SHMKIT__SYMVER_DEFAULT(shmkit__chan_recv_wait, shmkit_chan_recv_wait, SHMKIT_0.2);
ssize_t shmkit__chan_recv_wait(struct shmkit_chan *ch, void *buf, size_t cap,
			       const struct timespec *deadline)
{
	const void *p = NULL;
	size_t n = 0;
	int err = shmkit_chan_peek_wait(ch, &p, &n, deadline);
	return copy_out(ch, err, p, n, buf, cap);
}

/* --- lifetime and state -------------------------------------------------------------- */

/* Gives the role up. how: CLOSED_EOF / CLOSED_ABORTED mark the stream (producer) or the
 * reader (consumer) as gone; 0 leaves silently, for a successor to take over. */
static int chan_leave(struct shmkit_chan *ch, uint32_t how)
{
	if (!ch)
		return 0;
	int last = 0;
	if (ch->role == SHMKIT_CHAN_PRODUCER) {
		producer_publish(ch);
		if (how) {
			/* CHAN-R4: end of stream, after the last publish; pairs with CHAN-A4 in peek.
			 * seq_cst: also the store half of the handshake with a sleeping
			 * consumer. */
			atomic_store_explicit(&ch->ctl->closed, how, memory_order_seq_cst);
			wake(ch, &ch->ctl->data_q);
			/* CHAN-L1: seq_cst store then seq_cst load of the other end's mark, as
			 * the consumer does in the other order (CHAN-L2): when both ends close
			 * at once, at least one of them sees the other and is "last". */
			last = atomic_load_explicit(&ch->ctl->reader_closed, memory_order_seq_cst) != 0;
		}
		drop_role(ch);
	} else if (ch->role == SHMKIT_CHAN_CONSUMER) {
		/* Abort: what the consumer holds was not handed on (its output failed), so its
		 * held MORE releases are dropped, for a next consumer to receive again. */
		if (how != CLOSED_ABORTED)
			consumer_publish(ch);
		if (how) {
			/* The reader is gone: a producer waiting for room gets -EPIPE. seq_cst:
			 * the store half of the handshake with a sleeping producer. */
			atomic_store_explicit(&ch->ctl->reader_closed, 1, memory_order_seq_cst);
			/* CHAN-L2: pairs with CHAN-L1. */
			last = atomic_load_explicit(&ch->ctl->closed, memory_order_seq_cst) != 0;
		}
		drop_role(ch);
		if (how)
			wake(ch, &ch->ctl->space_q);
	}
	shmkit_segment_close(ch->seg);
	free(ch);
	return last;
}

int shmkit_chan_close(struct shmkit_chan *ch)
{
	return chan_leave(ch, CLOSED_EOF);
}

int shmkit_chan_abort(struct shmkit_chan *ch)
{
	return chan_leave(ch, CLOSED_ABORTED);
}

int shmkit_chan_detach(struct shmkit_chan *ch)
{
	return chan_leave(ch, 0);
}

int shmkit_chan_unlink(struct shmkit_chan *ch)
{
	return shmkit__object_unlink(ch ? ch->seg : NULL);
}

struct shmkit_segment *shmkit_chan_segment(const struct shmkit_chan *ch)
{
	return ch ? ch->seg : NULL;
}

size_t shmkit_chan_max_msg(const struct shmkit_chan *ch)
{
	return ch ? (size_t)ch->ring.max_msg : 0;
}

int shmkit_chan_stats(const struct shmkit_chan *ch, struct shmkit_chan_stats *st)
{
	if (!ch || !st)
		return -EINVAL;
	const struct chan_ctl *c = ch->ctl;
	memset(st, 0, sizeof *st);
	/* Relaxed throughout: a statistics snapshot, each value validated or merely shown. */
#define LD(x) atomic_load_explicit(&((struct chan_ctl *)(uintptr_t)c)->x, memory_order_relaxed)
	uint64_t t = shmkit__ring_tail_pos(LD(tail)), h = LD(head);
	st->capacity = ch->ring.cap;
	st->max_msg = ch->ring.max_msg;
	st->fill = t - h <= ch->ring.cap ? t - h : 0;
	st->msgs_sent = LD(msgs_sent);
	st->bytes_sent = LD(bytes_sent);
	st->msgs_recv = LD(msgs_recv);
	st->bytes_recv = LD(bytes_recv);
	st->producer_sleeps = LD(prod_sleeps);
	st->consumer_sleeps = LD(cons_sleeps);
	st->producer_wakes = LD(prod_wakes);
	st->consumer_wakes = LD(cons_wakes);
	uint64_t po = LD(prod_owner), co = LD(cons_owner);
	st->producer_pid = (int32_t)(po >> 32);
	st->consumer_pid = (int32_t)(co >> 32);
	st->producer_alive = shmkit__owner_state(po) > 0;
	st->consumer_alive = shmkit__owner_state(co) > 0;
	uint32_t closed = LD(closed);
	st->closed = closed == CLOSED_EOF ? 1 : closed == CLOSED_ABORTED ? 2 : 0;
	st->reader_closed = LD(reader_closed) != 0;
#undef LD
	return 0;
}

/* --- the producer's notes and the stream position ------------------------------------- */

int shmkit_chan_note_store(struct shmkit_chan *ch, unsigned idx, uint64_t val)
{
	int err = check_role(ch, SHMKIT_CHAN_PRODUCER);
	if (err)
		return err;
	if (idx >= SHMKIT_CHAN_NOTES)
		return -EINVAL;
	/* CHAN-R5: release, so a note stored before a commit is visible to whoever sees the
	 * commit; pairs with CHAN-A5 in shmkit_chan_note_load(). (A producer killed after the
	 * store leaves it in shared memory all the same: the store is complete or absent.) */
	atomic_store_explicit(&ch->ctl->notes[idx], val, memory_order_release);
	return 0;
}

int shmkit_chan_note_load(const struct shmkit_chan *ch, unsigned idx, uint64_t *val)
{
	if (!ch || !val || idx >= SHMKIT_CHAN_NOTES)
		return -EINVAL;
	/* CHAN-A5: pairs with CHAN-R5 in shmkit_chan_note_store(). */
	*val = atomic_load_explicit(&ch->ctl->notes[idx], memory_order_acquire);
	return 0;
}

int shmkit_chan_position(const struct shmkit_chan *ch, uint64_t *pos)
{
	if (!ch || !pos)
		return -EINVAL;
	if (ch->role == SHMKIT_CHAN_PRODUCER)
		*pos = ch->ring.pos; /* past the last commit, published or not (a loan is not) */
	else if (ch->role == SHMKIT_CHAN_CONSUMER)
		*pos = ch->ring.pos + ch->ring.peek_need; /* past the peeked message, if any */
	else
		return -EPERM;
	return 0;
}

/* --- waitset hooks (src/chan_internal.h) ----------------------------------------------- */

int shmkit__chan_consumer_waitq(const struct shmkit_chan *ch, _Atomic uint32_t **gen,
				_Atomic uint32_t **sleepers, const struct shmkit__wq **wq)
{
	if (ch->role != SHMKIT_CHAN_CONSUMER)
		return -EPERM;
	*wq = &ch->wq;
	*gen = &ch->ctl->data_q.gen;
	*sleepers = &ch->ctl->data_q.sleepers;
	return 0;
}

unsigned shmkit__chan_consumer_poll(const struct shmkit_chan *ch, bool sc)
{
	struct chan_ctl *c = ch->ctl;
	memory_order mo = sc ? memory_order_seq_cst : memory_order_acquire;
	/* Shared words only (see chan_internal.h). RING-A1-like: pairs with RING-R1 in ring.c;
	 * also the waitset's re-check after it registered on data_q and executed WQ-B1. */
	uint64_t t = shmkit__ring_tail_pos(atomic_load_explicit(&c->tail, mo));
	uint64_t h = atomic_load_explicit(&c->head, mo);
	/* Readable when the published tail is ahead of the published head. */
	unsigned bits = t != h && t - h <= c->capacity ? SHMKIT_WAIT_READABLE : 0;
	if (atomic_load_explicit(&c->closed, mo))
		bits |= SHMKIT_WAIT_CLOSED;
	return bits;
}
