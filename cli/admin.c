/* shmkit CLI — segment administration: ls, stat, rm, gc.
 *
 * Everything here goes through the public discovery API (shmkit_segment_list(),
 * shmkit_segment_stat(), shmkit_segment_remove_exact()); nothing is opened for use. Corrupt
 * and foreign segments are described, never trusted: a field the library could not
 * validate (kind 0 in the info) is shown as unknown, and gc never removes a segment whose
 * creator or attachments it cannot establish, a persistent one, or a foreign one.
 *
 * rm and gc look first and remove after, and remove only what they looked at
 * (docs/design.md, "Lifetimes and removal"): an object recreated in between is left alone.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* The sleep/wake handshake's state (every kind that sleeps: stream, pub/sub, queue).
 * "wake_mode": "membarrier" or "fenced"; "wake_missed": wake-ups found only when a liveness
 * slice ended (0 expected). Read through a read-only mapping; skipped when it fails. */
static void stat_wait_detail(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	if (inf->kind != SHMKIT_KIND_STREAM && inf->kind != SHMKIT_KIND_PUBSUB &&
	    inf->kind != SHMKIT_KIND_QUEUE)
		return;
	struct shmkit_segment_opts o = cli_info_opts(inf, SHMKIT_SEG_RDONLY);
	struct shmkit_segment *seg;
	if (shmkit_segment_open(inf->backend == SHMKIT_BACKEND_SYSV ? NULL : inf->name, &o,
				&seg) < 0)
		return;
	struct shmkit_wait_stats st;
	if (shmkit_segment_wait_stats(seg, &st) == 0) {
		cli_kv_str(kv, "wake_mode", st.fenced ? "fenced" : "membarrier");
		cli_kv_u64(kv, "wake_missed", st.missed);
	}
	shmkit_segment_close(seg);
}

static void stat_kind_detail(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	/* A valid segment that is not ours (-EPERM) is still described: the hooks open it
	 * read-only as an observer with SHMKIT_SEG_FOREIGN_UID and validate what they read. */
	if (inf->status != 0 && inf->status != -EPERM)
		return;
	stat_wait_detail(inf, kv);
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

enum { LS_COLS = 12 };

static const struct {
	const char *title;
	bool right; /* numbers read better right-aligned */
} ls_cols[LS_COLS] = {
	{"NAME", false},  {"BACKEND", false}, {"KEY", true},      {"KIND", false},
	{"LIFETIME", false}, {"SIZE", true},  {"MODE", false},    {"OWNER", false},
	{"PID", true},    {"ALIVE", false},   {"ATTACHED", true}, {"STATUS", false},
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
	const char *life = trusted ? cli_lifetime_word(inf->lifetime) : NULL;
	snprintf(r->cell[4], sizeof r->cell[4], "%s", life ? life : "?");
	if (trusted)
		cli_human_size(r->cell[5], sizeof r->cell[5], inf->data_size);
	else
		snprintf(r->cell[5], sizeof r->cell[5], "?");
	snprintf(r->cell[6], sizeof r->cell[6], "%04" PRIo32, inf->mode);
	cli_user_name(r->cell[7], sizeof r->cell[7], inf->uid);
	if (trusted && inf->creator_pid > 0)
		snprintf(r->cell[8], sizeof r->cell[8], "%" PRId32, inf->creator_pid);
	else
		snprintf(r->cell[8], sizeof r->cell[8], "?");
	int alive = trusted ? inf->creator_alive : -1;
	snprintf(r->cell[9], sizeof r->cell[9], "%s", alive > 0 ? "yes" : alive == 0 ? "no" : "?");
	if (inf->nattach >= 0)
		snprintf(r->cell[10], sizeof r->cell[10], "%" PRId64, inf->nattach);
	else
		snprintf(r->cell[10], sizeof r->cell[10], "?");
	snprintf(r->cell[11], sizeof r->cell[11], "%s", cli_status_word(inf->status));
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
 * --sysv-key, and the command's own switches. */
struct target_args {
	struct cli_target t;
	bool flag;   /* stat --json, rm --verbose */
	bool force;  /* rm --force */
	bool json;   /* rm --json */
	int nnames;
	char **names;
};

/* Parses stat's or rm's command line into *a; the command's own switch is --`flag_name` /
 * -`flag_opt`, and rm also takes -f/--force (`force`). At least a NAME or a --sysv-key is
 * required. Returns -1 when the command goes on, else its exit code (CLI_OK after --help,
 * CLI_USAGE after an error). */
static int target_parse(const struct cli_cmd *cmd, int argc, char **argv, const char *flag_name,
			char flag_opt, bool force, struct target_args *a)
{
	memset(a, 0, sizeof *a);
	struct option opts[] = {
		{flag_name, no_argument, NULL, flag_opt},
		{"backend", required_argument, NULL, 'b'},
		{"sysv-key", required_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"force", no_argument, NULL, 'f'}, /* rm only: cut off below for stat */
		{"json", no_argument, NULL, 'j'},  /* rm only */
		{NULL, 0, NULL, 0},
	};
	char optstring[] = {':', flag_opt, 'b', ':', 'k', ':', 'h', 'f', 'j', '\0'};
	if (!force) {
		opts[4] = (struct option){NULL, 0, NULL, 0};
		optstring[7] = '\0';
	}
	int c;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, optstring, opts, NULL)) != -1) {
		if (c == flag_opt) {
			a->flag = true;
			continue;
		}
		switch (c) {
		case 'f':
			a->force = true;
			break;
		case 'j':
			a->json = true;
			break;
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
	int rc = target_parse(cmd, argc, argv, "json", 'j', false, &a);
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
	if (err < 0 && name && !a.t.have_key)
		return cli_open_error(cmd, name, a.t.backend, err, NULL);
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


/* --- identity-checked removal, shared by rm and gc ------------------------------------------- */

/* Test hook (tests/cli.c): with SHMKIT_TEST_REMOVE_SYNC_FD=N in the environment, rm and gc
 * write one byte to descriptor N once they have looked at everything, and wait for one byte
 * back before they remove anything, so that a test can remove and recreate an object in
 * between, deterministically. Read by the CLI only; the library knows nothing of it. */
static void test_sync_point(void)
{
	const char *env = getenv("SHMKIT_TEST_REMOVE_SYNC_FD");
	int fd;
	if (!env || cli_parse_int(env, 0, 1 << 20, &fd) < 0)
		return;
	char b = 'L';
	if (write(fd, &b, 1) == 1)
		(void)!read(fd, &b, 1);
}

/* Why an object is not ours to remove without --force, or NULL when it is: not a shmkit
 * segment, or not ours by the trust rule (shmkit_segment(3)) — judged from the kernel's
 * identities too, so that another user's damaged segment counts as foreign as well. */
static const char *foreign_reason(const struct shmkit_segment_info *inf)
{
	uint32_t me = (uint32_t)geteuid();
	if (inf->status == -ENOTUNIQ)
		return "not a shmkit segment";
	if (inf->status == -EPERM || inf->uid != me || inf->cuid != me || (inf->mode & 022))
		return "not ours";
	return NULL;
}

/* The system tool that removes an object whatever it is, for messages. */
static const char *system_remover(char *buf, size_t cap, const struct shmkit_segment_info *inf)
{
	if (inf->backend == SHMKIT_BACKEND_SYSV)
		snprintf(buf, cap, "ipcrm -m %" PRId32, inf->sysv_id);
	else
		snprintf(buf, cap, "rm /dev/shm/shmkit.%s", inf->name);
	return buf;
}

/* "NAME", "NAME (key K)" or "key K" for one object in messages. */
static const char *object_label(char *buf, size_t cap, const struct shmkit_segment_info *inf)
{
	return cli_target_label(buf, cap, inf->name[0] ? inf->name : NULL,
				inf->backend == SHMKIT_BACKEND_SYSV ? inf->sysv_key : 0);
}

/* --- rm ---------------------------------------------------------------------------------------- */

/* One object rm will remove, and the operand (index into the names, 0 with --sysv-key alone)
 * that named it. */
struct rm_target {
	struct shmkit_segment_info inf;
	int arg;
};

/* What became of one operand, for --json: "removed", or why not. */
struct rm_outcome {
	const char *status; /* removed, missing, refused, failed, replaced, kept (see shmkit(1)) */
	const char *reason; /* NULL, or why */
	char buf[SHMKIT_NAME_MAX + 128]; /* the reason, copied */
	int removed;        /* segments removed */
};

struct rm_plan {
	struct rm_target *t;
	int n, cap;
	struct shmkit_segment_info *all; /* shmkit_segment_list(), for System V by name */
	int nall;                        /* -1 until listed */
	bool failed;
	struct rm_outcome *out;          /* one per operand */
};

/* Records why operand `arg` is not (entirely) removed; the first reason stays. */
static void rm_outcome(struct rm_plan *p, int arg, const char *status, const char *reason)
{
	struct rm_outcome *o = &p->out[arg];
	if (o->status)
		return;
	o->status = status;
	snprintf(o->buf, sizeof o->buf, "%s", reason);
	o->reason = o->buf;
}

static int plan_add(struct rm_plan *p, const struct shmkit_segment_info *inf, int arg)
{
	if (p->n == p->cap) {
		int cap = p->cap ? 2 * p->cap : 8;
		struct rm_target *t = realloc(p->t, (size_t)cap * sizeof *t);
		if (!t)
			return -ENOMEM;
		p->t = t;
		p->cap = cap;
	}
	p->t[p->n].inf = *inf;
	p->t[p->n].arg = arg;
	p->n++;
	return 0;
}

/* Finds what one operand names; every object found must be removable (ours, or --force).
 * Reports what is wrong and marks the plan failed; returns the objects found. */
static int rm_find(const struct cli_cmd *cmd, const struct target_args *a, int arg,
		   struct rm_plan *p)
{
	const char *name = a->nnames ? a->names[arg] : NULL;
	char label[SHMKIT_NAME_MAX + 32];
	cli_target_label(label, sizeof label, name, a->t.sysv_key);
	int first = p->n, err = 0;
	struct shmkit_segment_info inf;
	if (a->t.have_key) {
		struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV,
						.sysv_key = a->t.sysv_key};
		err = shmkit_segment_stat(NULL, &o, &inf);
		/* With a name, the key must hold that very shmkit segment. */
		if (!err && name && (inf.kind == 0 || strcmp(inf.name, name) != 0))
			err = inf.status == -EACCES ? -EACCES : -ENOTUNIQ;
		if (!err && inf.status == -EACCES)
			err = -EACCES;
		if (!err)
			err = plan_add(p, &inf, arg);
	} else {
		bool any = a->t.backend == SHMKIT_BACKEND_ANY;
		if (any || a->t.backend == SHMKIT_BACKEND_POSIX) {
			struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_POSIX};
			err = shmkit_segment_stat(name, &o, &inf);
			if (err == -ENOENT)
				err = 0;
			else if (!err)
				err = plan_add(p, &inf, arg);
		}
		if (!err && (any || a->t.backend == SHMKIT_BACKEND_SYSV)) {
			/* Every System V shmkit segment of that name (derived or explicit key). */
			if (p->nall < 0) {
				p->nall = shmkit_segment_list(&p->all);
				if (p->nall < 0) {
					err = p->nall;
					p->nall = -1;
				}
			}
			for (int i = 0; !err && i < p->nall; i++)
				if (p->all[i].backend == SHMKIT_BACKEND_SYSV && p->all[i].kind != 0 &&
				    strcmp(p->all[i].name, name) == 0)
					err = plan_add(p, &p->all[i], arg);
			/* None we could read: one at the name's key that we may not read is most
			 * likely it, another user's — "permission denied", not "no such segment". */
			struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV};
			if (!err && p->n == first && shmkit_segment_stat(name, &o, &inf) == 0 &&
			    inf.status == -EACCES)
				err = -EACCES;
		}
		if (!err && p->n == first)
			err = -ENOENT;
	}
	if (err) {
		p->n = first;
		p->failed = true;
		cli_error(cmd, label, err);
		rm_outcome(p, arg, err == -ENOENT ? "missing" : "failed", shmkit_strerror(err));
		return 0;
	}
	for (int i = first; i < p->n && !a->force; i++) {
		const struct shmkit_segment_info *f = &p->t[i].inf;
		const char *why = foreign_reason(f);
		if (!why)
			continue;
		char tool[SHMKIT_NAME_MAX + 32], olabel[SHMKIT_NAME_MAX + 32];
		cli_errorf(cmd, "%s: %s (%s, %s): not removed without --force; or remove it with: %s",
			   object_label(olabel, sizeof olabel, f), why,
			   shmkit_backend_name(f->backend), cli_status_word(f->status),
			   system_remover(tool, sizeof tool, f));
		char reason[SHMKIT_NAME_MAX + 96];
		snprintf(reason, sizeof reason, "%s; use --force or: %s", why, tool);
		rm_outcome(p, arg, "refused", reason);
		p->failed = true;
	}
	return p->n - first;
}

/* rm --json: {"ok": BOOL, "names": [{"name", "sysv_key", "status", "removed", "reason"}]}. */
static void rm_json(const struct target_args *a, const struct rm_plan *p, int nops, int rc)
{
	printf("{\"ok\":%s,\"names\":[", rc == CLI_OK ? "true" : "false");
	for (int i = 0; i < nops; i++) {
		const struct rm_outcome *o = &p->out[i];
		fputs(i ? ",\n{\"name\":" : "\n{\"name\":", stdout);
		if (a->nnames)
			cli_json_string(stdout, a->names[i]);
		else
			fputs("null", stdout);
		if (a->t.have_key)
			printf(",\"sysv_key\":%" PRId32, a->t.sysv_key);
		else
			fputs(",\"sysv_key\":null", stdout);
		fputs(",\"status\":", stdout);
		cli_json_string(stdout, o->status ? o->status : "kept");
		printf(",\"removed\":%d,\"reason\":", o->removed);
		if (o->reason)
			cli_json_string(stdout, o->reason);
		else
			fputs("null", stdout);
		putchar('}');
	}
	puts(nops ? "\n]}" : "]}");
}

int cli_cmd_rm(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct target_args a;
	int rc = target_parse(cmd, argc, argv, "verbose", 'v', true, &a);
	if (rc >= 0)
		return rc;
	if (a.t.have_key && a.nnames > 1)
		return cli_usage_error(cmd, "--sysv-key takes at most one NAME (got %d)", a.nnames);
	/* Check every name before removing anything: a typo must not leave half the job done. */
	for (int i = 0; i < a.nnames; i++)
		if (cli_check_name(cmd, a.names[i]) != CLI_OK)
			return CLI_USAGE;

	/* First every operand, then the removals: one that fails (missing, foreign, not
	 * permitted) removes nothing at all. */
	struct rm_plan p = {.nall = -1};
	int nops = a.nnames ? a.nnames : 1;
	p.out = calloc((size_t)nops, sizeof *p.out);
	if (!p.out)
		return cli_error(cmd, "removing", -ENOMEM);
	for (int i = 0; i < nops; i++)
		rm_find(cmd, &a, i, &p);
	rc = CLI_OK;
	if (p.failed) {
		rc = CLI_ERR;
		for (int i = 0; i < nops; i++)
			rm_outcome(&p, i, "kept", "not removed: another NAME could not be");
		goto out;
	}
	test_sync_point();
	/* Each object only if it is still the one looked at (shmkit_segment_remove_exact()). */
	int *count = calloc((size_t)nops, sizeof *count);
	if (!count) {
		rc = cli_error(cmd, "removing", -ENOMEM);
		goto out;
	}
	for (int i = 0; i < p.n; i++) {
		const struct shmkit_segment_info *f = &p.t[i].inf;
		int err = shmkit_segment_remove_exact(f, a.force ? SHMKIT_SEG_FOREIGN_UID : 0);
		char label[SHMKIT_NAME_MAX + 32];
		object_label(label, sizeof label, f);
		if (err == 0 || err == -ENOENT) {
			count[p.t[i].arg]++; /* gone, as wanted, even if someone beat us to it */
		} else if (err == -ESTALE) {
			rc = cli_errorf(cmd, "%s: replaced by another object since it was checked; "
					     "not removed", label);
			rm_outcome(&p, p.t[i].arg, "replaced",
				   "replaced by another object since it was checked");
		} else {
			rc = cli_error(cmd, label, err);
			rm_outcome(&p, p.t[i].arg, "failed", shmkit_strerror(err));
		}
	}
	for (int i = 0; i < nops; i++) {
		p.out[i].removed = count[i];
		if (!p.out[i].status)
			p.out[i].status = "removed";
	}
	for (int i = 0; i < nops && a.flag && !a.json; i++) {
		char label[SHMKIT_NAME_MAX + 32];
		cli_target_label(label, sizeof label, a.nnames ? a.names[i] : NULL, a.t.sysv_key);
		if (count[i] > 1)
			printf("removed %s (%d segments)\n", label, count[i]);
		else if (count[i] == 1)
			printf("removed %s\n", label);
	}
	free(count);
out:
	if (a.json)
		rm_json(&a, &p, nops, rc);
	free(p.out);
	free(p.t);
	if (p.nall >= 0)
		shmkit_segment_list_free(p.all);
	return rc;
}

/* --- gc ---------------------------------------------------------------------------------------- */

enum gc_action { GC_REMOVE, GC_KEEP, GC_KEEP_QUIET };

/* Decides one segment's fate; writes the reason (without the backend/key prefix). Only an
 * ephemeral (or never published) segment of ours, with a dead creator and a known zero
 * attachment count, is removed: anything unknown keeps. Kept for a reason a human should look at: GC_KEEP
 * (always reported); for an ordinary one: GC_KEEP_QUIET (reported with -v or --dry-run). */
static enum gc_action gc_decide(const struct shmkit_segment_info *inf, char *why, size_t cap)
{
	const char *foreign = foreign_reason(inf);
	if (foreign && inf->status == -ENOTUNIQ) {
		snprintf(why, cap, "foreign: %s", foreign);
		return GC_KEEP;
	}
	if (foreign) {
		snprintf(why, cap, "%s", foreign);
		return GC_KEEP_QUIET; /* another user's business */
	}
	if (!cli_info_trusted(inf) || inf->creator_pid <= 0 || inf->creator_alive < 0) {
		snprintf(why, cap, "creator unknown, %s", cli_status_word(inf->status));
		return GC_KEEP;
	}
	/* Never published (INITIALIZING): nobody can use it, whatever its lifetime, and once
	 * its creator is dead nobody ever will. */
	bool unpublished = inf->status == -EAGAIN;
	if (inf->lifetime != SHMKIT_LIFETIME_EPHEMERAL && !unpublished) {
		snprintf(why, cap, "%s", inf->lifetime == SHMKIT_LIFETIME_PERSISTENT
						 ? "persistent"
						 : "lifetime unknown");
		return GC_KEEP_QUIET;
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
		snprintf(why, cap, "creator %" PRId32 " dead, attached by %" PRId64,
			 inf->creator_pid, inf->nattach);
		return GC_KEEP;
	}
	if (inf->backend != SHMKIT_BACKEND_SYSV && inf->backend != SHMKIT_BACKEND_POSIX) {
		snprintf(why, cap, "creator %" PRId32 " dead, backend has no name",
			 inf->creator_pid);
		return GC_KEEP;
	}
	snprintf(why, cap, "creator %" PRId32 " dead%s", inf->creator_pid,
		 unpublished ? " before publishing it" : "");
	return GC_REMOVE;
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
	cli_kv_str(&kv, "lifetime", cli_lifetime_word(inf->lifetime));
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
	if (!dry)
		test_sync_point();
	int removed = 0, kept = 0, failed = 0;
	bool first = true;
	if (json)
		printf("{\"dry_run\":%s,\"segments\":[", dry ? "true" : "false");
	for (int i = 0; i < n; i++) {
		char why[160], prefix[SHMKIT_NAME_MAX + 64];
		enum gc_action act = gc_decide(&inf[i], why, sizeof why);
		gc_prefix(prefix, sizeof prefix, &inf[i]);
		int err = 0;
		if (act == GC_REMOVE && !dry) {
			/* Only the very object listed: one removed and recreated since is kept. */
			err = shmkit_segment_remove_exact(&inf[i], 0);
			if (err == -ENOENT)
				continue; /* removed by someone else since the listing: gone, as wanted */
			if (err == -ESTALE) {
				snprintf(why, sizeof why, "replaced since it was listed");
				act = GC_KEEP;
				err = 0;
			}
		}
		if (act != GC_REMOVE) {
			kept++;
			if (json)
				gc_json_entry(&first, &inf[i], "kept", why);
			else if (act == GC_KEEP || verbose || dry)
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
		if (err < 0) {
			failed++;
			char label[SHMKIT_NAME_MAX + 32];
			cli_error(cmd, object_label(label, sizeof label, &inf[i]), err);
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
