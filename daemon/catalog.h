/*
 * catalog.h - the metadata database: a thin wrapper over RocksDB.
 *
 * All metadata lives here under string keys with short prefixes (the key
 * schema is in docs/catalog.md). Values are JSON text or small binary
 * records. Every state change is one write batch committed atomically, so a
 * crash leaves either all of a change or none of it.
 *
 * Thread safety: a vd_catalog may be used from any number of threads
 * (RocksDB is). A vd_catalog_batch belongs to one thread until committed.
 * Values returned by get are malloc'd and owned by the caller.
 */
#ifndef VD_CATALOG_H
#define VD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef struct vd_catalog vd_catalog;
typedef struct vd_catalog_batch vd_catalog_batch;

/* Open (creating if missing) the database directory at path. */
int vd_catalog_open(vd_catalog **out, const char *path);
void vd_catalog_close(vd_catalog *c);

/* -ENOENT when absent. *val is malloc'd, NUL-terminated (not counted). */
int vd_catalog_get(char **val, size_t *vlen, vd_catalog *c, const char *key);
/* 1 present, 0 absent, -errno. */
int vd_catalog_has(vd_catalog *c, const char *key);
/* Parsed JSON value; -ENOENT absent, -EBADMSG not valid JSON. */
int vd_catalog_get_json(json_t **out, vd_catalog *c, const char *key);

/* Called for each key starting with prefix, in key order. A non-zero return
 * stops the scan and is returned by vd_catalog_scan. key/val are valid only
 * during the call. */
typedef int (*vd_catalog_scan_fn)(void *ctx, const char *key, size_t klen,
				  const char *val, size_t vlen);
int vd_catalog_scan(vd_catalog *c, const char *prefix, vd_catalog_scan_fn fn,
		    void *ctx);

int vd_catalog_batch_new(vd_catalog_batch **out);
void vd_catalog_batch_free(vd_catalog_batch *b);
void vd_catalog_batch_put(vd_catalog_batch *b, const char *key, const void *val,
			  size_t vlen);
/* Serializes compactly with sorted keys. -ENOMEM. */
int vd_catalog_batch_put_json(vd_catalog_batch *b, const char *key, const json_t *v);
void vd_catalog_batch_del(vd_catalog_batch *b, const char *key);
size_t vd_catalog_batch_count(const vd_catalog_batch *b);
/* Apply atomically. sync = true waits for the WAL to reach the disk.
 * -ENOSPC when the disk is full (the catalog then reopens itself at a
 * later commit once there is room: see catalog.c), -EIO on any other
 * failure, with RocksDB's message logged. The batch stays owned by the
 * caller and may be reused after vd_catalog_batch_clear. */
int vd_catalog_commit(vd_catalog *c, vd_catalog_batch *b, bool sync);
/* How many commits with sync = true succeeded since open. */
uint64_t vd_catalog_syncs(vd_catalog *c);
void vd_catalog_batch_clear(vd_catalog_batch *b);

#endif
