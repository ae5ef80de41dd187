/* Unit tests for lib/id.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "id.h"
#include "util.h"

static void make_key(struct vd_key *k, unsigned char seed)
{
	for (size_t i = 0; i < VD_KEY_SIZE; i++)
		k->secret[i] = (unsigned char)(seed * 31 + i * 7);
}

static void test_stable(void **state)
{
	struct vd_key k1, k2;
	char a[VD_ID_SIZE], b[VD_ID_SIZE], c[VD_ID_SIZE];

	make_key(&k1, 1);
	make_key(&k2, 2);
	vd_id_of(a, &k1, "hello\n", 6);
	vd_id_of(b, &k1, "hello\n", 6);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), VD_ID_LEN);
	assert_true(vd_id_valid(a));
	vd_id_of(c, &k2, "hello\n", 6);
	assert_string_not_equal(a, c);
	vd_id_of(c, &k1, "hello!", 6);
	assert_string_not_equal(a, c);
	vd_id_of(c, &k1, NULL, 0);
	assert_true(vd_id_valid(c));
	assert_string_not_equal(a, c);
}

static void test_streaming(void **state)
{
	static const size_t sizes[] = { 0, 1, 15, 16, 17, 128, 129, 240, 241,
					1000, 1024, 4096, 100000 };
	struct vd_key k;
	vd_hasher *h;
	unsigned char *data;
	char one[VD_ID_SIZE], st[VD_ID_SIZE];

	make_key(&k, 3);
	data = malloc(100000);
	assert_non_null(data);
	for (size_t i = 0; i < 100000; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	assert_int_equal(vd_hasher_new(&h, &k), 0);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];

		vd_id_of(one, &k, data, n);
		/* Feed in uneven pieces. */
		vd_hasher_reset(h);
		for (size_t off = 0, step = 1; off < n; off += step, step = step * 3 + 1) {
			size_t m = n - off < step ? n - off : step;

			vd_hasher_update(h, data + off, m);
		}
		vd_hasher_digest(h, st);
		assert_string_equal(one, st);
	}
	/* Digest does not consume: feed more, digest again. */
	vd_hasher_reset(h);
	vd_hasher_update(h, data, 10);
	vd_hasher_digest(h, st);
	vd_id_of(one, &k, data, 10);
	assert_string_equal(one, st);
	vd_hasher_update(h, data + 10, 990);
	vd_hasher_digest(h, st);
	vd_id_of(one, &k, data, 1000);
	assert_string_equal(one, st);
	vd_hasher_free(h);
	free(data);
}

static void test_valid(void **state)
{
	assert_true(vd_id_valid("0123456789abcdef0123456789abcdef"));
	assert_false(vd_id_valid("0123456789ABCDEF0123456789abcdef"));
	assert_false(vd_id_valid("0123456789abcdef0123456789abcde"));
	assert_false(vd_id_valid("0123456789abcdef0123456789abcdef0"));
	assert_false(vd_id_valid("0123456789abcdef0123456789abcdeg"));
	assert_false(vd_id_valid("../../../../../../../../../../etc"));
	assert_false(vd_id_valid(""));
	assert_false(vd_id_valid(NULL));
}

static void test_key_file(void **state)
{
	char dir[] = "/tmp/vdfs-test-id-XXXXXX", path[256], hex[VD_KEY_HEX_SIZE];
	struct vd_key k1, k2, k3;
	struct stat st;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	assert_int_equal(vd_key_load_or_create(&k1, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, VD_KEY_SIZE);
	assert_int_equal(vd_key_load_or_create(&k2, path), 0);
	assert_memory_equal(k1.secret, k2.secret, VD_KEY_SIZE);

	vd_key_to_hex(hex, &k1);
	assert_int_equal(strlen(hex), 2 * VD_KEY_SIZE);
	assert_int_equal(vd_key_from_hex(&k3, hex), 0);
	assert_memory_equal(k1.secret, k3.secret, VD_KEY_SIZE);
	hex[5] = 'z';
	assert_int_equal(vd_key_from_hex(&k3, hex), -EINVAL);
	assert_int_equal(vd_key_from_hex(&k3, "abcd"), -EINVAL);

	/* A file of the wrong size is refused, not overwritten. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("short", f);
	fclose(f);
	assert_int_equal(vd_key_load_or_create(&k2, path), -EINVAL);
	assert_int_equal(vd_rm_rf(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stable),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
