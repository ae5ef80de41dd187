/*
 * put_walk.c - what `vdfs put` sends, found before anything is read: each
 * argument's entries (tools/put.h).
 *
 * A FILE argument is one regular file; a DIR argument is walked with
 * lstat, in name order, as `cp -r DIR MNT/tasks/T/data/` would copy it and
 * the mount then records it: regular files and symlinks (their target
 * strings, never followed) are entries, a directory is one only when it
 * holds none or its mode is not 0755 (the others are implied by the paths
 * below them), modes are the permission bits less the umask (what cp -r
 * leaves), and FIFOs, sockets and devices are left out with a warning.
 * Names must be UTF-8 without control characters (JSON carries nothing
 * else, and the daemon takes no such name), paths shorter than 4096 bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "put.h"

/*
 * Whether s is UTF-8 (JSON carries nothing else) and, unless ctrl, holds no
 * control character (the daemon takes none in a name). Overlong forms and
 * surrogates are not UTF-8.
 */
static bool text_ok(const char *s, bool ctrl)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		unsigned c = *u;
		size_t n;
		uint32_t cp;
		if (!ctrl && (c < 0x20 || c == 0x7f))
			return false;
		if (c < 0x80) {
			u++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			n = 1, cp = c & 0x1f;
		else if ((c & 0xf0) == 0xe0)
			n = 2, cp = c & 0x0f;
		else if ((c & 0xf8) == 0xf0)
			n = 3, cp = c & 0x07;
		else
			return false;
		/* A NUL ends the loop here: it is no continuation byte. */
		for (size_t i = 1; i <= n; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (u[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		u += n + 1;
	}
	return true;
}

static int push_file(struct vd_put_file **out, struct vd_put *p)
{
	if (p->nfiles == p->fcap) {
		size_t ncap = p->fcap ? p->fcap * 2 : 64;
		struct vd_put_file *nf = realloc(p->files, ncap * sizeof *nf);
		if (!nf)
			return -ENOMEM;
		p->files = nf;
		p->fcap = ncap;
	}
	*out = &p->files[p->nfiles++];
	memset(*out, 0, sizeof **out);
	return 0;
}

static void note_identity(struct vd_put_file *f, const struct stat *st)
{
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->size = (uint64_t)st->st_size;
	f->mtime = st->st_mtim;
	f->ctime = st->st_ctim;
}

bool vd_put_same_file(const struct vd_put_file *f, const struct stat *st)
{
	return S_ISREG(st->st_mode) && st->st_dev == f->dev && st->st_ino == f->ino &&
	       (uint64_t)st->st_size == f->size && st->st_mtim.tv_sec == f->mtime.tv_sec &&
	       st->st_mtim.tv_nsec == f->mtime.tv_nsec && st->st_ctim.tv_sec == f->ctime.tv_sec &&
	       st->st_ctim.tv_nsec == f->ctime.tv_nsec;
}

static const char *special_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" : S_ISCHR(m) ? "a character device"
	     : S_ISBLK(m) ? "a block device" : "of an unknown type";
}

static int add_entry(struct vd_put *p, const char *disk, const char *rel, mode_t type, mode_t perm,
		     const char *target, const struct stat *st)
{
	struct vd_put_file *f;
	if (push_file(&f, p) || !(f->disk = strdup(disk)) || !(f->rel = strdup(rel)) ||
	    (target && !(f->target = strdup(target)))) {
		fprintf(stderr, "vdfs put: out of memory\n");
		return 1;
	}
	f->type = type;
	f->perm = perm;
	if (type == S_IFREG) {
		note_identity(f, st);
		p->total += f->size;
	}
	return 0;
}

/* A symlink entry: its target as it is. Exit code. */
static int add_symlink(struct vd_put *p, const char *disk, const char *rel, const struct stat *st)
{
	/* On the heap: walk_dir recurses as deep as the paths go. */
	char *target = malloc(VD_PUT_PATH_CAP);
	int rc = 1;
	if (!target) {
		fprintf(stderr, "vdfs put: out of memory\n");
		goto out;
	}
	ssize_t n = readlink(disk, target, VD_PUT_PATH_CAP);
	if (n < 0 || n == VD_PUT_PATH_CAP) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: %s\n", disk,
			n < 0 ? strerror(errno) : "the symlink's target is too long");
		goto out;
	}
	target[n] = '\0';
	if (n == 0 || !text_ok(target, true)) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: the symlink's target is not UTF-8, which a "
			"version cannot hold\n", disk);
		goto out;
	}
	rc = add_entry(p, disk, rel, S_IFLNK, 0777, target, st);
out:
	free(target);
	return rc;
}

/*
 * The entries below directory `disk`, whose path in the tree is rel (""
 * for the top), in name order. A directory is an entry only when it holds
 * none or its mode is not 0755, as the mount records a tree (the others
 * are implied by the paths below them); *empty says it holds none.
 * Exit code.
 */
static int walk_dir(bool *empty, struct vd_put *p, const char *disk, const char *rel)
{
	struct vd_buf dp = VD_BUF_INIT(4 * VD_PUT_PATH_CAP), rp = VD_BUF_INIT(VD_PUT_PATH_CAP - 1);
	struct vd_strv names = { 0 };
	size_t before = p->nfiles;
	struct dirent *de;
	int rc = 1;
	DIR *d = opendir(disk);
	if (!d) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: %s\n", disk, strerror(errno));
		goto out;
	}
	for (errno = 0; (de = readdir(d)); errno = 0) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (vd_strv_push(&names, de->d_name)) {
			fprintf(stderr, "vdfs put: out of memory\n");
			goto out;
		}
	}
	if (errno) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: %s\n", disk, strerror(errno));
		goto out;
	}
	/* Closed before going down: a deep tree must not hold a descriptor
	 * per level. */
	closedir(d);
	d = NULL;
	/* Name order, so that a put is the same whatever readdir's order. */
	vd_strv_sort(&names);
	for (size_t i = 0; i < names.n; i++) {
		const char *nm = names.v[i];
		struct stat st;
		vd_buf_reset(&dp);
		vd_buf_reset(&rp);
		if (vd_buf_addf(&dp, "%s/%s", disk, nm) ||
		    vd_buf_addf(&rp, "%s%s%s", rel, *rel ? "/" : "", nm)) {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s/%s: the path is too long (a version takes "
				"paths of up to %d bytes)\n", disk, nm, VD_PUT_PATH_CAP - 1);
			goto out;
		}
		if (!text_ok(nm, false)) {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s: the name is not UTF-8 or holds a control "
				"character, which a version cannot hold; rename it\n", dp.data);
			goto out;
		}
		if (lstat(dp.data, &st) < 0) {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s: %s\n", dp.data, strerror(errno));
			goto out;
		}
		/* As cp -r leaves them: the permission bits less the umask. */
		mode_t perm = st.st_mode & 0777 & ~p->umask;
		if (S_ISREG(st.st_mode)) {
			if (add_entry(p, dp.data, rp.data, S_IFREG, perm, NULL, &st))
				goto out;
		} else if (S_ISDIR(st.st_mode)) {
			bool sub_empty;
			if (walk_dir(&sub_empty, p, dp.data, rp.data))
				goto out;
			if ((sub_empty || perm != 0755) &&
			    add_entry(p, dp.data, rp.data, S_IFDIR, perm, NULL, &st))
				goto out;
		} else if (S_ISLNK(st.st_mode)) {
			if (add_symlink(p, dp.data, rp.data, &st))
				goto out;
		} else {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: leaving out %s: it is %s\n", dp.data,
				special_kind(st.st_mode));
		}
		vd_put_progress(p, false);
	}
	*empty = p->nfiles == before;
	rc = 0;
out:
	if (d)
		closedir(d);
	vd_strv_release(&names);
	vd_buf_release(&dp);
	vd_buf_release(&rp);
	return rc;
}

/* The data name an argument gets when no --name is given: its last
 * component, as cp names the copy ("." and ".." by what they are).
 * malloc'd; NULL without memory or when it has none ("/"). */
static char *arg_name(const char *arg)
{
	char *real = NULL, *name = NULL;
	const char *s = arg;
	for (int pass = 0; pass < 2 && !name; pass++) {
		size_t n = strlen(s), b;
		while (n > 1 && s[n - 1] == '/')
			n--;
		for (b = n; b > 0 && s[b - 1] != '/'; b--)
			;
		if (n - b == 0 || (n - b == 1 && s[b] == '.') ||
		    (n - b == 2 && s[b] == '.' && s[b + 1] == '.')) {
			if (pass || !(real = realpath(arg, NULL)))
				break;
			s = real;
			continue;
		}
		name = strndup(s + b, n - b);
	}
	free(real);
	return name;
}

int vd_put_walk_item(struct vd_put *p, struct vd_put_item *it, const char *arg, const char *name)
{
	struct stat st;
	it->arg = arg;
	it->first = p->nfiles;
	/* An argument that is a symlink is followed, as cp does. */
	if (stat(arg, &st) < 0) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: %s\n", arg, strerror(errno));
		return 2;
	}
	it->name = name ? strdup(name) : arg_name(arg);
	if (!it->name || !*it->name || !strcmp(it->name, ".") || !strcmp(it->name, "..") ||
	    strchr(it->name, '/') || strlen(it->name) > 255 || !text_ok(it->name, false)) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: '%s' cannot be a data name (1 to 255 bytes of "
			"UTF-8, no '/' or control character, not . or ..); give one with "
			"--name\n", arg, it->name ? it->name : "");
		return 2;
	}
	if (S_ISREG(st.st_mode)) {
		if (add_entry(p, arg, "", S_IFREG, 0644, NULL, &st))
			return 1;
	} else if (S_ISDIR(st.st_mode)) {
		bool empty;
		it->tree = true;
		it->perm = st.st_mode & 0777 & ~p->umask;
		int rc = walk_dir(&empty, p, arg, "");
		if (rc)
			return rc;
		bool content = false;
		for (size_t i = it->first; i < p->nfiles && !content; i++)
			content = p->files[i].type != S_IFDIR;
		/* The mount never seals a tree of directories alone (cp -r
		 * makes them first: they are the start of a copy), so such a
		 * put could never be the version a cp -r makes. */
		if (!content) {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s holds no file or symlink, and a tree of "
				"directories alone is no version\n", arg);
			return 2;
		}
	} else {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s is %s, neither a file nor a directory\n", arg,
			special_kind(st.st_mode));
		return 2;
	}
	it->n = p->nfiles - it->first;
	return 0;
}
