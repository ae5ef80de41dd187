/* Unit tests for executors/functions/common/lines.c: the capped line reader
 * the shipped functions read their input with, and CSV field quoting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "buf.h"
#include "lines.h"
#include "util.h"

/* A readable descriptor holding exactly s[0..n). */
static int file_with(const char *s, size_t n)
{
	FILE *f = tmpfile();
	int fd;

	assert_non_null(f);
	fd = dup(fileno(f));
	fclose(f);
	assert_true(fd >= 0);
	assert_int_equal(vd_write_all(fd, s, n), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Expect the next line to be `want`. */
static void expect_line(struct vd_lines *lr, const char *want)
{
	const char *line;
	size_t len;

	assert_int_equal(vd_lines_next(lr, &line, &len, -1), 1);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(line, want, len);
}

static void test_basic(void **state)
{
	static const char in[] = "one\ntwo\r\n\nlast without newline";
	struct vd_lines lr;
	const char *line;
	size_t len;
	int fd = file_with(in, sizeof(in) - 1);

	assert_int_equal(vd_lines_init(&lr, fd, 100), 0);
	expect_line(&lr, "one");
	expect_line(&lr, "two");          /* one CR before the LF goes */
	expect_line(&lr, "");
	expect_line(&lr, "last without newline");
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), 0);
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), 0);
	assert_int_equal(lr.lineno, 4);
	vd_lines_release(&lr);
	close(fd);
}

static void test_long_lines(void **state)
{
	struct vd_buf in = VD_BUF_INIT(1 << 20);
	struct vd_lines lr;
	const char *line;
	size_t len;
	int fd;

	/* max = 10: a line of exactly 10 is fine, 11 is not, and so is a
	 * 5000-byte one; the last, over-long and without newline, too. */
	assert_int_equal(vd_buf_adds(&in, "0123456789\n"), 0);
	assert_int_equal(vd_buf_adds(&in, "abcdefghijk\nok\n"), 0);
	for (int i = 0; i < 5000; i++)
		assert_int_equal(vd_buf_add(&in, i % 7 ? "x" : ",", 1), 0);
	assert_int_equal(vd_buf_adds(&in, "\nafter\nyyyyyyyyyyyyyyyyyyyy"), 0);
	fd = file_with(in.data, in.len);
	assert_int_equal(vd_lines_init(&lr, fd, 10), 0);
	expect_line(&lr, "0123456789");
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), -EFBIG);
	assert_int_equal(lr.long_len, 11);
	assert_int_equal(lr.long_prefix_len, 11);
	assert_memory_equal(lr.long_prefix, "abcdefghijk", 11);
	expect_line(&lr, "ok");
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), -EFBIG);
	assert_int_equal(lr.long_len, 5000);
	/* The prefix is what the buffer held: at most max + 1 bytes. */
	assert_int_equal(lr.long_prefix_len, 11);
	assert_memory_equal(lr.long_prefix, ",xxxxxx,xxx", 11);
	expect_line(&lr, "after");
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), -EFBIG);
	assert_int_equal(lr.long_len, 20);
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), 0);
	assert_int_equal(lr.lineno, 6);
	/* The buffer never grew past what one line of max bytes needs. */
	assert_true(lr.cap <= 11);
	vd_lines_release(&lr);
	close(fd);
	vd_buf_release(&in);
}

/* Random lines of 0 to 3 max bytes: every line within the cap comes back
 * whole and in order, every longer one as -EFBIG with its length, however
 * the lines fall across the reader's buffer. */
static void test_random(void **state)
{
	struct vd_buf in = VD_BUF_INIT(64u << 20);
	size_t lens[4000], max = 7000;
	struct vd_lines lr;
	const char *line;
	size_t len;
	uint64_t x = 88172645463325252ull;
	int fd, n = 4000, rc;

	for (int i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		lens[i] = x % 5 ? x % 100 : x % (3 * max);
		for (size_t k = 0; k < lens[i]; k++)
			assert_int_equal(vd_buf_add(&in, &"abcdefghij"[(i + k) % 10], 1), 0);
		assert_int_equal(vd_buf_add(&in, "\n", 1), 0);
	}
	fd = file_with(in.data, in.len);
	assert_int_equal(vd_lines_init(&lr, fd, max), 0);
	for (int i = 0; i < n; i++) {
		rc = vd_lines_next(&lr, &line, &len, -1);
		if (lens[i] > max) {
			assert_int_equal(rc, -EFBIG);
			assert_int_equal(lr.long_len, lens[i]);
			continue;
		}
		assert_int_equal(rc, 1);
		assert_int_equal(len, lens[i]);
		for (size_t k = 0; k < len; k++)
			assert_int_equal(line[k], "abcdefghij"[(i + k) % 10]);
	}
	assert_int_equal(vd_lines_next(&lr, &line, &len, -1), 0);
	vd_lines_release(&lr);
	close(fd);
	vd_buf_release(&in);
}

static void test_deadline(void **state)
{
	struct vd_lines lr;
	const char *line;
	size_t len;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(vd_lines_init(&lr, p[0], 100), 0);
	/* Half a line, then nothing: the deadline passes. */
	assert_int_equal(vd_write_all(p[1], "12", 2), 0);
	assert_int_equal(vd_lines_next(&lr, &line, &len, vd_mono_ms() + 50), -ETIMEDOUT);
	/* The rest arrives: the whole line, then the end. */
	assert_int_equal(vd_write_all(p[1], "3\n", 2), 0);
	close(p[1]);
	assert_int_equal(vd_lines_next(&lr, &line, &len, vd_mono_ms() + 5000), 1);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "123", 3);
	assert_int_equal(vd_lines_next(&lr, &line, &len, vd_mono_ms() + 5000), 0);
	vd_lines_release(&lr);
	close(p[0]);
	assert_int_equal(vd_lines_init(&lr, -1, 100), -EINVAL);
	assert_int_equal(vd_lines_init(&lr, 0, 0), -EINVAL);
}

static void test_csv_field(void **state)
{
	struct vd_buf b = VD_BUF_INIT(1024);

	assert_int_equal(vd_csv_add_field(&b, "plain text", 10), 0);
	assert_string_equal(b.data, "plain text");
	vd_buf_reset(&b);
	assert_int_equal(vd_csv_add_field(&b, "1,5", 3), 0);
	assert_string_equal(b.data, "\"1,5\"");
	vd_buf_reset(&b);
	assert_int_equal(vd_csv_add_field(&b, "say \"hi\"", 8), 0);
	assert_string_equal(b.data, "\"say \"\"hi\"\"\"");
	vd_buf_reset(&b);
	assert_int_equal(vd_csv_add_field(&b, "\"", 1), 0);
	assert_string_equal(b.data, "\"\"\"\"");
	vd_buf_reset(&b);
	assert_int_equal(vd_csv_add_field(&b, "a\rb", 3), 0);
	assert_string_equal(b.data, "\"a\rb\"");
	vd_buf_reset(&b);
	assert_int_equal(vd_csv_add_field(&b, "", 0), 0);
	assert_int_equal(b.len, 0);
	vd_buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_deadline),
		cmocka_unit_test(test_csv_field),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
