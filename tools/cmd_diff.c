/*
 * cmd_diff.c - `vdfs diff A B [--lines | --result]`.
 *
 * Without options: how version B differs from version A by file, chunk,
 * byte and unit (GET /v1/diff/A/B). --lines: a unified line diff of the two
 * inputs; --result: the same for the two versions' newest results. The line
 * diffs work from the manifests (GET /v1/versions/<id>) and fetch only the
 * chunks that differ (GET /v1/chunks/<id>): see lib/diff.h for how, and
 * for why memory stays bounded whatever the files' sizes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "diff.h"
#include "id.h"

struct mfile {
	const char *path;              /* inside the version ("" for a file) */
	struct vd_diff_extent *x;
	size_t n;
	uint64_t size;
};

struct side {
	json_t *reply;                 /* GET /v1/versions/<id> */
	const char *id;
	const char *name;              /* the version's name; "" for a result */
	bool single;                   /* a file (not a tree) */
	struct mfile *f;
	size_t n;
	uint64_t chunks;
};

static void side_free(struct side *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->f[i].x);
	free(s->f);
	json_decref(s->reply);
	memset(s, 0, sizeof *s);
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mfile *)a)->path, ((const struct mfile *)b)->path);
}

/* The manifest's files as extents, sorted by path. Exit code 0 or 1. */
static int side_parse(struct side *s)
{
	const json_t *man = json_object_get(s->reply, "manifest");
	const json_t *files = json_object_get(man, "files"), *f;
	const json_t *v0 = json_array_get(json_object_get(s->reply, "versions"), 0);
	size_t i, j;

	s->name = v0 ? vd_cli_jstr(v0, "name") : "";
	s->single = !strcmp(vd_cli_jstr(man, "kind"), "file");
	if (!json_is_array(files)) {
		fprintf(stderr, "vdfs diff: the daemon sent no manifest for %s\n", s->id);
		return 1;
	}
	s->f = calloc(json_array_size(files) + 1, sizeof *s->f);
	if (!s->f)
		goto nomem;
	json_array_foreach(files, i, f) {
		const json_t *ch = json_object_get(f, "chunks"), *e;
		struct mfile *m = &s->f[s->n++];
		m->path = vd_cli_jstr(f, "path");
		m->size = (uint64_t)vd_cli_jint(f, "size");
		if (!(m->x = calloc(json_array_size(ch) + 1, sizeof *m->x)))
			goto nomem;
		json_array_foreach(ch, j, e) {
			const char *id = json_string_value(json_array_get(e, 0));
			const json_t *len = json_array_get(e, 1), *nl = json_array_get(e, 2);
			if (!id || !vd_id_valid(id) || !json_is_integer(len) || json_integer_value(len) < 0 ||
			    (nl && (!json_is_integer(nl) || json_integer_value(nl) < 0))) {
				fprintf(stderr, "vdfs diff: a malformed extent in %s's manifest\n", s->id);
				return 1;
			}
			memcpy(m->x[j].id, id, VD_ID_SIZE);
			m->x[j].len = (uint64_t)json_integer_value(len);
			m->x[j].lines = nl ? (uint64_t)json_integer_value(nl) : VD_DIFF_LINES_UNKNOWN;
		}
		m->n = json_array_size(ch);
		s->chunks += m->n;
	}
	qsort(s->f, s->n, sizeof *s->f, path_cmp);
	return 0;
nomem:
	fprintf(stderr, "vdfs diff: out of memory\n");
	return 1;
}

static int side_get(struct side *s, const struct vd_cli_conn *c, const char *id)
{
	struct vd_buf path = VD_BUF_INIT(256);
	vd_buf_addf(&path, "/v1/versions/%s", id);
	int rc = vd_cli_get_json(&s->reply, c, "diff", vd_buf_cstr(&path));
	vd_buf_release(&path);
	s->id = id;
	return rc ? rc : side_parse(s);
}

/* The ID of the newest result of version id (its last run's). */
static int result_of(char out[VD_ID_SIZE], const struct vd_cli_conn *c, const char *id)
{
	struct side s = { 0 };
	struct vd_buf path = VD_BUF_INIT(256);
	vd_buf_addf(&path, "/v1/versions/%s", id);
	int rc = vd_cli_get_json(&s.reply, c, "diff", vd_buf_cstr(&path));
	vd_buf_release(&path);
	if (rc)
		return rc;
	const json_t *v0 = json_array_get(json_object_get(s.reply, "versions"), 0);
	const json_t *runs = json_object_get(v0, "runs");
	const json_t *last = json_array_get(runs, json_array_size(runs) ? json_array_size(runs) - 1 : 0);
	const char *rid = vd_cli_jstr(json_object_get(last, "result"), "data_id");
	if (!v0) {
		fprintf(stderr, "vdfs diff: %s is a result, not a dataset version; diff it without --result\n", id);
		rc = 2;
	} else if (!vd_id_valid(rid)) {
		fprintf(stderr, "vdfs diff: version %s has no result yet (%s)\n", id,
			*vd_cli_jstr(v0, "status") ? vd_cli_jstr(v0, "status") : "no run");
		rc = 1;
	} else {
		memcpy(out, rid, VD_ID_SIZE);
	}
	json_decref(s.reply);
	return rc;
}

static int fetch_chunk(struct vd_buf *out, void *arg, const char *id, uint64_t len)
{
	const struct vd_cli_conn *c = arg;
	struct vd_buf path = VD_BUF_INIT(256);
	long status = 0;
	(void)len;   /* out's cap is the length: a longer reply fails */
	vd_buf_addf(&path, "/v1/chunks/%s", id);
	int rc = vd_cli_request(out, &status, c, "GET", vd_buf_cstr(&path), NULL, 0);
	vd_buf_release(&path);
	if (rc)
		return -EIO;
	if (status != 200) {
		fprintf(stderr, "vdfs diff: GET /v1/chunks/%s answered HTTP %ld\n", id, status);
		return -EIO;
	}
	return 0;
}

static void label(struct vd_buf *b, char ab, const struct side *s, const struct mfile *f)
{
	vd_buf_reset(b);
	if (!f)
		vd_buf_adds(b, "/dev/null");
	else if (!*f->path)
		vd_buf_addf(b, "%c/%s", ab, *s->name ? s->name : s->id);
	else if (!*s->name || s->single)   /* a result: its one file is result.csv */
		vd_buf_addf(b, "%c/%s", ab, f->path);
	else
		vd_buf_addf(b, "%c/%s/%s", ab, s->name, f->path);
}

/* Line-diff every file of a against b's file of the same path. */
static int diff_lines(const struct vd_cli_conn *c, struct side *a, struct side *b, int context,
		      bool stats)
{
	struct vd_diff_opts o;
	struct vd_diff_stats st = { 0 };
	struct vd_buf la = VD_BUF_INIT(8192), lb = VD_BUF_INIT(8192);
	int rc = 0;

	vd_diff_opts_default(&o);
	o.context = context;
	o.fetch = fetch_chunk;
	o.fetch_arg = (void *)c;
	/* A file on each side (a version or a result) is compared whatever
	 * the names; trees file by file, by path. */
	bool single = a->single && b->single && a->n == 1 && b->n == 1;
	for (size_t i = 0, j = 0; !rc && (i < a->n || j < b->n);) {
		int d = single ? 0 : i == a->n ? 1 : j == b->n ? -1 : strcmp(a->f[i].path, b->f[j].path);
		const struct mfile *fa = d <= 0 ? &a->f[i] : NULL, *fb = d >= 0 ? &b->f[j] : NULL;
		label(&la, 'a', a, fa);
		label(&lb, 'b', b, fb);
		rc = vd_diff_files(&st, &o, vd_buf_cstr(&la), fa ? fa->x : NULL, fa ? fa->n : 0,
				   vd_buf_cstr(&lb), fb ? fb->x : NULL, fb ? fb->n : 0);
		i += d <= 0;
		j += d >= 0;
	}
	fflush(stdout);
	if (rc) {
		fprintf(stderr, "vdfs diff: %s\n", rc == -EIO ? "a chunk could not be read (see above)"
							   : strerror(-rc));
	} else if (stats) {
		char s[32];
		vd_cli_human_bytes(s, st.bytes_fetched);
		fprintf(stderr,
			"vdfs diff: fetched %llu of %llu chunks (%s); %llu regions line-diffed in %llu windows; "
			"%llu lines removed, %llu added, %llu hunks\n",
			(unsigned long long)st.chunks_fetched, (unsigned long long)(a->chunks + b->chunks), s,
			(unsigned long long)st.regions, (unsigned long long)st.windows,
			(unsigned long long)st.removed, (unsigned long long)st.added,
			(unsigned long long)st.hunks);
	}
	vd_buf_release(&la);
	vd_buf_release(&lb);
	return rc ? 1 : 0;
}

static void add_n(struct vd_cli_table *t, const json_t *o, const char *k, bool bytes, bool raw)
{
	const json_t *v = json_object_get(o, k);
	char s[32];
	if (!json_is_integer(v)) {
		vd_cli_table_add(t, "-");
	} else if (bytes && !raw) {
		vd_cli_human_bytes(s, (unsigned long long)json_integer_value(v));
		vd_cli_table_add(t, s);
	} else {
		vd_cli_table_addf(t, "%lld", (long long)json_integer_value(v));
	}
}

static void print_summary(const json_t *d, bool raw)
{
	struct vd_cli_table t = { .ncols = 5 };
	static const char *rows[] = { "files", "chunks", "bytes", "units" };
	printf("a %s\nb %s\n", vd_cli_jstr(d, "a"), vd_cli_jstr(d, "b"));
	vd_cli_table_add(&t, "");
	vd_cli_table_add(&t, "SHARED");
	vd_cli_table_add(&t, "CHANGED");
	vd_cli_table_add(&t, "ADDED");
	vd_cli_table_add(&t, "REMOVED");
	for (size_t i = 0; i < 4; i++) {
		const json_t *o = json_object_get(d, rows[i]);
		bool bytes = i == 2;
		vd_cli_table_add(&t, rows[i]);
		add_n(&t, o, "shared", bytes, raw);
		if (i == 0)
			add_n(&t, o, "changed", false, raw);
		else
			vd_cli_table_add(&t, "-");
		add_n(&t, o, "added", bytes, raw);
		add_n(&t, o, "removed", bytes, raw);
	}
	vd_cli_table_print(&t);
	const json_t *u = json_object_get(d, "units");
	printf("units in a: %lld, in b: %lld", vd_cli_jint(u, "a"), vd_cli_jint(u, "b"));
	if (*vd_cli_jstr(d, "task"))
		printf(" (planned with task %s's config)", vd_cli_jstr(d, "task"));
	printf("\n");
}

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "lines", 'L', NULL, "a unified line diff of the two versions' inputs, file by file "
	  "(a tree's files by path)", 0 },
	{ "result", 'R', NULL, "the same for the two versions' newest results", 0 },
	{ "unified", 'U', "N", "lines of context around each change with --lines or --result "
	  "(0 to 64, default 3)", VD_DOC_SHORT },
	{ "stats", 's', NULL, "with --lines or --result, tell on stderr how many chunks were "
	  "fetched and how many regions line-diffed", 0 },
	{ "bytes", 'b', NULL, "print sizes in the summary as exact byte counts", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_diff = {
	.name = "diff",
	.args = "A B",
	.summary = "B against A: a summary, or a line diff of inputs or results",
	.description =
		"A and B are data IDs (32 lowercase hex digits, or unique prefixes of at least 6). Without options: how many "
		"files, chunks, bytes and units the two versions share, and how many B "
		"changed, added and removed; units are cut with the config of the task B "
		"belongs to.\n\n"
		"--lines and --result work from the manifests and fetch only the chunks "
		"that differ, so two large inputs that differ in a few places diff in "
		"little time and memory.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_diff, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(256);
	struct side sa = { 0 }, sb = { 0 };
	json_t *d = NULL;
	bool lines = false, result = false, stats = false, raw = false;
	int opt, rc = 2, context = 3;
	char ra[VD_ID_SIZE], rb[VD_ID_SIZE];

	while ((opt = vd_cli_opt(&o)) > 0) {
		switch (opt) {
		case 'L': lines = true; break;
		case 'R': result = true; break;
		case 's': stats = true; break;
		case 'b': raw = true; break;
		case 'U': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || end == optarg || v < 0 || v > 64) {
				fprintf(stderr, "vdfs diff: -U wants 0 to 64 lines of context\n");
				goto out;
			}
			context = (int)v;
			break;
		}
		default: break;
		}
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind + 2 != argc) {
		rc = vd_cli_usage(&vd_cli_cmd_diff, "wants two IDs, A and B");
		goto out;
	}
	if (lines && result) {
		rc = vd_cli_usage(&vd_cli_cmd_diff, "--lines and --result exclude each other");
		goto out;
	}
	char ida[VD_ID_SIZE], idb[VD_ID_SIZE];
	if ((rc = vd_cli_conn_open(&c, "diff")) ||
	    (rc = vd_cli_resolve_id(ida, &c, "diff", argv[optind])) ||
	    (rc = vd_cli_resolve_id(idb, &c, "diff", argv[optind + 1])))
		goto out;
	const char *a = ida, *b = idb;
	if (result) {
		if ((rc = result_of(ra, &c, a)) || (rc = result_of(rb, &c, b)))
			goto out;
		a = ra;
		b = rb;
	}
	if (lines || result) {
		if ((rc = side_get(&sa, &c, a)) || (rc = side_get(&sb, &c, b)))
			goto out;
		rc = diff_lines(&c, &sa, &sb, context, stats);
		goto out;
	}
	vd_buf_addf(&path, "/v1/diff/%s/%s", a, b);
	if (!(rc = vd_cli_get_json(&d, &c, "diff", vd_buf_cstr(&path))))
		print_summary(d, raw);
out:
	side_free(&sa);
	side_free(&sb);
	json_decref(d);
	vd_buf_release(&path);
	vd_cli_conn_close(&c);
	return rc;
}
