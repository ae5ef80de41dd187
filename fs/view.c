/*
 * view.c - the FUSE view: mounting, the session loop, and every operation.
 *
 * Why the low-level API: the high-level one names every file by path and
 * looks the path up again on each operation, picks inode numbers itself,
 * and applies one entry/attribute timeout to the whole mount. Here the
 * inode numbers are ours (view_node.c), so readdir and lookup agree and an
 * inode is never reused for other content; each reply carries the timeouts
 * of what it describes, so immutable versions are cached for an hour while
 * data/ and the generated files are asked for every time; each open decides
 * keep_cache (immutable content) or direct_io (generated text); and an
 * operation starts from its node, not from a path walk.
 *
 * Each operation finds its node, turns it into a vref (view_tree.c), and
 * dispatches on the node's kind. Errors are -errno up to the reply, where
 * reply_err makes them positive.
 */
#include "view_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"

_Thread_local struct view_caller view_caller;

/* The view of a request, noting who asks: the ops that make entries in
 * data/ give them to their caller (--allow-other). */
static struct vd_view *req_view(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (ctx) {
		view_caller.uid = ctx->uid;
		view_caller.gid = ctx->gid;
	}
	return fuse_req_userdata(req);
}

static void reply_err(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc < 0 ? -rc : rc);
}

static struct vfh *fh_of(const struct fuse_file_info *fi)
{
	return (struct vfh *)(uintptr_t)fi->fh;
}

static bool wants_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* Read-only places answer writes with EROFS under versions/ and EACCES for
 * the generated files elsewhere. */
static int readonly_err(const struct vref *r)
{
	switch (r->kind) {
	case NK_README:
	case NK_EXECUTORS:
	case NK_EXECUTOR:
		return -EACCES;
	default:
		return -EROFS;
	}
}

/* ---- lookup and attributes ----------------------------------------------- */

/* Resolve name in parent, make or find its node and count a lookup. */
static bool in_data(const struct vref *parent);

static int do_lookup(struct fuse_entry_param *e, struct vd_view *v, struct vnode *parent,
		     const char *name)
{
	int rc;
	struct vref *pr = malloc(sizeof(*pr));
	struct vref *c = malloc(sizeof(*c));
	struct vnode *n;
	struct stat st;

	if (!pr || !c) {
		rc = -ENOMEM;
		goto out;
	}
	rc = vref_of_node(pr, v, parent);
	if (rc == 0)
		rc = vref_child(c, v, pr, name);
	/* A name too long for data/ is refused at its lookup, before any
	 * create: say so there. */
	if (rc == -ENAMETOOLONG && in_data(pr))
		data_name_refused(v, pr->task, name, rc);
	if (rc == 0)
		rc = vref_stat(&st, v, c);
	if (rc == 0)
		rc = node_enter(&n, v, parent, name, c);
	if (rc < 0)
		goto out;
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = n->gen;
	e->attr = st;
	e->attr.st_ino = n->ino;
	vref_ttl(c, &e->entry_timeout, &e->attr_timeout);
out:
	free(pr);
	free(c);
	return rc;
}

/* A node and its vref, for operations on an inode the kernel holds. */
struct target {
	struct vnode *n;
	struct vref r;
};

static int target_get(struct target *t, struct vd_view *v, fuse_ino_t ino)
{
	t->n = node_get(v, ino);
	if (!t->n)
		return -ESTALE;
	return vref_of_node(&t->r, v, t->n);
}

static int attr_of_staging(struct stat *st, struct vd_view *v, const struct vfh *fh)
{
	struct stat real;
	uint64_t vsize;
	if (fstat(data_read_fd(fh), &real) < 0)
		return -errno;
	if (data_virtual_size(fh, &vsize))
		real.st_size = (off_t)vsize;
	int64_t ms = (int64_t)real.st_mtim.tv_sec * 1000 + real.st_mtim.tv_nsec / 1000000;
	view_stat_base(st, v, S_IFREG | (fh->kind == FH_STAGE ? 0644 : (real.st_mode & 07777)),
		       (uint64_t)real.st_size, ms);
	stat_real_owner(st, v, &real);   /* as data_stat shows it by name */
	return 0;
}

/*
 * A data/ file removed while open no longer has a name to be found by, and
 * fstat(2) reaches us without the handle: find an open handle on the node.
 * Under nlock, which keeps a linked handle (and its descriptor) alive.
 */
static int attr_from_handle(struct stat *st, struct vd_view *v, struct vnode *n)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&v->nlock);
	bool gone = !n->hashed;
	for (struct vfh *fh = gone ? v->fhs : NULL; fh; fh = fh->next) {
		if (fh->node == n && (fh->kind == FH_STAGE || fh->kind == FH_TREEFILE)) {
			rc = attr_of_staging(st, v, fh);
			break;
		}
	}
	pthread_mutex_unlock(&v->nlock);
	return rc;
}

/* The node's attributes now; -ESTALE when its name means something else. */
static int node_attr(struct stat *st, double *ttl, struct vd_view *v, struct target *t,
		     struct vfh *fh)
{
	int rc;
	double entry_ttl;

	if (t->n->kind == NK_DATAENT && t->n->type == S_IFREG) {
		if (fh && (fh->kind == FH_STAGE || fh->kind == FH_TREEFILE))
			rc = attr_of_staging(st, v, fh);
		else if (!fh)
			rc = attr_from_handle(st, v, t->n);
		else
			rc = -ENOENT;
		if (rc == 0) {
			*ttl = VIEW_TTL_NONE;
			st->st_ino = t->n->ino;
			return 0;
		}
	}
	if (fh && fh->kind == FH_CHUNK && t->r.kind == NK_RESULT) {
		/* An open result.csv stays what it was, even once replaced. */
		view_stat_base(st, v, S_IFREG | 0444, fh->file->size, v->start_ms);
		task_owner_stat(st, v, t->r.task);
		st->st_ino = t->n->ino;
		*ttl = VIEW_TTL_NONE;
		return 0;
	}
	mode_t type = t->r.type;
	uint64_t ckey = t->r.ckey;
	rc = vref_stat(st, v, &t->r);
	if (rc < 0)
		return rc;
	if (t->r.type != type || t->r.ckey != ckey)
		return -ESTALE;
	if (fh && fh->kind == FH_BUF) {
		/* While a handle rewrites function or config, its size is the
		 * handle's (the kernel computes appends from it). */
		pthread_mutex_lock(&fh->lock);
		st->st_size = (off_t)fh->buf.len;
		pthread_mutex_unlock(&fh->lock);
	}
	st->st_ino = t->n->ino;
	vref_ttl(&t->r, &entry_ttl, ttl);
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vd_view *v = req_view(req);
	struct fuse_entry_param e;
	struct vnode *p = node_get(v, parent);
	int rc = p ? do_lookup(&e, v, p, name) : -ESTALE;
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(req_view(req), ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct vd_view *v = req_view(req);
	for (size_t i = 0; i < count; i++)
		node_forget(v, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct stat st;
	double ttl = 0;
	int rc = target_get(&t, v, ino);
	if (rc == 0)
		rc = node_attr(&st, &ttl, v, &t, fi ? fh_of(fi) : NULL);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, ttl);
}

/* ---- function and config ------------------------------------------------- */

static size_t buf_cap(enum nkind kind)
{
	return kind == NK_FUNCTION ? VIEW_FUNCTION_MAX : VIEW_CONFIG_MAX;
}

/* Set b's length to len, zero-filling what grows. */
static int buf_resize(struct vd_buf *b, size_t len)
{
	static const char zeros[4096];
	if (len <= b->len) {
		b->len = len;
		if (b->data)
			b->data[len] = '\0';
		return 0;
	}
	int rc = vd_buf_grow(b, len - b->len);
	while (rc >= 0 && b->len < len) {
		size_t n = len - b->len < sizeof(zeros) ? len - b->len : sizeof(zeros);
		rc = vd_buf_add(b, zeros, n);
	}
	return rc < 0 ? rc : 0;
}

static int content_read(struct vd_buf *out, struct vd_view *v, const struct vref *r)
{
	int rc = r->kind == NK_FUNCTION ? vd_engine_function_read(out, v->e, r->task)
					: vd_engine_config_read(out, v->e, r->task);
	return rc < 0 ? rc : 0;
}

static int content_write(struct vd_view *v, const struct vref *r, const struct vd_buf *b)
{
	int rc;
	const char *p = b->data ? b->data : "";
	if (r->kind == NK_FUNCTION) {
		char code_id[VD_ID_SIZE];
		rc = vd_engine_function_write(code_id, v->e, r->task, p, b->len);
		if (rc == 1)
			vd_debug("task %s: new code version %s", r->task, code_id);
	} else {
		struct vd_buf why = VD_BUF_INIT(4096);
		rc = vd_engine_config_write(&why, v->e, r->task, p, b->len);
		/* The engine logs the reason it puts in why. */
		if (rc < 0 && why.len == 0)
			vd_warn("task %s: config not stored: %s", r->task, strerror(-rc));
		vd_buf_release(&why);
	}
	return rc < 0 ? rc : 0;
}

/*
 * Check the complete lines of a config being written (fh->lock held). A
 * bad line fails its write(2) with EINVAL, so that `echo 'reduce = bogus'
 * > config` makes the shell print an error (it ignores close errors); the
 * last line, if it has no newline yet, is checked at close with the rest.
 * The reason goes to vdfsd's log and to the task's latest version's log.
 */
static int config_check_write(struct vd_view *v, struct vfh *fh)
{
	const char *text = fh->buf.data ? fh->buf.data : "";
	const char *nl = fh->buf.len ? memrchr(text, '\n', fh->buf.len) : NULL;
	if (!nl)
		return 0;
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vref *r = malloc(sizeof(*r));
	int rc = vd_engine_config_check(&why, v->e, text, (size_t)(nl - text) + 1);
	if (rc < 0 && r && vref_of_node(r, v, fh->node) == 0) {
		vd_warn("task %s: config line refused: %s", r->task, vd_buf_cstr(&why));
		vd_engine_task_note(v->e, r->task, "config line refused: %s", vd_buf_cstr(&why));
	}
	free(r);
	vd_buf_release(&why);
	return rc < 0 ? -EINVAL : 0;
}

static int open_content(struct vfh *fh, struct vd_view *v, const struct vref *r, int flags)
{
	vd_buf_init(&fh->buf, buf_cap(r->kind));
	fh->writable = wants_write(flags);
	fh->is_config = r->kind == NK_CONFIG;
	if (flags & O_TRUNC) {
		fh->dirty = true;
		return 0;
	}
	return content_read(&fh->buf, v, r);
}

/* truncate(2) without an open handle: no flush follows, so store now. */
static int truncate_content(struct vd_view *v, const struct vref *r, off_t size)
{
	struct vd_buf b = VD_BUF_INIT(buf_cap(r->kind));
	int rc = 0;
	if (size < 0 || (uint64_t)size > buf_cap(r->kind))
		return -EFBIG;
	if (size > 0)
		rc = content_read(&b, v, r);
	if (rc == 0)
		rc = buf_resize(&b, (size_t)size);
	if (rc == 0)
		rc = content_write(v, r, &b);
	vd_buf_release(&b);
	return rc;
}

/* ---- setattr ---------------------------------------------------------------- */

static int do_setattr(struct vd_view *v, struct target *t, struct vfh *fh,
		      const struct stat *attr, int to_set)
{
	int rc = 0;
	/* Without --allow-other everything is the mounting user's: owners
	 * are not ours to change, and are ignored like the metadata-only
	 * changes below, so that cp -a works. With it, staging entries in
	 * data/ have real owners (the kernel has checked the caller may),
	 * and a task's is recorded (view_owner.c). */
	to_set &= ~FUSE_SET_ATTR_CTIME;
	if ((rc = task_chown(v, &t->r, attr, to_set)) < 0)
		return rc;
	if (!v->allow_other || t->r.kind != NK_DATAENT)
		to_set &= ~(FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID);
	if (to_set == 0)
		return 0;
	if (vref_immutable(&t->r))
		return readonly_err(&t->r);
	if (t->r.task && (rc = task_may_change(v, t->r.task)) < 0)
		return rc;
	switch (t->r.kind) {
	case NK_DATAENT:
		rc = data_setattr(v, &t->r, fh, attr, to_set);
		break;
	case NK_FUNCTION:
	case NK_CONFIG:
		if (!(to_set & FUSE_SET_ATTR_SIZE))
			break;
		if (attr->st_size < 0 || (uint64_t)attr->st_size > buf_cap(t->r.kind))
			return -EFBIG;
		if (fh && fh->kind == FH_BUF) {
			pthread_mutex_lock(&fh->lock);
			rc = buf_resize(&fh->buf, (size_t)attr->st_size);
			if (rc == 0)
				fh->dirty = fh->written = true;
			pthread_mutex_unlock(&fh->lock);
		} else {
			rc = truncate_content(v, &t->r, attr->st_size);
		}
		break;
	default:
		/* Directories of the layout and latest: times and modes are
		 * not kept; accept and drop them. Size makes no sense. */
		if (to_set & FUSE_SET_ATTR_SIZE)
			rc = t->r.type == S_IFDIR ? -EISDIR : -EPERM;
		break;
	}
	return rc;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct stat st;
	double ttl = 0;
	struct vfh *fh = fi ? fh_of(fi) : NULL;
	int rc = target_get(&t, v, ino);
	if (rc == 0)
		rc = do_setattr(v, &t, fh, attr, to_set);
	if (rc == 0)
		rc = node_attr(&st, &ttl, v, &t, fh);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, ttl);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vd_view *v = req_view(req);
	struct target t;
	char id[VD_ID_SIZE];
	char link[sizeof("versions/") + VD_ID_SIZE];
	int rc = target_get(&t, v, ino);
	if (rc == 0 && (t.r.kind == NK_DATAENT || t.r.kind == NK_INPUT)) {
		struct vd_buf b = VD_BUF_INIT(PATH_MAX + 1);
		rc = t.r.kind == NK_INPUT ? input_readlink(&b, v, &t.r) : data_readlink(&b, v, &t.r);
		if (rc < 0)
			reply_err(req, rc);
		else
			fuse_reply_readlink(req, vd_buf_cstr(&b));
		vd_buf_release(&b);
		return;
	}
	if (rc == 0 && t.r.kind != NK_LATEST)
		rc = -EINVAL;
	if (rc == 0)
		rc = vd_engine_version_latest(id, v->e, t.r.task);
	if (rc >= 0) {
		int n = snprintf(link, sizeof(link), "versions/%s", id);
		rc = n < 0 || (size_t)n >= sizeof(link) ? -EIO : 0;
	}
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, link);
}

/* ---- changes to the namespace -------------------------------------------------- */

/* The parent node and the vref of name in it. */
struct child {
	struct vnode *p;
	struct vref pr;
	struct vref c;
};

static int child_get(struct child *ch, struct vd_view *v, fuse_ino_t parent, const char *name)
{
	int rc;
	ch->p = node_get(v, parent);
	if (!ch->p)
		return -ESTALE;
	rc = vref_of_node(&ch->pr, v, ch->p);
	/* Every change to a task's names is its owner's (view_owner.c). */
	if (rc == 0 && ch->pr.task)
		rc = task_may_change(v, ch->pr.task);
	if (rc < 0)
		return rc;
	if (strlen(name) > VIEW_NAME_MAX) {
		if (in_data(&ch->pr))
			data_name_refused(v, ch->pr.task, name, -ENAMETOOLONG);
		return -ENAMETOOLONG;
	}
	/* A name in the fixed layout that cannot exist still gets a vref of
	 * its parent's kind so that the error below is the right one. */
	rc = vref_child(&ch->c, v, &ch->pr, name);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		memset(&ch->c, 0, sizeof(ch->c));
		ch->c.kind = ch->pr.kind;
		ch->c.name = name;
		rc = 0;
	}
	return rc;
}

static bool in_data(const struct vref *parent)
{
	return parent->kind == NK_DATA || parent->kind == NK_DATAENT;
}

/* Why a change to the namespace at this parent is refused. */
static int namespace_err(const struct vref *parent)
{
	return vref_immutable(parent) && parent->kind != NK_EXECUTORS ? -EROFS : -EPERM;
}

static void reply_new_entry(fuse_req_t req, struct vd_view *v, struct vnode *p, const char *name)
{
	struct fuse_entry_param e;
	int rc = do_lookup(&e, v, p, name);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vd_view *v = req_view(req);
	struct child *ch = malloc(sizeof(*ch));
	int rc = ch ? child_get(ch, v, parent, name) : -ENOMEM;
	if (rc < 0)
		goto out;
	if (ch->pr.kind == NK_TASKS) {
		rc = name_check(name);
		if (rc == 0)
			rc = task_make(v, name);
	} else if (in_data(&ch->pr)) {
		rc = data_mkdir(v, &ch->c, mode);
	} else {
		rc = namespace_err(&ch->pr);
	}
	if (rc >= 0) {
		reply_new_entry(req, v, ch->p, name);
		free(ch);
		return;
	}
out:
	free(ch);
	reply_err(req, rc);
}

/* What mknod or symlink makes. */
struct new_node {
	mode_t mode;
	dev_t rdev;
	const char *link;            /* a symlink's target; NULL: mknod */
};

/* mknod and symlink: only in data/ (elsewhere the fixed layout's error),
 * answered with the new entry. */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name,
		      const struct new_node *nn)
{
	struct vd_view *v = req_view(req);
	struct child *ch = malloc(sizeof(*ch));
	int rc = ch ? child_get(ch, v, parent, name) : -ENOMEM;
	if (rc < 0)
		goto out;
	if (!in_data(&ch->pr) || ch->c.kind != NK_DATAENT)
		rc = namespace_err(&ch->pr);
	else if (nn->link)
		rc = data_symlink(v, &ch->c, nn->link);
	else
		rc = data_mknod(v, &ch->c, nn->mode, nn->rdev);
	if (rc >= 0) {
		reply_new_entry(req, v, ch->p, name);
		free(ch);
		return;
	}
out:
	free(ch);
	reply_err(req, rc);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	make_node(req, parent, name, &(struct new_node){ .mode = mode, .rdev = rdev });
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, &(struct new_node){ .mode = S_IFLNK | 0777, .link = link });
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct child *ch = malloc(sizeof(*ch));
	int rc = ch ? target_get(&t, v, ino) : -ENOMEM;
	if (rc == 0)
		rc = child_get(ch, v, newparent, newname);
	if (rc < 0)
		goto out;
	if (in_data(&ch->pr) && ch->c.kind == NK_DATAENT && t.r.kind == NK_DATAENT)
		rc = data_link(v, &t.r, &ch->c);
	else if (vref_immutable(&ch->pr) || vref_immutable(&t.r))
		rc = -EROFS;
	else
		rc = in_data(&ch->pr) ? -EXDEV : namespace_err(&ch->pr);
	if (rc >= 0) {
		reply_new_entry(req, v, ch->p, newname);
		free(ch);
		return;
	}
out:
	free(ch);
	reply_err(req, rc);
}

static void op_unlink_common(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct vd_view *v = req_view(req);
	struct child *ch = malloc(sizeof(*ch));
	int rc = ch ? child_get(ch, v, parent, name) : -ENOMEM;
	if (rc < 0)
		goto out;
	if (in_data(&ch->pr) && ch->c.kind == NK_DATAENT)
		rc = dir ? data_rmdir(v, &ch->c) : data_unlink(v, &ch->c);
	else if (view_remove_here(&ch->pr))
		rc = view_remove(v, &ch->pr, name, dir);   /* rm -r: view_delete.c */
	else
		rc = namespace_err(&ch->pr);
	if (rc == 0)
		node_unhash_child(v, ch->p, name);
out:
	free(ch);
	reply_err(req, rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, true);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct vd_view *v = req_view(req);
	struct child *from = malloc(sizeof(*from));
	struct child *to = malloc(sizeof(*to));
	int rc = from && to ? child_get(from, v, parent, name) : -ENOMEM;
	if (rc == 0)
		rc = child_get(to, v, newparent, newname);
	if (rc < 0)
		goto out;
	if (vref_immutable(&from->pr) || vref_immutable(&to->pr))
		rc = -EROFS;
	else if (!in_data(&from->pr) || !in_data(&to->pr))
		rc = in_data(&from->pr) || in_data(&to->pr) ? -EXDEV : -EPERM;
	else
		rc = data_rename(v, &from->c, &to->c, flags);
	if (rc == 0)
		rc = node_move(v, from->p, name, to->p, newname);
out:
	free(from);
	free(to);
	reply_err(req, rc);
}

/* ---- open files --------------------------------------------------------------- */

static int open_generated(struct vfh *fh, struct vd_view *v, const struct vref *r)
{
	int rc;
	vd_buf_init(&fh->buf, SIZE_MAX / 2);
	switch (r->kind) {
	case NK_README:
		rc = vd_engine_render_readme(&fh->buf, v->e);
		break;
	case NK_EXECUTOR:
		rc = vd_engine_executor_render(&fh->buf, v->e, r->name);
		break;
	case NK_STATUS:
		rc = vd_engine_render(&fh->buf, v->e, r->task, r->data_id, VD_GEN_STATUS);
		break;
	case NK_META:
		rc = vd_engine_render(&fh->buf, v->e, r->task, r->data_id, VD_GEN_META);
		break;
	default:
		rc = vd_engine_render(&fh->buf, v->e, r->task, r->data_id, VD_GEN_LOG);
		break;
	}
	return rc < 0 ? rc : 0;
}

static int open_input(struct vfh *fh, struct vd_view *v, const struct vref *r)
{
	struct mc_ent *ent = NULL;
	mode_t type = S_IFREG;
	size_t idx = 0;
	int rc = mc_get(&ent, v, r->data_id);
	if (rc < 0)
		return rc;
	if (r->path[0] != '\0' || ent->m->kind == VD_KIND_TREE)
		rc = man_find(&type, &idx, ent->m, r->path);
	if (rc == 0 && !S_ISREG(type))
		rc = -EISDIR;
	if (rc == 0)
		rc = fh_chunk_init_man(fh, ent, idx);
	if (rc < 0)
		mc_put(v, ent);
	return rc;
}

static int open_result(struct vfh *fh, struct vd_view *v, const struct target *t)
{
	struct vd_file *f = NULL;
	int rc = vd_engine_result_get(&f, v->e, t->r.task, t->r.data_id);
	if (rc < 0)
		return rc;
	if (file_ckey(f) != t->n->ckey) {
		/* A newer run's result replaced the one this inode shows. */
		vd_file_free(f);
		return -ESTALE;
	}
	fh_chunk_init_own(fh, f);
	return 0;
}

static int do_open(struct vfh *fh, struct vd_view *v, struct target *t,
		   struct fuse_file_info *fi)
{
	bool wr = wants_write(fi->flags);
	int rc = 0;

	fi->keep_cache = 0;
	fi->direct_io = 0;
	if (t->n->type != S_IFREG)
		return t->n->type == S_IFDIR ? -EISDIR : -ELOOP;
	if (wr && t->r.task && !vref_immutable(&t->r) && (rc = task_may_change(v, t->r.task)) < 0)
		return rc;
	switch (t->r.kind) {
	case NK_README:
	case NK_EXECUTOR:
	case NK_STATUS:
	case NK_META:
	case NK_LOG:
		if (wr)
			return readonly_err(&t->r);
		fh->kind = FH_GEN;
		fi->direct_io = 1;
		rc = open_generated(fh, v, &t->r);
		break;
	case NK_FUNCTION:
	case NK_CONFIG:
		fh->kind = FH_BUF;
		rc = open_content(fh, v, &t->r, fi->flags);
		break;
	case NK_INPUT:
		if (wr)
			return -EROFS;
		fi->keep_cache = 1;
		rc = open_input(fh, v, &t->r);
		break;
	case NK_RESULT:
		if (wr)
			return -EROFS;
		fi->keep_cache = 1;
		rc = open_result(fh, v, t);
		break;
	case NK_DATAENT:
		rc = data_open(fh, v, &t->r, fi->flags);
		break;
	default:
		rc = runs_kind(t->r.kind) ? runs_open(fh, fi, v, &t->r, wr) : -EACCES;
		break;
	}
	/* What is loaded ahead for a file whose bytes never change goes into
	 * the page cache at once (view_fhread.c, ext_push); not for O_DIRECT,
	 * which does not use the cache. */
	if (rc == 0 && fh->kind == FH_CHUNK && fi->keep_cache && !(fi->flags & O_DIRECT))
		fh->push = true;
	return rc;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct vfh *fh = NULL;
	int rc = target_get(&t, v, ino);
	if (rc < 0)
		goto out;
	fh = fh_new(v, t.n, FH_GEN);
	if (!fh) {
		rc = -ENOMEM;
		goto out;
	}
	rc = do_open(fh, v, &t, fi);
	if (rc < 0)
		goto out;
	fi->fh = (uint64_t)(uintptr_t)fh;
	fh_link(v, fh);
	if (fuse_reply_open(req, fi) != 0)
		fh_free(v, fh);   /* the open was interrupted: no release will come */
	return;
out:
	fh_free(v, fh);
	reply_err(req, rc);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct child *ch = malloc(sizeof(*ch));
	struct vfh *fh = NULL;
	struct fuse_entry_param e;
	int rc = ch ? child_get(ch, v, parent, name) : -ENOMEM;
	if (rc < 0)
		goto out;
	if (!in_data(&ch->pr) || ch->c.kind != NK_DATAENT) {
		rc = namespace_err(&ch->pr);
		goto out;
	}
	fh = fh_new(v, NULL, FH_GEN);
	if (!fh) {
		rc = -ENOMEM;
		goto out;
	}
	rc = data_create(fh, v, &ch->c, fi->flags, mode);
	if (rc < 0)
		goto out;
	rc = do_lookup(&e, v, ch->p, name);
	if (rc < 0)
		goto out;
	fh_set_node(v, fh, node_get(v, e.ino));
	fh_link(v, fh);
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = 0;
	fi->direct_io = 0;
	if (fuse_reply_create(req, &e, fi) != 0) {
		node_forget(v, e.ino, 1);
		fh_free(v, fh);
	}
	free(ch);
	return;
out:
	free(ch);
	fh_free(v, fh);
	reply_err(req, rc);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct vfh *fh = fh_of(fi);
	int rc = 0;
	char *buf = NULL;
	size_t got = 0;

	if (off < 0) {
		rc = -EINVAL;
		goto out;
	}
	switch (fh->kind) {
	case FH_GEN:
	case FH_BUF:
		pthread_mutex_lock(&fh->lock);
		if ((uint64_t)off < fh->buf.len) {
			got = fh->buf.len - (size_t)off < size ? fh->buf.len - (size_t)off : size;
			fuse_reply_buf(req, fh->buf.data + off, got);
		} else {
			fuse_reply_buf(req, NULL, 0);
		}
		pthread_mutex_unlock(&fh->lock);
		return;
	case FH_CHUNK:
		buf = malloc(size ? size : 1);
		if (!buf) {
			rc = -ENOMEM;
			goto out;
		}
		rc = chunk_read(&got, v, fh, buf, size, (uint64_t)off);
		if (rc == 0)
			fuse_reply_buf(req, buf, got);
		break;
	case FH_STAGE:
	case FH_TREEFILE: {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
		int fd = data_ready_fd(v, fh);
		if (fd < 0) {
			rc = fd;
			break;
		}
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = off;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		return;
	}
	default:
		rc = -EISDIR;
		break;
	}
out:
	free(buf);
	if (rc < 0)
		reply_err(req, rc);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *p, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct vfh *fh = fh_of(fi);
	int rc = 0;

	if (off < 0) {
		rc = -EINVAL;
		goto out;
	}
	switch (fh->kind) {
	case FH_BUF:
		if (!fh->writable) {
			rc = -EBADF;
			break;
		}
		if ((uint64_t)off > fh->buf.max || size > fh->buf.max - (size_t)off) {
			rc = -EFBIG;
			break;
		}
		pthread_mutex_lock(&fh->lock);
		struct vd_buf before = VD_BUF_INIT(fh->buf.max);
		if (fh->is_config)
			rc = vd_buf_add(&before, fh->buf.data ? fh->buf.data : "", fh->buf.len);
		if (rc == 0 && (size_t)off + size > fh->buf.len)
			rc = buf_resize(&fh->buf, (size_t)off + size);
		if (rc == 0) {
			memcpy(fh->buf.data + off, p, size);
			fh->dirty = fh->written = true;
		}
		if (rc == 0 && fh->is_config && (rc = config_check_write(v, fh)) < 0) {
			/* The write did not happen, and as with a staged file
			 * whose write failed, nothing of this handle is stored:
			 * the task keeps the config it had. */
			vd_buf_reset(&fh->buf);
			vd_buf_add(&fh->buf, before.data ? before.data : "", before.len);
			fh->werr = rc;
		}
		vd_buf_release(&before);
		pthread_mutex_unlock(&fh->lock);
		if (rc == 0)
			fuse_reply_write(req, size);
		break;
	case FH_STAGE:
	case FH_TREEFILE:
		rc = data_write(v, fh, p, size, off);
		if (rc >= 0) {
			fuse_reply_write(req, (size_t)rc);
			rc = 0;
		}
		break;
	default:
		rc = -EBADF;
		break;
	}
out:
	if (rc < 0)
		reply_err(req, rc);
}

/*
 * Store a function or config handle's bytes if they changed. Like staging
 * files (view_data.c, stage_seal), content that was only truncated by the
 * open waits for the release: `cmd > function` flushes a duplicate
 * descriptor before cmd writes, and an empty code version would start runs.
 */
static int buf_commit(struct vd_view *v, struct vfh *fh, bool force)
{
	int rc = 0;
	struct vref *r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	pthread_mutex_lock(&fh->lock);
	if (fh->werr) {
		rc = fh->werr;
	} else if (fh->writable && fh->dirty && (force || fh->written)) {
		rc = vref_of_node(r, v, fh->node);
		if (rc == 0)
			rc = content_write(v, r, &fh->buf);
		if (rc == 0)
			fh->dirty = false;
	}
	pthread_mutex_unlock(&fh->lock);
	free(r);
	return rc;
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct vfh *fh = fh_of(fi);
	int rc = 0;

	if (fh->kind == FH_BUF) {
		rc = buf_commit(v, fh, false);
	} else if (fh->kind == FH_STAGE || fh->kind == FH_TREEFILE) {
		rc = data_flush(v, fh);
	}
	reply_err(req, rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct vfh *fh = fh_of(fi);
	/* A failure here has no caller to go to; the engine logs it. */
	if (fh->kind == FH_BUF)
		(void)buf_commit(v, fh, true);
	fh_free(v, fh);
	reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vfh *fh = fh_of(fi);
	int rc = 0;
	if (fh->kind == FH_STAGE || fh->kind == FH_TREEFILE)
		rc = data_fsync(req_view(req), fh, datasync);
	reply_err(req, rc);
}

/* ---- directories -------------------------------------------------------------- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct vfh *fh = NULL;
	int rc = target_get(&t, v, ino);
	if (rc < 0)
		goto out;
	if (t.n->type != S_IFDIR) {
		rc = -ENOTDIR;
		goto out;
	}
	fh = fh_new(v, t.n, FH_DIR);
	if (!fh) {
		rc = -ENOMEM;
		goto out;
	}
	/* The number is read before the listing is taken, so a version
	 * committed meanwhile makes the next opendir list again. */
	uint64_t seq = t.r.kind == NK_VERSIONS ? vd_engine_versions_seq(v->e) + 1 : 0;
	/* The listing is taken once per open: offsets stay meaningful. */
	rc = vref_list(&fh->list, v, &t.r);
	if (rc < 0)
		goto out;
	fi->fh = (uint64_t)(uintptr_t)fh;
	/* What is inside an input tree never changes. versions/ only grows,
	 * and only when a version is sealed: the kernel may keep its cached
	 * listing (and answer `ls -l` from its dentry and attribute caches,
	 * which hold for an hour) for as long as no version was sealed since
	 * it was filled; otherwise keep_cache = 0 makes it drop the cache
	 * and read the listing again. */
	fi->cache_readdir = t.r.kind == NK_INPUT || t.r.kind == NK_VERSIONS;
	fi->keep_cache = t.r.kind == NK_INPUT;
	if (t.r.kind == NK_VERSIONS) {
		pthread_mutex_lock(&v->nlock);
		fi->keep_cache = t.n->list_seq == seq;
		t.n->list_seq = seq;
		pthread_mutex_unlock(&v->nlock);
	}
	fh_link(v, fh);
	if (fuse_reply_open(req, fi) != 0)
		fh_free(v, fh);
	return;
out:
	fh_free(v, fh);
	reply_err(req, rc);
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
		       bool plus)
{
	struct vd_view *v = req_view(req);
	struct vfh *fh = fh_of(fi);
	struct vnode *n = fh->node;
	size_t total = fh->list.n + 2;
	size_t pos = 0;
	char *buf = malloc(size ? size : 1);

	if (!buf) {
		reply_err(req, -ENOMEM);
		return;
	}
	for (size_t i = off < 0 ? 0 : (size_t)off; i < total; i++) {
		const char *name;
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? n->ino : node_parent_ino(v, n);
			e.attr.st_mode = S_IFDIR;
		} else {
			name = fh->list.v[i - 2].name;
			e.attr.st_mode = fh->list.v[i - 2].type;
			if (plus) {
				/* Entries that vanished since opendir are
				 * skipped rather than failing the listing. */
				if (do_lookup(&e, v, n, name) < 0)
					continue;
			} else {
				e.attr.st_ino = node_peek_ino(v, n, name);
			}
		}
		size_t sz = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e,
							  (off_t)(i + 1))
				 : fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr,
						     (off_t)(i + 1));
		if (sz > size - pos) {
			if (plus && e.ino)
				node_forget(v, e.ino, 1);
			break;
		}
		pos += sz;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fh_free(req_view(req), fh_of(fi));
	reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	reply_err(req, 0);
}

/* ---- the rest ---------------------------------------------------------------- */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vd_view *v = req_view(req);
	struct statvfs s;
	/* Space is that of the disk the staging (and the state) is on. */
	if (statvfs(v->staging, &s) < 0) {
		memset(&s, 0, sizeof(s));
		s.f_bsize = s.f_frsize = 4096;
	}
	s.f_namemax = VIEW_NAME_MAX;
	fuse_reply_statfs(req, &s);
}

/* Without default_permissions the kernel asks only for access(2) and
 * chdir; answer from the modes we report. */
static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct vd_view *v = req_view(req);
	struct target t;
	struct stat st;
	double ttl;
	int rc = target_get(&t, v, ino);
	if (rc == 0)
		rc = node_attr(&st, &ttl, v, &t, NULL);
	/* Versions keep the modes they were submitted with (0644 and the
	 * like), and are still never writable. */
	if (rc == 0 && (mask & W_OK) && (!(st.st_mode & S_IWUSR) || vref_immutable(&t.r)))
		rc = readonly_err(&t.r);
	if (rc == 0 && (mask & X_OK) && !(st.st_mode & S_IXUSR))
		rc = -EACCES;
	reply_err(req, rc);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* open(O_TRUNC) must reach us as one request: a staging file is made
	 * empty at open instead of first copying what a separate truncate
	 * would then throw away. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Sealing happens in FLUSH and must see every byte. With the
	 * writeback cache the kernel may still hold dirty pages when FLUSH
	 * arrives on close unless it writes them back first; rather than
	 * depend on that, writes go through to us (write-through). */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Bigger writes: fewer requests per chunk (libfuse caps this at its
	 * buffer size). */
	conn->max_write = 1u << 20;
}

static const struct fuse_lowlevel_ops view_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.access = op_access,
};

/* ---- life ------------------------------------------------------------------------ */

/*
 * libfuse's multi-threaded loop notices fuse_session_exit only when one of
 * its workers returns from reading the device, which a signal to some other
 * thread (or a call from another thread) does not cause. One request through
 * the mount makes a worker come back, see the exit and end the loop. Called
 * from the settle thread every tick while the session is exiting, never
 * from a worker (which would wait for itself).
 */
void view_kick_loop(struct vd_view *v)
{
	pthread_mutex_lock(&v->looplock);
	bool kick = v->looping && v->se && fuse_session_exited(v->se);
	pthread_mutex_unlock(&v->looplock);
	if (kick) {
		struct stat st;
		(void)stat(v->mountpoint, &st);
	}
}

int vd_view_new(vd_view **out, vd_engine *e, const char *mountpoint,
		const char *staging_dir, bool debug, bool allow_other)
{
	int rc = 0;
	struct vd_view *v = calloc(1, sizeof(*v));
	char *argv[] = { "vdfs", "-o",
			 allow_other ? "fsname=vdfs,subtype=vdfs,allow_other,default_permissions"
				     : "fsname=vdfs,subtype=vdfs",
			 debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(debug ? 4 : 3, argv);
	struct stat st;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	v->e = e;
	v->allow_other = allow_other;
	v->uid = getuid();
	v->gid = getgid();
	v->start_ms = vd_now_ms();
	pthread_mutex_init(&v->nlock, NULL);
	pthread_mutex_init(&v->slock, NULL);
	pthread_mutex_init(&v->mlock, NULL);
	pthread_mutex_init(&v->looplock, NULL);
	pthread_mutex_init(&v->wlock, NULL);
	pthread_mutex_init(&v->alock, NULL);
	pthread_cond_init(&v->acond, NULL);
	pthread_cond_init(&v->adone, NULL);
	pthread_cond_init(&v->wcond, NULL);
	pthread_cond_init(&v->scond, NULL);
	pthread_cond_init(&v->stop_cond, NULL);
	v->mountpoint = realpath(mountpoint, NULL);
	v->staging = strdup(staging_dir);
	if (!v->mountpoint) {
		rc = -errno;
		vd_err("mount point %s: %s", mountpoint, strerror(errno));
		goto out;
	}
	if (!v->staging) {
		rc = -ENOMEM;
		goto out;
	}
	if (stat(v->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = -ENOTDIR;
		vd_err("mount point %s is not a directory", v->mountpoint);
		goto out;
	}
	rc = node_table_init(v);
	if (rc < 0)
		goto out;
	rc = data_init(v);
	if (rc < 0)
		goto out;
	rc = view_ahead_start(v);
	if (rc < 0)
		goto out;
	v->se = fuse_session_new(&args, &view_ops, sizeof(view_ops), v);
	if (!v->se) {
		rc = -EINVAL;
		vd_err("cannot start a FUSE session");
		goto out;
	}
	if (fuse_session_mount(v->se, v->mountpoint) != 0) {
		rc = view_mount_failed(v);
		goto out;
	}
	v->mounted = true;
	rc = view_watch_start(v);
	if (rc < 0)
		goto out;
	vd_info("mounted on %s (staging in %s)", v->mountpoint, v->staging);
	*out = v;
out:
	fuse_opt_free_args(&args);
	if (rc < 0)
		vd_view_free(v);
	return rc;
}

int vd_view_loop(vd_view *v)
{
	int rc = 0;
	struct fuse_loop_config *cfg = NULL;

	if (fuse_set_signal_handlers(v->se) != 0) {
		vd_err("cannot install signal handlers");
		return -EIO;
	}
	cfg = fuse_loop_cfg_create();
	if (!cfg) {
		rc = -ENOMEM;
		goto out;
	}
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	fuse_loop_cfg_set_idle_threads(cfg, 10);
	fuse_loop_cfg_set_max_threads(cfg, 64);
	pthread_mutex_lock(&v->looplock);
	v->looping = true;
	v->loop_thread = pthread_self();
	pthread_mutex_unlock(&v->looplock);

	rc = fuse_session_loop_mt(v->se, cfg);

	pthread_mutex_lock(&v->looplock);
	v->looping = false;
	pthread_mutex_unlock(&v->looplock);
	/* A positive value is the signal that ended the loop: a clean end. */
	if (rc > 0) {
		vd_info("signal %d: unmounting", rc);
		rc = 0;
	} else if (rc < 0) {
		vd_err("FUSE session loop: %s", strerror(-rc));
	}
out:
	if (cfg)
		fuse_loop_cfg_destroy(cfg);
	fuse_remove_signal_handlers(v->se);
	return rc;
}

void vd_view_exit(vd_view *v)
{
	if (!v || !v->se)
		return;
	fuse_session_exit(v->se);
	/* The settle thread kicks the loop within its next tick. */
	pthread_mutex_lock(&v->slock);
	pthread_cond_broadcast(&v->stop_cond);
	pthread_mutex_unlock(&v->slock);
}

void vd_view_free(vd_view *v)
{
	if (!v)
		return;
	/* Unmount first: it also ends any request the settle thread may have
	 * sent to a loop that has already stopped (see view_kick_loop). The
	 * deletion watcher must be done with the device before it is closed
	 * (view_delete.c, view_watch_stop). */
	view_watch_stop(v);
	if (v->se && v->mounted) {
		fuse_session_unmount(v->se);
		v->mounted = false;
		vd_info("unmounted %s", v->mountpoint);
	}
	view_watch_join(v);
	/* No request runs any more: the decode-ahead worker can end, then
	 * handles the kernel never released (an aborted connection) go. */
	view_ahead_stop(v);
	while (v->fhs)
		fh_free(v, v->fhs);
	data_shutdown(v);
	if (v->se)
		fuse_session_destroy(v->se);
	mc_free_all(v);
	node_table_free(v);
	pthread_cond_destroy(&v->scond);
	pthread_cond_destroy(&v->stop_cond);
	pthread_mutex_destroy(&v->nlock);
	pthread_mutex_destroy(&v->slock);
	pthread_mutex_destroy(&v->mlock);
	pthread_mutex_destroy(&v->looplock);
	pthread_mutex_destroy(&v->wlock);
	pthread_cond_destroy(&v->wcond);
	pthread_mutex_destroy(&v->alock);
	pthread_cond_destroy(&v->acond);
	pthread_cond_destroy(&v->adone);
	free(v->mountpoint);
	free(v->staging);
	free(v);
}
