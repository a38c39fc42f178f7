/* Tests for src/segment.c: real segments of every backend, real processes, real kills. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "testutil.h"


static struct shmkit_segment *make_seg(const char *name, size_t size, uint32_t backend,
				       uint32_t mode, uint32_t flags)
{
	struct shmkit_segment_opts o = {.backend = backend, .mode = mode, .flags = flags};
	struct shmkit_segment *seg = NULL;
	int err = shmkit_segment_create(name, size, &o, &seg);
	ck_assert_msg(err == 0, "create %s (%s): %s", name, shmkit_backend_name(backend),
		      shmkit_strerror(err));
	t_track(name, backend);
	return seg;
}

static int open_named(const char *name, uint32_t backend, uint32_t kind, uint32_t flags,
		      struct shmkit_segment **segp)
{
	struct shmkit_segment_opts o = {.backend = backend, .kind = kind, .flags = flags};
	return shmkit_segment_open(name, &o, segp);
}

/* Writable view of a named segment's header, through a second mapping, to corrupt it. */
static struct shmkit__seg_hdr *raw_hdr(struct shmkit_segment *seg)
{
	return (struct shmkit__seg_hdr *)((uint8_t *)shmkit_segment_data(seg) - SHMKIT__HDR_SIZE);
}

/* --- names --------------------------------------------------------------------------- */

START_TEST(test_names)
{
	char longest[SHMKIT_NAME_MAX + 2];
	memset(longest, 'a', sizeof longest);
	longest[SHMKIT_NAME_MAX] = '\0';
	ck_assert_int_eq(shmkit_name_valid(longest), 0);
	longest[SHMKIT_NAME_MAX] = 'a';
	longest[SHMKIT_NAME_MAX + 1] = '\0';
	ck_assert_int_eq(shmkit_name_valid(longest), -EINVAL);
	ck_assert_int_eq(shmkit_name_valid("ok.Name_1-2"), 0);
	const char *bad[] = {"", "a/b", "../etc", "/x", "sp ace", "tab\t", "é", "a\nb", NULL};
	for (int i = 0; bad[i]; i++) {
		ck_assert_int_eq(shmkit_name_valid(bad[i]), -EINVAL);
		struct shmkit_segment *seg = (void *)1;
		ck_assert_int_eq(shmkit_segment_create(bad[i], 64, NULL, &seg), -EINVAL);
		ck_assert_ptr_null(seg);
	}
	ck_assert_int_eq(shmkit_name_valid(NULL), -EINVAL);
	/* A bad name never reaches the file system: no object appeared for "../etc". */
	ck_assert_int_ne(access("/dev/shm/shmkit.../etc", F_OK), 0);

	int32_t k1, k2;
	ck_assert_int_eq(shmkit_sysv_key_for_name("a", &k1), 0);
	ck_assert_int_eq(shmkit_sysv_key_for_name("b", &k2), 0);
	ck_assert_int_ne(k1, IPC_PRIVATE);
	ck_assert_int_ne(k1, k2);
	ck_assert_int_eq(shmkit_sysv_key_for_name("a/b", &k1), -EINVAL);
}
END_TEST

START_TEST(test_bad_options)
{
	char name[64];
	t_name(name, sizeof name, "opt");
	struct shmkit_segment *seg;
	struct shmkit_segment_opts o = {.mode = 01777};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.backend = 9};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.flags = 0x100};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.reserved = 1};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.flags = SHMKIT_SEG_FOREIGN_UID};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -EINVAL);
	ck_assert_int_eq(shmkit_segment_create(name, (size_t)1 << 50, NULL, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.flags = SHMKIT_SEG_DEFER_READY};
	ck_assert_int_eq(shmkit_segment_open(name, &o, &seg), -EINVAL);
	o = (struct shmkit_segment_opts){.backend = SHMKIT_BACKEND_MEMFD};
	ck_assert_int_eq(shmkit_segment_open(name, &o, &seg), -EINVAL);
	ck_assert_int_eq(shmkit_segment_open(NULL, NULL, &seg), -EINVAL);
	ck_assert_int_eq(shmkit_segment_create(name, 64, NULL, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_segment_close(NULL), 0);
	ck_assert_int_eq(access("/dev/shm/shmkit.opt", F_OK), -1);
}
END_TEST

/* --- create / open across processes ------------------------------------------------ */

struct child_arg {
	const char *name;
	uint32_t backend;
	int index;
};

static int child_open_and_mark(void *p)
{
	struct child_arg *a = p;
	struct shmkit_segment *seg;
	int err = open_named(a->name, a->backend, SHMKIT_KIND_RAW, 0, &seg);
	if (err)
		return 10;
	uint64_t *slots = shmkit_segment_data(seg);
	if (shmkit_segment_size(seg) < 4096 || slots[0] != 0x5eed)
		return 11;
	/* Each child writes its own slot; the parent checks them all. */
	__atomic_store_n(&slots[1 + a->index], (uint64_t)getpid(), __ATOMIC_RELEASE);
	shmkit_segment_close(seg);
	return 0;
}

START_TEST(test_create_open_multiprocess)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "multi");
	struct shmkit_segment *seg = make_seg(name, 4096, backend, 0, 0);
	ck_assert_uint_eq(shmkit_segment_size(seg), 4096);
	ck_assert_uint_eq(shmkit_segment_backend(seg), backend);
	ck_assert_uint_eq(shmkit_segment_kind(seg), SHMKIT_KIND_RAW);
	ck_assert_str_eq(shmkit_segment_name(seg), name);
	uint64_t *slots = shmkit_segment_data(seg);
	ck_assert_uint_eq((uintptr_t)slots % 128, 0);
	for (size_t i = 0; i < 4096 / 8; i++)
		ck_assert_uint_eq(slots[i], 0); /* zero-filled */
	slots[0] = 0x5eed;

	enum { N = 4 };
	pid_t pids[N];
	struct child_arg args[N];
	for (int i = 0; i < N; i++) {
		args[i] = (struct child_arg){name, backend, i};
		pids[i] = t_fork(child_open_and_mark, &args[i]);
	}
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(t_wait(pids[i], 10000), 0);
	for (int i = 0; i < N; i++)
		ck_assert_uint_eq(__atomic_load_n(&slots[1 + i], __ATOMIC_ACQUIRE), (uint64_t)pids[i]);

	/* Exclusive creation. */
	struct shmkit_segment *dup;
	struct shmkit_segment_opts o = {.backend = backend};
	ck_assert_int_eq(shmkit_segment_create(name, 4096, &o, &dup), -EEXIST);

	/* Any-backend open finds it too. */
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_ANY, 0, 0, &dup), 0);
	ck_assert_uint_eq(shmkit_segment_backend(dup), backend);
	ck_assert_uint_eq(((uint64_t *)shmkit_segment_data(dup))[0], 0x5eed);
	shmkit_segment_close(dup);

	ck_assert_int_eq(shmkit_segment_unlink(seg), 0);
	/* Unlinked: no new opener, but the mapping we hold stays valid. */
	ck_assert_int_eq(open_named(name, backend, 0, 0, &dup), -ENOENT);
	slots[2] = 7;
	ck_assert_uint_eq(slots[2], 7);
	ck_assert_int_eq(shmkit_segment_unlink(seg), -ENOENT);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_modes)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	mode_t old = umask(077);
	t_name(name, sizeof name, "mode");
	struct shmkit_segment *seg = make_seg(name, 100, backend, 0, 0);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	ck_assert_uint_eq(inf.mode & 0777, 0600);
	ck_assert_uint_eq(inf.uid, geteuid());
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);

	t_name(name, sizeof name, "mode");
	seg = make_seg(name, 100, backend, 0640, 0);
	ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	ck_assert_uint_eq(inf.mode & 0777, 0640); /* exactly as asked, umask notwithstanding */
	if (backend == SHMKIT_BACKEND_POSIX) {
		char path[128];
		struct stat st;
		snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_uint_eq(st.st_mode & 0777, 0640);
	}
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	umask(old);
}
END_TEST

START_TEST(test_explicit_sysv_key)
{
	/* The classic example's addressing: a bare key. Pick one unlikely to be in use. */
	int32_t key = 0x5e000000 | (getpid() & 0xffffff);
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV, .sysv_key = key};
	struct shmkit_segment *seg, *again;
	ck_assert_int_eq(shmkit_segment_create(NULL, 256, &o, &seg), 0);
	char expect[32];
	snprintf(expect, sizeof expect, "key-%d", (int)key);
	ck_assert_str_eq(shmkit_segment_name(seg), expect);
	ck_assert_int_eq(shmkit_segment_open(NULL, &o, &again), 0);
	ck_assert_str_eq(shmkit_segment_name(again), expect);
	shmkit_segment_close(again);
	/* By its name too (found by scanning, not by the derived key). */
	ck_assert_int_eq(open_named(expect, SHMKIT_BACKEND_SYSV, 0, 0, &again), 0);
	shmkit_segment_close(again);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(NULL, &o, &inf), 0);
	ck_assert_int_eq(inf.sysv_key, key);
	ck_assert_int_eq(inf.status, 0);
	ck_assert_int_eq(inf.nattach, 1);
	ck_assert_int_eq(shmkit_segment_remove(NULL, &o), 1);
	ck_assert_int_eq(shmkit_segment_open(NULL, &o, &again), -ENOENT);
	shmkit_segment_close(seg);
}
END_TEST

/* --- open errors, each with its own code ------------------------------------------- */

START_TEST(test_open_errors)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	struct shmkit_segment *seg, *o2;
	t_name(name, sizeof name, "err");
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -ENOENT);

	/* Not ready: created with DEFER_READY and not yet published. */
	seg = make_seg(name, 1024, backend, 0, SHMKIT_SEG_DEFER_READY);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -EAGAIN);
	ck_assert_int_eq(shmkit_segment_publish(seg), 0);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), 0);
	shmkit_segment_close(o2);

	/* Wrong kind. */
	ck_assert_int_eq(open_named(name, backend, SHMKIT_KIND_STREAM, 0, &o2), -EMEDIUMTYPE);
	/* Too small for what the caller needs. */
	struct shmkit_segment_opts big = {.backend = backend, .min_size = 1025};
	ck_assert_int_eq(shmkit_segment_open(name, &big, &o2), -ERANGE);
	big.min_size = 1024;
	ck_assert_int_eq(shmkit_segment_open(name, &big, &o2), 0);
	shmkit_segment_close(o2);

	struct shmkit__seg_hdr *h = raw_hdr(seg);
	struct shmkit__seg_hdr saved;
	memcpy(&saved, h, sizeof saved);

	/* Incompatible layout version. */
	h->ver_major = SHMKIT__LAYOUT_MAJOR + 1;
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -EPROTO);
	memcpy(h, &saved, sizeof saved);

	/* Corrupt: a byte of the immutable part changed without fixing the checksum. */
	h->data_size ^= 0x10;
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -EBADMSG);
	memcpy(h, &saved, sizeof saved);

	/* Corrupt even with a recomputed checksum: impossible sizes. */
	h->data_size = 1ull << 40;
	h->checksum = shmkit__hdr_checksum(h);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -EBADMSG);
	memcpy(h, &saved, sizeof saved);

	/* Another kind recorded (checksum fixed): wrong kind for a RAW opener. */
	h->kind = SHMKIT_KIND_TABLE;
	h->checksum = shmkit__hdr_checksum(h);
	ck_assert_int_eq(open_named(name, backend, SHMKIT_KIND_RAW, 0, &o2), -EMEDIUMTYPE);
	memcpy(h, &saved, sizeof saved);

	/* A state that is neither INITIALIZING nor READY. */
	atomic_store(&h->state, 77);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -EBADMSG);
	atomic_store(&h->state, SHMKIT_SEG_READY);

	/* Not a shmkit segment at all. */
	memset(h->magic, 'x', sizeof h->magic);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), -ENOTUNIQ);
	memcpy(h, &saved, sizeof saved);

	/* A header naming another segment. */
	h->name[0] ^= 1;
	h->checksum = shmkit__hdr_checksum(h);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2),
			 backend == SHMKIT_BACKEND_SYSV ? -ENOTUNIQ : -EBADMSG);
	memcpy(h, &saved, sizeof saved);

	ck_assert_int_eq(open_named(name, backend, 0, 0, &o2), 0);
	shmkit_segment_close(o2);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_posix_truncated)
{
	char name[64], path[128];
	struct shmkit_segment *seg, *o2;
	t_name(name, sizeof name, "trunc");
	seg = make_seg(name, 8192, SHMKIT_BACKEND_POSIX, 0, 0);
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	int fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	/* Shrunk below its header's size: truncated. */
	ck_assert_int_eq(ftruncate(fd, 4096), 0);
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_POSIX, 0, 0, &o2), -ERANGE);
	/* Smaller than a header. */
	ck_assert_int_eq(ftruncate(fd, 100), 0);
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_POSIX, 0, 0, &o2), -ERANGE);
	/* Grown past what the creator built. */
	ck_assert_int_eq(ftruncate(fd, 8192 + SHMKIT__HDR_SIZE + 4096), 0);
	/* The shrink below 512 bytes zeroed the state word: the header now reads as blank. */
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_POSIX, 0, 0, &o2), -EAGAIN);
	/* Size zero: being created. */
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_POSIX, 0, 0, &o2), -EAGAIN);
	close(fd);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);

	/* Grown, header intact: corrupt. */
	t_name(name, sizeof name, "grown");
	seg = make_seg(name, 4096, SHMKIT_BACKEND_POSIX, 0, 0);
	snprintf(path, sizeof path, "/dev/shm/shmkit.%s", name);
	fd = open(path, O_RDWR);
	ck_assert_int_eq(ftruncate(fd, 3 * 4096 + SHMKIT__HDR_SIZE), 0);
	close(fd);
	ck_assert_int_eq(open_named(name, SHMKIT_BACKEND_POSIX, 0, 0, &o2), -EBADMSG);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
	ck_assert_int_eq(inf.status, -EBADMSG);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_sysv_foreign_key)
{
	char name[64];
	int32_t key;
	t_name(name, sizeof name, "coll");
	ck_assert_int_eq(shmkit_sysv_key_for_name(name, &key), 0);
	/* Somebody else's segment already sits at the key our name maps to. */
	int id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	ck_assert_int_ge(id, 0);
	char *p = shmat(id, NULL, 0);
	ck_assert_ptr_ne(p, (void *)-1);
	memset(p, 0xab, 4096);
	shmdt(p);

	struct shmkit_segment *seg;
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_SYSV};
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -ENOTUNIQ);
	ck_assert_int_eq(shmkit_segment_open(name, &o, &seg), -ENOTUNIQ);
	struct shmkit_segment_opts ko = {.backend = SHMKIT_BACKEND_SYSV, .sysv_key = key};
	ck_assert_int_eq(shmkit_segment_open(NULL, &ko, &seg), -ENOTUNIQ);
	/* Described, never removed by shmkit. */
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(NULL, &ko, &inf), 0);
	ck_assert_int_eq(inf.status, -ENOTUNIQ);
	ck_assert_int_eq(shmkit_segment_remove(NULL, &ko), -ENOTUNIQ);
	ck_assert_int_eq(shmkit_segment_remove(name, &o), -ENOENT);
	struct shmid_ds ds;
	ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
	/* Not listed as ours. */
	struct shmkit_segment_info *list;
	int n = shmkit_segment_list(&list);
	ck_assert_int_ge(n, 0);
	for (int i = 0; i < n; i++)
		ck_assert(!(list[i].backend == SHMKIT_BACKEND_SYSV && list[i].sysv_id == id));
	shmkit_segment_list_free(list);
	shmctl(id, IPC_RMID, NULL);

	/* A zero-filled foreign segment (somebody's, just created) is not ours either. */
	id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
	ck_assert_int_ge(id, 0);
	ck_assert_int_eq(shmkit_segment_remove(NULL, &ko), -ENOTUNIQ);
	ck_assert_int_eq(shmkit_segment_stat(NULL, &ko, &inf), 0);
	ck_assert_int_eq(inf.status, -ENOTUNIQ);
	ck_assert_uint_eq(inf.state, 0);
	ck_assert_int_eq(shmctl(id, IPC_STAT, &ds), 0);
	shmctl(id, IPC_RMID, NULL);

	/* Another shmkit name whose key is taken is reported the same way. */
	o.sysv_key = key;
	struct shmkit_segment *other;
	ck_assert_int_eq(shmkit_segment_create("other-name", 64, &o, &other), 0);
	ck_assert_int_eq(shmkit_segment_create(name, 64, &o, &seg), -ENOTUNIQ);
	ck_assert_int_eq(shmkit_segment_create("other-name", 64, &o, &seg), -EEXIST);
	ck_assert_int_eq(shmkit_segment_remove("other-name", &o), 1);
	shmkit_segment_close(other);
}
END_TEST

/* --- ownership ---------------------------------------------------------------------- */

struct uid_arg {
	const char *name;
	uint32_t backend;
	uint32_t flags;
};

static int child_as_nobody(void *p)
{
	struct uid_arg *a = p;
	struct passwd *pw = getpwnam("nobody");
	if (!pw || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		return 100;
	struct shmkit_segment *seg;
	int err = open_named(a->name, a->backend, 0, a->flags, &seg);
	if (err == 0) {
		shmkit_segment_close(seg);
		return 0;
	}
	return -err; /* errno values fit an exit status */
}

START_TEST(test_foreign_uid_refused)
{
	if (geteuid() != 0) {
		fprintf(stderr, "test_foreign_uid_refused needs root to switch to uid nobody\n");
		ck_assert_msg(getenv("SHMKIT_ALLOW_NONROOT") != NULL,
			      "run as root (or set SHMKIT_ALLOW_NONROOT=1 to accept the gap)");
		return;
	}
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "uid");
	struct shmkit_segment *seg = make_seg(name, 64, backend, 0600, 0);
	struct uid_arg a = {name, backend, 0};
	/* 0600: the kernel itself says no. */
	ck_assert_int_eq(t_wait(t_fork(child_as_nobody, &a), 10000), EACCES);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);

	/* World-writable, but owned by root: shmkit refuses unless asked. */
	t_name(name, sizeof name, "uid");
	seg = make_seg(name, 64, backend, 0666, 0);
	a.name = name;
	ck_assert_int_eq(t_wait(t_fork(child_as_nobody, &a), 10000), EPERM);
	a.flags = SHMKIT_SEG_FOREIGN_UID;
	ck_assert_int_eq(t_wait(t_fork(child_as_nobody, &a), 10000), 0);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

/* --- memfd ------------------------------------------------------------------------- */

static int child_recv_memfd(void *p)
{
	int sock = *(int *)p;
	struct shmkit_segment *seg;
	int err = shmkit_segment_recv_fd(sock, NULL, &seg);
	if (err)
		return 10;
	char *d = shmkit_segment_data(seg);
	if (strcmp(d, "hello from the creator") != 0)
		return 11;
	if (shmkit_segment_backend(seg) != SHMKIT_BACKEND_MEMFD)
		return 12;
	/* The seals hold against this holder of the descriptor too. */
	int fd = shmkit_segment_fd(seg);
	if (ftruncate(fd, 0) == 0 || errno != EPERM)
		return 13;
	if (ftruncate(fd, 1 << 20) == 0 || errno != EPERM)
		return 14;
	strcpy(d + 100, "hello back");
	shmkit_segment_close(seg);
	return 0;
}

START_TEST(test_memfd_pass_and_seals)
{
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	/* The child exists before the segment: it can only get it through the socket. */
	pid_t pid = t_fork(child_recv_memfd, &sv[1]);
	close(sv[1]);
	struct shmkit_segment *seg = make_seg("passed", 4096, SHMKIT_BACKEND_MEMFD, 0, 0);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	ck_assert_int_eq(inf.status, 0);
	ck_assert_uint_eq(inf.mode & 0777, 0600);
	strcpy(shmkit_segment_data(seg), "hello from the creator");
	ck_assert_int_eq(shmkit_segment_send_fd(sv[0], seg), 0);
	ck_assert_int_eq(t_wait(pid, 10000), 0);
	ck_assert_str_eq((char *)shmkit_segment_data(seg) + 100, "hello back");
	int seals = fcntl(shmkit_segment_fd(seg), F_GET_SEALS);
	ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
	close(sv[0]);
	shmkit_segment_close(seg);
}
END_TEST

static int child_inherit_memfd(void *p)
{
	int fd = *(int *)p;
	struct shmkit_segment *seg;
	if (shmkit_segment_open_fd(fd, NULL, &seg) != 0)
		return 10;
	int ok = strcmp(shmkit_segment_data(seg), "inherited") == 0;
	shmkit_segment_close(seg);
	return ok ? 0 : 11;
}

START_TEST(test_memfd_fork_and_refusals)
{
	struct shmkit_segment *seg = make_seg(NULL, 64, SHMKIT_BACKEND_MEMFD, 0, 0);
	ck_assert_str_eq(shmkit_segment_name(seg), "memfd");
	strcpy(shmkit_segment_data(seg), "inherited");
	int fd = shmkit_segment_fd(seg);
	ck_assert_int_eq(t_wait(t_fork(child_inherit_memfd, &fd), 10000), 0);
	ck_assert_int_eq(shmkit_segment_unlink(seg), 0);

	/* An unsealed memfd carrying a valid header is refused: it could shrink under us. */
	int raw = memfd_create("unsealed", MFD_CLOEXEC);
	ck_assert_int_ge(raw, 0);
	ck_assert_int_eq(ftruncate(raw, SHMKIT__HDR_SIZE + 64), 0);
	ck_assert_int_eq(pwrite(raw, (char *)shmkit_segment_data(seg) - SHMKIT__HDR_SIZE,
				SHMKIT__HDR_SIZE, 0),
			 SHMKIT__HDR_SIZE);
	struct shmkit_segment *o2;
	ck_assert_int_eq(shmkit_segment_open_fd(raw, NULL, &o2), -EPERM);
	close(raw);
	ck_assert_int_eq(shmkit_segment_open_fd(-1, NULL, &o2), -EBADF);

	/* A socket that closes, and a message with no descriptor. */
	int sv[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(write(sv[0], "no fd!!!", 8), 8);
	ck_assert_int_eq(shmkit_segment_recv_fd(sv[1], NULL, &o2), -EBADMSG);
	close(sv[0]);
	ck_assert_int_eq(shmkit_segment_recv_fd(sv[1], NULL, &o2), -EPIPE);
	close(sv[1]);
	/* System V segments have no descriptor to pass. */
	char name[64];
	t_name(name, sizeof name, "nofd");
	struct shmkit_segment *sv_seg = make_seg(name, 64, SHMKIT_BACKEND_SYSV, 0, 0);
	ck_assert_int_eq(shmkit_segment_fd(sv_seg), -EBADF);
	ck_assert_int_eq(shmkit_segment_send_fd(0, sv_seg), -EBADF);
	shmkit_segment_unlink(sv_seg);
	shmkit_segment_close(sv_seg);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_hugepages)
{
	char line[256];
	long total = -1;
	FILE *f = fopen("/proc/meminfo", "r");
	while (f && fgets(line, sizeof line, f))
		sscanf(line, "HugePages_Free: %ld", &total);
	if (f)
		fclose(f);
	struct shmkit_segment *seg;
	struct shmkit_segment_opts o = {.backend = SHMKIT_BACKEND_MEMFD,
					.flags = SHMKIT_SEG_HUGEPAGES};
	int err = shmkit_segment_create("huge", 4096, &o, &seg);
	if (total == 0) {
		ck_assert_int_eq(err, -ENOTSUP);
	} else {
		ck_assert_int_eq(err, 0);
		ck_assert_uint_ge(shmkit_segment_size(seg), 4096);
		ck_assert_uint_eq((shmkit_segment_size(seg) + SHMKIT__HDR_SIZE) % (2u << 20), 0);
		shmkit_segment_close(seg);
	}
	char name[64];
	t_name(name, sizeof name, "huge");
	o.backend = SHMKIT_BACKEND_SYSV;
	err = shmkit_segment_create(name, 4096, &o, &seg);
	if (total == 0) {
		ck_assert_int_eq(err, -ENOTSUP);
	} else {
		ck_assert_int_eq(err, 0);
		shmkit_segment_unlink(seg);
		shmkit_segment_close(seg);
	}
	/* POSIX objects live on tmpfs, which has no hugetlb pages: always refused. */
	o.backend = SHMKIT_BACKEND_POSIX;
	ck_assert_int_eq(shmkit_segment_create(name, 4096, &o, &seg), -ENOTSUP);
	ck_assert_str_ne(shmkit_strerror(-ENOTSUP), "");
}
END_TEST

/* --- discovery, liveness, removal -------------------------------------------------- */

static const struct shmkit_segment_info *find_info(const struct shmkit_segment_info *l, int n,
						   const char *name, uint32_t backend)
{
	for (int i = 0; i < n; i++)
		if (strcmp(l[i].name, name) == 0 && l[i].backend == backend)
			return &l[i];
	return NULL;
}

struct hold_arg {
	const char *name;
	uint32_t backend;
	int pipe_w;
};

/* Opens the segment, says so through the pipe, then waits to be killed. */
static int child_hold(void *p)
{
	struct hold_arg *a = p;
	struct shmkit_segment *seg;
	if (open_named(a->name, a->backend, 0, 0, &seg) != 0)
		return 10;
	if (write(a->pipe_w, "x", 1) != 1)
		return 11;
	pause();
	return 0;
}

static int child_create_and_exit(void *p)
{
	struct child_arg *a = p;
	struct shmkit_segment_opts o = {.backend = a->backend};
	struct shmkit_segment *seg;
	return shmkit_segment_create(a->name, 100, &o, &seg) == 0 ? 0 : 1;
}

START_TEST(test_list_and_liveness)
{
	uint32_t backend = t_backends[_i];
	char name[64], orphan[64];
	t_name(name, sizeof name, "ls");
	t_name(orphan, sizeof orphan, "orphan");
	struct shmkit_segment *seg = make_seg(name, 3000, backend, 0, 0);
	t_track(orphan, backend);
	struct child_arg ca = {orphan, backend, 0};
	ck_assert_int_eq(t_wait(t_fork(child_create_and_exit, &ca), 10000), 0);

	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	struct hold_arg ha = {name, backend, pfd[1]};
	pid_t holder = t_fork(child_hold, &ha);
	char c;
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);

	struct shmkit_segment_info *l;
	int n = shmkit_segment_list(&l);
	ck_assert_int_ge(n, 2);
	const struct shmkit_segment_info *a = find_info(l, n, name, backend);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->status, 0);
	ck_assert_uint_eq(a->kind, SHMKIT_KIND_RAW);
	ck_assert_uint_eq(a->state, SHMKIT_SEG_READY);
	ck_assert_uint_eq(a->data_size, 3000);
	ck_assert_uint_eq(a->total_size, 3000 + SHMKIT__HDR_SIZE);
	ck_assert_int_eq(a->creator_pid, getpid());
	ck_assert_int_eq(a->creator_alive, 1);
	/* POSIX counts processes mapping it: this one and the holder. System V counts
	 * attachments: the holder has two (one inherited across fork, one its own). */
	ck_assert_int_eq(a->nattach, backend == SHMKIT_BACKEND_POSIX ? 2 : 3);
	ck_assert_uint_eq(a->mode & 0777, 0600);
	ck_assert_uint_eq(a->ver_major, SHMKIT__LAYOUT_MAJOR);
	ck_assert_uint_gt(a->created_ns, 0);
	const struct shmkit_segment_info *b = find_info(l, n, orphan, backend);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->creator_alive, 0); /* its creator exited */
	ck_assert_int_eq(b->nattach, 0);
	shmkit_segment_list_free(l);

	/* Killing the holder drops its attachment. */
	kill(holder, SIGKILL);
	ck_assert_int_eq(t_wait(holder, 10000), 128 + SIGKILL);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
	ck_assert_int_eq(inf.nattach, 1);
	ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
	ck_assert_int_eq(inf.nattach, 1);
	close(pfd[0]);
	close(pfd[1]);

	struct shmkit_segment_opts o = {.backend = backend};
	ck_assert_int_eq(shmkit_segment_remove(orphan, &o), 1);
	ck_assert_int_eq(shmkit_segment_remove(orphan, &o), -ENOENT);
	ck_assert_int_eq(shmkit_segment_stat(orphan, &o, &inf), -ENOENT);
	ck_assert_int_eq(shmkit_segment_remove(name, NULL), 1);
	shmkit_segment_close(seg);
}
END_TEST

static int child_create_deferred_then_hang(void *p)
{
	struct child_arg *a = p;
	struct shmkit_segment_opts o = {.backend = a->backend, .flags = SHMKIT_SEG_DEFER_READY};
	struct shmkit_segment *seg;
	if (shmkit_segment_create(a->name, 100, &o, &seg) != 0)
		return 1;
	if (write(a->index, "x", 1) != 1)
		return 2;
	pause(); /* killed here, before it publishes */
	return 0;
}

START_TEST(test_creator_killed_during_init)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name_tracked(name, sizeof name, "dead", backend);
	int pfd[2];
	ck_assert_int_eq(pipe(pfd), 0);
	struct child_arg ca = {name, backend, pfd[1]};
	pid_t pid = t_fork(child_create_deferred_then_hang, &ca);
	char c;
	ck_assert_int_eq(read(pfd[0], &c, 1), 1);
	struct shmkit_segment *seg;
	ck_assert_int_eq(open_named(name, backend, 0, 0, &seg), -EAGAIN);
	kill(pid, SIGKILL);
	ck_assert_int_eq(t_wait(pid, 10000), 128 + SIGKILL);
	ck_assert_int_eq(open_named(name, backend, 0, 0, &seg), -EAGAIN);
	struct shmkit_segment_info inf;
	ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
	ck_assert_int_eq(inf.status, -EAGAIN);
	ck_assert_uint_eq(inf.state, SHMKIT_SEG_INITIALIZING);
	ck_assert_int_eq(inf.creator_pid, pid);
	ck_assert_int_eq(inf.creator_alive, 0);
	ck_assert_int_eq(inf.nattach, 0);
	ck_assert_int_eq(shmkit_segment_remove(name, NULL), 1);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

static int child_write_then_die(void *p)
{
	struct child_arg *a = p;
	struct shmkit_segment *seg;
	if (open_named(a->name, a->backend, 0, 0, &seg) != 0)
		return 1;
	char *d = shmkit_segment_data(seg);
	strcpy(d, "written before the crash");
	raise(SIGKILL);
	return 2;
}

START_TEST(test_peer_killed_segment_survives)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "survive");
	struct shmkit_segment *seg = make_seg(name, 128, backend, 0, 0);
	struct child_arg ca = {name, backend, 0};
	ck_assert_int_eq(t_wait(t_fork(child_write_then_die, &ca), 10000), 128 + SIGKILL);
	ck_assert_str_eq(shmkit_segment_data(seg), "written before the crash");
	struct shmkit_segment *again;
	ck_assert_int_eq(open_named(name, backend, 0, 0, &again), 0);
	shmkit_segment_close(again);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

/* A hostile peer scribbling random bytes over a header: open and stat must return an
 * error or a truthful success, never crash (this suite also runs under ASan+UBSan). */
START_TEST(test_header_fuzz)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "fuzz");
	struct shmkit_segment *seg = make_seg(name, 4096, backend, 0, 0);
	uint8_t *h = (uint8_t *)raw_hdr(seg);
	uint8_t saved[SHMKIT__HDR_SIZE];
	memcpy(saved, h, sizeof saved);
	uint64_t rng = t_seed();
	int iters = t_stress() ? 20000 : 2000;
	int ok = 0;
	for (int i = 0; i < iters; i++) {
		memcpy(h, saved, sizeof saved);
		int nbytes = 1 + (int)(t_rand(&rng) % 8);
		for (int k = 0; k < nbytes; k++)
			h[t_rand(&rng) % SHMKIT__HDR_SIZE] = (uint8_t)t_rand(&rng);
		if (t_rand(&rng) % 2)
			((struct shmkit__seg_hdr *)h)->checksum =
				shmkit__hdr_checksum((struct shmkit__seg_hdr *)h);
		struct shmkit_segment *o2;
		int err = open_named(name, backend, 0, 0, &o2);
		if (err == 0) {
			ok++;
			ck_assert_uint_eq(shmkit_segment_size(o2), 4096);
			/* Touch every byte the handle claims: must be inside the mapping. */
			volatile uint8_t *d = shmkit_segment_data(o2);
			uint8_t x = 0;
			for (size_t j = 0; j < shmkit_segment_size(o2); j += 512)
				x ^= d[j];
			(void)x;
			shmkit_segment_close(o2);
		} else {
			ck_assert_msg(err == -EBADMSG || err == -EPROTO || err == -ENOTUNIQ ||
					      err == -EAGAIN || err == -ERANGE || err == -EMEDIUMTYPE ||
					      err == -EPERM, /* a creator_uid that is not ours */
				      "unexpected %d", err);
		}
		struct shmkit_segment_info inf;
		ck_assert_int_eq(shmkit_segment_stat(name, NULL, &inf), 0);
		ck_assert_int_eq(inf.status, err);
	}
	ck_assert_int_gt(ok, 0); /* harmless flips (reserved bytes) still open */
	memcpy(h, saved, sizeof saved);
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
}
END_TEST

START_TEST(test_strerror)
{
	ck_assert_str_eq(shmkit_strerror(0), "success");
	ck_assert_str_eq(shmkit_strerror(-EPROTO), shmkit_strerror(EPROTO));
	ck_assert_ptr_nonnull(strstr(shmkit_strerror(-EBADMSG), "corrupt"));
	ck_assert_ptr_nonnull(strstr(shmkit_strerror(-EOWNERDEAD), "died"));
	ck_assert_ptr_nonnull(shmkit_strerror(-ENOEXEC)); /* falls back to the C library */
	ck_assert_ptr_nonnull(shmkit_strerror(-99999));
	ck_assert_str_eq(shmkit_version(), SHMKIT_VERSION_STRING);
	ck_assert_str_eq(shmkit_backend_name(SHMKIT_BACKEND_SYSV), "sysv");
	ck_assert_str_eq(shmkit_kind_name(SHMKIT_KIND_TABLE), "table");
}
END_TEST

START_TEST(test_pid_alive)
{
	ck_assert_int_eq(shmkit_pid_alive(getpid(), shmkit_pid_start_ticks(0)), 1);
	ck_assert_int_eq(shmkit_pid_alive(getpid(), 0), 1);
	/* Same pid, other start time: a recycled pid reads as dead. */
	ck_assert_int_eq(shmkit_pid_alive(getpid(), shmkit_pid_start_ticks(0) + 1), 0);
	ck_assert_int_eq(shmkit_pid_alive(0, 0), 0);
	ck_assert_int_eq(shmkit_pid_alive(-5, 0), 0);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	/* Exited but not reaped: a zombie is dead. */
	for (int i = 0; i < 1000 && shmkit_pid_alive(pid, 0); i++)
		usleep(1000);
	ck_assert_int_eq(shmkit_pid_alive(pid, 0), 0);
	waitpid(pid, NULL, 0);
	ck_assert_int_eq(shmkit_pid_alive(pid, 0), 0);
}
END_TEST

/* --- lifetimes and identity-checked removal ---------------------------------------------- */

START_TEST(test_lifetime_round_trip)
{
	/* Every backend records the lifetime in the header and reports it: through the handle
	 * (all three), by name (POSIX, System V) and in the listing. */
	uint32_t backend = t_backends[_i];
	for (int persistent = 0; persistent < 2; persistent++) {
		uint32_t want = persistent ? SHMKIT_LIFETIME_PERSISTENT : SHMKIT_LIFETIME_EPHEMERAL;
		char name[64];
		t_name(name, sizeof name, "life");
		struct shmkit_segment *seg =
			make_seg(name, 100, backend, 0, persistent ? SHMKIT_SEG_PERSISTENT : 0);
		struct shmkit_segment_info inf;
		ck_assert_int_eq(shmkit_segment_info(seg, &inf), 0);
		ck_assert_int_eq(inf.status, 0);
		ck_assert_uint_eq(inf.lifetime, want);
		if (backend == SHMKIT_BACKEND_MEMFD) {
			/* A second handle from the descriptor sees the same header. */
			struct shmkit_segment *again;
			ck_assert_int_eq(shmkit_segment_open_fd(shmkit_segment_fd(seg), NULL, &again), 0);
			ck_assert_int_eq(shmkit_segment_info(again, &inf), 0);
			ck_assert_uint_eq(inf.lifetime, want);
			shmkit_segment_close(again);
			shmkit_segment_close(seg);
			continue;
		}
		struct shmkit_segment_opts o = {.backend = backend};
		ck_assert_int_eq(shmkit_segment_stat(name, &o, &inf), 0);
		ck_assert_uint_eq(inf.lifetime, want);
		struct shmkit_segment_info *all;
		int n = shmkit_segment_list(&all);
		ck_assert_int_ge(n, 1);
		bool seen = false;
		for (int i = 0; i < n; i++)
			if (strcmp(all[i].name, name) == 0 && all[i].backend == backend) {
				ck_assert_uint_eq(all[i].lifetime, want);
				seen = true;
			}
		shmkit_segment_list_free(all);
		ck_assert(seen);
		/* Create-only: an open that asks for a lifetime is a mistake. */
		struct shmkit_segment *other;
		ck_assert_int_eq(open_named(name, backend, 0, SHMKIT_SEG_PERSISTENT, &other), -EINVAL);
		ck_assert_int_eq(shmkit_segment_unlink(seg), 0);
		shmkit_segment_close(seg);
	}
}
END_TEST

START_TEST(test_remove_exact)
{
	uint32_t backend = t_backends[_i];
	char name[64];
	t_name(name, sizeof name, "exact");
	struct shmkit_segment_opts o = {.backend = backend};
	shmkit_segment_close(make_seg(name, 100, backend, 0, 0));
	struct shmkit_segment_info old, now;
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &old), 0);
	if (backend == SHMKIT_BACKEND_POSIX)
		ck_assert_uint_ne(old.ino, 0);

	/* Removed and recreated under the same name: the old description hits nothing. */
	ck_assert_int_eq(shmkit_segment_remove(name, &o), 1);
	shmkit_segment_close(make_seg(name, 100, backend, 0, 0));
	ck_assert_int_eq(shmkit_segment_remove_exact(&old, 0), -ESTALE);
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &now), 0);
	ck_assert_uint_ne(now.created_ns, 0);
	ck_assert(now.created_ns != old.created_ns ||
		  (backend == SHMKIT_BACKEND_POSIX ? now.ino != old.ino : now.sysv_id != old.sysv_id));

	/* Not ours (group-writable): refused unless SHMKIT_SEG_FOREIGN_UID. */
	struct shmkit_segment *seg;
	ck_assert_int_eq(open_named(name, backend, 0, 0, &seg), 0);
	if (backend == SHMKIT_BACKEND_SYSV) {
		struct shmid_ds ds;
		ck_assert_int_eq(shmctl(now.sysv_id, IPC_STAT, &ds), 0);
		ds.shm_perm.mode = 0660;
		ck_assert_int_eq(shmctl(now.sysv_id, IPC_SET, &ds), 0);
	} else {
		ck_assert_int_eq(fchmod(shmkit_segment_fd(seg), 0660), 0);
	}
	shmkit_segment_close(seg);
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &now), 0);
	ck_assert_int_eq(shmkit_segment_remove_exact(&now, 0), -EPERM);
	ck_assert_int_eq(shmkit_segment_remove_exact(&now, SHMKIT_SEG_RDONLY), -EINVAL);
	ck_assert_int_eq(shmkit_segment_remove_exact(&now, SHMKIT_SEG_FOREIGN_UID), 0);
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &now), -ENOENT);
	ck_assert_int_eq(shmkit_segment_remove_exact(&old, 0), -ENOENT);
	ck_assert_int_eq(shmkit_segment_remove_exact(NULL, 0), -EINVAL);

	/* And the plain case: still the one looked at, ours. */
	shmkit_segment_close(make_seg(name, 100, backend, 0, SHMKIT_SEG_PERSISTENT));
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &now), 0);
	ck_assert_int_eq(shmkit_segment_remove_exact(&now, 0), 0);
	ck_assert_int_eq(shmkit_segment_stat(name, &o, &now), -ENOENT);
}
END_TEST

static Suite *segment_suite(void)
{
	Suite *s = suite_create("segment");
	TCase *tc = t_tcase(s, "core", 60);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_bad_options);
	tcase_add_loop_test(tc, test_create_open_multiprocess, 0, T_NAMED_BACKENDS);
	tcase_add_loop_test(tc, test_modes, 0, T_NAMED_BACKENDS);
	tcase_add_test(tc, test_explicit_sysv_key);
	tcase_add_loop_test(tc, test_open_errors, 0, T_NAMED_BACKENDS);
	tcase_add_test(tc, test_posix_truncated);
	tcase_add_test(tc, test_sysv_foreign_key);
	tcase_add_loop_test(tc, test_foreign_uid_refused, 0, T_NAMED_BACKENDS);
	tcase_add_test(tc, test_memfd_pass_and_seals);
	tcase_add_test(tc, test_memfd_fork_and_refusals);
	tcase_add_test(tc, test_hugepages);
	tcase_add_loop_test(tc, test_list_and_liveness, 0, T_NAMED_BACKENDS);
	tcase_add_loop_test(tc, test_creator_killed_during_init, 0, T_NAMED_BACKENDS);
	tcase_add_loop_test(tc, test_peer_killed_segment_survives, 0, T_NAMED_BACKENDS);
	tcase_add_loop_test(tc, test_header_fuzz, 0, T_NAMED_BACKENDS);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_pid_alive);
	tcase_add_loop_test(tc, test_lifetime_round_trip, 0, T_BACKENDS);
	tcase_add_loop_test(tc, test_remove_exact, 0, T_NAMED_BACKENDS);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {segment_suite};
	return t_main(makers, 1);
}
