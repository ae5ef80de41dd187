/*
 * cache.h - the executor's on-disk cache of code and chunks, by ID, with a
 * size cap: past it, the least recently used files go (their modification
 * time is bumped on every use). Files a running unit needs are pinned and
 * never evicted under it.
 *
 * Layout: ROOT/code/<id> (executable) and ROOT/chunks/<id>. Entries are
 * verified against their ID on every use by the caller, so a torn or
 * altered file is fetched again, never used.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef VD_CACHE_H
#define VD_CACHE_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "util.h"

struct vd_cache;

/* Create ROOT/code and ROOT/chunks if missing and add up what is there.
 * cap is in bytes (0: no cap). */
int vd_cache_open(struct vd_cache **out, const char *root, uint64_t cap);
void vd_cache_close(struct vd_cache *c);

/* ROOT/<kind>/<id> into out (reset first). */
int vd_cache_path(struct vd_buf *out, const struct vd_cache *c, const char *kind,
		  const char *id);
/* Keep path from eviction until as many unpins; pins nest. */
int vd_cache_pin(struct vd_cache *c, const char *path);
void vd_cache_unpin(struct vd_cache *c, const char *path);
/* The file was used: it becomes the most recently used. */
void vd_cache_touch(struct vd_cache *c, const char *path);
/* A file that did not verify was removed by the caller: forget its size. */
void vd_cache_forget(struct vd_cache *c, uint64_t size);
/* Write p[0..n) as path (atomically), count it, and evict down to 90% of
 * the cap if it is exceeded. */
int vd_cache_put(struct vd_cache *c, const char *path, const void *p, size_t n,
		 mode_t mode);
/* Up to max chunk IDs in the cache, most recently used first. */
int vd_cache_chunk_ids(struct vd_strv *out, struct vd_cache *c, size_t max);
/* Bytes held now. */
uint64_t vd_cache_bytes(struct vd_cache *c);

#endif
