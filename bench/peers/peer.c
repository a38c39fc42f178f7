/* bench/peers — the driver the peer benchmarks share (see peer.h). */
#include "peer.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/report.h"

#define MAX_SIZES 8

static int parse_sizes(const char *arg, size_t *sizes, int *n)
{
	char *dup = strdup(arg), *save = NULL;
	*n = 0;
	for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long long v = strtoull(t, &end, 10);
		if (*end == 'K' || *end == 'k')
			v <<= 10, end++;
		else if (*end == 'M' || *end == 'm')
			v <<= 20, end++;
		if (*end || t[0] == '-' || v == 0 || v > (16u << 20) || *n == MAX_SIZES) {
			free(dup);
			return -EINVAL;
		}
		sizes[(*n)++] = (size_t)v;
	}
	free(dup);
	return *n ? 0 : -EINVAL;
}

int peer_main(int argc, char **argv, const char *title, const struct ipc_mech *const *mechs,
	      int nmech)
{
	size_t sizes[MAX_SIZES] = {64, 4096, 65536, 1048576};
	int nsize = 4, quick = 0, json = 0;
	double budget = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--duration") == 0 && i + 1 < argc) {
			char *end;
			budget = strtod(argv[++i], &end);
			if (*end || !(budget >= 1 && budget <= 3600)) {
				fprintf(stderr, "%s: bad --duration '%s'\n", argv[0], argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			if (parse_sizes(argv[++i], sizes, &nsize) != 0) {
				fprintf(stderr, "%s: bad --sizes '%s'\n", argv[0], argv[i]);
				return 2;
			}
		} else {
			fprintf(stderr, "usage: %s [--quick] [--duration SEC] [--sizes LIST] [--json]\n",
				argv[0]);
			return strcmp(argv[i], "--help") == 0 ? 0 : 2;
		}
	}
	if (budget == 0)
		budget = quick ? 4 : 40;
	const struct ipc_mech *all[32];
	int na = 0;
	static const char *const ours[] = {"shmkit-spin", "shmkit-block", "ring"};
	for (int i = 0; i < 3; i++)
		all[na++] = ipc_find(NULL, ours[i]);
	for (int i = 0; i < nmech && na < 32; i++)
		all[na++] = mechs[i];
	struct ipc_plan plan = {
		.mechs = all,
		.nmech = na,
		.nsize = 1,
		.budget_s = budget / nsize,
		.blocks = quick ? 3 : 5,
	};
	ipc_default_cpus(plan.cpu);
	if (plan.cpu[1] < 0)
		plan.cpu[0] = -1;

	/* One process per size; results come back through anonymous shared memory. */
	int per = na + 1;
	size_t bytes = (size_t)nsize * (size_t)per * sizeof(struct ipc_result);
	struct ipc_result *res = bench_shared_alloc(bytes);
	if (!res) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		return 1;
	}
	double load[1] = {0};
	(void)getloadavg(load, 1);
	int rc = 0;
	for (int s = 0, attempt = 0; s < nsize && rc == 0; s++) {
		fprintf(stderr, "%s: %zu bytes...\n", argv[0], sizes[s]);
		fflush(NULL);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			rc = 1;
			break;
		}
		if (pid == 0) {
			struct ipc_plan p = plan;
			p.sizes = &sizes[s];
			struct ipc_result *r;
			int n = ipc_run(&p, &r);
			if (n != per)
				_exit(n == -EINTR ? 3 : 1);
			memcpy(res + (size_t)s * (size_t)per, r, (size_t)n * sizeof *r);
			free(r);
			_exit(0);
		}
		int status = 0;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "%s: the run at %zu bytes failed (status %#x)\n", argv[0],
				sizes[s], status);
			rc = 1;
			break;
		}
		/* A library whose runtime cannot be restarted in a process fails the driver's
		 * in-process retry after any failure: run the size once more, fresh. */
		int failed = 0;
		for (int i = 0; i < per; i++)
			failed |= res[(size_t)s * (size_t)per + (size_t)i].err != 0;
		if (failed && attempt == 0) {
			fprintf(stderr, "%s: a mechanism failed at %zu bytes; running that size again\n",
				argv[0], sizes[s]);
			attempt = 1;
			s--;
			continue;
		}
		attempt = 0;
	}
	if (rc == 0) {
		int n = nsize * per;
		for (int i = 0; i < n; i++)
			if (res[i].err)
				fprintf(stderr, "%s: %s at %zu bytes failed: %s\n", argv[0],
					res[i].mech->name, res[i].size, res[i].errmsg);
		if (json) {
			report_json(stdout, res, n);
		} else {
			printf("## %s (load average %.2f at the start)\n\n", title, load[0]);
			report_placement(stdout, res, n, plan.cpu);
			printf("\n");
			report_markdown(stdout, res, n);
		}
	}
	bench_shared_free(res, bytes);
	return rc;
}
