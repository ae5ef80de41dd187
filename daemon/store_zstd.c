/*
 * store_zstd.c - per-chunk zstd compression for the store (see store.h and
 * docs/versioning.md, "Compression").
 *
 * Each new chunk is compressed on its own, one zstd frame per chunk with
 * its content size in the header, so that any chunk decompresses without
 * its neighbours and a reader knows the length it must get back. The frame
 * is kept only when it is at least VD_STORE_ZSTD_MIN_SAVING_PCT smaller
 * than the chunk: below that, decompressing on every read costs more than
 * the few bytes are worth, and incompressible data (already compressed
 * media, archives, random bytes) stays raw at its own size.
 *
 * The compressor gets an output buffer of exactly the size a kept frame
 * may have, so a chunk that does not compress well enough fails with
 * "destination too small" and nothing is copied for it.
 *
 * Incompressible input is common (media, archives, encrypted data) and
 * must cost next to nothing: zstd skips over input in which it finds no
 * matches quickly, but still at about the speed of the rest of ingest put
 * together. So every chunk is first looked at through a byte histogram of
 * up to HIST_SAMPLE bytes spread over it (a few microseconds): when its
 * collision entropy (-log2 of the sum of the squared byte frequencies,
 * which is never more than the Shannon entropy) is at least 7.8 bits a
 * byte, no coding of single bytes saves 3 %, and the chunk is taken for
 * random and stored raw. A chunk that does not look random is compressed;
 * one of PROBE_MIN bytes or more is probed before (PROBES pieces of
 * PROBE_SIZE bytes spread over it, at level 1; when none saves
 * VD_STORE_ZSTD_MIN_SAVING_PCT it is stored raw without compressing the
 * rest), since for it a wasted compression is long. Probing came first
 * for every chunk of 64 KiB or more once: with 1 MiB chunks that was 1.5 %
 * of the work of compressing them, with the 64 KiB default a quarter, and
 * 1 GiB of random bytes ingested at 1.33 x the time without compression.
 * taken for random. What neither can see is redundancy over longer
 * distances than a piece or in the order of bytes rather than their mix
 * (the same random block twice in one chunk): such a chunk is stored raw.
 *
 * Contexts are pooled in the store (vd_store.cctx_pool, dctx_pool): a
 * writer holds a compression context from its first chunk to its end, a
 * read holds a decompression context for one frame.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <zstd_errors.h>

#include "store_int.h"
#include "util.h"

/* Below this a frame's header and block headers eat the saving. */
#define ZSTD_MIN_INPUT 64
/* The probe of a big chunk's compressibility (see above). */
#define PROBE_MIN (1u << 20)
#define PROBE_SIZE 4096u
#define PROBES 4
#define HIST_SAMPLE 4096u

ZSTD_CCtx *store_cctx_get(vd_store *s)
{
	ZSTD_CCtx *c = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->ncctx)
		c = s->cctx_pool[--s->ncctx];
	pthread_mutex_unlock(&s->lock);
	return c ? c : ZSTD_createCCtx();
}

void store_cctx_put(vd_store *s, ZSTD_CCtx *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->ncctx < STORE_CTX_POOL) {
		s->cctx_pool[s->ncctx++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	ZSTD_freeCCtx(c);
}

ZSTD_DCtx *store_dctx_get(vd_store *s)
{
	ZSTD_DCtx *d = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->ndctx)
		d = s->dctx_pool[--s->ndctx];
	pthread_mutex_unlock(&s->lock);
	return d ? d : ZSTD_createDCtx();
}

void store_dctx_put(vd_store *s, ZSTD_DCtx *d)
{
	if (!d)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->ndctx < STORE_CTX_POOL) {
		s->dctx_pool[s->ndctx++] = d;
		d = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	ZSTD_freeDCtx(d);
}

void store_ctx_pools_free(vd_store *s)
{
	while (s->ncctx)
		ZSTD_freeCCtx(s->cctx_pool[--s->ncctx]);
	while (s->ndctx)
		ZSTD_freeDCtx(s->dctx_pool[--s->ndctx]);
}

bool store_zstd_worth(uint64_t n, uint64_t raw_len)
{
	/* n <= raw_len * (100 - pct) / 100, without overflow for any length
	 * a chunk can have. */
	return raw_len >= ZSTD_MIN_INPUT &&
	       n <= raw_len - (raw_len * VD_STORE_ZSTD_MIN_SAVING_PCT + 99) / 100;
}

/* The largest frame for n raw bytes that would be kept. */
static size_t frame_cap(size_t n)
{
	return (size_t)(n - (n * VD_STORE_ZSTD_MIN_SAVING_PCT + 99) / 100);
}

/* Does any of the probes over p[0..n) compress well enough? */
static bool probe(ZSTD_CCtx *c, const unsigned char *p, size_t n)
{
	unsigned char out[PROBE_SIZE];

	for (size_t k = 0; k < PROBES; k++) {
		size_t at = (n - PROBE_SIZE) / (PROBES - 1) * k;
		size_t z = ZSTD_compressCCtx(c, out, frame_cap(PROBE_SIZE), p + at, PROBE_SIZE, 1);

		if (!ZSTD_isError(z))
			return true;
	}
	return false;
}

/* Do the bytes of p[0..n) (up to HIST_SAMPLE of them, evenly spread)
 * look random? With c[b] the count of byte b among the m sampled,
 * (sum c[b]^2 - m) / (m (m - 1)) is an unbiased estimate of the sum of
 * the squared frequencies; random bytes give 1/256, and 7.8 bits a byte
 * is 1/222.9. For m = 4096 random bytes the estimate's standard
 * deviation is a 28th of the margin, for 1024 a 7th; a random chunk
 * much smaller than that may be taken for compressible, and tried, which
 * is cheap at that size. */
static bool looks_random(const unsigned char *p, size_t n)
{
	uint32_t c[4][256] = { { 0 } };
	size_t m = n < HIST_SAMPLE ? n : HIST_SAMPLE, step = n / m, i;
	uint64_t sq = 0;

	/* Four tables: consecutive bytes that are equal do not wait on each
	 * other's increment. */
	for (i = 0; i + 4 <= m; i += 4) {
		c[0][p[i * step]]++;
		c[1][p[(i + 1) * step]]++;
		c[2][p[(i + 2) * step]]++;
		c[3][p[(i + 3) * step]]++;
	}
	for (; i < m; i++)
		c[0][p[i * step]]++;
	for (int b = 0; b < 256; b++) {
		uint64_t k = (uint64_t)c[0][b] + c[1][b] + c[2][b] + c[3][b];

		sq += k * k;
	}
	return (sq - m) * 222 <= (uint64_t)m * (m - 1);
}

int store_zstd_worth_trying(ZSTD_CCtx **cctx, vd_store *s, int level, const void *p, size_t n)
{
	if (!level || n < ZSTD_MIN_INPUT || looks_random(p, n))
		return 0;
	if (n < PROBE_MIN)
		return 1;
	if (!*cctx && !(*cctx = store_cctx_get(s)))
		return -ENOMEM;
	return probe(*cctx, p, n);
}

int store_zstd_compress(struct vd_buf *out, ZSTD_CCtx **cctx, vd_store *s, int level,
			const void *p, size_t n, bool probed)
{
	int rc;

	vd_buf_reset(out);
	if (!probed && (rc = store_zstd_worth_trying(cctx, s, level, p, n)) <= 0)
		return rc;
	if (!*cctx && !(*cctx = store_cctx_get(s)))
		return -ENOMEM;
	size_t cap = frame_cap(n);
	if ((rc = vd_buf_grow(out, cap)))
		return rc;
	size_t z = ZSTD_compressCCtx(*cctx, out->data, cap, p, n, level);
	if (ZSTD_isError(z)) {
		if (ZSTD_getErrorCode(z) == ZSTD_error_dstSize_tooSmall)
			return 0;
		if (ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation)
			return -ENOMEM;
		/* Nothing else is expected of a one-shot compression; storing
		 * the chunk raw is always right. */
		vd_warn("store: zstd could not compress a %zu-byte chunk: %s", n,
			ZSTD_getErrorName(z));
		return 0;
	}
	if (!store_zstd_worth(z, n))
		return 0;
	out->len = z;
	return 1;
}

int store_zstd_decode(vd_store *s, void *dst, uint64_t raw_len, const void *src, size_t n,
		      const char *what)
{
	ZSTD_DCtx *d;
	size_t got;

	/* The header's content size first: a frame that claims another
	 * length than the index record is not decoded at all. */
	unsigned long long claim = ZSTD_getFrameContentSize(src, n);
	if (claim != raw_len) {
		vd_err("store: chunk %s: the stored frame %s (%" PRIu64 " bytes expected)", what,
		       claim == ZSTD_CONTENTSIZE_ERROR ? "is not a zstd frame"
		       : claim == ZSTD_CONTENTSIZE_UNKNOWN ? "does not say its size"
		       : "has another size", raw_len);
		return -EIO;
	}
	if (!(d = store_dctx_get(s)))
		return -ENOMEM;
	got = ZSTD_decompressDCtx(d, dst, (size_t)raw_len, src, n);
	store_dctx_put(s, d);
	if (ZSTD_isError(got) || got != raw_len) {
		vd_err("store: chunk %s: the stored frame does not decompress: %s", what,
		       ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong length");
		return -EIO;
	}
	return 0;
}
