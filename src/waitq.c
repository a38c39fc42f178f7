/* shmkit — wait queues, spinning, identity and deadlines shared by src/pubsub.c,
 * src/queue.c and src/wait.c (protocol: src/waitq_internal.h). Holds no shared layout of its
 * own: the 8-byte wait queue lives inside the layouts of the channels that embed it. */
#include <errno.h>
#include <sched.h>
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

bool shmkit__settle(bool (*ready)(void *), void *ctx)
{
	uint64_t start = shmkit_now_ns();
	do {
		if (ready(ctx))
			return true;
		shmkit__cpu_relax();
	} while (shmkit_now_ns() - start < SHMKIT__SETTLE_NS);
	return ready(ctx);
}

int shmkit__waitq_sleep(struct shmkit__waitq *q, bool (*ready)(void *), void *ctx,
			const struct timespec *deadline, uint64_t slice_ns, bool settle,
			bool *slept)
{
	*slept = false;
	/* A-wq: pairs with R-wq in shmkit__waitq_wake(). */
	uint32_t gen = atomic_load_explicit(&q->gen, memory_order_acquire);
	/* seq_cst: the sleeper's half of the handshake. */
	atomic_fetch_add_explicit(&q->sleepers, 1, memory_order_seq_cst);
	int err = 0;
	bool at_deadline = false;
	if (!(settle ? shmkit__settle(ready, ctx) : ready(ctx))) {
		struct timespec until, first;
		at_deadline = shmkit__slice_until(&until, deadline, slice_ns);
		*slept = true;
		if (settle && !shmkit__slice_until(&first, &until, SHMKIT__SETTLE_NET_NS)) {
			/* The safety net of SHMKIT__SETTLE_NS: one more re-check a while later. */
			err = shmkit_futex_wait((uint32_t *)(void *)&q->gen, gen, &first);
			if (err == -ETIMEDOUT)
				err = ready(ctx) ? 0
						 : shmkit_futex_wait((uint32_t *)(void *)&q->gen, gen,
								     &until);
		} else {
			err = shmkit_futex_wait((uint32_t *)(void *)&q->gen, gen, &until);
		}
	}
	/* Relaxed: leaving needs no ordering; at worst a waker makes one needless wake. */
	atomic_fetch_sub_explicit(&q->sleepers, 1, memory_order_relaxed);
	if (err == -EINTR)
		return err;
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
