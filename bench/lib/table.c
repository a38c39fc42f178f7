/* shmkit benchmarks — the shared table against its in-process ceiling and Redis (see
 * table.h). */
#include "table.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "shmkit.h"

#define MAX_WORKERS 3
#define MAX_SAMPLES (1u << 18) /* latency samples kept per worker and scenario */
#define SAMPLE_EVERY 32u        /* time one operation in this many */
#define PIPELINE 64u            /* Redis commands per pipelined batch */

/* --- shared control block ------------------------------------------------------------------- */

struct slot {
	_Alignas(128) _Atomic uint64_t ops;
	uint64_t elapsed_ns;
	uint64_t nsamples;
	int32_t err;
};

struct ctl {
	_Alignas(128) _Atomic uint32_t ready;
	_Alignas(128) _Atomic uint32_t go;
	_Atomic uint64_t deadline_ns;
	struct slot w[MAX_WORKERS];
	uint64_t samples[MAX_WORKERS][MAX_SAMPLES];
};

struct tb {
	struct shmkit_table *t;
	struct ctl *ctl;
	unsigned char *keys; /* keys * key_len bytes */
	unsigned nkeys, klen, vlen;
	int ncpu;
};

/* Accumulated result of one scenario and operation across rounds. */
struct agg {
	double rate;        /* ops/s, summed over workers, averaged over rounds */
	unsigned rounds;
	uint64_t *samples;
	size_t n, cap;
};

static void agg_add_samples(struct agg *a, const uint64_t *s, size_t n)
{
	if (a->n + n > a->cap) {
		size_t cap = a->cap ? a->cap : 1024;
		while (cap < a->n + n)
			cap *= 2;
		uint64_t *p = realloc(a->samples, cap * sizeof *p);
		if (!p)
			return;
		a->samples = p;
		a->cap = cap;
	}
	memcpy(a->samples + a->n, s, n * sizeof *s);
	a->n += n;
}

static void agg_add_rate(struct agg *a, double rate)
{
	a->rate = (a->rate * a->rounds + rate) / (a->rounds + 1);
	a->rounds++;
}

static inline uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* --- the measuring loop ------------------------------------------------------------------------
 * Runs gets (or puts) of random keys until the deadline, timing one operation in
 * SAMPLE_EVERY. Used by worker processes and, for the ceiling, by the parent itself. */

static int op_loop(struct tb *b, int slot, bool put, uint64_t deadline, uint64_t seed)
{
	struct slot *w = &b->ctl->w[slot];
	uint64_t *samples = b->ctl->samples[slot];
	unsigned char val[4096], buf[4096];
	memset(val, 'v', b->vlen);
	uint64_t rng = seed | 1, ops = 0, ns = 0;
	uint64_t t0 = bench_now_ns();
	for (;;) {
		for (unsigned i = 0; i < 256; i++, ops++) {
			uint32_t k = (uint32_t)(((xorshift(&rng) & 0xffffffffu) * b->nkeys) >> 32);
			const unsigned char *key = b->keys + (size_t)k * b->klen;
			int r;
			uint64_t a = 0;
			bool timed = ops % SAMPLE_EVERY == 0 && ns < MAX_SAMPLES;
			if (timed)
				a = bench_now_ns();
			if (put) {
				memcpy(val, &ops, 8);
				r = shmkit_table_put(b->t, key, b->klen, val, b->vlen);
			} else {
				r = shmkit_table_get(b->t, key, b->klen, buf, sizeof buf);
				if (r == (int)b->vlen)
					r = 0;
				else if (r >= 0)
					r = -EBADMSG;
			}
			if (timed)
				samples[ns++] = bench_now_ns() - a;
			if (r) {
				w->err = r;
				return r;
			}
		}
		if (bench_now_ns() >= deadline)
			break;
	}
	w->elapsed_ns = bench_now_ns() - t0;
	w->nsamples = ns;
	atomic_store_explicit(&w->ops, ops, memory_order_relaxed);
	return 0;
}

static int worker(struct tb *b, int slot, bool put)
{
	(void)bench_pin_cpu(slot % b->ncpu);
	/* Relaxed counter; the go flag below is what orders the start. */
	atomic_fetch_add_explicit(&b->ctl->ready, 1, memory_order_relaxed);
	/* Acquire: pairs with the parent's release store of go, which publishes deadline. */
	while (!atomic_load_explicit(&b->ctl->go, memory_order_acquire))
		;
	uint64_t deadline = atomic_load_explicit(&b->ctl->deadline_ns, memory_order_relaxed);
	return op_loop(b, slot, put, deadline, 0x9e3779b97f4a7c15ull * (uint64_t)(slot + 1)) ? 1 : 0;
}

static void reset_ctl(struct ctl *c)
{
	atomic_store(&c->ready, 0);
	atomic_store(&c->go, 0);
	for (int i = 0; i < MAX_WORKERS; i++) {
		atomic_store(&c->w[i].ops, 0);
		c->w[i].elapsed_ns = 0;
		c->w[i].nsamples = 0;
		c->w[i].err = 0;
	}
}

/* One round of a shared scenario: `readers` get processes and `writers` put processes on
 * the table, for `secs`. Adds the results to get/put. Returns 0 or a negative errno. */
static int run_shared(struct tb *b, int readers, int writers, double secs, struct agg *get,
		      struct agg *put)
{
	int n = readers + writers;
	pid_t pids[MAX_WORKERS];
	reset_ctl(b->ctl);
	fflush(NULL);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			int err = -errno;
			for (int j = 0; j < i; j++) {
				kill(pids[j], SIGKILL);
				waitpid(pids[j], NULL, 0);
			}
			return err;
		}
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			_exit(worker(b, i, i >= readers));
		}
	}
	for (int i = 0; i < 5000 && atomic_load(&b->ctl->ready) < (uint32_t)n; i++)
		usleep(1000);
	atomic_store_explicit(&b->ctl->deadline_ns, bench_now_ns() + (uint64_t)(secs * 1e9),
			      memory_order_relaxed);
	/* Release: publishes the deadline; pairs with the workers' acquire loads of go. */
	atomic_store_explicit(&b->ctl->go, 1, memory_order_release);
	int err = 0;
	for (int i = 0; i < n; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			err = b->ctl->w[i].err ? b->ctl->w[i].err : -ECHILD;
	}
	if (err)
		return err;
	double get_rate = 0, put_rate = 0;
	for (int i = 0; i < n; i++) {
		struct slot *w = &b->ctl->w[i];
		double rate = w->elapsed_ns ? (double)atomic_load(&w->ops) * 1e9 / (double)w->elapsed_ns
					    : 0;
		if (i < readers) {
			get_rate += rate;
			agg_add_samples(get, b->ctl->samples[i], w->nsamples);
		} else {
			put_rate += rate;
			agg_add_samples(put, b->ctl->samples[i], w->nsamples);
		}
	}
	if (readers)
		agg_add_rate(get, get_rate);
	if (writers)
		agg_add_rate(put, put_rate);
	return 0;
}

/* One round of the ceiling: the parent alone, nobody else mapping the table. */
static int run_ceiling(struct tb *b, bool put, double secs, struct agg *a)
{
	reset_ctl(b->ctl);
	(void)bench_pin_cpu(0);
	int err = op_loop(b, 0, put, bench_now_ns() + (uint64_t)(secs * 1e9), 12345);
	if (err)
		return err;
	struct slot *w = &b->ctl->w[0];
	agg_add_rate(a, (double)atomic_load(&w->ops) * 1e9 / (double)w->elapsed_ns);
	agg_add_samples(a, b->ctl->samples[0], w->nsamples);
	return 0;
}

/* --- Redis ---------------------------------------------------------------------------------------- */

struct redis {
	pid_t pid;
	int fd;
	size_t head, tail;
	char rbuf[1 << 16];
};

static const char *find_redis(const char *given)
{
	static char path[512];
	if (given)
		return access(given, X_OK) == 0 ? given : NULL;
	const char *p = getenv("PATH");
	while (p && *p) {
		const char *colon = strchr(p, ':');
		size_t len = colon ? (size_t)(colon - p) : strlen(p);
		if (len && len < sizeof path - 16) {
			snprintf(path, sizeof path, "%.*s/redis-server", (int)len, p);
			if (access(path, X_OK) == 0)
				return path;
		}
		p = colon ? colon + 1 : NULL;
	}
	return access("/usr/bin/redis-server", X_OK) == 0 ? "/usr/bin/redis-server" : NULL;
}

static int free_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int port = -EADDRNOTAVAIL;
	if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(s, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(s);
	return port;
}

static void redis_stop(struct redis *r)
{
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
	if (r->pid <= 0)
		return;
	kill(r->pid, SIGTERM);
	for (int i = 0; i < 3000; i++) {
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
			r->pid = 0;
			return;
		}
		usleep(1000);
	}
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
}

/* Starts redis-server on a free loopback port and connects. Returns 0, or a negative errno
 * with a reason in `why`. */
static int redis_start(struct redis *r, const char *server, char *why, size_t cap)
{
	r->pid = 0;
	r->fd = -1;
	r->head = r->tail = 0;
	int port = free_port();
	if (port < 0) {
		snprintf(why, cap, "no free loopback port");
		return port;
	}
	char ports[16];
	snprintf(ports, sizeof ports, "%d", port);
	fflush(NULL);
	r->pid = fork();
	if (r->pid < 0) {
		snprintf(why, cap, "fork: %s", strerror(errno));
		return -errno;
	}
	if (r->pid == 0) {
		/* The server must not outlive the benchmark, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			dup2(devnull, 2);
		}
		execl(server, "redis-server", "--port", ports, "--bind", "127.0.0.1", "--save", "",
		      "--appendonly", "no", "--daemonize", "no", (char *)NULL);
		_exit(127);
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < 5000; i++) {
		if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
			r->pid = 0;
			snprintf(why, cap, "%.300s exited at start", server);
			return -ECHILD;
		}
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			break;
		if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
			r->fd = fd;
			return 0;
		}
		close(fd);
		usleep(1000);
	}
	redis_stop(r);
	snprintf(why, cap, "could not connect to %.300s on port %d", server, port);
	return -ETIMEDOUT;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Ensures `n` bytes are buffered (n <= sizeof rbuf). */
static int fill(struct redis *r, size_t n)
{
	if (r->tail - r->head >= n)
		return 0;
	if (r->head > 0) {
		memmove(r->rbuf, r->rbuf + r->head, r->tail - r->head);
		r->tail -= r->head;
		r->head = 0;
	}
	while (r->tail < n) {
		ssize_t got = read(r->fd, r->rbuf + r->tail, sizeof r->rbuf - r->tail);
		if (got <= 0) {
			if (got < 0 && errno == EINTR)
				continue;
			return got == 0 ? -EPIPE : -errno;
		}
		r->tail += (size_t)got;
	}
	return 0;
}

/* Reads one line ending in \r\n; returns its length (without \r\n) at *line. */
static int read_line(struct redis *r, const char **line)
{
	for (size_t want = 1;; want = r->tail - r->head + 1) {
		int err = fill(r, want);
		if (err)
			return err;
		char *s = r->rbuf + r->head;
		char *end = memchr(s, '\n', r->tail - r->head);
		if (end) {
			if (end == s || end[-1] != '\r')
				return -EPROTO;
			*line = s;
			r->head += (size_t)(end - s) + 1;
			return (int)(end - s - 1);
		}
		if (r->tail - r->head >= sizeof r->rbuf)
			return -EPROTO;
	}
}

/* Reads one reply: returns its type ('+', '$', ...) with a bulk string's length in *len
 * (-1 for nil), or a negative errno (-EPROTO for an error reply). */
static int read_reply(struct redis *r, long *len)
{
	const char *line = NULL;
	int n = read_line(r, &line);
	if (n < 0)
		return n;
	if (n < 1)
		return -EPROTO;
	switch (line[0]) {
	case '+':
	case ':':
		return line[0];
	case '$': {
		long l = strtol(line + 1, NULL, 10);
		*len = l;
		if (l < 0)
			return '$';
		if ((size_t)l + 2 > sizeof r->rbuf)
			return -EPROTO;
		int err = fill(r, (size_t)l + 2);
		if (err)
			return err;
		r->head += (size_t)l + 2;
		return '$';
	}
	default:
		return -EPROTO;
	}
}

/* Appends one command in RESP to buf; returns the new length. */
static size_t resp_cmd(char *buf, size_t at, const char *cmd, const void *key, size_t klen,
		       const void *val, size_t vlen)
{
	int argc = val ? 3 : 2;
	at += (size_t)sprintf(buf + at, "*%d\r\n$%zu\r\n%s\r\n$%zu\r\n", argc, strlen(cmd), cmd, klen);
	memcpy(buf + at, key, klen);
	at += klen;
	memcpy(buf + at, "\r\n", 2);
	at += 2;
	if (val) {
		at += (size_t)sprintf(buf + at, "$%zu\r\n", vlen);
		memcpy(buf + at, val, vlen);
		at += vlen;
		memcpy(buf + at, "\r\n", 2);
		at += 2;
	}
	return at;
}

/* GET or SET of random keys for `secs`, `depth` commands per round trip. */
static int redis_loop(struct redis *r, struct tb *b, bool set, unsigned depth, double secs,
		      struct agg *a)
{
	size_t cmdmax = 64 + b->klen + b->vlen;
	char *buf = malloc(cmdmax * depth);
	uint64_t *samples = b->ctl->samples[0];
	if (!buf)
		return -ENOMEM;
	unsigned char val[4096];
	memset(val, 'v', b->vlen);
	uint64_t rng = 777, ops = 0, ns = 0;
	uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(secs * 1e9);
	int err = 0;
	while (!err && bench_now_ns() < deadline) {
		size_t len = 0;
		for (unsigned i = 0; i < depth; i++) {
			uint32_t k = (uint32_t)(((xorshift(&rng) & 0xffffffffu) * b->nkeys) >> 32);
			memcpy(val, &ops, 8);
			len = resp_cmd(buf, len, set ? "SET" : "GET", b->keys + (size_t)k * b->klen,
				       b->klen, set ? val : NULL, b->vlen);
		}
		uint64_t s = bench_now_ns();
		err = send_all(r->fd, buf, len);
		for (unsigned i = 0; !err && i < depth; i++) {
			long l = 0;
			int type = read_reply(r, &l);
			if (type < 0)
				err = type;
			else if (set ? type != '+' : (type != '$' || l != (long)b->vlen))
				err = -EBADMSG;
		}
		/* Per command: a round trip, or a batch's share of one. */
		if (ns < MAX_SAMPLES)
			samples[ns++] = (bench_now_ns() - s) / depth;
		ops += depth;
	}
	uint64_t elapsed = bench_now_ns() - t0;
	free(buf);
	if (err)
		return err;
	agg_add_rate(a, (double)ops * 1e9 / (double)elapsed);
	agg_add_samples(a, samples, ns);
	return 0;
}

static int redis_preload(struct redis *r, struct tb *b)
{
	unsigned char val[4096];
	memset(val, 'v', b->vlen);
	size_t cmdmax = 64 + b->klen + b->vlen;
	char *buf = malloc(cmdmax * PIPELINE);
	if (!buf)
		return -ENOMEM;
	int err = 0;
	for (unsigned k = 0; !err && k < b->nkeys; k += PIPELINE) {
		size_t len = 0;
		unsigned n = b->nkeys - k < PIPELINE ? b->nkeys - k : PIPELINE;
		for (unsigned i = 0; i < n; i++)
			len = resp_cmd(buf, len, "SET", b->keys + (size_t)(k + i) * b->klen, b->klen,
				       val, b->vlen);
		err = send_all(r->fd, buf, len);
		for (unsigned i = 0; !err && i < n; i++) {
			long l;
			int type = read_reply(r, &l);
			err = type == '+' ? 0 : type < 0 ? type : -EBADMSG;
		}
	}
	free(buf);
	return err;
}

/* --- report ------------------------------------------------------------------------------------- */

struct row {
	const char *what;
	const char *procs;
	struct agg *a;
	struct agg *ceiling; /* NULL: not applicable */
	struct agg *redis;   /* NULL: not applicable */
};

static void fmt_ratio(char *buf, size_t cap, const struct agg *num, const struct agg *den)
{
	if (!den || !num || den->rounds == 0 || num->rounds == 0 || den->rate <= 0)
		snprintf(buf, cap, "-");
	else if (num->rate / den->rate >= 10)
		snprintf(buf, cap, "%.0fx", num->rate / den->rate);
	else
		snprintf(buf, cap, "%.2fx", num->rate / den->rate);
}

static void print_row(FILE *out, const struct row *r)
{
	char ops[32], p50[32], p99[32], xc[32], xr[32];
	const char *cells[7] = {r->what, r->procs, ops, p50, p99, xc, xr};
	if (r->a->rounds == 0) {
		const char *skip[7] = {r->what, r->procs, "skipped", "", "", "", ""};
		bench_md_row(out, skip, 7);
		return;
	}
	struct bench_stats st;
	bench_stats_compute(r->a->samples, r->a->n, &st);
	if (r->a->rate >= 1e6)
		snprintf(ops, sizeof ops, "%.2f M", r->a->rate / 1e6);
	else
		snprintf(ops, sizeof ops, "%.1f k", r->a->rate / 1e3);
	bench_fmt_ns(p50, sizeof p50, (double)st.p50);
	bench_fmt_pct(p99, sizeof p99, st.n, 99, st.p99);
	fmt_ratio(xc, sizeof xc, r->a, r->ceiling);
	fmt_ratio(xr, sizeof xr, r->a, r->redis);
	bench_md_row(out, cells, 7);
}

/* --- driver ------------------------------------------------------------------------------------- */

enum {
	A_CEIL_GET, A_CEIL_PUT,
	A_GET_1R0W, A_GET_2R0W, A_GET_1R1W, A_GET_2R1W,
	A_PUT_0R1W, A_PUT_1R1W, A_PUT_2R1W,
	A_REDIS_GET, A_REDIS_SET, A_REDIS_GET_P, A_REDIS_SET_P,
	A_COUNT
};

int bench_table_run(const struct bench_table_opts *o, FILE *out)
{
	static const struct bench_table_opts defaults;
	if (!o)
		o = &defaults;
	struct tb b = {0};
	b.nkeys = o->keys ? o->keys : 10000;
	b.klen = o->key_len ? o->key_len : 16;
	b.vlen = o->value_len ? o->value_len : 64;
	if (b.klen < 8 || b.klen > 256 || b.vlen < 8 || b.vlen > 4096 || b.nkeys < 1)
		return -EINVAL;
	b.ncpu = bench_ncpus();
	double secs = o->seconds > 0 ? o->seconds : (o->quick ? 0.2 : 1.5);
	int rounds = o->quick ? 1 : 3; /* interleaved, so placement drift hits every scenario */
	double per = secs / rounds;

	struct agg aggs[A_COUNT];
	memset(aggs, 0, sizeof aggs);
	int err = 0;
	struct redis *r = NULL;
	bool redis_up = false;
	char redis_why[400] = "";

	b.keys = malloc((size_t)b.nkeys * b.klen);
	b.ctl = bench_shared_alloc(sizeof *b.ctl);
	if (!b.keys || !b.ctl) {
		err = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < b.nkeys; i++) {
		char tmp[32];
		snprintf(tmp, sizeof tmp, "key:%011u", i);
		memset(b.keys + (size_t)i * b.klen, '.', b.klen);
		memcpy(b.keys + (size_t)i * b.klen, tmp, b.klen < 15 ? b.klen : 15);
	}
	struct shmkit_table_opts to = {.capacity = b.nkeys * 2u, .key_max = b.klen,
				       .value_max = b.vlen,
				       .seg = {.backend = SHMKIT_BACKEND_MEMFD}};
	err = shmkit_table_create(NULL, &to, &b.t);
	if (err)
		goto out;
	unsigned char val[4096];
	memset(val, 'v', b.vlen);
	for (unsigned i = 0; i < b.nkeys && !err; i++)
		err = shmkit_table_put(b.t, b.keys + (size_t)i * b.klen, b.klen, val, b.vlen);
	if (err)
		goto out;

	fprintf(out, "bench/table: %u keys of %u bytes, values of %u bytes, table capacity %u; "
		     "%.1f s per scenario in %d interleaved round%s; %d CPU%s\n",
		b.nkeys, b.klen, b.vlen, b.nkeys * 2u, secs, rounds, rounds > 1 ? "s" : "", b.ncpu,
		b.ncpu > 1 ? "s" : "");

	for (int round = 0; round < rounds && !err; round++) {
		if ((err = run_ceiling(&b, false, per, &aggs[A_CEIL_GET])) ||
		    (err = run_ceiling(&b, true, per, &aggs[A_CEIL_PUT])) ||
		    (err = run_shared(&b, 1, 0, per, &aggs[A_GET_1R0W], NULL)) ||
		    (err = run_shared(&b, 2, 0, per, &aggs[A_GET_2R0W], NULL)) ||
		    (err = run_shared(&b, 1, 1, per, &aggs[A_GET_1R1W], &aggs[A_PUT_1R1W])) ||
		    (err = run_shared(&b, 2, 1, per, &aggs[A_GET_2R1W], &aggs[A_PUT_2R1W])) ||
		    (err = run_shared(&b, 0, 1, per, NULL, &aggs[A_PUT_0R1W])))
			break;
	}
	if (err)
		goto out;

	const char *server = o->no_redis ? NULL : find_redis(o->redis);
	if (o->no_redis) {
		snprintf(redis_why, sizeof redis_why, "skipped: --no-redis");
	} else if (!server) {
		snprintf(redis_why, sizeof redis_why,
			 "skipped: redis-server not installed (Debian: tools/deps.sh redis-server)");
	} else if (!(r = malloc(sizeof *r))) {
		err = -ENOMEM;
		goto out;
	} else {
		int rr = redis_start(r, server, redis_why, sizeof redis_why);
		if (rr == 0)
			rr = redis_preload(r, &b);
		(void)bench_pin_cpu(0);
		for (int round = 0; rr == 0 && round < rounds; round++) {
			if ((rr = redis_loop(r, &b, false, 1, per, &aggs[A_REDIS_GET])) ||
			    (rr = redis_loop(r, &b, true, 1, per, &aggs[A_REDIS_SET])) ||
			    (rr = redis_loop(r, &b, false, PIPELINE, per, &aggs[A_REDIS_GET_P])) ||
			    (rr = redis_loop(r, &b, true, PIPELINE, per, &aggs[A_REDIS_SET_P])))
				break;
		}
		if (rr == 0)
			redis_up = true;
		else if (!redis_why[0])
			snprintf(redis_why, sizeof redis_why, "skipped: talking to redis-server: %s",
				 strerror(-rr));
		redis_stop(r);
	}

	/* Timer overhead, so latencies of a few tens of ns can be read correctly. */
	uint64_t tmin = UINT64_MAX;
	for (int i = 0; i < 1000; i++) {
		uint64_t a = bench_now_ns(), z = bench_now_ns();
		if (z - a < tmin)
			tmin = z - a;
	}

	struct agg *rg = redis_up ? &aggs[A_REDIS_GET] : NULL;
	struct agg *rs = redis_up ? &aggs[A_REDIS_SET] : NULL;
	const struct row rows[] = {
		{"shmkit get, in-process ceiling", "1 (alone)", &aggs[A_CEIL_GET], &aggs[A_CEIL_GET], rg},
		{"shmkit get, 1 reader, 0 writers", "1+0", &aggs[A_GET_1R0W], &aggs[A_CEIL_GET], rg},
		{"shmkit get, 2 readers, 0 writers", "2+0", &aggs[A_GET_2R0W], &aggs[A_CEIL_GET], rg},
		{"shmkit get, 1 reader, 1 writer", "1+1", &aggs[A_GET_1R1W], &aggs[A_CEIL_GET], rg},
		{"shmkit get, 2 readers, 1 writer", "2+1", &aggs[A_GET_2R1W], &aggs[A_CEIL_GET], rg},
		{"shmkit put, in-process ceiling", "1 (alone)", &aggs[A_CEIL_PUT], &aggs[A_CEIL_PUT], rs},
		{"shmkit put, 1 writer, 0 readers", "0+1", &aggs[A_PUT_0R1W], &aggs[A_CEIL_PUT], rs},
		{"shmkit put, 1 writer, 1 reader", "1+1", &aggs[A_PUT_1R1W], &aggs[A_CEIL_PUT], rs},
		{"shmkit put, 1 writer, 2 readers", "2+1", &aggs[A_PUT_2R1W], &aggs[A_CEIL_PUT], rs},
		{"Redis GET, 1 client", "client+server", &aggs[A_REDIS_GET], NULL, rg},
		{"Redis SET, 1 client", "client+server", &aggs[A_REDIS_SET], NULL, rs},
		{"Redis GET, 1 client, pipelined x64", "client+server", &aggs[A_REDIS_GET_P], NULL, rg},
		{"Redis SET, 1 client, pipelined x64", "client+server", &aggs[A_REDIS_SET_P], NULL, rs},
	};
	static const char *const cols[7] = {"operation", "processes (readers+writers)", "ops/s",
					    "p50", "p99", "x ceiling", "x Redis (1 client)"};
	static const int right[7] = {0, 0, 1, 1, 1, 1, 1};
	fputc('\n', out);
	bench_md_header(out, cols, right, 7);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		print_row(out, &rows[i]);
	fprintf(out, "\nops/s: all readers (or writers) of the row together. Latency: one "
		     "operation in %u timed (timer overhead ~%llu ns included); Redis pipelined: a "
		     "batch's round trip / %u.\n",
		SAMPLE_EVERY, (unsigned long long)tmin, PIPELINE);
	if (b.ncpu < 3)
		fprintf(out, "Rows with 3 processes time-share %d CPU%s.\n", b.ncpu,
			b.ncpu > 1 ? "s" : "");
	char x1[32], x2[32];
	fmt_ratio(x1, sizeof x1, &aggs[A_GET_1R0W], &aggs[A_CEIL_GET]);
	fprintf(out, "\nshmkit get, 1 reader process / in-process ceiling: %s (target >= 0.5x)\n",
		x1);
	if (redis_up) {
		fmt_ratio(x2, sizeof x2, &aggs[A_GET_1R0W], rg);
		fprintf(out, "shmkit get, 1 reader process / Redis GET, 1 client, not pipelined: %s "
			     "(target >= 50x)\n",
			x2);
		fmt_ratio(x2, sizeof x2, &aggs[A_GET_1R0W], &aggs[A_REDIS_GET_P]);
		fprintf(out, "shmkit get, 1 reader process / Redis GET, pipelined x%u: %s\n", PIPELINE,
			x2);
	} else {
		fprintf(out, "Redis: %s\n", redis_why);
	}
out:
	if (r)
		redis_stop(r);
	free(r);
	for (int i = 0; i < A_COUNT; i++)
		free(aggs[i].samples);
	shmkit_table_close(b.t);
	bench_shared_free(b.ctl, sizeof *b.ctl);
	free(b.keys);
	if (err)
		fprintf(out, "bench/table: %s\n", shmkit_strerror(err));
	return err;
}

int bench_table_main(int argc, char **argv)
{
	struct bench_table_opts to;
	memset(&to, 0, sizeof to);
	/* Our own options first; bench_parse_opts() takes the common ones. */
	char **rest = calloc((size_t)argc + 1, sizeof *rest);
	if (!rest)
		return 1;
	int n = 0;
	rest[n++] = argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-redis") == 0) {
			to.no_redis = 1;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			char *end;
			to.seconds = strtod(argv[++i], &end);
			if (*end || !(to.seconds > 0 && to.seconds <= 600)) {
				fprintf(stderr, "%s: bad --seconds value '%s' (0 < S <= 600)\n", argv[0],
					argv[i]);
				free(rest);
				return 2;
			}
		} else {
			rest[n++] = argv[i];
		}
	}
	struct bench_opts o;
	int pr = bench_parse_opts(n, rest, &o,
				  "[--no-redis] [--seconds S]\n"
				  "  --iters N: distinct keys (default 10000)\n"
				  "  --seconds S: measuring time per scenario (default 1.5, quick 0.2)\n"
				  "  --no-redis: skip the Redis comparison");
	free(rest);
	if (pr != 0)
		return pr > 0 ? 0 : 2;
	if (o.iters > 1u << 24) {
		fprintf(stderr, "%s: --iters at most %u keys\n", argv[0], 1u << 24);
		return 2;
	}
	to.quick = o.quick;
	to.keys = (unsigned)o.iters;
	return bench_table_run(&to, stdout) == 0 ? 0 : 1;
}
