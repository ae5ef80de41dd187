/*
 * catalog.c - the metadata database over the RocksDB C API (see catalog.h).
 */
#include "catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "util.h"

struct vd_catalog {
	/* All of these are created at open and are thread-safe in RocksDB;
	 * nothing here changes after open, so no lock is needed. */
	rocksdb_t *db;
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

static void catalog_free(vd_catalog *c)
{
	if (c->db)
		rocksdb_close(c->db);
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
	rocksdb_options_set_max_open_files(c->opts, 512);
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

static int catalog_error(vd_catalog *c, const char *what, const char *key, char *err)
{
	vd_err("catalog %s: %s %s: %s", c->path, what, key ? key : "", err);
	rocksdb_free(err);
	return -EIO;
}

int vd_catalog_get(char **val, size_t *vlen, vd_catalog *c, const char *key)
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

int vd_catalog_has(vd_catalog *c, const char *key)
{
	rocksdb_pinnableslice_t *ps;
	char *err = NULL;

	ps = rocksdb_get_pinned(c->db, c->ropts, key, strlen(key), &err);
	if (err)
		return catalog_error(c, "get", key, err);
	if (!ps)
		return 0;
	rocksdb_pinnableslice_destroy(ps);
	return 1;
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
	rocksdb_iterator_t *it;
	char *err = NULL;
	int rc = 0;

	it = rocksdb_create_iterator(c->db, c->ropts);
	if (!it)
		return -ENOMEM;
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
	rocksdb_iter_destroy(it);
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

int vd_catalog_commit(vd_catalog *c, vd_catalog_batch *b, bool sync)
{
	char *err = NULL;

	rocksdb_write(c->db, sync ? c->wopts_sync : c->wopts, b->wb, &err);
	if (err)
		return catalog_error(c, "commit", NULL, err);
	return 0;
}

void vd_catalog_batch_clear(vd_catalog_batch *b)
{
	rocksdb_writebatch_clear(b->wb);
}
