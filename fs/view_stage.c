/*
 * view_stage.c - the staging entries behind tasks/NAME/data/ and their sealing.
 *
 * (The operations in data/ are in view_data.c; they use what is here.)
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
#include <pwd.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "util.h"

#define SETTLE_TICK_MS 200
#define SETTLE_BATCH 64
/* How long a tree whose seal failed for want of space waits to try again. */
#define SEAL_RETRY_MS 2000
#define STAGE_PREFIX "vdv-"

/* ---- stages ------------------------------------------------------------ */

struct stage *stage_find_locked(struct vd_view *v, const char *task, const char *name)
{
	for (struct stage *s = v->stages; s; s = s->next)
		if (strcmp(s->name, name) == 0 && strcmp(s->task, task) == 0)
			return s;
	return NULL;
}

void stage_insert_locked(struct vd_view *v, struct stage *s)
{
	s->next = v->stages;
	v->stages = s;
}

/* Take s out of the list; it is freed once nothing uses it. */
void stage_remove_locked(struct vd_view *v, struct stage *s)
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

bool stage_unused_locked(const struct stage *s)
{
	return s->dead && s->pins == 0 && s->busy == 0 && s->open_files == 0;
}

/* Deletes the staging file or directory; call without locks. */
void stage_destroy(struct stage *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->dfd >= 0)
		close(s->dfd);
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
	vd_strv_release(&s->old_names);
	free(s->path);
	free(s->dir);
	free(s);
}

/* A new stage, not yet in the list: a staging file (O_EXCL) or directory
 * with a name no other stage has. */
int stage_new(struct stage **out, struct vd_view *v, const char *task,
		     const char *name, bool tree)
{
	int rc = 0;
	char path[PATH_MAX];
	struct stage *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->dfd = -1;
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
		if (tree) {
			rc = mkdir(path, 0755) < 0 ? -errno : 0;
			if (rc == 0) {
				s->dfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (s->dfd < 0) {
					rc = -errno;
					rmdir(path);
				}
			}
		} else {
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
struct stage *file_stage_get(struct vd_view *v, const char *task, const char *name)
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

void file_stage_put(struct vd_view *v, struct stage *s, bool writer)
{
	bool destroy = false;
	pthread_mutex_lock(&v->slock);
	s->pins--;
	if (writer)
		s->writers--;
	if (s->pins == 0 && (!s->held || s->dead)) {
		stage_remove_locked(v, s);
		destroy = true;
	}
	pthread_mutex_unlock(&v->slock);
	if (destroy)
		stage_destroy(s);
}

/* ---- names ---------------------------------------------------------------- */

static bool all_of(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

#define ALNUM "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

bool data_name_temporary(const char *name)
{
	size_t n = strlen(name);
	/* rsync's .NAME.XXXXXX, vim's .NAME.swp, emacs' .#NAME, and every
	 * other dotfile: no data set is named like that. */
	if (name[0] == '.')
		return true;
	/* sed -i: sedXXXXXX. */
	if (n == 9 && strncmp(name, "sed", 3) == 0 && all_of(name + 3, 6, ALNUM))
		return true;
	/* Python's tempfile: tmpXXXXXXXX. */
	if (n == 11 && strncmp(name, "tmp", 3) == 0 && all_of(name + 3, 8, ALNUM "_"))
		return true;
	/* vim probes whether it may make a file with 4913, 5036, ... */
	if (n >= 4 && n <= 9 && all_of(name, n, "0123456789")) {
		long k = strtol(name, NULL, 10);
		if (k >= 4913 && (k - 4913) % 123 == 0)
			return true;
	}
	/* Backups, swap files, emacs' auto-save files, and *.tmp. */
	if (name[n - 1] == '~' || ends_with(name, ".swp") || ends_with(name, ".swx") ||
	    ends_with(name, ".tmp") || (n > 2 && name[0] == '#' && name[n - 1] == '#'))
		return true;
	return false;
}

int stage_rename_locked(struct stage *s, const char *to)
{
	char *nn = strdup(to);
	if (!nn || vd_strv_push(&s->old_names, s->name)) {
		free(nn);
		return -ENOMEM;
	}
	free(s->name);
	s->name = nn;
	return 0;
}

/* ---- failed writes --------------------------------------------------------- */

/* A write to a staging file failed (io_lock held): remember the first. */
void stage_write_failed(struct stage *s, int err)
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
void stage_size_set(struct stage *s, off_t size)
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
void bad_drop_locked(struct stage *s, const char *path)
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

/* from (in tree src) was renamed to to (in tree dst, which may be src;
 * slock held): what was listed under to is gone, what was under from is
 * now under to. */
void bad_move_locked(struct stage *src, const char *from, struct stage *dst, const char *to)
{
	char moved[PATH_MAX];
	size_t nf = strlen(from);
	bad_drop_locked(dst, to);
	for (struct bad_path **pp = &src->bad; *pp;) {
		struct bad_path *b = *pp;
		if (!path_within(b->path, from)) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		int n = snprintf(moved, sizeof(moved), "%s%s", to, b->path + nf);
		struct bad_path *nb = NULL;
		if (n >= 0 && (size_t)n < sizeof(moved))
			nb = malloc(sizeof(*nb) + (size_t)n + 1);
		if (nb) {
			nb->err = b->err;
			memcpy(nb->path, moved, (size_t)n + 1);
			/* At the head of dst: when dst is src, the scan goes
			 * on past it and never sees it again. */
			nb->next = dst->bad;
			dst->bad = nb;
			if (dst == src && pp == &src->bad)
				pp = &nb->next;
		} else {
			dst->bad_lost = true;
		}
		free(b);
	}
}

void tree_bad_add(struct vd_view *v, struct stage *s, const char *path, int err)
{
	pthread_mutex_lock(&v->slock);
	bad_add_locked(s, path, err);
	pthread_mutex_unlock(&v->slock);
}

void tree_bad_drop(struct vd_view *v, struct stage *s, const char *path)
{
	pthread_mutex_lock(&v->slock);
	bad_drop_locked(s, path);
	pthread_mutex_unlock(&v->slock);
}

/* ---- staging trees ----------------------------------------------------- */

int sealed_get(struct vd_version_info *vi, struct vd_view *v, const char *task,
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
	if (rc == 0)
		tree_give(v, s->dir, task);

	pthread_mutex_lock(&v->slock);
	s->excl = false;
	if (rc < 0) {
		stage_remove_locked(v, s);
	} else {
		s->busy++;
		s->last_change = vd_mono_ms();
		s->nfiles = vi.nfiles;
		s->nbytes = vi.size;
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
int tree_enter(struct stage **out, struct vd_view *v, const char *task,
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

void tree_leave(struct vd_view *v, struct stage *s, bool modified)
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

int tree_path(char *out, size_t outsz, const struct stage *s, const char *path)
{
	return path_join(out, outsz, s->dir, path);
}

/* openat2 confined to below dfd, through no symlink (nor /proc magic
 * link, nor another mount). */
static int open_beneath(int dfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
			   RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, dfd, path, &how, sizeof(how));
	/* ELOOP is what a symlink on the way gives: to the caller it is
	 * simply not a directory it can go through. */
	if (fd < 0)
		return errno == ELOOP ? -ENOTDIR : -errno;
	return (int)fd;
}

int tree_at_open(struct tree_at *at, const struct stage *s, const char *path)
{
	char parent[PATH_MAX];
	at->dfd = -1;
	if (path[0] == '\0') {
		at->name = strrchr(s->dir, '/') + 1;
		at->dfd = openat(s->dfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		return at->dfd < 0 ? -errno : 0;
	}
	const char *slash = strrchr(path, '/');
	at->name = slash ? slash + 1 : path;
	if (!slash) {
		at->dfd = fcntl(s->dfd, F_DUPFD_CLOEXEC, 0);
		return at->dfd < 0 ? -errno : 0;
	}
	size_t n = (size_t)(slash - path);
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, n);
	parent[n] = '\0';
	int fd = open_beneath(s->dfd, parent, O_PATH | O_DIRECTORY);
	if (fd < 0)
		return fd;
	at->dfd = fd;
	return 0;
}

void tree_at_close(struct tree_at *at)
{
	if (at->dfd >= 0)
		close(at->dfd);
	at->dfd = -1;
}

int tree_opendir(const struct stage *s, const char *path)
{
	return open_beneath(s->dfd, path[0] ? path : ".", O_RDONLY | O_DIRECTORY);
}

bool stage_tree_empty(const struct stage *s)
{
	int fd = openat(s->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	bool empty = d != NULL;
	if (!d && fd >= 0)
		close(fd);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = false;
			break;
		}
	}
	if (d)
		closedir(d);
	return empty;
}

void stage_own_at(const struct vd_view *v, int dfd, const char *name)
{
	if (v->allow_other &&
	    fchownat(dfd, name, view_caller.uid, view_caller.gid, AT_SYMLINK_NOFOLLOW) < 0)
		vd_warn("cannot give %s to uid %ld: %s", name, (long)view_caller.uid,
			strerror(errno));
}

void stage_own_fd(const struct vd_view *v, int fd)
{
	/* AT_EMPTY_PATH: fd may be an O_PATH one (a staging tree's). */
	if (v->allow_other &&
	    fchownat(fd, "", view_caller.uid, view_caller.gid, AT_EMPTY_PATH) < 0)
		vd_warn("cannot give a staging file to uid %ld: %s", (long)view_caller.uid,
			strerror(errno));
}

mode_t stage_mode(mode_t asked, bool dir)
{
	mode_t m = asked & 07777;
	if (geteuid() != 0)
		m |= dir ? 0700 : 0600;
	return m;
}

/* ---- sealing ------------------------------------------------------------ */

void view_uid_name(char *out, size_t size, uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name)
		snprintf(out, size, "%s", res->pw_name);
	else
		snprintf(out, size, "uid %ld", (long)uid);
}

/* Who submits what sits at fd (a staging file, or a staging tree's
 * directory): its owner, who is the user that wrote it under
 * --allow-other and the mounting user otherwise. */
static void owner_of(char *out, size_t size, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0)
		view_uid_name(out, size, st.st_uid);
	else
		out[0] = '\0';
}

static int seal_fd(struct vd_view *v, const char *task, const char *name, int fd)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_version_info vi;
	char by[VD_BY_SIZE];
	owner_of(by, sizeof(by), fd);
	int rc = vd_engine_submit_file(&vi, &why, v->e, task, name, by, fd);
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
int stage_plain(struct vd_view *v, struct stage *s)
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
int stage_seal(struct vd_view *v, struct stage *s, bool force)
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
	bool temp = data_name_temporary(s->name);
	if (temp)
		s->held = !s->unlinked;
	bool dirty = !temp && s->dirty && !s->unlinked && (force || s->written);
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

void mark_dirty(struct vd_view *v, struct stage *s, bool written)
{
	pthread_mutex_lock(&v->slock);
	s->dirty = true;
	if (written)
		s->written = true;
	pthread_mutex_unlock(&v->slock);
}

/* truncate(2) on a sealed file nobody has open: no close will follow, so
 * the truncated content is sealed at once. */
int seal_truncated(struct vd_view *v, const struct vref *r, off_t size)
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
	/* A file or a symlink (FIFOs and the like count too: the seal then
	 * says what it does with them). */
	return flag == FTW_SL || (flag == FTW_F && !S_ISDIR(st->st_mode)) ? 1 : 0;
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
		/* Only directories: a version of nothing but empty ones
		 * would most likely be the start of a copy (cp -r makes the
		 * directories first). Wait for a file or a symlink. */
		empty = true;
		goto done;
	}
	if (rc < 0)
		vd_warn("task %s: data/%s: walking %s: %s", s->task, s->name, s->dir,
			strerror(errno));
	char by[VD_BY_SIZE] = "";
	struct stat dst;
	if (stat(s->dir, &dst) == 0)
		view_uid_name(by, sizeof(by), dst.st_uid);
	rc = vd_engine_submit_tree(&vi, &why, v->e, s->task, s->name, by, s->dir);
	if (rc < 0) {
		if (why.len == 0)
			vd_warn("task %s: data/%s not sealed: %s", s->task, s->name, strerror(-rc));
		failed = true;
		/* Space comes back without any change to the tree. */
		if (rc == -ENOSPC || rc == -EDQUOT)
			retry_ms = vd_mono_ms() + SEAL_RETRY_MS;
	} else {
		vd_engine_settling_clear(v->e, s->task, s->name);
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

/* Tell the engine what each tree waiting to settle holds and when it will
 * seal, for `vdfs status`; only trees that changed since they were last
 * told (the settle time is a catalog read). */
static void settle_tell(struct vd_view *v)
{
	struct {
		char task[256], name[256];
		uint64_t files, bytes;
		int64_t change;
		bool open;
	} told[SETTLE_BATCH];
	size_t n = 0;
	pthread_mutex_lock(&v->slock);
	for (struct stage *s = v->stages; s && n < SETTLE_BATCH; s = s->next) {
		if (!s->is_tree || s->dead || s->excl || s->told_change == s->last_change)
			continue;
		s->told_change = s->last_change;
		snprintf(told[n].task, sizeof told[n].task, "%s", s->task);
		snprintf(told[n].name, sizeof told[n].name, "%s", s->name);
		told[n].files = s->nfiles;
		told[n].bytes = s->nbytes;
		told[n].change = s->last_change;
		told[n].open = s->open_files > 0;
		n++;
	}
	pthread_mutex_unlock(&v->slock);
	for (size_t i = 0; i < n; i++) {
		int settle = vd_engine_settle_ms(v->e, told[i].task);
		if (settle < 0)
			settle = 2000;
		vd_engine_settling_set(v->e, told[i].task, told[i].name, told[i].files,
				       told[i].bytes, told[i].open ? 0 : told[i].change + settle);
	}
}

static void settle_tick(struct vd_view *v)
{
	struct stage *cand[SETTLE_BATCH];
	size_t n = 0;
	int64_t now = vd_mono_ms();

	settle_tell(v);

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
