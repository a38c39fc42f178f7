/* Tests for src/wait.c: waiting on stream channels, pub/sub subscribers, queues and events
 * at once, with futex_waitv and with the forced fallback, and through an epoll'ed eventfd. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

static const struct timespec poll_now = {0, 0};

/* The four kinds of members, all in memfd segments the children inherit. */
struct rig {
	struct shmkit_chan *chan_c;  /* consumer (ours) */
	struct shmkit_pubsub *sub;   /* subscriber (ours) */
	struct shmkit_queue *q;      /* ours */
	struct shmkit_event *ev;     /* in shared anonymous memory */
	int chan_fd, ps_fd, q_fd;
};

enum { C_CHAN = 10, C_SUB = 20, C_QUEUE = 30, C_EVENT = 40 };

static void rig_make(struct rig *r)
{
	struct shmkit_chan_opts co = {.capacity = 4096};
	co.seg.backend = SHMKIT_BACKEND_MEMFD;
	ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_CONSUMER, &co, &r->chan_c), 0);
	r->chan_fd = shmkit_segment_fd(shmkit_chan_segment(r->chan_c));
	struct shmkit_pubsub_opts po = {.capacity = 4096, .max_subscribers = 2};
	po.seg.backend = SHMKIT_BACKEND_MEMFD;
	ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_SUBSCRIBER, &po, &r->sub), 0);
	r->ps_fd = shmkit_segment_fd(shmkit_pubsub_segment(r->sub));
	struct shmkit_queue_opts qo = {.slots = 8, .max_msg = 16};
	qo.seg.backend = SHMKIT_BACKEND_MEMFD;
	ck_assert_int_eq(shmkit_queue_create(NULL, &qo, &r->q), 0);
	r->q_fd = shmkit_segment_fd(shmkit_queue_segment(r->q));
	r->ev = t_shm_alloc(4096);
	shmkit_event_init(r->ev);
}

static void rig_free(struct rig *r)
{
	shmkit_chan_close(r->chan_c);
	shmkit_pubsub_close(r->sub);
	shmkit_queue_close(r->q);
	munmap(r->ev, 4096);
}

static void rig_add(struct shmkit_waitset *ws, struct rig *r)
{
	ck_assert_int_eq(shmkit_waitset_add_chan(ws, r->chan_c, C_CHAN), 0);
	ck_assert_int_eq(shmkit_waitset_add_pubsub(ws, r->sub, C_SUB), 0);
	ck_assert_int_eq(shmkit_waitset_add_queue(ws, r->q, C_QUEUE), 0);
	ck_assert_int_eq(shmkit_waitset_add_event(ws, r->ev, C_EVENT), 0);
}

/* A waitset with `flags`, using the forced fallback instead of futex_waitv when `fallback`
 * (the loop tests run both). */
static struct shmkit_waitset *ws_new(int fallback, uint32_t flags)
{
	struct shmkit_waitset_opts o = {.flags = (fallback ? SHMKIT_WAITSET_FALLBACK : 0) | flags};
	struct shmkit_waitset *ws;
	ck_assert_int_eq(shmkit_waitset_create(&o, &ws), 0);
	return ws;
}

/* The child: makes one member ready after another, with pauses so the parent is asleep. */
static int poker(void *arg)
{
	struct rig *r = arg;
	struct shmkit_chan *p;
	struct shmkit_pubsub *pub;
	struct shmkit_queue *q;
	if (shmkit_chan_open_fd(r->chan_fd, SHMKIT_CHAN_PRODUCER, NULL, &p) ||
	    shmkit_pubsub_open_fd(r->ps_fd, SHMKIT_PUBSUB_PUBLISHER, NULL, &pub) ||
	    shmkit_queue_open_fd(r->q_fd, NULL, &q))
		return 10;
	usleep(60000);
	shmkit_chan_send(p, "chan", 4);
	usleep(60000);
	shmkit_pubsub_send(pub, "pub", 3);
	usleep(60000);
	shmkit_queue_send(q, "queue", 5);
	usleep(60000);
	shmkit_event_notify(r->ev);
	usleep(60000);
	shmkit_chan_close(p);    /* end of stream */
	usleep(60000);
	shmkit_pubsub_close(pub);
	shmkit_queue_close(q);
	return 0;
}

/* Waits for the next report and checks it is (cookie, bits). */
static void expect(struct shmkit_waitset *ws, uint64_t cookie, uint32_t bits)
{
	struct shmkit_waitset_ready out[8];
	struct timespec ts;
	int n = shmkit_waitset_wait(ws, t_in_ms(&ts, 5000), out, 8);
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(out[0].cookie, cookie);
	ck_assert_uint_eq(out[0].events, bits);
}

START_TEST(test_wakeups_and_timeouts)
{
	int fallback = _i;
	struct rig r;
	rig_make(&r);
	struct shmkit_waitset *ws = ws_new(fallback, 0);
	ck_assert_int_eq(shmkit_waitset_uses_waitv(ws), fallback ? 0 : 1);
	rig_add(ws, &r);
	ck_assert_int_eq(shmkit_waitset_count(ws), 4);
	struct shmkit_waitset_ready out[8];
	/* Nothing ready: a poll returns at once, a wait never returns early. */
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 8), -ETIMEDOUT);
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_waitset_wait(ws, t_in_ms(&ts, 50), out, 8), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 50000000);
	pid_t pid = t_fork(poker, &r);
	char buf[16];
	/* Each in turn, while we sleep. */
	expect(ws, C_CHAN, SHMKIT_WAIT_READABLE);
	ck_assert_int_eq(shmkit_chan_recv(r.chan_c, buf, sizeof buf), 4);
	expect(ws, C_SUB, SHMKIT_WAIT_READABLE);
	ck_assert_int_eq(shmkit_pubsub_recv(r.sub, buf, sizeof buf), 3);
	expect(ws, C_QUEUE, SHMKIT_WAIT_READABLE);
	ck_assert_int_eq(shmkit_queue_recv(r.q, buf, sizeof buf), 5);
	expect(ws, C_EVENT, SHMKIT_WAIT_EVENT);
	/* An event is reported once per notify; a readable member until it is drained. */
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 8), -ETIMEDOUT);
	expect(ws, C_CHAN, SHMKIT_WAIT_CLOSED);
	ck_assert_int_eq(shmkit_waitset_remove(ws, C_CHAN), 1);
	expect(ws, C_SUB, SHMKIT_WAIT_CLOSED);
	ck_assert_int_eq(shmkit_waitset_remove(ws, C_SUB), 1);
	ck_assert_int_eq(shmkit_waitset_remove(ws, C_SUB), -ENOENT);
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	/* Several at once, round-robin, all reported. */
	shmkit_event_notify(r.ev);
	ck_assert_int_eq(shmkit_queue_send(r.q, "a", 1), 0);
	int n = shmkit_waitset_wait(ws, &poll_now, out, 8);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(out[0].cookie + out[1].cookie, C_QUEUE + C_EVENT);
	n = shmkit_waitset_wait(ws, &poll_now, out, 1); /* room for one: the queue remains */
	ck_assert_int_eq(n, 1);
	ck_assert_uint_eq(out[0].cookie, C_QUEUE);
	shmkit_waitset_destroy(ws);
	rig_free(&r);
}
END_TEST

/* A producer killed: its consumer's member is reported DEAD within a few slices. */
static int producer_dies(void *arg)
{
	struct rig *r = arg;
	struct shmkit_chan *p;
	struct shmkit_pubsub *pub;
	if (shmkit_chan_open_fd(r->chan_fd, SHMKIT_CHAN_PRODUCER, NULL, &p) ||
	    shmkit_pubsub_open_fd(r->ps_fd, SHMKIT_PUBSUB_PUBLISHER, NULL, &pub))
		return 10;
	usleep(100000);
	raise(SIGKILL);
	return 11;
}

START_TEST(test_dead_peers)
{
	int fallback = _i;
	struct rig r;
	rig_make(&r);
	struct shmkit_waitset *ws = ws_new(fallback, 0);
	ck_assert_int_eq(shmkit_waitset_add_chan(ws, r.chan_c, C_CHAN), 0);
	ck_assert_int_eq(shmkit_waitset_add_pubsub(ws, r.sub, C_SUB), 0);
	pid_t pid = t_fork(producer_dies, &r);
	ck_assert_int_eq(t_wait(pid, 10000), 128 + SIGKILL);
	struct shmkit_waitset_ready out[4];
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	int n = shmkit_waitset_wait(ws, t_in_ms(&ts, 5000), out, 4);
	ck_assert_int_ge(n, 1);
	unsigned seen = 0;
	for (int k = 0; k < 10 && seen != 3; k++) {
		for (int i = 0; i < n; i++) {
			ck_assert_uint_eq(out[i].events, SHMKIT_WAIT_DEAD);
			seen |= out[i].cookie == C_CHAN ? 1 : 2;
		}
		if (seen != 3)
			n = shmkit_waitset_wait(ws, t_in_ms(&ts, 5000), out, 4);
	}
	ck_assert_uint_eq(seen, 3);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 3000000000ull);
	shmkit_waitset_destroy(ws);
	rig_free(&r);
}
END_TEST

/* --- liveness on its own schedule --------------------------------------------------------------
 * Members in every combination of CLOSED (its producer closed), READABLE (a message that
 * stays unread), BUSY (a producer sending without pause) next to two members whose peers
 * are killed (a stream channel and a pub/sub subscriber, each with one message to deliver
 * first): every DEAD is reported within the 100 ms liveness budget (asserted loosely, the
 * latency printed), and every other event is still delivered. Modes: bit 0 = fallback,
 * bit 1 = through the epoll'ed eventfd. */

enum { L_DEAD_CHAN = 1, L_DEAD_SUB, L_CLOSED, L_READABLE, L_BUSY, L_N };

struct live {
	int fd[L_N];          /* the members' memfd descriptors, by cookie */
	_Atomic int ready;
	_Atomic int stop;
};

struct live_child {
	struct live *l;
	int which;
};

/* The producer side of one member, in its own process. */
static int live_producer(void *arg)
{
	struct live_child *a = arg;
	struct live *l = a->l;
	struct timespec ts;
	if (a->which == L_DEAD_SUB) {
		struct shmkit_pubsub *pub;
		if (shmkit_pubsub_open_fd(l->fd[a->which], SHMKIT_PUBSUB_PUBLISHER, NULL, &pub) ||
		    shmkit_pubsub_send(pub, "last", 4))
			return 10;
		atomic_fetch_add(&l->ready, 1);
		pause(); /* killed by the test */
		return 11;
	}
	struct shmkit_chan *p;
	if (shmkit_chan_open_fd(l->fd[a->which], SHMKIT_CHAN_PRODUCER, NULL, &p))
		return 10;
	if (a->which == L_CLOSED) {
		shmkit_chan_close(p);
		atomic_fetch_add(&l->ready, 1);
		return 0;
	}
	if (a->which == L_BUSY) {
		atomic_fetch_add(&l->ready, 1);
		for (uint64_t seq = 0; !atomic_load(&l->stop); seq++)
			if (shmkit_chan_send_wait(p, &seq, sizeof seq, t_in_ms(&ts, 20)) < 0)
				seq--; /* full for a while: send it again */
		shmkit_chan_close(p);
		return 0;
	}
	if (shmkit_chan_send(p, "last", 4))
		return 12;
	atomic_fetch_add(&l->ready, 1);
	if (a->which == L_DEAD_CHAN) {
		pause(); /* killed by the test */
		return 11;
	}
	while (!atomic_load(&l->stop)) /* L_READABLE: alive, its message never read */
		usleep(1000);
	shmkit_chan_close(p);
	return 0;
}

START_TEST(test_dead_never_hidden)
{
	int mode = _i;
	int fallback = mode & 1, epolled = mode & 2;
	for (unsigned combo = 0; combo < 8; combo++) {
		struct live *l = t_shm_alloc(sizeof *l);
		struct shmkit_chan *ch[L_N] = {0};
		struct shmkit_pubsub *sub;
		struct shmkit_waitset *ws = ws_new(fallback, 0);
		struct live_child args[L_N];
		pid_t pid[L_N] = {0};
		int members = 0;
		for (int c = 1; c < L_N; c++) {
			if (c >= L_CLOSED && !(combo & 1u << (c - L_CLOSED)))
				continue;
			if (c == L_DEAD_SUB) {
				struct shmkit_pubsub_opts po = {.capacity = 4096, .max_subscribers = 2};
				po.seg.backend = SHMKIT_BACKEND_MEMFD;
				ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_SUBSCRIBER, &po,
								      &sub), 0);
				l->fd[c] = shmkit_segment_fd(shmkit_pubsub_segment(sub));
				ck_assert_int_eq(shmkit_waitset_add_pubsub(ws, sub, (uint64_t)c), 0);
			} else {
				struct shmkit_chan_opts co = {.capacity = 4096};
				co.seg.backend = SHMKIT_BACKEND_MEMFD;
				ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_CONSUMER, &co,
								    &ch[c]), 0);
				l->fd[c] = shmkit_segment_fd(shmkit_chan_segment(ch[c]));
				ck_assert_int_eq(shmkit_waitset_add_chan(ws, ch[c], (uint64_t)c), 0);
			}
			args[c] = (struct live_child){l, c};
			pid[c] = t_fork(live_producer, &args[c]);
			members++;
		}
		T_WAIT_FOR(atomic_load(&l->ready) == members);
		ck_assert_int_eq(atomic_load(&l->ready), members);
		int ep = -1;
		if (epolled) {
			ep = epoll_create1(EPOLL_CLOEXEC);
			struct epoll_event ee = {.events = EPOLLIN};
			ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, shmkit_waitset_fd(ws), &ee), 0);
		}
		uint64_t t_kill = 0, dead_ns[L_N] = {0}, busy_next = 0;
		unsigned seen = 0; /* cookies reported with the events they should have */
		bool got_last[L_N] = {0};
		int64_t t_end = t_now_ms() + 10000;
		for (int rounds = 0;; rounds++) {
			bool dead_all = dead_ns[L_DEAD_CHAN] && dead_ns[L_DEAD_SUB];
			bool busy_ok = !(combo & 4) || busy_next >= 20;
			unsigned want = 1u << L_DEAD_CHAN | 1u << L_DEAD_SUB |
					(combo & 1 ? 1u << L_CLOSED : 0) |
					(combo & 2 ? 1u << L_READABLE : 0) | (combo & 4 ? 1u << L_BUSY : 0);
			if (dead_all && busy_ok && (seen & want) == want)
				break;
			ck_assert_msg(t_now_ms() < t_end, "mode %d combo %u: seen %#x, dead %d %d, busy %llu",
				      mode, combo, seen, dead_ns[L_DEAD_CHAN] != 0,
				      dead_ns[L_DEAD_SUB] != 0, (unsigned long long)busy_next);
			if (rounds == 3) {
				/* The caller is in its loop: kill the two peers now. */
				kill(pid[L_DEAD_CHAN], SIGKILL);
				kill(pid[L_DEAD_SUB], SIGKILL);
				ck_assert_int_eq(t_wait(pid[L_DEAD_CHAN], 5000), 128 + SIGKILL);
				ck_assert_int_eq(t_wait(pid[L_DEAD_SUB], 5000), 128 + SIGKILL);
				pid[L_DEAD_CHAN] = pid[L_DEAD_SUB] = 0;
				t_kill = shmkit_now_ns();
			}
			struct shmkit_waitset_ready out[8];
			struct timespec ts;
			int n;
			if (epolled) {
				struct epoll_event got;
				int e = epoll_wait(ep, &got, 1, 200);
				ck_assert_int_ge(e, 0);
				n = shmkit_waitset_wait(ws, &poll_now, out, 8);
			} else {
				n = shmkit_waitset_wait(ws, t_in_ms(&ts, 200), out, 8);
			}
			if (n == -ETIMEDOUT)
				continue;
			ck_assert_int_ge(n, 1);
			for (int i = 0; i < n; i++) {
				int c = (int)out[i].cookie;
				uint32_t ev = out[i].events;
				char buf[16];
				ck_assert(c >= 1 && c < L_N);
				switch (c) {
				case L_CLOSED:
					ck_assert_uint_eq(ev, SHMKIT_WAIT_CLOSED);
					break;
				case L_READABLE:
					ck_assert_uint_eq(ev, SHMKIT_WAIT_READABLE);
					break;
				case L_BUSY: {
					ck_assert_uint_eq(ev, SHMKIT_WAIT_READABLE);
					uint64_t v;
					ck_assert_int_eq(shmkit_chan_recv(ch[c], &v, sizeof v), 8);
					ck_assert_uint_eq(v, busy_next);
					busy_next++;
					break;
				}
				default: /* the two that die */
					if (ev == SHMKIT_WAIT_READABLE) {
						ck_assert(!got_last[c]);
						ssize_t r = c == L_DEAD_SUB
								    ? shmkit_pubsub_recv(sub, buf, sizeof buf)
								    : shmkit_chan_recv(ch[c], buf, sizeof buf);
						ck_assert_int_eq(r, 4);
						ck_assert_int_eq(memcmp(buf, "last", 4), 0);
						got_last[c] = true;
						break;
					}
					/* DEAD only after the kill, and after its message. */
					ck_assert_uint_eq(ev, SHMKIT_WAIT_DEAD);
					ck_assert_uint_ne(t_kill, 0);
					ck_assert(got_last[c]);
					dead_ns[c] = shmkit_now_ns() - t_kill;
					ck_assert_int_eq(shmkit_waitset_remove(ws, (uint64_t)c), 1);
					break;
				}
				seen |= 1u << c;
			}
		}
		/* The budget is 100 ms; asserted loosely (a loaded 2-CPU CI machine), printed. */
		fprintf(stderr, "waitset liveness, %s%s, closed %d readable %d busy %d: DEAD after "
				"%.1f ms (chan), %.1f ms (pub/sub)\n",
			fallback ? "fallback" : "futex_waitv", epolled ? " + eventfd" : "", combo & 1,
			(combo >> 1) & 1, (combo >> 2) & 1, dead_ns[L_DEAD_CHAN] / 1e6,
			dead_ns[L_DEAD_SUB] / 1e6);
		ck_assert_uint_lt(dead_ns[L_DEAD_CHAN], 2000000000ull);
		ck_assert_uint_lt(dead_ns[L_DEAD_SUB], 2000000000ull);
		atomic_store(&l->stop, 1);
		for (int c = 1; c < L_N; c++)
			if (pid[c])
				ck_assert_int_eq(t_wait(pid[c], 10000), 0);
		if (ep >= 0)
			close(ep);
		shmkit_waitset_destroy(ws);
		for (int c = 1; c < L_N; c++)
			shmkit_chan_close(ch[c]);
		shmkit_pubsub_close(sub);
		munmap(l, sizeof *l);
	}
}
END_TEST

/* A queue member whose next message sits behind a slot a dead process holds (a producer
 * killed mid-loan, a consumer killed mid-take): nobody else waits on the queue, so the
 * waitset's own liveness check must repair it, and the message is reported READABLE. */
static int queue_holder_dies(void *arg)
{
	struct rig *r = arg;
	struct shmkit_queue *q;
	if (shmkit_queue_open_fd(r->q_fd, NULL, &q))
		return 10;
	void *p;
	const void *cp;
	size_t n;
	/* A message is already there: take it; else loan a slot. */
	if (shmkit_queue_peek(q, &cp, &n) != 0 && shmkit_queue_loan(q, &p) != 0)
		return 11;
	raise(SIGKILL);
	return 12;
}

START_TEST(test_queue_dead_holder)
{
	int fallback = _i & 1, consumer_dies = _i & 2;
	struct rig r;
	rig_make(&r);
	struct shmkit_waitset *ws = ws_new(fallback, 0);
	ck_assert_int_eq(shmkit_waitset_add_queue(ws, r.q, C_QUEUE), 0);
	struct shmkit_waitset_ready out[4];
	if (consumer_dies)
		ck_assert_int_eq(shmkit_queue_send(r.q, "taken", 5), 0);
	/* A first wait, so that the repair comes from the liveness schedule, not from the
	 * check every waitset makes at its first wait. */
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), consumer_dies ? 1 : -ETIMEDOUT);
	pid_t pid = t_fork(queue_holder_dies, &r);
	ck_assert_int_eq(t_wait(pid, 10000), 128 + SIGKILL);
	if (!consumer_dies)
		ck_assert_int_eq(shmkit_queue_send(r.q, "behind", 6), 0);
	char buf[16];
	ck_assert_int_eq(shmkit_queue_recv(r.q, buf, sizeof buf), -EAGAIN); /* held */
	uint64_t t0 = shmkit_now_ns();
	expect(ws, C_QUEUE, SHMKIT_WAIT_READABLE);
	fprintf(stderr, "waitset, %s, queue behind a dead %s: READABLE after %.1f ms\n",
		fallback ? "fallback" : "futex_waitv", consumer_dies ? "consumer" : "producer",
		(double)(shmkit_now_ns() - t0) / 1e6);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 2000000000ull);
	if (consumer_dies) {
		ck_assert_int_eq(shmkit_queue_recv(r.q, buf, sizeof buf), 5);
		ck_assert_int_eq(memcmp(buf, "taken", 5), 0); /* re-delivered */
	} else {
		ck_assert_int_eq(shmkit_queue_recv(r.q, buf, sizeof buf), 6);
		ck_assert_int_eq(memcmp(buf, "behind", 6), 0);
	}
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), -ETIMEDOUT);
	shmkit_waitset_destroy(ws);
	rig_free(&r);
}
END_TEST

/* --- many members, from another process ------------------------------------------------------ */

struct many {
	struct shmkit_event ev[SHMKIT_WAITSET_MAX];
	_Atomic int which;
	_Atomic int round;
};

static int notifier(void *arg)
{
	struct many *m = arg;
	for (int r = 1; r <= 20; r++) {
		while (atomic_load(&m->round) != r)
			usleep(200);
		usleep(5000); /* the parent is asleep by now */
		shmkit_event_notify(&m->ev[atomic_load(&m->which)]);
	}
	return 0;
}

START_TEST(test_many_members)
{
	int fallback = _i;
	struct many *m = t_shm_alloc(sizeof *m);
	struct shmkit_waitset *ws = ws_new(fallback, SHMKIT_WAITSET_NO_SPIN);
	for (unsigned i = 0; i < SHMKIT_WAITSET_MAX; i++)
		ck_assert_int_eq(shmkit_waitset_add_event(ws, &m->ev[i], 1000 + i), 0);
	struct shmkit_event extra;
	shmkit_event_init(&extra);
	ck_assert_int_eq(shmkit_waitset_add_event(ws, &extra, 1), -ENOSPC);
	ck_assert_int_eq(shmkit_waitset_add_event(ws, &m->ev[3], 1), -EEXIST);
	pid_t pid = t_fork(notifier, m);
	uint64_t rng = t_seed();
	for (int r = 1; r <= 20; r++) {
		int which = r == 1 ? SHMKIT_WAITSET_MAX - 1 : (int)(t_rand(&rng) % SHMKIT_WAITSET_MAX);
		atomic_store(&m->which, which);
		atomic_store(&m->round, r);
		struct shmkit_waitset_ready out[4];
		struct timespec ts;
		int n = shmkit_waitset_wait(ws, t_in_ms(&ts, 5000), out, 4);
		ck_assert_int_eq(n, 1);
		ck_assert_uint_eq(out[0].cookie, 1000 + (uint64_t)which);
		ck_assert_uint_eq(out[0].events, SHMKIT_WAIT_EVENT);
	}
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	/* The waitset slept (registered) on the events' sleeper counts, and left them. */
	for (unsigned i = 0; i < SHMKIT_WAITSET_MAX; i++)
		ck_assert_uint_eq(shmkit_event_sleepers(&m->ev[i]), 0);
	shmkit_waitset_destroy(ws);
	munmap(m, sizeof *m);
}
END_TEST

/* --- epoll ----------------------------------------------------------------------------------- */

static int late_publisher(void *arg)
{
	struct rig *r = arg;
	struct shmkit_pubsub *pub;
	if (shmkit_pubsub_open_fd(r->ps_fd, SHMKIT_PUBSUB_PUBLISHER, NULL, &pub))
		return 10;
	usleep(80000);
	shmkit_pubsub_send(pub, "late", 4);
	usleep(80000);
	shmkit_event_notify(r->ev);
	usleep(200000);
	shmkit_pubsub_close(pub);
	return 0;
}

START_TEST(test_epoll_fd)
{
	int fallback = _i;
	struct rig r;
	rig_make(&r);
	struct shmkit_waitset *ws = ws_new(fallback, 0);
	ck_assert_int_eq(shmkit_waitset_add_pubsub(ws, r.sub, C_SUB), 0);
	int fd = shmkit_waitset_fd(ws);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(shmkit_waitset_fd(ws), fd); /* one per waitset */
	/* Added after the helper started: it must pick the new member up. */
	ck_assert_int_eq(shmkit_waitset_add_event(ws, r.ev, C_EVENT), 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = {.events = EPOLLIN, .data.u64 = 7};
	ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ee), 0);
	struct epoll_event got;
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 30), 0); /* nothing yet */
	pid_t pid = t_fork(late_publisher, &r);
	struct shmkit_waitset_ready out[4];
	char buf[16];
	/* The helper signals; the members are collected with polls until nothing is left. */
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 5000), 1);
	ck_assert_uint_eq(got.data.u64, 7);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), 1);
	ck_assert_uint_eq(out[0].cookie, C_SUB);
	ck_assert_int_eq(shmkit_pubsub_recv(r.sub, buf, sizeof buf), 4);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), -ETIMEDOUT); /* re-arms */
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 0), 0);
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 5000), 1);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), 1);
	ck_assert_uint_eq(out[0].cookie, C_EVENT);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 4), -ETIMEDOUT);
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 20), 0);
	/* Removing a member while the helper waits on it: it lets go before remove returns,
	 * so the handle can be closed at once (ASan would catch a use after close). */
	ck_assert_int_eq(shmkit_waitset_remove(ws, C_SUB), 1);
	shmkit_pubsub_close(r.sub);
	r.sub = NULL;
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	usleep(20000);
	ck_assert_int_eq(epoll_wait(ep, &got, 1, 0), 0);
	close(ep);
	shmkit_waitset_destroy(ws);
	rig_free(&r);
}
END_TEST

START_TEST(test_errors)
{
	struct shmkit_waitset *ws;
	struct shmkit_waitset_opts bad = {.reserved = 1};
	ck_assert_int_eq(shmkit_waitset_create(&bad, &ws), -EINVAL);
	ck_assert_int_eq(shmkit_waitset_create(NULL, &ws), 0);
	struct shmkit_waitset_ready out[1];
	ck_assert_int_eq(shmkit_waitset_wait(ws, NULL, out, 1), -EINVAL); /* empty, forever */
	struct timespec ts;
	uint64_t t0 = shmkit_now_ns();
	ck_assert_int_eq(shmkit_waitset_wait(ws, t_in_ms(&ts, 20), out, 1), -ETIMEDOUT);
	ck_assert_uint_ge(shmkit_now_ns() - t0, 20000000);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &poll_now, out, 0), -EINVAL);
	struct timespec badts = {0, 2000000000L};
	struct shmkit_event ev;
	shmkit_event_init(&ev);
	ck_assert_int_eq(shmkit_waitset_add_event(ws, &ev, 1), 0);
	ck_assert_int_eq(shmkit_waitset_wait(ws, &badts, out, 1), -EINVAL);
	/* Wrong roles. */
	struct shmkit_chan_opts co = {.capacity = 4096};
	co.seg.backend = SHMKIT_BACKEND_MEMFD;
	struct shmkit_chan *p;
	ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &co, &p), 0);
	ck_assert_int_eq(shmkit_waitset_add_chan(ws, p, 2), -EPERM);
	struct shmkit_pubsub_opts po = {.capacity = 4096};
	po.seg.backend = SHMKIT_BACKEND_MEMFD;
	struct shmkit_pubsub *pub;
	ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &po, &pub), 0);
	ck_assert_int_eq(shmkit_waitset_add_pubsub(ws, pub, 3), -EPERM);
	shmkit_pubsub_close(pub);
	shmkit_chan_close(p);
	ck_assert_int_eq(shmkit_waitset_destroy(ws), 0);
	ck_assert_int_eq(shmkit_waitset_destroy(NULL), 0);
}
END_TEST

static Suite *wait_suite(void)
{
	Suite *s = suite_create("wait");
	TCase *tc = t_tcase(s, "waitset", 60);
	tcase_add_loop_test(tc, test_wakeups_and_timeouts, 0, 2);
	tcase_add_loop_test(tc, test_dead_peers, 0, 2);
	tcase_add_loop_test(tc, test_dead_never_hidden, 0, 4);
	tcase_add_loop_test(tc, test_queue_dead_holder, 0, 4);
	tcase_add_loop_test(tc, test_many_members, 0, 2);
	tcase_add_loop_test(tc, test_epoll_fd, 0, 2);
	tcase_add_test(tc, test_errors);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {wait_suite};
	return t_main(makers, 1);
}
