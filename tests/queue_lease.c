/* Tests for the work queue's lease (src/queue.c, "The lease"): a sole producer or consumer
 * claims slots with plain stores; a second one joining, leaving, dying — or joining from a
 * process that cannot issue membarrier — must never let two claimers take one slot. Real
 * processes, real kills; every message accounted for exactly once. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "queue_impl.h"
#include "testutil.h"

static struct shmkit_queue *lq_new(char *name, size_t cap, const char *tag, uint32_t members)
{
	t_name(name, cap, tag);
	struct shmkit_queue_opts o = {.slots = 64, .max_msg = 16, .max_members = members,
				      .seg.backend = SHMKIT_BACKEND_POSIX};
	return t_queue_new(name, &o);
}

static uint32_t reg_count(const struct shmkit_queue *q, int k)
{
	return (uint32_t)atomic_load(ql_reg(q, k));
}

static uint32_t reg_gen(const struct shmkit_queue *q, int k)
{
	return (uint32_t)(atomic_load(ql_reg(q, k)) >> 32);
}

/* Whether this process may take the fast path (registered for membarrier): without it
 * the fast-path assertions below have nothing to check, and say so. */
static bool fast_possible(void)
{
	if (shmkit__wq_registered())
		return true;
	fprintf(stderr, "queue_lease: membarrier not registered here: fast path not checked\n");
	return false;
}

static void send_u64(struct shmkit_queue *q, uint64_t v)
{
	ck_assert_int_eq(shmkit_queue_send(q, &v, sizeof v), 0);
}

static uint64_t recv_u64(struct shmkit_queue *q)
{
	uint64_t v = 0;
	ck_assert_int_eq(shmkit_queue_recv(q, &v, sizeof v), (ssize_t)sizeof v);
	return v;
}

/* --- counts and modes, one process ------------------------------------------------------------ */

/* A handle is counted when it first claims as producer or consumer, not when it opens; it
 * is fast while alone; a second claimer turns it slow (and its word acknowledges the
 * generation); a close gives the registration back and the first one is fast again. */
START_TEST(test_lease_counts_and_modes)
{
	char name[64];
	struct shmkit_queue *q = lq_new(name, sizeof name, "lmodes", 4);
	bool fast = fast_possible();
	for (uint64_t i = 0; i < 3; i++)
		send_u64(q, i);
	ck_assert_uint_eq(reg_count(q, 0), 1);
	ck_assert_uint_eq(reg_count(q, 1), 0);
	if (fast)
		ck_assert_uint_eq(q->fast_claims, 3);

	struct shmkit_queue *q2;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q2), 0);
	ck_assert_uint_eq(reg_count(q, 0), 1); /* opened, not counted */
	send_u64(q2, 3);
	ck_assert_uint_eq(reg_count(q, 0), 2);
	ck_assert_uint_eq(reg_gen(q, 0), 2);
	ck_assert(q2->lmode[0] != QM_JOIN); /* joined */
	ck_assert_uint_eq(q2->fast_claims, 0);
	uint64_t before = q->fast_claims;
	send_u64(q, 4);
	ck_assert_uint_eq(q->fast_claims, before); /* not alone: a CAS */
	if (fast) {
		uint64_t w = atomic_load(&q->mine->lease);
		ck_assert_uint_eq(w >> QL_ACK_SHIFT(0) & QL_ACK_MASK, 2); /* saw generation 2 */
		ck_assert_uint_eq(w & (QL_FP | QL_FC), 0);
	}
	shmkit_queue_close(q2);
	ck_assert_uint_eq(reg_count(q, 0), 1);
	send_u64(q, 5);
	if (fast)
		ck_assert_uint_eq(q->fast_claims, before + 1);

	/* Consumers likewise, counted apart from producers. */
	ck_assert_uint_eq(recv_u64(q), 0);
	ck_assert_uint_eq(reg_count(q, 1), 1);
	struct shmkit_queue *q3;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q3), 0);
	ck_assert_uint_eq(recv_u64(q3), 1);
	ck_assert_uint_eq(reg_count(q, 1), 2);
	before = q->fast_claims;
	ck_assert_uint_eq(recv_u64(q), 2);
	ck_assert_uint_eq(q->fast_claims, before);
	shmkit_queue_close(q3);
	ck_assert_uint_eq(reg_count(q, 1), 1);
	ck_assert_uint_eq(recv_u64(q), 3);
	if (fast)
		ck_assert_uint_eq(q->fast_claims, before + 1);
	ck_assert_uint_eq(recv_u64(q), 4);
	ck_assert_uint_eq(recv_u64(q), 5);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
}
END_TEST

/* --- a member that holds on, live or dead ----------------------------------------------------- */

struct holder {
	struct t_where w;
	_Atomic int ready;
	_Atomic int joined;
	_Atomic int err;
	_Atomic int join_mb;
	int fake_in_claim; /* the child marks itself inside a fast claim before it dies */
};

static int register_and_die(void *arg)
{
	struct holder *h = arg;
	struct shmkit_queue *q;
	if (t_queue_open(&h->w, 0, &q))
		return 10;
	uint64_t v = 7;
	if (shmkit_queue_send(q, &v, sizeof v))
		return 11;
	if (h->fake_in_claim) /* as if killed between LEASE-S1 and LEASE-R1 */
		atomic_store(&q->mine->lease, q->lease | QL_FP);
	atomic_store(&h->ready, 1);
	pause();
	return 12;
}

/* A killed producer's registration keeps the survivor slow until a sweep gives it back
 * (shmkit_queue_recover(), or any blocked call's): then the survivor is fast again. A
 * producer killed inside a fast claim does not keep a joiner waiting: the joiner finds it
 * dead and gives its registration back. */
START_TEST(test_lease_dead_member_reaped)
{
	char name[64];
	struct shmkit_queue *q = lq_new(name, sizeof name, "ldead", 4);
	bool fast = fast_possible();
	send_u64(q, 1);
	struct holder *h = t_shm_alloc(sizeof *h);
	h->w = (struct t_where){name, SHMKIT_BACKEND_POSIX, -1};
	pid_t pid = t_fork(register_and_die, h);
	T_WAIT_FOR(atomic_load(&h->ready));
	ck_assert_uint_eq(reg_count(q, 0), 2);
	kill(pid, SIGKILL);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	uint64_t before = q->fast_claims;
	send_u64(q, 2);
	ck_assert_uint_eq(q->fast_claims, before); /* the dead one still counts */
	ck_assert_int_ge(shmkit_queue_recover(q), 0);
	ck_assert_uint_eq(reg_count(q, 0), 1);
	send_u64(q, 3);
	if (fast)
		ck_assert_uint_eq(q->fast_claims, before + 1);

	/* Killed "inside" a fast claim: a new producer's join must not wait for it. */
	atomic_store(&h->ready, 0);
	h->fake_in_claim = 1;
	pid = t_fork(register_and_die, h);
	T_WAIT_FOR(atomic_load(&h->ready));
	kill(pid, SIGKILL);
	ck_assert_int_eq(t_wait(pid, 30000), 128 + SIGKILL);
	struct shmkit_queue *q2;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q2), 0);
	struct timespec ts;
	uint64_t v = 4;
	ck_assert_int_eq(shmkit_queue_send_wait(q2, &v, sizeof v, t_in_ms(&ts, 10000)), 0);
	ck_assert_uint_eq(reg_count(q, 0), 2); /* q and q2; the dead one given back */
	shmkit_queue_close(q2);
	static const uint64_t order[] = {1, 7, 2, 3, 7, 4}; /* ours, the children's, q2's */
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		ck_assert_uint_eq(recv_u64(q), order[i]);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
	munmap(h, sizeof *h);
}
END_TEST

/* A live member that stays inside a fast claim (stopped, say) keeps a joiner out — a
 * non-blocking send says -EAGAIN, a blocking one times out — and lets it in once it leaves. */
START_TEST(test_lease_join_waits_for_live_claimer)
{
	char name[64];
	struct shmkit_queue *q = lq_new(name, sizeof name, "lwait", 4);
	if (!fast_possible()) {
		shmkit_queue_unlink(q);
		shmkit_queue_close(q);
		return;
	}
	send_u64(q, 1);
	atomic_store(&q->mine->lease, q->lease | QL_FP); /* inside a fast claim */
	struct shmkit_queue *q2;
	ck_assert_int_eq(shmkit_queue_open(name, NULL, &q2), 0);
	uint64_t v = 2;
	ck_assert_int_eq(shmkit_queue_send(q2, &v, sizeof v), -EAGAIN);
	ck_assert(q2->lmode[0] == QM_JOIN && (q2->lease & QL_P)); /* counted, still joining */
	struct timespec ts;
	int64_t t0 = t_now_ms();
	ck_assert_int_eq(shmkit_queue_send_wait(q2, &v, sizeof v, t_in_ms(&ts, 50)), -ETIMEDOUT);
	ck_assert_int_ge(t_now_ms() - t0, 40);
	atomic_store(&q->mine->lease, q->lease); /* LEASE-R1 */
	ck_assert_int_eq(shmkit_queue_send(q2, &v, sizeof v), 0);
	ck_assert(q2->lmode[0] != QM_JOIN); /* joined */
	ck_assert_uint_eq(reg_count(q, 0), 2);
	ck_assert_uint_eq(recv_u64(q), 1);
	ck_assert_uint_eq(recv_u64(q), 2);
	shmkit_queue_close(q2);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
}
END_TEST

/* --- a joiner that cannot issue membarrier ---------------------------------------------------- */

static int join_without_membarrier(void *arg)
{
	struct holder *h = arg;
	setenv("SHMKIT_NO_MEMBARRIER", "2", 1); /* as if seccomp refused the system call */
	struct shmkit_queue *q;
	if (t_queue_open(&h->w, 0, &q))
		return 10;
	uint64_t v = 2;
	atomic_store(&h->err, shmkit_queue_send(q, &v, sizeof v));
	atomic_store(&h->join_mb, q->join_mb[0]);
	atomic_store(&h->ready, 1);
	/* Waits for the sole producer's acknowledgement (its next claim). */
	struct timespec ts;
	int err = shmkit_queue_send_wait(q, &v, sizeof v, t_in_ms(&ts, 20000));
	atomic_store(&h->joined, err == 0 ? 1 : err);
	bool cap = q->lease & QL_CAP;
	shmkit_queue_close(q);
	return cap ? 13 : 0; /* a process without membarrier never takes the fast path */
}

/* The joiner cannot make the sole producer's store visible with a barrier, so it waits
 * until that producer acknowledges its generation — which it does at its next claim. */
START_TEST(test_lease_join_without_membarrier)
{
	char name[64];
	struct shmkit_queue *q = lq_new(name, sizeof name, "lack", 4);
	if (!fast_possible()) {
		shmkit_queue_unlink(q);
		shmkit_queue_close(q);
		return;
	}
	send_u64(q, 1);
	struct holder *h = t_shm_alloc(sizeof *h);
	h->w = (struct t_where){name, SHMKIT_BACKEND_POSIX, -1};
	pid_t pid = t_fork(join_without_membarrier, h);
	T_WAIT_FOR(atomic_load(&h->ready));
	ck_assert_int_eq(atomic_load(&h->err), -EAGAIN); /* no acknowledgement yet */
	ck_assert_int_eq(atomic_load(&h->join_mb), 0);
	t_sleep_ms(50);
	ck_assert_int_eq(atomic_load(&h->joined), 0); /* still waiting: we claimed nothing */
	uint64_t before = q->fast_claims;
	send_u64(q, 3); /* sees the count of 2: slow, and acknowledges */
	ck_assert_uint_eq(q->fast_claims, before);
	T_WAIT_FOR(atomic_load(&h->joined));
	ck_assert_int_eq(atomic_load(&h->joined), 1);
	ck_assert_int_eq(t_wait(pid, 30000), 0);
	ck_assert_uint_eq(reg_count(q, 0), 1);
	ck_assert_uint_eq(recv_u64(q), 1);
	/* The child may claim between our acknowledgement and our own claim (both CAS). */
	uint64_t a = recv_u64(q), b = recv_u64(q);
	ck_assert(a + b == 5 && a * b == 6);
	shmkit_queue_unlink(q);
	shmkit_queue_close(q);
	munmap(h, sizeof *h);
}
END_TEST

/* --- churn: claimers come and go while a sole one runs ---------------------------------------- */

struct churn {
	struct t_where w;
	uint64_t per; /* messages per producer */
	_Atomic int ready, go, failed;
	char why[256];
	_Atomic uint64_t received;
	_Atomic uint64_t fast[4], claims[4], joins[4];
	/* then, at +4096: one bit per (producer, seq) */
};

static _Atomic uint64_t *churn_bits(struct churn *c)
{
	return (_Atomic uint64_t *)(void *)((uint8_t *)c + 4096);
}

struct lmsg {
	uint64_t producer;
	uint64_t seq;
};

static int churn_take(struct churn *c, const struct lmsg *m, size_t len)
{
	if (len != sizeof *m || m->producer > 1 || m->seq >= c->per) {
		T_CHILD_FAIL(c, "corrupt message (len %zu)", len);
		return -1;
	}
	uint64_t bit = m->producer * c->per + m->seq;
	uint64_t old = atomic_fetch_or(&churn_bits(c)[bit / 64], 1ull << (bit % 64));
	if (old & (1ull << (bit % 64))) {
		T_CHILD_FAIL(c, "duplicate: producer %llu seq %llu", (unsigned long long)m->producer,
			     (unsigned long long)m->seq);
		return -1;
	}
	atomic_fetch_add(&c->received, 1);
	return 0;
}

struct churn_arg {
	struct churn *c;
	int id; /* 0 steady producer, 1 churning producer, 2 steady consumer, 3 churning one */
};

static void churn_count(struct churn *c, int id, const struct shmkit_queue *q, uint64_t n)
{
	atomic_fetch_add(&c->fast[id], q->fast_claims);
	atomic_fetch_add(&c->claims[id], n);
}

static int churn_producer(struct churn_arg *a)
{
	struct churn *c = a->c;
	uint64_t seq = 0, rounds = 0;
	while (seq < c->per && !atomic_load(&c->failed)) {
		/* The churning one joins half its rounds without membarrier (acknowledged join). */
		if (a->id == 1)
			setenv("SHMKIT_NO_MEMBARRIER", rounds % 2 ? "2" : "0", 1);
		struct shmkit_queue *q;
		int err = t_queue_open(&c->w, 0, &q);
		if (err) {
			T_CHILD_FAIL(c, "producer %d open: %s", a->id, shmkit_strerror(err));
			return 1;
		}
		uint64_t burst = a->id == 0 ? c->per : 1 + rounds % 97, sent = 0;
		while (sent < burst && seq < c->per && !atomic_load(&c->failed)) {
			struct lmsg m[8];
			size_t lens[8], n = 0;
			for (; n < 8 && seq + n < c->per && sent + n < burst; n++) {
				m[n] = (struct lmsg){(uint64_t)(a->id), seq + n};
				lens[n] = sizeof m[n];
			}
			struct timespec ts;
			int r = (seq & 1) ? shmkit_queue_send_many_wait(q, m, sizeof m[0], lens, n,
									t_in_ms(&ts, 30000))
					  : shmkit_queue_send_wait(q, m, sizeof m[0],
								   t_in_ms(&ts, 30000));
			if (r < 0) {
				T_CHILD_FAIL(c, "producer %d: %s", a->id, shmkit_strerror(r));
				return 1;
			}
			uint64_t k = (seq & 1) ? (uint64_t)r : 1;
			seq += k;
			sent += k;
		}
		churn_count(c, a->id, q, sent);
		atomic_fetch_add(&c->joins[a->id], 1);
		shmkit_queue_close(q);
		rounds++;
		if (a->id == 1)
			t_sleep_us(200); /* the steady one alone for a while: its fast path */
	}
	return 0;
}

static int churn_consumer(struct churn_arg *a)
{
	struct churn *c = a->c;
	uint64_t total = 2 * c->per, rounds = 0;
	while (atomic_load(&c->received) < total && !atomic_load(&c->failed)) {
		struct shmkit_queue *q;
		int err = t_queue_open(&c->w, 0, &q);
		if (err) {
			T_CHILD_FAIL(c, "consumer %d open: %s", a->id, shmkit_strerror(err));
			return 1;
		}
		uint64_t got = 0, burst = a->id == 2 ? total : 1 + rounds % 89;
		while (got < burst && atomic_load(&c->received) < total && !atomic_load(&c->failed)) {
			struct lmsg m[8];
			size_t lens[8];
			struct timespec ts;
			int r;
			if (got & 1) {
				r = shmkit_queue_recv_many_wait(q, m, sizeof m[0], lens, 8,
								t_in_ms(&ts, 20));
			} else {
				ssize_t n = shmkit_queue_recv_wait(q, m, sizeof m[0], t_in_ms(&ts, 20));
				r = n < 0 ? (int)n : 1;
				lens[0] = n < 0 ? 0 : (size_t)n;
			}
			if (r == -ETIMEDOUT)
				continue;
			if (r < 0) {
				T_CHILD_FAIL(c, "consumer %d: %s", a->id, shmkit_strerror(r));
				return 1;
			}
			for (int i = 0; i < r; i++)
				if (churn_take(c, &m[i], lens[i]))
					return 1;
			got += (uint64_t)r;
		}
		churn_count(c, a->id, q, got);
		atomic_fetch_add(&c->joins[a->id], 1);
		shmkit_queue_close(q);
		rounds++;
		if (a->id == 3)
			t_sleep_us(200);
	}
	return 0;
}

static int churn_child(void *arg)
{
	struct churn_arg *a = arg;
	atomic_fetch_add(&a->c->ready, 1);
	while (!atomic_load(&a->c->go))
		usleep(100);
	return a->id < 2 ? churn_producer(a) : churn_consumer(a);
}

/* A steady producer and consumer, each fast while alone, and a second producer and consumer
 * that join for a burst, leave, and join again (every other round without membarrier):
 * every message exactly once, and the steady ones took both paths. */
START_TEST(test_lease_churn_exactly_once)
{
	/* The protocol's races are caught by the plain build (a join that skips its wait fails
	 * there every time); the sanitizer builds check memory and ordering on fewer. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	uint64_t per = t_stress() ? 20000000 : 300000;
#else
	uint64_t per = t_stress() ? 20000000 : 1000000;
#endif
	char name[64];
	struct shmkit_queue *own = lq_new(name, sizeof name, "lchurn", 8);
	bool fast = fast_possible();
	size_t bytes = 4096 + (2 * per + 63) / 64 * 8;
	struct churn *c = t_shm_alloc(bytes);
	c->w = (struct t_where){name, SHMKIT_BACKEND_POSIX, -1};
	c->per = per;
	struct churn_arg args[4];
	pid_t pids[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct churn_arg){c, i};
		pids[i] = t_fork(churn_child, &args[i]);
	}
	T_WAIT_FOR(atomic_load(&c->ready) == 4);
	atomic_store(&c->go, 1);
	int status[4];
	for (int i = 0; i < 4; i++)
		status[i] = t_wait(pids[i], t_stress() ? 3000000 : 300000);
	ck_assert_msg(!atomic_load(&c->failed), "%s", c->why);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(status[i], 0);
	ck_assert_uint_eq(atomic_load(&c->received), 2 * per);
	_Atomic uint64_t *bits = churn_bits(c);
	for (uint64_t w = 0; w < 2 * per / 64; w++)
		T_CHECK(atomic_load(&bits[w]) == UINT64_MAX, "missing messages near bit %llu",
			(unsigned long long)(w * 64));
	fprintf(stderr,
		"queue_lease churn: steady producer %llu of %llu claims fast, steady consumer "
		"%llu of %llu; churning producer %llu joins, consumer %llu joins\n",
		(unsigned long long)c->fast[0], (unsigned long long)c->claims[0],
		(unsigned long long)c->fast[2], (unsigned long long)c->claims[2],
		(unsigned long long)c->joins[1], (unsigned long long)c->joins[3]);
	ck_assert_uint_ge(c->joins[1], 10);
	ck_assert_uint_ge(c->joins[3], 10);
	if (fast) {
		/* Both paths taken by the steady ones: alone (fast) and with company. */
		ck_assert_uint_gt(c->fast[0], 0);
		ck_assert_uint_lt(c->fast[0], c->claims[0]);
		ck_assert_uint_gt(c->fast[2], 0);
		ck_assert_uint_lt(c->fast[2], c->claims[2]);
	}
	ck_assert_uint_eq(reg_count(own, 0), 0); /* every registration given back */
	ck_assert_uint_eq(reg_count(own, 1), 0);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(own, &st);
	ck_assert_uint_eq(st.msgs_sent, 2 * per);
	ck_assert_uint_eq(st.msgs_recv, 2 * per);
	ck_assert_uint_eq(st.fill, 0);
	shmkit_queue_unlink(own);
	shmkit_queue_close(own);
	munmap(c, bytes);
}
END_TEST

static Suite *lease_suite(void)
{
	Suite *s = suite_create("queue_lease");
	TCase *tc = t_tcase(s, "lease", 120);
	tcase_add_test(tc, test_lease_counts_and_modes);
	tcase_add_test(tc, test_lease_dead_member_reaped);
	tcase_add_test(tc, test_lease_join_waits_for_live_claimer);
	tcase_add_test(tc, test_lease_join_without_membarrier);
	tc = t_tcase(s, "churn", t_stress() ? 3600 : 600);
	tcase_add_test(tc, test_lease_churn_exactly_once);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {lease_suite};
	return t_main(makers, 1);
}
