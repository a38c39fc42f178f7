/* shmkit — small operating-system helpers: process identity and liveness, file reading,
 * hashing. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

uint64_t shmkit__fnv1a64(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

long shmkit__read_file(const char *path, char *buf, size_t cap)
{
	if (cap == 0)
		return -EINVAL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < cap) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (long)got;
}

/* Parses /proc/PID/stat (PID 0 = self): process state letter and start time (field 22, in
 * clock ticks since boot). Returns 0 or -errno. */
static int proc_stat(int32_t pid, char *state, uint64_t *start)
{
	char path[64], buf[1024];
	if (pid < 0)
		return -EINVAL;
	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/stat");
	else
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	long n = shmkit__read_file(path, buf, sizeof buf);
	if (n <= 0)
		return n < 0 ? (int)n : -EIO;
	/* The command name (field 2) may hold spaces and parentheses; the fields after the
	 * last ')' are plain numbers. State is field 3; starttime, field 22. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] == '\0')
		return -EIO;
	*state = p[2];
	p++;
	for (int field = 3; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p + 1, &end, 10);
	if (errno || end == p + 1)
		return -EIO;
	*start = (uint64_t)v;
	return 0;
}

uint64_t shmkit__proc_start(int32_t pid)
{
	char state;
	uint64_t start;
	return proc_stat(pid, &state, &start) == 0 ? start : 0;
}

uint64_t shmkit_pid_start_ticks(int32_t pid)
{
	return shmkit__proc_start(pid);
}

int shmkit_pid_alive(int32_t pid, uint64_t start_ticks)
{
	char state;
	uint64_t start;
	if (pid <= 0)
		return 0;
	if (proc_stat(pid, &state, &start) < 0) {
		/* No /proc entry we can read: fall back on the signal probe (EPERM = exists). */
		return kill((pid_t)pid, 0) == 0 || errno == EPERM;
	}
	/* A zombie (or a process being reaped) will never touch shared memory again. */
	if (state == 'Z' || state == 'X')
		return 0;
	return start_ticks == 0 || start == start_ticks;
}
