/* libFuzzer target for the pub/sub ring (src/pubsub.c): a peer scribbles the data area of
 * a publish/subscribe channel (control block, subscriber slots, the ring of records with
 * their padding records), and we join it as a subscriber and read everything, then take
 * the publisher role and publish.
 *
 * Input: the data area of a channel created with the parameters below (zero-padded), then
 * an option byte (bit 0: peek/validate/release instead of recv). Every message handed out
 * lies in the mapping within max_msg, the loops end, and every call returns 0, a count or
 * a negative errno.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *const fuzz_corpus = "tests/fuzz/corpus/pubsub";
int fuzz_write_seeds(const char *dir);

#define P_CAP 4096u
#define P_MSG 1024u

static struct shmkit_pubsub *create(uint32_t policy)
{
	struct shmkit_pubsub_opts o = {.capacity = P_CAP, .max_msg = P_MSG, .max_subscribers = 4,
				       .policy = policy, .history = 8,
				       .flags = SHMKIT_PUBSUB_NO_SPIN, .seg = FUZZ_MEMFD};
	struct shmkit_pubsub *ps;
	if (shmkit_pubsub_create(NULL, SHMKIT_PUBSUB_PUBLISHER, &o, &ps) != 0)
		fuzz_fail("pubsub create");
	return ps;
}

static const struct fuzz_image *image(void)
{
	static struct fuzz_image im = {.fd = -1};
	if (im.fd < 0) {
		struct shmkit_pubsub *ps = create(SHMKIT_PUBSUB_BLOCK);
		fuzz_image_keep(&im, shmkit_pubsub_segment(ps));
		shmkit_pubsub_close(ps);
	}
	return &im;
}

static void subscribe(int fd, uint8_t sel)
{
	struct shmkit_pubsub_opts o = {.flags = SHMKIT_PUBSUB_NO_SPIN};
	struct shmkit_pubsub *ps;
	if (shmkit_pubsub_open_fd(fd, SHMKIT_PUBSUB_SUBSCRIBER, &o, &ps) != 0)
		return;
	/* The geometry is the peer's too (checked against the segment at open). */
	size_t max = shmkit_pubsub_max_msg(ps);
	uint8_t *buf = malloc(max + 1);
	if (!buf)
		fuzz_fail("malloc");
	struct shmkit_segment *seg = shmkit_pubsub_segment(ps);
	/* Each message takes >= 16 bytes of the ring: more than a ring's worth (plus the
	 * history) from a ring nobody feeds is a loop. */
	size_t bound = 2 * shmkit_segment_size(seg) / 16 + 16;
	for (size_t i = 0;; i++) {
		if (i > bound)
			fuzz_fail("received more messages than the ring can hold");
		int rc;
		if (sel & 1) {
			const void *p;
			size_t n;
			rc = shmkit_pubsub_peek(ps, &p, &n);
			if (rc == 0) {
				if (n > max)
					fuzz_fail("peeked message beyond max_msg");
				fuzz_inside(seg, p, n, "peeked message outside the segment");
				shmkit_pubsub_validate(ps);
				shmkit_pubsub_release(ps, 0);
			}
		} else {
			ssize_t n = shmkit_pubsub_recv(ps, buf, max);
			if (n > (ssize_t)max)
				fuzz_fail("received length beyond max_msg");
			rc = n < 0 ? (int)n : 0;
		}
		if (rc < 0 && rc != -ESTALE)
			break;
	}
	free(buf);
	uint64_t since;
	shmkit_pubsub_lost(ps, &since);
	shmkit_pubsub_close(ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct fuzz_image *im = image();
	uint8_t sel = size > im->size ? data[im->size] : 0;
	fuzz_image_load(im, data, size);
	subscribe(im->fd, sel);
	/* The publisher reads the subscribers' positions and the ring's padding. */
	struct shmkit_pubsub_opts o = {.flags = SHMKIT_PUBSUB_NO_SPIN};
	struct shmkit_pubsub *ps;
	if (shmkit_pubsub_open_fd(im->fd, SHMKIT_PUBSUB_PUBLISHER, &o, &ps) == 0) {
		for (int i = 0; i < 3; i++)
			if (shmkit_pubsub_send(ps, "fuzz", 4) > 0)
				fuzz_fail("send returned a positive value");
		struct shmkit_pubsub_stats st;
		shmkit_pubsub_stats(ps, &st);
		struct shmkit_pubsub_sub_stats subs[4];
		shmkit_pubsub_subscribers(ps, subs, 4);
		shmkit_pubsub_close(ps);
	}
	return 0;
}

/* Seeds: real channels in both policies, empty, with history, wrapped (padding records at
 * the end of the ring), with a subscriber attached and behind, and closed. */
int fuzz_write_seeds(const char *dir)
{
	int idx = 0;
	for (int variant = 0; variant < 8; variant++) {
		struct shmkit_pubsub *ps = create(variant & 1 ? SHMKIT_PUBSUB_OVERWRITE : SHMKIT_PUBSUB_BLOCK);
		struct shmkit_pubsub *sub = NULL;
		struct shmkit_pubsub_opts o = {.flags = SHMKIT_PUBSUB_NO_SPIN};
		if (variant >= 4)
			shmkit_pubsub_open_fd(shmkit_segment_fd(shmkit_pubsub_segment(ps)), SHMKIT_PUBSUB_SUBSCRIBER, &o, &sub);
		int sends = variant < 2 ? 0 : 3 + variant * 5;
		for (int i = 0; i < sends; i++) {
			char msg[P_MSG];
			memset(msg, 'a' + i % 26, sizeof msg);
			size_t len = (size_t)(i * 131 + variant * 17) % (P_MSG / 2);
			if (shmkit_pubsub_send(ps, msg, len) == -EAGAIN && sub) {
				char buf[P_MSG];
				shmkit_pubsub_recv(sub, buf, sizeof buf);
				shmkit_pubsub_recv(sub, buf, sizeof buf);
			}
		}
		if (variant >= 6) {
			shmkit_pubsub_flush(ps);
			shmkit_pubsub_close(ps); /* end of stream */
			ps = NULL;
		}
		struct fuzz_image im;
		fuzz_image_keep(&im, shmkit_pubsub_segment(sub ? sub : ps));
		fuzz_image_save(&im, dir, idx++, variant >> 1 & 1);
		fuzz_image_drop(&im);
		shmkit_pubsub_close(sub);
		shmkit_pubsub_close(ps);
	}
	return 0;
}
