/*
 * http_download.c - GET /v1/tasks/<task>/versions/<id>/<what>[/<path>]:
 * a version's files over HTTP, as the mount shows them (docs/protocol.md,
 * "Downloads").
 *
 * input (a file version, or one path of a tree) and result.csv are stored
 * files: they are streamed chunk by chunk straight from the store (never
 * whole in memory), with Range (one range; a list of several is answered
 * whole, as RFC 9110 allows; If-Range), and If-None-Match: their content ID is the
 * ETag, and a version never changes, so an ETag once seen is good forever.
 * meta.json, log and status are rendered when asked and change as runs
 * go; they come whole, without an ETag.
 *
 * http.c routes and authorizes; this file only builds the response.
 */
#include "http_int.h"

#include <inttypes.h>
#include <sys/stat.h>

#include "engine.h"

/* A stored file being sent: what the MHD reader callback needs. */
struct dl {
	vd_engine *e;
	struct vd_manifest *m;     /* owns f for input; NULL for a result */
	struct vd_file *res;       /* owns f for result.csv */
	const struct vd_file *f;
	uint64_t start;            /* the range's first byte in the file */
	struct vd_buf cur;         /* the chunk last read */
	size_t cur_i;              /* its extent, or SIZE_MAX */
};

static void dl_free(void *cls)
{
	struct dl *d = cls;

	vd_manifest_free(d->m);
	vd_file_free(d->res);
	vd_buf_release(&d->cur);
	free(d);
}

/* The extent that holds byte pos (extents are sorted by offset). */
static size_t extent_at(const struct vd_file *f, uint64_t pos)
{
	size_t lo = 0, hi = f->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->ext[mid].off + f->ext[mid].len <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static ssize_t dl_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct dl *d = cls;
	uint64_t at = d->start + pos;
	size_t i = extent_at(d->f, at);

	if (i >= d->f->n)
		return MHD_CONTENT_READER_END_OF_STREAM;
	const struct vd_extent *x = &d->f->ext[i];
	if (i != d->cur_i) {
		vd_buf_reset(&d->cur);
		d->cur_i = SIZE_MAX;
		if (vd_engine_chunk_read(&d->cur, d->e, x->id) || d->cur.len != x->len) {
			/* The client sees the body cut short: the only way to say
			 * so once the head has gone out. */
			vd_warn("http: download: chunk %s of a file being sent cannot be read",
				x->id);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		d->cur_i = i;
		if (i + 1 < d->f->n)
			vd_engine_chunk_prefetch(d->e, d->f->ext[i + 1].id);
	}
	uint64_t in = at - x->off;
	size_t n = x->len - in < max ? (size_t)(x->len - in) : max;
	memcpy(buf, d->cur.data + in, n);
	return (ssize_t)n;
}

/* "bytes=A-B", "bytes=A-", "bytes=-N" of a file of size bytes: 1 a range
 * [*a, *b] to send, 0 none (absent, several, or not one we read: the whole
 * file then), -1 unsatisfiable (416). */
static int parse_range(uint64_t *a, uint64_t *b, const char *h, uint64_t size)
{
	unsigned long long x = 0, y = 0;
	const char *p;
	char *end;

	if (!h || strncmp(h, "bytes=", 6) || strchr(h, ','))
		return 0;
	p = h + 6;
	errno = 0;
	if (*p == '-') {
		y = strtoull(p + 1, &end, 10);
		if (errno || end == p + 1 || *end)
			return 0;
		if (y == 0 || size == 0)
			return -1;
		*a = y >= size ? 0 : size - y;
		*b = size - 1;
		return 1;
	}
	x = strtoull(p, &end, 10);
	if (errno || end == p || *end != '-')
		return 0;
	p = end + 1;
	if (*p) {
		y = strtoull(p, &end, 10);
		if (errno || *end || y < x)
			return 0;
	} else {
		y = UINT64_MAX;
	}
	if (x >= size)
		return -1;
	*a = x;
	*b = y >= size ? size - 1 : y;
	return 1;
}

/* Does If-None-Match name etag (or "*")? */
static bool etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);

	if (!inm)
		return false;
	for (const char *p = inm; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!strncmp(p, "W/", 2))
			p += 2;
		if (*p == '*' || (!strncmp(p, etag, n) && (p[n] == ',' || p[n] == ' ' || !p[n])))
			return true;
		while (*p && *p != ',')
			p++;
	}
	return false;
}

static const char *type_of(const char *name)
{
	static const struct { const char *ext, *type; } types[] = {
		{ ".csv", "text/csv; charset=utf-8" },  { ".txt", "text/plain; charset=utf-8" },
		{ ".json", "application/json" },        { ".log", "text/plain; charset=utf-8" },
		{ ".tsv", "text/tab-separated-values" }, { ".zip", "application/zip" },
		{ ".gz", "application/gzip" },
	};
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t m = strlen(types[i].ext);
		if (n >= m && !strcasecmp(name + n - m, types[i].ext))
			return types[i].type;
	}
	return "application/octet-stream";
}

/* A small in-memory answer (meta.json, log, status). */
static int whole(struct MHD_Response **resp, struct vd_buf *b, const char *ctype)
{
	size_t n;
	char *p = vd_buf_detach(b, &n);

	*resp = MHD_create_response_from_buffer(n, p ? p : (char *)"",
						p ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!*resp) {
		free(p);
		return -ENOMEM;
	}
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	return 0;
}

int http_download(struct MHD_Response **resp, unsigned *status, struct vd_buf *why,
		  vd_engine *e, struct MHD_Connection *c, const char *task, const char *id,
		  const char *rest)
{
	struct dl *d = NULL;
	struct vd_version_info vi;   /* name points into it: function scope */
	struct vd_buf b = VD_BUF_INIT(64u << 20);
	const char *name = rest, *path = "";
	char etag[VD_ID_SIZE + 2];
	int rc;

	*resp = NULL;
	*status = MHD_HTTP_OK;
	if (!strcmp(rest, "meta.json") || !strcmp(rest, "log") || !strcmp(rest, "status")) {
		enum vd_gen g = rest[0] == 'm' ? VD_GEN_META : rest[0] == 'l' ? VD_GEN_LOG
									     : VD_GEN_STATUS;
		if ((rc = vd_engine_render(&b, e, task, id, g))) {
			if (rc == -ENOENT)
				vd_buf_addf(why, "task %s has no version %s", task, id);
			goto out;
		}
		rc = whole(resp, &b, g == VD_GEN_META ? "application/json"
						       : "text/plain; charset=utf-8");
		goto out;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		rc = -ENOMEM;
		goto out;
	}
	d->e = e;
	d->cur_i = SIZE_MAX;
	vd_buf_init(&d->cur, 256u << 20);
	if (!strcmp(rest, "result.csv")) {
		if ((rc = vd_engine_result_get(&d->res, e, task, id))) {
			if (rc == -ENOENT)
				vd_buf_addf(why, "version %s of task %s has no result (yet)", id, task);
			goto out;
		}
		d->f = d->res;
	} else if (!strcmp(rest, "input") || !strncmp(rest, "input/", 6)) {
		mode_t type;
		size_t idx;

		path = rest[5] ? rest + 6 : "";
		if ((rc = vd_engine_version_get(&vi, e, task, id))) {
			if (rc == -ENOENT)
				vd_buf_addf(why, "task %s has no version %s", task, id);
			goto out;
		}
		if ((rc = vd_engine_manifest_get(&d->m, e, id)))
			goto out;
		if (d->m->kind == VD_KIND_FILE && *path) {
			vd_buf_adds(why, "this version is one file: GET .../input");
			rc = -ENOENT;
			goto out;
		}
		if (d->m->kind == VD_KIND_TREE && !*path) {
			vd_buf_adds(why, "this version is a tree: GET .../input/<path> for one of "
				    "its files");
			rc = -EINVAL;
			goto out;
		}
		if ((rc = vd_manifest_lookup(&type, &idx, d->m, path)) || type != S_IFREG) {
			vd_buf_addf(why, "no file '%s' in this version", path);
			rc = -ENOENT;
			goto out;
		}
		d->f = &d->m->files[idx];
		name = *path ? path : vi.name;
	} else {
		vd_buf_adds(why, "a version has input, result.csv, meta.json, log and status");
		rc = -ENOENT;
		goto out;
	}
	const char *slash = strrchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	uint64_t size = d->f->size, a = 0, z = size ? size - 1 : 0;

	/* The content's ID is a perfect ETag: equal IDs, equal bytes. */
	snprintf(etag, sizeof(etag), "\"%s\"", d->f->id[0] ? d->f->id : id);
	if (etag_matches(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
		*status = MHD_HTTP_NOT_MODIFIED;
		*resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		rc = *resp ? 0 : -ENOMEM;
		if (*resp)
			MHD_add_response_header(*resp, MHD_HTTP_HEADER_ETAG, etag);
		goto out;
	}
	/* If-Range: the range only while the content is the one the client
	 * has part of (a result.csv changes when newer code runs); the whole
	 * file otherwise. */
	const char *ifr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
	int r = ifr && strcmp(ifr, etag) ? 0
		: parse_range(&a, &z, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
								    MHD_HTTP_HEADER_RANGE), size);
	char cr[80];
	if (r < 0) {
		*status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
		*resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!*resp) {
			rc = -ENOMEM;
			goto out;
		}
		snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
		MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
		rc = 0;
		goto out;
	}
	uint64_t len = size ? z - a + 1 : 0;
	d->start = a;
	*resp = MHD_create_response_from_callback(len, 64u << 10, dl_read, d, dl_free);
	if (!*resp) {
		rc = -ENOMEM;
		goto out;
	}
	d = NULL;   /* the response owns it now */
	if (r > 0) {
		*status = MHD_HTTP_PARTIAL_CONTENT;
		snprintf(cr, sizeof(cr), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a, z, size);
		MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	}
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				!strcmp(rest, "result.csv") ? "text/csv; charset=utf-8" : type_of(base));
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"public, max-age=31536000, immutable");
	/* A name for a browser's save dialog: the file's own, in ASCII
	 * (RFC 6266's filename*=UTF-8 form would be needed for others). */
	struct vd_buf disp = VD_BUF_INIT(1024);
	vd_buf_adds(&disp, "attachment; filename=\"");
	for (const unsigned char *p = (const unsigned char *)base; *p; p++)
		vd_buf_addf(&disp, "%c", *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' ? *p : '_');
	vd_buf_adds(&disp, "\"");
	MHD_add_response_header(*resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, vd_buf_cstr(&disp));
	vd_buf_release(&disp);
	rc = 0;
out:
	if (d)
		dl_free(d);
	vd_buf_release(&b);
	return rc;
}
