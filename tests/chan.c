/* Tests for src/chan.c: stream channels between real processes, over every backend, with
 * real kills and a hostile peer. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

/* --- message lengths (the contents: t_msg_fill()) ------------------------------------ */

static uint64_t rnd_len(uint64_t seq, uint64_t seed, uint64_t max)
{
	uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull ^ seed;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	/* Mostly small, sometimes large: the interesting sizes for a ring. */
	switch (x % 4) {
	case 0:
		return x % 64 > max ? max : x % 64;
	case 1:
		return (x >> 8) % 1024 > max ? max : (x >> 8) % 1024;
	default:
		return (x >> 16) % (max + 1);
	}
}

static struct shmkit_chan *chan_new(const char *name, uint32_t backend, int role, uint64_t cap,
				    uint64_t max_msg)
{
	struct shmkit_chan_opts o = {.capacity = cap, .max_msg = max_msg, .seg.backend = backend};
	return t_chan_new(name, role, &o);
}

/* --- roles, basics ----------------------------------------------------------------- */

/* The channel most basic tests use: a 4096-byte POSIX ring (max_msg 1024), its producer
 * *p and its consumer *c. */
static void basic_pair(char *name, size_t cap, struct shmkit_chan **p, struct shmkit_chan **c)
{
	t_name(name, cap, "basic");
	*p = chan_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_CHAN_PRODUCER, 4096, 0);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, c), 0);
}

/* Sends 512-byte messages until the ring is full; returns how many fit. */
static int fill_ring(struct shmkit_chan *p)
{
	char big[512];
	memset(big, 'b', sizeof big);
	int k = 0;
	while (shmkit_chan_send(p, big, sizeof big) == 0)
		k++;
	return k;
}

/* One producer and one consumer: a second of either is refused, as is an unknown role, and
 * each role's calls are refused to the other. */
START_TEST(test_roles)
{
	char name[64];
	struct shmkit_chan *p, *c, *x;
	basic_pair(name, sizeof name, &p, &c);
	ck_assert_uint_eq(shmkit_chan_max_msg(p), 1024);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_PRODUCER, NULL, &x), -EBUSY);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &x), -EBUSY);
	ck_assert_int_eq(shmkit_chan_open(name, 7, NULL, &x), -EINVAL);
	const void *cp;
	size_t n;
	void *vp;
	ck_assert_int_eq(shmkit_chan_peek(p, &cp, &n), -EPERM);
	ck_assert_int_eq(shmkit_chan_loan(c, 8, &vp), -EPERM);
	ck_assert_int_eq(shmkit_chan_peer_alive(p), 1);
	shmkit_chan_unlink(p);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* Messages of 0, 1 and max_msg bytes arrive whole and in order; a larger one is refused,
 * and a receive buffer too small leaves the message queued. */
START_TEST(test_message_sizes)
{
	char name[64];
	struct shmkit_chan *p, *c;
	basic_pair(name, sizeof name, &p, &c);
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), -EAGAIN);
	ck_assert_int_eq(shmkit_chan_send(p, "", 0), 0);
	ck_assert_int_eq(shmkit_chan_send(p, "x", 1), 0);
	char big[1025];
	memset(big, 'b', sizeof big);
	ck_assert_int_eq(shmkit_chan_send(p, big, 1024), 0);
	ck_assert_int_eq(shmkit_chan_send(p, big, 1025), -EMSGSIZE);
	char buf[2048];
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 0);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'x');
	ck_assert_int_eq(shmkit_chan_recv(c, buf, 100), -ENOBUFS); /* stays queued */
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 1024);
	ck_assert_int_eq(memcmp(buf, big, 1024), 0);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), -EAGAIN);
	shmkit_chan_unlink(p);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* A full ring refuses a send and times a waiting one out; an observer then sees the
 * counters, the fill and both ends alive, and no wake-up calls (nobody slept). */
START_TEST(test_full_ring_and_observer_stats)
{
	char name[64];
	struct shmkit_chan *p, *c;
	basic_pair(name, sizeof name, &p, &c);
	char buf[2048] = {0};
	ck_assert_int_eq(shmkit_chan_send(p, "", 0), 0);
	ck_assert_int_eq(shmkit_chan_send(p, "x", 1), 0);
	ck_assert_int_eq(shmkit_chan_send(p, buf, 1024), 0);
	for (int i = 0; i < 3; i++)
		shmkit_chan_recv(c, buf, sizeof buf);
	/* Full: 4096-byte ring of 520-byte records. */
	ck_assert_int_eq(fill_ring(p), 7);
	struct timespec ts;
	ck_assert_int_eq(shmkit_chan_send_wait(p, buf, 512, t_in_ms(&ts, 20)), -ETIMEDOUT);
	struct shmkit_chan *obs;
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &obs), 0);
	struct shmkit_chan_stats st;
	ck_assert_int_eq(shmkit_chan_stats(obs, &st), 0);
	ck_assert_uint_eq(st.capacity, 4096);
	ck_assert_uint_eq(st.msgs_sent, 10);
	ck_assert_uint_eq(st.msgs_recv, 3);
	ck_assert_uint_eq(st.bytes_recv, 1025);
	/* 7 records of 520 bytes, plus the padding of the wrap they caused. */
	ck_assert_uint_ge(st.fill, 7 * 520);
	ck_assert_uint_le(st.fill, 4096);
	ck_assert_int_eq(st.producer_pid, getpid());
	ck_assert_int_eq(st.producer_alive, 1);
	ck_assert_int_eq(st.consumer_alive, 1);
	ck_assert_int_eq(st.closed, 0);
	ck_assert_uint_eq(st.producer_wakes, 0); /* nobody ever slept: no wake-up calls */
	ck_assert_int_eq(shmkit_chan_close(obs), 0);
	shmkit_chan_unlink(p);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* Open refuses what is not a channel: a segment of another kind (a raw one here; a table
 * would do the same), and a name that does not exist. */
START_TEST(test_open_not_a_channel)
{
	struct shmkit_chan *x;
	char raw[64];
	struct shmkit_segment *seg = t_raw_segment(raw, sizeof raw);
	ck_assert_int_eq(shmkit_chan_open(raw, SHMKIT_CHAN_CONSUMER, NULL, &x), -EMEDIUMTYPE);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	ck_assert_int_eq(shmkit_chan_open("no-such-chan", SHMKIT_CHAN_CONSUMER, NULL, &x), -ENOENT);
}
END_TEST

/* The producer's close: the consumer drains what is left, then reads end of stream; a new
 * producer then starts a new session on the same channel. */
START_TEST(test_close_then_new_session)
{
	char name[64];
	struct shmkit_chan *p, *c;
	basic_pair(name, sizeof name, &p, &c);
	int k = fill_ring(p);
	ck_assert_int_eq(shmkit_chan_close(p), 0);
	char buf[2048];
	for (int i = 0; i < k; i++)
		ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 512);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), -EPIPE);
	struct timespec ts;
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 10)), -EPIPE);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_PRODUCER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), -EAGAIN);
	ck_assert_int_eq(shmkit_chan_send(p, "again", 5), 0);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 5);
	ck_assert_int_eq(shmkit_chan_unlink(p), 0);
	shmkit_chan_close(p);
	shmkit_chan_close(c);
}
END_TEST

START_TEST(test_bad_options)
{
	struct shmkit_chan *ch;
	struct shmkit_chan_opts o = {.capacity = 4096, .max_msg = 2041};
	ck_assert_int_eq(shmkit_chan_create("x", SHMKIT_CHAN_PRODUCER, &o, &ch), -EINVAL);
	o = (struct shmkit_chan_opts){.capacity = (uint64_t)1 << 50};
	ck_assert_int_eq(shmkit_chan_create("x", SHMKIT_CHAN_PRODUCER, &o, &ch), -EINVAL);
	ck_assert_int_eq(shmkit_chan_create("x", SHMKIT_CHAN_OBSERVER, NULL, &ch), -EINVAL);
	ck_assert_int_eq(shmkit_chan_create("bad/name", SHMKIT_CHAN_PRODUCER, NULL, &ch), -EINVAL);
	/* max_msg alone sizes the ring: 4 × (max + 8), rounded up to a power of two. */
	o = (struct shmkit_chan_opts){.max_msg = 100000};
	o.seg.backend = SHMKIT_BACKEND_MEMFD;
	ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &o, &ch), 0);
	struct shmkit_chan_stats st;
	shmkit_chan_stats(ch, &st);
	ck_assert_uint_eq(st.capacity, 512 * 1024);
	ck_assert_uint_eq(st.max_msg, 100000);
	shmkit_chan_close(ch);
	ck_assert_int_eq(shmkit_chan_close(NULL), 0);
}
END_TEST

/* The consumer's side of the MORE contract at the end: abort drops held releases (the
 * messages were not handed on, a next consumer gets them), close publishes them; and
 * close says which end left last. */
START_TEST(test_leave_held_and_last)
{
	struct shmkit_chan *p = chan_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_CHAN_PRODUCER, 1 << 16, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_chan *o; /* opened now: the memfd goes with the producer's handle */
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_OBSERVER, 0, &o), 0);
	for (uint64_t i = 0; i < 4; i++)
		ck_assert_int_eq(shmkit_chan_send(p, &i, sizeof i), 0);
	struct shmkit_chan *c;
	const void *cp;
	size_t n;
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, &c), 0);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
		ck_assert_int_eq(shmkit_chan_release(c, SHMKIT_CHAN_MORE), 0);
	}
	ck_assert_int_eq(shmkit_chan_abort(c), 0); /* the producer is still there */
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, &c), 0);
	uint64_t v;
	ck_assert_int_eq(shmkit_chan_recv(c, &v, sizeof v), 8);
	ck_assert_uint_eq(v, 0); /* the aborted consumer's held releases were dropped */
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
	ck_assert_int_eq(shmkit_chan_release(c, SHMKIT_CHAN_MORE), 0);
	ck_assert_int_eq(shmkit_chan_detach(c), 0); /* publishes the held release */
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, &c), 0);
	ck_assert_int_eq(shmkit_chan_recv(c, &v, sizeof v), 8);
	ck_assert_uint_eq(v, 2);
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
	ck_assert_int_eq(shmkit_chan_release(c, SHMKIT_CHAN_MORE), 0);
	ck_assert_int_eq(shmkit_chan_close(p), 0); /* the reader is still there */
	ck_assert_int_eq(shmkit_chan_close(c), 1); /* the stream was closed: last to leave */
	struct shmkit_chan_stats st;
	ck_assert_int_eq(shmkit_chan_stats(o, &st), 0);
	ck_assert_uint_eq(st.fill, 0); /* close published the held release */
	ck_assert_int_eq(shmkit_chan_close(o), 0);
}
END_TEST

/* The channels of the batching tests: a 64 KiB memfd ring, its producer *p and consumer
 * *c. */
static void batch_pair(struct shmkit_chan **p, struct shmkit_chan **c)
{
	*p = chan_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_CHAN_PRODUCER, 1 << 16, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, *p);
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, c), 0);
}

/* Loans committed with MORE stay unpublished until the producer flushes; then they arrive
 * whole and in order. A commit without a loan is refused. */
START_TEST(test_more_commits_wait_for_flush)
{
	struct shmkit_chan *p, *c;
	batch_pair(&p, &c);
	for (uint64_t i = 0; i < 50; i++) {
		void *buf;
		ck_assert_int_eq(shmkit_chan_loan(p, 200, &buf), 0);
		t_msg_fill(buf, i, i);
		ck_assert_int_eq(shmkit_chan_commit(p, i, SHMKIT_CHAN_MORE), 0);
	}
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), -EAGAIN); /* not published yet */
	struct shmkit_chan_stats st;
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.msgs_sent, 0);
	ck_assert_int_eq(shmkit_chan_flush(p), 0);
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.msgs_sent, 50);
	for (uint64_t i = 0; i < 50; i++) {
		ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
		ck_assert_uint_eq(n, i);
		ck_assert_int_eq(t_msg_check(cp, n, i), 0);
		ck_assert_int_eq(shmkit_chan_release(c, 0), 0);
	}
	ck_assert_int_eq(shmkit_chan_commit(p, 0, 0), -EINVAL);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* Releases with MORE stay held: an empty peek does not publish them, and a wait refuses to
 * wait on them (the producer may need that space); only the consumer's flush publishes
 * them. A release without a peek is refused. */
START_TEST(test_more_releases_stay_held)
{
	struct shmkit_chan *p, *c;
	batch_pair(&p, &c);
	for (uint64_t i = 0; i < 50; i++)
		ck_assert_int_eq(shmkit_chan_send(p, &i, sizeof i), 0);
	const void *cp;
	size_t n;
	for (uint64_t i = 0; i < 50; i++) {
		ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
		ck_assert_int_eq(shmkit_chan_release(c, SHMKIT_CHAN_MORE), 0);
	}
	struct shmkit_chan_stats st;
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.msgs_recv, 0); /* batched: not published */
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), -EAGAIN);
	struct timespec now0;
	shmkit_deadline_after(&now0, 0);
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, &now0), -EDEADLK);
	char tiny[8];
	ck_assert_int_eq(shmkit_chan_recv_wait(c, tiny, sizeof tiny, NULL), -EDEADLK);
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.msgs_recv, 0);
	ck_assert_int_eq(shmkit_chan_flush(c), 0);
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.msgs_recv, 50);
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, &now0), -ETIMEDOUT);
	ck_assert_uint_eq(st.fill, 0);
	ck_assert_int_eq(shmkit_chan_release(c, 0), -EINVAL);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* Long MORE batches: the producer's is published anyway once it passes half the ring; the
 * consumer's is never published on its behalf, however long — the producer sees the whole
 * ring taken until the consumer flushes. */
START_TEST(test_long_more_batches)
{
	struct shmkit_chan *p, *c;
	batch_pair(&p, &c);
	const void *cp;
	size_t n;
	for (uint64_t i = 0; i < 500; i++) {
		void *buf;
		ck_assert_int_eq(shmkit_chan_loan(p, 100, &buf), 0);
		shmkit_chan_commit(p, 100, SHMKIT_CHAN_MORE);
		if (i == 330) /* 330 x 108 bytes > 32 KiB: published */
			ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
	}
	ck_assert_int_eq(shmkit_chan_flush(p), 0);
	for (int i = 0; i < 500; i++) {
		T_CHECK(shmkit_chan_peek(c, &cp, &n) == 0 && n == 100, "message %d", i);
		shmkit_chan_release(c, SHMKIT_CHAN_MORE);
	}
	struct shmkit_chan_stats st;
	shmkit_chan_stats(c, &st);
	ck_assert_uint_eq(st.fill, 500 * 112); /* 8-byte header + 100 bytes, 8-aligned */
	void *lb; /* 16 KiB (the largest message) does not fit beside 56000 held bytes */
	ck_assert_int_eq(shmkit_chan_loan(p, 16000, &lb), -EAGAIN);
	ck_assert_int_eq(shmkit_chan_flush(c), 0);
	ck_assert_int_eq(shmkit_chan_drain_wait(p, NULL), 0);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* --- cross-process streaming --------------------------------------------------------- */

static int producer_main(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_chan *ch;
	int err = t_chan_open(&a->w, SHMKIT_CHAN_PRODUCER, 0, &ch);
	if (err) {
		T_CHILD_FAIL(a->sh, "producer open: %s", shmkit_strerror(err));
		return 1;
	}
	uint8_t *tmp = a->mode ? malloc(a->max + 8) : NULL;
	for (uint64_t seq = 0; seq < a->count; seq++) {
		uint64_t len = rnd_len(seq, a->seed, a->max);
		if (len < 8)
			len = 8; /* room for the sequence number */
		if (a->mode) {
			t_msg_fill(tmp, len, seq);
			err = shmkit_chan_send_wait(ch, tmp, len, NULL);
		} else {
			void *p;
			err = shmkit_chan_loan_wait(ch, len, &p, NULL);
			if (!err) {
				t_msg_fill(p, len, seq);
				err = shmkit_chan_commit(ch, len, seq % 8 == 7 ? 0 : SHMKIT_CHAN_MORE);
			}
		}
		if (err) {
			T_CHILD_FAIL(a->sh, "producer seq %llu: %s", (unsigned long long)seq,
				     shmkit_strerror(err));
			return 1;
		}
	}
	free(tmp);
	shmkit_chan_close(ch);
	return 0;
}

static int consumer_main(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_chan *ch;
	int err = t_chan_open(&a->w, SHMKIT_CHAN_CONSUMER, 0, &ch);
	if (err) {
		T_CHILD_FAIL(a->sh, "consumer open: %s", shmkit_strerror(err));
		return 1;
	}
	atomic_store(&a->sh->ready, 1);
	uint8_t *tmp = a->mode ? malloc(a->max + 8) : NULL;
	for (uint64_t seq = 0;; seq++) {
		const void *p;
		size_t n;
		if (a->mode) {
			ssize_t r = shmkit_chan_recv_wait(ch, tmp, a->max + 8, NULL);
			err = r < 0 ? (int)r : 0;
			n = r < 0 ? 0 : (size_t)r;
			p = tmp;
		} else {
			/* Held releases are published before waiting, as shmkit_chan_release(3)
			 * asks (the wait would refuse with -EDEADLK). */
			err = shmkit_chan_peek(ch, &p, &n);
			if (err == -EAGAIN) {
				shmkit_chan_flush(ch);
				err = shmkit_chan_peek_wait(ch, &p, &n, NULL);
			}
		}
		if (err == -EPIPE && seq == a->count)
			break;
		uint64_t want = rnd_len(seq, a->seed, a->max);
		if (want < 8)
			want = 8;
		if (err || n != want || t_msg_check(p, n, seq) != 0) {
			T_CHILD_FAIL(a->sh, "consumer seq %llu: err %s, len %zu want %llu, check %d",
				     (unsigned long long)seq, shmkit_strerror(err), n,
				     (unsigned long long)want, err ? 0 : t_msg_check(p, n, seq));
			return 1;
		}
		if (!a->mode)
			shmkit_chan_release(ch, seq % 5 == 4 ? 0 : SHMKIT_CHAN_MORE);
		atomic_store_explicit(&a->sh->got[0], seq + 1, memory_order_relaxed);
	}
	free(tmp);
	shmkit_chan_close(ch);
	return 0;
}

/* mode 0: loan/commit and peek/release with MORE batches; mode 1: send/recv (copies). */
static void stream_run(uint32_t backend, uint64_t count, uint64_t max, uint64_t cap, int mode)
{
	char name[64];
	t_name(name, sizeof name, "stream");
	/* The test process creates the channel, then hands the consumer role over. */
	struct shmkit_chan *own = chan_new(name, backend, SHMKIT_CHAN_CONSUMER, cap, max + 8);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, backend, own), .sh = sh, .count = count, .max = max,
			    .seed = t_seed(), .mode = mode};
	/* Give the consumer role up (keeping a memfd descriptor for the children to inherit);
	 * the channel itself stays. */
	if (backend == SHMKIT_BACKEND_MEMFD)
		a.w.fd = dup(a.w.fd);
	shmkit_chan_detach(own);
	pid_t pc, pp;
	pc = t_fork(consumer_main, &a);
	pp = t_fork(producer_main, &a);
	int timeout = 600000;
	int sp = t_wait(pp, timeout), sc = t_wait(pc, timeout);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	ck_assert_int_eq(sp, 0);
	ck_assert_int_eq(sc, 0);
	ck_assert_uint_eq(atomic_load(&sh->got[0]), count);
	if (backend != SHMKIT_BACKEND_MEMFD) {
		struct shmkit_chan *obs;
		struct shmkit_chan_opts o = {.seg.backend = backend, .seg.flags = SHMKIT_SEG_RDONLY};
		ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, &o, &obs), 0);
		struct shmkit_chan_stats st;
		shmkit_chan_stats(obs, &st);
		ck_assert_uint_eq(st.msgs_sent, count);
		ck_assert_uint_eq(st.msgs_recv, count);
		ck_assert_uint_eq(st.bytes_sent, st.bytes_recv);
		ck_assert_int_eq(st.closed, 1);
		ck_assert_int_eq(st.producer_pid, 0); /* both closed: roles free */
		shmkit_chan_close(obs);
	}
	if (a.w.fd >= 0)
		close(a.w.fd);
	ck_assert_int_eq(t_where_remove(&a.w), backend != SHMKIT_BACKEND_MEMFD);
	t_shared_free(sh);
}

/* Random sizes 0..64 KiB, sequence numbers and checksums, every backend. The stress tier
 * sends 10 million per backend. */
START_TEST(test_stream_random_sizes)
{
	uint64_t count = t_stress() ? 10000000 : 60000;
	stream_run(t_backends[_i], count, 65536, 1 << 20, 0);
}
END_TEST

START_TEST(test_stream_small_messages_copy)
{
	stream_run(t_backends[_i], t_stress() ? 20000000 : 300000, 64, 1 << 14, 1);
}
END_TEST

/* Messages of 1 MiB and more: the copy path avoids the memcpy cliff and stays exact. */
START_TEST(test_stream_large_messages)
{
	char name[64];
	t_name(name, sizeof name, "large");
	struct shmkit_chan *p = chan_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_CHAN_PRODUCER, 8 << 20,
					 (3 << 20) / 2);
	struct shmkit_chan *c;
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &c), 0);
	size_t sz = (3 << 20) / 2 - 8;
	uint8_t *in = malloc(sz), *out = malloc(sz);
	for (uint64_t i = 0; i < 8; i++) {
		t_msg_fill(in, sz - i * 4096, i);
		ck_assert_int_eq(shmkit_chan_send(p, in, sz - i * 4096), 0);
		ck_assert_int_eq(shmkit_chan_recv(c, out, sz), (ssize_t)(sz - i * 4096));
		ck_assert_int_eq(t_msg_check(out, sz - i * 4096, i), 0);
	}
	free(in);
	free(out);
	shmkit_chan_unlink(p);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* --- blocking ------------------------------------------------------------------------ */

static int sleeper_consumer(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_chan *ch;
	if (t_chan_open(&a->w, SHMKIT_CHAN_CONSUMER, SHMKIT_CHAN_NO_SPIN, &ch))
		return 10;
	atomic_store(&a->sh->ready, 1);
	char buf[64];
	/* Blocks (asleep: no spinning) until the parent sends, five times, then until end of
	 * stream. */
	for (int i = 0; i < 5; i++) {
		ssize_t n = shmkit_chan_recv_wait(ch, buf, sizeof buf, NULL);
		if (n != 5 || memcmp(buf, "wake!", 5) != 0)
			return 11;
	}
	struct timespec ts;
	if (shmkit_chan_recv_wait(ch, buf, sizeof buf, t_in_ms(&ts, 30000)) != -EPIPE)
		return 12;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	/* It waited asleep for most of a second: CPU time stays tiny (a spinner would burn it
	 * all). A functional property with a wide margin, not a speed measurement. */
	long cpu_ms = ru.ru_utime.tv_sec * 1000 + ru.ru_utime.tv_usec / 1000 +
		      ru.ru_stime.tv_sec * 1000 + ru.ru_stime.tv_usec / 1000;
	if (cpu_ms > 250)
		return 13;
	shmkit_chan_close(ch);
	return 0;
}

START_TEST(test_blocking_wakeup_and_idle)
{
	char name[64];
	t_name(name, sizeof name, "block");
	struct shmkit_chan *p = chan_new(name, SHMKIT_BACKEND_SYSV, SHMKIT_CHAN_PRODUCER, 4096, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, SHMKIT_BACKEND_SYSV, p), .sh = sh};
	pid_t pid = t_fork(sleeper_consumer, &a);
	while (!atomic_load(&sh->ready))
		usleep(1000);
	/* Five times: let it fall asleep, check that it did, wake it with a message. */
	struct shmkit_chan_stats st;
	uint64_t slept = 0;
	for (int k = 0; k < 5; k++) {
		for (int i = 0; i < 5000; i++) {
			shmkit_chan_stats(p, &st);
			if (st.consumer_sleeps > slept)
				break;
			usleep(1000);
		}
		ck_assert_uint_gt(st.consumer_sleeps, slept);
		slept = st.consumer_sleeps;
		usleep(150000);
		ck_assert_int_eq(shmkit_chan_send(p, "wake!", 5), 0);
	}
	/* It slept, so the producer had to wake it — unless, each of the five times, it was
	 * between two 100 ms sleeps (checking the producer's liveness) at that very moment. */
	shmkit_chan_stats(p, &st);
	ck_assert_uint_ge(st.producer_wakes, 1);
	usleep(400000);
	shmkit_chan_close(p);
	ck_assert_int_eq(t_wait(pid, 30000), 0);
	t_where_remove(&a.w);
	t_shared_free(sh);
}
END_TEST

START_TEST(test_timeouts)
{
	struct shmkit_chan *p = chan_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_CHAN_PRODUCER, 4096, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_chan *c;
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, &c), 0);
	struct timespec ts;
	const void *cp;
	size_t n;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 50000000); /* never early */
	/* A deadline already in the past: one try, then -ETIMEDOUT. */
	shmkit_deadline_after(&ts, 0);
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, &ts), -ETIMEDOUT);
	/* A malformed deadline is an error, not a busy wait. */
	struct timespec bad = {ts.tv_sec, 1999999999};
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, &bad), -EINVAL);
	char buf[600] = {0};
	while (shmkit_chan_send(p, buf, sizeof buf) == 0)
		;
	t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_chan_send_wait(p, buf, sizeof buf, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 50000000);
	ck_assert_int_eq(shmkit_chan_drain_wait(p, t_in_ms(&ts, 20)), -ETIMEDOUT);
	/* Data that arrives during the wait is returned. */
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 50)), 0);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* --- dead peers ---------------------------------------------------------------------- */

static int producer_then_die(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_chan *ch;
	if (t_chan_open(&a->w, SHMKIT_CHAN_PRODUCER, 0, &ch))
		return 10;
	for (uint64_t seq = 0; seq < a->count; seq++) {
		void *p;
		if (shmkit_chan_loan_wait(ch, 100, &p, NULL))
			return 11;
		t_msg_fill(p, 100, seq);
		shmkit_chan_commit(ch, 100, 0);
	}
	/* Committed with MORE but never published: must not be delivered. */
	void *p;
	if (shmkit_chan_loan(ch, 100, &p))
		return 12;
	t_msg_fill(p, 100, 999998);
	shmkit_chan_commit(ch, 100, SHMKIT_CHAN_MORE);
	/* A loan that is written but never committed: must not be delivered either. */
	if (shmkit_chan_loan(ch, 100, &p))
		return 12;
	t_msg_fill(p, 100, 999999);
	raise(SIGKILL);
	return 13;
}

START_TEST(test_producer_killed)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "pdead");
	struct shmkit_chan *c = chan_new(name, backend, SHMKIT_CHAN_CONSUMER, 1 << 16, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, backend, c), .sh = sh, .count = 300};
	pid_t pid = t_fork(producer_then_die, &a);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	struct timespec ts;
	const void *cp;
	size_t n;
	for (uint64_t seq = 0; seq < 300; seq++) {
		ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 5000)), 0);
		ck_assert_uint_eq(n, 100);
		ck_assert_int_eq(t_msg_check(cp, n, seq), 0);
		shmkit_chan_release(c, 0);
	}
	/* Everything published was delivered; now the death is reported, promptly. */
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 10000)), -EOWNERDEAD);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 5000000000ull); /* not the 10 s deadline */
	/* With a deadline shorter than the liveness slice it is reported at the deadline. */
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 20)), -EOWNERDEAD);
	ck_assert_int_eq(shmkit_chan_peer_alive(c), 0);
	/* Takeover: a new producer attaches where the dead one stopped. */
	a.count = 10;
	pid = t_fork(producer_then_die, &a);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	for (uint64_t seq = 0; seq < 10; seq++) {
		ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 5000)), 0);
		ck_assert_int_eq(t_msg_check(cp, n, seq), 0);
		shmkit_chan_release(c, 0);
	}
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 5000)), -EOWNERDEAD);
	shmkit_chan_unlink(c);
	shmkit_chan_close(c);
	t_shared_free(sh);
}
END_TEST

static int consumer_then_die(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_chan *ch;
	if (t_chan_open(&a->w, SHMKIT_CHAN_CONSUMER, 0, &ch))
		return 10;
	const void *p;
	size_t n;
	for (uint64_t seq = 0; seq < a->count; seq++) {
		if (shmkit_chan_peek_wait(ch, &p, &n, NULL) || t_msg_check(p, n, seq))
			return 11;
		shmkit_chan_release(ch, 0);
	}
	/* Peeked, not released: the next consumer gets it again. */
	if (shmkit_chan_peek_wait(ch, &p, &n, NULL))
		return 12;
	raise(SIGKILL);
	return 13;
}

START_TEST(test_consumer_killed)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "cdead");
	struct shmkit_chan *p = chan_new(name, backend, SHMKIT_CHAN_PRODUCER, 4096, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, backend, p), .sh = sh, .count = 5};
	char buf[1000];
	/* Four 1008-byte records fill the 4096-byte ring. */
	for (uint64_t seq = 0; seq < 4; seq++) {
		t_msg_fill((uint8_t *)buf, 1000, seq);
		ck_assert_int_eq(shmkit_chan_send(p, buf, 1000), 0);
	}
	ck_assert_int_eq(shmkit_chan_send(p, buf, 1000), -EAGAIN);
	pid_t pid = t_fork(consumer_then_die, &a);
	/* The consumer releases 0..4, peeks 5 and dies: 4..8 fit, then the ring is full for
	 * good and the dead consumer is reported instead of waited for. */
	struct timespec ts;
	uint64_t seq = 4;
	int err;
	for (;; seq++) {
		t_msg_fill((uint8_t *)buf, 1000, seq);
		err = shmkit_chan_send_wait(p, buf, 1000, t_in_ms(&ts, 20000));
		if (err)
			break;
	}
	ck_assert_int_eq(err, -EOWNERDEAD);
	ck_assert_uint_eq(seq, 9);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	ck_assert_int_eq(shmkit_chan_drain_wait(p, t_in_ms(&ts, 10000)), -EOWNERDEAD);
	/* A new consumer takes over from message 5 (peeked but never released). */
	struct shmkit_chan *c;
	ck_assert_int_eq(t_chan_open(&a.w, SHMKIT_CHAN_CONSUMER, 0, &c), 0);
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_chan_peek(c, &cp, &n), 0);
	ck_assert_int_eq(t_msg_check(cp, n, 5), 0);
	shmkit_chan_close(c);
	shmkit_chan_unlink(p);
	shmkit_chan_close(p);
	t_shared_free(sh);
}
END_TEST

/* kill -9 of either side at a random moment of a busy stream, then a takeover: no gap,
 * no duplicate (except the one re-delivery a consumer crash allows), no torn message. */
struct chaos {
	struct t_where w;
	_Atomic uint64_t epoch;       /* producer generation, bumped by each new producer */
	_Atomic uint64_t recorded;    /* consumer: last sequence verified, +1 */
	_Atomic uint64_t rec_epoch;
	_Atomic uint64_t consumers;   /* consumer generation, bumped by each new consumer */
	_Atomic int failed;
	char why[200];
};

/* Opens `role`, retrying for about 5 s: the dead one's role is taken over once it is
 * reaped. Records the failure when it never opens. */
static int chaos_open(struct chaos *x, int role, struct shmkit_chan **ch)
{
	int err;
	for (int tries = 0; (err = t_chan_open(&x->w, role, 0, ch)); tries++) {
		if (tries > 5000) {
			T_CHILD_FAIL(x, "%s open: %s",
				     role == SHMKIT_CHAN_PRODUCER ? "producer" : "consumer",
				     shmkit_strerror(err));
			return err;
		}
		usleep(1000);
	}
	return 0;
}

static int chaos_producer(void *arg)
{
	struct chaos *x = arg;
	struct shmkit_chan *ch;
	if (chaos_open(x, SHMKIT_CHAN_PRODUCER, &ch))
		return 10;
	uint64_t epoch = atomic_fetch_add(&x->epoch, 1) + 1;
	for (uint64_t seq = 0;; seq++) {
		uint64_t len = 16 + (seq * 7919) % 3000;
		void *p;
		int err = shmkit_chan_loan_wait(ch, len, &p, NULL);
		if (err == -EOWNERDEAD) {
			usleep(1000);
			seq--;
			continue;
		}
		if (err)
			return 11;
		t_msg_fill(p, len, epoch << 40 | seq); /* the first word carries both */
		shmkit_chan_commit(ch, len, seq % 3 ? SHMKIT_CHAN_MORE : 0);
	}
}

static int chaos_consumer(void *arg)
{
	struct chaos *x = arg;
	struct shmkit_chan *ch;
	if (chaos_open(x, SHMKIT_CHAN_CONSUMER, &ch))
		return 10;
	uint64_t rec = atomic_load(&x->recorded), rec_epoch = atomic_load(&x->rec_epoch);
	atomic_fetch_add(&x->consumers, 1);
	bool first = true;
	for (;;) {
		const void *p;
		size_t n;
		int err = shmkit_chan_peek_wait(ch, &p, &n, NULL);
		if (err == -EOWNERDEAD)
			continue; /* the producer was killed: wait for the next one */
		if (err) {
			T_CHILD_FAIL(x, "peek: %s", shmkit_strerror(err));
			return 11;
		}
		uint64_t id = t_msg_seq(p);
		uint64_t seq = id & (((uint64_t)1 << 40) - 1), epoch = id >> 40;
		const char *bad = NULL;
		if (n != 16 + (seq * 7919) % 3000 || t_msg_check(p, n, id) != 0)
			bad = "torn or corrupt message";
		else if (epoch == rec_epoch && !(seq == rec || (first && seq + 1 == rec)))
			bad = "gap or duplicate within an epoch";
		else if (epoch != rec_epoch && (epoch < rec_epoch || seq != 0))
			bad = "new epoch does not start at 0";
		if (bad) {
			T_CHILD_FAIL(x, "%s: epoch %llu seq %llu (recorded %llu/%llu)", bad,
				     (unsigned long long)epoch, (unsigned long long)seq,
				     (unsigned long long)rec_epoch, (unsigned long long)rec);
			return 12;
		}
		first = false;
		rec = seq + 1;
		rec_epoch = epoch;
		/* Record before releasing: a kill in between re-delivers this one (allowed). */
		atomic_store(&x->rec_epoch, rec_epoch);
		atomic_store(&x->recorded, rec);
		shmkit_chan_release(ch, 0);
	}
}

START_TEST(test_random_kills)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "chaos");
	struct shmkit_chan *own = chan_new(name, backend, SHMKIT_CHAN_CONSUMER, 1 << 15, 0);
	struct chaos *x = t_shm_alloc(sizeof *x);
	x->w = T_WHERE(name, backend, own);
	if (backend == SHMKIT_BACKEND_MEMFD)
		x->w.fd = dup(x->w.fd);
	shmkit_chan_detach(own); /* hand the consumer role to the children */
	uint64_t rng = t_seed() + backend;
	int rounds = t_stress() ? 150 : 6;
	pid_t prod = t_fork(chaos_producer, x), cons = t_fork(chaos_consumer, x);
	uint64_t producers = 1, consumers = 1;
	for (int r = 0; r < rounds && !atomic_load(&x->failed); r++) {
		/* Kill only processes that have attached, so every kill hits a live stream. */
		T_WAIT_FOR(atomic_load(&x->epoch) >= producers &&
			   atomic_load(&x->consumers) >= consumers);
		usleep(2000 + t_rand(&rng) % 30000);
		bool kill_producer = r % 2 == 0; /* both kinds, each at random moments */
		pid_t victim = kill_producer ? prod : cons;
		kill(victim, SIGKILL);
		int st = t_wait(victim, 10000);
		ck_assert_msg(st == 128 + SIGKILL, "victim exit %d: %s", st, x->why);
		if (kill_producer) {
			prod = t_fork(chaos_producer, x);
			producers++;
		} else {
			cons = t_fork(chaos_consumer, x);
			consumers++;
		}
	}
	T_WAIT_FOR(atomic_load(&x->epoch) >= producers && atomic_load(&x->consumers) >= consumers);
	usleep(50000);
	kill(prod, SIGKILL);
	kill(cons, SIGKILL);
	t_wait(prod, 10000);
	t_wait(cons, 10000);
	ck_assert_msg(!atomic_load(&x->failed), "%s", x->why);
	ck_assert_uint_eq(atomic_load(&x->epoch), producers); /* every takeover happened */
	ck_assert_uint_eq(atomic_load(&x->consumers), consumers);
	ck_assert_uint_gt(atomic_load(&x->rec_epoch), 0); /* and data flowed */
	if (x->w.fd >= 0)
		close(x->w.fd);
	ck_assert_int_eq(t_where_remove(&x->w), backend != SHMKIT_BACKEND_MEMFD);
	munmap(x, sizeof *x);
}
END_TEST

/* --- a hostile peer ---------------------------------------------------------------------- */

/* The hostile peer's aim (src/chan.c's byte table): the tail word at 128, the head word at
 * 256, and the records of the ring at 1024. */
struct chan_scribble {
	struct t_scribble s;
	uint64_t ring_bytes;
};

static size_t chan_pick(const struct t_scribble *s, uint64_t *rng, uint64_t *v)
{
	const struct chan_scribble *a = (const struct chan_scribble *)(const void *)s;
	switch (t_rand(rng) % 6) {
	case 0:
		*v &= 0xffff; /* small, plausible-looking positions */
		return 128;   /* tail */
	case 1:
		return 128;
	case 2:
		return 256; /* head */
	case 3:
		*v = (*v & 0x1ffff) | (*v & 1) << 32; /* a plausible record header */
		/* fall through */
	default:
		return 1024 + (t_rand(rng) % (a->ring_bytes / 8)) * 8;
	}
}

START_TEST(test_hostile_scribbler)
{
	char name[64];
	t_name(name, sizeof name, "hostile");
	struct shmkit_chan *p = chan_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_CHAN_PRODUCER, 1 << 16, 0);
	struct shmkit_chan *c;
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &c), 0);
	struct chan_scribble a = {{shmkit_segment_data(shmkit_chan_segment(p)), t_seed(), 700, chan_pick},
				  1 << 16};
	pid_t pid = t_scribble(&a.s);
	uint64_t ok = 0, bad = 0, n_loops = 0;
	uint8_t buf[1 << 15];
	uint64_t end = shmkit_now_ns() + 800000000ull;
	while (shmkit_now_ns() < end) {
		n_loops++;
		(void)shmkit_chan_send(p, buf, n_loops % 2000);
		const void *cp;
		size_t n;
		struct timespec ts;
		int err = n_loops % 16 ? shmkit_chan_peek(c, &cp, &n)
				       : shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 2));
		if (err == 0) {
			/* Whatever it claims must lie inside the ring. */
			const uint8_t *base =
				(const uint8_t *)shmkit_segment_data(shmkit_chan_segment(c)) + 1024;
			T_CHECK((const uint8_t *)cp >= base && (const uint8_t *)cp + n <= base + (1 << 16),
				"message outside the ring");
			memcpy(buf, cp, n < sizeof buf ? n : sizeof buf);
			shmkit_chan_release(c, 0);
			ok++;
		} else {
			T_CHECK(err == -EAGAIN || err == -EBADMSG || err == -ETIMEDOUT ||
					err == -EOWNERDEAD || err == -EPIPE,
				"unexpected %d", err);
			if (err == -EBADMSG)
				bad++;
		}
	}
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	ck_assert_uint_gt(bad, 0); /* the scribbling was noticed */
	shmkit_chan_unlink(p);
	shmkit_chan_close(c);
	shmkit_chan_close(p);
}
END_TEST

/* A memfd channel whose descriptor outlives its handles (*w, closed by the test), and its
 * producer *p and consumer *c. */
static void leaving_pair(struct t_where *w, struct shmkit_chan **p, struct shmkit_chan **c)
{
	*p = chan_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_CHAN_PRODUCER, 4096, 0);
	*w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, *p);
	w->fd = dup(w->fd);
	ck_assert_int_eq(t_chan_open(w, SHMKIT_CHAN_CONSUMER, 0, c), 0);
}

/* The consumer closes: like a pipe whose reader went away, a producer that must wait for
 * room is told so (-EPIPE), at once; one with room left may still write. A new consumer
 * clears it and gets everything that was written. */
START_TEST(test_consumer_close_is_epipe)
{
	struct t_where w;
	struct shmkit_chan *p, *c, *c2;
	leaving_pair(&w, &p, &c);
	char buf[1000] = {0};
	struct timespec ts;
	ck_assert_int_eq(shmkit_chan_send(p, buf, 100), 0);
	ck_assert_int_eq(shmkit_chan_close(c), 0);
	ck_assert_int_eq(shmkit_chan_drain_wait(p, t_in_ms(&ts, 5000)), -EPIPE);
	while (shmkit_chan_send(p, buf, sizeof buf) == 0)
		;
	ck_assert_int_eq(shmkit_chan_send(p, buf, sizeof buf), -EPIPE);
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_chan_send_wait(p, buf, sizeof buf, t_in_ms(&ts, 10000)), -EPIPE);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 5000000000ull);
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_CONSUMER, 0, &c2), 0);
	ck_assert_int_eq(shmkit_chan_recv(c2, buf, sizeof buf), 100);
	ck_assert_int_eq(shmkit_chan_recv(c2, buf, sizeof buf), (ssize_t)sizeof buf);
	ck_assert_int_eq(shmkit_chan_send_wait(p, buf, sizeof buf, t_in_ms(&ts, 10000)), 0);
	shmkit_chan_close(c2);
	shmkit_chan_close(p);
	close(w.fd);
}
END_TEST

/* The producer detaches: no end of stream, the consumer keeps waiting. A successor carries
 * on, then aborts: the consumer gets what was committed, then -ECONNABORTED rather than a
 * clean end of stream. */
START_TEST(test_detach_then_abort)
{
	struct t_where w;
	struct shmkit_chan *p, *c, *p2;
	leaving_pair(&w, &p, &c);
	char buf[100];
	struct timespec ts;
	const void *cp;
	size_t n;
	ck_assert_int_eq(shmkit_chan_send(p, "first", 5), 0);
	ck_assert_int_eq(shmkit_chan_detach(p), 0);
	while (shmkit_chan_recv(c, buf, sizeof buf) > 0)
		;
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 30)), -ETIMEDOUT);
	ck_assert_int_eq(shmkit_chan_peer_alive(c), 0);
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_PRODUCER, 0, &p2), 0);
	ck_assert_int_eq(shmkit_chan_send(p2, "last", 4), 0);
	struct shmkit_chan_stats st;
	ck_assert_int_eq(shmkit_chan_abort(p2), 0);
	shmkit_chan_stats(c, &st);
	ck_assert_int_eq(st.closed, 2);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), 4);
	ck_assert_int_eq(shmkit_chan_recv(c, buf, sizeof buf), -ECONNABORTED);
	ck_assert_int_eq(shmkit_chan_peek_wait(c, &cp, &n, t_in_ms(&ts, 1000)), -ECONNABORTED);
	shmkit_chan_close(c);
	close(w.fd);
}
END_TEST

/* A new producer reopens an aborted stream (closed back to 0); the consumer's close is
 * then flagged to the producer (reader_closed). */
START_TEST(test_reopen_and_reader_closed)
{
	struct t_where w;
	struct shmkit_chan *p, *c, *p2;
	leaving_pair(&w, &p, &c);
	ck_assert_int_eq(shmkit_chan_abort(p), 0);
	ck_assert_int_eq(t_chan_open(&w, SHMKIT_CHAN_PRODUCER, 0, &p2), 0); /* reopens the stream */
	struct shmkit_chan_stats st;
	shmkit_chan_stats(c, &st);
	ck_assert_int_eq(st.closed, 0);
	ck_assert_int_eq(st.reader_closed, 0);
	shmkit_chan_close(c);
	shmkit_chan_stats(p2, &st);
	ck_assert_int_eq(st.reader_closed, 1);
	shmkit_chan_close(p2);
	close(w.fd);
}
END_TEST

static Suite *chan_suite(void)
{
	Suite *s = suite_create("chan");
	TCase *tc = t_tcase(s, "basics", 60);
	tcase_add_test(tc, test_roles);
	tcase_add_test(tc, test_message_sizes);
	tcase_add_test(tc, test_full_ring_and_observer_stats);
	tcase_add_test(tc, test_open_not_a_channel);
	tcase_add_test(tc, test_close_then_new_session);
	tcase_add_test(tc, test_bad_options);
	tcase_add_test(tc, test_more_commits_wait_for_flush);
	tcase_add_test(tc, test_more_releases_stay_held);
	tcase_add_test(tc, test_long_more_batches);
	tcase_add_test(tc, test_leave_held_and_last);
	tcase_add_test(tc, test_consumer_close_is_epipe);
	tcase_add_test(tc, test_detach_then_abort);
	tcase_add_test(tc, test_reopen_and_reader_closed);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_blocking_wakeup_and_idle);
	tcase_add_test(tc, test_stream_large_messages);
	tc = t_tcase(s, "stream", t_stress() ? 3600 : 300);
	tcase_add_loop_test(tc, test_stream_random_sizes, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_stream_small_messages_copy, 0, T_BACKENDS);
	tc = t_tcase(s, "death", t_stress() ? 3600 : 120);
	tcase_add_loop_test(tc, test_producer_killed, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_consumer_killed, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_random_kills, 0, T_BACKENDS);
	tcase_add_test(tc, test_hostile_scribbler);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {chan_suite};
	return t_main(makers, 1);
}
