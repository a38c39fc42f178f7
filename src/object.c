/* shmkit — the lifecycle every kind shares: options, create/open, layout identity, roles,
 * unlink (see src/object.h). Holds no shared layout of its own: the role words it claims
 * live in the kinds' control blocks, whose byte tables name them. */
#include <errno.h>

#include "object.h"
#include "waitq_internal.h"

/* A role word is contended only while processes attach at the same moment; the bound keeps
 * a scribbled word that changes under every CAS from spinning us forever. */
#define ROLE_TRIES 100

int shmkit__opts_check(uint32_t flags, uint32_t known, const uint64_t *reserved, size_t n)
{
	if (flags & ~known)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (reserved[i])
			return -EINVAL;
	return 0;
}

bool shmkit__opts_rdonly(const struct shmkit_segment_opts *seg)
{
	return seg && (seg->flags & SHMKIT_SEG_RDONLY);
}

int shmkit__role_check(int role, const struct shmkit_segment_opts *seg, bool create)
{
	bool rdonly = shmkit__opts_rdonly(seg);
	if (role < 0 || role > 2 || (create && (role == 0 || rdonly)))
		return -EINVAL;
	return (role == 0) == rdonly ? 0 : -EINVAL;
}

uint64_t shmkit__next_pow2(uint64_t v, uint64_t min, uint64_t max)
{
	uint64_t p = min;
	while (p < v && p < max)
		p <<= 1;
	return p;
}

/* The kind a caller's segment options may name: none (0) or the object's own. */
static int kind_ok(const struct shmkit_segment_opts *user, uint32_t kind)
{
	return user && user->kind && user->kind != kind ? -EINVAL : 0;
}

int shmkit__object_create(const char *name, uint32_t kind, uint64_t size,
			  const struct shmkit_segment_opts *user, struct shmkit_segment **segp)
{
	int err = kind_ok(user, kind);
	if (err)
		return err;
	struct shmkit_segment_opts so = {0};
	if (user)
		so = *user;
	so.kind = kind;
	/* Published by the caller once the control block is written (release), so that an
	 * opener never sees it half-built. */
	so.flags |= SHMKIT_SEG_DEFER_READY;
	return shmkit_segment_create(name, size, &so, segp);
}

int shmkit__object_open(const struct shmkit__seg_src *src, uint32_t kind, uint64_t min_size,
			const struct shmkit_segment_opts *user, struct shmkit_segment **segp)
{
	int err = kind_ok(user, kind);
	if (err)
		return err;
	struct shmkit_segment_opts so =
		shmkit__kind_open_opts(user, kind, min_size, shmkit__opts_rdonly(user));
	return shmkit__segment_open_src(src, &so, segp);
}

int shmkit__layout_check(uint64_t magic, uint64_t want_magic, uint32_t version,
			 uint32_t want_version)
{
	if (magic != want_magic)
		return -EBADMSG;
	return version != want_version ? -EPROTO : 0;
}

int shmkit__role_claim(_Atomic uint64_t *w, uint64_t me)
{
	/* Relaxed: the CAS below decides; acquire on success orders our attach reads after
	 * the previous holder's last publish (release stores). */
	uint64_t cur = atomic_load_explicit(w, memory_order_relaxed);
	for (int tries = 0; tries < ROLE_TRIES; tries++) {
		if (cur != 0 && shmkit__owner_state(cur) > 0)
			return -EBUSY;
		if (atomic_compare_exchange_strong_explicit(w, &cur, me, memory_order_acquire,
							    memory_order_relaxed))
			return 0;
	}
	return -EBUSY;
}

int shmkit__role_claim_slot(_Atomic uint64_t *first, size_t stride, uint32_t n, uint64_t me,
			    bool *dead)
{
	/* Two passes: free words first, then words of dead processes (takeover). */
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n; i++) {
			_Atomic uint64_t *w =
				(_Atomic uint64_t *)(void *)((uint8_t *)first + (size_t)i * stride);
			/* Relaxed: the CAS below decides. */
			uint64_t cur = atomic_load_explicit(w, memory_order_relaxed);
			if (pass == 0 ? cur != 0 : (cur == 0 || shmkit__owner_state(cur) > 0))
				continue;
			/* acq_rel: acquire orders our use of the slot after its previous holder's
			 * release; release publishes nothing yet but is harmless. */
			if (atomic_compare_exchange_strong_explicit(w, &cur, me, memory_order_acq_rel,
								    memory_order_relaxed)) {
				*dead = pass == 1;
				return (int)i;
			}
		}
	}
	return -ENOSPC;
}

void shmkit__role_release(_Atomic uint64_t *w, uint64_t me)
{
	/* Release: whoever claims the role next sees what we published. A failed CAS means
	 * the word is no longer ours (taken over while we were stopped): leave it. */
	atomic_compare_exchange_strong_explicit(w, &me, 0, memory_order_release,
						memory_order_relaxed);
}

int shmkit__role_state(const _Atomic uint64_t *w)
{
	/* Relaxed: a snapshot for a liveness check. */
	return shmkit__owner_state(atomic_load_explicit(w, memory_order_relaxed));
}

int shmkit__object_unlink(struct shmkit_segment *seg)
{
	return seg ? shmkit_segment_unlink(seg) : -EINVAL;
}
