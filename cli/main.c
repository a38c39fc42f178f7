/* shmkit CLI — entry point and command table.
 *
 *   shmkit [--help | --version]
 *   shmkit COMMAND [OPTIONS] [ARGS]
 *   shmkit help [COMMAND]
 *
 * Each command lives in its own file (cli/admin.c, cli/demo.c, ...) and is one row of
 * cli_commands[] below: name, handler, one-line summary, usage text. The handler owns its
 * options, including --help. Exit codes (cli.h): 0 ok, 1 runtime error, 2 usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include "cli.h"

/* Usage texts: the first line is the synopsis; options follow, two-space indented. */
static const char usage_demo[] =
	"Usage: shmkit demo [--semaphores] [--count N]\n"
	"\n"
	"Runs the producer/consumer example: the producer writes N messages, the consumer (a\n"
	"forked child) prints each one, then END. By default over a stream channel in an\n"
	"unnamed memfd (examples/chan_producer_consumer.c); with --semaphores over a System V\n"
	"segment at key 12345 holding two semaphores and a 100-byte message\n"
	"(examples/producer_consumer.c), whose key is removed right after creation. Either\n"
	"way nothing is left behind, even if either side dies; the output is the same.\n"
	"\n"
	"Options:\n"
	"  -s, --semaphores  run the segment + semaphores version\n"
	"  -n, --count N     number of messages (default 5, 0..2147483647)\n"
	"  -h, --help        show this help\n";

static const char usage_ls[] =
	"Usage: shmkit ls [--json]\n"
	"\n"
	"Lists every shmkit segment (POSIX objects /dev/shm/shmkit.*, System V segments with a\n"
	"shmkit header), corrupt ones included, with columns\n"
	"NAME BACKEND KEY KIND SIZE MODE OWNER PID ALIVE ATTACHED STATUS.\n"
	"\n"
	"Options:\n"
	"  -j, --json   print a JSON array of objects instead of a table\n"
	"  -h, --help   show this help\n";

static const char usage_stat[] =
	"Usage: shmkit stat NAME [--json] [--backend posix|sysv] [--sysv-key KEY]\n"
	"       shmkit stat --sysv-key KEY [--json]\n"
	"\n"
	"Describes one segment as 'key: value' lines. A corrupt or foreign segment is described\n"
	"(exit 0) with its status; a missing one is an error (exit 1).\n"
	"\n"
	"Options:\n"
	"  -j, --json             print one JSON object\n"
	"  -b, --backend BACKEND  look only at posix or sysv segments\n"
	"  -k, --sysv-key KEY     the System V segment at KEY (decimal or 0x hex)\n"
	"  -h, --help             show this help\n";

static const char usage_rm[] =
	"Usage: shmkit rm NAME... [-v] [--json] [--force] [--backend posix|sysv]\n"
	"       shmkit rm --sysv-key KEY [NAME] [-v] [--json] [--force]\n"
	"\n"
	"Removes segments by name (both backends unless --backend narrows it), or the System V\n"
	"segment at KEY, whatever their lifetime. Every name is checked first: when one is\n"
	"missing, not permitted, or foreign, each such name is reported on its own line, the\n"
	"exit status is 1, and nothing at all is removed. Then each segment is removed only\n"
	"if it is still the one checked (one recreated in between is left alone and\n"
	"reported).\n"
	"\n"
	"Foreign objects (another user's, writable by group or others, or not a shmkit\n"
	"segment at all) are removed only with --force; the message names the system tool\n"
	"that removes them too (ipcrm -m ID, rm /dev/shm/shmkit.NAME).\n"
	"\n"
	"Options:\n"
	"  -b, --backend BACKEND  remove only posix or only sysv segments\n"
	"  -k, --sysv-key KEY     the System V segment at KEY (decimal or 0x hex)\n"
	"  -f, --force            also remove foreign objects\n"
	"  -v, --verbose          print a line for each name removed\n"
	"  -j, --json             print a JSON object: for each NAME what was removed, or\n"
	"                         why not (shmkit(1) has the schema); errors still go to\n"
	"                         standard error\n"
	"  -h, --help             show this help\n";

static const char usage_gc[] =
	"Usage: shmkit gc [--dry-run] [--json] [-v]\n"
	"\n"
	"Removes every ephemeral segment of ours whose creator is dead and that no process\n"
	"has attached or mapped. Never removed: persistent segments (tables and pub/sub\n"
	"channels made by the CLI, by default), foreign ones (another user's, writable by\n"
	"others, not a shmkit segment), and those whose creator or attachments cannot be\n"
	"determined (e.g. a corrupt header), which are reported with the reason. A segment\n"
	"removed and recreated since the listing is left alone.\n"
	"\n"
	"Options:\n"
	"  -n, --dry-run   remove nothing; say for every segment why it would or would not\n"
	"                  be removed\n"
	"  -j, --json      print a JSON object (summary and one entry per segment)\n"
	"  -v, --verbose   also report the segments kept for ordinary reasons (persistent,\n"
	"                  creator alive, another user's)\n"
	"  -h, --help      show this help\n";

const struct cli_cmd cli_commands[] = {
	{"demo", cli_cmd_demo, "run the producer/consumer demo", usage_demo},
	{"ls", cli_cmd_ls, "list shmkit segments", usage_ls},
	{"stat", cli_cmd_stat, "describe one segment", usage_stat},
	{"rm", cli_cmd_rm, "remove segments", usage_rm},
	{"gc", cli_cmd_gc, "remove segments left behind by dead processes", usage_gc},
	{"bench", cli_cmd_bench, "measure shmkit against other IPC, two processes", cli_usage_bench},
	{"table", cli_cmd_table, "create and use shared lookup tables", cli_usage_table},
	{"pub", cli_cmd_pub, "send standard input over a stream channel", cli_usage_pub},
	{"sub", cli_cmd_sub, "write a stream channel's messages to standard output", cli_usage_sub},
	{"bridge", cli_cmd_bridge, "carry a stream channel between machines over NATS", cli_usage_bridge},
	{"top", cli_cmd_top, "live view of every object: rates, fill, parties", cli_usage_top},
	{"hz", cli_cmd_hz, "message rate and inter-arrival times of a channel", cli_usage_hz},
	{"record", cli_cmd_record, "capture a channel's messages with timestamps to a file",
	 cli_usage_record},
	{"replay", cli_cmd_replay, "play a recording back into a channel", cli_usage_replay},
	{NULL, NULL, NULL, NULL},
};

static const struct cli_cmd *find_cmd(const char *name)
{
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static void main_usage(FILE *out)
{
	fputs("Usage: shmkit COMMAND [OPTIONS] [ARGS]\n"
	      "       shmkit help [COMMAND]\n"
	      "       shmkit --version\n"
	      "\n"
	      "Shared-memory IPC for Linux: inspect and manage shmkit segments.\n"
	      "\n"
	      "Commands:\n",
	      out);
	size_t w = 0;
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		if (strlen(c->name) > w)
			w = strlen(c->name);
	for (const struct cli_cmd *c = cli_commands; c->name; c++)
		fprintf(out, "  %-*s  %s\n", (int)w, c->name, c->summary);
	fputs("\n"
	      "Exit status: 0 success, 1 runtime error, 2 usage error.\n"
	      "Run 'shmkit help COMMAND' or 'shmkit COMMAND --help' for a command's options.\n",
	      out);
}

static int main_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int main_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("shmkit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'shmkit --help'.\n", stderr);
	return CLI_USAGE;
}

/* shmkit help [COMMAND] */
static int help(int argc, char **argv)
{
	if (argc == 1) {
		main_usage(stdout);
		return CLI_OK;
	}
	if (argc > 2)
		return main_usage_error("help: too many arguments (starting at '%s')", argv[2]);
	const struct cli_cmd *cmd = find_cmd(argv[1]);
	if (!cmd)
		return main_usage_error("help: unknown command '%s'", argv[1]);
	cli_print_usage(cmd, stdout);
	return CLI_OK;
}

/* Output goes through stdio: a full disk or a closed pipe shows up only when the buffer is
 * flushed, so check once at the end instead of after every printf. */
static int finish(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "shmkit: write error: %s\n", strerror(errno));
		return rc ? rc : CLI_ERR;
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	int c;
	cli_getopt_reset();
	/* '+': stop at the command name; what follows belongs to the command. */
	while ((c = getopt_long(argc, argv, "+:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			main_usage(stdout);
			return finish(CLI_OK);
		case 'V':
			printf("shmkit %s\n", shmkit_version());
			return finish(CLI_OK);
		default: {
			char msg[256], guess[40];
			cli_getopt_problem(msg, sizeof msg, c, argv);
			if (c == '?' && !optopt && optind > 0 &&
			    cli_suggest_option(argv[optind - 1], "--help --version", guess, sizeof guess))
				return main_usage_error("%s; did you mean '%s'?", msg, guess);
			return main_usage_error("%s", msg);
		}
		}
	}
	if (optind >= argc) {
		/* Plain `shmkit`: the usage, on stderr since nothing was done (status 2, as for
		 * any usage error: a script that forgot the command must not see success). */
		main_usage(stderr);
		return CLI_USAGE;
	}
	const char *name = argv[optind];
	if (strcmp(name, "help") == 0)
		return finish(help(argc - optind, argv + optind));
	const struct cli_cmd *cmd = find_cmd(name);
	if (!cmd) {
		const char *names[sizeof cli_commands / sizeof cli_commands[0] + 1];
		size_t n = 0;
		for (const struct cli_cmd *c2 = cli_commands; c2->name; c2++)
			names[n++] = c2->name;
		names[n++] = "help";
		names[n] = NULL;
		const char *guess = cli_suggest(name, names);
		if (guess)
			return main_usage_error("unknown command '%s'; did you mean '%s'?", name, guess);
		return main_usage_error("unknown command '%s'", name);
	}
	return finish(cmd->run(cmd, argc - optind, argv + optind));
}
