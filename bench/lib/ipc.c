/* shmkit benchmarks — the two-process driver (see ipc.h).
 *
 * For each message size the parent sets up every mechanism, forks one child, and both
 * processes attach every mechanism and then pin themselves to their CPUs (after attaching:
 * shmkit decides at open time whether spinning can help, from the CPUs the process may use).
 * The parent then drives a schedule through a small command block in anonymous shared
 * memory, mechanism by mechanism, block by block:
 *
 *   latency:  warm-up of each mechanism, then `blocks` rounds of (mech 1, mech 2, ...), each
 *             a run of ping-pongs timed one by one on the parent (A sends, B answers);
 *   stream:   the same schedule, each block A streaming `count` messages to B, timed from
 *             A's first send to B's last receive (both CLOCK_MONOTONIC).
 *
 * Interleaving the mechanisms in blocks means every mechanism sees the same drift of the
 * vCPU placement (docs/design.md, "Measuring"), and the floor measured in the same schedule is the
 * denominator of every ratio. Counts are sized from the warm-up so that the whole plan
 * takes about plan->budget_s.
 *
 * Failures: a mechanism whose setup or attach fails is left out of that size; one that
 * fails while measured (error, or the watchdog: no progress for much longer than expected)
 * stops the size: the child is killed and reaped, everything is torn down, and the size is
 * run again without it. SIGINT/SIGTERM stop the whole run the same way (-EINTR). The
 * parent never leaves a child or an object behind on any of these paths.
 */
#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc.h"

enum { PH_QUIT = 0, PH_LAT = 1, PH_STREAM = 2 };
enum { ABORT_TIMEOUT = 1, ABORT_PEER = 2, ABORT_SIGNAL = 3 };

#define MAX_PER_BLOCK_LAT 50000u      /* samples per block, caps memory and time */
#define MAX_PER_BLOCK_STREAM 4000000u /* messages per stream block */
#define MIN_PER_BLOCK 3u

/* The command block, shared by the two processes; each field a writer owns has its line. */
struct ctl {
	_Alignas(128) _Atomic uint32_t cmd; /* parent: number of the posted command (futex) */
	uint32_t phase, mech;
	uint64_t count;
	_Alignas(128) _Atomic uint32_t ack;  /* child: the command it started */
	_Alignas(128) _Atomic uint32_t done; /* child: the command it finished (futex) */
	_Atomic int32_t ready;               /* child: attached (1) */
	_Atomic int32_t child_err;           /* child: the error that stopped it */
	uint32_t child_mech;                 /* ... and the mechanism */
	uint64_t t_end;                      /* child: time of the last receive of a stream */
	char child_msg[192];
	int32_t attach_err[64];              /* child: per mechanism */
	char attach_msg[64][160];
};

/* --- small helpers ---------------------------------------------------------------------- */

static void on_signal(int sig)
{
	/* An interruption (SIGINT/SIGTERM) is never downgraded to a mechanism failure: a
	 * Ctrl-C reaches the child too, whose failure report (SIGUSR1) follows. */
	if (ipc_abort == ABORT_SIGNAL)
		return;
	if (sig == SIGALRM)
		ipc_abort = ABORT_TIMEOUT;
	else if (sig == SIGUSR1 || sig == SIGCHLD)
		ipc_abort = ABORT_PEER;
	else
		ipc_abort = ABORT_SIGNAL;
}

struct saved_signals {
	struct sigaction alrm, usr1, intr, term, pipe, chld;
};

static void install_signals(struct saved_signals *s)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: blocked system calls return EINTR */
	sigaction(SIGALRM, &sa, &s->alrm);
	sigaction(SIGUSR1, &sa, &s->usr1);
	sigaction(SIGINT, &sa, &s->intr);
	sigaction(SIGTERM, &sa, &s->term);
	/* A child that dies (crash, kill) stops the waits at once instead of the watchdog. */
	sigaction(SIGCHLD, &sa, &s->chld);
	sa.sa_handler = SIG_IGN; /* a peer that died must not kill us before the cleanup */
	sigaction(SIGPIPE, &sa, &s->pipe);
}

static void restore_signals(const struct saved_signals *s)
{
	sigaction(SIGALRM, &s->alrm, NULL);
	sigaction(SIGUSR1, &s->usr1, NULL);
	sigaction(SIGINT, &s->intr, NULL);
	sigaction(SIGTERM, &s->term, NULL);
	sigaction(SIGPIPE, &s->pipe, NULL);
	sigaction(SIGCHLD, &s->chld, NULL);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)(void *)w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

/* Waits until *w == want (futex, then re-check); -EINTR on abort. */
static int wait_value(_Atomic uint32_t *w, uint32_t want)
{
	for (;;) {
		uint32_t cur = atomic_load_explicit(w, memory_order_acquire);
		if (cur == want)
			return 0;
		if (ipc_abort)
			return -EINTR;
		static const struct timespec tick = {0, 50000000}; /* re-check ipc_abort */
		syscall(SYS_futex, (uint32_t *)(void *)w, FUTEX_WAIT, cur, &tick, NULL, 0);
	}
}

int ipc_pin(int cpu)
{
	cpu_set_t one;
	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	return sched_setaffinity(0, sizeof one, &one) == 0 ? 0 : -errno;
}

void ipc_default_cpus(int cpu[2])
{
	cpu_set_t set;
	cpu[0] = cpu[1] = -1;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return;
	for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[k++] = c;
}

const struct ipc_result *ipc_result_find(const struct ipc_result *res, int n, const char *name,
					 size_t size)
{
	for (int i = 0; i < n; i++)
		if (res[i].size == size && strcmp(res[i].mech->name, name) == 0)
			return &res[i];
	return NULL;
}

/* Batching mechanisms publish every m->batch messages, or every 64 KiB when that comes
 * first: a batch must stay well below the ring capacity, or producer and consumer take turns
 * filling and draining the whole ring instead of overlapping. */
static unsigned stream_flags(const struct ipc_link *l, uint64_t i, uint64_t count)
{
	uint64_t batch = l->mech->batch, cap = l->size < 65536 ? 65536 / l->size : 1;
	if (batch > cap)
		batch = cap;
	if (batch > 1 && (i + 1) % batch != 0 && i + 1 != count)
		return IPC_MORE;
	return 0;
}

/* --- the child ------------------------------------------------------------------------------ */

static int child_block(struct ctl *c, struct ipc_link *links)
{
	struct ipc_link *l = &links[c->mech];
	uint64_t count = c->count;
	int err = 0;
	if (c->phase == PH_LAT) {
		for (uint64_t i = 0; i < count && !err; i++) {
			err = l->mech->recv(l, 0);
			if (!err)
				err = l->mech->send(l, 0);
		}
	} else {
		for (uint64_t i = 0; i < count && !err; i++)
			err = l->mech->recv(l, stream_flags(l, i, count));
		c->t_end = bench_now_ns();
	}
	return err;
}

static void child_main(struct ctl *c, struct ipc_link *links, int nm, int cpu, pid_t parent)
{
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the parent */
	if (getppid() != parent)
		_exit(3);
	for (int m = 0; m < nm; m++) {
		if (!links[m].mech)
			continue;
		links[m].side = IPC_SIDE_B;
		int err = links[m].mech->attach(&links[m], IPC_SIDE_B);
		if (err) {
			c->attach_err[m] = err;
			snprintf(c->attach_msg[m], sizeof c->attach_msg[m], "%.150s",
				 links[m].err[0] ? links[m].err : strerror(-err));
			links[m].mech->detach(&links[m]);
			links[m].mech = NULL;
		}
	}
	if (cpu >= 0)
		(void)ipc_pin(cpu);
	atomic_store_explicit(&c->ready, 1, memory_order_release);
	futex_wake_all((_Atomic uint32_t *)(void *)&c->ready);
	uint32_t seen = 0;
	int rc = 0;
	for (;;) {
		if (wait_value(&c->cmd, seen + 1) != 0) {
			rc = 2;
			break;
		}
		seen++;
		if (c->phase == PH_QUIT)
			break;
		atomic_store_explicit(&c->ack, seen, memory_order_release);
		int err = links[c->mech].mech ? child_block(c, links) : -EINVAL;
		if (err) {
			c->child_mech = c->mech;
			snprintf(c->child_msg, sizeof c->child_msg, "side B: %s",
				 err == -EBADMSG ? "message lost or corrupted" : strerror(-err));
			atomic_store(&c->child_err, err);
			kill(parent, SIGUSR1);
			rc = 1;
			break;
		}
		atomic_store_explicit(&c->done, seen, memory_order_release);
		futex_wake_all(&c->done);
	}
	for (int m = 0; m < nm; m++)
		if (links[m].mech)
			links[m].mech->detach(&links[m]);
	_exit(rc);
}

/* --- the parent ------------------------------------------------------------------------------ */

struct size_run {
	const struct ipc_plan *plan;
	const struct ipc_mech *const *mechs; /* floor first */
	int nm;
	size_t size;
	struct ipc_link *links;
	struct ctl *c;
	pid_t child;
	uint32_t seq;
	double block_ns;
	int done_blocks, total_blocks;
	/* per mechanism */
	uint64_t **samples;
	size_t *nsamples, *cap;
	uint64_t *tput_msgs, *tput_ns;
	int *failed; /* negative errno once a mechanism failed */
};

/* Posts a command and runs side A of it. For PH_LAT with `out` non-NULL, records one
 * round-trip time per message. Returns 0, or a negative errno; *elapsed gets the
 * wall time of side A (latency) or first send to last receive (stream). */
static int run_block(struct size_run *r, int phase, int m, uint64_t count, uint64_t *out,
		     uint64_t *elapsed)
{
	struct ctl *c = r->c;
	struct ipc_link *l = &r->links[m];
	c->phase = (uint32_t)phase;
	c->mech = (uint32_t)m;
	c->count = count;
	uint32_t seq = ++r->seq;
	/* Watchdog: ten times the expected time plus 10 s, in case a side hangs. */
	double expect_s = r->block_ns / 1e9;
	alarm((unsigned)(10.0 + 10.0 * expect_s));
	atomic_store_explicit(&c->cmd, seq, memory_order_release);
	futex_wake_all(&c->cmd);
	int err = 0;
	uint32_t spins = 0;
	while (atomic_load_explicit(&c->ack, memory_order_acquire) != seq && !err)
		err = ipc_spin_pause(&spins);
	uint64_t t0 = bench_now_ns();
	if (phase == PH_LAT) {
		for (uint64_t i = 0; i < count && !err; i++) {
			uint64_t a = bench_now_ns();
			err = l->mech->send(l, 0);
			if (!err)
				err = l->mech->recv(l, 0);
			if (out)
				out[i] = bench_now_ns() - a;
		}
	} else {
		for (uint64_t i = 0; i < count && !err; i++)
			err = l->mech->send(l, stream_flags(l, i, count));
	}
	uint64_t t1 = bench_now_ns();
	if (!err)
		err = wait_value(&c->done, seq);
	alarm(0);
	if (!err)
		*elapsed = phase == PH_LAT ? t1 - t0 : c->t_end - t0;
	return err;
}

static uint64_t clamp_count(double n, uint64_t hi)
{
	if (!(n >= MIN_PER_BLOCK))
		return MIN_PER_BLOCK;
	return n > (double)hi ? hi : (uint64_t)n;
}

static void progress(struct size_run *r, const char *phase, int m)
{
	r->done_blocks++;
	if (r->plan->progress)
		r->plan->progress(r->plan->progress_arg, phase, r->size, r->mechs[m]->name,
				  r->done_blocks, r->total_blocks);
}

/* One phase: warm-up of each mechanism, then the interleaved blocks. Returns 0, or the
 * error that stopped it with *bad = the mechanism responsible (-1 for none). */
static int run_phase(struct size_run *r, int phase, int *bad)
{
	const struct ipc_plan *p = r->plan;
	uint64_t count[64] = {0};
	unsigned need = phase == PH_LAT ? IPC_CAP_LATENCY : IPC_CAP_STREAM;
	uint64_t hi = phase == PH_LAT ? MAX_PER_BLOCK_LAT : MAX_PER_BLOCK_STREAM;
	double warm_ns = r->block_ns / 2 < 20e6 ? r->block_ns / 2 : 20e6;
	for (int m = 0; m < r->nm; m++) {
		if (!r->links[m].mech || !(r->mechs[m]->caps & need))
			continue;
		*bad = m;
		progress(r, phase == PH_LAT ? "warm-up (latency)" : "warm-up (stream)", m);
		uint64_t k = 2, ns = 0;
		for (;;) {
			int err = run_block(r, phase, m, k, NULL, &ns);
			if (err)
				return err;
			if ((double)ns >= warm_ns || k >= hi)
				break;
			k *= 4;
		}
		double per = (double)ns / (double)k;
		count[m] = clamp_count(per > 0 ? r->block_ns / per : hi, hi);
		if (phase == PH_LAT) {
			r->cap[m] = count[m] * (size_t)p->blocks;
			r->samples[m] = malloc(r->cap[m] * sizeof(uint64_t));
			r->nsamples[m] = 0;
			if (!r->samples[m])
				return -ENOMEM;
		}
	}
	for (int b = 0; b < p->blocks; b++) {
		for (int m = 0; m < r->nm; m++) {
			if (!r->links[m].mech || !(r->mechs[m]->caps & need))
				continue;
			*bad = m;
			progress(r, phase == PH_LAT ? "latency" : "stream", m);
			uint64_t ns = 0;
			uint64_t *out = phase == PH_LAT ? r->samples[m] + r->nsamples[m] : NULL;
			int err = run_block(r, phase, m, count[m], out, &ns);
			if (err)
				return err;
			if (phase == PH_LAT) {
				r->nsamples[m] += count[m];
			} else {
				r->tput_msgs[m] += count[m];
				r->tput_ns[m] += ns;
			}
			/* A block much slower than its warm-up (the machine got busy) shortens the
			 * next ones, so the run keeps to its time budget. */
			if ((double)ns > 1.5 * r->block_ns) {
				uint64_t k = clamp_count(r->block_ns * (double)count[m] / (double)ns, hi);
				if (k < count[m])
					count[m] = k;
			}
		}
	}
	*bad = -1;
	return 0;
}

/* Reaps the child, killing it first unless it is already gone. Returns its wait status
 * when it had ended on its own, else -1. */
static int kill_child(struct size_run *r)
{
	int status = 0, own = -1;
	if (r->child > 0) {
		if (waitpid(r->child, &status, WNOHANG) == r->child) {
			own = status;
		} else {
			kill(r->child, SIGKILL);
			while (waitpid(r->child, NULL, 0) < 0 && errno == EINTR)
				;
		}
		r->child = 0;
	}
	return own;
}

static void free_samples(struct size_run *r)
{
	for (int m = 0; m < r->nm; m++) {
		free(r->samples[m]);
		r->samples[m] = NULL;
		r->nsamples[m] = r->cap[m] = 0;
		r->tput_msgs[m] = r->tput_ns[m] = 0;
	}
}

/* One attempt at a size with the mechanisms not yet failed. Returns 0 (results in r),
 * -EAGAIN (a mechanism failed: marked in r->failed, try again), or -EINTR. */
static int run_size_once(struct size_run *r, const cpu_set_t *orig)
{
	const struct ipc_plan *p = r->plan;
	int nm = r->nm, err = 0, bad = -1;
	memset(r->links, 0, (size_t)nm * sizeof *r->links);
	free_samples(r);
	if (ipc_abort == ABORT_SIGNAL)
		return -EINTR;
	ipc_abort = 0;
	r->seq = 0;
	r->c = bench_shared_alloc(sizeof *r->c);
	if (!r->c)
		return -ENOMEM;
	int active = 0;
	for (int m = 0; m < nm; m++) {
		if (r->failed[m])
			continue;
		struct ipc_link *l = &r->links[m];
		l->mech = r->mechs[m];
		l->size = r->size;
		int e = l->mech->setup(l);
		if (e) {
			r->failed[m] = e;
			l->mech->teardown(l);
			l->mech = NULL;
			continue;
		}
		active++;
	}
	fflush(NULL);
	pid_t parent = getpid();
	r->child = fork();
	if (r->child < 0) {
		err = -errno;
		r->child = 0;
		goto out;
	}
	if (r->child == 0)
		child_main(r->c, r->links, nm, p->cpu[1], parent);
	for (int m = 0; m < nm; m++) {
		struct ipc_link *l = &r->links[m];
		if (!l->mech)
			continue;
		l->side = IPC_SIDE_A;
		int e = l->mech->attach(l, IPC_SIDE_A);
		if (e)
			r->failed[m] = e;
	}
	alarm(30);
	err = wait_value((_Atomic uint32_t *)(void *)&r->c->ready, 1);
	alarm(0);
	if (err)
		goto out;
	for (int m = 0; m < nm; m++) {
		if (r->c->attach_err[m]) {
			r->failed[m] = r->c->attach_err[m];
			snprintf(r->links[m].err, sizeof r->links[m].err, "%.150s", r->c->attach_msg[m]);
		}
		if (r->failed[m] && r->links[m].mech) {
			/* Not measured, but its ends are closed with the others below. */
			active--;
		}
	}
	if (p->cpu[0] >= 0)
		(void)ipc_pin(p->cpu[0]);
	int n_lat = 0, n_str = 0;
	bool do_lat = p->lat_max_size == 0 || r->size <= p->lat_max_size;
	for (int m = 0; m < nm; m++) {
		if (!r->links[m].mech || r->failed[m])
			continue;
		n_lat += do_lat && (r->mechs[m]->caps & IPC_CAP_LATENCY);
		n_str += (r->mechs[m]->caps & IPC_CAP_STREAM) != 0;
	}
	/* Unmeasured links stay attached (their descriptors are closed at detach) but are
	 * skipped by the schedule. */
	struct ipc_link *saved = malloc((size_t)nm * sizeof *saved);
	if (!saved) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(saved, r->links, (size_t)nm * sizeof *saved);
	for (int m = 0; m < nm; m++)
		if (r->failed[m])
			r->links[m].mech = NULL;
	r->total_blocks = (n_lat + n_str) * (p->blocks + 1);
	r->done_blocks = 0;
	if (do_lat)
		err = run_phase(r, PH_LAT, &bad);
	if (!err)
		err = run_phase(r, PH_STREAM, &bad);
	memcpy(r->links, saved, (size_t)nm * sizeof *saved);
	free(saved);
	if (!err) {
		/* Orderly end: the child detaches and exits. */
		r->c->phase = PH_QUIT;
		atomic_store_explicit(&r->c->cmd, ++r->seq, memory_order_release);
		futex_wake_all(&r->c->cmd);
		int status = 0;
		pid_t w;
		alarm(30);
		/* The child's exit raises SIGCHLD (ABORT_PEER): expected here. */
		while ((w = waitpid(r->child, &status, 0)) < 0 && errno == EINTR &&
		       ipc_abort != ABORT_TIMEOUT && ipc_abort != ABORT_SIGNAL)
			;
		alarm(0);
		if (w != r->child)
			kill_child(r);
		r->child = 0;
		ipc_abort = ipc_abort == ABORT_SIGNAL ? ABORT_SIGNAL : 0;
	}
out:;
	int why = ipc_abort;
	int died = kill_child(r);
	char died_msg[96] = "";
	if (died >= 0 && !atomic_load(&r->c->child_err)) {
		if (WIFSIGNALED(died))
			snprintf(died_msg, sizeof died_msg, "side B died (signal %d)", WTERMSIG(died));
		else
			snprintf(died_msg, sizeof died_msg, "side B exited (status %d)", WEXITSTATUS(died));
	}
	(void)sched_setaffinity(0, sizeof *orig, orig);
	for (int m = 0; m < nm; m++) {
		struct ipc_link *l = &r->links[m];
		if (!l->mech)
			continue;
		if (l->side == IPC_SIDE_A && !err && !r->failed[m] && l->mech->verify) {
			int v = l->mech->verify(l);
			if (v)
				r->failed[m] = v;
		}
		if (l->side == IPC_SIDE_A)
			l->mech->detach(l);
		l->mech->teardown(l);
	}
	if (err && why == ABORT_SIGNAL) {
		err = -EINTR;
	} else if (err && bad < 0 && why == ABORT_TIMEOUT) {
		err = -ETIMEDOUT;
	} else if (err && bad >= 0) {
		int e = err;
		const char *what = NULL;
		if (why == ABORT_PEER && atomic_load(&r->c->child_err)) {
			e = atomic_load(&r->c->child_err);
			what = r->c->child_msg;
		} else if (died_msg[0]) {
			e = -ECHILD;
			what = died_msg;
		} else if (why == ABORT_TIMEOUT) {
			e = -ETIMEDOUT;
			what = "no progress (watchdog)";
		}
		r->failed[bad] = e;
		snprintf(r->links[bad].err, sizeof r->links[bad].err, "%.150s",
			 what ? what : (e == -EBADMSG ? "side A: message lost or corrupted" : strerror(-e)));
		err = -EAGAIN;
	}
	bench_shared_free(r->c, sizeof *r->c);
	r->c = NULL;
	(void)active;
	return err;
}

int ipc_run(const struct ipc_plan *p, struct ipc_result **resp)
{
	*resp = NULL;
	if (p->nsize <= 0 || p->blocks <= 0 || p->nmech < 0)
		return -EINVAL;
	/* The floor first, then the plan's mechanisms without duplicates. */
	const struct ipc_mech *mechs[64];
	int nm = 0;
	mechs[nm++] = ipc_find(NULL, "floor");
	for (int i = 0; i < p->nmech; i++) {
		bool dup = false;
		for (int j = 0; j < nm; j++)
			dup |= mechs[j] == p->mechs[i] || strcmp(mechs[j]->name, p->mechs[i]->name) == 0;
		if (!dup) {
			if (nm == 64)
				return -E2BIG;
			mechs[nm++] = p->mechs[i];
		}
	}
	struct ipc_result *res = calloc((size_t)nm * (size_t)p->nsize, sizeof *res);
	struct size_run r = {.plan = p, .mechs = mechs, .nm = nm};
	r.links = calloc((size_t)nm, sizeof *r.links);
	r.samples = calloc((size_t)nm, sizeof *r.samples);
	r.nsamples = calloc((size_t)nm, sizeof *r.nsamples);
	r.cap = calloc((size_t)nm, sizeof *r.cap);
	r.tput_msgs = calloc((size_t)nm, sizeof *r.tput_msgs);
	r.tput_ns = calloc((size_t)nm, sizeof *r.tput_ns);
	r.failed = calloc((size_t)nm, sizeof *r.failed);
	int err = 0;
	if (!res || !r.links || !r.samples || !r.nsamples || !r.cap || !r.tput_msgs ||
	    !r.tput_ns || !r.failed) {
		err = -ENOMEM;
		goto out;
	}
	/* The budget: split evenly over every (size, phase, mechanism) cell and its blocks. */
	int cells = 0;
	for (int s = 0; s < p->nsize; s++)
		for (int m = 0; m < nm; m++) {
			cells += (p->lat_max_size == 0 || p->sizes[s] <= p->lat_max_size) &&
				 (mechs[m]->caps & IPC_CAP_LATENCY);
			cells += (mechs[m]->caps & IPC_CAP_STREAM) != 0;
		}
	r.block_ns = p->budget_s * 1e9 / (cells ? cells : 1) / p->blocks;

	cpu_set_t orig;
	if (sched_getaffinity(0, sizeof orig, &orig) != 0) {
		err = -errno;
		goto out;
	}
	struct saved_signals sigs;
	install_signals(&sigs);
	for (int s = 0; s < p->nsize && !err; s++) {
		r.size = p->sizes[s];
		memset(r.failed, 0, (size_t)nm * sizeof *r.failed);
		char why[64][160];
		memset(why, 0, sizeof why);
		int e = 0;
		for (int attempt = 0; attempt <= nm; attempt++) {
			e = run_size_once(&r, &orig);
			for (int m = 0; m < nm; m++)
				if (r.failed[m] && !why[m][0])
					snprintf(why[m], sizeof why[m], "%.150s",
						 r.links[m].err[0] ? r.links[m].err : strerror(-r.failed[m]));
			if (e != -EAGAIN)
				break;
		}
		if (e == -EINTR || e == -ENOMEM) {
			err = e;
			break;
		}
		for (int m = 0; m < nm; m++) {
			struct ipc_result *o = &res[s * nm + m];
			o->mech = mechs[m];
			o->size = r.size;
			if (r.failed[m] || e) {
				o->err = r.failed[m] ? r.failed[m] : e;
				snprintf(o->errmsg, sizeof o->errmsg, "%.150s",
					 why[m][0] ? why[m] : strerror(-o->err));
				continue;
			}
			if (r.nsamples[m]) {
				o->have_rtt = 1;
				bench_stats_compute(r.samples[m], r.nsamples[m], &o->rtt);
			}
			if (r.tput_msgs[m] && r.tput_ns[m]) {
				o->have_tput = 1;
				o->tput_msgs = r.tput_msgs[m];
				o->msgs_per_s = (double)r.tput_msgs[m] * 1e9 / (double)r.tput_ns[m];
				o->bytes_per_s = o->msgs_per_s *
						 (double)((mechs[m]->caps & IPC_CAP_NOSIZE) ? 8 : r.size);
			}
		}
		uint64_t fl = res[s * nm].have_rtt ? res[s * nm].rtt.p50 : 0;
		for (int m = 0; m < nm; m++)
			res[s * nm + m].floor_p50 = fl;
		free_samples(&r);
	}
	restore_signals(&sigs);
	(void)sched_setaffinity(0, sizeof orig, &orig);
	ipc_abort = 0;
out:
	if (r.samples)
		free_samples(&r);
	free(r.links);
	free(r.samples);
	free(r.nsamples);
	free(r.cap);
	free(r.tput_msgs);
	free(r.tput_ns);
	free(r.failed);
	if (err) {
		free(res);
		return err;
	}
	*resp = res;
	return nm * p->nsize;
}
