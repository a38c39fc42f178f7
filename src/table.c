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

/* The code is split by concern (repair, reads, iteration, writes, verification): the list of
 * files is at the top of src/table_impl.h. */
#include "table_impl.h"

void (*shmkit__table_fault_hook)(int point);

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

/* --- handles --------------------------------------------------------------------------------- */

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
