/* shmkit CLI — `shmkit bridge out`: local channel -> NATS (the design is at the top of
 * cli/bridge.c). */
#include "bridge_int.h"

#ifdef SHMKIT_HAVE_NATS

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure);

/* Sets the limits given on the command line in `cfg`; whether that changed it. */
static bool limits_apply(const struct bridge *b, jsStreamConfig *cfg)
{
	bool changed = false;
	if (b->have_lim_bytes && cfg->MaxBytes != b->lim_bytes) {
		cfg->MaxBytes = b->lim_bytes;
		changed = true;
	}
	if (b->have_lim_msgs && cfg->MaxMsgs != b->lim_msgs) {
		cfg->MaxMsgs = b->lim_msgs;
		changed = true;
	}
	if (b->have_lim_age && cfg->MaxAge != b->lim_age_ns) {
		cfg->MaxAge = b->lim_age_ns;
		changed = true;
	}
	/* The server refuses a de-duplication window longer than the age limit (it picks
	 * the shorter one itself only when a stream is created). */
	if (changed && cfg->MaxAge > 0 && cfg->Duplicates > cfg->MaxAge)
		cfg->Duplicates = cfg->MaxAge;
	return changed;
}

/* An existing stream: changes its limits to those given, if they differ. Old messages go
 * at once when the new limits are lower (the server applies them). */
static natsStatus limits_update(struct bridge *b, jsStreamInfo *si, jsErrCode *je)
{
	if (!si->Config || !limits_apply(b, si->Config))
		return NATS_OK;
	jsStreamInfo *nsi = NULL;
	natsStatus s = js_UpdateStream(&nsi, b->js, si->Config, NULL, je);
	jsStreamInfo_Destroy(nsi);
	return s;
}

/* Creates the stream for the subject, with the limits given. */
static natsStatus stream_add(struct bridge *b, jsErrCode *je)
{
	jsStreamConfig cfg;
	jsStreamConfig_Init(&cfg);
	cfg.Name = b->stream;
	const char *subjects[] = {b->subject};
	cfg.Subjects = subjects;
	cfg.SubjectsLen = 1;
	cfg.Storage = js_FileStorage;
	(void)limits_apply(b, &cfg);
	jsStreamInfo *si = NULL;
	natsStatus s = js_AddStream(&si, b->js, &cfg, NULL, je);
	jsStreamInfo_Destroy(si);
	return s;
}

/* The stream went away while this bridge ran (deleted, or the server came back on an
 * empty store): publishing finds no responder, a consumer no stream. Creates it again,
 * once, and says so; the caller goes on retrying as before. */
void cli_bridge_stream_recreate(struct bridge *b)
{
	jsStreamInfo *si = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetStreamInfo(&si, b->js, b->stream, NULL, &je);
	jsStreamInfo_Destroy(si);
	if (s != NATS_NOT_FOUND && je != JSStreamNotFoundErr)
		return;
	if (stream_add(b, &je) == NATS_OK)
		(void)cli_errorf(b->cmd, "JetStream stream %s was gone: created it again",
				 b->stream);
}

/* Creates the JetStream stream for the subject unless it exists, with the limits given
 * (an existing one gets them); retries while the server (re)starts, up to the connect
 * timeout. */
int cli_bridge_ensure_stream(struct bridge *b)
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
			s = limits_update(b, si, &je);
			jsStreamInfo_Destroy(si);
			if (s == NATS_OK)
				return CLI_OK;
			/* A refused update (a limit the server does not allow) is final. */
			if (je)
				return cli_errorf(b->cmd, "JetStream stream %s: cannot change its "
						  "limits: %s (error %d)", b->stream, nerr(s), (int)je);
		}
		if (s == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
			s = stream_add(b, &je);
			if (s == NATS_OK)
				return CLI_OK;
			/* A configuration the server refuses is final; a stream another bridge
			 * created meanwhile is found on the next round. */
			if (je == JSStreamInvalidConfig)
				return cli_errorf(b->cmd, "JetStream stream %s: the server refuses its "
						  "configuration: %s (error %d)", b->stream, nerr(s),
						  (int)je);
		}
		if (cli_bridge_stop_sig || now_ns() >= end)
			return cli_errorf(b->cmd, "JetStream stream %s for subject %s: %s (error %d)",
					  b->stream, b->subject, nerr(s), (int)je);
		cli_nap((uint64_t)cli_bridge_reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
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

int cli_bridge_open_wait(struct bridge *b)
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
		rc = count > 1 ? cli_bridge_frame_send(b, f, batch, used)
			       : cli_bridge_frame_send(b, f, batch + 4, used - 4);
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
	if (cli_bridge_frame_parse(m, &f)) {
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
	natsStatus s = cli_bridge_frame_make(b, &m, &w->f[i], w->buf + w->off[i], w->len[i]);
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
		int rc = cli_bridge_frame_send(b, &w->f[i], w->buf + w->off[i], w->len[i]);
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
		cli_bridge_progress(b, false);
		if (cli_bridge_stop_sig) {
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

int cli_bridge_run_out(struct bridge *b)
{
	/* The server first: a wrong URL or credentials are reported at once, not after the
	 * channel appeared. */
	int rc = cli_bridge_nats_connect(b);
	if (rc == CLI_OK && b->reliable)
		rc = cli_bridge_ensure_stream(b);
	if (rc != CLI_OK)
		return rc;
	int err = cli_bridge_open_wait(b);
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
			cli_bridge_progress(b, false);
			if (cli_bridge_stop_sig) {
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
					rc = cli_bridge_frame_send(b, &f, p, n);
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
			rc = cli_bridge_frame_send(b, &e, NULL, 0);
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
			(void)cli_bridge_frame_send(b, &e, NULL, 0);
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

#endif
