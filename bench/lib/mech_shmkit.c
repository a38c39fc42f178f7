/* shmkit benchmarks — shmkit's own kinds: stream channel, pub/sub, work queue (mech.c lists
 * every mechanism; mech.h is the interface). */
#include "mech_int.h"

/* --- shmkit stream channels ---------------------------------------------------------------- */

struct chan_priv {
	struct shmkit_chan *a_out, *a_in; /* side A's handles, created by setup() */
	struct shmkit_chan *out, *in;     /* this side's handles */
	uint8_t *buf;
	uint32_t flags;                   /* SHMKIT_CHAN_NO_SPIN for the blocking mode */
};

static void chan_opts(const struct ipc_link *l, const struct chan_priv *p,
		      struct shmkit_chan_opts *o)
{
	memset(o, 0, sizeof *o);
	o->capacity = ipc_ring_capacity(l->size);
	o->max_msg = l->size;
	o->flags = p->flags;
	o->seg.backend = SHMKIT_BACKEND_MEMFD; /* anonymous: nothing to leak */
}

static int chan_setup(struct ipc_link *l)
{
	struct chan_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	p->flags = strcmp(l->mech->mode, "blocking") == 0 ? SHMKIT_CHAN_NO_SPIN : 0;
	struct shmkit_chan_opts o;
	chan_opts(l, p, &o);
	/* Created before the processes are pinned: shmkit decides at attach time whether
	 * spinning can help (it needs two allowed CPUs). */
	int err = shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &o, &p->a_out);
	if (!err)
		err = shmkit_chan_create(NULL, SHMKIT_CHAN_CONSUMER, &o, &p->a_in);
	if (err) {
		snprintf(l->err, sizeof l->err, "shmkit_chan_create: %s", shmkit_strerror(err));
		return err;
	}
	return 0;
}

static int chan_attach(struct ipc_link *l, int side)
{
	struct chan_priv *p = l->priv;
	if (side == IPC_SIDE_A) {
		p->out = p->a_out;
		p->in = p->a_in;
	} else {
		/* Side A's handles were inherited through fork() but belong to the parent; open
		 * our own from the inherited memfd descriptors. */
		struct shmkit_chan_opts o;
		chan_opts(l, p, &o);
		int fd_ab = shmkit_segment_fd(shmkit_chan_segment(p->a_out));
		int fd_ba = shmkit_segment_fd(shmkit_chan_segment(p->a_in));
		int err = shmkit_chan_open_fd(fd_ab, SHMKIT_CHAN_CONSUMER, &o, &p->in);
		if (!err)
			err = shmkit_chan_open_fd(fd_ba, SHMKIT_CHAN_PRODUCER, &o, &p->out);
		if (err) {
			snprintf(l->err, sizeof l->err, "shmkit_chan_open_fd: %s",
				 shmkit_strerror(err));
			return err;
		}
	}
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void chan_detach(struct ipc_link *l)
{
	struct chan_priv *p = l->priv;
	if (l->side == IPC_SIDE_B) {
		shmkit_chan_close(p->out);
		shmkit_chan_close(p->in);
	}
	p->out = p->in = NULL;
	free(p->buf);
	p->buf = NULL;
}

/* The sleep/wake handshake must never have needed its liveness slice to deliver a wake-up
 * (docs/design.md, "Sleep/wake handshake"): a row whose segments counted one fails. */
static int verify_segs(struct ipc_link *l, struct shmkit_segment *a, struct shmkit_segment *b)
{
	struct shmkit_wait_stats sa = {0}, sb = {0};
	if (a)
		shmkit_segment_wait_stats(a, &sa);
	if (b)
		shmkit_segment_wait_stats(b, &sb);
	if (sa.missed + sb.missed == 0)
		return 0;
	snprintf(l->err, sizeof l->err, "%llu wake-ups found only by the liveness slice",
		 (unsigned long long)(sa.missed + sb.missed));
	return -EPROTO;
}

static int chan_verify(struct ipc_link *l)
{
	struct chan_priv *p = l->priv;
	return verify_segs(l, p->a_out ? shmkit_chan_segment(p->a_out) : NULL,
			   p->a_in ? shmkit_chan_segment(p->a_in) : NULL);
}

static void chan_teardown(struct ipc_link *l)
{
	struct chan_priv *p = l->priv;
	if (!p)
		return;
	shmkit_chan_close(p->a_out);
	shmkit_chan_close(p->a_in);
	free(p->buf);
	free(p);
	l->priv = NULL;
}

static int chan_send(struct ipc_link *l, unsigned flags)
{
	struct chan_priv *p = l->priv;
	void *dst;
	int err = shmkit_chan_loan_wait(p->out, l->size, &dst, NULL);
	if (err)
		return err;
	ipc_fill(dst, l->size, ++l->tx);
	return shmkit_chan_commit(p->out, l->size, flags & IPC_MORE ? SHMKIT_CHAN_MORE : 0);
}

static int chan_recv(struct ipc_link *l, unsigned flags)
{
	struct chan_priv *p = l->priv;
	const void *src;
	size_t len;
	int err = shmkit_chan_peek(p->in, &src, &len);
	if (err == -EAGAIN) {
		shmkit_chan_flush(p->in); /* held releases go back before waiting */
		err = shmkit_chan_peek_wait(p->in, &src, &len, NULL);
	}
	if (err)
		return err;
	err = ipc_check_all(src, len, l->size, ++l->rx);
	int r = shmkit_chan_release(p->in, flags & IPC_MORE ? SHMKIT_CHAN_MORE : 0);
	return err ? err : r;
}

static int chan_copy_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct chan_priv *p = l->priv;
	mark(p->buf, l->size, ++l->tx);
	return shmkit_chan_send_wait(p->out, p->buf, l->size, NULL);
}

static int chan_copy_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct chan_priv *p = l->priv;
	ssize_t n = shmkit_chan_recv_wait(p->in, p->buf, l->size, NULL);
	if (n < 0)
		return (int)n;
	return ipc_check(p->buf, (size_t)n, l->size, ++l->rx);
}

/* --- shmkit pub/sub (one subscriber) and work queue (1 x 1) --------------------------------
 * The many-party channels on the same two-process drivers as everything else, so their
 * single-pair cost shows next to the stream channel's. Side A creates everything before the
 * fork (memfd: nothing to leak); side B opens its own handles from the inherited
 * descriptors. The driver starts measuring only after side B attached, so the subscriber
 * has joined before the first message (a late joiner would start at the newest one). */

struct ps_priv {
	struct shmkit_pubsub *a_pub, *a_sub; /* side A's: publisher on AB, subscriber on BA */
	struct shmkit_pubsub *pub, *sub;     /* this side's */
};

static void ps_opts(const struct ipc_link *l, struct shmkit_pubsub_opts *o)
{
	memset(o, 0, sizeof *o);
	o->capacity = ipc_ring_capacity(l->size);
	o->max_msg = l->size;
	o->max_subscribers = 1;
	o->policy = SHMKIT_PUBSUB_BLOCK;
	o->seg.backend = SHMKIT_BACKEND_MEMFD;
}

static int ps_setup(struct ipc_link *l)
{
	struct ps_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	struct shmkit_pubsub_opts o;
	ps_opts(l, &o);
	int err = shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &o, &p->a_pub);
	if (!err)
		err = shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_SUBSCRIBER, &o, &p->a_sub);
	if (err)
		snprintf(l->err, sizeof l->err, "shmkit_pubsub_create: %s", shmkit_strerror(err));
	return err;
}

static int ps_attach(struct ipc_link *l, int side)
{
	struct ps_priv *p = l->priv;
	if (side == IPC_SIDE_A) {
		p->pub = p->a_pub;
		p->sub = p->a_sub;
		return 0;
	}
	struct shmkit_pubsub_opts o;
	ps_opts(l, &o);
	int err = shmkit_pubsub_open_fd(shmkit_segment_fd(shmkit_pubsub_segment(p->a_pub)),
					SHMKIT_PUBSUB_SUBSCRIBER, &o, &p->sub);
	if (!err)
		err = shmkit_pubsub_open_fd(shmkit_segment_fd(shmkit_pubsub_segment(p->a_sub)),
					    SHMKIT_PUBSUB_PUBLISHER, &o, &p->pub);
	if (err)
		snprintf(l->err, sizeof l->err, "shmkit_pubsub_open_fd: %s", shmkit_strerror(err));
	return err;
}

static void ps_detach(struct ipc_link *l)
{
	struct ps_priv *p = l->priv;
	if (l->side == IPC_SIDE_B) {
		shmkit_pubsub_close(p->pub);
		shmkit_pubsub_close(p->sub);
	}
	p->pub = p->sub = NULL;
}

static int ps_verify(struct ipc_link *l)
{
	struct ps_priv *p = l->priv;
	return verify_segs(l, p->a_pub ? shmkit_pubsub_segment(p->a_pub) : NULL,
			   p->a_sub ? shmkit_pubsub_segment(p->a_sub) : NULL);
}

static void ps_teardown(struct ipc_link *l)
{
	struct ps_priv *p = l->priv;
	if (!p)
		return;
	shmkit_pubsub_close(p->a_pub);
	shmkit_pubsub_close(p->a_sub);
	free(p);
	l->priv = NULL;
}

static int ps_send(struct ipc_link *l, unsigned flags)
{
	struct ps_priv *p = l->priv;
	void *dst;
	int err = shmkit_pubsub_loan_wait(p->pub, l->size, &dst, NULL);
	if (err)
		return err;
	ipc_fill(dst, l->size, ++l->tx);
	return shmkit_pubsub_commit(p->pub, l->size, flags & IPC_MORE ? SHMKIT_PUBSUB_MORE : 0);
}

static int ps_recv(struct ipc_link *l, unsigned flags)
{
	struct ps_priv *p = l->priv;
	const void *src;
	size_t len;
	int err = shmkit_pubsub_peek(p->sub, &src, &len);
	if (err == -EAGAIN) {
		shmkit_pubsub_flush(p->sub); /* held releases go back before waiting */
		err = shmkit_pubsub_peek_wait(p->sub, &src, &len, NULL);
	}
	if (err)
		return err;
	err = ipc_check_all(src, len, l->size, ++l->rx);
	int r = shmkit_pubsub_release(p->sub, flags & IPC_MORE ? SHMKIT_PUBSUB_MORE : 0);
	return err ? err : r;
}

struct q_priv {
	struct shmkit_queue *a_ab, *a_ba; /* side A's handles on the two queues */
	struct shmkit_queue *out, *in;    /* this side's */
};

static void q_opts(const struct ipc_link *l, struct shmkit_queue_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_msg = l->size;
	/* Like the rings: about 1 MiB of slots, and at least 4 (a slot is max_msg + 16 bytes
	 * rounded up to 64). */
	size_t slot = (l->size + 16 + 63) & ~(size_t)63;
	uint32_t n = 4;
	while ((uint64_t)n * 2 * slot <= (1u << 20) && n < (1u << 16))
		n *= 2;
	o->slots = n;
	o->max_members = 2;
	o->seg.backend = SHMKIT_BACKEND_MEMFD;
}

static int q_setup(struct ipc_link *l)
{
	struct q_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	struct shmkit_queue_opts o;
	q_opts(l, &o);
	int err = shmkit_queue_create(NULL, &o, &p->a_ab);
	if (!err)
		err = shmkit_queue_create(NULL, &o, &p->a_ba);
	if (err)
		snprintf(l->err, sizeof l->err, "shmkit_queue_create: %s", shmkit_strerror(err));
	return err;
}

static int q_attach(struct ipc_link *l, int side)
{
	struct q_priv *p = l->priv;
	if (side == IPC_SIDE_A) {
		p->out = p->a_ab;
		p->in = p->a_ba;
		return 0;
	}
	struct shmkit_queue_opts o;
	q_opts(l, &o);
	int err = shmkit_queue_open_fd(shmkit_segment_fd(shmkit_queue_segment(p->a_ab)), &o, &p->in);
	if (!err)
		err = shmkit_queue_open_fd(shmkit_segment_fd(shmkit_queue_segment(p->a_ba)), &o,
					   &p->out);
	if (err)
		snprintf(l->err, sizeof l->err, "shmkit_queue_open_fd: %s", shmkit_strerror(err));
	return err;
}

static void q_detach(struct ipc_link *l)
{
	struct q_priv *p = l->priv;
	if (l->side == IPC_SIDE_B) {
		shmkit_queue_close(p->out);
		shmkit_queue_close(p->in);
	}
	p->out = p->in = NULL;
}

static int q_verify(struct ipc_link *l)
{
	struct q_priv *p = l->priv;
	return verify_segs(l, p->a_ab ? shmkit_queue_segment(p->a_ab) : NULL,
			   p->a_ba ? shmkit_queue_segment(p->a_ba) : NULL);
}

static void q_teardown(struct ipc_link *l)
{
	struct q_priv *p = l->priv;
	if (!p)
		return;
	shmkit_queue_close(p->a_ab);
	shmkit_queue_close(p->a_ba);
	free(p);
	l->priv = NULL;
}

static int q_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct q_priv *p = l->priv;
	void *dst;
	int err = shmkit_queue_loan_wait(p->out, &dst, NULL);
	if (err)
		return err;
	ipc_fill(dst, l->size, ++l->tx);
	return shmkit_queue_commit(p->out, l->size);
}

static int q_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct q_priv *p = l->priv;
	const void *src;
	size_t len;
	int err = shmkit_queue_peek_wait(p->in, &src, &len, NULL);
	if (err)
		return err;
	err = ipc_check_all(src, len, l->size, ++l->rx);
	int r = shmkit_queue_release(p->in);
	return err ? err : r;
}

const struct ipc_mech ipc_mech_shmkit_spin = {
	"shmkit-spin", "shmkit", "spin", "shmkit stream, spin (loan/commit)", LS | DEF, 0,
	chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
const struct ipc_mech ipc_mech_shmkit_block = {
	"shmkit-block", "shmkit", "blocking", "shmkit stream, blocking (NO_SPIN)", LS | DEF, 0,
	chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
const struct ipc_mech ipc_mech_shmkit_copy = {
	"shmkit-spin-copy", "shmkit", "spin-copy", "shmkit stream, spin, send/recv (copy)", LS, 0,
	chan_setup, chan_attach, chan_copy_send, chan_copy_recv, chan_detach, chan_teardown, chan_verify};
const struct ipc_mech ipc_mech_shmkit_batch = {
	"shmkit-spin-batch", "shmkit", "spin-batch", "shmkit stream, spin, SHMKIT_CHAN_MORE x16",
	IPC_CAP_STREAM, BATCH, chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
const struct ipc_mech ipc_mech_shmkit_pubsub = {
	"shmkit-pubsub", "shmkit-pubsub", "spin", "shmkit pub/sub, 1 subscriber, spin", LS | DEF, 0,
	ps_setup, ps_attach, ps_send, ps_recv, ps_detach, ps_teardown, ps_verify};
const struct ipc_mech ipc_mech_shmkit_queue = {
	"shmkit-queue", "shmkit-queue", "spin", "shmkit work queue, 1 x 1, spin", LS | DEF, 0,
	q_setup, q_attach, q_send, q_recv, q_detach, q_teardown, q_verify};
