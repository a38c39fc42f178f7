/* shmkit CLI — `shmkit table`: create and use shared lookup tables, and the table detail
 * that `shmkit stat` shows.
 *
 * Keys and values are byte strings: on the command line they are the argument's bytes,
 * `put NAME KEY -` reads the value from stdin (binary-safe), `get --raw` writes it back
 * byte for byte, `dump` escapes what is not printable.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cli_usage_table[] =
	"Usage: shmkit table create NAME [--capacity N] [--key-max K] [--value-max V]\n"
	"                           [--cache] [--ttl SEC] [--stripes N]\n"
	"                           [--backend posix|sysv] [--mode MODE]\n"
	"                           [--persistent|--ephemeral]\n"
	"       shmkit table put NAME KEY VALUE|- [--ttl SEC]\n"
	"       shmkit table get NAME KEY [--raw|--json]\n"
	"       shmkit table del NAME KEY\n"
	"       shmkit table dump NAME [--json]\n"
	"       shmkit table expire NAME [--json]\n"
	"       shmkit table verify NAME [--json]\n"
	"\n"
	"A table is a fixed-capacity hash table in a shared-memory segment: any number of\n"
	"processes read it without locks and write it under per-stripe robust locks; a writer\n"
	"killed mid-write is repaired by the next one. Keys and values are byte strings.\n"
	"\n"
	"  create   make a table: N entries (default 1024) of keys up to K bytes (default 64)\n"
	"           and values up to V bytes (default 256). --cache evicts the least recently\n"
	"           used entries (CLOCK) instead of failing when full; --ttl gives entries a\n"
	"           default time-to-live in seconds. Permissions default to 0600. The table\n"
	"           is persistent: `shmkit gc` never removes it (only `shmkit rm` does)\n"
	"           unless --ephemeral makes it garbage once its creator is gone.\n"
	"  put      insert or replace KEY; VALUE '-' reads the value from stdin. --ttl SEC sets\n"
	"           this entry's time-to-live (0 = never), instead of the table's default.\n"
	"  get      print KEY's value and a newline (--raw: exactly the value's bytes;\n"
	"           --json: {table, key, value, version})\n"
	"  del      remove KEY\n"
	"  dump     print every entry as KEY<TAB>VALUE lines, with \\n, \\t, \\\\ and \\xHH\n"
	"           escapes; --json prints an array of {key, value, version, ttl_ms}\n"
	"  expire   reclaim expired entries now (they are otherwise reclaimed lazily)\n"
	"  verify   check every invariant of the table (pauses its writers briefly)\n"
	"\n"
	"`shmkit stat NAME` shows a table's entries, capacity, load, evictions and repairs.\n"
	"\n"
	"Options:\n"
	"  -c, --capacity N     entries (1..1073741824)\n"
	"  -k, --key-max K      longest key in bytes (1..65536)\n"
	"  -v, --value-max V    longest value in bytes (1..16777216)\n"
	"  -C, --cache          cache mode: evict when full\n"
	"  -t, --ttl SEC        time-to-live in seconds (0..4294967; 0 = never)\n"
	"  -s, --stripes N      writer lock stripes, a power of two (default capacity/16, <= 64)\n"
	"  -b, --backend B      posix (default) or sysv\n"
	"  -m, --mode MODE      permission bits in octal (default 0600)\n"
	"      --persistent     create: kept by `shmkit gc` (the default)\n"
	"      --ephemeral      create: removed by `shmkit gc` once its creator is dead and\n"
	"                       nobody has it mapped\n"
	"      --foreign        open a table that is not ours (another user's, or writable\n"
	"                       by group or others, e.g. created with --mode 0660)\n"
	"  -r, --raw            get: write the value exactly, without a newline\n"
	"  -j, --json           get, dump, expire, verify: JSON output (shmkit(1))\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 success, 1 runtime error (missing key, full table, ...), 2 usage error.\n";

/* Options shared by the subcommands; each accepts the ones that make sense for it. */
struct tbl_args {
	struct shmkit_table_opts topts;
	uint32_t backend;
	uint32_t ttl_ms;
	uint32_t lifetime; /* enum shmkit_lifetime; 0: the default (persistent) */
	bool have_ttl, raw, json, foreign;
	int npos;
	char **pos;
};

/* Which subcommands an option applies to. OPT_OPEN: every subcommand that opens a table. */
enum {
	OPT_CREATE = 1,
	OPT_PUT = 2,
	OPT_GET = 4,
	OPT_DUMP = 8,
	OPT_NAME = 16,
	OPT_OPEN = 32,
	OPT_REPORT = 64, /* expire, verify: --json */
};
/* Long-only options. */
enum { OPT_PERSISTENT = 256, OPT_EPHEMERAL, OPT_FOREIGN };

static int parse_ttl(const char *s, uint32_t *ms)
{
	uint64_t sec;
	int err = cli_parse_u64(s, 10, UINT32_MAX / 1000, &sec);
	if (!err)
		*ms = (uint32_t)(sec * 1000);
	return err;
}

static int parse_args(const struct cli_cmd *cmd, const char *sub, unsigned allowed, int argc,
		      char **argv, struct tbl_args *a)
{
	static const struct option opts[] = {
		{"capacity", required_argument, NULL, 'c'},
		{"key-max", required_argument, NULL, 'k'},
		{"value-max", required_argument, NULL, 'v'},
		{"cache", no_argument, NULL, 'C'},
		{"ttl", required_argument, NULL, 't'},
		{"stripes", required_argument, NULL, 's'},
		{"backend", required_argument, NULL, 'b'},
		{"mode", required_argument, NULL, 'm'},
		{"raw", no_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"persistent", no_argument, NULL, OPT_PERSISTENT},
		{"ephemeral", no_argument, NULL, OPT_EPHEMERAL},
		{"foreign", no_argument, NULL, OPT_FOREIGN},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	memset(a, 0, sizeof *a);
	int c;
	uint64_t v;
	cli_getopt_reset();
	while ((c = getopt_long(argc, argv, ":c:k:v:Ct:s:b:m:rjh", opts, NULL)) != -1) {
		unsigned need = 0;
		switch (c) {
		case 'c':
		case 'k':
		case 'v':
		case 'C':
		case 's':
		case 'm':
		case OPT_PERSISTENT:
		case OPT_EPHEMERAL:
			need = OPT_CREATE;
			break;
		case OPT_FOREIGN:
			need = OPT_OPEN;
			break;
		case 't':
			need = OPT_CREATE | OPT_PUT;
			break;
		case 'r':
			need = OPT_GET;
			break;
		case 'j':
			need = OPT_DUMP | OPT_GET | OPT_REPORT;
			break;
		case 'b':
			need = OPT_NAME;
			break;
		case 'h':
			cli_print_usage(cmd, stdout);
			return -1;
		default:
			return cli_bad_option(cmd, c, argv);
		}
		if (!(allowed & need))
			return cli_usage_error(cmd, "%s: option '%s' does not apply", sub,
					       argv[optind - 1]);
		switch (c) {
		case 'c':
			if (cli_parse_u64(optarg, 10, SHMKIT_TABLE_CAPACITY_MAX, &v) || v == 0)
				return cli_usage_error(cmd, "invalid --capacity '%s' (1..%u)", optarg,
						       SHMKIT_TABLE_CAPACITY_MAX);
			a->topts.capacity = (size_t)v;
			break;
		case 'k':
			if (cli_parse_u64(optarg, 10, SHMKIT_TABLE_KEY_MAX, &v) || v == 0)
				return cli_usage_error(cmd, "invalid --key-max '%s' (1..%u)", optarg,
						       SHMKIT_TABLE_KEY_MAX);
			a->topts.key_max = (size_t)v;
			break;
		case 'v':
			if (cli_parse_u64(optarg, 10, SHMKIT_TABLE_VALUE_MAX, &v) || v == 0)
				return cli_usage_error(cmd, "invalid --value-max '%s' (1..%u)", optarg,
						       SHMKIT_TABLE_VALUE_MAX);
			a->topts.value_max = (size_t)v;
			break;
		case 'C':
			a->topts.flags |= SHMKIT_TABLE_CACHE;
			break;
		case 't':
			if (parse_ttl(optarg, &a->ttl_ms))
				return cli_usage_error(cmd, "invalid --ttl '%s' (seconds, 0..%u)", optarg,
						       UINT32_MAX / 1000);
			a->have_ttl = true;
			break;
		case 's':
			if (cli_parse_u64(optarg, 10, SHMKIT_TABLE_STRIPES_MAX, &v) || v == 0 ||
			    (v & (v - 1)))
				return cli_usage_error(cmd,
						       "invalid --stripes '%s' (a power of two, "
						       "1..%u)",
						       optarg, SHMKIT_TABLE_STRIPES_MAX);
			a->topts.stripes = (uint32_t)v;
			break;
		case 'b':
			if (cli_parse_backend(optarg, &a->backend) ||
			    a->backend == SHMKIT_BACKEND_ANY)
				return cli_usage_error(cmd, "invalid --backend '%s' (posix or sysv)",
						       optarg);
			break;
		case 'm': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || m == 0 || m > 0777 || optarg[0] == '-')
				return cli_usage_error(cmd, "invalid --mode '%s' (octal, e.g. 0640)",
						       optarg);
			a->topts.seg.mode = (uint32_t)m;
			break;
		}
		case 'r':
			a->raw = true;
			break;
		case 'j':
			a->json = true;
			break;
		case OPT_PERSISTENT:
		case OPT_EPHEMERAL:
			if (cli_lifetime_option(cmd, &a->lifetime, c == OPT_PERSISTENT) != CLI_OK)
				return CLI_USAGE;
			break;
		case OPT_FOREIGN:
			a->foreign = true;
			break;
		}
	}
	a->npos = argc - optind;
	a->pos = argv + optind;
	if (a->npos >= 1 && cli_check_name(cmd, a->pos[0]) != CLI_OK)
		return CLI_USAGE;
	return CLI_OK;
}

static int want_args(const struct cli_cmd *cmd, const char *sub, const struct tbl_args *a, int n,
		     const char *what)
{
	if (a->npos < n)
		return cli_usage_error(cmd, "%s: missing %s", sub, what);
	if (a->npos > n)
		return cli_usage_error(cmd, "%s: unexpected argument '%s'", sub, a->pos[n]);
	return CLI_OK;
}

static int open_table(const struct cli_cmd *cmd, const struct tbl_args *a, bool rdonly,
		      struct shmkit_table **tp)
{
	struct shmkit_table_opts o = {.seg = {.backend = a->backend,
					      .flags = (rdonly ? SHMKIT_SEG_RDONLY : 0) |
						       (a->foreign ? SHMKIT_SEG_FOREIGN_UID : 0)}};
	int err = shmkit_table_open(a->pos[0], &o, tp);
	if (err)
		return cli_open_error(cmd, a->pos[0], a->backend, err, "table");
	return CLI_OK;
}

/* "NAME: key 'KEY'" for messages (the key as typed: it came from argv). For -EMSGSIZE,
 * `t` (when not NULL) gives the limits and `vlen` the value's size, so that the message
 * names both sizes. */
static int key_error(const struct cli_cmd *cmd, const char *name, const char *key, int err,
		     struct shmkit_table *t, uint64_t vlen)
{
	struct shmkit_table_stats st;
	if (err == -EMSGSIZE && t && shmkit_table_stats(t, &st) == 0) {
		size_t klen = strlen(key);
		if (klen > st.key_max)
			return cli_errorf(cmd, "%s: key of %zu bytes exceeds key_max %" PRIu64
					  " (the table's longest key, set by table create "
					  "--key-max)",
					  name, klen, (uint64_t)st.key_max);
		if (vlen > st.value_max)
			return cli_errorf(cmd, "%s: key '%s': value of %" PRIu64 " bytes exceeds "
					  "value_max %" PRIu64 " (the table's longest value, set by "
					  "table create --value-max)",
					  name, key, vlen, (uint64_t)st.value_max);
	}
	if (err == -ENOENT)
		return cli_errorf(cmd, "%s: key '%s': no such key", name, key);
	if (err == -ENOSPC)
		return cli_errorf(cmd, "%s: key '%s': table full (see --cache)", name, key);
	return cli_errorf(cmd, "%s: key '%s': %s", name, key, shmkit_strerror(err));
}

/* --- subcommands --------------------------------------------------------------------------- */

static void json_item(const struct shmkit_table_item *it);

static int t_create(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "create", OPT_CREATE | OPT_NAME, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "create", &a, 1, "table NAME")) != CLI_OK)
		return rc;
	a.topts.ttl_ms = a.ttl_ms;
	a.topts.seg.backend = a.backend;
	/* A table made from the shell holds data meant to outlive the command that made it. */
	a.topts.seg.flags |= cli_lifetime_flags(a.lifetime, SHMKIT_LIFETIME_PERSISTENT);
	if (a.topts.stripes && a.topts.stripes > (a.topts.capacity ? a.topts.capacity : 1024))
		return cli_usage_error(cmd, "--stripes %u exceeds the capacity", a.topts.stripes);
	struct shmkit_table *t;
	int err = shmkit_table_create(a.pos[0], &a.topts, &t);
	if (err)
		return cli_create_error(cmd, a.pos[0], err, a.backend);
	shmkit_table_close(t);
	return CLI_OK;
}

/* Reads all of stdin into buf (room for max + 1 bytes). Returns its whole length, which
 * is more than `max` when it did not fit (the rest is read and counted, so that the error
 * can say how long the value was), or -errno. */
static long read_stdin(unsigned char *buf, size_t max)
{
	size_t n = 0;
	for (;;) {
		unsigned char scratch[4096];
		bool over = n > max;
		size_t got = over ? fread(scratch, 1, sizeof scratch, stdin)
				  : fread(buf + n, 1, max + 1 - n, stdin);
		n += got;
		if (got == 0)
			return ferror(stdin) ? -EIO : (long)n;
	}
}

static int t_put(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "put", OPT_PUT | OPT_NAME | OPT_OPEN, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "put", &a, 3, "table NAME, KEY or VALUE")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, false, &t)) != CLI_OK)
		return rc;
	const char *key = a.pos[1];
	const void *val = a.pos[2];
	size_t vlen = strlen(a.pos[2]);
	unsigned char *buf = NULL;
	struct shmkit_table_stats st = {0};
	if (strcmp(a.pos[2], "-") == 0) {
		shmkit_table_stats(t, &st);
		buf = malloc(st.value_max + 1);
		long n = buf ? read_stdin(buf, st.value_max) : -ENOMEM;
		if (n < 0) {
			free(buf);
			shmkit_table_close(t);
			return cli_error(cmd, "reading stdin", (int)n);
		}
		val = buf;
		vlen = (size_t)n;
	}
	/* A value from stdin longer than the buffer was only counted: refuse it here. */
	int err = buf && vlen > st.value_max ? -EMSGSIZE
		: a.have_ttl ? shmkit_table_put_ttl(t, key, strlen(key), val, vlen, a.ttl_ms)
			     : shmkit_table_put(t, key, strlen(key), val, vlen);
	free(buf);
	if (err)
		rc = key_error(cmd, a.pos[0], key, err, t, vlen);
	shmkit_table_close(t);
	return rc;
}

static int t_get(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "get", OPT_GET | OPT_NAME | OPT_OPEN, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "get", &a, 2, "table NAME or KEY")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, true, &t)) != CLI_OK)
		return rc;
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	unsigned char *buf = malloc(st.value_max ? st.value_max : 1);
	const char *key = a.pos[1];
	uint64_t version = 0;
	int n = buf ? shmkit_table_get_versioned(t, key, strlen(key), buf, st.value_max, &version)
		    : -ENOMEM;
	if (n < 0) {
		free(buf);
		rc = key_error(cmd, a.pos[0], key, n, t, 0);
		shmkit_table_close(t);
		return rc;
	}
	shmkit_table_close(t);
	if (a.json) {
		/* {"table": NAME, "key": KEY, "value": VALUE, "version": N}; bytes that are not
		 * UTF-8 make the value (or key) null and add value_hex (key_hex). */
		fputs("{\"table\":", stdout);
		cli_json_string(stdout, a.pos[0]);
		struct shmkit_table_item it = {.key = key, .klen = strlen(key), .value = buf,
					       .vlen = (size_t)n, .version = version};
		putchar(',');
		json_item(&it);
		puts("}");
	} else {
		fwrite(buf, 1, (size_t)n, stdout);
		if (!a.raw)
			putchar('\n');
	}
	free(buf);
	return CLI_OK;
}

static int t_del(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "del", OPT_NAME | OPT_OPEN, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "del", &a, 2, "table NAME or KEY")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, false, &t)) != CLI_OK)
		return rc;
	int err = shmkit_table_del(t, a.pos[1], strlen(a.pos[1]));
	if (err)
		rc = key_error(cmd, a.pos[0], a.pos[1], err, t, 0);
	shmkit_table_close(t);
	return rc;
}

/* Writes bytes for humans: printable ASCII as is, the rest as C escapes. */
static void put_escaped(FILE *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		switch (c) {
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		default:
			if (c >= 0x20 && c < 0x7f)
				fputc(c, out);
			else
				fprintf(out, "\\x%02x", c);
		}
	}
}

static void put_hex(FILE *out, const unsigned char *p, size_t n)
{
	fputc('"', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", p[i]);
	fputc('"', out);
}

struct dump_state {
	bool json;
	int n;
	uint64_t now;
};

/* The JSON fields of one entry: "key", ["key_hex"], "value", ["value_hex"], "version" (the
 * _hex fields when the bytes are not UTF-8: the string then holds U+FFFD for them). */
static void json_item(const struct shmkit_table_item *it)
{
	fputs("\"key\":", stdout);
	if (!cli_json_bytes(stdout, it->key, it->klen, true)) {
		fputs(",\"key_hex\":", stdout);
		put_hex(stdout, it->key, it->klen);
	}
	fputs(",\"value\":", stdout);
	if (!cli_json_bytes(stdout, it->value, it->vlen, true)) {
		fputs(",\"value_hex\":", stdout);
		put_hex(stdout, it->value, it->vlen);
	}
	printf(",\"version\":%" PRIu64, it->version);
}

static int dump_one(const struct shmkit_table_item *it, void *arg)
{
	struct dump_state *d = arg;
	if (!d->json) {
		put_escaped(stdout, it->key, it->klen);
		putchar('\t');
		put_escaped(stdout, it->value, it->vlen);
		putchar('\n');
		d->n++;
		return 0;
	}
	fputs(d->n++ ? ",\n{" : "\n{", stdout);
	json_item(it);
	fputs(",\"ttl_ms\":", stdout);
	if (it->expires_ns)
		printf("%" PRIu64 "}",
		       it->expires_ns > d->now ? (it->expires_ns - d->now) / 1000000u : 0);
	else
		fputs("null}", stdout);
	return 0;
}

static int t_dump(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "dump", OPT_DUMP | OPT_NAME | OPT_OPEN, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "dump", &a, 1, "table NAME")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, true, &t)) != CLI_OK)
		return rc;
	struct dump_state d = {a.json, 0, shmkit_now_ns()};
	if (a.json)
		putchar('[');
	int n = shmkit_table_iter(t, dump_one, &d);
	if (a.json)
		puts(d.n ? "\n]" : "]");
	shmkit_table_close(t);
	return n < 0 ? cli_error(cmd, a.pos[0], n) : CLI_OK;
}

static int t_expire(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "expire", OPT_NAME | OPT_OPEN | OPT_REPORT, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "expire", &a, 1, "table NAME")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, false, &t)) != CLI_OK)
		return rc;
	int n = shmkit_table_expire(t);
	shmkit_table_close(t);
	if (n < 0)
		return cli_error(cmd, a.pos[0], n);
	if (a.json) {
		fputs("{\"table\":", stdout);
		cli_json_string(stdout, a.pos[0]);
		printf(",\"expired\":%d}\n", n);
	} else {
		printf("%d expired entr%s reclaimed\n", n, n == 1 ? "y" : "ies");
	}
	return CLI_OK;
}

static int t_verify(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct tbl_args a;
	int rc = parse_args(cmd, "verify", OPT_NAME | OPT_OPEN | OPT_REPORT, argc, argv, &a);
	if (rc)
		return rc < 0 ? CLI_OK : rc;
	if ((rc = want_args(cmd, "verify", &a, 1, "table NAME")) != CLI_OK)
		return rc;
	struct shmkit_table *t;
	if ((rc = open_table(cmd, &a, false, &t)) != CLI_OK)
		return rc;
	int err = shmkit_table_verify(t);
	shmkit_table_close(t);
	if (a.json) {
		/* Printed for a failed check too: the verdict is what a script asks for. */
		fputs("{\"table\":", stdout);
		cli_json_string(stdout, a.pos[0]);
		printf(",\"ok\":%s,\"error\":", err ? "false" : "true");
		if (err)
			cli_json_string(stdout, shmkit_strerror(err));
		else
			fputs("null", stdout);
		puts("}");
	}
	if (err)
		return cli_error(cmd, a.pos[0], err);
	if (!a.json)
		puts("ok");
	return CLI_OK;
}

int cli_cmd_table(const struct cli_cmd *cmd, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*run)(const struct cli_cmd *, int, char **);
	} subs[] = {
		{"create", t_create}, {"put", t_put},       {"get", t_get},       {"del", t_del},
		{"dump", t_dump},     {"expire", t_expire}, {"verify", t_verify},
	};
	if (argc < 2)
		return cli_usage_error(cmd, "missing subcommand (create, put, get, del, dump, "
					    "expire, verify)");
	const char *sub = argv[1];
	if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
		cli_print_usage(cmd, stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
		if (strcmp(sub, subs[i].name) == 0)
			return subs[i].run(cmd, argc - 1, argv + 1);
	return cli_usage_error(cmd, "unknown subcommand '%s'", sub);
}

/* --- shmkit stat detail ------------------------------------------------------------------------ */

void cli_table_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv)
{
	struct shmkit_table_opts o = {
		.seg = cli_info_opts(inf, SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID)};
	struct shmkit_table *t;
	int err = shmkit_table_open(inf->name, &o, &t);
	if (cli_kv_detail_error(kv, err))
		return;
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	shmkit_table_close(t);
	cli_kv_u64(kv, "entries", st.entries);
	cli_kv_u64(kv, "capacity", st.capacity);
	cli_kv_percent(kv, "load", st.entries, st.capacity);
	cli_kv_u64(kv, "key_max", st.key_max);
	cli_kv_u64(kv, "value_max", st.value_max);
	cli_kv_tristate(kv, "cache", (st.flags & SHMKIT_TABLE_CACHE) ? 1 : 0);
	cli_kv_u64(kv, "ttl_ms", st.ttl_ms);
	cli_kv_u64(kv, "stripes", st.stripes);
	cli_kv_u64(kv, "puts", st.puts);
	cli_kv_u64(kv, "inserts", st.inserts);
	cli_kv_u64(kv, "dels", st.dels);
	cli_kv_u64(kv, "cas_failures", st.cas_failures);
	cli_kv_u64(kv, "evictions", st.evictions);
	cli_kv_u64(kv, "expirations", st.expirations);
	cli_kv_u64(kv, "repairs", st.repairs);
}
