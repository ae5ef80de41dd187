/*
 * store_copy.c - chunks that move as they are stored, frame and all: a
 * chunk that arrives compressed (vd_store_writer_put_zstd), one gathered
 * into a writer's pack (vd_store_writer_gather), the live chunks of a pack
 * being compacted (vd_store_pack_compact). None of them is compressed
 * again; each is verified against its ID before it is written, so that a
 * copy never spreads a corrupt chunk under a good name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_int.h"
#include "util.h"
#include "zframe.h"

/* Verify that stored (the chunk's bytes as r says they are stored) is
 * chunk id, decoding a frame into the hash as it goes. -EIO. */
static int verify_stored(vd_store *s, const char *id,
			 const struct store_rec *r, const struct vd_buf *stored)
{
	char got[VD_ID_SIZE];
	int rc;

	if (r->zstd) {
		/* Decoded into the hash through a small window (zframe.h): a
		 * buffer of the whole raw length per gathered unit output was
		 * the concat reduce's peak memory. */
		uint64_t got_len = 0;

		rc = vd_zframe_id(got, &got_len, s->key, stored->data, stored->len, r->raw_len);
		if (rc == -ENOMEM)
			return rc;
		if (rc || got_len != r->raw_len) {
			vd_err("store: chunk %s in pack %s at %llu does not decompress to its "
			       "%llu bytes", id, r->pack, (unsigned long long)r->off,
			       (unsigned long long)r->raw_len);
			return -EIO;
		}
	} else {
		vd_id_of(got, s->key, stored->data, (size_t)r->raw_len);
	}
	if (strcmp(got, id) != 0) {
		vd_err("store: chunk %s in pack %s at %llu is corrupt (hashes to %s)", id, r->pack,
		       (unsigned long long)r->off, got);
		return -EIO;
	}
	return 0;
}

/* ---- a chunk that arrives compressed ---- */

/* The raw size that the frames in src[0..n) say they hold, summed over
 * all of them, and whether there is exactly one; ZSTD_CONTENTSIZE_ERROR
 * for bytes that are not frames, ZSTD_CONTENTSIZE_UNKNOWN when one does
 * not say. (ZSTD_findDecompressedSize does this, but only in zstd's
 * experimental API.) */
static unsigned long long frames_size(bool *single, const void *src, size_t n)
{
	const char *p = src;
	unsigned long long sum = 0;
	size_t frames = 0;

	*single = false;
	if (n == 0)
		return ZSTD_CONTENTSIZE_ERROR;
	while (n) {
		size_t fz = ZSTD_findFrameCompressedSize(p, n);
		unsigned long long cs = ZSTD_getFrameContentSize(p, n);

		if (ZSTD_isError(fz) || fz > n || cs == ZSTD_CONTENTSIZE_ERROR)
			return ZSTD_CONTENTSIZE_ERROR;
		if (cs == ZSTD_CONTENTSIZE_UNKNOWN)
			return cs;
		if (cs > ZSTD_CONTENTSIZE_ERROR - 1 - sum)
			return ZSTD_CONTENTSIZE_ERROR;
		sum += cs;
		frames++;
		p += fz;
		n -= fz;
	}
	*single = frames == 1;
	return sum;
}

int vd_store_writer_put_zstd(vd_store_writer *w, const char *id, const void *frame,
			     size_t n, size_t raw_cap)
{
	char got[VD_ID_SIZE];
	unsigned long long size;
	void *raw = NULL;
	int rc;

	if (w->committed || !vd_id_valid(id))
		return -EINVAL;
	/* The frames' own word for their size, which must be there and within
	 * the cap: nothing is decoded without a bound. */
	bool single;
	size = frames_size(&single, frame, n);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
	    size > raw_cap) {
		vd_warn("store: a compressed chunk for %s %s", id,
			size == ZSTD_CONTENTSIZE_ERROR ? "is not zstd"
			: size == ZSTD_CONTENTSIZE_UNKNOWN ? "does not say its size"
			: "is larger than allowed");
		return -EIO;
	}
	/* One frame with its size that saves enough is what a reader takes
	 * as it is (store_zstd.c): it is verified by decoding it into the
	 * hash through a small window (zframe.h), not into a buffer of its
	 * whole raw length, which for a unit's output of tens of MiB was
	 * the daemon's peak memory while results came in. */
	if (single && store_zstd_worth(n, size)) {
		uint64_t got_len = 0;

		rc = vd_zframe_id(got, &got_len, w->s->key, frame, n, size);
		if (rc == -ENOMEM)
			return rc;
		if (rc || got_len != size) {
			vd_warn("store: a compressed chunk for %s does not decompress", id);
			return -EIO;
		}
		if (strcmp(got, id) != 0) {
			vd_warn("store: a compressed chunk sent as %s is %s", id, got);
			return -EIO;
		}
		if (store_wset_find(w, id))
			return 0;
		if ((rc = store_writer_lookup(w, id)) != 0)
			return rc < 0 ? rc : 0;
		return store_writer_append(w, id, frame, n, size, true, false);
	}
	if (!(raw = malloc(size ? (size_t)size : 1)))
		return -ENOMEM;
	/* Several frames, or one that saves too little: decoded here and
	 * stored anew. */
	ZSTD_DCtx *d = store_dctx_get(w->s);
	if (!d) {
		rc = -ENOMEM;
		goto out;
	}
	size_t z = ZSTD_decompressDCtx(d, raw, (size_t)size, frame, n);
	store_dctx_put(w->s, d);
	if (ZSTD_isError(z) || z != size) {
		vd_warn("store: a compressed chunk for %s does not decompress: %s", id,
			ZSTD_isError(z) ? ZSTD_getErrorName(z) : "wrong length");
		rc = -EIO;
		goto out;
	}
	vd_id_of(got, w->s->key, raw, (size_t)size);
	if (strcmp(got, id) != 0) {
		vd_warn("store: a compressed chunk sent as %s is %s", id, got);
		rc = -EIO;
		goto out;
	}
	if (store_wset_find(w, id)) {
		rc = 0;
		goto out;
	}
	if ((rc = store_writer_lookup(w, id)) != 0) {
		rc = rc < 0 ? rc : 0;
		goto out;
	}
	if ((rc = store_zstd_compress(&w->zbuf, &w->cctx, w->s, w->level, raw,
						(size_t)size, false)) > 0) {
		rc = store_writer_append(w, id, w->zbuf.data, w->zbuf.len, size, true, false);
	} else if (rc == 0) {
		rc = store_writer_append(w, id, raw, (size_t)size, size, false, false);
	}
out:
	free(raw);
	return rc;
}

/* ---- gathering ---- */

/* The size of pack's file: 0, -ENOENT when it is gone. */
static int pack_size(uint64_t *size, vd_store *s, const char *pack)
{
	struct pack_fd *pf = NULL;
	struct stat st;
	int rc = store_pack_fd_get(&pf, s, pack);

	if (rc)
		return rc;
	rc = fstat(pf->fd, &st) < 0 ? -errno : 0;
	store_pack_fd_put(s, pf);
	*size = rc ? 0 : (uint64_t)st.st_size;
	return rc;
}

int vd_store_writer_gather(vd_store_writer *w, const char *id)
{
	struct store_rec r;
	uint64_t size;
	int rc;

	if (w->committed || !vd_id_valid(id))
		return -EINVAL;
	if (store_wset_find(w, id))
		return 0;
	/* A hit like writer_put's: from here gc keeps the chunk for us. */
	if ((rc = store_writer_lookup(w, id)) <= 0)
		return rc < 0 ? rc : -ENOENT;
	/* A pack that goes between the lookup and the read was compacted
	 * meanwhile: the index says where the chunk is now. */
	for (int tries = 0; tries < 4; tries++) {
		if ((rc = store_rec_lookup(&r, w->s, id)))
			goto out;
		if ((rc = pack_size(&size, w->s, r.pack)) == -ENOENT)
			continue;
		if (rc)
			goto out;
		if (size >= VD_STORE_GATHER_MIN)
			goto out;   /* already contiguous enough: rc 0 */
		vd_buf_reset(&w->zbuf);
		if ((rc = store_read_stored(&w->zbuf, w->s, id, &r)) == -ENOENT)
			continue;
		if (rc || (rc = verify_stored(w->s, id, &r, &w->zbuf)) ||
		    (rc = store_writer_append(w, id, w->zbuf.data, w->zbuf.len, r.raw_len, r.zstd,
					      true)))
			goto out;
		rc = 1;
		goto out;
	}
	vd_err("store: pack %s of chunk %s is missing", r.pack, id);
	rc = -EIO;
out:
	return rc;
}

/* ---- compaction ---- */

int vd_store_pack_compact(uint64_t *moved, vd_store *s, const char *pack,
			  char (*ids)[VD_ID_SIZE], size_t n)
{
	struct vd_buf stored = VD_BUF_INIT(SIZE_MAX / 2);
	vd_store_writer *w = NULL;
	vd_catalog_batch *b = NULL;
	char pkey[PACK_KEY_SIZE];
	int rc;

	*moved = 0;
	if (!store_pack_name_valid(pack, strlen(pack)))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)) || (rc = vd_store_writer_new(&w, s)))
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct store_rec r;

		/* Only what still lies in this pack: the caller's list may be
		 * a moment old. */
		if ((rc = store_rec_lookup(&r, s, ids[i])) == -ENOENT)
			continue;
		if (rc)
			goto out;
		if (strcmp(r.pack, pack) || store_wset_find(w, ids[i]))
			continue;
		vd_buf_reset(&stored);
		if ((rc = store_read_stored(&stored, s, ids[i], &r)) ||
		    (rc = verify_stored(s, ids[i], &r, &stored)) ||
		    (rc = store_writer_append(w, ids[i], stored.data, stored.len, r.raw_len, r.zstd,
					      true)))
			goto out;
		*moved += r.stored_len;
	}
	/* The new pack is durable before the batch points the index at it,
	 * and the old one is unlinked only after the batch: a crash at any
	 * point leaves every chunk readable from one pack or the other, and
	 * the pack nothing names is removed at the next start. */
	if ((rc = vd_store_writer_commit(w, b)))
		goto out;
	snprintf(pkey, sizeof(pkey), "p/%s", pack);
	vd_catalog_batch_del(b, pkey);
	if ((rc = vd_catalog_commit(s->cat, b, true)))
		goto out;
	rc = store_pack_unlink(s, pack);
out:
	vd_store_writer_free(w);
	vd_catalog_batch_free(b);
	vd_buf_release(&stored);
	return rc;
}
