/*
 * fuzz_results.c - the daemon's parsing of a POST /v1/results body
 * (daemon/http_results.c) and of each result in it, as a PUT
 * /v1/results/<lease> body (http_result_parse, daemon/http_transfer.c).
 *
 * The body is cut the way http_results_take cuts it, with
 * http_results_frame_next, before anything reaches the engine; this
 * harness stops there (the engine's side needs a state directory). What
 * it asserts: the frames cover the body exactly, each one non-empty, at
 * most HTTP_RESULTS_COUNT_MAX of them; a frame that parses has its
 * output inside the frame, ending where the frame ends, with a raw
 * length that is the output's length unless it is a zstd frame (then at
 * most HTTP_RESULT_MAX) and an out_id that is an ID; one that does not
 * parse says why and leaves no metadata behind.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one_result(const char *p, size_t n)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct http_result res;
	int rc = http_result_parse(&res, &why, p, n);

	if (rc) {
		assert(rc == -EINVAL || rc == -EFBIG);
		assert(!res.meta);
		assert(why.len > 0);
	} else {
		assert(json_is_object(res.meta));
		assert(res.out > p && res.out <= p + n);
		assert(res.out + res.n == p + n);
		assert(res.out[-1] == '\n');
		if (res.zstd) {
			assert(res.raw_len <= HTTP_RESULT_MAX);
			assert(res.id && vd_id_valid(res.id));
		} else {
			assert(res.raw_len == res.n);
		}
		json_decref(res.meta);
	}
	vd_buf_release(&why);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct vd_buf why = VD_BUF_INIT(4096);
	size_t off = 0, len, count = 0;

	/* The whole body as one PUT /v1/results/<lease> body. */
	one_result(body, size);

	/* The body as POST /v1/results cuts it: all of it first. */
	while (off < size && count < HTTP_RESULTS_COUNT_MAX) {
		if (http_results_frame_next(&len, &why, body + off, size - off, count)) {
			assert(why.len > 0);
			break;
		}
		assert(len > 0 && len <= size - off);
		one_result(body + off, len);
		off += len;
		count++;
	}
	assert(off <= size);
	vd_buf_release(&why);
	return 0;
}
