/*
 * store.c - content-addressed chunks in pack files (see store.h).
 *
 * Layout under the store directory:
 *   <pack>.pack       committed packs: chunks back to back, each raw or one
 *                     zstd frame, with no per-chunk header (the catalog
 *                     index says where each chunk lies and how it is
 *                     stored). <pack> is 16 lowercase hex digits.
 *   tmp-<pack>.pack   a pack being written; never referenced by the catalog.
 *
 * Catalog entries:
 *   k/<chunk-id> -> index record, STORE_REC_RAW (32) or STORE_REC_ZSTD (41)
 *                   bytes:
 *                     bytes  0..15  pack name, 16 ASCII lowercase hex digits
 *                     bytes 16..23  offset of the chunk in the pack, u64 LE
 *                     bytes 24..31  stored length (bytes in the pack), u64 LE
 *                   a 32-byte record is a raw chunk, stored length = its
 *                   length (the only kind before format 2); a 41-byte one
 *                   goes on with
 *                     byte  32      flags: bit 0 = a zstd frame (the only
 *                                   kind there is; other bits are zero)
 *                     bytes 33..40  the chunk's raw length, u64 LE
 *                   A frame is kept only when it is smaller than the raw
 *                   bytes (store_zstd.c), so stored < raw in every 41-byte
 *                   record; any other record is refused as corrupt.
 *   p/<pack>     -> empty value; its presence says the pack is committed.
 *   meta/store_format -> "2": written at open, so that a later format can
 *                   tell a store that may hold 41-byte records. A store
 *                   without it (format 1) holds only 32-byte records and
 *                   reads as before.
 *
 * The chunk ID is always the keyed hash of the raw bytes: a reader
 * decompresses and then verifies, so a corrupt frame is an ID mismatch
 * (or a frame that does not decode) like any corrupt raw chunk.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store_int.h"
#include "util.h"

#define STORE_FORMAT "2"
/* Packs kept open for reads. Past this, a read opens and closes its own fd
 * rather than evicting one that another thread may be using. */
#define STORE_MAX_CACHED_FDS 512
/*
 * Room kept free on the state disk. Chunks are refused (-ENOSPC) before
 * the disk is full, so that the catalog's small writes (which record that
 * a run waits, or a lease ends) still find room, and RocksDB is not pushed
 * into its stuck state (catalog.c) by our own writes: 1% of the disk, at
 * least 4 MiB and at most 256 MiB.
 */
#define RESERVE_MIN ((uint64_t)4 << 20)
#define RESERVE_MAX ((uint64_t)256 << 20)

/* ---- index records ---- */

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

bool store_pack_name_valid(const char *s, size_t n)
{
	if (n != PACK_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* The record for r: STORE_REC_RAW or STORE_REC_ZSTD bytes, its length. */
static size_t rec_encode(unsigned char rec[STORE_REC_MAX], const struct store_rec *r)
{
	memcpy(rec, r->pack, PACK_NAME_LEN);
	put_le64(rec + 16, r->off);
	put_le64(rec + 24, r->stored_len);
	if (!r->zstd)
		return STORE_REC_RAW;
	rec[32] = STORE_FLAG_ZSTD;
	put_le64(rec + 33, r->raw_len);
	return STORE_REC_ZSTD;
}

/* 0, or -EIO for a value that cannot be a chunk's record. */
static int rec_decode(struct store_rec *r, const char *val, size_t vlen)
{
	const unsigned char *u = (const unsigned char *)val;

	if ((vlen != STORE_REC_RAW && vlen != STORE_REC_ZSTD) ||
	    !store_pack_name_valid(val, PACK_NAME_LEN))
		return -EIO;
	memcpy(r->pack, val, PACK_NAME_LEN);
	r->pack[PACK_NAME_LEN] = '\0';
	r->off = get_le64(u + 16);
	r->stored_len = get_le64(u + 24);
	r->raw_len = r->stored_len;
	r->zstd = vlen == STORE_REC_ZSTD;
	if (r->zstd) {
		/* Flags from a later format, or a frame no smaller than its
		 * chunk (never written): not a record this code can read. */
		if (u[32] != STORE_FLAG_ZSTD)
			return -EIO;
		r->raw_len = get_le64(u + 33);
		if (r->stored_len >= r->raw_len)
			return -EIO;
	}
	return 0;
}

static void chunk_key(char key[CHUNK_KEY_SIZE], const char *id)
{
	snprintf(key, CHUNK_KEY_SIZE, "k/%s", id);
}

int store_rec_lookup(struct store_rec *r, vd_store *s, const char *id)
{
	char key[CHUNK_KEY_SIZE], *val = NULL;
	size_t vlen;
	int rc;

	if (!vd_id_valid(id))
		return -EINVAL;
	chunk_key(key, id);
	rc = vd_catalog_get(&val, &vlen, s->cat, key);
	if (rc)
		return rc;
	if ((rc = rec_decode(r, val, vlen)))
		vd_err("store: bad index record for chunk %s (%zu bytes)", id, vlen);
	free(val);
	return rc;
}

int store_pack_path(char *out, size_t size, const char *dir, const char *prefix,
		     const char *pack)
{
	int n = snprintf(out, size, "%s/%s%s.pack", dir, prefix, pack);

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* ---- opening: remove what a crash left behind ---- */

static int store_sweep(vd_store *s)
{
	struct dirent *de;
	bool removed = false;
	DIR *d;
	int rc = 0;

	d = opendir(s->dir);
	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t n = strlen(name);
		char key[PACK_KEY_SIZE];
		int has;

		if (n < 5 || strcmp(name + n - 5, ".pack") != 0)
			continue;
		if (strncmp(name, "tmp-", 4) == 0) {
			/* A writer that never committed. */
			vd_info("store: removing unfinished pack %s", name);
		} else {
			if (!store_pack_name_valid(name, n - 5))
				continue;
			snprintf(key, sizeof(key), "p/%.*s", PACK_NAME_LEN, name);
			has = vd_catalog_has(s->cat, key);
			if (has < 0) {
				rc = has;
				goto out;
			}
			if (has)
				continue;
			/* Renamed into place, but the batch naming it never
			 * committed: nothing refers to its chunks. */
			vd_warn("store: removing uncommitted pack %s", name);
		}
		if (unlinkat(dirfd(d), name, 0) < 0 && errno != ENOENT) {
			rc = -errno;
			vd_err("store: cannot remove %s/%s: %s", s->dir, name,
			       strerror(errno));
			goto out;
		}
		removed = true;
	}
	if (removed)
		rc = vd_fsync_dir(s->dir);
out:
	closedir(d);
	return rc;
}

/*
 * meta/store_format: "2" from the first start of this code on. A store
 * without it is format 1 (32-byte records only), which format 2 reads as
 * it is, so marking it needs no conversion; a store marked with a format
 * this code does not know is refused rather than misread.
 */
static int format_mark(vd_store *s)
{
	vd_catalog_batch *b = NULL;
	char *val = NULL;
	size_t vlen;
	int rc = vd_catalog_get(&val, &vlen, s->cat, "meta/store_format");

	if (rc == 0) {
		if (strcmp(val, STORE_FORMAT) != 0) {
			vd_err("store: the catalog says store format '%s', which this vdfsd "
			       "does not know (it reads formats 1 and " STORE_FORMAT ")", val);
			rc = -EPROTO;
		}
		free(val);
		return rc;
	}
	if (rc != -ENOENT)
		return rc;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	vd_catalog_batch_put(b, "meta/store_format", STORE_FORMAT, strlen(STORE_FORMAT));
	rc = vd_catalog_commit(s->cat, b, true);
	vd_catalog_batch_free(b);
	return rc;
}

int vd_store_open(vd_store **out, const char *dir, vd_catalog *cat,
		  const struct vd_key *key)
{
	vd_store *s;
	int rc;

	rc = vd_mkdir_p(dir, 0700);
	if (rc) {
		vd_err("store: cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dir = strdup(dir);
	if (!s->dir) {
		free(s);
		return -ENOMEM;
	}
	s->cat = cat;
	s->key = key;
	struct statvfs sv;
	uint64_t disk = statvfs(dir, &sv) == 0 ? (uint64_t)sv.f_blocks * sv.f_frsize : 0;
	s->reserve = disk / 100;
	if (s->reserve < RESERVE_MIN)
		s->reserve = RESERVE_MIN;
	if (s->reserve > RESERVE_MAX)
		s->reserve = RESERVE_MAX;
	s->level = VD_STORE_ZSTD_DEFAULT;
	/* A worker per core: the thread that puts mostly waits for them
	 * (cutting and hashing cost a fraction of compressing), and on two
	 * cores two workers sealed 256 MiB of text in 2.0 s against 2.5 s
	 * with one. On one core, compressing inline is as fast as handing
	 * over. */
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	s->pipe_threads = cores < 2 ? 0 : cores > STORE_PIPE_MAX ? STORE_PIPE_MAX : (int)cores;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_rwlock_init(&s->gc_freeze, NULL);
	rc = store_sweep(s);
	if (rc) {
		vd_err("store: cleaning %s failed: %s", dir, strerror(-rc));
		vd_store_close(s);
		return rc;
	}
	if ((rc = format_mark(s))) {
		vd_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vd_store_set_level(vd_store *s, int level)
{
	if (level < 0)
		level = 0;
	if (level > VD_STORE_ZSTD_MAX)
		level = VD_STORE_ZSTD_MAX;
	pthread_mutex_lock(&s->lock);
	s->level = level;
	pthread_mutex_unlock(&s->lock);
}

void vd_store_close(vd_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nfds; i++) {
		close(s->fds[i]->fd);
		free(s->fds[i]);
	}
	free(s->fds);
	store_ctx_pools_free(s);
	vd_chunkset_clear(&s->gc_kept);
	pthread_rwlock_destroy(&s->gc_freeze);
	pthread_mutex_destroy(&s->gc_lock);
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

int vd_store_space_check(vd_store *s, uint64_t n)
{
	struct statvfs sv;
	if (statvfs(s->dir, &sv) < 0)
		return 0;   /* cannot tell: let the write itself say */
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return avail >= n && avail - n >= s->reserve ? 0 : -ENOSPC;
}

/* ---- reading ---- */

/* Position of name in the fd cache, or where it would be inserted. */
static size_t fd_search(const vd_store *s, const char *name, bool *found)
{
	size_t lo = 0, hi = s->nfds;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->fds[mid]->name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* A reference to the pack's read fd: release it with store_pack_fd_put. When
 * the cache is full the entry is the caller's alone (refs 1, dead), and
 * the put closes it. -ENOENT when the pack file is gone. */
int store_pack_fd_get(struct pack_fd **out, vd_store *s, const char *pack)
{
	char path[PATH_MAX];
	struct pack_fd *pf = NULL;
	bool found;
	size_t pos;
	int fd, rc = 0;

	rc = store_pack_path(path, sizeof(path), s->dir, "", pack);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	pos = fd_search(s, pack, &found);
	if (found) {
		pf = s->fds[pos];
		pf->refs++;
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc != -ENOENT)
			vd_err("store: cannot open pack %s: %s", path, strerror(errno));
		goto out;
	}
	if (!(pf = calloc(1, sizeof *pf))) {
		close(fd);
		rc = -ENOMEM;
		goto out;
	}
	memcpy(pf->name, pack, PACK_NAME_SIZE);
	pf->fd = fd;
	pf->refs = 1;
	pf->dead = true;
	if (s->nfds >= STORE_MAX_CACHED_FDS)
		goto out;
	if (s->nfds == s->capfds) {
		size_t ncap = s->capfds ? s->capfds * 2 : 16;
		struct pack_fd **nf = realloc(s->fds, ncap * sizeof(*nf));

		/* Without room in the cache the caller simply owns the fd. */
		if (!nf)
			goto out;
		s->fds = nf;
		s->capfds = ncap;
	}
	memmove(s->fds + pos + 1, s->fds + pos, (s->nfds - pos) * sizeof(*s->fds));
	s->fds[pos] = pf;
	s->nfds++;
	pf->dead = false;
out:
	pthread_mutex_unlock(&s->lock);
	*out = pf;
	return rc;
}

void store_pack_fd_put(vd_store *s, struct pack_fd *pf)
{
	bool last;

	if (!pf)
		return;
	pthread_mutex_lock(&s->lock);
	last = --pf->refs == 0 && pf->dead;
	pthread_mutex_unlock(&s->lock);
	if (last) {
		close(pf->fd);
		free(pf);
	}
}

/* The pack was deleted: its cached fd goes once its readers are done. */
static void pack_fd_forget(vd_store *s, const char *pack)
{
	struct pack_fd *pf = NULL;
	bool found;

	pthread_mutex_lock(&s->lock);
	size_t pos = fd_search(s, pack, &found);
	if (found) {
		pf = s->fds[pos];
		memmove(s->fds + pos, s->fds + pos + 1, (s->nfds - pos - 1) * sizeof(*s->fds));
		s->nfds--;
		pf->dead = true;
		if (pf->refs)
			pf = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (pf) {
		close(pf->fd);
		free(pf);
	}
}

int vd_store_has(vd_store *s, const char *id)
{
	char key[CHUNK_KEY_SIZE];

	if (!vd_id_valid(id))
		return -EINVAL;
	chunk_key(key, id);
	return vd_catalog_has(s->cat, key);
}

int vd_store_size(uint64_t *len, vd_store *s, const char *id)
{
	struct store_rec r;
	int rc = store_rec_lookup(&r, s, id);

	if (!rc)
		*len = r.raw_len;
	return rc;
}

/* A record whose lengths no buffer or file offset can hold. */
static bool rec_impossible(const struct store_rec *r)
{
	return r->stored_len > SIZE_MAX - 1 || r->raw_len > SIZE_MAX - 1 ||
	       r->off > (uint64_t)INT64_MAX - r->stored_len;
}

/* Read the chunk's stored bytes into dst (r->stored_len of them).
 * -ENOENT when the pack file is gone, -EIO when it cannot be read. */
static int read_extent(void *dst, vd_store *s, const char *id, const struct store_rec *r)
{
	struct pack_fd *pf = NULL;
	int rc = store_pack_fd_get(&pf, s, r->pack);

	if (rc)
		return rc;
	rc = vd_pread_all(pf->fd, dst, (size_t)r->stored_len, (off_t)r->off);
	store_pack_fd_put(s, pf);
	if (rc) {
		vd_err("store: reading chunk %s from pack %s: %s", id, r->pack, strerror(-rc));
		return -EIO;
	}
	return 0;
}

int store_read_stored(struct vd_buf *out, vd_store *s, const char *id,
		      const struct store_rec *r)
{
	int rc;

	if (rec_impossible(r)) {
		vd_err("store: chunk %s has an impossible extent", id);
		return -EIO;
	}
	if ((rc = vd_buf_grow(out, (size_t)r->stored_len)))
		return rc;
	if (!(rc = read_extent(out->data + out->len, s, id, r)))
		out->len += (size_t)r->stored_len;
	out->data[out->len] = '\0';
	return rc;
}

int store_read_verified(struct vd_buf *out, vd_store *s, const char *id,
			const struct store_rec *r)
{
	char got[VD_ID_SIZE];
	void *frame = NULL;
	int rc;

	if (rec_impossible(r)) {
		vd_err("store: chunk %s has an impossible extent", id);
		return -EIO;
	}
	/* The cap first: a chunk too big for out is not read at all. */
	if ((rc = vd_buf_grow(out, (size_t)r->raw_len)))
		return rc;
	if (!r->zstd) {
		rc = read_extent(out->data + out->len, s, id, r);
	} else {
		/* The frame is read into out's own room just past where its
		 * bytes go, so that reading a file allocates nothing per chunk
		 * once out is big enough (callers reuse their buffers: a
		 * malloc per chunk was what a streamed download allocated, and
		 * under ASan its quarantine kept every one). Only a cap too
		 * tight for both takes a buffer of its own. */
		size_t raw = (size_t)r->raw_len, sl = (size_t)r->stored_len;
		char *src;
		if (sl < SIZE_MAX - 1 - raw && vd_buf_grow(out, raw + sl) == 0)
			src = out->data + out->len + raw;
		else
			src = frame = malloc(sl ? sl : 1);
		if (!src)
			rc = -ENOMEM;
		else if (!(rc = read_extent(src, s, id, r)))
			rc = store_zstd_decode(s, out->data + out->len, r->raw_len, src, sl, id);
	}
	free(frame);
	if (rc)
		goto out;
	vd_id_of(got, s->key, out->data + out->len, (size_t)r->raw_len);
	if (strcmp(got, id) != 0) {
		vd_err("store: chunk %s in pack %s at %" PRIu64 " is corrupt (hashes to %s)",
		       id, r->pack, r->off, got);
		rc = -EIO;
		goto out;
	}
	out->len += (size_t)r->raw_len;
out:
	/* Keep the buffer terminated whether or not the bytes were accepted. */
	out->data[out->len] = '\0';
	return rc;
}

/* Look the chunk up and do what with its record: a pack that is gone
 * between the lookup and the read was compacted (or the chunk gathered)
 * meanwhile, and the index then says where the chunk is now. */
static int read_retrying(struct vd_buf *out, vd_store *s, const char *id,
			 int (*what)(struct vd_buf *, vd_store *, const char *,
				     const struct store_rec *),
			 struct store_rec *r)
{
	int rc;

	for (int tries = 0; tries < 4; tries++) {
		if ((rc = store_rec_lookup(r, s, id)))
			return rc;
		if ((rc = what(out, s, id, r)) != -ENOENT)
			return rc;
	}
	vd_err("store: pack %s of chunk %s is missing", r->pack, id);
	return -EIO;
}

int vd_store_read(struct vd_buf *out, vd_store *s, const char *id)
{
	struct store_rec r;

	return read_retrying(out, s, id, store_read_verified, &r);
}

int vd_store_read_stored(struct vd_buf *out, bool *zstd, uint64_t *raw_len, vd_store *s,
			 const char *id)
{
	struct store_rec r;
	int rc = read_retrying(out, s, id, store_read_stored, &r);

	if (!rc) {
		*zstd = r.zstd;
		*raw_len = r.raw_len;
	}
	return rc;
}

int vd_store_check(vd_store *s, struct vd_buf *scratch, const char *id,
		   const char *pack, uint64_t off, uint64_t stored_len, uint64_t raw_len)
{
	struct store_rec r = { .off = off, .stored_len = stored_len, .raw_len = raw_len,
			       .zstd = stored_len != raw_len };

	if (!store_pack_name_valid(pack, strlen(pack)))
		return -EIO;
	memcpy(r.pack, pack, PACK_NAME_SIZE);
	vd_buf_reset(scratch);
	int rc = store_read_verified(scratch, s, id, &r);
	return rc == -ENOENT ? -EIO : rc;
}

void vd_store_prefetch(vd_store *s, const char *id)
{
	struct store_rec r;
	struct pack_fd *pf = NULL;

	if (store_rec_lookup(&r, s, id) || rec_impossible(&r) ||
	    store_pack_fd_get(&pf, s, r.pack))
		return;
	(void)posix_fadvise(pf->fd, (off_t)r.off, (off_t)r.stored_len, POSIX_FADV_WILLNEED);
	store_pack_fd_put(s, pf);
}

/* ---- writing ---- */

int vd_store_writer_new(vd_store_writer **out, vd_store *s)
{
	vd_store_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->fd = -1;
	vd_buf_init(&w->zbuf, SIZE_MAX / 2);
	pthread_mutex_lock(&s->lock);
	w->level = s->level;
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_lock(&s->gc_lock);
	w->next = s->writers;
	if (s->writers)
		s->writers->prev = w;
	s->writers = w;
	pthread_mutex_unlock(&s->gc_lock);
	*out = w;
	return 0;
}

int store_writer_lookup(vd_store_writer *w, const char *id)
{
	vd_store *s = w->s;
	int rc;

	pthread_rwlock_rdlock(&s->gc_freeze);
	rc = vd_store_has(s, id);
	if (rc == 1) {
		if (w->nhits == w->caphits) {
			size_t ncap = w->caphits ? w->caphits * 2 : 64;
			char (*nh)[VD_ID_SIZE] = realloc(w->hits, ncap * sizeof(*nh));

			if (!nh) {
				rc = -ENOMEM;
				goto out;
			}
			w->hits = nh;
			w->caphits = ncap;
		}
		memcpy(w->hits[w->nhits++], id, VD_ID_SIZE);
		vd_store_gc_keep(s, id);
	}
out:
	pthread_rwlock_unlock(&s->gc_freeze);
	return rc;
}

/* IDs are uniformly distributed hex, so their first 16 digits make a good
 * hash as they are. */
static uint64_t id_hash(const char *id)
{
	uint64_t h = 0;

	for (int i = 0; i < 16; i++) {
		char c = id[i];

		h = h << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return h;
}

struct wentry *store_wset_find(const vd_store_writer *w, const char *id)
{
	size_t mask = w->nslots - 1, i;

	if (!w->nslots)
		return NULL;
	for (i = id_hash(id) & mask; w->slots[i]; i = (i + 1) & mask) {
		struct wentry *e = &w->ents[w->slots[i] - 1];

		if (memcmp(e->id, id, VD_ID_LEN) == 0)
			return e;
	}
	return NULL;
}

static void wset_insert_slot(uint32_t *slots, size_t nslots, const char *id,
			     uint32_t v)
{
	size_t mask = nslots - 1, i;

	for (i = id_hash(id) & mask; slots[i]; i = (i + 1) & mask)
		;
	slots[i] = v;
}

int store_wset_reserve(vd_store_writer *w)
{
	if (w->nents == w->capents) {
		size_t ncap = w->capents ? w->capents * 2 : 64;
		struct wentry *ne;

		if (ncap > UINT32_MAX - 1)
			return -ENOMEM;
		/* Workers fill in entries while they write: the array moves
		 * under their lock. */
		store_pipe_lock(w);
		ne = realloc(w->ents, ncap * sizeof(*ne));
		if (ne) {
			w->ents = ne;
			w->capents = ncap;
		}
		store_pipe_unlock(w);
		if (!ne)
			return -ENOMEM;
	}
	if ((w->nents + 1) * 2 > w->nslots) {
		size_t ns = w->nslots ? w->nslots * 2 : 128;
		uint32_t *sl = calloc(ns, sizeof(*sl));

		if (!sl)
			return -ENOMEM;
		for (size_t i = 0; i < w->nents; i++)
			wset_insert_slot(sl, ns, w->ents[i].id, (uint32_t)i + 1);
		free(w->slots);
		w->slots = sl;
		w->nslots = ns;
	}
	return 0;
}

static int writer_open_pack(vd_store_writer *w)
{
	char path[PATH_MAX];
	unsigned char rnd[8];
	ssize_t r;
	int rc;

	do
		r = getrandom(rnd, sizeof(rnd), 0);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof(rnd))
		return r < 0 ? -errno : -EIO;
	for (int i = 0; i < 8; i++)
		snprintf(w->pack + 2 * i, 3, "%02x", rnd[i]);
	rc = store_pack_path(path, sizeof(path), w->s->dir, "tmp-", w->pack);
	if (rc)
		return rc;
	/* Read-write: vd_store_writer_read reads back what is not committed. */
	w->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		rc = -errno;
		vd_err("store: cannot create %s: %s", path, strerror(errno));
		return rc;
	}
	return 0;
}

void store_wset_add(vd_store_writer *w, const char *id, uint64_t off, uint64_t stored_len,
		    uint64_t raw_len, bool zstd, bool moved)
{
	struct wentry *e = &w->ents[w->nents];

	memcpy(e->id, id, VD_ID_SIZE);
	e->off = off;
	e->stored_len = stored_len;
	e->raw_len = raw_len;
	e->zstd = zstd;
	e->moved = moved;
	wset_insert_slot(w->slots, w->nslots, id, (uint32_t)w->nents + 1);
	w->nents++;
	if (!moved)
		w->raw_bytes += raw_len;
}

int store_writer_append(vd_store_writer *w, const char *id, const void *p, size_t n,
			uint64_t raw_len, bool zstd, bool moved)
{
	int rc;

	/* After what the workers have queued, and with them idle: what
	 * they share with us is ours again until the next queued chunk. */
	if ((rc = store_pipe_drain(w)))
		return rc;
	if ((rc = store_wset_reserve(w)) || (rc = vd_store_space_check(w->s, n)))
		return rc;
	if (w->fd < 0 && (rc = writer_open_pack(w)))
		return rc;
	/* pwrite at our own offset: a failed write leaves no gap or shifted
	 * offset for the next one, it is simply overwritten. */
	rc = vd_pwrite_all(w->fd, p, n, (off_t)w->off);
	if (rc) {
		vd_err("store: writing pack %s: %s", w->pack, strerror(-rc));
		return rc;
	}
	store_wset_add(w, id, w->off, n, raw_len, zstd, moved);
	w->off += n;
	/* Start writing back what has piled up, without waiting for it: the
	 * disk works while the submission is still arriving, and the
	 * fdatasync at commit has only the tail left to wait for. */
	if (w->off - w->flushed >= STORE_WRITEBACK_STEP) {
		sync_file_range(w->fd, (off_t)w->flushed, (off_t)(w->off - w->flushed),
				SYNC_FILE_RANGE_WRITE);
		w->flushed = w->off;
	}
	return 0;
}

int vd_store_writer_put(char id_out[VD_ID_SIZE], vd_store_writer *w,
			const void *p, size_t n)
{
	char id[VD_ID_SIZE];
	int rc;

	if (w->committed)
		return -EINVAL;
	vd_id_of(id, w->s->key, p, n);
	if (store_wset_find(w, id))
		goto done;
	if ((rc = store_writer_lookup(w, id)) < 0)
		return rc;
	if (rc)
		goto done;
	/* What will not compress is stored raw at once, from here: handing
	 * it to workers would only add a copy. */
	if ((rc = store_zstd_worth_trying(&w->cctx, w->s, w->level, p, n)) < 0)
		return rc;
	if (!rc) {
		if ((rc = store_writer_append(w, id, p, n, n, false, false)))
			return rc;
		goto done;
	}
	/* From the second new chunk on, workers compress while we go on
	 * (store_pipe.c); the first, often the only one, is done here, and
	 * so is a small one, for which handing over costs more than it
	 * saves (with 4 KiB chunks, twice the time). */
	if (n < STORE_PIPE_MIN_CHUNK)
		goto by_us;
	if (!w->pipe && !w->pipe_failed && w->nents && w->s->pipe_threads) {
		if ((rc = store_pipe_start(w))) {
			vd_warn("store: no compression workers (%s); compressing inline",
				strerror(-rc));
			w->pipe_failed = true;
		}
	}
	if (w->pipe) {
		if ((rc = store_pipe_put(w, id, p, n)))
			return rc;
		goto done;
	}
by_us:
	if ((rc = store_zstd_compress(&w->zbuf, &w->cctx, w->s, w->level, p, n, true)) < 0)
		return rc;
	if (rc)
		rc = store_writer_append(w, id, w->zbuf.data, w->zbuf.len, n, true, false);
	else
		rc = store_writer_append(w, id, p, n, n, false, false);
	if (rc)
		return rc;
done:
	memcpy(id_out, id, VD_ID_SIZE);
	return 0;
}

int vd_store_writer_read(struct vd_buf *out, vd_store_writer *w, const char *id)
{
	struct wentry *e = store_wset_find(w, id);
	char got[VD_ID_SIZE];
	void *frame = NULL;
	int rc;

	if (!e)
		return vd_store_read(out, w->s, id);
	/* The workers may not have written it yet. */
	if ((rc = store_pipe_drain(w)))
		return rc;
	if ((rc = vd_buf_grow(out, e->raw_len)))
		return rc;
	if (!e->zstd) {
		rc = vd_pread_all(w->fd, out->data + out->len, e->raw_len, (off_t)e->off);
	} else if (!(frame = malloc(e->stored_len))) {
		rc = -ENOMEM;
	} else if (!(rc = vd_pread_all(w->fd, frame, e->stored_len, (off_t)e->off))) {
		rc = store_zstd_decode(w->s, out->data + out->len, e->raw_len, frame,
				       e->stored_len, id);
	}
	free(frame);
	if (rc)
		return rc;
	vd_id_of(got, w->s->key, out->data + out->len, e->raw_len);
	if (strcmp(got, id)) {
		vd_err("store: pack %s: bytes at %llu do not match chunk %s", w->pack,
		       (unsigned long long)e->off, id);
		return -EIO;
	}
	out->len += e->raw_len;
	out->data[out->len] = '\0';
	return 0;
}

uint64_t vd_store_writer_new_bytes(const vd_store_writer *w)
{
	return w->raw_bytes;
}

uint64_t vd_store_writer_stored_bytes(vd_store_writer *w)
{
	store_pipe_lock(w);
	uint64_t n = w->off;
	store_pipe_unlock(w);
	return n;
}

int vd_store_writer_commit(vd_store_writer *w, vd_catalog_batch *b)
{
	char tmp[PATH_MAX], path[PATH_MAX], key[CHUNK_KEY_SIZE], pkey[PACK_KEY_SIZE];
	unsigned char rec[STORE_REC_MAX];
	int rc;

	if (w->committed)
		return -EINVAL;
	if ((rc = store_pipe_drain(w)))
		return rc;
	/* No more puts: the workers end, and the compression context can
	 * serve another writer. */
	store_pipe_stop(w);
	store_cctx_put(w->s, w->cctx);
	w->cctx = NULL;
	if (w->fd < 0) {
		w->committed = true;
		return 0;
	}
	rc = store_pack_path(tmp, sizeof(tmp), w->s->dir, "tmp-", w->pack);
	if (!rc)
		rc = store_pack_path(path, sizeof(path), w->s->dir, "", w->pack);
	if (rc)
		return rc;
	if (fdatasync(w->fd) < 0) {
		rc = -errno;
		vd_err("store: fdatasync %s: %s", tmp, strerror(errno));
		return rc;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		vd_err("store: rename %s: %s", tmp, strerror(errno));
		return rc;
	}
	/* From here the pack has its final name; if anything below fails the
	 * writer still counts as committed, and the pack, which no catalog
	 * entry names, is removed at the next open. */
	close(w->fd);
	w->fd = -1;
	w->committed = true;
	rc = vd_fsync_dir(w->s->dir);
	if (rc) {
		vd_err("store: fsync %s: %s", w->s->dir, strerror(-rc));
		return rc;
	}
	for (size_t i = 0; i < w->nents; i++) {
		const struct wentry *e = &w->ents[i];
		struct store_rec r = { .off = e->off, .stored_len = e->stored_len,
				       .raw_len = e->raw_len, .zstd = e->zstd };

		memcpy(r.pack, w->pack, PACK_NAME_SIZE);
		chunk_key(key, e->id);
		vd_catalog_batch_put(b, key, rec, rec_encode(rec, &r));
	}
	snprintf(pkey, sizeof(pkey), "p/%s", w->pack);
	vd_catalog_batch_put(b, pkey, "", 0);
	return 0;
}

void vd_store_writer_free(vd_store_writer *w)
{
	char tmp[PATH_MAX];

	if (!w)
		return;
	store_pipe_stop(w);
	if (w->fd >= 0) {
		/* Never committed: the temporary pack is garbage. */
		close(w->fd);
		if (store_pack_path(tmp, sizeof(tmp), w->s->dir, "tmp-", w->pack) == 0)
			unlink(tmp);
	}
	pthread_mutex_lock(&w->s->gc_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		w->s->writers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&w->s->gc_lock);
	store_cctx_put(w->s, w->cctx);
	vd_buf_release(&w->zbuf);
	free(w->hits);
	free(w->ents);
	free(w->slots);
	free(w);
}

/* ---- garbage collection ---- */

int vd_store_gc_begin(vd_store *s)
{
	int rc = 0;

	/* Exclusive: no writer is between its lookup and recording it. */
	pthread_rwlock_wrlock(&s->gc_freeze);
	pthread_mutex_lock(&s->gc_lock);
	if (s->gc_active) {
		rc = -EBUSY;
		goto out;
	}
	for (vd_store_writer *w = s->writers; w && !rc; w = w->next)
		for (size_t i = 0; i < w->nhits && !rc; i++)
			rc = vd_chunkset_add(&s->gc_kept, w->hits[i]) < 0 ? -ENOMEM : 0;
	if (rc)
		vd_chunkset_clear(&s->gc_kept);
	else
		s->gc_active = true;
out:
	pthread_mutex_unlock(&s->gc_lock);
	pthread_rwlock_unlock(&s->gc_freeze);
	return rc;
}

void vd_store_gc_keep(vd_store *s, const char *id)
{
	pthread_mutex_lock(&s->gc_lock);
	/* A failed add keeps gc_kept as it was; the sweep then cannot know
	 * the chunk is wanted, so gc is told to give up (gc_kept_failed). */
	if (s->gc_active && vd_chunkset_add(&s->gc_kept, id) < 0)
		s->gc_kept_failed = true;
	pthread_mutex_unlock(&s->gc_lock);
}

void vd_store_gc_freeze(vd_store *s)
{
	pthread_rwlock_wrlock(&s->gc_freeze);
}

int vd_store_gc_kept(bool *kept, vd_store *s, const char *id)
{
	pthread_mutex_lock(&s->gc_lock);
	*kept = vd_chunkset_has(&s->gc_kept, id);
	int rc = s->gc_kept_failed ? -ENOMEM : 0;
	pthread_mutex_unlock(&s->gc_lock);
	return rc;
}

void vd_store_gc_drop(vd_catalog_batch *b, const char *id)
{
	char key[CHUNK_KEY_SIZE];

	chunk_key(key, id);
	vd_catalog_batch_del(b, key);
}

void vd_store_gc_end(vd_store *s, bool frozen)
{
	pthread_mutex_lock(&s->gc_lock);
	s->gc_active = false;
	s->gc_kept_failed = false;
	vd_chunkset_clear(&s->gc_kept);
	pthread_mutex_unlock(&s->gc_lock);
	if (frozen)
		pthread_rwlock_unlock(&s->gc_freeze);
}

struct chunks_ctx {
	vd_store_chunk_fn fn;
	void *ctx;
};

static int chunks_one(void *ctx, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	struct chunks_ctx *c = ctx;
	struct store_rec r;
	char id[VD_ID_SIZE];

	if (klen != 2 + VD_ID_LEN || rec_decode(&r, val, vlen)) {
		/* A record that is not a chunk's: fsck's to report. */
		return c->fn(c->ctx, NULL, NULL, 0, 0, 0);
	}
	memcpy(id, key + 2, VD_ID_LEN);
	id[VD_ID_LEN] = '\0';
	return c->fn(c->ctx, id, r.pack, r.off, r.stored_len, r.raw_len);
}

int vd_store_chunks(vd_store *s, vd_store_chunk_fn fn, void *ctx)
{
	struct chunks_ctx c = { fn, ctx };

	return vd_catalog_scan(s->cat, "k/", chunks_one, &c);
}

struct packs_ctx {
	vd_store *s;
	vd_store_pack_fn fn;
	void *ctx;
};

static int packs_one(void *ctx, const char *key, size_t klen, const char *val,
		     size_t vlen)
{
	struct packs_ctx *c = ctx;
	char pack[PACK_NAME_SIZE], path[PATH_MAX];
	struct stat st;

	(void)val;
	(void)vlen;
	if (klen != 2 + PACK_NAME_LEN || !store_pack_name_valid(key + 2, PACK_NAME_LEN))
		return c->fn(c->ctx, NULL, -1, -1);
	memcpy(pack, key + 2, PACK_NAME_LEN);
	pack[PACK_NAME_LEN] = '\0';
	if (store_pack_path(path, sizeof(path), c->s->dir, "", pack))
		return -ENAMETOOLONG;
	if (stat(path, &st) < 0)
		return c->fn(c->ctx, pack, -1, -1);
	return c->fn(c->ctx, pack, (int64_t)st.st_size, (int64_t)st.st_blocks * 512);
}

int vd_store_packs(vd_store *s, vd_store_pack_fn fn, void *ctx)
{
	struct packs_ctx c = { s, fn, ctx };

	return vd_catalog_scan(s->cat, "p/", packs_one, &c);
}

/* Unlink a pack file that the catalog no longer names, durably. */
int store_pack_unlink(vd_store *s, const char *pack)
{
	char path[PATH_MAX];
	int rc = store_pack_path(path, sizeof(path), s->dir, "", pack);

	if (rc)
		return rc;
	pack_fd_forget(s, pack);
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		vd_err("store: cannot remove %s: %s", path, strerror(errno));
		return rc;
	}
	return vd_fsync_dir(s->dir);
}

/* Bytes allocated to fd in [a, b), by walking its data and holes. */
static uint64_t allocated_in(int fd, off_t a, off_t b)
{
	uint64_t n = 0;

	while (a < b) {
		off_t d = lseek(fd, a, SEEK_DATA);
		if (d < 0 || d >= b)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > b)
			h = b;
		n += (uint64_t)(h - d);
		a = h;
	}
	return n;
}

int vd_store_pack_punch(uint64_t *freed, vd_store *s, const char *pack,
			const struct vd_store_extent *live, size_t n, bool dry_run)
{
	static bool warned;
	char path[PATH_MAX];
	struct stat st;
	int fd = -1, rc;

	*freed = 0;
	if (!store_pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = store_pack_path(path, sizeof(path), s->dir, "", pack)))
		return rc;
	fd = open(path, (dry_run ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* Holes are whole blocks: each gap between live extents shrinks
	 * inward to block boundaries. */
	uint64_t blk = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
	uint64_t pos = 0, size = (uint64_t)st.st_size;
	for (size_t i = 0; i <= n; i++) {
		uint64_t end = i < n ? live[i].off : size;
		uint64_t a = (pos + blk - 1) / blk * blk, b = end / blk * blk;

		if (i < n && live[i].off + live[i].len > pos)
			pos = live[i].off + live[i].len;
		if (end > size || b <= a)
			continue;
		uint64_t got = allocated_in(fd, (off_t)a, (off_t)b);
		if (!got)
			continue;
		if (!dry_run &&
		    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
			      (off_t)(b - a)) < 0) {
			rc = -errno;
			if (rc == -EOPNOTSUPP) {
				if (!warned)
					vd_warn("store: %s cannot punch holes; dead chunks in "
						"mostly live packs stay until compaction", s->dir);
				warned = true;
				rc = 0;
			} else {
				vd_err("store: punching a hole in %s: %s", path, strerror(-rc));
			}
			goto out;
		}
		*freed += got;
	}
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

int vd_store_pack_delete(vd_store *s, const char *pack)
{
	char pkey[PACK_KEY_SIZE];
	vd_catalog_batch *b = NULL;
	int rc;

	if (!store_pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	snprintf(pkey, sizeof(pkey), "p/%s", pack);
	vd_catalog_batch_del(b, pkey);
	/* First the catalog forgets it, then the file goes: a crash between
	 * the two leaves a file that vd_store_open removes. */
	if (!(rc = vd_catalog_commit(s->cat, b, true)))
		rc = store_pack_unlink(s, pack);
	vd_catalog_batch_free(b);
	return rc;
}
