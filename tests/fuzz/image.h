/* Fuzzing a shared object through its public API: a real object is created once in a
 * memfd (so its segment header is valid and ours), its descriptor kept, and each input is
 * written over the object's data area before the target opens it with *_open_fd() as a
 * peer would. The seeds are data areas of real objects, saved by the same code. */
#ifndef SHMKIT_FUZZ_IMAGE_H
#define SHMKIT_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "shmkit.h"

struct fuzz_image {
	int fd;      /* the memfd, sealed against shrinking and growing */
	size_t off;  /* where the data area starts (after the segment header) */
	size_t size; /* bytes of the data area */
};

/* Keeps a duplicate of seg's descriptor and the place of its data area; the caller may
 * close its handle afterwards. Aborts on failure (a harness fault, not a finding). */
void fuzz_image_keep(struct fuzz_image *im, struct shmkit_segment *seg);

/* Writes data (zero-padded, truncated to the data area) over the data area. */
void fuzz_image_load(const struct fuzz_image *im, const uint8_t *data, size_t size);

/* Writes the data area to dir/seed-NN (NN = idx), followed by the byte `tail` when it is
 * 0..255 (a target's option byte). */
void fuzz_image_save(const struct fuzz_image *im, const char *dir, int idx, int tail);

void fuzz_image_drop(struct fuzz_image *im);

/* Reads every byte of [p, p + n): a pointer or length the library handed out that lies
 * outside the mapping crashes here. */
void fuzz_touch(const void *p, size_t n);

/* Checks that [p, p + n) lies inside seg's data area (the library handed it out as a
 * view of shared memory), then reads it. */
void fuzz_inside(struct shmkit_segment *seg, const void *p, size_t n, const char *what);

/* Aborts with a message: an invariant the library promises was broken. */
_Noreturn void fuzz_fail(const char *what);

/* The memfd backend, for the targets' create calls. */
#define FUZZ_MEMFD {.backend = SHMKIT_BACKEND_MEMFD}

#endif
