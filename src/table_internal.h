/* shmkit — test hooks into the shared table, src/table*.c (never installed; only
 * tests/table.c uses them).
 *
 * The crash tests must kill a writer at each step of the table's write protocol, not only
 * where a random SIGKILL happens to land. The library calls shmkit__table_fault_hook, when a
 * test has set it, at the numbered points below; the test's hook raises SIGKILL at the
 * point it targets. Unset (the normal case) the cost is one load of a global per point.
 */
#ifndef SHMKIT_TABLE_INTERNAL_H
#define SHMKIT_TABLE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "shmkit.h"

enum shmkit__table_fault {
	SHMKIT__TF_NONE = 0,
	SHMKIT__TF_ARMED,     /* undo record armed, nothing else changed yet */
	SHMKIT__TF_FILL_MID,  /* the new copy half-written (its sequence odd) */
	SHMKIT__TF_FILLED,    /* the new copy complete, not yet linked */
	SHMKIT__TF_LINK_MID,  /* a linked predecessor's next half-written (sequence odd) */
	SHMKIT__TF_LINKED,    /* the link points at the new copy / past the deleted entry */
	SHMKIT__TF_UNLINKED,  /* the old copy retired, undo record still armed */
	SHMKIT__TF_COMMITTED, /* undo record cleared, stripe lock still held */
	SHMKIT__TF_POOL_MID,  /* free pool half-updated, pool lock held */
	SHMKIT__TF_EVICTED,   /* cache mode: a victim removed, the new key not yet inserted */
	SHMKIT__TF_COUNT
};

/* Called (when non-NULL) at each point above with its number. */
extern void (*shmkit__table_fault_hook)(int point);

/* The bucket a key hashes to, and the number of buckets (tests build collisions). */
uint64_t shmkit__table_bucket(const struct shmkit_table *t, const void *key, size_t klen);
uint64_t shmkit__table_nbuckets(const struct shmkit_table *t);

/* Like shmkit_table_verify(), writing the first violated invariant into why. */
int shmkit__table_check(struct shmkit_table *t, char *why, size_t cap);

/* The byte ranges (offsets into the segment's data area) that hold table state after the
 * control block: the pool and stripe blocks, their locks included (shmkit mutexes take
 * garbage too), the buckets and the entries. What a hostile-peer test may scribble on
 * while the table is in use. Returns the number of ranges (<= max). */
struct shmkit__table_range {
	size_t off, len;
};
int shmkit__table_scribble_ranges(const struct shmkit_table *t, struct shmkit__table_range *r,
				  int max);

#endif
