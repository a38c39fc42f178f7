/* shmkit CLI — `shmkit bridge`: a channel carried between machines over NATS.
 *
 *   host A: producer | shmkit pub cam --create      shmkit bridge out cam --to nats://S:4222 --subject cam
 *   host B: shmkit bridge in --from nats://S:4222 --subject cam cam --create      shmkit sub cam | consumer
 *
 * `out` is the consumer of a local stream channel (or a subscriber of a pub/sub channel)
 * and publishes each message to a NATS subject; `in` subscribes to it and is the producer
 * of a local stream channel (or the publisher of a pub/sub channel). The local
 * programs use the ordinary API or `shmkit pub`/`sub`; end of stream and an aborted or dead
 * producer travel too. libnats (Debian's libnats-dev) does the networking; without it the
 * command is built as a stub that says so (the Makefile decides, through pkg-config).
 *
 * Frames. Every NATS message the bridge sends has the header
 *     Shmkit-Frame: 1 SRC PREV ID [eof|abort]
 * and the message bytes as payload. SRC (hex) names the source channel (its creation
 * time: a recreated channel is a new source). ID is the out side's stream position after
 * the message (shmkit_chan_position: strictly increasing, and the same for a message that
 * is sent again after a crash); PREV is the ID of the message before it (the position
 * before it), so the in side sees a lost message as PREV != the last ID it received. An
 * end marker has no payload, PREV = the last message's ID and ID = PREV + 1 (positions are
 * multiples of 8, so it never collides with a message). Core mode may send a batch
 * (header ending in " batch"): the messages that were already waiting, as [4-byte length]
 * [bytes] records, PREV before the first and ID after the last; in checks the whole batch
 * before it writes any of it. Anything else on the subject is not a bridge frame: an
 * error, and nothing of it is written into the channel.
 *
 * Modes (shmkit(1) documents both):
 *   core (default) — at most once. out releases a message once libnats took it; a message
 *     lost on the way (a slow subscriber, a reconnect) is a gap the in side counts, in the
 *     channel's notes (`shmkit stat` shows bridge_gaps) and in --stats.
 *   --reliable — JetStream. out publishes each message with its ID as Nats-Msg-Id (the
 *     stream's de-duplication window drops a re-send), a window of them in flight, and
 *     flushes their (MORE) releases only after the stream acknowledged all of them, so a
 *     killed out re-sends rather than loses (see "reliable out" below). in
 *     reads through a durable pull consumer, commits each message into the channel, then
 *     acknowledges it. Exactly once into the channel: in keeps {SRC, ID, stream sequence}
 *     of its last commit in the channel's producer notes (shmkit_chan_note_store; pub/sub: shmkit_pubsub_note_store) and,
 *     before each commit, {ID, stream sequence, channel position} as pending; after a
 *     kill -9 the position tells whether the pending message landed (it did iff the
 *     position moved past the recorded one). A frame at or below the last ID is a
 *     duplicate (acknowledged, skipped). At start, and whenever a frame does not follow the
 *     last commit (PREV != ID: redeliveries after a server restart can come out of order),
 *     in recreates its consumer to start right after the last committed stream sequence,
 *     so the channel receives the stream in order. A source's first frame has no PREV to
 *     check (out may start anywhere), so in takes it only when every stream sequence
 *     before it since the consumer's start was handled or is gone from the stream, and
 *     resyncs otherwise. A channel with no commit of its own starts after what the
 *     durable consumer of its name had acknowledged (a pipeline run again on the same
 *     subject; none: the stream's beginning, a backlog that waited for in).
 *   Bounds (--stream-max-bytes/-age/-msgs): the server drops the stream's oldest
 *   messages, read or not. A frame that does not follow the last commit, while nothing
 *   before it is left in the stream, can never be followed: in reports and counts a gap
 *   (as core mode does) and takes it, instead of resyncing for ever. Likewise a purge or a
 *   server that lost acknowledged messages. A source's first frame after such a hole
 *   counts one too when in's consumer started after a commit or a durable's acks.
 *   A stream that no longer holds the last commit (created again: its sequence numbers
 *   start again) is read from its first message (subscribe()).
 *   Back-pressure: when the channel is full, in waits for room and does not acknowledge
 *   (reliable: JetStream holds the rest; it is told the message is in progress).
 *
 * Notes (the in side's words in the channel's control block, src/chan.c):
 *   0 magic "brdg" | version      1 SRC of the last commit     2 ID of the last commit
 *   3 its stream sequence         4 pending ID                 5 pending stream sequence
 *   6 pending position            7 gaps counted
 */

/* The code is split by concern: the list of files is at the top of cli/bridge_int.h. */
#include "bridge_int.h"

#include <malloc.h>

const char cli_usage_bridge[] =
	"Usage: shmkit bridge out NAME --to nats://HOST:PORT --subject SUBJ [OPTIONS]\n"
	"       shmkit bridge in --from nats://HOST:PORT --subject SUBJ NAME [--create ...] [OPTIONS]\n"
	"\n"
	"Carries a channel over NATS. 'out' consumes the local channel NAME (a stream channel,\n"
	"or a pub/sub channel it subscribes to) and publishes each message to SUBJ; 'in'\n"
	"receives them and produces them into the local channel NAME (stream or pub/sub, as it\n"
	"is; --create --pubsub makes a pub/sub one), for 'shmkit sub' or any consumer. End of\n"
	"stream and an aborted or dead producer\n"
	"travel too. Default mode: core NATS, at most once, gaps counted. --reliable: JetStream,\n"
	"nothing lost across restarts of either bridge or the server, no duplicate delivered.\n"
	"\n"
	"Options:\n"
	"      --to URL, --from URL  the NATS server (nats://HOST:PORT; tls://... with --tls-ca)\n"
	"  -s, --subject SUBJ      the subject (no wildcards)\n"
	"  -r, --reliable          JetStream: acknowledged, de-duplicated, durable\n"
	"      --stream NAME       reliable: the JetStream stream (default SHMKIT_<SUBJ>, dots\n"
	"                          as underscores); created when missing\n"
	"      --durable NAME      in, reliable: the durable consumer (default shmkit_<NAME>);\n"
	"                          a new channel resumes where it left off\n"
	"      --stream-max-bytes BYTES, --stream-max-age SEC, --stream-max-msgs N\n"
	"                          reliable: bound the stream (the oldest messages go first;\n"
	"                          0: no bound); set when the stream is created, or changed\n"
	"                          on an existing one. Messages dropped before in read them\n"
	"                          are a gap that in reports and counts\n"
	"      --tls-ca FILE       trust these CA certificates (TLS)\n"
	"      --creds FILE        NATS credentials file (JWT and seed)\n"
	"  -c, --create            in: create the channel (it must not exist)\n"
	"  -P, --pubsub            in, with --create: a publish/subscribe channel\n"
	"      --subscribers N     in, with --pubsub: subscribers at once (default 16)\n"
	"      --policy P          in, with --pubsub: block (default) or overwrite\n"
	"      --history K         in, with --pubsub: messages a late subscriber starts with\n"
	"      --capacity BYTES    in, with --create: channel size\n"
	"      --max-msg BYTES     in, with --create: largest message (default 1M)\n"
	"  -b, --backend BACKEND   in, with --create: posix (default) or sysv\n"
	"  -k, --keep              out: do not remove the channel at the end of the stream\n"
	"  -t, --timeout SEC       give up after SEC seconds connecting to the server or\n"
	"                          waiting for the channel to appear (default: 10 for the\n"
	"                          server, no bound for the channel); a refused login or\n"
	"                          certificate fails at once\n"
	"      --progress          a rate line on standard error every second\n"
	"      --stats             counters on standard error at the end\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 at the end of the stream; 1 on a runtime error (server unreachable,\n"
	"message too large for NATS or the channel, not a bridge frame, the stream aborted);\n"
	"2 on a usage error.\n";

#ifndef SHMKIT_HAVE_NATS

int cli_cmd_bridge(const struct cli_cmd *cmd, int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cli_print_usage(cmd, stdout);
			return CLI_OK;
		}
	return cli_errorf(cmd, "this shmkit was built without libnats (install libnats-dev and "
			       "rebuild)");
}

#else

static void on_signal(int sig)
{
	cli_bridge_stop_sig = sig;
}

/* Whether `subj` is a subject one bridge can carry: tokens of printable characters without
 * blanks, separated by single dots, and no wildcard. */
static bool subject_ok(const char *subj)
{
	if (!*subj || strlen(subj) > 200 || subj[0] == '.')
		return false;
	for (const char *p = subj; *p; p++) {
		if (*p <= ' ' || *p == 0x7f || *p == '*' || *p == '>')
			return false;
		if (*p == '.' && (p[1] == '.' || p[1] == 0))
			return false;
	}
	return true;
}

/* --- options ------------------------------------------------------------------------------- */

enum {
	OPT_TO = 256, OPT_FROM, OPT_STREAM, OPT_DURABLE, OPT_TLS_CA, OPT_CREDS, OPT_CAPACITY,
	OPT_MAX_MSG, OPT_PROGRESS, OPT_STATS, OPT_SUBS, OPT_POLICY, OPT_HISTORY, OPT_LIM_BYTES,
	OPT_LIM_AGE, OPT_LIM_MSGS
};

static int parse(struct bridge *b, int argc, char **argv)
{
	static const struct option opts[] = {
		{"to", required_argument, NULL, OPT_TO},
		{"from", required_argument, NULL, OPT_FROM},
		{"subject", required_argument, NULL, 's'},
		{"reliable", no_argument, NULL, 'r'},
		{"stream", required_argument, NULL, OPT_STREAM},
		{"durable", required_argument, NULL, OPT_DURABLE},
		{"tls-ca", required_argument, NULL, OPT_TLS_CA},
		{"creds", required_argument, NULL, OPT_CREDS},
		{"create", no_argument, NULL, 'c'},
		{"pubsub", no_argument, NULL, 'P'},
		{"subscribers", required_argument, NULL, OPT_SUBS},
		{"policy", required_argument, NULL, OPT_POLICY},
		{"history", required_argument, NULL, OPT_HISTORY},
		{"capacity", required_argument, NULL, OPT_CAPACITY},
		{"max-msg", required_argument, NULL, OPT_MAX_MSG},
		{"backend", required_argument, NULL, 'b'},
		{"keep", no_argument, NULL, 'k'},
		{"timeout", required_argument, NULL, 't'},
		{"progress", no_argument, NULL, OPT_PROGRESS},
		{"stats", no_argument, NULL, OPT_STATS},
		{"stream-max-bytes", required_argument, NULL, OPT_LIM_BYTES},
		{"stream-max-age", required_argument, NULL, OPT_LIM_AGE},
		{"stream-max-msgs", required_argument, NULL, OPT_LIM_MSGS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const struct cli_cmd *cmd = b->cmd;
	int c;
	bool have_backend = false, have_sizes = false, have_ps = false;
	uint64_t v;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":s:rcPb:kt:h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_TO:
		case OPT_FROM:
			if ((c == OPT_TO) != b->out)
				return cli_usage_error(cmd, "%s: --%s is for 'bridge %s'",
						       b->out ? "out" : "in", c == OPT_TO ? "to" : "from",
						       c == OPT_TO ? "out" : "in");
			b->url = optarg;
			break;
		case 's':
			b->subject = optarg;
			break;
		case 'r':
			b->reliable = true;
			break;
		case OPT_STREAM:
			b->stream = optarg;
			break;
		case OPT_DURABLE:
			b->durable = optarg;
			break;
		case OPT_TLS_CA:
			b->tls_ca = optarg;
			break;
		case OPT_CREDS:
			b->creds = optarg;
			break;
		case 'c':
			b->create = true;
			break;
		case 'P':
			b->pubsub = true;
			break;
		case OPT_SUBS:
			if (cli_parse_u64(optarg, 10, SHMKIT_PUBSUB_MAX_SUBSCRIBERS, &v) || v == 0)
				return cli_usage_error(cmd, "invalid --subscribers '%s' (1..%u)", optarg,
						       SHMKIT_PUBSUB_MAX_SUBSCRIBERS);
			b->subs = (uint32_t)v;
			have_ps = true;
			break;
		case OPT_POLICY:
			if (strcmp(optarg, "block") && strcmp(optarg, "overwrite"))
				return cli_usage_error(cmd, "invalid --policy '%s' (block or overwrite)",
						       optarg);
			b->overwrite = !strcmp(optarg, "overwrite");
			have_ps = true;
			break;
		case OPT_HISTORY:
			if (cli_parse_u64(optarg, 10, SHMKIT_PUBSUB_MAX_HISTORY, &v))
				return cli_usage_error(cmd, "invalid --history '%s' (0..%u)", optarg,
						       SHMKIT_PUBSUB_MAX_HISTORY);
			b->history = (uint32_t)v;
			have_ps = true;
			break;
		case OPT_CAPACITY:
		case OPT_MAX_MSG:
			if (cli_parse_bytes(optarg, 1ull << 40, c == OPT_CAPACITY ? &b->capacity
										   : &b->max_msg))
				return cli_usage_error(cmd, "invalid size '%s'", optarg);
			have_sizes = true;
			break;
		case 'b':
			if (cli_parse_backend(optarg, &b->backend) || b->backend == SHMKIT_BACKEND_ANY)
				return cli_usage_error(cmd, "invalid backend '%s'", optarg);
			have_backend = true;
			break;
		case 'k':
			b->keep = true;
			break;
		case 't':
			if (cli_parse_seconds(optarg, &b->timeout_ns))
				return cli_usage_error(cmd, "invalid timeout '%s'", optarg);
			b->have_timeout = true;
			break;
		case OPT_PROGRESS:
			b->progress = true;
			break;
		case OPT_STATS:
			b->stats = true;
			break;
		/* 0 lifts the limit: JetStream says -1 (bytes, messages) or 0 (age). */
		case OPT_LIM_BYTES:
			if (cli_parse_bytes(optarg, (uint64_t)INT64_MAX, &v))
				return cli_usage_error(cmd, "invalid --stream-max-bytes '%s'", optarg);
			b->lim_bytes = v ? (int64_t)v : -1;
			b->have_lim_bytes = true;
			break;
		case OPT_LIM_MSGS:
			if (cli_parse_u64(optarg, 10, (uint64_t)INT64_MAX, &v))
				return cli_usage_error(cmd, "invalid --stream-max-msgs '%s'", optarg);
			b->lim_msgs = v ? (int64_t)v : -1;
			b->have_lim_msgs = true;
			break;
		case OPT_LIM_AGE:
			if (cli_parse_seconds(optarg, &v) || (v && v < 1000000000ull))
				return cli_usage_error(cmd, "invalid --stream-max-age '%s' (seconds, at "
						       "least 1; 0: no limit)", optarg);
			b->lim_age_ns = (int64_t)v;
			b->have_lim_age = true;
			break;
		default:
			return cli_default_option(cmd, c, argv) == CLI_OK ? -1 : CLI_USAGE;
		}
	}
	if (!b->url)
		return cli_usage_error(cmd, "missing --%s URL", b->out ? "to" : "from");
	if (!b->subject)
		return cli_usage_error(cmd, "missing --subject SUBJ");
	if (!subject_ok(b->subject))
		return cli_usage_error(cmd, "invalid subject '%s' (tokens separated by single dots, "
				       "no blanks, no wildcards * or >)", b->subject);
	if ((have_sizes || have_backend || b->pubsub) && !b->create)
		return cli_usage_error(cmd, "--capacity, --max-msg, --backend and --pubsub need "
				       "--create");
	if (have_ps && !b->pubsub)
		return cli_usage_error(cmd, "--subscribers, --policy and --history need --pubsub");
	if (b->out && (b->create || b->durable || have_ps))
		return cli_usage_error(cmd, "out: --create and --durable are for 'bridge in'");
	if (!b->out && b->keep)
		return cli_usage_error(cmd, "in: --keep is for 'bridge out'");
	if ((b->have_lim_bytes || b->have_lim_msgs || b->have_lim_age) && !b->reliable)
		return cli_usage_error(cmd, "--stream-max-bytes, --stream-max-age and "
				       "--stream-max-msgs need --reliable");
	if (cli_name_arg(cmd, argc, argv, "channel", &b->name) != CLI_OK)
		return CLI_USAGE;
	if (!b->stream) {
		int n = snprintf(b->stream_buf, sizeof b->stream_buf, "SHMKIT_%s", b->subject);
		for (int i = 0; i < n && b->stream_buf[i]; i++)
			if (b->stream_buf[i] == '.')
				b->stream_buf[i] = '_';
		b->stream = b->stream_buf;
	}
	if (!b->durable) {
		snprintf(b->durable_buf, sizeof b->durable_buf, "shmkit_%s", b->name);
		for (char *p = b->durable_buf; *p; p++)
			if (*p == '.')
				*p = '_';
		b->durable = b->durable_buf;
	}
	return CLI_OK;
}

int cli_cmd_bridge(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage_error(cmd, "missing direction: out or in");
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		cli_print_usage(cmd, stdout);
		return CLI_OK;
	}
	struct bridge b = {.cmd = cmd, .backend = SHMKIT_BACKEND_POSIX};
	if (!strcmp(argv[1], "out"))
		b.out = true;
	else if (strcmp(argv[1], "in"))
		return cli_usage_error(cmd, "unknown direction '%s' (out or in)", argv[1]);
	int rc = parse(&b, argc - 1, argv + 1);
	if (rc == -1)
		return CLI_OK; /* --help */
	if (rc != CLI_OK)
		return rc;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Each message crosses libnats in a buffer of its own size (built to publish, copied out
	 * of the read buffer on receipt). With glibc's defaults a buffer above the mmap
	 * threshold is a fresh mmap() until a free raises the threshold, and a free heap top
	 * above the trim threshold is given back, so every large message was faulted in and
	 * zeroed anew: page faults were 30-40 % of each bridge's CPU at 1 MiB (perf; see
	 * docs/performance.md). Serve buffers up to 32 MiB (glibc's maximum for this setting)
	 * from the heap and let the heap keep up to 64 MiB of freed top for the next ones. */
	(void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
	(void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
	srand((unsigned)now_ns());
	b.t0 = b.last_progress = now_ns();
	rc = b.out ? cli_bridge_run_out(&b) : cli_bridge_run_in(&b);
	cli_bridge_progress(&b, true);
	cli_bridge_print_stats(&b);
	/* Subscriptions are destroyed only once the connection is closed: before, libnats's
	 * reader thread may still be delivering to them (see js_consumer() in bridge_in.c). */
	if (b.nc) {
		natsConnection_FlushTimeout(b.nc, 2000);
		natsConnection_Close(b.nc);
	}
	if (b.sub)
		natsSubscription_Destroy(b.sub);
	for (size_t i = 0; i < b.nretired; i++)
		natsSubscription_Destroy(b.retired[i]);
	free(b.retired);
	if (b.js)
		jsCtx_Destroy(b.js);
	if (b.nc)
		natsConnection_Destroy(b.nc);
	nats_Close();
	return rc;
}

#endif

/* `shmkit stat` of a channel (stream or pub/sub) an in bridge produces into: its
 * bookkeeping. */
void cli_bridge_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	uint64_t v[SHMKIT_CHAN_NOTES] = {0};
	static_assert(SHMKIT_PUBSUB_NOTES == SHMKIT_CHAN_NOTES, "the same notes on either kind");
	if (inf->kind == SHMKIT_KIND_PUBSUB) {
		struct shmkit_pubsub_opts po = {
			.seg = cli_info_opts(inf, SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)};
		struct shmkit_pubsub *ps;
		if (shmkit_pubsub_open(inf->name, SHMKIT_PUBSUB_OBSERVER, &po, &ps) != 0)
			return;
		for (unsigned i = 0; i < SHMKIT_PUBSUB_NOTES; i++)
			(void)shmkit_pubsub_note_load(ps, i, &v[i]);
		shmkit_pubsub_close(ps);
	} else {
		struct shmkit_chan_opts co = {
			.seg = cli_info_opts(inf, SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)};
		struct shmkit_chan *ch;
		if (shmkit_chan_open(inf->name, SHMKIT_CHAN_OBSERVER, &co, &ch) != 0)
			return;
		for (unsigned i = 0; i < SHMKIT_CHAN_NOTES; i++)
			(void)shmkit_chan_note_load(ch, i, &v[i]);
		shmkit_chan_close(ch);
	}
	if (v[NOTE_MAGIC] != NOTES_MAGIC)
		return;
	cli_kv_u64(kv, "bridge_last_id", v[NOTE_ID]);
	cli_kv_u64(kv, "bridge_stream_seq", v[NOTE_SSEQ]);
	cli_kv_u64(kv, "bridge_gaps", v[NOTE_GAPS]);
}
