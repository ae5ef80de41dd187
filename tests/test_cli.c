/*
 * test_cli.c - the shared parts of `vdfs` (tools/cli.c): terminal widths of
 * UTF-8 text, tables that align with wide characters and are cut at
 * character boundaries, and subcommand option parsing.
 */
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"

/* The column (in terminal columns) at which `cell` starts on `line`. */
static size_t column_of(const char *line, const char *cell)
{
	const char *at = strstr(line, cell);
	char prefix[512];

	assert_non_null(at);
	snprintf(prefix, sizeof prefix, "%.*s", (int)(at - line), line);
	return vd_cli_width(prefix);
}

static void test_width(void **state)
{
	size_t bytes;

	(void)state;
	assert_int_equal(vd_cli_width("wordcount"), 9);
	assert_int_equal(vd_cli_width("词频统计"), 8);            /* 4 wide characters */
	assert_int_equal(vd_cli_width("e\xcc\x81t\xc3\xa9"), 3); /* e + combining acute, t, é */
	assert_int_equal(vd_cli_width("a\xffz"), 3);             /* a bad byte: one column */
	assert_int_equal(vd_cli_width(""), 0);
	/* Cut at 5 columns: 词频 is 4, 统 would make 6. */
	assert_int_equal(vd_cli_width_cut("词频统计", 5, &bytes), 4);
	assert_int_equal(bytes, 6);
	assert_int_equal(vd_cli_width_cut("ab词", 3, &bytes), 2);
	assert_int_equal(bytes, 2);
	assert_int_equal(vd_cli_width_cut("abc", (size_t)-1, &bytes), 3);
	assert_int_equal(bytes, 3);
}

static char *print_table(struct vd_cli_table *t, bool cut)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	assert_non_null(f);
	vd_cli_table_fprint(f, t, cut);
	fclose(f);
	return out;
}

static void test_table_aligns_wide(void **state)
{
	struct vd_cli_table t = { .ncols = 3 };
	const char *rows[][3] = {
		{ "TASK", "VERSIONS", "STATUS" },
		{ "wc", "12", "done" },
		{ "词频统计", "3", "running" },
		{ "données", "1", "queued" },
	};
	char *out, *line, *nl;
	size_t col1 = 0, col2 = 0, nlines = 0;

	(void)state;
	for (size_t r = 0; r < 4; r++)
		for (size_t c = 0; c < 3; c++)
			vd_cli_table_add(&t, rows[r][c]);
	out = print_table(&t, false);
	for (line = out; (nl = strchr(line, '\n')); line = nl + 1, nlines++) {
		*nl = '\0';
		assert_true(nlines < 4);
		size_t c1 = column_of(line, rows[nlines][1]);
		size_t c2 = column_of(line, rows[nlines][2]);

		if (!nlines) {
			col1 = c1;
			col2 = c2;
		}
		if (c1 != col1 || c2 != col2)
			fail_msg("line %zu '%s': columns at %zu, %zu, not %zu, %zu", nlines, line,
				 c1, c2, col1, col2);
	}
	assert_int_equal(nlines, 4);
	assert_int_equal(col1, 8 + 2);   /* 词频统计 is the widest: 8 columns */
	free(out);
	assert_int_equal(t.cells.n, 0);  /* printing empties the table */
}

static void test_table_cuts_at_characters(void **state)
{
	struct vd_cli_table t = { .ncols = 2, .maxw = { [0] = 6 } };
	char *out;

	(void)state;
	vd_cli_table_add(&t, "NAME");
	vd_cli_table_add(&t, "N");
	vd_cli_table_add(&t, "中文文件名称很长");   /* 16 columns */
	vd_cli_table_add(&t, "1");
	vd_cli_table_add(&t, "short");
	vd_cli_table_add(&t, "2");
	out = print_table(&t, true);
	/* 5 columns are left for text before the ellipsis: two wide
	 * characters (4), never half of the third. */
	assert_non_null(strstr(out, "中文\u2026"));
	assert_null(strstr(out, "中文文"));
	for (char *line = out, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
		*nl = '\0';
		/* every number ends at the same column */
		assert_int_equal(vd_cli_width(line), 5 + 2 + 1);
	}
	free(out);

	/* Not cut when asked not to (a pipe): the whole name. */
	t.maxw[0] = 6;
	vd_cli_table_add(&t, "中文文件名称很长");
	vd_cli_table_add(&t, "1");
	out = print_table(&t, false);
	assert_non_null(strstr(out, "中文文件名称很长"));
	free(out);
}

static int run_nothing(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static const struct vd_doc_opt test_opts[] = {
	{ "long", 'l', NULL, "long", VD_DOC_SHORT },
	{ "unified", 'U', "N", "context", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

static const struct vd_cli_cmd test_cmd = {
	.name = "test", .args = "ID", .summary = "a test", .description = "A test.",
	.opts = test_opts, .conn = true, .run = run_nothing,
};

static int parse_all(struct vd_cli_conn *c, int argc, char **argv, int *got, int *exit_code)
{
	struct vd_cli_opts o = { .cmd = &test_cmd, .conn = c, .argc = argc, .argv = argv };
	int opt, n = 0;

	while ((opt = vd_cli_opt(&o)) > 0)
		got[n++] = opt;
	*exit_code = o.exit;
	return opt;
}

static void test_options(void **state)
{
	struct vd_cli_conn c = { 0 };
	int got[8] = { 0 }, code = -1;
	char *ok[] = { "test", "-l", "--state", "/s", "x", "--unified=5", NULL };
	char *bad[] = { "test", "--bogus", NULL };
	char *noval[] = { "test", "-U", NULL };

	(void)state;
	assert_int_equal(parse_all(&c, 6, ok, got, &code), 0);
	assert_int_equal(got[0], 'l');
	assert_int_equal(got[1], 'U');
	assert_string_equal(c.state, "/s");
	assert_int_equal(optind, 5);           /* the argument, permuted last */
	assert_string_equal(ok[optind], "x");
	assert_int_equal(parse_all(&c, 2, bad, got, &code), -1);
	assert_int_equal(code, 2);
	assert_int_equal(parse_all(&c, 2, noval, got, &code), -1);
	assert_int_equal(code, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_width),
		cmocka_unit_test(test_table_aligns_wide),
		cmocka_unit_test(test_table_cuts_at_characters),
		cmocka_unit_test(test_options),
	};

	vd_cli_locale();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
