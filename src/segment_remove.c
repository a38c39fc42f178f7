/* shmkit — named shared-memory segments: removal.
 * The layout, the protocol and the crash story are at the top of src/segment.c; what the
 * segment's files share is in src/segment_impl.h. */
#include "segment_impl.h"

/* --- removal ------------------------------------------------------------------------- */

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
						     : shmkit__seg_sysv_peek(id, ds.shm_segsz, &v);
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
			int found = shmkit__seg_sysv_find_by_name(name, ids, 64);
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
	if (!shmkit__seg_ids_ours(uid, cuid, mode) ||
	    (v->trusted && v->copy.creator_uid != geteuid()))
		return -EPERM;
	return 0;
}

static int remove_exact_posix(const struct shmkit_segment_info *seen, uint32_t flags)
{
	char path[SHMKIT_NAME_MAX + 32];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", seen->name);
	struct stat st;
	int fd = shmkit__seg_posix_open_nb(seen->name, O_RDONLY, &st);
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
			status = shmkit__seg_hdr_validate(hdr, (uint64_t)st.st_size,
								  SHMKIT__HDR_SIZE, &v);
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
	int status = shmkit__seg_sysv_peek(seen->sysv_id, ds.shm_segsz, &v);
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
