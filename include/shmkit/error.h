/* shmkit — error codes.
 *
 * Every shmkit function reports failure as a negative errno value and success as 0 or a
 * non-negative count. The library keeps no global or thread-local error state, never
 * prints and never exits. The codes below have a documented shmkit meaning; any other
 * negative errno comes straight from the kernel call that failed. Each meaning has one
 * code across the library; shmkit_errors(7) has the table (e.g. -EMSGSIZE: larger than the
 * object allows; -ENOBUFS: the caller's buffer is too small for what is there).
 */
#ifndef SHMKIT_ERROR_H
#define SHMKIT_ERROR_H

#include <errno.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The codes with a shmkit-specific meaning, as X(errno, "message"). shmkit_strerror()
 * returns these messages; users may expand the list for their own tables. */
#define SHMKIT_ERRNO_MAP(X)                                                                   \
	X(EAGAIN, "would block: channel empty or full, or segment not ready yet")              \
	X(ETIMEDOUT, "timed out")                                                              \
	X(EPROTO, "incompatible shared-memory layout version")                                 \
	X(EBADMSG, "corrupt shared data (bad header, index or length)")                        \
	X(EMEDIUMTYPE, "segment holds another kind of object")                                 \
	X(ERANGE, "segment truncated or smaller than required")                                \
	X(ENOTUNIQ, "name or System V key held by something foreign (another program's "       \
		    "segment, or not a regular file)")                                        \
	X(EOWNERDEAD, "the owner or peer died")                                                \
	X(ENOTRECOVERABLE, "state not recoverable: a dead owner's lock was not repaired")      \
	X(EPIPE, "peer closed the channel (end of stream, or the reader is gone)")              \
	X(ECONNABORTED, "the producer aborted the stream before its end")                      \
	X(EDEADLK, "would wait while holding unpublished (MORE) releases: flush first")        \
	X(EMSGSIZE, "message, key or value larger than the maximum the object allows")          \
	X(EBUSY, "already in use (another process holds that role)")                           \
	X(EEXIST, "segment already exists")                                                    \
	X(ENOENT, "no such segment (or key)")                                                  \
	X(EPERM, "not ours: owned, created or writable by another user, or not sealed "       \
		 "(or operation not permitted)")                                              \
	X(EACCES, "permission denied")                                                         \
	X(EINVAL, "invalid argument (bad name, size or option)")                               \
	X(ENOMEM, "out of memory")                                                             \
	X(ENOSPC, "no space left (table full, shared memory full, or a system limit)")         \
	X(EFBIG, "larger than the system allows (System V: the kernel.shmmax limit)")           \
	X(ENOTSUP, "not supported on this system (e.g. no huge pages configured)")             \
	X(EOVERFLOW, "counter overflow")                                                       \
	X(EINTR, "interrupted by a signal")                                                    \
	X(EBADF, "bad file descriptor")                                                        \
	X(ESRCH, "no such process")                                                            \
	X(ESTALE, "stale: changed or overwritten since it was read")                           \
	X(ENOBUFS, "the caller's buffer is smaller than the message or value")

/* Returns a static, human-readable message for a shmkit return value (negative errno).
 * Accepts positive errno values too. Never returns NULL; thread-safe. */
SHMKIT_API const char *shmkit_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif
