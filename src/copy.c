/* shmkit — payload copies that keep clear of the large-memcpy cliff (see internal.h). */
#include <string.h>

#include "internal.h"

#define PIECE (256u << 10)
#define CLIFF (1u << 20)

void shmkit__copy(void *dst, const void *src, size_t n)
{
	if (n < CLIFF) {
		memcpy(dst, src, n);
		return;
	}
	uint8_t *d = dst;
	const uint8_t *s = src;
	while (n > PIECE) {
		memcpy(d, s, PIECE);
		d += PIECE;
		s += PIECE;
		n -= PIECE;
	}
	memcpy(d, s, n);
}

/* The public name (include/shmkit/segment.h). The kinds call shmkit__copy(), a hidden
 * symbol, so that their calls bind inside the library without a PLT stub. */
SHMKIT_API void shmkit_copy(void *dst, const void *src, size_t n)
{
	shmkit__copy(dst, src, n);
}
