/*
 * engine_ingest.c - sealing submissions into versions; manifests, data
 * names and version records.
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine_int.h"

#define READ_BLOCK (8u << 20)

/* ---- manifests ------------------------------------------------------- */

static void file_release(struct vd_file *f)
{
	free(f->path);
	free(f->ext);
	memset(f, 0, sizeof *f);
}

void vd_file_free(struct vd_file *f)
{
	if (!f)
		return;
	file_release(f);
	free(f);
}

void vd_manifest_free(struct vd_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		file_release(&m->files[i]);
	free(m->files);
	free(m);
}

static int ext_push(struct vd_file *f, size_t *cap, const char *id, uint64_t len)
{
	if (f->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct vd_extent *x = realloc(f->ext, ncap * sizeof *x);
		if (!x)
			return -ENOMEM;
		f->ext = x;
		*cap = ncap;
	}
	struct vd_extent *x = &f->ext[f->n++];
	memcpy(x->id, id, VD_ID_SIZE);
	x->off = f->size;
	x->len = len;
	f->size += len;
	return 0;
}

/* Extents as JSON: [[id, len], ...]. Offsets are implied by the order. */
static json_t *extents_json(const struct vd_file *f)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < f->n; i++)
		json_array_append_new(a, json_pack("[s,I]", f->ext[i].id,
						   (json_int_t)f->ext[i].len));
	return a;
}

int vd_engine_extents_parse(struct vd_file *f, const json_t *a)
{
	size_t cap = 0, i;
	json_t *x;
	if (!json_is_array(a))
		return -EBADMSG;
	json_array_foreach(a, i, x) {
		const char *id = json_string_value(json_array_get(x, 0));
		json_int_t len = json_integer_value(json_array_get(x, 1));
		if (!id || !vd_id_valid(id) || len < 0)
			return -EBADMSG;
		int rc = ext_push(f, &cap, id, (uint64_t)len);
		if (rc)
			return rc;
	}
	return 0;
}

json_t *vd_engine_file_json(const struct vd_file *f)
{
	return json_pack("{s:s, s:I, s:o}", "path", f->path ? f->path : "", "size",
			 (json_int_t)f->size, "chunks", extents_json(f));
}

static json_t *manifest_json(const struct vd_manifest *m)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < m->nfiles; i++)
		json_array_append_new(files, vd_engine_file_json(&m->files[i]));
	return json_pack("{s:s, s:o}", "kind", m->kind == VD_KIND_TREE ? "tree" : "file",
			 "files", files);
}

int vd_engine_manifest_parse(struct vd_manifest **out, const char *text, size_t n)
{
	json_t *j = json_loadb(text, n, 0, NULL), *files, *f;
	struct vd_manifest *m = calloc(1, sizeof *m);
	size_t i;
	int rc = -EBADMSG;
	if (!j || !m)
		goto out;
	const char *kind = json_string_value(json_object_get(j, "kind"));
	files = json_object_get(j, "files");
	if (!kind || !json_is_array(files))
		goto out;
	m->kind = strcmp(kind, "tree") ? VD_KIND_FILE : VD_KIND_TREE;
	m->files = calloc(json_array_size(files) + 1, sizeof *m->files);
	if (!m->files) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(files, i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		struct vd_file *vf = &m->files[m->nfiles++];
		if (!path || !(vf->path = strdup(path)))
			goto out;
		if ((rc = vd_engine_extents_parse(vf, json_object_get(f, "chunks"))))
			goto out;
		rc = -EBADMSG;
	}
	rc = 0;
	*out = m;
	m = NULL;
out:
	vd_manifest_free(m);
	json_decref(j);
	return rc;
}

int vd_engine_manifest_get(struct vd_manifest **out, vd_engine *e,
			   const char *data_id)
{
	struct vd_buf k = VD_BUF_INIT(128);
	char *val = NULL;
	size_t len;
	int rc;
	if (!vd_id_valid(data_id))
		return -ENOENT;
	vd_engine_key(&k, "m", data_id, NULL, NULL);
	rc = vd_catalog_get(&val, &len, e->cat, vd_buf_cstr(&k));
	if (!rc)
		rc = vd_engine_manifest_parse(out, val, len);
	free(val);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_chunk_read(struct vd_buf *out, vd_engine *e, const char *chunk_id)
{
	if (!vd_id_valid(chunk_id))
		return -ENOENT;
	return vd_store_read(out, e->store, chunk_id);
}

/* ---- cutting content into chunks ----------------------------------- */

/* Chunk everything fd holds (from offset 0) into f, storing new chunks
 * with w and feeding the file's bytes to h (when not NULL). */
static int ingest_fd(struct vd_file *f, vd_store_writer *w, vd_hasher *h,
		     vd_engine *e, int fd, struct vd_buf *why)
{
	const struct vd_chunker_params *prm = &e->chunking;
	size_t cap = READ_BLOCK + prm->max_size, start = 0, end = 0, ecap = 0;
	size_t limit = prm->hard_max + READ_BLOCK;
	unsigned char *buf = malloc(cap);
	off_t foff = 0;
	bool eof = false;
	int rc = 0;
	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t cut = 0;
		rc = vd_chunker_cut(&cut, buf + start, end - start, eof, prm);
		if (rc == -E2BIG) {
			vd_buf_addf(why, "%s%sa record starting at byte %llu is "
				    "longer than %zu bytes (the record limit)",
				    f->path && *f->path ? f->path : "",
				    f->path && *f->path ? ": " : "",
				    (unsigned long long)f->size, prm->hard_max);
			goto out;
		}
		if (rc)
			goto out;
		if (cut > 0) {
			char id[VD_ID_SIZE];
			if (h)
				vd_hasher_update(h, buf + start, cut);
			if ((rc = vd_store_writer_put(id, w, buf + start, cut)))
				goto out;
			if ((rc = ext_push(f, &ecap, id, cut)))
				goto out;
			start += cut;
			continue;
		}
		if (eof)
			break;
		/* The chunker needs more: keep the undecided tail at the
		 * front and read behind it, growing the window only for a
		 * record longer than max_size. */
		if (start > 0) {
			memmove(buf, buf + start, end - start);
			end -= start;
			start = 0;
		}
		if (end == cap) {
			size_t ncap = cap * 2 < limit ? cap * 2 : limit;
			unsigned char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap = ncap;
		}
		ssize_t got = pread(fd, buf + end, cap - end, foff);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			vd_buf_addf(why, "reading the submission: %s", strerror(errno));
			goto out;
		}
		if (got == 0)
			eof = true;
		end += (size_t)got;
		foff += got;
	}
	rc = 0;
out:
	free(buf);
	return rc;
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

/*
 * The quick half of sealing: under the lock, record the version (unless its
 * content is known already) and its run, and point the data name at it.
 * The writer's pack index entries go into the same batch.
 */
static int seal(struct vd_version_info *out, vd_engine *e, const char *task,
		const char *name, const struct vd_manifest *m, const char *data_id,
		vd_store_writer *w)
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
		/* Known content: no new version, no new work. */
		if ((rc = vd_catalog_commit(e->cat, b, true)))
			goto unlock;
		rc = version_info_from(out, v);
		goto unlock;
	}
	if (rc != -ENOENT)
		goto unlock;
	vd_engine_key(&k, "m", data_id, NULL, NULL);
	if (vd_catalog_has(e->cat, vd_buf_cstr(&k)) != 1) {
		if (!(mj = manifest_json(m))) {
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
	v = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:[], s:[]}", "name", name,
		      "data_id", data_id, "kind", m->kind == VD_KIND_TREE ? "tree" : "file",
		      "size", (json_int_t)size, "files", (json_int_t)m->nfiles,
		      "stored", (json_int_t)vd_store_writer_new_bytes(w), "time",
		      (json_int_t)now, "runs", "parents");
	if (!v) {
		rc = -ENOMEM;
		goto unlock;
	}
	vd_engine_key(&k, "v", task, data_id, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), v)))
		goto unlock;
	json_object_set_new(t, "latest", json_string(data_id));
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
			  vd_engine *e, const char *task, const char *name, int fd)
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
	m.files = &f;
	rc = seal(out, e, task, name, &m, data_id, w);
out:
	if (rc < 0)
		vd_warn("task %s: submission of %s refused: %s", task, name,
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	file_release(&f);
	vd_store_writer_free(w);
	vd_hasher_free(h);
	return rc;
}

/* ---- trees ----------------------------------------------------------- */

struct tree_walk {
	vd_engine *e;
	vd_store_writer *w;
	vd_hasher *h;
	struct vd_buf *why;
	struct vd_file *files;
	size_t n, cap;
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add every regular file below dir (rel is its path inside the tree). */
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
			vd_buf_release(&path);
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, nm, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
			if (sub < 0) {
				rc = -errno;
			} else {
				rc = walk(tw, sub, vd_buf_cstr(&path), depth + 1);
				close(sub);
			}
		} else if (S_ISREG(st.st_mode)) {
			int ffd = openat(dirfd, nm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (ffd < 0) {
				rc = -errno;
			} else {
				if (tw->n == tw->cap) {
					size_t ncap = tw->cap ? tw->cap * 2 : 64;
					struct vd_file *nf = realloc(tw->files, ncap * sizeof *nf);
					if (!nf) {
						rc = -ENOMEM;
						close(ffd);
						vd_buf_release(&path);
						goto out;
					}
					tw->files = nf;
					tw->cap = ncap;
				}
				struct vd_file *f = &tw->files[tw->n++];
				memset(f, 0, sizeof *f);
				f->path = vd_buf_detach(&path, NULL);
				rc = f->path ? ingest_fd(f, tw->w, tw->h, tw->e, ffd, tw->why)
					     : -ENOMEM;
				close(ffd);
			}
		} else {
			vd_warn("tree submission: skipping %s (not a regular file "
				"or directory)", vd_buf_cstr(&path));
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

static int file_path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vd_file *)a)->path, ((const struct vd_file *)b)->path);
}

int vd_engine_submit_tree(struct vd_version_info *out, struct vd_buf *why,
			  vd_engine *e, const char *task, const char *name,
			  const char *dir)
{
	struct tree_walk tw = { .e = e, .why = why };
	struct vd_manifest m = { .kind = VD_KIND_TREE };
	vd_hasher *treeh = NULL;
	char data_id[VD_ID_SIZE];
	int dfd = -1, rc;
	if (!vd_engine_name_valid(name)) {
		vd_buf_addf(why, "'%s' is not a valid data name", name);
		return -EINVAL;
	}
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if ((rc = vd_hasher_new(&treeh, &e->key)) ||
	    (rc = vd_store_writer_new(&tw.w, e->store)))
		goto out;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		goto out;
	}
	/* A tree's ID commits to each file's path, size and chunk IDs; the
	 * chunk IDs already commit to the bytes, so no second pass over the
	 * content is needed. */
	if ((rc = walk(&tw, dfd, "", 0)))
		goto out;
	qsort(tw.files, tw.n, sizeof *tw.files, file_path_cmp);
	vd_hasher_update(treeh, "vdfs-tree\n", 10);
	for (size_t i = 0; i < tw.n; i++) {
		struct vd_file *f = &tw.files[i];
		char sz[32];
		vd_hasher_update(treeh, f->path, strlen(f->path) + 1);
		int len = snprintf(sz, sizeof sz, "%llu\n", (unsigned long long)f->size);
		vd_hasher_update(treeh, sz, (size_t)len);
		for (size_t j = 0; j < f->n; j++)
			vd_hasher_update(treeh, f->ext[j].id, VD_ID_LEN);
		vd_hasher_update(treeh, "\n", 1);
	}
	vd_hasher_digest(treeh, data_id);
	m.files = tw.files;
	m.nfiles = tw.n;
	rc = seal(out, e, task, name, &m, data_id, tw.w);
out:
	if (rc < 0)
		vd_warn("task %s: tree submission of %s refused: %s", task, name,
			why->len ? vd_buf_cstr(why) : strerror(-rc));
	if (dfd >= 0)
		close(dfd);
	for (size_t i = 0; i < tw.n; i++)
		file_release(&tw.files[i]);
	free(tw.files);
	vd_store_writer_free(tw.w);
	vd_hasher_free(treeh);
	return rc;
}
