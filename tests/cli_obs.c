/* Tests for the CLI's observation commands (cli/top.c, cli/hz.c, cli/record.c): the real
 * binary against real channels fed by real processes.
 *
 * Rates are checked against a producer that sends at a fixed rate on an absolute schedule
 * (2000 messages/s): over a 2-second window a 10 % bound leaves 200 ms for scheduling
 * hiccups of a loaded machine, and a measurement is retried (up to 3 times) before it
 * fails, so only a consistently wrong rate fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define RATE 2000
#define MSG 64

#define run_cli(r, ...) t_run_cli(r, 30000, (const char *const[]){__VA_ARGS__, NULL})
#define start_cli(p, ...) t_spawn_cli(p, -1, -1, (const char *const[]){__VA_ARGS__, NULL})

/* --- a fixed-rate producer ------------------------------------------------------------------ */

struct producer {
	const char *name;
	uint32_t kind;
	unsigned seconds;
};

static void sleep_until(uint64_t at)
{
	struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u), .tv_nsec = (long)(at % 1000000000u)};
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* Creates the channel, then sends RATE messages of MSG bytes a second for p->seconds. The
 * ring holds them all, so no consumer is needed. */
static int producer_main(void *arg)
{
	const struct producer *p = arg;
	struct shmkit_chan *ch = NULL;
	struct shmkit_pubsub *ps = NULL;
	struct shmkit_queue *q = NULL;
	int err;
	if (p->kind == SHMKIT_KIND_STREAM) {
		struct shmkit_chan_opts o = {.capacity = 8u << 20, .max_msg = 1024};
		err = shmkit_chan_create(p->name, SHMKIT_CHAN_PRODUCER, &o, &ch);
	} else if (p->kind == SHMKIT_KIND_PUBSUB) {
		struct shmkit_pubsub_opts o = {.capacity = 1u << 20, .max_msg = 1024};
		err = shmkit_pubsub_create(p->name, SHMKIT_PUBSUB_PUBLISHER, &o, &ps);
	} else {
		struct shmkit_queue_opts o = {.slots = 1u << 16, .max_msg = MSG};
		err = shmkit_queue_create(p->name, &o, &q);
	}
	if (err)
		return 10;
	uint8_t msg[MSG];
	uint64_t start = shmkit_now_ns(), period = 1000000000ull / RATE;
	for (uint64_t i = 0; i < (uint64_t)RATE * p->seconds; i++) {
		sleep_until(start + i * period);
		t_msg_fill(msg, sizeof msg, i);
		if (ch)
			err = shmkit_chan_send(ch, msg, sizeof msg);
		else if (ps)
			err = shmkit_pubsub_send(ps, msg, sizeof msg);
		else
			err = shmkit_queue_send(q, msg, sizeof msg);
		if (err)
			return 11;
	}
	return 0;
}

/* Starts a producer of `kind` on a fresh tracked name and waits until it is sending. */
static pid_t start_producer(struct producer *p, char *name, size_t cap, uint32_t kind,
			    unsigned seconds)
{
	p->name = t_name_tracked(name, cap, "obs", SHMKIT_BACKEND_POSIX);
	p->kind = kind;
	p->seconds = seconds;
	pid_t pid = t_fork(producer_main, p);
	struct shmkit_segment_info inf;
	T_WAIT_FOR(shmkit_segment_stat(name, NULL, &inf) == 0 && inf.status == 0);
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
	t_sleep_ms(200); /* let it settle into its schedule */
	return pid;
}

static void stop_producer(pid_t pid)
{
	kill(pid, SIGKILL);
	t_wait(pid, 10000);
}

/* The number after "key": in a JSON text, or NAN. */
static double json_num(const char *text, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\":", key);
	const char *p = strstr(text, pat);
	if (!p)
		return NAN;
	char *end;
	double v = strtod(p + strlen(pat), &end);
	return end == p + strlen(pat) ? NAN : v;
}

static bool near_rate(double v)
{
	return fabs(v - RATE) <= RATE * 0.10;
}

/* --- top ------------------------------------------------------------------------------------- */

START_TEST(test_top_once_json)
{
	static const uint32_t kinds[] = {SHMKIT_KIND_STREAM, SHMKIT_KIND_PUBSUB, SHMKIT_KIND_QUEUE};
	char name[64];
	struct producer p;
	pid_t pid = start_producer(&p, name, sizeof name, kinds[_i], 10);
	struct t_run r = {0};
	double rate = NAN;
	for (int attempt = 0; attempt < 3 && !near_rate(rate); attempt++) {
		run_cli(&r, "top", "--once", "--json", "--interval", "2", "--filter", name);
		ck_assert_msg(r.status == 0, "top failed: %s", r.err);
		ck_assert_msg(strstr(r.out, name), "%s not in: %s", name, r.out);
		rate = json_num(r.out, "msgs_per_s");
	}
	ck_assert_msg(near_rate(rate), "msgs_per_s %.1f, want %d +- 10%%: %s", rate, RATE, r.out);
	ck_assert_msg(fabs(json_num(r.out, "bytes_per_s") - rate * MSG) <= rate * MSG * 0.01,
		      "bytes_per_s: %s", r.out);
	/* The producer is listed with its pid, alive; top itself is no party. */
	if (kinds[_i] != SHMKIT_KIND_QUEUE) {
		char want[96];
		snprintf(want, sizeof want, "\"pid\":%d,\"alive\":true", (int)pid);
		ck_assert_msg(strstr(r.out, want), "no %s in %s", want, r.out);
		ck_assert_msg(!strstr(r.out, "\"consumer\"") && !strstr(r.out, "\"subscriber\""),
			      "top attached: %s", r.out);
	}
	/* The producers create with the library's default lifetime. */
	ck_assert_msg(strstr(r.out, "\"lifetime\":\"ephemeral\""), "%s", r.out);
	/* Only the filtered object is shown. */
	ck_assert_msg(strstr(r.out, "\"objects\":[\n{") && !strstr(r.out, "},\n{"), "%s", r.out);
	stop_producer(pid);
	t_run_free(&r);
}
END_TEST

/* Subscribers appear with their lag and lost counts. */
START_TEST(test_top_subscribers)
{
	char name[64];
	struct producer p;
	pid_t pid = start_producer(&p, name, sizeof name, SHMKIT_KIND_PUBSUB, 10);
	struct shmkit_pubsub *sub;
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &sub), 0);
	t_sleep_ms(100); /* it receives nothing: its lag grows */
	struct t_run r = {0};
	run_cli(&r, "top", "--once", "--json", "--interval", "0.2", "--filter", name);
	ck_assert_int_eq(r.status, 0);
	char want[96];
	snprintf(want, sizeof want, "{\"role\":\"subscriber\",\"pid\":%d,\"alive\":true,\"slot\":",
		 (int)getpid());
	ck_assert_msg(strstr(r.out, want), "no %s in %s", want, r.out);
	ck_assert_msg(json_num(r.out, "lag") > 0, "lag: %s", r.out);
	/* The text view: one line per subscriber. */
	run_cli(&r, "top", "--once", "--interval", "0.2", "--filter", name);
	ck_assert_int_eq(r.status, 0);
	snprintf(want, sizeof want, "subscriber 0: pid %d alive, lag ", (int)getpid());
	ck_assert_msg(strstr(r.out, want), "no '%s' in %s", want, r.out);
	ck_assert_msg(strstr(r.out, "MSG/S") && strstr(r.out, "pubsub"), "%s", r.out);
	shmkit_pubsub_close(sub);
	stop_producer(pid);
	t_run_free(&r);
}
END_TEST

START_TEST(test_top_usage)
{
	struct t_run r = {0};
	run_cli(&r, "top", "--sort", "size");
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "invalid --sort 'size'"), "%s", r.err);
	run_cli(&r, "top", "--interval", "0");
	ck_assert_int_eq(r.status, 2);
	run_cli(&r, "top", "extra");
	ck_assert_int_eq(r.status, 2);
	/* --count ends the repeated text view. */
	run_cli(&r, "top", "--interval", "0.05", "--count", "3", "--filter", "no-such-*");
	ck_assert_int_eq(r.status, 0);
	int headers = 0;
	for (const char *s = r.out; (s = strstr(s, "shmkit top - ")); s++)
		headers++;
	ck_assert_int_eq(headers, 3);
	t_run_free(&r);
}
END_TEST

/* Full screen under a real terminal (tmux): shows the rows, quits on q. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

START_TEST(test_top_tmux)
{
	if (sh("command -v tmux >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_top_tmux: tmux is not installed (make deps as root installs it);"
				" not tested\n");
		return;
	}
	char name[64], sock[64], marker[128], screen[128];
	struct producer p;
	pid_t pid = start_producer(&p, name, sizeof name, SHMKIT_KIND_STREAM, 20);
	snprintf(sock, sizeof sock, "shmkit-test-%d", (int)getpid());
	snprintf(marker, sizeof marker, "/tmp/%s.exit", sock);
	snprintf(screen, sizeof screen, "/tmp/%s.screen", sock);
	unlink(marker);
	/* LSan would report ncurses' deliberately unfreed memory at exit in the ASan build. */
	ck_assert_int_eq(sh("tmux -L %s -f /dev/null new-session -d -x 160 -y 40 "
			    "'ASAN_OPTIONS=detect_leaks=0 %s top --interval 0.2 --filter \"%s\"; "
			    "echo $? > %s; sleep 60'",
			    sock, t_cli_path(), name, marker),
			 0);
	bool seen = false;
	for (int i = 0; i < 100 && !seen; i++) {
		t_sleep_ms(100);
		sh("tmux -L %s capture-pane -p > %s 2>/dev/null", sock, screen);
		FILE *f = fopen(screen, "r");
		char buf[16384] = "";
		if (f) {
			buf[fread(buf, 1, sizeof buf - 1, f)] = '\0';
			fclose(f);
		}
		seen = strstr(buf, name) && strstr(buf, "stream") && strstr(buf, "q quit");
		if (i == 99)
			fprintf(stderr, "screen:\n%s\n", buf);
	}
	ck_assert_msg(seen, "the row of %s never showed", name);
	sh("tmux -L %s send-keys q", sock);
	T_WAIT_FOR(access(marker, F_OK) == 0);
	t_sleep_ms(50); /* the shell's echo may still be writing */
	char st[16] = "";
	FILE *f = fopen(marker, "r");
	if (f) {
		if (!fgets(st, sizeof st, f))
			st[0] = '\0';
		fclose(f);
	}
	sh("tmux -L %s kill-server 2>/dev/null", sock);
	unlink(marker);
	unlink(screen);
	stop_producer(pid);
	ck_assert_msg(strcmp(st, "0\n") == 0, "top did not quit on q with status 0 (got '%s')", st);
}
END_TEST

/* --- hz --------------------------------------------------------------------------------------- */

START_TEST(test_hz_rate)
{
	static const uint32_t kinds[] = {SHMKIT_KIND_STREAM, SHMKIT_KIND_PUBSUB, SHMKIT_KIND_QUEUE};
	static const char *const method[] = {"\"method\":\"counters\"", "\"method\":\"subscriber\"",
					     "\"method\":\"counters\""};
	char name[64];
	struct producer p;
	pid_t pid = start_producer(&p, name, sizeof name, kinds[_i], 12);
	struct t_run r = {0};
	double rate = NAN, mean = NAN;
	for (int attempt = 0; attempt < 3 && !(near_rate(rate) && near_rate(1 / mean)); attempt++) {
		run_cli(&r, "hz", name, "--window", "2", "--json");
		ck_assert_msg(r.status == 0, "hz failed: %s", r.err);
		rate = json_num(r.out, "rate");
		mean = json_num(r.out, "mean");
	}
	ck_assert_msg(strstr(r.out, method[_i]), "%s", r.out);
	ck_assert_msg(near_rate(rate), "rate %.1f, want %d +- 10%%: %s", rate, RATE, r.out);
	ck_assert_msg(near_rate(1 / mean), "mean inter-arrival %.6f s: %s", mean, r.out);
	double mn = json_num(r.out, "min"), mx = json_num(r.out, "max");
	ck_assert_msg(mn <= mean && mean <= mx && json_num(r.out, "stddev") >= 0, "%s", r.out);
	/* On a stream hz took nothing: every message is still in the ring. */
	if (kinds[_i] == SHMKIT_KIND_STREAM) {
		struct shmkit_chan *ob;
		struct shmkit_chan_stats st;
		ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ob), 0);
		shmkit_chan_stats(ob, &st);
		shmkit_chan_close(ob);
		ck_assert(st.msgs_recv == 0 && st.consumer_pid == 0);
	}
	/* The text form. */
	run_cli(&r, "hz", name, "--window", "0.2");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, " msg/s") && strstr(r.out, "inter-arrival: mean "), "%s", r.out);
	stop_producer(pid);
	t_run_free(&r);
}
END_TEST

START_TEST(test_hz_errors)
{
	char name[64];
	struct t_run r = {0};
	run_cli(&r, "hz", t_name(name, sizeof name, "nosuch"), "--window", "0.1");
	ck_assert_int_eq(r.status, 1);
	struct shmkit_segment *seg = t_raw_segment(name, sizeof name);
	run_cli(&r, "hz", name, "--window", "0.1");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "is a raw, not a stream, pub/sub channel or queue") ||
			      strstr(r.err, "not a stream, pub/sub channel or queue"),
		      "%s", r.err);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	run_cli(&r, "hz");
	ck_assert_int_eq(r.status, 2);
	t_run_free(&r);
}
END_TEST

/* --- record / replay ----------------------------------------------------------------------- */

/* An independent reader of the recording format (the byte table in shmkit(1)). */
struct rec {
	uint64_t t;
	uint32_t len;
	const uint8_t *body;
};

static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1)));
	}
	return ~crc;
}

static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void wr_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	uint8_t *buf = NULL;
	size_t cap = 0;
	*len = 0;
	for (;;) {
		if (*len == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		size_t n = fread(buf + *len, 1, cap - *len, f);
		if (n == 0)
			break;
		*len += n;
	}
	fclose(f);
	return buf;
}

/* Parses a whole recording, failing the test on any defect; returns the record count. */
static int parse_rec(const uint8_t *d, size_t n, struct rec *out, int max)
{
	ck_assert_uint_ge(n, 32);
	ck_assert(memcmp(d, "SHMKREC", 8) == 0);
	ck_assert_uint_eq(le(d + 8, 2), 1);
	ck_assert_uint_eq(le(d + 28, 4), crc32_ieee(0, d, 28));
	int k = 0;
	for (size_t off = le(d + 10, 2); off < n; k++) {
		ck_assert_uint_ge(n - off, 16);
		uint32_t len = (uint32_t)le(d + off + 8, 4);
		ck_assert_uint_ge(n - off - 16, len);
		ck_assert_uint_eq(le(d + off + 12, 4), crc32_ieee(crc32_ieee(0, d + off, 12), d + off + 16, len));
		ck_assert_int_lt(k, max);
		out[k] = (struct rec){le(d + off, 8), len, d + off + 16};
		off += 16 + len;
	}
	return k;
}

static void tmp_path(char *buf, size_t cap, const char *tag)
{
	snprintf(buf, cap, "/tmp/shmkit-test-%d-%s.rec", (int)getpid(), tag);
}

/* Starts `record NAME FILE` and waits until it holds the consumer role of the stream. */
static void start_recorder(struct t_proc *p, const char *name, const char *file, const char *opt)
{
	if (opt)
		start_cli(p, "record", name, file, opt);
	else
		start_cli(p, "record", name, file);
	struct shmkit_chan *ob;
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ob), 0);
	struct shmkit_chan_stats st = {0};
	T_WAIT_FOR(shmkit_chan_stats(ob, &st) == 0 && st.consumer_pid == p->pid);
	shmkit_chan_close(ob);
	ck_assert_int_eq(st.consumer_pid, p->pid);
}

/* A stream, created and left without a producer (replay takes the role). */
static void make_stream(char *name, size_t cap, const char *tag)
{
	struct shmkit_chan *ch;
	t_name_tracked(name, cap, tag, SHMKIT_BACKEND_POSIX);
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, NULL, &ch), 0);
	shmkit_chan_detach(ch);
}

#define NREC 40
#define TOLERANCE_NS 250000000ull /* the documented replay tolerance on a loaded machine */

START_TEST(test_record_replay)
{
	char a[64], b[64], f1[128], f2[128], f3[128];
	tmp_path(f1, sizeof f1, "1");
	tmp_path(f2, sizeof f2, "2");
	tmp_path(f3, sizeof f3, "3");
	t_name_tracked(a, sizeof a, "reca", SHMKIT_BACKEND_POSIX);
	struct shmkit_chan *pa;
	ck_assert_int_eq(shmkit_chan_create(a, SHMKIT_CHAN_PRODUCER, NULL, &pa), 0);
	struct t_proc rec;
	start_recorder(&rec, a, f1, NULL);
	/* NREC messages of random sizes, random gaps of 0..30 ms. */
	uint64_t seed = t_seed(), start = shmkit_now_ns(), at = start;
	uint8_t msg[2048];
	size_t sent_len[NREC];
	for (int i = 0; i < NREC; i++) {
		at += t_rand(&seed) % 30000000u;
		sleep_until(at);
		sent_len[i] = 1 + t_rand(&seed) % 1500;
		t_msg_fill(msg, sent_len[i], (uint64_t)i);
		ck_assert_int_eq(shmkit_chan_send(pa, msg, sent_len[i]), 0);
	}
	shmkit_chan_close(pa); /* the end of the stream: the recorder stops */
	struct t_run r = {0};
	t_run_collect(&r, &rec, 20000);
	ck_assert_msg(r.status == 0, "record: %s", r.err);
	ck_assert_msg(strstr(r.err, "record: 40 messages"), "%s", r.err);

	/* Replay into another stream, recorded again. */
	make_stream(b, sizeof b, "recb");
	start_recorder(&rec, b, f2, NULL);
	struct t_run rr = {0};
	run_cli(&rr, "replay", f1, b);
	ck_assert_msg(rr.status == 0, "replay: %s", rr.err);
	t_run_collect(&r, &rec, 20000);
	ck_assert_msg(r.status == 0, "record: %s", r.err);

	size_t n1, n2;
	uint8_t *d1 = slurp(f1, &n1), *d2 = slurp(f2, &n2);
	struct rec r1[NREC], r2[NREC];
	ck_assert_int_eq(parse_rec(d1, n1, r1, NREC), NREC);
	ck_assert_int_eq(parse_rec(d2, n2, r2, NREC), NREC);
	ck_assert_uint_eq(le(d1 + 12, 4), SHMKIT_KIND_STREAM);
	for (int i = 0; i < NREC; i++) {
		ck_assert_uint_eq(r1[i].len, sent_len[i]);
		ck_assert_int_eq(t_msg_check(r1[i].body, r1[i].len, (uint64_t)i), 0);
		ck_assert_uint_eq(r2[i].len, r1[i].len);
		ck_assert(memcmp(r2[i].body, r1[i].body, r1[i].len) == 0);
		/* Spacing preserved: offsets from the first message agree within the tolerance. */
		int64_t o1 = (int64_t)(r1[i].t - r1[0].t), o2 = (int64_t)(r2[i].t - r2[0].t);
		ck_assert_msg(llabs(o2 - o1) <= (long long)TOLERANCE_NS,
			      "message %d: %lld ns after the first, recorded %lld", i, (long long)o2,
			      (long long)o1);
	}
	/* The original timeline lasted at least as long as its gaps; --speed 0 keeps the bytes. */
	make_stream(b, sizeof b, "recc");
	start_recorder(&rec, b, f3, "--json");
	run_cli(&rr, "replay", "--speed", "0", "-q", f1, b);
	ck_assert_msg(rr.status == 0 && rr.err[0] == '\0', "replay: %s", rr.err);
	t_run_collect(&r, &rec, 20000);
	/* --json: the summary of pub and sub, with what was recorded. */
	uint64_t total = 0;
	for (int i = 0; i < NREC; i++)
		total += sent_len[i];
	ck_assert_msg(strncmp(r.err, "{\"command\":\"record\",\"name\":", 26) == 0 &&
			      strstr(r.err, "\"kind\":\"stream\"") && strstr(r.err, "\"exit\":0}\n"),
		      "%s", r.err);
	ck_assert_msg(json_num(r.err, "messages") == NREC && json_num(r.err, "bytes") == (double)total,
		      "%s", r.err);
	run_cli(&rr, "replay", "--verify", "--json", f1);
	ck_assert_msg(rr.status == 0 && json_num(rr.out, "messages") == NREC &&
			      json_num(rr.out, "bytes") == (double)total &&
			      strstr(rr.out, "\"kind\":\"stream\"}\n"),
		      "%s", rr.out);
	size_t n3;
	uint8_t *d3 = slurp(f3, &n3);
	struct rec r3[NREC];
	ck_assert_int_eq(parse_rec(d3, n3, r3, NREC), NREC);
	for (int i = 0; i < NREC; i++)
		ck_assert(r3[i].len == r1[i].len && memcmp(r3[i].body, r1[i].body, r1[i].len) == 0);

	/* The Python reader in docs/ reads it too. */
	if (sh("command -v python3 >/dev/null 2>&1") == 0) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "python3 %s/../docs/shmkit_record.py %s | tail -n 1 | grep -qx '40 records'",
			 t_build_dir(), f1);
		ck_assert_msg(system(cmd) == 0, "docs/shmkit_record.py did not read %s", f1);
	} else {
		fprintf(stderr, "test_record_replay: python3 missing, docs/shmkit_record.py not run\n");
	}
	free(d1);
	free(d2);
	free(d3);
	unlink(f1);
	unlink(f2);
	unlink(f3);
	t_run_free(&r);
	t_run_free(&rr);
}
END_TEST

/* Writes a recording of three records (payload lengths 10, 20, 30) the test builds itself;
 * returns the offsets of the records in off[3]. */
static void write_recording(const char *path, uint8_t *d, size_t *n, size_t off[3], uint16_t version)
{
	memset(d, 0, 32);
	memcpy(d, "SHMKREC", 8);
	wr_le(d + 8, version, 2);
	wr_le(d + 10, 32, 2);
	wr_le(d + 12, SHMKIT_KIND_STREAM, 4);
	wr_le(d + 16, 1700000000000000000ull, 8);
	wr_le(d + 28, crc32_ieee(0, d, 28), 4);
	size_t o = 32;
	for (int i = 0; i < 3; i++) {
		uint32_t len = 10u * (uint32_t)(i + 1);
		off[i] = o;
		wr_le(d + o, 1000000ull * (uint64_t)i, 8);
		wr_le(d + o + 8, len, 4);
		memset(d + o + 16, 'a' + i, len);
		wr_le(d + o + 12, crc32_ieee(crc32_ieee(0, d + o, 12), d + o + 16, len), 4);
		o += 16 + len;
	}
	*n = o;
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(d, 1, o, f), o);
	fclose(f);
}

static void write_bytes(const char *path, const uint8_t *d, size_t n)
{
	FILE *f = fopen(path, "wb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(d, 1, n, f), n);
	fclose(f);
}

/* Runs `replay --verify` (and a replay into a name that does not exist, which must fail on
 * the file before it looks for the name) and checks the error names `want`. */
static void expect_bad(const char *path, const char *want)
{
	struct t_run r = {0};
	run_cli(&r, "replay", "--verify", path);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, want), "want '%s', got: %s", want, r.err);
	run_cli(&r, "replay", path, "no-such-channel-for-replay");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, want), "want '%s', got: %s", want, r.err);
	if (sh("command -v python3 >/dev/null 2>&1") == 0) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "python3 %s/../docs/shmkit_record.py %s 2>&1 | grep -qF '%s'",
			 t_build_dir(), path, want);
		ck_assert_msg(system(cmd) == 0, "docs/shmkit_record.py did not report '%s'", want);
	}
	t_run_free(&r);
}

START_TEST(test_replay_corrupt)
{
	char path[128], want[128];
	tmp_path(path, sizeof path, "bad");
	uint8_t d[256], e[256];
	size_t n, off[3];
	write_recording(path, d, &n, off, 1);
	struct t_run r = {0};
	run_cli(&r, "replay", "--verify", path);
	ck_assert_msg(r.status == 0 && strstr(r.out, ": 3 messages, 60 bytes over 0.002000 s"), "%s%s",
		      r.out, r.err);

	/* Cut inside the second record's header, then inside its payload. */
	write_bytes(path, d, off[1] + 10);
	snprintf(want, sizeof want, "truncated record at offset %zu", off[1]);
	expect_bad(path, want);
	write_bytes(path, d, off[1] + 16 + 5);
	expect_bad(path, want);
	/* One payload byte of the third record flipped. */
	memcpy(e, d, n);
	e[off[2] + 20] ^= 0x40;
	write_bytes(path, e, n);
	snprintf(want, sizeof want, "corrupt record at offset %zu (checksum mismatch)", off[2]);
	expect_bad(path, want);
	/* A length field changed: caught by the checksum or as truncation, at that record. */
	memcpy(e, d, n);
	e[off[0] + 8] = 11;
	write_bytes(path, e, n);
	snprintf(want, sizeof want, "record at offset %zu", off[0]);
	expect_bad(path, want);
	/* The header. */
	memcpy(e, d, n);
	e[20] ^= 1;
	write_bytes(path, e, n);
	expect_bad(path, "corrupt header at offset 0 (checksum mismatch)");
	write_recording(path, d, &n, off, 2);
	expect_bad(path, "recording format version 2 is not supported");
	write_bytes(path, (const uint8_t *)"hello, world", 12);
	expect_bad(path, "not a shmkit recording");
	unlink(path);
	t_run_free(&r);
}
END_TEST

/* --- usage, suggestions, completion --------------------------------------------------------- */

START_TEST(test_usage_and_suggestions)
{
	struct t_run r = {0};
	/* Plain `shmkit`: the usage (with every command) on stderr, status 2. */
	run_cli(&r, NULL);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.err, "Usage: shmkit COMMAND") && strstr(r.err, "  top ") &&
			      strstr(r.err, "  replay "),
		      "%s", r.err);
	static const char *const typo[][2] = {
		{"sta", "stat"}, {"stats", "stat"}, {"tpo", "top"}, {"recrod", "record"}, {"hlep", "help"},
	};
	for (size_t i = 0; i < sizeof typo / sizeof typo[0]; i++) {
		char want[96];
		run_cli(&r, typo[i][0]);
		ck_assert_int_eq(r.status, 2);
		snprintf(want, sizeof want, "unknown command '%s'; did you mean '%s'?", typo[i][0], typo[i][1]);
		ck_assert_msg(strstr(r.err, want), "want '%s', got: %s", want, r.err);
	}
	run_cli(&r, "frobnicate");
	ck_assert_msg(r.status == 2 && !strstr(r.err, "did you mean"), "%s", r.err);
	t_run_free(&r);
}
END_TEST

/* Runs `script` in bash with the completion sourced and the CLI first on PATH; returns
 * what it printed (malloc'ed). */
static char *bash_completion(const char *script)
{
	char dir[512], cmd[4096];
	snprintf(dir, sizeof dir, "%s", t_cli_path());
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	snprintf(cmd, sizeof cmd,
		 "PATH='%s':\"$PATH\" ASAN_OPTIONS=detect_leaks=0 bash --norc -c '"
		 "source %s/../completion/shmkit.bash || exit 9; %s' 2>&1",
		 dir, t_build_dir(), script);
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	char *out = calloc(1, 65536);
	ck_assert_ptr_nonnull(out);
	size_t n = fread(out, 1, 65535, f);
	out[n] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	return out;
}

START_TEST(test_bash_completion)
{
	if (sh("command -v bash >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_bash_completion: bash is not installed; not tested\n");
		return;
	}
	char *out = bash_completion("complete -p shmkit");
	ck_assert_msg(strstr(out, "complete -F _shmkit shmkit"), "%s", out);
	free(out);
	/* Commands, options, object names. */
	out = bash_completion("COMP_WORDS=(shmkit re); COMP_CWORD=1; _shmkit; echo \"${COMPREPLY[*]}\"");
	ck_assert_msg(strcmp(out, "record replay\n") == 0, "'%s'", out);
	free(out);
	out = bash_completion("COMP_WORDS=(shmkit top --int); COMP_CWORD=2; _shmkit; echo \"${COMPREPLY[*]}\"");
	ck_assert_msg(strcmp(out, "--interval\n") == 0, "'%s'", out);
	free(out);
	/* The options of issue 16's items 4-6 (pub/sub summaries, rm and table get --json). */
	static const char *const opt[][3] = {
		{"sub", "--pro", "--progress\n"}, {"pub", "--q", "--quiet\n"},
		{"sub", "--j", "--json\n"},       {"rm", "--j", "--json\n"},
		{"table", "--j", "--json\n"},     {"pub", "--verb", "--verbose\n"},
	};
	for (size_t i = 0; i < sizeof opt / sizeof opt[0]; i++) {
		char line[160];
		snprintf(line, sizeof line,
			 "COMP_WORDS=(shmkit %s %s); COMP_CWORD=2; _shmkit; echo \"${COMPREPLY[*]}\"",
			 opt[i][0], opt[i][1]);
		out = bash_completion(line);
		ck_assert_msg(strcmp(out, opt[i][2]) == 0, "%s %s: '%s'", opt[i][0], opt[i][1], out);
		free(out);
	}
	char name[64], script[512];
	struct shmkit_chan *ch;
	t_name_tracked(name, sizeof name, "compl", SHMKIT_BACKEND_POSIX);
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, NULL, &ch), 0);
	/* The name cut after its unique run-and-process prefix. */
	char prefix[64];
	snprintf(prefix, sizeof prefix, "%.*s", (int)(strstr(name, "compl") - name + 3), name);
	snprintf(script, sizeof script,
		 "COMP_WORDS=(shmkit hz %s); COMP_CWORD=2; _shmkit; echo \"${COMPREPLY[*]}\"", prefix);
	out = bash_completion(script);
	char want[80];
	snprintf(want, sizeof want, "%s\n", name);
	ck_assert_msg(strcmp(out, want) == 0, "'%s', want '%s'", out, name);
	free(out);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
}
END_TEST

/* --- suite ------------------------------------------------------------------------------------ */

static Suite *obs_suite(void)
{
	Suite *s = suite_create("cli_obs");
	TCase *tc = t_tcase(s, "top", 120);
	tcase_add_loop_test(tc, test_top_once_json, 0, 3);
	tcase_add_test(tc, test_top_subscribers);
	tcase_add_test(tc, test_top_usage);
	tcase_add_test(tc, test_top_tmux);
	tc = t_tcase(s, "hz", 120);
	tcase_add_loop_test(tc, test_hz_rate, 0, 3);
	tcase_add_test(tc, test_hz_errors);
	tc = t_tcase(s, "record", 120);
	tcase_add_test(tc, test_record_replay);
	tcase_add_test(tc, test_replay_corrupt);
	tc = t_tcase(s, "usage", 60);
	tcase_add_test(tc, test_usage_and_suggestions);
	tcase_add_test(tc, test_bash_completion);
	return s;
}

int main(void)
{
	static Suite *(*const makers[])(void) = {obs_suite};
	return t_main(makers, 1);
}
