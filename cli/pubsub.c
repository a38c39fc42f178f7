/* shmkit CLI — `shmkit pub` and `shmkit sub`: a stream channel used like a pipe.
 *
 *   producer | shmkit pub NAME --create          shmkit sub NAME | consumer
 *
 * pub cuts its standard input into messages and sends them over a stream channel
 * (shmkit/chan.h); sub writes them to its standard output. Three framings, which both
 * sides must agree on:
 *   raw    (default) chunks as read(2) returns them; sub writes the bytes back as they
 *          are, so the output is the input, byte for byte. pub reads straight into a loan
 *          of max_msg bytes and commits what the read returned: no copy of its own.
 *   lines  one message per line, without its newline; a last line without a newline is
 *          still a message. sub writes each message and a newline.
 *   len    records of a 4-byte little-endian length N then N payload bytes; sub writes
 *          the same records. Payloads are read straight into the loan when they are not
 *          already buffered.
 * sub writes from the message in place (zero-copy peek), copying only messages small
 * enough that gathering them in one write(2) is cheaper than writing each.
 *
 * Decisions (shmkit(1) documents them):
 *   - Waiting. Without --timeout both commands wait as long as it takes: for the channel
 *     to appear (pub without --create, sub), for a message (sub), for room in the channel
 *     (pub). With --timeout SEC each of those waits is bounded; 0 means "do not wait".
 *   - End of stream. At end of input pub closes the channel (end of stream) and exits 0;
 *     what it sent stays in the channel until read. sub exits 0 once it has written
 *     everything, and removes the channel (the stream is over) unless --keep.
 *   - Dead peers. A producer that dies (or gives up, see below) is reported by sub as
 *     "producer died before the end of the stream" (exit 1) after everything it sent was
 *     written; sub then removes the channel as at end of stream. A consumer that dies is
 *     reported by pub the next time it waits for room (exit 1).
 *   - Giving up. When pub fails (a line too long, a read error, a timeout) it aborts the
 *     stream instead of ending it (shmkit_chan_abort): a consumer must not take a truncated
 *     stream for a complete one; sub reports "producer aborted the stream" (exit 1). When
 *     sub's standard output fails it closes its side, which tells pub that nobody reads
 *     (pub: "consumer closed the channel", exit 1 — a writer to a closed pipe gets EPIPE).
 *   - SIGPIPE is ignored; EPIPE on sub's standard output means its reader went away: sub
 *     exits quietly with status 0, like a pipeline stage whose reader had enough.
 *   - A sub that times out detaches (shmkit_chan_detach) and keeps the channel: a later
 *     sub continues where it stopped (e.g. `shmkit sub NAME --timeout 0 --keep` drains what is there).
 *   - Crashes: sub releases a message for good only after the write(2) carrying its whole
 *     record returned (sub_loop()), so a killed sub loses nothing and the next one
 *     re-writes at most one output buffer (at least once). pub commits only whole lines
 *     and records.
 *   - Signals: SIGINT, SIGTERM and SIGHUP are caught once the channel is open; both
 *     commands stop at a record boundary (pub aborts the stream, sub writes and releases
 *     what it took), leave the channel as below, and end by the same signal.
 *   - Removal: a stream channel is ephemeral, the last end to leave removes it. sub at the
 *     end of the stream (unless --keep); sub stopped or failing on its output when the
 *     producer has already left; pub when the consumer has already closed its side
 *     (shmkit_chan_close() returns 1 to the last end, chan_leave()). A killed end, or a
 *     sub that timed out or was stopped with --keep, leaves it for the other end or the
 *     next sub; `shmkit gc` removes it once its creator is dead and nobody has it mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "pubsub_multi.h"

const char cli_usage_pub[] =
	"Usage: shmkit pub NAME [--create] [--capacity BYTES] [--max-msg BYTES]\n"
	"                  [--framing raw|lines|len] [--backend posix|sysv] [--timeout SEC]\n"
	"                  [--persistent|--ephemeral] [--foreign]\n"
	"\n"
	"Sends standard input over the stream channel NAME, as messages: raw chunks (the\n"
	"default), lines (without their newline), or length-prefixed records (a 4-byte\n"
	"little-endian length, then that many bytes). At end of input the stream is closed\n"
	"and pub exits 0; 'shmkit sub' writes the messages out in the same framing.\n"
	"Without --create the channel must exist (pub waits for it to appear).\n"
	"\n"
	"Options:\n"
	"  -c, --create            create the channel (it must not exist)\n"
	"      --capacity BYTES    with --create: channel size, rounded up to a power of two\n"
	"                          (default 4M, or 4 x the largest message if that is more)\n"
	"      --max-msg BYTES     with --create: largest message (default 1M for raw, 64K\n"
	"                          for lines and len, at most a quarter of the capacity when\n"
	"                          only --capacity is given; at most capacity/2 - 8)\n"
	"  -f, --framing FRAMING   raw, lines or len (default raw)\n"
	"  -b, --backend BACKEND   posix (default) or sysv\n"
	"      --ephemeral         with --create: removed by `shmkit gc` once its creator\n"
	"                          is dead and nobody has it mapped (the default for a\n"
	"                          stream channel)\n"
	"      --persistent        with --create: never removed by `shmkit gc` (the default\n"
	"                          with --pubsub); only `shmkit rm` removes it\n"
	"      --foreign           open a channel that is not ours (another user's, or\n"
	"                          writable by group or others)\n"
	"  -t, --timeout SEC       give up after SEC seconds waiting for the channel to\n"
	"                          appear, or for room in it (default: wait as long as it\n"
	"                          takes; 0: do not wait; fractions allowed, e.g. 0.5)\n"
	"  -q, --quiet             do not say that pub waits for the channel to appear\n"
	"      --progress[=SEC]    a line on standard error every SEC seconds (default 1)\n"
	"                          while messages flow: messages, bytes, time, rate; on a\n"
	"                          terminal one line refreshed in place\n"
	"  -v, --verbose           at the end, a summary line on standard error: messages,\n"
	"                          bytes, seconds, lost\n"
	"      --json              the summary as one JSON object on standard error instead\n"
	"  -h, --help              show this help\n"
	"\n"
	"BYTES: a number with an optional suffix K, M or G (powers of 1024).\n"
	"Exit status: 0 at end of input, 1 when the consumer died, a line was longer than\n"
	"the largest message, a record was truncated, or a wait timed out.\n"
	"SIGINT, SIGTERM, SIGHUP: the stream is aborted after the last whole message. When\n"
	"the consumer has closed its side already, pub removes the channel as it leaves.\n"
	"\n"
	"Publish/subscribe (one publisher, many subscribers, each gets every message):\n"
	"       shmkit pub NAME --pubsub [--create] [--subscribers N] [--policy block|overwrite]\n"
	"                  [--history K] [--wait-subscribers N] [--capacity BYTES]\n"
	"                  [--max-msg BYTES] [--framing raw|lines|len] [--backend posix|sysv]\n"
	"                  [--timeout SEC] [--persistent|--ephemeral] [--foreign]\n"
	"  -P, --pubsub            a publish/subscribe channel instead of a stream\n"
	"  -n, --subscribers N     with --create: subscribers at once (1..1024, default 16)\n"
	"  -p, --policy POLICY     with --create: block (lossless: wait for the slowest\n"
	"                          subscriber; default) or overwrite (never wait; lapped\n"
	"                          subscribers lose the oldest messages)\n"
	"  -H, --history K         with --create: a late subscriber starts with the last K\n"
	"                          messages (0..65536, default 0)\n"
	"  -w, --wait-subscribers N  publish nothing until N subscribers have joined (a\n"
	"                          subscriber gets only what is published after it joins,\n"
	"                          plus the history); --timeout bounds this wait too\n"
	"At end of input the stream is closed; the channel stays (remove it with shmkit rm):\n"
	"it is persistent unless --ephemeral.\n";

const char cli_usage_sub[] =
	"Usage: shmkit sub NAME [--framing raw|lines|len] [--timeout SEC] [--keep] [--foreign]\n"
	"\n"
	"Receives the messages of the stream channel NAME and writes them to standard\n"
	"output: raw bytes as they are (the default), lines with a newline after each, or\n"
	"length-prefixed records. Waits for the channel to appear. At the end of the stream\n"
	"(the producer closed it) sub exits 0 and removes the channel.\n"
	"\n"
	"Options:\n"
	"  -f, --framing FRAMING   raw, lines or len (default raw): as given to pub\n"
	"  -t, --timeout SEC       give up after SEC seconds waiting for the channel to\n"
	"                          appear, or for the next message (default: wait as long as\n"
	"                          it takes; 0: do not wait; fractions allowed, e.g. 0.5)\n"
	"  -k, --keep              do not remove the channel at the end of the stream or\n"
	"                          on a stop signal (a later sub continues where it stopped)\n"
	"      --foreign           open a channel that is not ours (another user's, or\n"
	"                          writable by group or others)\n"
	"  -q, --quiet             do not say \"waiting for 'NAME' to appear\" on standard\n"
	"                          error when the channel does not exist yet\n"
	"      --progress[=SEC]    a line on standard error every SEC seconds (default 1)\n"
	"                          while messages flow: messages, bytes, time, rate, lost;\n"
	"                          on a terminal one line refreshed in place\n"
	"  -v, --verbose           at the end, a summary line on standard error: messages,\n"
	"                          bytes, seconds, lost\n"
	"      --json              the summary as one JSON object on standard error instead\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 at the end of the stream, or when the reader of standard output went\n"
	"away; 1 when the producer died before the end, a wait timed out, or writing failed.\n"
	"A message leaves the channel only once its whole record was written: a killed sub\n"
	"loses nothing, and the next sub may write its last records again (at most 128K).\n"
	"SIGINT, SIGTERM, SIGHUP: sub stops after the last whole record, closes its side\n"
	"and removes the channel if the producer has left already (--keep: neither).\n"
	"\n"
	"On a publish/subscribe channel, sub is one subscriber among many: it gets every\n"
	"message published after it joined (and the channel's history, unless --from-now),\n"
	"reports messages it lost to the overwrite policy on standard error as they are\n"
	"lost and their total at the end, exits 0 at the end of the stream and never\n"
	"removes the channel.\n"
	"      --from-now          do not replay the channel's history\n";

#define DEFAULT_CAPACITY (4ull << 20)
#define DEFAULT_MAX_RAW (1ull << 20)
#define DEFAULT_MAX_FRAMED (64ull << 10)
#define MAX_CAPACITY (1ull << 40)   /* the library's largest ring */
#define PIPE_GROW (1u << 20)

/* --- option values ------------------------------------------------------------------------ */
struct open_args {
	const char *name;
	int role;
	const struct shmkit_chan_opts *opts;
	struct shmkit_chan **out;
};

static int try_open(void *p)
{
	struct open_args *a = p;
	return shmkit_chan_open(a->name, a->role, a->opts, a->out);
}

/* Opens `name` as `role`, waiting while it does not exist or is not published yet. */
static int open_wait(const char *name, int role, const struct shmkit_chan_opts *co,
		     const struct cli_waiting *w, struct shmkit_chan **chp)
{
	struct open_args a = {name, role, co, chp};
	return cli_open_wait(try_open, &a, w);
}

/* Grows the pipe behind `fd`, if it is one, to PIPE_GROW bytes. A default pipe holds
 * 64 KiB, so each read(2) or write(2) through it moves at most that much and the pipe hop
 * costs more than the channel itself (measured: a 1 GiB raw stream through
 * `cat | shmkit pub` takes about half the time with the larger pipe). Best effort: the
 * system's limits (fs.pipe-max-size, per-user pipe quotas) may refuse, which is fine. */
static void grow_pipe(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return;
	int cur = fcntl(fd, F_GETPIPE_SZ);
	if (cur >= 0 && cur < (int)PIPE_GROW)
		(void)fcntl(fd, F_SETPIPE_SZ, (int)PIPE_GROW);
}

/* Leaves the channel: closes it (end of stream / reader gone), or aborts it, and when the
 * library says this was the last end to leave (the other end closed its side before),
 * removes it unless `remove` is false (sub --keep). 0, or the removal's negative errno. */
static int chan_leave(struct shmkit_chan *ch, const char *name, bool abort, bool remove)
{
	struct shmkit_segment_opts so = {.backend = shmkit_segment_backend(shmkit_chan_segment(ch))};
	int last = abort ? shmkit_chan_abort(ch) : shmkit_chan_close(ch);
	if (last != 1 || !remove)
		return 0;
	int err = shmkit_segment_remove(name, &so);
	/* -ENOENT: the other end removed it too, which is just as good. */
	return err == -ENOENT || err > 0 ? 0 : err;
}

/* Reports a failed open of the stream channel `name` as `role`: for -EBUSY, who holds the
 * role (a stream has one producer and one consumer); else as cli_open_error(). */
static int open_error(const struct cli_cmd *cmd, const char *name, uint32_t backend, int err,
		      int role)
{
	/* An observer asks for read-only access, the one way (SHMKIT_SEG_RDONLY). */
	struct shmkit_chan_opts co = {
		.seg = {.backend = backend, .flags = SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID}};
	struct shmkit_chan *ch;
	struct shmkit_chan_stats st;
	if (err == -EBUSY && shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, &co, &ch) == 0) {
		int got = shmkit_chan_stats(ch, &st);
		shmkit_chan_close(ch);
		bool prod = role == SHMKIT_CHAN_PRODUCER;
		int32_t pid = prod ? st.producer_pid : st.consumer_pid;
		if (got == 0 && pid > 0)
			return cli_errorf(cmd,
					  "%s: %s: its %s is pid %" PRId32 " (a stream channel has "
					  "one; for many subscribers use 'pub --pubsub')",
					  name, shmkit_strerror(err), prod ? "producer" : "consumer",
					  pid);
	}
	return cli_open_error(cmd, name, backend, err,
			      role == SHMKIT_CHAN_PRODUCER ? "stream channel"
							   : "stream or pub/sub channel");
}

/* Reports a failed removal of the channel; returns CLI_ERR. */
static int leave_error(const struct cli_cmd *cmd, const char *name, int err)
{
	char what[SHMKIT_NAME_MAX + 32];
	snprintf(what, sizeof what, "%s: removing the channel", name);
	return cli_error(cmd, what, err);
}

/* --- pub ---------------------------------------------------------------------------------- */

/* Buffered standard input for the lines and len framings. */
struct input {
	int fd;
	uint8_t *buf;
	size_t cap;
	size_t start, end; /* unconsumed bytes: [start, end) */
	bool eof;
};

/* One read(2) into `p`, retrying EINTR and waiting out EAGAIN (a non-blocking stdin).
 * Returns the count (0 at end of input) or a negative errno. */
static ssize_t read_some(int fd, void *p, size_t n)
{
	for (;;) {
		if (cli_stop_sig)
			return -EINTR; /* SIGINT, SIGTERM, SIGHUP: stop before reading more */
		ssize_t r = read(fd, p, n);
		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			(void)poll(&pfd, 1, -1);
		} else if (errno != EINTR) {
			return -errno;
		}
	}
}

/* Reads more after the buffered bytes, first moving them to the front when the room
 * behind them runs short. Needs room (the callers guarantee it). 0 or a negative errno. */
static int input_fill(struct input *in)
{
	if (in->start == in->end) {
		in->start = in->end = 0;
	} else if (in->start > 0 && in->cap - in->end < in->cap / 2) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	ssize_t n = read_some(in->fd, in->buf + in->end, in->cap - in->end);
	if (n < 0)
		return (int)n;
	if (n == 0)
		in->eof = true;
	in->end += (size_t)n;
	return 0;
}

struct pub {
	const struct cli_cmd *cmd;
	const char *name;
	struct shmkit_chan *ch;
	struct cli_waiting wait;
	uint64_t max_msg;
	struct cli_flow flow;
};

/* Reports a failed read of standard input; returns CLI_ERR. A stop signal is no error to
 * report: pub ends the stream as cut short and goes. */
static int pub_input_error(struct pub *p, int err)
{
	return err == -EINTR ? CLI_ERR : cli_error(p->cmd, "standard input", err);
}

/* Reports a failed channel operation; returns CLI_ERR. */
static int pub_chan_error(struct pub *p, int err)
{
	switch (err) {
	case -EINTR: /* a stop signal, as in pub_input_error() */
		return CLI_ERR;
	case -EOWNERDEAD:
		return cli_errorf(p->cmd, "%s: consumer died before the end of the stream", p->name);
	case -EPIPE:
		return cli_errorf(p->cmd, "%s: consumer closed the channel", p->name);
	case -ETIMEDOUT:
		return cli_errorf(p->cmd, "%s: timed out waiting for room in the channel", p->name);
	default:
		return cli_error(p->cmd, p->name, err);
	}
}

/* Loans room for `len` bytes, waiting up to the timeout. 0 or a negative errno. */
static int pub_loan(struct pub *p, size_t len, void **buf)
{
	for (;;) {
		struct timespec ts;
		int err = shmkit_chan_loan_wait(p->ch, len, buf, cli_deadline(&p->wait, &ts));
		if (err != -EINTR || cli_stop_sig)
			return err;
	}
}

/* raw: each read(2) goes straight into a loan of max_msg bytes and becomes one message. */
static int pub_raw(struct pub *p)
{
	for (;;) {
		void *buf;
		int err = pub_loan(p, p->max_msg, &buf);
		if (err)
			return pub_chan_error(p, err);
		ssize_t n = read_some(STDIN_FILENO, buf, p->max_msg);
		if (n < 0)
			return pub_input_error(p, (int)n);
		if (n == 0)
			return CLI_OK; /* the loan is dropped; close ends the stream */
		err = shmkit_chan_commit(p->ch, (size_t)n, 0);
		if (err)
			return pub_chan_error(p, err);
		cli_flow_count(&p->flow, (size_t)n);
	}
}

/* Sends one message copied from `data`; published later (SHMKIT_CHAN_MORE), at the
 * latest before pub next blocks on its input. */
static int pub_copy(struct pub *p, const void *data, size_t len)
{
	void *buf;
	int err = pub_loan(p, len, &buf);
	if (err)
		return err;
	memcpy(buf, data, len);
	err = shmkit_chan_commit(p->ch, len, SHMKIT_CHAN_MORE);
	if (!err)
		cli_flow_count(&p->flow, len);
	return err;
}

/* Publishes the batched messages, then reads more input. */
static int pub_refill(struct pub *p, struct input *in)
{
	shmkit_chan_flush(p->ch);
	cli_flow_tick(&p->flow); /* about to wait for input: the display must not lag */
	int err = input_fill(in);
	if (err)
		return pub_input_error(p, err);
	return CLI_OK;
}

static int pub_lines(struct pub *p, struct input *in)
{
	uint64_t line = 0;
	size_t scanned = 0; /* bytes after in->start known to hold no newline */
	for (;;) {
		const uint8_t *s = in->buf + in->start;
		size_t avail = in->end - in->start;
		const uint8_t *nl = memchr(s + scanned, '\n', avail - scanned);
		size_t len = nl ? (size_t)(nl - s) : avail;
		scanned = avail; /* a line trickling in is not scanned again */
		if (len > p->max_msg)
			return cli_errorf(p->cmd,
					  "%s: line %" PRIu64 " of %s%zu bytes exceeds max_msg %" PRIu64
					  " (the channel's largest message; create it with a larger "
					  "--max-msg)",
					  p->name, line + 1, nl || in->eof ? "" : "at least ", len,
					  p->max_msg);
		if (nl || (in->eof && avail > 0)) {
			line++;
			int err = pub_copy(p, s, len);
			if (err)
				return pub_chan_error(p, err);
			in->start += len + (nl != NULL);
			scanned = 0;
			continue;
		}
		if (in->eof)
			return CLI_OK;
		int rc = pub_refill(p, in);
		if (rc)
			return rc;
	}
}

static int pub_len(struct pub *p, struct input *in)
{
	for (uint64_t rec = 1;; rec++) {
		while (in->end - in->start < 4 && !in->eof) {
			int rc = pub_refill(p, in);
			if (rc)
				return rc;
		}
		size_t avail = in->end - in->start;
		if (avail == 0)
			return CLI_OK;
		if (avail < 4)
			return cli_errorf(p->cmd,
					  "%s: record %" PRIu64 " is truncated (%zu of the 4 "
					  "length bytes at end of input)",
					  p->name, rec, avail);
		const uint8_t *h = in->buf + in->start;
		uint64_t len = (uint64_t)h[0] | (uint64_t)h[1] << 8 | (uint64_t)h[2] << 16 |
			       (uint64_t)h[3] << 24;
		if (len > p->max_msg)
			return cli_errorf(p->cmd,
					  "%s: record %" PRIu64 " of %" PRIu64 " bytes exceeds max_msg "
					  "%" PRIu64 " (the channel's largest message; create it with a "
					  "larger --max-msg)",
					  p->name, rec, len, p->max_msg);
		in->start += 4;
		avail -= 4;
		uint8_t *buf;
		int err = pub_loan(p, (size_t)len, (void **)&buf);
		if (err)
			return pub_chan_error(p, err);
		size_t have = avail < len ? avail : (size_t)len;
		memcpy(buf, in->buf + in->start, have);
		in->start += have;
		/* The rest of a long payload goes from the input straight into the loan. */
		while (have < len) {
			shmkit_chan_flush(p->ch); /* about to block: publish what is committed */
			ssize_t n = read_some(in->fd, buf + have, (size_t)len - have);
			if (n < 0)
				return pub_input_error(p, (int)n);
			if (n == 0)
				return cli_errorf(p->cmd,
						  "%s: record %" PRIu64 " is truncated (%zu of its "
						  "%" PRIu64 " bytes at end of input)",
						  p->name, rec, have, len);
			have += (size_t)n;
		}
		err = shmkit_chan_commit(p->ch, (size_t)len, SHMKIT_CHAN_MORE);
		if (err)
			return pub_chan_error(p, err);
		cli_flow_count(&p->flow, (size_t)len);
	}
}

/* Chooses the geometry of a channel pub creates; reports a usage error for sizes that
 * cannot go together. */
static int pub_geometry(const struct cli_cmd *cmd, enum cli_framing framing, bool have_cap,
			uint64_t *cap, bool have_max, uint64_t *max)
{
	uint64_t c = have_cap ? *cap : DEFAULT_CAPACITY;
	/* The library rounds the capacity up to a power of two, at least 4 KiB. */
	uint64_t pow2 = 4096;
	while (pow2 < c)
		pow2 <<= 1;
	if (!have_max) {
		*max = framing == CLI_FRAMING_RAW ? DEFAULT_MAX_RAW : DEFAULT_MAX_FRAMED;
		if (have_cap && *max > pow2 / 4)
			*max = pow2 / 4;
	} else if (!have_cap && *max > pow2 / 2 - 8) {
		/* Room for four of the largest messages, as the library does by default. */
		c = 4 * (*max + 8);
		if (c > MAX_CAPACITY)
			return cli_usage_error(cmd, "--max-msg is too large");
		pow2 = 4096;
		while (pow2 < c)
			pow2 <<= 1;
	}
	if (*max > pow2 / 2 - 8)
		return cli_usage_error(cmd,
				       "--max-msg %" PRIu64 " does not fit a channel of %" PRIu64
				       " bytes (at most %" PRIu64 ")",
				       *max, pow2, pow2 / 2 - 8);
	*cap = pow2;
	return CLI_OK;
}

/* Whether argv asks for a publish/subscribe channel (handled by cli/pubsub_multi.c). */
static bool wants_pubsub(int argc, char **argv, const char *long_opt, const char *short_opt)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], long_opt) == 0 || (short_opt && strcmp(argv[i], short_opt) == 0))
			return true;
	return false;
}

int cli_cmd_pub(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (wants_pubsub(argc, argv, "--pubsub", "-P"))
		return cli_pub_multi(cmd, argc, argv);
	enum { OPT_CAPACITY = 256, OPT_MAX_MSG, OPT_PERSISTENT, OPT_EPHEMERAL, OPT_FOREIGN };
	static const struct option opts[] = {
		{"create", no_argument, NULL, 'c'},
		{"persistent", no_argument, NULL, OPT_PERSISTENT},
		{"ephemeral", no_argument, NULL, OPT_EPHEMERAL},
		{"foreign", no_argument, NULL, OPT_FOREIGN},
		{"capacity", required_argument, NULL, OPT_CAPACITY},
		{"max-msg", required_argument, NULL, OPT_MAX_MSG},
		{"framing", required_argument, NULL, 'f'},
		{"backend", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	bool create = false, have_cap = false, have_max = false, foreign = false, quiet = false;
	struct cli_flow flow = {.cmd = cmd, .kind = "stream"};
	uint32_t lifetime = 0;
	uint64_t cap = 0, max = 0;
	enum cli_framing framing = CLI_FRAMING_RAW;
	uint32_t backend = SHMKIT_BACKEND_ANY;
	struct cli_waiting w = {0};
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":cf:b:t:hvjq", opts, NULL)) != -1) {
		int rc = cli_flow_option(cmd, &flow, &quiet, c, optarg);
		if (rc >= 0) {
			if (rc != CLI_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'c':
			create = true;
			break;
		case OPT_PERSISTENT:
		case OPT_EPHEMERAL:
			if (cli_lifetime_option(cmd, &lifetime, c == OPT_PERSISTENT) != CLI_OK)
				return CLI_USAGE;
			break;
		case OPT_FOREIGN:
			foreign = true;
			break;
		case OPT_CAPACITY:
			if (cli_parse_bytes(optarg, MAX_CAPACITY, &cap) < 0 || cap == 0)
				return cli_usage_error(cmd,
						       "invalid capacity '%s' (bytes, 1..1T, with an "
						       "optional K, M or G)",
						       optarg);
			have_cap = true;
			break;
		case OPT_MAX_MSG:
			if (cli_parse_bytes(optarg, MAX_CAPACITY / 2 - 8, &max) < 0 || max == 0)
				return cli_usage_error(cmd,
						       "invalid message size '%s' (bytes, 1..512G, "
						       "with an optional K, M or G)",
						       optarg);
			have_max = true;
			break;
		case 'f':
			if (cli_parse_framing(optarg, &framing) < 0)
				return cli_usage_error(cmd,
						       "invalid framing '%s' (expected raw, lines or "
						       "len)",
						       optarg);
			break;
		case 'b':
			if (cli_parse_backend(optarg, &backend) < 0)
				return cli_usage_error(cmd,
						       "invalid backend '%s' (expected posix or sysv)",
						       optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &w.timeout_ns) < 0)
				return cli_usage_error(cmd,
						       "invalid timeout '%s' (seconds, e.g. 10 or 0.5)",
						       optarg);
			w.bounded = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	const char *name;
	if (cli_name_arg(cmd, argc, argv, "channel", &name) != CLI_OK)
		return CLI_USAGE;
	if (!create && (have_cap || have_max || lifetime))
		return cli_usage_error(cmd, "--capacity, --max-msg, --persistent and --ephemeral "
					    "need --create");
	if (create && pub_geometry(cmd, framing, have_cap, &cap, have_max, &max) != CLI_OK)
		return CLI_USAGE;

	signal(SIGPIPE, SIG_IGN);
	struct shmkit_chan_opts co = {.capacity = cap, .max_msg = max, .seg = {.backend = backend}};
	if (!quiet) {
		w.announce = cmd;
		w.name = name;
	}
	flow.name = name;
	struct pub p = {.cmd = cmd, .name = name, .wait = w, .flow = flow};
	int err;
	if (create) {
		/* A stream is between two running programs: garbage once they are gone. */
		co.seg.flags |= cli_lifetime_flags(lifetime, SHMKIT_LIFETIME_EPHEMERAL);
		err = shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, &co, &p.ch);
	} else {
		if (foreign)
			co.seg.flags |= SHMKIT_SEG_FOREIGN_UID;
		err = open_wait(name, SHMKIT_CHAN_PRODUCER, &co, &w, &p.ch);
		if (err == -ETIMEDOUT)
			return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", name);
	}
	if (err)
		return create ? cli_create_error(cmd, name, err, backend)
			      : open_error(cmd, name, backend, err, SHMKIT_CHAN_PRODUCER);
	p.max_msg = shmkit_chan_max_msg(p.ch);
	cli_flow_start(&p.flow);
	grow_pipe(STDIN_FILENO);
	cli_catch_stop(); /* from now on a stop signal ends the stream as cut short */

	int rc;
	if (framing == CLI_FRAMING_RAW) {
		rc = pub_raw(&p);
	} else {
		/* A whole line must fit in the buffer, its newline included. */
		struct input in = {.fd = STDIN_FILENO, .cap = 1u << 20};
		if (in.cap < p.max_msg + 1)
			in.cap = (size_t)p.max_msg + 1;
		in.buf = malloc(in.cap);
		if (!in.buf) {
			rc = cli_error(cmd, "input buffer", -ENOMEM);
		} else {
			rc = framing == CLI_FRAMING_LINES ? pub_lines(&p, &in) : pub_len(&p, &in);
			free(in.buf);
		}
	}
	/* End of stream; after a failure or a stop signal, deliver what was sent but as a
	 * stream cut short, not a complete one. The channel is removed when the consumer has
	 * closed its side already (nobody will read it); else the consumer removes it once it
	 * has read the end (sub_finish), or a sub that was killed left it for the next sub. */
	err = chan_leave(p.ch, name, rc != CLI_OK, true);
	if (err && rc == CLI_OK)
		rc = leave_error(cmd, name, err);
	cli_flow_end(&p.flow, rc);
	return cli_stop_exit(rc);
}

/* --- sub ---------------------------------------------------------------------------------- */

#define OUT_CAP (128u << 10)  /* gathering buffer for small messages */
#define OUT_SMALL (16u << 10) /* messages up to this size are gathered */
#define OUT_FRAMED_MAX (OUT_SMALL + 5) /* a gathered message with its framing */

struct output {
	int fd;
	uint8_t *buf;
	size_t len;
};

/* Writes out the gathered records: whole records only, in one write(2) when the kernel
 * takes it all. 0 or a negative errno. */
static int out_flush(struct output *o)
{
	if (o->len == 0)
		return 0;
	struct iovec iov = {.iov_base = o->buf, .iov_len = o->len};
	o->len = 0;
	return cli_writev_all(o->fd, &iov, 1);
}

/* Writes one message in the framing: a small one is copied into the buffer (which always
 * has room for one, see sub_loop()), a larger one is written straight from the channel
 * after what the buffer holds, as one writev(2) of the whole record. Returns 1 when the
 * message was copied, 0 when it was written, or a negative errno. */
static int out_message(struct output *o, enum cli_framing framing, const void *msg, size_t len)
{
	uint8_t hdr[4];
	struct iovec iov[3];
	int cnt = cli_record_iov(framing, msg, len, hdr, iov);
	if (len <= OUT_SMALL) {
		for (int i = 0; i < cnt; i++) {
			memcpy(o->buf + o->len, iov[i].iov_base, iov[i].iov_len);
			o->len += iov[i].iov_len;
		}
		return 1;
	}
	int err = out_flush(o);
	if (err)
		return err;
	return cli_writev_all(o->fd, iov, cnt);
}

struct sub {
	const struct cli_cmd *cmd;
	const char *name;
	struct shmkit_chan *ch;
	struct cli_waiting wait;
	enum cli_framing framing;
	struct cli_flow flow;
};

/* Copies messages to standard output until the stream ends, something fails or a stop
 * signal arrives. Returns the channel's verdict (-EPIPE end of stream, -EOWNERDEAD,
 * -ETIMEDOUT, -EBADMSG, ...; -EINTR for a stop signal) in *chan_err, or a write error in
 * *out_err.
 *
 * The rule (issue: a killed sub must not lose what it released): a message is released
 * for good — shmkit_chan_flush(), or a release without MORE — only after the write(2)
 * that carries its whole record has returned. Small messages are copied into the buffer
 * and released with SHMKIT_CHAN_MORE, which the library never publishes on its own; the
 * buffer is written, then flushed, when it is full and before every wait (a wait holding
 * releases would refuse with -EDEADLK: the producer may be waiting for that space). So a
 * sub killed at any moment leaves every message it did not write in the channel for the
 * next sub, and re-delivers at most the records of one buffer (OUT_CAP) or one large
 * message it wrote but had not released yet (at least once). */
static void sub_loop(struct sub *s, struct output *o, int *chan_err, int *out_err)
{
	for (;;) {
		const void *msg;
		size_t len;
		int err = cli_stop_sig ? -EINTR : shmkit_chan_peek(s->ch, &msg, &len);
		if (err == -EAGAIN || err == -EINTR) {
			/* Nothing is ready, or we stop: hand on what was gathered, then give its
			 * space back, then (not stopping) wait. */
			*out_err = out_flush(o);
			if (*out_err)
				return;
			shmkit_chan_flush(s->ch);
			cli_flow_tick(&s->flow); /* about to wait: the display must not lag */
			while (err == -EAGAIN || (err == -EINTR && !cli_stop_sig)) {
				struct timespec ts;
				err = shmkit_chan_peek_wait(s->ch, &msg, &len, cli_deadline(&s->wait, &ts));
			}
		}
		if (!err && s->framing == CLI_FRAMING_LEN && len > UINT32_MAX)
			err = -EMSGSIZE; /* its length does not fit the 4-byte prefix */
		if (err) {
			*chan_err = err;
			*out_err = out_flush(o);
			return;
		}
		int copied = out_message(o, s->framing, msg, len);
		if (copied < 0) {
			*out_err = copied;
			return;
		}
		/* Counted when taken: a copied message is written at the next flush, or it is
		 * never released and the next sub writes it again. */
		cli_flow_count(&s->flow, len);
		if (!copied) {
			/* Written (after the buffer before it): release it and the gathered batch. */
			shmkit_chan_release(s->ch, 0);
			continue;
		}
		/* Copied: held until the buffer is written out. */
		shmkit_chan_release(s->ch, SHMKIT_CHAN_MORE);
		if (o->len > OUT_CAP - OUT_FRAMED_MAX) {
			*out_err = out_flush(o);
			if (*out_err)
				return;
			shmkit_chan_flush(s->ch);
		}
	}
}

/* Ends sub after the end of the stream or the producer's death: gives the consumer role
 * up and, unless --keep, removes the channel. */
static int sub_finish(struct sub *s, bool keep, int rc)
{
	int err = keep ? 0 : shmkit_chan_unlink(s->ch);
	shmkit_chan_close(s->ch);
	/* -ENOENT: somebody removed it already, which is just as good. */
	if (err && err != -ENOENT && rc == CLI_OK)
		return leave_error(s->cmd, s->name, err);
	return rc;
}

/* How sub ends after sub_loop(): closes, detaches or removes the channel and reports.
 * Returns the exit status; *by_signal tells whether a stop signal ended it (the caller
 * then ends by that signal, cli_stop_exit()). */
static int sub_end(struct sub *s, bool keep, int chan_err, int out_err, bool *by_signal)
{
	const struct cli_cmd *cmd = s->cmd;
	int err;
	*by_signal = true;
	if (out_err) {
		/* Close our side: the producer learns that its reader is gone. Aborted: what
		 * we held but could not write stays in the channel (released, not lost). */
		chan_leave(s->ch, s->name, true, !keep);
		if (out_err == -EPIPE)
			return CLI_OK;
		return cli_error(cmd, "standard output", out_err);
	}
	switch (chan_err) {
	case -EINTR:
		/* A stop signal: everything taken was written and released (sub_loop). --keep:
		 * leave without a mark, a later sub carries on. Else close our side like a
		 * pipe's reader; the producer, or we if it is gone already, removes it. */
		if (keep)
			shmkit_chan_detach(s->ch);
		else if ((err = chan_leave(s->ch, s->name, false, true)) != 0)
			return leave_error(cmd, s->name, err);
		return CLI_OK;
	}
	*by_signal = false;
	switch (chan_err) {
	case -EPIPE:
		return sub_finish(s, keep, CLI_OK);
	case -EOWNERDEAD:
		return sub_finish(s, keep,
				  cli_errorf(cmd, "%s: producer died before the end of the stream",
					     s->name));
	case -ECONNABORTED:
		return sub_finish(s, keep,
				  cli_errorf(cmd, "%s: producer aborted the stream before its end",
					     s->name));
	case -ETIMEDOUT:
		/* Leave without a mark: a later sub carries on where this one stopped. */
		shmkit_chan_detach(s->ch);
		return cli_errorf(cmd, "%s: timed out waiting for a message", s->name);
	default:
		shmkit_chan_close(s->ch);
		return cli_error(cmd, s->name, chan_err);
	}
}

int cli_cmd_sub(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (wants_pubsub(argc, argv, "--from-now", NULL))
		return cli_sub_multi(cmd, argc, argv);
	enum { OPT_FOREIGN = 256 };
	static const struct option opts[] = {
		{"framing", required_argument, NULL, 'f'},
		{"timeout", required_argument, NULL, 't'},
		{"keep", no_argument, NULL, 'k'},
		{"foreign", no_argument, NULL, OPT_FOREIGN},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct sub s = {.cmd = cmd, .framing = CLI_FRAMING_RAW,
			.flow = {.cmd = cmd, .kind = "stream"}};
	bool keep = false, foreign = false, quiet = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:t:khvjq", opts, NULL)) != -1) {
		int rc = cli_flow_option(cmd, &s.flow, &quiet, c, optarg);
		if (rc >= 0) {
			if (rc != CLI_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'f':
			if (cli_parse_framing(optarg, &s.framing) < 0)
				return cli_usage_error(cmd,
						       "invalid framing '%s' (expected raw, lines or "
						       "len)",
						       optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &s.wait.timeout_ns) < 0)
				return cli_usage_error(cmd,
						       "invalid timeout '%s' (seconds, e.g. 10 or 0.5)",
						       optarg);
			s.wait.bounded = true;
			break;
		case 'k':
			keep = true;
			break;
		case OPT_FOREIGN:
			foreign = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (cli_name_arg(cmd, argc, argv, "channel", &s.name) != CLI_OK)
		return CLI_USAGE;
	s.flow.name = s.name;
	if (!quiet) {
		s.wait.announce = cmd;
		s.wait.name = s.name;
	}
	struct shmkit_chan_opts co = {.seg = {.flags = foreign ? SHMKIT_SEG_FOREIGN_UID : 0}};

	/* A publish/subscribe channel: one subscriber among many (cli/pubsub_multi.c). */
	struct shmkit_segment_info inf;
	if (shmkit_segment_stat(s.name, NULL, &inf) == 0 &&
	    (inf.status == 0 || (foreign && inf.status == -EPERM)) &&
	    inf.kind == SHMKIT_KIND_PUBSUB)
		return cli_sub_multi(cmd, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	int err = open_wait(s.name, SHMKIT_CHAN_CONSUMER, &co, &s.wait, &s.ch);
	if (err == -EMEDIUMTYPE && shmkit_segment_stat(s.name, NULL, &inf) == 0 &&
	    inf.kind == SHMKIT_KIND_PUBSUB) /* it appeared while we waited, as a pub/sub channel */
		return cli_sub_multi(cmd, argc, argv);
	if (err == -ETIMEDOUT)
		return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", s.name);
	if (err)
		return open_error(cmd, s.name, SHMKIT_BACKEND_ANY, err, SHMKIT_CHAN_CONSUMER);
	grow_pipe(STDOUT_FILENO);
	cli_catch_stop(); /* from now on a stop signal ends sub at a record boundary */
	struct output o = {.fd = STDOUT_FILENO, .buf = malloc(OUT_CAP)};
	if (!o.buf) {
		shmkit_chan_close(s.ch);
		return cli_error(cmd, "output buffer", -ENOMEM);
	}
	cli_flow_start(&s.flow);
	int chan_err = 0, out_err = 0;
	sub_loop(&s, &o, &chan_err, &out_err);
	free(o.buf);
	bool by_signal;
	int rc = sub_end(&s, keep, chan_err, out_err, &by_signal);
	cli_flow_end(&s.flow, rc);
	return by_signal ? cli_stop_exit(rc) : rc;
}

/* --- stat detail ---------------------------------------------------------------------------- */

void cli_chan_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	struct shmkit_chan_opts co = {
		.seg = cli_info_opts(inf, SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)};
	struct shmkit_chan *ch;
	int err = shmkit_chan_open(inf->name, SHMKIT_CHAN_OBSERVER, &co, &ch);
	struct shmkit_chan_stats st;
	if (!err)
		err = shmkit_chan_stats(ch, &st);
	shmkit_chan_close(ch);
	if (cli_kv_detail_error(kv, err))
		return;
	cli_kv_size(kv, "capacity", st.capacity);
	cli_kv_size(kv, "max_msg", st.max_msg);
	cli_kv_size(kv, "fill", st.fill);
	cli_kv_percent(kv, "fill_percent", st.fill, st.capacity);
	cli_kv_u64(kv, "msgs_sent", st.msgs_sent);
	cli_kv_u64(kv, "bytes_sent", st.bytes_sent);
	cli_kv_u64(kv, "msgs_recv", st.msgs_recv);
	cli_kv_u64(kv, "bytes_recv", st.bytes_recv);
	if (st.producer_pid > 0)
		cli_kv_i64(kv, "producer_pid", st.producer_pid);
	else
		cli_kv_null(kv, "producer_pid");
	cli_kv_tristate(kv, "producer_alive", st.producer_alive > 0);
	if (st.consumer_pid > 0)
		cli_kv_i64(kv, "consumer_pid", st.consumer_pid);
	else
		cli_kv_null(kv, "consumer_pid");
	cli_kv_tristate(kv, "consumer_alive", st.consumer_alive > 0);
	cli_kv_u64(kv, "producer_sleeps", st.producer_sleeps);
	cli_kv_u64(kv, "producer_wakes", st.producer_wakes);
	cli_kv_u64(kv, "consumer_sleeps", st.consumer_sleeps);
	cli_kv_u64(kv, "consumer_wakes", st.consumer_wakes);
	cli_kv_tristate(kv, "closed", st.closed != 0);
}
