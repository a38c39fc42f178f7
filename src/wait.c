/* shmkit — waitsets: waiting on many channels and events at once (include/shmkit/wait.h).
 *
 * No shared layout of its own: a waitset lives in private memory and speaks the wait-queue
 * protocol of each member (src/waitq_internal.h; src/chan.c for stream channels; src/sync.c
 * for events), registering as one more sleeper on each.
 *
 * Waiting, with futex_waitv (Linux >= 5.16):
 *   1. poll every member (acquire loads); report what is ready;
 *   2. spin for a short adaptive time, polling;
 *   3. for each distinct futex word: read its value (acquire, WQ-A1), then add 1 to its
 *      sleeper count — the sleeper's store in each member's sleep/wake handshake;
 *   4. one barrier for all of them (WQ-B1 of src/waitq_internal.h: membarrier, or a fence
 *      in fenced mode), then poll every member again; if one is ready, unregister and
 *      report;
 *   5. futex_waitv() on all the words with the values read in 3, until the deadline or a
 *      100 ms slice; unregister; go to 1.
 * A producer that made a member ready without the re-check of 4 seeing it saw our sleeper
 * registration (the handshake's argument, per member) and bumped its word, so the
 * futex_waitv either does not start (value changed) or is woken. Events (src/sync.c)
 * notify with a seq_cst fence of their own, which pairs with the barrier of 4 like any
 * fenced-mode waker. A slice that ends with a member ready and its word unchanged is a
 * missed wake-up and is counted in that member's segment (wq_missed). The peers of channel
 * members are checked for liveness (DEAD) every 100 ms, on
 * a schedule of their own: at the start of any wait (a poll included) once 100 ms passed
 * since the last check, whatever else is ready, and a sleep never lasts past the next
 * check. So a member that is always ready (CLOSED, busy) cannot hide a dead one.
 *
 * Fallback (ENOSYS, or SHMKIT_WAITSET_FALLBACK): step 3 registers on one member only (the
 * "primary", rotating between waits) and step 5 is a FUTEX_WAIT on that member's word for
 * at most poll_us; the other members are polled at that interval.
 *
 * Events (sync.h) are 8 bytes: the generation (futex word) at offset 0 and the sleeper
 * count at offset 4 — the layout src/sync.c defines and pins with static_assert. An event
 * member is ready when its generation differs from the one last reported.
 *
 * The eventfd helper. shmkit_waitset_fd() starts a thread that runs the same wait on a
 * snapshot of the members (taken under the waitset's mutex), plus a private "kick" word in
 * the same futex_waitv so it can be interrupted. When a member is ready it writes the
 * eventfd and disarms; shmkit_waitset_wait() re-arms it (draining the eventfd first) when
 * it finds nothing ready. shmkit_waitset_remove() bumps a version, kicks the helper and
 * waits until it has dropped the old snapshot, so a removed handle can be closed at once.
 *
 * Death: the waitset holds no shared state, so a process dying in a wait leaves at most
 * one registration per member's sleeper count (a needless FUTEX_WAKE for that member's
 * producers until another sleeper leaves), exactly like a dying single-channel sleeper.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "chan_internal.h"
#include "shmkit/wait.h"
#include "waitq_internal.h"

#define WS_SPIN_DEFAULT_NS 20000u
#define WS_POLL_DEFAULT_US 1000u

enum { M_CHAN = 1, M_PUBSUB, M_QUEUE, M_EVENT };

static_assert(sizeof(struct shmkit_event) == 8, "event: gen at 0, sleepers at 4 (src/sync.c)");
static_assert(SHMKIT_WAITSET_MAX <= FUTEX_WAITV_MAX, "one futex_waitv call");

struct member {
	int type;
	uint64_t cookie;
	const void *handle;   /* identity, for duplicate checks */
	struct shmkit__watch w;
	uint32_t ev_gen;      /* event: the generation last reported */
	bool dead;            /* the peer was found dead at the last liveness check */
};

/* Per-waiter state: the user's waits and the helper thread each have their own. */
struct wstate {
	unsigned rr;          /* round-robin start */
	unsigned prim;        /* fallback: rotates the member slept on */
	uint64_t live_ns;     /* last liveness check */
	struct shmkit__spin spin;
};

struct shmkit_waitset {
	struct member m[SHMKIT_WAITSET_MAX];
	unsigned n;
	uint32_t flags;
	uint64_t poll_ns;
	struct wstate st;
	/* eventfd helper */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int efd;
	bool have_thread, armed, stop, busy, saw_dead;
	uint32_t version, snap_version;
	_Atomic uint32_t kick;
};

/* -1: futex_waitv is missing (ENOSYS seen), 0: not tried yet, 1: works. A process-wide
 * cache of a kernel property, not error state. */
static _Atomic int waitv_state;

static bool use_waitv(const struct shmkit_waitset *ws)
{
#ifdef SYS_futex_waitv
	/* Relaxed: a cache that any thread may fill in; every value is safe to act on. */
	return !(ws->flags & SHMKIT_WAITSET_FALLBACK) &&
	       atomic_load_explicit(&waitv_state, memory_order_relaxed) >= 0;
#else
	(void)ws;
	return false;
#endif
}

int shmkit_waitset_uses_waitv(const struct shmkit_waitset *ws)
{
	return ws && use_waitv(ws) ? 1 : 0;
}

/* --- members ------------------------------------------------------------------------------ */

static unsigned chan_poll(const void *src, bool sc)
{
	return shmkit__chan_consumer_poll(src, sc);
}

static int chan_peer_dead(const void *src)
{
	struct shmkit_chan_stats st;
	if (shmkit_chan_stats(src, &st) < 0)
		return 0;
	return st.producer_pid != 0 && !st.producer_alive;
}

static unsigned member_poll(struct member *m, bool sc)
{
	unsigned bits;
	if (m->type == M_EVENT) {
		/* WAIT-A1: sees what the notifier wrote before its notify; pairs with EV-R1 in
		 * shmkit_event_notify() (src/sync.c). */
		uint32_t g = atomic_load_explicit(m->w.gen, sc ? memory_order_seq_cst
							       : memory_order_acquire);
		bits = g != m->ev_gen ? SHMKIT_WAIT_EVENT : 0;
	} else {
		bits = m->w.poll(m->w.src, sc);
	}
	if (m->dead)
		bits |= SHMKIT_WAIT_DEAD;
	return bits;
}

/* Polls the members round-robin; fills `out` (when not NULL) and returns how many are
 * ready. `report` marks reported events as seen (the user's wait; the helper only
 * looks). */
static int collect(struct shmkit_waitset *ws, struct wstate *st, struct member *m, unsigned n,
		   bool sc, struct shmkit_waitset_ready *out, size_t cap, bool report)
{
	int k = 0;
	for (unsigned j = 0; j < n && (!out || (size_t)k < cap); j++) {
		struct member *x = &m[(st->rr + j) % n];
		unsigned bits = member_poll(x, sc);
		if (!bits)
			continue;
		if (!out)
			return 1;
		out[k].cookie = x->cookie;
		out[k].events = bits;
		out[k].reserved = 0;
		k++;
		if (report && (bits & SHMKIT_WAIT_EVENT)) {
			/* Relaxed: our own re-read of the word we just polled. */
			uint32_t g = atomic_load_explicit(x->w.gen, memory_order_relaxed);
			if (ws->have_thread)
				pthread_mutex_lock(&ws->lock); /* the helper snapshots ev_gen */
			x->ev_gen = g;
			if (ws->have_thread)
				pthread_mutex_unlock(&ws->lock);
		}
	}
	if (k && n)
		st->rr = (st->rr + 1) % n;
	return k;
}

/* Refreshes the DEAD marks of channel members that have nothing to read, and repairs the
 * slots dead processes hold in queue members that have nothing to read (a queue has no
 * single peer to report DEAD; a message behind a dead producer's loan, or a dead
 * consumer's take, becomes READABLE instead). */
static void check_liveness(struct shmkit_waitset *ws, struct member *m, unsigned n, bool locked)
{
	for (unsigned i = 0; i < n; i++) {
		if (m[i].type == M_QUEUE && !(m[i].w.poll(m[i].w.src, false) & SHMKIT_WAIT_READABLE))
			m[i].w.repair(m[i].w.src);
		if (m[i].type == M_EVENT || m[i].type == M_QUEUE)
			continue;
		bool dead = !(m[i].w.poll(m[i].w.src, false) & SHMKIT_WAIT_READABLE) &&
			    m[i].w.peer_dead(m[i].w.src) > 0;
		if (dead == m[i].dead)
			continue;
		if (locked)
			pthread_mutex_lock(&ws->lock);
		m[i].dead = dead;
		if (locked)
			pthread_mutex_unlock(&ws->lock);
	}
}

/* --- sleeping ------------------------------------------------------------------------------- */

struct any_ctx {
	struct member *m;
	unsigned n;
	_Atomic uint32_t *kick;
	uint32_t kick_val;
};

static bool kicked(const struct any_ctx *x)
{
	/* WAIT-A2: pairs with WAIT-R2 in kick_helper(). */
	return x->kick && atomic_load_explicit(x->kick, memory_order_acquire) != x->kick_val;
}

static bool any_ready(void *arg)
{
	struct any_ctx *x = arg;
	for (unsigned i = 0; i < x->n; i++)
		if (member_poll(&x->m[i], false))
			return true;
	return kicked(x);
}

/* One FUTEX_WAIT / futex_waitv on the prepared words until `until`. 0 (woken, a value
 * changed, or futex_waitv turned out to be missing: poll again), -EINTR or -ETIMEDOUT. */
static int wait_words(struct futex_waitv *v, unsigned nv, bool waitv, const struct timespec *until)
{
	if (waitv) {
#ifdef SYS_futex_waitv
		if (syscall(SYS_futex_waitv, v, nv, 0, until, CLOCK_MONOTONIC) >= 0)
			return 0;
		int e = errno;
		if (e == ENOSYS) {
			/* Relaxed: see waitv_state. */
			atomic_store_explicit(&waitv_state, -1, memory_order_relaxed);
			return 0;
		}
		/* EAGAIN: a value changed before the sleep — poll again. */
		return e == EINTR ? -EINTR : e == ETIMEDOUT ? -ETIMEDOUT : 0;
#endif
	}
	int e = shmkit_futex_wait((uint32_t *)(uintptr_t)v[0].uaddr, (uint32_t)v[0].val, until);
	return e == -EINTR || e == -ETIMEDOUT ? e : 0;
}

/* The re-check after registering and WQ-B1: is anything ready, or were we kicked? */
static bool recheck(void *arg)
{
	struct any_ctx *x = arg;
	bool ready = kicked(x);
	for (unsigned i = 0; i < x->n && !ready; i++)
		ready = member_poll(&x->m[i], true) != 0;
	return ready;
}

/* A sleep's slice: at most slice_ns, and never past the next liveness check, so that a
 * wake-up that changed nothing for us (a notify of a word we share, a spurious one) cannot
 * push the check a whole slice later. */
static uint64_t live_slice(const struct wstate *st, uint64_t slice_ns)
{
	uint64_t left = st->live_ns + SHMKIT__SLICE_NS - shmkit_now_ns();
	return left > SHMKIT__SLICE_NS ? 0 : left < slice_ns ? left : slice_ns; /* > : passed */
}

/* One registration + sleep round. Returns 0 (woken, or something may be ready: poll
 * again), -EINTR, or -ETIMEDOUT when the deadline passed. */
static int sleep_round(struct shmkit_waitset *ws, struct wstate *st, struct any_ctx *x,
		       const struct timespec *deadline)
{
	struct futex_waitv v[SHMKIT_WAITSET_MAX + 1];
	struct member *mk[SHMKIT_WAITSET_MAX];
	unsigned k = 0;
	bool waitv = use_waitv(ws);
	/* WQ-B1 with membarrier only when every member's handle joined in asymmetric mode
	 * (the process is registered then); events are notified with a fence either way. */
	struct shmkit__wq bar = {.asym = shmkit__wq_registered()};
	unsigned base = waitv || !x->n ? 0 : st->prim++ % x->n;
	for (unsigned i = 0; i < x->n; i++) {
		struct member *mb = &x->m[(base + i) % x->n];
		bool dup = false;
		for (unsigned j = 0; j < k && !dup; j++)
			dup = v[j].uaddr == (uint64_t)(uintptr_t)mb->w.gen;
		if (dup)
			continue;
		memset(&v[k], 0, sizeof v[k]);
		v[k].uaddr = (uint64_t)(uintptr_t)mb->w.gen;
		/* WQ-A1: the value the futex compares against; pairs with each waker's WQ-R1. */
		v[k].val = atomic_load_explicit(mb->w.gen, memory_order_acquire);
		v[k].flags = FUTEX_32; /* shared: no FUTEX_PRIVATE_FLAG */
		mk[k] = mb;
		if (mb->w.wq && !mb->w.wq->asym)
			bar.asym = false;
		k++;
		if (!waitv)
			break; /* fallback: register on the primary only */
	}
	for (unsigned j = 0; j < k; j++) {
		/* Relaxed: the sleeper's store of each member's handshake; WQ-B1 orders it. */
		atomic_fetch_add_explicit(mk[j]->w.sleepers, 1, memory_order_relaxed);
	}
	if (k)
		shmkit__wq_barrier(&bar);
	int r = 0;
	if (!recheck(x)) {
		struct timespec until;
		bool at_deadline = shmkit__slice_until(&until, deadline,
						       live_slice(st, waitv ? SHMKIT__SLICE_NS
									    : ws->poll_ns));
		if (x->kick && (waitv || k == 0)) {
			memset(&v[k], 0, sizeof v[k]);
			v[k].uaddr = (uint64_t)(uintptr_t)x->kick;
			v[k].val = x->kick_val;
			v[k].flags = FUTEX_32;
		}
		unsigned nv = k + (x->kick && (waitv || k == 0) ? 1 : 0);
		int e = 0;
		if (nv == 0) {
			/* No member and no kick: an empty set waits out its deadline. */
			e = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
			e = e == EINTR ? -EINTR : -ETIMEDOUT;
		} else {
			e = wait_words(v, nv, waitv, &until);
			/* A slice ended: did a wake-up get lost? (src/waitq_internal.h) */
			for (unsigned j = 0; e == -ETIMEDOUT && !at_deadline && j < k; j++)
				if (mk[j]->w.wq)
					shmkit__wq_count_missed(mk[j]->w.wq, mk[j]->w.gen,
								(uint32_t)v[j].val,
								member_poll(mk[j], true) != 0);
		}
		if (e == -EINTR)
			r = -EINTR;
		else if (e == -ETIMEDOUT && at_deadline)
			r = -ETIMEDOUT;
	}
	for (unsigned j = 0; j < k; j++) {
		/* Relaxed: leaving needs no ordering; at worst one needless wake. */
		atomic_fetch_sub_explicit(mk[j]->w.sleepers, 1, memory_order_relaxed);
	}
	return r;
}

/* The wait loop shared by shmkit_waitset_wait() (out != NULL) and the helper thread
 * (out == NULL: returns 1 as soon as something is ready, 0 when kicked). */
static int wait_members(struct shmkit_waitset *ws, struct wstate *st, struct member *m, unsigned n,
			const struct timespec *deadline, struct shmkit_waitset_ready *out, size_t cap,
			_Atomic uint32_t *kick, uint32_t kick_val, bool locked)
{
	struct any_ctx x = {m, n, kick, kick_val};
	bool spun = false;
	for (;;) {
		/* Liveness runs on its own schedule, before looking at what is ready: a member
		 * that is always ready (CLOSED, or a busy stream) returns every wait at once,
		 * and a check made only when nothing is ready would then never run, hiding a
		 * dead peer forever. One clock read per wait buys that. */
		uint64_t now = shmkit_now_ns();
		if (now - st->live_ns >= SHMKIT__SLICE_NS) {
			st->live_ns = now;
			check_liveness(ws, m, n, locked);
		}
		int k = collect(ws, st, m, n, false, out, cap, out != NULL);
		if (k)
			return k;
		if (kicked(&x))
			return 0;
		if (shmkit__deadline_passed(deadline, now))
			return -ETIMEDOUT;
		if (!spun) {
			spun = true;
			if (shmkit__spin_wait(&st->spin, any_ready, &x))
				continue;
		}
		int r = sleep_round(ws, st, &x, deadline);
		if (r == -EINTR)
			return r;
		if (r == -ETIMEDOUT) {
			k = collect(ws, st, m, n, true, out, cap, out != NULL);
			return k ? k : -ETIMEDOUT;
		}
	}
}

/* --- the eventfd helper --------------------------------------------------------------------- */

static void kick_helper(struct shmkit_waitset *ws)
{
	/* WAIT-R2: pairs with WAIT-A2 in kicked(). */
	atomic_fetch_add_explicit(&ws->kick, 1, memory_order_release);
	shmkit_futex_wake((uint32_t *)(void *)&ws->kick, 1);
}

static void *helper_main(void *arg)
{
	struct shmkit_waitset *ws = arg;
	struct member *snap = malloc(sizeof ws->m);
	struct wstate st = {0, 0, 0, ws->st.spin};
	pthread_mutex_lock(&ws->lock);
	while (snap) {
		while (!ws->stop && !ws->armed)
			pthread_cond_wait(&ws->cond, &ws->lock);
		if (ws->stop)
			break;
		unsigned n = ws->n;
		memcpy(snap, ws->m, n * sizeof *snap);
		ws->snap_version = ws->version;
		ws->busy = true;
		/* Relaxed: read under the lock that add/remove hold when they kick. */
		uint32_t kv = atomic_load_explicit(&ws->kick, memory_order_relaxed);
		pthread_mutex_unlock(&ws->lock);
		int r = wait_members(ws, &st, snap, n, NULL, NULL, 0, &ws->kick, kv, false);
		pthread_mutex_lock(&ws->lock);
		ws->busy = false;
		pthread_cond_broadcast(&ws->cond);
		if (r > 0 && !ws->stop && ws->snap_version == ws->version && ws->armed) {
			bool dead = false;
			for (unsigned i = 0; i < n; i++)
				dead |= snap[i].dead;
			ws->saw_dead |= dead;
			ws->armed = false;
			uint64_t one = 1;
			ssize_t w = write(ws->efd, &one, sizeof one);
			(void)w; /* EAGAIN only when the counter is saturated: readable anyway */
		}
	}
	ws->busy = false;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
	free(snap);
	return NULL;
}

int shmkit_waitset_fd(struct shmkit_waitset *ws)
{
	if (!ws)
		return -EINVAL;
	if (ws->have_thread)
		return ws->efd;
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	ws->efd = fd;
	ws->armed = true;
	ws->stop = false;
	/* have_thread before the thread exists: from now on members change under the lock. */
	ws->have_thread = true;
	int r = pthread_create(&ws->thread, NULL, helper_main, ws);
	if (r) {
		ws->have_thread = false;
		close(fd);
		ws->efd = -1;
		return -r;
	}
	return fd;
}

static void rearm(struct shmkit_waitset *ws)
{
	pthread_mutex_lock(&ws->lock);
	uint64_t v;
	while (read(ws->efd, &v, sizeof v) > 0)
		; /* drain: the fd reads empty until the helper signals again */
	ws->saw_dead = false;
	ws->armed = true;
	pthread_cond_broadcast(&ws->cond);
	pthread_mutex_unlock(&ws->lock);
}

/* --- public API -------------------------------------------------------------------------------- */

int shmkit_waitset_create(const struct shmkit_waitset_opts *opts, struct shmkit_waitset **wsp)
{
	if (!wsp)
		return -EINVAL;
	*wsp = NULL;
	if (opts && (opts->reserved || (opts->flags & ~(SHMKIT_WAITSET_FALLBACK |
							 SHMKIT_WAITSET_NO_SPIN))))
		return -EINVAL;
	struct shmkit_waitset *ws = calloc(1, sizeof *ws);
	if (!ws)
		return -ENOMEM;
	ws->flags = opts ? opts->flags : 0;
	ws->poll_ns = (uint64_t)(opts && opts->poll_us ? opts->poll_us : WS_POLL_DEFAULT_US) * 1000;
	shmkit__spin_init(&ws->st.spin, opts && opts->spin_ns ? opts->spin_ns : WS_SPIN_DEFAULT_NS,
			  opts && (opts->flags & SHMKIT_WAITSET_NO_SPIN));
	ws->efd = -1;
	pthread_mutex_init(&ws->lock, NULL);
	pthread_cond_init(&ws->cond, NULL);
	*wsp = ws;
	return 0;
}

int shmkit_waitset_destroy(struct shmkit_waitset *ws)
{
	if (!ws)
		return 0;
	if (ws->have_thread) {
		pthread_mutex_lock(&ws->lock);
		ws->stop = true;
		pthread_cond_broadcast(&ws->cond);
		pthread_mutex_unlock(&ws->lock);
		kick_helper(ws);
		pthread_join(ws->thread, NULL);
		close(ws->efd);
	}
	pthread_cond_destroy(&ws->cond);
	pthread_mutex_destroy(&ws->lock);
	free(ws);
	return 0;
}

int shmkit_waitset_close(struct shmkit_waitset *ws)
{
	return shmkit_waitset_destroy(ws);
}

static int add(struct shmkit_waitset *ws, int type, const void *handle, struct shmkit__watch *w,
	       uint64_t cookie)
{
	if (ws->have_thread)
		pthread_mutex_lock(&ws->lock);
	int err = 0;
	for (unsigned i = 0; i < ws->n && !err; i++)
		if (ws->m[i].handle == handle)
			err = -EEXIST;
	if (!err && ws->n == SHMKIT_WAITSET_MAX)
		err = -ENOSPC;
	if (!err) {
		struct member *m = &ws->m[ws->n++];
		memset(m, 0, sizeof *m);
		m->type = type;
		m->cookie = cookie;
		m->handle = handle;
		m->w = *w;
		if (type == M_EVENT) /* WAIT-A1: as in member_poll() */
			m->ev_gen = atomic_load_explicit(w->gen, memory_order_acquire);
		ws->version++;
	}
	if (ws->have_thread) {
		pthread_mutex_unlock(&ws->lock);
		if (!err)
			kick_helper(ws); /* re-snapshot with the new member */
	}
	return err;
}

int shmkit_waitset_add_chan(struct shmkit_waitset *ws, struct shmkit_chan *ch, uint64_t cookie)
{
	if (!ws || !ch)
		return -EINVAL;
	struct shmkit__watch w = {0};
	int err = shmkit__chan_consumer_waitq(ch, &w.gen, &w.sleepers, &w.wq);
	if (err)
		return err;
	w.poll = chan_poll;
	w.peer_dead = chan_peer_dead;
	w.src = ch;
	return add(ws, M_CHAN, ch, &w, cookie);
}

int shmkit_waitset_add_pubsub(struct shmkit_waitset *ws, struct shmkit_pubsub *ps, uint64_t cookie)
{
	if (!ws || !ps)
		return -EINVAL;
	struct shmkit__watch w = {0};
	int err = shmkit__pubsub_watch(ps, &w);
	return err ? err : add(ws, M_PUBSUB, ps, &w, cookie);
}

int shmkit_waitset_add_queue(struct shmkit_waitset *ws, struct shmkit_queue *q, uint64_t cookie)
{
	if (!ws || !q)
		return -EINVAL;
	struct shmkit__watch w = {0};
	int err = shmkit__queue_watch(q, &w);
	return err ? err : add(ws, M_QUEUE, q, &w, cookie);
}

int shmkit_waitset_add_event(struct shmkit_waitset *ws, struct shmkit_event *ev, uint64_t cookie)
{
	if (!ws || !ev)
		return -EINVAL;
	struct shmkit__watch w = {0};
	/* The event's private layout (src/sync.c): gen at offset 0, sleepers at offset 4. */
	w.gen = (_Atomic uint32_t *)(void *)ev;
	w.sleepers = (_Atomic uint32_t *)(void *)((uint8_t *)(void *)ev + 4);
	w.src = ev;
	return add(ws, M_EVENT, ev, &w, cookie);
}

int shmkit_waitset_remove(struct shmkit_waitset *ws, uint64_t cookie)
{
	if (!ws)
		return -EINVAL;
	if (ws->have_thread)
		pthread_mutex_lock(&ws->lock);
	unsigned kept = 0;
	for (unsigned i = 0; i < ws->n; i++)
		if (ws->m[i].cookie != cookie)
			ws->m[kept++] = ws->m[i];
	int removed = (int)(ws->n - kept);
	ws->n = kept;
	if (removed) {
		ws->version++;
		ws->st.rr = 0;
	}
	if (ws->have_thread) {
		/* Wait until the helper dropped the snapshot that may name the removed handles. */
		while (removed && ws->busy && ws->snap_version != ws->version) {
			kick_helper(ws);
			pthread_cond_wait(&ws->cond, &ws->lock);
		}
		pthread_mutex_unlock(&ws->lock);
	}
	return removed ? removed : -ENOENT;
}

int shmkit_waitset_count(const struct shmkit_waitset *ws)
{
	return ws ? (int)ws->n : -EINVAL;
}

int shmkit_waitset_wait(struct shmkit_waitset *ws, const struct timespec *deadline,
			struct shmkit_waitset_ready *out, size_t n)
{
	if (!ws || !out || n == 0 || (ws->n == 0 && !deadline))
		return -EINVAL;
	if (deadline && (deadline->tv_nsec < 0 || deadline->tv_nsec >= 1000000000L))
		return -EINVAL;
	if (ws->have_thread) {
		pthread_mutex_lock(&ws->lock);
		if (ws->saw_dead)
			ws->st.live_ns = 0; /* the helper saw a death: check now */
		pthread_mutex_unlock(&ws->lock);
	}
	int r = wait_members(ws, &ws->st, ws->m, ws->n, deadline, out, n, NULL, 0, ws->have_thread);
	if (r <= 0 && ws->have_thread)
		rearm(ws);
	return r;
}
