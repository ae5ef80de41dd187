/*
 * engine_lease.c - the executor protocol's work side: leasing units,
 * heartbeats, results (with replication), code and chunk downloads.
 *
 * Who gets what. A long-poll for executor x walks the active runs, oldest
 * first, skipping runs whose level is above x's. Within a run it first
 * looks, among the next pending units, for ones whose first chunk x
 * already holds (it fetched it, or listed it as cached when it
 * registered), then takes pending units in order. An executor never holds
 * two leases on one unit, nor gets a unit it already sent a result for.
 *
 * Stragglers. When a run has nothing pending left (the end is near: every
 * unit still to do is out), an executor that found no other work gets a
 * copy of the unit whose lease is oldest, once it has run for more than
 * twice the run's mean unit time (10 s before any unit finished). One
 * copy per unit; the first result wins and the other lease is told by its
 * next heartbeat (409).
 *
 * Replication. With replicas = N a unit wants N results from N different
 * executors that agree (equal output bytes, so equal stored blob IDs).
 * It is leased to N executors at once; a disagreement leaves it wanting
 * another result from a further executor, until N agree. Executors whose
 * output lost the vote are flagged (and get a strike). A unit that has
 * VD_VOTES_SPARE more results than it needs without agreement fails its run.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine_int.h"
#include "zframe.h"

/* Pending units looked at for ones whose chunks the executor holds. */
#define LOCALITY_WINDOW 256
/* A straggler copy is due after this many ms when no unit finished yet. */
#define COPY_AFTER_MS_DEFAULT 10000
#define COPY_AFTER_MS_MIN 1000
/* An executor may hold, beyond its slots, as many more units of a run as
 * its slots would run in this long at the run's mean unit time
 * (docs/executors.md, "How many units a lease request gets"). */
#define QUEUE_COVER_MS 100

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
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:i, s:I, s:i, "
			 "s:s, s:I, s:o, s:o, s:s}",
			 "lease", l->id, "task", r->task, "data_id", r->data, "code_id",
			 r->code, "unit", (json_int_t)l->unit, "units",
			 (json_int_t)r->nunits, "unit_id", un->id, "path",
			 r->man->kind == VD_KIND_TREE ? f->path : "", "format",
			 formats[r->cfg.format], "timeout_s", r->cfg.timeout_s,
			 "memory_bytes", (json_int_t)r->cfg.memory,
			 "lease_ms", e->lease_ms, "header", hdr ? hdr : "", "skip",
			 (json_int_t)un->skip, "chunks", chunks, "env", env, "mode",
			 r->cfg.mode == VD_MODE_PERSISTENT ? "persistent" : "exec");
}

/* ---- granting ---------------------------------------------------------- */

/* May x take a lease on unit u: it holds none on it and sent no result. */
static bool may_take(vd_engine *e, struct vd_run *r, size_t u,
		     const struct vd_executor *x)
{
	struct vd_unit *un = &r->units[u];
	for (int i = 0; i < un->nvotes; i++)
		if (!strcmp(un->votes[i].executor, x->name))
			return false;
	if (un->nleases == 0)
		return true;
	for (struct vd_lease *l = e->leases; l; l = l->next)
		if (l->run == r && l->unit == u && !strcmp(l->executor, x->name))
			return false;
	return true;
}

static void advance_cursor(struct vd_run *r)
{
	while (r->cursor < r->nunits && r->units[r->cursor].state != VD_UNIT_PENDING)
		r->cursor++;
}

/* Hand unit u of r to x (lock held); the record goes into b. */
static int lease_unit(json_t *list, vd_catalog_batch *b, vd_engine *e,
		      struct vd_executor *x, struct vd_run *r, size_t u, bool copy)
{
	struct vd_unit *un = &r->units[u];
	struct vd_lease *l = calloc(1, sizeof *l);
	unsigned char raw[16];
	if (!l || getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
		free(l);
		return -ENOMEM;
	}
	for (int i = 0; i < 16; i++)
		snprintf(l->id + 2 * i, 3, "%02x", raw[i]);
	l->run = r;
	l->unit = u;
	snprintf(l->executor, sizeof l->executor, "%s", x->name);
	l->granted_ms = vd_mono_ms();
	l->expires_ms = l->granted_ms + e->lease_ms;
	l->copy = copy;
	l->next = e->leases;
	e->leases = l;
	un->nleases++;
	x->active++;
	if (!r->started) {
		r->started = true;
		r->started_ms = vd_now_ms();
		vd_engine_event_run(e, r, "running");
	}
	if (copy) {
		un->copied = true;
		e->m_copies++;
		vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu "
				  "straggler: a copy goes to executor=%s", u, r->nunits,
				  x->name);
	}
	vd_engine_unit_update(e, r, u);
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
	return 0;
}

/* Pending units of one run for x, those whose chunks it holds first. */
static int grant_run(json_t *list, vd_catalog_batch *b, vd_engine *e,
		     struct vd_executor *x, struct vd_run *r, long long max)
{
	int granted = 0, rc;
	advance_cursor(r);
	if (x->held.n) {
		size_t seen = 0;
		for (size_t u = r->cursor; u < r->nunits && seen < LOCALITY_WINDOW &&
		     granted < max; u++) {
			struct vd_unit *un = &r->units[u];
			if (un->state != VD_UNIT_PENDING)
				continue;
			seen++;
			const char *first = r->man->files[un->file].ext[un->first].id;
			if (!vd_idset_has(&x->held, first) || !may_take(e, r, u, x))
				continue;
			if ((rc = lease_unit(list, b, e, x, r, u, false)))
				return granted ? granted : rc;
			granted++;
		}
	}
	for (size_t u = r->cursor; u < r->nunits && granted < max; u++) {
		if (r->units[u].state != VD_UNIT_PENDING || !may_take(e, r, u, x))
			continue;
		if ((rc = lease_unit(list, b, e, x, r, u, false)))
			return granted ? granted : rc;
		granted++;
	}
	advance_cursor(r);
	return granted;
}

/* A straggler copy from a run with nothing pending, for an idle x. */
static int grant_copy(json_t *list, vd_catalog_batch *b, vd_engine *e,
		      struct vd_executor *x, struct vd_run *r)
{
	advance_cursor(r);
	if (r->cursor < r->nunits)
		return 0;     /* still pending work: not the end yet */
	int64_t now = vd_mono_ms(), after = COPY_AFTER_MS_DEFAULT;
	if (r->done_ms_n) {
		after = 2 * r->done_ms_sum / (int64_t)r->done_ms_n;
		if (after < COPY_AFTER_MS_MIN)
			after = COPY_AFTER_MS_MIN;
	}
	struct vd_lease *best = NULL;
	for (struct vd_lease *l = e->leases; l; l = l->next) {
		if (l->run != r || l->copy || now - l->granted_ms < after)
			continue;
		struct vd_unit *un = &r->units[l->unit];
		if (un->copied || un->state == VD_UNIT_DONE || !may_take(e, r, l->unit, x))
			continue;
		if (!best || l->granted_ms < best->granted_ms)
			best = l;
	}
	if (!best)
		return 0;
	int rc = lease_unit(list, b, e, x, r, best->unit, true);
	return rc ? rc : 1;
}

/*
 * How many of r's units x may take now, of the want it asks for: its free
 * slots (slots less the leases it holds, queued ones too), and beyond them
 * what its slots would get through in QUEUE_COVER_MS at r's mean unit
 * time. Units of a second take a slot's worth and no more: queued behind
 * a long unit they would only wait (and look like stragglers), while
 * another executor could run them. Units of a millisecond take up to the
 * want (256 at most), so that a lease round trip brings an executor work
 * for many units. Before any unit of r is done its time is not known:
 * the free slots.
 */
static long long lease_budget(const struct vd_executor *x, const struct vd_run *r,
			      long long want)
{
	long long extra = 0, room;
	if (r->done_ms_n) {
		long long mean = r->done_ms_sum / (long long)r->done_ms_n;
		extra = (long long)x->slots * QUEUE_COVER_MS / (mean > 0 ? mean : 1);
	}
	room = (long long)x->slots + extra - x->active;
	if (room > want)
		room = want;
	return room > 0 ? room : 0;
}

/* Lease up to max units to x (lock held); records go into b. */
static int grant(json_t *list, vd_catalog_batch *b, vd_engine *e,
		 struct vd_executor *x, long long max)
{
	int granted = 0, rc;
	for (struct vd_run *r = e->runs; r && granted < max; r = r->next) {
		if (r->finishing || r->doomed || r->cfg.level > x->level)
			continue;
		long long budget = lease_budget(x, r, max - granted);
		if (budget <= 0)
			continue;
		if ((rc = grant_run(list, b, e, x, r, budget)) < 0)
			return granted ? granted : rc;
		granted += rc;
	}
	for (struct vd_run *r = e->runs; r && !granted; r = r->next) {
		if (r->finishing || r->doomed || r->cfg.level > x->level)
			continue;
		if ((rc = grant_copy(list, b, e, x, r)) < 0)
			return rc;
		granted += rc;
	}
	return granted;
}

int vd_engine_api_lease(json_t **reply, struct vd_buf *why, vd_engine *e,
			const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "executor"));
	long long max, wait, inline_max;
	vd_catalog_batch *b = NULL;
	json_t *list = NULL;
	int rc;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "'executor' must name a registered executor");
		return -EINVAL;
	}
	if ((rc = vd_engine_int_field(&max, why, req, "max", 1, 256, 1)) ||
	    (rc = vd_engine_int_field(&wait, why, req, "wait_ms", 0, INT32_MAX, 0)) ||
	    (rc = vd_engine_int_field(&inline_max, why, req, "inline_max", 0, INT32_MAX, 0)))
		return rc;
	if (wait > VD_LEASE_WAIT_MAX_MS)
		wait = VD_LEASE_WAIT_MAX_MS;
	/* A poll is held at most half a lease, so that an executor that died
	 * in one shows as gone within a lease time (see exec_state). */
	if (wait > e->lease_ms / 2)
		wait = e->lease_ms / 2;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	if (!(list = json_array())) {
		rc = -ENOMEM;
		goto out;
	}
	int64_t deadline = vd_mono_ms() + wait;
	unsigned generation = 0;
	bool first = true;
	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct vd_executor *x = vd_engine_find_exec(e, name);
		if (!x) {
			vd_buf_addf(why, "executor '%s' is not registered", name);
			rc = -EPERM;
			break;
		}
		/* Seen when the poll came in, and expected back when it ends;
		 * not at every wake-up in between: an executor killed during
		 * its poll is not there any more, though its poll still is. */
		if (first) {
			x->last_seen_ms = vd_mono_ms();
			x->poll_until_ms = deadline;
			x->left = false;
			generation = x->generation;
			first = false;
		} else if (x->generation != generation) {
			/* It registered again or left since: this poll's client
			 * is gone, and what it took would wait out its term. */
			rc = -EAGAIN;
			break;
		}
		if (e->stopping) {
			vd_buf_adds(why, "the daemon is shutting down");
			rc = -ESHUTDOWN;
			break;
		}
		rc = vd_engine_exec_usable(e, x) ? grant(list, b, e, x, max) : 0;
		if (rc != 0)
			break;
		/* Wake at least once a second: straggler copies and the end of
		 * a quarantine come with time, not with a signal. */
		int64_t now = vd_mono_ms();
		if (now >= deadline) {
			rc = -EAGAIN;
			break;
		}
		int64_t until = deadline - now > 1000 ? now + 1000 : deadline;
		struct timespec ts = { .tv_sec = until / 1000,
				       .tv_nsec = (long)(until % 1000) * 1000000L };
		pthread_cond_timedwait(&e->work, &e->lock, &ts);
	}
	if (vd_catalog_batch_count(b))
		vd_catalog_commit(e->cat, b, false);
	pthread_mutex_unlock(&e->lock);
	if (rc > 0) {
		if (inline_max > 0)
			vd_engine_lease_inline(e, list, (size_t)inline_max);
		*reply = json_pack("{s:O}", "leases", list);
		rc = *reply ? 0 : -ENOMEM;
	}
out:
	json_decref(list);
	vd_catalog_batch_free(b);
	return rc;
}

/* ---- leases after the fact ------------------------------------------- */

/* Look a lease up in memory or, after a restart or expiry, in the catalog.
 * Fills run and unit when its run is still active. -ENOENT when unknown. */
int vd_engine_lease_resolve(struct vd_lease **lp, struct vd_run **rp, size_t *up,
			    char executor[VD_EXEC_NAME_MAX + 1], vd_engine *e,
			    const char *id)
{
	struct vd_lease *l = vd_engine_find_lease(e, id);
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
	struct vd_run *r = task && data && code ? vd_engine_find_run(e, task, data, code)
						: NULL;
	if (r && unit >= 0 && (size_t)unit < r->nunits) {
		*rp = r;
		*up = (size_t)unit;
	}
	snprintf(executor, VD_EXEC_NAME_MAX + 1, "%s", ex ? ex : "");
	json_decref(j);
	return 0;
}

int vd_engine_lease_owner(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
			  const char *lease_id)
{
	struct vd_lease *l;
	struct vd_run *r;
	size_t u;
	char ex[VD_EXEC_NAME_MAX + 1];
	if (!vd_id_valid(lease_id))
		return -ENOENT;
	pthread_mutex_lock(&e->lock);
	int rc = vd_engine_lease_resolve(&l, &r, &u, ex, e, lease_id);
	pthread_mutex_unlock(&e->lock);
	if (!rc)
		snprintf(name, VD_EXECUTOR_NAME_SIZE, "%s", ex);
	return rc;
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
	rc = vd_engine_lease_resolve(&l, &r, &u, ex, e, lease_id);
	if (rc == -ENOENT) {
		vd_buf_adds(why, "unknown lease");
	} else if (rc == 0 && (!l || !r || r->units[u].state == VD_UNIT_DONE || r->finishing)) {
		vd_buf_adds(why, "lease is no longer valid: the unit is done, "
			    "the run ended or the lease expired");
		rc = -ESTALE;
	} else if (rc == 0) {
		l->expires_ms = vd_mono_ms() + e->lease_ms;
		struct vd_executor *x = vd_engine_find_exec(e, l->executor);
		if (x)
			x->last_seen_ms = vd_mono_ms();
	}
	pthread_mutex_unlock(&e->lock);
	if (rc)
		return rc;
	*reply = json_pack("{s:i}", "lease_ms", e->lease_ms);
	return *reply ? 0 : -ENOMEM;
}

/* ---- downloads ----------------------------------------------------------- */

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

int vd_engine_api_chunk_stored(struct vd_buf *out, bool *zstd, uint64_t *raw_len,
			       struct vd_buf *why, vd_engine *e, const char *chunk_id)
{
	if (!vd_id_valid(chunk_id)) {
		vd_buf_adds(why, "not a valid chunk ID");
		return -EINVAL;
	}
	int rc = vd_store_read_stored(out, zstd, raw_len, e->store, chunk_id);
	if (rc == -ENOENT)
		vd_buf_adds(why, "unknown chunk ID");
	else if (rc)
		vd_buf_addf(why, "cannot read the chunk: %s", strerror(-rc));
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
