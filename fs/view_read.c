/*
 * view_read.c - immutable content: sealed files and trees, results.
 *
 * A stored file is a list of extents, each one whole chunk (about the
 * store's average chunk size, up to the chunker's hard cap; a result's can
 * be a unit's whole output). Reading one through a handle is in
 * view_fhread.c; this file loads extents and copies whole files.
 *
 * Manifests are immutable, so they are cached by data ID (a few dozen, least
 * recently used first out) and shared between lookups and open handles.
 */
#include "view_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---- manifest cache ---------------------------------------------------- */

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vd_file *)a)->path, ((const struct vd_file *)b)->path);
}

/* Directory navigation below relies on files in strcmp order of path: then
 * everything below a directory is one contiguous run. */
static void man_sort(struct vd_manifest *m)
{
	for (size_t i = 1; i < m->nfiles; i++) {
		if (strcmp(m->files[i - 1].path, m->files[i].path) > 0) {
			qsort(m->files, m->nfiles, sizeof(*m->files), file_cmp);
			return;
		}
	}
}

static void mc_ent_free(struct mc_ent *ent)
{
	if (!ent)
		return;
	vd_manifest_free(ent->m);
	free(ent);
}

static struct mc_ent *mc_find_locked(struct vd_view *v, const char *id)
{
	for (size_t i = 0; i < MC_SLOTS; i++)
		if (v->mc[i] && strcmp(v->mc[i]->id, id) == 0)
			return v->mc[i];
	return NULL;
}

/* Put ent in a free slot or in place of the least recently used unused
 * one; when every slot is in use the entry stays outside the cache. */
static void mc_insert_locked(struct vd_view *v, struct mc_ent *ent)
{
	size_t victim = MC_SLOTS;
	for (size_t i = 0; i < MC_SLOTS; i++) {
		if (!v->mc[i]) {
			victim = i;
			break;
		}
		if (v->mc[i]->refs == 0 &&
		    (victim == MC_SLOTS || v->mc[i]->used < v->mc[victim]->used))
			victim = i;
	}
	if (victim == MC_SLOTS)
		return;
	if (v->mc[victim])
		mc_ent_free(v->mc[victim]);
	v->mc[victim] = ent;
	ent->in_cache = true;
}

int mc_get(struct mc_ent **out, struct vd_view *v, const char *data_id)
{
	int rc = 0;
	struct vd_manifest *m = NULL;
	struct mc_ent *ent;

	pthread_mutex_lock(&v->mlock);
	ent = mc_find_locked(v, data_id);
	if (ent) {
		ent->refs++;
		ent->used = ++v->mc_tick;
		*out = ent;
	}
	pthread_mutex_unlock(&v->mlock);
	if (ent)
		return 0;

	rc = vd_engine_manifest_get(&m, v->e, data_id);
	if (rc < 0)
		goto out;
	man_sort(m);
	ent = calloc(1, sizeof(*ent));
	if (!ent) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(ent->id, data_id, VD_ID_SIZE);
	ent->id[VD_ID_LEN] = '\0';
	ent->m = m;
	m = NULL;

	pthread_mutex_lock(&v->mlock);
	/* Another thread may have fetched it meanwhile: use theirs. */
	struct vd_manifest *dup = NULL;
	struct mc_ent *other = mc_find_locked(v, data_id);
	if (other) {
		dup = ent->m;
		free(ent);
		ent = other;
	} else {
		mc_insert_locked(v, ent);
	}
	ent->refs++;
	ent->used = ++v->mc_tick;
	pthread_mutex_unlock(&v->mlock);
	if (dup)
		vd_manifest_free(dup);
	*out = ent;
	rc = 0;
out:
	if (m)
		vd_manifest_free(m);
	return rc;
}

void mc_put(struct vd_view *v, struct mc_ent *ent)
{
	bool drop = false;
	pthread_mutex_lock(&v->mlock);
	ent->refs--;
	drop = ent->refs == 0 && !ent->in_cache;
	pthread_mutex_unlock(&v->mlock);
	if (drop)
		mc_ent_free(ent);
}

void mc_free_all(struct vd_view *v)
{
	for (size_t i = 0; i < MC_SLOTS; i++) {
		mc_ent_free(v->mc[i]);
		v->mc[i] = NULL;
	}
}

/* ---- navigating a manifest -------------------------------------------- */

int man_find(mode_t *type, size_t *idx, const struct vd_manifest *m, const char *path)
{
	return vd_manifest_lookup(type, idx, m, path);
}

int man_list(struct dlist *out, const struct vd_manifest *m, const char *dir)
{
	char prefix[PATH_MAX];
	int n = dir[0] ? snprintf(prefix, sizeof(prefix), "%s/", dir)
		       : snprintf(prefix, sizeof(prefix), "%s", "");
	if (n < 0 || (size_t)n >= sizeof(prefix))
		return -ENAMETOOLONG;
	size_t plen = (size_t)n;
	size_t i = 0, lo = 0, hi = m->nfiles;

	/* Below a directory the entries are one sorted run. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(m->files[mid].path, prefix) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < m->nfiles; i++) {
		const struct vd_file *f = &m->files[i];
		if (strncmp(f->path, prefix, plen) != 0)
			break;
		const char *rest = f->path + plen;
		const char *slash = strchr(rest, '/');
		size_t len = slash ? (size_t)(slash - rest) : strlen(rest);
		mode_t type = slash ? S_IFDIR : vd_file_type(f);
		if (len == 0)
			continue;
		if (out->n > 0 && strlen(out->v[out->n - 1].name) == len &&
		    memcmp(out->v[out->n - 1].name, rest, len) == 0)
			continue;
		int rc = dlist_add(out, rest, len, type);
		if (rc < 0)
			return rc;
	}
	/* A directory's own entry ("d") and its contents ("d/x") need not be
	 * adjacent ("d-x" sorts between them): drop the repeats. */
	dlist_sort_unique(out);
	return 0;
}

int man_stat(struct stat *st, struct vd_view *v, const struct vd_manifest *m,
	     const char *path, int64_t time_ms)
{
	mode_t type;
	size_t idx;
	int rc = man_find(&type, &idx, m, path);
	if (rc < 0)
		return rc;
	if (idx == SIZE_MAX) {
		/* The top, or a directory only the paths below it imply. */
		mode_t perm = !path[0] && m->mode ? m->mode & 07777 : VD_DIR_MODE_DEFAULT;
		view_stat_base(st, v, S_IFDIR | perm, 0, time_ms);
		return 0;
	}
	const struct vd_file *f = &m->files[idx];
	if (type == S_IFLNK) {
		view_stat_base(st, v, S_IFLNK | 0777, f->target ? strlen(f->target) : 0, time_ms);
	} else if (type == S_IFDIR) {
		view_stat_base(st, v, S_IFDIR | vd_file_perm(f), 0, time_ms);
	} else {
		view_stat_base(st, v, S_IFREG | vd_file_perm(f), f->size, time_ms);
		st->st_nlink = f->nlink > 1 ? f->nlink : 1;
	}
	return 0;
}

int man_readlink(struct vd_buf *out, const struct vd_manifest *m, const char *path)
{
	mode_t type;
	size_t idx;
	int rc = man_find(&type, &idx, m, path);
	if (rc < 0)
		return rc;
	if (type != S_IFLNK || !m->files[idx].target)
		return -EINVAL;
	rc = vd_buf_adds(out, m->files[idx].target);
	return rc == -EFBIG ? -ENAMETOOLONG : rc;
}

/* ---- reading chunks ---------------------------------------------------- */

uint64_t file_ckey(const struct vd_file *f)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ f->size;
	for (size_t i = 0; i < f->n; i++) {
		for (const char *p = f->ext[i].id; *p; p++) {
			h ^= (unsigned char)*p;
			h *= 0x100000001b3ULL;
		}
		h ^= f->ext[i].off;
		h *= 0x100000001b3ULL;
	}
	return h | 1;   /* 0 means "not a result" in a node */
}

/* Read one extent's chunk into out (emptied first; an allocation it has
 * is used), checking that it is as long as the manifest says (the engine
 * verifies the bytes against the ID). */
int ext_load(struct vd_buf *out, struct vd_view *v, const struct vd_extent *x)
{
	int rc;
	if (x->len > SIZE_MAX / 2)
		return -EIO;
	vd_buf_reset(out);
	out->max = (size_t)x->len;
	rc = vd_engine_chunk_read(out, v->e, x->id);
	if (rc >= 0 && out->len != x->len) {
		vd_warn("chunk %s: %zu bytes where the manifest says %llu", x->id,
			out->len, (unsigned long long)x->len);
		rc = -EIO;
	}
	/* A chunk the manifest names that the store lacks (or that is too
	 * big to be one of ours) is damage, not a missing file: EIO, as for
	 * bytes that fail their check (vdfs fsck says which versions). */
	if (rc == -EFBIG || rc == -ENOENT)
		rc = -EIO;
	if (rc < 0)
		vd_buf_release(out);
	return rc < 0 ? rc : 0;
}

int copy_file_to_fd(struct vd_view *v, const struct vd_file *f, int fd)
{
	int rc = 0;
	for (size_t i = 0; i < f->n; i++) {
		struct vd_buf b = VD_BUF_INIT(0);
		rc = ext_load(&b, v, &f->ext[i]);
		if (rc < 0)
			goto out;
		rc = vd_pwrite_all(fd, b.data, b.len, (off_t)f->ext[i].off);
		vd_buf_release(&b);
		if (rc < 0)
			goto out;
	}
	if (ftruncate(fd, (off_t)f->size) < 0)
		rc = -errno;
out:
	return rc < 0 ? rc : 0;
}

/*
 * The directory that holds path below rootfd (a directory descriptor),
 * opened, and path's last component in *name; directories on the way that
 * do not exist yet are made, with the mode of a directory the paths only
 * imply. No component is ever followed as a symlink: the tree's own links
 * are made in it, and the daemon, often root, must not write through one.
 */
static int parent_open(int *out, int rootfd, const char *path, const char **name)
{
	char comp[VIEW_NAME_MAX + 1];
	int fd = dup(rootfd);
	if (fd < 0)
		return -errno;
	for (const char *p = path;;) {
		const char *slash = strchr(p, '/');
		if (!slash) {
			*name = p;
			*out = fd;
			return 0;
		}
		size_t len = (size_t)(slash - p);
		int rc = 0;
		if (len == 0 || len > VIEW_NAME_MAX) {
			close(fd);
			return -EINVAL;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		int sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0 && errno == ENOENT) {
			if (mkdirat(fd, comp, 0700) < 0 && errno != EEXIST)
				rc = -errno;
			if (rc == 0)
				sub = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (rc == 0 && sub >= 0 &&
			    fchmod(sub, stage_mode(VD_DIR_MODE_DEFAULT, true)) < 0)
				rc = -errno;
		}
		if (rc == 0 && sub < 0)
			rc = -errno;
		close(fd);
		if (rc < 0) {
			if (sub >= 0)
				close(sub);
			return rc;
		}
		fd = sub;
		p = slash + 1;
	}
}

/* One entry of the tree, but a second name of a file (made later, when
 * its first name surely exists) and a directory's mode (set last). */
static int materialize_entry(struct vd_view *v, int rootfd, const struct vd_file *f)
{
	const char *name;
	int pfd = -1, fd = -1;
	int rc = parent_open(&pfd, rootfd, f->path, &name);
	if (rc < 0)
		return rc;
	switch (vd_file_type(f)) {
	case S_IFDIR:
		if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
			rc = -errno;
		break;
	case S_IFLNK:
		/* The target is data: written as it was read, never looked at. */
		if (symlinkat(f->target ? f->target : "", pfd, name) < 0)
			rc = -errno;
		break;
	default:
		fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		rc = copy_file_to_fd(v, f, fd);
		/* Set once written: a mode without u+w does not stop an open
		 * descriptor. */
		if (rc == 0 && fchmod(fd, stage_mode(vd_file_perm(f), false)) < 0)
			rc = -errno;
		break;
	}
	if (fd >= 0)
		close(fd);
	close(pfd);
	return rc;
}

static int materialize_link(int rootfd, const struct vd_file *f)
{
	const char *name, *fname;
	int pfd = -1, ffd = -1;
	int rc = parent_open(&ffd, rootfd, f->hardlink, &fname);
	if (rc == 0)
		rc = parent_open(&pfd, rootfd, f->path, &name);
	if (rc == 0 && linkat(ffd, fname, pfd, name, 0) < 0)
		rc = -errno;
	if (ffd >= 0)
		close(ffd);
	if (pfd >= 0)
		close(pfd);
	return rc;
}

static int materialize_dir_mode(int rootfd, const struct vd_file *f)
{
	const char *name;
	int pfd = -1;
	int rc = parent_open(&pfd, rootfd, f->path, &name);
	if (rc < 0)
		return rc;
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchmod(fd, stage_mode(vd_file_perm(f), true)) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	close(pfd);
	return rc;
}

/*
 * Recreate a sealed tree below dir as it was submitted: files with their
 * modes, empty directories and directories' modes, symlinks with their
 * targets, hard links as links (docs/versioning.md, "Trees"), so that
 * sealing it again unchanged gives the same ID. Modes go through
 * stage_mode, the staging side's rule for what the daemon must be able to
 * read. Entries are in path order, so a directory's own entry comes
 * before what is in it; directory modes are set last, deepest first, so
 * that one without u+w does not stop what goes into it.
 */
int materialize_tree(struct vd_view *v, const struct vd_manifest *m, const char *dir)
{
	int rc = 0;
	const struct vd_file *at = NULL;    /* the entry being made, for the log */
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		rc = -errno;
		goto out;
	}
	for (size_t i = 0; i < m->nfiles && rc == 0; i++)
		if (!(at = &m->files[i])->hardlink)
			rc = materialize_entry(v, rootfd, at);
	for (size_t i = 0; i < m->nfiles && rc == 0; i++)
		if ((at = &m->files[i])->hardlink)
			rc = materialize_link(rootfd, at);
	for (size_t i = m->nfiles; i > 0 && rc == 0; i--)
		if (vd_file_type(at = &m->files[i - 1]) == S_IFDIR)
			rc = materialize_dir_mode(rootfd, at);
	if (rc == 0) {
		at = NULL;
		mode_t top = m->mode ? m->mode & 07777 : VD_DIR_MODE_DEFAULT;
		if (fchmod(rootfd, stage_mode(top, true)) < 0)
			rc = -errno;
	}
out:
	if (rootfd >= 0)
		close(rootfd);
	if (rc < 0)
		vd_warn("copying a sealed tree to %s for changes: %s: %s", dir,
			at ? at->path : "the top directory", strerror(-rc));
	return rc;
}
