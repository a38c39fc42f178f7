/* libFuzzer target for the segment header (src/segment.c): a peer scribbles the 512-byte
 * header of a sealed memfd segment, and we open it with shmkit_segment_open_fd().
 *
 * Input: the header bytes, then one byte choosing the options (the kind asked for,
 * read-only, a minimum size, and whether the harness fixes up the checksum). Whatever the header says, open either fails with a negative errno or hands
 * out a mapping whose every data byte can be read: a size the header lies about must
 * never become a SIGBUS or a read past the file.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "internal.h"

#define SEG_DATA 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *const fuzz_corpus = "tests/fuzz/corpus/segment";
int fuzz_write_seeds(const char *dir);

static int seg_fd(void)
{
	static int fd = -1;
	if (fd < 0) {
		struct shmkit_segment_opts o = FUZZ_MEMFD;
		struct shmkit_segment *seg;
		if (shmkit_segment_create(NULL, SEG_DATA, &o, &seg) != 0)
			fuzz_fail("memfd segment");
		fd = dup(shmkit_segment_fd(seg));
		shmkit_segment_close(seg);
	}
	return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t hdr[SHMKIT__HDR_SIZE] = {0};
	memcpy(hdr, data, size < sizeof hdr ? size : sizeof hdr);
	uint8_t sel = size > sizeof hdr ? data[sizeof hdr] : 0;
	/* Bit 5: carry the right checksum, as a hostile peer can, so that the fuzzer gets past
	 * it to the checks behind it. */
	if (sel & 32u) {
		struct shmkit__seg_hdr h;
		memcpy(&h, hdr, sizeof h);
		h.checksum = shmkit__hdr_checksum(&h);
		memcpy(hdr, &h, sizeof h);
	}
	int fd = seg_fd();
	if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
		fuzz_fail("pwrite of the header");

	struct shmkit_segment_opts o = {.kind = sel & 7u};
	if (sel & 8u)
		o.flags |= SHMKIT_SEG_RDONLY;
	if (sel & 16u)
		o.min_size = SEG_DATA;
	struct shmkit_segment *seg;
	int rc = shmkit_segment_open_fd(fd, &o, &seg);
	if (rc > 0)
		fuzz_fail("open returned a positive value");
	if (rc < 0)
		return 0;
	size_t n = shmkit_segment_size(seg);
	if (n > SEG_DATA)
		fuzz_fail("data size beyond the file");
	fuzz_touch(shmkit_segment_data(seg), n);
	struct shmkit_segment_info inf;
	if (shmkit_segment_info(seg, &inf) == 0 && strnlen(inf.name, sizeof inf.name) > SHMKIT_NAME_MAX)
		fuzz_fail("unterminated name");
	shmkit_kind_name(shmkit_segment_kind(seg));
	shmkit_segment_close(seg);
	return 0;
}

/* Seeds: the headers of real segments of every kind, ready and still initializing. */
int fuzz_write_seeds(const char *dir)
{
	int idx = 0;
	for (uint32_t kind = SHMKIT_KIND_RAW; kind <= SHMKIT_KIND_TABLE; kind++) {
		for (int defer = 0; defer < 2; defer++) {
			struct shmkit_segment_opts o = FUZZ_MEMFD;
			o.kind = kind;
			o.flags = defer ? SHMKIT_SEG_DEFER_READY : 0;
			struct shmkit_segment *seg;
			if (shmkit_segment_create(NULL, SEG_DATA, &o, &seg) != 0)
				return -1;
			struct fuzz_image im = {.fd = shmkit_segment_fd(seg), .off = 0,
						.size = SHMKIT__HDR_SIZE};
			/* The option byte: the kind asked for, sometimes the wrong one. */
			fuzz_image_save(&im, dir, idx++,
					(int)((kind + (unsigned)defer) & 7u) | (defer ? 8 : 16) |
						(kind & 1 ? 32 : 0));
			shmkit_segment_close(seg);
		}
	}
	return 0;
}
