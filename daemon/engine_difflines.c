/*
 * engine_difflines.c - GET /v1/diff/<a>/<b>/lines: the unified diff of two
 * versions' inputs (or of their newest results) for the dashboard,
 * computed here from the store.
 *
 * It is what `vdfs diff --lines A B` (`--result`) prints, byte for byte:
 * the same choice of files (tools/cmd_diff.c: two single files are compared
 * whatever their names, trees file by file by path, a file missing on one
 * side against /dev/null), the same labels, and the same diff code
 * (lib/diff.c), which skips the chunks the two files share in order and
 * reads only the rest. The one difference is the size: the answer is
 * capped, and the diff stops before the first line that would pass the
 * cap (opts.limit) instead of working out megabytes only to throw them
 * away.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "engine_int.h"

/* One side: a dataset version's content, or a result's one file. */
struct side {
	const char *id;
	char name[256];             /* the version's name; "" for a result */
	bool single;                /* a file (not a tree) */
	struct vd_manifest *m;      /* a version's content */
	struct vd_file *res;        /* or a result's file (path "result.csv") */
	const struct vd_file *f;    /* the files, sorted by path */
	size_t n;
};

static void side_free(struct side *s)
{
	vd_manifest_free(s->m);
	vd_file_free(s->res);
	memset(s, 0, sizeof *s);
}

/* The rest of each key below "<index>/<id>/". */
static int index_list(struct vd_strv *out, vd_engine *e, const char *index, const char *id)
{
	struct vd_buf k = VD_BUF_INIT(128);
	int rc = vd_buf_addf(&k, "%s/%s/", index, id);

	if (!rc)
		rc = vd_engine_list_suffix(out, e, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

/* The first task (in key order) whose version record of id loads, as
 * GET /v1/versions/<id> lists it first: *v is its record. -ENOENT. */
static int version_first(char task[256], json_t **v, vd_engine *e, const char *id)
{
	struct vd_strv tasks = { 0 };
	int rc = index_list(&tasks, e, "vi", id);

	if (!rc)
		rc = -ENOENT;
	for (size_t i = 0; rc == -ENOENT && i < tasks.n; i++) {
		if (strlen(tasks.v[i]) < 256 && !vd_engine_version_json(v, e, tasks.v[i], id)) {
			memcpy(task, tasks.v[i], strlen(tasks.v[i]) + 1);
			rc = 0;
		}
	}
	vd_strv_release(&tasks);
	return rc;
}

/* The first run whose result.csv has content id (an ri/<id>/ suffix,
 * "<task>/<data>/<code>"). -ENOENT. */
static int result_first(char task[256], char data[VD_ID_SIZE], char code[VD_ID_SIZE],
			vd_engine *e, const char *id)
{
	struct vd_strv runs = { 0 };
	int rc = index_list(&runs, e, "ri", id);

	if (!rc)
		rc = -ENOENT;
	for (size_t i = 0; rc == -ENOENT && i < runs.n; i++) {
		const char *s = runs.v[i];
		size_t n = strlen(s), tl;

		if (n < 2 * VD_ID_LEN + 3)
			continue;
		tl = n - 2 * VD_ID_LEN - 2;
		if (tl >= 256 || s[tl] != '/' || s[tl + 1 + VD_ID_LEN] != '/')
			continue;
		memcpy(task, s, tl);
		task[tl] = '\0';
		memcpy(data, s + tl + 1, VD_ID_LEN);
		data[VD_ID_LEN] = '\0';
		memcpy(code, s + tl + 2 + VD_ID_LEN, VD_ID_LEN);
		code[VD_ID_LEN] = '\0';
		if (vd_id_valid(data) && vd_id_valid(code))
			rc = 0;
	}
	vd_strv_release(&runs);
	return rc;
}

/* What id names, as GET /v1/versions/<id> (which `vdfs diff` reads) would
 * give it: a dataset version (of its first task) or else a result. */
static int side_load(struct side *s, struct vd_buf *why, vd_engine *e, const char *id)
{
	char task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	json_t *v = NULL;
	int rc = version_first(task, &v, e, id);

	s->id = id;
	if (!rc) {
		const char *name = json_string_value(json_object_get(v, "name"));

		snprintf(s->name, sizeof s->name, "%s", name ? name : "");
		if ((rc = vd_engine_manifest_get(&s->m, e, id))) {
			vd_buf_addf(why, "version %s has no readable manifest (%s)", id,
				    strerror(-rc));
			goto out;
		}
		s->single = s->m->kind == VD_KIND_FILE;
		s->f = s->m->files;
		s->n = s->m->nfiles;
		goto out;
	}
	if (rc != -ENOENT || (rc = result_first(task, data, code, e, id))) {
		if (rc == -ENOENT)
			vd_buf_addf(why, "no version %s", id);
		goto out;
	}
	/* A result: its content is the run's result file, result.csv. */
	if ((rc = vd_engine_run_result(&s->res, e, task, data, code))) {
		vd_buf_addf(why, "result %s cannot be read (%s)", id, strerror(-rc));
		goto out;
	}
	s->name[0] = '\0';
	s->single = true;
	s->f = s->res;
	s->n = 1;
out:
	json_decref(v);
	return rc;
}

/* The newest result of version id: the result of the last of its runs
 * (in its record's order) whose record loads, as `vdfs diff --result`
 * takes it. */
static int result_of(char out[VD_ID_SIZE], struct vd_buf *why, vd_engine *e, const char *id)
{
	char task[256], rdata[VD_ID_SIZE], rcode[VD_ID_SIZE];
	struct vd_buf st = VD_BUF_INIT(4096);
	json_t *v = NULL, *last = NULL, *c;
	size_t i;
	int rc = version_first(task, &v, e, id);

	if (rc == -ENOENT) {
		if (result_first(task, rdata, rcode, e, id) == 0) {
			vd_buf_addf(why, "%s is a result, not a dataset version; diff it without result=1",
				    id);
			rc = -EINVAL;
		} else {
			vd_buf_addf(why, "no version %s", id);
		}
	}
	if (rc)
		goto out;
	json_array_foreach(json_object_get(v, "runs"), i, c) {
		json_t *rj = NULL;

		if (json_is_string(c) && !vd_engine_run_json(&rj, e, task, id, json_string_value(c))) {
			json_decref(last);
			last = rj;
		}
	}
	const char *rid = json_string_value(json_object_get(json_object_get(last, "result"),
							   "data_id"));
	if (!rid || !vd_id_valid(rid)) {
		vd_engine_version_status(&st, e, task, id, v);
		if (st.len && st.data[st.len - 1] == '\n')
			st.data[--st.len] = '\0';
		vd_buf_addf(why, "version %s has no result yet (%s)", id,
			    st.len ? vd_buf_cstr(&st) : "no run");
		rc = -ENOENT;
		goto out;
	}
	memcpy(out, rid, VD_ID_SIZE);
out:
	json_decref(last);
	json_decref(v);
	vd_buf_release(&st);
	return rc;
}

/*
 * Where the diff is printed: a stdio stream (what vd_diff_files writes to)
 * over the caller's buffer. vd_diff_files keeps within the room it is
 * given (opts.limit), so the cap is only a guard here: the sink keeps the
 * first cap bytes and notes that more came, and never fails a write, so
 * that a full buffer is not taken for an output error.
 */
struct sink {
	struct vd_buf *out;
	size_t start, cap;
	bool over;           /* bytes past the cap were offered */
	int err;             /* -ENOMEM */
};

static ssize_t sink_write(void *cookie, const char *p, size_t n)
{
	struct sink *k = cookie;
	size_t held = k->out->len - k->start, room = held < k->cap ? k->cap - held : 0;
	size_t take = n < room ? n : room;
	int rc = take ? vd_buf_add(k->out, p, take) : 0;

	if (rc == -EFBIG) {
		k->over = true;   /* the caller's buffer is smaller than cap */
	} else if (rc) {
		k->err = rc;
		errno = -rc;
		return -1;
	}
	if (take < n)
		k->over = true;
	return (ssize_t)n;
}

/* Bytes left under the cap once what the stream holds is flushed. */
static size_t sink_room(struct sink *k, FILE *f)
{
	size_t held;

	fflush(f);
	held = k->out->len - k->start;
	return k->over || held >= k->cap ? 0 : k->cap - held;
}

struct fetch_ctx {
	vd_engine *e;
	char bad[VD_ID_SIZE];    /* the first chunk that could not be read */
	int bad_rc;
};

static int fetch_chunk(struct vd_buf *out, void *arg, const char *id, uint64_t len)
{
	struct fetch_ctx *x = arg;
	int rc = vd_engine_chunk_read(out, x->e, id);   /* verified against its ID */

	(void)len;   /* out's cap is the length: a longer chunk fails */
	if (rc && !x->bad[0]) {
		snprintf(x->bad, sizeof x->bad, "%s", id);
		x->bad_rc = rc;
	}
	return rc ? -EIO : 0;
}

/* f as one side of the diff, labelled as cmd_diff labels it. */
static int label(struct vd_buf *b, char ab, const struct side *s, const struct vd_file *f)
{
	vd_buf_reset(b);
	if (!f)
		return vd_buf_adds(b, "/dev/null");
	if (!*f->path)
		return vd_buf_addf(b, "%c/%s", ab, *s->name ? s->name : s->id);
	if (!*s->name || s->single)   /* a result: its one file is result.csv */
		return vd_buf_addf(b, "%c/%s", ab, f->path);
	return vd_buf_addf(b, "%c/%s/%s", ab, s->name, f->path);
}

/* The diff's extents of f (none for NULL); *x is malloc'd. */
static int extents_of(struct vd_diff_extent **x, const struct vd_file *f)
{
	size_t n = f ? f->n : 0;

	if (!(*x = calloc(n + 1, sizeof **x)))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		memcpy((*x)[i].id, f->ext[i].id, VD_ID_SIZE);
		(*x)[i].len = f->ext[i].len;
		(*x)[i].lines = f->ext[i].lines == VD_LINES_UNKNOWN ? VD_DIFF_LINES_UNKNOWN
								     : f->ext[i].lines;
	}
	return 0;
}

/* The entry of s at path, if it is a regular file. */
static const struct vd_file *file_at(const struct side *s, const char *path)
{
	size_t i = vd_engine_entry_index(s->f, s->n, path);

	return i != SIZE_MAX && vd_file_type(&s->f[i]) == S_IFREG ? &s->f[i] : NULL;
}

int vd_engine_api_diff_lines(struct vd_buf *out, bool *truncated, struct vd_buf *why,
			     vd_engine *e, const char *a, const char *b, const char *path,
			     bool result, size_t cap)
{
	struct side sa = { 0 }, sb = { 0 };
	struct vd_buf la = VD_BUF_INIT(65536), lb = VD_BUF_INIT(65536);
	struct vd_diff_extent *xa = NULL, *xb = NULL;
	struct fetch_ctx fx = { .e = e };
	struct sink k = { .out = out, .start = out->len, .cap = cap };
	cookie_io_functions_t io = { .write = sink_write };
	struct vd_diff_stats st = { 0 };
	struct vd_diff_opts o;
	char ra[VD_ID_SIZE], rb[VD_ID_SIZE];
	FILE *f = NULL;
	bool cut = false;   /* the diff stopped at the cap */
	int rc;

	*truncated = false;
	if (!vd_id_valid(a) || !vd_id_valid(b)) {
		vd_buf_adds(why, "not a valid ID");
		return -EINVAL;
	}
	if (result) {
		if ((rc = result_of(ra, why, e, a)) || (rc = result_of(rb, why, e, b)))
			goto out;
		a = ra;
		b = rb;
	}
	if ((rc = side_load(&sa, why, e, a)) || (rc = side_load(&sb, why, e, b)))
		goto out;
	if (path && *path) {
		const struct side *miss = !file_at(&sa, path) ? &sa : !file_at(&sb, path) ? &sb : NULL;

		if (miss) {
			vd_buf_addf(why, "no file '%s' in %s", path, miss->id);
			rc = -ENOENT;
			goto out;
		}
	}
	if (!(f = fopencookie(&k, "w", io))) {
		rc = -errno;
		goto out;
	}
	vd_diff_opts_default(&o);
	o.fetch = fetch_chunk;
	o.fetch_arg = &fx;
	o.out = f;
	/* A file on each side (a version or a result) is compared whatever
	 * the names; trees file by file, by path (or only path). */
	bool single = sa.single && sb.single && sa.n == 1 && sb.n == 1;
	for (size_t i = 0, j = 0; !rc && (i < sa.n || j < sb.n);) {
		int d = single ? 0 : i == sa.n ? 1 : j == sb.n ? -1 : strcmp(sa.f[i].path, sb.f[j].path);
		const struct vd_file *fa = d <= 0 ? &sa.f[i] : NULL, *fb = d >= 0 ? &sb.f[j] : NULL;
		size_t room = sink_room(&k, f);

		i += d <= 0;
		j += d >= 0;
		if (path && *path && !single && strcmp((fa ? fa : fb)->path, path))
			continue;
		if (k.over || cut)
			break;
		free(xa);
		free(xb);
		xa = xb = NULL;
		if ((rc = extents_of(&xa, fa)) || (rc = extents_of(&xb, fb)) ||
		    (rc = label(&la, 'a', &sa, fa)) || (rc = label(&lb, 'b', &sb, fb)))
			break;
		/* The diff prints no more than the room left and stops before
		 * the first line that would not fit: nothing past the cap is
		 * worked out. No room at all is a limit of 1 byte, where no
		 * line fits (0 would mean no limit). */
		o.limit = room ? room : 1;
		rc = vd_diff_files(&st, &o, vd_buf_cstr(&la), xa, fa ? fa->n : 0, vd_buf_cstr(&lb),
				   xb, fb ? fb->n : 0);
		sink_room(&k, f);
		if (rc == -ENOBUFS) {
			rc = 0;   /* stopped at the limit: the answer is cut */
			cut = true;
		}
		if (rc == -EIO) {
			if (fx.bad[0])
				vd_buf_addf(why, "chunk %s could not be read (%s), diffing %s and %s",
					    fx.bad, strerror(-fx.bad_rc), vd_buf_cstr(&la),
					    vd_buf_cstr(&lb));
			else
				vd_buf_addf(why, "the chunks of %s or %s disagree with their manifest",
					    vd_buf_cstr(&la), vd_buf_cstr(&lb));
		}
	}
	if (fclose(f) && !rc)
		rc = k.err ? k.err : -EIO;
	f = NULL;
	if (!rc && k.err)
		rc = k.err;
	if (!rc && k.over) {
		/* Cut at the last line end under the cap (should the diff
		 * ever print past the room it was given). */
		char *s = out->data ? out->data + k.start : NULL;
		size_t n = out->len - k.start;

		while (n && s[n - 1] != '\n')
			n--;
		out->len = k.start + n;
		if (out->data)
			out->data[out->len] = '\0';
	}
	if (!rc)
		*truncated = cut || k.over;
out:
	if (f)
		fclose(f);
	if (rc && out->len > k.start) {
		/* Nothing of a failed diff is answered. */
		out->len = k.start;
		out->data[out->len] = '\0';
	}
	free(xa);
	free(xb);
	vd_buf_release(&la);
	vd_buf_release(&lb);
	side_free(&sa);
	side_free(&sb);
	return rc;
}
