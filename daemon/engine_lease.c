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

/* Lease up to max units to x (lock held); records go into b. */
static int grant(json_t *list, vd_catalog_batch *b, vd_engine *e,
		 struct vd_executor *x, long long max)
{
	int granted = 0, rc;
	for (struct vd_run *r = e->runs; r && granted < max; r = r->next) {
		if (r->finishing || r->doomed || r->cfg.level > x->level)
			continue;
		if ((rc = grant_run(list, b, e, x, r, max - granted)) < 0)
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
	long long max, wait;
	vd_catalog_batch *b = NULL;
	json_t *list = NULL;
	int rc;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "'executor' must name a registered executor");
		return -EINVAL;
	}
	if ((rc = vd_engine_int_field(&max, why, req, "max", 1, 256, 1)) ||
	    (rc = vd_engine_int_field(&wait, why, req, "wait_ms", 0, INT32_MAX, 0)))
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
static int lease_resolve(struct vd_lease **lp, struct vd_run **rp, size_t *up,
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
	int rc = lease_resolve(&l, &r, &u, ex, e, lease_id);
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
	rc = lease_resolve(&l, &r, &u, ex, e, lease_id);
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

/* ---- results ----------------------------------------------------------- */

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
	if ((rc = vd_engine_int_field(&m->exit, why, meta, "exit", -1000, 1000, 0)) ||
	    (rc = vd_engine_int_field(&m->sig, why, meta, "signal", 0, 128, 0)) ||
	    (rc = vd_engine_int_field(&m->ms, why, meta, "ms", 0, INT64_MAX, 0)))
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
	/* The executor could not get the unit's inputs: the daemon's or the
	 * network's trouble, not the function's. It still counts towards
	 * the unit's retries, or a lost chunk would be retried forever. */
	bool infra = !strncmp(what, "input:", 6);
	struct vd_executor *x = vd_engine_find_exec(e, executor);
	if (x && infra)
		x->infra_failed++;
	else if (x)
		x->units_failed++;
	if (x)
		vd_engine_exec_counts_put(b, x);
	if (infra)
		vd_engine_exec_strike(e, executor, what);
	memmove(un->failed_by[1], un->failed_by[0], sizeof un->failed_by[0]);
	snprintf(un->failed_by[0], sizeof un->failed_by[0], "%s", executor);
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
		vd_engine_add_one_line(&line, tmp, 300);
	}
	struct vd_buf tail = VD_BUF_INIT(VD_STDERR_TAIL * 4);
	vd_engine_add_one_line(&tail, m->stderr_tail ? m->stderr_tail : "", VD_STDERR_TAIL);
	vd_engine_log_add(b, e, r->task, r->data, r->code,
			  "unit %zu/%zu executor=%s failed (attempt %d of %d): %s "
			  "ms=%lld stderr: %s", u, r->nunits, executor, un->failures,
			  r->cfg.retries, what, m->ms, vd_buf_cstr(&tail));
	vd_buf_release(&tail);
	rc = vd_catalog_commit(e->cat, b, true);
	if (l)
		vd_engine_lease_drop(e, l);
	if (un->failures >= r->cfg.retries)
		rc = vd_engine_run_fail(e, r, vd_buf_cstr(&line));
	else
		vd_engine_unit_update(e, r, u);
	vd_buf_release(&line);
	vd_catalog_batch_free(b);
	return rc;
}

/* Count an accepted result (lock held): units_done for the executors whose
 * output it was, flagged for those whose output disagreed; `add` false
 * takes that back (the batch did not commit). Each changed executor's
 * counters go into b unless it is NULL. */
static void count_result(vd_catalog_batch *b, vd_engine *e, const struct vd_unit *un,
			 const char *blob, const char *executor, bool add)
{
	for (int i = 0; i < un->nvotes || i == 0; i++) {
		const char *name = un->nvotes ? un->votes[i].executor : executor;
		bool agreed = !un->nvotes || !strcmp(un->votes[i].blob, blob);
		struct vd_executor *x = vd_engine_find_exec(e, name);
		if (!x)
			continue;
		uint64_t *n = agreed ? &x->units_done : &x->flagged;
		if (add)
			(*n)++;
		else if (*n)
			(*n)--;
		if (b)
			vd_engine_exec_counts_put(b, x);
	}
}

/* Accept blob as unit u's output (lock held): memoize it, count it for the
 * executors that produced it, flag those that disagreed, drop the unit's
 * other leases. The writer's index entries are already in b. */
static int accept_result(vd_catalog_batch *b, vd_engine *e, struct vd_run *r,
			 size_t u, const char *blob, uint64_t len, long long ms,
			 const char *executor)
{
	struct vd_unit *un = &r->units[u];
	struct vd_buf k = VD_BUF_INIT(1024), who = VD_BUF_INIT(4096);
	json_t *memo = NULL, *agreed = json_array();
	int rc;
	for (int i = 0; i < un->nvotes; i++)
		if (!strcmp(un->votes[i].blob, blob)) {
			json_array_append_new(agreed, json_string(un->votes[i].executor));
			vd_buf_addf(&who, "%s%s", who.len ? "," : "", un->votes[i].executor);
		}
	if (!un->nvotes) {
		json_array_append_new(agreed, json_string(executor));
		vd_buf_adds(&who, executor);
	}
	memo = json_pack("{s:s, s:I, s:s, s:I, s:I, s:o}", "blob", blob, "len",
			 (json_int_t)len, "executor", executor, "ms", (json_int_t)ms,
			 "time", (json_int_t)vd_now_ms(), "agreed", agreed);
	agreed = NULL;
	if (!memo) {
		rc = -ENOMEM;
		goto out;
	}
	vd_engine_memo_key(&k, r->code, r->out_key, un->id);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), memo)))
		goto out;
	vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu executor=%s "
			  "exit=0 ms=%lld out=%llu%s%s", u, r->nunits, executor, ms,
			  (unsigned long long)len, un->nvotes ? " agreed by " : "",
			  un->nvotes ? vd_buf_cstr(&who) : "");
	for (int i = 0; i < un->nvotes; i++) {
		if (!strcmp(un->votes[i].blob, blob))
			continue;
		e->m_mismatches++;
		vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu "
				  "executor=%s disagreed with %s (its output %llu bytes, "
				  "agreed %llu bytes): flagged", u, r->nunits,
				  un->votes[i].executor, vd_buf_cstr(&who),
				  (unsigned long long)un->votes[i].len,
				  (unsigned long long)len);
		vd_warn("executor %s disagreed with %s on unit %zu of %s: flagged",
			un->votes[i].executor, vd_buf_cstr(&who), u, r->task);
		vd_engine_exec_strike(e, un->votes[i].executor, "its output disagreed "
				      "with the other replicas");
	}
	/* The executors' counters go in the batch that records the result, so
	 * that they survive a restart with it; taken back if it fails. */
	count_result(b, e, un, blob, executor, true);
	if ((rc = vd_catalog_commit(e->cat, b, true))) {
		count_result(NULL, e, un, blob, executor, false);
		goto out;
	}
	un->state = VD_UNIT_DONE;
	snprintf(un->executor, sizeof un->executor, "%s", executor);
	r->ndone++;
	r->done_ms_sum += ms;
	r->done_ms_n++;
	e->m_accepted++;
	vd_engine_event_unit(e, r);
	for (int i = 0; i < un->nvotes || i == 0; i++) {
		const char *name = un->nvotes ? un->votes[i].executor : executor;
		if (un->nvotes && strcmp(un->votes[i].blob, blob))
			continue;
		vd_engine_exec_success(e, name);
	}
	/* Failing where another succeeds is the executor's fault, not the
	 * function's. */
	for (int i = 0; i < 2; i++)
		if (un->failed_by[i][0] && strcmp(un->failed_by[i], executor))
			vd_engine_exec_strike(e, un->failed_by[i], "failed a unit that "
					      "succeeded elsewhere");
	free(un->votes);
	un->votes = NULL;
	un->nvotes = 0;
	/* Other copies of this unit are told by their next heartbeat. */
	for (struct vd_lease *o = e->leases, *next; o; o = next) {
		next = o->next;
		if (o->run == r && o->unit == u)
			vd_engine_lease_drop(e, o);
	}
	if (r->ndone == r->nunits) {
		r->finishing = true;
		pthread_cond_broadcast(&e->tick);
	}
out:
	json_decref(agreed);
	json_decref(memo);
	vd_buf_release(&k);
	vd_buf_release(&who);
	return rc;
}

/* One result of a replicated unit (lock held). Returns 0 when it was
 * recorded (accepted, or waiting for agreement). */
static int add_vote(vd_catalog_batch *b, vd_engine *e, struct vd_lease *l,
		    struct vd_run *r, size_t u, const char *blob, uint64_t len,
		    long long ms, const char *executor)
{
	struct vd_unit *un = &r->units[u];
	struct vd_vote *nv = realloc(un->votes, (size_t)(un->nvotes + 1) * sizeof *nv);
	if (!nv)
		return -ENOMEM;
	un->votes = nv;
	struct vd_vote *v = &un->votes[un->nvotes++];
	memset(v, 0, sizeof *v);
	snprintf(v->executor, sizeof v->executor, "%s", executor);
	memcpy(v->blob, blob, VD_ID_SIZE);
	v->len = len;
	v->ms = ms;
	int agree = 0;
	for (int i = 0; i < un->nvotes; i++)
		agree += !strcmp(un->votes[i].blob, blob);
	if (l)
		vd_engine_lease_drop(e, l);
	if (agree >= r->cfg.replicas)
		return accept_result(b, e, r, u, blob, len, ms, executor);
	vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu executor=%s "
			  "exit=0 ms=%lld out=%llu: result %d, %d of %d agreeing so far",
			  u, r->nunits, executor, ms, (unsigned long long)len, un->nvotes,
			  agree, r->cfg.replicas);
	int rc = vd_catalog_commit(e->cat, b, true);
	if (!rc && un->nvotes >= r->cfg.replicas + VD_VOTES_SPARE) {
		char why[200];
		snprintf(why, sizeof why, "unit %zu: %d results from different executors "
			 "and no %d of them agree", u, un->nvotes, r->cfg.replicas);
		return vd_engine_run_fail(e, r, why);
	}
	vd_engine_unit_update(e, r, u);
	return rc;
}

/* A result's output as it came: raw bytes (zstd false: out, outlen), or
 * a zstd frame of outlen raw bytes whose ID the executor says is id. */
struct result_out {
	const void *p;
	size_t n;
	bool zstd;
	const char *id;
};

static int take_result(json_t **reply, struct vd_buf *why, vd_engine *e,
		       const char *lease_id, const json_t *meta, const struct result_out *o,
		       size_t outlen)
{
	const void *out = o->p;
	struct result_meta m;
	struct vd_lease *l;
	struct vd_run *r;
	size_t u = 0;
	char ex[VD_EXEC_NAME_MAX + 1], task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	char blob[VD_ID_SIZE], what[256];
	vd_store_writer *w = NULL;
	vd_catalog_batch *b = NULL;
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
	struct vd_executor *sender = vd_engine_find_exec(e, ex);
	if (sender)
		sender->last_seen_ms = vd_mono_ms();
	if (!r || r->finishing || r->units[u].state == VD_UNIT_DONE) {
		vd_buf_adds(why, "the unit already has a result or its run ended");
		e->m_late++;
		if (l)
			vd_engine_lease_drop(e, l);
		rc = -ESTALE;
		goto unlock;
	}
	for (int i = 0; i < r->units[u].nvotes; i++)
		if (!strcmp(r->units[u].votes[i].executor, ex)) {
			vd_buf_adds(why, "this executor already sent a result for the unit");
			e->m_late++;
			if (l)
				vd_engine_lease_drop(e, l);
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

	/* A frame must be the output it claims to be before it is kept as
	 * it is: decoded (at most outlen bytes) into the hash here, once the
	 * result is known to be wanted. The store checks it again as it
	 * puts it; a failure there is then the disk's, not the sender's. */
	if (o->zstd) {
		uint64_t got_len = 0;
		rc = vd_zframe_id(blob, &got_len, &e->key, o->p, o->n, outlen);
		if (rc == -ENOMEM)
			goto out;
		if (rc || got_len != outlen || strcmp(blob, o->id)) {
			vd_buf_addf(why, "the zstd output does not decompress to the out_bytes "
				    "(%zu) bytes with the ID out_id", outlen);
			rc = -EINVAL;
			goto out;
		}
	}
	/* Store the output outside the lock; then check again that nobody
	 * else's result for the unit got in first. */
	if ((rc = vd_catalog_batch_new(&b)) || (rc = vd_store_writer_new(&w, e->store)) ||
	    (rc = o->zstd ? vd_store_writer_put_zstd(w, o->id, o->p, o->n, outlen)
			  : vd_store_writer_put(blob, w, out, outlen)) ||
	    (rc = vd_store_writer_commit(w, b))) {
		vd_engine_disk_note(e, rc);
		goto out;
	}
	pthread_mutex_lock(&e->lock);
	lease_resolve(&l, &r, &u, ex, e, lease_id);
	if (!r || r->finishing || r->units[u].state == VD_UNIT_DONE ||
	    strcmp(r->task, task) || strcmp(r->data, data) || strcmp(r->code, code)) {
		vd_catalog_commit(e->cat, b, false);
		vd_buf_adds(why, "the unit already has a result or its run ended");
		e->m_late++;
		if (l)
			vd_engine_lease_drop(e, l);
		rc = -ESTALE;
		goto unlock;
	}
	/* A function that succeeded may still have had something to say
	 * (bytes it could not decode, rows it skipped): keep it in the log,
	 * in the batch that records the result. */
	if (m.stderr_tail && *m.stderr_tail) {
		struct vd_buf tail = VD_BUF_INIT(VD_STDERR_TAIL * 4);
		vd_engine_add_one_line(&tail, m.stderr_tail, VD_STDERR_TAIL);
		vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu "
				  "executor=%s stderr: %s", u, r->nunits, ex, vd_buf_cstr(&tail));
		vd_buf_release(&tail);
	}
	if (r->cfg.replicas > 1) {
		rc = add_vote(b, e, l, r, u, blob, outlen, m.ms, ex);
	} else {
		/* The lease goes with the unit's other leases once the result
		 * is committed; if the commit fails (a full disk), the
		 * executor still holds it and sends the result again. */
		rc = accept_result(b, e, r, u, blob, outlen, m.ms, ex);
	}
	vd_engine_disk_note(e, rc);
unlock:
	pthread_mutex_unlock(&e->lock);
out:
	if (!rc) {
		*reply = json_pack("{s:b}", "accepted", 1);
		rc = *reply ? 0 : -ENOMEM;
	}
	vd_store_writer_free(w);
	vd_catalog_batch_free(b);
	return rc;
}

int vd_engine_api_result(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *lease_id, const json_t *meta,
			 const void *out, size_t outlen)
{
	struct result_out o = { out, outlen, false, NULL };
	return take_result(reply, why, e, lease_id, meta, &o, outlen);
}

int vd_engine_api_result_zstd(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *lease_id, const json_t *meta,
			      const void *frame, size_t n, size_t outlen, const char *out_id)
{
	struct result_out o = { frame, n, true, out_id };
	if (!vd_id_valid(out_id)) {
		vd_buf_adds(why, "out_id must be the output's ID (32 lowercase hex digits)");
		return -EINVAL;
	}
	return take_result(reply, why, e, lease_id, meta, &o, outlen);
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
