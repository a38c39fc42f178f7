/* shmkit — a shared lookup table / cache: a fixed-capacity hash table in a segment that many
 * processes read and write at once, and that survives any of them being killed.
 *
 * Keys and values are byte strings (any bytes, NUL included) of at most key_max and
 * value_max bytes, fixed with the capacity (number of entries) when the table is created.
 *
 *   readers  never take a lock and never block a writer: a get finds the entry and copies
 *            it under the entry's sequence counter, retrying when a writer changed it
 *            meanwhile. Writers replace an entry by writing a fresh copy and swinging one
 *            link, so a reader of a key that is being rewritten usually still completes on
 *            the old copy instead of retrying. On the hit path a reader writes no shared
 *            memory, except in cache mode one "recently used" bit, and only when it is
 *            not already set.
 *   writers  (put, del, cas) lock the key's stripe — one of `stripes` robust process-shared
 *            mutexes — so writers to different stripes run in parallel.
 *   crashes  a writer killed at any instruction (kill -9) leaves the key with its old value
 *            or its new one, never a mix: before touching anything it records how to undo
 *            the change, and the next process that takes that stripe's mutex gets the
 *            owner-dead signal and rolls the change back. A reader that meets an entry left
 *            mid-write by a dead writer stops retrying after a bounded number of tries, takes
 *            the stripe's mutex with trylock and does the repair itself; it never spins
 *            forever (see shmkit_table_get() for what it returns when it cannot repair).
 *   cache    with SHMKIT_TABLE_CACHE a put into a full table evicts an entry of the same
 *            stripe that has not been read recently (CLOCK, an approximate LRU) instead of
 *            failing with -ENOSPC. Entries may carry a time-to-live: an expired entry reads
 *            as absent at once and its slot is reclaimed by the next write that meets it,
 *            by a put that finds the table full, or by shmkit_table_expire().
 *   trust    everything read from shared memory is validated before use: the table's own
 *            control block once, at open (the geometry is kept privately and never re-read),
 *            every index and length each time it is read. A peer scribbling over the table
 *            makes calls fail with -EBADMSG (or return wrong data), never read or write
 *            outside the segment and never hang. The stripe locks are shmkit mutexes, safe
 *            against scribbled lock words too (shmkit/sync.h): a garbage lock word costs at
 *            most one repair of the stripe, a word naming a live process that never unlocks
 *            makes writers of that stripe time out (-ETIMEDOUT), as any held lock would.
 *
 * Thread safety: every function may be called concurrently from any number of threads and
 * processes on the same or different handles, except shmkit_table_close(), which must be
 * the last call on a handle.
 *
 * Errors common to the data functions (negative errno):
 *   -EINVAL    NULL handle, NULL key/value pointer with a non-zero length
 *   -EMSGSIZE  key longer than key_max or value longer than value_max
 *   -EBADMSG   the shared memory is corrupt (an impossible index, length or chain)
 *   -EPERM     a write through a handle opened with SHMKIT_SEG_RDONLY
 *   -ETIMEDOUT a writer waited more than SHMKIT_TABLE_LOCK_TIMEOUT_MS for a stripe lock
 *              (its holder is stopped or hung; a dead holder is repaired, not waited for)
 *   -ENOTRECOVERABLE a stripe mutex was made unusable by a peer that did not repair it
 */
#ifndef SHMKIT_TABLE_H
#define SHMKIT_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"
#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits on the creation parameters. */
#define SHMKIT_TABLE_CAPACITY_MAX (1u << 30) /* entries */
#define SHMKIT_TABLE_KEY_MAX 65536u           /* bytes per key */
#define SHMKIT_TABLE_VALUE_MAX (16u << 20)    /* bytes per value */
#define SHMKIT_TABLE_STRIPES_MAX 4096u        /* writer lock stripes */

/* How long a writer waits for a stripe lock held by a live process. */
#define SHMKIT_TABLE_LOCK_TIMEOUT_MS 2000u

/* Flags for shmkit_table_opts.flags. */
#define SHMKIT_TABLE_CACHE 0x1u /* evict (CLOCK) instead of failing when full */

/* Options of create and open; pass NULL for all defaults. Zero in any field means "the
 * default". Open uses only opts->seg (backend, flags, key) and ignores the creation fields;
 * unknown flag bits and non-zero reserved words are -EINVAL at both. */
struct shmkit_table_opts {
	size_t capacity;  /* entries: 1..SHMKIT_TABLE_CAPACITY_MAX (default 1024) */
	size_t key_max;   /* longest key in bytes: 1..SHMKIT_TABLE_KEY_MAX (default 64) */
	size_t value_max; /* longest value in bytes: 1..SHMKIT_TABLE_VALUE_MAX (default 256) */
	uint32_t flags;   /* SHMKIT_TABLE_* */
	uint32_t ttl_ms;  /* time-to-live that shmkit_table_put() gives entries; 0 = none */
	uint32_t stripes; /* writer lock stripes, a power of two <= capacity and
			   * <= SHMKIT_TABLE_STRIPES_MAX (default: capacity / 16, at most 64) */
	uint32_t reserved0; /* must be 0 */
	struct shmkit_segment_opts seg; /* backend, mode, flags, System V key; the kind is
					 * always SHMKIT_KIND_TABLE. SHMKIT_SEG_PERSISTENT: the
					 * lifetime; SHMKIT_SEG_RDONLY (open): read-only handle */
	uint64_t reserved[4]; /* must be 0, else -EINVAL (room for later options) */
};

/* Counters. The first group describes the table; the second counts events of every
 * process since creation (kept per stripe, updated under the stripe lock); the third
 * counts the calls made through this handle only, so that readers never write a shared
 * counter. Values are snapshots and may be mutually inconsistent under concurrency. */
struct shmkit_table_stats {
	uint64_t capacity;     /* entries that fit */
	uint64_t entries;      /* entries stored now (expired but unreclaimed ones included) */
	uint64_t key_max;      /* bytes */
	uint64_t value_max;    /* bytes */
	uint32_t flags;        /* SHMKIT_TABLE_* */
	uint32_t ttl_ms;       /* default time-to-live, 0 = none */
	uint32_t stripes;      /* writer lock stripes */
	uint32_t reserved;
	uint64_t segment_size; /* bytes of the segment's data area */

	uint64_t puts;         /* successful puts and cas (inserts and replacements) */
	uint64_t inserts;      /* of those, new keys */
	uint64_t dels;         /* successful deletes */
	uint64_t cas_failures; /* cas refused because the version had changed */
	uint64_t evictions;    /* entries evicted to make room (cache mode) */
	uint64_t expirations;  /* expired entries reclaimed */
	uint64_t repairs;      /* stripes repaired after a writer died holding the lock */

	uint64_t gets;         /* lookups through this handle (get, read_begin) */
	uint64_t hits;         /* of those, found */
	uint64_t misses;       /* of those, absent or expired */
	uint64_t read_retries; /* optimistic reads retried because a writer interfered */
};

/* One entry as iteration and zero-copy reads show it. */
struct shmkit_table_item {
	const void *key;
	size_t klen;
	const void *value;
	size_t vlen;
	uint64_t version;    /* changes with every write of the entry; never 0 */
	uint64_t expires_ns; /* CLOCK_MONOTONIC expiry time, 0 = never */
};

/* A zero-copy read in progress (see shmkit_table_read_begin()). The public fields point
 * into shared memory; the private ones belong to the library. */
struct shmkit_table_view {
	struct shmkit_table_item item;
	uint32_t private_[4];
};

struct shmkit_table;

/* --- lifetime ------------------------------------------------------------------------- */

/* Creates a table in a new segment named `name` (the segment rules of shmkit/segment.h
 * apply: exclusive creation, 0600 by default, any backend; name may be NULL for memfd)
 * and returns a handle to it. The table is laid out completely before the segment is
 * published, so an opener never sees it half-built.
 * The lifetime is ephemeral unless opts->seg.flags has SHMKIT_SEG_PERSISTENT (the CLI's
 * `table create` makes persistent tables).
 * Returns 0 and *tp, -EINVAL (bad option, unknown flag bits, non-zero reserved fields, or a
 * size beyond the limits above), or a shmkit_segment_create() error (-EEXIST, -ENOMEM,
 * -ENOSPC, ...). */
SHMKIT_API int shmkit_table_create(const char *name, const struct shmkit_table_opts *opts,
				   struct shmkit_table **tp);

/* Opens the table in the named segment. `opts` (may be NULL): only opts->seg is used — the
 * backend, SHMKIT_SEG_RDONLY (read-only access, the one way every kind asks for it: writes
 * fail with -EPERM, and reads cannot repair a dead writer's stripe) and
 * SHMKIT_SEG_FOREIGN_UID; its kind must be 0 or SHMKIT_KIND_TABLE; the creation fields
 * are ignored, the reserved ones must be 0. The control block is checked once (magic, version,
 * checksum, every size recomputed from the parameters and compared with the segment) and
 * copied; nothing in it is read from shared memory again.
 * Returns 0 and *tp, -EINVAL (a bad option), -EBADMSG (corrupt control block), -EPROTO
 * (another table layout), -EMEDIUMTYPE (not a table), or any shmkit_segment_open() error.
 * (SHMKIT_0.1 took a `struct shmkit_segment_opts *`; binaries built against it keep
 * working.) */
SHMKIT_API int shmkit_table_open(const char *name, const struct shmkit_table_opts *opts,
				 struct shmkit_table **tp);

/* Like shmkit_table_open() for a descriptor (memfd or POSIX shm) this process holds; the
 * descriptor is duplicated, the caller keeps `fd`. */
SHMKIT_API int shmkit_table_open_fd(int fd, const struct shmkit_table_opts *opts,
				    struct shmkit_table **tp);

/* Removes the table's name (mapped memory stays valid for whoever has it, and the table
 * stays usable through open handles). 0, -ENOENT (removed already), -EINVAL (NULL);
 * memfd: 0. */
SHMKIT_API int shmkit_table_unlink(struct shmkit_table *t);

/* Unmaps the table and frees the handle; the table itself stays (remove it with
 * shmkit_table_unlink() before closing, or shmkit_segment_remove()). NULL is accepted.
 * Returns 0. */
SHMKIT_API int shmkit_table_close(struct shmkit_table *t);

/* The segment holding the table (valid until shmkit_table_close()), e.g. for
 * shmkit_segment_unlink() or shmkit_segment_send_fd(). */
SHMKIT_API struct shmkit_segment *shmkit_table_segment(const struct shmkit_table *t);

/* --- reads (lock-free) -------------------------------------------------------------------- */

/* Copies the value of `key` into buf (cap bytes). Returns the value's length (0 for an
 * empty value), or
 *   -ENOENT   no such key, or it has expired
 *   -ENOBUFS  the value is longer than cap (nothing meaningful copied; a buffer of
 *             value_max bytes always suffices)
 *   -EAGAIN   the entry kept changing, or stayed half-written, past the retry bound and
 *             its stripe could not be repaired from here: a live writer holds the stripe
 *             lock for a long time, or the handle is read-only and the writer died (the
 *             next writer repairs it). Retrying later is correct.
 *   -EMSGSIZE, -EBADMSG, -EINVAL (see the top of this file).
 * Never blocks. */
SHMKIT_API int shmkit_table_get(struct shmkit_table *t, const void *key, size_t klen, void *buf,
				size_t cap);

/* shmkit_table_get() that also reports the entry's version (for shmkit_table_cas()). */
SHMKIT_API int shmkit_table_get_versioned(struct shmkit_table *t, const void *key, size_t klen,
					  void *buf, size_t cap, uint64_t *version);

/* Zero-copy read. read_begin finds `key` and fills view->item with pointers into shared
 * memory; the caller reads what it needs (copying it out, ideally with
 * shmkit_seqlock_load(): plain loads of memory a writer may be changing are a data race in
 * C11 terms), then calls read_end, which says whether what was read is a consistent
 * snapshot. Only after read_end returns 0 may the caller trust what it read; on -EAGAIN it
 * must discard it and start over. Nothing needs releasing: abandoning a view is fine.
 * read_begin returns 0, -ENOENT, -EAGAIN, -EMSGSIZE, -EBADMSG or -EINVAL like
 * shmkit_table_get(); read_end returns 0 or -EAGAIN. The pointers stay inside the segment
 * until shmkit_table_close() but may then point at another key's data. */
SHMKIT_API int shmkit_table_read_begin(struct shmkit_table *t, const void *key, size_t klen,
				       struct shmkit_table_view *view);
SHMKIT_API int shmkit_table_read_end(struct shmkit_table *t, const struct shmkit_table_view *view);

/* Calls fn once for every live (unexpired) entry, with a private copy of it, until fn
 * returns non-zero. Each bucket's entries are a consistent snapshot; the table as a whole
 * is not (entries written during the walk may or may not be seen, none twice). fn may call
 * any table function. Returns the number of entries passed to fn, fn's non-zero return
 * value, or -ENOMEM, -EAGAIN, -EBADMSG. */
typedef int (*shmkit_table_iter_fn)(const struct shmkit_table_item *item, void *arg);
SHMKIT_API int shmkit_table_iter(struct shmkit_table *t, shmkit_table_iter_fn fn, void *arg);

/* The number of entries stored (a snapshot; expired but unreclaimed entries included).
 * Returns the count or -EINVAL. */
SHMKIT_API int shmkit_table_count(const struct shmkit_table *t);

/* Fills *stats (see struct shmkit_table_stats). Returns 0 or -EINVAL. */
SHMKIT_API int shmkit_table_stats(const struct shmkit_table *t, struct shmkit_table_stats *stats);

/* --- writes (per-stripe robust locks) -------------------------------------------------- */

/* Inserts `key` or replaces its value; the entry gets the table's default time-to-live.
 * Returns 0, or
 *   -ENOSPC   a new key and the table is full (never in cache mode, unless the key's stripe
 *             holds no entry that could be evicted — possible only in tiny tables)
 *   -EPERM, -ETIMEDOUT, -ENOTRECOVERABLE, -EMSGSIZE, -EBADMSG, -EINVAL (top of file). */
SHMKIT_API int shmkit_table_put(struct shmkit_table *t, const void *key, size_t klen,
				const void *val, size_t vlen);

/* shmkit_table_put() with an explicit time-to-live: ttl_ms 0 = never expires. */
SHMKIT_API int shmkit_table_put_ttl(struct shmkit_table *t, const void *key, size_t klen,
				    const void *val, size_t vlen, uint32_t ttl_ms);

/* Writes `val` only if the key's current version is `expected` (from
 * shmkit_table_get_versioned()); expected 0 means "only if the key is absent" (insert
 * without replacing). Versions are per key, strictly increasing, never reused even across
 * a delete and re-insert. On success stores the new version in *new_version (may be NULL).
 * Returns 0, -ESTALE when the version differs (the key changed, was deleted, or — for
 * expected 0 — exists), or a shmkit_table_put() error. */
SHMKIT_API int shmkit_table_cas(struct shmkit_table *t, const void *key, size_t klen,
				uint64_t expected, const void *val, size_t vlen,
				uint64_t *new_version);

/* Removes `key`. Returns 0, -ENOENT (absent or already expired), or an error as for put. */
SHMKIT_API int shmkit_table_del(struct shmkit_table *t, const void *key, size_t klen);

/* Reclaims every expired entry now (otherwise they are reclaimed lazily). Takes each stripe
 * lock in turn. Returns the number reclaimed or an error as for put. */
SHMKIT_API int shmkit_table_expire(struct shmkit_table *t);

/* Checks every invariant of the table — each entry reachable exactly once, in its right
 * bucket, hash and lengths consistent, counts exact, the free pool intact — while holding
 * every stripe lock (repairing stripes whose writer died first). Meant for tests and for
 * `shmkit` diagnostics: it stops all writers while it runs. (It holds stripes + 1 locks at
 * once: ThreadSanitizer aborts a thread holding more than 64.) Returns 0, -EBADMSG, -EPERM
 * (read-only handle), -ENOMEM, or a lock error. */
SHMKIT_API int shmkit_table_verify(struct shmkit_table *t);

#ifdef __cplusplus
}
#endif

#endif
