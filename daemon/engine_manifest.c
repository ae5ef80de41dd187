/*
 * engine_manifest.c - manifests: a version's content as JSON in the
 * catalog (m/<data-id>, docs/catalog.md) and back, with what trees keep
 * beside bytes (types, modes, symlink targets, hard links; each written
 * only where it differs from the default, so that old manifests read the
 * same), and the lookups sealing and the view need.
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

/* ---- manifests ------------------------------------------------------- */

void vd_engine_file_release(struct vd_file *f)
{
	free(f->path);
	free(f->ext);
	free(f->target);
	free(f->hardlink);
	memset(f, 0, sizeof *f);
}

mode_t vd_file_type(const struct vd_file *f)
{
	mode_t t = f->mode & S_IFMT;
	return t == S_IFDIR || t == S_IFLNK ? t : S_IFREG;
}

mode_t vd_file_perm(const struct vd_file *f)
{
	if (f->mode)
		return f->mode & 07777;
	return vd_file_type(f) == S_IFDIR ? VD_DIR_MODE_DEFAULT : VD_FILE_MODE_DEFAULT;
}

void vd_file_free(struct vd_file *f)
{
	if (!f)
		return;
	vd_engine_file_release(f);
	free(f);
}

void vd_manifest_free(struct vd_manifest *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nfiles; i++)
		vd_engine_file_release(&m->files[i]);
	free(m->files);
	free(m);
}

int vd_engine_file_push(struct vd_file *f, size_t *cap, const char *id, uint64_t len,
			uint64_t lines)
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
	x->lines = lines;
	f->size += len;
	return 0;
}

/* Extents as JSON: [[id, len, newlines], ...] (newlines left out when not
 * known). Offsets are implied by the order. */
static json_t *extents_json(const struct vd_file *f)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < f->n; i++) {
		const struct vd_extent *x = &f->ext[i];
		json_array_append_new(a, x->lines == VD_LINES_UNKNOWN
			? json_pack("[s,I]", x->id, (json_int_t)x->len)
			: json_pack("[s,I,I]", x->id, (json_int_t)x->len, (json_int_t)x->lines));
	}
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
		json_t *nl = json_array_get(x, 2);
		if (!id || !vd_id_valid(id) || len < 0)
			return -EBADMSG;
		int rc = vd_engine_file_push(f, &cap, id, (uint64_t)len,
				  json_is_integer(nl) ? (uint64_t)json_integer_value(nl)
						      : VD_LINES_UNKNOWN);
		if (rc)
			return rc;
	}
	return 0;
}

/* A string of the manifest (a path, a link target): JSON wants UTF-8, but
 * names and targets are any bytes but NUL, so one that is not valid UTF-8
 * goes under key_hex instead, as hex of its bytes. */
static int json_set_bytes(json_t *o, const char *key, const char *s)
{
	json_t *v = json_string(s);
	if (v)
		return json_object_set_new(o, key, v) ? -ENOMEM : 0;
	struct vd_buf k = VD_BUF_INIT(256), hex = VD_BUF_INIT(SIZE_MAX / 2);
	int rc = vd_buf_addf(&k, "%s_hex", key);
	for (const unsigned char *p = (const unsigned char *)s; !rc && *p; p++)
		rc = vd_buf_addf(&hex, "%02x", *p);
	if (!rc && json_object_set_new(o, vd_buf_cstr(&k), json_string(vd_buf_cstr(&hex))))
		rc = -ENOMEM;
	vd_buf_release(&k);
	vd_buf_release(&hex);
	return rc;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The string json_set_bytes wrote: a copy in *out, NULL when neither key
 * is there; -EBADMSG for a malformed one. */
static int json_get_bytes(char **out, const json_t *o, const char *key)
{
	char hkey[64];
	*out = NULL;
	const char *s = json_string_value(json_object_get(o, key));
	if (s)
		return (*out = strdup(s)) ? 0 : -ENOMEM;
	snprintf(hkey, sizeof hkey, "%s_hex", key);
	const char *h = json_string_value(json_object_get(o, hkey));
	if (!h)
		return 0;
	size_t n = strlen(h);
	if (n % 2)
		return -EBADMSG;
	char *b = malloc(n / 2 + 1);
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hex_digit(h[2 * i]), lo = hex_digit(h[2 * i + 1]);
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(b);
			return -EBADMSG;
		}
		b[i] = (char)(hi << 4 | lo);
	}
	b[n / 2] = '\0';
	*out = b;
	return 0;
}

static json_t *mode_json(mode_t perm)
{
	char s[8];
	snprintf(s, sizeof s, "%04o", (unsigned)(perm & 07777));
	return json_string(s);
}

/* "mode": "0750" (an integer is taken too); def when absent. */
static int mode_parse(mode_t *out, const json_t *o, mode_t def)
{
	const json_t *j = json_object_get(o, "mode");
	unsigned long x;
	*out = def;
	if (!j)
		return 0;
	if (json_is_integer(j)) {
		if (json_integer_value(j) < 0)
			return -EBADMSG;
		x = (unsigned long)json_integer_value(j);
	} else {
		const char *s = json_string_value(j);
		char *end;
		if (!s || !*s || strlen(s) > 6)
			return -EBADMSG;
		errno = 0;
		x = strtoul(s, &end, 8);
		if (errno || *end)
			return -EBADMSG;
	}
	if (x > 07777)
		return -EBADMSG;
	*out = (mode_t)x;
	return 0;
}

/*
 * One entry of a manifest. The fields beyond path, size and chunks are
 * written only when they differ from what an old manifest means (a
 * regular file, mode 0644; a directory 0755), so a tree of plain files has
 * the manifest it always had. A second name of a hard-linked file repeats
 * its size and chunks: a reader that does not know "hardlink" (vdfs diff,
 * a download) still sees the right bytes.
 */
json_t *vd_engine_file_json(const struct vd_file *f)
{
	json_t *j = json_pack("{s:I, s:o}", "size", (json_int_t)f->size, "chunks",
			      extents_json(f));
	mode_t type = vd_file_type(f);
	if (!j)
		return NULL;
	if (json_set_bytes(j, "path", f->path ? f->path : ""))
		goto fail;
	if (f->id[0])
		json_object_set_new(j, "id", json_string(f->id));
	if (type == S_IFDIR)
		json_object_set_new(j, "type", json_string("dir"));
	if (type == S_IFLNK) {
		json_object_set_new(j, "type", json_string("symlink"));
		if (json_set_bytes(j, "target", f->target ? f->target : ""))
			goto fail;
	}
	mode_t def = type == S_IFDIR ? VD_DIR_MODE_DEFAULT : VD_FILE_MODE_DEFAULT;
	if (f->mode && type != S_IFLNK && (f->mode & 07777) != def)
		json_object_set_new(j, "mode", mode_json(f->mode));
	if (f->hardlink && json_set_bytes(j, "hardlink", f->hardlink))
		goto fail;
	return j;
fail:
	json_decref(j);
	return NULL;
}

json_t *vd_engine_manifest_json(const struct vd_manifest *m)
{
	json_t *files = json_array();
	for (size_t i = 0; files && i < m->nfiles; i++) {
		json_t *fj = vd_engine_file_json(&m->files[i]);
		if (!fj || json_array_append_new(files, fj)) {
			json_decref(files);
			return NULL;
		}
	}
	json_t *j = json_pack("{s:s, s:o}", "kind", m->kind == VD_KIND_TREE ? "tree" : "file",
			      "files", files);
	if (j && m->kind == VD_KIND_TREE && m->mode && (m->mode & 07777) != VD_DIR_MODE_DEFAULT)
		json_object_set_new(j, "mode", mode_json(m->mode));
	return j;
}

int vd_engine_file_path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vd_file *)a)->path, ((const struct vd_file *)b)->path);
}

/* The entry whose path is path in files sorted by path; SIZE_MAX if none. */
size_t vd_engine_entry_index(const struct vd_file *files, size_t n, const char *path)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(files[mid].path, path);
		if (d == 0)
			return mid;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* The first entry whose path is >= key. */
static size_t entry_lower_bound(const struct vd_manifest *m, const char *key)
{
	size_t lo = 0, hi = m->nfiles;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(m->files[mid].path, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vd_manifest_lookup(mode_t *type, size_t *idx, const struct vd_manifest *m,
		       const char *path)
{
	char prefix[PATH_MAX + 2];
	size_t i = vd_engine_entry_index(m->files, m->nfiles, path);
	if (i != SIZE_MAX) {
		*type = vd_file_type(&m->files[i]);
		*idx = i;
		return 0;
	}
	*idx = SIZE_MAX;
	if (path[0] == '\0') {
		*type = S_IFDIR;
		return 0;
	}
	/* A directory only the paths below it imply: the first path at or
	 * after "path/" in order starts with it if any does. */
	size_t n = strlen(path);
	if (n > PATH_MAX)
		return -ENAMETOOLONG;
	memcpy(prefix, path, n);
	prefix[n] = '/';
	prefix[n + 1] = '\0';
	i = entry_lower_bound(m, prefix);
	if (i >= m->nfiles || strncmp(m->files[i].path, prefix, n + 1))
		return -ENOENT;
	*type = S_IFDIR;
	return 0;
}

/* A path inside a tree: components that are valid names, joined by '/'.
 * Sealing never makes another; a damaged or forged one could make the
 * copy of a tree (materialize_tree) reach outside its directory. */
static bool tree_path_valid(const char *path)
{
	char name[256];
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0 || len >= sizeof name)
			return false;
		memcpy(name, p, len);
		name[len] = '\0';
		if (!vd_engine_name_valid(name))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* One entry from its JSON (see vd_engine_file_json); defaults for what an
 * old manifest leaves out. */
static int entry_parse(struct vd_file *vf, const json_t *f, enum vd_kind kind)
{
	const char *type = json_string_value(json_object_get(f, "type"));
	const json_t *chunks = json_object_get(f, "chunks");
	mode_t perm, t = S_IFREG;
	int rc;
	if ((rc = json_get_bytes(&vf->path, f, "path")))
		return rc;
	if (!vf->path || (kind == VD_KIND_TREE && !tree_path_valid(vf->path)))
		return -EBADMSG;
	const char *fid = json_string_value(json_object_get(f, "id"));
	if (fid && vd_id_valid(fid))
		memcpy(vf->id, fid, VD_ID_SIZE);
	if (type && !strcmp(type, "dir"))
		t = S_IFDIR;
	else if (type && !strcmp(type, "symlink"))
		t = S_IFLNK;
	else if (type && strcmp(type, "file"))
		return -EBADMSG;
	if (t != S_IFREG && (kind != VD_KIND_TREE || !vf->path[0]))
		return -EBADMSG;
	if ((rc = mode_parse(&perm, f, t == S_IFDIR ? VD_DIR_MODE_DEFAULT
						    : t == S_IFLNK ? 0777 : VD_FILE_MODE_DEFAULT)))
		return rc;
	/* A file version and a result record no mode: they stay 0. */
	vf->mode = kind == VD_KIND_TREE ? (t | perm) : 0;
	vf->nlink = 1;
	if (t == S_IFLNK) {
		if ((rc = json_get_bytes(&vf->target, f, "target")))
			return rc;
		if (!vf->target || !vf->target[0])
			return -EBADMSG;
	}
	if ((rc = json_get_bytes(&vf->hardlink, f, "hardlink")))
		return rc;
	if (vf->hardlink && t != S_IFREG)
		return -EBADMSG;
	if (t != S_IFREG)
		return chunks && json_array_size(chunks) ? -EBADMSG : 0;
	/* A hard link may leave its chunks out; they are its first name's. */
	if (!chunks && vf->hardlink)
		return 0;
	return vd_engine_extents_parse(vf, chunks);
}

/* Every second name of a file gets its first name's extents (when it has
 * none of its own) and every name of it the count of names. The first
 * name must be a regular file that is no link itself. */
static int hardlinks_resolve(struct vd_manifest *m)
{
	for (size_t i = 0; i < m->nfiles; i++) {
		struct vd_file *f = &m->files[i];
		if (!f->hardlink)
			continue;
		size_t p = vd_engine_entry_index(m->files, m->nfiles, f->hardlink);
		if (p == SIZE_MAX || p == i || m->files[p].hardlink ||
		    vd_file_type(&m->files[p]) != S_IFREG)
			return -EBADMSG;
		struct vd_file *first = &m->files[p];
		if (!f->ext && first->n) {
			if (!(f->ext = malloc(first->n * sizeof *f->ext)))
				return -ENOMEM;
			memcpy(f->ext, first->ext, first->n * sizeof *f->ext);
			f->n = first->n;
			f->size = first->size;
		}
		if (!f->id[0])
			memcpy(f->id, first->id, VD_ID_SIZE);
		first->nlink++;
	}
	for (size_t i = 0; i < m->nfiles; i++) {
		struct vd_file *f = &m->files[i];
		if (f->hardlink)
			f->nlink = m->files[vd_engine_entry_index(m->files, m->nfiles, f->hardlink)].nlink;
	}
	return 0;
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
	if (m->kind == VD_KIND_TREE) {
		if ((rc = mode_parse(&m->mode, j, VD_DIR_MODE_DEFAULT)))
			goto out;
		rc = -EBADMSG;
	}
	m->files = calloc(json_array_size(files) + 1, sizeof *m->files);
	if (!m->files) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(files, i, f) {
		if ((rc = entry_parse(&m->files[m->nfiles++], f, m->kind)))
			goto out;
	}
	/* Lookups bisect: make sure of the order (sealing writes it sorted). */
	for (i = 1; i < m->nfiles; i++) {
		if (strcmp(m->files[i - 1].path, m->files[i].path) > 0) {
			qsort(m->files, m->nfiles, sizeof *m->files, vd_engine_file_path_cmp);
			break;
		}
	}
	for (i = 1; i < m->nfiles; i++) {
		if (!strcmp(m->files[i - 1].path, m->files[i].path)) {
			rc = -EBADMSG;
			goto out;
		}
	}
	if ((rc = hardlinks_resolve(m)))
		goto out;
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

void vd_engine_chunk_prefetch(vd_engine *e, const char *chunk_id)
{
	if (vd_id_valid(chunk_id))
		vd_store_prefetch(e->store, chunk_id);
}
