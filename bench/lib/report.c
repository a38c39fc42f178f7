/* shmkit benchmarks — tables, JSON and charts of ipc_run() results (see report.h). */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *report_fmt_size(char *buf, size_t cap, size_t size)
{
	if (size >= (1u << 20) && size % (1u << 20) == 0)
		snprintf(buf, cap, "%zu MiB", size >> 20);
	else if (size >= (1u << 20))
		snprintf(buf, cap, "%.1f MiB", (double)size / (1 << 20));
	else if (size >= 1024 && size % 1024 == 0)
		snprintf(buf, cap, "%zu KiB", size >> 10);
	else if (size >= 1024)
		snprintf(buf, cap, "%.1f KiB", (double)size / 1024);
	else
		snprintf(buf, cap, "%zu B", size);
	return buf;
}

void report_placement(FILE *f, const struct ipc_result *res, int n, const int cpu[2])
{
	if (cpu[0] >= 0 && cpu[1] >= 0)
		fprintf(f, "Placement: side A on CPU %d, side B on CPU %d; floor round trip p50:", cpu[0],
			cpu[1]);
	else
		fprintf(f, "Placement: not pinned; floor round trip p50:");
	int any = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(res[i].mech->name, "floor") != 0 || !res[i].have_rtt)
			continue;
		char s[32], t[32];
		fprintf(f, "%s %s during %s", any ? "," : "", bench_fmt_ns(t, sizeof t, (double)res[i].rtt.p50),
			report_fmt_size(s, sizeof s, res[i].size));
		any = 1;
	}
	fprintf(f, "%s\n", any ? "" : " not measured");
}

static const struct ipc_result *ref_of(const struct ipc_result *res, int n, size_t size)
{
	return ipc_result_find(res, n, REPORT_REF, size);
}

static void fmt_ratio(char *buf, size_t cap, double num, double den)
{
	if (num > 0 && den > 0)
		snprintf(buf, cap, "%.2f", num / den);
	else
		snprintf(buf, cap, "–");
}

static void fmt_rate(char *buf, size_t cap, double v)
{
	if (v >= 1e9)
		snprintf(buf, cap, "%.2f G", v / 1e9);
	else if (v >= 1e6)
		snprintf(buf, cap, "%.2f M", v / 1e6);
	else if (v >= 1e3)
		snprintf(buf, cap, "%.1f k", v / 1e3);
	else
		snprintf(buf, cap, "%.0f", v);
}

void report_markdown(FILE *f, const struct ipc_result *res, int n)
{
	static const char *const cols[] = {"mechanism", "size", "RTT p50", "p99", "p99.9", "max",
					   "× floor", "× shmkit", "msg/s", "GB/s", "msg/s × shmkit"};
	static const int right[] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
	bench_md_header(f, cols, right, 11);
	for (int i = 0; i < n; i++) {
		const struct ipc_result *r = &res[i];
		if (!r->err && !r->have_rtt && !r->have_tput)
			continue; /* not measured at this size (e.g. the floor above lat_max_size) */
		char c[11][64];
		for (int k = 0; k < 11; k++)
			snprintf(c[k], sizeof c[k], "–");
		snprintf(c[0], sizeof c[0], "%s", r->mech->label);
		if (r->mech->caps & IPC_CAP_NOSIZE)
			snprintf(c[1], sizeof c[1], "(%s)", report_fmt_size(c[2], sizeof c[2], r->size));
		else
			report_fmt_size(c[1], sizeof c[1], r->size);
		snprintf(c[2], sizeof c[2], "–");
		if (r->err) {
			snprintf(c[2], sizeof c[2], "failed: %s", r->errmsg);
			const char *cells[11];
			for (int k = 0; k < 11; k++)
				cells[k] = c[k];
			bench_md_row(f, cells, 11);
			continue;
		}
		const struct ipc_result *ref = ref_of(res, n, r->size);
		if (r->have_rtt) {
			bench_fmt_ns(c[2], sizeof c[2], (double)r->rtt.p50);
			bench_fmt_pct(c[3], sizeof c[3], r->rtt.n, 99, r->rtt.p99);
			bench_fmt_pct(c[4], sizeof c[4], r->rtt.n, 99.9, r->rtt.p999);
			bench_fmt_ns(c[5], sizeof c[5], (double)r->rtt.max);
			fmt_ratio(c[6], sizeof c[6], (double)r->rtt.p50, (double)r->floor_p50);
			if (ref && ref->have_rtt)
				fmt_ratio(c[7], sizeof c[7], (double)r->rtt.p50, (double)ref->rtt.p50);
		}
		if (r->have_tput) {
			fmt_rate(c[8], sizeof c[8], r->msgs_per_s);
			snprintf(c[9], sizeof c[9], "%.2f", r->bytes_per_s / 1e9);
			if (ref && ref->have_tput)
				fmt_ratio(c[10], sizeof c[10], r->msgs_per_s, ref->msgs_per_s);
		}
		const char *cells[11];
		for (int k = 0; k < 11; k++)
			cells[k] = c[k];
		bench_md_row(f, cells, 11);
	}
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, const char *key, int have, double v, int integer)
{
	fprintf(f, ", \"%s\": ", key);
	if (!have)
		fputs("null", f);
	else if (integer)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

void report_json(FILE *f, const struct ipc_result *res, int n)
{
	fputs("[\n", f);
	for (int i = 0; i < n; i++) {
		const struct ipc_result *r = &res[i];
		const struct ipc_result *ref = ref_of(res, n, r->size);
		int rtt = !r->err && r->have_rtt, tp = !r->err && r->have_tput;
		fputs("  {\"mechanism\": ", f);
		json_str(f, r->mech->family);
		fputs(", \"mode\": ", f);
		json_str(f, r->mech->mode);
		fputs(", \"name\": ", f);
		json_str(f, r->mech->name);
		fprintf(f, ", \"size\": %zu", r->size);
		json_num(f, "rtt_p50_ns", rtt, (double)r->rtt.p50, 1);
		/* A percentile the sample count does not support is null (bench_pct_ok()). */
		json_num(f, "rtt_p99_ns", rtt && bench_pct_ok(r->rtt.n, 99), (double)r->rtt.p99, 1);
		json_num(f, "rtt_p999_ns", rtt && bench_pct_ok(r->rtt.n, 99.9), (double)r->rtt.p999,
			 1);
		json_num(f, "rtt_max_ns", rtt, (double)r->rtt.max, 1);
		json_num(f, "rtt_samples", rtt, (double)r->rtt.n, 1);
		json_num(f, "msgs_per_s", tp, r->msgs_per_s, 0);
		json_num(f, "bytes_per_s", tp, r->bytes_per_s, 0);
		json_num(f, "ratio_to_floor", rtt && r->floor_p50, (double)r->rtt.p50 / (double)(r->floor_p50 ? r->floor_p50 : 1), 0);
		int have_ref = rtt && ref && !ref->err && ref->have_rtt && ref->rtt.p50;
		json_num(f, "ratio_to_shmkit", have_ref,
			 have_ref ? (double)r->rtt.p50 / (double)ref->rtt.p50 : 0, 0);
		json_num(f, "floor_rtt_p50_ns", r->floor_p50 != 0, (double)r->floor_p50, 1);
		fputs(", \"error\": ", f);
		if (r->err)
			json_str(f, r->errmsg);
		else
			fputs("null", f);
		fprintf(f, "}%s\n", i + 1 < n ? "," : "");
	}
	fputs("]\n", f);
}

/* --- charts ------------------------------------------------------------------------------ */

static int have_gnuplot(void)
{
	return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* tools/deps.sh of the source tree this binary was built in (build/shmkit, build/bench/X,
 * build/bench/peers/X), if any. */
static int find_deps_sh(char *out, size_t cap)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	for (int up = 0; up < 4; up++) {
		char *slash = strrchr(exe, '/');
		if (!slash)
			return -1;
		*slash = '\0';
		snprintf(out, cap, "%s/tools/deps.sh", exe);
		if (access(out, X_OK) == 0)
			return 0;
	}
	return -1;
}

int report_need_gnuplot(char *msg, size_t cap)
{
	if (have_gnuplot())
		return 0;
	char deps[4200], cmd[4400];
	if (find_deps_sh(deps, sizeof deps) == 0)
		snprintf(cmd, sizeof cmd, "'%s' gnuplot-nox 1>&2", deps);
	else if (geteuid() == 0)
		snprintf(cmd, sizeof cmd,
			 "command -v apt-get >/dev/null && { apt-get update -qq && "
			 "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
			 "gnuplot-nox; } 1>&2");
	else
		cmd[0] = '\0';
	if (cmd[0]) {
		fprintf(stderr, "shmkit: gnuplot is missing; installing the Debian package gnuplot-nox\n");
		fflush(stderr);
		(void)system(cmd);
	}
	if (have_gnuplot())
		return 0;
	snprintf(msg, cap,
		 "gnuplot is needed for charts and could not be installed; install the Debian "
		 "package gnuplot-nox (apt-get install gnuplot-nox) and run again");
	return -ENOENT;
}

static void gp_quote(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

int report_chart(const char *path, int png, const char *title, const struct ipc_result *res,
		 int n, char *msg, size_t cap)
{
	char dir[] = "/tmp/shmkit-chart.XXXXXX";
	if (!mkdtemp(dir)) {
		snprintf(msg, cap, "mkdtemp: %s", strerror(errno));
		return -errno;
	}
	char lat[64], tput[64], gp[64];
	snprintf(lat, sizeof lat, "%s/lat.dat", dir);
	snprintf(tput, sizeof tput, "%s/tput.dat", dir);
	snprintf(gp, sizeof gp, "%s/chart.gp", dir);
	int err = 0;
	size_t smallest = 0;
	for (int i = 0; i < n; i++)
		if (!smallest || res[i].size < smallest)
			smallest = res[i].size;

	/* Latency: one cluster per mechanism at the smallest size, microseconds. */
	FILE *fl = fopen(lat, "w"), *ft = fopen(tput, "w"), *fg = fopen(gp, "w");
	if (!fl || !ft || !fg) {
		snprintf(msg, cap, "temporary files: %s", strerror(errno));
		err = -EIO;
		goto out;
	}
	int nlat = 0;
	for (int i = 0; i < n; i++) {
		const struct ipc_result *r = &res[i];
		if (r->size != smallest || r->err || !r->have_rtt)
			continue;
		gp_quote(fl, r->mech->name);
		/* NaN: gnuplot leaves out a percentile the samples do not support. */
		fprintf(fl, " %.4f %.4f %.4f %.4f\n", r->rtt.p50 / 1e3,
			bench_pct_ok(r->rtt.n, 99) ? r->rtt.p99 / 1e3 : NAN,
			bench_pct_ok(r->rtt.n, 99.9) ? r->rtt.p999 / 1e3 : NAN, r->rtt.max / 1e3);
		nlat++;
	}
	/* Throughput: one block per mechanism, GB/s against size. */
	const char *names[64];
	int ntp = 0;
	for (int i = 0; i < n && ntp < 64; i++) {
		const struct ipc_mech *m = res[i].mech;
		int seen = 0;
		for (int k = 0; k < ntp; k++)
			seen |= strcmp(names[k], m->name) == 0;
		if (seen)
			continue;
		int any = 0;
		for (int j = 0; j < n; j++) {
			if (res[j].mech != m || res[j].err || !res[j].have_tput)
				continue;
			if (!any)
				fprintf(ft, "%s# %s\n", ntp ? "\n\n" : "", m->name);
			fprintf(ft, "%zu %.6f\n", res[j].size, res[j].bytes_per_s / 1e9);
			any = 1;
		}
		if (any)
			names[ntp++] = m->name;
	}
	fclose(fl);
	fclose(ft);
	fl = ft = NULL;
	char smallest_s[32];
	report_fmt_size(smallest_s, sizeof smallest_s, smallest);
	if (png)
		fprintf(fg, "set terminal pngcairo size 1100,1000 font 'sans,10' background rgb 'white'\n");
	else
		fprintf(fg, "set terminal svg size 1100,1000 dynamic font 'sans,11' background rgb 'white'\n");
	fputs("set output ", fg);
	gp_quote(fg, path);
	fputs("\nset encoding utf8\n", fg);
	/* Twelve distinguishable colours: gnuplot's default cycle repeats after eight. */
	static const char *const colours[] = {"#9400d3", "#009e73", "#56b4e9", "#e69f00",
					      "#f0e442", "#0072b2", "#e51e10", "#000000",
					      "#a0522d", "#808080", "#ff69b4", "#2e8b57"};
	for (int k = 0; k < 12; k++)
		fprintf(fg, "set linetype %d lc rgb '%s' lw 2 pt %d\n", k + 1, colours[k], k + 1);
	fputs("set linetype cycle 12\nset multiplot layout 2,1 title ", fg);
	gp_quote(fg, title);
	fputs("\nset grid ytics\nset key outside right top\n", fg);
	if (nlat) {
		fprintf(fg, "set title 'Round trip (ping-pong between two processes), %s messages'\n",
			smallest_s);
		fputs("set style data histograms\nset style histogram clustered gap 1\n"
		      "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
		      "set logscale y\nset ylabel 'round trip (µs, log scale)'\n"
		      "set xtics rotate by -30 nomirror\nset yrange [0.05:*]\n",
		      fg);
		fprintf(fg, "plot '%s' using 2:xtic(1) title 'p50', '' using 3 title 'p99', "
			    "'' using 4 title 'p99.9', '' using 5 title 'max'\n",
			lat);
		fputs("unset logscale y\nunset yrange\nunset style\nset xtics norotate\n", fg);
	}
	if (ntp) {
		fputs("set title 'One-way stream throughput by message size'\n"
		      "set logscale x 2\nset logscale y\nset xlabel 'message size'\n"
		      "set ylabel 'GB/s (log scale)'\nset style data linespoints\n"
		      "set xtics ('64 B' 64, '256 B' 256, '1 KiB' 1024, '4 KiB' 4096, '16 KiB' 16384, "
		      "'64 KiB' 65536, '256 KiB' 262144, '1 MiB' 1048576, '4 MiB' 4194304)\n"
		      "plot ",
		      fg);
		for (int k = 0; k < ntp; k++) {
			fprintf(fg, "%s'%s' index %d using 1:2 with linespoints lw 2 title ", k ? ", " : "",
				tput, k);
			gp_quote(fg, names[k]);
		}
		fputc('\n', fg);
	}
	fputs("unset multiplot\n", fg);
	fclose(fg);
	fg = NULL;
	char cmd[256];
	snprintf(cmd, sizeof cmd, "gnuplot '%s' 2>&1 1>/dev/null", gp);
	FILE *pp = popen(cmd, "r");
	char out[512] = "";
	size_t got = 0;
	if (pp) {
		got = fread(out, 1, sizeof out - 1, pp);
		out[got] = '\0';
	}
	int st = pp ? pclose(pp) : -1;
	struct stat sb;
	if (st != 0 || stat(path, &sb) != 0 || sb.st_size == 0) {
		char *nl = strchr(out, '\n');
		if (nl && nl[1] == '\0')
			*nl = '\0';
		snprintf(msg, cap, "gnuplot failed to write %s%s%s", path, got ? ": " : "", out);
		err = -EIO;
	}
out:
	if (fl)
		fclose(fl);
	if (ft)
		fclose(ft);
	if (fg)
		fclose(fg);
	unlink(lat);
	unlink(tput);
	unlink(gp);
	rmdir(dir);
	return err;
}
