/* shmkit — the shared table: verification and test hooks.
 * The layout, the protocol and the crash story are at the top of src/table.c; what the
 * table's files share is in src/table_impl.h. */
#include "table_impl.h"

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
				if (!shmkit__table_hdr_sane(t, &h, s, b))
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
		err = shmkit__table_stripe_lock(t, locked);
		if (err)
			break;
	}
	if (!err) {
		err = shmkit__table_pool_lock(t);
		if (!err) {
			err = check_locked(t, why, cap);
			shmkit__table_pool_unlock(t);
		}
	}
	while (locked > 0)
		shmkit__table_stripe_unlock(t, --locked);
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
