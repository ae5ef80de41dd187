/*
 * store.h - the chunk store: content-addressed bytes in pack files.
 *
 * A writer collects the new chunks of one submission (or one result) into
 * one pack file, STATE/packs/<pack>.pack. Nothing it writes is visible until
 * the caller commits the catalog batch that vd_store_writer_commit filled:
 * commit first makes the pack durable (fdatasync, rename from its temporary
 * name, fsync of the directory), then adds to the batch one index entry per
 * new chunk ("k/<id>" -> pack, offset, length) and one pack entry
 * ("p/<pack>"). A crash before the batch commits leaves a pack that no
 * catalog entry names; vd_store_open deletes such packs and temporary files.
 *
 * Chunks already in the store (or already put through the same writer) are
 * not written again: that is all of deduplication.
 *
 * Compression: a writer compresses each new chunk on its own with zstd at
 * the store's level (vd_store_set_level; VD_STORE_ZSTD_DEFAULT unless set)
 * and keeps the frame only when it is at least VD_STORE_ZSTD_MIN_SAVING_PCT
 * smaller than the chunk; otherwise the chunk is stored raw, at its own
 * size. The chunk ID is the keyed hash of the raw bytes either way, and
 * lengths given out (vd_store_size, reads) are raw lengths; only the
 * writer's stored bytes, vd_store_chunks' stored_len and the pack files
 * see the compressed size.
 *
 * Every read verifies the bytes against their ID (after decompressing) and
 * fails with -EIO (and a log line) on a mismatch or a frame that does not
 * decode.
 *
 * Thread safety: a vd_store may be shared by threads (reads and writers from
 * different threads are fine). A vd_store_writer belongs to one thread.
 */
#ifndef VD_STORE_H
#define VD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "catalog.h"
#include "id.h"

typedef struct vd_store vd_store;
typedef struct vd_store_writer vd_store_writer;

/* zstd levels: new chunks are compressed at VD_STORE_ZSTD_DEFAULT unless
 * vd_store_set_level says otherwise; 0 is none. */
#define VD_STORE_ZSTD_DEFAULT 2
#define VD_STORE_ZSTD_MAX 19
/* A frame is kept only when it saves at least this much of the chunk. */
#define VD_STORE_ZSTD_MIN_SAVING_PCT 3
/* vd_store_writer_gather leaves a chunk where it is in a pack this big. */
#define VD_STORE_GATHER_MIN ((uint64_t)4 << 20)

/* dir is created if missing. The store keeps pointers to cat and key; both
 * must outlive it. Marks the catalog with the store format
 * (meta/store_format, store.c); -EPROTO for a format this code does not
 * know. */
int vd_store_open(vd_store **out, const char *dir, vd_catalog *cat,
		  const struct vd_key *key);
void vd_store_close(vd_store *s);
/* The zstd level of chunks written from now on, 0 (none) to
 * VD_STORE_ZSTD_MAX (clamped). Writers already open keep the level they
 * started with. What is stored already stays as it is. */
void vd_store_set_level(vd_store *s, int level);

/* 0 if n more bytes can be written to the state disk and still leave the
 * store's reserve free (1% of the disk, 4 to 256 MiB), else -ENOSPC.
 * Writers check it for every new chunk; the view checks it for staging
 * writes, which go to the same disk. */
int vd_store_space_check(vd_store *s, uint64_t n);

/* 1 if the chunk is in the store (committed), 0 if not, -errno. */
int vd_store_has(vd_store *s, const char *id);
/* Length of a stored chunk (raw, however it is stored). -ENOENT. */
int vd_store_size(uint64_t *len, vd_store *s, const char *id);
/* Append the chunk's bytes to out, verified. -ENOENT, -EIO, -EFBIG. */
int vd_store_read(struct vd_buf *out, vd_store *s, const char *id);
/* The chunk as stored: its bytes appended to out (compressed or not),
 * *zstd whether they are a zstd frame, *raw_len the uncompressed
 * length. Not verified (the receiver verifies after decompressing).
 * -ENOENT, -EIO, -EFBIG. */
int vd_store_read_stored(struct vd_buf *out, bool *zstd, uint64_t *raw_len,
			 vd_store *s, const char *id);
/* Ask the kernel to start reading the chunk's bytes from disk now
 * (POSIX_FADV_WILLNEED on its pack), without waiting: a reader going
 * through a file's chunks in order calls it for the next one, so that the
 * disk works while the current one is handed out. A file's chunks may lie
 * in several packs (a result's large unit outputs stay in their own; an
 * edited version's new chunks are in its pack, the rest in older ones),
 * where the kernel's readahead, which follows one file, cannot see the
 * next one coming. A hint: errors are ignored. */
void vd_store_prefetch(vd_store *s, const char *id);

int vd_store_writer_new(vd_store_writer **out, vd_store *s);
/* Compute the ID of p[0..n), store the bytes unless already known, write the
 * ID to id_out. n may be 0. */
int vd_store_writer_put(char id_out[VD_ID_SIZE], vd_store_writer *w,
			const void *p, size_t n);
/* Put a chunk that arrives compressed: decompress (at most raw_cap
 * bytes; the frame must say its size), verify it hashes to id, and store
 * the frame as it is when it saves >= VD_STORE_ZSTD_MIN_SAVING_PCT (else
 * the raw bytes; several frames back to back are stored anew as one
 * chunk would be). Kept as it came whatever the store's level, since it
 * costs nothing to. A chunk already stored is not written again. 0, -EIO
 * on a mismatch or a bad frame (logged), -EINVAL, -ENOSPC, -errno. */
int vd_store_writer_put_zstd(vd_store_writer *w, const char *id,
			     const void *frame, size_t n, size_t raw_cap);
/* Copy the committed chunk id into this writer's pack, unless it already
 * lies in a pack of at least VD_STORE_GATHER_MIN bytes; at commit its k/
 * entry then points at the copy (the old copy is dead bytes, which gc's
 * pack deletion, compaction or hole punching reclaims). Returns 1 when
 * copied, 0 when left where it is (also for a chunk this writer already
 * holds, which is not copied twice), -ENOENT when it is not stored, -EIO
 * when it does not read back, -errno. The stored bytes are verified and
 * copied as they are (no recompression). Safe against a concurrent gc the
 * same way writer_put's hits are (the chunk is referenced by the
 * caller's commit). */
int vd_store_writer_gather(vd_store_writer *w, const char *id);
/* Append a chunk's bytes to out, verified: one this writer wrote (not
 * yet committed) or one already in the store. */
int vd_store_writer_read(struct vd_buf *out, vd_store_writer *w, const char *id);
/* Raw bytes of the new chunks this writer stored (what deduplication did
 * not find; gathered copies not included). */
uint64_t vd_store_writer_new_bytes(const vd_store_writer *w);
/* Bytes the writer's pack holds: the new chunks after compression, and
 * gathered copies (all of them once committed; before, what its
 * compression workers have written so far). */
uint64_t vd_store_writer_stored_bytes(vd_store_writer *w);
/* Make the pack durable and add its index entries to b. After this the
 * writer accepts no more puts. A writer that wrote nothing adds nothing. */
int vd_store_writer_commit(vd_store_writer *w, vd_catalog_batch *b);
/* Frees the writer; an uncommitted pack file is deleted. */
void vd_store_writer_free(vd_store_writer *w);

/* ---- garbage collection and checking (docs/lifecycle.md) ------------
 *
 * The engine decides what is garbage (it knows what references chunks);
 * the store makes that decision safe against writers running meanwhile:
 *
 *   vd_store_gc_begin      from here on, every chunk a writer finds already
 *                          stored (and every chunk named to gc_keep) is
 *                          kept, and so is every chunk found by writers
 *                          still open now, however long ago they found it
 *   ... the engine lists the committed chunks (vd_store_chunks), then
 *       marks what the catalog references ...
 *   vd_store_gc_freeze     writers' lookups wait from here
 *   vd_store_gc_kept       the sweep spares a chunk that is kept
 *   vd_store_gc_drop       and deletes the others' index entries, in one
 *                          batch the engine commits
 *   vd_store_gc_end        writers go on; a chunk they look up now is
 *                          either still indexed or written anew
 *
 * A chunk committed after the listing is not in it, so it is never swept.
 * Then packs: one with no indexed chunk left is deleted, one mostly dead
 * compacted (its live chunks moved to a new pack). Both are crash-safe in
 * the order of their steps; see the functions.
 */

/* Start gc's tracking of reused chunks. -EBUSY when it is on already (one
 * gc or repair at a time), -ENOMEM. */
int vd_store_gc_begin(vd_store *s);
/* The chunk is about to be referenced by something other than a writer's
 * commit (a memoized unit output put into a result): keep it. A no-op
 * when no gc is on. */
void vd_store_gc_keep(vd_store *s, const char *id);
/* Make writers' lookups wait until vd_store_gc_end(s, true). */
void vd_store_gc_freeze(vd_store *s);
/* Is the chunk kept? -ENOMEM when a keep could not be recorded (gc must
 * then sweep nothing). Between begin and end. */
int vd_store_gc_kept(bool *kept, vd_store *s, const char *id);
/* Delete the chunk's index entry in b. */
void vd_store_gc_drop(vd_catalog_batch *b, const char *id);
/* Stop tracking; frozen: gc_freeze was called and is released. */
void vd_store_gc_end(vd_store *s, bool frozen);

/* Each chunk in the index, in ID order: id, pack, offset, the bytes it
 * takes in the pack (stored_len) and its own length (raw_len; the two
 * differ exactly when the chunk is stored as a zstd frame); a record that
 * cannot be a chunk's comes with id and pack NULL. A non-zero return
 * stops the walk and is returned. */
typedef int (*vd_store_chunk_fn)(void *ctx, const char *id, const char *pack,
				 uint64_t off, uint64_t stored_len, uint64_t raw_len);
int vd_store_chunks(vd_store *s, vd_store_chunk_fn fn, void *ctx);
/* Each committed pack (p/ entry), its file's size (-1 when the file is
 * missing) and the bytes the file takes on disk (less than its size once
 * holes are punched in it); a bad entry comes with pack NULL. */
typedef int (*vd_store_pack_fn)(void *ctx, const char *pack, int64_t size, int64_t alloc);
int vd_store_packs(vd_store *s, vd_store_pack_fn fn, void *ctx);
/* Read the chunk at (pack, off, stored_len) into scratch (emptied first),
 * decompressing when stored_len differs from raw_len (as vd_store_chunks
 * gives them), and verify it against id: 0, or -EIO (unreadable, missing,
 * a frame that does not decode, or corrupt; logged). For fsck --full,
 * which reads packs in order. */
int vd_store_check(vd_store *s, struct vd_buf *scratch, const char *id,
		   const char *pack, uint64_t off, uint64_t stored_len, uint64_t raw_len);
/* A chunk's place in a pack (len: its stored length). */
struct vd_store_extent {
	uint64_t off, len;
};
/* Give the disk blocks of pack that lie outside the live extents back to
 * the file system (fallocate, FALLOC_FL_PUNCH_HOLE): the dead chunks of a
 * pack that is still mostly live, without moving the live ones. live is
 * sorted by offset. *freed: bytes of disk that were (dry_run: would be)
 * freed, counted from what is allocated now (SEEK_DATA), so that a range
 * punched before counts nothing. Crash-safe as it is: only bytes no index
 * entry points to are touched, and a punch lost in a crash is done again
 * by the next gc. A file system that cannot punch holes frees nothing
 * (logged once). */
int vd_store_pack_punch(uint64_t *freed, vd_store *s, const char *pack,
			const struct vd_store_extent *live, size_t n, bool dry_run);
/* Delete a pack whose chunks are no longer indexed: the catalog forgets
 * it (committed, sync), then the file is unlinked. */
int vd_store_pack_delete(vd_store *s, const char *pack);
/* Move the chunks ids[0..n) that still lie in pack (others are skipped)
 * to a new pack, stored as they are (frames stay frames): verified,
 * written and made durable, then one batch points their index entries at
 * it and forgets the old pack, then the old file is unlinked. *moved:
 * stored bytes moved. -EIO if one of them is unreadable or corrupt
 * (nothing is changed then). */
int vd_store_pack_compact(uint64_t *moved, vd_store *s, const char *pack,
			  char (*ids)[VD_ID_SIZE], size_t n);

#endif
