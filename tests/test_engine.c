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
	struct vd_buf why = VD_BUF_INIT(1024), st = VD_BUF_INIT(4096), got = VD_BUF_INIT(1 << 26);
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
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "up", "t.txt", fd), 1);
	assert_int_equal(vi.size, n);
	wait_status(e, "up", vi.data_id, "queued: waiting for a function", &st);
	/* The same content again: no new version. */
	assert_int_equal(vd_engine_submit_file(&vi2, &why, e, "up", "again.txt", fd), 0);
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
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "bad", "d", fd), 1);
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
	assert_int_equal(vd_engine_submit_file(&vi, &why, f->e, "sum", "rows", fd), 1);
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
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "env", "d", fd), 1);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_submit_run_result, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failure_and_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_env, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
