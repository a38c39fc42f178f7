/* shmkit CLI — `shmkit bridge in`: NATS -> local channel (the design is at the top of
 * cli/bridge.c). */
#include "bridge_int.h"

#ifdef SHMKIT_HAVE_NATS

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

/* Whether the stream still agrees with the channel's last commit, at stream sequence
 * `sseq`: the message there is that commit's frame (source and ID), or it is gone from a
 * stream that went on past it (limits, a purge: the gap rule of handle_frame() applies).
 * Not so when the stream was deleted and created again (an operator, a server started on
 * an empty store) or lost its last messages: its sequence numbers start again, and a
 * consumer started after `sseq` would skip, without a word, everything up to there — or
 * wait for ever if the stream is shorter. Any doubt (the server unreachable) is a "yes":
 * the consumer is then made as always. */
static bool stream_holds_commit(struct bridge *b, uint64_t sseq)
{
	natsMsg *m = NULL;
	jsErrCode je = 0;
	natsStatus s = js_GetMsg(&m, b->js, b->stream, sseq, NULL, &je);
	if (s == NATS_OK) {
		struct frame f;
		bool same = cli_bridge_frame_parse(m, &f) && f.src == note(b, NOTE_SRC) &&
			    f.id == note(b, NOTE_ID);
		natsMsg_Destroy(m);
		return same;
	}
	if (s != NATS_NOT_FOUND || je != JSNoMessageFoundErr)
		return true;
	jsStreamInfo *si = NULL;
	if (js_GetStreamInfo(&si, b->js, b->stream, NULL, &je) != NATS_OK)
		return true;
	bool past = si->State.LastSeq >= sseq;
	jsStreamInfo_Destroy(si);
	return past;
}

/* Replaces the durable consumer with one that starts right after the last commit (or the
 * resume point of a channel without one) and pull-subscribes to it. A stream that no
 * longer holds the last commit is read from its first message: frames are told apart by
 * their source and ID, never by their stream sequence (duplicates are skipped, a new
 * source starts, a hole is a gap). */
static natsStatus subscribe(struct bridge *b, jsErrCode *je)
{
	(void)js_DeleteConsumer(b->js, b->stream, b->durable, NULL, je);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = b->stream;
	so.Config.Durable = b->durable;
	so.Config.AckPolicy = js_AckExplicit;
	so.Config.AckWait = 10000000000ll; /* ns: a stalled bridge says "in progress" */
	so.Config.MaxAckPending = 4096;
	/* Read once: the notes live in shared memory. */
	uint64_t committed = note(b, NOTE_SSEQ), sseq = committed;
	if (sseq && !stream_holds_commit(b, sseq)) {
		(void)cli_errorf(b->cmd, "%s: stream %s does not hold this channel's last commit "
				 "(sequence %" PRIu64 "): it was created again or lost messages; "
				 "reading it from its first message", b->name, b->stream, sseq);
		sseq = 0;
		b->resume_known = true; /* a durable of the old stream says nothing either */
		b->resume_sseq = 0;
	} else if (!sseq) {
		sseq = b->resume_sseq;
	}
	if (sseq) {
		so.Config.DeliverPolicy = js_DeliverByStartSequence;
		so.Config.OptStartSeq = sseq + 1;
	} else {
		so.Config.DeliverPolicy = js_DeliverAll;
	}
	natsStatus s = js_PullSubscribe(&b->sub, b->js, b->subject, b->durable, NULL, &so, je);
	/* Beyond its pending limit libnats's reader drops the rest of a fetch as a "slow
	 * consumer", which the next frame's ID shows as a gap and costs a resync. The
	 * default (64 MiB) is less than a fetch can bring when the server takes messages of
	 * more than 32 MiB (cli_bridge_run_in(): twice that); 256 MiB holds a whole fetch
	 * with room to spare. (Fetches of fewer messages were tried once: libnats 3.4.1's
	 * natsSubscription_Fetch then wrote past its message array under valgrind; the
	 * fetches are bounded in bytes instead, checked under valgrind too.) */
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(b->sub, 1 << 20, 256 << 20);
	if (s == NATS_OK) {
		b->next_sseq = sseq + 1;
		/* Read from the first message of a stream that lost the last commit: what
		 * went before is due all the same. */
		b->started_by_seq = sseq != 0 || committed != 0;
	}
	return s;
}

/* (Re)creates the pull consumer so that it delivers the stream from right after the last
 * committed message, in order. */
static int js_consumer(struct bridge *b)
{
	if (b->sub) {
		/* Not destroyed here: libnats 3.4.1's reader thread may still be delivering a
		 * message of this subscription's last fetch, and destroying it then is a use
		 * after free in natsConn_processMsg (valgrind; a `bridge in` catching up on
		 * 4 MiB messages died with SIGSEGV in half the runs). Unsubscribed, it gets
		 * nothing new; retired_free() destroys it once that thread is provably done
		 * with it, or cli_cmd_bridge() once the connection is closed. */
		(void)natsSubscription_Unsubscribe(b->sub);
		natsSubscription **r = realloc(b->retired, (b->nretired + 1) * sizeof *r);
		if (r) {
			b->retired = r;
			r[b->nretired++] = b->sub;
		} /* else: leaked until exit rather than freed too early */
		b->sub = NULL;
	}
	uint64_t end = now_ns() + (b->have_timeout ? b->timeout_ns : 10000000000ull);
	for (int attempt = 0;; attempt++) {
		jsErrCode je = 0;
		natsStatus s = NATS_OK;
		if (!b->resume_known) {
			/* A channel with no commit of its own continues where the durable
			 * consumer of the same name left off: its destination received that
			 * much. Without this a pipeline run again on the same subject got the
			 * previous run's messages, ended by its end of stream, and lost its own.
			 * No such consumer (or nothing acknowledged): the whole stream, a backlog
			 * that was waiting for in. Asked once, before the consumer is replaced. */
			jsConsumerInfo *ci = NULL;
			s = js_GetConsumerInfo(&ci, b->js, b->stream, b->durable, NULL, &je);
			if (s == NATS_OK) {
				b->resume_sseq = ci->AckFloor.Stream;
				jsConsumerInfo_Destroy(ci);
			}
			b->resume_known = s == NATS_OK || s == NATS_NOT_FOUND ||
					  je == JSConsumerNotFoundErr;
		}
		if (b->resume_known && (s = subscribe(b, &je)) == NATS_OK)
			return CLI_OK;
		if (je == JSStreamNotFoundErr)
			cli_bridge_stream_recreate(b); /* gone while in ran: as at its start */
		if (cli_bridge_stop_sig || now_ns() >= end)
			return cli_errorf(b->cmd, "JetStream consumer %s on %s: %s (error %d)",
					  b->durable, b->stream, nerr(s), (int)je);
		cli_nap((uint64_t)cli_bridge_reconnect_delay(NULL, attempt, NULL) * 1000000ull);
	}
}

/* Called once a fetch on the current subscription brought a message: destroys the
 * subscriptions that resyncs replaced. The fetch request went out after their UNSUB on
 * the same connection, so the server sent its reply after everything it had for them, and
 * libnats's one reader thread handled those first: nothing is delivering to them any
 * more. Until then they keep whatever of their last fetch libnats had not handed over
 * (up to the pending limit, 256 MiB): before, they were all kept until exit. */
static void retired_free(struct bridge *b)
{
	for (size_t i = 0; i < b->nretired; i++)
		natsSubscription_Destroy(b->retired[i]);
	b->nretired = 0;
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
		if (cli_bridge_stop_sig)
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

/* Reliable: whether every stream sequence below `sseq`, from the consumer's start, was
 * handled here or is no longer in the stream (limits, a purge: the stream's first sequence;
 * a single deletion: one lookup each); *gone counts those no longer there. JetStream
 * delivers in stream order, except after a server restart: what it had delivered and not
 * seen acknowledged (a fetch reply lost with the killed server) comes again only after
 * AckWait, while later messages are delivered at once. So a frame that does not follow
 * the last commit (or the first frame of a source, which has no PREV to check: out may
 * start anywhere) is taken only if nothing before it is still to come; otherwise the
 * caller restarts the consumer after the last commit, which delivers in order. Any doubt
 * (the server unreachable) is a "no". */
static bool in_order(struct bridge *b, uint64_t sseq, uint64_t *gone)
{
	jsErrCode je = 0;
	*gone = 0;
	if (b->next_sseq < sseq) {
		jsStreamInfo *si = NULL;
		if (js_GetStreamInfo(&si, b->js, b->stream, NULL, &je) != NATS_OK)
			return false;
		uint64_t first = si->State.FirstSeq;
		jsStreamInfo_Destroy(si);
		if (first > b->next_sseq) {
			uint64_t to = first < sseq ? first : sseq;
			*gone += to - b->next_sseq;
			b->next_sseq = to;
		}
	}
	while (b->next_sseq < sseq) {
		natsMsg *m = NULL;
		je = 0;
		natsStatus s = js_GetMsg(&m, b->js, b->stream, b->next_sseq, NULL, &je);
		if (s == NATS_OK) {
			natsMsg_Destroy(m); /* still there: it comes later, out of order */
			return false;
		}
		if (s != NATS_NOT_FOUND || je != JSNoMessageFoundErr)
			return false;
		b->next_sseq++;
		(*gone)++;
	}
	return true;
}

/* A gap: in --stats and in the channel's notes (`shmkit stat`: bridge_gaps). */
static void count_gap(struct bridge *b)
{
	b->gaps++;
	note_set(b, NOTE_GAPS, note(b, NOTE_GAPS) + 1);
}

/* Reliable: frames that will never come (dropped by the stream's limits, purged, or lost
 * by a server with acknowledged writes) are a gap, said and counted as in core mode. */
static void gap(struct bridge *b, uint64_t gone, uint64_t sseq, uint64_t last)
{
	count_gap(b);
	if (gone)
		(void)cli_errorf(b->cmd, "%s: a gap: %" PRIu64 " message%s of stream %s before "
				 "sequence %" PRIu64 " went before this bridge read %s (the "
				 "stream's limits, or a purge); going on", b->name, gone,
				 gone == 1 ? "" : "s", b->stream, sseq, gone == 1 ? "it" : "them");
	else
		(void)cli_errorf(b->cmd, "%s: a gap: the messages after ID %" PRIu64 " are not in "
				 "stream %s before sequence %" PRIu64 " (a server that lost "
				 "acknowledged messages?); going on", b->name, last, b->stream, sseq);
}

/* handle() for a parsed frame at stream sequence `sseq` (0: core mode). */
static int handle_frame(struct bridge *b, natsMsg *m, struct frame f, uint64_t sseq, int *rc)
{
	uint64_t src = note(b, NOTE_SRC), last = note(b, NOTE_ID);
	if (f.src == src && f.id <= last) {
		b->dups++;
		return FR_NEXT;
	}
	uint64_t gone = 0;
	if (f.src != src) {
		if (sseq && !in_order(b, sseq, &gone))
			return FR_RESYNC;
		/* Not counted from a consumer that started at the stream's beginning: what
		 * went before then was nobody's to read yet. */
		if (gone && b->started_by_seq)
			gap(b, gone, sseq, last);
		/* A new source: its positions start again. ID first, so a crash in between
		 * leaves the old source with nothing committed rather than the new one with an
		 * old ID. */
		note_set(b, NOTE_ID, 0);
		note_set(b, NOTE_SRC, f.src);
		last = f.prev;
	} else if (f.prev != last && b->reliable) {
		/* A resync delivers what is still in the stream in order; when nothing before
		 * this frame is (in_order()), its predecessors are gone. */
		if (!sseq || !in_order(b, sseq, &gone))
			return FR_RESYNC;
		gap(b, gone, sseq, last);
	} else if (f.prev != last) {
		count_gap(b);
	}
	if (f.end == 1 || f.end == 2) {
		b->ended = true; /* passed on either way: acknowledged (abort too) */
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

/* Handles one received NATS message: FR_NEXT to go on (the message may then be
 * acknowledged), FR_RESYNC when it does not follow the last commit (reliable: restart the
 * consumer), FR_DONE with *rc at the end of the stream or on an error. */
static int handle(struct bridge *b, natsMsg *m, int *rc)
{
	struct frame f;
	if (!cli_bridge_frame_parse(m, &f)) {
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
	/* Duplicates are told by the frame's ID, never by its stream sequence: a server
	 * killed before it wrote what it had acknowledged gives those sequence numbers
	 * again, to later messages. */
	int r = handle_frame(b, m, f, sseq, rc);
	if (r == FR_NEXT && sseq == b->next_sseq)
		b->next_sseq++;
	return r;
}

/* Reliable: what one fetch may bring, in bytes: 16 MiB, or twice the largest message the
 * server takes should that be more (a fetch whose next message is larger than its bound
 * brings nothing at all). Without a bound in bytes a fetch of 256 large messages outlasted
 * its 200 ms: libnats drops what arrives for a fetch it gave up on, the next fetch's first
 * frame did not follow, and in resynced. Catching up on 100 messages of 4 MiB: 5-6
 * resyncs, 4.5-13 s and a peak of 175-423 MiB before; none, 0.8 s and 40 MiB with the
 * bound (docs/performance.md). 16 MiB in 200 ms needs 80 MiB/s from the server: over a slower
 * link a large backlog still costs a resync now and then (correct, only slower). */
static int64_t fetch_max_bytes(struct bridge *b)
{
	int64_t mp = b->nc ? natsConnection_GetMaxPayload(b->nc) : 0;
	return 2 * mp > (16 << 20) ? 2 * mp : 16 << 20;
}

/* Reliable: one fetch of the loop's 200 ms slice (a stop, --progress). First what the
 * consumer has now, up to 256 messages or `max_bytes`, without waiting (the server answers
 * at once, with a "no messages" status when it has none); then, if nothing came, a wait
 * for the next message alone, which returns as soon as it arrives. (natsSubscription_Fetch
 * does the same but has no bound in bytes; a request that waits for 256 messages would
 * hold a lone message until the slice ends.) A fresh request each time: libnats changes
 * the one it is given. */
static natsStatus fetch_some(struct bridge *b, natsMsgList *list, int64_t max_bytes)
{
	jsFetchRequest rq;
	jsFetchRequest_Init(&rq);
	rq.Batch = 256;
	rq.MaxBytes = max_bytes;
	rq.NoWait = true;
	rq.Expires = 200000000; /* ns: bounds our wait for the answer */
	natsStatus s = natsSubscription_FetchRequest(list, b->sub, &rq);
	if (s != NATS_NOT_FOUND || list->Count > 0)
		return s;
	jsFetchRequest_Init(&rq);
	rq.Batch = 1;
	rq.MaxBytes = max_bytes;
	rq.Expires = 200000000;
	return natsSubscription_FetchRequest(list, b->sub, &rq);
}

/* Reliable, after a fetch that brought nothing: whether the consumer is gone. A fetch
 * from a consumer that no longer exists (the server came back on an empty store, an
 * operator deleted it) only times out, like a fetch from an idle stream: in waited for
 * ever. So after every 2 s of empty fetches in asks the server once. */
static bool consumer_lost(struct bridge *b)
{
	uint64_t now = now_ns();
	if (!b->idle_since) {
		b->idle_since = now;
		return false;
	}
	if (now - b->idle_since < 2000000000ull)
		return false;
	b->idle_since = now;
	jsConsumerInfo *ci = NULL;
	jsErrCode je = 0;
	jsOptions jo; /* not the default 5 s: a stop or --progress waits for this answer */
	jsOptions_Init(&jo);
	jo.Wait = 1000; /* ms */
	natsStatus s = js_GetConsumerInfo(&ci, b->js, b->stream, b->durable, &jo, &je);
	jsConsumerInfo_Destroy(ci);
	return s == NATS_NOT_FOUND || je == JSConsumerNotFoundErr || je == JSStreamNotFoundErr;
}

int cli_bridge_run_in(struct bridge *b)
{
	int rc = cli_bridge_nats_connect(b);
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
	} else if ((rc = cli_bridge_ensure_stream(b)) != CLI_OK) {
		return rc;
	}
	/* Test hook (tests/bridge.c): SHMKIT_TEST_BRIDGE_LOSE_FIRST set, a reliable in drops
	 * the first message its consumer delivers without acknowledging it, as when the fetch
	 * reply is lost with a killed server (JetStream redelivers it after AckWait). */
	b->lose_first = b->reliable && getenv("SHMKIT_TEST_BRIDGE_LOSE_FIRST");
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
		err = cli_bridge_open_wait(b);
	}
	if (err)
		return cli_error(b->cmd, b->name, err);
	notes_recover(b);
	if (b->reliable && (rc = js_consumer(b)) != CLI_OK)
		goto out;
	int64_t max_bytes = fetch_max_bytes(b);
	for (;;) {
		cli_bridge_progress(b, false);
		if (cli_bridge_stop_sig) {
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
		natsStatus s = fetch_some(b, &list, max_bytes);
		if (s == NATS_TIMEOUT || (s != NATS_OK && list.Count == 0)) {
			if (s != NATS_TIMEOUT)
				cli_nap(50000000ull); /* server gone: libnats reconnects */
			if (s == NATS_NOT_FOUND || s == NATS_NO_RESPONDERS ||
			    s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_SUBSCRIPTION ||
			    consumer_lost(b)) {
				b->resyncs++;
				if ((rc = js_consumer(b)) != CLI_OK)
					break;
			}
			natsMsgList_Destroy(&list);
			continue;
		}
		b->idle_since = 0;
		if (list.Count > 0 && b->nretired)
			retired_free(b);
		for (int i = 0; i < list.Count && r == FR_NEXT; i++) {
			if (b->lose_first) {
				b->lose_first = false; /* as if the server died with the reply */
				continue;
			}
			r = handle(b, list.Msgs[i], &rc);
			if (r == FR_NEXT || (r == FR_DONE && (rc == CLI_OK || b->ended)))
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

#endif
