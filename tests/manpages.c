/* Man pages: every exported function has one, and every page formats without a warning.
 *
 * The exported names come from the built shared library (`nm -D`, the same list the
 * linker's version script lets out), next to this binary: build/tests/manpages reads
 * build/libshmkit.so. A page is man/man3/NAME.3: either a page of its own, or a one-line
 * `.so man/man3/FAMILY.3` stub (`make man-stubs` writes the missing ones), whose family
 * page must name the function. Every page then goes through `groff -ww -man -z`, run from
 * the repository root as `man -l man/man3/NAME.3` would read it: a stub whose .so does not
 * resolve from there, or any troff warning, fails the test with the page's name.
 * The runner starts the suites from the repository root.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MAN3 "man/man3"

/* Runs argv with stdout and stderr into out[cap] (NUL-terminated, truncated). Returns the
 * exit status, or -1 when it could not run or was killed. */
static int run_capture(char *const argv[], char *out, size_t cap)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	char sink[4096];
	while ((r = read(p[0], n + 1 < cap ? out + n : sink,
			 n + 1 < cap ? cap - 1 - n : sizeof sink)) > 0)
		if (n + 1 < cap)
			n += (size_t)r;
	close(p[0]);
	out[n] = '\0';
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Reads path into a malloc'd NUL-terminated string, or NULL when it does not exist. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	char *s = malloc(cap);
	ck_assert_ptr_nonnull(s);
	size_t r;
	while ((r = fread(s + n, 1, cap - 1 - n, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			cap *= 2;
			s = realloc(s, cap);
			ck_assert_ptr_nonnull(s);
		}
	}
	fclose(f);
	s[n] = '\0';
	return s;
}

/* The library next to this test binary: <build>/tests/manpages -> <build>/libshmkit.so. */
static void library_path(char *buf, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	ck_assert_int_gt(n, 0);
	exe[n] = '\0';
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(exe, '/');
		ck_assert_ptr_nonnull(slash);
		*slash = '\0';
	}
	ck_assert_int_lt(snprintf(buf, cap, "%s/libshmkit.so", exe), (int)cap);
	ck_assert_msg(access(buf, R_OK) == 0, "%s not built (make lib)", buf);
}

/* True when `text` holds `word` with no identifier character on either side. */
static int names(const char *text, const char *word)
{
	size_t len = strlen(word);
	for (const char *p = strstr(text, word); p; p = strstr(p + 1, word)) {
		int before = p > text && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
					  (p[-1] >= '0' && p[-1] <= '9'));
		char a = p[len];
		int after = a == '_' || (a >= 'a' && a <= 'z') || (a >= '0' && a <= '9');
		if (!before && !after)
			return 1;
	}
	return 0;
}

START_TEST(test_every_function_has_a_page)
{
	char lib[PATH_MAX];
	library_path(lib, sizeof lib);
	static char out[1 << 20];
	char *argv[] = {"nm", "-D", "--defined-only", lib, NULL};
	ck_assert_msg(run_capture(argv, out, sizeof out) == 0, "nm failed: %s", out);
	regex_t re;
	ck_assert_int_eq(regcomp(&re, " T (shmkit_[a-z0-9][a-z0-9_]*)(@|$)", REG_EXTENDED), 0);
	int functions = 0;
	char missing[4096] = "";
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		regmatch_t m[2];
		if (regexec(&re, line, 2, m, 0) != 0)
			continue;
		line[m[1].rm_eo] = '\0';
		const char *fn = line + m[1].rm_so;
		functions++;
		char path[PATH_MAX];
		snprintf(path, sizeof path, MAN3 "/%s.3", fn);
		char *page = slurp(path);
		const char *why = NULL;
		char *family = NULL;
		if (!page) {
			why = "no page";
		} else if (strncmp(page, ".so ", 4) == 0) {
			char target[PATH_MAX];
			if (sscanf(page, ".so %4095s", target) != 1 || !(family = slurp(target)))
				why = "stub's .so does not resolve from the repository root";
			else if (!names(family, fn))
				why = "family page does not name it";
		} else if (!names(page, fn)) {
			why = "page does not name it";
		}
		if (why) {
			size_t used = strlen(missing);
			snprintf(missing + used, sizeof missing - used, "\n  %s: %s", fn, why);
		}
		free(page);
		free(family);
	}
	regfree(&re);
	/* A library with no exported function would pass vacuously: the API has > 100. */
	ck_assert_int_gt(functions, 100);
	ck_assert_msg(missing[0] == '\0', "functions without a page (make man-stubs):%s", missing);
}
END_TEST

/* Formats every page in dir (ending in suffix) with groff -ww -man -z. */
static int format_dir(const char *dir, const char *suffix, char *bad, size_t cap)
{
	DIR *d = opendir(dir);
	ck_assert_msg(d != NULL, "no %s (run from the repository root)", dir);
	int pages = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name), sl = strlen(suffix);
		if (len <= sl || strcmp(de->d_name + len - sl, suffix) != 0)
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		char out[4096];
		char *argv[] = {"groff", "-ww", "-man", "-z", path, NULL};
		int rc = run_capture(argv, out, sizeof out);
		ck_assert_msg(rc != 127, "groff not found (Debian package groff-base)");
		if (rc != 0 || out[0]) {
			size_t used = strlen(bad);
			snprintf(bad + used, cap - used, "\n  %s (exit %d): %.300s", path, rc, out);
		}
		pages++;
	}
	closedir(d);
	return pages;
}

START_TEST(test_pages_format_cleanly)
{
	static char bad[1 << 16];
	bad[0] = '\0';
	int pages = format_dir(MAN3, ".3", bad, sizeof bad);
	pages += format_dir("man/man1", ".1", bad, sizeof bad);
	pages += format_dir("man/man7", ".7", bad, sizeof bad);
	ck_assert_int_gt(pages, 100);
	ck_assert_msg(bad[0] == '\0', "pages with groff warnings:%s", bad);
}
END_TEST

/* The checker itself: a page with a warning and a stub that does not resolve must fail. */
START_TEST(test_checker_sees_faults)
{
	char dir[] = "/tmp/shmkit-man-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/bad.3", dir);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(".TH BAD 3\n.SH NAME\nbad \\- x\n.XX undefined macro\n\\f(ZZfont\n", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/stub.3", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(".so man3/shmkit_chan.3\n", f);
	fclose(f);
	static char bad[1 << 14];
	bad[0] = '\0';
	ck_assert_int_eq(format_dir(dir, ".3", bad, sizeof bad), 2);
	ck_assert_msg(strstr(bad, "bad.3") && strstr(bad, "stub.3"), "checker missed: %s", bad);
	snprintf(path, sizeof path, "%s/bad.3", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/stub.3", dir);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *manpages_suite(void)
{
	Suite *s = suite_create("manpages");
	TCase *tc = t_tcase(s, "pages", 120);
	tcase_add_test(tc, test_every_function_has_a_page);
	tcase_add_test(tc, test_pages_format_cleanly);
	tcase_add_test(tc, test_checker_sees_faults);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {manpages_suite};
	return t_main(makers, 1);
}
