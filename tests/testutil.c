/* shmkit tests — helpers shared by every Check suite. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The pid of the process running the suites: every name a test makes starts with
 * "t<run_pid>.", so the runner can sweep what a failed test left behind (Check ends a
 * failed test with _exit(), which skips atexit cleanups). */
static pid_t run_pid;

const char *t_name(char *buf, size_t cap, const char *tag)
{
	static unsigned counter;
	snprintf(buf, cap, "t%d.%d.%s.%u", (int)(run_pid ? run_pid : getpid()), (int)getpid(), tag,
		 counter++);
	return buf;
}

/* Removes every segment named by this run; returns how many there were. */
static int t_sweep(void)
{
	char prefix[32];
	snprintf(prefix, sizeof prefix, "t%d.", (int)run_pid);
	struct shmkit_segment_info *l;
	int n = shmkit_segment_list(&l);
	int swept = 0;
	for (int i = 0; i < n; i++) {
		if (strncmp(l[i].name, prefix, strlen(prefix)) != 0)
			continue;
		struct shmkit_segment_opts o = {.backend = l[i].backend};
		if (l[i].backend == SHMKIT_BACKEND_SYSV)
			o.sysv_key = l[i].sysv_key;
		if (shmkit_segment_remove(l[i].backend == SHMKIT_BACKEND_SYSV ? NULL : l[i].name,
					  &o) > 0) {
			fprintf(stderr, "left behind: %s (%s)\n", l[i].name,
				shmkit_backend_name(l[i].backend));
			swept++;
		}
	}
	if (n >= 0)
		shmkit_segment_list_free(l);
	return swept;
}

#define T_TRACK_MAX 64
static struct {
	char name[SHMKIT_NAME_MAX + 1];
	uint32_t backend;
} tracked[T_TRACK_MAX];
static int ntracked;
static pid_t tracker_pid;

static void t_cleanup(void)
{
	if (getpid() != tracker_pid)
		return;
	for (int i = 0; i < ntracked; i++) {
		struct shmkit_segment_opts o = {.backend = tracked[i].backend};
		(void)shmkit_segment_remove(tracked[i].name, &o);
	}
	ntracked = 0;
}

void t_track(const char *name, uint32_t backend)
{
	if (!name || backend == SHMKIT_BACKEND_MEMFD)
		return;
	if (tracker_pid != getpid()) {
		/* First registration in this (test) process. */
		tracker_pid = getpid();
		ntracked = 0;
		atexit(t_cleanup);
	}
	if (ntracked < T_TRACK_MAX) {
		snprintf(tracked[ntracked].name, sizeof tracked[ntracked].name, "%s", name);
		tracked[ntracked].backend = backend;
		ntracked++;
	}
}

const char *t_name_tracked(char *buf, size_t cap, const char *tag, uint32_t backend)
{
	t_name(buf, cap, tag);
	t_track(buf, backend);
	return buf;
}

struct shmkit_segment *t_raw_segment(char *name, size_t cap)
{
	t_name_tracked(name, cap, "raw", SHMKIT_BACKEND_POSIX);
	struct shmkit_segment *seg = NULL;
	int err = shmkit_segment_create(name, 4096, NULL, &seg);
	ck_assert_msg(err == 0, "create %s: %s", name, shmkit_strerror(err));
	return seg;
}

struct t_where t_where_of(const char *name, uint32_t backend, struct shmkit_segment *seg)
{
	struct t_where w = {name, backend, -1};
	if (backend == SHMKIT_BACKEND_MEMFD)
		w.fd = shmkit_segment_fd(seg);
	return w;
}

int t_where_remove(const struct t_where *w)
{
	if (w->backend == SHMKIT_BACKEND_MEMFD)
		return 0;
	struct shmkit_segment_opts so = {.backend = w->backend};
	return shmkit_segment_remove(w->name, &so);
}

/* --- the cross-process harness ------------------------------------------------------------ */

const uint32_t t_backends[T_BACKENDS] = {SHMKIT_BACKEND_POSIX, SHMKIT_BACKEND_SYSV,
					 SHMKIT_BACKEND_MEMFD};

struct t_shared *t_shared_new(void)
{
	return t_shm_alloc(sizeof(struct t_shared));
}

void t_shared_free(struct t_shared *sh)
{
	munmap(sh, sizeof *sh);
}

/* The name to create under: none for memfd. */
static const char *create_name(const char *name, uint32_t backend)
{
	return backend == SHMKIT_BACKEND_MEMFD ? NULL : name;
}

/* Fails the test when a create did, else tracks the new object's name. */
static void created(int err, const char *name, uint32_t backend)
{
	ck_assert_msg(err == 0, "create %s: %s", name ? name : "(memfd)", shmkit_strerror(err));
	t_track(name, backend);
}

struct shmkit_chan *t_chan_new(const char *name, int role, const struct shmkit_chan_opts *o)
{
	struct shmkit_chan *ch = NULL;
	name = create_name(name, o->seg.backend);
	created(shmkit_chan_create(name, role, o, &ch), name, o->seg.backend);
	return ch;
}

struct shmkit_pubsub *t_pubsub_new(const char *name, int role, const struct shmkit_pubsub_opts *o)
{
	struct shmkit_pubsub *ps = NULL;
	name = create_name(name, o->seg.backend);
	created(shmkit_pubsub_create(name, role, o, &ps), name, o->seg.backend);
	return ps;
}

struct shmkit_queue *t_queue_new(const char *name, const struct shmkit_queue_opts *o)
{
	struct shmkit_queue *q = NULL;
	name = create_name(name, o->seg.backend);
	created(shmkit_queue_create(name, o, &q), name, o->seg.backend);
	return q;
}

/* The segment options of an opener at `w`: its backend, and read-only for an observer. */
static struct shmkit_segment_opts open_seg(const struct t_where *w, bool observer)
{
	return (struct shmkit_segment_opts){.backend = w->backend,
					    .flags = observer ? SHMKIT_SEG_RDONLY : 0};
}

int t_chan_open(const struct t_where *w, int role, uint32_t flags, struct shmkit_chan **ch)
{
	struct shmkit_chan_opts o = {.flags = flags,
				     .seg = open_seg(w, role == SHMKIT_CHAN_OBSERVER)};
	if (w->backend == SHMKIT_BACKEND_MEMFD)
		return shmkit_chan_open_fd(w->fd, role, &o, ch);
	return shmkit_chan_open(w->name, role, &o, ch);
}

int t_pubsub_open(const struct t_where *w, int role, uint32_t flags, struct shmkit_pubsub **ps)
{
	struct shmkit_pubsub_opts o = {.flags = flags,
				       .seg = open_seg(w, role == SHMKIT_PUBSUB_OBSERVER)};
	if (w->backend == SHMKIT_BACKEND_MEMFD)
		return shmkit_pubsub_open_fd(w->fd, role, &o, ps);
	return shmkit_pubsub_open(w->name, role, &o, ps);
}

int t_queue_open(const struct t_where *w, uint32_t flags, struct shmkit_queue **q)
{
	struct shmkit_queue_opts o = {.flags = flags, .seg = open_seg(w, false)};
	if (w->backend == SHMKIT_BACKEND_MEMFD)
		return shmkit_queue_open_fd(w->fd, &o, q);
	return shmkit_queue_open(w->name, &o, q);
}

static int scribble_main(void *arg)
{
	const struct t_scribble *s = arg;
	uint64_t rng = s->seed;
	uint64_t end = shmkit_now_ns() + s->ms * 1000000ull;
	while (shmkit_now_ns() < end) {
		uint64_t v = t_rand(&rng);
		size_t off = s->pick(s, &rng, &v);
		atomic_store((_Atomic uint64_t *)(void *)(s->base + off), v);
	}
	return 0;
}

pid_t t_scribble(struct t_scribble *s)
{
	return t_fork(scribble_main, s);
}

void *t_shm_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	return p;
}

void t_child_fail(_Atomic int *failed, char *why, size_t cap, const char *fmt, ...)
{
	if (atomic_exchange(failed, 1) == 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, cap, fmt, ap);
		va_end(ap);
	}
}

struct timespec *t_in_ms(struct timespec *ts, uint64_t ms)
{
	return shmkit_deadline_after(ts, ms * 1000000ull);
}

void t_sleep_us(uint64_t us)
{
	struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void t_sleep_ms(uint64_t ms)
{
	t_sleep_us(ms * 1000);
}

int64_t t_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void t_msg_fill(uint8_t *p, uint64_t len, uint64_t seq)
{
	uint64_t x = seq * 0xd1342543de82ef95ull + 1;
	uint64_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = i == 0 ? seq : (x += 0x9e3779b97f4a7c15ull);
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++)
		p[i] = (uint8_t)(seq + i);
}

int t_msg_check(const uint8_t *p, uint64_t len, uint64_t seq)
{
	uint64_t x = seq * 0xd1342543de82ef95ull + 1;
	uint64_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != (i == 0 ? seq : (x += 0x9e3779b97f4a7c15ull)))
			return -1;
	}
	for (; i < len; i++)
		if (p[i] != (uint8_t)(seq + i))
			return -1;
	return 0;
}

uint64_t t_msg_seq(const void *p)
{
	uint64_t s;
	memcpy(&s, p, 8);
	return s;
}

pid_t t_fork(int (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn(arg));
	return pid;
}

int t_wait(pid_t pid, int timeout_ms)
{
	int status;
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -1;
		if (waited >= timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

int t_stress(void)
{
	const char *s = getenv("SHMKIT_STRESS");
	return s && *s && strcmp(s, "0") != 0;
}

uint64_t t_seed(void)
{
	static uint64_t seed;
	if (seed == 0) {
		const char *s = getenv("SHMKIT_SEED");
		if (s && *s)
			seed = strtoull(s, NULL, 0);
		else
			seed = (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
		if (seed == 0)
			seed = 1;
	}
	return seed;
}

uint64_t t_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

TCase *t_tcase(Suite *s, const char *name, double timeout_s)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, timeout_s);
	suite_add_tcase(s, tc);
	return tc;
}

int t_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

int t_main(Suite *(*const *makers)(void), int count)
{
	run_pid = getpid();
	printf("seed: SHMKIT_SEED=%llu%s\n", (unsigned long long)t_seed(),
	       t_stress() ? " (stress tier)" : "");
	/* Children inherit the seed so a failure replays with the same numbers. */
	char buf[32];
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)t_seed());
	setenv("SHMKIT_SEED", buf, 1);
	int failed = 0;
	for (int i = 0; i < count; i++)
		failed += t_run(makers[i]());
	int swept = t_sweep();
	if (swept && !failed) {
		/* Every test passed, yet segments remain: the code under test leaks. */
		fprintf(stderr, "%d segment(s) leaked by passing tests\n", swept);
		failed = 1;
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* --- running the CLI ------------------------------------------------------------------------ */

static char cli_path[PATH_MAX];
static char build_dir[PATH_MAX];

static void find_binaries(void)
{
	if (cli_path[0])
		return;
	const char *env = getenv("SHMKIT_CLI");
	if (env && *env) {
		snprintf(cli_path, sizeof cli_path, "%s", env);
		snprintf(build_dir, sizeof build_dir, "%s", env);
		char *slash = strrchr(build_dir, '/');
		if (slash)
			*slash = '\0';
		else
			snprintf(build_dir, sizeof build_dir, ".");
		return;
	}
	/* <builddir>/tests/NAME -> <builddir> */
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			size_t len = strlen(exe);
			if (len >= 6 && strcmp(exe + len - 6, "/tests") == 0) {
				exe[len - 6] = '\0';
				snprintf(build_dir, sizeof build_dir, "%s", exe);
				/* No fallback from here: a missing CLI in this build must fail. */
				snprintf(cli_path, sizeof cli_path, "%s/shmkit", exe);
				return;
			}
		}
	}
	snprintf(build_dir, sizeof build_dir, "build");
	snprintf(cli_path, sizeof cli_path, "build/shmkit");
}

const char *t_cli_path(void)
{
	find_binaries();
	return cli_path;
}

const char *t_build_dir(void)
{
	find_binaries();
	return build_dir;
}

static void buf_add(struct t_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (b->len + n + 1 > cap)
			cap *= 2;
		b->data = realloc(b->data, cap);
		ck_assert_ptr_nonnull(b->data);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void t_spawn(struct t_proc *p, char *const argv[], int in_fd, int out_fd)
{
	int po[2] = {-1, -1}, pe[2];
	memset(p, 0, sizeof *p);
	if (out_fd < 0)
		ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
	fflush(NULL);
	p->pid = fork();
	ck_assert_int_ge(p->pid, 0);
	if (p->pid == 0) {
		if (in_fd >= 0)
			dup2(in_fd, STDIN_FILENO);
		dup2(out_fd >= 0 ? out_fd : po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (out_fd < 0)
		close(po[1]);
	close(pe[1]);
	p->out = po[0];
	p->err = pe[0];
	buf_add(&p->o, "", 0);
	buf_add(&p->e, "", 0);
}

void t_spawn_cli(struct t_proc *p, int in_fd, int out_fd, const char *const *args)
{
	char *argv[40];
	int argc = 0;
	argv[argc++] = (char *)t_cli_path();
	for (; *args && argc < 39; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	t_spawn(p, argv, in_fd, out_fd);
}

bool t_pump(struct t_proc *p, const char *stop, int timeout_ms, size_t keep)
{
	int64_t deadline = t_now_ms() + timeout_ms;
	for (;;) {
		if (stop && strstr(p->o.data, stop))
			return true;
		if (p->out < 0 && p->err < 0)
			return !stop;
		int64_t left = deadline - t_now_ms();
		if (left <= 0)
			return false;
		struct pollfd fds[2] = {{.fd = p->out, .events = POLLIN},
					{.fd = p->err, .events = POLLIN}};
		int r = poll(fds, 2, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		ck_assert_int_ge(r, 0);
		for (int i = 0; i < 2; i++) {
			if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char chunk[65536];
			ssize_t n = read(fds[i].fd, chunk, sizeof chunk);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(fds[i].fd);
				*(i == 0 ? &p->out : &p->err) = -1;
				continue;
			}
			struct t_buf *b = i == 0 ? &p->o : &p->e;
			if (i == 0 && keep && b->len + (size_t)n > keep) {
				/* Keep the tail, where the interesting end of the output is. */
				size_t drop = b->len + (size_t)n - keep;
				if (drop > b->len)
					drop = b->len;
				memmove(b->data, b->data + drop, b->len - drop);
				b->len -= drop;
				b->data[b->len] = '\0';
			}
			buf_add(b, chunk, (size_t)n);
		}
	}
}

int t_finish(struct t_proc *p, int timeout_ms)
{
	bool eof = t_pump(p, NULL, timeout_ms, 0);
	return t_wait(p->pid, eof ? 10000 : 0);
}

void t_proc_free(struct t_proc *p)
{
	if (p->out >= 0)
		close(p->out);
	if (p->err >= 0)
		close(p->err);
	free(p->o.data);
	free(p->e.data);
}

void t_run_collect(struct t_run *r, struct t_proc *p, int timeout_ms)
{
	t_run_free(r);
	r->status = t_finish(p, timeout_ms);
	r->out = p->o.data;
	r->err = p->e.data;
	p->o.data = p->e.data = NULL;
	t_proc_free(p);
}

void t_run_cli(struct t_run *r, int timeout_ms, const char *const *args)
{
	struct t_proc p;
	t_spawn_cli(&p, -1, -1, args);
	t_run_collect(r, &p, timeout_ms);
}

void t_run_free(struct t_run *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

int t_tmp_fd(void)
{
	char path[] = "/tmp/shmkit-test.XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	ck_assert_msg(fd >= 0, "mkostemp: %s", strerror(errno));
	unlink(path);
	return fd;
}

void *t_fd_slurp(int fd, size_t *len)
{
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	char *p = malloc((size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(p);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	p[got] = '\0';
	*len = got;
	return p;
}
