/*
 * test_engine_inline.c - small chunks inside the lease, from both sides:
 * the daemon's (engine_inline.c: a lease request with inline_max gets the
 * raw bytes of each chunk of at most that many bytes as base64 `data`, no
 * more than VD_INLINE_TOTAL of them per reply; without it, none) and the
 * executor's (executors/exec_inline.c, compiled in: the bytes decode to the
 * chunk and are checked against its ID; bytes of another chunk, another
 * length, not base64, or too long are refused, so the executor fetches).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "exec_int.h"

struct fx {
	char dir[64];
	vd_engine *e;
	struct vd_key key;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-inline-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 5000, .chunk_avg = 4096 };
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
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", who, "level", 1, "slots", 256);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_register(&reply, &why, f->e, req), 0);
	assert_int_equal(vd_key_from_hex(&f->key, json_string_value(json_object_get(reply,
										 "hash_key"))), 0);
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&why);
}

/* n bytes of lines (4 KiB chunks: some 2n/8192 of them). */
static void submit(vd_engine *e, const char *task, size_t n)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	struct vd_version_info vi;
	char code[VD_ID_SIZE], path[] = "/tmp/vd-test-inline-data-XXXXXX";
	char *p = malloc(n);
	unsigned s = 7;
	for (size_t i = 0; i < n; i++) {
		s = s * 1103515245u + 12345u;
		p[i] = (s >> 16) % 17 == 0 ? '\n' : (char)('a' + (s >> 20) % 26);
	}
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, p, n), 0);
	assert_int_equal(vd_engine_task_create(e, task), 0);
	assert_int_equal(vd_engine_config_write(&why, e, task, "unit_size = 4K\n", 15), 0);
	assert_int_equal(vd_engine_function_write(code, e, task, "#!/bin/sh\n", 10), 1);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, task, "d", NULL, fd), 1);
	close(fd);
	free(p);
	vd_buf_release(&why);
}

/* One lease request of up to max units; NULL when there is nothing. */
static json_t *lease(vd_engine *e, const char *who, long long max, long long inline_max)
{
	json_t *req = json_pack("{s:s, s:I, s:i}", "executor", who, "max", (json_int_t)max,
				"wait_ms", 2000);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	if (inline_max >= 0)
		json_object_set_new(req, "inline_max", json_integer(inline_max));
	int rc = vd_engine_api_lease(&reply, &why, e, req);
	json_decref(req);
	vd_buf_release(&why);
	if (rc == -EAGAIN)
		return NULL;
	assert_int_equal(rc, 0);
	return reply;
}

/* Every chunk of the reply: those with data decode to the chunk's bytes
 * (as the store has them) and pass the executor's check. Returns the
 * bytes sent inline; *with and *without count the chunks. */
static size_t check_reply(struct fx *f, const json_t *reply, size_t *with, size_t *without)
{
	size_t bytes = 0, i, j;
	json_t *l, *c;
	json_array_foreach(json_object_get(reply, "leases"), i, l) {
		json_array_foreach(json_object_get(l, "chunks"), j, c) {
			struct vd_buf got = VD_BUF_INIT(EX_INLINE_MAX), want = VD_BUF_INIT(1 << 20);
			struct vd_buf why = VD_BUF_INIT(1024);
			int rc = ex_inline_chunk(&got, c, &f->key);
			if (rc == -ENOENT) {
				(*without)++;
			} else {
				assert_int_equal(rc, 0);
				assert_int_equal(vd_engine_api_chunk(&want, &why, f->e,
					json_string_value(json_object_get(c, "id"))), 0);
				assert_int_equal(got.len, want.len);
				assert_memory_equal(got.data, want.data, got.len);
				bytes += got.len;
				(*with)++;
			}
			vd_buf_release(&got);
			vd_buf_release(&want);
			vd_buf_release(&why);
		}
	}
	return bytes;
}

static void test_inline_asked(void **state)
{
	struct fx *f = *state;
	size_t with = 0, without = 0;
	submit(f->e, "t", 64 << 10);
	reg(f, "ex");
	json_t *r = lease(f->e, "ex", 8, EX_INLINE_MAX);
	assert_non_null(r);
	assert_true(check_reply(f, r, &with, &without) > 0);
	/* 4 KiB chunks on average, 16 KiB asked for: all of them. */
	assert_int_equal(without, 0);
	assert_true(with >= 8);
	json_decref(r);
}

static void test_inline_not_asked(void **state)
{
	struct fx *f = *state;
	size_t with = 0, without = 0;
	submit(f->e, "t", 64 << 10);
	reg(f, "ex");
	json_t *r = lease(f->e, "ex", 8, -1);
	assert_non_null(r);
	assert_int_equal(check_reply(f, r, &with, &without), 0);
	assert_int_equal(with, 0);
	assert_true(without >= 8);
	json_decref(r);
	/* Asked for chunks smaller than any: none either. */
	with = without = 0;
	r = lease(f->e, "ex", 8, 16);
	assert_non_null(r);
	assert_int_equal(check_reply(f, r, &with, &without), 0);
	assert_int_equal(with, 0);
	json_decref(r);
}

/* One reply carries at most VD_INLINE_TOTAL bytes inline; the rest of its
 * chunks come without data, to be fetched. */
static void test_inline_total_cap(void **state)
{
	struct fx *f = *state;
	size_t with = 0, without = 0;
	submit(f->e, "t", 3 << 20);
	reg(f, "ex");
	json_t *r = lease(f->e, "ex", 256, EX_INLINE_MAX);
	assert_non_null(r);
	size_t bytes = check_reply(f, r, &with, &without);
	assert_true(bytes <= VD_INLINE_TOTAL);
	assert_true(bytes > VD_INLINE_TOTAL / 2);
	assert_true(without > 0);
	json_decref(r);
}

/* What the executor refuses, so that it fetches the chunk instead. */
static void test_inline_refused(void **state)
{
	struct fx *f = *state;
	size_t with = 0, without = 0;
	submit(f->e, "t", 64 << 10);
	reg(f, "ex");
	json_t *r = lease(f->e, "ex", 2, EX_INLINE_MAX);
	assert_non_null(r);
	assert_true(check_reply(f, r, &with, &without) > 0);
	json_t *l0 = json_array_get(json_object_get(r, "leases"), 0);
	json_t *c = json_array_get(json_object_get(l0, "chunks"), 0);
	json_t *l1 = json_array_get(json_object_get(r, "leases"), 1);
	json_t *other = json_array_get(json_object_get(l1, "chunks"), 0);
	struct vd_buf got = VD_BUF_INIT(EX_INLINE_MAX);
	char *good = strdup(json_string_value(json_object_get(c, "data")));
	json_int_t len = json_integer_value(json_object_get(c, "len"));

	/* Another chunk's bytes under this chunk's ID. */
	json_object_set(c, "data", json_object_get(other, "data"));
	json_object_set_new(c, "len", json_integer(json_integer_value(json_object_get(other, "len"))));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	json_object_set_new(c, "len", json_integer(len));
	/* One byte changed (the first base64 digit). */
	char *bad = strdup(good);
	bad[0] = bad[0] == 'A' ? 'B' : 'A';
	json_object_set_new(c, "data", json_string(bad));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	/* Not base64. */
	json_object_set_new(c, "data", json_string("!!!!"));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	/* Not a string. */
	json_object_set_new(c, "data", json_integer(3));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	/* The right bytes, the wrong length. */
	json_object_set_new(c, "data", json_string(good));
	json_object_set_new(c, "len", json_integer(len + 1));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	/* Longer than was asked for. */
	size_t big = (EX_INLINE_MAX / 3 + 2) * 4;
	char *huge = malloc(big + 1);
	memset(huge, 'A', big);
	huge[big] = '\0';
	json_object_set_new(c, "len", json_integer((json_int_t)EX_INLINE_MAX));
	json_object_set_new(c, "data", json_string(huge));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -EBADMSG);
	/* And back as it came: taken. */
	json_object_set_new(c, "len", json_integer(len));
	json_object_set_new(c, "data", json_string(good));
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), 0);
	assert_int_equal(got.len, (size_t)len);
	json_object_del(c, "data");
	assert_int_equal(ex_inline_chunk(&got, c, &f->key), -ENOENT);
	free(huge);
	free(bad);
	free(good);
	vd_buf_release(&got);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_inline_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_not_asked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_total_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inline_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
