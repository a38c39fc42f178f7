/* shmkit — the shared table: writes, under a stripe lock.
 * The layout, the protocol and the crash story are at the top of src/table.c; what the
 * table's files share is in src/table_impl.h. */
#include "table_impl.h"

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

bool shmkit__table_hdr_sane(const struct shmkit_table *t, const struct hdr *h, uint32_t s,
			    uint64_t b)
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
	shmkit__table_undo_arm(st, &(struct undo){L, ref, h->next, ref, 0, 0, 0});
	FAULT(SHMKIT__TF_ARMED);
	shmkit__table_link_set(t, L, h->next);
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
	shmkit__table_undo_commit(st);
	FAULT(SHMKIT__TF_COMMITTED);
}

/* Unlinks an expired entry and returns it to the pool. */
static int reclaim_entry(struct shmkit_table *t, uint32_t s, struct link L, uint32_t ref,
			 const struct hdr *h)
{
	unlink_entry(t, s, L, ref, h);
	bump64(&stripe_at(t, s)->expirations);
	return shmkit__table_pool_push(t, ref);
}

/* Looks `key` up in bucket b under stripe s's lock. Returns the entry's ref (with *L the
 * link pointing at it and *h its header), 0 when absent, or a negative errno. With
 * `reclaim`, expired entries met on the way (the key's own included) are unlinked and
 * returned to the pool; without, an expired key reads as absent. */
int64_t shmkit__table_find_locked(struct shmkit_table *t, uint32_t s, uint64_t b, uint64_t hash,
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
		if (!shmkit__table_hdr_sane(t, h, s, b))
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
	shmkit__table_undo_arm(st, &(struct undo){L, ref, sp, ref, sp, sp, ref});
	FAULT(SHMKIT__TF_ARMED);
	fill_entry(t, se, ST_MAKE(ST_LIVE, s), h->next, nv);
	/* Relaxed: the CLOCK bit is a hint (see touch()); the copy inherits it. */
	st32(&se->ref, ld32(&old->ref));
	FAULT(SHMKIT__TF_FILLED);
	shmkit__table_link_set(t, L, sp);
	FAULT(SHMKIT__TF_LINKED);
	retire(old, s);
	st32(&st->spare, ref);
	FAULT(SHMKIT__TF_UNLINKED);
	if ((h->expires != 0) != (nv->expires != 0)) {
		uint32_t tc = ld32(&st->ttl_count);
		st32(&st->ttl_count, nv->expires ? tc + 1 : (tc ? tc - 1 : 0));
	}
	shmkit__table_undo_commit(st);
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
	shmkit__table_undo_arm(st, &(struct undo){L, head, ref, 0, ref, 0, 0});
	FAULT(SHMKIT__TF_ARMED);
	fill_entry(t, e, ST_MAKE(ST_LIVE, s), head, nv);
	/* Relaxed: the CLOCK bit is a hint; a new entry starts unreferenced. */
	st32(&e->ref, 0);
	FAULT(SHMKIT__TF_FILLED);
	shmkit__table_link_set(t, L, ref);
	FAULT(SHMKIT__TF_LINKED);
	st32(&st->count, ld32(&st->count) + 1);
	if (nv->expires)
		st32(&st->ttl_count, ld32(&st->ttl_count) + 1);
	shmkit__table_undo_commit(st);
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
			if (!shmkit__table_hdr_sane(t, &h, s, b))
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
	int64_t r = shmkit__table_pool_pop(t, s);
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
	err = shmkit__table_stripe_lock(t, s);
	if (err)
		return err;
	struct tbl_stripe *st = stripe_at(t, s);
	uint64_t now = 0;
	struct link L;
	struct hdr h;
	int64_t ref =
		shmkit__table_find_locked(t, s, b, hash, key, (uint32_t)klen, true, &now, &L, &h);
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
			(void)shmkit__table_pool_push(t, (uint32_t)x);
		else
			bump64(&st->inserts);
	}
	if (err)
		goto out;
	bump64(&st->puts);
	if (new_version)
		*new_version = nv.version;
out:
	shmkit__table_stripe_unlock(t, s);
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
	err = shmkit__table_stripe_lock(t, s);
	if (err)
		return err;
	uint64_t now = 0;
	struct link L;
	struct hdr h;
	int64_t ref =
		shmkit__table_find_locked(t, s, b, hash, key, (uint32_t)klen, true, &now, &L, &h);
	if (ref > 0) {
		unlink_entry(t, s, L, (uint32_t)ref, &h);
		bump64(&stripe_at(t, s)->dels);
		err = shmkit__table_pool_push(t, (uint32_t)ref);
	} else {
		err = ref == 0 ? -ENOENT : (int)ref;
	}
	shmkit__table_stripe_unlock(t, s);
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
		int err = shmkit__table_stripe_lock(t, s);
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
			err = shmkit__table_pool_push(t, (uint32_t)r);
			if (err)
				break;
			total++;
		}
		shmkit__table_stripe_unlock(t, s);
		if (err)
			return err;
	}
	return total;
}
