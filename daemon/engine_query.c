/*
 * engine_query.c - the operator API: what an ID is, a task's history, the
 * lineage DAG, storage use, and how two versions differ.
 *
 * Everything here only reads the catalog (docs/catalog.md). The indexes it
 * leans on are written where the facts arise: vi/<data>/<task> when a
 * version is sealed, ri/<result>/<task>/<data>/<code> when a run finishes,
 * ch/<parent>/<child>/<task> when a sealed version's content matches an
 * earlier result or version. The lineage DAG is not stored as such; it is
 * walked from these.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine_int.h"

#define LINEAGE_MAX_NODES 10000

/* ---- small scans ------------------------------------------------------ */

/* The rest of each key below "<index>/<id>/", as strings. */
static int suffixes(struct vd_strv *out, vd_engine *e, const char *index, const char *id)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "%s/%s/", index, id);
	int rc = vd_engine_list_suffix(out, e, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

/* "<task>/<data>/<code>" (an ri/ suffix) into its fields. */
static bool split3(char task[256], char data[VD_ID_SIZE], char code[VD_ID_SIZE],
		   const char *s)
{
	size_t n = strlen(s);
	if (n < 2 * VD_ID_LEN + 3 || n - 2 * VD_ID_LEN - 2 >= 256)
		return false;
	size_t tl = n - 2 * VD_ID_LEN - 2;
	if (s[tl] != '/' || s[tl + 1 + VD_ID_LEN] != '/')
		return false;
	memcpy(task, s, tl);
	task[tl] = '\0';
	memcpy(data, s + tl + 1, VD_ID_LEN);
	data[VD_ID_LEN] = '\0';
	memcpy(code, s + tl + 2 + VD_ID_LEN, VD_ID_LEN);
	code[VD_ID_LEN] = '\0';
	return vd_id_valid(data) && vd_id_valid(code);
}

static json_t *run_brief(const json_t *rj, const char *code)
{
	json_t *b = json_pack("{s:s, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*}", "code_id", code,
			      "state", json_object_get(rj, "state"), "units",
			      json_object_get(rj, "units"), "units_done",
			      json_object_get(rj, "units_done"), "created",
			      json_object_get(rj, "created"), "started",
			      json_object_get(rj, "started"), "finished",
			      json_object_get(rj, "finished"));
	json_t *res = json_object_get(rj, "result");
	if (b && res)
		json_object_set_new(b, "result", json_pack("{s:O, s:O}", "data_id",
				    json_object_get(res, "data_id"), "size",
				    json_object_get(res, "size")));
	if (b && json_object_get(rj, "error"))
		json_object_set(b, "error", json_object_get(rj, "error"));
	return b;
}

/* Children of id through ch/<id>/<child>/<task>, appended to arr. */
static int same_children(json_t *arr, vd_engine *e, const char *id)
{
	struct vd_strv sfx = { 0 };
	int rc = suffixes(&sfx, e, "ch", id);
	for (size_t i = 0; !rc && i < sfx.n; i++) {
		const char *s = sfx.v[i];
		if (strlen(s) < VD_ID_LEN + 2 || s[VD_ID_LEN] != '/')
			continue;
		struct vd_buf k = VD_BUF_INIT(1024);
		json_t *edge = NULL;
		vd_buf_addf(&k, "ch/%s/%s", id, s);
		if (vd_catalog_get_json(&edge, e->cat, vd_buf_cstr(&k)) == 0) {
			json_object_set_new(edge, "id", json_stringn(s, VD_ID_LEN));
			json_object_set_new(edge, "task", json_string(s + VD_ID_LEN + 1));
			json_array_append(arr, edge);
		}
		json_decref(edge);
		vd_buf_release(&k);
	}
	vd_strv_release(&sfx);
	return rc;
}

/* ---- GET /v1/versions/<id> ------------------------------------------- */

static json_t *version_entry(vd_engine *e, const char *task, const char *id,
			     const json_t *v)
{
	struct vd_buf st = VD_BUF_INIT(4096);
	json_t *runs = json_array(), *children = json_array(), *c;
	size_t i;
	json_array_foreach(json_object_get(v, "runs"), i, c) {
		const char *code = json_string_value(c);
		json_t *rj = NULL;
		if (!code || vd_engine_run_json(&rj, e, task, id, code))
			continue;
		json_t *b = run_brief(rj, code);
		json_t *res = json_object_get(rj, "result");
		if (res)
			json_array_append_new(children, json_pack("{s:O, s:s, s:s, s:s}", "id",
				json_object_get(res, "data_id"), "kind", "run", "code_id", code,
				"task", task));
		json_array_append_new(runs, b);
		json_decref(rj);
	}
	same_children(children, e, id);
	vd_engine_version_status(&st, e, task, id, v);
	if (st.len && st.data[st.len - 1] == '\n')
		st.data[--st.len] = '\0';
	size_t nruns = json_array_size(json_object_get(v, "runs"));
	json_t *code = nruns ? json_array_get(json_object_get(v, "runs"), nruns - 1) : NULL;
	json_t *out = json_pack("{s:s, s:O*, s:O*, s:O*, s:O*, s:O*, s:O*, s:O, s:s, s:o, s:O*, s:o}",
		"task", task, "name", json_object_get(v, "name"), "kind",
		json_object_get(v, "kind"), "size", json_object_get(v, "size"), "files",
		json_object_get(v, "files"), "stored", json_object_get(v, "stored"), "time",
		json_object_get(v, "time"), "code_id", code ? code : json_null(), "status",
		vd_buf_cstr(&st), "runs", runs, "parents", json_object_get(v, "parents"),
		"children", children);
	vd_buf_release(&st);
	return out;
}

int vd_engine_api_version(json_t **reply, struct vd_buf *why, vd_engine *e,
			  const char *id)
{
	struct vd_strv tasks = { 0 }, res = { 0 };
	json_t *r = NULL, *versions = json_array(), *results = json_array(), *man = NULL;
	int rc;
	if (!vd_id_valid(id)) {
		vd_buf_adds(why, "not a valid ID");
		return -EINVAL;
	}
	if ((rc = suffixes(&tasks, e, "vi", id)) || (rc = suffixes(&res, e, "ri", id)))
		goto out;
	for (size_t i = 0; i < tasks.n; i++) {
		json_t *v = NULL;
		if (vd_engine_version_json(&v, e, tasks.v[i], id))
			continue;
		json_array_append_new(versions, version_entry(e, tasks.v[i], id, v));
		json_decref(v);
	}
	for (size_t i = 0; i < res.n; i++) {
		char task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
		if (split3(task, data, code, res.v[i]))
			json_array_append_new(results, json_pack("{s:s, s:s, s:s}", "task", task,
						"data_id", data, "code_id", code));
	}
	if (json_array_size(versions)) {
		struct vd_buf k = VD_BUF_INIT(128);
		vd_buf_addf(&k, "m/%s", id);
		rc = vd_catalog_get_json(&man, e->cat, vd_buf_cstr(&k));
		vd_buf_release(&k);
		if (rc)
			goto out;
	} else if (json_array_size(results)) {
		/* A result: its content is the run's result file. */
		json_t *first = json_array_get(results, 0), *rj = NULL;
		const char *task = json_string_value(json_object_get(first, "task"));
		const char *data = json_string_value(json_object_get(first, "data_id"));
		const char *code = json_string_value(json_object_get(first, "code_id"));
		if ((rc = vd_engine_run_json(&rj, e, task, data, code)))
			goto out;
		json_t *f = json_deep_copy(json_object_get(rj, "result"));
		json_object_del(f, "data_id");
		json_object_set_new(f, "path", json_string("result.csv"));
		json_object_set_new(f, "id", json_string(id));
		man = json_pack("{s:s, s:[o]}", "kind", "file", "files", f);
		json_decref(rj);
	} else {
		vd_buf_adds(why, "no version or result has this ID");
		rc = -ENOENT;
		goto out;
	}
	r = json_pack("{s:s, s:O, s:O, s:O}", "data_id", id, "versions", versions,
		      "results", results, "manifest", man);
	rc = r ? 0 : -ENOMEM;
	*reply = r;
out:
	json_decref(man);
	json_decref(versions);
	json_decref(results);
	vd_strv_release(&tasks);
	vd_strv_release(&res);
	return rc;
}

/* ---- GET /v1/tasks/<task>/log ---------------------------------------- */

/* A version as the log first sees it: enough to filter. */
struct log_row {
	const char *id;
	json_t *v;              /* its record */
};

static bool text_match(const struct log_row *r, const char *text)
{
	const char *name = json_string_value(json_object_get(r->v, "name"));

	return !strncmp(r->id, text, strlen(text)) || (name && strstr(name, text));
}

/* Does status line st start with the word `state`? */
static bool state_match(const char *st, const char *state)
{
	size_t n = strlen(state);

	return !strncmp(st, state, n) && (st[n] == '\0' || st[n] == ' ' || st[n] == '\n' ||
					 st[n] == ':' || st[n] == ',');
}

static void log_status(struct vd_buf *st, vd_engine *e, const char *task,
		       const struct log_row *r)
{
	vd_buf_reset(st);
	vd_engine_version_status(st, e, task, r->id, r->v);
	if (st->len && st->data[st->len - 1] == '\n')
		st->data[--st->len] = '\0';
}

/* The reply's row for r: what the log says about one version. */
static json_t *log_entry(vd_engine *e, const char *task, const struct log_row *r,
			 struct vd_buf *st)
{
	json_t *v = r->v, *rj = NULL;
	char cbuf[VD_ID_SIZE];
	const char *code = vd_engine_version_code(cbuf, e, task, v);

	log_status(st, e, task, r);
	json_t *row = json_pack("{s:s, s:O*, s:O*, s:s?, s:s, s:O*, s:O*, s:O*}", "data_id",
		r->id, "name", json_object_get(v, "name"), "time", json_object_get(v, "time"),
		"code_id", code, "status", vd_buf_cstr(st), "size", json_object_get(v, "size"),
		"stored", json_object_get(v, "stored"), "submitted_by",
		json_object_get(v, "submitted_by"));
	if (row && code && !vd_engine_run_json(&rj, e, task, r->id, code)) {
		json_int_t t0 = json_integer_value(json_object_get(rj, "started"));
		json_int_t t1 = json_integer_value(json_object_get(rj, "finished"));
		if (!t0)
			t0 = json_integer_value(json_object_get(rj, "created"));
		json_t *d = json_object_get(rj, "duration_ms");
		if (d)
			json_object_set(row, "duration_ms", d);
		else if (t1)
			json_object_set_new(row, "duration_ms", json_integer(t1 - t0));
		if (json_object_get(rj, "units"))
			json_object_set(row, "units", json_object_get(rj, "units"));
	}
	json_decref(rj);
	return row;
}

/*
 * The versions come from the time-order index (engine_order.c), newest
 * first. Without a filter only the page's records are read, so a page of
 * 100 costs the same for a task of 10,000 versions as for one of 100; a
 * filter has to look at every record (the text filter at names, the state
 * filter at each version's status) and costs what the task's size does.
 */
int vd_engine_api_task_log(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const char *task, const struct vd_log_filter *f)
{
	static const struct vd_log_filter all = { 0 };
	struct vd_strv ids = { 0 };
	struct vd_buf st = VD_BUF_INIT(4096);
	json_t *arr = NULL;
	size_t total = 0, matched = 0;
	bool filtered;
	int rc;

	if (!f)
		f = &all;
	filtered = (f->text && *f->text) || (f->state && *f->state);
	if (!vd_engine_task_exists(e, task)) {
		vd_buf_addf(why, "no task '%s'", task);
		return -ENOENT;
	}
	if (!(arr = json_array()))
		return -ENOMEM;
	rc = filtered ? vd_engine_version_page(&ids, NULL, e, task, 0, 0)
		      : vd_engine_version_page(&ids, &total, e, task, f->offset, f->limit);
	if (rc)
		goto out;
	for (size_t i = 0; i < ids.n; i++) {
		struct log_row r = { .id = ids.v[i] };
		json_t *row = NULL;

		if (vd_engine_version_json(&r.v, e, task, ids.v[i]))
			continue;   /* deleted since the index was read */
		if (filtered) {
			bool keep = !(f->text && *f->text) || text_match(&r, f->text);
			if (keep && f->state && *f->state) {
				log_status(&st, e, task, &r);
				keep = state_match(vd_buf_cstr(&st), f->state);
			}
			size_t at = matched;
			matched += keep;
			if (!keep || at < f->offset || (f->limit && at >= f->offset + f->limit)) {
				json_decref(r.v);
				continue;
			}
		}
		row = log_entry(e, task, &r, &st);
		json_decref(r.v);
		if (!row || json_array_append_new(arr, row)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	if (filtered)
		total = matched;
	char latest[VD_ID_SIZE];
	bool has_latest = vd_engine_version_latest(latest, e, task) == 0;
	*reply = json_pack("{s:s, s:O, s:s?, s:I, s:I}", "task", task, "versions", arr,
			   "latest", has_latest ? latest : NULL, "total", (json_int_t)total,
			   "offset", (json_int_t)f->offset);
	rc = *reply ? 0 : -ENOMEM;
out:
	json_decref(arr);
	vd_buf_release(&st);
	vd_strv_release(&ids);
	return rc;
}

/* ---- GET /v1/tasks ------------------------------------------------------ */

int vd_engine_api_task_list(json_t **reply, vd_engine *e)
{
	struct vd_strv tasks = { 0 };
	struct vd_buf st = VD_BUF_INIT(4096);
	json_t *arr = json_array();
	int rc = arr ? vd_engine_task_list(&tasks, e) : -ENOMEM;

	for (size_t i = 0; !rc && i < tasks.n; i++) {
		char owner[VD_EXECUTOR_NAME_SIZE], latest[VD_ID_SIZE], cbuf[VD_ID_SIZE];
		size_t nv = 0;
		json_t *t, *v = NULL;

		if (vd_engine_task_owner(owner, e, tasks.v[i]))
			continue;   /* deleted meanwhile */
		vd_engine_version_page(NULL, &nv, e, tasks.v[i], 0, 0);
		t = json_pack("{s:s, s:s, s:I}", "name", tasks.v[i], "owner", owner, "versions",
			      (json_int_t)nv);
		if (t && vd_engine_version_latest(latest, e, tasks.v[i]) == 0) {
			json_object_set_new(t, "latest", json_string(latest));
			if (!vd_engine_version_json(&v, e, tasks.v[i], latest)) {
				struct log_row r = { .id = latest, .v = v };
				const char *code = vd_engine_version_code(cbuf, e, tasks.v[i], v);

				log_status(&st, e, tasks.v[i], &r);
				json_object_set(t, "latest_name", json_object_get(v, "name"));
				json_object_set(t, "latest_time", json_object_get(v, "time"));
				json_object_set_new(t, "latest_status", json_string(vd_buf_cstr(&st)));
				if (code)
					json_object_set_new(t, "code_id", json_string(code));
				json_decref(v);
			}
		}
		if (!t || json_array_append_new(arr, t))
			rc = -ENOMEM;
	}
	if (!rc && !(*reply = json_pack("{s:O}", "tasks", arr)))
		rc = -ENOMEM;
	json_decref(arr);
	vd_buf_release(&st);
	vd_strv_release(&tasks);
	return rc;
}

/* ---- POST /v1/tasks/<task>/rerun, /cancel --------------------------------- */

/* The body's "data_id": a full ID, or none (latest). */
static int body_data_id(const char **out, struct vd_buf *why, const json_t *body)
{
	json_t *d = json_object_get(body, "data_id");
	*out = NULL;
	if (!d || json_is_null(d))
		return 0;
	if (!json_is_string(d) || !vd_id_valid(json_string_value(d))) {
		vd_buf_adds(why, "'data_id' must be a data ID (32 hex digits)");
		return -EINVAL;
	}
	*out = json_string_value(d);
	return 0;
}

int vd_engine_api_rerun(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
			const json_t *body)
{
	const char *data;
	char id[VD_ID_SIZE];
	json_t *f = json_object_get(body, "force");
	int rc = body_data_id(&data, why, body);
	if (rc)
		return rc;
	if (f && !json_is_boolean(f)) {
		vd_buf_adds(why, "'force' must be true or false");
		return -EINVAL;
	}
	if ((rc = vd_engine_rerun(id, why, e, task, data, json_is_true(f))))
		return rc;
	*reply = json_pack("{s:s, s:s, s:b}", "task", task, "data_id", id, "force",
			   json_is_true(f));
	return *reply ? 0 : -ENOMEM;
}

int vd_engine_api_cancel(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
			 const json_t *body)
{
	const char *data;
	char id[VD_ID_SIZE];
	int rc = body_data_id(&data, why, body);
	if (rc)
		return rc;
	if ((rc = vd_engine_cancel(id, why, e, task, data)))
		return rc;
	*reply = json_pack("{s:s, s:s}", "task", task, "data_id", id);
	return *reply ? 0 : -ENOMEM;
}

/* ---- GET /v1/resolve/<prefix> ------------------------------------------------ */

struct resolve {
	json_t *found;        /* [{"id","kind"}...], each ID and kind once */
	const char *kind;
	size_t skip;          /* length of the key prefix before the ID */
};

static int resolve_one(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct resolve *rs = ctx;
	size_t i;
	json_t *x;
	(void)val;
	(void)vlen;
	if (klen < rs->skip + VD_ID_LEN)
		return 0;
	char id[VD_ID_SIZE];
	memcpy(id, key + rs->skip, VD_ID_LEN);
	id[VD_ID_LEN] = '\0';
	json_array_foreach(rs->found, i, x)
		if (!strcmp(json_string_value(json_object_get(x, "id")), id) &&
		    !strcmp(json_string_value(json_object_get(x, "kind")), rs->kind))
			return 0;
	/* Enough to say "ambiguous" and show some: stop looking after 20. */
	if (json_array_size(rs->found) >= 20)
		return 1;
	return json_array_append_new(rs->found, json_pack("{s:s, s:s}", "id", id, "kind",
							     rs->kind)) ? -ENOMEM : 0;
}

int vd_engine_api_resolve(json_t **reply, struct vd_buf *why, vd_engine *e, const char *prefix)
{
	static const struct {
		const char *keyp, *kind;
	} where[] = { { "vi/", "version" }, { "ri/", "result" }, { "code/", "code" } };
	size_t n = strlen(prefix);
	struct resolve rs = { .found = json_array() };
	int rc = 0;
	if (n < 6 || n > VD_ID_LEN || strspn(prefix, "0123456789abcdef") != n) {
		vd_buf_adds(why, "an ID prefix is 6 to 32 lowercase hex digits");
		rc = -EINVAL;
		goto out;
	}
	for (size_t i = 0; rc >= 0 && i < sizeof where / sizeof *where; i++) {
		struct vd_buf k = VD_BUF_INIT(128);
		vd_buf_addf(&k, "%s%s", where[i].keyp, prefix);
		rs.kind = where[i].kind;
		rs.skip = strlen(where[i].keyp);
		rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), resolve_one, &rs);
		vd_buf_release(&k);
	}
	if (rc < 0)
		goto out;
	size_t found = json_array_size(rs.found);
	/* One ID may be a version and a result at once; that is one ID. */
	const char *first = found ? json_string_value(json_object_get(json_array_get(rs.found, 0),
								    "id")) : NULL;
	bool one = found > 0;
	for (size_t i = 1; one && i < found; i++)
		one = !strcmp(first, json_string_value(json_object_get(json_array_get(rs.found, i),
								       "id")));
	if (!found) {
		vd_buf_addf(why, "no version, result or code ID starts with %s", prefix);
		rc = -ENOENT;
	} else if (!one) {
		vd_buf_addf(why, "%s is ambiguous: it starts", prefix);
		for (size_t i = 0; i < found; i++)
			vd_buf_addf(why, "%s %s (%s)", i ? "," : "",
				    json_string_value(json_object_get(json_array_get(rs.found, i), "id")),
				    json_string_value(json_object_get(json_array_get(rs.found, i), "kind")));
		rc = -EALREADY;
	} else {
		*reply = json_pack("{s:s, s:O}", "id", first, "matches", rs.found);
		rc = *reply ? 0 : -ENOMEM;
	}
out:
	json_decref(rs.found);
	return rc;
}

/* ---- GET /v1/lineage/<id> --------------------------------------------- */

struct walk {
	vd_engine *e;
	json_t *nodes;     /* id -> node object */
	json_t *edges;     /* "from to kind code path" -> edge object */
	json_t *queue;     /* ids to expand */
};

static void add_edge(struct walk *w, const char *from, const char *to, const char *kind,
		     const char *code, const char *path)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "%s %s %s %s %s", from, to, kind, code ? code : "-", path ? path : "");
	if (!json_object_get(w->edges, vd_buf_cstr(&k))) {
		json_t *ed = json_pack("{s:s, s:s, s:s}", "from", from, "to", to, "kind", kind);
		if (ed) {
			json_object_set_new(ed, "code_id", code ? json_string(code) : json_null());
			if (path && *path)
				json_object_set_new(ed, "path", json_string(path));
			json_object_set_new(w->edges, vd_buf_cstr(&k), ed);
		}
	}
	vd_buf_release(&k);
	if (!json_object_get(w->nodes, from))
		json_array_append_new(w->queue, json_string(from));
	if (!json_object_get(w->nodes, to))
		json_array_append_new(w->queue, json_string(to));
}

/* A deleted version (vt/<id>/<task>, engine_delete.c) as a lineage node:
 * kind "deleted", its task, name and when it was deleted. */
static int tombstone_node(json_t *node, vd_engine *e, const char *id)
{
	struct vd_strv t = { 0 };
	json_t *tomb = NULL;
	int rc = suffixes(&t, e, "vt", id);
	if (rc || !t.n)
		goto out;
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "vt/%s/%s", id, t.v[0]);
	rc = vd_catalog_get_json(&tomb, e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	if (rc)
		goto out;
	json_object_set_new(node, "kind", json_string("deleted"));
	json_object_set_new(node, "task", json_string(t.v[0]));
	json_object_set(node, "name", json_object_get(tomb, "name"));
	json_object_set(node, "deleted", json_object_get(tomb, "deleted"));
out:
	json_decref(tomb);
	vd_strv_release(&t);
	return rc;
}

/* Describe node id and queue its neighbours. */
static int expand(struct walk *w, const char *id)
{
	struct vd_strv tasks = { 0 }, res = { 0 };
	json_t *node = NULL, *kids = json_array();
	int rc;
	if ((rc = suffixes(&tasks, w->e, "vi", id)) ||
	    (rc = suffixes(&res, w->e, "ri", id)))
		goto out;
	node = json_pack("{s:s, s:s}", "id", id, "kind", tasks.n ? "version" : "result");
	if (!node) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_set_new(w->nodes, id, node);
	/* Neither a version nor a result: a deleted version's tombstone. */
	if (!tasks.n && !res.n && (rc = tombstone_node(node, w->e, id)))
		goto out;
	for (size_t i = 0; i < tasks.n; i++) {
		json_t *v = NULL, *c, *p;
		size_t j;
		if (vd_engine_version_json(&v, w->e, tasks.v[i], id))
			continue;
		if (i == 0) {
			json_object_set_new(node, "task", json_string(tasks.v[i]));
			json_object_set(node, "name", json_object_get(v, "name"));
		}
		json_array_foreach(json_object_get(v, "runs"), j, c) {
			json_t *rj = NULL;
			const char *code = json_string_value(c);
			if (!code || vd_engine_run_json(&rj, w->e, tasks.v[i], id, code))
				continue;
			const char *rid = json_string_value(json_object_get(
				json_object_get(rj, "result"), "data_id"));
			if (rid)
				add_edge(w, id, rid, "run", code, NULL);
			json_decref(rj);
		}
		json_array_foreach(json_object_get(v, "parents"), j, p)
			add_edge(w, json_string_value(json_object_get(p, "id")), id, "same",
				 json_string_value(json_object_get(p, "code_id")),
				 json_string_value(json_object_get(p, "path")));
		json_decref(v);
	}
	for (size_t i = 0; i < res.n; i++) {
		char task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
		if (!split3(task, data, code, res.v[i]))
			continue;
		if (!tasks.n && !json_object_get(node, "task"))
			json_object_set_new(node, "task", json_string(task));
		add_edge(w, data, id, "run", code, NULL);
	}
	same_children(kids, w->e, id);
	size_t i;
	json_t *k;
	json_array_foreach(kids, i, k)
		add_edge(w, id, json_string_value(json_object_get(k, "id")), "same",
			 json_string_value(json_object_get(k, "code_id")),
			 json_string_value(json_object_get(k, "path")));
out:
	json_decref(kids);
	vd_strv_release(&tasks);
	vd_strv_release(&res);
	return rc;
}

int vd_engine_api_lineage(json_t **reply, struct vd_buf *why, vd_engine *e,
			  const char *id)
{
	struct walk w = { e, json_object(), json_object(), json_array() };
	json_t *nodes = json_array(), *edges = json_array(), *x;
	const char *key;
	int rc;
	if (!vd_id_valid(id)) {
		vd_buf_adds(why, "not a valid ID");
		rc = -EINVAL;
		goto out;
	}
	struct vd_strv t = { 0 }, r = { 0 };
	rc = suffixes(&t, e, "vi", id);
	if (!rc)
		rc = suffixes(&r, e, "ri", id);
	bool known = t.n || r.n;
	if (!rc && !known) {
		rc = suffixes(&t, e, "vt", id);
		known = t.n;
	}
	vd_strv_release(&t);
	vd_strv_release(&r);
	if (rc)
		goto out;
	if (!known) {
		vd_buf_adds(why, "no version or result has this ID");
		rc = -ENOENT;
		goto out;
	}
	json_array_append_new(w.queue, json_string(id));
	/* Breadth first over both directions; a cap keeps one request from
	 * walking an enormous history. */
	for (size_t i = 0; i < json_array_size(w.queue) && !rc; i++) {
		const char *n = json_string_value(json_array_get(w.queue, i));
		if (json_object_get(w.nodes, n))
			continue;
		if (json_object_size(w.nodes) >= LINEAGE_MAX_NODES)
			break;
		rc = expand(&w, n);
	}
	json_object_foreach(w.nodes, key, x)
		json_array_append(nodes, x);
	json_object_foreach(w.edges, key, x)
		json_array_append(edges, x);
	if (!rc) {
		*reply = json_pack("{s:s, s:O, s:O, s:b}", "root", id, "nodes", nodes,
				   "edges", edges, "truncated",
				   json_object_size(w.nodes) >= LINEAGE_MAX_NODES);
		rc = *reply ? 0 : -ENOMEM;
	}
out:
	json_decref(nodes);
	json_decref(edges);
	json_decref(w.nodes);
	json_decref(w.edges);
	json_decref(w.queue);
	return rc;
}

/* ---- GET /v1/du -------------------------------------------------------- */

struct du_chunks {
	json_int_t n, raw, stored;
};

static int du_chunk(void *ctx, const char *id, const char *pack, uint64_t off,
		    uint64_t stored_len, uint64_t raw_len)
{
	struct du_chunks *c = ctx;
	(void)pack;
	(void)off;
	if (id) {
		c->n++;
		c->raw += (json_int_t)raw_len;
		c->stored += (json_int_t)stored_len;
	}
	return 0;
}

int vd_engine_api_du(json_t **reply, vd_engine *e)
{
	struct vd_strv tasks = { 0 };
	struct du_chunks ch = { 0 };
	json_t *arr = json_array();
	json_int_t all_logical = 0, all_stored = 0, all_compressed = 0, packs = 0, pack_bytes = 0;
	int rc = vd_engine_task_list(&tasks, e);
	for (size_t i = 0; !rc && i < tasks.n; i++) {
		struct vd_strv ids = { 0 };
		json_int_t logical = 0, stored = 0, compressed = 0;
		rc = vd_engine_version_list(&ids, e, tasks.v[i]);
		for (size_t j = 0; !rc && j < ids.n; j++) {
			json_t *v = NULL;
			if (vd_engine_version_json(&v, e, tasks.v[i], ids.v[j]))
				continue;
			/* stored: the raw bytes of the new chunks a version brought
			 * (after dedup); compressed: what they take in the store. A
			 * version sealed before compression has no "compressed":
			 * its chunks were stored raw. */
			json_int_t st = json_integer_value(json_object_get(v, "stored"));
			json_t *c = json_object_get(v, "compressed");
			logical += json_integer_value(json_object_get(v, "size"));
			stored += st;
			compressed += json_is_integer(c) ? json_integer_value(c) : st;
			json_decref(v);
		}
		json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:I, s:I}", "name",
						     tasks.v[i], "versions", (json_int_t)ids.n,
						     "logical", logical, "stored", stored,
						     "compressed", compressed));
		all_logical += logical;
		all_stored += stored;
		all_compressed += compressed;
		vd_strv_release(&ids);
	}
	/* Every distinct chunk in the index, results and what gc has yet to
	 * take included: raw, and as stored. */
	if (!rc)
		rc = vd_store_chunks(e->store, du_chunk, &ch);
	/* What is really on disk: every pack file, results included. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/packs", e->state);
	DIR *d = rc ? NULL : opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".pack") || !strncmp(de->d_name, "tmp-", 4))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0) {
			/* What it takes on disk: gc punches dead ranges out of
			 * mostly live packs (engine_gc.c). */
			packs++;
			pack_bytes += (json_int_t)st.st_blocks * 512;
		}
	}
	if (d)
		closedir(d);
	if (!rc) {
		*reply = json_pack("{s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "tasks", arr,
				   "store", "logical", all_logical, "stored", all_stored,
				   "compressed", all_compressed, "chunks", ch.n, "chunks_raw", ch.raw,
				   "chunks_stored", ch.stored, "packs", packs, "pack_bytes", pack_bytes);
		rc = *reply ? 0 : -ENOMEM;
	}
	/* What gc would free now: its dry run, retention included. */
	json_t *g = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	if (!rc && vd_engine_gc(&g, &why, e, true) == 0)
		json_object_set(json_object_get(*reply, "store"), "reclaimable",
				json_object_get(g, "bytes_reclaimed"));
	json_decref(g);
	vd_buf_release(&why);
	json_decref(arr);
	vd_strv_release(&tasks);
	return rc;
}

/* ---- GET /v1/diff/<a>/<b> ---------------------------------------------- */

/* The first task that has id as a version. */
static int task_of(char task[256], vd_engine *e, const char *id)
{
	struct vd_strv t = { 0 };
	int rc = suffixes(&t, e, "vi", id);
	if (!rc && !t.n)
		rc = -ENOENT;
	if (!rc)
		snprintf(task, 256, "%s", t.v[0]);
	vd_strv_release(&t);
	return rc;
}

/* A sorted, de-duplicated list of (id, len) for set comparisons. */
struct idset {
	struct vd_extent *x;
	size_t n;
};

static int ext_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vd_extent *)a)->id, ((const struct vd_extent *)b)->id);
}

static int idset_of(struct idset *s, const struct vd_manifest *m)
{
	size_t total = 0, k = 0;
	for (size_t i = 0; i < m->nfiles; i++)
		total += m->files[i].n;
	if (!(s->x = malloc((total + 1) * sizeof *s->x)))
		return -ENOMEM;
	for (size_t i = 0; i < m->nfiles; i++)
		for (size_t j = 0; j < m->files[i].n; j++)
			s->x[k++] = m->files[i].ext[j];
	qsort(s->x, k, sizeof *s->x, ext_cmp);
	s->n = 0;
	for (size_t i = 0; i < k; i++)
		if (!s->n || strcmp(s->x[s->n - 1].id, s->x[i].id))
			s->x[s->n++] = s->x[i];
	return 0;
}

/* Count shared / only-in-a / only-in-b over two sorted sets. */
static void compare(json_int_t c[3], json_int_t bytes[3], const struct idset *a,
		    const struct idset *b)
{
	size_t i = 0, j = 0;
	while (i < a->n || j < b->n) {
		int d = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->x[i].id, b->x[j].id);
		int slot = d == 0 ? 0 : d < 0 ? 2 : 1;   /* shared, added, removed */
		const struct vd_extent *x = d <= 0 ? &a->x[i] : &b->x[j];
		c[slot]++;
		bytes[slot] += (json_int_t)x->len;
		if (d <= 0)
			i++;
		if (d >= 0)
			j++;
	}
}

/* Plan units of data with cfg; their IDs as an idset (len = unit bytes). */
static int unit_set(struct idset *s, vd_engine *e, const struct vd_config *cfg,
		    const char *data)
{
	struct vd_run *r = calloc(1, sizeof *r);
	int rc = r ? vd_engine_manifest_get(&r->man, e, data) : -ENOMEM;
	if (!rc) {
		r->cfg = *cfg;
		rc = vd_engine_run_plan(r, e);
	}
	if (!rc && !(s->x = malloc((r->nunits + 1) * sizeof *s->x)))
		rc = -ENOMEM;
	for (size_t u = 0; !rc && u < r->nunits; u++) {
		memcpy(s->x[u].id, r->units[u].id, VD_ID_SIZE);
		s->x[u].len = r->units[u].bytes;
	}
	if (!rc) {
		qsort(s->x, r->nunits, sizeof *s->x, ext_cmp);
		s->n = r->nunits;
	}
	vd_engine_run_discard(r);
	return rc;
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vd_file *)a)->path, ((const struct vd_file *)b)->path);
}

static bool same_file(const struct vd_file *a, const struct vd_file *b)
{
	if (a->id[0] && b->id[0])
		return !strcmp(a->id, b->id);
	if (a->n != b->n || a->size != b->size)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->ext[i].id, b->ext[i].id))
			return false;
	return true;
}

int vd_engine_api_diff(json_t **reply, struct vd_buf *why, vd_engine *e,
		       const char *a, const char *b)
{
	struct vd_manifest *ma = NULL, *mb = NULL;
	struct idset ca = { 0 }, cb = { 0 }, ua = { 0 }, ub = { 0 };
	struct vd_config cfg;
	char ta[256], tb[256];
	int rc;
	if (!vd_id_valid(a) || !vd_id_valid(b)) {
		vd_buf_adds(why, "not a valid ID");
		return -EINVAL;
	}
	if (task_of(ta, e, a) || task_of(tb, e, b)) {
		vd_buf_addf(why, "no version has the ID %s", task_of(ta, e, a) ? a : b);
		return -ENOENT;
	}
	if ((rc = vd_engine_manifest_get(&ma, e, a)) || (rc = vd_engine_manifest_get(&mb, e, b)))
		goto out;
	if ((rc = vd_engine_task_config(&cfg, NULL, e, tb)))
		goto out;
	json_int_t files[4] = { 0 };   /* shared, changed, added, removed */
	qsort(ma->files, ma->nfiles, sizeof *ma->files, file_cmp);
	qsort(mb->files, mb->nfiles, sizeof *mb->files, file_cmp);
	for (size_t i = 0, j = 0; i < ma->nfiles || j < mb->nfiles;) {
		int d = i == ma->nfiles ? 1 : j == mb->nfiles ? -1
			: strcmp(ma->files[i].path, mb->files[j].path);
		if (d == 0)
			files[same_file(&ma->files[i], &mb->files[j]) ? 0 : 1]++;
		else
			files[d > 0 ? 2 : 3]++;
		if (d <= 0)
			i++;
		if (d >= 0)
			j++;
	}
	json_int_t chunks[3] = { 0 }, bytes[3] = { 0 }, units[3] = { 0 }, ubytes[3] = { 0 };
	if ((rc = idset_of(&ca, ma)) || (rc = idset_of(&cb, mb)))
		goto out;
	compare(chunks, bytes, &ca, &cb);
	if ((rc = unit_set(&ua, e, &cfg, a)) || (rc = unit_set(&ub, e, &cfg, b)))
		goto out;
	compare(units, ubytes, &ua, &ub);
	*reply = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}, "
			   "s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I}}",
			   "a", a, "b", b, "task", tb,
			   "files", "shared", files[0], "changed", files[1], "added", files[2],
			   "removed", files[3],
			   "chunks", "shared", chunks[0], "added", chunks[1], "removed", chunks[2],
			   "bytes", "shared", bytes[0], "added", bytes[1], "removed", bytes[2],
			   "units", "shared", units[0], "added", units[1], "removed", units[2],
			   "a", (json_int_t)ua.n, "b", (json_int_t)ub.n);
	rc = *reply ? 0 : -ENOMEM;
out:
	vd_manifest_free(ma);
	vd_manifest_free(mb);
	free(ca.x);
	free(cb.x);
	free(ua.x);
	free(ub.x);
	return rc;
}
