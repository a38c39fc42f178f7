/* Built against the *installed* shmkit through pkg-config by tools/check-install.sh: proves
 * the installed headers, shared library (SONAME, exported symbols) and shmkit.pc work. */
#include <shmkit.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	char name[64];
	snprintf(name, sizeof name, "install-check.%d", (int)getpid());
	struct shmkit_segment *seg;
	int err = shmkit_segment_create(name, 4096, NULL, &seg);
	if (err) {
		fprintf(stderr, "create: %s\n", shmkit_strerror(err));
		return 1;
	}
	struct shmkit_sem *sem = shmkit_segment_data(seg);
	shmkit_sem_init(sem, 1);
	int ok = shmkit_sem_trywait(sem) == 0 && shmkit_sem_trywait(sem) == -EAGAIN;
	shmkit_segment_unlink(seg);
	shmkit_segment_close(seg);
	printf("shmkit %s via pkg-config: %s\n", shmkit_version(), ok ? "ok" : "FAILED");
	return ok ? 0 : 1;
}
