/*
 * view_data.c - tasks/NAME/data/: the drop box.
 *
 * A name in data/ is, at any moment, one of:
 *   - a sealed file or tree: the engine's latest version under that name,
 *     shown read-only from its manifest until someone writes to it;
 *   - a staging file: a real file under the staging directory, shared by
 *     every handle open on the name. A flush from a handle that may write
 *     seals it (vd_engine_submit_file) when it changed since the last seal,
 *     so that `cp` returns only once versions/<id>/ exists. The last
 *     release deletes it; the name then shows the sealed version again.
 *   - a staging tree: a real directory under the staging directory, made by
 *     mkdir in data/ or by the first change to a sealed tree (which first
 *     copies the sealed files into it). Operations inside pass through to
 *     it. The settle thread seals it (vd_engine_submit_tree) once it has
 *     been quiet for the task's settle time and no file in it is open, then
 *     deletes it.
 * Staging entries are `struct stage` in v->stages (one per task and name).
 *
 * A staging tree is in an exclusive state while it is being filled from a
 * sealed tree or sealed: every operation on it waits on v->scond until that
 * ends, then looks the name up again.
 */
#include "view_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define SETTLE_TICK_MS 200
#define SETTLE_BATCH 64
/* How long a tree whose seal failed for want of space waits to try again. */
#define SEAL_RETRY_MS 2000
#define STAGE_PREFIX "vdv-"

/* ---- stages ------------------------------------------------------------ */

static struct stage *stage_find_locked(struct vd_view *v, const char *task, const char *name)
{
	for (struct stage *s = v->stages; s; s = s->next)
		if (strcmp(s->name, name) == 0 && strcmp(s->task, task) == 0)
			return s;
	return NULL;
}

static void stage_insert_locked(struct vd_view *v, struct stage *s)
{
	s->next = v->stages;
	v->stages = s;
}

/* Take s out of the list; it is freed once nothing uses it. */
static void stage_remove_locked(struct vd_view *v, struct stage *s)
{
	if (s->dead)
		return;
	for (struct stage **pp = &v->stages; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->next = NULL;
	s->dead = true;
}

static bool stage_unused_locked(const struct stage *s)
{
	return s->dead && s->pins == 0 && s->busy == 0 && s->open_files == 0;
}

/* Deletes the staging file or directory; call without locks. */
static void stage_destroy(struct stage *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->path && unlink(s->path) < 0 && errno != ENOENT)
		vd_warn("removing staging file %s: %s", s->path, strerror(errno));
	if (s->dir) {
		int rc = vd_rm_rf(s->dir);
		if (rc < 0)
			vd_warn("removing staging tree %s: %s", s->dir, strerror(-rc));
	}
	vd_engine_ingest_abort(s->stream);
	while (s->bad) {
		struct bad_path *b = s->bad;
		s->bad = b->next;
		free(b);
	}
	pthread_mutex_destroy(&s->seal_lock);
	pthread_mutex_destroy(&s->io_lock);
	free(s->task);
	free(s->name);
	free(s->path);
	free(s->dir);
	free(s);
}

/* A new stage, not yet in the list: a staging file (O_EXCL) or directory
 * with a name no other stage has. */
static int stage_new(struct stage **out, struct vd_view *v, const char *task,
		     const char *name, bool tree)
{
	int rc = 0;
	char path[PATH_MAX];
	struct stage *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	pthread_mutex_init(&s->seal_lock, NULL);
	pthread_mutex_init(&s->io_lock, NULL);
	s->is_tree = tree;
	s->task = strdup(task);
	s->name = strdup(name);
	if (!s->task || !s->name) {
		rc = -ENOMEM;
		goto out;
	}
	for (int tries = 0;; tries++) {
		pthread_mutex_lock(&v->slock);
		unsigned long long seq = ++v->stage_seq;
		pthread_mutex_unlock(&v->slock);
		int n = snprintf(path, sizeof(path), "%s/" STAGE_PREFIX "%c-%ld-%llu", v->staging,
				 tree ? 't' : 'f', (long)getpid(), seq);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		if (tree)
			rc = mkdir(path, 0755) < 0 ? -errno : 0;
		else {
			s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			rc = s->fd < 0 ? -errno : 0;
		}
		if (rc == -EEXIST && tries < 100)
			continue;
		if (rc < 0) {
			vd_warn("making a staging %s in %s: %s", tree ? "directory" : "file",
				v->staging, strerror(-rc));
			goto out;
		}
		break;
	}
	if (tree)
		s->dir = strdup(path);
	else
		s->path = strdup(path);
	if (!(tree ? s->dir : s->path)) {
		/* The directory or file is there but unnamed in s: remove it. */
		if (tree)
			rmdir(path);
		else
			unlink(path);
		rc = -ENOMEM;
		goto out;
	}
	s->last_change = vd_mono_ms();
	*out = s;
out:
	if (rc < 0)
		stage_destroy(s);
	return rc;
}

/* The staging file for a name, pinned, or NULL. */
static struct stage *file_stage_get(struct vd_view *v, const char *task, const char *name)
{
	pthread_mutex_lock(&v->slock);
	struct stage *s = stage_find_locked(v, task, name);
	if (s && !s->is_tree)
		s->pins++;
	else
		s = NULL;
	pthread_mutex_unlock(&v->slock);
	return s;
}

static void file_stage_put(struct vd_view *v, struct stage *s, bool writer)
{
	bool destroy = false;
	pthread_mutex_lock(&v->slock);
	s->pins--;
	if (writer)
		s->writers--;
	if (s->pins == 0) {
		stage_remove_locked(v, s);
		destroy = true;
	}
	pthread_mutex_unlock(&v->slock);
	if (destroy)
		stage_destroy(s);
}

/* ---- failed writes --------------------------------------------------------- */

/* A write to a staging file failed (io_lock held): remember the first. */
static void stage_write_failed(struct stage *s, int err)
{
	if (!s->write_err) {
		s->write_err = err;
		vd_warn("task %s: data/%s: a write failed (%s): its close fails and "
			"nothing of it is sealed until it is written again from the start",
			s->task, s->name, strerror(-err));
	}
}

/* A staging file's size was set (io_lock held); at zero nothing of a
 * failed write is left. */
static void stage_size_set(struct stage *s, off_t size)
{
	if (size == 0)
		s->write_err = 0;
}

/* p is dir or inside it. */
static bool path_within(const char *p, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(p, dir, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

/* A write to path inside tree s failed (slock held). If the entry cannot
 * be allocated the tree is marked as having lost one, which keeps it from
 * being sealed at all: refusing a seal is always safe, sealing a file
 * whose write failed never is. */
static void bad_add_locked(struct stage *s, const char *path, int err)
{
	for (struct bad_path *b = s->bad; b; b = b->next)
		if (strcmp(b->path, path) == 0)
			return;
	size_t n = strlen(path) + 1;
	struct bad_path *b = malloc(sizeof(*b) + n);
	if (!b) {
		s->bad_lost = true;
		return;
	}
	b->err = err;
	memcpy(b->path, path, n);
	b->next = s->bad;
	s->bad = b;
	vd_warn("task %s: data/%s/%s: a write failed (%s): the tree is not sealed "
		"until this file is written again or removed", s->task, s->name, path,
		strerror(-err));
}

/* path (and everything below it) was truncated to zero, removed or
 * replaced (slock held). */
static void bad_drop_locked(struct stage *s, const char *path)
{
	for (struct bad_path **pp = &s->bad; *pp;) {
		struct bad_path *b = *pp;
		if (path_within(b->path, path)) {
			*pp = b->next;
			free(b);
		} else {
			pp = &b->next;
		}
	}
}

/* from was renamed to to (slock held): what was listed under to is gone,
 * what was under from is now under to. */
static void bad_move_locked(struct stage *s, const char *from, const char *to)
{
	char moved[PATH_MAX];
	bad_drop_locked(s, to);
	for (struct bad_path **pp = &s->bad; *pp;) {
		struct bad_path *b = *pp;
		size_t nf = strlen(from);
		if (!path_within(b->path, from)) {
			pp = &b->next;
			continue;
		}
		int n = snprintf(moved, sizeof(moved), "%s%s", to, b->path + nf);
		struct bad_path *nb = NULL;
		if (n >= 0 && (size_t)n < sizeof(moved))
			nb = malloc(sizeof(*nb) + (size_t)n + 1);
		if (nb) {
			nb->err = b->err;
			memcpy(nb->path, moved, (size_t)n + 1);
			nb->next = b->next;
		} else {
			s->bad_lost = true;
		}
		*pp = nb ? nb : b->next;
		free(b);
		if (nb)
			pp = &nb->next;
	}
}

static void tree_bad_add(struct vd_view *v, struct stage *s, const char *path, int err)
{
	pthread_mutex_lock(&v->slock);
	bad_add_locked(s, path, err);
	pthread_mutex_unlock(&v->slock);
}

static void tree_bad_drop(struct vd_view *v, struct stage *s, const char *path)
{
	pthread_mutex_lock(&v->slock);
	bad_drop_locked(s, path);
	pthread_mutex_unlock(&v->slock);
}

/* ---- staging trees ----------------------------------------------------- */

static int sealed_get(struct vd_version_info *vi, struct vd_view *v, const char *task,
		      const char *name)
{
	int rc = vd_engine_data_get(vi, v->e, task, name);
	return rc < 0 ? rc : 0;
}

/* Start a staging tree for a sealed tree: a new directory holding the
 * sealed files. Returns it in the list, busy for the caller. */
static int tree_from_sealed(struct stage **out, struct vd_view *v, const char *task,
			    const char *name)
{
	int rc = 0;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;
	struct stage *s = NULL;
	bool inserted = false;

	rc = sealed_get(&vi, v, task, name);
	if (rc < 0)
		goto out;
	if (vi.kind != VD_KIND_TREE) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = mc_get(&ent, v, vi.data_id);
	if (rc < 0)
		goto out;
	rc = stage_new(&s, v, task, name, true);
	if (rc < 0)
		goto out;

	pthread_mutex_lock(&v->slock);
	if (stage_find_locked(v, task, name)) {
		/* Someone else got there first: use theirs. */
		pthread_mutex_unlock(&v->slock);
		rc = -EAGAIN;
		goto out;
	}
	s->excl = true;
	stage_insert_locked(v, s);
	inserted = true;
	pthread_mutex_unlock(&v->slock);

	vd_info("task %s: data/%s: copying version %s for changes", task, name, vi.data_id);
	rc = materialize_tree(v, ent->m, s->dir);

	pthread_mutex_lock(&v->slock);
	s->excl = false;
	if (rc < 0) {
		stage_remove_locked(v, s);
	} else {
		s->busy++;
		s->last_change = vd_mono_ms();
		*out = s;
	}
	pthread_cond_broadcast(&v->scond);
	pthread_mutex_unlock(&v->slock);
out:
	if (ent)
		mc_put(v, ent);
	/* Not in the list, or taken out of it after a failed copy (nobody
	 * could pin it while it was exclusive): ours to delete. */
	if (s && (!inserted || rc < 0))
		stage_destroy(s);
	return rc;
}

/*
 * Pin the staging tree of (task, name) for one operation. With modify, a
 * sealed tree gets a staging tree first and the tree's quiet time starts
 * again. Without, *out is NULL when the tree is only sealed.
 */
static int tree_enter(struct stage **out, struct vd_view *v, const char *task,
		      const char *name, bool modify)
{
	int rc = 0;
	*out = NULL;
	for (;;) {
		pthread_mutex_lock(&v->slock);
		struct stage *s;
		while ((s = stage_find_locked(v, task, name)) && s->excl)
			pthread_cond_wait(&v->scond, &v->slock);
		if (s) {
			if (!s->is_tree) {
				rc = -ENOTDIR;
			} else {
				s->busy++;
				if (modify) {
					s->last_change = vd_mono_ms();
					s->failed = false;
					s->retry_ms = 0;
					s->empty = false;
				}
				*out = s;
			}
			pthread_mutex_unlock(&v->slock);
			return rc;
		}
		pthread_mutex_unlock(&v->slock);
		if (!modify)
			return 0;
		rc = tree_from_sealed(out, v, task, name);
		if (rc != -EAGAIN)
			return rc;
	}
}

static void tree_leave(struct vd_view *v, struct stage *s, bool modified)
{
	bool destroy = false;
	pthread_mutex_lock(&v->slock);
	s->busy--;
	if (modified) {
		s->last_change = vd_mono_ms();
		s->failed = false;
		s->retry_ms = 0;
		s->empty = false;
	}
	destroy = stage_unused_locked(s);
	pthread_mutex_unlock(&v->slock);
	if (destroy)
		stage_destroy(s);
}

static int tree_path(char *out, size_t outsz, const struct stage *s, const char *path)
{
	return path_join(out, outsz, s->dir, path);
}

static void stat_from_real(struct stat *st, struct vd_view *v, const struct stat *real)
{
	int64_t ms = (int64_t)real->st_mtim.tv_sec * 1000 + real->st_mtim.tv_nsec / 1000000;
	view_stat_base(st, v, real->st_mode, (uint64_t)real->st_size, ms);
}

/* ---- attributes and listings -------------------------------------------- */

static int sealed_stat(struct stat *st, struct vd_view *v, const struct vref *r)
{
	int rc;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;

	rc = sealed_get(&vi, v, r->task, r->dname);
	if (rc < 0)
		goto out;
	if (r->path[0] == '\0') {
		if (vi.kind == VD_KIND_FILE)
			view_stat_base(st, v, S_IFREG | 0644, vi.size, vi.time_ms);
		else
			view_stat_base(st, v, S_IFDIR | 0755, 0, vi.time_ms);
		goto out;
	}
	if (vi.kind != VD_KIND_TREE) {
		rc = -ENOENT;
		goto out;
	}
	rc = mc_get(&ent, v, vi.data_id);
	if (rc < 0)
		goto out;
	mode_t type;
	size_t idx;
	rc = man_find(&type, &idx, ent->m, r->path);
	if (rc < 0)
		goto out;
	if (S_ISREG(type))
		view_stat_base(st, v, S_IFREG | 0644, ent->m->files[idx].size, vi.time_ms);
	else
		view_stat_base(st, v, S_IFDIR | 0755, 0, vi.time_ms);
out:
	if (ent)
		mc_put(v, ent);
	return rc;
}

int data_stat(struct stat *st, struct vd_view *v, struct vref *r)
{
	int rc = 0;
	struct stage *s = NULL;
	struct stat real;
	char path[PATH_MAX];

	if (r->path[0] == '\0') {
		s = file_stage_get(v, r->task, r->dname);
		if (s) {
			rc = fstat(s->fd, &real) < 0 ? -errno : 0;
			if (rc == 0) {
				struct vfh probe = { .kind = FH_STAGE, .st = s };
				uint64_t vs;
				if (data_virtual_size(&probe, &vs))
					real.st_size = (off_t)vs;
				stat_from_real(st, v, &real);
				st->st_mode = S_IFREG | 0644;
			}
			file_stage_put(v, s, false);
			return rc;
		}
	}
	rc = tree_enter(&s, v, r->task, r->dname, false);
	if (rc < 0)
		return rc == -ENOTDIR ? -ENOENT : rc;
	if (!s)
		return sealed_stat(st, v, r);
	rc = tree_path(path, sizeof(path), s, r->path);
	if (rc == 0)
		rc = lstat(path, &real) < 0 ? -errno : 0;
	if (rc == 0)
		stat_from_real(st, v, &real);
	tree_leave(v, s, false);
	return rc;
}

static mode_t dtype_mode(unsigned char t)
{
	switch (t) {
	case DT_DIR:
		return S_IFDIR;
	case DT_REG:
		return S_IFREG;
	case DT_LNK:
		return S_IFLNK;
	default:
		return 0;
	}
}

static int list_real(struct dlist *out, const char *path)
{
	int rc = 0;
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		struct dirent *de = readdir(d);
		if (!de) {
			rc = errno ? -errno : 0;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		mode_t type = dtype_mode(de->d_type);
		if (type == 0) {
			struct stat st;
			if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = st.st_mode & S_IFMT;
		}
		rc = dlist_add(out, de->d_name, strlen(de->d_name), type);
		if (rc < 0)
			break;
	}
	closedir(d);
	return rc;
}

static int list_data_dir(struct dlist *out, struct vd_view *v, const char *task)
{
	struct vd_strv names = { 0 };
	int rc = vd_engine_data_list(&names, v->e, task);
	if (rc < 0)
		goto out;
	/* Staging entries first: they are what the name shows. */
	pthread_mutex_lock(&v->slock);
	for (struct stage *s = v->stages; s && rc >= 0; s = s->next)
		if (strcmp(s->task, task) == 0)
			rc = dlist_add(out, s->name, strlen(s->name),
				       s->is_tree ? S_IFDIR : S_IFREG);
	pthread_mutex_unlock(&v->slock);
	for (size_t i = 0; i < names.n && rc >= 0; i++) {
		struct vd_version_info vi;
		if (sealed_get(&vi, v, task, names.v[i]) < 0)
			continue;
		rc = dlist_add(out, names.v[i], strlen(names.v[i]),
			       vi.kind == VD_KIND_TREE ? S_IFDIR : S_IFREG);
	}
	if (rc >= 0)
		dlist_sort_unique(out);
out:
	vd_strv_release(&names);
	return rc < 0 ? rc : 0;
}

int data_list(struct dlist *out, struct vd_view *v, const struct vref *r)
{
	int rc = 0;
	struct stage *s = NULL;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;
	char path[PATH_MAX];

	if (r->kind == NK_DATA) {
		if (!vd_engine_task_exists(v->e, r->task))
			return -ENOENT;
		return list_data_dir(out, v, r->task);
	}
	rc = tree_enter(&s, v, r->task, r->dname, false);
	if (rc < 0)
		return rc;
	if (s) {
		rc = tree_path(path, sizeof(path), s, r->path);
		if (rc == 0)
			rc = list_real(out, path);
		tree_leave(v, s, false);
		return rc;
	}
	rc = sealed_get(&vi, v, r->task, r->dname);
	if (rc < 0)
		goto out;
	if (vi.kind != VD_KIND_TREE) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = mc_get(&ent, v, vi.data_id);
	if (rc == 0)
		rc = man_list(out, ent->m, r->path);
out:
	if (ent)
		mc_put(v, ent);
	return rc;
}

/* ---- sealing ------------------------------------------------------------ */

static int seal_fd(struct vd_view *v, const char *task, const char *name, int fd)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_version_info vi;
	int rc = vd_engine_submit_file(&vi, &why, v->e, task, name, fd);
	/* The engine logs the reason of a refusal it explains in why. */
	if (rc < 0) {
		if (why.len == 0)
			vd_warn("task %s: data/%s not sealed: %s", task, name, strerror(-rc));
		if (rc == -E2BIG)
			rc = -EFBIG;
	} else {
		vd_debug("task %s: data/%s sealed as %s (%s, %llu bytes)", task, name,
			 vi.data_id, rc == 1 ? "new version" : "known content",
			 (unsigned long long)vi.size);
		rc = 0;
	}
	vd_buf_release(&why);
	return rc;
}

/* Move a staging file's content into its fd (io_lock held). */
static int stage_plain(struct vd_view *v, struct stage *s)
{
	int rc = s->stream_err;
	if (rc)
		return rc;
	if (s->stream) {
		rc = vd_engine_ingest_copy_to(s->stream, s->fd);
		vd_engine_ingest_abort(s->stream);
		s->stream = NULL;
	} else if (s->refill[0]) {
		struct mc_ent *ent = NULL;
		rc = mc_get(&ent, v, s->refill);
		if (rc == 0 && ent->m->nfiles != 1)
			rc = -EIO;
		if (rc == 0 && ftruncate(s->fd, 0) < 0)
			rc = -errno;
		if (rc == 0)
			rc = copy_file_to_fd(v, &ent->m->files[0], s->fd);
		if (ent)
			mc_put(v, ent);
		s->refill[0] = '\0';
	}
	if (rc < 0) {
		vd_warn("task %s: data/%s: cannot move its content to the staging "
			"file: %s", s->task, s->name, strerror(-rc));
		s->stream_err = rc;
	}
	return rc;
}

/* Seal a streamed file (io_lock held): the stream becomes a refill. */
static int seal_stream(struct vd_view *v, struct stage *s)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_version_info vi;
	vd_ingest *in = s->stream;
	uint64_t size = vd_engine_ingest_size(in);
	s->stream = NULL;
	int rc = vd_engine_ingest_seal(&vi, &why, in, s->name);
	if (rc < 0) {
		if (why.len == 0)
			vd_warn("task %s: data/%s not sealed: %s", s->task, s->name,
				strerror(-rc));
		if (rc == -E2BIG)
			rc = -EFBIG;
		/* The stream is gone and with it the content. */
		s->stream_err = rc;
	} else {
		memcpy(s->refill, vi.data_id, VD_ID_SIZE);
		s->vsize = size;
		rc = 0;
	}
	vd_buf_release(&why);
	return rc;
}

int data_ready_fd(struct vd_view *v, const struct vfh *fh)
{
	if (fh->kind != FH_STAGE)
		return fh->fd;
	struct stage *s = fh->st;
	pthread_mutex_lock(&s->io_lock);
	int rc = stage_plain(v, s);
	pthread_mutex_unlock(&s->io_lock);
	return rc < 0 ? rc : s->fd;
}

bool data_virtual_size(const struct vfh *fh, uint64_t *size)
{
	if (fh->kind != FH_STAGE)
		return false;
	struct stage *s = fh->st;
	pthread_mutex_lock(&s->io_lock);
	bool virt = s->stream || s->refill[0];
	if (s->stream)
		*size = vd_engine_ingest_size(s->stream);
	else if (virt)
		*size = s->vsize;
	pthread_mutex_unlock(&s->io_lock);
	return virt;
}

/*
 * Seal a staging file if it changed since its last seal. A file that was
 * only made or truncated by its open, with nothing written yet, is sealed
 * only when forced (at the last writer's release): a shell's `cmd > file`
 * opens, then closes a duplicate of the descriptor (a FLUSH) before cmd
 * writes a byte, and that must not make an empty version first.
 */
static int stage_seal(struct vd_view *v, struct stage *s, bool force)
{
	int rc = 0;
	pthread_mutex_lock(&s->seal_lock);
	/* Whether or not anything changed since the last seal, a failed
	 * write makes every close fail. */
	pthread_mutex_lock(&s->io_lock);
	rc = s->write_err;
	pthread_mutex_unlock(&s->io_lock);
	if (rc < 0) {
		pthread_mutex_unlock(&s->seal_lock);
		return rc;
	}
	pthread_mutex_lock(&v->slock);
	bool dirty = s->dirty && !s->unlinked && (force || s->written);
	if (dirty)
		s->dirty = false;
	pthread_mutex_unlock(&v->slock);
	if (dirty) {
		pthread_mutex_lock(&s->io_lock);
		if (s->stream_err)
			rc = s->stream_err;
		else if (s->stream)
			rc = seal_stream(v, s);
		else if (!s->refill[0] || (rc = stage_plain(v, s)) == 0)
			rc = seal_fd(v, s->task, s->name, s->fd);
		pthread_mutex_unlock(&s->io_lock);
		if (rc < 0) {
			pthread_mutex_lock(&v->slock);
			s->dirty = true;
			pthread_mutex_unlock(&v->slock);
		}
	}
	pthread_mutex_unlock(&s->seal_lock);
	return rc;
}

static void mark_dirty(struct vd_view *v, struct stage *s, bool written)
{
	pthread_mutex_lock(&v->slock);
	s->dirty = true;
	if (written)
		s->written = true;
	pthread_mutex_unlock(&v->slock);
}

/* truncate(2) on a sealed file nobody has open: no close will follow, so
 * the truncated content is sealed at once. */
static int seal_truncated(struct vd_view *v, const struct vref *r, off_t size)
{
	int rc = 0;
	struct stage *tmp = NULL;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;

	rc = sealed_get(&vi, v, r->task, r->dname);
	if (rc < 0)
		goto out;
	if (vi.kind != VD_KIND_FILE) {
		rc = -EISDIR;
		goto out;
	}
	if ((uint64_t)size == vi.size)
		goto out;
	rc = stage_new(&tmp, v, r->task, r->dname, false);
	if (rc < 0)
		goto out;
	if (size > 0) {
		rc = mc_get(&ent, v, vi.data_id);
		if (rc == 0 && ent->m->nfiles != 1)
			rc = -EIO;
		if (rc == 0)
			rc = copy_file_to_fd(v, &ent->m->files[0], tmp->fd);
		if (rc < 0)
			goto out;
	}
	if (ftruncate(tmp->fd, size) < 0) {
		rc = -errno;
		goto out;
	}
	rc = seal_fd(v, r->task, r->dname, tmp->fd);
out:
	if (ent)
		mc_put(v, ent);
	stage_destroy(tmp);
	return rc;
}

static int nftw_has_file(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	return flag == FTW_F && S_ISREG(st->st_mode) ? 1 : 0;
}

/* Seal a quiet staging tree; s is pinned and exclusive. */
static void tree_seal(struct vd_view *v, struct stage *s)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_version_info vi;
	bool empty = false, failed = false;
	int64_t retry_ms = 0;
	int rc;

	pthread_mutex_lock(&v->slock);
	bool bad = s->bad || s->bad_lost;
	pthread_mutex_unlock(&v->slock);
	if (bad) {
		/* Each failed write was logged with its file when it happened;
		 * wait for the files to be written again. */
		vd_warn("task %s: data/%s not sealed: a write to a file in it failed",
			s->task, s->name);
		failed = true;
		goto done;
	}
	rc = nftw(s->dir, nftw_has_file, 16, FTW_PHYS);
	if (rc == 0) {
		/* Only directories: there is nothing a version could hold
		 * (empty directories are not kept). Wait for files. */
		empty = true;
		goto done;
	}
	if (rc < 0)
		vd_warn("task %s: data/%s: walking %s: %s", s->task, s->name, s->dir,
			strerror(errno));
	rc = vd_engine_submit_tree(&vi, &why, v->e, s->task, s->name, s->dir);
	if (rc < 0) {
		if (why.len == 0)
			vd_warn("task %s: data/%s not sealed: %s", s->task, s->name, strerror(-rc));
		failed = true;
		/* Space comes back without any change to the tree. */
		if (rc == -ENOSPC || rc == -EDQUOT)
			retry_ms = vd_mono_ms() + SEAL_RETRY_MS;
	} else {
		vd_debug("task %s: data/%s sealed as %s (%s, %llu files, %llu bytes)", s->task,
			s->name, vi.data_id, rc == 1 ? "new version" : "known content",
			(unsigned long long)vi.nfiles, (unsigned long long)vi.size);
	}
done:
	pthread_mutex_lock(&v->slock);
	s->excl = false;
	s->empty = empty;
	s->failed = failed;
	s->retry_ms = retry_ms;
	if (!empty && !failed)
		stage_remove_locked(v, s);
	s->pins--;
	bool destroy = stage_unused_locked(s);
	pthread_cond_broadcast(&v->scond);
	pthread_mutex_unlock(&v->slock);
	vd_buf_release(&why);
	if (destroy)
		stage_destroy(s);
}

static bool tree_quiet_locked(const struct stage *s, int64_t now, int64_t settle_ms)
{
	bool retry = s->failed && s->retry_ms && now >= s->retry_ms;
	return s->is_tree && !s->dead && !s->excl && (!s->failed || retry) && !s->empty &&
	       s->busy == 0 && s->open_files == 0 && now - s->last_change >= settle_ms;
}

static void settle_tick(struct vd_view *v)
{
	struct stage *cand[SETTLE_BATCH];
	size_t n = 0;
	int64_t now = vd_mono_ms();

	pthread_mutex_lock(&v->slock);
	for (struct stage *s = v->stages; s && n < SETTLE_BATCH; s = s->next) {
		if (tree_quiet_locked(s, now, SETTLE_TICK_MS)) {
			s->pins++;
			cand[n++] = s;
		}
	}
	pthread_mutex_unlock(&v->slock);

	for (size_t i = 0; i < n; i++) {
		struct stage *s = cand[i];
		int settle = vd_engine_settle_ms(v->e, s->task);
		if (settle < 0)
			settle = 2000;
		pthread_mutex_lock(&v->slock);
		bool go = tree_quiet_locked(s, vd_mono_ms(), settle);
		if (go) {
			s->excl = true;
		} else {
			s->pins--;
		}
		bool destroy = !go && stage_unused_locked(s);
		pthread_mutex_unlock(&v->slock);
		if (go)
			tree_seal(v, s);
		else if (destroy)
			stage_destroy(s);
	}
}

static void *settle_main(void *arg)
{
	struct vd_view *v = arg;
	pthread_mutex_lock(&v->slock);
	while (!v->stopping) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += SETTLE_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&v->stop_cond, &v->slock, &ts);
		if (v->stopping)
			break;
		pthread_mutex_unlock(&v->slock);
		view_kick_loop(v);
		settle_tick(v);
		pthread_mutex_lock(&v->slock);
	}
	pthread_mutex_unlock(&v->slock);
	return NULL;
}

/* ---- life ----------------------------------------------------------------- */

/* Staging entries left by an earlier run that did not end cleanly: what was
 * in them was never sealed, and nobody can reach them any more. */
static void clean_leftovers(struct vd_view *v)
{
	DIR *d = opendir(v->staging);
	char path[PATH_MAX];
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX)) != 0)
			continue;
		int n = snprintf(path, sizeof(path), "%s/%s", v->staging, de->d_name);
		if (n < 0 || (size_t)n >= sizeof(path))
			continue;
		vd_info("removing unsealed leftover %s", path);
		int rc = vd_rm_rf(path);
		if (rc < 0)
			vd_warn("removing %s: %s", path, strerror(-rc));
	}
	closedir(d);
}

int data_init(struct vd_view *v)
{
	int rc = vd_mkdir_p(v->staging, 0700);
	if (rc < 0) {
		vd_err("staging directory %s: %s", v->staging, strerror(-rc));
		return rc;
	}
	clean_leftovers(v);
	rc = -pthread_create(&v->settler, NULL, settle_main, v);
	if (rc < 0) {
		vd_err("starting the settle thread: %s", strerror(-rc));
		return rc;
	}
	v->settler_started = true;
	return 0;
}

void data_shutdown(struct vd_view *v)
{
	if (v->settler_started) {
		pthread_mutex_lock(&v->slock);
		v->stopping = true;
		pthread_cond_broadcast(&v->stop_cond);
		pthread_mutex_unlock(&v->slock);
		pthread_join(v->settler, NULL);
		v->settler_started = false;
	}
	/* No operation runs any more. Trees still waiting for their settle
	 * time are sealed now rather than lost; files being written when the
	 * mount went away were never closed, so they are dropped. */
	for (;;) {
		pthread_mutex_lock(&v->slock);
		struct stage *s = v->stages;
		while (s && !(s->is_tree && !s->failed && !s->empty && !s->excl))
			s = s->next;
		if (s) {
			s->excl = true;
			s->pins++;
		}
		pthread_mutex_unlock(&v->slock);
		if (!s)
			break;
		vd_info("task %s: data/%s: sealing at unmount", s->task, s->name);
		tree_seal(v, s);
		/* A tree that stays (empty or failed) is skipped next time. */
	}
	pthread_mutex_lock(&v->slock);
	struct stage *s = v->stages;
	v->stages = NULL;
	pthread_mutex_unlock(&v->slock);
	while (s) {
		struct stage *next = s->next;
		stage_destroy(s);
		s = next;
	}
}

/* ---- operations in data/ ---------------------------------------------------- */

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

static int open_sealed_file(struct vfh *fh, struct vd_view *v, const struct vref *r)
{
	int rc = 0;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;
	mode_t type = S_IFREG;
	size_t idx = 0;

	rc = sealed_get(&vi, v, r->task, r->dname);
	if (rc < 0)
		goto out;
	if (r->path[0] == '\0' && vi.kind != VD_KIND_FILE) {
		rc = -EISDIR;
		goto out;
	}
	if (r->path[0] != '\0' && vi.kind != VD_KIND_TREE) {
		rc = -ENOENT;
		goto out;
	}
	rc = mc_get(&ent, v, vi.data_id);
	if (rc < 0)
		goto out;
	if (r->path[0] != '\0') {
		rc = man_find(&type, &idx, ent->m, r->path);
		if (rc < 0)
			goto out;
		if (!S_ISREG(type)) {
			rc = -EISDIR;
			goto out;
		}
	}
	rc = fh_chunk_init_man(fh, ent, idx);
	if (rc == 0)
		ent = NULL;   /* the handle holds it now */
out:
	if (ent)
		mc_put(v, ent);
	return rc;
}

/* Make fh a handle on the staging file s, whose pin it takes over. Even
 * when this fails fh is a complete handle: the caller releases it. */
static int join_stage(struct vfh *fh, struct vd_view *v, struct stage *s, bool wr,
		      bool trunc)
{
	if (wr) {
		pthread_mutex_lock(&v->slock);
		s->writers++;
		pthread_mutex_unlock(&v->slock);
	}
	fh->kind = FH_STAGE;
	fh->st = s;
	fh->writable = wr;
	if (wr && trunc) {
		pthread_mutex_lock(&s->io_lock);
		vd_engine_ingest_abort(s->stream);
		s->stream = NULL;
		s->refill[0] = '\0';
		s->stream_err = 0;
		int rc = ftruncate(s->fd, 0) < 0 ? -errno : 0;
		if (rc == 0)
			stage_size_set(s, 0);
		pthread_mutex_unlock(&s->io_lock);
		if (rc < 0)
			return rc;
		mark_dirty(v, s, false);
	}
	return 0;
}

/*
 * Open data/NAME (a file at the top of data/). Handles that may write share
 * one staging file, made here when there is none: empty with O_TRUNC or for
 * a new name, else holding the sealed content so that appends and
 * overwrites in place work. A read-only open with no staging file reads the
 * sealed version directly.
 */
static int open_top_file(struct vfh *fh, struct vd_view *v, const struct vref *r,
			 int flags, bool creating)
{
	int rc = 0;
	struct stage *s = NULL;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;
	bool exists;
	bool wr = wants_write(flags);
	bool trunc = (flags & O_TRUNC) != 0;

	for (;;) {
		pthread_mutex_lock(&v->slock);
		s = stage_find_locked(v, r->task, r->dname);
		bool tree = s && s->is_tree;
		if (s && !tree)
			s->pins++;
		pthread_mutex_unlock(&v->slock);
		if (tree)
			return -EISDIR;
		if (s) {
			if (creating && (flags & O_EXCL)) {
				file_stage_put(v, s, false);
				return -EEXIST;
			}
			return join_stage(fh, v, s, wr, trunc);
		}
		if (!wr)
			return open_sealed_file(fh, v, r);

		rc = sealed_get(&vi, v, r->task, r->dname);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		exists = rc == 0;
		if (exists && vi.kind != VD_KIND_FILE)
			return -EISDIR;
		if (exists && creating && (flags & O_EXCL))
			return -EEXIST;
		if (!exists && !creating)
			return -ENOENT;
		if (!exists && !vd_engine_task_exists(v->e, r->task))
			return -ENOENT;

		rc = stage_new(&s, v, r->task, r->dname, false);
		if (rc < 0)
			return rc;
		if (exists && !trunc && vi.size > 0) {
			rc = mc_get(&ent, v, vi.data_id);
			if (rc == 0 && ent->m->nfiles != 1)
				rc = -EIO;
			if (rc == 0)
				rc = copy_file_to_fd(v, &ent->m->files[0], s->fd);
			if (ent)
				mc_put(v, ent);
			ent = NULL;
			if (rc < 0) {
				stage_destroy(s);
				return rc;
			}
		}
		/* Content that starts empty arrives as a stream (see struct
		 * stage); without one (no memory, say) the fd serves as ever. */
		if ((!exists || trunc || vi.size == 0) &&
		    vd_engine_ingest_begin(&s->stream, v->e, r->task) < 0)
			s->stream = NULL;
		pthread_mutex_lock(&v->slock);
		if (stage_find_locked(v, r->task, r->dname)) {
			/* Another open made one meanwhile: join that. */
			pthread_mutex_unlock(&v->slock);
			stage_destroy(s);
			continue;
		}
		s->pins = 1;
		s->writers = 0;
		/* A new name is a change (an empty file is a version too); so
		 * is truncating a sealed one. */
		s->dirty = !exists || trunc;
		stage_insert_locked(v, s);
		pthread_mutex_unlock(&v->slock);
		return join_stage(fh, v, s, wr, false);
	}
}

static int open_in_tree(struct vfh *fh, struct vd_view *v, const struct vref *r,
			int flags, mode_t mode, bool creating)
{
	int rc = 0;
	struct stage *s = NULL;
	char path[PATH_MAX];
	bool wr = creating || wants_write(flags);

	rc = tree_enter(&s, v, r->task, r->dname, wr);
	if (rc < 0)
		return rc;
	if (!s)
		return open_sealed_file(fh, v, r);
	rc = tree_path(path, sizeof(path), s, r->path);
	if (rc < 0)
		goto out;
	/* The kernel computes every write's offset (O_APPEND included), and
	 * pwrite on an O_APPEND descriptor would ignore it. */
	int oflags = (flags & ~(O_APPEND | O_NOCTTY)) | O_CLOEXEC | O_NOFOLLOW;
	if (!creating)
		oflags &= ~(O_CREAT | O_EXCL);
	char *tpath = strdup(r->path);
	if (!tpath) {
		rc = -ENOMEM;
		goto out;
	}
	int fd = open(path, oflags, mode & 07777);
	if (fd < 0) {
		rc = -errno;
		free(tpath);
		goto out;
	}
	fh->kind = FH_TREEFILE;
	fh->fd = fd;
	fh->st = s;
	fh->tpath = tpath;
	fh->writable = wr;
	pthread_mutex_lock(&v->slock);
	s->open_files++;
	if (wr && (flags & O_TRUNC))
		bad_drop_locked(s, r->path);
	pthread_mutex_unlock(&v->slock);
out:
	tree_leave(v, s, wr);
	return rc;
}

int data_open(struct vfh *fh, struct vd_view *v, const struct vref *r, int flags)
{
	if (r->path[0] == '\0')
		return open_top_file(fh, v, r, flags, false);
	return open_in_tree(fh, v, r, flags, 0, false);
}

int data_create(struct vfh *fh, struct vd_view *v, const struct vref *c, int flags,
		mode_t mode)
{
	int rc = name_check(c->name);
	if (rc < 0)
		return rc;
	if (!S_ISREG(mode) && (mode & S_IFMT) != 0)
		return -EPERM;
	if (c->path[0] == '\0')
		return open_top_file(fh, v, c, flags, true);
	return open_in_tree(fh, v, c, flags | O_CREAT, mode, true);
}

int data_mkdir(struct vd_view *v, const struct vref *c, mode_t mode)
{
	int rc = name_check(c->name);
	struct stage *s = NULL;
	struct vd_version_info vi;
	char path[PATH_MAX];

	if (rc < 0)
		return rc;
	if (c->path[0] != '\0') {
		rc = tree_enter(&s, v, c->task, c->dname, true);
		if (rc < 0)
			return rc;
		rc = tree_path(path, sizeof(path), s, c->path);
		if (rc == 0 && mkdir(path, (mode & 07777) | 0700) < 0)
			rc = -errno;
		tree_leave(v, s, true);
		return rc;
	}
	if (!vd_engine_task_exists(v->e, c->task))
		return -ENOENT;
	rc = sealed_get(&vi, v, c->task, c->dname);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	rc = stage_new(&s, v, c->task, c->dname, true);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&v->slock);
	if (stage_find_locked(v, c->task, c->dname)) {
		rc = -EEXIST;
	} else {
		s->last_change = vd_mono_ms();
		stage_insert_locked(v, s);
	}
	pthread_mutex_unlock(&v->slock);
	if (rc < 0)
		stage_destroy(s);
	return rc;
}

int data_unlink(struct vd_view *v, const struct vref *c)
{
	int rc = 0;
	struct stage *s = NULL;
	char path[PATH_MAX];

	if (c->path[0] != '\0') {
		rc = tree_enter(&s, v, c->task, c->dname, true);
		if (rc < 0)
			return rc;
		rc = tree_path(path, sizeof(path), s, c->path);
		if (rc == 0 && unlink(path) < 0)
			rc = -errno;
		if (rc == 0)
			tree_bad_drop(v, s, c->path);
		tree_leave(v, s, true);
		return rc;
	}
	bool staged = false;
	pthread_mutex_lock(&v->slock);
	s = stage_find_locked(v, c->task, c->dname);
	if (s && s->is_tree) {
		rc = -EISDIR;
	} else if (s) {
		/* Open handles keep the staging file; it is no longer this
		 * name's and is never sealed. */
		s->unlinked = true;
		stage_remove_locked(v, s);
		staged = true;
	}
	pthread_mutex_unlock(&v->slock);
	if (rc < 0)
		return rc;
	rc = vd_engine_data_unlink(v->e, c->task, c->dname);
	if (rc == -ENOENT && staged)
		rc = 0;
	return rc < 0 ? rc : 0;
}

int data_rmdir(struct vd_view *v, const struct vref *c)
{
	int rc = 0;
	struct stage *s = NULL;
	struct vd_version_info vi;
	char path[PATH_MAX];

	rc = tree_enter(&s, v, c->task, c->dname, false);
	if (rc < 0)
		return rc;
	if (!s) {
		/* Only sealed: a sealed tree always holds files. */
		rc = sealed_get(&vi, v, c->task, c->dname);
		if (rc < 0)
			return rc;
		return vi.kind == VD_KIND_TREE ? -ENOTEMPTY : -ENOTDIR;
	}
	rc = tree_path(path, sizeof(path), s, c->path);
	if (rc == 0 && rmdir(path) < 0)
		rc = -errno;
	if (rc == 0 && c->path[0] == '\0') {
		/* The whole tree is gone (rm -r): forget the name too. */
		pthread_mutex_lock(&v->slock);
		stage_remove_locked(v, s);
		pthread_mutex_unlock(&v->slock);
		int urc = vd_engine_data_unlink(v->e, c->task, c->dname);
		if (urc < 0 && urc != -ENOENT)
			rc = urc;
	}
	tree_leave(v, s, true);
	return rc;
}

int data_rename(struct vd_view *v, const struct vref *from, const struct vref *to,
		unsigned flags)
{
	int rc = 0;
	struct stage *s = NULL;
	char pf[PATH_MAX], pt[PATH_MAX];

	/* Only within one tree: a rename of a data/ name would be a version
	 * under another name, which mv makes by copying on EXDEV. */
	if (from->path[0] == '\0' || to->path[0] == '\0' ||
	    strcmp(from->task, to->task) != 0 || strcmp(from->dname, to->dname) != 0)
		return -EXDEV;
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	rc = name_check(to->name);
	if (rc < 0)
		return rc;
	rc = tree_enter(&s, v, from->task, from->dname, true);
	if (rc < 0)
		return rc;
	rc = tree_path(pf, sizeof(pf), s, from->path);
	if (rc == 0)
		rc = tree_path(pt, sizeof(pt), s, to->path);
	if (rc == 0 && renameat2(AT_FDCWD, pf, AT_FDCWD, pt, flags) < 0)
		rc = -errno;
	if (rc == 0) {
		pthread_mutex_lock(&v->slock);
		bad_move_locked(s, from->path, to->path);
		pthread_mutex_unlock(&v->slock);
	}
	tree_leave(v, s, true);
	return rc;
}

static void set_times(struct timespec ts[2], const struct stat *attr, int to_set)
{
	ts[0] = (struct timespec){ .tv_nsec = UTIME_OMIT };
	ts[1] = ts[0];
	if (to_set & FUSE_SET_ATTR_ATIME)
		ts[0] = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW }
							    : attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME)
		ts[1] = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? (struct timespec){ .tv_nsec = UTIME_NOW }
							    : attr->st_mtim;
}

static int apply_attrs_fd(int fd, const struct stat *attr, int to_set)
{
	if ((to_set & FUSE_SET_ATTR_SIZE) && ftruncate(fd, attr->st_size) < 0)
		return -errno;
	if ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, attr->st_mode & 07777) < 0)
		return -errno;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2];
		set_times(ts, attr, to_set);
		if (futimens(fd, ts) < 0)
			return -errno;
	}
	return 0;
}

/* Paths inside a staging tree are ours: no symlinks can be made there. */
static int apply_attrs_path(const char *path, const struct stat *attr, int to_set)
{
	if ((to_set & FUSE_SET_ATTR_SIZE) && truncate(path, attr->st_size) < 0)
		return -errno;
	if ((to_set & FUSE_SET_ATTR_MODE) && chmod(path, attr->st_mode & 07777) < 0)
		return -errno;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2];
		set_times(ts, attr, to_set);
		if (utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return 0;
}

#define SET_CONTENT FUSE_SET_ATTR_SIZE
#define SET_META (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)

/* setattr on a staging file, whose content is in its fd. */
static int stage_apply_attrs(struct stage *s, const struct stat *attr, int to_set)
{
	int rc = apply_attrs_fd(s->fd, attr, to_set);
	if (rc == 0 && (to_set & SET_CONTENT)) {
		pthread_mutex_lock(&s->io_lock);
		stage_size_set(s, attr->st_size);
		pthread_mutex_unlock(&s->io_lock);
	}
	return rc;
}

/*
 * setattr in data/. Only size changes content. Mode and times apply to
 * staging files and trees; on what is only sealed they are accepted and
 * dropped (versions keep bytes, not metadata), so that cp -p and touch work
 * without turning a sealed tree into a staging one. Owners are ignored.
 */
int data_setattr(struct vd_view *v, const struct vref *r, struct vfh *fh,
		 const struct stat *attr, int to_set)
{
	int rc = 0;
	struct stage *s = NULL;
	char path[PATH_MAX];

	to_set &= SET_CONTENT | SET_META | FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;
	if (fh && fh->kind == FH_STAGE) {
		rc = (to_set & SET_CONTENT) ? data_ready_fd(v, fh) : 0;
		if (rc >= 0)
			rc = stage_apply_attrs(fh->st, attr, to_set);
		if (rc == 0 && (to_set & SET_CONTENT))
			mark_dirty(v, fh->st, true);
		return rc;
	}
	if (fh && fh->kind == FH_TREEFILE) {
		rc = apply_attrs_fd(fh->fd, attr, to_set);
		pthread_mutex_lock(&v->slock);
		fh->st->last_change = vd_mono_ms();
		if (rc == 0 && (to_set & SET_CONTENT) && attr->st_size == 0) {
			bad_drop_locked(fh->st, fh->tpath);
			fh->werr = 0;
		}
		pthread_mutex_unlock(&v->slock);
		return rc;
	}
	if (r->path[0] == '\0') {
		s = file_stage_get(v, r->task, r->dname);
		if (s) {
			struct vfh probe = { .kind = FH_STAGE, .st = s };
			rc = (to_set & SET_CONTENT) ? data_ready_fd(v, &probe) : 0;
			if (rc >= 0)
				rc = stage_apply_attrs(s, attr, to_set);
			if (rc == 0 && (to_set & SET_CONTENT)) {
				mark_dirty(v, s, true);
				/* With no writer open no flush will come. */
				pthread_mutex_lock(&v->slock);
				bool writers = s->writers > 0;
				pthread_mutex_unlock(&v->slock);
				if (!writers)
					rc = stage_seal(v, s, true);
			}
			file_stage_put(v, s, false);
			return rc;
		}
		if (S_ISREG(r->type)) {
			if (to_set & SET_CONTENT)
				rc = seal_truncated(v, r, attr->st_size);
			return rc;
		}
	}
	/* Inside a tree, or its top. */
	bool content = (to_set & SET_CONTENT) != 0;
	rc = tree_enter(&s, v, r->task, r->dname, content);
	if (rc < 0)
		return rc;
	if (!s)
		return 0;   /* sealed, metadata only: dropped */
	rc = tree_path(path, sizeof(path), s, r->path);
	if (rc == 0)
		rc = apply_attrs_path(path, attr, to_set);
	if (rc == 0 && (to_set & SET_CONTENT) && attr->st_size == 0)
		tree_bad_drop(v, s, r->path);
	tree_leave(v, s, true);
	return rc;
}

/* ---- handle I/O ----------------------------------------------------------- */

int data_read_fd(const struct vfh *fh)
{
	return fh->kind == FH_STAGE ? fh->st->fd : fh->fd;
}

int data_write(struct vd_view *v, struct vfh *fh, const char *p, size_t n, off_t off)
{
	ssize_t w = 0;
	if (fh->kind == FH_STAGE) {
		struct stage *s = fh->st;
		int rc = 0;
		pthread_mutex_lock(&s->io_lock);
		if (s->stream && (uint64_t)off == vd_engine_ingest_size(s->stream)) {
			rc = vd_engine_ingest_write(s->stream, p, n);
			w = (ssize_t)n;
		} else if ((rc = stage_plain(v, s)) == 0 &&
			   (rc = vd_engine_space_check(v->e, n)) == 0) {
			w = pwrite(s->fd, p, n, off);
			rc = w < 0 ? -errno : 0;
		}
		if (rc < 0)
			stage_write_failed(s, rc);
		pthread_mutex_unlock(&s->io_lock);
		if (rc < 0)
			return rc;
	} else {
		int rc = vd_engine_space_check(v->e, n);
		w = rc ? -1 : pwrite(fh->fd, p, n, off);
		if (w < 0) {
			rc = rc ? rc : -errno;
			if (!fh->werr)
				fh->werr = rc;
			tree_bad_add(v, fh->st, fh->tpath, rc);
			return rc;
		}
	}
	pthread_mutex_lock(&v->slock);
	if (fh->kind == FH_STAGE)
		fh->st->dirty = fh->st->written = true;
	else
		fh->st->last_change = vd_mono_ms();
	pthread_mutex_unlock(&v->slock);
	return (int)w;
}

int data_flush(struct vd_view *v, struct vfh *fh)
{
	if (fh->kind == FH_TREEFILE)
		return fh->werr;
	if (fh->kind != FH_STAGE || !fh->writable)
		return 0;
	return stage_seal(v, fh->st, false);
}

int data_fsync(struct vd_view *v, struct vfh *fh, int datasync)
{
	int rc = 0;
	if (fh->kind == FH_TREEFILE) {
		if (fh->werr)
			return fh->werr;
		if ((datasync ? fdatasync(fh->fd) : fsync(fh->fd)) == 0)
			return 0;
		/* Dirty pages that could not be written are dropped by the
		 * kernel: the file no longer holds what was written. */
		rc = -errno;
		fh->werr = rc;
		tree_bad_add(v, fh->st, fh->tpath, rc);
		return rc;
	}
	if (fh->kind != FH_STAGE)
		return 0;
	struct stage *s = fh->st;
	pthread_mutex_lock(&s->io_lock);
	rc = s->write_err ? s->write_err : s->stream_err;
	/* A streamed file's bytes reach the disk when it is sealed (at
	 * flush); fsync before that makes the staging copy durable only,
	 * which no crash would use, so there is nothing to do for a stream. */
	if (rc == 0 && !s->stream && !s->refill[0] &&
	    (datasync ? fdatasync(s->fd) : fsync(s->fd)) < 0) {
		rc = -errno;
		stage_write_failed(s, rc);
	}
	pthread_mutex_unlock(&s->io_lock);
	return rc;
}

void data_release(struct vd_view *v, struct vfh *fh)
{
	struct stage *s = fh->st;
	if (!s)
		return;
	if (fh->kind == FH_STAGE) {
		/* The last writer seals what its flushes left (see stage_seal);
		 * a failure can only be logged here. */
		if (fh->writable) {
			pthread_mutex_lock(&v->slock);
			bool last = s->writers == 1;
			pthread_mutex_unlock(&v->slock);
			if (last)
				(void)stage_seal(v, s, true);
		}
		file_stage_put(v, s, fh->writable);
	} else {
		if (fh->fd >= 0)
			close(fh->fd);
		fh->fd = -1;
		free(fh->tpath);
		fh->tpath = NULL;
		pthread_mutex_lock(&v->slock);
		s->open_files--;
		s->last_change = vd_mono_ms();
		bool destroy = stage_unused_locked(s);
		pthread_mutex_unlock(&v->slock);
		if (destroy)
			stage_destroy(s);
	}
	fh->st = NULL;
}
