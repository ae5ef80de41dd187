/*
 * buf.h - a growable byte buffer with a hard size cap.
 *
 * Every variable-length string or body in vdfs is built in a vd_buf so that no
 * caller sizes a fixed array by guesswork and no input can make us allocate
 * without bound: each buffer carries its own cap, and an append that would
 * pass it fails with -EFBIG instead of growing.
 *
 * Ownership: the buffer owns `data`. After any successful append `data` is
 * NUL-terminated (the terminator is not counted in `len`), so text can be
 * handed to C string functions directly. vd_buf_detach() hands ownership of
 * the bytes to the caller and leaves the buffer empty.
 */
#ifndef VD_BUF_H
#define VD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct vd_buf {
	char *data;   /* NULL until the first append; NUL-terminated after */
	size_t len;   /* bytes used, excluding the terminator */
	size_t cap;   /* bytes allocated, including room for the terminator */
	size_t max;   /* appends that would make len > max fail with -EFBIG */
};

#define VD_BUF_INIT(maxbytes) { NULL, 0, 0, (maxbytes) }

void vd_buf_init(struct vd_buf *b, size_t max);
/* Make room for `extra` more bytes. -EFBIG past the cap, -ENOMEM. */
int vd_buf_grow(struct vd_buf *b, size_t extra);
int vd_buf_add(struct vd_buf *b, const void *p, size_t n);
int vd_buf_adds(struct vd_buf *b, const char *s);
int vd_buf_addf(struct vd_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int vd_buf_vaddf(struct vd_buf *b, const char *fmt, va_list ap);
/* Forget the contents but keep the allocation. */
void vd_buf_reset(struct vd_buf *b);
/* Free the allocation; the buffer is back to its initial state (cap kept). */
void vd_buf_release(struct vd_buf *b);
/* Hand the bytes to the caller (free() them); *len may be NULL. Never NULL:
 * an empty buffer yields a malloc'd "". Returns NULL only on ENOMEM. */
char *vd_buf_detach(struct vd_buf *b, size_t *len);
/* The contents as a C string ("" for an empty buffer); never NULL. */
const char *vd_buf_cstr(const struct vd_buf *b);

#endif
