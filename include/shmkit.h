/* shmkit — shared-memory IPC for Linux. The umbrella header: include this one.
 *
 * Concepts, one header each:
 *   shmkit/error.h    return codes and shmkit_strerror()
 *   shmkit/segment.h  named shared-memory segments (POSIX, System V, memfd)
 *   shmkit/sync.h     event, semaphore, robust mutex, seqlock living in shared memory
 *   shmkit/table.h    shared lookup table / cache with lock-free readers
 *   shmkit/chan.h     stream channels: SPSC, zero-copy, blocking, dead-peer aware
 *   shmkit/pubsub.h   publish/subscribe: 1 -> N on one ring, block or overwrite policy
 *   shmkit/queue.h    work queue: N -> M, each message to exactly one consumer
 *   shmkit/wait.h     waiting on many channels and events at once; epoll integration
 */
#ifndef SHMKIT_H
#define SHMKIT_H

#include "shmkit/version.h"
#include "shmkit/error.h"
#include "shmkit/segment.h"
#include "shmkit/sync.h"
#include "shmkit/table.h"
#include "shmkit/chan.h"
#include "shmkit/pubsub.h"
#include "shmkit/queue.h"
#include "shmkit/wait.h"

#endif
