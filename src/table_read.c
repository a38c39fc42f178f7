/* shmkit — the shared table: lock-free reads.
 * The layout, the protocol and the crash story are at the top of src/table.c; what the
 * table's files share is in src/table_impl.h. */
#include "table_impl.h"

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
	/* TABLE-A3: sees the entry linked by the head store; pairs with TABLE-R3 in
	 * shmkit__table_link_set(). */
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
	int64_t ref = shmkit__table_find_locked(t, s, b, hash, key, klen, false, &now, &L, &h);
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
		r = shmkit__table_stripe_recover(t, s);
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
