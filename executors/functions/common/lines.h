/*
 * lines.h - what the shipped functions (vdfs-factor, vdfs-forecast) share:
 * a line reader with a hard cap on line length, CSV field quoting, and a
 * small output buffer.
 *
 * A function's input is whatever a user copied into the mount, so no line
 * may make it allocate without bound: vd_lines_next() hands out lines of up
 * to `max` bytes and reports a longer one as -EFBIG (with its length and
 * first bytes, so the caller can name it in an error row) after skipping the
 * rest of it. Reads may carry a deadline, which is how vdfs-factor waits for
 * its factoring process without hanging on it.
 */
#ifndef VD_FN_LINES_H
#define VD_FN_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* How many leading bytes of an over-long line are kept for its error row. */
#define VD_LINES_PREFIX 40

struct vd_lines {
	int fd;
	char *buf;        /* bytes read and not yet handed out: [start, end) */
	size_t start, end, cap;
	size_t max;       /* the longest line handed out, without its '\n' */
	bool eof;
	uint64_t lineno;  /* lines handed out or skipped so far */
	/* The last over-long line: its length and its first bytes. */
	size_t long_len;
	char long_prefix[VD_LINES_PREFIX];
	size_t long_prefix_len;
};

/* Read lines from fd, none longer than max bytes. 0, -EINVAL, -ENOMEM. */
int vd_lines_init(struct vd_lines *lr, int fd, size_t max);
/*
 * The next line, without its '\n' and without one '\r' before it, in
 * *line / *len (valid until the next call; not NUL-terminated). The last
 * line may lack its '\n'. Returns 1 for a line, 0 at the end of the input,
 * -EFBIG for a line longer than max (skipped; long_len and long_prefix say
 * what it was), -ETIMEDOUT when deadline_ms (CLOCK_MONOTONIC, vd_mono_ms;
 * negative: none) passes before a whole line is in, or -errno.
 */
int vd_lines_next(struct vd_lines *lr, const char **line, size_t *len,
		  int64_t deadline_ms);
void vd_lines_release(struct vd_lines *lr);

/* Append s[0..n) as one CSV field, quoted (RFC 4180) when it holds a comma,
 * a double quote, CR or LF. */
int vd_csv_add_field(struct vd_buf *b, const char *s, size_t n);

/* Write out and empty b once it holds at least `over` bytes (0: always).
 * -errno from write(2). */
int vd_out_flush(struct vd_buf *b, int fd, size_t over);

#endif
