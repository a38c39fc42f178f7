/* Helpers shared by the fuzz targets that go through the public API (see image.h). */
#include "image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

_Noreturn void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz: %s\n", what);
	abort();
}

void fuzz_image_keep(struct fuzz_image *im, struct shmkit_segment *seg)
{
	im->fd = dup(shmkit_segment_fd(seg));
	if (im->fd < 0)
		fuzz_fail("dup of the segment's descriptor");
	im->off = SHMKIT__HDR_SIZE;
	im->size = shmkit_segment_size(seg);
}

void fuzz_image_load(const struct fuzz_image *im, const uint8_t *data, size_t size)
{
	static uint8_t buf[1 << 20];
	if (im->size > sizeof buf)
		fuzz_fail("image larger than the load buffer");
	size_t n = size < im->size ? size : im->size;
	memcpy(buf, data, n);
	memset(buf + n, 0, im->size - n);
	if (pwrite(im->fd, buf, im->size, (off_t)im->off) != (ssize_t)im->size)
		fuzz_fail("pwrite of the image");
}

void fuzz_image_save(const struct fuzz_image *im, const char *dir, int idx, int tail)
{
	uint8_t *buf = malloc(im->size);
	if (!buf || pread(im->fd, buf, im->size, (off_t)im->off) != (ssize_t)im->size)
		fuzz_fail("pread of the image");
	char path[4096];
	snprintf(path, sizeof path, "%s/seed-%02d", dir, idx);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, im->size, f) != im->size || (tail >= 0 && fputc(tail, f) < 0) ||
	    fclose(f) != 0)
		fuzz_fail(path);
	free(buf);
}

void fuzz_image_drop(struct fuzz_image *im)
{
	close(im->fd);
	im->fd = -1;
}

void fuzz_touch(const void *p, size_t n)
{
	const volatile uint8_t *b = p;
	uint8_t x = 0;
	for (size_t i = 0; i < n; i++)
		x ^= b[i];
	(void)x;
}

void fuzz_inside(struct shmkit_segment *seg, const void *p, size_t n, const char *what)
{
	const uint8_t *lo = shmkit_segment_data(seg), *b = p;
	size_t size = shmkit_segment_size(seg);
	if (n && (b < lo || b > lo + size || n > (size_t)(lo + size - b)))
		fuzz_fail(what);
	fuzz_touch(p, n);
}
