/* shmkit CLI — `shmkit hz NAME`: a channel's message rate and inter-arrival times.
 *
 * How it measures depends on the kind, because taking part must not change what it
 * measures:
 *   - pub/sub: as one more subscriber (SHMKIT_PUBSUB_NO_HISTORY), which receives every
 *     message without taking it from anyone; each arrival is timed. In block mode this
 *     subscriber, like any, holds the publisher back if it were slow; it only releases.
 *     When no subscriber slot is free it falls back to the counters.
 *   - stream and queue: consuming would steal messages from the real consumer, so hz polls
 *     the shared counters (as `top` does, as an observer) every POLL_NS, and spreads each
 *     increase evenly over the time since the previous one. The rate is exact; the
 *     inter-arrival statistics have the poll period as their resolution.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "cli.h"
#include "observe.h"

#define POLL_NS 1000000ull /* counter polling period: 1 ms */

const char cli_usage_hz[] =
	"Usage: shmkit hz NAME [--window SECONDS] [--json] [--counters]\n"
	"\n"
	"Measures the message rate of a stream, pub/sub channel or queue over a window, and the\n"
	"inter-arrival times of its messages (mean, min, max, standard deviation). On a pub/sub\n"
	"channel hz joins as one more subscriber and times every message; on a stream or queue\n"
	"(where receiving would take messages from their consumer) it polls the counters every\n"
	"millisecond, so inter-arrival times have 1 ms resolution there.\n"
	"\n"
	"Options:\n"
	"  -w, --window SECONDS  how long to measure (default 5)\n"
	"  -c, --counters        measure from the counters on pub/sub too\n"
	"  -j, --json            print one JSON object (see shmkit(1))\n"
	"  -h, --help            show this help\n";

/* Running statistics of inter-arrival gaps (Welford). */
struct gaps {
	uint64_t n;
	double mean, m2, min, max;
};

static void gap_add(struct gaps *g, double x, uint64_t times)
{
	for (uint64_t i = 0; i < times; i++) {
		g->n++;
		double d = x - g->mean;
		g->mean += d / (double)g->n;
		g->m2 += d * (x - g->mean);
	}
	if (times && (g->n == times || x < g->min))
		g->min = x;
	if (times && (g->n == times || x > g->max))
		g->max = x;
}

struct hz_result {
	const char *method;     /* "subscriber" or "counters" */
	double window_s;
	double resolution_s;    /* 0 for exact timing */
	uint64_t msgs, bytes;
	uint64_t lost;
	struct gaps g;
};

static int hz_subscriber(const struct shmkit_segment_info *inf, uint64_t window_ns,
			 struct hz_result *r)
{
	struct shmkit_pubsub_opts o = {.flags = SHMKIT_PUBSUB_NO_HISTORY,
				       .seg = cli_info_opts(inf, SHMKIT_SEG_FOREIGN_UID)};
	struct shmkit_pubsub *ps;
	int err = shmkit_pubsub_open(inf->name, SHMKIT_PUBSUB_SUBSCRIBER, &o, &ps);
	if (err)
		return err;
	r->method = "subscriber";
	uint64_t start = shmkit_now_ns(), last = 0;
	struct timespec end = {.tv_sec = (time_t)((start + window_ns) / 1000000000u),
			       .tv_nsec = (long)((start + window_ns) % 1000000000u)};
	for (;;) {
		const void *buf;
		size_t len;
		err = shmkit_pubsub_peek_wait(ps, &buf, &len, &end);
		if (err == -ESTALE)
			continue; /* lost messages (overwrite): counted below */
		if (err)
			break;
		uint64_t now = shmkit_now_ns();
		if (now - start >= window_ns)
			break;
		if (shmkit_pubsub_release(ps, 0) != 0)
			continue;
		r->msgs++;
		r->bytes += len;
		if (last)
			gap_add(&r->g, (double)(now - last) / 1e9, 1);
		last = now;
	}
	r->lost = shmkit_pubsub_lost(ps, NULL);
	shmkit_pubsub_close(ps);
	r->window_s = (double)(shmkit_now_ns() - start) / 1e9;
	/* The window ends by the deadline, the publisher closing or dying: all are results. */
	if (err == -ETIMEDOUT || err == -EPIPE || err == -EOWNERDEAD || err == 0)
		return 0;
	return err;
}

static int hz_counters(const struct shmkit_segment_info *inf, uint64_t window_ns,
		       struct hz_result *r)
{
	struct obs_obj o;
	int err = obs_read(inf, &o);
	if (err)
		return err;
	if (!o.counted) {
		obs_obj_free(&o);
		return -EMEDIUMTYPE;
	}
	r->method = "counters";
	r->resolution_s = (double)POLL_NS / 1e9;
	uint64_t start = shmkit_now_ns(), first_msgs = o.msgs, first_bytes = o.bytes;
	uint64_t prev_msgs = o.msgs, last_change = 0, now = start;
	obs_obj_free(&o);
	while (now - start < window_ns) {
		uint64_t left = window_ns - (now - start);
		cli_nap(left < POLL_NS ? left : POLL_NS);
		err = obs_read(inf, &o);
		now = shmkit_now_ns();
		if (err)
			return err;
		uint64_t msgs = o.msgs;
		r->msgs = msgs >= first_msgs ? msgs - first_msgs : 0;
		r->bytes = o.bytes >= first_bytes ? o.bytes - first_bytes : 0;
		obs_obj_free(&o);
		if (msgs > prev_msgs) {
			/* k messages arrived since the last increase: k gaps of equal length. */
			if (last_change)
				gap_add(&r->g, (double)(now - last_change) / 1e9 / (double)(msgs - prev_msgs),
					msgs - prev_msgs);
			last_change = now;
		}
		if (msgs != prev_msgs)
			prev_msgs = msgs;
	}
	r->window_s = (double)(now - start) / 1e9;
	return 0;
}

static void print_result(const struct shmkit_segment_info *inf, const struct hz_result *r,
			 bool json)
{
	double rate = r->window_s > 0 ? (double)r->msgs / r->window_s : 0;
	double bps = r->window_s > 0 ? (double)r->bytes / r->window_s : 0;
	double sd = r->g.n > 1 ? sqrt(r->g.m2 / (double)(r->g.n - 1)) : 0;
	if (json) {
		printf("{\"name\":");
		cli_json_string(stdout, inf->name);
		printf(",\"kind\":\"%s\",\"method\":\"%s\",\"window_s\":%.6f,\"resolution_s\":%.6f"
		       ",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lost\":%" PRIu64
		       ",\"rate\":%.3f,\"bytes_per_s\":%.3f",
		       shmkit_kind_name(inf->kind), r->method, r->window_s, r->resolution_s, r->msgs,
		       r->bytes, r->lost, rate, bps);
		if (r->g.n)
			printf(",\"interarrival_s\":{\"samples\":%" PRIu64 ",\"mean\":%.9f,\"min\":%.9f"
			       ",\"max\":%.9f,\"stddev\":%.9f}}\n",
			       r->g.n, r->g.mean, r->g.min, r->g.max, sd);
		else
			printf(",\"interarrival_s\":null}\n");
		return;
	}
	printf("%s: %" PRIu64 " messages in %.3f s: %.1f msg/s, %.1f bytes/s (%s)\n", inf->name,
	       r->msgs, r->window_s, rate, bps, r->method);
	if (r->g.n)
		printf("inter-arrival: mean %.3f ms, min %.3f ms, max %.3f ms, stddev %.3f ms"
		       " (%" PRIu64 " samples%s)\n",
		       r->g.mean * 1e3, r->g.min * 1e3, r->g.max * 1e3, sd * 1e3, r->g.n,
		       r->resolution_s > 0 ? ", 1 ms resolution" : "");
	else
		printf("inter-arrival: no two messages in the window\n");
	if (r->lost)
		printf("lost: %" PRIu64 " messages (overwritten before hz read them)\n", r->lost);
}

int cli_cmd_hz(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"window", required_argument, NULL, 'w'},
		{"counters", no_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t window_ns = 5000000000ull;
	bool json = false, counters = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":w:cjh", opts, NULL)) != -1) {
		switch (c) {
		case 'w':
			if (cli_parse_seconds(optarg, &window_ns) != 0 || window_ns < 10000000ull)
				return cli_usage_error(cmd, "invalid --window '%s' (seconds, at least 0.01)",
						       optarg);
			break;
		case 'c':
			counters = true;
			break;
		case 'j':
			json = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	const char *name;
	if (cli_name_arg(cmd, argc, argv, "channel", &name) != CLI_OK)
		return CLI_USAGE;
	struct shmkit_segment_info inf;
	int err = shmkit_segment_stat(name, NULL, &inf);
	if (err < 0)
		return cli_open_error(cmd, name, SHMKIT_BACKEND_ANY, err, NULL);
	if (inf.status != 0 && inf.status != -EPERM)
		return cli_open_error(cmd, name, SHMKIT_BACKEND_ANY, inf.status, NULL);
	struct hz_result r = {0};
	switch (inf.kind) {
	case SHMKIT_KIND_PUBSUB:
		err = counters ? -ENOSPC : hz_subscriber(&inf, window_ns, &r);
		if (err == -ENOSPC)
			err = hz_counters(&inf, window_ns, &r);
		break;
	case SHMKIT_KIND_STREAM:
	case SHMKIT_KIND_QUEUE:
		err = hz_counters(&inf, window_ns, &r);
		break;
	default:
		return obs_not_channel(cmd, name, cli_info_trusted(&inf) ? inf.kind : 0);
	}
	if (err)
		return cli_error(cmd, name, err);
	print_result(&inf, &r, json);
	return CLI_OK;
}
