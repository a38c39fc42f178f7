/* shmkit CLI — `shmkit bridge`: the NATS connection, frames, progress and statistics (the
 * design is at the top of cli/bridge.c). */
#include "bridge_int.h"

#include <sys/resource.h>

#ifdef SHMKIT_HAVE_NATS

volatile sig_atomic_t cli_bridge_stop_sig;

/* --- progress and statistics ------------------------------------------------------------- */

void cli_bridge_progress(struct bridge *b, bool force)
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

void cli_bridge_print_stats(struct bridge *b)
{
	if (!b->stats)
		return;
	double dt = (double)(now_ns() - b->t0) / 1e9;
	/* Peak resident memory, the mapped channel's pages included: what a fetch of large
	 * messages costs `bridge in` shows here (cli/bridge_in.c, js_consumer()). */
	struct rusage ru = {0};
	(void)getrusage(RUSAGE_SELF, &ru);
	fprintf(stderr, "shmkit bridge %s: msgs %" PRIu64 " bytes %" PRIu64 " gaps %" PRIu64
			" duplicates %" PRIu64 " resends %" PRIu64 " resyncs %" PRIu64
			" lost %" PRIu64 " seconds %.3f max_rss_kib %ld\n", b->out ? "out" : "in",
		b->msgs, b->bytes, b->gaps, b->dups, b->resends, b->resyncs, b->lost, dt,
		ru.ru_maxrss);
}

/* --- NATS connection ---------------------------------------------------------------------- */

/* Reconnect delay: 50 ms doubling up to 2 s, plus up to a quarter of it at random, so
 * bridges that lost the same server do not all come back in the same millisecond. */
int64_t cli_bridge_reconnect_delay(natsConnection *nc, int attempts, void *closure)
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

/* Whether another connection attempt could succeed. A server that is not up yet (refused,
 * timed out) may be up in a moment, and so may a handshake cut short; a server that refused
 * these credentials, a certificate that did not verify, or a TLS mismatch will be refused
 * again, and the user should hear so at once rather than after the whole --timeout. */
static bool connect_curable(natsStatus s)
{
	switch (s) {
	case NATS_CONNECTION_AUTH_FAILED:
	case NATS_NOT_PERMITTED:
	case NATS_SECURE_CONNECTION_WANTED:
	case NATS_SECURE_CONNECTION_REQUIRED:
		return false;
	case NATS_SSL_ERROR: {
		const char *t = nats_GetLastError(NULL);
		return !(t && strstr(t, "certificate"));
	}
	default:
		return true;
	}
}

int cli_bridge_nats_connect(struct bridge *b)
{
	natsOptions *no = NULL;
	natsStatus s = natsOptions_Create(&no);
	if (s == NATS_OK)
		s = natsOptions_SetURL(no, b->url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(no, -1);
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(no, cli_bridge_reconnect_delay, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(no, 64 << 20);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(no, 2000);
	/* Write each publish (message, pull request, acknowledgement) at once: by default
	 * libnats leaves them to a flusher thread that waits about a millisecond for more, which
	 * set every bridged round trip at 2.00 ms p50 (bench/bridge, 64 B, with this: 0.37-0.48
	 * ms core, 0.58-0.82 ms reliable; docs/performance.md). Batching is the bridge's own:
	 * out gathers core messages into one frame, in fetches up to 256 at a time. */
	if (s == NATS_OK)
		s = natsOptions_SetSendAsap(no, true);
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
		if (s == NATS_OK || cli_bridge_stop_sig || now_ns() >= end || !connect_curable(s))
			break;
		cli_nap((uint64_t)cli_bridge_reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
	natsOptions_Destroy(no);
	if (s != NATS_OK)
		return cli_errorf(b->cmd, "cannot connect to %s: %s", b->url, nerr(s));
	return CLI_OK;
}

/* --- frames -------------------------------------------------------------------------------- */

/* Parses the frame header; false when `m` is not a bridge frame. */
bool cli_bridge_frame_parse(natsMsg *m, struct frame *f)
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

natsStatus cli_bridge_frame_make(struct bridge *b, natsMsg **mp, const struct frame *f,
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
int cli_bridge_frame_send(struct bridge *b, const struct frame *f, const void *data, size_t len)
{
	natsMsg *m = NULL;
	natsStatus s = cli_bridge_frame_make(b, &m, f, data, len);
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
		if (cli_bridge_stop_sig) {
			natsMsg_Destroy(m);
			return cli_errorf(b->cmd, "interrupted while publishing");
		}
		/* Nobody stores the subject: the stream is gone (a server on an empty
		 * store). Retrying alone waited for ever. */
		if (s == NATS_NO_RESPONDERS)
			cli_bridge_stream_recreate(b);
		b->resends++;
		cli_nap((uint64_t)cli_bridge_reconnect_delay(NULL, attempt < 5 ? attempt : 5, NULL) *
			1000000ull);
	}
	natsMsg_Destroy(m);
	return CLI_OK;
}

#endif
