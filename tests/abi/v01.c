/* A program built against SHMKIT_0.1, run against the current library (tests/abi.c).
 *
 * It includes no shmkit header: it declares what it uses exactly as the 0.1 headers did
 * (struct layouts, flag values, prototypes), and it is linked against a stub exporting only
 * the SHMKIT_0.1 node (tools/abi-stub.sh), so each call binds to name@SHMKIT_0.1 — what a
 * binary built with shmkit 0.1 carries. Run with the current library, every call must keep
 * its 0.1 meaning: option structs without reserved words, NO_SPIN 0x1, NO_HISTORY 0x2, the
 * observer role or SHMKIT_QUEUE_OBSERVER (0x2) for read-only access, -EMSGSIZE for a short
 * receive buffer, shmkit_table_open() taking segment options. Exits 0, or 1 after naming
 * the first check that failed. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* --- the 0.1 declarations used (the headers of 0.1) ----------------------- */

struct shmkit_segment_opts {
	uint32_t backend, kind, mode, flags;
	int32_t sysv_key;
	uint32_t reserved;
	uint64_t min_size;
};
#define SHMKIT_SEG_RDONLY 0x8u

struct shmkit_chan_opts {
	uint64_t capacity, max_msg;
	uint32_t spin_ns, flags;
	struct shmkit_segment_opts seg;
};
#define SHMKIT_CHAN_NO_SPIN 0x1u
struct shmkit_chan;
int shmkit_chan_create(const char *, int, const struct shmkit_chan_opts *, struct shmkit_chan **);
int shmkit_chan_open(const char *, int, const struct shmkit_chan_opts *, struct shmkit_chan **);
int shmkit_chan_send(struct shmkit_chan *, const void *, size_t);
int shmkit_chan_loan(struct shmkit_chan *, size_t, void **);
ssize_t shmkit_chan_recv(struct shmkit_chan *, void *, size_t);
int shmkit_chan_unlink(struct shmkit_chan *);
int shmkit_chan_close(struct shmkit_chan *);

struct shmkit_pubsub_opts {
	uint64_t capacity, max_msg;
	uint32_t max_subscribers, policy, history, spin_ns, flags, reserved;
	struct shmkit_segment_opts seg;
};
#define SHMKIT_PUBSUB_NO_SPIN 0x1u
#define SHMKIT_PUBSUB_NO_HISTORY 0x2u
struct shmkit_pubsub;
int shmkit_pubsub_create(const char *, int, const struct shmkit_pubsub_opts *,
			 struct shmkit_pubsub **);
int shmkit_pubsub_open(const char *, int, const struct shmkit_pubsub_opts *,
		       struct shmkit_pubsub **);
int shmkit_pubsub_send(struct shmkit_pubsub *, const void *, size_t);
ssize_t shmkit_pubsub_recv(struct shmkit_pubsub *, void *, size_t);
int shmkit_pubsub_unlink(struct shmkit_pubsub *);
int shmkit_pubsub_close(struct shmkit_pubsub *);

struct shmkit_queue_opts {
	uint32_t slots, max_members;
	uint64_t max_msg;
	uint32_t spin_ns, flags;
	struct shmkit_segment_opts seg;
};
#define SHMKIT_QUEUE_NO_SPIN 0x1u
#define SHMKIT_QUEUE_OBSERVER 0x2u
struct shmkit_queue;
int shmkit_queue_create(const char *, const struct shmkit_queue_opts *, struct shmkit_queue **);
int shmkit_queue_open(const char *, const struct shmkit_queue_opts *, struct shmkit_queue **);
int shmkit_queue_send(struct shmkit_queue *, const void *, size_t);
ssize_t shmkit_queue_recv(struct shmkit_queue *, void *, size_t);
int shmkit_queue_unlink(struct shmkit_queue *);
int shmkit_queue_close(struct shmkit_queue *);

struct shmkit_table_opts {
	size_t capacity, key_max, value_max;
	uint32_t flags, ttl_ms, stripes, reserved;
	struct shmkit_segment_opts seg;
};
#define SHMKIT_TABLE_CACHE 0x1u
struct shmkit_table;
int shmkit_table_create(const char *, const struct shmkit_table_opts *, struct shmkit_table **);
int shmkit_table_open(const char *, const struct shmkit_segment_opts *, struct shmkit_table **);
int shmkit_table_put(struct shmkit_table *, const void *, size_t, const void *, size_t);
int shmkit_table_get(struct shmkit_table *, const void *, size_t, void *, size_t);
struct shmkit_segment *shmkit_table_segment(const struct shmkit_table *);
int shmkit_segment_unlink(struct shmkit_segment *);
int shmkit_table_close(struct shmkit_table *);
const char *shmkit_version(void);

/* --- checks --------------------------------------------------------------------------- */

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "abi v0.1: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
			return 1;                                                     \
		}                                                                     \
	} while (0)

static int chan(const char *name)
{
	struct shmkit_chan_opts o = {.capacity = 4096, .flags = SHMKIT_CHAN_NO_SPIN};
	struct shmkit_chan *p, *c, *obs;
	CHECK(shmkit_chan_create(name, 1, &o, &p) == 0);
	CHECK(shmkit_chan_open(name, 2, &o, &c) == 0);
	CHECK(shmkit_chan_open(name, 0, NULL, &obs) == 0); /* the 0.1 observer: role 0 alone */
	void *buf;
	CHECK(shmkit_chan_loan(obs, 8, &buf) == -EPERM);
	char msg[100] = "hello", got[200];
	CHECK(shmkit_chan_send(p, msg, sizeof msg) == 0);
	CHECK(shmkit_chan_recv(c, got, 10) == -EMSGSIZE);
	CHECK(shmkit_chan_recv(c, got, sizeof got) == (ssize_t)sizeof msg);
	CHECK(strcmp(got, "hello") == 0);
	shmkit_chan_close(obs);
	shmkit_chan_close(c);
	CHECK(shmkit_chan_unlink(p) == 0);
	shmkit_chan_close(p);
	return 0;
}

static int pubsub(const char *name)
{
	struct shmkit_pubsub_opts o = {.capacity = 4096, .history = 4,
				       .flags = SHMKIT_PUBSUB_NO_SPIN};
	struct shmkit_pubsub *p, *s, *late, *obs;
	CHECK(shmkit_pubsub_create(name, 1, &o, &p) == 0);
	CHECK(shmkit_pubsub_open(name, 2, NULL, &s) == 0);
	CHECK(shmkit_pubsub_open(name, 0, NULL, &obs) == 0);
	char got[64];
	CHECK(shmkit_pubsub_send(p, "0123456789abcdef", 16) == 0);
	CHECK(shmkit_pubsub_recv(s, got, 4) == -EMSGSIZE);
	CHECK(shmkit_pubsub_recv(s, got, sizeof got) == 16);
	/* 0x2 was NO_HISTORY: the late subscriber must not get the message kept as history. */
	struct shmkit_pubsub_opts lo = {.flags = SHMKIT_PUBSUB_NO_HISTORY};
	CHECK(shmkit_pubsub_open(name, 2, &lo, &late) == 0);
	CHECK(shmkit_pubsub_recv(late, got, sizeof got) == -EAGAIN);
	shmkit_pubsub_close(late);
	shmkit_pubsub_close(obs);
	shmkit_pubsub_close(s);
	CHECK(shmkit_pubsub_unlink(p) == 0);
	shmkit_pubsub_close(p);
	return 0;
}

static int queue(const char *name)
{
	struct shmkit_queue_opts o = {.slots = 4, .max_members = 4, .max_msg = 64,
				      .flags = SHMKIT_QUEUE_NO_SPIN};
	struct shmkit_queue *q, *obs;
	CHECK(shmkit_queue_create(name, &o, &q) == 0);
	struct shmkit_queue_opts oo = {.flags = SHMKIT_QUEUE_OBSERVER};
	CHECK(shmkit_queue_create(name, &oo, &obs) == -EINVAL);
	CHECK(shmkit_queue_open(name, &oo, &obs) == 0);
	CHECK(shmkit_queue_send(obs, "x", 1) == -EPERM);
	char got[64];
	CHECK(shmkit_queue_send(q, "0123456789", 10) == 0);
	CHECK(shmkit_queue_recv(q, got, 2) == -EMSGSIZE);
	CHECK(shmkit_queue_recv(q, got, sizeof got) == 10);
	shmkit_queue_close(obs);
	CHECK(shmkit_queue_unlink(q) == 0);
	shmkit_queue_close(q);
	return 0;
}

static int table(const char *name)
{
	struct shmkit_table_opts o = {.capacity = 16, .key_max = 8, .value_max = 32,
				      .flags = SHMKIT_TABLE_CACHE};
	struct shmkit_table *t, *ro;
	CHECK(shmkit_table_create(name, &o, &t) == 0);
	CHECK(shmkit_table_put(t, "k", 1, "v", 1) == 0);
	struct shmkit_segment_opts so = {.flags = SHMKIT_SEG_RDONLY};
	CHECK(shmkit_table_open(name, &so, &ro) == 0); /* 0.1: segment options */
	char got[8];
	CHECK(shmkit_table_get(ro, "k", 1, got, sizeof got) == 1);
	CHECK(shmkit_table_put(ro, "k", 1, "w", 1) == -EPERM);
	shmkit_table_close(ro);
	CHECK(shmkit_segment_unlink(shmkit_table_segment(t)) == 0);
	shmkit_table_close(t);
	return 0;
}

int main(void)
{
	char name[64];
	CHECK(shmkit_version() != NULL);
	snprintf(name, sizeof name, "abi01.%d.chan", (int)getpid());
	if (chan(name))
		return 1;
	snprintf(name, sizeof name, "abi01.%d.pubsub", (int)getpid());
	if (pubsub(name))
		return 1;
	snprintf(name, sizeof name, "abi01.%d.queue", (int)getpid());
	if (queue(name))
		return 1;
	snprintf(name, sizeof name, "abi01.%d.table", (int)getpid());
	if (table(name))
		return 1;
	printf("abi v0.1: ok against %s\n", shmkit_version());
	return 0;
}
