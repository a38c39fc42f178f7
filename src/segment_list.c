/* shmkit — named shared-memory segments: discovery.
 * The layout, the protocol and the crash story are at the top of src/segment.c; what the
 * segment's files share is in src/segment_impl.h. */
#include "segment_impl.h"

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
	if (status == 0 &&
	    (!shmkit__seg_ids_ours(uid, cuid, mode) || v->copy.creator_uid != geteuid()))
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
	int fd = shmkit__seg_posix_open_nb(name, O_RDONLY, &st);
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
		 * copy is all shmkit__seg_hdr_validate needs. */
		_Alignas(8) uint8_t hdr[SHMKIT__HDR_SIZE];
		ssize_t got = pread(fd, hdr, sizeof hdr, 0);
		if (got != (ssize_t)sizeof hdr) {
			status = got < 0 ? -errno : -ERANGE;
		} else {
			status = shmkit__seg_hdr_validate(hdr, (uint64_t)st.st_size,
								  SHMKIT__HDR_SIZE, &v);
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
	int n = shmkit__seg_sysv_rows(&rows);
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
		int status = shmkit__seg_hdr_validate(seg->base, r.size, seg->map_size, &v);
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
	int status = shmkit__seg_hdr_validate(seg->base, (uint64_t)st.st_size, seg->map_size, &v);
	status = trust_status(status, st.st_uid, st.st_uid, st.st_mode, &v);
	info_from_view(info, status, &v);
	if (seg->backend == SHMKIT_BACKEND_POSIX) {
		uint64_t ino = st.st_ino;
		uint32_t owner = st.st_uid;
		posix_mappers(&ino, &owner, &info->nattach, 1);
	}
	return 0;
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
	int n = shmkit__seg_sysv_rows(&rows);
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
		int status = shmkit__seg_sysv_peek(rows[i].id, rows[i].size, &v);
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
	int nrows = err ? 0 : shmkit__seg_sysv_rows(&rows);
	for (int i = 0; i < nrows && !err; i++) {
		struct hdr_view v;
		int status = shmkit__seg_sysv_peek(rows[i].id, rows[i].size, &v);
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
