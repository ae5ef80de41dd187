/*
 * engine_render.c - what people read: status, meta.json, log, result.csv,
 * the README, executors' state, /v1/status and /metrics.
 *
 * A version's "current run" is the run of the newest code that has one (the
 * last entry of the version record's run list). An active run is described
 * from memory (it changes by the unit); a finished one from its record.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "engine_int.h"

/*
 * The code whose run a version shows: the task's current code when that
 * ran on the version (so that going back to an older code shows its
 * result again, from its run or memo), else the newest code that did. The
 * ID is copied into buf; NULL when no code ran on the version.
 */
const char *vd_engine_version_code(char buf[VD_ID_SIZE], vd_engine *e, const char *task,
				   const json_t *v)
{
	json_t *runs = json_object_get(v, "runs"), *t = NULL, *c;
	size_t n = json_array_size(runs), i;
	const char *pick = n ? json_string_value(json_array_get(runs, n - 1)) : NULL;
	if (n > 1 && vd_engine_task_json(&t, e, task) == 0) {
		const char *cur = json_string_value(json_object_get(t, "code"));
		json_array_foreach(runs, i, c)
			if (cur && json_is_string(c) && !strcmp(json_string_value(c), cur))
				pick = json_string_value(c);
	}
	if (pick)
		snprintf(buf, VD_ID_SIZE, "%s", pick);
	json_decref(t);
	return pick ? buf : NULL;
}

static int run_json(json_t **out, vd_engine *e, const char *task, const char *data,
		    const char *code)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_buf_addf(&k, "r/%s/%s/%s", task, data, code);
	int rc = vd_catalog_get_json(out, e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

static struct vd_run *active_run(vd_engine *e, const char *task, const char *data,
				 const char *code)
{
	for (struct vd_run *r = e->runs; r; r = r->next)
		if (!strcmp(r->data, data) && !strcmp(r->code, code) &&
		    !strcmp(r->task, task))
			return r;
	return NULL;
}

static const char *exec_state(vd_engine *e, struct vd_executor *x);

/* Is there an executor around that could take a run of this level? One
 * that is gone, revoked or quarantined does not count. */
static bool capable_executor(vd_engine *e, int level)
{
	for (struct vd_executor *x = e->execs; x; x = x->next)
		if (x->level >= level && vd_engine_exec_usable(e, x) &&
		    strcmp(exec_state(e, x), "gone"))
			return true;
	return false;
}

/* One run's status line. -ENOENT when (task, data, code) has no run. */
static int run_status(struct vd_buf *out, vd_engine *e, const char *task,
		      const char *data, const char *code)
{
	json_t *rj = NULL;
	int rc = 0;
	pthread_mutex_lock(&e->lock);
	struct vd_run *r = active_run(e, task, data, code);
	if (r) {
		if (r->finishing)
			rc = vd_buf_addf(out, "running %zu/%zu units (combining results)",
					 r->ndone, r->nunits);
		else if (!capable_executor(e, r->cfg.level))
			rc = vd_buf_addf(out, "%s %zu/%zu units: waiting for an "
					 "executor of level \u2265 %d",
					 r->started ? "running" : "queued", r->ndone,
					 r->nunits, r->cfg.level);
		else if (r->started)
			rc = vd_buf_addf(out, "running %zu/%zu units", r->ndone, r->nunits);
		else
			rc = vd_buf_addf(out, "queued %zu/%zu units", r->ndone, r->nunits);
		pthread_mutex_unlock(&e->lock);
		/* Why nothing moves, when the disk is why. */
		if (!rc)
			rc = vd_engine_disk_status(out, e);
		return rc ? rc : vd_buf_add(out, "\n", 1);
	}
	pthread_mutex_unlock(&e->lock);
	if ((rc = run_json(&rj, e, task, data, code)))
		return rc;
	const char *state = json_string_value(json_object_get(rj, "state"));
	if (state && !strcmp(state, "done")) {
		json_int_t t0 = json_integer_value(json_object_get(rj, "started"));
		json_int_t t1 = json_integer_value(json_object_get(rj, "finished"));
		if (!t0)
			t0 = json_integer_value(json_object_get(rj, "created"));
		json_t *d = json_object_get(rj, "duration_ms");
		rc = vd_buf_addf(out, "done %lld/%lld units in %.1f s\n",
				 (long long)json_integer_value(json_object_get(rj, "units")),
				 (long long)json_integer_value(json_object_get(rj, "units")),
				 (double)(d ? json_integer_value(d) : t1 - t0) / 1000.0);
	} else if (state && !strcmp(state, "failed")) {
		const char *err = json_string_value(json_object_get(rj, "error"));
		rc = vd_buf_addf(out, "failed: %s\n", err ? err : "unknown reason");
	} else {
		/* queued in the catalog but not in memory: it could not be
		 * planned (logged at start). */
		rc = vd_buf_adds(out, "queued: waiting to be planned (see the daemon log)\n");
	}
	json_decref(rj);
	return rc;
}

static int render_status(struct vd_buf *out, vd_engine *e, const char *task,
			 const char *data, const json_t *v)
{
	char cbuf[VD_ID_SIZE];
	const char *code = vd_engine_version_code(cbuf, e, task, v);
	int rc;
	if (!code)
		rc = vd_buf_adds(out, "queued: waiting for a function\n");
	else
		rc = run_status(out, e, task, data, code);
	/* vdfs fsck --repair found chunks of it missing or corrupt: reading
	 * those ranges fails with EIO, and status says so on the same line,
	 * so that what parses its first word still can. */
	json_t *dmg = json_object_get(v, "damaged");
	if (!rc && dmg) {
		if (out->len && out->data[out->len - 1] == '\n')
			out->data[--out->len] = '\0';
		rc = vd_buf_addf(out, "; DAMAGED: %lld chunk(s) missing or corrupt (vdfs fsck)\n",
				 (long long)json_integer_value(json_object_get(dmg, "chunks")));
	}
	return rc;
}

int vd_engine_version_status(struct vd_buf *out, vd_engine *e, const char *task,
			     const char *data, const json_t *v)
{
	return render_status(out, e, task, data, v);
}

int vd_engine_run_json(json_t **out, vd_engine *e, const char *task, const char *data,
		       const char *code)
{
	return run_json(out, e, task, data, code);
}

/* Next to each epoch-milliseconds time in o, the same as an ISO 8601
 * string: "time" (a version's seal) as "sealed_at", "created",
 * "started", "finished" as "<name>_at". */
static void iso_times(json_t *o)
{
	static const char *const keys[][2] = { { "time", "sealed_at" },
					       { "created", "created_at" },
					       { "started", "started_at" },
					       { "finished", "finished_at" } };
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		json_t *t = json_object_get(o, keys[i][0]);
		if (!json_is_integer(t) || json_integer_value(t) <= 0)
			continue;
		char when[32];
		vd_format_time(when, (int64_t)json_integer_value(t));
		json_object_set_new(o, keys[i][1], json_string(when));
	}
}

static int render_meta(struct vd_buf *out, vd_engine *e, const char *task,
		       const char *data, json_t *v)
{
	struct vd_buf st = VD_BUF_INIT(4096);
	json_t *m = json_deep_copy(v), *runs = json_array(), *rj = NULL;
	int rc = 0;
	if (!m || !runs) {
		rc = -ENOMEM;
		goto out;
	}
	json_object_set_new(m, "task", json_string(task));
	json_object_del(m, "runs");
	char cbuf[VD_ID_SIZE];
	const char *code = vd_engine_version_code(cbuf, e, task, v);
	json_object_set_new(m, "code_id", code ? json_string(code) : json_null());
	render_status(&st, e, task, data, v);
	if (st.len && st.data[st.len - 1] == '\n')
		st.data[--st.len] = '\0';
	json_object_set_new(m, "status", json_string(vd_buf_cstr(&st)));
	json_t *codes = json_object_get(v, "runs");
	size_t i;
	json_t *c;
	json_array_foreach(codes, i, c) {
		const char *cid = json_string_value(c);
		json_t *one = NULL;
		if (!cid || run_json(&one, e, task, data, cid))
			continue;
		json_object_del(one, "task");
		json_object_del(one, "data_id");
		json_t *res = json_object_get(one, "result");
		if (res) {
			/* The extents are internal; name and size are enough. */
			json_t *brief = json_pack("{s:O, s:O}", "data_id",
						  json_object_get(res, "data_id"), "size",
						  json_object_get(res, "size"));
			json_object_set_new(one, "result", brief);
		}
		pthread_mutex_lock(&e->lock);
		struct vd_run *r = active_run(e, task, data, cid);
		if (r) {
			json_object_set_new(one, "state", json_string(r->started ? "running"
								      : "queued"));
			json_object_set_new(one, "units", json_integer((json_int_t)r->nunits));
			json_object_set_new(one, "units_done", json_integer((json_int_t)r->ndone));
		}
		pthread_mutex_unlock(&e->lock);
		json_int_t t0 = json_integer_value(json_object_get(one, "started"));
		json_int_t t1 = json_integer_value(json_object_get(one, "finished"));
		if (t0 && t1 && !json_object_get(one, "duration_ms"))
			json_object_set_new(one, "duration_ms", json_integer(t1 - t0));
		iso_times(one);
		if (code && !strcmp(cid, code)) {
			/* The newest run's record also shows at the top. */
			rj = json_incref(one);
		}
		json_array_append_new(runs, one);
	}
	json_object_set_new(m, "runs", runs);
	runs = NULL;
	iso_times(m);
	if (rj) {
		static const char *lift[] = { "units", "units_done", "executors", "result",
					      "started", "finished", "duration_ms",
					      "started_at", "finished_at" };
		for (size_t j = 0; j < sizeof lift / sizeof *lift; j++) {
			json_t *x = json_object_get(rj, lift[j]);
			if (x)
				json_object_set(m, lift[j], x);
		}
	}
	char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	rc = vd_buf_adds(out, text);
	if (!rc)
		rc = vd_buf_add(out, "\n", 1);
	free(text);
out:
	json_decref(rj);
	json_decref(runs);
	json_decref(m);
	vd_buf_release(&st);
	return rc;
}

static int add_log_line(void *ctx, const char *key, size_t klen, const char *val,
			size_t vlen)
{
	struct vd_buf *out = ctx;
	int rc = vd_buf_add(out, val, vlen);
	return rc ? rc : vd_buf_add(out, "\n", 1);
}

/*
 * While the state disk is full, a version whose run is under way ends its
 * log with a line saying so. It is not stored: a full disk is exactly when
 * the catalog cannot take a log line, and the line is true only while the
 * condition lasts. (The daemon's log keeps when it began and ended.)
 */
static int log_disk_line(struct vd_buf *out, vd_engine *e, const char *task,
			 const char *data_id, const json_t *v)
{
	char cbuf[VD_ID_SIZE];
	const char *code = vd_engine_version_code(cbuf, e, task, v);
	if (!code || !atomic_load(&e->disk_full))
		return 0;
	pthread_mutex_lock(&e->lock);
	bool active = active_run(e, task, data_id, code) != NULL;
	pthread_mutex_unlock(&e->lock);
	if (!active)
		return 0;
	char when[32];
	vd_format_time(when, vd_now_ms());
	int rc = vd_buf_addf(out, "%s code=%.8s run", when, code);
	if (!rc)
		rc = vd_engine_disk_status(out, e);
	return rc ? rc : vd_buf_adds(out, "; results are sent again once there is space\n");
}

int vd_engine_render(struct vd_buf *out, vd_engine *e, const char *task,
		     const char *data_id, enum vd_gen which)
{
	json_t *v = NULL;
	int rc = vd_engine_version_json(&v, e, task, data_id);
	if (rc)
		return rc;
	switch (which) {
	case VD_GEN_STATUS:
		rc = render_status(out, e, task, data_id, v);
		break;
	case VD_GEN_META:
		rc = render_meta(out, e, task, data_id, v);
		break;
	case VD_GEN_LOG: {
		struct vd_buf k = VD_BUF_INIT(1024);
		vd_buf_addf(&k, "lg/%s/%s/", task, data_id);
		rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), add_log_line, out);
		vd_buf_release(&k);
		if (!rc)
			rc = log_disk_line(out, e, task, data_id, v);
		break;
	}
	default:
		rc = -EINVAL;
	}
	json_decref(v);
	return rc;
}

int vd_engine_run_result(struct vd_file **out, vd_engine *e, const char *task,
			 const char *data_id, const char *code_id)
{
	json_t *rj = NULL;
	struct vd_file *f = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_id_valid(data_id) || !vd_id_valid(code_id))
		return -ENOENT;
	if ((rc = run_json(&rj, e, task, data_id, code_id)))
		goto out;
	json_t *res = json_object_get(rj, "result");
	if (!res) {
		rc = -ENOENT;
		goto out;
	}
	if (!(f = calloc(1, sizeof *f)) || !(f->path = strdup("result.csv"))) {
		rc = -ENOMEM;
		goto out;
	}
	const char *rid = json_string_value(json_object_get(res, "data_id"));
	if (rid && vd_id_valid(rid))
		memcpy(f->id, rid, VD_ID_SIZE);
	if ((rc = vd_engine_extents_parse(f, json_object_get(res, "chunks"))))
		goto out;
	*out = f;
	f = NULL;
out:
	vd_file_free(f);
	json_decref(rj);
	return rc;
}

int vd_engine_result_get(struct vd_file **out, vd_engine *e, const char *task,
			 const char *data_id)
{
	json_t *v = NULL;
	int rc = vd_engine_version_json(&v, e, task, data_id);
	if (rc)
		return rc;
	char cbuf[VD_ID_SIZE];
	const char *code = vd_engine_version_code(cbuf, e, task, v);
	rc = code ? vd_engine_run_result(out, e, task, data_id, code) : -ENOENT;
	json_decref(v);
	return rc;
}

/* Log lines of one run: they carry "code=<first 8 of its ID>". */
struct log_filter {
	struct vd_buf *out;
	char tag[16];
};

static int add_run_log_line(void *ctx, const char *key, size_t klen, const char *val,
			    size_t vlen)
{
	struct log_filter *lf = ctx;
	size_t tl = strlen(lf->tag);
	if (!memmem(val, vlen < 64 ? vlen : 64, lf->tag, tl))
		return 0;
	return add_log_line(lf->out, key, klen, val, vlen);
}

int vd_engine_run_render(struct vd_buf *out, vd_engine *e, const char *task,
			 const char *data_id, const char *code_id, enum vd_gen which)
{
	json_t *rj = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_id_valid(data_id) || !vd_id_valid(code_id))
		return -ENOENT;
	if ((rc = run_json(&rj, e, task, data_id, code_id)))
		return rc;
	switch (which) {
	case VD_GEN_STATUS:
		rc = run_status(out, e, task, data_id, code_id);
		break;
	case VD_GEN_LOG: {
		struct vd_buf k = VD_BUF_INIT(1024);
		struct log_filter lf = { out, "" };
		snprintf(lf.tag, sizeof lf.tag, " code=%.8s ", code_id);
		vd_buf_addf(&k, "lg/%s/%s/", task, data_id);
		rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), add_run_log_line, &lf);
		vd_buf_release(&k);
		break;
	}
	case VD_GEN_META: {
		struct vd_buf st = VD_BUF_INIT(4096);
		json_t *res = json_object_get(rj, "result");
		if (res) {
			json_t *brief = json_pack("{s:O, s:O}", "data_id",
						  json_object_get(res, "data_id"), "size",
						  json_object_get(res, "size"));
			json_object_set_new(rj, "result", brief);
		}
		run_status(&st, e, task, data_id, code_id);
		if (st.len && st.data[st.len - 1] == '\n')
			st.data[--st.len] = '\0';
		json_object_set_new(rj, "status", json_string(vd_buf_cstr(&st)));
		vd_buf_release(&st);
		char *text = json_dumps(rj, JSON_INDENT(2) | JSON_SORT_KEYS);
		rc = text ? vd_buf_adds(out, text) : -ENOMEM;
		if (!rc)
			rc = vd_buf_add(out, "\n", 1);
		free(text);
		break;
	}
	default:
		rc = -EINVAL;
	}
	json_decref(rj);
	return rc;
}

int vd_engine_run_list(struct vd_strv *out, vd_engine *e, const char *task,
		       const char *data_id)
{
	json_t *v = NULL, *c;
	size_t i;
	int rc = vd_engine_version_json(&v, e, task, data_id);
	if (rc)
		return rc;
	json_array_foreach(json_object_get(v, "runs"), i, c)
		if (!rc && json_string_value(c))
			rc = vd_strv_push(out, json_string_value(c));
	json_decref(v);
	return rc;
}

int vd_engine_code_list(struct vd_strv *out, vd_engine *e, const char *task)
{
	json_t *t = NULL, *c;
	size_t i;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	json_array_foreach(json_object_get(t, "codes"), i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		if (!rc && id)
			rc = vd_strv_push(out, id);
	}
	json_decref(t);
	return rc;
}

int vd_engine_code_read(struct vd_buf *out, vd_engine *e, const char *task,
			const char *code_id)
{
	struct vd_strv codes = { 0 };
	struct vd_buf why = VD_BUF_INIT(256);
	bool mine = false;
	int rc = vd_engine_code_list(&codes, e, task);
	for (size_t i = 0; !rc && i < codes.n; i++)
		mine = mine || !strcmp(codes.v[i], code_id);
	if (!rc)
		rc = mine ? vd_engine_api_code(out, &why, e, code_id) : -ENOENT;
	vd_strv_release(&codes);
	vd_buf_release(&why);
	return rc;
}

int vd_engine_render_readme(struct vd_buf *out, vd_engine *e)
{
	(void)e;
	int rc = vd_buf_adds(out,
		"vdfs - a versioned data factory\n"
		"\n"
		"  mkdir tasks/NAME                 make a function (a task)\n"
		"  cp script tasks/NAME/function    its code; each new content is a code version\n"
		"  cp settings tasks/NAME/config    optional: key = value lines\n");
	/* The keys from the table the parser accepts (config_keys.c), so that
	 * this list never misses one; wrapped like the lines around it. */
	struct vd_buf line = VD_BUF_INIT(256);
	const char *indent = "                                   ";
	bool fresh = true;   /* nothing on this line yet */
	for (const struct vd_config_key *k = vd_config_keys; !rc && k->name; k++) {
		size_t n = strlen(k->name);
		bool prefix = n && k->name[n - 1] == '.';
		bool last = !k[1].name;
		if (line.len + n + 6 > 50) {
			/* Continuation lines line up after the opening "(". */
			rc = vd_buf_addf(out, "%s%s\n", indent, vd_buf_cstr(&line));
			vd_buf_reset(&line);
			vd_buf_adds(&line, " ");
			fresh = true;
		}
		vd_buf_addf(&line, "%s%s%s%s", k == vd_config_keys ? "(" : fresh ? "" : " ",
			    k->name, prefix ? "NAME" : "", last ? ")" : ",");
		fresh = false;
	}
	if (!rc && line.len)
		rc = vd_buf_addf(out, "%s%s\n", indent, vd_buf_cstr(&line));
	vd_buf_release(&line);
	if (rc)
		return rc;
	return vd_buf_adds(out,
		"  ls tasks/NAME/code/              every code version, by code ID\n"
		"  cp data tasks/NAME/data/         submit a file; cp -r submits a tree\n"
		"  ls tasks/NAME/versions/          every submitted content, by data ID\n"
		"  cat tasks/NAME/latest/status     queued | running | done | failed\n"
		"  cat tasks/NAME/latest/result.csv the result, once done\n"
		"  cat tasks/NAME/latest/meta.json  what produced it: code ID, sizes, times\n"
		"  cat tasks/NAME/latest/log        one line per unit: executor, exit, time\n"
		"  ls tasks/NAME/latest/runs/       one result per code version that ran on it\n"
		"  rm -r tasks/NAME/versions/ID     delete a version (EBUSY while a run reads it)\n"
		"  rm -r tasks/NAME                 delete a task; space returns at vdfs gc\n"
		"  ls executors/                    the machines lending their cores\n"
		"\n"
		"Executors: vdfs-executor --server URL --token-file STATE/token\n"
		"History, lineage, diffs, usage: vdfs log | lineage | diff | du --state STATE\n"
		"Lifecycle: vdfs rm | pin | unpin | gc | fsck --state STATE\n"
		"A version's files never change; they go with the version.\n");
}

int vd_engine_executor_list(struct vd_strv *out, vd_engine *e)
{
	int rc = 0;
	pthread_mutex_lock(&e->lock);
	for (struct vd_executor *x = e->execs; x && !rc; x = x->next)
		rc = vd_strv_push(out, x->name);
	pthread_mutex_unlock(&e->lock);
	if (!rc)
		vd_strv_sort(out);
	return rc;
}

/* How long ago an executor was seen, in ms; -1 when never since start. */
static int64_t seen_ago(const struct vd_executor *x)
{
	return x->last_seen_ms == INT64_MIN ? -1 : vd_mono_ms() - x->last_seen_ms;
}

/*
 * What an executor is doing, as far as the daemon can tell. A live one is
 * never silent for long: while it holds leases it renews them every third
 * of a lease, and otherwise it is always in a long-poll (held at most half
 * a lease) or about to send the next. So it is gone when it said it was
 * leaving, when it holds no lease and was silent for half a lease past its
 * last request and past the end of the poll it was in, or when it was not
 * heard from since this daemon started. Holding leases, it is busy until
 * they expire, a lease time after its last heartbeat, and then gone: either
 * way within a lease time of its end.
 */
static const char *exec_state(vd_engine *e, struct vd_executor *x)
{
	int64_t until = x->last_seen_ms > x->poll_until_ms ? x->last_seen_ms
							    : x->poll_until_ms;
	if (x->revoked)
		return "revoked";
	if (x->left)
		return "gone";
	if (x->active > 0)
		return "busy";
	if (x->last_seen_ms == INT64_MIN || vd_mono_ms() > until + e->lease_ms / 2)
		return "gone";
	return "idle";
}

int vd_engine_executor_render(struct vd_buf *out, vd_engine *e, const char *name)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&e->lock);
	for (struct vd_executor *x = e->execs; x; x = x->next) {
		if (strcmp(x->name, name))
			continue;
		char reg[32];
		int64_t ago = seen_ago(x);
		vd_format_time(reg, x->registered_ms);
		bool quarantined = !vd_engine_exec_usable(e, x) && !x->revoked &&
				   x->quarantine_until;
		rc = vd_buf_addf(out, "name: %s\nstate: %s\nlevel: %d\nslots: %d\n"
				 "running: %d\nunits_done: %llu\nunits_failed: %llu\n"
				 "infra_failed: %llu\nflagged: %llu\n",
				 x->name, exec_state(e, x), x->level, x->slots, x->active,
				 (unsigned long long)x->units_done,
				 (unsigned long long)x->units_failed,
				 (unsigned long long)x->infra_failed,
				 (unsigned long long)x->flagged);
		if (quarantined)
			vd_buf_addf(out, "quarantined: yes, %.0f s more (%s)\n",
				    (double)(x->quarantine_until - vd_mono_ms()) / 1000.0,
				    x->quarantine_why);
		else
			vd_buf_adds(out, "quarantined: no\n");
		if (ago >= 0)
			vd_buf_addf(out, "last_seen: %.1f s ago\n", (double)ago / 1000.0);
		else
			vd_buf_adds(out, "last_seen: not since the daemon started\n");
		vd_buf_addf(out, "registered: %s\nhost: %s\n", reg, x->host ? x->host : "{}");
		break;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* ---- operators ------------------------------------------------------- */

struct run_counts {
	json_int_t queued, done, failed;
};

static int count_run(void *ctx, const char *key, size_t klen, const char *val,
		     size_t vlen)
{
	struct run_counts *c = ctx;
	if (memmem(val, vlen, "\"state\":\"done\"", 14))
		c->done++;
	else if (memmem(val, vlen, "\"state\":\"failed\"", 16))
		c->failed++;
	else
		c->queued++;
	return 0;
}

/* One active run for /v1/status: its units by state and, once some are
 * done, an ETA: the wall time per unit done so far (which already counts
 * the executors working side by side) times the units left. Lock held. */
static json_t *run_progress(vd_engine *e, const struct vd_run *r)
{
	json_int_t leased = 0;
	for (size_t u = 0; u < r->nunits; u++)
		leased += r->units[u].state == VD_UNIT_LEASED;
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "data_id", r->data,
			      "code_id", r->code, "units", (json_int_t)r->nunits, "done",
			      (json_int_t)r->ndone, "running", leased, "queued",
			      (json_int_t)(r->nunits - r->ndone) - leased, "combining",
			      r->finishing);
	int64_t t0 = vd_engine_run_t0(r);
	if (j && r->started && r->ndone > 0 && r->ndone < r->nunits && t0) {
		double per = (double)(vd_now_ms() - t0) / (double)r->ndone;
		json_object_set_new(j, "eta_s", json_real(per * (double)(r->nunits - r->ndone) /
							   1000.0));
	}
	(void)e;
	return j;
}

int vd_engine_api_status(json_t **reply, vd_engine *e)
{
	struct vd_strv tasks = { 0 };
	json_t *r = NULL, *tj = json_array(), *xj = json_array();
	int rc = vd_engine_task_list(&tasks, e);
	if (rc || !tj || !xj) {
		rc = rc ? rc : -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < tasks.n; i++) {
		struct vd_strv ids = { 0 };
		struct vd_buf k = VD_BUF_INIT(1024);
		struct run_counts c = { 0 };
		json_int_t running = 0;
		vd_engine_version_list(&ids, e, tasks.v[i]);
		vd_buf_addf(&k, "r/%s/", tasks.v[i]);
		vd_catalog_scan(e->cat, vd_buf_cstr(&k), count_run, &c);
		json_t *active = json_array(), *settling = json_array();
		int64_t now = vd_mono_ms();
		pthread_mutex_lock(&e->lock);
		for (struct vd_run *run = e->runs; run; run = run->next) {
			if (strcmp(run->task, tasks.v[i]))
				continue;
			if (run->started)
				running++;
			json_array_append_new(active, run_progress(e, run));
		}
		for (struct vd_settling *s = e->settling; s; s = s->next)
			if (!strcmp(s->task, tasks.v[i]))
				json_array_append_new(settling, json_pack("{s:s, s:I, s:I, s:I}",
					"name", s->name, "files", (json_int_t)s->files, "bytes",
					(json_int_t)s->bytes, "seals_in_ms", (json_int_t)(s->seals_at ?
					(s->seals_at > now ? s->seals_at - now : 0) : -1)));
		pthread_mutex_unlock(&e->lock);
		json_array_append_new(tj, json_pack("{s:s, s:I, s:{s:I, s:I, s:I, s:I}, s:o, s:o}",
			"name", tasks.v[i], "versions", (json_int_t)ids.n, "runs",
			"queued", c.queued - running, "running", running, "done", c.done,
			"failed", c.failed, "active", active, "settling", settling));
		vd_strv_release(&ids);
		vd_buf_release(&k);
	}
	json_int_t pending = 0, leased = 0;
	pthread_mutex_lock(&e->lock);
	for (struct vd_executor *x = e->execs; x; x = x->next) {
		bool quarantined = !vd_engine_exec_usable(e, x) && !x->revoked &&
				   x->quarantine_until;
		json_array_append_new(xj, json_pack("{s:s, s:i, s:i, s:s, s:I, s:I, s:I, "
			"s:I, s:I, s:i, s:b}",
			"name", x->name, "level", x->level, "slots", x->slots, "state",
			exec_state(e, x), "last_seen_ms", (json_int_t)seen_ago(x),
			"units_done", (json_int_t)x->units_done, "units_failed",
			(json_int_t)x->units_failed, "infra_failed",
			(json_int_t)x->infra_failed, "flagged", (json_int_t)x->flagged,
			"running", x->active, "quarantined", quarantined));
	}
	for (struct vd_run *run = e->runs; run; run = run->next)
		for (size_t u = 0; u < run->nunits; u++) {
			pending += run->units[u].state == VD_UNIT_PENDING;
			leased += run->units[u].state == VD_UNIT_LEASED;
		}
	pthread_mutex_unlock(&e->lock);
	r = json_pack("{s:I, s:O, s:O, s:{s:I, s:I}}", "uptime_s",
		      (json_int_t)((vd_mono_ms() - e->started_mono) / 1000), "tasks", tj,
		      "executors", xj, "units", "pending", pending, "leased", leased);
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	*reply = r;
out:
	json_decref(tj);
	json_decref(xj);
	vd_strv_release(&tasks);
	return rc;
}

int vd_engine_api_metrics(struct vd_buf *out, vd_engine *e)
{
	uint64_t pending = 0, leased = 0, runs = 0, execs = 0;
	pthread_mutex_lock(&e->lock);
	for (struct vd_run *r = e->runs; r; r = r->next, runs++)
		for (size_t u = 0; u < r->nunits; u++) {
			pending += r->units[u].state == VD_UNIT_PENDING;
			leased += r->units[u].state == VD_UNIT_LEASED;
		}
	for (struct vd_executor *x = e->execs; x; x = x->next)
		execs++;
	int rc = vd_buf_addf(out,
		"# HELP vdfs_units_leased_total Units handed to executors.\n"
		"# TYPE vdfs_units_leased_total counter\n"
		"vdfs_units_leased_total %llu\n"
		"# HELP vdfs_units_done_total Unit results accepted.\n"
		"# TYPE vdfs_units_done_total counter\n"
		"vdfs_units_done_total %llu\n"
		"# HELP vdfs_units_failed_total Failed unit attempts.\n"
		"# TYPE vdfs_units_failed_total counter\n"
		"vdfs_units_failed_total %llu\n"
		"# HELP vdfs_leases_expired_total Leases that ran out without a result.\n"
		"# TYPE vdfs_leases_expired_total counter\n"
		"vdfs_leases_expired_total %llu\n"
		"# HELP vdfs_results_late_total Results refused as late or duplicate.\n"
		"# TYPE vdfs_results_late_total counter\n"
		"vdfs_results_late_total %llu\n"
		"# HELP vdfs_versions_sealed_total Dataset versions sealed since start.\n"
		"# TYPE vdfs_versions_sealed_total counter\n"
		"vdfs_versions_sealed_total %llu\n"
		"# HELP vdfs_ingest_bytes_total Logical bytes of sealed versions.\n"
		"# TYPE vdfs_ingest_bytes_total counter\n"
		"vdfs_ingest_bytes_total %llu\n"
		"# HELP vdfs_stored_bytes_total Bytes newly written to the store by sealing.\n"
		"# TYPE vdfs_stored_bytes_total counter\n"
		"vdfs_stored_bytes_total %llu\n"
		"# HELP vdfs_units_pending Units waiting for an executor.\n"
		"# TYPE vdfs_units_pending gauge\n"
		"vdfs_units_pending %llu\n"
		"# HELP vdfs_units_leased Units being computed.\n"
		"# TYPE vdfs_units_leased gauge\n"
		"vdfs_units_leased %llu\n"
		"# HELP vdfs_runs_active Runs queued or running.\n"
		"# TYPE vdfs_runs_active gauge\n"
		"vdfs_runs_active %llu\n"
		"# HELP vdfs_straggler_copies_total Copies of slow units given to idle executors.\n"
		"# TYPE vdfs_straggler_copies_total counter\n"
		"vdfs_straggler_copies_total %llu\n"
		"# HELP vdfs_replica_mismatches_total Replicated results that lost the vote.\n"
		"# TYPE vdfs_replica_mismatches_total counter\n"
		"vdfs_replica_mismatches_total %llu\n"
		"# HELP vdfs_quarantines_total Executors quarantined for failing.\n"
		"# TYPE vdfs_quarantines_total counter\n"
		"vdfs_quarantines_total %llu\n"
		"# HELP vdfs_executors Registered executors.\n"
		"# TYPE vdfs_executors gauge\n"
		"vdfs_executors %llu\n",
		(unsigned long long)e->m_leased, (unsigned long long)e->m_accepted,
		(unsigned long long)e->m_failed, (unsigned long long)e->m_expired,
		(unsigned long long)e->m_late, (unsigned long long)e->m_versions,
		(unsigned long long)e->m_bytes_in, (unsigned long long)e->m_bytes_stored,
		(unsigned long long)pending, (unsigned long long)leased,
		(unsigned long long)runs, (unsigned long long)e->m_copies,
		(unsigned long long)e->m_mismatches, (unsigned long long)e->m_quarantines,
		(unsigned long long)execs);
	uint64_t up = e->m_upload_bytes, up_new = e->m_upload_new_bytes;
	uint64_t reqs = e->m_result_requests, results = e->m_results_in;
	uint64_t inl = e->m_inline_bytes;
	pthread_mutex_unlock(&e->lock);
	if (!rc)
		rc = vd_buf_addf(out,
			"# HELP vdfs_upload_chunk_bytes_total Chunk bytes received by POST /v1/chunks.\n"
			"# TYPE vdfs_upload_chunk_bytes_total counter\n"
			"vdfs_upload_chunk_bytes_total %llu\n"
			"# HELP vdfs_upload_new_bytes_total Of those, bytes the store did not hold yet.\n"
			"# TYPE vdfs_upload_new_bytes_total counter\n"
			"vdfs_upload_new_bytes_total %llu\n"
			"# HELP vdfs_state_disk_full 1 while writes to the state disk fail for want of space.\n"
			"# TYPE vdfs_state_disk_full gauge\n"
			"vdfs_state_disk_full %d\n"
			"# HELP vdfs_state_disk_free_bytes Bytes free on the state disk.\n"
			"# TYPE vdfs_state_disk_free_bytes gauge\n"
			"vdfs_state_disk_free_bytes %llu\n"
			"# HELP vdfs_catalog_syncs_total Catalog commits that waited for the disk.\n"
			"# TYPE vdfs_catalog_syncs_total counter\n"
			"vdfs_catalog_syncs_total %llu\n"
			"# HELP vdfs_result_requests_total Result requests (PUT of one, POST of several).\n"
			"# TYPE vdfs_result_requests_total counter\n"
			"vdfs_result_requests_total %llu\n"
			"# HELP vdfs_results_received_total Results in those requests.\n"
			"# TYPE vdfs_results_received_total counter\n"
			"vdfs_results_received_total %llu\n"
			"# HELP vdfs_lease_inline_bytes_total Chunk bytes sent inside lease replies.\n"
			"# TYPE vdfs_lease_inline_bytes_total counter\n"
			"vdfs_lease_inline_bytes_total %llu\n",
			(unsigned long long)up, (unsigned long long)up_new,
			atomic_load(&e->disk_full) ? 1 : 0,
			(unsigned long long)vd_engine_disk_free(e),
			(unsigned long long)vd_catalog_syncs(e->cat),
			(unsigned long long)reqs, (unsigned long long)results,
			(unsigned long long)inl);
	return rc;
}
