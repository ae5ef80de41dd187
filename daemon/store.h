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
 * Every read verifies the bytes against their ID and fails with -EIO (and a
 * log line) on a mismatch.
 *
 * Thread safety: a vd_store may be shared by threads (reads and writers from
 * different threads are fine). A vd_store_writer belongs to one thread.
 */
#ifndef VD_STORE_H
#define VD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "catalog.h"
#include "id.h"

typedef struct vd_store vd_store;
typedef struct vd_store_writer vd_store_writer;

/* dir is created if missing. The store keeps pointers to cat and key; both
 * must outlive it. */
int vd_store_open(vd_store **out, const char *dir, vd_catalog *cat,
		  const struct vd_key *key);
void vd_store_close(vd_store *s);

/* 0 if n more bytes can be written to the state disk and still leave the
 * store's reserve free (1% of the disk, 4 to 256 MiB), else -ENOSPC.
 * Writers check it for every new chunk; the view checks it for staging
 * writes, which go to the same disk. */
int vd_store_space_check(vd_store *s, uint64_t n);

/* 1 if the chunk is in the store (committed), 0 if not, -errno. */
int vd_store_has(vd_store *s, const char *id);
/* Length of a stored chunk. -ENOENT. */
int vd_store_size(uint64_t *len, vd_store *s, const char *id);
/* Append the chunk's bytes to out, verified. -ENOENT, -EIO, -EFBIG. */
int vd_store_read(struct vd_buf *out, vd_store *s, const char *id);
/* Ask the kernel to start reading the chunk's bytes from disk now
 * (POSIX_FADV_WILLNEED on its pack), without waiting: a reader going
 * through a file's chunks in order calls it for the next one, so that the
 * disk works while the current one is handed out. Each chunk of a result
 * sits in a pack of its own, where the kernel's readahead, which follows
 * one file, cannot see the next one coming. A hint: errors are ignored. */
void vd_store_prefetch(vd_store *s, const char *id);

int vd_store_writer_new(vd_store_writer **out, vd_store *s);
/* Compute the ID of p[0..n), store the bytes unless already known, write the
 * ID to id_out. n may be 0. */
int vd_store_writer_put(char id_out[VD_ID_SIZE], vd_store_writer *w,
			const void *p, size_t n);
/* Append a chunk's bytes to out, verified: one this writer wrote (not
 * yet committed) or one already in the store. */
int vd_store_writer_read(struct vd_buf *out, vd_store_writer *w, const char *id);
/* Bytes this writer actually wrote (new chunks only). */
uint64_t vd_store_writer_new_bytes(const vd_store_writer *w);
/* Make the pack durable and add its index entries to b. After this the
 * writer accepts no more puts. A writer that wrote nothing adds nothing. */
int vd_store_writer_commit(vd_store_writer *w, vd_catalog_batch *b);
/* Frees the writer; an uncommitted pack file is deleted. */
void vd_store_writer_free(vd_store_writer *w);

#endif
