/*
 * diff.h - unified line diffs of two stored files without reading them whole.
 *
 * A stored file is a list of extents (chunk ID, length, newline count), as
 * GET /v1/versions/<id> gives them (`vdfs diff --lines`, over HTTP) or the
 * engine's manifests hold them (vdfsd's GET /v1/diff/A/B/lines, from the
 * store). vd_diff_files aligns the two lists by
 * chunk ID first (a longest common subsequence over chunk IDs: n and m are
 * about 1,000 for a 1 GB file), skips the chunks shared in order without
 * fetching them (their newline counts keep the line numbers right), and
 * fetches and line-diffs only the regions in between, widened to whole
 * lines plus context. A region larger than the window (opts.window bytes or
 * opts.window_lines lines per side) is diffed in windows: each window's
 * edit script is committed up to its last matching line and the rest is
 * carried into the next window. So memory stays bounded by the window, the
 * chunk cache and one hunk body (which spills to a temporary file), whatever
 * the files' sizes; the price is that a windowed diff of a huge, very
 * different region may not be minimal (it is always a correct patch).
 *
 * The output is what `diff -u` prints for the same two files (headers
 * aside): the same hunk ranges, 3 lines of context by default, and
 * "\ No newline at end of file". Within a window the line diff is Myers'
 * O(ND) algorithm with GNU diff's cost cap (see vd_diff_seq), so on very
 * different inputs it may pick a different, equally valid script than GNU
 * diff.
 */
#ifndef VD_DIFF_H
#define VD_DIFF_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "buf.h"
#include "id.h"

#define VD_DIFF_LINES_UNKNOWN UINT64_MAX

struct vd_diff_extent {
	char id[VD_ID_SIZE];
	uint64_t len;
	uint64_t lines;    /* '\n' bytes in the chunk, or VD_DIFF_LINES_UNKNOWN */
};

/* Append the `len` bytes of chunk `id` to out. Returns 0 or -errno. */
typedef int (*vd_diff_fetch_fn)(struct vd_buf *out, void *arg, const char *id,
				uint64_t len);

struct vd_diff_opts {
	int context;          /* lines of context around changes (3) */
	size_t window;        /* bytes per side in one line diff (4 MiB) */
	size_t window_lines;  /* lines per side in one line diff (100,000) */
	size_t max_line;      /* a longer line makes the file binary (16 MiB) */
	size_t cache;         /* bytes of fetched chunks kept (32 MiB; one
				 chunk is always kept, whatever its size) */
	uint64_t limit;       /* print at most this many bytes (0: no limit;
				 see vd_diff_files) */
	vd_diff_fetch_fn fetch;
	void *fetch_arg;
	FILE *out;
};

/* What a diff did; vd_diff_files adds to it (zero it first). */
struct vd_diff_stats {
	uint64_t chunks_fetched, bytes_fetched;   /* downloads, cache misses */
	uint64_t chunks_skipped, bytes_skipped;   /* shared in order, never read */
	uint64_t regions;                         /* line-diffed regions */
	uint64_t windows;                         /* line diffs run */
	uint64_t removed, added;                  /* '-' and '+' lines printed */
	uint64_t hunks;
	uint64_t files_binary;                    /* "Binary files ... differ" */
};

void vd_diff_opts_default(struct vd_diff_opts *o);

/*
 * Print the unified diff of file a (label_a) and file b (label_b) to
 * o->out: nothing when they are equal, else "--- label_a", "+++ label_b"
 * and the hunks. A file holding a NUL byte in a differing region, or a line
 * longer than o->max_line, is reported as "Binary files label_a and label_b
 * differ" instead (after any hunks already printed). Extents whose newline
 * count is unknown are fetched and counted first (one at a time). Returns 0
 * or -errno (-EIO: a chunk's bytes disagree with its extent).
 *
 * With o->limit, the output stays within limit bytes: the diff stops
 * before the first line that would not fit (counted with the header its
 * hunk would then have), the hunk being built is printed with the lines
 * it got, its range counting them, and -ENOBUFS is returned. So what is
 * printed is the whole diff's beginning, every hunk consistent, and a
 * caller that keeps only that much (the daemon's GET /v1/diff/A/B/lines)
 * does not pay for the rest, however much the files differ. A diff that
 * fits the limit exactly is printed whole (0 returned); nothing is printed
 * when even the first hunk's first lines do not fit.
 */
int vd_diff_files(struct vd_diff_stats *st, const struct vd_diff_opts *o,
		  const char *label_a, const struct vd_diff_extent *a, size_t na,
		  const char *label_b, const struct vd_diff_extent *b, size_t nb);

/*
 * The core: mark in chg_a / chg_b the elements of a and b that are not part
 * of a longest common subsequence (symbols are < nsym). Elements found only
 * on one side are set aside first; the rest goes to Myers' divide and
 * conquer with GNU diff's heuristic, which after about 4,096 rounds of one
 * split takes the furthest-reaching diagonal: minimal for inputs that differ
 * by fewer edits than that, near-minimal beyond. Memory O(na + nb + nsym).
 * Returns 0 or -ENOMEM.
 */
int vd_diff_seq(bool *chg_a, bool *chg_b, const uint32_t *a, size_t na,
		const uint32_t *b, size_t nb, uint32_t nsym);

#endif
