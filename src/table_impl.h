/* shmkit — what the files of the shared table share (src/table*.c). Never installed.
 *
 * The table is one module in several files, one concern each:
 *   src/table.c         the design (the byte table, the protocol, what happens when a process
 *                       dies), the geometry, and the handles: create, open, close
 *   src/table_repair.c  the locks, the entry pool and crash repair: the undo record a writer
 *                       arms and the next lock holder rolls back or forward
 *   src/table_read.c    lock-free reads, with their locked fallback; count and stats
 *   src/table_iter.c    iteration
 *   src/table_write.c   the writer operations (stripe lock held): put, cas, del, expire
 *   src/table_verify.c  the invariant check (shmkit_table_verify) and the test hooks
 * Here: the shared layout (drawn at the top of src/table.c), the tunables, the handle, and
 * the primitives every path inlines (atomics, copies, fences, the entry seqlock, hashing).
 * What one file calls in another is declared at the end, named shmkit__table_* (hidden,
 * like every symbol the version script does not export).
 */
#ifndef SHMKIT_TABLE_IMPL_H
#define SHMKIT_TABLE_IMPL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"
#include "object.h"
#include "shmkit/table.h"
#include "table_internal.h"

/* --- shared layout --------------------------------------------------------------------- */

/* Layout 2: the locks became shmkit's own futex mutexes (src/sync.c) instead of glibc
 * pthread mutexes. The 64 bytes mean different things to the two, so a layout-1 peer must
 * get -EPROTO rather than take a lock the other side does not see. */
#define TBL_LAYOUT 2u
#define CTL_SIZE 128u
#define CTL_SUMMED 112u
#define POOL_OFF 128u
#define STRIPE_SIZE 256u
#define STRIPES_OFF 256u
#define ENT_HDR 48u
#define ENT_ALIGN 64u

static const uint8_t tbl_magic[8] = {'s', 'h', 'm', 'k', 't', 'b', 'l', '1'};

struct tbl_ctl {
	uint8_t magic[8];
	uint32_t version;
	uint32_t flags;
	uint64_t capacity;
	uint32_t key_max;
	uint32_t value_max;
	uint32_t nstripes;
	uint32_t entry_size;
	uint64_t nbuckets;
	uint64_t nentries;
	uint32_t ttl_ms;
	uint32_t reserved0;
	uint64_t seed;
	uint64_t off_pool;
	uint64_t off_stripes;
	uint64_t off_buckets;
	uint64_t off_entries;
	uint64_t size;
	uint64_t checksum;
	uint64_t reserved1;
};

struct tbl_pool {
	struct shmkit_mutex lock;
	_Atomic uint32_t free_head;
	_Atomic uint32_t free_count;
	_Atomic uint32_t bump;
	uint32_t pad0;
	_Atomic uint64_t rebuilds;
	uint8_t pad1[40];
};

enum { LINK_NONE = 0, LINK_BUCKET = 1, LINK_NEXT = 2 };

struct tbl_stripe {
	struct shmkit_mutex lock;
	_Atomic uint32_t spare;
	_Atomic uint32_t count;
	_Atomic uint32_t ttl_count;
	_Atomic uint32_t hand;
	_Atomic uint64_t version;
	_Atomic uint32_t undo_state;  /* 0 idle, 1 armed */
	_Atomic uint32_t undo_link;   /* LINK_* */
	_Atomic uint32_t undo_at;     /* bucket index (LINK_BUCKET) or entry ref (LINK_NEXT) */
	_Atomic uint32_t undo_old;    /* the link's value before the change */
	_Atomic uint32_t undo_new;    /* ... and after it */
	_Atomic uint32_t undo_retire; /* entry the change unlinks (LIVE -> ALLOC) */
	_Atomic uint32_t undo_fresh;  /* entry the change links (ALLOC -> LIVE) */
	_Atomic uint32_t undo_spare_before;
	_Atomic uint32_t undo_spare_after;
	uint32_t pad0;
	_Atomic uint64_t puts;
	_Atomic uint64_t inserts;
	_Atomic uint64_t dels;
	_Atomic uint64_t cas_failures;
	_Atomic uint64_t evictions;
	_Atomic uint64_t expirations;
	_Atomic uint64_t repairs;
	uint8_t pad1[72];
};

struct tbl_ent {
	_Atomic uint32_t seq;
	_Atomic uint32_t state;
	_Atomic uint32_t next;
	_Atomic uint32_t klen;
	_Atomic uint32_t vlen;
	_Atomic uint32_t ref;
	_Atomic uint64_t hash;
	_Atomic uint64_t version;
	_Atomic uint64_t expires;
};

/* Entry states: the kind in the low two bits, the owning stripe above. */
#define ST_FREE 0u
#define ST_ALLOC 1u
#define ST_LIVE 2u
#define ST_KIND(st) ((st) & 3u)
#define ST_MAKE(kind, s) ((kind) | ((uint32_t)(s) << 2))

static_assert(sizeof(struct tbl_ctl) == CTL_SIZE, "control block is 128 bytes");
static_assert(offsetof(struct tbl_ctl, capacity) == 16, "ctl layout");
static_assert(offsetof(struct tbl_ctl, nbuckets) == 40, "ctl layout");
static_assert(offsetof(struct tbl_ctl, seed) == 64, "ctl layout");
static_assert(offsetof(struct tbl_ctl, off_pool) == 72, "ctl layout");
static_assert(offsetof(struct tbl_ctl, size) == 104, "ctl layout");
static_assert(offsetof(struct tbl_ctl, checksum) == CTL_SUMMED, "ctl layout");
static_assert(sizeof(struct tbl_pool) == 128, "pool block is 128 bytes");
static_assert(offsetof(struct tbl_pool, free_head) == 64, "pool layout");
static_assert(offsetof(struct tbl_pool, bump) == 72, "pool layout");
static_assert(offsetof(struct tbl_pool, rebuilds) == 80, "pool layout");
static_assert(sizeof(struct tbl_stripe) == STRIPE_SIZE, "stripe block is 256 bytes");
static_assert(offsetof(struct tbl_stripe, spare) == 64, "stripe layout");
static_assert(offsetof(struct tbl_stripe, version) == 80, "stripe layout");
static_assert(offsetof(struct tbl_stripe, undo_state) == 88, "stripe layout");
static_assert(offsetof(struct tbl_stripe, undo_spare_after) == 120, "stripe layout");
static_assert(offsetof(struct tbl_stripe, puts) == 128, "counters on their own line");
static_assert(offsetof(struct tbl_stripe, repairs) == 176, "stripe layout");
static_assert(sizeof(struct tbl_ent) == ENT_HDR, "entry header is 48 bytes");
static_assert(offsetof(struct tbl_ent, state) == 4, "entry layout");
static_assert(offsetof(struct tbl_ent, next) == 8, "entry layout");
static_assert(offsetof(struct tbl_ent, ref) == 20, "entry layout");
static_assert(offsetof(struct tbl_ent, hash) == 24, "entry layout");
static_assert(offsetof(struct tbl_ent, expires) == 40, "entry layout");
static_assert(sizeof(struct shmkit_mutex) == 64, "a mutex fills one cache line");
static_assert(sizeof(_Atomic uint32_t) == 4 && sizeof(_Atomic uint64_t) == 8, "atomic sizes");
static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	      "shared atomics are lock-free, hence address-free");
static_assert(SHMKIT_TABLE_STRIPES_MAX <= (UINT32_MAX >> 2), "stripe fits the state word");
static_assert(sizeof(((struct shmkit_table_view *)0)->private_) >= 2 * sizeof(uint32_t),
	      "view keeps ref and seq");

/* --- tunables -------------------------------------------------------------------------- */

/* Optimistic read attempts before a reader looks at the stripe lock. A writer changes a
 * linked entry for a few stores only, so a live writer almost never costs more than one
 * retry; a few hundred pauses (~10 us) is far beyond that and far below anything a user
 * would notice. */
#define READ_TRIES 256u
/* How long a reader keeps retrying while a live writer holds the stripe lock. The fuzz
 * target (tests/fuzz/table_fuzz.c, make fuzz) divides both waits, so that an input whose
 * lock words name a live holder costs microseconds, not seconds. */
#ifndef SHMKIT__TABLE_WAIT_DIV
#define SHMKIT__TABLE_WAIT_DIV 1u
#endif
#define READ_BUDGET_NS (20ull * 1000 * 1000 / SHMKIT__TABLE_WAIT_DIV)
#define LOCK_TIMEOUT_NS ((uint64_t)SHMKIT_TABLE_LOCK_TIMEOUT_MS * 1000000ull / SHMKIT__TABLE_WAIT_DIV)

/* --- the handle ----------------------------------------------------------------------- */

struct shmkit_table {
	struct shmkit_segment *seg;
	unsigned char *base; /* the segment's data area */
	struct tbl_pool *pool;
	unsigned char *stripes;
	_Atomic uint32_t *buckets;
	unsigned char *entries;
	/* Private copies of the geometry, validated once: never re-read from shared memory. */
	uint64_t capacity, nbuckets, nentries, bmask, seed;
	uint32_t key_max, value_max, nstripes, smask, entry_size, voff, flags, ttl_ms;
	size_t size, seg_size;
	bool rdonly;
	/* Per-handle counters: readers must not write shared lines for statistics. Relaxed
	 * load + store (not an RMW): exact for one thread, approximate when threads share the
	 * handle, and never a locked instruction on the hit path. On their own cache line, so
	 * threads sharing the handle do not invalidate the geometry every call reads. */
	_Alignas(64) _Atomic uint64_t gets;
	_Atomic uint64_t hits, misses, retries;
};

struct geom {
	uint64_t capacity, nbuckets, nentries, size;
	uint64_t off_pool, off_stripes, off_buckets, off_entries;
	uint32_t key_max, value_max, nstripes, entry_size, voff;
};

/* Entry header fields as one private snapshot. */
struct hdr {
	uint32_t state, next, klen, vlen;
	uint64_t hash, version, expires;
};

/* A link that points at an entry: a bucket head or an entry's next. */
struct link {
	uint32_t kind; /* LINK_BUCKET or LINK_NEXT */
	uint32_t at;   /* bucket index or entry ref */
};

/* What a write stores. */
struct newval {
	uint64_t hash, version, expires;
	const void *key, *val;
	uint32_t klen, vlen;
};

#define FAULT(p)                                                                  \
	do {                                                                      \
		if (SHMKIT__UNLIKELY(shmkit__table_fault_hook != NULL))           \
			shmkit__table_fault_hook(p);                              \
	} while (0)

/* --- small helpers ----------------------------------------------------------------------- */

static inline uint32_t ld32(const _Atomic uint32_t *p)
{
	/* Relaxed: every caller says what orders it (a lock, a seqlock, or nothing needed). */
	return atomic_load_explicit(p, memory_order_relaxed);
}

static inline uint64_t ld64(const _Atomic uint64_t *p)
{
	/* Relaxed: as ld32(). */
	return atomic_load_explicit(p, memory_order_relaxed);
}

static inline void st32(_Atomic uint32_t *p, uint32_t v)
{
	/* Relaxed: as ld32(). */
	atomic_store_explicit(p, v, memory_order_relaxed);
}

static inline void st64(_Atomic uint64_t *p, uint64_t v)
{
	/* Relaxed: as ld32(). */
	atomic_store_explicit(p, v, memory_order_relaxed);
}

/* Bumps a counter that only the holder of the lock guarding it writes: a plain
 * load + store suffices, and readers of the counter take snapshots. */
static inline void bump64(_Atomic uint64_t *p)
{
	st64(p, ld64(p) + 1);
}

static inline void cnt_inc(_Atomic uint64_t *p)
{
	/* Relaxed load + store: a statistics counter (see struct shmkit_table). */
	st64(p, ld64(p) + 1);
}

static inline uint64_t round_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) / a * a;
}

static inline bool ref_ok(const struct shmkit_table *t, uint32_t ref)
{
	return ref >= 1 && ref <= t->nentries;
}

static inline struct tbl_ent *ent_at(const struct shmkit_table *t, uint32_t ref)
{
	return (struct tbl_ent *)(void *)(t->entries + (size_t)(ref - 1) * t->entry_size);
}

static inline unsigned char *ent_key(struct tbl_ent *e)
{
	return (unsigned char *)e + ENT_HDR;
}

static inline unsigned char *ent_val(const struct shmkit_table *t, struct tbl_ent *e)
{
	return (unsigned char *)e + t->voff;
}

static inline struct tbl_stripe *stripe_at(const struct shmkit_table *t, uint32_t s)
{
	return (struct tbl_stripe *)(void *)(t->stripes + (size_t)s * STRIPE_SIZE);
}

static inline uint32_t stripe_of(const struct shmkit_table *t, uint64_t b)
{
	return (uint32_t)(b & t->smask);
}

static inline uint64_t buckets_per_stripe(const struct shmkit_table *t)
{
	return t->nbuckets / t->nstripes;
}

static inline void hdr_load(const struct tbl_ent *e, struct hdr *h)
{
	/* Relaxed: under the entry's seqlock (readers) or the stripe lock (writers). */
	h->state = ld32(&e->state);
	h->next = ld32(&e->next);
	h->klen = ld32(&e->klen);
	h->vlen = ld32(&e->vlen);
	h->hash = ld64(&e->hash);
	h->version = ld64(&e->version);
	h->expires = ld64(&e->expires);
}

static inline bool expired(const struct hdr *h, uint64_t *now)
{
	if (h->expires == 0)
		return false;
	if (*now == 0)
		*now = shmkit_now_ns();
	return *now >= h->expires;
}

/* --- copies between private and shared memory -------------------------------------------
 * Shared key and value slots start 8-byte aligned and are padded to a multiple of 8, so the
 * copies use whole 8-byte relaxed atomics only (no data race with a concurrent writer; the
 * seqlock discards torn results), reading at most the slot's padding past the length. */

static inline void shm_load(void *dst, const unsigned char *src, size_t n)
{
	unsigned char *d = dst;
	for (; n >= 8; n -= 8, src += 8, d += 8) {
		/* Relaxed: ordered by the entry seqlock (TABLE-A1/TABLE-A2). */
		uint64_t w = atomic_load_explicit((const _Atomic uint64_t *)(const void *)src,
						  memory_order_relaxed);
		memcpy(d, &w, 8);
	}
	if (n) {
		/* Relaxed: as above. */
		uint64_t w = atomic_load_explicit((const _Atomic uint64_t *)(const void *)src,
						  memory_order_relaxed);
		memcpy(d, &w, n);
	}
}

static inline void shm_store(unsigned char *dst, const void *src, size_t n)
{
	const unsigned char *s = src;
	for (; n >= 8; n -= 8, s += 8, dst += 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		/* Relaxed: ordered by the entry seqlock (TABLE-R1/TABLE-R2). */
		atomic_store_explicit((_Atomic uint64_t *)(void *)dst, w, memory_order_relaxed);
	}
	if (n) {
		uint64_t w = 0;
		memcpy(&w, s, n);
		/* Relaxed: as above. */
		atomic_store_explicit((_Atomic uint64_t *)(void *)dst, w, memory_order_relaxed);
	}
}

static inline bool shm_eq(const unsigned char *shm, const void *p, size_t n)
{
	const unsigned char *q = p;
	for (; n >= 8; n -= 8, shm += 8, q += 8) {
		uint64_t w, x;
		/* Relaxed: ordered by the entry seqlock; the caller re-validates. */
		w = atomic_load_explicit((const _Atomic uint64_t *)(const void *)shm,
					 memory_order_relaxed);
		memcpy(&x, q, 8);
		if (w != x)
			return false;
	}
	if (n) {
		/* Relaxed: as above. */
		uint64_t w = atomic_load_explicit((const _Atomic uint64_t *)(const void *)shm,
						  memory_order_relaxed);
		return memcmp(&w, q, n) == 0;
	}
	return true;
}

/* --- fences --------------------------------------------------------------------------------
 * gcc's ThreadSanitizer does not model atomic_thread_fence() and says so with -Wtsan (an
 * error under -Werror). Every shared access here is atomic, so a TSan build loses no race
 * report by not modelling the fences (they still execute as real fences); silence that one
 * warning around them, as src/sync.c does. */
#if defined(__SANITIZE_THREAD__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define TABLE_TSAN_PRAGMAS 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wtsan"
#endif

static inline void fence_acquire(void)
{
	atomic_thread_fence(memory_order_acquire);
}

static inline void fence_release(void)
{
	atomic_thread_fence(memory_order_release);
}

#ifdef TABLE_TSAN_PRAGMAS
#pragma GCC diagnostic pop
#endif

/* --- entry seqlock ---------------------------------------------------------------------
 * The protocol of shmkit's seqlock (sync.h), inlined so the read hit path makes no calls,
 * on a word inside the entry's own first cache line. */

static inline uint32_t ent_read_begin(const struct tbl_ent *e)
{
	/* TABLE-A1: sees the fields of every write that ended at or before this sequence; pairs
	 * with TABLE-R1 in ent_write_end(). */
	return atomic_load_explicit(&e->seq, memory_order_acquire);
}

static inline bool ent_read_ok(const struct tbl_ent *e, uint32_t seq)
{
	/* TABLE-A2: keeps the field loads before the re-check; if any of them saw a store made
	 * after a writer's fence TABLE-R2, the re-check sees that writer's odd sequence or later;
	 * pairs with TABLE-R2 in ent_write_begin(). */
	fence_acquire();
	/* Relaxed: ordered after the field loads by TABLE-A2. */
	return atomic_load_explicit(&e->seq, memory_order_relaxed) == seq;
}

static inline void ent_write_begin(struct tbl_ent *e)
{
	/* Relaxed: writers of an entry are serialized by its stripe (or the pool) lock. */
	uint32_t s = ld32(&e->seq);
	/* Odd already: a writer died mid-write; stay odd, this write repairs it. */
	if (!(s & 1u))
		st32(&e->seq, s + 1);
	/* TABLE-R2: keeps the odd sequence before every field store; pairs with TABLE-A2 in
	 * ent_read_ok(). */
	fence_release();
}

static inline void ent_write_end(struct tbl_ent *e)
{
	uint32_t s = ld32(&e->seq);
	/* TABLE-R1: publishes the field stores with the next even sequence; pairs with TABLE-A1 in
	 * ent_read_begin(). */
	atomic_store_explicit(&e->seq, (s | 1u) + 1u, memory_order_release);
}

/* Rewrites an entry's state word under its seqlock (which also makes a sequence a dead
 * writer left odd even again). */
static inline void set_state(struct tbl_ent *e, uint32_t state)
{
	ent_write_begin(e);
	st32(&e->state, state);
	ent_write_end(e);
}

/* Marks a LIVE entry that was just unlinked ALLOC, without moving its sequence. Its key,
 * value and next are unchanged, so a reader that reached it through the link before the
 * unlink may finish on it: that read is linearized at its load of the link, when the entry
 * was still current. A reader that sees the new state restarts. Whoever reuses the entry
 * (fill, pool) rewrites it under the seqlock, which invalidates such readers from then on.
 * Relaxed: the state is one word that readers check but never rely on for ordering. */
static inline void retire(struct tbl_ent *e, uint32_t s)
{
	st32(&e->state, ST_MAKE(ST_ALLOC, s));
}

/* --- hashing ------------------------------------------------------------------------------ */

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ull;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dull;
	x ^= x >> 33;
	return x;
}

/* A fast keyed hash of a byte string: 8 bytes per step, finalized with a full mix. The seed
 * is random per table, so a peer cannot pick keys that collide without reading it. */
static inline uint64_t hash_bytes(uint64_t seed, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
	for (; n >= 8; n -= 8, s += 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = rotl64(h ^ (w * 0xa0761d6478bd642full), 29) * 0xe7037ed1a0b428dbull;
	}
	if (n) {
		uint64_t w = 0;
		memcpy(&w, s, n);
		h = rotl64(h ^ (w * 0xa0761d6478bd642full), 29) * 0xe7037ed1a0b428dbull;
	}
	return mix64(h);
}

static inline uint32_t link_get(const struct shmkit_table *t, struct link L)
{
	/* Relaxed: called under the stripe lock that guards every link of its buckets. */
	if (L.kind == LINK_BUCKET)
		return ld32(&t->buckets[L.at]);
	return ld32(&ent_at(t, L.at)->next);
}

/* What one change does, for the record in the stripe (see the top of src/table.c). */
struct undo {
	struct link L;
	uint32_t old, new_, retire, fresh, spare_before, spare_after;
};

static inline int check_key(const struct shmkit_table *t, const void *key, size_t klen)
{
	if (!t || (!key && klen))
		return -EINVAL;
	if (klen > t->key_max)
		return -EMSGSIZE;
	return 0;
}

/* --- across the table's files ------------------------------------------------------------ */

/* src/table_repair.c: locks, the pool, links, the undo record. */
int shmkit__table_pool_lock(struct shmkit_table *t);
void shmkit__table_pool_unlock(struct shmkit_table *t);
int64_t shmkit__table_pool_pop(struct shmkit_table *t, uint32_t s);
int shmkit__table_pool_push(struct shmkit_table *t, uint32_t ref);
void shmkit__table_link_set(struct shmkit_table *t, struct link L, uint32_t val);
void shmkit__table_undo_arm(struct tbl_stripe *st, const struct undo *u);
void shmkit__table_undo_commit(struct tbl_stripe *st);
int shmkit__table_stripe_recover(struct shmkit_table *t, uint32_t s);
int shmkit__table_stripe_lock(struct shmkit_table *t, uint32_t s);
void shmkit__table_stripe_unlock(struct shmkit_table *t, uint32_t s);

/* src/table_write.c: the chain walk under the stripe lock (the readers' fallback uses it). */
bool shmkit__table_hdr_sane(const struct shmkit_table *t, const struct hdr *h, uint32_t s,
			    uint64_t b);
int64_t shmkit__table_find_locked(struct shmkit_table *t, uint32_t s, uint64_t b, uint64_t hash,
				  const void *key, uint32_t klen, bool reclaim, uint64_t *now,
				  struct link *L, struct hdr *h);

#endif
