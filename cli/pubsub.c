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
 *     (shmkit_chan_close() returns 1 to the last end, cli_chan_leave()). A killed end, or a
 *     sub that timed out or was stopped with --keep, leaves it for the other end or the
 *     next sub; `shmkit gc` removes it once its creator is dead and nobody has it mapped.
 */

/* pub and sub are in cli/pubsub_pub.c and cli/pubsub_sub.c (see cli/pubsub_int.h). */
#include "pubsub_int.h"

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
int cli_chan_open_wait(const char *name, int role, const struct shmkit_chan_opts *co,
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
void cli_grow_pipe(int fd)
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
int cli_chan_leave(struct shmkit_chan *ch, const char *name, bool abort, bool remove)
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
int cli_chan_open_error(const struct cli_cmd *cmd, const char *name, uint32_t backend, int err,
			int role)
{
	struct shmkit_chan_opts co = {
		.seg = {.backend = backend, .flags = SHMKIT_SEG_FOREIGN_UID | SHMKIT_SEG_RDONLY}};
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
int cli_chan_leave_error(const struct cli_cmd *cmd, const char *name, int err)
{
	char what[SHMKIT_NAME_MAX + 32];
	snprintf(what, sizeof what, "%s: removing the channel", name);
	return cli_error(cmd, what, err);
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
