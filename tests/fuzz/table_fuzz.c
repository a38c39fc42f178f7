/* libFuzzer target for the table's chains and entries (src/table.c): a peer scribbles the
 * data area of a table (control block, buckets, stripes, entry pool), and we open it with
 * shmkit_table_open_fd() and read it every way a reader does.
 *
 * Input: the data area of a table created with the parameters below (zero-padded), then an
 * option byte (bit 0: run verify through the writer handle). Every
 * read either fails with a documented negative errno or hands out keys and values whose
 * every byte lies in the mapping, within key_max / value_max; iteration ends; verify
 * (which holds every stripe lock and repairs dead writers' stripes) ends too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *const fuzz_corpus = "tests/fuzz/corpus/table";
int fuzz_write_seeds(const char *dir);

#define T_CAP 16u
#define T_KEY 16u
#define T_VAL 32u

static struct shmkit_table *create(uint32_t flags)
{
	struct shmkit_table_opts o = {.capacity = T_CAP, .key_max = T_KEY, .value_max = T_VAL,
				      .stripes = 2, .flags = flags, .seg = FUZZ_MEMFD};
	struct shmkit_table *t;
	if (shmkit_table_create(NULL, &o, &t) != 0)
		fuzz_fail("table create");
	return t;
}

static const struct fuzz_image *image(void)
{
	static struct fuzz_image im = {.fd = -1};
	if (im.fd < 0) {
		struct shmkit_table *t = create(0);
		fuzz_image_keep(&im, shmkit_table_segment(t));
		shmkit_table_close(t);
	}
	return &im;
}

/* The limits the opened table reports: its control block is the peer's too (checked at
 * open), so they need not be the ones created here. */
static struct shmkit_table_stats limits;

static void check_item(const struct shmkit_table_item *it)
{
	if (it->klen > limits.key_max || it->vlen > limits.value_max || (it->klen && !it->key) ||
	    (it->vlen && !it->value))
		fuzz_fail("item out of bounds");
	fuzz_touch(it->key, it->klen);
	fuzz_touch(it->value, it->vlen);
}

static int on_item(const struct shmkit_table_item *it, void *arg)
{
	check_item(it);
	return ++*(uint64_t *)arg > 4 * limits.capacity ? 1 : 0;
}

static void read_all(struct shmkit_table *t, uint8_t sel)
{
	shmkit_table_count(t);
	if (shmkit_table_stats(t, &limits) != 0)
		fuzz_fail("stats of an open table");
	uint64_t seen = 0;
	int rc = shmkit_table_iter(t, on_item, &seen);
	if ((rc > 0 && (uint64_t)rc > limits.capacity) || seen > limits.capacity)
		fuzz_fail("iteration saw more entries than the table holds");
	/* A lookup of a key whose entry stays half-written spins for the read budget (20 ms)
	 * before -EAGAIN: a few keys, so that such inputs stay cheap. */
	for (int k = 0; k < 3; k++) {
		char key[8];
		int klen = snprintf(key, sizeof key, "k%d", k);
		char val[T_VAL];
		uint64_t version;
		rc = shmkit_table_get_versioned(t, key, (size_t)klen, val, sizeof val, &version);
		if (rc > (int)sizeof val)
			fuzz_fail("get returned a length beyond its buffer");
		struct shmkit_table_view v;
		if (k == 0 && shmkit_table_read_begin(t, key, (size_t)klen, &v) == 0) {
			check_item(&v.item);
			fuzz_inside(shmkit_table_segment(t), v.item.key, v.item.klen, "view key outside the segment");
			fuzz_inside(shmkit_table_segment(t), v.item.value, v.item.vlen, "view value outside the segment");
			shmkit_table_read_end(t, &v);
		}
	}
	if (sel & 1)
		shmkit_table_verify(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_image *im = image();
	uint8_t sel = size > im->size ? data[im->size] : 0;
	fuzz_image_load(im, data, size);
	struct shmkit_table_opts ro = {.seg.flags = SHMKIT_SEG_RDONLY};
	struct shmkit_table *t;
	if (shmkit_table_open_fd(im->fd, &ro, &t) == 0) {
		read_all(t, 0);
		shmkit_table_close(t);
	}
	/* A writer handle: its reads repair a dead writer's stripe, and verify walks it all. */
	if (shmkit_table_open_fd(im->fd, NULL, &t) == 0) {
		read_all(t, sel);
		shmkit_table_close(t);
	}
	return 0;
}

/* Seeds: real tables, empty, half full, full, with deletions (the free pool reused), with
 * TTLs, in cache mode after evictions. */
int fuzz_write_seeds(const char *dir)
{
	int idx = 0;
	for (int variant = 0; variant < 6; variant++) {
		struct shmkit_table *t = create(variant == 5 ? SHMKIT_TABLE_CACHE : 0);
		int n = variant == 0 ? 0 : variant == 1 ? 5 : 24;
		for (int k = 0; k < n; k++) {
			char key[8], val[T_VAL];
			int klen = snprintf(key, sizeof key, "k%d", k);
			memset(val, 'a' + k % 26, sizeof val);
			if (variant == 4)
				shmkit_table_put_ttl(t, key, (size_t)klen, val, (size_t)(k % T_VAL), 1 + (k & 1) * 100000);
			else
				shmkit_table_put(t, key, (size_t)klen, val, (size_t)(k % T_VAL));
			if (variant == 3 && (k % 3) == 0)
				shmkit_table_del(t, key, (size_t)klen);
		}
		struct fuzz_image im;
		fuzz_image_keep(&im, shmkit_table_segment(t));
		fuzz_image_save(&im, dir, idx++, 1);
		fuzz_image_drop(&im);
		shmkit_table_close(t);
	}
	return 0;
}
