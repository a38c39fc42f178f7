/* Tests for src/table.c: the shared lookup table / cache, across real processes (fork)
 * sharing real segments, with real SIGKILLs — at random and at every numbered step of the
 * write protocol (src/table_internal.h) — and hostile scribbling.
 *
 * Every value the tests write is self-checking: it embeds its key, who wrote it, a
 * sequence number, a payload whose length varies, and a checksum over all of that. A torn
 * read, a value filed under the wrong key or a half-repaired crash shows up as a value
 * that fails check_value().
 *
 * Children never use ck_assert (it would report from the wrong process); they return a
 * distinct nonzero code per failed check (and leave details in shared memory), and the
 * parent asserts that the code is 0.
 *
 * The plain and ASan builds' multi-process stress test does 1.2 million operations; the
 * TSan build (10-20x slower) a tenth of every count. The stress tier (SHMKIT_STRESS=1)
 * multiplies them and the kill -9 rounds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "shmkit.h"
#include "table_internal.h"
#include "testutil.h"

#if defined(__SANITIZE_THREAD__)
#define SAN_DIV 10
#else
#define SAN_DIV 1
#endif

#define WAIT_MS 60000 /* how long the parent waits for a child before calling it hung */

/* --- helpers ------------------------------------------------------------------------- */

static uint64_t scaled(uint64_t normal, uint64_t stress)
{
	uint64_t n = t_stress() ? stress : normal;
	n /= SAN_DIV;
	return n ? n : 1;
}

/* Creates a named POSIX table (tracked for cleanup) or, with name NULL, a memfd one. */
static struct shmkit_table *mk_table(char *name, size_t cap, struct shmkit_table_opts *o)
{
	struct shmkit_table *t = NULL;
	if (name) {
		t_name_tracked(name, cap, "tbl", SHMKIT_BACKEND_POSIX);
		int err = shmkit_table_create(name, o, &t);
		ck_assert_msg(err == 0, "create %s: %s", name, shmkit_strerror(err));
	} else {
		o->seg.backend = SHMKIT_BACKEND_MEMFD;
		int err = shmkit_table_create(NULL, o, &t);
		ck_assert_msg(err == 0, "create memfd: %s", shmkit_strerror(err));
	}
	return t;
}

static void rm_table(struct shmkit_table *t)
{
	if (shmkit_segment_backend(shmkit_table_segment(t)) != SHMKIT_BACKEND_MEMFD)
		ck_assert_int_eq(shmkit_segment_unlink(shmkit_table_segment(t)), 0);
	ck_assert_int_eq(shmkit_table_close(t), 0);
}

static void assert_verified(struct shmkit_table *t)
{
	char why[256];
	int err = shmkit__table_check(t, why, sizeof why);
	ck_assert_msg(err == 0, "verify: %s (%s)", shmkit_strerror(err), why);
}

static uint64_t fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* --- self-checking values -----------------------------------------------------------------
 *   0  4  magic "tVal"       4  2  key length     6  2  writer id
 *   8  8  sequence          16  4  payload length 20  4  zero
 *  24     key, payload ((seq * 131 + i) & 0xff ...), then an 8-byte FNV-1a of all before */

#define VAL_MAGIC 0x6c615674u
#define VAL_FIXED 32u /* header + checksum */

static size_t make_value(const void *key, size_t klen, unsigned writer, uint64_t seq,
			 unsigned char *out, size_t cap)
{
	size_t plen = (size_t)(seq % 41);
	size_t n = VAL_FIXED + klen + plen;
	if (n > cap) {
		plen = cap > VAL_FIXED + klen ? cap - VAL_FIXED - klen : 0;
		n = VAL_FIXED + klen + plen;
	}
	uint32_t magic = VAL_MAGIC, pl = (uint32_t)plen, zero = 0;
	uint16_t kl = (uint16_t)klen, w = (uint16_t)writer;
	memcpy(out, &magic, 4);
	memcpy(out + 4, &kl, 2);
	memcpy(out + 6, &w, 2);
	memcpy(out + 8, &seq, 8);
	memcpy(out + 16, &pl, 4);
	memcpy(out + 20, &zero, 4);
	memcpy(out + 24, key, klen);
	for (size_t i = 0; i < plen; i++)
		out[24 + klen + i] = (unsigned char)(seq * 131 + i);
	uint64_t sum = fnv(out, n - 8);
	memcpy(out + n - 8, &sum, 8);
	return n;
}

/* 0 when `v` is a value some writer made for `key`; else a code saying what is wrong. */
static int check_value(const void *key, size_t klen, const unsigned char *v, size_t vlen)
{
	if (vlen < VAL_FIXED + klen)
		return 11;
	uint32_t magic, pl;
	uint16_t kl;
	uint64_t seq, sum;
	memcpy(&magic, v, 4);
	memcpy(&kl, v + 4, 2);
	memcpy(&seq, v + 8, 8);
	memcpy(&pl, v + 16, 4);
	if (magic != VAL_MAGIC)
		return 12;
	if (kl != klen || memcmp(v + 24, key, klen) != 0)
		return 13;
	if (vlen != VAL_FIXED + klen + pl)
		return 14;
	for (size_t i = 0; i < pl; i++)
		if (v[24 + klen + i] != (unsigned char)(seq * 131 + i))
			return 15;
	memcpy(&sum, v + vlen - 8, 8);
	if (sum != fnv(v, vlen - 8))
		return 16;
	return 0;
}

static uint64_t value_seq(const unsigned char *v)
{
	uint64_t seq;
	memcpy(&seq, v + 8, 8);
	return seq;
}

static size_t key_of(char *buf, size_t cap, unsigned i)
{
	return (size_t)snprintf(buf, cap, "key%05u", i);
}

/* Iteration callback: every item must carry a valid value for its key. */
struct iter_check {
	int bad;
	int n;
};

static int iter_checker(const struct shmkit_table_item *it, void *arg)
{
	struct iter_check *c = arg;
	c->n++;
	if (check_value(it->key, it->klen, it->value, it->vlen) != 0)
		c->bad++;
	return 0;
}

static void assert_all_values(struct shmkit_table *t)
{
	struct iter_check c = {0, 0};
	int n = shmkit_table_iter(t, iter_checker, &c);
	ck_assert_msg(n >= 0, "iter: %s", shmkit_strerror(n));
	ck_assert_int_eq(c.bad, 0);
	ck_assert_int_eq(n, c.n);
	ck_assert_int_eq(n, shmkit_table_count(t));
}

/* --- basics -------------------------------------------------------------------------------- */

START_TEST(test_basic)
{
	char name[96];
	struct shmkit_table_opts o = {.capacity = 64, .key_max = 32, .value_max = 64};
	struct shmkit_table *t = mk_table(name, sizeof name, &o);
	char buf[64];

	ck_assert_int_eq(shmkit_table_count(t), 0);
	ck_assert_int_eq(shmkit_table_get(t, "alpha", 5, buf, sizeof buf), -ENOENT);
	ck_assert_int_eq(shmkit_table_put(t, "alpha", 5, "one", 3), 0);
	ck_assert_int_eq(shmkit_table_get(t, "alpha", 5, buf, sizeof buf), 3);
	ck_assert(memcmp(buf, "one", 3) == 0);
	ck_assert_int_eq(shmkit_table_put(t, "alpha", 5, "uno!", 4), 0);
	ck_assert_int_eq(shmkit_table_get(t, "alpha", 5, buf, sizeof buf), 4);
	ck_assert(memcmp(buf, "uno!", 4) == 0);
	ck_assert_int_eq(shmkit_table_get(t, "alpha", 5, buf, 3), -ENOBUFS);
	ck_assert_int_eq(shmkit_table_count(t), 1);

	/* Binary keys (NUL inside), the empty key, the empty value. */
	ck_assert_int_eq(shmkit_table_put(t, "a\0b", 3, "x", 1), 0);
	ck_assert_int_eq(shmkit_table_put(t, "a\0c", 3, "y", 1), 0);
	ck_assert_int_eq(shmkit_table_put(t, "", 0, "empty key", 9), 0);
	ck_assert_int_eq(shmkit_table_put(t, "nothing", 7, NULL, 0), 0);
	ck_assert_int_eq(shmkit_table_get(t, "a\0b", 3, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'x');
	ck_assert_int_eq(shmkit_table_get(t, "a\0c", 3, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], 'y');
	ck_assert_int_eq(shmkit_table_get(t, "a", 1, buf, sizeof buf), -ENOENT);
	ck_assert_int_eq(shmkit_table_get(t, NULL, 0, buf, sizeof buf), 9);
	ck_assert_int_eq(shmkit_table_get(t, "nothing", 7, NULL, 0), 0);
	ck_assert_int_eq(shmkit_table_count(t), 5);

	ck_assert_int_eq(shmkit_table_del(t, "alpha", 5), 0);
	ck_assert_int_eq(shmkit_table_del(t, "alpha", 5), -ENOENT);
	ck_assert_int_eq(shmkit_table_get(t, "alpha", 5, buf, sizeof buf), -ENOENT);
	ck_assert_int_eq(shmkit_table_count(t), 4);

	struct shmkit_table_stats st;
	ck_assert_int_eq(shmkit_table_stats(t, &st), 0);
	ck_assert_uint_eq(st.capacity, 64);
	ck_assert_uint_eq(st.entries, 4);
	ck_assert_uint_eq(st.key_max, 32);
	ck_assert_uint_eq(st.value_max, 64);
	ck_assert_uint_eq(st.puts, 6);
	ck_assert_uint_eq(st.inserts, 5);
	ck_assert_uint_eq(st.dels, 1);
	ck_assert_uint_eq(st.repairs, 0);
	ck_assert_uint_ge(st.gets, 10);
	ck_assert_uint_eq(st.gets, st.hits + st.misses + 1); /* + the -ENOBUFS */
	ck_assert_uint_ge(st.segment_size, 64 * 128);
	assert_verified(t);
	rm_table(t);
}
END_TEST

START_TEST(test_limits)
{
	struct shmkit_table_opts o = {.capacity = 16, .key_max = 8, .value_max = 16};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	char k9[9] = "123456789", v17[17] = {0}, buf[32];

	ck_assert_int_eq(shmkit_table_put(t, k9, 8, v17, 16), 0); /* exact maxima fit */
	ck_assert_int_eq(shmkit_table_get(t, k9, 8, buf, sizeof buf), 16);
	ck_assert_int_eq(shmkit_table_put(t, k9, 9, "v", 1), -EMSGSIZE);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, v17, 17), -EMSGSIZE);
	ck_assert_int_eq(shmkit_table_get(t, k9, 9, buf, sizeof buf), -EMSGSIZE);
	ck_assert_int_eq(shmkit_table_del(t, k9, 9), -EMSGSIZE);
	ck_assert_int_eq(shmkit_table_cas(t, k9, 9, 0, "v", 1, NULL), -EMSGSIZE);
	ck_assert_int_eq(shmkit_table_put(t, NULL, 1, "v", 1), -EINVAL);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, NULL, 1), -EINVAL);
	ck_assert_int_eq(shmkit_table_get(t, "k", 1, NULL, 4), -EINVAL);
	ck_assert_int_eq(shmkit_table_put(NULL, "k", 1, "v", 1), -EINVAL);
	ck_assert_int_eq(shmkit_table_get(NULL, "k", 1, buf, 1), -EINVAL);
	ck_assert_int_eq(shmkit_table_del(NULL, "k", 1), -EINVAL);
	ck_assert_int_eq(shmkit_table_count(NULL), -EINVAL);
	ck_assert_int_eq(shmkit_table_stats(t, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_table_iter(t, NULL, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_table_read_begin(t, "k", 1, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_table_close(NULL), 0);
	ck_assert_ptr_null(shmkit_table_segment(NULL));
	rm_table(t);

	/* Creation parameters. */
	struct shmkit_table *x = NULL;
	const struct shmkit_table_opts bad[] = {
		{.capacity = (size_t)SHMKIT_TABLE_CAPACITY_MAX + 1},
		{.key_max = SHMKIT_TABLE_KEY_MAX + 1},
		{.value_max = SHMKIT_TABLE_VALUE_MAX + 1},
		{.capacity = 64, .stripes = 3},
		{.capacity = 64, .stripes = 128},
		{.capacity = 1 << 20, .stripes = SHMKIT_TABLE_STRIPES_MAX * 2},
		{.flags = 0x100},
		{.reserved0 = 1},
		{.reserved = {0, 0, 0, 1}},
		{.seg = {.flags = 0x8000}},
		{.seg = {.kind = SHMKIT_KIND_RAW, .backend = SHMKIT_BACKEND_MEMFD}},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct shmkit_table_opts b = bad[i];
		b.seg.backend = SHMKIT_BACKEND_MEMFD;
		ck_assert_msg(shmkit_table_create(NULL, &b, &x) == -EINVAL, "bad opts %zu", i);
		ck_assert_ptr_null(x);
	}
	ck_assert_int_eq(shmkit_table_create(NULL, &o, NULL), -EINVAL);

	/* NULL options: the defaults (a POSIX table named by the caller). */
	char name[96];
	t_name_tracked(name, sizeof name, "dflt", SHMKIT_BACKEND_POSIX);
	ck_assert_int_eq(shmkit_table_create(name, NULL, &x), 0);
	struct shmkit_table_stats st;
	ck_assert_int_eq(shmkit_table_stats(x, &st), 0);
	ck_assert_uint_eq(st.capacity, 1024);
	ck_assert_uint_eq(st.key_max, 64);
	ck_assert_uint_eq(st.value_max, 256);
	ck_assert_uint_eq(st.stripes, 64);
	ck_assert_uint_eq(st.flags, 0);
	ck_assert_uint_eq(st.ttl_ms, 0);
	/* Same name again: the segment rules apply. */
	struct shmkit_table *y = NULL;
	ck_assert_int_eq(shmkit_table_create(name, NULL, &y), -EEXIST);
	rm_table(x);

	/* A capacity of one (one stripe) works, and is exactly one. */
	struct shmkit_table_opts one = {.capacity = 1, .key_max = 4, .value_max = 4};
	x = mk_table(NULL, 0, &one);
	ck_assert_int_eq(shmkit_table_put(x, "a", 1, "1", 1), 0);
	ck_assert_int_eq(shmkit_table_put(x, "b", 1, "2", 1), -ENOSPC);
	ck_assert_int_eq(shmkit_table_put(x, "a", 1, "3", 1), 0);
	ck_assert_int_eq(shmkit_table_del(x, "a", 1), 0);
	ck_assert_int_eq(shmkit_table_put(x, "b", 1, "2", 1), 0);
	assert_verified(x);
	rm_table(x);
}
END_TEST

START_TEST(test_open)
{
	char name[96], raw[96];
	struct shmkit_table_opts o = {.capacity = 100, .key_max = 16, .value_max = 32,
				      .flags = SHMKIT_TABLE_CACHE, .ttl_ms = 5000, .stripes = 2};
	struct shmkit_table *t = mk_table(name, sizeof name, &o);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "v", 1), 0);

	struct shmkit_table *u = NULL;
	ck_assert_int_eq(shmkit_table_open(name, NULL, &u), 0);
	char buf[32];
	ck_assert_int_eq(shmkit_table_get(u, "k", 1, buf, sizeof buf), 1);
	ck_assert_int_eq(shmkit_table_put(u, "k2", 2, "v2", 2), 0);
	ck_assert_int_eq(shmkit_table_get(t, "k2", 2, buf, sizeof buf), 2);
	struct shmkit_table_stats a, b;
	shmkit_table_stats(t, &a);
	shmkit_table_stats(u, &b);
	ck_assert_uint_eq(b.capacity, 100);
	ck_assert_uint_eq(b.key_max, 16);
	ck_assert_uint_eq(b.value_max, 32);
	ck_assert_uint_eq(b.flags, SHMKIT_TABLE_CACHE);
	ck_assert_uint_eq(b.ttl_ms, 5000);
	ck_assert_uint_eq(b.stripes, 2);
	ck_assert_uint_eq(a.entries, b.entries);
	ck_assert_int_eq(shmkit_table_close(u), 0);

	/* Read-only: reads work, writes are refused. */
	struct shmkit_table_opts ro = {.seg.flags = SHMKIT_SEG_RDONLY};
	ck_assert_int_eq(shmkit_table_open(name, &ro, &u), 0);
	ck_assert_int_eq(shmkit_table_get(u, "k", 1, buf, sizeof buf), 1);
	ck_assert_int_eq(shmkit_table_put(u, "k", 1, "w", 1), -EPERM);
	ck_assert_int_eq(shmkit_table_del(u, "k", 1), -EPERM);
	ck_assert_int_eq(shmkit_table_expire(u), -EPERM);
	ck_assert_int_eq(shmkit_table_verify(u), -EPERM);
	ck_assert_int_eq(shmkit_table_count(u), 2);
	ck_assert_int_eq(shmkit_table_close(u), 0);

	/* Wrong kinds. */
	struct shmkit_table_opts rawk = {.seg.kind = SHMKIT_KIND_RAW};
	ck_assert_int_eq(shmkit_table_open(name, &rawk, &u), -EINVAL);
	struct shmkit_segment *seg = t_raw_segment(raw, sizeof raw);
	ck_assert_int_eq(shmkit_table_open(raw, NULL, &u), -EMEDIUMTYPE);
	ck_assert_int_eq(shmkit_segment_unlink(seg), 0);
	shmkit_segment_close(seg);
	ck_assert_int_eq(shmkit_table_open("no-such-table-here", NULL, &u), -ENOENT);
	ck_assert_ptr_null(u);

	/* By descriptor: the same table through a second mapping. */
	int fd = shmkit_segment_fd(shmkit_table_segment(t));
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(shmkit_table_open_fd(fd, NULL, &u), 0);
	ck_assert_int_eq(shmkit_table_get(u, "k2", 2, buf, sizeof buf), 2);
	shmkit_table_close(u);
	rm_table(t);

	/* memfd and System V backends. */
	struct shmkit_table_opts m = {.capacity = 8};
	t = mk_table(NULL, 0, &m);
	ck_assert_int_eq(shmkit_table_put(t, "m", 1, "fd", 2), 0);
	fd = shmkit_segment_fd(shmkit_table_segment(t));
	ck_assert_int_eq(shmkit_table_open_fd(fd, NULL, &u), 0);
	ck_assert_int_eq(shmkit_table_get(u, "m", 1, buf, sizeof buf), 2);
	shmkit_table_close(u);
	rm_table(t);

	char sv[96];
	t_name_tracked(sv, sizeof sv, "sysv", SHMKIT_BACKEND_SYSV);
	struct shmkit_table_opts so = {.capacity = 8, .seg = {.backend = SHMKIT_BACKEND_SYSV}};
	ck_assert_int_eq(shmkit_table_create(sv, &so, &t), 0);
	ck_assert_int_eq(shmkit_table_put(t, "s", 1, "v", 1), 0);
	ck_assert_int_eq(shmkit_table_open(sv, NULL, &u), 0);
	ck_assert_int_eq(shmkit_table_get(u, "s", 1, buf, sizeof buf), 1);
	shmkit_table_close(u);
	rm_table(t);
}
END_TEST

START_TEST(test_versions_cas)
{
	struct shmkit_table_opts o = {.capacity = 32, .key_max = 8, .value_max = 8};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	char buf[8];
	uint64_t v1, v2, v3, v4, nv;
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "a", 1), 0);
	ck_assert_int_eq(shmkit_table_get_versioned(t, "k", 1, buf, sizeof buf, &v1), 1);
	ck_assert_uint_gt(v1, 0);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "b", 1), 0);
	ck_assert_int_eq(shmkit_table_get_versioned(t, "k", 1, buf, sizeof buf, &v2), 1);
	ck_assert_uint_gt(v2, v1);
	ck_assert_int_eq(shmkit_table_cas(t, "k", 1, v1, "c", 1, &nv), -ESTALE);
	ck_assert_int_eq(shmkit_table_cas(t, "k", 1, v2, "c", 1, &v3), 0);
	ck_assert_uint_gt(v3, v2);
	ck_assert_int_eq(shmkit_table_get_versioned(t, "k", 1, buf, sizeof buf, &nv), 1);
	ck_assert_uint_eq(nv, v3);
	ck_assert_int_eq(buf[0], 'c');
	/* expected 0: insert only if absent. */
	ck_assert_int_eq(shmkit_table_cas(t, "n", 1, 0, "1", 1, NULL), 0);
	ck_assert_int_eq(shmkit_table_cas(t, "n", 1, 0, "2", 1, NULL), -ESTALE);
	ck_assert_int_eq(shmkit_table_get(t, "n", 1, buf, sizeof buf), 1);
	ck_assert_int_eq(buf[0], '1');
	/* A version is never reused, even after delete + re-insert. */
	ck_assert_int_eq(shmkit_table_del(t, "k", 1), 0);
	ck_assert_int_eq(shmkit_table_cas(t, "k", 1, v3, "d", 1, NULL), -ESTALE);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "e", 1), 0);
	ck_assert_int_eq(shmkit_table_get_versioned(t, "k", 1, buf, sizeof buf, &v4), 1);
	ck_assert_uint_gt(v4, v3);
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	ck_assert_uint_eq(st.cas_failures, 3);
	assert_verified(t);
	rm_table(t);
}
END_TEST

struct iter_state {
	uint8_t seen[256];
	int bad, calls, stop_at;
};

static int iter_count(const struct shmkit_table_item *it, void *arg)
{
	struct iter_state *s = arg;
	unsigned i;
	if (it->klen != 8 || sscanf(it->key, "key%05u", &i) != 1 || i >= 256 ||
	    check_value(it->key, it->klen, it->value, it->vlen) != 0 || it->version == 0)
		s->bad++;
	else
		s->seen[i]++;
	s->calls++;
	return s->calls == s->stop_at ? 7 : 0;
}

START_TEST(test_iter)
{
	struct shmkit_table_opts o = {.capacity = 256, .key_max = 8, .value_max = 96};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	unsigned char v[96];
	char k[16];
	for (unsigned i = 0; i < 200; i++) {
		size_t kl = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, i, v, sizeof v)), 0);
	}
	ck_assert_int_eq(shmkit_table_put_ttl(t, "expiring", 8, "x", 1, 1), 0);
	t_sleep_us(5000);
	struct iter_state s = {0};
	ck_assert_int_eq(shmkit_table_iter(t, iter_count, &s), 200);
	ck_assert_int_eq(s.bad, 0);
	for (unsigned i = 0; i < 200; i++)
		ck_assert_int_eq(s.seen[i], 1);
	memset(&s, 0, sizeof s);
	s.stop_at = 10;
	ck_assert_int_eq(shmkit_table_iter(t, iter_count, &s), 7);
	ck_assert_int_eq(s.calls, 10);
	rm_table(t);
}
END_TEST

START_TEST(test_view)
{
	/* One stripe, so which entry is the spare is predictable. */
	struct shmkit_table_opts o = {.capacity = 16, .key_max = 8, .value_max = 16, .stripes = 1};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "value-1", 7), 0);
	struct shmkit_table_view v;
	char buf[16];
	ck_assert_int_eq(shmkit_table_read_begin(t, "k", 1, &v), 0);
	ck_assert_uint_eq(v.item.vlen, 7);
	ck_assert_uint_eq(v.item.klen, 1);
	ck_assert_uint_gt(v.item.version, 0);
	shmkit_seqlock_load(buf, v.item.value, v.item.vlen);
	ck_assert_int_eq(shmkit_table_read_end(t, &v), 0);
	ck_assert(memcmp(buf, "value-1", 7) == 0);

	/* A replace leaves the old copy intact (it becomes the spare): still consistent. */
	ck_assert_int_eq(shmkit_table_read_begin(t, "k", 1, &v), 0);
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "value-2", 7), 0);
	shmkit_seqlock_load(buf, v.item.value, v.item.vlen);
	ck_assert_int_eq(shmkit_table_read_end(t, &v), 0);
	ck_assert(memcmp(buf, "value-1", 7) == 0);
	/* The next replace reuses that copy: the view is no longer valid. */
	ck_assert_int_eq(shmkit_table_put(t, "k", 1, "value-3", 7), 0);
	ck_assert_int_eq(shmkit_table_read_end(t, &v), -EAGAIN);
	ck_assert_int_eq(shmkit_table_read_begin(t, "k", 1, &v), 0);
	shmkit_seqlock_load(buf, v.item.value, v.item.vlen);
	ck_assert_int_eq(shmkit_table_read_end(t, &v), 0);
	ck_assert(memcmp(buf, "value-3", 7) == 0);

	ck_assert_int_eq(shmkit_table_read_begin(t, "zz", 2, &v), -ENOENT);
	memset(&v, 0, sizeof v);
	ck_assert_int_eq(shmkit_table_read_end(t, &v), -EAGAIN);
	rm_table(t);
}
END_TEST

/* --- capacity, eviction, expiry ---------------------------------------------------------------- */

START_TEST(test_full)
{
	struct shmkit_table_opts o = {.capacity = 100, .key_max = 8, .value_max = 64, .stripes = 4};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	unsigned char v[64];
	char k[16];
	for (unsigned i = 0; i < 100; i++) {
		size_t kl = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, i, v, sizeof v)), 0);
	}
	ck_assert_int_eq(shmkit_table_count(t), 100);
	size_t kl = key_of(k, sizeof k, 100);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "x", 1), -ENOSPC);
	ck_assert_int_eq(shmkit_table_cas(t, k, kl, 0, "x", 1, NULL), -ENOSPC);
	/* Replacing still works when full (copy-on-write uses the stripe's spare). */
	for (unsigned i = 0; i < 100; i++) {
		size_t l = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(t, k, l, v, make_value(k, l, 1, i, v, sizeof v)), 0);
	}
	key_of(k, sizeof k, 7);
	ck_assert_int_eq(shmkit_table_del(t, k, kl), 0);
	key_of(k, sizeof k, 100);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, 1, v, sizeof v)), 0);
	key_of(k, sizeof k, 101);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "x", 1), -ENOSPC);
	ck_assert_int_eq(shmkit_table_count(t), 100);
	assert_verified(t);
	assert_all_values(t);
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	ck_assert_uint_eq(st.evictions, 0);
	rm_table(t);
}
END_TEST

START_TEST(test_cache_evict)
{
	struct shmkit_table_opts o = {.capacity = 64, .key_max = 8, .value_max = 64, .stripes = 1,
				      .flags = SHMKIT_TABLE_CACHE};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	unsigned char v[64];
	char k[16], buf[64];
	for (unsigned i = 0; i < 64; i++) {
		size_t kl = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, i, v, sizeof v)), 0);
	}
	/* Keys 0..15 are read between every insert: CLOCK must keep them all. */
	for (unsigned n = 0; n < 64; n++) {
		for (unsigned h = 0; h < 16; h++) {
			size_t kl = key_of(k, sizeof k, h);
			int r = shmkit_table_get(t, k, kl, buf, sizeof buf);
			ck_assert_msg(r > 0, "hot key %u evicted after %u inserts (%d)", h, n, r);
		}
		size_t kl = key_of(k, sizeof k, 1000 + n);
		ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, n, v, sizeof v)), 0);
	}
	ck_assert_int_eq(shmkit_table_count(t), 64);
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	ck_assert_uint_eq(st.evictions, 64);
	assert_verified(t);
	assert_all_values(t);
	rm_table(t);

	/* Many stripes, random traffic: never -ENOSPC, always consistent. */
	struct shmkit_table_opts o2 = {.capacity = 512, .key_max = 8, .value_max = 64,
				       .flags = SHMKIT_TABLE_CACHE};
	t = mk_table(NULL, 0, &o2);
	uint64_t rng = t_seed();
	for (unsigned n = 0; n < 20000; n++) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % 4096));
		ck_assert_int_eq(shmkit_table_put(t, k, kl, v, make_value(k, kl, 0, n, v, sizeof v)), 0);
	}
	ck_assert_int_eq(shmkit_table_count(t), 512);
	assert_verified(t);
	assert_all_values(t);
	rm_table(t);
}
END_TEST

START_TEST(test_ttl)
{
	struct shmkit_table_opts o = {.capacity = 16, .key_max = 8, .value_max = 8, .stripes = 1,
				      .ttl_ms = 60};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	char buf[8];
	ck_assert_int_eq(shmkit_table_put(t, "a", 1, "1", 1), 0);              /* default 60 ms */
	ck_assert_int_eq(shmkit_table_put_ttl(t, "b", 1, "2", 1, 0), 0);       /* never */
	ck_assert_int_eq(shmkit_table_put_ttl(t, "c", 1, "3", 1, 600000), 0);  /* ten minutes */
	ck_assert_int_eq(shmkit_table_get(t, "a", 1, buf, sizeof buf), 1);
	struct shmkit_table_view v;
	ck_assert_int_eq(shmkit_table_read_begin(t, "a", 1, &v), 0);
	ck_assert_uint_gt(v.item.expires_ns, shmkit_now_ns());
	t_sleep_us(100000);
	ck_assert_int_eq(shmkit_table_get(t, "a", 1, buf, sizeof buf), -ENOENT);
	ck_assert_int_eq(shmkit_table_read_begin(t, "a", 1, &v), -ENOENT);
	ck_assert_int_eq(shmkit_table_get(t, "b", 1, buf, sizeof buf), 1);
	ck_assert_int_eq(shmkit_table_get(t, "c", 1, buf, sizeof buf), 1);
	ck_assert_int_eq(shmkit_table_count(t), 3); /* expired, not yet reclaimed */
	ck_assert_int_eq(shmkit_table_cas(t, "a", 1, 0, "n", 1, NULL), 0); /* expired = absent */
	ck_assert_int_eq(shmkit_table_del(t, "a", 1), 0);
	ck_assert_int_eq(shmkit_table_put_ttl(t, "a", 1, "1", 1, 1), 0);
	t_sleep_us(3000);
	ck_assert_int_eq(shmkit_table_del(t, "a", 1), -ENOENT); /* expired: reclaimed, absent */
	ck_assert_int_eq(shmkit_table_put_ttl(t, "d", 1, "4", 1, 1), 0);
	t_sleep_us(3000);
	ck_assert_int_eq(shmkit_table_expire(t), 1);
	ck_assert_int_eq(shmkit_table_count(t), 2);
	struct shmkit_table_stats st;
	shmkit_table_stats(t, &st);
	ck_assert_uint_eq(st.expirations, 3);

	/* A full table whose entries have expired takes new keys without cache mode. */
	char k[8];
	for (int i = 0; i < 14; i++) {
		snprintf(k, sizeof k, "t%d", i);
		ck_assert_int_eq(shmkit_table_put_ttl(t, k, strlen(k), "x", 1, 40), 0);
	}
	ck_assert_int_eq(shmkit_table_count(t), 16);
	ck_assert_int_eq(shmkit_table_put_ttl(t, "new", 3, "y", 1, 0), -ENOSPC);
	t_sleep_us(60000);
	ck_assert_int_eq(shmkit_table_put_ttl(t, "new", 3, "y", 1, 0), 0);
	ck_assert_int_eq(shmkit_table_get(t, "new", 3, buf, sizeof buf), 1);
	assert_verified(t);
	/* The put reclaimed what it met on its way; expire() takes the rest. */
	int n = shmkit_table_expire(t);
	ck_assert_int_ge(n, 1);
	ck_assert_int_le(n, 13);
	ck_assert_int_eq(shmkit_table_count(t), 3);
	assert_verified(t);
	rm_table(t);
}
END_TEST

/* --- corrupt shared memory ------------------------------------------------------------------- */

/* Offsets of the control block (the byte table at the top of src/table.c). */
#define CTL_VERSION 8
#define CTL_CAPACITY 16
#define CTL_NSTRIPES 32
#define CTL_OFF_ENTRIES 96
#define CTL_CHECKSUM 112

static void ctl_reseal(unsigned char *ctl)
{
	uint64_t sum = shmkit__fnv1a64(ctl, CTL_CHECKSUM);
	memcpy(ctl + CTL_CHECKSUM, &sum, 8);
}

START_TEST(test_corrupt_ctl)
{
	char name[96];
	struct shmkit_table_opts o = {.capacity = 64, .key_max = 8, .value_max = 8};
	struct shmkit_table *t = mk_table(name, sizeof name, &o);
	unsigned char *ctl = shmkit_segment_data(shmkit_table_segment(t));
	unsigned char saved[128];
	memcpy(saved, ctl, sizeof saved);
	struct shmkit_table *u = NULL;
	struct {
		size_t off;
		uint64_t val;
		int width, reseal, expect;
	} cases[] = {
		{0, 'X', 1, 0, -EBADMSG},                      /* magic */
		{CTL_CAPACITY, 65, 8, 0, -EBADMSG},           /* checksum catches it */
		{CTL_CAPACITY, 128, 8, 1, -EBADMSG},          /* resealed: geometry mismatch */
		{CTL_CAPACITY, 1ull << 40, 8, 1, -EBADMSG},   /* resealed: impossible */
		{CTL_NSTRIPES, 3, 4, 1, -EBADMSG},            /* not a power of two */
		{CTL_OFF_ENTRIES, 4096, 8, 1, -EBADMSG},      /* offsets recomputed */
		{CTL_VERSION, 3, 4, 1, -EPROTO},              /* a newer layout */
		/* An older one: layout 1 kept glibc pthread mutexes in the same bytes. */
		{CTL_VERSION, 1, 4, 1, -EPROTO},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memcpy(ctl + cases[i].off, &cases[i].val, (size_t)cases[i].width);
		if (cases[i].reseal)
			ctl_reseal(ctl);
		int r = shmkit_table_open(name, NULL, &u);
		ck_assert_msg(r == cases[i].expect, "case %zu: %s", i, shmkit_strerror(r));
		ck_assert_ptr_null(u);
		memcpy(ctl, saved, sizeof saved);
	}
	ck_assert_int_eq(shmkit_table_open(name, NULL, &u), 0);
	shmkit_table_close(u);
	rm_table(t);
}
END_TEST

/* The documented layout, for white-box corruption. */
static size_t entry_size(size_t key_max, size_t value_max)
{
	size_t voff = 48 + (key_max + 7) / 8 * 8;
	return (voff + (value_max + 7) / 8 * 8 + 63) / 64 * 64;
}

START_TEST(test_corrupt_targeted)
{
	struct shmkit_table_opts o = {.capacity = 64, .key_max = 8, .value_max = 16, .stripes = 1};
	struct shmkit_table *t = mk_table(NULL, 0, &o);
	unsigned char *base = shmkit_segment_data(shmkit_table_segment(t));
	_Atomic uint32_t *buckets = (_Atomic uint32_t *)(void *)(base + 256 + 256);
	unsigned char *entries = base + 512 + 64 * 4; /* 768: already 128-aligned */
	size_t esz = entry_size(8, 16);
	char k[16], buf[16];
	for (unsigned i = 0; i < 40; i++) {
		size_t kl = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(t, k, kl, "v", 1), 0);
	}
	size_t kl = key_of(k, sizeof k, 3);
	uint64_t b = shmkit__table_bucket(t, k, kl);
	uint32_t head = atomic_load(&buckets[b]);
	ck_assert_uint_gt(head, 0);

	/* A bucket head far out of range. */
	atomic_store(&buckets[b], 0x7fffffffu);
	ck_assert_int_eq(shmkit_table_get(t, k, kl, buf, sizeof buf), -EBADMSG);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "w", 1), -EBADMSG);
	ck_assert_int_eq(shmkit_table_del(t, k, kl), -EBADMSG);
	ck_assert_int_eq(shmkit_table_verify(t), -EBADMSG);
	ck_assert_int_lt(shmkit_table_iter(t, iter_checker, &(struct iter_check){0, 0}), 0);
	atomic_store(&buckets[b], head);
	assert_verified(t);

	/* An entry's value length beyond value_max. */
	uint32_t ref = 0;
	for (uint32_t cur = head; cur;) {
		_Atomic uint32_t *e = (_Atomic uint32_t *)(void *)(entries + (cur - 1) * esz);
		char key[8];
		memcpy(key, (unsigned char *)e + 48, 8);
		if (atomic_load(&e[3]) == kl && memcmp(key, k, kl) == 0) {
			ref = cur;
			break;
		}
		cur = atomic_load(&e[2]);
	}
	ck_assert_uint_gt(ref, 0);
	_Atomic uint32_t *e = (_Atomic uint32_t *)(void *)(entries + (ref - 1) * esz);
	atomic_store(&e[4], 17); /* vlen */
	ck_assert_int_eq(shmkit_table_get(t, k, kl, buf, sizeof buf), -EBADMSG);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "w", 1), -EBADMSG);
	ck_assert_int_eq(shmkit_table_verify(t), -EBADMSG);
	atomic_store(&e[4], 1);
	/* ... and its key length (readers compare lengths first: just a miss for them). */
	atomic_store(&e[3], 200);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "w", 1), -EBADMSG);
	int r = shmkit_table_get(t, k, kl, buf, sizeof buf);
	ck_assert_msg(r == -ENOENT || r == -EBADMSG, "%d", r);
	atomic_store(&e[3], (uint32_t)kl);
	assert_verified(t);

	/* A chain that loops: a reader looking for an absent key in that bucket must stop. */
	char z[16];
	size_t zl = 0;
	for (unsigned i = 100; i < 100000 && !zl; i++) {
		size_t l = key_of(z, sizeof z, i);
		if (shmkit__table_bucket(t, z, l) == b)
			zl = l;
	}
	ck_assert_uint_gt(zl, 0);
	uint32_t saved_next = atomic_load(&e[2]);
	atomic_store(&e[2], ref); /* points at itself */
	uint64_t t0 = shmkit_now_ns();
	r = shmkit_table_get(t, z, zl, buf, sizeof buf);
	ck_assert_msg(r == -EBADMSG, "%s", shmkit_strerror(r));
	ck_assert_uint_lt(shmkit_now_ns() - t0, 5000000000ull);
	ck_assert_int_eq(shmkit_table_put(t, z, zl, "w", 1), -EBADMSG);
	atomic_store(&e[2], saved_next);
	assert_verified(t);

	/* A scribbled spare: replaces fail cleanly, inserts and reads still work. */
	_Atomic uint32_t *spare = (_Atomic uint32_t *)(void *)(base + 256 + 64);
	uint32_t sp = atomic_load(spare);
	atomic_store(spare, 0xffffffffu);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "w", 1), -EBADMSG);
	ck_assert_int_eq(shmkit_table_get(t, k, kl, buf, sizeof buf), 1);
	atomic_store(spare, sp);
	ck_assert_int_eq(shmkit_table_put(t, k, kl, "w", 1), 0);
	assert_verified(t);
	rm_table(t);
}
END_TEST

/* Hostile peer: random bytes over everything but the mutexes while others use the table. */
struct scribble_shared {
	_Atomic uint32_t stop;
	_Atomic uint64_t ops[4];
	_Atomic int32_t bad_rc[4];
};

static struct shmkit_table *g_table;
static struct scribble_shared *g_scr;

/* The scribbled ranges include the stripe and pool locks: a scribbled lock word is a dead
 * owner (repaired), a stripe made not recoverable (an unlock of a word the scribbler marked
 * inconsistent), or a live holder that never unlocks (writers time out). */
static int rc_allowed(int r)
{
	return r >= 0 || r == -ENOENT || r == -EBADMSG || r == -EAGAIN || r == -ENOSPC ||
	       r == -ESTALE || r == -ENOBUFS || r == -ENOTRECOVERABLE || r == -ETIMEDOUT;
}

static int scribble_child(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = t_seed() + (uint64_t)id * 7919;
	unsigned char buf[64];
	char k[16];
	while (!atomic_load(&g_scr->stop)) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % 300));
		int r;
		switch (id == 0 ? t_rand(&rng) % 6 : 6 + t_rand(&rng) % 4) {
		case 0:
		case 1:
			r = shmkit_table_put(g_table, k, kl, buf,
					     make_value(k, kl, 1, t_rand(&rng), buf, sizeof buf));
			break;
		case 2:
			r = shmkit_table_del(g_table, k, kl);
			break;
		case 3:
			r = shmkit_table_cas(g_table, k, kl, t_rand(&rng) % 8, "c", 1, NULL);
			break;
		case 4:
			r = shmkit_table_put_ttl(g_table, k, kl, "t", 1, 1);
			break;
		case 5:
			r = shmkit_table_expire(g_table);
			break;
		case 6:
		case 7:
			r = shmkit_table_get(g_table, k, kl, buf, sizeof buf);
			break;
		case 8: {
			struct shmkit_table_view v;
			r = shmkit_table_read_begin(g_table, k, kl, &v);
			if (r == 0) {
				shmkit_seqlock_load(buf, v.item.value,
						    v.item.vlen < sizeof buf ? v.item.vlen : sizeof buf);
				(void)shmkit_table_read_end(g_table, &v);
			}
			break;
		}
		default:
			r = shmkit_table_iter(g_table, iter_checker, &(struct iter_check){0, 0});
			if (r >= 0)
				r = shmkit_table_count(g_table);
			break;
		}
		if (!rc_allowed(r)) {
			atomic_store(&g_scr->bad_rc[id], r);
			return 1;
		}
		atomic_fetch_add(&g_scr->ops[id], 1);
	}
	return 0;
}

START_TEST(test_scribble)
{
	struct shmkit_table_opts o = {.capacity = 256, .key_max = 16, .value_max = 64, .stripes = 4};
	g_table = mk_table(NULL, 0, &o);
	g_scr = t_shm_alloc(sizeof *g_scr);
	unsigned char v[64];
	char k[16];
	for (unsigned i = 0; i < 200; i++) {
		size_t kl = key_of(k, sizeof k, i);
		ck_assert_int_eq(shmkit_table_put(g_table, k, kl, v,
						  make_value(k, kl, 0, i, v, sizeof v)), 0);
	}
	struct shmkit__table_range r[16];
	int nr = shmkit__table_scribble_ranges(g_table, r, 16);
	ck_assert_int_eq(nr, 6);
	unsigned char *base = shmkit_segment_data(shmkit_table_segment(g_table));
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = t_fork(scribble_child, (void *)(intptr_t)i);
	uint64_t rng = t_seed() ^ 0x5c5c5c5c;
	uint64_t end = shmkit_now_ns() + 400000000ull;
	unsigned writes = 0;
	while (shmkit_now_ns() < end) {
		/* Bursts of random bytes, then a pause so the others can run into them. */
		for (int j = 0; j < 16; j++) {
			const struct shmkit__table_range *g = &r[t_rand(&rng) % (uint64_t)nr];
			size_t off = g->off + t_rand(&rng) % g->len;
			atomic_store_explicit((_Atomic unsigned char *)(base + off),
					      (unsigned char)t_rand(&rng), memory_order_relaxed);
			writes++;
		}
		t_sleep_us(200);
	}
	atomic_store(&g_scr->stop, 1);
	for (int i = 0; i < 3; i++) {
		int st = t_wait(pids[i], WAIT_MS);
		ck_assert_msg(st == 0, "child %d: status %d (rc %d: %s), %llu ops", i, st,
			      atomic_load(&g_scr->bad_rc[i]),
			      shmkit_strerror(atomic_load(&g_scr->bad_rc[i])),
			      (unsigned long long)atomic_load(&g_scr->ops[i]));
		ck_assert_uint_gt(atomic_load(&g_scr->ops[i]), 0);
	}
	ck_assert_uint_gt(writes, 1000);
	int vr = shmkit_table_verify(g_table);
	ck_assert_msg(vr == 0 || vr == -EBADMSG || vr == -ENOTRECOVERABLE, "%s",
		      shmkit_strerror(vr));
	rm_table(g_table);
}
END_TEST

/* --- concurrency ------------------------------------------------------------------------------ */

#define ST_KEYS 256u

struct stress_shared {
	_Atomic uint64_t ops[8];
	_Atomic uint64_t torn[8];
	_Atomic int32_t fail[8];
	_Atomic uint32_t stop;
};
static struct stress_shared *g_st;
static uint64_t g_ops;

static int stress_writer(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = t_seed() * 31 + (uint64_t)id;
	unsigned char v[128], got[128];
	char k[16];
	for (uint64_t n = 0; n < g_ops; n++) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % ST_KEYS));
		uint64_t op = t_rand(&rng) % 16;
		int r;
		if (op < 9) {
			r = shmkit_table_put(g_table, k, kl, v,
					     make_value(k, kl, (unsigned)id, n, v, sizeof v));
		} else if (op < 11) {
			r = shmkit_table_del(g_table, k, kl);
			if (r == -ENOENT)
				r = 0;
		} else {
			uint64_t ver = 0;
			r = shmkit_table_get_versioned(g_table, k, kl, got, sizeof got, &ver);
			if (r >= 0 && check_value(k, kl, got, (size_t)r) != 0)
				atomic_fetch_add(&g_st->torn[id], 1);
			if (r >= 0 || r == -ENOENT)
				r = shmkit_table_cas(g_table, k, kl, r >= 0 ? ver : 0, v,
						     make_value(k, kl, (unsigned)id, n, v, sizeof v),
						     NULL);
			if (r == -ESTALE)
				r = 0;
		}
		if (r < 0) {
			atomic_store(&g_st->fail[id], r);
			return 2;
		}
		atomic_fetch_add_explicit(&g_st->ops[id], 1, memory_order_relaxed);
	}
	return 0;
}

static int stress_reader(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = t_seed() * 17 + (uint64_t)id;
	unsigned char got[128];
	char k[16];
	for (uint64_t n = 0; n < g_ops; n++) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % ST_KEYS));
		int r;
		if (n % 64 == 0) {
			/* Zero-copy read: copy out, then validate. */
			struct shmkit_table_view vw;
			r = shmkit_table_read_begin(g_table, k, kl, &vw);
			if (r == 0) {
				size_t len = vw.item.vlen;
				shmkit_seqlock_load(got, vw.item.value, len);
				if (shmkit_table_read_end(g_table, &vw) == 0 &&
				    check_value(k, kl, got, len) != 0)
					atomic_fetch_add(&g_st->torn[id], 1);
			}
		} else {
			r = shmkit_table_get(g_table, k, kl, got, sizeof got);
			if (r >= 0 && check_value(k, kl, got, (size_t)r) != 0)
				atomic_fetch_add(&g_st->torn[id], 1);
		}
		if (r < 0 && r != -ENOENT) {
			atomic_store(&g_st->fail[id], r);
			return 2;
		}
		atomic_fetch_add_explicit(&g_st->ops[id], 1, memory_order_relaxed);
	}
	return 0;
}

START_TEST(test_stress_processes)
{
	/* 2 writers + 2 readers on 256 overlapping keys: >= 1.2 M operations (plain build). */
	g_ops = scaled(300000, 3000000);
	/* 16 stripes: verify holds every stripe lock at once, and ThreadSanitizer's deadlock
	 * detector aborts a thread that holds more than 64 locks. */
	struct shmkit_table_opts o = {.capacity = 1024, .key_max = 16, .value_max = 128,
				      .stripes = 16};
	char name[96];
	g_table = mk_table(name, sizeof name, &o);
	g_st = t_shm_alloc(sizeof *g_st);
	pid_t pids[4];
	uint64_t t0 = shmkit_now_ns();
	for (int i = 0; i < 4; i++)
		pids[i] = t_fork(i < 2 ? stress_writer : stress_reader, (void *)(intptr_t)i);
	uint64_t total = 0, torn = 0;
	for (int i = 0; i < 4; i++) {
		int st = t_wait(pids[i], 600000);
		ck_assert_msg(st == 0, "child %d: status %d, rc %s", i, st,
			      shmkit_strerror(atomic_load(&g_st->fail[i])));
		total += atomic_load(&g_st->ops[i]);
		torn += atomic_load(&g_st->torn[i]);
	}
	double secs = (double)(shmkit_now_ns() - t0) / 1e9;
	fprintf(stderr, "table stress: %llu ops by 4 processes in %.2f s (%.2f M ops/s)\n",
		(unsigned long long)total, secs, (double)total / secs / 1e6);
	ck_assert_uint_eq(torn, 0);
	ck_assert_uint_eq(total, 4 * g_ops);
	if (SAN_DIV == 1)
		ck_assert_uint_ge(total, 1000000);
	assert_verified(g_table);
	assert_all_values(g_table);
	rm_table(g_table);
}
END_TEST

/* Counters incremented with get_versioned + cas from several processes: no lost update. */
#define CAS_KEYS 8u

static int cas_incrementer(void *arg)
{
	int id = (int)(intptr_t)arg;
	uint64_t rng = t_seed() * 13 + (uint64_t)id;
	char k[16];
	for (uint64_t n = 0; n < g_ops; n++) {
		size_t kl = (size_t)snprintf(k, sizeof k, "ctr%u", (unsigned)(t_rand(&rng) % CAS_KEYS));
		for (unsigned tries = 0;; tries++) {
			uint64_t cur = 0, ver = 0;
			int r = shmkit_table_get_versioned(g_table, k, kl, &cur, sizeof cur, &ver);
			if (r == -ENOENT) {
				cur = 0;
				ver = 0;
			} else if (r != (int)sizeof cur) {
				atomic_store(&g_st->fail[id], r);
				return 2;
			}
			uint64_t next = cur + 1;
			r = shmkit_table_cas(g_table, k, kl, ver, &next, sizeof next, NULL);
			if (r == 0)
				break;
			if (r != -ESTALE || tries > 1000000) {
				atomic_store(&g_st->fail[id], r);
				return 3;
			}
		}
		atomic_fetch_add_explicit(&g_st->ops[id], 1, memory_order_relaxed);
	}
	return 0;
}

START_TEST(test_cas_no_lost_update)
{
	g_ops = scaled(30000, 300000);
	struct shmkit_table_opts o = {.capacity = 64, .key_max = 8, .value_max = 8, .stripes = 2};
	g_table = mk_table(NULL, 0, &o);
	g_st = t_shm_alloc(sizeof *g_st);
	pid_t pids[3];
	for (int i = 0; i < 3; i++)
		pids[i] = t_fork(cas_incrementer, (void *)(intptr_t)i);
	for (int i = 0; i < 3; i++) {
		int st = t_wait(pids[i], 600000);
		ck_assert_msg(st == 0, "child %d: status %d, rc %s", i, st,
			      shmkit_strerror(atomic_load(&g_st->fail[i])));
	}
	uint64_t sum = 0;
	char k[16];
	for (unsigned i = 0; i < CAS_KEYS; i++) {
		size_t kl = (size_t)snprintf(k, sizeof k, "ctr%u", i);
		uint64_t v = 0;
		int r = shmkit_table_get(g_table, k, kl, &v, sizeof v);
		ck_assert(r == (int)sizeof v || r == -ENOENT);
		sum += r > 0 ? v : 0;
	}
	ck_assert_uint_eq(sum, 3 * g_ops);
	struct shmkit_table_stats st;
	shmkit_table_stats(g_table, &st);
	fprintf(stderr, "table cas: %llu increments, %llu cas refusals\n",
		(unsigned long long)sum, (unsigned long long)st.cas_failures);
	assert_verified(g_table);
	rm_table(g_table);
}
END_TEST

/* Threads sharing one handle: what ThreadSanitizer can see. */
static void *thread_writer(void *arg)
{
	return (void *)(intptr_t)stress_writer(arg);
}

static void *thread_reader(void *arg)
{
	return (void *)(intptr_t)stress_reader(arg);
}

START_TEST(test_threads)
{
	g_ops = scaled(100000, 1000000) * (SAN_DIV > 1 ? 2 : 1);
	struct shmkit_table_opts o = {.capacity = 512, .key_max = 16, .value_max = 128,
				      .stripes = 8};
	g_table = mk_table(NULL, 0, &o);
	g_st = t_shm_alloc(sizeof *g_st);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, i < 2 ? thread_writer : thread_reader,
						(void *)(intptr_t)i),
				 0);
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		ck_assert_msg(ret == NULL, "thread %d: %s", i,
			      shmkit_strerror(atomic_load(&g_st->fail[i])));
		uint64_t torn = atomic_load(&g_st->torn[i]);
		ck_assert_uint_eq(torn, 0);
	}
	assert_verified(g_table);
	assert_all_values(g_table);
	rm_table(g_table);
}
END_TEST

/* --- crashes -------------------------------------------------------------------------------- */

/* Each write operation, killed at each numbered point of the protocol. */
enum crash_op {
	OP_INSERT,
	OP_REPLACE_HEAD,
	OP_REPLACE_MID,
	OP_CAS_MID,
	OP_DELETE_HEAD,
	OP_DELETE_MID,
	OP_EVICT,
	OP_COUNT
};
static const char *const op_names[OP_COUNT] = {"insert",      "replace-head", "replace-mid",
					       "cas-mid",     "delete-head",  "delete-mid",
					       "evict+insert"};

static int g_crash_point;

static void crash_hook(int point)
{
	if (point == g_crash_point)
		raise(SIGKILL);
}

struct crash_keys {
	char a[16], b[16], c[16];
	size_t al, bl, cl;
};

static int g_crash_op;
static struct crash_keys g_keys;
static uint64_t g_bver;

static int crash_child(void *arg)
{
	(void)arg;
	unsigned char v[64];
	const struct crash_keys *k = &g_keys;
	shmkit__table_fault_hook = crash_hook;
	int r;
	switch (g_crash_op) {
	case OP_INSERT:
	case OP_EVICT:
		r = shmkit_table_put(g_table, k->c, k->cl, v,
				     make_value(k->c, k->cl, 0, 2, v, sizeof v));
		break;
	case OP_REPLACE_HEAD:
		r = shmkit_table_put(g_table, k->a, k->al, v,
				     make_value(k->a, k->al, 0, 2, v, sizeof v));
		break;
	case OP_REPLACE_MID:
		r = shmkit_table_put(g_table, k->b, k->bl, v,
				     make_value(k->b, k->bl, 0, 2, v, sizeof v));
		break;
	case OP_CAS_MID:
		r = shmkit_table_cas(g_table, k->b, k->bl, g_bver, v,
				     make_value(k->b, k->bl, 0, 2, v, sizeof v), NULL);
		break;
	case OP_DELETE_HEAD:
		r = shmkit_table_del(g_table, k->a, k->al);
		break;
	default:
		r = shmkit_table_del(g_table, k->b, k->bl);
		break;
	}
	return r == 0 ? 0 : 1;
}

/* Which points each operation passes (the first time), and after which the change is
 * visible (the link store is the commit point). */
static bool op_hits(int op, int p)
{
	switch (op) {
	case OP_INSERT:
		return p == SHMKIT__TF_POOL_MID || p == SHMKIT__TF_ARMED ||
		       p == SHMKIT__TF_FILL_MID || p == SHMKIT__TF_FILLED ||
		       p == SHMKIT__TF_LINKED || p == SHMKIT__TF_COMMITTED;
	case OP_REPLACE_HEAD:
		return p != SHMKIT__TF_LINK_MID && p != SHMKIT__TF_POOL_MID &&
		       p != SHMKIT__TF_EVICTED;
	case OP_REPLACE_MID:
	case OP_CAS_MID:
		return p != SHMKIT__TF_POOL_MID && p != SHMKIT__TF_EVICTED;
	case OP_DELETE_HEAD:
		return p != SHMKIT__TF_FILL_MID && p != SHMKIT__TF_FILLED &&
		       p != SHMKIT__TF_LINK_MID && p != SHMKIT__TF_EVICTED;
	case OP_DELETE_MID:
		return p != SHMKIT__TF_FILL_MID && p != SHMKIT__TF_FILLED &&
		       p != SHMKIT__TF_EVICTED;
	default: /* evict: the victim (head of its bucket) is unlinked, then C inserted */
		return p != SHMKIT__TF_LINK_MID && p != SHMKIT__TF_POOL_MID;
	}
}

static bool after_commit(int p)
{
	return p == SHMKIT__TF_LINKED || p == SHMKIT__TF_UNLINKED || p == SHMKIT__TF_COMMITTED;
}

/* Expects `key` absent (seq 0) or holding the value with that sequence number. */
static void expect_key(const char *what, const char *key, size_t kl, uint64_t seq)
{
	unsigned char got[64];
	int r = shmkit_table_get(g_table, key, kl, got, sizeof got);
	if (seq == 0) {
		ck_assert_msg(r == -ENOENT, "%s: %s should be absent, got %d", what, key, r);
		return;
	}
	ck_assert_msg(r > 0, "%s: %s: %s", what, key, shmkit_strerror(r));
	ck_assert_msg(check_value(key, kl, got, (size_t)r) == 0, "%s: %s: torn value", what, key);
	ck_assert_msg(value_seq(got) == seq, "%s: %s holds seq %llu, expected %llu", what, key,
		      (unsigned long long)value_seq(got), (unsigned long long)seq);
}

/* Builds a table with keys A (head) and B behind it in one bucket, C elsewhere absent. */
static void crash_setup(int op)
{
	struct shmkit_table_opts o = {.capacity = op == OP_EVICT ? 2 : 8, .key_max = 16,
				      .value_max = 64, .stripes = 1,
				      .flags = op == OP_EVICT ? SHMKIT_TABLE_CACHE : 0};
	g_table = mk_table(NULL, 0, &o);
	struct crash_keys *k = &g_keys;
	k->al = key_of(k->a, sizeof k->a, 0);
	uint64_t ba = shmkit__table_bucket(g_table, k->a, k->al);
	k->bl = 0;
	for (unsigned i = 1; !k->bl; i++) {
		size_t l = key_of(k->b, sizeof k->b, i);
		if (shmkit__table_bucket(g_table, k->b, l) == ba)
			k->bl = l;
	}
	k->cl = (size_t)snprintf(k->c, sizeof k->c, "third");
	unsigned char v[64];
	ck_assert_int_eq(shmkit_table_put(g_table, k->b, k->bl, v,
					  make_value(k->b, k->bl, 0, 1, v, sizeof v)), 0);
	ck_assert_int_eq(shmkit_table_put(g_table, k->a, k->al, v,
					  make_value(k->a, k->al, 0, 1, v, sizeof v)), 0);
	ck_assert_int_eq(shmkit_table_get_versioned(g_table, k->b, k->bl, v, sizeof v, &g_bver) > 0,
			 1);
}

static void crash_expect(int op, int p, bool killed, const char *what)
{
	const struct crash_keys *k = &g_keys;
	bool done = !killed || after_commit(p);
	uint64_t a = 1, b = 1, c = 0;
	switch (op) {
	case OP_INSERT:
		c = done ? 2 : 0;
		break;
	case OP_REPLACE_HEAD:
		a = done ? 2 : 1;
		break;
	case OP_REPLACE_MID:
	case OP_CAS_MID:
		b = done ? 2 : 1;
		break;
	case OP_DELETE_HEAD:
		a = done || p == SHMKIT__TF_POOL_MID ? 0 : 1;
		break;
	case OP_DELETE_MID:
		b = done || p == SHMKIT__TF_POOL_MID ? 0 : 1;
		break;
	default:
		/* The victim's unlink commits at its link store; C only if not killed. */
		a = killed && p == SHMKIT__TF_ARMED ? 1 : 0;
		c = killed ? 0 : 2;
		break;
	}
	expect_key(what, k->a, k->al, a);
	expect_key(what, k->b, k->bl, b);
	expect_key(what, k->c, k->cl, c);
}

START_TEST(test_crash_points)
{
	int kills = 0;
	for (int op = 0; op < OP_COUNT; op++) {
		for (int p = 1; p < SHMKIT__TF_COUNT; p++) {
			char what[64];
			snprintf(what, sizeof what, "%s killed at point %d", op_names[op], p);
			crash_setup(op);
			g_crash_op = op;
			g_crash_point = p;
			pid_t pid = t_fork(crash_child, NULL);
			int st = t_wait(pid, WAIT_MS);
			bool killed = st == 128 + SIGKILL;
			ck_assert_msg(killed == op_hits(op, p) && (killed || st == 0),
				      "%s: child status %d", what, st);
			kills += killed;
			/* Readers first: they see the old or the new state, nothing else, before
			 * any repair (a reader that meets a half-written entry repairs it). */
			crash_expect(op, p, killed, what);
			/* The next writer repairs the stripe; readers see the same state. */
			ck_assert_int_eq(shmkit_table_put(g_table, "other", 5, "o", 1) == 0 ||
						 op == OP_EVICT,
					 1);
			struct shmkit_table_stats s;
			shmkit_table_stats(g_table, &s);
			ck_assert_msg(s.repairs == (killed ? 1u : 0u), "%s: %llu repairs", what,
				      (unsigned long long)s.repairs);
			if (op == OP_EVICT)
				ck_assert_int_eq(shmkit_table_del(g_table, "other", 5), 0);
			else
				crash_expect(op, p, killed, what);
			assert_verified(g_table);
			rm_table(g_table);
		}
	}
	ck_assert_int_ge(kills, 40);
}
END_TEST

/* A writer dies with a linked entry half-written (its sequence odd): a read-only reader
 * gives up with -EAGAIN in bounded time; a read-write reader repairs the stripe. */
START_TEST(test_reader_repairs)
{
	crash_setup(OP_REPLACE_MID);
	g_crash_op = OP_REPLACE_MID;
	g_crash_point = SHMKIT__TF_LINK_MID;
	pid_t pid = t_fork(crash_child, NULL);
	ck_assert_int_eq(t_wait(pid, WAIT_MS), 128 + SIGKILL);

	struct shmkit_table *ro;
	struct shmkit_table_opts o = {.seg.flags = SHMKIT_SEG_RDONLY};
	ck_assert_int_eq(shmkit_table_open_fd(shmkit_segment_fd(shmkit_table_segment(g_table)), &o,
					      &ro),
			 0);
	unsigned char got[64];
	uint64_t t0 = shmkit_now_ns();
	/* B sits behind A, whose next the writer was rewriting. */
	ck_assert_int_eq(shmkit_table_get(ro, g_keys.b, g_keys.bl, got, sizeof got), -EAGAIN);
	ck_assert_uint_lt(shmkit_now_ns() - t0, 2000000000ull);
	struct shmkit_table_stats s;
	shmkit_table_stats(ro, &s);
	ck_assert_uint_eq(s.repairs, 0);
	ck_assert_uint_gt(s.read_retries, 100);

	/* A read-write reader gets the value, repairing the stripe on its way. */
	expect_key("reader repair", g_keys.b, g_keys.bl, 1);
	shmkit_table_stats(g_table, &s);
	ck_assert_uint_eq(s.repairs, 1);
	int r = shmkit_table_get(ro, g_keys.b, g_keys.bl, got, sizeof got);
	ck_assert_int_gt(r, 0);
	ck_assert_int_eq(check_value(g_keys.b, g_keys.bl, got, (size_t)r), 0);
	shmkit_table_close(ro);
	assert_verified(g_table);
	rm_table(g_table);
}
END_TEST

/* A writer looping over puts, deletes and cas, killed at random moments, many times, while
 * a reader checks every value it reads; after each kill the whole table is validated. */
#define KILL_KEYS 96u

static int kill_writer(void *arg)
{
	(void)arg;
	uint64_t rng = t_seed() ^ (uint64_t)getpid() << 20;
	unsigned char v[128], got[128];
	char k[16];
	for (uint64_t n = 0;; n++) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % KILL_KEYS));
		uint64_t op = t_rand(&rng) % 8;
		int r;
		if (op < 5) {
			r = shmkit_table_put(g_table, k, kl, v,
					     make_value(k, kl, 1, t_rand(&rng), v, sizeof v));
		} else if (op < 6) {
			r = shmkit_table_del(g_table, k, kl);
		} else {
			uint64_t ver = 0;
			r = shmkit_table_get_versioned(g_table, k, kl, got, sizeof got, &ver);
			r = shmkit_table_cas(g_table, k, kl, r >= 0 ? ver : 0, v,
					     make_value(k, kl, 2, t_rand(&rng), v, sizeof v), NULL);
		}
		if (r < 0 && r != -ENOENT && r != -ESTALE && r != -ENOSPC) {
			atomic_store(&g_st->fail[0], r);
			return 2;
		}
		atomic_fetch_add_explicit(&g_st->ops[0], 1, memory_order_relaxed);
	}
}

static int kill_reader(void *arg)
{
	(void)arg;
	uint64_t rng = t_seed() * 3;
	unsigned char got[128];
	char k[16];
	while (!atomic_load(&g_st->stop)) {
		size_t kl = key_of(k, sizeof k, (unsigned)(t_rand(&rng) % KILL_KEYS));
		int r = shmkit_table_get(g_table, k, kl, got, sizeof got);
		if (r >= 0 && check_value(k, kl, got, (size_t)r) != 0)
			atomic_fetch_add(&g_st->torn[1], 1);
		else if (r < 0 && r != -ENOENT) {
			atomic_store(&g_st->fail[1], r);
			return 2;
		}
		atomic_fetch_add_explicit(&g_st->ops[1], 1, memory_order_relaxed);
	}
	return 0;
}

START_TEST(test_kill_random)
{
	unsigned rounds = (unsigned)scaled(100, 2000) + 8;
	struct shmkit_table_opts o = {.capacity = 128, .key_max = 16, .value_max = 128, .stripes = 4};
	char name[96];
	g_table = mk_table(name, sizeof name, &o);
	g_st = t_shm_alloc(sizeof *g_st);
	uint64_t rng = t_seed() ^ 0x1234;
	pid_t reader = t_fork(kill_reader, NULL);
	unsigned killed = 0;
	for (unsigned round = 0; round < rounds; round++) {
		uint64_t before = atomic_load(&g_st->ops[0]);
		pid_t pid = t_fork(kill_writer, NULL);
		/* Let it get going, then kill it at a random moment. */
		for (int i = 0; i < 5000 && atomic_load(&g_st->ops[0]) < before + 20; i++)
			t_sleep_us(100);
		t_sleep_us((unsigned)(t_rand(&rng) % 2000));
		kill(pid, SIGKILL);
		int st = t_wait(pid, WAIT_MS);
		ck_assert_msg(st == 128 + SIGKILL, "round %u: writer status %d (%s)", round, st,
			      shmkit_strerror(atomic_load(&g_st->fail[0])));
		killed++;
		assert_verified(g_table);
		assert_all_values(g_table);
	}
	atomic_store(&g_st->stop, 1);
	ck_assert_msg(t_wait(reader, WAIT_MS) == 0, "reader: %s",
		      shmkit_strerror(atomic_load(&g_st->fail[1])));
	uint64_t torn = atomic_load(&g_st->torn[1]);
	ck_assert_uint_eq(torn, 0);
	struct shmkit_table_stats s;
	shmkit_table_stats(g_table, &s);
	fprintf(stderr, "table kill -9: %u writers killed, %llu repairs, %llu writer ops, %llu reads\n",
		killed, (unsigned long long)s.repairs, (unsigned long long)atomic_load(&g_st->ops[0]),
		(unsigned long long)atomic_load(&g_st->ops[1]));
	/* Writers spend most of their time inside a stripe lock; over this many kills some
	 * must have died holding one (the odds of none are below 1e-6). */
	ck_assert_uint_ge(s.repairs, 1);
	rm_table(g_table);
}
END_TEST

/* --- the CLI ---------------------------------------------------------------------------------- */

/* Runs the CLI (tests/testutil.c) with args (NULL-terminated, without the program) into *r,
 * feeding `in` (a string, or NULL for nothing) to its stdin. */
static void run_cli(struct t_run *r, const char *in, const char *const *args)
{
	int pin[2];
	ck_assert(pipe(pin) == 0);
	size_t inlen = in ? strlen(in) : 0;
	if (inlen)
		ck_assert(write(pin[1], in, inlen) == (ssize_t)inlen);
	close(pin[1]);
	struct t_proc p;
	t_spawn_cli(&p, pin[0], -1, args);
	close(pin[0]);
	t_run_collect(r, &p, 20000);
}

#define CLI(r, in, ...) run_cli(r, in, (const char *const[]){__VA_ARGS__, NULL})

START_TEST(test_cli)
{
	static struct t_run r;
	char name[96];
	t_name_tracked(name, sizeof name, "cli", SHMKIT_BACKEND_POSIX);
	ck_assert_msg(access(t_cli_path(), X_OK) == 0, "no CLI at %s (build it: make all)",
		      t_cli_path());

	CLI(&r, NULL, "table", "create", name, "--capacity", "8", "--key-max", "16",
	    "--value-max", "32", "--cache", "--ttl", "3600");
	ck_assert_msg(r.status == 0, "create: %d %s", r.status, r.err);
	CLI(&r, NULL, "table", "put", name, "greeting", "hello world");
	ck_assert_msg(r.status == 0, "put: %s", r.err);
	CLI(&r, "from\nstdin\n", "table", "put", name, "piped", "-");
	ck_assert_msg(r.status == 0, "put -: %s", r.err);
	CLI(&r, NULL, "table", "get", name, "greeting");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "hello world\n");
	CLI(&r, NULL, "table", "get", "--raw", name, "piped");
	ck_assert_int_eq(r.status, 0);
	ck_assert_str_eq(r.out, "from\nstdin\n");

	/* The library sees what the CLI wrote, and the other way round. */
	struct shmkit_table *t;
	ck_assert_int_eq(shmkit_table_open(name, NULL, &t), 0);
	char buf[64];
	ck_assert_int_eq(shmkit_table_get(t, "greeting", 8, buf, sizeof buf), 11);
	ck_assert_int_eq(shmkit_table_put(t, "bin\x01", 4, "a\"b\\c", 5), 0);
	CLI(&r, NULL, "table", "dump", name);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "greeting\thello world\n"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "piped\tfrom\\nstdin\\n\n"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "bin\\x01\ta\"b\\\\c\n"), "%s", r.out);
	CLI(&r, NULL, "table", "dump", "--json", name);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "\"key\":\"greeting\""), "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"value\":\"from\\nstdin\\n\""), "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"key\":\"bin\\u0001\""), "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"value\":\"a\\\"b\\\\c\""), "%s", r.out);

	CLI(&r, NULL, "stat", name);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "kind: table"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "entries: 3"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "capacity: 8"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "load: 37.5%"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "evictions: 0"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "repairs: 0"), "%s", r.out);
	CLI(&r, NULL, "stat", "--json", name);
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strstr(r.out, "\"entries\":3"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"cache\":true"), "%s", r.out);
	ck_assert_msg(strstr(r.out, "\"load\":37.5"), "%s", r.out);

	CLI(&r, NULL, "table", "del", name, "greeting");
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(shmkit_table_get(t, "greeting", 8, buf, sizeof buf), -ENOENT);
	CLI(&r, NULL, "table", "put", name, "greeting", "again");
	ck_assert_int_eq(r.status, 0);

	/* Cache mode: more keys than capacity evict, never fail. */
	for (int i = 0; i < 12; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		CLI(&r, NULL, "table", "put", name, k, "v");
		ck_assert_msg(r.status == 0, "put %s: %s", k, r.err);
	}
	CLI(&r, NULL, "stat", name);
	ck_assert_msg(strstr(r.out, "entries: 8") && strstr(r.out, "evictions: 7"), "%s", r.out);

	/* Errors: runtime 1 with one line naming the table, usage 2. */
	CLI(&r, NULL, "table", "get", name, "missing");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, name) && strstr(r.err, "missing") && strchr(r.err, '\n') ==
			      r.err + strlen(r.err) - 1,
		      "%s", r.err);
	CLI(&r, NULL, "table", "del", name, "missing");
	ck_assert_int_eq(r.status, 1);
	CLI(&r, NULL, "table", "put", name, "a-key-longer-than-16", "v");
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "key of 20 bytes exceeds key_max 16"), "%s", r.err);
	CLI(&r, NULL, "table", "get", "no-such-table-x", "k");
	ck_assert_int_eq(r.status, 1);
	CLI(&r, NULL, "table", "create", name, "--capacity", "8");
	ck_assert_int_eq(r.status, 1); /* exists */
	CLI(&r, NULL, "table", "create", "x", "--capacity", "zero");
	ck_assert_int_eq(r.status, 2);
	CLI(&r, NULL, "table", "frobnicate");
	ck_assert_int_eq(r.status, 2);
	CLI(&r, NULL, "table");
	ck_assert_int_eq(r.status, 2);
	CLI(&r, NULL, "table", "get", name);
	ck_assert_int_eq(r.status, 2);
	CLI(&r, NULL, "table", "--help");
	ck_assert_int_eq(r.status, 0);
	ck_assert_msg(strncmp(r.out, "Usage: shmkit table", 19) == 0, "%s", r.out);
	shmkit_table_close(t);
	CLI(&r, NULL, "rm", name);
	ck_assert_int_eq(r.status, 0);
}
END_TEST

/* --- suite ---------------------------------------------------------------------------------- */

static Suite *table_suite(void)
{
	Suite *s = suite_create("table");
	TCase *tc = t_tcase(s, "api", 30);
	tcase_add_test(tc, test_basic);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_open);
	tcase_add_test(tc, test_versions_cas);
	tcase_add_test(tc, test_iter);
	tcase_add_test(tc, test_view);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_cache_evict);
	tcase_add_test(tc, test_ttl);

	tc = t_tcase(s, "corrupt", 60);
	tcase_add_test(tc, test_corrupt_ctl);
	tcase_add_test(tc, test_corrupt_targeted);
	tcase_add_test(tc, test_scribble);

	tc = t_tcase(s, "concurrency", t_stress() ? 3600 : 180);
	tcase_add_test(tc, test_stress_processes);
	tcase_add_test(tc, test_cas_no_lost_update);
	tcase_add_test(tc, test_threads);

	tc = t_tcase(s, "crash", t_stress() ? 3600 : 180);
	tcase_add_test(tc, test_crash_points);
	tcase_add_test(tc, test_reader_repairs);
	tcase_add_test(tc, test_kill_random);

	tc = t_tcase(s, "cli", 60);
	tcase_add_test(tc, test_cli);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {table_suite};
	return t_main(makers, 1);
}
