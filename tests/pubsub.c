/* Tests for src/pubsub.c: one publisher, many subscribers, real processes, real kills, a
 * hostile scribbler, both policies. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pubsub_impl.h"
#include "testutil.h"

/* --- message lengths (the contents: t_msg_fill()), any length >= 8 ---------------------- */

static uint64_t rnd_len(uint64_t seq, uint64_t max)
{
	uint64_t x = (seq + 1) * 0x9e3779b97f4a7c15ull;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 32;
	uint64_t n = x % 4 ? x % 200 : (x >> 8) % (max + 1);
	return n < 8 ? 8 : n > max ? max : n;
}

/* --- channels ------------------------------------------------------------------------------ */

static struct shmkit_pubsub *ps_new(const char *name, uint32_t backend, int role, uint64_t cap,
				    uint64_t max_msg, uint32_t subs, uint32_t policy, uint32_t history)
{
	struct shmkit_pubsub_opts o = {.capacity = cap, .max_msg = max_msg, .max_subscribers = subs,
				       .policy = policy, .history = history, .seg.backend = backend};
	return t_pubsub_new(name, role, &o);
}

/* --- basics --------------------------------------------------------------------------------- */

/* The channel most basic tests use: a 4096-byte POSIX ring (max_msg 1024) under the block
 * policy with room for 3 subscribers; its publisher *p and subscribers s[0..2]. */
static void basic_channel(char *name, size_t cap, struct shmkit_pubsub **p,
			  struct shmkit_pubsub *s[3])
{
	t_name(name, cap, "basic");
	*p = ps_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_PUBSUB_PUBLISHER, 4096, 0, 3,
		    SHMKIT_PUBSUB_BLOCK, 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s[i]), 0);
}

static void basic_close(struct shmkit_pubsub *p, struct shmkit_pubsub *s[3])
{
	shmkit_pubsub_unlink(p);
	for (int i = 0; i < 3; i++)
		shmkit_pubsub_close(s[i]);
	shmkit_pubsub_close(p);
}

/* One publisher and up to max_subscribers subscribers: a second publisher, an unknown role
 * and one subscriber too many are refused; each role's calls are refused to the other; a
 * release or validate without a peek is -EINVAL. */
START_TEST(test_roles)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3], *x;
	basic_channel(name, sizeof name, &p, s);
	ck_assert_uint_eq(shmkit_pubsub_max_msg(p), 1024);
	ck_assert_int_eq(shmkit_pubsub_policy(p), SHMKIT_PUBSUB_BLOCK);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &x), -EBUSY);
	ck_assert_int_eq(shmkit_pubsub_open(name, 7, NULL, &x), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &x), -ENOSPC);
	ck_assert_int_eq(shmkit_pubsub_peer_alive(p), 3);
	ck_assert_int_eq(shmkit_pubsub_peer_alive(s[0]), 1);
	const void *cp;
	size_t n;
	void *vp;
	ck_assert_int_eq(shmkit_pubsub_peek(p, &cp, &n), -EPERM);
	ck_assert_int_eq(shmkit_pubsub_loan(s[0], 8, &vp), -EPERM);
	ck_assert_int_eq(shmkit_pubsub_peek(s[0], &cp, &n), -EAGAIN);
	ck_assert_int_eq(shmkit_pubsub_release(s[0], 0), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_validate(s[0]), -EINVAL);
	basic_close(p, s);
	ck_assert_int_eq(shmkit_pubsub_close(NULL), 0);
}
END_TEST

/* Messages of 0, 1 and max_msg bytes reach every subscriber whole, in order, numbered and
 * 16-byte aligned; a larger one is refused, and a receive buffer too small leaves the
 * message where it is. */
START_TEST(test_every_subscriber_gets_every_message)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3];
	basic_channel(name, sizeof name, &p, s);
	char big[1025];
	memset(big, 'b', sizeof big);
	ck_assert_int_eq(shmkit_pubsub_send(p, "", 0), 0);
	ck_assert_int_eq(shmkit_pubsub_send(p, "x", 1), 0);
	ck_assert_int_eq(shmkit_pubsub_send(p, big, 1024), 0);
	ck_assert_int_eq(shmkit_pubsub_send(p, big, 1025), -EMSGSIZE);
	char buf[2048];
	const void *cp;
	size_t n;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(shmkit_pubsub_recv(s[i], buf, sizeof buf), 0);
		ck_assert_int_eq(shmkit_pubsub_recv(s[i], buf, sizeof buf), 1);
		ck_assert_int_eq(buf[0], 'x');
		ck_assert_int_eq(shmkit_pubsub_recv(s[i], buf, 10), -ENOBUFS); /* stays */
		ck_assert_int_eq(shmkit_pubsub_peek(s[i], &cp, &n), 0);
		ck_assert_uint_eq(n, 1024);
		ck_assert_uint_eq((uintptr_t)cp % 16, 0);
		uint64_t seq;
		ck_assert_int_eq(shmkit_pubsub_seq(s[i], &seq), 0);
		ck_assert_uint_eq(seq, 2);
		ck_assert_int_eq(shmkit_pubsub_validate(s[i]), 0);
		ck_assert_int_eq(shmkit_pubsub_release(s[i], 0), 0);
		ck_assert_int_eq(shmkit_pubsub_recv(s[i], buf, sizeof buf), -EAGAIN);
	}
	basic_close(p, s);
}
END_TEST

/* Block policy: a subscriber that stops reading holds the publisher once the ring is full
 * (-EAGAIN, then a wait that times out, never early); once it leaves, there is room. */
START_TEST(test_block_policy_waits_for_slowest)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3];
	basic_channel(name, sizeof name, &p, s);
	char big[512] = {0}, buf[2048];
	int k = 0;
	while (shmkit_pubsub_send(p, big, 512) == 0) {
		k++;
		ck_assert_int_eq(shmkit_pubsub_recv(s[0], buf, sizeof buf), 512);
	}
	ck_assert_int_ge(k, 6); /* 4096-byte ring of 528-byte records */
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_pubsub_send_wait(p, big, 512, t_in_ms(&ts, 30)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 30000000);
	/* The slow ones leave (or catch up): space again. */
	ck_assert_int_eq(shmkit_pubsub_close(s[2]), 0);
	s[2] = NULL;
	for (int i = 0; i < k; i++)
		ck_assert_int_eq(shmkit_pubsub_recv(s[1], buf, sizeof buf), 512);
	ck_assert_int_eq(shmkit_pubsub_send(p, big, 512), 0);
	basic_close(p, s);
}
END_TEST

/* A slot freed by a leaver is taken by the next joiner, which starts at the newest: it gets
 * nothing published before it joined. */
START_TEST(test_joiner_takes_freed_slot)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3];
	basic_channel(name, sizeof name, &p, s);
	ck_assert_int_eq(shmkit_pubsub_send(p, "before", 6), 0);
	ck_assert_int_eq(shmkit_pubsub_close(s[2]), 0);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s[2]), 0);
	char buf[64];
	ck_assert_int_eq(shmkit_pubsub_recv(s[2], buf, sizeof buf), -EAGAIN);
	basic_close(p, s);
}
END_TEST

/* An observer sees the channel's counters, the publisher alive, and each subscriber's
 * messages, lag and liveness. */
START_TEST(test_observer_stats)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3];
	basic_channel(name, sizeof name, &p, s);
	char buf[64];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(shmkit_pubsub_send(p, "m", 1), 0);
	for (int i = 0; i < 7; i++) /* s[0] reads 3, s[1] none, s[2] all 4 */
		shmkit_pubsub_recv(s[i < 3 ? 0 : 2], buf, sizeof buf);
	struct shmkit_pubsub *obs;
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_OBSERVER, T_PUBSUB_RO, &obs), 0);
	struct shmkit_pubsub_stats st;
	ck_assert_int_eq(shmkit_pubsub_stats(obs, &st), 0);
	ck_assert_uint_eq(st.capacity, 4096);
	ck_assert_uint_eq(st.max_subscribers, 3);
	ck_assert_uint_eq(st.subscribers, 3);
	ck_assert_uint_eq(st.next_seq, 4);
	ck_assert_uint_eq(st.msgs_published, 4);
	ck_assert_int_eq(st.publisher_pid, getpid());
	ck_assert_int_eq(st.publisher_alive, 1);
	ck_assert_int_eq(st.closed, 0);
	struct shmkit_pubsub_sub_stats ss[4];
	ck_assert_int_eq(shmkit_pubsub_subscribers(obs, ss, 4), 3);
	ck_assert_uint_eq(ss[0].msgs, 3);
	ck_assert_uint_eq(ss[0].lag, 1);
	ck_assert_uint_eq(ss[2].lag, 0);
	ck_assert_int_eq(ss[1].alive, 1);
	ck_assert_int_eq(shmkit_pubsub_close(obs), 0);
	basic_close(p, s);
}
END_TEST

/* Held releases (MORE) stay held: an empty peek does not publish them, a wait refuses to
 * wait on them (-EDEADLK), and only the subscriber's flush hands the space back. */
START_TEST(test_held_releases_stay_held)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3], *obs;
	basic_channel(name, sizeof name, &p, s);
	ck_assert_int_eq(shmkit_pubsub_send(p, "m", 1), 0);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_OBSERVER, T_PUBSUB_RO, &obs), 0);
	const void *cp;
	size_t n;
	struct timespec ts;
	struct shmkit_pubsub_sub_stats ss[4];
	ck_assert_int_eq(shmkit_pubsub_peek(s[0], &cp, &n), 0);
	ck_assert_int_eq(shmkit_pubsub_release(s[0], SHMKIT_PUBSUB_MORE), 0);
	ck_assert_int_eq(shmkit_pubsub_peek(s[0], &cp, &n), -EAGAIN);
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s[0], &cp, &n, t_in_ms(&ts, 10)), -EDEADLK);
	ck_assert_int_eq(shmkit_pubsub_subscribers(obs, ss, 4), 3);
	ck_assert_uint_eq(ss[0].lag, 1);
	ck_assert_int_eq(shmkit_pubsub_flush(s[0]), 0);
	ck_assert_int_eq(shmkit_pubsub_subscribers(obs, ss, 4), 3);
	ck_assert_uint_eq(ss[0].lag, 0);
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s[0], &cp, &n, t_in_ms(&ts, 10)), -ETIMEDOUT);
	ck_assert_int_eq(shmkit_pubsub_close(obs), 0);
	basic_close(p, s);
}
END_TEST

/* Open refuses a segment that is not a pub/sub channel. */
START_TEST(test_open_not_a_channel)
{
	struct shmkit_pubsub *x;
	char raw[64];
	struct shmkit_segment *seg = t_raw_segment(raw, sizeof raw);
	ck_assert_int_eq(shmkit_pubsub_open(raw, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &x), -EMEDIUMTYPE);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

/* The publisher's close: what was published is still delivered, then end of stream
 * (-EPIPE); a new publisher continues the numbering. */
START_TEST(test_close_then_new_publisher)
{
	char name[64];
	struct shmkit_pubsub *p, *s[3];
	basic_channel(name, sizeof name, &p, s);
	ck_assert_int_eq(shmkit_pubsub_send(p, "one", 3), 0);
	ck_assert_int_eq(shmkit_pubsub_send(p, "two", 3), 0);
	ck_assert_int_eq(shmkit_pubsub_close(p), 0);
	char buf[64];
	const void *cp;
	size_t n;
	struct timespec ts;
	for (int i = 0; i < 3; i += 2)
		for (int k = 0; k < 2; k++)
			ck_assert_int_eq(shmkit_pubsub_recv(s[i], buf, sizeof buf), 3);
	ck_assert_int_eq(shmkit_pubsub_recv(s[0], buf, sizeof buf), -EPIPE);
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s[2], &cp, &n, t_in_ms(&ts, 10)), -EPIPE);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_pubsub_send(p, "again", 5), 0);
	ck_assert_int_eq(shmkit_pubsub_peek(s[0], &cp, &n), 0);
	uint64_t seq;
	shmkit_pubsub_seq(s[0], &seq);
	ck_assert_uint_eq(seq, 2);
	ck_assert_int_eq(shmkit_pubsub_unlink(p), 0);
	basic_close(p, s);
}
END_TEST

START_TEST(test_bad_options)
{
	struct shmkit_pubsub *ps;
	struct shmkit_pubsub_opts o = {.capacity = 4096, .max_msg = 2033};
	ck_assert_int_eq(shmkit_pubsub_create("x", SHMKIT_PUBSUB_PUBLISHER, &o, &ps), -EINVAL);
	o = (struct shmkit_pubsub_opts){.max_subscribers = SHMKIT_PUBSUB_MAX_SUBSCRIBERS + 1};
	ck_assert_int_eq(shmkit_pubsub_create("x", SHMKIT_PUBSUB_PUBLISHER, &o, &ps), -EINVAL);
	o = (struct shmkit_pubsub_opts){.policy = 2};
	ck_assert_int_eq(shmkit_pubsub_create("x", SHMKIT_PUBSUB_PUBLISHER, &o, &ps), -EINVAL);
	o = (struct shmkit_pubsub_opts){.history = SHMKIT_PUBSUB_MAX_HISTORY + 1};
	ck_assert_int_eq(shmkit_pubsub_create("x", SHMKIT_PUBSUB_PUBLISHER, &o, &ps), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_create("x", SHMKIT_PUBSUB_OBSERVER, NULL, &ps), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_create("bad/name", SHMKIT_PUBSUB_PUBLISHER, NULL, &ps), -EINVAL);
	o = (struct shmkit_pubsub_opts){.max_msg = 100000};
	o.seg.backend = SHMKIT_BACKEND_MEMFD;
	ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &o, &ps), 0);
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(ps, &st);
	ck_assert_uint_eq(st.capacity, 512 * 1024);
	ck_assert_uint_eq(st.max_msg, 100000);
	ck_assert_uint_eq(st.max_subscribers, SHMKIT_PUBSUB_DEFAULT_SUBSCRIBERS);
	shmkit_pubsub_close(ps);
}
END_TEST

/* --- block policy: every subscriber gets every message, in order ----------------------------- */

/* A subscriber child joins and counts itself ready; a failure to join is reported. */
static int sub_join(struct t_child *a, struct shmkit_pubsub **ps)
{
	int err = t_pubsub_open(&a->w, SHMKIT_PUBSUB_SUBSCRIBER, 0, ps);
	if (err) {
		T_CHILD_FAIL(a->sh, "sub %d open: %s", a->id, shmkit_strerror(err));
		return err;
	}
	atomic_fetch_add(&a->sh->ready, 1);
	return 0;
}

/* Forks `n` subscribers running `fn`, each with a copy of a[0] but its own id (i) and mode
 * (i % modes), then waits until all of them have joined or one has failed. */
static void fork_subscribers(int (*fn)(void *), struct t_child *a, pid_t *pid, int n, int modes)
{
	for (int i = 0; i < n; i++) {
		a[i] = a[0];
		a[i].id = i;
		a[i].mode = i % modes;
		pid[i] = t_fork(fn, &a[i]);
	}
	T_WAIT_FOR(atomic_load(&a[0].sh->ready) >= n || atomic_load(&a[0].sh->failed));
}

/* mode 0: zero copy; 1: recv (a copy); 2: zero copy, releases in MORE batches. */
static int block_subscriber(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	int err = sub_join(a, &ps);
	if (err)
		return 1;
	uint8_t *tmp = malloc(a->max + 16);
	for (uint64_t seq = 0;; seq++) {
		const void *p;
		size_t n;
		if (a->mode == 1) {
			ssize_t r = shmkit_pubsub_recv_wait(ps, tmp, a->max + 16, NULL);
			err = r < 0 ? (int)r : 0;
			n = r < 0 ? 0 : (size_t)r;
			p = tmp;
		} else {
			/* Held releases go back before waiting (the wait refuses, -EDEADLK). */
			err = shmkit_pubsub_peek(ps, &p, &n);
			if (err == -EAGAIN) {
				shmkit_pubsub_flush(ps);
				err = shmkit_pubsub_peek_wait(ps, &p, &n, NULL);
			}
		}
		if (err == -EPIPE && seq == a->count)
			break;
		uint64_t want = rnd_len(seq, a->max);
		if (err || n != want || t_msg_check(p, n, seq) != 0) {
			T_CHILD_FAIL(a->sh, "sub %d seq %llu: %s, len %zu want %llu", a->id,
				     (unsigned long long)seq, shmkit_strerror(err), n,
				     (unsigned long long)want);
			return 1;
		}
		if (a->mode != 1) {
			err = shmkit_pubsub_release(ps, a->mode == 2 && seq % 7 ? SHMKIT_PUBSUB_MORE : 0);
			if (err) {
				T_CHILD_FAIL(a->sh, "sub %d release: %s", a->id, shmkit_strerror(err));
				return 1;
			}
		}
		atomic_store_explicit(&a->sh->got[a->id], seq + 1, memory_order_relaxed);
	}
	free(tmp);
	if (shmkit_pubsub_lost(ps, NULL) != 0) {
		T_CHILD_FAIL(a->sh, "sub %d: lost messages under the block policy", a->id);
		return 1;
	}
	shmkit_pubsub_close(ps);
	return 0;
}

START_TEST(test_block_four_subscribers)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "four");
	uint64_t count = t_stress() ? 5000000 : 150000, max = 3000;
	struct shmkit_pubsub *p = ps_new(name, backend, SHMKIT_PUBSUB_PUBLISHER, 1 << 16, max, 8,
					 SHMKIT_PUBSUB_BLOCK, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a[4] = {{.w = T_WHERE(name, backend, p), .sh = sh, .count = count, .max = max}};
	pid_t pid[4];
	fork_subscribers(block_subscriber, a, pid, 4, 3);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	ck_assert_int_eq(atomic_load(&sh->ready), 4);
	uint8_t *tmp = malloc(max);
	for (uint64_t seq = 0; seq < count; seq++) {
		uint64_t len = rnd_len(seq, max);
		struct timespec ts;
		int err;
		if (seq % 2) {
			t_msg_fill(tmp, len, seq);
			err = shmkit_pubsub_send_wait(p, tmp, len, t_in_ms(&ts, 20000));
		} else {
			void *buf;
			err = shmkit_pubsub_loan_wait(p, len, &buf, t_in_ms(&ts, 20000));
			if (!err) {
				t_msg_fill(buf, len, seq);
				err = shmkit_pubsub_commit(p, len, seq % 4 ? SHMKIT_PUBSUB_MORE : 0);
			}
		}
		T_CHECK(err == 0, "publish seq %llu: %s (%s)", (unsigned long long)seq,
			shmkit_strerror(err), sh->why);
	}
	free(tmp);
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(p, &st);
	shmkit_pubsub_close(p);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(t_wait(pid[i], 120000), 0);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(atomic_load(&sh->got[i]), count);
	ck_assert_uint_eq(st.msgs_published, count);
	ck_assert_uint_eq(st.subscribers_dropped, 0);
	t_where_remove(&a[0].w);
	t_shared_free(sh);
}
END_TEST

/* --- overwrite policy ---------------------------------------------------------------------------- */

/* One process, both roles: lapping is deterministic. The accounting must be exact: every
 * message is either delivered or counted as lost, and each -ESTALE's count is the gap. */
/* The overwrite channel several tests use: a 4096-byte memfd ring for 100-byte messages
 * (128-byte records, 32 to a lap) and one subscriber, *s. Returns the publisher. */
static struct shmkit_pubsub *overwrite_channel(struct shmkit_pubsub **s)
{
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 4096,
					 100, 2, SHMKIT_PUBSUB_OVERWRITE, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, s), 0);
	return p;
}

/* Sends the 100-byte messages numbered *seq .. to - 1 (t_msg_fill() contents), none of
 * which may wait (overwrite); *seq is then `to`. */
static void send_upto(struct shmkit_pubsub *p, uint64_t *seq, uint64_t to)
{
	uint8_t msg[100];
	for (; *seq < to; (*seq)++) {
		t_msg_fill(msg, sizeof msg, *seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	}
}

/* One receive that accounts for a reported loss: on -ESTALE adds the gap (never 0) to *lost
 * and moves *next, the number expected, past it. */
static ssize_t recv_counted(struct shmkit_pubsub *s, uint8_t *buf, size_t size, uint64_t *lost,
			    uint64_t *next)
{
	ssize_t n = shmkit_pubsub_recv(s, buf, size);
	if (n == -ESTALE) {
		uint64_t since;
		shmkit_pubsub_lost(s, &since);
		ck_assert_uint_gt(since, 0);
		*lost += since;
		*next += since;
	}
	return n;
}

START_TEST(test_overwrite_lapped_exact)
{
	struct shmkit_pubsub *s, *p = overwrite_channel(&s);
	uint8_t buf[128];
	uint64_t published = 0, delivered = 0, lost = 0, next = 0;
	int jumps = 0;
	/* 100-byte messages are 128-byte records: 32 fit in the 4096-byte ring. */
	for (int round = 0; round < 50; round++) {
		uint64_t burst = (uint64_t)(round * 7) % 90 + 1;
		send_upto(p, &published, published + burst);
		/* Read a few, every round; sometimes all. */
		uint64_t want = round % 3 ? 3 : UINT64_MAX;
		bool jumped = false;
		for (uint64_t r = 0; r < want;) {
			ssize_t n = recv_counted(s, buf, sizeof buf, &lost, &next);
			if (n == -EAGAIN)
				break;
			if (n == -ESTALE) {
				jumped = true;
				continue;
			}
			ck_assert_int_eq(n, 100);
			ck_assert_uint_eq(t_msg_seq(buf), next); /* exactly the gap was reported */
			ck_assert_int_eq(t_msg_check(buf, 100, next), 0);
			if (jumped) {
				/* Resumed at the OLDEST message still valid: within one ring of the
				 * newest, and at most the reclaim step (cap/16 = 2 records, plus the
				 * record being written) short of a full ring. */
				ck_assert_uint_le(published - next, 32);
				ck_assert_uint_ge(published - next, 29);
				jumped = false;
				jumps++;
			}
			next++;
			delivered++;
			r++;
		}
	}
	ck_assert_int_gt(jumps, 3);
	/* Drain: afterwards every message is accounted for. */
	for (;;) {
		ssize_t n = recv_counted(s, buf, sizeof buf, &lost, &next);
		if (n == -EAGAIN)
			break;
		if (n == -ESTALE)
			continue;
		ck_assert_uint_eq(t_msg_seq(buf), next);
		next++;
		delivered++;
	}
	ck_assert_uint_gt(lost, 0);
	ck_assert_uint_eq(delivered + lost, published);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), lost);
	struct shmkit_pubsub_sub_stats ss;
	ck_assert_int_eq(shmkit_pubsub_subscribers(p, &ss, 1), 1);
	ck_assert_uint_eq(ss.lost, lost);
	ck_assert_uint_eq(ss.msgs, delivered);
	ck_assert_uint_eq(ss.lag, 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* The reclaim (`oldest`) across many laps of records of every size, PADs and records
 * longer than the reclaim's chunk (cap/16) included, with the publisher handed over every
 * few laps (a new one knows no record boundaries yet and must read its predecessor's
 * headers back). After every send, `oldest` must be a record boundary of the simulated
 * layout, at or above what the next loan may overwrite (L = the position after the record
 * + its zeroed next header - cap), and not more than a chunk and a record beyond it (the
 * reclaim gives up no more history than its step). A lagging subscriber (overwrite) reads
 * on with exact loss accounting. */
START_TEST(test_reclaim_boundaries)
{
	const uint64_t cap = 8192, max = cap / 2 - 16, chunk = cap / 16;
	uint32_t policy = _i ? SHMKIT_PUBSUB_OVERWRITE : SHMKIT_PUBSUB_BLOCK;
	char name[64];
	t_name(name, sizeof name, "reclaim");
	struct shmkit_pubsub *p = ps_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_PUBSUB_PUBLISHER, cap,
					 max, 2, policy, 0);
	struct shmkit_pubsub *s = NULL;
	if (policy == SHMKIT_PUBSUB_OVERWRITE)
		ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s), 0);
	/* Record boundaries of the last lap, as the layout places them (top of src/pubsub.c). */
	enum { B = 1024 };
	uint64_t bound[B], nb = 0, pos = 0, delivered = 0, lost = 0, next = 0;
	static uint8_t msg[8192], buf[8192];
	int handovers = 0;
	for (uint64_t seq = 0; seq < 6000; seq++) {
		if (seq % 700 == 699) {
			ck_assert_int_eq(shmkit_pubsub_close(p), 0);
			ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p), 0);
			handovers++;
		}
		uint64_t len = rnd_len(seq, max), need = rec_need(len);
		if ((pos & (cap - 1)) + need > cap) {
			pos += cap - (pos & (cap - 1)); /* the PAD */
			bound[nb++ % B] = pos;
		}
		t_msg_fill(msg, len, seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, len), 0);
		pos += need;
		bound[nb++ % B] = pos;
		uint64_t o = atomic_load(&p->ctl->oldest), L = pos + REC_HDR - cap;
		if (pos + REC_HDR > cap) {
			ck_assert_msg(pos_ge(o, L), "oldest %llu below L %llu", (unsigned long long)o,
				      (unsigned long long)L);
			ck_assert_uint_le(o - L, chunk + rec_need(max));
		}
		bool found = o == 0;
		for (uint64_t i = nb > B ? nb - B : 0; i < nb && !found; i++)
			found = bound[i % B] == o;
		ck_assert_msg(found, "oldest %llu is no record boundary", (unsigned long long)o);
		if (!s || seq % 5)
			continue;
		for (int r = 0; r < 3; r++) {
			ssize_t n = recv_counted(s, buf, sizeof buf, &lost, &next);
			if (n == -EAGAIN)
				break;
			if (n == -ESTALE)
				continue;
			ck_assert_int_eq(n, rnd_len(next, max));
			ck_assert_int_eq(t_msg_check(buf, (uint64_t)n, next), 0);
			next++;
			delivered++;
		}
	}
	ck_assert_int_eq(handovers, 8);
	if (s) {
		ck_assert_uint_gt(lost, 0);
		ck_assert_uint_gt(delivered, 1000);
		shmkit_pubsub_close(s);
	}
	ck_assert_int_eq(shmkit_pubsub_unlink(p), 0);
	shmkit_pubsub_close(p);
}
END_TEST

/* A subscriber lapped all the way to the tail (the publisher's reclaim may move `oldest` up
 * to the tail) jumps there and finds nothing yet: its blocking receive must wait, not
 * refuse with -EDEADLK as if it held MORE releases (its position moved, nothing it was
 * given; seen once as a failure of test_overwrite_lapped_processes under ASan). */
START_TEST(test_overwrite_lapped_to_tail_waits)
{
	struct shmkit_pubsub *s, *p = overwrite_channel(&s);
	uint8_t msg[100];
	uint64_t seq = 0;
	send_upto(p, &seq, 3);
	/* Everything published reclaimed: `oldest` at the tail, a record boundary. */
	atomic_store(&p->ctl->oldest, atomic_load(&p->ctl->tail));
	struct timespec ts;
	ck_assert_int_eq(shmkit_pubsub_recv_wait(s, msg, sizeof msg, t_in_ms(&ts, 50)), -ETIMEDOUT);
	t_msg_fill(msg, sizeof msg, seq);
	ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	ssize_t r;
	do
		r = shmkit_pubsub_recv_wait(s, msg, sizeof msg, t_in_ms(&ts, 5000));
	while (r == -ESTALE);
	ck_assert_int_eq(r, 100);
	ck_assert_uint_eq(t_msg_seq(msg), 3);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 3);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* A zero-copy read overwritten while it is read: validate and release say so. */
START_TEST(test_overwrite_validate_after_use)
{
	struct shmkit_pubsub *s, *p = overwrite_channel(&s);
	uint64_t seq = 0;
	send_upto(p, &seq, 10);
	const void *cp;
	size_t n;
	/* Intact: validate 0, release 0. */
	ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), 0);
	ck_assert_int_eq(shmkit_pubsub_validate(s), 0);
	ck_assert_int_eq(shmkit_pubsub_release(s, 0), 0);
	/* Peek message 1, then the publisher laps it while we "read". */
	ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), 0);
	uint8_t copy[100];
	shmkit_seqlock_load(copy, cp, n);
	ck_assert_int_eq(t_msg_check(copy, n, 1), 0);
	send_upto(p, &seq, 60);
	ck_assert_int_eq(shmkit_pubsub_validate(s), -ESTALE);
	ck_assert_int_eq(shmkit_pubsub_release(s, 0), -EINVAL); /* the peek was dropped */
	uint64_t since;
	ck_assert_uint_eq(shmkit_pubsub_lost(s, &since), 1);
	ck_assert_uint_eq(since, 1);
	/* Next: the jump to the oldest valid message, with the exact gap. */
	ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), -ESTALE);
	shmkit_pubsub_lost(s, &since);
	ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), 0);
	uint64_t first = t_msg_seq(cp);
	ck_assert_uint_eq(first, 2 + since);
	ck_assert_uint_ge(first, 60 - 32);
	/* Same, discovered by release: peek, overwrite, release -> -ESTALE. */
	send_upto(p, &seq, 120);
	ck_assert_int_eq(shmkit_pubsub_release(s, 0), -ESTALE);
	shmkit_pubsub_lost(s, &since);
	ck_assert_uint_eq(since, 1);
	ssize_t r;
	do
		r = shmkit_pubsub_recv(s, copy, sizeof copy);
	while (r == -ESTALE);
	ck_assert_int_eq(r, 100);
	ck_assert_int_eq(t_msg_check(copy, 100, t_msg_seq(copy)), 0);
	/* Only message 0 was delivered before: 1 .. seq-1 are all accounted as lost. */
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL) + 1, t_msg_seq(copy));
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* Real processes: a fast publisher laps slow subscribers; each one's accounting is exact
 * and everything it accepted is intact. */
static int overwrite_subscriber(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	int err = sub_join(a, &ps);
	if (err)
		return 1;
	uint8_t *tmp = malloc(a->max + 16);
	uint64_t next = 0, got = 0, lost = 0;
	uint64_t rng = t_seed() + (uint64_t)a->id;
	for (;;) {
		struct timespec ts;
		const void *p = NULL;
		size_t n = 0;
		if (a->mode == 1) {
			ssize_t r = shmkit_pubsub_recv_wait(ps, tmp, a->max + 16, t_in_ms(&ts, 30000));
			err = r < 0 ? (int)r : 0;
			n = r < 0 ? 0 : (size_t)r;
		} else {
			err = shmkit_pubsub_peek_wait(ps, &p, &n, t_in_ms(&ts, 30000));
			if (!err) {
				shmkit_seqlock_load(tmp, p, n); /* may race with the publisher */
				err = shmkit_pubsub_release(ps, 0);
			}
		}
		if (err == -EPIPE)
			break;
		if (err == -ESTALE) {
			uint64_t since;
			shmkit_pubsub_lost(ps, &since);
			lost += since;
			next += since;
			continue;
		}
		if (err) {
			T_CHILD_FAIL(a->sh, "sub %d: %s", a->id, shmkit_strerror(err));
			return 1;
		}
		uint64_t seq = t_msg_seq(tmp);
		if (seq != next || n != rnd_len(seq, a->max) || t_msg_check(tmp, n, seq)) {
			T_CHILD_FAIL(a->sh, "sub %d: got seq %llu len %zu, expected seq %llu", a->id,
				     (unsigned long long)seq, n, (unsigned long long)next);
			return 1;
		}
		next++;
		got++;
		if (a->id % 2 == 0 && t_rand(&rng) % 64 == 0)
			usleep(200); /* a slow reader */
	}
	free(tmp);
	atomic_store(&a->sh->got[a->id], got);
	atomic_store(&a->sh->lost[a->id], lost);
	if (shmkit_pubsub_lost(ps, NULL) != lost) {
		T_CHILD_FAIL(a->sh, "sub %d: lost total mismatch", a->id);
		return 1;
	}
	shmkit_pubsub_close(ps);
	return 0;
}

START_TEST(test_overwrite_lapped_processes)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "lap");
	uint64_t count = t_stress() ? 3000000 : 200000, max = 600;
	struct shmkit_pubsub *p = ps_new(name, backend, SHMKIT_PUBSUB_PUBLISHER, 1 << 14, max, 4,
					 SHMKIT_PUBSUB_OVERWRITE, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a[3] = {{.w = T_WHERE(name, backend, p), .sh = sh, .count = count, .max = max}};
	pid_t pid[3];
	fork_subscribers(overwrite_subscriber, a, pid, 3, 2);
	ck_assert_int_eq(atomic_load(&sh->ready), 3);
	uint8_t *tmp = malloc(max);
	for (uint64_t seq = 0; seq < count; seq++) {
		uint64_t len = rnd_len(seq, max);
		t_msg_fill(tmp, len, seq);
		int err = shmkit_pubsub_send(p, tmp, len);
		T_CHECK(err == 0, "send: %s", shmkit_strerror(err));
		if (seq % 4096 == 0)
			usleep(100); /* let the subscribers keep up some of the time */
	}
	free(tmp);
	shmkit_pubsub_close(p);
	int status[3];
	for (int i = 0; i < 3; i++)
		status[i] = t_wait(pid[i], 120000);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(status[i], 0);
	uint64_t lost_any = 0;
	for (int i = 0; i < 3; i++) {
		ck_assert_uint_eq(atomic_load(&sh->got[i]) + atomic_load(&sh->lost[i]), count);
		lost_any += atomic_load(&sh->lost[i]);
	}
	ck_assert_uint_gt(lost_any, 0); /* the slow readers really were lapped */
	t_where_remove(&a[0].w);
	t_shared_free(sh);
}
END_TEST

/* --- death ------------------------------------------------------------------------------------- */

static int stalled_subscriber(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &ps))
		return 10;
	const void *p;
	size_t n;
	/* Peek one (holds it), then never read again. */
	struct timespec ts;
	if (shmkit_pubsub_peek_wait(ps, &p, &n, t_in_ms(&ts, 20000)))
		return 11;
	atomic_fetch_add(&a->sh->ready, 1);
	pause();
	return 12;
}

static int steady_subscriber(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &ps))
		return 10;
	atomic_fetch_add(&a->sh->ready, 1);
	for (uint64_t seq = 0;; seq++) {
		const void *p;
		size_t n;
		struct timespec ts;
		int err = shmkit_pubsub_peek_wait(ps, &p, &n, t_in_ms(&ts, 30000));
		if (err == -EPIPE && seq == a->count)
			break;
		if (err || t_msg_seq(p) != seq || t_msg_check(p, n, seq)) {
			T_CHILD_FAIL(a->sh, "steady seq %llu: %s", (unsigned long long)seq,
				     shmkit_strerror(err));
			return 1;
		}
		shmkit_pubsub_release(ps, 0);
		atomic_store(&a->sh->got[a->id], seq + 1);
	}
	shmkit_pubsub_close(ps);
	return 0;
}

START_TEST(test_subscriber_killed_while_blocked)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "skill");
	struct shmkit_pubsub *p = ps_new(name, backend, SHMKIT_PUBSUB_PUBLISHER, 4096, 200, 4,
					 SHMKIT_PUBSUB_BLOCK, 0);
	struct t_shared *sh = t_shared_new();
	uint64_t count = 2000;
	struct t_child a0 = {.w = T_WHERE(name, backend, p), .sh = sh, .count = count, .max = 200};
	struct t_child a1 = a0;
	a1.id = 1;
	pid_t steady = t_fork(steady_subscriber, &a0);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 1);
	pid_t stalled = t_fork(stalled_subscriber, &a1);
	uint8_t msg[200];
	uint64_t seq = 0;
	struct timespec ts;
	/* Publish until the stalled one has peeked, then until the ring is full for good. */
	for (; atomic_load(&sh->ready) < 2 && seq < count; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		ck_assert_int_eq(shmkit_pubsub_send_wait(p, msg, sizeof msg, t_in_ms(&ts, 20000)), 0);
		usleep(1000);
	}
	ck_assert_int_eq(atomic_load(&sh->ready), 2);
	int err = 0;
	for (; seq < count; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		err = shmkit_pubsub_send_wait(p, msg, sizeof msg, t_in_ms(&ts, 300));
		if (err)
			break;
	}
	ck_assert_int_eq(err, -ETIMEDOUT); /* blocked on the stalled subscriber */
	/* Kill it while we wait on it: the wait goes on within a slice or so. */
	uint64_t t0 = shmkit_now_ns();
	kill(stalled, SIGKILL);
	ck_assert_int_eq(shmkit_pubsub_send_wait(p, msg, sizeof msg, t_in_ms(&ts, 10000)), 0);
	uint64_t waited = shmkit_now_ns() - t0;
	ck_assert_uint_lt(waited, 3000000000ull);
	for (seq++; seq < count; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		ck_assert_int_eq(shmkit_pubsub_send_wait(p, msg, sizeof msg, t_in_ms(&ts, 20000)), 0);
	}
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(p, &st);
	ck_assert_uint_eq(st.subscribers_dropped, 1);
	ck_assert_uint_eq(st.subscribers, 1);
	shmkit_pubsub_close(p);
	ck_assert_int_eq(t_wait(stalled, 10000), 128 + SIGKILL);
	ck_assert_int_eq(t_wait(steady, 60000), 0);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	ck_assert_uint_eq(atomic_load(&sh->got[0]), count);
	t_where_remove(&a0.w);
	t_shared_free(sh);
}
END_TEST

static int publisher_then_die(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_PUBLISHER, 0, &ps))
		return 10;
	uint8_t msg[100];
	uint64_t base = a->max; /* first sequence this publisher will see */
	for (uint64_t i = 0; i < a->count; i++) {
		t_msg_fill(msg, sizeof msg, base + i);
		struct timespec ts;
		if (shmkit_pubsub_send_wait(ps, msg, sizeof msg, t_in_ms(&ts, 20000)))
			return 11;
	}
	/* A MORE commit never published and a loan never committed: never delivered. */
	void *p;
	if (shmkit_pubsub_loan(ps, 100, &p))
		return 12;
	t_msg_fill(p, 100, 999998);
	shmkit_pubsub_commit(ps, 100, SHMKIT_PUBSUB_MORE);
	if (shmkit_pubsub_loan(ps, 100, &p))
		return 12;
	t_msg_fill(p, 100, 999999);
	raise(SIGKILL);
	return 13;
}

START_TEST(test_publisher_killed)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "pkill");
	struct shmkit_pubsub *s = ps_new(name, backend, SHMKIT_PUBSUB_SUBSCRIBER, 1 << 16, 0, 4,
					 SHMKIT_PUBSUB_BLOCK, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, backend, s), .sh = sh, .count = 200};
	pid_t pid = t_fork(publisher_then_die, &a);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	struct timespec ts;
	const void *cp;
	size_t n;
	for (uint64_t seq = 0; seq < 200; seq++) {
		ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 5000)), 0);
		ck_assert_uint_eq(n, 100);
		ck_assert_int_eq(t_msg_check(cp, n, seq), 0);
		shmkit_pubsub_release(s, 0);
	}
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 10000)), -EOWNERDEAD);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 5000000000ull);
	ck_assert_int_eq(shmkit_pubsub_peer_alive(s), 0);
	/* Takeover: the numbering continues where the dead one published. */
	a.max = 200;
	a.count = 10;
	pid = t_fork(publisher_then_die, &a);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	for (uint64_t seq = 200; seq < 210; seq++) {
		ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 5000)), 0);
		ck_assert_int_eq(t_msg_check(cp, n, seq), 0);
		uint64_t q;
		shmkit_pubsub_seq(s, &q);
		ck_assert_uint_eq(q, seq);
		shmkit_pubsub_release(s, 0);
	}
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 5000)), -EOWNERDEAD);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 0);
	shmkit_pubsub_unlink(s);
	shmkit_pubsub_close(s);
	t_shared_free(sh);
}
END_TEST

/* --- join / leave churn --------------------------------------------------------------------------- */

static int churn_publisher(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_PUBLISHER, 0, &ps))
		return 10;
	atomic_fetch_add(&a->sh->ready, 1);
	while (!atomic_load(&a->sh->go))
		usleep(200);
	uint8_t msg[512];
	for (uint64_t seq = 0; seq < a->count; seq++) {
		uint64_t len = 8 + seq % 500;
		t_msg_fill(msg, len, seq);
		struct timespec ts;
		int err = shmkit_pubsub_send_wait(ps, msg, len, t_in_ms(&ts, 20000));
		if (err) {
			T_CHILD_FAIL(a->sh, "publisher seq %llu: %s", (unsigned long long)seq,
				     shmkit_strerror(err));
			return 1;
		}
		atomic_store(&a->sh->sent, seq + 1);
	}
	shmkit_pubsub_close(ps);
	return 0;
}

static int churner(void *arg)
{
	struct t_child *a = arg;
	uint64_t rng = t_seed() * 31 + (uint64_t)getpid();
	while (!atomic_load(&a->sh->stop)) {
		struct shmkit_pubsub *ps;
		int err = t_pubsub_open(&a->w, SHMKIT_PUBSUB_SUBSCRIBER, SHMKIT_PUBSUB_NO_SPIN, &ps);
		if (err == -ENOSPC) {
			usleep(1000);
			continue;
		}
		if (err) {
			T_CHILD_FAIL(a->sh, "churner open: %s", shmkit_strerror(err));
			return 1;
		}
		atomic_fetch_add(&a->sh->joins, 1);
		uint64_t want = t_rand(&rng) % 300, prev = UINT64_MAX;
		for (uint64_t i = 0; i < want; i++) {
			const void *p;
			size_t n;
			struct timespec ts;
			err = shmkit_pubsub_peek(ps, &p, &n);
			if (err == -EAGAIN) {
				shmkit_pubsub_flush(ps); /* held releases go back first */
				err = shmkit_pubsub_peek_wait(ps, &p, &n, t_in_ms(&ts, 200));
			}
			if (err == -EPIPE || err == -ETIMEDOUT)
				break;
			if (err || t_msg_check(p, n, t_msg_seq(p)) ||
			    (prev != UINT64_MAX && t_msg_seq(p) != prev + 1)) {
				T_CHILD_FAIL(a->sh, "churner: %s, seq %llu after %llu",
					     shmkit_strerror(err),
					     err ? 0ull : (unsigned long long)t_msg_seq(p),
					     (unsigned long long)prev);
				return 1;
			}
			prev = t_msg_seq(p);
			shmkit_pubsub_release(ps, t_rand(&rng) % 4 ? SHMKIT_PUBSUB_MORE : 0);
		}
		shmkit_pubsub_close(ps);
	}
	return 0;
}

START_TEST(test_join_leave_churn)
{
	char name[64];
	t_name(name, sizeof name, "churn");
	struct shmkit_pubsub *own = ps_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_PUBSUB_PUBLISHER,
					   1 << 14, 512, 6, SHMKIT_PUBSUB_BLOCK, 0);
	shmkit_pubsub_close(own); /* hand the publisher role to a child */
	struct t_shared *sh = t_shared_new();
	uint64_t count = t_stress() ? 3000000 : 60000;
	struct t_child a = {.w = {name, SHMKIT_BACKEND_POSIX, -1}, .sh = sh, .count = count, .max = 512};
	/* The publisher first: it re-opens the stream our close ended. */
	pid_t pub = t_fork(churn_publisher, &a);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 1);
	pid_t steady = t_fork(steady_subscriber, &a);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 2);
	ck_assert_int_eq(atomic_load(&sh->ready), 2);
	pid_t ch[4];
	for (int i = 0; i < 4; i++)
		ch[i] = t_fork(churner, &a);
	atomic_store(&sh->go, 1);
	uint64_t rng = t_seed();
	int kills = 0;
	/* Kill a churner now and then (it may be mid-read or mid-join) and start another. */
	while (atomic_load(&sh->sent) < count && !atomic_load(&sh->failed)) {
		usleep(50000 + t_rand(&rng) % 100000);
		int v = (int)(t_rand(&rng) % 4);
		kill(ch[v], SIGKILL);
		ck_assert_int_eq(t_wait(ch[v], 10000), 128 + SIGKILL);
		kills++;
		ch[v] = t_fork(churner, &a);
	}
	int sp = t_wait(pub, 120000);
	atomic_store(&sh->stop, 1);
	int sc[4];
	for (int i = 0; i < 4; i++)
		sc[i] = t_wait(ch[i], 30000);
	int ss = t_wait(steady, 60000);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	ck_assert_int_eq(sp, 0);
	ck_assert_int_eq(ss, 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(sc[i], 0);
	ck_assert_uint_eq(atomic_load(&sh->got[0]), count);
	ck_assert_uint_gt(atomic_load(&sh->joins), 4);
	ck_assert_int_gt(kills, 0);
	t_where_remove(&a.w);
	t_shared_free(sh);
}
END_TEST

/* --- history ----------------------------------------------------------------------------------------- */

START_TEST(test_history)
{
	uint32_t policy = _i;
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 8192,
					 100, 4, policy, 5);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	uint8_t msg[100];
	struct shmkit_pubsub *s, *none;
	/* Nothing published yet: a joiner starts at the first message. */
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	for (uint64_t seq = 0; seq < 3; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	}
	uint8_t buf[128];
	for (uint64_t seq = 0; seq < 3; seq++) {
		ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), 100);
		ck_assert_uint_eq(t_msg_seq(buf), seq);
	}
	shmkit_pubsub_close(s);
	for (uint64_t seq = 3; seq < 20; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	}
	/* A late joiner gets the last 5; one that asks for no history gets none. */
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, SHMKIT_PUBSUB_NO_HISTORY, &none), 0);
	for (uint64_t seq = 15; seq < 20; seq++) {
		ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), 100);
		ck_assert_uint_eq(t_msg_seq(buf), seq);
	}
	ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), -EAGAIN);
	ck_assert_int_eq(shmkit_pubsub_recv(none, buf, sizeof buf), -EAGAIN);
	t_msg_fill(msg, sizeof msg, 20);
	ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	ck_assert_int_eq(shmkit_pubsub_recv(none, buf, sizeof buf), 100);
	ck_assert_uint_eq(t_msg_seq(buf), 20);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(none);
	shmkit_pubsub_close(p);
}
END_TEST

/* --- history when fewer than K still fit ------------------------------------------------------------ */

/* The oracle: how many messages lie in [oldest, tail) — "still in the ring" — read from the
 * layout of src/pubsub.c (tail at 128, oldest at 256, ring_offset at 40) and its records
 * (len, flags: bit 0 for padding, bit 1 published in band; 16-byte aligned), independently
 * of the library's reader. */
static uint64_t in_ring(struct shmkit_pubsub *ps, uint64_t cap)
{
	const uint8_t *d = shmkit_segment_data(shmkit_pubsub_segment(ps));
	uint64_t tail, oldest, ring_off;
	memcpy(&tail, d + 128, 8);
	memcpy(&oldest, d + 256, 8);
	memcpy(&ring_off, d + 40, 8);
	uint64_t n = 0;
	for (uint64_t pos = oldest; pos != tail;) {
		uint64_t off = pos & (cap - 1);
		uint32_t len, flags;
		memcpy(&len, d + ring_off + off, 4);
		memcpy(&flags, d + ring_off + off + 4, 4);
		ck_assert_uint_le(tail - pos, cap);
		if (flags & 1) {
			pos += cap - off;
		} else {
			pos += 16 + ((len + 15) & ~15u);
			n++;
		}
	}
	return n;
}

/* Publishes messages 0..count-1 of `len` bytes into a fresh channel with history K (no
 * subscriber), then checks what a late joiner gets: min(K, still in ring) messages, the
 * newest, in order, intact. Returns how many were still in the ring. */
static uint64_t history_case(uint32_t policy, uint64_t cap, uint64_t len, uint64_t count,
			     uint32_t k)
{
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, cap,
					 cap / 4, 2, policy, k);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	uint8_t *buf = malloc(cap / 4);
	ck_assert_ptr_nonnull(buf);
	for (uint64_t seq = 0; seq < count; seq++) {
		t_msg_fill(buf, len, seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, buf, len), 0);
	}
	uint64_t there = in_ring(p, cap);
	uint64_t want = k < there ? k : there;
	struct shmkit_pubsub *s;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	for (uint64_t seq = count - want; seq < count; seq++) {
		ssize_t r = shmkit_pubsub_recv(s, buf, cap / 4);
		ck_assert_msg(r == (ssize_t)len, "policy %u cap %llu len %llu K %u: %llu still in "
			      "ring, message %llu: %zd", policy, (unsigned long long)cap,
			      (unsigned long long)len, k, (unsigned long long)there,
			      (unsigned long long)seq, r);
		ck_assert_int_eq(t_msg_check(buf, len, seq), 0);
	}
	ck_assert_int_eq(shmkit_pubsub_recv(s, buf, cap / 4), -EAGAIN);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
	free(buf);
	return there;
}

START_TEST(test_history_fewer_than_k)
{
	uint32_t policy = _i;
	const uint64_t cap = 16384;
	const uint64_t lens[] = {16, 240, 1000, 3000, cap / 4};
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		uint64_t rec = 16 + ((lens[i] + 15) & ~15ull);
		uint64_t count = 3 * cap / rec + 7; /* wrapped more than twice */
		uint64_t there = history_case(policy, cap, lens[i], count, 1);
		ck_assert_uint_ge(there, 2);
		/* Below, at and above what is still there, up to the largest K. */
		const uint64_t ks[] = {there - 1, there, there + 1, 2 * there + 3, 100,
				       SHMKIT_PUBSUB_MAX_HISTORY};
		for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
			ck_assert_uint_eq(history_case(policy, cap, lens[i], count, (uint32_t)ks[j]),
					  there);
	}
	/* The report's cases: 3000-byte messages in 16 KiB (5 still there), and K = 65536
	 * with 16-byte messages in a 1 MiB ring. */
	ck_assert_uint_eq(history_case(policy, cap, 3000, 100, 6), 5);
	uint64_t there = history_case(policy, 1 << 20, 16, 100000, SHMKIT_PUBSUB_MAX_HISTORY);
	ck_assert_uint_gt(there, 20000);
}
END_TEST

/* A joiner asking for more history than fits, racing a publisher that overwrites without
 * pause (overwrite) or one blocked by a subscriber that does not read (block). */
static int history_publisher(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *p;
	int err = t_pubsub_open(&a->w, SHMKIT_PUBSUB_PUBLISHER, 0, &p);
	if (err) {
		T_CHILD_FAIL(a->sh, "publisher open: %s", shmkit_strerror(err));
		return 1;
	}
	uint8_t *buf = malloc(a->max);
	for (uint64_t seq = 0; !atomic_load(&a->sh->stop); seq++) {
		uint64_t len = rnd_len(seq, a->max);
		t_msg_fill(buf, len, seq);
		struct timespec ts;
		for (;;) {
			err = shmkit_pubsub_send_wait(p, buf, len, t_in_ms(&ts, 10));
			if (err != -ETIMEDOUT || atomic_load(&a->sh->stop))
				break;
			atomic_store(&a->sh->ready, 1); /* held by a full ring */
		}
		if (err && err != -ETIMEDOUT) {
			T_CHILD_FAIL(a->sh, "publish %llu: %s", (unsigned long long)seq,
				     shmkit_strerror(err));
			return 1;
		}
		atomic_store(&a->sh->sent, seq + 1);
		/* Bursts of 8, then a pause: a reader at the overwrite edge (a joiner starting
		 * at the oldest message) can catch up between them, as it cannot with a
		 * publisher that never stops. */
		if (seq % 8 == 7)
			usleep(20);
	}
	free(buf);
	shmkit_pubsub_close(p);
	return 0;
}

START_TEST(test_history_join_races)
{
	uint32_t policy = _i;
	const uint64_t cap = 16384;
	/* Block: this subscriber, reading little, holds the publisher once the ring is full. */
	struct shmkit_pubsub *stuck = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_SUBSCRIBER,
					     cap, cap / 4, 4, policy, SHMKIT_PUBSUB_MAX_HISTORY);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, stuck), .sh = sh,
			    .max = cap / 4};
	pid_t pid = t_fork(history_publisher, &a);
	/* Going: 200 sent, or (block) held by the full ring — its wait timed out. */
	T_WAIT_FOR(atomic_load(&sh->sent) > 200 || atomic_load(&sh->ready) ||
		   atomic_load(&sh->failed));
	uint8_t *buf = malloc(cap / 4);
	uint64_t joins = t_stress() ? 2000 : 200, got = 0, lost = 0;
	for (uint64_t j = 0; j < joins && !atomic_load(&sh->failed); j++) {
		struct shmkit_pubsub *s;
		ck_assert_int_eq(t_pubsub_open(&a.w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
		/* Everything it gets is intact and in order; under the block policy nothing is
		 * lost, and it starts with what is in the ring (the publisher is stuck). */
		uint64_t last = 0, n = 0;
		int n_again = 0, n_stale = 0;
		for (int i = 0; i < 400 && n < 40; i++) {
			ssize_t r = shmkit_pubsub_recv(s, buf, cap / 4);
			/* Overwrite: -EAGAIN also means "lapped over and over, try again". */
			if (r == -EAGAIN && (policy == SHMKIT_PUBSUB_BLOCK || n))
				break;
			n_again += r == -EAGAIN;
			n_stale += r == -ESTALE;
			if (r == -EAGAIN)
				continue;
			if (r == -ESTALE) {
				ck_assert_uint_eq(policy, SHMKIT_PUBSUB_OVERWRITE);
				continue;
			}
			ck_assert_int_ge(r, 8);
			uint64_t seq = t_msg_seq(buf);
			ck_assert_int_eq(t_msg_check(buf, (uint64_t)r, seq), 0);
			ck_assert_uint_eq((uint64_t)r, rnd_len(seq, cap / 4));
			if (n)
				ck_assert_uint_gt(seq, last);
			if (n && policy == SHMKIT_PUBSUB_BLOCK)
				ck_assert_uint_eq(seq, last + 1);
			last = seq;
			n++;
		}
		ck_assert_msg(n >= 1, "join %llu: nothing (%d -EAGAIN, %d -ESTALE)",
			      (unsigned long long)j, n_again, n_stale);
		got += n;
		lost += shmkit_pubsub_lost(s, NULL);
		ck_assert_int_eq(shmkit_pubsub_close(s), 0);
		/* Block: let the publisher move a little, so joins meet it blocked and not. */
		if (policy == SHMKIT_PUBSUB_BLOCK && j % 4 == 0) {
			for (int i = 0; i < 3; i++)
				shmkit_pubsub_recv(stuck, buf, cap / 4);
		}
	}
	atomic_store(&sh->stop, 1);
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	ck_assert_msg(!atomic_load(&sh->failed), "%s", sh->why);
	fprintf(stderr, "history joins (%s): %llu joins, %llu messages, %llu lost\n",
		policy ? "overwrite" : "block", (unsigned long long)joins,
		(unsigned long long)got, (unsigned long long)lost);
	if (policy == SHMKIT_PUBSUB_BLOCK)
		ck_assert_uint_eq(lost, 0);
	free(buf);
	t_where_remove(&a.w);
	t_shared_free(sh);
	shmkit_pubsub_close(stuck);
}
END_TEST

/* --- waiting ------------------------------------------------------------------------------------------ */

static int sleeper(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_SUBSCRIBER, SHMKIT_PUBSUB_NO_SPIN, &ps))
		return 10;
	atomic_fetch_add(&a->sh->ready, 1);
	char buf[64];
	for (int i = 0; i < 3; i++) {
		ssize_t n = shmkit_pubsub_recv_wait(ps, buf, sizeof buf, NULL);
		if (n != 5 || memcmp(buf, "wake!", 5) != 0)
			return 11;
	}
	struct timespec ts;
	if (shmkit_pubsub_recv_wait(ps, buf, sizeof buf, t_in_ms(&ts, 30000)) != -EPIPE)
		return 12;
	shmkit_pubsub_close(ps);
	return 0;
}

/* Subscribers asleep in their waits (no spinning) are woken by each message, and by the
 * publisher's close (end of stream). */
START_TEST(test_sleepers_woken)
{
	char name[64];
	t_name(name, sizeof name, "wake");
	struct shmkit_pubsub *p = ps_new(name, SHMKIT_BACKEND_SYSV, SHMKIT_PUBSUB_PUBLISHER, 4096, 0,
					 4, SHMKIT_PUBSUB_BLOCK, 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = T_WHERE(name, SHMKIT_BACKEND_SYSV, p), .sh = sh};
	pid_t pid[3];
	for (int i = 0; i < 3; i++)
		pid[i] = t_fork(sleeper, &a);
	T_WAIT_FOR(atomic_load(&sh->ready) >= 3);
	for (int k = 0; k < 3; k++) {
		usleep(100000); /* they are asleep by now */
		ck_assert_int_eq(shmkit_pubsub_send(p, "wake!", 5), 0);
	}
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(p, &st);
	ck_assert_uint_ge(st.publisher_wakes, 1);
	shmkit_pubsub_close(p);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(t_wait(pid[i], 30000), 0);
	t_where_remove(&a.w);
	t_shared_free(sh);
}
END_TEST

/* A wait with nothing to read times out, never early; one with a deadline already past
 * tries once, then times out. */
START_TEST(test_timeouts_never_early)
{
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 4096, 0,
					 4, SHMKIT_PUBSUB_BLOCK, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	struct timespec ts;
	const void *cp;
	size_t n;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 50000000);
	shmkit_deadline_after(&ts, 0);
	ck_assert_int_eq(shmkit_pubsub_peek_wait(s, &cp, &n, &ts), -ETIMEDOUT);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* A word of the control block (src/pubsub.c's byte table: tail at 128, next_seq at 136). */
static _Atomic uint64_t *ctl_word(struct shmkit_pubsub *ps, size_t off)
{
	return (_Atomic uint64_t *)(void *)((uint8_t *)shmkit_segment_data(shmkit_pubsub_segment(ps)) +
					    off);
}

#define CTL_TAIL 128
#define CTL_NEXT_SEQ 136

/* --- a hostile peer --------------------------------------------------------------------------------------- */

/* The hostile peer's aim (src/pubsub.c's byte table): the control words (tail 128, next_seq
 * 136, 144, oldest 256, 264), the subscriber slots from 1024, and the ring's records. */
struct ps_scribble {
	struct t_scribble s;
	uint64_t ring_off, ring_bytes, slots;
};

static size_t ps_pick(const struct t_scribble *s, uint64_t *rng, uint64_t *v)
{
	const struct ps_scribble *a = (const struct ps_scribble *)(const void *)s;
	static const size_t words[] = {128, 136, 144, 256, 264};
	uint64_t what = t_rand(rng) % 8;
	if (what < 2)
		*v &= 0xfff0; /* small, aligned, plausible */
	if (what < 4)
		return words[t_rand(rng) % 5];
	if (what < 5)
		return 1024 + (t_rand(rng) % a->slots) * 128 + 8 * (t_rand(rng) % 3);
	if (what == 5)
		*v = (*v & 0x3ff) | (*v & 0x100000000ull); /* header-like */
	return a->ring_off + (t_rand(rng) % (a->ring_bytes / 8)) * 8;
}

/* A publisher, a subscriber and joiners under fire from a scribbler: every call returns a
 * documented code, and every message handed out lies inside the ring. */
START_TEST(test_hostile_scribbler)
{
	uint32_t policy = _i;
	char name[64];
	t_name(name, sizeof name, "hostile");
	struct shmkit_pubsub *p = ps_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_PUBSUB_PUBLISHER, 1 << 14,
					 2000, 2, policy, 3);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s), 0);
	uint8_t *base = shmkit_segment_data(shmkit_pubsub_segment(p));
	struct ps_scribble a = {{base, t_seed() + policy, 600, ps_pick}, 1024 + 2 * 128, 1 << 14, 2};
	pid_t pid = t_scribble(&a.s);
	uint64_t ok = 0, bad = 0, loops = 0;
	uint8_t buf[2048];
	/* The subscriber has its own mapping of the segment. */
	const uint8_t *ring =
		(const uint8_t *)shmkit_segment_data(shmkit_pubsub_segment(s)) + a.ring_off;
	uint64_t end = shmkit_now_ns() + 700000000ull;
	while (shmkit_now_ns() < end) {
		loops++;
		struct timespec ts;
		int err = loops % 8 ? shmkit_pubsub_send(p, buf, loops % 2000)
				    : shmkit_pubsub_send_wait(p, buf, loops % 2000, t_in_ms(&ts, 2));
		T_CHECK(err == 0 || err == -EAGAIN || err == -EBADMSG || err == -ETIMEDOUT,
			"send: %d", err);
		const void *cp;
		size_t n;
		err = loops % 16 ? shmkit_pubsub_peek(s, &cp, &n)
				 : shmkit_pubsub_peek_wait(s, &cp, &n, t_in_ms(&ts, 2));
		if (err == 0) {
			T_CHECK((const uint8_t *)cp >= ring && (const uint8_t *)cp + n <= ring + (1 << 14),
				"message outside the ring: offset %td len %zu",
				(const uint8_t *)cp - ring, n);
			shmkit_seqlock_load(buf, cp, n < sizeof buf ? n : sizeof buf);
			err = shmkit_pubsub_release(s, 0);
			T_CHECK(err == 0 || err == -ESTALE, "release: %d", err);
			ok++;
		} else {
			T_CHECK(err == -EAGAIN || err == -EBADMSG || err == -ETIMEDOUT || err == -ESTALE ||
					err == -EOWNERDEAD,
				"peek: %d", err);
			bad += err == -EBADMSG;
		}
		if (loops % 64 == 0) {
			/* Joining and leaving under fire must not break either. */
			struct shmkit_pubsub *j;
			err = shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &j);
			T_CHECK(err == 0 || err == -EBADMSG || err == -EAGAIN || err == -ENOSPC, "join %d", err);
			if (!err) {
				(void)shmkit_pubsub_recv(j, buf, sizeof buf);
				shmkit_pubsub_close(j);
			}
		}
	}
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	(void)ok;
	(void)bad;
	shmkit_pubsub_unlink(p);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* A misaligned tail (a peer's scribble) is refused (-EBADMSG), not followed. Both
 * policies. */
START_TEST(test_misaligned_tail_refused)
{
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 1 << 14,
					 2000, 2, (uint32_t)_i, 3);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	char buf[100] = {0};
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(shmkit_pubsub_send(p, buf, sizeof buf), 0);
	const void *cp;
	size_t n;
	while (shmkit_pubsub_peek(s, &cp, &n) == 0)
		ck_assert_int_eq(shmkit_pubsub_release(s, 0), 0);
	atomic_store(ctl_word(p, CTL_TAIL), (uint64_t)0x12345677);
	ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), -EBADMSG);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* --- shmkit stat ----------------------------------------------------------------------------------- */

static int join_and_die(void *arg)
{
	struct shmkit_pubsub *ps;
	if (shmkit_pubsub_open(arg, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &ps))
		return 10;
	raise(SIGKILL);
	return 11;
}

START_TEST(test_cli_stat)
{
	char name[64];
	t_name(name, sizeof name, "stat");
	const char *cli = t_cli_path();
	ck_assert_msg(access(cli, X_OK) == 0, "no CLI at %s (make cli)", cli);
	struct shmkit_pubsub *p = ps_new(name, SHMKIT_BACKEND_POSIX, SHMKIT_PUBSUB_PUBLISHER, 1 << 14,
					 100, 4, SHMKIT_PUBSUB_OVERWRITE, 0);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s), 0);
	pid_t pid = t_fork(join_and_die, name);
	ck_assert_int_eq(t_wait(pid, 10000), 128 + SIGKILL);
	uint8_t msg[100] = {0}, buf[128];
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), 100);
	struct t_run r = {0};
	t_run_cli(&r, 20000, (const char *const[]){"stat", name, "--json", NULL});
	const char *out = r.out;
	ck_assert_int_eq(r.status, 0);
	char want[160];
	snprintf(want, sizeof want, "\"subscriber.0.pid\":%d,\"subscriber.0.alive\":true,"
				    "\"subscriber.0.lag\":3,\"subscriber.0.lost\":0,",
		 (int)getpid());
	ck_assert_msg(strstr(out, want), "%s\nnot in\n%s", want, out);
	snprintf(want, sizeof want, "\"subscriber.1.pid\":%d,\"subscriber.1.alive\":false,",
		 (int)pid);
	ck_assert_msg(strstr(out, want), "%s\nnot in\n%s", want, out);
	ck_assert_msg(strstr(out, "\"policy\":\"overwrite\""), "%s", out);
	ck_assert_msg(strstr(out, "\"published\":5,"), "%s", out);
	/* The human form carries the same keys. */
	t_run_cli(&r, 20000, (const char *const[]){"stat", name, NULL});
	out = r.out;
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(out, "subscriber.0.lag: 3\n"), "%s", out);
	t_run_free(&r);
	shmkit_pubsub_unlink(p);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* `pub --wait-subscribers` counts joined subscribers only. A subscriber claims its slot and
 * publishes its start position a moment later; counted in between, it let `pub` publish
 * lines it then never saw (it starts at the newest message). Here a live process (this
 * one) holds slot 0 without a position, as a subscriber caught between the two steps:
 * `pub` must keep waiting, and say so when its --timeout ends the wait. */
START_TEST(test_cli_wait_counts_joined)
{
	char name[64];
	t_name(name, sizeof name, "wj");
	const char *cli = t_cli_path();
	ck_assert_msg(access(cli, X_OK) == 0, "no CLI at %s (make cli)", cli);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(null, 0);
	struct t_proc pub;
	t_spawn_cli(&pub, null, -1,
		    (const char *const[]){"pub", name, "--pubsub", "--create", "--subscribers", "2",
					  "--wait-subscribers", "1", "--timeout", "1", "-q", NULL});
	close(null);
	struct shmkit_segment *seg = NULL;
	T_WAIT_FOR(shmkit_segment_open(name, NULL, &seg) == 0);
	ck_assert_ptr_nonnull(seg);
	struct ps_slot *slot0 =
		(struct ps_slot *)(void *)((uint8_t *)shmkit_segment_data(seg) + PS_SLOTS_OFF);
	atomic_store(&slot0->pos, SUB_NONE);                 /* not positioned yet */
	atomic_store(&slot0->owner, shmkit__self_owner()); /* held by a live process */
	int st = t_finish(&pub, 20000);
	ck_assert_msg(st == 1 && strstr(pub.e.data, "0 of 1 subscribers joined before the timeout"),
		      "pub exit %d: %s", st, pub.e.data);
	t_proc_free(&pub);
	atomic_store(&slot0->owner, 0);
	shmkit_segment_close(seg);
	ck_assert_int_ge(shmkit_segment_remove(name, NULL), 1);
}
END_TEST

/* --- in-band publication ------------------------------------------------------------------------ */

/* Puts the channel back in the state of a publisher stopped between its header store and
 * its tail store for the record just sent: tail and next_seq as before that send. */
static void unpublish(struct shmkit_pubsub *p, uint64_t tail, uint64_t next_seq)
{
	atomic_store(ctl_word(p, CTL_NEXT_SEQ), next_seq);
	atomic_store(ctl_word(p, CTL_TAIL), tail);
}

/* A channel of the layout before in-band publication (version 2), or of a later one, is
 * refused in every role: its peers would not agree on when a record is published. */
START_TEST(test_layout_version)
{
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 4096,
					 100, 2, SHMKIT_PUBSUB_BLOCK, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	_Atomic uint32_t *version = (_Atomic uint32_t *)(void *)ctl_word(p, 8);
	ck_assert_uint_eq(atomic_load(version), 3);
	struct shmkit_pubsub *s;
	const uint32_t others[] = {2, 4};
	for (size_t i = 0; i < 2; i++) {
		atomic_store(version, others[i]);
		ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), -EPROTO);
		ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_OBSERVER, 0, &s), -EPROTO);
	}
	atomic_store(version, 3);
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* The subscriber takes each record in band — the tail does not cover it — across many
 * wraps, through padding records, then finds nothing (it is ahead of the tail, which is
 * no error), and a joiner that arrives meanwhile starts with that record. Both policies. */
START_TEST(test_inband_ahead_of_tail)
{
	uint32_t policy = _i;
	const uint64_t cap = 4096;
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, cap,
					 200, 3, policy, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	uint8_t msg[200], buf[256];
	int pads = 0;
	uint64_t t0 = 0; /* the publisher's tail before this send (the shared one may lag) */
	for (uint64_t seq = 0; seq < 2000; seq++) {
		uint64_t len = rnd_len(seq, sizeof msg);
		t_msg_fill(msg, len, seq);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, len), 0);
		uint64_t t1 = atomic_load(ctl_word(p, CTL_TAIL));
		if ((t0 & (cap - 1)) && ((t1 - 1) & (cap - 1)) < (t0 & (cap - 1)))
			pads++; /* the record went to offset 0 behind a PAD */
		unpublish(p, t0, seq);
		struct shmkit_pubsub *j = NULL;
		if (seq % 97 == 5)
			ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &j), 0);
		ssize_t n = shmkit_pubsub_recv(s, buf, sizeof buf);
		ck_assert_msg(n == (ssize_t)len, "seq %llu: %zd", (unsigned long long)seq, n);
		ck_assert_int_eq(t_msg_check(buf, len, seq), 0);
		ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), -EAGAIN);
		if (j) {
			ck_assert_int_eq(shmkit_pubsub_recv(j, buf, sizeof buf), (ssize_t)len);
			ck_assert_int_eq(t_msg_check(buf, len, seq), 0);
			ck_assert_int_eq(shmkit_pubsub_recv(j, buf, sizeof buf), -EAGAIN);
			shmkit_pubsub_close(j);
		}
		if (seq % 3 == 0)
			atomic_store(ctl_word(p, CTL_TAIL), t1); /* sometimes the tail catches up */
		t0 = t1;
	}
	ck_assert_int_gt(pads, 10);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* MORE commits stay invisible until their batch is published, even with a record published
 * in band right behind them in the ring; batches of 1..4 across wraps. */
START_TEST(test_inband_more_invisible)
{
	uint32_t policy = _i;
	struct shmkit_pubsub *p = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_PUBLISHER, 4096,
					 200, 2, policy, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, p);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s), 0);
	uint8_t buf[256];
	uint64_t seq = 0, got = 0;
	for (int batch = 0; batch < 600; batch++) {
		uint64_t k = 1 + (uint64_t)batch % 4, first = seq;
		uint64_t t0 = atomic_load(ctl_word(p, CTL_TAIL));
		for (uint64_t i = 0; i < k; i++, seq++) {
			uint64_t len = rnd_len(seq, 200);
			void *b;
			ck_assert_int_eq(shmkit_pubsub_loan(p, len, &b), 0);
			t_msg_fill(b, len, seq);
			ck_assert_int_eq(shmkit_pubsub_commit(p, len, i + 1 < k ? SHMKIT_PUBSUB_MORE : 0),
					 0);
			if (i + 1 < k)
				ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), -EAGAIN);
		}
		uint64_t t1 = atomic_load(ctl_word(p, CTL_TAIL));
		if (k > 1 && batch % 2) {
			/* The last record is in band, the ones before it are not: nothing. */
			unpublish(p, t0, first);
			ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), -EAGAIN);
			unpublish(p, t1, seq);
		}
		for (; got < seq; got++) {
			uint64_t len = rnd_len(got, 200);
			ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), (ssize_t)len);
			ck_assert_int_eq(t_msg_check(buf, len, got), 0);
		}
		ck_assert_int_eq(shmkit_pubsub_recv(s, buf, sizeof buf), -EAGAIN);
	}
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), 0);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* Overwrite: a subscriber that took a record in band (ahead of the tail) and holds it is
 * lapped; validate says so, and afterwards every message is delivered in order or counted
 * lost, exactly. */
START_TEST(test_inband_overwrite_lapped)
{
	struct shmkit_pubsub *s, *p = overwrite_channel(&s);
	uint8_t msg[100], buf[128];
	uint64_t published = 0, delivered = 0, lost = 0, next = 0;
	for (int round = 0; round < 40; round++) {
		uint64_t t0 = atomic_load(ctl_word(p, CTL_TAIL));
		t_msg_fill(msg, sizeof msg, published);
		ck_assert_int_eq(shmkit_pubsub_send(p, msg, sizeof msg), 0);
		unpublish(p, t0, published);
		published++;
		const void *cp;
		size_t n;
		ck_assert_int_eq(shmkit_pubsub_peek(s, &cp, &n), 0); /* in band */
		ck_assert_int_eq(t_msg_check(cp, n, next), 0);
		/* Lapped while holding it: 100-byte messages are 128-byte records, 32 a ring. */
		uint64_t burst = 33 + (uint64_t)round % 40;
		send_upto(p, &published, published + burst);
		ck_assert_int_eq(shmkit_pubsub_validate(s), -ESTALE);
		lost++;
		next++;
		/* Now the next one in band again, from wherever the lap left us. */
		for (;;) {
			ssize_t r = shmkit_pubsub_recv(s, buf, sizeof buf);
			if (r == -EAGAIN)
				break;
			if (r == -ESTALE)
				continue;
			ck_assert_int_eq(r, 100);
			uint64_t q = t_msg_seq(buf);
			ck_assert_uint_ge(q, next);
			lost += q - next;
			ck_assert_int_eq(t_msg_check(buf, 100, q), 0);
			next = q + 1;
			delivered++;
		}
		ck_assert_uint_eq(next, published);
	}
	ck_assert_uint_eq(delivered + lost, published);
	ck_assert_uint_eq(shmkit_pubsub_lost(s, NULL), lost);
	shmkit_pubsub_close(s);
	shmkit_pubsub_close(p);
}
END_TEST

/* A publisher killed between the header store and the tail store of message 50: one
 * subscriber took it in band already, another had not. A new publisher goes on after it:
 * both get every message exactly once, none lost. _i: 0 died before its next_seq store,
 * 1 after it (with the seqlock odd). */
static int publisher_die_inband(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_PUBLISHER, 0, &ps))
		return 10;
	uint8_t msg[100];
	for (uint64_t seq = 0; seq <= 50; seq++) {
		uint64_t t0 = atomic_load(ctl_word(ps, CTL_TAIL));
		t_msg_fill(msg, sizeof msg, seq);
		struct timespec ts;
		if (shmkit_pubsub_send_wait(ps, msg, sizeof msg, t_in_ms(&ts, 20000)))
			return 11;
		if (seq == 50) {
			unpublish(ps, t0, a->mode ? 51 : 50);
			/* The statistics are stored after the tail: not counted yet. */
			atomic_store(ctl_word(ps, 168), 50);
			atomic_store(ctl_word(ps, 176), 5000);
			if (a->mode) /* pub_gen odd: killed inside the seqlock */
				atomic_fetch_add((_Atomic uint32_t *)(void *)ctl_word(ps, 160) + 1, 1);
			atomic_store(&a->sh->go, 1);
			T_WAIT_FOR(atomic_load(&a->sh->stop));
			raise(SIGKILL);
		}
	}
	return 13;
}

static int publisher_resume(void *arg)
{
	struct t_child *a = arg;
	struct shmkit_pubsub *ps;
	if (t_pubsub_open(&a->w, SHMKIT_PUBSUB_PUBLISHER, 0, &ps))
		return 10;
	uint8_t msg[100];
	for (uint64_t seq = 51; seq < 60; seq++) {
		t_msg_fill(msg, sizeof msg, seq);
		struct timespec ts;
		if (shmkit_pubsub_send_wait(ps, msg, sizeof msg, t_in_ms(&ts, 20000)))
			return 11;
	}
	shmkit_pubsub_close(ps);
	return 0;
}

static void recv_seq(struct shmkit_pubsub *s, uint64_t seq)
{
	uint8_t buf[128];
	struct timespec ts;
	ssize_t n = shmkit_pubsub_recv_wait(s, buf, sizeof buf, t_in_ms(&ts, 10000));
	ck_assert_msg(n == 100, "seq %llu: %zd", (unsigned long long)seq, n);
	ck_assert_uint_eq(t_msg_seq(buf), seq);
	ck_assert_int_eq(t_msg_check(buf, 100, seq), 0);
}

START_TEST(test_inband_publisher_killed)
{
	struct shmkit_pubsub *s1 = ps_new(NULL, SHMKIT_BACKEND_MEMFD, SHMKIT_PUBSUB_SUBSCRIBER, 4096,
					  100, 4, SHMKIT_PUBSUB_BLOCK, 0);
	struct t_where w = T_WHERE(NULL, SHMKIT_BACKEND_MEMFD, s1);
	struct shmkit_pubsub *s2;
	ck_assert_int_eq(t_pubsub_open(&w, SHMKIT_PUBSUB_SUBSCRIBER, 0, &s2), 0);
	struct t_shared *sh = t_shared_new();
	struct t_child a = {.w = w, .sh = sh, .mode = _i};
	pid_t pid = t_fork(publisher_die_inband, &a);
	for (uint64_t seq = 0; seq < 50; seq++) {
		recv_seq(s1, seq);
		recv_seq(s2, seq);
	}
	T_WAIT_FOR(atomic_load(&sh->go));
	recv_seq(s1, 50); /* in band: the tail does not cover it */
	atomic_store(&sh->stop, 1);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	struct timespec ts;
	uint8_t buf[128];
	ck_assert_int_eq(shmkit_pubsub_recv_wait(s1, buf, sizeof buf, t_in_ms(&ts, 10000)),
			 -EOWNERDEAD);
	pid = t_fork(publisher_resume, &a);
	ck_assert_int_eq(t_wait(pid, 30000), 0);
	for (uint64_t seq = 51; seq < 60; seq++)
		recv_seq(s1, seq);
	for (uint64_t seq = 50; seq < 60; seq++)
		recv_seq(s2, seq);
	ck_assert_int_eq(shmkit_pubsub_recv(s1, buf, sizeof buf), -EPIPE);
	ck_assert_int_eq(shmkit_pubsub_recv(s2, buf, sizeof buf), -EPIPE);
	ck_assert_uint_eq(shmkit_pubsub_lost(s1, NULL), 0);
	ck_assert_uint_eq(shmkit_pubsub_lost(s2, NULL), 0);
	struct shmkit_pubsub_stats st;
	ck_assert_int_eq(shmkit_pubsub_stats(s1, &st), 0);
	ck_assert_uint_eq(st.next_seq, 60);
	ck_assert_uint_eq(st.msgs_published, 60);
	ck_assert_uint_eq(st.bytes_published, 6000);
	shmkit_pubsub_close(s2);
	shmkit_pubsub_close(s1);
	t_where_remove(&w);
	t_shared_free(sh);
}
END_TEST

static Suite *pubsub_suite(void)
{
	Suite *s = suite_create("pubsub");
	TCase *tc = t_tcase(s, "basics", 60);
	tcase_add_test(tc, test_roles);
	tcase_add_test(tc, test_every_subscriber_gets_every_message);
	tcase_add_test(tc, test_block_policy_waits_for_slowest);
	tcase_add_test(tc, test_joiner_takes_freed_slot);
	tcase_add_test(tc, test_observer_stats);
	tcase_add_test(tc, test_held_releases_stay_held);
	tcase_add_test(tc, test_open_not_a_channel);
	tcase_add_test(tc, test_close_then_new_publisher);
	tcase_add_test(tc, test_bad_options);
	tcase_add_test(tc, test_overwrite_lapped_exact);
	tcase_add_test(tc, test_overwrite_validate_after_use);
	tcase_add_test(tc, test_overwrite_lapped_to_tail_waits);
	tcase_add_loop_test(tc, test_reclaim_boundaries, 0, 2);
	tcase_add_loop_test(tc, test_history, 0, 2);
	tcase_add_loop_test(tc, test_history_fewer_than_k, 0, 2);
	tcase_add_loop_test(tc, test_history_join_races, 0, 2);
	tcase_add_test(tc, test_sleepers_woken);
	tcase_add_test(tc, test_timeouts_never_early);
	tcase_add_loop_test(tc, test_misaligned_tail_refused, 0, 2);
	tcase_add_test(tc, test_cli_stat);
	tcase_add_test(tc, test_cli_wait_counts_joined);
	tcase_add_test(tc, test_layout_version);
	tcase_add_loop_test(tc, test_inband_ahead_of_tail, 0, 2);
	tcase_add_loop_test(tc, test_inband_more_invisible, 0, 2);
	tcase_add_test(tc, test_inband_overwrite_lapped);
	tc = t_tcase(s, "streams", t_stress() ? 3600 : 300);
	tcase_add_loop_test(tc, test_block_four_subscribers, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_overwrite_lapped_processes, 0, T_BACKENDS);
	tcase_add_test(tc, test_join_leave_churn);
	tc = t_tcase(s, "death", t_stress() ? 3600 : 120);
	tcase_add_loop_test(tc, test_subscriber_killed_while_blocked, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_publisher_killed, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_inband_publisher_killed, 0, 2);
	tcase_add_loop_test(tc, test_hostile_scribbler, 0, 2);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {pubsub_suite};
	return t_main(makers, 1);
}
