/*
 * engine_gc.c - garbage collection: what nothing references any more goes.
 *
 * Deleting a version (engine_delete.c) only takes away catalog records;
 * the chunks stay until gc finds that nothing reaches them. gc runs inside
 * the daemon, online: submissions, runs and executors go on while it works.
 * It goes in four steps (docs/lifecycle.md says why in this order):
 *
 *  1. Retention: versions that their task's `keep` rule lets go are
 *     deleted, as `vdfs rm` would.
 *  2. List: the packs (p/) and then every indexed chunk (k/) as they are
 *     now. Only these chunks may be swept: one committed later is never a
 *     candidate, however unreferenced it looks.
 *  3. Mark: every chunk reachable from the catalog is live: the manifests
 *     of versions (m/), the results of runs (r/ "result"), the outputs
 *     of the memoized units (res/) that some version's run still plans,
 *     and chunks uploaded less than the keep time ago (fp/, a day by
 *     default) that an upload may yet commit (engine_upload.c). A memo
 *     entry of units that no run plans any more is dropped, and its
 *     output with it; so is the fingerprint of a chunk swept.
 *  4. Sweep, under the engine lock and with writers' lookups frozen (a few
 *     milliseconds): the runs in memory add what they hold (their units'
 *     memo entries, replicated outputs still being voted on), the store
 *     spares every chunk a writer has reused since gc began (store.h), and
 *     one batch deletes the index entries of the rest, the dropped memo
 *     entries, and the lease records (l/) of runs no longer active.
 *  5. Packs: one with no live chunk is deleted; one whose live bytes are
 *     under VD_GC_COMPACT_BELOW of what it takes on disk is compacted (its
 *     live chunks are rewritten into a new pack, then the old one goes);
 *     in any other, the dead ranges are punched out (see packs()).
 *
 * Why this is safe while writers run: a chunk can gain a reference after
 * step 2 only by being found already stored by a writer (a submission or
 * result with the same bytes), which the store tracks, or through a memo
 * entry, which a run in memory holds (step 4) or, for a run that already
 * finished during the gc, was kept through vd_store_gc_keep when the run
 * read it. Everything else that references chunks was there when the mark
 * read it, or was committed after step 2 with chunks that are not
 * candidates. A kill -9 at any point: the sweep is one batch, and the pack
 * steps keep a readable copy of every live chunk at every moment (store.h);
 * what a crash leaves half done is garbage the next gc or start removes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "chunkset.h"
#include "engine_int.h"

/* A pack whose live bytes are under this fraction of its size is
 * compacted. Rewriting a pack costs its live bytes in writes; at one half
 * that is at most as much as it frees. */
#define VD_GC_COMPACT_BELOW 0.5
/* ... and only when that frees at least this much disk. */
#define VD_GC_COMPACT_MIN_FREE (64u << 10)

struct cand {
	char id[VD_ID_SIZE];
	char pack[17];
	uint64_t off, len;         /* len: bytes in the pack (compressed or not) */
	bool dead;
};

struct memo {
	char *key;                 /* res/<code>/<out-key>/<unit> */
	char blob[VD_ID_SIZE];
	char mid[VD_ID_SIZE];      /* ID of "<code>/<out-key>/<unit>" */
	bool drop;
};

/* A lease record (l/): dropped once its run is not active. */
struct lease_rec {
	char id[VD_ID_SIZE];
	char task[256];
	char data[VD_ID_SIZE], code[VD_ID_SIZE];
};

/* A fingerprint record (fp/): dropped with its chunk. */
struct fp_rec {
	char key[4 + VD_FP_LEN + 1];
	char id[VD_ID_SIZE];
};

struct pack_info {
	char pack[17];
	int64_t size;              /* the file's size */
	int64_t alloc;             /* what it takes on disk (holes punched) */
	uint64_t live_bytes;
	size_t live, total;        /* chunks */
};

struct gc {
	vd_engine *e;
	bool dry_run;
	json_t *expired;           /* retention's choice */
	json_t *skip;              /* dry run: "task/data" of expired versions */
	struct cand *c;
	size_t nc, capc;
	struct pack_info *p;       /* packs listed before the chunks */
	size_t np, capp;
	struct vd_chunkset live;   /* chunk IDs */
	struct vd_chunkset units;  /* memo IDs some run still plans */
	struct vd_chunkset codes_all;   /* codes whose plans could not be made */
	struct memo *m;
	size_t nm, capm;
	struct lease_rec *l;
	size_t nl, capl;
	struct fp_rec *fp;
	size_t nfp, capfp;
	uint64_t uploads_kept, fps_dropped;
	uint64_t leases_dropped;
	uint64_t chunks_swept, bytes_swept, memo_dropped;
	uint64_t packs_deleted, packs_compacted, bytes_moved, bytes_reclaimed;
	uint64_t packs_punched, bytes_punched;
	uint64_t store_before;
};

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 256;
	void *np = realloc(*p, ncap * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = ncap;
	return 0;
}

static int list_pack(void *ctx, const char *pack, int64_t size, int64_t alloc)
{
	struct gc *g = ctx;
	if (!pack)
		return 0;
	if (grow((void **)&g->p, &g->capp, g->np, sizeof *g->p))
		return -ENOMEM;
	struct pack_info *pi = &g->p[g->np++];
	memset(pi, 0, sizeof *pi);
	snprintf(pi->pack, sizeof pi->pack, "%s", pack);
	pi->size = size;
	pi->alloc = alloc;
	if (alloc > 0)
		g->store_before += (uint64_t)alloc;
	return 0;
}

static int list_chunk(void *ctx, const char *id, const char *pack, uint64_t off,
		      uint64_t len, uint64_t raw_len)
{
	(void)raw_len;   /* gc counts what chunks take in their packs */
	struct gc *g = ctx;
	if (!id)
		return 0;
	if (grow((void **)&g->c, &g->capc, g->nc, sizeof *g->c))
		return -ENOMEM;
	struct cand *c = &g->c[g->nc++];
	memcpy(c->id, id, VD_ID_SIZE);
	snprintf(c->pack, sizeof c->pack, "%s", pack);
	c->off = off;
	c->len = len;
	c->dead = false;
	return 0;
}

static int mark_file(struct gc *g, const struct vd_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		if (vd_chunkset_add(&g->live, f->ext[i].id) < 0)
			return -ENOMEM;
	return 0;
}

/* The memo ID of a unit: what a res/ key names, as one ID. */
static void memo_id(char out[VD_ID_SIZE], vd_engine *e, const char *code,
		    const char *out_key, const char *unit)
{
	char s[3 * VD_ID_SIZE + 2];
	int n = snprintf(s, sizeof s, "%s/%s/%s", code, out_key, unit);
	vd_id_of(out, &e->key, s, (size_t)n);
}

/* The units run (task, data, code) plans, as memo IDs in g->units; and
 * the chunks of its result. A run whose plan cannot be made (a damaged
 * input) keeps every memo entry of its code: dropping them would be a
 * guess. */
static int mark_run(struct gc *g, const char *task, const char *data, const char *code)
{
	vd_engine *e = g->e;
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_file f = { 0 };
	struct vd_run *r = NULL;
	json_t *rj = NULL;
	int rc;
	vd_engine_key(&k, "r", task, data, code);
	if ((rc = vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k)))) {
		rc = rc == -ENOENT ? 0 : rc;
		goto out;
	}
	json_t *res = json_object_get(rj, "result");
	if (res) {
		if ((rc = vd_engine_extents_parse(&f, json_object_get(res, "chunks"))) ||
		    (rc = mark_file(g, &f)))
			goto out;
	}
	if ((rc = vd_engine_run_new(&r, e, task, data, code, rj)))
		goto out;
	if (vd_engine_manifest_get(&r->man, e, data) || vd_engine_run_plan(r, e)) {
		vd_warn("gc: cannot plan run %s/%.12s code %.12s; keeping every memoized "
			"result of that code", task, data, code);
		rc = vd_chunkset_add(&g->codes_all, code) < 0 ? -ENOMEM : 0;
		goto out;
	}
	for (size_t u = 0; u < r->nunits; u++) {
		char mid[VD_ID_SIZE];
		memo_id(mid, e, code, r->out_key, r->units[u].id);
		if (vd_chunkset_add(&g->units, mid) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	if (r)
		vd_engine_run_discard(r);
	vd_engine_file_release(&f);
	json_decref(rj);
	vd_buf_release(&k);
	return rc;
}

/* One version: its manifest (once per content) and its runs. */
static int mark_version(struct gc *g, struct vd_chunkset *manifests, const char *task,
			const char *data)
{
	struct vd_manifest *m = NULL;
	json_t *v = NULL, *c;
	size_t i;
	int rc;
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "%s/%s", task, data);
	bool skip = g->skip && json_object_get(g->skip, vd_buf_cstr(&k));
	vd_buf_release(&k);
	if (skip)
		return 0;
	if ((rc = vd_engine_version_json(&v, g->e, task, data)))
		return rc == -ENOENT ? 0 : rc;
	int fresh = vd_chunkset_add(manifests, data);
	if (fresh < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (fresh) {
		if ((rc = vd_engine_manifest_get(&m, g->e, data))) {
			/* fsck's to report; nothing here to mark. */
			rc = rc == -ENOENT || rc == -EBADMSG ? 0 : rc;
		} else {
			for (size_t j = 0; j < m->nfiles && !rc; j++)
				rc = mark_file(g, &m->files[j]);
		}
		if (rc)
			goto out;
	}
	json_array_foreach(json_object_get(v, "runs"), i, c) {
		const char *code = json_string_value(c);
		if (code && vd_id_valid(code) && (rc = mark_run(g, task, data, code)))
			goto out;
	}
out:
	vd_manifest_free(m);
	json_decref(v);
	return rc;
}

static int mark_versions(struct gc *g)
{
	struct vd_strv tasks = { 0 };
	struct vd_chunkset manifests = VD_CHUNKSET_INIT;
	int rc = vd_engine_task_list(&tasks, g->e);
	for (size_t i = 0; !rc && i < tasks.n; i++) {
		struct vd_strv ids = { 0 };
		rc = vd_engine_version_list(&ids, g->e, tasks.v[i]);
		for (size_t j = 0; !rc && j < ids.n; j++)
			if (vd_id_valid(ids.v[j]))
				rc = mark_version(g, &manifests, tasks.v[i], ids.v[j]);
		vd_strv_release(&ids);
	}
	vd_chunkset_clear(&manifests);
	vd_strv_release(&tasks);
	return rc;
}

/* res/<code>/<out-key>/<unit> -> its memo ID, or -EINVAL. */
static int memo_key_split(char mid[VD_ID_SIZE], char code[VD_ID_SIZE], vd_engine *e,
			  const char *key, size_t klen)
{
	if (klen != 4 + 3 * VD_ID_LEN + 2 || key[4 + VD_ID_LEN] != '/' ||
	    key[5 + 2 * VD_ID_LEN] != '/')
		return -EINVAL;
	char out_key[VD_ID_SIZE], unit[VD_ID_SIZE];
	memcpy(code, key + 4, VD_ID_LEN);
	code[VD_ID_LEN] = '\0';
	memcpy(out_key, key + 5 + VD_ID_LEN, VD_ID_LEN);
	out_key[VD_ID_LEN] = '\0';
	memcpy(unit, key + 6 + 2 * VD_ID_LEN, VD_ID_LEN);
	unit[VD_ID_LEN] = '\0';
	if (!vd_id_valid(code) || !vd_id_valid(out_key) || !vd_id_valid(unit))
		return -EINVAL;
	memo_id(mid, e, code, out_key, unit);
	return 0;
}

static int list_memo(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct gc *g = ctx;
	char mid[VD_ID_SIZE], code[VD_ID_SIZE];
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *blob = json_string_value(json_object_get(j, "blob"));
	int rc = 0;
	if (!blob || !vd_id_valid(blob) || memo_key_split(mid, code, g->e, key, klen))
		goto out;    /* fsck's to report */
	if (vd_chunkset_has(&g->units, mid) || vd_chunkset_has(&g->codes_all, code)) {
		rc = vd_chunkset_add(&g->live, blob) < 0 ? -ENOMEM : 0;
		goto out;
	}
	if ((rc = grow((void **)&g->m, &g->capm, g->nm, sizeof *g->m)))
		goto out;
	struct memo *m = &g->m[g->nm];
	if (!(m->key = strndup(key, klen))) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(m->blob, blob, VD_ID_SIZE);
	memcpy(m->mid, mid, VD_ID_SIZE);
	m->drop = true;
	g->nm++;
out:
	json_decref(j);
	return rc;
}

/* Lease records are what lets a result sent after a restart find its run;
 * once the run is over they are never read again, and without gc they
 * would pile up, one per unit ever handed out. */
static int list_lease(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct gc *g = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "task"));
	const char *d = json_string_value(json_object_get(j, "data_id"));
	const char *c = json_string_value(json_object_get(j, "code_id"));
	int rc = 0;
	if (klen != 2 + VD_ID_LEN || !t || strlen(t) >= 256 || !d || !vd_id_valid(d) || !c ||
	    !vd_id_valid(c))
		goto out;    /* fsck's to report */
	if ((rc = grow((void **)&g->l, &g->capl, g->nl, sizeof *g->l)))
		goto out;
	struct lease_rec *l = &g->l[g->nl++];
	memcpy(l->id, key + 2, VD_ID_LEN);
	l->id[VD_ID_LEN] = '\0';
	snprintf(l->task, sizeof l->task, "%s", t);
	memcpy(l->data, d, VD_ID_SIZE);
	memcpy(l->code, c, VD_ID_SIZE);
out:
	json_decref(j);
	return rc;
}

/* What the runs in memory hold (lock held): their units' memo entries
 * (a run planned after the mark, or one that read an entry the mark
 * found unplanned) and outputs still being voted on. */
/* fp/<fingerprint> {"id", "len", "t"}: a chunk uploaded within the keep
 * time is live; every record is listed, to go with its chunk. */
static int list_fp(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct gc *g = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *id = json_string_value(json_object_get(j, "id"));
	int rc = 0;
	if (klen >= sizeof g->fp->key || !id || !vd_id_valid(id))
		goto out;
	if ((rc = grow((void **)&g->fp, &g->capfp, g->nfp, sizeof *g->fp)))
		goto out;
	struct fp_rec *f = &g->fp[g->nfp++];
	memcpy(f->key, key, klen);
	f->key[klen] = '\0';
	memcpy(f->id, id, VD_ID_SIZE);
	if (vd_now_ms() - json_integer_value(json_object_get(j, "t")) < g->e->upload_keep_ms) {
		if (vd_chunkset_add(&g->live, id) < 0)
			rc = -ENOMEM;
		g->uploads_kept++;
	}
out:
	json_decref(j);
	return rc;
}

static int mark_memory(struct gc *g)
{
	vd_engine *e = g->e;
	for (struct vd_run *r = e->runs; r; r = r->next)
		for (size_t u = 0; u < r->nunits; u++) {
			char mid[VD_ID_SIZE];
			memo_id(mid, e, r->code, r->out_key, r->units[u].id);
			if (vd_chunkset_add(&g->units, mid) < 0)
				return -ENOMEM;
			for (int i = 0; i < r->units[u].nvotes; i++)
				if (vd_chunkset_add(&g->live, r->units[u].votes[i].blob) < 0)
					return -ENOMEM;
		}
	return 0;
}

/*
 * Step 4 (see the top). With the engine lock and writers frozen, decide
 * and commit. Kept chunks (reused by a writer or a run since gc began)
 * are live, and so is a memo entry whose output is kept.
 */
static int sweep(struct gc *g, bool track)
{
	vd_engine *e = g->e;
	vd_catalog_batch *b = NULL;
	struct vd_chunkset dead = VD_CHUNKSET_INIT;
	int rc;
	bool kept;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	if (track)
		vd_store_gc_freeze(e->store);
	if ((rc = mark_memory(g)))
		goto out;
	for (size_t i = 0; i < g->nm; i++) {
		struct memo *m = &g->m[i];
		if (vd_chunkset_has(&g->units, m->mid))
			m->drop = false;
		else if (track && (rc = vd_store_gc_kept(&kept, e->store, m->blob)))
			goto out;
		else if (track && kept)
			m->drop = false;
		if (!m->drop && vd_chunkset_add(&g->live, m->blob) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < g->nc; i++) {
		struct cand *c = &g->c[i];
		if (vd_chunkset_has(&g->live, c->id))
			continue;
		if (track && (rc = vd_store_gc_kept(&kept, e->store, c->id)))
			goto out;
		if (track && kept)
			continue;
		c->dead = true;
		g->chunks_swept++;
		g->bytes_swept += c->len;
		vd_store_gc_drop(b, c->id);
		if (g->nfp && vd_chunkset_add(&dead, c->id) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < g->nfp; i++)
		if (vd_chunkset_has(&dead, g->fp[i].id)) {
			vd_catalog_batch_del(b, g->fp[i].key);
			g->fps_dropped++;
		}
	for (size_t i = 0; i < g->nm; i++)
		if (g->m[i].drop) {
			g->memo_dropped++;
			vd_catalog_batch_del(b, g->m[i].key);
		}
	/* Leases of runs no longer active (the lock makes "not active" hold
	 * until the commit). */
	for (size_t i = 0; i < g->nl; i++) {
		struct lease_rec *l = &g->l[i];
		char key[2 + VD_ID_SIZE];
		if (vd_engine_find_lease(e, l->id) || vd_engine_find_run(e, l->task, l->data, l->code))
			continue;
		snprintf(key, sizeof key, "l/%s", l->id);
		vd_catalog_batch_del(b, key);
		g->leases_dropped++;
	}
	if (!g->dry_run && vd_catalog_batch_count(b))
		rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true));
out:
	pthread_mutex_unlock(&e->lock);
	if (track)
		vd_store_gc_end(e->store, true);
	vd_chunkset_clear(&dead);
	vd_catalog_batch_free(b);
	return rc;
}

static int by_pack(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int c = strcmp(x->pack, y->pack);
	return c ? c : (x->off > y->off) - (x->off < y->off);
}

static struct pack_info *pack_find(struct gc *g, const char *pack)
{
	size_t lo = 0, hi = g->np;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(g->p[mid].pack, pack);
		if (!c)
			return &g->p[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int pack_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pack_info *)a)->pack, ((const struct pack_info *)b)->pack);
}

static bool stopping(vd_engine *e);

/* The live extents of g->c[first..end), which are one pack's, by offset. */
static int live_extents(struct vd_store_extent **out, size_t *n, struct gc *g,
			size_t first, size_t end)
{
	struct vd_store_extent *x = malloc((end - first + 1) * sizeof *x);
	if (!x)
		return -ENOMEM;
	*n = 0;
	for (size_t j = first; j < end; j++)
		if (!g->c[j].dead) {
			x[*n].off = g->c[j].off;
			x[*n].len = g->c[j].len;
			(*n)++;
		}
	*out = x;
	return 0;
}

/*
 * Step 5: each pack listed before the chunks, by what is live in it
 * (against what it takes on disk):
 *   nothing     the pack is deleted;
 *   under half  it is compacted: its live chunks move to a new pack;
 *   more        the dead ranges in it are punched out (their disk blocks
 *               go back to the file system, the live chunks stay put), so
 *               that a big pack with a few dead chunks, the common case
 *               after an edit, frees them without being rewritten.
 */
static int packs(struct gc *g)
{
	char (*ids)[VD_ID_SIZE] = NULL;
	struct vd_store_extent *live = NULL;
	size_t capids = 0;
	int rc = 0;
	if (g->np)
		qsort(g->p, g->np, sizeof *g->p, pack_cmp);
	if (g->nc)
		qsort(g->c, g->nc, sizeof *g->c, by_pack);
	for (size_t i = 0; i < g->nc; i++) {
		struct pack_info *pi = pack_find(g, g->c[i].pack);
		if (!pi)
			continue;  /* committed between the two listings: not ours */
		pi->total++;
		if (!g->c[i].dead) {
			pi->live++;
			pi->live_bytes += g->c[i].len;
		}
	}
	size_t ci = 0;
	for (size_t i = 0; i < g->np; i++) {
		struct pack_info *pi = &g->p[i];
		size_t first;
		if (!g->dry_run && stopping(g->e)) {
			vd_info("gc: the daemon is stopping; the remaining packs wait for the next gc");
			rc = -ESHUTDOWN;
			goto out;
		}
		while (ci < g->nc && strcmp(g->c[ci].pack, pi->pack) < 0)
			ci++;
		first = ci;
		while (ci < g->nc && !strcmp(g->c[ci].pack, pi->pack))
			ci++;
		if (pi->size < 0)
			continue;   /* its file is missing: fsck's to report */
		/* Chunks do not come to a pack after it is committed, so one
		 * listed before the chunks with none live is garbage whole. */
		if (!pi->live) {
			g->packs_deleted++;
			g->bytes_reclaimed += pi->alloc > 0 ? (uint64_t)pi->alloc : 0;
			if (!g->dry_run && (rc = vd_store_pack_delete(g->e->store, pi->pack)))
				goto out;
			continue;
		}
		if ((double)pi->live_bytes >= VD_GC_COMPACT_BELOW * (double)pi->alloc) {
			size_t n;
			uint64_t freed = 0;
			if ((rc = live_extents(&live, &n, g, first, ci)))
				goto out;
			rc = vd_store_pack_punch(&freed, g->e->store, pi->pack, live, n, g->dry_run);
			free(live);
			live = NULL;
			if (rc)
				goto out;
			if (freed) {
				g->packs_punched++;
				g->bytes_punched += freed;
				g->bytes_reclaimed += freed;
			}
			continue;
		}
		/* Compacting is worth it only for what it frees: a pack of one
		 * block (a unit's output) stays one block however little of it
		 * is live. */
		uint64_t after = (pi->live_bytes + 4095) / 4096 * 4096;
		if ((uint64_t)pi->alloc < after + VD_GC_COMPACT_MIN_FREE)
			continue;
		size_t n = 0;
		if (capids < ci - first) {
			free(ids);
			capids = ci - first;
			if (!(ids = malloc(capids * sizeof *ids))) {
				rc = -ENOMEM;
				goto out;
			}
		}
		for (size_t j = first; j < ci; j++)
			if (!g->c[j].dead)
				memcpy(ids[n++], g->c[j].id, VD_ID_SIZE);
		uint64_t moved = pi->live_bytes;
		if (!g->dry_run) {
			rc = vd_store_pack_compact(&moved, g->e->store, pi->pack, ids, n);
			if (rc == -EIO) {
				/* A chunk in it does not read back: leave the pack
				 * for fsck to report, and go on with the others. */
				vd_warn("gc: pack %s not compacted: a chunk in it is unreadable "
					"(run vdfs fsck --full)", pi->pack);
				rc = 0;
				continue;
			}
			if (rc)
				goto out;
		}
		g->packs_compacted++;
		g->bytes_moved += moved;
		if ((uint64_t)pi->alloc > moved)
			g->bytes_reclaimed += (uint64_t)pi->alloc - moved;
	}
out:
	free(ids);
	free(live);
	return rc;
}

/* The daemon is stopping (vd_engine_wake_all): gc ends early rather than
 * hold up the shutdown, which waits for every HTTP request. Stopping
 * between two steps is as safe as a crash there, and cleaner. */
static bool stopping(vd_engine *e)
{
	pthread_mutex_lock(&e->lock);
	bool s = e->stopping;
	pthread_mutex_unlock(&e->lock);
	return s;
}

static long maxrss_kb(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

int vd_engine_gc(json_t **reply, struct vd_buf *why, vd_engine *e, bool dry_run)
{
	struct gc g = { .e = e, .dry_run = dry_run };
	struct vd_chunkset empty = VD_CHUNKSET_INIT;
	bool track = false;
	int64_t t0 = vd_mono_ms(), t1 = t0, t2 = t0;
	int rc;
	g.live = g.units = g.codes_all = empty;
	if (!(g.expired = json_array())) {
		rc = -ENOMEM;
		goto out;
	}
	/* One gc at a time: two would compact the same packs. A dry run
	 * changes nothing, so it needs neither this nor the store's
	 * tracking. */
	if (!dry_run && pthread_mutex_trylock(&e->gc_lock)) {
		vd_buf_adds(why, "another gc or fsck --repair is running");
		rc = -EBUSY;
		goto out;
	}
	if (!dry_run) {
		if ((rc = vd_store_gc_begin(e->store)))
			goto unlock;
		track = true;
		vd_info("gc: begins");
	}
	if ((rc = vd_engine_retention_apply(g.expired, e, dry_run)))
		goto unlock;
	if (dry_run && json_array_size(g.expired)) {
		size_t i;
		json_t *x;
		g.skip = json_object();
		json_array_foreach(g.expired, i, x) {
			struct vd_buf k = VD_BUF_INIT(1024);
			vd_buf_addf(&k, "%s/%s", json_string_value(json_object_get(x, "task")),
				    json_string_value(json_object_get(x, "data_id")));
			json_object_set_new(g.skip, vd_buf_cstr(&k), json_true());
			vd_buf_release(&k);
		}
	}
	/* Packs before chunks: see packs(). */
	if ((rc = vd_store_packs(e->store, list_pack, &g)) ||
	    (rc = vd_store_chunks(e->store, list_chunk, &g)) || (rc = mark_versions(&g)) ||
	    (rc = vd_catalog_scan(e->cat, "res/", list_memo, &g)) ||
	    (rc = vd_catalog_scan(e->cat, "l/", list_lease, &g)) ||
	    (rc = vd_catalog_scan(e->cat, "fp/", list_fp, &g)))
		goto unlock;
	t1 = vd_mono_ms();
	if (stopping(e)) {
		rc = -ESHUTDOWN;
		goto unlock;
	}
	rc = sweep(&g, track);
	track = false;    /* sweep ended the tracking */
	if (rc)
		goto unlock;
	t2 = vd_mono_ms();
	rc = packs(&g);
unlock:
	if (track)
		vd_store_gc_end(e->store, false);
	if (!dry_run)
		pthread_mutex_unlock(&e->gc_lock);
	if (rc == -ESHUTDOWN && !why->len)
		vd_buf_adds(why, "the daemon is stopping; run gc again after the restart");
	if (rc)
		goto out;
	int64_t t3 = vd_mono_ms();
	uint64_t after = g.store_before - (g.bytes_reclaimed < g.store_before ? g.bytes_reclaimed
									  : g.store_before);
	*reply = json_pack("{s:b, s:O, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
			   " s:I, s:I, s:I, s:I, s:I}",
			   "dry_run", dry_run, "expired", g.expired,
			   "chunks_total", (json_int_t)g.nc,
			   "chunks_live", (json_int_t)(g.nc - g.chunks_swept),
			   "chunks_swept", (json_int_t)g.chunks_swept,
			   "bytes_swept", (json_int_t)g.bytes_swept,
			   "memo_dropped", (json_int_t)g.memo_dropped,
			   "packs_total", (json_int_t)g.np,
			   "packs_deleted", (json_int_t)g.packs_deleted,
			   "packs_compacted", (json_int_t)g.packs_compacted,
			   "bytes_moved", (json_int_t)g.bytes_moved,
			   "bytes_reclaimed", (json_int_t)g.bytes_reclaimed,
			   "store_bytes_before", (json_int_t)g.store_before,
			   "store_bytes_after", (json_int_t)after,
			   "mark_ms", (json_int_t)(t1 - t0), "sweep_ms", (json_int_t)(t2 - t1),
			   "compact_ms", (json_int_t)(t3 - t2),
			   "maxrss_kb", (json_int_t)maxrss_kb());
	if (*reply) {
		json_object_set_new(*reply, "leases_dropped", json_integer((json_int_t)g.leases_dropped));
		json_object_set_new(*reply, "packs_punched", json_integer((json_int_t)g.packs_punched));
		json_object_set_new(*reply, "bytes_punched", json_integer((json_int_t)g.bytes_punched));
		json_object_set_new(*reply, "uploads_kept", json_integer((json_int_t)g.uploads_kept));
		json_object_set_new(*reply, "fingerprints_dropped",
				    json_integer((json_int_t)g.fps_dropped));
	}
	rc = *reply ? 0 : -ENOMEM;
	if (!rc && !dry_run)
		vd_info("gc: %llu of %zu chunks swept (%llu bytes), %llu packs deleted, %llu "
			"compacted, %llu bytes reclaimed, %lld ms",
			(unsigned long long)g.chunks_swept, g.nc,
			(unsigned long long)g.bytes_swept, (unsigned long long)g.packs_deleted,
			(unsigned long long)g.packs_compacted,
			(unsigned long long)g.bytes_reclaimed, (long long)(t3 - t0));
out:
	for (size_t i = 0; i < g.nm; i++)
		free(g.m[i].key);
	free(g.m);
	free(g.l);
	free(g.fp);
	free(g.c);
	free(g.p);
	vd_chunkset_clear(&g.live);
	vd_chunkset_clear(&g.units);
	vd_chunkset_clear(&g.codes_all);
	json_decref(g.expired);
	json_decref(g.skip);
	return rc;
}

int vd_engine_api_gc(json_t **reply, struct vd_buf *why, vd_engine *e, const json_t *body)
{
	json_t *d = body ? json_object_get(body, "dry_run") : NULL;
	if (d && !json_is_boolean(d)) {
		vd_buf_adds(why, "dry_run must be true or false");
		return -EINVAL;
	}
	return vd_engine_gc(reply, why, e, d && json_is_true(d));
}
