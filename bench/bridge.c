/* shmkit benchmark — `shmkit bridge` against plain libnats on the same nats-server, in one run.
 *
 *   plain:   libnats publisher → nats-server → libnats subscriber (another process)
 *   bridged: channel → shmkit bridge out → nats-server → shmkit bridge in → channel
 *
 * Throughput: N messages of one size, from the first send until the receiving process has
 * all of them. Core mode against a plain core publisher; reliable mode against a plain
 * JetStream publisher that waits for each acknowledgement (js_PublishMsg), as the bridge
 * does. Round trip: a message goes out and an echo process sends it back the same way (the
 * bridged echo uses four bridges), p50/p99 over the iterations. Starts its own nats-server
 * on 127.0.0.1 with a free port and a temporary JetStream store (removed at the end).
 * Never pass/fail on timing: it prints a table (docs/performance.md).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nats/nats.h>

#include "lib/common.h"
#include "shmkit.h"

static char url[64], cli[512], dir[128];
static int port;
static pid_t server;

static void die(const char *what)
{
	fprintf(stderr, "bench/bridge: %s\n", what);
	if (server > 0)
		kill(server, SIGTERM);
	exit(1);
}

static int dial(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (s >= 0 && connect(s, (struct sockaddr *)&a, sizeof a) == 0)
		return s;
	if (s >= 0)
		close(s);
	return -1;
}

static void start_server(void)
{
	snprintf(dir, sizeof dir, "/tmp/shmkit-bench-bridge.%d.XXXXXX", (int)getpid());
	if (!mkdtemp(dir))
		die("mkdtemp");
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof a;
	if (bind(s, (struct sockaddr *)&a, sizeof a) || getsockname(s, (struct sockaddr *)&a, &n))
		die("free port");
	port = ntohs(a.sin_port);
	close(s);
	snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
	char conf[200];
	snprintf(conf, sizeof conf, "%s/ns.conf", dir);
	FILE *f = fopen(conf, "w");
	if (!f)
		die("config");
	fprintf(f, "listen: 127.0.0.1:%d\nmax_payload: 8MB\nlog_file: \"%s/ns.log\"\n"
		   "jetstream { store_dir: \"%s/js\" }\n", port, dir, dir);
	fclose(f);
	server = fork();
	if (server == 0) {
		execl("/usr/sbin/nats-server", "nats-server", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 400; i++) {
		int c = dial();
		if (c >= 0) {
			close(c);
			return;
		}
		usleep(25000);
	}
	die("nats-server did not start (is it installed? make deps)");
}

static natsConnection *connect_nats(void)
{
	natsConnection *nc = NULL;
	if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
		die("connect");
	return nc;
}

/* Starts the CLI with args (NULL-terminated). */
static pid_t spawn(const char *const *args)
{
	pid_t p = fork();
	if (p == 0) {
		const char *argv[24] = {cli};
		for (int i = 0; args[i] && i < 22; i++)
			argv[i + 1] = args[i];
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		execv(cli, (char *const *)argv);
		_exit(127);
	}
	return p;
}

static void reap(pid_t p)
{
	for (int i = 0; i < 500; i++) {
		if (waitpid(p, NULL, WNOHANG) == p)
			return;
		usleep(10000);
	}
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
}

static void wait_channel(const char *name, bool consumer_attached)
{
	for (int i = 0; i < 2000; i++) {
		struct shmkit_chan *ch;
		struct shmkit_chan_opts ro = {.seg.flags = SHMKIT_SEG_RDONLY};
		if (shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, &ro, &ch) == 0) {
			struct shmkit_chan_stats st;
			shmkit_chan_stats(ch, &st);
			shmkit_chan_close(ch);
			if (!consumer_attached || st.consumer_alive)
				return;
		}
		usleep(5000);
	}
	die("channel did not appear");
}

static int counter;

/* A bridge pair from `src` (we produce) to `dst` (created by in) on subject `subj`. */
static void bridge_pair(const char *src, const char *dst, const char *subj, bool reliable,
			pid_t *out, pid_t *in)
{
	const char *ia[] = {"bridge", "in", "--from", url, "--subject", subj, dst, "--create",
			    "--max-msg", "2M", "--capacity", "16M", reliable ? "--reliable" : NULL,
			    NULL};
	*in = spawn(ia);
	wait_channel(dst, false);
	const char *oa[] = {"bridge", "out", src, "--to", url, "--subject", subj,
			    reliable ? "--reliable" : NULL, NULL};
	*out = spawn(oa);
	wait_channel(src, true);
	usleep(300000); /* connected */
}

/* --- throughput ------------------------------------------------------------------------- */

static double plain_tput(size_t size, int n, bool reliable, char *payload)
{
	char subj[64];
	snprintf(subj, sizeof subj, "plain.%d", ++counter);
	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	pid_t child = fork();
	if (child == 0) {
		natsConnection *nc = connect_nats();
		natsSubscription *sub;
		natsConnection_SubscribeSync(&sub, nc, subj);
		natsSubscription_SetPendingLimits(sub, -1, -1);
		natsConnection_Flush(nc);
		(void)!write(pfd[1], "r", 1);
		int got = 0;
		while (got < n) {
			natsMsg *m;
			if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK)
				break;
			natsMsg_Destroy(m);
			got++;
		}
		(void)!write(pfd[1], got == n ? "d" : "x", 1);
		_exit(0);
	}
	char c;
	(void)!read(pfd[0], &c, 1);
	natsConnection *nc = connect_nats();
	jsCtx *js = NULL;
	char stream[64];
	snprintf(stream, sizeof stream, "PLAIN_%d", counter);
	if (reliable) {
		natsConnection_JetStream(&js, nc, NULL);
		jsStreamConfig cfg;
		jsStreamConfig_Init(&cfg);
		cfg.Name = stream;
		const char *subjects[] = {subj};
		cfg.Subjects = subjects;
		cfg.SubjectsLen = 1;
		cfg.Storage = js_FileStorage;
		jsStreamInfo *si = NULL;
		if (js_AddStream(&si, js, &cfg, NULL, NULL) != NATS_OK)
			die("js_AddStream");
		jsStreamInfo_Destroy(si);
	}
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < n; i++) {
		if (!reliable) {
			natsConnection_Publish(nc, subj, payload, (int)size);
			continue;
		}
		jsPubAck *pa = NULL;
		char id[32];
		snprintf(id, sizeof id, "%d", i);
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MsgId = id;
		if (js_Publish(&pa, js, subj, payload, (int)size, &po, NULL) != NATS_OK)
			die("js_Publish");
		jsPubAck_Destroy(pa);
	}
	natsConnection_Flush(nc);
	(void)!read(pfd[0], &c, 1);
	uint64_t t = bench_now_ns() - t0;
	waitpid(child, NULL, 0);
	if (js) {
		js_DeleteStream(js, stream, NULL, NULL);
		jsCtx_Destroy(js);
	}
	natsConnection_Destroy(nc);
	close(pfd[0]);
	close(pfd[1]);
	return c == 'd' ? n / (t / 1e9) : 0;
}

static double bridged_tput(size_t size, int n, bool reliable, char *payload)
{
	char src[64], dst[64], subj[64];
	snprintf(src, sizeof src, "bb%d.%d.s", (int)getpid(), ++counter);
	snprintf(dst, sizeof dst, "bb%d.%d.d", (int)getpid(), counter);
	snprintf(subj, sizeof subj, "bridged.%d", counter);
	struct shmkit_chan *p, *c;
	struct shmkit_chan_opts co = {.capacity = 16 << 20, .max_msg = 2 << 20};
	if (shmkit_chan_create(src, SHMKIT_CHAN_PRODUCER, &co, &p))
		die("create");
	pid_t out, in;
	bridge_pair(src, dst, subj, reliable, &out, &in);
	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	pid_t child = fork();
	if (child == 0) {
		if (shmkit_chan_open(dst, SHMKIT_CHAN_CONSUMER, NULL, &c))
			_exit(1);
		int got = 0;
		while (got < n) {
			const void *m;
			size_t len;
			struct timespec ts;
			shmkit_deadline_after(&ts, 20000000000ull);
			if (shmkit_chan_peek_wait(c, &m, &len, &ts))
				break;
			shmkit_chan_release(c, 0);
			got++;
		}
		(void)!write(pfd[1], got == n ? "d" : "x", 1);
		shmkit_chan_unlink(c);
		shmkit_chan_close(c);
		_exit(0);
	}
	uint64_t t0 = bench_now_ns();
	for (int i = 0; i < n; i++)
		if (shmkit_chan_send_wait(p, payload, size, NULL))
			die("send");
	char ch;
	(void)!read(pfd[0], &ch, 1);
	uint64_t t = bench_now_ns() - t0;
	waitpid(child, NULL, 0);
	/* The name goes first: unlink takes the handle, which close frees (the two in the
	 * other order were a use after free that crashed the reliable 1 MiB row). The bridges
	 * hold their own handles, so the channel lives on until they exit. */
	shmkit_chan_unlink(p);
	shmkit_chan_close(p); /* end of stream: both bridges exit */
	reap(out);
	reap(in);
	shmkit_segment_remove(dst, NULL); /* the consumer unlinks it, unless it failed to open */
	close(pfd[0]);
	close(pfd[1]);
	return ch == 'd' ? n / (t / 1e9) : 0;
}

/* --- round trip ------------------------------------------------------------------------- */

static void plain_rtt(size_t size, int iters, char *payload, struct bench_stats *st)
{
	char a[64], b[64];
	snprintf(a, sizeof a, "ping.%d", ++counter);
	snprintf(b, sizeof b, "pong.%d", counter);
	int pfd[2];
	if (pipe(pfd))
		die("pipe");
	pid_t child = fork();
	if (child == 0) {
		natsConnection *nc = connect_nats();
		natsSubscription *sub;
		natsConnection_SubscribeSync(&sub, nc, a);
		natsConnection_Flush(nc);
		(void)!write(pfd[1], "r", 1);
		for (int i = 0; i < iters; i++) {
			natsMsg *m;
			if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK)
				break;
			natsConnection_Publish(nc, b, natsMsg_GetData(m), natsMsg_GetDataLength(m));
			natsConnection_Flush(nc);
			natsMsg_Destroy(m);
		}
		_exit(0);
	}
	char c;
	(void)!read(pfd[0], &c, 1);
	natsConnection *nc = connect_nats();
	natsSubscription *sub;
	natsConnection_SubscribeSync(&sub, nc, b);
	natsConnection_Flush(nc);
	uint64_t *s = calloc((size_t)iters, sizeof *s);
	int k = 0;
	for (; k < iters; k++) {
		uint64_t t0 = bench_now_ns();
		natsConnection_Publish(nc, a, payload, (int)size);
		natsConnection_Flush(nc);
		natsMsg *m;
		if (natsSubscription_NextMsg(&m, sub, 10000) != NATS_OK)
			break;
		s[k] = bench_now_ns() - t0;
		natsMsg_Destroy(m);
	}
	bench_stats_compute(s, (size_t)k, st);
	free(s);
	waitpid(child, NULL, 0);
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	close(pfd[0]);
	close(pfd[1]);
}

static void bridged_rtt(size_t size, int iters, bool reliable, char *payload,
			struct bench_stats *st)
{
	char a1[64], a2[64], b1[64], b2[64], s1[64], s2[64];
	int k0 = ++counter;
	snprintf(a1, sizeof a1, "br%d.%d.a1", (int)getpid(), k0); /* we produce */
	snprintf(b1, sizeof b1, "br%d.%d.b1", (int)getpid(), k0); /* echo consumes */
	snprintf(b2, sizeof b2, "br%d.%d.b2", (int)getpid(), k0); /* echo produces */
	snprintf(a2, sizeof a2, "br%d.%d.a2", (int)getpid(), k0); /* we consume */
	snprintf(s1, sizeof s1, "rtt.%d.go", k0);
	snprintf(s2, sizeof s2, "rtt.%d.back", k0);
	struct shmkit_chan_opts co = {.capacity = 16 << 20, .max_msg = 2 << 20};
	struct shmkit_chan *pa, *pb, *ca, *cb;
	if (shmkit_chan_create(a1, SHMKIT_CHAN_PRODUCER, &co, &pa) ||
	    shmkit_chan_create(b2, SHMKIT_CHAN_PRODUCER, &co, &pb))
		die("create");
	pid_t o1, i1, o2, i2;
	bridge_pair(a1, b1, s1, reliable, &o1, &i1);
	shmkit_chan_detach(pb); /* the echo process takes the role over */
	bridge_pair(b2, a2, s2, reliable, &o2, &i2);
	pid_t echo = fork();
	if (echo == 0) {
		if (shmkit_chan_open(b1, SHMKIT_CHAN_CONSUMER, NULL, &cb) ||
		    shmkit_chan_open(b2, SHMKIT_CHAN_PRODUCER, NULL, &pb))
			_exit(1);
		for (;;) {
			const void *m;
			size_t len;
			if (shmkit_chan_peek_wait(cb, &m, &len, NULL))
				break;
			shmkit_chan_send_wait(pb, m, len, NULL);
			shmkit_chan_release(cb, 0);
		}
		shmkit_chan_close(pb);
		shmkit_chan_close(cb);
		_exit(0);
	}
	if (shmkit_chan_open(a2, SHMKIT_CHAN_CONSUMER, NULL, &ca))
		die("open a2");
	uint64_t *s = calloc((size_t)iters, sizeof *s);
	int k = 0;
	for (; k < iters; k++) {
		uint64_t t0 = bench_now_ns();
		shmkit_chan_send_wait(pa, payload, size, NULL);
		const void *m;
		size_t len;
		struct timespec ts;
			shmkit_deadline_after(&ts, 20000000000ull);
		if (shmkit_chan_peek_wait(ca, &m, &len, &ts))
			break;
		shmkit_chan_release(ca, 0);
		s[k] = bench_now_ns() - t0;
	}
	bench_stats_compute(s, (size_t)k, st);
	free(s);
	shmkit_chan_close(pa); /* the end travels: out, in, echo, out, in */
	waitpid(echo, NULL, 0);
	reap(o1);
	reap(i1);
	reap(o2);
	reap(i2);
	shmkit_chan_close(ca);
	const char *names[] = {a1, a2, b1, b2};
	for (int i = 0; i < 4; i++)
		shmkit_segment_remove(names[i], NULL);
}

int main(int argc, char **argv)
{
	struct bench_opts o;
	if (bench_parse_opts(argc, argv, &o, NULL))
		return 0;
	/* The CLI next to this binary's build directory: <O>/bench/bridge → <O>/shmkit. */
	char self[400];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		die("readlink");
	self[n] = 0;
	char *slash = strrchr(self, '/');
	*slash = 0;
	slash = strrchr(self, '/');
	*slash = 0;
	snprintf(cli, sizeof cli, "%s/shmkit", self);
	signal(SIGPIPE, SIG_IGN);
	if (access("/usr/sbin/nats-server", X_OK) != 0) {
		printf("bench/bridge: skipped, nats-server is not installed (make deps installs it)\n");
		return 0;
	}
	start_server();
	static char payload[1 << 20];
	memset(payload, 0x5a, sizeof payload);
	const size_t sizes[] = {64, 4096, 1 << 20};
	int q = o.quick ? 10 : 1;
	printf("shmkit bridge vs plain libnats, one nats-server on 127.0.0.1 (%d CPUs)\n\n",
	       bench_ncpus());
	const char *cols[] = {"mode", "size", "plain msg/s", "bridged msg/s", "ratio",
			      "plain RTT p50/p99", "bridged RTT p50/p99"};
	int right[] = {0, 1, 1, 1, 1, 1, 1};
	bench_md_header(stdout, cols, right, 7);
	/* SHMKIT_BENCH_BRIDGE=core or =reliable: only that mode's rows. */
	const char *only = getenv("SHMKIT_BENCH_BRIDGE");
	/* SHMKIT_BENCH_BRIDGE_SIZE=64, 4096 or 1048576: only that size's rows. */
	const char *only_size = getenv("SHMKIT_BENCH_BRIDGE_SIZE");
	for (int rel = 0; rel < 2; rel++) {
		if (only && strcmp(only, rel ? "reliable" : "core"))
			continue;
		for (int i = 0; i < 3; i++) {
			size_t size = sizes[i];
			if (only_size && strtoull(only_size, NULL, 10) != size)
				continue;
			int count = rel ? (size >= (1 << 20) ? 200 : 3000)
					: (size >= (1 << 20) ? 1000 : size >= 4096 ? 50000 : 200000);
			count /= q;
			int iters = (size >= (1 << 20) ? 200 : 1000) / q;
			double pt = plain_tput(size, count, rel, payload);
			double bt = bridged_tput(size, count, rel, payload);
			struct bench_stats ps = {0}, bs = {0};
			if (!rel)
				plain_rtt(size, iters, payload, &ps);
			bridged_rtt(size, iters, rel, payload, &bs);
			char c[7][48], x[24], y[24];
			snprintf(c[0], 48, "%s", rel ? "reliable" : "core");
			snprintf(c[1], 48, "%zu B", size);
			snprintf(c[2], 48, "%.0f", pt);
			snprintf(c[3], 48, "%.0f", bt);
			snprintf(c[4], 48, "%.2f", pt > 0 ? bt / pt : 0);
			if (rel)
				snprintf(c[5], 48, "-");
			else
				snprintf(c[5], 48, "%s / %s", bench_fmt_ns(x, sizeof x, (double)ps.p50),
					 bench_fmt_ns(y, sizeof y, (double)ps.p99));
			snprintf(c[6], 48, "%s / %s", bench_fmt_ns(x, sizeof x, (double)bs.p50),
				 bench_fmt_ns(y, sizeof y, (double)bs.p99));
			const char *cells[7] = {c[0], c[1], c[2], c[3], c[4], c[5], c[6]};
			bench_md_row(stdout, cells, 7);
			fflush(stdout);
		}
	}
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 1;
	nats_Close();
	return 0;
}
