/* shmkit benchmarks — shared helpers (see common.h). */
#include "common.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

uint64_t bench_now_ns(void)
{
	struct timespec ts;
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_ncpus(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		return 1;
	int n = CPU_COUNT(&set);
	return n > 0 ? n : 1;
}

int bench_pin_cpu(int index)
{
	cpu_set_t allowed, one;
	if (index < 0)
		return -EINVAL;
	if (sched_getaffinity(0, sizeof allowed, &allowed) != 0)
		return -errno;
	for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (seen++ < index)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		return sched_setaffinity(0, sizeof one, &one) == 0 ? 0 : -errno;
	}
	return -EINVAL;
}

void *bench_shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t size)
{
	if (p)
		(void)munmap(p, size);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

uint64_t bench_percentile(const uint64_t *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	/* Nearest rank: the smallest value with at least p% of the sample at or below it. */
	double rank = p / 100.0 * (double)n;
	size_t k = (size_t)rank;
	if ((double)k < rank)
		k++;
	return sorted[k == 0 ? 0 : k - 1];
}

bool bench_pct_ok(size_t n, double p)
{
	/* n × (100 - p) / 100 >= 1, with a little slack for 99.9's binary rounding. */
	return (double)n * (100.0 - p) >= 100.0 - 1e-6;
}

char *bench_fmt_pct(char *buf, size_t cap, size_t n, double p, uint64_t v)
{
	if (!bench_pct_ok(n, p)) {
		snprintf(buf, cap, "–");
		return buf;
	}
	bench_fmt_ns(buf, cap, (double)v);
	return buf;
}

void bench_stats_compute(uint64_t *samples, size_t n, struct bench_stats *st)
{
	memset(st, 0, sizeof *st);
	if (n == 0)
		return;
	qsort(samples, n, sizeof *samples, cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)samples[i];
	st->n = n;
	st->min = samples[0];
	st->p50 = bench_percentile(samples, n, 50);
	st->p99 = bench_percentile(samples, n, 99);
	st->p999 = bench_percentile(samples, n, 99.9);
	st->max = samples[n - 1];
	st->mean = sum / (double)n;
}

int bench_parse_opts(int argc, char **argv, struct bench_opts *o, const char *usage_extra)
{
	memset(o, 0, sizeof *o);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = NULL;
		if (strcmp(a, "--quick") == 0) {
			o->quick = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			printf("usage: %s [--quick] [--iters N]%s%s\n", argv[0],
			       usage_extra ? " " : "", usage_extra ? usage_extra : "");
			return 1;
		}
		if (strcmp(a, "--iters") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: --iters needs a value\n", argv[0]);
				return -EINVAL;
			}
			val = argv[++i];
		} else if (strncmp(a, "--iters=", 8) == 0) {
			val = a + 8;
		} else {
			fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], a);
			return -EINVAL;
		}
		char *end;
		errno = 0;
		unsigned long long v = strtoull(val, &end, 0);
		if (errno || end == val || *end || v == 0 || val[0] == '-') {
			fprintf(stderr, "%s: bad --iters value '%s'\n", argv[0], val);
			return -EINVAL;
		}
		o->iters = v;
	}
	return 0;
}

void bench_md_header(FILE *f, const char *const *cols, const int *align_right, int ncols)
{
	bench_md_row(f, cols, ncols);
	fputc('|', f);
	for (int i = 0; i < ncols; i++)
		fputs(align_right && align_right[i] ? "---:|" : "---|", f);
	fputc('\n', f);
}

void bench_md_row(FILE *f, const char *const *cells, int ncols)
{
	fputc('|', f);
	for (int i = 0; i < ncols; i++)
		fprintf(f, " %s |", cells[i] ? cells[i] : "");
	fputc('\n', f);
}

const char *bench_fmt_ns(char *buf, size_t cap, double ns)
{
	if (ns < 1e3)
		snprintf(buf, cap, "%.1f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, cap, "%.2f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, cap, "%.2f ms", ns / 1e6);
	else
		snprintf(buf, cap, "%.2f s", ns / 1e9);
	return buf;
}
