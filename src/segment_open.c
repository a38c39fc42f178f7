/* shmkit — named shared-memory segments: trust, and opening what exists.
 * The layout, the protocol and the crash story are at the top of src/segment.c; what the
 * segment's files share is in src/segment_impl.h. */
#include "segment_impl.h"

/* --- trust ---------------------------------------------------------------------------- */

/* The trust rule (docs/design.md, "Trust model"; shmkit_segment(3), TRUST): an object is
 * ours only when every identity the kernel keeps for it is our effective uid — the owner,
 * and for System V also the creator (cuid), which the owner cannot change but the creator
 * can hand the owner to anyone with IPC_SET — and its mode lets nobody else write to it.
 * The header's creator uid must agree as well (checked in shmkit__seg_adopt()). Anything else is
 * foreign: -EPERM unless the caller passed SHMKIT_SEG_FOREIGN_UID. */
bool shmkit__seg_ids_ours(uint32_t uid, uint32_t cuid, uint32_t mode)
{
	uint32_t me = (uint32_t)geteuid();
	return uid == me && cuid == me && (mode & 022) == 0;
}

static int check_trust(uint32_t uid, uint32_t cuid, uint32_t mode, const struct nopts *o)
{
	if (!shmkit__seg_ids_ours(uid, cuid, mode) && !(o->flags & SHMKIT_SEG_FOREIGN_UID))
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
int shmkit__seg_posix_open_nb(const char *name, int acc, struct stat *st)
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
	int fd = shmkit__seg_posix_open_nb(name, ro ? O_RDONLY : O_RDWR, &st);
	if (fd < 0)
		return fd;
	struct shmkit_segment *seg = shmkit__seg_alloc(SHMKIT_BACKEND_POSIX, name);
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
		err = shmkit__seg_map_fd(seg, (uint64_t)st.st_size, ro);
	if (!err)
		err = shmkit__seg_adopt(seg, (uint64_t)st.st_size, o, name, -EBADMSG);
	if (err) {
		shmkit__seg_unmap(seg);
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
	struct shmkit_segment *seg =
		shmkit__seg_alloc(SHMKIT_BACKEND_SYSV, want_name ? want_name : "");
	if (!seg) {
		shmdt(p);
		return -ENOMEM;
	}
	seg->base = p;
	seg->map_size = ds.shm_segsz;
	seg->shmid = id;
	seg->readonly = ro;
	err = shmkit__seg_adopt(seg, ds.shm_segsz, o, want_name, -ENOTUNIQ);
	if (err) {
		shmkit__seg_unmap(seg);
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

/* Reads /proc/sysvipc/shm; returns the number of rows (malloc'ed *rowsp) or -errno. */
int shmkit__seg_sysv_rows(struct sysv_row **rowsp)
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
int shmkit__seg_sysv_peek(int id, uint64_t size, struct hdr_view *v)
{
	memset(v, 0, sizeof *v);
	if (size < SHMKIT__HDR_SIZE)
		return -ENOTUNIQ;
	void *p = shmat(id, NULL, SHM_RDONLY);
	if (p == (void *)-1)
		return -errno;
	int err = shmkit__seg_hdr_validate(p, size, SHMKIT__HDR_SIZE, v);
	shmdt(p);
	return err;
}

/* Finds System V segments whose (trusted) header carries `name`; fills up to cap ids. */
int shmkit__seg_sysv_find_by_name(const char *name, int *ids, int cap)
{
	struct sysv_row *rows;
	int n = shmkit__seg_sysv_rows(&rows);
	if (n < 0)
		return n;
	int found = 0;
	for (int i = 0; i < n && found < cap; i++) {
		struct hdr_view v;
		shmkit__seg_sysv_peek(rows[i].id, rows[i].size, &v);
		if (v.trusted && strcmp(v.copy.name, name) == 0)
			ids[found++] = rows[i].id;
	}
	free(rows);
	return found;
}

/* Why a System V create found its key taken: our own name (-EEXIST) or not (-ENOTUNIQ). */
int shmkit__seg_probe_sysv_key(int32_t key, const char *name)
{
	int id = shmget((key_t)key, 0, 0);
	if (id < 0)
		return -EEXIST;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -EEXIST;
	struct hdr_view v;
	shmkit__seg_sysv_peek(id, ds.shm_segsz, &v);
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
	if (shmkit__seg_sysv_find_by_name(name, &id, 1) == 1)
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
int shmkit__seg_open_fd_owned(int fd, const struct nopts *o, struct shmkit_segment **segp)
{
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	struct shmkit_segment *seg = shmkit__seg_alloc(SHMKIT_BACKEND_MEMFD, "");
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
		err = shmkit__seg_map_fd(seg, (uint64_t)st.st_size, seg->readonly);
	if (!err)
		err = shmkit__seg_adopt(seg, (uint64_t)st.st_size, o,
				seg->backend == SHMKIT_BACKEND_POSIX ? seg->name : NULL, -EBADMSG);
	if (err) {
		shmkit__seg_unmap(seg);
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
	return shmkit__seg_open_fd_owned(dup, &o, segp);
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
