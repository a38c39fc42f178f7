/* Tests of a stream channel's producer notes and stream positions (shmkit_chan_note_store,
 * shmkit_chan_note_load, shmkit_chan_position) and of their pub/sub twins
 * (shmkit_pubsub_note_store, _note_load, _position): what a forwarding producer (shmkit
 * bridge) relies on to learn after a kill -9 whether its last message reached the channel. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

START_TEST(test_notes_and_positions)
{
	char name[64];
	t_name_tracked(name, sizeof name, "notes", SHMKIT_BACKEND_POSIX);
	struct shmkit_chan *p, *c, *o;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_PRODUCER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_CONSUMER, NULL, &c), 0);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_OBSERVER, T_CHAN_RO, &o), 0);
	uint64_t v = 1, pos = 1;
	for (unsigned i = 0; i < SHMKIT_CHAN_NOTES; i++) {
		ck_assert_int_eq(shmkit_chan_note_load(c, i, &v), 0);
		ck_assert_uint_eq(v, 0); /* a new channel's notes are zero */
		ck_assert_int_eq(shmkit_chan_note_store(p, i, 1000 + i), 0);
	}
	ck_assert_int_eq(shmkit_chan_note_store(p, SHMKIT_CHAN_NOTES, 1), -EINVAL);
	ck_assert_int_eq(shmkit_chan_note_load(o, SHMKIT_CHAN_NOTES, &v), -EINVAL);
	ck_assert_int_eq(shmkit_chan_note_load(o, 0, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_chan_note_store(c, 0, 1), -EPERM);
	ck_assert_int_eq(shmkit_chan_note_store(o, 0, 1), -EPERM);
	ck_assert_int_eq(shmkit_chan_note_store(NULL, 0, 1), -EINVAL);
	ck_assert_int_eq(shmkit_chan_note_load(o, 7, &v), 0);
	ck_assert_uint_eq(v, 1007);
	ck_assert_int_eq(shmkit_chan_position(o, &pos), -EPERM);
	ck_assert_int_eq(shmkit_chan_position(NULL, &pos), -EINVAL);
	ck_assert_int_eq(shmkit_chan_position(p, NULL), -EINVAL);

	/* Producer: a loan is not a commit; a MORE commit is. */
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	ck_assert_uint_eq(pos, 0);
	void *buf;
	ck_assert_int_eq(shmkit_chan_loan(p, 10, &buf), 0);
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	ck_assert_uint_eq(pos, 0);
	memset(buf, 'a', 10);
	ck_assert_int_eq(shmkit_chan_commit(p, 10, SHMKIT_CHAN_MORE), 0);
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	uint64_t first = pos;
	ck_assert_uint_gt(first, 10);
	ck_assert_int_eq(shmkit_chan_send(p, "bcd", 3), 0);
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	uint64_t second = pos;
	ck_assert_uint_gt(second, first);

	/* Consumer: the end of the peeked message, before and after its release. */
	ck_assert_int_eq(shmkit_chan_position(c, &pos), 0);
	ck_assert_uint_eq(pos, 0);
	const void *m;
	size_t n;
	ck_assert_int_eq(shmkit_chan_peek(c, &m, &n), 0);
	ck_assert_int_eq(shmkit_chan_position(c, &pos), 0);
	ck_assert_uint_eq(pos, first);
	ck_assert_int_eq(shmkit_chan_release(c, 0), 0);
	ck_assert_int_eq(shmkit_chan_position(c, &pos), 0);
	ck_assert_uint_eq(pos, first);
	ck_assert_int_eq(shmkit_chan_peek(c, &m, &n), 0);
	ck_assert_int_eq(shmkit_chan_position(c, &pos), 0);
	ck_assert_uint_eq(pos, second);

	/* Notes and positions outlive the producer: a new one starts where it stopped. */
	shmkit_chan_detach(p);
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_PRODUCER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	ck_assert_uint_eq(pos, second);
	ck_assert_int_eq(shmkit_chan_note_load(p, 3, &v), 0);
	ck_assert_uint_eq(v, 1003);
	shmkit_chan_close(o);
	shmkit_chan_close(c);
	shmkit_chan_unlink(p);
	shmkit_chan_close(p);
}
END_TEST

/* The bridge's protocol under kill -9: note {id, position}, loan, commit; the child dies
 * before or after the commit (or in between, after the loan), and a new producer decides
 * from the position alone whether the message landed. */
struct kill_ctx {
	const char *name;
	int when; /* 0: after the notes, 1: after the loan, 2: after the commit */
	uint64_t msgs;
};

static int killed_producer(void *arg)
{
	struct kill_ctx *k = arg;
	struct shmkit_chan *p;
	if (shmkit_chan_open(k->name, SHMKIT_CHAN_PRODUCER, NULL, &p))
		return 10;
	for (uint64_t i = 0; i < k->msgs; i++) {
		uint64_t pos;
		if (shmkit_chan_position(p, &pos) || shmkit_chan_note_store(p, 1, pos) ||
		    shmkit_chan_note_store(p, 0, i + 1))
			return 11;
		uint8_t msg[40];
		t_msg_fill(msg, sizeof msg, i + 1);
		void *buf;
		bool last = i + 1 == k->msgs;
		if (last && k->when == 0)
			raise(SIGKILL);
		if (shmkit_chan_loan(p, sizeof msg, &buf))
			return 12;
		memcpy(buf, msg, sizeof msg);
		if (last && k->when == 1)
			raise(SIGKILL);
		if (shmkit_chan_commit(p, sizeof msg, 0))
			return 13;
		if (last && k->when == 2)
			raise(SIGKILL);
	}
	return 14;
}

START_TEST(test_verdict_after_kill)
{
	char name[64];
	t_name_tracked(name, sizeof name, "notekill", SHMKIT_BACKEND_POSIX);
	struct shmkit_chan *c;
	ck_assert_int_eq(shmkit_chan_create(name, SHMKIT_CHAN_CONSUMER, NULL, &c), 0);
	struct kill_ctx k = {name, _i % 3, 1 + (uint64_t)_i};
	ck_assert_int_eq(t_wait(t_fork(killed_producer, &k), 10000), 128 + SIGKILL);
	struct shmkit_chan *p;
	ck_assert_int_eq(shmkit_chan_open(name, SHMKIT_CHAN_PRODUCER, NULL, &p), 0);
	uint64_t id, at, pos;
	ck_assert_int_eq(shmkit_chan_note_load(p, 0, &id), 0);
	ck_assert_int_eq(shmkit_chan_note_load(p, 1, &at), 0);
	ck_assert_int_eq(shmkit_chan_position(p, &pos), 0);
	ck_assert_uint_eq(id, k.msgs);
	uint64_t landed = pos > at ? id : id - 1;
	ck_assert_uint_eq(landed, k.when == 2 ? k.msgs : k.msgs - 1);
	/* The consumer gets exactly the messages that landed. */
	uint8_t msg[64];
	for (uint64_t i = 1; i <= landed; i++) {
		ck_assert_int_eq(shmkit_chan_recv(c, msg, sizeof msg), 40);
		ck_assert_int_eq(t_msg_check(msg, 40, i), 0);
	}
	ck_assert_int_eq(shmkit_chan_recv(c, msg, sizeof msg), -EAGAIN);
	shmkit_chan_close(c);
	shmkit_chan_unlink(p);
	shmkit_chan_close(p);
}
END_TEST

/* --- pub/sub ---------------------------------------------------------------------------- */

START_TEST(test_pubsub_notes_and_positions)
{
	char name[64];
	t_name_tracked(name, sizeof name, "psnotes", SHMKIT_BACKEND_POSIX);
	struct shmkit_pubsub *p, *s, *o;
	ck_assert_int_eq(shmkit_pubsub_create(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s), 0);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_OBSERVER, T_PUBSUB_RO, &o), 0);
	uint64_t v = 1, pos = 1;
	for (unsigned i = 0; i < SHMKIT_PUBSUB_NOTES; i++) {
		ck_assert_int_eq(shmkit_pubsub_note_load(s, i, &v), 0);
		ck_assert_uint_eq(v, 0);
		ck_assert_int_eq(shmkit_pubsub_note_store(p, i, 2000 + i), 0);
	}
	ck_assert_int_eq(shmkit_pubsub_note_store(p, SHMKIT_PUBSUB_NOTES, 1), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_note_load(o, SHMKIT_PUBSUB_NOTES, &v), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_note_load(o, 0, NULL), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_note_store(s, 0, 1), -EPERM);
	ck_assert_int_eq(shmkit_pubsub_note_store(o, 0, 1), -EPERM);
	ck_assert_int_eq(shmkit_pubsub_note_store(NULL, 0, 1), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_note_load(o, 7, &v), 0);
	ck_assert_uint_eq(v, 2007);
	ck_assert_int_eq(shmkit_pubsub_position(o, &pos), -EPERM);
	ck_assert_int_eq(shmkit_pubsub_position(NULL, &pos), -EINVAL);
	ck_assert_int_eq(shmkit_pubsub_position(p, NULL), -EINVAL);

	/* Publisher: a loan is not a commit; a MORE commit is. */
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	uint64_t start = pos;
	void *buf;
	ck_assert_int_eq(shmkit_pubsub_loan(p, 10, &buf), 0);
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	ck_assert_uint_eq(pos, start);
	memset(buf, 'a', 10);
	ck_assert_int_eq(shmkit_pubsub_commit(p, 10, SHMKIT_PUBSUB_MORE), 0);
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	uint64_t first = pos;
	ck_assert_uint_gt(first, start + 10);
	ck_assert_int_eq(shmkit_pubsub_send(p, "bcd", 3), 0);
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	uint64_t second = pos;
	ck_assert_uint_gt(second, first);

	/* Subscriber: the end of the peeked message, before and after its release. */
	ck_assert_int_eq(shmkit_pubsub_position(s, &pos), 0);
	ck_assert_uint_eq(pos, start);
	const void *m;
	size_t n;
	ck_assert_int_eq(shmkit_pubsub_peek(s, &m, &n), 0);
	ck_assert_int_eq(shmkit_pubsub_position(s, &pos), 0);
	ck_assert_uint_eq(pos, first);
	ck_assert_int_eq(shmkit_pubsub_release(s, SHMKIT_PUBSUB_MORE), 0);
	ck_assert_int_eq(shmkit_pubsub_position(s, &pos), 0);
	ck_assert_uint_eq(pos, first);
	ck_assert_int_eq(shmkit_pubsub_peek(s, &m, &n), 0);
	ck_assert_int_eq(shmkit_pubsub_position(s, &pos), 0);
	ck_assert_uint_eq(pos, second);
	ck_assert_int_eq(shmkit_pubsub_release(s, 0), 0);

	/* Notes and the position outlive the publisher: a new one starts where it stopped. */
	ck_assert_int_eq(shmkit_pubsub_close(p), 0);
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p), 0);
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	ck_assert_uint_eq(pos, second);
	ck_assert_int_eq(shmkit_pubsub_note_load(p, 3, &v), 0);
	ck_assert_uint_eq(v, 2003);
	shmkit_pubsub_close(o);
	shmkit_pubsub_close(s);
	shmkit_pubsub_unlink(p);
	shmkit_pubsub_close(p);
}
END_TEST

static int killed_publisher(void *arg)
{
	struct kill_ctx *k = arg;
	struct shmkit_pubsub *p;
	if (shmkit_pubsub_open(k->name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p))
		return 10;
	for (uint64_t i = 0; i < k->msgs; i++) {
		uint64_t pos;
		if (shmkit_pubsub_position(p, &pos) || shmkit_pubsub_note_store(p, 1, pos) ||
		    shmkit_pubsub_note_store(p, 0, i + 1))
			return 11;
		uint8_t msg[40];
		t_msg_fill(msg, sizeof msg, i + 1);
		void *buf;
		bool last = i + 1 == k->msgs;
		if (last && k->when == 0)
			raise(SIGKILL);
		if (shmkit_pubsub_loan(p, sizeof msg, &buf))
			return 12;
		memcpy(buf, msg, sizeof msg);
		if (last && k->when == 1)
			raise(SIGKILL);
		if (shmkit_pubsub_commit(p, sizeof msg, 0))
			return 13;
		if (last && k->when == 2)
			raise(SIGKILL);
	}
	return 14;
}

START_TEST(test_pubsub_verdict_after_kill)
{
	char name[64];
	t_name_tracked(name, sizeof name, "psnotekill", SHMKIT_BACKEND_POSIX);
	struct shmkit_pubsub *s;
	ck_assert_int_eq(shmkit_pubsub_create(name, SHMKIT_PUBSUB_SUBSCRIBER, NULL, &s), 0);
	struct kill_ctx k = {name, _i % 3, 1 + (uint64_t)_i};
	ck_assert_int_eq(t_wait(t_fork(killed_publisher, &k), 10000), 128 + SIGKILL);
	struct shmkit_pubsub *p;
	ck_assert_int_eq(shmkit_pubsub_open(name, SHMKIT_PUBSUB_PUBLISHER, NULL, &p), 0);
	uint64_t id, at, pos;
	ck_assert_int_eq(shmkit_pubsub_note_load(p, 0, &id), 0);
	ck_assert_int_eq(shmkit_pubsub_note_load(p, 1, &at), 0);
	ck_assert_int_eq(shmkit_pubsub_position(p, &pos), 0);
	ck_assert_uint_eq(id, k.msgs);
	uint64_t landed = pos > at ? id : id - 1;
	ck_assert_uint_eq(landed, k.when == 2 ? k.msgs : k.msgs - 1);
	/* The subscriber gets exactly the messages that landed. */
	uint8_t msg[64];
	for (uint64_t i = 1; i <= landed; i++) {
		ck_assert_int_eq(shmkit_pubsub_recv(s, msg, sizeof msg), 40);
		ck_assert_int_eq(t_msg_check(msg, 40, i), 0);
	}
	ck_assert_int_eq(shmkit_pubsub_recv(s, msg, sizeof msg), -EAGAIN);
	shmkit_pubsub_close(s);
	shmkit_pubsub_unlink(p);
	shmkit_pubsub_close(p);
}
END_TEST

static Suite *notes_suite(void)
{
	Suite *s = suite_create("chan_notes");
	TCase *tc = t_tcase(s, "notes", 60);
	tcase_add_test(tc, test_notes_and_positions);
	tcase_add_loop_test(tc, test_verdict_after_kill, 0, 9);
	tcase_add_test(tc, test_pubsub_notes_and_positions);
	tcase_add_loop_test(tc, test_pubsub_verdict_after_kill, 0, 9);
	return s;
}

int main(void)
{
	Suite *(*const makers[])(void) = {notes_suite};
	return t_main(makers, 1);
}
