/* Tests for what the CLI tells its user (issue 16, items 4-6): pub/sub --progress, the -v
 * and --json summaries, the overwrite subscriber's lost total, the "waiting for 'x' to
 * appear" notice; errors that name kinds, sizes and the option meant; rm --json and
 * table get --json. The real binary, real channels, real processes (SIGSTOP to make a
 * subscriber slow).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#define run_cli(r, ...) t_run_cli(r, 30000, (const char *const[]){__VA_ARGS__, NULL})

/* Runs the CLI with `in` (len bytes) on its standard input. */
#define run_cli_in(r, in, len, ...) run_input(r, in, len, (const char *const[]){__VA_ARGS__, NULL})

static void run_input(struct t_run *r, const void *in, size_t len, const char *const *args)
{
	int fd = t_tmp_fd();
	ck_assert_int_eq(write(fd, in, len), (ssize_t)len);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	struct t_proc p;
	t_spawn_cli(&p, fd, -1, args);
	close(fd);
	t_run_collect(r, &p, 30000);
}

/* The unsigned number after "key": in a JSON text; fails the test when there is none. */
static uint64_t json_u64(const char *text, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(text, pat);
	ck_assert_msg(p, "no %s in %s", pat, text);
	char *end;
	unsigned long long v = strtoull(p + strlen(pat), &end, 10);
	ck_assert_msg(end != p + strlen(pat), "%s is not a number in %s", pat, text);
	return v;
}

/* How often `needle` occurs in `hay`. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *s = hay; (s = strstr(s, needle)) != NULL; s += strlen(needle))
		n++;
	return n;
}

/* "line0000\n" ... : n lines of 8 bytes each (without the newline). */
static char *lines(unsigned n, size_t *len)
{
	char *buf = malloc((size_t)n * 9 + 1);
	ck_assert_ptr_nonnull(buf);
	for (unsigned i = 0; i < n; i++)
		snprintf(buf + (size_t)i * 9, 10, "line%04u\n", i % 10000);
	*len = (size_t)n * 9;
	return buf;
}

/* --- errors that explain themselves --------------------------------------------------------- */

START_TEST(test_kind_mismatch)
{
	char tbl[64], chan[64], want[512];
	struct t_run r = {0};
	t_name_tracked(tbl, sizeof tbl, "cfg", SHMKIT_BACKEND_POSIX);
	run_cli(&r, "table", "create", tbl);
	ck_assert_msg(r.status == 0, "%s", r.err);
	/* A table where a channel is expected. */
	run_cli(&r, "sub", tbl, "--timeout", "0");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: sub: '%s' is a table, not a stream or pub/sub channel\n",
		 tbl);
	ck_assert_str_eq(r.err, want);
	run_cli_in(&r, "x\n", 2, "pub", tbl, "--timeout", "0");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: pub: '%s' is a table, not a stream channel\n", tbl);
	ck_assert_str_eq(r.err, want);
	run_cli_in(&r, "x\n", 2, "pub", tbl, "--pubsub", "--timeout", "0");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: pub: '%s' is a table, not a pub/sub channel\n", tbl);
	ck_assert_str_eq(r.err, want);
	/* A channel where a table is expected. */
	struct shmkit_chan *ch;
	t_name_tracked(chan, sizeof chan, "chan", SHMKIT_BACKEND_POSIX);
	ck_assert_int_eq(shmkit_chan_create(chan, SHMKIT_CHAN_PRODUCER, NULL, &ch), 0);
	run_cli(&r, "table", "get", chan, "k");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: table: '%s' is a stream channel, not a table\n", chan);
	ck_assert_str_eq(r.err, want);
	/* Creating over an existing name says what is there and how to remove it. */
	run_cli(&r, "table", "create", chan);
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want,
		 "shmkit: table: '%s' exists already (a stream channel); choose another name, or "
		 "remove it first with 'shmkit rm %s'\n",
		 chan, chan);
	ck_assert_str_eq(r.err, want);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
	run_cli(&r, "rm", tbl);
	ck_assert_int_eq(r.status, 0);
	t_run_free(&r);
}
END_TEST

START_TEST(test_oversized)
{
	char tbl[64], want[512];
	struct t_run r = {0};
	t_name_tracked(tbl, sizeof tbl, "size", SHMKIT_BACKEND_POSIX);
	run_cli(&r, "table", "create", tbl, "--value-max", "256", "--key-max", "8");
	ck_assert_msg(r.status == 0, "%s", r.err);
	char big[301];
	memset(big, 'v', 300);
	big[300] = '\0';
	run_cli(&r, "table", "put", tbl, "k", big);
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want,
		 "shmkit: table: %s: key 'k': value of 300 bytes exceeds value_max 256 (the "
		 "table's longest value, set by table create --value-max)\n",
		 tbl);
	ck_assert_str_eq(r.err, want);
	/* From standard input, far larger than the buffer: the whole length is counted. */
	char *huge = malloc(5000);
	ck_assert_ptr_nonnull(huge);
	memset(huge, 'w', 5000);
	run_cli_in(&r, huge, 5000, "table", "put", tbl, "k", "-");
	free(huge);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "value of 5000 bytes exceeds value_max 256"), "%s", r.err);
	run_cli(&r, "table", "put", tbl, "longkey12", "v");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "key of 9 bytes exceeds key_max 8"), "%s", r.err);
	/* A line longer than a pub/sub channel's largest message. */
	char chan[64];
	t_name_tracked(chan, sizeof chan, "line", SHMKIT_BACKEND_POSIX);
	run_cli_in(&r, "short\n0123456789abcdefghij\n", 27, "pub", chan, "--pubsub", "--create",
		   "--max-msg", "16", "--framing", "lines", "--ephemeral");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want,
		 "shmkit: pub: %s: line 2 of 20 bytes exceeds max_msg 16 (the channel's largest "
		 "message; create it with a larger --max-msg)\n",
		 chan);
	ck_assert_str_eq(r.err, want);
	run_cli(&r, "rm", tbl, chan);
	ck_assert_msg(r.status == 0, "%s", r.err);
	t_run_free(&r);
}
END_TEST

START_TEST(test_suggestions)
{
	struct t_run r = {0};
	/* Plain `shmkit`: just the usage, on stderr, status 2. */
	run_cli(&r, NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_str_eq(r.out, "");
	ck_assert_msg(strncmp(r.err, "Usage: shmkit COMMAND", 21) == 0 && strstr(r.err, "  stat "),
		      "%s", r.err);
	/* A mistyped name: the nearest existing one. */
	char tbl[64], typo_name[72], want[256];
	t_name_tracked(tbl, sizeof tbl, "near", SHMKIT_BACKEND_POSIX);
	run_cli(&r, "table", "create", tbl);
	ck_assert_msg(r.status == 0, "%s", r.err);
	snprintf(typo_name, sizeof typo_name, "%sX", tbl);
	run_cli(&r, "stat", typo_name);
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: stat: %s: %s; did you mean '%s'?\n", typo_name,
		 shmkit_strerror(-ENOENT), tbl);
	ck_assert_str_eq(r.err, want);
	run_cli(&r, "rm", tbl);
	ck_assert_int_eq(r.status, 0);
	run_cli(&r, "stat", typo_name);
	ck_assert_msg(!strstr(r.err, "did you mean"), "%s", r.err);
	run_cli(&r, "stta");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown command 'stta'; did you mean 'stat'?"), "%s", r.err);
	/* Options: the nearest one the command documents, with or without a value. */
	static const char *const typo[][4] = {
		{"pub", "--capacty", "4M", "--capacity"},
		{"pub", "--capacty=4M", "x", "--capacity"},
		{"sub", "--progess", "x", "--progress"}, /* a prefix would be taken as is */
		{"rm", "--forse", "x", "--force"},
		{"stat", "--jsno", "x", "--json"},
		{"top", "--intervall", "1", "--interval"},
	};
	for (size_t i = 0; i < sizeof typo / sizeof typo[0]; i++) {
		run_cli(&r, typo[i][0], typo[i][1], typo[i][2]);
		ck_assert_int_eq(r.status, 2);
		snprintf(want, sizeof want, "unknown option '%s'; did you mean '%s'?\n",
			 typo[i][1], typo[i][3]);
		ck_assert_msg(strstr(r.err, want), "want '%s', got: %s", want, r.err);
	}
	run_cli(&r, "table", "get", "--jsn", "t", "k");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "did you mean '--json'?"), "%s", r.err);
	run_cli(&r, "--hlep");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown option '--hlep'; did you mean '--help'?"), "%s", r.err);
	/* Nothing near: no guess. */
	run_cli(&r, "pub", "--zzzzzzzz", "x");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "unknown option '--zzzzzzzz'") && !strstr(r.err, "did you mean"),
		      "%s", r.err);
	t_run_free(&r);
}
END_TEST

/* --- sub waiting for a name that does not exist yet ----------------------------------------- */

START_TEST(test_waiting_notice)
{
	char name[64], want[256];
	struct t_run r = {0};
	t_name_tracked(name, sizeof name, "wait", SHMKIT_BACKEND_POSIX);
	snprintf(want, sizeof want, "shmkit: sub: waiting for '%s' to appear\n", name);
	/* Said once, however long it waits. */
	run_cli(&r, "sub", name, "--timeout", "0.5");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(count_of(r.err, want) == 1 && strncmp(r.err, want, strlen(want)) == 0, "%s",
		      r.err);
	/* -q: not at all. */
	run_cli(&r, "sub", name, "--timeout", "0.5", "-q");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(!strstr(r.err, "waiting for '"), "%s", r.err);

	/* A sub that waits, then gets the stream once it appears. */
	struct t_proc sub;
	t_spawn_cli(&sub, -1, -1, (const char *const[]){"sub", name, "-f", "lines", NULL});
	for (int i = 0; i < 200 && !strstr(sub.e.data ? sub.e.data : "", want); i++)
		t_pump(&sub, NULL, 50, 0);
	ck_assert_msg(sub.e.data && strstr(sub.e.data, want), "no notice: %s",
		      sub.e.data ? sub.e.data : "");
	run_cli_in(&r, "a\nb\n", 4, "pub", name, "--create", "-f", "lines");
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_int_eq(t_finish(&sub, 20000), 0);
	ck_assert_str_eq(sub.o.data, "a\nb\n");
	ck_assert_str_eq(sub.e.data, want);
	t_proc_free(&sub);
	t_run_free(&r);
}
END_TEST

/* --- summaries -------------------------------------------------------------------------------- */

/* pub and sub of `n` lines over a stream (pubsub: false) or a pub/sub channel, with the
 * summary asked by `pub_flag` / `sub_flag` (-v or --json). */
static void transfer(bool pubsub, unsigned n, const char *pub_flag, const char *sub_flag,
		     struct t_run *pub_r, struct t_proc *sub)
{
	char name[64];
	t_name_tracked(name, sizeof name, pubsub ? "sps" : "sst", SHMKIT_BACKEND_POSIX);
	t_spawn_cli(sub, -1, -1, (const char *const[]){"sub", name, "-f", "lines", "-q", sub_flag, NULL});
	size_t len;
	char *in = lines(n, &len);
	if (pubsub)
		run_cli_in(pub_r, in, len, "pub", name, "--pubsub", "--create", "--ephemeral",
			   "--wait-subscribers", "1", "-f", "lines", pub_flag);
	else
		run_cli_in(pub_r, in, len, "pub", name, "--create", "-f", "lines", pub_flag);
	free(in);
	ck_assert_msg(pub_r->status == 0, "pub: %s", pub_r->err);
	ck_assert_int_eq(t_finish(sub, 30000), 0);
	ck_assert_uint_eq(strlen(sub->o.data), (size_t)n * 9);
	if (pubsub) {
		struct t_run r = {0};
		run_cli(&r, "rm", name);
		ck_assert_msg(r.status == 0, "%s", r.err);
		t_run_free(&r);
	}
}

START_TEST(test_summary_verbose)
{
	const bool pubsub = _i;
	const unsigned n = 1000;
	struct t_run pub = {0};
	struct t_proc sub;
	transfer(pubsub, n, "-v", "-v", &pub, &sub);
	/* "shmkit: pub: NAME: 1000 messages, 8000 bytes in S s, 0 lost" */
	const char *const outs[2] = {pub.err, sub.e.data};
	for (int i = 0; i < 2; i++) {
		ck_assert_msg(count_of(outs[i], "\n") == 1, "one line: %s", outs[i]);
		ck_assert_msg(strstr(outs[i], ": 1000 messages, 8000 bytes in ") &&
				      strstr(outs[i], " s, 0 lost\n"),
			      "%s", outs[i]);
	}
	ck_assert_msg(strncmp(pub.err, "shmkit: pub: ", 13) == 0, "%s", pub.err);
	ck_assert_msg(strncmp(sub.e.data, "shmkit: sub: ", 13) == 0, "%s", sub.e.data);
	t_proc_free(&sub);
	t_run_free(&pub);
}
END_TEST

START_TEST(test_summary_json)
{
	const bool pubsub = _i;
	const unsigned n = 1000;
	struct t_run pub = {0};
	struct t_proc sub;
	transfer(pubsub, n, "--json", "--json", &pub, &sub);
	const char *const outs[2] = {pub.err, sub.e.data};
	const char *const cmds[2] = {"{\"command\":\"pub\",\"name\":", "{\"command\":\"sub\",\"name\":"};
	for (int i = 0; i < 2; i++) {
		const char *j = outs[i];
		ck_assert_msg(strncmp(j, cmds[i], strlen(cmds[i])) == 0 && count_of(j, "\n") == 1 &&
				      j[strlen(j) - 2] == '}',
			      "%s", j);
		ck_assert_msg(strstr(j, pubsub ? "\"kind\":\"pubsub\"" : "\"kind\":\"stream\""), "%s", j);
		ck_assert_uint_eq(json_u64(j, "messages"), n);
		ck_assert_uint_eq(json_u64(j, "bytes"), (uint64_t)n * 8);
		ck_assert_uint_eq(json_u64(j, "lost"), 0);
		ck_assert_uint_eq(json_u64(j, "exit"), 0);
		ck_assert_msg(strstr(j, "\"seconds\":"), "%s", j);
	}
	t_proc_free(&sub);
	t_run_free(&pub);
}
END_TEST

/* --progress on a pipe: one line per interval while messages flow, the totals growing, the
 * last line the final total. The producer (this process) sends one message every 60 ms. */
START_TEST(test_progress_lines)
{
	char name[64];
	t_name_tracked(name, sizeof name, "prog", SHMKIT_BACKEND_POSIX);
	struct shmkit_chan_opts o = {.capacity = 65536, .max_msg = 1024};
	struct shmkit_chan *ch;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, &o, &ch), 0);
	struct t_proc sub;
	t_spawn_cli(&sub, -1, -1,
		    (const char *const[]){"sub", name, "-f", "lines", "--progress=0.1", NULL});
	/* Sends only once sub holds the consumer role: on a loaded machine its start can take
	 * longer than the whole send loop, and a sub that found every message waiting would
	 * print its progress in one line, not one per interval. */
	struct shmkit_chan_stats st = {0};
	for (int i = 0; i < 600 && st.consumer_pid <= 0; i++) {
		ck_assert_int_eq(shmkit_chan_stats(ch, &st), 0);
		if (st.consumer_pid <= 0)
			t_pump(&sub, NULL, 50, 0);
	}
	ck_assert_int_gt(st.consumer_pid, 0);
	const unsigned n = 20;
	for (unsigned i = 0; i < n; i++) {
		ck_assert_int_eq(shmkit_chan_send(ch, "0123456789", 10), 0);
		t_pump(&sub, NULL, 60, 0);
	}
	/* 0, or 1 when sub, woken by the end of stream, left between our end-of-stream store
	 * and our own leave: both ends may then learn they were last (CHAN-L1/CHAN-L2). */
	int closed = shmkit_chan_close(ch);
	ck_assert_msg(closed == 0 || closed == 1, "close: %d", closed);
	ck_assert_int_eq(t_finish(&sub, 30000), 0);
	const char *e = sub.e.data;
	ck_assert_msg(!strchr(e, '\r') && !strstr(e, "\033["), "terminal codes on a pipe: %s", e);
	/* Each line: "shmkit: sub: NAME: M msgs, SIZE, T s, R msg/s, RATE/s". */
	char prefix[96];
	snprintf(prefix, sizeof prefix, "shmkit: sub: %s: ", name);
	int nlines = 0;
	unsigned long long prev = 0, msgs = 0;
	for (const char *line = e; *line; nlines++) {
		const char *end = strchr(line, '\n');
		ck_assert_msg(end, "unterminated line: %s", line);
		ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0, "%s", e);
		char size[16], rate[16];
		double secs, mps;
		int got = sscanf(line + strlen(prefix), "%llu msgs, %15[^,], %lf s, %lf msg/s, %15s",
				 &msgs, size, &secs, &mps, rate);
		ck_assert_msg(got == 5 && rate[strlen(rate) - 2] == '/', "bad line: %.*s",
			      (int)(end - line), line);
		ck_assert_msg(msgs >= prev, "totals shrink: %s", e);
		prev = msgs;
		line = end + 1;
	}
	/* 20 messages over about 1.2 s with a line every 0.1 s: several lines, not one per
	 * message; the last holds the total. */
	ck_assert_msg(nlines >= 3 && nlines <= (int)n + 1, "%d lines: %s", nlines, e);
	ck_assert_uint_eq(msgs, n);
	t_proc_free(&sub);
}
END_TEST

/* An overwrite subscriber that cannot keep up (stopped with SIGSTOP while the publisher
 * laps it): the total it reports at the end is the sum of the losses it reported as they
 * happened, and every message published was either delivered or counted lost. */
START_TEST(test_lost_total)
{
	char name[64];
	t_name_tracked(name, sizeof name, "lost", SHMKIT_BACKEND_POSIX);
	struct shmkit_pubsub_opts o = {.capacity = 4096, .max_msg = 64,
				       .policy = SHMKIT_PUBSUB_OVERWRITE};
	struct shmkit_pubsub *ps;
	ck_assert_int_eq(shmkit_pubsub_create(name, SHMKIT_PUBSUB_PUBLISHER, &o, &ps), 0);
	struct t_proc sub;
	t_spawn_cli(&sub, -1, -1, (const char *const[]){"sub", name, "--json", NULL});
	struct shmkit_pubsub_stats st;
	T_WAIT_FOR(shmkit_pubsub_stats(ps, &st) == 0 && st.subscribers == 1);
	ck_assert_int_eq(st.subscribers, 1);
	uint8_t msg[32];
	uint64_t sent = 0;
	for (int round = 0; round < 3; round++) {
		ck_assert_int_eq(kill(sub.pid, SIGSTOP), 0);
		for (int i = 0; i < 2000; i++, sent++) {
			t_msg_fill(msg, sizeof msg, sent);
			ck_assert_int_eq(shmkit_pubsub_send(ps, msg, sizeof msg), 0);
		}
		ck_assert_int_eq(kill(sub.pid, SIGCONT), 0);
		t_pump(&sub, NULL, 300, 0); /* let it catch up */
	}
	ck_assert_int_eq(shmkit_pubsub_close(ps), 0);
	ck_assert_int_eq(t_finish(&sub, 30000), 0);
	const char *e = sub.e.data;
	/* The per-lap lines: "lost N message(s) (overwritten ...)". */
	uint64_t sum = 0;
	int laps = 0;
	for (const char *s = e; (s = strstr(s, ": lost ")) != NULL; s++) {
		char line[256];
		snprintf(line, sizeof line, "%.*s", (int)strcspn(s, "\n"), s);
		unsigned long long k;
		if (strstr(line, " (overwritten ") && sscanf(line, ": lost %llu ", &k) == 1) {
			sum += k;
			laps++;
		}
	}
	ck_assert_msg(laps >= 1 && sum > 0, "no loss reported: %s", e);
	char want[160];
	snprintf(want, sizeof want, ": lost %llu message%s in all (overwrite policy",
		 (unsigned long long)sum, sum == 1 ? "" : "s");
	ck_assert_msg(count_of(e, want) == 1, "want '%s' in: %s", want, e);
	const char *j = strstr(e, "{\"command\":\"sub\"");
	ck_assert_msg(j, "%s", e);
	ck_assert_uint_eq(json_u64(j, "lost"), sum);
	ck_assert_uint_eq(json_u64(j, "messages") + sum, sent);
	ck_assert_uint_eq(json_u64(j, "bytes"), json_u64(j, "messages") * sizeof msg);
	t_proc_free(&sub);
	struct shmkit_segment_opts so = {0};
	ck_assert_int_ge(shmkit_segment_remove(name, &so), 0);
}
END_TEST

/* --- --json on rm and table get ------------------------------------------------------------ */

START_TEST(test_rm_json)
{
	char a[64], b[64], f[64], missing[64], want[1024];
	struct t_run r = {0};
	t_name_tracked(a, sizeof a, "rma", SHMKIT_BACKEND_POSIX);
	t_name_tracked(b, sizeof b, "rmb", SHMKIT_BACKEND_POSIX);
	t_name_tracked(f, sizeof f, "rmf", SHMKIT_BACKEND_POSIX);
	t_name(missing, sizeof missing, "rmmissing");
	run_cli(&r, "table", "create", a);
	run_cli(&r, "table", "create", b);
	run_cli(&r, "table", "create", f, "--mode", "0666"); /* writable by others: foreign */
	ck_assert_msg(r.status == 0, "%s", r.err);
	/* One missing, one foreign: nothing removed; each name says why. */
	run_cli(&r, "rm", a, missing, f, "--json");
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want,
		 "{\"ok\":false,\"names\":[\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"kept\",\"removed\":0,\"reason\":"
		 "\"not removed: another NAME could not be\"},\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"missing\",\"removed\":0,\"reason\":"
		 "\"%s\"},\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"refused\",\"removed\":0,\"reason\":"
		 "\"not ours; use --force or: rm /dev/shm/shmkit.%s\"}\n"
		 "]}\n",
		 a, missing, shmkit_strerror(-ENOENT), f, f);
	ck_assert_str_eq(r.out, want);
	ck_assert_msg(strstr(r.err, "rm /dev/shm/shmkit.") && strstr(r.err, missing), "%s", r.err);
	/* All removable: removed, -v's lines left out of the JSON. */
	run_cli(&r, "rm", a, b, f, "--force", "--json", "-v");
	ck_assert_msg(r.status == 0, "%s", r.err);
	snprintf(want, sizeof want,
		 "{\"ok\":true,\"names\":[\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"removed\",\"removed\":1,\"reason\":null},\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"removed\",\"removed\":1,\"reason\":null},\n"
		 "{\"name\":\"%s\",\"sysv_key\":null,\"status\":\"removed\",\"removed\":1,\"reason\":null}\n"
		 "]}\n",
		 a, b, f);
	ck_assert_str_eq(r.out, want);
	t_run_free(&r);
}
END_TEST

START_TEST(test_table_get_json)
{
	char tbl[64], want[256];
	struct t_run r = {0};
	t_name_tracked(tbl, sizeof tbl, "getj", SHMKIT_BACKEND_POSIX);
	/* Few stripes: verify holds every stripe lock at once, and TSan tracks at most 64. */
	run_cli(&r, "table", "create", tbl, "--capacity", "64");
	ck_assert_msg(r.status == 0, "%s", r.err);
	run_cli(&r, "table", "put", tbl, "k", "say \"hi\"");
	ck_assert_msg(r.status == 0, "%s", r.err);
	run_cli(&r, "table", "get", tbl, "k", "--json");
	ck_assert_msg(r.status == 0, "%s", r.err);
	snprintf(want, sizeof want,
		 "{\"table\":\"%s\",\"key\":\"k\",\"value\":\"say \\\"hi\\\"\",\"version\":", tbl);
	ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "%s", r.out);
	ck_assert_uint_ge(json_u64(r.out, "version"), 1);
	ck_assert_msg(strcmp(r.out + strlen(r.out) - 2, "}\n") == 0, "%s", r.out);
	/* Bytes that are not UTF-8: value_hex carries them exactly. */
	run_cli_in(&r, "\xff\x01", 2, "table", "put", tbl, "bin", "-");
	ck_assert_msg(r.status == 0, "%s", r.err);
	run_cli(&r, "table", "get", tbl, "bin", "--json");
	ck_assert_msg(strstr(r.out, "\"value_hex\":\"ff01\""), "%s", r.out);
	/* A missing key: the error on stderr, nothing on stdout. */
	run_cli(&r, "table", "get", tbl, "nope", "--json");
	ck_assert_int_eq(r.status, 1);
	ck_assert_str_eq(r.out, "");
	run_cli(&r, "table", "verify", tbl, "--json");
	ck_assert_msg(r.status == 0, "%s", r.err);
	snprintf(want, sizeof want, "{\"table\":\"%s\",\"ok\":true,\"error\":null}\n", tbl);
	ck_assert_str_eq(r.out, want);
	run_cli(&r, "table", "expire", tbl, "--json");
	snprintf(want, sizeof want, "{\"table\":\"%s\",\"expired\":0}\n", tbl);
	ck_assert_str_eq(r.out, want);
	run_cli(&r, "rm", tbl);
	ck_assert_int_eq(r.status, 0);
	t_run_free(&r);
}
END_TEST

/* --- suite ------------------------------------------------------------------------------------ */

static Suite *msgs_suite(void)
{
	Suite *s = suite_create("cli_msgs");
	TCase *tc = t_tcase(s, "errors", 60);
	tcase_add_test(tc, test_kind_mismatch);
	tcase_add_test(tc, test_oversized);
	tcase_add_test(tc, test_suggestions);
	tc = t_tcase(s, "flow", 120);
	tcase_add_test(tc, test_waiting_notice);
	tcase_add_loop_test(tc, test_summary_verbose, 0, 2);
	tcase_add_loop_test(tc, test_summary_json, 0, 2);
	tcase_add_test(tc, test_progress_lines);
	tcase_add_test(tc, test_lost_total);
	tc = t_tcase(s, "json", 60);
	tcase_add_test(tc, test_rm_json);
	tcase_add_test(tc, test_table_get_json);
	return s;
}

int main(void)
{
	static Suite *(*const makers[])(void) = {msgs_suite};
	return t_main(makers, 1);
}
