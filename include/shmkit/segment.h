/* shmkit — named shared-memory segments.
 *
 * A segment is a piece of shared memory with a validated shmkit header in front of the
 * caller's data. Three backends sit behind one API:
 *   - POSIX     shm_open("/shmkit.<name>") + ftruncate + mmap (the default);
 *   - System V  shmget/shmat/shmdt/shmctl, addressed by a key derived from the name or by
 *               an explicit key (opts.sysv_key), e.g. the 12345 of the classic example;
 *   - memfd     memfd_create, sealed against shrinking and growing; shared by fork() or by
 *               passing its descriptor over a UNIX socket (shmkit_segment_send_fd()).
 *
 * Creation is exclusive (O_EXCL / IPC_EXCL) with owner-only permissions (0600) unless the
 * caller asks otherwise. Opening validates the header against what the operating system
 * reports. Names are 1..SHMKIT_NAME_MAX characters of [A-Za-z0-9._-]; anything else is
 * -EINVAL, never a path.
 *
 * Trust (docs/design.md, "Trust model"; shmkit_segment(3)): an object is ours only when
 * every identity the kernel keeps is our euid (System V: owner uid AND creator cuid;
 * POSIX and memfd: the file's owner), its mode grants no group/other write, and the
 * header's creator uid is ours too. Anything else is refused with -EPERM unless
 * SHMKIT_SEG_FOREIGN_UID is given. Whatever is at a POSIX name that is not a regular file
 * (FIFO, socket, directory, symlink) is foreign (-ENOTUNIQ) and never blocks a call. A
 * descriptor is judged by what it is: sealed against shrinking and growing (memfd), or
 * the file linked in /dev/shm under its shmkit name (POSIX); anything else is -EPERM.
 *
 * Errors from open (all negative errno):
 *   -ENOENT       no such segment
 *   -EAGAIN       exists but its creator has not published it yet (state INITIALIZING)
 *   -EPROTO       written by an incompatible shmkit layout version
 *   -EBADMSG      corrupt header (bad checksum, impossible sizes, wrong name)
 *   -EMEDIUMTYPE  holds another kind of object than opts.kind asks for
 *   -ERANGE       truncated: smaller than its header says, or than opts.min_size
 *   -ENOTUNIQ     not a shmkit segment (foreign data at that System V key / name, or not a
 *                 regular file at the POSIX name)
 *   -EPERM        not ours (see Trust) and SHMKIT_SEG_FOREIGN_UID not given; open_fd: a
 *                 descriptor neither sealed nor the POSIX file linked under its name
 *
 * Thread safety: the functions taking a `struct shmkit_segment *` may be called from several
 * threads for the same handle except shmkit_segment_close(), which must be the last call.
 */
#ifndef SHMKIT_SEGMENT_H
#define SHMKIT_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Longest segment name, in characters (without the terminating NUL). */
#define SHMKIT_NAME_MAX 200

enum shmkit_backend {
	SHMKIT_BACKEND_ANY = 0,   /* open/stat/remove: POSIX first, then System V; create: POSIX */
	SHMKIT_BACKEND_POSIX = 1,
	SHMKIT_BACKEND_SYSV = 2,
	SHMKIT_BACKEND_MEMFD = 3,
};

/* What a segment holds; recorded at creation, checked by opens that ask for a kind. */
enum shmkit_kind {
	SHMKIT_KIND_ANY = 0,    /* open: accept any kind; create: same as RAW */
	SHMKIT_KIND_RAW = 1,    /* caller-defined bytes */
	SHMKIT_KIND_STREAM = 2, /* SPSC stream channel */
	SHMKIT_KIND_PUBSUB = 3, /* 1→N publish/subscribe channel */
	SHMKIT_KIND_QUEUE = 4,  /* N→M work queue */
	SHMKIT_KIND_TABLE = 5,  /* shared lookup table / cache */
};

enum shmkit_segment_state {
	SHMKIT_SEG_INITIALIZING = 1, /* created, creator still filling it in */
	SHMKIT_SEG_READY = 2,        /* published: safe to open and use */
};

/* Flags for shmkit_segment_opts.flags. */
#define SHMKIT_SEG_HUGEPAGES 0x1u   /* create: back with huge pages (-ENOTSUP if none) */
#define SHMKIT_SEG_FOREIGN_UID 0x2u /* open: accept a segment that is not ours (Trust) */
#define SHMKIT_SEG_DEFER_READY 0x4u /* create: stay INITIALIZING until shmkit_segment_publish() */
#define SHMKIT_SEG_RDONLY 0x8u      /* open: map read-only */
#define SHMKIT_SEG_PERSISTENT 0x10u /* create: persistent lifetime (see Lifetimes below) */

/* Lifetimes (docs/design.md, "Lifetimes and removal"). Every object records one in its
 * header at creation, chosen with SHMKIT_SEG_PERSISTENT (the library's default is
 * ephemeral; every kind passes its opts.seg.flags through):
 *   - ephemeral: garbage once its creator is dead and nobody has it attached or mapped;
 *     `shmkit gc` removes it then. Right for a channel between two running programs.
 *   - persistent: data meant to outlive its creator (a table, a pub/sub channel with
 *     history); once published, `shmkit gc` never removes it, only
 *     shmkit_segment_unlink(), _remove(), _remove_exact() or `shmkit rm` do.
 * The lifetime is advice to whoever collects garbage; the kernel keeps either kind until
 * it is removed (System V, POSIX) or its last descriptor and mapping go (memfd, whose
 * lifetime is shown but never acted on). */
enum shmkit_lifetime {
	SHMKIT_LIFETIME_UNKNOWN = 0,   /* header unreadable */
	SHMKIT_LIFETIME_EPHEMERAL = 1,
	SHMKIT_LIFETIME_PERSISTENT = 2,
};

/* Options; pass NULL for all defaults. Zero in any field means "the default". */
struct shmkit_segment_opts {
	uint32_t backend;  /* enum shmkit_backend */
	uint32_t kind;     /* create: kind to record (0 = RAW); open: kind required (0 = any) */
	uint32_t mode;     /* create: permission bits, e.g. 0600 (0 = 0600); umask not applied */
	uint32_t flags;    /* SHMKIT_SEG_* */
	int32_t sysv_key;  /* System V: explicit key; 0 = derived from the name */
	uint32_t reserved; /* must be 0 */
	uint64_t min_size; /* open: smallest acceptable data size, else -ERANGE */
};

/* A snapshot of one segment, as discovered or stat'ed. Plain data, caller-owned. */
struct shmkit_segment_info {
	char name[SHMKIT_NAME_MAX + 1]; /* shmkit name ("" when the header is unreadable) */
	uint32_t backend;               /* enum shmkit_backend */
	uint32_t kind;                  /* enum shmkit_kind, 0 when unknown */
	uint32_t state;                 /* enum shmkit_segment_state, 0 when unknown */
	int32_t sysv_key;               /* System V key, 0 otherwise */
	int32_t sysv_id;                /* System V shmid, -1 otherwise */
	uint64_t total_size;            /* bytes of the object as the OS reports it */
	uint64_t data_size;             /* bytes available to the caller (after the header) */
	uint32_t mode;                  /* permission bits */
	uint32_t uid;                   /* owner uid (OS view) */
	uint32_t gid;                   /* owner gid (OS view) */
	uint32_t creator_uid;           /* from the header */
	int32_t creator_pid;            /* from the header, 0 when unknown */
	int32_t creator_alive;          /* 1 alive, 0 dead, -1 unknown */
	int64_t nattach;                /* processes attached/mapping it; -1 unknown */
	uint64_t created_ns;            /* creation time, CLOCK_REALTIME nanoseconds */
	uint16_t ver_major;             /* layout version in the header */
	uint16_t ver_minor;
	int32_t status;                 /* 0 valid; else the negative errno open would return
					 * (-EPERM: valid but not ours) */
	uint32_t cuid;                  /* System V: the creator's uid the kernel keeps (cuid),
					 * which no IPC_SET changes; POSIX: = uid */
	uint32_t cgid;                  /* System V: the creator's gid (cgid); POSIX: = gid */
	uint32_t lifetime;              /* enum shmkit_lifetime, from the header */
	uint32_t reserved;              /* 0 */
	uint64_t dev;                   /* POSIX, memfd: the file's device and inode, which */
	uint64_t ino;                   /* with created_ns identify it; 0 for System V */
};

struct shmkit_segment;

/* Creates a segment with `size` bytes of caller data (zero-filled) and maps it.
 *   name  1..SHMKIT_NAME_MAX chars of [A-Za-z0-9._-]; may be NULL for memfd (label
 *         "memfd") and for System V with an explicit opts->sysv_key (name "key-<key>").
 * The segment is READY on return unless SHMKIT_SEG_DEFER_READY is given.
 * Returns 0 and *segp, or -EINVAL (bad name/size/option), -EEXIST (same name exists),
 * -ENOTUNIQ (System V key taken by a foreign segment or another name), -ENOTSUP (huge
 * pages requested but none configured), -EFBIG (System V: larger than kernel.shmmax),
 * -EACCES, -ENOMEM, -ENOSPC (/dev/shm full, System V shmall/shmmni reached). */
SHMKIT_API int shmkit_segment_create(const char *name, size_t size,
				     const struct shmkit_segment_opts *opts,
				     struct shmkit_segment **segp);

/* Opens and maps an existing named segment (POSIX or System V). With name NULL and
 * opts->sysv_key set, opens the System V segment at that key. Errors: see top of file. */
SHMKIT_API int shmkit_segment_open(const char *name, const struct shmkit_segment_opts *opts,
				   struct shmkit_segment **segp);

/* Opens a segment from a descriptor (memfd or POSIX shm) this process holds. The
 * descriptor is duplicated: the caller keeps ownership of `fd`. Decided by what the
 * descriptor is, never by its header: sealed with F_SEAL_SHRINK and F_SEAL_GROW (a memfd
 * segment), or unsealed but the very file linked at /dev/shm/shmkit.<its header's name>
 * (a POSIX segment); anything else, which its sender could truncate under us (SIGBUS), is
 * -EPERM even with SHMKIT_SEG_FOREIGN_UID. Not a regular file: -EINVAL. A header claiming
 * another backend: -EBADMSG. The trust rule applies as for names. */
SHMKIT_API int shmkit_segment_open_fd(int fd, const struct shmkit_segment_opts *opts,
				      struct shmkit_segment **segp);

/* Sends the segment's descriptor over a connected UNIX socket (SCM_RIGHTS), with a small
 * identifying message. Returns 0, -EBADF for System V segments (no descriptor), or the
 * sendmsg() error. */
SHMKIT_API int shmkit_segment_send_fd(int sock, const struct shmkit_segment *seg);

/* Receives a descriptor sent by shmkit_segment_send_fd() and opens it like
 * shmkit_segment_open_fd(). Blocks like recvmsg() on `sock`. Returns 0, -EPIPE when the
 * peer closed the socket, -EBADMSG when the message carries no descriptor, or an open
 * error. */
SHMKIT_API int shmkit_segment_recv_fd(int sock, const struct shmkit_segment_opts *opts,
				      struct shmkit_segment **segp);

/* Marks a segment created with SHMKIT_SEG_DEFER_READY as READY (release store: everything
 * written to the data before this call is visible to whoever opens it after). */
SHMKIT_API int shmkit_segment_publish(struct shmkit_segment *seg);

/* The caller's data area: `shmkit_segment_size()` bytes, aligned to 128 bytes. Valid until
 * shmkit_segment_close(). */
SHMKIT_API void *shmkit_segment_data(const struct shmkit_segment *seg);
SHMKIT_API size_t shmkit_segment_size(const struct shmkit_segment *seg);
SHMKIT_API uint32_t shmkit_segment_kind(const struct shmkit_segment *seg);
SHMKIT_API uint32_t shmkit_segment_backend(const struct shmkit_segment *seg);
SHMKIT_API const char *shmkit_segment_name(const struct shmkit_segment *seg);

/* The descriptor behind a POSIX or memfd segment (owned by the handle), -EBADF for
 * System V. */
SHMKIT_API int shmkit_segment_fd(const struct shmkit_segment *seg);

/* Fills `info` with the segment's current state as the OS reports it. */
SHMKIT_API int shmkit_segment_info(const struct shmkit_segment *seg,
				   struct shmkit_segment_info *info);

/* Removes the segment's name (shm_unlink / IPC_RMID) so nobody new can open it; memory
 * already mapped stays valid and is freed when the last process unmaps it. For memfd this
 * is a no-op. Returns 0 or a negative errno (-ENOENT if already removed). */
SHMKIT_API int shmkit_segment_unlink(struct shmkit_segment *seg);

/* The sleep/wake handshake's state of a segment used by a channel, pub/sub, queue or
 * waitset (docs/design.md, "Sleep/wake handshake"). Shared by every kind. */
struct shmkit_wait_stats {
	uint32_t fenced;   /* 1: a process joined without membarrier; wakers use a fence */
	uint32_t reserved;
	uint64_t missed;   /* wake-ups found only when a 100 ms liveness slice ended; 0 is
			    * the expected value (anything else is a bug worth reporting) */
};

/* Fills *st from the segment's header. Any process may call it at any time (also on a
 * read-only mapping). Returns 0 or -EINVAL (NULL argument). */
SHMKIT_API int shmkit_segment_wait_stats(const struct shmkit_segment *seg,
					 struct shmkit_wait_stats *st);

/* Unmaps/detaches and frees the handle. Does not remove the segment. NULL is accepted. */
SHMKIT_API int shmkit_segment_close(struct shmkit_segment *seg);

/* Removes a named segment without opening it for use, whatever lies at the name now (see
 * shmkit_segment_remove_exact() to remove only an object looked at before, and only one of
 * ours). opts->backend narrows the search;
 * for System V the segment must be a shmkit segment of that name (or, with name NULL, at
 * opts->sysv_key), a foreign one is refused with -ENOTUNIQ. Returns the number of
 * segments removed (>= 1) or -ENOENT / another negative errno: -EACCES for another user's
 * segment (one the caller may not remove, or, System V, not even read at the name's key). */
SHMKIT_API int shmkit_segment_remove(const char *name, const struct shmkit_segment_opts *opts);

/* Removes the object `seen` describes (filled by shmkit_segment_stat() or _list()) only if
 * it is still that very object and it is ours:
 *   - POSIX: the file at the name must have seen->dev and seen->ino, and, when the header
 *     was readable then, the same creation stamp (created_ns, creator_pid); the file is
 *     checked through a descriptor, then the name is looked at again right before
 *     shm_unlink(). Linux has no "unlink if this inode" call: an object removed and
 *     recreated under the same name in the microseconds between that last look and the
 *     unlink is the one residual window (docs/design.md, "Lifetimes and removal").
 *   - System V: the segment seen->sysv_id, with the same key and creation stamp, removed
 *     with IPC_RMID on that shmid: no window, as the kernel does not reuse a shmid until
 *     its slot's sequence number wraps.
 * `flags`: 0 or SHMKIT_SEG_FOREIGN_UID, which also removes an object that is not ours by
 * the trust rule (Trust, above) or not a shmkit segment at all.
 * Returns 0 when removed, or -ENOENT (gone already), -ESTALE (the name or key now holds
 * another object: recreated since it was seen; nothing removed), -EPERM (not ours),
 * -ENOTUNIQ (not a shmkit segment: no shmkit header, or not a regular file), -EACCES (the
 * kernel refuses: another user's object), -EINVAL (memfd, a bad name or flag). The
 * lifetime is not looked at: deciding what is garbage is the caller's business. */
SHMKIT_API int shmkit_segment_remove_exact(const struct shmkit_segment_info *seen,
					   uint32_t flags);

/* Describes a named segment (or, with name NULL, the System V segment at opts->sysv_key)
 * without keeping it mapped. Corrupt and foreign segments are described too: the call
 * returns 0 and info->status holds the error open would give. Returns -ENOENT when there
 * is no such object. */
SHMKIT_API int shmkit_segment_stat(const char *name, const struct shmkit_segment_opts *opts,
				   struct shmkit_segment_info *info);

/* Lists every shmkit segment of the named backends (POSIX objects named shmkit.*, System V
 * segments with a shmkit header), including corrupt ones (status != 0). Returns the count
 * and a malloc'ed array in *infop (free with shmkit_segment_list_free()), or a negative
 * errno. */
SHMKIT_API int shmkit_segment_list(struct shmkit_segment_info **infop);
SHMKIT_API void shmkit_segment_list_free(struct shmkit_segment_info *info);

/* Checks a name against the rules above: 0 or -EINVAL. */
SHMKIT_API int shmkit_name_valid(const char *name);

/* The System V key shmkit derives from a name (never IPC_PRIVATE); -EINVAL for a bad name. */
SHMKIT_API int shmkit_sysv_key_for_name(const char *name, int32_t *keyp);

/* Short names for enums, for printing: "posix", "sysv", "memfd"; "raw", "stream", ... */
SHMKIT_API const char *shmkit_backend_name(uint32_t backend);
SHMKIT_API const char *shmkit_kind_name(uint32_t kind);

/* Whether the process `pid` is alive; when `start_ticks` is non-zero the process must also
 * have that start time (field 22 of /proc/PID/stat), so a recycled pid reads as dead.
 * Returns 1 alive, 0 dead. */
SHMKIT_API int shmkit_pid_alive(int32_t pid, uint64_t start_ticks);

/* The start time of `pid` (0 = this process) in clock ticks since boot, or 0 on error. */
SHMKIT_API uint64_t shmkit_pid_start_ticks(int32_t pid);

/* Copies n bytes from src to dst the way shmkit copies message payloads (the send and
 * receive calls of every kind use it): one memcpy below 1 MiB; from 1 MiB up, memcpy in
 * 256 KiB pieces, because a single huge memcpy makes glibc switch to non-temporal stores,
 * which were 4-5 times slower than cached copies of pieces where shmkit was measured
 * (bench/chan.c: shmkit-spin-copy against ring-copy). For a caller that fills a loan or
 * copies a peeked message out itself, so that it copies as fast as shmkit's own copying
 * calls. The ranges must not overlap. Thread-safe; touches nothing but the two ranges. */
SHMKIT_API void shmkit_copy(void *dst, const void *src, size_t n);

#ifdef __cplusplus
}
#endif

#endif
