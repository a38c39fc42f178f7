/* shmkit — synchronization primitives: time and the raw futex.
 * The layouts, the protocols and what a dead peer leaves are at the top of src/sync.c;
 * what the sync files share is in src/sync_impl.h. */
#include "sync_impl.h"

/* --- time ------------------------------------------------------------------------------ */

static_assert(sizeof(time_t) == 8, "deadlines add up to 585 years of seconds to time_t");

uint64_t shmkit_now_ns(void)
{
	struct timespec ts;
	/* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec *shmkit_deadline_after(struct timespec *deadline, uint64_t timeout_ns)
{
	struct timespec now;
	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t sec = timeout_ns / 1000000000u;
	long nsec = now.tv_nsec + (long)(timeout_ns % 1000000000u);
	if (nsec >= 1000000000L) {
		nsec -= 1000000000L;
		sec++;
	}
	/* No overflow: sec <= UINT64_MAX / 1e9 + 1 (about 585 years) and time_t is 64-bit. */
	deadline->tv_sec = now.tv_sec + (time_t)sec;
	deadline->tv_nsec = nsec;
	return deadline;
}

/* --- raw futex ------------------------------------------------------------------------- */

/* The futex calls take the atomic word's address: the kernel reads and compares it as a
 * plain u32 under its own lock, which is what C11 atomics on the same word expect. */
int shmkit__sync_futex_wait_word(const _Atomic uint32_t *word, uint32_t expected,
				 const struct timespec *deadline)
{
	/* FUTEX_WAIT_BITSET takes an absolute timeout, on CLOCK_MONOTONIC unless
	 * FUTEX_CLOCK_REALTIME is given; no _PRIVATE flag: the word is shared between
	 * processes. */
	long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, deadline, NULL,
			 FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	switch (errno) {
	case EAGAIN: /* the word no longer held `expected`: as good as a wake-up */
		return 0;
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case EINTR:
		return -EINTR;
	default: /* EINVAL (bad deadline, misaligned word), EFAULT */
		return -errno;
	}
}

int shmkit__sync_futex_wake_word(const _Atomic uint32_t *word, int count)
{
	/* The kernel wakes at least one waiter even for count 0, so never ask it to. */
	if (count <= 0)
		return 0;
	long r = syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
	if (r < 0)
		return -errno;
	return r > INT_MAX ? INT_MAX : (int)r;
}

int shmkit_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *deadline)
{
	return shmkit__sync_futex_wait_word((const _Atomic uint32_t *)(const void *)word, expected,
					    deadline);
}

int shmkit_futex_wake(uint32_t *word, int count)
{
	return shmkit__sync_futex_wake_word((const _Atomic uint32_t *)(const void *)word, count);
}
