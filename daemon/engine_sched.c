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

/* How long a run whose result could not be written for want of space
 * waits before its reduce is tried again. */
#define FINISH_RETRY_MS 2000

/* ---- keys, logs ------------------------------------------------------ */

static void run_key(struct vd_buf *k, const char *task, const char *data,
		    const char *code)
{
	vd_buf_reset(k);
	vd_buf_addf(k, "r/%s/%s/%s", task, data, code);
}

void vd_engine_memo_key(struct vd_buf *k, const char *code, const char *out_key,
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
void vd_engine_add_one_line(struct vd_buf *out, const char *s, size_t max)
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

struct vd_run *vd_engine_find_run(vd_engine *e, const char *task, const char *data,
				  const char *code)
{
	for (struct vd_run *r = e->runs; r; r = r->next)
		if (!strcmp(r->data, data) && !strcmp(r->code, code) &&
		    !strcmp(r->task, task))
			return r;
	return NULL;
}

struct vd_lease *vd_engine_find_lease(vd_engine *e, const char *id)
{
	for (struct vd_lease *l = e->leases; l; l = l->next)
		if (!strcmp(l->id, id))
			return l;
	return NULL;
}

/* The most results of a replicated unit that agree (same output). */
static int votes_agreeing(const struct vd_unit *un)
{
	int best = 0;
	for (int i = 0; i < un->nvotes; i++) {
		int n = 0;
		for (int j = 0; j < un->nvotes; j++)
			n += !strcmp(un->votes[i].blob, un->votes[j].blob);
		if (n > best)
			best = n;
	}
	return best;
}

/* How many live leases the unit wants: one, or with replication as many
 * as agreeing results are still missing. A straggler copy comes on top
 * and is handed out by the lease code directly. */
static int leases_wanted(const struct vd_run *r, const struct vd_unit *un)
{
	if (r->cfg.replicas <= 1)
		return 1;
	return r->cfg.replicas - votes_agreeing(un);
}

void vd_engine_unit_update(vd_engine *e, struct vd_run *r, size_t u)
{
	struct vd_unit *un = &r->units[u];
	if (un->state == VD_UNIT_DONE)
		return;
	if (un->nleases < leases_wanted(r, un)) {
		un->state = VD_UNIT_PENDING;
		if (u < r->cursor)
			r->cursor = u;
		pthread_cond_broadcast(&e->work);
	} else {
		un->state = VD_UNIT_LEASED;
	}
}

void vd_engine_lease_drop(vd_engine *e, struct vd_lease *l)
{
	for (struct vd_lease **pp = &e->leases; *pp; pp = &(*pp)->next) {
		if (*pp != l)
			continue;
		*pp = l->next;
		break;
	}
	struct vd_executor *x = vd_engine_find_exec(e, l->executor);
	if (x && x->active > 0)
		x->active--;
	if (l->run) {
		struct vd_unit *un = &l->run->units[l->unit];
		if (un->nleases > 0)
			un->nleases--;
		vd_engine_unit_update(e, l->run, l->unit);
	}
	free(l);
}

void vd_engine_lease_lost(vd_catalog_batch *b, vd_engine *e, struct vd_lease *l,
			  const char *what)
{
	struct vd_executor *x = vd_engine_find_exec(e, l->executor);
	e->m_expired++;
	if (x) {
		x->infra_failed++;
		vd_engine_exec_counts_put(b, x);
	}
	if (l->run && l->run->units[l->unit].state != VD_UNIT_DONE) {
		struct vd_unit *un = &l->run->units[l->unit];
		un->expiries++;
		if (un->expiries >= VD_EXPIRIES_MAX && !l->run->doomed) {
			l->run->doomed = true;
			l->run->doomed_unit = l->unit;
		}
		vd_engine_log_add(b, e, l->run->task, l->run->data, l->run->code,
				  "unit %zu/%zu executor=%s %s, back in the queue "
				  "(%d of %d)", l->unit, l->run->nunits, l->executor, what,
				  un->expiries, VD_EXPIRIES_MAX);
		vd_engine_exec_strike(e, l->executor, what);
	}
	vd_warn("lease %.8s of executor %s: %s", l->id, l->executor, what);
	vd_engine_lease_drop(e, l);
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
	for (size_t u = 0; r->units && u < r->nunits; u++)
		free(r->units[u].votes);
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
			vd_engine_lease_drop(e, l);
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

/* run_make's flags. */
#define RUN_REPLACE 1u   /* write the record even if one exists (a re-run) */
#define RUN_FORCE 2u     /* compute every unit again, memo or not */

static int run_make(vd_catalog_batch *b, vd_engine *e, const char *task, const char *data,
		    const char *code, json_t *version, unsigned flags)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	json_t *r = NULL, *v = version;
	char *cfg_text = NULL;
	struct vd_config cfg;
	int rc;
	run_key(&k, task, data, code);
	if (!(flags & RUN_REPLACE) && (rc = vd_catalog_has(e->cat, vd_buf_cstr(&k))) != 0) {
		if (rc == 1)
			rc = 0;   /* known: nothing to make */
		goto out;
	}
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
	if ((flags & RUN_FORCE) && json_object_set_new(r, "force", json_true())) {
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

int vd_engine_run_add(vd_catalog_batch *b, vd_engine *e, const char *task,
		      const char *data, const char *code, json_t *version)
{
	return run_make(b, e, task, data, code, version, 0);
}

/* (task, data) with data NULL meaning the task's latest version: the data
 * ID and the task's current code, checked. Lock held. */
static int run_target(char data_out[VD_ID_SIZE], char code_out[VD_ID_SIZE],
		      struct vd_buf *why, vd_engine *e, const char *task, const char *data)
{
	json_t *t = NULL, *v = NULL;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc) {
		vd_buf_addf(why, "no task '%s'", task);
		goto out;
	}
	const char *code = json_string_value(json_object_get(t, "code"));
	const char *d = data ? data : json_string_value(json_object_get(t, "latest"));
	if (!code) {
		vd_buf_addf(why, "task %s has no function yet", task);
		rc = -ENOENT;
	} else if (!d) {
		vd_buf_addf(why, "task %s has no version yet", task);
		rc = -ENOENT;
	} else if ((rc = vd_engine_version_json(&v, e, task, d))) {
		vd_buf_addf(why, "task %s has no version %s", task, d);
	} else {
		snprintf(data_out, VD_ID_SIZE, "%s", d);
		snprintf(code_out, VD_ID_SIZE, "%s", code);
	}
out:
	json_decref(v);
	json_decref(t);
	return rc;
}

/* Lock held: run (task, data, code) again with the task's current config. */
static int rerun_locked(struct vd_buf *why, vd_engine *e, const char *task, const char *data,
			const char *code, bool force, const char *what)
{
	vd_catalog_batch *b = NULL;
	struct vd_run *r = vd_engine_find_run(e, task, data, code);
	int rc;
	if (r && r->finishing) {
		vd_buf_adds(why, "the run is combining its results; try again in a moment");
		return -EBUSY;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	if ((rc = run_make(b, e, task, data, code, NULL, RUN_REPLACE | (force ? RUN_FORCE : 0))) < 0)
		goto out;
	vd_engine_log_add(b, e, task, data, code, "run queued again: %s%s", what,
			  force ? " (every unit computed again)" : "");
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto out;
	/* The old run's leases go; their late results are answered 409. */
	if (r)
		run_remove(e, r);
	rc = vd_engine_run_activate(e, task, data, code);
	vd_info("run %s/%.8s code %.8s queued again: %s", task, data, code, what);
out:
	vd_catalog_batch_free(b);
	return rc;
}

int vd_engine_rerun(char data_out[VD_ID_SIZE], struct vd_buf *why, vd_engine *e,
		    const char *task, const char *data, bool force)
{
	char code[VD_ID_SIZE];
	pthread_mutex_lock(&e->lock);
	int rc = run_target(data_out, code, why, e, task, data);
	if (rc == 0)
		rc = rerun_locked(why, e, task, data_out, code, force, "asked for by the operator");
	pthread_mutex_unlock(&e->lock);
	return rc;
}

int vd_engine_rerun_for_config(vd_engine *e, const char *task)
{
	char data[VD_ID_SIZE], code[VD_ID_SIZE];
	struct vd_buf why = VD_BUF_INIT(1024);
	json_t *rj = NULL, *t = NULL;
	struct vd_buf k = VD_BUF_INIT(1024);
	pthread_mutex_lock(&e->lock);
	int rc = run_target(data, code, &why, e, task, NULL);
	if (rc) {
		rc = 0;   /* nothing to re-run */
		goto out;
	}
	/* Only when the run was made with another config. */
	run_key(&k, task, data, code);
	if ((rc = vd_engine_task_json(&t, e, task)) ||
	    vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k)))
		goto out;
	const char *now = json_string_value(json_object_get(t, "config"));
	const char *was = json_string_value(json_object_get(rj, "config"));
	if (!strcmp(now ? now : "", was ? was : ""))
		goto out;
	/* A change that runs do not see (retention, a comment) re-runs
	 * nothing. A config that no longer parses was refused when written. */
	struct vd_config cn, cw;
	struct vd_buf ignore = VD_BUF_INIT(1024);
	bool same = !vd_config_parse(&cn, &ignore, now ? now : "", now ? strlen(now) : 0) &&
		    !vd_config_parse(&cw, &ignore, was ? was : "", was ? strlen(was) : 0) &&
		    vd_config_runs_equal(&cn, &cw);
	vd_buf_release(&ignore);
	if (same)
		goto out;
	rc = rerun_locked(&why, e, task, data, code, false, "the config changed");
out:
	pthread_mutex_unlock(&e->lock);
	if (rc)
		vd_warn("task %s: re-running latest for the new config: %s", task,
			why.len ? vd_buf_cstr(&why) : strerror(-rc));
	json_decref(rj);
	json_decref(t);
	vd_buf_release(&k);
	vd_buf_release(&why);
	return rc;
}

int vd_engine_cancel(char data_out[VD_ID_SIZE], struct vd_buf *why, vd_engine *e,
		     const char *task, const char *data)
{
	char code[VD_ID_SIZE];
	pthread_mutex_lock(&e->lock);
	int rc = run_target(data_out, code, why, e, task, data);
	struct vd_run *r = rc ? NULL : vd_engine_find_run(e, task, data_out, code);
	if (rc == 0 && !r) {
		vd_buf_adds(why, "no run of the current code is queued or running for it");
		rc = -EALREADY;
	} else if (rc == 0 && r->finishing) {
		vd_buf_adds(why, "the run is combining its results; it ends in a moment");
		rc = -EBUSY;
	} else if (rc == 0) {
		rc = vd_engine_run_fail(e, r, "cancelled by the operator");
	}
	pthread_mutex_unlock(&e->lock);
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

/* Where a tree's symlink leads, resolved among the tree's own entries. */
enum link_end { LINK_FILE, LINK_OUTSIDE, LINK_DANGLING, LINK_DIR, LINK_LOOP };

static const char *const link_end_why[] = {
	[LINK_FILE] = "a file",
	[LINK_OUTSIDE] = "it points outside the tree",
	[LINK_DANGLING] = "it points to nothing in the tree",
	[LINK_DIR] = "it points to a directory",
	[LINK_LOOP] = "too many levels of symlinks",
};

/*
 * Resolve the symlink entry li of a tree as the kernel would resolve it
 * inside a copy of the tree, component by component, but only among the
 * manifest's entries: nothing on any disk is looked at, so no target can
 * reach a file outside the tree. An absolute target, or ".." above the
 * top, is outside; a link met on the way is expanded in place (40 at
 * most, as the kernel allows). *idx is the regular file it ends at.
 */
static enum link_end link_resolve(size_t *idx, const struct vd_manifest *m, size_t li)
{
	char cur[PATH_MAX], rest[PATH_MAX], cand[PATH_MAX], comp[256];
	const struct vd_file *l = &m->files[li];
	const char *slash = strrchr(l->path, '/');
	size_t clen = slash ? (size_t)(slash - l->path) : 0;
	int hops = 0;
	mode_t type;
	if (!l->target || l->target[0] == '/')
		return LINK_OUTSIDE;
	if (clen >= sizeof cur || strlen(l->target) >= sizeof rest)
		return LINK_DANGLING;
	memcpy(cur, l->path, clen);
	cur[clen] = '\0';
	memcpy(rest, l->target, strlen(l->target) + 1);
	for (;;) {
		const char *p = rest;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		bool more = *end == '/';     /* then it must be a directory */
		if (len >= sizeof comp)
			return LINK_DANGLING;
		memcpy(comp, p, len);
		comp[len] = '\0';
		memmove(rest, end, strlen(end) + 1);
		if (!strcmp(comp, "."))
			continue;
		if (!strcmp(comp, "..")) {
			if (!cur[0])
				return LINK_OUTSIDE;
			char *s = strrchr(cur, '/');
			*(s ? s : cur) = '\0';
			continue;
		}
		int n = cur[0] ? snprintf(cand, sizeof cand, "%s/%s", cur, comp)
			       : snprintf(cand, sizeof cand, "%s", comp);
		if (n < 0 || (size_t)n >= sizeof cand ||
		    vd_manifest_lookup(&type, idx, m, cand))
			return LINK_DANGLING;
		if (type == S_IFLNK) {
			/* Its target takes its place, from the directory
			 * the link is in (cur). */
			const char *t = m->files[*idx].target;
			size_t tl = strlen(t), rl = strlen(rest);
			if (++hops > 40)
				return LINK_LOOP;
			if (t[0] == '/')
				return LINK_OUTSIDE;
			if (tl + rl >= sizeof rest)
				return LINK_DANGLING;
			memmove(rest + tl, rest, rl + 1);
			memcpy(rest, t, tl);
			continue;
		}
		if (type == S_IFREG && more)
			return LINK_DANGLING;
		memcpy(cur, cand, (size_t)n + 1);
	}
	if (!cur[0] || vd_manifest_lookup(&type, idx, m, cur))
		return cur[0] ? LINK_DANGLING : LINK_DIR;
	return type == S_IFREG ? LINK_FILE : LINK_DIR;
}

/*
 * symlinks = follow-inside-tree: a link that leads to a regular file of
 * the tree takes that file's extents in the run's own copy of the
 * manifest, so it is cut into units like a file, under its own path (its
 * VDFS_PATH, and what its unit IDs commit to). Any other link stays
 * without content, which means no unit, and the log says why.
 */
static int follow_links(struct vd_run *r)
{
	struct vd_manifest *m = r->man;
	for (size_t i = 0; i < m->nfiles; i++) {
		struct vd_file *f = &m->files[i];
		size_t to;
		if (vd_file_type(f) != S_IFLNK || f->n)
			continue;
		enum link_end end = link_resolve(&to, m, i);
		if (end != LINK_FILE) {
			vd_info("task %s: version %.12s: symlink %s -> %s not followed: %s",
				r->task, r->data, f->path, f->target, link_end_why[end]);
			continue;
		}
		const struct vd_file *t = &m->files[to];
		if (t->n && !(f->ext = malloc(t->n * sizeof *f->ext)))
			return -ENOMEM;
		if (t->n)
			memcpy(f->ext, t->ext, t->n * sizeof *f->ext);
		f->n = t->n;
		f->size = t->size;
		vd_debug("task %s: version %.12s: symlink %s followed to %s", r->task, r->data,
			 f->path, t->path);
	}
	return 0;
}

/* Units come from regular files only, and from symlinks followed above
 * (a directory or a link kept as a link has no extents, so no units). */
static int plan_units(struct vd_run *r, vd_engine *e)
{
	struct vd_manifest *m = r->man;
	uint64_t target = r->cfg.unit_size;
	uint64_t ratio = target / e->chunking.avg_size;
	size_t cap = 0;
	int rc;
	if (m->kind == VD_KIND_TREE && r->cfg.symlinks == VD_SYMLINKS_FOLLOW &&
	    (rc = follow_links(r)))
		return rc;
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

int vd_engine_run_plan(struct vd_run *r, vd_engine *e)
{
	return plan_units(r, e);
}

void vd_engine_run_discard(struct vd_run *r)
{
	run_free(r);
}

int vd_engine_run_new(struct vd_run **out, vd_engine *e, const char *task, const char *data,
		      const char *code, const json_t *rj)
{
	struct vd_buf why = VD_BUF_INIT(1024), ok = VD_BUF_INIT(256);
	struct vd_run *r = calloc(1, sizeof *r);
	int rc = 0;
	const char *cfg = json_string_value(json_object_get(rj, "config"));
	if (!r || !(r->cfg_text = strdup(cfg ? cfg : ""))) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(r->task, sizeof r->task, "%s", task);
	memcpy(r->data, data, VD_ID_SIZE);
	memcpy(r->code, code, VD_ID_SIZE);
	/* A config that no longer parses was accepted under an older daemon:
	 * the run is what the defaults make of it. */
	if (vd_config_parse(&r->cfg, &why, r->cfg_text, strlen(r->cfg_text)))
		vd_config_default(&r->cfg);
	vd_config_output_key(&ok, &r->cfg);
	vd_id_of(r->out_key, &e->key, ok.data ? ok.data : "", ok.len);
	r->created_ms = json_integer_value(json_object_get(rj, "created"));
	*out = r;
	r = NULL;
out:
	run_free(r);
	vd_buf_release(&why);
	vd_buf_release(&ok);
	return rc;
}

int vd_engine_run_activate(vd_engine *e, const char *task, const char *data,
			   const char *code)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_run *r = NULL;
	json_t *rj = NULL;
	int rc;
	if (vd_engine_find_run(e, task, data, code))
		return 0;
	run_key(&k, task, data, code);
	if ((rc = vd_catalog_get_json(&rj, e->cat, vd_buf_cstr(&k))))
		goto out;
	if ((rc = vd_engine_run_new(&r, e, task, data, code, rj)))
		goto out;
	r->planned_ms = vd_now_ms();
	if ((rc = vd_engine_manifest_get(&r->man, e, data)))
		goto out;
	if ((rc = plan_units(r, e)))
		goto out;
	/* A forced re-run (vdfs rerun --force) computes every unit again. */
	bool force = json_is_true(json_object_get(rj, "force"));
	for (size_t u = 0; !force && u < r->nunits; u++) {
		vd_engine_memo_key(&k, code, r->out_key, r->units[u].id);
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
	vd_engine_event_run(e, r, "queued");
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
	return rc;
}

/* ---- finishing runs --------------------------------------------------- */

/* When a run's time starts: its first lease, or, for a run that needed
 * none (all from memo) or that a restart took over, when this daemon
 * planned it; never its record's creation, which may be long before. */
int64_t vd_engine_run_t0(const struct vd_run *r)
{
	return r->started_ms ? r->started_ms : r->planned_ms;
}

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
	json_object_set_new(rj, "duration_ms", json_integer(now - vd_engine_run_t0(r)));
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
		/* Index the result by content, for lineage (docs/catalog.md). */
		struct vd_buf ri = VD_BUF_INIT(1024);
		vd_buf_addf(&ri, "ri/%s/%s/%s/%s", result_id, r->task, r->data, r->code);
		vd_catalog_batch_put(b, vd_buf_cstr(&ri), "", 0);
		vd_buf_release(&ri);
	}
	rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rj);
out:
	json_decref(ex);
	json_decref(rj);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_run_fail(vd_engine *e, struct vd_run *r, const char *error)
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
	vd_engine_event_run(e, r, "failed");
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
		vd_engine_memo_key(&k, code, r->out_key, r->units[u].id);
		if ((rc = vd_catalog_get_json(&mj, e->cat, vd_buf_cstr(&k))))
			goto fail;
		const char *blob = json_string_value(json_object_get(mj, "blob"));
		if (!blob || !vd_id_valid(blob)) {
			json_decref(mj);
			rc = -EBADMSG;
			goto fail;
		}
		memcpy(outs[u].id, blob, VD_ID_SIZE);
		/* The result will reference it without a writer seeing it:
		 * tell a gc that is on (engine_gc.c). */
		vd_store_gc_keep(e->store, blob);
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
	int64_t took = vd_now_ms() - vd_engine_run_t0(r);
	vd_engine_log_add(b, e, task, data, code,
			  "run done: %zu units, result %llu bytes, %.1f s", n,
			  (unsigned long long)result->size, (double)took / 1000.0);
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto fail;
	vd_engine_disk_note(e, 0);
	vd_info("run %s/%.8s code %.8s done: result %llu bytes", task, data, code,
		(unsigned long long)result->size);
	vd_engine_event_run(e, r, "done");
	run_remove(e, r);
	goto out;
fail:
	/* Every unit's output is kept; only the combined result could not be
	 * written. Wait for space rather than fail the run. */
	if (vd_engine_no_space(vd_engine_disk_note(e, rc))) {
		r->finish_after_ms = vd_mono_ms() + FINISH_RETRY_MS;
		goto out;
	}
	{
		char why[256];
		snprintf(why, sizeof why, "reduce: %s", strerror(-rc));
		if (rc == -EINVAL)
			snprintf(why, sizeof why, "reduce: a unit's output is not "
				 "key,number rows (reduce = sum)");
		vd_engine_run_fail(e, r, why);
	}
out:
	vd_file_free(result);
	vd_catalog_batch_free(b);
	free(outs);
	vd_buf_release(&k);
}

/* ---- the background thread ------------------------------------------ */

/* Leases past their term go back to the queue. */
static void expire_leases(vd_engine *e)
{
	int64_t now = vd_mono_ms();
	vd_catalog_batch *b = NULL;
	if (vd_catalog_batch_new(&b))
		return;
	for (struct vd_lease *l = e->leases, *next; l; l = next) {
		next = l->next;
		if (l->expires_ms <= now)
			vd_engine_lease_lost(b, e, l, "lease expired");
	}
	if (vd_catalog_batch_count(b))
		vd_catalog_commit(e->cat, b, false);
	vd_catalog_batch_free(b);
}

/* Fail the runs a unit of which lost too many leases. */
static void fail_doomed(vd_engine *e)
{
	for (bool again = true; again;) {
		again = false;
		for (struct vd_run *r = e->runs; r; r = r->next) {
			if (!r->doomed || r->finishing)
				continue;
			char why[200];
			snprintf(why, sizeof why, "unit %zu: its lease was lost %d times "
				 "(executors died, hung or were cut off while running it)",
				 r->doomed_unit, VD_EXPIRIES_MAX);
			vd_engine_run_fail(e, r, why);
			again = true;
			break;
		}
	}
}

static void *sched_thread(void *arg)
{
	vd_engine *e = arg;
	pthread_mutex_lock(&e->lock);
	while (!e->stopping) {
		expire_leases(e);
		fail_doomed(e);
		/* Finishing drops the lock, so restart the scan after each. */
		for (bool again = true; again && !e->stopping;) {
			again = false;
			int64_t now = vd_mono_ms();
			for (struct vd_run *r = e->runs; r; r = r->next) {
				if (r->finishing && now >= r->finish_after_ms) {
					run_finish(e, r);
					again = true;
					break;
				}
			}
		}
		struct timespec ts = vd_deadline_ms(CLOCK_MONOTONIC, 200);
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
	struct vd_run *r = task && data && code ? vd_engine_find_run(e, task, data, code) : NULL;
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
			l->granted_ms = vd_mono_ms();
			r->units[unit].nleases++;
			r->started = true;
			l->next = e->leases;
			e->leases = l;
			struct vd_executor *x = vd_engine_find_exec(e, ex);
			if (x)
				x->active++;
			vd_engine_unit_update(e, r, (size_t)unit);
		}
	}
	json_decref(j);
	return 0;
}

int vd_engine_sched_start(vd_engine *e)
{
	int rc;
	pthread_mutex_lock(&e->lock);
	rc = vd_engine_exec_load(e);
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
		vd_engine_lease_drop(e, e->leases);
	vd_engine_exec_free_all(e);
}
