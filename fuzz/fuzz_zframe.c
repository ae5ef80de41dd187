/*
 * fuzz_zframe.c - zstd frames as they come over the wire (lib/zframe.c):
 * a result's output from an executor, checked by the daemon with
 * vd_zframe_id before it keeps it, and a chunk from the daemon, checked by
 * the executor the same way.
 *
 * Two halves. The input as a frame from outside: decoding under a cap of
 * 64 KiB either fails (-EBADMSG, -ENOMEM) or gives at most the cap, the
 * same length by vd_zframe_each and vd_zframe_id, and a skip/len window
 * inside it hands over exactly len bytes. The input as raw bytes: what
 * vd_zframe_compress makes of it decodes back to the same bytes and ID.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "zframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (64u << 10)

struct sink {
	uint64_t got;
	const uint8_t *expect;   /* NULL: do not compare */
	uint64_t expect_n;
};

static int sink_take(void *ctx, const void *p, size_t n)
{
	struct sink *s = ctx;

	if (s->expect) {
		assert(s->got + n <= s->expect_n);
		assert(!memcmp(s->expect + s->got, p, n));
	}
	s->got += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vd_key key;   /* all zero: any fixed key will do */
	struct vd_buf frame = VD_BUF_INIT(SIZE_MAX / 2);
	struct sink s = { 0, NULL, 0 };
	char id[VD_ID_SIZE], id2[VD_ID_SIZE];
	uint64_t raw = 0, raw2 = 0;
	int rc, rc2;

	/* The input as a frame from outside. */
	rc = vd_zframe_each(&raw, data, size, 0, UINT64_MAX, CAP, sink_take, &s);
	rc2 = vd_zframe_id(id, &raw2, &key, data, size, CAP);
	assert(rc == rc2);
	if (rc) {
		assert(rc == -EBADMSG || rc == -ENOMEM);
	} else {
		assert(raw <= CAP && raw == s.got && raw == raw2);
		if (raw) {
			uint64_t skip = raw / 3, len = raw - skip - raw / 5;

			s.got = 0;
			assert(vd_zframe_each(NULL, data, size, skip, len, CAP, sink_take, &s) == 0);
			assert(s.got == len);
		}
	}

	/* The input as raw bytes: compressed, then decoded back. */
	rc = vd_zframe_compress(&frame, data, size, 1);
	assert(rc == 0 || rc == 1);
	if (rc == 1) {
		s = (struct sink){ 0, data, size };
		assert(vd_zframe_each(&raw, frame.data, frame.len, 0, UINT64_MAX, size, sink_take,
				      &s) == 0);
		assert(raw == size && s.got == size);
		vd_id_of(id, &key, data, size);
		assert(vd_zframe_id(id2, &raw2, &key, frame.data, frame.len, size) == 0);
		assert(raw2 == size && !memcmp(id, id2, VD_ID_SIZE));
	}
	vd_buf_release(&frame);
	return 0;
}
