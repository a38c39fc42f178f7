/* shmkit — named shared-memory segments (POSIX, System V, memfd).
 *
 * Layout: every segment is [header | data]. The header (512 bytes, src/internal.h has the
 * byte table) is followed by the caller's data at offset 512, so the data is aligned to
 * 512 bytes from a page-aligned mapping.
 *
 * Protocol. The creator
 *   1. creates the object exclusively (O_EXCL / IPC_EXCL) with the requested mode,
 *   2. sizes it (and, for POSIX and memfd, reserves its memory with fallocate so that a
 *      full /dev/shm fails now with -ENOSPC instead of SIGBUS at first touch; memfd also
 *      gets sealed against shrinking and growing),
 *   3. writes the immutable header fields and their checksum, then the magic,
 *   4. stores state = INITIALIZING with release (R1) — the header is complete,
 *   5. initializes its data, then stores state = READY with release (R2).
 * An opener loads state with acquire (A1, pairs with R1/R2) *before* copying the header, so
 * the copy it checks is complete whenever the state says so. It copies the header once into
 * private memory, checks the copy (magic, version, checksum, sizes against what the OS
 * reports, name, state, kind) and from then on uses only the copy: nothing another process
 * writes later can move the data pointer or size.
 *
 * The magic, the version and the state keep their offsets (0, 8, 456) in every future
 * layout, so an opener can always tell "not ready", "not ours" and "incompatible".
 *
 * A creator that dies between steps 1 and 5 leaves a segment that is not READY; openers get
 * -EAGAIN, `shmkit gc` removes it once the creator is gone and nobody maps it. A peer that
 * dies while attached leaves the segment intact (the kernel drops its mapping).
 */
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

static int norm_opts(const struct shmkit_segment_opts *o, struct nopts *n)
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

/* --- names and keys ----------------------------------------------------------------- */

static bool name_char_ok(char c)
{
	/* Spelled out instead of isalnum(): the rule must not depend on the locale. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int shmkit_name_valid(const char *name)
{
	if (!name)
		return -EINVAL;
	size_t n = 0;
	for (; name[n]; n++) {
		if (n >= SHMKIT_NAME_MAX || !name_char_ok(name[n]))
			return -EINVAL;
	}
	return n == 0 ? -EINVAL : 0;
}

int shmkit_sysv_key_for_name(const char *name, int32_t *keyp)
{
	int err = shmkit_name_valid(name);
	if (err)
		return err;
	char buf[SHMKIT_NAME_MAX + 8];
	int len = snprintf(buf, sizeof buf, "shmkit:%s", name);
	uint64_t h = shmkit__fnv1a64(buf, (size_t)len);
	int32_t key = (int32_t)((h ^ (h >> 32)) & 0x7fffffff);
	if (key == IPC_PRIVATE)
		key = 0x73686d6b; /* never IPC_PRIVATE: that would create an unnamed segment */
	if (keyp)
		*keyp = key;
	return 0;
}

static void posix_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "/shmkit.%s", name);
}

const char *shmkit_backend_name(uint32_t backend)
{
	switch (backend) {
	case SHMKIT_BACKEND_POSIX:
		return "posix";
	case SHMKIT_BACKEND_SYSV:
		return "sysv";
	case SHMKIT_BACKEND_MEMFD:
		return "memfd";
	default:
		return "any";
	}
}

const char *shmkit_kind_name(uint32_t kind)
{
	switch (kind) {
	case SHMKIT_KIND_RAW:
		return "raw";
	case SHMKIT_KIND_STREAM:
		return "stream";
	case SHMKIT_KIND_PUBSUB:
		return "pubsub";
	case SHMKIT_KIND_QUEUE:
		return "queue";
	case SHMKIT_KIND_TABLE:
		return "table";
	default:
		return "unknown";
	}
}

/* --- the header ---------------------------------------------------------------------- */

uint64_t shmkit__hdr_checksum(const struct shmkit__seg_hdr *hdr)
{
	return shmkit__fnv1a64(hdr, SHMKIT__CHECKSUM_SPAN);
}

static _Atomic uint64_t *magic_word(const void *base)
{
	/* The header starts the mapping, which is page aligned. */
	return (_Atomic uint64_t *)(uintptr_t)base;
}

static void hdr_write(struct shmkit_segment *seg, uint64_t total, uint32_t kind, uint32_t flags)
{
	struct shmkit__seg_hdr *h = (struct shmkit__seg_hdr *)seg->base;
	struct shmkit__seg_hdr t;
	memset(&t, 0, sizeof t);
	memcpy(t.magic, &(uint64_t){SHMKIT__MAGIC}, sizeof t.magic);
	t.ver_major = SHMKIT__LAYOUT_MAJOR;
	t.ver_minor = SHMKIT__LAYOUT_MINOR;
	t.kind = kind;
	t.hdr_size = SHMKIT__HDR_SIZE;
	t.backend = seg->backend;
	t.total_size = total;
	t.data_offset = SHMKIT__HDR_SIZE;
	t.data_size = total - SHMKIT__HDR_SIZE;
	t.creator_uid = (uint32_t)geteuid();
	t.creator_pid = (int32_t)getpid();
	t.creator_start = shmkit__proc_start(0);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	t.created_ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	t.sysv_key = seg->sysv_key;
	t.flags = flags & (SHMKIT_SEG_HUGEPAGES | SHMKIT_SEG_PERSISTENT);
	t.name_len = (uint32_t)strlen(seg->name);
	memcpy(t.name, seg->name, t.name_len);
	t.checksum = shmkit__hdr_checksum(&t);
	/* Everything but the magic and the state; the memory is fresh and zeroed, so an opener
	 * that looks now sees magic 0 and state BLANK: "not ready". */
	memcpy((uint8_t *)h + 8, (uint8_t *)&t + 8, offsetof(struct shmkit__seg_hdr, state) - 8);
	/* Relaxed: ordered before the state store below by its release. */
	atomic_store_explicit(magic_word(h), SHMKIT__MAGIC, memory_order_relaxed);
	/* R1: publishes the complete header; pairs with A1 in hdr_validate(). */
	atomic_store_explicit(&h->state, SHMKIT_SEG_INITIALIZING, memory_order_release);
}

int shmkit_segment_publish(struct shmkit_segment *seg)
{
	if (!seg)
		return -EINVAL;
	if (seg->readonly)
		return -EPERM;
	struct shmkit__seg_hdr *h = (struct shmkit__seg_hdr *)seg->base;
	uint32_t expect = SHMKIT_SEG_INITIALIZING;
	/* R2: publishes the caller's data initialization; pairs with A1 in hdr_validate().
	 * A CAS so that publishing twice, or a segment somebody scribbled on, is reported. */
	if (!atomic_compare_exchange_strong_explicit(&h->state, &expect, SHMKIT_SEG_READY,
						     memory_order_release, memory_order_relaxed))
		return expect == SHMKIT_SEG_READY ? 0 : -EBADMSG;
	return 0;
}

/* Result of looking at a mapped header: the status open would return, and whether the
 * private copy is trustworthy enough to describe the segment (checksum and sizes good). */
struct hdr_view {
	struct shmkit__seg_hdr copy;
	uint32_t state;  /* the state word, when the magic is ours; else 0 */
	bool magic_ok;   /* the magic is shmkit's: the object is ours, perhaps damaged */
	bool trusted;
};

static bool hdr_name_ok(const struct shmkit__seg_hdr *c)
{
	if (c->name_len == 0 || c->name_len > SHMKIT_NAME_MAX)
		return false;
	for (uint32_t i = 0; i < c->name_len; i++)
		if (!name_char_ok(c->name[i]))
			return false;
	for (size_t i = c->name_len; i < sizeof c->name; i++)
		if (c->name[i] != '\0')
			return false;
	return true;
}

/* Checks the header at `base` of an object the OS says is `os_size` bytes long, of which
 * `mapped` bytes are mapped. Fills `v` and returns 0 or the open error. */
static int hdr_validate(const void *base, uint64_t os_size, size_t mapped, struct hdr_view *v)
{
	memset(v, 0, sizeof *v);
	if (os_size == 0)
		return -EAGAIN; /* created, not sized yet */
	if (os_size < SHMKIT__HDR_SIZE || mapped < SHMKIT__HDR_SIZE)
		return -ERANGE;
	const struct shmkit__seg_hdr *h = base;
	/* A1: pairs with R1/R2 in hdr_write()/shmkit_segment_publish(): once state is
	 * INITIALIZING or READY, the header bytes copied below are complete. */
	uint32_t state = atomic_load_explicit(&((struct shmkit__seg_hdr *)(uintptr_t)h)->state,
					      memory_order_acquire);
	/* Relaxed: the magic is only compared; the acquire above orders what follows. */
	uint64_t magic = atomic_load_explicit(magic_word(base), memory_order_relaxed);
	if (magic != SHMKIT__MAGIC)
		return (magic == 0 && state == STATE_BLANK) ? -EAGAIN : -ENOTUNIQ;
	v->state = state;
	v->magic_ok = true;
	if (state == STATE_BLANK)
		return -EAGAIN;
	/* One copy; every later decision uses it, never the shared original. */
	memcpy(&v->copy, base, sizeof v->copy);
	const struct shmkit__seg_hdr *c = &v->copy;
	if (c->ver_major != SHMKIT__LAYOUT_MAJOR)
		return -EPROTO;
	if (c->checksum != shmkit__hdr_checksum(c))
		return -EBADMSG;
	if (c->hdr_size != SHMKIT__HDR_SIZE || c->data_offset != SHMKIT__HDR_SIZE ||
	    c->total_size < SHMKIT__HDR_SIZE || c->data_size != c->total_size - SHMKIT__HDR_SIZE ||
	    c->kind == 0 || c->kind > 255 || c->backend < SHMKIT_BACKEND_POSIX ||
	    c->backend > SHMKIT_BACKEND_MEMFD || !hdr_name_ok(c))
		return -EBADMSG;
	v->trusted = true;
	if (os_size < c->total_size)
		return -ERANGE; /* truncated under us */
	if (os_size > c->total_size)
		return -EBADMSG; /* grown by someone: not what the creator built */
	if (state == SHMKIT_SEG_INITIALIZING)
		return -EAGAIN;
	if (state != SHMKIT_SEG_READY)
		return -EBADMSG;
	return 0;
}

/* --- huge pages ---------------------------------------------------------------------- */

static long meminfo_kb(const char *field)
{
	char buf[8192];
	if (shmkit__read_file("/proc/meminfo", buf, sizeof buf) <= 0)
		return -1;
	const char *p = strstr(buf, field);
	if (!p)
		return -1;
	p += strlen(field);
	while (*p == ' ' || *p == ':')
		p++;
	return strtol(p, NULL, 10);
}

static uint64_t huge_page_size(void)
{
	long kb = meminfo_kb("Hugepagesize");
	return kb > 0 ? (uint64_t)kb * 1024 : 2u << 20;
}

/* Turns an allocation failure into -ENOTSUP when the system simply has no huge pages. */
static int huge_error(int err)
{
	if (err == -ENOMEM || err == -ENOSPC || err == -EINVAL) {
		long total = meminfo_kb("HugePages_Total");
		long free_pages = meminfo_kb("HugePages_Free");
		if (total == 0 || free_pages == 0)
			return -ENOTSUP;
	}
	return err;
}

/* --- create -------------------------------------------------------------------------- */

static struct shmkit_segment *seg_alloc(uint32_t backend, const char *name)
{
	struct shmkit_segment *seg = calloc(1, sizeof *seg);
	if (!seg)
		return NULL;
	seg->backend = backend;
	seg->fd = -1;
	seg->shmid = -1;
	snprintf(seg->name, sizeof seg->name, "%s", name);
	return seg;
}

static void seg_unmap(struct shmkit_segment *seg)
{
	if (seg->base) {
		if (seg->backend == SHMKIT_BACKEND_SYSV)
			shmdt(seg->base);
		else
			munmap(seg->base, seg->map_size);
		seg->base = NULL;
	}
	if (seg->fd >= 0)
		close(seg->fd);
	seg->fd = -1;
}

/* Sizes a POSIX/memfd object and reserves its pages. */
static int size_fd(int fd, uint64_t total, bool huge)
{
	if (ftruncate(fd, (off_t)total) < 0)
		return -errno;
	int err = posix_fallocate(fd, 0, (off_t)total);
	/* posix_fallocate returns the error; EOPNOTSUPP/EINVAL mean "cannot reserve here",
	 * which is not fatal: the pages come at first touch instead. */
	if (err && err != EOPNOTSUPP && err != EINVAL)
		return huge ? huge_error(-err) : -err;
	return 0;
}

static int map_fd(struct shmkit_segment *seg, uint64_t size, bool readonly)
{
	int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
	void *p = mmap(NULL, (size_t)size, prot, MAP_SHARED, seg->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	seg->base = p;
	seg->map_size = (size_t)size;
	return 0;
}

static int create_posix(struct shmkit_segment *seg, uint64_t total, const struct nopts *o)
{
	if (o->flags & SHMKIT_SEG_HUGEPAGES)
		return -ENOTSUP; /* /dev/shm is tmpfs: no hugetlb. Use memfd or System V. */
	char path[SHMKIT_NAME_MAX + 16];
	posix_path(path, sizeof path, seg->name);
	seg->fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)o->mode);
	if (seg->fd < 0)
		return -errno;
	int err = 0;
	/* shm_open applied the umask; the caller asked for exactly this mode. */
	if (fchmod(seg->fd, (mode_t)o->mode) < 0)
		err = -errno;
	if (!err)
		err = size_fd(seg->fd, total, false);
	if (!err)
		err = map_fd(seg, total, false);
	if (err) {
		shm_unlink(path);
		seg_unmap(seg);
	}
	return err;
}

static int create_memfd(struct shmkit_segment *seg, uint64_t total, const struct nopts *o)
{
	bool huge = o->flags & SHMKIT_SEG_HUGEPAGES;
	char label[SHMKIT_NAME_MAX + 16];
	snprintf(label, sizeof label, "shmkit.%s", seg->name);
	unsigned mflags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (huge ? MFD_HUGETLB : 0);
	seg->fd = memfd_create(label, mflags);
	if (seg->fd < 0)
		return huge ? huge_error(-errno) : -errno;
	int err = 0;
	if (fchmod(seg->fd, (mode_t)o->mode) < 0)
		err = -errno;
	if (!err)
		err = size_fd(seg->fd, total, huge);
	/* Sealed: nobody, not even a peer holding the descriptor, can shrink the object under
	 * a reader (SIGBUS) or grow it; F_SEAL_SEAL keeps the seal set as it is. */
	if (!err && fcntl(seg->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		err = -errno;
	if (!err) {
		err = map_fd(seg, total, false);
		if (err && huge)
			err = huge_error(err);
	}
	if (err)
		seg_unmap(seg);
	return err;
}

static int probe_sysv_key(int32_t key, const char *name);

/* The largest System V segment this IPC namespace allows (kernel.shmmax). */
static int sysv_shmmax(uint64_t *out)
{
	char buf[64];
	if (shmkit__read_file("/proc/sys/kernel/shmmax", buf, sizeof buf) <= 0)
		return -EIO;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf)
		return -EIO;
	*out = v;
	return 0;
}

static int create_sysv(struct shmkit_segment *seg, uint64_t total, const struct nopts *o)
{
	bool huge = o->flags & SHMKIT_SEG_HUGEPAGES;
	int flags = IPC_CREAT | IPC_EXCL | (int)o->mode | (huge ? SHM_HUGETLB : 0);
	int id = shmget((key_t)seg->sysv_key, (size_t)total, flags);
	if (id < 0) {
		int err = -errno;
		if (err == -EEXIST)
			return probe_sysv_key(seg->sysv_key, seg->name);
		/* shmget says EINVAL for a size beyond the kernel.shmmax limit of this IPC
		 * namespace, as for any bad argument: name the real cause. */
		uint64_t shmmax;
		if (err == -EINVAL && sysv_shmmax(&shmmax) == 0 && total > shmmax)
			return -EFBIG;
		return huge ? huge_error(err) : err;
	}
	void *p = shmat(id, NULL, 0);
	if (p == (void *)-1) {
		int err = -errno;
		shmctl(id, IPC_RMID, NULL);
		return err;
	}
	seg->shmid = id;
	seg->base = p;
	seg->map_size = (size_t)total;
	return 0;
}

int shmkit_segment_create(const char *name, size_t size, const struct shmkit_segment_opts *opts,
			  struct shmkit_segment **segp)
{
	struct nopts o;
	if (!segp)
		return -EINVAL;
	*segp = NULL;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	uint32_t backend = o.backend ? o.backend : SHMKIT_BACKEND_POSIX;
	char defname[32];
	if (!name && backend == SHMKIT_BACKEND_MEMFD)
		name = "memfd";
	else if (!name && backend == SHMKIT_BACKEND_SYSV && o.key != 0) {
		snprintf(defname, sizeof defname, "key-%d", (int)o.key);
		name = defname;
	}
	err = shmkit_name_valid(name);
	if (err)
		return err;
	if (o.flags & (SHMKIT_SEG_FOREIGN_UID | SHMKIT_SEG_RDONLY))
		return -EINVAL; /* open-only flags */
	if (size > ((uint64_t)1 << 46))
		return -EINVAL; /* 64 TiB: beyond any sane segment, and keeps sums overflow-free */
	uint64_t total = SHMKIT__HDR_SIZE + (uint64_t)size;
	if (o.flags & SHMKIT_SEG_HUGEPAGES) {
		uint64_t hp = huge_page_size();
		total = (total + hp - 1) / hp * hp;
	}

	struct shmkit_segment *seg = seg_alloc(backend, name);
	if (!seg)
		return -ENOMEM;
	seg->creator = true;
	switch (backend) {
	case SHMKIT_BACKEND_POSIX:
		err = create_posix(seg, total, &o);
		break;
	case SHMKIT_BACKEND_MEMFD:
		err = create_memfd(seg, total, &o);
		break;
	default:
		if (o.key)
			seg->sysv_key = o.key;
		else
			shmkit_sysv_key_for_name(name, &seg->sysv_key);
		err = create_sysv(seg, total, &o);
		break;
	}
	if (err) {
		free(seg);
		return err;
	}
	seg->kind = o.kind ? o.kind : SHMKIT_KIND_RAW;
	seg->data = seg->base + SHMKIT__HDR_SIZE;
	seg->data_size = (size_t)(total - SHMKIT__HDR_SIZE);
	hdr_write(seg, total, seg->kind, o.flags);
	if (!(o.flags & SHMKIT_SEG_DEFER_READY))
		shmkit_segment_publish(seg);
	*segp = seg;
	return 0;
}

/* --- open ---------------------------------------------------------------------------- */

/* Final checks on a mapped segment and its validated header copy; fills the handle. */
static int seg_adopt(struct shmkit_segment *seg, uint64_t os_size, const struct nopts *o,
		     const char *want_name, int name_mismatch_err)
{
	struct hdr_view v;
	int err = hdr_validate(seg->base, os_size, seg->map_size, &v);
	const struct shmkit__seg_hdr *c = &v.copy;
	/* A trustworthy header naming another segment says "not this one" whatever else is
	 * wrong with it (as shmkit_segment_stat() reports it). */
	if (v.trusted && want_name && strcmp(c->name, want_name) != 0)
		return name_mismatch_err;
	if (err)
		return err;
	/* What the object is was decided from the kernel's view (the namespace it was found
	 * in, or what the descriptor is); a header claiming another backend lies. */
	if (c->backend != seg->backend)
		return -EBADMSG;
	/* The last identity of the trust rule: the creator the header names. */
	if (c->creator_uid != (uint32_t)geteuid() && !(o->flags & SHMKIT_SEG_FOREIGN_UID))
		return -EPERM;
	if (o->kind && c->kind != o->kind)
		return -EMEDIUMTYPE;
	if (c->data_size < o->min_size)
		return -ERANGE;
	seg->kind = c->kind;
	seg->sysv_key = c->sysv_key;
	seg->data = seg->base + c->data_offset;
	seg->data_size = (size_t)c->data_size;
	memcpy(seg->name, c->name, c->name_len); /* name_len <= SHMKIT_NAME_MAX: checked */
	seg->name[c->name_len] = '\0';
	return 0;
}

/* --- trust ---------------------------------------------------------------------------- */

/* The trust rule (docs/design.md, "Trust model"; shmkit_segment(3), TRUST): an object is
 * ours only when every identity the kernel keeps for it is our effective uid — the owner,
 * and for System V also the creator (cuid), which the owner cannot change but the creator
 * can hand the owner to anyone with IPC_SET — and its mode lets nobody else write to it.
 * The header's creator uid must agree as well (checked in seg_adopt()). Anything else is
 * foreign: -EPERM unless the caller passed SHMKIT_SEG_FOREIGN_UID. */
static bool ids_ours(uint32_t uid, uint32_t cuid, uint32_t mode)
{
	uint32_t me = (uint32_t)geteuid();
	return uid == me && cuid == me && (mode & 022) == 0;
}

static int check_trust(uint32_t uid, uint32_t cuid, uint32_t mode, const struct nopts *o)
{
	if (!ids_ours(uid, cuid, mode) && !(o->flags & SHMKIT_SEG_FOREIGN_UID))
		return -EPERM;
	return 0;
}

/* Opens the POSIX object of `name` with access `acc` (O_RDONLY / O_RDWR) without ever
 * blocking on what another user may have put at that path: a FIFO would block open(2)
 * until a writer comes, a device could do anything. The path is looked at first without
 * opening it, then opened O_NONBLOCK | O_NOFOLLOW, and the descriptor is checked again
 * (the path may have been replaced in between). Returns the descriptor with O_NONBLOCK
 * cleared and *st filled, or -ENOTUNIQ with *st filled when something other than a
 * regular file is there, or another -errno (-ENOENT: nothing there; *st is zeroed). */
static int posix_open_nb(const char *name, int acc, struct stat *st)
{
	char path[SHMKIT_NAME_MAX + 32];
	memset(st, 0, sizeof *st);
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	if (fstatat(AT_FDCWD, path, st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(st->st_mode))
		return -ENOTUNIQ;
	posix_path(path, sizeof path, name);
	int fd = shm_open(path, acc | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		int err = errno;
		/* ELOOP: a symlink, ENXIO: a socket, EISDIR: a directory — swapped in since. */
		return err == ELOOP || err == ENXIO || err == EISDIR ? -ENOTUNIQ : -err;
	}
	int err = fstat(fd, st) < 0 ? -errno : 0;
	if (!err && !S_ISREG(st->st_mode))
		err = -ENOTUNIQ;
	if (!err && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		err = -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static int open_posix(const char *name, const struct nopts *o, struct shmkit_segment **segp)
{
	bool ro = o->flags & SHMKIT_SEG_RDONLY;
	struct stat st;
	int fd = posix_open_nb(name, ro ? O_RDONLY : O_RDWR, &st);
	if (fd < 0)
		return fd;
	struct shmkit_segment *seg = seg_alloc(SHMKIT_BACKEND_POSIX, name);
	if (!seg) {
		close(fd);
		return -ENOMEM;
	}
	seg->fd = fd;
	seg->readonly = ro;
	int err = check_trust(st.st_uid, st.st_uid, st.st_mode, o);
	if (!err && st.st_size == 0)
		err = -EAGAIN;
	if (!err && (uint64_t)st.st_size < SHMKIT__HDR_SIZE)
		err = -ERANGE;
	if (!err)
		err = map_fd(seg, (uint64_t)st.st_size, ro);
	if (!err)
		err = seg_adopt(seg, (uint64_t)st.st_size, o, name, -EBADMSG);
	if (err) {
		seg_unmap(seg);
		free(seg);
		return err;
	}
	*segp = seg;
	return 0;
}

/* Attaches System V segment `id`. want_name NULL accepts any shmkit name. */
static int open_sysv_id(int id, const char *want_name, const struct nopts *o,
			struct shmkit_segment **segp)
{
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	int err = check_trust(ds.shm_perm.uid, ds.shm_perm.cuid, ds.shm_perm.mode, o);
	if (err)
		return err;
	if (ds.shm_segsz < SHMKIT__HDR_SIZE)
		return -ENOTUNIQ; /* too small to have ever held a shmkit header */
	bool ro = o->flags & SHMKIT_SEG_RDONLY;
	void *p = shmat(id, NULL, ro ? SHM_RDONLY : 0);
	if (p == (void *)-1)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	struct shmkit_segment *seg = seg_alloc(SHMKIT_BACKEND_SYSV, want_name ? want_name : "");
	if (!seg) {
		shmdt(p);
		return -ENOMEM;
	}
	seg->base = p;
	seg->map_size = ds.shm_segsz;
	seg->shmid = id;
	seg->readonly = ro;
	err = seg_adopt(seg, ds.shm_segsz, o, want_name, -ENOTUNIQ);
	if (err) {
		seg_unmap(seg);
		free(seg);
		return err;
	}
	*segp = seg;
	return 0;
}

static int open_sysv_key(int32_t key, const char *want_name, const struct nopts *o,
			 struct shmkit_segment **segp)
{
	int id = shmget((key_t)key, 0, 0);
	if (id < 0)
		return -errno;
	return open_sysv_id(id, want_name, o, segp);
}

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

/* Reads /proc/sysvipc/shm; returns the number of rows (malloc'ed *rowsp) or -errno. */
static int sysv_rows(struct sysv_row **rowsp)
{
	*rowsp = NULL;
	FILE *f = fopen("/proc/sysvipc/shm", "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[512];
	int n = 0, cap = 0;
	struct sysv_row *rows = NULL;
	if (!fgets(line, sizeof line, f)) { /* the column titles */
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof line, f)) {
		struct sysv_row r;
		int key, id, cpid, lpid;
		unsigned long long size, nattch;
		unsigned uid, gid, cuid, cgid;
		if (sscanf(line, "%d %d %o %llu %d %d %llu %u %u %u %u", &key, &id, &r.perms,
			   &size, &cpid, &lpid, &nattch, &uid, &gid, &cuid, &cgid) != 11)
			continue;
		/* SHM_DEST: already removed, waiting for its last detach; it has no key. */
		if (r.perms & 01000)
			continue;
		r.key = key;
		r.id = id;
		r.size = size;
		r.nattch = (int64_t)nattch;
		r.uid = uid;
		r.gid = gid;
		r.cuid = cuid;
		r.cgid = cgid;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct sysv_row *nr = realloc(rows, (size_t)cap * sizeof *rows);
			if (!nr) {
				free(rows);
				fclose(f);
				return -ENOMEM;
			}
			rows = nr;
		}
		rows[n++] = r;
	}
	fclose(f);
	*rowsp = rows;
	return n;
}

/* Reads the header of System V segment `id` read-only into v; returns the status. */
static int sysv_peek(int id, uint64_t size, struct hdr_view *v)
{
	memset(v, 0, sizeof *v);
	if (size < SHMKIT__HDR_SIZE)
		return -ENOTUNIQ;
	void *p = shmat(id, NULL, SHM_RDONLY);
	if (p == (void *)-1)
		return -errno;
	int err = hdr_validate(p, size, SHMKIT__HDR_SIZE, v);
	shmdt(p);
	return err;
}

/* Finds System V segments whose (trusted) header carries `name`; fills up to cap ids. */
static int sysv_find_by_name(const char *name, int *ids, int cap)
{
	struct sysv_row *rows;
	int n = sysv_rows(&rows);
	if (n < 0)
		return n;
	int found = 0;
	for (int i = 0; i < n && found < cap; i++) {
		struct hdr_view v;
		sysv_peek(rows[i].id, rows[i].size, &v);
		if (v.trusted && strcmp(v.copy.name, name) == 0)
			ids[found++] = rows[i].id;
	}
	free(rows);
	return found;
}

/* Why a System V create found its key taken: our own name (-EEXIST) or not (-ENOTUNIQ). */
static int probe_sysv_key(int32_t key, const char *name)
{
	int id = shmget((key_t)key, 0, 0);
	if (id < 0)
		return -EEXIST;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -EEXIST;
	struct hdr_view v;
	sysv_peek(id, ds.shm_segsz, &v);
	return (v.trusted && strcmp(v.copy.name, name) == 0) ? -EEXIST : -ENOTUNIQ;
}

static int open_sysv_name(const char *name, const struct nopts *o, struct shmkit_segment **segp)
{
	int32_t key;
	shmkit_sysv_key_for_name(name, &key);
	int err = open_sysv_key(key, name, o, segp);
	if (err != -ENOENT && err != -ENOTUNIQ)
		return err;
	/* Not at the derived key: the segment may have been created with an explicit key. */
	int id;
	if (sysv_find_by_name(name, &id, 1) == 1)
		return open_sysv_id(id, name, o, segp);
	return err;
}

int shmkit_segment_open(const char *name, const struct shmkit_segment_opts *opts,
			struct shmkit_segment **segp)
{
	struct nopts o;
	if (!segp)
		return -EINVAL;
	*segp = NULL;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	if (o.flags & (SHMKIT_SEG_HUGEPAGES | SHMKIT_SEG_DEFER_READY | SHMKIT_SEG_PERSISTENT))
		return -EINVAL; /* create-only flags */
	if (!name) {
		if (o.key == 0 || (o.backend && o.backend != SHMKIT_BACKEND_SYSV))
			return -EINVAL;
		return open_sysv_key(o.key, NULL, &o, segp);
	}
	err = shmkit_name_valid(name);
	if (err)
		return err;
	switch (o.backend) {
	case SHMKIT_BACKEND_POSIX:
		return open_posix(name, &o, segp);
	case SHMKIT_BACKEND_SYSV:
		return o.key ? open_sysv_key(o.key, name, &o, segp) : open_sysv_name(name, &o, segp);
	case SHMKIT_BACKEND_MEMFD:
		return -EINVAL; /* memfd segments have no name to open: use shmkit_segment_open_fd */
	default:
		err = open_posix(name, &o, segp);
		if (err == -ENOENT)
			err = open_sysv_name(name, &o, segp);
		return err;
	}
}

/* The seals that make a descriptor's size immutable for every holder: nobody can shrink
 * it under our mapping (SIGBUS) or grow it. Seals can never be removed once added, so
 * F_SEAL_SEAL is not needed for this; shmkit's own memfds carry it too. */
#define FD_SIZE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

/* Decides what descriptor `fd` (fstat'ed into *st) is, from the kernel's view alone —
 * never from the bytes in it, which whoever sent it wrote:
 *   - sealed against shrinking and growing (a memfd as shmkit seals it): backend memfd;
 *   - unsealed: whoever else holds it could truncate it and kill us with SIGBUS, so it
 *     is accepted only when it is the very object a by-name open would find, a file
 *     linked in /dev/shm under a shmkit name (backend POSIX, the name into name[cap]):
 *     then the descriptor gives nobody a power the name did not already give;
 *   - anything else (an unsealed or partly sealed memfd, a file elsewhere, an unlinked
 *     one): -EPERM. Not a regular file at all: -EINVAL. */
static int fd_classify(int fd, const struct stat *st, char *name, size_t cap, uint32_t *backend)
{
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals >= 0 && (seals & FD_SIZE_SEALS) == FD_SIZE_SEALS) {
		*backend = SHMKIT_BACKEND_MEMFD;
		return 0;
	}
	static const char prefix[] = "/dev/shm/shmkit.";
	char link[64], target[SHMKIT_NAME_MAX + 64];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof target);
	if (n <= 0 || (size_t)n >= sizeof target)
		return -EPERM;
	target[n] = '\0';
	/* An unlinked file reads "... (deleted)": not a valid name, refused here. */
	if (strncmp(target, prefix, sizeof prefix - 1) != 0 ||
	    shmkit_name_valid(target + sizeof prefix - 1) < 0)
		return -EPERM;
	struct stat by_name;
	if (fstatat(AT_FDCWD, target, &by_name, AT_SYMLINK_NOFOLLOW) < 0 ||
	    by_name.st_dev != st->st_dev || by_name.st_ino != st->st_ino)
		return -EPERM;
	size_t len = strlen(target + sizeof prefix - 1); /* <= SHMKIT_NAME_MAX: checked */
	if (len >= cap)
		return -EPERM;
	memcpy(name, target + sizeof prefix - 1, len + 1);
	*backend = SHMKIT_BACKEND_POSIX;
	return 0;
}

/* Takes ownership of `fd`. */
static int open_fd_owned(int fd, const struct nopts *o, struct shmkit_segment **segp)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct shmkit_segment *seg = seg_alloc(SHMKIT_BACKEND_MEMFD, "");
	if (!seg) {
		close(fd);
		return -ENOMEM;
	}
	seg->fd = fd;
	seg->readonly = o->flags & SHMKIT_SEG_RDONLY;
	/* Everything about what the descriptor is comes before the first byte is mapped. */
	int err = fd_classify(fd, &st, seg->name, sizeof seg->name, &seg->backend);
	if (!err)
		err = check_trust(st.st_uid, st.st_uid, st.st_mode, o);
	if (!err && st.st_size == 0)
		err = -EAGAIN;
	if (!err && (uint64_t)st.st_size < SHMKIT__HDR_SIZE)
		err = -ERANGE;
	if (!err)
		err = map_fd(seg, (uint64_t)st.st_size, seg->readonly);
	if (!err)
		err = seg_adopt(seg, (uint64_t)st.st_size, o,
				seg->backend == SHMKIT_BACKEND_POSIX ? seg->name : NULL, -EBADMSG);
	if (err) {
		seg_unmap(seg);
		free(seg);
		return err;
	}
	*segp = seg;
	return 0;
}

int shmkit_segment_open_fd(int fd, const struct shmkit_segment_opts *opts,
			   struct shmkit_segment **segp)
{
	struct nopts o;
	if (!segp)
		return -EINVAL;
	*segp = NULL;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	if (fd < 0)
		return -EBADF;
	int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return -errno;
	return open_fd_owned(dup, &o, segp);
}

int shmkit__segment_open_src(const struct shmkit__seg_src *src,
			     const struct shmkit_segment_opts *o, struct shmkit_segment **segp)
{
	if (src->by_fd)
		return shmkit_segment_open_fd(src->fd, o, segp);
	return shmkit_segment_open(src->name, o, segp);
}

int shmkit__segment_abandon(struct shmkit_segment *seg, bool created, int err)
{
	if (created)
		(void)shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	return err;
}

struct shmkit_segment_opts shmkit__kind_open_opts(const struct shmkit_segment_opts *user,
						  uint32_t kind, uint64_t min_size, bool rdonly)
{
	struct shmkit_segment_opts so = {0};
	if (user)
		so = *user;
	so.kind = kind;
	so.min_size = min_size;
	if (rdonly)
		so.flags |= SHMKIT_SEG_RDONLY;
	return so;
}

/* --- descriptor passing -------------------------------------------------------------- */

/* The message that travels with the descriptor: lets the receiver tell a shmkit hand-over
 * from anything else arriving on the socket. */
static const char fd_msg[8] = {'s', 'h', 'm', 'k', 'i', 't', 'f', 'd'};

int shmkit_segment_send_fd(int sock, const struct shmkit_segment *seg)
{
	if (!seg)
		return -EINVAL;
	if (seg->fd < 0)
		return -EBADF;
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof ctl);
	struct iovec iov = {.iov_base = (void *)fd_msg, .iov_len = sizeof fd_msg};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &seg->fd, sizeof(int));
	for (;;) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n == (ssize_t)sizeof fd_msg)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

int shmkit_segment_recv_fd(int sock, const struct shmkit_segment_opts *opts,
			   struct shmkit_segment **segp)
{
	struct nopts o;
	if (!segp)
		return -EINVAL;
	*segp = NULL;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	char data[sizeof fd_msg];
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = {.iov_base = data, .iov_len = sizeof data};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	/* Collect every descriptor that arrived, keep the first, close the rest: a peer must
	 * not be able to leak descriptors into this process. */
	int fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int f;
			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof f);
			if (fd < 0)
				fd = f;
			else
				close(f);
		}
	}
	if (fd < 0)
		return -EBADMSG;
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n != (ssize_t)sizeof fd_msg ||
	    memcmp(data, fd_msg, sizeof fd_msg) != 0) {
		close(fd);
		return -EBADMSG;
	}
	return open_fd_owned(fd, &o, segp);
}

/* --- accessors ----------------------------------------------------------------------- */

void *shmkit_segment_data(const struct shmkit_segment *seg)
{
	return seg ? seg->data : NULL;
}

struct shmkit__seg_hdr *shmkit__segment_hdr(const struct shmkit_segment *seg)
{
	return (struct shmkit__seg_hdr *)(void *)seg->base;
}

int shmkit_segment_wait_stats(const struct shmkit_segment *seg, struct shmkit_wait_stats *st)
{
	if (!seg || !st)
		return -EINVAL;
	const struct shmkit__seg_hdr *h = shmkit__segment_hdr(seg);
	/* Relaxed: statistics snapshots, written by any attached process. */
	uint32_t f = atomic_load_explicit(&h->wq_flags, memory_order_relaxed);
	*st = (struct shmkit_wait_stats){
		.fenced = (f & SHMKIT__WQ_FENCED) != 0,
		.missed = atomic_load_explicit(&h->wq_missed, memory_order_relaxed),
	};
	return 0;
}

size_t shmkit_segment_size(const struct shmkit_segment *seg)
{
	return seg ? seg->data_size : 0;
}

uint32_t shmkit_segment_kind(const struct shmkit_segment *seg)
{
	return seg ? seg->kind : 0;
}

uint32_t shmkit_segment_backend(const struct shmkit_segment *seg)
{
	return seg ? seg->backend : 0;
}

const char *shmkit_segment_name(const struct shmkit_segment *seg)
{
	return seg ? seg->name : "";
}

int shmkit_segment_fd(const struct shmkit_segment *seg)
{
	if (!seg)
		return -EINVAL;
	return seg->fd >= 0 ? seg->fd : -EBADF;
}

static int rmid(int id);

int shmkit_segment_unlink(struct shmkit_segment *seg)
{
	if (!seg)
		return -EINVAL;
	switch (seg->backend) {
	case SHMKIT_BACKEND_POSIX: {
		char path[SHMKIT_NAME_MAX + 16];
		posix_path(path, sizeof path, seg->name);
		return shm_unlink(path) < 0 ? -errno : 0;
	}
	case SHMKIT_BACKEND_SYSV: {
		/* IPC_RMID on a segment already marked for destruction succeeds again; report
		 * it as gone, as shm_unlink does for POSIX. */
		struct shmid_ds ds;
		if (shmctl(seg->shmid, IPC_STAT, &ds) < 0)
			return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
		if (ds.shm_perm.mode & SHM_DEST)
			return -ENOENT;
		return rmid(seg->shmid);
	}
	default:
		return 0;
	}
}

int shmkit_segment_close(struct shmkit_segment *seg)
{
	if (!seg)
		return 0;
	seg_unmap(seg);
	free(seg);
	return 0;
}

/* --- discovery ----------------------------------------------------------------------- */

/* The effective uid of `pid` from /proc/PID/status (readable even when maps is not). */
static int proc_euid(const char *pid, uid_t *uid)
{
	char path[300], buf[4096];
	snprintf(path, sizeof path, "/proc/%s/status", pid);
	if (shmkit__read_file(path, buf, sizeof buf) <= 0)
		return -1;
	const char *p = strstr(buf, "\nUid:");
	unsigned real, eff;
	if (!p || sscanf(p + 5, "%u %u", &real, &eff) != 2)
		return -1;
	*uid = eff;
	return 0;
}

/* Counts the processes that map each POSIX object (by inode), in one pass over /proc.
 *
 * A process whose maps we may not read cannot be inspected. For a caller that is not root
 * it counts as "unknown" (-1: never treat as nobody) for the objects owned by its own
 * effective uid — a non-dumpable process of the owner may well have opened them by name
 * with the default owner-only mode. Other users' processes are assumed not to map them,
 * as fuser(1) and lsof(8) assume. Root can read every ordinary process; what it cannot
 * read (a sandbox supervisor holding more capabilities) is skipped likewise. */
static void posix_mappers(const uint64_t *inodes, const uint32_t *owners, int64_t *counts, int n)
{
	for (int i = 0; i < n; i++)
		counts[i] = 0;
	if (n == 0)
		return;
	DIR *d = opendir("/proc");
	bool *seen = calloc((size_t)n, sizeof *seen);
	bool *unknown = calloc((size_t)n, sizeof *unknown);
	if (!d || !seen || !unknown) {
		for (int i = 0; i < n; i++)
			counts[i] = -1;
		goto out;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		char path[300], line[1024];
		snprintf(path, sizeof path, "/proc/%s/maps", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f) {
			uid_t uid;
			if ((errno == EACCES || errno == EPERM) && geteuid() != 0 &&
			    proc_euid(de->d_name, &uid) == 0)
				for (int i = 0; i < n; i++)
					if (owners[i] == uid)
						unknown[i] = true;
			continue;
		}
		memset(seen, 0, (size_t)n * sizeof *seen);
		while (fgets(line, sizeof line, f)) {
			/* "start-end perms offset dev inode path" — only /dev/shm objects matter. */
			if (!strstr(line, "/dev/shm/shmkit."))
				continue;
			unsigned long long ino;
			if (sscanf(line, "%*s %*s %*s %*s %llu", &ino) != 1)
				continue;
			for (int i = 0; i < n; i++) {
				if (inodes[i] == ino && !seen[i]) {
					seen[i] = true;
					counts[i]++;
				}
			}
		}
		fclose(f);
	}
	for (int i = 0; i < n; i++)
		if (unknown[i] && counts[i] == 0)
			counts[i] = -1;
out:
	if (d)
		closedir(d);
	free(seen);
	free(unknown);
}

/* Fills the header-derived part of an info from a validated view. */
static void info_from_view(struct shmkit_segment_info *inf, int status, const struct hdr_view *v)
{
	inf->status = status;
	if (v->magic_ok)
		inf->state = v->state == STATE_BLANK ? SHMKIT_SEG_INITIALIZING : v->state;
	if (!v->trusted) {
		if (status == -EPROTO) {
			inf->ver_major = v->copy.ver_major;
			inf->ver_minor = v->copy.ver_minor;
		}
		return;
	}
	const struct shmkit__seg_hdr *c = &v->copy;
	memcpy(inf->name, c->name, c->name_len); /* name_len <= SHMKIT_NAME_MAX: checked */
	inf->name[c->name_len] = '\0';
	inf->kind = c->kind;
	inf->data_size = c->data_size;
	inf->creator_uid = c->creator_uid;
	inf->creator_pid = c->creator_pid;
	inf->creator_alive = shmkit_pid_alive(c->creator_pid, c->creator_start);
	inf->created_ns = c->created_ns;
	inf->lifetime = (c->flags & SHMKIT_SEG_PERSISTENT) ? SHMKIT_LIFETIME_PERSISTENT
							   : SHMKIT_LIFETIME_EPHEMERAL;
	inf->ver_major = c->ver_major;
	inf->ver_minor = c->ver_minor;
}

static void info_init(struct shmkit_segment_info *inf, uint32_t backend)
{
	memset(inf, 0, sizeof *inf);
	inf->backend = backend;
	inf->sysv_id = -1;
	inf->creator_alive = -1;
	inf->nattach = -1;
}

/* The status a default open would give a valid object, once the identities are checked:
 * -EPERM when it is not ours by the trust rule (see check_trust()). Other statuses stay:
 * they say more about what is there. */
static int trust_status(int status, uint32_t uid, uint32_t cuid, uint32_t mode,
			const struct hdr_view *v)
{
	if (status == 0 && (!ids_ours(uid, cuid, mode) || v->copy.creator_uid != geteuid()))
		return -EPERM;
	return status;
}

/* Describes the POSIX object "/shmkit.<name>"; 0, or -errno when it cannot be opened.
 * Something that is not a regular file (a FIFO, socket, directory, symlink, device) is
 * described from its directory entry as foreign, and never opened. */
static int describe_posix(const char *name, struct shmkit_segment_info *inf, uint64_t *inode)
{
	info_init(inf, SHMKIT_BACKEND_POSIX);
	struct stat st;
	int fd = posix_open_nb(name, O_RDONLY, &st);
	if (fd < 0 && fd != -ENOTUNIQ)
		return fd;
	snprintf(inf->name, sizeof inf->name, "%s", name);
	inf->total_size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	inf->mode = st.st_mode & 07777;
	inf->uid = st.st_uid;
	inf->gid = st.st_gid;
	inf->cuid = st.st_uid;
	inf->cgid = st.st_gid;
	inf->dev = st.st_dev;
	inf->ino = st.st_ino;
	*inode = st.st_ino;
	struct hdr_view v;
	memset(&v, 0, sizeof v);
	int status;
	if (fd < 0) {
		status = -ENOTUNIQ;
	} else if ((uint64_t)st.st_size < SHMKIT__HDR_SIZE) {
		status = st.st_size == 0 ? -EAGAIN : -ERANGE;
	} else {
		/* Read, don't map: a mapping would count as one more attached process for
		 * anyone listing at the same time (and gc keeps attached segments). A private
		 * copy is all hdr_validate needs. */
		_Alignas(8) uint8_t hdr[SHMKIT__HDR_SIZE];
		ssize_t got = pread(fd, hdr, sizeof hdr, 0);
		if (got != (ssize_t)sizeof hdr) {
			status = got < 0 ? -errno : -ERANGE;
		} else {
			status = hdr_validate(hdr, (uint64_t)st.st_size, SHMKIT__HDR_SIZE, &v);
			/* As open reports it: a trustworthy header naming another segment. */
			if (v.trusted && (strcmp(v.copy.name, name) != 0 ||
					  v.copy.backend != SHMKIT_BACKEND_POSIX))
				status = -EBADMSG;
			status = trust_status(status, st.st_uid, st.st_uid, st.st_mode, &v);
		}
	}
	if (fd >= 0)
		close(fd);
	info_from_view(inf, status, &v);
	/* The file name is what identifies a POSIX object, whatever its header claims. */
	snprintf(inf->name, sizeof inf->name, "%s", name);
	return 0;
}

static void describe_sysv(const struct sysv_row *r, int status, const struct hdr_view *v,
			  struct shmkit_segment_info *inf)
{
	/* A System V segment without our magic is foreign — zero-filled ones included: the
	 * instant between a creator's shmget and its header write is far less likely than
	 * somebody else's fresh segment. */
	if (!v->magic_ok && status == -EAGAIN)
		status = -ENOTUNIQ;
	info_init(inf, SHMKIT_BACKEND_SYSV);
	inf->sysv_key = r->key;
	inf->sysv_id = r->id;
	inf->total_size = r->size;
	inf->mode = r->perms & 0777;
	inf->uid = r->uid;
	inf->gid = r->gid;
	inf->cuid = r->cuid;
	inf->cgid = r->cgid;
	inf->nattach = r->nattch;
	if (status == 0 && v->copy.backend != SHMKIT_BACKEND_SYSV)
		status = -EBADMSG;
	status = trust_status(status, r->uid, r->cuid, r->perms, v);
	info_from_view(inf, status, v);
}

static int sysv_row_for_id(int id, struct sysv_row *out)
{
	struct sysv_row *rows;
	int n = sysv_rows(&rows);
	if (n < 0)
		return n;
	int err = -ENOENT;
	for (int i = 0; i < n; i++)
		if (rows[i].id == id) {
			*out = rows[i];
			err = 0;
			break;
		}
	free(rows);
	return err;
}

int shmkit_segment_info(const struct shmkit_segment *seg, struct shmkit_segment_info *info)
{
	if (!seg || !info)
		return -EINVAL;
	struct hdr_view v;
	if (seg->backend == SHMKIT_BACKEND_SYSV) {
		struct sysv_row r;
		if (sysv_row_for_id(seg->shmid, &r) < 0) {
			/* Already removed (IPC_RMID): describe what we hold. */
			struct shmid_ds ds;
			if (shmctl(seg->shmid, IPC_STAT, &ds) < 0)
				return -errno;
			memset(&r, 0, sizeof r);
			r.key = seg->sysv_key;
			r.id = seg->shmid;
			r.perms = ds.shm_perm.mode;
			r.size = ds.shm_segsz;
			r.nattch = (int64_t)ds.shm_nattch;
			r.uid = ds.shm_perm.uid;
			r.gid = ds.shm_perm.gid;
			r.cuid = ds.shm_perm.cuid;
			r.cgid = ds.shm_perm.cgid;
		}
		int status = hdr_validate(seg->base, r.size, seg->map_size, &v);
		describe_sysv(&r, status, &v, info);
		return 0;
	}
	struct stat st;
	if (fstat(seg->fd, &st) < 0)
		return -errno;
	info_init(info, seg->backend);
	info->total_size = (uint64_t)st.st_size;
	info->mode = st.st_mode & 07777;
	info->uid = st.st_uid;
	info->gid = st.st_gid;
	info->cuid = st.st_uid;
	info->cgid = st.st_gid;
	info->dev = st.st_dev;
	info->ino = st.st_ino;
	int status = hdr_validate(seg->base, (uint64_t)st.st_size, seg->map_size, &v);
	status = trust_status(status, st.st_uid, st.st_uid, st.st_mode, &v);
	info_from_view(info, status, &v);
	if (seg->backend == SHMKIT_BACKEND_POSIX) {
		uint64_t ino = st.st_ino;
		uint32_t owner = st.st_uid;
		posix_mappers(&ino, &owner, &info->nattach, 1);
	}
	return 0;
}

static bool want(const struct nopts *o, uint32_t backend)
{
	return o->backend == SHMKIT_BACKEND_ANY || o->backend == backend;
}

int shmkit_segment_stat(const char *name, const struct shmkit_segment_opts *opts,
			struct shmkit_segment_info *info)
{
	struct nopts o;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	if (!info)
		return -EINVAL;
	if (o.backend == SHMKIT_BACKEND_MEMFD)
		return -EINVAL;
	if (name) {
		err = shmkit_name_valid(name);
		if (err)
			return err;
		if (want(&o, SHMKIT_BACKEND_POSIX) && !o.key) {
			uint64_t ino;
			err = describe_posix(name, info, &ino);
			if (err == 0) {
				posix_mappers(&ino, &info->uid, &info->nattach, 1);
				return 0;
			}
			if (err != -ENOENT)
				return err;
		}
	} else if (o.key == 0) {
		return -EINVAL;
	}
	if (!want(&o, SHMKIT_BACKEND_SYSV))
		return -ENOENT;
	struct sysv_row *rows;
	int n = sysv_rows(&rows);
	if (n < 0)
		return n;
	int32_t derived = 0;
	if (name && !o.key)
		shmkit_sysv_key_for_name(name, &derived);
	/* By key: whatever sits there, foreign included. By name: the segment whose header
	 * carries the name wins; else whatever sits at the derived key (reported as -ENOTUNIQ
	 * when it is not ours, exactly as open would). */
	int pick = -1, pick_status = 0;
	struct hdr_view pick_view;
	for (int i = 0; i < n; i++) {
		struct hdr_view v;
		if (o.key && rows[i].key != o.key)
			continue;
		if (!o.key && rows[i].key != derived && rows[i].size < SHMKIT__HDR_SIZE)
			continue;
		int status = sysv_peek(rows[i].id, rows[i].size, &v);
		bool exact = o.key || (v.trusted && strcmp(v.copy.name, name) == 0);
		if (!exact && (rows[i].key != derived || pick >= 0))
			continue;
		if (!exact && v.trusted)
			status = -ENOTUNIQ;
		pick = i;
		pick_status = status;
		pick_view = v;
		if (exact)
			break;
	}
	if (pick >= 0)
		describe_sysv(&rows[pick], pick_status, &pick_view, info);
	err = pick >= 0 ? 0 : -ENOENT;
	free(rows);
	return err;
}

int shmkit_segment_list(struct shmkit_segment_info **infop)
{
	if (!infop)
		return -EINVAL;
	*infop = NULL;
	int n = 0, cap = 16;
	struct shmkit_segment_info *out = malloc((size_t)cap * sizeof *out);
	uint64_t *inodes = malloc((size_t)cap * sizeof *inodes);
	if (!out || !inodes) {
		free(out);
		free(inodes);
		return -ENOMEM;
	}
	int err = 0;
	DIR *d = opendir("/dev/shm");
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, "shmkit.", 7) != 0)
			continue;
		const char *name = de->d_name + 7;
		if (shmkit_name_valid(name) < 0)
			continue; /* not a name shmkit would make: leave it alone */
		if (n == cap) {
			cap *= 2;
			struct shmkit_segment_info *no = realloc(out, (size_t)cap * sizeof *out);
			if (no)
				out = no;
			uint64_t *ni = realloc(inodes, (size_t)cap * sizeof *inodes);
			if (ni)
				inodes = ni;
			if (!no || !ni) {
				err = -ENOMEM;
				break;
			}
		}
		if (describe_posix(name, &out[n], &inodes[n]) == 0)
			n++;
	}
	if (d)
		closedir(d);
	int nposix = n;
	int64_t *counts = err ? NULL : malloc((size_t)(nposix ? nposix : 1) * sizeof *counts);
	uint32_t *owners = err ? NULL : calloc((size_t)(nposix ? nposix : 1), sizeof *owners);
	if (counts && owners) {
		for (int i = 0; i < nposix; i++)
			owners[i] = out[i].uid;
		posix_mappers(inodes, owners, counts, nposix);
		for (int i = 0; i < nposix; i++)
			out[i].nattach = counts[i];
	} else {
		err = -ENOMEM;
	}
	free(counts);
	free(owners);
	free(inodes);

	struct sysv_row *rows = NULL;
	int nrows = err ? 0 : sysv_rows(&rows);
	for (int i = 0; i < nrows && !err; i++) {
		struct hdr_view v;
		int status = sysv_peek(rows[i].id, rows[i].size, &v);
		/* A shmkit header (even a damaged one) or a derived-looking key makes it ours;
		 * anything else at a System V key belongs to someone else. */
		if (status == -ENOTUNIQ || status == -EACCES || status == -EPERM || status == -EINVAL)
			continue;
		if (!v.magic_ok)
			continue; /* zero-filled foreign segment, or one being created this instant */
		if (n == cap) {
			cap *= 2;
			struct shmkit_segment_info *no = realloc(out, (size_t)cap * sizeof *out);
			if (!no) {
				err = -ENOMEM;
				break;
			}
			out = no;
		}
		describe_sysv(&rows[i], status, &v, &out[n++]);
	}
	free(rows);
	if (err) {
		free(out);
		return err;
	}
	*infop = out;
	return n;
}

void shmkit_segment_list_free(struct shmkit_segment_info *info)
{
	free(info);
}

/* --- removal ------------------------------------------------------------------------- */

static int rmid(int id)
{
	if (shmctl(id, IPC_RMID, NULL) < 0)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	return 0;
}

/* The kernel refuses to remove another user's object with EPERM (IPC_RMID by someone
 * else than the owner or creator; unlink in the sticky /dev/shm). shmkit's -EPERM means
 * "not ours, refused", which would mislead here: the caller lacks the permission. */
static int remove_error(int err)
{
	return err == -EPERM ? -EACCES : err;
}

/* Whether a System V segment sits at the key derived from `name` and we may not read it. */
static bool sysv_key_unreadable(const char *name)
{
	int32_t key;
	shmkit_sysv_key_for_name(name, &key);
	int id = shmget((key_t)key, 0, 0);
	struct shmid_ds ds;
	return id >= 0 && shmctl(id, IPC_STAT, &ds) < 0 && (errno == EACCES || errno == EPERM);
}

int shmkit_segment_remove(const char *name, const struct shmkit_segment_opts *opts)
{
	struct nopts o;
	int err = norm_opts(opts, &o);
	if (err)
		return err;
	if (o.backend == SHMKIT_BACKEND_MEMFD)
		return -EINVAL;
	if (name && (err = shmkit_name_valid(name)))
		return err;
	if (!name && !o.key)
		return -EINVAL;
	int removed = 0, first_err = 0;
	if (name && !o.key && want(&o, SHMKIT_BACKEND_POSIX)) {
		char path[SHMKIT_NAME_MAX + 16];
		posix_path(path, sizeof path, name);
		if (shm_unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			first_err = remove_error(-errno);
	}
	if (want(&o, SHMKIT_BACKEND_SYSV)) {
		if (o.key) {
			int id = shmget((key_t)o.key, 0, 0);
			if (id >= 0) {
				struct shmid_ds ds;
				struct hdr_view v;
				int status = shmctl(id, IPC_STAT, &ds) < 0
						     ? -errno
						     : sysv_peek(id, ds.shm_segsz, &v);
				/* Ours if the magic is ours (even when damaged); never a foreign one —
				 * nor a zero-filled one, which may be somebody's fresh segment. */
				if (status == -EACCES || status == -EPERM)
					err = status;
				else if (!v.magic_ok || (name && !(v.trusted &&
								   strcmp(v.copy.name, name) == 0)))
					err = -ENOTUNIQ;
				else
					err = remove_error(rmid(id));
				if (err == 0)
					removed++;
				else if (!first_err)
					first_err = err;
			} else if (errno != ENOENT && !first_err) {
				first_err = -errno;
			}
		} else {
			int ids[64];
			int found = sysv_find_by_name(name, ids, 64);
			for (int i = 0; i < found; i++) {
				err = remove_error(rmid(ids[i]));
				if (err == 0)
					removed++;
				else if (!first_err)
					first_err = err;
			}
			/* Nothing found by the headers we could read: a segment at the name's key
			 * that we may not read is most likely it, another user's. Say so rather
			 * than "no such segment". */
			if (found == 0 && !first_err && sysv_key_unreadable(name))
				first_err = -EACCES;
		}
	}
	if (removed)
		return removed;
	return first_err ? first_err : -ENOENT;
}

/* --- removal that checks identity ------------------------------------------------------
 *
 * shmkit_segment_remove_exact() removes what a caller looked at (a `shmkit rm` that checked
 * every name first, a `shmkit gc` that listed everything first), never what took its place
 * since: docs/design.md, "Lifetimes and removal". */

/* Whether the header now in `v` (status `status`) is the one `seen` was made from: when
 * `seen` had a readable header, the same creation stamp; when it had none, none now. */
static bool same_stamp(const struct shmkit_segment_info *seen, const struct hdr_view *v)
{
	if (seen->kind == 0)
		return !v->trusted;
	return v->trusted && v->copy.created_ns == seen->created_ns &&
	       v->copy.creator_pid == seen->creator_pid && v->copy.kind == seen->kind;
}

/* The trust rule for removal: 0 when the object may be removed, -ENOTUNIQ when it is not a
 * shmkit segment, -EPERM when it is not ours; SHMKIT_SEG_FOREIGN_UID accepts both. */
static int remove_trust(int status, const struct hdr_view *v, uint32_t uid, uint32_t cuid,
			uint32_t mode, uint32_t flags)
{
	if (flags & SHMKIT_SEG_FOREIGN_UID)
		return 0;
	if (status == -ENOTUNIQ)
		return -ENOTUNIQ;
	if (!ids_ours(uid, cuid, mode) || (v->trusted && v->copy.creator_uid != geteuid()))
		return -EPERM;
	return 0;
}

static int remove_exact_posix(const struct shmkit_segment_info *seen, uint32_t flags)
{
	char path[SHMKIT_NAME_MAX + 32];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", seen->name);
	struct stat st;
	int fd = posix_open_nb(seen->name, O_RDONLY, &st);
	if (fd == -ENOENT)
		return -ENOENT;
	if (fd < 0 && fd != -ENOTUNIQ)
		return fd == -EPERM ? -EACCES : fd;
	/* While fd is open the inode cannot be freed, so its number cannot name another file:
	 * the comparison below and the one before the unlink are exact. */
	int err = 0;
	struct hdr_view v;
	memset(&v, 0, sizeof v);
	int status = -ENOTUNIQ;
	if ((uint64_t)st.st_dev != seen->dev || (uint64_t)st.st_ino != seen->ino) {
		err = -ESTALE;
	} else if (fd >= 0) {
		_Alignas(8) uint8_t hdr[SHMKIT__HDR_SIZE];
		ssize_t got = pread(fd, hdr, sizeof hdr, 0);
		if (st.st_size == 0)
			status = -EAGAIN;
		else if (got != (ssize_t)sizeof hdr)
			status = got < 0 ? -errno : -ERANGE;
		else
			status = hdr_validate(hdr, (uint64_t)st.st_size, SHMKIT__HDR_SIZE, &v);
		if (!same_stamp(seen, &v))
			err = -ESTALE;
	}
	if (!err)
		err = remove_trust(status, &v, st.st_uid, st.st_uid, st.st_mode, flags);
	if (!err) {
		/* The last look at the name, right before unlink(2): still the file we hold? */
		struct stat now;
		if (fstatat(AT_FDCWD, path, &now, AT_SYMLINK_NOFOLLOW) < 0)
			err = -errno;
		else if (now.st_dev != st.st_dev || now.st_ino != st.st_ino)
			err = -ESTALE;
	}
	if (!err && unlink(path) < 0)
		err = remove_error(-errno);
	if (fd >= 0)
		close(fd);
	return err;
}

static int remove_exact_sysv(const struct shmkit_segment_info *seen, uint32_t flags)
{
	struct shmid_ds ds;
	if (seen->sysv_id < 0)
		return -EINVAL;
	bool gone = false;
	if (shmctl(seen->sysv_id, IPC_STAT, &ds) < 0) {
		if (errno != EINVAL && errno != EIDRM)
			return remove_error(-errno);
		gone = true;
	} else {
		gone = ds.shm_perm.mode & SHM_DEST;
	}
	if (gone) {
		/* The segment looked at is gone. Another at its key took its place (the shmid
		 * differs, so it is not the one seen): say so, as for a POSIX name. */
		return seen->sysv_key != IPC_PRIVATE && shmget((key_t)seen->sysv_key, 0, 0) >= 0
			       ? -ESTALE
			       : -ENOENT;
	}
	if ((int32_t)ds.shm_perm.__key != seen->sysv_key)
		return -ESTALE;
	struct hdr_view v;
	int status = sysv_peek(seen->sysv_id, ds.shm_segsz, &v);
	if (status == -EACCES || status == -EPERM)
		return -EACCES;
	if (!v.magic_ok && status == -EAGAIN)
		status = -ENOTUNIQ; /* as describe_sysv() sees it */
	if (!same_stamp(seen, &v))
		return -ESTALE;
	int err = remove_trust(status, &v, ds.shm_perm.uid, ds.shm_perm.cuid, ds.shm_perm.mode,
			       flags);
	/* By shmid: the very segment looked at, whoever holds its key now. */
	return err ? err : remove_error(rmid(seen->sysv_id));
}

int shmkit_segment_remove_exact(const struct shmkit_segment_info *seen, uint32_t flags)
{
	if (!seen || (flags & ~SHMKIT_SEG_FOREIGN_UID))
		return -EINVAL;
	switch (seen->backend) {
	case SHMKIT_BACKEND_POSIX:
		if (shmkit_name_valid(seen->name) < 0)
			return -EINVAL;
		return remove_exact_posix(seen, flags);
	case SHMKIT_BACKEND_SYSV:
		return remove_exact_sysv(seen, flags);
	default:
		return -EINVAL;
	}
}
