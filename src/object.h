/* shmkit — the lifecycle every kind of object shares (src/object.c). Never installed.
 *
 * A stream channel, a pub/sub channel, a work queue and a table are each a segment
 * holding a kind-specific control block. What they have in common lives here, written
 * once:
 *   - options: the kind's own flags and reserved words (unknown bits, non-zero reserved
 *     words: -EINVAL), the embedded segment options (kind 0 or the kind's own);
 *   - read-only access: SHMKIT_SEG_RDONLY in opts.seg.flags, the one way for every kind;
 *     a kind with roles pairs it with its "no role" value (0);
 *   - create: an exclusive segment of the kind, left INITIALIZING until the creator has
 *     laid the control block out and published it; open: the segment of that kind, by name
 *     or descriptor, at least as large as the control block;
 *   - layout: the control block's magic and version, read once (-EBADMSG for garbage,
 *     -EPROTO for another version of the layout);
 *   - roles: a role or slot is held by writing the holder's owner word (pid << 32 | start
 *     time, src/waitq_internal.h) with one compare-and-swap, and taken over from a dead
 *     holder the same way; released by swapping it back to 0;
 *   - the end: unlink (the name), abandon (a handle that could not be made).
 * What is the kind's own — its control block, its protocol, what close publishes — stays
 * in its file.
 */
#ifndef SHMKIT_OBJECT_H
#define SHMKIT_OBJECT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* -EINVAL unless every bit of `flags` is in `known` and the `n` reserved words are 0. */
int shmkit__opts_check(uint32_t flags, uint32_t known, const uint64_t *reserved, size_t n);

/* The role argument of a kind with roles (stream, pub/sub): `role` 0 is "no role", the
 * role of a read-only handle. create: a real role (1 or 2), never read-only. open: 0 with
 * SHMKIT_SEG_RDONLY in `seg`, or 1 or 2 without it. 0 or -EINVAL. */
int shmkit__role_check(int role, const struct shmkit_segment_opts *seg, bool create);

/* Whether `seg` (the caller's embedded options, may be NULL) asks for read-only access. */
bool shmkit__opts_rdonly(const struct shmkit_segment_opts *seg);

/* The smallest power of two >= v, at least `min` and at most `max` (powers of two). */
uint64_t shmkit__next_pow2(uint64_t v, uint64_t min, uint64_t max);

/* Creates the segment of a new object of `kind` with `size` data bytes, from the caller's
 * segment options `user` (NULL: defaults; its kind must be 0 or `kind`, else -EINVAL).
 * The segment stays INITIALIZING: the caller lays its control block out, then calls
 * shmkit_segment_publish(). Returns what shmkit_segment_create() returns. */
int shmkit__object_create(const char *name, uint32_t kind, uint64_t size,
			  const struct shmkit_segment_opts *user, struct shmkit_segment **segp);

/* Opens the segment of an existing object of `kind` from `src` (by name or descriptor),
 * with the caller's segment options `user` (NULL: defaults; kind 0 or `kind`), requiring
 * at least `min_size` data bytes; read-only when `user` says SHMKIT_SEG_RDONLY. */
int shmkit__object_open(const struct shmkit__seg_src *src, uint32_t kind, uint64_t min_size,
			const struct shmkit_segment_opts *user, struct shmkit_segment **segp);

/* The control block's identity, as read once by the opener: -EBADMSG when `magic` is not
 * the kind's, -EPROTO when `version` is another layout version, else 0. */
int shmkit__layout_check(uint64_t magic, uint64_t want_magic, uint32_t version,
			 uint32_t want_version);

/* Claims the single-holder role word `w` for `me`: free, or held by a dead process (a
 * takeover). 0, or -EBUSY when a live process holds it. Acquire on success: what the
 * previous holder published before releasing (or dying) is visible to us. */
int shmkit__role_claim(_Atomic uint64_t *w, uint64_t me);

/* Claims one of `n` owner words, the first at `first` and the others `stride` bytes apart
 * (subscriber slots, queue members): a free one first, else one of a dead process. Returns
 * its index, with *dead set when it was taken over from a dead process, or -ENOSPC when
 * every one is held by a live process. acq_rel: acquire orders our use of the slot after
 * its previous holder's release. */
int shmkit__role_claim_slot(_Atomic uint64_t *first, size_t stride, uint32_t n, uint64_t me,
			    bool *dead);

/* Gives the role word `w` up if `me` still holds it (release: the next holder sees what we
 * published). */
void shmkit__role_release(_Atomic uint64_t *w, uint64_t me);

/* Whether the holder of role word `w` is alive: 1 alive, 0 none, -1 dead (reads /proc). */
int shmkit__role_state(const _Atomic uint64_t *w);

/* The kind's _unlink: shmkit_segment_unlink(seg), -EINVAL for a NULL handle (seg NULL). */
int shmkit__object_unlink(struct shmkit_segment *seg);

/* --- symbol versions (src/libshmkit.map) ------------------------------------------------
 * A function whose signature or meaning changed in a release keeps its old behaviour for
 * binaries linked against the old node: the new definition, named shmkit__X, is the
 * default version of shmkit_X at the new node, and the compatibility definition (in
 * src/compat.c) is shmkit_X at the old node. Both must be visible for the linker to
 * export the versioned names; the version script hides the shmkit__ names themselves. */
#define SHMKIT__EXPORT __attribute__((visibility("default")))
#define SHMKIT__SYMVER(impl, name, node) __asm__(".symver " #impl ", " #name "@" #node)
#define SHMKIT__SYMVER_DEFAULT(impl, name, node) __asm__(".symver " #impl ", " #name "@@" #node)

#endif
