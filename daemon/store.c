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

#include "chunkset.h"
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

	pthread_mutex_t lock;
	/* Read fds by pack name, sorted by name for binary search. Guarded by
	 * lock; a reader takes a reference (pack_fd_get) and uses the fd with
	 * pread after dropping the lock. */
	struct pack_fd **fds;
	size_t nfds;
	size_t capfds;

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
	/* Chunks found already stored, which the commit will reference: gc
	 * must not take them (see vd_store.gc_freeze). Appended under a
	 * shared gc_freeze, read by vd_store_gc_begin under an exclusive one. */
	char (*hits)[VD_ID_SIZE];
	size_t nhits, caphits;
	bool raw;                      /* compaction: write even what is stored */
	struct vd_store_writer *next, *prev;   /* vd_store.gc_lock */
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
	pthread_mutex_init(&s->gc_lock, NULL);
	pthread_rwlock_init(&s->gc_freeze, NULL);
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
	for (size_t i = 0; i < s->nfds; i++) {
		close(s->fds[i]->fd);
		free(s->fds[i]);
	}
	free(s->fds);
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

/* A reference to the pack's read fd: release it with pack_fd_put. When
 * the cache is full the entry is the caller's alone (refs 1, dead), and
 * the put closes it. -ENOENT when the pack file is gone. */
static int pack_fd_get(struct pack_fd **out, vd_store *s, const char *pack)
{
	char path[PATH_MAX];
	struct pack_fd *pf = NULL;
	bool found;
	size_t pos;
	int fd, rc = 0;

	rc = pack_path(path, sizeof(path), s->dir, "", pack);
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

static void pack_fd_put(vd_store *s, struct pack_fd *pf)
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
	char pack[PACK_NAME_SIZE];
	uint64_t off;

	return rec_lookup(s, id, pack, &off, len);
}

/* Read and verify len bytes at off in pack into out (appended). */
static int read_verified(struct vd_buf *out, vd_store *s, const char *id,
			 const char *pack, uint64_t off, uint64_t len)
{
	char got[VD_ID_SIZE];
	struct pack_fd *pf = NULL;
	int rc;

	if (len > SIZE_MAX - 1 || off > (uint64_t)INT64_MAX - len) {
		vd_err("store: chunk %s has an impossible extent", id);
		return -EIO;
	}
	rc = vd_buf_grow(out, (size_t)len);
	if (rc)
		return rc;
	rc = pack_fd_get(&pf, s, pack);
	if (rc)
		return rc;
	rc = vd_pread_all(pf->fd, out->data + out->len, (size_t)len, (off_t)off);
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
	pack_fd_put(s, pf);
	return rc;
}

int vd_store_read(struct vd_buf *out, vd_store *s, const char *id)
{
	char pack[PACK_NAME_SIZE];
	uint64_t off, len;
	int rc;

	/* A pack that is gone between the lookup and the open was compacted
	 * meanwhile: the index says where the chunk is now. */
	for (int tries = 0; tries < 4; tries++) {
		rc = rec_lookup(s, id, pack, &off, &len);
		if (rc)
			return rc;
		rc = read_verified(out, s, id, pack, off, len);
		if (rc != -ENOENT)
			return rc;
	}
	vd_err("store: pack %s of chunk %s is missing", pack, id);
	return -EIO;
}

int vd_store_check(vd_store *s, struct vd_buf *scratch, const char *id,
		   const char *pack, uint64_t off, uint64_t len)
{
	vd_buf_reset(scratch);
	int rc = read_verified(scratch, s, id, pack, off, len);
	return rc == -ENOENT ? -EIO : rc;
}

void vd_store_prefetch(vd_store *s, const char *id)
{
	char pack[PACK_NAME_SIZE];
	uint64_t off, len;
	struct pack_fd *pf = NULL;

	if (rec_lookup(s, id, pack, &off, &len) || off > (uint64_t)INT64_MAX - len ||
	    pack_fd_get(&pf, s, pack))
		return;
	(void)posix_fadvise(pf->fd, (off_t)off, (off_t)len, POSIX_FADV_WILLNEED);
	pack_fd_put(s, pf);
}

/* ---- writing ---- */

int vd_store_writer_new(vd_store_writer **out, vd_store *s)
{
	vd_store_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->s = s;
	w->fd = -1;
	pthread_mutex_lock(&s->gc_lock);
	w->next = s->writers;
	if (s->writers)
		s->writers->prev = w;
	s->writers = w;
	pthread_mutex_unlock(&s->gc_lock);
	*out = w;
	return 0;
}

/* Is the chunk stored? If so, remember that this writer will reference
 * it (see vd_store.gc_freeze). 1, 0 or -errno. */
static int writer_lookup(vd_store_writer *w, const char *id)
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
	rc = w->raw ? 0 : writer_lookup(w, id);
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
	pthread_mutex_lock(&w->s->gc_lock);
	if (w->prev)
		w->prev->next = w->next;
	else
		w->s->writers = w->next;
	if (w->next)
		w->next->prev = w->prev;
	pthread_mutex_unlock(&w->s->gc_lock);
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
	char id[VD_ID_SIZE], pack[PACK_NAME_SIZE];

	if (klen != 2 + VD_ID_LEN || vlen != STORE_REC_SIZE ||
	    !pack_name_valid(val, PACK_NAME_LEN)) {
		/* A record that is not a chunk's: fsck's to report. */
		return c->fn(c->ctx, NULL, NULL, 0, 0);
	}
	memcpy(id, key + 2, VD_ID_LEN);
	id[VD_ID_LEN] = '\0';
	memcpy(pack, val, PACK_NAME_LEN);
	pack[PACK_NAME_LEN] = '\0';
	return c->fn(c->ctx, id, pack, get_le64((const unsigned char *)val + 16),
		     get_le64((const unsigned char *)val + 24));
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
	if (klen != 2 + PACK_NAME_LEN || !pack_name_valid(key + 2, PACK_NAME_LEN))
		return c->fn(c->ctx, NULL, -1, -1);
	memcpy(pack, key + 2, PACK_NAME_LEN);
	pack[PACK_NAME_LEN] = '\0';
	if (pack_path(path, sizeof(path), c->s->dir, "", pack))
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
static int pack_unlink(vd_store *s, const char *pack)
{
	char path[PATH_MAX];
	int rc = pack_path(path, sizeof(path), s->dir, "", pack);

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
	if (!pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = pack_path(path, sizeof(path), s->dir, "", pack)))
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

	if (!pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	snprintf(pkey, sizeof(pkey), "p/%s", pack);
	vd_catalog_batch_del(b, pkey);
	/* First the catalog forgets it, then the file goes: a crash between
	 * the two leaves a file that vd_store_open removes. */
	if (!(rc = vd_catalog_commit(s->cat, b, true)))
		rc = pack_unlink(s, pack);
	vd_catalog_batch_free(b);
	return rc;
}

int vd_store_pack_compact(uint64_t *moved, vd_store *s, const char *pack,
			  char (*ids)[VD_ID_SIZE], size_t n)
{
	struct vd_buf buf = VD_BUF_INIT(SIZE_MAX / 2);
	vd_store_writer *w = NULL;
	vd_catalog_batch *b = NULL;
	char pkey[PACK_KEY_SIZE], got[VD_ID_SIZE];
	int rc;

	*moved = 0;
	if (!pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)) || (rc = vd_store_writer_new(&w, s)))
		goto out;
	w->raw = true;
	for (size_t i = 0; i < n; i++) {
		char at[PACK_NAME_SIZE];
		uint64_t off, len;

		/* Only what still lies in this pack: the caller's list may be
		 * a moment old. */
		if ((rc = rec_lookup(s, ids[i], at, &off, &len)) == -ENOENT)
			continue;
		if (rc)
			goto out;
		if (strcmp(at, pack))
			continue;
		vd_buf_reset(&buf);
		if ((rc = read_verified(&buf, s, ids[i], pack, off, len)))
			goto out;
		if ((rc = vd_store_writer_put(got, w, buf.data, buf.len)))
			goto out;
		*moved += len;
	}
	/* The new pack is durable before the batch points the index at it,
	 * and the old one is unlinked only after the batch: a crash at any
	 * point leaves every chunk readable from one pack or the other, and
	 * the pack nothing names is removed at the next start. */
	if ((rc = vd_store_writer_commit(w, b)))
		goto out;
	snprintf(pkey, sizeof(pkey), "p/%s", pack);
	vd_catalog_batch_del(b, pkey);
	if ((rc = vd_catalog_commit(s->cat, b, true)))
		goto out;
	rc = pack_unlink(s, pack);
out:
	vd_store_writer_free(w);
	vd_catalog_batch_free(b);
	vd_buf_release(&buf);
	return rc;
}
