/* shmkit — shared-memory IPC for Linux. The umbrella header: include this one.
 *
 * Concepts, one header each:
 *   shmkit/error.h    return codes and shmkit_strerror()
 *   shmkit/segment.h  named shared-memory segments (POSIX, System V, memfd)
 *   shmkit/sync.h     event, semaphore, robust mutex, seqlock living in shared memory
 *   shmkit/chan.h     stream channels: SPSC, zero-copy, blocking, dead-peer aware
 */
#ifndef SHMKIT_H
#define SHMKIT_H

#include "shmkit/version.h"
#include "shmkit/error.h"
#include "shmkit/segment.h"
#include "shmkit/sync.h"
#include "shmkit/chan.h"

#endif
