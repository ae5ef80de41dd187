/*
 * view_data.c - tasks/NAME/data/: the drop box's operations.
 *
 * What a name in data/ can be (a sealed file or tree, a staging file, a
 * staging tree) and how staging entries are kept and sealed is described
 * in view_stage.c. Here each FUSE operation on data/ decides which of them
 * it acts on: reads of what is only sealed go to the store, changes go to
 * a staging entry, made on demand.
 */
#include "view_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void stat_from_real(struct stat *st, struct vd_view *v, const struct stat *real)
{
	int64_t ms = (int64_t)real->st_mtim.tv_sec * 1000 + real->st_mtim.tv_nsec / 1000000;
	view_stat_base(st, v, real->st_mode, (uint64_t)real->st_size, ms);
	st->st_nlink = real->st_nlink;   /* hard links inside a tree are real */
	stat_real_owner(st, v, real);
	/* Whole nanoseconds, as cp -a and rsync -a set them. */
	st->st_atim = real->st_atim;
	st->st_mtim = real->st_mtim;
	st->st_ctim = real->st_ctim;
}

/* ---- names -------------------------------------------------------------- */

void data_name_refused(struct vd_view *v, const char *task, const char *name, int rc)
{
	/* The name as printable text: it may hold what a log line must not. */
	char shown[128];
	size_t o = 0, n = strlen(name);
	for (size_t i = 0; i < n && o + 8 < sizeof(shown); i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '\n')
			o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\n");
		else if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02x", ch);
		else
			shown[o++] = (char)ch;
	}
	shown[o] = '\0';
	const char *why = rc == -ENAMETOOLONG ? "longer than 255 bytes"
			  : "it has a newline or another control character";
	vd_warn("task %s: data/%s%s refused: %s", task, shown, o < n ? "..." : "", why);
	vd_engine_task_note(v->e, task, "data/%s%s refused: %s", shown, o < n ? "..." : "", why);
}

int data_name_check(struct vd_view *v, const char *task, const char *name)
{
	int rc = name_check(name);
	if (rc < 0)
		data_name_refused(v, task, name, rc);
	return rc;
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
	if (r->path[0] == '\0' && vi.kind == VD_KIND_FILE) {
		view_stat_base(st, v, S_IFREG | 0644, vi.size, vi.time_ms);
		goto out;
	}
	if (vi.kind != VD_KIND_TREE) {
		rc = -ENOENT;
		goto out;
	}
	/* A tree, its top included: what its manifest recorded. */
	rc = mc_get(&ent, v, vi.data_id);
	if (rc == 0)
		rc = man_stat(st, v, ent->m, r->path, vi.time_ms);
out:
	/* What is sealed is the task's: its owner's (view_owner.c). */
	if (rc == 0)
		task_owner_stat(st, v, r->task);
	if (ent)
		mc_put(v, ent);
	return rc;
}

int data_stat(struct stat *st, struct vd_view *v, struct vref *r)
{
	int rc = 0;
	struct stage *s = NULL;
	struct stat real;

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
	struct tree_at at;
	rc = tree_at_open(&at, s, r->path);
	if (rc == 0 && fstatat(at.dfd, at.name, &real, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (rc == 0)
		stat_from_real(st, v, &real);
	tree_at_close(&at);
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

/* List the directory open as fd (taken over). */
static int list_real(struct dlist *out, int fd)
{
	int rc = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		rc = fd >= 0 ? -errno : fd;
		if (fd >= 0)
			close(fd);
		return rc;
	}
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

	if (r->kind == NK_DATA) {
		if (!vd_engine_task_exists(v->e, r->task))
			return -ENOENT;
		return list_data_dir(out, v, r->task);
	}
	rc = tree_enter(&s, v, r->task, r->dname, false);
	if (rc < 0)
		return rc;
	if (s) {
		rc = list_real(out, tree_opendir(s, r->path));
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
			 int flags, mode_t mode, bool creating)
{
	int rc = 0;
	struct stage *s = NULL;
	struct vd_version_info vi;
	struct mc_ent *ent = NULL;
	bool exists;
	/* A create counts as a writer even when the descriptor is read-only
	 * (open(O_CREAT | O_RDONLY) makes the file): its close seals it. */
	bool wr = creating || wants_write(flags);
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
		/* A sealed file shows 0644 (sealed_stat); the copy it is
		 * written through keeps that, or its mode would change under
		 * a reader from open to the seal after release (which the
		 * kernel sends after close(2) has returned). */
		if (fchmod(s->fd, stage_mode(exists ? 0644 : mode, false)) < 0) {
			rc = -errno;
			stage_destroy(s);
			return rc;
		}
		/* Its writer's, as a new one is: the owner a seal names as
		 * the submitter (view_stage.c, seal_fd). Only the task's
		 * owner and root write here (view_owner.c), so what showed
		 * as the owner's stays so unless root rewrites it. */
		stage_own_fd(v, s->fd);
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
		if (s->stream) {
			/* The file's writer is who submits it (the staging
			 * file's owner, for the other paths: view_stage.c). */
			char by[VD_BY_SIZE];
			view_uid_name(by, sizeof(by), view_caller.uid);
			vd_engine_ingest_by(s->stream, by);
		}
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
	struct tree_at at = { .dfd = -1 };
	char *tpath = NULL;
	bool wr = creating || wants_write(flags);

	rc = tree_enter(&s, v, r->task, r->dname, wr);
	if (rc < 0)
		return rc;
	if (!s)
		return open_sealed_file(fh, v, r);
	rc = tree_at_open(&at, s, r->path);
	if (rc < 0)
		goto out;
	/* The kernel computes every write's offset (O_APPEND included), and
	 * pwrite on an O_APPEND descriptor would ignore it. */
	int oflags = (flags & ~(O_APPEND | O_NOCTTY)) | O_CLOEXEC | O_NOFOLLOW;
	if (!creating)
		oflags &= ~(O_CREAT | O_EXCL);
	if (!(tpath = strdup(r->path))) {
		rc = -ENOMEM;
		goto out;
	}
	struct stat before;
	bool is_new = creating && fstatat(at.dfd, at.name, &before, AT_SYMLINK_NOFOLLOW) < 0;
	int fd = openat(at.dfd, at.name, oflags, stage_mode(mode, false));
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	/* O_CREAT applies the mode through the umask; the caller's umask
	 * was applied by the kernel already, so set exactly what it asked. */
	if (creating && (flags & O_CREAT) && fchmod(fd, stage_mode(mode, false)) < 0) {
		rc = -errno;
		close(fd);
		goto out;
	}
	if (is_new)
		stage_own_fd(v, fd);
	fh->kind = FH_TREEFILE;
	fh->fd = fd;
	fh->st = s;
	fh->tpath = tpath;
	tpath = NULL;
	fh->writable = wr;
	pthread_mutex_lock(&v->slock);
	s->open_files++;
	if (wr && (flags & O_TRUNC))
		bad_drop_locked(s, r->path);
	if (is_new)
		s->nfiles++;
	pthread_mutex_unlock(&v->slock);
out:
	free(tpath);
	tree_at_close(&at);
	tree_leave(v, s, wr);
	return rc;
}

int data_open(struct vfh *fh, struct vd_view *v, const struct vref *r, int flags)
{
	if (r->path[0] == '\0')
		return open_top_file(fh, v, r, flags, 0644, false);
	return open_in_tree(fh, v, r, flags, 0, false);
}

int data_create(struct vfh *fh, struct vd_view *v, const struct vref *c, int flags,
		mode_t mode)
{
	int rc = data_name_check(v, c->task, c->name);
	if (rc < 0)
		return rc;
	if (!S_ISREG(mode) && (mode & S_IFMT) != 0)
		return -EPERM;
	if (c->path[0] == '\0')
		return open_top_file(fh, v, c, flags, mode, true);
	return open_in_tree(fh, v, c, flags | O_CREAT, mode, true);
}

int data_mkdir(struct vd_view *v, const struct vref *c, mode_t mode)
{
	int rc = data_name_check(v, c->task, c->name);
	struct stage *s = NULL;
	struct vd_version_info vi;

	if (rc < 0)
		return rc;
	if (c->path[0] != '\0') {
		struct tree_at at = { .dfd = -1 };
		rc = tree_enter(&s, v, c->task, c->dname, true);
		if (rc < 0)
			return rc;
		rc = tree_at_open(&at, s, c->path);
		/* mkdirat applies the daemon's umask; the caller's was
		 * applied already, so set the mode it asked for. */
		if (rc == 0 && mkdirat(at.dfd, at.name, 0700) < 0)
			rc = -errno;
		if (rc == 0 && fchmodat(at.dfd, at.name, stage_mode(mode, true), 0) < 0)
			rc = -errno;
		if (rc == 0)
			stage_own_at(v, at.dfd, at.name);
		tree_at_close(&at);
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
	if (chmod(s->dir, stage_mode(mode, true)) < 0) {
		rc = -errno;
		stage_destroy(s);
		return rc;
	}
	stage_own_fd(v, s->dfd);
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

	if (c->path[0] != '\0') {
		struct tree_at at = { .dfd = -1 };
		rc = tree_enter(&s, v, c->task, c->dname, true);
		if (rc < 0)
			return rc;
		rc = tree_at_open(&at, s, c->path);
		if (rc == 0 && unlinkat(at.dfd, at.name, 0) < 0)
			rc = -errno;
		if (rc == 0) {
			tree_bad_drop(v, s, c->path);
			pthread_mutex_lock(&v->slock);
			if (s->nfiles)
				s->nfiles--;
			pthread_mutex_unlock(&v->slock);
		}
		tree_at_close(&at);
		tree_leave(v, s, true);
		return rc;
	}
	bool staged = false, destroy = false;
	pthread_mutex_lock(&v->slock);
	s = stage_find_locked(v, c->task, c->dname);
	if (s && s->is_tree) {
		rc = -EISDIR;
	} else if (s) {
		/* Open handles keep the staging file; it is no longer this
		 * name's and is never sealed. A held temporary has none:
		 * nothing else will free it. */
		s->unlinked = true;
		stage_remove_locked(v, s);
		staged = true;
		destroy = s->pins == 0;
	}
	pthread_mutex_unlock(&v->slock);
	if (destroy)
		stage_destroy(s);
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
	struct tree_at at = { .dfd = -1 };

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
	rc = tree_at_open(&at, s, c->path);
	if (rc == 0 && unlinkat(at.dfd, at.name, AT_REMOVEDIR) < 0)
		rc = -errno;
	tree_at_close(&at);
	if (rc == 0 && c->path[0] == '\0') {
		/* The whole tree is gone (rm -r): forget the name too. */
		pthread_mutex_lock(&v->slock);
		stage_remove_locked(v, s);
		pthread_mutex_unlock(&v->slock);
		vd_engine_settling_clear(v->e, c->task, c->dname);
		int urc = vd_engine_data_unlink(v->e, c->task, c->dname);
		if (urc < 0 && urc != -ENOENT)
			rc = urc;
	}
	tree_leave(v, s, true);
	return rc;
}

/* A rename between places inside trees of one task: the same tree, or two
 * (both staging directories are on the state disk, so renameat2 moves). */
static int rename_in_trees(struct vd_view *v, const struct vref *from, const struct vref *to,
			   unsigned flags)
{
	struct stage *s1 = NULL, *s2 = NULL;
	struct tree_at a = { .dfd = -1 }, b = { .dfd = -1 };
	int rc = tree_enter(&s1, v, from->task, from->dname, true);
	if (rc < 0)
		return rc;
	if (strcmp(from->dname, to->dname) == 0)
		s2 = s1;
	else if ((rc = tree_enter(&s2, v, to->task, to->dname, true)) < 0)
		goto out;
	if ((rc = tree_at_open(&a, s1, from->path)) || (rc = tree_at_open(&b, s2, to->path)))
		goto out;
	if (renameat2(a.dfd, a.name, b.dfd, b.name, flags) < 0) {
		rc = -errno;
		goto out;
	}
	pthread_mutex_lock(&v->slock);
	bad_move_locked(s1, from->path, s2, to->path);
	pthread_mutex_unlock(&v->slock);
out:
	tree_at_close(&a);
	tree_at_close(&b);
	if (s2 && s2 != s1)
		tree_leave(v, s2, true);
	tree_leave(v, s1, true);
	return rc;
}

/* What a name at the top of data/ is now. */
struct top {
	struct stage *s;             /* its staging entry, pinned; or NULL */
	bool sealed;                 /* the engine has a version under it */
	bool tree;
	bool exists;
};

static int top_get(struct top *t, struct vd_view *v, const char *task, const char *name)
{
	struct vd_version_info vi;
	memset(t, 0, sizeof(*t));
	int rc = sealed_get(&vi, v, task, name);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	t->sealed = rc == 0;
	t->tree = t->sealed && vi.kind == VD_KIND_TREE;
	t->s = file_stage_get(v, task, name);
	if (!t->s) {
		/* tree_enter waits while the tree is being sealed. */
		rc = tree_enter(&t->s, v, task, name, false);
		if (rc < 0 && rc != -ENOTDIR)
			return rc;
	}
	if (t->s)
		t->tree = t->s->is_tree;
	t->exists = t->sealed || t->s;
	return 0;
}

static void top_put(struct vd_view *v, struct top *t)
{
	if (!t->s)
		return;
	if (t->tree)
		tree_leave(v, t->s, true);
	else
		file_stage_put(v, t->s, false);
	t->s = NULL;
}

/* The name to of a rename is replaced: its staging entry (if any) is no
 * longer anybody's name. An empty staging tree may be replaced by a tree;
 * anything else that is a tree may not (ENOTEMPTY: sealed trees always
 * hold files). */
static int top_replace(struct vd_view *v, struct top *to, bool from_tree)
{
	if (!to->exists)
		return 0;
	if (from_tree != to->tree)
		return from_tree ? -ENOTDIR : -EISDIR;
	if (to->tree && (to->sealed || !stage_tree_empty(to->s)))
		return -ENOTEMPTY;
	if (to->s) {
		pthread_mutex_lock(&v->slock);
		to->s->unlinked = true;
		stage_remove_locked(v, to->s);
		pthread_mutex_unlock(&v->slock);
	}
	return 0;
}

/*
 * A rename of a name at the top of data/ to another one: how editors and
 * sync tools save (sed -i, rsync, vim, os.replace write a temporary and
 * rename it over the name). The content ends up as a version under the
 * final name: a temporary, never sealed, is sealed under it now; content
 * that was sealed is renamed in the engine, which counts it as submitted
 * again under the new name (docs/mount.md, "Editors and sync tools").
 */
static int rename_top(struct vd_view *v, const struct vref *from, const struct vref *to,
		      unsigned flags)
{
	struct top f, t;
	bool temp_to = data_name_temporary(to->dname);
	int rc;

	if (strcmp(from->dname, to->dname) == 0)
		return 0;
	if ((rc = top_get(&f, v, from->task, from->dname)) < 0)
		return rc;
	if ((rc = top_get(&t, v, to->task, to->dname)) < 0)
		goto out;
	if (!f.exists) {
		rc = -ENOENT;
		goto out;
	}
	if (t.exists && (flags & RENAME_NOREPLACE)) {
		rc = -EEXIST;
		goto out;
	}
	if ((rc = top_replace(v, &t, f.tree)) < 0)
		goto out;
	if (!f.s) {
		rc = vd_engine_data_rename(v->e, from->task, from->dname, to->dname, !temp_to);
		goto out;
	}
	/* A staging entry takes the new name; what it holds that was not
	 * sealed yet is sealed under it (unless it is a temporary too). */
	struct stage *s = f.s;
	if (!s->is_tree)
		pthread_mutex_lock(&s->seal_lock);
	pthread_mutex_lock(&v->slock);
	rc = stage_rename_locked(s, to->dname);
	s->told_change = 0;   /* a tree is told again, under its new name */
	bool unsealed = s->dirty || s->held;
	if (!temp_to)
		s->held = false;
	pthread_mutex_unlock(&v->slock);
	if (!s->is_tree)
		pthread_mutex_unlock(&s->seal_lock);
	if (rc < 0)
		goto out;
	if (s->is_tree) {
		vd_engine_settling_clear(v->e, from->task, from->dname);
		/* Sealed under its new name once it settles. */
		rc = f.sealed ? vd_engine_data_unlink(v->e, from->task, from->dname) : 0;
	} else if (!unsealed) {
		rc = f.sealed ? vd_engine_data_rename(v->e, from->task, from->dname, to->dname,
						      !temp_to)
			      : 0;
	} else {
		if (!temp_to) {
			pthread_mutex_lock(&v->slock);
			s->dirty = s->written = true;
			pthread_mutex_unlock(&v->slock);
			rc = stage_seal(v, s, true);
		}
		if (rc == 0 && f.sealed)
			rc = vd_engine_data_unlink(v->e, from->task, from->dname);
	}
	if (rc == -ENOENT)
		rc = 0;   /* the old name had no sealed content */
out:
	top_put(v, &f);
	top_put(v, &t);
	return rc;
}

int data_rename(struct vd_view *v, const struct vref *from, const struct vref *to,
		unsigned flags)
{
	int rc;
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;   /* RENAME_EXCHANGE, RENAME_WHITEOUT: docs/mount.md */
	if (strcmp(from->task, to->task) != 0)
		return -EXDEV;    /* each task is a namespace of its own */
	if ((rc = data_name_check(v, to->task, to->name)) < 0)
		return rc;
	bool top_from = from->path[0] == '\0', top_to = to->path[0] == '\0';
	if (!top_from && !top_to)
		return rename_in_trees(v, from, to, flags);
	if (top_from && top_to)
		return rename_top(v, from, to, flags);
	/* Between the top and the inside of a tree: mv copies and removes. */
	return -EXDEV;
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

/* The owner part of a setattr: -1 leaves one unchanged. */
static uid_t set_uid(const struct stat *attr, int to_set)
{
	return (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
}

static gid_t set_gid(const struct stat *attr, int to_set)
{
	return (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
}

static int apply_attrs_fd(int fd, const struct stat *attr, int to_set)
{
	if ((to_set & FUSE_SET_ATTR_SIZE) && ftruncate(fd, attr->st_size) < 0)
		return -errno;
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchown(fd, set_uid(attr, to_set), set_gid(attr, to_set)) < 0)
		return -errno;
	if ((to_set & FUSE_SET_ATTR_MODE) && fchmod(fd, stage_mode(attr->st_mode, false)) < 0)
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
/* setattr on a place inside a staging tree, never through a symlink. */
static int apply_attrs_at(const struct tree_at *at, const struct stat *attr, int to_set)
{
	if (to_set & FUSE_SET_ATTR_SIZE) {
		int fd = openat(at->dfd, at->name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		int r = ftruncate(fd, attr->st_size);
		int err = errno;
		close(fd);
		if (r < 0)
			return -err;
	}
	if ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
	    fchownat(at->dfd, at->name, set_uid(attr, to_set), set_gid(attr, to_set),
		     AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (to_set & FUSE_SET_ATTR_MODE) {
		struct stat st;
		if (fstatat(at->dfd, at->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		/* A symlink has no mode of its own on Linux. */
		if (!S_ISLNK(st.st_mode) &&
		    fchmodat(at->dfd, at->name, stage_mode(attr->st_mode, S_ISDIR(st.st_mode)),
			     AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec ts[2];
		set_times(ts, attr, to_set);
		if (utimensat(at->dfd, at->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return 0;
}

#define SET_CONTENT FUSE_SET_ATTR_SIZE
/* Owners come only with --allow-other (view.c's do_setattr drops them
 * otherwise). */
#define SET_META (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | \
		  FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)

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
	struct tree_at at;
	rc = tree_at_open(&at, s, r->path);
	if (rc == 0)
		rc = apply_attrs_at(&at, attr, to_set);
	if (rc == 0 && (to_set & SET_CONTENT) && attr->st_size == 0)
		tree_bad_drop(v, s, r->path);
	tree_at_close(&at);
	tree_leave(v, s, true);
	return rc;
}

/* ---- links and special files ----------------------------------------------- */

/*
 * Inside a tree a symlink is data: the version keeps its target, and the
 * daemon never follows it (every path inside a staging tree is resolved
 * with tree_at_open). At the top of data/ a name is a file or a tree to
 * submit; a link there is neither, and is refused with the reason logged.
 */
int data_symlink(struct vd_view *v, const struct vref *c, const char *target)
{
	struct stage *s = NULL;
	struct tree_at at = { .dfd = -1 };
	int rc = data_name_check(v, c->task, c->name);
	if (rc < 0)
		return rc;
	if (c->path[0] == '\0') {
		vd_warn("task %s: data/%s: a symlink at the top of data/ is not a file or "
			"a tree to submit (make it inside a directory)", c->task, c->name);
		return -EPERM;
	}
	if ((rc = tree_enter(&s, v, c->task, c->dname, true)) < 0)
		return rc;
	rc = tree_at_open(&at, s, c->path);
	if (rc == 0 && symlinkat(target, at.dfd, at.name) < 0)
		rc = -errno;
	if (rc == 0)
		stage_own_at(v, at.dfd, at.name);
	tree_at_close(&at);
	tree_leave(v, s, true);
	return rc;
}

int data_readlink(struct vd_buf *out, struct vd_view *v, const struct vref *r)
{
	struct stage *s = NULL;
	struct tree_at at = { .dfd = -1 };
	char target[PATH_MAX + 1];
	int rc;
	if (r->path[0] == '\0')
		return -EINVAL;
	if ((rc = tree_enter(&s, v, r->task, r->dname, false)) < 0)
		return rc;
	if (!s) {
		/* Only sealed: the manifest has the target. */
		struct vd_version_info vi;
		rc = sealed_get(&vi, v, r->task, r->dname);
		if (rc == 0)
			rc = version_readlink(out, v, vi.data_id, r->path);
		return rc;
	}
	rc = tree_at_open(&at, s, r->path);
	ssize_t n = rc == 0 ? readlinkat(at.dfd, at.name, target, sizeof(target) - 1) : -1;
	if (rc == 0 && n < 0)
		rc = -errno;
	if (rc == 0 && (size_t)n >= sizeof(target) - 1)
		rc = -ENAMETOOLONG;
	if (rc == 0)
		rc = vd_buf_add(out, target, (size_t)n);
	tree_at_close(&at);
	tree_leave(v, s, false);
	return rc;
}

/*
 * ln at the top of data/: the new name gets the old one's content, as a
 * submission under it (its version is the same, so nothing is stored or
 * run again). The names are not tied afterwards: a write to one makes a
 * new version of that one only (docs/mount.md).
 */
static int link_top(struct vd_view *v, const struct vref *from, const struct vref *to)
{
	struct top f, t;
	int rc = top_get(&f, v, from->task, from->dname);
	if (rc < 0)
		return rc;
	if ((rc = top_get(&t, v, to->task, to->dname)) < 0)
		goto out;
	if (t.exists)
		rc = -EEXIST;
	else if (!f.exists)
		rc = -ENOENT;
	else if (f.tree)
		rc = -EPERM;
	else if (f.s && (rc = stage_seal(v, f.s, true)) == 0 &&
		 data_name_temporary(from->dname))
		rc = -EPERM;   /* a temporary has no version to name */
	if (rc == 0)
		rc = vd_engine_data_link(v->e, from->task, from->dname, to->dname);
out:
	top_put(v, &f);
	top_put(v, &t);
	return rc;
}

/* A hard link between two names in one tree: the version stores the
 * content once under both names. */
int data_link(struct vd_view *v, const struct vref *from, const struct vref *to)
{
	struct stage *s = NULL;
	struct tree_at a = { .dfd = -1 }, b = { .dfd = -1 };
	int rc = data_name_check(v, to->task, to->name);
	if (rc < 0)
		return rc;
	if (strcmp(from->task, to->task))
		return -EXDEV;
	if (from->path[0] == '\0' && to->path[0] == '\0')
		return link_top(v, from, to);
	if (from->path[0] == '\0' || to->path[0] == '\0' || strcmp(from->dname, to->dname))
		return -EXDEV;   /* between trees: docs/mount.md */
	if ((rc = tree_enter(&s, v, from->task, from->dname, true)) < 0)
		return rc;
	if ((rc = tree_at_open(&a, s, from->path)) == 0 &&
	    (rc = tree_at_open(&b, s, to->path)) == 0 &&
	    linkat(a.dfd, a.name, b.dfd, b.name, 0) < 0)
		rc = -errno;
	tree_at_close(&a);
	tree_at_close(&b);
	tree_leave(v, s, true);
	return rc;
}

/*
 * FIFOs and sockets are made in a staging tree like any file, and its seal
 * then refuses them or skips them, as the task's config says. A device
 * node is never made (the daemon is often root): it is refused here, and
 * the tree waits, unsealed, until it is removed, with the reason logged.
 */
int data_mknod(struct vd_view *v, const struct vref *c, mode_t mode, dev_t rdev)
{
	struct stage *s = NULL;
	struct tree_at at = { .dfd = -1 };
	int rc = data_name_check(v, c->task, c->name);
	if (rc < 0)
		return rc;
	if (S_ISREG(mode) || (mode & S_IFMT) == 0)
		return -EPERM;   /* the kernel creates regular files with create */
	if (c->path[0] == '\0') {
		vd_warn("task %s: data/%s: a special file at the top of data/ is not a "
			"file or a tree to submit", c->task, c->name);
		return -EPERM;
	}
	if ((rc = tree_enter(&s, v, c->task, c->dname, true)) < 0)
		return rc;
	if (S_ISFIFO(mode) || S_ISSOCK(mode)) {
		rc = tree_at_open(&at, s, c->path);
		if (rc == 0 && mknodat(at.dfd, at.name, (mode & S_IFMT) | stage_mode(mode, false),
				       0) < 0)
			rc = -errno;
		if (rc == 0)
			stage_own_at(v, at.dfd, at.name);
	} else {
		(void)rdev;
		vd_warn("task %s: data/%s/%s: a device node cannot be part of a version; "
			"data/%s is not sealed until it is removed (rm -r) and copied again "
			"without it", c->task, c->dname, c->path, c->dname);
		tree_bad_add(v, s, c->path, -EPERM);
		rc = -EPERM;
	}
	tree_at_close(&at);
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
	if (fh->kind == FH_STAGE) {
		fh->st->dirty = fh->st->written = true;
	} else {
		fh->st->last_change = vd_mono_ms();
		fh->st->nbytes += (uint64_t)w;
	}
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
