/* Crash torture for `shmkit pub` / `shmkit sub` (issue: a committed line lost by a killed
 * sub), and the rule of who removes a stream channel.
 *
 * A real pub is fed numbered lines ("1\n", "2\n", ...); consumers are real `shmkit sub`
 * processes writing to files, killed with SIGKILL at random moments and restarted. The
 * union of their outputs is then checked line by line:
 *   - nothing committed is lost: the outputs, in order, cover 1..N without a gap;
 *   - duplicates only within the documented at-least-once window: a sub re-writes at most
 *     the records of the dead one's last output buffer (128 KiB, shmkit(1));
 *   - no torn record: every line is whole; only a killed sub's output may end with a
 *     partial line, where the kernel stops a write(2) cut by SIGKILL (a page boundary of
 *     the output file), and it must be the beginning of the next record, which the next
 *     sub writes whole.
 * Stream channels and pub/sub channels (block policy), rings from 4 KiB to 4 MiB. A few
 * rounds in `make check`, hundreds with SHMKIT_STRESS=1.
 *
 * The cleanup tests check shmkit(1)'s rule: a stream channel is removed by the last of its
 * ends to leave, after a clean end and after a caught SIGINT/SIGTERM; a killed end leaves it
 * for the next sub; a pub/sub channel stays.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLOW_BUILD 1 /* the CLI runs several times slower: smaller streams */
#else
#define SLOW_BUILD 0
#endif

/* sub's output buffer (cli/pubsub.c OUT_CAP), the re-delivery window shmkit(1) documents. */
#define DUP_WINDOW (128u << 10)

#define start_cli(p, in_fd, out_fd, ...) \
	t_spawn_cli(p, in_fd, out_fd, (const char *const[]){__VA_ARGS__, NULL})

static off_t fd_size(int fd)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	return st.st_size;
}

static bool chan_exists(const char *name)
{
	struct shmkit_segment_info inf;
	return shmkit_segment_stat(name, NULL, &inf) == 0;
}

/* Messages the channel's producers have published so far (0 while it does not exist). */
static uint64_t msgs_sent(const char *name)
{
	struct shmkit_chan *ch;
	struct shmkit_chan_stats st = {0};
	if (shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ch) != 0)
		return 0;
	shmkit_chan_stats(ch, &st);
	shmkit_chan_close(ch);
	return st.msgs_sent;
}

/* Maps stream channel `name` (as an observer) once it exists, so that nobody's `shmkit gc`
 * running meanwhile takes it for leaked between its two ends (its creator dead, nobody
 * attached). Removing the name is not hindered: the test still sees who unlinks it. */
static struct shmkit_chan *hold_chan(const char *name)
{
	struct shmkit_chan *ch = NULL;
	T_WAIT_FOR(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ch) == 0);
	ck_assert_msg(ch != NULL, "%s never appeared", name);
	return ch;
}

/* "1\n2\n...N\n" */
static char *numbered_lines(uint64_t n, size_t *len)
{
	size_t cap = (size_t)n * 9 + 16, off = 0;
	char *p = malloc(cap);
	ck_assert_ptr_nonnull(p);
	for (uint64_t i = 1; i <= n; i++)
		off += (size_t)snprintf(p + off, cap - off, "%llu\n", (unsigned long long)i);
	*len = off;
	return p;
}

/* Feeds `data` into a pipe from a child (as `seq N |` would); returns the read end. */
struct feeder {
	int rfd, wfd;
	const char *data;
	size_t len;
};

static int feed_child(void *arg)
{
	struct feeder *f = arg;
	close(f->rfd);
	signal(SIGPIPE, SIG_IGN);
	for (size_t off = 0; off < f->len;) {
		ssize_t w = write(f->wfd, f->data + off, f->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 1;
		off += (size_t)w;
	}
	return 0;
}

static int feed(const char *data, size_t len, pid_t *pidp)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	struct feeder f = {fds[0], fds[1], data, len};
	*pidp = t_fork(feed_child, &f);
	close(fds[1]);
	return fds[0];
}

/* --- checking the outputs ------------------------------------------------------------------- */

/* One consumer's output, parsed: whole lines first..last (0, 0: none), each exactly the
 * decimal number one more than the line before; `torn`: a killed consumer's output ended in
 * a partial line, which must be the beginning of line last + 1. */
struct parsed {
	uint64_t first, last;
	bool torn;
};

static void parse_output(const char *what, int idx, const char *s, size_t len, bool killed,
			 struct parsed *o)
{
	*o = (struct parsed){0};
	size_t pos = 0;
	uint64_t expect = 0;
	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		char want[24];
		if (!nl) {
			/* A partial last line: only a kill may leave one, and only where the
			 * kernel stops a write(2) that a fatal signal interrupts — at a page
			 * boundary of the file — and it must be the start of the next record. A
			 * record written in pieces by several calls would be torn anywhere. */
			T_CHECK(killed, "%s %d: output ends in a partial line but sub was not killed",
				what, idx);
			bool page_boundary = (len & 4095) == 0;
			T_CHECK(page_boundary,
				"%s %d: output of %zu bytes ends in a torn record '%.*s', not at a page "
				"boundary", what, idx, len, (int)(len - pos), s + pos);
			int wl = snprintf(want, sizeof want, "%llu", (unsigned long long)(expect ? expect : 1));
			T_CHECK(len - pos <= (size_t)wl && memcmp(s + pos, want, len - pos) == 0,
				"%s %d: partial line '%.*s' is not the start of line %s", what, idx,
				(int)(len - pos), s + pos, want);
			o->torn = true;
			return;
		}
		size_t ll = (size_t)(nl - (s + pos));
		uint64_t v = 0;
		bool ok = ll > 0 && ll < 20 && s[pos] != '0';
		for (size_t i = 0; ok && i < ll; i++) {
			ok = s[pos + i] >= '0' && s[pos + i] <= '9';
			v = v * 10 + (uint64_t)(s[pos + i] - '0');
		}
		T_CHECK(ok, "%s %d: torn or foreign line '%.*s' at byte %zu", what, idx,
			(int)(ll < 40 ? ll : 40), s + pos, pos);
		if (expect)
			T_CHECK(v == expect, "%s %d: line %llu after line %llu (a gap or a torn record)",
				what, idx, (unsigned long long)v, (unsigned long long)(expect - 1));
		else
			o->first = v;
		o->last = v;
		expect = v + 1;
		pos += ll + 1;
	}
}

/* Bytes of the lines a..b of numbered_lines(). */
static uint64_t lines_bytes(uint64_t a, uint64_t b)
{
	uint64_t n = 0;
	for (uint64_t i = a; i <= b; i++) {
		char t[24];
		n += (uint64_t)snprintf(t, sizeof t, "%llu\n", (unsigned long long)i);
	}
	return n;
}

/* Stream: the outputs of successive consumers, in order, cover 1..n without a gap, each
 * repeating at most DUP_WINDOW bytes of what the ones before wrote. Returns the highest
 * line seen. */
static uint64_t check_stream_union(const char *what, int *outs, const bool *killed, int count,
				   uint64_t n)
{
	uint64_t next = 1; /* the first line nobody has written yet */
	for (int i = 0; i < count; i++) {
		size_t len;
		char *s = t_fd_slurp(outs[i], &len);
		struct parsed p;
		parse_output(what, i, s, len, killed[i], &p);
		free(s);
		if (p.first == 0)
			continue;
		T_CHECK(p.first <= next, "%s: lines %llu..%llu lost between sub %d and sub %d", what,
			(unsigned long long)next, (unsigned long long)p.first - 1, i - 1, i);
		if (p.first < next) {
			uint64_t dup_end = p.last < next - 1 ? p.last : next - 1;
			uint64_t dup = lines_bytes(p.first, dup_end);
			T_CHECK(dup <= DUP_WINDOW,
				"%s: sub %d wrote again lines %llu..%llu (%llu bytes, more than the "
				"%u-byte window)",
				what, i, (unsigned long long)p.first, (unsigned long long)dup_end,
				(unsigned long long)dup, DUP_WINDOW);
		}
		if (p.last + 1 > next)
			next = p.last + 1;
	}
	if (n)
		T_CHECK(next - 1 == n, "%s: delivered lines 1..%llu of %llu", what,
			(unsigned long long)next - 1, (unsigned long long)n);
	return next - 1;
}

/* --- the torture rounds ----------------------------------------------------------------------- */

static const char *const ring_sizes[] = {"4K", "64K", "1M", "4M"};

struct round_stats {
	int kills, mid, torn, pub_saw_death; /* mid: killed after it had written something */
};

/* Whether `pid` (our child, not reaped yet) has ended: a zombie. */
static bool proc_ended(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	const char *st = strrchr(buf, ')');
	return !st || st[1] == '\0' || st[2] == 'Z';
}

/* Kills sub `p` with SIGKILL at a random moment while it writes: once its output (the file
 * behind out) has grown, after a random 0..8 ms more — or after 300 ms without output, or
 * not at all when it ended by itself first. So kills land mid-stream even when the CLI
 * starts slowly (sanitizer builds, a loaded machine). */
static void kill_while_writing(struct t_proc *p, int out, uint64_t *rng)
{
	for (int i = 0; i < 600 && fd_size(out) == 0 && !proc_ended(p->pid); i++)
		t_sleep_us(500);
	t_sleep_us(t_rand(rng) % 8000);
	kill(p->pid, SIGKILL);
}

/* A round's channel name[64] and description what[96], and its input: `data` fed through a
 * pipe by a child (*feeder). Returns the pipe's read end, for pub. */
static int begin_round(char *name, char *what, const char *kind, const char *cap,
		       const char *data, size_t len, pid_t *feeder)
{
	t_name_tracked(name, 64, kind, SHMKIT_BACKEND_POSIX);
	snprintf(what, 96, "%s %s", kind, cap);
	return feed(data, len, feeder);
}

/* One stream round: pub fed n lines, `kills` subs (--keep) killed at random moments, then a
 * last sub that reads to the end. */
static void stream_round(const char *cap, uint64_t n, const char *data, size_t len, int kills,
			 uint64_t *rng, struct round_stats *rs)
{
	char name[64], what[96];
	pid_t feeder;
	int in = begin_round(name, what, "stream", cap, data, len, &feeder);
	struct t_proc pub;
	start_cli(&pub, in, -1, "pub", name, "--create", "--framing", "lines", "--capacity", cap);
	close(in);
	struct shmkit_chan *held = hold_chan(name);
	int outs[16];
	bool killed[16];
	int count = 0;
	for (int k = 0; k < kills && count < 15; k++) {
		struct t_proc sub;
		outs[count] = t_tmp_fd();
		start_cli(&sub, -1, outs[count], "sub", name, "-q", "--framing", "lines", "--keep");
		kill_while_writing(&sub, outs[count], rng);
		int st = t_finish(&sub, 20000);
		/* Not killed in time: it reached the end of the stream (0) or pub's abort (1,
		 * pub found a killed sub dead before its successor attached: see below). */
		T_CHECK(st == 128 + SIGKILL || st == 0 || (st == 1 && strstr(sub.e.data, "aborted")),
			"%s: killed sub ended with %d: %s", what, st, sub.e.data);
		killed[count] = st == 128 + SIGKILL;
		rs->kills += killed[count];
		t_proc_free(&sub);
		count++;
	}
	struct t_proc last;
	outs[count] = t_tmp_fd();
	killed[count] = false;
	start_cli(&last, -1, outs[count], "sub", name, "-q", "--framing", "lines");
	count++;
	int ps = t_finish(&pub, 120000);
	int ss = t_finish(&last, 120000);
	/* pub notices a dead consumer only if it waited for room through a whole liveness
	 * slice between a kill and the restart: then it aborts the stream (exit 1), and the
	 * last sub reports the abort after writing everything committed. */
	bool aborted = ps == 1 && strstr(pub.e.data, "consumer died before the end of the stream");
	T_CHECK(ps == 0 || aborted, "%s: pub exit %d: %s", what, ps, pub.e.data);
	if (aborted) {
		rs->pub_saw_death++;
		T_CHECK(ss == 1 && strstr(last.e.data, "aborted"), "%s: last sub exit %d: %s", what,
			ss, last.e.data);
	} else {
		T_CHECK(ss == 0, "%s: last sub exit %d: %s", what, ss, last.e.data);
	}
	/* The feeder finished, or (pub gone early) found its reader gone. */
	int fs = t_wait(feeder, 20000);
	T_CHECK(fs == 0 || (aborted && fs == 1), "%s: feeder exit %d", what, fs);
	for (int i = 0; i < count; i++)
		if (killed[i]) {
			size_t l;
			char *s = t_fd_slurp(outs[i], &l);
			rs->torn += l > 0 && s[l - 1] != '\n';
			rs->mid += l > 0;
			free(s);
		}
	check_stream_union(what, outs, killed, count, aborted ? 0 : n);
	for (int i = 0; i < count; i++)
		close(outs[i]);
	t_proc_free(&pub);
	t_proc_free(&last);
	/* The last end removed the channel. */
	T_CHECK(!chan_exists(name), "%s: %s remains", what, name);
	shmkit_chan_close(held);
}

/* One pub/sub round (block policy): a steady subscriber that must get every line exactly
 * once, and a churning one killed and restarted, each incarnation getting a gapless run
 * of lines after the previous one's. */
static void pubsub_round(const char *cap, uint64_t n, const char *data, size_t len, int kills,
			 uint64_t *rng, struct round_stats *rs)
{
	char name[64], what[96];
	pid_t feeder;
	int in = begin_round(name, what, "pubsub", cap, data, len, &feeder);
	struct t_proc pub, steady, churn;
	start_cli(&pub, in, -1, "pub", name, "--pubsub", "--create", "--policy", "block",
		  "--subscribers", "4", "--wait-subscribers", "2", "--framing", "lines",
		  "--capacity", cap);
	close(in);
	/* Held mapped here so that nobody's `shmkit gc` takes the channel for leaked once pub
	 * and the subs are gone (its creator dead, nobody attached) before we look. */
	struct shmkit_pubsub *obs = NULL;
	T_WAIT_FOR(shmkit_pubsub_open(name, SHMKIT_PUBSUB_OBSERVER, T_PUBSUB_RO, &obs) == 0);
	ck_assert_ptr_nonnull(obs);
	int steady_out = t_tmp_fd();
	start_cli(&steady, -1, steady_out, "sub", name, "-q", "--framing", "lines");
	uint64_t prev_last = 0;
	for (int k = 0; k <= kills; k++) {
		int out = t_tmp_fd();
		start_cli(&churn, -1, out, "sub", name, "-q", "--framing", "lines");
		bool killed = false;
		if (k < kills)
			kill_while_writing(&churn, out, rng);
		int st = t_finish(&churn, 120000);
		killed = st == 128 + SIGKILL;
		T_CHECK(killed || st == 0, "%s: churning sub %d ended with %d: %s", what, k, st,
			churn.e.data);
		rs->kills += killed;
		t_proc_free(&churn);
		size_t l;
		char *s = t_fd_slurp(out, &l);
		struct parsed p;
		parse_output(what, k, s, l, killed, &p);
		rs->torn += p.torn;
		rs->mid += killed && l > 0;
		free(s);
		close(out);
		if (p.first) {
			/* A new subscriber starts at the newest message: after whatever the dead
			 * one wrote, never before it. */
			T_CHECK(p.first > prev_last, "%s: incarnation %d starts at %llu, before %llu",
				what, k, (unsigned long long)p.first, (unsigned long long)prev_last);
			prev_last = p.last;
		}
	}
	int ps = t_finish(&pub, 120000);
	T_CHECK(ps == 0, "%s: pub exit %d: %s", what, ps, pub.e.data);
	int ss = t_finish(&steady, 120000);
	T_CHECK(ss == 0, "%s: steady sub exit %d: %s", what, ss, steady.e.data);
	ck_assert_int_eq(t_wait(feeder, 20000), 0);
	bool no = false;
	check_stream_union(what, &steady_out, &no, 1, n);
	close(steady_out);
	t_proc_free(&pub);
	t_proc_free(&steady);
	/* A pub/sub channel has no last reader: it stays (shmkit(1)), `shmkit rm` removes it. */
	T_CHECK(chan_exists(name), "%s: %s was removed", what, name);
	ck_assert_int_ge(shmkit_segment_remove(name, NULL), 1);
	shmkit_pubsub_close(obs);
}

/* _i: ring size index * 2 + (0 stream, 1 pub/sub). */
START_TEST(test_crash_torture)
{
	const char *cap = ring_sizes[_i / 2];
	bool pubsub = _i % 2;
	/* The pub/sub sub writes each record with its own write(2): a shorter stream. */
	uint64_t n = (SLOW_BUILD ? 150000 : 400000) / (pubsub ? 2 : 1);
	int rounds = t_stress() ? 40 : 1;
	size_t len;
	char *data = numbered_lines(n, &len);
	uint64_t rng = t_seed() ^ (uint64_t)_i * 0x9e3779b97f4a7c15ull;
	struct round_stats rs = {0};
	for (int r = 0; r < rounds; r++) {
		int kills = 2 + (int)(t_rand(&rng) % 4);
		if (pubsub)
			pubsub_round(cap, n, data, len, kills, &rng, &rs);
		else
			stream_round(cap, n, data, len, kills, &rng, &rs);
	}
	free(data);
	fprintf(stderr, "crash torture %s %s: %d rounds, %d kills (%d after output), %d torn "
			"tails, pub saw a dead consumer %d times\n",
		pubsub ? "pubsub" : "stream", cap, rounds, rs.kills, rs.mid, rs.torn,
		rs.pub_saw_death);
}
END_TEST

/* The issue's reproduction, as it was given:
 *   seq 1 3000000 | shmkit pub L --create --framing lines --capacity 64K &
 *   shmkit sub L --framing lines --keep > p1 & sleep 0.03; kill -9 $!
 *   shmkit sub L --framing lines > p2     # p1 + p2 lacked a run of consecutive lines */
START_TEST(test_issue_repro)
{
	uint64_t n = SLOW_BUILD ? 1000000 : 3000000;
	size_t len;
	char *data = numbered_lines(n, &len);
	int rounds = t_stress() ? 20 : 2;
	struct round_stats rs = {0};
	for (int r = 0; r < rounds; r++) {
		char name[64];
		t_name_tracked(name, sizeof name, "repro", SHMKIT_BACKEND_POSIX);
		pid_t feeder;
		int in = feed(data, len, &feeder);
		struct t_proc pub, s1, s2;
		start_cli(&pub, in, -1, "pub", name, "--create", "--framing", "lines", "--capacity",
			  "64K");
		close(in);
		struct shmkit_chan *held = hold_chan(name);
		int outs[2] = {t_tmp_fd(), t_tmp_fd()};
		start_cli(&s1, -1, outs[0], "sub", name, "-q", "--framing", "lines", "--keep");
		t_sleep_ms(30);
		kill(s1.pid, SIGKILL);
		bool killed[2] = {t_finish(&s1, 20000) == 128 + SIGKILL, false};
		start_cli(&s2, -1, outs[1], "sub", name, "-q", "--framing", "lines");
		int ps = t_finish(&pub, 120000), ss = t_finish(&s2, 120000);
		bool aborted = ps == 1 && strstr(pub.e.data, "consumer died");
		T_CHECK(ps == 0 || aborted, "pub exit %d: %s", ps, pub.e.data);
		T_CHECK(ss == (aborted ? 1 : 0), "sub exit %d: %s", ss, s2.e.data);
		rs.pub_saw_death += aborted;
		t_wait(feeder, 20000);
		check_stream_union("repro", outs, killed, 2, aborted ? 0 : n);
		close(outs[0]);
		close(outs[1]);
		t_proc_free(&pub);
		t_proc_free(&s1);
		t_proc_free(&s2);
		T_CHECK(!chan_exists(name), "%s remains", name);
		shmkit_chan_close(held);
	}
	free(data);
	fprintf(stderr, "issue repro: %d rounds, pub saw the dead consumer %d times\n", rounds,
		rs.pub_saw_death);
}
END_TEST

/* --- who removes a stream channel (shmkit(1)) ------------------------------------------------- */

/* Waits until the file behind fd has some bytes. */
static void wait_output(int fd)
{
	T_WAIT_FOR(fd_size(fd) > 0);
	ck_assert_msg(fd_size(fd) > 0, "no output");
}

/* _i: 0 clean end; 1 SIGINT to sub, 2 SIGTERM to sub (mid-stream, pub still sending);
 * 3 SIGINT to pub, 4 SIGTERM to pub (sub reading); 5 SIGTERM to pub with no consumer yet;
 * 6 SIGINT to sub --keep, then another sub; 7 SIGINT to sub after pub has ended. */
START_TEST(test_stream_cleanup)
{
	char name[64];
	t_name_tracked(name, sizeof name, "clean", SHMKIT_BACKEND_POSIX);
	uint64_t n = 200000;
	size_t len;
	char *data = numbered_lines(n, &len);
	struct t_proc pub, sub, sub2;
	int out = t_tmp_fd();
	bool no[2] = {false, false};
	switch (_i) {
	case 0: {
		pid_t feeder;
		int in = feed(data, len, &feeder);
		start_cli(&pub, in, -1, "pub", name, "--create", "--framing", "lines");
		close(in);
		start_cli(&sub, -1, out, "sub", name, "-q", "--framing", "lines");
		ck_assert_int_eq(t_finish(&pub, 60000), 0);
		ck_assert_int_eq(t_finish(&sub, 60000), 0);
		ck_assert_int_eq(t_wait(feeder, 10000), 0);
		check_stream_union("clean", &out, no, 1, n);
		t_proc_free(&sub);
		break;
	}
	case 1:
	case 2: {
		int sig = _i == 1 ? SIGINT : SIGTERM;
		int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
		start_cli(&pub, zero, -1, "pub", name, "--create", "--capacity", "64K");
		close(zero);
		start_cli(&sub, -1, out, "sub", name, "-q");
		wait_output(out);
		kill(sub.pid, sig);
		ck_assert_int_eq(t_finish(&sub, 20000), 128 + sig);
		ck_assert_str_eq(sub.e.data, "");
		/* The reader closed its side: pub learns it and, the last end, removes it. */
		int ps = t_finish(&pub, 20000);
		ck_assert_msg(ps == 1 && strstr(pub.e.data, "consumer closed the channel"),
			      "pub exit %d: %s", ps, pub.e.data);
		t_proc_free(&sub);
		break;
	}
	case 3:
	case 4: {
		int sig = _i == 3 ? SIGINT : SIGTERM;
		int fds[2];
		ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
		start_cli(&pub, fds[0], -1, "pub", name, "--create", "--framing", "lines");
		close(fds[0]);
		start_cli(&sub, -1, out, "sub", name, "-q", "--framing", "lines");
		/* Whole lines, then half of one: never sent. */
		write(fds[1], data, 700);
		write(fds[1], "12345", 5);
		wait_output(out);
		kill(pub.pid, sig);
		ck_assert_int_eq(t_finish(&pub, 20000), 128 + sig);
		ck_assert_str_eq(pub.e.data, "");
		close(fds[1]);
		int ss = t_finish(&sub, 20000);
		ck_assert_msg(ss == 1 && strstr(sub.e.data, "aborted"), "sub exit %d: %s", ss,
			      sub.e.data);
		size_t l;
		char *s = t_fd_slurp(out, &l);
		ck_assert_msg(l <= 700 && memcmp(s, data, l) == 0 && (l == 0 || s[l - 1] == '\n'),
			      "sub wrote %zu bytes: not whole lines of the input", l);
		free(s);
		t_proc_free(&sub);
		break;
	}
	case 5: {
		int fds[2];
		ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
		start_cli(&pub, fds[0], -1, "pub", name, "--create", "--framing", "lines");
		close(fds[0]);
		write(fds[1], data, 700); /* lines 1..202, whole */
		struct shmkit_chan *held = hold_chan(name);
		T_WAIT_FOR(msgs_sent(name) == 202);
		kill(pub.pid, SIGTERM);
		ck_assert_int_eq(t_finish(&pub, 20000), 128 + SIGTERM);
		close(fds[1]);
		/* Nobody has read it yet: it stays for the consumer, which removes it. */
		ck_assert(chan_exists(name));
		start_cli(&sub, -1, out, "sub", name, "-q", "--framing", "lines");
		int ss = t_finish(&sub, 20000);
		ck_assert_msg(ss == 1 && strstr(sub.e.data, "aborted"), "sub exit %d: %s", ss,
			      sub.e.data);
		ck_assert_int_eq((int)fd_size(out), 700);
		shmkit_chan_close(held);
		t_proc_free(&sub);
		break;
	}
	case 6: {
		/* A caught signal never tears a record nor loses or repeats one: sub writes
		 * and releases what it took before it leaves. */
		pid_t feeder;
		int in = feed(data, len, &feeder);
		start_cli(&pub, in, -1, "pub", name, "--create", "--framing", "lines", "--capacity",
			  "4K");
		close(in);
		start_cli(&sub, -1, out, "sub", name, "-q", "--framing", "lines", "--keep");
		wait_output(out);
		kill(sub.pid, SIGINT);
		ck_assert_int_eq(t_finish(&sub, 20000), 128 + SIGINT);
		ck_assert(chan_exists(name)); /* --keep */
		int outs[2] = {out, t_tmp_fd()};
		start_cli(&sub2, -1, outs[1], "sub", name, "-q", "--framing", "lines");
		ck_assert_int_eq(t_finish(&pub, 60000), 0);
		ck_assert_int_eq(t_finish(&sub2, 60000), 0);
		ck_assert_int_eq(t_wait(feeder, 10000), 0);
		size_t l1;
		char *s = t_fd_slurp(out, &l1);
		ck_assert(l1 < len && memcmp(s, data, l1) == 0 && s[l1 - 1] == '\n');
		free(s);
		size_t l2;
		s = t_fd_slurp(outs[1], &l2);
		ck_assert_msg(l1 + l2 == len && memcmp(s, data + l1, l2) == 0,
			      "first sub %zu bytes, second %zu, input %zu", l1, l2, len);
		free(s);
		close(outs[1]);
		t_proc_free(&sub);
		t_proc_free(&sub2);
		break;
	}
	default: {
		/* pub has ended; sub, blocked writing to a full pipe, gets SIGINT: it finishes
		 * the record, leaves, and (the producer gone) removes the channel. */
		int in = t_tmp_fd();
		ck_assert_int_eq(write(in, data, len), (ssize_t)len);
		ck_assert_int_eq(lseek(in, 0, SEEK_SET), 0);
		start_cli(&pub, in, -1, "pub", name, "--create", "--framing", "lines", "--capacity",
			  "4M");
		close(in);
		ck_assert_int_eq(t_finish(&pub, 60000), 0);
		int fds[2];
		ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
		start_cli(&sub, -1, fds[1], "sub", name, "-q", "--framing", "lines");
		close(fds[1]);
		char buf[65536];
		ck_assert_int_gt(read(fds[0], buf, 1), 0);
		t_sleep_ms(20);
		kill(sub.pid, SIGINT);
		t_sleep_ms(20);
		size_t got = 1;
		char lastc = buf[0];
		for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) != 0;)
			if (r > 0) {
				got += (size_t)r;
				lastc = buf[r - 1];
			}
		close(fds[0]);
		ck_assert_int_eq(t_finish(&sub, 20000), 128 + SIGINT);
		/* Whole lines only, and not all of them (it stopped early). */
		ck_assert_msg(got < len && lastc == '\n', "sub wrote %zu of %zu bytes", got, len);
		t_proc_free(&sub);
		break;
	}
	}
	close(out);
	t_proc_free(&pub);
	free(data);
	ck_assert_msg(!chan_exists(name), "case %d: %s remains", _i, name);
}
END_TEST

static Suite *crash_suite(void)
{
	Suite *s = suite_create("cli_crash");
	TCase *tc = t_tcase(s, "torture", t_stress() ? 3600 : 300);
	tcase_add_loop_test(tc, test_crash_torture, 0, 8);
	tcase_add_test(tc, test_issue_repro);
	tc = t_tcase(s, "cleanup", 60);
	tcase_add_loop_test(tc, test_stream_cleanup, 0, 8);
	return s;
}

int main(void)
{
	static Suite *(*const makers[])(void) = {crash_suite};
	return t_main(makers, 1);
}
