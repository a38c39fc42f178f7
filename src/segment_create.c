/* shmkit — named shared-memory segments: create, on each backend.
 * The layout, the protocol and the crash story are at the top of src/segment.c; what the
 * segment's files share is in src/segment_impl.h. */
#include "segment_impl.h"

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
		err = shmkit__seg_size_fd(seg->fd, total, false);
	if (!err)
		err = shmkit__seg_map_fd(seg, total, false);
	if (err) {
		shm_unlink(path);
		shmkit__seg_unmap(seg);
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
		return huge ? shmkit__seg_huge_error(-errno) : -errno;
	int err = 0;
	if (fchmod(seg->fd, (mode_t)o->mode) < 0)
		err = -errno;
	if (!err)
		err = shmkit__seg_size_fd(seg->fd, total, huge);
	/* Sealed: nobody, not even a peer holding the descriptor, can shrink the object under
	 * a reader (SIGBUS) or grow it; F_SEAL_SEAL keeps the seal set as it is. */
	if (!err && fcntl(seg->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		err = -errno;
	if (!err) {
		err = shmkit__seg_map_fd(seg, total, false);
		if (err && huge)
			err = shmkit__seg_huge_error(err);
	}
	if (err)
		shmkit__seg_unmap(seg);
	return err;
}

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
			return shmkit__seg_probe_sysv_key(seg->sysv_key, seg->name);
		/* shmget says EINVAL for a size beyond the kernel.shmmax limit of this IPC
		 * namespace, as for any bad argument: name the real cause. */
		uint64_t shmmax;
		if (err == -EINVAL && sysv_shmmax(&shmmax) == 0 && total > shmmax)
			return -EFBIG;
		return huge ? shmkit__seg_huge_error(err) : err;
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
		uint64_t hp = shmkit__seg_huge_page_size();
		total = (total + hp - 1) / hp * hp;
	}

	struct shmkit_segment *seg = shmkit__seg_alloc(backend, name);
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
	shmkit__seg_hdr_write(seg, total, seg->kind, o.flags);
	if (!(o.flags & SHMKIT_SEG_DEFER_READY))
		shmkit_segment_publish(seg);
	*segp = seg;
	return 0;
}
