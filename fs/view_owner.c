/*
 * view_owner.c - owners under vdfsd --allow-other (docs/remote-access.md).
 *
 * A task belongs to the uid that made it through the mount (recorded in
 * its catalog record; a task made over HTTP, or before owners were
 * recorded, is the daemon's own). The task's directory, data/, function,
 * config and everything sealed in it show that owner, with modes (0755,
 * 0644) that let the kernel (default_permissions) give write access to it
 * alone and to root. Entries being written in data/ show their real
 * owners (the staging files' own, given to their makers: view_stage.c).
 *
 * The kernel's check is not the only one: every change the view makes in
 * a task asks task_may_change first, so that the rule holds when the
 * kernel's check does not apply (a caller the kernel lets through for
 * other reasons, a re-export). Without --allow-other only the mounting
 * user reaches the mount and nothing here changes anything.
 */
#include "view_int.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* The file fusermount3 reads its user_allow_other from. */
#define FUSE_CONF "/etc/fuse.conf"

int task_owner(uid_t *uid, gid_t *gid, struct vd_view *v, const char *task)
{
	if (!v->allow_other) {
		*uid = v->uid;
		*gid = v->gid;
		return 0;
	}
	int rc = vd_engine_task_uid(uid, gid, v->e, task);
	return rc < 0 ? rc : 0;
}

void task_owner_stat(struct stat *st, struct vd_view *v, const char *task)
{
	uid_t uid;
	gid_t gid;
	/* A task deleted meanwhile keeps what the stat said: the next
	 * lookup finds it gone. */
	if (v->allow_other && task && task_owner(&uid, &gid, v, task) == 0) {
		st->st_uid = uid;
		st->st_gid = gid;
	}
}

int task_may_change(struct vd_view *v, const char *task)
{
	uid_t uid;
	gid_t gid;
	if (!v->allow_other || view_caller.uid == 0)
		return 0;
	int rc = task_owner(&uid, &gid, v, task);
	if (rc < 0)
		return rc;
	if (view_caller.uid == uid)
		return 0;
	vd_warn("task %s: uid %ld may not change it: only its owner (uid %ld) and root may",
		task, (long)view_caller.uid, (long)uid);
	return -EACCES;
}

int task_make(struct vd_view *v, const char *name)
{
	if (!v->allow_other)
		return vd_engine_task_create(v->e, name);
	return vd_engine_task_create_uid(v->e, name, view_caller.uid, view_caller.gid);
}

void stat_real_owner(struct stat *st, const struct vd_view *v, const struct stat *real)
{
	if (v->allow_other) {
		st->st_uid = real->st_uid;
		st->st_gid = real->st_gid;
	}
}

/*
 * chown and chgrp of tasks/NAME record a new owner. As on any file system
 * only root gives a task away; its owner may change only the group, and
 * only to its own primary group (the request's supplementary groups are
 * not asked for, so a chgrp to one of them is EPERM here although the
 * kernel would allow it).
 */
int task_chown(struct vd_view *v, const struct vref *r, const struct stat *attr, int to_set)
{
	uid_t uid, nuid;
	gid_t gid, ngid;
	if (!v->allow_other || r->kind != NK_TASK ||
	    !(to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		return 0;
	const char *task = r->task;
	int rc = task_owner(&uid, &gid, v, task);
	if (rc < 0)
		return rc;
	nuid = (to_set & FUSE_SET_ATTR_UID) && attr->st_uid != (uid_t)-1 ? attr->st_uid : uid;
	ngid = (to_set & FUSE_SET_ATTR_GID) && attr->st_gid != (gid_t)-1 ? attr->st_gid : gid;
	if (nuid == uid && ngid == gid)
		return 0;
	if (view_caller.uid != 0 &&
	    (nuid != uid || view_caller.uid != uid || ngid != view_caller.gid))
		return -EPERM;
	rc = vd_engine_task_set_uid(v->e, task, nuid, ngid);
	return rc < 0 ? rc : 0;
}

/* ---- sealed trees copied out for changes ------------------------------- */

/* nftw's callback takes no context: the owner being given, per thread. */
static _Thread_local struct {
	uid_t uid;
	gid_t gid;
	int err;             /* the first failure, as errno */
} giving;

static int give_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (lchown(path, giving.uid, giving.gid) < 0 && giving.err == 0)
		giving.err = errno;
	return 0;
}

/*
 * A sealed tree showed as the task owner's; the copy made of it for
 * changes must too, or the owner could no longer change what it made. The
 * walk goes by path, which is safe here: dir is the daemon's own staging
 * directory, exclusive while it is filled (view_stage.c,
 * tree_from_sealed), and FTW_PHYS follows no symlink.
 */
void tree_give(struct vd_view *v, const char *dir, const char *task)
{
	uid_t uid;
	gid_t gid;
	if (!v->allow_other || task_owner(&uid, &gid, v, task) < 0)
		return;
	if (uid == geteuid() && gid == getegid())
		return;   /* what the daemon made is already theirs */
	giving.uid = uid;
	giving.gid = gid;
	giving.err = 0;
	if (nftw(dir, give_one, 16, FTW_PHYS) < 0 && giving.err == 0)
		giving.err = errno;
	/* The copy is still usable (as the daemon's): a failure is logged,
	 * as stage_own_at logs one. */
	if (giving.err)
		vd_warn("task %s: cannot give the copy of a sealed tree to uid %ld: %s", task,
			(long)uid, strerror(giving.err));
}

/* ---- mounting ------------------------------------------------------------ */

/*
 * Whether FUSE_CONF has the line user_allow_other, read the way
 * fusermount3 reads it: a comment from '#' on, blanks around, and only
 * lines that end in a newline count.
 */
static bool fuse_conf_allows_other(void)
{
	bool yes = false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f = fopen(FUSE_CONF, "re");
	if (!f)
		return false;
	while (!yes && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] != '\n')
			break;
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t len = strlen(s);
		while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
				   s[len - 1] == '\n' || s[len - 1] == '\r'))
			len--;
		yes = len == strlen("user_allow_other") && memcmp(s, "user_allow_other", len) == 0;
	}
	free(line);
	fclose(f);
	return yes;
}

int view_mount_failed(const struct vd_view *v)
{
	if (v->allow_other && geteuid() != 0 && !fuse_conf_allows_other()) {
		vd_err("--allow-other: a user other than root may mount with allow_other only "
		       "when " FUSE_CONF " has the line user_allow_other; add it (as root: "
		       "echo user_allow_other >> " FUSE_CONF "), or run vdfsd as root");
		return -EPERM;
	}
	vd_err("cannot mount on %s (see the message from fuse above)", v->mountpoint);
	return -EIO;
}
