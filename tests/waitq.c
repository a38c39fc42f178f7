/* Tests for src/waitq.c: the sleep/wake handshake every kind shares. Blocking ping-pongs
 * between real processes where every wait sleeps (NO_SPIN), per kind (stream channel,
 * pub/sub, work queue, waitset, event), at 0 B, 64 B, 4 KiB and 1 MiB; the fenced fallback
 * forced with SHMKIT_NO_MEMBARRIER=1; and a peer that did not register switching a channel
 * to the fenced mode. A lost wake-up shows as a wait that only a 100 ms liveness slice
 * ends: the segment counts those (shmkit_segment_wait_stats), and every test asserts the
 * count stayed 0 — never a timing. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MIB (1u << 20)

/* Round trips per kind and test: 50 000 in `make check` (200 000 made the suite take
 * 104 s on a loaded 2-CPU machine, an eighth of the CI budget; 50 000 still make tens of
 * thousands of sleeps per kind, where a missing barrier lost ~3 wake-ups per 10 000), 10 M
 * in the stress tier, fewer under the sanitizers (each step is 5-20 times slower there). */
static uint64_t total_rounds(void)
{
	const char *e = getenv("SHMKIT_TEST_ROUNDS"); /* for a quick look by hand */
	if (e && atoll(e) > 0)
		return (uint64_t)atoll(e);
	if (t_stress())
		return 10000000;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return 20000;
#else
	return 50000;
#endif
}

/* The sizes and their shares of the round trips (per mille); 1 MiB messages cost a copy
 * of 1 MiB each way, so they get few rounds. The last size gets what is left over. */
static const struct {
	size_t len;
	unsigned share;
} sizes[] = {{0, 490}, {64, 490}, {4096, 15}, {MIB, 5}};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static uint64_t rounds_for(unsigned i, uint64_t total)
{
	uint64_t n = total * sizes[i].share / 1000;
	return n ? n : 1;
}

enum kind { K_STREAM, K_PUBSUB, K_QUEUE, K_WAITSET, K_EVENT };
static const char *const kind_names[] = {"stream", "pub/sub", "queue", "waitset", "event"};

/* Memory the two processes share: readiness flags, the first failure, and for the event
 * kind the two events and a payload buffer. */
struct shared {
	_Atomic int failed;
	char why[256];
	_Atomic int child_ready;
	struct shmkit_event ev[2]; /* ev[0]: parent -> child, ev[1]: child -> parent */
	_Atomic uint64_t ev_seq[2];
	uint8_t buf[MIB];
};

/* One end of the ping-pong: `out` sends to the peer, `in` receives from it. */
struct end {
	enum kind kind;
	struct shared *sh;
	int side; /* 0 parent, 1 child */
	struct shmkit_chan *cout, *cin;
	struct shmkit_pubsub *pout, *pin;
	struct shmkit_queue *qout, *qin;
	struct shmkit_waitset *ws;
	uint8_t *msg;
};

struct names {
	char a[64], b[64]; /* a: parent -> child, b: child -> parent */
};

static struct shared *sh_new(void)
{
	struct shared *sh = t_shm_alloc(sizeof *sh);
	shmkit_event_init(&sh->ev[0]);
	shmkit_event_init(&sh->ev[1]);
	return sh;
}

/* --- opening the two directions ------------------------------------------------------------ */

/* Whether this process's handles spin before sleeping: only the answering child of the
 * "race" tests does (see test_race). */
static bool spin_here;

static int chan_make(const char *name, int role, bool create, struct shmkit_chan **ch)
{
	struct shmkit_chan_opts o = {.max_msg = MIB, .flags = spin_here ? 0 : SHMKIT_CHAN_NO_SPIN};
	o.seg.backend = SHMKIT_BACKEND_POSIX;
	if (role == SHMKIT_CHAN_OBSERVER)
		o.seg.flags |= SHMKIT_SEG_RDONLY;
	return create ? shmkit_chan_create(name, role, &o, ch) : shmkit_chan_open(name, role, &o, ch);
}

static int pubsub_make(const char *name, int role, bool create, struct shmkit_pubsub **ps)
{
	struct shmkit_pubsub_opts o = {.max_msg = MIB, .max_subscribers = 2,
				       .flags = spin_here ? 0 : SHMKIT_PUBSUB_NO_SPIN};
	o.seg.backend = SHMKIT_BACKEND_POSIX;
	return create ? shmkit_pubsub_create(name, role, &o, ps)
		      : shmkit_pubsub_open(name, role, &o, ps);
}

static int queue_make(const char *name, bool create, struct shmkit_queue **q)
{
	struct shmkit_queue_opts o = {.slots = 2, .max_msg = MIB, .max_members = 4,
				      .flags = spin_here ? 0 : SHMKIT_QUEUE_NO_SPIN};
	o.seg.backend = SHMKIT_BACKEND_POSIX;
	return create ? shmkit_queue_create(name, &o, q) : shmkit_queue_open(name, &o, q);
}

/* Parent side, before the fork: creates what the parent owns. */
static void parent_setup(struct end *e, const struct names *nm)
{
	int err = 0;
	switch (e->kind) {
	case K_STREAM:
	case K_WAITSET:
		err = chan_make(nm->a, SHMKIT_CHAN_PRODUCER, true, &e->cout);
		if (!err)
			err = chan_make(nm->b, SHMKIT_CHAN_CONSUMER, true, &e->cin);
		break;
	case K_PUBSUB:
		err = pubsub_make(nm->a, SHMKIT_PUBSUB_PUBLISHER, true, &e->pout);
		break;
	case K_QUEUE:
		err = queue_make(nm->a, true, &e->qout);
		if (!err)
			err = queue_make(nm->b, true, &e->qin);
		break;
	case K_EVENT:
		break;
	}
	ck_assert_msg(err == 0, "parent setup: %s", shmkit_strerror(err));
	t_track(nm->a, SHMKIT_BACKEND_POSIX);
	t_track(nm->b, SHMKIT_BACKEND_POSIX);
}

/* Parent side, after the child said it is ready: what needs the child's objects. */
static void parent_join(struct end *e, const struct names *nm)
{
	int err = 0;
	if (e->kind == K_PUBSUB)
		err = pubsub_make(nm->b, SHMKIT_PUBSUB_SUBSCRIBER, false, &e->pin);
	if (e->kind == K_WAITSET) {
		struct shmkit_waitset_opts wo = {.flags = SHMKIT_WAITSET_NO_SPIN};
		err = shmkit_waitset_create(&wo, &e->ws);
		if (!err)
			err = shmkit_waitset_add_chan(e->ws, e->cin, 1);
	}
	ck_assert_msg(err == 0, "parent join: %s", shmkit_strerror(err));
}

static int child_setup(struct end *e, const struct names *nm)
{
	switch (e->kind) {
	case K_STREAM:
	case K_WAITSET: {
		int err = chan_make(nm->a, SHMKIT_CHAN_CONSUMER, false, &e->cin);
		return err ? err : chan_make(nm->b, SHMKIT_CHAN_PRODUCER, false, &e->cout);
	}
	case K_PUBSUB: {
		int err = pubsub_make(nm->b, SHMKIT_PUBSUB_PUBLISHER, true, &e->pout);
		return err ? err : pubsub_make(nm->a, SHMKIT_PUBSUB_SUBSCRIBER, false, &e->pin);
	}
	case K_QUEUE: {
		int err = queue_make(nm->a, false, &e->qin);
		return err ? err : queue_make(nm->b, false, &e->qout);
	}
	case K_EVENT:
		return 0;
	}
	return -EINVAL;
}

static void end_close(struct end *e)
{
	shmkit_waitset_destroy(e->ws);
	shmkit_chan_close(e->cout);
	shmkit_chan_close(e->cin);
	shmkit_pubsub_close(e->pout);
	shmkit_pubsub_close(e->pin);
	shmkit_queue_close(e->qout);
	shmkit_queue_close(e->qin);
}

/* --- one message each way ------------------------------------------------------------------ */

static int send_one(struct end *e, size_t len, uint64_t seq)
{
	t_msg_fill(e->msg, len, seq);
	switch (e->kind) {
	case K_STREAM:
	case K_WAITSET:
		return shmkit_chan_send_wait(e->cout, e->msg, len, NULL);
	case K_PUBSUB:
		return shmkit_pubsub_send_wait(e->pout, e->msg, len, NULL);
	case K_QUEUE:
		return shmkit_queue_send_wait(e->qout, e->msg, len, NULL);
	case K_EVENT: {
		int to = e->side; /* ev[0] carries parent -> child */
		memcpy(e->sh->buf, e->msg, len);
		/* Relaxed: ordered before the notify (its release). */
		atomic_store_explicit(&e->sh->ev_seq[to], seq + 1, memory_order_relaxed);
		shmkit_event_notify(&e->sh->ev[to]);
		return 0;
	}
	}
	return -EINVAL;
}

static ssize_t recv_one(struct end *e, uint64_t seq)
{
	switch (e->kind) {
	case K_STREAM:
		return shmkit_chan_recv_wait(e->cin, e->msg, MIB, NULL);
	case K_WAITSET:
		if (e->ws) {
			for (;;) {
				ssize_t n = shmkit_chan_recv(e->cin, e->msg, MIB);
				if (n != -EAGAIN)
					return n;
				struct shmkit_waitset_ready r;
				int k = shmkit_waitset_wait(e->ws, NULL, &r, 1);
				if (k < 0)
					return k;
			}
		}
		return shmkit_chan_recv_wait(e->cin, e->msg, MIB, NULL);
	case K_PUBSUB:
		return shmkit_pubsub_recv_wait(e->pin, e->msg, MIB, NULL);
	case K_QUEUE:
		return shmkit_queue_recv_wait(e->qin, e->msg, MIB, NULL);
	case K_EVENT: {
		int from = 1 - e->side;
		struct shmkit_event *ev = &e->sh->ev[from];
		for (;;) {
			uint32_t g = shmkit_event_prepare(ev);
			/* Acquire after prepare's acquire: the sender's seq and buffer. */
			uint64_t s = atomic_load_explicit(&e->sh->ev_seq[from], memory_order_acquire);
			if (s == seq + 1)
				break;
			int err = shmkit_event_wait(ev, g, NULL, spin_here ? 100000 : 0);
			if (err < 0)
				return err;
		}
		return -1; /* the length is the caller's: see ping_pong() */
	}
	}
	return -EINVAL;
}

/* Runs the rounds of every size. The parent sends first and measures round trips; the
 * child answers. Returns 0 or a negative errno / -1 for a wrong message. */
static int ping_pong(struct end *e, uint64_t total, uint64_t *max_ns)
{
	uint64_t seq = 0;
	for (unsigned i = 0; i < NSIZES; i++) {
		size_t len = sizes[i].len;
		uint64_t n = rounds_for(i, total);
		for (uint64_t r = 0; r < n; r++, seq++) {
			struct timespec t0, t1;
			if (e->side == 0) {
				clock_gettime(CLOCK_MONOTONIC, &t0);
				int err = send_one(e, len, seq);
				if (err < 0)
					return err;
			}
			ssize_t got = recv_one(e, seq);
			if (e->kind == K_EVENT) {
				if (got != -1)
					return (int)got;
				memcpy(e->msg, e->sh->buf, len);
				got = (ssize_t)len;
			}
			if (got < 0)
				return (int)got;
			if ((size_t)got != len || t_msg_check(e->msg, len, seq) != 0)
				return -1;
			if (e->side == 1) {
				int err = send_one(e, len, seq);
				if (err < 0)
					return err;
			} else {
				clock_gettime(CLOCK_MONOTONIC, &t1);
				uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
					      (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
				if (ns > *max_ns)
					*max_ns = ns;
			}
		}
	}
	return 0;
}

struct child_arg {
	struct end e;
	const struct names *nm;
	uint64_t total;
	bool unregistered; /* play a peer that did not register for membarrier */
	bool spin;         /* the child spins (the "race" tests) */
};

static int child_main(void *p)
{
	struct child_arg *a = p;
	if (a->unregistered)
		setenv("SHMKIT_NO_MEMBARRIER", "1", 1);
	spin_here = a->spin;
	struct end *e = &a->e;
	e->side = 1;
	int err = child_setup(e, a->nm);
	if (err) {
		T_CHILD_FAIL(e->sh, "child setup: %s", shmkit_strerror(err));
		return 1;
	}
	atomic_store_explicit(&e->sh->child_ready, 1, memory_order_release);
	uint64_t max = 0;
	err = ping_pong(e, a->total, &max);
	if (err)
		T_CHILD_FAIL(e->sh, "child ping-pong: %d (%s)", err,
			     err == -1 ? "wrong message" : shmkit_strerror(err));
	end_close(e);
	return err ? 1 : 0;
}

/* The wait statistics of the segment behind a name (stream, pub/sub, queue). */
static struct shmkit_wait_stats stats_of(const char *name)
{
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_POSIX, .flags = SHMKIT_SEG_RDONLY};
	struct shmkit_segment *seg;
	int err = shmkit_segment_open(name, &o, &seg);
	ck_assert_msg(err == 0, "open %s: %s", name, shmkit_strerror(err));
	struct shmkit_wait_stats st;
	ck_assert_int_eq(shmkit_segment_wait_stats(seg, &st), 0);
	shmkit_segment_close(seg);
	return st;
}

/* Whether membarrier is expected to be in use here (kernel support and no override). */
static bool expect_membarrier(void)
{
	const char *e = getenv("SHMKIT_NO_MEMBARRIER");
	if (e && *e && strcmp(e, "0") != 0)
		return false;
	long q = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
	return q >= 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED);
}

/* The whole test: set up, fork, ping-pong, check the counters. `unregistered_child`:
 * the child plays a peer that did not register, so the channel must turn fenced. */
static void run_kind(enum kind kind, uint64_t total, bool unregistered_child, bool spin_child)
{
	struct names nm;
	t_name(nm.a, sizeof nm.a, "pp-a");
	t_name(nm.b, sizeof nm.b, "pp-b");
	struct shared *sh = sh_new();
	struct child_arg a = {.e = {.kind = kind, .sh = sh}, .nm = &nm, .total = total,
			      .unregistered = unregistered_child, .spin = spin_child};
	a.e.msg = malloc(MIB);
	ck_assert_ptr_nonnull(a.e.msg);
	struct end *e = &a.e;
	parent_setup(e, &nm);
	bool seg_kind = kind != K_EVENT;
	if (seg_kind && !unregistered_child) {
		struct shmkit_wait_stats st = stats_of(nm.a);
		ck_assert_uint_eq(st.fenced, expect_membarrier() ? 0 : 1);
	}
	pid_t pid = t_fork(child_main, &a);
	T_WAIT_FOR(atomic_load_explicit(&sh->child_ready, memory_order_acquire) ||
		   atomic_load_explicit(&sh->failed, memory_order_relaxed));
	ck_assert_msg(!atomic_load_explicit(&sh->failed, memory_order_relaxed), "%s", sh->why);
	ck_assert_msg(atomic_load_explicit(&sh->child_ready, memory_order_acquire),
		      "child not ready");
	parent_join(e, &nm);
	e->side = 0;
	uint64_t max = 0;
	int err = ping_pong(e, total, &max);
	int st = t_wait(pid, 600000);
	ck_assert_msg(!atomic_load_explicit(&sh->failed, memory_order_relaxed), "%s", sh->why);
	ck_assert_msg(err == 0, "parent ping-pong: %d (%s)", err,
		      err == -1 ? "wrong message" : shmkit_strerror(err));
	ck_assert_int_eq(st, 0);
	if (seg_kind) {
		struct shmkit_wait_stats sa = stats_of(nm.a), sb = stats_of(nm.b);
		ck_assert_msg(sa.missed == 0 && sb.missed == 0,
			      "%s: %llu + %llu wake-ups found only by a liveness slice",
			      kind_names[kind], (unsigned long long)sa.missed,
			      (unsigned long long)sb.missed);
		bool fenced = unregistered_child || !expect_membarrier();
		ck_assert_uint_eq(sa.fenced, fenced);
		ck_assert_uint_eq(sb.fenced, fenced);
	}
	printf("waitq: %s%s%s: %llu round trips, %s; max round trip %.1f µs\n",
	       kind_names[kind], expect_membarrier() ? "" : " (fenced)",
	       unregistered_child ? " (unregistered peer)" : "", (unsigned long long)total,
	       spin_child ? "the answer spins, the asker never" : "every wait asleep",
	       (double)max / 1000.0);
	fflush(stdout);
	end_close(e);
	shmkit_segment_remove(nm.a, &(struct shmkit_segment_opts){.backend = SHMKIT_BACKEND_POSIX});
	shmkit_segment_remove(nm.b, &(struct shmkit_segment_opts){.backend = SHMKIT_BACKEND_POSIX});
	free(a.e.msg);
	munmap(sh, sizeof *sh);
}

/* Every kind, in the asymmetric (membarrier) mode. */
START_TEST(test_pingpong)
{
	run_kind((enum kind)_i, total_rounds(), false, false);
}
END_TEST

/* The race itself. In a ping-pong where both sides sleep, a reply comes a whole wake-up
 * latency after the asker registered as a sleeper: the handshake is never contended. Here
 * the answering child spins, so its reply (store, then the load of the sleeper count)
 * lands within a few hundred nanoseconds of the asker's registration and re-check — the
 * window in which a missing barrier loses the wake-up (the asker never spins). Without
 * WQ-B1 this test counts missed wake-ups; with it, none. */
START_TEST(test_race)
{
	run_kind((enum kind)_i, total_rounds(), false, true);
}
END_TEST

START_TEST(test_race_fenced)
{
	setenv("SHMKIT_NO_MEMBARRIER", "1", 1);
	run_kind((enum kind)_i, total_rounds() / 4, false, true);
}
END_TEST

/* The fallback forced: every process of this test runs the fenced mode. */
START_TEST(test_pingpong_fenced)
{
	setenv("SHMKIT_NO_MEMBARRIER", "1", 1);
	run_kind((enum kind)_i, total_rounds() / 4, false, false);
}
END_TEST

/* A peer that did not register switches the channel to the fenced mode; nothing is lost.
 * The parent registered (membarrier), the child plays the unregistered late attacher. */
START_TEST(test_unregistered_peer)
{
	run_kind((enum kind)_i, total_rounds() / 10, true, true);
}
END_TEST

/* The flag is set by the unregistered attacher itself, visibly, before any message. */
START_TEST(test_unregistered_flag)
{
	char name[64];
	t_name_tracked(name, sizeof name, "flag", SHMKIT_BACKEND_POSIX);
	uint32_t before = expect_membarrier() ? 0 : 1;
	struct shmkit_chan *ch;
	ck_assert_int_eq(chan_make(name, SHMKIT_CHAN_PRODUCER, true, &ch), 0);
	ck_assert_uint_eq(stats_of(name).fenced, before);
	/* An observer never writes: it must not change the mode either. */
	setenv("SHMKIT_NO_MEMBARRIER", "1", 1);
	struct shmkit_chan *obs;
	ck_assert_int_eq(chan_make(name, SHMKIT_CHAN_OBSERVER, false, &obs), 0);
	ck_assert_uint_eq(stats_of(name).fenced, before);
	shmkit_chan_close(obs);
	/* The consumer attaches unregistered: the channel turns fenced at once. */
	struct shmkit_chan *cons;
	ck_assert_int_eq(chan_make(name, SHMKIT_CHAN_CONSUMER, false, &cons), 0);
	ck_assert_uint_eq(stats_of(name).fenced, 1);
	ck_assert_uint_eq(stats_of(name).missed, 0);
	shmkit_chan_close(cons);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
}
END_TEST

static Suite *waitq_suite(void)
{
	Suite *s = suite_create("waitq");
	double big = t_stress() ? 7200 : 600;
	TCase *tc = t_tcase(s, "pingpong", big);
	tcase_add_loop_test(tc, test_pingpong, K_STREAM, K_EVENT + 1);
	tc = t_tcase(s, "race", big);
	tcase_add_loop_test(tc, test_race, K_STREAM, K_EVENT + 1);
	tc = t_tcase(s, "fenced", big);
	tcase_add_loop_test(tc, test_pingpong_fenced, K_STREAM, K_EVENT + 1);
	tcase_add_loop_test(tc, test_race_fenced, K_STREAM, K_EVENT + 1);
	tc = t_tcase(s, "unregistered", big);
	tcase_add_loop_test(tc, test_unregistered_peer, K_STREAM, K_QUEUE + 1);
	tcase_add_test(tc, test_unregistered_flag);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {waitq_suite};
	return t_main(makers, 1);
}
