/* The ABI across releases (src/libshmkit.map): a program built against the SHMKIT_0.1 node
 * (tests/abi/v01.c, linked against a stub of that node made by tools/abi-stub.sh) runs
 * against the library of this tree and finds every call with its 0.1 meaning; the library
 * exports every SHMKIT_0.1 symbol at SHMKIT_0.1 and what changed at SHMKIT_0.2 too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The output of `cmd` (a shell command line), malloc'ed and NUL-terminated (a pipe:
 * t_fd_slurp() reads regular files only). */
static char *slurp_cmd(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 16, len = 0, n;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			out = realloc(out, cap *= 2);
			ck_assert_ptr_nonnull(out);
		}
	}
	out[len] = '\0';
	ck_assert_int_eq(pclose(f), 0);
	return out;
}

/* The 0.1 program, run against this tree's shared library. */
START_TEST(test_v01_program_runs)
{
	char prog[4096];
	snprintf(prog, sizeof prog, "%s/abi/v01", t_build_dir());
	/* This test's own process (Check forks one per test): the child inherits it. */
	ck_assert_int_eq(setenv("LD_LIBRARY_PATH", t_build_dir(), 1), 0);
	struct t_proc p;
	char *argv[] = {prog, NULL};
	t_spawn(&p, argv, -1, -1);
	struct t_run r = {0};
	t_run_collect(&r, &p, 60000);
	ck_assert_msg(r.status == 0, "status %d: %s%s", r.status, r.out, r.err);
	ck_assert_msg(strstr(r.out, "abi v0.1: ok"), "%s", r.out);
	t_run_free(&r);
}
END_TEST

/* It really was built against SHMKIT_0.1: every shmkit reference carries that version
 * (else the test above would prove nothing about old binaries). */
START_TEST(test_v01_program_binds_0_1)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "nm -D --undefined-only %s/abi/v01", t_build_dir());
	char *out = slurp_cmd(cmd);
	int refs = 0;
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		char *sym = strstr(line, "shmkit_");
		if (!sym)
			continue;
		refs++;
		ck_assert_msg(strstr(sym, "@SHMKIT_0.1") && !strstr(sym, "SHMKIT_0.2"), "%s", sym);
	}
	ck_assert_int_ge(refs, 20);
	free(out);
}
END_TEST

/* The library keeps the whole SHMKIT_0.1 node (the stub's names) and gives the changed
 * functions their new default at SHMKIT_0.2. */
START_TEST(test_library_nodes)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/libshmkit.so", t_build_dir());
	char *lib = slurp_cmd(cmd);
	snprintf(cmd, sizeof cmd, "cat %s/abi/names", t_build_dir());
	char *names = slurp_cmd(cmd);
	int n = 0;
	for (char *name = strtok(names, "\n"); name; name = strtok(NULL, "\n")) {
		char want[256];
		snprintf(want, sizeof want, " %s@SHMKIT_0.1\n", name);
		char want_default[256];
		snprintf(want_default, sizeof want_default, " %s@@SHMKIT_0.1\n", name);
		ck_assert_msg(strstr(lib, want) || strstr(lib, want_default), "%s missing at 0.1",
			      name);
		n++;
	}
	ck_assert_int_ge(n, 150);
	const char *const changed[] = {"shmkit_chan_create", "shmkit_pubsub_open",
				       "shmkit_queue_recv", "shmkit_table_open",
				       "shmkit_table_unlink", "shmkit_waitset_close"};
	for (size_t i = 0; i < sizeof changed / sizeof changed[0]; i++) {
		char want[256];
		snprintf(want, sizeof want, " %s@@SHMKIT_0.2\n", changed[i]);
		ck_assert_msg(strstr(lib, want), "%s not at 0.2", changed[i]);
	}
	ck_assert_ptr_null(strstr(lib, " shmkit__")); /* internal names stay hidden */
	free(names);
	free(lib);
}
END_TEST

static Suite *abi_suite(void)
{
	Suite *s = suite_create("abi");
	TCase *tc = t_tcase(s, "abi", 120);
	tcase_add_test(tc, test_v01_program_runs);
	tcase_add_test(tc, test_v01_program_binds_0_1);
	tcase_add_test(tc, test_library_nodes);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {abi_suite};
	return t_main(makers, 1);
}
