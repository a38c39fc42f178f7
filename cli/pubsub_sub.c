/* shmkit CLI — `shmkit sub`: messages written to standard output (the design is at the top of
 * cli/pubsub.c). */
#include "pubsub_int.h"

/* --- sub ---------------------------------------------------------------------------------- */

#define OUT_CAP (128u << 10)  /* gathering buffer for small messages */
#define OUT_SMALL (16u << 10) /* messages up to this size are gathered */
#define OUT_FRAMED_MAX (OUT_SMALL + 5) /* a gathered message with its framing */

struct output {
	int fd;
	uint8_t *buf;
	size_t len;
};

/* Writes out the gathered records: whole records only, in one write(2) when the kernel
 * takes it all. 0 or a negative errno. */
static int out_flush(struct output *o)
{
	if (o->len == 0)
		return 0;
	struct iovec iov = {.iov_base = o->buf, .iov_len = o->len};
	o->len = 0;
	return cli_writev_all(o->fd, &iov, 1);
}

/* Writes one message in the framing: a small one is copied into the buffer (which always
 * has room for one, see sub_loop()), a larger one is written straight from the channel
 * after what the buffer holds, as one writev(2) of the whole record. Returns 1 when the
 * message was copied, 0 when it was written, or a negative errno. */
static int out_message(struct output *o, enum cli_framing framing, const void *msg, size_t len)
{
	uint8_t hdr[4];
	struct iovec iov[3];
	int cnt = cli_record_iov(framing, msg, len, hdr, iov);
	if (len <= OUT_SMALL) {
		for (int i = 0; i < cnt; i++) {
			memcpy(o->buf + o->len, iov[i].iov_base, iov[i].iov_len);
			o->len += iov[i].iov_len;
		}
		return 1;
	}
	int err = out_flush(o);
	if (err)
		return err;
	return cli_writev_all(o->fd, iov, cnt);
}

struct sub {
	const struct cli_cmd *cmd;
	const char *name;
	struct shmkit_chan *ch;
	struct cli_waiting wait;
	enum cli_framing framing;
	struct cli_flow flow;
};

/* Copies messages to standard output until the stream ends, something fails or a stop
 * signal arrives. Returns the channel's verdict (-EPIPE end of stream, -EOWNERDEAD,
 * -ETIMEDOUT, -EBADMSG, ...; -EINTR for a stop signal) in *chan_err, or a write error in
 * *out_err.
 *
 * The rule (issue: a killed sub must not lose what it released): a message is released
 * for good — shmkit_chan_flush(), or a release without MORE — only after the write(2)
 * that carries its whole record has returned. Small messages are copied into the buffer
 * and released with SHMKIT_CHAN_MORE, which the library never publishes on its own; the
 * buffer is written, then flushed, when it is full and before every wait (a wait holding
 * releases would refuse with -EDEADLK: the producer may be waiting for that space). So a
 * sub killed at any moment leaves every message it did not write in the channel for the
 * next sub, and re-delivers at most the records of one buffer (OUT_CAP) or one large
 * message it wrote but had not released yet (at least once). */
static void sub_loop(struct sub *s, struct output *o, int *chan_err, int *out_err)
{
	for (;;) {
		const void *msg;
		size_t len;
		int err = cli_stop_sig ? -EINTR : shmkit_chan_peek(s->ch, &msg, &len);
		if (err == -EAGAIN || err == -EINTR) {
			/* Nothing is ready, or we stop: hand on what was gathered, then give its
			 * space back, then (not stopping) wait. */
			*out_err = out_flush(o);
			if (*out_err)
				return;
			shmkit_chan_flush(s->ch);
			cli_flow_tick(&s->flow); /* about to wait: the display must not lag */
			while (err == -EAGAIN || (err == -EINTR && !cli_stop_sig)) {
				struct timespec ts;
				err = shmkit_chan_peek_wait(s->ch, &msg, &len, cli_deadline(&s->wait, &ts));
			}
		}
		if (!err && s->framing == CLI_FRAMING_LEN && len > UINT32_MAX)
			err = -EMSGSIZE; /* its length does not fit the 4-byte prefix */
		if (err) {
			*chan_err = err;
			*out_err = out_flush(o);
			return;
		}
		int copied = out_message(o, s->framing, msg, len);
		if (copied < 0) {
			*out_err = copied;
			return;
		}
		/* Counted when taken: a copied message is written at the next flush, or it is
		 * never released and the next sub writes it again. */
		cli_flow_count(&s->flow, len);
		if (!copied) {
			/* Written (after the buffer before it): release it and the gathered batch. */
			shmkit_chan_release(s->ch, 0);
			continue;
		}
		/* Copied: held until the buffer is written out. */
		shmkit_chan_release(s->ch, SHMKIT_CHAN_MORE);
		if (o->len > OUT_CAP - OUT_FRAMED_MAX) {
			*out_err = out_flush(o);
			if (*out_err)
				return;
			shmkit_chan_flush(s->ch);
		}
	}
}

/* Ends sub after the end of the stream or the producer's death: gives the consumer role
 * up and, unless --keep, removes the channel. */
static int sub_finish(struct sub *s, bool keep, int rc)
{
	int err = keep ? 0 : shmkit_chan_unlink(s->ch);
	shmkit_chan_close(s->ch);
	/* -ENOENT: somebody removed it already, which is just as good. */
	if (err && err != -ENOENT && rc == CLI_OK)
		return cli_chan_leave_error(s->cmd, s->name, err);
	return rc;
}

/* How sub ends after sub_loop(): closes, detaches or removes the channel and reports.
 * Returns the exit status; *by_signal tells whether a stop signal ended it (the caller
 * then ends by that signal, cli_stop_exit()). */
static int sub_end(struct sub *s, bool keep, int chan_err, int out_err, bool *by_signal)
{
	const struct cli_cmd *cmd = s->cmd;
	int err;
	*by_signal = true;
	if (out_err) {
		/* Close our side: the producer learns that its reader is gone. Aborted: what
		 * we held but could not write stays in the channel (released, not lost). */
		cli_chan_leave(s->ch, s->name, true, !keep);
		if (out_err == -EPIPE)
			return CLI_OK;
		return cli_error(cmd, "standard output", out_err);
	}
	switch (chan_err) {
	case -EINTR:
		/* A stop signal: everything taken was written and released (sub_loop). --keep:
		 * leave without a mark, a later sub carries on. Else close our side like a
		 * pipe's reader; the producer, or we if it is gone already, removes it. */
		if (keep)
			shmkit_chan_detach(s->ch);
		else if ((err = cli_chan_leave(s->ch, s->name, false, true)) != 0)
			return cli_chan_leave_error(cmd, s->name, err);
		return CLI_OK;
	}
	*by_signal = false;
	switch (chan_err) {
	case -EPIPE:
		return sub_finish(s, keep, CLI_OK);
	case -EOWNERDEAD:
		return sub_finish(s, keep,
				  cli_errorf(cmd, "%s: producer died before the end of the stream",
					     s->name));
	case -ECONNABORTED:
		return sub_finish(s, keep,
				  cli_errorf(cmd, "%s: producer aborted the stream before its end",
					     s->name));
	case -ETIMEDOUT:
		/* Leave without a mark: a later sub carries on where this one stopped. */
		shmkit_chan_detach(s->ch);
		return cli_errorf(cmd, "%s: timed out waiting for a message", s->name);
	default:
		shmkit_chan_close(s->ch);
		return cli_error(cmd, s->name, chan_err);
	}
}

int cli_cmd_sub(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (wants_pubsub(argc, argv, "--from-now", NULL))
		return cli_sub_multi(cmd, argc, argv);
	enum { OPT_FOREIGN = 256 };
	static const struct option opts[] = {
		{"framing", required_argument, NULL, 'f'},
		{"timeout", required_argument, NULL, 't'},
		{"keep", no_argument, NULL, 'k'},
		{"foreign", no_argument, NULL, OPT_FOREIGN},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct sub s = {.cmd = cmd, .framing = CLI_FRAMING_RAW,
			.flow = {.cmd = cmd, .kind = "stream"}};
	bool keep = false, foreign = false, quiet = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":f:t:khvjq", opts, NULL)) != -1) {
		int rc = cli_flow_option(cmd, &s.flow, &quiet, c, optarg);
		if (rc >= 0) {
			if (rc != CLI_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'f':
			if (cli_parse_framing(optarg, &s.framing) < 0)
				return cli_usage_error(cmd,
						       "invalid framing '%s' (expected raw, lines or "
						       "len)",
						       optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &s.wait.timeout_ns) < 0)
				return cli_usage_error(cmd,
						       "invalid timeout '%s' (seconds, e.g. 10 or 0.5)",
						       optarg);
			s.wait.bounded = true;
			break;
		case 'k':
			keep = true;
			break;
		case OPT_FOREIGN:
			foreign = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (cli_name_arg(cmd, argc, argv, "channel", &s.name) != CLI_OK)
		return CLI_USAGE;
	s.flow.name = s.name;
	if (!quiet) {
		s.wait.announce = cmd;
		s.wait.name = s.name;
	}
	struct shmkit_chan_opts co = {.seg = {.flags = foreign ? SHMKIT_SEG_FOREIGN_UID : 0}};

	/* A publish/subscribe channel: one subscriber among many (cli/pubsub_multi.c). */
	struct shmkit_segment_info inf;
	if (shmkit_segment_stat(s.name, NULL, &inf) == 0 &&
	    (inf.status == 0 || (foreign && inf.status == -EPERM)) &&
	    inf.kind == SHMKIT_KIND_PUBSUB)
		return cli_sub_multi(cmd, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	int err = cli_chan_open_wait(s.name, SHMKIT_CHAN_CONSUMER, &co, &s.wait, &s.ch);
	if (err == -EMEDIUMTYPE && shmkit_segment_stat(s.name, NULL, &inf) == 0 &&
	    inf.kind == SHMKIT_KIND_PUBSUB) /* it appeared while we waited, as a pub/sub channel */
		return cli_sub_multi(cmd, argc, argv);
	if (err == -ETIMEDOUT)
		return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", s.name);
	if (err)
		return cli_chan_open_error(cmd, s.name, SHMKIT_BACKEND_ANY, err,
					   SHMKIT_CHAN_CONSUMER);
	cli_grow_pipe(STDOUT_FILENO);
	cli_catch_stop(); /* from now on a stop signal ends sub at a record boundary */
	struct output o = {.fd = STDOUT_FILENO, .buf = malloc(OUT_CAP)};
	if (!o.buf) {
		shmkit_chan_close(s.ch);
		return cli_error(cmd, "output buffer", -ENOMEM);
	}
	cli_flow_start(&s.flow);
	int chan_err = 0, out_err = 0;
	sub_loop(&s, &o, &chan_err, &out_err);
	free(o.buf);
	bool by_signal;
	int rc = sub_end(&s, keep, chan_err, out_err, &by_signal);
	cli_flow_end(&s.flow, rc);
	return by_signal ? cli_stop_exit(rc) : rc;
}
