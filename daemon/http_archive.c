/*
 * http_archive.c - GET /v1/archive?ids=<id>,<id>...[&what=result|input]
 * [&task=<task>]: several versions' results (or inputs) as one zip,
 * made while it is sent (docs/protocol.md, "Archives").
 *
 * Contract:
 *  - Everything that can be refused is refused before the answer starts:
 *    a missing or malformed query is -EINVAL (400), an ID that is no
 *    version (of task, when given) or, for results, a version without a
 *    finished result is -ENOENT (404), an archive whose directory would
 *    pass AR_DIR_MAX is -EFBIG (413). The reason goes to why.
 *  - Then the zip is streamed with an unknown length (chunked): MHD's
 *    content reader pulls, and each pull drives libarchive one small
 *    step (an entry's header, AR_PIECE bytes of a stored chunk, the end
 *    of an entry, the central directory at the close). What libarchive
 *    writes lands in a carry-over buffer that MHD drains; nothing but one
 *    chunk of one file is ever held whole.
 *  - A chunk that cannot be read once the answer has begun ends the body
 *    short (MHD_CONTENT_READER_END_WITH_ERROR: the client sees no
 *    terminating chunk and the zip has no central directory), and the
 *    daemon's log names the chunk and the entry.
 *
 * Entry names: <task>/<data-id>/result.csv for results; for inputs
 * <task>/<data-id>/<data-name> (a file version) or
 * <task>/<data-id>/<data-name>/<path> (each file of a tree, with the tree
 * itself and the directories its manifest records as directory entries and
 * symlinks as symlink entries). Every entry has the version's seal time as
 * its mtime; files are 0644, directories 0755, deflated.
 *
 * http.c routes and authorizes (any user, reader and up); this file only
 * builds the response.
 */
#include "http_int.h"

#include <archive.h>
#include <archive_entry.h>

#include "engine.h"

/* At most this many IDs in one request. */
#define AR_IDS_MAX 1000
/* Bytes of file data given to libarchive per step: what one pull makes
 * it write is about this much (deflate's output is bounded by its input
 * and a few bytes), so the carry-over buffer stays small. */
#define AR_PIECE ((size_t)64 << 10)
/* libarchive keeps the central directory in memory and writes it all at
 * the close, in one call to our write callback, so the carry-over buffer
 * must take it whole. Archives whose directory would be larger are
 * refused up front (a few hundred thousand files). */
#define AR_DIR_MAX ((size_t)32 << 20)
/* A directory record costs about 46 bytes, the name and this much of
 * extra fields (timestamps, owner, Zip64 sizes and offset). */
#define AR_DIR_EXTRA 64
#define AR_OUT_MAX (AR_DIR_MAX + ((size_t)4 << 20))
/* An entry's name: task, ID, data name (255 bytes each at most) and a
 * path inside a tree. */
#define AR_NAME_MAX ((size_t)16 << 10)

/* One version to pack. */
struct ar_item {
	char task[256];
	struct vd_version_info vi;
	struct vd_file *res;       /* what=result: its result */
	struct vd_manifest *m;     /* what=input: its manifest */
};

/* The whole archive being made: what the MHD reader callback needs. */
struct ar {
	vd_engine *e;
	bool input;
	struct ar_item *items;
	size_t n;
	struct archive *a;
	/* Where the walk stands: items[item], its entry number ent (for a
	 * tree 0 is the tree's own directory and k + 1 is m->files[k]); f is
	 * the file whose bytes are being written (NULL between entries),
	 * x its extent and at the bytes of it given to libarchive. */
	size_t item, ent;
	const struct vd_file *f;
	size_t x;
	uint64_t at;
	bool loaded;               /* chunk holds extent x */
	struct vd_buf chunk;
	/* What libarchive wrote and MHD has not taken yet: out.data[off..]. */
	struct vd_buf out;
	size_t off;
	struct vd_buf name;        /* the current entry's name */
	bool closed;               /* the central directory is written */
	bool failed;               /* the stream was ended short */
	bool discard;              /* being freed: drop what libarchive writes */
};

static void ar_free(void *cls)
{
	struct ar *r = cls;

	if (!r)
		return;
	if (r->a) {
		/* archive_write_free closes an open archive first, which
		 * writes the rest of it: nobody will read that now. */
		r->discard = true;
		archive_write_free(r->a);
	}
	for (size_t i = 0; i < r->n; i++) {
		vd_file_free(r->items[i].res);
		vd_manifest_free(r->items[i].m);
	}
	free(r->items);
	vd_buf_release(&r->chunk);
	vd_buf_release(&r->out);
	vd_buf_release(&r->name);
	free(r);
}

/* libarchive's output: into the carry-over buffer. */
static la_ssize_t ar_write(struct archive *a, void *cls, const void *p, size_t n)
{
	struct ar *r = cls;

	(void)a;
	if (r->discard)
		return (la_ssize_t)n;
	if (vd_buf_add(&r->out, p, n)) {
		vd_warn("http: archive: %zu bytes of zip output do not fit the %zu-byte buffer",
			r->out.len + n, r->out.max);
		return -1;
	}
	return (la_ssize_t)n;
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p, need, min;
		if (c < 0x80) {
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1, min = 0x80, c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2, min = 0x800, c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3, min = 0x10000, c &= 0x07;
		} else {
			return false;
		}
		p++;
		for (unsigned i = 0; i < need; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (*p & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
	}
	return true;
}

/* The name of items[i]'s entry for file f (NULL: the result, or the top
 * of a tree) into r->name. */
static int entry_name(struct ar *r, const struct ar_item *it, const struct vd_file *f)
{
	struct vd_buf *b = &r->name;

	vd_buf_reset(b);
	if (vd_buf_addf(b, "%s/%s/", it->task, it->vi.data_id))
		return -ENAMETOOLONG;
	if (!r->input)
		return vd_buf_adds(b, "result.csv") ? -ENAMETOOLONG : 0;
	if (vd_buf_adds(b, it->vi.name))
		return -ENAMETOOLONG;
	if (f && f->path[0] && (vd_buf_adds(b, "/") || vd_buf_adds(b, f->path)))
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Before anything is sent: the size of the central directory this archive
 * will have (it must fit the carry-over buffer when libarchive writes it at
 * the close), and whether every name is UTF-8 (then the zip says so, with
 * general purpose bit 11; vdfs names may be any bytes, and a zip that holds
 * one that is not UTF-8 carries all its names as they are, unflagged).
 */
static int ar_survey(bool *utf8, struct ar *r, struct vd_buf *why)
{
	uint64_t dir = 22 + 56 + 20;   /* the end records, Zip64 ones included */

	*utf8 = true;
	for (size_t i = 0; i < r->n; i++) {
		struct ar_item *it = &r->items[i];
		size_t nent = r->input && it->m->kind == VD_KIND_TREE ? it->m->nfiles + 1 : 1;

		for (size_t k = 0; k < nent; k++) {
			const struct vd_file *f = NULL;

			if (r->input && it->m->kind == VD_KIND_TREE && k > 0)
				f = &it->m->files[k - 1];
			else if (r->input && it->m->kind != VD_KIND_TREE && it->m->nfiles)
				f = &it->m->files[0];
			if (entry_name(r, it, f)) {
				vd_buf_addf(why, "a name in version %s of task %s is too long for "
					    "a zip", it->vi.data_id, it->task);
				return -EINVAL;
			}
			if (*utf8 && (!utf8_valid(vd_buf_cstr(&r->name)) ||
				      (f && f->target && !utf8_valid(f->target))))
				*utf8 = false;
			dir += 46 + r->name.len + 1 + AR_DIR_EXTRA;
			if (dir > AR_DIR_MAX) {
				vd_buf_addf(why, "too many files for one archive (its directory would "
					    "pass %zu MiB): ask for fewer versions", AR_DIR_MAX >> 20);
				return -EFBIG;
			}
		}
	}
	return 0;
}

/* Start the entry named r->name. type: AE_IFREG (size bytes follow),
 * AE_IFDIR or AE_IFLNK (target). */
static int ar_header(struct ar *r, const struct ar_item *it, unsigned type, uint64_t size,
		     const char *target)
{
	struct archive_entry *en = archive_entry_new();
	int rc = 0;

	if (!en)
		return -ENOMEM;
	/* The bytes of the name and the target are to reach the zip as
	 * they are, whatever the daemon's locale (C: only ASCII converts).
	 * The zip writer takes a name given as UTF-8 over to its UTF-8
	 * header charset untouched (and, without one, writes the bytes),
	 * but reads a symlink's target back in the locale's charset, so the
	 * target is given as locale bytes, which it leaves alone when they
	 * do not convert. */
	archive_entry_set_pathname_utf8(en, vd_buf_cstr(&r->name));
	archive_entry_set_filetype(en, type);
	archive_entry_set_perm(en, type == AE_IFDIR ? 0755 : type == AE_IFLNK ? 0777 : 0644);
	archive_entry_set_size(en, type == AE_IFREG ? (la_int64_t)size : 0);
	if (type == AE_IFLNK)
		archive_entry_set_symlink(en, target);
	archive_entry_set_mtime(en, (time_t)(it->vi.time_ms / 1000),
				(long)(it->vi.time_ms % 1000) * 1000000L);
	int st = archive_write_header(r->a, en);
	if (st < ARCHIVE_WARN) {
		vd_warn("http: archive: entry %s: %s", vd_buf_cstr(&r->name),
			archive_error_string(r->a));
		rc = -EIO;
	}
	archive_entry_free(en);
	return rc;
}

/* Start entry k of item it (see struct ar): 1 started, 0 the item has no
 * entry k (it is done), -errno. A regular file's entry leaves r->f set,
 * its bytes to follow; libarchive ends the others at the next header. */
static int ar_entry(struct ar *r, const struct ar_item *it, size_t k)
{
	const struct vd_file *f = NULL;
	int rc;

	if (!r->input) {
		if (k > 0)
			return 0;
		f = it->res;
	} else if (it->m->kind != VD_KIND_TREE) {
		if (k > 0 || it->m->nfiles < 1)
			return 0;
		f = &it->m->files[0];
	} else if (k == 0) {
		/* A tree's own directory first, so that an empty tree is
		 * in the zip too; then its entries in path order. */
		if ((rc = entry_name(r, it, NULL)) || (rc = ar_header(r, it, AE_IFDIR, 0, NULL)))
			return rc;
		return 1;
	} else if (k - 1 < it->m->nfiles) {
		const struct vd_file *t = &it->m->files[k - 1];
		mode_t type = vd_file_type(t);

		if ((rc = entry_name(r, it, t)))
			return rc;
		if (type == S_IFDIR || type == S_IFLNK) {
			rc = type == S_IFDIR ? ar_header(r, it, AE_IFDIR, 0, NULL)
					     : ar_header(r, it, AE_IFLNK, 0, t->target ? t->target : "");
			return rc ? rc : 1;
		}
		/* A hard link's second name carries the extents too: its
		 * bytes are simply stored again. */
		f = t;
	} else {
		return 0;
	}
	if ((rc = entry_name(r, it, r->input ? f : NULL)) ||
	    (rc = ar_header(r, it, AE_IFREG, f->size, NULL)))
		return rc;
	r->f = f;
	r->x = 0;
	r->at = 0;
	r->loaded = false;
	return 1;
}

/* The next entry of the walk, or the close when there is none. */
static int ar_next_entry(struct ar *r)
{
	while (r->item < r->n) {
		int rc = ar_entry(r, &r->items[r->item], r->ent++);

		if (rc)
			return rc < 0 ? rc : 0;
		r->item++;
		r->ent = 0;
	}
	if (archive_write_close(r->a) != ARCHIVE_OK) {
		vd_warn("http: archive: closing the zip: %s", archive_error_string(r->a));
		return -EIO;
	}
	r->closed = true;
	return 0;
}

/* One step: the next AR_PIECE of the current file, or the end of its
 * entry, or the next entry. */
static int ar_step(struct ar *r)
{
	if (!r->f)
		return ar_next_entry(r);
	if (r->x >= r->f->n) {
		r->f = NULL;
		if (archive_write_finish_entry(r->a) != ARCHIVE_OK) {
			vd_warn("http: archive: entry %s: %s", vd_buf_cstr(&r->name),
				archive_error_string(r->a));
			return -EIO;
		}
		return 0;
	}
	const struct vd_extent *x = &r->f->ext[r->x];
	if (!r->loaded) {
		vd_buf_reset(&r->chunk);
		if (vd_engine_chunk_read(&r->chunk, r->e, x->id) || r->chunk.len != x->len) {
			vd_warn("http: archive: chunk %s of %s cannot be read; the zip being "
				"sent is cut short", x->id, vd_buf_cstr(&r->name));
			return -EIO;
		}
		r->loaded = true;
		if (r->x + 1 < r->f->n)
			vd_engine_chunk_prefetch(r->e, r->f->ext[r->x + 1].id);
	}
	size_t n = x->len - r->at < AR_PIECE ? (size_t)(x->len - r->at) : AR_PIECE;
	if (n) {
		la_ssize_t w = archive_write_data(r->a, r->chunk.data + r->at, n);
		if (w <= 0) {
			vd_warn("http: archive: entry %s: %s", vd_buf_cstr(&r->name),
				w < 0 ? archive_error_string(r->a) : "no bytes taken");
			return -EIO;
		}
		r->at += (uint64_t)w;
	}
	if (r->at >= x->len) {
		r->x++;
		r->at = 0;
		r->loaded = false;
	}
	return 0;
}

/* MHD's content reader: what is left of the last step's output, else
 * steps until one writes something. Never 0 bytes: to MHD that means
 * "nothing yet, call again", a busy loop. */
static ssize_t ar_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ar *r = cls;

	(void)pos;
	while (r->off >= r->out.len) {
		vd_buf_reset(&r->out);
		r->off = 0;
		if (r->closed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (r->failed || ar_step(r)) {
			r->failed = true;
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	size_t n = r->out.len - r->off < max ? r->out.len - r->off : max;
	memcpy(buf, r->out.data + r->off, n);
	r->off += n;
	return (ssize_t)n;
}

/* Up to 40 bytes of what a client sent, for a message: the JSON error
 * body must be UTF-8, so anything but printable ASCII shows as '?'. */
static void add_shown(struct vd_buf *why, const char *p, size_t n)
{
	for (size_t i = 0; i < n && i < 40; i++)
		vd_buf_addf(why, "%c", p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
	if (n > 40)
		vd_buf_adds(why, "...");
}

/* The tasks' versions the query names, into r->items (each once, in the
 * order first given), with what each contributes. */
static int ar_collect(struct ar *r, struct vd_buf *why, const char *ids, const char *task)
{
	struct vd_strv tasks = { 0 };
	size_t count = 1;
	int rc = 0;

	if (!*ids) {
		vd_buf_adds(why, "ids is empty: give ids=<id>,<id>,...");
		return -EINVAL;
	}
	for (const char *p = ids; *p; p++)
		count += *p == ',';
	if (count > AR_IDS_MAX) {
		vd_buf_addf(why, "%zu IDs: at most %d in one archive", count, AR_IDS_MAX);
		return -EINVAL;
	}
	if (!(r->items = calloc(count, sizeof(*r->items))))
		return -ENOMEM;
	for (const char *p = ids;;) {
		size_t len = strcspn(p, ",");
		char id[VD_ID_SIZE];
		bool dup = false;

		if (len == VD_ID_LEN) {
			memcpy(id, p, VD_ID_LEN);
			id[VD_ID_LEN] = '\0';
		}
		if (len != VD_ID_LEN || !vd_id_valid(id)) {
			vd_buf_adds(why, "'");
			add_shown(why, p, len);
			vd_buf_adds(why, "' is not a data ID (32 lowercase hex digits)");
			rc = -EINVAL;
			goto out;
		}
		for (size_t i = 0; i < r->n && !dup; i++)
			dup = !strcmp(r->items[i].vi.data_id, id);
		if (!dup) {
			struct ar_item *it = &r->items[r->n];
			const char *t = task;

			if (!t) {
				/* Without task=, an ID that several tasks hold
				 * is taken from the first in byte order. */
				vd_strv_release(&tasks);
				if ((rc = vd_engine_version_tasks(&tasks, r->e, id)))
					goto out;
				if (!tasks.n) {
					vd_buf_addf(why, "no version %s", id);
					rc = -ENOENT;
					goto out;
				}
				vd_strv_sort(&tasks);
				t = tasks.v[0];
			}
			snprintf(it->task, sizeof(it->task), "%s", t);
			if ((rc = vd_engine_version_get(&it->vi, r->e, it->task, id))) {
				if (rc == -ENOENT)
					vd_buf_addf(why, "task %s has no version %s", it->task, id);
				goto out;
			}
			r->n++;
			if (r->input) {
				if ((rc = vd_engine_manifest_get(&it->m, r->e, id))) {
					vd_buf_addf(why, "the input of version %s cannot be read", id);
					goto out;
				}
			} else if ((rc = vd_engine_result_get(&it->res, r->e, it->task, id))) {
				if (rc == -ENOENT)
					vd_buf_addf(why, "version %s of task %s has no result (yet)",
						    id, it->task);
				goto out;
			}
		}
		p += len;
		if (!*p)
			break;
		p++;
		if (!*p) {
			vd_buf_adds(why, "ids ends with a comma");
			rc = -EINVAL;
			goto out;
		}
	}
out:
	vd_strv_release(&tasks);
	return rc;
}

int http_archive(struct MHD_Response **resp, unsigned *status, struct vd_buf *why,
		 vd_engine *e, struct MHD_Connection *c)
{
	const char *ids = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "ids");
	const char *what = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "what");
	const char *task = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "task");
	struct ar *r = NULL;
	bool utf8;
	int rc;

	*resp = NULL;
	*status = MHD_HTTP_OK;
	if (!ids) {
		vd_buf_adds(why, "which versions? give ids=<id>,<id>,...");
		rc = -EINVAL;
		goto out;
	}
	if (what && strcmp(what, "result") && strcmp(what, "input")) {
		vd_buf_adds(why, "what is result or input");
		rc = -EINVAL;
		goto out;
	}
	if (task && !vd_engine_name_valid(task)) {
		vd_buf_adds(why, "task is not a valid task name");
		rc = -EINVAL;
		goto out;
	}
	if (task && !vd_engine_task_exists(e, task)) {
		vd_buf_adds(why, "no task ");
		add_shown(why, task, strlen(task));
		rc = -ENOENT;
		goto out;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		rc = -ENOMEM;
		goto out;
	}
	r->e = e;
	r->input = what && !strcmp(what, "input");
	vd_buf_init(&r->chunk, 256u << 20);
	vd_buf_init(&r->out, AR_OUT_MAX);
	vd_buf_init(&r->name, AR_NAME_MAX);
	if ((rc = ar_collect(r, why, ids, task)) || (rc = ar_survey(&utf8, r, why)))
		goto out;

	if (!(r->a = archive_write_new())) {
		rc = -ENOMEM;
		goto out;
	}
	/* Unblocked output (no 10 KiB records, no padding after the
	 * directory), deflate, and UTF-8 names flagged as such. */
	if (archive_write_set_format_zip(r->a) != ARCHIVE_OK ||
	    archive_write_set_bytes_per_block(r->a, 0) != ARCHIVE_OK ||
	    archive_write_set_option(r->a, "zip", "compression", "deflate") != ARCHIVE_OK ||
	    (utf8 && archive_write_set_option(r->a, "zip", "hdrcharset", "UTF-8") != ARCHIVE_OK) ||
	    archive_write_open(r->a, r, NULL, ar_write, NULL) != ARCHIVE_OK) {
		vd_warn("http: archive: libarchive: %s", archive_error_string(r->a));
		vd_buf_adds(why, "the zip writer cannot be set up");
		rc = -EIO;
		goto out;
	}
	*resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64u << 10, ar_read, r,
						  ar_free);
	if (!*resp) {
		rc = -ENOMEM;
		goto out;
	}
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/zip");
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION,
				r->input ? "attachment; filename=\"vdfs-inputs.zip\""
					 : "attachment; filename=\"vdfs-results.zip\"");
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	r = NULL;   /* the response owns it now */
	rc = 0;
out:
	ar_free(r);
	return rc;
}
