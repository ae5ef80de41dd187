/*
 * buf.c - growable byte buffer with a hard cap (see buf.h).
 */
#include "buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vd_buf_init(struct vd_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

int vd_buf_grow(struct vd_buf *b, size_t extra)
{
	size_t need, ncap;
	char *nd;

	if (extra > b->max || b->len > b->max - extra)
		return -EFBIG;
	/* One byte more than the content for the terminator. */
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2) {
			ncap = need;
			break;
		}
		ncap *= 2;
	}
	/* Never allocate more than the cap allows, so a large max does not make
	 * a small buffer reserve memory it will never be allowed to use. */
	if (ncap > b->max + 1 && b->max + 1 >= need)
		ncap = b->max + 1;
	nd = realloc(b->data, ncap);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

int vd_buf_add(struct vd_buf *b, const void *p, size_t n)
{
	int rc = vd_buf_grow(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int vd_buf_adds(struct vd_buf *b, const char *s)
{
	return vd_buf_add(b, s, strlen(s));
}

int vd_buf_vaddf(struct vd_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	rc = vd_buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	/* grow reserved n + 1 bytes past len, terminator included. */
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int vd_buf_addf(struct vd_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vd_buf_vaddf(b, fmt, ap);
	va_end(ap);
	return rc;
}

void vd_buf_reset(struct vd_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void vd_buf_release(struct vd_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

char *vd_buf_detach(struct vd_buf *b, size_t *len)
{
	char *d = b->data;

	if (!d) {
		d = malloc(1);
		if (!d)
			return NULL;
		d[0] = '\0';
	}
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return d;
}

const char *vd_buf_cstr(const struct vd_buf *b)
{
	return b->data ? b->data : "";
}
