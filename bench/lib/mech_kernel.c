/* shmkit benchmarks — the kernel's mechanisms: pipe, sockets, TCP, message queues, eventfd
 * (mech.c lists every mechanism; mech.h is the interface). */
#include "mech_int.h"

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t w = write(fd, b, n);
		if (w < 0) {
			if (again())
				continue;
			return -errno;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t r = read(fd, b, n);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/* --- descriptors: pipe, socketpairs, TCP ----------------------------------------------------- */

struct fd_priv {
	int fd[4];    /* pipe: ab[0..1], ba[2..3]; socket: fd[0] side A, fd[1] side B */
	int wfd, rfd; /* this side's */
	uint8_t *buf;
	int seqpacket;
};

static struct fd_priv *fd_priv_new(struct ipc_link *l)
{
	struct fd_priv *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	for (int i = 0; i < 4; i++)
		p->fd[i] = -1;
	p->wfd = p->rfd = -1;
	l->priv = p;
	return p;
}

static int pipe_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	if (pipe2(p->fd, O_CLOEXEC) < 0 || pipe2(p->fd + 2, O_CLOEXEC) < 0)
		return seterr(l, -errno, "pipe2");
	return 0;
}

static int pipe_attach(struct ipc_link *l, int side)
{
	struct fd_priv *p = l->priv;
	/* A writes ab (fd[1]) and reads ba (fd[2]); B reads ab (fd[0]) and writes ba (fd[3]). */
	if (side == IPC_SIDE_A) {
		p->wfd = p->fd[1];
		p->rfd = p->fd[2];
		close_fd(&p->fd[0]);
		close_fd(&p->fd[3]);
	} else {
		p->wfd = p->fd[3];
		p->rfd = p->fd[0];
		close_fd(&p->fd[1]);
		close_fd(&p->fd[2]);
	}
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void fd_detach(struct ipc_link *l)
{
	struct fd_priv *p = l->priv;
	for (int i = 0; i < 4; i++)
		close_fd(&p->fd[i]);
	p->wfd = p->rfd = -1;
	free(p->buf);
	p->buf = NULL;
}

static void fd_teardown(struct ipc_link *l)
{
	struct fd_priv *p = l->priv;
	if (!p)
		return;
	fd_detach(l);
	free(p);
	l->priv = NULL;
}

static int fd_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct fd_priv *p = l->priv;
	mark(p->buf, l->size, ++l->tx);
	if (!p->seqpacket)
		return write_all(p->wfd, p->buf, l->size);
	for (size_t off = 0; off < l->size;) {
		size_t n = l->size - off < SEQPACKET_PIECE ? l->size - off : SEQPACKET_PIECE;
		ssize_t w = send(p->wfd, p->buf + off, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (again())
				continue;
			return -errno;
		}
		if ((size_t)w != n)
			return -EMSGSIZE;
		off += n;
	}
	return 0;
}

static int fd_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct fd_priv *p = l->priv;
	int err = 0;
	if (!p->seqpacket) {
		err = read_all(p->rfd, p->buf, l->size);
	} else {
		for (size_t off = 0; off < l->size && !err;) {
			ssize_t r = recv(p->rfd, p->buf + off, l->size - off, 0);
			if (r < 0 && again())
				continue;
			if (r < 0)
				err = -errno;
			else if (r == 0)
				err = -EPIPE;
			else
				off += (size_t)r;
		}
	}
	return err ? err : ipc_check(p->buf, l->size, l->size, ++l->rx);
}

static int sock_attach(struct ipc_link *l, int side)
{
	struct fd_priv *p = l->priv;
	p->wfd = p->rfd = p->fd[side];
	close_fd(&p->fd[!side]);
	p->buf = private_buf(l->size);
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static int unix_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	p->seqpacket = strcmp(l->mech->mode, "seqpacket") == 0;
	int type = p->seqpacket ? SOCK_SEQPACKET : SOCK_STREAM;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, p->fd) < 0)
		return seterr(l, -errno, "socketpair");
	return 0;
}

static int tcp_setup(struct ipc_link *l)
{
	struct fd_priv *p = fd_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	int one = 1, err = 0;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return seterr(l, -errno, "socket");
	if (bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		err = seterr(l, -errno, "bind/listen on 127.0.0.1");
		goto out;
	}
	p->fd[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd[0] < 0 || connect(p->fd[0], (struct sockaddr *)&a, sizeof a) < 0) {
		err = seterr(l, -errno, "connect to 127.0.0.1");
		goto out;
	}
	p->fd[1] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (p->fd[1] < 0) {
		err = seterr(l, -errno, "accept");
		goto out;
	}
	for (int i = 0; i < 2; i++)
		if (setsockopt(p->fd[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
			err = seterr(l, -errno, "TCP_NODELAY");
			goto out;
		}
out:
	close(lfd);
	return err;
}

/* --- message queues ------------------------------------------------------------------------ */

static long read_sysctl(const char *path, long dflt)
{
	char b[64];
	long v = dflt;
	FILE *f = fopen(path, "r");
	if (f) {
		if (fgets(b, sizeof b, f))
			v = strtol(b, NULL, 10);
		fclose(f);
	}
	return v > 0 ? v : dflt;
}

struct mq_priv {
	mqd_t q[2];      /* q[0]: A -> B, q[1]: B -> A */
	int sysv[2];     /* System V queue ids */
	int system_v;    /* sysv-mq: the System V queues, else the POSIX ones */
	size_t piece;    /* largest message the queue takes */
	uint8_t *buf;    /* POSIX: message; System V: long mtype + message */
};

static struct mq_priv *mq_priv_new(struct ipc_link *l)
{
	struct mq_priv *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->q[0] = p->q[1] = (mqd_t)-1;
	p->sysv[0] = p->sysv[1] = -1;
	l->priv = p;
	return p;
}

static int pmq_setup(struct ipc_link *l)
{
	static unsigned counter;
	struct mq_priv *p = mq_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	long max = read_sysctl("/proc/sys/fs/mqueue/msgsize_max", 8192);
	p->piece = l->size < (size_t)max ? l->size : (size_t)max;
	struct mq_attr attr = {.mq_maxmsg = 8, .mq_msgsize = (long)p->piece};
	for (int i = 0; i < 2; i++) {
		char name[64];
		snprintf(name, sizeof name, "/shmkit-bench.%d.%u", (int)getpid(), counter++);
		p->q[i] = mq_open(name, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600, &attr);
		if (p->q[i] == (mqd_t)-1)
			return seterr(l, -errno, "mq_open");
		/* Both processes use the descriptor inherited through fork(): the name can go. */
		mq_unlink(name);
	}
	return 0;
}

static int mq_attach(struct ipc_link *l, int side)
{
	(void)side;
	struct mq_priv *p = l->priv;
	p->buf = private_buf(l->size + sizeof(long));
	return p->buf ? 0 : seterr(l, -ENOMEM, "malloc");
}

static void mq_detach(struct ipc_link *l)
{
	struct mq_priv *p = l->priv;
	for (int i = 0; i < 2; i++)
		if (p->q[i] != (mqd_t)-1) {
			mq_close(p->q[i]);
			p->q[i] = (mqd_t)-1;
		}
	free(p->buf);
	p->buf = NULL;
}

static void mq_teardown(struct ipc_link *l)
{
	struct mq_priv *p = l->priv;
	if (!p)
		return;
	mq_detach(l);
	for (int i = 0; i < 2; i++)
		if (p->sysv[i] >= 0)
			msgctl(p->sysv[i], IPC_RMID, NULL);
	free(p);
	l->priv = NULL;
}

static int smq_setup(struct ipc_link *l)
{
	struct mq_priv *p = mq_priv_new(l);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	p->system_v = 1;
	long max = read_sysctl("/proc/sys/kernel/msgmax", 8192);
	p->piece = l->size < (size_t)max ? l->size : (size_t)max;
	for (int i = 0; i < 2; i++) {
		p->sysv[i] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
		if (p->sysv[i] < 0)
			return seterr(l, -errno, "msgget");
	}
	return 0;
}

/* Where the message starts in p->buf. */
static uint8_t *mq_msg(const struct mq_priv *p)
{
	return p->system_v ? p->buf + sizeof(long) : p->buf;
}

/* Sends message n in pieces of at most p->piece bytes, each marked as message n. */
static int mq_send_msg(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct mq_priv *p = l->priv;
	uint64_t n = ++l->tx;
	if (p->system_v)
		*(long *)(void *)p->buf = 1; /* mtype */
	for (size_t off = 0; off < l->size;) {
		size_t len = l->size - off < p->piece ? l->size - off : p->piece;
		mark(mq_msg(p), len, n);
		int r = p->system_v ? msgsnd(p->sysv[l->side], p->buf, len, 0)
				    : mq_send(p->q[l->side], (const char *)p->buf, len, 0);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		off += len;
	}
	return 0;
}

static int mq_recv_msg(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct mq_priv *p = l->priv;
	uint64_t n = ++l->rx;
	for (size_t off = 0; off < l->size;) {
		ssize_t r = p->system_v ? msgrcv(p->sysv[!l->side], p->buf, p->piece, 0, 0)
					: mq_receive(p->q[!l->side], (char *)p->buf, p->piece, NULL);
		if (r < 0) {
			if (again())
				continue;
			return -errno;
		}
		if (r == 0 || ipc_check(mq_msg(p), (size_t)r, (size_t)r, n))
			return -EBADMSG;
		off += (size_t)r;
		if (off > l->size)
			return -EBADMSG;
	}
	return 0;
}

/* --- eventfd ---------------------------------------------------------------------------- */

struct efd_priv {
	uint8_t *mem;      /* shared: 2 directions x EVENTFD_SLOTS x size */
	size_t mem_bytes;
	int data[2], space[2]; /* per direction: full slots, free slots (semaphore mode) */
};

static int efd_setup(struct ipc_link *l)
{
	struct efd_priv *p = calloc(1, sizeof *p);
	if (!p)
		return seterr(l, -ENOMEM, "calloc");
	l->priv = p;
	p->data[0] = p->data[1] = p->space[0] = p->space[1] = -1;
	p->mem_bytes = 2 * EVENTFD_SLOTS * ((l->size + 63) & ~(size_t)63);
	p->mem = bench_shared_alloc(p->mem_bytes);
	if (!p->mem)
		return seterr(l, -ENOMEM, "mmap");
	for (int i = 0; i < 2; i++) {
		p->data[i] = eventfd(0, EFD_SEMAPHORE | EFD_CLOEXEC);
		p->space[i] = eventfd(EVENTFD_SLOTS, EFD_SEMAPHORE | EFD_CLOEXEC);
		if (p->data[i] < 0 || p->space[i] < 0)
			return seterr(l, -errno, "eventfd");
	}
	return 0;
}

static void efd_detach(struct ipc_link *l)
{
	struct efd_priv *p = l->priv;
	for (int i = 0; i < 2; i++) {
		close_fd(&p->data[i]);
		close_fd(&p->space[i]);
	}
}

static void efd_teardown(struct ipc_link *l)
{
	struct efd_priv *p = l->priv;
	if (!p)
		return;
	efd_detach(l);
	bench_shared_free(p->mem, p->mem_bytes);
	free(p);
	l->priv = NULL;
}

static uint8_t *efd_slot(struct ipc_link *l, int dir, uint64_t n)
{
	struct efd_priv *p = l->priv;
	size_t stride = (l->size + 63) & ~(size_t)63;
	return p->mem + ((size_t)dir * EVENTFD_SLOTS + (size_t)(n % EVENTFD_SLOTS)) * stride;
}

static int efd_take(int fd)
{
	uint64_t v;
	return read_all(fd, &v, sizeof v);
}

static int efd_give(int fd)
{
	uint64_t one = 1;
	return write_all(fd, &one, sizeof one);
}

static int efd_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct efd_priv *p = l->priv;
	int d = l->side;
	int err = efd_take(p->space[d]);
	if (err)
		return err;
	uint64_t n = ++l->tx;
	ipc_fill(efd_slot(l, d, n), l->size, n);
	return efd_give(p->data[d]);
}

static int efd_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct efd_priv *p = l->priv;
	int d = !l->side;
	int err = efd_take(p->data[d]);
	if (err)
		return err;
	uint64_t n = ++l->rx;
	err = ipc_check_all(efd_slot(l, d, n), l->size, l->size, n);
	int e2 = efd_give(p->space[d]);
	return err ? err : e2;
}

const struct ipc_mech ipc_mech_pipe = {
	"pipe", "pipe", "blocking", "pipe", LS | DEF, 0,
	pipe_setup, pipe_attach, fd_send, fd_recv, fd_detach, fd_teardown};
const struct ipc_mech ipc_mech_unix_stream = {
	"unix-stream", "unix", "stream", "UNIX socket, stream", LS | DEF, 0,
	unix_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};
const struct ipc_mech ipc_mech_unix_seqpacket = {
	"unix-seqpacket", "unix", "seqpacket", "UNIX socket, seqpacket", LS | DEF, 0,
	unix_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};
const struct ipc_mech ipc_mech_posix_mq = {
	"posix-mq", "posix-mq", "blocking", "POSIX message queue", LS | DEF, 0,
	pmq_setup, mq_attach, mq_send_msg, mq_recv_msg, mq_detach, mq_teardown};
const struct ipc_mech ipc_mech_sysv_mq = {
	"sysv-mq", "sysv-mq", "blocking", "System V message queue", LS | DEF, 0,
	smq_setup, mq_attach, mq_send_msg, mq_recv_msg, mq_detach, mq_teardown};
const struct ipc_mech ipc_mech_eventfd = {
	"eventfd", "eventfd", "blocking", "shared memory + eventfd", LS | DEF, 0,
	efd_setup, attach_nothing, efd_send, efd_recv, efd_detach, efd_teardown};
const struct ipc_mech ipc_mech_tcp = {
	"tcp", "tcp", "blocking", "TCP loopback, TCP_NODELAY", LS | DEF, 0,
	tcp_setup, sock_attach, fd_send, fd_recv, fd_detach, fd_teardown};
