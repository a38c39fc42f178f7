/* Tests for the shmkit command-line tool (cli/): runs the real binary with fork/exec, captures
 * stdout, stderr and the exit status, and checks them against segments this suite creates
 * with the library, real processes and real kill -9.
 *
 * The binary is $SHMKIT_CLI, else <builddir>/shmkit next to this test (<builddir>/tests/cli,
 * found through /proc/self/exe, so the ASan and TSan builds test their own CLI), else
 * build/shmkit.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* The CLI's helpers, compiled in for the unit tests at the end (JSON escaping of bytes that
 * no segment name can carry, size formatting, number parsing edge cases). */
#include "../cli/util.c"
#include "../cli/suggest.c" /* util.c names kinds and guesses options with it */

#define DEMO_KEY 12345

static const char demo_expected[] = "Producer wrote: Message 1\n"
				    "Consumer read: Message 1\n"
				    "Producer wrote: Message 2\n"
				    "Consumer read: Message 2\n"
				    "Producer wrote: Message 3\n"
				    "Consumer read: Message 3\n"
				    "Producer wrote: Message 4\n"
				    "Consumer read: Message 4\n"
				    "Producer wrote: Message 5\n"
				    "Consumer read: Message 5\n"
				    "Consumer received END signal. Exiting...\n";

/* --- running the CLI (tests/testutil.c) ---------------------------------------------------- */

/* Runs the CLI with the given arguments to completion: run_cli("stat", name). The list ends
 * at the first NULL, so optional trailing arguments may be passed as NULL. The result stays
 * valid until the next run_cli(). */
#define run_cli(...) run_cli_args((const char *const[]){__VA_ARGS__, NULL})

static struct t_run *run_cli_args(const char *const *args)
{
	static struct t_run r;
	t_run_cli(&r, 20000, args);
	return &r;
}

/* Starts the CLI with `args`, stdin from in_fd (-1: inherited) and stdout to out_fd (-1: a
 * pipe that t_pump() reads). */
#define start_cli(p, in_fd, out_fd, ...) \
	t_spawn_cli(p, in_fd, out_fd, (const char *const[]){__VA_ARGS__, NULL})

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* A runtime error: exit 1 and exactly one line on stderr. */
static void assert_runtime_error(const struct t_run *r)
{
	ck_assert_msg(r->status == 1, "exit %d, stderr: %s", r->status, r->err);
	ck_assert_msg(count_lines(r->err) == 1 && r->err[strlen(r->err) - 1] == '\n',
		      "want one stderr line, got: '%s'", r->err);
	ck_assert_msg(strncmp(r->err, "shmkit: ", 8) == 0, "stderr: %s", r->err);
}

/* A usage error: exit 2, nothing on stdout, a message and a hint on stderr. */
static void assert_usage_error(const struct t_run *r)
{
	ck_assert_msg(r->status == 2, "exit %d, stdout: %s, stderr: %s", r->status, r->out, r->err);
	ck_assert_msg(r->out[0] == '\0', "stdout: %s", r->out);
	ck_assert_msg(strstr(r->err, "shmkit: ") == r->err, "stderr: %s", r->err);
	ck_assert_msg(strstr(r->err, "Try 'shmkit"), "no hint in: %s", r->err);
}

/* --- a tiny JSON parser: validates the whole text, extracts members by name ---------------- */

static const char *j_value(const char *p, int depth);

static const char *j_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *j_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned char c = (unsigned char)*p++;
		if (c == '"')
			return p;
		if (c < 0x20)
			return NULL; /* includes the terminating NUL */
		if (c == '\\') {
			c = (unsigned char)*p++;
			if (c == 'u') {
				for (int i = 0; i < 4; i++, p++)
					if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
					      (*p >= 'A' && *p <= 'F')))
						return NULL;
			} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
				return NULL;
			}
		}
	}
}

static const char *j_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return NULL;
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		if (!(*p >= '0' && *p <= '9'))
			return NULL;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return p;
}

static const char *j_container(const char *p, int depth, bool object)
{
	char close = object ? '}' : ']';
	if (depth > 32)
		return NULL;
	p = j_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			p = j_string(p);
			if (!p)
				return NULL;
			p = j_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = j_value(j_ws(p), depth + 1);
		if (!p)
			return NULL;
		p = j_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
		p = j_ws(p);
	}
}

static const char *j_value(const char *p, int depth)
{
	switch (*p) {
	case '{':
		return j_container(p, depth, true);
	case '[':
		return j_container(p, depth, false);
	case '"':
		return j_string(p);
	case 't':
		return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default:
		return j_number(p);
	}
}

/* The whole text is one JSON value (surrounded by blanks at most). */
static bool json_valid(const char *text)
{
	const char *end = j_value(j_ws(text), 0);
	return end && *j_ws(end) == '\0';
}

/* Copies the raw text of member `key` of the object at `obj` (e.g. "\"posix\"", "384",
 * "null") into val. Returns false if the object has no such member. */
static bool json_member(const char *obj, const char *key, char *val, size_t cap)
{
	const char *p = j_ws(obj);
	if (*p != '{')
		return false;
	p = j_ws(p + 1);
	while (*p == '"') {
		const char *kend = j_string(p);
		if (!kend)
			return false;
		bool match = (size_t)(kend - p - 2) == strlen(key) && strncmp(p + 1, key, strlen(key)) == 0;
		p = j_ws(kend);
		if (*p++ != ':')
			return false;
		p = j_ws(p);
		const char *vend = j_value(p, 1);
		if (!vend)
			return false;
		if (match) {
			snprintf(val, cap, "%.*s", (int)(vend - p), p);
			return true;
		}
		p = j_ws(vend);
		if (*p == ',')
			p = j_ws(p + 1);
	}
	return false;
}

/* In a JSON array of objects, finds the first object whose `key` member has the raw text
 * `want` (and, if key2 is given, whose key2 member has want2). Returns a pointer to it. */
static const char *json_find(const char *arr, const char *key, const char *want, const char *key2,
			     const char *want2)
{
	const char *p = j_ws(arr);
	if (*p != '[')
		return NULL;
	p = j_ws(p + 1);
	while (*p == '{') {
		const char *end = j_value(p, 1);
		if (!end)
			return NULL;
		char v[512];
		if (json_member(p, key, v, sizeof v) && strcmp(v, want) == 0 &&
		    (!key2 || (json_member(p, key2, v, sizeof v) && strcmp(v, want2) == 0)))
			return p;
		p = j_ws(end);
		if (*p == ',')
			p = j_ws(p + 1);
	}
	return NULL;
}

static void assert_member(const char *obj, const char *key, const char *want)
{
	char v[512];
	ck_assert_msg(json_member(obj, key, v, sizeof v), "no member %s in %.300s", key, obj);
	ck_assert_msg(strcmp(v, want) == 0, "%s is %s, want %s", key, v, want);
}

/* Attachment counts are snapshots: any shmkit_segment_list() or _stat() running elsewhere on
 * the machine (another suite, a user's `shmkit ls`) maps each segment's header for a moment,
 * which counts as one more attachment. Expectations that depend on a count are therefore
 * retried for a while: they still fail if the count never becomes what they want. */
#define SETTLE_TRIES 40
#define SETTLE_US 50000

/* Runs `shmkit gc [a1 [a2]]` until its output contains `want`; returns the last run. */
static struct t_run *run_gc_until(const char *want, const char *a1, const char *a2)
{
	struct t_run *r = NULL;
	for (int i = 0; i < SETTLE_TRIES; i++) {
		r = run_cli("gc", a1, a2);
		if (r->status == 0 && strstr(r->out, want))
			break;
		usleep(SETTLE_US);
	}
	return r;
}

/* --- segments and helpers --------------------------------------------------------------- */

static struct shmkit_segment *make_seg(const char *name, uint32_t backend, int32_t key,
				       uint32_t mode)
{
	struct shmkit_segment_opts o = {.backend = backend, .sysv_key = key, .mode = mode};
	struct shmkit_segment *seg = NULL;
	t_track(name, backend);
	int err = shmkit_segment_create(name, 4096, &o, &seg);
	ck_assert_msg(err == 0, "create %s: %s", name, shmkit_strerror(err));
	return seg;
}

static int seg_exists(const char *name, uint32_t backend, int32_t key)
{
	struct shmkit_segment_opts o = {.backend = backend, .sysv_key = key};
	struct shmkit_segment_info inf;
	return shmkit_segment_stat(name, &o, &inf) == 0;
}

/* Whether the named POSIX segment exists with its header complete (status 0: an open would
 * succeed), not just created and still being initialized. */
static int seg_ready(const char *name)
{
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_POSIX};
	struct shmkit_segment_info inf;
	return shmkit_segment_stat(name, &o, &inf) == 0 && inf.status == 0;
}

/* System V segments made without shmkit, removed when the test process exits. */
static int raw_ids[8];
static int nraw;
static pid_t raw_owner;

static void raw_cleanup(void)
{
	if (getpid() != raw_owner)
		return;
	for (int i = 0; i < nraw; i++)
		shmctl(raw_ids[i], IPC_RMID, NULL);
	nraw = 0;
}

static void raw_track(int id)
{
	if (raw_owner != getpid()) {
		raw_owner = getpid();
		nraw = 0;
		atexit(raw_cleanup);
	}
	ck_assert_int_lt(nraw, 8);
	raw_ids[nraw++] = id;
}

/* Creates a plain (non-shmkit) System V segment filled with random bytes at `key`, or at a
 * random free key when key is 0. Returns the key. */
static int32_t make_foreign_sysv(int32_t key, int *idp)
{
	uint64_t rng = t_seed() ^ (uint64_t)getpid() << 20;
	int id = -1;
	for (int tries = 0; tries < 100 && id < 0; tries++) {
		int32_t k = key ? key : (int32_t)(0x10000000 + t_rand(&rng) % 0x60000000);
		id = shmget((key_t)k, 4096, IPC_CREAT | IPC_EXCL | 0600);
		if (id >= 0)
			key = k;
		else
			ck_assert_msg(!key || errno == EEXIST, "shmget: %s", strerror(errno));
	}
	ck_assert_int_ge(id, 0);
	raw_track(id);
	unsigned char *p = shmat(id, NULL, 0);
	ck_assert_ptr_ne(p, (void *)-1);
	for (int i = 0; i < 4096; i++)
		p[i] = (unsigned char)t_rand(&rng);
	p[0] = 0x42; /* never the shmkit magic, and not zero */
	shmdt(p);
	*idp = id;
	return key;
}

static void assert_no_demo_segment(void)
{
	errno = 0;
	ck_assert_msg(shmget(DEMO_KEY, 0, 0) < 0 && errno == ENOENT,
		      "a System V segment at key %d remains", DEMO_KEY);
	struct t_run *r = run_cli("gc", "--dry-run");
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(!strstr(r->out, "demo") && !strstr(r->out, "key 12345"), "gc sees: %s",
		      r->out);
}

/* The pid of `pid`'s only child, waiting up to 5 s for it to appear. */
static pid_t child_of(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "re");
		ck_assert_msg(f, "%s: %s", path, strerror(errno));
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		int child = atoi(buf);
		if (child > 0)
			return child;
		usleep(10000);
	}
	ck_abort_msg("process %d has no child", (int)pid);
	return -1;
}

/* --- help, version, usage errors -------------------------------------------------------- */

static const char *const commands[] = {"demo", "ls", "stat", "rm", "gc", "pub", "sub"};

START_TEST(test_help)
{
	const char *forms[] = {"--help", "-h"};
	for (int i = 0; i < 2; i++) {
		struct t_run *r = run_cli(forms[i]);
		ck_assert_int_eq(r->status, 0);
		ck_assert_str_eq(r->err, "");
		ck_assert_msg(strncmp(r->out, "Usage: shmkit", 13) == 0, "%s", r->out);
		for (size_t c = 0; c < sizeof commands / sizeof *commands; c++) {
			char line[64];
			snprintf(line, sizeof line, "\n  %s ", commands[c]);
			ck_assert_msg(strstr(r->out, line), "no '%s' in --help", commands[c]);
		}
	}
	struct t_run *r = run_cli("help");
	ck_assert_int_eq(r->status, 0);
	ck_assert(strstr(r->out, "Commands:"));
}
END_TEST

START_TEST(test_command_help)
{
	for (size_t c = 0; c < sizeof commands / sizeof *commands; c++) {
		char want[64];
		snprintf(want, sizeof want, "Usage: shmkit %s", commands[c]);
		struct t_run *r = run_cli("help", commands[c]);
		ck_assert_msg(r->status == 0 && strncmp(r->out, want, strlen(want)) == 0,
			      "help %s: exit %d: %s", commands[c], r->status, r->out);
		ck_assert_str_eq(r->err, "");
		char *first = strdup(r->out);
		ck_assert_ptr_nonnull(first);
		r = run_cli(commands[c], "--help");
		ck_assert_int_eq(r->status, 0);
		ck_assert_str_eq(r->out, first); /* the same text both ways */
		r = run_cli(commands[c], "-h");
		ck_assert_int_eq(r->status, 0);
		ck_assert_str_eq(r->out, first);
		free(first);
	}
}
END_TEST

START_TEST(test_version)
{
	char want[64];
	snprintf(want, sizeof want, "shmkit %s\n", shmkit_version());
	struct t_run *r = run_cli("--version");
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->out, want);
	ck_assert_str_eq(r->out, "shmkit 0.1.0\n");
	ck_assert_str_eq(r->err, "");
	r = run_cli("-V");
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->out, want);
}
END_TEST

START_TEST(test_unknown_command)
{
	struct t_run *r = run_cli("frobnicate");
	assert_usage_error(r);
	ck_assert_msg(strstr(r->err, "unknown command 'frobnicate'"), "%s", r->err);
	/* No command at all: the usage on stderr, status 2. */
	r = run_cli(NULL);
	ck_assert_int_eq(r->status, 2);
	ck_assert_str_eq(r->out, "");
	ck_assert_msg(strncmp(r->err, "Usage: shmkit COMMAND", 21) == 0, "%s", r->err);
	assert_usage_error(run_cli("help", "frobnicate"));
	assert_usage_error(run_cli("help", "ls", "stat"));
	assert_usage_error(run_cli("--frobnicate"));
	assert_usage_error(run_cli("-z"));
}
END_TEST

START_TEST(test_usage_errors)
{
	/* Unknown options, missing arguments and extra arguments: exit 2 for every command. */
	static const char *const cases[][6] = {
		{"ls", "--bogus"},
		{"ls", "-z"},
		{"ls", "extra"},
		{"ls", "--json=1"},
		{"gc", "--dry-run=yes"},
		{"stat"},
		{"stat", "a", "b"},
		{"stat", "--sysv-key"},
		{"stat", "-k"},
		{"stat", "x", "--backend"},
		{"stat", "x", "--backend", "memfd"},
		{"stat", "x", "--backend", "bogus"},
		{"stat", "x", "--backend", "posix", "--sysv-key", "5"},
		{"stat", "a/b"},
		{"stat", "../etc"},
		{"rm"},
		{"rm", "-b", "sysv"},
		{"rm", "--sysv-key", "5", "a", "b"},
		{"rm", "ok", "bad/name"},
		{"gc", "extra"},
		{"gc", "--force"},
		{"demo", "extra"},
		{"demo", "--count"},
		{"demo", "--semaphores=1"},
		{"pub"},
		{"pub", "a", "b"},
		{"pub", "bad/name"},
		{"pub", "x", "--framing", "words"},
		{"pub", "x", "--framing"},
		{"pub", "x", "--create", "--capacity"},
		{"pub", "x", "--create", "--capacity", "1X"},
		{"pub", "x", "--create", "--capacity", "-1"},
		{"pub", "x", "--create", "--capacity", "0"},
		{"pub", "x", "--create", "--capacity", "1.5M"},
		{"pub", "x", "--create", "--capacity", "2048G"},
		{"pub", "x", "--create", "--capacity", " 1M"},
		{"pub", "x", "--create", "--capacity", "1MB"},
		{"pub", "x", "--create", "--capacity", "K"},
		{"pub", "x", "--create", "--max-msg", "0"},
		{"pub", "x", "-c", "--max-msg=1M", "--capacity=1M"},
		{"pub", "x", "--capacity", "1M"},
		{"pub", "x", "--max-msg", "1K"},
		{"pub", "x", "--timeout", "-1"},
		{"pub", "x", "--timeout", "1e3"},
		{"pub", "x", "--timeout", "1."},
		{"pub", "x", "--timeout", ".5"},
		{"pub", "x", "--timeout", "0.1234567891"},
		{"pub", "x", "--backend", "memfd"},
		{"pub", "x", "--create=yes"},
		{"sub"},
		{"sub", "x", "y"},
		{"sub", "../x"},
		{"sub", "x", "--keep=1"},
		{"sub", "x", "--framing", "raw2"},
		{"sub", "x", "--timeout", "abc"},
		{"sub", "x", "--timeout", ""},
		{"sub", "x", "--backend", "posix"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const char *const *a = cases[i];
		struct t_run *r = run_cli(a[0], a[1], a[2], a[3], a[4], a[5]);
		ck_assert_msg(r->status == 2, "case %zu (%s %s): exit %d", i, a[0], a[1] ? a[1] : "",
			      r->status);
		assert_usage_error(r);
	}
}
END_TEST

START_TEST(test_number_parsing)
{
	/* Strict: the whole argument must be a number in range. */
	static const char *const bad_counts[] = {"", "12x", "x12", "-1", " 5", "5 ", "+5", "0x10",
						 "99999999999", "1e3"};
	for (size_t i = 0; i < sizeof bad_counts / sizeof *bad_counts; i++) {
		struct t_run *r = run_cli("demo", "--count", bad_counts[i]);
		ck_assert_msg(r->status == 2, "--count '%s': exit %d", bad_counts[i], r->status);
		assert_usage_error(r);
	}
	static const char *const bad_keys[] = {"", "0", "0x0", "0x", "0x1g", "12345x", " 5", "5 ",
					       "0x100000000", "2147483648", "-2147483649", "0x-5",
					       "0x0x5", "--5"};
	for (size_t i = 0; i < sizeof bad_keys / sizeof *bad_keys; i++) {
		struct t_run *r = run_cli("stat", "--sysv-key", bad_keys[i]);
		ck_assert_msg(r->status == 2, "--sysv-key '%s': exit %d", bad_keys[i], r->status);
		assert_usage_error(r);
	}
	/* Valid keys that name no segment: a runtime error naming the key. */
	static const char *const ok_keys[][2] = {
		{"0x7ffffff1", "key 2147483633"}, {"2147483633", "key 2147483633"},
		{"0xFFFFFFF1", "key -15"},        {"-15", "key -15"},
	};
	for (size_t i = 0; i < sizeof ok_keys / sizeof *ok_keys; i++) {
		if (shmget((key_t)strtoll(ok_keys[i][1] + 4, NULL, 10), 0, 0) >= 0)
			continue; /* somebody uses that key: not our business */
		struct t_run *r = run_cli("stat", "--sysv-key", ok_keys[i][0]);
		assert_runtime_error(r);
		ck_assert_msg(strstr(r->err, ok_keys[i][1]), "%s: %s", ok_keys[i][0], r->err);
	}
}
END_TEST

/* --- demo ------------------------------------------------------------------------------------ */

/* The two demo variants: the stream channel (the default) and the foundation's segment +
 * semaphores (--semaphores). Loop tests get the variant as _i. */
static const char *const demo_variant[2][2] = {{"demo", NULL}, {"demo", "--semaphores"}};

START_TEST(test_demo_output)
{
	for (int v = 0; v < 2; v++) {
		const char *flag = demo_variant[v][1];
		/* A NULL flag ends the argument list: the default variant. */
		struct t_run *r = run_cli("demo", "-n", "5", flag);
		ck_assert_msg(r->status == 0, "%s: exit %d: %s", flag ? flag : "channel", r->status,
			      r->err);
		ck_assert_str_eq(r->out, demo_expected);
		ck_assert_str_eq(r->err, "");
		assert_no_demo_segment();

		r = run_cli("demo", "--count", "0", flag);
		ck_assert_int_eq(r->status, 0);
		ck_assert_str_eq(r->out, "Consumer received END signal. Exiting...\n");
		ck_assert_str_eq(r->err, "");
		assert_no_demo_segment();
	}
	/* No options: the channel version, same output. */
	struct t_run *r = run_cli("demo");
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->out, demo_expected);
	ck_assert_str_eq(r->err, "");
}
END_TEST

START_TEST(test_example_output)
{
	/* The example programs users copy from are the same code and print the same lines. */
	static const char *const examples[] = {"producer_consumer", "chan_producer_consumer"};
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX + 32];
		snprintf(path, sizeof path, "%s/examples/%s", t_build_dir(), examples[i]);
		char *argv[] = {path, NULL};
		struct t_proc p;
		t_spawn(&p, argv, -1, -1);
		ck_assert(t_pump(&p, NULL, 20000, 0));
		ck_assert_msg(t_wait(p.pid, 10000) == 0, "%s: %s", examples[i], p.e.data);
		ck_assert_str_eq(p.o.data, demo_expected);
		ck_assert_str_eq(p.e.data, "");
		t_proc_free(&p);
		assert_no_demo_segment();
	}
}
END_TEST

START_TEST(test_demo_long)
{
	/* Every message is checked by the consumer (it fails on a lost or repeated one). */
	int n = t_stress() ? 200000 : 20000;
	char count[16], last[64];
	snprintf(count, sizeof count, "%d", n);
	snprintf(last, sizeof last, "Consumer read: Message %d\n", n);
	struct t_proc p;
	start_cli(&p, -1, -1, "demo", "--count", count, demo_variant[_i][1]);
	ck_assert(t_pump(&p, NULL, 100000, 4096));
	ck_assert_int_eq(t_wait(p.pid, 10000), 0);
	ck_assert_str_eq(p.e.data, "");
	ck_assert_msg(strstr(p.o.data, last), "tail: %s", p.o.data);
	t_proc_free(&p);
	assert_no_demo_segment();
}
END_TEST

START_TEST(test_demo_consumer_killed)
{
	struct t_proc p;
	start_cli(&p, -1, -1, "demo", "--count", "2000000", demo_variant[_i][1]);
	ck_assert_msg(t_pump(&p, "Consumer read: Message 1000\n", 20000, 0), "demo did not start");
	pid_t consumer = child_of(p.pid);
	ck_assert_int_eq(kill(consumer, SIGKILL), 0);
	/* The producer notices within one 100 ms wait slice and exits 1 with a message. */
	ck_assert(t_pump(&p, NULL, 20000, 1 << 16));
	int status = t_wait(p.pid, 10000);
	ck_assert_msg(status == 1, "demo exit %d, stderr: %s", status, p.e.data);
	ck_assert_msg(strstr(p.e.data, "Producer: consumer died, exiting\n"), "stderr: %s", p.e.data);
	ck_assert(!strstr(p.o.data, "END"));
	ck_assert_int_ne(kill(consumer, 0), 0); /* reaped by the demo */
	t_proc_free(&p);
	assert_no_demo_segment();
}
END_TEST

START_TEST(test_demo_producer_killed)
{
	/* Become the orphaned consumer's new parent, to see how it exits. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	struct t_proc p;
	start_cli(&p, -1, -1, "demo", "--count", "2000000", demo_variant[_i][1]);
	ck_assert_msg(t_pump(&p, "Consumer read: Message 1000\n", 20000, 0), "demo did not start");
	pid_t consumer = child_of(p.pid);
	ck_assert_int_eq(kill(p.pid, SIGKILL), 0);
	ck_assert_int_eq(t_wait(p.pid, 10000), 128 + SIGKILL);
	/* The consumer finds its producer gone at its next wait slice and exits by itself:
	 * status 1, not a signal. The pipes reach EOF when it has gone. */
	ck_assert_msg(t_pump(&p, NULL, 20000, 1 << 16), "consumer did not exit");
	int status = t_wait(consumer, 10000);
	ck_assert_msg(status == 1, "consumer exit %d, stderr: %s", status, p.e.data);
	ck_assert_msg(strstr(p.e.data, "Consumer: producer died, exiting\n"), "stderr: %s", p.e.data);
	t_proc_free(&p);
	assert_no_demo_segment();
}
END_TEST

static int create_demo_and_exit(void *arg)
{
	(void)arg;
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV, .sysv_key = DEMO_KEY};
	struct shmkit_segment *seg;
	int err = shmkit_segment_create("demo", 64, &o, &seg);
	shmkit_segment_close(seg);
	return err == 0 ? 0 : 1;
}

START_TEST(test_demo_stale_segment)
{
	/* A demo killed between creating its segment and removing the key leaves "demo" at
	 * key 12345 with a dead creator: the next demo removes it and runs. */
	t_track("demo", SHMKIT_BACKEND_SYSV);
	ck_assert_int_eq(t_wait(t_fork(create_demo_and_exit, NULL), 10000), 0);
	ck_assert(seg_exists(NULL, SHMKIT_BACKEND_SYSV, DEMO_KEY));
	struct t_run *r = run_cli("demo", "--semaphores");
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	ck_assert_str_eq(r->out, demo_expected);
	assert_no_demo_segment();
}
END_TEST

START_TEST(test_demo_key_in_use)
{
	/* A live demo segment (its creator is this process) is not stale: refuse, touch
	 * nothing. */
	struct shmkit_segment *seg = make_seg("demo", SHMKIT_BACKEND_SYSV, DEMO_KEY, 0600);
	struct t_run *r = run_cli("demo", "--semaphores");
	assert_runtime_error(r);
	ck_assert_msg(strstr(r->err, "12345"), "%s", r->err);
	ck_assert_str_eq(r->out, "");
	ck_assert(seg_exists(NULL, SHMKIT_BACKEND_SYSV, DEMO_KEY));
	/* The channel version needs no key at all. */
	r = run_cli("demo");
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	ck_assert_str_eq(r->out, demo_expected);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);

	/* A foreign segment at the key is never removed either. */
	int id;
	make_foreign_sysv(DEMO_KEY, &id);
	r = run_cli("demo", "--semaphores");
	assert_runtime_error(r);
	ck_assert_msg(strstr(r->err, "12345"), "%s", r->err);
	ck_assert_int_eq(shmget(DEMO_KEY, 0, 0), id);
	shmctl(id, IPC_RMID, NULL);
}
END_TEST

/* --- pub / sub ------------------------------------------------------------------------------ */

static void write_full(int fd, const void *data, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const uint8_t *)data + off, len - off);
		ck_assert_msg(n > 0 || errno == EINTR, "write: %s", strerror(errno));
		if (n > 0)
			off += (size_t)n;
	}
}

static uint8_t *rand_bytes(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len + 1);
	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i += 8) {
		uint64_t x = t_rand(&seed);
		memcpy(p + i, &x, len - i < 8 ? len - i : 8);
	}
	return p;
}

/* Feeds data into a pipe from a child process in writes of random sizes (1..max_chunk),
 * so that the reader meets short reads and lines or records split across them. */
struct feed {
	int rfd, wfd;
	const uint8_t *data;
	size_t len, max_chunk;
	uint64_t seed;
};

static int feed_child(void *arg)
{
	struct feed *f = arg;
	close(f->rfd);
	signal(SIGPIPE, SIG_IGN);
	uint64_t rng = f->seed;
	for (size_t off = 0; off < f->len;) {
		size_t n = 1 + t_rand(&rng) % f->max_chunk;
		if (n > f->len - off)
			n = f->len - off;
		ssize_t w = write(f->wfd, f->data + off, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return 1; /* the reader has gone */
		off += (size_t)w;
	}
	return 0;
}

/* Returns the read end; *pidp is the writer (reap it with t_wait()). */
static int feed(const void *data, size_t len, size_t max_chunk, pid_t *pidp)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	struct feed f = {.rfd = fds[0], .wfd = fds[1], .data = data, .len = len,
			 .max_chunk = max_chunk ? max_chunk : 1, .seed = t_seed() ^ len};
	*pidp = t_fork(feed_child, &f);
	ck_assert_int_gt(*pidp, 0);
	close(fds[1]);
	return fds[0];
}

/* Runs the CLI to completion with `in` (len bytes) on its standard input. */
#define run_cli_in(in, len, ...) run_cli_input(in, len, (const char *const[]){__VA_ARGS__, NULL})

static struct t_run *run_cli_input(const void *in, size_t len, const char *const *args)
{
	static struct t_run r;
	pid_t feeder;
	int fd = feed(in, len, len ? len : 1, &feeder);
	struct t_proc p;
	t_spawn_cli(&p, fd, -1, args);
	close(fd);
	t_run_collect(&r, &p, 20000);
	ck_assert_int_ge(t_wait(feeder, 10000), 0);
	return &r;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Runs `pub ARGS` fed with `in` and `sub NAME SUB_ARGS` (started first, so it waits for the
 * channel) writing to a file; checks both exit 0 silently, that the file holds `want`
 * exactly, and that sub removed the channel. */
static void round_trip(const char *name, const void *in, size_t inlen, size_t max_chunk,
		       const void *want, size_t wantlen, const char *const *pub_args,
		       const char *const *sub_args)
{
	const char *args[16];
	int n = 0;
	args[n++] = "sub";
	args[n++] = name;
	args[n++] = "-q"; /* started first: no "waiting for NAME to appear" */
	for (; *sub_args; sub_args++)
		args[n++] = *sub_args;
	args[n] = NULL;
	int out = t_tmp_fd();
	struct t_proc sub, pub;
	t_spawn_cli(&sub, -1, out, args);

	n = 0;
	args[n++] = "pub";
	args[n++] = name;
	args[n++] = "--create";
	for (; *pub_args; pub_args++)
		args[n++] = *pub_args;
	args[n] = NULL;
	pid_t feeder = 0;
	int in_fd;
	if (max_chunk) {
		in_fd = feed(in, inlen, max_chunk, &feeder);
	} else {
		/* Straight from a regular file. */
		in_fd = t_tmp_fd();
		write_full(in_fd, in, inlen);
		ck_assert_int_eq(lseek(in_fd, 0, SEEK_SET), 0);
	}
	t_spawn_cli(&pub, in_fd, -1, args);
	close(in_fd);

	int ps = t_finish(&pub, 60000);
	int ss = t_finish(&sub, 60000);
	ck_assert_msg(ps == 0, "pub exit %d: %s", ps, pub.e.data);
	ck_assert_msg(ss == 0, "sub exit %d: %s", ss, sub.e.data);
	ck_assert_str_eq(pub.e.data, "");
	ck_assert_str_eq(sub.e.data, "");
	if (feeder)
		ck_assert_int_eq(t_wait(feeder, 10000), 0);
	size_t got;
	uint8_t *o = t_fd_slurp(out, &got);
	size_t same = 0;
	while (same < got && same < wantlen && o[same] == ((const uint8_t *)want)[same])
		same++;
	ck_assert_msg(got == wantlen && same == wantlen,
		      "%s: got %zu bytes, want %zu; first difference at byte %zu", name, got,
		      wantlen, same);
	free(o);
	close(out);
	t_proc_free(&pub);
	t_proc_free(&sub);
	/* The stream is over: sub removed the channel. */
	ck_assert_msg(!seg_exists(name, SHMKIT_BACKEND_ANY, 0), "%s remains", name);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NO_ARGS ((const char *const[]){NULL})

START_TEST(test_pubsub_raw)
{
	/* Several MiB of random bytes: through a pipe in random-sized writes into a small
	 * channel that wraps around hundreds of times, and straight from a file with the
	 * default geometry. The output is the input, byte for byte. */
	size_t len = (6u << 20) + 12345;
	uint8_t *data = rand_bytes(len, t_seed());
	char name[64];
	t_name_tracked(name, sizeof name, "raw", SHMKIT_BACKEND_POSIX);
	round_trip(name, data, len, 200000, data, len, ARGS("--capacity", "64K"), NO_ARGS);
	t_name_tracked(name, sizeof name, "raw", SHMKIT_BACKEND_SYSV);
	round_trip(name, data, len, 0, data, len, ARGS("--backend", "sysv", "--framing", "raw"),
		   ARGS("--framing", "raw"));
	free(data);
}
END_TEST

START_TEST(test_pubsub_lines)
{
	/* Empty lines, lines up to exactly the largest message, lines split across reads,
	 * and a last line without a newline, which gets one on the way out. */
	size_t cap = 1 << 20, len = 0;
	char *in = malloc(cap);
	ck_assert_ptr_nonnull(in);
	len += (size_t)sprintf(in + len, "first\n\nthird line\n\n");
	uint64_t rng = t_seed();
	for (int i = 0; i < 3000; i++) {
		size_t n = t_rand(&rng) % 301;
		for (size_t j = 0; j < n; j++)
			in[len++] = (char)(' ' + t_rand(&rng) % 95);
		in[len++] = '\n';
	}
	memset(in + len, 'x', 300); /* exactly --max-msg */
	len += 300;
	in[len++] = '\n';
	len += (size_t)sprintf(in + len, "last line, no newline");
	char *want = malloc(len + 1);
	ck_assert_ptr_nonnull(want);
	memcpy(want, in, len);
	want[len] = '\n';

	char name[64];
	t_name_tracked(name, sizeof name, "lines", SHMKIT_BACKEND_POSIX);
	round_trip(name, in, len, 1000, want, len + 1,
		   ARGS("--framing", "lines", "--max-msg", "300"), ARGS("--framing", "lines"));
	/* A small channel: the producer waits for room again and again. */
	t_name_tracked(name, sizeof name, "lines", SHMKIT_BACKEND_POSIX);
	round_trip(name, in, len, 0, want, len + 1,
		   ARGS("-f", "lines", "--capacity", "4K", "--max-msg", "300"), ARGS("-f", "lines"));
	/* A long line trickling in a few bytes at a time, and a last one without newline. */
	char small[400];
	int n = snprintf(small, sizeof small, "ab\n%0300d\n\nend", 0);
	char small_want[401];
	memcpy(small_want, small, (size_t)n);
	small_want[n] = '\n';
	t_name_tracked(name, sizeof name, "lines", SHMKIT_BACKEND_POSIX);
	round_trip(name, small, (size_t)n, 7, small_want, (size_t)n + 1,
		   ARGS("-f", "lines", "--max-msg", "300"), ARGS("-f", "lines"));
	/* Input that ends with a newline comes back unchanged; empty input sends nothing. */
	t_name_tracked(name, sizeof name, "lines", SHMKIT_BACKEND_POSIX);
	round_trip(name, "\n\na\n", 4, 1, "\n\na\n", 4, ARGS("-f", "lines"), ARGS("-f", "lines"));
	t_name_tracked(name, sizeof name, "lines", SHMKIT_BACKEND_POSIX);
	round_trip(name, "", 0, 1, "", 0, ARGS("-f", "lines"), ARGS("-f", "lines"));
	free(in);
	free(want);
}
END_TEST

START_TEST(test_pubsub_len)
{
	/* Length-prefixed records of binary data (newlines and NULs included): empty ones,
	 * one of exactly the largest message (read straight into the loan), headers split
	 * across reads. The output is the input. */
	static const uint32_t fixed[] = {0, 1, 3, 4, 7, 8, 100, 0, 65536, 65535, 5};
	size_t cap = 8 << 20, len = 0;
	uint8_t *in = malloc(cap);
	ck_assert_ptr_nonnull(in);
	uint64_t rng = t_seed() + 7;
	size_t prefix = 0; /* the first 100 records */
	for (int i = 0; i < 600; i++) {
		uint32_t n = i < (int)(sizeof fixed / sizeof *fixed) ? fixed[i]
								     : (uint32_t)(t_rand(&rng) % 5000);
		put_le32(in + len, n);
		len += 4;
		for (uint32_t j = 0; j < n; j++)
			in[len++] = (uint8_t)t_rand(&rng);
		if (i == 99)
			prefix = len;
	}
	char name[64];
	t_name_tracked(name, sizeof name, "len", SHMKIT_BACKEND_POSIX);
	round_trip(name, in, len, 10000, in, len, ARGS("--framing", "len"), ARGS("--framing", "len"));
	/* Writes of 1..3 bytes: every length prefix is split. */
	t_name_tracked(name, sizeof name, "len", SHMKIT_BACKEND_POSIX);
	round_trip(name, in, prefix, 3, in, prefix, ARGS("-f", "len"), ARGS("-f", "len"));
	free(in);
}
END_TEST

START_TEST(test_sub_waits_for_pub)
{
	char name[64];
	t_name_tracked(name, sizeof name, "wait", SHMKIT_BACKEND_POSIX);
	struct t_proc sub;
	start_cli(&sub, -1, -1, "sub", name, "--framing", "lines", "-q");
	/* No channel yet: sub waits for it (it must not give up, however long it takes). */
	ck_assert(!t_pump(&sub, NULL, 300, 0));
	ck_assert_int_eq(waitpid(sub.pid, NULL, WNOHANG), 0);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
	struct t_run *r = run_cli_in("hello\nworld\n", 12, "pub", name, "--create", "-f", "lines");
	ck_assert_msg(r->status == 0, "pub exit %d: %s", r->status, r->err);
	int status = t_finish(&sub, 20000);
	ck_assert_msg(status == 0, "sub exit %d: %s", status, sub.e.data);
	ck_assert_str_eq(sub.o.data, "hello\nworld\n");
	ck_assert_str_eq(sub.e.data, "");
	t_proc_free(&sub);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

START_TEST(test_sub_timeout)
{
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "tmo", SHMKIT_BACKEND_POSIX);
	/* No such channel. */
	struct t_run *r = run_cli("sub", name, "--timeout", "0.2", "-q");
	assert_runtime_error(r);
	snprintf(want, sizeof want, "shmkit: sub: %s: timed out waiting for the channel to appear\n",
		 name);
	ck_assert_str_eq(r->err, want);
	r = run_cli("sub", name, "-t", "0");
	assert_runtime_error(r);
	/* Then the nearest existing name, or a pointer to 'shmkit ls'. */
	snprintf(want, sizeof want, "shmkit: sub: %s: %s", name, shmkit_strerror(-ENOENT));
	ck_assert_msg(strncmp(r->err, want, strlen(want)) == 0, "%s", r->err);
	r = run_cli("pub", name, "--timeout", "0.1", "-q");
	assert_runtime_error(r);
	snprintf(want, sizeof want, "shmkit: pub: %s: timed out waiting for the channel to appear\n",
		 name);
	ck_assert_str_eq(r->err, want);

	/* A channel whose producer (this process) sends nothing: sub gives up, detaches
	 * cleanly (so the next sub can attach) and leaves the channel in place. */
	struct shmkit_chan_opts co = {.capacity = 65536, .max_msg = 1024};
	struct shmkit_chan *ch;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, &co, &ch), 0);
	snprintf(want, sizeof want, "shmkit: sub: %s: timed out waiting for a message\n", name);
	r = run_cli("sub", name, "--timeout", "0.2");
	assert_runtime_error(r);
	ck_assert_str_eq(r->err, want);
	ck_assert_str_eq(r->out, "");
	r = run_cli("sub", name, "--timeout", "0");
	assert_runtime_error(r);
	ck_assert_str_eq(r->err, want);
	ck_assert(seg_exists(name, SHMKIT_BACKEND_ANY, 0));
	ck_assert_int_eq(shmkit_chan_send(ch, "abc", 3), 0);
	ck_assert_int_eq(shmkit_chan_close(ch), 0);
	r = run_cli("sub", name, "--framing", "lines", "--timeout", "10");
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	ck_assert_str_eq(r->out, "abc\n");
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

START_TEST(test_sub_producer_killed)
{
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "pkill", SHMKIT_BACKEND_POSIX);
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	struct t_proc pub, sub;
	start_cli(&pub, fds[0], -1, "pub", name, "--create", "--framing", "lines");
	close(fds[0]);
	start_cli(&sub, -1, -1, "sub", name, "--framing", "lines", "-q");
	write_full(fds[1], "one\ntwo\n", 8);
	ck_assert_msg(t_pump(&sub, "one\ntwo\n", 20000, 0), "sub got: %s %s", sub.o.data, sub.e.data);
	ck_assert_int_eq(kill(pub.pid, SIGKILL), 0);
	ck_assert_int_eq(t_finish(&pub, 10000), 128 + SIGKILL);
	close(fds[1]);
	/* Everything sent was written; then one line and exit 1. */
	int status = t_finish(&sub, 20000);
	ck_assert_msg(status == 1, "sub exit %d: %s", status, sub.e.data);
	ck_assert_str_eq(sub.o.data, "one\ntwo\n");
	snprintf(want, sizeof want, "shmkit: sub: %s: producer died before the end of the stream\n",
		 name);
	ck_assert_str_eq(sub.e.data, want);
	t_proc_free(&pub);
	t_proc_free(&sub);
	/* The stream is over: sub removed the channel. */
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

/* Waits until the consumer of channel `name` has received something. */
static void wait_received(const char *name)
{
	for (int i = 0; i < 2000; i++) {
		struct shmkit_chan *ch;
		struct shmkit_chan_stats st = {0};
		if (shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ch) == 0) {
			shmkit_chan_stats(ch, &st);
			shmkit_chan_close(ch);
			if (st.msgs_recv > 0)
				return;
		}
		usleep(10000);
	}
	ck_abort_msg("%s: nothing received", name);
}

START_TEST(test_pub_consumer_killed)
{
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "ckill", SHMKIT_BACKEND_POSIX);
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	ck_assert(zero >= 0 && null >= 0);
	struct t_proc pub, sub;
	start_cli(&pub, zero, -1, "pub", name, "--create", "--capacity", "64K");
	start_cli(&sub, -1, null, "sub", name, "-q");
	close(zero);
	close(null);
	wait_received(name);
	ck_assert_int_eq(kill(sub.pid, SIGKILL), 0);
	ck_assert_int_eq(t_finish(&sub, 10000), 128 + SIGKILL);
	/* pub, endlessly fed, fills the channel and finds its consumer dead. */
	int status = t_finish(&pub, 20000);
	ck_assert_msg(status == 1, "pub exit %d: %s", status, pub.e.data);
	snprintf(want, sizeof want, "shmkit: pub: %s: consumer died before the end of the stream\n",
		 name);
	ck_assert_str_eq(pub.e.data, want);
	t_proc_free(&pub);
	t_proc_free(&sub);
	/* A channel abandoned by both sides stays for `shmkit rm` or `shmkit gc`. */
	struct t_run *r = run_cli("rm", name);
	ck_assert_msg(r->status == 0, "%s", r->err);
}
END_TEST

START_TEST(test_sub_reader_gone)
{
	/* sub's reader goes away: sub exits 0 without a word, and pub learns that nobody
	 * reads the stream, as a writer to a closed pipe would. */
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "epipe", SHMKIT_BACKEND_POSIX);
	int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	ck_assert(zero >= 0);
	struct t_proc pub, sub;
	start_cli(&pub, zero, -1, "pub", name, "--create", "--capacity", "64K");
	close(zero);
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	start_cli(&sub, -1, fds[1], "sub", name, "-q");
	close(fds[0]);
	close(fds[1]);
	int status = t_finish(&sub, 20000);
	ck_assert_msg(status == 0, "sub exit %d: %s", status, sub.e.data);
	ck_assert_str_eq(sub.e.data, "");
	status = t_finish(&pub, 20000);
	ck_assert_msg(status == 1, "pub exit %d: %s", status, pub.e.data);
	snprintf(want, sizeof want, "shmkit: pub: %s: consumer closed the channel\n", name);
	ck_assert_str_eq(pub.e.data, want);
	t_proc_free(&pub);
	t_proc_free(&sub);
	/* The reader closed its side first, so pub was the last end to leave: it removed
	 * the channel. */
	ck_assert_msg(!seg_exists(name, SHMKIT_BACKEND_ANY, 0), "%s remains", name);
}
END_TEST

START_TEST(test_pub_errors)
{
	char name[64], want[256];
	/* A line longer than the largest message: exit 1 naming the line. The stream is
	 * aborted, not marked complete, so the consumer writes the good lines, then reports
	 * the stream cut short. */
	t_name_tracked(name, sizeof name, "long", SHMKIT_BACKEND_POSIX);
	static const char lines[] = "ok\n0123456789abcdefg\nnever\n";
	struct t_run *r = run_cli_in(lines, strlen(lines), "pub", name, "--create", "--framing",
				   "lines", "--max-msg", "16");
	assert_runtime_error(r);
	snprintf(want, sizeof want,
		 "shmkit: pub: %s: line 2 of 17 bytes exceeds max_msg 16 (the channel's largest "
		 "message; create it with a larger --max-msg)\n",
		 name);
	ck_assert_str_eq(r->err, want);
	r = run_cli("sub", name, "--framing", "lines");
	assert_runtime_error(r);
	ck_assert_str_eq(r->out, "ok\n");
	snprintf(want, sizeof want,
		 "shmkit: sub: %s: producer aborted the stream before its end\n", name);
	ck_assert_str_eq(r->err, want);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));

	/* len: a record too long, a payload cut short, a length cut short. */
	uint8_t rec[3][32];
	put_le32(rec[0], 17);
	memset(rec[0] + 4, 'a', 17);
	put_le32(rec[1], 0);
	put_le32(rec[1] + 4, 10);
	memcpy(rec[1] + 8, "abc", 3);
	put_le32(rec[2], 3);
	memcpy(rec[2] + 4, "abc\1\0", 5);
	static const struct {
		size_t len;
		const char *msg;
	} cases[] = {
		{21, "record 1 of 17 bytes exceeds max_msg 16 (the channel's largest message; "
		     "create it with a larger --max-msg)"},
		{11, "record 2 is truncated (3 of its 10 bytes at end of input)"},
		{9, "record 2 is truncated (2 of the 4 length bytes at end of input)"},
	};
	for (int i = 0; i < 3; i++) {
		t_name_tracked(name, sizeof name, "len", SHMKIT_BACKEND_POSIX);
		r = run_cli_in(rec[i], cases[i].len, "pub", name, "-c", "-f", "len", "--max-msg", "16");
		assert_runtime_error(r);
		snprintf(want, sizeof want, "shmkit: pub: %s: %s\n", name, cases[i].msg);
		ck_assert_str_eq(r->err, want);
		ck_assert_int_eq(run_cli("rm", name)->status, 0);
	}

	/* --create on a name that exists; a segment that is not a channel. */
	t_name(name, sizeof name, "exists");
	struct shmkit_segment *seg = make_seg(name, SHMKIT_BACKEND_POSIX, 0, 0600);
	r = run_cli_in("x\n", 2, "pub", name, "--create");
	assert_runtime_error(r);
	snprintf(want, sizeof want,
		 "shmkit: pub: '%s' exists already (a raw segment); choose another name, or "
		 "remove it first with 'shmkit rm %s'\n",
		 name, name);
	ck_assert_str_eq(r->err, want);
	r = run_cli_in("x\n", 2, "pub", name);
	assert_runtime_error(r);
	snprintf(want, sizeof want, "shmkit: pub: '%s' is a raw segment, not a stream channel\n",
		 name);
	ck_assert_str_eq(r->err, want);
	r = run_cli("sub", name);
	assert_runtime_error(r);
	snprintf(want, sizeof want,
		 "shmkit: sub: '%s' is a raw segment, not a stream or pub/sub channel\n", name);
	ck_assert_str_eq(r->err, want);
	shmkit_segment_close(seg);

	/* The producer role is taken by a live process (this one). */
	t_name_tracked(name, sizeof name, "busy", SHMKIT_BACKEND_POSIX);
	struct shmkit_chan *ch;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, NULL, &ch), 0);
	r = run_cli_in("x\n", 2, "pub", name);
	assert_runtime_error(r);
	snprintf(want, sizeof want, "%s: its producer is pid %d (a stream channel has one",
		 shmkit_strerror(-EBUSY), (int)getpid());
	ck_assert_msg(strstr(r->err, want), "%s", r->err);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
}
END_TEST

START_TEST(test_pub_existing)
{
	/* pub without --create attaches to a channel somebody else made (here this process,
	 * as the consumer) and ends the stream at end of input. */
	char name[64];
	t_name_tracked(name, sizeof name, "exist", SHMKIT_BACKEND_SYSV);
	struct shmkit_chan_opts co = {.seg = {.backend = SHMKIT_BACKEND_SYSV}};
	struct shmkit_chan *ch;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_CONSUMER, &co, &ch), 0);
	struct t_run *r = run_cli_in("x\n\nyz\n", 6, "pub", name, "--framing", "lines", "--backend",
				   "sysv");
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	static const char *const want[] = {"x", "", "yz"};
	char buf[16];
	for (int i = 0; i < 3; i++) {
		struct timespec d;
		ssize_t n = shmkit_chan_recv_wait(ch, buf, sizeof buf, shmkit_deadline_after(&d, 10000000000ull));
		ck_assert_int_eq(n, (ssize_t)strlen(want[i]));
		ck_assert(memcmp(buf, want[i], (size_t)n) == 0);
	}
	ck_assert_int_eq(shmkit_chan_recv(ch, buf, sizeof buf), -EPIPE);
	shmkit_chan_unlink(ch);
	shmkit_chan_close(ch);
}
END_TEST

static int consume_one(void *arg)
{
	char buf[64];
	struct shmkit_chan *ch;
	if (shmkit_chan_open(arg, SHMKIT_CHAN_CONSUMER, NULL, &ch) != 0)
		return 1;
	ssize_t n = shmkit_chan_recv(ch, buf, sizeof buf);
	shmkit_chan_close(ch);
	return n == 10 ? 0 : 2;
}

START_TEST(test_stat_stream)
{
	/* stat opens a channel as an observer and shows its geometry, counters and sides. */
	char name[64], line[128], pid[16];
	t_name_tracked(name, sizeof name, "sstat", SHMKIT_BACKEND_POSIX);
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	struct shmkit_chan_opts co = {.capacity = 65536, .max_msg = 1024};
	struct shmkit_chan *ch;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, &co, &ch), 0);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(shmkit_chan_send(ch, "0123456789", 10), 0);

	struct t_run *r = run_cli("stat", name);
	ck_assert_msg(r->status == 0, "%s", r->err);
	static const char *const lines1[] = {
		"kind: stream", "capacity: 65536 (64K)", "max_msg: 1024 (1.0K)", "fill: 72 (72B)",
		"fill_percent: 0.1%", "msgs_sent: 3", "bytes_sent: 30", "msgs_recv: 0",
		"bytes_recv: 0", "producer_alive: yes", "consumer_pid: -", "consumer_alive: no",
		"producer_sleeps: 0", "producer_wakes: 0", "consumer_sleeps: 0",
		"consumer_wakes: 0", "closed: no"};
	for (size_t i = 0; i < sizeof lines1 / sizeof *lines1; i++) {
		snprintf(line, sizeof line, "\n%s\n", lines1[i]);
		ck_assert_msg(strstr(r->out, line), "no '%s' in:\n%s", lines1[i], r->out);
	}
	snprintf(line, sizeof line, "\nproducer_pid: %s\n", pid);
	ck_assert_msg(strstr(r->out, line), "%s", r->out);

	r = run_cli("stat", name, "--json");
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
	assert_member(r->out, "kind", "\"stream\"");
	assert_member(r->out, "capacity", "65536");
	assert_member(r->out, "max_msg", "1024");
	assert_member(r->out, "fill", "72");
	assert_member(r->out, "fill_percent", "0.1");
	assert_member(r->out, "msgs_sent", "3");
	assert_member(r->out, "bytes_sent", "30");
	assert_member(r->out, "msgs_recv", "0");
	assert_member(r->out, "bytes_recv", "0");
	assert_member(r->out, "producer_pid", pid);
	assert_member(r->out, "producer_alive", "true");
	assert_member(r->out, "consumer_pid", "null");
	assert_member(r->out, "consumer_alive", "false");
	assert_member(r->out, "producer_sleeps", "0");
	assert_member(r->out, "producer_wakes", "0");
	assert_member(r->out, "consumer_sleeps", "0");
	assert_member(r->out, "consumer_wakes", "0");
	assert_member(r->out, "closed", "false");
	char v[64];
	ck_assert(!json_member(r->out, "detail_error", v, sizeof v));

	/* A consumer takes one message and leaves; then the producer closes. */
	ck_assert_int_eq(t_wait(t_fork(consume_one, name), 10000), 0);
	ck_assert_int_eq(shmkit_chan_close(ch), 1); /* the reader closed first: we are last */
	r = run_cli("stat", name, "--json");
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
	assert_member(r->out, "msgs_recv", "1");
	assert_member(r->out, "bytes_recv", "10");
	assert_member(r->out, "fill", "48");
	assert_member(r->out, "producer_pid", "null");
	assert_member(r->out, "producer_alive", "false");
	assert_member(r->out, "closed", "true");
	ck_assert_int_eq(run_cli("rm", name)->status, 0);
}
END_TEST

START_TEST(test_sub_keep)
{
	char name[64];
	t_name_tracked(name, sizeof name, "keep", SHMKIT_BACKEND_POSIX);
	struct t_run *r = run_cli_in("a\nb\n", 4, "pub", name, "--create", "--framing", "lines");
	ck_assert_msg(r->status == 0, "%s", r->err);
	r = run_cli("sub", name, "--framing", "lines", "--keep");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "a\nb\n");
	ck_assert(seg_exists(name, SHMKIT_BACKEND_ANY, 0));
	r = run_cli("stat", name);
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(strstr(r->out, "\nclosed: yes\n") && strstr(r->out, "\nmsgs_recv: 2\n") &&
			      strstr(r->out, "\nfill: 0 (0B)\n"),
		      "%s", r->out);
	/* The next sub finds the stream over at once, writes nothing and removes it. */
	r = run_cli("sub", name, "--framing", "lines");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "");
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

/* --- ls ----------------------------------------------------------------------------------- */

/* The ls line whose NAME column is `name` and BACKEND column `backend`, split in 12 columns. */
static bool ls_line(const char *out, const char *name, const char *backend, char col[12][64])
{
	for (const char *line = out; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char copy[1024];
		snprintf(copy, sizeof copy, "%.*s", (int)len, line);
		int n = sscanf(copy, "%63s %63s %63s %63s %63s %63s %63s %63s %63s %63s %63s %63s",
			       col[0], col[1], col[2], col[3], col[4], col[5], col[6], col[7], col[8],
			       col[9], col[10], col[11]);
		if (n == 12 && strcmp(col[0], name) == 0 && strcmp(col[1], backend) == 0)
			return true;
		line += len + (nl != NULL);
	}
	return false;
}

/* Runs `shmkit ls` until both segments show `attached` in the ATTACHED column. */
static struct t_run *run_ls_until(const char *pname, const char *sname, const char *attached)
{
	struct t_run *r = NULL;
	for (int i = 0; i < SETTLE_TRIES; i++) {
		char col[12][64];
		r = run_cli("ls");
		if (ls_line(r->out, pname, "posix", col) && strcmp(col[10], attached) == 0 &&
		    ls_line(r->out, sname, "sysv", col) && strcmp(col[10], attached) == 0)
			break;
		usleep(SETTLE_US);
	}
	return r;
}

START_TEST(test_ls)
{
	char pname[64], sname[64];
	t_name(pname, sizeof pname, "ls");
	t_name(sname, sizeof sname, "ls");
	struct shmkit_segment *ps = make_seg(pname, SHMKIT_BACKEND_POSIX, 0, 0640);
	struct shmkit_segment *ss = make_seg(sname, SHMKIT_BACKEND_SYSV, 0, 0600);
	int32_t key;
	ck_assert_int_eq(shmkit_sysv_key_for_name(sname, &key), 0);
	char pid[16], keystr[16];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	snprintf(keystr, sizeof keystr, "%d", (int)key);

	struct t_run *r = run_ls_until(pname, sname, "1");
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->err, "");
	ck_assert_msg(strncmp(r->out, "NAME ", 5) == 0, "%s", r->out);
	const char *titles[] = {"BACKEND", "KEY", "KIND", "LIFETIME", "SIZE", "MODE", "OWNER", "PID",
				"ALIVE", "ATTACHED", "STATUS"};
	for (size_t i = 0; i < sizeof titles / sizeof *titles; i++)
		ck_assert_msg(strstr(r->out, titles[i]), "no column %s", titles[i]);

	char col[12][64];
	ck_assert_msg(ls_line(r->out, pname, "posix", col), "%s not in:\n%s", pname, r->out);
	ck_assert_str_eq(col[2], "-");
	ck_assert_str_eq(col[3], "raw");
	ck_assert_str_eq(col[4], "ephemeral"); /* the library's default */
	ck_assert_str_eq(col[5], "4.0K");
	ck_assert_str_eq(col[6], "0640");
	ck_assert_str_eq(col[8], pid);
	ck_assert_str_eq(col[9], "yes");
	ck_assert_str_eq(col[10], "1"); /* this process maps it */
	ck_assert_str_eq(col[11], "ok");

	ck_assert_msg(ls_line(r->out, sname, "sysv", col), "%s not in:\n%s", sname, r->out);
	ck_assert_str_eq(col[2], keystr);
	ck_assert_str_eq(col[3], "raw");
	ck_assert_str_eq(col[6], "0600");
	ck_assert_str_eq(col[8], pid);
	ck_assert_str_eq(col[9], "yes");
	ck_assert_str_eq(col[10], "1");
	ck_assert_str_eq(col[11], "ok");

	/* Detached: the count follows. */
	shmkit_segment_close(ps);
	shmkit_segment_close(ss);
	r = run_ls_until(pname, sname, "0");
	ck_assert(ls_line(r->out, pname, "posix", col));
	ck_assert_str_eq(col[10], "0");
	ck_assert(ls_line(r->out, sname, "sysv", col));
	ck_assert_str_eq(col[10], "0");
}
END_TEST

START_TEST(test_ls_json)
{
	char pname[64], sname[64];
	t_name(pname, sizeof pname, "json");
	t_name(sname, sizeof sname, "json");
	struct shmkit_segment *ps = make_seg(pname, SHMKIT_BACKEND_POSIX, 0, 0600);
	struct shmkit_segment *ss = make_seg(sname, SHMKIT_BACKEND_SYSV, 0, 0640);
	struct shmkit_segment_info sinfo;
	ck_assert_int_eq(shmkit_segment_info(ss, &sinfo), 0);
	char pid[16], qp[80], qs[80], num[32];
	snprintf(pid, sizeof pid, "%d", (int)getpid());
	snprintf(qp, sizeof qp, "\"%s\"", pname);
	snprintf(qs, sizeof qs, "\"%s\"", sname);

	struct t_run *r = NULL;
	for (int i = 0; i < SETTLE_TRIES; i++) {
		r = run_cli("ls", "--json");
		const char *po = json_find(r->out, "name", qp, "backend", "\"posix\"");
		const char *so = json_find(r->out, "name", qs, "backend", "\"sysv\"");
		char a[32], b[32];
		if (po && so && json_member(po, "nattach", a, sizeof a) && strcmp(a, "1") == 0 &&
		    json_member(so, "nattach", b, sizeof b) && strcmp(b, "1") == 0)
			break;
		usleep(SETTLE_US);
	}
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);

	const char *o = json_find(r->out, "name", qp, "backend", "\"posix\"");
	ck_assert_msg(o, "%s not in %s", pname, r->out);
	assert_member(o, "sysv_key", "null");
	assert_member(o, "sysv_id", "null");
	assert_member(o, "kind", "\"raw\"");
	assert_member(o, "total_size", "4608");
	assert_member(o, "data_size", "4096");
	assert_member(o, "mode", "384");
	snprintf(num, sizeof num, "%u", (unsigned)getuid());
	assert_member(o, "uid", num);
	assert_member(o, "creator_uid", num);
	assert_member(o, "creator_pid", pid);
	assert_member(o, "creator_alive", "true");
	assert_member(o, "nattach", "1");
	assert_member(o, "state", "\"ready\"");
	assert_member(o, "version", "\"2.0\"");
	assert_member(o, "lifetime", "\"ephemeral\"");
	assert_member(o, "status", "\"ok\"");
	assert_member(o, "error", "null");
	char v[128];
	ck_assert(json_member(o, "owner", v, sizeof v) && v[0] == '"');
	ck_assert(json_member(o, "gid", v, sizeof v));
	/* "YYYY-MM-DDTHH:MM:SSZ" */
	ck_assert(json_member(o, "created", v, sizeof v));
	ck_assert_msg(strlen(v) == 22 && v[5] == '-' && v[11] == 'T' && v[20] == 'Z', "%s", v);

	o = json_find(r->out, "name", qs, "backend", "\"sysv\"");
	ck_assert_msg(o, "%s not in %s", sname, r->out);
	snprintf(num, sizeof num, "%d", (int)sinfo.sysv_key);
	assert_member(o, "sysv_key", num);
	snprintf(num, sizeof num, "%d", (int)sinfo.sysv_id);
	assert_member(o, "sysv_id", num);
	assert_member(o, "mode", "416");
	assert_member(o, "creator_pid", pid);
	assert_member(o, "nattach", "1");
	assert_member(o, "status", "\"ok\"");

	shmkit_segment_close(ps);
	shmkit_segment_close(ss);
}
END_TEST

/* --- stat ----------------------------------------------------------------------------------- */

static void scribble_posix(const char *name, off_t off, size_t len, uint64_t seed)
{
	char path[300];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	unsigned char junk[512];
	ck_assert_uint_le(len, sizeof junk);
	for (size_t i = 0; i < len; i++)
		junk[i] = (unsigned char)(t_rand(&seed) | 1);
	ck_assert_int_eq(pwrite(fd, junk, len, off), (ssize_t)len);
	close(fd);
}

START_TEST(test_stat)
{
	char name[64];
	t_name(name, sizeof name, "stat");
	struct shmkit_segment *seg = make_seg(name, SHMKIT_BACKEND_POSIX, 0, 0600);
	char pid[16], line[128];
	snprintf(pid, sizeof pid, "%d", (int)getpid());

	struct t_run *r = run_cli("stat", name);
	ck_assert_int_eq(r->status, 0);
	ck_assert_str_eq(r->err, "");
	snprintf(line, sizeof line, "name: %s\n", name);
	ck_assert_msg(strncmp(r->out, line, strlen(line)) == 0, "%s", r->out);
	ck_assert(strstr(r->out, "\nbackend: posix\n"));
	ck_assert(strstr(r->out, "\nkind: raw\n"));
	ck_assert(strstr(r->out, "\nmode: 0600\n"));
	snprintf(line, sizeof line, "\ncreator_pid: %s\n", pid);
	ck_assert(strstr(r->out, line));
	ck_assert(strstr(r->out, "\ncreator_alive: yes\n"));
	ck_assert(strstr(r->out, "\nstatus: ok\n"));

	r = run_cli("stat", "--json", name, "--backend", "posix");
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
	assert_member(r->out, "status", "\"ok\"");
	assert_member(r->out, "creator_pid", pid);

	/* Narrowed to the other backend: not there. */
	r = run_cli("stat", name, "--backend", "sysv");
	assert_runtime_error(r);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_stat_corrupt)
{
	char name[64], tname[64], fname[64];
	t_name(name, sizeof name, "corrupt");
	t_name(tname, sizeof tname, "trunc");
	t_name(fname, sizeof fname, "foreign");
	shmkit_segment_close(make_seg(name, SHMKIT_BACKEND_POSIX, 0, 0600));
	shmkit_segment_close(make_seg(tname, SHMKIT_BACKEND_POSIX, 0, 0600));
	shmkit_segment_close(make_seg(fname, SHMKIT_BACKEND_POSIX, 0, 0600));
	/* Garbage over the checksummed header fields, magic and version intact: corrupt. */
	scribble_posix(name, 16, 448 - 16, t_seed());
	/* Smaller than its header says: truncated. */
	char path[300];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", tname);
	ck_assert_int_eq(truncate(path, 1024), 0);
	/* Garbage over the whole header, magic included: not a shmkit segment. */
	scribble_posix(fname, 0, 512, t_seed() + 1);

	struct t_run *r = run_cli("stat", name);
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	ck_assert_msg(strstr(r->out, "\nstatus: corrupt\n"), "%s", r->out);
	ck_assert(strstr(r->out, "\ncreator_alive: ?\n"));
	r = run_cli("stat", name, "--json");
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
	assert_member(r->out, "status", "\"corrupt\"");
	assert_member(r->out, "kind", "null");
	assert_member(r->out, "creator_pid", "null");
	assert_member(r->out, "creator_alive", "null");
	char v[256];
	ck_assert(json_member(r->out, "error", v, sizeof v) && strcmp(v, "null") != 0);

	r = run_cli("stat", tname);
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(strstr(r->out, "\nstatus: truncated\n"), "%s", r->out);
	r = run_cli("stat", fname);
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(strstr(r->out, "\nstatus: foreign\n"), "%s", r->out);

	/* ls shows them, gc keeps the ones whose creator it cannot know. */
	r = run_cli("ls");
	ck_assert_int_eq(r->status, 0);
	char col[12][64];
	ck_assert_msg(ls_line(r->out, name, "posix", col), "%s", r->out);
	ck_assert_str_eq(col[11], "corrupt");
	ck_assert_str_eq(col[9], "?");
	ck_assert_str_eq(col[4], "?"); /* lifetime: the header is not readable */
	r = run_cli("ls", "--json");
	ck_assert_int_eq(r->status, 0);
	ck_assert(json_valid(r->out));
	char q[80];
	snprintf(q, sizeof q, "\"%s\"", name);
	const char *o = json_find(r->out, "name", q, NULL, NULL);
	ck_assert(o);
	assert_member(o, "status", "\"corrupt\"");

	r = run_cli("gc", "--dry-run");
	ck_assert_int_eq(r->status, 0);
	char want[160];
	snprintf(want, sizeof want, "kept %s (posix, creator unknown, corrupt)\n", name);
	ck_assert_msg(strstr(r->out, want), "%s", r->out);
	snprintf(want, sizeof want, "kept %s (posix, foreign: not a shmkit segment)\n", fname);
	ck_assert_msg(strstr(r->out, want), "%s", r->out);
	ck_assert(access(path, F_OK) == 0);
}
END_TEST

START_TEST(test_stat_foreign_sysv)
{
	int id;
	int32_t key = make_foreign_sysv(0, &id);
	char keystr[16], hex[16], label[32];
	snprintf(keystr, sizeof keystr, "%d", (int)key);
	snprintf(hex, sizeof hex, "0x%x", (unsigned)key);
	snprintf(label, sizeof label, "key %d:", (int)key);

	struct t_run *r = run_cli("stat", "--sysv-key", keystr);
	ck_assert_msg(r->status == 0, "exit %d: %s", r->status, r->err);
	ck_assert_msg(strstr(r->out, "\nstatus: foreign\n"), "%s", r->out);
	ck_assert(strstr(r->out, "\nbackend: sysv\n"));
	r = run_cli("stat", "--json", "-k", hex);
	ck_assert_int_eq(r->status, 0);
	ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
	assert_member(r->out, "status", "\"foreign\"");
	assert_member(r->out, "sysv_key", keystr);
	assert_member(r->out, "name", "\"\"");

	/* Not ours: rm refuses it and leaves it in place. */
	r = run_cli("rm", "--sysv-key", keystr);
	assert_runtime_error(r);
	ck_assert_msg(strstr(r->err, label), "%s", r->err);
	ck_assert_int_eq(shmget((key_t)key, 0, 0), id);
	/* Nor does ls list it, nor gc touch it. */
	r = run_cli("ls");
	ck_assert_msg(!strstr(r->out, keystr), "%s", r->out);
	r = run_cli("gc");
	ck_assert_int_eq(r->status, 0);
	ck_assert_int_eq(shmget((key_t)key, 0, 0), id);
}
END_TEST

START_TEST(test_stat_missing)
{
	char name[64], want[160];
	t_name(name, sizeof name, "missing");
	struct t_run *r = run_cli("stat", name);
	assert_runtime_error(r);
	/* Then the nearest existing name, or a pointer to 'shmkit ls'. */
	snprintf(want, sizeof want, "shmkit: stat: %s: %s", name, shmkit_strerror(-ENOENT));
	ck_assert_msg(strncmp(r->err, want, strlen(want)) == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "");
	r = run_cli("stat", name, "--json");
	assert_runtime_error(r);
	ck_assert_str_eq(r->out, "");
}
END_TEST

/* --- rm --------------------------------------------------------------------------------------- */

START_TEST(test_rm)
{
	char a[64], b[64], missing[64], c[64];
	t_name(a, sizeof a, "rm");
	t_name(b, sizeof b, "rm");
	t_name(c, sizeof c, "rm");
	t_name(missing, sizeof missing, "missing");
	shmkit_segment_close(make_seg(a, SHMKIT_BACKEND_POSIX, 0, 0600));
	shmkit_segment_close(make_seg(b, SHMKIT_BACKEND_SYSV, 0, 0600));

	/* Every name is checked first; the missing one is the only error line, and nothing at
	 * all is removed (issue 13: `rm nosuch cfg` used to remove cfg). */
	struct t_run *r = run_cli("rm", a, missing, b);
	assert_runtime_error(r);
	char want[160];
	snprintf(want, sizeof want, "shmkit: rm: %s: %s\n", missing, shmkit_strerror(-ENOENT));
	ck_assert_str_eq(r->err, want);
	ck_assert_str_eq(r->out, "");
	ck_assert(seg_exists(a, SHMKIT_BACKEND_POSIX, 0));
	ck_assert(seg_exists(b, SHMKIT_BACKEND_SYSV, 0));
	r = run_cli("rm", missing, a, b);
	assert_runtime_error(r);
	ck_assert(seg_exists(a, SHMKIT_BACKEND_POSIX, 0));
	ck_assert(seg_exists(b, SHMKIT_BACKEND_SYSV, 0));

	/* All good: all removed, quietly unless -v. */
	r = run_cli("rm", a, b);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "");
	ck_assert(!seg_exists(a, SHMKIT_BACKEND_ANY, 0));
	ck_assert(!seg_exists(b, SHMKIT_BACKEND_ANY, 0));

	/* -v reports; --backend narrows. */
	shmkit_segment_close(make_seg(c, SHMKIT_BACKEND_SYSV, 0, 0600));
	r = run_cli("rm", "--backend", "posix", c);
	assert_runtime_error(r);
	ck_assert(seg_exists(c, SHMKIT_BACKEND_SYSV, 0));
	r = run_cli("rm", "-v", c);
	ck_assert_int_eq(r->status, 0);
	snprintf(want, sizeof want, "removed %s\n", c);
	ck_assert_str_eq(r->out, want);
	ck_assert_str_eq(r->err, "");
	ck_assert(!seg_exists(c, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

START_TEST(test_rm_sysv_key)
{
	char name[64], keystr[16];
	t_name(name, sizeof name, "rmkey");
	struct shmkit_segment *seg = make_seg(name, SHMKIT_BACKEND_SYSV, 0, 0600);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	shmkit_segment_close(seg);
	snprintf(keystr, sizeof keystr, "%d", (int)inf.sysv_key);
	/* Key plus the wrong name: refused. */
	struct t_run *r = run_cli("rm", "--sysv-key", keystr, "someone-else");
	assert_runtime_error(r);
	ck_assert(seg_exists(name, SHMKIT_BACKEND_SYSV, 0));
	r = run_cli("rm", "-v", "--sysv-key", keystr);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_SYSV, 0));
	r = run_cli("rm", "--sysv-key", keystr);
	assert_runtime_error(r);
}
END_TEST

/* --- gc ---------------------------------------------------------------------------------------- */

struct creator_arg {
	const char *name;
	uint32_t backend;
	int32_t key;
};

static int create_and_exit(void *arg)
{
	const struct creator_arg *a = arg;
	struct shmkit_segment_opts o = {.backend = a->backend, .sysv_key = a->key};
	struct shmkit_segment *seg;
	int err = shmkit_segment_create(a->name, 4096, &o, &seg);
	shmkit_segment_close(seg);
	return err == 0 ? 0 : 1;
}

/* Creates `name` from a child process that then exits: a dead creator. Returns its pid. */
static pid_t create_from_dead_child(const char *name, uint32_t backend, int32_t key)
{
	struct creator_arg a = {name, backend, key};
	t_track(name, backend);
	pid_t pid = t_fork(create_and_exit, &a);
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	return pid;
}

START_TEST(test_gc)
{
	for (int b = 0; b < T_NAMED_BACKENDS; b++) {
		uint32_t be = t_backends[b];
		const char *bn = shmkit_backend_name(be);
		char dead[64], alive[64], att[64];
		t_name(dead, sizeof dead, "gcdead");
		t_name(alive, sizeof alive, "gcalive");
		t_name(att, sizeof att, "gcatt");
		/* Dead creator, nobody attached: garbage. */
		pid_t dead_pid = create_from_dead_child(dead, be, 0);
		/* Living creator (this process), nobody attached: kept. */
		shmkit_segment_close(make_seg(alive, be, 0, 0600));
		/* Dead creator, but a live process (this one) has it attached: kept. */
		pid_t att_pid = create_from_dead_child(att, be, 0);
		struct shmkit_segment_opts o = {.backend = be};
		struct shmkit_segment *held;
		ck_assert_int_eq(shmkit_segment_open(att, &o, &held), 0);

		char prefix[128], want[256];
		if (be == SHMKIT_BACKEND_SYSV) {
			int32_t key;
			shmkit_sysv_key_for_name(dead, &key);
			snprintf(prefix, sizeof prefix, "%s (sysv, key %d, ", dead, (int)key);
		} else {
			snprintf(prefix, sizeof prefix, "%s (posix, ", dead);
		}

		/* --dry-run reports and removes nothing. */
		snprintf(want, sizeof want, "would remove %screator %d dead)\n", prefix, (int)dead_pid);
		struct t_run *r = run_gc_until(want, "--dry-run", NULL);
		ck_assert_msg(r->status == 0, "%s", r->err);
		ck_assert_msg(strstr(r->out, want), "%s: no '%s' in:\n%s", bn, want, r->out);
		/* It says why for every segment, the ordinary ones too. */
		snprintf(want, sizeof want, "kept %s (%s, ", alive, bn);
		const char *line = strstr(r->out, want);
		ck_assert_msg(line && strstr(line, " alive)\n"), "%s", r->out);
		snprintf(want, sizeof want, "kept %s (", att);
		ck_assert_msg(strstr(r->out, want), "%s", r->out);
		/* "attached by 1", or more while somebody else is looking at it. */
		snprintf(want, sizeof want, "creator %d dead, attached by ", (int)att_pid);
		ck_assert_msg(strstr(r->out, want), "%s", r->out);
		ck_assert_msg(strstr(r->out, "\ngc: ") || strncmp(r->out, "gc: ", 4) == 0, "%s", r->out);
		ck_assert(seg_exists(dead, be, 0));

		r = run_cli("gc", "--dry-run", "--json");
		ck_assert_int_eq(r->status, 0);
		ck_assert_msg(json_valid(r->out), "not JSON: %s", r->out);
		ck_assert(strstr(r->out, "\"dry_run\":true"));
		ck_assert(seg_exists(dead, be, 0));

		/* -v reports the ordinary reasons too. */
		r = run_cli("gc", "--dry-run", "-v");
		snprintf(want, sizeof want, "kept %s (%s, ", alive, bn);
		ck_assert_msg(strstr(r->out, want), "%s", r->out);

		snprintf(want, sizeof want, "removed %screator %d dead)\n", prefix, (int)dead_pid);
		r = run_gc_until(want, NULL, NULL);
		ck_assert_msg(r->status == 0, "%s", r->err);
		ck_assert_msg(strstr(r->out, want), "%s: no '%s' in:\n%s", bn, want, r->out);
		ck_assert(strstr(r->out, "gc: "));
		ck_assert_msg(!strstr(r->out, alive), "ordinary reason without -v: %s", r->out);
		ck_assert(!seg_exists(dead, be, 0));
		ck_assert(seg_exists(alive, be, 0));
		ck_assert(seg_exists(att, be, 0));

		/* Once nobody has it attached, the second one is garbage too. */
		shmkit_segment_close(held);
		snprintf(want, sizeof want, "removed %s (%s, ", att, bn);
		r = run_gc_until(want, NULL, NULL);
		ck_assert_int_eq(r->status, 0);
		ck_assert_msg(!seg_exists(att, be, 0), "%s: %s kept:\n%s", bn, att, r->out);
		ck_assert(seg_exists(alive, be, 0));
	}
}
END_TEST

START_TEST(test_gc_sysv_shared_name)
{
	/* One name at two System V keys: a live one at the derived key, a dead one at an
	 * explicit key. gc removes the dead one by its key and leaves the live one alone. */
	char name[64], keystr[16];
	t_name(name, sizeof name, "gcshared");
	struct shmkit_segment *live = make_seg(name, SHMKIT_BACKEND_SYSV, 0, 0600);
	uint64_t rng = t_seed() ^ 0x5a5a;
	int32_t key = 0;
	for (int i = 0; i < 100 && !key; i++) {
		int32_t k = (int32_t)(0x10000000 + t_rand(&rng) % 0x60000000);
		if (shmget((key_t)k, 0, 0) < 0 && errno == ENOENT)
			key = k;
	}
	ck_assert_int_ne(key, 0);
	pid_t dead_pid = create_from_dead_child(name, SHMKIT_BACKEND_SYSV, key);
	snprintf(keystr, sizeof keystr, "%d", (int)key);

	char want[256];
	snprintf(want, sizeof want, "removed %s (sysv, key %d, creator %d dead)\n", name, (int)key,
		 (int)dead_pid);
	struct t_run *r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	ck_assert(!seg_exists(NULL, SHMKIT_BACKEND_SYSV, key));
	ck_assert(seg_exists(name, SHMKIT_BACKEND_SYSV, 0));
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_info(live, &inf), 0);
	ck_assert_int_eq(inf.status, 0);
	shmkit_segment_close(live);
}
END_TEST

/* --- lifetimes and identity-checked removal (issue 13) ------------------------------------ */

/* The lifetime stat reports for `name`: "persistent", "ephemeral" or "" when not found. */
static const char *lifetime_of(const char *name, uint32_t backend)
{
	struct shmkit_segment_opts o = {.backend = backend};
	struct shmkit_segment_info inf;
	if (shmkit_segment_stat(name, &o, &inf) < 0)
		return "";
	return cli_lifetime_word(inf.lifetime) ? cli_lifetime_word(inf.lifetime) : "?";
}

START_TEST(test_table_persistent_gc)
{
	/* The session: a table made from the shell, its creator long gone, survives
	 * gc with its data. */
	char name[64], eph[64], want[256];
	t_name_tracked(name, sizeof name, "cfg", SHMKIT_BACKEND_POSIX);
	t_name_tracked(eph, sizeof eph, "cfgeph", SHMKIT_BACKEND_POSIX);
	struct t_run *r = run_cli("table", "create", name, "--capacity", "64", "--key-max", "32",
				  "--value-max", "256");
	ck_assert_msg(r->status == 0, "%s", r->err);
	r = run_cli("table", "put", name, "a", "1");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(lifetime_of(name, SHMKIT_BACKEND_POSIX), "persistent");
	r = run_cli("table", "create", eph, "--capacity", "64", "--ephemeral");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(lifetime_of(eph, SHMKIT_BACKEND_POSIX), "ephemeral");

	/* --dry-run says why, for both. */
	snprintf(want, sizeof want, "would remove %s (posix, creator ", eph);
	r = run_gc_until(want, "--dry-run", NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	snprintf(want, sizeof want, "kept %s (posix, persistent)\n", name);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);

	snprintf(want, sizeof want, "removed %s (posix, creator ", eph);
	r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	ck_assert_msg(!strstr(r->out, name), "a persistent table reported without -v:\n%s", r->out);
	ck_assert(!seg_exists(eph, SHMKIT_BACKEND_ANY, 0));
	r = run_cli("table", "get", name, "a");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "1\n");

	/* ls and stat --json show it. */
	r = run_cli("stat", "--json", name);
	ck_assert_int_eq(r->status, 0);
	assert_member(r->out, "lifetime", "\"persistent\"");
	r = run_cli("ls");
	char col[12][64];
	ck_assert_msg(ls_line(r->out, name, "posix", col), "%s", r->out);
	ck_assert_str_eq(col[4], "persistent");

	/* Only rm removes it. */
	r = run_cli("rm", name);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));

	/* The two contradict; neither applies to opening. */
	assert_usage_error(run_cli("table", "create", name, "--persistent", "--ephemeral"));
	assert_usage_error(run_cli("table", "get", name, "a", "--persistent"));
	assert_usage_error(run_cli("pub", name, "--ephemeral"));
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

static int create_unpublished_and_exit(void *arg)
{
	const char *name = arg;
	struct shmkit_segment_opts o = {.flags = SHMKIT_SEG_PERSISTENT | SHMKIT_SEG_DEFER_READY};
	struct shmkit_segment *seg;
	return shmkit_segment_create(name, 4096, &o, &seg) == 0 ? 0 : 1;
}

START_TEST(test_gc_unpublished_persistent)
{
	/* A persistent segment whose creator died before publishing it is of no use to anyone:
	 * gc removes it like an ephemeral one. */
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "unpub", SHMKIT_BACKEND_POSIX);
	pid_t pid = t_fork(create_unpublished_and_exit, name);
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	ck_assert_str_eq(lifetime_of(name, SHMKIT_BACKEND_POSIX), "persistent");
	snprintf(want, sizeof want, "removed %s (posix, creator %d dead before publishing it)\n",
		 name, (int)pid);
	struct t_run *r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

/* Starts `shmkit pub NAME --create [extra]` reading from a pipe this test holds open, and
 * waits for the channel to exist. Returns the pid; *wfd is the pipe's write end. */
static pid_t start_pub_creator(struct t_proc *p, const char *name, const char *extra, int *wfd)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	start_cli(p, fds[0], -1, "pub", name, "--create", extra);
	close(fds[0]);
	*wfd = fds[1];
	T_WAIT_FOR(seg_ready(name));
	ck_assert_msg(seg_ready(name), "pub never created %s", name);
	return p->pid;
}

START_TEST(test_chan_killed_creator)
{
	/* A stream channel is ephemeral: once its creator is killed (and nobody maps it), gc
	 * removes it. With --persistent it stays. */
	char eph[64], per[64], want[256];
	t_name_tracked(eph, sizeof eph, "killed", SHMKIT_BACKEND_POSIX);
	t_name_tracked(per, sizeof per, "killedp", SHMKIT_BACKEND_POSIX);
	struct t_proc pe, pp;
	int we, wp;
	pid_t eph_pid = start_pub_creator(&pe, eph, NULL, &we);
	start_pub_creator(&pp, per, "--persistent", &wp);
	ck_assert_str_eq(lifetime_of(eph, SHMKIT_BACKEND_POSIX), "ephemeral");
	ck_assert_str_eq(lifetime_of(per, SHMKIT_BACKEND_POSIX), "persistent");

	/* Alive: kept, and --dry-run says so. */
	snprintf(want, sizeof want, "kept %s (posix, creator %d alive)\n", eph, (int)eph_pid);
	struct t_run *r = run_gc_until(want, "--dry-run", NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);

	ck_assert_int_eq(kill(pe.pid, SIGKILL), 0);
	ck_assert_int_eq(kill(pp.pid, SIGKILL), 0);
	ck_assert_int_eq(t_finish(&pe, 10000), 128 + SIGKILL);
	ck_assert_int_eq(t_finish(&pp, 10000), 128 + SIGKILL);
	t_proc_free(&pe);
	t_proc_free(&pp);
	close(we);
	close(wp);

	snprintf(want, sizeof want, "removed %s (posix, creator %d dead)\n", eph, (int)eph_pid);
	r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	ck_assert(!seg_exists(eph, SHMKIT_BACKEND_ANY, 0));
	ck_assert(seg_exists(per, SHMKIT_BACKEND_POSIX, 0));
	r = run_cli("gc", "--dry-run", "--json");
	ck_assert(json_valid(r->out));
	char q[80];
	snprintf(q, sizeof q, "\"%s\"", per);
	const char *segs = strstr(r->out, "\"segments\":[");
	ck_assert_msg(segs, "%s", r->out);
	const char *o = json_find(segs + strlen("\"segments\":"), "name", q, NULL, NULL);
	ck_assert_msg(o, "%s", r->out);
	assert_member(o, "action", "\"kept\"");
	assert_member(o, "reason", "\"persistent\"");
	assert_member(o, "lifetime", "\"persistent\"");
	r = run_cli("rm", per);
	ck_assert_msg(r->status == 0, "%s", r->err);
}
END_TEST

START_TEST(test_pubsub_persistent)
{
	/* pub --pubsub --create keeps its channel after the end of its input, persistent by
	 * default; --ephemeral makes it garbage once the publisher is gone. */
	char per[64], eph[64], want[256];
	t_name_tracked(per, sizeof per, "psper", SHMKIT_BACKEND_POSIX);
	t_name_tracked(eph, sizeof eph, "pseph", SHMKIT_BACKEND_POSIX);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(null, 0);
	struct t_proc p;
	start_cli(&p, null, -1, "pub", per, "--pubsub", "--create");
	ck_assert_int_eq(t_finish(&p, 20000), 0);
	t_proc_free(&p);
	start_cli(&p, null, -1, "pub", eph, "--pubsub", "--create", "--ephemeral");
	ck_assert_int_eq(t_finish(&p, 20000), 0);
	t_proc_free(&p);
	close(null);
	ck_assert_str_eq(lifetime_of(per, SHMKIT_BACKEND_POSIX), "persistent");
	ck_assert_str_eq(lifetime_of(eph, SHMKIT_BACKEND_POSIX), "ephemeral");

	snprintf(want, sizeof want, "removed %s (posix, creator ", eph);
	struct t_run *r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	ck_assert(!seg_exists(eph, SHMKIT_BACKEND_ANY, 0));
	ck_assert(seg_exists(per, SHMKIT_BACKEND_POSIX, 0));
	r = run_cli("rm", "-v", per);
	ck_assert_msg(r->status == 0, "%s", r->err);
}
END_TEST

/* Creates a regular file at /dev/shm/shmkit.<name> holding no shmkit header (another
 * program's object at a shmkit name). */
static void make_foreign_posix(const char *name)
{
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	char junk[4096];
	memset(junk, 0x42, sizeof junk);
	ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
	close(fd);
}

START_TEST(test_rm_foreign_alike)
{
	/* Not shmkit segments, one at a POSIX name and one at a System V key: rm refuses both
	 * alike without --force, naming the system tool, and removes nothing else given with
	 * them; gc keeps both, saying why. */
	char fname[64], good[64], keystr[16], want[256];
	t_name_tracked(fname, sizeof fname, "frn", SHMKIT_BACKEND_POSIX);
	t_name(good, sizeof good, "good");
	make_foreign_posix(fname);
	shmkit_segment_close(make_seg(good, SHMKIT_BACKEND_POSIX, 0, 0600));
	int id;
	int32_t key = make_foreign_sysv(0, &id);
	snprintf(keystr, sizeof keystr, "%d", (int)key);

	struct t_run *r = run_cli("rm", good, fname);
	assert_runtime_error(r);
	snprintf(want, sizeof want, "shmkit: rm: %s: not a shmkit segment (posix, foreign): not "
		 "removed without --force; or remove it with: rm /dev/shm/shmkit.%s\n", fname, fname);
	ck_assert_str_eq(r->err, want);
	ck_assert(seg_exists(good, SHMKIT_BACKEND_POSIX, 0));
	r = run_cli("rm", "--sysv-key", keystr);
	assert_runtime_error(r);
	snprintf(want, sizeof want, "shmkit: rm: key %d: not a shmkit segment (sysv, foreign): not "
		 "removed without --force; or remove it with: ipcrm -m %d\n", (int)key, id);
	ck_assert_str_eq(r->err, want);

	r = run_cli("gc", "--dry-run");
	snprintf(want, sizeof want, "kept %s (posix, foreign: not a shmkit segment)\n", fname);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);

	/* --force removes them, each the same way. */
	r = run_cli("rm", "--force", "-v", good, fname);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert(!seg_exists(good, SHMKIT_BACKEND_ANY, 0));
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", fname);
	ck_assert_int_ne(access(path, F_OK), 0);
	r = run_cli("rm", "-f", "--sysv-key", keystr);
	ck_assert_msg(r->status == 0, "%s", r->err);
	struct shmid_ds ds;
	ck_assert_int_lt(shmctl(id, IPC_STAT, &ds), 0);
}
END_TEST

START_TEST(test_group_writable_foreign)
{
	/* A table made group-writable is not ours any more, even to its owner: the opening
	 * commands refuse it unless --foreign, gc keeps it, rm wants --force. */
	char name[64], want[256];
	t_name_tracked(name, sizeof name, "grp", SHMKIT_BACKEND_POSIX);
	struct t_run *r = run_cli("table", "create", name, "--capacity", "16", "--mode", "0660",
				  "--ephemeral");
	ck_assert_msg(r->status == 0, "%s", r->err);
	r = run_cli("table", "put", name, "k", "v");
	assert_runtime_error(r);
	ck_assert_msg(strstr(r->err, "not ours"), "%s", r->err);
	r = run_cli("table", "put", "--foreign", name, "k", "v");
	ck_assert_msg(r->status == 0, "%s", r->err);
	r = run_cli("table", "get", name, "k", "--foreign");
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert_str_eq(r->out, "v\n");
	assert_usage_error(run_cli("table", "create", "x", "--foreign"));

	r = run_cli("gc", "--dry-run");
	snprintf(want, sizeof want, "kept %s (posix, not ours)\n", name);
	ck_assert_msg(strstr(r->out, want), "no '%s' in:\n%s", want, r->out);
	r = run_cli("rm", name);
	assert_runtime_error(r);
	ck_assert_msg(strstr(r->err, "not ours") && strstr(r->err, "--force"), "%s", r->err);
	ck_assert(seg_exists(name, SHMKIT_BACKEND_POSIX, 0));
	r = run_cli("rm", "--force", name);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert(!seg_exists(name, SHMKIT_BACKEND_ANY, 0));
}
END_TEST

/* Runs the CLI with its removal test hook (SHMKIT_TEST_REMOVE_SYNC_FD, cli/admin.c):
 * between(arg) runs once the command has looked at everything and before it removes
 * anything. */
static struct t_run *run_cli_synced(void (*between)(void *), void *arg,
				    const char *const *args)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); /* inherited: no CLOEXEC */
	fcntl(sv[0], F_SETFD, FD_CLOEXEC);
	char fdstr[16];
	snprintf(fdstr, sizeof fdstr, "%d", sv[1]);
	setenv("SHMKIT_TEST_REMOVE_SYNC_FD", fdstr, 1);
	struct t_proc p;
	t_spawn_cli(&p, -1, -1, args);
	unsetenv("SHMKIT_TEST_REMOVE_SYNC_FD");
	close(sv[1]);
	char b;
	ck_assert_msg(read(sv[0], &b, 1) == 1, "the CLI never reached its removals");
	between(arg);
	ck_assert_int_eq(write(sv[0], "G", 1), 1);
	static struct t_run r;
	t_run_collect(&r, &p, 20000);
	close(sv[0]);
	return &r;
}

struct recreate_arg {
	const char *name;
	uint32_t backend;
	pid_t new_pid;
};

/* Removes the object at a name and creates another there from a dead child: one gc would
 * remove too, if it went by the name. */
static void recreate(void *p)
{
	struct recreate_arg *a = p;
	struct shmkit_segment_opts o = {.backend = a->backend};
	ck_assert_int_ge(shmkit_segment_remove(a->name, &o), 1);
	a->new_pid = create_from_dead_child(a->name, a->backend, 0);
}

START_TEST(test_gc_recreated)
{
	uint32_t be = t_backends[_i];
	char name[64], want[256];
	t_name(name, sizeof name, "gcrace");
	pid_t old_pid = create_from_dead_child(name, be, 0);
	struct recreate_arg a = {name, be, 0};
	/* Wait until gc would remove it (nobody else looking at it), then race it. */
	snprintf(want, sizeof want, "would remove %s (", name);
	struct t_run *r = run_gc_until(want, "--dry-run", NULL);
	ck_assert_msg(strstr(r->out, want), "%s", r->out);
	r = run_cli_synced(recreate, &a, (const char *const[]){"gc", NULL});
	ck_assert_msg(r->status == 0, "%s", r->err);
	snprintf(want, sizeof want, "kept %s (%s, ", name, shmkit_backend_name(be));
	const char *line = strstr(r->out, want);
	ck_assert_msg(line && strstr(line, "replaced since it was listed)\n"), "%s", r->out);
	ck_assert_int_ne(a.new_pid, old_pid);
	struct shmkit_segment_opts o = {.backend = be};
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &inf), 0);
	ck_assert_int_eq(inf.creator_pid, a.new_pid); /* the new one, untouched */
	/* A gc of its own removes the new one, which is garbage too. */
	snprintf(want, sizeof want, "creator %d dead)\n", (int)a.new_pid);
	r = run_gc_until(want, NULL, NULL);
	ck_assert_msg(strstr(r->out, want), "%s", r->out);
	ck_assert(!seg_exists(name, be, 0));
}
END_TEST

START_TEST(test_rm_recreated)
{
	uint32_t be = t_backends[_i];
	char name[64], want[256];
	t_name(name, sizeof name, "rmrace");
	create_from_dead_child(name, be, 0);
	struct recreate_arg a = {name, be, 0};
	const char *bk = shmkit_backend_name(be);
	struct t_run *r =
		run_cli_synced(recreate, &a, (const char *const[]){"rm", "--backend", bk, name, NULL});
	assert_runtime_error(r);
	snprintf(want, sizeof want, ": replaced by another object since it was checked; not "
				    "removed\n");
	ck_assert_msg(strstr(r->err, want), "%s", r->err);
	struct shmkit_segment_opts o = {.backend = be};
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &inf), 0);
	ck_assert_int_eq(inf.creator_pid, a.new_pid);
	r = run_cli("rm", name);
	ck_assert_msg(r->status == 0, "%s", r->err);
	ck_assert(!seg_exists(name, be, 0));
}
END_TEST

/* --- unit tests of the CLI helpers ------------------------------------------------------ */

static void assert_json_string(const char *in, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	cli_json_string(f, in);
	fclose(f);
	ck_assert_str_eq(text, want);
	ck_assert(json_valid(text));
	free(text);
}

START_TEST(test_json_string)
{
	assert_json_string("", "\"\"");
	assert_json_string("plain.name-1_2", "\"plain.name-1_2\"");
	assert_json_string("q\"b\\s/", "\"q\\\"b\\\\s/\"");
	assert_json_string("\n\t\r\x01\x1f", "\"\\n\\t\\r\\u0001\\u001f\"");
	/* Valid UTF-8 passes through; anything else becomes U+FFFD, byte by byte. */
	assert_json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
			   "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	assert_json_string("\xff", "\"\\ufffd\"");
	assert_json_string("\xc0\xaf", "\"\\ufffd\\ufffd\"");             /* overlong '/' */
	assert_json_string("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");   /* surrogate */
	assert_json_string("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
	assert_json_string("a\xe2\x82", "\"a\\ufffd\\ufffd\"");            /* cut short */
}
END_TEST

START_TEST(test_format_helpers)
{
	char b[32];
	ck_assert_str_eq(cli_human_size(b, sizeof b, 0), "0B");
	ck_assert_str_eq(cli_human_size(b, sizeof b, 1023), "1023B");
	ck_assert_str_eq(cli_human_size(b, sizeof b, 1024), "1.0K");
	ck_assert_str_eq(cli_human_size(b, sizeof b, 4096), "4.0K");
	ck_assert_str_eq(cli_human_size(b, sizeof b, 10 * 1024), "10K");
	ck_assert_str_eq(cli_human_size(b, sizeof b, 3 * 512 * 1024), "1.5M");
	ck_assert_str_eq(cli_human_size(b, sizeof b, UINT64_MAX), "16E");
	ck_assert_str_eq(cli_status_word(0), "ok");
	ck_assert_str_eq(cli_status_word(-EBADMSG), "corrupt");
	ck_assert_str_eq(cli_status_word(-ENOTUNIQ), "foreign");
	ck_assert_str_eq(cli_status_word(-EAGAIN), "not-ready");
	ck_assert_str_eq(cli_status_word(-EPROTO), "incompatible");
	ck_assert_str_eq(cli_status_word(-ERANGE), "truncated");
	ck_assert_ptr_null(cli_iso_time(b, sizeof b, 0));
	ck_assert_str_eq(cli_iso_time(b, sizeof b, 1000000000ull * 86400 + 5), "1970-01-02T00:00:00Z");

	int v;
	ck_assert_int_eq(cli_parse_int("-2147483648", INT32_MIN, INT32_MAX, &v), 0);
	ck_assert_int_eq(v, INT32_MIN);
	ck_assert_int_eq(cli_parse_int("2147483647", INT32_MIN, INT32_MAX, &v), 0);
	ck_assert_int_eq(v, INT32_MAX);
	ck_assert_int_eq(cli_parse_int("-", 0, 10, &v), -EINVAL);
	ck_assert_int_eq(cli_parse_int("-1", 0, 10, &v), -ERANGE);
	ck_assert_int_eq(cli_parse_int("11", 0, 10, &v), -ERANGE);
	uint64_t u;
	ck_assert_int_eq(cli_parse_u64("18446744073709551615", 10, UINT64_MAX, &u), 0);
	ck_assert(u == UINT64_MAX);
	ck_assert_int_eq(cli_parse_u64("18446744073709551616", 10, UINT64_MAX, &u), -ERANGE);
	ck_assert_int_eq(cli_parse_u64("0xffffffff", 16, UINT32_MAX, &u), 0);
	ck_assert(u == UINT32_MAX);
	ck_assert_int_eq(cli_parse_u64("ff", 16, UINT32_MAX, &u), -EINVAL);
	int32_t key;
	ck_assert_int_eq(cli_parse_sysv_key("0x3039", &key), 0);
	ck_assert_int_eq(key, 12345);
	ck_assert_int_eq(cli_parse_sysv_key("0xffffffff", &key), 0);
	ck_assert_int_eq(key, -1);
	ck_assert_int_eq(cli_parse_sysv_key("-0", &key), -EINVAL);
}
END_TEST

/* --- suite ------------------------------------------------------------------------------------ */

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");

	TCase *tc = t_tcase(s, "usage", 60);
	tcase_add_test(tc, test_help);
	tcase_add_test(tc, test_command_help);
	tcase_add_test(tc, test_version);
	tcase_add_test(tc, test_unknown_command);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_number_parsing);

	tc = t_tcase(s, "helpers", 10);
	tcase_add_test(tc, test_json_string);
	tcase_add_test(tc, test_format_helpers);

	tc = t_tcase(s, "demo", 120);
	tcase_add_test(tc, test_demo_output);
	tcase_add_test(tc, test_example_output);
	/* _i: 0 the channel version, 1 --semaphores */
	tcase_add_loop_test(tc, test_demo_long, 0, 2);
	tcase_add_loop_test(tc, test_demo_consumer_killed, 0, 2);
	tcase_add_loop_test(tc, test_demo_producer_killed, 0, 2);
	tcase_add_test(tc, test_demo_stale_segment);
	tcase_add_test(tc, test_demo_key_in_use);

	tc = t_tcase(s, "pubsub", 120);
	tcase_add_test(tc, test_pubsub_raw);
	tcase_add_test(tc, test_pubsub_lines);
	tcase_add_test(tc, test_pubsub_len);
	tcase_add_test(tc, test_sub_waits_for_pub);
	tcase_add_test(tc, test_sub_timeout);
	tcase_add_test(tc, test_sub_producer_killed);
	tcase_add_test(tc, test_pub_consumer_killed);
	tcase_add_test(tc, test_sub_reader_gone);
	tcase_add_test(tc, test_pub_errors);
	tcase_add_test(tc, test_pub_existing);
	tcase_add_test(tc, test_stat_stream);
	tcase_add_test(tc, test_sub_keep);

	tc = t_tcase(s, "admin", 60);
	tcase_add_test(tc, test_ls);
	tcase_add_test(tc, test_ls_json);
	tcase_add_test(tc, test_stat);
	tcase_add_test(tc, test_stat_corrupt);
	tcase_add_test(tc, test_stat_foreign_sysv);
	tcase_add_test(tc, test_stat_missing);
	tcase_add_test(tc, test_rm);
	tcase_add_test(tc, test_rm_sysv_key);
	tcase_add_test(tc, test_gc);
	tcase_add_test(tc, test_gc_sysv_shared_name);

	tc = t_tcase(s, "lifetime", 120);
	tcase_add_test(tc, test_table_persistent_gc);
	tcase_add_test(tc, test_gc_unpublished_persistent);
	tcase_add_test(tc, test_chan_killed_creator);
	tcase_add_test(tc, test_pubsub_persistent);
	tcase_add_test(tc, test_rm_foreign_alike);
	tcase_add_test(tc, test_group_writable_foreign);
	/* _i: 0 POSIX, 1 System V */
	tcase_add_loop_test(tc, test_gc_recreated, 0, T_NAMED_BACKENDS);
	tcase_add_loop_test(tc, test_rm_recreated, 0, T_NAMED_BACKENDS);
	return s;
}

int main(void)
{
	static Suite *(*const makers[])(void) = {cli_suite};
	return t_main(makers, 1);
}
