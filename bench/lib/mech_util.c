/* shmkit benchmarks — the helpers every mechanism uses (mech.c lists every mechanism; mech.h
 * is the interface). */
#include "mech_int.h"

volatile sig_atomic_t ipc_abort;

/* --- helpers ------------------------------------------------------------------------------ */

int ipc_check(const void *p, size_t len, size_t want, uint64_t n)
{
	const uint8_t *b = p;
	uint8_t x = ipc_byte(n);
	if (len != want || (len && (b[0] != x || b[len - 1] != x)))
		return -EBADMSG;
	return 0;
}

/* The payload frames of this process: what a zero-copy sender copies into its loan and what
 * a receiver compares a message with. Body zero, the first and last byte the message's
 * (mark()); as large as the largest message so far. */
static uint8_t *frame_tx, *frame_rx;
static size_t frame_cap;

static bool frames_fit(size_t size)
{
	if (size <= frame_cap)
		return true;
	void *a = calloc(1, size), *b = calloc(1, size);
	if (!a || !b) {
		free(a);
		free(b);
		return false;
	}
	free(frame_tx);
	free(frame_rx);
	frame_tx = a;
	frame_rx = b;
	frame_cap = size;
	return true;
}

void ipc_fill(void *dst, size_t size, uint64_t n)
{
	if (!frames_fit(size)) {
		memset(dst, ipc_byte(n), size); /* out of memory: still a valid message */
		return;
	}
	mark(frame_tx, size, n);
	memcpy(dst, frame_tx, size);
}

int ipc_check_all(const void *p, size_t len, size_t want, uint64_t n)
{
	if (len != want)
		return -EBADMSG;
	if (!frames_fit(len))
		return ipc_check(p, len, want, n);
	mark(frame_rx, len, n);
	return memcmp(p, frame_rx, len) ? -EBADMSG : 0;
}

int ipc_spin_pause(uint32_t *count)
{
	uint32_t c = ++*count;
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
	if ((c & 1023u) == 0) {
		if (ipc_abort)
			return -EINTR;
		/* After ~2^16 polls (tens of µs) the peer is probably not running: let it. */
		if (c >= (1u << 16))
			sched_yield();
	}
	return 0;
}
