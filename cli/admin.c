/* shmkit CLI — segment administration: ls, stat, rm, gc.
 *
 * Everything here goes through the public discovery API (shmkit_segment_list(),
 * shmkit_segment_stat(), shmkit_segment_remove()); nothing is opened for use. Corrupt and
 * foreign segments are described, never trusted: a field the library could not validate
 * (kind 0 in the info) is shown as unknown, and gc never removes a segment whose creator or
 * attachments it cannot establish.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pubsub_multi.h"

/* --- kind-specific stat detail ------------------------------------------------------------ */

/* One row per kind whose CLI code can say more than the generic fields (see cli.h). Raw
 * segments have nothing to add. Keep the { 0, NULL } terminator last. */
const struct cli_stat_kind_hook cli_stat_kind_hooks[] = {
	{SHMKIT_KIND_STREAM, cli_chan_describe},
	{SHMKIT_KIND_STREAM, cli_bridge_describe},
	{SHMKIT_KIND_TABLE, cli_table_describe},
	{SHMKIT_KIND_PUBSUB, cli_pubsub_describe},
	{SHMKIT_KIND_PUBSUB, cli_bridge_describe},
	{SHMKIT_KIND_QUEUE, cli_queue_describe},
	{0, NULL},
};

static void stat_kind_detail(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	/* A valid segment that is not ours (-EPERM) is still described: the hooks open it
	 * read-only as an observer with SHMKIT_SEG_FOREIGN_UID and validate what they read. */
	if (inf->status != 0 && inf->status != -EPERM)
		return;
	for (const struct cli_stat_kind_hook *h = cli_stat_kind_hooks; h->kind; h++)
		if (h->kind == inf->kind && h->describe)
			h->describe(inf, kv);
}

/* --- helpers ------------------------------------------------------------------------------- */

/* Lists segments sorted by name, then backend, then key: stable output for humans and
 * diffs. Returns the count or a negative errno. */
static int cmp_info(const void *a, const void *b)
{
	const struct shmkit_segment_info *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	if (x->backend != y->backend)
		return x->backend < y->backend ? -1 : 1;
	if (x->sysv_key != y->sysv_key)
		return x->sysv_key < y->sysv_key ? -1 : 1;
	return x->sysv_id < y->sysv_id ? -1 : x->sysv_id > y->sysv_id;
}

static int list_sorted(struct shmkit_segment_info **infop)
{
	int n = shmkit_segment_list(infop);
	if (n > 1)
		qsort(*infop, (size_t)n, sizeof **infop, cmp_info);
	return n;
}

static const char *display_name(const struct shmkit_segment_info *inf)
{
	return inf->name[0] ? inf->name : "-";
}

/* --- ls -------------------------------------------------------------------------------------- */

enum { LS_COLS = 11 };

static const struct {
	const char *title;
	bool right; /* numbers read better right-aligned */
} ls_cols[LS_COLS] = {
	{"NAME", false},  {"BACKEND", false}, {"KEY", true},   {"KIND", false},
	{"SIZE", true},   {"MODE", false},    {"OWNER", false}, {"PID", true},
	{"ALIVE", false}, {"ATTACHED", true}, {"STATUS", false},
};

struct ls_row {
	char cell[LS_COLS][SHMKIT_NAME_MAX + 1];
};

static void ls_fill(struct ls_row *r, const struct shmkit_segment_info *inf)
{
	bool trusted = cli_info_trusted(inf);
	snprintf(r->cell[0], sizeof r->cell[0], "%s", display_name(inf));
	snprintf(r->cell[1], sizeof r->cell[1], "%s", shmkit_backend_name(inf->backend));
	if (inf->backend == SHMKIT_BACKEND_SYSV)
		snprintf(r->cell[2], sizeof r->cell[2], "%" PRId32, inf->sysv_key);
	else
		snprintf(r->cell[2], sizeof r->cell[2], "-");
	snprintf(r->cell[3], sizeof r->cell[3], "%s", trusted ? shmkit_kind_name(inf->kind) : "?");
	if (trusted)
		cli_human_size(r->cell[4], sizeof r->cell[4], inf->data_size);
	else
		snprintf(r->cell[4], sizeof r->cell[4], "?");
	snprintf(r->cell[5], sizeof r->cell[5], "%04" PRIo32, inf->mode);
	cli_user_name(r->cell[6], sizeof r->cell[6], inf->uid);
	if (trusted && inf->creator_pid > 0)
		snprintf(r->cell[7], sizeof r->cell[7], "%" PRId32, inf->creator_pid);
	else
		snprintf(r->cell[7], sizeof r->cell[7], "?");
	int alive = trusted ? inf->creator_alive : -1;
	snprintf(r->cell[8], sizeof r->cell[8], "%s", alive > 0 ? "yes" : alive == 0 ? "no" : "?");
	if (inf->nattach >= 0)
		snprintf(r->cell[9], sizeof r->cell[9], "%" PRId64, inf->nattach);
	else
		snprintf(r->cell[9], sizeof r->cell[9], "?");
	snprintf(r->cell[10], sizeof r->cell[10], "%s", cli_status_word(inf->status));
}

static void ls_print_row(const char *const cells[LS_COLS], const size_t width[LS_COLS])
{
	for (int c = 0; c < LS_COLS; c++) {
		const char *sep = c + 1 < LS_COLS ? "  " : "\n";
		if (c + 1 == LS_COLS)
			printf("%s%s", cells[c], sep); /* no trailing blanks */
		else if (ls_cols[c].right)
			printf("%*s%s", (int)width[c], cells[c], sep);
		else
			printf("%-*s%s", (int)width[c], cells[c], sep);
	}
}

static int ls_table(const struct cli_cmd *cmd, const struct shmkit_segment_info *inf, int n)
{
	struct ls_row *rows = calloc(n ? (size_t)n : 1, sizeof *rows);
	if (!rows)
		return cli_error(cmd, "listing segments", -ENOMEM);
	size_t width[LS_COLS];
	const char *cells[LS_COLS];
	for (int c = 0; c < LS_COLS; c++)
		width[c] = strlen(ls_cols[c].title);
	for (int i = 0; i < n; i++) {
		ls_fill(&rows[i], &inf[i]);
		for (int c = 0; c < LS_COLS; c++)
			if (strlen(rows[i].cell[c]) > width[c])
				width[c] = strlen(rows[i].cell[c]);
	}
	for (int c = 0; c < LS_COLS; c++)
		cells[c] = ls_cols[c].title;
	ls_print_row(cells, width);
	for (int i = 0; i < n; i++) {
		for (int c = 0; c < LS_COLS; c++)
			cells[c] = rows[i].cell[c];
		ls_print_row(cells, width);
	}
	free(rows);
	return CLI_OK;
}

static void ls_json(const struct shmkit_segment_info *inf, int n)
{
	if (n == 0) {
		puts("[]");
		return;
	}
	puts("[");
	for (int i = 0; i < n; i++) {
		struct cli_kv kv;
		cli_kv_begin(&kv, stdout, true);
		cli_info_kv(&kv, &inf[i]);
		cli_kv_end(&kv);
		puts(i + 1 < n ? "," : "");
	}
	puts("]");
}

int cli_cmd_ls(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool json = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

	struct shmkit_segment_info *inf;
	int n = list_sorted(&inf);
	if (n < 0)
		return cli_error(cmd, "listing segments", n);
	int rc = CLI_OK;
	if (json)
		ls_json(inf, n);
	else
		rc = ls_table(cmd, inf, n);
	shmkit_segment_list_free(inf);
	return rc;
}

/* --- stat ------------------------------------------------------------------------------------ */

/* What stat and rm are given: the segment(s), by NAME operands and/or --backend and
 * --sysv-key, and the command's own switch. */
struct target_args {
	struct cli_target t;
	bool flag;   /* stat --json, rm --verbose */
	int nnames;
	char **names;
};

/* Parses stat's or rm's command line into *a; the command's own switch is --`flag_name` /
 * -`flag_opt`. At least a NAME or a --sysv-key is required. Returns -1 when the command goes
 * on, else its exit code (CLI_OK after --help, CLI_USAGE after an error). */
static int target_parse(const struct cli_cmd *cmd, int argc, char **argv, const char *flag_name,
			char flag_opt, struct target_args *a)
{
	memset(a, 0, sizeof *a);
	const struct option opts[] = {
		{flag_name, no_argument, NULL, flag_opt},
		{"backend", required_argument, NULL, 'b'},
		{"sysv-key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char optstring[] = {':', flag_opt, 'b', ':', 'k', ':', 'h', '\0'};
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		if (c == flag_opt) {
			a->flag = true;
			continue;
		}
		switch (c) {
		case 'b':
		case 'k':
			if (cli_target_option(cmd, &a->t, c, optarg) != CLI_OK)
				return CLI_USAGE;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (cli_target_finish(cmd, &a->t) != CLI_OK)
		return CLI_USAGE;
	a->nnames = argc - optind;
	a->names = argv + optind;
	if (a->nnames == 0 && !a->t.have_key)
		return cli_usage_error(cmd, "missing segment NAME (or --sysv-key KEY)");
	return -1;
}

int cli_cmd_stat(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct target_args a;
	int rc = target_parse(cmd, argc, argv, "json", 'j', &a);
	if (rc >= 0)
		return rc;
	if (a.nnames > 1)
		return cli_usage_error(cmd, "unexpected argument '%s'", a.names[1]);
	const char *name = a.nnames ? a.names[0] : NULL;
	if (name && cli_check_name(cmd, name) != CLI_OK)
		return CLI_USAGE;

	struct shmkit_segment_opts o = {.backend = a.t.backend, .sysv_key = a.t.sysv_key};
	struct shmkit_segment_info inf;
	int err = shmkit_segment_stat(name, &o, &inf);
	if (err < 0) {
		char label[SHMKIT_NAME_MAX + 32];
		cli_target_label(label, sizeof label, name, a.t.sysv_key);
		return cli_error(cmd, label, err);
	}
	struct cli_kv kv;
	cli_kv_begin(&kv, stdout, a.flag);
	cli_info_kv(&kv, &inf);
	stat_kind_detail(&inf, &kv);
	cli_kv_end(&kv);
	if (a.flag)
		putchar('\n');
	return CLI_OK;
}

/* --- rm ---------------------------------------------------------------------------------------- */

int cli_cmd_rm(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct target_args a;
	int rc = target_parse(cmd, argc, argv, "verbose", 'v', &a);
	if (rc >= 0)
		return rc;
	if (a.t.have_key && a.nnames > 1)
		return cli_usage_error(cmd, "--sysv-key takes at most one NAME (got %d)", a.nnames);
	/* Check every name before removing anything: a typo must not leave half the job done. */
	for (int i = 0; i < a.nnames; i++)
		if (cli_check_name(cmd, a.names[i]) != CLI_OK)
			return CLI_USAGE;

	struct shmkit_segment_opts o = {.backend = a.t.backend, .sysv_key = a.t.sysv_key};
	rc = CLI_OK;
	/* With --sysv-key alone, one pass with name NULL: the segment at that key. */
	for (int i = 0; i < (a.nnames ? a.nnames : 1); i++) {
		const char *name = a.nnames ? a.names[i] : NULL;
		char label[SHMKIT_NAME_MAX + 32];
		cli_target_label(label, sizeof label, name, a.t.sysv_key);
		int n = shmkit_segment_remove(name, &o);
		if (n < 0) {
			rc = cli_error(cmd, label, n);
		} else if (a.flag) {
			if (n > 1)
				printf("removed %s (%d segments)\n", label, n);
			else
				printf("removed %s\n", label);
		}
	}
	return rc;
}

/* --- gc ---------------------------------------------------------------------------------------- */

enum gc_action { GC_REMOVE, GC_KEEP, GC_KEEP_QUIET };

/* Decides one segment's fate; writes the reason (without the backend/key prefix). Only a
 * dead creator plus a known zero attachment count removes: anything unknown keeps. */
static enum gc_action gc_decide(const struct shmkit_segment_info *inf, char *why, size_t cap)
{
	bool trusted = cli_info_trusted(inf);
	if (!trusted || inf->creator_pid <= 0 || inf->creator_alive < 0) {
		snprintf(why, cap, "creator unknown, %s", cli_status_word(inf->status));
		return GC_KEEP;
	}
	if (inf->creator_alive > 0) {
		snprintf(why, cap, "creator %" PRId32 " alive", inf->creator_pid);
		return GC_KEEP_QUIET;
	}
	if (inf->nattach < 0) {
		snprintf(why, cap, "creator %" PRId32 " dead, attachments unknown", inf->creator_pid);
		return GC_KEEP;
	}
	if (inf->nattach > 0) {
		snprintf(why, cap, "creator %" PRId32 " dead, %" PRId64 " attached", inf->creator_pid,
			 inf->nattach);
		return GC_KEEP;
	}
	if (inf->backend == SHMKIT_BACKEND_SYSV && inf->sysv_key == 0) {
		snprintf(why, cap, "creator %" PRId32 " dead, but no System V key to remove it by",
			 inf->creator_pid);
		return GC_KEEP;
	}
	if (inf->backend != SHMKIT_BACKEND_SYSV && inf->backend != SHMKIT_BACKEND_POSIX) {
		snprintf(why, cap, "creator %" PRId32 " dead, backend has no name",
			 inf->creator_pid);
		return GC_KEEP;
	}
	snprintf(why, cap, "creator %" PRId32 " dead", inf->creator_pid);
	return GC_REMOVE;
}

/* Removes exactly the segment described: POSIX by name, System V by its key — a name may be
 * held by two System V segments (derived and explicit key), and only this one is garbage. */
static int gc_remove(const struct shmkit_segment_info *inf)
{
	struct shmkit_segment_opts o = cli_info_opts(inf, 0);
	return shmkit_segment_remove(inf->backend == SHMKIT_BACKEND_SYSV ? NULL : inf->name, &o);
}

/* "NAME (backend, key K, " — the common start of a report line. */
static void gc_prefix(char *buf, size_t cap, const struct shmkit_segment_info *inf)
{
	if (inf->backend == SHMKIT_BACKEND_SYSV)
		snprintf(buf, cap, "%s (%s, key %" PRId32 ", ", display_name(inf),
			 shmkit_backend_name(inf->backend), inf->sysv_key);
	else
		snprintf(buf, cap, "%s (%s, ", display_name(inf), shmkit_backend_name(inf->backend));
}

static void gc_json_entry(bool *first, const struct shmkit_segment_info *inf, const char *action,
			  const char *reason)
{
	struct cli_kv kv;
	fputs(*first ? "\n" : ",\n", stdout);
	*first = false;
	cli_kv_begin(&kv, stdout, true);
	cli_kv_str(&kv, "name", inf->name);
	cli_kv_str(&kv, "backend", shmkit_backend_name(inf->backend));
	if (inf->backend == SHMKIT_BACKEND_SYSV)
		cli_kv_i64(&kv, "sysv_key", inf->sysv_key);
	else
		cli_kv_null(&kv, "sysv_key");
	if (cli_info_trusted(inf) && inf->creator_pid > 0)
		cli_kv_i64(&kv, "creator_pid", inf->creator_pid);
	else
		cli_kv_null(&kv, "creator_pid");
	cli_kv_str(&kv, "status", cli_status_word(inf->status));
	cli_kv_str(&kv, "action", action);
	cli_kv_str(&kv, "reason", reason);
	cli_kv_end(&kv);
}

int cli_cmd_gc(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{"dry-run", no_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	bool dry = false, json = false, verbose = false;
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":njvh", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			dry = true;
			break;
		case 'j':
			json = true;
			break;
		case 'v':
			verbose = true;
			break;
		default: /* -h, --help and errors */
			return cli_default_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

	struct shmkit_segment_info *inf;
	int n = list_sorted(&inf);
	if (n < 0)
		return cli_error(cmd, "listing segments", n);
	int removed = 0, kept = 0, failed = 0;
	bool first = true;
	if (json)
		printf("{\"dry_run\":%s,\"segments\":[", dry ? "true" : "false");
	for (int i = 0; i < n; i++) {
		char why[128], prefix[SHMKIT_NAME_MAX + 64];
		enum gc_action act = gc_decide(&inf[i], why, sizeof why);
		gc_prefix(prefix, sizeof prefix, &inf[i]);
		if (act != GC_REMOVE) {
			kept++;
			if (json)
				gc_json_entry(&first, &inf[i], "kept", why);
			else if (act == GC_KEEP || verbose)
				printf("kept %s%s)\n", prefix, why);
			continue;
		}
		if (dry) {
			removed++;
			if (json)
				gc_json_entry(&first, &inf[i], "would-remove", why);
			else
				printf("would remove %s%s)\n", prefix, why);
			continue;
		}
		int err = gc_remove(&inf[i]);
		if (err == -ENOENT) {
			/* Removed by someone else between the listing and now: gone, as wanted. */
			continue;
		}
		if (err < 0) {
			failed++;
			char label[SHMKIT_NAME_MAX + 32];
			cli_target_label(label, sizeof label, inf[i].name[0] ? inf[i].name : NULL,
					 inf[i].backend == SHMKIT_BACKEND_SYSV ? inf[i].sysv_key : 0);
			cli_error(cmd, label, err);
			if (json) {
				char msg[256];
				snprintf(msg, sizeof msg, "%s: %s", why, shmkit_strerror(err));
				gc_json_entry(&first, &inf[i], "failed", msg);
			}
			continue;
		}
		removed++;
		if (json)
			gc_json_entry(&first, &inf[i], "removed", why);
		else
			printf("removed %s%s)\n", prefix, why);
	}
	shmkit_segment_list_free(inf);
	if (json) {
		printf("%s],\"%s\":%d,\"kept\":%d,\"failed\":%d}\n", first ? "" : "\n",
		       dry ? "would_remove" : "removed", removed, kept, failed);
	} else if (dry) {
		printf("gc: %d would be removed, %d kept\n", removed, kept);
	} else if (failed) {
		printf("gc: %d removed, %d kept, %d failed\n", removed, kept, failed);
	} else {
		printf("gc: %d removed, %d kept\n", removed, kept);
	}
	return failed ? CLI_ERR : CLI_OK;
}
