/* shmkit — SHMKIT_0.1 behaviour for binaries built against it (src/compat.h).
 *
 * What changed in SHMKIT_0.2, and how an old call is translated:
 *   - every kind's options struct ends in reserved words (the SHMKIT_0.1 structs below,
 *     shorter, are copied into the new ones, reserved words 0);
 *   - option flags moved to the second byte so that no flag shares a bit with a call flag
 *     of its kind (SHMKIT_0.1: NO_SPIN 0x1, pub/sub NO_HISTORY 0x2); SHMKIT_0.1 ignored
 *     unknown option bits, and so does its translation;
 *   - read-only access is SHMKIT_SEG_RDONLY for every kind (SHMKIT_0.1: the observer role
 *     alone, or SHMKIT_QUEUE_OBSERVER 0x2);
 *   - a receive into a buffer too small is -ENOBUFS (SHMKIT_0.1: -EMSGSIZE);
 *   - shmkit_table_open() takes the table's options (SHMKIT_0.1: the segment's).
 */
#include <errno.h>
#include <string.h>

#include "compat.h"

/* --- the SHMKIT_0.1 option structs and flags (the headers of 0.1) ------------- */

struct v01_chan_opts {
	uint64_t capacity, max_msg;
	uint32_t spin_ns, flags;
	struct shmkit_segment_opts seg;
};

struct v01_pubsub_opts {
	uint64_t capacity, max_msg;
	uint32_t max_subscribers, policy, history, spin_ns, flags, reserved;
	struct shmkit_segment_opts seg;
};

struct v01_queue_opts {
	uint32_t slots, max_members;
	uint64_t max_msg;
	uint32_t spin_ns, flags;
	struct shmkit_segment_opts seg;
};

struct v01_table_opts {
	size_t capacity, key_max, value_max;
	uint32_t flags, ttl_ms, stripes, reserved;
	struct shmkit_segment_opts seg;
};

#define V01_NO_SPIN 0x1u
#define V01_PUBSUB_NO_HISTORY 0x2u
#define V01_QUEUE_OBSERVER 0x2u

/* SHMKIT_0.1 role 0 (observer) was read-only by itself; now it goes with SHMKIT_SEG_RDONLY. */
static void v01_role(int role, struct shmkit_segment_opts *seg)
{
	if (role == 0)
		seg->flags |= SHMKIT_SEG_RDONLY;
}

static ssize_t v01_buf(ssize_t r)
{
	return r == -ENOBUFS ? -EMSGSIZE : r;
}

#define V01(fn) SHMKIT__SYMVER(shmkit__##fn##_v01, shmkit_##fn, SHMKIT_0.1)

/* --- stream channels ------------------------------------------------------------------ */

static const struct shmkit_chan_opts *chan_opts(const struct v01_chan_opts *in, int role,
						struct shmkit_chan_opts *out)
{
	memset(out, 0, sizeof *out);
	if (in) {
		out->capacity = in->capacity;
		out->max_msg = in->max_msg;
		out->spin_ns = in->spin_ns;
		out->flags = in->flags & V01_NO_SPIN ? SHMKIT_CHAN_NO_SPIN : 0;
		out->seg = in->seg;
	}
	v01_role(role, &out->seg);
	return out;
}

SHMKIT__EXPORT int shmkit__chan_create_v01(const char *, int, const struct v01_chan_opts *,
					   struct shmkit_chan **);
SHMKIT__EXPORT int shmkit__chan_open_v01(const char *, int, const struct v01_chan_opts *,
					 struct shmkit_chan **);
SHMKIT__EXPORT int shmkit__chan_open_fd_v01(int, int, const struct v01_chan_opts *,
					    struct shmkit_chan **);
SHMKIT__EXPORT ssize_t shmkit__chan_recv_v01(struct shmkit_chan *, void *, size_t);
SHMKIT__EXPORT ssize_t shmkit__chan_recv_wait_v01(struct shmkit_chan *, void *, size_t,
						  const struct timespec *);

V01(chan_create);
int shmkit__chan_create_v01(const char *name, int role, const struct v01_chan_opts *opts,
			    struct shmkit_chan **chp)
{
	struct shmkit_chan_opts o;
	chan_opts(opts, -1, &o);
	return shmkit__chan_create(name, role, &o, chp);
}

V01(chan_open);
int shmkit__chan_open_v01(const char *name, int role, const struct v01_chan_opts *opts,
			  struct shmkit_chan **chp)
{
	struct shmkit_chan_opts o;
	return shmkit__chan_open(name, role, chan_opts(opts, role, &o), chp);
}

V01(chan_open_fd);
int shmkit__chan_open_fd_v01(int fd, int role, const struct v01_chan_opts *opts,
			     struct shmkit_chan **chp)
{
	struct shmkit_chan_opts o;
	return shmkit__chan_open_fd(fd, role, chan_opts(opts, role, &o), chp);
}

V01(chan_recv);
ssize_t shmkit__chan_recv_v01(struct shmkit_chan *ch, void *buf, size_t cap)
{
	return v01_buf(shmkit__chan_recv(ch, buf, cap));
}

V01(chan_recv_wait);
ssize_t shmkit__chan_recv_wait_v01(struct shmkit_chan *ch, void *buf, size_t cap,
				   const struct timespec *deadline)
{
	return v01_buf(shmkit__chan_recv_wait(ch, buf, cap, deadline));
}

/* --- pub/sub -------------------------------------------------------------------------- */

static const struct shmkit_pubsub_opts *pubsub_opts(const struct v01_pubsub_opts *in, int role,
						    struct shmkit_pubsub_opts *out)
{
	memset(out, 0, sizeof *out);
	if (in) {
		out->capacity = in->capacity;
		out->max_msg = in->max_msg;
		out->max_subscribers = in->max_subscribers;
		out->policy = in->policy;
		out->history = in->history;
		out->spin_ns = in->spin_ns;
		out->flags = (in->flags & V01_NO_SPIN ? SHMKIT_PUBSUB_NO_SPIN : 0) |
			     (in->flags & V01_PUBSUB_NO_HISTORY ? SHMKIT_PUBSUB_NO_HISTORY : 0);
		out->reserved0 = in->reserved;
		out->seg = in->seg;
	}
	v01_role(role, &out->seg);
	return out;
}

SHMKIT__EXPORT int shmkit__pubsub_create_v01(const char *, int, const struct v01_pubsub_opts *,
					     struct shmkit_pubsub **);
SHMKIT__EXPORT int shmkit__pubsub_open_v01(const char *, int, const struct v01_pubsub_opts *,
					   struct shmkit_pubsub **);
SHMKIT__EXPORT int shmkit__pubsub_open_fd_v01(int, int, const struct v01_pubsub_opts *,
					      struct shmkit_pubsub **);
SHMKIT__EXPORT ssize_t shmkit__pubsub_recv_v01(struct shmkit_pubsub *, void *, size_t);
SHMKIT__EXPORT ssize_t shmkit__pubsub_recv_wait_v01(struct shmkit_pubsub *, void *, size_t,
						    const struct timespec *);

V01(pubsub_create);
int shmkit__pubsub_create_v01(const char *name, int role, const struct v01_pubsub_opts *opts,
			      struct shmkit_pubsub **psp)
{
	struct shmkit_pubsub_opts o;
	return shmkit__pubsub_create(name, role, pubsub_opts(opts, -1, &o), psp);
}

V01(pubsub_open);
int shmkit__pubsub_open_v01(const char *name, int role, const struct v01_pubsub_opts *opts,
			    struct shmkit_pubsub **psp)
{
	struct shmkit_pubsub_opts o;
	return shmkit__pubsub_open(name, role, pubsub_opts(opts, role, &o), psp);
}

V01(pubsub_open_fd);
int shmkit__pubsub_open_fd_v01(int fd, int role, const struct v01_pubsub_opts *opts,
			       struct shmkit_pubsub **psp)
{
	struct shmkit_pubsub_opts o;
	return shmkit__pubsub_open_fd(fd, role, pubsub_opts(opts, role, &o), psp);
}

V01(pubsub_recv);
ssize_t shmkit__pubsub_recv_v01(struct shmkit_pubsub *ps, void *buf, size_t cap)
{
	return v01_buf(shmkit__pubsub_recv(ps, buf, cap));
}

V01(pubsub_recv_wait);
ssize_t shmkit__pubsub_recv_wait_v01(struct shmkit_pubsub *ps, void *buf, size_t cap,
				     const struct timespec *deadline)
{
	return v01_buf(shmkit__pubsub_recv_wait(ps, buf, cap, deadline));
}

/* --- work queues ---------------------------------------------------------------------- */

static const struct shmkit_queue_opts *queue_opts(const struct v01_queue_opts *in,
						  struct shmkit_queue_opts *out)
{
	memset(out, 0, sizeof *out);
	if (in) {
		out->slots = in->slots;
		out->max_members = in->max_members;
		out->max_msg = in->max_msg;
		out->spin_ns = in->spin_ns;
		out->flags = in->flags & V01_NO_SPIN ? SHMKIT_QUEUE_NO_SPIN : 0;
		out->seg = in->seg;
		if (in->flags & V01_QUEUE_OBSERVER)
			out->seg.flags |= SHMKIT_SEG_RDONLY;
	}
	return out;
}

SHMKIT__EXPORT int shmkit__queue_create_v01(const char *, const struct v01_queue_opts *,
					    struct shmkit_queue **);
SHMKIT__EXPORT int shmkit__queue_open_v01(const char *, const struct v01_queue_opts *,
					  struct shmkit_queue **);
SHMKIT__EXPORT int shmkit__queue_open_fd_v01(int, const struct v01_queue_opts *,
					     struct shmkit_queue **);
SHMKIT__EXPORT ssize_t shmkit__queue_recv_v01(struct shmkit_queue *, void *, size_t);
SHMKIT__EXPORT ssize_t shmkit__queue_recv_wait_v01(struct shmkit_queue *, void *, size_t,
						   const struct timespec *);

V01(queue_create);
int shmkit__queue_create_v01(const char *name, const struct v01_queue_opts *opts,
			     struct shmkit_queue **qp)
{
	/* SHMKIT_0.1 refused the observer flag at creation. */
	if (opts && (opts->flags & V01_QUEUE_OBSERVER)) {
		if (qp)
			*qp = NULL;
		return -EINVAL;
	}
	struct shmkit_queue_opts o;
	return shmkit__queue_create(name, queue_opts(opts, &o), qp);
}

V01(queue_open);
int shmkit__queue_open_v01(const char *name, const struct v01_queue_opts *opts,
			   struct shmkit_queue **qp)
{
	struct shmkit_queue_opts o;
	return shmkit__queue_open(name, queue_opts(opts, &o), qp);
}

V01(queue_open_fd);
int shmkit__queue_open_fd_v01(int fd, const struct v01_queue_opts *opts, struct shmkit_queue **qp)
{
	struct shmkit_queue_opts o;
	return shmkit__queue_open_fd(fd, queue_opts(opts, &o), qp);
}

V01(queue_recv);
ssize_t shmkit__queue_recv_v01(struct shmkit_queue *q, void *buf, size_t cap)
{
	return v01_buf(shmkit__queue_recv(q, buf, cap));
}

V01(queue_recv_wait);
ssize_t shmkit__queue_recv_wait_v01(struct shmkit_queue *q, void *buf, size_t cap,
				    const struct timespec *deadline)
{
	return v01_buf(shmkit__queue_recv_wait(q, buf, cap, deadline));
}

/* --- tables ----------------------------------------------------------------------------- */

SHMKIT__EXPORT int shmkit__table_create_v01(const char *, const struct v01_table_opts *,
					    struct shmkit_table **);
SHMKIT__EXPORT int shmkit__table_open_v01(const char *, const struct shmkit_segment_opts *,
					  struct shmkit_table **);
SHMKIT__EXPORT int shmkit__table_open_fd_v01(int, const struct shmkit_segment_opts *,
					     struct shmkit_table **);

V01(table_create);
int shmkit__table_create_v01(const char *name, const struct v01_table_opts *opts,
			     struct shmkit_table **tp)
{
	struct shmkit_table_opts o = {0};
	if (opts) {
		o.capacity = opts->capacity;
		o.key_max = opts->key_max;
		o.value_max = opts->value_max;
		o.flags = opts->flags;
		o.ttl_ms = opts->ttl_ms;
		o.stripes = opts->stripes;
		o.reserved0 = opts->reserved;
		o.seg = opts->seg;
	}
	return shmkit__table_create(name, &o, tp);
}

static const struct shmkit_table_opts *table_opts(const struct shmkit_segment_opts *seg,
						  struct shmkit_table_opts *out)
{
	memset(out, 0, sizeof *out);
	if (seg)
		out->seg = *seg;
	return out;
}

V01(table_open);
int shmkit__table_open_v01(const char *name, const struct shmkit_segment_opts *seg,
			   struct shmkit_table **tp)
{
	struct shmkit_table_opts o;
	return shmkit__table_open(name, table_opts(seg, &o), tp);
}

V01(table_open_fd);
int shmkit__table_open_fd_v01(int fd, const struct shmkit_segment_opts *seg,
			      struct shmkit_table **tp)
{
	struct shmkit_table_opts o;
	return shmkit__table_open_fd(fd, table_opts(seg, &o), tp);
}
