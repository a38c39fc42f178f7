/* shmkit — the sleep/wake handshake, wait queues, spinning, identity and deadlines shared
 * by every kind that sleeps on shared memory (protocol: src/waitq_internal.h). Holds no
 * shared layout of its own: the 16-byte wait queue lives inside the layouts of the kinds
 * that embed it, the flags and counter in the segment header (src/internal.h). */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "waitq_internal.h"

#define SPIN_DEFAULT_NS 50000u
#define SPIN_FLOOR_NS 2000u

uint64_t shmkit__self_owner(void)
{
	return shmkit__owner_word((int32_t)getpid(), shmkit_pid_start_ticks(0));
}

int shmkit__owner_state(uint64_t w)
{
	if (w == 0)
		return 0;
	int32_t pid = (int32_t)(w >> 32);
	if (pid <= 0 || !shmkit_pid_alive(pid, 0))
		return -1;
	return (shmkit_pid_start_ticks(pid) & 0xffffffffu) == (w & 0xffffffffu) ? 1 : -1;
}

bool shmkit__slice_until(struct timespec *until, const struct timespec *deadline,
			 uint64_t slice_ns)
{
	shmkit_deadline_after(until, slice_ns);
	if (deadline && (deadline->tv_sec < until->tv_sec ||
			 (deadline->tv_sec == until->tv_sec && deadline->tv_nsec < until->tv_nsec))) {
		*until = *deadline;
		return true;
	}
	return false;
}

/* --- membarrier ------------------------------------------------------------------------- */

static long membarrier(int cmd)
{
#ifdef SYS_membarrier
	return syscall(SYS_membarrier, cmd, 0, 0);
#else
	(void)cmd;
	errno = ENOSYS;
	return -1;
#endif
}

/* Process-wide facts about the kernel and this process, found once: 1 yes, -1 no, 0 not
 * yet. Any thread may fill them in; every value is safe to act on (relaxed). */
static _Atomic int mb_usable;     /* MEMBARRIER_CMD_GLOBAL_EXPEDITED may be issued */
static _Atomic int mb_registered; /* and this process registered as its target */

static bool env_no_membarrier(void)
{
	const char *e = getenv("SHMKIT_NO_MEMBARRIER");
	return e && *e && strcmp(e, "0") != 0;
}

static void mb_probe(void)
{
	if (atomic_load_explicit(&mb_usable, memory_order_relaxed))
		return;
	long q = membarrier(MEMBARRIER_CMD_QUERY);
	bool usable = q >= 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		      (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
	/* Registration lasts for the process (and its fork()ed children): done once. */
	bool reg = usable && !env_no_membarrier() &&
		   membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
	atomic_store_explicit(&mb_registered, reg ? 1 : -1, memory_order_relaxed);
	atomic_store_explicit(&mb_usable, usable ? 1 : -1, memory_order_relaxed);
}

bool shmkit__wq_registered(void)
{
	mb_probe();
	return atomic_load_explicit(&mb_registered, memory_order_relaxed) > 0;
}

void shmkit__wq_attach(struct shmkit__wq *w, struct shmkit_segment *seg,
		       struct shmkit__waitq *const *qs, unsigned n)
{
	struct shmkit__seg_hdr *h = shmkit__segment_hdr(seg);
	w->missed = &h->wq_missed;
	/* The environment is read at every attach, not only at registration, so a forked
	 * test child can play a peer that did not register. */
	w->asym = shmkit__wq_registered() && !env_no_membarrier();
	if (w->asym)
		return;
	for (unsigned i = 0; i < n; i++) {
		/* seq_cst: the late attacher's store (top of src/waitq_internal.h), ordered
		 * before the barrier below and before any sleep or wake of ours. */
		atomic_store_explicit(&qs[i]->fenced, 1, memory_order_seq_cst);
	}
	/* Relaxed: statistics for `shmkit stat`; the queues' words above decide. */
	atomic_fetch_or_explicit(&h->wq_flags, SHMKIT__WQ_FENCED, memory_order_relaxed);
	/* WQ-B2: the late attacher's barrier. Every registered waker's later load of `fenced`
	 * sees 1; a wake that loaded 0 before it had its store ordered before it too, so our
	 * first re-check sees that store. Not available (seccomp): see the top of
	 * src/waitq_internal.h. */
	if (atomic_load_explicit(&mb_usable, memory_order_relaxed) > 0)
		membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED);
	shmkit__fence_seq_cst();
}

bool shmkit__membarrier_global(void)
{
	mb_probe();
	/* SHMKIT_NO_MEMBARRIER=2: as if the system call were refused to this process (the
	 * test hook of the work queue's acknowledged join, src/queue.c). */
	const char *e = getenv("SHMKIT_NO_MEMBARRIER");
	if (e && strcmp(e, "2") == 0)
		return false;
	return atomic_load_explicit(&mb_usable, memory_order_relaxed) > 0 &&
	       membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
}

void shmkit__wq_barrier(const struct shmkit__wq *w)
{
	/* WQ-B1: pairs with the waker's load of the sleeper count (asymmetric mode) or with
	 * WQ-F2 (fenced mode). GLOBAL_EXPEDITED cannot fail once QUERY listed it and this
	 * process registered; if it ever did, the fence still covers fenced-mode wakers. */
	if (!w->asym || membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0)
		shmkit__fence_seq_cst();
}

void shmkit__wq_count_missed(const struct shmkit__wq *w, const _Atomic uint32_t *gen,
			     uint32_t gen0, bool ready)
{
	/* Acquire: as WQ-A1. A waker that saw us bumps gen before FUTEX_WAKE: an unchanged gen
	 * with the condition true means no waker saw us. */
	if (ready && atomic_load_explicit(gen, memory_order_acquire) == gen0 && w->missed)
		atomic_fetch_add_explicit(w->missed, 1, memory_order_relaxed); /* statistics */
}

int shmkit__waitq_sleep(struct shmkit__waitq *q, const struct shmkit__wq *w,
			bool (*ready)(void *), void *ctx, const struct timespec *deadline,
			uint64_t slice_ns, bool *slept)
{
	*slept = false;
	/* WQ-A1: pairs with WQ-R1 in shmkit__waitq_wake_now(). */
	uint32_t gen = atomic_load_explicit(&q->gen, memory_order_acquire);
	/* Relaxed: WQ-B1 orders it before the re-check. */
	atomic_fetch_add_explicit(&q->sleepers, 1, memory_order_relaxed);
	shmkit__wq_barrier(w);
	int err = 0;
	bool at_deadline = false;
	if (!ready(ctx)) {
		struct timespec until;
		at_deadline = shmkit__slice_until(&until, deadline, slice_ns);
		*slept = true;
		err = shmkit_futex_wait((uint32_t *)(void *)&q->gen, gen, &until);
	}
	/* Relaxed: leaving needs no ordering; at worst a waker makes one needless wake. */
	atomic_fetch_sub_explicit(&q->sleepers, 1, memory_order_relaxed);
	if (err == -EINTR)
		return err;
	if (err == -ETIMEDOUT && !at_deadline)
		shmkit__wq_count_missed(w, &q->gen, gen, ready(ctx));
	if (shmkit__deadline_passed(deadline, shmkit_now_ns()))
		return ready(ctx) ? 0 : -ETIMEDOUT;
	if (err == -ETIMEDOUT)
		return at_deadline ? -ETIMEDOUT : 1;
	return err < 0 ? err : 0;
}

void shmkit__spin_init(struct shmkit__spin *s, uint32_t max_ns, bool no_spin)
{
	/* Spinning only helps when the peer can run at the same time on another CPU. That is
	 * a property of the machine (or the cpuset), not of this process's affinity: a process
	 * pinned to one CPU still has its peer on another. So: the CPUs this process may use,
	 * or — when it is pinned to one — the CPUs online. */
	cpu_set_t set;
	long cpus = 1;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		cpus = CPU_COUNT(&set);
	if (cpus < 2)
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
	s->max = no_spin || cpus < 2 ? 0 : (max_ns ? max_ns : SPIN_DEFAULT_NS);
	s->cur = s->max;
}

bool shmkit__spin_wait(struct shmkit__spin *s, bool (*ready)(void *), void *ctx)
{
	if (!s->cur)
		return false;
	/* The clock is first read after 64 polls, not before the first: most waits of a busy
	 * stream end within a few polls, and a clock read (tens of ns under a hypervisor's
	 * clock) would be most of their cost. So the budget counts from the 64th poll. */
	uint64_t start = 0;
	for (unsigned i = 1;; i++) {
		if (ready(ctx)) {
			uint32_t up = s->cur * 2;
			s->cur = up > s->max || up < s->cur ? s->max : up;
			return true;
		}
		shmkit__cpu_relax();
		if ((i & 63) == 0) {
			uint64_t now = shmkit_now_ns();
			if (!start)
				s->started = start = now;
			else if (now - start >= s->cur)
				break;
		}
		/* Now and then let another runnable process have this CPU: when there are more
		 * runnable processes than CPUs, the one we wait for may be queued right here. A
		 * sched_yield() with nobody else runnable returns at once. */
		if ((i & 1023) == 0)
			sched_yield();
	}
	uint32_t floor = s->max < SPIN_FLOOR_NS ? s->max : SPIN_FLOOR_NS;
	s->cur = s->cur / 2 > floor ? s->cur / 2 : floor;
	return false;
}

void shmkit__spin_learn(struct shmkit__spin *s)
{
	if (!s->max)
		return;
	uint64_t waited = shmkit_now_ns() - s->started;
	if (waited >= s->max)
		return;
	uint64_t want = waited + waited / 2;
	if (want > s->cur)
		s->cur = want > s->max ? s->max : (uint32_t)want;
}
