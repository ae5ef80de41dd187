/*
 * test_engine_upload.c - chunk-level upload on the engine, without HTTP:
 * an uploaded file is the version a submission of the same bytes makes
 * (whatever the client's cuts), bad frames and manifests store nothing, and
 * gc keeps fresh uploads but sweeps stale ones with their fingerprints.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/crypto.h>

#include "chunker.h"
#include "engine.h"

struct fx {
	char dir[64];
	vd_engine *e;
};

static int fx_open(void **state, int64_t keep_ms)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-upload-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096,
				    .upload_keep_ms = keep_ms };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	assert_int_equal(vd_engine_task_create(f->e, "up"), 0);
	assert_int_equal(vd_engine_task_create(f->e, "cp"), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return fx_open(state, 0);
}

static int setup_short_keep(void **state)
{
	return fx_open(state, 1);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static char *make_text(size_t lines, unsigned seed, size_t *n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	for (size_t i = 0; i < lines; i++)
		vd_buf_addf(&b, "%u line %zu of the text, word%zu\n", seed, i, i % 97);
	return vd_buf_detach(&b, n);
}

static void fp_of(char out[VD_FP_SIZE], const void *p, size_t n)
{
	unsigned char d[32];
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, d), 0);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The pieces a client makes: with the engine's chunker (step 0), or
 * every `step` bytes regardless of lines. */
struct pieces {
	size_t n, off[4096], len[4096];
	char fp[4096][VD_FP_SIZE];
};

static void cut(struct pieces *ps, vd_engine *e, const char *p, size_t n, size_t step)
{
	json_t *info = NULL;
	struct vd_chunker_params prm;
	assert_int_equal(vd_engine_api_upload_info(&info, e), 0);
	json_t *c = json_object_get(info, "chunking");
	prm.min_size = (size_t)json_integer_value(json_object_get(c, "min"));
	prm.avg_size = (size_t)json_integer_value(json_object_get(c, "avg"));
	prm.max_size = (size_t)json_integer_value(json_object_get(c, "max"));
	prm.hard_max = (size_t)json_integer_value(json_object_get(c, "hard_max"));
	json_decref(info);
	ps->n = 0;
	for (size_t pos = 0; pos < n;) {
		size_t k = 0;
		if (step)
			k = n - pos < step ? n - pos : step;
		else
			assert_int_equal(vd_chunker_cut(&k, (const unsigned char *)p + pos, n - pos,
							true, &prm), 0);
		assert_true(k > 0 && ps->n < 4096);
		ps->off[ps->n] = pos;
		ps->len[ps->n] = k;
		fp_of(ps->fp[ps->n], p + pos, k);
		ps->n++;
		pos += k;
	}
}

static json_t *fps_json(const struct pieces *ps)
{
	json_t *a = json_array();
	for (size_t i = 0; i < ps->n; i++)
		json_array_append_new(a, json_string(ps->fp[i]));
	return a;
}

/* Upload every piece in one request; returns the engine's result. */
static int send_all(vd_engine *e, const struct pieces *ps, const char *p)
{
	struct vd_buf body = VD_BUF_INIT((size_t)1 << 28), why = VD_BUF_INIT(4096);
	json_t *reply = NULL;
	for (size_t i = 0; i < ps->n; i++) {
		vd_buf_addf(&body, "%s %zu\n", ps->fp[i], ps->len[i]);
		vd_buf_add(&body, p + ps->off[i], ps->len[i]);
	}
	int rc = vd_engine_api_chunks_put(&reply, &why, e, body.data, body.len);
	json_decref(reply);
	vd_buf_release(&body);
	vd_buf_release(&why);
	return rc;
}

static int commit(char data_id[VD_ID_SIZE], json_t **missing, vd_engine *e, const char *name,
		  const struct pieces *ps, size_t size)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	json_t *reply = NULL;
	json_t *body = json_pack("{s:s, s:s, s:I, s:o}", "name", name, "kind", "file", "size",
				 (json_int_t)size, "chunks", fps_json(ps));
	int rc = vd_engine_api_submit(&reply, &why, e, "up", "alice", body);
	if (rc == 0)
		memcpy(data_id, json_string_value(json_object_get(reply, "data_id")), VD_ID_SIZE);
	if (missing)
		*missing = json_incref(json_object_get(reply, "missing"));
	json_decref(reply);
	json_decref(body);
	vd_buf_release(&why);
	return rc;
}

static void submit_cp(char data_id[VD_ID_SIZE], vd_engine *e, const char *text, size_t n)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	struct vd_version_info vi;
	char path[] = "/tmp/vd-test-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, text, n), 0);
	assert_true(vd_engine_submit_file(&vi, &why, e, "cp", "x.txt", NULL, fd) >= 0);
	memcpy(data_id, vi.data_id, VD_ID_SIZE);
	close(fd);
	vd_buf_release(&why);
}

static size_t nmissing(vd_engine *e, const struct pieces *ps)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	json_t *reply = NULL, *body = json_pack("{s:o}", "fingerprints", fps_json(ps));
	assert_int_equal(vd_engine_api_chunks_missing(&reply, &why, e, body), 0);
	size_t n = json_array_size(json_object_get(reply, "missing"));
	json_decref(reply);
	json_decref(body);
	vd_buf_release(&why);
	return n;
}

static void test_same_version_as_submission(void **state)
{
	struct fx *f = *state;
	static struct pieces ps;
	size_t n;
	char *text = make_text(20000, 3, &n);
	char up[VD_ID_SIZE], cp[VD_ID_SIZE], odd[VD_ID_SIZE];

	cut(&ps, f->e, text, n, 0);
	assert_true(ps.n > 10);
	assert_int_equal(nmissing(f->e, &ps), ps.n);
	assert_int_equal(send_all(f->e, &ps, text), 0);
	assert_int_equal(nmissing(f->e, &ps), 0);
	assert_int_equal(commit(up, NULL, f->e, "a.txt", &ps, n), 0);
	submit_cp(cp, f->e, text, n);
	assert_string_equal(up, cp);

	/* Cuts that split lines: the daemon re-cuts, the version is the same. */
	cut(&ps, f->e, text, n, 1000);
	assert_int_equal(send_all(f->e, &ps, text), 0);
	assert_int_equal(commit(odd, NULL, f->e, "b.txt", &ps, n), 0);
	assert_string_equal(odd, cp);

	struct vd_version_info vi;
	assert_int_equal(vd_engine_version_get(&vi, f->e, "up", up), 0);
	free(text);
}

static void test_bad_input(void **state)
{
	struct fx *f = *state;
	static struct pieces ps;
	struct vd_buf why = VD_BUF_INIT(4096);
	json_t *reply = NULL, *missing = NULL;
	char id[VD_ID_SIZE];
	size_t n;
	char *text = make_text(3000, 5, &n);
	cut(&ps, f->e, text, n, 0);

	/* A chunk whose bytes are not its fingerprint's: refused, and nothing
	 * of its request stored, not even the good chunk before it. */
	char frames[256], good[VD_FP_SIZE];
	fp_of(good, "abc\n", 4);
	int k = snprintf(frames, sizeof frames, "%s 4\nabc\n%s 4\nabc\n", good, ps.fp[0]);
	assert_int_equal(vd_engine_api_chunks_put(&reply, &why, f->e, frames, (size_t)k), -EINVAL);
	assert_non_null(strstr(vd_buf_cstr(&why), "do not match"));
	struct pieces one = { .n = 1 };
	memcpy(one.fp[0], good, VD_FP_SIZE);
	assert_int_equal(nmissing(f->e, &one), 1);

	/* Short bodies and bad heads. */
	const char *bad[] = { "abc 4\nabc\n", "", "x", NULL };
	for (int i = 0; bad[i]; i++) {
		vd_buf_reset(&why);
		assert_int_equal(vd_engine_api_chunks_put(&reply, &why, f->e, bad[i], strlen(bad[i])),
				 -EINVAL);
	}
	k = snprintf(frames, sizeof frames, "%s 9\nabc\n", good);
	assert_int_equal(vd_engine_api_chunks_put(&reply, &why, f->e, frames, (size_t)k), -EINVAL);

	/* A manifest of chunks not uploaded: -ESTALE with each listed once. */
	assert_int_equal(commit(id, &missing, f->e, "m.txt", &ps, n), -ESTALE);
	assert_int_equal(json_array_size(missing), ps.n);
	json_decref(missing);

	/* A size that is not the chunks'. */
	assert_int_equal(send_all(f->e, &ps, text), 0);
	assert_int_equal(commit(id, NULL, f->e, "m.txt", &ps, n + 1), -EINVAL);

	/* Tree paths. */
	const char *paths[] = { "/abs", "a/../b", "..", "a//b", "a/", "", "a\tb", NULL };
	for (int i = 0; paths[i]; i++) {
		json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:I, s:o}]}", "name", "t", "kind",
					 "tree", "files", "path", paths[i], "size", (json_int_t)n,
					 "chunks", fps_json(&ps));
		vd_buf_reset(&why);
		assert_int_equal(vd_engine_api_submit(&reply, &why, f->e, "up", "alice", body),
				 -EINVAL);
		json_decref(body);
	}
	/* A path below a file, and a path twice. */
	json_t *body = json_pack("{s:s, s:s, s:[{s:s, s:I, s:o}, {s:s, s:s, s:s}]}", "name", "t",
				 "kind", "tree", "files", "path", "a", "size", (json_int_t)n, "chunks",
				 fps_json(&ps), "path", "a/b", "type", "symlink", "target", "x");
	assert_int_equal(vd_engine_api_submit(&reply, &why, f->e, "up", "alice", body), -EINVAL);
	json_decref(body);
	struct vd_strv v = { 0 };
	assert_int_equal(vd_engine_version_list(&v, f->e, "up"), 0);
	assert_int_equal(v.n, 0);
	vd_strv_release(&v);
	vd_buf_release(&why);
	free(text);
}

static void test_gc_keeps_fresh_uploads(void **state)
{
	struct fx *f = *state;
	static struct pieces ps;
	struct vd_buf why = VD_BUF_INIT(4096);
	json_t *reply = NULL;
	size_t n;
	char *text = make_text(5000, 9, &n);
	cut(&ps, f->e, text, n, 0);
	assert_int_equal(send_all(f->e, &ps, text), 0);
	assert_int_equal(vd_engine_api_gc(&reply, &why, f->e, NULL), 0);
	assert_int_equal(json_integer_value(json_object_get(reply, "chunks_swept")), 0);
	json_decref(reply);
	assert_int_equal(nmissing(f->e, &ps), 0);
	char id[VD_ID_SIZE];
	assert_int_equal(commit(id, NULL, f->e, "late.txt", &ps, n), 0);
	vd_buf_release(&why);
	free(text);
}

static void test_gc_sweeps_stale_uploads(void **state)
{
	struct fx *f = *state;
	static struct pieces ps;
	struct vd_buf why = VD_BUF_INIT(4096);
	json_t *reply = NULL;
	size_t n;
	char *text = make_text(5000, 11, &n);
	cut(&ps, f->e, text, n, 0);
	assert_int_equal(send_all(f->e, &ps, text), 0);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	assert_int_equal(vd_engine_api_gc(&reply, &why, f->e, NULL), 0);
	assert_int_equal((size_t)json_integer_value(json_object_get(reply, "chunks_swept")), ps.n);
	assert_int_equal((size_t)json_integer_value(json_object_get(reply, "fingerprints_dropped")),
			 ps.n);
	json_decref(reply);
	assert_int_equal(nmissing(f->e, &ps), ps.n);
	/* Sent again, they commit. */
	assert_int_equal(send_all(f->e, &ps, text), 0);
	char id[VD_ID_SIZE];
	assert_int_equal(commit(id, NULL, f->e, "again.txt", &ps, n), 0);
	vd_buf_release(&why);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_same_version_as_submission, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_keeps_fresh_uploads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_sweeps_stale_uploads, setup_short_keep,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
