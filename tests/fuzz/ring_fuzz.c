/* libFuzzer target for the ring's record parser (src/ring.c).
 *
 * The input is a hostile ring: 24 bytes of positions and options, then the ring bytes
 * (4096, zero-padded). The consumer peeks and releases until the ring says empty or
 * corrupt; the producer tries a few loans against the same consumer position. Every
 * pointer handed out must lie inside the ring, every length within max_msg, and the loops
 * must end: ASan/UBSan and the iteration bound turn any violation into a crash.
 *
 * Built two ways: with clang -fsanitize=fuzzer for `make fuzz`, and with tests/fuzz/replay.c
 * (a plain main) so `make check` replays the committed corpus under ASan+UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

#define FUZZ_CAP 4096u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_fail(void)
{
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct {
		uint64_t head, tail;
		uint32_t max_msg;
		uint32_t loans;
	} in;
	memset(&in, 0, sizeof in);
	memcpy(&in, data, size < sizeof in ? size : sizeof in);
	data += size < sizeof in ? size : sizeof in;
	size -= size < sizeof in ? size : sizeof in;

	static _Alignas(128) uint8_t mem[FUZZ_CAP];
	memset(mem, 0, sizeof mem);
	memcpy(mem, data, size < FUZZ_CAP ? size : FUZZ_CAP);

	uint64_t max_msg = in.max_msg % (FUZZ_CAP / 2 - 8 + 1);
	_Atomic uint64_t tail, head;
	atomic_init(&tail, in.tail);
	atomic_init(&head, in.head);
	struct shmkit__ring cons, prod;
	shmkit__ring_view(&cons, mem, FUZZ_CAP, max_msg, &tail, &head);
	shmkit__ring_view(&prod, mem, FUZZ_CAP, max_msg, &tail, &head);
	if (shmkit__ring_attach_consumer(&cons) == 0) {
		/* Each successful peek consumes >= 8 bytes, of at most FUZZ_CAP covered by the
		 * tail and at most a ring more taken in band: bounded. */
		for (int i = 0; i <= (int)(2 * FUZZ_CAP / 8); i++) {
			const void *p;
			uint64_t n;
			int rc = shmkit__ring_peek(&cons, &p, &n);
			if (rc != 0) {
				if (rc != -EAGAIN && rc != -EBADMSG)
					fuzz_fail();
				break;
			}
			const uint8_t *b = p;
			if (b < mem || b + n > mem + FUZZ_CAP || n > max_msg || ((uintptr_t)b & 7))
				fuzz_fail();
			volatile uint8_t sink = 0;
			for (uint64_t k = 0; k < n; k++)
				sink ^= b[k];
			if (shmkit__ring_release(&cons) != 0)
				fuzz_fail();
			if (i == (int)(2 * FUZZ_CAP / 8))
				fuzz_fail(); /* more records than could fit: a parser loop */
			shmkit__ring_publish_head(&cons);
		}
	}
	if (shmkit__ring_attach_producer(&prod) == 0) {
		for (uint32_t i = 0; i < (in.loans & 15); i++) {
			void *p;
			uint64_t len = (in.loans >> 4) + i * 97;
			int rc = shmkit__ring_loan(&prod, len, &p);
			if (rc == 0) {
				uint8_t *b = p;
				if (b < mem || b + len > mem + FUZZ_CAP)
					fuzz_fail();
				memset(b, 0xa5, len);
				shmkit__ring_commit(&prod, len);
				shmkit__ring_publish_tail(&prod);
			} else if (rc != -EAGAIN && rc != -EMSGSIZE && rc != -EBADMSG) {
				fuzz_fail();
			}
		}
	}
	return 0;
}
