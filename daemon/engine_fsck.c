/*
 * engine_fsck.c - checking the store and the catalog against each other.
 *
 * fsck answers two questions: does every reference resolve (versions to
 * manifests to chunks to packs, runs to results, lineage edges to versions
 * or tombstones), and, with full, does every chunk's content still hash to
 * its ID. Each problem is reported with the versions it affects, because
 * "chunk 3fa9... is corrupt" means nothing to a user until it says which
 * data and results are hurt.
 *
 * What it finds falls in two groups:
 *
 *   problems   a reference that does not resolve or a chunk that does not
 *              verify: data is lost or damaged. Never silent: with repair,
 *              the index entry of a corrupt or unreadable chunk is dropped
 *              (so that the same bytes submitted again are stored anew
 *              instead of deduplicated against the bad copy) and each
 *              affected version is marked damaged in its record (status
 *              says so; reading the damaged range gives EIO, as it does
 *              without the mark). A later full check that finds the version
 *              whole again (its chunks re-stored) clears the mark.
 *   orphans    records that nothing owns (a run log whose version is gone,
 *              an index entry of nothing, a lineage edge to nowhere, the
 *              fingerprint of a chunk no longer stored) and chunks nothing
 *              references (an upload's chunks count as referenced). Harmless; repair drops the
 *              records, gc the chunks.
 *
 * fsck reads the catalog while submissions and runs go on; something
 * committed during the check may be reported as an orphan of a moment
 * (an index entry seen before its record), which repair double-checks
 * under the engine lock before dropping it. Repair takes the gc lock, so
 * gc and repair never run together.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkset.h"
#include "engine_int.h"

/* Problems listed in the reply; past this they are only counted. */
#define FSCK_PROBLEMS_MAX 1000
/* Chunk IDs kept in a damaged version's mark. */
#define FSCK_DAMAGED_IDS 20

struct chunk {
	char id[VD_ID_SIZE];
	char pack[17];
	uint64_t off, len;         /* len: bytes in the pack */
	uint64_t raw_len;          /* the chunk's own length (differs when compressed) */
};

struct fsck {
	vd_engine *e;
	bool full, repair;
	struct chunk *c;
	size_t nc, capc;
	json_t *packs;             /* pack -> size (-1: file missing) */
	struct vd_chunkset indexed, referenced;
	json_t *bad;               /* chunk id -> its problem object */
	json_t *problems;
	size_t nproblems;
	json_t *versions_bad;      /* "task/data" -> {"task","data_id","chunks":[ids]} */
	struct vd_strv orphans;    /* catalog keys nothing owns */
	uint64_t orphan_chunks, orphan_bytes, orphan_packs;
	uint64_t chunks_checked, bytes_checked;
};

static void problem(struct fsck *f, const char *kind, const char *chunk, json_t *versions,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct fsck *f, const char *kind, const char *chunk, json_t *versions,
		    const char *fmt, ...)
{
	struct vd_buf what = VD_BUF_INIT(4096);
	va_list ap;
	va_start(ap, fmt);
	vd_buf_vaddf(&what, fmt, ap);
	va_end(ap);
	json_t *p = json_pack("{s:s, s:s, s:o}", "kind", kind, "what", vd_buf_cstr(&what),
			      "versions", versions ? versions : json_array());
	vd_buf_release(&what);
	if (!p)
		return;
	if (chunk)
		json_object_set_new(p, "chunk", json_string(chunk));
	f->nproblems++;
	vd_warn("fsck: %s: %s", kind, json_string_value(json_object_get(p, "what")));
	if (chunk && !json_object_get(f->bad, chunk))
		json_object_set(f->bad, chunk, p);
	if (json_array_size(f->problems) < FSCK_PROBLEMS_MAX)
		json_array_append(f->problems, p);
	json_decref(p);
}

static int list_pack(void *ctx, const char *pack, int64_t size, int64_t alloc)
{
	struct fsck *f = ctx;
	(void)alloc;
	if (!pack) {
		problem(f, "bad_record", NULL, NULL, "a pack entry (p/) with a malformed name");
		return 0;
	}
	if (size < 0)
		problem(f, "missing_pack", NULL, NULL, "pack %s is in the catalog but its "
			"file is missing", pack);
	return json_object_set_new(f->packs, pack, json_integer(size)) ? -ENOMEM : 0;
}

static int list_chunk(void *ctx, const char *id, const char *pack, uint64_t off,
		      uint64_t len, uint64_t raw_len)
{
	struct fsck *f = ctx;
	if (!id) {
		problem(f, "bad_record", NULL, NULL, "a chunk index entry (k/) that cannot "
			"be read");
		return 0;
	}
	if (vd_chunkset_add(&f->indexed, id) < 0)
		return -ENOMEM;
	json_t *ps = json_object_get(f->packs, pack);
	if (!ps) {
		problem(f, "missing_pack", id, NULL, "chunk %s lies in pack %s, which the "
			"catalog does not list", id, pack);
		return 0;
	}
	json_int_t size = json_integer_value(ps);
	if (size < 0) {
		problem(f, "missing_pack", id, NULL, "chunk %s lies in pack %s, whose file "
			"is missing", id, pack);
		return 0;
	}
	if (off > (uint64_t)size || len > (uint64_t)size - off) {
		problem(f, "truncated_pack", id, NULL, "chunk %s (%llu bytes at %llu) lies "
			"past the end of pack %s (%lld bytes)", id, (unsigned long long)len,
			(unsigned long long)off, pack, (long long)size);
		return 0;
	}
	if (f->nc == f->capc) {
		size_t ncap = f->capc ? f->capc * 2 : 1024;
		struct chunk *nc = realloc(f->c, ncap * sizeof *nc);
		if (!nc)
			return -ENOMEM;
		f->c = nc;
		f->capc = ncap;
	}
	struct chunk *c = &f->c[f->nc++];
	memcpy(c->id, id, VD_ID_SIZE);
	snprintf(c->pack, sizeof c->pack, "%s", pack);
	c->off = off;
	c->len = len;
	c->raw_len = raw_len;
	return 0;
}

static int by_place(const void *a, const void *b)
{
	const struct chunk *x = a, *y = b;
	int c = strcmp(x->pack, y->pack);
	return c ? c : (x->off > y->off) - (x->off < y->off);
}

/* --full: read every chunk, pack by pack in offset order, and verify. */
static int read_all(struct fsck *f)
{
	struct vd_buf scratch = VD_BUF_INIT(SIZE_MAX / 2);
	if (f->nc)
		qsort(f->c, f->nc, sizeof *f->c, by_place);
	for (size_t i = 0; i < f->nc; i++) {
		struct chunk *c = &f->c[i];
		int rc = vd_store_check(f->e->store, &scratch, c->id, c->pack, c->off, c->len,
					c->raw_len);
		f->chunks_checked++;
		if (rc == -EIO) {
			problem(f, "corrupt_chunk", c->id, NULL, "chunk %s in pack %s at %llu does "
				"not read back as it was stored", c->id, c->pack,
				(unsigned long long)c->off);
		} else if (rc) {
			vd_buf_release(&scratch);
			return rc;
		} else {
			f->bytes_checked += c->raw_len;
		}
	}
	vd_buf_release(&scratch);
	return 0;
}

/* Note that version (task, data) references chunk id through what. */
static int reference(struct fsck *f, const char *task, const char *data, const char *id,
		     const char *what)
{
	if (vd_chunkset_add(&f->referenced, id) < 0)
		return -ENOMEM;
	json_t *p = json_object_get(f->bad, id);
	if (!p && vd_chunkset_has(&f->indexed, id))
		return 0;
	if (!p) {
		problem(f, "missing_chunk", id, NULL, "chunk %s (%s) is not in the store", id,
			what);
		p = json_object_get(f->bad, id);
	}
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "%s/%s", task, data);
	json_t *vb = json_object_get(f->versions_bad, vd_buf_cstr(&k));
	if (!vb) {
		vb = json_pack("{s:s, s:s, s:[]}", "task", task, "data_id", data, "chunks");
		json_object_set_new(f->versions_bad, vd_buf_cstr(&k), vb);
	}
	vd_buf_release(&k);
	json_t *ids = json_object_get(vb, "chunks");
	size_t i;
	json_t *x;
	json_array_foreach(ids, i, x)
		if (!strcmp(json_string_value(x), id))
			return 0;
	json_array_append_new(ids, json_string(id));
	/* The problem lists each version it hurts once. */
	json_t *vs = p ? json_object_get(p, "versions") : NULL;
	if (vs)
		json_array_append_new(vs, json_pack("{s:s, s:s}", "task", task, "data_id", data));
	return 0;
}

static int check_file(struct fsck *f, const char *task, const char *data,
		      const struct vd_file *file, const char *what)
{
	int rc = 0;
	for (size_t i = 0; i < file->n && !rc; i++)
		rc = reference(f, task, data, file->ext[i].id, what);
	return rc;
}

static int check_version(struct fsck *f, const char *task, const char *data)
{
	vd_engine *e = f->e;
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_manifest *m = NULL;
	json_t *v = NULL, *c;
	size_t i;
	int rc = vd_engine_version_json(&v, e, task, data);
	if (rc == -EBADMSG) {
		problem(f, "bad_record", NULL, NULL, "the record of version %s of task %s is "
			"not valid JSON", data, task);
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	vd_engine_key(&k, "vi", data, task, NULL);
	if (vd_catalog_has(e->cat, vd_buf_cstr(&k)) != 1)
		problem(f, "missing_index", NULL, json_pack("[{s:s, s:s}]", "task", task,
			"data_id", data), "version %s of task %s is missing from the ID "
			"index (vi/)", data, task);
	rc = vd_engine_manifest_get(&m, e, data);
	if (rc == -ENOENT || rc == -EBADMSG) {
		problem(f, rc == -ENOENT ? "missing_manifest" : "bad_manifest", NULL,
			json_pack("[{s:s, s:s}]", "task", task, "data_id", data),
			"version %s of task %s has %s manifest", data, task,
			rc == -ENOENT ? "no" : "an unreadable");
		rc = 0;
	} else if (rc) {
		goto out;
	} else {
		for (size_t j = 0; j < m->nfiles && !rc; j++)
			rc = check_file(f, task, data, &m->files[j], "input");
		if (rc)
			goto out;
	}
	json_array_foreach(json_object_get(v, "runs"), i, c) {
		const char *code = json_string_value(c);
		json_t *rj = NULL;
		struct vd_file res = { 0 };
		if (!code || !vd_id_valid(code))
			continue;
		vd_engine_key(&k, "r", task, data, code);
		rc = vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k));
		if (rc) {
			problem(f, rc == -ENOENT ? "missing_run" : "bad_record", NULL,
				json_pack("[{s:s, s:s}]", "task", task, "data_id", data),
				"version %s of task %s lists a run of code %s that is %s", data,
				task, code, rc == -ENOENT ? "not in the catalog" : "unreadable");
			rc = rc == -ENOENT || rc == -EBADMSG ? 0 : rc;
			if (rc)
				goto out;
			continue;
		}
		json_t *r = json_object_get(rj, "result");
		if (r && vd_engine_extents_parse(&res, json_object_get(r, "chunks")) == 0)
			rc = check_file(f, task, data, &res, "result");
		else if (r)
			problem(f, "bad_record", NULL, json_pack("[{s:s, s:s}]", "task", task,
				"data_id", data), "the result of run %s on version %s of task %s "
				"cannot be read", code, data, task);
		vd_engine_file_release(&res);
		json_decref(rj);
		if (rc)
			goto out;
	}
out:
	vd_manifest_free(m);
	json_decref(v);
	vd_buf_release(&k);
	return rc;
}

static int check_versions(struct fsck *f)
{
	struct vd_strv tasks = { 0 };
	int rc = vd_engine_task_list(&tasks, f->e);
	for (size_t i = 0; !rc && i < tasks.n; i++) {
		struct vd_strv ids = { 0 };
		rc = vd_engine_version_list(&ids, f->e, tasks.v[i]);
		for (size_t j = 0; !rc && j < ids.n; j++)
			if (vd_id_valid(ids.v[j]))
				rc = check_version(f, tasks.v[i], ids.v[j]);
		vd_strv_release(&ids);
	}
	vd_strv_release(&tasks);
	return rc;
}

/* ---- orphan records ----------------------------------------------------
 *
 * Each index or per-version record must have its owner. The rules, by key
 * prefix (docs/catalog.md has the schema):
 *   r/ lg/ pin/ <task>/<data>/...   the version v/<task>/<data>
 *   vi/<data>/<task>                the version v/<task>/<data>
 *   dn/<task>/<name> -> data        the version v/<task>/<data>
 *   ri/<res>/<task>/<data>/<code>   the run r/<task>/<data>/<code>
 *   m/<data>                        some vi/<data>/...
 *   l/<lease>                       the run it names
 *   v/<task>/...                    the task t/<task>
 *   res/... -> blob                 the blob, indexed
 *   ch/<parent>/<child>/<task>      the child (a version or tombstone of
 *                                   task) and the parent (a version, a
 *                                   result or a tombstone)
 */

static bool exists(struct fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool exists(struct fsck *f, const char *fmt, ...)
{
	struct vd_buf k = VD_BUF_INIT(4096);
	va_list ap;
	va_start(ap, fmt);
	vd_buf_vaddf(&k, fmt, ap);
	va_end(ap);
	int has = vd_catalog_has(f->e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return has != 0;   /* an error is no proof of an orphan */
}

static bool prefix_exists(struct fsck *f, const char *prefix)
{
	struct vd_strv one = { 0 };
	int rc = vd_engine_list_suffix(&one, f->e, prefix);
	bool any = rc || one.n;
	vd_strv_release(&one);
	return any;
}

/* Split the part of key after its prefix into fields at '/'. At most max
 * fields; the last one takes the rest. Returns the count. */
static size_t fields(char (*out)[256], size_t max, const char *s, size_t n)
{
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= n && k < max; i++) {
		if (i == n || (s[i] == '/' && k + 1 < max)) {
			size_t len = i - start;
			if (len >= 256)
				return 0;
			memcpy(out[k], s + start, len);
			out[k][len] = '\0';
			k++;
			start = i + 1;
		}
	}
	return k;
}

struct orphan_ctx {
	struct fsck *f;
	const char *prefix;
};

static bool owned(struct fsck *f, const char *prefix, const char *rest, size_t n,
		  const char *val, size_t vlen)
{
	char x[4][256];
	if (!strcmp(prefix, "r/") || !strcmp(prefix, "lg/") || !strcmp(prefix, "pin/"))
		return fields(x, 3, rest, n) >= 2 && exists(f, "v/%s/%s", x[0], x[1]);
	if (!strcmp(prefix, "vi/"))
		return fields(x, 2, rest, n) == 2 && exists(f, "v/%s/%s", x[1], x[0]);
	if (!strcmp(prefix, "vt/"))
		return true;
	if (!strcmp(prefix, "dn/")) {
		char data[VD_ID_SIZE];
		if (fields(x, 2, rest, n) != 2 || vlen != VD_ID_LEN)
			return false;
		memcpy(data, val, VD_ID_LEN);
		data[VD_ID_LEN] = '\0';
		return exists(f, "v/%s/%s", x[0], data);
	}
	if (!strcmp(prefix, "ri/"))
		return fields(x, 4, rest, n) == 4 && exists(f, "r/%s/%s/%s", x[1], x[2], x[3]);
	if (!strcmp(prefix, "m/")) {
		struct vd_buf k = VD_BUF_INIT(1024);
		vd_buf_addf(&k, "vi/%.*s/", (int)n, rest);
		bool any = prefix_exists(f, vd_buf_cstr(&k));
		vd_buf_release(&k);
		return any;
	}
	if (!strcmp(prefix, "v/"))
		return fields(x, 2, rest, n) == 2 && exists(f, "t/%s", x[0]);
	if (!strcmp(prefix, "vo/"))
		return fields(x, 3, rest, n) == 3 && exists(f, "v/%s/%s", x[0], x[2]);
	if (!strcmp(prefix, "l/")) {
		json_t *j = json_loadb(val, vlen, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "task"));
		const char *d = json_string_value(json_object_get(j, "data_id"));
		const char *c = json_string_value(json_object_get(j, "code_id"));
		bool ok = t && d && c && exists(f, "r/%s/%s/%s", t, d, c);
		json_decref(j);
		return ok;
	}
	if (!strcmp(prefix, "res/")) {
		json_t *j = json_loadb(val, vlen, 0, NULL);
		const char *blob = json_string_value(json_object_get(j, "blob"));
		bool ok = blob && vd_id_valid(blob) && vd_chunkset_has(&f->indexed, blob);
		json_decref(j);
		return ok;
	}
	if (!strcmp(prefix, "fp/")) {
		/* An upload's fingerprint: owned while its chunk is stored, and
		 * then the chunk is an upload's, not an orphan (gc keeps it for
		 * the keep time, then drops both). */
		json_t *j = json_loadb(val, vlen, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		bool ok = id && vd_id_valid(id) && vd_chunkset_has(&f->indexed, id);
		if (ok && vd_chunkset_add(&f->referenced, id) < 0)
			ok = true;   /* no memory: it is no orphan for that */
		json_decref(j);
		return ok;
	}
	if (!strcmp(prefix, "ch/")) {
		struct vd_buf k = VD_BUF_INIT(1024);
		bool ok = fields(x, 3, rest, n) == 3 &&
			  (exists(f, "v/%s/%s", x[2], x[1]) || exists(f, "vt/%s/%s", x[1], x[2]));
		for (size_t i = 0; ok && i < 3; i++) {
			static const char *const idx[] = { "vi", "ri", "vt" };
			vd_buf_reset(&k);
			vd_buf_addf(&k, "%s/%s/", idx[i], x[0]);
			if (prefix_exists(f, vd_buf_cstr(&k)))
				break;
			if (i == 2)
				ok = false;
		}
		vd_buf_release(&k);
		return ok;
	}
	return true;
}

static int orphan_one(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct orphan_ctx *c = ctx;
	size_t pl = strlen(c->prefix);
	if (owned(c->f, c->prefix, key + pl, klen - pl, val, vlen))
		return 0;
	return vd_strv_pushn(&c->f->orphans, key, klen);
}

static int find_orphans(struct fsck *f)
{
	static const char *const prefixes[] = { "r/", "lg/", "pin/", "vi/", "dn/", "ri/",
						 "m/", "l/", "v/", "vo/", "res/", "ch/",
						 "fp/" };
	int rc = 0;
	for (size_t i = 0; !rc && i < sizeof prefixes / sizeof *prefixes; i++) {
		struct orphan_ctx c = { f, prefixes[i] };
		rc = vd_catalog_scan(f->e->cat, prefixes[i], orphan_one, &c);
	}
	/* Chunks nothing references (gc's to take). The chunks of memo
	 * entries count as referenced: gc decides about those. */
	for (size_t i = 0; i < f->nc; i++)
		if (!vd_chunkset_has(&f->referenced, f->c[i].id)) {
			f->orphan_chunks++;
			f->orphan_bytes += f->c[i].len;
		}
	/* Pack files the catalog does not name (a start removes them). */
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/packs", f->e->state);
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n != 21 || strcmp(de->d_name + 16, ".pack"))
			continue;
		char pack[17];
		memcpy(pack, de->d_name, 16);
		pack[16] = '\0';
		if (!json_object_get(f->packs, pack))
			f->orphan_packs++;
	}
	if (d)
		closedir(d);
	return rc;
}

static int memo_refs(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct fsck *f = ctx;
	(void)key;
	(void)klen;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *blob = json_string_value(json_object_get(j, "blob"));
	int rc = blob && vd_id_valid(blob) && vd_chunkset_add(&f->referenced, blob) < 0
		 ? -ENOMEM : 0;
	json_decref(j);
	return rc;
}

/* ---- repair ------------------------------------------------------------ */

/* Mark or unmark the damaged versions and drop what is orphaned or bad
 * (lock held), in one batch. */
static int repair(json_t *repaired, json_t *damaged, struct fsck *f)
{
	vd_engine *e = f->e;
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_int_t records = 0, chunks = 0, marked = 0, cleared = 0;
	const char *key;
	json_t *x;
	int rc;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	/* Orphans, checked again now that nothing changes under us. */
	for (size_t i = 0; i < f->orphans.n; i++) {
		const char *o = f->orphans.v[i];
		const char *slash = strchr(o, '/');
		char prefix[8];
		char *val = NULL;
		size_t vlen = 0;
		if (!slash || (size_t)(slash - o) + 2 > sizeof prefix)
			continue;
		snprintf(prefix, sizeof prefix, "%.*s/", (int)(slash - o), o);
		if (vd_catalog_get(&val, &vlen, e->cat, o))
			continue;
		bool still = !owned(f, prefix, slash + 1, strlen(slash + 1), val, vlen);
		free(val);
		if (still) {
			vd_catalog_batch_del(b, o);
			records++;
		}
	}
	/* Bad chunks that are indexed: drop the entry, so that the same
	 * bytes sent again are stored again. */
	json_object_foreach(f->bad, key, x) {
		if (vd_chunkset_has(&f->indexed, key)) {
			vd_store_gc_drop(b, key);
			chunks++;
		}
	}
	/* Versions: mark the hurt, unmark the healed (a full check only). */
	struct vd_strv tasks = { 0 };
	if ((rc = vd_engine_task_list(&tasks, e)))
		goto out;
	for (size_t i = 0; i < tasks.n; i++) {
		struct vd_strv ids = { 0 };
		if (vd_engine_version_list(&ids, e, tasks.v[i]))
			continue;
		for (size_t j = 0; j < ids.n; j++) {
			json_t *v = NULL;
			vd_buf_reset(&k);
			vd_buf_addf(&k, "%s/%s", tasks.v[i], ids.v[j]);
			json_t *vb = json_object_get(f->versions_bad, vd_buf_cstr(&k));
			if (!vd_id_valid(ids.v[j]) || vd_engine_version_json(&v, e, tasks.v[i], ids.v[j]))
				continue;
			bool was = json_object_get(v, "damaged") != NULL;
			if (vb) {
				json_t *ids_j = json_object_get(vb, "chunks"), *few = json_array();
				for (size_t n = 0; n < json_array_size(ids_j) && n < FSCK_DAMAGED_IDS; n++)
					json_array_append(few, json_array_get(ids_j, n));
				json_object_set_new(v, "damaged", json_pack("{s:I, s:I, s:o}", "time",
					(json_int_t)vd_now_ms(), "chunks",
					(json_int_t)json_array_size(ids_j), "ids", few));
				marked++;
				json_array_append_new(damaged, json_pack("{s:s, s:s}", "task",
					tasks.v[i], "data_id", ids.v[j]));
			} else if (was && f->full) {
				json_object_del(v, "damaged");
				cleared++;
			} else {
				json_decref(v);
				continue;
			}
			vd_engine_key(&k, "v", tasks.v[i], ids.v[j], NULL);
			rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), v);
			json_decref(v);
			if (rc) {
				vd_strv_release(&ids);
				goto out;
			}
		}
		vd_strv_release(&ids);
	}
	if (vd_catalog_batch_count(b))
		rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true));
	if (!rc) {
		json_object_set_new(repaired, "records_dropped", json_integer(records));
		json_object_set_new(repaired, "chunks_dropped", json_integer(chunks));
		json_object_set_new(repaired, "versions_damaged", json_integer(marked));
		json_object_set_new(repaired, "versions_healed", json_integer(cleared));
	}
out:
	vd_strv_release(&tasks);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

static int fsck_run(json_t **reply, struct vd_buf *why, vd_engine *e, bool full, bool repair_it)
{
	struct fsck f = { .e = e, .full = full, .repair = repair_it };
	struct vd_chunkset empty = VD_CHUNKSET_INIT;
	json_t *repaired = json_object(), *damaged = json_array();
	bool locked = false;
	int64_t t0 = vd_mono_ms();
	int rc;
	f.indexed = f.referenced = empty;
	f.packs = json_object();
	f.bad = json_object();
	f.problems = json_array();
	f.versions_bad = json_object();
	if (!f.packs || !f.bad || !f.problems || !f.versions_bad || !repaired || !damaged) {
		rc = -ENOMEM;
		goto out;
	}
	if (repair_it) {
		if (pthread_mutex_trylock(&e->gc_lock)) {
			vd_buf_adds(why, "a gc or another fsck --repair is running");
			rc = -EBUSY;
			goto out;
		}
		locked = true;
	}
	if ((rc = vd_store_packs(e->store, list_pack, &f)) ||
	    (rc = vd_store_chunks(e->store, list_chunk, &f)) ||
	    (full && (rc = read_all(&f))) || (rc = check_versions(&f)) ||
	    (rc = vd_catalog_scan(e->cat, "res/", memo_refs, &f)) || (rc = find_orphans(&f)))
		goto out;
	if (repair_it) {
		pthread_mutex_lock(&e->lock);
		rc = repair(repaired, damaged, &f);
		pthread_mutex_unlock(&e->lock);
		if (rc)
			goto out;
	}
	*reply = json_pack("{s:b, s:b, s:I, s:I, s:I, s:O, s:I, s:{s:I, s:I, s:I, s:I},"
			   " s:O, s:O}",
			   "full", full, "repair", repair_it,
			   "chunks_checked", (json_int_t)f.chunks_checked,
			   "bytes_checked", (json_int_t)f.bytes_checked,
			   "ms", (json_int_t)(vd_mono_ms() - t0), "problems", f.problems,
			   "problems_total", (json_int_t)f.nproblems, "orphans",
			   "records", (json_int_t)f.orphans.n, "chunks", (json_int_t)f.orphan_chunks,
			   "bytes", (json_int_t)f.orphan_bytes, "packs", (json_int_t)f.orphan_packs,
			   "repaired", repaired, "damaged", damaged);
	json_object_set_new(*reply, "chunks_total", json_integer((json_int_t)f.nc));
	rc = *reply ? 0 : -ENOMEM;
	vd_info("fsck%s%s: %zu problems, %zu orphan records, %llu chunks read",
		full ? " --full" : "", repair_it ? " --repair" : "", f.nproblems, f.orphans.n,
		(unsigned long long)f.chunks_checked);
out:
	if (locked)
		pthread_mutex_unlock(&e->gc_lock);
	free(f.c);
	json_decref(f.packs);
	json_decref(f.bad);
	json_decref(f.problems);
	json_decref(f.versions_bad);
	json_decref(repaired);
	json_decref(damaged);
	vd_chunkset_clear(&f.indexed);
	vd_chunkset_clear(&f.referenced);
	vd_strv_release(&f.orphans);
	return rc;
}

int vd_engine_api_fsck(json_t **reply, struct vd_buf *why, vd_engine *e, const json_t *body)
{
	json_t *full = body ? json_object_get(body, "full") : NULL;
	json_t *rep = body ? json_object_get(body, "repair") : NULL;
	if ((full && !json_is_boolean(full)) || (rep && !json_is_boolean(rep))) {
		vd_buf_adds(why, "full and repair must be true or false");
		return -EINVAL;
	}
	return fsck_run(reply, why, e, full && json_is_true(full), rep && json_is_true(rep));
}
