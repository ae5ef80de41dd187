/* Unit tests for daemon/catalog.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "catalog.h"
#include "util.h"

struct fixture {
	char dir[64];
	vd_catalog *cat;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vdfs-test-catalog-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	if (vd_catalog_open(&f->cat, f->dir))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_catalog_close(f->cat);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static void put1(vd_catalog *c, const char *k, const char *v)
{
	vd_catalog_batch *b;

	assert_int_equal(vd_catalog_batch_new(&b), 0);
	vd_catalog_batch_put(b, k, v, strlen(v));
	assert_int_equal(vd_catalog_commit(c, b, false), 0);
	vd_catalog_batch_free(b);
}

static void test_put_get_has_del(void **state)
{
	struct fixture *f = *state;
	vd_catalog_batch *b;
	char *v;
	size_t n;

	assert_int_equal(vd_catalog_get(&v, &n, f->cat, "x/a"), -ENOENT);
	assert_int_equal(vd_catalog_has(f->cat, "x/a"), 0);
	put1(f->cat, "x/a", "alpha");
	assert_int_equal(vd_catalog_has(f->cat, "x/a"), 1);
	assert_int_equal(vd_catalog_get(&v, &n, f->cat, "x/a"), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v, "alpha");
	free(v);

	/* Binary values with NULs and the empty value. */
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	vd_catalog_batch_put(b, "x/bin", "a\0b", 3);
	vd_catalog_batch_put(b, "x/empty", "", 0);
	assert_int_equal(vd_catalog_batch_count(b), 2);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_clear(b);
	assert_int_equal(vd_catalog_batch_count(b), 0);
	assert_int_equal(vd_catalog_get(&v, &n, f->cat, "x/bin"), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(v, "a\0b", 4);
	free(v);
	assert_int_equal(vd_catalog_get(&v, NULL, f->cat, "x/empty"), 0);
	assert_string_equal(v, "");
	free(v);

	vd_catalog_batch_del(b, "x/a");
	assert_int_equal(vd_catalog_commit(f->cat, b, false), 0);
	assert_int_equal(vd_catalog_has(f->cat, "x/a"), 0);
	vd_catalog_batch_free(b);
}

static void test_batch_atomic(void **state)
{
	struct fixture *f = *state;
	vd_catalog_batch *b;
	char key[32];

	put1(f->cat, "y/old", "1");
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "y/%03d", i);
		vd_catalog_batch_put(b, key, "v", 1);
	}
	vd_catalog_batch_del(b, "y/old");
	/* Nothing is visible before the commit. */
	assert_int_equal(vd_catalog_has(f->cat, "y/000"), 0);
	assert_int_equal(vd_catalog_has(f->cat, "y/old"), 1);
	/* A freed, uncommitted batch changes nothing. */
	vd_catalog_batch_free(b);
	assert_int_equal(vd_catalog_has(f->cat, "y/050"), 0);

	assert_int_equal(vd_catalog_batch_new(&b), 0);
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "y/%03d", i);
		vd_catalog_batch_put(b, key, "v", 1);
	}
	vd_catalog_batch_del(b, "y/old");
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	assert_int_equal(vd_catalog_has(f->cat, "y/000"), 1);
	assert_int_equal(vd_catalog_has(f->cat, "y/099"), 1);
	assert_int_equal(vd_catalog_has(f->cat, "y/old"), 0);

	/* Survives close and reopen. */
	vd_catalog_close(f->cat);
	assert_int_equal(vd_catalog_open(&f->cat, f->dir), 0);
	assert_int_equal(vd_catalog_has(f->cat, "y/099"), 1);
}

struct scan_ctx {
	char keys[16][16];
	int n;
	int stop_at;
};

static int collect(void *ctx, const char *key, size_t klen, const char *val,
		   size_t vlen)
{
	struct scan_ctx *s = ctx;

	assert_true(klen < sizeof(s->keys[0]));
	assert_true(s->n < 16);
	memcpy(s->keys[s->n], key, klen);
	s->keys[s->n][klen] = '\0';
	assert_int_equal(vlen, 1);
	assert_int_equal(val[0], key[klen - 1]);
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

static void test_scan(void **state)
{
	struct fixture *f = *state;
	struct scan_ctx s = { .stop_at = -1 };
	static const char *const keys[] = { "s/c", "s/a", "s/b", "s", "r/z",
					    "t/a", "s/aa", "s0" };
	vd_catalog_batch *b;

	assert_int_equal(vd_catalog_batch_new(&b), 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		vd_catalog_batch_put(b, keys[i], keys[i] + strlen(keys[i]) - 1, 1);
	assert_int_equal(vd_catalog_commit(f->cat, b, false), 0);
	vd_catalog_batch_free(b);

	assert_int_equal(vd_catalog_scan(f->cat, "s/", collect, &s), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.keys[0], "s/a");
	assert_string_equal(s.keys[1], "s/aa");
	assert_string_equal(s.keys[2], "s/b");
	assert_string_equal(s.keys[3], "s/c");

	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(vd_catalog_scan(f->cat, "s/", collect, &s), 42);
	assert_int_equal(s.n, 2);

	memset(&s, 0, sizeof(s));
	s.stop_at = -1;
	assert_int_equal(vd_catalog_scan(f->cat, "q/", collect, &s), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(vd_catalog_scan(f->cat, "zzz", collect, &s), 0);
	assert_int_equal(s.n, 0);
}

static void test_json(void **state)
{
	struct fixture *f = *state;
	vd_catalog_batch *b;
	json_t *j, *got;
	char *v;

	j = json_pack("{s:i, s:s, s:[i,i]}", "zeta", 1, "alpha", "x", "mid", 1, 2);
	assert_non_null(j);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_catalog_batch_put_json(b, "j/1", j), 0);
	vd_catalog_batch_put(b, "j/bad", "{not json", 9);
	assert_int_equal(vd_catalog_commit(f->cat, b, false), 0);
	vd_catalog_batch_free(b);

	assert_int_equal(vd_catalog_get(&v, NULL, f->cat, "j/1"), 0);
	assert_string_equal(v, "{\"alpha\":\"x\",\"mid\":[1,2],\"zeta\":1}");
	free(v);
	assert_int_equal(vd_catalog_get_json(&got, f->cat, "j/1"), 0);
	assert_true(json_equal(j, got));
	json_decref(got);
	json_decref(j);
	assert_int_equal(vd_catalog_get_json(&got, f->cat, "j/bad"), -EBADMSG);
	assert_int_equal(vd_catalog_get_json(&got, f->cat, "j/none"), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_has_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json, setup, teardown),
	};

	vd_log_init("test_catalog", VD_LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
