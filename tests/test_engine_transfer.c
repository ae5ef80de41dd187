/*
 * test_engine_transfer.c - compressed transfer at the engine (docs/protocol.md,
 * "GET /v1/chunks/<chunk-id>", "PUT /v1/results/<lease>"): a text chunk is
 * handed out as the store's zstd frame, which decodes to the chunk (and the
 * raw read gives the same bytes); a random chunk as its raw bytes. Results
 * that come as frames are taken, read back as their raw bytes and kept
 * compressed; raw results (an older executor) still are; a frame that is
 * not the output it claims (other bytes, another length, cut short, a bad
 * out_id) is refused with -EINVAL and keeps nothing, so the good one is
 * still taken after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "zframe.h"

struct fx {
	char dir[64];
	vd_engine *e;
	struct vd_key key;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-transfer-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 5000, .chunk_avg = 65536 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static void reg(struct fx *f, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", who, "level", 1, "slots", 64);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_register(&reply, &why, f->e, req), 0);
	assert_int_equal(vd_key_from_hex(&f->key, json_string_value(json_object_get(reply,
										 "hash_key"))), 0);
	/* It says that it takes zstd results. */
	json_t *enc = json_object_get(reply, "result_encodings");
	assert_int_equal(json_array_size(enc), 1);
	assert_string_equal(json_string_value(json_array_get(enc, 0)), "zstd");
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&why);
}

static json_t *lease(vd_engine *e, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", 64, "wait_ms", 0);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	int rc = vd_engine_api_lease(&reply, &why, e, req);
	json_decref(req);
	vd_buf_release(&why);
	if (rc == -EAGAIN)
		return NULL;
	assert_int_equal(rc, 0);
	return reply;
}

static void wait_status(vd_engine *e, const char *task, const char *id, const char *word)
{
	struct vd_buf st = VD_BUF_INIT(4096);
	for (int i = 0; i < 500; i++) {
		vd_buf_reset(&st);
		assert_int_equal(vd_engine_render(&st, e, task, id, VD_GEN_STATUS), 0);
		if (!strncmp(vd_buf_cstr(&st), word, strlen(word))) {
			vd_buf_release(&st);
			return;
		}
		usleep(10000);
	}
	fail_msg("status stayed '%s', wanted %s", vd_buf_cstr(&st), word);
}

/* n bytes of text (several times compressible), in lines. */
static char *text(size_t n)
{
	static const char *w[] = { "ba", "kelo", "mipu", "zorga", "ti", "vensa", "lu", "dapo" };
	char *p = malloc(n);
	unsigned s = 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		p[i] = (s >> 16) % 13 == 0 ? '\n' : w[(s >> 20) % 8][0];
	}
	p[n - 1] = '\n';
	return p;
}

static char *noise(size_t n)
{
	char *p = malloc(n);
	unsigned long long x = 88172645463325252ull;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (char)(x >> 32);
	}
	p[n - 1] = '\n';
	return p;
}

static void submit(struct vd_version_info *vi, vd_engine *e, const char *task,
		   const char *p, size_t n)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	char code[VD_ID_SIZE], path[] = "/tmp/vd-test-transfer-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, p, n), 0);
	assert_int_equal(vd_engine_task_create(e, task), 0);
	assert_int_equal(vd_engine_config_write(&why, e, task, "unit_size = 128K\n", 17), 0);
	assert_int_equal(vd_engine_function_write(code, e, task, "#!/bin/sh\n", 10), 1);
	assert_int_equal(vd_engine_submit_file(vi, &why, e, task, "d", NULL, fd), 1);
	close(fd);
	vd_buf_release(&why);
}

/* The unit's input, read as the executor reads it: stored bytes,
 * decompressed where they are frames; *frames counts those. */
static void unit_input(struct vd_buf *in, size_t *frames, struct fx *f, const json_t *l)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	json_t *c;
	size_t i;
	json_array_foreach(json_object_get(l, "chunks"), i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		uint64_t len = (uint64_t)json_integer_value(json_object_get(c, "len"));
		struct vd_buf st = VD_BUF_INIT(1 << 24), raw = VD_BUF_INIT(1 << 24);
		char got[VD_ID_SIZE];
		uint64_t raw_len = 0, dec = 0;
		bool zstd = false;

		assert_int_equal(vd_engine_api_chunk_stored(&st, &zstd, &raw_len, &why, f->e, id), 0);
		assert_int_equal(raw_len, len);
		assert_int_equal(vd_engine_api_chunk(&raw, &why, f->e, id), 0);
		assert_int_equal(raw.len, len);
		if (zstd) {
			(*frames)++;
			assert_true(st.len < len);
			assert_int_equal(vd_zframe_id(got, &dec, &f->key, st.data, st.len, len), 0);
			assert_int_equal(dec, len);
		} else {
			assert_memory_equal(st.data, raw.data, len);
			vd_id_of(got, &f->key, st.data, st.len);
		}
		assert_string_equal(got, id);
		assert_int_equal(vd_buf_add(in, raw.data, raw.len), 0);
		vd_buf_release(&st);
		vd_buf_release(&raw);
	}
	vd_buf_release(&why);
}

/* Text chunks go out as frames, random ones raw; both are the chunk. */
static void test_chunks_as_stored(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vt, vr;
	size_t n = 1u << 20, frames_text = 0, frames_noise = 0, chunks_text = 0;
	char *t = text(n), *r = noise(n);

	submit(&vt, f->e, "t", t, n);
	submit(&vr, f->e, "r", r, n);
	reg(f, "ex");
	json_t *l;
	while ((l = lease(f->e, "ex"))) {
		json_t *one;
		size_t i;
		json_array_foreach(json_object_get(l, "leases"), i, one) {
			struct vd_buf in = VD_BUF_INIT(1 << 24);
			bool is_text = !strcmp(json_string_value(json_object_get(one, "task")), "t");
			unit_input(&in, is_text ? &frames_text : &frames_noise, f, one);
			if (is_text)
				chunks_text += json_array_size(json_object_get(one, "chunks"));
			vd_buf_release(&in);
		}
		json_decref(l);
	}
	assert_true(chunks_text > 4);
	assert_int_equal(frames_text, chunks_text);
	assert_int_equal(frames_noise, 0);
	/* Not valid IDs: refused before the store. */
	struct vd_buf out = VD_BUF_INIT(1024), why = VD_BUF_INIT(1024);
	uint64_t raw_len;
	bool zstd;
	assert_int_equal(vd_engine_api_chunk_stored(&out, &zstd, &raw_len, &why, f->e, "nope"),
			 -EINVAL);
	assert_int_equal(vd_engine_api_chunk_stored(&out, &zstd, &raw_len, &why, f->e,
						    "0123456789abcdef0123456789abcdef"), -ENOENT);
	vd_buf_release(&out);
	vd_buf_release(&why);
	free(t);
	free(r);
}

static int put_zstd(struct fx *f, const json_t *l, const void *frame, size_t n, size_t outlen,
		    const char *id)
{
	json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", 0, "ms", 1, "stderr", "");
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	int rc = vd_engine_api_result_zstd(&reply, &why, f->e,
					   json_string_value(json_object_get(l, "lease")), meta,
					   frame, n, outlen, id);
	if (rc == -EINVAL)
		assert_non_null(strstr(vd_buf_cstr(&why), "out_id"));
	json_decref(meta);
	json_decref(reply);
	vd_buf_release(&why);
	return rc;
}

static int put_raw(struct fx *f, const json_t *l, const void *p, size_t n)
{
	json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", 0, "ms", 1, "stderr", "");
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	int rc = vd_engine_api_result(&reply, &why, f->e,
				      json_string_value(json_object_get(l, "lease")), meta, p, n);
	json_decref(meta);
	json_decref(reply);
	vd_buf_release(&why);
	return rc;
}

/* Units answered with frames (and every other one raw): the run's result
 * is the outputs, and the framed ones are kept compressed. Bad frames are
 * refused first. */
static void test_results_as_frames(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	size_t n = 1u << 20, units = 0, u = 0;
	char *t = text(n);
	struct vd_buf want = VD_BUF_INIT(1 << 24);
	bool bad_tried = false;

	submit(&vi, f->e, "up", t, n);
	reg(f, "ex");
	/* Outputs in unit order, for the result (reduce = concat). */
	struct vd_buf outs[64];
	for (int i = 0; i < 64; i++)
		vd_buf_init(&outs[i], 1 << 24);
	json_t *l;
	while ((l = lease(f->e, "ex"))) {
		json_t *one;
		size_t i;
		json_array_foreach(json_object_get(l, "leases"), i, one) {
			struct vd_buf in = VD_BUF_INIT(1 << 24), z = VD_BUF_INIT(1 << 24);
			size_t frames = 0, unit = (size_t)json_integer_value(json_object_get(one, "unit"));
			char id[VD_ID_SIZE];

			units = (size_t)json_integer_value(json_object_get(one, "units"));
			assert_true(units <= 64);
			unit_input(&in, &frames, f, one);
			for (size_t j = 0; j < in.len; j++)
				if (in.data[j] >= 'a' && in.data[j] <= 'z')
					in.data[j] -= 32;
			assert_int_equal(vd_buf_add(&outs[unit], in.data, in.len), 0);
			vd_id_of(id, &f->key, in.data, in.len);
			assert_int_equal(vd_zframe_compress(&z, in.data, in.len, 3), 1);
			if (!bad_tried) {
				struct vd_buf other = VD_BUF_INIT(1 << 24);
				char oid[VD_ID_SIZE];

				bad_tried = true;
				/* A frame of other bytes under this output's ID. */
				assert_int_equal(vd_zframe_compress(&other, t, in.len, 3), 1);
				assert_int_equal(put_zstd(f, one, other.data, other.len, in.len, id),
						 -EINVAL);
				/* The right frame, the wrong length (either way). */
				assert_int_equal(put_zstd(f, one, z.data, z.len, in.len - 1, id), -EINVAL);
				assert_int_equal(put_zstd(f, one, z.data, z.len, in.len + 1, id), -EINVAL);
				/* Cut short. */
				assert_int_equal(put_zstd(f, one, z.data, z.len - 3, in.len, id), -EINVAL);
				/* Raw bytes called a frame. */
				assert_int_equal(put_zstd(f, one, in.data, in.len, in.len, id), -EINVAL);
				/* Another output's ID. */
				vd_id_of(oid, &f->key, t, in.len);
				assert_int_equal(put_zstd(f, one, z.data, z.len, in.len, oid), -EINVAL);
				assert_int_equal(put_zstd(f, one, z.data, z.len, in.len, "xyz"), -EINVAL);
				vd_buf_release(&other);
			}
			if (u++ % 2)
				assert_int_equal(put_raw(f, one, in.data, in.len), 0);
			else
				assert_int_equal(put_zstd(f, one, z.data, z.len, in.len, id), 0);
			/* Taken once. */
			assert_int_equal(put_zstd(f, one, z.data, z.len, in.len, id), -ESTALE);
			vd_buf_release(&in);
			vd_buf_release(&z);
		}
		json_decref(l);
	}
	assert_true(units > 3);
	assert_int_equal(u, units);
	wait_status(f->e, "up", vi.data_id, "done");
	for (size_t i = 0; i < units; i++)
		assert_int_equal(vd_buf_add(&want, outs[i].data, outs[i].len), 0);
	assert_int_equal(want.len, n);

	/* The result reads back as the raw outputs; its chunks are kept as
	 * frames (the framed outputs as they came, the raw ones compressed
	 * by the store). */
	struct vd_file *res = NULL;
	struct vd_buf got = VD_BUF_INIT(1 << 24), why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_result_get(&res, f->e, "up", vi.data_id), 0);
	for (size_t i = 0; i < res->n; i++) {
		struct vd_buf st = VD_BUF_INIT(1 << 24);
		uint64_t raw_len;
		bool zstd = false;

		assert_int_equal(vd_engine_chunk_read(&got, f->e, res->ext[i].id), 0);
		assert_int_equal(vd_engine_api_chunk_stored(&st, &zstd, &raw_len, &why, f->e,
							    res->ext[i].id), 0);
		assert_true(zstd);
		vd_buf_release(&st);
	}
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, want.data, n);
	vd_file_free(res);
	for (int i = 0; i < 64; i++)
		vd_buf_release(&outs[i]);
	vd_buf_release(&want);
	vd_buf_release(&got);
	vd_buf_release(&why);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_chunks_as_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results_as_frames, setup, teardown),
	};
	vd_log_init("test_engine_transfer", VD_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
