/* Tests for the object model every kind shares (src/object.c, docs/design.md "Object
 * model"): options (unknown flag bits and non-zero reserved words are -EINVAL in every
 * kind, a call flag is not an option flag and the other way round), read-only access the
 * one way (SHMKIT_SEG_RDONLY), create/open/unlink/close round trips of every kind on every
 * backend, layout identity (-EPROTO, -EBADMSG), and one errno per meaning (-ENOBUFS for a
 * caller's buffer that is too small, -EMSGSIZE for a message larger than the object
 * allows). Real segments, real processes. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

enum kind { K_CHAN, K_PUBSUB, K_QUEUE, K_TABLE, K_COUNT };
static const char *const kind_names[K_COUNT] = {"chan", "pubsub", "queue", "table"};

/* Every kind's options, with the fields the tests vary. */
struct any_opts {
	struct shmkit_chan_opts c;
	struct shmkit_pubsub_opts p;
	struct shmkit_queue_opts q;
	struct shmkit_table_opts t;
};

/* One handle of any kind. */
struct obj {
	enum kind k;
	void *h;
};

static struct shmkit_segment_opts *seg_of(struct any_opts *o, enum kind k)
{
	switch (k) {
	case K_CHAN: return &o->c.seg;
	case K_PUBSUB: return &o->p.seg;
	case K_QUEUE: return &o->q.seg;
	default: return &o->t.seg;
	}
}

static uint32_t *flags_of(struct any_opts *o, enum kind k)
{
	switch (k) {
	case K_CHAN: return &o->c.flags;
	case K_PUBSUB: return &o->p.flags;
	case K_QUEUE: return &o->q.flags;
	default: return &o->t.flags;
	}
}

static uint64_t *reserved_of(struct any_opts *o, enum kind k)
{
	switch (k) {
	case K_CHAN: return o->c.reserved;
	case K_PUBSUB: return o->p.reserved;
	case K_QUEUE: return o->q.reserved;
	default: return o->t.reserved;
	}
}

/* Small objects: the round trips make twelve of them. */
static void small(struct any_opts *o, uint32_t backend)
{
	memset(o, 0, sizeof *o);
	o->c.capacity = 4096;
	o->p.capacity = 4096;
	o->p.max_subscribers = 2;
	o->q.slots = 4;
	o->q.max_members = 4;
	o->t.capacity = 16;
	for (int k = 0; k < K_COUNT; k++)
		seg_of(o, k)->backend = backend;
}

/* Creates (role 1: producer, publisher) or opens (role 2: consumer, subscriber; role 0:
 * read-only) an object of kind k, by name or, for memfd, by descriptor. */
static int obj_make(enum kind k, const char *name, int fd, bool create, int role,
		    struct any_opts *o, struct obj *out)
{
	out->k = k;
	out->h = NULL;
	switch (k) {
	case K_CHAN:
		if (create)
			return shmkit_chan_create(name, role, &o->c, (struct shmkit_chan **)&out->h);
		return fd >= 0 ? shmkit_chan_open_fd(fd, role, &o->c, (struct shmkit_chan **)&out->h)
			       : shmkit_chan_open(name, role, &o->c, (struct shmkit_chan **)&out->h);
	case K_PUBSUB:
		if (create)
			return shmkit_pubsub_create(name, role, &o->p,
						    (struct shmkit_pubsub **)&out->h);
		return fd >= 0 ? shmkit_pubsub_open_fd(fd, role, &o->p,
						       (struct shmkit_pubsub **)&out->h)
			       : shmkit_pubsub_open(name, role, &o->p,
						    (struct shmkit_pubsub **)&out->h);
	case K_QUEUE:
		if (create)
			return shmkit_queue_create(name, &o->q, (struct shmkit_queue **)&out->h);
		return fd >= 0 ? shmkit_queue_open_fd(fd, &o->q, (struct shmkit_queue **)&out->h)
			       : shmkit_queue_open(name, &o->q, (struct shmkit_queue **)&out->h);
	default:
		if (create)
			return shmkit_table_create(name, &o->t, (struct shmkit_table **)&out->h);
		return fd >= 0 ? shmkit_table_open_fd(fd, &o->t, (struct shmkit_table **)&out->h)
			       : shmkit_table_open(name, &o->t, (struct shmkit_table **)&out->h);
	}
}

static struct shmkit_segment *obj_seg(const struct obj *x)
{
	switch (x->k) {
	case K_CHAN: return shmkit_chan_segment(x->h);
	case K_PUBSUB: return shmkit_pubsub_segment(x->h);
	case K_QUEUE: return shmkit_queue_segment(x->h);
	default: return shmkit_table_segment(x->h);
	}
}

static int obj_unlink(const struct obj *x)
{
	switch (x->k) {
	case K_CHAN: return shmkit_chan_unlink(x->h);
	case K_PUBSUB: return shmkit_pubsub_unlink(x->h);
	case K_QUEUE: return shmkit_queue_unlink(x->h);
	default: return shmkit_table_unlink(x->h);
	}
}

static int obj_close(const struct obj *x)
{
	switch (x->k) {
	case K_CHAN: return shmkit_chan_close(x->h);
	case K_PUBSUB: return shmkit_pubsub_close(x->h);
	case K_QUEUE: return shmkit_queue_close(x->h);
	default: return shmkit_table_close(x->h);
	}
}

/* Writes "hello" through `w` (a producer, publisher, queue or table handle). */
static int obj_write(const struct obj *w)
{
	switch (w->k) {
	case K_CHAN: return shmkit_chan_send(w->h, "hello", 5);
	case K_PUBSUB: return shmkit_pubsub_send(w->h, "hello", 5);
	case K_QUEUE: return shmkit_queue_send(w->h, "hello", 5);
	default: return shmkit_table_put(w->h, "k", 1, "hello", 5);
	}
}

/* Reads it back through `r` into buf (cap bytes): its length or a negative errno. */
static long obj_read(const struct obj *r, void *buf, size_t cap)
{
	switch (r->k) {
	case K_CHAN: return shmkit_chan_recv(r->h, buf, cap);
	case K_PUBSUB: return shmkit_pubsub_recv(r->h, buf, cap);
	case K_QUEUE: return shmkit_queue_recv(r->h, buf, cap);
	default: return shmkit_table_get(r->h, "k", 1, buf, cap);
	}
}

/* The role of the second handle of a round trip, and of a read-only one. */
static int reader_role(enum kind k)
{
	return k == K_CHAN || k == K_PUBSUB ? 2 : 0;
}

/* --- options ----------------------------------------------------------------------------- */

/* Unknown flag bits, in the kind's own flags and in the embedded segment flags, and a
 * non-zero reserved word, are -EINVAL at create and at open, in every kind; nothing is
 * left behind. */
START_TEST(test_unknown_bits)
{
	enum kind k = (enum kind)_i;
	char name[64];
	t_name_tracked(name, sizeof name, kind_names[k], SHMKIT_BACKEND_POSIX);
	struct any_opts o;
	struct obj x;
	/* Every bit the kind does not define, one at a time. */
	small(&o, SHMKIT_BACKEND_POSIX);
	uint32_t known = *flags_of(&o, k);
	switch (k) {
	case K_CHAN: known = SHMKIT_CHAN_NO_SPIN; break;
	case K_PUBSUB: known = SHMKIT_PUBSUB_NO_SPIN | SHMKIT_PUBSUB_NO_HISTORY; break;
	case K_QUEUE: known = SHMKIT_QUEUE_NO_SPIN; break;
	default: known = SHMKIT_TABLE_CACHE; break;
	}
	for (int bit = 0; bit < 32; bit++) {
		if (known & (1u << bit))
			continue;
		small(&o, SHMKIT_BACKEND_POSIX);
		*flags_of(&o, k) = 1u << bit;
		ck_assert_msg(obj_make(k, name, -1, true, 1, &o, &x) == -EINVAL, "%s flag bit %d",
			      kind_names[k], bit);
		ck_assert_ptr_null(x.h);
	}
	for (int i = 0; i < 4; i++) {
		small(&o, SHMKIT_BACKEND_POSIX);
		reserved_of(&o, k)[i] = 1;
		ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &x), -EINVAL);
	}
	small(&o, SHMKIT_BACKEND_POSIX);
	seg_of(&o, k)->flags = 0x80000000u;
	ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &x), -EINVAL);
	small(&o, SHMKIT_BACKEND_POSIX);
	seg_of(&o, k)->reserved = 1;
	ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &x), -EINVAL);
	small(&o, SHMKIT_BACKEND_POSIX);
	seg_of(&o, k)->kind = SHMKIT_KIND_RAW; /* another kind's segment */
	ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &x), -EINVAL);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), -ENOENT);

	/* The same at open, against an object that exists. */
	small(&o, SHMKIT_BACKEND_POSIX);
	struct obj made;
	ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &made), 0);
	for (int bit = 0; bit < 32; bit++) {
		if (known & (1u << bit))
			continue;
		small(&o, SHMKIT_BACKEND_POSIX);
		*flags_of(&o, k) = 1u << bit;
		ck_assert_msg(obj_make(k, name, -1, false, reader_role(k), &o, &x) == -EINVAL,
			      "%s open flag bit %d", kind_names[k], bit);
	}
	small(&o, SHMKIT_BACKEND_POSIX);
	reserved_of(&o, k)[3] = 1;
	ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &o, &x), -EINVAL);
	small(&o, SHMKIT_BACKEND_POSIX);
	seg_of(&o, k)->kind = SHMKIT_KIND_RAW;
	ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &o, &x), -EINVAL);
	ck_assert_int_eq(obj_unlink(&made), 0);
	ck_assert_int_eq(obj_close(&made), 0);
}
END_TEST

/* A flag value means one thing in one kind: a call flag passed as an option and an option
 * flag passed to a call are unknown bits there. */
START_TEST(test_flags_disjoint)
{
	ck_assert_uint_eq(SHMKIT_CHAN_MORE & SHMKIT_CHAN_NO_SPIN, 0);
	ck_assert_uint_eq(SHMKIT_PUBSUB_MORE & (SHMKIT_PUBSUB_NO_SPIN | SHMKIT_PUBSUB_NO_HISTORY), 0);
	struct shmkit_chan_opts co = {.capacity = 4096, .flags = SHMKIT_CHAN_MORE};
	co.seg.backend = SHMKIT_BACKEND_MEMFD;
	struct shmkit_chan *ch = NULL;
	ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &co, &ch), -EINVAL);
	co.flags = 0;
	ck_assert_int_eq(shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER, &co, &ch), 0);
	void *p;
	ck_assert_int_eq(shmkit_chan_loan(ch, 8, &p), 0);
	ck_assert_int_eq(shmkit_chan_commit(ch, 8, SHMKIT_CHAN_NO_SPIN), -EINVAL);
	ck_assert_int_eq(shmkit_chan_commit(ch, 8, SHMKIT_CHAN_MORE), 0);
	shmkit_chan_close(ch);

	struct shmkit_pubsub_opts po = {.capacity = 4096, .flags = SHMKIT_PUBSUB_MORE};
	po.seg.backend = SHMKIT_BACKEND_MEMFD;
	struct shmkit_pubsub *ps = NULL;
	ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &po, &ps), -EINVAL);
	po.flags = 0;
	ck_assert_int_eq(shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &po, &ps), 0);
	ck_assert_int_eq(shmkit_pubsub_loan(ps, 8, &p), 0);
	ck_assert_int_eq(shmkit_pubsub_commit(ps, 8, SHMKIT_PUBSUB_NO_SPIN), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_commit(ps, 8, SHMKIT_PUBSUB_NO_HISTORY), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_commit(ps, 8, 0), 0);
	shmkit_pubsub_close(ps);

	/* The waitset: unknown bits and its reserved word. */
	struct shmkit_waitset *ws = NULL;
	struct shmkit_waitset_opts wo = {.flags = 0x100};
	ck_assert_int_eq(shmkit_waitset_create(&wo, &ws), -EINVAL);
	wo = (struct shmkit_waitset_opts){.reserved = 1};
	ck_assert_int_eq(shmkit_waitset_create(&wo, &ws), -EINVAL);
	ck_assert_int_eq(shmkit_waitset_create(NULL, &ws), 0);
	ck_assert_int_eq(shmkit_waitset_close(ws), 0);
	ck_assert_int_eq(shmkit_waitset_close(NULL), 0);
}
END_TEST

/* --- lifecycle ----------------------------------------------------------------------------- */

/* create, open (by name; memfd: by descriptor), a message (or entry) from one handle to
 * the other, a read-only handle, unlink, close — every kind on every backend. After the
 * unlink the name opens no more, and the handles still work. */
START_TEST(test_round_trip)
{
	enum kind k = (enum kind)(_i / T_BACKENDS);
	uint32_t backend = t_backends[_i % T_BACKENDS];
	bool memfd = backend == SHMKIT_BACKEND_MEMFD;
	char name[64];
	t_name_tracked(name, sizeof name, kind_names[k], backend);
	struct any_opts o;
	small(&o, backend);
	struct obj w, r, ro;
	ck_assert_int_eq(obj_make(k, memfd ? NULL : name, -1, true, 1, &o, &w), 0);
	ck_assert_uint_eq(shmkit_segment_backend(obj_seg(&w)), backend);
	int fd = memfd ? shmkit_segment_fd(obj_seg(&w)) : -1;
	ck_assert_int_eq(obj_make(k, name, fd, false, reader_role(k), &o, &r), 0);
	/* Read-only: the one way, SHMKIT_SEG_RDONLY, with "no role" where roles exist. */
	seg_of(&o, k)->flags = SHMKIT_SEG_RDONLY;
	ck_assert_int_eq(obj_make(k, name, fd, false, 0, &o, &ro), 0);
	ck_assert_int_eq(obj_write(&ro), -EPERM);

	ck_assert_int_eq(obj_write(&w), 0);
	char buf[16];
	ck_assert_int_eq(obj_read(&r, buf, sizeof buf), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);

	ck_assert_int_eq(obj_unlink(&w), 0);
	if (!memfd) {
		ck_assert_int_eq(obj_unlink(&r), -ENOENT); /* removed already */
		struct any_opts again;
		small(&again, backend);
		struct obj x;
		ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &again, &x), -ENOENT);
	}
	/* The handles outlive the name. */
	ck_assert_int_eq(obj_write(&w), 0);
	ck_assert_int_eq(obj_read(&r, buf, sizeof buf), 5);
	ck_assert_int_eq(obj_close(&ro), 0);
	ck_assert_int_ge(obj_close(&r), 0);
	ck_assert_int_ge(obj_close(&w), 0);
	struct obj none = {k, NULL};
	ck_assert_int_eq(obj_close(&none), 0);
	ck_assert_int_eq(obj_unlink(&none), -EINVAL);
}
END_TEST

/* The role argument and read-only access go together: "no role" without SHMKIT_SEG_RDONLY,
 * or a role with it, is -EINVAL; so is read-only at creation. */
START_TEST(test_rdonly_one_way)
{
	char name[64];
	t_name_tracked(name, sizeof name, "ro", SHMKIT_BACKEND_POSIX);
	struct any_opts o;
	small(&o, SHMKIT_BACKEND_POSIX);
	struct obj c, p, x;
	ck_assert_int_eq(obj_make(K_CHAN, name, -1, false, 0, &o, &x), -EINVAL);
	ck_assert_int_eq(obj_make(K_CHAN, name, -1, true, 1, &o, &c), 0);
	ck_assert_int_eq(obj_make(K_CHAN, name, -1, false, 0, &o, &x), -EINVAL);
	o.c.seg.flags = SHMKIT_SEG_RDONLY;
	ck_assert_int_eq(obj_make(K_CHAN, name, -1, false, SHMKIT_CHAN_CONSUMER, &o, &x), -EINVAL);
	ck_assert_int_eq(obj_make(K_CHAN, name, -1, false, SHMKIT_CHAN_OBSERVER, &o, &x), 0);
	void *buf;
	ck_assert_int_eq(shmkit_chan_loan(x.h, 8, &buf), -EPERM);
	struct shmkit_chan_stats st;
	ck_assert_int_eq(shmkit_chan_stats(x.h, &st), 0);
	ck_assert_int_eq(st.capacity, 4096);
	obj_close(&x);
	obj_unlink(&c);
	obj_close(&c);

	small(&o, SHMKIT_BACKEND_POSIX);
	ck_assert_int_eq(obj_make(K_PUBSUB, name, -1, true, 1, &o, &p), 0);
	ck_assert_int_eq(obj_make(K_PUBSUB, name, -1, false, 0, &o, &x), -EINVAL);
	o.p.seg.flags = SHMKIT_SEG_RDONLY;
	ck_assert_int_eq(obj_make(K_PUBSUB, name, -1, false, SHMKIT_PUBSUB_SUBSCRIBER, &o, &x),
			 -EINVAL);
	ck_assert_int_eq(obj_make(K_PUBSUB, name, -1, false, SHMKIT_PUBSUB_OBSERVER, &o, &x), 0);
	obj_close(&x);
	obj_unlink(&p);
	obj_close(&p);

	for (int k = 0; k < K_COUNT; k++) {
		small(&o, SHMKIT_BACKEND_POSIX);
		seg_of(&o, k)->flags = SHMKIT_SEG_RDONLY;
		ck_assert_msg(obj_make(k, name, -1, true, k == K_CHAN || k == K_PUBSUB ? 0 : 1, &o,
				       &x) == -EINVAL,
			      "%s created read-only", kind_names[k]);
		ck_assert_msg(obj_make(k, name, -1, true, 1, &o, &x) == -EINVAL,
			      "%s created read-only", kind_names[k]);
	}
}
END_TEST

/* The control block's identity: another layout version is -EPROTO, garbage is -EBADMSG,
 * for the kinds whose control block starts with magic (8 bytes) and version (4). The
 * table's (checksummed) is tested in tests/table.c. */
START_TEST(test_layout)
{
	enum kind k = (enum kind)_i;
	char name[64];
	t_name_tracked(name, sizeof name, kind_names[k], SHMKIT_BACKEND_POSIX);
	struct any_opts o;
	small(&o, SHMKIT_BACKEND_POSIX);
	struct obj w, x;
	ck_assert_int_eq(obj_make(k, name, -1, true, 1, &o, &w), 0);
	uint8_t *ctl = shmkit_segment_data(obj_seg(&w));
	uint32_t version;
	memcpy(&version, ctl + 8, 4);
	uint32_t other = version + 1;
	memcpy(ctl + 8, &other, 4);
	ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &o, &x), -EPROTO);
	memcpy(ctl + 8, &version, 4);
	ctl[0] ^= 0xff;
	ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &o, &x), -EBADMSG);
	ctl[0] ^= 0xff;
	ck_assert_int_eq(obj_make(k, name, -1, false, reader_role(k), &o, &x), 0);
	obj_close(&x);
	obj_unlink(&w);
	obj_close(&w);
}
END_TEST

/* --- errno ------------------------------------------------------------------------------------ */

/* One code per meaning: the caller's buffer too small is -ENOBUFS for every kind (the
 * message stays), larger than the object allows is -EMSGSIZE; shmkit_strerror() says
 * which. */
START_TEST(test_errno_buffers)
{
	for (int k = 0; k < K_COUNT; k++) {
		struct any_opts o;
		small(&o, SHMKIT_BACKEND_MEMFD);
		o.c.max_msg = 64;
		o.p.max_msg = 64;
		o.q.max_msg = 64;
		o.t.key_max = 8;
		o.t.value_max = 64;
		struct obj w, r;
		ck_assert_int_eq(obj_make(k, NULL, -1, true, 1, &o, &w), 0);
		int fd = shmkit_segment_fd(obj_seg(&w));
		ck_assert_int_eq(obj_make(k, NULL, fd, false, reader_role(k), &o, &r), 0);
		ck_assert_int_eq(obj_write(&w), 0);
		char buf[80];
		ck_assert_msg(obj_read(&r, buf, 4) == -ENOBUFS, "%s short buffer", kind_names[k]);
		ck_assert_int_eq(obj_read(&r, buf, sizeof buf), 5); /* it stayed */
		int big;
		switch (k) {
		case K_CHAN: big = shmkit_chan_send(w.h, buf, 65); break;
		case K_PUBSUB: big = shmkit_pubsub_send(w.h, buf, 65); break;
		case K_QUEUE: big = shmkit_queue_send(w.h, buf, 65); break;
		default: big = shmkit_table_put(w.h, "k", 1, buf, 65); break;
		}
		ck_assert_msg(big == -EMSGSIZE, "%s too large: %d", kind_names[k], big);
		obj_close(&r);
		obj_close(&w);
	}
	ck_assert_str_ne(shmkit_strerror(-ENOBUFS), shmkit_strerror(-EMSGSIZE));
	ck_assert_ptr_nonnull(strstr(shmkit_strerror(-ENOBUFS), "buffer"));
}
END_TEST

static Suite *object_suite(void)
{
	Suite *s = suite_create("object");
	TCase *tc = t_tcase(s, "options", 60);
	tcase_add_loop_test(tc, test_unknown_bits, 0, K_COUNT);
	tcase_add_test(tc, test_flags_disjoint);
	tcase_add_test(tc, test_rdonly_one_way);
	tc = t_tcase(s, "lifecycle", 60);
	tcase_add_loop_test(tc, test_round_trip, 0, K_COUNT * T_BACKENDS);
	tcase_add_loop_test(tc, test_layout, 0, K_TABLE);
	tc = t_tcase(s, "errno", 60);
	tcase_add_test(tc, test_errno_buffers);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {object_suite};
	return t_main(makers, 1);
}
