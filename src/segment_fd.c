/* shmkit — named shared-memory segments: descriptor passing.
 * The layout, the protocol and the crash story are at the top of src/segment.c; what the
 * segment's files share is in src/segment_impl.h. */
#include "segment_impl.h"

/* --- descriptor passing -------------------------------------------------------------- */

/* The message that travels with the descriptor: lets the receiver tell a shmkit hand-over
 * from anything else arriving on the socket. */
static const char fd_msg[8] = {'s', 'h', 'm', 'k', 'i', 't', 'f', 'd'};

int shmkit_segment_send_fd(int sock, const struct shmkit_segment *seg)
{
	if (!seg)
		return -EINVAL;
	if (seg->fd < 0)
		return -EBADF;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {.iov_base = (void *)fd_msg, .iov_len = sizeof fd_msg};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &seg->fd, sizeof(int));
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof fd_msg)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

int shmkit_segment_recv_fd(int sock, const struct shmkit_segment_opts *opts,
			   struct shmkit_segment **segp)
{
	struct nopts o;
	if (!segp)
		return -EINVAL;
	*segp = NULL;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	char data[sizeof fd_msg];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	/* Collect every descriptor that arrived, keep the first, close the rest: a peer must
	 * not be able to leak descriptors into this process. */
	int fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
			if (fd < 0)
				fd = f;
			else
				close(f);
		}
	}
	if (fd < 0)
		return -EBADMSG;
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n != (ssize_t)sizeof fd_msg ||
	    memcmp(data, fd_msg, sizeof fd_msg) != 0) {
		close(fd);
		return -EBADMSG;
	}
	return shmkit__seg_open_fd_owned(fd, &o, segp);
}
