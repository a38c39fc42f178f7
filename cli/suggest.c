/* shmkit CLI — "did you mean ...?" for a mistyped word. */
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
