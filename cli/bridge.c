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
 *     so the channel receives the stream in order.
 *   Back-pressure: when the channel is full, in waits for room and does not acknowledge
 *   (reliable: JetStream holds the rest; it is told the message is in progress).
 *
 * Notes (the in side's words in the channel's control block, src/chan.c):
 *   0 magic "brdg" | version      1 SRC of the last commit     2 ID of the last commit
 *   3 its stream sequence         4 pending ID                 5 pending stream sequence
 *   6 pending position            7 gaps counted
 */
#include <errno.h>
#include <getopt.h>
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

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
	"      --durable NAME      in, reliable: the durable consumer (default shmkit_<NAME>)\n"
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
	"                          server, no bound for the channel)\n"
	"      --progress          a rate line on standard error every second\n"
	"      --stats             counters on standard error at the end\n"
	"  -h, --help              show this help\n"
	"\n"
	"Exit status: 0 at the end of the stream; 1 on a runtime error (server unreachable,\n"
	"message too large for NATS or the channel, not a bridge frame, the stream aborted);\n"
	"2 on a usage error.\n";

enum { NOTE_MAGIC, NOTE_SRC, NOTE_ID, NOTE_SSEQ, NOTE_PID, NOTE_PSSEQ, NOTE_PPOS, NOTE_GAPS };
#define NOTES_MAGIC 0x6272646700000001ull /* "brdg", version 1 */

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

#include <nats/nats.h>

#define FRAME_HDR "Shmkit-Frame"
#define FRAME_OVERHEAD 128 /* header bytes a frame adds on the wire, at most */
#define SLICE_NS 200000000ull

static volatile sig_atomic_t stop_sig;

static void on_signal(int sig)
{
	stop_sig = sig;
}

struct bridge {
	const struct cli_cmd *cmd;
	bool out;
	const char *url, *subject, *name, *stream, *durable, *tls_ca, *creds;
	bool reliable, create, keep, progress, stats;
	uint64_t capacity, max_msg;
	uint32_t backend;
	uint64_t timeout_ns; bool have_timeout;
	char stream_buf[256], durable_buf[256];
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	/* The local channel: a stream channel (ch) or a pub/sub channel (ps), never both. */
	struct shmkit_chan *ch;
	struct shmkit_pubsub *ps;
	bool pubsub, overwrite;     /* in, --create: make a pub/sub channel; its policy */
	uint32_t subs, history;     /* in, --create --pubsub */
	/* counters */
	uint64_t msgs, bytes, gaps, dups, resends, resyncs, lost;
	uint64_t t0, last_progress, last_msgs, last_bytes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static const char *nerr(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);
	return t && *t ? t : natsStatus_GetText(s);
}

/* --- progress and statistics ------------------------------------------------------------- */

static void progress(struct bridge *b, bool force)
{
	uint64_t t = now_ns();
	if (!b->progress || (!force && t - b->last_progress < 1000000000ull))
		return;
	double dt = (double)(t - b->last_progress) / 1e9;
	fprintf(stderr, "shmkit bridge %s: %" PRIu64 " msgs %" PRIu64 " bytes, %.0f msg/s %.1f MB/s, "
			"gaps %" PRIu64 "\n", b->out ? "out" : "in", b->msgs, b->bytes,
		dt > 0 ? (double)(b->msgs - b->last_msgs) / dt : 0.0,
		dt > 0 ? (double)(b->bytes - b->last_bytes) / dt / 1e6 : 0.0, b->gaps);
	b->last_progress = t;
	b->last_msgs = b->msgs;
	b->last_bytes = b->bytes;
}

static void print_stats(struct bridge *b)
{
	if (!b->stats)
		return;
	double dt = (double)(now_ns() - b->t0) / 1e9;
	fprintf(stderr, "shmkit bridge %s: msgs %" PRIu64 " bytes %" PRIu64 " gaps %" PRIu64
			" duplicates %" PRIu64 " resends %" PRIu64 " resyncs %" PRIu64
			" lost %" PRIu64 " seconds %.3f\n", b->out ? "out" : "in", b->msgs, b->bytes,
		b->gaps, b->dups, b->resends, b->resyncs, b->lost, dt);
}

/* --- NATS connection ---------------------------------------------------------------------- */

/* Reconnect delay: 50 ms doubling up to 2 s, plus up to a quarter of it at random, so
 * bridges that lost the same server do not all come back in the same millisecond. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
	(void)nc;
	(void)closure;
	int64_t d = 50;
	for (int i = 0; i < attempts && d < 2000; i++)
		d *= 2;
	if (d > 2000)
		d = 2000;
	return d + rand() % (d / 4 + 1);
}

static int nats_connect(struct bridge *b)
{
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetURL(no, b->url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(no, reconnect_delay, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(no, 64 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 2000);
	if (s == NATS_OK && b->tls_ca) {
		s = natsOptions_SetSecure(no, true);
		if (s == NATS_OK)
			s = natsOptions_LoadCATrustedCertificates(no, b->tls_ca);
	}
	if (s == NATS_OK && b->creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, b->creds, NULL);
	if (s != NATS_OK) {
		natsOptions_Destroy(no);
		return cli_errorf(b->cmd, "NATS options: %s", nerr(s));
	}
	uint64_t limit = b->have_timeout ? b->timeout_ns : 10000000000ull;
	uint64_t end = now_ns() + limit;
	for (int attempt = 0;; attempt++) {
		s = natsConnection_Connect(&b->nc, no);
		if (s == NATS_OK || stop_sig || now_ns() >= end)
			break;
		cli_nap((uint64_t)reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
	natsOptions_Destroy(no);
	if (s != NATS_OK)
		return cli_errorf(b->cmd, "cannot connect to %s: %s", b->url, nerr(s));
	return CLI_OK;
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

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* Creates the JetStream stream for the subject unless it exists; retries while the server
 * (re)starts, up to the connect timeout. */
static int ensure_stream(struct bridge *b)
{
	/* out: asynchronous publishes report to on_ack() (reliable out's window). */
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.AckHandler = on_ack;
	jo.PublishAsync.MaxPending = 1024; /* above the window: publishing never stalls */
	natsStatus s = natsConnection_JetStream(&b->js, b->nc, b->out ? &jo : NULL);
	if (s != NATS_OK)
		return cli_errorf(b->cmd, "JetStream: %s", nerr(s));
	uint64_t end = now_ns() + (b->have_timeout ? b->timeout_ns : 10000000000ull);
	for (int attempt = 0;; attempt++) {
		jsStreamInfo *si = NULL;
		jsErrCode je = 0;
		s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &je);
		if (s == NATS_OK) {
			jsStreamInfo_Destroy(si);
			return CLI_OK;
		}
		if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
			jsStreamConfig cfg;
			jsStreamConfig_Init(&cfg);
			cfg.Name = b->stream;
			const char *subjects[] = {b->subject};
			cfg.Subjects = subjects;
			cfg.SubjectsLen = 1;
			cfg.Storage = js_FileStorage;
			s = js_AddStream(&si, b->js, &cfg, NULL, &je);
			if (s == NATS_OK) {
				jsStreamInfo_Destroy(si);
				return CLI_OK;
			}
		}
		if (stop_sig || now_ns() >= end)
			return cli_errorf(b->cmd, "JetStream stream %s for subject %s: %s (error %d)",
					  b->stream, b->subject, nerr(s), (int)je);
		cli_nap((uint64_t)reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
}

/* --- the local channel: a stream channel or a pub/sub channel --------------------------------
 * The same few calls on either kind; out is the consumer or a subscriber, in the producer
 * or the publisher. */

static int l_position(const struct bridge *b, uint64_t *pos)
{
	return b->ps ? shmkit_pubsub_position(b->ps, pos) : shmkit_chan_position(b->ch, pos);
}

static int l_peek(struct bridge *b, const void **p, size_t *n)
{
	return b->ps ? shmkit_pubsub_peek(b->ps, p, n) : shmkit_chan_peek(b->ch, p, n);
}

static int l_peek_wait(struct bridge *b, const void **p, size_t *n, const struct timespec *dl)
{
	return b->ps ? shmkit_pubsub_peek_wait(b->ps, p, n, dl)
		     : shmkit_chan_peek_wait(b->ch, p, n, dl);
}

/* Releases the peeked message; `more`: held until l_flush() (the channel's batching
 * contract: nothing else publishes it). -ESTALE: a pub/sub message overwritten while it was
 * read (what was read is garbage). */
static int l_release(struct bridge *b, bool more)
{
	if (b->ps)
		return shmkit_pubsub_release(b->ps, more ? SHMKIT_PUBSUB_MORE : 0);
	return shmkit_chan_release(b->ch, more ? SHMKIT_CHAN_MORE : 0);
}

static void l_flush(struct bridge *b)
{
	if (b->ps)
		(void)shmkit_pubsub_flush(b->ps);
	else
		(void)shmkit_chan_flush(b->ch);
}

static size_t l_max_msg(const struct bridge *b)
{
	return b->ps ? shmkit_pubsub_max_msg(b->ps) : shmkit_chan_max_msg(b->ch);
}

static struct shmkit_segment *l_segment(const struct bridge *b)
{
	return b->ps ? shmkit_pubsub_segment(b->ps) : shmkit_chan_segment(b->ch);
}

/* Leaves the channel without ending the stream: a consumer's unreleased messages stay for
 * the next bridge, a producer's peer keeps waiting. A pub/sub publisher has no such exit:
 * its handle is left to the process's end, and subscribers see a publisher that died
 * (-EOWNERDEAD while they wait) until a restarted bridge takes the role over. */
static void l_detach(struct bridge *b)
{
	if (b->ch)
		shmkit_chan_detach(b->ch);
	else if (b->ps && b->out)
		shmkit_pubsub_close(b->ps);
	b->ch = NULL;
	b->ps = NULL;
}

/* --- frames -------------------------------------------------------------------------------- */

struct frame {
	uint64_t src, prev, id;
	int end; /* 0 message, 1 eof, 2 abort, 3 batch (core: several messages) */
};

/* Parses the frame header; false when `m` is not a bridge frame. */
static bool frame_parse(natsMsg *m, struct frame *f)
{
	const char *v = NULL;
	if (natsMsgHeader_Get(m, FRAME_HDR, &v) != NATS_OK || !v)
		return false;
	char end[8] = "";
	int n = 0;
	unsigned ver = 0;
	if (sscanf(v, "%u %" SCNx64 " %" SCNu64 " %" SCNu64 "%n", &ver, &f->src, &f->prev, &f->id,
		   &n) != 4 || ver != 1 || f->src == 0)
		return false;
	const char *rest = v + n;
	if (*rest == ' ' && sscanf(rest + 1, "%7s", end) != 1)
		return false;
	f->end = !*end ? 0 : !strcmp(end, "eof") ? 1 : !strcmp(end, "abort") ? 2
		 : !strcmp(end, "batch") ? 3 : -1;
	if (f->end < 0 || f->id <= f->prev)
		return false;
	if ((f->end == 1 || f->end == 2) &&
	    (f->id != f->prev + 1 || natsMsg_GetDataLength(m) != 0))
		return false;
	return true;
}

static natsStatus frame_make(struct bridge *b, natsMsg **mp, const struct frame *f,
			     const void *data, size_t len)
{
	char v[96];
	snprintf(v, sizeof v, "1 %" PRIx64 " %" PRIu64 " %" PRIu64 "%s", f->src, f->prev, f->id,
		 f->end == 1 ? " eof" : f->end == 2 ? " abort" : f->end == 3 ? " batch" : "");
	natsStatus s = natsMsg_Create(mp, b->subject, NULL, data, (int)len);
	if (s == NATS_OK)
		s = natsMsgHeader_Set(*mp, FRAME_HDR, v);
	return s;
}

/* Sends one frame. Core: hands it to libnats (buffered; during a reconnect libnats keeps up
 * to 64 MiB, beyond that the frame is dropped and the far side counts a gap). Reliable:
 * publishes to JetStream and waits for the stream's acknowledgement, again and again until
 * it comes (the de-duplication id makes a re-send after a lost acknowledgement harmless).
 * 0, or CLI_ERR after reporting (only on a signal, or an error that retrying cannot cure). */
static int frame_send(struct bridge *b, const struct frame *f, const void *data, size_t len)
{
	natsMsg *m = NULL;
	natsStatus s = frame_make(b, &m, f, data, len);
	if (s != NATS_OK) {
		natsMsg_Destroy(m);
		return cli_errorf(b->cmd, "NATS message: %s", nerr(s));
	}
	if (!b->reliable) {
		s = natsConnection_PublishMsg(b->nc, m);
		natsMsg_Destroy(m);
		if (s != NATS_OK && s != NATS_INSUFFICIENT_BUFFER && s != NATS_CONNECTION_CLOSED)
			return cli_errorf(b->cmd, "publish to %s: %s", b->subject, nerr(s));
		return CLI_OK;
	}
	char msgid[64];
	snprintf(msgid, sizeof msgid, "%" PRIx64 "-%" PRIu64, f->src, f->id);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	po.MaxWait = 2000;
	for (int attempt = 0;; attempt++) {
		jsPubAck *pa = NULL;
		jsErrCode je = 0;
		s = js_PublishMsg(&pa, b->js, m, &po, &je);
		jsPubAck_Destroy(pa);
		if (s == NATS_OK)
			break;
		if (je == JSStreamStoreFailedErr || je == JSStreamMessageExceedsMaximumErr) {
			natsMsg_Destroy(m);
			return cli_errorf(b->cmd, "JetStream refused a message of %zu bytes: %s", len,
					  nerr(s));
		}
		if (stop_sig) {
			natsMsg_Destroy(m);
			return cli_errorf(b->cmd, "interrupted while publishing");
		}
		b->resends++;
		cli_nap((uint64_t)reconnect_delay(NULL, attempt < 5 ? attempt : 5, NULL) * 1000000ull);
	}
	natsMsg_Destroy(m);
	return CLI_OK;
}

/* --- out: local channel → NATS -------------------------------------------------------------- */

struct open_ctx {
	struct bridge *b;
};

/* Opens NAME as whichever kind it is: a stream channel, or else (-EMEDIUMTYPE) a pub/sub
 * channel, as out's consumer/subscriber or in's producer/publisher. */
static int try_open(void *p)
{
	struct bridge *b = ((struct open_ctx *)p)->b;
	int err = shmkit_chan_open(b->name, b->out ? SHMKIT_CHAN_CONSUMER : SHMKIT_CHAN_PRODUCER,
				   NULL, &b->ch);
	if (err != -EMEDIUMTYPE)
		return err;
	b->ch = NULL;
	return shmkit_pubsub_open(b->name, b->out ? SHMKIT_PUBSUB_SUBSCRIBER
						  : SHMKIT_PUBSUB_PUBLISHER, NULL, &b->ps);
}

static int open_wait(struct bridge *b)
{
	struct open_ctx o = {b};
	struct cli_waiting w = {b->have_timeout, b->timeout_ns};
	return cli_open_wait(try_open, &o, &w);
}

/* The source id: the channel's creation time, so a channel created anew under the same
 * name is a new source (its positions start again at 0). */
static uint64_t source_id(const struct bridge *b)
{
	struct shmkit_segment_info inf;
	if (shmkit_segment_info(l_segment(b), &inf) != 0 || inf.created_ns == 0)
		return 1;
	return inf.created_ns;
}

#define BATCH_MAX (256u << 10)

/* A pub/sub subscriber lost messages (overwrite policy: lapped, or a message overwritten
 * while it was read): count them and, in core mode, make the next frame show the gap
 * (its PREV is then where the subscriber stands, not the last ID sent). Reliable mode
 * keeps its chain unbroken (a break would only make the in side resynchronize) and says
 * the loss in --stats. */
static void local_loss(struct bridge *b, struct frame *f)
{
	uint64_t since = 0;
	(void)shmkit_pubsub_lost(b->ps, &since);
	b->lost += since ? since : 1;
	uint64_t pos = 0;
	if (!b->reliable && l_position(b, &pos) == 0 && pos > f->prev)
		f->prev = pos;
}

/* Core mode: sends the peeked message p[0..n) together with those right behind it that
 * are already in the channel (up to `cap` bytes of [4-byte length][bytes] records) as one
 * frame, releasing each once copied: at most once anyway, and a small message costs a
 * NATS message no more. A lone message goes as a plain frame. f->id is set to the
 * position after the last one. A pub/sub message overwritten during its copy is dropped
 * from the batch and ends it. */
static int send_batch(struct bridge *b, struct frame *f, const void *p, size_t n,
		      uint8_t *batch, size_t cap)
{
	size_t used = 0, count = 0;
	bool lost = false;
	for (;;) {
		uint32_t len = (uint32_t)n;
		memcpy(batch + used, &len, 4);
		memcpy(batch + used + 4, p, n);
		uint64_t id = 0;
		(void)l_position(b, &id);
		if (l_release(b, false) == -ESTALE) {
			lost = true;
			break;
		}
		f->id = id;
		used += 4 + n;
		count++;
		b->msgs++;
		b->bytes += n;
		if (count >= 4096 || l_peek(b, &p, &n) != 0 || used + 4 + n > cap)
			break;
	}
	int rc = CLI_OK;
	if (count > 0) {
		f->end = count > 1 ? 3 : 0;
		rc = count > 1 ? frame_send(b, f, batch, used)
			       : frame_send(b, f, batch + 4, used - 4);
		f->end = 0;
		f->prev = f->id;
	}
	if (lost)
		local_loss(b, f);
	return rc;
}

/* --- reliable out: a window of JetStream publishes in flight ---------------------------------
 * Up to WIN_MSGS messages (WIN_BYTES of payload) are published asynchronously; each is
 * released from the channel with MORE as it is sent (the channel's batching contract: the
 * release stays private to this process until flushed) and the window is flushed only
 * once every message in it is acknowledged. A bridge killed meanwhile has flushed nothing,
 * so the next one re-sends the whole window (de-duplicated by the stream).
 *
 * Order in the stream: message i of a window carries ExpectLastSeq = L + i, where L is
 * the stream's last sequence when the window started. If one message is lost on the way
 * (a server restart), every later one in the window is refused instead of being stored
 * out of order; the window is then completed with synchronous publishes, in order, from
 * the first message not acknowledged (those that did land are dropped as duplicates), and
 * L is read again from the stream. The in side thus sees the stream in order. */
#define WIN_MSGS 256
#define WIN_BYTES (8u << 20)

struct win {
	pthread_mutex_t mu;
	int count;
	uint64_t id[WIN_MSGS];
	uint64_t seq[WIN_MSGS]; /* the stream sequence in the acknowledgement */
	int8_t state[WIN_MSGS]; /* 0 in flight, 1 acknowledged, 2 duplicate, -1 failed */
	struct frame f[WIN_MSGS];
	size_t off[WIN_MSGS], len[WIN_MSGS];
	uint8_t *buf;
	size_t cap;
};

/* Static: libnats may call on_ack() late, after the window it belonged to was given up
 * (w->count is then 0 and the acknowledgement is ignored), until the connection is gone. */
static struct win the_win = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* libnats's thread: records the outcome of one asynchronous publish. */
static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pae;
	(void)closure;
	struct win *w = &the_win;
	struct frame f;
	if (frame_parse(m, &f)) {
		pthread_mutex_lock(&w->mu);
		for (int i = 0; i < w->count; i++)
			if (w->id[i] == f.id && w->state[i] == 0) {
				w->state[i] = pa ? (pa->Duplicate ? 2 : 1) : -1;
				w->seq[i] = pa ? pa->Sequence : 0;
				break;
			}
		pthread_mutex_unlock(&w->mu);
	}
	natsMsg_Destroy(m);
}

/* The stream's last sequence, 0 when unknown (the next window then starts without an
 * expectation for its first message). */
static uint64_t stream_last_seq(struct bridge *b)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	uint64_t last = 0;
	if (js_GetStreamInfo(&si, b->js, b->stream, NULL, &je) == NATS_OK && si)
		last = si->State.LastSeq;
	jsStreamInfo_Destroy(si);
	return last;
}

/* Publishes the window's message i asynchronously; false when libnats refused it now. */
static bool win_publish(struct bridge *b, struct win *w, int i, uint64_t last)
{
	natsMsg *m = NULL;
	char msgid[64];
	snprintf(msgid, sizeof msgid, "%" PRIx64 "-%" PRIu64, w->f[i].src, w->f[i].id);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	po.ExpectLastSeq = last + (uint64_t)i; /* 0: no expectation */
	natsStatus s = frame_make(b, &m, &w->f[i], w->buf + w->off[i], w->len[i]);
	if (s == NATS_OK)
		s = js_PublishMsgAsync(b->js, &m, &po);
	natsMsg_Destroy(m); /* NULL when libnats took it */
	return s == NATS_OK;
}

/* Waits for the window's acknowledgements and completes it in order (above). Returns
 * CLI_OK once every message is in the stream, with *last its last sequence (0: unknown). */
static int win_complete(struct bridge *b, struct win *w, uint64_t *last)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 10000;
	if (js_PublishAsyncComplete(b->js, &po) != NATS_OK) {
		/* Still in flight after 10 s (the server is away): take them back; the
		 * synchronous path below sends them again. */
		natsMsgList pend = {0};
		if (js_PublishAsyncGetPendingList(&pend, b->js) == NATS_OK)
			natsMsgList_Destroy(&pend);
	}
	pthread_mutex_lock(&w->mu);
	int count = w->count, first = count;
	bool dup = false;
	for (int i = count - 1; i >= 0; i--) {
		if (w->state[i] != 1 && w->state[i] != 2)
			first = i;
		dup |= w->state[i] == 2;
	}
	uint64_t seq = count ? w->seq[count - 1] : 0;
	w->count = 0; /* late acknowledgements find no slot */
	pthread_mutex_unlock(&w->mu);
	for (int i = first; i < count; i++) {
		int rc = frame_send(b, &w->f[i], w->buf + w->off[i], w->len[i]);
		if (rc != CLI_OK)
			return rc;
		b->resends++;
	}
	*last = first == count && !dup ? seq : stream_last_seq(b);
	return CLI_OK;
}

/* Reliable mode's loop: fills a window from the channel, publishes it, completes it,
 * flushes the releases. Returns with *end_err set to the channel's end (-EPIPE,
 * -EOWNERDEAD...) once everything before it is in the stream, or with rc != CLI_OK. */
static int out_reliable(struct bridge *b, struct frame *f, uint64_t maxpay, int *end_err)
{
	struct win *w = &the_win;
	size_t cap = WIN_BYTES > maxpay ? WIN_BYTES : (size_t)maxpay;
	if (!(w->buf = malloc(cap)))
		return cli_errorf(b->cmd, "out of memory");
	w->cap = cap;
	uint64_t last = stream_last_seq(b);
	int rc = CLI_OK;
	*end_err = 0;
	while (rc == CLI_OK && !*end_err) {
		progress(b, false);
		if (stop_sig) {
			rc = cli_errorf(b->cmd, "interrupted");
			break;
		}
		int count = 0;
		size_t used = 0;
		for (;;) {
			const void *p;
			size_t n;
			int err;
			if (count == 0) {
				/* Nothing held: waiting is allowed (-EDEADLK otherwise). */
				struct timespec ts;
				struct cli_waiting cw = {true, SLICE_NS};
				err = l_peek_wait(b, &p, &n, cli_deadline(&cw, &ts));
			} else {
				err = l_peek(b, &p, &n);
			}
			if (err == -ETIMEDOUT || err == -EINTR || err == -EAGAIN)
				break;
			if (err == -ESTALE) {
				local_loss(b, f);
				continue;
			}
			if (err) {
				*end_err = err;
				break;
			}
			if (n + FRAME_OVERHEAD > maxpay) {
				*end_err = -EMSGSIZE;
				break;
			}
			if (count == WIN_MSGS || used + n > cap)
				break; /* it stays peeked for the next window */
			shmkit_copy(w->buf + used, p, n);
			uint64_t id = 0;
			if (l_position(b, &id) != 0 || id <= f->prev) {
				rc = cli_errorf(b->cmd, "%s: stream position did not advance", b->name);
				break;
			}
			if (l_release(b, true) == -ESTALE) {
				local_loss(b, f); /* overwritten while copied */
				continue;
			}
			struct frame g = {f->src, f->prev, id, 0};
			pthread_mutex_lock(&w->mu);
			w->f[count] = g;
			w->id[count] = id;
			w->off[count] = used;
			w->len[count] = n;
			w->state[count] = 0;
			w->count = ++count;
			pthread_mutex_unlock(&w->mu);
			if (!win_publish(b, w, count - 1, last)) {
				pthread_mutex_lock(&w->mu);
				w->state[count - 1] = -1; /* completed synchronously below */
				pthread_mutex_unlock(&w->mu);
			}
			used += n;
			f->prev = id;
			b->msgs++;
			b->bytes += n;
		}
		if (count > 0) {
			int r2 = win_complete(b, w, &last);
			if (r2 == CLI_OK)
				l_flush(b); /* every message of the window is in the stream */
			if (rc == CLI_OK)
				rc = r2;
		}
	}
	free(w->buf);
	w->buf = NULL;
	return rc;
}

static int run_out(struct bridge *b)
{
	/* The server first: a wrong URL or credentials are reported at once, not after the
	 * channel appeared. */
	int rc = nats_connect(b);
	if (rc == CLI_OK && b->reliable)
		rc = ensure_stream(b);
	if (rc != CLI_OK)
		return rc;
	int err = open_wait(b);
	if (err)
		return cli_error(b->cmd, b->name, err);
	uint64_t maxpay = (uint64_t)natsConnection_GetMaxPayload(b->nc);
	/* Core mode gathers the small messages that are already there into one frame. */
	size_t batch_cap = maxpay > FRAME_OVERHEAD + 4096 ? (size_t)(maxpay - FRAME_OVERHEAD) : 0;
	if (batch_cap > BATCH_MAX)
		batch_cap = BATCH_MAX;
	uint8_t *batch = batch_cap ? malloc(batch_cap) : NULL;
	if (!batch)
		batch_cap = 0;
	/* A pub/sub message is copied out and checked before it is sent (the overwrite
	 * policy may change it under us). */
	uint8_t *copy = b->ps ? malloc(l_max_msg(b) + 1) : NULL;
	struct frame f = {.src = source_id(b)};
	if (l_position(b, &f.prev) != 0)
		f.prev = 0;
	for (;;) {
		if (b->reliable) {
			rc = out_reliable(b, &f, maxpay, &err);
			if (rc != CLI_OK)
				break;
		} else {
			progress(b, false);
			if (stop_sig) {
				rc = cli_errorf(b->cmd, "interrupted");
				break;
			}
			const void *p;
			size_t n;
			struct timespec ts;
			struct cli_waiting w = {true, SLICE_NS};
			err = l_peek_wait(b, &p, &n, cli_deadline(&w, &ts));
			if (err == -ETIMEDOUT || err == -EINTR)
				continue;
			if (err == -ESTALE) {
				local_loss(b, &f);
				continue;
			}
			if (!err && n + FRAME_OVERHEAD > maxpay)
				err = -EMSGSIZE;
			if (!err) {
				if (n + 4 <= batch_cap / 2) {
					rc = send_batch(b, &f, p, n, batch, batch_cap);
				} else {
					/* A pub/sub message: copied and checked, then sent;
					 * a stream message: sent from the ring, then released. */
					if (copy) {
						shmkit_copy(copy, p, n);
						p = copy;
					}
					(void)l_position(b, &f.id);
					if (copy && l_release(b, false) == -ESTALE) {
						local_loss(b, &f);
						continue;
					}
					rc = frame_send(b, &f, p, n);
					if (!copy)
						(void)l_release(b, false);
					f.prev = f.id;
					b->msgs++;
					b->bytes += n;
				}
				if (rc != CLI_OK)
					break;
				continue;
			}
		}
		if (err == -EPIPE || err == -ECONNABORTED || err == -EOWNERDEAD) {
			/* The end of the local stream travels as an end marker. */
			struct frame e = {f.src, f.prev, f.prev + 1, err == -EPIPE ? 1 : 2};
			rc = frame_send(b, &e, NULL, 0);
			if (rc == CLI_OK && natsConnection_FlushTimeout(b->nc, 10000) != NATS_OK)
				rc = cli_errorf(b->cmd, "could not flush the end marker to %s",
						b->url);
			if (rc == CLI_OK && err != -EPIPE)
				rc = cli_errorf(b->cmd, "%s: %s (abort sent to %s)", b->name,
						err == -EOWNERDEAD ? "producer died"
								   : "producer aborted the stream",
						b->subject);
			if ((rc == CLI_OK || err != -EPIPE) && !b->keep)
				(void)(b->ps ? shmkit_pubsub_unlink(b->ps) : shmkit_chan_unlink(b->ch));
			if (rc == CLI_OK || err != -EPIPE) {
				if (b->ps)
					shmkit_pubsub_close(b->ps);
				else
					shmkit_chan_close(b->ch);
				b->ch = NULL;
				b->ps = NULL;
			}
			break;
		}
		if (err == -EMSGSIZE) {
			const void *p;
			size_t n = 0;
			(void)l_peek(b, &p, &n);
			rc = cli_errorf(b->cmd, "%s: a message of %zu bytes does not fit the server's "
					"max_payload of %" PRIu64 " bytes (with %d bytes of frame "
					"header; the channel's max_msg is %zu)", b->name, n, maxpay,
					FRAME_OVERHEAD, l_max_msg(b));
			struct frame e = {f.src, f.prev, f.prev + 1, 2};
			(void)frame_send(b, &e, NULL, 0);
			(void)natsConnection_FlushTimeout(b->nc, 5000);
			break;
		}
		rc = cli_error(b->cmd, b->name, err);
		break;
	}
	free(batch);
	free(copy);
	/* A consumer that leaves without reaching the end detaches: the messages it did not
	 * release stay for the next bridge (reliable: re-sent, de-duplicated). */
	l_detach(b);
	return rc;
}

/* --- in: NATS → local channel --------------------------------------------------------------- */

static uint64_t note(struct bridge *b, unsigned i)
{
	uint64_t v = 0;
	(void)(b->ps ? shmkit_pubsub_note_load(b->ps, i, &v) : shmkit_chan_note_load(b->ch, i, &v));
	return v;
}

static void note_set(struct bridge *b, unsigned i, uint64_t v)
{
	(void)(b->ps ? shmkit_pubsub_note_store(b->ps, i, v) : shmkit_chan_note_store(b->ch, i, v));
}

/* Settles the bookkeeping a killed predecessor left: its pending message landed iff the
 * channel's position moved past the one recorded before the commit. */
static void notes_recover(struct bridge *b)
{
	if (note(b, NOTE_MAGIC) != NOTES_MAGIC) {
		for (unsigned i = 1; i < SHMKIT_CHAN_NOTES; i++)
			note_set(b, i, 0);
		note_set(b, NOTE_MAGIC, NOTES_MAGIC);
		return;
	}
	uint64_t pos = 0, pid = note(b, NOTE_PID);
	(void)l_position(b, &pos);
	if (pid > note(b, NOTE_ID) && pos > note(b, NOTE_PPOS)) {
		note_set(b, NOTE_SSEQ, note(b, NOTE_PSSEQ));
		note_set(b, NOTE_ID, pid);
	}
}

/* (Re)creates the pull consumer so that it delivers the stream from right after the last
 * committed message, in order. */
static int js_consumer(struct bridge *b)
{
	if (b->sub) {
		natsSubscription_Destroy(b->sub);
		b->sub = NULL;
	}
	uint64_t end = now_ns() + (b->have_timeout ? b->timeout_ns : 10000000000ull);
	for (int attempt = 0;; attempt++) {
		jsErrCode je = 0;
		(void)js_DeleteConsumer(b->js, b->stream, b->durable, NULL, &je);
		jsSubOptions so;
		jsSubOptions_Init(&so);
		so.Stream = b->stream;
		so.Config.Durable = b->durable;
		so.Config.AckPolicy = js_AckExplicit;
		so.Config.AckWait = 10000000000ll; /* ns: a stalled bridge says "in progress" */
		so.Config.MaxAckPending = 4096;
		uint64_t sseq = note(b, NOTE_SSEQ);
		if (sseq) {
			so.Config.DeliverPolicy = js_DeliverByStartSequence;
			so.Config.OptStartSeq = sseq + 1;
		} else {
			so.Config.DeliverPolicy = js_DeliverAll;
		}
		natsStatus s = js_PullSubscribe(&b->sub, b->js, b->subject, b->durable, NULL, &so, &je);
		if (s == NATS_OK)
			return CLI_OK;
		if (stop_sig || now_ns() >= end)
			return cli_errorf(b->cmd, "JetStream consumer %s on %s: %s (error %d)",
					  b->durable, b->stream, nerr(s), (int)je);
		cli_nap((uint64_t)reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
}

/* Loans room for `n` bytes, waiting without bound (telling JetStream the message is in
 * progress meanwhile), and copies `data` in. CLI_OK or CLI_ERR after reporting. */
static int loan_copy(struct bridge *b, natsMsg *m, const void *data, size_t n)
{
	void *buf;
	int err;
	for (;;) {
		struct timespec ts;
		struct cli_waiting w = {true, 1000000000ull};
		const struct timespec *dl = cli_deadline(&w, &ts);
		err = b->ps ? shmkit_pubsub_loan_wait(b->ps, n, &buf, dl)
			    : shmkit_chan_loan_wait(b->ch, n, &buf, dl);
		if (err != -ETIMEDOUT && err != -EINTR)
			break;
		if (stop_sig)
			return cli_errorf(b->cmd, "interrupted");
		if (b->reliable)
			(void)natsMsg_InProgress(m, NULL);
	}
	if (err == -EMSGSIZE)
		return cli_errorf(b->cmd, "%s: a message of %zu bytes is larger than the channel's "
				  "max_msg of %zu bytes", b->name, n, l_max_msg(b));
	if (err == -EPIPE)
		return cli_errorf(b->cmd, "%s: consumer closed the channel", b->name);
	if (err)
		return cli_error(b->cmd, b->name, err);
	shmkit_copy(buf, data, n);
	return CLI_OK;
}

/* Reads the length of the next message of a batch payload at p[0..avail): the length, or
 * SIZE_MAX when the 4 bytes or the message do not fit. */
static size_t batch_len(const uint8_t *p, size_t avail)
{
	uint32_t len;
	if (avail < 4)
		return SIZE_MAX;
	memcpy(&len, p, 4);
	return len <= avail - 4 ? len : SIZE_MAX;
}

/* Commits a frame's messages into the channel with the exactly-once bookkeeping around
 * them: one message, or (core mode) a batch of [4-byte length][bytes] records, checked
 * whole before anything is written. */
static int commit_frame(struct bridge *b, natsMsg *m, const struct frame *f, uint64_t sseq)
{
	const uint8_t *data = (const uint8_t *)natsMsg_GetData(m);
	size_t n = (size_t)natsMsg_GetDataLength(m), count = 1;
	if (f->end == 3) {
		count = 0;
		for (size_t off = 0; off < n; count++) {
			size_t len = batch_len(data + off, n - off);
			if (len == SIZE_MAX)
				return cli_errorf(b->cmd, "a batch frame on %s is malformed; nothing "
						  "of it was written into %s", b->subject, b->name);
			off += 4 + len;
		}
	}
	uint64_t pos = 0;
	(void)l_position(b, &pos);
	/* Pending first, its ID last: the ID marks the pair as current (see the top). */
	note_set(b, NOTE_PPOS, pos);
	note_set(b, NOTE_PSSEQ, sseq);
	note_set(b, NOTE_PID, f->id);
	for (size_t i = 0, off = 0; i < count; i++) {
		const uint8_t *p = data;
		size_t len = n;
		if (f->end == 3) {
			len = batch_len(data + off, n - off);
			p = data + off + 4;
			off += 4 + len;
		}
		int rc = loan_copy(b, m, p, len);
		if (rc != CLI_OK)
			return rc;
		/* Without MORE: the position test of notes_recover() needs each commit
		 * published (a pub/sub publisher's unpublished commits die with it). */
		int err = b->ps ? shmkit_pubsub_commit(b->ps, len, 0) : shmkit_chan_commit(b->ch, len, 0);
		if (err)
			return cli_error(b->cmd, b->name, err);
		b->msgs++;
		b->bytes += len;
	}
	note_set(b, NOTE_SSEQ, sseq);
	note_set(b, NOTE_ID, f->id);
	return CLI_OK;
}

enum { FR_DONE = 0, FR_NEXT = 1, FR_RESYNC = 2 };

/* Handles one received NATS message: FR_NEXT to go on (the message may then be
 * acknowledged), FR_RESYNC when it does not follow the last commit (reliable: restart the
 * consumer), FR_DONE with *rc at the end of the stream or on an error. */
static int handle(struct bridge *b, natsMsg *m, int *rc)
{
	struct frame f;
	if (!frame_parse(m, &f)) {
		*rc = cli_errorf(b->cmd, "a message on %s is not a bridge frame (no valid %s "
				 "header); nothing of it was written into %s", natsMsg_GetSubject(m),
				 FRAME_HDR, b->name);
		return FR_DONE;
	}
	uint64_t sseq = 0;
	if (b->reliable) {
		jsMsgMetaData *md = NULL;
		if (natsMsg_GetMetaData(&md, m) == NATS_OK) {
			sseq = md->Sequence.Stream;
			jsMsgMetaData_Destroy(md);
		}
	}
	uint64_t src = note(b, NOTE_SRC), last = note(b, NOTE_ID);
	if (f.src == src && f.id <= last) {
		b->dups++;
		return FR_NEXT;
	}
	if (f.src != src) {
		/* A new source: its positions start again. ID first, so a crash in between
		 * leaves the old source with nothing committed rather than the new one with an
		 * old ID. */
		note_set(b, NOTE_ID, 0);
		note_set(b, NOTE_SRC, f.src);
		last = f.prev;
	} else if (f.prev != last) {
		if (b->reliable)
			return FR_RESYNC;
		b->gaps++;
		note_set(b, NOTE_GAPS, note(b, NOTE_GAPS) + 1);
	}
	if (f.end == 1 || f.end == 2) {
		note_set(b, NOTE_SSEQ, sseq);
		note_set(b, NOTE_ID, f.id);
		if (f.end == 1) {
			if (b->ps)
				shmkit_pubsub_close(b->ps);
			else
				shmkit_chan_close(b->ch);
			*rc = CLI_OK;
		} else {
			/* A pub/sub channel has no abort: its publisher's handle is left to the
			 * end of this process, which subscribers see as a dead publisher
			 * (-EOWNERDEAD). */
			if (b->ch)
				shmkit_chan_abort(b->ch);
			*rc = cli_errorf(b->cmd, "%s: the far producer aborted the stream (passed on)",
					 b->name);
		}
		b->ch = NULL;
		b->ps = NULL;
		return FR_DONE;
	}
	*rc = commit_frame(b, m, &f, sseq);
	return *rc == CLI_OK ? FR_NEXT : FR_DONE;
}

static int run_in(struct bridge *b)
{
	int rc = nats_connect(b);
	if (rc != CLI_OK)
		return rc;
	/* Core: subscribe before the channel exists, so nothing sent once it appears is lost. */
	if (!b->reliable) {
		natsStatus s = natsConnection_SubscribeSync(&b->sub, b->nc, b->subject);
		if (s == NATS_OK)
			s = natsSubscription_SetPendingLimits(b->sub, 1 << 20, 1 << 30);
		if (s == NATS_OK)
			s = natsConnection_FlushTimeout(b->nc, 5000);
		if (s != NATS_OK)
			return cli_errorf(b->cmd, "subscribe to %s: %s", b->subject, nerr(s));
	} else if ((rc = ensure_stream(b)) != CLI_OK) {
		return rc;
	}
	int err;
	if (b->create && b->pubsub) {
		struct shmkit_pubsub_opts po = {.capacity = b->capacity,
						.max_msg = b->max_msg ? b->max_msg : 1u << 20,
						.max_subscribers = b->subs,
						.policy = b->overwrite ? SHMKIT_PUBSUB_OVERWRITE
								       : SHMKIT_PUBSUB_BLOCK,
						.history = b->history};
		po.seg.backend = b->backend;
		err = shmkit_pubsub_create(b->name, SHMKIT_PUBSUB_PUBLISHER, &po, &b->ps);
	} else if (b->create) {
		struct shmkit_chan_opts co = {.capacity = b->capacity,
					      .max_msg = b->max_msg ? b->max_msg : 1u << 20};
		co.seg.backend = b->backend;
		err = shmkit_chan_create(b->name, SHMKIT_CHAN_PRODUCER, &co, &b->ch);
	} else {
		err = open_wait(b);
	}
	if (err)
		return cli_error(b->cmd, b->name, err);
	notes_recover(b);
	if (b->reliable && (rc = js_consumer(b)) != CLI_OK)
		goto out;
	for (;;) {
		progress(b, false);
		if (stop_sig) {
			rc = cli_errorf(b->cmd, "interrupted");
			break;
		}
		int r = FR_NEXT;
		if (!b->reliable) {
			natsMsg *m = NULL;
			natsStatus s = natsSubscription_NextMsg(&m, b->sub, 200);
			if (s == NATS_TIMEOUT)
				continue;
			if (s == NATS_SLOW_CONSUMER) {
				b->gaps++; /* counted again by the IDs; said here for --stats */
				continue;
			}
			if (s != NATS_OK) {
				rc = cli_errorf(b->cmd, "receive from %s: %s", b->subject, nerr(s));
				break;
			}
			r = handle(b, m, &rc);
			natsMsg_Destroy(m);
			if (r == FR_DONE)
				break;
			continue;
		}
		natsMsgList list = {0};
		jsErrCode je = 0;
		natsStatus s = natsSubscription_Fetch(&list, b->sub, 256, 200, &je);
		if (s == NATS_TIMEOUT || (s != NATS_OK && list.Count == 0)) {
			if (s != NATS_TIMEOUT)
				cli_nap(50000000ull); /* server gone: libnats reconnects */
			if (s == NATS_NOT_FOUND || je == JSConsumerNotFoundErr ||
			    s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION) {
				b->resyncs++;
				if ((rc = js_consumer(b)) != CLI_OK)
					break;
			}
			natsMsgList_Destroy(&list);
			continue;
		}
		for (int i = 0; i < list.Count && r == FR_NEXT; i++) {
			r = handle(b, list.Msgs[i], &rc);
			if (r == FR_NEXT || (r == FR_DONE && rc == CLI_OK))
				(void)natsMsg_Ack(list.Msgs[i], NULL);
		}
		natsMsgList_Destroy(&list);
		if (r == FR_DONE)
			break;
		if (r == FR_RESYNC) {
			b->resyncs++;
			if ((rc = js_consumer(b)) != CLI_OK)
				break;
		}
	}
	if (b->nc)
		(void)natsConnection_FlushTimeout(b->nc, 5000); /* the last acknowledgements */
out:
	l_detach(b); /* not the end: the peer keeps waiting for more */
	return rc;
}

/* --- options ------------------------------------------------------------------------------- */

enum {
	OPT_TO = 256, OPT_FROM, OPT_STREAM, OPT_DURABLE, OPT_TLS_CA, OPT_CREDS, OPT_CAPACITY,
	OPT_MAX_MSG, OPT_PROGRESS, OPT_STATS, OPT_SUBS, OPT_POLICY, OPT_HISTORY
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
	srand((unsigned)now_ns());
	b.t0 = b.last_progress = now_ns();
	rc = b.out ? run_out(&b) : run_in(&b);
	progress(&b, true);
	print_stats(&b);
	if (b.sub)
		natsSubscription_Destroy(b.sub);
	if (b.js)
		jsCtx_Destroy(b.js);
	if (b.nc) {
		natsConnection_FlushTimeout(b.nc, 2000);
		natsConnection_Destroy(b.nc);
	}
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
