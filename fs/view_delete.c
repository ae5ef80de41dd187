/*
 * view_delete.c - removing versions and tasks from the mount, and telling
 * the kernel about deletions made elsewhere.
 *
 * A version's files never change and cannot be removed one by one: they go
 * with the version. GNU rm -r (also -f, and find -delete) removes a
 * directory by first unlinking every file and removing every directory
 * below it, depth first, and skips the directory itself when anything in
 * it failed. So inside a version (status, meta.json, log, result.csv,
 * input and all below it, runs/ and all below it) unlink and rmdir answer
 * 0 and remove nothing; the rmdir of versions/<id> itself is what deletes
 * the version (vd_engine_version_delete). A task works the same way one
 * level up: function, config, latest, code/ and versions/ answer 0, data/
 * answers 0 once nothing is being written in it, and the rmdir of
 * tasks/<task> deletes the task (vd_engine_task_delete). The choice and
 * what it costs are in docs/lifecycle.md, "From the mount".
 *
 * A name that answered 0 this way is unhashed (as every removed name is,
 * view.c): the kernel has marked its inode removed, a dead directory
 * among them, so the next lookup must get a fresh inode, not that one.
 *
 * Deletions made through the mount drop the kernel's cached entries by
 * themselves. Those made elsewhere (vdfs rm over HTTP, retention at gc)
 * would leave versions/<id> and tasks/<task> cached for up to the hour
 * their entries live (view_tree.c, vref_ttl), so a watcher thread looks
 * at vd_engine_deletes_seq, which grows on every delete, and when it
 * moved checks the versions and tasks the kernel holds nodes for; for the
 * ones gone it unhashes the node and sends the kernel an invalidation.
 */
#include "view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* How often the watcher looks at the sequence number, and how long after a
 * sweep the next may start: at least WATCH_TICK_MS, and WATCH_SPACING
 * times what the last one took, so that checking many cached versions
 * while versions arrive one after another costs a few percent of a core at
 * most. */
#define WATCH_TICK_MS 100
#define WATCH_SPACING 20
/* How long unmounting waits for the watcher before going ahead (see
 * view_watch_stop). */
#define WATCH_STOP_WAIT_S 5

/* ---- unlink and rmdir ------------------------------------------------ */

bool view_remove_here(const struct vref *parent)
{
	switch (parent->kind) {
	case NK_TASKS:
	case NK_TASK:
	case NK_VERSIONS:
	case NK_VERSION:
	case NK_INPUT:
	case NK_CODES:
	case NK_RUNS:
	case NK_RUN:
		return true;
	default:
		return false;
	}
}

/* The first name of task's data/ that is being written or waits to be
 * sealed (a staging file or tree), copied into name; false when none. */
static bool data_in_flight(struct vd_view *v, const char *task, char *name, size_t size)
{
	bool found = false;
	pthread_mutex_lock(&v->slock);
	for (struct stage *s = v->stages; s && !found; s = s->next) {
		if (s->dead || strcmp(s->task, task) != 0)
			continue;
		snprintf(name, size, "%s", s->name);
		found = true;
	}
	pthread_mutex_unlock(&v->slock);
	return found;
}

/* rmdir of tasks/<task>/data: nothing to remove (the names go with the
 * task), but what is still being written must not be lost silently. */
static int remove_data_dir(struct vd_view *v, const struct vref *c)
{
	char name[VIEW_NAME_MAX + 1];
	if (!data_in_flight(v, c->task, name, sizeof(name)))
		return 0;
	vd_warn("rmdir tasks/%s/data: data/%s is being written or waits to be sealed",
		c->task, name);
	return -ENOTEMPTY;
}

static int remove_task(struct vd_view *v, const struct vref *c)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	char name[VIEW_NAME_MAX + 1];
	int rc;

	/* Only its owner and root remove a task (view_owner.c); the kernel's
	 * sticky tasks/ would also let the daemon's own user. */
	rc = task_may_change(v, c->task);
	if (rc < 0)
		goto out;
	/* Deleting the task under a file being written or a tree settling
	 * would leave them nowhere to be sealed. */
	if (data_in_flight(v, c->task, name, sizeof(name))) {
		vd_warn("rmdir tasks/%s: refused: data/%s is being written or waits to be "
			"sealed", c->task, name);
		rc = -EBUSY;
		goto out;
	}
	rc = vd_engine_task_delete(&why, v->e, c->task);
	if (rc < 0)
		vd_warn("rmdir tasks/%s: refused: %s", c->task,
			why.len ? vd_buf_cstr(&why) : strerror(-rc));
out:
	vd_buf_release(&why);
	return rc < 0 ? rc : 0;
}

static int remove_version(struct vd_view *v, const struct vref *c)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	int rc = vd_engine_version_delete(&why, v->e, c->task, c->data_id);
	if (rc < 0) {
		const char *msg = why.len ? vd_buf_cstr(&why) : strerror(-rc);
		vd_warn("rmdir tasks/%s/versions/%s: refused: %s", c->task, c->data_id, msg);
		/* Also where the user of the mount looks: latest/log. */
		vd_engine_task_note(v->e, c->task, "rm of version %.12s refused: %s",
				    c->data_id, msg);
	}
	vd_buf_release(&why);
	return rc < 0 ? rc : 0;
}

int view_remove(struct vd_view *v, const struct vref *pr, const char *name, bool dir)
{
	struct vref *c = malloc(sizeof(*c));
	struct stat st;
	int rc;

	if (!c)
		return -ENOMEM;
	rc = vref_child(c, v, pr, name);
	if (rc < 0)
		goto out;
	rc = vref_stat(&st, v, c);
	if (rc < 0)
		goto out;
	if (dir != (c->type == S_IFDIR)) {
		rc = dir ? -ENOTDIR : -EISDIR;
		goto out;
	}
	switch (c->kind) {
	case NK_TASK:
		rc = remove_task(v, c);
		break;
	case NK_VERSION:
		rc = remove_version(v, c);
		break;
	case NK_DATA:
		rc = remove_data_dir(v, c);
		break;
	default:
		/* function, config, latest, versions/, code/ and what is in
		 * it, and everything inside a version: they go with the task
		 * or the version (see the top of this file). */
		rc = 0;
		break;
	}
out:
	free(c);
	return rc;
}

/* ---- the watcher ------------------------------------------------------ */

/* A version or task the kernel may hold an entry for. */
struct cand {
	fuse_ino_t parent;
	char *task;
	char data_id[VD_ID_SIZE];    /* "" for a task */
};

struct cands {
	struct cand *v;
	size_t n, cap;
	bool oom;
};

static void cands_free(struct cands *cs)
{
	for (size_t i = 0; i < cs->n; i++)
		free(cs->v[i].task);
	free(cs->v);
	cs->v = NULL;
	cs->n = cs->cap = 0;
}

/* node_walk's callback (nlock held): copy, nothing more. */
static void collect(void *ctx, const struct vnode *n)
{
	struct cands *cs = ctx;
	if ((n->kind != NK_TASK && n->kind != NK_VERSION) || !n->parent || !n->task || cs->oom)
		return;
	if (cs->n == cs->cap) {
		size_t nc = cs->cap ? cs->cap * 2 : 64;
		struct cand *nv = realloc(cs->v, nc * sizeof(*nv));
		if (!nv) {
			cs->oom = true;
			return;
		}
		cs->v = nv;
		cs->cap = nc;
	}
	struct cand *c = &cs->v[cs->n];
	c->task = strdup(n->task);
	if (!c->task) {
		cs->oom = true;
		return;
	}
	c->parent = n->parent->ino;
	if (n->kind == NK_VERSION)
		memcpy(c->data_id, n->data_id, sizeof(c->data_id));
	else
		c->data_id[0] = '\0';
	cs->n++;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	int d = strcmp(x->task, y->task);
	return d ? d : strcmp(x->data_id, y->data_id);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The kernel is to forget (parent, name). Under wlock, so that unmounting
 * never closes the device under a notification about to start (see
 * view_watch_stop). */
static void forget_entry(struct vd_view *v, fuse_ino_t parent, const char *name)
{
	node_unhash_at(v, parent, name);
	pthread_mutex_lock(&v->wlock);
	if (!atomic_load(&v->wstop)) {
		/* -ENOENT: the kernel had no such entry cached; nothing to do. */
		int rc = fuse_lowlevel_notify_inval_entry(v->se, parent, name, strlen(name));
		if (rc < 0 && rc != -ENOENT)
			vd_debug("invalidating a deleted entry: %s", strerror(-rc));
	}
	pthread_mutex_unlock(&v->wlock);
}

/* Check every cached version and task; forget the ones gone. */
static void sweep(struct vd_view *v)
{
	struct cands cs = { 0 };
	size_t gone = 0;

	node_walk(v, collect, &cs);
	if (cs.oom)
		vd_warn("view: out of memory while looking for deleted versions");
	if (cs.n > 1)
		qsort(cs.v, cs.n, sizeof(*cs.v), cand_cmp);
	for (size_t i = 0; i < cs.n && !atomic_load(&v->wstop);) {
		const char *task = cs.v[i].task;
		size_t end = i;
		while (end < cs.n && strcmp(cs.v[end].task, task) == 0)
			end++;
		bool exists = vd_engine_task_exists(v->e, task);
		struct vd_strv ids = { 0 };
		bool listed = exists && vd_engine_version_list(&ids, v->e, task) >= 0;
		if (listed && ids.n > 1)
			qsort(ids.v, ids.n, sizeof(*ids.v), str_cmp);
		for (; i < end; i++) {
			struct cand *c = &cs.v[i];
			bool is_task = c->data_id[0] == '\0';
			const char *key = c->data_id;
			bool keep;
			if (is_task)
				keep = exists;
			else if (!exists)
				keep = false;
			else
				keep = !listed || (ids.n > 0 && bsearch(&key, ids.v, ids.n,
									 sizeof(*ids.v), str_cmp));
			if (keep)
				continue;
			forget_entry(v, c->parent, is_task ? c->task : c->data_id);
			gone++;
		}
		vd_strv_release(&ids);
	}
	if (gone)
		vd_debug("view: %zu deleted versions or tasks dropped from the kernel's cache",
			 gone);
	cands_free(&cs);
}

static void *watch_main(void *arg)
{
	struct vd_view *v = arg;
	uint64_t seen = vd_engine_deletes_seq(v->e);
	int64_t next = 0;

	pthread_mutex_lock(&v->wlock);
	while (!atomic_load(&v->wstop)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += WATCH_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&v->wcond, &v->wlock, &ts);
		if (atomic_load(&v->wstop))
			break;
		pthread_mutex_unlock(&v->wlock);
		/* Read before the sweep: a delete during it makes another. */
		uint64_t seq = vd_engine_deletes_seq(v->e);
		int64_t now = vd_mono_ms();
		if (seq != seen && now >= next) {
			seen = seq;
			sweep(v);
			int64_t took = vd_mono_ms() - now;
			int64_t gap = took * WATCH_SPACING;
			next = vd_mono_ms() + (gap > WATCH_TICK_MS ? gap : WATCH_TICK_MS);
		}
		pthread_mutex_lock(&v->wlock);
	}
	pthread_mutex_unlock(&v->wlock);
	return NULL;
}

int view_watch_start(struct vd_view *v)
{
	int rc = -pthread_create(&v->watcher, NULL, watch_main, v);
	if (rc < 0) {
		vd_err("starting the deletion watcher: %s", strerror(-rc));
		return rc;
	}
	v->watcher_started = true;
	return 0;
}

/*
 * Stop the watcher before the session is unmounted, which closes the
 * device: a notification must never be written to a descriptor number
 * that may by then name another file. wlock is held across each
 * notification, so once it is taken here none is under way and wstop
 * keeps any new one from starting. A notification can block in the kernel
 * (it waits for the directory's lock, which a request the stopped loop
 * will never answer may hold); then, after WATCH_STOP_WAIT_S, unmounting
 * goes ahead, which ends that request and the notification with it (the
 * device file stays open while the write is in it), and
 * view_watch_join finishes the job.
 */
void view_watch_stop(struct vd_view *v)
{
	struct timespec ts;
	if (!v->watcher_started)
		return;
	atomic_store(&v->wstop, true);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WATCH_STOP_WAIT_S;
	if (pthread_mutex_timedlock(&v->wlock, &ts) != 0) {
		vd_warn("view: the deletion watcher is waiting for the kernel; unmounting first");
		return;
	}
	pthread_cond_broadcast(&v->wcond);
	pthread_mutex_unlock(&v->wlock);
	pthread_join(v->watcher, NULL);
	v->watcher_started = false;
}

void view_watch_join(struct vd_view *v)
{
	if (!v->watcher_started)
		return;
	/* Only when view_watch_stop could not take wlock: the watcher holds
	 * it until its notification returns, then sees wstop. */
	pthread_join(v->watcher, NULL);
	v->watcher_started = false;
}
