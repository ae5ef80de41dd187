/*
 * chunker.h - content-defined chunking on record (line) boundaries.
 *
 * FastCDC-style: a gear rolling hash is run from min_size bytes into the
 * chunk; before avg_size a cut candidate needs a stricter mask (more one
 * bits), after it a looser one (normalized chunking, level 2), so chunk
 * sizes cluster around avg_size. Because every chunk must hold whole lines,
 * a candidate at byte i becomes a cut just after the first '\n' at or after
 * i. If no candidate (or no newline after it) comes before max_size, the cut
 * goes after the last '\n' before max_size. A first record longer than
 * max_size extends the chunk to its end, up to hard_max; a record longer
 * than that is refused (-E2BIG).
 *
 * The gear table is fixed (generated from a constant seed), so the same
 * bytes always cut the same way, on every machine and across restarts.
 *
 * The function is stateless: it looks at a window that starts at a chunk
 * start and either decides the cut or asks for more bytes. It never decides
 * on less data than the decision could depend on, so the result does not
 * depend on how the caller sized its reads. A caller that keeps at least
 * max_size bytes (hard_max when asked again) in the window, or hits EOF,
 * always gets an answer.
 */
#ifndef VD_CHUNKER_H
#define VD_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>

struct vd_chunker_params {
	size_t min_size;   /* default 16 KiB (avg / 4) */
	size_t avg_size;   /* default 64 KiB; a power of two */
	size_t max_size;   /* default 256 KiB (avg x 4) */
	size_t hard_max;   /* default 64 MiB: the longest record accepted */
};

/* The parameters of a new store (docs/versioning.md, "Chunk size", has
 * the measurements behind the 64 KiB average: 10 edited versions of a
 * 100 MiB text in 0.50 x one version against 0.89 x at 1 MiB, for an
 * index 12 times the size). A store keeps the ones it was made with. */
void vd_chunker_params_default(struct vd_chunker_params *p);
/* -EINVAL unless 0 < min < avg < max <= hard_max and avg is a power of 2. */
int vd_chunker_params_check(const struct vd_chunker_params *p);

/*
 * Decide where the chunk starting at p[0] ends.
 *   returns 0, *cut > 0:  the chunk is p[0 .. *cut)
 *   returns 0, *cut == 0: more bytes are needed (only when !eof)
 *   returns -E2BIG:       a record is longer than hard_max; *cut = hard_max
 *                         (the offset, relative to p, where the record
 *                         passed the cap, for the error message)
 * With eof, n > 0 and no error, *cut > 0 always. n == 0 with eof gives
 * *cut == 0 (nothing left).
 */
int vd_chunker_cut(size_t *cut, const unsigned char *p, size_t n, bool eof,
		   const struct vd_chunker_params *prm);

#endif
