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
 *   4. stores state = INITIALIZING with release (SEG-R1) — the header is complete,
 *   5. initializes its data, then stores state = READY with release (SEG-R2).
 * An opener loads state with acquire (SEG-A1, pairs with SEG-R1/SEG-R2) *before* copying the
 * header, so the copy it checks is complete whenever the state says so. It copies the header once
 * into private memory, checks the copy (magic, version, checksum, sizes against what the OS
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

/* The code is split by concern (create, open, descriptor passing, discovery, removal): the
 * list of files is at the top of src/segment_impl.h. */
#include "segment_impl.h"

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

void shmkit__seg_hdr_write(struct shmkit_segment *seg, uint64_t total, uint32_t kind,
			   uint32_t flags)
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
	/* SEG-R1: publishes the complete header; pairs with SEG-A1 in
	 * shmkit__seg_hdr_validate(). */
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
	/* SEG-R2: publishes the caller's data initialization; pairs with SEG-A1 in
	 * shmkit__seg_hdr_validate(). A CAS so that publishing twice, or a segment somebody
	 * scribbled on, is reported. */
	if (!atomic_compare_exchange_strong_explicit(&h->state, &expect, SHMKIT_SEG_READY,
						     memory_order_release, memory_order_relaxed))
		return expect == SHMKIT_SEG_READY ? 0 : -EBADMSG;
	return 0;
}

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
int shmkit__seg_hdr_validate(const void *base, uint64_t os_size, size_t mapped, struct hdr_view *v)
{
	memset(v, 0, sizeof *v);
	if (os_size == 0)
		return -EAGAIN; /* created, not sized yet */
	if (os_size < SHMKIT__HDR_SIZE || mapped < SHMKIT__HDR_SIZE)
		return -ERANGE;
	const struct shmkit__seg_hdr *h = base;
	/* SEG-A1: pairs with SEG-R1/SEG-R2 in shmkit__seg_hdr_write()/shmkit_segment_publish():
	 * once state is INITIALIZING or READY, the header bytes copied below are complete. */
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

uint64_t shmkit__seg_huge_page_size(void)
{
	long kb = meminfo_kb("Hugepagesize");
	return kb > 0 ? (uint64_t)kb * 1024 : 2u << 20;
}

/* Turns an allocation failure into -ENOTSUP when the system simply has no huge pages. */
int shmkit__seg_huge_error(int err)
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

struct shmkit_segment *shmkit__seg_alloc(uint32_t backend, const char *name)
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

void shmkit__seg_unmap(struct shmkit_segment *seg)
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
int shmkit__seg_size_fd(int fd, uint64_t total, bool huge)
{
	if (ftruncate(fd, (off_t)total) < 0)
		return -errno;
	int err = posix_fallocate(fd, 0, (off_t)total);
	/* posix_fallocate returns the error; EOPNOTSUPP/EINVAL mean "cannot reserve here",
	 * which is not fatal: the pages come at first touch instead. */
	if (err && err != EOPNOTSUPP && err != EINVAL)
		return huge ? shmkit__seg_huge_error(-err) : -err;
	return 0;
}

int shmkit__seg_map_fd(struct shmkit_segment *seg, uint64_t size, bool readonly)
{
	int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
	void *p = mmap(NULL, (size_t)size, prot, MAP_SHARED, seg->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	seg->base = p;
	seg->map_size = (size_t)size;
	return 0;
}

/* --- open ---------------------------------------------------------------------------- */

/* Final checks on a mapped segment and its validated header copy; fills the handle. */
int shmkit__seg_adopt(struct shmkit_segment *seg, uint64_t os_size, const struct nopts *o,
		      const char *want_name, int name_mismatch_err)
{
	struct hdr_view v;
	int err = shmkit__seg_hdr_validate(seg->base, os_size, seg->map_size, &v);
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

static inline int rmid(int id);

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
	shmkit__seg_unmap(seg);
	free(seg);
	return 0;
}
