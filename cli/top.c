/* shmkit CLI — `shmkit top`: a live view of every shmkit object.
 *
 * Each refresh takes a snapshot of every object's counters (cli/observe.c: opened as an
 * observer, read, closed — never attached as a party) and prints the difference with the
 * previous one as rates. On a terminal, and when the tool was built with ncurses, the view
 * is full-screen and keys change it (q quits, r/n sort by rate/name); otherwise the same
 * lines are printed again after each interval, and `--once --json` prints one JSON document
 * for scripts. The cost to the channels watched is a few cache-line reads per object and
 * interval (see docs/performance.md for the measurement).
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef SHMKIT_HAVE_CURSES
#include <curses.h>
#endif

#include "cli.h"
#include "observe.h"

const char cli_usage_top[] =
	"Usage: shmkit top [--interval SECONDS] [--sort rate|name] [--filter PATTERN]\n"
	"                  [--once] [--json] [--count N] [--plain]\n"
	"\n"
	"Shows every shmkit object with its rates over the last interval: NAME KIND BACKEND\n"
	"LIFETIME SIZE FILL% MSG/S BYTES/S SLEEP/S WAKE/S and the attached parties (pid and\n"
	"liveness), with one line per pub/sub subscriber (lag and lost messages). Objects are\n"
	"read as an observer: top never attaches as a producer or consumer and takes no\n"
	"message.\n"
	"On a terminal the view is full-screen (keys: q quit, r sort by rate, n sort by name);\n"
	"otherwise the table is printed again after every interval.\n"
	"\n"
	"Options:\n"
	"  -i, --interval SECONDS  time between refreshes (default 1, at least 0.01)\n"
	"  -s, --sort KEY          rate (messages per second, the default) or name\n"
	"  -f, --filter PATTERN    only objects whose name matches the shell PATTERN\n"
	"  -1, --once              measure one interval, print once and exit\n"
	"  -j, --json              print JSON (one document per refresh; see shmkit(1))\n"
	"  -c, --count N           exit after N refreshes\n"
	"  -p, --plain             print text even on a terminal\n"
	"  -h, --help              show this help\n";

enum sort_key { SORT_RATE, SORT_NAME };

struct top_opts {
	uint64_t interval_ns;
	enum sort_key sort;
	const char *filter;
	bool once, json, plain;
	uint64_t count; /* 0 = forever */
};

/* One object as shown: its counters now and its rates since the previous snapshot. */
struct row {
	const struct obs_obj *o;
	double msg_s, byte_s, sleep_s, wake_s;
};

static int cmp_name(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return strcmp(x->o->info.name, y->o->info.name);
}

static int cmp_rate(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	if (x->msg_s != y->msg_s)
		return x->msg_s < y->msg_s ? 1 : -1;
	if (x->byte_s != y->byte_s)
		return x->byte_s < y->byte_s ? 1 : -1;
	return cmp_name(a, b);
}

/* The rows of `cur`, filtered and sorted, with rates against `prev`. Returns the count. */
static int make_rows(const struct top_opts *t, const struct obs_snap *prev,
		     const struct obs_snap *cur, struct row *rows)
{
	int n = 0;
	uint64_t dt = cur->t_ns - prev->t_ns;
	for (int i = 0; i < cur->n; i++) {
		const struct obs_obj *o = &cur->obj[i];
		if (t->filter && fnmatch(t->filter, o->info.name, 0) != 0)
			continue;
		struct row *r = &rows[n++];
		*r = (struct row){.o = o};
		const struct obs_obj *p = obs_find(prev, o);
		if (!p || !o->counted || !p->counted)
			continue;
		r->msg_s = obs_rate(p->msgs, o->msgs, dt);
		r->byte_s = obs_rate(p->bytes, o->bytes, dt);
		r->sleep_s = obs_rate(p->sleeps, o->sleeps, dt);
		r->wake_s = obs_rate(p->wakes, o->wakes, dt);
	}
	qsort(rows, (size_t)n, sizeof *rows, t->sort == SORT_NAME ? cmp_name : cmp_rate);
	return n;
}

/* --- text ------------------------------------------------------------------------------- */

/* A rate with a k/M/G suffix, 6 characters at most. */
static const char *rate_str(char *buf, size_t cap, double v, bool counted)
{
	if (!counted)
		snprintf(buf, cap, "-");
	else if (v < 10000)
		snprintf(buf, cap, "%.0f", v);
	else if (v < 10e6)
		snprintf(buf, cap, "%.1fk", v / 1e3);
	else if (v < 10e9)
		snprintf(buf, cap, "%.1fM", v / 1e6);
	else
		snprintf(buf, cap, "%.1fG", v / 1e9);
	return buf;
}

static const char *alive_word(int32_t alive)
{
	return alive > 0 ? "alive" : alive == 0 ? "dead" : "?";
}

/* Emits one line of output: to stdout, or to the curses screen. */
typedef void (*emit_fn)(void *ctx, const char *line);

/* Drops the blanks an empty last column leaves. */
static void trim(char *line)
{
	size_t n = strlen(line);
	while (n && line[n - 1] == ' ')
		line[--n] = '\0';
}

static void emit_rows(const struct top_opts *t, const struct row *rows, int n, emit_fn emit,
		      void *ctx)
{
	char line[512], hdr[160], tbuf[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(hdr, sizeof hdr, "shmkit top - %s - %d object%s - interval %.2fs - sorted by %s",
		 tbuf, n, n == 1 ? "" : "s", (double)t->interval_ns / 1e9,
		 t->sort == SORT_NAME ? "name" : "rate");
	emit(ctx, hdr);
	snprintf(line, sizeof line, "%-24s %-6s %-7s %-10s %6s %6s %8s %8s %7s %7s  %s", "NAME",
		 "KIND", "BACKEND", "LIFETIME", "SIZE", "FILL%", "MSG/S", "BYTES/S", "SLEEP/S", "WAKE/S", "PARTIES");
	emit(ctx, line);
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		const struct obs_obj *o = r->o;
		bool trusted = cli_info_trusted(&o->info);
		char size[16], fill[16], m[16], b[16], s[16], w[16], parties[256];
		if (trusted)
			cli_human_size(size, sizeof size, o->info.data_size);
		else
			snprintf(size, sizeof size, "?");
		if (o->counted && o->fill_whole)
			snprintf(fill, sizeof fill, "%.1f", 100.0 * (double)o->fill / (double)o->fill_whole);
		else
			snprintf(fill, sizeof fill, "-");
		size_t off = 0;
		parties[0] = '\0';
		if (o->err)
			snprintf(parties, sizeof parties, "(%s)", shmkit_strerror(o->err));
		else if (o->info.status != 0 && o->info.status != -EPERM)
			snprintf(parties, sizeof parties, "(%s)", cli_status_word(o->info.status));
		for (int k = 0; k < o->nparties && off < sizeof parties; k++) {
			const struct obs_party *p = &o->parties[k];
			if (p->slot >= 0)
				continue; /* subscribers get their own lines */
			off += (size_t)snprintf(parties + off, sizeof parties - off, "%s%s %" PRId32 " %s",
						off ? ", " : "", p->role, p->pid, alive_word(p->alive));
		}
		const char *life = trusted ? cli_lifetime_word(o->info.lifetime) : NULL;
		snprintf(line, sizeof line, "%-24s %-6s %-7s %-10s %6s %6s %8s %8s %7s %7s  %s",
			 o->info.name[0] ? o->info.name : "-",
			 trusted ? shmkit_kind_name(o->info.kind) : "?",
			 shmkit_backend_name(o->info.backend), life ? life : "?", size, fill,
			 rate_str(m, sizeof m, r->msg_s, o->counted),
			 rate_str(b, sizeof b, r->byte_s, o->counted),
			 rate_str(s, sizeof s, r->sleep_s, o->counted),
			 rate_str(w, sizeof w, r->wake_s, o->counted), parties);
		trim(line);
		emit(ctx, line);
		for (int k = 0; k < o->nparties; k++) {
			const struct obs_party *p = &o->parties[k];
			if (p->slot < 0)
				continue;
			char lag[32];
			if (p->has_lag)
				snprintf(lag, sizeof lag, "%" PRIu64, p->lag);
			else
				snprintf(lag, sizeof lag, "joining");
			snprintf(line, sizeof line,
				 "  subscriber %" PRId32 ": pid %" PRId32 " %s, lag %s, lost %" PRIu64
				 ", received %" PRIu64,
				 p->slot, p->pid, alive_word(p->alive), lag, p->lost, p->msgs);
			emit(ctx, line);
		}
	}
}

static void emit_stdout(void *ctx, const char *line)
{
	(void)ctx;
	puts(line);
}

/* --- JSON ------------------------------------------------------------------------------- */

static void json_alive(const char *key, int32_t alive)
{
	printf(",\"%s\":%s", key, alive > 0 ? "true" : alive == 0 ? "false" : "null");
}

/* A JSON string, or null for NULL. */
static void json_str(const char *s)
{
	if (s)
		cli_json_string(stdout, s);
	else
		fputs("null", stdout);
}

static void print_json(const struct top_opts *t, const struct row *rows, int n)
{
	printf("{\"interval_s\":%.3f,\"objects\":[", (double)t->interval_ns / 1e9);
	for (int i = 0; i < n; i++) {
		const struct row *r = &rows[i];
		const struct obs_obj *o = r->o;
		bool trusted = cli_info_trusted(&o->info);
		printf("%s\n{\"name\":", i ? "," : "");
		cli_json_string(stdout, o->info.name);
		printf(",\"kind\":");
		json_str(trusted ? shmkit_kind_name(o->info.kind) : NULL);
		printf(",\"backend\":\"%s\"", shmkit_backend_name(o->info.backend));
		if (o->info.backend == SHMKIT_BACKEND_SYSV)
			printf(",\"sysv_key\":%" PRId32, o->info.sysv_key);
		else
			printf(",\"sysv_key\":null");
		printf(",\"lifetime\":");
		json_str(trusted ? cli_lifetime_word(o->info.lifetime) : NULL);
		printf(",\"size\":%" PRIu64 ",\"status\":\"%s\"", o->info.data_size,
		       cli_status_word(o->info.status));
		printf(",\"error\":");
		json_str(o->err ? shmkit_strerror(o->err) : NULL);
		if (o->counted) {
			printf(",\"fill\":%" PRIu64 ",\"fill_of\":%" PRIu64 ",\"fill_percent\":%.1f",
			       o->fill, o->fill_whole,
			       o->fill_whole ? 100.0 * (double)o->fill / (double)o->fill_whole : 0.0);
			printf(",\"msgs\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"sleeps\":%" PRIu64
			       ",\"wakes\":%" PRIu64 ",\"lost\":%" PRIu64,
			       o->msgs, o->bytes, o->sleeps, o->wakes, o->lost);
			printf(",\"msgs_per_s\":%.1f,\"bytes_per_s\":%.1f,\"sleeps_per_s\":%.1f"
			       ",\"wakes_per_s\":%.1f",
			       r->msg_s, r->byte_s, r->sleep_s, r->wake_s);
		}
		printf(",\"parties\":[");
		for (int k = 0; k < o->nparties; k++) {
			const struct obs_party *p = &o->parties[k];
			printf("%s{\"role\":\"%s\",\"pid\":%" PRId32, k ? "," : "", p->role, p->pid);
			json_alive("alive", p->alive);
			if (p->slot >= 0) {
				printf(",\"slot\":%" PRId32, p->slot);
				if (p->has_lag)
					printf(",\"lag\":%" PRIu64, p->lag);
				else
					printf(",\"lag\":null");
				printf(",\"lost\":%" PRIu64 ",\"received\":%" PRIu64, p->lost, p->msgs);
			}
			putchar('}');
		}
		printf("]}");
	}
	printf("%s]}\n", n ? "\n" : "");
}

/* --- the loops ------------------------------------------------------------------------------ */

/* Takes the next snapshot into *cur and the rows against *prev. */
static int next_rows(const struct cli_cmd *cmd, const struct top_opts *t, struct obs_snap *prev,
		   struct obs_snap *cur, struct row **rows, int *nrows)
{
	int err = obs_take(cur);
	if (err < 0)
		return cli_error(cmd, "listing segments", err);
	free(*rows);
	*rows = calloc(cur->n ? (size_t)cur->n : 1, sizeof **rows);
	if (!*rows)
		return cli_error(cmd, "top", -ENOMEM);
	*nrows = make_rows(t, prev, cur, *rows);
	return CLI_OK;
}

static int run_plain(const struct cli_cmd *cmd, const struct top_opts *t)
{
	struct obs_snap prev, cur;
	struct row *rows = NULL;
	int nrows = 0, rc = CLI_OK;
	int err = obs_take(&prev);
	if (err < 0)
		return cli_error(cmd, "listing segments", err);
	for (uint64_t iter = 0; !obs_stop; iter++) {
		obs_nap(t->interval_ns);
		if (obs_stop)
			break;
		rc = next_rows(cmd, t, &prev, &cur, &rows, &nrows);
		if (rc != CLI_OK)
			break;
		if (t->json)
			print_json(t, rows, nrows);
		else
			emit_rows(t, rows, nrows, emit_stdout, NULL);
		if (!t->json && !t->once)
			putchar('\n');
		/* A closed pipe (top | head) ends the loop instead of spinning on EPIPE. */
		if (fflush(stdout) != 0 || ferror(stdout))
			break;
		obs_free(&prev);
		prev = cur;
		if (t->once || (t->count && iter + 1 >= t->count))
			break;
	}
	obs_free(&prev);
	free(rows);
	return rc;
}

#ifdef SHMKIT_HAVE_CURSES
struct screen {
	int y;
};

static void emit_curses(void *ctx, const char *line)
{
	struct screen *s = ctx;
	if (s->y >= LINES)
		return;
	mvaddnstr(s->y, 0, line, COLS);
	s->y++;
}

static int run_curses(const struct cli_cmd *cmd, struct top_opts *t)
{
	struct obs_snap prev, cur;
	struct row *rows = NULL;
	int nrows = 0, rc = CLI_OK;
	int err = obs_take(&prev);
	if (err < 0)
		return cli_error(cmd, "listing segments", err);
	if (!initscr()) {
		obs_free(&prev);
		return cli_errorf(cmd, "cannot initialize the terminal");
	}
	cbreak();
	noecho();
	curs_set(0);
	keypad(stdscr, TRUE);
	uint64_t next = prev.t_ns + t->interval_ns;
	bool first = true;
	for (uint64_t iter = 0; !obs_stop;) {
		uint64_t now = shmkit_now_ns();
		if (now >= next || first) {
			/* The first screen comes at once (rates 0 until an interval has passed). */
			if (!first) {
				rc = next_rows(cmd, t, &prev, &cur, &rows, &nrows);
				if (rc != CLI_OK)
					break;
				obs_free(&prev);
				prev = cur;
				next = prev.t_ns + t->interval_ns;
				iter++;
			} else {
				rows = calloc(prev.n ? (size_t)prev.n : 1, sizeof *rows);
				if (!rows) {
					rc = cli_error(cmd, "top", -ENOMEM);
					break;
				}
				nrows = make_rows(t, &prev, &prev, rows);
			}
			first = false;
			erase();
			struct screen s = {0};
			emit_rows(t, rows, nrows, emit_curses, &s);
			if (s.y + 1 < LINES)
				mvaddnstr(LINES - 1, 0, "q quit  r sort by rate  n sort by name", COLS);
			refresh();
			if (t->count && iter >= t->count)
				break;
			now = shmkit_now_ns();
		}
		uint64_t wait_ms = next > now ? (next - now) / 1000000 : 0;
		timeout((int)(wait_ms > 1000 ? 1000 : wait_ms));
		int ch = getch();
		if (ch == 'q' || ch == 'Q')
			break;
		if (ch == 'r' || ch == 'n') {
			t->sort = ch == 'n' ? SORT_NAME : SORT_RATE;
			qsort(rows, (size_t)nrows, sizeof *rows, t->sort == SORT_NAME ? cmp_name : cmp_rate);
			erase();
			struct screen s = {0};
			emit_rows(t, rows, nrows, emit_curses, &s);
			refresh();
		}
	}
	endwin();
	obs_free(&prev);
	free(rows);
	return rc;
}
#endif

int cli_cmd_top(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"interval", required_argument, NULL, 'i'},
		{"sort", required_argument, NULL, 's'},
		{"filter", required_argument, NULL, 'f'},
		{"once", no_argument, NULL, '1'},
		{"json", no_argument, NULL, 'j'},
		{"count", required_argument, NULL, 'c'},
		{"plain", no_argument, NULL, 'p'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct top_opts t = {.interval_ns = 1000000000ull, .sort = SORT_RATE};
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":i:s:f:1jc:ph", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (cli_parse_seconds(optarg, &t.interval_ns) != 0 || t.interval_ns < 10000000ull)
				return cli_usage_error(cmd, "invalid --interval '%s' (seconds, at least 0.01)",
						       optarg);
			break;
		case 's':
			if (strcmp(optarg, "rate") == 0)
				t.sort = SORT_RATE;
			else if (strcmp(optarg, "name") == 0)
				t.sort = SORT_NAME;
			else
				return cli_usage_error(cmd, "invalid --sort '%s' (rate or name)", optarg);
			break;
		case 'f':
			t.filter = optarg;
			break;
		case '1':
			t.once = true;
			break;
		case 'j':
			t.json = true;
			break;
		case 'c':
			if (cli_parse_u64(optarg, 10, UINT32_MAX, &t.count) != 0 || t.count == 0)
				return cli_usage_error(cmd, "invalid --count '%s' (1..4294967295)", optarg);
			break;
		case 'p':
			t.plain = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	obs_catch_signals();
#ifdef SHMKIT_HAVE_CURSES
	if (!t.plain && !t.json && !t.once && isatty(STDOUT_FILENO))
		return run_curses(cmd, &t);
#endif
	return run_plain(cmd, &t);
}
