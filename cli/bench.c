/* shmkit CLI — `shmkit bench`: shmkit's stream channel next to the IPC a program would
 * otherwise use, two processes pinned to two CPUs, every ratio taken against a floor
 * measured in the same run. The measuring code is bench/lib/ (shared with `make bench`).
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cli.h"
#include "lib/ipc.h"
#include "lib/report.h"
#include "lib/pubsub.h"
#include "lib/table.h"

#define MAX_SIZES 16
#define MAX_SIZE (16u << 20)
#define DEFAULT_BUDGET_S 60.0
#define QUICK_BUDGET_S 4.0

/* The shared-table benchmark (bench/lib/table.c) behind `shmkit bench --table`. Weak, so
 * that the CLI still links (and says so) in a tree without it. */
int bench_table_run(const struct bench_table_opts *o, FILE *out) __attribute__((weak));
/* The many-party benchmark (bench/lib/pubsub.c) behind `shmkit bench --pubsub`. */
int bench_multi_run(const struct bench_multi_opts *o, FILE *out) __attribute__((weak));

const char cli_usage_bench[] =
	"Usage: shmkit bench [--quick] [--duration SEC] [--sizes LIST] [--mechanisms LIST]\n"
	"                    [--cpus A,B] [--json[=FILE]] [--svg FILE] [--png FILE]\n"
	"       shmkit bench --list\n"
	"       shmkit bench --table [--quick] [--seconds SEC] [--no-redis]\n"
	"       shmkit bench --pubsub [--quick] [--iters N] [--size B] [--pubsub-only|--queue-only]\n"
	"\n"
	"Measures shmkit's stream channel against the raw floors and the IPC a program would\n"
	"otherwise use. Each mechanism runs between two processes pinned to two CPUs, as a\n"
	"ping-pong (round-trip percentiles) and as a one-way stream (msg/s, GB/s), interleaved\n"
	"in blocks so that all see the same CPU placement. '× floor' divides a round trip by the\n"
	"cache-line ping-pong of the same run, '× shmkit' by shmkit-spin's; the first line\n"
	"reports the placement (the floor), so two runs can be compared by their ratios.\n"
	"\n"
	"Options:\n"
	"  -q, --quick            a short run (about 5 s; fewer samples)\n"
	"  -d, --duration SEC     measuring time of the whole run (default 60; 1..3600)\n"
	"  -s, --sizes LIST       message sizes in bytes, K/M suffixes allowed\n"
	"                         (default 64,4096,65536,1048576; 1..16M)\n"
	"  -m, --mechanisms LIST  what to measure (default: the standard set; 'all': every one;\n"
	"                         see --list). The floor is always measured.\n"
	"  -c, --cpus A,B         CPU numbers for the two processes (default: the first two\n"
	"                         this process may use; 'none': do not pin)\n"
	"  -j, --json[=FILE]      JSON: one object per row; to stdout instead of the table, or\n"
	"                         to FILE next to it\n"
	"      --svg FILE         write the charts (gnuplot; installs gnuplot-nox if missing)\n"
	"      --png FILE         same, as PNG\n"
	"  -l, --list             list the mechanisms and exit\n"
	"      --table            run the shared-table benchmark instead: get/put against one\n"
	"                         process alone and against Redis (--seconds per scenario,\n"
	"                         --no-redis to skip Redis)\n"
	"      --pubsub           run the many-party benchmark instead: pub/sub with 1, 2, 4, 8\n"
	"                         subscribers and the work queue with 1, 2, 4 producers and\n"
	"                         consumers (needs 9 CPUs to mean much; --iters messages per\n"
	"                         configuration, --size bytes 8..4096)\n"
	"  -h, --help             show this help\n"
	"\n"
	"Exit status: 0 success, 1 runtime error (a mechanism failed), 2 usage error.\n";

struct bench_args {
	size_t sizes[MAX_SIZES];
	int nsize;
	const struct ipc_mech *mechs[64];
	int nmech;
	int cpu[2];
	double budget_s;
	int quick, list, have_duration;
	const char *json, *svg, *png;
	int json_stdout;
};

/* "64", "4K", "4KiB", "1M", "1MiB" (powers of 1024). */
static int parse_size(const char *s, size_t *out)
{
	char num[32];
	size_t i = 0;
	while (s[i] >= '0' && s[i] <= '9' && i < sizeof num - 1) {
		num[i] = s[i];
		i++;
	}
	num[i] = '\0';
	uint64_t v, mul = 1;
	const char *suf = s + i;
	if (!strcmp(suf, "") || !strcmp(suf, "B"))
		mul = 1;
	else if (!strcmp(suf, "K") || !strcmp(suf, "k") || !strcmp(suf, "KiB"))
		mul = 1024;
	else if (!strcmp(suf, "M") || !strcmp(suf, "m") || !strcmp(suf, "MiB"))
		mul = 1024 * 1024;
	else
		return -EINVAL;
	int err = cli_parse_u64(num, 10, MAX_SIZE, &v);
	if (err)
		return err;
	if (v == 0 || v * mul > MAX_SIZE)
		return -ERANGE;
	*out = (size_t)(v * mul);
	return 0;
}

static int parse_sizes(const struct cli_cmd *cmd, const char *arg, struct bench_args *a)
{
	char *dup = strdup(arg), *save = NULL;
	if (!dup)
		return cli_error(cmd, "--sizes", -ENOMEM);
	a->nsize = 0;
	int rc = CLI_OK;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t v;
		if (parse_size(t, &v) != 0) {
			rc = cli_usage_error(cmd, "bad size '%s' in --sizes (1 to 16M bytes)", t);
			break;
		}
		if (a->nsize == MAX_SIZES) {
			rc = cli_usage_error(cmd, "too many sizes (at most %d)", MAX_SIZES);
			break;
		}
		a->sizes[a->nsize++] = v;
	}
	if (rc == CLI_OK && a->nsize == 0)
		rc = cli_usage_error(cmd, "--sizes needs at least one size");
	free(dup);
	return rc;
}

static int parse_mechs(const struct cli_cmd *cmd, const char *arg, struct bench_args *a)
{
	a->nmech = 0;
	if (strcmp(arg, "all") == 0) {
		for (const struct ipc_mech *const *m = ipc_mechs; *m; m++)
			a->mechs[a->nmech++] = *m;
		return CLI_OK;
	}
	char *dup = strdup(arg), *save = NULL;
	if (!dup)
		return cli_error(cmd, "--mechanisms", -ENOMEM);
	int rc = CLI_OK;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		const struct ipc_mech *m = ipc_find(NULL, t);
		if (!m) {
			rc = cli_usage_error(cmd, "unknown mechanism '%s' (see 'shmkit bench --list')", t);
			break;
		}
		int dup_m = 0;
		for (int i = 0; i < a->nmech; i++)
			dup_m |= a->mechs[i] == m;
		if (!dup_m && a->nmech < 64)
			a->mechs[a->nmech++] = m;
	}
	if (rc == CLI_OK && a->nmech == 0)
		rc = cli_usage_error(cmd, "--mechanisms needs at least one mechanism");
	free(dup);
	return rc;
}

static int parse_cpus(const struct cli_cmd *cmd, const char *arg, struct bench_args *a)
{
	if (strcmp(arg, "none") == 0) {
		a->cpu[0] = a->cpu[1] = -1;
		return CLI_OK;
	}
	const char *comma = strchr(arg, ',');
	char first[16];
	if (!comma || (size_t)(comma - arg) >= sizeof first)
		return cli_usage_error(cmd, "--cpus wants two CPU numbers, 'A,B'");
	memcpy(first, arg, (size_t)(comma - arg));
	first[comma - arg] = '\0';
	if (cli_parse_int(first, 0, CPU_SETSIZE - 1, &a->cpu[0]) != 0 ||
	    cli_parse_int(comma + 1, 0, CPU_SETSIZE - 1, &a->cpu[1]) != 0)
		return cli_usage_error(cmd, "bad --cpus '%s' (two CPU numbers, 'A,B')", arg);
	if (a->cpu[0] == a->cpu[1])
		return cli_usage_error(cmd, "--cpus needs two different CPUs");
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		for (int i = 0; i < 2; i++)
			if (!CPU_ISSET(a->cpu[i], &set))
				return cli_usage_error(cmd, "CPU %d is not available to this process",
						       a->cpu[i]);
	return CLI_OK;
}

static int parse_duration(const struct cli_cmd *cmd, const char *arg, struct bench_args *a)
{
	char *end;
	errno = 0;
	double v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= 1 && v <= 3600) || arg[0] == ' ')
		return cli_usage_error(cmd, "bad --duration '%s' (1 to 3600 seconds)", arg);
	a->budget_s = v;
	a->have_duration = 1;
	return CLI_OK;
}

static int parse_args(const struct cli_cmd *cmd, int argc, char **argv, struct bench_args *a)
{
	enum { O_SVG = 256, O_PNG, O_TABLE };
	static const struct option opts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"duration", required_argument, NULL, 'd'},
		{"sizes", required_argument, NULL, 's'},
		{"mechanisms", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},
		{"json", optional_argument, NULL, 'j'},
		{"svg", required_argument, NULL, O_SVG},
		{"png", required_argument, NULL, O_PNG},
		{"list", no_argument, NULL, 'l'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const size_t default_sizes[] = {64, 4096, 65536, 1048576};
	memset(a, 0, sizeof *a);
	for (int i = 0; i < 4; i++)
		a->sizes[i] = default_sizes[i];
	a->nsize = 4;
	for (const struct ipc_mech *const *m = ipc_mechs; *m; m++)
		if ((*m)->caps & IPC_CAP_DEFAULT)
			a->mechs[a->nmech++] = *m;
	ipc_default_cpus(a->cpu);
	a->budget_s = DEFAULT_BUDGET_S;
	cli_getopt_reset();
	int c, rc;
	while ((c = getopt_long(argc, argv, ":qd:s:m:c:j::lh", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			a->quick = 1;
			break;
		case 'd':
			if ((rc = parse_duration(cmd, optarg, a)) != CLI_OK)
				return rc;
			break;
		case 's':
			if ((rc = parse_sizes(cmd, optarg, a)) != CLI_OK)
				return rc;
			break;
		case 'm':
			if ((rc = parse_mechs(cmd, optarg, a)) != CLI_OK)
				return rc;
			break;
		case 'c':
			if ((rc = parse_cpus(cmd, optarg, a)) != CLI_OK)
				return rc;
			break;
		case 'j':
			if (optarg && *optarg)
				a->json = optarg;
			else
				a->json_stdout = 1;
			break;
		case O_SVG:
			a->svg = optarg;
			break;
		case O_PNG:
			a->png = optarg;
			break;
		case 'l':
			a->list = 1;
			break;
		case 'h':
			cli_print_usage(cmd, stdout);
			return -1;
		default:
			return cli_bad_option(cmd, c, argv);
		}
	}
	if (optind < argc)
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (a->quick && !a->have_duration)
		a->budget_s = QUICK_BUDGET_S;
	return CLI_OK;
}

/* --- progress -------------------------------------------------------------------------------- */

struct progress_state {
	const struct bench_args *a;
	int tty;
	size_t last_size;
	const char *last_phase;
};

static void on_progress(void *arg, const char *phase, size_t size, const char *mech, int done,
			int total)
{
	struct progress_state *p = arg;
	int si = 0;
	while (si < p->a->nsize - 1 && p->a->sizes[si] != size)
		si++;
	char s[32];
	report_fmt_size(s, sizeof s, size);
	if (p->tty) {
		fprintf(stderr, "\r\033[Kshmkit bench: size %d/%d (%s), %s: %s [%d/%d]", si + 1,
			p->a->nsize, s, phase, mech, done, total);
	} else if (size != p->last_size || strcmp(phase, p->last_phase ? p->last_phase : "") != 0) {
		/* Not a terminal: one line per size and phase, not per block. */
		if (strncmp(phase, "warm-up", 7) != 0 || size != p->last_size)
			fprintf(stderr, "shmkit bench: size %d/%d (%s), %s\n", si + 1, p->a->nsize, s,
				phase);
	}
	p->last_size = size;
	p->last_phase = phase;
	fflush(stderr);
}

/* --- output ---------------------------------------------------------------------------------- */

static void machine_line(FILE *f, double load_before)
{
	char model[256] = "unknown CPU";
	FILE *ci = fopen("/proc/cpuinfo", "r");
	if (ci) {
		char line[512];
		while (fgets(line, sizeof line, ci)) {
			if (strncmp(line, "model name", 10) == 0) {
				char *colon = strchr(line, ':');
				if (colon) {
					snprintf(model, sizeof model, "%s", colon + 2);
					model[strcspn(model, "\n")] = '\0';
				}
				break;
			}
		}
		fclose(ci);
	}
	struct utsname u;
	if (uname(&u) != 0)
		snprintf(u.release, sizeof u.release, "?");
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	fprintf(f, "Machine: %s, %ld CPUs online, Linux %s, load average %.2f at the start\n", model,
		n, u.release, load_before);
}

static double loadavg(void)
{
	double l[1] = {0};
	return getloadavg(l, 1) == 1 ? l[0] : -1;
}

static int list_mechs(void)
{
	printf("%-18s %-10s %-9s %s\n", "NAME", "MEASURES", "DEFAULT", "DESCRIPTION");
	for (const struct ipc_mech *const *m = ipc_mechs; *m; m++) {
		unsigned c = (*m)->caps;
		const char *what = (c & IPC_CAP_LATENCY) && (c & IPC_CAP_STREAM) ? "rtt,stream"
				   : (c & IPC_CAP_LATENCY)                        ? "rtt"
										  : "stream";
		printf("%-18s %-10s %-9s %s\n", (*m)->name, what, c & IPC_CAP_DEFAULT ? "yes" : "no",
		       (*m)->label);
	}
	return CLI_OK;
}

/* shmkit bench --table [--quick] [--seconds SEC] [--no-redis] */
static int run_table(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct bench_table_opts o;
	memset(&o, 0, sizeof o);
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0 || strcmp(argv[i], "-q") == 0) {
			o.quick = 1;
		} else if (strcmp(argv[i], "--no-redis") == 0) {
			o.no_redis = 1;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			o.seconds = strtod(argv[++i], &end);
			if (errno || *end || !(o.seconds > 0 && o.seconds <= 600))
				return cli_usage_error(cmd, "bad --seconds '%s' (0 to 600)", argv[i]);
		} else {
			return cli_usage_error(cmd, "--table: unknown or incomplete option '%s'", argv[i]);
		}
	}
	if (!bench_table_run)
		return cli_errorf(cmd, "the shared-table benchmark is not part of this build");
	int err = bench_table_run(&o, stdout);
	return err < 0 ? cli_error(cmd, "table benchmark", err) : CLI_OK;
}

/* shmkit bench --pubsub [--quick] [--iters N] [--size B] [--pubsub-only | --queue-only] */
static int run_multi(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct bench_multi_opts o;
	memset(&o, 0, sizeof o);
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--quick") == 0 || strcmp(a, "-q") == 0) {
			o.quick = 1;
		} else if (strcmp(a, "--pubsub-only") == 0) {
			o.no_queue = 1;
		} else if (strcmp(a, "--queue-only") == 0) {
			o.no_pubsub = 1;
		} else if ((strcmp(a, "--iters") == 0 || strcmp(a, "--size") == 0) && i + 1 < argc) {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(argv[++i], &end, 10);
			bool iters = strcmp(a, "--iters") == 0;
			if (errno || *end || argv[i][0] == '-' ||
			    (iters ? v < 1 || v > 1000000000ull : v < 8 || v > 4096))
				return cli_usage_error(cmd, "bad %s '%s' (%s)", a, argv[i],
						       iters ? "1 to 1000000000" : "8 to 4096");
			if (iters)
				o.msgs = v;
			else
				o.size = (size_t)v;
		} else {
			return cli_usage_error(cmd, "--pubsub: unknown or incomplete option '%s'", a);
		}
	}
	if (o.no_queue && o.no_pubsub)
		return cli_usage_error(cmd, "--pubsub-only and --queue-only exclude each other");
	if (!bench_multi_run)
		return cli_errorf(cmd, "the many-party benchmark is not part of this build");
	int err = bench_multi_run(&o, stdout);
	return err < 0 ? cli_error(cmd, "pub/sub benchmark", err) : CLI_OK;
}

int cli_cmd_bench(const struct cli_cmd *cmd, int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--table") == 0)
		return run_table(cmd, argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--pubsub") == 0)
		return run_multi(cmd, argc, argv);
	struct bench_args a;
	int rc = parse_args(cmd, argc, argv, &a);
	if (rc < 0)
		return CLI_OK; /* --help */
	if (rc != CLI_OK)
		return rc;
	if (a.list)
		return list_mechs();

	char msg[512];
	if ((a.svg || a.png) && report_need_gnuplot(msg, sizeof msg) != 0)
		return cli_errorf(cmd, "%s", msg);
	if (a.cpu[0] < 0 || a.cpu[1] < 0) {
		if (bench_ncpus() < 2)
			fprintf(stderr, "shmkit: bench: only one CPU available: not pinned, and the "
					"spinning mechanisms will share it (their numbers mean little)\n");
		a.cpu[0] = a.cpu[1] = -1;
	}

	double load0 = loadavg();
	struct progress_state ps = {.a = &a, .tty = isatty(STDERR_FILENO)};
	struct ipc_plan plan = {
		.mechs = a.mechs,
		.nmech = a.nmech,
		.sizes = a.sizes,
		.nsize = a.nsize,
		.cpu = {a.cpu[0], a.cpu[1]},
		.budget_s = a.budget_s,
		.blocks = a.quick ? 3 : 5,
		.progress = on_progress,
		.progress_arg = &ps,
	};
	uint64_t t0 = bench_now_ns();
	struct ipc_result *res;
	int n = ipc_run(&plan, &res);
	if (ps.tty)
		fprintf(stderr, "\r\033[K");
	if (n == -EINTR)
		return cli_errorf(cmd, "interrupted");
	if (n < 0)
		return cli_error(cmd, "run", n);
	double secs = (double)(bench_now_ns() - t0) / 1e9;
	fprintf(stderr, "shmkit bench: done in %.1f s\n", secs);

	int failed = 0;
	for (int i = 0; i < n; i++)
		if (res[i].err) {
			failed = 1;
			fprintf(stderr, "shmkit: bench: %s at %zu bytes failed: %s\n", res[i].mech->name,
				res[i].size, res[i].errmsg);
		}

	if (a.json_stdout) {
		report_json(stdout, res, n);
	} else {
		printf("## shmkit bench\n\n");
		machine_line(stdout, load0);
		report_placement(stdout, res, n, a.cpu);
		printf("Run: %.0f s, %d interleaved blocks per mechanism; round trips are two-process "
		       "ping-pongs, msg/s a one-way stream.\n\n",
		       secs, plan.blocks);
		report_markdown(stdout, res, n);
	}
	rc = failed ? CLI_ERR : CLI_OK;
	if (a.json) {
		FILE *f = fopen(a.json, "w");
		if (!f) {
			rc = cli_errorf(cmd, "%s: %s", a.json, strerror(errno));
		} else {
			report_json(f, res, n);
			if (fclose(f) != 0)
				rc = cli_errorf(cmd, "%s: %s", a.json, strerror(errno));
		}
	}
	char title[256];
	snprintf(title, sizeof title, "shmkit bench (CPUs %d,%d)", a.cpu[0], a.cpu[1]);
	const char *charts[2] = {a.svg, a.png};
	for (int k = 0; k < 2; k++) {
		if (!charts[k])
			continue;
		if (report_chart(charts[k], k == 1, title, res, n, msg, sizeof msg) != 0)
			rc = cli_errorf(cmd, "%s", msg);
	}
	free(res);
	return rc;
}
