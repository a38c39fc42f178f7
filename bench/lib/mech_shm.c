/* shmkit benchmarks — mechanisms on plain shared memory: the floor, futex, the minimal rings
 * (mech.c lists every mechanism; mech.h is the interface). */
#include "mech_int.h"

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
uint64_t ipc_ring_capacity(size_t size)
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
	p->cap = ipc_ring_capacity(l->size);
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
	shmkit_copy(dst, p->buf, l->size);
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
	shmkit_copy(p->buf, src, len);
	ring_release(p, len, flags);
	return ipc_check(p->buf, len, l->size, ++l->rx);
}

const struct ipc_mech ipc_mech_floor = {
	"floor", "floor", "spin", "cache-line ping-pong (floor)", IPC_CAP_LATENCY | IPC_CAP_NOSIZE | DEF, 0,
	words_setup, attach_nothing, floor_send, floor_recv, words_detach, words_teardown};
const struct ipc_mech ipc_mech_futex = {
	"futex", "futex", "blocking", "raw futex ping-pong", IPC_CAP_LATENCY | DEF, 0,
	futex_setup, attach_nothing, futex_send, futex_recv, words_detach, futex_teardown};
const struct ipc_mech ipc_mech_ring = {
	"ring", "ring", "spin", "raw SPSC ring, zero copy", LS | DEF, 0,
	ring_setup, ring_attach, ring_send, ring_recv, ring_detach, ring_teardown};
const struct ipc_mech ipc_mech_ring_inband = {
	"ring-inband", "ring", "spin-inband", "raw SPSC ring, in band, zero copy", LS, 0,
	ring_setup, ring_attach, ring_ib_send, ring_ib_recv, ring_detach, ring_teardown};
const struct ipc_mech ipc_mech_ring_copy = {
	"ring-copy", "ring", "spin-copy", "raw SPSC ring, copy (shmkit_copy)", LS, 0,
	ring_setup, ring_attach, ring_copy_send, ring_copy_recv, ring_detach, ring_teardown};
const struct ipc_mech ipc_mech_ring_batch = {
	"ring-batch", "ring", "spin-batch", "raw SPSC ring, zero copy, publish every 16", IPC_CAP_STREAM,
	BATCH, ring_setup, ring_attach, ring_send, ring_recv, ring_detach, ring_teardown};
