/* bench/peers/iceoryx — Eclipse iceoryx 2.0 through its C binding, next to shmkit in the
 * same run and the same table format (bench/peers/peer.c).
 *
 *   iceoryx-poll     loan / memset payload / publish; take / check / release, busy polling
 *   iceoryx-waitset  the same, the receiver sleeping in a WaitSet until its subscriber has
 *                    data (iceoryx's blocking mode)
 *
 * Each direction is one publisher and one subscriber (publisher: wait for the consumer,
 * subscriber: block the producer when its queue is full, so nothing is lost). Service names
 * carry our pid and the size, so runs never meet. Needs a running RouDi: bench/peers/run.sh
 * starts and stops it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iceoryx_binding_c/log.h"
#include "iceoryx_binding_c/runtime.h"
#include "iceoryx_binding_c/publisher.h"
#include "iceoryx_binding_c/subscriber.h"
#include "iceoryx_binding_c/wait_set.h"

#include "peer.h"

static pid_t main_pid;
static unsigned link_counter;

struct iox_priv {
	unsigned id;    /* distinguishes links within this run */
	iox_pub_storage_t pub_storage;
	iox_sub_storage_t sub_storage;
	iox_ws_storage_t ws_storage;
	iox_pub_t pub;
	iox_sub_t sub;
	iox_ws_t ws;
	int waitset;
};

static int runtime_ready;
static pid_t runtime_pid;  /* the process that initialized it */
static int runtime_done;   /* shut down: iceoryx cannot start it again in this process */
static int attached;       /* links attached in this process; the runtime goes with the last */

static int iox_setup(struct ipc_link *l)
{
	struct iox_priv *p = calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->id = link_counter++;
	p->waitset = strcmp(l->mech->mode, "waitset") == 0;
	l->priv = p;
	return 0;
}

static int iox_attach(struct ipc_link *l, int side)
{
	struct iox_priv *p = l->priv;
	if (runtime_done || (runtime_ready && runtime_pid != getpid())) {
		/* A retry in the same process, or a child forked after its parent started the
		 * runtime: the runtime is a per-process singleton that fork() copies. */
		snprintf(l->err, sizeof l->err, "iceoryx runtime cannot be restarted in this process");
		return -EPROTO;
	}
	attached++;
	if (!runtime_ready) {
		/* Quiet: its debug lines, and the "mempool has no more space" errors that a
		 * producer outpacing the consumer triggers (loan then fails and is retried),
		 * would bury the table. Real failures come back as return values. */
		iox_set_loglevel(Iceoryx_LogLevel_Off);
		char name[64];
		snprintf(name, sizeof name, "shmkit-bench-%d", (int)getpid());
		iox_runtime_init(name);
		runtime_ready = 1;
		runtime_pid = getpid();
	}
	char instance[64];
	snprintf(instance, sizeof instance, "run%d-%zu-%u", (int)main_pid, l->size, p->id);
	const char *out = side == IPC_SIDE_A ? "ab" : "ba", *in = side == IPC_SIDE_A ? "ba" : "ab";

	iox_pub_options_t po;
	iox_pub_options_init(&po);
	po.historyCapacity = 0;
	po.subscriberTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	p->pub = iox_pub_init(&p->pub_storage, "shmkit-bench", instance, out, &po);

	iox_sub_options_t so;
	iox_sub_options_init(&so);
	so.queueCapacity = 256;
	so.historyRequest = 0;
	so.queueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	p->sub = iox_sub_init(&p->sub_storage, "shmkit-bench", instance, in, &so);
	if (!p->pub || !p->sub) {
		snprintf(l->err, sizeof l->err, "iox_pub_init/iox_sub_init failed");
		return -EIO;
	}
	if (p->waitset) {
		p->ws = iox_ws_init(&p->ws_storage);
		if (iox_ws_attach_subscriber_state(p->ws, p->sub, SubscriberState_HAS_DATA, 0, NULL) !=
		    WaitSetResult_SUCCESS) {
			snprintf(l->err, sizeof l->err, "iox_ws_attach_subscriber_state failed");
			return -EIO;
		}
	}
	/* Discovery is asynchronous (RouDi's loop): wait until both ends are connected. */
	for (int i = 0; i < 10000; i++) {
		if (iox_pub_has_subscribers(p->pub) &&
		    iox_sub_get_subscription_state(p->sub) == SubscribeState_SUBSCRIBED)
			return 0;
		if (ipc_abort)
			return -EINTR;
		usleep(1000);
	}
	snprintf(l->err, sizeof l->err, "publisher/subscriber did not connect in 10 s (is RouDi running?)");
	return -ETIMEDOUT;
}

static void iox_detach(struct ipc_link *l)
{
	struct iox_priv *p = l->priv;
	if (p->ws) {
		iox_ws_detach_subscriber_state(p->ws, p->sub, SubscriberState_HAS_DATA);
		iox_ws_deinit(p->ws);
		p->ws = NULL;
	}
	if (p->sub) {
		iox_sub_deinit(p->sub);
		p->sub = NULL;
	}
	if (p->pub) {
		iox_pub_deinit(p->pub);
		p->pub = NULL;
	}
	/* Deregister from RouDi (it removes our socket and lock file in /tmp) before the
	 * process leaves with _exit(). */
	if (--attached == 0 && runtime_ready && runtime_pid == getpid()) {
		iox_runtime_shutdown();
		runtime_ready = 0;
		runtime_done = 1;
	}
}

static void iox_teardown(struct ipc_link *l)
{
	free(l->priv);
	l->priv = NULL;
}

static int iox_send(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct iox_priv *p = l->priv;
	void *chunk = NULL;
	uint32_t spins = 0;
	for (;;) {
		enum iox_AllocationResult r = iox_pub_loan_chunk(p->pub, &chunk, (uint32_t)l->size);
		if (r == AllocationResult_SUCCESS)
			break;
		if (r != AllocationResult_RUNNING_OUT_OF_CHUNKS) {
			snprintf(l->err, sizeof l->err, "iox_pub_loan_chunk: %d", (int)r);
			return -ENOMEM;
		}
		if (ipc_spin_pause(&spins))
			return -EINTR;
	}
	memset(chunk, ipc_byte(++l->tx), l->size);
	iox_pub_publish_chunk(p->pub, chunk);
	return 0;
}

static int iox_recv(struct ipc_link *l, unsigned flags)
{
	(void)flags;
	struct iox_priv *p = l->priv;
	const void *chunk = NULL;
	uint32_t spins = 0;
	for (;;) {
		enum iox_ChunkReceiveResult r = iox_sub_take_chunk(p->sub, &chunk);
		if (r == ChunkReceiveResult_SUCCESS)
			break;
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return -EIO;
		if (ipc_abort)
			return -EINTR;
		if (p->waitset) {
			iox_notification_info_t info[1];
			uint64_t missed = 0;
			struct timespec tick = {0, 100000000};
			(void)iox_ws_timed_wait(p->ws, tick, info, 1, &missed);
		} else if (ipc_spin_pause(&spins)) {
			return -EINTR;
		}
	}
	int err = ipc_check_all(chunk, l->size, l->size, ++l->rx);
	iox_sub_release_chunk(p->sub, chunk);
	return err;
}

static const struct ipc_mech m_poll = {
	"iceoryx-poll", "iceoryx", "poll", "iceoryx 2.0 (C binding), polling",
	IPC_CAP_LATENCY | IPC_CAP_STREAM, 0,
	iox_setup, iox_attach, iox_send, iox_recv, iox_detach, iox_teardown};
static const struct ipc_mech m_waitset = {
	"iceoryx-waitset", "iceoryx", "waitset", "iceoryx 2.0 (C binding), waitset",
	IPC_CAP_LATENCY | IPC_CAP_STREAM, 0,
	iox_setup, iox_attach, iox_send, iox_recv, iox_detach, iox_teardown};

int main(int argc, char **argv)
{
	main_pid = getpid();
	const struct ipc_mech *mechs[] = {&m_poll, &m_waitset};
	return peer_main(argc, argv, "iceoryx 2.0 next to shmkit", mechs, 2);
}
