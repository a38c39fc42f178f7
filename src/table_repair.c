/* shmkit — the shared table: locks, the entry pool and crash repair.
 * The layout, the protocol and the crash story are at the top of src/table.c; what the
 * table's files share is in src/table_impl.h. */
#include "table_impl.h"

/* --- locks and repair --------------------------------------------------------------------- */

/* Locks a robust mutex, waiting up to LOCK_TIMEOUT_NS (no clock read when uncontended).
 * Returns 0, -EOWNERDEAD (held, needs repair), or an error. */
static int lock_timed(struct shmkit_mutex *m)
{
	return shmkit__mutex_lock_for(m, LOCK_TIMEOUT_NS);
}

static void pool_rebuild(struct shmkit_table *t);

int shmkit__table_pool_lock(struct shmkit_table *t)
{
	int r = lock_timed(&t->pool->lock);
	if (r == -EOWNERDEAD) {
		pool_rebuild(t);
		r = shmkit_mutex_consistent(&t->pool->lock);
		if (r) { /* as in shmkit__table_stripe_recover() */
			(void)shmkit_mutex_unlock(&t->pool->lock);
			r = -EBADMSG;
		}
	}
	return r;
}

void shmkit__table_pool_unlock(struct shmkit_table *t)
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
int64_t shmkit__table_pool_pop(struct shmkit_table *t, uint32_t s)
{
	struct tbl_pool *p = t->pool;
	int r = shmkit__table_pool_lock(t);
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
	shmkit__table_pool_unlock(t);
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

int shmkit__table_pool_push(struct shmkit_table *t, uint32_t ref)
{
	int r = shmkit__table_pool_lock(t);
	if (r)
		return r;
	pool_push_locked(t, ref);
	shmkit__table_pool_unlock(t);
	return 0;
}

void shmkit__table_link_set(struct shmkit_table *t, struct link L, uint32_t val)
{
	if (L.kind == LINK_BUCKET) {
		/* TABLE-R3: publishes the entry now linked (filled before this store); pairs with
		 * TABLE-A3 in find_opt() and TABLE-A4 in collect_bucket(). */
		atomic_store_explicit(&t->buckets[L.at], val, memory_order_release);
		return;
	}
	/* A predecessor's next is part of its seqlocked fields: readers following it are
	 * ordered by the predecessor's TABLE-R1/TABLE-R2 (which also publish the new target). */
	struct tbl_ent *p = ent_at(t, L.at);
	ent_write_begin(p);
	FAULT(SHMKIT__TF_LINK_MID);
	st32(&p->next, val);
	ent_write_end(p);
}

void shmkit__table_undo_arm(struct tbl_stripe *st, const struct undo *u)
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
	/* TABLE-R4: the record is complete before it counts as armed, and armed before the change
	 * it undoes starts; pairs with TABLE-A5 in stripe_repair(). */
	atomic_store_explicit(&st->undo_state, 1, memory_order_release);
}

void shmkit__table_undo_commit(struct tbl_stripe *st)
{
	/* TABLE-R5: the change is complete before the record stops protecting it; pairs with
	 * TABLE-A5 in stripe_repair(). */
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
	/* Relaxed: ordered by TABLE-A5 in stripe_repair(). Every value is checked before use. */
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
			shmkit__table_link_set(t, L, final);
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
	/* TABLE-A5: sees the complete record and the changes made before its arming; pairs with
	 * TABLE-R4 in shmkit__table_undo_arm() and TABLE-R5 in shmkit__table_undo_commit(). */
	if (atomic_load_explicit(&st->undo_state, memory_order_acquire) != 0) {
		undo_apply(t, s, st);
		shmkit__table_undo_commit(st);
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
			if (shmkit__table_pool_lock(t) != 0)
				break; /* the orphans stay; the next repair retries */
			pooled = true;
		}
		pool_push_locked(t, (uint32_t)ref);
	}
	if (pooled)
		shmkit__table_pool_unlock(t);
	if (!spare_ok) {
		int64_t r = shmkit__table_pool_pop(t, s);
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
int shmkit__table_stripe_recover(struct shmkit_table *t, uint32_t s)
{
	stripe_repair(t, s);
	int r = shmkit_mutex_consistent(&stripe_at(t, s)->lock);
	if (r) {
		(void)shmkit_mutex_unlock(&stripe_at(t, s)->lock);
		r = -EBADMSG;
	}
	return r;
}

int shmkit__table_stripe_lock(struct shmkit_table *t, uint32_t s)
{
	int r = lock_timed(&stripe_at(t, s)->lock);
	if (r == -EOWNERDEAD)
		r = shmkit__table_stripe_recover(t, s);
	return r;
}

void shmkit__table_stripe_unlock(struct shmkit_table *t, uint32_t s)
{
	(void)shmkit_mutex_unlock(&stripe_at(t, s)->lock);
}
