/* shmkit benchmarks — the built-in IPC mechanisms (see ipc.h for the interface).
 *
 *   floor            one 64-bit word per direction, each on its own 128-byte line; the
 *                    receiver spins until the word changes: the cache-line round trip, the
 *                    physical floor of any shared-memory hand-off (no payload)
 *   futex            the same words, FUTEX_WAIT / FUTEX_WAKE on every message, the payload in
 *                    a shared slot per direction (written and read in place): the floor for
 *                    "wake a sleeping process and hand it a message" (ping-pong only)
 *   ring             a minimal SPSC ring (the same record layout as shmkit's: 8-byte header,
 *                    contiguous payload, padding at the end): cached positions, one
 *                    release store per message, busy-poll. The producer writes the payload
 *                    in place (zero copy), the consumer reads all of it in place
 *   ring-copy        the same ring, copying in and out in 512 KiB pieces (clear of the
 *                    large-memcpy cliff)
 *   ring-inband      the same ring publishing in band, as shmkit does: the consumer polls the
 *                    next record's header (and prefetches its second line), the producer
 *                    zeroes the slot after each record before storing the header; no tail.
 *                    The floor of that protocol, with nothing else on the critical path
 *   ring-batch       the zero-copy ring publishing its position every 16 messages (or 64 KiB)
 *   shmkit-spin      shmkit stream channel, loan/commit and peek/release (zero copy),
 *                    default adaptive spin, then futex
 *   shmkit-block     the same with SHMKIT_CHAN_NO_SPIN: every wait sleeps on the futex
 *   shmkit-spin-copy shmkit_chan_send_wait / shmkit_chan_recv_wait (one copy each side)
 *   shmkit-spin-batch zero copy, SHMKIT_CHAN_MORE on 15 of every 16 commits and releases
 *                    (or every 64 KiB: a batch stays well below the ring capacity)
 *   shmkit-pubsub    shmkit pub/sub, one subscriber, block policy, zero copy both ways,
 *                    default spin: the single-pair cost of the one-to-many channel
 *   shmkit-queue     shmkit work queue, one producer and one consumer, loan/commit and
 *                    peek/release in its fixed-size slots, default spin
 *   pipe, unix-stream, unix-seqpacket, tcp (loopback, TCP_NODELAY)
 *                    write/read of a private buffer; seqpacket in messages of <= 64 KiB
 *   posix-mq, sysv-mq message queues, in messages of at most the system limit (msgsize_max,
 *                    msgmax: 8 KiB by default)
 *   eventfd          shared memory slots (4 per direction) with two semaphore-mode eventfds
 *                    per direction counting full and free slots: the usual "shared memory +
 *                    eventfd doorbell" design
 *
 * Everything is created by setup() in the parent before fork(), anonymously where the OS
 * allows it (anonymous shared memory, memfd channels, socketpairs, POSIX queues unlinked
 * at once), so the only object that can outlive a crash of the parent is the System V
 * message queue, which teardown() removes on every path the parent survives.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "ipc.h"
#include "shmkit.h"

#define RING_PIECE (512u << 10) /* ring-copy piece size */
#define SEQPACKET_PIECE (64u << 10)
#define EVENTFD_SLOTS 4u
#define BATCH 16u

volatile sig_atomic_t ipc_abort;

/* --- helpers ------------------------------------------------------------------------------ */

int ipc_check(const void *p, size_t len, size_t want, uint64_t n)
{
	const uint8_t *b = p;
	uint8_t x = ipc_byte(n);
	if (len != want || (len && (b[0] != x || b[len - 1] != x)))
		return -EBADMSG;
	return 0;
}

/* The payload frames of this process: what a zero-copy sender copies into its loan and what
 * a receiver compares a message with. Body zero, the first and last byte the message's
 * (mark()); as large as the largest message so far. */
static uint8_t *frame_tx, *frame_rx;
static size_t frame_cap;

static bool frames_fit(size_t size)
{
	if (size <= frame_cap)
		return true;
	void *a = calloc(1, size), *b = calloc(1, size);
	if (!a || !b) {
		free(a);
		free(b);
		return false;
	}
	free(frame_tx);
	free(frame_rx);
	frame_tx = a;
	frame_rx = b;
	frame_cap = size;
	return true;
}

static void mark(uint8_t *buf, size_t size, uint64_t n);

void ipc_fill(void *dst, size_t size, uint64_t n)
{
	if (!frames_fit(size)) {
		memset(dst, ipc_byte(n), size); /* out of memory: still a valid message */
		return;
	}
	mark(frame_tx, size, n);
	memcpy(dst, frame_tx, size);
}

int ipc_check_all(const void *p, size_t len, size_t want, uint64_t n)
{
	if (len != want)
		return -EBADMSG;
	if (!frames_fit(len))
		return ipc_check(p, len, want, n);
	mark(frame_rx, len, n);
	return memcmp(p, frame_rx, len) ? -EBADMSG : 0;
}

int ipc_spin_pause(uint32_t *count)
{
	uint32_t c = ++*count;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
	if ((c & 1023u) == 0) {
		if (ipc_abort)
			return -EINTR;
		/* After ~2^16 polls (tens of µs) the peer is probably not running: let it. */
		if (c >= (1u << 16))
			sched_yield();
	}
	return 0;
}

void ipc_copy_pieces(void *dst, const void *src, size_t n, size_t piece)
{
	uint8_t *d = dst;
	const uint8_t *s = src;
	while (n > piece) {
		memcpy(d, s, piece);
		d += piece;
		s += piece;
		n -= piece;
	}
	memcpy(d, s, n);
}

static int seterr(struct ipc_link *l, int err, const char *what)
{
	snprintf(l->err, sizeof l->err, "%s: %s", what, strerror(-err));
	return err;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/* A private message buffer of at least `size` bytes (at least 8), 64-byte aligned. */
static uint8_t *private_buf(size_t size)
{
	void *p = NULL;
	size_t n = (size < 64 ? 64 : size + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, n) != 0)
		return NULL;
	memset(p, 0, n);
	return p;
}

/* Blocking-call wrapper: restarts after EINTR unless the run is being aborted. */
static int again(void)
{
	return errno == EINTR && !ipc_abort;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (again())
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Marks the first and last byte of a private buffer as message n's. */
static void mark(uint8_t *buf, size_t size, uint64_t n)
{
	if (size) {
		buf[0] = ipc_byte(n);
		buf[size - 1] = ipc_byte(n);
	}
}

/* --- floor and futex: one word per direction ------------------------------------------------ */

struct word_line {
	_Alignas(128) _Atomic uint64_t v;
};

struct words {
	struct word_line dir[2]; /* dir[0]: A -> B, dir[1]: B -> A */
};

static int words_setup(struct ipc_link *l)
{
	l->priv = bench_shared_alloc(sizeof(struct words));
	return l->priv ? 0 : seterr(l, -ENOMEM, "mmap");
}

/* For mechanisms whose shared objects both processes use as inherited through fork():
 * nothing to do per side. */
static int attach_nothing(struct ipc_link *l, int side)
{
	(void)l;
	(void)side;
	return 0;
}

static void words_detach(struct ipc_link *l)
{
	(void)l;
}

static void words_teardown(struct ipc_link *l)
{
	bench_shared_free(l->priv, sizeof(struct words));
	l->priv = NULL;
}

static int floor_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct words *w = l->priv;
	/* Release: pairs with the acquire load in floor_recv(). */
	atomic_store_explicit(&w->dir[l->side].v, ++l->tx, memory_order_release);
	return 0;
}

static int floor_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct words *w = l->priv;
	_Atomic uint64_t *v = &w->dir[!l->side].v;
	uint64_t want = ++l->rx;
	uint32_t spins = 0;
	while (atomic_load_explicit(v, memory_order_acquire) != want)
		if (ipc_spin_pause(&spins))
			return -EINTR;
	return 0;
}

/* The futex word is the low half of the 64-bit word (little endian). */
static uint32_t *futex_word(_Atomic uint64_t *v)
{
	return (uint32_t *)(void *)v;
}

/* futex: the words, then one payload slot per direction (a ping-pong never has two
 * messages in flight in one direction, so one slot is enough). */
struct futex_priv {
	struct words *w;
	uint8_t *slot[2];
	size_t bytes;
};

static int futex_setup(struct ipc_link *l)
{
	struct futex_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	size_t stride = (l->size + 127) & ~(size_t)127;
	p->bytes = sizeof(struct words) + 2 * stride;
	uint8_t *m = bench_shared_alloc(p->bytes);
	if (!m)
		return seterr(l, -ENOMEM, "mmap");
	p->w = (struct words *)(void *)m;
	p->slot[0] = m + sizeof(struct words);
	p->slot[1] = p->slot[0] + stride;
	return 0;
}

static void futex_teardown(struct ipc_link *l)
{
	struct futex_priv *p = l->priv;
	if (!p)
		return;
	bench_shared_free(p->w, p->bytes);
	free(p);
	l->priv = NULL;
}

static int futex_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct futex_priv *p = l->priv;
	_Atomic uint64_t *v = &p->w->dir[l->side].v;
	ipc_fill(p->slot[l->side], l->size, l->tx + 1);
	/* Release: publishes the payload; pairs with the acquire load in futex_recv(). */
	atomic_store_explicit(v, ++l->tx, memory_order_release);
	/* Shared futex (no FUTEX_PRIVATE_FLAG): the peer is another process. */
	if (syscall(SYS_futex, futex_word(v), FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
		return -errno;
	return 0;
}

static int futex_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct futex_priv *p = l->priv;
	_Atomic uint64_t *v = &p->w->dir[!l->side].v;
	uint64_t want = ++l->rx;
	for (;;) {
		uint64_t cur = atomic_load_explicit(v, memory_order_acquire);
		if (cur == want)
			return ipc_check_all(p->slot[!l->side], l->size, l->size, want);
		if (syscall(SYS_futex, futex_word(v), FUTEX_WAIT, (uint32_t)cur, NULL, NULL, 0) < 0 &&
		    errno != EAGAIN && !again())
			return -errno;
	}
}

/* --- the minimal SPSC ring ---------------------------------------------------------------- */

struct rawring {
	_Alignas(128) _Atomic uint64_t tail; /* producer */
	_Alignas(128) _Atomic uint64_t head; /* consumer */
	_Alignas(128) uint8_t data[];
};

struct ring_end {
	struct rawring *r;
	uint64_t pos, pub, other; /* own position, last published, last seen of the peer */
};

struct ring_priv {
	uint8_t *mem;    /* two rings, shared */
	size_t ring_bytes;
	uint64_t cap;
	struct ring_end out, in;
	uint8_t *buf;    /* private copy buffer (ring-copy) */
};

#define REC_HDR 8u
#define REC_PAD (1ull << 32)

static uint64_t rec_need(uint64_t len)
{
	return REC_HDR + ((len + 7) & ~(uint64_t)7);
}

/* The capacity both rings and shmkit channels use: room for four messages, at least 1 MiB. */
static uint64_t ring_capacity(size_t size)
{
	uint64_t want = 4 * rec_need(size), cap = 1u << 20;
	while (cap < want)
		cap <<= 1;
	return cap;
}

static int ring_setup(struct ipc_link *l)
{
	struct ring_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	p->cap = ring_capacity(l->size);
	p->ring_bytes = sizeof(struct rawring) + p->cap;
	p->mem = bench_shared_alloc(2 * p->ring_bytes);
	return p->mem ? 0 : seterr(l, -ENOMEM, "mmap");
}

static int ring_attach(struct ipc_link *l, int side)
{
	struct ring_priv *p = l->priv;
	struct rawring *r0 = (struct rawring *)(void *)p->mem;
	struct rawring *r1 = (struct rawring *)(void *)(p->mem + p->ring_bytes);
	p->out = (struct ring_end){.r = side == IPC_SIDE_A ? r0 : r1};
	p->in = (struct ring_end){.r = side == IPC_SIDE_A ? r1 : r0};
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void ring_detach(struct ipc_link *l)
{
	struct ring_priv *p = l->priv;
	free(p->buf);
	p->buf = NULL;
}

static void ring_teardown(struct ipc_link *l)
{
	struct ring_priv *p = l->priv;
	if (!p)
		return;
	bench_shared_free(p->mem, 2 * p->ring_bytes);
	free(p->buf);
	free(p);
	l->priv = NULL;
}

/* Reserves room for a record of `len` bytes; returns the payload address. */
static int ring_reserve(struct ring_priv *p, size_t len, uint8_t **payload)
{
	struct ring_end *e = &p->out;
	uint64_t need = rec_need(len), mask = p->cap - 1;
	uint64_t off = e->pos & mask;
	uint64_t pad = off + need > p->cap ? p->cap - off : 0;
	uint32_t spins = 0;
	while (e->pos + pad + need - e->other > p->cap) {
		if (e->pub != e->pos) { /* never wait on a consumer that cannot see our data */
			atomic_store_explicit(&e->r->tail, e->pos, memory_order_release);
			e->pub = e->pos;
		}
		/* Acquire: the consumer is done with the bytes it released. */
		e->other = atomic_load_explicit(&e->r->head, memory_order_acquire);
		if (e->pos + pad + need - e->other > p->cap && ipc_spin_pause(&spins))
			return -EINTR;
	}
	if (pad) {
		atomic_store_explicit((_Atomic uint64_t *)(void *)(e->r->data + off),
				      REC_PAD | (pad - REC_HDR), memory_order_relaxed);
		e->pos += pad;
		off = 0;
	}
	*payload = e->r->data + off + REC_HDR;
	return 0;
}

static void ring_commit(struct ring_priv *p, size_t len, unsigned flags)
{
	struct ring_end *e = &p->out;
	atomic_store_explicit((_Atomic uint64_t *)(void *)(e->r->data + (e->pos & (p->cap - 1))),
			      (uint64_t)len, memory_order_relaxed);
	e->pos += rec_need(len);
	if (!(flags & IPC_MORE)) {
		/* Release: publishes the record; pairs with the acquire in ring_next(). */
		atomic_store_explicit(&e->r->tail, e->pos, memory_order_release);
		e->pub = e->pos;
	}
}

/* Waits for the next record; returns its payload and length. */
static int ring_next(struct ring_priv *p, const uint8_t **payload, size_t *len)
{
	struct ring_end *e = &p->in;
	uint64_t mask = p->cap - 1;
	for (;;) {
		uint32_t spins = 0;
		while (e->other == e->pos) {
			if (e->pub != e->pos) { /* hand back batched releases before waiting */
				atomic_store_explicit(&e->r->head, e->pos, memory_order_release);
				e->pub = e->pos;
			}
			e->other = atomic_load_explicit(&e->r->tail, memory_order_acquire);
			if (e->other == e->pos && ipc_spin_pause(&spins))
				return -EINTR;
		}
		uint64_t off = e->pos & mask;
		uint64_t hdr = atomic_load_explicit((_Atomic uint64_t *)(void *)(e->r->data + off),
						    memory_order_relaxed);
		if (hdr & REC_PAD) {
			e->pos += p->cap - off;
			continue;
		}
		*payload = e->r->data + off + REC_HDR;
		*len = (size_t)hdr;
		return 0;
	}
}

static void ring_release(struct ring_priv *p, size_t len, unsigned flags)
{
	struct ring_end *e = &p->in;
	e->pos += rec_need(len);
	if (!(flags & IPC_MORE)) {
		/* Release: our reads of the record are done; pairs with ring_reserve(). */
		atomic_store_explicit(&e->r->head, e->pos, memory_order_release);
		e->pub = e->pos;
	}
}

static int ring_send(struct ipc_link *l, unsigned flags)
{
	struct ring_priv *p = l->priv;
	uint8_t *dst;
	int err = ring_reserve(p, l->size, &dst);
	if (err)
		return err;
	ipc_fill(dst, l->size, ++l->tx);
	ring_commit(p, l->size, flags);
	return 0;
}

static int ring_recv(struct ipc_link *l, unsigned flags)
{
	struct ring_priv *p = l->priv;
	const uint8_t *src;
	size_t len;
	int err = ring_next(p, &src, &len);
	if (err)
		return err;
	err = ipc_check_all(src, len, l->size, ++l->rx);
	ring_release(p, len, flags);
	return err;
}

/* --- the minimal in-band ring (ring-inband) ---------------------------------------------------
 * Same records; the header's bit 33 says "published". The producer keeps 8 bytes of room
 * beyond each record so it can always zero the next header slot first (stale bytes there
 * could look published); the padding header is stored after the record's at offset 0. */
#define REC_NOW (1ull << 33)

static int ring_ib_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct ring_priv *p = l->priv;
	struct ring_end *e = &p->out;
	uint64_t len = l->size, need = rec_need(len), mask = p->cap - 1;
	uint64_t off = e->pos & mask;
	uint64_t pad = off + need > p->cap ? p->cap - off : 0;
	uint32_t spins = 0;
	while (e->pos + pad + need + REC_HDR - e->other > p->cap) {
		/* Acquire: the consumer is done with the bytes it released. */
		e->other = atomic_load_explicit(&e->r->head, memory_order_acquire);
		if (e->pos + pad + need + REC_HDR - e->other > p->cap && ipc_spin_pause(&spins))
			return -EINTR;
	}
	uint64_t at = e->pos + pad;
	uint8_t *rec = e->r->data + (at & mask);
	ipc_fill(rec + REC_HDR, len, ++l->tx);
	atomic_store_explicit((_Atomic uint64_t *)(void *)(e->r->data + ((at + need) & mask)), 0,
			      memory_order_relaxed);
	/* Release: the payload and the zeroed slot before the header; pairs with ring_ib_recv(). */
	atomic_store_explicit((_Atomic uint64_t *)(void *)rec, REC_NOW | len, memory_order_release);
	if (pad)
		atomic_store_explicit((_Atomic uint64_t *)(void *)(e->r->data + off),
				      REC_NOW | REC_PAD | (pad - REC_HDR), memory_order_release);
	e->pos = at + need;
	return 0;
}

static int ring_ib_recv(struct ipc_link *l, unsigned flags)
{
	struct ring_priv *p = l->priv;
	struct ring_end *e = &p->in;
	uint64_t mask = p->cap - 1;
	for (;;) {
		uint64_t off = e->pos & mask;
		_Atomic uint64_t *w = (_Atomic uint64_t *)(void *)(e->r->data + off);
		uint32_t spins = 0;
		uint64_t hdr;
		while (!((hdr = atomic_load_explicit(w, memory_order_acquire)) & REC_NOW)) {
			__builtin_prefetch(e->r->data + ((off + 64) & mask & ~(uint64_t)63));
			if (ipc_spin_pause(&spins))
				return -EINTR;
		}
		if (hdr & REC_PAD) {
			e->pos += p->cap - off;
			continue;
		}
		int err = ipc_check_all(e->r->data + off + REC_HDR, (uint32_t)hdr, l->size, ++l->rx);
		e->pos += rec_need((uint32_t)hdr);
		if (!(flags & IPC_MORE))
			/* Release: our reads of the record are done; pairs with ring_ib_send(). */
			atomic_store_explicit(&e->r->head, e->pos, memory_order_release);
		return err;
	}
}

static int ring_copy_send(struct ipc_link *l, unsigned flags)
{
	struct ring_priv *p = l->priv;
	uint8_t *dst;
	int err = ring_reserve(p, l->size, &dst);
	if (err)
		return err;
	mark(p->buf, l->size, ++l->tx);
	ipc_copy_pieces(dst, p->buf, l->size, RING_PIECE);
	ring_commit(p, l->size, flags);
	return 0;
}

static int ring_copy_recv(struct ipc_link *l, unsigned flags)
{
	struct ring_priv *p = l->priv;
	const uint8_t *src;
	size_t len;
	int err = ring_next(p, &src, &len);
	if (err)
		return err;
	if (len > l->size)
		return -EBADMSG;
	ipc_copy_pieces(p->buf, src, len, RING_PIECE);
	ring_release(p, len, flags);
	return ipc_check(p->buf, len, l->size, ++l->rx);
}

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
	o->capacity = ring_capacity(l->size);
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
 * (docs/design.md): a row whose segments counted one fails. */
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
	o->capacity = ring_capacity(l->size);
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

/* --- descriptors: pipe, socketpairs, TCP ----------------------------------------------------- */

struct fd_priv {
	int fd[4];    /* pipe: ab[0..1], ba[2..3]; socket: fd[0] side A, fd[1] side B */
	int wfd, rfd; /* this side's */
	uint8_t *buf;
	int seqpacket;
};

static struct fd_priv *fd_priv_new(struct ipc_link *l)
{
	struct fd_priv *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	for (int i = 0; i < 4; i++)
		p->fd[i] = -1;
	p->wfd = p->rfd = -1;
	l->priv = p;
	return p;
}

static int pipe_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	if (pipe2(p->fd, O_CLOEXEC) < 0 || pipe2(p->fd + 2, O_CLOEXEC) < 0)
		return seterr(l, -errno, "pipe2");
	return 0;
}

static int pipe_attach(struct ipc_link *l, int side)
{
	struct fd_priv *p = l->priv;
	/* A writes ab (fd[1]) and reads ba (fd[2]); B reads ab (fd[0]) and writes ba (fd[3]). */
	if (side == IPC_SIDE_A) {
		p->wfd = p->fd[1];
		p->rfd = p->fd[2];
		close_fd(&p->fd[0]);
		close_fd(&p->fd[3]);
	} else {
		p->wfd = p->fd[3];
		p->rfd = p->fd[0];
		close_fd(&p->fd[1]);
		close_fd(&p->fd[2]);
	}
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void fd_detach(struct ipc_link *l)
{
	struct fd_priv *p = l->priv;
	for (int i = 0; i < 4; i++)
		close_fd(&p->fd[i]);
	p->wfd = p->rfd = -1;
	free(p->buf);
	p->buf = NULL;
}

static void fd_teardown(struct ipc_link *l)
{
	struct fd_priv *p = l->priv;
	if (!p)
		return;
	fd_detach(l);
	free(p);
	l->priv = NULL;
}

static int fd_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct fd_priv *p = l->priv;
	mark(p->buf, l->size, ++l->tx);
	if (!p->seqpacket)
		return write_all(p->wfd, p->buf, l->size);
	for (size_t off = 0; off < l->size;) {
		size_t n = l->size - off < SEQPACKET_PIECE ? l->size - off : SEQPACKET_PIECE;
		ssize_t w = send(p->wfd, p->buf + off, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (again())
				continue;
			return -errno;
		}
		if ((size_t)w != n)
			return -EMSGSIZE;
		off += n;
	}
	return 0;
}

static int fd_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct fd_priv *p = l->priv;
	int err = 0;
	if (!p->seqpacket) {
		err = read_all(p->rfd, p->buf, l->size);
	} else {
		for (size_t off = 0; off < l->size && !err;) {
			ssize_t r = recv(p->rfd, p->buf + off, l->size - off, 0);
			if (r < 0 && again())
				continue;
			if (r < 0)
				err = -errno;
			else if (r == 0)
				err = -EPIPE;
			else
				off += (size_t)r;
		}
	}
	return err ? err : ipc_check(p->buf, l->size, l->size, ++l->rx);
}

static int sock_attach(struct ipc_link *l, int side)
{
	struct fd_priv *p = l->priv;
	p->wfd = p->rfd = p->fd[side];
	close_fd(&p->fd[!side]);
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static int unix_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	p->seqpacket = strcmp(l->mech->mode, "seqpacket") == 0;
	int type = p->seqpacket ? SOCK_SEQPACKET : SOCK_STREAM;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, p->fd) < 0)
		return seterr(l, -errno, "socketpair");
	return 0;
}

static int tcp_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int one = 1, err = 0;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return seterr(l, -errno, "socket");
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		err = seterr(l, -errno, "bind/listen on 127.0.0.1");
		goto out;
	}
	p->fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd[0] < 0 || connect(p->fd[0], (struct sockaddr *)&a, sizeof a) < 0) {
		err = seterr(l, -errno, "connect to 127.0.0.1");
		goto out;
	}
	p->fd[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->fd[1] < 0) {
		err = seterr(l, -errno, "accept");
		goto out;
	}
	for (int i = 0; i < 2; i++)
		if (setsockopt(p->fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
			err = seterr(l, -errno, "TCP_NODELAY");
			goto out;
		}
out:
	close(lfd);
	return err;
}

/* --- message queues ------------------------------------------------------------------------ */

static long read_sysctl(const char *path, long dflt)
{
	char b[64];
	long v = dflt;
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(b, sizeof b, f))
			v = strtol(b, NULL, 10);
		fclose(f);
	}
	return v > 0 ? v : dflt;
}

struct mq_priv {
	mqd_t q[2];      /* q[0]: A -> B, q[1]: B -> A */
	int sysv[2];     /* System V queue ids */
	int system_v;    /* sysv-mq: the System V queues, else the POSIX ones */
	size_t piece;    /* largest message the queue takes */
	uint8_t *buf;    /* POSIX: message; System V: long mtype + message */
};

static struct mq_priv *mq_priv_new(struct ipc_link *l)
{
	struct mq_priv *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->q[0] = p->q[1] = (mqd_t)-1;
	p->sysv[0] = p->sysv[1] = -1;
	l->priv = p;
	return p;
}

static int pmq_setup(struct ipc_link *l)
{
	static unsigned counter;
	struct mq_priv *p = mq_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	long max = read_sysctl("/proc/sys/fs/mqueue/msgsize_max", 8192);
	p->piece = l->size < (size_t)max ? l->size : (size_t)max;
	struct mq_attr attr = {.mq_maxmsg = 8, .mq_msgsize = (long)p->piece};
	for (int i = 0; i < 2; i++) {
		char name[64];
		snprintf(name, sizeof name, "/shmkit-bench.%d.%u", (int)getpid(), counter++);
		p->q[i] = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
		if (p->q[i] == (mqd_t)-1)
			return seterr(l, -errno, "mq_open");
		/* Both processes use the descriptor inherited through fork(): the name can go. */
		mq_unlink(name);
	}
	return 0;
}

static int mq_attach(struct ipc_link *l, int side)
{
	(void)side;
	struct mq_priv *p = l->priv;
	p->buf = private_buf(l->size + sizeof(long));
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void mq_detach(struct ipc_link *l)
{
	struct mq_priv *p = l->priv;
	for (int i = 0; i < 2; i++)
		if (p->q[i] != (mqd_t)-1) {
			mq_close(p->q[i]);
			p->q[i] = (mqd_t)-1;
		}
	free(p->buf);
	p->buf = NULL;
}

static void mq_teardown(struct ipc_link *l)
{
	struct mq_priv *p = l->priv;
	if (!p)
		return;
	mq_detach(l);
	for (int i = 0; i < 2; i++)
		if (p->sysv[i] >= 0)
			msgctl(p->sysv[i], IPC_RMID, NULL);
	free(p);
	l->priv = NULL;
}

static int smq_setup(struct ipc_link *l)
{
	struct mq_priv *p = mq_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	p->system_v = 1;
	long max = read_sysctl("/proc/sys/kernel/msgmax", 8192);
	p->piece = l->size < (size_t)max ? l->size : (size_t)max;
	for (int i = 0; i < 2; i++) {
		p->sysv[i] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
		if (p->sysv[i] < 0)
			return seterr(l, -errno, "msgget");
	}
	return 0;
}

/* Where the message starts in p->buf. */
static uint8_t *mq_msg(const struct mq_priv *p)
{
	return p->system_v ? p->buf + sizeof(long) : p->buf;
}

/* Sends message n in pieces of at most p->piece bytes, each marked as message n. */
static int mq_send_msg(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct mq_priv *p = l->priv;
	uint64_t n = ++l->tx;
	if (p->system_v)
		*(long *)(void *)p->buf = 1; /* mtype */
	for (size_t off = 0; off < l->size;) {
		size_t len = l->size - off < p->piece ? l->size - off : p->piece;
		mark(mq_msg(p), len, n);
		int r = p->system_v ? msgsnd(p->sysv[l->side], p->buf, len, 0)
				    : mq_send(p->q[l->side], (const char *)p->buf, len, 0);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		off += len;
	}
	return 0;
}

static int mq_recv_msg(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct mq_priv *p = l->priv;
	uint64_t n = ++l->rx;
	for (size_t off = 0; off < l->size;) {
		ssize_t r = p->system_v ? msgrcv(p->sysv[!l->side], p->buf, p->piece, 0, 0)
					: mq_receive(p->q[!l->side], (char *)p->buf, p->piece, NULL);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		if (r == 0 || ipc_check(mq_msg(p), (size_t)r, (size_t)r, n))
			return -EBADMSG;
		off += (size_t)r;
		if (off > l->size)
			return -EBADMSG;
	}
	return 0;
}

/* --- eventfd ---------------------------------------------------------------------------- */

struct efd_priv {
	uint8_t *mem;      /* shared: 2 directions x EVENTFD_SLOTS x size */
	size_t mem_bytes;
	int data[2], space[2]; /* per direction: full slots, free slots (semaphore mode) */
};

static int efd_setup(struct ipc_link *l)
{
	struct efd_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	p->data[0] = p->data[1] = p->space[0] = p->space[1] = -1;
	p->mem_bytes = 2 * EVENTFD_SLOTS * ((l->size + 63) & ~(size_t)63);
	p->mem = bench_shared_alloc(p->mem_bytes);
	if (!p->mem)
		return seterr(l, -ENOMEM, "mmap");
	for (int i = 0; i < 2; i++) {
		p->data[i] = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
		p->space[i] = eventfd(EVENTFD_SLOTS, EFD_SEMAPHORE | EFD_CLOEXEC);
		if (p->data[i] < 0 || p->space[i] < 0)
			return seterr(l, -errno, "eventfd");
	}
	return 0;
}

static void efd_detach(struct ipc_link *l)
{
	struct efd_priv *p = l->priv;
	for (int i = 0; i < 2; i++) {
		close_fd(&p->data[i]);
		close_fd(&p->space[i]);
	}
}

static void efd_teardown(struct ipc_link *l)
{
	struct efd_priv *p = l->priv;
	if (!p)
		return;
	efd_detach(l);
	bench_shared_free(p->mem, p->mem_bytes);
	free(p);
	l->priv = NULL;
}

static uint8_t *efd_slot(struct ipc_link *l, int dir, uint64_t n)
{
	struct efd_priv *p = l->priv;
	size_t stride = (l->size + 63) & ~(size_t)63;
	return p->mem + ((size_t)dir * EVENTFD_SLOTS + (size_t)(n % EVENTFD_SLOTS)) * stride;
}

static int efd_take(int fd)
{
	uint64_t v;
	return read_all(fd, &v, sizeof v);
}

static int efd_give(int fd)
{
	uint64_t one = 1;
	return write_all(fd, &one, sizeof one);
}

static int efd_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct efd_priv *p = l->priv;
	int d = l->side;
	int err = efd_take(p->space[d]);
	if (err)
		return err;
	uint64_t n = ++l->tx;
	ipc_fill(efd_slot(l, d, n), l->size, n);
	return efd_give(p->data[d]);
}

static int efd_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct efd_priv *p = l->priv;
	int d = !l->side;
	int err = efd_take(p->data[d]);
	if (err)
		return err;
	uint64_t n = ++l->rx;
	err = ipc_check_all(efd_slot(l, d, n), l->size, l->size, n);
	int e2 = efd_give(p->space[d]);
	return err ? err : e2;
}

/* --- the table --------------------------------------------------------------------------- */

#define LS (IPC_CAP_LATENCY | IPC_CAP_STREAM)
#define DEF IPC_CAP_DEFAULT

static const struct ipc_mech m_floor = {
	"floor", "floor", "spin", "cache-line ping-pong (floor)", IPC_CAP_LATENCY | IPC_CAP_NOSIZE | DEF, 0,
	words_setup, attach_nothing, floor_send, floor_recv, words_detach, words_teardown};
static const struct ipc_mech m_futex = {
	"futex", "futex", "blocking", "raw futex ping-pong", IPC_CAP_LATENCY | DEF, 0,
	futex_setup, attach_nothing, futex_send, futex_recv, words_detach, futex_teardown};
static const struct ipc_mech m_ring = {
	"ring", "ring", "spin", "raw SPSC ring, zero copy", LS | DEF, 0,
	ring_setup, ring_attach, ring_send, ring_recv, ring_detach, ring_teardown};
static const struct ipc_mech m_ring_inband = {
	"ring-inband", "ring", "spin-inband", "raw SPSC ring, in band, zero copy", LS, 0,
	ring_setup, ring_attach, ring_ib_send, ring_ib_recv, ring_detach, ring_teardown};
static const struct ipc_mech m_ring_copy = {
	"ring-copy", "ring", "spin-copy", "raw SPSC ring, copy in 512 KiB pieces", LS, 0,
	ring_setup, ring_attach, ring_copy_send, ring_copy_recv, ring_detach, ring_teardown};
static const struct ipc_mech m_ring_batch = {
	"ring-batch", "ring", "spin-batch", "raw SPSC ring, zero copy, publish every 16", IPC_CAP_STREAM,
	BATCH, ring_setup, ring_attach, ring_send, ring_recv, ring_detach, ring_teardown};
static const struct ipc_mech m_shmkit_spin = {
	"shmkit-spin", "shmkit", "spin", "shmkit stream, spin (loan/commit)", LS | DEF, 0,
	chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
static const struct ipc_mech m_shmkit_block = {
	"shmkit-block", "shmkit", "blocking", "shmkit stream, blocking (NO_SPIN)", LS | DEF, 0,
	chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
static const struct ipc_mech m_shmkit_copy = {
	"shmkit-spin-copy", "shmkit", "spin-copy", "shmkit stream, spin, send/recv (copy)", LS, 0,
	chan_setup, chan_attach, chan_copy_send, chan_copy_recv, chan_detach, chan_teardown, chan_verify};
static const struct ipc_mech m_shmkit_batch = {
	"shmkit-spin-batch", "shmkit", "spin-batch", "shmkit stream, spin, SHMKIT_CHAN_MORE x16",
	IPC_CAP_STREAM, BATCH, chan_setup, chan_attach, chan_send, chan_recv, chan_detach, chan_teardown, chan_verify};
static const struct ipc_mech m_shmkit_pubsub = {
	"shmkit-pubsub", "shmkit-pubsub", "spin", "shmkit pub/sub, 1 subscriber, spin", LS | DEF, 0,
	ps_setup, ps_attach, ps_send, ps_recv, ps_detach, ps_teardown, ps_verify};
static const struct ipc_mech m_shmkit_queue = {
	"shmkit-queue", "shmkit-queue", "spin", "shmkit work queue, 1 x 1, spin", LS | DEF, 0,
	q_setup, q_attach, q_send, q_recv, q_detach, q_teardown, q_verify};
static const struct ipc_mech m_pipe = {
	"pipe", "pipe", "blocking", "pipe", LS | DEF, 0,
	pipe_setup, pipe_attach, fd_send, fd_recv, fd_detach, fd_teardown};
static const struct ipc_mech m_unix_stream = {
	"unix-stream", "unix", "stream", "UNIX socket, stream", LS | DEF, 0,
	unix_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};
static const struct ipc_mech m_unix_seqpacket = {
	"unix-seqpacket", "unix", "seqpacket", "UNIX socket, seqpacket", LS | DEF, 0,
	unix_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};
static const struct ipc_mech m_posix_mq = {
	"posix-mq", "posix-mq", "blocking", "POSIX message queue", LS | DEF, 0,
	pmq_setup, mq_attach, mq_send_msg, mq_recv_msg, mq_detach, mq_teardown};
static const struct ipc_mech m_sysv_mq = {
	"sysv-mq", "sysv-mq", "blocking", "System V message queue", LS | DEF, 0,
	smq_setup, mq_attach, mq_send_msg, mq_recv_msg, mq_detach, mq_teardown};
static const struct ipc_mech m_eventfd = {
	"eventfd", "eventfd", "blocking", "shared memory + eventfd", LS | DEF, 0,
	efd_setup, attach_nothing, efd_send, efd_recv, efd_detach, efd_teardown};
static const struct ipc_mech m_tcp = {
	"tcp", "tcp", "blocking", "TCP loopback, TCP_NODELAY", LS | DEF, 0,
	tcp_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};

const struct ipc_mech *const ipc_mechs[] = {
	&m_floor,          &m_futex,       &m_ring,        &m_ring_inband,    &m_ring_copy,      &m_ring_batch,
	&m_shmkit_spin,    &m_shmkit_block, &m_shmkit_copy, &m_shmkit_batch,  &m_shmkit_pubsub,
	&m_shmkit_queue,   &m_pipe,
	&m_unix_stream,    &m_unix_seqpacket, &m_posix_mq, &m_sysv_mq,        &m_eventfd,
	&m_tcp,            NULL,
};

const struct ipc_mech *ipc_find(const struct ipc_mech *const *list, const char *name)
{
	for (const struct ipc_mech *const *m = list ? list : ipc_mechs; *m; m++)
		if (strcmp((*m)->name, name) == 0)
			return *m;
	return NULL;
}
