/*
 * chunkset.h - an exact set of IDs (chunk, unit or memo IDs), for gc's mark
 * and fsck's reference counts: 16 bytes per ID (its 128 bits, not its hex),
 * open addressing, doubled when half full, so 100,000 chunks take 4 MiB at
 * most. The IDs are uniformly distributed hash values, so their own first
 * 64 bits serve as the hash.
 *
 * A set belongs to one thread, or is guarded by its owner's lock.
 */
#ifndef VD_CHUNKSET_H
#define VD_CHUNKSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vd_chunkset {
	uint64_t *slot;        /* 2 words per slot; all-zero is empty */
	size_t n, cap;         /* cap: slots, a power of two (or 0) */
	bool has_zero;         /* the all-zero ID, which cannot sit in a slot */
};

#define VD_CHUNKSET_INIT { NULL, 0, 0, false }

/* 1 added, 0 already there, -EINVAL not an ID, -ENOMEM. */
int vd_chunkset_add(struct vd_chunkset *s, const char *id);
bool vd_chunkset_has(const struct vd_chunkset *s, const char *id);
size_t vd_chunkset_count(const struct vd_chunkset *s);
void vd_chunkset_clear(struct vd_chunkset *s);    /* frees too */

#endif
