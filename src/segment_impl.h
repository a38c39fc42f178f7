/* shmkit — what the files of the segment layer share (src/segment*.c). Never installed.
 *
 * The segment layer is one module in several files, one concern each:
 *   src/segment.c         the design (layout, protocol, crashes), names and keys, the header
 *                         and its validation, mapping (huge pages included), adopting a
 *                         mapping, the accessors, close
 *   src/segment_create.c  create on the three backends (POSIX, memfd, System V)
 *   src/segment_open.c    the trust rule, and opening what exists: by name on each backend,
 *                         or from a descriptor
 *   src/segment_fd.c      descriptor passing over a Unix socket
 *   src/segment_list.c    discovery: stat, info and list, with who maps what
 *   src/segment_remove.c  removal, by name and by identity (remove_exact)
 * Here: the handle, normalized options, the views the files pass each other, a few one-line
 * helpers, and, at the end, what one file calls in another: shmkit__seg_* (hidden, like
 * every symbol the version script does not export).
 */
#ifndef SHMKIT_SEGMENT_IMPL_H
#define SHMKIT_SEGMENT_IMPL_H

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* "shmkit\0" followed by 0x1a, read as a little-endian 64-bit word; stored with one atomic
 * 8-byte store so a concurrent opener sees all of it or none of it. */
#define SHMKIT__MAGIC 0x1a0074696b6d6873ull

enum { STATE_BLANK = 0 }; /* fresh zeroed memory: the header is being written */

struct shmkit_segment {
	uint8_t *base;        /* start of the mapping (the header) */
	size_t map_size;      /* bytes mapped */
	uint8_t *data;        /* base + data_offset (from the private header copy) */
	size_t data_size;     /* from the private header copy */
	uint32_t backend;
	uint32_t kind;
	int fd;               /* POSIX and memfd; -1 for System V */
	int shmid;            /* System V; -1 otherwise */
	int32_t sysv_key;
	bool readonly;
	bool creator;
	char name[SHMKIT_NAME_MAX + 1];
};

struct nopts {
	uint32_t backend, kind, mode, flags;
	int32_t key;
	uint64_t min_size;
};

static inline int norm_opts(const struct shmkit_segment_opts *o, struct nopts *n)
{
	static const struct shmkit_segment_opts defaults;
	if (!o)
		o = &defaults;
	if (o->reserved != 0 || o->backend > SHMKIT_BACKEND_MEMFD || (o->mode & ~0777u) ||
	    (o->flags & ~(SHMKIT_SEG_HUGEPAGES | SHMKIT_SEG_FOREIGN_UID | SHMKIT_SEG_DEFER_READY |
			  SHMKIT_SEG_RDONLY | SHMKIT_SEG_PERSISTENT)) ||
	    o->kind > 255)
		return -EINVAL;
	n->backend = o->backend;
	n->kind = o->kind;
	n->mode = o->mode ? o->mode : 0600;
	n->flags = o->flags;
	n->key = o->sysv_key;
	n->min_size = o->min_size;
	return 0;
}

static inline void posix_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "/shmkit.%s", name);
}

/* Result of looking at a mapped header: the status open would return, and whether the
 * private copy is trustworthy enough to describe the segment (checksum and sizes good). */
struct hdr_view {
	struct shmkit__seg_hdr copy;
	uint32_t state;  /* the state word, when the magic is ours; else 0 */
	bool magic_ok;   /* the magic is shmkit's: the object is ours, perhaps damaged */
	bool trusted;
};

/* One System V segment as /proc/sysvipc/shm lists it. */
struct sysv_row {
	int32_t key;
	int id;
	unsigned perms;
	uint64_t size;
	int64_t nattch;
	uint32_t uid, gid;
	uint32_t cuid, cgid; /* the creator's, which only the kernel writes */
};

static inline bool want(const struct nopts *o, uint32_t backend)
{
	return o->backend == SHMKIT_BACKEND_ANY || o->backend == backend;
}

static inline int rmid(int id)
{
	if (shmctl(id, IPC_RMID, NULL) < 0)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	return 0;
}

/* --- across the segment's files ----------------------------------------------------------- */

/* src/segment.c */
void shmkit__seg_hdr_write(struct shmkit_segment *seg, uint64_t total, uint32_t kind,
			   uint32_t flags);
int shmkit__seg_hdr_validate(const void *base, uint64_t os_size, size_t mapped, struct hdr_view *v);
uint64_t shmkit__seg_huge_page_size(void);
int shmkit__seg_huge_error(int err);
struct shmkit_segment *shmkit__seg_alloc(uint32_t backend, const char *name);
void shmkit__seg_unmap(struct shmkit_segment *seg);
int shmkit__seg_size_fd(int fd, uint64_t total, bool huge);
int shmkit__seg_map_fd(struct shmkit_segment *seg, uint64_t size, bool readonly);
int shmkit__seg_adopt(struct shmkit_segment *seg, uint64_t os_size, const struct nopts *o,
		      const char *want_name, int name_mismatch_err);

/* src/segment_open.c */
bool shmkit__seg_ids_ours(uint32_t uid, uint32_t cuid, uint32_t mode);
int shmkit__seg_posix_open_nb(const char *name, int acc, struct stat *st);
int shmkit__seg_sysv_rows(struct sysv_row **rowsp);
int shmkit__seg_sysv_peek(int id, uint64_t size, struct hdr_view *v);
int shmkit__seg_sysv_find_by_name(const char *name, int *ids, int cap);
int shmkit__seg_probe_sysv_key(int32_t key, const char *name);
int shmkit__seg_open_fd_owned(int fd, const struct nopts *o, struct shmkit_segment **segp);

#endif
