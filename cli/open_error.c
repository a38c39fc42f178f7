/* shmkit CLI — the message for an object that could not be opened: what is at the name
 * instead ("'cfg' is a table, not a stream channel"), the name the user probably meant, and
 * the next step. Apart from cli/suggest.c, which this uses and which uses nothing of the CLI,
 * so that no two CLI files depend on each other in a circle. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The existing segment name nearest to `name`, copied into buf, or NULL. */
static const char *near_name(const char *name, char *buf, size_t cap)
{
	struct shmkit_segment_info *all;
	int n = shmkit_segment_list(&all);
	if (n < 0)
		return NULL; /* nothing to free: the list is allocated only on success */
	const char **cand = calloc((size_t)n + 1, sizeof *cand);
	const char *best = NULL;
	if (cand) {
		int k = 0;
		for (int i = 0; i < n; i++)
			if (all[i].name[0])
				cand[k++] = all[i].name;
		cand[k] = NULL;
		best = cli_suggest(name, cand);
		if (best) {
			snprintf(buf, cap, "%s", best);
			best = buf;
		}
		free(cand);
	}
	shmkit_segment_list_free(all);
	return best;
}

int cli_open_error(const struct cli_cmd *cmd, const char *name, uint32_t backend, int err,
		   const char *want)
{
	struct shmkit_segment_opts so = {.backend = backend};
	struct shmkit_segment_info inf;
	char guess[SHMKIT_NAME_MAX + 1];
	switch (err) {
	case -EMEDIUMTYPE:
		if (!want)
			break;
		if (shmkit_segment_stat(name, &so, &inf) == 0 && inf.kind != 0)
			return cli_errorf(cmd, "'%s' is a %s, not a %s", name,
					  cli_kind_word(inf.kind), want);
		return cli_errorf(cmd, "'%s' is not a %s (%s)", name, want, shmkit_strerror(err));
	case -ENOENT:
		/* A typo is the likeliest cause: name the nearest existing segment. */
		if (near_name(name, guess, sizeof guess))
			return cli_errorf(cmd, "%s: %s; did you mean '%s'?", name,
					  shmkit_strerror(err), guess);
		return cli_errorf(cmd, "%s: %s (see 'shmkit ls')", name, shmkit_strerror(err));
	case -EPERM:
		if (strstr(cmd->usage, "--foreign"))
			return cli_errorf(cmd, "%s: %s; add --foreign to use it anyway", name,
					  shmkit_strerror(err));
		break;
	case -ENOTUNIQ:
		/* Not shmkit's: the system tool that removes it (rm --force does too). */
		if (shmkit_segment_stat(name, &so, &inf) == 0 && inf.backend == SHMKIT_BACKEND_SYSV)
			return cli_errorf(cmd,
					  "%s: %s (System V key %" PRId32 "); remove it with: "
					  "ipcrm -m %" PRId32,
					  name, shmkit_strerror(err), inf.sysv_key, inf.sysv_id);
		return cli_errorf(cmd, "%s: %s; remove it with: shmkit rm --force %s", name,
				  shmkit_strerror(err), name);
	}
	return cli_error(cmd, name, err);
}
