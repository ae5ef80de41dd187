/*
 * catalog.c - the metadata database over the RocksDB C API (see catalog.h).
 */
#include "catalog.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <rocksdb/c.h>

#include "util.h"

/*
 * A full disk. Once a write to the WAL fails, RocksDB refuses every later
 * write until DB::Resume(), which the C API of Debian 12's RocksDB (7.8)
 * does not offer; reads go on working. So a commit that fails for want of
 * space marks the catalog `stuck`, and a later commit, once the disk has
 * room again, closes and reopens the database: recovery replays the WAL,
 * and every commit that was acknowledged is there. Reopening needs the
 * database to itself, hence the rwlock: every call holds it shared, the
 * reopen holds it exclusive. A thread inside a scan callback already holds
 * it shared and never reopens (that would wait for itself).
 *
 * RocksDB's own info log (LOG) is kept to fatal messages: Debian's build
 * keeps assertions, and one fires when the log is written again after a
 * write to it failed, which a full disk causes. Our log says what matters.
 */
#define CATALOG_REOPEN_EVERY_MS 1000
#define CATALOG_REOPEN_MIN_FREE ((uint64_t)1 << 20)

static _Thread_local int held_shared;

struct vd_catalog {
	/* Guards db: shared for every use, exclusive to reopen it. */
	pthread_rwlock_t lock;
	rocksdb_t *db;                       /* lock; NULL only after a failed reopen */
	atomic_bool stuck;                   /* a write failed for want of space */
	_Atomic int64_t failed_reopen_ms;    /* vd_mono_ms of the last failed reopen */
	/* Synced commits written (vd_catalog_syncs): what a result costs in
	 * fsyncs of the log, for /metrics and the engine's tests. */
	atomic_uint_fast64_t syncs;
	/* The rest is created at open and never changes; RocksDB's objects
	 * are thread-safe. */
	rocksdb_options_t *opts;
	rocksdb_block_based_table_options_t *topts;
	rocksdb_cache_t *cache;
	rocksdb_readoptions_t *ropts;
	rocksdb_writeoptions_t *wopts;       /* asynchronous commits */
	rocksdb_writeoptions_t *wopts_sync;  /* commits that wait for the WAL */
	char *path;                          /* for log messages */
};

struct vd_catalog_batch {
	rocksdb_writebatch_t *wb;
};

#define CATALOG_CACHE_BYTES ((size_t)64 << 20)
#define CATALOG_MEMTABLE_BYTES ((size_t)16 << 20)

static void catalog_free(vd_catalog *c)
{
	if (c->db)
		rocksdb_close(c->db);
	pthread_rwlock_destroy(&c->lock);
	if (c->ropts)
		rocksdb_readoptions_destroy(c->ropts);
	if (c->wopts)
		rocksdb_writeoptions_destroy(c->wopts);
	if (c->wopts_sync)
		rocksdb_writeoptions_destroy(c->wopts_sync);
	if (c->opts)
		rocksdb_options_destroy(c->opts);
	/* The options hold references to the table options and the cache, so
	 * they go after the options. */
	if (c->topts)
		rocksdb_block_based_options_destroy(c->topts);
	if (c->cache)
		rocksdb_cache_destroy(c->cache);
	free(c->path);
	free(c);
}

int vd_catalog_open(vd_catalog **out, const char *path)
{
	vd_catalog *c;
	char *err = NULL;
	int rc;

	rc = vd_mkdir_p(path, 0700);
	if (rc) {
		vd_err("catalog %s: cannot create directory: %s", path, strerror(-rc));
		return rc;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_rwlock_init(&c->lock, NULL);
	c->path = strdup(path);
	c->opts = rocksdb_options_create();
	c->topts = rocksdb_block_based_options_create();
	c->cache = rocksdb_cache_create_lru(CATALOG_CACHE_BYTES);
	c->ropts = rocksdb_readoptions_create();
	c->wopts = rocksdb_writeoptions_create();
	c->wopts_sync = rocksdb_writeoptions_create();
	if (!c->path || !c->opts || !c->topts || !c->cache || !c->ropts ||
	    !c->wopts || !c->wopts_sync) {
		rc = -ENOMEM;
		goto fail;
	}
	rocksdb_block_based_options_set_block_cache(c->topts, c->cache);
	/* The table options take ownership of the filter policy. */
	rocksdb_block_based_options_set_filter_policy(
		c->topts, rocksdb_filterpolicy_create_bloom(10));
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(c->topts, 1);
	rocksdb_options_set_block_based_table_factory(c->opts, c->topts);
	rocksdb_options_set_create_if_missing(c->opts, 1);
	rocksdb_options_set_keep_log_file_num(c->opts, 4);
	rocksdb_options_set_info_log_level(c->opts, 4 /* FATAL_LEVEL, see above */);
	rocksdb_options_set_max_open_files(c->opts, 512);
	/* RocksDB preallocates each write-ahead log at 1.1 times the memtable
	 * size, on disk from the first write: with the default 64 MiB memtable
	 * a fresh state dir took 72 MB for a catalog of a few hundred KB. The
	 * catalog is metadata (about 100 bytes per chunk), so 16 MiB memtables
	 * hold 150,000 chunks' entries before a flush. */
	rocksdb_options_set_write_buffer_size(c->opts, CATALOG_MEMTABLE_BYTES);
	rocksdb_writeoptions_set_sync(c->wopts_sync, 1);

	/* LZ4 when this RocksDB build has it (values are mostly JSON and
	 * compress well); otherwise fall back to no compression. */
	rocksdb_options_set_compression(c->opts, rocksdb_lz4_compression);
	c->db = rocksdb_open(c->opts, path, &err);
	if (!c->db && err && strstr(err, "ompression")) {
		vd_debug("catalog %s: no LZ4 (%s); storing uncompressed", path, err);
		rocksdb_free(err);
		err = NULL;
		rocksdb_options_set_compression(c->opts, rocksdb_no_compression);
		c->db = rocksdb_open(c->opts, path, &err);
	}
	if (!c->db) {
		vd_err("catalog %s: open failed: %s", path, err ? err : "unknown error");
		rocksdb_free(err);
		rc = -EIO;
		goto fail;
	}
	*out = c;
	return 0;
fail:
	catalog_free(c);
	return rc;
}

void vd_catalog_close(vd_catalog *c)
{
	if (c)
		catalog_free(c);
}

/* RocksDB says what went wrong only in words; a full disk is the one
 * cause callers act on (they wait for space instead of failing). */
static int catalog_error(vd_catalog *c, const char *what, const char *key, char *err)
{
	int rc = strstr(err, "No space left") || strstr(err, "Disk quota") ? -ENOSPC : -EIO;
	if (rc == -ENOSPC && !atomic_exchange(&c->stuck, true))
		vd_warn("catalog %s: writes wait for space on the disk; reopened once "
			"there is", c->path);
	vd_err("catalog %s: %s %s: %s", c->path, what, key ? key : "", err);
	rocksdb_free(err);
	return rc;
}

static void shared_lock(vd_catalog *c)
{
	pthread_rwlock_rdlock(&c->lock);
	held_shared++;
}

static void shared_unlock(vd_catalog *c)
{
	held_shared--;
	pthread_rwlock_unlock(&c->lock);
}

static int get_locked(char **val, size_t *vlen, vd_catalog *c, const char *key)
{
	rocksdb_pinnableslice_t *ps;
	const char *v;
	char *err = NULL, *copy;
	size_t n;

	ps = rocksdb_get_pinned(c->db, c->ropts, key, strlen(key), &err);
	if (err)
		return catalog_error(c, "get", key, err);
	if (!ps)
		return -ENOENT;
	v = rocksdb_pinnableslice_value(ps, &n);
	copy = malloc(n + 1);
	if (!copy) {
		rocksdb_pinnableslice_destroy(ps);
		return -ENOMEM;
	}
	if (n)
		memcpy(copy, v, n);
	copy[n] = '\0';
	rocksdb_pinnableslice_destroy(ps);
	*val = copy;
	if (vlen)
		*vlen = n;
	return 0;
}

int vd_catalog_get(char **val, size_t *vlen, vd_catalog *c, const char *key)
{
	shared_lock(c);
	int rc = c->db ? get_locked(val, vlen, c, key) : -EIO;
	shared_unlock(c);
	return rc;
}

int vd_catalog_has(vd_catalog *c, const char *key)
{
	rocksdb_pinnableslice_t *ps = NULL;
	char *err = NULL;
	int rc = -EIO;

	shared_lock(c);
	if (c->db)
		ps = rocksdb_get_pinned(c->db, c->ropts, key, strlen(key), &err);
	if (err)
		rc = catalog_error(c, "get", key, err);
	else if (c->db)
		rc = ps ? 1 : 0;
	shared_unlock(c);
	if (ps)
		rocksdb_pinnableslice_destroy(ps);
	return rc;
}

int vd_catalog_get_json(json_t **out, vd_catalog *c, const char *key)
{
	json_error_t jerr;
	json_t *j;
	char *val;
	size_t n;
	int rc;

	rc = vd_catalog_get(&val, &n, c, key);
	if (rc)
		return rc;
	j = json_loadb(val, n, JSON_DECODE_ANY, &jerr);
	free(val);
	if (!j) {
		vd_err("catalog %s: %s is not valid JSON: %s", c->path, key, jerr.text);
		return -EBADMSG;
	}
	*out = j;
	return 0;
}

int vd_catalog_scan(vd_catalog *c, const char *prefix, vd_catalog_scan_fn fn,
		    void *ctx)
{
	size_t plen = strlen(prefix);
	rocksdb_iterator_t *it = NULL;
	char *err = NULL;
	int rc = 0;

	shared_lock(c);
	if (!c->db) {
		rc = -EIO;
		goto out;
	}
	it = rocksdb_create_iterator(c->db, c->ropts);
	if (!it) {
		rc = -ENOMEM;
		goto out;
	}
	for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);

		/* Keys are ordered bytewise, so the first key without the
		 * prefix ends the range. */
		if (klen < plen || memcmp(k, prefix, plen) != 0)
			break;
		rc = fn(ctx, k, klen, v, vlen);
		if (rc)
			goto out;
	}
	rocksdb_iter_get_error(it, &err);
	if (err)
		rc = catalog_error(c, "scan", prefix, err);
out:
	if (it)
		rocksdb_iter_destroy(it);
	shared_unlock(c);
	return rc;
}

int vd_catalog_batch_new(vd_catalog_batch **out)
{
	vd_catalog_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->wb = rocksdb_writebatch_create();
	if (!b->wb) {
		free(b);
		return -ENOMEM;
	}
	*out = b;
	return 0;
}

void vd_catalog_batch_free(vd_catalog_batch *b)
{
	if (!b)
		return;
	rocksdb_writebatch_destroy(b->wb);
	free(b);
}

void vd_catalog_batch_put(vd_catalog_batch *b, const char *key, const void *val,
			  size_t vlen)
{
	rocksdb_writebatch_put(b->wb, key, strlen(key), vlen ? val : "", vlen);
}

int vd_catalog_batch_put_json(vd_catalog_batch *b, const char *key, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);

	if (!s)
		return -ENOMEM;
	vd_catalog_batch_put(b, key, s, strlen(s));
	free(s);
	return 0;
}

void vd_catalog_batch_del(vd_catalog_batch *b, const char *key)
{
	rocksdb_writebatch_delete(b->wb, key, strlen(key));
}

size_t vd_catalog_batch_count(const vd_catalog_batch *b)
{
	return (size_t)rocksdb_writebatch_count(b->wb);
}

/* Close and reopen a stuck database once the disk has room (see the top
 * of this file); after a reopen that failed, not again for a second. Never
 * from inside a scan. */
static void maybe_reopen(vd_catalog *c)
{
	struct statvfs sv;
	if (held_shared ||
	    vd_mono_ms() - atomic_load(&c->failed_reopen_ms) < CATALOG_REOPEN_EVERY_MS)
		return;
	if (statvfs(c->path, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < CATALOG_REOPEN_MIN_FREE)
		return;
	pthread_rwlock_wrlock(&c->lock);
	if (atomic_load(&c->stuck)) {
		char *err = NULL;
		if (c->db)
			rocksdb_close(c->db);
		c->db = rocksdb_open(c->opts, c->path, &err);
		if (c->db) {
			atomic_store(&c->stuck, false);
			vd_info("catalog %s: reopened; writes go on", c->path);
		} else {
			atomic_store(&c->failed_reopen_ms, vd_mono_ms());
			vd_err("catalog %s: reopen failed (tried again in a second): %s",
			       c->path, err ? err : "unknown error");
			rocksdb_free(err);
		}
	}
	pthread_rwlock_unlock(&c->lock);
}

int vd_catalog_commit(vd_catalog *c, vd_catalog_batch *b, bool sync)
{
	char *err = NULL;
	int rc = 0;

	if (atomic_load(&c->stuck))
		maybe_reopen(c);
	shared_lock(c);
	if (!c->db)
		rc = -ENOSPC;
	else
		rocksdb_write(c->db, sync ? c->wopts_sync : c->wopts, b->wb, &err);
	if (err)
		rc = catalog_error(c, "commit", NULL, err);
	else if (sync && c->db)
		atomic_fetch_add(&c->syncs, 1);
	shared_unlock(c);
	return rc;
}

uint64_t vd_catalog_syncs(vd_catalog *c)
{
	return atomic_load(&c->syncs);
}

void vd_catalog_batch_clear(vd_catalog_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
}
