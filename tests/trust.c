/* shmkit tests — the trust model (docs/design.md, "Trust model"): whose objects are ours,
 * what a descriptor is, and what lies at a POSIX name.
 *
 *   - identities: for every backend, objects whose kernel identities were forged or
 *     loosened after creation (System V owner handed away with IPC_SET while the creator
 *     stays, group or other write in the mode, a header naming another creator), made by
 *     this process and by a real second user, are refused without SHMKIT_SEG_FOREIGN_UID;
 *   - file types: a FIFO, socket, directory, symlink, empty or truncated file at a POSIX
 *     name never blocks a library call or a CLI command, and gets a sensible error;
 *   - descriptors: every kind's _open_fd() decides by what the descriptor is (sealed
 *     memfd, file linked under its shmkit name in /dev/shm, anything else), never by the
 *     header's claim, and a sender that truncates never kills the receiver with SIGBUS;
 *   - error messages that name their cause and limit (kernel.shmmax, a full /dev/shm,
 *     another user's System V segment), in private IPC and mount namespaces.
 *
 * The cross-user tests need root (to switch to the second user, created here when it is
 * missing); without root they say so and skip.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"

#define WAIT_MS 20000 /* generous: a loaded 2-core CI machine */
#define PEER_USER "shmkit-peer"

/* --- the second user ------------------------------------------------------------------ */

static uid_t peer_uid;
static gid_t peer_gid;

/* Finds (or, as root, creates) the second user. False, with a message, when the test
 * cannot switch users: it then skips. */
static bool peer_ready(const char *test)
{
	if (geteuid() != 0) {
		printf("%s: skipped: needs root to act as a second user\n", test);
		return false;
	}
	struct passwd *pw = getpwnam(PEER_USER);
	if (!pw) {
		int rc = system("useradd --system --no-create-home --shell /usr/sbin/nologin "
				PEER_USER " >/dev/null 2>&1");
		(void)rc;
		pw = getpwnam(PEER_USER);
	}
	if (!pw)
		pw = getpwnam("nobody"); /* no useradd here: any other user will do */
	ck_assert_msg(pw != NULL, "no second user: neither " PEER_USER " nor nobody");
	ck_assert_uint_ne(pw->pw_uid, 0);
	peer_uid = pw->pw_uid;
	peer_gid = pw->pw_gid;
	return true;
}

struct peer_job {
	int (*fn)(void *);
	void *arg;
};

static int peer_trampoline(void *p)
{
	struct peer_job *j = p;
	if (setgroups(0, NULL) < 0 || setgid(peer_gid) < 0 || setuid(peer_uid) < 0)
		return 100;
	return j->fn(j->arg);
}

/* Runs fn(arg) in a child process as the second user; returns its t_wait() status. */
static int run_as_peer(int (*fn)(void *), void *arg)
{
	struct peer_job j = {fn, arg};
	return t_wait(t_fork(peer_trampoline, &j), WAIT_MS);
}

/* --- forging ---------------------------------------------------------------------------- */

static struct shmkit__seg_hdr *hdr_of(struct shmkit_segment *seg)
{
	return (struct shmkit__seg_hdr *)((uint8_t *)shmkit_segment_data(seg) - SHMKIT__HDR_SIZE);
}

/* Rewrites a header's creator uid with a matching checksum: a forgery only the trust
 * rule's other identities can catch. */
static void forge_creator(struct shmkit__seg_hdr *h, uint32_t uid)
{
	h->creator_uid = uid;
	h->checksum = shmkit__hdr_checksum(h);
}

/* Changes the kernel's mode (and group, unless -1) of a segment after its creation. */
static int set_mode(struct shmkit_segment *seg, uint32_t mode, gid_t gid)
{
	if (shmkit_segment_backend(seg) == SHMKIT_BACKEND_SYSV) {
		struct shmkit_segment_info inf;
		struct shmid_ds ds;
		if (shmkit_segment_info(seg, &inf) < 0 || shmctl(inf.sysv_id, IPC_STAT, &ds) < 0)
			return -errno;
		ds.shm_perm.mode = (unsigned short)mode;
		if (gid != (gid_t)-1)
			ds.shm_perm.gid = gid;
		return shmctl(inf.sysv_id, IPC_SET, &ds) < 0 ? -errno : 0;
	}
	int fd = shmkit_segment_fd(seg);
	if (gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0)
		return -errno;
	return fchmod(fd, (mode_t)mode) < 0 ? -errno : 0;
}


static struct shmkit_segment *make_seg(const char *name, uint32_t backend, uint32_t mode)
{
	struct shmkit_segment_opts o = {.backend = backend, .mode = mode};
	struct shmkit_segment *seg = NULL;
	int err = shmkit_segment_create(name, 4096, &o, &seg);
	ck_assert_msg(err == 0, "create %s: %s", name, shmkit_strerror(err));
	return seg;
}

/* Opens again, as a second opener would: by name, or by the descriptor for memfd. */
static int reopen(struct shmkit_segment *seg, uint32_t flags)
{
	struct shmkit_segment_opts o = {.backend = shmkit_segment_backend(seg), .flags = flags};
	struct shmkit_segment *s2 = NULL;
	int err;
	if (o.backend == SHMKIT_BACKEND_MEMFD)
		err = shmkit_segment_open_fd(shmkit_segment_fd(seg), &o, &s2);
	else
		err = shmkit_segment_open(shmkit_segment_name(seg), &o, &s2);
	shmkit_segment_close(s2);
	return err;
}

/* Whether a by-name segment's stat reports `status`. memfd has no name to stat: its
 * handle's info is checked instead. */
static void assert_stat_status(struct shmkit_segment *seg, int status)
{
	struct shmkit_segment_info inf;
	if (shmkit_segment_backend(seg) == SHMKIT_BACKEND_MEMFD) {
		ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	} else {
		struct shmkit_segment_opts o = {.backend = shmkit_segment_backend(seg)};
		ck_assert_int_eq(shmkit_segment_stat(shmkit_segment_name(seg), &o, &inf), 0);
	}
	ck_assert_int_eq(inf.status, status);
}

/* --- identities forged by the owner ------------------------------------------------------ */

/* Every identity of one of our own segments made to disagree, one at a time: each is
 * refused (and stat says so) until SHMKIT_SEG_FOREIGN_UID, and back to ours, accepted. */
START_TEST(test_loosened_identities)
{
	uint32_t backend = t_backends[_i];
	bool root = geteuid() == 0;
	char name[64];
	t_name_tracked(name, sizeof name, "loose", backend);
	struct shmkit_segment *seg = make_seg(backend == SHMKIT_BACKEND_MEMFD ? NULL : name,
					      backend, 0600);
	ck_assert_int_eq(reopen(seg, 0), 0); /* the control: ours is accepted */
	assert_stat_status(seg, 0);

	static const uint32_t loose[] = {0620, 0602, 0666, 0622};
	for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
		ck_assert_int_eq(set_mode(seg, loose[i], (gid_t)-1), 0);
		ck_assert_msg(reopen(seg, 0) == -EPERM, "mode %04o accepted", loose[i]);
		assert_stat_status(seg, -EPERM);
		ck_assert_int_eq(reopen(seg, SHMKIT_SEG_FOREIGN_UID), 0);
	}
	/* Group write to another group (root can hand the group away). */
	if (root && peer_ready("test_loosened_identities (group)")) {
		ck_assert_int_eq(set_mode(seg, 0660, peer_gid), 0);
		ck_assert_int_eq(reopen(seg, 0), -EPERM);
		ck_assert_int_eq(set_mode(seg, 0640, (gid_t)-1), 0); /* group may read: fine */
		ck_assert_int_eq(reopen(seg, 0), 0);
	}
	ck_assert_int_eq(set_mode(seg, 0600, (gid_t)-1), 0);
	ck_assert_int_eq(reopen(seg, 0), 0);

	/* A header naming another creator, with a good checksum. */
	forge_creator(hdr_of(seg), (uint32_t)geteuid() + 1);
	ck_assert_int_eq(reopen(seg, 0), -EPERM);
	assert_stat_status(seg, -EPERM);
	ck_assert_int_eq(reopen(seg, SHMKIT_SEG_FOREIGN_UID), 0);
	forge_creator(hdr_of(seg), (uint32_t)geteuid());
	ck_assert_int_eq(reopen(seg, 0), 0);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

/* --- identities forged by another user --------------------------------------------------- */

struct forge_arg {
	const char *name;
	uint32_t backend;
	int sock; /* memfd: where the descriptor goes */
};

/* As the second user: creates a stream channel readable and writable by its creator only
 * in appearance, then hands every identity it can to root — the header's creator uid, and
 * for System V the owner (IPC_SET; the creator uid the kernel keeps cannot change). */
static int peer_forges(void *p)
{
	struct forge_arg *a = p;
	struct shmkit_chan_opts o = {.capacity = 4096, .seg = {.backend = a->backend, .mode = 0644}};
	struct shmkit_chan *ch;
	if (shmkit_chan_create(a->backend == SHMKIT_BACKEND_MEMFD ? NULL : a->name,
			       SHMKIT_CHAN_PRODUCER, &o, &ch) != 0)
		return 10;
	struct shmkit_segment *seg = shmkit_chan_segment(ch);
	forge_creator(hdr_of(seg), 0);
	if (shmkit_chan_send(ch, "forged", 6) != 0)
		return 11;
	if (a->backend == SHMKIT_BACKEND_SYSV) {
		struct shmkit_segment_info inf;
		struct shmid_ds ds;
		if (shmkit_segment_info(seg, &inf) < 0 || shmctl(inf.sysv_id, IPC_STAT, &ds) < 0)
			return 12;
		ds.shm_perm.uid = 0;
		ds.shm_perm.gid = 0;
		if (shmctl(inf.sysv_id, IPC_SET, &ds) < 0)
			return 13;
	}
	if (a->backend == SHMKIT_BACKEND_MEMFD) {
		/* Twice: once refused, once accepted as foreign. */
		if (shmkit_segment_send_fd(a->sock, seg) != 0 ||
		    shmkit_segment_send_fd(a->sock, seg) != 0)
			return 14;
	}
	shmkit_chan_close(ch); /* leaves the named ones behind, as an attacker would */
	return 0;
}

static int open_consumer(const char *name, uint32_t backend, int fd, uint32_t flags)
{
	struct shmkit_chan_opts o = {.seg = {.backend = backend, .flags = flags}};
	struct shmkit_chan *ch = NULL;
	int err = fd >= 0 ? shmkit_chan_open_fd(fd, SHMKIT_CHAN_CONSUMER, &o, &ch)
			  : shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, &o, &ch);
	shmkit_chan_close(ch);
	return err;
}

START_TEST(test_forged_by_peer)
{
	if (!peer_ready("test_forged_by_peer"))
		return;
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name_tracked(name, sizeof name, "forged", backend);
	int sv[2] = {-1, -1};
	if (backend == SHMKIT_BACKEND_MEMFD)
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct forge_arg a = {name, backend, sv[1]};
	ck_assert_int_eq(run_as_peer(peer_forges, &a), 0);

	if (backend == SHMKIT_BACKEND_MEMFD) {
		struct shmkit_segment *seg;
		ck_assert_int_eq(shmkit_segment_recv_fd(sv[0], NULL, &seg), -EPERM);
		struct shmkit_segment_opts fo = {.flags = SHMKIT_SEG_FOREIGN_UID};
		ck_assert_int_eq(shmkit_segment_recv_fd(sv[0], &fo, &seg), 0);
		struct shmkit_segment_info inf;
		ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
		ck_assert_uint_eq(inf.uid, peer_uid);
		ck_assert_int_eq(inf.status, -EPERM);
		int fd = shmkit_segment_fd(seg);
		ck_assert_int_eq(open_consumer(NULL, backend, fd, 0), -EPERM);
		ck_assert_int_eq(open_consumer(NULL, backend, fd, SHMKIT_SEG_FOREIGN_UID), 0);
		shmkit_segment_close(seg);
		close(sv[0]);
		close(sv[1]);
		return;
	}
	/* The attack: root's plain open must refuse, whatever the owner field says. */
	ck_assert_int_eq(open_consumer(name, backend, -1, 0), -EPERM);
	ck_assert_int_eq(open_consumer(name, SHMKIT_BACKEND_ANY, -1, 0), -EPERM);
	ck_assert_int_eq(open_consumer(name, backend, -1, SHMKIT_SEG_FOREIGN_UID), 0);
	struct shmkit_segment_opts so = {.backend = backend};
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, &so, &inf), 0);
	ck_assert_int_eq(inf.status, -EPERM);
	ck_assert_uint_eq(inf.creator_uid, 0); /* what the forged header claims */
	if (backend == SHMKIT_BACKEND_SYSV) {
		ck_assert_uint_eq(inf.uid, 0);
		ck_assert_uint_eq(inf.cuid, peer_uid);
	} else {
		ck_assert_uint_eq(inf.uid, peer_uid);
	}

	/* The CLI: stat shows both identities; sub refuses with the cause. */
	struct t_run r = {0};
	const char *bk = shmkit_backend_name(backend);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"stat", "--json", "--backend", bk, name, NULL});
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, "\"status\":\"other-user\""));
	if (backend == SHMKIT_BACKEND_SYSV) {
		char want[64];
		snprintf(want, sizeof want, "\"sysv_cuid\":%u", (unsigned)peer_uid);
		ck_assert_msg(strstr(r.out, want) && strstr(r.out, "\"uid\":0,"), "%s", r.out);
	}
	t_run_cli(&r, WAIT_MS, (const char *const[]){"sub", name, "--timeout", "1", NULL});
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.err, "not ours") != NULL, "%s", r.err);
	t_run_free(&r);
	ck_assert_int_eq(shmkit_segment_remove(name, &so), 1);
}
END_TEST

/* The second user opening root's segments: the kernel's permissions first, then the
 * trust rule for what the mode lets through. */
struct peer_open_arg {
	const char *name;
	uint32_t backend;
	uint32_t flags;
};

static int peer_opens(void *p)
{
	struct peer_open_arg *a = p;
	struct shmkit_segment_opts o = {.backend = a->backend, .flags = a->flags};
	struct shmkit_segment *seg;
	int err = shmkit_segment_open(a->name, &o, &seg);
	if (err == 0)
		shmkit_segment_close(seg);
	return -err;
}

static int peer_removes(void *p)
{
	struct peer_open_arg *a = p;
	struct t_run r = {0};
	t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", a->name, NULL});
	int ok = r.status == 1 && strstr(r.err, "permission denied") != NULL;
	if (!ok)
		fprintf(stderr, "peer rm: status %d: %s", r.status, r.err);
	t_run_free(&r);
	return ok ? 0 : 1;
}

START_TEST(test_peer_opens_root_segment)
{
	if (!peer_ready("test_peer_opens_root_segment"))
		return;
	uint32_t backend = t_backends[_i]; /* named ones only: loop to T_NAMED_BACKENDS */
	char name[64];
	t_name_tracked(name, sizeof name, "rootseg", backend);
	struct shmkit_segment *seg = make_seg(name, backend, 0600);
	struct peer_open_arg a = {name, backend, 0};
	ck_assert_int_eq(run_as_peer(peer_opens, &a), EACCES);
	/* "permission denied", not "no such segment" (issue 11, 4). */
	ck_assert_int_eq(run_as_peer(peer_removes, &a), 0);
	ck_assert_int_eq(set_mode(seg, 0666, (gid_t)-1), 0);
	ck_assert_int_eq(run_as_peer(peer_opens, &a), EPERM);
	a.flags = SHMKIT_SEG_FOREIGN_UID;
	ck_assert_int_eq(run_as_peer(peer_opens, &a), 0);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

/* Another user's shmkit segments, POSIX and System V, ephemeral and with their creator
 * gone: garbage by every rule but one — they are not ours. rm and gc treat both backends
 * alike (issue 13): rm refuses without --force and names the system tool, gc keeps them
 * and says why, rm --force removes them. */
static int peer_creates(void *p)
{
	struct peer_open_arg *a = p;
	struct shmkit_segment_opts o = {.backend = a->backend, .mode = 0644};
	struct shmkit_segment *seg;
	if (shmkit_segment_create(a->name, 4096, &o, &seg) != 0)
		return 10;
	shmkit_segment_close(seg);
	return 0;
}

START_TEST(test_peer_segments_rm_gc)
{
	if (!peer_ready("test_peer_segments_rm_gc"))
		return;
	char pname[64], sname[64], want[320];
	t_name_tracked(pname, sizeof pname, "peerp", SHMKIT_BACKEND_POSIX);
	t_name_tracked(sname, sizeof sname, "peers", SHMKIT_BACKEND_SYSV);
	struct peer_open_arg pa = {pname, SHMKIT_BACKEND_POSIX, 0};
	struct peer_open_arg sa = {sname, SHMKIT_BACKEND_SYSV, 0};
	ck_assert_int_eq(run_as_peer(peer_creates, &pa), 0);
	ck_assert_int_eq(run_as_peer(peer_creates, &sa), 0);
	struct shmkit_segment_opts so = {.backend = SHMKIT_BACKEND_SYSV};
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(sname, &so, &inf), 0);
	ck_assert_int_eq(inf.status, -EPERM);

	struct t_run r = {0};
	t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", pname, NULL});
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: rm: %s: not ours (posix, other-user): not removed "
		 "without --force; or remove it with: rm /dev/shm/shmkit.%s\n", pname, pname);
	ck_assert_str_eq(r.err, want);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", sname, NULL});
	ck_assert_int_eq(r.status, 1);
	snprintf(want, sizeof want, "shmkit: rm: %s (key %d): not ours (sysv, other-user): not "
		 "removed without --force; or remove it with: ipcrm -m %d\n", sname,
		 (int)inf.sysv_key, (int)inf.sysv_id);
	ck_assert_str_eq(r.err, want);

	t_run_cli(&r, WAIT_MS, (const char *const[]){"gc", "--dry-run", NULL});
	ck_assert_int_eq(r.status, 0);
	snprintf(want, sizeof want, "kept %s (posix, not ours)\n", pname);
	ck_assert_msg(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	snprintf(want, sizeof want, "kept %s (sysv, key %d, not ours)\n", sname, (int)inf.sysv_key);
	ck_assert_msg(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"gc", NULL});
	ck_assert_int_eq(r.status, 0);
	struct shmkit_segment_opts po = {.backend = SHMKIT_BACKEND_POSIX};
	ck_assert_int_eq(shmkit_segment_stat(pname, &po, &inf), 0);
	ck_assert_int_eq(shmkit_segment_stat(sname, &so, &inf), 0);

	t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", "--force", pname, sname, NULL});
	ck_assert_msg(r.status == 0, "%s", r.err);
	ck_assert_int_eq(shmkit_segment_stat(pname, &po, &inf), -ENOENT);
	ck_assert_int_eq(shmkit_segment_stat(sname, &so, &inf), -ENOENT);
	t_run_free(&r);
}
END_TEST

/* --- what lies at a POSIX name ---------------------------------------------------------- */

enum ftype { F_FIFO, F_SOCKET, F_DIR, F_SYMLINK, F_EMPTY, F_SHORT, F_TRUNCATED, F_COUNT };
static const char *const ftype_names[F_COUNT] = {"fifo",  "socket", "dir",      "symlink",
						 "empty", "short",  "truncated"};

/* Puts an object of type t at /dev/shm/shmkit.<name>; returns the status open should
 * give. `target` is a real segment of ours for the symlink to point at. */
static int make_ftype(enum ftype t, const char *name, const char *target)
{
	char path[128], tpath[128];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	snprintf(tpath, sizeof tpath, "/dev/shm/shmkit.%s", target);
	int fd;
	switch (t) {
	case F_FIFO:
		ck_assert_int_eq(mkfifo(path, 0644), 0);
		return -ENOTUNIQ;
	case F_SOCKET: {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
		memcpy(sa.sun_path, path, strlen(path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
		ck_assert_int_eq(listen(fd, 1), 0); /* a live socket: connect would succeed */
		return -ENOTUNIQ;                   /* fd stays open for the test's life */
	}
	case F_DIR:
		ck_assert_int_eq(mkdir(path, 0700), 0);
		return -ENOTUNIQ;
	case F_SYMLINK:
		ck_assert_int_eq(symlink(tpath, path), 0);
		return -ENOTUNIQ;
	case F_EMPTY:
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		close(fd);
		return -EAGAIN;
	case F_SHORT:
	case F_TRUNCATED: {
		/* A copy of a real segment's first bytes: all of its header for TRUNCATED
		 * (which claims more than is there), part of it for SHORT. */
		int src = open(tpath, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(src, 0);
		uint8_t buf[2048]; /* of 4608: the header claims more than TRUNCATED holds */
		size_t len = t == F_SHORT ? 100 : sizeof buf;
		ck_assert_int_eq(pread(src, buf, len, 0), (ssize_t)len);
		close(src);
		struct shmkit__seg_hdr *h = (struct shmkit__seg_hdr *)(void *)buf;
		if (t == F_TRUNCATED) { /* the header names this file, as a real one would */
			memset(h->name, 0, sizeof h->name);
			h->name_len = (uint32_t)strlen(name);
			memcpy(h->name, name, h->name_len);
			h->checksum = shmkit__hdr_checksum(h);
		}
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
		close(fd);
		return -ERANGE;
	}
	default:
		ck_abort();
	}
	return 0;
}

static void remove_ftype(enum ftype t, const char *name)
{
	char path[128];
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	if (t == F_DIR)
		rmdir(path);
	else
		unlink(path);
}

static int open_every_kind(const char *name, int *errs)
{
	struct shmkit_chan *ch = NULL;
	struct shmkit_pubsub *ps = NULL;
	struct shmkit_queue *q = NULL;
	struct shmkit_table *t = NULL;
	int n = 0;
	errs[n++] = shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &ch);
	errs[n++] = shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &ch);
	errs[n++] = shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &ps);
	errs[n++] = shmkit_queue_open(name, NULL, &q);
	errs[n++] = shmkit_table_open(name, NULL, &t);
	ck_assert(!ch && !ps && !q && !t);
	return n;
}

static const char *status_word(int status)
{
	return status == -ENOTUNIQ ? "foreign" : status == -EAGAIN ? "not-ready" : "truncated";
}

START_TEST(test_file_types)
{
	enum ftype t = (enum ftype)_i;
	char name[64], target[64];
	t_name_tracked(target, sizeof target, "target", SHMKIT_BACKEND_POSIX);
	t_name(name, sizeof name, ftype_names[t]);
	struct shmkit_segment *tseg = make_seg(target, SHMKIT_BACKEND_POSIX, 0600);
	int want = make_ftype(t, name, target);
	/* Every call below must come back; a blocked one ends here with a name. */
	alarm(120);

	static const uint32_t flag_sets[] = {0, SHMKIT_SEG_RDONLY, SHMKIT_SEG_FOREIGN_UID,
					     SHMKIT_SEG_RDONLY | SHMKIT_SEG_FOREIGN_UID};
	static const uint32_t backends[] = {SHMKIT_BACKEND_ANY, SHMKIT_BACKEND_POSIX};
	for (size_t b = 0; b < 2; b++)
		for (size_t f = 0; f < 4; f++) {
			struct shmkit_segment_opts o = {.backend = backends[b], .flags = flag_sets[f]};
			struct shmkit_segment *seg = NULL;
			int err = shmkit_segment_open(name, &o, &seg);
			ck_assert_msg(err == want, "%s: open flags %#x: %d", ftype_names[t],
				      flag_sets[f], err);
		}
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
	ck_assert_int_eq(inf.status, want);
	ck_assert_str_eq(inf.name, name);
	struct shmkit_segment_info *list;
	int n = shmkit_segment_list(&list);
	ck_assert_int_ge(n, 2);
	int seen = 0;
	for (int i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0) {
			seen++;
			ck_assert_int_eq(list[i].status, want);
		} else if (strcmp(list[i].name, target) == 0) {
			ck_assert_int_eq(list[i].status, 0); /* what the symlink points at */
		}
	shmkit_segment_list_free(list);
	ck_assert_int_eq(seen, 1);
	int errs[8];
	int nk = open_every_kind(name, errs);
	for (int i = 0; i < nk; i++)
		ck_assert_msg(errs[i] == want, "%s: kind open %d: %d", ftype_names[t], i, errs[i]);

	/* The CLI, each command bounded; none may hang, each says something sensible. */
	struct t_run r = {0};
	const char *word = status_word(want);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"ls", NULL});
	ck_assert_int_eq(r.status, 0);
	char *line = strstr(r.out, name);
	ck_assert_ptr_nonnull(line);
	*strchrnul(line, '\n') = '\0'; /* its own row only */
	ck_assert_msg(strstr(line, word) != NULL, "%s", line);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"ls", "--json", NULL});
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, name));
	t_run_cli(&r, WAIT_MS, (const char *const[]){"stat", name, NULL});
	ck_assert_int_eq(r.status, 0);
	ck_assert_ptr_nonnull(strstr(r.out, word));
	t_run_cli(&r, WAIT_MS, (const char *const[]){"stat", "--json", name, NULL});
	ck_assert_int_eq(r.status, 0);
	for (int dry = 1; dry >= 0; dry--) {
		t_run_cli(&r, WAIT_MS,
			  dry ? (const char *const[]){"gc", "-v", "--dry-run", NULL}
			      : (const char *const[]){"gc", "-v", NULL});
		ck_assert_int_eq(r.status, 0);
		char kept[128];
		snprintf(kept, sizeof kept, "kept %s (posix", name);
		ck_assert_msg(strstr(r.out, kept) != NULL, "%s", r.out);
	}
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0); /* gc kept it */
	t_run_cli(&r, WAIT_MS, (const char *const[]){"sub", name, "--timeout", "1", NULL});
	ck_assert_int_eq(r.status, 1);
	t_run_cli(&r, WAIT_MS, (const char *const[]){"table", "get", name, "k", NULL});
	ck_assert_int_eq(r.status, 1);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct t_proc p;
	t_spawn_cli(&p, devnull, -1, (const char *const[]){"pub", name, "--timeout", "1", NULL});
	t_run_collect(&r, &p, WAIT_MS);
	close(devnull);
	ck_assert_int_eq(r.status, 1);
	/* rm removes the name, whatever is there (a directory excepted: not unlinkable) —
	 * something that is not a shmkit segment only with --force, as for System V. */
	bool foreign = t == F_FIFO || t == F_SOCKET || t == F_DIR || t == F_SYMLINK;
	if (foreign) {
		t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", name, NULL});
		ck_assert_int_eq(r.status, 1);
		ck_assert_msg(strstr(r.err, "not a shmkit segment") && strstr(r.err, "--force"), "%s",
			      r.err);
	}
	t_run_cli(&r, WAIT_MS, (const char *const[]){"rm", "--force", name, NULL});
	ck_assert_int_eq(r.status, t == F_DIR ? 1 : 0);
	t_run_free(&r);
	alarm(0);
	remove_ftype(t, name);
	shmkit_segment_unlink(tseg);
	shmkit_segment_close(tseg);
}
END_TEST

/* --- what a descriptor is ----------------------------------------------------------------- */

enum kind_ix { K_RAW, K_CHAN, K_PUBSUB, K_QUEUE, K_TABLE, K_COUNT };
static const char *const kind_ix_names[K_COUNT] = {"raw", "chan", "pubsub", "queue", "table"};

/* One open object of any kind, to close generically. */
struct any_obj {
	enum kind_ix k;
	void *p;
};

static struct shmkit_segment *obj_segment(const struct any_obj *o)
{
	switch (o->k) {
	case K_RAW:
		return o->p;
	case K_CHAN:
		return shmkit_chan_segment(o->p);
	case K_PUBSUB:
		return shmkit_pubsub_segment(o->p);
	case K_QUEUE:
		return shmkit_queue_segment(o->p);
	default:
		return shmkit_table_segment(o->p);
	}
}

static void obj_close(struct any_obj *o)
{
	if (!o->p)
		return;
	switch (o->k) {
	case K_RAW:
		shmkit_segment_close(o->p);
		break;
	case K_CHAN:
		shmkit_chan_close(o->p);
		break;
	case K_PUBSUB:
		shmkit_pubsub_close(o->p);
		break;
	case K_QUEUE:
		shmkit_queue_close(o->p);
		break;
	default:
		shmkit_table_close(o->p);
		break;
	}
	o->p = NULL;
}

/* Creates an object of kind k on a memfd, the model whose bytes the test copies. */
static void obj_create(struct any_obj *o, enum kind_ix k)
{
	struct shmkit_segment_opts seg = {.backend = SHMKIT_BACKEND_MEMFD};
	int err;
	o->k = k;
	o->p = NULL;
	switch (k) {
	case K_RAW:
		err = shmkit_segment_create(NULL, 8192, &seg, (struct shmkit_segment **)&o->p);
		break;
	case K_CHAN:
		err = shmkit_chan_create(NULL, SHMKIT_CHAN_PRODUCER,
					 &(struct shmkit_chan_opts){.capacity = 4096, .seg = seg},
					 (struct shmkit_chan **)&o->p);
		break;
	case K_PUBSUB:
		err = shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER,
					   &(struct shmkit_pubsub_opts){.capacity = 4096, .seg = seg},
					   (struct shmkit_pubsub **)&o->p);
		break;
	case K_QUEUE:
		err = shmkit_queue_create(NULL, &(struct shmkit_queue_opts){.seg = seg},
					  (struct shmkit_queue **)&o->p);
		break;
	default:
		err = shmkit_table_create(NULL,
					  &(struct shmkit_table_opts){.capacity = 8, .seg = seg},
					  (struct shmkit_table **)&o->p);
		break;
	}
	ck_assert_msg(err == 0, "create %s: %s", kind_ix_names[k], shmkit_strerror(err));
}

/* The receiving side: opens `fd` as kind k (observer roles: the copy's roles are taken). */
static int obj_open_fd(struct any_obj *o, enum kind_ix k, int fd)
{
	o->k = k;
	o->p = NULL;
	switch (k) {
	case K_RAW:
		return shmkit_segment_open_fd(fd, NULL, (struct shmkit_segment **)&o->p);
	case K_CHAN:
		return shmkit_chan_open_fd(fd, SHMKIT_CHAN_OBSERVER, T_CHAN_RO,
					   (struct shmkit_chan **)&o->p);
	case K_PUBSUB:
		return shmkit_pubsub_open_fd(fd, SHMKIT_PUBSUB_OBSERVER, T_PUBSUB_RO,
					     (struct shmkit_pubsub **)&o->p);
	case K_QUEUE:
		return shmkit_queue_open_fd(fd, NULL, (struct shmkit_queue **)&o->p);
	default:
		return shmkit_table_open_fd(fd, NULL, (struct shmkit_table **)&o->p);
	}
}

/* Descriptor types; the rule accepts SEALED and FULL (claiming memfd) and NAMED (claiming
 * POSIX, under its own name), and nothing else. */
enum dtype { D_UNSEALED, D_SHRINK, D_GROW, D_SEALED, D_FULL, D_TMPFILE, D_SHM_OTHER,
	     D_NAMED, D_UNLINKED, D_COUNT };
static const char *const dtype_names[D_COUNT] = {"unsealed memfd", "memfd sealed shrink",
						 "memfd sealed grow", "memfd sealed shrink+grow",
						 "memfd sealed shrink+grow+seal", "file in /tmp",
						 "unnamed file in /dev/shm", "named POSIX file",
						 "unlinked POSIX file"};

/* Writes `img` (a segment image whose header is rewritten to claim `claim` and carry
 * `name`) into a fresh descriptor of type d. Returns the descriptor; path[cap] gets the
 * file's path while it stays linked (else ""), for the caller to remove. */
static int make_desc(enum dtype d, const uint8_t *img, size_t len, uint32_t claim,
		     const char *name, char *path, size_t cap)
{
	uint8_t *copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, img, len);
	struct shmkit__seg_hdr *h = (struct shmkit__seg_hdr *)(void *)copy;
	h->backend = claim;
	memset(h->name, 0, sizeof h->name);
	h->name_len = (uint32_t)strlen(name);
	memcpy(h->name, name, h->name_len);
	h->checksum = shmkit__hdr_checksum(h);
	int fd;
	path[0] = '\0';
	switch (d) {
	case D_UNSEALED:
	case D_SHRINK:
	case D_GROW:
	case D_SEALED:
	case D_FULL:
		fd = memfd_create("trust", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		break;
	case D_TMPFILE:
		snprintf(path, cap, "/tmp/shmkit-trust-XXXXXX");
		fd = mkostemp(path, O_CLOEXEC);
		break;
	case D_SHM_OTHER:
		snprintf(path, cap, "/dev/shm/shmkit-trust-XXXXXX");
		fd = mkostemp(path, O_CLOEXEC);
		break;
	default:
		snprintf(path, cap, "/dev/shm/shmkit.%s", name);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		break;
	}
	ck_assert_msg(fd >= 0, "%s: %s", dtype_names[d], strerror(errno));
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	ck_assert_int_eq(pwrite(fd, copy, len, 0), (ssize_t)len);
	free(copy);
	static const int seals[D_COUNT] = {
		[D_SHRINK] = F_SEAL_SHRINK, [D_GROW] = F_SEAL_GROW,
		[D_SEALED] = F_SEAL_SHRINK | F_SEAL_GROW,
		[D_FULL] = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL};
	if (seals[d])
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals[d]), 0);
	if (d == D_UNLINKED) {
		ck_assert_int_eq(unlink(path), 0);
		path[0] = '\0';
	}
	return fd;
}

static int expected(enum dtype d, uint32_t claim)
{
	if (d == D_SEALED || d == D_FULL)
		return claim == SHMKIT_BACKEND_MEMFD ? 0 : -EBADMSG;
	if (d == D_NAMED)
		return claim == SHMKIT_BACKEND_POSIX ? 0 : -EBADMSG;
	return -EPERM;
}

/* The receiver in a child: opens, reports the result, waits for the sender's truncation,
 * then touches every page of what it opened. Dying of SIGBUS fails the test. */
struct recv_arg {
	enum kind_ix k;
	int fd;
	int report, go; /* pipe ends: child -> parent, parent -> child */
};

static int receiver(void *p)
{
	struct recv_arg *a = p;
	struct any_obj o;
	int err = obj_open_fd(&o, a->k, a->fd);
	close(a->fd); /* only the handle's own duplicate stays */
	signed char res = (signed char)-err;
	if (write(a->report, &res, 1) != 1)
		return 20;
	char c;
	if (read(a->go, &c, 1) != 1)
		return 21;
	if (err == 0) {
		struct shmkit_segment *seg = obj_segment(&o);
		volatile const uint8_t *d = shmkit_segment_data(seg);
		uint8_t x = 0;
		for (size_t i = 0; i < shmkit_segment_size(seg); i += 4096)
			x ^= d[i];
		(void)x;
		obj_close(&o);
	}
	return 0;
}

START_TEST(test_fd_rule)
{
	enum kind_ix k = (enum kind_ix)_i;
	struct any_obj model;
	obj_create(&model, k);
	struct shmkit_segment *mseg = obj_segment(&model);
	int mfd = shmkit_segment_fd(mseg);
	struct stat st;
	ck_assert_int_eq(fstat(mfd, &st), 0);
	size_t len = (size_t)st.st_size;
	uint8_t *img = malloc(len);
	ck_assert_ptr_nonnull(img);
	ck_assert_int_eq(pread(mfd, img, len, 0), (ssize_t)len);

	static const uint32_t claims[] = {SHMKIT_BACKEND_POSIX, SHMKIT_BACKEND_SYSV,
					  SHMKIT_BACKEND_MEMFD};
	for (int d = 0; d < D_COUNT; d++) {
		for (size_t c = 0; c < 3; c++) {
			char name[64];
			t_name_tracked(name, sizeof name, "fd", SHMKIT_BACKEND_POSIX);
			char path[160];
			int fd = make_desc((enum dtype)d, img, len, claims[c], name, path,
					   sizeof path);
			int want = expected((enum dtype)d, claims[c]);
			struct any_obj o;
			int err = obj_open_fd(&o, k, fd);
			ck_assert_msg(err == want, "%s, %s claiming %s: %d (%s), want %d",
				      kind_ix_names[k], dtype_names[d],
				      shmkit_backend_name(claims[c]), err, shmkit_strerror(err),
				      want);
			if (err == 0) {
				ck_assert_uint_eq(shmkit_segment_backend(obj_segment(&o)), claims[c]);
				obj_close(&o);
			}
			/* The sender truncates after the receiver's open. The named POSIX file
			 * is the exception the rule documents: only its owner, this uid, can
			 * truncate it, exactly as through its name. */
			if (d != D_NAMED) {
				int rep[2], go[2];
				ck_assert_int_eq(pipe2(rep, O_CLOEXEC), 0);
				ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
				struct recv_arg ra = {k, fd, rep[1], go[0]};
				pid_t pid = t_fork(receiver, &ra);
				signed char res;
				ck_assert_int_eq(read(rep[0], &res, 1), 1);
				ck_assert_int_eq(-res, want);
				int tr = ftruncate(fd, 4096);
				if (d == D_SEALED || d == D_FULL || d == D_SHRINK)
					ck_assert_msg(tr < 0 && errno == EPERM, "%s truncated",
						      dtype_names[d]);
				ck_assert_int_eq(write(go[1], "g", 1), 1);
				ck_assert_int_eq(t_wait(pid, WAIT_MS), 0);
				close(rep[0]);
				close(rep[1]);
				close(go[0]);
				close(go[1]);
			}
			close(fd);
			if (path[0])
				unlink(path);
		}
	}
	free(img);
	obj_close(&model);
}
END_TEST

/* --- error messages that name the cause ----------------------------------------------------- */

/* In a private IPC namespace with kernel.shmmax lowered (nothing else sees either), a
 * System V segment above the limit is -EFBIG, and the CLI names the limit and its value. */
static int shmmax_child(void *p)
{
	(void)p;
	if (unshare(CLONE_NEWIPC) < 0)
		return 100;
	FILE *f = fopen("/proc/sys/kernel/shmmax", "we");
	if (!f || fprintf(f, "1048576\n") < 0 || fclose(f) != 0)
		return 101;
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV};
	struct shmkit_segment *seg;
	if (shmkit_segment_create("shmmax-test", 2 << 20, &o, &seg) != -EFBIG)
		return 1;
	if (shmkit_segment_create("shmmax-test", 4096, &o, &seg) != 0)
		return 2;
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	struct t_run r = {0};
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct t_proc pr;
	t_spawn_cli(&pr, devnull, -1,
		    (const char *const[]){"pub", "shmmax-test", "--create", "--backend", "sysv",
					  "--capacity", "4M", NULL});
	t_run_collect(&r, &pr, WAIT_MS);
	int ok = r.status == 1 && strstr(r.err, "kernel.shmmax") && strstr(r.err, "1048576");
	if (!ok)
		fprintf(stderr, "shmmax: status %d: %s", r.status, r.err);
	t_run_free(&r);
	return ok ? 0 : 3;
}

/* A full /dev/shm, in a private mount namespace with a 64 KiB tmpfs over /dev/shm: create
 * is -ENOSPC, and pub --create / table create say "no space left on /dev/shm". */
static int enospc_child(void *p)
{
	(void)p;
	if (unshare(CLONE_NEWNS) < 0)
		return 100;
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64k,mode=1777") < 0)
		return 101;
	struct shmkit_segment *seg;
	if (shmkit_segment_create("enospc-test", 1 << 20, NULL, &seg) != -ENOSPC)
		return 1;
	struct t_run r = {0};
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	struct t_proc pr;
	t_spawn_cli(&pr, devnull, -1,
		    (const char *const[]){"pub", "enospc-test", "--create", "--capacity", "1M",
					  NULL});
	t_run_collect(&r, &pr, WAIT_MS);
	int ok = r.status == 1 && strstr(r.err, "no space left on /dev/shm") &&
		 !strstr(r.err, "table full");
	if (ok) {
		t_run_cli(&r, WAIT_MS,
			  (const char *const[]){"table", "create", "enospc-test", "--capacity",
						"100000", NULL});
		ok = r.status == 1 && strstr(r.err, "no space left on /dev/shm");
	}
	if (!ok)
		fprintf(stderr, "enospc: status %d: %s", r.status, r.err);
	t_run_free(&r);
	return ok ? 0 : 2;
}

START_TEST(test_error_causes)
{
	if (geteuid() != 0) {
		printf("test_error_causes: skipped: needs root for private IPC and mount "
		       "namespaces\n");
		return;
	}
	ck_assert_int_eq(t_wait(t_fork(shmmax_child, NULL), WAIT_MS), 0);
	ck_assert_int_eq(t_wait(t_fork(enospc_child, NULL), WAIT_MS), 0);
	ck_assert_ptr_nonnull(strstr(shmkit_strerror(-EFBIG), "shmmax"));
	ck_assert_ptr_null(strstr(shmkit_strerror(-EPERM), "owned by another user (or"));
}
END_TEST

/* Runs in the test runner after the file-type tests, even when one was killed at its
 * timeout: removes what they put at POSIX names, so that nothing of this run is left for
 * the final sweep (or a person's `shmkit ls`) to trip over. */
static void file_types_teardown(void)
{
	char prefix[48];
	snprintf(prefix, sizeof prefix, "shmkit.t%d.", (int)getpid());
	DIR *d = opendir("/dev/shm");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) < 0 && errno == EISDIR)
			unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	closedir(d);
}

static Suite *trust_suite(void)
{
	Suite *s = suite_create("trust");
	TCase *tc = t_tcase(s, "identities", 120);
	tcase_add_loop_test(tc, test_loosened_identities, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_forged_by_peer, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_peer_opens_root_segment, 0, T_NAMED_BACKENDS);
	tcase_add_test(tc, test_peer_segments_rm_gc);
	tc = t_tcase(s, "file-types", 180);
	tcase_add_unchecked_fixture(tc, NULL, file_types_teardown);
	tcase_add_loop_test(tc, test_file_types, 0, F_COUNT);
	tc = t_tcase(s, "descriptors", 180);
	tcase_add_loop_test(tc, test_fd_rule, 0, K_COUNT);
	tc = t_tcase(s, "errors", 120);
	tcase_add_test(tc, test_error_causes);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {trust_suite};
	return t_main(makers, 1);
}
