/* shmkit CLI — helpers shared by the subcommands: diagnostics with the exit-code contract,
 * strict option parsing, and the human/JSON output of segment descriptions. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#include "cli.h"

/* --- diagnostics ------------------------------------------------------------------------ */

void cli_print_usage(const struct cli_cmd *cmd, FILE *out)
{
	fputs(cmd->usage, out);
}

int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "shmkit: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'shmkit %s --help'.\n", cmd->name);
	return CLI_USAGE;
}

int cli_error(const struct cli_cmd *cmd, const char *what, int err)
{
	fprintf(stderr, "shmkit: %s: %s: %s\n", cmd->name, what, shmkit_strerror(err));
	return CLI_ERR;
}

/* Reads one unsigned number from a /proc/sys file; false when it cannot. */
static bool read_sysctl(const char *path, unsigned long long *v)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fscanf(f, "%llu", v) == 1;
	fclose(f);
	return ok;
}

int cli_create_error(const struct cli_cmd *cmd, const char *what, int err, uint32_t backend)
{
	unsigned long long a, b;
	struct statvfs vfs;
	char h1[32], h2[32];
	if (err == -EFBIG && read_sysctl("/proc/sys/kernel/shmmax", &a))
		return cli_errorf(cmd,
				  "%s: larger than the System V limit kernel.shmmax (%llu bytes, "
				  "%s; see /proc/sys/kernel/shmmax)",
				  what, a, cli_human_size(h1, sizeof h1, a));
	struct shmkit_segment_opts so = {.backend = backend};
	struct shmkit_segment_info inf;
	if (err == -EEXIST && shmkit_segment_stat(what, &so, &inf) == 0)
		return cli_errorf(cmd,
				  "'%s' exists already (a %s); choose another name, or remove it "
				  "first with 'shmkit rm %s'",
				  what, cli_kind_word(inf.kind), what);
	if (err != -ENOSPC)
		return cli_error(cmd, what, err);
	if (backend == SHMKIT_BACKEND_SYSV) {
		if (!read_sysctl("/proc/sys/kernel/shmall", &a) ||
		    !read_sysctl("/proc/sys/kernel/shmmni", &b))
			return cli_errorf(cmd, "%s: System V limit reached (kernel.shmall or "
					  "kernel.shmmni)", what);
		return cli_errorf(cmd,
				  "%s: System V limit reached: kernel.shmall (%llu pages in all) "
				  "or kernel.shmmni (%llu segments)",
				  what, a, b);
	}
	if (backend == SHMKIT_BACKEND_MEMFD)
		return cli_errorf(cmd, "%s: no space left for shared memory (memfd)", what);
	if (statvfs("/dev/shm", &vfs) < 0)
		return cli_errorf(cmd, "%s: no space left on /dev/shm", what);
	return cli_errorf(cmd, "%s: no space left on /dev/shm (size %s, %s free)", what,
			  cli_human_size(h1, sizeof h1, (uint64_t)vfs.f_blocks * vfs.f_frsize),
			  cli_human_size(h2, sizeof h2, (uint64_t)vfs.f_bavail * vfs.f_frsize));
}

int cli_errorf(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "shmkit: %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_ERR;
}

/* --- option parsing ------------------------------------------------------------------------ */

void cli_getopt_reset(void)
{
	/* 0, not 1: makes glibc re-initialize its internal state (permutation, clusters). */
	optind = 0;
	opterr = 0;
}

const char *cli_getopt_problem(char *buf, size_t cap, int c, char **argv)
{
	/* What the user typed: after an error getopt_long() has usually moved optind past it.
	 * For a short option optopt holds its character; for a long one optopt is 0 when the
	 * name is unknown, or the option's value when it got an argument it does not take
	 * ("--json=1") or lacks one. */
	const char *typed = optind > 0 ? argv[optind - 1] : "?";
	bool long_opt = typed[0] == '-' && typed[1] == '-';
	if (c == ':') {
		if (optopt && !long_opt)
			snprintf(buf, cap, "option '-%c' requires an argument", optopt);
		else
			snprintf(buf, cap, "option '%s' requires an argument", typed);
	} else if (optopt && long_opt && strchr(typed, '=')) {
		snprintf(buf, cap, "option '%.*s' does not take an argument",
			 (int)(strchr(typed, '=') - typed), typed);
	} else if (optopt) {
		snprintf(buf, cap, "unknown option '-%c'", optopt);
	} else {
		snprintf(buf, cap, "unknown option '%s'", typed);
	}
	return buf;
}

int cli_bad_option(const struct cli_cmd *cmd, int c, char **argv)
{
	char msg[256], guess[40];
	cli_getopt_problem(msg, sizeof msg, c, argv);
	/* An unknown long option (not one lacking or refusing an argument): maybe a typo. */
	if (c == '?' && !optopt && optind > 0 &&
	    cli_suggest_option(argv[optind - 1], cmd->usage, guess, sizeof guess))
		return cli_usage_error(cmd, "%s; did you mean '%s'?", msg, guess);
	return cli_usage_error(cmd, "%s", msg);
}

int cli_default_option(const struct cli_cmd *cmd, int c, char **argv)
{
	if (c == 'h') {
		cli_print_usage(cmd, stdout);
		return CLI_OK;
	}
	return cli_bad_option(cmd, c, argv);
}

static bool is_digit_in(char c, int base)
{
	if (c >= '0' && c <= '9')
		return true;
	return base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
}

int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out)
{
	if (!s || (base != 10 && base != 16))
		return -EINVAL;
	/* Base 16 wants the 0x prefix. Every remaining character must be a digit of the base:
	 * strtoull() alone would accept leading blanks, a sign (negating the value) and a
	 * second 0x. */
	if (base == 16) {
		if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
			return -EINVAL;
		s += 2;
	}
	if (*s == '\0')
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (!is_digit_in(*p, base))
			return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

int cli_parse_int(const char *s, int min, int max, int *out)
{
	if (!s)
		return -EINVAL;
	bool neg = s[0] == '-';
	if (neg && min >= 0)
		return cli_parse_u64(s + 1, 10, 0, &(uint64_t){0}) == -EINVAL ? -EINVAL : -ERANGE;
	uint64_t mag;
	int err = cli_parse_u64(s + neg, 10, neg ? (uint64_t)-(int64_t)min : (uint64_t)max, &mag);
	if (err)
		return err;
	int64_t v = neg ? -(int64_t)mag : (int64_t)mag;
	if (v < min || v > max)
		return -ERANGE;
	*out = (int)v;
	return 0;
}

int cli_parse_sysv_key(const char *s, int32_t *out)
{
	int32_t key;
	if (s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		uint64_t v;
		int err = cli_parse_u64(s, 16, UINT32_MAX, &v);
		if (err)
			return err;
		/* The 32-bit pattern, as ipcs prints it. */
		key = (int32_t)(uint32_t)v;
	} else {
		int v;
		int err = cli_parse_int(s, INT32_MIN, INT32_MAX, &v);
		if (err)
			return err;
		key = v;
	}
	if (key == 0)
		return -EINVAL; /* IPC_PRIVATE: no key at all */
	*out = key;
	return 0;
}

int cli_parse_backend(const char *s, uint32_t *out)
{
	if (strcmp(s, "posix") == 0)
		*out = SHMKIT_BACKEND_POSIX;
	else if (strcmp(s, "sysv") == 0)
		*out = SHMKIT_BACKEND_SYSV;
	else if (strcmp(s, "any") == 0)
		*out = SHMKIT_BACKEND_ANY;
	else
		return -EINVAL;
	return 0;
}

int cli_target_option(const struct cli_cmd *cmd, struct cli_target *t, int c, const char *arg)
{
	if (c == 'b') {
		if (cli_parse_backend(arg, &t->backend) < 0)
			return cli_usage_error(cmd, "invalid backend '%s' (expected posix or sysv)",
					       arg);
		t->have_backend = true;
	} else {
		int err = cli_parse_sysv_key(arg, &t->sysv_key);
		if (err)
			return cli_usage_error(cmd,
					       "invalid System V key '%s' (expected a non-zero "
					       "32-bit number, decimal or 0x hex)",
					       arg);
		t->have_key = true;
	}
	return CLI_OK;
}

int cli_target_finish(const struct cli_cmd *cmd, struct cli_target *t)
{
	if (t->have_key) {
		if (t->have_backend && t->backend != SHMKIT_BACKEND_SYSV &&
		    t->backend != SHMKIT_BACKEND_ANY)
			return cli_usage_error(cmd, "--sysv-key needs the sysv backend");
		t->backend = SHMKIT_BACKEND_SYSV;
	}
	return CLI_OK;
}

int cli_check_name(const struct cli_cmd *cmd, const char *name)
{
	if (shmkit_name_valid(name) < 0)
		return cli_usage_error(cmd,
				       "invalid segment name '%s' (1..%d characters of A-Z a-z "
				       "0-9 . _ -)",
				       name, SHMKIT_NAME_MAX);
	return CLI_OK;
}

int cli_name_arg(const struct cli_cmd *cmd, int argc, char **argv, const char *what,
		 const char **name)
{
	if (optind >= argc)
		return cli_usage_error(cmd, "missing %s NAME", what);
	*name = argv[optind++];
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return cli_check_name(cmd, *name);
}

const char *cli_target_label(char *buf, size_t cap, const char *name, int32_t sysv_key)
{
	if (name && sysv_key)
		snprintf(buf, cap, "%s (key %" PRId32 ")", name, sysv_key);
	else if (name)
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "key %" PRId32, sysv_key);
	return buf;
}

/* --- formatting ---------------------------------------------------------------------------- */

const char *cli_status_word(int status)
{
	switch (status) {
	case 0:
		return "ok";
	case -EAGAIN:
		return "not-ready";
	case -EBADMSG:
		return "corrupt";
	case -EPROTO:
		return "incompatible";
	case -ERANGE:
		return "truncated";
	case -ENOTUNIQ:
		return "foreign";
	case -EMEDIUMTYPE:
		return "wrong-kind";
	case -EPERM:
		return "other-user";
	case -EACCES:
		return "no-access";
	default:
		return "error";
	}
}

const char *cli_lifetime_word(uint32_t lifetime)
{
	switch (lifetime) {
	case SHMKIT_LIFETIME_EPHEMERAL:
		return "ephemeral";
	case SHMKIT_LIFETIME_PERSISTENT:
		return "persistent";
	default:
		return NULL;
	}
}

int cli_lifetime_option(const struct cli_cmd *cmd, uint32_t *lifetime, bool persistent)
{
	uint32_t want = persistent ? SHMKIT_LIFETIME_PERSISTENT : SHMKIT_LIFETIME_EPHEMERAL;
	if (*lifetime && *lifetime != want)
		return cli_usage_error(cmd, "--persistent and --ephemeral contradict each other");
	*lifetime = want;
	return CLI_OK;
}

uint32_t cli_lifetime_flags(uint32_t lifetime, uint32_t dflt)
{
	if (lifetime == 0)
		lifetime = dflt;
	return lifetime == SHMKIT_LIFETIME_PERSISTENT ? SHMKIT_SEG_PERSISTENT : 0;
}

const char *cli_state_word(uint32_t state)
{
	switch (state) {
	case SHMKIT_SEG_READY:
		return "ready";
	case SHMKIT_SEG_INITIALIZING:
		return "initializing";
	default:
		return "unknown";
	}
}

const char *cli_human_size(char *buf, size_t cap, uint64_t bytes)
{
	static const char units[] = "KMGTPE";
	if (bytes < 1024) {
		snprintf(buf, cap, "%" PRIu64 "B", bytes);
		return buf;
	}
	double v = (double)bytes;
	int u = -1;
	while (v >= 1024.0 && u < (int)sizeof units - 2) {
		v /= 1024.0;
		u++;
	}
	/* One decimal below 10, like ls -h; none above, where it would be noise. */
	if (v < 9.95)
		snprintf(buf, cap, "%.1f%c", v, units[u]);
	else
		snprintf(buf, cap, "%.0f%c", v, units[u]);
	return buf;
}

const char *cli_user_name(char *buf, size_t cap, uint32_t uid)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r((uid_t)uid, &pw, tmp, sizeof tmp, &res) == 0 && res && res->pw_name)
		snprintf(buf, cap, "%s", res->pw_name);
	else
		snprintf(buf, cap, "%" PRIu32, uid);
	return buf;
}

const char *cli_iso_time(char *buf, size_t cap, uint64_t ns)
{
	if (ns == 0)
		return NULL;
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return NULL;
	return buf;
}

/* Length of the valid UTF-8 sequence at s (1..4, within the n bytes there), or 0 if it is
 * not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points above U+10FFFF are invalid. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool cli_json_bytes(FILE *out, const void *p, size_t n, bool escape_del)
{
	const unsigned char *b = p;
	bool exact = true;
	fputc('"', out);
	for (size_t i = 0; i < n;) {
		unsigned char c = b[i];
		if (c == '"' || c == '\\') {
			fputc('\\', out);
			fputc(c, out);
			i++;
		} else if (c < 0x20 || (c == 0x7f && escape_del)) {
			switch (c) {
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
				fprintf(out, "\\u%04x", c);
				break;
			}
			i++;
		} else {
			size_t len = utf8_len(b + i, n - i);
			if (len == 0) {
				fputs("\\ufffd", out);
				exact = false;
				i++;
			} else {
				fwrite(b + i, 1, len, out);
				i += len;
			}
		}
	}
	fputc('"', out);
	return exact;
}

void cli_json_string(FILE *out, const char *s)
{
	(void)cli_json_bytes(out, s, strlen(s), false);
}

struct shmkit_segment_opts cli_info_opts(const struct shmkit_segment_info *inf, uint32_t flags)
{
	struct shmkit_segment_opts o = {.backend = inf->backend, .flags = flags};
	if (inf->backend == SHMKIT_BACKEND_SYSV)
		o.sysv_key = inf->sysv_key;
	return o;
}

/* --- key/value output ---------------------------------------------------------------------- */

void cli_kv_begin(struct cli_kv *kv, FILE *out, bool json)
{
	kv->out = out;
	kv->json = json;
	kv->count = 0;
	if (json)
		fputc('{', out);
}

void cli_kv_end(struct cli_kv *kv)
{
	if (kv->json)
		fputc('}', kv->out);
}

/* Writes the key and separator; the caller writes the value (and, for humans, '\n'). */
static void kv_key(struct cli_kv *kv, const char *key)
{
	if (kv->json) {
		if (kv->count)
			fputc(',', kv->out);
		cli_json_string(kv->out, key);
		fputc(':', kv->out);
	} else {
		fprintf(kv->out, "%s: ", key);
	}
	kv->count++;
}

static void kv_done(struct cli_kv *kv)
{
	if (!kv->json)
		fputc('\n', kv->out);
}

void cli_kv_str(struct cli_kv *kv, const char *key, const char *val)
{
	kv_key(kv, key);
	if (kv->json) {
		if (val)
			cli_json_string(kv->out, val);
		else
			fputs("null", kv->out);
	} else {
		fputs(val && *val ? val : "-", kv->out);
	}
	kv_done(kv);
}

void cli_kv_i64(struct cli_kv *kv, const char *key, int64_t val)
{
	kv_key(kv, key);
	fprintf(kv->out, "%" PRId64, val);
	kv_done(kv);
}

void cli_kv_u64(struct cli_kv *kv, const char *key, uint64_t val)
{
	kv_key(kv, key);
	fprintf(kv->out, "%" PRIu64, val);
	kv_done(kv);
}

void cli_kv_null(struct cli_kv *kv, const char *key)
{
	cli_kv_str(kv, key, NULL);
}

void cli_kv_size(struct cli_kv *kv, const char *key, uint64_t val)
{
	kv_key(kv, key);
	if (kv->json) {
		fprintf(kv->out, "%" PRIu64, val);
	} else {
		char h[32];
		fprintf(kv->out, "%" PRIu64 " (%s)", val, cli_human_size(h, sizeof h, val));
	}
	kv_done(kv);
}

void cli_kv_mode(struct cli_kv *kv, const char *key, uint32_t val)
{
	kv_key(kv, key);
	fprintf(kv->out, kv->json ? "%" PRIu32 : "%04" PRIo32, val);
	kv_done(kv);
}

void cli_kv_tristate(struct cli_kv *kv, const char *key, int val)
{
	kv_key(kv, key);
	if (kv->json)
		fputs(val > 0 ? "true" : val == 0 ? "false" : "null", kv->out);
	else
		fputs(val > 0 ? "yes" : val == 0 ? "no" : "?", kv->out);
	kv_done(kv);
}

void cli_kv_percent(struct cli_kv *kv, const char *key, uint64_t part, uint64_t whole)
{
	kv_key(kv, key);
	fprintf(kv->out, kv->json ? "%.1f" : "%.1f%%",
		whole ? 100.0 * (double)part / (double)whole : 0.0);
	kv_done(kv);
}

bool cli_kv_detail_error(struct cli_kv *kv, int err)
{
	if (err)
		cli_kv_str(kv, "detail_error", shmkit_strerror(err));
	return err != 0;
}

void cli_info_kv(struct cli_kv *kv, const struct shmkit_segment_info *inf)
{
	char buf[64];
	bool trusted = cli_info_trusted(inf);
	bool sysv = inf->backend == SHMKIT_BACKEND_SYSV;

	cli_kv_str(kv, "name", inf->name);
	cli_kv_str(kv, "backend", shmkit_backend_name(inf->backend));
	if (sysv) {
		cli_kv_i64(kv, "sysv_key", inf->sysv_key);
		cli_kv_i64(kv, "sysv_id", inf->sysv_id);
	} else {
		cli_kv_null(kv, "sysv_key");
		cli_kv_null(kv, "sysv_id");
	}
	cli_kv_str(kv, "kind", trusted ? shmkit_kind_name(inf->kind) : NULL);
	cli_kv_str(kv, "lifetime", cli_lifetime_word(inf->lifetime));
	cli_kv_size(kv, "total_size", inf->total_size);
	if (trusted)
		cli_kv_size(kv, "data_size", inf->data_size);
	else
		cli_kv_null(kv, "data_size");
	cli_kv_mode(kv, "mode", inf->mode);
	cli_kv_u64(kv, "uid", inf->uid);
	cli_kv_u64(kv, "gid", inf->gid);
	cli_kv_str(kv, "owner", cli_user_name(buf, sizeof buf, inf->uid));
	/* System V keeps a second identity, the creator's, that the owner field can hide:
	 * the creator may hand the owner field to anyone (IPC_SET). Both are shown. */
	if (sysv) {
		cli_kv_u64(kv, "sysv_cuid", inf->cuid);
		cli_kv_u64(kv, "sysv_cgid", inf->cgid);
		cli_kv_str(kv, "sysv_creator", cli_user_name(buf, sizeof buf, inf->cuid));
	} else {
		cli_kv_null(kv, "sysv_cuid");
		cli_kv_null(kv, "sysv_cgid");
		cli_kv_null(kv, "sysv_creator");
	}
	if (trusted && inf->creator_pid > 0)
		cli_kv_i64(kv, "creator_pid", inf->creator_pid);
	else
		cli_kv_null(kv, "creator_pid");
	if (trusted)
		cli_kv_u64(kv, "creator_uid", inf->creator_uid);
	else
		cli_kv_null(kv, "creator_uid");
	cli_kv_tristate(kv, "creator_alive", trusted ? inf->creator_alive : -1);
	if (inf->nattach >= 0)
		cli_kv_i64(kv, "nattach", inf->nattach);
	else
		cli_kv_null(kv, "nattach");
	cli_kv_str(kv, "state", cli_state_word(inf->state));
	if (inf->ver_major || inf->ver_minor) {
		snprintf(buf, sizeof buf, "%u.%u", (unsigned)inf->ver_major, (unsigned)inf->ver_minor);
		cli_kv_str(kv, "version", buf);
	} else {
		cli_kv_null(kv, "version");
	}
	cli_kv_str(kv, "status", cli_status_word(inf->status));
	cli_kv_str(kv, "error", inf->status ? shmkit_strerror(inf->status) : NULL);
	cli_kv_str(kv, "created", trusted ? cli_iso_time(buf, sizeof buf, inf->created_ns) : NULL);
}

/* --- options shared by the streaming commands ---------------------------------------------- */

#define MAX_TIMEOUT_S 4294967295ull /* about 136 years: "forever" for practical purposes */
#define OPEN_POLL_MAX_NS (50 * 1000000ull)

int cli_parse_framing(const char *s, enum cli_framing *f)
{
	if (strcmp(s, "raw") == 0)
		*f = CLI_FRAMING_RAW;
	else if (strcmp(s, "lines") == 0)
		*f = CLI_FRAMING_LINES;
	else if (strcmp(s, "len") == 0)
		*f = CLI_FRAMING_LEN;
	else
		return -EINVAL;
	return 0;
}

int cli_parse_bytes(const char *s, uint64_t max, uint64_t *out)
{
	size_t n = strlen(s);
	unsigned shift = 0;
	if (n > 0) {
		switch (s[n - 1]) {
		case 'K':
		case 'k':
			shift = 10;
			break;
		case 'M':
		case 'm':
			shift = 20;
			break;
		case 'G':
		case 'g':
			shift = 30;
			break;
		}
	}
	char digits[32];
	size_t nd = shift ? n - 1 : n;
	if (nd == 0 || nd >= sizeof digits)
		return nd == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, s, nd);
	digits[nd] = '\0';
	uint64_t v;
	int err = cli_parse_u64(digits, 10, UINT64_MAX >> shift, &v);
	if (err)
		return err;
	v <<= shift;
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int cli_parse_seconds(const char *s, uint64_t *ns)
{
	const char *dot = strchr(s, '.');
	char whole[32];
	size_t nw = dot ? (size_t)(dot - s) : strlen(s);
	if (nw == 0 || nw >= sizeof whole)
		return nw == 0 ? -EINVAL : -ERANGE;
	memcpy(whole, s, nw);
	whole[nw] = '\0';
	uint64_t sec;
	int err = cli_parse_u64(whole, 10, MAX_TIMEOUT_S, &sec);
	if (err)
		return err;
	uint64_t frac = 0;
	if (dot) {
		const char *f = dot + 1;
		size_t nf = strlen(f);
		if (nf == 0 || nf > 9)
			return -EINVAL;
		for (size_t i = 0; i < 9; i++) {
			char c = i < nf ? f[i] : '0';
			if (c < '0' || c > '9')
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(c - '0');
		}
	}
	*ns = sec * 1000000000ull + frac;
	return 0;
}

const struct timespec *cli_deadline(const struct cli_waiting *w, struct timespec *ts)
{
	return w->bounded ? shmkit_deadline_after(ts, w->timeout_ns) : NULL;
}

void cli_nap(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int cli_open_wait(int (*try_open)(void *ctx), void *ctx, const struct cli_waiting *w)
{
	uint64_t start = shmkit_now_ns();
	uint64_t pause = 1000000;
	bool announced = false;
	for (;;) {
		int err = try_open(ctx);
		if (err != -ENOENT && err != -EAGAIN)
			return err;
		uint64_t waited = shmkit_now_ns() - start;
		if (w->bounded && waited >= w->timeout_ns)
			return w->timeout_ns ? -ETIMEDOUT : err;
		/* Once, and only for a name that does not exist (-EAGAIN: it is being made). */
		if (err == -ENOENT && w->announce && !announced) {
			fprintf(stderr, "shmkit: %s: waiting for '%s' to appear\n", w->announce->name,
				w->name);
			announced = true;
		}
		uint64_t ns = pause;
		if (w->bounded && ns > w->timeout_ns - waited)
			ns = w->timeout_ns - waited;
		cli_nap(ns);
		pause = pause * 2 > OPEN_POLL_MAX_NS ? OPEN_POLL_MAX_NS : pause * 2;
	}
}

/* --- writing records and stopping cleanly ---------------------------------------------------- */

int cli_record_iov(enum cli_framing f, const void *msg, size_t len, uint8_t hdr[4],
		   struct iovec iov[3])
{
	int cnt = 0;
	if (f == CLI_FRAMING_LEN) {
		hdr[0] = (uint8_t)len;
		hdr[1] = (uint8_t)(len >> 8);
		hdr[2] = (uint8_t)(len >> 16);
		hdr[3] = (uint8_t)(len >> 24);
		iov[cnt++] = (struct iovec){.iov_base = hdr, .iov_len = 4};
	}
	iov[cnt++] = (struct iovec){.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
	if (f == CLI_FRAMING_LINES)
		iov[cnt++] = (struct iovec){.iov_base = "\n", .iov_len = 1};
	return cnt;
}

int cli_writev_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};
				(void)poll(&pfd, 1, -1);
				continue;
			}
			if (errno == EINTR)
				continue; /* a stop signal too: the record is finished first */
			return -errno;
		}
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

volatile sig_atomic_t cli_stop_sig;

static void on_stop(int sig)
{
	cli_stop_sig = sig;
}

void cli_catch_stop(void)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	struct sigaction sa = {.sa_handler = on_stop, .sa_flags = SA_RESETHAND};
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		(void)sigaction(sigs[i], &sa, NULL);
}

int cli_stop_exit(int rc)
{
	int sig = cli_stop_sig;
	if (!sig)
		return rc;
	fflush(NULL);
	signal(sig, SIG_DFL);
	raise(sig);
	return 128 + sig; /* not reached: the signal's default action ends the process */
}
