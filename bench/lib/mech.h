/* shmkit benchmarks — the IPC mechanism interface: what a mechanism implements, the
 * built-in mechanisms (bench/lib/mech.c lists them, bench/lib/mech_*.c implement them) and
 * the helpers every mechanism uses (bench/lib/mech_util.c). The driver that measures
 * them is ipc.h; bench/peers/ adds mechanisms of other libraries through this interface.
 *
 * A mechanism is a vtable (struct ipc_mech). One instance (struct ipc_link) carries one
 * message size between two processes, side A (the parent: pinger, producer) and side B (a
 * forked child: ponger, consumer):
 *
 *   parent: setup()            creates every kernel object / shared region, before fork()
 *   fork
 *   both:   attach(side)       opens its ends (closing the other side's descriptors)
 *   both:   send() / recv()    one message each way, as the driver's schedule says
 *   both:   detach()           closes its ends
 *   parent: teardown()         removes what setup() created; also after any failure, so
 *                              nothing (segments, queues, sockets) outlives the run
 *
 * A message is `size` bytes. send() writes it — the zero-copy mechanisms by one memcpy of a
 * prepared private frame into the loan (ipc_fill()), the copying ones by copying a private
 * buffer; either way the first and last bytes carry a byte derived from the message count —
 * and recv() checks what arrived (-EBADMSG otherwise), so a benchmark that loses or
 * reorders messages fails instead of printing numbers: a zero-copy receiver compares every
 * byte in place with one memcmp (ipc_check_all()), a copying one copies the message out and
 * checks its first and last bytes. Either way every byte crosses
 * from one CPU to the other. The cache-line floor carries no payload and ignores
 * the size.
 *
 * Waiting: spinning mechanisms poll with `pause`, yielding the CPU after a long fruitless
 * spin (so a run confined to one CPU still finishes), and give up with -EINTR when
 * ipc_abort is set — by the driver's watchdog, a failing peer or SIGINT/SIGTERM. Blocking
 * system calls are interrupted by the same signals (the driver installs its handlers
 * without SA_RESTART).
 */
#ifndef SHMKIT_BENCH_MECH_H
#define SHMKIT_BENCH_MECH_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* send()/recv() flag: more messages follow at once, a mechanism that batches may defer
 * publishing (shmkit: SHMKIT_CHAN_MORE; the raw ring: no tail/head store). */
#define IPC_MORE 0x1u

/* ipc_mech.caps */
#define IPC_CAP_LATENCY 0x1u /* measured as a ping-pong */
#define IPC_CAP_STREAM 0x2u  /* measured as a one-way stream */
#define IPC_CAP_NOSIZE 0x4u  /* carries no payload: size is ignored (the floor) */
#define IPC_CAP_DEFAULT 0x8u /* part of `shmkit bench`'s default list */

enum { IPC_SIDE_A = 0, IPC_SIDE_B = 1 };

struct ipc_mech;

/* One mechanism instance for one message size. The driver fills mech, size and side; the
 * mechanism owns priv. After fork() each process has its own copy of this struct (priv
 * points into memory both inherited). */
struct ipc_link {
	const struct ipc_mech *mech;
	size_t size;
	int side;
	void *priv;
	uint64_t tx, rx; /* messages sent / received by this side (the payload byte) */
	char err[160];   /* what failed, for the report (setup/attach errors) */
};

struct ipc_mech {
	const char *name;   /* what --mechanisms takes: "shmkit-spin" */
	const char *family; /* JSON "mechanism": "shmkit" */
	const char *mode;   /* JSON "mode": "spin" */
	const char *label;  /* table label */
	unsigned caps;      /* IPC_CAP_* */
	unsigned batch;     /* stream: publish every `batch` messages (IPC_MORE between); 0/1 = each */
	/* Each returns 0 or a negative errno (and may describe the failure in l->err). */
	int (*setup)(struct ipc_link *l);
	int (*attach)(struct ipc_link *l, int side);
	int (*send)(struct ipc_link *l, unsigned flags);
	int (*recv)(struct ipc_link *l, unsigned flags);
	void (*detach)(struct ipc_link *l);
	void (*teardown)(struct ipc_link *l); /* must accept a failed or partial setup */
	/* Optional, side A after a run that went through, before detach: 0, or an error (with
	 * l->err) that fails the row — shmkit's kinds check that no wake-up was found only by
	 * a liveness slice (shmkit_segment_wait_stats()). */
	int (*verify)(struct ipc_link *l);
};

/* Set (to a nonzero value) to make every wait give up with -EINTR. */
extern volatile sig_atomic_t ipc_abort;

/* The built-in mechanisms, in display order, terminated by NULL. */
extern const struct ipc_mech *const ipc_mechs[];

/* The mechanism named `name` among `list` (NULL = ipc_mechs), or NULL. */
const struct ipc_mech *ipc_find(const struct ipc_mech *const *list, const char *name);

/* --- helpers for mechanisms (also used by bench/peers) ------------------------------------ */

/* The payload byte of message number n (never 0, so fresh zeroed memory never passes). */
static inline uint8_t ipc_byte(uint64_t n)
{
	return (uint8_t)(n % 251u + 1u);
}

/* Checks the first and last byte of a received message of `len` bytes against message
 * number n; 0 or -EBADMSG. `want` is the size the sender used. For messages the receiver
 * copied out (the copy has read every byte already). */
int ipc_check(const void *p, size_t len, size_t want, uint64_t n);

/* Same, reading every byte: for messages read in place (zero copy), so that a zero-copy
 * receiver reads the payload it is given, as a real one would, instead of two bytes. One
 * memcmp against the expected frame, as an application checks or checksums what it got,
 * so loan vs copy compares the mechanism, not the driver's loop. */
int ipc_check_all(const void *p, size_t len, size_t want, uint64_t n);

/* Writes message n's payload of `size` bytes at dst as an application fills a loan: one
 * memcpy from a prepared private frame (whose first and last byte carry ipc_byte(n)). */
void ipc_fill(void *dst, size_t size, uint64_t n);

/* Spin helper: call once per fruitless poll with a counter starting at 0. Executes `pause`,
 * yields the CPU now and then after a long spin, and returns -EINTR once ipc_abort is set. */
int ipc_spin_pause(uint32_t *count);

#ifdef __cplusplus
}
#endif

#endif
