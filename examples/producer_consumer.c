/* producer_consumer.c — two processes passing messages through shared memory with shmkit.
 *
 * The classic System V example (a segment at key 12345 holding a message buffer and two
 * semaphores, a producer and a forked consumer), done so that it cannot leak, hang or burn
 * a CPU:
 *
 *   - The segment is created exclusively, owner-only (0600), with a validated shmkit header.
 *   - It is removed (IPC_RMID) right after creation, *before* the fork. A System V
 *     attachment survives IPC_RMID and is inherited by fork(): both processes keep using
 *     the memory, nobody new can find it, and the kernel frees it when the last of the two
 *     detaches — by exiting normally, by crashing, or by kill -9. Nothing is left behind,
 *     whatever happens.
 *   - The two sides hand the buffer back and forth with two shmkit semaphores: `empty`
 *     (1 = the producer may write) and `full` (1 = the consumer may read). Waiting sleeps
 *     on a futex, so an idle side costs no CPU; no sleep(), no busy-wait.
 *   - Every wait has a deadline (100 ms slices). When a slice passes without progress the
 *     waiter checks that its peer is still alive, so a dead peer ends the program with a
 *     message instead of a hang.
 *   - The consumer treats the buffer as untrusted input from another process: it copies it
 *     once into private memory, then checks it is NUL-terminated within its 100 bytes.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE producer_consumer.c $(pkg-config --cflags --libs shmkit)
 * The `shmkit demo` command runs this very file (it includes it with SHMKIT_EXAMPLE_NO_MAIN
 * defined and calls shmkit_example_producer_consumer()).
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* fork, waitpid, getppid under -std=c11 */
#endif

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <shmkit.h>

/* The prefix of this program's own error messages. */
#ifndef SHMKIT_EXAMPLE_PROG
#define SHMKIT_EXAMPLE_PROG "producer_consumer"
#endif

#define DEMO_NAME "demo"
#define DEMO_KEY 12345                   /* the System V key of the classic example */
#define DEMO_MSG_MAX 100                 /* bytes in the message buffer, NUL included */
#define DEMO_SLICE_NS (100 * 1000000ull) /* how long a wait sleeps before checking the peer */

/* What lives in the segment. Only fixed-size data, no pointers: the two processes may map it
 * at different addresses. */
struct demo_shared {
	struct shmkit_sem empty;    /* 1 while the buffer may be written (producer waits) */
	struct shmkit_sem full;     /* 1 while the buffer holds an unread message (consumer waits) */
	char message[DEMO_MSG_MAX]; /* "Message N", or "END" after the last one */
};

/* Runs the producer (this process) and the consumer (a forked child) for `nmessages`
 * messages. Prints the messages to stdout and errors to stderr; returns 0 when both sides
 * finished, 1 otherwise. */
int shmkit_example_producer_consumer(int nmessages);

/* --- waiting with a deadline and a liveness check ----------------------------------------- */

/* Tells whether the other side is gone; called only when a wait slice passes. */
typedef int (*peer_gone_fn)(void *arg);

/* Takes one unit of `sem`, sleeping in 100 ms slices and checking between slices that the
 * peer is alive. Returns 0, -EPIPE when the peer is gone, or another negative errno. */
static int wait_sem(struct shmkit_sem *sem, peer_gone_fn peer_gone, void *arg)
{
	for (;;) {
		struct timespec deadline;
		int err = shmkit_sem_timedwait(sem, shmkit_deadline_after(&deadline, DEMO_SLICE_NS));
		if (err == 0)
			return 0;
		if (err != -ETIMEDOUT && err != -EINTR)
			return err;
		if (peer_gone(arg))
			return -EPIPE;
	}
}

/* --- consumer (the forked child) -------------------------------------------------------- */

struct parent_id {
	pid_t pid;
	uint64_t start; /* start time, so a recycled pid does not pass for the producer */
};

static int producer_gone(void *arg)
{
	const struct parent_id *p = arg;
	/* When the parent dies the child is re-parented at once: getppid() changes. */
	return getppid() != p->pid || !shmkit_pid_alive((int32_t)p->pid, p->start);
}

static int consumer(struct demo_shared *sh, struct parent_id *parent)
{
	for (int expected = 1;; expected++) {
		int err = wait_sem(&sh->full, producer_gone, parent);
		if (err == -EPIPE) {
			fprintf(stderr, "Consumer: producer died, exiting\n");
			return 1;
		}
		if (err < 0) {
			fprintf(stderr, "Consumer: wait failed: %s\n", shmkit_strerror(err));
			return 1;
		}
		/* The buffer is shared with another process: copy it once, then check the copy
		 * (a NUL within bounds) and use only the copy. */
		char msg[DEMO_MSG_MAX];
		memcpy(msg, sh->message, sizeof msg);
		if (!memchr(msg, '\0', sizeof msg)) {
			fprintf(stderr, "Consumer: message is not NUL-terminated, exiting\n");
			return 1;
		}
		if (strcmp(msg, "END") == 0) {
			printf("Consumer received END signal. Exiting...\n");
			fflush(stdout);
			return 0;
		}
		/* Every message is checked, so a lost or repeated one cannot go unnoticed. */
		char want[DEMO_MSG_MAX];
		snprintf(want, sizeof want, "Message %d", expected);
		if (strcmp(msg, want) != 0) {
			fprintf(stderr, "Consumer: unexpected message (wanted '%s'), exiting\n", want);
			return 1;
		}
		printf("Consumer read: %s\n", msg);
		fflush(stdout);
		/* Hand the buffer back: it may be overwritten from now on. */
		err = shmkit_sem_post(&sh->empty);
		if (err < 0) {
			fprintf(stderr, "Consumer: post failed: %s\n", shmkit_strerror(err));
			return 1;
		}
	}
}

/* --- producer (this process) ------------------------------------------------------------ */

struct child {
	pid_t pid;
	int status; /* valid once reaped */
	int reaped;
};

static int consumer_gone(void *arg)
{
	struct child *c = arg;
	/* Reaps it if it has exited or was killed; a running consumer returns 0. */
	pid_t r = waitpid(c->pid, &c->status, WNOHANG);
	if (r == c->pid || (r < 0 && errno == ECHILD))
		c->reaped = 1;
	return c->reaped;
}

/* Waits for the consumer to finish; returns 0 if it exited with status 0. */
static int reap(struct child *c)
{
	while (!c->reaped) {
		pid_t r = waitpid(c->pid, &c->status, 0);
		if (r == c->pid)
			c->reaped = 1;
		else if (r < 0 && errno != EINTR)
			return 1;
	}
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		return 0;
	if (WIFSIGNALED(c->status))
		fprintf(stderr, "Producer: consumer killed by signal %d\n", WTERMSIG(c->status));
	else
		fprintf(stderr, "Producer: consumer failed (exit status %d)\n",
			WEXITSTATUS(c->status));
	return 1;
}

/* Waits until the buffer is free, then fills it with `text`. */
static int produce(struct demo_shared *sh, struct child *c, const char *text)
{
	int err = wait_sem(&sh->empty, consumer_gone, c);
	if (err == -EPIPE) {
		fprintf(stderr, "Producer: consumer died, exiting\n");
		return 1;
	}
	if (err < 0) {
		fprintf(stderr, "Producer: wait failed: %s\n", shmkit_strerror(err));
		return 1;
	}
	/* `empty` was ours to take: the consumer is not reading the buffer now. */
	snprintf(sh->message, sizeof sh->message, "%s", text);
	return 0;
}

/* Tells the consumer the buffer is full. */
static int hand_over(struct demo_shared *sh)
{
	/* Release: the consumer that takes this unit sees the message written before. */
	int err = shmkit_sem_post(&sh->full);
	if (err < 0)
		fprintf(stderr, "Producer: post failed: %s\n", shmkit_strerror(err));
	return err < 0;
}

static int producer(struct demo_shared *sh, int nmessages, struct child *c)
{
	for (int i = 1; i <= nmessages; i++) {
		char msg[DEMO_MSG_MAX];
		snprintf(msg, sizeof msg, "Message %d", i);
		if (produce(sh, c, msg) != 0)
			return 1;
		printf("Producer wrote: %s\n", msg);
		fflush(stdout);
		if (hand_over(sh) != 0)
			return 1;
	}
	/* The end marker goes through the same hand-over, after the last message was read. */
	if (produce(sh, c, "END") != 0 || hand_over(sh) != 0)
		return 1;
	return reap(c);
}

/* --- the segment ------------------------------------------------------------------------ */

/* Whether the segment at DEMO_KEY is a demo segment left behind by a dead process: its
 * creator is gone and nobody has it attached. Otherwise explains on stderr why the key is
 * taken. */
static int stale_demo(void)
{
	struct shmkit_segment_opts opts = {.backend = SHMKIT_BACKEND_SYSV, .sysv_key = DEMO_KEY};
	struct shmkit_segment_info info;
	int err = shmkit_segment_stat(NULL, &opts, &info);
	if (err == -ENOENT)
		return 1; /* gone meanwhile: just retry */
	if (err < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": System V key %d is taken: %s\n", DEMO_KEY,
			shmkit_strerror(err));
		return 0;
	}
	if (info.status == -ENOTUNIQ || info.name[0] == '\0') {
		fprintf(stderr,
			SHMKIT_EXAMPLE_PROG ": System V key %d is taken by a segment that is not "
					    "a shmkit demo (see ipcs -m)\n",
			DEMO_KEY);
		return 0;
	}
	if (strcmp(info.name, DEMO_NAME) != 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": System V key %d is taken by segment '%s'\n",
			DEMO_KEY, info.name);
		return 0;
	}
	if (info.creator_alive != 0) {
		fprintf(stderr,
			SHMKIT_EXAMPLE_PROG ": segment '" DEMO_NAME "' at System V key %d is in use "
					    "(creator pid %d %s)\n",
			DEMO_KEY, (int)info.creator_pid,
			info.creator_alive > 0 ? "is running" : "may be running");
		return 0;
	}
	if (info.nattach != 0) {
		fprintf(stderr,
			SHMKIT_EXAMPLE_PROG ": segment '" DEMO_NAME "' at System V key %d is still "
					    "attached by %s process(es)\n",
			DEMO_KEY, info.nattach > 0 ? "some" : "unknown");
		return 0;
	}
	return 1;
}

/* Creates the demo segment; if a dead demo left one at our key, removes it and retries once. */
static int create_segment(struct shmkit_segment **segp)
{
	struct shmkit_segment_opts opts = {
		.backend = SHMKIT_BACKEND_SYSV,
		.sysv_key = DEMO_KEY,
		.mode = 0600,
	};
	for (int attempt = 0;; attempt++) {
		int err = shmkit_segment_create(DEMO_NAME, sizeof(struct demo_shared), &opts, segp);
		if (err == 0)
			return 0;
		if ((err != -EEXIST && err != -ENOTUNIQ) || attempt > 0) {
			fprintf(stderr,
				SHMKIT_EXAMPLE_PROG ": " DEMO_NAME " (System V key %d): cannot create: "
						    "%s\n",
				DEMO_KEY, shmkit_strerror(err));
			return err;
		}
		if (!stale_demo())
			return err;
		/* By name and key: removes only a shmkit segment named "demo" at that key. */
		err = shmkit_segment_remove(DEMO_NAME, &opts);
		if (err < 0 && err != -ENOENT) {
			fprintf(stderr,
				SHMKIT_EXAMPLE_PROG ": " DEMO_NAME " (System V key %d): cannot remove "
						    "the stale segment: %s\n",
				DEMO_KEY, shmkit_strerror(err));
			return err;
		}
	}
}

int shmkit_example_producer_consumer(int nmessages)
{
	if (nmessages < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": invalid message count %d\n", nmessages);
		return 1;
	}
	struct shmkit_segment *seg;
	if (create_segment(&seg) < 0)
		return 1;

	/* Remove the key now, while we are the only process attached. From here on the
	 * segment lives exactly as long as somebody has it attached: our attachment and the
	 * one the child inherits through fork(). If either process dies, even by SIGKILL, the
	 * kernel detaches it; when both are gone the memory is freed. */
	int err = shmkit_segment_unlink(seg);
	/* -ENOENT: somebody removed the key already, which is just as good. */
	if (err < 0 && err != -ENOENT) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": " DEMO_NAME " (System V key %d): cannot remove "
						    "the key: %s\n",
			DEMO_KEY, shmkit_strerror(err));
		shmkit_segment_close(seg);
		return 1;
	}

	/* The data area is zero-filled and at least sizeof(struct demo_shared) bytes. */
	struct demo_shared *sh = shmkit_segment_data(seg);
	shmkit_sem_init(&sh->empty, 1); /* the buffer starts free... */
	shmkit_sem_init(&sh->full, 0);  /* ...and holds nothing to read */

	struct parent_id parent = {.pid = getpid(), .start = shmkit_pid_start_ticks(0)};
	/* Flush before fork(), or both processes would print what is still buffered. */
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": fork: %s\n", strerror(errno));
		shmkit_segment_close(seg);
		return 1;
	}
	if (pid == 0) {
		int rc = consumer(sh, &parent);
		shmkit_segment_close(seg);
		fflush(stdout);
		/* _exit: the child must not run the parent's atexit handlers or flush its
		 * stdio buffers a second time. */
		_exit(rc);
	}
	struct child c = {.pid = pid};
	int rc = producer(sh, nmessages, &c);
	if (!c.reaped) {
		/* The producer gave up with the consumer still running (a failed wait): stop it
		 * rather than leave it to notice our exit. */
		kill(pid, SIGKILL);
		c.status = 0;
		(void)reap(&c);
	}
	shmkit_segment_close(seg);
	return rc;
}

#ifndef SHMKIT_EXAMPLE_NO_MAIN
int main(void)
{
	return shmkit_example_producer_consumer(5);
}
#endif
