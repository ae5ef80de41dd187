/*
 * zframe.c - zstd frames for the executor (see zframe.h).
 */
#include <errno.h>
#include <stdlib.h>

#include <zstd.h>

#include "zframe.h"

/* Below this a frame's header alone eats the saving. */
#define ZFRAME_MIN_INPUT 64

int vd_zframe_each(uint64_t *raw_len, const void *src, size_t n, uint64_t skip,
		   uint64_t len, uint64_t max, vd_zframe_sink sink, void *ctx)
{
	ZSTD_DCtx *d = ZSTD_createDCtx();
	size_t outcap = ZSTD_DStreamOutSize();
	char *buf = malloc(outcap);
	ZSTD_inBuffer in = { src, n, 0 };
	uint64_t pos = 0, end = len == UINT64_MAX || skip > UINT64_MAX - len
				? UINT64_MAX : skip + len;
	size_t hint = 1;
	int rc = 0;

	if (!d || !buf ||
	    ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, VD_ZFRAME_WINDOW_LOG_MAX))) {
		rc = -ENOMEM;
		goto out;
	}
	/* No frame at all is not a chunk: even an empty one has a header. */
	if (n == 0) {
		rc = -EBADMSG;
		goto out;
	}
	while (pos < end) {
		ZSTD_outBuffer o = { buf, outcap, 0 };

		hint = ZSTD_decompressStream(d, &o, &in);
		if (ZSTD_isError(hint)) {
			rc = -EBADMSG;
			goto out;
		}
		if (o.pos) {
			uint64_t a = pos, b = pos + o.pos;

			if (b > max) {
				rc = -EBADMSG;
				goto out;
			}
			if (b > skip && a < end) {
				uint64_t from = a < skip ? skip : a, to = b < end ? b : end;

				rc = sink(ctx, buf + (from - a), (size_t)(to - from));
				if (rc)
					goto out;
			}
			pos = b;
		}
		/* 0: a frame is decoded and flushed; the input may hold
		 * another one (a frame the daemon stored, or one per chunk
		 * of a gathered result, back to back). */
		if (hint == 0 && in.pos == in.size)
			break;
		/* The decoder wants more input and there is none, with room
		 * left for output: the frame was cut short. */
		if (in.pos == in.size && o.pos < o.size) {
			rc = -EBADMSG;
			goto out;
		}
	}
	if (pos < end && end != UINT64_MAX)
		rc = -EBADMSG;
	else if (end == UINT64_MAX && skip > pos)
		rc = -EBADMSG;
out:
	if (raw_len)
		*raw_len = pos;
	ZSTD_freeDCtx(d);
	free(buf);
	return rc;
}

static int hash_sink(void *ctx, const void *p, size_t n)
{
	vd_hasher_update(ctx, p, n);
	return 0;
}

int vd_zframe_id(char out[VD_ID_SIZE], uint64_t *raw_len, const struct vd_key *k,
		 const void *src, size_t n, uint64_t max)
{
	vd_hasher *h = NULL;
	int rc = vd_hasher_new(&h, k);

	if (!rc)
		rc = vd_zframe_each(raw_len, src, n, 0, UINT64_MAX, max, hash_sink, h);
	if (!rc)
		vd_hasher_digest(h, out);
	vd_hasher_free(h);
	return rc;
}

int vd_zframe_compress(struct vd_buf *out, const void *p, size_t n, int level)
{
	ZSTD_CCtx *cc = NULL;
	ZSTD_inBuffer in = { p, n, 0 };
	size_t left = 1, keep, step = ZSTD_CStreamOutSize();
	int rc = 0;

	vd_buf_reset(out);
	if (n < ZFRAME_MIN_INPUT)
		return 0;
	/* The frame must be at most 97 % of the input. Streaming into a
	 * buffer that grows with the frame, and giving up as soon as it
	 * passes that, costs an incompressible output no second copy of
	 * its size. */
	keep = n - (n / 100 * VD_ZFRAME_MIN_SAVING_PCT +
		    (n % 100 * VD_ZFRAME_MIN_SAVING_PCT + 99) / 100);
	cc = ZSTD_createCCtx();
	if (!cc)
		return -ENOMEM;
	/* The frame header then says the raw length, which the daemon
	 * checks against out_bytes before it decodes anything. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, level)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cc, n))) {
		rc = -EINVAL;
		goto out;
	}
	while (left != 0) {
		size_t room = out->max - out->len < step ? out->max - out->len : step;
		ZSTD_outBuffer o;

		rc = room ? vd_buf_grow(out, room) : -EFBIG;
		if (rc)
			goto out;
		o = (ZSTD_outBuffer){ out->data + out->len, room, 0 };
		left = ZSTD_compressStream2(cc, &o, &in, ZSTD_e_end);
		if (ZSTD_isError(left)) {
			rc = -ENOMEM;
			goto out;
		}
		out->len += o.pos;
		if (out->len > keep)
			goto out;   /* rc 0: not worth it */
	}
	out->data[out->len] = '\0';
	rc = 1;
out:
	if (rc != 1)
		vd_buf_reset(out);
	ZSTD_freeCCtx(cc);
	return rc;
}
