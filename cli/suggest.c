/* shmkit CLI — "did you mean ...?" for a mistyped command, option or name, and the word for
 * each kind. Pure string work: it calls nothing else of the CLI (cli/open_error.c builds
 * the messages on top of it). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Edit distance (insertions, deletions, substitutions, and swaps of neighbours, which are
 * the commonest typo) between two short words; words longer than 31 bytes compare as far. */
static size_t distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	if (n > 31 || m > 31)
		return 99;
	size_t d[32][32];
	for (size_t i = 0; i <= n; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= m; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= n; i++)
		for (size_t j = 1; j <= m; j++) {
			size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
			if (d[i - 1][j] + 1 < best)
				best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	return d[n][m];
}

const char *cli_suggest(const char *word, const char *const *candidates)
{
	const char *best = NULL;
	size_t best_d = 0;
	size_t len = strlen(word);
	for (; *candidates; candidates++) {
		size_t d = distance(word, *candidates);
		/* A prefix of one candidate is as good as a one-letter typo ("sta" -> "stat"). */
		if (len >= 2 && strncmp(*candidates, word, len) == 0)
			d = 1;
		if (!best || d < best_d) {
			best = *candidates;
			best_d = d;
		}
	}
	/* Near enough to be a typo: at most one edit in a short word, two in a longer one. */
	return best && best_d <= (len <= 4 ? 1u : 2u) ? best : NULL;
}

const char *cli_suggest_option(const char *typed, const char *usage, char *buf, size_t cap)
{
	/* The option as typed, without its dashes and any "=VALUE". */
	if (strncmp(typed, "--", 2) != 0)
		return NULL;
	char word[32];
	size_t n = strcspn(typed + 2, "=");
	if (n == 0 || n >= sizeof word)
		return NULL;
	memcpy(word, typed + 2, n);
	word[n] = '\0';
	/* Every "--word" of the usage text, once: the options the command documents. */
	enum { MAX_OPTS = 96 };
	char names[MAX_OPTS][32];
	const char *cand[MAX_OPTS + 1];
	size_t count = 0, prefixed = 0;
	for (const char *s = usage; (s = strstr(s, "--")) != NULL && count < MAX_OPTS;) {
		s += 2;
		size_t len = 0;
		while ((s[len] >= 'a' && s[len] <= 'z') || (s[len] >= '0' && s[len] <= '9') ||
		       (len > 0 && s[len] == '-'))
			len++;
		if (len == 0 || len >= sizeof names[0])
			continue;
		memcpy(names[count], s, len);
		names[count][len] = '\0';
		s += len;
		bool seen = false;
		for (size_t i = 0; i < count && !seen; i++)
			seen = strcmp(names[i], names[count]) == 0;
		if (seen)
			continue;
		prefixed += strncmp(names[count], word, n) == 0;
		cand[count] = names[count];
		count++;
	}
	cand[count] = NULL;
	/* getopt_long() takes any unambiguous abbreviation: one rejected that abbreviates
	 * several options was ambiguous, and guessing one of them would mislead. */
	if (prefixed > 1)
		return NULL;
	const char *best = cli_suggest(word, cand);
	if (!best)
		return NULL;
	snprintf(buf, cap, "--%s", best);
	return buf;
}

const char *cli_kind_word(uint32_t kind)
{
	switch (kind) {
	case SHMKIT_KIND_RAW:
		return "raw segment";
	case SHMKIT_KIND_STREAM:
		return "stream channel";
	case SHMKIT_KIND_PUBSUB:
		return "pub/sub channel";
	case SHMKIT_KIND_QUEUE:
		return "work queue";
	case SHMKIT_KIND_TABLE:
		return "table";
	default:
		return "segment of unknown kind";
	}
}
