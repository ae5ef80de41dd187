/*
 * view_tree.c - what each place in the mount is: which names a directory
 * holds, what a name resolves to, its attributes and how long the kernel may
 * cache them. Everything is asked of the engine at the time of the call; the
 * only thing kept is the manifest cache (immutable data, view_read.c).
 */
#include "view_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char LATEST_PREFIX[] = "versions/";

int name_check(const char *name)
{
	if (strlen(name) > VIEW_NAME_MAX)
		return -ENAMETOOLONG;
	if (!vd_engine_name_valid(name))
		return -EINVAL;
	return 0;
}

int path_join(char *out, size_t outsz, const char *a, const char *b)
{
	int n = a[0] ? snprintf(out, outsz, "%s/%s", a, b) : snprintf(out, outsz, "%s", b);
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

void view_stat_base(struct stat *st, struct vd_view *v, mode_t mode,
		    uint64_t size, int64_t time_ms)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = v->uid;
	st->st_gid = v->gid;
	st->st_size = (off_t)size;
	/* The preferred I/O size: cp, cat and stdio size their buffers by it.
	 * At 1 MiB (the mount's max_write) a copy into data/ is 1 MiB writes
	 * rather than 128 KiB ones: an eighth of the round trips. */
	st->st_blksize = 1 << 20;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	struct timespec ts = { .tv_sec = time_ms / 1000,
			       .tv_nsec = (long)(time_ms % 1000) * 1000000L };
	st->st_atim = ts;
	st->st_mtim = ts;
	st->st_ctim = ts;
}

/* ---- directory listings ---------------------------------------------- */

int dlist_add(struct dlist *l, const char *name, size_t len, mode_t type)
{
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct dent *nv = realloc(l->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = nc;
	}
	char *s = strndup(name, len);
	if (!s)
		return -ENOMEM;
	l->v[l->n].name = s;
	l->v[l->n].type = type;
	l->n++;
	return 0;
}

void dlist_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int dent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

/* Sort by name and drop repeated names (data/ lists the engine's names and
 * the staging ones, which overlap while a name is rewritten). */
void dlist_sort_unique(struct dlist *l)
{
	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof(*l->v), dent_cmp);
	size_t w = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (w > 0 && strcmp(l->v[w - 1].name, l->v[i].name) == 0) {
			/* Of two entries with one name, a directory wins: a
			 * staging tree shadows nothing else, and a staging
			 * file and a sealed file have the same type. */
			if (S_ISDIR(l->v[i].type))
				l->v[w - 1].type = l->v[i].type;
			free(l->v[i].name);
			continue;
		}
		l->v[w++] = l->v[i];
	}
	l->n = w;
}

/* ---- references -------------------------------------------------------- */

int vref_of_node(struct vref *r, struct vd_view *v, struct vnode *n)
{
	int rc = 0;
	memset(r, 0, offsetof(struct vref, path));
	r->path[0] = '\0';
	r->kind = n->kind;
	r->task = n->task;
	r->dname = n->dname;
	r->name = n->name;   /* only used for kinds that are never renamed */
	r->type = n->type;
	r->ckey = n->ckey;
	memcpy(r->data_id, n->data_id, sizeof(r->data_id));
	memcpy(r->code_id, n->code_id, sizeof(r->code_id));
	if (n->kind == NK_DATAENT || n->kind == NK_INPUT)
		rc = node_relpath(r->path, sizeof(r->path), v, n);
	if (rc == 0 && n->kind == NK_DATAENT) {
		rc = node_dname(r->dname_buf, sizeof(r->dname_buf), v, n);
		r->dname = r->dname_buf;
	}
	return rc;
}

void vref_child_init(struct vref *c, const struct vref *p, enum nkind kind,
		     const char *name)
{
	memset(c, 0, offsetof(struct vref, path));
	c->path[0] = '\0';
	c->kind = kind;
	c->task = p->task;
	c->dname = p->dname;
	c->name = name;
	memcpy(c->data_id, p->data_id, sizeof(c->data_id));
	memcpy(c->code_id, p->code_id, sizeof(c->code_id));
}

int vref_child(struct vref *c, struct vd_view *v, const struct vref *p, const char *name)
{
	int rc = 0;
	if (strlen(name) > VIEW_NAME_MAX)
		return -ENAMETOOLONG;

	switch (p->kind) {
	case NK_ROOT:
		if (strcmp(name, "README") == 0)
			vref_child_init(c, p, NK_README, name);
		else if (strcmp(name, "tasks") == 0)
			vref_child_init(c, p, NK_TASKS, name);
		else if (strcmp(name, "executors") == 0)
			vref_child_init(c, p, NK_EXECUTORS, name);
		else
			rc = -ENOENT;
		break;
	case NK_TASKS:
		vref_child_init(c, p, NK_TASK, name);
		c->task = name;
		break;
	case NK_EXECUTORS:
		vref_child_init(c, p, NK_EXECUTOR, name);
		break;
	case NK_TASK:
		if (strcmp(name, "function") == 0)
			vref_child_init(c, p, NK_FUNCTION, name);
		else if (strcmp(name, "config") == 0)
			vref_child_init(c, p, NK_CONFIG, name);
		else if (strcmp(name, "data") == 0)
			vref_child_init(c, p, NK_DATA, name);
		else if (strcmp(name, "versions") == 0)
			vref_child_init(c, p, NK_VERSIONS, name);
		else if (strcmp(name, "latest") == 0)
			vref_child_init(c, p, NK_LATEST, name);
		else if (strcmp(name, "code") == 0)
			vref_child_init(c, p, NK_CODES, name);
		else
			rc = -ENOENT;
		break;
	case NK_DATA:
		vref_child_init(c, p, NK_DATAENT, name);
		c->dname = name;
		break;
	case NK_DATAENT:
	case NK_INPUT:
		vref_child_init(c, p, p->kind, name);
		rc = path_join(c->path, sizeof(c->path), p->path, name);
		break;
	case NK_VERSIONS:
		if (!vd_id_valid(name)) {
			rc = -ENOENT;
			break;
		}
		vref_child_init(c, p, NK_VERSION, name);
		memcpy(c->data_id, name, VD_ID_SIZE);
		break;
	case NK_VERSION:
		if (strcmp(name, "input") == 0)
			vref_child_init(c, p, NK_INPUT, name);
		else if (strcmp(name, "status") == 0)
			vref_child_init(c, p, NK_STATUS, name);
		else if (strcmp(name, "meta.json") == 0)
			vref_child_init(c, p, NK_META, name);
		else if (strcmp(name, "log") == 0)
			vref_child_init(c, p, NK_LOG, name);
		else if (strcmp(name, "result.csv") == 0)
			vref_child_init(c, p, NK_RESULT, name);
		else if (strcmp(name, "runs") == 0)
			vref_child_init(c, p, NK_RUNS, name);
		else
			rc = -ENOENT;
		break;
	case NK_CODES:
	case NK_RUNS:
	case NK_RUN:
		rc = runs_child(c, p, name);
		break;
	default:
		rc = -ENOTDIR;
		break;
	}
	(void)v;
	return rc;
}

bool vref_immutable(const struct vref *r)
{
	switch (r->kind) {
	case NK_VERSIONS:
	case NK_VERSION:
	case NK_INPUT:
	case NK_STATUS:
	case NK_META:
	case NK_LOG:
	case NK_RESULT:
	case NK_README:
	case NK_EXECUTORS:
	case NK_EXECUTOR:
		return true;
	default:
		return runs_kind(r->kind);
	}
}

/*
 * Cache lifetimes. Names that can never go away or change their meaning
 * (the fixed layout, tasks, which cannot be removed, versions/ID and what is
 * inside input) keep their entries for long; so do attributes that cannot
 * change (a version's input). Whatever may change - sizes of generated
 * files, function and config, anything in data/, latest, result.csv's
 * presence - is asked for again on every use, so that a new version or a new
 * result shows at once.
 */
void vref_ttl(const struct vref *r, double *entry, double *attr)
{
	*entry = VIEW_TTL_NONE;
	*attr = VIEW_TTL_NONE;
	switch (r->kind) {
	case NK_README:
	case NK_TASKS:
	case NK_EXECUTORS:
	case NK_TASK:
	case NK_FUNCTION:
	case NK_CONFIG:
	case NK_DATA:
	case NK_VERSIONS:
	case NK_STATUS:
	case NK_META:
	case NK_LOG:
	case NK_CODES:
	case NK_RUNS:
	case NK_RUN_STATUS:
	case NK_RUN_META:
	case NK_RUN_LOG:
		*entry = VIEW_TTL_LONG;
		break;
	case NK_VERSION:
	case NK_INPUT:
	case NK_CODE:
	case NK_RUN:
	case NK_RUN_RESULT:
		/* A run's result never changes once it exists; until then
		 * its name is ENOENT, which the kernel does not cache. */
		*entry = VIEW_TTL_LONG;
		*attr = VIEW_TTL_LONG;
		break;
	case NK_RESULT:
		/* The name must be looked up every time (a newer code's run
		 * replaces the result), but one result's inode never changes:
		 * a new result gets a new inode (node ckey). */
		*attr = VIEW_TTL_LONG;
		break;
	default:
		break;
	}
}

/* Generated files carry the version's time, not the time of asking: what
 * `ls -l` shows must not change while their text does not. */
static int stat_render(struct stat *st, struct vd_view *v, struct vref *r, enum vd_gen g)
{
	struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
	struct vd_version_info vi;
	int rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
	if (rc >= 0)
		rc = vd_engine_render(&b, v->e, r->task, r->data_id, g);
	if (rc >= 0) {
		view_stat_base(st, v, S_IFREG | 0444, b.len, vi.time_ms);
		rc = 0;
	}
	vd_buf_release(&b);
	return rc;
}

/* A file version's input is bytes and shows read-only; a tree's entries
 * show what was submitted (man_stat): modes, symlinks, hard links. Writes
 * fail with EROFS whatever the mode says. */
static int stat_input(struct stat *st, struct vd_view *v, struct vref *r,
		      const struct vd_version_info *vi)
{
	int rc = 0;
	struct mc_ent *ent = NULL;

	if (r->path[0] == '\0' && vi->kind == VD_KIND_FILE) {
		view_stat_base(st, v, S_IFREG | 0444, vi->size, vi->time_ms);
		goto out;
	}
	if (vi->kind != VD_KIND_TREE) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = mc_get(&ent, v, r->data_id);
	if (rc < 0)
		goto out;
	rc = man_stat(st, v, ent->m, r->path, vi->time_ms);
out:
	if (ent)
		mc_put(v, ent);
	return rc;
}

int version_readlink(struct vd_buf *out, struct vd_view *v, const char *data_id,
		     const char *path)
{
	struct mc_ent *ent = NULL;
	int rc = path[0] ? mc_get(&ent, v, data_id) : -EINVAL;
	if (rc == 0)
		rc = ent->m->kind == VD_KIND_TREE ? man_readlink(out, ent->m, path) : -EINVAL;
	if (ent)
		mc_put(v, ent);
	return rc < 0 ? rc : 0;
}

int input_readlink(struct vd_buf *out, struct vd_view *v, const struct vref *r)
{
	if (r->kind != NK_INPUT)
		return -EINVAL;
	return version_readlink(out, v, r->data_id, r->path);
}

int vref_stat(struct stat *st, struct vd_view *v, struct vref *r)
{
	int rc = 0;
	struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
	struct vd_version_info vi;
	struct vd_file *f = NULL;
	char id[VD_ID_SIZE];
	struct vd_task_times tt;

	switch (r->kind) {
	case NK_ROOT:
	case NK_EXECUTORS:
		view_stat_base(st, v, S_IFDIR | 0755, 0, v->start_ms);
		break;
	case NK_TASKS:
		/* With --allow-other anyone may make a task, and, as in /tmp,
		 * remove only their own (the sticky bit); what is in a task is
		 * its owner's alone (0755 and 0644 below, view_owner.c). */
		view_stat_base(st, v, S_IFDIR | (v->allow_other ? 01777 : 0755), 0, v->start_ms);
		break;
	case NK_TASK:
	case NK_DATA:
		if (!vd_engine_task_exists(v->e, r->task)) {
			rc = -ENOENT;
			break;
		}
		view_stat_base(st, v, S_IFDIR | 0755, 0, v->start_ms);
		break;
	case NK_VERSIONS:
		view_stat_base(st, v, S_IFDIR | 0555, 0, v->start_ms);
		break;
	case NK_README:
		rc = vd_engine_render_readme(&b, v->e);
		if (rc >= 0)
			view_stat_base(st, v, S_IFREG | 0444, b.len, v->start_ms);
		break;
	case NK_EXECUTOR:
		rc = vd_engine_executor_render(&b, v->e, r->name);
		if (rc >= 0)
			view_stat_base(st, v, S_IFREG | 0444, b.len, v->start_ms);
		break;
	case NK_FUNCTION:
		rc = vd_engine_function_read(&b, v->e, r->task);
		if (rc >= 0 && (rc = vd_engine_task_times(&tt, v->e, r->task, NULL)) >= 0)
			view_stat_base(st, v, S_IFREG | (v->allow_other ? 0644 : 0755), b.len,
				       tt.function);
		break;
	case NK_CONFIG:
		rc = vd_engine_config_read(&b, v->e, r->task);
		if (rc >= 0 && (rc = vd_engine_task_times(&tt, v->e, r->task, NULL)) >= 0)
			view_stat_base(st, v, S_IFREG | 0644, b.len, tt.config);
		break;
	case NK_LATEST:
		rc = vd_engine_version_latest(id, v->e, r->task);
		if (rc >= 0 && (rc = vd_engine_task_times(&tt, v->e, r->task, NULL)) >= 0)
			view_stat_base(st, v, S_IFLNK | 0777, sizeof(LATEST_PREFIX) - 1 + VD_ID_LEN,
				       tt.latest);
		break;
	case NK_VERSION:
		rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
		if (rc >= 0)
			view_stat_base(st, v, S_IFDIR | 0555, 0, vi.time_ms);
		break;
	case NK_INPUT:
		rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
		if (rc >= 0)
			rc = stat_input(st, v, r, &vi);
		break;
	case NK_STATUS:
		rc = stat_render(st, v, r, VD_GEN_STATUS);
		break;
	case NK_META:
		rc = stat_render(st, v, r, VD_GEN_META);
		break;
	case NK_LOG:
		rc = stat_render(st, v, r, VD_GEN_LOG);
		break;
	case NK_RESULT:
		rc = vd_engine_result_get(&f, v->e, r->task, r->data_id);
		if (rc < 0)
			break;
		rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
		if (rc < 0)
			break;
		view_stat_base(st, v, S_IFREG | 0444, f->size, vi.time_ms);
		r->ckey = file_ckey(f);
		break;
	case NK_DATAENT:
		rc = data_stat(st, v, r);
		break;
	default:
		rc = runs_kind(r->kind) ? runs_stat(st, v, r) : -ENOENT;
		break;
	}
	if (rc >= 0) {
		rc = 0;
		r->type = st->st_mode & S_IFMT;
		/* data/ shows its entries' own owners (data_stat). */
		if (r->kind != NK_DATAENT)
			task_owner_stat(st, v, r->task);
	}
	if (f)
		vd_file_free(f);
	vd_buf_release(&b);
	return rc;
}

static int list_fixed(struct dlist *out, const char *const *names, const mode_t *types, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = dlist_add(out, names[i], strlen(names[i]), types[i]);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int list_strv(struct dlist *out, const struct vd_strv *sv, mode_t type)
{
	for (size_t i = 0; i < sv->n; i++) {
		int rc = dlist_add(out, sv->v[i], strlen(sv->v[i]), type);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int list_version(struct dlist *out, struct vd_view *v, const struct vref *r)
{
	struct vd_version_info vi;
	struct vd_file *f = NULL;
	int rc = vd_engine_version_get(&vi, v->e, r->task, r->data_id);
	if (rc < 0)
		return rc;
	static const char *const names[] = { "input", "status", "meta.json", "log", "runs" };
	const mode_t types[] = { vi.kind == VD_KIND_TREE ? S_IFDIR : S_IFREG,
				 S_IFREG, S_IFREG, S_IFREG, S_IFDIR };
	rc = list_fixed(out, names, types, 5);
	if (rc >= 0 && vd_engine_result_get(&f, v->e, r->task, r->data_id) >= 0) {
		rc = dlist_add(out, "result.csv", strlen("result.csv"), S_IFREG);
		vd_file_free(f);
	}
	return rc;
}

int vref_list(struct dlist *out, struct vd_view *v, const struct vref *r)
{
	int rc = 0;
	struct vd_strv sv = { 0 };
	struct mc_ent *ent = NULL;
	char id[VD_ID_SIZE];

	switch (r->kind) {
	case NK_ROOT: {
		static const char *const names[] = { "README", "tasks", "executors" };
		static const mode_t types[] = { S_IFREG, S_IFDIR, S_IFDIR };
		rc = list_fixed(out, names, types, 3);
		break;
	}
	case NK_TASKS:
		rc = vd_engine_task_list(&sv, v->e);
		if (rc >= 0)
			rc = list_strv(out, &sv, S_IFDIR);
		break;
	case NK_EXECUTORS:
		rc = vd_engine_executor_list(&sv, v->e);
		if (rc >= 0)
			rc = list_strv(out, &sv, S_IFREG);
		break;
	case NK_TASK: {
		static const char *const names[] = { "function", "config", "data", "versions",
						     "code" };
		static const mode_t types[] = { S_IFREG, S_IFREG, S_IFDIR, S_IFDIR, S_IFDIR };
		if (!vd_engine_task_exists(v->e, r->task)) {
			rc = -ENOENT;
			break;
		}
		/* latest first: rm -r and find -delete remove in this order,
		 * and latest vanishes with the last version, so listed after
		 * versions/ it would be ENOENT by the time they reach it
		 * (docs/lifecycle.md). */
		if (vd_engine_version_latest(id, v->e, r->task) >= 0)
			rc = dlist_add(out, "latest", strlen("latest"), S_IFLNK);
		if (rc >= 0)
			rc = list_fixed(out, names, types, 5);
		break;
	}
	case NK_VERSIONS:
		rc = vd_engine_version_list(&sv, v->e, r->task);
		if (rc >= 0)
			rc = list_strv(out, &sv, S_IFDIR);
		break;
	case NK_VERSION:
		rc = list_version(out, v, r);
		break;
	case NK_INPUT:
		rc = mc_get(&ent, v, r->data_id);
		if (rc >= 0)
			rc = man_list(out, ent->m, r->path);
		break;
	case NK_DATA:
	case NK_DATAENT:
		rc = data_list(out, v, r);
		break;
	case NK_CODES:
	case NK_RUNS:
	case NK_RUN:
		rc = runs_list(out, v, r);
		break;
	default:
		rc = -ENOTDIR;
		break;
	}
	if (ent)
		mc_put(v, ent);
	vd_strv_release(&sv);
	return rc < 0 ? rc : 0;
}
