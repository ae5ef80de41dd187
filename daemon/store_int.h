/*
 * store_int.h - the chunk store's private parts, shared by store.c (index,
 * packs, writers, gc), store_zstd.c (compression) and store_copy.c (chunks
 * that move as they are stored: the wire, gathering, compaction). Nothing
 * outside daemon/store*.c includes it.
 */
#ifndef VD_STORE_INT_H
#define VD_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <zstd.h>

#include "chunkset.h"
#include "store.h"

#define PACK_NAME_LEN 16
#define PACK_NAME_SIZE (PACK_NAME_LEN + 1)
/* Index records (the layout is in store.c's top comment). */
#define STORE_REC_RAW 32
#define STORE_REC_ZSTD 41
#define STORE_REC_MAX STORE_REC_ZSTD
#define STORE_FLAG_ZSTD 0x01
#define CHUNK_KEY_SIZE (2 + VD_ID_SIZE)          /* "k/" + id + NUL */
#define PACK_KEY_SIZE (2 + PACK_NAME_SIZE)       /* "p/" + name + NUL */
/* Compressed contexts kept for reuse once their user is done with them;
 * past this they are freed. */
#define STORE_CTX_POOL 8
/* Compression workers of one writer, at most (store_pipe.c), and the
 * smallest chunk handed to them. */
#define STORE_PIPE_MAX 4
#define STORE_PIPE_MIN_CHUNK ((size_t)16 << 10)
/* Writers start writeback of their pack every this many bytes. */
#define STORE_WRITEBACK_STEP ((uint64_t)32 << 20)

struct store_pipe;

/* Where a committed chunk lies and how it is stored. */
struct store_rec {
	char pack[PACK_NAME_SIZE];
	uint64_t off;
	uint64_t stored_len;           /* bytes in the pack */
	uint64_t raw_len;              /* the chunk's length; = stored_len when raw */
	bool zstd;                     /* the stored bytes are a zstd frame */
};

/* A pack's read fd, shared by readers. refs counts the readers using it
 * right now; an entry whose pack was deleted (compaction, gc) leaves the
 * cache at once and is closed by the last of them. */
struct pack_fd {
	char name[PACK_NAME_SIZE];
	int fd;
	int refs;                      /* lock */
	bool dead;                     /* lock: no longer in the cache */
};

struct vd_store {
	/* Set at open, read-only afterwards. */
	char *dir;
	vd_catalog *cat;
	const struct vd_key *key;
	uint64_t reserve;              /* bytes kept free (RESERVE_*) */
	int pipe_threads;              /* compression workers a writer starts */
	/* The zstd level of new chunks, 0 for none. Writers read it when they
	 * start (vd_store_set_level may change it while others run). */
	int level;                     /* lock */

	pthread_mutex_t lock;
	/* Read fds by pack name, sorted by name for binary search. Guarded by
	 * lock; a reader takes a reference (pack_fd_get) and uses the fd with
	 * pread after dropping the lock. */
	struct pack_fd **fds;
	size_t nfds;
	size_t capfds;
	/* zstd contexts nobody uses right now (store_zstd.c): a context costs
	 * an allocation and, for compression, tables sized to the level, so
	 * writers and readers take one from here and give it back. */
	ZSTD_CCtx *cctx_pool[STORE_CTX_POOL];   /* lock */
	size_t ncctx;                           /* lock */
	ZSTD_DCtx *dctx_pool[STORE_CTX_POOL];   /* lock */
	size_t ndctx;                           /* lock */

	/*
	 * What makes gc safe against writers (docs/lifecycle.md, "Garbage
	 * collection"). A writer that finds a chunk already stored does not
	 * write it and will reference it when its batch commits, which may be
	 * long after gc looked at the catalog: those chunks are the ones a
	 * careless gc deletes from under a submission. So every writer keeps
	 * the IDs it found (its hits); from vd_store_gc_begin on, those and
	 * every later hit and vd_store_gc_keep are in gc_kept, and the sweep
	 * spares them. gc_freeze is taken shared by a writer around its
	 * lookup-and-record and exclusively by the sweep, so that no lookup
	 * falls between the sweep's decision and its commit.
	 */
	pthread_rwlock_t gc_freeze;
	pthread_mutex_t gc_lock;       /* guards the three below and writers' hits */
	bool gc_active;                /* gc_lock; read unlocked as a hint */
	struct vd_chunkset gc_kept;    /* gc_lock */
	bool gc_kept_failed;           /* gc_lock: an add to gc_kept failed */
	struct vd_store_writer *writers;   /* gc_lock: open writers */
};

/* A chunk this writer has put in its pack. */
struct wentry {
	char id[VD_ID_SIZE];
	uint64_t off;
	uint64_t stored_len;
	uint64_t raw_len;
	bool zstd;
	/* gather: the committed chunk this entry copies, whose k/ entry the
	 * commit repoints (the chunk is already indexed elsewhere). */
	bool moved;
};

struct vd_store_writer {
	vd_store *s;
	int fd;                        /* -1 until the first new chunk */
	char pack[PACK_NAME_SIZE];
	/* With workers (pipe), off, flushed and ents are theirs too: see
	 * store_pipe.c for the locking. */
	uint64_t off;                  /* bytes in the pack so far */
	uint64_t flushed;              /* writeback started up to here */
	uint64_t raw_bytes;            /* raw length of the new chunks */
	int level;                     /* zstd level, 0: none (from the store) */
	ZSTD_CCtx *cctx;               /* from the store's pool, once needed */
	struct vd_buf zbuf;            /* compressed bytes of the current chunk */
	struct store_pipe *pipe;       /* compression workers, once started */
	bool pipe_failed;              /* they could not start: compress inline */
	struct wentry *ents;           /* new chunks in write order */
	size_t nents, capents;
	/* Open-addressing set over ents: slot holds index + 1, 0 is empty.
	 * Size is a power of two kept at least twice nents. */
	uint32_t *slots;
	size_t nslots;
	bool committed;
	/* Chunks found already stored, which the commit will reference: gc
	 * must not take them (see vd_store.gc_freeze). Appended under a
	 * shared gc_freeze, read by vd_store_gc_begin under an exclusive one. */
	char (*hits)[VD_ID_SIZE];
	size_t nhits, caphits;
	struct vd_store_writer *next, *prev;   /* vd_store.gc_lock */
};

/* ---- store.c ---- */

bool store_pack_name_valid(const char *s, size_t n);
/* dir/<prefix><pack>.pack into out. -ENAMETOOLONG. */
int store_pack_path(char *out, size_t size, const char *dir, const char *prefix,
		    const char *pack);
/* Unlink a pack file that the catalog no longer names, durably. */
int store_pack_unlink(vd_store *s, const char *pack);

/* The index record of a committed chunk: 0, -ENOENT, -EINVAL (a bad ID),
 * -EIO (a record that cannot be a chunk's; logged). */
int store_rec_lookup(struct store_rec *r, vd_store *s, const char *id);
int store_pack_fd_get(struct pack_fd **out, vd_store *s, const char *pack);
void store_pack_fd_put(vd_store *s, struct pack_fd *pf);
/* Append the chunk's stored bytes (r->stored_len of them) to out, as they
 * are: not decompressed, not verified. -ENOENT when the pack is gone,
 * -EIO when it cannot be read. */
int store_read_stored(struct vd_buf *out, vd_store *s, const char *id,
		      const struct store_rec *r);
/* Append the chunk's raw bytes to out, verified against id. */
int store_read_verified(struct vd_buf *out, vd_store *s, const char *id,
			const struct store_rec *r);
/* Is the chunk stored? If so, the writer remembers that it will reference
 * it (see vd_store.gc_freeze). 1, 0 or -errno. */
int store_writer_lookup(vd_store_writer *w, const char *id);
struct wentry *store_wset_find(const vd_store_writer *w, const char *id);
/* Make room for one more entry (taking the pipe's lock for the move). */
int store_wset_reserve(vd_store_writer *w);
/* Add an entry (room reserved; under the pipe's lock when there is one). */
void store_wset_add(vd_store_writer *w, const char *id, uint64_t off, uint64_t stored_len,
		    uint64_t raw_len, bool zstd, bool moved);
/* Write n stored bytes of a new chunk (raw_len raw bytes; a zstd frame
 * when zstd) at the end of the writer's pack and add its entry, after
 * what the workers have queued. */
int store_writer_append(vd_store_writer *w, const char *id, const void *p, size_t n,
			uint64_t raw_len, bool zstd, bool moved);

/* ---- store_pipe.c ---- */

/* Start w's compression workers (its pack is open). -errno: none started. */
int store_pipe_start(vd_store_writer *w);
/* Queue a new chunk (a copy of raw[0..n)) and add its entry, pending. */
int store_pipe_put(vd_store_writer *w, const char *id, const void *raw, size_t n);
/* Wait until every queued chunk is written: 0, or the workers' error. */
int store_pipe_drain(vd_store_writer *w);
/* Stop and free the workers (w->pipe NULL after). Queued chunks not yet
 * taken are dropped: drain first to keep them. */
void store_pipe_stop(vd_store_writer *w);
void store_pipe_lock(vd_store_writer *w);
void store_pipe_unlock(vd_store_writer *w);

/* ---- store_zstd.c ---- */

ZSTD_CCtx *store_cctx_get(vd_store *s);
void store_cctx_put(vd_store *s, ZSTD_CCtx *c);
ZSTD_DCtx *store_dctx_get(vd_store *s);
void store_dctx_put(vd_store *s, ZSTD_DCtx *d);
void store_ctx_pools_free(vd_store *s);
/* Is p[0..n) worth compressing at level (0: none)? The cheap probe of
 * store_zstd.c: 1 or 0, -ENOMEM. *cctx: taken from the store's pool when
 * NULL; the caller gives it back. */
int store_zstd_worth_trying(ZSTD_CCtx **cctx, vd_store *s, int level, const void *p, size_t n);
/* Compress p[0..n) at level into out (reset first), with *cctx (as
 * above), after the probe unless probed already: 1 when the frame saves
 * at least VD_STORE_ZSTD_MIN_SAVING_PCT (out holds it), 0 when it would
 * not (out empty), -ENOMEM. */
int store_zstd_compress(struct vd_buf *out, ZSTD_CCtx **cctx, vd_store *s, int level,
			const void *p, size_t n, bool probed);
/* Would a frame of n bytes for raw_len raw bytes be kept? */
bool store_zstd_worth(uint64_t n, uint64_t raw_len);
/* Decompress the frame src[0..n) into dst, which must come out exactly
 * raw_len bytes long: 0, or -EIO (a bad frame, or another length; logged
 * with what, the chunk's ID). */
int store_zstd_decode(vd_store *s, void *dst, uint64_t raw_len, const void *src, size_t n,
		      const char *what);

#endif
