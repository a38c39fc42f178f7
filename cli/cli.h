/* shmkit CLI — what the subcommand files share.
 *
 * The tool is a table of commands (cli/main.c). Adding a command is one new file
 * cli/<group>.c defining `int cli_cmd_<name>(const struct cli_cmd *, int, char **)`, its
 * prototype below, and one row in cli_commands[] in cli/main.c. A handler receives argv with
 * argv[0] = the command name, parses it with getopt_long (see cli_getopt_reset() and
 * cli_bad_option()), and returns one of the exit codes below; it never calls exit().
 *
 * The CLI uses only the public API (<shmkit.h>): if it needs more, the library lacks it.
 */
#ifndef SHMKIT_CLI_H
#define SHMKIT_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

#include <shmkit.h>

/* Exit codes: a contract with scripts (documented in shmkit(1)). */
enum {
	CLI_OK = 0,    /* success */
	CLI_ERR = 1,   /* runtime error: one line on stderr naming the object and the reason */
	CLI_USAGE = 2, /* usage error: unknown command/option, bad or missing argument */
};

struct cli_cmd {
	const char *name;
	/* argv[0] is the command name; returns CLI_OK, CLI_ERR or CLI_USAGE. */
	int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
	const char *summary; /* one line for `shmkit --help` */
	const char *usage;   /* the full text for `shmkit help CMD` / `shmkit CMD --help` */
};

/* The command table (cli/main.c), terminated by a row with name NULL. */
extern const struct cli_cmd cli_commands[];

/* --- command handlers ----------------------------------------------------------------- */

/* cli/admin.c */
int cli_cmd_ls(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_stat(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_rm(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_gc(const struct cli_cmd *cmd, int argc, char **argv);
/* cli/demo.c */
int cli_cmd_demo(const struct cli_cmd *cmd, int argc, char **argv);
/* cli/demo_chan.c: examples/chan_producer_consumer.c, compiled in */
int shmkit_example_chan_producer_consumer(int nmessages);
/* cli/pubsub.c */
int cli_cmd_pub(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_sub(const struct cli_cmd *cmd, int argc, char **argv);
extern const char cli_usage_pub[];
extern const char cli_usage_sub[];
struct cli_kv;
void cli_chan_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv);
/* cli/table.c */
int cli_cmd_table(const struct cli_cmd *cmd, int argc, char **argv);
extern const char cli_usage_table[];
struct cli_kv;
void cli_table_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv);

/* cli/bridge.c (a stub that says so when built without libnats) */
int cli_cmd_bridge(const struct cli_cmd *cmd, int argc, char **argv);
extern const char cli_usage_bridge[];
void cli_bridge_describe(const struct shmkit_segment_info *inf, struct cli_kv *kv);

/* cli/bench.c */
int cli_cmd_bench(const struct cli_cmd *cmd, int argc, char **argv);
extern const char cli_usage_bench[];

/* cli/top.c, cli/hz.c, cli/record.c: watching channels (issue 16) */
int cli_cmd_top(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_hz(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_record(const struct cli_cmd *cmd, int argc, char **argv);
int cli_cmd_replay(const struct cli_cmd *cmd, int argc, char **argv);
extern const char cli_usage_top[];
extern const char cli_usage_hz[];
extern const char cli_usage_record[];
extern const char cli_usage_replay[];

/* cli/suggest.c: the candidate (NULL-terminated list) that `word` is most likely a typo
 * of, or NULL when none is near. */
const char *cli_suggest(const char *word, const char *const *candidates);

/* The long option of `usage` (a usage text: every "--word" in it is a candidate) that the
 * rejected `typed` ("--capacty" or "--capacty=4M") is most likely a typo of, copied into
 * buf with its dashes; NULL when none is near, or when `typed` abbreviates several. */
const char *cli_suggest_option(const char *typed, const char *usage, char *buf, size_t cap);

/* What an object of `kind` (enum shmkit_kind) is called in messages: "stream channel",
 * "pub/sub channel", "work queue", "table", "raw segment"; "segment of unknown kind". */
const char *cli_kind_word(uint32_t kind);

/* cli/open_error.c: cli_error() for a failed open of `name` (with `backend`), where `want` says what the
 * command expected ("stream channel", "table"; NULL: any kind), with the next step:
 * -EMEDIUMTYPE looks at what the segment is and says so ("'cfg' is a table, not a stream
 * channel"), -ENOENT names the nearest existing name ("did you mean 'cfg'?"), -EPERM
 * points at --foreign when the command has it, -ENOTUNIQ at stat and rm --force. Returns
 * CLI_ERR. */
int cli_open_error(const struct cli_cmd *cmd, const char *name, uint32_t backend, int err,
		   const char *want);

/* --- diagnostics (cli/util.c) ------------------------------------------------------------ */

/* Prints the command's usage text to `out`. */
void cli_print_usage(const struct cli_cmd *cmd, FILE *out);

/* Prints "shmkit: CMD: <message>" and the hint "Try 'shmkit CMD --help'." to stderr;
 * returns CLI_USAGE. */
int cli_usage_error(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints the one-line runtime error "shmkit: CMD: WHAT: <shmkit_strerror(err)>" to stderr;
 * returns CLI_ERR. */
int cli_error(const struct cli_cmd *cmd, const char *what, int err);

/* cli_error() for the failed creation of a segment of `backend`: a limit the kernel
 * enforces is named with its value ("larger than kernel.shmmax (N bytes)", "no space left
 * on /dev/shm (N of M bytes free)", the System V shmall/shmmni limits). */
int cli_create_error(const struct cli_cmd *cmd, const char *what, int err, uint32_t backend);

/* Prints "shmkit: CMD: <message>" to stderr; returns CLI_ERR. */
int cli_errorf(const struct cli_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- option parsing (cli/util.c) ----------------------------------------------------------- */

/* Resets getopt_long() for a fresh argv. Call before each command's option loop, which must
 * use an optstring starting with ':' (so a missing argument is reported as ':'). */
void cli_getopt_reset(void);

/* Reports the option getopt_long() just rejected (`c` is '?' or ':') as a usage error. */
int cli_bad_option(const struct cli_cmd *cmd, int c, char **argv);

/* The `default:` branch of a command's option switch that ends the command: for 'h' (-h,
 * --help) prints the usage and returns CLI_OK, for anything else reports the rejected
 * option (cli_bad_option()) and returns CLI_USAGE. */
int cli_default_option(const struct cli_cmd *cmd, int c, char **argv);

/* Describes that rejection in `buf` ("unknown option '--bogus'", ...); returns buf. */
const char *cli_getopt_problem(char *buf, size_t cap, int c, char **argv);

/* Strict number parsing: the whole string must be a number in range — no blanks, no sign
 * for unsigned values, nothing after it. Base 10, or 16 with a mandatory 0x prefix. Return
 * 0 or -EINVAL (not a number) / -ERANGE (out of range). */
int cli_parse_u64(const char *s, int base, uint64_t max, uint64_t *out);
int cli_parse_int(const char *s, int min, int max, int *out);

/* A System V key: decimal (INT32_MIN..INT32_MAX) or 0x hex (0x1..0xffffffff, taken as the
 * 32-bit pattern). 0 (IPC_PRIVATE) is refused. */
int cli_parse_sysv_key(const char *s, int32_t *out);

/* "posix" or "sysv" (and "any"). */
int cli_parse_backend(const char *s, uint32_t *out);

/* The --backend/--sysv-key pair that stat and rm share: --sysv-key implies sysv, and
 * contradicts --backend posix. Returns CLI_OK, or CLI_USAGE after reporting. */
struct cli_target {
	uint32_t backend;
	int32_t sysv_key;
	bool have_backend;
	bool have_key;
};
int cli_target_option(const struct cli_cmd *cmd, struct cli_target *t, int c, const char *arg);
int cli_target_finish(const struct cli_cmd *cmd, struct cli_target *t);

/* Checks a segment name given on the command line; reports a usage error if invalid. */
int cli_check_name(const struct cli_cmd *cmd, const char *name);

/* Takes the one operand left after the options (argv[optind]) as *name: reports "missing
 * WHAT NAME", an extra argument or an invalid name as a usage error. Returns CLI_OK or
 * CLI_USAGE. */
int cli_name_arg(const struct cli_cmd *cmd, int argc, char **argv, const char *what,
		 const char **name);

/* Describes a target for messages: "NAME", "key 12345" or "NAME (key 12345)". */
const char *cli_target_label(char *buf, size_t cap, const char *name, int32_t sysv_key);

/* --- formatting (cli/util.c) --------------------------------------------------------------- */

/* A short word for a segment status: "ok", "not-ready", "corrupt", "incompatible",
 * "truncated", "foreign", "wrong-kind", "other-user", "no-access", "error". */
const char *cli_status_word(int status);

/* "ephemeral", "persistent", or NULL when unknown (enum shmkit_lifetime). */
const char *cli_lifetime_word(uint32_t lifetime);

/* --persistent (`persistent` true) or --ephemeral on a creating command: records the
 * choice in *lifetime (enum shmkit_lifetime, 0 until one is given); the other one given as
 * well is a usage error. Returns CLI_OK or CLI_USAGE after reporting. */
int cli_lifetime_option(const struct cli_cmd *cmd, uint32_t *lifetime, bool persistent);

/* The segment flag for the lifetime chosen (0: none given, take the command's `dflt`):
 * SHMKIT_SEG_PERSISTENT or 0. */
uint32_t cli_lifetime_flags(uint32_t lifetime, uint32_t dflt);

/* "ready", "initializing" or "unknown". */
const char *cli_state_word(uint32_t state);

/* Human-readable byte count: "512B", "4.0K", "1.5M", "12G". */
const char *cli_human_size(char *buf, size_t cap, uint64_t bytes);

/* The owner's user name, or the uid in decimal when it has none. */
const char *cli_user_name(char *buf, size_t cap, uint32_t uid);

/* CLOCK_REALTIME nanoseconds as ISO-8601 UTC ("2024-05-01T12:00:00Z"); NULL for 0. */
const char *cli_iso_time(char *buf, size_t cap, uint64_t ns);

/* Whether the segment's header was readable enough to trust its fields (kind, data size,
 * creator): shmkit_segment_stat()/list() leave kind 0 otherwise. */
static inline bool cli_info_trusted(const struct shmkit_segment_info *inf)
{
	return inf->kind != 0;
}

/* Writes `s` as a JSON string literal (quotes included): escapes quotes, backslashes and
 * control characters, and replaces invalid UTF-8 with U+FFFD. */
void cli_json_string(FILE *out, const char *s);

/* The same for `n` bytes that may hold NULs (each a \u0000); DEL is escaped too when
 * `escape_del`. Returns false when bytes that are not UTF-8 had to be replaced. */
bool cli_json_bytes(FILE *out, const void *p, size_t n, bool escape_del);

/* Options that open exactly the segment `inf` describes, with `flags`: its backend and,
 * for System V, its key (a name may be held by two System V segments). */
struct shmkit_segment_opts cli_info_opts(const struct shmkit_segment_info *inf, uint32_t flags);

/* --- key/value output ---------------------------------------------------------------------
 * One object, written either as "key: value" lines (human) or as one JSON object. `stat`,
 * `ls --json` and the kind hooks all describe segments through it, so the human and JSON
 * views carry the same keys. A NULL string or cli_kv_null() is JSON null and "-" for humans.
 */
struct cli_kv {
	FILE *out;
	bool json;
	int count; /* fields written so far */
};

void cli_kv_begin(struct cli_kv *kv, FILE *out, bool json);
void cli_kv_end(struct cli_kv *kv);
void cli_kv_str(struct cli_kv *kv, const char *key, const char *val);
void cli_kv_i64(struct cli_kv *kv, const char *key, int64_t val);
void cli_kv_u64(struct cli_kv *kv, const char *key, uint64_t val);
void cli_kv_null(struct cli_kv *kv, const char *key);
/* Bytes: JSON number; human "4096 (4.0K)". */
void cli_kv_size(struct cli_kv *kv, const char *key, uint64_t val);
/* Permission bits: JSON number; human octal "0600". */
void cli_kv_mode(struct cli_kv *kv, const char *key, uint32_t val);
/* 1/0/-1: JSON true/false/null; human yes/no/?. */
void cli_kv_tristate(struct cli_kv *kv, const char *key, int val);
/* part/whole as a percentage with one decimal: JSON number (12.5); human "12.5%". */
void cli_kv_percent(struct cli_kv *kv, const char *key, uint64_t part, uint64_t whole);

/* Writes every generic field of a segment description (the keys of `shmkit ls --json`). */
void cli_info_kv(struct cli_kv *kv, const struct shmkit_segment_info *inf);

/* --- options shared by the streaming commands (pub, sub; cli/util.c) --------------------- */

/* How messages are cut from a byte stream and written back to one. */
enum cli_framing { CLI_FRAMING_RAW, CLI_FRAMING_LINES, CLI_FRAMING_LEN };

/* "raw", "lines", "len": 0 or -EINVAL. */
int cli_parse_framing(const char *s, enum cli_framing *f);

/* Digits with an optional K, M or G suffix (powers of 1024), at most `max`: 0, -EINVAL,
 * -ERANGE. */
int cli_parse_bytes(const char *s, uint64_t max, uint64_t *out);

/* Seconds: digits, optionally a point and 1..9 more digits: 0, -EINVAL, -ERANGE. */
int cli_parse_seconds(const char *s, uint64_t *ns);

/* A --timeout: whether one was given, and each wait's bound. When `announce` is set,
 * cli_open_wait() says once on stderr that it waits for the object to appear
 * ("shmkit: sub: waiting for 'x' to appear"); -q leaves it NULL. */
struct cli_waiting {
	bool bounded;
	uint64_t timeout_ns;
	const struct cli_cmd *announce; /* the command saying it; NULL: quiet */
	const char *name;               /* the object waited for */
};

/* The deadline of a wait starting now, or NULL (no bound). */
const struct timespec *cli_deadline(const struct cli_waiting *w, struct timespec *ts);

/* Sleeps `ns` nanoseconds, resuming after signals. */
void cli_nap(uint64_t ns);

/* Calls try_open(ctx) until it returns something other than -ENOENT / -EAGAIN (the
 * object does not exist yet, or its creator has not published it), pausing between tries
 * with growing pauses up to 50 ms. Returns that result, or -ETIMEDOUT once the --timeout
 * passed (with timeout 0: the -ENOENT / -EAGAIN itself). */
int cli_open_wait(int (*try_open)(void *ctx), void *ctx, const struct cli_waiting *w);

/* --- what pub and sub moved (cli/flow.c) ---------------------------------------------------
 * Counters kept in the process (nothing in shared memory), a --progress line on stderr and
 * the -v / --json summary at the end. The data path pays one add per message; the clock is
 * read only every FLOW_CHECK_EVERY messages (or for a message of 4 KiB or more, or before a
 * wait), so the display costs nothing measurable.
 */
#define CLI_FLOW_CHECK_EVERY 64u

struct cli_flow {
	const struct cli_cmd *cmd;
	const char *name;
	const char *kind;        /* "stream", "pubsub": the summary's "kind" */
	uint64_t msgs, bytes, lost;
	uint64_t start_ns;
	uint64_t interval_ns;    /* --progress: between two lines; 0: no progress display */
	uint64_t next_ns;        /* when the next progress line is due */
	uint64_t last_msgs, last_bytes, last_ns; /* at the previous line, for the rate */
	bool tty;                /* stderr is a terminal: refresh one line in place */
	bool shown;              /* a progress line is on the terminal, unterminated */
	bool verbose, json;      /* -v, --json: the summary at the end */
};

/* Starts counting (now). */
void cli_flow_start(struct cli_flow *f);

/* The clock check: prints a progress line when one is due. */
void cli_flow_tick(struct cli_flow *f);

/* Counts one message of `len` bytes. */
static inline void cli_flow_count(struct cli_flow *f, size_t len)
{
	f->msgs++;
	f->bytes += len;
	if (f->interval_ns && ((f->msgs % CLI_FLOW_CHECK_EVERY) == 0 || len >= 4096))
		cli_flow_tick(f);
}

/* The end: the last progress line (ended by a newline), then with -v the summary line
 * ("shmkit: sub: NAME: 1000 messages, 64000 bytes in 1.250 s, 0 lost") or with --json the
 * summary object (shmkit(1) documents it), both on stderr. `rc` is the exit status. */
void cli_flow_end(struct cli_flow *f, int rc);

/* The options pub and sub share for this: --progress[=SEC], -v/--verbose, --json and
 * -q/--quiet (no "waiting for 'x' to appear"). Put CLI_FLOW_OPTIONS in the option table and
 * "vjq" in the optstring; cli_flow_option() takes the option getopt_long() returned and
 * returns CLI_OK (taken), CLI_USAGE (reported) or -1 (not one of these). */
#define CLI_OPT_PROGRESS 0x1000
#define CLI_FLOW_OPTIONS                                                                         \
	{"progress", optional_argument, NULL, CLI_OPT_PROGRESS},                                 \
		{"verbose", no_argument, NULL, 'v'}, {"json", no_argument, NULL, 'j'},            \
		{"quiet", no_argument, NULL, 'q'}
int cli_flow_option(const struct cli_cmd *cmd, struct cli_flow *f, bool *quiet, int c,
		    const char *arg);

/* --- writing records and stopping cleanly (pub, sub; cli/util.c) ------------------------ */

/* The pieces of one record in `f`: [4-byte length], the message, [newline]. Fills iov
 * (3 entries; hdr holds the length prefix) and returns how many are used. */
int cli_record_iov(enum cli_framing f, const void *msg, size_t len, uint8_t hdr[4],
		   struct iovec iov[3]);

/* Writes the iovecs completely: retries EINTR, resumes partial writes, waits out EAGAIN
 * (a non-blocking descriptor). 0 or a negative errno (-EPIPE: the reader went away). */
int cli_writev_all(int fd, struct iovec *iov, int cnt);

/* SIGINT, SIGTERM and SIGHUP, once caught by cli_catch_stop(): the signal's number, else
 * 0. The handler only records it; waits return -EINTR (no SA_RESTART) and the command
 * checks this at its next record boundary. A second signal of the same kind kills at once
 * (SA_RESETHAND). */
extern volatile sig_atomic_t cli_stop_sig;
void cli_catch_stop(void);

/* After a caught stop signal: ends the process by that signal, as if it had not been
 * caught (the shell sees "killed by SIGINT" and stops a loop). Returns `rc` otherwise. */
int cli_stop_exit(int rc);

/* --- kind-specific stat detail (cli/admin.c) ------------------------------------------------
 * `shmkit stat` prints the generic fields, then calls the hook registered for the segment's
 * kind, if any, to append more fields to the same object (ring capacity, subscribers, table
 * fill, ...). Hooks run only for valid segments (status 0). A hook that fails to open the
 * segment should add a "detail_error" field rather than fail the command. To add one: write
 * the function next to the kind's other CLI code and add a row to cli_stat_kind_hooks[] in
 * cli/admin.c.
 */
struct cli_stat_kind_hook {
	uint32_t kind; /* enum shmkit_kind; 0 ends the table */
	void (*describe)(const struct shmkit_segment_info *inf, struct cli_kv *kv);
};
extern const struct cli_stat_kind_hook cli_stat_kind_hooks[];

/* For a hook whose segment could not be opened or read: when err is nonzero, adds the field
 * "detail_error" (shmkit_strerror(err)) and returns true; returns false when err is 0. */
bool cli_kv_detail_error(struct cli_kv *kv, int err);

#endif
