/* Writes the seed corpus for ring_fuzz: real rings produced by the ring code itself
 * (wraps at many offsets, pads, zero-length and maximum records), plus a few classic
 * corruptions. Run by `make fuzz-seeds`; the seeds are committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

static void emit(const char *dir, int idx, uint64_t head, uint64_t tail, uint32_t max_msg,
		 uint32_t loans, const uint8_t *mem)
{
	char path[512];
	snprintf(path, sizeof path, "%s/seed-%03d", dir, idx);
	FILE *f = fopen(path, "wb");
	if (!f) {
		perror(path);
		exit(1);
	}
	fwrite(&head, 8, 1, f);
	fwrite(&tail, 8, 1, f);
	fwrite(&max_msg, 4, 1, f);
	fwrite(&loans, 4, 1, f);
	fwrite(mem, 1, 4096, f);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	static _Alignas(128) uint8_t mem[4096];
	int idx = 0;
	for (uint64_t start = 0; start < 4096; start += 328) {
		memset(mem, 0, sizeof mem);
		_Atomic uint64_t tail, head;
		atomic_init(&tail, start);
		atomic_init(&head, start);
		struct shmkit__ring p;
		shmkit__ring_view(&p, mem, 4096, 2040, &tail, &head);
		shmkit__ring_attach_producer(&p);
		static const uint64_t sizes[] = {0, 1, 13, 200, 700, 2040, 64};
		for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
			void *b;
			if (shmkit__ring_loan(&p, sizes[i], &b) != 0)
				break;
			memset(b, (int)i, sizes[i]);
			shmkit__ring_commit(&p, sizes[i]);
		}
		shmkit__ring_publish_tail(&p);
		emit(dir, idx++, start, atomic_load(&tail), 2040, 0x123, mem);
		/* The same ring with a tail low bit that is not the clean bit, and one record
		 * too far. */
		emit(dir, idx++, start, atomic_load(&tail) + 2, 2040, 0, mem);
		emit(dir, idx++, start, atomic_load(&tail) + 4096, 2040, 0, mem);
		/* A smaller max_msg than the records use. */
		emit(dir, idx++, start, atomic_load(&tail), 100, 0x7f1, mem);
		/* Only the first record (8 bytes, empty) published: the rest comes in band. */
		emit(dir, idx++, start, (start + 8) | SHMKIT__TAIL_CLEAN, 2040, 0x123, mem);
	}
	printf("%d seeds written to %s\n", idx, dir);
	return 0;
}
