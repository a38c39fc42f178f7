/* shmkit — the shared table: iteration.
 * The layout, the protocol and the crash story are at the top of src/table.c; what the
 * table's files share is in src/table_impl.h. */
#include "table_impl.h"

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
	/* TABLE-A4: as TABLE-A3 in find_opt(); pairs with TABLE-R3 in shmkit__table_link_set(). */
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
	/* Relaxed: the acquire fence in ent_read_ok() below (TABLE-A2) orders it too; a head
	 * changed since TABLE-A4 means the chain changed. */
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
		r = shmkit__table_stripe_recover(t, s);
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
