/* shmkit CLI — what pub and sub moved: the --progress line and the -v / --json summary.
 *
 * Everything here runs in the commands' own process, on their own counters: the channel
 * sees nothing of it. The progress line goes to stderr, so that it never mixes with the
 * data on sub's standard output. On a terminal it is one line rewritten in place (\r, then
 * "erase to the end of the line"); otherwise one line per interval, which a log keeps.
 */
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

#include "cli.h"

void cli_flow_start(struct cli_flow *f)
{
	f->start_ns = f->last_ns = shmkit_now_ns();
	f->next_ns = f->start_ns + f->interval_ns;
	f->tty = isatty(STDERR_FILENO) == 1;
}

int cli_flow_option(const struct cli_cmd *cmd, struct cli_flow *f, bool *quiet, int c,
		    const char *arg)
{
	switch (c) {
	case CLI_OPT_PROGRESS: {
		uint64_t ns = 1000000000ull;
		if (arg && (cli_parse_seconds(arg, &ns) < 0 || ns < 1000000))
			return cli_usage_error(cmd,
					       "invalid --progress interval '%s' (seconds, at least "
					       "0.001, e.g. --progress=0.5)",
					       arg);
		f->interval_ns = ns;
		return CLI_OK;
	}
	case 'v':
		f->verbose = true;
		return CLI_OK;
	case 'j':
		f->json = true;
		return CLI_OK;
	case 'q':
		*quiet = true;
		return CLI_OK;
	default:
		return -1;
	}
}

/* One progress line: totals, then the rate since the previous line. */
static void show(struct cli_flow *f, uint64_t now)
{
	char b1[32], b2[32];
	double dt = now > f->last_ns ? (double)(now - f->last_ns) / 1e9 : 0.0;
	double mps = dt > 0 ? (double)(f->msgs - f->last_msgs) / dt : 0.0;
	double bps = dt > 0 ? (double)(f->bytes - f->last_bytes) / dt : 0.0;
	fprintf(stderr, "%sshmkit: %s: %s: %" PRIu64 " msgs, %s, %.1f s, %.0f msg/s, %s/s",
		f->tty ? "\r" : "", f->cmd->name, f->name, f->msgs,
		cli_human_size(b1, sizeof b1, f->bytes), (double)(now - f->start_ns) / 1e9, mps,
		cli_human_size(b2, sizeof b2, (uint64_t)bps));
	if (f->lost)
		fprintf(stderr, ", lost %" PRIu64, f->lost);
	fputs(f->tty ? "\033[K" : "\n", stderr);
	f->shown = f->tty;
	f->last_ns = now;
	f->last_msgs = f->msgs;
	f->last_bytes = f->bytes;
}

void cli_flow_tick(struct cli_flow *f)
{
	if (!f->interval_ns)
		return;
	uint64_t now = shmkit_now_ns();
	if (now < f->next_ns)
		return;
	show(f, now);
	/* The next line one interval from now: after a long stall, no burst of lines. */
	f->next_ns = now + f->interval_ns;
}

void cli_flow_end(struct cli_flow *f, int rc)
{
	uint64_t now = shmkit_now_ns();
	if (f->interval_ns) {
		show(f, now);
		if (f->shown)
			fputc('\n', stderr);
	}
	double secs = (double)(now - f->start_ns) / 1e9;
	if (f->json) {
		fputs("{\"command\":", stderr);
		cli_json_string(stderr, f->cmd->name);
		fputs(",\"name\":", stderr);
		cli_json_string(stderr, f->name);
		fputs(",\"kind\":", stderr);
		cli_json_string(stderr, f->kind);
		fprintf(stderr,
			",\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":%.6f,"
			"\"lost\":%" PRIu64 ",\"exit\":%d}\n",
			f->msgs, f->bytes, secs, f->lost, rc);
	} else if (f->verbose) {
		fprintf(stderr,
			"shmkit: %s: %s: %" PRIu64 " message%s, %" PRIu64 " bytes in %.3f s, "
			"%" PRIu64 " lost\n",
			f->cmd->name, f->name, f->msgs, f->msgs == 1 ? "" : "s", f->bytes, secs,
			f->lost);
	}
}
