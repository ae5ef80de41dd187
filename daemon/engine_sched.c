/*
 * engine_sched.c - runs, units, leases and results.
 *
 * A run is (task, data ID, code ID) with the task's config as it was when
 * the run was made. Its units are planned from the version's manifest:
 * consecutive chunks of one file, with a unit ending after a chunk whose ID
 * falls on a boundary (a fixed fraction of IDs do) or at four times the
 * target size. Boundaries depend only on chunk IDs, so after an edit the
 * units away from it are the same units as before, with the same unit IDs.
 *
 * Results are memoized under (code ID, output config, unit ID): a unit that
 * was ever computed with the same code and config is done the moment its
 * run is planned. A run whose units are all memoized finishes without any
 * executor.
 *
 * Work goes out as leases. A lease lives lease_ms unless its executor sends
 * heartbeats; the background thread returns expired leases' units to the
 * queue. The first acceptable result for a unit wins; anything later for it
 * is answered -ESTALE (409). Lease records are kept in the catalog (without
 * sync: losing one only means an executor's result is refused as unknown)
 * so that a result computed across a daemon restart is still accepted.
 *
 * Durable run states are queued, done and failed; "running" is only the
 * in-memory fact that some unit was leased.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine_int.h"

/* ---- keys, logs ------------------------------------------------------ */

static void run_key(struct vd_buf *k, const char *task, const char *data,
		    const char *code)
{
	vd_buf_reset(k);
	vd_buf_addf(k, "r/%s/%s/%s", task, data, code);
}

static void memo_key(struct vd_buf *k, const char *code, const char *out_key,
		     const char *unit)
{
	vd_buf_reset(k);
	vd_buf_addf(k, "res/%s/%s/%s", code, out_key, unit);
}

void vd_engine_log_add(vd_catalog_batch *b, vd_engine *e, const char *task,
		       const char *data, const char *code, const char *fmt, ...)
{
	struct vd_buf k = VD_BUF_INIT(1024), line = VD_BUF_INIT(16384);
	char when[32];
	int64_t now = vd_now_ms();
	va_list ap;
	vd_format_time(when, now);
	vd_buf_addf(&line, "%s code=%.8s ", when, code);
	va_start(ap, fmt);
	vd_buf_vaddf(&line, fmt, ap);
	va_end(ap);
	/* Time first keeps a run's lines in order; the sequence number
	 * separates lines written in the same millisecond. */
	vd_buf_addf(&k, "lg/%s/%s/%016llx%08llx", task, data,
		    (unsigned long long)now, (unsigned long long)(e->log_seq++ & 0xffffffffu));
	vd_catalog_batch_put(b, vd_buf_cstr(&k), line.data ? line.data : "", line.len);
	vd_buf_release(&k);
	vd_buf_release(&line);
}

/* Newlines and control bytes folded, so a stderr tail fits on one log line. */
static void add_one_line(struct vd_buf *out, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n > max)
		s += n - max, n = max;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\n')
			vd_buf_adds(out, " | ");
		else if (ch < 0x20 || ch == 0x7f)
			vd_buf_add(out, " ", 1);
		else
			vd_buf_add(out, &s[i], 1);
	}
}

/* ---- finding things (lock held) ------------------------------------- */

static struct vd_run *find_run(vd_engine *e, const char *task, const char *data,
			       const char *code)
{
	for (struct vd_run *r = e->runs; r; r = r->next)
		if (!strcmp(r->data, data) && !strcmp(r->code, code) &&
		    !strcmp(r->task, task))
			return r;
	return NULL;
}

static struct vd_lease *find_lease(vd_engine *e, const char *id)
{
	for (struct vd_lease *l = e->leases; l; l = l->next)
		if (!strcmp(l->id, id))
			return l;
	return NULL;
}

static struct vd_executor *find_exec(vd_engine *e, const char *name)
{
	for (struct vd_executor *x = e->execs; x; x = x->next)
		if (!strcmp(x->name, name))
			return x;
	return NULL;
}

static void unit_requeue(vd_engine *e, struct vd_run *r, size_t u)
{
	struct vd_unit *un = &r->units[u];
	if (un->state == VD_UNIT_DONE || un->nleases > 0)
		return;
	un->state = VD_UNIT_PENDING;
	if (u < r->cursor)
		r->cursor = u;
	pthread_cond_broadcast(&e->work);
}

/* Unlink and free a lease; the unit is requeued if nothing else holds it. */
static void lease_drop(vd_engine *e, struct vd_lease *l, bool requeue)
{
	for (struct vd_lease **pp = &e->leases; *pp; pp = &(*pp)->next) {
		if (*pp != l)
			continue;
		*pp = l->next;
		break;
	}
	struct vd_executor *x = find_exec(e, l->executor);
	if (x && x->active > 0)
		x->active--;
	if (l->run) {
		struct vd_unit *un = &l->run->units[l->unit];
		if (un->nleases > 0)
			un->nleases--;
		if (requeue)
			unit_requeue(e, l->run, l->unit);
	}
	free(l);
}

static void run_free(struct vd_run *r)
{
	if (!r)
		return;
	if (r->headers)
		for (size_t i = 0; r->man && i < r->man->nfiles; i++)
			free(r->headers[i]);
	free(r->headers);
	vd_manifest_free(r->man);
	free(r->units);
	free(r->cfg_text);
	free(r);
}

/* Take an active run out of memory, with its leases (lock held). */
static void run_remove(vd_engine *e, struct vd_run *r)
{
	for (struct vd_lease *l = e->leases, *next; l; l = next) {
		next = l->next;
		if (l->run == r) {
			l->run = NULL;
			lease_drop(e, l, false);
		}
	}
	for (struct vd_run **pp = &e->runs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	run_free(r);
}

/* ---- making and planning runs ----------------------------------------- */

int vd_engine_run_add(vd_catalog_batch *b, vd_engine *e, const char *task,
		      const char *data, const char *code, json_t *version)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	json_t *r = NULL, *v = version;
	char *cfg_text = NULL;
	struct vd_config cfg;
	int rc;
	run_key(&k, task, data, code);
	if ((rc = vd_catalog_has(e->cat, vd_buf_cstr(&k))) != 0)
		goto out;     /* 1: known, or -errno */
	if ((rc = vd_engine_task_config(&cfg, &cfg_text, e, task)))
		goto out;
	if (!v && (rc = vd_engine_version_json(&v, e, task, data)))
		goto out;
	r = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "task", task, "data_id", data,
		      "code_id", code, "state", "queued", "created",
		      (json_int_t)vd_now_ms(), "config", cfg_text);
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), r)))
		goto out;
	json_t *runs = json_object_get(v, "runs");
	if (!json_is_array(runs)) {
		runs = json_array();
		json_object_set_new(v, "runs", runs);
	}
	json_array_append_new(runs, json_string(code));
	vd_engine_key(&k, "v", task, data, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), v)))
		goto out;
	vd_engine_log_add(b, e, task, data, code, "run queued");
	rc = 1;
out:
	if (!version)
		json_decref(v);
	json_decref(r);
	free(cfg_text);
	vd_buf_release(&k);
	return rc;
}

/* Does this chunk end a unit? A fixed fraction of IDs do. */
static bool unit_boundary(const char *id, uint64_t ratio)
{
	unsigned long long x = 0;
	for (int i = 0; i < 12; i++) {
		char c = id[i];
		x = x * 16 + (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return ratio <= 1 || x % ratio == 0;
}

static int unit_push(struct vd_run *r, size_t *cap, size_t file, size_t first,
		     size_t count)
{
	if (r->nunits == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct vd_unit *nu = realloc(r->units, ncap * sizeof *nu);
		if (!nu)
			return -ENOMEM;
		r->units = nu;
		*cap = ncap;
	}
	struct vd_unit *u = &r->units[r->nunits++];
	memset(u, 0, sizeof *u);
	u->file = file;
	u->first = first;
	u->count = count;
	return 0;
}

/* The csv header line of each file: read from its first chunk. */
static int read_headers(struct vd_run *r, vd_engine *e)
{
	struct vd_manifest *m = r->man;
	if (!(r->headers = calloc(m->nfiles + 1, sizeof *r->headers)))
		return -ENOMEM;
	for (size_t i = 0; i < m->nfiles; i++) {
		struct vd_buf b = VD_BUF_INIT(64u << 20);
		if (m->files[i].n == 0)
			continue;
		int rc = vd_store_read(&b, e->store, m->files[i].ext[0].id);
		if (rc) {
			vd_buf_release(&b);
			return rc;
		}
		const char *nl = memchr(b.data, '\n', b.len);
		size_t len = nl ? (size_t)(nl - b.data) + 1 : b.len;
		r->headers[i] = strndup(b.data, len);
		vd_buf_release(&b);
		if (!r->headers[i])
			return -ENOMEM;
	}
	return 0;
}

static int plan_units(struct vd_run *r, vd_engine *e)
{
	struct vd_manifest *m = r->man;
	uint64_t target = r->cfg.unit_size;
	uint64_t ratio = target / e->chunking.avg_size;
	size_t cap = 0;
	int rc;
	if (r->cfg.format == VD_FORMAT_CSV && (rc = read_headers(r, e)))
		return rc;
	for (size_t fi = 0; fi < m->nfiles; fi++) {
		struct vd_file *f = &m->files[fi];
		size_t i = 0;
		while (i < f->n) {
			size_t first = i;
			uint64_t acc = 0;
			for (; i < f->n; i++) {
				acc += f->ext[i].len;
				if (r->cfg.format == VD_FORMAT_WHOLE)
					continue;
				if (acc >= 4 * target || unit_boundary(f->ext[i].id, ratio)) {
					i++;
					break;
				}
			}
			if ((rc = unit_push(r, &cap, fi, first, i - first)))
				return rc;
		}
	}
	/* Unit IDs: everything the unit's stdin and environment depend on. */
	for (size_t u = 0; u < r->nunits; u++) {
		struct vd_unit *un = &r->units[u];
		struct vd_file *f = &m->files[un->file];
		const char *hdr = r->headers ? r->headers[un->file] : NULL;
		vd_hasher *h = NULL;
		char n[48];
		if ((rc = vd_hasher_new(&h, &e->key)))
			return rc;
		if (hdr && un->first == 0)
			un->skip = strlen(hdr);
		for (size_t i = 0; i < un->count; i++)
			un->bytes += f->ext[un->first + i].len;
		un->bytes -= un->skip;
		vd_hasher_update(h, "unit\n", 5);
		vd_hasher_update(h, f->path, strlen(f->path) + 1);
		if (hdr)
			vd_hasher_update(h, hdr, strlen(hdr) + 1);
		int len = snprintf(n, sizeof n, "%llu\n", (unsigned long long)un->skip);
		vd_hasher_update(h, n, (size_t)len);
		for (size_t i = 0; i < un->count; i++)
			vd_hasher_update(h, f->ext[un->first + i].id, VD_ID_LEN);
		vd_hasher_digest(h, un->id);
		vd_hasher_free(h);
	}
	return 0;
}

int vd_engine_run_activate(vd_engine *e, const char *task, const char *data,
			   const char *code)
{
	struct vd_buf k = VD_BUF_INIT(1024), why = VD_BUF_INIT(1024), ok = VD_BUF_INIT(256);
	struct vd_run *r = NULL;
	json_t *rj = NULL;
	int rc;
	if (find_run(e, task, data, code))
		return 0;
	run_key(&k, task, data, code);
	if ((rc = vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k))))
		goto out;
	if (!(r = calloc(1, sizeof *r))) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(r->task, sizeof r->task, "%s", task);
	memcpy(r->data, data, VD_ID_SIZE);
	memcpy(r->code, code, VD_ID_SIZE);
	const char *cfg = json_string_value(json_object_get(rj, "config"));
	r->cfg_text = strdup(cfg ? cfg : "");
	if (!r->cfg_text) {
		rc = -ENOMEM;
		goto out;
	}
	if (vd_config_parse(&r->cfg, &why, r->cfg_text, strlen(r->cfg_text)))
		vd_config_default(&r->cfg);
	vd_config_output_key(&ok, &r->cfg);
	vd_id_of(r->out_key, &e->key, ok.data ? ok.data : "", ok.len);
	r->created_ms = json_integer_value(json_object_get(rj, "created"));
	if ((rc = vd_engine_manifest_get(&r->man, e, data)))
		goto out;
	if ((rc = plan_units(r, e)))
		goto out;
	for (size_t u = 0; u < r->nunits; u++) {
		memo_key(&k, code, r->out_key, r->units[u].id);
		if (vd_catalog_has(e->cat, vd_buf_cstr(&k)) == 1) {
			r->units[u].state = VD_UNIT_DONE;
			r->ndone++;
		}
	}
	/* Append: oldest runs are served first. */
	struct vd_run **pp = &e->runs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = r;
	if (r->ndone == r->nunits) {
		r->finishing = true;
		pthread_cond_broadcast(&e->tick);
	} else {
		pthread_cond_broadcast(&e->work);
	}
	vd_info("run %s/%.8s code %.8s: %zu units, %zu already computed", task,
		data, code, r->nunits, r->ndone);
	/* Say in the run's log how much was reused: it is what tells a user
	 * that an edit re-ran only what it touched. */
	vd_catalog_batch *b = NULL;
	if (!vd_catalog_batch_new(&b)) {
		vd_engine_log_add(b, e, task, data, code, "run planned: %zu units, %zu "
				  "reused from earlier runs, %zu to compute", r->nunits,
				  r->ndone, r->nunits - r->ndone);
		vd_catalog_commit(e->cat, b, false);
		vd_catalog_batch_free(b);
	}
	r = NULL;
	rc = 0;
out:
	if (rc)
		vd_err("run %s/%s/%s cannot start: %s", task, data, code, strerror(-rc));
	run_free(r);
	json_decref(rj);
	vd_buf_release(&k);
	vd_buf_release(&why);
	vd_buf_release(&ok);
	return rc;
}

/* ---- finishing runs --------------------------------------------------- */

/* Record a run's end (done with result, or failed with error) in b. */
static int run_record_end(vd_catalog_batch *b, vd_engine *e, struct vd_run *r,
			  const char *error, const struct vd_file *result,
			  const char *result_id)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	json_t *rj = NULL, *ex = json_array();
	int rc;
	run_key(&k, r->task, r->data, r->code);
	if ((rc = vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k))))
		goto out;
	int64_t now = vd_now_ms();
	json_object_set_new(rj, "state", json_string(error ? "failed" : "done"));
	json_object_set_new(rj, "finished", json_integer(now));
	if (r->started_ms)
		json_object_set_new(rj, "started", json_integer(r->started_ms));
	json_object_set_new(rj, "units", json_integer((json_int_t)r->nunits));
	json_object_set_new(rj, "units_done", json_integer((json_int_t)r->ndone));
	if (error)
		json_object_set_new(rj, "error", json_string(error));
	/* Who computed it: each executor once, in unit order. */
	for (size_t u = 0; u < r->nunits; u++) {
		const char *name = r->units[u].executor;
		bool seen = !*name;
		for (size_t i = 0; !seen && i < json_array_size(ex); i++)
			seen = !strcmp(json_string_value(json_array_get(ex, i)), name);
		if (!seen)
			json_array_append_new(ex, json_string(name));
	}
	json_object_set_new(rj, "executors", ex);
	ex = NULL;
	if (result) {
		json_t *res = vd_engine_file_json(result);
		json_object_set_new(res, "data_id", json_string(result_id));
		json_object_set_new(rj, "result", res);
	}
	rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rj);
out:
	json_decref(ex);
	json_decref(rj);
	vd_buf_release(&k);
	return rc;
}

/* Fail an active run (lock held): record it, drop it from memory. */
static int run_fail(vd_engine *e, struct vd_run *r, const char *error)
{
	vd_catalog_batch *b = NULL;
	int rc = vd_catalog_batch_new(&b);
	if (rc)
		return rc;
	if (!(rc = run_record_end(b, e, r, error, NULL, NULL))) {
		vd_engine_log_add(b, e, r->task, r->data, r->code, "run failed: %s", error);
		rc = vd_catalog_commit(e->cat, b, true);
	}
	vd_warn("run %s/%.8s code %.8s failed: %s", r->task, r->data, r->code, error);
	run_remove(e, r);
	vd_catalog_batch_free(b);
	return rc;
}

/*
 * Reduce a run whose units are all done and record it done. Called with the
 * lock held; drops it while reading and combining outputs. The run stays in
 * the active list meanwhile (finishing, so nothing leases from it).
 */
static void run_finish(vd_engine *e, struct vd_run *r)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_extent *outs = calloc(r->nunits + 1, sizeof *outs);
	struct vd_file *result = NULL;
	vd_catalog_batch *b = NULL;
	char rid[VD_ID_SIZE];
	char task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	enum vd_reduce how = r->cfg.reduce;
	size_t n = r->nunits;
	int rc;
	snprintf(task, sizeof task, "%s", r->task);
	memcpy(data, r->data, VD_ID_SIZE);
	memcpy(code, r->code, VD_ID_SIZE);
	if (!outs || (rc = vd_catalog_batch_new(&b))) {
		rc = -ENOMEM;
		goto fail;
	}
	for (size_t u = 0; u < n; u++) {
		json_t *mj = NULL;
		memo_key(&k, code, r->out_key, r->units[u].id);
		if ((rc = vd_catalog_get_json(&mj, e->cat, vd_buf_cstr(&k))))
			goto fail;
		const char *blob = json_string_value(json_object_get(mj, "blob"));
		if (!blob || !vd_id_valid(blob)) {
			json_decref(mj);
			rc = -EBADMSG;
			goto fail;
		}
		memcpy(outs[u].id, blob, VD_ID_SIZE);
		outs[u].len = (uint64_t)json_integer_value(json_object_get(mj, "len"));
		if (!r->units[u].executor[0]) {
			const char *who = json_string_value(json_object_get(mj, "executor"));
			snprintf(r->units[u].executor, sizeof r->units[u].executor, "%s",
				 who ? who : "");
		}
		json_decref(mj);
	}
	pthread_mutex_unlock(&e->lock);
	rc = vd_engine_reduce(&result, rid, b, e, how, outs, n);
	pthread_mutex_lock(&e->lock);
	if (rc)
		goto fail;
	if ((rc = run_record_end(b, e, r, NULL, result, rid)))
		goto fail;
	int64_t took = vd_now_ms() - (r->started_ms ? r->started_ms : r->created_ms);
	vd_engine_log_add(b, e, task, data, code,
			  "run done: %zu units, result %llu bytes, %.1f s", n,
			  (unsigned long long)result->size, (double)took / 1000.0);
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto fail;
	vd_info("run %s/%.8s code %.8s done: result %llu bytes", task, data, code,
		(unsigned long long)result->size);
	run_remove(e, r);
	goto out;
fail: {
		char why[256];
		snprintf(why, sizeof why, "reduce: %s", strerror(-rc));
		if (rc == -EINVAL)
			snprintf(why, sizeof why, "reduce: a unit's output is not "
				 "key,number rows (reduce = sum)");
		run_fail(e, r, why);
	}
out:
	vd_file_free(result);
	vd_catalog_batch_free(b);
	free(outs);
	vd_buf_release(&k);
}

/* ---- the background thread ------------------------------------------ */

static void expire_leases(vd_engine *e)
{
	int64_t now = vd_mono_ms();
	vd_catalog_batch *b = NULL;
	if (vd_catalog_batch_new(&b))
		return;
	for (struct vd_lease *l = e->leases, *next; l; l = next) {
		next = l->next;
		if (l->expires_ms > now)
			continue;
		e->m_expired++;
		if (l->run) {
			struct vd_unit *un = &l->run->units[l->unit];
			if (un->state != VD_UNIT_DONE) {
				un->expiries++;
				vd_engine_log_add(b, e, l->run->task, l->run->data,
						  l->run->code,
						  "unit %zu/%zu executor=%s lease expired, "
						  "back in the queue", l->unit,
						  l->run->nunits, l->executor);
			}
		}
		vd_warn("lease %.8s of executor %s expired", l->id, l->executor);
		lease_drop(e, l, true);
	}
	if (vd_catalog_batch_count(b))
		vd_catalog_commit(e->cat, b, false);
	vd_catalog_batch_free(b);
}

static void *sched_thread(void *arg)
{
	vd_engine *e = arg;
	pthread_mutex_lock(&e->lock);
	while (!e->stopping) {
		expire_leases(e);
		/* Finishing drops the lock, so restart the scan after each. */
		for (bool again = true; again && !e->stopping;) {
			again = false;
			for (struct vd_run *r = e->runs; r; r = r->next) {
				if (r->finishing) {
					run_finish(e, r);
					again = true;
					break;
				}
			}
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&e->tick, &e->lock, &ts);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* Split "r/<task>/<data>/<code>" (task has no '/'). */
static int split_run_key(char task[256], char data[VD_ID_SIZE], char code[VD_ID_SIZE],
			 const char *key, size_t klen)
{
	const char *p = key + 2, *end = key + klen;
	const char *s1 = memchr(p, '/', (size_t)(end - p));
	if (!s1 || s1 - p >= 256 || end - s1 != 2 + 2 * VD_ID_LEN || s1[1 + VD_ID_LEN] != '/')
		return -EBADMSG;
	memcpy(task, p, (size_t)(s1 - p));
	task[s1 - p] = '\0';
	memcpy(data, s1 + 1, VD_ID_LEN);
	data[VD_ID_LEN] = '\0';
	memcpy(code, s1 + 2 + VD_ID_LEN, VD_ID_LEN);
	code[VD_ID_LEN] = '\0';
	return vd_id_valid(data) && vd_id_valid(code) ? 0 : -EBADMSG;
}

static int load_run(void *ctx, const char *key, size_t klen, const char *val,
		    size_t vlen)
{
	vd_engine *e = ctx;
	char task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *state = json_string_value(json_object_get(j, "state"));
	if (state && !strcmp(state, "queued") &&
	    !split_run_key(task, data, code, key, klen))
		vd_engine_run_activate(e, task, data, code);
	json_decref(j);
	return 0;
}

static int load_lease(void *ctx, const char *key, size_t klen, const char *val,
		      size_t vlen)
{
	vd_engine *e = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *task = json_string_value(json_object_get(j, "task"));
	const char *data = json_string_value(json_object_get(j, "data_id"));
	const char *code = json_string_value(json_object_get(j, "code_id"));
	const char *ex = json_string_value(json_object_get(j, "executor"));
	json_int_t unit = json_integer_value(json_object_get(j, "unit"));
	struct vd_run *r = task && data && code ? find_run(e, task, data, code) : NULL;
	if (r && ex && klen == 2 + VD_ID_LEN && unit >= 0 && (size_t)unit < r->nunits &&
	    r->units[unit].state != VD_UNIT_DONE) {
		struct vd_lease *l = calloc(1, sizeof *l);
		if (l) {
			memcpy(l->id, key + 2, VD_ID_LEN);
			l->id[VD_ID_LEN] = '\0';
			l->run = r;
			l->unit = (size_t)unit;
			snprintf(l->executor, sizeof l->executor, "%s", ex);
			/* A fresh term: its executor may still be working. */
			l->expires_ms = vd_mono_ms() + e->lease_ms;
			r->units[unit].state = VD_UNIT_LEASED;
			r->units[unit].nleases++;
			r->started = true;
			l->next = e->leases;
			e->leases = l;
		}
	}
	json_decref(j);
	return 0;
}

static int load_exec(void *ctx, const char *key, size_t klen, const char *val,
		     size_t vlen)
{
	vd_engine *e = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *name = json_string_value(json_object_get(j, "name"));
	struct vd_executor *x = name ? calloc(1, sizeof *x) : NULL;
	if (x) {
		snprintf(x->name, sizeof x->name, "%s", name);
		x->level = (int)json_integer_value(json_object_get(j, "level"));
		x->slots = (int)json_integer_value(json_object_get(j, "slots"));
		x->registered_ms = json_integer_value(json_object_get(j, "registered"));
		x->host = json_dumps(json_object_get(j, "host"), JSON_COMPACT | JSON_ENCODE_ANY);
		x->last_seen_ms = INT64_MIN;
		x->next = e->execs;
		e->execs = x;
	}
	json_decref(j);
	return 0;
}

int vd_engine_sched_start(vd_engine *e)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	rc = vd_catalog_scan(e->cat, "ex/", load_exec, e);
	if (!rc)
		rc = vd_catalog_scan(e->cat, "r/", load_run, e);
	if (!rc)
		rc = vd_catalog_scan(e->cat, "l/", load_lease, e);
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return rc;
	if ((rc = -pthread_create(&e->reaper, NULL, sched_thread, e)))
		return rc;
	e->reaper_started = true;
	return 0;
}

void vd_engine_sched_stop(vd_engine *e)
{
	vd_engine_wake_all(e);
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->tick);
	pthread_mutex_unlock(&e->lock);
	if (e->reaper_started)
		pthread_join(e->reaper, NULL);
	e->reaper_started = false;
	while (e->runs)
		run_remove(e, e->runs);
	while (e->leases)
		lease_drop(e, e->leases, false);
	while (e->execs) {
		struct vd_executor *x = e->execs;
		e->execs = x->next;
		free(x->host);
		free(x);
	}
}

/* ---- the protocol ---------------------------------------------------- */

static bool exec_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > VD_EXEC_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An integer field in [lo, hi], or def when absent. */
static int int_field(long long *out, struct vd_buf *why, const json_t *req,
		     const char *name, long long lo, long long hi, long long def)
{
	json_t *v = json_object_get(req, name);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		vd_buf_addf(why, "'%s' must be an integer from %lld to %lld", name, lo, hi);
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

int vd_engine_api_register(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	json_t *host = json_object_get(req, "host"), *rec = NULL;
	struct vd_buf k = VD_BUF_INIT(256);
	vd_catalog_batch *b = NULL;
	long long level, slots;
	char keyhex[VD_KEY_HEX_SIZE];
	int rc;
	if (!exec_name_valid(name)) {
		vd_buf_adds(why, "'name' must be 1 to 64 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if ((rc = int_field(&level, why, req, "level", 1, 5, 1)) ||
	    (rc = int_field(&slots, why, req, "slots", 1, 256, 1)))
		return rc;
	if (host && !json_is_object(host)) {
		vd_buf_adds(why, "'host' must be an object");
		return -EINVAL;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	/* "o" steals the reference: a new one for the caller's host. */
	rec = json_pack("{s:s, s:I, s:I, s:o, s:I}", "name", name, "level",
			(json_int_t)level, "slots", (json_int_t)slots, "host",
			host ? json_incref(host) : json_object(), "registered",
			(json_int_t)vd_now_ms());
	if (!rec) {
		rc = -ENOMEM;
		goto out;
	}
	vd_engine_key(&k, "ex", name, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rec)))
		goto out;
	pthread_mutex_lock(&e->lock);
	rc = vd_catalog_commit(e->cat, b, true);
	struct vd_executor *x = rc ? NULL : find_exec(e, name);
	if (!rc && !x && (x = calloc(1, sizeof *x))) {
		snprintf(x->name, sizeof x->name, "%s", name);
		x->next = e->execs;
		e->execs = x;
	}
	if (x) {
		x->level = (int)level;
		x->slots = (int)slots;
		x->registered_ms = vd_now_ms();
		free(x->host);
		x->host = json_dumps(json_object_get(rec, "host"), JSON_COMPACT);
		x->last_seen_ms = vd_mono_ms();
	} else if (!rc) {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	if (rc)
		goto out;
	vd_info("executor %s registered (level %lld, %lld slots)", name, level, slots);
	vd_key_to_hex(keyhex, &e->key);
	*reply = json_pack("{s:s, s:s, s:i, s:i}", "executor", name, "hash_key", keyhex,
			   "lease_ms", e->lease_ms, "heartbeat_ms", e->heartbeat_ms);
	rc = *reply ? 0 : -ENOMEM;
out:
	json_decref(rec);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

static json_t *lease_json(vd_engine *e, const struct vd_lease *l)
{
	struct vd_run *r = l->run;
	struct vd_unit *un = &r->units[l->unit];
	struct vd_file *f = &r->man->files[un->file];
	static const char *formats[] = { "lines", "csv", "whole" };
	json_t *chunks = json_array();
	for (size_t i = 0; chunks && i < un->count; i++)
		json_array_append_new(chunks, json_pack("{s:s, s:I}", "id",
					f->ext[un->first + i].id, "len",
					(json_int_t)f->ext[un->first + i].len));
	const char *hdr = r->headers ? r->headers[un->file] : NULL;
	/* The function's parameters: encoding, then env.NAME lines. */
	json_t *env = json_pack("{s:s}", "VDFS_ENCODING", r->cfg.encoding);
	for (const char *p = r->cfg.env; env && *p;) {
		const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
		if (!nl || !eq || eq > nl)
			break;
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(eq - p), p);
		json_object_set_new(env, name, json_stringn(eq + 1, (size_t)(nl - eq - 1)));
		p = nl + 1;
	}
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:i, s:i, "
			 "s:s, s:I, s:o, s:o}",
			 "lease", l->id, "task", r->task, "data_id", r->data, "code_id",
			 r->code, "unit", (json_int_t)l->unit, "units",
			 (json_int_t)r->nunits, "unit_id", un->id, "path",
			 r->man->kind == VD_KIND_TREE ? f->path : "", "format",
			 formats[r->cfg.format], "timeout_s", r->cfg.timeout_s,
			 "lease_ms", e->lease_ms, "header", hdr ? hdr : "", "skip",
			 (json_int_t)un->skip, "chunks", chunks, "env", env);
}

/* Lease up to max units to x (lock held); records go into b. */
static int grant(json_t *list, vd_catalog_batch *b, vd_engine *e,
		 struct vd_executor *x, long long max)
{
	int granted = 0;
	for (struct vd_run *r = e->runs; r && granted < max; r = r->next) {
		if (r->finishing || r->cfg.level > x->level)
			continue;
		for (size_t u = r->cursor; u < r->nunits && granted < max; u++) {
			struct vd_unit *un = &r->units[u];
			if (un->state != VD_UNIT_PENDING) {
				if (u == r->cursor)
					r->cursor++;
				continue;
			}
			struct vd_lease *l = calloc(1, sizeof *l);
			unsigned char raw[16];
			if (!l || getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
				free(l);
				return granted ? granted : -ENOMEM;
			}
			for (int i = 0; i < 16; i++)
				snprintf(l->id + 2 * i, 3, "%02x", raw[i]);
			l->run = r;
			l->unit = u;
			snprintf(l->executor, sizeof l->executor, "%s", x->name);
			l->expires_ms = vd_mono_ms() + e->lease_ms;
			l->next = e->leases;
			e->leases = l;
			un->state = VD_UNIT_LEASED;
			un->nleases++;
			x->active++;
			if (!r->started) {
				r->started = true;
				r->started_ms = vd_now_ms();
			}
			if (u == r->cursor)
				r->cursor++;
			json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:s}", "task", r->task,
						"data_id", r->data, "code_id", r->code,
						"unit", (json_int_t)u, "executor", x->name);
			char key[2 + VD_ID_SIZE];
			snprintf(key, sizeof key, "l/%s", l->id);
			if (rec)
				vd_catalog_batch_put_json(b, key, rec);
			json_decref(rec);
			json_array_append_new(list, lease_json(e, l));
			e->m_leased++;
			granted++;
		}
	}
	return granted;
}

int vd_engine_api_lease(json_t **reply, struct vd_buf *why, vd_engine *e,
			const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "executor"));
	long long max, wait;
	vd_catalog_batch *b = NULL;
	json_t *list = NULL;
	int rc;
	if (!exec_name_valid(name)) {
		vd_buf_adds(why, "'executor' must name a registered executor");
		return -EINVAL;
	}
	if ((rc = int_field(&max, why, req, "max", 1, 256, 1)) ||
	    (rc = int_field(&wait, why, req, "wait_ms", 0, INT32_MAX, 0)))
		return rc;
	if (wait > VD_LEASE_WAIT_MAX_MS)
		wait = VD_LEASE_WAIT_MAX_MS;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	if (!(list = json_array())) {
		rc = -ENOMEM;
		goto out;
	}
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += wait / 1000;
	deadline.tv_nsec += (wait % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct vd_executor *x = find_exec(e, name);
		if (!x) {
			vd_buf_addf(why, "executor '%s' is not registered", name);
			rc = -EPERM;
			break;
		}
		x->last_seen_ms = vd_mono_ms();
		if (e->stopping) {
			vd_buf_adds(why, "the daemon is shutting down");
			rc = -ESHUTDOWN;
			break;
		}
		rc = grant(list, b, e, x, max);
		if (rc != 0)
			break;
		if (pthread_cond_timedwait(&e->work, &e->lock, &deadline) == ETIMEDOUT) {
			rc = -EAGAIN;
			break;
		}
	}
	if (vd_catalog_batch_count(b))
		vd_catalog_commit(e->cat, b, false);
	pthread_mutex_unlock(&e->lock);
	if (rc > 0) {
		*reply = json_pack("{s:O}", "leases", list);
		rc = *reply ? 0 : -ENOMEM;
	}
out:
	json_decref(list);
	vd_catalog_batch_free(b);
	return rc;
}

/* Look a lease up in memory or, after a restart or expiry, in the catalog.
 * Fills run and unit when its run is still active. -ENOENT when unknown. */
static int lease_resolve(struct vd_lease **lp, struct vd_run **rp, size_t *up,
			 char executor[VD_EXEC_NAME_MAX + 1], vd_engine *e,
			 const char *id)
{
	struct vd_lease *l = find_lease(e, id);
	char key[2 + VD_ID_SIZE];
	json_t *j = NULL;
	*lp = l;
	*rp = NULL;
	if (l) {
		*rp = l->run;
		*up = l->unit;
		snprintf(executor, VD_EXEC_NAME_MAX + 1, "%s", l->executor);
		return 0;
	}
	snprintf(key, sizeof key, "l/%s", id);
	int rc = vd_catalog_get_json(&j, e->cat, key);
	if (rc)
		return rc;
	const char *task = json_string_value(json_object_get(j, "task"));
	const char *data = json_string_value(json_object_get(j, "data_id"));
	const char *code = json_string_value(json_object_get(j, "code_id"));
	const char *ex = json_string_value(json_object_get(j, "executor"));
	json_int_t unit = json_integer_value(json_object_get(j, "unit"));
	struct vd_run *r = task && data && code ? find_run(e, task, data, code) : NULL;
	if (r && unit >= 0 && (size_t)unit < r->nunits) {
		*rp = r;
		*up = (size_t)unit;
	}
	snprintf(executor, VD_EXEC_NAME_MAX + 1, "%s", ex ? ex : "");
	json_decref(j);
	return 0;
}

int vd_engine_api_heartbeat(json_t **reply, struct vd_buf *why, vd_engine *e,
			    const char *lease_id)
{
	struct vd_lease *l;
	struct vd_run *r;
	size_t u = 0;
	char ex[VD_EXEC_NAME_MAX + 1];
	int rc;
	pthread_mutex_lock(&e->lock);
	rc = lease_resolve(&l, &r, &u, ex, e, lease_id);
	if (rc == -ENOENT) {
		vd_buf_adds(why, "unknown lease");
	} else if (rc == 0 && (!l || !r || r->units[u].state == VD_UNIT_DONE || r->finishing)) {
		vd_buf_adds(why, "lease is no longer valid: the unit is done, "
			    "the run ended or the lease expired");
		rc = -ESTALE;
	} else if (rc == 0) {
		l->expires_ms = vd_mono_ms() + e->lease_ms;
		struct vd_executor *x = find_exec(e, l->executor);
		if (x)
			x->last_seen_ms = vd_mono_ms();
	}
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return rc;
	*reply = json_pack("{s:i}", "lease_ms", e->lease_ms);
	return *reply ? 0 : -ENOMEM;
}

struct result_meta {
	long long exit, sig, ms;
	const char *reason, *stderr_tail;
};

static int parse_result_meta(struct result_meta *m, struct vd_buf *why,
			     const json_t *meta)
{
	int rc;
	if (!json_is_object(meta)) {
		vd_buf_adds(why, "result metadata must be a JSON object");
		return -EINVAL;
	}
	if (!json_is_integer(json_object_get(meta, "exit"))) {
		vd_buf_adds(why, "'exit' must be an integer");
		return -EINVAL;
	}
	if ((rc = int_field(&m->exit, why, meta, "exit", -1000, 1000, 0)) ||
	    (rc = int_field(&m->sig, why, meta, "signal", 0, 128, 0)) ||
	    (rc = int_field(&m->ms, why, meta, "ms", 0, INT64_MAX, 0)))
		return rc;
	json_t *reason = json_object_get(meta, "reason"), *err = json_object_get(meta, "stderr");
	if ((reason && !json_is_string(reason)) || (err && !json_is_string(err))) {
		vd_buf_adds(why, "'reason' and 'stderr' must be strings");
		return -EINVAL;
	}
	m->reason = reason ? json_string_value(reason) : "";
	m->stderr_tail = err ? json_string_value(err) : "";
	return 0;
}

/* A failed attempt (lock held): count it, requeue or fail the run. */
static int record_failure(vd_engine *e, struct vd_lease *l, struct vd_run *r,
			  size_t u, const char *executor, const struct result_meta *m,
			  const char *what)
{
	struct vd_unit *un = &r->units[u];
	struct vd_buf line = VD_BUF_INIT(8192);
	vd_catalog_batch *b = NULL;
	int rc = vd_catalog_batch_new(&b);
	if (rc)
		return rc;
	un->failures++;
	e->m_failed++;
	struct vd_executor *x = find_exec(e, executor);
	if (x)
		x->units_failed++;
	vd_buf_addf(&line, "unit %zu: %s", u, what);
	if (m->stderr_tail && *m->stderr_tail) {
		vd_buf_adds(&line, ": ");
		/* The last line of stderr is usually the message. */
		const char *s = m->stderr_tail;
		size_t n = strlen(s);
		while (n && s[n - 1] == '\n')
			n--;
		const char *last = s;
		for (size_t i = 0; i < n; i++)
			if (s[i] == '\n')
				last = s + i + 1;
		char tmp[512];
		snprintf(tmp, sizeof tmp, "%.*s", (int)(s + n - last), last);
		add_one_line(&line, tmp, 300);
	}
	struct vd_buf tail = VD_BUF_INIT(VD_STDERR_TAIL * 4);
	add_one_line(&tail, m->stderr_tail ? m->stderr_tail : "", VD_STDERR_TAIL);
	vd_engine_log_add(b, e, r->task, r->data, r->code,
			  "unit %zu/%zu executor=%s failed (attempt %d of %d): %s "
			  "ms=%lld stderr: %s", u, r->nunits, executor, un->failures,
			  r->cfg.retries, what, m->ms, vd_buf_cstr(&tail));
	vd_buf_release(&tail);
	rc = vd_catalog_commit(e->cat, b, true);
	if (l)
		lease_drop(e, l, false);
	if (un->failures >= r->cfg.retries)
		rc = run_fail(e, r, vd_buf_cstr(&line));
	else
		unit_requeue(e, r, u);
	vd_buf_release(&line);
	vd_catalog_batch_free(b);
	return rc;
}

int vd_engine_api_result(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *lease_id, const json_t *meta,
			 const void *out, size_t outlen)
{
	struct result_meta m;
	struct vd_lease *l;
	struct vd_run *r;
	size_t u = 0;
	char ex[VD_EXEC_NAME_MAX + 1], task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	char blob[VD_ID_SIZE], what[256];
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_store_writer *w = NULL;
	vd_catalog_batch *b = NULL;
	json_t *memo = NULL;
	int rc;
	if ((rc = parse_result_meta(&m, why, meta)))
		return rc;
	if (outlen > VD_RESULT_MAX) {
		vd_buf_adds(why, "result is larger than the limit");
		return -EFBIG;
	}
	pthread_mutex_lock(&e->lock);
	if ((rc = lease_resolve(&l, &r, &u, ex, e, lease_id))) {
		if (rc == -ENOENT)
			vd_buf_adds(why, "unknown lease");
		goto unlock;
	}
	if (!r || r->finishing || r->units[u].state == VD_UNIT_DONE) {
		vd_buf_adds(why, "the unit already has a result or its run ended");
		e->m_late++;
		if (l)
			lease_drop(e, l, false);
		rc = -ESTALE;
		goto unlock;
	}
	what[0] = '\0';
	if (*m.reason)
		snprintf(what, sizeof what, "%s", m.reason);
	else if (m.sig)
		snprintf(what, sizeof what, "killed by signal %lld", m.sig);
	else if (m.exit)
		snprintf(what, sizeof what, "exit %lld", m.exit);
	else if (outlen == 0 && r->units[u].bytes > 0 && !r->cfg.allow_empty)
		snprintf(what, sizeof what, "no output (set allow_empty = true if "
			 "that is expected)");
	if (what[0]) {
		rc = record_failure(e, l, r, u, ex, &m, what);
		goto unlock;
	}
	snprintf(task, sizeof task, "%s", r->task);
	memcpy(data, r->data, VD_ID_SIZE);
	memcpy(code, r->code, VD_ID_SIZE);
	pthread_mutex_unlock(&e->lock);

	/* Store the output outside the lock; then check again that nobody
	 * else's result for the unit got in first. */
	if ((rc = vd_catalog_batch_new(&b)) || (rc = vd_store_writer_new(&w, e->store)) ||
	    (rc = vd_store_writer_put(blob, w, out, outlen)) ||
	    (rc = vd_store_writer_commit(w, b)))
		goto out;
	pthread_mutex_lock(&e->lock);
	lease_resolve(&l, &r, &u, ex, e, lease_id);
	if (!r || r->finishing || r->units[u].state == VD_UNIT_DONE ||
	    strcmp(r->task, task) || strcmp(r->data, data) || strcmp(r->code, code)) {
		vd_catalog_commit(e->cat, b, false);
		vd_buf_adds(why, "the unit already has a result or its run ended");
		e->m_late++;
		if (l)
			lease_drop(e, l, false);
		rc = -ESTALE;
		goto unlock;
	}
	struct vd_unit *un = &r->units[u];
	memo = json_pack("{s:s, s:I, s:s, s:I, s:I}", "blob", blob, "len",
			 (json_int_t)outlen, "executor", ex, "ms", (json_int_t)m.ms,
			 "time", (json_int_t)vd_now_ms());
	if (!memo) {
		rc = -ENOMEM;
		goto unlock;
	}
	memo_key(&k, code, r->out_key, un->id);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), memo)))
		goto unlock;
	vd_engine_log_add(b, e, task, data, code, "unit %zu/%zu executor=%s exit=0 "
			  "ms=%lld out=%zu", u, r->nunits, ex, m.ms, outlen);
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto unlock;
	un->state = VD_UNIT_DONE;
	snprintf(un->executor, sizeof un->executor, "%s", ex);
	r->ndone++;
	e->m_accepted++;
	struct vd_executor *x = find_exec(e, ex);
	if (x)
		x->units_done++;
	/* Other copies of this unit (an expired lease's executor may still
	 * be at it) are told by their next heartbeat. */
	for (struct vd_lease *o = e->leases, *next; o; o = next) {
		next = o->next;
		if (o->run == r && o->unit == u)
			lease_drop(e, o, false);
	}
	if (r->ndone == r->nunits) {
		r->finishing = true;
		pthread_cond_broadcast(&e->tick);
	}
	rc = 0;
unlock:
	pthread_mutex_unlock(&e->lock);
out:
	if (!rc) {
		*reply = json_pack("{s:b}", "accepted", 1);
		rc = *reply ? 0 : -ENOMEM;
	}
	json_decref(memo);
	vd_store_writer_free(w);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_api_code(struct vd_buf *out, struct vd_buf *why, vd_engine *e,
		       const char *code_id)
{
	struct vd_buf k = VD_BUF_INIT(128);
	char *val = NULL;
	size_t len;
	int rc;
	if (!vd_id_valid(code_id)) {
		vd_buf_adds(why, "not a valid code ID");
		return -EINVAL;
	}
	vd_engine_key(&k, "code", code_id, NULL, NULL);
	rc = vd_catalog_get(&val, &len, e->cat, vd_buf_cstr(&k));
	if (!rc)
		rc = vd_buf_add(out, val, len);
	else if (rc == -ENOENT)
		vd_buf_adds(why, "unknown code ID");
	free(val);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_api_chunk(struct vd_buf *out, struct vd_buf *why, vd_engine *e,
			const char *chunk_id)
{
	if (!vd_id_valid(chunk_id)) {
		vd_buf_adds(why, "not a valid chunk ID");
		return -EINVAL;
	}
	int rc = vd_store_read(out, e->store, chunk_id);
	if (rc == -ENOENT)
		vd_buf_adds(why, "unknown chunk ID");
	else if (rc)
		vd_buf_addf(why, "cannot read the chunk: %s", strerror(-rc));
	return rc;
}
