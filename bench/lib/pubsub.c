/* shmkit benchmarks — pub/sub fan-out and work-queue throughput (see pubsub.h). */
#include "pubsub.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "shmkit.h"

#define MAX_PROCS 16
#define QBATCH 16

/* What the processes of one configuration share (anonymous shared memory, 128-byte lines
 * for the words different processes write). */
struct ctl {
	_Alignas(128) _Atomic uint32_t ready;
	_Alignas(128) _Atomic uint32_t go;
	_Alignas(128) _Atomic uint32_t producers_done;
	_Alignas(128) _Atomic int32_t err;
	char why[160];
	_Alignas(128) uint64_t t0;
	struct {
		_Alignas(128) _Atomic uint64_t count;
		_Atomic uint64_t t_end;
	} role[MAX_PROCS];
};

static void fail(struct ctl *c, int err, const char *what)
{
	int32_t zero = 0;
	if (atomic_compare_exchange_strong(&c->err, &zero, err ? err : -EIO))
		snprintf(c->why, sizeof c->why, "%s", what);
}

static void pin(int index)
{
	int n = bench_ncpus();
	if (n > 1)
		(void)bench_pin_cpu(index % n);
}

static void wait_go(struct ctl *c)
{
	atomic_fetch_add(&c->ready, 1);
	while (!atomic_load_explicit(&c->go, memory_order_acquire))
		sched_yield();
}

/* Starts the children (each returns 0 or 1), lets them go together, waits for them.
 * Returns 0 or the first error a child reported. */
static int run_children(struct ctl *c, int n, int (*fn)(struct ctl *, int, void *), void *arg)
{
	pid_t pid[MAX_PROCS];
	int started = 0;
	fflush(NULL);
	for (int i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] == 0)
			_exit(fn(c, i, arg));
		if (pid[i] < 0) {
			fail(c, -errno, "fork");
			break;
		}
		started++;
	}
	uint64_t limit = bench_now_ns() + 30000000000ull;
	while (atomic_load(&c->ready) < (uint32_t)started && bench_now_ns() < limit &&
	       !atomic_load(&c->err))
		usleep(200);
	c->t0 = bench_now_ns();
	atomic_store_explicit(&c->go, 1, memory_order_release);
	for (int i = 0; i < started; i++) {
		int st;
		waitpid(pid[i], &st, 0);
		if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0))
			fail(c, -ECHILD, "a benchmark process failed or was killed");
	}
	return atomic_load(&c->err);
}

/* --- pub/sub ------------------------------------------------------------------------------ */

struct ps_arg {
	int fd;
	uint64_t msgs;
	size_t size;
	unsigned subs;
};

static int ps_role(struct ctl *c, int i, void *arg)
{
	struct ps_arg *a = arg;
	pin(i);
	struct shmkit_pubsub *ps;
	int role = i == 0 ? SHMKIT_PUBSUB_PUBLISHER : SHMKIT_PUBSUB_SUBSCRIBER;
	int err = shmkit_pubsub_open_fd(a->fd, role, NULL, &ps);
	if (err) {
		fail(c, err, "pubsub open");
		return 1;
	}
	wait_go(c);
	if (i == 0) {
		for (uint64_t n = 0; n < a->msgs; n++) {
			void *p;
			err = shmkit_pubsub_loan_wait(ps, a->size, &p, NULL);
			if (err) {
				fail(c, err, "pubsub loan");
				return 1;
			}
			memcpy(p, &n, 8);
			memset((uint8_t *)p + 8, (int)(n & 0xff), a->size - 8);
			/* Publish every 16 messages (and the last): what a batching producer does. */
			shmkit_pubsub_commit(ps, a->size,
					     (n % 16 == 15 || n + 1 == a->msgs) ? 0 : SHMKIT_PUBSUB_MORE);
		}
		shmkit_pubsub_close(ps);
		return 0;
	}
	uint64_t n = 0;
	for (;;) {
		const void *p;
		size_t len;
		err = shmkit_pubsub_peek(ps, &p, &len);
		if (err == -EAGAIN) {
			shmkit_pubsub_flush(ps); /* held releases go back before waiting */
			err = shmkit_pubsub_peek_wait(ps, &p, &len, NULL);
		}
		if (err == -EPIPE)
			break;
		uint64_t seq;
		if (!err)
			memcpy(&seq, p, 8);
		if (err || len != a->size || seq != n ||
		    ((const uint8_t *)p)[len - 1] != (uint8_t)(n & 0xff)) {
			fail(c, err ? err : -EBADMSG, "pubsub: lost, reordered or corrupt message");
			return 1;
		}
		n++;
		shmkit_pubsub_release(ps, n % 16 ? SHMKIT_PUBSUB_MORE : 0);
	}
	atomic_store(&c->role[i].count, n);
	atomic_store(&c->role[i].t_end, bench_now_ns());
	shmkit_pubsub_close(ps);
	return n == a->msgs ? 0 : 1;
}

/* The sleep/wake handshake must never have needed a liveness slice to deliver a wake-up
 * (docs/design.md, "Sleep/wake handshake"): -EPROTO with a reason when the segment
 * counted one. */
static int check_missed(const struct shmkit_segment *seg, char *why, size_t cap)
{
	struct shmkit_wait_stats st;
	if (!seg || shmkit_segment_wait_stats(seg, &st) != 0 || st.missed == 0)
		return 0;
	snprintf(why, cap, "%llu wake-ups found only by the liveness slice",
		 (unsigned long long)st.missed);
	return -EPROTO;
}

/* Returns messages per second delivered to every subscriber, or a negative errno. */
static double run_pubsub(unsigned subs, uint64_t msgs, size_t size, char *why, size_t cap)
{
	struct shmkit_pubsub_opts o = {.capacity = 1 << 20, .max_msg = 4096,
				       .max_subscribers = subs, .policy = SHMKIT_PUBSUB_BLOCK};
	o.seg.backend = SHMKIT_BACKEND_MEMFD;
	struct shmkit_pubsub *own;
	int err = shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_SUBSCRIBER, &o,
				       &own);
	if (err)
		return err;
	struct ps_arg a = {shmkit_segment_fd(shmkit_pubsub_segment(own)), msgs, size, subs};
	/* The creator attached as a subscriber only to create it: leave before the run. */
	int fd = dup(a.fd);
	shmkit_pubsub_close(own);
	a.fd = fd;
	struct ctl *c = bench_shared_alloc(sizeof *c);
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	err = run_children(c, (int)subs + 1, ps_role, &a);
	if (!err) {
		struct shmkit_segment_opts so = {.backend = SHMKIT_BACKEND_MEMFD,
						 .flags = SHMKIT_SEG_RDONLY};
		struct shmkit_segment *seg;
		if (shmkit_segment_open_fd(fd, &so, &seg) == 0) {
			err = check_missed(seg, c->why, sizeof c->why);
			shmkit_segment_close(seg);
		}
	}
	double rate = err;
	if (!err) {
		uint64_t end = 0;
		for (unsigned i = 1; i <= subs; i++)
			if (c->role[i].t_end > end)
				end = c->role[i].t_end;
		rate = (double)msgs / ((double)(end - c->t0) / 1e9);
	} else {
		snprintf(why, cap, "%s", c->why);
	}
	bench_shared_free(c, sizeof *c);
	close(fd);
	return rate;
}

/* --- queue ------------------------------------------------------------------------------- */

/* The reference design (limits.md): a bounded MPMC queue with a sequence word per slot, one
 * CAS on the shared enqueue/dequeue position per message, spinning. Same slot size as
 * shmkit's queue for the same messages. */
struct ref_slot {
	_Atomic uint64_t seq;
	uint32_t len;
	uint32_t pad;
	uint8_t data[];
};

struct ref_queue {
	_Alignas(128) _Atomic uint64_t enq;
	_Alignas(128) _Atomic uint64_t deq;
	_Alignas(128) uint64_t n, stride;
	uint8_t slots[];
};

static struct ref_slot *ref_at(struct ref_queue *q, uint64_t pos)
{
	return (struct ref_slot *)(void *)(q->slots + (pos & (q->n - 1)) * q->stride);
}

static void ref_pause(uint32_t *spins)
{
	if (++*spins % 1024 == 0)
		sched_yield(); /* oversubscribed runs must still finish */
	else
#if defined(__x86_64__) || defined(__i386__)
		__builtin_ia32_pause();
#else
		atomic_signal_fence(memory_order_seq_cst);
#endif
}

static int ref_send(struct ref_queue *q, const void *buf, uint32_t len, struct ctl *c)
{
	uint32_t spins = 0;
	for (;;) {
		uint64_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
		struct ref_slot *s = ref_at(q, pos);
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t d = (int64_t)(seq - pos);
		if (d == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				memcpy(s->data, buf, len);
				s->len = len;
				atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
				return 0;
			}
		} else if (d < 0) {
			if (atomic_load_explicit(&c->err, memory_order_relaxed))
				return -EINTR;
			ref_pause(&spins); /* full */
		}
	}
}

/* 1 received, 0 empty. */
static int ref_recv(struct ref_queue *q, void *buf, uint32_t *len)
{
	for (;;) {
		uint64_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
		struct ref_slot *s = ref_at(q, pos);
		uint64_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
		int64_t d = (int64_t)(seq - (pos + 1));
		if (d == 0) {
			if (atomic_compare_exchange_weak_explicit(&q->deq, &pos, pos + 1,
								  memory_order_relaxed,
								  memory_order_relaxed)) {
				*len = s->len;
				memcpy(buf, s->data, *len);
				atomic_store_explicit(&s->seq, pos + q->n, memory_order_release);
				return 1;
			}
		} else if (d < 0) {
			return 0;
		}
	}
}

enum { Q_SHMKIT = 0, Q_SHMKIT_BATCH = 1, Q_REF = 2 };

struct q_arg {
	int kind;
	int fd;              /* shmkit queue (memfd) */
	struct ref_queue *ref;
	unsigned producers, consumers;
	uint64_t msgs;
	size_t size;
};

static void q_msg(uint8_t *p, size_t size, uint32_t producer, uint64_t n)
{
	uint64_t id = (uint64_t)producer << 48 | n;
	memcpy(p, &id, 8);
	memset(p + 8, (int)(n & 0xff), size - 8);
}

static int q_role(struct ctl *c, int i, void *arg)
{
	struct q_arg *a = arg;
	pin(i);
	bool producer = (unsigned)i < a->producers;
	struct shmkit_queue *q = NULL;
	if (a->kind != Q_REF) {
		int err = shmkit_queue_open_fd(a->fd, NULL, &q);
		if (err) {
			fail(c, err, "queue open");
			return 1;
		}
	}
	uint8_t buf[QBATCH][4096];
	size_t lens[QBATCH];
	for (int k = 0; k < QBATCH; k++)
		lens[k] = a->size;
	wait_go(c);
	uint64_t mine = a->msgs / a->producers + ((unsigned)i < a->msgs % a->producers ? 1 : 0);
	uint64_t n = 0;
	int err = 0;
	if (producer) {
		while (n < mine && !err) {
			if (a->kind == Q_SHMKIT_BATCH) {
				size_t k = mine - n < QBATCH ? (size_t)(mine - n) : QBATCH;
				for (size_t j = 0; j < k; j++)
					q_msg(buf[j], a->size, (uint32_t)i, n + j);
				int r = shmkit_queue_send_many_wait(q, buf, sizeof buf[0], lens, k, NULL);
				if (r > 0)
					n += (uint64_t)r;
				else
					err = r;
			} else {
				q_msg(buf[0], a->size, (uint32_t)i, n);
				err = a->kind == Q_REF ? ref_send(a->ref, buf[0], (uint32_t)a->size, c)
						       : shmkit_queue_send_wait(q, buf[0], a->size, NULL);
				n++;
			}
		}
		if (err)
			fail(c, err, "queue send");
		atomic_fetch_add(&c->producers_done, 1);
	} else {
		uint32_t spins = 0;
		for (;;) {
			int got;
			if (a->kind == Q_REF) {
				uint32_t len;
				got = ref_recv(a->ref, buf[0], &len);
				if (got && len != a->size)
					got = -EBADMSG;
			} else if (a->kind == Q_SHMKIT_BATCH) {
				struct timespec ts;
				got = shmkit_queue_recv_many_wait(q, buf, sizeof buf[0], lens, QBATCH,
								  shmkit_deadline_after(&ts, 20000000));
			} else {
				struct timespec ts;
				ssize_t r = shmkit_queue_recv_wait(q, buf[0], sizeof buf[0],
								   shmkit_deadline_after(&ts, 20000000));
				got = r < 0 ? (int)r : 1;
			}
			if (got > 0) {
				n += (uint64_t)got;
				spins = 0;
				continue;
			}
			if (got == 0)
				ref_pause(&spins);
			else if (got != -ETIMEDOUT && got != -EAGAIN) {
				fail(c, got, "queue recv");
				break;
			}
			/* Empty: finished once every producer is done and it is still empty. */
			if (atomic_load(&c->producers_done) == a->producers) {
				int more;
				if (a->kind == Q_REF) {
					uint32_t len;
					more = ref_recv(a->ref, buf[0], &len);
				} else {
					more = shmkit_queue_recv_many(q, buf, sizeof buf[0], lens, QBATCH);
				}
				if (more > 0) {
					n += (uint64_t)more;
					continue;
				}
				break;
			}
			if (atomic_load(&c->err))
				break;
		}
		atomic_store(&c->role[i].count, n);
	}
	atomic_store(&c->role[i].t_end, bench_now_ns());
	shmkit_queue_close(q);
	return atomic_load(&c->err) ? 1 : 0;
}

static double run_queue(int kind, unsigned pc, uint64_t msgs, size_t size, char *why, size_t cap)
{
	struct q_arg a = {kind, -1, NULL, pc, pc, msgs, size};
	struct shmkit_queue *own = NULL;
	size_t ref_bytes = 0;
	if (kind == Q_REF) {
		uint64_t stride = (16 + size + 63) & ~63ull;
		ref_bytes = sizeof(struct ref_queue) + 4096 * stride;
		a.ref = bench_shared_alloc(ref_bytes);
		if (!a.ref)
			return -ENOMEM;
		a.ref->n = 4096;
		a.ref->stride = stride;
		for (uint64_t i = 0; i < 4096; i++)
			atomic_store(&ref_at(a.ref, i)->seq, i);
	} else {
		struct shmkit_queue_opts o = {.slots = 4096, .max_msg = size, .max_members = 16};
		o.seg.backend = SHMKIT_BACKEND_MEMFD;
		int err = shmkit_queue_create(NULL, &o, &own);
		if (err)
			return err;
		a.fd = shmkit_segment_fd(shmkit_queue_segment(own));
	}
	struct ctl *c = bench_shared_alloc(sizeof *c);
	if (!c) {
		shmkit_queue_close(own);
		bench_shared_free(a.ref, ref_bytes);
		return -ENOMEM;
	}
	int err = run_children(c, (int)(2 * pc), q_role, &a);
	if (!err && own)
		err = check_missed(shmkit_queue_segment(own), c->why, sizeof c->why);
	double rate = err;
	if (!err) {
		uint64_t end = 0, got = 0;
		for (unsigned i = pc; i < 2 * pc; i++) {
			got += c->role[i].count;
			if (c->role[i].t_end > end)
				end = c->role[i].t_end;
		}
		if (got != msgs) {
			snprintf(why, cap, "received %llu of %llu", (unsigned long long)got,
				 (unsigned long long)msgs);
			rate = -EBADMSG;
		} else {
			rate = (double)msgs / ((double)(end - c->t0) / 1e9);
		}
	} else {
		snprintf(why, cap, "%s", c->why);
	}
	bench_shared_free(c, sizeof *c);
	shmkit_queue_close(own);
	bench_shared_free(a.ref, ref_bytes);
	return rate;
}

/* --- report -------------------------------------------------------------------------------- */

static const char *fmt_rate(char *buf, size_t cap, double r)
{
	if (r >= 1e6)
		snprintf(buf, cap, "%.2f M/s", r / 1e6);
	else
		snprintf(buf, cap, "%.0f k/s", r / 1e3);
	return buf;
}

int bench_multi_run(const struct bench_multi_opts *o, FILE *out)
{
	size_t size = o->size ? o->size : 64;
	uint64_t msgs = o->msgs ? o->msgs : o->quick ? 200000 : 2000000;
	unsigned max_subs = o->max_subs ? o->max_subs : 8, max_pc = o->max_pc ? o->max_pc : 4;
	if (size < 8 || size > 4096 || max_subs > MAX_PROCS - 1 || max_pc > MAX_PROCS / 2)
		return -EINVAL;
	int ncpu = bench_ncpus(), failed = 0;
	char why[200], a[32], b[32], r[32];
	fprintf(out, "%d CPUs available; %zu-byte messages, %llu per configuration.\n\n", ncpu, size,
		(unsigned long long)msgs);
	if (!o->no_pubsub) {
		static const char *const cols[] = {"subscribers", "CPUs", "delivered to each",
						   "x 1 subscriber", "deliveries/s (all)"};
		static const int right[] = {1, 0, 1, 1, 1};
		fprintf(out, "Publish/subscribe, block policy (every subscriber gets every message):\n\n");
		bench_md_header(out, cols, right, 5);
		double base = 0;
		for (unsigned n = 1; n <= max_subs; n *= 2) {
			double rate = run_pubsub(n, msgs, size, why, sizeof why);
			char cells[5][48];
			snprintf(cells[0], sizeof cells[0], "%u", n);
			snprintf(cells[1], sizeof cells[1], "%s",
				 (int)n + 1 <= ncpu ? "pinned" : "oversubscribed");
			if (rate < 0) {
				snprintf(cells[2], sizeof cells[2], "failed: %s", shmkit_strerror((int)rate));
				snprintf(cells[3], sizeof cells[3], "%.40s", why);
				cells[4][0] = '\0';
				failed = (int)rate;
			} else {
				if (n == 1)
					base = rate;
				snprintf(cells[2], sizeof cells[2], "%s", fmt_rate(a, sizeof a, rate));
				snprintf(cells[3], sizeof cells[3], "%.2f", base > 0 ? rate / base : 0);
				snprintf(cells[4], sizeof cells[4], "%s", fmt_rate(b, sizeof b, rate * n));
			}
			const char *row[5] = {cells[0], cells[1], cells[2], cells[3], cells[4]};
			bench_md_row(out, row, 5);
			fflush(out);
		}
		fputc('\n', out);
	}
	if (!o->no_queue) {
		static const char *const cols[] = {"producers x consumers", "CPUs", "reference (CAS/msg)",
						   "shmkit send/recv", "x ref", "shmkit batch 16",
						   "x ref"};
		static const int right[] = {0, 0, 1, 1, 1, 1, 1};
		fprintf(out, "Work queue (each message to exactly one consumer), 4096 slots:\n\n");
		bench_md_header(out, cols, right, 7);
		for (unsigned pc = 1; pc <= max_pc; pc *= 2) {
			double rate[3];
			char cells[7][48];
			for (int k = 0; k < 3; k++) {
				int kind = k == 0 ? Q_REF : k == 1 ? Q_SHMKIT : Q_SHMKIT_BATCH;
				rate[k] = run_queue(kind, pc, msgs, size, why, sizeof why);
				if (rate[k] < 0)
					failed = (int)rate[k];
			}
			snprintf(cells[0], sizeof cells[0], "%u x %u", pc, pc);
			snprintf(cells[1], sizeof cells[1], "%s",
				 (int)(2 * pc) <= ncpu ? "pinned" : "oversubscribed");
			for (int k = 0; k < 3; k++) {
				int col = k == 0 ? 2 : k == 1 ? 3 : 5;
				if (rate[k] < 0)
					snprintf(cells[col], sizeof cells[col], "failed: %s",
						 shmkit_strerror((int)rate[k]));
				else
					snprintf(cells[col], sizeof cells[col], "%s",
						 fmt_rate(r, sizeof r, rate[k]));
			}
			snprintf(cells[4], sizeof cells[4], "%.2f",
				 rate[0] > 0 && rate[1] > 0 ? rate[1] / rate[0] : 0);
			snprintf(cells[6], sizeof cells[6], "%.2f",
				 rate[0] > 0 && rate[2] > 0 ? rate[2] / rate[0] : 0);
			const char *row[7] = {cells[0], cells[1], cells[2], cells[3],
					      cells[4], cells[5], cells[6]};
			bench_md_row(out, row, 7);
			fflush(out);
		}
		fputc('\n', out);
	}
	return failed;
}

int bench_multi_main(int argc, char **argv)
{
	struct bench_multi_opts mo;
	memset(&mo, 0, sizeof mo);
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	if (!rest)
		return 1;
	int n = 0;
	rest[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pubsub-only") == 0) {
			mo.no_queue = 1;
		} else if (strcmp(argv[i], "--queue-only") == 0) {
			mo.no_pubsub = 1;
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			char *end;
			unsigned long v = strtoul(argv[++i], &end, 10);
			if (*end || v < 8 || v > 4096) {
				fprintf(stderr, "%s: bad --size '%s' (8..4096)\n", argv[0], argv[i]);
				free(rest);
				return 2;
			}
			mo.size = v;
		} else {
			rest[n++] = argv[i];
		}
	}
	struct bench_opts o;
	int pr = bench_parse_opts(n, rest, &o,
				  "[--size B] [--pubsub-only | --queue-only]\n"
				  "  --iters N: messages per configuration (default 2000000, quick 200000)\n"
				  "  --size B: message bytes (8..4096, default 64)");
	free(rest);
	if (pr != 0)
		return pr > 0 ? 0 : 2;
	mo.quick = o.quick;
	mo.msgs = o.iters;
	signal(SIGPIPE, SIG_IGN);
	int err = bench_multi_run(&mo, stdout);
	if (err)
		fprintf(stderr, "%s: %s\n", argv[0], shmkit_strerror(err));
	return err ? 1 : 0;
}
