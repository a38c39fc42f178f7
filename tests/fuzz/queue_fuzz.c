/* libFuzzer target for the work queue's slots (src/queue.c): a peer scribbles the data
 * area of a queue (control block, member table, slot ring), and we open it with
 * shmkit_queue_open_fd() and consume, produce and recover as a member does.
 *
 * Input: the data area of a queue created with the parameters below (zero-padded), then
 * an option byte (bit 0: peek/release instead of recv; bit 1: recover first). Every
 * message handed out lies in the mapping within max_msg, the loops end, and every call
 * returns 0, a count or a negative errno.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *const fuzz_corpus = "tests/fuzz/corpus/queue";
int fuzz_write_seeds(const char *dir);

#define Q_SLOTS 8u
#define Q_MSG 64u

static struct shmkit_queue *create(void)
{
	struct shmkit_queue_opts o = {.slots = Q_SLOTS, .max_members = 4, .max_msg = Q_MSG,
				      .flags = SHMKIT_QUEUE_NO_SPIN, .seg = FUZZ_MEMFD};
	struct shmkit_queue *q;
	if (shmkit_queue_create(NULL, &o, &q) != 0)
		fuzz_fail("queue create");
	return q;
}

static const struct fuzz_image *image(void)
{
	static struct fuzz_image im = {.fd = -1};
	if (im.fd < 0) {
		struct shmkit_queue *q = create();
		fuzz_image_keep(&im, shmkit_queue_segment(q));
		shmkit_queue_close(q);
	}
	return &im;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_image *im = image();
	uint8_t sel = size > im->size ? data[im->size] : 0;
	fuzz_image_load(im, data, size);
	struct shmkit_queue_opts o = {.flags = SHMKIT_QUEUE_NO_SPIN};
	struct shmkit_queue *q;
	if (shmkit_queue_open_fd(im->fd, &o, &q) != 0)
		return 0;
	/* The geometry is the peer's too (checked against the segment at open): size the
	 * buffers by what the handle says. */
	size_t max = shmkit_queue_max_msg(q);
	uint8_t *buf = malloc(4 * max + 1);
	if (!buf)
		fuzz_fail("malloc");
	if (sel & 2)
		shmkit_queue_recover(q);
	struct shmkit_queue_stats st;
	shmkit_queue_stats(q, &st);
	/* More messages than slots from a ring nobody feeds is a loop (the slot count is
	 * bounded by the segment: 16 bytes of slot at least per message). */
	size_t bound = 2 * shmkit_segment_size(shmkit_queue_segment(q)) / 16 + 4;
	for (size_t i = 0;; i++) {
		if (i > bound)
			fuzz_fail("received more messages than the queue has slots");
		if (sel & 1) {
			const void *p;
			size_t n;
			if (shmkit_queue_peek(q, &p, &n) != 0)
				break;
			if (n > max)
				fuzz_fail("peeked message beyond max_msg");
			fuzz_inside(shmkit_queue_segment(q), p, n, "peeked message outside the segment");
			shmkit_queue_release(q);
		} else {
			ssize_t n = shmkit_queue_recv(q, buf, max);
			if (n > (ssize_t)max)
				fuzz_fail("received length beyond max_msg");
			if (n < 0 && n != -EBADMSG)
				break;
		}
	}
	for (int i = 0; i < 3; i++)
		if (shmkit_queue_send(q, "fuzz", 4) > 0)
			fuzz_fail("send returned a positive value");
	size_t lens[4];
	int got = shmkit_queue_recv_many(q, buf, max, lens, 4);
	if (got > 4)
		fuzz_fail("received more than asked for");
	for (int i = 0; i < got; i++)
		if (lens[i] > max)
			fuzz_fail("batch length beyond max_msg");
	free(buf);
	shmkit_queue_close(q);
	return 0;
}

/* Seeds: real queues, empty, partly full, full, wrapped, and with a slot held by a loan
 * and one by a peek (as a producer or consumer that died mid-operation leaves them). */
int fuzz_write_seeds(const char *dir)
{
	int idx = 0;
	for (int variant = 0; variant < 5; variant++) {
		struct shmkit_queue *q = create();
		int sends = variant == 0 ? 0 : variant == 1 ? 3 : (int)Q_SLOTS;
		if (variant == 3) {
			for (int i = 0; i < 13; i++) {
				shmkit_queue_send(q, "wrap", 4);
				char buf[Q_MSG];
				shmkit_queue_recv(q, buf, sizeof buf);
			}
			sends = 5;
		}
		for (int i = 0; i < sends; i++) {
			char msg[Q_MSG];
			memset(msg, 'a' + i, sizeof msg);
			shmkit_queue_send(q, msg, (size_t)(i * 9) % (Q_MSG + 1));
		}
		struct shmkit_queue *peer = NULL;
		if (variant == 4) {
			struct shmkit_queue_opts o = {.flags = SHMKIT_QUEUE_NO_SPIN};
			if (shmkit_queue_open_fd(shmkit_segment_fd(shmkit_queue_segment(q)), &o, &peer) == 0) {
				void *b;
				const void *p;
				size_t n;
				shmkit_queue_send(peer, "x", 1);
				shmkit_queue_peek(peer, &p, &n);
				shmkit_queue_loan(q, &b);
			}
		}
		struct fuzz_image im;
		fuzz_image_keep(&im, shmkit_queue_segment(q));
		fuzz_image_save(&im, dir, idx++, variant & 3);
		fuzz_image_drop(&im);
		if (peer)
			shmkit_queue_close(peer);
		shmkit_queue_close(q);
	}
	return 0;
}
