/* shmkit CLI — `shmkit pub NAME --pubsub` and `shmkit sub NAME` on publish/subscribe
 * channels, and the `shmkit stat` detail of pub/sub channels and work queues.
 *
 *   producer | shmkit pub NAME --pubsub --create [--subscribers N] [--policy P] [--history K]
 *   shmkit sub NAME | consumer-1        shmkit sub NAME | consumer-2        ...
 *
 * The framings are those of the stream channel (cli/pubsub.c): raw chunks, lines, or
 * 4-byte little-endian length-prefixed records; pub and every sub must agree.
 *
 * Decisions (the usage texts below say them to the user):
 *   - pub creates the channel with --create, else opens an existing one (waiting for it to
 *     appear, as stream pub does) and takes the publisher role over from a dead publisher.
 *   - At end of input pub closes the channel (end of stream) and exits 0. The channel
 *     stays: subscribers drain it, late ones get its history; `shmkit rm` removes it.
 *     Unlike a stream channel, no subscriber removes it: others may still be reading.
 *   - Block policy: pub waits for the slowest live subscriber (--timeout bounds each
 *     wait); a subscriber that died is dropped by the library. Overwrite policy: pub never
 *     waits, and a lapped sub reports "lost N messages" on standard error and goes on with
 *     the oldest message still in the channel (exit status unaffected: losing messages is
 *     what the overwrite policy is for).
 *   - sub exits 0 at the end of the stream, 1 when the publisher died before it (after
 *     writing everything published), when a wait timed out or writing failed; EPIPE on
 *     its standard output ends it quietly with 0, like a pipeline stage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pubsub_multi.h"

/* --- option values ------------------------------------------------------------------------ */
struct open_args {
	const char *name;
	int role;
	const struct shmkit_pubsub_opts *opts;
	struct shmkit_pubsub **out;
};

static int try_open(void *p)
{
	struct open_args *a = p;
	return shmkit_pubsub_open(a->name, a->role, a->opts, a->out);
}

/* Live subscribers that have joined: a subscriber claims its slot first and publishes its
 * start position a moment later (src/pubsub.c); one counted in between would start after
 * whatever was published meanwhile, which is what --wait-subscribers promises not to
 * lose (a crash-torture run saw a subscriber miss lines 1..2047 that way). */
static int joined_subscribers(const struct shmkit_pubsub *ps)
{
	static struct shmkit_pubsub_sub_stats st[SHMKIT_PUBSUB_MAX_SUBSCRIBERS]; /* 64 KiB */
	int n = shmkit_pubsub_subscribers(ps, st, SHMKIT_PUBSUB_MAX_SUBSCRIBERS);
	int joined = 0;
	for (int i = 0; i < n && i < (int)SHMKIT_PUBSUB_MAX_SUBSCRIBERS; i++)
		joined += st[i].alive && !st[i].joining;
	return joined;
}

/* Opens `name` as `role`, waiting while it does not exist or is not published yet. */
static int open_wait(const char *name, int role, const struct shmkit_pubsub_opts *o,
		     const struct cli_waiting *w, struct shmkit_pubsub **psp)
{
	struct open_args a = {name, role, o, psp};
	return cli_open_wait(try_open, &a, w);
}

/* --- pub ------------------------------------------------------------------------------------ */

struct pub_args {
	const char *name;
	bool create, have_cap, have_max;
	uint64_t capacity, max_msg;
	uint32_t subs, policy, history, backend, wait_subs;
	uint32_t lifetime; /* enum shmkit_lifetime; 0: the default (persistent) */
	bool foreign;
	enum cli_framing framing;
	struct cli_waiting wait;
	struct cli_flow flow;
	bool quiet;
};

static int pub_parse(const struct cli_cmd *cmd, int argc, char **argv, struct pub_args *a)
{
	enum { O_CAP = 256, O_MAX, O_PERSISTENT, O_EPHEMERAL, O_FOREIGN };
	static const struct option opts[] = {
		{"pubsub", no_argument, NULL, 'P'},
		{"persistent", no_argument, NULL, O_PERSISTENT},
		{"ephemeral", no_argument, NULL, O_EPHEMERAL},
		{"foreign", no_argument, NULL, O_FOREIGN},
		{"create", no_argument, NULL, 'c'},
		{"subscribers", required_argument, NULL, 'n'},
		{"policy", required_argument, NULL, 'p'},
		{"history", required_argument, NULL, 'H'},
		{"wait-subscribers", required_argument, NULL, 'w'},
		{"capacity", required_argument, NULL, O_CAP},
		{"max-msg", required_argument, NULL, O_MAX},
		{"framing", required_argument, NULL, 'f'},
		{"backend", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	memset(a, 0, sizeof *a);
	a->flow = (struct cli_flow){.cmd = cmd, .kind = "pubsub"};
	a->backend = SHMKIT_BACKEND_POSIX;
	bool create_only = false;
	uint64_t v;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":Pcn:p:H:w:f:b:t:hvjq", opts, NULL)) != -1) {
		int rc = cli_flow_option(cmd, &a->flow, &a->quiet, c, optarg);
		if (rc >= 0) {
			if (rc != CLI_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'P':
			break;
		case 'c':
			a->create = true;
			break;
		case O_PERSISTENT:
		case O_EPHEMERAL:
			if (cli_lifetime_option(cmd, &a->lifetime, c == O_PERSISTENT) != CLI_OK)
				return CLI_USAGE;
			create_only = true;
			break;
		case O_FOREIGN:
			a->foreign = true;
			break;
		case 'n':
			if (cli_parse_u64(optarg, 10, SHMKIT_PUBSUB_MAX_SUBSCRIBERS, &v) || v == 0)
				return cli_usage_error(cmd, "invalid --subscribers '%s' (1..%u)", optarg,
						       SHMKIT_PUBSUB_MAX_SUBSCRIBERS);
			a->subs = (uint32_t)v;
			create_only = true;
			break;
		case 'p':
			if (strcmp(optarg, "block") == 0)
				a->policy = SHMKIT_PUBSUB_BLOCK;
			else if (strcmp(optarg, "overwrite") == 0)
				a->policy = SHMKIT_PUBSUB_OVERWRITE;
			else
				return cli_usage_error(cmd, "invalid --policy '%s' (block or overwrite)",
						       optarg);
			create_only = true;
			break;
		case 'H':
			if (cli_parse_u64(optarg, 10, SHMKIT_PUBSUB_MAX_HISTORY, &v))
				return cli_usage_error(cmd, "invalid --history '%s' (0..%u)", optarg,
						       SHMKIT_PUBSUB_MAX_HISTORY);
			a->history = (uint32_t)v;
			create_only = true;
			break;
		case 'w':
			if (cli_parse_u64(optarg, 10, SHMKIT_PUBSUB_MAX_SUBSCRIBERS, &v))
				return cli_usage_error(cmd, "invalid --wait-subscribers '%s' (0..%u)",
						       optarg, SHMKIT_PUBSUB_MAX_SUBSCRIBERS);
			a->wait_subs = (uint32_t)v;
			break;
		case O_CAP:
			if (cli_parse_bytes(optarg, 1ull << 40, &a->capacity) || a->capacity == 0)
				return cli_usage_error(cmd, "invalid --capacity '%s'", optarg);
			a->have_cap = create_only = true;
			break;
		case O_MAX:
			if (cli_parse_bytes(optarg, 1ull << 39, &a->max_msg) || a->max_msg == 0)
				return cli_usage_error(cmd, "invalid --max-msg '%s'", optarg);
			a->have_max = create_only = true;
			break;
		case 'f':
			if (cli_parse_framing(optarg, &a->framing))
				return cli_usage_error(cmd, "invalid --framing '%s' (raw, lines or len)",
						       optarg);
			break;
		case 'b':
			if (cli_parse_backend(optarg, &a->backend) || a->backend == SHMKIT_BACKEND_ANY)
				return cli_usage_error(cmd, "invalid --backend '%s' (posix or sysv)", optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &a->wait.timeout_ns))
				return cli_usage_error(cmd, "invalid --timeout '%s' (seconds)", optarg);
			a->wait.bounded = true;
			break;
		case 'h':
			cli_print_usage(cmd, stdout);
			return -1;
		default:
			return cli_bad_option(cmd, c, argv);
		}
	}
	if (cli_name_arg(cmd, argc, argv, "channel", &a->name) != CLI_OK)
		return CLI_USAGE;
	a->flow.name = a->name;
	if (!a->quiet) {
		a->wait.announce = cmd;
		a->wait.name = a->name;
	}
	if (create_only && !a->create)
		return cli_usage_error(cmd, "--subscribers, --policy, --history, --capacity, "
					    "--max-msg, --persistent and --ephemeral need --create");
	return CLI_OK;
}

/* Reads exactly n bytes (fewer only at end of input). */
static size_t read_full(FILE *in, void *buf, size_t n)
{
	return fread(buf, 1, n, in);
}

int cli_pub_multi(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct pub_args a;
	int rc = pub_parse(cmd, argc, argv, &a);
	if (rc < 0)
		return CLI_OK; /* --help */
	if (rc != CLI_OK)
		return rc;
	struct shmkit_pubsub_opts o = {0};
	o.seg.backend = a.backend;
	struct shmkit_pubsub *ps;
	int err;
	if (a.create) {
		o.capacity = a.capacity;
		o.max_msg = a.max_msg;
		if (!a.have_max && !a.have_cap)
			o.max_msg = a.framing == CLI_FRAMING_RAW ? 64 << 10 : 16 << 10;
		o.max_subscribers = a.subs;
		o.policy = a.policy;
		o.history = a.history;
		/* A pub/sub channel may keep a history for subscribers yet to come: it outlives
		 * its publisher unless asked otherwise. */
		o.seg.flags |= cli_lifetime_flags(a.lifetime, SHMKIT_LIFETIME_PERSISTENT);
		err = shmkit_pubsub_create(a.name, SHMKIT_PUBSUB_PUBLISHER, &o, &ps);
	} else {
		if (a.foreign)
			o.seg.flags |= SHMKIT_SEG_FOREIGN_UID;
		err = open_wait(a.name, SHMKIT_PUBSUB_PUBLISHER, &o, &a.wait, &ps);
	}
	if (err == -ETIMEDOUT)
		return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", a.name);
	if (err)
		return a.create ? cli_create_error(cmd, a.name, err, a.backend)
				: cli_open_error(cmd, a.name, a.backend, err, "pub/sub channel");
	/* --wait-subscribers: poll the joined subscribers (joins are rare events). */
	for (uint64_t start = shmkit_now_ns(); a.wait_subs;) {
		int live = joined_subscribers(ps);
		if (live >= (int)a.wait_subs)
			break;
		if (a.wait.bounded && shmkit_now_ns() - start >= a.wait.timeout_ns) {
			shmkit_pubsub_close(ps);
			return cli_errorf(cmd, "%s: %d of %u subscribers joined before the timeout",
					  a.name, live, a.wait_subs);
		}
		cli_nap(2000000);
	}
	size_t max = shmkit_pubsub_max_msg(ps);
	char *buf = malloc(max ? max : 1);
	char *line = NULL;
	size_t cap = 0;
	if (!buf) {
		shmkit_pubsub_close(ps);
		return cli_error(cmd, a.name, -ENOMEM);
	}
	rc = CLI_OK;
	cli_flow_start(&a.flow);
	for (uint64_t rec = 1;; rec++) {
		size_t len;
		if (a.framing == CLI_FRAMING_RAW) {
			ssize_t r;
			do
				r = read(STDIN_FILENO, buf, max);
			while (r < 0 && errno == EINTR);
			if (r < 0) {
				rc = cli_error(cmd, "standard input", -errno);
				break;
			}
			if (r == 0)
				break;
			len = (size_t)r;
			err = 0;
		} else if (a.framing == CLI_FRAMING_LINES) {
			ssize_t r = getline(&line, &cap, stdin);
			if (r < 0)
				break;
			len = (size_t)r;
			if (len && line[len - 1] == '\n')
				len--;
			if (len > max) {
				rc = cli_errorf(cmd,
						"%s: line %" PRIu64 " of %zu bytes exceeds max_msg %zu "
						"(the channel's largest message; create it with a "
						"larger --max-msg)",
						a.name, rec, len, max);
				break;
			}
			memcpy(buf, line, len);
		} else {
			uint8_t hdr[4];
			size_t got = read_full(stdin, hdr, 4);
			if (got == 0)
				break;
			if (got < 4) {
				rc = cli_errorf(cmd,
						"%s: record %" PRIu64 " is truncated (%zu of the 4 "
						"length bytes at end of input)",
						a.name, rec, got);
				break;
			}
			len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 |
			      (size_t)hdr[3] << 24;
			if (len > max) {
				rc = cli_errorf(cmd,
						"%s: record %" PRIu64 " of %zu bytes exceeds max_msg %zu "
						"(the channel's largest message; create it with a "
						"larger --max-msg)",
						a.name, rec, len, max);
				break;
			}
			size_t have = read_full(stdin, buf, len);
			if (have != len) {
				rc = cli_errorf(cmd,
						"%s: record %" PRIu64 " is truncated (%zu of its %zu "
						"bytes at end of input)",
						a.name, rec, have, len);
				break;
			}
		}
		struct timespec ts;
		err = shmkit_pubsub_send_wait(ps, buf, len, cli_deadline(&a.wait, &ts));
		if (err == -ETIMEDOUT) {
			rc = cli_errorf(cmd, "%s: timed out waiting for room in the channel (the "
					     "slowest subscriber holds it)", a.name);
			break;
		}
		if (err) {
			rc = cli_error(cmd, a.name, err);
			break;
		}
		cli_flow_count(&a.flow, len);
	}
	free(buf);
	free(line);
	/* At end of input: end of stream. After a failure too — unlike a stream channel no
	 * single consumer relies on it, and subscribers must not wait for a publisher that
	 * is gone; they see the end of what was published. */
	shmkit_pubsub_close(ps);
	cli_flow_end(&a.flow, rc);
	return rc;
}

/* --- sub ---------------------------------------------------------------------------------- */

/* Writes one record whole: one writev(2) of its pieces (resumed if the kernel takes only
 * part), so a record is never split across calls by us. 0 or a negative errno. */
static int out_message(enum cli_framing f, const void *msg, size_t len)
{
	uint8_t hdr[4];
	struct iovec iov[3];
	int cnt = cli_record_iov(f, msg, len, hdr, iov);
	return cli_writev_all(STDOUT_FILENO, iov, cnt);
}

int cli_sub_multi(const struct cli_cmd *cmd, int argc, char **argv)
{
	enum { O_FROM_NOW = 256, O_FOREIGN };
	static const struct option opts[] = {
		{"framing", required_argument, NULL, 'f'},
		{"timeout", required_argument, NULL, 't'},
		{"keep", no_argument, NULL, 'k'},
		{"from-now", no_argument, NULL, O_FROM_NOW},
		{"foreign", no_argument, NULL, O_FOREIGN},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	enum cli_framing framing = CLI_FRAMING_RAW;
	struct cli_waiting wait = {0};
	struct cli_flow flow = {.cmd = cmd, .kind = "pubsub"};
	bool quiet = false;
	uint32_t flags = 0, seg_flags = 0;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:t:khvjq", opts, NULL)) != -1) {
		int frc = cli_flow_option(cmd, &flow, &quiet, c, optarg);
		if (frc >= 0) {
			if (frc != CLI_OK)
				return frc;
			continue;
		}
		switch (c) {
		case 'f':
			if (cli_parse_framing(optarg, &framing))
				return cli_usage_error(cmd, "invalid --framing '%s' (raw, lines or len)",
						       optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &wait.timeout_ns))
				return cli_usage_error(cmd, "invalid --timeout '%s' (seconds)", optarg);
			wait.bounded = true;
			break;
		case 'k':
			break; /* a pub/sub channel is never removed by sub */
		case O_FROM_NOW:
			flags |= SHMKIT_PUBSUB_NO_HISTORY;
			break;
		case O_FOREIGN:
			seg_flags |= SHMKIT_SEG_FOREIGN_UID;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	const char *name;
	if (cli_name_arg(cmd, argc, argv, "channel", &name) != CLI_OK)
		return CLI_USAGE;
	flow.name = name;
	if (!quiet) {
		wait.announce = cmd;
		wait.name = name;
	}
	signal(SIGPIPE, SIG_IGN);
	struct shmkit_pubsub_opts o = {.flags = flags, .seg = {.flags = seg_flags}};
	struct shmkit_pubsub *ps;
	int err = open_wait(name, SHMKIT_PUBSUB_SUBSCRIBER, &o, &wait, &ps);
	if (err == -ETIMEDOUT)
		return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", name);
	if (err)
		return cli_open_error(cmd, name, SHMKIT_BACKEND_ANY, err, "pub/sub channel");
	int rc = CLI_OK;
	cli_flow_start(&flow);
	for (;;) {
		const void *p;
		size_t len;
		struct timespec ts;
		err = shmkit_pubsub_peek(ps, &p, &len);
		if (err == -EAGAIN) {
			cli_flow_tick(&flow); /* about to wait: the display must not lag */
			err = shmkit_pubsub_peek_wait(ps, &p, &len, cli_deadline(&wait, &ts));
		}
		if (err == -EPIPE)
			break;
		if (err == -ETIMEDOUT) {
			rc = cli_errorf(cmd, "%s: timed out waiting for a message", name);
			break;
		}
		if (err == -ESTALE) {
			uint64_t since;
			shmkit_pubsub_lost(ps, &since);
			flow.lost += since;
			fprintf(stderr, "shmkit: %s: %s: lost %" PRIu64 " message%s (overwritten before "
					"they were read)\n",
				cmd->name, name, since, since == 1 ? "" : "s");
			continue;
		}
		if (err == -EOWNERDEAD) {
			rc = cli_errorf(cmd, "%s: publisher died before the end of the stream", name);
			break;
		}
		if (err) {
			rc = cli_error(cmd, name, err);
			break;
		}
		if (shmkit_pubsub_policy(ps) == SHMKIT_PUBSUB_BLOCK) {
			/* Block policy: the bytes are ours until we release them, so write them
			 * straight from the channel, then release. */
			err = out_message(framing, p, len);
			shmkit_pubsub_release(ps, 0);
		} else {
			/* Overwrite policy: the bytes may change under us. Copy them out, check they
			 * stayed intact (release validates), and only then write the copy. */
			void *copy = malloc(len ? len : 1);
			if (!copy) {
				rc = cli_error(cmd, name, -ENOMEM);
				break;
			}
			shmkit_seqlock_load(copy, p, len);
			err = shmkit_pubsub_release(ps, 0);
			if (err == -ESTALE) {
				free(copy);
				fprintf(stderr, "shmkit: %s: %s: lost 1 message (overwritten while it "
						"was read)\n",
					cmd->name, name);
				flow.lost++;
				continue;
			}
			err = out_message(framing, copy, len);
			free(copy);
		}
		if (err == -EPIPE)
			break; /* the reader went away: a normal end for a pipeline stage */
		if (err) {
			rc = cli_error(cmd, "standard output", err);
			break;
		}
		cli_flow_count(&flow, len);
	}
	shmkit_pubsub_close(ps);
	/* The total, whatever else was asked: the per-lap lines scroll away. */
	if (flow.lost)
		fprintf(stderr, "shmkit: %s: %s: lost %" PRIu64 " message%s in all (overwrite "
				"policy: the publisher lapped this subscriber)\n",
			cmd->name, name, flow.lost, flow.lost == 1 ? "" : "s");
	cli_flow_end(&flow, rc);
	return rc;
}

/* --- stat ---------------------------------------------------------------------------------- */

/* The stat hooks only look: read-only, and whoever made the segment. */
#define STAT_FLAGS (SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)

void cli_pubsub_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	struct shmkit_pubsub_opts o = {.seg = cli_info_opts(inf, STAT_FLAGS)};
	struct shmkit_pubsub *ps;
	int err = shmkit_pubsub_open(inf->name, SHMKIT_PUBSUB_OBSERVER, &o, &ps);
	if (cli_kv_detail_error(kv, err))
		return;
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(ps, &st);
	struct shmkit_pubsub_sub_stats *subs = calloc(st.max_subscribers, sizeof *subs);
	int held = subs ? shmkit_pubsub_subscribers(ps, subs, st.max_subscribers) : 0;
	shmkit_pubsub_close(ps);
	cli_kv_str(kv, "policy", st.policy == SHMKIT_PUBSUB_OVERWRITE ? "overwrite" : "block");
	cli_kv_size(kv, "capacity", st.capacity);
	cli_kv_size(kv, "max_msg", st.max_msg);
	cli_kv_u64(kv, "history", st.history);
	cli_kv_u64(kv, "max_subscribers", st.max_subscribers);
	cli_kv_u64(kv, "subscribers", st.subscribers);
	cli_kv_u64(kv, "published", st.next_seq);
	if (st.publisher_pid)
		cli_kv_i64(kv, "publisher_pid", st.publisher_pid);
	else
		cli_kv_null(kv, "publisher_pid");
	cli_kv_tristate(kv, "publisher_alive", st.publisher_pid ? st.publisher_alive : -1);
	cli_kv_tristate(kv, "closed", st.closed);
	cli_kv_u64(kv, "publisher_sleeps", st.publisher_sleeps);
	cli_kv_u64(kv, "subscribers_dropped", st.subscribers_dropped);
	/* One group of keys per held slot: subscriber.SLOT.pid, .alive, .lag, .lost, ... */
	for (int i = 0; i < held && (uint32_t)i < st.max_subscribers; i++) {
		char key[64];
		const struct shmkit_pubsub_sub_stats *s = &subs[i];
#define SUBKEY(field) (snprintf(key, sizeof key, "subscriber.%u." field, s->slot), key)
		cli_kv_i64(kv, SUBKEY("pid"), s->pid);
		cli_kv_tristate(kv, SUBKEY("alive"), s->alive);
		if (s->joining)
			cli_kv_null(kv, SUBKEY("lag"));
		else
			cli_kv_u64(kv, SUBKEY("lag"), s->lag);
		cli_kv_u64(kv, SUBKEY("lost"), s->lost);
		cli_kv_u64(kv, SUBKEY("received"), s->msgs);
#undef SUBKEY
	}
	free(subs);
}

void cli_queue_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	struct shmkit_queue_opts o = {.seg = cli_info_opts(inf, STAT_FLAGS)};
	struct shmkit_queue *q;
	int err = shmkit_queue_open(inf->name, &o, &q);
	if (cli_kv_detail_error(kv, err))
		return;
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	shmkit_queue_close(q);
	cli_kv_u64(kv, "slots", st.slots);
	cli_kv_size(kv, "max_msg", st.max_msg);
	cli_kv_u64(kv, "fill", st.fill);
	cli_kv_u64(kv, "members", st.members);
	cli_kv_u64(kv, "max_members", st.max_members);
	cli_kv_u64(kv, "sent", st.msgs_sent);
	cli_kv_u64(kv, "received", st.msgs_recv);
	cli_kv_u64(kv, "redelivered", st.redelivered);
	cli_kv_u64(kv, "skipped", st.skipped);
}
