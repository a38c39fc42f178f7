/* shmkit CLI — what the files of `shmkit bridge` share (cli/bridge*.c).
 *
 *   cli/bridge.c      the design (frames, modes, notes), the command and its options
 *   cli/bridge_nats.c the NATS connection, frames, progress and statistics
 *   cli/bridge_out.c  out: local channel -> NATS, core and reliable (a window of JetStream
 *                     publishes in flight); the JetStream stream both directions use
 *   cli/bridge_in.c   in: NATS -> local channel, exactly once into the channel when reliable
 *
 * Here: the channel notes' layout, and with libnats the handle, the local channel's calls
 * on either kind (static inline) and what one file calls in another (cli_bridge_*).
 */
#ifndef SHMKIT_CLI_BRIDGE_INT_H
#define SHMKIT_CLI_BRIDGE_INT_H

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

enum { NOTE_MAGIC, NOTE_SRC, NOTE_ID, NOTE_SSEQ, NOTE_PID, NOTE_PSSEQ, NOTE_PPOS, NOTE_GAPS };
#define NOTES_MAGIC 0x6272646700000001ull /* "brdg", version 1 */

#ifdef SHMKIT_HAVE_NATS

#include <nats/nats.h>

#define FRAME_HDR "Shmkit-Frame"
#define FRAME_OVERHEAD 128 /* header bytes a frame adds on the wire, at most */
#define SLICE_NS 200000000ull

struct bridge {
	const struct cli_cmd *cmd;
	bool out;
	const char *url, *subject, *name, *stream, *durable, *tls_ca, *creds;
	bool reliable, create, keep, progress, stats;
	uint64_t capacity, max_msg;
	uint32_t backend;
	uint64_t timeout_ns; bool have_timeout;
	/* reliable: the stream's limits as given (--stream-max-*), applied when the stream is
	 * created or, if it exists with others, by an update; -1 (bytes, msgs) or 0 (age):
	 * none. */
	int64_t lim_bytes, lim_msgs, lim_age_ns;
	bool have_lim_bytes, have_lim_msgs, have_lim_age;
	/* in, reliable: the consumer was created to start by stream sequence (after a commit
	 * or a durable's acknowledgements), not at the stream's beginning. */
	bool started_by_seq;
	uint64_t idle_since; /* in, reliable: when the fetches began to bring nothing (ns) */
	char stream_buf[256], durable_buf[256];
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	/* Pull subscriptions replaced by a resync: unsubscribed at once, destroyed once the
	 * next fetch brought a message, or after the connection is closed (cli/bridge_in.c,
	 * js_consumer(), retired_free()). */
	natsSubscription **retired;
	size_t nretired;
	/* in, reliable: every stream sequence below this one was handled by this process
	 * since its consumer was (re)created, or is not in the stream (cli/bridge_in.c,
	 * in_order()); set by subscribe() to the consumer's start. */
	uint64_t next_sseq;
	bool lose_first; /* in, test hook: the first delivery is dropped unacknowledged */
	/* in, reliable: the stream sequence the durable consumer of an earlier in had
	 * acknowledged up to (its destination received that much), read once, at start;
	 * where a channel with no commit of its own starts (js_consumer(), subscribe()). */
	uint64_t resume_sseq;
	bool resume_known;
	bool ended; /* in: the end of the stream (or its abort) was passed on */
	/* The local channel: a stream channel (ch) or a pub/sub channel (ps), never both. */
	struct shmkit_chan *ch;
	struct shmkit_pubsub *ps;
	bool pubsub, overwrite;     /* in, --create: make a pub/sub channel; its policy */
	uint32_t subs, history;     /* in, --create --pubsub */
	/* counters */
	uint64_t msgs, bytes, gaps, dups, resends, resyncs, lost;
	uint64_t t0, last_progress, last_msgs, last_bytes;
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline const char *nerr(natsStatus s)
{
	const char *t = nats_GetLastError(NULL);
	return t && *t ? t : natsStatus_GetText(s);
}

/* --- the local channel: a stream channel or a pub/sub channel --------------------------------
 * The same few calls on either kind; out is the consumer or a subscriber, in the producer
 * or the publisher. */

static inline int l_position(const struct bridge *b, uint64_t *pos)
{
	return b->ps ? shmkit_pubsub_position(b->ps, pos) : shmkit_chan_position(b->ch, pos);
}

static inline int l_peek(struct bridge *b, const void **p, size_t *n)
{
	return b->ps ? shmkit_pubsub_peek(b->ps, p, n) : shmkit_chan_peek(b->ch, p, n);
}

static inline int l_peek_wait(struct bridge *b, const void **p, size_t *n,
			      const struct timespec *dl)
{
	return b->ps ? shmkit_pubsub_peek_wait(b->ps, p, n, dl)
		     : shmkit_chan_peek_wait(b->ch, p, n, dl);
}

/* Releases the peeked message; `more`: held until l_flush() (the channel's batching
 * contract: nothing else publishes it). -ESTALE: a pub/sub message overwritten while it was
 * read (what was read is garbage). */
static inline int l_release(struct bridge *b, bool more)
{
	if (b->ps)
		return shmkit_pubsub_release(b->ps, more ? SHMKIT_PUBSUB_MORE : 0);
	return shmkit_chan_release(b->ch, more ? SHMKIT_CHAN_MORE : 0);
}

static inline void l_flush(struct bridge *b)
{
	if (b->ps)
		(void)shmkit_pubsub_flush(b->ps);
	else
		(void)shmkit_chan_flush(b->ch);
}

static inline size_t l_max_msg(const struct bridge *b)
{
	return b->ps ? shmkit_pubsub_max_msg(b->ps) : shmkit_chan_max_msg(b->ch);
}

static inline struct shmkit_segment *l_segment(const struct bridge *b)
{
	return b->ps ? shmkit_pubsub_segment(b->ps) : shmkit_chan_segment(b->ch);
}

/* Leaves the channel without ending the stream: a consumer's unreleased messages stay for
 * the next bridge, a producer's peer keeps waiting. A pub/sub publisher has no such exit:
 * its handle is left to the process's end, and subscribers see a publisher that died
 * (-EOWNERDEAD while they wait) until a restarted bridge takes the role over. */
static inline void l_detach(struct bridge *b)
{
	if (b->ch)
		shmkit_chan_detach(b->ch);
	else if (b->ps && b->out)
		shmkit_pubsub_close(b->ps);
	b->ch = NULL;
	b->ps = NULL;
}

struct frame {
	uint64_t src, prev, id;
	int end; /* 0 message, 1 eof, 2 abort, 3 batch (core: several messages) */
};

/* cli/bridge_nats.c */
extern volatile sig_atomic_t cli_bridge_stop_sig;
void cli_bridge_progress(struct bridge *b, bool force);
void cli_bridge_print_stats(struct bridge *b);
int64_t cli_bridge_reconnect_delay(natsConnection *nc, int attempts, void *closure);
int cli_bridge_nats_connect(struct bridge *b);
bool cli_bridge_frame_parse(natsMsg *m, struct frame *f);
natsStatus cli_bridge_frame_make(struct bridge *b, natsMsg **mp, const struct frame *f,
				 const void *data, size_t len);
int cli_bridge_frame_send(struct bridge *b, const struct frame *f, const void *data, size_t len);

/* cli/bridge_out.c */
int cli_bridge_ensure_stream(struct bridge *b);
void cli_bridge_stream_recreate(struct bridge *b);
int cli_bridge_open_wait(struct bridge *b);
int cli_bridge_run_out(struct bridge *b);

/* cli/bridge_in.c */
int cli_bridge_run_in(struct bridge *b);

#endif /* SHMKIT_HAVE_NATS */

#endif
