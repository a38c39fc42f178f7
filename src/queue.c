/* shmkit — bounded many-producer / many-consumer work queue (include/shmkit/queue.h).
 *
 * Layout of the segment's data area (offsets from shmkit_segment_data()):
 *
 *   offset size  field                          written by
 *        0    8  magic "shmkque1"               creator, before the segment is published
 *        8    4  version (3)                    creator
 *       12    4  max_members                    creator
 *       16    8  nslots (a power of two)        creator
 *       24    8  slot_size (stride)             creator: 16 + max_msg rounded up to 64
 *       32    8  max_msg                        creator
 *       40    8  members_offset (1024)          creator
 *       48    8  slots_offset                   creator: 1024 + 128 × max_members
 *       56    8  preg: generation << 32 | count  a handle's first produce, its close or
 *                of producers (the lease)         death (read by every claim)
 *       64    8  creg: the same for consumers
 *      128    8  enqueue_pos                    producers (CAS) — a hint, see below
 *      256    8  dequeue_pos                    consumers (CAS) — a hint
 *      384   16  data queue: gen, sleepers,     consumers sleep, producers wake
 *                fenced (src/waitq_internal.h)
 *      512   16  space queue (same fields)      producers sleep, consumers wake
 *      640   72  totals: sent, bytes_sent, recv, bytes_recv, producer sleeps, consumer
 *                sleeps, redelivered, skipped, recovered members         (fetch_add, rare)
 *     1024  128  member entry 0, 1, ... max_members-1:
 *                   0  8  owner   pid << 32 | start, 0 = free   (CAS: attacher, closer)
 *                   8 56  sent, bytes_sent, recv, bytes_recv, producer sleeps, consumer
 *                         sleeps, wakes                                 the member only
 *                  64  8  lease: QL_* bits, acknowledged generations    the member; a
 *                         (the lease, below)                 reaper or successor once dead
 *   slots_offset  slot_size × nslots, each:
 *                   0  8  word    position << 13 | member << 3 | state
 *                   8  4  len     payload bytes (written by the producer holding the slot)
 *                  12  4  zero
 *                  16     payload (max_msg bytes)
 *
 * Slot words. The slot for position p is slot p & (nslots - 1). Its word holds the
 * position it is at (51 bits, compared modulo 2^51), a state, and — while a handle holds
 * it — that handle's member index:
 *
 *   EMPTY@p ──producer CAS──▶ WRITING@p,m ──commit──▶ FULL@p ──consumer CAS──▶ READING@p,m
 *                                 │ (m died)             ▲                       │ │ release
 *                                 ▼                      └───(m died: repair)────┘ ▼
 *                              SKIP@p ──consumer CAS──────────────────▶ EMPTY@(p + nslots)
 *
 * Protocol. The claim is the CAS on the slot word, which records the claimer's member
 * index in the same atomic step: there is no moment where a slot is taken but nobody can
 * be named for it. A producer starts at enqueue_pos (a hint) and reads that slot's word
 * (acquire, QUEUE-A1, pairing with a consumer's release QUEUE-R2 so its reads of the old message
 * are done): EMPTY at that position → CAS to WRITING (the claim), then move the hint past it
 * with a plain store; claimed by someone else at that position, or already at a later one
 * → probe the next position privately (a loser costs a read, not a locked operation on
 * the hint's hot line); an earlier position (the previous lap not consumed yet) → full.
 * It writes the payload and len, then stores FULL (QUEUE-R1, release). Consumers mirror this
 * with dequeue_pos, FULL → READING (QUEUE-A2, pairing with QUEUE-R1), and release with EMPTY at
 * position + nslots (QUEUE-R2, release). The positions are only hints — racing stores may even
 * move them back a little — that make the common case one probe: correctness rests on the
 * slot words alone. Batches claim adjacent slots one CAS each and move the hint once.
 *
 * The lease: a sole producer (consumer) claims with plain stores. The CAS is there only
 * because another producer might claim the same slot; when a queue has one producer, its
 * locked instruction is pure cost (64 B one-way msg/s / the stream channel's: median 0.75
 * with it, 0.96 without, on the 2-vCPU EPYC VM with its vCPUs far apart). Each kind keeps a count of the handles
 * that claim as it (preg, creg: a handle counts itself at its first claim of the kind, gives
 * it back at close; a dead one's is given back by whoever finds it dead). A claim is fast
 * when the count is 1 — ours:
 *
 *   sole claimer (lease_enter, src/queue_impl.h)   joiner (shmkit__queue_lease_join)
 *   LEASE-S1  word |= F (relaxed)                  LEASE-S2  count += 1 (seq_cst RMW)
 *   LEASE-L1  count == 1 ? (relaxed)                          then our counted bit
 *             yes: claim with plain stores         LEASE-B1  membarrier(GLOBAL_EXPEDITED)
 *   LEASE-R1  word &= ~F (release)                 LEASE-A1  every counted member's word
 *             no: CAS, and LEASE-R2: word = no F,            (acquire) until none shows F
 *                 ack = the generation seen                  (a dead one: given back)
 *
 * Dekker's pattern again, asymmetric like the sleep/wake handshake: take the point where
 * the sole claimer's CPU runs the barrier of LEASE-B1 (every CPU running a registered
 * process's thread runs one; a thread not running passes a context switch). If LEASE-S1
 * came before it, the joiner's LEASE-A1 sees F and waits for LEASE-R1, whose release
 * orders the plain stores of that claim before the joiner's first claim (which then sees
 * the slot taken). If LEASE-S1 came after it, LEASE-L1 comes after it too, hence after the
 * joiner's increment: the count is 2, the claim is a CAS. Either way no slot is claimed by
 * a plain store and a CAS at once. So only handles whose process is registered for
 * membarrier (QL_CAP) ever claim fast, and nothing is added to the publish path.
 *   A joiner whose process cannot issue the membarrier (seccomp refusing it; or
 * SHMKIT_NO_MEMBARRIER=2, the test hook) waits instead until every counted QL_CAP member
 * acknowledged a generation at least its own (LEASE-R2, written at that member's next
 * claim: it saw the count of 2, and every claim after it will). A member's QL_CAP is
 * stored and fenced (LEASE-F1) at attach, before its first claim, so a joiner that reads
 * no QL_CAP knows that member's first LEASE-L1 sees its count. The price: such a joiner
 * waits for the sole claimer's next claim (a blocking call waits until its deadline).
 *   The counts only err high: a handle counts itself before it sets its bit, and a reaper
 * gives back only what a bit says, holding the dead entry's owner word meanwhile; a kill
 * between the count and the bit leaves the count one too high (the fast path off for good
 * on that queue), never too low (two fast claimers). A scribbled count or word can make
 * claims slow or a joiner wait (until its deadline), like any scribble.
 *   A request/response loop keeps the CAS on both sides: a consumer that waited for its
 * message and has produced since its previous claim, and the first produce after a
 * consumer claim that waited (the reply). A plain store is still pending in the store
 * buffer when the thread goes on to write, and what it writes next commits behind it:
 * measured on the 2-vCPU VM, 64 B queue round trips of 790 -> 900 ns with plain consumer
 * claims, and at times ~1.0 us against 0.8 us with plain producer claims (at other times
 * 0.21 against 0.25 us: the effect depends on where the VM's vCPUs sit). With the CAS a
 * round trip runs exactly the code it ran before the lease; streams, pipelines working
 * through a backlog, and any thread that only produces or only consumes get the plain
 * stores.
 *
 * Waiting: the sleep/wake handshake of src/waitq_internal.h. The release stores QUEUE-R1/QUEUE-R2
 * are its stores; the barrier is on the sleeper's side (membarrier), so publishing needs no
 * fence.
 *
 * When a process dies. Its member entry keeps its owner word, which now names a dead
 * process, and every slot it held still carries its member index:
 *   WRITING@p,m   (died mid-loan) → SKIP@p: consumers step over it (counted as skipped);
 *   READING@p,m   (died mid-take) → FULL@p again, in place (a CAS: one repairer wins),
 *                 and dequeue_pos — only a hint — is moved back to p, so the next consumer
 *                 takes it; consumers then step over the positions already taken
 *                 (counted as redelivered). In place, the repair needs no free slot: it
 *                 works even when the queue is full and this very slot is what blocks the
 *                 producers.
 * Repairs happen in a blocked call every 100 ms of its wait — woken or not: a waiter stuck
 * behind a dead holder is still woken by the traffic around that slot — in a waitset's
 * liveness check (src/wait.c), in shmkit_queue_recover(), and when a process takes over a
 * dead process's member entry (it adopts any claim still tagged with that index and
 * repairs it; its own counters are folded into the totals). A live
 * handle's claims are never touched: liveness is pid + start time, so a recycled pid does
 * not pass for the dead holder. A sleeper killed while counted costs wakers a needless
 * FUTEX_WAKE, nothing more.
 *
 * Hostile peers: every word is decoded and checked (state, member index < max_members,
 * position), every length against max_msg, every loop bounded; garbage yields -EBADMSG,
 * a skipped or dropped message, or a wait until the deadline.
 */

/* The code is split by concern (the hot path, repair): the list of files is at the top of
 * src/queue_impl.h. */
#include <sched.h>

#include "queue_impl.h"

/* --- statistics ----------------------------------------------------------------------------- */

/* Adds a member's counters to the totals and zeroes them (the caller owns the entry). */
static void fold_member(struct q_ctl *c, struct q_member *m)
{
	struct q_totals *t = &c->totals;
	/* Relaxed: statistics. */
#define FOLD(from, to)                                                                 \
	do {                                                                           \
		total_add(&t->to, atomic_load_explicit(&m->from, memory_order_relaxed)); \
		pub_stat(&m->from, 0);                                                 \
	} while (0)
	FOLD(sent, sent);
	FOLD(bytes_sent, bytes_sent);
	FOLD(recv, recv);
	FOLD(bytes_recv, bytes_recv);
	FOLD(psleeps, psleeps);
	FOLD(csleeps, csleeps);
	pub_stat(&m->wakes, 0);
#undef FOLD
}

/* --- the lease ------------------------------------------------------------------------------- */

/* Takes one registration back from the count of kind k (its handle closed or died). Never
 * below zero, so a scribbled count cannot borrow from the generation. seq_cst: a count
 * change is the store of the join handshake (a joiner may be counting on it). */
static void lease_dec(struct q_ctl *c, int k)
{
	_Atomic uint64_t *reg = k ? &c->creg : &c->preg;
	uint64_t r = atomic_load_explicit(reg, memory_order_relaxed);
	/* Bounded: a peer rewriting the word non-stop leaves it high (claims stay CASes). */
	for (int i = 0; i < 64 && (uint32_t)r != 0; i++)
		if (atomic_compare_exchange_weak_explicit(reg, &r, r - 1, memory_order_seq_cst,
							  memory_order_relaxed))
			return;
}

/* Gives back the registrations a member word `w` holds, once: the caller swapped it for 0
 * while holding the entry (its owner, or a reaper holding the owner word). */
static void lease_give_back(struct q_ctl *c, uint64_t w)
{
	if (w & QL_P)
		lease_dec(c, 0);
	if (w & QL_C)
		lease_dec(c, 1);
}

/* Gives back the registrations of entry i, whose owner word `o` names a dead process.
 * The entry's owner word is the lock: we swap it for ours, clear the lease word, and put
 * the dead owner's word back (so takeover and slot repair see the entry as before). A
 * successor or another reaper that got there first makes our swap fail; without the lock
 * a reaper stalled between its liveness check and a CAS on the lease word could clear the
 * word of a successor that happened to store the same bits (ABA) and take back a count
 * that is not the dead one's — two fast claimers. */
static void lease_reap_one(const struct shmkit_queue *q, uint32_t i, uint64_t o)
{
	_Atomic uint64_t *owner = &q->members[i].owner;
	/* acq_rel: acquire orders our lease access after the dead owner's last stores. */
	if (o == 0 || !atomic_compare_exchange_strong_explicit(owner, &o, q->me,
							       memory_order_acq_rel,
							       memory_order_relaxed))
		return;
	lease_give_back(q->ctl,
			atomic_exchange_explicit(&q->members[i].lease, 0, memory_order_acq_rel));
	uint64_t me = q->me;
	/* Release: a successor's acquire (its claim of the entry) sees the cleared word. */
	atomic_compare_exchange_strong_explicit(owner, &me, o, memory_order_release,
						memory_order_relaxed);
}

void shmkit__queue_lease_reap(const struct shmkit_queue *q)
{
	for (uint32_t i = 0; i < q->max_members; i++) {
		if (i == q->idx && !q->observer)
			continue;
		/* Relaxed: lease_reap_one() takes the entry's owner word before it acts. */
		uint64_t w = atomic_load_explicit(&q->members[i].lease, memory_order_relaxed);
		if (!(w & (QL_P | QL_C)))
			continue;
		uint64_t o = atomic_load_explicit(&q->members[i].owner, memory_order_relaxed);
		if (o != 0 && shmkit__owner_state(o) < 0)
			lease_reap_one(q, i, o);
	}
}

void shmkit__queue_lease_ack(struct shmkit_queue *q, int k, uint64_t r)
{
	uint64_t sh = QL_ACK_SHIFT(k);
	q->lease = (q->lease & ~(QL_ACK_MASK << sh)) | ((r >> 32) & QL_ACK_MASK) << sh;
	/* LEASE-R2: out of the fast path, and the generation seen (for a joiner that could not
	 * run the membarrier); release: our earlier fast claims are ordered before it. */
	atomic_store_explicit(&q->mine->lease, q->lease, memory_order_release);
}

/* Whether the member word `w` of another handle still keeps our join (kind k) waiting:
 * it may be inside a fast claim (LEASE-S1 seen, LEASE-R1 not yet) or — when we could not
 * run the membarrier — it has not yet acknowledged a generation at least ours. */
static bool lease_blocks(const struct shmkit_queue *q, int k, uint64_t w)
{
	if (!(w & (k ? QL_C : QL_P)) || !(w & QL_CAP))
		return false; /* not counted, or never fast */
	if (w & ql_f(k))
		return true;
	if (q->join_mb[k])
		return false;
	uint64_t ack = w >> QL_ACK_SHIFT(k) & QL_ACK_MASK;
	return ((ack - q->join_gen[k]) & QL_ACK_MASK) >= (1ull << (QL_ACK_BITS - 1));
}

/* The join of kind k is complete: how this handle claims from now on. */
static void lease_joined(struct shmkit_queue *q, int k)
{
	q->lmode[k] = q->lease & QL_CAP ? QM_LEASE : QM_CAS;
}

/* Joins kind k (0 producer, 1 consumer) on this handle's first claim of it — the slow side
 * of the lease handshake (the argument is at the top of this file):
 *   LEASE-S2  count += 1 (seq_cst RMW), then our bit in our word;
 *   LEASE-B1  MEMBARRIER_CMD_GLOBAL_EXPEDITED when the count was not 0;
 *   LEASE-A1  every other counted member's word (acquire), until none is in a fast claim
 *             (or, without the membarrier, until each acknowledged our generation); a dead
 *             member's registration is given back on the way.
 * Returns 0, or -EAGAIN while a member still blocks the join (the next call goes on
 * waiting: a loan or peek that returns -EAGAIN is simply retried). */
int shmkit__queue_lease_join(struct shmkit_queue *q, int k)
{
	uint64_t bit = k ? QL_C : QL_P;
	if (!(q->lease & bit)) {
		/* Dead members' registrations first: one left counted keeps the fast path off. */
		shmkit__queue_lease_reap(q);
		/* LEASE-S2: the count first, then our bit: a reaper gives back only what a bit
		 * says, so a kill between the two leaves the count one too high (the fast path
		 * off for good on this queue), never too low (two claimers each thinking it is
		 * alone). seq_cst: ordered before the membarrier or, without it, before our
		 * loads below (Dekker with the members' LEASE-F1 at attach). */
		uint64_t old = atomic_fetch_add_explicit(ql_reg(q, k), 1 | 1ull << 32,
							 memory_order_seq_cst);
		q->lease |= bit;
		/* Release: a closer or reaper that reads the bit sees the count it stands for. */
		atomic_store_explicit(&q->mine->lease, q->lease, memory_order_release);
		q->join_gen[k] = (uint32_t)((old >> 32) + 1) & QL_ACK_MASK;
		if ((uint32_t)old == 0) {
			lease_joined(q, k);
			return 0; /* nobody else counted: nobody can be in a fast claim */
		}
		/* LEASE-B1. Refused (seccomp) or missing: wait for acknowledgements instead. */
		q->join_mb[k] = shmkit__membarrier_global();
		if (!q->join_mb[k])
			shmkit__fence_seq_cst();
	}
	for (unsigned spin = 1; spin <= 4096; spin++) {
		bool clear = true;
		for (uint32_t i = 0; i < q->max_members && clear; i++) {
			if (i == q->idx)
				continue;
			/* LEASE-A1: pairs with LEASE-R1 / LEASE-R2 (the member's claims are then
			 * visible to our first claim). */
			uint64_t w = atomic_load_explicit(&q->members[i].lease, memory_order_acquire);
			if (!lease_blocks(q, k, w))
				continue;
			/* A member stays in a fast claim for a few instructions: look at /proc
			 * only when one seems to hold on. A dead one (or a free entry, which only
			 * a scribbler marks) claims nothing more: not a reason to wait; a dead
			 * one's registrations go back. */
			if (spin % 256 == 0) {
				uint64_t o = atomic_load_explicit(&q->members[i].owner,
								  memory_order_relaxed);
				if (o == 0 || shmkit__owner_state(o) < 0) {
					lease_reap_one(q, i, o);
					continue;
				}
			}
			clear = false;
		}
		if (clear) {
			lease_joined(q, k);
			return 0;
		}
		shmkit__cpu_relax();
		if (spin % 64 == 0)
			sched_yield();
	}
	return -EAGAIN;
}

/* --- creation and attachment ------------------------------------------------------------- */

static int attach_member(struct shmkit_queue *q)
{
	/* A free entry, else a dead process's (src/object.h); acquire orders our use after
	 * the previous holder's release. */
	bool dead;
	int i = shmkit__role_claim_slot(&q->members[0].owner, sizeof q->members[0],
					q->max_members, q->me, &dead);
	if (i < 0)
		return i;
	q->idx = (uint32_t)i;
	q->mine = &q->members[i];
	fold_member(q->ctl, q->mine);
	/* The entry's lease word: a dead predecessor's registrations go back (we hold the
	 * entry: a reaper would have had to take its owner word first); then ours. LEASE-F1:
	 * a member that may take the fast path says so, then fences, before its first claim,
	 * so that a joiner which could not run the membarrier and reads no QL_CAP here knows
	 * our first LEASE-L1 will see its count (Dekker: its seq_cst RMW and fence, our store
	 * and fence). */
	lease_give_back(q->ctl, atomic_exchange_explicit(&q->mine->lease, 0, memory_order_acq_rel));
	q->lease = q->wq.asym ? QL_CAP : 0;
	if (q->lease) {
		atomic_store_explicit(&q->mine->lease, q->lease, memory_order_relaxed);
		shmkit__fence_seq_cst(); /* LEASE-F1 */
	}
	if (dead) {
		/* Took a dead process's entry: its claims carry our index now. */
		total_add(&q->ctl->totals.recovered, 1);
		shmkit__queue_sweep(q, true);
	}
	return 0;
}

static int q_attach(struct shmkit_queue *q)
{
	struct q_ctl *c = q->ctl;
	size_t seg_size = shmkit_segment_size(q->seg);
	if (seg_size < sizeof(struct q_ctl))
		return -EBADMSG;
	/* Written before the segment was published; copied once into locals. */
	uint64_t magic = c->magic, n = c->nslots, stride = c->slot_size, max_msg = c->max_msg,
		 moff = c->members_offset, soff = c->slots_offset;
	uint32_t version = c->version, members = c->max_members;
	int err = shmkit__layout_check(magic, Q_MAGIC, version, Q_VERSION);
	if (err)
		return err;
	if (n < 2 || n > SHMKIT_QUEUE_MAX_SLOTS || (n & (n - 1)) || max_msg == 0 ||
	    max_msg > SHMKIT_QUEUE_MAX_MSG || stride != ((Q_SLOT_HDR + max_msg + 63) & ~63ull) ||
	    members == 0 || members > SHMKIT_QUEUE_MAX_MEMBERS || moff != Q_MEMBERS_OFF ||
	    soff != Q_MEMBERS_OFF + (uint64_t)Q_MEMBER_SIZE * members || soff > seg_size ||
	    n * stride > seg_size - soff)
		return -EBADMSG;
	q->nslots = n;
	q->mask = n - 1;
	q->stride = stride;
	q->max_msg = max_msg;
	q->max_members = members;
	q->members = (struct q_member *)(void *)((uint8_t *)c + moff);
	q->slots = (uint8_t *)c + soff;
	if (q->observer)
		return 0;
	/* Before our first sleep or wake. */
	shmkit__wq_attach(&q->wq, q->seg,
			  (struct shmkit__waitq *const[]){&q->ctl->data_q, &q->ctl->space_q}, 2);
	return attach_member(q);
}

static int q_alloc(struct shmkit_segment *seg, const struct shmkit_queue_opts *o,
		   struct shmkit_queue **qp)
{
	struct shmkit_queue *q = calloc(1, sizeof *q);
	if (!q)
		return -ENOMEM;
	q->seg = seg;
	q->ctl = shmkit_segment_data(seg);
	q->me = shmkit__self_owner();
	q->observer = shmkit__opts_rdonly(o ? &o->seg : NULL); /* read-only: no member entry */
	shmkit__spin_init(&q->spin, o ? o->spin_ns : 0, o && (o->flags & SHMKIT_QUEUE_NO_SPIN));
	*qp = q;
	return 0;
}

static int open_seg(struct shmkit_segment *seg, const struct shmkit_queue_opts *o,
		    struct shmkit_queue **qp, bool unlink_on_error)
{
	struct shmkit_queue *q;
	int err = q_alloc(seg, o, &q);
	if (!err) {
		err = q_attach(q);
		if (err)
			free(q);
	}
	if (err)
		return shmkit__segment_abandon(seg, unlink_on_error, err);
	*qp = q;
	return 0;
}

#define Q_OPT_FLAGS SHMKIT_QUEUE_NO_SPIN

SHMKIT__SYMVER_DEFAULT(shmkit__queue_create, shmkit_queue_create, SHMKIT_0.2);
int shmkit__queue_create(const char *name, const struct shmkit_queue_opts *opts,
			 struct shmkit_queue **qp)
{
	if (!qp)
		return -EINVAL;
	*qp = NULL;
	static const struct shmkit_queue_opts defaults;
	const struct shmkit_queue_opts *o = opts ? opts : &defaults;
	/* A creator attaches as a member: read-only makes no sense (segment create refuses
	 * SHMKIT_SEG_RDONLY too). */
	if (shmkit__opts_check(o->flags, Q_OPT_FLAGS, o->reserved, 4) || shmkit__opts_rdonly(&o->seg))
		return -EINVAL;
	uint64_t n = o->slots ? o->slots : SHMKIT_QUEUE_DEFAULT_SLOTS;
	uint64_t max_msg = o->max_msg ? o->max_msg : SHMKIT_QUEUE_DEFAULT_MAX_MSG;
	uint32_t members = o->max_members ? o->max_members : SHMKIT_QUEUE_DEFAULT_MEMBERS;
	if (n > SHMKIT_QUEUE_MAX_SLOTS || max_msg > SHMKIT_QUEUE_MAX_MSG ||
	    members > SHMKIT_QUEUE_MAX_MEMBERS)
		return -EINVAL;
	n = shmkit__next_pow2(n, 2, SHMKIT_QUEUE_MAX_SLOTS);
	uint64_t stride = (Q_SLOT_HDR + max_msg + 63) & ~63ull;
	uint64_t soff = Q_MEMBERS_OFF + (uint64_t)Q_MEMBER_SIZE * members;

	struct shmkit_segment *seg;
	int err = shmkit__object_create(name, SHMKIT_KIND_QUEUE, soff + n * stride, &o->seg, &seg);
	if (err)
		return err;
	struct q_ctl *c = shmkit_segment_data(seg);
	c->magic = Q_MAGIC;
	c->version = Q_VERSION;
	c->max_members = members;
	c->nslots = n;
	c->slot_size = stride;
	c->max_msg = max_msg;
	c->members_offset = Q_MEMBERS_OFF;
	c->slots_offset = soff;
	uint8_t *slots = (uint8_t *)c + soff;
	for (uint64_t i = 0; i < n; i++) {
		/* Relaxed: before publication; shmkit_segment_publish() releases it. */
		atomic_store_explicit(&((struct q_slot *)(void *)(slots + i * stride))->word,
				      qw(i, 0, S_EMPTY), memory_order_relaxed);
	}
	shmkit_segment_publish(seg);
	return open_seg(seg, o, qp, true);
}

/* What shmkit_queue_open() and shmkit_queue_open_fd() share. */
static int q_open(const struct shmkit__seg_src *src, const struct shmkit_queue_opts *opts,
		  struct shmkit_queue **qp)
{
	if (!qp)
		return -EINVAL;
	*qp = NULL;
	int err = opts ? shmkit__opts_check(opts->flags, Q_OPT_FLAGS, opts->reserved, 4) : 0;
	struct shmkit_segment *seg;
	if (!err)
		err = shmkit__object_open(src, SHMKIT_KIND_QUEUE, Q_MEMBERS_OFF,
					  opts ? &opts->seg : NULL, &seg);
	return err ? err : open_seg(seg, opts, qp, false);
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_open, shmkit_queue_open, SHMKIT_0.2);
int shmkit__queue_open(const char *name, const struct shmkit_queue_opts *opts,
		       struct shmkit_queue **qp)
{
	return q_open(&(struct shmkit__seg_src){.name = name}, opts, qp);
}

SHMKIT__SYMVER_DEFAULT(shmkit__queue_open_fd, shmkit_queue_open_fd, SHMKIT_0.2);
int shmkit__queue_open_fd(int fd, const struct shmkit_queue_opts *opts, struct shmkit_queue **qp)
{
	return q_open(&(struct shmkit__seg_src){.fd = fd, .by_fd = true}, opts, qp);
}

/* --- lifetime and state ----------------------------------------------------------------------- */

int shmkit_queue_close(struct shmkit_queue *q)
{
	if (!q)
		return 0;
	if (q->loaned)
		shmkit_queue_cancel(q);
	if (q->peeked)
		shmkit_queue_release(q);
	if (!q->observer) {
		fold_member(q->ctl, q->mine);
		/* Our registrations go back; acq_rel: our claims are done before a joiner
		 * waiting on the word sees it cleared. */
		lease_give_back(q->ctl,
				atomic_exchange_explicit(&q->mine->lease, 0, memory_order_acq_rel));
		/* Release: the next holder of the entry sees our final counters (zeroed). */
		shmkit__role_release(&q->mine->owner, q->me);
	}
	shmkit_segment_close(q->seg);
	free(q);
	return 0;
}

int shmkit_queue_unlink(struct shmkit_queue *q)
{
	return shmkit__object_unlink(q ? q->seg : NULL);
}

struct shmkit_segment *shmkit_queue_segment(const struct shmkit_queue *q)
{
	return q ? q->seg : NULL;
}

size_t shmkit_queue_max_msg(const struct shmkit_queue *q)
{
	return q ? (size_t)q->max_msg : 0;
}

int shmkit_queue_stats(const struct shmkit_queue *q, struct shmkit_queue_stats *st)
{
	if (!q || !st)
		return -EINVAL;
	struct q_ctl *c = q->ctl;
	memset(st, 0, sizeof *st);
	/* Relaxed throughout: a statistics snapshot. */
#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
	st->slots = q->nslots;
	st->slot_size = q->stride;
	st->max_msg = q->max_msg;
	st->max_members = q->max_members;
	uint64_t e = LD(c->enqueue_pos), d = LD(c->dequeue_pos);
	st->fill = e - d <= q->nslots ? e - d : 0;
	st->msgs_sent = LD(c->totals.sent);
	st->bytes_sent = LD(c->totals.bytes_sent);
	st->msgs_recv = LD(c->totals.recv);
	st->bytes_recv = LD(c->totals.bytes_recv);
	st->producer_sleeps = LD(c->totals.psleeps);
	st->consumer_sleeps = LD(c->totals.csleeps);
	st->redelivered = LD(c->totals.redelivered);
	st->skipped = LD(c->totals.skipped);
	st->recovered_members = LD(c->totals.recovered);
	for (uint32_t i = 0; i < q->max_members; i++) {
		struct q_member *m = &q->members[i];
		uint64_t w = LD(m->owner);
		if (w == 0)
			continue;
		if (shmkit__owner_state(w) > 0)
			st->members++;
		st->msgs_sent += LD(m->sent);
		st->bytes_sent += LD(m->bytes_sent);
		st->msgs_recv += LD(m->recv);
		st->bytes_recv += LD(m->bytes_recv);
		st->producer_sleeps += LD(m->psleeps);
		st->consumer_sleeps += LD(m->csleeps);
		st->wakes += LD(m->wakes);
	}
#undef LD
	return 0;
}

/* --- waitset hooks (src/wait.c) ------------------------------------------------------------ */

static unsigned watch_poll(const void *src, bool sc)
{
	/* Shared words only: dequeue_pos and the slot words from there. */
	return shmkit__queue_probe(src, true, sc) ? SHMKIT_WAIT_READABLE : 0;
}

static int watch_peer_dead(const void *src)
{
	(void)src;
	return 0; /* a queue has no single peer to report dead */
}

/* The waitset's liveness check, from any thread: a waitset member blocked behind a dead
 * holder's slot would otherwise wait for some other handle's blocked call to repair it.
 * Never our own claims (their state belongs to the handle's thread), and the wake is not
 * counted (the counters are the handle's too). */
static int watch_repair(const void *src)
{
	const struct shmkit_queue *q = src;
	int n = shmkit__queue_sweep_slots(q, SWEEP_OTHERS);
	if (n > 0)
		shmkit__waitq_wake(&q->ctl->data_q, n);
	return n;
}

int shmkit__queue_watch(const struct shmkit_queue *q, struct shmkit__watch *w)
{
	if (q->observer)
		return -EPERM;
	w->gen = &q->ctl->data_q.gen;
	w->sleepers = &q->ctl->data_q.sleepers;
	w->poll = watch_poll;
	w->peer_dead = watch_peer_dead;
	w->repair = watch_repair;
	w->src = q;
	w->wq = &q->wq;
	return 0;
}
