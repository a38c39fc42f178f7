/* Tests for src/copy.c: shmkit_copy(), the payload copy of every kind's copying calls,
 * public for programs that fill loans themselves. It takes a different path below and
 * above 1 MiB (one memcpy; 256 KiB pieces), so the sizes straddle the cliff and the piece
 * boundaries, at unaligned addresses, with guard bytes on both sides of the destination. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define GUARD 64u
#define GUARD_BYTE 0xa5u
#define MIB (1u << 20)
#define PIECE (256u << 10)

/* Copies n random bytes from src + soff to dst + doff with shmkit_copy() and checks every
 * byte of the copy, and that the guard bytes before and after it are untouched. */
static void check_copy(size_t n, size_t soff, size_t doff, uint64_t *rng)
{
	unsigned char *src = malloc(n + soff + 8);
	unsigned char *dst = malloc(n + doff + 2 * GUARD);
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(dst);
	for (size_t i = 0; i < n + soff + 8; i++)
		src[i] = (unsigned char)t_rand(rng);
	memset(dst, GUARD_BYTE, n + doff + 2 * GUARD);
	unsigned char *to = dst + GUARD + doff;
	shmkit_copy(to, src + soff, n);
	ck_assert_msg(memcmp(to, src + soff, n) == 0, "copy of %zu bytes (src+%zu, dst+%zu) differs",
		      n, soff, doff);
	for (size_t i = 0; i < GUARD + doff; i++)
		T_CHECK(dst[i] == GUARD_BYTE, "byte %zu before a copy of %zu bytes written", i, n);
	for (size_t i = 0; i < GUARD; i++)
		T_CHECK(to[n + i] == GUARD_BYTE, "byte %zu after a copy of %zu bytes written", i, n);
	free(src);
	free(dst);
}

START_TEST(test_copy_sizes)
{
	static const size_t sizes[] = {
		0,       1,           7,           8,           63,      4096,
		65539,   MIB - 1,     MIB,         MIB + 1,     MIB + PIECE - 1,
		MIB + PIECE, MIB + PIECE + 1, 3 * MIB + 13, 4 * MIB,
	};
	uint64_t rng = t_seed();
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		check_copy(sizes[i], 0, 0, &rng);
		check_copy(sizes[i], 5, 3, &rng);
	}
}
END_TEST

/* Into a segment and back out through a second mapping of it: the copy works on shared
 * memory as on private, and what it wrote is what another mapping reads. */
START_TEST(test_copy_shared)
{
	char name[64];
	t_name_tracked(name, sizeof name, "copy", SHMKIT_BACKEND_POSIX);
	size_t n = 2 * MIB + 77;
	struct shmkit_segment *a, *b;
	ck_assert_int_eq(shmkit_segment_create(name, n, NULL, &a), 0);
	ck_assert_int_eq(shmkit_segment_publish(a), 0);
	ck_assert_int_eq(shmkit_segment_open(name, NULL, &b), 0);
	unsigned char *src = malloc(n), *back = malloc(n);
	ck_assert_ptr_nonnull(src);
	ck_assert_ptr_nonnull(back);
	uint64_t rng = t_seed();
	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)t_rand(&rng);
	shmkit_copy(shmkit_segment_data(a), src, n);
	shmkit_copy(back, shmkit_segment_data(b), n);
	ck_assert(memcmp(back, src, n) == 0);
	free(src);
	free(back);
	ck_assert_int_eq(shmkit_segment_close(b), 0);
	ck_assert_int_eq(shmkit_segment_unlink(a), 0);
	ck_assert_int_eq(shmkit_segment_close(a), 0);
}
END_TEST

static Suite *copy_suite(void)
{
	Suite *s = suite_create("copy");
	TCase *tc = t_tcase(s, "core", 60);
	tcase_add_test(tc, test_copy_sizes);
	tcase_add_test(tc, test_copy_shared);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {copy_suite};
	return t_main(makers, 1);
}
