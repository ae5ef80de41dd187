/*
 * engine_result.c - units' results: one (PUT /v1/results/<lease>) or
 * several in one request (POST /v1/results), taken by the same code.
 *
 * A request's results go through three steps:
 *  1. under e->lock, each is looked up (lease_resolve) and checked: an
 *     unknown lease, another executor's lease, a late or duplicate result
 *     (also a second result for one unit in the same request) end there;
 *     a failed attempt (a non-zero exit, a reason, no output where output
 *     is wanted) is recorded at once, in a commit of its own
 *     (record_failure): failures are rare, and may end their run;
 *  2. without the lock, the wanted outputs are checked (a zstd frame must
 *     decode to the output it claims to be) and put through ONE store
 *     writer: one pack, made durable once, whose index entries go into one
 *     catalog batch;
 *  3. under e->lock again, each is checked once more (another request may
 *     have got in first) and staged into that batch: the memo, the log
 *     lines, the executors' counters, a replica's vote. The batch is
 *     committed ONCE, synced, and WITHOUT e->lock: the units it accepts
 *     are marked `committing` meanwhile, so that another result for one
 *     of them is answered "later" (503) instead of being staged too.
 *     Only after the commit, under the lock again, does memory say the
 *     units are done (the apply step), and only then is any answered.
 * So an answered 200 is on disk, and N results in one request cost one
 * fsync of a pack and one of the catalog's log instead of N of each.
 * The sync without the lock is what lets requests of several executors
 * share one: RocksDB joins concurrent synced writes into one write group
 * with one fsync of its log, while leases, heartbeats and other results
 * go on; with the lock held every fsync stopped the whole engine.
 *
 * While unlocked, the run may end (cancelled, failed by another result):
 * after the commit each result's run is looked up again by its name, and
 * a result whose unit is no longer the one marked is answered 200 (it is
 * on disk, in the memo a later run of the same code finds) but changes
 * nothing in memory. The executors' counters in two batches committed
 * at once may land in either order: a counter can come back from a
 * restart a few short, never a result.
 *
 * Staging never frees a run; a run that fails because its replicas cannot
 * agree is failed after every result of the request was applied.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "zframe.h"

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

/* Stage blob as unit u's output (lock held): the memo, the log lines and
 * the counters of the executors whose output it was (flagged for those
 * that disagreed) go into b; accept_apply does the rest once b is
 * committed, accept_undo takes the counters back if it is not. */
static int accept_stage(vd_catalog_batch *b, vd_engine *e, struct vd_run *r,
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
out:
	json_decref(agreed);
	json_decref(memo);
	vd_buf_release(&k);
	vd_buf_release(&who);
	return rc;
}

static void accept_undo(vd_engine *e, struct vd_run *r, size_t u, const char *blob,
			const char *executor)
{
	count_result(NULL, e, &r->units[u], blob, executor, false);
}

/* The result staged by accept_stage is committed (lock held): the unit is
 * done, its other leases go (they are told by their next heartbeat). */
static void accept_apply(vd_engine *e, struct vd_run *r, size_t u, const char *blob,
			 long long ms, const char *executor)
{
	struct vd_unit *un = &r->units[u];
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
	for (struct vd_lease *o = e->leases, *next; o; o = next) {
		next = o->next;
		if (o->run == r && o->unit == u)
			vd_engine_lease_drop(e, o);
	}
	if (r->ndone == r->nunits) {
		r->finishing = true;
		pthread_cond_broadcast(&e->tick);
	}
}

/* One result of a replicated unit (lock held): its vote is counted and its
 * lease goes at once (as before this was batched: a failed commit leaves
 * the vote counted, and the result sent again is a duplicate). *accepted
 * says whether it made the unit's agreement, and was staged as the
 * unit's output. */
static int vote_stage(bool *accepted, vd_catalog_batch *b, vd_engine *e,
		      struct vd_lease *l, struct vd_run *r, size_t u, const char *blob,
		      uint64_t len, long long ms, const char *executor)
{
	struct vd_unit *un = &r->units[u];
	struct vd_vote *nv = realloc(un->votes, (size_t)(un->nvotes + 1) * sizeof *nv);
	*accepted = false;
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
	if (agree >= r->cfg.replicas) {
		*accepted = true;
		return accept_stage(b, e, r, u, blob, len, ms, executor);
	}
	vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu executor=%s "
			  "exit=0 ms=%lld out=%llu: result %d, %d of %d agreeing so far",
			  u, r->nunits, executor, ms, (unsigned long long)len, un->nvotes,
			  agree, r->cfg.replicas);
	return 0;
}

/* ---- a request of results ------------------------------------------------ */

/* One result of a request, while it is taken. */
struct item {
	struct vd_result_in *in;
	struct result_meta m;
	bool live;                /* still on its way in */
	bool resolved;            /* task, data, code, unit name its unit */
	enum { STAGED_NONE, STAGED_ACCEPT, STAGED_VOTE } staged;
	bool doomed;              /* its vote left no agreement possible */
	char ex[VD_EXEC_NAME_MAX + 1], task[256], data[VD_ID_SIZE], code[VD_ID_SIZE];
	size_t unit;
	char blob[VD_ID_SIZE];
	struct vd_run *r;         /* step 3: found again after the unlocked commit */
};

static void item_end(struct item *it, int rc, const char *why)
{
	it->live = false;
	it->in->rc = rc;
	snprintf(it->in->why, sizeof it->in->why, "%s", why ? why : "");
}

static void item_end_buf(struct item *it, int rc, struct vd_buf *why)
{
	item_end(it, rc, vd_buf_cstr(why));
	vd_buf_reset(why);
}

/* Has an earlier result of this request named the same unit? */
static bool item_dup(const struct item *v, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (v[j].resolved && v[j].unit == v[i].unit && !strcmp(v[j].task, v[i].task) &&
		    !strcmp(v[j].data, v[i].data) && !strcmp(v[j].code, v[i].code))
			return true;
	return false;
}

/* Whether unit u of run r (NULL: gone) may still take this result (lock
 * held); else it is answered: 409 when the unit has a result or its run
 * ended (its lease goes), 503 while another result for it is being
 * committed. */
static bool unit_open(vd_engine *e, struct item *it, struct vd_lease *l, struct vd_run *r,
		      size_t u)
{
	if (!r || r->finishing || r->units[u].state == VD_UNIT_DONE) {
		e->m_late++;
		if (l)
			vd_engine_lease_drop(e, l);
		item_end(it, -ESTALE, "the unit already has a result or its run ended");
		return false;
	}
	if (r->units[u].committing) {
		item_end(it, -ESHUTDOWN, "another result for this unit is being committed: "
			 "send this one again");
		return false;
	}
	return true;
}

/* Step 1 for one result (lock held). */
static void item_check(vd_engine *e, const char *executor, struct item *v, size_t i)
{
	struct item *it = &v[i];
	struct vd_lease *l;
	struct vd_run *r;
	size_t u = 0;
	char what[256];
	int rc;
	if ((rc = vd_engine_lease_resolve(&l, &r, &u, it->ex, e, it->in->lease))) {
		item_end(it, rc, rc == -ENOENT ? "unknown lease" : NULL);
		return;
	}
	if (executor && strcmp(executor, it->ex)) {
		item_end(it, -EPERM, "this lease was granted to another executor");
		return;
	}
	struct vd_executor *sender = vd_engine_find_exec(e, it->ex);
	if (sender)
		sender->last_seen_ms = vd_mono_ms();
	if (!unit_open(e, it, l, r, u))
		return;
	snprintf(it->task, sizeof it->task, "%s", r->task);
	memcpy(it->data, r->data, VD_ID_SIZE);
	memcpy(it->code, r->code, VD_ID_SIZE);
	it->unit = u;
	it->resolved = true;
	if (item_dup(v, i)) {
		e->m_late++;
		item_end(it, -ESTALE, "this request already has a result for the unit");
		return;
	}
	for (int k = 0; k < r->units[u].nvotes; k++)
		if (!strcmp(r->units[u].votes[k].executor, it->ex)) {
			e->m_late++;
			if (l)
				vd_engine_lease_drop(e, l);
			item_end(it, -ESTALE, "this executor already sent a result for the unit");
			return;
		}
	const struct result_meta *m = &it->m;
	what[0] = '\0';
	if (*m->reason)
		snprintf(what, sizeof what, "%s", m->reason);
	else if (m->sig)
		snprintf(what, sizeof what, "killed by signal %lld", m->sig);
	else if (m->exit)
		snprintf(what, sizeof what, "exit %lld", m->exit);
	else if (it->in->outlen == 0 && r->units[u].bytes > 0 && !r->cfg.allow_empty)
		snprintf(what, sizeof what, "no output (set allow_empty = true if "
			 "that is expected)");
	if (what[0]) {
		rc = record_failure(e, l, r, u, it->ex, m, what);
		item_end(it, rc, NULL);
	}
}

/* Step 2: the wanted outputs, checked and written (no lock). The
 * writer's index entries go into b. */
static void items_store(vd_engine *e, struct item *v, size_t n, vd_catalog_batch *b,
			struct vd_buf *why)
{
	vd_store_writer *w = NULL;
	size_t live = 0;
	int rc;
	/* A frame must be the output it claims to be before it is kept as
	 * it is: decoded (at most outlen bytes) into the hash here, once the
	 * result is known to be wanted. The store checks it again as it
	 * puts it; a failure there is then the disk's, not the sender's. */
	for (size_t i = 0; i < n; i++) {
		struct item *it = &v[i];
		const struct vd_result_in *in = it->in;
		uint64_t got_len = 0;
		if (!it->live)
			continue;
		if (in->zstd) {
			rc = vd_zframe_id(it->blob, &got_len, &e->key, in->out, in->n, in->outlen);
			if (rc == -ENOMEM) {
				item_end(it, rc, NULL);
				continue;
			}
			if (rc || got_len != in->outlen || strcmp(it->blob, in->out_id)) {
				vd_buf_addf(why, "the zstd output does not decompress to the "
					    "out_bytes (%zu) bytes with the ID out_id", in->outlen);
				item_end_buf(it, -EINVAL, why);
				continue;
			}
		}
		live++;
	}
	if (!live)
		return;
	/* Store the outputs outside the lock, in one pack; step 3 then checks
	 * again that nobody else's result for a unit got in first. */
	rc = vd_store_writer_new(&w, e->store);
	for (size_t i = 0; !rc && i < n; i++) {
		struct item *it = &v[i];
		const struct vd_result_in *in = it->in;
		if (!it->live)
			continue;
		rc = in->zstd ? vd_store_writer_put_zstd(w, in->out_id, in->out, in->n, in->outlen)
			      : vd_store_writer_put(it->blob, w, in->out, in->outlen);
	}
	if (!rc)
		rc = vd_store_writer_commit(w, b);
	vd_store_writer_free(w);
	if (rc) {
		vd_engine_disk_note(e, rc);
		for (size_t i = 0; i < n; i++)
			if (v[i].live)
				item_end(&v[i], rc, NULL);
	}
}

/* Step 3 for one result (lock held): checked again and staged into b. */
static void item_stage(vd_engine *e, struct item *it, vd_catalog_batch *b)
{
	struct vd_lease *l;
	struct vd_run *r;
	size_t u = 0;
	bool accepted = false;
	int rc;
	vd_engine_lease_resolve(&l, &r, &u, it->ex, e, it->in->lease);
	/* Another run of the same lease's unit is not this one. */
	if (r && (strcmp(r->task, it->task) || strcmp(r->data, it->data) ||
		  strcmp(r->code, it->code)))
		r = NULL;
	if (!unit_open(e, it, l, r, u))
		return;
	it->r = r;
	/* A function that succeeded may still have had something to say
	 * (bytes it could not decode, rows it skipped): keep it in the log,
	 * in the batch that records the result. */
	if (it->m.stderr_tail && *it->m.stderr_tail) {
		struct vd_buf tail = VD_BUF_INIT(VD_STDERR_TAIL * 4);
		vd_engine_add_one_line(&tail, it->m.stderr_tail, VD_STDERR_TAIL);
		vd_engine_log_add(b, e, r->task, r->data, r->code, "unit %zu/%zu "
				  "executor=%s stderr: %s", u, r->nunits, it->ex,
				  vd_buf_cstr(&tail));
		vd_buf_release(&tail);
	}
	if (r->cfg.replicas > 1) {
		rc = vote_stage(&accepted, b, e, l, r, u, it->blob, it->in->outlen, it->m.ms,
				it->ex);
		it->staged = accepted ? STAGED_ACCEPT : STAGED_VOTE;
	} else {
		/* The lease goes with the unit's other leases once the result
		 * is committed; if the commit fails (a full disk), the
		 * executor still holds it and sends the result again. */
		rc = accept_stage(b, e, r, u, it->blob, it->in->outlen, it->m.ms, it->ex);
		it->staged = STAGED_ACCEPT;
	}
	if (rc) {
		if (it->staged == STAGED_ACCEPT)
			accept_undo(e, r, u, it->blob, it->ex);
		it->staged = STAGED_NONE;
		item_end(it, rc, NULL);
	}
}

void vd_engine_api_results(vd_engine *e, const char *executor, struct vd_result_in *in,
			   size_t n)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct item *v = calloc(n ? n : 1, sizeof *v);
	vd_catalog_batch *b = NULL;
	size_t staged = 0;
	int rc;
	if (!v || vd_catalog_batch_new(&b)) {
		for (size_t i = 0; i < n; i++) {
			in[i].rc = -ENOMEM;
			in[i].why[0] = '\0';
		}
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct item *it = &v[i];
		it->in = &in[i];
		it->live = true;
		in[i].rc = 0;
		in[i].why[0] = '\0';
		if (!vd_id_valid(in[i].lease)) {
			item_end(it, -ENOENT, "unknown lease");
		} else if ((rc = parse_result_meta(&it->m, &why, in[i].meta))) {
			item_end_buf(it, rc, &why);
		} else if (in[i].outlen > VD_RESULT_MAX) {
			item_end(it, -EFBIG, "result is larger than the limit");
		} else if (in[i].zstd && !vd_id_valid(in[i].out_id)) {
			item_end(it, -EINVAL, "out_id must be the output's ID (32 lowercase "
				 "hex digits)");
		}
	}

	pthread_mutex_lock(&e->lock);
	e->m_result_requests++;
	e->m_results_in += n;
	for (size_t i = 0; i < n; i++)
		if (v[i].live)
			item_check(e, executor, v, i);
	pthread_mutex_unlock(&e->lock);

	items_store(e, v, n, b, &why);

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < n; i++)
		if (v[i].live) {
			item_stage(e, &v[i], b);
			staged += v[i].staged != STAGED_NONE;
		}
	if (!staged) {
		/* Nothing to record: the outputs' index entries alone. */
		if (vd_catalog_batch_count(b))
			vd_catalog_commit(e->cat, b, false);
		goto unlock;
	}
	/* The one synced commit, without the lock (see the top): nothing
	 * below is answered before it. */
	for (size_t i = 0; i < n; i++)
		if (v[i].live && v[i].staged == STAGED_ACCEPT)
			v[i].r->units[v[i].unit].committing = true;
	pthread_mutex_unlock(&e->lock);
	rc = vd_catalog_commit(e->cat, b, true);
	pthread_mutex_lock(&e->lock);
	rc = vd_engine_disk_note(e, rc);
	for (size_t i = 0; i < n; i++) {
		struct item *it = &v[i];
		struct vd_unit *un = NULL;
		bool mine = false;
		if (!it->live || it->staged == STAGED_NONE)
			continue;
		/* The run may have ended, and another begun, meanwhile. */
		it->r = vd_engine_find_run(e, it->task, it->data, it->code);
		if (it->r && it->unit < it->r->nunits)
			un = &it->r->units[it->unit];
		else
			it->r = NULL;
		if (un && it->staged == STAGED_ACCEPT) {
			mine = un->committing;
			un->committing = false;
		}
		if (rc) {
			if (mine)
				accept_undo(e, it->r, it->unit, it->blob, it->ex);
			item_end(it, rc, NULL);
			continue;
		}
		if (it->staged == STAGED_ACCEPT) {
			if (mine)
				accept_apply(e, it->r, it->unit, it->blob, it->m.ms, it->ex);
		} else if (un) {
			it->doomed = un->nvotes >= it->r->cfg.replicas + VD_VOTES_SPARE;
			if (!it->doomed)
				vd_engine_unit_update(e, it->r, it->unit);
		}
		item_end(it, 0, NULL);
	}
	/* Runs whose replicas cannot agree fail now, after every result of
	 * the request was applied: failing one takes the run out of memory. */
	for (size_t i = 0; !rc && i < n; i++) {
		struct item *it = &v[i];
		struct vd_run *r;
		if (!it->doomed || !(r = vd_engine_find_run(e, it->task, it->data, it->code)))
			continue;
		char what[200];
		snprintf(what, sizeof what, "unit %zu: %d results from different executors "
			 "and no %d of them agree", it->unit, r->units[it->unit].nvotes,
			 r->cfg.replicas);
		int frc = vd_engine_run_fail(e, r, what);
		if (frc)
			item_end(it, frc, NULL);
	}
	/* Slots freed: a long-poll held for an executor whose lease budget
	 * was full (engine_lease.c) may take more now. */
	pthread_cond_broadcast(&e->work);
unlock:
	pthread_mutex_unlock(&e->lock);
out:
	free(v);
	vd_catalog_batch_free(b);
	vd_buf_release(&why);
}

/* One result: a request of one. */
static int take_one(json_t **reply, struct vd_buf *why, vd_engine *e,
		    struct vd_result_in *in)
{
	vd_engine_api_results(e, NULL, in, 1);
	if (in->rc) {
		vd_buf_adds(why, in->why);
		return in->rc;
	}
	*reply = json_pack("{s:b}", "accepted", 1);
	return *reply ? 0 : -ENOMEM;
}

int vd_engine_api_result(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *lease_id, const json_t *meta,
			 const void *out, size_t outlen)
{
	struct vd_result_in in = { .lease = lease_id, .meta = meta, .out = out,
				   .n = outlen, .outlen = outlen };
	return take_one(reply, why, e, &in);
}

int vd_engine_api_result_zstd(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *lease_id, const json_t *meta,
			      const void *frame, size_t n, size_t outlen, const char *out_id)
{
	struct vd_result_in in = { .lease = lease_id, .meta = meta, .out = frame, .n = n,
				   .outlen = outlen, .zstd = true, .out_id = out_id };
	return take_one(reply, why, e, &in);
}
