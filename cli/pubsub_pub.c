/* shmkit CLI — `shmkit pub`: standard input cut into messages (the design is at the top of
 * cli/pubsub.c). */
#include "pubsub_int.h"

/* --- pub ---------------------------------------------------------------------------------- */

/* Buffered standard input for the lines and len framings. */
struct input {
	int fd;
	uint8_t *buf;
	size_t cap;
	size_t start, end; /* unconsumed bytes: [start, end) */
	bool eof;
};

/* One read(2) into `p`, retrying EINTR and waiting out EAGAIN (a non-blocking stdin).
 * Returns the count (0 at end of input) or a negative errno. */
static ssize_t read_some(int fd, void *p, size_t n)
{
	for (;;) {
		if (cli_stop_sig)
			return -EINTR; /* SIGINT, SIGTERM, SIGHUP: stop before reading more */
		ssize_t r = read(fd, p, n);
		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			(void)poll(&pfd, 1, -1);
		} else if (errno != EINTR) {
			return -errno;
		}
	}
}

/* Reads more after the buffered bytes, first moving them to the front when the room
 * behind them runs short. Needs room (the callers guarantee it). 0 or a negative errno. */
static int input_fill(struct input *in)
{
	if (in->start == in->end) {
		in->start = in->end = 0;
	} else if (in->start > 0 && in->cap - in->end < in->cap / 2) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	ssize_t n = read_some(in->fd, in->buf + in->end, in->cap - in->end);
	if (n < 0)
		return (int)n;
	if (n == 0)
		in->eof = true;
	in->end += (size_t)n;
	return 0;
}

struct pub {
	const struct cli_cmd *cmd;
	const char *name;
	struct shmkit_chan *ch;
	struct cli_waiting wait;
	uint64_t max_msg;
	struct cli_flow flow;
};

/* Reports a failed read of standard input; returns CLI_ERR. A stop signal is no error to
 * report: pub ends the stream as cut short and goes. */
static int pub_input_error(struct pub *p, int err)
{
	return err == -EINTR ? CLI_ERR : cli_error(p->cmd, "standard input", err);
}

/* Reports a failed channel operation; returns CLI_ERR. */
static int pub_chan_error(struct pub *p, int err)
{
	switch (err) {
	case -EINTR: /* a stop signal, as in pub_input_error() */
		return CLI_ERR;
	case -EOWNERDEAD:
		return cli_errorf(p->cmd, "%s: consumer died before the end of the stream", p->name);
	case -EPIPE:
		return cli_errorf(p->cmd, "%s: consumer closed the channel", p->name);
	case -ETIMEDOUT:
		return cli_errorf(p->cmd, "%s: timed out waiting for room in the channel", p->name);
	default:
		return cli_error(p->cmd, p->name, err);
	}
}

/* Loans room for `len` bytes, waiting up to the timeout. 0 or a negative errno. */
static int pub_loan(struct pub *p, size_t len, void **buf)
{
	for (;;) {
		struct timespec ts;
		int err = shmkit_chan_loan_wait(p->ch, len, buf, cli_deadline(&p->wait, &ts));
		if (err != -EINTR || cli_stop_sig)
			return err;
	}
}

/* raw: each read(2) goes straight into a loan of max_msg bytes and becomes one message. */
static int pub_raw(struct pub *p)
{
	for (;;) {
		void *buf;
		int err = pub_loan(p, p->max_msg, &buf);
		if (err)
			return pub_chan_error(p, err);
		ssize_t n = read_some(STDIN_FILENO, buf, p->max_msg);
		if (n < 0)
			return pub_input_error(p, (int)n);
		if (n == 0)
			return CLI_OK; /* the loan is dropped; close ends the stream */
		err = shmkit_chan_commit(p->ch, (size_t)n, 0);
		if (err)
			return pub_chan_error(p, err);
		cli_flow_count(&p->flow, (size_t)n);
	}
}

/* Sends one message copied from `data`; published later (SHMKIT_CHAN_MORE), at the
 * latest before pub next blocks on its input. */
static int pub_copy(struct pub *p, const void *data, size_t len)
{
	void *buf;
	int err = pub_loan(p, len, &buf);
	if (err)
		return err;
	shmkit_copy(buf, data, len);
	err = shmkit_chan_commit(p->ch, len, SHMKIT_CHAN_MORE);
	if (!err)
		cli_flow_count(&p->flow, len);
	return err;
}

/* Publishes the batched messages, then reads more input. */
static int pub_refill(struct pub *p, struct input *in)
{
	shmkit_chan_flush(p->ch);
	cli_flow_tick(&p->flow); /* about to wait for input: the display must not lag */
	int err = input_fill(in);
	if (err)
		return pub_input_error(p, err);
	return CLI_OK;
}

static int pub_lines(struct pub *p, struct input *in)
{
	uint64_t line = 0;
	size_t scanned = 0; /* bytes after in->start known to hold no newline */
	for (;;) {
		const uint8_t *s = in->buf + in->start;
		size_t avail = in->end - in->start;
		const uint8_t *nl = memchr(s + scanned, '\n', avail - scanned);
		size_t len = nl ? (size_t)(nl - s) : avail;
		scanned = avail; /* a line trickling in is not scanned again */
		if (len > p->max_msg)
			return cli_errorf(p->cmd,
					  "%s: line %" PRIu64 " of %s%zu bytes exceeds max_msg %" PRIu64
					  " (the channel's largest message; create it with a larger "
					  "--max-msg)",
					  p->name, line + 1, nl || in->eof ? "" : "at least ", len,
					  p->max_msg);
		if (nl || (in->eof && avail > 0)) {
			line++;
			int err = pub_copy(p, s, len);
			if (err)
				return pub_chan_error(p, err);
			in->start += len + (nl != NULL);
			scanned = 0;
			continue;
		}
		if (in->eof)
			return CLI_OK;
		int rc = pub_refill(p, in);
		if (rc)
			return rc;
	}
}

static int pub_len(struct pub *p, struct input *in)
{
	for (uint64_t rec = 1;; rec++) {
		while (in->end - in->start < 4 && !in->eof) {
			int rc = pub_refill(p, in);
			if (rc)
				return rc;
		}
		size_t avail = in->end - in->start;
		if (avail == 0)
			return CLI_OK;
		if (avail < 4)
			return cli_errorf(p->cmd,
					  "%s: record %" PRIu64 " is truncated (%zu of the 4 "
					  "length bytes at end of input)",
					  p->name, rec, avail);
		const uint8_t *h = in->buf + in->start;
		uint64_t len = (uint64_t)h[0] | (uint64_t)h[1] << 8 | (uint64_t)h[2] << 16 |
			       (uint64_t)h[3] << 24;
		if (len > p->max_msg)
			return cli_errorf(p->cmd,
					  "%s: record %" PRIu64 " of %" PRIu64 " bytes exceeds max_msg "
					  "%" PRIu64 " (the channel's largest message; create it with a "
					  "larger --max-msg)",
					  p->name, rec, len, p->max_msg);
		in->start += 4;
		avail -= 4;
		uint8_t *buf;
		int err = pub_loan(p, (size_t)len, (void **)&buf);
		if (err)
			return pub_chan_error(p, err);
		size_t have = avail < len ? avail : (size_t)len;
		memcpy(buf, in->buf + in->start, have);
		in->start += have;
		/* The rest of a long payload goes from the input straight into the loan. */
		while (have < len) {
			shmkit_chan_flush(p->ch); /* about to block: publish what is committed */
			ssize_t n = read_some(in->fd, buf + have, (size_t)len - have);
			if (n < 0)
				return pub_input_error(p, (int)n);
			if (n == 0)
				return cli_errorf(p->cmd,
						  "%s: record %" PRIu64 " is truncated (%zu of its "
						  "%" PRIu64 " bytes at end of input)",
						  p->name, rec, have, len);
			have += (size_t)n;
		}
		err = shmkit_chan_commit(p->ch, (size_t)len, SHMKIT_CHAN_MORE);
		if (err)
			return pub_chan_error(p, err);
		cli_flow_count(&p->flow, (size_t)len);
	}
}

/* Chooses the geometry of a channel pub creates; reports a usage error for sizes that
 * cannot go together. */
static int pub_geometry(const struct cli_cmd *cmd, enum cli_framing framing, bool have_cap,
			uint64_t *cap, bool have_max, uint64_t *max)
{
	uint64_t c = have_cap ? *cap : DEFAULT_CAPACITY;
	/* The library rounds the capacity up to a power of two, at least 4 KiB. */
	uint64_t pow2 = 4096;
	while (pow2 < c)
		pow2 <<= 1;
	if (!have_max) {
		*max = framing == CLI_FRAMING_RAW ? DEFAULT_MAX_RAW : DEFAULT_MAX_FRAMED;
		if (have_cap && *max > pow2 / 4)
			*max = pow2 / 4;
	} else if (!have_cap && *max > pow2 / 2 - 8) {
		/* Room for four of the largest messages, as the library does by default. */
		c = 4 * (*max + 8);
		if (c > MAX_CAPACITY)
			return cli_usage_error(cmd, "--max-msg is too large");
		pow2 = 4096;
		while (pow2 < c)
			pow2 <<= 1;
	}
	if (*max > pow2 / 2 - 8)
		return cli_usage_error(cmd,
				       "--max-msg %" PRIu64 " does not fit a channel of %" PRIu64
				       " bytes (at most %" PRIu64 ")",
				       *max, pow2, pow2 / 2 - 8);
	*cap = pow2;
	return CLI_OK;
}

int cli_cmd_pub(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (wants_pubsub(argc, argv, "--pubsub", "-P"))
		return cli_pub_multi(cmd, argc, argv);
	enum { OPT_CAPACITY = 256, OPT_MAX_MSG, OPT_PERSISTENT, OPT_EPHEMERAL, OPT_FOREIGN };
	static const struct option opts[] = {
		{"create", no_argument, NULL, 'c'},
		{"persistent", no_argument, NULL, OPT_PERSISTENT},
		{"ephemeral", no_argument, NULL, OPT_EPHEMERAL},
		{"foreign", no_argument, NULL, OPT_FOREIGN},
		{"capacity", required_argument, NULL, OPT_CAPACITY},
		{"max-msg", required_argument, NULL, OPT_MAX_MSG},
		{"framing", required_argument, NULL, 'f'},
		{"backend", required_argument, NULL, 'b'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		CLI_FLOW_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	bool create = false, have_cap = false, have_max = false, foreign = false, quiet = false;
	struct cli_flow flow = {.cmd = cmd, .kind = "stream"};
	uint32_t lifetime = 0;
	uint64_t cap = 0, max = 0;
	enum cli_framing framing = CLI_FRAMING_RAW;
	uint32_t backend = SHMKIT_BACKEND_ANY;
	struct cli_waiting w = {0};
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":cf:b:t:hvjq", opts, NULL)) != -1) {
		int rc = cli_flow_option(cmd, &flow, &quiet, c, optarg);
		if (rc >= 0) {
			if (rc != CLI_OK)
				return rc;
			continue;
		}
		switch (c) {
		case 'c':
			create = true;
			break;
		case OPT_PERSISTENT:
		case OPT_EPHEMERAL:
			if (cli_lifetime_option(cmd, &lifetime, c == OPT_PERSISTENT) != CLI_OK)
				return CLI_USAGE;
			break;
		case OPT_FOREIGN:
			foreign = true;
			break;
		case OPT_CAPACITY:
			if (cli_parse_bytes(optarg, MAX_CAPACITY, &cap) < 0 || cap == 0)
				return cli_usage_error(cmd,
						       "invalid capacity '%s' (bytes, 1..1T, with an "
						       "optional K, M or G)",
						       optarg);
			have_cap = true;
			break;
		case OPT_MAX_MSG:
			if (cli_parse_bytes(optarg, MAX_CAPACITY / 2 - 8, &max) < 0 || max == 0)
				return cli_usage_error(cmd,
						       "invalid message size '%s' (bytes, 1..512G, "
						       "with an optional K, M or G)",
						       optarg);
			have_max = true;
			break;
		case 'f':
			if (cli_parse_framing(optarg, &framing) < 0)
				return cli_usage_error(cmd,
						       "invalid framing '%s' (expected raw, lines or "
						       "len)",
						       optarg);
			break;
		case 'b':
			if (cli_parse_backend(optarg, &backend) < 0)
				return cli_usage_error(cmd,
						       "invalid backend '%s' (expected posix or sysv)",
						       optarg);
			break;
		case 't':
			if (cli_parse_seconds(optarg, &w.timeout_ns) < 0)
				return cli_usage_error(cmd,
						       "invalid timeout '%s' (seconds, e.g. 10 or 0.5)",
						       optarg);
			w.bounded = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	const char *name;
	if (cli_name_arg(cmd, argc, argv, "channel", &name) != CLI_OK)
		return CLI_USAGE;
	if (!create && (have_cap || have_max || lifetime))
		return cli_usage_error(cmd, "--capacity, --max-msg, --persistent and --ephemeral "
					    "need --create");
	if (create && pub_geometry(cmd, framing, have_cap, &cap, have_max, &max) != CLI_OK)
		return CLI_USAGE;

	signal(SIGPIPE, SIG_IGN);
	struct shmkit_chan_opts co = {.capacity = cap, .max_msg = max, .seg = {.backend = backend}};
	if (!quiet) {
		w.announce = cmd;
		w.name = name;
	}
	flow.name = name;
	struct pub p = {.cmd = cmd, .name = name, .wait = w, .flow = flow};
	int err;
	if (create) {
		/* A stream is between two running programs: garbage once they are gone. */
		co.seg.flags |= cli_lifetime_flags(lifetime, SHMKIT_LIFETIME_EPHEMERAL);
		err = shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, &co, &p.ch);
	} else {
		if (foreign)
			co.seg.flags |= SHMKIT_SEG_FOREIGN_UID;
		err = cli_chan_open_wait(name, SHMKIT_CHAN_PRODUCER, &co, &w, &p.ch);
		if (err == -ETIMEDOUT)
			return cli_errorf(cmd, "%s: timed out waiting for the channel to appear", name);
	}
	if (err)
		return create ? cli_create_error(cmd, name, err, backend)
			      : cli_chan_open_error(cmd, name, backend, err, SHMKIT_CHAN_PRODUCER);
	p.max_msg = shmkit_chan_max_msg(p.ch);
	cli_flow_start(&p.flow);
	cli_grow_pipe(STDIN_FILENO);
	cli_catch_stop(); /* from now on a stop signal ends the stream as cut short */

	int rc;
	if (framing == CLI_FRAMING_RAW) {
		rc = pub_raw(&p);
	} else {
		/* A whole line must fit in the buffer, its newline included. */
		struct input in = {.fd = STDIN_FILENO, .cap = 1u << 20};
		if (in.cap < p.max_msg + 1)
			in.cap = (size_t)p.max_msg + 1;
		in.buf = malloc(in.cap);
		if (!in.buf) {
			rc = cli_error(cmd, "input buffer", -ENOMEM);
		} else {
			rc = framing == CLI_FRAMING_LINES ? pub_lines(&p, &in) : pub_len(&p, &in);
			free(in.buf);
		}
	}
	/* End of stream; after a failure or a stop signal, deliver what was sent but as a
	 * stream cut short, not a complete one. The channel is removed when the consumer has
	 * closed its side already (nobody will read it); else the consumer removes it once it
	 * has read the end (sub_finish), or a sub that was killed left it for the next sub. */
	err = cli_chan_leave(p.ch, name, rc != CLI_OK, true);
	if (err && rc == CLI_OK)
		rc = cli_chan_leave_error(cmd, name, err);
	cli_flow_end(&p.flow, rc);
	return cli_stop_exit(rc);
}
