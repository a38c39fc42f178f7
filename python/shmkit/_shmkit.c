/* shmkit._shmkit — the CPython extension behind `import shmkit`.
 *
 * Written against the public libshmkit API only (the headers in include/shmkit/). Four C types:
 *
 *   Endpoint  a stream channel end, a pub/sub publisher or subscriber, or a work-queue
 *             handle: one struct, the kind chosen when it attaches (the Python classes
 *             Channel, Publisher, Subscriber and Queue in shmkit/__init__.py subclass it).
 *   View      one zero-copy loan or peek: exports the message's bytes in shared memory
 *             through the buffer protocol, and counts its exports, so that the ring space
 *             is committed or released only when no memoryview (nor numpy array) of it is
 *             left: a view used after its block raises, it never reads freed ring space.
 *   TableBase the shared table; shmkit.Table adds the mapping protocol on top.
 *   WaitSet   many consumers at once.
 *
 * Blocking: every wait first tries the non-blocking call with the GIL held (the common,
 * fast case), then waits with the GIL released in slices of SLICE_NS, checking for
 * Python signals between slices and whenever the library returns -EINTR, so Ctrl-C
 * raises KeyboardInterrupt promptly whatever the timeout. A slice ending is a
 * -ETIMEDOUT of the library's own wait, which also looks at the peer's liveness then,
 * so a dead peer is still reported within the library's 100 ms.
 *
 * Threads: a shmkit handle is used by one thread at a time; `busy` refuses a second
 * thread that would enter a handle whose GIL-free wait is in progress.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <shmkit.h>

/* How long one GIL-free wait lasts before signals are checked again. */
#define SLICE_NS 100000000ull

enum kind {
	K_CHAN = SHMKIT_KIND_STREAM,
	K_PUBSUB = SHMKIT_KIND_PUBSUB,
	K_QUEUE = SHMKIT_KIND_QUEUE,
};

static PyObject *Error, *PeerDeadError, *CorruptError, *StaleError, *BusyError;

/* --- errors ------------------------------------------------------------------------------ */

/* Raises the exception a negative errno means, with the errno kept and the message of
 * shmkit_strerror() prefixed by the object's name. Returns NULL. */
static PyObject *raise_err(int err, PyObject *name)
{
	int e = err < 0 ? -err : err;
	PyObject *type;
	switch (e) {
	case EPIPE:
	case ECONNABORTED:
		type = PyExc_EOFError;
		break;
	case ETIMEDOUT:
		type = PyExc_TimeoutError;
		break;
	case EOWNERDEAD:
		type = PeerDeadError;
		break;
	case EBADMSG:
		type = CorruptError;
		break;
	case ESTALE:
		type = StaleError;
		break;
	case EBUSY:
		type = BusyError;
		break;
	case EPERM:
	case EACCES:
		type = PyExc_PermissionError;
		break;
	case ENOENT:
		type = PyExc_FileNotFoundError;
		break;
	case EEXIST:
		type = PyExc_FileExistsError;
		break;
	case EAGAIN:
		type = PyExc_BlockingIOError;
		break;
	case EINTR:
		type = PyExc_InterruptedError;
		break;
	default:
		type = Error;
	}
	PyObject *msg = name && name != Py_None
				? PyUnicode_FromFormat("%S: %s", name, shmkit_strerror(e))
				: PyUnicode_FromString(shmkit_strerror(e));
	if (!msg)
		return NULL;
	PyObject *exc;
	if (type == PyExc_EOFError) {
		exc = PyObject_CallOneArg(type, msg);
		if (exc) {
			PyObject *no = PyLong_FromLong(e);
			if (!no || PyObject_SetAttrString(exc, "errno", no) < 0)
				Py_CLEAR(exc);
			Py_XDECREF(no);
		}
	} else {
		exc = PyObject_CallFunction(type, "iO", e, msg);
	}
	Py_DECREF(msg);
	if (exc) {
		PyErr_SetObject(type, exc);
		Py_DECREF(exc);
	}
	return NULL;
}

/* --- timeouts ---------------------------------------------------------------------------- */

/* timeout= as seconds (None = forever) into an absolute CLOCK_MONOTONIC end in ns
 * (UINT64_MAX = forever). Returns 0 or -1 with an exception set. */
static int parse_timeout(PyObject *t, uint64_t *end)
{
	if (!t || t == Py_None) {
		*end = UINT64_MAX;
		return 0;
	}
	double s = PyFloat_AsDouble(t);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (s != s || s < 0) {
		PyErr_SetString(PyExc_ValueError, "timeout must be a non-negative number or None");
		return -1;
	}
	if (s > 1e9) {
		*end = UINT64_MAX;
		return 0;
	}
	*end = shmkit_now_ns() + (uint64_t)(s * 1e9);
	return 0;
}

static void ns_to_ts(uint64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000u);
	ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Runs op(ctx, deadline) with the GIL released until it returns something other than a
 * slice's -ETIMEDOUT or -EINTR; between slices, Python's signal handlers run (a
 * KeyboardInterrupt ends the wait: returns INT_MIN with the exception set). */
#define WAIT_PYERR INT32_MIN
static int wait_sliced(int (*op)(void *ctx, const struct timespec *dl), void *ctx, uint64_t end)
{
	for (;;) {
		uint64_t now = shmkit_now_ns();
		uint64_t slice = now + SLICE_NS;
		int final = end <= slice;
		struct timespec ts;
		ns_to_ts(final ? end : slice, &ts);
		int rc;
		Py_BEGIN_ALLOW_THREADS
		rc = op(ctx, &ts);
		Py_END_ALLOW_THREADS
		if (rc == -EINTR || (rc == -ETIMEDOUT && !final)) {
			if (PyErr_CheckSignals() < 0)
				return WAIT_PYERR;
			continue;
		}
		return rc;
	}
}

/* --- Endpoint ---------------------------------------------------------------------------- */

typedef struct View View;

typedef struct {
	PyObject_HEAD
	int kind; /* 0 until attached */
	int role;
	void *h;
	PyObject *name;
	View *pending; /* the loan or peek in progress (borrowed: the View holds us) */
	int busy;      /* a GIL-free wait is in progress */
	int in_ws;     /* waitsets holding this handle */
	PyObject *ws_async; /* the private waitset of recv_async (shmkit/__init__.py) */
	PyObject *weakrefs;
} Endpoint;

struct View {
	PyObject_HEAD
	Endpoint *ep;
	char *buf;
	Py_ssize_t len;
	Py_ssize_t nbytes; /* loan: bytes to commit */
	int readonly;      /* 1: a peek, 0: a loan */
	int done;
	Py_ssize_t exports;
	PyObject *mv;
};

static PyTypeObject EndpointType, ViewType;

/* 0, or -1 with ValueError when the handle is closed. */
static int ep_open(Endpoint *e)
{
	if (e->h)
		return 0;
	PyErr_SetString(PyExc_ValueError, "operation on a closed shmkit handle");
	return -1;
}

/* ep_open(), and nobody else in the handle: no GIL-free wait of another thread, no loan
 * or peek still open. */
static int ep_check(Endpoint *e)
{
	if (ep_open(e) < 0)
		return -1;
	if (e->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"shmkit handle in use by another thread (one thread at a time)");
		return -1;
	}
	if (e->pending) {
		PyErr_SetString(PyExc_BufferError,
				"a loan or peek of this handle is still open: end its with block");
		return -1;
	}
	return 0;
}

/* The kind-generic operations. */
static int op_loan(Endpoint *e, size_t len, void **buf, const struct timespec *dl, int wait)
{
	switch (e->kind) {
	case K_CHAN:
		return wait ? shmkit_chan_loan_wait(e->h, len, buf, dl) : shmkit_chan_loan(e->h, len, buf);
	case K_PUBSUB:
		return wait ? shmkit_pubsub_loan_wait(e->h, len, buf, dl)
			    : shmkit_pubsub_loan(e->h, len, buf);
	default:
		if (len > shmkit_queue_max_msg(e->h))
			return -EMSGSIZE;
		return wait ? shmkit_queue_loan_wait(e->h, buf, dl) : shmkit_queue_loan(e->h, buf);
	}
}

static int op_commit(Endpoint *e, size_t len)
{
	switch (e->kind) {
	case K_CHAN:
		return shmkit_chan_commit(e->h, len, 0);
	case K_PUBSUB:
		return shmkit_pubsub_commit(e->h, len, 0);
	default:
		return shmkit_queue_commit(e->h, len);
	}
}

/* A stream or pub/sub loan that is never committed is simply replaced by the next one. */
static int op_cancel(Endpoint *e)
{
	return e->kind == K_QUEUE ? shmkit_queue_cancel(e->h) : 0;
}

/* Peek; a pub/sub -ESTALE (messages lost in overwrite mode: counted in `lost`) is not an
 * error here, the next peek returns the oldest message still valid. */
static int op_peek(Endpoint *e, const void **buf, size_t *len, const struct timespec *dl, int wait)
{
	int rc;
	switch (e->kind) {
	case K_CHAN:
		return wait ? shmkit_chan_peek_wait(e->h, buf, len, dl) : shmkit_chan_peek(e->h, buf, len);
	case K_PUBSUB:
		do
			rc = wait ? shmkit_pubsub_peek_wait(e->h, buf, len, dl)
				  : shmkit_pubsub_peek(e->h, buf, len);
		while (rc == -ESTALE);
		return rc;
	default:
		return wait ? shmkit_queue_peek_wait(e->h, buf, len, dl) : shmkit_queue_peek(e->h, buf, len);
	}
}

static int op_release(Endpoint *e)
{
	switch (e->kind) {
	case K_CHAN:
		return shmkit_chan_release(e->h, 0);
	case K_PUBSUB:
		return shmkit_pubsub_release(e->h, 0);
	default:
		return shmkit_queue_release(e->h);
	}
}

static struct shmkit_segment *op_segment(Endpoint *e)
{
	switch (e->kind) {
	case K_CHAN:
		return shmkit_chan_segment(e->h);
	case K_PUBSUB:
		return shmkit_pubsub_segment(e->h);
	default:
		return shmkit_queue_segment(e->h);
	}
}

/* The library's copying send: it copies large messages in pieces that keep clear of the C
 * library's non-temporal-store cliff, which a plain memcpy into a loan does not. */
static int op_send(Endpoint *e, const void *buf, size_t len, const struct timespec *dl, int wait)
{
	switch (e->kind) {
	case K_CHAN:
		return wait ? shmkit_chan_send_wait(e->h, buf, len, dl) : shmkit_chan_send(e->h, buf, len);
	case K_PUBSUB:
		return wait ? shmkit_pubsub_send_wait(e->h, buf, len, dl)
			    : shmkit_pubsub_send(e->h, buf, len);
	default:
		return wait ? shmkit_queue_send_wait(e->h, buf, len, dl) : shmkit_queue_send(e->h, buf, len);
	}
}

/* The library's copying receive of the message just peeked (a peek again returns it). */
static ssize_t op_recv(Endpoint *e, void *buf, size_t cap)
{
	switch (e->kind) {
	case K_CHAN:
		return shmkit_chan_recv(e->h, buf, cap);
	case K_PUBSUB:
		return shmkit_pubsub_recv(e->h, buf, cap);
	default:
		return shmkit_queue_recv(e->h, buf, cap);
	}
}

struct io_ctx {
	Endpoint *e;
	size_t len;
	void *wbuf;
	const void *rbuf;
	size_t rlen;
	const void *sbuf; /* send: the bytes to copy in */
};

static int send_op(void *p, const struct timespec *dl)
{
	struct io_ctx *c = p;
	return op_send(c->e, c->sbuf, c->len, dl, 1);
}

static int loan_op(void *p, const struct timespec *dl)
{
	struct io_ctx *c = p;
	return op_loan(c->e, c->len, &c->wbuf, dl, 1);
}

static int peek_op(void *p, const struct timespec *dl)
{
	struct io_ctx *c = p;
	return op_peek(c->e, &c->rbuf, &c->rlen, dl, 1);
}

/* Loans (write) or peeks (read) with a timeout: 0, a negative errno, or WAIT_PYERR. */
static int ep_wait(Endpoint *e, struct io_ctx *c, int write, PyObject *timeout)
{
	int rc = write ? op_loan(e, c->len, &c->wbuf, NULL, 0) : op_peek(e, &c->rbuf, &c->rlen, NULL, 0);
	if (rc != -EAGAIN)
		return rc;
	uint64_t end;
	if (parse_timeout(timeout, &end) < 0)
		return WAIT_PYERR;
	e->busy = 1;
	rc = wait_sliced(write ? loan_op : peek_op, c, end);
	e->busy = 0;
	return rc;
}

static PyObject *ep_fail(Endpoint *e, int rc)
{
	if (rc == WAIT_PYERR)
		return NULL;
	return raise_err(rc, e->name);
}

static void ep_close_handle(Endpoint *e, int abort)
{
	void *h = e->h;
	e->h = NULL;
	switch (e->kind) {
	case K_CHAN:
		if (abort)
			shmkit_chan_abort(h);
		else
			shmkit_chan_close(h);
		break;
	case K_PUBSUB:
		shmkit_pubsub_close(h);
		break;
	case K_QUEUE:
		shmkit_queue_close(h);
		break;
	}
}

static int ep_traverse(Endpoint *e, visitproc visit, void *arg)
{
	Py_VISIT(e->ws_async);
	return 0;
}

static int ep_clear(Endpoint *e)
{
	Py_CLEAR(e->ws_async);
	return 0;
}

static void ep_dealloc(Endpoint *e)
{
	PyObject_GC_UnTrack(e);
	if (e->weakrefs)
		PyObject_ClearWeakRefs((PyObject *)e);
	Py_CLEAR(e->ws_async);
	/* No View can be pending here: a View holds a reference to its endpoint. */
	if (e->h)
		ep_close_handle(e, 0);
	Py_CLEAR(e->name);
	Py_TYPE(e)->tp_free(e);
}

static int role_of(PyObject *r, int kind, int *role)
{
	if (PyLong_Check(r)) {
		*role = (int)PyLong_AsLong(r);
		return 0;
	}
	const char *s = PyUnicode_Check(r) ? PyUnicode_AsUTF8(r) : NULL;
	if (!s)
		goto bad;
	if (kind == K_CHAN && !strcmp(s, "producer"))
		*role = SHMKIT_CHAN_PRODUCER;
	else if (kind == K_CHAN && !strcmp(s, "consumer"))
		*role = SHMKIT_CHAN_CONSUMER;
	else if (kind == K_PUBSUB && !strcmp(s, "publisher"))
		*role = SHMKIT_PUBSUB_PUBLISHER;
	else if (kind == K_PUBSUB && !strcmp(s, "subscriber"))
		*role = SHMKIT_PUBSUB_SUBSCRIBER;
	else if (!strcmp(s, "observer"))
		*role = 0;
	else
		goto bad;
	return 0;
bad:
	PyErr_Format(PyExc_ValueError, "bad role %R", r);
	return -1;
}

/* Endpoint._attach(kind, name, role, create, fd, **options): creates or opens. The
 * options are the C option structs' fields, 0 meaning the C default. */
static PyObject *ep_attach(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"kind", "name", "role", "create", "fd", "capacity", "max_msg",
				 "spin_ns", "flags", "policy", "history", "max_subscribers",
				 "slots", "max_members", "backend", "mode", "seg_flags",
				 "sysv_key", NULL};
	int kind, create = 0, fd = -1;
	PyObject *name, *rolep;
	unsigned long long capacity = 0, max_msg = 0;
	unsigned int spin_ns = 0, flags = 0, policy = 0, history = 0, max_subs = 0, slots = 0,
		     max_members = 0, backend = 0, mode = 0, seg_flags = 0;
	int sysv_key = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "iOO|pi$KKIIIIIIIIIIi", kwlist, &kind, &name,
					 &rolep, &create, &fd, &capacity, &max_msg, &spin_ns,
					 &flags, &policy, &history, &max_subs, &slots,
					 &max_members, &backend, &mode, &seg_flags, &sysv_key))
		return NULL;
	if (e->h) {
		PyErr_SetString(PyExc_ValueError, "handle already attached");
		return NULL;
	}
	if (kind != K_CHAN && kind != K_PUBSUB && kind != K_QUEUE) {
		PyErr_SetString(PyExc_ValueError, "bad kind");
		return NULL;
	}
	int role = 0;
	if (kind != K_QUEUE && role_of(rolep, kind, &role) < 0)
		return NULL;
	const char *cname = NULL;
	if (name != Py_None && !(cname = PyUnicode_AsUTF8(name)))
		return NULL;
	struct shmkit_segment_opts seg = {.backend = backend, .mode = mode, .flags = seg_flags,
					  .sysv_key = sysv_key};
	void *h = NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	if (kind == K_CHAN) {
		struct shmkit_chan_opts o = {.capacity = capacity, .max_msg = max_msg,
					     .spin_ns = spin_ns, .flags = flags, .seg = seg};
		struct shmkit_chan *c;
		rc = fd >= 0 ? shmkit_chan_open_fd(fd, role, &o, &c)
		     : create ? shmkit_chan_create(cname, role, &o, &c)
			      : shmkit_chan_open(cname, role, &o, &c);
		h = c;
	} else if (kind == K_PUBSUB) {
		struct shmkit_pubsub_opts o = {.capacity = capacity, .max_msg = max_msg,
					       .max_subscribers = max_subs, .policy = policy,
					       .history = history, .spin_ns = spin_ns,
					       .flags = flags, .seg = seg};
		struct shmkit_pubsub *p;
		rc = fd >= 0 ? shmkit_pubsub_open_fd(fd, role, &o, &p)
		     : create ? shmkit_pubsub_create(cname, role, &o, &p)
			      : shmkit_pubsub_open(cname, role, &o, &p);
		h = p;
	} else {
		struct shmkit_queue_opts o = {.slots = slots, .max_members = max_members,
					      .max_msg = max_msg, .spin_ns = spin_ns,
					      .flags = flags, .seg = seg};
		struct shmkit_queue *q;
		rc = fd >= 0 ? shmkit_queue_open_fd(fd, &o, &q)
		     : create ? shmkit_queue_create(cname, &o, &q)
			      : shmkit_queue_open(cname, &o, &q);
		h = q;
	}
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return raise_err(rc, name);
	e->kind = kind;
	e->role = role;
	e->h = h;
	const char *nm = shmkit_segment_name(op_segment(e));
	Py_XSETREF(e->name, PyUnicode_FromString(nm ? nm : ""));
	if (!e->name)
		PyErr_Clear();
	Py_RETURN_NONE;
}

static int ep_pending_finish(Endpoint *e);

static PyObject *ep_close_common(Endpoint *e, int abort)
{
	if (!e->h)
		Py_RETURN_NONE;
	if (e->busy) {
		PyErr_SetString(PyExc_RuntimeError, "shmkit handle in use by another thread");
		return NULL;
	}
	if (e->in_ws) {
		PyErr_SetString(PyExc_RuntimeError,
				"handle is a member of a WaitSet: remove it (or close the WaitSet) first");
		return NULL;
	}
	if (e->pending && ep_pending_finish(e) < 0)
		return NULL;
	ep_close_handle(e, abort);
	Py_RETURN_NONE;
}

static PyObject *ep_close(Endpoint *e, PyObject *unused)
{
	(void)unused;
	return ep_close_common(e, 0);
}

static PyObject *ep_abort(Endpoint *e, PyObject *unused)
{
	(void)unused;
	return ep_close_common(e, 1);
}

static PyObject *ep_unlink(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	int rc = e->kind == K_CHAN     ? shmkit_chan_unlink(e->h)
		 : e->kind == K_PUBSUB ? shmkit_pubsub_unlink(e->h)
				       : shmkit_queue_unlink(e->h);
	if (rc < 0)
		return raise_err(rc, e->name);
	Py_RETURN_NONE;
}

static PyObject *ep_enter(PyObject *self, PyObject *unused)
{
	(void)unused;
	return Py_NewRef(self);
}

static PyObject *ep_exit(Endpoint *e, PyObject *args)
{
	(void)args;
	return ep_close_common(e, 0);
}

/* send(data, timeout=None): one message, copied in. */
static PyObject *ep_send(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"data", "timeout", NULL};
	Py_buffer b;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|O", kwlist, &b, &timeout))
		return NULL;
	if (ep_check(e) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	struct io_ctx c = {.e = e, .len = (size_t)b.len, .sbuf = b.buf};
	int rc = op_send(e, b.buf, (size_t)b.len, NULL, 0);
	if (rc == -EAGAIN) {
		uint64_t end;
		if (parse_timeout(timeout, &end) < 0) {
			rc = WAIT_PYERR;
		} else {
			e->busy = 1;
			rc = wait_sliced(send_op, &c, end);
			e->busy = 0;
		}
	}
	PyBuffer_Release(&b);
	if (rc < 0)
		return ep_fail(e, rc);
	Py_RETURN_NONE;
}

/* recv(timeout=None) -> bytes. */
static PyObject *ep_recv(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &timeout))
		return NULL;
	if (ep_check(e) < 0)
		return NULL;
	for (;;) {
		struct io_ctx c = {.e = e};
		int rc = ep_wait(e, &c, 0, timeout);
		if (rc < 0)
			return ep_fail(e, rc);
		PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)c.rlen);
		if (!out)
			return NULL;
		ssize_t n = op_recv(e, PyBytes_AS_STRING(out), c.rlen);
		if (n == -ESTALE) { /* overwritten while copied (pub/sub overwrite mode) */
			Py_DECREF(out);
			continue;
		}
		if (n < 0) {
			Py_DECREF(out);
			return raise_err((int)n, e->name);
		}
		if ((size_t)n != c.rlen && _PyBytes_Resize(&out, n) < 0)
			return NULL;
		return out;
	}
}

/* recv_into(buffer, timeout=None) -> int: copies the next message into a writable buffer. */
static PyObject *ep_recv_into(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"buffer", "timeout", NULL};
	Py_buffer b;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "w*|O", kwlist, &b, &timeout))
		return NULL;
	if (ep_check(e) < 0) {
		PyBuffer_Release(&b);
		return NULL;
	}
	for (;;) {
		struct io_ctx c = {.e = e};
		int rc = ep_wait(e, &c, 0, timeout);
		/* Too long: the message stays (peeked) for a call with a larger buffer. */
		if (rc == 0 && c.rlen > (size_t)b.len)
			rc = -ENOBUFS;
		if (rc < 0) {
			PyBuffer_Release(&b);
			return ep_fail(e, rc);
		}
		ssize_t n = op_recv(e, b.buf, (size_t)b.len);
		if (n == -ESTALE)
			continue;
		PyBuffer_Release(&b);
		if (n < 0)
			return raise_err((int)n, e->name);
		return PyLong_FromSsize_t(n);
	}
}

static View *view_new(Endpoint *e, void *buf, size_t len, int readonly)
{
	View *v = PyObject_GC_New(View, &ViewType);
	if (!v)
		return NULL;
	v->ep = (Endpoint *)Py_NewRef(e);
	v->buf = buf;
	v->len = (Py_ssize_t)len;
	v->nbytes = (Py_ssize_t)len;
	v->readonly = readonly;
	v->done = 0;
	v->exports = 0;
	v->mv = NULL;
	e->pending = v;
	PyObject_GC_Track(v);
	return v;
}

/* loan(size, timeout=None) -> View: `with ch.loan(n) as buf:` gives a writable memoryview
 * of n bytes in the ring; normal exit commits, an exception cancels. */
static PyObject *ep_loan(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"size", "timeout", NULL};
	Py_ssize_t n;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "n|O", kwlist, &n, &timeout))
		return NULL;
	if (n < 0) {
		PyErr_SetString(PyExc_ValueError, "negative size");
		return NULL;
	}
	if (ep_check(e) < 0)
		return NULL;
	struct io_ctx c = {.e = e, .len = (size_t)n};
	int rc = ep_wait(e, &c, 1, timeout);
	if (rc < 0)
		return ep_fail(e, rc);
	View *v = view_new(e, c.wbuf, (size_t)n, 0);
	if (!v)
		op_cancel(e);
	return (PyObject *)v;
}

/* peek(timeout=None) -> View: `with sub.peek() as msg:` gives a read-only memoryview of
 * the next message in place; the message is released when the block ends. */
static PyObject *ep_peek(Endpoint *e, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &timeout))
		return NULL;
	if (ep_check(e) < 0)
		return NULL;
	struct io_ctx c = {.e = e};
	int rc = ep_wait(e, &c, 0, timeout);
	if (rc < 0)
		return ep_fail(e, rc);
	return (PyObject *)view_new(e, (void *)c.rbuf, c.rlen, 1);
}

static PyObject *ep_fileno(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	int fd = shmkit_segment_fd(op_segment(e));
	if (fd < 0)
		return raise_err(fd, e->name);
	return PyLong_FromLong(fd);
}

/* mapping() -> (address, size): the caller's data area of the segment, for tests and
 * tools that check that a view lies in shared memory. */
static PyObject *ep_mapping(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	struct shmkit_segment *s = op_segment(e);
	return Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)shmkit_segment_data(s),
			     (Py_ssize_t)shmkit_segment_size(s));
}

static PyObject *ep_peer_alive(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (!e->h || e->kind == K_QUEUE) {
		PyErr_SetString(PyExc_ValueError, "no peer to ask about");
		return NULL;
	}
	int r = e->kind == K_CHAN ? shmkit_chan_peer_alive(e->h) : shmkit_pubsub_peer_alive(e->h);
	return PyLong_FromLong(r);
}

#define SET_U(d, st, f)                                                                    \
	do {                                                                               \
		PyObject *v_ = PyLong_FromUnsignedLongLong((unsigned long long)(st).f);   \
		if (!v_ || PyDict_SetItemString(d, #f, v_) < 0) {                          \
			Py_XDECREF(v_);                                                    \
			Py_DECREF(d);                                                      \
			return NULL;                                                       \
		}                                                                          \
		Py_DECREF(v_);                                                             \
	} while (0)
#define SET_I(d, st, f)                                                                    \
	do {                                                                               \
		PyObject *v_ = PyLong_FromLongLong((long long)(st).f);                     \
		if (!v_ || PyDict_SetItemString(d, #f, v_) < 0) {                          \
			Py_XDECREF(v_);                                                    \
			Py_DECREF(d);                                                      \
			return NULL;                                                       \
		}                                                                          \
		Py_DECREF(v_);                                                             \
	} while (0)

static PyObject *ep_stats(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	PyObject *d = PyDict_New();
	if (!d)
		return NULL;
	if (e->kind == K_CHAN) {
		struct shmkit_chan_stats s;
		shmkit_chan_stats(e->h, &s);
		SET_U(d, s, capacity); SET_U(d, s, max_msg); SET_U(d, s, fill);
		SET_U(d, s, msgs_sent); SET_U(d, s, bytes_sent); SET_U(d, s, msgs_recv);
		SET_U(d, s, bytes_recv); SET_U(d, s, producer_sleeps); SET_U(d, s, consumer_sleeps);
		SET_U(d, s, producer_wakes); SET_U(d, s, consumer_wakes);
		SET_I(d, s, producer_pid); SET_I(d, s, consumer_pid); SET_I(d, s, producer_alive);
		SET_I(d, s, consumer_alive); SET_I(d, s, closed); SET_I(d, s, reader_closed);
	} else if (e->kind == K_PUBSUB) {
		struct shmkit_pubsub_stats s;
		shmkit_pubsub_stats(e->h, &s);
		SET_U(d, s, capacity); SET_U(d, s, max_msg); SET_U(d, s, policy);
		SET_U(d, s, max_subscribers); SET_U(d, s, history); SET_U(d, s, subscribers);
		SET_U(d, s, next_seq); SET_U(d, s, msgs_published); SET_U(d, s, bytes_published);
		SET_U(d, s, publisher_sleeps); SET_U(d, s, publisher_wakes);
		SET_U(d, s, subscribers_dropped); SET_I(d, s, publisher_pid);
		SET_I(d, s, publisher_alive); SET_I(d, s, closed);
	} else {
		struct shmkit_queue_stats s;
		shmkit_queue_stats(e->h, &s);
		SET_U(d, s, slots); SET_U(d, s, slot_size); SET_U(d, s, max_msg); SET_U(d, s, fill);
		SET_U(d, s, max_members); SET_U(d, s, members); SET_U(d, s, msgs_sent);
		SET_U(d, s, bytes_sent); SET_U(d, s, msgs_recv); SET_U(d, s, bytes_recv);
		SET_U(d, s, producer_sleeps); SET_U(d, s, consumer_sleeps); SET_U(d, s, wakes);
		SET_U(d, s, redelivered); SET_U(d, s, skipped); SET_U(d, s, recovered_members);
	}
	return d;
}

/* Pub/sub: [dict] for every held subscriber slot (alive or dead), in slot order. */
static PyObject *ep_subscribers(Endpoint *e, PyObject *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	if (e->kind != K_PUBSUB) {
		PyErr_SetString(PyExc_TypeError, "subscribers() of a pub/sub handle only");
		return NULL;
	}
	struct shmkit_pubsub_stats st;
	shmkit_pubsub_stats(e->h, &st);
	size_t cap = st.max_subscribers ? st.max_subscribers : 1;
	struct shmkit_pubsub_sub_stats *subs = PyMem_Calloc(cap, sizeof *subs);
	if (!subs)
		return PyErr_NoMemory();
	int held = shmkit_pubsub_subscribers(e->h, subs, cap);
	PyObject *l = PyList_New(0);
	for (int i = 0; l && i < held && (size_t)i < cap; i++) {
		PyObject *d = PyDict_New();
		if (!d) {
			Py_CLEAR(l);
			break;
		}
		const struct shmkit_pubsub_sub_stats *x = &subs[i];
#define SUB_FIELDS(X) X(slot) X(pid) X(alive) X(joining) X(lag) X(lag_bytes) X(msgs) X(bytes) \
	X(lost) X(sleeps)
#define SUB_SET(f)                                                                         \
		if (d) {                                                                   \
			PyObject *v_ = PyLong_FromLongLong((long long)x->f);               \
			if (!v_ || PyDict_SetItemString(d, #f, v_) < 0)                    \
				Py_CLEAR(d);                                               \
			Py_XDECREF(v_);                                                    \
		}
		SUB_FIELDS(SUB_SET)
#undef SUB_SET
#undef SUB_FIELDS
		if (!d || PyList_Append(l, d) < 0)
			Py_CLEAR(l);
		Py_XDECREF(d);
	}
	PyMem_Free(subs);
	return l;
}

static PyObject *ep_get_max_msg(Endpoint *e, void *unused)
{
	(void)unused;
	if (ep_open(e) < 0)
		return NULL;
	size_t m = e->kind == K_CHAN     ? shmkit_chan_max_msg(e->h)
		   : e->kind == K_PUBSUB ? shmkit_pubsub_max_msg(e->h)
					 : shmkit_queue_max_msg(e->h);
	return PyLong_FromSize_t(m);
}

static PyObject *ep_get_lost(Endpoint *e, void *unused)
{
	(void)unused;
	if (!e->h || e->kind != K_PUBSUB)
		return PyLong_FromLong(0);
	return PyLong_FromUnsignedLongLong(shmkit_pubsub_lost(e->h, NULL));
}

static PyObject *ep_get_closed(Endpoint *e, void *unused)
{
	(void)unused;
	return PyBool_FromLong(e->h == NULL);
}

static PyObject *ep_get_kind(Endpoint *e, void *unused)
{
	(void)unused;
	return PyLong_FromLong(e->kind);
}

static PyObject *ep_get_role(Endpoint *e, void *unused)
{
	(void)unused;
	return PyLong_FromLong(e->role);
}

static PyObject *ep_get_ws_async(Endpoint *e, void *unused)
{
	(void)unused;
	return Py_NewRef(e->ws_async ? e->ws_async : Py_None);
}

static int ep_set_ws_async(Endpoint *e, PyObject *v, void *unused)
{
	(void)unused;
	Py_XSETREF(e->ws_async, v && v != Py_None ? Py_NewRef(v) : NULL);
	return 0;
}

static PyMethodDef ep_methods[] = {
	{"_attach", (PyCFunction)(void (*)(void))ep_attach, METH_VARARGS | METH_KEYWORDS, NULL},
	{"close", (PyCFunction)ep_close, METH_NOARGS,
	 "Close this end (a producer/publisher marks the end of the stream)."},
	{"abort", (PyCFunction)ep_abort, METH_NOARGS,
	 "Stream producer: close, marking the stream as cut short (the consumer gets EOFError "
	 "with errno ECONNABORTED)."},
	{"unlink", (PyCFunction)ep_unlink, METH_NOARGS,
	 "Remove the object's name; open handles keep working."},
	{"send", (PyCFunction)(void (*)(void))ep_send, METH_VARARGS | METH_KEYWORDS,
	 "send(data, timeout=None): send one message (a bytes-like object), copied in."},
	{"recv", (PyCFunction)(void (*)(void))ep_recv, METH_VARARGS | METH_KEYWORDS,
	 "recv(timeout=None) -> bytes: receive the next message (a copy)."},
	{"recv_into", (PyCFunction)(void (*)(void))ep_recv_into, METH_VARARGS | METH_KEYWORDS,
	 "recv_into(buffer, timeout=None) -> int: copy the next message into a writable buffer."},
	{"loan", (PyCFunction)(void (*)(void))ep_loan, METH_VARARGS | METH_KEYWORDS,
	 "loan(size, timeout=None): `with h.loan(n) as buf:` -- a writable memoryview into "
	 "shared memory; committed on normal exit, cancelled on an exception."},
	{"peek", (PyCFunction)(void (*)(void))ep_peek, METH_VARARGS | METH_KEYWORDS,
	 "peek(timeout=None): `with h.peek() as msg:` -- a read-only memoryview of the next "
	 "message in place; released when the block ends."},
	{"fileno", (PyCFunction)ep_fileno, METH_NOARGS,
	 "The segment's descriptor (POSIX, memfd), for passing to another process."},
	{"mapping", (PyCFunction)ep_mapping, METH_NOARGS,
	 "(address, size) of the segment's data area in this process."},
	{"peer_alive", (PyCFunction)ep_peer_alive, METH_NOARGS,
	 "Channel/subscriber: 1 when the peer is attached and alive; publisher: live subscribers."},
	{"stats", (PyCFunction)ep_stats, METH_NOARGS, "The shared counters, as a dict."},
	{"subscribers", (PyCFunction)ep_subscribers, METH_NOARGS,
	 "Pub/sub: one dict per held subscriber slot (slot, pid, alive, joining, lag, "
	 "lag_bytes, msgs, bytes, lost, sleeps)."},
	{"__enter__", ep_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)ep_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef ep_getset[] = {
	{"max_msg", (getter)ep_get_max_msg, NULL, "Largest message.", NULL},
	{"lost", (getter)ep_get_lost, NULL, "Subscriber: messages lost (overwrite mode).", NULL},
	{"closed", (getter)ep_get_closed, NULL, "Whether close() was called.", NULL},
	{"_kind", (getter)ep_get_kind, NULL, NULL, NULL},
	{"_role", (getter)ep_get_role, NULL, NULL, NULL},
	{"_ws_async", (getter)ep_get_ws_async, (setter)ep_set_ws_async, NULL, NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef ep_members[] = {
	{"name", T_OBJECT, offsetof(Endpoint, name), READONLY, "The object's name."},
	{NULL, 0, 0, 0, NULL},
};

static PyTypeObject EndpointType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit._shmkit.Endpoint",
	.tp_basicsize = sizeof(Endpoint),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A stream channel end, pub/sub publisher or subscriber, or work queue handle.",
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)ep_dealloc,
	.tp_traverse = (traverseproc)ep_traverse,
	.tp_clear = (inquiry)ep_clear,
	.tp_methods = ep_methods,
	.tp_getset = ep_getset,
	.tp_members = ep_members,
	.tp_weaklistoffset = offsetof(Endpoint, weakrefs),
};

/* --- View -------------------------------------------------------------------------------- */

/* Ends the view's loan (commit `nbytes` or cancel) or peek (release). Refused while a
 * buffer export is alive: the ring space must not be given back under a reader. */
static int view_end(View *v, int commit)
{
	if (v->done)
		return 0;
	if (v->exports) {
		PyErr_Format(PyExc_BufferError,
			     "%zd view(s) of this %s are still alive (a memoryview or numpy array): "
			     "release them before the block ends",
			     v->exports, v->readonly ? "message" : "loan");
		return -1;
	}
	Endpoint *e = v->ep;
	v->done = 1;
	e->pending = NULL;
	if (!e->h)
		return 0;
	int rc;
	if (v->readonly)
		rc = op_release(e);
	else
		rc = commit ? op_commit(e, (size_t)v->nbytes) : op_cancel(e);
	if (rc < 0) {
		raise_err(rc, e->name);
		return -1;
	}
	return 0;
}

static int ep_pending_finish(Endpoint *e)
{
	return view_end(e->pending, 0);
}

static int view_getbuffer(View *v, Py_buffer *b, int flags)
{
	if (v->done) {
		PyErr_SetString(PyExc_ValueError, "this loan or message has ended (its with block is over)");
		return -1;
	}
	if (PyBuffer_FillInfo(b, (PyObject *)v, v->buf, v->len, v->readonly, flags) < 0)
		return -1;
	v->exports++;
	return 0;
}

static void view_releasebuffer(View *v, Py_buffer *b)
{
	(void)b;
	v->exports--;
}

static PyBufferProcs view_as_buffer = {
	.bf_getbuffer = (getbufferproc)view_getbuffer,
	.bf_releasebuffer = (releasebufferproc)view_releasebuffer,
};

static PyObject *view_enter(View *v, PyObject *unused)
{
	(void)unused;
	if (v->done) {
		PyErr_SetString(PyExc_ValueError, "this loan or message has ended");
		return NULL;
	}
	if (!v->mv && !(v->mv = PyMemoryView_FromObject((PyObject *)v)))
		return NULL;
	return Py_NewRef(v->mv);
}

/* Releases the memoryview __enter__ handed out; fails (BufferError) while something
 * still holds a buffer of it (np.frombuffer's array does). */
static int view_drop_mv(View *v)
{
	if (!v->mv)
		return 0;
	PyObject *r = PyObject_CallMethod(v->mv, "release", NULL);
	if (!r)
		return -1;
	Py_DECREF(r);
	Py_CLEAR(v->mv);
	return 0;
}

static PyObject *view_exit(View *v, PyObject *args)
{
	PyObject *et = PyTuple_GET_SIZE(args) > 0 ? PyTuple_GET_ITEM(args, 0) : Py_None;
	if (view_drop_mv(v) < 0)
		return NULL;
	if (view_end(v, et == Py_None) < 0)
		return NULL;
	Py_RETURN_FALSE;
}

static PyObject *view_commit(View *v, PyObject *args)
{
	Py_ssize_t n = -1;
	if (!PyArg_ParseTuple(args, "|n", &n))
		return NULL;
	if (v->readonly) {
		PyErr_SetString(PyExc_TypeError, "a peeked message is released, not committed");
		return NULL;
	}
	if (n > v->len) {
		PyErr_SetString(PyExc_ValueError, "commit larger than the loan");
		return NULL;
	}
	if (n >= 0)
		v->nbytes = n;
	if (view_drop_mv(v) < 0 || view_end(v, 1) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *view_cancel(View *v, PyObject *unused)
{
	(void)unused;
	if (view_drop_mv(v) < 0 || view_end(v, 0) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *view_len(View *v, void *unused)
{
	(void)unused;
	return PyLong_FromSsize_t(v->len);
}

static PyObject *view_get_nbytes(View *v, void *unused)
{
	(void)unused;
	return PyLong_FromSsize_t(v->nbytes);
}

static int view_set_nbytes(View *v, PyObject *val, void *unused)
{
	(void)unused;
	Py_ssize_t n = val ? PyLong_AsSsize_t(val) : -1;
	if (n == -1 && PyErr_Occurred())
		return -1;
	if (n < 0 || n > v->len) {
		PyErr_SetString(PyExc_ValueError, "nbytes must be between 0 and the loaned size");
		return -1;
	}
	v->nbytes = n;
	return 0;
}

static PyObject *view_get_address(View *v, void *unused)
{
	(void)unused;
	return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)v->buf);
}

static PyObject *view_get_done(View *v, void *unused)
{
	(void)unused;
	return PyBool_FromLong(v->done);
}

static int view_traverse(View *v, visitproc visit, void *arg)
{
	Py_VISIT(v->ep);
	Py_VISIT(v->mv);
	return 0;
}

static int view_clear(View *v)
{
	Py_CLEAR(v->mv);
	return 0;
}

static void view_dealloc(View *v)
{
	PyObject_GC_UnTrack(v);
	Py_CLEAR(v->mv);
	/* Nobody holds a buffer of it any more (each export holds the View). A loan never
	 * ended is cancelled, a peek released: it was abandoned, not finished. */
	if (!v->done) {
		PyObject *et, *ev, *tb;
		PyErr_Fetch(&et, &ev, &tb);
		if (view_end(v, 0) < 0)
			PyErr_WriteUnraisable((PyObject *)v);
		PyErr_Restore(et, ev, tb);
	}
	Py_CLEAR(v->ep);
	PyObject_GC_Del(v);
}

static PyMethodDef view_methods[] = {
	{"__enter__", (PyCFunction)view_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)view_exit, METH_VARARGS, NULL},
	{"commit", (PyCFunction)view_commit, METH_VARARGS,
	 "commit(nbytes=None): commit the loan now (nbytes: fewer bytes than loaned)."},
	{"cancel", (PyCFunction)view_cancel, METH_NOARGS, "Give the loan up unsent."},
	{"release", (PyCFunction)view_cancel, METH_NOARGS, "Release the peeked message now."},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef view_getset[] = {
	{"size", (getter)view_len, NULL, "Bytes loaned, or the message's length.", NULL},
	{"nbytes", (getter)view_get_nbytes, (setter)view_set_nbytes,
	 "Loan: the bytes to commit when the block ends (default: all).", NULL},
	{"address", (getter)view_get_address, NULL, "Address of the bytes in shared memory.", NULL},
	{"done", (getter)view_get_done, NULL, "Whether the loan/peek has ended.", NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ViewType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit.View",
	.tp_basicsize = sizeof(View),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "A zero-copy loan or peeked message; a context manager giving a memoryview.",
	.tp_dealloc = (destructor)view_dealloc,
	.tp_traverse = (traverseproc)view_traverse,
	.tp_clear = (inquiry)view_clear,
	.tp_as_buffer = &view_as_buffer,
	.tp_methods = view_methods,
	.tp_getset = view_getset,
};

/* --- TableBase --------------------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	struct shmkit_table *t;
	PyObject *name;
	size_t value_max;
	char *vbuf; /* value_max bytes: gets copy here, then into a bytes object */
} Table;

static PyTypeObject TableType;

static int tb_check(Table *t)
{
	if (!t->t) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed shmkit table");
		return -1;
	}
	return 0;
}

/* Keys and values: any bytes-like object, or str (UTF-8). */
static int key_arg(PyObject *o, Py_buffer *b)
{
	if (PyUnicode_Check(o)) {
		Py_ssize_t n;
		const char *s = PyUnicode_AsUTF8AndSize(o, &n);
		if (!s)
			return -1;
		return PyBuffer_FillInfo(b, o, (void *)s, n, 1, PyBUF_SIMPLE);
	}
	return PyObject_GetBuffer(o, b, PyBUF_SIMPLE);
}

static PyObject *tb_attach(Table *t, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"name", "create", "fd", "capacity", "key_max", "value_max",
				 "flags", "ttl_ms", "stripes", "backend", "mode", "seg_flags",
				 "sysv_key", NULL};
	PyObject *name;
	int create = 0, fd = -1, sysv_key = 0;
	Py_ssize_t capacity = 0, key_max = 0, value_max = 0;
	unsigned int flags = 0, ttl_ms = 0, stripes = 0, backend = 0, mode = 0, seg_flags = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|pi$nnnIIIIIIi", kwlist, &name, &create, &fd,
					 &capacity, &key_max, &value_max, &flags, &ttl_ms,
					 &stripes, &backend, &mode, &seg_flags, &sysv_key))
		return NULL;
	if (t->t) {
		PyErr_SetString(PyExc_ValueError, "table already attached");
		return NULL;
	}
	const char *cname = NULL;
	if (name != Py_None && !(cname = PyUnicode_AsUTF8(name)))
		return NULL;
	struct shmkit_table_opts o = {.capacity = (size_t)capacity, .key_max = (size_t)key_max,
				      .value_max = (size_t)value_max, .flags = flags,
				      .ttl_ms = ttl_ms, .stripes = stripes,
				      .seg = {.backend = backend, .mode = mode, .flags = seg_flags,
					      .sysv_key = sysv_key}};
	struct shmkit_table *h;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = fd >= 0 ? shmkit_table_open_fd(fd, &o, &h)
	     : create ? shmkit_table_create(cname, &o, &h)
		      : shmkit_table_open(cname, &o, &h);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return raise_err(rc, name);
	struct shmkit_table_stats st;
	shmkit_table_stats(h, &st);
	t->vbuf = PyMem_Malloc(st.value_max ? st.value_max : 1);
	if (!t->vbuf) {
		shmkit_table_close(h);
		return PyErr_NoMemory();
	}
	t->value_max = st.value_max;
	t->t = h;
	const char *nm = shmkit_segment_name(shmkit_table_segment(h));
	Py_XSETREF(t->name, PyUnicode_FromString(nm ? nm : ""));
	if (!t->name)
		PyErr_Clear();
	Py_RETURN_NONE;
}

static void tb_close_handle(Table *t)
{
	if (t->t)
		shmkit_table_close(t->t);
	t->t = NULL;
	PyMem_Free(t->vbuf);
	t->vbuf = NULL;
}

static void tb_dealloc(Table *t)
{
	tb_close_handle(t);
	Py_CLEAR(t->name);
	Py_TYPE(t)->tp_free(t);
}

static PyObject *tb_close(Table *t, PyObject *unused)
{
	(void)unused;
	tb_close_handle(t);
	Py_RETURN_NONE;
}

static PyObject *tb_exit(Table *t, PyObject *args)
{
	(void)args;
	tb_close_handle(t);
	Py_RETURN_NONE;
}

static PyObject *tb_unlink(Table *t, PyObject *unused)
{
	(void)unused;
	if (tb_check(t) < 0)
		return NULL;
	int rc = shmkit_table_unlink(t->t);
	if (rc < 0)
		return raise_err(rc, t->name);
	Py_RETURN_NONE;
}

/* _get(key) -> (value, version), or None when absent. */
static PyObject *tb_get_versioned(Table *t, PyObject *key)
{
	if (tb_check(t) < 0)
		return NULL;
	Py_buffer k;
	if (key_arg(key, &k) < 0)
		return NULL;
	uint64_t ver = 0;
	int rc;
	/* -EAGAIN: a writer kept the entry busy past the retry bound; it is worth a few
	 * retries (the call never blocks). */
	for (int tries = 0;; tries++) {
		rc = shmkit_table_get_versioned(t->t, k.buf, (size_t)k.len, t->vbuf, t->value_max, &ver);
		if (rc != -EAGAIN || tries >= 100)
			break;
	}
	PyBuffer_Release(&k);
	if (rc == -ENOENT)
		Py_RETURN_NONE;
	if (rc < 0)
		return raise_err(rc, t->name);
	return Py_BuildValue("(y#K)", t->vbuf, (Py_ssize_t)rc, (unsigned long long)ver);
}

static PyObject *tb_put(Table *t, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"key", "value", "ttl_ms", NULL};
	PyObject *key, *val;
	PyObject *ttl = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O", kwlist, &key, &val, &ttl))
		return NULL;
	if (tb_check(t) < 0)
		return NULL;
	long ttl_ms = -1;
	if (ttl != Py_None && (ttl_ms = PyLong_AsLong(ttl)) < 0) {
		if (!PyErr_Occurred())
			PyErr_SetString(PyExc_ValueError, "ttl_ms must be >= 0");
		return NULL;
	}
	Py_buffer k, v;
	if (key_arg(key, &k) < 0)
		return NULL;
	if (key_arg(val, &v) < 0) {
		PyBuffer_Release(&k);
		return NULL;
	}
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = ttl_ms < 0 ? shmkit_table_put(t->t, k.buf, (size_t)k.len, v.buf, (size_t)v.len)
			: shmkit_table_put_ttl(t->t, k.buf, (size_t)k.len, v.buf, (size_t)v.len,
					       (uint32_t)ttl_ms);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	PyBuffer_Release(&v);
	if (rc < 0)
		return raise_err(rc, t->name);
	Py_RETURN_NONE;
}

/* _del(key) -> bool (False when absent). */
static PyObject *tb_del(Table *t, PyObject *key)
{
	if (tb_check(t) < 0)
		return NULL;
	Py_buffer k;
	if (key_arg(key, &k) < 0)
		return NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_table_del(t->t, k.buf, (size_t)k.len);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	if (rc == -ENOENT)
		Py_RETURN_FALSE;
	if (rc < 0)
		return raise_err(rc, t->name);
	Py_RETURN_TRUE;
}

/* cas(key, expected, value) -> new version, or None when the version differed. */
static PyObject *tb_cas(Table *t, PyObject *args)
{
	PyObject *key, *val;
	unsigned long long expected;
	if (!PyArg_ParseTuple(args, "OKO", &key, &expected, &val))
		return NULL;
	if (tb_check(t) < 0)
		return NULL;
	Py_buffer k, v;
	if (key_arg(key, &k) < 0)
		return NULL;
	if (key_arg(val, &v) < 0) {
		PyBuffer_Release(&k);
		return NULL;
	}
	uint64_t nv = 0;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = shmkit_table_cas(t->t, k.buf, (size_t)k.len, expected, v.buf, (size_t)v.len, &nv);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&k);
	PyBuffer_Release(&v);
	if (rc == -ESTALE)
		Py_RETURN_NONE;
	if (rc < 0)
		return raise_err(rc, t->name);
	return PyLong_FromUnsignedLongLong(nv);
}

static int iter_cb(const struct shmkit_table_item *it, void *arg)
{
	PyObject *item = Py_BuildValue("(y#y#K)", (const char *)it->key, (Py_ssize_t)it->klen,
				       (const char *)it->value, (Py_ssize_t)it->vlen,
				       (unsigned long long)it->version);
	if (!item || PyList_Append(arg, item) < 0) {
		Py_XDECREF(item);
		return -ENOMEM - 1000; /* a Python error, distinct from the library's */
	}
	Py_DECREF(item);
	return 0;
}

/* snapshot() -> [(key, value, version)]: one walk of the table. */
static PyObject *tb_snapshot(Table *t, PyObject *unused)
{
	(void)unused;
	if (tb_check(t) < 0)
		return NULL;
	PyObject *l = PyList_New(0);
	if (!l)
		return NULL;
	int rc = shmkit_table_iter(t->t, iter_cb, l);
	if (rc < 0) {
		Py_DECREF(l);
		return rc == -ENOMEM - 1000 ? NULL : raise_err(rc, t->name);
	}
	return l;
}

static Py_ssize_t tb_len(Table *t)
{
	if (tb_check(t) < 0)
		return -1;
	int n = shmkit_table_count(t->t);
	if (n < 0) {
		raise_err(n, t->name);
		return -1;
	}
	return n;
}

static PyObject *tb_len_m(Table *t, PyObject *unused)
{
	(void)unused;
	Py_ssize_t n = tb_len(t);
	return n < 0 ? NULL : PyLong_FromSsize_t(n);
}

static PyObject *tb_simple(Table *t, int which)
{
	if (tb_check(t) < 0)
		return NULL;
	int rc;
	Py_BEGIN_ALLOW_THREADS
	rc = which ? shmkit_table_verify(t->t) : shmkit_table_expire(t->t);
	Py_END_ALLOW_THREADS
	if (rc < 0)
		return raise_err(rc, t->name);
	return PyLong_FromLong(rc);
}

static PyObject *tb_verify(Table *t, PyObject *unused)
{
	(void)unused;
	return tb_simple(t, 1);
}

static PyObject *tb_expire(Table *t, PyObject *unused)
{
	(void)unused;
	return tb_simple(t, 0);
}

static PyObject *tb_stats(Table *t, PyObject *unused)
{
	(void)unused;
	if (tb_check(t) < 0)
		return NULL;
	struct shmkit_table_stats s;
	shmkit_table_stats(t->t, &s);
	PyObject *d = PyDict_New();
	if (!d)
		return NULL;
	SET_U(d, s, capacity); SET_U(d, s, entries); SET_U(d, s, key_max); SET_U(d, s, value_max);
	SET_U(d, s, flags); SET_U(d, s, ttl_ms); SET_U(d, s, stripes); SET_U(d, s, segment_size);
	SET_U(d, s, puts); SET_U(d, s, inserts); SET_U(d, s, dels); SET_U(d, s, cas_failures);
	SET_U(d, s, evictions); SET_U(d, s, expirations); SET_U(d, s, repairs); SET_U(d, s, gets);
	SET_U(d, s, hits); SET_U(d, s, misses); SET_U(d, s, read_retries);
	return d;
}

static PyObject *tb_fileno(Table *t, PyObject *unused)
{
	(void)unused;
	if (tb_check(t) < 0)
		return NULL;
	int fd = shmkit_segment_fd(shmkit_table_segment(t->t));
	if (fd < 0)
		return raise_err(fd, t->name);
	return PyLong_FromLong(fd);
}

static PyMethodDef tb_methods[] = {
	{"_attach", (PyCFunction)(void (*)(void))tb_attach, METH_VARARGS | METH_KEYWORDS, NULL},
	{"close", (PyCFunction)tb_close, METH_NOARGS, "Unmap the table (it stays)."},
	{"unlink", (PyCFunction)tb_unlink, METH_NOARGS, "Remove the table's name."},
	{"get_versioned", (PyCFunction)tb_get_versioned, METH_O,
	 "get_versioned(key) -> (value, version), or None when absent."},
	{"put", (PyCFunction)(void (*)(void))tb_put, METH_VARARGS | METH_KEYWORDS,
	 "put(key, value, ttl_ms=None): insert or replace (ttl_ms=0: never expires; None: "
	 "the table's default)."},
	{"_del", (PyCFunction)tb_del, METH_O, NULL},
	{"cas", (PyCFunction)tb_cas, METH_VARARGS,
	 "cas(key, expected_version, value) -> new version, or None when the key's version "
	 "is not `expected_version` (0: only if absent)."},
	{"snapshot", (PyCFunction)tb_snapshot, METH_NOARGS,
	 "[(key, value, version)] from one walk of the table."},
	{"_len", (PyCFunction)tb_len_m, METH_NOARGS, NULL},
	{"verify", (PyCFunction)tb_verify, METH_NOARGS, "Check every invariant (CorruptError)."},
	{"expire", (PyCFunction)tb_expire, METH_NOARGS, "Reclaim expired entries; returns how many."},
	{"stats", (PyCFunction)tb_stats, METH_NOARGS, "Counters, as a dict."},
	{"fileno", (PyCFunction)tb_fileno, METH_NOARGS, "The segment's descriptor."},
	{"__enter__", ep_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)tb_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PyMemberDef tb_members[] = {
	{"name", T_OBJECT, offsetof(Table, name), READONLY, "The table's name."},
	{NULL, 0, 0, 0, NULL},
};

static PyTypeObject TableType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit._shmkit.TableBase",
	.tp_basicsize = sizeof(Table),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = "The shared table (see shmkit.Table).",
	.tp_new = PyType_GenericNew,
	.tp_dealloc = (destructor)tb_dealloc,
	.tp_methods = tb_methods,
	.tp_members = tb_members,
};

/* --- WaitSet ----------------------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	struct shmkit_waitset *ws;
	PyObject *members; /* {cookie: (endpoint, key)} */
	uint64_t next_cookie;
	int busy;
} WaitSet;

static PyTypeObject WaitSetType;

static int ws_init(WaitSet *w, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"fallback", "no_spin", "spin_ns", "poll_us", NULL};
	int fallback = 0, no_spin = 0;
	unsigned int spin_ns = 0, poll_us = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|$ppII", kwlist, &fallback, &no_spin,
					 &spin_ns, &poll_us))
		return -1;
	if (w->ws) {
		PyErr_SetString(PyExc_ValueError, "WaitSet already initialized");
		return -1;
	}
	struct shmkit_waitset_opts o = {
		.flags = (fallback ? SHMKIT_WAITSET_FALLBACK : 0) | (no_spin ? SHMKIT_WAITSET_NO_SPIN : 0),
		.spin_ns = spin_ns, .poll_us = poll_us};
	int rc = shmkit_waitset_create(&o, &w->ws);
	if (rc < 0) {
		raise_err(rc, NULL);
		return -1;
	}
	if (!w->members && !(w->members = PyDict_New()))
		return -1;
	w->next_cookie = 1;
	return 0;
}

static void ws_release_members(WaitSet *w)
{
	if (!w->members)
		return;
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	while (PyDict_Next(w->members, &pos, &k, &v))
		((Endpoint *)PyTuple_GET_ITEM(v, 0))->in_ws--;
	PyDict_Clear(w->members);
}

static PyObject *ws_close(WaitSet *w, PyObject *unused)
{
	(void)unused;
	if (w->busy) {
		PyErr_SetString(PyExc_RuntimeError, "WaitSet in use by another thread");
		return NULL;
	}
	if (w->ws) {
		shmkit_waitset_close(w->ws);
		w->ws = NULL;
	}
	ws_release_members(w);
	Py_RETURN_NONE;
}

static int ws_traverse(WaitSet *w, visitproc visit, void *arg)
{
	Py_VISIT(w->members);
	return 0;
}

static int ws_clear(WaitSet *w)
{
	if (w->ws) {
		shmkit_waitset_close(w->ws);
		w->ws = NULL;
	}
	ws_release_members(w);
	Py_CLEAR(w->members);
	return 0;
}

static void ws_dealloc(WaitSet *w)
{
	PyObject_GC_UnTrack(w);
	ws_clear(w);
	Py_TYPE(w)->tp_free(w);
}

static int ws_check(WaitSet *w)
{
	if (!w->ws) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed WaitSet");
		return -1;
	}
	if (w->busy) {
		PyErr_SetString(PyExc_RuntimeError, "WaitSet in use by another thread");
		return -1;
	}
	return 0;
}

/* add(handle, key=None): key (default: the handle) is what wait() reports. */
static PyObject *ws_add(WaitSet *w, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"handle", "key", NULL};
	PyObject *h, *key = NULL;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|O", kwlist, &EndpointType, &h, &key))
		return NULL;
	if (ws_check(w) < 0)
		return NULL;
	Endpoint *e = (Endpoint *)h;
	if (ep_open(e) < 0)
		return NULL;
	uint64_t cookie = w->next_cookie;
	int rc = e->kind == K_CHAN     ? shmkit_waitset_add_chan(w->ws, e->h, cookie)
		 : e->kind == K_PUBSUB ? shmkit_waitset_add_pubsub(w->ws, e->h, cookie)
				       : shmkit_waitset_add_queue(w->ws, e->h, cookie);
	if (rc < 0)
		return raise_err(rc, e->name);
	PyObject *c = PyLong_FromUnsignedLongLong(cookie);
	PyObject *v = Py_BuildValue("(OO)", h, key && key != Py_None ? key : h);
	if (!c || !v || PyDict_SetItem(w->members, c, v) < 0) {
		Py_XDECREF(c);
		Py_XDECREF(v);
		shmkit_waitset_remove(w->ws, cookie);
		return NULL;
	}
	Py_DECREF(c);
	Py_DECREF(v);
	w->next_cookie++;
	e->in_ws++;
	Py_RETURN_NONE;
}

/* remove(handle): takes the handle out of the set. */
static PyObject *ws_remove(WaitSet *w, PyObject *h)
{
	if (ws_check(w) < 0)
		return NULL;
	PyObject *k, *v;
	Py_ssize_t pos = 0;
	while (PyDict_Next(w->members, &pos, &k, &v)) {
		if (PyTuple_GET_ITEM(v, 0) != h)
			continue;
		uint64_t cookie = PyLong_AsUnsignedLongLong(k);
		shmkit_waitset_remove(w->ws, cookie);
		((Endpoint *)h)->in_ws--;
		Py_INCREF(k);
		int rc = PyDict_DelItem(w->members, k);
		Py_DECREF(k);
		if (rc < 0)
			return NULL;
		Py_RETURN_NONE;
	}
	PyErr_SetString(PyExc_KeyError, "not a member of this WaitSet");
	return NULL;
}

struct ws_ctx {
	WaitSet *w;
	struct shmkit_waitset_ready r[SHMKIT_WAITSET_MAX];
};

static int ws_op(void *p, const struct timespec *dl)
{
	struct ws_ctx *c = p;
	return shmkit_waitset_wait(c->w->ws, dl, c->r, SHMKIT_WAITSET_MAX);
}

/* wait(timeout=None) -> [(key, events)]; TimeoutError when nothing is ready in time. */
static PyObject *ws_wait(WaitSet *w, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"timeout", NULL};
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O", kwlist, &timeout))
		return NULL;
	if (ws_check(w) < 0)
		return NULL;
	uint64_t end;
	if (parse_timeout(timeout, &end) < 0)
		return NULL;
	struct ws_ctx *c = PyMem_Malloc(sizeof *c);
	if (!c)
		return PyErr_NoMemory();
	c->w = w;
	w->busy = 1;
	int n = wait_sliced(ws_op, c, end);
	w->busy = 0;
	if (n < 0) {
		PyMem_Free(c);
		return n == WAIT_PYERR ? NULL : raise_err(n, NULL);
	}
	PyObject *out = PyList_New(0);
	for (int i = 0; out && i < n; i++) {
		PyObject *ck = PyLong_FromUnsignedLongLong(c->r[i].cookie);
		PyObject *m = ck ? PyDict_GetItemWithError(w->members, ck) : NULL;
		Py_XDECREF(ck);
		if (!m) {
			if (PyErr_Occurred())
				Py_CLEAR(out);
			continue;
		}
		PyObject *item = Py_BuildValue("(OI)", PyTuple_GET_ITEM(m, 1), c->r[i].events);
		if (!item || PyList_Append(out, item) < 0)
			Py_CLEAR(out);
		Py_XDECREF(item);
	}
	PyMem_Free(c);
	return out;
}

static PyObject *ws_fileno(WaitSet *w, PyObject *unused)
{
	(void)unused;
	if (ws_check(w) < 0)
		return NULL;
	int fd = shmkit_waitset_fd(w->ws);
	if (fd < 0)
		return raise_err(fd, NULL);
	return PyLong_FromLong(fd);
}

static Py_ssize_t ws_len(WaitSet *w)
{
	return w->members ? PyDict_Size(w->members) : 0;
}

static PyObject *ws_exit(WaitSet *w, PyObject *args)
{
	(void)args;
	return ws_close(w, NULL);
}

static PyMethodDef ws_methods[] = {
	{"add", (PyCFunction)(void (*)(void))ws_add, METH_VARARGS | METH_KEYWORDS,
	 "add(handle, key=None): wait on a stream consumer, subscriber or queue; wait() "
	 "reports `key` (default: the handle)."},
	{"remove", (PyCFunction)ws_remove, METH_O, "remove(handle)"},
	{"wait", (PyCFunction)(void (*)(void))ws_wait, METH_VARARGS | METH_KEYWORDS,
	 "wait(timeout=None) -> [(key, events)], events a mask of READABLE, CLOSED, DEAD; "
	 "TimeoutError when nothing is ready in time."},
	{"fileno", (PyCFunction)ws_fileno, METH_NOARGS,
	 "An eventfd that polls readable when a member is ready (for selectors/asyncio)."},
	{"close", (PyCFunction)ws_close, METH_NOARGS, "Free the waitset (members stay open)."},
	{"__enter__", ep_enter, METH_NOARGS, NULL},
	{"__exit__", (PyCFunction)ws_exit, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static PySequenceMethods ws_as_seq = {.sq_length = (lenfunc)ws_len};

static PyTypeObject WaitSetType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "shmkit.WaitSet",
	.tp_basicsize = sizeof(WaitSet),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
	.tp_doc = "WaitSet(*, fallback=False, no_spin=False, spin_ns=0, poll_us=0): wait on many "
		  "consumers at once.",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)ws_init,
	.tp_dealloc = (destructor)ws_dealloc,
	.tp_traverse = (traverseproc)ws_traverse,
	.tp_clear = (inquiry)ws_clear,
	.tp_methods = ws_methods,
	.tp_as_sequence = &ws_as_seq,
};

/* --- segments ---------------------------------------------------------------------------- */

static PyObject *info_dict(const struct shmkit_segment_info *i)
{
	PyObject *d = PyDict_New();
	if (!d)
		return NULL;
	PyObject *nm = PyUnicode_DecodeUTF8(i->name, (Py_ssize_t)strlen(i->name), "replace");
	if (!nm || PyDict_SetItemString(d, "name", nm) < 0) {
		Py_XDECREF(nm);
		Py_DECREF(d);
		return NULL;
	}
	Py_DECREF(nm);
	SET_U(d, *i, backend); SET_U(d, *i, kind); SET_U(d, *i, state); SET_I(d, *i, sysv_key);
	SET_I(d, *i, sysv_id); SET_U(d, *i, total_size); SET_U(d, *i, data_size);
	SET_U(d, *i, mode); SET_U(d, *i, uid); SET_U(d, *i, gid); SET_U(d, *i, creator_uid);
	SET_I(d, *i, creator_pid); SET_I(d, *i, creator_alive); SET_I(d, *i, nattach);
	SET_U(d, *i, created_ns); SET_U(d, *i, ver_major); SET_U(d, *i, ver_minor);
	SET_I(d, *i, status); SET_U(d, *i, cuid); SET_U(d, *i, cgid); SET_U(d, *i, lifetime);
	return d;
}

static PyObject *m_segment_list(PyObject *mod, PyObject *unused)
{
	(void)mod;
	(void)unused;
	struct shmkit_segment_info *inf;
	int n = shmkit_segment_list(&inf);
	if (n < 0)
		return raise_err(n, NULL);
	PyObject *l = PyList_New(0);
	for (int i = 0; l && i < n; i++) {
		PyObject *d = info_dict(&inf[i]);
		if (!d || PyList_Append(l, d) < 0)
			Py_CLEAR(l);
		Py_XDECREF(d);
	}
	shmkit_segment_list_free(inf);
	return l;
}

static PyObject *m_segment_stat(PyObject *mod, PyObject *args, PyObject *kw)
{
	(void)mod;
	static char *kwlist[] = {"name", "backend", "sysv_key", NULL};
	PyObject *name;
	unsigned int backend = 0;
	int key = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Ii", kwlist, &name, &backend, &key))
		return NULL;
	const char *cname = NULL;
	if (name != Py_None && !(cname = PyUnicode_AsUTF8(name)))
		return NULL;
	struct shmkit_segment_opts o = {.backend = backend, .sysv_key = key};
	struct shmkit_segment_info inf;
	int rc = shmkit_segment_stat(cname, &o, &inf);
	if (rc < 0)
		return raise_err(rc, name);
	return info_dict(&inf);
}

static PyObject *m_segment_remove(PyObject *mod, PyObject *args, PyObject *kw)
{
	(void)mod;
	static char *kwlist[] = {"name", "backend", "sysv_key", NULL};
	PyObject *name;
	unsigned int backend = 0;
	int key = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Ii", kwlist, &name, &backend, &key))
		return NULL;
	const char *cname = NULL;
	if (name != Py_None && !(cname = PyUnicode_AsUTF8(name)))
		return NULL;
	struct shmkit_segment_opts o = {.backend = backend, .sysv_key = key};
	int rc = shmkit_segment_remove(cname, &o);
	if (rc < 0)
		return raise_err(rc, name);
	return PyLong_FromLong(rc);
}

/* _wait_stats(name, backend, sysv_key) -> (fenced, missed): the sleep/wake handshake's
 * state, from a read-only mapping of the segment (any owner). */
static PyObject *m_wait_stats(PyObject *mod, PyObject *args)
{
	(void)mod;
	PyObject *name;
	unsigned int backend;
	int key;
	if (!PyArg_ParseTuple(args, "OIi", &name, &backend, &key))
		return NULL;
	const char *cname = NULL;
	if (name != Py_None && !(cname = PyUnicode_AsUTF8(name)))
		return NULL;
	struct shmkit_segment_opts o = {.backend = backend, .sysv_key = key,
					.flags = SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID};
	struct shmkit_segment *seg;
	int rc = shmkit_segment_open(cname, &o, &seg);
	if (rc < 0)
		return raise_err(rc, name);
	struct shmkit_wait_stats st;
	rc = shmkit_segment_wait_stats(seg, &st);
	shmkit_segment_close(seg);
	if (rc < 0)
		return raise_err(rc, name);
	return Py_BuildValue("(IK)", st.fenced, (unsigned long long)st.missed);
}

static PyObject *m_strerror(PyObject *mod, PyObject *arg)
{
	(void)mod;
	long e = PyLong_AsLong(arg);
	if (e == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(shmkit_strerror((int)e));
}

static PyObject *m_names(PyObject *mod, PyObject *args)
{
	(void)mod;
	unsigned int backend, kind;
	if (!PyArg_ParseTuple(args, "II", &backend, &kind))
		return NULL;
	return Py_BuildValue("(ss)", shmkit_backend_name(backend), shmkit_kind_name(kind));
}

static PyMethodDef module_methods[] = {
	{"_segment_list", m_segment_list, METH_NOARGS, NULL},
	{"_segment_stat", (PyCFunction)(void (*)(void))m_segment_stat, METH_VARARGS | METH_KEYWORDS, NULL},
	{"remove", (PyCFunction)(void (*)(void))m_segment_remove, METH_VARARGS | METH_KEYWORDS,
	 "remove(name, backend=0, sysv_key=0) -> int: remove a named object (whatever it is); "
	 "returns how many were removed."},
	{"strerror", m_strerror, METH_O, "strerror(errno) -> str, as shmkit_strerror() gives it."},
	{"_names", m_names, METH_VARARGS, NULL},
	{"_wait_stats", m_wait_stats, METH_VARARGS, NULL},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
	PyModuleDef_HEAD_INIT, "shmkit._shmkit", "CPython binding of libshmkit.", -1,
	module_methods, NULL, NULL, NULL, NULL,
};

#define ADD_INT(m, n, v)                                                                   \
	if (PyModule_AddIntConstant(m, n, (long)(v)) < 0)                                  \
	goto fail

PyMODINIT_FUNC PyInit__shmkit(void)
{
	if (PyType_Ready(&EndpointType) < 0 || PyType_Ready(&ViewType) < 0 ||
	    PyType_Ready(&TableType) < 0 || PyType_Ready(&WaitSetType) < 0)
		return NULL;
	PyObject *m = PyModule_Create(&module_def);
	if (!m)
		return NULL;
	Error = PyErr_NewExceptionWithDoc("shmkit.Error", "A shmkit call failed (errno kept).",
					  PyExc_OSError, NULL);
	PeerDeadError = PyErr_NewExceptionWithDoc(
		"shmkit.PeerDeadError", "The peer died (EOWNERDEAD); all it committed was delivered.",
		Error, NULL);
	CorruptError = PyErr_NewExceptionWithDoc(
		"shmkit.CorruptError", "Corrupt shared memory (EBADMSG).", Error, NULL);
	StaleError = PyErr_NewExceptionWithDoc(
		"shmkit.StaleError", "What was read was overwritten meanwhile (ESTALE).", Error, NULL);
	BusyError = PyErr_NewExceptionWithDoc(
		"shmkit.BusyError", "Another live process holds that role (EBUSY).", Error, NULL);
	if (!Error || !PeerDeadError || !CorruptError || !StaleError || !BusyError)
		goto fail;
	if (PyModule_AddObjectRef(m, "Error", Error) < 0 ||
	    PyModule_AddObjectRef(m, "PeerDeadError", PeerDeadError) < 0 ||
	    PyModule_AddObjectRef(m, "CorruptError", CorruptError) < 0 ||
	    PyModule_AddObjectRef(m, "StaleError", StaleError) < 0 ||
	    PyModule_AddObjectRef(m, "BusyError", BusyError) < 0 ||
	    PyModule_AddObjectRef(m, "Endpoint", (PyObject *)&EndpointType) < 0 ||
	    PyModule_AddObjectRef(m, "View", (PyObject *)&ViewType) < 0 ||
	    PyModule_AddObjectRef(m, "TableBase", (PyObject *)&TableType) < 0 ||
	    PyModule_AddObjectRef(m, "WaitSet", (PyObject *)&WaitSetType) < 0)
		goto fail;
	ADD_INT(m, "KIND_STREAM", K_CHAN);
	ADD_INT(m, "KIND_PUBSUB", K_PUBSUB);
	ADD_INT(m, "KIND_QUEUE", K_QUEUE);
	ADD_INT(m, "KIND_TABLE", SHMKIT_KIND_TABLE);
	ADD_INT(m, "READABLE", SHMKIT_WAIT_READABLE);
	ADD_INT(m, "CLOSED", SHMKIT_WAIT_CLOSED);
	ADD_INT(m, "DEAD", SHMKIT_WAIT_DEAD);
	ADD_INT(m, "SEG_HUGEPAGES", SHMKIT_SEG_HUGEPAGES);
	ADD_INT(m, "SEG_FOREIGN_UID", SHMKIT_SEG_FOREIGN_UID);
	ADD_INT(m, "SEG_RDONLY", SHMKIT_SEG_RDONLY);
	ADD_INT(m, "SEG_PERSISTENT", SHMKIT_SEG_PERSISTENT);
	ADD_INT(m, "CHAN_NO_SPIN", SHMKIT_CHAN_NO_SPIN);
	ADD_INT(m, "PUBSUB_NO_SPIN", SHMKIT_PUBSUB_NO_SPIN);
	ADD_INT(m, "PUBSUB_NO_HISTORY", SHMKIT_PUBSUB_NO_HISTORY);
	ADD_INT(m, "QUEUE_NO_SPIN", SHMKIT_QUEUE_NO_SPIN);
	ADD_INT(m, "TABLE_CACHE", SHMKIT_TABLE_CACHE);
	ADD_INT(m, "BACKEND_POSIX", SHMKIT_BACKEND_POSIX);
	ADD_INT(m, "BACKEND_SYSV", SHMKIT_BACKEND_SYSV);
	ADD_INT(m, "BACKEND_MEMFD", SHMKIT_BACKEND_MEMFD);
	if (PyModule_AddStringConstant(m, "LIB_VERSION", shmkit_version()) < 0)
		goto fail;
	return m;
fail:
	Py_DECREF(m);
	return NULL;
}
