/*
 * lines.c - capped line reading, CSV quoting and buffered output for the
 * shipped functions (see lines.h).
 */
#include "lines.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Reads are at least this large, so that short lines cost few syscalls. */
#define VD_LINES_CHUNK 65536

int vd_lines_init(struct vd_lines *lr, int fd, size_t max)
{
	memset(lr, 0, sizeof(*lr));
	lr->fd = fd;
	if (fd < 0 || max == 0 || max > SIZE_MAX / 2)
		return -EINVAL;
	lr->max = max;
	return 0;
}

void vd_lines_release(struct vd_lines *lr)
{
	free(lr->buf);
	lr->buf = NULL;
	lr->start = lr->end = lr->cap = 0;
}

/* Wait until fd is readable or the deadline passes (-ETIMEDOUT). */
static int wait_readable(int fd, int64_t deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int64_t left;
	int n;

	if (deadline_ms < 0)
		return 0;
	for (;;) {
		left = deadline_ms - vd_mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Make room to read more: move the pending bytes to the front, then grow
 * the buffer, but never beyond what one maximal line and its '\n' need. */
static int make_room(struct vd_lines *lr)
{
	size_t pending = lr->end - lr->start, ncap;
	char *nb;

	if (lr->start > 0) {
		memmove(lr->buf, lr->buf + lr->start, pending);
		lr->start = 0;
		lr->end = pending;
	}
	if (lr->cap - lr->end >= VD_LINES_CHUNK / 4 || lr->cap >= lr->max + 1)
		return 0;
	ncap = lr->cap ? lr->cap * 2 : VD_LINES_CHUNK;
	if (ncap > lr->max + 1)
		ncap = lr->max + 1;
	nb = realloc(lr->buf, ncap);
	if (!nb)
		return -ENOMEM;
	lr->buf = nb;
	lr->cap = ncap;
	return 0;
}

/* One read(2) into the free space; sets eof. */
static int fill(struct vd_lines *lr, int64_t deadline_ms)
{
	ssize_t r;
	int rc;

	rc = make_room(lr);
	if (rc)
		return rc;
	if (lr->end == lr->cap)
		return -ENOBUFS;        /* caller checks for a full buffer first */
	rc = wait_readable(lr->fd, deadline_ms);
	if (rc)
		return rc;
	do
		r = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		lr->eof = true;
	lr->end += (size_t)r;
	return 0;
}

/* The pending bytes hold more than max bytes and no '\n': remember the
 * line's first bytes, then drop everything up to and including its '\n'. */
static int skip_long(struct vd_lines *lr, int64_t deadline_ms)
{
	size_t total = 0;
	char *nl;
	int rc;

	nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
	lr->long_prefix_len = nl ? (size_t)(nl - (lr->buf + lr->start)) :
			      lr->end - lr->start;
	if (lr->long_prefix_len > VD_LINES_PREFIX)
		lr->long_prefix_len = VD_LINES_PREFIX;
	memcpy(lr->long_prefix, lr->buf + lr->start, lr->long_prefix_len);
	for (;;) {
		nl = memchr(lr->buf + lr->start, '\n', lr->end - lr->start);
		if (nl) {
			total += (size_t)(nl - (lr->buf + lr->start));
			lr->start = (size_t)(nl - lr->buf) + 1;
			break;
		}
		total += lr->end - lr->start;
		lr->start = lr->end = 0;
		if (lr->eof)
			break;
		rc = fill(lr, deadline_ms);
		if (rc)
			return rc;
	}
	lr->long_len = total;
	lr->lineno++;
	return -EFBIG;
}

int vd_lines_next(struct vd_lines *lr, const char **line, size_t *len,
		  int64_t deadline_ms)
{
	size_t scanned = 0, n;
	char *nl;
	int rc;

	*line = NULL;
	*len = 0;
	for (;;) {
		nl = NULL;
		if (lr->end - lr->start > scanned)
			nl = memchr(lr->buf + lr->start + scanned, '\n',
				    lr->end - lr->start - scanned);
		if (nl || (lr->eof && lr->end > lr->start))
			break;
		if (lr->eof)
			return 0;
		scanned = lr->end - lr->start;
		if (scanned > lr->max)
			return skip_long(lr, deadline_ms);
		rc = fill(lr, deadline_ms);
		if (rc)
			return rc;
	}
	n = nl ? (size_t)(nl - (lr->buf + lr->start)) : lr->end - lr->start;
	if (n > lr->max) {
		/* The '\n' came in with the same read that passed the cap. */
		return skip_long(lr, deadline_ms);
	}
	*line = lr->buf + lr->start;
	lr->start += n + (nl ? 1 : 0);
	if (n > 0 && (*line)[n - 1] == '\r')
		n--;
	*len = n;
	lr->lineno++;
	return 1;
}

int vd_csv_add_field(struct vd_buf *b, const char *s, size_t n)
{
	size_t i, from;
	int rc;

	for (i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n')
			break;
	if (i == n)
		return vd_buf_add(b, s, n);
	rc = vd_buf_add(b, "\"", 1);
	for (from = 0, i = 0; !rc && i < n; i++) {
		if (s[i] != '"')
			continue;
		/* A quote inside a quoted field is written twice. */
		rc = vd_buf_add(b, s + from, i + 1 - from);
		if (!rc)
			rc = vd_buf_add(b, "\"", 1);
		from = i + 1;
	}
	if (!rc)
		rc = vd_buf_add(b, s + from, n - from);
	if (!rc)
		rc = vd_buf_add(b, "\"", 1);
	return rc;
}

int vd_out_flush(struct vd_buf *b, int fd, size_t over)
{
	int rc;

	if (b->len == 0 || b->len < over)
		return 0;
	rc = vd_write_all(fd, b->data, b->len);
	vd_buf_reset(b);
	return rc;
}
