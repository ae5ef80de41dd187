/*
 * cache.c - the executor's code and chunk cache (see cache.h).
 *
 * The size is kept as a running total (scanned once at open), so a put
 * costs nothing until the cap is crossed; eviction then lists both
 * directories, sorts by modification time and unlinks the oldest files
 * that no running unit has pinned. One eviction runs at a time.
 *
 * A chunk is one file under either of two names, <id> (raw) or <id>.zst
 * (the daemon's zstd frame): putting one removes the other, so the pair
 * never both count against the cap, and a pin is taken on the raw name and
 * holds both (the caller pins before it knows which it will get).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache.h"
#include "id.h"
#include "runner.h"
#include "zframe.h"

#define ZST_SUFFIX ".zst"

struct vd_cache {
	char *root;
	uint64_t cap;
	pthread_mutex_t lock;
	uint64_t bytes;            /* lock: what the two directories hold */
	struct vd_strv pinned;     /* lock: one entry per pin */
	bool evicting;             /* lock */
};

struct entry {
	char *path;
	uint64_t size;
	struct timespec mtime;
};

static const char *kinds[] = { "code", "chunks" };

/* Append every regular file of ROOT/code and ROOT/chunks to *ents. */
static int list_entries(struct entry **ents, size_t *n, const struct vd_cache *c)
{
	size_t cap = 0;
	*ents = NULL;
	*n = 0;
	for (int k = 0; k < 2; k++) {
		struct vd_buf dir = VD_BUF_INIT(8192);
		struct dirent *de;
		DIR *d;

		vd_buf_addf(&dir, "%s/%s", c->root, kinds[k]);
		d = opendir(vd_buf_cstr(&dir));
		if (!d) {
			vd_buf_release(&dir);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			struct vd_buf p = VD_BUF_INIT(8192);
			struct stat st;

			if (de->d_name[0] == '.')
				continue;
			vd_buf_addf(&p, "%s/%s", vd_buf_cstr(&dir), de->d_name);
			if (stat(vd_buf_cstr(&p), &st) < 0 || !S_ISREG(st.st_mode)) {
				vd_buf_release(&p);
				continue;
			}
			if (*n == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct entry *ne = realloc(*ents, ncap * sizeof(*ne));

				if (!ne) {
					vd_buf_release(&p);
					closedir(d);
					vd_buf_release(&dir);
					return -ENOMEM;
				}
				*ents = ne;
				cap = ncap;
			}
			(*ents)[*n] = (struct entry){ vd_buf_detach(&p, NULL),
						      (uint64_t)st.st_size, st.st_mtim };
			(*n)++;
		}
		closedir(d);
		vd_buf_release(&dir);
	}
	return 0;
}

static void free_entries(struct entry *ents, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ents[i].path);
	free(ents);
}

static int by_age(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->path, y->path);
}

int vd_cache_open(struct vd_cache **out, const char *root, uint64_t cap)
{
	struct vd_cache *c = calloc(1, sizeof(*c));
	struct entry *ents = NULL;
	size_t n = 0;
	int rc = 0;

	if (!c || !(c->root = strdup(root))) {
		free(c);
		return -ENOMEM;
	}
	c->cap = cap;
	pthread_mutex_init(&c->lock, NULL);
	for (int k = 0; k < 2 && !rc; k++) {
		struct vd_buf dir = VD_BUF_INIT(8192);

		rc = vd_buf_addf(&dir, "%s/%s", root, kinds[k]);
		if (!rc)
			rc = vd_mkdir_p(vd_buf_cstr(&dir), 0755);
		vd_buf_release(&dir);
	}
	if (!rc)
		rc = list_entries(&ents, &n, c);
	for (size_t i = 0; i < n; i++)
		c->bytes += ents[i].size;
	free_entries(ents, n);
	if (rc) {
		vd_cache_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

void vd_cache_close(struct vd_cache *c)
{
	if (!c)
		return;
	vd_strv_release(&c->pinned);
	pthread_mutex_destroy(&c->lock);
	free(c->root);
	free(c);
}

int vd_cache_path(struct vd_buf *out, const struct vd_cache *c, const char *kind,
		  const char *id)
{
	vd_buf_reset(out);
	return vd_buf_addf(out, "%s/%s/%s", c->root, kind, id);
}

int vd_cache_pin(struct vd_cache *c, const char *path)
{
	pthread_mutex_lock(&c->lock);
	int rc = vd_strv_push(&c->pinned, path);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void vd_cache_unpin(struct vd_cache *c, const char *path)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->pinned.n; i++) {
		if (strcmp(c->pinned.v[i], path))
			continue;
		free(c->pinned.v[i]);
		c->pinned.v[i] = c->pinned.v[--c->pinned.n];
		c->pinned.v[c->pinned.n] = NULL;
		break;
	}
	pthread_mutex_unlock(&c->lock);
}

void vd_cache_touch(struct vd_cache *c, const char *path)
{
	(void)c;
	/* Failure only makes the entry look older than it is. */
	utimensat(AT_FDCWD, path, NULL, 0);
}

void vd_cache_forget(struct vd_cache *c, uint64_t size)
{
	pthread_mutex_lock(&c->lock);
	c->bytes = c->bytes > size ? c->bytes - size : 0;
	pthread_mutex_unlock(&c->lock);
}

/* lock held. path, or path without ".zst", is pinned. */
static bool is_pinned(struct vd_cache *c, const char *path)
{
	size_t n = strlen(path), k = strlen(ZST_SUFFIX);

	if (n > k && !strcmp(path + n - k, ZST_SUFFIX))
		n -= k;
	for (size_t i = 0; i < c->pinned.n; i++)
		if (strlen(c->pinned.v[i]) == n && !memcmp(c->pinned.v[i], path, n))
			return true;
	return false;
}

/* Unlink the least recently used unpinned files until 90% of the cap. */
static void evict(struct vd_cache *c)
{
	struct entry *ents = NULL;
	size_t n = 0, gone = 0;
	uint64_t freed = 0, goal = c->cap / 10 * 9;

	pthread_mutex_lock(&c->lock);
	if (c->evicting || c->bytes <= c->cap) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->evicting = true;
	pthread_mutex_unlock(&c->lock);
	if (list_entries(&ents, &n, c) == 0) {
		uint64_t total = 0;

		for (size_t i = 0; i < n; i++)
			total += ents[i].size;
		if (n)
			qsort(ents, n, sizeof(*ents), by_age);
		for (size_t i = 0; i < n && total > goal; i++) {
			pthread_mutex_lock(&c->lock);
			bool keep = is_pinned(c, ents[i].path);
			pthread_mutex_unlock(&c->lock);
			if (keep || unlink(ents[i].path) < 0)
				continue;
			total -= ents[i].size;
			freed += ents[i].size;
			gone++;
		}
		pthread_mutex_lock(&c->lock);
		c->bytes = total;
		pthread_mutex_unlock(&c->lock);
		vd_info("cache: evicted %zu files (%llu bytes); %llu bytes left", gone,
			(unsigned long long)freed, (unsigned long long)total);
	}
	free_entries(ents, n);
	pthread_mutex_lock(&c->lock);
	c->evicting = false;
	pthread_mutex_unlock(&c->lock);
}

int vd_cache_put(struct vd_cache *c, const char *path, const void *p, size_t n,
		 mode_t mode)
{
	int rc = vd_runner_install(path, p, n, mode);

	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	c->bytes += n;
	bool over = c->cap && c->bytes > c->cap;
	pthread_mutex_unlock(&c->lock);
	if (over)
		evict(c);
	return 0;
}

int vd_cache_chunk_ids(struct vd_strv *out, struct vd_cache *c, size_t max)
{
	struct entry *ents = NULL;
	size_t n = 0;
	int rc = list_entries(&ents, &n, c);

	if (!rc && n)
		qsort(ents, n, sizeof(*ents), by_age);
	for (size_t i = n; i-- > 0 && !rc && out->n < max;) {
		const char *slash = strrchr(ents[i].path, '/');
		const char *name = slash ? slash + 1 : ents[i].path;
		char id[VD_ID_SIZE];
		size_t len = strlen(name);

		/* <id> or <id>.zst: the daemon needs only the ID. */
		if (len != VD_ID_LEN && !(len == VD_ID_LEN + strlen(ZST_SUFFIX) &&
					!strcmp(name + VD_ID_LEN, ZST_SUFFIX)))
			continue;
		memcpy(id, name, VD_ID_LEN);
		id[VD_ID_LEN] = '\0';
		if (strstr(ents[i].path, "/chunks/") && vd_id_valid(id))
			rc = vd_strv_push(out, id);
	}
	free_entries(ents, n);
	return rc;
}

uint64_t vd_cache_bytes(struct vd_cache *c)
{
	pthread_mutex_lock(&c->lock);
	uint64_t b = c->bytes;
	pthread_mutex_unlock(&c->lock);
	return b;
}

/* ---- chunks, raw or framed ---------------------------------------------- */

/* The file at path (zstd: a frame) hashes to id: 0 with *raw_len;
 * -EBADMSG when it does not; other -errno when it cannot be read. */
static int verify_file(uint64_t *raw_len, uint64_t *disk, const struct vd_key *k,
		       const char *id, const char *path, bool zstd, uint64_t max)
{
	struct vd_buf data = VD_BUF_INIT(max);
	char got[VD_ID_SIZE];
	int rc = vd_read_file(&data, path);

	*disk = data.len;
	if (rc == -EFBIG) {
		struct stat st;

		*disk = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
		rc = -EBADMSG;   /* larger than any chunk: not one */
	}
	if (rc)
		goto out;
	if (zstd) {
		rc = vd_zframe_id(got, raw_len, k, data.data ? data.data : "", data.len, max);
	} else {
		vd_id_of(got, k, data.data ? data.data : "", data.len);
		*raw_len = data.len;
	}
	if (!rc && strcmp(got, id) != 0)
		rc = -EBADMSG;
out:
	vd_buf_release(&data);
	return rc;
}

int vd_cache_chunk_find(struct vd_buf *path, bool *zstd, uint64_t *raw_len,
			struct vd_cache *c, const struct vd_key *k, const char *id,
			uint64_t max)
{
	int rc = -ENOENT;

	for (int z = 0; z < 2; z++) {
		uint64_t disk = 0;
		int e;

		vd_buf_reset(path);
		e = vd_buf_addf(path, "%s/chunks/%s%s", c->root, id, z ? ZST_SUFFIX : "");
		if (e)
			return e;
		e = verify_file(raw_len, &disk, k, id, path->data, z, max);
		if (e == -ENOENT)
			continue;
		if (e == 0) {
			*zstd = z;
			vd_cache_touch(c, path->data);
			return 0;
		}
		if (e != -EBADMSG)
			return e;
		vd_warn("cache: %s does not %s to its name; fetching again", path->data,
			z ? "decompress and hash" : "hash");
		if (unlink(path->data) == 0)
			vd_cache_forget(c, disk);
		rc = -ENOENT;
	}
	vd_buf_reset(path);
	return rc;
}

int vd_cache_chunk_put(struct vd_buf *path, uint64_t *raw_len, struct vd_cache *c,
		       const struct vd_key *k, const char *id, const void *p, size_t n,
		       bool zstd, uint64_t max)
{
	struct vd_buf other = VD_BUF_INIT(8192);
	char got[VD_ID_SIZE];
	struct stat st;
	int rc;

	if (zstd) {
		rc = vd_zframe_id(got, raw_len, k, p, n, max);
		if (rc == -EBADMSG)
			got[0] = '\0';
		else if (rc)
			return rc;
	} else {
		vd_id_of(got, k, p, n);
		*raw_len = n;
	}
	if (strcmp(got, id) != 0)
		return -EBADMSG;
	vd_buf_reset(path);
	rc = vd_buf_addf(path, "%s/chunks/%s%s", c->root, id, zstd ? ZST_SUFFIX : "");
	if (!rc)
		rc = vd_buf_addf(&other, "%s/chunks/%s%s", c->root, id, zstd ? "" : ZST_SUFFIX);
	if (rc)
		goto out;
	/* A copy under the other name (a chunk fetched raw before the
	 * daemon stored it compressed, or the reverse) would count twice. */
	if (stat(other.data, &st) == 0 && unlink(other.data) == 0)
		vd_cache_forget(c, (uint64_t)st.st_size);
	rc = vd_cache_put(c, path->data, p, n, 0644);
out:
	vd_buf_release(&other);
	return rc;
}
