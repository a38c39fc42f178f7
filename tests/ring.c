/* Unit tests for src/ring.c: the record ring alone, in one process (plus a threaded run,
 * which gives TSan a view of the memory ordering). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"
#include "testutil.h"

#define CAP 4096u
#define MAXMSG (CAP / 2 - 8)

struct rig {
	uint8_t *mem;
	_Atomic uint64_t tail, head;
	struct shmkit__ring prod, cons;
};

static void rig_init(struct rig *g, uint64_t cap, uint64_t max_msg, uint64_t start)
{
	g->mem = aligned_alloc(128, cap);
	ck_assert_ptr_nonnull(g->mem);
	memset(g->mem, 0xee, cap);
	atomic_init(&g->tail, start);
	atomic_init(&g->head, start);
	shmkit__ring_view(&g->prod, g->mem, cap, max_msg, &g->tail, &g->head);
	shmkit__ring_view(&g->cons, g->mem, cap, max_msg, &g->tail, &g->head);
	ck_assert_int_eq(shmkit__ring_attach_producer(&g->prod), 0);
	ck_assert_int_eq(shmkit__ring_attach_consumer(&g->cons), 0);
}

/* The published tail's position (its low bits are flags: SHMKIT__TAIL_CLEAN). */
static uint64_t tail_pos(struct rig *g)
{
	return atomic_load(&g->tail) & ~(uint64_t)7;
}

static void rig_free(struct rig *g)
{
	free(g->mem);
}

static void fill(uint8_t *p, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7);
}

static void check_fill(const uint8_t *p, uint64_t len, uint64_t seed)
{
	for (uint64_t i = 0; i < len; i++)
		T_CHECK(p[i] == (uint8_t)(seed * 131 + i * 7), "byte %llu", (unsigned long long)i);
}

static void send1(struct rig *g, uint64_t len, uint64_t seed)
{
	void *p;
	ck_assert_int_eq(shmkit__ring_loan(&g->prod, len, &p), 0);
	ck_assert_uint_eq((uintptr_t)p % 8, 0);
	ck_assert((const uint8_t *)(p) >= (const uint8_t *)(g->mem));
	ck_assert((const uint8_t *)((uint8_t *)p + len) <= (const uint8_t *)(g->mem + g->prod.cap));
	fill(p, len, seed);
	ck_assert_int_eq(shmkit__ring_commit(&g->prod, len), 0);
	ck_assert(shmkit__ring_publish_tail(&g->prod));
}

static void recv1(struct rig *g, uint64_t len, uint64_t seed)
{
	const void *p;
	uint64_t n;
	ck_assert_int_eq(shmkit__ring_peek(&g->cons, &p, &n), 0);
	ck_assert_uint_eq(n, len);
	check_fill(p, n, seed);
	/* Peeking again without a release returns the same message. */
	const void *p2;
	uint64_t n2;
	ck_assert_int_eq(shmkit__ring_peek(&g->cons, &p2, &n2), 0);
	ck_assert_ptr_eq(p, p2);
	ck_assert_uint_eq(n2, n);
	ck_assert_int_eq(shmkit__ring_release(&g->cons), 0);
	ck_assert(shmkit__ring_publish_head(&g->cons));
}

START_TEST(test_geometry)
{
	ck_assert(shmkit__ring_geometry_ok(4096, 2040));
	ck_assert(!shmkit__ring_geometry_ok(4096, 2041));
	ck_assert(!shmkit__ring_geometry_ok(2048, 100));
	ck_assert(!shmkit__ring_geometry_ok(4096 + 8, 100));
	ck_assert(shmkit__ring_geometry_ok(1u << 20, 0));
	ck_assert(!shmkit__ring_geometry_ok(SHMKIT__RING_MAX_CAP * 2, 0));
	ck_assert_uint_eq(shmkit__ring_need(0), 8);
	ck_assert_uint_eq(shmkit__ring_need(1), 16);
	ck_assert_uint_eq(shmkit__ring_need(8), 16);
	ck_assert_uint_eq(shmkit__ring_need(9), 24);
}
END_TEST

/* Every starting offset, every interesting size: records wrap at every possible place. */
START_TEST(test_wrap_every_offset)
{
	static const uint64_t sizes[] = {0, 1, 7, 8, 9, 100, 1000, 2000, MAXMSG};
	for (uint64_t start = 0; start < 2 * CAP; start += 8) {
		struct rig g;
		rig_init(&g, CAP, MAXMSG, start + ((uint64_t)1 << 40));
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			send1(&g, sizes[i], start + i);
			recv1(&g, sizes[i], start + i);
		}
		/* Two messages in flight across the wrap. */
		send1(&g, 1500, 1);
		send1(&g, 1500, 2);
		recv1(&g, 1500, 1);
		recv1(&g, 1500, 2);
		const void *p;
		uint64_t n;
		ck_assert_int_eq(shmkit__ring_peek(&g.cons, &p, &n), -EAGAIN);
		rig_free(&g);
	}
}
END_TEST

START_TEST(test_full_and_empty)
{
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	const void *cp;
	uint64_t n;
	ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), -EAGAIN);
	/* 24-byte records (16 payload): CAP / 24 fit, then full. */
	int sent = 0;
	void *p;
	while (shmkit__ring_loan(&g.prod, 16, &p) == 0) {
		fill(p, 16, (uint64_t)sent);
		ck_assert_int_eq(shmkit__ring_commit(&g.prod, 16), 0);
		sent++;
	}
	ck_assert_int_eq(sent, CAP / 24);
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 16, &p), -EAGAIN);
	/* Nothing visible before the publish. */
	ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), -EAGAIN);
	ck_assert(shmkit__ring_publish_tail(&g.prod));
	ck_assert(!shmkit__ring_publish_tail(&g.prod));
	/* One release frees one record; the producer sees it after the consumer publishes. */
	recv1(&g, 16, 0);
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 16, &p), 0);
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 17, &p), -EAGAIN); /* 32 bytes: no */
	for (int i = 1; i < sent; i++)
		recv1(&g, 16, (uint64_t)i);
	ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), -EAGAIN);
	ck_assert_uint_eq(tail_pos(&g) - atomic_load(&g.head), 0);
	rig_free(&g);
}
END_TEST

START_TEST(test_limits_and_misuse)
{
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	void *p;
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, MAXMSG + 1, &p), -EMSGSIZE);
	ck_assert_int_eq(shmkit__ring_commit(&g.prod, 0), -EINVAL); /* no loan */
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 64, &p), 0);
	ck_assert_int_eq(shmkit__ring_commit(&g.prod, 65), -EINVAL); /* more than loaned */
	/* A new loan replaces the pending one. */
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 32, &p), 0);
	ck_assert_int_eq(shmkit__ring_commit(&g.prod, 40), -EINVAL);
	ck_assert_int_eq(shmkit__ring_commit(&g.prod, 10), 0); /* shorter than loaned: fine */
	ck_assert_int_eq(shmkit__ring_release(&g.cons), -EINVAL); /* nothing peeked */
	shmkit__ring_publish_tail(&g.prod);
	const void *cp;
	uint64_t n;
	ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), 0);
	ck_assert_uint_eq(n, 10);
	/* A max-size message fits an empty ring at any offset (records are <= cap / 2). */
	for (uint64_t start = 0; start < CAP; start += 8) {
		struct rig h;
		rig_init(&h, CAP, MAXMSG, start);
		send1(&h, MAXMSG, start);
		recv1(&h, MAXMSG, start);
		send1(&h, MAXMSG, start + 1);
		recv1(&h, MAXMSG, start + 1);
		rig_free(&h);
	}
	rig_free(&g);
}
END_TEST

START_TEST(test_batch)
{
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	for (uint64_t i = 0; i < 20; i++) {
		void *p;
		ck_assert_int_eq(shmkit__ring_loan(&g.prod, i * 10, &p), 0);
		fill(p, i * 10, i);
		ck_assert_int_eq(shmkit__ring_commit(&g.prod, i * 10), 0);
	}
	const void *cp;
	uint64_t n;
	ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), -EAGAIN);
	ck_assert(shmkit__ring_publish_tail(&g.prod));
	for (uint64_t i = 0; i < 20; i++) {
		ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), 0);
		ck_assert_uint_eq(n, i * 10);
		check_fill(cp, n, i);
		ck_assert_int_eq(shmkit__ring_release(&g.cons), 0);
	}
	ck_assert_uint_eq(g.cons.msgs, 20);
	ck_assert_uint_eq(atomic_load(&g.head), 0); /* nothing published yet */
	ck_assert(shmkit__ring_publish_head(&g.cons));
	ck_assert_uint_eq(atomic_load(&g.head), tail_pos(&g));
	rig_free(&g);
}
END_TEST

/* Writes a raw record header at ring offset `off`. */
static void put_hdr(struct rig *g, uint64_t off, uint32_t len, uint32_t flags)
{
	uint64_t w = (uint64_t)len | (uint64_t)flags << 32;
	memcpy(g->mem + off, &w, 8);
}

static int peek_rc(struct rig *g)
{
	const void *p;
	uint64_t n;
	g->cons.peek_need = 0;
	return shmkit__ring_peek(&g->cons, &p, &n);
}

START_TEST(test_corrupt_positions_and_records)
{
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	/* Tail not a multiple of 8, too far ahead, behind the consumer. */
	atomic_store(&g.tail, 12);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	atomic_store(&g.tail, CAP + 8);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	g.cons.pos = g.cons.pub = g.cons.other = 64;
	atomic_store(&g.tail, 56);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	g.cons.pos = g.cons.pub = g.cons.other = 0;

	/* Record longer than max, unknown flags, running past the published tail, past the end
	 * of the ring. */
	atomic_store(&g.tail, 64);
	put_hdr(&g, 0, MAXMSG + 1, 0);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	put_hdr(&g, 0, 8, 8);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	put_hdr(&g, 0, 8, 0x100 | SHMKIT__REC_NOW);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	put_hdr(&g, 0, 100, 0);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	put_hdr(&g, 0, 56, 0);
	ck_assert_int_eq(peek_rc(&g), 0);

	/* PAD at offset 0; PAD of the wrong length; two PADs in a row. */
	put_hdr(&g, 0, CAP - 8, SHMKIT__REC_PAD);
	atomic_store(&g.tail, CAP);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	g.cons.pos = g.cons.pub = g.cons.other = CAP - 64;
	atomic_store(&g.head, CAP - 64);
	atomic_store(&g.tail, CAP + 64);
	put_hdr(&g, CAP - 64, 40, SHMKIT__REC_PAD);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	g.cons.pos = g.cons.other = CAP - 64;
	put_hdr(&g, CAP - 64, 56, SHMKIT__REC_PAD);
	put_hdr(&g, 0, CAP - 8, SHMKIT__REC_PAD);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	g.cons.pos = g.cons.other = CAP - 64;
	put_hdr(&g, 0, 8, 0);
	ck_assert_int_eq(peek_rc(&g), 0); /* the valid version of the same wrap */

	/* The producer validates the consumer's position when it must re-read it. */
	struct rig h;
	rig_init(&h, CAP, MAXMSG, 0);
	void *p;
	while (shmkit__ring_loan(&h.prod, 1000, &p) == 0)
		shmkit__ring_commit(&h.prod, 1000);
	atomic_store(&h.head, 3);
	ck_assert_int_eq(shmkit__ring_loan(&h.prod, 1000, &p), -EBADMSG);
	atomic_store(&h.head, h.prod.pos + 8); /* ahead of the producer */
	ck_assert_int_eq(shmkit__ring_loan(&h.prod, 1000, &p), -EBADMSG);
	/* Attaching to corrupt positions fails: a head more than a ring ahead of the tail
	 * (a head ahead by less is a consumer that took a record in band), a tail with low
	 * bits other than SHMKIT__TAIL_CLEAN. */
	atomic_store(&h.tail, 8);
	atomic_store(&h.head, 16 + CAP);
	ck_assert_int_eq(shmkit__ring_attach_producer(&h.prod), -EBADMSG);
	ck_assert_int_eq(shmkit__ring_attach_consumer(&h.cons), -EBADMSG);
	atomic_store(&h.tail, 8 | 2);
	atomic_store(&h.head, 8);
	ck_assert_int_eq(shmkit__ring_attach_producer(&h.prod), -EBADMSG);
	ck_assert_int_eq(shmkit__ring_attach_consumer(&h.cons), -EBADMSG);
	rig_free(&h);
	rig_free(&g);
}
END_TEST

/* Commits without storing the tail: visible in band only. */
static void send_inband(struct rig *g, uint64_t len, uint64_t seed, bool now)
{
	void *p;
	ck_assert_int_eq(shmkit__ring_loan(&g->prod, len, &p), 0);
	fill(p, len, seed);
	ck_assert_int_eq(shmkit__ring_commit_ex(&g->prod, len, now), 0);
}

/* In-band publication: after a first record that came with the tail, the consumer takes
 * REC_NOW records the producer has not published yet, across the wrap at every offset;
 * a held (MORE) record waits for the tail. */
START_TEST(test_inband)
{
	static const uint64_t sizes[] = {0, 1, 56, 64, 100, 1500, MAXMSG};
	for (uint64_t start = 0; start < 2 * CAP; start += 8) {
		struct rig g;
		rig_init(&g, CAP, MAXMSG, start);
		const void *cp;
		uint64_t n;
		/* Just attached: nothing in band until a record said its next slot is clean. */
		send_inband(&g, 8, 1, true);
		ck_assert_int_eq(peek_rc(&g), -EAGAIN);
		ck_assert(shmkit__ring_publish_tail(&g.prod));
		recv1(&g, 8, 1);
		ck_assert(g.cons.inband);
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			send_inband(&g, sizes[i], start + i, true);
			recv1(&g, sizes[i], start + i);
			ck_assert_uint_lt(tail_pos(&g), g.cons.pos); /* ahead of the tail */
			/* The tail catching up (behind us, ahead of what we saw) is fine. */
			shmkit__ring_publish_tail(&g.prod);
			ck_assert_int_eq(peek_rc(&g), -EAGAIN);
		}
		/* Held: not before the tail. */
		send_inband(&g, 40, 7, false);
		ck_assert_int_eq(shmkit__ring_peek(&g.cons, &cp, &n), -EAGAIN);
		ck_assert(!shmkit__ring_has_data(&g.cons));
		ck_assert(shmkit__ring_publish_tail(&g.prod));
		ck_assert(shmkit__ring_has_data(&g.cons));
		recv1(&g, 40, 7);
		/* Two in band, then the tail: each exactly once. */
		send_inband(&g, 1500, 8, true);
		send_inband(&g, 1500, 9, true);
		ck_assert(shmkit__ring_has_data(&g.cons));
		recv1(&g, 1500, 8);
		shmkit__ring_publish_tail(&g.prod);
		recv1(&g, 1500, 9);
		ck_assert_int_eq(peek_rc(&g), -EAGAIN);
		rig_free(&g);
	}
}
END_TEST

/* The producer zeroes the next header slot only when it is free space; a record without
 * REC_NEXT0 sends the consumer back to the tail. A tail behind the last one seen is
 * corrupt. */
START_TEST(test_inband_edges)
{
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	send1(&g, 16, 0);
	recv1(&g, 16, 0);
	/* Fill: 24-byte records from position 24; the one that would start at offset 4088
	 * pads (8 bytes) and goes to offset 0, and then the ring is exactly full. */
	void *p;
	int sent = 0;
	while (shmkit__ring_loan(&g.prod, 16, &p) == 0) {
		fill(p, 16, (uint64_t)sent + 1);
		ck_assert_int_eq(shmkit__ring_commit(&g.prod, 16), 0);
		ck_assert_int_eq(g.prod.clean, g.prod.pos + 8 - 24 <= CAP);
		sent++;
	}
	ck_assert_uint_eq(g.prod.pos, 24 + CAP);
	ck_assert_int_eq(shmkit__ring_loan(&g.prod, 0, &p), -EAGAIN);
	uint64_t last = g.prod.pos - 24; /* the last record: no free slot after it */
	uint64_t hdr = atomic_load((_Atomic uint64_t *)(void *)(g.mem + (last & (CAP - 1))));
	ck_assert_uint_eq(hdr >> 32, SHMKIT__REC_NOW);
	ck_assert(!g.prod.clean);
	for (int i = 0; i < sent; i++)
		recv1(&g, 16, (uint64_t)i + 1); /* all in band */
	ck_assert(!g.cons.inband);
	/* The next record is there in band, but its slot was not known clean: the tail. */
	send_inband(&g, 16, 99, true);
	ck_assert_int_eq(peek_rc(&g), -EAGAIN);
	shmkit__ring_publish_tail(&g.prod);
	recv1(&g, 16, 99);
	ck_assert(g.cons.inband);

	/* A tail behind the last one this consumer saw: -EBADMSG. */
	uint64_t seen = g.cons.other;
	atomic_store(&g.tail, seen - 8);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	/* Low bits other than the clean bit: -EBADMSG. */
	atomic_store(&g.tail, seen | 2);
	ck_assert_int_eq(peek_rc(&g), -EBADMSG);
	atomic_store(&g.tail, seen | SHMKIT__TAIL_CLEAN);
	ck_assert_int_eq(peek_rc(&g), -EAGAIN);
	rig_free(&g);

	/* A hostile ring of in-band records that chain forever: the consumer stops within a
	 * ring of the last tail it saw. */
	rig_init(&g, CAP, MAXMSG, 0);
	for (uint64_t off = 0; off < CAP; off += 64)
		put_hdr(&g, off, 56, SHMKIT__REC_NOW | SHMKIT__REC_NEXT0);
	g.cons.inband = true;
	int taken = 0, rc;
	const void *cp;
	uint64_t n;
	while ((rc = shmkit__ring_peek(&g.cons, &cp, &n)) == 0 && taken < 1000) {
		shmkit__ring_release(&g.cons);
		taken++;
	}
	ck_assert_int_eq(rc, -EAGAIN);
	ck_assert_int_le(taken, CAP / 64 + 1);
	rig_free(&g);
}
END_TEST

/* A producer that dies between a record's header (in band) and the tail: the next one
 * goes on after that record, whether the consumer took it already or not; it does not
 * adopt a held record or a header in a slot that was not clean. */
START_TEST(test_inband_takeover)
{
	for (int taken = 0; taken < 2; taken++) {
		for (uint64_t start = 0; start < CAP; start += 8) {
			struct rig g;
			rig_init(&g, CAP, MAXMSG, start);
			send1(&g, 100, 1);
			recv1(&g, 100, 1);
			send_inband(&g, 1500, 2, true); /* ... and the producer dies */
			if (taken)
				recv1(&g, 1500, 2);
			struct shmkit__ring np;
			shmkit__ring_view(&np, g.mem, CAP, MAXMSG, &g.tail, &g.head);
			ck_assert_int_eq(shmkit__ring_attach_producer(&np), 0);
			ck_assert_uint_eq(np.pos, g.prod.pos);
			ck_assert(shmkit__ring_publish_tail(&np));
			g.prod = np;
			if (!taken)
				recv1(&g, 1500, 2);
			send1(&g, 300, 3);
			recv1(&g, 300, 3);
			ck_assert_int_eq(peek_rc(&g), -EAGAIN);
			rig_free(&g);
		}
	}
	/* Held (MORE): dropped, as an unpublished commit always was. */
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	send1(&g, 100, 1);
	recv1(&g, 100, 1);
	uint64_t t = g.prod.pos;
	send_inband(&g, 200, 2, false);
	struct shmkit__ring np;
	shmkit__ring_view(&np, g.mem, CAP, MAXMSG, &g.tail, &g.head);
	ck_assert_int_eq(shmkit__ring_attach_producer(&np), 0);
	ck_assert_uint_eq(np.pos, t);
	g.prod = np;
	send1(&g, 50, 3);
	recv1(&g, 50, 3);
	rig_free(&g);
	/* Not clean (no SHMKIT__TAIL_CLEAN): a REC_NOW header there may be stale. */
	rig_init(&g, CAP, MAXMSG, 0);
	send1(&g, 100, 1);
	recv1(&g, 100, 1);
	t = g.prod.pos;
	atomic_store(&g.tail, t); /* clear the clean bit */
	put_hdr(&g, t, 16, SHMKIT__REC_NOW);
	shmkit__ring_view(&np, g.mem, CAP, MAXMSG, &g.tail, &g.head);
	ck_assert_int_eq(shmkit__ring_attach_producer(&np), 0);
	ck_assert_uint_eq(np.pos, t);
	/* With the bit, the same header is a committed record. */
	atomic_store(&g.tail, t | SHMKIT__TAIL_CLEAN);
	ck_assert_int_eq(shmkit__ring_attach_producer(&np), 0);
	ck_assert_uint_eq(np.pos, t + 24);
	/* A consumer ahead of the tail: both sides attach there. */
	atomic_store(&g.tail, t);
	atomic_store(&g.head, t + 24);
	ck_assert_int_eq(shmkit__ring_attach_producer(&np), 0);
	ck_assert_uint_eq(np.pos, t + 24);
	ck_assert_int_eq(shmkit__ring_attach_consumer(&g.cons), 0);
	ck_assert_uint_eq(g.cons.pos, t + 24);
	ck_assert_int_eq(peek_rc(&g), -EAGAIN);
	rig_free(&g);
}
END_TEST

/* Random garbage in the ring and positions: the consumer returns data or errors, never
 * reads outside the ring (ASan) and never loops. */
START_TEST(test_random_garbage)
{
	uint64_t rng = t_seed();
	int iters = t_stress() ? 2000000 : 200000;
	struct rig g;
	rig_init(&g, CAP, MAXMSG, 0);
	for (int i = 0; i < iters; i++) {
		if (i % 64 == 0)
			for (int k = 0; k < 16; k++)
				((uint64_t *)g.mem)[t_rand(&rng) % (CAP / 8)] =
					t_rand(&rng) % 3 == 0 ? t_rand(&rng)
							      : (t_rand(&rng) % CAP) |
									(uint64_t)(t_rand(&rng) % 8) << 32;
		uint64_t pos = (t_rand(&rng) % (4 * CAP)) & ~(uint64_t)7;
		g.cons.pos = g.cons.pub = pos;
		/* The last tail seen: usually ours, sometimes behind (after in-band takes). */
		g.cons.other = t_rand(&rng) % 4 ? pos : pos - (t_rand(&rng) % (2 * CAP) & ~(uint64_t)7);
		g.cons.inband = t_rand(&rng) % 2;
		g.cons.peek_need = 0;
		atomic_store(&g.tail, t_rand(&rng) % 2 ? pos + (t_rand(&rng) % (CAP + 16)) : t_rand(&rng));
		const void *p;
		uint64_t n;
		int rc = shmkit__ring_peek(&g.cons, &p, &n);
		if (rc == 0) {
			T_CHECK((const uint8_t *)p >= g.mem && (const uint8_t *)p + n <= g.mem + CAP &&
					n <= MAXMSG,
				"record outside the ring");
			volatile uint8_t x = 0;
			for (uint64_t k = 0; k < n; k += 64)
				x ^= ((const uint8_t *)p)[k];
		} else {
			T_CHECK(rc == -EAGAIN || rc == -EBADMSG, "rc %d", rc);
		}
	}
	rig_free(&g);
}
END_TEST

/* Two threads, random sizes, sequence numbers and checksums. */
struct mt {
	struct rig g;
	uint64_t count;
	uint64_t seed;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/* Spin a little, then yield: on a loaded 2-CPU machine the peer thread may not be running. */
static void backoff(void)
{
	for (int i = 0; i < 512; i++)
		shmkit__cpu_relax();
	sched_yield();
}

static void *mt_producer(void *arg)
{
	struct mt *m = arg;
	uint64_t rng = m->seed;
	for (uint64_t seq = 0; seq < m->count; seq++) {
		uint64_t len = 8 + t_rand(&rng) % 300;
		void *p = NULL;
		int err;
		while ((err = shmkit__ring_loan(&m->g.prod, len, &p)) == -EAGAIN)
			backoff();
		if (err) { /* the consumer would wait forever: fail the whole test */
			fprintf(stderr, "producer: loan failed: %d\n", err);
			abort();
		}
		uint64_t *w = p;
		w[0] = seq;
		for (uint64_t i = 8; i < len; i++)
			((uint8_t *)p)[i] = (uint8_t)mix(seq + i);
		shmkit__ring_commit(&m->g.prod, len);
		/* Publish in small batches to exercise both paths. */
		if (seq % 4 == 0 || seq + 1 == m->count)
			shmkit__ring_publish_tail(&m->g.prod);
	}
	return NULL;
}

START_TEST(test_threads_spsc)
{
	struct mt m;
	m.count = t_stress() ? 20000000 : 1000000;
	m.seed = t_seed();
	rig_init(&m.g, 1 << 16, 1000, 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, mt_producer, &m), 0);
	uint64_t rng = m.seed;
	for (uint64_t seq = 0; seq < m.count; seq++) {
		uint64_t want = 8 + t_rand(&rng) % 300;
		const void *p;
		uint64_t n;
		int rc;
		while ((rc = shmkit__ring_peek(&m.g.cons, &p, &n)) == -EAGAIN)
			backoff();
		T_CHECK(rc == 0, "rc %d", rc);
		T_CHECK(n == want, "length %llu, want %llu", (unsigned long long)n,
			(unsigned long long)want);
		T_CHECK(((const uint64_t *)p)[0] == seq, "sequence");
		for (uint64_t i = 8; i < n; i++)
			if (((const uint8_t *)p)[i] != (uint8_t)mix(seq + i))
				ck_abort_msg("message %llu byte %llu corrupt", (unsigned long long)seq,
					     (unsigned long long)i);
		shmkit__ring_release(&m.g.cons);
		if (seq % 3 == 0)
			shmkit__ring_publish_head(&m.g.cons);
	}
	shmkit__ring_publish_head(&m.g.cons);
	pthread_join(th, NULL);
	rig_free(&m.g);
}
END_TEST

static Suite *ring_suite(void)
{
	Suite *s = suite_create("ring");
	TCase *tc = t_tcase(s, "core", 120);
	tcase_add_test(tc, test_geometry);
	tcase_add_test(tc, test_wrap_every_offset);
	tcase_add_test(tc, test_full_and_empty);
	tcase_add_test(tc, test_limits_and_misuse);
	tcase_add_test(tc, test_batch);
	tcase_add_test(tc, test_corrupt_positions_and_records);
	tcase_add_test(tc, test_inband);
	tcase_add_test(tc, test_inband_edges);
	tcase_add_test(tc, test_inband_takeover);
	tcase_add_test(tc, test_random_garbage);
	tcase_add_test(tc, test_threads_spsc);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {ring_suite};
	return t_main(makers, 1);
}
