/* Tests for src/queue.c: the many-producer / many-consumer work queue, between real
 * processes, with exactly-once accounting, real kills and a hostile scribbler. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

static struct shmkit_queue *q_new(const char *name, uint32_t backend, uint32_t slots,
				  uint64_t max_msg, uint32_t members)
{
	struct shmkit_queue_opts o = {.slots = slots, .max_msg = max_msg, .max_members = members,
				      .seg.backend = backend};
	return t_queue_new(name, &o);
}

/* A message: producer id, sequence, checksum (16 bytes, or more with a pattern). */
struct msg {
	uint32_t producer;
	uint32_t check;
	uint64_t seq;
};

static uint32_t msg_sum(uint32_t producer, uint64_t seq)
{
	uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull ^ producer * 0xbf58476d1ce4e5b9ull;
	return (uint32_t)(x ^ x >> 32);
}

/* --- basics --------------------------------------------------------------------------------- */

/* The queue most basic tests use: 6 slots asked for (8 given) of up to 64 bytes, room for
 * 3 members; its first handle *q and two more, *q2 and *q3. */
static void basic_queue(char *name, size_t cap, struct shmkit_queue **q, struct shmkit_queue **q2,
			struct shmkit_queue **q3)
{
	t_name(name, cap, "qbasic");
	*q = q_new(name, SHMKIT_BACKEND_POSIX, 6, 64, 3);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, q2), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, q3), 0);
}

static void basic_close(struct shmkit_queue *q, struct shmkit_queue *q2, struct shmkit_queue *q3)
{
	ck_assert_int_eq(shmkit_queue_unlink(q), 0);
	shmkit_queue_close(q3);
	shmkit_queue_close(q2);
	shmkit_queue_close(q);
}

/* Fills the basic queue with "m0" .. "m7". */
static void send_eight(struct shmkit_queue *q)
{
	char buf[16];
	for (int i = 0; i < 8; i++) {
		snprintf(buf, sizeof buf, "m%d", i);
		ck_assert_int_eq(shmkit_queue_send(q, buf, strlen(buf) + 1), 0);
	}
}

/* The geometry (slots rounded up to a power of two, 128-byte slots for 64-byte messages)
 * and the member table: max_members handles, then -ENOSPC. */
START_TEST(test_geometry_and_members)
{
	char name[64];
	t_name(name, sizeof name, "qbasic");
	struct shmkit_queue *q = q_new(name, SHMKIT_BACKEND_POSIX, 6, 64, 3);
	ck_assert_uint_eq(shmkit_queue_max_msg(q), 64);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.slots, 8); /* rounded up to a power of two */
	ck_assert_uint_eq(st.slot_size, 128);
	ck_assert_uint_eq(st.members, 1);
	struct shmkit_queue *q2, *q3, *x;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q2), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q3), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &x), -ENOSPC);
	basic_close(q, q2, q3);
	ck_assert_int_eq(shmkit_queue_close(NULL), 0);
}
END_TEST

/* One producer's messages come out in order whichever handle takes them; a peek shows the
 * same message until it is released; an empty queue is -EAGAIN. */
START_TEST(test_fifo_any_handle)
{
	char name[64];
	struct shmkit_queue *q, *q2, *q3;
	basic_queue(name, sizeof name, &q, &q2, &q3);
	char buf[128];
	ck_assert_int_eq(shmkit_queue_recv(q2, buf, sizeof buf), -EAGAIN);
	send_eight(q);
	const void *cp;
	size_t n;
	for (int i = 0; i < 8; i++) {
		char want[16];
		snprintf(want, sizeof want, "m%d", i);
		struct shmkit_queue *c = i % 2 ? q2 : q3;
		if (i == 3) {
			ck_assert_int_eq(shmkit_queue_peek(c, &cp, &n), 0);
			ck_assert_uint_eq((uintptr_t)cp % 16, 0);
			ck_assert_str_eq(cp, want);
			ck_assert_int_eq(shmkit_queue_peek(c, &cp, &n), 0); /* the same again */
			ck_assert_str_eq(cp, want);
			ck_assert_int_eq(shmkit_queue_release(c), 0);
		} else {
			ck_assert_int_eq(shmkit_queue_recv(c, buf, sizeof buf), (ssize_t)strlen(want) + 1);
			ck_assert_str_eq(buf, want);
		}
	}
	basic_close(q, q2, q3);
}
END_TEST

/* A full queue refuses a send (-EAGAIN) and times a waiting one out, never early; an empty
 * one times a waiting receive out, never early. A message over max_msg is -EMSGSIZE and a
 * release without a peek -EINVAL. */
START_TEST(test_full_empty_and_waits)
{
	char name[64];
	struct shmkit_queue *q, *q2, *q3;
	basic_queue(name, sizeof name, &q, &q2, &q3);
	char buf[128] = {0};
	send_eight(q);
	ck_assert_int_eq(shmkit_queue_send(q, "full", 5), -EAGAIN);
	ck_assert_int_eq(shmkit_queue_send(q, buf, 65), -EMSGSIZE);
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_queue_send_wait(q, "full", 5, t_in_ms(&ts, 30)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 30000000);
	while (shmkit_queue_recv(q2, buf, sizeof buf) > 0)
		;
	ck_assert_int_eq(shmkit_queue_release(q2), -EINVAL);
	t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_queue_recv_wait(q2, buf, sizeof buf, t_in_ms(&ts, 30)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 30000000);
	basic_close(q, q2, q3);
}
END_TEST

/* Zero-copy loans: one at a time; a commit over max_msg, or without a loan, is refused; a
 * cancelled loan is skipped by the consumers; a receive buffer too small leaves the
 * message peeked. */
START_TEST(test_loans)
{
	char name[64];
	struct shmkit_queue *q, *q2, *q3;
	basic_queue(name, sizeof name, &q, &q2, &q3);
	void *vp, *vp2;
	ck_assert_int_eq(shmkit_queue_loan(q, &vp), 0);
	ck_assert_int_eq(shmkit_queue_loan(q, &vp2), -EBUSY);
	ck_assert_int_eq(shmkit_queue_commit(q, 65), -EINVAL);
	ck_assert_int_eq(shmkit_queue_cancel(q), 0);
	ck_assert_int_eq(shmkit_queue_commit(q, 1), -EINVAL);
	ck_assert_int_eq(shmkit_queue_loan(q, &vp), 0);
	memcpy(vp, "zero", 5);
	ck_assert_int_eq(shmkit_queue_commit(q, 5), 0);
	char buf[128];
	ck_assert_int_eq(shmkit_queue_recv(q3, buf, 2), -ENOBUFS); /* stays peeked */
	ck_assert_int_eq(shmkit_queue_recv(q3, buf, sizeof buf), 5);
	ck_assert_str_eq(buf, "zero");
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.skipped, 1);
	basic_close(q, q2, q3);
}
END_TEST

/* Batches: send_many puts several messages in one call and recv_many takes up to its count,
 * lengths and contents intact; a stride under max_msg, or a batch with one message too big,
 * is refused. */
START_TEST(test_batches)
{
	char name[64];
	struct shmkit_queue *q, *q2, *q3;
	basic_queue(name, sizeof name, &q, &q2, &q3);
	char batch[5][64];
	size_t lens[5] = {1, 2, 3, 64, 5};
	for (int i = 0; i < 5; i++)
		memset(batch[i], 'a' + i, 64);
	ck_assert_int_eq(shmkit_queue_send_many(q, batch, 64, lens, 5), 5);
	char out[8][64];
	size_t olens[8];
	ck_assert_int_eq(shmkit_queue_recv_many(q2, out, 63, olens, 8), -EINVAL); /* stride */
	ck_assert_int_eq(shmkit_queue_recv_many(q2, out, 64, olens, 3), 3);
	ck_assert_int_eq(shmkit_queue_recv_many(q2, out + 3, 64, olens + 3, 8), 2);
	for (int i = 0; i < 5; i++) {
		ck_assert_uint_eq(olens[i], lens[i]);
		ck_assert_int_eq(out[i][0], 'a' + i);
	}
	ck_assert_int_eq(shmkit_queue_recv_many(q2, out, 64, olens, 8), -EAGAIN);
	lens[2] = 65;
	ck_assert_int_eq(shmkit_queue_send_many(q, batch, 64, lens, 5), -EMSGSIZE);
	basic_close(q, q2, q3);
}
END_TEST

/* The statistics sum over every handle (sends, receives, skipped loans, members, fill); a
 * handle's close folds its counters into the totals and frees its member entry. */
START_TEST(test_stats_sum_handles)
{
	char name[64];
	struct shmkit_queue *q, *q2, *q3;
	basic_queue(name, sizeof name, &q, &q2, &q3);
	char buf[128];
	send_eight(q);
	for (int i = 0; i < 8; i++)
		ck_assert_int_gt(shmkit_queue_recv(i % 2 ? q2 : q3, buf, sizeof buf), 0);
	void *vp;
	ck_assert_int_eq(shmkit_queue_loan(q, &vp), 0);
	ck_assert_int_eq(shmkit_queue_cancel(q), 0);
	ck_assert_int_eq(shmkit_queue_send(q2, "zero", 5), 0);
	ck_assert_int_eq(shmkit_queue_recv(q3, buf, sizeof buf), 5);
	size_t lens[5] = {1, 2, 3, 4, 5}, olens[8];
	char out[8][64] = {{0}};
	ck_assert_int_eq(shmkit_queue_send_many(q3, out, 64, lens, 5), 5);
	ck_assert_int_eq(shmkit_queue_recv_many(q, out, 64, olens, 8), 5);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.msgs_sent, 8 + 1 + 5);
	ck_assert_uint_eq(st.msgs_recv, 8 + 1 + 5);
	ck_assert_uint_eq(st.skipped, 1);
	ck_assert_uint_eq(st.redelivered, 0);
	ck_assert_uint_eq(st.members, 3);
	ck_assert_uint_eq(st.fill, 0);
	ck_assert_int_eq(shmkit_queue_close(q3), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q3), 0);
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.msgs_recv, 8 + 1 + 5);
	basic_close(q, q2, q3);
}
END_TEST

/* Open refuses a segment that is not a queue; create refuses a max_msg over
 * SHMKIT_QUEUE_MAX_MSG. */
START_TEST(test_wrong_kind_and_bad_options)
{
	struct shmkit_queue *x;
	char raw[64];
	struct shmkit_segment *seg = t_raw_segment(raw, sizeof raw);
	ck_assert_int_eq(shmkit_queue_open(raw, NULL, &x), -EMEDIUMTYPE);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	struct shmkit_queue_opts bad = {.max_msg = SHMKIT_QUEUE_MAX_MSG + 1};
	ck_assert_int_eq(shmkit_queue_create("x", &bad, &x), -EINVAL);
}
END_TEST

/* --- exactly once: 4 producers x 4 consumers ----------------------------------------------------- */

struct mpmc {
	struct t_where w;
	uint64_t per_producer;
	_Atomic uint64_t ready;
	_Atomic int go;
	_Atomic int failed;
	_Atomic uint64_t received;
	_Atomic uint64_t done_producers;
	char why[256];
	/* then: the bitmap, one bit per (producer, seq) */
};

static _Atomic uint64_t *mpmc_bits(struct mpmc *m)
{
	return (_Atomic uint64_t *)(void *)((uint8_t *)m + 4096);
}

struct role_arg {
	struct mpmc *m;
	uint32_t id;
};

#define BATCH 16

static int mpmc_producer(void *arg)
{
	struct role_arg *a = arg;
	struct mpmc *m = a->m;
	struct shmkit_queue *q;
	int err = t_queue_open(&m->w, 0, &q);
	if (err) {
		T_CHILD_FAIL(m, "producer open: %s", shmkit_strerror(err));
		return 1;
	}
	atomic_fetch_add(&m->ready, 1);
	while (!atomic_load(&m->go))
		usleep(100);
	struct msg batch[BATCH];
	size_t lens[BATCH];
	for (int i = 0; i < BATCH; i++)
		lens[i] = sizeof(struct msg);
	uint64_t seq = 0;
	while (seq < m->per_producer && !atomic_load_explicit(&m->failed, memory_order_relaxed)) {
		struct timespec ts;
		if (a->id % 2 == 0) {
			/* Batches. */
			size_t n = m->per_producer - seq < BATCH ? m->per_producer - seq : BATCH;
			for (size_t i = 0; i < n; i++)
				batch[i] = (struct msg){a->id, msg_sum(a->id, seq + i), seq + i};
			int r = shmkit_queue_send_many_wait(q, batch, sizeof batch[0], lens, n,
							    t_in_ms(&ts, 30000));
			if (r <= 0) {
				T_CHILD_FAIL(m, "producer %u: %s", a->id, shmkit_strerror(r));
				return 1;
			}
			seq += (uint64_t)r;
		} else {
			struct msg one = {a->id, msg_sum(a->id, seq), seq};
			err = shmkit_queue_send_wait(q, &one, sizeof one, t_in_ms(&ts, 30000));
			if (err) {
				T_CHILD_FAIL(m, "producer %u: %s", a->id, shmkit_strerror(err));
				return 1;
			}
			seq++;
		}
	}
	atomic_fetch_add(&m->done_producers, 1);
	shmkit_queue_close(q);
	return 0;
}

static int take(struct mpmc *m, const struct msg *x, size_t len)
{
	if (len != sizeof *x || x->producer >= 4 || x->seq >= m->per_producer ||
	    x->check != msg_sum(x->producer, x->seq)) {
		T_CHILD_FAIL(m, "corrupt message (len %zu)", len);
		return -1;
	}
	uint64_t bit = x->producer * m->per_producer + x->seq;
	uint64_t old = atomic_fetch_or_explicit(&mpmc_bits(m)[bit / 64], 1ull << (bit % 64),
						memory_order_relaxed);
	if (old & (1ull << (bit % 64))) {
		T_CHILD_FAIL(m, "duplicate: producer %u seq %llu", x->producer,
			     (unsigned long long)x->seq);
		return -1;
	}
	return 0;
}

static int mpmc_consumer(void *arg)
{
	struct role_arg *a = arg;
	struct mpmc *m = a->m;
	struct shmkit_queue *q;
	int err = t_queue_open(&m->w, 0, &q);
	if (err) {
		T_CHILD_FAIL(m, "consumer open: %s", shmkit_strerror(err));
		return 1;
	}
	atomic_fetch_add(&m->ready, 1);
	uint64_t total = 4 * m->per_producer, mine = 0;
	struct msg batch[BATCH];
	size_t lens[BATCH];
	while (atomic_load_explicit(&m->received, memory_order_relaxed) < total &&
	       !atomic_load_explicit(&m->failed, memory_order_relaxed)) {
		struct timespec ts;
		int got;
		if (a->id % 2 == 0) {
			got = shmkit_queue_recv_many_wait(q, batch, sizeof batch[0], lens, BATCH,
							  t_in_ms(&ts, 200));
			for (int i = 0; i < got; i++)
				if (take(m, &batch[i], lens[i]))
					return 1;
		} else {
			ssize_t r = shmkit_queue_recv_wait(q, batch, sizeof batch[0], t_in_ms(&ts, 200));
			got = r < 0 ? (int)r : 1;
			if (r >= 0 && take(m, &batch[0], (size_t)r))
				return 1;
		}
		if (got == -ETIMEDOUT)
			continue; /* the others may be taking the last ones */
		if (got < 0) {
			T_CHILD_FAIL(m, "consumer %u: %s", a->id, shmkit_strerror(got));
			return 1;
		}
		mine += (uint64_t)got;
		atomic_fetch_add_explicit(&m->received, (uint64_t)got, memory_order_relaxed);
	}
	shmkit_queue_close(q);
	return mine ? 0 : 2; /* every consumer got a share */
}

START_TEST(test_mpmc_exactly_once)
{
	uint64_t total = t_stress() ? 100000000 : 10000000;
	char name[64];
	t_name(name, sizeof name, "mpmc");
	struct shmkit_queue *own = q_new(name, SHMKIT_BACKEND_POSIX, 4096, 16, 16);
	size_t bytes = 4096 + (total + 63) / 64 * 8;
	struct mpmc *m = t_shm_alloc(bytes);
	m->w = (struct t_where){name, SHMKIT_BACKEND_POSIX, -1};
	m->per_producer = total / 4;
	struct role_arg args[8];
	pid_t pids[8];
	for (uint32_t i = 0; i < 4; i++) {
		args[i] = (struct role_arg){m, i};
		pids[i] = t_fork(mpmc_consumer, &args[i]);
		args[4 + i] = (struct role_arg){m, i};
		pids[4 + i] = t_fork(mpmc_producer, &args[4 + i]);
	}
	T_WAIT_FOR(atomic_load(&m->ready) >= 8);
	ck_assert_uint_eq(atomic_load(&m->ready), 8);
	uint64_t t0 = shmkit_now_ns();
	atomic_store(&m->go, 1);
	int status[8];
	for (int i = 0; i < 8; i++)
		status[i] = t_wait(pids[i], t_stress() ? 3000000 : 600000);
	double secs = (double)(shmkit_now_ns() - t0) / 1e9;
	ck_assert_msg(!atomic_load(&m->failed), "%s", m->why);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(status[i], 0);
	ck_assert_uint_eq(atomic_load(&m->received), total);
	/* Every (producer, seq) exactly once: all bits set (duplicates failed above). */
	_Atomic uint64_t *bits = mpmc_bits(m);
	for (uint64_t w = 0; w < total / 64; w++)
		T_CHECK(atomic_load_explicit(&bits[w], memory_order_relaxed) == UINT64_MAX,
			"missing messages near bit %llu", (unsigned long long)(w * 64));
	struct shmkit_queue_stats st;
	shmkit_queue_stats(own, &st);
	ck_assert_uint_eq(st.msgs_sent, total);
	ck_assert_uint_eq(st.msgs_recv, total);
	ck_assert_uint_eq(st.redelivered, 0);
	ck_assert_uint_eq(st.skipped, 0);
	ck_assert_uint_eq(st.fill, 0);
	fprintf(stderr, "mpmc 4x4: %llu messages in %.1f s (%.2f M msg/s)\n",
		(unsigned long long)total, secs, (double)total / secs / 1e6);
	shmkit_queue_unlink(own);
	shmkit_queue_close(own);
	munmap(m, bytes);
}
END_TEST

/* --- crashes ------------------------------------------------------------------------------------- */

/* Takes the oldest message (8 bytes), tells the test which one (sh->got[0]) and is killed
 * holding it: not released. */
static int consumer_dies_mid_take(void *arg)
{
	struct t_child *c = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&c->w, 0, &q))
		return 10;
	const void *p;
	size_t n;
	struct timespec ts;
	if (shmkit_queue_peek_wait(q, &p, &n, t_in_ms(&ts, 10000)) || n != 8)
		return 11;
	uint64_t v;
	memcpy(&v, p, 8);
	atomic_store(&c->sh->got[0], v);
	raise(SIGKILL);
	return 12;
}

/* A queue of 4 slots for 8-byte messages named `name` holding first, first+1, ... (`count`
 * of them), whose oldest a consumer took and was killed holding; *c tells where it is. */
static struct shmkit_queue *dead_taker(const char *name, uint32_t backend, uint64_t first,
				       uint64_t count, struct t_child *c)
{
	struct shmkit_queue *q = q_new(name, backend, 4, 8, 8);
	*c = (struct t_child){.w = T_WHERE(name, backend, q), .sh = t_shared_new()};
	for (uint64_t v = first; v < first + count; v++)
		ck_assert_int_eq(shmkit_queue_send(q, &v, 8), 0);
	ck_assert_int_eq(t_wait(t_fork(consumer_dies_mid_take, c), 30000), 128 + SIGKILL);
	ck_assert_uint_eq(atomic_load(&c->sh->got[0]), first);
	return q;
}

static void dead_taker_done(struct shmkit_queue *q, struct t_child *c)
{
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
	t_shared_free(c->sh);
}

/* A consumer killed holding a message: the others take what comes after, and when the
 * queue runs dry a waiting consumer finds the dead holder and puts the message back —
 * re-delivered, not lost. */
START_TEST(test_waiting_consumer_repairs_dead_take)
{
	char name[64];
	struct t_child c;
	struct shmkit_queue *q =
		dead_taker(t_name(name, sizeof name, "qcdead"), t_backends[_i], 100, 4, &c);
	uint64_t v;
	struct timespec ts;
	struct shmkit_queue_stats st;
	for (uint64_t want = 101; want <= 103; want++) {
		ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), 8);
		ck_assert_uint_eq(v, want);
	}
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_queue_recv_wait(q, &v, 8, t_in_ms(&ts, 5000)), 8);
	ck_assert_uint_eq(v, 100);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 3000000000ull);
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.redelivered, 1);
	v = 104;
	ck_assert_int_eq(shmkit_queue_send(q, &v, 8), 0);
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), 8);
	ck_assert_uint_eq(v, 104);
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), -EAGAIN);
	dead_taker_done(q, &c);
}
END_TEST

/* The same crash when nobody is blocked: shmkit_queue_recover() repairs it. */
START_TEST(test_recover_repairs_dead_take)
{
	char name[64];
	struct t_child c;
	struct shmkit_queue *q =
		dead_taker(t_name(name, sizeof name, "qcdead"), t_backends[_i], 200, 1, &c);
	uint64_t v;
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), -EAGAIN); /* held by the dead one */
	ck_assert_int_eq(shmkit_queue_recover(q), 1);
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), 8);
	ck_assert_uint_eq(v, 200);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.redelivered, 1);
	dead_taker_done(q, &c);
}
END_TEST

/* A full queue whose oldest slot a dead consumer holds, and a producer waiting for space:
 * the producer's wait repairs the slot in place (no free slot needed), and the consumers
 * then get that message first. Re-deliveries are not new sends. */
START_TEST(test_waiting_producer_repairs_dead_take)
{
	char name[64];
	struct t_child c;
	struct shmkit_queue *q =
		dead_taker(t_name(name, sizeof name, "qcdead"), t_backends[_i], 300, 4, &c);
	uint64_t v = 304;
	struct timespec ts;
	struct shmkit_queue_stats st;
	ck_assert_int_eq(shmkit_queue_send_wait(q, &v, 8, t_in_ms(&ts, 400)), -ETIMEDOUT);
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.redelivered, 1);
	for (uint64_t want = 300; want < 304; want++) {
		ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), 8);
		ck_assert_uint_eq(v, want);
	}
	ck_assert_int_eq(shmkit_queue_send(q, &v, 8), 0);
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), 8);
	ck_assert_uint_eq(v, 303);
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.msgs_sent, 5); /* re-deliveries are not new sends */
	ck_assert_uint_eq(st.msgs_recv, 5);
	dead_taker_done(q, &c);
}
END_TEST

/* Claims a slot (a loan) and is killed before committing it. */
static int producer_dies_mid_loan(void *arg)
{
	struct t_child *c = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&c->w, 0, &q))
		return 10;
	void *p;
	if (shmkit_queue_loan(q, &p))
		return 11;
	memcpy(p, "garbage!", 8);
	raise(SIGKILL); /* the slot is claimed, never committed */
	return 12;
}

/* A producer killed holding a loan: messages committed after it wait behind the dead slot
 * until a waiting consumer finds the holder dead and skips it; the dead process's member
 * entry is taken over. */
START_TEST(test_producer_killed_mid_loan)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "qpdead");
	struct shmkit_queue *q = q_new(name, backend, 8, 8, 8);
	struct t_child c = {.w = T_WHERE(name, backend, q)};
	pid_t pid = t_fork(producer_dies_mid_loan, &c);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	/* Messages committed after the dead loan wait behind it... */
	for (uint64_t v = 1; v <= 3; v++)
		ck_assert_int_eq(shmkit_queue_send(q, &v, 8), 0);
	uint64_t v;
	ck_assert_int_eq(shmkit_queue_recv(q, &v, 8), -EAGAIN);
	/* ...until a waiting consumer finds the holder dead and skips the slot. */
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	for (uint64_t want = 1; want <= 3; want++) {
		ck_assert_int_eq(shmkit_queue_recv_wait(q, &v, 8, t_in_ms(&ts, 5000)), 8);
		ck_assert_uint_eq(v, want);
	}
	ck_assert_uint_lt(shmkit_now_ns() - t0, 3000000000ull);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_eq(st.skipped, 1);
	ck_assert_uint_eq(st.msgs_recv, 3);
	/* The dead process's member entry is taken over by the next process that needs one. */
	ck_assert_uint_eq(st.members, 1);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
}
END_TEST

/* --- a dead holder is not a hostage for longer than the liveness budget ------------------------
 * A process stopped (SIGSTOP) holding a slot, then killed (SIGKILL) while the other side
 * waits for that very slot and a live peer keeps waking it every few milliseconds (a
 * trickle of commits behind a dead producer's loan, of releases around a dead consumer's
 * take). The waiter must repair the slot within the 100 ms budget however often it is
 * woken: asserted loosely (2 s, a loaded CI machine), the latency printed. */

struct hostage {
	struct t_where w;
	_Atomic int stage;      /* the holder: 1 once it holds its slot */
	_Atomic int stop;
	_Atomic int failed;
	_Atomic pid_t victim;
	_Atomic uint64_t t_kill; /* shmkit_now_ns() when the killer sent SIGKILL */
	_Atomic uint64_t moved;  /* messages the trickle moved */
	_Atomic uint64_t taken[8]; /* consumer case: a bit per message taken, by anyone */
	uint64_t nslots;
	char why[256];
};

/* The holder: takes a slot (a loan, or a peek of the oldest message) and stops there. */
static int hostage_holder(void *arg)
{
	struct hostage *h = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&h->w, 0, &q))
		return 10;
	void *p;
	const void *cp;
	size_t n;
	if (h->nslots == 0 ? shmkit_queue_loan(q, &p) : shmkit_queue_peek(q, &cp, &n))
		return 11;
	atomic_store(&h->stage, 1);
	raise(SIGSTOP); /* frozen holding the slot; SIGKILL ends it */
	return 12;
}

/* Marks message v taken; -1 when it was taken before (or is out of range). */
static int take_once(struct hostage *h, uint64_t v)
{
	if (v >= 64 * 8)
		return -1;
	uint64_t bit = 1ull << (v % 64);
	return atomic_fetch_or(&h->taken[v / 64], bit) & bit ? -1 : 0;
}

/* The trickle: one commit (producer case) or one take (consumer case) every 10 ms. */
static int hostage_trickle(void *arg)
{
	struct hostage *h = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&h->w, 0, &q))
		return 10;
	for (uint64_t seq = 0; !atomic_load(&h->stop); seq++) {
		struct timespec ts;
		uint64_t v = seq;
		int err = h->nslots == 0 ? shmkit_queue_send_wait(q, &v, 8, t_in_ms(&ts, 100))
					 : (int)shmkit_queue_recv_wait(q, &v, 8, t_in_ms(&ts, 100));
		if (err == -ETIMEDOUT) {
			seq--;
			continue;
		}
		if (err < 0) {
			T_CHILD_FAIL(h, "trickle: %s", shmkit_strerror(err));
			return 1;
		}
		if (h->nslots && take_once(h, v)) {
			T_CHILD_FAIL(h, "trickle: message %llu twice or out of range",
				     (unsigned long long)v);
			return 1;
		}
		atomic_fetch_add(&h->moved, 1);
		t_sleep_ms(10);
	}
	shmkit_queue_close(q);
	return 0;
}

/* The killer: lets the waiter settle into its wait, then kills the frozen holder. */
static int hostage_killer(void *arg)
{
	struct hostage *h = arg;
	t_sleep_ms(250);
	atomic_store(&h->t_kill, shmkit_now_ns());
	kill(atomic_load(&h->victim), SIGKILL);
	return 0;
}

START_TEST(test_dead_holder_budget)
{
	int consumer_dies = _i;
	char name[64];
	t_name(name, sizeof name, "qhost");
	/* Room for 2.5 s of trickle: the time a waiter that only checks after a quiet 100 ms
	 * would stay stuck. */
	uint32_t slots = 256;
	struct shmkit_queue *q = q_new(name, SHMKIT_BACKEND_POSIX, slots, 8, 8);
	struct hostage *h = t_shm_alloc(sizeof *h);
	h->w = T_WHERE(name, SHMKIT_BACKEND_POSIX, q);
	h->nslots = consumer_dies ? slots : 0;
	uint64_t v;
	if (consumer_dies) /* a full queue: the producer waits for the dead consumer's slot */
		for (v = 0; v < slots; v++)
			ck_assert_int_eq(shmkit_queue_send(q, &v, 8), 0);
	pid_t holder = t_fork(hostage_holder, h);
	T_WAIT_FOR(atomic_load(&h->stage) == 1);
	ck_assert_int_eq(atomic_load(&h->stage), 1);
	atomic_store(&h->victim, holder);
	pid_t trickle = t_fork(hostage_trickle, h);
	pid_t killer = t_fork(hostage_killer, h);
	struct timespec ts;
	uint64_t done;
	if (consumer_dies) {
		/* The trickle takes the messages after the held one; our send waits for the
		 * slot the dead consumer holds. */
		v = slots;
		ck_assert_int_eq(shmkit_queue_send_wait(q, &v, 8, t_in_ms(&ts, 30000)), 0);
		done = shmkit_now_ns();
	} else {
		/* The trickle commits behind the dead loan; our receive waits at it. */
		ck_assert_int_eq(shmkit_queue_recv_wait(q, &v, 8, t_in_ms(&ts, 30000)), 8);
		done = shmkit_now_ns();
		ck_assert_uint_eq(v, 0);
	}
	ck_assert_int_eq(t_wait(killer, 10000), 0);
	ck_assert_int_eq(t_wait(holder, 10000), 128 + SIGKILL);
	uint64_t t_kill = atomic_load(&h->t_kill);
	ck_assert_uint_ne(t_kill, 0);
	double ms = (double)(int64_t)(done - t_kill) / 1e6;
	fprintf(stderr, "queue: dead %s holding a slot, a peer waking the waiter every 10 ms: "
			"the waiter went on %.1f ms after the kill (%llu trickle moves)\n",
		consumer_dies ? "consumer" : "producer", ms,
		(unsigned long long)atomic_load(&h->moved));
	ck_assert_msg(ms < 2000, "held hostage for %.1f ms", ms);
	atomic_store(&h->stop, 1);
	ck_assert_int_eq(t_wait(trickle, 10000), 0);
	ck_assert_msg(!atomic_load(&h->failed), "%s", h->why);
	/* Every message still delivered, exactly once: the dead consumer's one re-delivered
	 * (to the trickle or to us), the dead producer's slot skipped. */
	uint64_t next = 1, left = 0;
	while (shmkit_queue_recv(q, &v, 8) == 8) {
		if (consumer_dies) {
			ck_assert_int_eq(take_once(h, v), 0);
		} else {
			ck_assert_uint_eq(v, next); /* one producer: in order */
			next++;
		}
		left++;
	}
	ck_assert_uint_gt(left, 0);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	if (consumer_dies) {
		for (v = 0; v <= slots; v++) /* 0..slots-1 queued first, then ours */
			ck_assert_msg(atomic_load(&h->taken[v / 64]) & 1ull << (v % 64),
				      "message %llu lost", (unsigned long long)v);
		ck_assert_uint_eq(st.redelivered, 1);
	} else {
		ck_assert_uint_eq(next, atomic_load(&h->moved)); /* seq 0 was ours */
		ck_assert_uint_eq(st.skipped, 1);
	}
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
	munmap(h, sizeof *h);
}
END_TEST

/* Members of dead processes are reused once the table is full. */
static int attach_and_die(void *arg)
{
	struct t_child *c = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&c->w, 0, &q))
		return 10;
	raise(SIGKILL);
	return 11;
}

START_TEST(test_member_takeover)
{
	char name[64];
	t_name(name, sizeof name, "qtake");
	struct shmkit_queue *q = q_new(name, SHMKIT_BACKEND_POSIX, 8, 8, 3);
	struct t_child c = {.w = {name, SHMKIT_BACKEND_POSIX, -1}};
	for (int i = 0; i < 5; i++) {
		pid_t pid = t_fork(attach_and_die, &c);
		ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	}
	struct shmkit_queue *a, *b, *x;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &a), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &b), 0);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &x), -ENOSPC);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_ge(st.recovered_members, 2);
	ck_assert_uint_eq(st.members, 3);
	shmkit_queue_close(b);
	shmkit_queue_close(a);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
}
END_TEST

/* --- waking ---------------------------------------------------------------------------------------- */

/* A child that will sleep in its waits (no spinning) joins and counts itself ready; NULL
 * when it cannot open the queue. */
static struct shmkit_queue *join_asleep(struct t_child *a)
{
	struct shmkit_queue *q;
	if (t_queue_open(&a->w, SHMKIT_QUEUE_NO_SPIN, &q))
		return NULL;
	atomic_fetch_add(&a->sh->ready, 1);
	return q;
}

static int sleeping_consumer(void *arg)
{
	struct shmkit_queue *q = join_asleep(arg);
	if (!q)
		return 10;
	for (int i = 0; i < 3; i++) {
		char buf[16];
		struct timespec ts;
		if (shmkit_queue_recv_wait(q, buf, sizeof buf, t_in_ms(&ts, 30000)) != 5)
			return 11;
	}
	shmkit_queue_close(q);
	return 0;
}

static int sleeping_producer(void *arg)
{
	struct shmkit_queue *q = join_asleep(arg);
	if (!q)
		return 10;
	for (int i = 0; i < 3; i++) {
		struct timespec ts;
		if (shmkit_queue_send_wait(q, "hello", 5, t_in_ms(&ts, 30000)))
			return 11;
	}
	shmkit_queue_close(q);
	return 0;
}

START_TEST(test_blocking_wakeups)
{
	char name[64];
	t_name(name, sizeof name, "qwake");
	struct shmkit_queue *q = q_new(name, SHMKIT_BACKEND_SYSV, 2, 16, 8);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, SHMKIT_BACKEND_SYSV, q), .sh = sh};
	/* Two consumers asleep on an empty queue: each send wakes one. */
	pid_t c1 = t_fork(sleeping_consumer, &a), c2 = t_fork(sleeping_consumer, &a);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 2);
	for (int i = 0; i < 6; i++) {
		usleep(30000);
		ck_assert_int_eq(shmkit_queue_send(q, "hello", 5), 0);
	}
	ck_assert_int_eq(t_wait(c1, 30000), 0);
	ck_assert_int_eq(t_wait(c2, 30000), 0);
	/* A producer asleep on a full queue: each receive wakes it. */
	ck_assert_int_eq(shmkit_queue_send(q, "fill1", 5), 0);
	ck_assert_int_eq(shmkit_queue_send(q, "fill2", 5), 0);
	atomic_store(&sh->ready, 0);
	pid_t p = t_fork(sleeping_producer, &a);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 1);
	char buf[16];
	for (int i = 0; i < 5; i++) {
		usleep(30000);
		struct timespec ts;
		ck_assert_int_eq(shmkit_queue_recv_wait(q, buf, sizeof buf, t_in_ms(&ts, 5000)), 5);
	}
	ck_assert_int_eq(t_wait(p, 30000), 0);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	ck_assert_uint_gt(st.consumer_sleeps, 0);
	ck_assert_uint_gt(st.producer_sleeps, 0);
	ck_assert_uint_gt(st.wakes, 0);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
	t_shared_free(sh);
}
END_TEST

/* --- a hostile peer ---------------------------------------------------------------------------------- */

/* The hostile peer's aim (src/queue.c's byte table): the enqueue (128) and dequeue (256)
 * positions, and the slots' state and length words. */
struct q_scribble {
	struct t_scribble s;
	uint64_t slots_off, slots, stride;
};

static size_t q_pick(const struct t_scribble *s, uint64_t *rng, uint64_t *v)
{
	const struct q_scribble *a = (const struct q_scribble *)(const void *)s;
	uint64_t what = t_rand(rng) % 6;
	if (what <= 1) {
		*v &= 0xffff;
		return what == 0 ? 128 : 256; /* enqueue_pos, dequeue_pos */
	}
	if (what == 3) /* a plausible word: position, member, state */
		*v = (*v & 0xff) << 13 | (*v & 0x3ff) << 3 | (*v >> 20) % 8;
	return a->slots_off + (t_rand(rng) % a->slots) * a->stride + (what == 2 ? 8 : 0);
}

/* The queue of the hostile tests: 64 slots of 128 bytes (messages up to 100), room for 4
 * members, so the slots start at 1024 + 4 * 128; its handles *q and *c. */
#define HOSTILE_SLOTS_OFF (1024 + 4 * 128)

static uint8_t *hostile_queue(char *name, size_t cap, struct shmkit_queue **q,
			      struct shmkit_queue **c)
{
	t_name(name, cap, "qhostile");
	*q = q_new(name, SHMKIT_BACKEND_POSIX, 64, 100, 4);
	ck_assert_int_eq(shmkit_queue_open(name, NULL, c), 0);
	return shmkit_segment_data(shmkit_queue_segment(*q));
}

static void hostile_close(struct shmkit_queue *q, struct shmkit_queue *c)
{
	shmkit_queue_unlink(q);
	shmkit_queue_close(c);
	shmkit_queue_close(q);
}

/* A producer and a consumer under fire from a scribbler: every call returns a documented
 * code, and every message handed out lies inside the slots. */
START_TEST(test_hostile_scribbler)
{
	char name[64];
	struct shmkit_queue *q, *c;
	uint8_t *base = hostile_queue(name, sizeof name, &q, &c);
	struct q_scribble a = {{base, t_seed(), 600, q_pick}, HOSTILE_SLOTS_OFF, 64, 128};
	pid_t pid = t_scribble(&a.s);
	const uint8_t *cbase = shmkit_segment_data(shmkit_queue_segment(c));
	const uint8_t *slots = cbase + a.slots_off, *slots_end = slots + 64 * 128;
	uint8_t buf[256];
	uint64_t loops = 0;
	uint64_t end = shmkit_now_ns() + 700000000ull;
	while (shmkit_now_ns() < end) {
		loops++;
		struct timespec tsl;
		int err = loops % 8 ? shmkit_queue_send(q, buf, loops % 100)
				    : shmkit_queue_send_wait(q, buf, loops % 100, t_in_ms(&tsl, 2));
		T_CHECK(err == 0 || err == -EAGAIN || err == -ETIMEDOUT, "send %d", err);
		const void *cp;
		size_t n;
		err = loops % 16 ? shmkit_queue_peek(c, &cp, &n)
				 : shmkit_queue_peek_wait(c, &cp, &n, t_in_ms(&tsl, 2));
		if (err == 0) {
			T_CHECK((const uint8_t *)cp >= slots && (const uint8_t *)cp + n <= slots_end &&
					n <= 100,
				"message outside the slots");
			memcpy(buf, cp, n);
			shmkit_queue_release(c);
		} else {
			T_CHECK(err == -EAGAIN || err == -EBADMSG || err == -ETIMEDOUT, "peek %d", err);
		}
		if (loops % 32 == 0) {
			size_t lens[4];
			err = shmkit_queue_recv_many(c, buf, 100, lens, 2);
			T_CHECK(err > 0 || err == -EAGAIN || err == -EBADMSG, "recv_many %d", err);
			err = shmkit_queue_recover(q);
			T_CHECK(err >= 0, "recover %d", err);
		}
	}
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	hostile_close(q, c);
}
END_TEST

/* Positions are only hints: one a lap off (a peer's scribble) must not make a wait ignore
 * its deadline — for a full queue whose enqueue hint points a lap back, then for an empty
 * one whose dequeue hint does. */
START_TEST(test_stale_hints_keep_deadlines)
{
	char name[64];
	struct shmkit_queue *q, *c;
	uint8_t *base = hostile_queue(name, sizeof name, &q, &c);
	uint8_t buf[256];
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(shmkit_queue_send(q, "f", 1), 0);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(shmkit_queue_recv(c, buf, sizeof buf), 1);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(shmkit_queue_send(q, "g", 1), 0);
	atomic_store((_Atomic uint64_t *)(void *)(base + 128), 3); /* slot 3 is a lap ahead */
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_queue_send_wait(q, "x", 1, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 2000000000ull);
	for (int i = 0; i < 64; i++)
		ck_assert_int_eq(shmkit_queue_recv(c, buf, sizeof buf), 1);
	atomic_store((_Atomic uint64_t *)(void *)(base + 256), 5);
	t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_queue_recv_wait(c, buf, sizeof buf, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 2000000000ull);
	hostile_close(q, c);
}
END_TEST

/* A corrupt length in the next full slot is refused (-EBADMSG), not used, and the queue
 * goes on with the next message. */
START_TEST(test_corrupt_length_refused)
{
	char name[64];
	struct shmkit_queue *q, *c;
	uint8_t *base = hostile_queue(name, sizeof name, &q, &c);
	uint8_t buf[256];
	ck_assert_int_eq(shmkit_queue_send(q, "x", 1), 0);
	atomic_store((_Atomic uint32_t *)(void *)(base + HOSTILE_SLOTS_OFF + 8), 5000);
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_queue_peek(c, &cp, &n), -EBADMSG);
	ck_assert_int_eq(shmkit_queue_send(q, "y", 1), 0);
	ck_assert_int_eq(shmkit_queue_recv(c, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'y');
	hostile_close(q, c);
}
END_TEST

static Suite *queue_suite(void)
{
	Suite *s = suite_create("queue");
	TCase *tc = t_tcase(s, "basics", 60);
	tcase_add_test(tc, test_geometry_and_members);
	tcase_add_test(tc, test_fifo_any_handle);
	tcase_add_test(tc, test_full_empty_and_waits);
	tcase_add_test(tc, test_loans);
	tcase_add_test(tc, test_batches);
	tcase_add_test(tc, test_stats_sum_handles);
	tcase_add_test(tc, test_wrong_kind_and_bad_options);
	tcase_add_test(tc, test_stale_hints_keep_deadlines);
	tcase_add_test(tc, test_corrupt_length_refused);
	tcase_add_test(tc, test_blocking_wakeups);
	tc = t_tcase(s, "mpmc", t_stress() ? 3600 : 600);
	tcase_add_test(tc, test_mpmc_exactly_once);
	tc = t_tcase(s, "death", 120);
	tcase_add_loop_test(tc, test_waiting_consumer_repairs_dead_take, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_recover_repairs_dead_take, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_waiting_producer_repairs_dead_take, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_producer_killed_mid_loan, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_dead_holder_budget, 0, 2);
	tcase_add_test(tc, test_member_takeover);
	tcase_add_test(tc, test_hostile_scribbler);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {queue_suite};
	return t_main(makers, 1);
}
