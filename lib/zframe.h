/*
 * zframe.h - zstd frames on the wire (docs/protocol.md, "GET
 * /v1/code/<code-id>, GET /v1/chunks/<chunk-id>" and "PUT
 * /v1/results/<lease>"), for both ends.
 *
 * A chunk that the daemon stores compressed comes to an executor as the
 * frame it stored. The executor verifies it by decompressing it into the
 * keyed hash (a chunk ID is the hash of the raw bytes), keeps the frame as
 * it came in its cache (executors/cache.h), and decompresses it again only
 * while it feeds a unit's stdin (executors/runner.c). A result goes back
 * compressed when that saves at least VD_ZFRAME_MIN_SAVING_PCT, and the
 * daemon checks it the same way before it stores it. Decompression streams
 * through a small window, so none of this holds the raw bytes in memory.
 *
 * Every decoder here takes a cap on the raw bytes: a frame's header is
 * only the sender's word for its size, and a bad or hostile one must not
 * make us decode without bound.
 *
 * Threads: no shared state; any thread may call these.
 */
#ifndef VD_ZFRAME_H
#define VD_ZFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "id.h"

/* Results: level 3 (zstd's default: some 300 MB/s a core here, text to a
 * quarter or less), kept only when the frame is at least 3 % smaller. */
#define VD_ZFRAME_RESULT_LEVEL 3
#define VD_ZFRAME_MIN_SAVING_PCT 3

/* The largest window a frame may ask the decoder for, as a power of two:
 * 16 MiB, what zstd's levels up to 19 use at most (23), and what the
 * decoder then allocates at most, whoever sent the frame (zstd's own
 * default limit is 128 MiB). */
#define VD_ZFRAME_WINDOW_LOG_MAX 24

/* Takes n decompressed bytes at p; 0 to go on, -errno to stop. */
typedef int (*vd_zframe_sink)(void *ctx, const void *p, size_t n);

/*
 * Decompress src[0..n) (one zstd frame, or several back to back) and hand
 * the raw bytes from offset skip on, len of them (UINT64_MAX: to the end),
 * to sink in pieces. Decoding stops once len bytes were handed over.
 * *raw_len (may be NULL): the raw bytes decoded, which is the whole length
 * when the frames were decoded to their end. max caps the raw bytes
 * decoded (UINT64_MAX: no cap). -EBADMSG: not a zstd frame, corrupt or cut
 * short, fewer raw bytes than skip + len, more raw bytes than max, or a
 * frame that asks for a window over VD_ZFRAME_WINDOW_LOG_MAX; -ENOMEM;
 * else what sink returned.
 */
int vd_zframe_each(uint64_t *raw_len, const void *src, size_t n, uint64_t skip,
		   uint64_t len, uint64_t max, vd_zframe_sink sink, void *ctx);

/* The ID of the raw bytes of src[0..n) (vd_id_of over its decompression,
 * at most max bytes), and their length. Errors as vd_zframe_each. */
int vd_zframe_id(char out[VD_ID_SIZE], uint64_t *raw_len, const struct vd_key *k,
		 const void *src, size_t n, uint64_t max);

/* Compress p[0..n) at level into out (reset first; its cap applies) when
 * the frame saves at least VD_ZFRAME_MIN_SAVING_PCT: 1 with out holding
 * it; 0 when it would not (out empty; also for tiny inputs); -ENOMEM,
 * -EFBIG. */
int vd_zframe_compress(struct vd_buf *out, const void *p, size_t n, int level);

#endif
