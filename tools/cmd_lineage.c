/*
 * cmd_lineage.c - `vdfs lineage ID [--dot]`: the derivation DAG around a
 * version or result (GET /v1/lineage/<id>), as indented text (the ID's
 * ancestors, then its descendants, each edge with its kind and the code ID
 * that made it) or as a Graphviz digraph.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "id.h"

#define SHORT_ID 12

struct graph {
	const json_t *nodes;   /* id -> node */
	json_t *in, *out;      /* id -> [edge] */
	bool full;
};

static const char *shorten(char buf[VD_ID_SIZE], const char *id, bool full)
{
	snprintf(buf, VD_ID_SIZE, "%.*s", full ? VD_ID_LEN : SHORT_ID, id && *id ? id : "-");
	return buf;
}

/*
 * A result copied into a task as it is becomes a version with the result's
 * own data ID: one node that is both, which the daemon reports as a version
 * with a run edge into it (and a "same" edge to itself). Such a node is
 * described as both; the self edge says nothing more and is not drawn.
 */
static const char *result_task(const struct graph *g, const char *id)
{
	const json_t *in = json_object_get(g->in, id), *e;
	size_t i;
	json_array_foreach(in, i, e) {
		if (!strcmp(vd_cli_jstr(e, "kind"), "run"))
			return vd_cli_jstr(json_object_get(g->nodes, vd_cli_jstr(e, "from")), "task");
	}
	return NULL;
}

static bool self_edge(const json_t *e)
{
	return !strcmp(vd_cli_jstr(e, "from"), vd_cli_jstr(e, "to"));
}

static void describe(const struct graph *g, const char *id)
{
	const json_t *n = json_object_get(g->nodes, id);
	char s[VD_ID_SIZE];
	const char *kind = vd_cli_jstr(n, "kind"), *rt;
	shorten(s, id, g->full);
	if (!strcmp(kind, "version")) {
		printf("version %s  %s/%s", s, vd_cli_jstr(n, "task"), vd_cli_jstr(n, "name"));
		if ((rt = result_task(g, id)))
			printf("  (= a result of task %s)", rt);
	} else if (!strcmp(kind, "result")) {
		printf("result %s  of task %s", s, vd_cli_jstr(n, "task"));
	} else if (!strcmp(kind, "deleted")) {
		char when[32];
		vd_cli_time(when, vd_cli_jint(n, "deleted"));
		printf("version %s  %s/%s  deleted %s", s, vd_cli_jstr(n, "task"),
		       vd_cli_jstr(n, "name"), when);
	} else {
		printf("%s %s", *kind ? kind : "node", s);
	}
}

static void describe_edge(const struct graph *g, const json_t *e)
{
	char s[VD_ID_SIZE];
	const char *path = vd_cli_jstr(e, "path");
	printf("%s [code %s", vd_cli_jstr(e, "kind"), shorten(s, vd_cli_jstr(e, "code_id"), g->full));
	if (*path)
		printf(", file %s", path);
	printf("]");
}

static int edge_cmp_from(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int d = strcmp(vd_cli_jstr(x, "kind"), vd_cli_jstr(y, "kind"));
	return d ? d : strcmp(vd_cli_jstr(x, "from"), vd_cli_jstr(y, "from"));
}

static int edge_cmp_to(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int d = strcmp(vd_cli_jstr(x, "kind"), vd_cli_jstr(y, "kind"));
	return d ? d : strcmp(vd_cli_jstr(x, "to"), vd_cli_jstr(y, "to"));
}

/*
 * Print the edges into (up) or out of (down) id, depth first. A node
 * reached twice (a diamond: two derivations meeting again) is expanded
 * once and marked "(shown above)" after; the same set keeps a cycle, which
 * the daemon should never report, from looping.
 */
static void walk(const struct graph *g, json_t *seen, const char *id, bool up, int depth)
{
	const json_t *list = json_object_get(up ? g->in : g->out, id);
	size_t n = json_array_size(list), i;
	const json_t **v = calloc(n + 1, sizeof *v);
	if (!v)
		return;
	for (i = 0; i < n; i++)
		v[i] = json_array_get(list, i);
	qsort(v, n, sizeof *v, up ? edge_cmp_from : edge_cmp_to);
	for (i = 0; i < n; i++) {
		const char *next = vd_cli_jstr(v[i], up ? "from" : "to");
		if (self_edge(v[i]))
			continue;
		printf("%*s%s ", 2 + 3 * depth, "", up ? "<-" : "->");
		describe_edge(g, v[i]);
		printf(" ");
		describe(g, next);
		if (json_object_get(seen, next)) {
			printf("  (shown above)\n");
			continue;
		}
		printf("\n");
		json_object_set_new(seen, next, json_true());
		walk(g, seen, next, up, depth + 1);
	}
	free(v);
}

static void index_edges(struct graph *g, const json_t *edges)
{
	size_t i;
	const json_t *e;
	json_array_foreach(edges, i, e) {
		const char *k[2] = { vd_cli_jstr(e, "to"), vd_cli_jstr(e, "from") };
		json_t *m[2] = { g->in, g->out };
		for (int s = 0; s < 2; s++) {
			json_t *arr = json_object_get(m[s], k[s]);
			if (!arr) {
				arr = json_array();
				json_object_set_new(m[s], k[s], arr);
			}
			json_array_append(arr, (json_t *)e);
		}
	}
}

static size_t real_edges(const json_t *list)
{
	size_t n = 0, i;
	const json_t *e;
	json_array_foreach(list, i, e)
		n += !self_edge(e);
	return n;
}

static void print_text(const struct graph *g, const char *root, const json_t *lin)
{
	json_t *seen = json_object();
	describe(g, root);
	printf("\nancestors:\n");
	if (!real_edges(json_object_get(g->in, root)))
		printf("  (none)\n");
	json_object_set_new(seen, root, json_true());
	walk(g, seen, root, true, 0);
	json_object_clear(seen);
	printf("descendants:\n");
	if (!real_edges(json_object_get(g->out, root)))
		printf("  (none)\n");
	json_object_set_new(seen, root, json_true());
	walk(g, seen, root, false, 0);
	printf("%zu nodes, %zu edges%s\n", json_object_size(g->nodes),
	       real_edges(json_object_get(lin, "edges")),
	       json_is_true(json_object_get(lin, "truncated")) ? " (truncated: the graph is larger)" : "");
	json_decref(seen);
}

/* A DOT string's inside: quotes and backslashes escaped, control bytes
 * made spaces (names are file names and may hold anything but '/'). */
static void dot_str(const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			putchar(' ');
		else
			putchar(ch);
	}
}

static void print_dot(const struct graph *g, const char *root_id, const json_t *lin)
{
	const char *id;
	const json_t *n, *e;
	size_t i;
	char s[VD_ID_SIZE];

	printf("digraph lineage {\n"
	       "  rankdir=LR;\n"
	       "  node [fontname=\"monospace\", fontsize=10];\n"
	       "  edge [fontname=\"monospace\", fontsize=9];\n");
	json_object_foreach((json_t *)g->nodes, id, n) {
		bool deleted = !strcmp(vd_cli_jstr(n, "kind"), "deleted");
		bool version = deleted || !strcmp(vd_cli_jstr(n, "kind"), "version");
		bool root = !strcmp(id, root_id);
		printf("  \"%s\" [shape=%s, label=\"", id, version ? "box" : "ellipse");
		dot_str(deleted ? "deleted version" : version ? "version" : "result");
		printf("\\n");
		dot_str(vd_cli_jstr(n, "task"));
		if (version) {
			const char *rt = result_task(g, id);
			printf("/");
			dot_str(vd_cli_jstr(n, "name"));
			if (rt) {
				printf("\\n= a result of ");
				dot_str(rt);
			}
		}
		printf("\\n%s", shorten(s, id, g->full));
		if (deleted) {
			/* A tombstone: the version is gone, its place in the
			 * graph stays, drawn dashed and grey. */
			char when[32];
			vd_cli_time(when, vd_cli_jint(n, "deleted"));
			printf("\\ndeleted %s\", style=\"dashed%s\", color=grey50, "
			       "fontcolor=grey50%s];\n", when, root ? ",bold" : "",
			       root ? ", penwidth=2" : "");
		} else {
			printf("\"%s];\n", root ? ", style=bold, penwidth=2" : "");
		}
	}
	json_array_foreach(json_object_get(lin, "edges"), i, e) {
		const char *path = vd_cli_jstr(e, "path");
		if (self_edge(e))
			continue;
		printf("  \"%s\" -> \"%s\" [label=\"", vd_cli_jstr(e, "from"), vd_cli_jstr(e, "to"));
		dot_str(vd_cli_jstr(e, "kind"));
		printf(" %s", shorten(s, vd_cli_jstr(e, "code_id"), g->full));
		if (*path) {
			printf("\\n");
			dot_str(path);
		}
		printf("\"%s];\n", strcmp(vd_cli_jstr(e, "kind"), "run") ? ", style=dashed" : "");
	}
	printf("}\n");
}

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "dot", 'd', NULL, "print a Graphviz digraph instead of text (vdfs lineage --dot ID | "
	  "dot -Tsvg > lineage.svg)", 0 },
	{ "long", 'l', NULL, "print IDs whole (32 hex digits) instead of their first 12",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_lineage = {
	.name = "lineage",
	.args = "ID",
	.summary = "where a version or result came from, and what came of it",
	.description =
		"ID is a dataset version's or a result's data ID (32 lowercase hex "
		"digits, or a unique prefix of at least 6). Prints the node, then its ancestors and its descendants, depth "
		"first, one edge a line: its kind (run: a run of a version made this "
		"result; same: this content was already known as that result or version), "
		"the code ID that made it and, inside a tree, the file's path. A node "
		"reached twice is expanded once and marked (shown above). A version that "
		"was deleted (vdfs rm, rm -r in the mount, retention) keeps its place as "
		"a tombstone, shown as deleted and the time it went (in --dot, a dashed "
		"grey box). The daemon walks at most 10,000 nodes and says when the graph "
		"was truncated.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_lineage, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(256);
	struct graph g = { 0 };
	json_t *lin = NULL, *nodes = json_object();
	bool dot = false;
	int opt, rc = 2;
	size_t i;
	const json_t *n;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'd')
			dot = true;
		else if (opt == 'l')
			g.full = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind + 1 != argc) {
		rc = vd_cli_usage(&vd_cli_cmd_lineage, optind == argc ? "which ID?" : "one ID only");
		goto out;
	}
	char id[VD_ID_SIZE];
	if ((rc = vd_cli_conn_open(&c, "lineage")) ||
	    (rc = vd_cli_resolve_id(id, &c, "lineage", argv[optind])))
		goto out;
	vd_buf_addf(&path, "/v1/lineage/%s", id);
	if ((rc = vd_cli_get_json(&lin, &c, "lineage", vd_buf_cstr(&path))))
		goto out;
	json_array_foreach(json_object_get(lin, "nodes"), i, n)
		json_object_set(nodes, vd_cli_jstr(n, "id"), (json_t *)n);
	g.nodes = nodes;
	g.in = json_object();
	g.out = json_object();
	index_edges(&g, json_object_get(lin, "edges"));
	if (dot)
		print_dot(&g, id, lin);
	else
		print_text(&g, id, lin);
	rc = 0;
out:
	json_decref(g.in);
	json_decref(g.out);
	json_decref(nodes);
	json_decref(lin);
	vd_buf_release(&path);
	vd_cli_conn_close(&c);
	return rc;
}
