/*
 * engine_delete.c - deleting versions and tasks, pins, and retention.
 *
 * Deleting is a catalog change only: one write batch takes away the
 * version's records (v/ and its time-order key vo/, its runs r/ with their result index ri/, its run
 * log lg/, the vi/ index, the data names dn/ that point to it, leftover
 * lease records l/, and its manifest m/ when no other task has the same
 * content) and puts a tombstone vt/<data-id>/<task> in their place, so that
 * lineage still knows what the ID was. The chunks stay where they are until
 * vd_engine_gc finds that nothing reaches them any more: a crash at any
 * point leaves either the whole version or none of it, and never a version
 * whose bytes are gone.
 *
 * What may not be deleted: a version that a queued or running run reads
 * (-EBUSY: the run would lose its input, and an executor's result would
 * have nowhere to go; cancel it first), and a pinned one (-EPERM). Deleting
 * a task checks every version first and deletes nothing if one is refused.
 *
 * Retention (config `keep`) is applied by gc through
 * vd_engine_retention_expired: it never picks latest, a pinned version or a
 * busy one.
 *
 * Everything here runs under the engine lock, as every change to versions
 * and runs does (engine_int.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* Collect the keys under a prefix, for deleting them. */
static int collect_key(void *ctx, const char *key, size_t klen, const char *val,
		       size_t vlen)
{
	(void)val;
	(void)vlen;
	return vd_strv_pushn(ctx, key, klen);
}

static int del_prefix(vd_catalog_batch *b, vd_engine *e, const char *prefix)
{
	struct vd_strv keys = { 0 };
	int rc = vd_catalog_scan(e->cat, prefix, collect_key, &keys);
	for (size_t i = 0; !rc && i < keys.n; i++)
		vd_catalog_batch_del(b, keys.v[i]);
	vd_strv_release(&keys);
	return rc;
}

/* Is any active run (queued or running) reading this version? The first
 * one found is described in why. Lock held. */
static bool version_busy(struct vd_buf *why, vd_engine *e, const char *task,
			 const char *data)
{
	for (struct vd_run *r = e->runs; r; r = r->next) {
		if (strcmp(r->task, task) || strcmp(r->data, data))
			continue;
		vd_buf_addf(why, "version %.12s of task %s is the input of a %s run (code "
			    "%.12s); cancel it first (vdfs cancel %s %.12s)", data, task,
			    r->started ? "running" : "queued", r->code, task, data);
		return true;
	}
	return false;
}

static int pin_key(struct vd_buf *k, const char *task, const char *data)
{
	vd_engine_key(k, "pin", task, data, NULL);
	return 0;
}

int vd_engine_version_pinned(vd_engine *e, const char *task, const char *data_id)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	pin_key(&k, task, data_id);
	int rc = vd_catalog_has(e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

int vd_engine_version_tasks(struct vd_strv *out, vd_engine *e, const char *data_id)
{
	struct vd_buf k = VD_BUF_INIT(128);
	if (!vd_id_valid(data_id))
		return -EINVAL;
	vd_buf_addf(&k, "vi/%s/", data_id);
	int rc = vd_engine_list_suffix(out, e, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

/* Data names of task that point to data. */
struct names_ctx {
	const char *task, *data;
	struct vd_strv *keys;
};

static int name_points(void *ctx, const char *key, size_t klen, const char *val,
		       size_t vlen)
{
	struct names_ctx *c = ctx;
	if (vlen == VD_ID_LEN && !memcmp(val, c->data, VD_ID_LEN))
		return vd_strv_pushn(c->keys, key, klen);
	return 0;
}

/* Leftover lease records of runs of this version (a restart keeps them
 * until their run is planned again). */
static int lease_of(void *ctx, const char *key, size_t klen, const char *val,
		    size_t vlen)
{
	struct names_ctx *c = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *t = json_string_value(json_object_get(j, "task"));
	const char *d = json_string_value(json_object_get(j, "data_id"));
	int rc = 0;
	if (t && d && !strcmp(d, c->data) && !strcmp(t, c->task))
		rc = vd_strv_pushn(c->keys, key, klen);
	json_decref(j);
	return rc;
}

/*
 * Put the deletion of one version into b (lock held): everything listed at
 * the top of this file. Moving latest is the caller's (a task delete does
 * not need to).
 */
static int delete_into(vd_catalog_batch *b, vd_engine *e, const char *task,
		       const char *data, const json_t *v, int64_t now)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_strv keys = { 0 }, others = { 0 };
	struct names_ctx nc = { task, data, &keys };
	json_t *tomb = NULL, *c;
	size_t i;
	int rc = 0;

	json_array_foreach(json_object_get(v, "runs"), i, c) {
		const char *code = json_string_value(c);
		json_t *rj = NULL;
		if (!code || !vd_id_valid(code))
			continue;
		vd_engine_key(&k, "r", task, data, code);
		if (vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k)) == 0) {
			const char *rid = json_string_value(json_object_get(
				json_object_get(rj, "result"), "data_id"));
			if (rid && vd_id_valid(rid)) {
				struct vd_buf ri = VD_BUF_INIT(1024);
				vd_buf_addf(&ri, "ri/%s/%s/%s/%s", rid, task, data, code);
				vd_catalog_batch_del(b, vd_buf_cstr(&ri));
				vd_buf_release(&ri);
			}
			json_decref(rj);
		}
		vd_catalog_batch_del(b, vd_buf_cstr(&k));
	}
	/* Runs not listed in the record (there should be none) go too. */
	vd_engine_key(&k, "r", task, data, "");
	if ((rc = del_prefix(b, e, vd_buf_cstr(&k))))
		goto out;
	vd_engine_key(&k, "lg", task, data, "");
	if ((rc = del_prefix(b, e, vd_buf_cstr(&k))))
		goto out;
	vd_engine_key(&k, "dn", task, "", NULL);
	if ((rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), name_points, &nc)))
		goto out;
	if ((rc = vd_catalog_scan(e->cat, "l/", lease_of, &nc)))
		goto out;
	for (size_t j = 0; j < keys.n; j++)
		vd_catalog_batch_del(b, keys.v[j]);
	vd_engine_key(&k, "v", task, data, NULL);
	vd_catalog_batch_del(b, vd_buf_cstr(&k));
	vd_engine_order_del(b, task, data, json_integer_value(json_object_get(v, "time")));
	vd_engine_key(&k, "vi", data, task, NULL);
	vd_catalog_batch_del(b, vd_buf_cstr(&k));
	pin_key(&k, task, data);
	vd_catalog_batch_del(b, vd_buf_cstr(&k));
	/* The manifest is shared by every task with this content. */
	if ((rc = vd_engine_version_tasks(&others, e, data)))
		goto out;
	bool shared = false;
	for (size_t j = 0; j < others.n; j++)
		shared |= strcmp(others.v[j], task) != 0;
	if (!shared) {
		vd_engine_key(&k, "m", data, NULL, NULL);
		vd_catalog_batch_del(b, vd_buf_cstr(&k));
	}
	tomb = json_pack("{s:I, s:O*, s:O*, s:O*, s:O*}", "deleted", (json_int_t)now,
			 "name", json_object_get(v, "name"), "kind", json_object_get(v, "kind"),
			 "size", json_object_get(v, "size"), "time", json_object_get(v, "time"));
	if (!tomb) {
		rc = -ENOMEM;
		goto out;
	}
	vd_engine_key(&k, "vt", data, task, NULL);
	rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), tomb);
out:
	json_decref(tomb);
	vd_strv_release(&keys);
	vd_strv_release(&others);
	vd_buf_release(&k);
	return rc;
}

/* The newest version of task other than `except` (by seal time, from the
 * time-order index), or "" when none is left. Lock held. */
static int newest_other(char out[VD_ID_SIZE], vd_engine *e, const char *task,
			const char *except)
{
	struct vd_strv ids = { 0 };
	int rc = vd_engine_version_page(&ids, NULL, e, task, 0, 2);

	out[0] = '\0';
	for (size_t i = 0; !rc && i < ids.n; i++)
		if (strcmp(ids.v[i], except) && vd_id_valid(ids.v[i])) {
			memcpy(out, ids.v[i], VD_ID_SIZE);
			break;
		}
	vd_strv_release(&ids);
	return rc;
}

/* May this version be deleted now? Lock held. */
static int check_deletable(struct vd_buf *why, vd_engine *e, const char *task,
			   const char *data)
{
	int pinned = vd_engine_version_pinned(e, task, data);
	if (pinned < 0)
		return pinned;
	if (pinned) {
		vd_buf_addf(why, "version %.12s of task %s is pinned; unpin it first "
			    "(vdfs unpin %.12s)", data, task, data);
		return -EPERM;
	}
	return version_busy(why, e, task, data) ? -EBUSY : 0;
}

/* Delete one version (lock held); deleted lists what went. */
static int version_delete_locked(struct vd_buf *why, vd_engine *e, const char *task,
				 const char *data)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *v = NULL, *t = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_id_valid(data)) {
		vd_buf_adds(why, "no such version");
		return -ENOENT;
	}
	if ((rc = vd_engine_version_json(&v, e, task, data))) {
		if (rc == -ENOENT)
			vd_buf_addf(why, "task %s has no version %.12s", task, data);
		return rc;
	}
	if ((rc = check_deletable(why, e, task, data)) || (rc = vd_catalog_batch_new(&b)))
		goto out;
	int64_t now = vd_now_ms();
	if ((rc = delete_into(b, e, task, data, v, now)) ||
	    (rc = vd_engine_task_json(&t, e, task)))
		goto out;
	const char *latest = json_string_value(json_object_get(t, "latest"));
	if (latest && !strcmp(latest, data)) {
		char next[VD_ID_SIZE];
		if ((rc = newest_other(next, e, task, data)))
			goto out;
		if (next[0])
			json_object_set_new(t, "latest", json_string(next));
		else
			json_object_del(t, "latest");
		json_object_set_new(t, "latest_time", json_integer((json_int_t)now));
		vd_engine_key(&k, "t", task, NULL, NULL);
		if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
			goto out;
	}
	if ((rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true))))
		goto out;
	e->m_deleted++;
	vd_info("task %s: deleted version %s", task, data);
	vd_engine_event_version(e, task, data, json_string_value(json_object_get(v, "name")),
				"deleted");
out:
	vd_catalog_batch_free(b);
	json_decref(v);
	json_decref(t);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_version_delete(struct vd_buf *why, vd_engine *e, const char *task,
			     const char *data_id)
{
	pthread_mutex_lock(&e->lock);
	int rc = version_delete_locked(why, e, task, data_id);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

/* Is code used by a task other than `except`? */
struct code_use {
	const char *code, *except;
	bool used;
};

static int code_used(void *ctx, const char *key, size_t klen, const char *val,
		     size_t vlen)
{
	struct code_use *c = ctx;
	json_t *t, *x;
	size_t i;
	if (klen - 2 == strlen(c->except) && !memcmp(key + 2, c->except, klen - 2))
		return 0;
	if (!(t = json_loadb(val, vlen, 0, NULL)))
		return 0;
	json_array_foreach(json_object_get(t, "codes"), i, x) {
		const char *id = json_string_value(json_object_get(x, "id"));
		c->used |= id && !strcmp(id, c->code);
	}
	json_decref(t);
	return 0;
}

static int task_delete_locked(struct vd_buf *why, vd_engine *e, const char *task)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_strv ids = { 0 };
	vd_catalog_batch *b = NULL;
	json_t *t = NULL, *x;
	size_t i;
	int rc;
	if ((rc = vd_engine_task_json(&t, e, task))) {
		if (rc == -ENOENT)
			vd_buf_addf(why, "no task %s", task);
		return rc;
	}
	if ((rc = vd_engine_version_list(&ids, e, task)))
		goto out;
	for (size_t j = 0; j < ids.n; j++)
		if ((rc = check_deletable(why, e, task, ids.v[j])))
			goto out;
	if ((rc = vd_catalog_batch_new(&b)))
		goto out;
	int64_t now = vd_now_ms();
	for (size_t j = 0; j < ids.n; j++) {
		json_t *v = NULL;
		if (!vd_id_valid(ids.v[j]) || vd_engine_version_json(&v, e, task, ids.v[j]))
			continue;
		rc = delete_into(b, e, task, ids.v[j], v, now);
		json_decref(v);
		if (rc)
			goto out;
	}
	/* Whatever else is keyed by the task: names of nothing, stray runs
	 * and logs, pins. */
	static const char *const under[] = { "dn", "r", "lg", "pin", "v" };
	for (size_t j = 0; j < sizeof under / sizeof *under; j++) {
		vd_engine_key(&k, under[j], task, "", NULL);
		if ((rc = del_prefix(b, e, vd_buf_cstr(&k))))
			goto out;
	}
	/* Its code versions, unless another task has the same code. Their
	 * memoized results go at the next gc. */
	json_array_foreach(json_object_get(t, "codes"), i, x) {
		struct code_use cu = { json_string_value(json_object_get(x, "id")), task, false };
		if (!cu.code || !vd_id_valid(cu.code))
			continue;
		if ((rc = vd_catalog_scan(e->cat, "t/", code_used, &cu)))
			goto out;
		if (!cu.used) {
			vd_engine_key(&k, "code", cu.code, NULL, NULL);
			vd_catalog_batch_del(b, vd_buf_cstr(&k));
		}
	}
	vd_engine_key(&k, "t", task, NULL, NULL);
	vd_catalog_batch_del(b, vd_buf_cstr(&k));
	if ((rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true))))
		goto out;
	e->m_deleted += ids.n + 1;
	vd_info("deleted task %s (%zu versions)", task, ids.n);
	vd_engine_event_task(e, task, "deleted");
out:
	vd_catalog_batch_free(b);
	vd_strv_release(&ids);
	json_decref(t);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_task_delete(struct vd_buf *why, vd_engine *e, const char *task)
{
	if (!vd_engine_name_valid(task)) {
		vd_buf_addf(why, "no task %s", task);
		return -ENOENT;
	}
	pthread_mutex_lock(&e->lock);
	int rc = task_delete_locked(why, e, task);
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int vd_engine_version_pin(vd_engine *e, const char *task, const char *data_id, bool pin)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	int rc;
	if (!vd_engine_name_valid(task) || !vd_id_valid(data_id))
		return -ENOENT;
	pthread_mutex_lock(&e->lock);
	vd_engine_key(&k, "v", task, data_id, NULL);
	if ((rc = vd_catalog_has(e->cat, vd_buf_cstr(&k))) <= 0) {
		rc = rc ? rc : -ENOENT;
		goto out;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		goto out;
	pin_key(&k, task, data_id);
	if (pin) {
		char now[24];
		int n = snprintf(now, sizeof now, "%lld", (long long)vd_now_ms());
		vd_catalog_batch_put(b, vd_buf_cstr(&k), now, (size_t)n);
	} else {
		vd_catalog_batch_del(b, vd_buf_cstr(&k));
	}
	rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true));
out:
	pthread_mutex_unlock(&e->lock);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

/* ---- retention ------------------------------------------------------- */

/*
 * The versions of task that its `keep` rule lets go (lock held), appended
 * to out as "<task>/<data-id>": beyond the newest keep_n, or older than
 * keep_ms; never latest, a pinned version or one a run is reading.
 */
static int task_expired(struct vd_strv *out, vd_engine *e, const char *task, int64_t now)
{
	struct vd_config cfg;
	struct vd_strv ids = { 0 };
	struct vd_buf why = VD_BUF_INIT(1024), k = VD_BUF_INIT(1024);
	char latest[VD_ID_SIZE] = "";
	char *text = NULL;
	int rc;
	if ((rc = vd_engine_task_config(&cfg, &text, e, task)))
		goto out;
	if (!cfg.keep_n && !cfg.keep_ms)
		goto out;
	vd_engine_version_latest(latest, e, task);
	/* Newest first: with keep_n the first keep_n stay whatever their age. */
	if ((rc = vd_engine_version_page(&ids, NULL, e, task, cfg.keep_n ? cfg.keep_n : 0, 0)))
		goto out;
	for (size_t i = 0; i < ids.n; i++) {
		const char *id = ids.v[i];
		if (!vd_id_valid(id) || !strcmp(id, latest) || vd_engine_version_pinned(e, task, id))
			continue;
		if (!cfg.keep_n) {
			json_t *vj = NULL;
			if (vd_engine_version_json(&vj, e, task, id))
				continue;
			bool old = now - json_integer_value(json_object_get(vj, "time")) > cfg.keep_ms;
			json_decref(vj);
			if (!old)
				continue;
		}
		vd_buf_reset(&why);
		if (version_busy(&why, e, task, id))
			continue;
		vd_buf_reset(&k);
		vd_buf_addf(&k, "%s/%s", task, id);
		if ((rc = vd_strv_push(out, vd_buf_cstr(&k))))
			goto out;
	}
out:
	free(text);
	vd_strv_release(&ids);
	vd_buf_release(&why);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_retention_apply(json_t *expired, vd_engine *e, bool dry_run)
{
	struct vd_strv tasks = { 0 }, out = { 0 };
	struct vd_buf why = VD_BUF_INIT(1024);
	int rc;
	pthread_mutex_lock(&e->lock);
	int64_t now = vd_now_ms();
	if ((rc = vd_engine_task_list(&tasks, e)))
		goto out;
	for (size_t i = 0; i < tasks.n; i++)
		if ((rc = task_expired(&out, e, tasks.v[i], now)))
			goto out;
	for (size_t i = 0; i < out.n; i++) {
		char *slash = strrchr(out.v[i], '/');
		*slash = '\0';
		vd_buf_reset(&why);
		if (!dry_run && (rc = version_delete_locked(&why, e, out.v[i], slash + 1))) {
			vd_warn("gc: keeping %s/%s: %s", out.v[i], slash + 1, vd_buf_cstr(&why));
			rc = 0;
			continue;
		}
		json_array_append_new(expired, json_pack("{s:s, s:s}", "task", out.v[i],
							 "data_id", slash + 1));
	}
out:
	pthread_mutex_unlock(&e->lock);
	vd_strv_release(&tasks);
	vd_strv_release(&out);
	vd_buf_release(&why);
	return rc;
}

/* ---- the HTTP side --------------------------------------------------- */

int vd_engine_api_delete(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *task, const char *data_id)
{
	json_t *gone = json_array();
	int rc;
	if (!gone)
		return -ENOMEM;
	if (data_id) {
		rc = vd_engine_version_delete(why, e, task, data_id);
		if (!rc)
			json_array_append_new(gone, json_pack("{s:s, s:s}", "task", task,
							      "data_id", data_id));
	} else {
		struct vd_strv ids = { 0 };
		rc = vd_engine_version_list(&ids, e, task);
		if (!rc)
			rc = vd_engine_task_delete(why, e, task);
		for (size_t i = 0; !rc && i < ids.n; i++)
			json_array_append_new(gone, json_pack("{s:s, s:s}", "task", task,
							      "data_id", ids.v[i]));
		vd_strv_release(&ids);
	}
	if (!rc && !(*reply = json_pack("{s:O}", "deleted", gone)))
		rc = -ENOMEM;
	json_decref(gone);
	return rc;
}

int vd_engine_api_pin(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
		      const char *data_id, bool pin)
{
	int rc = vd_engine_version_pin(e, task, data_id, pin);
	if (rc == -ENOENT)
		vd_buf_addf(why, "task %s has no version %s", task, data_id);
	if (!rc && !(*reply = json_pack("{s:s, s:s, s:b}", "task", task, "data_id", data_id,
					"pinned", pin)))
		rc = -ENOMEM;
	return rc;
}
