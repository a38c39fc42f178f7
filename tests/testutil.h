/* shmkit tests — helpers shared by every Check suite. */
#ifndef SHMKIT_TESTUTIL_H
#define SHMKIT_TESTUTIL_H

#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "shmkit.h"

/* Check's ck_assert_* macros write a checkpoint to a pipe on every call (a system call),
 * which makes them far too slow inside loops over millions of items. T_CHECK costs nothing
 * when the condition holds and fails the test with a message when it does not. */
#define T_CHECK(cond, ...)                                    \
	do {                                                  \
		if (__builtin_expect(!(cond), 0))             \
			ck_abort_msg("T_CHECK(" #cond ") failed: " __VA_ARGS__); \
	} while (0)

/* Writes a segment name unique to this run, process and call into buf:
 * "t<run pid>.<pid>.<tag>.<n>". t_main() removes whatever such names remain after the
 * suites, and fails the run if passing tests left any. */
const char *t_name(char *buf, size_t cap, const char *tag);

/* Remembers a named segment so it is removed when the registering process exits, even
 * after a failed assertion (Check exits the test process through exit()). Forked
 * children must leave with _exit() so they do not run this cleanup. A NULL name or the
 * memfd backend (nothing to remove by name) is ignored. */
void t_track(const char *name, uint32_t backend);

/* t_name(), then t_track() of that name for `backend`: a fresh name whose segment goes away
 * with the test process. Returns buf. */
const char *t_name_tracked(char *buf, size_t cap, const char *tag, uint32_t backend);

/* Creates a raw (kindless) 4096-byte POSIX segment under a fresh tracked name, written to
 * name[cap]; fails the test if it cannot. Tests use it as "a segment of the wrong kind". */
struct shmkit_segment *t_raw_segment(char *name, size_t cap);

/* How a child process finds an object the test made: by name and backend, or, for a memfd
 * one (name NULL is fine then), through the descriptor it inherits across fork(). */
struct t_where {
	const char *name;
	uint32_t backend;
	int fd; /* memfd only; -1 otherwise */
};

/* The t_where of the object whose segment is `seg`. The memfd descriptor is the segment's
 * own: it goes with the handle, unless the test dup()s it into w.fd. */
struct t_where t_where_of(const char *name, uint32_t backend, struct shmkit_segment *seg);

/* The segment of a stream channel, pub/sub channel, queue or table handle. */
#define T_SEGMENT(h)                                            \
	_Generic((h), struct shmkit_chan *: shmkit_chan_segment,     \
		 struct shmkit_pubsub *: shmkit_pubsub_segment,      \
		 struct shmkit_queue *: shmkit_queue_segment,        \
		 struct shmkit_table *: shmkit_table_segment)(h)

/* The t_where of the object behind handle `h` (any kind T_SEGMENT() knows). */
#define T_WHERE(name, backend, h) t_where_of(name, backend, T_SEGMENT(h))

/* Removes the named segment `w` names: shmkit_segment_remove()'s result (1 when it was
 * still there). 0 for memfd, whose segment goes with its last descriptor and mapping. */
int t_where_remove(const struct t_where *w);

/* Forks; the child runs fn(arg) and leaves with _exit(its return value). Returns the pid. */
pid_t t_fork(int (*fn)(void *), void *arg);

/* Waits up to timeout_ms for `pid`. Returns its exit status (0..255), 128+signal when it
 * was killed by a signal, or -1 when it is still running at the deadline (then it is
 * killed with SIGKILL and reaped). */
int t_wait(pid_t pid, int timeout_ms);

/* Anonymous MAP_SHARED memory of `size` bytes, zero-filled, that forked children share with
 * the test; fails the test if it cannot be mapped. Release it with munmap(). */
void *t_shm_alloc(size_t size);

/* Records the first failure a child process sees in memory it shares with the test: sets
 * *failed and, if it was not set yet, formats the reason into why[cap]. Later reports keep
 * the first reason. Use it through T_CHILD_FAIL. */
void t_child_fail(_Atomic int *failed, char *why, size_t cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* T_CHILD_FAIL(sh, fmt, ...) for any shared struct with members `_Atomic int failed` and
 * `char why[N]`. */
#define T_CHILD_FAIL(sh, ...) \
	t_child_fail(&(sh)->failed, (sh)->why, sizeof (sh)->why, __VA_ARGS__)

/* Options of a read-only handle (the observer role) of a stream / pub/sub channel. */
#define T_CHAN_RO (&(struct shmkit_chan_opts){.seg.flags = SHMKIT_SEG_RDONLY})
#define T_PUBSUB_RO (&(struct shmkit_pubsub_opts){.seg.flags = SHMKIT_SEG_RDONLY})

/* Polls `cond` every 0.5 ms until it holds or 10 s have passed, then goes on either way:
 * the caller asserts what it needs (so a child that never gets ready fails by name). A
 * timeout is said on stderr: a wait whose condition could never hold once cost every run
 * of its suite 10 s, unseen, since its caller asserted nothing about it. */
#define T_WAIT_FOR(cond)                                                        \
	do {                                                                    \
		int t_polls_ = 0;                                               \
		for (; t_polls_ < 20000 && !(cond); t_polls_++)                 \
			t_sleep_us(500);                                        \
		if (t_polls_ == 20000)                                          \
			fprintf(stderr, "T_WAIT_FOR TIMEOUT %s:%d\n", __FILE__, __LINE__); \
	} while (0)

/* --- the cross-process harness of the channel, pub/sub and queue suites -------------------
 * A test creates the object (t_chan_new() ...), describes where it is (T_WHERE), forks
 * children that open their own handles (t_chan_open() ...) and share a struct t_shared
 * with it, then checks what the children verified and removes the object. */

/* Every backend, the named ones first: a loop test over [0, T_BACKENDS) runs on each of
 * them, one over [0, T_NAMED_BACKENDS) on those with a name (POSIX and System V). */
#define T_BACKENDS 3
#define T_NAMED_BACKENDS 2
extern const uint32_t t_backends[T_BACKENDS];

#define T_MAX_CHILDREN 8

/* What a test shares with its children: anonymous shared memory from t_shared_new(),
 * inherited across fork(). Each test uses the members it needs. */
struct t_shared {
	_Atomic int ready;  /* children that have joined and are ready */
	_Atomic int go;     /* set by the test: start */
	_Atomic int stop;   /* set by the test: finish */
	_Atomic int failed; /* a child saw something wrong (T_CHILD_FAIL) ... */
	char why[256];      /* ... and this is what */
	_Atomic uint64_t sent;                 /* messages a producing child has sent */
	_Atomic uint64_t got[T_MAX_CHILDREN];  /* messages child i verified (or the one it took) */
	_Atomic uint64_t lost[T_MAX_CHILDREN]; /* messages child i was told it lost */
	_Atomic uint64_t joins;                /* joins by children that come and go */
};

/* A zeroed struct t_shared (fails the test if it cannot be mapped); t_shared_free() unmaps
 * it. */
struct t_shared *t_shared_new(void);
void t_shared_free(struct t_shared *sh);

/* What a forked child is told (its own copy, through fork()): where the object is, what it
 * shares with the test, and its part in the test. */
struct t_child {
	struct t_where w;
	struct t_shared *sh;
	int id;         /* which child: its got[id] and lost[id] */
	int mode;       /* how it reads or writes: each test says */
	uint64_t count; /* messages to move */
	uint64_t max;   /* the largest message */
	uint64_t seed;  /* for message lengths */
};

/* Creates an object with the backend and sizes in `o` and the role given (none for a
 * queue); fails the test if it cannot. A named one is tracked (t_track()); a memfd one gets
 * no name (`name` is ignored then). */
struct shmkit_chan *t_chan_new(const char *name, int role, const struct shmkit_chan_opts *o);
struct shmkit_pubsub *t_pubsub_new(const char *name, int role, const struct shmkit_pubsub_opts *o);
struct shmkit_queue *t_queue_new(const char *name, const struct shmkit_queue_opts *o);

/* Opens a handle of the object at `w` (by name, or by descriptor for memfd) with the kind's
 * `flags`, as a child or a second opener does; an observer asks for read-only access
 * (SHMKIT_SEG_RDONLY). Returns what the kind's _open()/_open_fd() returned. */
int t_chan_open(const struct t_where *w, int role, uint32_t flags, struct shmkit_chan **ch);
int t_pubsub_open(const struct t_where *w, int role, uint32_t flags, struct shmkit_pubsub **ps);
int t_queue_open(const struct t_where *w, uint32_t flags, struct shmkit_queue **q);

/* A hostile peer. For `ms` milliseconds it stores random 64-bit words, atomically (as a
 * peer racing the library would), at offsets of `base` that `pick` chooses: pick returns
 * an 8-aligned offset and may shape *v (a random word on entry) into a plausible one, using
 * *rng for any further choice. Embed the struct first in one of your own to give pick the
 * layout it aims at. */
struct t_scribble {
	uint8_t *base; /* the object's data area, mapped in the child too (fork) */
	uint64_t seed;
	uint64_t ms;
	size_t (*pick)(const struct t_scribble *s, uint64_t *rng, uint64_t *v);
};

/* Forks the scribbler of `s`; returns its pid (t_wait() is 0 once it has run its time). */
pid_t t_scribble(struct t_scribble *s);

/* A deadline `ms` milliseconds from now in *ts (for the *_wait() calls); returns ts. */
struct timespec *t_in_ms(struct timespec *ts, uint64_t ms);

/* Sleeps, resuming after signals. */
void t_sleep_us(uint64_t us);
void t_sleep_ms(uint64_t ms);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t t_now_ms(void);

/* --- self-checking messages: [seq (8 bytes)] [words derived from seq] [tail bytes] --------
 * Any length works; a message shorter than 8 bytes carries only pattern bytes. */

/* Fills p[0..len) with message `seq`. */
void t_msg_fill(uint8_t *p, uint64_t len, uint64_t seq);

/* 0 when p[0..len) is exactly what t_msg_fill(p, len, seq) wrote, else -1. */
int t_msg_check(const uint8_t *p, uint64_t len, uint64_t seq);

/* The sequence number in a message's first 8 bytes. */
uint64_t t_msg_seq(const void *p);

/* 1 when the stress tier runs (SHMKIT_STRESS=1 in the environment), else 0. */
int t_stress(void);

/* A deterministic seed for this run: SHMKIT_SEED from the environment, else the time. The
 * suite prints it so a failure can be replayed. */
uint64_t t_seed(void);

/* xorshift64* pseudo-random numbers. */
uint64_t t_rand(uint64_t *state);

/* Creates a test case named `name` with a timeout of `timeout_s` seconds and adds it to
 * `s`; add its tests to the returned TCase. */
TCase *t_tcase(Suite *s, const char *name, double timeout_s);

/* Runs a suite with Check's fork mode (each test in its own process, with its timeout).
 * Returns the number of failed tests. */
int t_run(Suite *s);

/* Runs several suites, then sweeps this run's leftover segments; returns the exit status
 * for main(). */
int t_main(Suite *(*const *makers)(void), int count);

/* --- running the shmkit CLI (or any program) with its output captured -------------------- */

/* The CLI of this build: $SHMKIT_CLI, else <builddir>/shmkit when this test runs as
 * <builddir>/tests/NAME (found through /proc/self/exe, so the sanitizer builds test their
 * own CLI), else build/shmkit. */
const char *t_cli_path(void);

/* The build directory that t_cli_path() is in (for the other binaries of the build). */
const char *t_build_dir(void);

/* A growing, always NUL-terminated byte buffer. */
struct t_buf {
	char *data;
	size_t len, cap;
};

/* A started process whose stdout and stderr this process reads. */
struct t_proc {
	pid_t pid;
	int out, err;        /* read ends; -1 once at EOF */
	struct t_buf o, e;   /* what it wrote so far */
};

/* Starts argv[0] (a path) with stdout and stderr on pipes; stdin from in_fd (-1: inherited)
 * and stdout to out_fd instead when it is >= 0. The caller keeps (and closes) in_fd and
 * out_fd. Release *p with t_proc_free(). */
void t_spawn(struct t_proc *p, char *const argv[], int in_fd, int out_fd);

/* t_spawn() of the CLI with `args` (NULL-terminated, without the program name). */
void t_spawn_cli(struct t_proc *p, int in_fd, int out_fd, const char *const *args);

/* Reads whatever the pipes have until `stop` (if given) appears in stdout, both pipes reach
 * EOF, or `timeout_ms` passes. Keeps at most `keep` bytes of stdout (0 = all), the tail.
 * Returns true when `stop` was seen (or, without `stop`, at EOF). */
bool t_pump(struct t_proc *p, const char *stop, int timeout_ms, size_t keep);

/* Reads the output to the end (up to timeout_ms) and reaps the process: its t_wait()
 * status (-1 when it had to be killed). */
int t_finish(struct t_proc *p, int timeout_ms);

/* Closes the pipes and frees the buffers. */
void t_proc_free(struct t_proc *p);

/* A finished run: its t_wait() status and everything it wrote, NUL-terminated. */
struct t_run {
	int status;
	char *out;
	char *err;
};

/* Finishes p (t_finish(p, timeout_ms)), moves its status and output into *r and frees p.
 * Whatever an earlier run left in *r is freed first, so one zero-initialized struct t_run
 * can be reused for run after run. */
void t_run_collect(struct t_run *r, struct t_proc *p, int timeout_ms);

/* Runs the CLI with `args` (NULL-terminated, without the program name) to completion, with
 * stdin inherited, into *r (as t_run_collect()). */
void t_run_cli(struct t_run *r, int timeout_ms, const char *const *args);

/* Frees a run's output (and leaves *r reusable). */
void t_run_free(struct t_run *r);

/* A temporary file, already unlinked: the descriptor is all there is (O_CLOEXEC). */
int t_tmp_fd(void);

/* The whole content of the file behind fd, malloc'ed and NUL-terminated (not counted in
 * *len). */
void *t_fd_slurp(int fd, size_t *len);

#endif
