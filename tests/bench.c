/* Tests for `shmkit bench` (cli/bench.c over bench/lib/): argument parsing, the JSON shape,
 * short real runs with sane numbers, and cleanup (System V queues, children) even when the
 * run is interrupted. Never a timing threshold: the numbers are only checked for sanity
 * (positive, p50 <= p99 <= p99.9 <= max).
 *
 * The binary is $SHMKIT_CLI, else <builddir>/shmkit next to this test (found through
 * /proc/self/exe, so the sanitizer builds test their own CLI), else build/shmkit.
 */
#include <ctype.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* --- running the CLI (tests/testutil.c) ------------------------------------------------------ */

/* Runs the CLI with `args` (NULL-terminated) into *r (zero-initialized, or reused); after
 * `signal_after_ms` (when > 0) sends SIGINT. Kills it at `timeout_ms`. */
static void run_args(struct t_run *r, const char *const *args, int timeout_ms, int signal_after_ms)
{
	struct t_proc p;
	t_spawn_cli(&p, -1, -1, args);
	if (signal_after_ms > 0 && !t_pump(&p, NULL, signal_after_ms, 0)) {
		kill(p.pid, SIGINT);
		timeout_ms -= signal_after_ms;
	}
	t_run_collect(r, &p, timeout_ms);
}

#define RUN(r, timeout, ...) run_args((r), (const char *const[]){__VA_ARGS__, NULL}, (timeout), 0)

static void assert_usage_error(struct t_run *r)
{
	ck_assert_msg(r->status == 2, "exit %d, stderr: %s", r->status, r->err);
	ck_assert_msg(r->out[0] == '\0', "stdout: %s", r->out);
	ck_assert_msg(strncmp(r->err, "shmkit: bench: ", 15) == 0, "stderr: %s", r->err);
	ck_assert_msg(strstr(r->err, "Try 'shmkit bench --help'"), "no hint in: %s", r->err);
}

/* --- a small JSON parser ---------------------------------------------------------------------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	double num;
	char *str;          /* J_STR */
	struct jval *items; /* J_ARR: values; J_OBJ: values, with keys in `keys` */
	char **keys;
	int n;
};

struct jparser {
	const char *p;
	const char *err;
};

static void jskip(struct jparser *j)
{
	while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
		j->p++;
}

static bool jvalue(struct jparser *j, struct jval *v);

static bool jstring(struct jparser *j, char **out)
{
	if (*j->p != '"') {
		j->err = "string expected";
		return false;
	}
	j->p++;
	size_t cap = 16, len = 0;
	char *s = malloc(cap);
	for (;;) {
		char c = *j->p++;
		if (c == '\0' || (unsigned char)c < 0x20) {
			free(s);
			j->err = "bad string";
			return false;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			char e = *j->p++;
			if (e == 'u') {
				for (int i = 0; i < 4; i++)
					if (!isxdigit((unsigned char)*j->p++)) {
						free(s);
						j->err = "bad \\u escape";
						return false;
					}
				c = '?';
			} else if (strchr("\"\\/bfnrt", e) && e) {
				c = e == 'n' ? '\n' : e == 't' ? '\t' : e;
			} else {
				free(s);
				j->err = "bad escape";
				return false;
			}
		}
		if (len + 2 > cap)
			s = realloc(s, cap *= 2);
		s[len++] = c;
	}
	s[len] = '\0';
	*out = s;
	return true;
}

static bool jvalue(struct jparser *j, struct jval *v)
{
	memset(v, 0, sizeof *v);
	jskip(j);
	char c = *j->p;
	if (c == '{' || c == '[') {
		bool obj = c == '{';
		v->type = obj ? J_OBJ : J_ARR;
		j->p++;
		jskip(j);
		if (*j->p == (obj ? '}' : ']')) {
			j->p++;
			return true;
		}
		for (;;) {
			v->items = realloc(v->items, (size_t)(v->n + 1) * sizeof *v->items);
			v->keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
			v->keys[v->n] = NULL;
			jskip(j);
			if (obj) {
				if (!jstring(j, &v->keys[v->n]))
					return false;
				jskip(j);
				if (*j->p++ != ':') {
					j->err = "':' expected";
					return false;
				}
			}
			if (!jvalue(j, &v->items[v->n]))
				return false;
			v->n++;
			jskip(j);
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p++ != (obj ? '}' : ']')) {
				j->err = "',' or end expected";
				return false;
			}
			return true;
		}
	}
	if (c == '"') {
		v->type = J_STR;
		return jstring(j, &v->str);
	}
	if (strncmp(j->p, "null", 4) == 0) {
		j->p += 4;
		return true;
	}
	if (strncmp(j->p, "true", 4) == 0 || strncmp(j->p, "false", 5) == 0) {
		v->type = J_BOOL;
		v->num = c == 't';
		j->p += c == 't' ? 4 : 5;
		return true;
	}
	char *end;
	v->type = J_NUM;
	v->num = strtod(j->p, &end);
	if (end == j->p || !(c == '-' || isdigit((unsigned char)c))) {
		j->err = "value expected";
		return false;
	}
	j->p = end;
	return true;
}

static void jfree(struct jval *v)
{
	for (int i = 0; i < v->n; i++) {
		jfree(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	free(v->str);
}

static bool jparse(const char *text, struct jval *v, const char **err)
{
	struct jparser j = {.p = text};
	bool ok = jvalue(&j, v);
	if (ok) {
		jskip(&j);
		if (*j.p) {
			ok = false;
			j.err = "trailing data";
		}
	}
	*err = j.err;
	return ok;
}

static const struct jval *jget(const struct jval *obj, const char *key)
{
	for (int i = 0; obj->type == J_OBJ && i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

static double jnum(const struct jval *obj, const char *key)
{
	const struct jval *v = jget(obj, key);
	ck_assert_msg(v && v->type == J_NUM, "%s is not a number", key);
	return v->num;
}

/* The row for `name` at `size` in a parsed array, or NULL. */
static const struct jval *jrow(const struct jval *arr, const char *name, double size)
{
	for (int i = 0; i < arr->n; i++) {
		const struct jval *nm = jget(&arr->items[i], "name");
		const struct jval *sz = jget(&arr->items[i], "size");
		if (nm && nm->type == J_STR && strcmp(nm->str, name) == 0 && sz && sz->num == size)
			return &arr->items[i];
	}
	return NULL;
}

static const char *const row_keys[] = {"mechanism", "mode", "size", "rtt_p50_ns", "rtt_p99_ns",
				       "rtt_p999_ns", "rtt_max_ns", "rtt_samples", "msgs_per_s",
				       "bytes_per_s", "ratio_to_floor"};

/* Every row has every documented key with the right type (number or null). */
static void check_shape(const struct jval *arr)
{
	ck_assert_int_eq(arr->type, J_ARR);
	ck_assert_int_gt(arr->n, 0);
	for (int i = 0; i < arr->n; i++) {
		const struct jval *o = &arr->items[i];
		ck_assert_int_eq(o->type, J_OBJ);
		for (size_t k = 0; k < sizeof row_keys / sizeof row_keys[0]; k++) {
			const struct jval *v = jget(o, row_keys[k]);
			ck_assert_msg(v, "row %d has no %s", i, row_keys[k]);
			if (k < 2)
				ck_assert_msg(v->type == J_STR, "%s is not a string", row_keys[k]);
			else
				ck_assert_msg(v->type == J_NUM || v->type == J_NULL, "%s: bad type",
					      row_keys[k]);
		}
		const struct jval *e = jget(o, "error");
		ck_assert_msg(e && (e->type == J_NULL || e->type == J_STR), "row %d: error", i);
	}
}

/* p50 <= p99 <= p99.9 <= max, all positive; a percentile is there exactly when the sample
 * count supports it (p99: 100 samples, p99.9: 1 000), else null. */
static void check_rtt(const struct jval *row)
{
	double n = jnum(row, "rtt_samples");
	double p50 = jnum(row, "rtt_p50_ns"), max = jnum(row, "rtt_max_ns");
	const struct jval *v99 = jget(row, "rtt_p99_ns"), *v999 = jget(row, "rtt_p999_ns");
	ck_assert_msg(v99 && v999, "percentile keys");
	ck_assert_msg((v99->type == J_NUM) == (n >= 100), "p99 with %g samples", n);
	ck_assert_msg((v999->type == J_NUM) == (n >= 1000), "p99.9 with %g samples", n);
	double p99 = v99->type == J_NUM ? v99->num : p50;
	double p999 = v999->type == J_NUM ? v999->num : p99;
	ck_assert_msg(n > 0 && p50 > 0 && p50 <= p99 && p99 <= p999 && p999 <= max,
		      "percentiles: %g %g %g %g", p50, p99, p999, max);
	ck_assert_msg(jnum(row, "ratio_to_floor") > 0, "ratio_to_floor");
	const struct jval *e = jget(row, "error");
	ck_assert_msg(e && e->type == J_NULL, "error set");
}

/* --- tests ------------------------------------------------------------------------------- */

START_TEST(test_usage_errors)
{
	static const char *const bad[][3] = {
		{"--sizes", "0", NULL},         {"--sizes", "abc", NULL},
		{"--sizes", "-64", NULL},       {"--sizes", "64,huge", NULL},
		{"--sizes", "17M", NULL},       {"--sizes", "4Q", NULL},
		{"--mechanisms", "bogus", NULL}, {"--mechanisms", "floor,nope", NULL},
		{"--cpus", "0", NULL},          {"--cpus", "1,1", NULL},
		{"--cpus", "a,b", NULL},        {"--cpus", "0,4095", NULL},
		{"--duration", "0", NULL},      {"--duration", "x", NULL},
		{"--bogus", NULL, NULL},        {"extra", NULL, NULL},
		{"--sizes", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct t_run r = {0};
		const char *args[] = {"bench", bad[i][0], bad[i][1], NULL};
		run_args(&r, args, 20000, 0);
		assert_usage_error(&r);
		t_run_free(&r);
	}
}
END_TEST

START_TEST(test_help_and_list)
{
	struct t_run r = {0};
	RUN(&r, 20000, "bench", "--help");
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "Usage: shmkit bench"));
	t_run_free(&r);
	RUN(&r, 20000, "bench", "--list");
	ck_assert_int_eq(r.status, 0);
	static const char *const names[] = {"floor", "ring", "shmkit-spin", "shmkit-block",
					    "shmkit-pubsub", "shmkit-queue", "pipe",
					    "unix-stream", "unix-seqpacket", "posix-mq", "sysv-mq",
					    "eventfd", "tcp"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		ck_assert_msg(strstr(r.out, names[i]), "--list lacks %s", names[i]);
	t_run_free(&r);
	RUN(&r, 20000, "help", "bench");
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "--mechanisms"));
	t_run_free(&r);
}
END_TEST

/* The smoke test: a --quick run of two mechanisms at one size, JSON parsed. */
START_TEST(test_quick_json)
{
	struct t_run r = {0};
	RUN(&r, 90000, "bench", "--quick", "--duration", "1", "--sizes", "64", "--mechanisms",
	    "floor,shmkit-spin", "--json");
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	struct jval v;
	const char *err = NULL;
	ck_assert_msg(jparse(r.out, &v, &err), "bad JSON (%s): %s", err, r.out);
	check_shape(&v);
	ck_assert_int_eq(v.n, 2);
	const struct jval *fl = jrow(&v, "floor", 64), *sk = jrow(&v, "shmkit-spin", 64);
	ck_assert_ptr_nonnull(fl);
	ck_assert_ptr_nonnull(sk);
	check_rtt(fl);
	check_rtt(sk);
	ck_assert_str_eq(jget(sk, "mechanism")->str, "shmkit");
	ck_assert_str_eq(jget(sk, "mode")->str, "spin");
	ck_assert(jnum(fl, "ratio_to_floor") == 1.0);
	double mps = jnum(sk, "msgs_per_s"), bps = jnum(sk, "bytes_per_s");
	ck_assert_msg(mps > 0 && bps > 0, "throughput %g %g", mps, bps);
	ck_assert_msg(bps > mps * 63 && bps < mps * 65, "bytes_per_s = 64 x msgs_per_s");
	ck_assert(jget(fl, "msgs_per_s")->type == J_NULL); /* the floor is latency only */
	/* Progress went to stderr, not into the JSON. */
	ck_assert_ptr_nonnull(strstr(r.err, "shmkit bench"));
	jfree(&v);

	/* The many-party channels on the same drivers: pub/sub (one subscriber) and queue. */
	RUN(&r, 90000, "bench", "--quick", "--duration", "1", "--sizes", "64,4K", "--mechanisms",
	    "shmkit-pubsub,shmkit-queue,ring-inband", "--json");
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_msg(jparse(r.out, &v, &err), "bad JSON (%s): %s", err, r.out);
	check_shape(&v);
	static const char *const many[] = {"shmkit-pubsub", "shmkit-queue"};
	for (size_t i = 0; i < 2; i++) {
		for (size_t size = 64; size <= 4096; size *= 64) {
			const struct jval *row = jrow(&v, many[i], size);
			ck_assert_msg(row, "no row for %s at %zu B", many[i], size);
			check_rtt(row);
			ck_assert_str_eq(jget(row, "mechanism")->str, many[i]);
			ck_assert_msg(jnum(row, "msgs_per_s") > 0, "%s: no throughput", many[i]);
		}
	}
	/* The in-band reference ring (bench/chan): it checks every byte it receives, so a
	 * row means its records crossed the ring wrap (4 KiB in 1 MiB) intact. */
	for (size_t size = 64; size <= 4096; size *= 64) {
		const struct jval *row = jrow(&v, "ring-inband", size);
		ck_assert_msg(row, "no row for ring-inband at %zu B", size);
		check_rtt(row);
		ck_assert_msg(jnum(row, "msgs_per_s") > 0, "ring-inband: no throughput");
	}
	jfree(&v);
	t_run_free(&r);
}
END_TEST

/* The Markdown table, --json=FILE next to it, two sizes, kernel mechanisms. */
START_TEST(test_quick_table_and_json_file)
{
	char path[] = "/tmp/shmkit-bench-test.XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd);
	char opt[64];
	snprintf(opt, sizeof opt, "--json=%s", path);
	struct t_run r = {0};
	RUN(&r, 90000, "bench", "--quick", "--duration", "1", "--sizes", "64,4K", "--mechanisms",
	    "pipe,unix-seqpacket,eventfd", "--cpus", "none", opt);
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "| mechanism | size | RTT p50 |"));
	ck_assert_ptr_nonnull(strstr(r.out, "| × floor |"));
	ck_assert_ptr_nonnull(strstr(r.out, "| pipe | 4 KiB |"));
	ck_assert_ptr_nonnull(strstr(r.out, "Placement: not pinned; floor round trip p50:"));
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof text - 1, f);
	text[n] = '\0';
	fclose(f);
	unlink(path);
	struct jval v;
	const char *err = NULL;
	ck_assert_msg(jparse(text, &v, &err), "bad JSON (%s): %s", err, text);
	check_shape(&v);
	ck_assert_int_eq(v.n, 8); /* (floor + 3) x 2 sizes */
	static const char *const names[] = {"floor", "pipe", "unix-seqpacket", "eventfd"};
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < 4; i++) {
			const struct jval *row = jrow(&v, names[i], s ? 4096 : 64);
			ck_assert_msg(row, "no row for %s", names[i]);
			check_rtt(row);
			if (i > 0)
				ck_assert(jnum(row, "msgs_per_s") > 0);
		}
	jfree(&v);
	t_run_free(&r);
}
END_TEST

/* The number of System V message queues on the system. */
static int sysv_queues(void)
{
	FILE *f = fopen("/proc/sysvipc/msg", "r");
	if (!f)
		return 0;
	int n = -1; /* header line */
	char line[512];
	while (fgets(line, sizeof line, f))
		n++;
	fclose(f);
	return n;
}

/* Queues are removed after a run, and after an interrupted one; the interrupted run says so
 * and exits 1. */
START_TEST(test_cleanup)
{
	int before = sysv_queues();
	struct t_run r = {0};
	RUN(&r, 90000, "bench", "--quick", "--duration", "1", "--sizes", "100", "--mechanisms",
	    "sysv-mq,posix-mq,tcp,unix-stream");
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_ptr_nonnull(strstr(r.out, "| System V message queue | 100 B |"));
	t_run_free(&r);
	ck_assert_int_eq(sysv_queues(), before);

	const char *args[] = {"bench", "--duration", "30", "--sizes", "64", "--mechanisms",
			      "sysv-mq,shmkit-block", NULL};
	run_args(&r, args, 30000, 1500);
	ck_assert_msg(r.status == 1, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_msg(strstr(r.err, "interrupted"), "stderr: %s", r.err);
	t_run_free(&r);
	ck_assert_int_eq(sysv_queues(), before);
}
END_TEST

/* shmkit bench --pubsub: a short real run of every configuration (the message counts are
 * checked by the benchmark itself: a lost or duplicated message fails the run), and its
 * argument errors. */
START_TEST(test_pubsub_run)
{
	static const char *const bad[][3] = {
		{"--size", "4", NULL},     {"--size", "5000", NULL}, {"--iters", "0", NULL},
		{"--iters", "x", NULL},    {"--iters", "-5", NULL},  {"--bogus", NULL, NULL},
		{"--size", NULL, NULL},    {"--pubsub-only", "--queue-only", NULL},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct t_run r = {0};
		const char *args[] = {"bench", "--pubsub", bad[i][0], bad[i][1], NULL};
		run_args(&r, args, 20000, 0);
		assert_usage_error(&r);
		t_run_free(&r);
	}
	struct t_run r = {0};
	RUN(&r, 120000, "bench", "--pubsub", "--iters", "20000", "--size", "128");
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_msg(strstr(r.out, "128-byte messages, 20000 per configuration"), "out: %s", r.out);
	for (int n = 1; n <= 8; n *= 2) {
		char row[32];
		snprintf(row, sizeof row, "\n| %d | ", n);
		ck_assert_msg(strstr(r.out, row), "no pub/sub row for %d: %s", n, r.out);
	}
	ck_assert_msg(strstr(r.out, "| 4 x 4 | "), "no 4 x 4 queue row: %s", r.out);
	t_run_free(&r);
	RUN(&r, 60000, "bench", "--pubsub", "--iters", "5000", "--queue-only");
	ck_assert_msg(r.status == 0, "exit %d, stderr: %s", r.status, r.err);
	ck_assert_msg(!strstr(r.out, "Publish/subscribe") && strstr(r.out, "| 2 x 2 | "), "out: %s",
		      r.out);
	t_run_free(&r);
}
END_TEST

static Suite *bench_suite(void)
{
	Suite *s = suite_create("bench");
	TCase *tc = t_tcase(s, "args", 120);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_help_and_list);
	tc = t_tcase(s, "runs", 300);
	tcase_add_test(tc, test_quick_json);
	tcase_add_test(tc, test_quick_table_and_json_file);
	tcase_add_test(tc, test_cleanup);
	tcase_add_test(tc, test_pubsub_run);
	return s;
}

int main(void)
{
	static Suite *(*const makers[])(void) = {bench_suite};
	return t_main(makers, 1);
}
