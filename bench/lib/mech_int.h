/* shmkit benchmarks — what the built-in mechanisms share (bench/lib/mech*.c).
 *
 *   mech.c          the list of built-in mechanisms, with what each one measures
 *   mech_util.c     the helpers of mech.h: payload frames and checks, spinning, the abort flag
 *   mech_shm.c      plain shared memory: the floor, futex, the minimal SPSC rings
 *   mech_shmkit.c   shmkit's kinds: stream channel, pub/sub, work queue
 *   mech_kernel.c   the kernel's: pipe, sockets, TCP, message queues, eventfd
 *
 * Here: the includes, the constants, small helpers (static inline), and each file's
 * mechanisms for the list.
 */
#ifndef SHMKIT_BENCH_MECH_INT_H
#define SHMKIT_BENCH_MECH_INT_H

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "common.h"
#include "mech.h"
#include "shmkit.h"

#define SEQPACKET_PIECE (64u << 10)
#define EVENTFD_SLOTS 4u
#define BATCH 16u

static inline int seterr(struct ipc_link *l, int err, const char *what)
{
	snprintf(l->err, sizeof l->err, "%s: %s", what, strerror(-err));
	return err;
}

/* A private message buffer of at least `size` bytes (at least 8), 64-byte aligned. */
static inline uint8_t *private_buf(size_t size)
{
	void *p = NULL;
	size_t n = (size < 64 ? 64 : size + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, n) != 0)
		return NULL;
	memset(p, 0, n);
	return p;
}

/* Blocking-call wrapper: restarts after EINTR unless the run is being aborted. */
static inline int again(void)
{
	return errno == EINTR && !ipc_abort;
}

/* Marks the first and last byte of a private buffer as message n's. */
static inline void mark(uint8_t *buf, size_t size, uint64_t n)
{
	if (size) {
		buf[0] = ipc_byte(n);
		buf[size - 1] = ipc_byte(n);
	}
}

/* For mechanisms whose shared objects both processes use as inherited through fork():
 * nothing to do per side. */
static inline int attach_nothing(struct ipc_link *l, int side)
{
	(void)l;
	(void)side;
	return 0;
}

#define LS (IPC_CAP_LATENCY | IPC_CAP_STREAM)
#define DEF IPC_CAP_DEFAULT

/* mech_shm.c: the capacity both rings and shmkit channels use. */
uint64_t ipc_ring_capacity(size_t size);

/* The mechanisms, for the list in mech.c. */
extern const struct ipc_mech ipc_mech_floor, ipc_mech_futex, ipc_mech_ring, ipc_mech_ring_inband,
	ipc_mech_ring_copy, ipc_mech_ring_batch;
extern const struct ipc_mech ipc_mech_shmkit_spin, ipc_mech_shmkit_block, ipc_mech_shmkit_copy,
	ipc_mech_shmkit_batch, ipc_mech_shmkit_pubsub, ipc_mech_shmkit_queue;
extern const struct ipc_mech ipc_mech_pipe, ipc_mech_unix_stream, ipc_mech_unix_seqpacket,
	ipc_mech_posix_mq, ipc_mech_sysv_mq, ipc_mech_eventfd, ipc_mech_tcp;

#endif
