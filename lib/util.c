/*
 * util.c - system helpers: I/O, durable files, directories, clocks, logging,
 * string vectors (see util.h).
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int vd_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int vd_pwrite_all(int fd, const void *p, size_t n, off_t off)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = pwrite(fd, c, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int vd_pread_all(int fd, void *p, size_t n, off_t off)
{
	char *c = p;

	while (n > 0) {
		ssize_t r = pread(fd, c, n, off);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		c += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

int vd_read_file(struct vd_buf *out, const char *path)
{
	size_t start = out->len;
	struct stat st;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* The size is only a hint (the file may change under us), but it saves
	 * repeated doubling for large files. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
		rc = vd_buf_grow(out, (size_t)st.st_size);
		if (rc)
			goto out;
	}
	for (;;) {
		size_t room;
		ssize_t r;

		if (out->cap == 0 || out->cap - out->len - 1 == 0) {
			size_t more = out->max - out->len;

			if (more == 0) {
				/* At the cap: only a probe tells whether the
				 * file has more bytes than we may hold. */
				char probe;

				r = read(fd, &probe, 1);
				if (r < 0 && errno == EINTR)
					continue;
				if (r < 0)
					rc = -errno;
				else if (r > 0)
					rc = -EFBIG;
				goto out;
			}
			rc = vd_buf_grow(out, more < 65536 ? more : 65536);
			if (rc)
				goto out;
		}
		room = out->cap - out->len - 1;
		if (room > out->max - out->len)
			room = out->max - out->len;
		r = read(fd, out->data + out->len, room);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		out->len += (size_t)r;
		out->data[out->len] = '\0';
	}
out:
	close(fd);
	if (rc) {
		/* Leave the buffer as it was before the call. */
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
	} else if (!out->data) {
		/* An empty file still yields a NUL-terminated buffer. */
		rc = vd_buf_add(out, "", 0);
	}
	return rc;
}

/* Copy the directory part of path into dir (like dirname, without touching
 * path). */
static int parent_of(char *dir, size_t dsize, const char *path)
{
	const char *slash;
	size_t n;

	/* Ignore trailing slashes: the parent of "a/b/" is "a". */
	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	slash = memrchr(path, '/', n);
	if (!slash) {
		snprintf(dir, dsize, ".");
		return 0;
	}
	n = (size_t)(slash - path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (n == 0)
		n = 1;  /* the root */
	if (n >= dsize)
		return -ENAMETOOLONG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

int vd_fsync_dir(const char *dir)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int vd_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	int rc = parent_of(dir, sizeof(dir), path);

	return rc ? rc : vd_fsync_dir(dir);
}

int vd_write_file_atomic(const char *path, const void *p, size_t n, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd = -1, rc, len;

	len = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (len < 0 || (size_t)len >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	/* A stale tmp file from a crash keeps its old mode through O_TRUNC. */
	if (fchmod(fd, mode) < 0) {
		rc = -errno;
		goto out;
	}
	rc = vd_write_all(fd, p, n);
	if (rc)
		goto out;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out;
	}
	rc = vd_fsync_parent(path);
	return rc;
out:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return rc;
}

int vd_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t n = strlen(path), i;
	struct stat st;

	if (n == 0)
		return -ENOENT;
	if (n >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, n + 1);
	/* Create each prefix ending before a '/', then the whole path. */
	for (i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		if (tmp[i - 1] == '/')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		if (i < n)
			tmp[i] = '/';
	}
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int rm_one(const char *fpath, const struct stat *sb, int type,
		  struct FTW *ftw)
{
	/* A positive errno tells a failure of ours apart from nftw's own -1. */
	if (remove(fpath) < 0 && errno != ENOENT)
		return errno;
	return 0;
}

int vd_rm_rf(const char *path)
{
	struct stat st;
	int rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
	/* FTW_DEPTH visits contents before their directory; FTW_PHYS removes
	 * symlinks rather than following them. */
	rc = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (rc > 0)
		return -rc;
	if (rc < 0)
		return errno ? -errno : -EIO;
	return 0;
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vd_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t vd_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

void vd_format_time(char out[32], int64_t ms)
{
	/* Floor division so times before 1970 still format correctly. */
	int64_t sec = ms / 1000, rem = ms % 1000;
	struct tm tm;
	size_t n;
	time_t t;

	if (rem < 0) {
		rem += 1000;
		sec--;
	}
	t = (time_t)sec;
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
		return;
	}
	/* 19 characters for a four-digit year; the milliseconds follow. */
	n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0 || n > 32 - 6) {
		snprintf(out, 32, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out + n, 32 - n, ".%03dZ", (int)rem);
}

/* Set once at start-up by vd_log_init, before threads exist; read-only after. */
static char log_prog[64] = "vdfs";
static enum vd_log_level log_max = VD_LOG_INFO;

void vd_log_init(const char *prog, enum vd_log_level max)
{
	if (prog)
		snprintf(log_prog, sizeof(log_prog), "%s", prog);
	log_max = max;
}

void vd_log(enum vd_log_level lvl, const char *fmt, ...)
{
	static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
	char line[4096], ts[32];
	int saved = errno, n, m;
	size_t len;
	va_list ap;

	if (lvl > log_max)
		return;
	vd_format_time(ts, vd_now_ms());
	n = snprintf(line, sizeof(line), "%s[%ld] %s %s ", log_prog,
		     (long)getpid(), ts,
		     (unsigned)lvl < 4 ? names[lvl] : "?");
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	len = (size_t)n + (m > 0 ? (size_t)m : 0);
	/* Overlong messages are cut, leaving room for the newline. */
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	while (len > (size_t)n && line[len - 1] == '\n')
		len--;
	line[len++] = '\n';
	/* One write per line so that lines from threads do not interleave. */
	(void)vd_write_all(STDERR_FILENO, line, len);
	errno = saved;
}

int vd_strv_pushn(struct vd_strv *sv, const char *s, size_t n)
{
	char *copy;

	/* Keep one slot spare so v stays NULL-terminated (handy for execv). */
	if (sv->n + 1 >= sv->cap) {
		size_t ncap = sv->cap ? sv->cap * 2 : 8;
		char **nv;

		if (ncap > SIZE_MAX / sizeof(*nv))
			return -ENOMEM;
		nv = realloc(sv->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		sv->v = nv;
		sv->cap = ncap;
	}
	copy = strndup(s, n);
	if (!copy)
		return -ENOMEM;
	sv->v[sv->n++] = copy;
	sv->v[sv->n] = NULL;
	return 0;
}

int vd_strv_push(struct vd_strv *sv, const char *s)
{
	return vd_strv_pushn(sv, s, strlen(s));
}

static int strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void vd_strv_sort(struct vd_strv *sv)
{
	if (sv->n > 1)
		qsort(sv->v, sv->n, sizeof(*sv->v), strv_cmp);
}

void vd_strv_release(struct vd_strv *sv)
{
	size_t i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
	sv->cap = 0;
}

struct timespec vd_deadline_ms(clockid_t clock, long ms)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
