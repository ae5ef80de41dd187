/*
 * test_engine.c - the engine without FUSE or HTTP: submit, lease, answer,
 * and read back, as the view and the executor protocol would.
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

struct fx {
	char dir[64];
	vd_engine *e;
};

static int open_engine(struct fx *f)
{
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300,
				    .chunk_avg = 4096 };
	return vd_engine_open(&f->e, &o);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(open_engine(f), 0);
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

/* A temp file holding text; returns an fd positioned anywhere. */
static int temp_fd(const char *text, size_t n)
{
	char path[] = "/tmp/vd-test-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, text, n), 0);
	return fd;
}

/* Read a whole file of extents through chunk reads. */
static void read_file(struct vd_buf *out, vd_engine *e, const struct vd_file *f)
{
	for (size_t i = 0; i < f->n; i++)
		assert_int_equal(vd_engine_chunk_read(out, e, f->ext[i].id), 0);
	assert_int_equal(out->len, f->size);
}

static json_t *lease(vd_engine *e, const char *who, int max, int wait)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", max, "wait_ms", wait);
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

static void reg(vd_engine *e, const char *who, int level)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", who, "level", level, "slots", 4);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_register(&reply, &why, e, req), 0);
	assert_non_null(json_object_get(reply, "hash_key"));
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&why);
}

/* Play executor: the unit's input, upper-cased, as its output. */
static int answer(vd_engine *e, const json_t *l, int exit_code)
{
	struct vd_buf in = VD_BUF_INIT(1 << 26), why = VD_BUF_INIT(1024);
	json_t *chunks = json_object_get(l, "chunks"), *c;
	size_t i;
	json_array_foreach(chunks, i, c)
		assert_int_equal(vd_engine_api_chunk(&in, &why, e,
				 json_string_value(json_object_get(c, "id"))), 0);
	size_t skip = (size_t)json_integer_value(json_object_get(l, "skip"));
	for (size_t j = 0; j < in.len; j++)
		if (in.data[j] >= 'a' && in.data[j] <= 'z')
			in.data[j] -= 32;
	json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", exit_code, "ms", 1, "stderr",
				 exit_code ? "boom\n" : "");
	json_t *reply = NULL;
	int rc = vd_engine_api_result(&reply, &why, e,
		json_string_value(json_object_get(l, "lease")), meta,
		in.data + skip, in.len - skip);
	json_decref(meta);
	json_decref(reply);
	vd_buf_release(&in);
	vd_buf_release(&why);
	return rc;
}

static void wait_status(vd_engine *e, const char *task, const char *id,
			const char *word, struct vd_buf *st)
{
	for (int i = 0; i < 500; i++) {
		vd_buf_reset(st);
		assert_int_equal(vd_engine_render(st, e, task, id, VD_GEN_STATUS), 0);
		if (!strncmp(vd_buf_cstr(st), word, strlen(word)))
			return;
		usleep(10000);
	}
	fail_msg("status stayed '%s', wanted %s", vd_buf_cstr(st), word);
}

static char *make_text(size_t lines, size_t *n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	for (size_t i = 0; i < lines; i++)
		vd_buf_addf(&b, "line %zu of the text, word%zu\n", i, i % 97);
	return vd_buf_detach(&b, n);
}

static void test_submit_run_result(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info vi, vi2;
	/* st also takes the run's meta.json, whose size depends on how the
	 * units fell among leases (4 KiB was too little under ASan once). */
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(1 << 20), got = VD_BUF_INIT(1 << 26);
	char code[VD_ID_SIZE];
	size_t n;
	char *text = make_text(20000, &n);

	assert_int_equal(vd_engine_task_create(e, "up"), 0);
	assert_int_equal(vd_engine_task_create(e, "up"), -EEXIST);
	assert_int_equal(vd_engine_task_create(e, "a/b"), -EINVAL);
	const char *cfg = "unit_size = 16K\n";
	assert_int_equal(vd_engine_config_write(&why, e, "up", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "up", "bogus = 1\n", 10), -EINVAL);
	assert_non_null(strstr(vd_buf_cstr(&why), "line 1"));

	/* Data before code: queued, waiting for a function. */
	int fd = temp_fd(text, n);
	vd_buf_reset(&why);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "up", "t.txt", NULL, fd), 1);
	assert_int_equal(vi.size, n);
	wait_status(e, "up", vi.data_id, "queued: waiting for a function", &st);
	/* The same content again: no new version. */
	assert_int_equal(vd_engine_submit_file(&vi2, &why, e, "up", "again.txt", NULL, fd), 0);
	assert_string_equal(vi.data_id, vi2.data_id);
	close(fd);

	assert_int_equal(vd_engine_function_write(code, e, "up", "#!/bin/sh\n", 10), 1);
	assert_int_equal(vd_engine_function_write(code, e, "up", "#!/bin/sh\n", 10), 0);
	wait_status(e, "up", vi.data_id, "queued", &st);

	/* Unregistered executors get nothing. */
	json_t *req = json_pack("{s:s}", "executor", "ghost"), *reply = NULL;
	assert_int_equal(vd_engine_api_lease(&reply, &why, e, req), -EPERM);
	json_decref(req);

	reg(e, "ex1", 1);
	size_t units = 0;
	json_t *l;
	while ((l = lease(e, "ex1", 3, 0))) {
		json_t *arr = json_object_get(l, "leases"), *one;
		size_t i;
		json_array_foreach(arr, i, one) {
			units = (size_t)json_integer_value(json_object_get(one, "units"));
			assert_int_equal(answer(e, one, 0), 0);
			/* A second result for the same unit is late. */
			assert_int_equal(answer(e, one, 0), -ESTALE);
		}
		json_decref(l);
	}
	assert_true(units > 3);
	wait_status(e, "up", vi.data_id, "done", &st);

	struct vd_file *res = NULL;
	assert_int_equal(vd_engine_result_get(&res, e, "up", vi.data_id), 0);
	read_file(&got, e, res);
	for (size_t j = 0; j < n; j++)
		if (text[j] >= 'a' && text[j] <= 'z')
			text[j] -= 32;
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, text, n);
	vd_file_free(res);

	/* Everything memoized: a second task with the same code and data
	 * finishes without any executor. */
	vd_buf_reset(&st);
	assert_int_equal(vd_engine_render(&st, e, "up", vi.data_id, VD_GEN_META), 0);
	assert_non_null(strstr(vd_buf_cstr(&st), "\"executors\""));
	vd_buf_reset(&st);
	assert_int_equal(vd_engine_render(&st, e, "up", vi.data_id, VD_GEN_LOG), 0);
	assert_non_null(strstr(vd_buf_cstr(&st), "run done"));

	free(text);
	vd_buf_release(&why);
	vd_buf_release(&st);
	vd_buf_release(&got);
}

static void test_failure_and_expiry(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(4096);
	char code[VD_ID_SIZE];
	const char *cfg = "retries = 2\nreduce = sum\n";
	assert_int_equal(vd_engine_task_create(e, "bad"), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "bad", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, e, "bad", "x", 1), 1);
	int fd = temp_fd("a\nb\n", 4);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "bad", "d", NULL, fd), 1);
	close(fd);
	reg(e, "ex2", 1);

	/* A lease left to expire comes back. */
	json_t *l = lease(e, "ex2", 1, 1000);
	assert_non_null(l);
	json_decref(l);
	usleep(700 * 1000);
	l = lease(e, "ex2", 1, 2000);
	assert_non_null(l);
	/* Two failed attempts fail the run. */
	assert_int_equal(answer(e, json_array_get(json_object_get(l, "leases"), 0), 1), 0);
	json_decref(l);
	l = lease(e, "ex2", 1, 2000);
	assert_non_null(l);
	assert_int_equal(answer(e, json_array_get(json_object_get(l, "leases"), 0), 3), 0);
	json_decref(l);
	wait_status(e, "bad", vi.data_id, "failed", &st);
	assert_non_null(strstr(vd_buf_cstr(&st), "exit 3"));
	assert_non_null(strstr(vd_buf_cstr(&st), "boom"));
	vd_buf_release(&why);
	vd_buf_release(&st);
}

static void test_sum_and_restart(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(4096), got = VD_BUF_INIT(1 << 20);
	char code[VD_ID_SIZE];
	const char *cfg = "reduce = sum\n";
	assert_int_equal(vd_engine_task_create(f->e, "sum"), 0);
	assert_int_equal(vd_engine_config_write(&why, f->e, "sum", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, f->e, "sum", "x", 1), 1);
	const char *rows = "b,1,2\na,5\nb,3,4.5\nx/y,c,7\n";
	int fd = temp_fd(rows, strlen(rows));
	assert_int_equal(vd_engine_submit_file(&vi, &why, f->e, "sum", "rows", NULL, fd), 1);
	close(fd);
	/* Restart with the run queued: it must come back. */
	vd_engine_close(f->e);
	assert_int_equal(open_engine(f), 0);
	vd_engine *e = f->e;
	wait_status(e, "sum", vi.data_id, "queued", &st);
	reg(e, "ex3", 1);
	json_t *l = lease(e, "ex3", 1, 2000);
	assert_non_null(l);
	/* The identity function: upper-casing leaves these rows as they are
	 * but for the keys, so compare with upper-case keys. */
	assert_int_equal(answer(e, json_array_get(json_object_get(l, "leases"), 0), 0), 0);
	json_decref(l);
	wait_status(e, "sum", vi.data_id, "done", &st);
	struct vd_file *res = NULL;
	assert_int_equal(vd_engine_result_get(&res, e, "sum", vi.data_id), 0);
	read_file(&got, e, res);
	assert_string_equal(vd_buf_cstr(&got), "A,5\nB,4,6.5\nX/Y,C,7\n");
	vd_file_free(res);
	vd_buf_release(&why);
	vd_buf_release(&st);
	vd_buf_release(&got);
}

static void test_config_env(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(1024);
	char code[VD_ID_SIZE];
	assert_int_equal(vd_engine_task_create(e, "env"), 0);
	const char *bad[] = { "env.PATH = /x\n", "env.VDFS_UNIT = 3\n", "env.LD_AUDIT = x\n",
			      "env.9x = 1\n", "env.a-b = 1\n", "encoding = latin1\n" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		vd_buf_reset(&why);
		assert_int_equal(vd_engine_config_write(&why, e, "env", bad[i], strlen(bad[i])),
				 -EINVAL);
		assert_non_null(strstr(vd_buf_cstr(&why), "line 1"));
	}
	const char *cfg = "encoding = gb18030\nenv.LIMIT = 10 # seconds\nenv.MODE = fast\n";
	assert_int_equal(vd_engine_config_write(&why, e, "env", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, e, "env", "x", 1), 1);
	int fd = temp_fd("a\n", 2);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "env", "d", NULL, fd), 1);
	close(fd);
	reg(e, "ex4", 1);
	json_t *l = lease(e, "ex4", 1, 2000);
	assert_non_null(l);
	json_t *env = json_object_get(json_array_get(json_object_get(l, "leases"), 0), "env");
	assert_string_equal(json_string_value(json_object_get(env, "VDFS_ENCODING")), "gb18030");
	assert_string_equal(json_string_value(json_object_get(env, "LIMIT")), "10");
	assert_string_equal(json_string_value(json_object_get(env, "MODE")), "fast");
	json_decref(l);
	vd_buf_release(&why);
}

/* Run every queued unit of the engine with answer(). */
static void drain(vd_engine *e, const char *who)
{
	json_t *l;
	while ((l = lease(e, who, 8, 0))) {
		size_t i;
		json_t *one;
		json_array_foreach(json_object_get(l, "leases"), i, one)
			assert_int_equal(answer(e, one, 0), 0);
		json_decref(l);
	}
}

static void test_operator_api(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info va, vb, vr;
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(4096), res = VD_BUF_INIT(1 << 24);
	char code[VD_ID_SIZE];
	size_t n;
	char *text = make_text(20000, &n);
	const char *cfg = "unit_size = 16K\n";
	assert_int_equal(vd_engine_task_create(e, "a"), 0);
	assert_int_equal(vd_engine_task_create(e, "b"), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "a", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, e, "a", "up", 2), 1);
	reg(e, "ex5", 1);
	int fd = temp_fd(text, n);
	assert_int_equal(vd_engine_submit_file(&va, &why, e, "a", "t", NULL, fd), 1);
	close(fd);
	/* Change one line in the middle. */
	memcpy(text + n / 2 - (n / 2) % 64, "CHANGED", 7);
	fd = temp_fd(text, n);
	assert_int_equal(vd_engine_submit_file(&vb, &why, e, "a", "t", NULL, fd), 1);
	close(fd);
	drain(e, "ex5");
	wait_status(e, "a", va.data_id, "done", &st);
	wait_status(e, "a", vb.data_id, "done", &st);

	json_t *d = NULL;
	assert_int_equal(vd_engine_api_diff(&d, &why, e, va.data_id, vb.data_id), 0);
	json_t *units = json_object_get(d, "units"), *files = json_object_get(d, "files");
	assert_int_equal(json_integer_value(json_object_get(files, "changed")), 1);
	assert_true(json_integer_value(json_object_get(units, "added")) >= 1);
	assert_true(json_integer_value(json_object_get(units, "added")) <= 2);
	assert_true(json_integer_value(json_object_get(units, "shared")) >
		    json_integer_value(json_object_get(units, "added")));
	json_decref(d);
	assert_int_equal(vd_engine_api_diff(&d, &why, e, va.data_id,
					    "0123456789abcdef0123456789abcdef"), -ENOENT);

	/* b's result, submitted to task b, derives from a's run. */
	struct vd_file *rf = NULL;
	assert_int_equal(vd_engine_result_get(&rf, e, "a", vb.data_id), 0);
	read_file(&res, e, rf);
	fd = temp_fd(res.data, res.len);
	assert_int_equal(vd_engine_submit_file(&vr, &why, e, "b", "r.csv", NULL, fd), 1);
	close(fd);
	assert_string_equal(vr.data_id, rf->id);
	json_t *lin = NULL;
	assert_int_equal(vd_engine_api_lineage(&lin, &why, e, vb.data_id), 0);
	bool run_edge = false, same_edge = false;
	size_t i;
	json_t *ed;
	json_array_foreach(json_object_get(lin, "edges"), i, ed) {
		const char *from = json_string_value(json_object_get(ed, "from"));
		const char *to = json_string_value(json_object_get(ed, "to"));
		const char *kind = json_string_value(json_object_get(ed, "kind"));
		const char *c = json_string_value(json_object_get(ed, "code_id"));
		if (!strcmp(kind, "run") && !strcmp(from, vb.data_id) && !strcmp(to, rf->id))
			run_edge = c && !strcmp(c, code);
		if (!strcmp(kind, "same") && !strcmp(from, rf->id) && !strcmp(to, vr.data_id))
			same_edge = c && !strcmp(c, code);
	}
	assert_true(run_edge);
	assert_true(same_edge);
	json_decref(lin);

	json_t *v = NULL;
	assert_int_equal(vd_engine_api_version(&v, &why, e, rf->id), 0);
	assert_int_equal(json_array_size(json_object_get(v, "results")), 1);
	json_decref(v);
	json_t *du = NULL;
	assert_int_equal(vd_engine_api_du(&du, e), 0);
	json_t *store = json_object_get(du, "store");
	assert_true(json_integer_value(json_object_get(store, "stored")) <
		    json_integer_value(json_object_get(store, "logical")));
	json_decref(du);
	vd_file_free(rf);
	free(text);
	vd_buf_release(&why);
	vd_buf_release(&st);
	vd_buf_release(&res);
}

static void test_csv_and_empty(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info vi, ve;
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(4096), in = VD_BUF_INIT(1 << 24);
	char code[VD_ID_SIZE];
	const char *cfg = "format = csv\nunit_size = 8K\n";
	assert_int_equal(vd_engine_task_create(e, "csv"), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "csv", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, e, "csv", "c", 1), 1);
	struct vd_buf text = VD_BUF_INIT(1 << 24);
	vd_buf_adds(&text, "id,name,value\n");
	for (int i = 0; i < 30000; i++)
		vd_buf_addf(&text, "%d,row%d,%d\n", i, i % 91, i * 7);
	int fd = temp_fd(text.data, text.len);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "csv", "t.csv", NULL, fd), 1);
	close(fd);
	reg(e, "ex6", 1);
	/* Every unit's stdin starts with the header; the file's own header
	 * line is skipped in the first unit, so the rows add up exactly. */
	size_t units = 0;
	json_t *l;
	while ((l = lease(e, "ex6", 8, 0))) {
		size_t i;
		json_t *one;
		json_array_foreach(json_object_get(l, "leases"), i, one) {
			assert_string_equal(json_string_value(json_object_get(one, "header")),
					    "id,name,value\n");
			struct vd_buf u = VD_BUF_INIT(1 << 24);
			json_t *c;
			size_t j;
			json_array_foreach(json_object_get(one, "chunks"), j, c)
				assert_int_equal(vd_engine_api_chunk(&u, &why, e,
					json_string_value(json_object_get(c, "id"))), 0);
			size_t skip = (size_t)json_integer_value(json_object_get(one, "skip"));
			vd_buf_add(&in, u.data + skip, u.len - skip);
			vd_buf_release(&u);
			assert_int_equal(answer(e, one, 0), 0);
			units++;
		}
		json_decref(l);
	}
	assert_true(units > 1);
	assert_int_equal(in.len, text.len - strlen("id,name,value\n"));
	assert_memory_equal(in.data, text.data + strlen("id,name,value\n"), in.len);
	wait_status(e, "csv", vi.data_id, "done", &st);

	/* An empty file: a version with no units and an empty result. */
	fd = temp_fd("", 0);
	assert_int_equal(vd_engine_submit_file(&ve, &why, e, "csv", "empty", NULL, fd), 1);
	close(fd);
	assert_int_equal(ve.size, 0);
	wait_status(e, "csv", ve.data_id, "done", &st);
	struct vd_file *rf = NULL;
	assert_int_equal(vd_engine_result_get(&rf, e, "csv", ve.data_id), 0);
	assert_int_equal(rf->size, 0);
	vd_file_free(rf);
	vd_buf_release(&text);
	vd_buf_release(&in);
	vd_buf_release(&why);
	vd_buf_release(&st);
}

static void test_stream(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info vs, vf;
	struct vd_buf why = VD_BUF_INIT(1024), got = VD_BUF_INIT(1 << 26);
	size_t n;
	char *text = make_text(200000, &n);
	assert_int_equal(vd_engine_task_create(e, "s"), 0);
	assert_int_equal(vd_engine_task_create(e, "t"), 0);

	/* Odd-sized pieces, then a copy of the prefix half way. */
	vd_ingest *in = NULL;
	assert_int_equal(vd_engine_ingest_begin(&in, e, "s"), 0);
	size_t pos = 0, step = 1;
	while (pos < n) {
		size_t k = step < n - pos ? step : n - pos;
		assert_int_equal(vd_engine_ingest_write(in, text + pos, k), 0);
		pos += k;
		step = step * 3 % 200003 + 1;
		if (pos > n / 2 && pos - k <= n / 2) {
			char path[] = "/tmp/vd-test-copy-XXXXXX";
			int fd = mkstemp(path);
			unlink(path);
			assert_int_equal(vd_engine_ingest_copy_to(in, fd), 0);
			off_t sz = lseek(fd, 0, SEEK_END);
			assert_int_equal((size_t)sz, pos);
			char *back = malloc(pos);
			assert_int_equal(vd_pread_all(fd, back, pos, 0), 0);
			assert_memory_equal(back, text, pos);
			free(back);
			close(fd);
		}
	}
	assert_int_equal(vd_engine_ingest_size(in), n);
	assert_int_equal(vd_engine_ingest_seal(&vs, &why, in, "streamed"), 1);

	/* The same content through the fd path: the same version. */
	int fd = temp_fd(text, n);
	assert_int_equal(vd_engine_submit_file(&vf, &why, e, "t", "plain", NULL, fd), 1);
	close(fd);
	assert_string_equal(vs.data_id, vf.data_id);
	assert_int_equal(vf.stored, 0);   /* every chunk was stored by the stream */
	struct vd_manifest *m = NULL;
	assert_int_equal(vd_engine_manifest_get(&m, e, vs.data_id), 0);
	vd_buf_reset(&got);
	read_file(&got, e, &m->files[0]);
	assert_memory_equal(got.data, text, n);
	vd_manifest_free(m);

	/* An aborted stream leaves nothing behind. */
	text[10] = 'X';
	assert_int_equal(vd_engine_ingest_begin(&in, e, "s"), 0);
	assert_int_equal(vd_engine_ingest_write(in, text, n), 0);
	vd_engine_ingest_abort(in);
	struct vd_strv ids = { 0 };
	assert_int_equal(vd_engine_version_list(&ids, e, "s"), 0);
	assert_int_equal(ids.n, 1);
	vd_strv_release(&ids);
	assert_int_equal(vd_engine_ingest_begin(&in, e, "nope"), -ENOENT);
	free(text);
	vd_buf_release(&why);
	vd_buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_submit_run_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_operator_api, setup, teardown),
		cmocka_unit_test_setup_teardown(test_csv_and_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
