/*
 * engine_reduce.c - turning the units' outputs into one result.csv.
 *
 * concat: the result is the outputs in unit order, with a one-byte "\n"
 * chunk put after any output that does not end in a newline, so that two
 * units' rows never run together. The result's extents are the output
 * blobs themselves (memo keeps them too, so nothing is stored twice), but
 * each output arrived on its own and sits in a pack of its own, and a cold
 * read of a result made of thousands of small packs jumps from file to
 * file where the kernel's readahead cannot follow. So the blobs are
 * gathered into the result's own pack, in result order
 * (vd_store_writer_gather): once the batch that records the run commits,
 * their index entries point at the copies, and reading result.csv front to
 * back reads that pack front to back. A blob already in a big pack stays
 * where it is (a large output, or one an earlier run gathered): reading it
 * is one long sequential read anyway, and moving it again would only cost.
 *
 * sum: engine_reduce_sum.c.
 *
 * Memory: one output at a time (the largest unit output is what bounds
 * it; a unit's output arrived in one request of at most VD_RESULT_MAX).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

uint64_t vd_engine_count_lines(const char *p, size_t n)
{
	uint64_t lines = 0;
	for (const char *q = p, *e = p + n; (q = memchr(q, '\n', (size_t)(e - q))); q++)
		lines++;
	return lines;
}

static int reduce_concat(struct vd_file *f, vd_hasher *h, vd_store_writer *w,
			 const struct vd_extent *outs, size_t n)
{
	struct vd_buf b = VD_BUF_INIT(VD_RESULT_MAX);
	char nl_id[VD_ID_SIZE] = "";
	size_t cap = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (outs[i].len == 0)
			continue;
		/* Copy it into the result's pack first, then read it from
		 * there: what the result will point at is read and verified
		 * before the run is recorded done. */
		if ((rc = vd_store_writer_gather(w, outs[i].id)) < 0)
			goto out;
		vd_buf_reset(&b);
		if ((rc = vd_store_writer_read(&b, w, outs[i].id)))
			goto out;
		vd_hasher_update(h, b.data, b.len);
		if ((rc = vd_engine_file_push(f, &cap, outs[i].id, b.len,
					      vd_engine_count_lines(b.data, b.len))))
			goto out;
		if (b.data[b.len - 1] != '\n') {
			/* The "\n" chunk may be in the store already (an
			 * earlier result's); it joins this pack too, once. */
			if (!nl_id[0] && ((rc = vd_store_writer_put(nl_id, w, "\n", 1)) ||
					  (rc = vd_store_writer_gather(w, nl_id)) < 0))
				goto out;
			vd_hasher_update(h, "\n", 1);
			if ((rc = vd_engine_file_push(f, &cap, nl_id, 1, 1)))
				goto out;
		}
	}
	rc = 0;
out:
	vd_buf_release(&b);
	return rc;
}

int vd_engine_reduce(struct vd_file **out, char data_id[VD_ID_SIZE],
		     vd_catalog_batch *b, vd_engine *e, enum vd_reduce how,
		     const struct vd_extent *outs, size_t n)
{
	struct vd_file *f = calloc(1, sizeof *f);
	vd_store_writer *w = NULL;
	vd_hasher *h = NULL;
	int rc;
	if (!f || !(f->path = strdup("result.csv"))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = vd_hasher_new(&h, &e->key)) || (rc = vd_store_writer_new(&w, e->store)))
		goto out;
	if (how == VD_REDUCE_SUM)
		rc = vd_engine_reduce_sum(f, h, w, e, outs, n);
	else
		rc = reduce_concat(f, h, w, outs, n);
	/* The pack's index entries (the gathered blobs' new places among
	 * them) go into b, which the caller commits with the run's record:
	 * until then the old copies are what the index names. */
	if (rc || (rc = vd_store_writer_commit(w, b)))
		goto out;
	vd_hasher_digest(h, data_id);
	memcpy(f->id, data_id, VD_ID_SIZE);
	*out = f;
	f = NULL;
out:
	vd_file_free(f);
	vd_store_writer_free(w);
	vd_hasher_free(h);
	return rc;
}
