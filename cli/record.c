/* shmkit CLI — `shmkit record NAME FILE` and `shmkit replay FILE NAME`.
 *
 * A recording is a file of the messages a channel carried, each with the time it arrived,
 * so that replay can send them again with the same spacing. Its format (all integers
 * little-endian; CRC-32 is the IEEE 802.3 / zlib one: reflected polynomial 0xEDB88320,
 * initial value and final xor 0xFFFFFFFF):
 *
 *   header, 32 bytes
 *   offset size  field
 *        0    8  magic "SHMKREC\0"
 *        8    2  format version, 1
 *       10    2  header size, 32 (a reader skips what it does not know)
 *       12    4  kind of the recorded channel (enum shmkit_kind: 2 stream, 3 pubsub, 4 queue)
 *       16    8  start of the recording, CLOCK_REALTIME nanoseconds
 *       24    4  reserved, 0
 *       28    4  CRC-32 of bytes 0..27
 *
 *   then one record per message, back to back, no padding
 *        0    8  arrival time: CLOCK_MONOTONIC nanoseconds since the recording started
 *        8    4  payload length L
 *       12    4  CRC-32 of the record's bytes 0..11 followed by the L payload bytes
 *       16    L  payload
 *
 * The file ends after the last complete record. Replay checks the whole file before it
 * sends anything, so a damaged recording is never half played: the error names the offset
 * of the first bad record. docs/shmkit_record.py reads the format in a few lines.
 *
 * The recorder takes part in the channel: on a stream it is the consumer and on a queue one
 * of the consumers (it takes the messages it records), on a pub/sub channel one more
 * subscriber (everyone still gets everything). Timestamps are taken when the recorder
 * receives a message, so they include its own scheduling delay.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "observe.h"

#define REC_MAGIC "SHMKREC"
#define REC_VERSION 1u
#define REC_HDR 32u
#define REC_RHDR 16u
#define POLL_NS 100000000ull /* checks for a signal at least this often while waiting */

const char cli_usage_record[] =
	"Usage: shmkit record NAME FILE [--count N] [--duration SECONDS] [-q | --json]\n"
	"\n"
	"Receives the messages of NAME (a stream, pub/sub channel or queue) and writes each with\n"
	"its arrival time to FILE (format in shmkit(1), RECORDING FORMAT). On a stream recording\n"
	"takes the consumer's role and on a queue a consumer's share (it takes the messages it\n"
	"records); on a pub/sub channel it is one more subscriber. It stops when the producer\n"
	"closes the channel, after N messages or the duration, or on SIGINT/SIGTERM, and prints\n"
	"a summary on stderr unless -q.\n"
	"\n"
	"Options:\n"
	"  -n, --count N             stop after N messages\n"
	"  -d, --duration SECONDS    stop after this long\n"
	"  -q, --quiet               no summary\n"
	"  -j, --json                the summary as one JSON object on stderr (the schema of\n"
	"                            pub and sub's, shmkit(1))\n"
	"  -h, --help                show this help\n";

const char cli_usage_replay[] =
	"Usage: shmkit replay FILE NAME [--speed X] [-q | --json]\n"
	"       shmkit replay --verify FILE [--json]\n"
	"\n"
	"Sends the messages of a recording into NAME (an existing stream, pub/sub channel or\n"
	"queue) with their recorded spacing divided by X, then closes the channel as a producer\n"
	"(a stream's consumer sees the end). The whole file is checked first: a truncated or\n"
	"corrupt recording is reported with the offset of the first bad record, and nothing is\n"
	"sent.\n"
	"\n"
	"Options:\n"
	"  -s, --speed X    time scale: 2 twice as fast, 0.5 half, 0 as fast as possible\n"
	"                   (default 1)\n"
	"  -V, --verify     only check the file and print what it holds\n"
	"  -q, --quiet      no summary\n"
	"  -j, --json       the summary as one JSON object on stderr (as pub's); with\n"
	"                   --verify, what the file holds as one JSON object on stdout\n"
	"  -h, --help       show this help\n";

/* --- CRC-32 and little-endian fields ----------------------------------------------------- */

static uint32_t crc32_update(uint32_t crc, const void *p, size_t n)
{
	static uint32_t table[256];
	if (!table[1])
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
	const uint8_t *b = p;
	crc = ~crc;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* --- the source: whichever kind NAME is ---------------------------------------------------- */

struct chan_any {
	uint32_t kind;
	struct shmkit_chan *ch;
	struct shmkit_pubsub *ps;
	struct shmkit_queue *q;
};

/* Opens NAME, of whatever kind it is, as a receiver (recv) or a sender (!recv). */
static int any_open(const char *name, bool recv, struct chan_any *a, uint32_t *kind_out)
{
	memset(a, 0, sizeof *a);
	struct shmkit_segment_info inf;
	int err = shmkit_segment_stat(name, NULL, &inf);
	if (err)
		return err;
	if (inf.status)
		return inf.status;
	a->kind = *kind_out = inf.kind;
	switch (inf.kind) {
	case SHMKIT_KIND_STREAM: {
		struct shmkit_chan_opts o = {.seg = cli_info_opts(&inf, 0)};
		return shmkit_chan_open(name, recv ? SHMKIT_CHAN_CONSUMER : SHMKIT_CHAN_PRODUCER, &o,
					&a->ch);
	}
	case SHMKIT_KIND_PUBSUB: {
		struct shmkit_pubsub_opts o = {.seg = cli_info_opts(&inf, 0)};
		return shmkit_pubsub_open(name, recv ? SHMKIT_PUBSUB_SUBSCRIBER : SHMKIT_PUBSUB_PUBLISHER,
					  &o, &a->ps);
	}
	case SHMKIT_KIND_QUEUE: {
		struct shmkit_queue_opts o = {.seg = cli_info_opts(&inf, 0)};
		return shmkit_queue_open(name, &o, &a->q);
	}
	default:
		return -EMEDIUMTYPE;
	}
}

/* The next message, waiting until `deadline`: 0, -ETIMEDOUT, -EPIPE (the end), others. */
static int any_peek(struct chan_any *a, const void **buf, size_t *len, const struct timespec *dl)
{
	if (a->ch)
		return shmkit_chan_peek_wait(a->ch, buf, len, dl);
	if (a->ps) {
		int err;
		while ((err = shmkit_pubsub_peek_wait(a->ps, buf, len, dl)) == -ESTALE)
			; /* lost messages (overwrite): shmkit_pubsub_lost() counts them */
		return err;
	}
	return shmkit_queue_peek_wait(a->q, buf, len, dl);
}

/* Releases the peeked message: 0, or -ESTALE when a pub/sub message was overwritten while
 * it was read (drop it). */
static int any_release(struct chan_any *a)
{
	if (a->ch)
		return shmkit_chan_release(a->ch, 0);
	if (a->ps)
		return shmkit_pubsub_release(a->ps, 0);
	return shmkit_queue_release(a->q);
}

static int any_send(struct chan_any *a, const void *buf, size_t len)
{
	if (a->ch)
		return shmkit_chan_send_wait(a->ch, buf, len, NULL);
	if (a->ps)
		return shmkit_pubsub_send_wait(a->ps, buf, len, NULL);
	return shmkit_queue_send_wait(a->q, buf, len, NULL);
}

static void any_close(struct chan_any *a)
{
	if (a->ch)
		shmkit_chan_close(a->ch);
	if (a->ps)
		shmkit_pubsub_close(a->ps);
	if (a->q)
		shmkit_queue_close(a->q);
}

/* --- record ------------------------------------------------------------------------------ */

/* --json: the summary pub and sub print (cli_flow_end(), one schema for all four). */
static void summary_json(const struct cli_cmd *cmd, const char *name, uint32_t kind,
			 uint64_t msgs, uint64_t bytes, uint64_t start_ns, int rc)
{
	struct cli_flow f = {.cmd = cmd, .name = name, .kind = shmkit_kind_name(kind),
			     .msgs = msgs, .bytes = bytes, .start_ns = start_ns, .json = true};
	cli_flow_end(&f, rc);
}

int cli_cmd_record(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"count", required_argument, NULL, 'n'},
		{"duration", required_argument, NULL, 'd'},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t count = 0, duration = 0;
	bool quiet = false, json = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":n:d:qjh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (cli_parse_u64(optarg, 10, UINT64_MAX, &count) != 0 || count == 0)
				return cli_usage_error(cmd, "invalid --count '%s'", optarg);
			break;
		case 'd':
			if (cli_parse_seconds(optarg, &duration) != 0 || duration == 0)
				return cli_usage_error(cmd, "invalid --duration '%s'", optarg);
			break;
		case 'q':
			quiet = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			return cli_default_option(cmd, c, argv);
		}
	}
	if (argc - optind != 2)
		return cli_usage_error(cmd, argc - optind < 2 ? "missing NAME and FILE"
							      : "unexpected argument '%s'",
				       argv[optind + 2 < argc ? optind + 2 : 0]);
	const char *name = argv[optind], *path = argv[optind + 1];
	if (cli_check_name(cmd, name) != CLI_OK)
		return CLI_USAGE;

	struct chan_any a;
	uint32_t kind = 0;
	int err = any_open(name, true, &a, &kind);
	if (err == -EMEDIUMTYPE)
		return obs_not_channel(cmd, name, kind);
	if (err)
		return cli_open_error(cmd, name, SHMKIT_BACKEND_ANY, err, NULL);
	FILE *f = fopen(path, "wb");
	if (!f) {
		err = -errno;
		any_close(&a);
		return cli_error(cmd, path, err);
	}
	obs_catch_signals();
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	uint8_t h[REC_HDR] = REC_MAGIC;
	put_le(h + 8, REC_VERSION, 2);
	put_le(h + 10, REC_HDR, 2);
	put_le(h + 12, kind, 4);
	put_le(h + 16, (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec, 8);
	put_le(h + 28, crc32_update(0, h, 28), 4);
	fwrite(h, 1, sizeof h, f);

	uint64_t start = shmkit_now_ns(), msgs = 0, bytes = 0;
	int rc = CLI_OK;
	while (!obs_stop && (!count || msgs < count)) {
		uint64_t now = shmkit_now_ns();
		if (duration && now - start >= duration)
			break;
		uint64_t wait = POLL_NS;
		if (duration && duration - (now - start) < wait)
			wait = duration - (now - start);
		struct timespec dl;
		const void *buf;
		size_t len;
		err = any_peek(&a, &buf, &len, shmkit_deadline_after(&dl, wait));
		if (err == -ETIMEDOUT || err == -EINTR)
			continue;
		if (err == -EPIPE || err == -ECONNABORTED || err == -EOWNERDEAD)
			break; /* the producer is gone and everything it sent is recorded */
		if (err) {
			rc = cli_error(cmd, name, err);
			break;
		}
		uint64_t t = shmkit_now_ns() - start;
		uint8_t r[REC_RHDR];
		put_le(r, t, 8);
		put_le(r + 8, len, 4);
		/* The bytes are copied out before the release validates them: a pub/sub message
		 * overwritten meanwhile is dropped from the file again below. */
		long pos = ftell(f);
		put_le(r + 12, crc32_update(crc32_update(0, r, 12), buf, len), 4);
		fwrite(r, 1, sizeof r, f);
		fwrite(buf, 1, len, f);
		if (any_release(&a) != 0) {
			if (pos >= 0 && fseek(f, pos, SEEK_SET) == 0)
				continue;
		}
		msgs++;
		bytes += len;
	}
	any_close(&a);
	if (fflush(f) != 0 || ferror(f) || ftruncate(fileno(f), ftell(f)) != 0) {
		err = -errno;
		fclose(f);
		return cli_error(cmd, path, err ? err : -EIO);
	}
	fclose(f);
	if (json)
		summary_json(cmd, name, kind, msgs, bytes, start, rc);
	else if (!quiet)
		fprintf(stderr, "record: %" PRIu64 " messages, %" PRIu64 " bytes in %.3f s to %s\n", msgs,
			bytes, (double)(shmkit_now_ns() - start) / 1e9, path);
	return rc;
}

/* --- replay ------------------------------------------------------------------------------ */

struct recording {
	const uint8_t *p;
	size_t size;
	uint32_t kind;
	uint64_t nrec, bytes, last_t;
};

/* Checks every byte of the file; on a problem writes it (with its offset) to why. */
static int rec_verify(struct recording *r, char *why, size_t cap)
{
	if (r->size < REC_HDR || memcmp(r->p, REC_MAGIC, 8) != 0) {
		snprintf(why, cap, "not a shmkit recording (no header at offset 0)");
		return -1;
	}
	if (get_le(r->p + 28, 4) != crc32_update(0, r->p, 28)) {
		snprintf(why, cap, "corrupt header at offset 0 (checksum mismatch)");
		return -1;
	}
	uint64_t ver = get_le(r->p + 8, 2), hsize = get_le(r->p + 10, 2);
	if (ver != REC_VERSION) {
		snprintf(why, cap, "recording format version %" PRIu64 " is not supported (only %u)",
			 ver, REC_VERSION);
		return -1;
	}
	if (hsize < REC_HDR || hsize > r->size) {
		snprintf(why, cap, "corrupt header at offset 0 (header size %" PRIu64 ")", hsize);
		return -1;
	}
	r->kind = (uint32_t)get_le(r->p + 12, 4);
	uint64_t prev_t = 0;
	for (size_t off = hsize; off < r->size;) {
		if (r->size - off < REC_RHDR) {
			snprintf(why, cap, "truncated record at offset %zu (%zu of %u header bytes)", off,
				 r->size - off, REC_RHDR);
			return -1;
		}
		uint64_t t = get_le(r->p + off, 8), len = get_le(r->p + off + 8, 4);
		if (len > r->size - off - REC_RHDR) {
			snprintf(why, cap,
				 "truncated record at offset %zu (payload of %" PRIu64 " bytes, %zu left)",
				 off, len, r->size - off - REC_RHDR);
			return -1;
		}
		uint32_t crc = crc32_update(crc32_update(0, r->p + off, 12), r->p + off + REC_RHDR, len);
		if (get_le(r->p + off + 12, 4) != crc) {
			snprintf(why, cap, "corrupt record at offset %zu (checksum mismatch)", off);
			return -1;
		}
		if (t < prev_t) {
			snprintf(why, cap, "corrupt record at offset %zu (time goes backwards)", off);
			return -1;
		}
		prev_t = t;
		r->nrec++;
		r->bytes += len;
		off += REC_RHDR + len;
	}
	r->last_t = prev_t;
	return 0;
}

static int parse_speed(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= 0) || v > 1e9)
		return -EINVAL;
	*out = v;
	return 0;
}

int cli_cmd_replay(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"speed", required_argument, NULL, 's'},
		{"verify", no_argument, NULL, 'V'},
		{"quiet", no_argument, NULL, 'q'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	double speed = 1.0;
	bool verify = false, quiet = false, json = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":s:Vqjh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_speed(optarg, &speed) != 0)
				return cli_usage_error(cmd, "invalid --speed '%s' (a number >= 0)", optarg);
			break;
		case 'V':
			verify = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			return cli_default_option(cmd, c, argv);
		}
	}
	int want = verify ? 1 : 2;
	if (argc - optind < want)
		return cli_usage_error(cmd, verify ? "missing FILE" : "missing FILE and NAME");
	if (argc - optind > want)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind + want]);
	const char *path = argv[optind], *name = verify ? NULL : argv[optind + 1];
	if (name && cli_check_name(cmd, name) != CLI_OK)
		return CLI_USAGE;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		int err = -errno;
		if (fd >= 0)
			close(fd);
		return cli_error(cmd, path, err);
	}
	struct recording r = {.size = (size_t)sb.st_size};
	void *map = r.size ? mmap(NULL, r.size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
	close(fd);
	if (map == MAP_FAILED)
		return cli_error(cmd, path, -errno);
	r.p = map ? map : (const uint8_t *)"";
	char why[160];
	int rc = CLI_OK;
	if (rec_verify(&r, why, sizeof why) != 0) {
		rc = cli_errorf(cmd, "%s: %s", path, why);
		goto out;
	}
	if (verify && json) {
		fputs("{\"file\":", stdout);
		cli_json_string(stdout, path);
		printf(",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,"
		       "\"kind\":\"%s\"}\n",
		       r.nrec, r.bytes, (double)r.last_t / 1e9, shmkit_kind_name(r.kind));
		goto out;
	}
	if (verify) {
		printf("%s: %" PRIu64 " messages, %" PRIu64 " bytes over %.6f s, from a %s\n", path,
		       r.nrec, r.bytes, (double)r.last_t / 1e9, shmkit_kind_name(r.kind));
		goto out;
	}
	struct chan_any a;
	uint32_t kind = 0;
	int err = any_open(name, false, &a, &kind);
	if (err == -EMEDIUMTYPE) {
		rc = obs_not_channel(cmd, name, kind);
		goto out;
	}
	if (err) {
		rc = cli_open_error(cmd, name, SHMKIT_BACKEND_ANY, err, NULL);
		goto out;
	}
	obs_catch_signals();
	uint64_t start = shmkit_now_ns(), sent = 0, sent_bytes = 0;
	for (size_t off = get_le(r.p + 10, 2); off < r.size && !obs_stop;) {
		uint64_t t = get_le(r.p + off, 8), len = get_le(r.p + off + 8, 4);
		if (speed > 0) {
			/* Absolute deadlines: lateness never accumulates across messages. */
			uint64_t at = start + (uint64_t)((double)t / speed);
			struct timespec ts = {.tv_sec = (time_t)(at / 1000000000u),
					      .tv_nsec = (long)(at % 1000000000u)};
			while (!obs_stop &&
			       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
				;
		}
		err = any_send(&a, r.p + off + REC_RHDR, len);
		if (err) {
			rc = cli_error(cmd, name, err);
			break;
		}
		sent++;
		sent_bytes += len;
		off += REC_RHDR + len;
	}
	any_close(&a);
	if (json)
		summary_json(cmd, name, kind, sent, sent_bytes, start, rc);
	else if (!quiet)
		fprintf(stderr, "replay: %" PRIu64 " of %" PRIu64 " messages in %.3f s to %s\n", sent,
			r.nrec, (double)(shmkit_now_ns() - start) / 1e9, name);
out:
	if (map)
		munmap(map, r.size);
	return rc;
}
