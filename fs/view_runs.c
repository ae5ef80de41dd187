/*
 * view_runs.c - the code versions of a task and the runs of a version:
 *
 *   tasks/NAME/code/                 every code version, by code ID
 *   tasks/NAME/code/CODE-ID          its bytes, 0555, immutable
 *   versions/ID/runs/                every code that has a run on ID
 *   versions/ID/runs/CODE-ID/        status, meta.json, log, result.csv
 *
 * Everything here is read-only (EROFS, see vref_immutable). What can be
 * cached: a code version's bytes and a run's result never change once they
 * exist, so they keep their entries, attributes and pages for long. The
 * listings of code/, runs/ and runs/CODE-ID/ grow (a new code version, a new
 * run, a result once done) and are asked for on every opendir; a name not
 * there yet is ENOENT, which the kernel does not cache (vref_ttl).
 */
#include "view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const RUN_FILES[] = { "status", "meta.json", "log", "result.csv" };
static const enum nkind RUN_KINDS[] = { NK_RUN_STATUS, NK_RUN_META, NK_RUN_LOG,
					NK_RUN_RESULT };
#define RUN_NFILES (sizeof(RUN_FILES) / sizeof(RUN_FILES[0]))

bool runs_kind(enum nkind kind)
{
	switch (kind) {
	case NK_CODES:
	case NK_CODE:
	case NK_RUNS:
	case NK_RUN:
	case NK_RUN_STATUS:
	case NK_RUN_META:
	case NK_RUN_LOG:
	case NK_RUN_RESULT:
		return true;
	default:
		return false;
	}
}

int runs_child(struct vref *c, const struct vref *p, const char *name)
{
	switch (p->kind) {
	case NK_CODES:
	case NK_RUNS:
		/* Only an ID can be a code version: anything else is ENOENT
		 * without asking the engine. */
		if (!vd_id_valid(name))
			return -ENOENT;
		vref_child_init(c, p, p->kind == NK_CODES ? NK_CODE : NK_RUN, name);
		memcpy(c->code_id, name, VD_ID_SIZE);
		return 0;
	case NK_RUN:
		for (size_t i = 0; i < RUN_NFILES; i++) {
			if (strcmp(name, RUN_FILES[i]) == 0) {
				vref_child_init(c, p, RUN_KINDS[i], name);
				return 0;
			}
		}
		return -ENOENT;
	default:
		return -ENOTDIR;
	}
}

static enum vd_gen run_gen(enum nkind kind)
{
	switch (kind) {
	case NK_RUN_STATUS:
		return VD_GEN_STATUS;
	case NK_RUN_META:
		return VD_GEN_META;
	default:
		return VD_GEN_LOG;
	}
}

/* 0 when r's code has a run on r's version, else -ENOENT. */
static int run_exists(struct vd_view *v, const struct vref *r)
{
	struct vd_strv sv = { 0 };
	int rc = vd_engine_run_list(&sv, v->e, r->task, r->data_id);
	if (rc < 0)
		goto out;
	rc = -ENOENT;
	for (size_t i = 0; i < sv.n; i++) {
		if (strcmp(sv.v[i], r->code_id) == 0) {
			rc = 0;
			break;
		}
	}
out:
	vd_strv_release(&sv);
	return rc;
}

int runs_stat(struct stat *st, struct vd_view *v, struct vref *r)
{
	int rc = 0;
	struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
	struct vd_version_info vi;
	struct vd_file *f = NULL;

	switch (r->kind) {
	case NK_CODES:
		view_stat_base(st, v, S_IFDIR | 0555, 0, v->start_ms);
		goto out;
	case NK_CODE:
		/* The engine keeps no size apart from the bytes; a code
		 * version's attributes are cached for long, so this is rare. */
		vd_buf_init(&b, VIEW_FUNCTION_MAX);
		rc = vd_engine_code_read(&b, v->e, r->task, r->code_id);
		struct vd_task_times tt;
		if (rc >= 0 && (rc = vd_engine_task_times(&tt, v->e, r->task, r->code_id)) >= 0)
			view_stat_base(st, v, S_IFREG | 0555, b.len, tt.code);
		goto out;
	default:
		break;
	}

	/* Below runs/ everything carries the version's time, like the
	 * version's own files: `ls -l` stays stable while text changes. */
	rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
	if (rc < 0)
		goto out;
	switch (r->kind) {
	case NK_RUNS:
		view_stat_base(st, v, S_IFDIR | 0555, 0, vi.time_ms);
		break;
	case NK_RUN:
		rc = run_exists(v, r);
		if (rc == 0)
			view_stat_base(st, v, S_IFDIR | 0555, 0, vi.time_ms);
		break;
	case NK_RUN_STATUS:
	case NK_RUN_META:
	case NK_RUN_LOG:
		rc = vd_engine_run_render(&b, v->e, r->task, r->data_id, r->code_id,
					  run_gen(r->kind));
		if (rc >= 0)
			view_stat_base(st, v, S_IFREG | 0444, b.len, vi.time_ms);
		break;
	case NK_RUN_RESULT:
		rc = vd_engine_run_result(&f, v->e, r->task, r->data_id, r->code_id);
		if (rc < 0)
			break;
		view_stat_base(st, v, S_IFREG | 0444, f->size, vi.time_ms);
		/* Never expected to change; if it ever did, the name would
		 * get a new inode as the version's result.csv does. */
		r->ckey = file_ckey(f);
		break;
	default:
		rc = -ENOENT;
		break;
	}
out:
	if (f)
		vd_file_free(f);
	vd_buf_release(&b);
	return rc < 0 ? rc : 0;
}

static int list_run(struct dlist *out, struct vd_view *v, const struct vref *r)
{
	struct vd_file *f = NULL;
	int rc = run_exists(v, r);
	/* status, meta.json and log always; result.csv once the run is done. */
	for (size_t i = 0; rc == 0 && i + 1 < RUN_NFILES; i++)
		rc = dlist_add(out, RUN_FILES[i], strlen(RUN_FILES[i]), S_IFREG);
	if (rc == 0 && vd_engine_run_result(&f, v->e, r->task, r->data_id, r->code_id) >= 0) {
		rc = dlist_add(out, RUN_FILES[RUN_NFILES - 1],
			       strlen(RUN_FILES[RUN_NFILES - 1]), S_IFREG);
		vd_file_free(f);
	}
	return rc;
}

int runs_list(struct dlist *out, struct vd_view *v, const struct vref *r)
{
	int rc;
	struct vd_strv sv = { 0 };
	mode_t type = S_IFREG;

	switch (r->kind) {
	case NK_CODES:
		rc = vd_engine_code_list(&sv, v->e, r->task);
		break;
	case NK_RUNS:
		rc = vd_engine_run_list(&sv, v->e, r->task, r->data_id);
		type = S_IFDIR;
		break;
	case NK_RUN:
		rc = list_run(out, v, r);
		goto out;
	default:
		rc = -ENOTDIR;
		goto out;
	}
	for (size_t i = 0; rc >= 0 && i < sv.n; i++)
		rc = dlist_add(out, sv.v[i], strlen(sv.v[i]), type);
out:
	vd_strv_release(&sv);
	return rc < 0 ? rc : 0;
}

int runs_open(struct vfh *fh, struct fuse_file_info *fi, struct vd_view *v,
	      const struct vref *r, bool wr)
{
	int rc;
	struct vd_file *f = NULL;

	if (wr)
		return -EROFS;
	switch (r->kind) {
	case NK_CODE:
		fh->kind = FH_GEN;
		vd_buf_init(&fh->buf, VIEW_FUNCTION_MAX);
		fi->keep_cache = 1;
		rc = vd_engine_code_read(&fh->buf, v->e, r->task, r->code_id);
		break;
	case NK_RUN_STATUS:
	case NK_RUN_META:
	case NK_RUN_LOG:
		fh->kind = FH_GEN;
		vd_buf_init(&fh->buf, SIZE_MAX / 2);
		fi->direct_io = 1;
		rc = vd_engine_run_render(&fh->buf, v->e, r->task, r->data_id, r->code_id,
					  run_gen(r->kind));
		break;
	case NK_RUN_RESULT:
		rc = vd_engine_run_result(&f, v->e, r->task, r->data_id, r->code_id);
		if (rc < 0)
			break;
		if (file_ckey(f) != r->ckey) {
			vd_file_free(f);
			rc = -ESTALE;
			break;
		}
		fh_chunk_init_own(fh, f);
		fi->keep_cache = 1;
		break;
	default:
		rc = -EACCES;
		break;
	}
	return rc < 0 ? rc : 0;
}
