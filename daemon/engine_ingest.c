/*
 * engine_ingest.c - sealing submissions into versions; data names and
 * version records (manifests' JSON is engine_manifest.c's).
 *
 * Sealing has two halves. The slow half runs without the engine lock: read
 * the content, cut it into chunks, hash them, write the new ones to a pack
 * and make the pack durable. The quick half runs under the lock: one write
 * batch with the pack's index entries, the manifest, the version record,
 * the data name, the task's latest pointer and the run (when the task has
 * code), committed with sync. Until that commit nothing of the version is
 * visible; after it, all of it is. That is the whole crash story: a crash
 * in the slow half leaves an unnamed pack that the store deletes on open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

#define READ_BLOCK (8u << 20)

/* ---- cutting content into chunks ----------------------------------- */

/*
 * A cutter turns a stream of bytes into chunks of one file: bytes go into a
 * window; every chunk the chunker can decide is hashed, stored and appended
 * to the file's extents, and the undecided tail stays in the window. The
 * window grows past its usual size only for a record longer than max_size.
 */
struct cutter {
	vd_engine *e;
	vd_store_writer *w;
	vd_hasher *h;              /* the file's content hash; may be NULL */
	struct vd_file *f;
	size_t ecap;               /* extents allocated in f */
	unsigned char *buf;
	size_t cap, start, end;    /* window: buf[start..end) is undecided */
};

static int cutter_init(struct cutter *c, vd_engine *e, vd_store_writer *w,
		       vd_hasher *h, struct vd_file *f)
{
	memset(c, 0, sizeof *c);
	c->e = e;
	c->w = w;
	c->h = h;
	c->f = f;
	c->cap = READ_BLOCK + e->chunking.max_size;
	c->buf = malloc(c->cap);
	return c->buf ? 0 : -ENOMEM;
}

static void cutter_release(struct cutter *c)
{
	free(c->buf);
	c->buf = NULL;
}

/* Cut every chunk that can be decided (all of them with eof). */
static int cutter_cut(struct cutter *c, bool eof, struct vd_buf *why)
{
	const struct vd_chunker_params *prm = &c->e->chunking;
	for (;;) {
		size_t cut = 0;
		int rc = vd_chunker_cut(&cut, c->buf + c->start, c->end - c->start, eof, prm);
		if (rc == -E2BIG) {
			vd_buf_addf(why, "%s%sa record starting at byte %llu is "
				    "longer than %zu bytes (the record limit)",
				    c->f->path && *c->f->path ? c->f->path : "",
				    c->f->path && *c->f->path ? ": " : "",
				    (unsigned long long)c->f->size, prm->hard_max);
			return rc;
		}
		if (rc || cut == 0)
			return rc;
		const unsigned char *p = c->buf + c->start;
		char id[VD_ID_SIZE];
		uint64_t lines = 0;
		for (const unsigned char *q = p, *qe = p + cut;
		     (q = memchr(q, '\n', (size_t)(qe - q))); q++)
			lines++;
		if (c->h)
			vd_hasher_update(c->h, p, cut);
		if ((rc = vd_store_writer_put(id, c->w, p, cut)))
			return rc;
		if ((rc = vd_engine_file_push(c->f, &c->ecap, id, cut, lines)))
			return rc;
		c->start += cut;
	}
}

/* Make room for at least `want` more bytes behind the undecided tail. */
static int cutter_room(struct cutter *c, size_t want)
{
	size_t limit = c->e->chunking.hard_max + READ_BLOCK;
	if (c->cap - c->end >= want)
		return 0;
	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->cap - c->end >= want)
		return 0;
	size_t ncap = c->cap;
	while (ncap - c->end < want && ncap < limit)
		ncap = ncap * 2 < limit ? ncap * 2 : limit;
	if (ncap - c->end < want)
		return -E2BIG;
	unsigned char *nb = realloc(c->buf, ncap);
	if (!nb)
		return -ENOMEM;
	c->buf = nb;
	c->cap = ncap;
	return 0;
}

/* Chunk everything src gives into f, storing new chunks with w and
 * feeding the file's bytes to h (when not NULL). A submission in the mount
 * reads a staging file; an upload reads chunks back from the store
 * (engine_upload.c): both are cut here, the same way. */
int vd_engine_ingest_source(struct vd_file *f, vd_store_writer *w, vd_hasher *h,
			    vd_engine *e, const struct vd_engine_source *src,
			    struct vd_buf *why)
{
	struct cutter c;
	int rc = cutter_init(&c, e, w, h, f);
	if (rc)
		return rc;
	for (;;) {
		if ((rc = cutter_cut(&c, false, why)))
			goto out;
		/* The chunker needs more: read straight into the window. */
		if ((rc = cutter_room(&c, (size_t)1 << 20)))
			goto out;
		size_t got = 0;
		if ((rc = src->read(src->ctx, c.buf + c.end, c.cap - c.end, &got, why)))
			goto out;
		if (got == 0)
			break;
		c.end += got;
	}
	rc = cutter_cut(&c, true, why);
out:
	cutter_release(&c);
	return rc;
}

struct fd_source {
	int fd;
	off_t off;
};

static int fd_read(void *ctx, void *buf, size_t cap, size_t *got, struct vd_buf *why)
{
	struct fd_source *s = ctx;
	ssize_t n;
	do
		n = pread(s->fd, buf, cap, s->off);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		vd_buf_addf(why, "reading the submission: %s", strerror(errno));
		return -errno;
	}
	s->off += n;
	*got = (size_t)n;
	return 0;
}

/* Chunk everything fd holds (from offset 0) into f. */
static int ingest_fd(struct vd_file *f, vd_store_writer *w, vd_hasher *h,
		     vd_engine *e, int fd, struct vd_buf *why)
{
	struct fd_source fs = { .fd = fd };
	struct vd_engine_source src = { .read = fd_read, .ctx = &fs };
	return vd_engine_ingest_source(f, w, h, e, &src, why);
}

/* ---- versions ---------------------------------------------------------- */

static int version_info_from(struct vd_version_info *out, const json_t *v)
{
	const char *id = json_string_value(json_object_get(v, "data_id"));
	const char *name = json_string_value(json_object_get(v, "name"));
	const char *kind = json_string_value(json_object_get(v, "kind"));
	if (!id || !vd_id_valid(id) || !name || !kind)
		return -EBADMSG;
	memset(out, 0, sizeof *out);
	memcpy(out->data_id, id, VD_ID_SIZE);
	snprintf(out->name, sizeof out->name, "%s", name);
	out->kind = strcmp(kind, "tree") ? VD_KIND_FILE : VD_KIND_TREE;
	out->size = (uint64_t)json_integer_value(json_object_get(v, "size"));
	out->nfiles = (uint64_t)json_integer_value(json_object_get(v, "files"));
	out->stored = (uint64_t)json_integer_value(json_object_get(v, "stored"));
	out->time_ms = json_integer_value(json_object_get(v, "time"));
	return 0;
}

int vd_engine_version_json(json_t **out, vd_engine *e, const char *task,
			   const char *data_id)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc;
	if (!vd_engine_name_valid(task) || !vd_id_valid(data_id))
		return -ENOENT;
	vd_engine_key(&k, "v", task, data_id, NULL);
	rc = vd_catalog_get_json(out, e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

int vd_engine_version_get(struct vd_version_info *out, vd_engine *e,
			  const char *task, const char *data_id)
{
	json_t *v = NULL;
	int rc = vd_engine_version_json(&v, e, task, data_id);
	if (!rc)
		rc = version_info_from(out, v);
	json_decref(v);
	return rc;
}

int vd_engine_version_list(struct vd_strv *out, vd_engine *e, const char *task)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc;
	if (!vd_engine_name_valid(task))
		return -ENOENT;
	vd_engine_key(&k, "v", task, "", NULL);
	rc = vd_engine_list_suffix(out, e, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

uint64_t vd_engine_deletes_seq(vd_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t n = e->m_deleted;
	pthread_mutex_unlock(&e->lock);
	return n;
}

uint64_t vd_engine_versions_seq(vd_engine *e)
{
	pthread_mutex_lock(&e->lock);
	uint64_t n = e->m_versions + e->m_deleted;
	pthread_mutex_unlock(&e->lock);
	return n;
}

int vd_engine_version_latest(char data_id[VD_ID_SIZE], vd_engine *e,
			     const char *task)
{
	json_t *t = NULL;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	const char *l = json_string_value(json_object_get(t, "latest"));
	if (l && vd_id_valid(l))
		memcpy(data_id, l, VD_ID_SIZE);
	else
		rc = -ENOENT;
	json_decref(t);
	return rc;
}

int vd_engine_data_list(struct vd_strv *out, vd_engine *e, const char *task)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc;
	if (!vd_engine_name_valid(task))
		return -ENOENT;
	vd_engine_key(&k, "dn", task, "", NULL);
	rc = vd_engine_list_suffix(out, e, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

int vd_engine_data_get(struct vd_version_info *out, vd_engine *e,
		       const char *task, const char *name)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	char *id = NULL;
	size_t len;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_engine_name_valid(name))
		return -ENOENT;
	vd_engine_key(&k, "dn", task, name, NULL);
	if ((rc = vd_catalog_get(&id, &len, e->cat, vd_buf_cstr(&k))))
		goto out;
	rc = vd_engine_version_get(out, e, task, id);
	/* The version keeps the name it was first sealed under; the data
	 * name asked for is the one that matters here. */
	if (!rc)
		snprintf(out->name, sizeof out->name, "%s", name);
out:
	free(id);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_data_unlink(vd_engine *e, const char *task, const char *name)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_engine_name_valid(name))
		return -ENOENT;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	vd_engine_key(&k, "dn", task, name, NULL);
	pthread_mutex_lock(&e->lock);
	rc = vd_catalog_has(e->cat, vd_buf_cstr(&k));
	if (rc == 1) {
		vd_catalog_batch_del(b, vd_buf_cstr(&k));
		rc = vd_catalog_commit(e->cat, b, true);
	} else if (rc == 0) {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&e->lock);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

static int resubmit_locked(vd_catalog_batch *b, bool *made_run, const char **code,
			   vd_engine *e, const char *task, const char *data_id,
			   json_t *t, json_t *v);

static int data_rename(vd_engine *e, const char *task, const char *from, const char *to,
		       bool submit, bool keep)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *t = NULL, *v = NULL;
	char *id = NULL;
	size_t len;
	bool made_run = false;
	const char *code = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_engine_name_valid(from))
		return -ENOENT;
	if (!vd_engine_name_valid(to))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	vd_engine_key(&k, "dn", task, from, NULL);
	if ((rc = vd_catalog_get(&id, &len, e->cat, vd_buf_cstr(&k))))
		goto unlock;
	if (!keep)
		vd_catalog_batch_del(b, vd_buf_cstr(&k));
	vd_engine_key(&k, "dn", task, to, NULL);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), id, len);
	if (submit) {
		if ((rc = vd_engine_task_json(&t, e, task)) ||
		    (rc = vd_engine_version_json(&v, e, task, id)))
			goto unlock;
		/* Renamed a moment after it was sealed (an editor's or a sync
		 * tool's temporary put in place): the version is recorded
		 * under the name it was meant to have. */
		const char *was = json_string_value(json_object_get(v, "name"));
		int64_t sealed = json_integer_value(json_object_get(v, "time"));
		if (!keep && was && !strcmp(was, from) &&
		    vd_now_ms() - sealed < VD_RENAME_RECORD_MS) {
			json_object_set_new(v, "name", json_string(to));
			vd_engine_key(&k, "v", task, id, NULL);
			if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), v)))
				goto unlock;
		}
		if ((rc = resubmit_locked(b, &made_run, &code, e, task, id, t, v)))
			goto unlock;
	}
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto unlock;
	if (made_run)
		vd_engine_run_activate(e, task, id, code);
	vd_info("task %s: data/%s %s data/%s (version %.12s)", task, from,
		keep ? "linked as" : "renamed to", to, id);
unlock:
	pthread_mutex_unlock(&e->lock);
	json_decref(v);
	json_decref(t);
	free(id);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_data_rename(vd_engine *e, const char *task, const char *from,
			  const char *to, bool submit)
{
	return data_rename(e, task, from, to, submit, false);
}

int vd_engine_data_link(vd_engine *e, const char *task, const char *from, const char *to)
{
	return data_rename(e, task, from, to, true, true);
}

/* ---- lineage ----------------------------------------------------------- */

struct parent_scan {
	json_t *parents;
	const char *path;     /* the file inside the new version ("" for a file) */
	const char *id;       /* its content ID */
	const char *self;     /* the new version's data ID */
	bool result;          /* scanning ri/ (results) rather than vi/ (versions) */
};

static bool parent_known(const json_t *parents, const char *id, const char *path)
{
	size_t i;
	json_t *p;
	json_array_foreach(parents, i, p)
		if (!strcmp(json_string_value(json_object_get(p, "id")), id) &&
		    !strcmp(json_string_value(json_object_get(p, "path")), path))
			return true;
	return false;
}

/* ri/<id>/<task>/<data>/<code> and vi/<id>/<task>: each is a parent. */
static int add_parent(void *ctx, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	struct parent_scan *ps = ctx;
	const char *rest = key + 3 + VD_ID_LEN + 1, *end = key + klen;
	const char *slash = memchr(rest, '/', (size_t)(end - rest));
	char task[256], code[VD_ID_SIZE] = "";
	size_t tlen = slash ? (size_t)(slash - rest) : (size_t)(end - rest);
	/* The same content in another task is the same dataset (the same
	 * node of the lineage DAG), not a derivation. */
	if (tlen >= sizeof task || parent_known(ps->parents, ps->id, ps->path) ||
	    (!ps->result && !strcmp(ps->id, ps->self)))
		return 0;
	memcpy(task, rest, tlen);
	task[tlen] = '\0';
	if (ps->result) {
		/* <task>/<data>/<code>: the code is the last field. */
		if (end - key < VD_ID_LEN || !slash)
			return 0;
		memcpy(code, end - VD_ID_LEN, VD_ID_LEN);
		code[VD_ID_LEN] = '\0';
	}
	json_t *p = json_pack("{s:s, s:s, s:s, s:s}", "id", ps->id, "kind", "same",
			      "path", ps->path, "task", task);
	if (p)
		json_object_set_new(p, "code_id", code[0] ? json_string(code) : json_null());
	return p ? json_array_append_new(ps->parents, p) : -ENOMEM;
}

/*
 * A new version whose content (or the content of a file inside it) equals an
 * earlier result or a version of another task derives from it: record the
 * edge in the version's parents and as ch/<parent>/<child>/<task> for the
 * other direction. Lock held (the scans see committed state only, which is
 * all there is to see: results and versions are committed under the lock).
 */
static int record_lineage(vd_catalog_batch *b, json_t *v, vd_engine *e,
			  const char *task, const char *data_id,
			  const struct vd_manifest *m)
{
	json_t *parents = json_object_get(v, "parents");
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc = 0;
	for (size_t i = 0; i < m->nfiles && !rc; i++) {
		const struct vd_file *f = &m->files[i];
		struct parent_scan ps = { parents, f->path, f->id, data_id, true };
		if (!f->id[0])
			continue;
		vd_buf_reset(&k);
		vd_buf_addf(&k, "ri/%s/", f->id);
		rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), add_parent, &ps);
		ps.result = false;
		vd_buf_reset(&k);
		vd_buf_addf(&k, "vi/%s/", f->id);
		if (!rc)
			rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), add_parent, &ps);
	}
	size_t i;
	json_t *p;
	json_array_foreach(parents, i, p) {
		json_t *edge = json_pack("{s:s, s:O, s:s}", "kind", "same", "code_id",
					 json_object_get(p, "code_id"), "path",
					 json_string_value(json_object_get(p, "path")));
		vd_buf_reset(&k);
		vd_buf_addf(&k, "ch/%s/%s/%s", json_string_value(json_object_get(p, "id")),
			    data_id, task);
		if (!rc && edge)
			rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), edge);
		json_decref(edge);
	}
	vd_buf_reset(&k);
	vd_buf_addf(&k, "vi/%s/%s", data_id, task);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), "", 0);
	vd_buf_release(&k);
	return rc;
}

/*
 * Content submitted again (sealed anew under a name, or a name renamed to
 * one that is not a temporary): it becomes the task's latest, and when the
 * task's current code never ran on it, it gets that run, which takes every
 * unit it can from memo. Lock held; the changes go into b, the task record
 * t and version record v included. *code is the code a new run is for.
 */
static int resubmit_locked(vd_catalog_batch *b, bool *made_run, const char **code,
			   vd_engine *e, const char *task, const char *data_id,
			   json_t *t, json_t *v)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc = 0;
	*made_run = false;
	*code = json_string_value(json_object_get(t, "code"));
	json_object_set_new(t, "latest", json_string(data_id));
	json_object_set_new(t, "latest_time", json_integer((json_int_t)vd_now_ms()));
	vd_engine_key(&k, "t", task, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto out;
	if (*code) {
		if ((rc = vd_engine_run_add(b, e, task, data_id, *code, v)) < 0)
			goto out;
		*made_run = rc > 0;
		rc = 0;
	}
out:
	vd_buf_release(&k);
	return rc;
}

/*
 * The quick half of sealing: under the lock, record the version (unless its
 * content is known already) and its run, and point the data name at it.
 * The writer's pack index entries go into the same batch.
 */
int vd_engine_seal(struct vd_version_info *out, vd_engine *e, const char *task,
		   const char *name, const char *by, const struct vd_manifest *m,
		   const char *data_id, vd_store_writer *w)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *t = NULL, *v = NULL, *mj = NULL;
	bool made_run = false;
	int rc;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	/* Durable before anything names it. */
	if ((rc = vd_store_writer_commit(w, b)))
		goto out;
	pthread_mutex_lock(&e->lock);
	if ((rc = vd_engine_task_json(&t, e, task)))
		goto unlock;
	vd_engine_key(&k, "dn", task, name, NULL);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), data_id, VD_ID_LEN);
	rc = vd_engine_version_json(&v, e, task, data_id);
	if (rc == 0) {
		/* Known content: no new version; it is latest again. */
		const char *code = NULL;
		if ((rc = resubmit_locked(b, &made_run, &code, e, task, data_id, t, v)) ||
		    (rc = vd_catalog_commit(e->cat, b, true)))
			goto unlock;
		if (made_run)
			vd_engine_run_activate(e, task, data_id, code);
		rc = version_info_from(out, v);
		goto unlock;
	}
	if (rc != -ENOENT)
		goto unlock;
	vd_engine_key(&k, "m", data_id, NULL, NULL);
	if (vd_catalog_has(e->cat, vd_buf_cstr(&k)) != 1) {
		if (!(mj = vd_engine_manifest_json(m))) {
			rc = -ENOMEM;
			goto unlock;
		}
		if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), mj)))
			goto unlock;
	}
	uint64_t size = 0;
	for (size_t i = 0; i < m->nfiles; i++)
		size += m->files[i].size;
	int64_t now = vd_now_ms();
	/* stored: the raw bytes of the chunks this version brought (after
	 * dedup); compressed: what they take in the store. */
	v = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:[], s:[]}", "name", name,
		      "data_id", data_id, "kind", m->kind == VD_KIND_TREE ? "tree" : "file",
		      "size", (json_int_t)size, "files", (json_int_t)m->nfiles,
		      "stored", (json_int_t)vd_store_writer_new_bytes(w), "compressed",
		      (json_int_t)vd_store_writer_stored_bytes(w), "time",
		      (json_int_t)now, "runs", "parents");
	if (!v) {
		rc = -ENOMEM;
		goto unlock;
	}
	/* Who submitted it, for meta.json: a user of the HTTP API, or the
	 * owner of the file in the mount. */
	if (by && *by)
		json_object_set_new(v, "submitted_by", json_string(by));
	if ((rc = record_lineage(b, v, e, task, data_id, m)))
		goto unlock;
	vd_engine_key(&k, "v", task, data_id, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), v)))
		goto unlock;
	vd_engine_order_put(b, task, data_id, now);
	json_object_set_new(t, "latest", json_string(data_id));
	json_object_set_new(t, "latest_time", json_integer((json_int_t)now));
	vd_engine_key(&k, "t", task, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto unlock;
	const char *code = json_string_value(json_object_get(t, "code"));
	if (code) {
		/* The version record is only in the batch so far, so it is
		 * handed over; run_add puts it again with the run listed,
		 * and in a batch the later put of a key wins. */
		if ((rc = vd_engine_run_add(b, e, task, data_id, code, v)) < 0)
			goto unlock;
		made_run = rc > 0;
	}
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto unlock;
	e->m_versions++;
	e->m_bytes_in += size;
	e->m_bytes_stored += vd_store_writer_new_bytes(w);
	vd_info("task %s: sealed %s as version %s (%llu bytes, %llu new)", task,
		name, data_id, (unsigned long long)size,
		(unsigned long long)vd_store_writer_new_bytes(w));
	vd_engine_event_version(e, task, data_id, name, "sealed");
	if (made_run)
		vd_engine_run_activate(e, task, data_id, code);
	rc = version_info_from(out, v);
	if (!rc)
		rc = 1;
unlock:
	pthread_mutex_unlock(&e->lock);
out:
	json_decref(mj);
	json_decref(v);
	json_decref(t);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_submit_file(struct vd_version_info *out, struct vd_buf *why,
			  vd_engine *e, const char *task, const char *name, const char *by,
			  int fd)
{
	struct vd_manifest m = { .kind = VD_KIND_FILE, .nfiles = 1 };
	struct vd_file f = { 0 };
	vd_store_writer *w = NULL;
	vd_hasher *h = NULL;
	char data_id[VD_ID_SIZE];
	int rc;
	if (!vd_engine_name_valid(name)) {
		vd_buf_addf(why, "'%s' is not a valid data name", name);
		return -EINVAL;
	}
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if (!(f.path = strdup(""))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = vd_hasher_new(&h, &e->key)) || (rc = vd_store_writer_new(&w, e->store)))
		goto out;
	if ((rc = ingest_fd(&f, w, h, e, fd, why)))
		goto out;
	vd_hasher_digest(h, data_id);
	memcpy(f.id, data_id, VD_ID_SIZE);
	m.files = &f;
	rc = vd_engine_seal(out, e, task, name, by, &m, data_id, w);
out:
	vd_engine_disk_note(e, rc < 0 ? rc : 0);
	if (rc < 0)
		vd_warn("task %s: submission of %s refused: %s", task, name,
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	vd_engine_file_release(&f);
	vd_store_writer_free(w);
	vd_hasher_free(h);
	return rc;
}

/* ---- streams ----------------------------------------------------------- */

/* Bytes that may wait for the worker before writers block: enough to keep
 * it busy across a few 1 MiB FUSE writes, bounded so memory stays small. */
#define STREAM_QUEUE_MAX ((size_t)32 << 20)

struct qbuf {
	struct qbuf *next;
	size_t n;
	unsigned char data[];
};

struct vd_ingest {
	vd_engine *e;
	char task[256];
	char by[VD_BY_SIZE];       /* who submits it (vd_engine_ingest_by) */
	struct vd_file f;
	vd_store_writer *w;
	vd_hasher *h;
	struct cutter c;           /* the worker's, or the caller's once joined */
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;
	pthread_cond_t cv;         /* queue changed, or the worker went idle */
	struct qbuf *head, *tail;  /* lock */
	size_t queued;             /* lock: bytes in the queue */
	bool busy;                 /* lock: the worker holds a buffer */
	bool closing;              /* lock: no more writes; worker exits when empty */
	int err;                   /* lock: the worker's first error, sticky */
	struct vd_buf why;         /* lock: its reason */
	uint64_t size;             /* caller's: bytes accepted */
};

static void *stream_worker(void *arg)
{
	vd_ingest *in = arg;
	pthread_mutex_lock(&in->lock);
	for (;;) {
		while (!in->head && !in->closing)
			pthread_cond_wait(&in->cv, &in->lock);
		struct qbuf *b = in->head;
		if (!b)
			break;
		in->head = b->next;
		if (!in->head)
			in->tail = NULL;
		in->busy = true;
		int err = in->err;
		pthread_mutex_unlock(&in->lock);
		/* After an error the rest is only drained: the writer sees the
		 * error at its next call. */
		struct vd_buf why = VD_BUF_INIT(1024);
		if (!err && !(err = cutter_room(&in->c, b->n))) {
			memcpy(in->c.buf + in->c.end, b->data, b->n);
			in->c.end += b->n;
			err = cutter_cut(&in->c, false, &why);
		}
		pthread_mutex_lock(&in->lock);
		if (err && !in->err) {
			in->err = err;
			vd_buf_add(&in->why, why.data ? why.data : "", why.len);
		}
		vd_buf_release(&why);
		in->queued -= b->n;
		in->busy = false;
		free(b);
		pthread_cond_broadcast(&in->cv);
	}
	pthread_mutex_unlock(&in->lock);
	return NULL;
}

int vd_engine_ingest_begin(vd_ingest **out, vd_engine *e, const char *task)
{
	vd_ingest *in = calloc(1, sizeof *in);
	int rc;
	if (!in)
		return -ENOMEM;
	in->e = e;
	snprintf(in->task, sizeof in->task, "%s", task);
	vd_buf_init(&in->why, 4096);
	pthread_mutex_init(&in->lock, NULL);
	pthread_cond_init(&in->cv, NULL);
	if (!vd_engine_task_exists(e, task)) {
		rc = -ENOENT;
		goto fail;
	}
	if (!(in->f.path = strdup(""))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = vd_hasher_new(&in->h, &e->key)) ||
	    (rc = vd_store_writer_new(&in->w, e->store)) ||
	    (rc = cutter_init(&in->c, e, in->w, in->h, &in->f)))
		goto fail;
	if ((rc = -pthread_create(&in->thread, NULL, stream_worker, in)))
		goto fail;
	in->started = true;
	*out = in;
	return 0;
fail:
	vd_engine_ingest_abort(in);
	return rc;
}

void vd_engine_ingest_by(vd_ingest *in, const char *by)
{
	snprintf(in->by, sizeof in->by, "%s", by ? by : "");
}

int vd_engine_ingest_write(vd_ingest *in, const void *p, size_t n)
{
	struct qbuf *b = NULL;
	int rc;
	if (n == 0)
		return 0;
	if (!(b = malloc(sizeof *b + n)))
		return -ENOMEM;
	b->next = NULL;
	b->n = n;
	memcpy(b->data, p, n);
	pthread_mutex_lock(&in->lock);
	while (!in->err && in->queued > 0 && in->queued + n > STREAM_QUEUE_MAX)
		pthread_cond_wait(&in->cv, &in->lock);
	rc = in->err;
	if (!rc) {
		if (in->tail)
			in->tail->next = b;
		else
			in->head = b;
		in->tail = b;
		in->queued += n;
		in->size += n;
		b = NULL;
		pthread_cond_broadcast(&in->cv);
	}
	pthread_mutex_unlock(&in->lock);
	free(b);
	return rc;
}

uint64_t vd_engine_ingest_size(const vd_ingest *in)
{
	return in->size;
}

/* Let the worker finish what is queued and exit; its state is ours then. */
static int stream_join(vd_ingest *in)
{
	if (!in->started)
		return in->err;
	pthread_mutex_lock(&in->lock);
	in->closing = true;
	pthread_cond_broadcast(&in->cv);
	pthread_mutex_unlock(&in->lock);
	pthread_join(in->thread, NULL);
	in->started = false;
	return in->err;
}

static void stream_free(vd_ingest *in)
{
	stream_join(in);
	cutter_release(&in->c);
	vd_engine_file_release(&in->f);
	vd_store_writer_free(in->w);
	vd_hasher_free(in->h);
	vd_buf_release(&in->why);
	pthread_cond_destroy(&in->cv);
	pthread_mutex_destroy(&in->lock);
	free(in);
}

void vd_engine_ingest_abort(vd_ingest *in)
{
	if (in)
		stream_free(in);
}

int vd_engine_ingest_copy_to(vd_ingest *in, int fd)
{
	struct vd_buf b = VD_BUF_INIT((size_t)1 << 30);
	off_t off = 0;
	int rc;
	/* Wait until the worker holds nothing; it then only waits for more. */
	pthread_mutex_lock(&in->lock);
	while (in->head || in->busy)
		pthread_cond_wait(&in->cv, &in->lock);
	rc = in->err;
	pthread_mutex_unlock(&in->lock);
	for (size_t i = 0; !rc && i < in->f.n; i++) {
		vd_buf_reset(&b);
		if (!(rc = vd_store_writer_read(&b, in->w, in->f.ext[i].id)))
			rc = vd_pwrite_all(fd, b.data, b.len, off);
		off += (off_t)b.len;
	}
	if (!rc)
		rc = vd_pwrite_all(fd, in->c.buf + in->c.start, in->c.end - in->c.start, off);
	if (!rc && ftruncate(fd, (off_t)in->size))
		rc = -errno;
	vd_buf_release(&b);
	return rc;
}

int vd_engine_ingest_seal(struct vd_version_info *out, struct vd_buf *why,
			  vd_ingest *in, const char *name)
{
	struct vd_manifest m = { .kind = VD_KIND_FILE, .nfiles = 1 };
	char data_id[VD_ID_SIZE];
	int rc;
	if (!vd_engine_name_valid(name)) {
		vd_buf_addf(why, "'%s' is not a valid data name", name);
		rc = -EINVAL;
		goto out;
	}
	if ((rc = stream_join(in))) {
		vd_buf_add(why, in->why.data ? in->why.data : "", in->why.len);
		goto out;
	}
	if ((rc = cutter_cut(&in->c, true, why)))
		goto out;
	vd_hasher_digest(in->h, data_id);
	memcpy(in->f.id, data_id, VD_ID_SIZE);
	m.files = &in->f;
	rc = vd_engine_seal(out, in->e, in->task, name, in->by, &m, data_id, in->w);
out:
	vd_engine_disk_note(in->e, rc < 0 ? rc : 0);
	if (rc < 0)
		vd_warn("task %s: submission of %s refused: %s", in->task, name,
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	stream_free(in);
	return rc;
}

/* ---- trees ----------------------------------------------------------- */

/*
 * A tree keeps what `cp -a` copies (docs/versioning.md, "Trees"): regular
 * files with their modes, directories that are empty or not 0755, symlinks
 * as their target strings, and hard links inside the tree as second names
 * of one content. The walk never follows a symlink (every open is
 * O_NOFOLLOW, every stat AT_SYMLINK_NOFOLLOW, a link is read with
 * readlinkat): a tree is a user's, the daemon often root.
 */

/* Regular files with more than one name, by inode: where a second name's
 * content is found. Open addressing; grown at half full. */
struct seen_inode {
	dev_t dev;
	ino_t ino;
	size_t idx;                /* the entry of the name walked first */
	bool used;
};

struct tree_walk {
	vd_engine *e;
	vd_store_writer *w;
	vd_hasher *h;
	struct vd_buf *why;
	const char *task, *name;
	struct vd_config cfg;      /* symlinks and special */
	struct vd_file *files;
	size_t n, cap;
	struct seen_inode *seen;
	size_t nseen, seencap;
	bool links;                /* some entry is a hard link */
};

static size_t seen_slot(const struct tree_walk *tw, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)ino * 0x9e3779b97f4a7c15ULL) ^ (uint64_t)dev;
	size_t i = (size_t)(h ^ (h >> 29)) & (tw->seencap - 1);
	while (tw->seen[i].used && (tw->seen[i].dev != dev || tw->seen[i].ino != ino))
		i = (i + 1) & (tw->seencap - 1);
	return i;
}

static int seen_add(struct tree_walk *tw, dev_t dev, ino_t ino, size_t idx)
{
	if (2 * (tw->nseen + 1) > tw->seencap) {
		size_t ncap = tw->seencap ? tw->seencap * 2 : 64;
		struct seen_inode *old = tw->seen;
		size_t oldcap = tw->seencap;
		if (!(tw->seen = calloc(ncap, sizeof *tw->seen))) {
			tw->seen = old;
			return -ENOMEM;
		}
		tw->seencap = ncap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].used)
				tw->seen[seen_slot(tw, old[i].dev, old[i].ino)] = old[i];
		free(old);
	}
	struct seen_inode *s = &tw->seen[seen_slot(tw, dev, ino)];
	*s = (struct seen_inode){ .dev = dev, .ino = ino, .idx = idx, .used = true };
	tw->nseen++;
	return 0;
}

static const struct seen_inode *seen_find(const struct tree_walk *tw, dev_t dev, ino_t ino)
{
	if (!tw->seencap)
		return NULL;
	const struct seen_inode *s = &tw->seen[seen_slot(tw, dev, ino)];
	return s->used ? s : NULL;
}

/* A new, cleared entry at the end of the walk's list; takes path. */
static int entry_push(struct vd_file **out, struct tree_walk *tw, char *path, mode_t mode)
{
	if (!path)
		return -ENOMEM;
	if (tw->n == tw->cap) {
		size_t ncap = tw->cap ? tw->cap * 2 : 64;
		struct vd_file *nf = realloc(tw->files, ncap * sizeof *nf);
		if (!nf) {
			free(path);
			return -ENOMEM;
		}
		tw->files = nf;
		tw->cap = ncap;
	}
	struct vd_file *f = &tw->files[tw->n++];
	memset(f, 0, sizeof *f);
	f->path = path;
	f->mode = mode;
	f->nlink = 1;
	*out = f;
	return 0;
}

static const char *special_kind(mode_t m)
{
	if (S_ISFIFO(m))
		return "a FIFO (named pipe)";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "neither a file, a directory nor a symlink";
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A regular file: its bytes, or, for another name of a file walked
 * already, that entry's extents. ffd is open on it, st its fstat. */
static int walk_file(struct tree_walk *tw, int ffd, const struct stat *st, char *path)
{
	const struct seen_inode *s = st->st_nlink > 1 ? seen_find(tw, st->st_dev, st->st_ino)
						      : NULL;
	struct vd_file *f;
	int rc = entry_push(&f, tw, path, S_IFREG | (st->st_mode & 07777));
	if (rc)
		return rc;
	if (s) {
		/* The walk's order is not path order: which name is the first
		 * is settled after sorting (hardlinks_settle). */
		const struct vd_file *first = &tw->files[s->idx];
		if (!(f->hardlink = strdup(first->path)))
			return -ENOMEM;
		if (first->n && !(f->ext = malloc(first->n * sizeof *f->ext)))
			return -ENOMEM;
		if (first->n)
			memcpy(f->ext, first->ext, first->n * sizeof *f->ext);
		f->n = first->n;
		f->size = first->size;
		memcpy(f->id, first->id, VD_ID_SIZE);
		tw->links = true;
		return 0;
	}
	/* Each file's own content ID is kept: lineage matches files inside
	 * trees against results. */
	vd_hasher_reset(tw->h);
	if ((rc = ingest_fd(f, tw->w, tw->h, tw->e, ffd, tw->why)))
		return rc;
	vd_hasher_digest(tw->h, f->id);
	if (st->st_nlink > 1)
		rc = seen_add(tw, st->st_dev, st->st_ino, tw->n - 1);
	return rc;
}

/* A symlink: its target, read, never followed. */
static int walk_symlink(struct tree_walk *tw, int dirfd, const char *nm, char *path)
{
	char target[PATH_MAX];
	struct vd_file *f;
	if (tw->cfg.symlinks == VD_SYMLINKS_SKIP) {
		vd_info("task %s: tree %s: leaving out symlink %s (symlinks = skip)", tw->task,
			tw->name, path);
		free(path);
		return 0;
	}
	ssize_t n = readlinkat(dirfd, nm, target, sizeof target);
	if (n < 0 || (size_t)n >= sizeof target) {
		int rc = n < 0 ? -errno : -ENAMETOOLONG;
		vd_buf_addf(tw->why, "%s: reading the symlink: %s", path, strerror(-rc));
		free(path);
		return rc;
	}
	target[n] = '\0';
	if (n == 0 || memchr(target, '\0', (size_t)n)) {
		vd_buf_addf(tw->why, "%s: a symlink with an empty target", path);
		free(path);
		return -EINVAL;
	}
	int rc = entry_push(&f, tw, path, S_IFLNK | 0777);
	if (!rc && !(f->target = strdup(target)))
		rc = -ENOMEM;
	return rc;
}

/* Add everything below dir (rel is its path inside the tree). */
static int walk(struct tree_walk *tw, int dirfd, const char *rel, int depth)
{
	struct vd_strv names = { 0 };
	DIR *d = NULL;
	int rc = 0;
	if (depth > 64) {
		vd_buf_addf(tw->why, "%s: directories nested deeper than 64", rel);
		return -ELOOP;
	}
	int fd = dup(dirfd);
	if (fd < 0 || !(d = fdopendir(fd))) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		return rc;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((rc = vd_strv_push(&names, de->d_name)))
			goto out;
	}
	if (names.n > 1)
		qsort(names.v, names.n, sizeof *names.v, name_cmp);
	for (size_t i = 0; i < names.n; i++) {
		struct vd_buf path = VD_BUF_INIT(PATH_MAX);
		struct stat st;
		const char *nm = names.v[i];
		vd_buf_addf(&path, "%s%s%s", rel, *rel ? "/" : "", nm);
		if (!vd_engine_name_valid(nm) || path.len >= PATH_MAX) {
			vd_buf_addf(tw->why, "'%s' is not a valid file name", vd_buf_cstr(&path));
			vd_buf_release(&path);
			rc = -EINVAL;
			goto out;
		}
		if (fstatat(dirfd, nm, &st, AT_SYMLINK_NOFOLLOW)) {
			rc = -errno;
			vd_buf_addf(tw->why, "%s: %s", vd_buf_cstr(&path), strerror(errno));
			vd_buf_release(&path);
			goto out;
		}
		if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
			bool dir = S_ISDIR(st.st_mode);
			/* O_NONBLOCK: should a FIFO have taken the file's place,
			 * opening it must not wait for a writer. */
			int sub = openat(dirfd, nm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
					 (dir ? O_DIRECTORY : O_NONBLOCK));
			/* What was opened is what counts: stat it again. */
			if (sub < 0 || fstat(sub, &st) < 0)
				rc = -errno;
			else if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
				rc = -EAGAIN;   /* replaced while the tree was walked */
			if (rc) {
				vd_buf_addf(tw->why, "%s: cannot be read: %s", vd_buf_cstr(&path),
					    strerror(-rc));
			} else if (dir) {
				size_t before = tw->n;
				rc = walk(tw, sub, vd_buf_cstr(&path), depth + 1);
				/* A directory that holds nothing, or whose mode
				 * is not the default, is an entry; others are
				 * implied by the paths, as they always were. */
				struct vd_file *f;
				if (!rc && (tw->n == before ||
					    (st.st_mode & 07777) != VD_DIR_MODE_DEFAULT))
					rc = entry_push(&f, tw, vd_buf_detach(&path, NULL),
							S_IFDIR | (st.st_mode & 07777));
			} else {
				rc = walk_file(tw, sub, &st, vd_buf_detach(&path, NULL));
			}
			if (sub >= 0)
				close(sub);
		} else if (S_ISLNK(st.st_mode)) {
			rc = walk_symlink(tw, dirfd, nm, vd_buf_detach(&path, NULL));
		} else if (tw->cfg.special == VD_SPECIAL_SKIP) {
			vd_warn("task %s: tree %s: leaving out %s: %s (special = skip)", tw->task,
				tw->name, vd_buf_cstr(&path), special_kind(st.st_mode));
		} else {
			vd_buf_addf(tw->why, "%s is %s, which a version cannot hold; to leave "
				    "such files out of the tree, set 'special = skip' in the "
				    "task's config", vd_buf_cstr(&path), special_kind(st.st_mode));
			rc = -EPERM;
		}
		vd_buf_release(&path);
		if (rc)
			goto out;
	}
out:
	vd_strv_release(&names);
	closedir(d);
	return rc;
}

/*
 * The walk pointed each second name of a file at the name it met first,
 * which need not be first in path order. Once sorted, make every name of
 * the file point at its first name in path order (the one a copy back
 * makes first, and the one an ID commits to) and give all of them the
 * count of names.
 */
static int hardlinks_settle(struct vd_file *files, size_t n)
{
	size_t *group = malloc((n + 1) * sizeof *group);
	size_t *first = malloc((n + 1) * sizeof *first);
	uint32_t *count = calloc(n + 1, sizeof *count);
	int rc = 0;
	if (!group || !first || !count) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		group[i] = first[i] = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		if (!files[i].hardlink)
			continue;
		size_t g = vd_engine_entry_index(files, n, files[i].hardlink);
		if (g == SIZE_MAX) {
			rc = -EIO;
			goto out;
		}
		group[i] = group[g] = g;
	}
	for (size_t i = 0; i < n; i++) {
		if (group[i] == SIZE_MAX)
			continue;
		if (first[group[i]] == SIZE_MAX)
			first[group[i]] = i;
		count[group[i]]++;
	}
	for (size_t i = 0; i < n; i++) {
		if (group[i] == SIZE_MAX)
			continue;
		size_t p = first[group[i]];
		char *link = NULL;
		if (p != i && !(link = strdup(files[p].path))) {
			rc = -ENOMEM;
			goto out;
		}
		free(files[i].hardlink);
		files[i].hardlink = link;
		files[i].nlink = count[group[i]];
	}
out:
	free(group);
	free(first);
	free(count);
	return rc;
}

static void hash_mode(vd_hasher *h, mode_t perm)
{
	char s[16];
	int len = snprintf(s, sizeof s, "\001mode %04o\n", (unsigned)(perm & 07777));
	vd_hasher_update(h, s, (size_t)len);
}

/*
 * A tree's ID commits to each regular file's path, size and chunk IDs
 * (which commit to the bytes), exactly as before trees kept more; what
 * they keep now is added only where it differs from what a tree of plain
 * files always meant (a file 0644, a directory 0755 implied by the paths,
 * no links), so such a tree keeps the ID it always had. The stream is
 * unambiguous: a path has no byte below 0x20 and ends with NUL; after it
 * comes a file's size (a digit) or \002 and the kind of entry; facts that
 * differ from the defaults each start with \001.
 *
 *   "vdfs-tree\n" ["\001mode NNNN\n"]          top directory not 0755
 *   per entry, in path order:
 *     path "\0" size "\n" chunk-id... "\n"     regular file
 *     path "\0" "\002dir\n"                    directory entry
 *     path "\0" "\002symlink\n" target "\0"    symlink
 *     then ["\001mode NNNN\n"]                 file not 0644, dir not 0755
 *          ["\001hardlink " first-path "\0"]   a second name
 */
void vd_engine_tree_id(char data_id[VD_ID_SIZE], vd_hasher *h, const struct vd_manifest *m)
{
	vd_hasher_update(h, "vdfs-tree\n", 10);
	if (m->mode && (m->mode & 07777) != VD_DIR_MODE_DEFAULT)
		hash_mode(h, m->mode);
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct vd_file *f = &m->files[i];
		mode_t type = vd_file_type(f), perm = vd_file_perm(f);
		vd_hasher_update(h, f->path, strlen(f->path) + 1);
		if (type == S_IFDIR) {
			vd_hasher_update(h, "\002dir\n", 5);
			if (perm != VD_DIR_MODE_DEFAULT)
				hash_mode(h, perm);
			continue;
		}
		if (type == S_IFLNK) {
			vd_hasher_update(h, "\002symlink\n", 9);
			vd_hasher_update(h, f->target, strlen(f->target) + 1);
			continue;
		}
		char sz[32];
		int len = snprintf(sz, sizeof sz, "%llu\n", (unsigned long long)f->size);
		vd_hasher_update(h, sz, (size_t)len);
		for (size_t j = 0; j < f->n; j++)
			vd_hasher_update(h, f->ext[j].id, VD_ID_LEN);
		vd_hasher_update(h, "\n", 1);
		if (perm != VD_FILE_MODE_DEFAULT)
			hash_mode(h, perm);
		if (f->hardlink) {
			vd_hasher_update(h, "\001hardlink ", 10);
			vd_hasher_update(h, f->hardlink, strlen(f->hardlink) + 1);
		}
	}
	vd_hasher_digest(h, data_id);
}

int vd_engine_submit_tree(struct vd_version_info *out, struct vd_buf *why,
			  vd_engine *e, const char *task, const char *name, const char *by,
			  const char *dir)
{
	struct tree_walk tw = { .e = e, .why = why, .task = task, .name = name };
	struct vd_manifest m = { .kind = VD_KIND_TREE };
	vd_hasher *treeh = NULL, *fileh = NULL;
	char data_id[VD_ID_SIZE];
	struct stat st;
	int dfd = -1, rc;
	if (!vd_engine_name_valid(name)) {
		vd_buf_addf(why, "'%s' is not a valid data name", name);
		return -EINVAL;
	}
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	/* The config says what to do with symlinks and special files. */
	if (vd_engine_task_config(&tw.cfg, NULL, e, task))
		vd_config_default(&tw.cfg);
	if ((rc = vd_hasher_new(&treeh, &e->key)) || (rc = vd_hasher_new(&fileh, &e->key)) ||
	    (rc = vd_store_writer_new(&tw.w, e->store)))
		goto out;
	tw.h = fileh;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	m.mode = st.st_mode & 07777;
	if ((rc = walk(&tw, dfd, "", 0)))
		goto out;
	if (tw.n > 1)
		qsort(tw.files, tw.n, sizeof *tw.files, vd_engine_file_path_cmp);
	if (tw.links && (rc = hardlinks_settle(tw.files, tw.n)))
		goto out;
	m.files = tw.files;
	m.nfiles = tw.n;
	vd_engine_tree_id(data_id, treeh, &m);
	rc = vd_engine_seal(out, e, task, name, by, &m, data_id, tw.w);
out:
	vd_engine_disk_note(e, rc < 0 ? rc : 0);
	if (rc < 0)
		vd_warn("task %s: tree submission of %s refused: %s", task, name,
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	if (dfd >= 0)
		close(dfd);
	for (size_t i = 0; i < tw.n; i++)
		vd_engine_file_release(&tw.files[i]);
	free(tw.files);
	free(tw.seen);
	vd_store_writer_free(tw.w);
	vd_hasher_free(treeh);
	vd_hasher_free(fileh);
	return rc;
}
