/*
 * engine_upload.c - submitting from another machine: chunks by
 * fingerprint, then a manifest that becomes a version (docs/upload.md).
 *
 * A client that is not on the daemon's machine cannot compute chunk IDs:
 * they are keyed with the store's secret (lib/id.h), and handing that key
 * to every laptop on the LAN would let anyone forge IDs. So the client
 * names each chunk by the SHA-256 of its bytes, its fingerprint, and the
 * catalog keeps the mapping from fingerprint to chunk ID for the chunks
 * that arrived this way:
 *
 *   fp/<64 hex>  {"id": "<chunk id>", "len": N, "t": <ms of last upload>}
 *
 * Three calls make an upload. The client asks which fingerprints the
 * daemon cannot use (no record, or the chunk is no longer stored); it sends
 * those chunks, each checked against its fingerprint before anything is
 * stored, in batches that are durable when the call returns; and it
 * commits a manifest of fingerprints. The commit reads the chunks back in
 * order and feeds them through the same cutter and hashers a `cp` into the
 * mount goes through (vd_engine_ingest_source), then seals with the same
 * code. The version is therefore the one `cp` would have made, by
 * construction rather than by a second implementation of chunking: a
 * client that cut differently (a bug, another version) costs only
 * re-stored chunks, never a different ID or chunks that split a record.
 *
 * Uploaded chunks that no version uses yet are garbage by gc's rules; a
 * fingerprint record younger than the keep time (a day by default) makes
 * gc keep its chunk (engine_gc.c), so that an interrupted upload can be
 * resumed the next morning. gc drops the records of the chunks it sweeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "engine_int.h"

/* Fingerprints per "which are missing" call. */
#define UPLOAD_QUERY_MAX 10000
/* Head line of a frame: 64 hex, a space, a length, a newline. */
#define FRAME_HEAD_MAX (64 + 1 + 20 + 1)

bool vd_engine_fp_valid(const char *s)
{
	size_t i;
	for (i = 0; i < VD_FP_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

int vd_engine_api_upload_info(json_t **reply, vd_engine *e)
{
	*reply = json_pack("{s:s, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:I}",
			   "fingerprint", "sha256", "chunking",
			   "min", (json_int_t)e->chunking.min_size,
			   "avg", (json_int_t)e->chunking.avg_size,
			   "max", (json_int_t)e->chunking.max_size,
			   "hard_max", (json_int_t)e->chunking.hard_max,
			   "batch_max", (json_int_t)VD_UPLOAD_BATCH_MAX,
			   "query_max", (json_int_t)UPLOAD_QUERY_MAX,
			   "keep_s", (json_int_t)(e->upload_keep_ms / 1000));
	return *reply ? 0 : -ENOMEM;
}

/* The chunk a fingerprint names, when it is still stored: 1 and id (and
 * len) filled, 0 when the daemon cannot use it, -errno. */
static int fp_lookup(char id[VD_ID_SIZE], uint64_t *len, vd_engine *e, const char *fp)
{
	char key[4 + VD_FP_LEN + 1];
	json_t *j = NULL;
	int rc;
	snprintf(key, sizeof key, "fp/%s", fp);
	if ((rc = vd_catalog_get_json(&j, e->cat, key)))
		return rc == -ENOENT ? 0 : rc;
	const char *s = json_string_value(json_object_get(j, "id"));
	if (!s || !vd_id_valid(s)) {
		rc = 0;
		goto out;
	}
	memcpy(id, s, VD_ID_SIZE);
	if (len)
		*len = (uint64_t)json_integer_value(json_object_get(j, "len"));
	rc = vd_store_has(e->store, id);
out:
	json_decref(j);
	return rc;
}

int vd_engine_api_chunks_missing(json_t **reply, struct vd_buf *why, vd_engine *e,
				 const json_t *body)
{
	json_t *fps = json_object_get(body, "fingerprints"), *missing = NULL, *seen = NULL, *x;
	size_t i;
	int rc = 0;
	if (!json_is_array(fps)) {
		vd_buf_adds(why, "'fingerprints' must be an array of SHA-256 hex strings");
		return -EINVAL;
	}
	if (json_array_size(fps) > UPLOAD_QUERY_MAX) {
		vd_buf_addf(why, "at most %d fingerprints per request", UPLOAD_QUERY_MAX);
		return -EINVAL;
	}
	if (!(missing = json_array()) || !(seen = json_object())) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(fps, i, x) {
		const char *fp = json_string_value(x);
		char id[VD_ID_SIZE];
		if (!fp || !vd_engine_fp_valid(fp)) {
			vd_buf_addf(why, "fingerprint %zu is not 64 lowercase hex digits", i);
			rc = -EINVAL;
			goto out;
		}
		if (json_object_get(seen, fp))
			continue;
		json_object_set_new(seen, fp, json_true());
		if ((rc = fp_lookup(id, NULL, e, fp)) < 0)
			goto out;
		if (rc == 0 && json_array_append_new(missing, json_string(fp))) {
			rc = -ENOMEM;
			goto out;
		}
		rc = 0;
	}
	if (!(*reply = json_pack("{s:O}", "missing", missing)))
		rc = -ENOMEM;
out:
	json_decref(missing);
	json_decref(seen);
	return rc;
}

/* One frame of a chunk upload, pointing into the request body. */
struct frame {
	char fp[VD_FP_SIZE];
	const unsigned char *p;
	size_t n;
};

/* Split body into frames and check each against its fingerprint: nothing
 * is stored unless every frame is good. */
static int frames_parse(struct frame **out, size_t *nout, struct vd_buf *why, vd_engine *e,
			const unsigned char *body, size_t len)
{
	struct frame *f = NULL;
	size_t n = 0, cap = 0, pos = 0;
	int rc = 0;
	while (pos < len) {
		const unsigned char *nl = memchr(body + pos, '\n',
						 len - pos < FRAME_HEAD_MAX ? len - pos : FRAME_HEAD_MAX);
		char head[FRAME_HEAD_MAX + 1], *end;
		unsigned long long clen;
		if (!nl) {
			vd_buf_addf(why, "chunk %zu: no head line '<sha256> <length>' at byte %zu",
				    n, pos);
			rc = -EINVAL;
			goto out;
		}
		size_t hlen = (size_t)(nl - (body + pos));
		memcpy(head, body + pos, hlen);
		head[hlen] = '\0';
		if (hlen < VD_FP_LEN + 2 || head[VD_FP_LEN] != ' ') {
			vd_buf_addf(why, "chunk %zu: bad head line (want '<sha256> <length>')", n);
			rc = -EINVAL;
			goto out;
		}
		head[VD_FP_LEN] = '\0';
		errno = 0;
		clen = strtoull(head + VD_FP_LEN + 1, &end, 10);
		if (!vd_engine_fp_valid(head) || *end || errno || head[VD_FP_LEN + 1] < '0' ||
		    head[VD_FP_LEN + 1] > '9') {
			vd_buf_addf(why, "chunk %zu: bad head line (want '<sha256> <length>')", n);
			rc = -EINVAL;
			goto out;
		}
		pos += hlen + 1;
		if (clen == 0 || clen > e->chunking.hard_max) {
			vd_buf_addf(why, "chunk %zu (%s): length %llu is not 1 to %zu", n, head,
				    clen, e->chunking.hard_max);
			rc = -EINVAL;
			goto out;
		}
		if (clen > len - pos) {
			vd_buf_addf(why, "chunk %zu (%s): the body ends %llu bytes short", n, head,
				    clen - (unsigned long long)(len - pos));
			rc = -EINVAL;
			goto out;
		}
		unsigned char d[32];
		char hex[VD_FP_SIZE];
		if (gnutls_hash_fast(GNUTLS_DIG_SHA256, body + pos, (size_t)clen, d)) {
			rc = -EIO;
			goto out;
		}
		vd_engine_hex(hex, d, sizeof d);
		if (strcmp(hex, head) != 0) {
			vd_buf_addf(why, "chunk %zu: its bytes do not match fingerprint %s "
				    "(their SHA-256 is %s); nothing of this request was stored",
				    n, head, hex);
			rc = -EINVAL;
			goto out;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct frame *nf = realloc(f, ncap * sizeof *nf);
			if (!nf) {
				rc = -ENOMEM;
				goto out;
			}
			f = nf;
			cap = ncap;
		}
		memcpy(f[n].fp, head, VD_FP_SIZE);
		f[n].p = body + pos;
		f[n].n = (size_t)clen;
		n++;
		pos += (size_t)clen;
	}
	*out = f;
	*nout = n;
	f = NULL;
out:
	free(f);
	return rc;
}

int vd_engine_api_chunks_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			     const void *body, size_t len)
{
	struct frame *f = NULL;
	size_t n = 0;
	vd_store_writer *w = NULL;
	vd_catalog_batch *b = NULL;
	uint64_t bytes = 0;
	int rc;
	if ((rc = frames_parse(&f, &n, why, e, body, len)))
		goto out;
	if (n == 0) {
		vd_buf_adds(why, "no chunks in the body");
		rc = -EINVAL;
		goto out;
	}
	if ((rc = vd_store_writer_new(&w, e->store)) || (rc = vd_catalog_batch_new(&b)))
		goto out;
	int64_t now = vd_now_ms();
	for (size_t i = 0; i < n; i++) {
		char id[VD_ID_SIZE], key[4 + VD_FP_LEN + 1];
		json_t *j;
		if ((rc = vd_store_writer_put(id, w, f[i].p, f[i].n)))
			goto out;
		snprintf(key, sizeof key, "fp/%s", f[i].fp);
		if (!(j = json_pack("{s:s, s:I, s:I}", "id", id, "len", (json_int_t)f[i].n,
				    "t", (json_int_t)now))) {
			rc = -ENOMEM;
			goto out;
		}
		rc = vd_catalog_batch_put_json(b, key, j);
		json_decref(j);
		if (rc)
			goto out;
		bytes += f[i].n;
	}
	/* The pack is durable, then one synced batch names its chunks and
	 * their fingerprints: a 200 means the chunks survive a crash. */
	if ((rc = vd_store_writer_commit(w, b)) || (rc = vd_catalog_commit(e->cat, b, true)))
		goto out;
	uint64_t fresh = vd_store_writer_new_bytes(w);
	pthread_mutex_lock(&e->lock);
	e->m_upload_bytes += bytes;
	e->m_upload_new_bytes += fresh;
	pthread_mutex_unlock(&e->lock);
	if (!(*reply = json_pack("{s:I, s:I, s:I}", "chunks", (json_int_t)n, "bytes",
				 (json_int_t)bytes, "new_bytes", (json_int_t)fresh)))
		rc = -ENOMEM;
out:
	vd_engine_disk_note(e, rc < 0 ? rc : 0);
	if (rc == -ENOSPC && !why->len)
		vd_buf_adds(why, "the state disk is full; try again later");
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	free(f);
	return rc;
}

/* ---- commit ------------------------------------------------------------ */

/* A file of the manifest: its chunks, resolved to IDs. */
struct up_file {
	const char *path;          /* "" for a file version; borrowed from the body */
	mode_t mode;               /* type and permission bits */
	const char *target;        /* symlinks */
	uint64_t size;
	size_t n;
	char (*ids)[VD_ID_SIZE];
	uint64_t *lens;
};

/* Reads a file's chunks back from the store in order, for the cutter. */
struct chunk_source {
	vd_engine *e;
	const struct up_file *f;
	size_t next;               /* the chunk to read next */
	struct vd_buf cur;         /* the chunk being handed out */
	size_t pos;
};

static int chunk_read(void *ctx, void *buf, size_t cap, size_t *got, struct vd_buf *why)
{
	struct chunk_source *s = ctx;
	size_t done = 0;
	int rc;
	while (done < cap) {
		if (s->pos == s->cur.len) {
			if (s->next == s->f->n)
				break;
			vd_buf_reset(&s->cur);
			const char *id = s->f->ids[s->next];
			if ((rc = vd_store_read(&s->cur, s->e->store, id)) ||
			    (rc = s->cur.len == s->f->lens[s->next] ? 0 : -EIO)) {
				/* Swept since the check (gc keeps fresh uploads
				 * only) or damaged: the client sends it again. */
				vd_buf_addf(why, "%s%schunk %zu cannot be read back: %s",
					    *s->f->path ? s->f->path : "", *s->f->path ? ": " : "",
					    s->next, strerror(-rc));
				return rc == -ENOENT ? -ESTALE : rc;
			}
			s->next++;
			s->pos = 0;
			if (s->next < s->f->n)
				vd_store_prefetch(s->e->store, s->f->ids[s->next]);
		}
		size_t k = s->cur.len - s->pos;
		if (k > cap - done)
			k = cap - done;
		memcpy((char *)buf + done, s->cur.data + s->pos, k);
		s->pos += k;
		done += k;
	}
	*got = done;
	return 0;
}

/* Cut and hash one regular file of the manifest into f (its path set). */
static int commit_file(struct vd_file *f, struct vd_buf *why, vd_engine *e,
		       vd_store_writer *w, vd_hasher *h, const struct up_file *uf)
{
	struct chunk_source cs = { .e = e, .f = uf, .cur = VD_BUF_INIT(e->chunking.hard_max) };
	struct vd_engine_source src = { .read = chunk_read, .ctx = &cs };
	int rc;
	vd_hasher_reset(h);
	if (uf->n)
		vd_store_prefetch(e->store, uf->ids[0]);
	if ((rc = vd_engine_ingest_source(f, w, h, e, &src, why)))
		goto out;
	vd_hasher_digest(h, f->id);
out:
	vd_buf_release(&cs.cur);
	return rc;
}

/* A path inside a tree: components that are valid names, joined by '/',
 * with no control character or NUL (json_string_length tells). */
static bool path_valid(const json_t *p)
{
	const char *s = json_string_value(p);
	if (!s || json_string_length(p) != strlen(s) || !*s || strlen(s) >= 4096)
		return false;
	for (const char *c = s;;) {
		const char *slash = strchr(c, '/');
		size_t n = slash ? (size_t)(slash - c) : strlen(c);
		char nm[256];
		if (n == 0 || n >= sizeof nm)
			return false;
		memcpy(nm, c, n);
		nm[n] = '\0';
		if (!vd_engine_name_valid(nm))
			return false;
		if (!slash)
			return true;
		c = slash + 1;
	}
}

struct commit {
	vd_engine *e;
	struct vd_buf *why;
	struct up_file *files;
	size_t n;
	json_t *missing;           /* fingerprints not uploaded, each once */
	json_t *seen;
};

static void commit_release(struct commit *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->files[i].ids);
		free(c->files[i].lens);
	}
	free(c->files);
	json_decref(c->missing);
	json_decref(c->seen);
}

/* Resolve one file's chunk list (its fingerprints) and check its size. */
static int resolve_chunks(struct commit *c, struct up_file *uf, const json_t *chunks,
			  const json_t *size)
{
	size_t i, n = json_array_size(chunks);
	uint64_t total = 0;
	json_t *x;
	const char *what = *uf->path ? uf->path : "the file";
	if (!json_is_array(chunks) || !json_is_integer(size) || json_integer_value(size) < 0) {
		vd_buf_addf(c->why, "%s: a file needs 'chunks' (an array of fingerprints) "
			    "and 'size'", what);
		return -EINVAL;
	}
	uf->size = (uint64_t)json_integer_value(size);
	if (n && (!(uf->ids = malloc(n * sizeof *uf->ids)) ||
		  !(uf->lens = malloc(n * sizeof *uf->lens))))
		return -ENOMEM;
	uf->n = n;
	json_array_foreach(chunks, i, x) {
		const char *fp = json_string_value(x);
		int rc;
		if (!fp || !vd_engine_fp_valid(fp)) {
			vd_buf_addf(c->why, "%s: chunk %zu is not a fingerprint (64 lowercase "
				    "hex digits)", what, i);
			return -EINVAL;
		}
		if ((rc = fp_lookup(uf->ids[i], &uf->lens[i], c->e, fp)) < 0)
			return rc;
		if (rc == 0) {
			if (!json_object_get(c->seen, fp)) {
				json_object_set_new(c->seen, fp, json_true());
				if (json_array_append_new(c->missing, json_string(fp)))
					return -ENOMEM;
			}
			uf->lens[i] = 0;
		}
		total += uf->lens[i];
	}
	if (json_array_size(c->missing) == 0 && total != uf->size) {
		vd_buf_addf(c->why, "%s: 'size' is %llu but its chunks hold %llu bytes", what,
			    (unsigned long long)uf->size, (unsigned long long)total);
		return -EINVAL;
	}
	return 0;
}

/* A permission-bits field, or dflt when absent. */
static int mode_of(mode_t *out, const json_t *m, mode_t dflt)
{
	if (!m) {
		*out = dflt;
		return 0;
	}
	if (!json_is_integer(m) || json_integer_value(m) < 0 || json_integer_value(m) > 07777)
		return -EINVAL;
	*out = (mode_t)json_integer_value(m);
	return 0;
}

/* The entries of a tree manifest, checked and resolved. */
static int tree_entries(struct commit *c, const json_t *files)
{
	size_t i;
	json_t *x;
	if (!json_is_array(files)) {
		vd_buf_adds(c->why, "a tree needs 'files', an array of entries");
		return -EINVAL;
	}
	if (json_array_size(files) &&
	    !(c->files = calloc(json_array_size(files), sizeof *c->files)))
		return -ENOMEM;
	json_array_foreach(files, i, x) {
		struct up_file *uf = &c->files[c->n++];
		const json_t *p = json_object_get(x, "path");
		const char *type = json_string_value(json_object_get(x, "type"));
		mode_t perm;
		int rc;
		if (!json_is_object(x) || !path_valid(p)) {
			vd_buf_addf(c->why, "entry %zu: 'path' must be relative, with no '.', "
				    "'..' or empty component and no control character", i);
			return -EINVAL;
		}
		uf->path = json_string_value(p);
		if (!type)
			type = "file";
		bool dir = !strcmp(type, "dir"), link = !strcmp(type, "symlink");
		if (!dir && !link && strcmp(type, "file")) {
			vd_buf_addf(c->why, "%s: type '%s' is not file, dir or symlink", uf->path,
				    type);
			return -EINVAL;
		}
		if (mode_of(&perm, json_object_get(x, "mode"),
			    dir ? VD_DIR_MODE_DEFAULT : link ? 0777 : VD_FILE_MODE_DEFAULT)) {
			vd_buf_addf(c->why, "%s: 'mode' must be permission bits (0 to 07777)",
				    uf->path);
			return -EINVAL;
		}
		if (dir) {
			uf->mode = S_IFDIR | perm;
		} else if (link) {
			const json_t *t = json_object_get(x, "target");
			uf->mode = S_IFLNK | 0777;
			uf->target = json_string_value(t);
			if (!uf->target || !*uf->target ||
			    json_string_length(t) != strlen(uf->target) ||
			    strlen(uf->target) >= 4096) {
				vd_buf_addf(c->why, "%s: a symlink needs a 'target' (not empty, "
					    "no NUL)", uf->path);
				return -EINVAL;
			}
		} else {
			uf->mode = S_IFREG | perm;
			if ((rc = resolve_chunks(c, uf, json_object_get(x, "chunks"),
						 json_object_get(x, "size"))))
				return rc;
		}
	}
	return 0;
}

static int up_path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct up_file *)a)->path, ((const struct up_file *)b)->path);
}

/*
 * Each path once, and no path below a file or a symlink ("a" a file and
 * "a/b" too). In path order a path's descendants follow it, though not
 * always at once ("a-b" sorts between "a" and "a/b"), so each entry that
 * is not a directory is checked against the entries after it while they
 * share its prefix.
 */
static int tree_shape_check(struct commit *c)
{
	if (c->n > 1)
		qsort(c->files, c->n, sizeof *c->files, up_path_cmp);
	for (size_t i = 0; i < c->n; i++) {
		const char *p = c->files[i].path;
		size_t len = strlen(p);
		if (i + 1 < c->n && !strcmp(p, c->files[i + 1].path)) {
			vd_buf_addf(c->why, "%s is listed twice", p);
			return -EINVAL;
		}
		if (S_ISDIR(c->files[i].mode))
			continue;
		for (size_t j = i + 1; j < c->n && !strncmp(c->files[j].path, p, len); j++)
			if (c->files[j].path[len] == '/') {
				vd_buf_addf(c->why, "%s is inside %s, which is not a directory",
					    c->files[j].path, p);
				return -EINVAL;
			}
	}
	return 0;
}

/* Cut and hash every entry into the manifest m (files allocated here). */
static int tree_build(struct vd_manifest *m, struct commit *c, vd_store_writer *w,
		      vd_hasher *h, const char *task, const char *name)
{
	struct vd_config cfg;
	int rc = 0;
	if (vd_engine_task_config(&cfg, NULL, c->e, task))
		vd_config_default(&cfg);
	if (c->n && !(m->files = calloc(c->n, sizeof *m->files)))
		return -ENOMEM;
	for (size_t i = 0; i < c->n; i++) {
		const struct up_file *uf = &c->files[i];
		struct vd_file *f = &m->files[m->nfiles];
		if (S_ISLNK(uf->mode) && cfg.symlinks == VD_SYMLINKS_SKIP) {
			vd_info("task %s: tree %s: leaving out symlink %s (symlinks = skip)",
				task, name, uf->path);
			continue;
		}
		memset(f, 0, sizeof *f);
		m->nfiles++;
		f->mode = uf->mode;
		f->nlink = 1;
		if (!(f->path = strdup(uf->path)) ||
		    (uf->target && !(f->target = strdup(uf->target))))
			return -ENOMEM;
		if (S_ISREG(uf->mode) && (rc = commit_file(f, c->why, c->e, w, h, uf)))
			return rc;
	}
	/* The entries are in strcmp order already; the seal wants exactly
	 * the manifest's order, so it is made the same way. */
	if (m->nfiles > 1)
		qsort(m->files, m->nfiles, sizeof *m->files, vd_engine_file_path_cmp);
	return 0;
}

int vd_engine_api_submit(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *task, const char *by, const json_t *body)
{
	struct commit c = { .e = e, .why = why };
	struct vd_manifest m = { 0 };
	struct vd_file single = { 0 };
	struct vd_version_info info;
	vd_store_writer *w = NULL;
	vd_hasher *fileh = NULL, *treeh = NULL;
	char data_id[VD_ID_SIZE];
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *kind = json_string_value(json_object_get(body, "kind"));
	int rc;
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if (!name || !vd_engine_name_valid(name)) {
		vd_buf_adds(why, "'name' must be a valid data name (1 to 255 bytes, no '/', "
			    "not '.' or '..', no control character)");
		return -EINVAL;
	}
	if (!kind || (strcmp(kind, "file") && strcmp(kind, "tree"))) {
		vd_buf_adds(why, "'kind' must be \"file\" or \"tree\"");
		return -EINVAL;
	}
	bool tree = kind[0] == 't';
	if (!(c.missing = json_array()) || !(c.seen = json_object())) {
		rc = -ENOMEM;
		goto out;
	}
	if (tree) {
		m.kind = VD_KIND_TREE;
		if (mode_of(&m.mode, json_object_get(body, "mode"), VD_DIR_MODE_DEFAULT)) {
			vd_buf_adds(why, "'mode' must be permission bits (0 to 07777)");
			rc = -EINVAL;
			goto out;
		}
		if ((rc = tree_entries(&c, json_object_get(body, "files"))) ||
		    (rc = tree_shape_check(&c)))
			goto out;
	} else {
		if (!(c.files = calloc(1, sizeof *c.files))) {
			rc = -ENOMEM;
			goto out;
		}
		c.n = 1;
		c.files[0].path = "";
		c.files[0].mode = S_IFREG | VD_FILE_MODE_DEFAULT;
		if ((rc = resolve_chunks(&c, &c.files[0], json_object_get(body, "chunks"),
					 json_object_get(body, "size"))))
			goto out;
	}
	if (json_array_size(c.missing)) {
		size_t nm = json_array_size(c.missing);
		vd_buf_addf(why, "%zu chunk%s not uploaded", nm, nm == 1 ? " is" : "s are");
		*reply = json_pack("{s:O}", "missing", c.missing);
		rc = *reply ? -ESTALE : -ENOMEM;
		goto out;
	}
	if ((rc = vd_hasher_new(&fileh, &e->key)) || (rc = vd_hasher_new(&treeh, &e->key)) ||
	    (rc = vd_store_writer_new(&w, e->store)))
		goto out;
	if (tree) {
		if ((rc = tree_build(&m, &c, w, fileh, task, name)))
			goto out;
		vd_engine_tree_id(data_id, treeh, &m);
	} else {
		m.kind = VD_KIND_FILE;
		if (!(single.path = strdup(""))) {
			rc = -ENOMEM;
			goto out;
		}
		m.files = &single;
		m.nfiles = 1;
		if ((rc = commit_file(&single, why, e, w, fileh, &c.files[0])))
			goto out;
		memcpy(data_id, single.id, VD_ID_SIZE);
	}
	if ((rc = vd_engine_seal(&info, e, task, name, by, &m, data_id, w)) < 0)
		goto out;
	uint64_t size = 0;
	for (size_t i = 0; i < m.nfiles; i++)
		size += m.files[i].size;
	if (!(*reply = json_pack("{s:s, s:s, s:s, s:b, s:s, s:I, s:I}", "task", task, "name",
				 name, "data_id", data_id, "new", rc == 1, "kind", kind,
				 "size", (json_int_t)size, "files", (json_int_t)m.nfiles)))
		rc = -ENOMEM;
	else
		rc = 0;
out:
	if (rc < 0 && rc != -ESTALE && rc != -EINVAL)
		vd_warn("task %s: upload of %s refused: %s", task, name ? name : "?",
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	vd_engine_disk_note(e, rc < 0 ? rc : 0);
	if (tree) {
		for (size_t i = 0; i < m.nfiles; i++)
			vd_engine_file_release(&m.files[i]);
		free(m.files);
	}
	vd_engine_file_release(&single);
	vd_store_writer_free(w);
	vd_hasher_free(fileh);
	vd_hasher_free(treeh);
	commit_release(&c);
	return rc;
}

/* ---- function and config ---------------------------------------------- */

int vd_engine_api_function_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			       const char *task, const void *p, size_t n)
{
	char code[VD_ID_SIZE];
	int rc;
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if (n == 0) {
		vd_buf_adds(why, "the function is empty");
		return -EINVAL;
	}
	if ((rc = vd_engine_function_write(code, e, task, p, n)) < 0)
		return rc;
	*reply = json_pack("{s:s, s:s, s:b}", "task", task, "code_id", code, "new", rc == 1);
	return *reply ? 0 : -ENOMEM;
}

int vd_engine_api_config_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			     const char *task, const void *p, size_t n)
{
	int rc;
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if ((rc = vd_engine_config_write(why, e, task, p, n)) < 0)
		return rc;
	*reply = json_pack("{s:s}", "task", task);
	return *reply ? 0 : -ENOMEM;
}
