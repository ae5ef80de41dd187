/*
 * store.c - content-addressed chunks in pack files (see store.h).
 *
 * Layout under the store directory:
 *   <pack>.pack       committed packs: chunk bytes back to back, raw, with
 *                     no per-chunk header (the catalog index says where each
 *                     chunk lies). <pack> is 16 lowercase hex digits.
 *   tmp-<pack>.pack   a pack being written; never referenced by the catalog.
 *
 * Catalog entries:
 *   k/<chunk-id> -> index record (STORE_REC_SIZE bytes):
 *                     bytes  0..15  pack name, 16 ASCII lowercase hex digits
 *                     bytes 16..23  offset of the chunk in the pack, u64 LE
 *                     bytes 24..31  length of the chunk, u64 LE
 *   p/<pack>     -> empty value; its presence says the pack is committed.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

#define PACK_NAME_LEN 16
#define PACK_NAME_SIZE (PACK_NAME_LEN + 1)
#define STORE_REC_SIZE 32
#define CHUNK_KEY_SIZE (2 + VD_ID_SIZE)          /* "k/" + id + NUL */
#define PACK_KEY_SIZE (2 + PACK_NAME_SIZE)       /* "p/" + name + NUL */
/* Packs kept open for reads. Past this, a read opens and closes its own fd
 * rather than evicting one that another thread may be using. */
#define STORE_MAX_CACHED_FDS 512
/* Writers start writeback of their pack every this many bytes. */
#define WRITEBACK_STEP ((uint64_t)32 << 20)
/*
 * Room kept free on the state disk. Chunks are refused (-ENOSPC) before
 * the disk is full, so that the catalog's small writes (which record that
 * a run waits, or a lease ends) still find room, and RocksDB is not pushed
 * into its stuck state (catalog.c) by our own writes: 1% of the disk, at
 * least 4 MiB and at most 256 MiB.
 */
#define RESERVE_MIN ((uint64_t)4 << 20)
#define RESERVE_MAX ((uint64_t)256 << 20)

struct pack_fd {
	char name[PACK_NAME_SIZE];
	int fd;
};

struct vd_store {
	/* Set at open, read-only afterwards. */
	char *dir;
	vd_catalog *cat;
	const struct vd_key *key;
	uint64_t reserve;              /* bytes kept free (RESERVE_*) */

	pthread_mutex_t lock;
	/* Read fds by pack name, sorted by name for binary search. Guarded by
	 * lock; an fd once cached stays open until vd_store_close, so readers
	 * use it with pread after dropping the lock. */
	struct pack_fd *fds;
	size_t nfds;
	size_t capfds;
};

/* A chunk this writer has put in its pack. */
struct wentry {
	char id[VD_ID_SIZE];
	uint64_t off;
	uint64_t len;
};

struct vd_store_writer {
	vd_store *s;
	int fd;                        /* -1 until the first new chunk */
	char pack[PACK_NAME_SIZE];
	uint64_t off;                  /* bytes in the pack so far */
	uint64_t flushed;              /* writeback started up to here */
	struct wentry *ents;           /* new chunks in write order */
	size_t nents, capents;
	/* Open-addressing set over ents: slot holds index + 1, 0 is empty.
	 * Size is a power of two kept at least twice nents. */
	uint32_t *slots;
	size_t nslots;
	bool committed;
};

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

static bool pack_name_valid(const char *s, size_t n)
{
	if (n != PACK_NAME_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void rec_encode(unsigned char rec[STORE_REC_SIZE], const char *pack,
		       uint64_t off, uint64_t len)
{
	memcpy(rec, pack, PACK_NAME_LEN);
	put_le64(rec + 16, off);
	put_le64(rec + 24, len);
}

static void chunk_key(char key[CHUNK_KEY_SIZE], const char *id)
{
	snprintf(key, CHUNK_KEY_SIZE, "k/%s", id);
}

/* Look up the index record of a committed chunk. */
static int rec_lookup(vd_store *s, const char *id, char pack[PACK_NAME_SIZE],
		      uint64_t *off, uint64_t *len)
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
	if (vlen != STORE_REC_SIZE || !pack_name_valid(val, PACK_NAME_LEN)) {
		vd_err("store: bad index record for chunk %s (%zu bytes)", id, vlen);
		rc = -EIO;
		goto out;
	}
	memcpy(pack, val, PACK_NAME_LEN);
	pack[PACK_NAME_LEN] = '\0';
	*off = get_le64((const unsigned char *)val + 16);
	*len = get_le64((const unsigned char *)val + 24);
out:
	free(val);
	return rc;
}

static int pack_path(char *out, size_t size, const char *dir, const char *prefix,
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
			if (!pack_name_valid(name, n - 5))
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
	pthread_mutex_init(&s->lock, NULL);
	rc = store_sweep(s);
	if (rc) {
		vd_err("store: cleaning %s failed: %s", dir, strerror(-rc));
		vd_store_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vd_store_close(vd_store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nfds; i++)
		close(s->fds[i].fd);
	free(s->fds);
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
		int c = strcmp(s->fds[mid].name, name);

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

/* An fd to read the pack from. *owned is true when the caller must close it
 * (the cache was full); otherwise it belongs to the cache. */
static int pack_fd_get(int *fd_out, bool *owned, vd_store *s, const char *pack)
{
	char path[PATH_MAX];
	bool found;
	size_t pos;
	int fd, rc = 0;

	rc = pack_path(path, sizeof(path), s->dir, "", pack);
	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	pos = fd_search(s, pack, &found);
	if (found) {
		*fd_out = s->fds[pos].fd;
		*owned = false;
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		vd_err("store: cannot open pack %s: %s", path, strerror(errno));
		/* The index names a pack that is gone: the store is damaged. */
		if (rc == -ENOENT)
			rc = -EIO;
		goto out;
	}
	*fd_out = fd;
	*owned = true;
	if (s->nfds >= STORE_MAX_CACHED_FDS)
		goto out;
	if (s->nfds == s->capfds) {
		size_t ncap = s->capfds ? s->capfds * 2 : 16;
		struct pack_fd *nf = realloc(s->fds, ncap * sizeof(*nf));

		/* Without room in the cache the caller simply owns the fd. */
		if (!nf)
			goto out;
		s->fds = nf;
		s->capfds = ncap;
	}
	memmove(s->fds + pos + 1, s->fds + pos, (s->nfds - pos) * sizeof(*s->fds));
	memcpy(s->fds[pos].name, pack, PACK_NAME_SIZE);
	s->fds[pos].fd = fd;
	s->nfds++;
	*owned = false;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
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
	char pack[PACK_NAME_SIZE];
	uint64_t off;

	return rec_lookup(s, id, pack, &off, len);
}

int vd_store_read(struct vd_buf *out, vd_store *s, const char *id)
{
	char pack[PACK_NAME_SIZE], got[VD_ID_SIZE];
	uint64_t off, len;
	bool owned = false;
	int fd = -1, rc;

	rc = rec_lookup(s, id, pack, &off, &len);
	if (rc)
		return rc;
	if (len > SIZE_MAX - 1 || off > (uint64_t)INT64_MAX - len) {
		vd_err("store: chunk %s has an impossible extent", id);
		return -EIO;
	}
	rc = vd_buf_grow(out, (size_t)len);
	if (rc)
		return rc;
	rc = pack_fd_get(&fd, &owned, s, pack);
	if (rc)
		return rc;
	rc = vd_pread_all(fd, out->data + out->len, (size_t)len, (off_t)off);
	if (rc) {
		vd_err("store: reading chunk %s from pack %s: %s", id, pack,
		       strerror(-rc));
		rc = -EIO;
		goto out;
	}
	vd_id_of(got, s->key, out->data + out->len, (size_t)len);
	if (strcmp(got, id) != 0) {
		vd_err("store: chunk %s in pack %s at %" PRIu64 " is corrupt (hashes to %s)",
		       id, pack, off, got);
		rc = -EIO;
		goto out;
	}
	out->len += (size_t)len;
out:
	/* Keep the buffer terminated whether or not the bytes were accepted. */
	out->data[out->len] = '\0';
	if (owned)
		close(fd);
	return rc;
}

void vd_store_prefetch(vd_store *s, const char *id)
{
	char pack[PACK_NAME_SIZE];
	uint64_t off, len;
	bool owned = false;
	int fd = -1;

	if (rec_lookup(s, id, pack, &off, &len) || off > (uint64_t)INT64_MAX - len ||
	    pack_fd_get(&fd, &owned, s, pack))
		return;
	(void)posix_fadvise(fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	if (owned)
		close(fd);
}

/* ---- writing ---- */

int vd_store_writer_new(vd_store_writer **out, vd_store *s)
{
	vd_store_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->fd = -1;
	*out = w;
	return 0;
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

static struct wentry *wset_find(const vd_store_writer *w, const char *id)
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

/* Make room for one more entry (array and set). */
static int wset_reserve(vd_store_writer *w)
{
	if (w->nents == w->capents) {
		size_t ncap = w->capents ? w->capents * 2 : 64;
		struct wentry *ne;

		if (ncap > UINT32_MAX - 1)
			return -ENOMEM;
		ne = realloc(w->ents, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		w->ents = ne;
		w->capents = ncap;
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
	rc = pack_path(path, sizeof(path), w->s->dir, "tmp-", w->pack);
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

int vd_store_writer_put(char id_out[VD_ID_SIZE], vd_store_writer *w,
			const void *p, size_t n)
{
	char id[VD_ID_SIZE];
	struct wentry *e;
	int rc;

	if (w->committed)
		return -EINVAL;
	vd_id_of(id, w->s->key, p, n);
	if (wset_find(w, id))
		goto done;
	rc = vd_store_has(w->s, id);
	if (rc < 0)
		return rc;
	if (rc)
		goto done;
	rc = wset_reserve(w);
	if (rc)
		return rc;
	rc = vd_store_space_check(w->s, n);
	if (rc)
		return rc;
	if (w->fd < 0) {
		rc = writer_open_pack(w);
		if (rc)
			return rc;
	}
	/* pwrite at our own offset: a failed write leaves no gap or shifted
	 * offset for the next one, it is simply overwritten. */
	rc = vd_pwrite_all(w->fd, p, n, (off_t)w->off);
	if (rc) {
		vd_err("store: writing pack %s: %s", w->pack, strerror(-rc));
		return rc;
	}
	e = &w->ents[w->nents];
	memcpy(e->id, id, VD_ID_SIZE);
	e->off = w->off;
	e->len = n;
	wset_insert_slot(w->slots, w->nslots, id, (uint32_t)w->nents + 1);
	w->nents++;
	w->off += n;
	/* Start writing back what has piled up, without waiting for it: the
	 * disk works while the submission is still arriving, and the
	 * fdatasync at commit has only the tail left to wait for. */
	if (w->off - w->flushed >= WRITEBACK_STEP) {
		sync_file_range(w->fd, (off_t)w->flushed, (off_t)(w->off - w->flushed),
				SYNC_FILE_RANGE_WRITE);
		w->flushed = w->off;
	}
done:
	memcpy(id_out, id, VD_ID_SIZE);
	return 0;
}

int vd_store_writer_read(struct vd_buf *out, vd_store_writer *w, const char *id)
{
	struct wentry *e = wset_find(w, id);
	char got[VD_ID_SIZE];
	int rc;
	if (!e)
		return vd_store_read(out, w->s, id);
	if ((rc = vd_buf_grow(out, e->len)))
		return rc;
	if ((rc = vd_pread_all(w->fd, out->data + out->len, e->len, (off_t)e->off)))
		return rc;
	vd_id_of(got, w->s->key, out->data + out->len, e->len);
	if (strcmp(got, id)) {
		vd_err("store: pack %s: bytes at %llu do not match chunk %s", w->pack,
		       (unsigned long long)e->off, id);
		return -EIO;
	}
	out->len += e->len;
	out->data[out->len] = '\0';
	return 0;
}

uint64_t vd_store_writer_new_bytes(const vd_store_writer *w)
{
	return w->off;
}

int vd_store_writer_commit(vd_store_writer *w, vd_catalog_batch *b)
{
	char tmp[PATH_MAX], path[PATH_MAX], key[CHUNK_KEY_SIZE], pkey[PACK_KEY_SIZE];
	unsigned char rec[STORE_REC_SIZE];
	int rc;

	if (w->committed)
		return -EINVAL;
	if (w->fd < 0) {
		w->committed = true;
		return 0;
	}
	rc = pack_path(tmp, sizeof(tmp), w->s->dir, "tmp-", w->pack);
	if (!rc)
		rc = pack_path(path, sizeof(path), w->s->dir, "", w->pack);
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
		rec_encode(rec, w->pack, w->ents[i].off, w->ents[i].len);
		chunk_key(key, w->ents[i].id);
		vd_catalog_batch_put(b, key, rec, sizeof(rec));
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
	if (w->fd >= 0) {
		/* Never committed: the temporary pack is garbage. */
		close(w->fd);
		if (pack_path(tmp, sizeof(tmp), w->s->dir, "tmp-", w->pack) == 0)
			unlink(tmp);
	}
	free(w->ents);
	free(w->slots);
	free(w);
}
