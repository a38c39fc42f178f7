/* shmkit — declarations shared between the library's modules (never installed). */
#ifndef SHMKIT_INTERNAL_H
#define SHMKIT_INTERNAL_H

#include <assert.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shmkit.h"

#define SHMKIT__LIKELY(x) __builtin_expect(!!(x), 1)
#define SHMKIT__UNLIKELY(x) __builtin_expect(!!(x), 0)
/* For the hot paths: a slow path kept out of line saves the fast one its register saves;
 * a callee inlined into its one hot caller saves the call. */
#define SHMKIT__NOINLINE __attribute__((noinline))
#define SHMKIT__ALWAYS_INLINE inline __attribute__((always_inline))

/* Fields written by different processes are kept this far apart: one 64-byte line plus the
 * adjacent line the L2 prefetcher pulls in with it (docs/design.md, "Shared layouts"). */
#define SHMKIT__SEPARATION 128

/* Every atomic that another process relies on must be lock-free, hence address-free: a
 * lock-based fallback would keep its lock in this process's private memory. */
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

/* One CPU relaxation step for spin loops. */
static inline void shmkit__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* --- segment header (the first SHMKIT__HDR_SIZE bytes of every segment) ---------------
 *
 *   offset size  field            written by / when
 *        0    8  magic            creator, before READY ("shmkit\0" + 0x1a)
 *        8    2  ver_major        creator; a different major is -EPROTO
 *       10    2  ver_minor        creator; newer minors stay readable
 *       12    4  kind             creator (enum shmkit_kind)
 *       16    4  hdr_size         creator (512)
 *       20    4  backend          creator (enum shmkit_backend)
 *       24    8  total_size       creator: header + data, equals the OS object size
 *       32    8  data_offset      creator (512)
 *       40    8  data_size        creator
 *       48    4  creator_uid      creator (euid)
 *       52    4  creator_pid      creator
 *       56    8  creator_start    creator: start time in clock ticks (/proc/PID/stat #22)
 *       64    8  created_ns       creator: CLOCK_REALTIME
 *       72    4  sysv_key         creator (0 unless System V)
 *       76    4  flags            creator (SHMKIT_SEG_HUGEPAGES, SHMKIT_SEG_PERSISTENT:
 *                                   the object's lifetime, docs/design.md, "Lifetimes and
 *                                   removal")
 *       80    4  name_len         creator
 *       84    4  reserved0        0
 *       88  208  name             creator, NUL-padded
 *      296  152  reserved         0
 *      448    8  checksum         creator: FNV-1a 64 over bytes [0, 448)
 *      456    4  state            creator: INITIALIZING, then READY (release store, last)
 *      460    4  wq_flags         any attacher: SHMKIT__WQ_FENCED when one joined the
 *                                   sleep/wake handshake in fenced mode (src/waitq_internal.h)
 *      464    8  wq_missed        any sleeper: liveness slices that found the condition
 *                                   true with no wake-up (should stay 0; statistics)
 *      472   40  reserved         0
 *
 * flags bits other than the two above are written 0 and ignored by openers.
 *
 * Bytes [0, 448) never change after creation, which is what lets an opener copy them once,
 * check the copy, and trust nothing else about the shared original.
 */
#define SHMKIT__HDR_SIZE 512u
/* Major 2: the lifetime bit in `flags`. A layout-1 peer reads a version-2 header as
 * -EPROTO, so an older `shmkit gc` keeps a persistent object it cannot understand ("creator
 * unknown, incompatible") instead of removing it as garbage. */
#define SHMKIT__LAYOUT_MAJOR 2u
#define SHMKIT__LAYOUT_MINOR 0u
#define SHMKIT__CHECKSUM_SPAN 448u

struct shmkit__seg_hdr {
	uint8_t magic[8];
	uint16_t ver_major;
	uint16_t ver_minor;
	uint32_t kind;
	uint32_t hdr_size;
	uint32_t backend;
	uint64_t total_size;
	uint64_t data_offset;
	uint64_t data_size;
	uint32_t creator_uid;
	int32_t creator_pid;
	uint64_t creator_start;
	uint64_t created_ns;
	int32_t sysv_key;
	uint32_t flags;
	uint32_t name_len;
	uint32_t reserved0;
	char name[208];
	uint8_t reserved1[152];
	uint64_t checksum;
	_Atomic uint32_t state;
	_Atomic uint32_t wq_flags;
	_Atomic uint64_t wq_missed;
	uint8_t reserved2[40];
};

static_assert(sizeof(struct shmkit__seg_hdr) == SHMKIT__HDR_SIZE, "header is 512 bytes");
static_assert(offsetof(struct shmkit__seg_hdr, ver_major) == 8, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, total_size) == 24, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, creator_start) == 56, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, name) == 88, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, checksum) == SHMKIT__CHECKSUM_SPAN, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, state) == 456, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, wq_flags) == 460, "layout");
static_assert(offsetof(struct shmkit__seg_hdr, wq_missed) == 464, "layout");

/* wq_flags bits. */
#define SHMKIT__WQ_FENCED 1u

/* The segment's shared header (the mapping's start: never the private copy). */
struct shmkit__seg_hdr *shmkit__segment_hdr(const struct shmkit_segment *seg);
static_assert(sizeof(((struct shmkit__seg_hdr *)0)->name) > SHMKIT_NAME_MAX, "name fits");

extern const uint8_t shmkit__magic[8];

/* FNV-1a, 64 bit. Detects corruption, not forgery: a hostile peer can recompute it. */
uint64_t shmkit__fnv1a64(const void *data, size_t len);

/* The checksum a header with these immutable bytes must carry. */
uint64_t shmkit__hdr_checksum(const struct shmkit__seg_hdr *hdr);

/* --- opening a kind's segment (src/segment.c) ------------------------------------------ */

/* Where a kind's _open() or _open_fd() finds its segment: by name, or, when by_fd, through
 * a descriptor. Lets the two public calls of a kind share one implementation. */
struct shmkit__seg_src {
	const char *name;
	int fd;
	bool by_fd;
};

/* shmkit_segment_open_fd(src->fd, o, segp) when src->by_fd, else
 * shmkit_segment_open(src->name, o, segp); returns what that returns. */
int shmkit__segment_open_src(const struct shmkit__seg_src *src,
			     const struct shmkit_segment_opts *o, struct shmkit_segment **segp);

/* The segment options a kind's opener passes on: the caller's `user` options (NULL: none),
 * requiring `kind` and at least `min_size` data bytes, read-only when `rdonly` (observers
 * never write). */
struct shmkit_segment_opts shmkit__kind_open_opts(const struct shmkit_segment_opts *user,
						  uint32_t kind, uint64_t min_size, bool rdonly);

/* Gives up a segment whose handle could not be made: unlinks it first when this process
 * created it (`created`: the name must not stay behind), then closes it. Returns err, so
 * that a caller can `return shmkit__segment_abandon(seg, created, err);`. */
int shmkit__segment_abandon(struct shmkit_segment *seg, bool created, int err);

/* --- copying ----------------------------------------------------------------------- */

/* memcpy for message payloads. Copies of 1 MiB and more go in 256 KiB pieces: one big
 * memcpy makes glibc switch to non-temporal stores, which on our machines is 4-5 times
 * slower than cached copies of pieces (docs/design.md, "Measuring", bench/chan.c). */
void shmkit__copy(void *dst, const void *src, size_t n);

/* --- locks --------------------------------------------------------------------------- */

/* shmkit_mutex_timedlock() with a deadline timeout_ns from now, read from the clock only
 * when the lock is not free at once (src/sync.c). */
int shmkit__mutex_lock_for(struct shmkit_mutex *m, uint64_t timeout_ns);

/* --- processes --------------------------------------------------------------------- */

/* Reads the start time (clock ticks since boot) of `pid`; 0 when it does not exist. */
uint64_t shmkit__proc_start(int32_t pid);

/* Reads a small text file into buf (NUL-terminated). Returns bytes read or -errno. */
long shmkit__read_file(const char *path, char *buf, size_t cap);

#endif
