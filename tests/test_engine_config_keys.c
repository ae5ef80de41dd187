/*
 * test_engine_config_keys.c - daemon/config_keys.c's table against the
 * engine's config parser: every key the table documents (and so `vdfs help
 * config` and vdfs-config(5) describe) parses with its example and with its
 * default; any other key is refused, with the known ones named; a key the
 * design plans but the table lacks is refused, as the page says.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config_keys.h"
#include "engine_int.h"

/* "name = value" for row k ("env.VDFS_DOC = value" for a prefix row). */
static void line_for(char *out, size_t n, const struct vd_config_key *k, const char *value)
{
	size_t len = strlen(k->name);

	snprintf(out, n, "%s%s = %s\n", k->name, k->name[len - 1] == '.' ? "DOCTEST" : "",
		 value);
}

static int parse(const char *text, struct vd_buf *why)
{
	struct vd_config c;

	vd_buf_reset(why);
	return vd_config_parse(&c, why, text, strlen(text));
}

static void test_every_row_parses(void **state)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	char line[512];
	size_t rows = 0;

	(void)state;
	for (const struct vd_config_key *k = vd_config_keys; k->name; k++, rows++) {
		assert_non_null(k->value);
		assert_non_null(k->help);
		assert_true(*k->example);
		line_for(line, sizeof line, k, k->example);
		if (parse(line, &why))
			fail_msg("%s: the documented example is refused: %s", line,
				 vd_buf_cstr(&why));
		if (*k->def) {
			line_for(line, sizeof line, k, k->def);
			if (parse(line, &why))
				fail_msg("%s: the documented default is refused: %s", line,
					 vd_buf_cstr(&why));
		}
		assert_ptr_equal(vd_config_key_find(k->name[strlen(k->name) - 1] == '.'
						    ? "env.X" : k->name), k);
	}
	/* DESIGN.md's keys that the engine takes today. */
	static const char *design[] = { "level", "reduce", "format", "timeout", "retries",
					"replicas", "settle", "rerun" };
	for (size_t i = 0; i < sizeof design / sizeof *design; i++)
		assert_non_null(vd_config_key_find(design[i]));
	assert_true(rows >= 8);
	vd_buf_release(&why);
}

static void test_unknown_keys_refused(void **state)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	char line[256];

	(void)state;
	assert_int_equal(parse("bogus = 1\n", &why), -EINVAL);
	assert_non_null(strstr(vd_buf_cstr(&why), "unknown key 'bogus'"));
	for (const struct vd_config_key *k = vd_config_keys; k->name; k++)
		assert_non_null(strstr(vd_buf_cstr(&why), k->name));
	assert_null(vd_config_key_find("env."));
	assert_int_equal(parse("env. = 1\n", &why), -EINVAL);
	/* Planned keys without a row are refused: the page lists them so. */
	for (const struct vd_config_planned *p = vd_config_planned; p->name; p++) {
		if (vd_config_key_find(p->name))
			continue;
		snprintf(line, sizeof line, "%s = all\n", p->name);
		assert_int_equal(parse(line, &why), -EINVAL);
	}
	vd_buf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_row_parses),
		cmocka_unit_test(test_unknown_keys_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
