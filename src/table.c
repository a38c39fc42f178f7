/* shmkit — shared lookup table / cache (include/shmkit/table.h).
 *
 * A chained hash table with a fixed pool of entries, in one segment. Readers are lock-free
 * (a sequence counter per entry); writers lock one of `nstripes` robust mutexes (stripe =
 * bucket mod nstripes); a crashed writer's change is rolled back or forward, from a record
 * it left in its stripe, by the next process that takes that stripe's lock. Offsets are relative to the segment's data area
 * (128-byte aligned); "ref" means entry index + 1, with 0 for "none".
 *
 * Layout
 *
 *   offset           size              what
 *   0                128               control block, written once before publishing:
 *        0   8  magic "shmktbl1"        40   8  nbuckets (power of two >= capacity)
 *        8   4  layout version (2)      48   8  nentries = capacity + nstripes
 *       12   4  flags (CACHE)           56   4  default ttl_ms
 *       16   8  capacity                64   8  hash seed (random per table)
 *       24   4  key_max                 72  32  offsets of pool, stripes, buckets, entries
 *       28   4  value_max              104   8  bytes used (<= the segment's data size)
 *       32   4  nstripes               112   8  FNV-1a 64 over bytes [0, 112)
 *       36   4  entry_size             120   8  zero
 *   128              128               pool: robust mutex (64); free_head, free_count, bump
 *                                      (entries [bump, capacity) were never used), rebuilds
 *   256              256 x nstripes    stripes: robust mutex (64); spare, count, ttl_count,
 *                                      CLOCK hand, version counter, undo record (9 words);
 *                                      on the next line the event counters (puts, ...)
 *   off_buckets      4 x nbuckets      bucket heads (entry refs), written under the lock of
 *                                      stripe (bucket & (nstripes - 1))
 *   off_entries      entry_size x      entries, each 64-byte aligned:
 *                    nentries            0  4  seq      odd while being written
 *                                        4  4  state    FREE / ALLOC|stripe / LIVE|stripe
 *                                        8  4  next     chain (or free list) link
 *                                       12  4  klen     16  4  vlen
 *                                       20  4  ref      CLOCK bit (outside the seqlock)
 *                                       24  8  hash     bucket = hash & (nbuckets - 1)
 *                                       32  8  version  40  8  expires_ns (0 = never)
 *                                       48     key (key_max rounded up to 8), then value
 *
 * Every entry is in exactly one place: linked in a bucket of stripe s (LIVE|s), the spare
 * of stripe s (ALLOC|s), on the pool's free list (FREE), or never used (>= bump). Only the
 * holder of stripe s's lock creates, links, unlinks or fills entries marked |s; FREE <->
 * ALLOC changes only under the pool lock, always taken inside a stripe lock.
 *
 * Protocol
 *
 *   Readers hash the key, load the bucket head (acquire) and walk the chain. Each entry is
 *   read under its sequence counter: load seq (acquire; odd = retry), load the fields with
 *   relaxed atomics, acquire fence, re-load seq; a change means a writer interfered. An
 *   entry that is not LIVE or hashes to another bucket means the reader followed a link
 *   that was changed under it: it restarts from the head. A hit copies the value out and
 *   re-validates. After a bounded number of failed attempts (normally never reached) the
 *   reader trylocks the stripe: on success it reads under the lock; on EOWNERDEAD it
 *   repairs first; on EBUSY it keeps retrying for a bounded time and then returns -EAGAIN.
 *
 *   Writers never modify a linked entry's key or value. A replace fills the stripe's spare
 *   entry with the new key/value (copy-on-write), links it in place of the old entry with
 *   one store (the bucket head, or the predecessor's next under its seqlock), marks the
 *   old entry ALLOC without moving its sequence (its bytes do not change) and makes it the
 *   new spare. So a reader already inside the old entry finishes on the old value instead
 *   of retrying (linearized at its load of the link), until the old entry is rewritten by
 *   the stripe's next replace. An insert fills an entry from the pool (or, in cache mode when
 *   the pool is empty, a CLOCK victim of the same stripe) and links it at the bucket head.
 *   A delete links past the entry, marks it ALLOC and returns it to the pool.
 *
 *   Every change to linked state is preceded by a record in the stripe: the one link it
 *   changes with the link's old and new value, the entry it unlinks ("retire"), the entry
 *   it links ("fresh"), and the spare before and after; armed with a release store,
 *   cleared with a release store once the change is complete. The single link store is
 *   the commit point: readers cannot see a change before it and see all of it after.
 *   Versions come from a per-stripe counter advanced before each write, so a key's
 *   version strictly increases, even across a delete and re-insert or a crash.
 *
 * When a process dies
 *
 *   A writer killed holding stripe s: the robust mutex hands EOWNERDEAD to the next
 *   locker (writer, or reader in its fallback). If a record is armed, it looks at the
 *   link: still the old value, it rolls back (old link, retired entry LIVE, fresh entry
 *   ALLOC, spare before); already the new value, it rolls forward (retired entry ALLOC,
 *   fresh entry LIVE, spare after). Either way the key ends with its old or its new
 *   value, and it is the one readers could already see: nobody who read the new value
 *   ever reads the old one again. It then returns every other ALLOC|s entry (taken from
 *   the pool or unlinked, and not yet linked or returned) to the pool, recounts the
 *   stripe and calls shmkit_mutex_consistent(). Every entry the dead writer may have left
 *   with an odd sequence is rewritten (the link's owner, retire, fresh) or unreachable.
 *   A process killed holding the pool lock (always inside a stripe lock): the next pool
 *   locker rebuilds the free list from the entries' states (FREE entries below bump),
 *   which only pool-lock holders change. Readers hold no state: killing one costs nothing
 *   (one killed inside its locked fallback is a lock holder like any writer).
 *
 * Hostile peers: the control block is copied and validated once at open; every ref,
 * length and chain read later is checked against the private geometry, and every loop is
 * bounded (chains by nentries), so scribbled memory yields -EBADMSG or wrong data, never
 * an out-of-bounds access or a hang. That includes the locks: a shmkit mutex treats its
 * words as untrusted too (src/sync.c); a scribbled lock word is at worst a dead owner
 * (EOWNERDEAD: the stripe is repaired as after a crash), not recoverable (-ENOTRECOVERABLE,
 * until the table is recreated) or a live process that never unlocks (-ETIMEDOUT).
 */
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

void (*shmkit__table_fault_hook)(int point);

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
		/* Relaxed: ordered by the entry seqlock (A1/A2). */
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
		/* Relaxed: ordered by the entry seqlock (R1/R2). */
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
	/* A1: sees the fields of every write that ended at or before this sequence; pairs
	 * with R1 in ent_write_end(). */
	return atomic_load_explicit(&e->seq, memory_order_acquire);
}

static inline bool ent_read_ok(const struct tbl_ent *e, uint32_t seq)
{
	/* A2: keeps the field loads before the re-check; if any of them saw a store made
	 * after a writer's fence R2, the re-check sees that writer's odd sequence or later;
	 * pairs with R2 in ent_write_begin(). */
	fence_acquire();
	/* Relaxed: ordered after the field loads by A2. */
	return atomic_load_explicit(&e->seq, memory_order_relaxed) == seq;
}

static inline void ent_write_begin(struct tbl_ent *e)
{
	/* Relaxed: writers of an entry are serialized by its stripe (or the pool) lock. */
	uint32_t s = ld32(&e->seq);
	/* Odd already: a writer died mid-write; stay odd, this write repairs it. */
	if (!(s & 1u))
		st32(&e->seq, s + 1);
	/* R2: keeps the odd sequence before every field store; pairs with A2 in
	 * ent_read_ok(). */
	fence_release();
}

static inline void ent_write_end(struct tbl_ent *e)
{
	uint32_t s = ld32(&e->seq);
	/* R1: publishes the field stores with the next even sequence; pairs with A1 in
	 * ent_read_begin(). */
	atomic_store_explicit(&e->seq, (s | 1u) + 1u, memory_order_release);
}

/* Rewrites an entry's state word under its seqlock (which also makes a sequence a dead
 * writer left odd even again). */
static void set_state(struct tbl_ent *e, uint32_t state)
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
static void retire(struct tbl_ent *e, uint32_t s)
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
static uint64_t hash_bytes(uint64_t seed, const void *p, size_t n)
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

/* --- geometry ---------------------------------------------------------------------------- */

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static int geometry(uint64_t capacity, uint64_t key_max, uint64_t value_max, uint64_t nstripes,
		    struct geom *g)
{
	if (capacity < 1 || capacity > SHMKIT_TABLE_CAPACITY_MAX)
		return -EINVAL;
	if (key_max < 1 || key_max > SHMKIT_TABLE_KEY_MAX)
		return -EINVAL;
	if (value_max < 1 || value_max > SHMKIT_TABLE_VALUE_MAX)
		return -EINVAL;
	if (!is_pow2(nstripes) || nstripes > SHMKIT_TABLE_STRIPES_MAX || nstripes > capacity)
		return -EINVAL;
	uint64_t nb = 1;
	while (nb < capacity)
		nb <<= 1;
	g->capacity = capacity;
	g->nbuckets = nb;
	g->nstripes = (uint32_t)nstripes;
	g->nentries = capacity + nstripes;
	g->key_max = (uint32_t)key_max;
	g->value_max = (uint32_t)value_max;
	g->voff = (uint32_t)(ENT_HDR + round_up(key_max, 8));
	g->entry_size = (uint32_t)round_up(g->voff + round_up(value_max, 8), ENT_ALIGN);
	g->off_pool = POOL_OFF;
	g->off_stripes = STRIPES_OFF;
	g->off_buckets = STRIPES_OFF + nstripes * STRIPE_SIZE;
	g->off_entries = round_up(g->off_buckets + nb * 4, 128);
	/* No overflow: nentries < 2^31 and entry_size < 2^25. */
	g->size = g->off_entries + g->nentries * g->entry_size;
	if (g->size > ((uint64_t)1 << 46))
		return -EINVAL;
	return 0;
}

static uint32_t default_stripes(uint64_t capacity)
{
	uint32_t s = 64;
	while (s > 1 && (uint64_t)s * 16 > capacity)
		s >>= 1;
	return s;
}

static void handle_geometry(struct shmkit_table *t, const struct geom *g, uint32_t flags,
			    uint32_t ttl_ms, uint64_t seed)
{
	t->capacity = g->capacity;
	t->nbuckets = g->nbuckets;
	t->nentries = g->nentries;
	t->bmask = g->nbuckets - 1;
	t->seed = seed;
	t->key_max = g->key_max;
	t->value_max = g->value_max;
	t->nstripes = g->nstripes;
	t->smask = g->nstripes - 1;
	t->entry_size = g->entry_size;
	t->voff = g->voff;
	t->flags = flags;
	t->ttl_ms = ttl_ms;
	t->size = (size_t)g->size;
	t->pool = (struct tbl_pool *)(void *)(t->base + g->off_pool);
	t->stripes = t->base + g->off_stripes;
	t->buckets = (_Atomic uint32_t *)(void *)(t->base + g->off_buckets);
	t->entries = t->base + g->off_entries;
}

/* --- locks and repair --------------------------------------------------------------------- */

/* Locks a robust mutex, waiting up to LOCK_TIMEOUT_NS (no clock read when uncontended).
 * Returns 0, -EOWNERDEAD (held, needs repair), or an error. */
static int lock_timed(struct shmkit_mutex *m)
{
	return shmkit__mutex_lock_for(m, LOCK_TIMEOUT_NS);
}

static void pool_rebuild(struct shmkit_table *t);

static int pool_lock(struct shmkit_table *t)
{
	int r = lock_timed(&t->pool->lock);
	if (r == -EOWNERDEAD) {
		pool_rebuild(t);
		r = shmkit_mutex_consistent(&t->pool->lock);
		if (r) { /* as in stripe_recover() */
			(void)shmkit_mutex_unlock(&t->pool->lock);
			r = -EBADMSG;
		}
	}
	return r;
}

static void pool_unlock(struct shmkit_table *t)
{
	(void)shmkit_mutex_unlock(&t->pool->lock);
}

/* Rebuilds the free list from the entries' states (pool lock held). Only pool-lock holders
 * turn entries FREE or take them off FREE, so the states are exact here, whatever step a
 * dead pool-lock holder was at. */
static void pool_rebuild(struct shmkit_table *t)
{
	struct tbl_pool *p = t->pool;
	/* Relaxed: the pool lock orders every access to the pool block. */
	uint32_t bump = ld32(&p->bump);
	if (bump > t->capacity) {
		bump = (uint32_t)t->capacity;
		st32(&p->bump, bump);
	}
	uint32_t head = 0, n = 0;
	for (uint64_t ref = t->nentries; ref >= 1; ref--) {
		if (ref - 1 >= bump && ref - 1 < t->capacity)
			continue; /* never used: implicitly free */
		struct tbl_ent *e = ent_at(t, (uint32_t)ref);
		if (ld32(&e->state) != ST_FREE)
			continue;
		ent_write_begin(e);
		st32(&e->next, head);
		ent_write_end(e);
		head = (uint32_t)ref;
		n++;
	}
	st32(&p->free_head, head);
	st32(&p->free_count, n);
	bump64(&p->rebuilds);
}

/* Takes one entry out of the pool for stripe s (marking it ALLOC|s). Pool lock NOT held.
 * Returns its ref, -ENOSPC when the pool is empty, or an error. */
static int64_t pool_pop(struct shmkit_table *t, uint32_t s)
{
	struct tbl_pool *p = t->pool;
	int r = pool_lock(t);
	if (r)
		return r;
	int64_t out = -EBADMSG;
	for (int tries = 0; tries < 4; tries++) {
		/* Relaxed (all pool fields here): ordered by the pool lock. */
		uint32_t head = ld32(&p->free_head);
		if (head) {
			struct tbl_ent *e = ref_ok(t, head) ? ent_at(t, head) : NULL;
			uint32_t next = e ? ld32(&e->next) : 0;
			if (!e || ld32(&e->state) != ST_FREE || (next && !ref_ok(t, next))) {
				pool_rebuild(t); /* scribbled: start from the truth */
				continue;
			}
			set_state(e, ST_MAKE(ST_ALLOC, s));
			FAULT(SHMKIT__TF_POOL_MID);
			st32(&p->free_head, next);
			uint32_t fc = ld32(&p->free_count);
			st32(&p->free_count, fc ? fc - 1 : 0);
			out = head;
			break;
		}
		uint32_t bump = ld32(&p->bump);
		if (bump >= t->capacity) {
			out = -ENOSPC;
			break;
		}
		/* bump first: a crash between the two stores leaves a FREE entry below bump
		 * off the list, which the rebuild after that crash puts back. */
		st32(&p->bump, bump + 1);
		struct tbl_ent *e = ent_at(t, bump + 1);
		if (ld32(&e->state) != ST_FREE)
			continue; /* only a scribble does this; skip the entry */
		set_state(e, ST_MAKE(ST_ALLOC, s));
		FAULT(SHMKIT__TF_POOL_MID);
		out = bump + 1;
		break;
	}
	pool_unlock(t);
	return out;
}

/* Returns an ALLOC entry to the pool; pool lock held. */
static void pool_push_locked(struct shmkit_table *t, uint32_t ref)
{
	struct tbl_pool *p = t->pool;
	struct tbl_ent *e = ent_at(t, ref);
	ent_write_begin(e);
	st32(&e->state, ST_FREE);
	/* Relaxed (pool fields): ordered by the pool lock. */
	st32(&e->next, ld32(&p->free_head));
	ent_write_end(e);
	FAULT(SHMKIT__TF_POOL_MID);
	st32(&p->free_head, ref);
	st32(&p->free_count, ld32(&p->free_count) + 1);
}

static int pool_push(struct shmkit_table *t, uint32_t ref)
{
	int r = pool_lock(t);
	if (r)
		return r;
	pool_push_locked(t, ref);
	pool_unlock(t);
	return 0;
}

static inline uint32_t link_get(const struct shmkit_table *t, struct link L)
{
	/* Relaxed: called under the stripe lock that guards every link of its buckets. */
	if (L.kind == LINK_BUCKET)
		return ld32(&t->buckets[L.at]);
	return ld32(&ent_at(t, L.at)->next);
}

static void link_set(struct shmkit_table *t, struct link L, uint32_t val)
{
	if (L.kind == LINK_BUCKET) {
		/* R3: publishes the entry now linked (filled before this store); pairs with A3
		 * in find_opt() and A4 in collect_bucket(). */
		atomic_store_explicit(&t->buckets[L.at], val, memory_order_release);
		return;
	}
	/* A predecessor's next is part of its seqlocked fields: readers following it are
	 * ordered by the predecessor's R1/R2 (which also publish the new target). */
	struct tbl_ent *p = ent_at(t, L.at);
	ent_write_begin(p);
	FAULT(SHMKIT__TF_LINK_MID);
	st32(&p->next, val);
	ent_write_end(p);
}

/* What one change does, for the record in the stripe (see the top of the file). */
struct undo {
	struct link L;
	uint32_t old, new_, retire, fresh, spare_before, spare_after;
};

static void undo_arm(struct tbl_stripe *st, const struct undo *u)
{
	/* Relaxed: the release store of undo_state below orders them. */
	st32(&st->undo_link, u->L.kind);
	st32(&st->undo_at, u->L.at);
	st32(&st->undo_old, u->old);
	st32(&st->undo_new, u->new_);
	st32(&st->undo_retire, u->retire);
	st32(&st->undo_fresh, u->fresh);
	st32(&st->undo_spare_before, u->spare_before);
	st32(&st->undo_spare_after, u->spare_after);
	/* R4: the record is complete before it counts as armed, and armed before the change
	 * it undoes starts; pairs with A5 in stripe_repair(). */
	atomic_store_explicit(&st->undo_state, 1, memory_order_release);
}

static void undo_commit(struct tbl_stripe *st)
{
	/* R5: the change is complete before the record stops protecting it; pairs with A5 in
	 * stripe_repair(). */
	atomic_store_explicit(&st->undo_state, 0, memory_order_release);
}

/* Counts the LIVE entries (and those with a TTL) reachable from stripe s's buckets, and
 * stores the counts (stripe lock held). Stops at anything corrupt. */
static void stripe_recount(struct shmkit_table *t, uint32_t s)
{
	struct tbl_stripe *st = stripe_at(t, s);
	uint64_t live = 0, ttl = 0, steps = 0;
	for (uint64_t j = 0; j < buckets_per_stripe(t); j++) {
		uint32_t cur = ld32(&t->buckets[j * t->nstripes + s]);
		while (cur && ref_ok(t, cur) && steps++ < t->nentries) {
			struct tbl_ent *e = ent_at(t, cur);
			if (ld32(&e->state) != ST_MAKE(ST_LIVE, s))
				break;
			live++;
			ttl += ld64(&e->expires) != 0;
			cur = ld32(&e->next);
		}
	}
	st32(&st->count, (uint32_t)live);
	st32(&st->ttl_count, (uint32_t)ttl);
}

/* Finishes or undoes the change an armed record describes (stripe lock held): forward
 * when its link already holds the new value (readers may have seen the change), back
 * otherwise. Both directions rewrite the link and the two entries' states, which also
 * makes any sequence the dead writer left odd even again. */
static void undo_apply(struct shmkit_table *t, uint32_t s, struct tbl_stripe *st)
{
	/* Relaxed: ordered by A5 in stripe_repair(). Every value is checked before use. */
	struct link L = {ld32(&st->undo_link), ld32(&st->undo_at)};
	uint32_t old = ld32(&st->undo_old), new_ = ld32(&st->undo_new);
	uint32_t retire = ld32(&st->undo_retire), fresh = ld32(&st->undo_fresh);
	uint32_t spare_before = ld32(&st->undo_spare_before);
	uint32_t spare_after = ld32(&st->undo_spare_after);
	bool link_ok = (L.kind == LINK_BUCKET && L.at < t->nbuckets && stripe_of(t, L.at) == s) ||
		       (L.kind == LINK_NEXT && ref_ok(t, L.at));
	bool forward = false;
	if (link_ok) {
		forward = new_ != old && link_get(t, L) == new_;
		uint32_t final = forward ? new_ : old;
		if (final == 0 || ref_ok(t, final))
			link_set(t, L, final);
	}
	if (ref_ok(t, retire))
		set_state(ent_at(t, retire), ST_MAKE(forward ? ST_ALLOC : ST_LIVE, s));
	if (ref_ok(t, fresh) && fresh != retire)
		set_state(ent_at(t, fresh), ST_MAKE(forward ? ST_LIVE : ST_ALLOC, s));
	uint32_t spare = forward ? spare_after : spare_before;
	if (ref_ok(t, spare))
		st32(&st->spare, spare);
}

/* Repairs stripe s after its lock came back EOWNERDEAD (lock held): settles an armed
 * record, hands orphaned entries back to the pool, recounts. Idempotent, so a repairer
 * that dies too is simply repaired again by the next one. */
static void stripe_repair(struct shmkit_table *t, uint32_t s)
{
	struct tbl_stripe *st = stripe_at(t, s);
	/* A5: sees the complete record and the changes made before its arming; pairs with
	 * R4 in undo_arm() and R5 in undo_commit(). */
	if (atomic_load_explicit(&st->undo_state, memory_order_acquire) != 0) {
		undo_apply(t, s, st);
		undo_commit(st);
	}
	/* Every ALLOC|s entry but the spare is an orphan: taken from the pool or unlinked by
	 * the dead writer and not yet linked or returned. */
	uint32_t spare = ld32(&st->spare);
	bool spare_ok = ref_ok(t, spare) &&
			ld32(&ent_at(t, spare)->state) == ST_MAKE(ST_ALLOC, s);
	bool pooled = false;
	for (uint64_t ref = 1; ref <= t->nentries; ref++) {
		if (ref == spare || ld32(&ent_at(t, (uint32_t)ref)->state) != ST_MAKE(ST_ALLOC, s))
			continue;
		if (!spare_ok) {
			spare = (uint32_t)ref;
			spare_ok = true;
			st32(&st->spare, spare);
			continue;
		}
		if (!pooled) {
			if (pool_lock(t) != 0)
				break; /* the orphans stay; the next repair retries */
			pooled = true;
		}
		pool_push_locked(t, (uint32_t)ref);
	}
	if (pooled)
		pool_unlock(t);
	if (!spare_ok) {
		int64_t r = pool_pop(t, s);
		if (r > 0)
			st32(&st->spare, (uint32_t)r);
	}
	stripe_recount(t, s);
	bump64(&st->repairs);
}

/* Repairs stripe s after EOWNERDEAD and marks its mutex consistent. Returns 0 with the
 * lock held, or -EBADMSG with it released: consistent fails for the owner of an owner-dead
 * mutex only when a peer rewrote the lock word meanwhile (corrupt shared memory; holding
 * the lock forever would be worse). */
static int stripe_recover(struct shmkit_table *t, uint32_t s)
{
	stripe_repair(t, s);
	int r = shmkit_mutex_consistent(&stripe_at(t, s)->lock);
	if (r) {
		(void)shmkit_mutex_unlock(&stripe_at(t, s)->lock);
		r = -EBADMSG;
	}
	return r;
}

static int stripe_lock(struct shmkit_table *t, uint32_t s)
{
	int r = lock_timed(&stripe_at(t, s)->lock);
	if (r == -EOWNERDEAD)
		r = stripe_recover(t, s);
	return r;
}

static void stripe_unlock(struct shmkit_table *t, uint32_t s)
{
	(void)shmkit_mutex_unlock(&stripe_at(t, s)->lock);
}

/* --- writer operations (stripe lock held) -------------------------------------------------- */

static void fill_entry(struct shmkit_table *t, struct tbl_ent *e, uint32_t state, uint32_t next,
		       const struct newval *nv)
{
	ent_write_begin(e);
	st32(&e->state, state);
	st32(&e->next, next);
	st32(&e->klen, nv->klen);
	st32(&e->vlen, nv->vlen);
	st64(&e->hash, nv->hash);
	st64(&e->version, nv->version);
	st64(&e->expires, nv->expires);
	shm_store(ent_key(e), nv->key, nv->klen);
	FAULT(SHMKIT__TF_FILL_MID);
	shm_store(ent_val(t, e), nv->val, nv->vlen);
	ent_write_end(e);
}

static bool hdr_sane(const struct shmkit_table *t, const struct hdr *h, uint32_t s, uint64_t b)
{
	return h->state == ST_MAKE(ST_LIVE, s) && (h->hash & t->bmask) == b &&
	       h->klen <= t->key_max && h->vlen <= t->value_max &&
	       (h->next == 0 || ref_ok(t, h->next));
}

/* Unlinks LIVE entry `ref` (pointed at by L, header h) and marks it ALLOC|s; the caller
 * returns it to the pool or reuses it. */
static void unlink_entry(struct shmkit_table *t, uint32_t s, struct link L, uint32_t ref,
			 const struct hdr *h)
{
	struct tbl_stripe *st = stripe_at(t, s);
	undo_arm(st, &(struct undo){L, ref, h->next, ref, 0, 0, 0});
	FAULT(SHMKIT__TF_ARMED);
	link_set(t, L, h->next);
	FAULT(SHMKIT__TF_LINKED);
	retire(ent_at(t, ref), s);
	FAULT(SHMKIT__TF_UNLINKED);
	/* Relaxed (counts): only the stripe-lock holder writes them. */
	uint32_t c = ld32(&st->count);
	st32(&st->count, c ? c - 1 : 0);
	if (h->expires) {
		uint32_t tc = ld32(&st->ttl_count);
		st32(&st->ttl_count, tc ? tc - 1 : 0);
	}
	undo_commit(st);
	FAULT(SHMKIT__TF_COMMITTED);
}

/* Unlinks an expired entry and returns it to the pool. */
static int reclaim_entry(struct shmkit_table *t, uint32_t s, struct link L, uint32_t ref,
			 const struct hdr *h)
{
	unlink_entry(t, s, L, ref, h);
	bump64(&stripe_at(t, s)->expirations);
	return pool_push(t, ref);
}

/* Looks `key` up in bucket b under stripe s's lock. Returns the entry's ref (with *L the
 * link pointing at it and *h its header), 0 when absent, or a negative errno. With
 * `reclaim`, expired entries met on the way (the key's own included) are unlinked and
 * returned to the pool; without, an expired key reads as absent. */
static int64_t find_locked(struct shmkit_table *t, uint32_t s, uint64_t b, uint64_t hash,
			   const void *key, uint32_t klen, bool reclaim, uint64_t *now,
			   struct link *L, struct hdr *h)
{
	*L = (struct link){LINK_BUCKET, (uint32_t)b};
	uint32_t cur = link_get(t, *L);
	for (uint64_t steps = 0; cur; steps++) {
		if (!ref_ok(t, cur) || steps > t->nentries)
			return -EBADMSG;
		struct tbl_ent *e = ent_at(t, cur);
		hdr_load(e, h);
		if (!hdr_sane(t, h, s, b))
			return -EBADMSG;
		bool mine = h->hash == hash && h->klen == klen && shm_eq(ent_key(e), key, klen);
		if (expired(h, now)) {
			if (reclaim) {
				int r = reclaim_entry(t, s, *L, cur, h);
				if (r)
					return r;
				cur = link_get(t, *L);
				continue;
			}
			if (mine)
				return 0;
		} else if (mine) {
			return cur;
		}
		*L = (struct link){LINK_NEXT, cur};
		cur = h->next;
	}
	return 0;
}

/* Replaces LIVE entry `ref` (at link L, header h) with a new copy written into the
 * stripe's spare; the old entry becomes the spare. */
static int replace_entry(struct shmkit_table *t, uint32_t s, struct link L, uint32_t ref,
			 const struct hdr *h, const struct newval *nv)
{
	struct tbl_stripe *st = stripe_at(t, s);
	uint32_t sp = ld32(&st->spare);
	if (!ref_ok(t, sp) || sp == ref || ld32(&ent_at(t, sp)->state) != ST_MAKE(ST_ALLOC, s))
		return -EBADMSG;
	struct tbl_ent *se = ent_at(t, sp), *old = ent_at(t, ref);
	undo_arm(st, &(struct undo){L, ref, sp, ref, sp, sp, ref});
	FAULT(SHMKIT__TF_ARMED);
	fill_entry(t, se, ST_MAKE(ST_LIVE, s), h->next, nv);
	/* Relaxed: the CLOCK bit is a hint (see touch()); the copy inherits it. */
	st32(&se->ref, ld32(&old->ref));
	FAULT(SHMKIT__TF_FILLED);
	link_set(t, L, sp);
	FAULT(SHMKIT__TF_LINKED);
	retire(old, s);
	st32(&st->spare, ref);
	FAULT(SHMKIT__TF_UNLINKED);
	if ((h->expires != 0) != (nv->expires != 0)) {
		uint32_t tc = ld32(&st->ttl_count);
		st32(&st->ttl_count, nv->expires ? tc + 1 : (tc ? tc - 1 : 0));
	}
	undo_commit(st);
	FAULT(SHMKIT__TF_COMMITTED);
	return 0;
}

/* Links ALLOC|s entry `ref`, filled with nv, at the head of bucket b. */
static int insert_entry(struct shmkit_table *t, uint32_t s, uint64_t b, uint32_t ref,
			const struct newval *nv)
{
	struct tbl_stripe *st = stripe_at(t, s);
	struct link L = {LINK_BUCKET, (uint32_t)b};
	uint32_t head = link_get(t, L);
	if (head && !ref_ok(t, head))
		return -EBADMSG;
	struct tbl_ent *e = ent_at(t, ref);
	undo_arm(st, &(struct undo){L, head, ref, 0, ref, 0, 0});
	FAULT(SHMKIT__TF_ARMED);
	fill_entry(t, e, ST_MAKE(ST_LIVE, s), head, nv);
	/* Relaxed: the CLOCK bit is a hint; a new entry starts unreferenced. */
	st32(&e->ref, 0);
	FAULT(SHMKIT__TF_FILLED);
	link_set(t, L, ref);
	FAULT(SHMKIT__TF_LINKED);
	st32(&st->count, ld32(&st->count) + 1);
	if (nv->expires)
		st32(&st->ttl_count, ld32(&st->ttl_count) + 1);
	undo_commit(st);
	FAULT(SHMKIT__TF_COMMITTED);
	return 0;
}

/* Finds a victim in stripe s and unlinks it (left ALLOC|s, for reuse): an expired entry, or
 * with `evict` any entry whose CLOCK bit is clear (bits met on the way are cleared). The
 * hand sweeps the stripe's buckets; two full sweeps find a victim if the stripe has any
 * entry. Returns its ref, 0 when there is none, or a negative errno. */
static int64_t find_victim(struct shmkit_table *t, uint32_t s, bool evict, uint64_t *now)
{
	struct tbl_stripe *st = stripe_at(t, s);
	uint64_t bps = buckets_per_stripe(t);
	/* Relaxed: stripe fields are ordered by the stripe lock. */
	uint64_t hand = ld32(&st->hand) % bps;
	uint64_t steps = 0;
	/* Expired entries need one sweep; CLOCK needs two (the first may only clear bits). */
	uint64_t sweep = evict ? 2 * bps + 1 : bps;
	if (!evict && ld32(&st->ttl_count) == 0)
		return 0;
	for (uint64_t i = 0; i < sweep; i++, hand = (hand + 1) % bps) {
		uint64_t b = hand * t->nstripes + s;
		struct link L = {LINK_BUCKET, (uint32_t)b};
		uint32_t cur = link_get(t, L);
		while (cur) {
			if (!ref_ok(t, cur) || steps++ > 2 * t->nentries)
				return -EBADMSG;
			struct tbl_ent *e = ent_at(t, cur);
			struct hdr h;
			hdr_load(e, &h);
			if (!hdr_sane(t, &h, s, b))
				return -EBADMSG;
			bool dead = expired(&h, now);
			if (dead || (evict && ld32(&e->ref) == 0)) {
				unlink_entry(t, s, L, cur, &h);
				bump64(dead ? &st->expirations : &st->evictions);
				st32(&st->hand, (uint32_t)((hand + 1) % bps));
				return cur;
			}
			if (evict && ld32(&e->ref) != 0)
				/* Relaxed: a hint (see touch()). */
				st32(&e->ref, 0);
			L = (struct link){LINK_NEXT, cur};
			cur = h.next;
		}
	}
	st32(&st->hand, (uint32_t)hand);
	return 0;
}

/* An entry for a new key in stripe s: from the pool, else (cache mode) a CLOCK victim,
 * else an expired entry of the stripe. Returns its ref or a negative errno (-ENOSPC). */
static int64_t obtain_entry(struct shmkit_table *t, uint32_t s, uint64_t *now)
{
	int64_t r = pool_pop(t, s);
	if (r != -ENOSPC)
		return r;
	struct tbl_stripe *st = stripe_at(t, s);
	bool cache = t->flags & SHMKIT_TABLE_CACHE;
	if (!cache && ld32(&st->ttl_count) == 0)
		return -ENOSPC;
	r = find_victim(t, s, cache, now);
	if (r == 0)
		return -ENOSPC;
	if (r > 0)
		FAULT(SHMKIT__TF_EVICTED);
	return r;
}

/* --- handles --------------------------------------------------------------------------------- */

static int check_key(const struct shmkit_table *t, const void *key, size_t klen)
{
	if (!t || (!key && klen))
		return -EINVAL;
	if (klen > t->key_max)
		return -EMSGSIZE;
	return 0;
}

static uint64_t random_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
		seed = shmkit_now_ns() ^ ((uint64_t)getpid() << 32);
	return seed;
}

static struct shmkit_table *handle_alloc(struct shmkit_segment *seg, bool rdonly)
{
	struct shmkit_table *t = aligned_alloc(_Alignof(struct shmkit_table),
					       round_up(sizeof *t, _Alignof(struct shmkit_table)));
	if (!t)
		return NULL;
	memset(t, 0, sizeof *t);
	t->seg = seg;
	t->base = shmkit_segment_data(seg);
	t->seg_size = shmkit_segment_size(seg);
	t->rdonly = rdonly;
	return t;
}

SHMKIT__SYMVER_DEFAULT(shmkit__table_create, shmkit_table_create, SHMKIT_0.2);
int shmkit__table_create(const char *name, const struct shmkit_table_opts *opts,
			 struct shmkit_table **tp)
{
	static const struct shmkit_table_opts defaults;
	if (!tp)
		return -EINVAL;
	*tp = NULL;
	if (!opts)
		opts = &defaults;
	if (opts->reserved0 || shmkit__opts_check(opts->flags, SHMKIT_TABLE_CACHE, opts->reserved, 4))
		return -EINVAL;
	uint64_t capacity = opts->capacity ? opts->capacity : 1024;
	struct geom g;
	int err = geometry(capacity, opts->key_max ? opts->key_max : 64,
			   opts->value_max ? opts->value_max : 256,
			   opts->stripes ? opts->stripes : default_stripes(capacity), &g);
	if (err)
		return err;

	struct shmkit_segment *seg;
	err = shmkit__object_create(name, SHMKIT_KIND_TABLE, g.size, &opts->seg, &seg);
	if (err)
		return err;
	struct shmkit_table *t = handle_alloc(seg, false);
	if (!t)
		return shmkit__segment_abandon(seg, true, -ENOMEM);
	uint64_t seed = random_seed();
	handle_geometry(t, &g, opts->flags, opts->ttl_ms, seed);

	/* The segment is fresh and zero-filled: buckets are empty, entries FREE with
	 * sequence 0, the pool's bump at 0. Nobody can open it before the publish below, so
	 * plain stores suffice until then. */
	struct tbl_ctl c;
	memset(&c, 0, sizeof c);
	memcpy(c.magic, tbl_magic, sizeof c.magic);
	c.version = TBL_LAYOUT;
	c.flags = opts->flags;
	c.capacity = g.capacity;
	c.key_max = g.key_max;
	c.value_max = g.value_max;
	c.nstripes = g.nstripes;
	c.entry_size = g.entry_size;
	c.nbuckets = g.nbuckets;
	c.nentries = g.nentries;
	c.ttl_ms = opts->ttl_ms;
	c.seed = seed;
	c.off_pool = g.off_pool;
	c.off_stripes = g.off_stripes;
	c.off_buckets = g.off_buckets;
	c.off_entries = g.off_entries;
	c.size = g.size;
	c.checksum = shmkit__fnv1a64(&c, CTL_SUMMED);
	memcpy(t->base, &c, sizeof c);

	err = shmkit_mutex_init(&t->pool->lock);
	for (uint32_t s = 0; !err && s < g.nstripes; s++) {
		struct tbl_stripe *st = stripe_at(t, s);
		err = shmkit_mutex_init(&st->lock);
		/* The spares live past the pool's range at first; they rotate later. */
		uint32_t spare = (uint32_t)(g.capacity + s + 1);
		st32(&st->spare, spare);
		st32(&ent_at(t, spare)->state, ST_MAKE(ST_ALLOC, s));
	}
	if (!err)
		err = shmkit_segment_publish(seg);
	if (err) {
		(void)shmkit_segment_unlink(seg);
		shmkit_table_close(t);
		return err;
	}
	*tp = t;
	return 0;
}

/* Validates the control block of a mapped table segment and fills the handle. */
static int attach(struct shmkit_segment *seg, bool rdonly, struct shmkit_table **tp)
{
	if (shmkit_segment_kind(seg) != SHMKIT_KIND_TABLE)
		return -EMEDIUMTYPE;
	size_t size = shmkit_segment_size(seg);
	if (size < CTL_SIZE)
		return -EBADMSG;
	struct tbl_ctl c;
	/* One copy, with atomic loads (a hostile peer may be writing it); only the copy is
	 * checked and used. */
	shm_load(&c, shmkit_segment_data(seg), sizeof c);
	if (memcmp(c.magic, tbl_magic, sizeof c.magic) != 0)
		return -EBADMSG;
	if (c.checksum != shmkit__fnv1a64(&c, CTL_SUMMED))
		return -EBADMSG;
	if (c.version != TBL_LAYOUT || (c.flags & ~SHMKIT_TABLE_CACHE))
		return -EPROTO;
	struct geom g;
	if (geometry(c.capacity, c.key_max, c.value_max, c.nstripes, &g) != 0)
		return -EBADMSG;
	if (c.entry_size != g.entry_size || c.nbuckets != g.nbuckets || c.nentries != g.nentries ||
	    c.off_pool != g.off_pool || c.off_stripes != g.off_stripes ||
	    c.off_buckets != g.off_buckets || c.off_entries != g.off_entries || c.size != g.size ||
	    g.size > size)
		return -EBADMSG;
	struct shmkit_table *t = handle_alloc(seg, rdonly);
	if (!t)
		return -ENOMEM;
	handle_geometry(t, &g, c.flags, c.ttl_ms, c.seed);
	*tp = t;
	return 0;
}

/* What shmkit_table_open() and shmkit_table_open_fd() share. Open uses only opts->seg;
 * as in every kind, the creation fields are ignored there, unknown flag bits and reserved
 * words are not. */
static int table_open(const struct shmkit__seg_src *src, const struct shmkit_table_opts *opts,
		      struct shmkit_table **tp)
{
	if (!tp)
		return -EINVAL;
	*tp = NULL;
	if (opts && (opts->reserved0 ||
		     shmkit__opts_check(opts->flags, SHMKIT_TABLE_CACHE, opts->reserved, 4)))
		return -EINVAL;
	const struct shmkit_segment_opts *so = opts ? &opts->seg : NULL;
	struct shmkit_segment *seg;
	int err = shmkit__object_open(src, SHMKIT_KIND_TABLE, 0, so, &seg);
	if (err)
		return err;
	err = attach(seg, shmkit__opts_rdonly(so), tp);
	return err ? shmkit__segment_abandon(seg, false, err) : 0;
}

SHMKIT__SYMVER_DEFAULT(shmkit__table_open, shmkit_table_open, SHMKIT_0.2);
int shmkit__table_open(const char *name, const struct shmkit_table_opts *opts,
		       struct shmkit_table **tp)
{
	return table_open(&(struct shmkit__seg_src){.name = name}, opts, tp);
}

SHMKIT__SYMVER_DEFAULT(shmkit__table_open_fd, shmkit_table_open_fd, SHMKIT_0.2);
int shmkit__table_open_fd(int fd, const struct shmkit_table_opts *opts, struct shmkit_table **tp)
{
	return table_open(&(struct shmkit__seg_src){.fd = fd, .by_fd = true}, opts, tp);
}

int shmkit_table_unlink(struct shmkit_table *t)
{
	return shmkit__object_unlink(t ? t->seg : NULL);
}

int shmkit_table_close(struct shmkit_table *t)
{
	if (!t)
		return 0;
	shmkit_segment_close(t->seg);
	free(t);
	return 0;
}

struct shmkit_segment *shmkit_table_segment(const struct shmkit_table *t)
{
	return t ? t->seg : NULL;
}

/* --- reads ------------------------------------------------------------------------------------ */

enum { OPT_MISS = 0, OPT_FOUND = 1, OPT_RETRY = 2 };

struct snap {
	struct tbl_ent *e;
	uint32_t ref, seq;
	struct hdr h;
};

/* One optimistic walk of bucket b for the key. OPT_FOUND leaves the entry's snapshot in
 * *sn (header validated with the seqlock only once the caller re-checks it). */
static int find_opt(const struct shmkit_table *t, uint64_t b, uint64_t hash, const void *key,
		    uint32_t klen, struct snap *sn)
{
	/* A3: sees the entry linked by the head store; pairs with R3 in link_set(). */
	uint32_t cur = atomic_load_explicit(&t->buckets[b], memory_order_acquire);
	for (uint64_t steps = 0; cur; steps++) {
		/* Writers only ever store valid refs, so an invalid one is corruption, not a
		 * torn read (links are single 32-bit words). */
		if (!ref_ok(t, cur))
			return -EBADMSG;
		if (steps > t->nentries)
			return OPT_RETRY; /* a cycle: entries reused under us, or corruption
					   * (the locked fallback tells them apart) */
		struct tbl_ent *e = ent_at(t, cur);
		uint32_t seq = ent_read_begin(e);
		if (seq & 1u)
			return OPT_RETRY;
		hdr_load(e, &sn->h);
		if (ST_KIND(sn->h.state) != ST_LIVE || (sn->h.hash & t->bmask) != b)
			return OPT_RETRY; /* the link we followed changed under us */
		if (sn->h.hash == hash && sn->h.klen == klen && shm_eq(ent_key(e), key, klen)) {
			sn->e = e;
			sn->ref = cur;
			sn->seq = seq;
			return OPT_FOUND;
		}
		uint32_t next = sn->h.next;
		if (!ent_read_ok(e, seq))
			return OPT_RETRY;
		cur = next;
	}
	return OPT_MISS;
}

/* Sets the entry's CLOCK bit (cache mode): a relaxed store, and only when clear, so a hot
 * entry's line is not written on every read. The bit is a hint that orders nothing: a lost
 * or late update costs at worst one eviction decision, never correctness. */
static inline void touch(const struct shmkit_table *t, struct tbl_ent *e)
{
	if ((t->flags & SHMKIT_TABLE_CACHE) && !t->rdonly && ld32(&e->ref) == 0)
		st32(&e->ref, 1);
}

struct read_out {
	void *buf;
	size_t cap;
	uint64_t version;
	struct shmkit_table_view *view;
};

/* The read under the stripe lock, for the fallback: no writer can change the stripe now. */
static int read_locked(struct shmkit_table *t, uint32_t s, uint64_t b, uint64_t hash,
		       const void *key, uint32_t klen, struct read_out *o)
{
	uint64_t now = 0;
	struct link L;
	struct hdr h;
	int64_t ref = find_locked(t, s, b, hash, key, klen, false, &now, &L, &h);
	if (ref <= 0)
		return ref == 0 ? -ENOENT : (int)ref;
	struct tbl_ent *e = ent_at(t, (uint32_t)ref);
	o->version = h.version;
	if (o->view) {
		struct shmkit_table_view *v = o->view;
		v->item = (struct shmkit_table_item){ent_key(e), h.klen, ent_val(t, e), h.vlen,
						     h.version, h.expires};
		v->private_[0] = (uint32_t)ref;
		/* Relaxed: stable while we hold the lock; read_end re-checks it. */
		v->private_[1] = ld32(&e->seq);
		return 0;
	}
	if (h.vlen > o->cap)
		return -ENOBUFS;
	shm_load(o->buf, ent_val(t, e), h.vlen);
	touch(t, e);
	return (int)h.vlen;
}

/* The fallback after READ_TRIES failed optimistic attempts: try the stripe lock. Returns
 * the read's result, or 1 - when a live writer holds the lock - to go on retrying. */
static int read_fallback(struct shmkit_table *t, uint32_t s, uint64_t b, uint64_t hash,
			 const void *key, uint32_t klen, struct read_out *o)
{
	if (t->rdonly)
		return 1; /* cannot lock or repair through a read-only mapping */
	struct shmkit_mutex *m = &stripe_at(t, s)->lock;
	int r = shmkit_mutex_trylock(m);
	if (r == -EBUSY)
		return 1;
	if (r == -EOWNERDEAD)
		r = stripe_recover(t, s);
	if (r)
		return r;
	r = read_locked(t, s, b, hash, key, klen, o);
	(void)shmkit_mutex_unlock(m);
	return r;
}

static int read_impl(struct shmkit_table *t, const void *key, size_t klen, struct read_out *o)
{
	int err = check_key(t, key, klen);
	if (err)
		return err;
	cnt_inc(&t->gets);
	uint64_t hash = hash_bytes(t->seed, key, klen);
	uint64_t b = hash & t->bmask;
	uint64_t since = 0;
	int r;
	for (unsigned attempt = 0;; attempt++) {
		if (attempt >= READ_TRIES) {
			r = read_fallback(t, stripe_of(t, b), b, hash, key, (uint32_t)klen, o);
			if (r != 1)
				break;
			uint64_t now = shmkit_now_ns();
			if (since == 0)
				since = now;
			else if (now - since > READ_BUDGET_NS) {
				r = -EAGAIN;
				break;
			}
			attempt = READ_TRIES / 2; /* another round of optimistic tries */
		}
		struct snap sn;
		r = find_opt(t, b, hash, key, (uint32_t)klen, &sn);
		if (r == OPT_MISS) {
			r = -ENOENT;
			break;
		}
		if (r < 0)
			break;
		if (r == OPT_FOUND) {
			uint64_t now = 0;
			if (sn.h.vlen > t->value_max) {
				if (!ent_read_ok(sn.e, sn.seq))
					goto retry;
				r = -EBADMSG;
				break;
			}
			if (expired(&sn.h, &now)) {
				if (!ent_read_ok(sn.e, sn.seq))
					goto retry;
				r = -ENOENT;
				break;
			}
			if (o->view) {
				o->view->item = (struct shmkit_table_item){
					ent_key(sn.e), sn.h.klen, ent_val(t, sn.e), sn.h.vlen,
					sn.h.version, sn.h.expires};
				o->view->private_[0] = sn.ref;
				o->view->private_[1] = sn.seq;
				o->version = sn.h.version;
				touch(t, sn.e);
				r = 0;
				break;
			}
			if (sn.h.vlen > o->cap) {
				if (!ent_read_ok(sn.e, sn.seq))
					goto retry;
				r = -ENOBUFS;
				break;
			}
			shm_load(o->buf, ent_val(t, sn.e), sn.h.vlen);
			if (ent_read_ok(sn.e, sn.seq)) {
				o->version = sn.h.version;
				touch(t, sn.e);
				r = (int)sn.h.vlen;
				break;
			}
		}
	retry:
		cnt_inc(&t->retries);
		shmkit__cpu_relax();
	}
	if (r >= 0)
		cnt_inc(&t->hits);
	else if (r == -ENOENT)
		cnt_inc(&t->misses);
	return r;
}

int shmkit_table_get(struct shmkit_table *t, const void *key, size_t klen, void *buf, size_t cap)
{
	if (!buf && cap)
		return -EINVAL;
	struct read_out o = {buf, cap, 0, NULL};
	return read_impl(t, key, klen, &o);
}

int shmkit_table_get_versioned(struct shmkit_table *t, const void *key, size_t klen, void *buf,
			       size_t cap, uint64_t *version)
{
	if (!buf && cap)
		return -EINVAL;
	struct read_out o = {buf, cap, 0, NULL};
	int r = read_impl(t, key, klen, &o);
	if (r >= 0 && version)
		*version = o.version;
	return r;
}

int shmkit_table_read_begin(struct shmkit_table *t, const void *key, size_t klen,
			    struct shmkit_table_view *view)
{
	if (!view)
		return -EINVAL;
	memset(view, 0, sizeof *view);
	struct read_out o = {NULL, 0, 0, view};
	return read_impl(t, key, klen, &o);
}

int shmkit_table_read_end(struct shmkit_table *t, const struct shmkit_table_view *view)
{
	if (!t || !view)
		return -EINVAL;
	uint32_t ref = view->private_[0], seq = view->private_[1];
	if (!ref_ok(t, ref) || (seq & 1u))
		return -EAGAIN;
	return ent_read_ok(ent_at(t, ref), seq) ? 0 : -EAGAIN;
}

int shmkit_table_count(const struct shmkit_table *t)
{
	if (!t)
		return -EINVAL;
	uint64_t n = 0;
	for (uint32_t s = 0; s < t->nstripes; s++) {
		/* Relaxed: a snapshot. Clamped, so a scribbled count cannot overflow the sum. */
		uint64_t c = ld32(&stripe_at(t, s)->count);
		n += c > t->capacity ? t->capacity : c;
	}
	return (int)(n > t->capacity ? t->capacity : n);
}

int shmkit_table_stats(const struct shmkit_table *t, struct shmkit_table_stats *out)
{
	if (!t || !out)
		return -EINVAL;
	memset(out, 0, sizeof *out);
	out->capacity = t->capacity;
	out->entries = (uint64_t)shmkit_table_count(t);
	out->key_max = t->key_max;
	out->value_max = t->value_max;
	out->flags = t->flags;
	out->ttl_ms = t->ttl_ms;
	out->stripes = t->nstripes;
	out->segment_size = t->seg_size;
	for (uint32_t s = 0; s < t->nstripes; s++) {
		const struct tbl_stripe *st = stripe_at(t, s);
		/* Relaxed: statistics snapshots. */
		out->puts += ld64(&st->puts);
		out->inserts += ld64(&st->inserts);
		out->dels += ld64(&st->dels);
		out->cas_failures += ld64(&st->cas_failures);
		out->evictions += ld64(&st->evictions);
		out->expirations += ld64(&st->expirations);
		out->repairs += ld64(&st->repairs);
	}
	out->gets = ld64(&t->gets);
	out->hits = ld64(&t->hits);
	out->misses = ld64(&t->misses);
	out->read_retries = ld64(&t->retries);
	return 0;
}

/* --- iteration ---------------------------------------------------------------------------- */

struct scratch {
	struct shmkit_table_item *items;
	uint32_t *refs, *seqs;
	unsigned char *bytes; /* key_max + value_max per item */
	size_t cap, n;
	size_t stride;
};

static int scratch_reserve(struct scratch *sc, size_t n)
{
	if (n <= sc->cap)
		return 0;
	size_t cap = sc->cap ? sc->cap * 2 : 8;
	while (cap < n)
		cap *= 2;
	struct shmkit_table_item *items = realloc(sc->items, cap * sizeof *items);
	if (items)
		sc->items = items;
	uint32_t *refs = realloc(sc->refs, cap * sizeof *refs);
	if (refs)
		sc->refs = refs;
	uint32_t *seqs = realloc(sc->seqs, cap * sizeof *seqs);
	if (seqs)
		sc->seqs = seqs;
	unsigned char *bytes = realloc(sc->bytes, cap * sc->stride);
	if (bytes)
		sc->bytes = bytes;
	if (!items || !refs || !seqs || !bytes)
		return -ENOMEM;
	sc->cap = cap;
	return 0;
}

/* Copies the chain of bucket b into sc as one consistent snapshot: every entry read under
 * its seqlock, then the head and every sequence re-checked unchanged. Returns 0, 1 (try
 * again), or a negative errno. */
static int collect_bucket(const struct shmkit_table *t, uint64_t b, struct scratch *sc)
{
	sc->n = 0;
	/* A4: as A3 in find_opt(); pairs with R3 in link_set(). */
	uint32_t head = atomic_load_explicit(&t->buckets[b], memory_order_acquire);
	uint32_t cur = head;
	while (cur) {
		if (!ref_ok(t, cur))
			return -EBADMSG;
		if (sc->n >= t->nentries)
			return 1;
		int err = scratch_reserve(sc, sc->n + 1);
		if (err)
			return err;
		struct tbl_ent *e = ent_at(t, cur);
		uint32_t seq = ent_read_begin(e);
		if (seq & 1u)
			return 1;
		struct hdr h;
		hdr_load(e, &h);
		if (ST_KIND(h.state) != ST_LIVE || (h.hash & t->bmask) != b)
			return 1;
		if (h.klen > t->key_max || h.vlen > t->value_max)
			return ent_read_ok(e, seq) ? -EBADMSG : 1;
		unsigned char *kb = sc->bytes + sc->n * sc->stride;
		unsigned char *vb = kb + t->key_max;
		shm_load(kb, ent_key(e), h.klen);
		shm_load(vb, ent_val(t, e), h.vlen);
		if (!ent_read_ok(e, seq))
			return 1;
		/* Pointers are set once the chain is complete: a later reserve may move
		 * the bytes. */
		sc->items[sc->n] = (struct shmkit_table_item){NULL, h.klen, NULL, h.vlen, h.version,
							      h.expires};
		sc->refs[sc->n] = cur;
		sc->seqs[sc->n] = seq;
		sc->n++;
		cur = h.next;
	}
	/* Relaxed: the acquire fence in ent_read_ok() below (A2) orders it too; a head
	 * changed since A4 means the chain changed. */
	fence_acquire();
	if (ld32(&t->buckets[b]) != head)
		return 1;
	for (size_t i = 0; i < sc->n; i++)
		if (!ent_read_ok(ent_at(t, sc->refs[i]), sc->seqs[i]))
			return 1;
	for (size_t i = 0; i < sc->n; i++) {
		sc->items[i].key = sc->bytes + i * sc->stride;
		sc->items[i].value = sc->bytes + i * sc->stride + t->key_max;
	}
	return 0;
}

/* The locked version, when the optimistic one keeps failing. */
static int collect_locked(struct shmkit_table *t, uint64_t b, struct scratch *sc)
{
	uint32_t s = stripe_of(t, b);
	struct shmkit_mutex *m = &stripe_at(t, s)->lock;
	int r = shmkit_mutex_trylock(m);
	if (r == -EBUSY)
		return 1;
	if (r == -EOWNERDEAD)
		r = stripe_recover(t, s);
	if (r)
		return r;
	/* Nobody can write the chain now, so the optimistic walk cannot fail unless the
	 * memory is corrupt. */
	r = collect_bucket(t, b, sc);
	(void)shmkit_mutex_unlock(m);
	return r == 1 ? -EBADMSG : r;
}

int shmkit_table_iter(struct shmkit_table *t, shmkit_table_iter_fn fn, void *arg)
{
	if (!t || !fn)
		return -EINVAL;
	struct scratch sc = {.stride = (size_t)t->key_max + t->value_max};
	int visited = 0, r = 0;
	uint64_t now = shmkit_now_ns();
	for (uint64_t b = 0; b < t->nbuckets && r == 0; b++) {
		uint64_t since = 0;
		for (unsigned attempt = 0;; attempt++) {
			if (attempt < READ_TRIES)
				r = collect_bucket(t, b, &sc);
			else if (!t->rdonly)
				r = collect_locked(t, b, &sc);
			else
				r = 1;
			if (r != 1)
				break;
			if (attempt >= READ_TRIES) {
				uint64_t tnow = shmkit_now_ns();
				if (since == 0)
					since = tnow;
				else if (tnow - since > READ_BUDGET_NS) {
					r = -EAGAIN;
					break;
				}
				attempt = READ_TRIES / 2;
			}
			shmkit__cpu_relax();
		}
		for (size_t i = 0; r == 0 && i < sc.n; i++) {
			const struct shmkit_table_item *it = &sc.items[i];
			if (it->expires_ns && now >= it->expires_ns)
				continue;
			visited++;
			r = fn(it, arg);
		}
	}
	free(sc.items);
	free(sc.refs);
	free(sc.seqs);
	free(sc.bytes);
	return r ? r : visited;
}

/* --- writes ------------------------------------------------------------------------------- */

static int write_impl(struct shmkit_table *t, const void *key, size_t klen, const void *val,
		      size_t vlen, uint64_t ttl_ms, bool cas, uint64_t expected,
		      uint64_t *new_version)
{
	int err = check_key(t, key, klen);
	if (err)
		return err;
	if (!val && vlen)
		return -EINVAL;
	if (vlen > t->value_max)
		return -EMSGSIZE;
	if (t->rdonly)
		return -EPERM;
	uint64_t hash = hash_bytes(t->seed, key, klen);
	uint64_t b = hash & t->bmask;
	uint32_t s = stripe_of(t, b);
	err = stripe_lock(t, s);
	if (err)
		return err;
	struct tbl_stripe *st = stripe_at(t, s);
	uint64_t now = 0;
	struct link L;
	struct hdr h;
	int64_t ref = find_locked(t, s, b, hash, key, (uint32_t)klen, true, &now, &L, &h);
	if (ref < 0) {
		err = (int)ref;
		goto out;
	}
	if (cas && (ref ? h.version : 0) != expected) {
		bump64(&st->cas_failures);
		err = -ESTALE;
		goto out;
	}
	if (ttl_ms && now == 0)
		now = shmkit_now_ns();
	/* Relaxed: stripe fields are ordered by the stripe lock. The counter moves before
	 * the change, so a writer that dies after linking the new copy cannot leave a version
	 * that the next write would hand out again (a crash only skips numbers). */
	struct newval nv = {hash, ld64(&st->version) + 1, ttl_ms ? now + ttl_ms * 1000000ull : 0,
			    key, val, (uint32_t)klen, (uint32_t)vlen};
	st64(&st->version, nv.version);
	if (ref) {
		err = replace_entry(t, s, L, (uint32_t)ref, &h, &nv);
	} else {
		int64_t x = obtain_entry(t, s, &now);
		if (x < 0) {
			err = (int)x;
			goto out;
		}
		err = insert_entry(t, s, b, (uint32_t)x, &nv);
		if (err)
			(void)pool_push(t, (uint32_t)x);
		else
			bump64(&st->inserts);
	}
	if (err)
		goto out;
	bump64(&st->puts);
	if (new_version)
		*new_version = nv.version;
out:
	stripe_unlock(t, s);
	return err;
}

int shmkit_table_put(struct shmkit_table *t, const void *key, size_t klen, const void *val,
		     size_t vlen)
{
	return write_impl(t, key, klen, val, vlen, t ? t->ttl_ms : 0, false, 0, NULL);
}

int shmkit_table_put_ttl(struct shmkit_table *t, const void *key, size_t klen, const void *val,
			 size_t vlen, uint32_t ttl_ms)
{
	return write_impl(t, key, klen, val, vlen, ttl_ms, false, 0, NULL);
}

int shmkit_table_cas(struct shmkit_table *t, const void *key, size_t klen, uint64_t expected,
		     const void *val, size_t vlen, uint64_t *new_version)
{
	return write_impl(t, key, klen, val, vlen, t ? t->ttl_ms : 0, true, expected, new_version);
}

int shmkit_table_del(struct shmkit_table *t, const void *key, size_t klen)
{
	int err = check_key(t, key, klen);
	if (err)
		return err;
	if (t->rdonly)
		return -EPERM;
	uint64_t hash = hash_bytes(t->seed, key, klen);
	uint64_t b = hash & t->bmask;
	uint32_t s = stripe_of(t, b);
	err = stripe_lock(t, s);
	if (err)
		return err;
	uint64_t now = 0;
	struct link L;
	struct hdr h;
	int64_t ref = find_locked(t, s, b, hash, key, (uint32_t)klen, true, &now, &L, &h);
	if (ref > 0) {
		unlink_entry(t, s, L, (uint32_t)ref, &h);
		bump64(&stripe_at(t, s)->dels);
		err = pool_push(t, (uint32_t)ref);
	} else {
		err = ref == 0 ? -ENOENT : (int)ref;
	}
	stripe_unlock(t, s);
	return err;
}

int shmkit_table_expire(struct shmkit_table *t)
{
	if (!t)
		return -EINVAL;
	if (t->rdonly)
		return -EPERM;
	int total = 0;
	uint64_t now = shmkit_now_ns();
	for (uint32_t s = 0; s < t->nstripes; s++) {
		int err = stripe_lock(t, s);
		if (err)
			return err;
		for (;;) {
			/* Relaxed: the stripe lock orders it. */
			if (ld32(&stripe_at(t, s)->ttl_count) == 0)
				break;
			int64_t r = find_victim(t, s, false, &now);
			if (r <= 0) {
				err = (int)r;
				break;
			}
			err = pool_push(t, (uint32_t)r);
			if (err)
				break;
			total++;
		}
		stripe_unlock(t, s);
		if (err)
			return err;
	}
	return total;
}

/* --- verification ----------------------------------------------------------------------------- */

#define WHY(...)                                                         \
	do {                                                             \
		if (why && cap)                                          \
			snprintf(why, cap, __VA_ARGS__);                  \
		err = -EBADMSG;                                          \
		goto done;                                               \
	} while (0)

static int check_locked(struct shmkit_table *t, char *why, size_t cap)
{
	int err = 0;
	uint8_t *seen = calloc(t->nentries + 1, 1);
	unsigned char *kbuf = malloc(t->key_max);
	if (!seen || !kbuf) {
		free(seen);
		free(kbuf);
		return -ENOMEM;
	}
	uint64_t accounted = 0;
	for (uint32_t s = 0; s < t->nstripes; s++) {
		struct tbl_stripe *st = stripe_at(t, s);
		if (ld32(&st->undo_state) != 0)
			WHY("stripe %u: undo record armed with the lock free", s);
		uint32_t sp = ld32(&st->spare);
		if (!ref_ok(t, sp) || ld32(&ent_at(t, sp)->state) != ST_MAKE(ST_ALLOC, s))
			WHY("stripe %u: bad spare %u", s, sp);
		if (seen[sp]++)
			WHY("stripe %u: spare %u used twice", s, sp);
		accounted++;
		uint64_t live = 0, ttl = 0;
		for (uint64_t j = 0; j < buckets_per_stripe(t); j++) {
			uint64_t b = j * t->nstripes + s;
			uint32_t cur = ld32(&t->buckets[b]);
			while (cur) {
				if (!ref_ok(t, cur))
					WHY("bucket %llu: bad ref %u", (unsigned long long)b, cur);
				if (seen[cur]++)
					WHY("entry %u reachable twice (bucket %llu)", cur,
					    (unsigned long long)b);
				struct tbl_ent *e = ent_at(t, cur);
				struct hdr h;
				hdr_load(e, &h);
				if (!hdr_sane(t, &h, s, b))
					WHY("entry %u in bucket %llu: state %#x hash %#llx klen %u "
					    "vlen %u next %u",
					    cur, (unsigned long long)b, h.state,
					    (unsigned long long)h.hash, h.klen, h.vlen, h.next);
				if (ld32(&e->seq) & 1u)
					WHY("entry %u: sequence odd with the lock free", cur);
				shm_load(kbuf, ent_key(e), h.klen);
				if (hash_bytes(t->seed, kbuf, h.klen) != h.hash)
					WHY("entry %u: hash does not match its key", cur);
				if (h.version == 0 || h.version > ld64(&st->version))
					WHY("entry %u: version %llu beyond the stripe's %llu", cur,
					    (unsigned long long)h.version,
					    (unsigned long long)ld64(&st->version));
				live++;
				ttl += h.expires != 0;
				cur = h.next;
			}
		}
		if (live != ld32(&st->count) || ttl != ld32(&st->ttl_count))
			WHY("stripe %u: counts %u/%u, found %llu/%llu", s, ld32(&st->count),
			    ld32(&st->ttl_count), (unsigned long long)live, (unsigned long long)ttl);
		accounted += live;
	}
	struct tbl_pool *p = t->pool;
	uint32_t bump = ld32(&p->bump), nfree = 0;
	if (bump > t->capacity)
		WHY("pool: bump %u beyond capacity", bump);
	for (uint32_t cur = ld32(&p->free_head); cur;) {
		if (!ref_ok(t, cur) || seen[cur]++)
			WHY("pool: bad or repeated free entry %u", cur);
		struct tbl_ent *e = ent_at(t, cur);
		if (ld32(&e->state) != ST_FREE)
			WHY("pool: free entry %u has state %#x", cur, ld32(&e->state));
		if (cur - 1 >= bump && cur - 1 < t->capacity)
			WHY("pool: free entry %u was never allocated", cur);
		nfree++;
		cur = ld32(&e->next);
	}
	if (nfree != ld32(&p->free_count))
		WHY("pool: free_count %u, list holds %u", ld32(&p->free_count), nfree);
	accounted += nfree;
	for (uint64_t ref = bump + 1; ref <= t->capacity; ref++) {
		if (seen[ref] || ld32(&ent_at(t, (uint32_t)ref)->state) != ST_FREE)
			WHY("entry %llu above bump is in use", (unsigned long long)ref);
		accounted++;
	}
	if (accounted != t->nentries)
		WHY("%llu of %llu entries accounted for (leak)", (unsigned long long)accounted,
		    (unsigned long long)t->nentries);
done:
	free(seen);
	free(kbuf);
	return err;
}

int shmkit__table_check(struct shmkit_table *t, char *why, size_t cap)
{
	if (!t)
		return -EINVAL;
	if (t->rdonly)
		return -EPERM;
	if (why && cap)
		why[0] = '\0';
	/* Every stripe in index order, then the pool: writers hold one stripe and then maybe
	 * the pool, so this order cannot deadlock with them. */
	uint32_t locked = 0;
	int err = 0;
	for (; locked < t->nstripes; locked++) {
		err = stripe_lock(t, locked);
		if (err)
			break;
	}
	if (!err) {
		err = pool_lock(t);
		if (!err) {
			err = check_locked(t, why, cap);
			pool_unlock(t);
		}
	}
	while (locked > 0)
		stripe_unlock(t, --locked);
	return err;
}

int shmkit_table_verify(struct shmkit_table *t)
{
	return shmkit__table_check(t, NULL, 0);
}

/* --- test hooks ------------------------------------------------------------------------------ */

uint64_t shmkit__table_bucket(const struct shmkit_table *t, const void *key, size_t klen)
{
	return hash_bytes(t->seed, key, klen) & t->bmask;
}

uint64_t shmkit__table_nbuckets(const struct shmkit_table *t)
{
	return t->nbuckets;
}

int shmkit__table_scribble_ranges(const struct shmkit_table *t, struct shmkit__table_range *r,
				  int max)
{
	int n = 0;
	if (n < max)
		r[n++] = (struct shmkit__table_range){POOL_OFF, 128};
	for (uint32_t s = 0; s < t->nstripes && n < max; s++)
		r[n++] = (struct shmkit__table_range){STRIPES_OFF + (size_t)s * STRIPE_SIZE,
						      STRIPE_SIZE};
	if (n < max) {
		size_t off = (size_t)((unsigned char *)(void *)t->buckets - t->base);
		r[n++] = (struct shmkit__table_range){off, t->size - off};
	}
	return n;
}
