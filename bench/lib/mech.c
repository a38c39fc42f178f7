/* shmkit benchmarks — the built-in IPC mechanisms (see ipc.h for the interface).
 *
 *   floor            one 64-bit word per direction, each on its own 128-byte line; the
 *                    receiver spins until the word changes: the cache-line round trip, the
 *                    physical floor of any shared-memory hand-off (no payload)
 *   futex            the same words, FUTEX_WAIT / FUTEX_WAKE on every message, the payload in
 *                    a shared slot per direction (written and read in place): the floor for
 *                    "wake a sleeping process and hand it a message" (ping-pong only)
 *   ring             a minimal SPSC ring (the same record layout as shmkit's: 8-byte header,
 *                    contiguous payload, padding at the end): cached positions, one
 *                    release store per message, busy-poll. The producer writes the payload
 *                    in place (zero copy), the consumer reads all of it in place
 *   ring-copy        the same ring, copying in and out with shmkit_copy(), as shmkit's
 *                    copying calls do (in 256 KiB pieces from 1 MiB up, clear of the
 *                    large-memcpy cliff): the channel against the ring, same copy
 *   ring-inband      the same ring publishing in band, as shmkit does: the consumer polls the
 *                    next record's header (and prefetches its second line), the producer
 *                    zeroes the slot after each record before storing the header; no tail.
 *                    The floor of that protocol, with nothing else on the critical path
 *   ring-batch       the zero-copy ring publishing its position every 16 messages (or 64 KiB)
 *   shmkit-spin      shmkit stream channel, loan/commit and peek/release (zero copy),
 *                    default adaptive spin, then futex
 *   shmkit-block     the same with SHMKIT_CHAN_NO_SPIN: every wait sleeps on the futex
 *   shmkit-spin-copy shmkit_chan_send_wait / shmkit_chan_recv_wait (one copy each side)
 *   shmkit-spin-batch zero copy, SHMKIT_CHAN_MORE on 15 of every 16 commits and releases
 *                    (or every 64 KiB: a batch stays well below the ring capacity)
 *   shmkit-pubsub    shmkit pub/sub, one subscriber, block policy, zero copy both ways,
 *                    default spin: the single-pair cost of the one-to-many channel
 *   shmkit-queue     shmkit work queue, one producer and one consumer, loan/commit and
 *                    peek/release in its fixed-size slots, default spin
 *   pipe, unix-stream, unix-seqpacket, tcp (loopback, TCP_NODELAY)
 *                    write/read of a private buffer; seqpacket in messages of <= 64 KiB
 *   posix-mq, sysv-mq message queues, in messages of at most the system limit (msgsize_max,
 *                    msgmax: 8 KiB by default)
 *   eventfd          shared memory slots (4 per direction) with two semaphore-mode eventfds
 *                    per direction counting full and free slots: the usual "shared memory +
 *                    eventfd doorbell" design
 *
 * Everything is created by setup() in the parent before fork(), anonymously where the OS
 * allows it (anonymous shared memory, memfd channels, socketpairs, POSIX queues unlinked
 * at once), so the only object that can outlive a crash of the parent is the System V
 * message queue, which teardown() removes on every path the parent survives.
 */
/* Each mechanism lives with its family: mech_shm.c, mech_shmkit.c, mech_kernel.c (the list of
 * files is at the top of mech_int.h). */
#include <string.h>

#include "mech_int.h"

/* --- the table --------------------------------------------------------------------------- */

const struct ipc_mech *const ipc_mechs[] = {
	&ipc_mech_floor,        &ipc_mech_futex,         &ipc_mech_ring,
	&ipc_mech_ring_inband,  &ipc_mech_ring_copy,     &ipc_mech_ring_batch,
	&ipc_mech_shmkit_spin,  &ipc_mech_shmkit_block,  &ipc_mech_shmkit_copy,
	&ipc_mech_shmkit_batch, &ipc_mech_shmkit_pubsub, &ipc_mech_shmkit_queue,
	&ipc_mech_pipe,         &ipc_mech_unix_stream,   &ipc_mech_unix_seqpacket,
	&ipc_mech_posix_mq,     &ipc_mech_sysv_mq,       &ipc_mech_eventfd,
	&ipc_mech_tcp,          NULL,
};

const struct ipc_mech *ipc_find(const struct ipc_mech *const *list, const char *name)
{
	for (const struct ipc_mech *const *m = list ? list : ipc_mechs; *m; m++)
		if (strcmp((*m)->name, name) == 0)
			return *m;
	return NULL;
}
