/*
 * cache.h - the executor's on-disk cache of code and chunks, by ID, with a
 * size cap: past it, the least recently used files go (their modification
 * time is bumped on every use). Files a running unit needs are pinned and
 * never evicted under it.
 *
 * Layout: ROOT/code/<id> (executable) and ROOT/chunks/<id>, or
 * ROOT/chunks/<id>.zst for a chunk that came compressed: the zstd frame
 * the daemon stored, kept as it came (docs/executors.md, "Locality and the
 * cache"). Entries are verified against their ID on every use (code by the
 * caller, chunks by vd_cache_chunk_find: a frame is decompressed into the
 * hash), so a torn or altered file is fetched again, never used. The cap
 * counts bytes on disk, a frame's compressed size.
 *
 * Threads: every function may be called from any thread.
 */
#ifndef VD_CACHE_H
#define VD_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "id.h"
#include "util.h"

struct vd_cache;

/* Create ROOT/code and ROOT/chunks if missing and add up what is there.
 * cap is in bytes (0: no cap). */
int vd_cache_open(struct vd_cache **out, const char *root, uint64_t cap);
void vd_cache_close(struct vd_cache *c);

/* ROOT/<kind>/<id> into out (reset first). */
int vd_cache_path(struct vd_buf *out, const struct vd_cache *c, const char *kind,
		  const char *id);
/* Keep path from eviction until as many unpins; pins nest. A pin of
 * ROOT/chunks/<id> also keeps ROOT/chunks/<id>.zst. */
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
/*
 * Find id's chunk (ROOT/chunks/<id>, else <id>.zst) and verify it: 0 with
 * path (reset first) the file, *zstd whether it is a frame, *raw_len the
 * chunk's length, at most max; the entry becomes the most recently used.
 * -ENOENT when the cache has none, or had one that did not verify (torn,
 * altered, a bad frame): that file was removed and its size forgotten, so
 * the caller fetches it again. Other -errno: the file could not be read.
 */
int vd_cache_chunk_find(struct vd_buf *path, bool *zstd, uint64_t *raw_len,
			struct vd_cache *c, const struct vd_key *k, const char *id,
			uint64_t max);
/*
 * Keep p[0..n), fetched for id: a zstd frame (zstd) or the raw bytes. They
 * are verified first: -EBADMSG, and nothing is kept, when they (a frame:
 * its decompression, at most max bytes) do not hash to id. Written as
 * <id>.zst or <id>, the other name removed; path (reset first) and
 * *raw_len as vd_cache_chunk_find gives them. Evicts like vd_cache_put.
 */
int vd_cache_chunk_put(struct vd_buf *path, uint64_t *raw_len, struct vd_cache *c,
		       const struct vd_key *k, const char *id, const void *p, size_t n,
		       bool zstd, uint64_t max);
/* Up to max chunk IDs in the cache (raw or framed), most recently used
 * first. */
int vd_cache_chunk_ids(struct vd_strv *out, struct vd_cache *c, size_t max);
/* Bytes held now. */
uint64_t vd_cache_bytes(struct vd_cache *c);

#endif
