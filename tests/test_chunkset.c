/*
 * test_chunkset.c - the exact ID set gc and fsck mark with.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chunkset.h"
#include "id.h"

static void id_n(char out[VD_ID_SIZE], unsigned n)
{
	/* A key of varied bytes: XXH3 with a constant secret maps short
	 * inputs to degenerate values. */
	struct vd_key k;
	for (size_t i = 0; i < sizeof k.secret; i++)
		k.secret[i] = (unsigned char)(i * 131 + 17);
	char in[64];
	int len = snprintf(in, sizeof in, "chunk number %u", n);
	vd_id_of(out, &k, in, (size_t)len);
}

static void test_add_has(void **state)
{
	(void)state;
	struct vd_chunkset s = VD_CHUNKSET_INIT;
	char id[VD_ID_SIZE];
	assert_false(vd_chunkset_has(&s, "00000000000000000000000000000000"));
	for (unsigned i = 0; i < 100000; i++) {
		id_n(id, i);
		assert_int_equal(vd_chunkset_add(&s, id), 1);
	}
	for (unsigned i = 0; i < 100000; i += 7) {
		id_n(id, i);
		assert_int_equal(vd_chunkset_add(&s, id), 0);
		assert_true(vd_chunkset_has(&s, id));
	}
	for (unsigned i = 100000; i < 101000; i++) {
		id_n(id, i);
		assert_false(vd_chunkset_has(&s, id));
	}
	assert_int_equal(vd_chunkset_count(&s), 100000);
	/* The all-zero ID cannot sit in a slot, but is a member like any. */
	assert_int_equal(vd_chunkset_add(&s, "00000000000000000000000000000000"), 1);
	assert_true(vd_chunkset_has(&s, "00000000000000000000000000000000"));
	assert_int_equal(vd_chunkset_add(&s, "00000000000000000000000000000000"), 0);
	assert_int_equal(vd_chunkset_count(&s), 100001);
	/* Not IDs. */
	assert_int_equal(vd_chunkset_add(&s, "xyz"), -EINVAL);
	assert_int_equal(vd_chunkset_add(&s, "0000000000000000000000000000000A"), -EINVAL);
	assert_int_equal(vd_chunkset_add(&s, "000000000000000000000000000000000"), -EINVAL);
	assert_false(vd_chunkset_has(&s, "short"));
	vd_chunkset_clear(&s);
	assert_int_equal(vd_chunkset_count(&s), 0);
	id_n(id, 3);
	assert_false(vd_chunkset_has(&s, id));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
