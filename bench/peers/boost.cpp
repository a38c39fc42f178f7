// bench/peers/boost — Boost.Interprocess next to shmkit, in the same run and the same table
// format (bench/peers/peer.c).
//
//   boost-mq       boost::interprocess::message_queue per direction (8 messages of `size`
//                  bytes; send copies in, receive copies out), blocking
//   boost-condvar  one slot per direction in managed_shared_memory, guarded by an
//                  interprocess_mutex with two interprocess_conditions (data / space); the
//                  sender writes the payload in place, the receiver checks it in place
//
// Every wait is a timed wait in a loop (100 ms), so the driver's watchdog and SIGINT can
// stop a run. The queues and the segment have names (Boost has no anonymous ones) that carry
// our pid; setup() creates them in the parent and teardown() removes them, on every path.
#include <boost/date_time/posix_time/posix_time_types.hpp>
#include <boost/interprocess/ipc/message_queue.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_condition.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <unistd.h>

extern "C" {
#include "peer.h"
}

namespace bip = boost::interprocess;

namespace {

unsigned link_counter;

std::string unique_name(const char *what, size_t size)
{
	char b[96];
	std::snprintf(b, sizeof b, "shmkit-bench-%s-%d-%zu-%u", what, (int)getpid(), size,
		      link_counter++);
	return b;
}

boost::posix_time::ptime tick()
{
	return boost::posix_time::microsec_clock::universal_time() +
	       boost::posix_time::milliseconds(100);
}

int fail(ipc_link *l, const char *what, const std::exception &e)
{
	std::snprintf(l->err, sizeof l->err, "%s: %s", what, e.what());
	return -EIO;
}

// --- message_queue -----------------------------------------------------------------------

struct mq_priv {
	std::string name[2]; // [0]: A -> B, [1]: B -> A
	bip::message_queue *q[2] = {nullptr, nullptr};
	unsigned char *buf = nullptr;
	bool created = false;
};

int mq_setup(ipc_link *l)
{
	auto *p = new (std::nothrow) mq_priv;
	if (!p)
		return -ENOMEM;
	l->priv = p;
	try {
		for (int i = 0; i < 2; i++) {
			p->name[i] = unique_name("mq", l->size);
			bip::message_queue::remove(p->name[i].c_str());
			p->q[i] = new bip::message_queue(bip::create_only, p->name[i].c_str(), 8, l->size);
		}
		p->created = true;
	} catch (const std::exception &e) {
		return fail(l, "message_queue", e);
	}
	return 0;
}

int mq_attach(ipc_link *l, int)
{
	auto *p = static_cast<mq_priv *>(l->priv);
	// The parent's objects map the same memory in the child (fork keeps MAP_SHARED mappings).
	p->buf = new (std::nothrow) unsigned char[l->size];
	return p->buf ? 0 : -ENOMEM;
}

void mq_detach(ipc_link *l)
{
	auto *p = static_cast<mq_priv *>(l->priv);
	delete[] p->buf;
	p->buf = nullptr;
}

void mq_teardown(ipc_link *l)
{
	auto *p = static_cast<mq_priv *>(l->priv);
	if (!p)
		return;
	for (int i = 0; i < 2; i++) {
		delete p->q[i];
		if (!p->name[i].empty())
			bip::message_queue::remove(p->name[i].c_str());
	}
	delete[] p->buf;
	delete p;
	l->priv = nullptr;
}

int mq_send(ipc_link *l, unsigned)
{
	auto *p = static_cast<mq_priv *>(l->priv);
	unsigned char b = ipc_byte(++l->tx);
	p->buf[0] = p->buf[l->size - 1] = b;
	try {
		while (!p->q[l->side]->timed_send(p->buf, l->size, 0, tick()))
			if (ipc_abort)
				return -EINTR;
	} catch (const std::exception &e) {
		return fail(l, "message_queue::send", e);
	}
	return 0;
}

int mq_recv(ipc_link *l, unsigned)
{
	auto *p = static_cast<mq_priv *>(l->priv);
	bip::message_queue::size_type got = 0;
	unsigned prio = 0;
	try {
		while (!p->q[!l->side]->timed_receive(p->buf, l->size, got, prio, tick()))
			if (ipc_abort)
				return -EINTR;
	} catch (const std::exception &e) {
		return fail(l, "message_queue::receive", e);
	}
	return ipc_check(p->buf, got, l->size, ++l->rx);
}

// --- mutex + condition in managed_shared_memory -------------------------------------------

struct slot {
	bip::interprocess_mutex m;
	bip::interprocess_condition data, space;
	bool full = false;
	size_t len = 0;
	bip::managed_shared_memory::handle_t payload = 0;
};

struct cv_priv {
	std::string name;
	bip::managed_shared_memory *seg = nullptr;
	slot *s[2] = {nullptr, nullptr};
	unsigned char *payload[2] = {nullptr, nullptr};
};

int cv_setup(ipc_link *l)
{
	auto *p = new (std::nothrow) cv_priv;
	if (!p)
		return -ENOMEM;
	l->priv = p;
	try {
		p->name = unique_name("cv", l->size);
		bip::shared_memory_object::remove(p->name.c_str());
		p->seg = new bip::managed_shared_memory(bip::create_only, p->name.c_str(),
							 2 * l->size + 65536);
		for (int i = 0; i < 2; i++) {
			p->s[i] = p->seg->construct<slot>(bip::anonymous_instance)();
			p->payload[i] = static_cast<unsigned char *>(p->seg->allocate(l->size));
			p->s[i]->payload = p->seg->get_handle_from_address(p->payload[i]);
		}
	} catch (const std::exception &e) {
		return fail(l, "managed_shared_memory", e);
	}
	return 0;
}

int cv_attach(ipc_link *, int)
{
	return 0; // the mapping is inherited through fork()
}

void cv_detach(ipc_link *) {}

void cv_teardown(ipc_link *l)
{
	auto *p = static_cast<cv_priv *>(l->priv);
	if (!p)
		return;
	delete p->seg;
	if (!p->name.empty())
		bip::shared_memory_object::remove(p->name.c_str());
	delete p;
	l->priv = nullptr;
}

int cv_send(ipc_link *l, unsigned)
{
	auto *p = static_cast<cv_priv *>(l->priv);
	slot *s = p->s[l->side];
	bip::scoped_lock<bip::interprocess_mutex> lock(s->m);
	while (s->full) {
		(void)s->space.timed_wait(lock, tick());
		if (ipc_abort)
			return -EINTR;
	}
	std::memset(p->payload[l->side], ipc_byte(++l->tx), l->size);
	s->len = l->size;
	s->full = true;
	s->data.notify_one();
	return 0;
}

int cv_recv(ipc_link *l, unsigned)
{
	auto *p = static_cast<cv_priv *>(l->priv);
	slot *s = p->s[!l->side];
	bip::scoped_lock<bip::interprocess_mutex> lock(s->m);
	while (!s->full) {
		(void)s->data.timed_wait(lock, tick());
		if (ipc_abort)
			return -EINTR;
	}
	int err = ipc_check_all(p->payload[!l->side], s->len, l->size, ++l->rx);
	s->full = false;
	s->space.notify_one();
	return err;
}

const ipc_mech m_mq = {"boost-mq", "boost", "message_queue",
		       "Boost.Interprocess message_queue", IPC_CAP_LATENCY | IPC_CAP_STREAM, 0,
		       mq_setup, mq_attach, mq_send, mq_recv, mq_detach, mq_teardown};
const ipc_mech m_cv = {"boost-condvar", "boost", "mutex+condition",
		       "Boost.Interprocess mutex + condition", IPC_CAP_LATENCY | IPC_CAP_STREAM, 0,
		       cv_setup, cv_attach, cv_send, cv_recv, cv_detach, cv_teardown};

} // namespace

int main(int argc, char **argv)
{
	const ipc_mech *mechs[] = {&m_mq, &m_cv};
	return peer_main(argc, argv, "Boost.Interprocess 1.74 next to shmkit", mechs, 2);
}
