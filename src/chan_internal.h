/* shmkit — internal hooks into src/chan.c for the waitset (src/wait.c). Never installed.
 *
 * A waitset sleeps on many channels at once, so it needs, for a stream consumer, the two
 * words of the channel's data queue (the futex word its producer bumps and the sleeper
 * count it checks before making the FUTEX_WAKE system call) and a readiness test. The test
 * reads shared words only — never the handle's private ring view, which the thread owning
 * the handle may be changing at the same time — so a waitset may call it from any thread,
 * including its epoll helper thread.
 */
#ifndef SHMKIT_CHAN_INTERNAL_H
#define SHMKIT_CHAN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct shmkit_chan;
struct shmkit__wq;

/* The consumer's data queue: *gen is the futex word, *sleepers the count the producer
 * checks (src/chan.c: wait_for() and wake()), *wq the handle's handshake state
 * (src/waitq_internal.h). 0, or -EPERM when `ch` is not the consumer. */
int shmkit__chan_consumer_waitq(const struct shmkit_chan *ch, _Atomic uint32_t **gen,
				_Atomic uint32_t **sleepers, const struct shmkit__wq **wq);

/* SHMKIT_WAIT_READABLE when the published tail differs from the published head (releases
 * held with SHMKIT_CHAN_MORE keep this true until the consumer flushes them: it must flush
 * before it waits), SHMKIT_WAIT_CLOSED after the producer closed. sc = seq_cst
 * loads (the re-check after registering as a sleeper), else acquire. */
unsigned shmkit__chan_consumer_poll(const struct shmkit_chan *ch, bool sc);

#endif
