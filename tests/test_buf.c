/* Unit tests for lib/buf.c and the small helpers of lib/util.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "buf.h"
#include "util.h"

static void test_add_and_terminate(void **state)
{
	struct vd_buf b = VD_BUF_INIT(1024);

	assert_string_equal(vd_buf_cstr(&b), "");
	assert_int_equal(vd_buf_add(&b, "abc", 3), 0);
	assert_int_equal(b.len, 3);
	assert_int_equal(b.data[3], '\0');
	assert_int_equal(vd_buf_adds(&b, "def"), 0);
	assert_string_equal(vd_buf_cstr(&b), "abcdef");
	assert_int_equal(vd_buf_add(&b, NULL, 0), 0);
	assert_int_equal(b.len, 6);
	vd_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(vd_buf_cstr(&b), "");
	assert_non_null(b.data);
	vd_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.max, 1024);
}

static void test_cap(void **state)
{
	struct vd_buf b;
	char big[100];

	vd_buf_init(&b, 10);
	memset(big, 'x', sizeof(big));
	assert_int_equal(vd_buf_add(&b, big, 10), 0);
	assert_int_equal(vd_buf_add(&b, big, 1), -EFBIG);
	assert_int_equal(b.len, 10);
	assert_int_equal(vd_buf_addf(&b, "%d", 1), -EFBIG);
	vd_buf_reset(&b);
	assert_int_equal(vd_buf_add(&b, big, 11), -EFBIG);
	assert_int_equal(vd_buf_grow(&b, SIZE_MAX), -EFBIG);
	assert_int_equal(vd_buf_addf(&b, "%s", "0123456789"), 0);
	assert_string_equal(b.data, "0123456789");
	vd_buf_release(&b);
}

static void test_addf(void **state)
{
	struct vd_buf b = VD_BUF_INIT(1 << 20);
	char want[3000];

	assert_int_equal(vd_buf_addf(&b, "%s=%d;", "a", 42), 0);
	assert_int_equal(vd_buf_addf(&b, "%s", ""), 0);
	assert_string_equal(b.data, "a=42;");
	/* Longer than any first allocation. */
	memset(want, 'q', sizeof(want) - 1);
	want[sizeof(want) - 1] = '\0';
	assert_int_equal(vd_buf_addf(&b, "%s", want), 0);
	assert_int_equal(b.len, 5 + sizeof(want) - 1);
	assert_memory_equal(b.data + 5, want, sizeof(want));
	vd_buf_release(&b);
}

static void test_detach(void **state)
{
	struct vd_buf b = VD_BUF_INIT(100);
	size_t len = 99;
	char *s;

	s = vd_buf_detach(&b, &len);
	assert_non_null(s);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);

	assert_int_equal(vd_buf_adds(&b, "hello"), 0);
	s = vd_buf_detach(&b, &len);
	assert_string_equal(s, "hello");
	assert_int_equal(len, 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	/* Still usable after detach. */
	assert_int_equal(vd_buf_adds(&b, "x"), 0);
	s = vd_buf_detach(&b, NULL);
	assert_string_equal(s, "x");
	free(s);
}

static void test_files(void **state)
{
	char dir[] = "/tmp/vdfs-test-buf-XXXXXX", path[256], deep[256];
	struct vd_buf b = VD_BUF_INIT(5);
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	assert_int_equal(vd_write_file_atomic(path, "hello!", 6, 0640), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(vd_read_file(&b, path), -EFBIG);
	assert_int_equal(b.len, 0);
	b.max = 6;
	assert_int_equal(vd_read_file(&b, path), 0);
	assert_string_equal(b.data, "hello!");
	vd_buf_release(&b);

	snprintf(deep, sizeof(deep), "%s/a/b//c/", dir);
	assert_int_equal(vd_mkdir_p(deep, 0700), 0);
	assert_int_equal(vd_mkdir_p(deep, 0700), 0);
	snprintf(deep, sizeof(deep), "%s/a/b/c/g", dir);
	assert_int_equal(vd_write_file_atomic(deep, "", 0, 0600), 0);
	assert_int_equal(vd_mkdir_p(deep, 0700), -ENOTDIR);
	assert_int_equal(vd_rm_rf(dir), 0);
	assert_int_equal(stat(dir, &st), -1);
	assert_int_equal(vd_rm_rf(dir), 0);
}

static void test_time_and_strv(void **state)
{
	struct vd_strv sv = { 0 };
	char ts[32];

	vd_format_time(ts, INT64_C(1795314703123));
	assert_string_equal(ts, "2026-11-22T02:31:43.123Z");
	vd_format_time(ts, 0);
	assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
	assert_true(vd_now_ms() > INT64_C(1600000000000));
	assert_true(vd_mono_ms() >= 0);

	assert_int_equal(vd_strv_push(&sv, "b"), 0);
	assert_int_equal(vd_strv_push(&sv, "c"), 0);
	assert_int_equal(vd_strv_pushn(&sv, "abc", 1), 0);
	vd_strv_sort(&sv);
	assert_int_equal(sv.n, 3);
	assert_string_equal(sv.v[0], "a");
	assert_string_equal(sv.v[1], "b");
	assert_string_equal(sv.v[2], "c");
	assert_null(sv.v[3]);
	vd_strv_release(&sv);
	assert_int_equal(sv.n, 0);
	vd_info("log line from test_buf: %d", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_and_terminate),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_addf),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_time_and_strv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
