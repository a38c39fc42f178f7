/* chan_producer_consumer.c — the producer/consumer example over a shmkit stream channel.
 *
 * The same two processes and the same output as producer_consumer.c, with a stream channel
 * (<shmkit/chan.h>) in place of the hand-made message buffer and semaphores:
 *
 *   - The channel lives in a memfd: it has no name, so nobody else can open it and nothing
 *     can be left behind. The memory is freed when the last process holding the descriptor
 *     or the mapping goes away — by exiting normally, by crashing, or by kill -9.
 *   - The consumer is a forked child. A channel handle does not survive fork(), so the
 *     child opens its own from the inherited descriptor (shmkit_chan_open_fd()); it never
 *     touches the parent's handle.
 *   - The producer loans room in the channel, writes the message in place, prints it and
 *     commits it, then waits until the consumer has released it (shmkit_chan_drain_wait()).
 *     The consumer releases a message only after printing it, so the two outputs alternate
 *     exactly as in producer_consumer.c. (A producer that does not need lock-step output
 *     would not wait: the channel buffers messages for it.)
 *   - Waiting sleeps on a futex, no busy-waiting, and the library reports a peer that died
 *     as -EOWNERDEAD. The producer also waits in 100 ms slices, checking between slices
 *     whether the consumer exited before it even attached to the channel.
 *   - The consumer treats each message as untrusted input from another process: it checks
 *     its length, copies it once into private memory, and checks the copy is
 *     NUL-terminated.
 *
 * Build: cc -std=c11 -D_GNU_SOURCE chan_producer_consumer.c $(pkg-config --cflags --libs shmkit)
 * `shmkit demo` runs this very file (cli/demo_chan.c includes it with
 * SHMKIT_EXAMPLE_NO_MAIN defined and calls shmkit_example_chan_producer_consumer());
 * `shmkit demo --semaphores` runs producer_consumer.c.
 */
#ifndef _GNU_SOURCE
#define _POSIX_C_SOURCE 200809L /* fork, waitpid under -std=c11 */
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
#define SHMKIT_EXAMPLE_PROG "chan_producer_consumer"
#endif

#define DEMO_MSG_MAX 100                 /* largest message, NUL included */
#define DEMO_SLICE_NS (100 * 1000000ull) /* how long a wait sleeps before checking the peer */

/* Runs the producer (this process) and the consumer (a forked child) for `nmessages`
 * messages. Prints the messages to stdout and errors to stderr; returns 0 when both sides
 * finished, 1 otherwise. */
int shmkit_example_chan_producer_consumer(int nmessages);

/* --- consumer (the forked child) -------------------------------------------------------- */

static int consumer(int fd)
{
	struct shmkit_chan *ch;
	int err = shmkit_chan_open_fd(fd, SHMKIT_CHAN_CONSUMER, NULL, &ch);
	if (err < 0) {
		fprintf(stderr, "Consumer: cannot open the channel: %s\n", shmkit_strerror(err));
		return 1;
	}
	int rc = 1;
	for (int expected = 1;; expected++) {
		const void *p;
		size_t len;
		/* No deadline: the library itself checks every 100 ms that the producer lives. */
		do
			err = shmkit_chan_peek_wait(ch, &p, &len, NULL);
		while (err == -EINTR);
		if (err == -EOWNERDEAD) {
			fprintf(stderr, "Consumer: producer died, exiting\n");
			break;
		}
		if (err == -EPIPE) {
			fprintf(stderr, "Consumer: the stream ended without END, exiting\n");
			break;
		}
		if (err < 0) {
			fprintf(stderr, "Consumer: receive failed: %s\n", shmkit_strerror(err));
			break;
		}
		/* The message is in memory another process can write: check its length, copy it
		 * once, then check the copy (a NUL within bounds) and use only the copy. */
		char msg[DEMO_MSG_MAX];
		if (len == 0 || len > sizeof msg) {
			fprintf(stderr, "Consumer: message of %zu bytes, exiting\n", len);
			break;
		}
		memcpy(msg, p, len);
		if (!memchr(msg, '\0', len)) {
			fprintf(stderr, "Consumer: message is not NUL-terminated, exiting\n");
			break;
		}
		if (strcmp(msg, "END") == 0) {
			printf("Consumer received END signal. Exiting...\n");
			fflush(stdout);
			shmkit_chan_release(ch, 0);
			rc = 0;
			break;
		}
		/* Every message is checked, so a lost or repeated one cannot go unnoticed. */
		char want[DEMO_MSG_MAX];
		snprintf(want, sizeof want, "Message %d", expected);
		if (strcmp(msg, want) != 0) {
			fprintf(stderr, "Consumer: unexpected message (wanted '%s'), exiting\n", want);
			break;
		}
		printf("Consumer read: %s\n", msg);
		fflush(stdout);
		/* Hand the space back; this is what ends the producer's drain wait. */
		shmkit_chan_release(ch, 0);
	}
	shmkit_chan_close(ch);
	return rc;
}

/* --- producer (this process) ------------------------------------------------------------ */

struct child {
	pid_t pid;
	int status; /* valid once reaped */
	int reaped;
};

/* Whether the consumer has exited (reaping it if so); a running consumer returns 0. */
static int consumer_gone(struct child *c)
{
	if (!c->reaped) {
		pid_t r = waitpid(c->pid, &c->status, WNOHANG);
		if (r == c->pid || (r < 0 && errno == ECHILD))
			c->reaped = 1;
	}
	return c->reaped;
}

/* Reaps the consumer without comment (it has exited or been killed). */
static void reap_quietly(struct child *c)
{
	while (!c->reaped) {
		pid_t r = waitpid(c->pid, &c->status, 0);
		if (r == c->pid || (r < 0 && errno != EINTR))
			c->reaped = 1;
	}
}

/* Waits for the consumer to finish; returns 0 if it exited with status 0. */
static int reap(struct child *c)
{
	reap_quietly(c);
	if (WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)
		return 0;
	if (WIFSIGNALED(c->status))
		fprintf(stderr, "Producer: consumer killed by signal %d\n", WTERMSIG(c->status));
	else
		fprintf(stderr, "Producer: consumer failed (exit status %d)\n",
			WEXITSTATUS(c->status));
	return 1;
}

/* Reports a failed producer step; returns 1. */
static int producer_error(const char *what, int err)
{
	if (err == -EOWNERDEAD)
		fprintf(stderr, "Producer: consumer died, exiting\n");
	else
		fprintf(stderr, "Producer: %s failed: %s\n", what, shmkit_strerror(err));
	return 1;
}

/* Sends `text` with its NUL: loan, write in place, (print), commit, and wait until the
 * consumer has released it. Every wait runs in 100 ms slices; between slices the producer
 * checks that the consumer has not exited before attaching (the library reports one that
 * died attached as -EOWNERDEAD). */
static int send_text(struct shmkit_chan *ch, struct child *c, const char *text, int print,
		     int drain)
{
	size_t len = strlen(text) + 1;
	void *buf;
	struct timespec slice;
	int err;
	for (;;) {
		err = shmkit_chan_loan_wait(ch, len, &buf, shmkit_deadline_after(&slice, DEMO_SLICE_NS));
		if (err != -ETIMEDOUT && err != -EINTR)
			break;
		if (consumer_gone(c))
			return producer_error("loan", -EOWNERDEAD);
	}
	if (err < 0)
		return producer_error("loan", err);
	memcpy(buf, text, len);
	if (print) {
		printf("Producer wrote: %s\n", text);
		fflush(stdout);
	}
	err = shmkit_chan_commit(ch, len, 0);
	if (err < 0)
		return producer_error("commit", err);
	while (drain) {
		err = shmkit_chan_drain_wait(ch, shmkit_deadline_after(&slice, DEMO_SLICE_NS));
		if (err == 0)
			break;
		if (err != -ETIMEDOUT && err != -EINTR)
			return producer_error("drain", err);
		if (consumer_gone(c))
			return producer_error("drain", -EOWNERDEAD);
	}
	return 0;
}

static int producer(struct shmkit_chan *ch, int nmessages, struct child *c)
{
	for (int i = 1; i <= nmessages; i++) {
		char msg[DEMO_MSG_MAX];
		snprintf(msg, sizeof msg, "Message %d", i);
		if (send_text(ch, c, msg, 1, 1) != 0)
			return 1;
	}
	/* The end marker; closing the channel afterwards also marks the end of the stream. */
	if (send_text(ch, c, "END", 0, 0) != 0)
		return 1;
	return reap(c);
}

int shmkit_example_chan_producer_consumer(int nmessages)
{
	if (nmessages < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": invalid message count %d\n", nmessages);
		return 1;
	}
	/* A small ring is plenty for one 100-byte message at a time. */
	struct shmkit_chan_opts opts = {
		.capacity = 4096,
		.max_msg = DEMO_MSG_MAX,
		.seg = {.backend = SHMKIT_BACKEND_MEMFD},
	};
	struct shmkit_chan *ch;
	int err = shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &opts, &ch);
	if (err < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": cannot create the channel: %s\n",
			shmkit_strerror(err));
		return 1;
	}
	int fd = shmkit_segment_fd(shmkit_chan_segment(ch));

	/* Flush before fork(), or both processes would print what is still buffered. */
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, SHMKIT_EXAMPLE_PROG ": fork: %s\n", strerror(errno));
		shmkit_chan_close(ch);
		return 1;
	}
	if (pid == 0) {
		/* The parent's handle is not ours: never use or close it here (closing it would
		 * end the parent's stream). The kernel unmaps it when we exit. */
		int rc = consumer(fd);
		fflush(stdout);
		/* _exit: the child must not run the parent's atexit handlers or flush its
		 * stdio buffers a second time. */
		_exit(rc);
	}
	struct child c = {.pid = pid};
	int rc = producer(ch, nmessages, &c);
	if (!c.reaped) {
		/* The producer gave up with the consumer maybe still running: stop it rather
		 * than leave it to notice our exit. */
		kill(pid, SIGKILL);
		reap_quietly(&c);
	}
	shmkit_chan_close(ch);
	return rc;
}

#ifndef SHMKIT_EXAMPLE_NO_MAIN
int main(void)
{
	return shmkit_example_chan_producer_consumer(5);
}
#endif
