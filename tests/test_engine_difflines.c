/*
 * test_engine_difflines.c - vd_engine_api_diff_lines (GET
 * /v1/diff/<a>/<b>/lines) on an engine without HTTP: two file versions and
 * two tree versions give what GNU `diff -u` prints for the same files
 * (headers as `vdfs diff --lines` prints them, the rest byte for byte),
 * path picks one file of a tree, the cap cuts at a line end and says so,
 * equal versions give nothing, unknown IDs and missing results are
 * -ENOENT, and result=1 diffs the two runs' results.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"

#define CAP ((size_t)1 << 20)

struct fx {
	char dir[64];
	char src[64];     /* trees are built here before they are sealed */
	vd_engine *e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-difflines-XXXXXX");
	snprintf(f->src, sizeof f->src, "/tmp/vd-test-difflines-src-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_non_null(mkdtemp(f->src));
	/* Small chunks: a file of a few hundred KB has many, most of them
	 * shared between two versions. */
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	assert_int_equal(vd_engine_task_create(f->e, "t"), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	vd_rm_rf(f->src);
	free(f);
	return 0;
}

/* ---- texts and files ---------------------------------------------------- */

static char *make_text(size_t lines, unsigned seed, size_t *n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	for (size_t i = 0; i < lines; i++)
		assert_int_equal(vd_buf_addf(&b, "%u: line %zu of the text, word%zu\n", seed, i,
					     i % 97), 0);
	return vd_buf_detach(&b, n);
}

/* A copy of t with some lines changed, some inserted and some deleted, every
 * `every` lines, and its last newline taken away when cut_end. */
static char *edit_text(const char *t, size_t n, size_t every, bool cut_end, size_t *out_n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	size_t line = 0;
	for (const char *p = t; p < t + n; line++) {
		const char *q = memchr(p, '\n', (size_t)(t + n - p));
		size_t len = q ? (size_t)(q - p) + 1 : (size_t)(t + n - p);
		if (line % every == every / 2)
			assert_int_equal(vd_buf_addf(&b, "changed line %zu\n", line), 0);
		else if (line % every == every / 3)
			;   /* deleted */
		else
			assert_int_equal(vd_buf_add(&b, p, len), 0);
		if (line % every == 1)
			assert_int_equal(vd_buf_addf(&b, "inserted after %zu\n", line), 0);
		p += len;
	}
	if (cut_end && b.len && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	return vd_buf_detach(&b, out_n);
}

static void write_file(const char *path, const char *p, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void submit(struct vd_version_info *vi, vd_engine *e, const char *name, const char *p,
		   size_t n)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	char path[] = "/tmp/vd-test-difflines-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, p, n), 0);
	assert_int_equal(vd_engine_submit_file(vi, &why, e, "t", name, NULL, fd), 1);
	close(fd);
	vd_buf_release(&why);
}

/* What GNU diff -u prints for the two byte strings (NULL: /dev/null),
 * without its two header lines. */
static char *gnu_body(const char *a, size_t na, const char *b, size_t nb)
{
	char pa[] = "/tmp/vd-test-difflines-a-XXXXXX", pb[] = "/tmp/vd-test-difflines-b-XXXXXX";
	char cmd[256];
	int fa = mkstemp(pa), fb = mkstemp(pb);
	assert_true(fa >= 0 && fb >= 0);
	close(fa);
	close(fb);
	if (a)
		write_file(pa, a, na);
	if (b)
		write_file(pb, b, nb);
	snprintf(cmd, sizeof cmd, "LC_ALL=C /usr/bin/diff -u %s %s", a ? pa : "/dev/null",
		 b ? pb : "/dev/null");
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 28);
	char tmp[65536];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, p)) > 0)
		assert_int_equal(vd_buf_add(&out, tmp, k), 0);
	int st = pclose(p);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
	unlink(pa);
	unlink(pb);
	char *s = vd_buf_detach(&out, NULL), *body = s;
	for (int i = 0; i < 2 && *body; i++) {
		char *q = strchr(body, '\n');
		body = q ? q + 1 : body + strlen(body);
	}
	memmove(s, body, strlen(body) + 1);
	return s;
}

/* expect += "--- la\n+++ lb\n" and GNU's body, when the two differ. */
static void expect_file(struct vd_buf *expect, const char *la, const char *lb, const char *a,
			size_t na, const char *b, size_t nb)
{
	char *g = gnu_body(a, na, b, nb);
	if (*g)
		assert_int_equal(vd_buf_addf(expect, "--- %s\n+++ %s\n%s", la, lb, g), 0);
	free(g);
}

static int diff_lines(struct vd_buf *out, bool *trunc, struct vd_buf *why, vd_engine *e,
		      const char *a, const char *b, const char *path, bool result, size_t cap)
{
	vd_buf_reset(out);
	vd_buf_reset(why);
	*trunc = true;   /* the call must say */
	return vd_engine_api_diff_lines(out, trunc, why, e, a, b, path, result, cap);
}

static void assert_same_text(const char *got, const char *want)
{
	if (strcmp(got, want)) {
		fprintf(stderr, "---- got ----\n%.3000s\n---- wanted ----\n%.3000s\n", got, want);
		fail_msg("the line diff differs from diff -u");
	}
}

/* ---- tests ---------------------------------------------------------------- */

/* Two versions of a file: GNU diff's hunks under --- a/NAME, +++ b/NAME
 * (the versions' names), for an edit here and there and for a last line
 * without its newline; and the same version twice is no diff at all. */
static void test_file_versions(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va, vb;
	struct vd_buf out = VD_BUF_INIT(CAP + 1), why = VD_BUF_INIT(4096);
	struct vd_buf expect = VD_BUF_INIT((size_t)1 << 26);
	bool trunc;
	size_t na, nb;
	char *ta = make_text(8000, 1, &na), *tb = edit_text(ta, na, 701, true, &nb);

	submit(&va, f->e, "data.txt", ta, na);
	submit(&vb, f->e, "data.txt", tb, nb);
	expect_file(&expect, "a/data.txt", "b/data.txt", ta, na, tb, nb);
	assert_true(expect.len > 1000);
	assert_non_null(strstr(vd_buf_cstr(&expect), "\\ No newline at end of file\n"));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    CAP), 0);
	assert_false(trunc);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));

	/* The other way round. */
	vd_buf_reset(&expect);
	expect_file(&expect, "a/data.txt", "b/data.txt", tb, nb, ta, na);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, vb.data_id, va.data_id, "", false,
				    CAP), 0);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));

	/* Two files of different names are still compared, each under its
	 * own name. */
	struct vd_version_info vc;
	char *tc = edit_text(ta, na, 1999, false, &nb);
	submit(&vc, f->e, "other.txt", tc, nb);
	vd_buf_reset(&expect);
	expect_file(&expect, "a/data.txt", "b/other.txt", ta, na, tc, nb);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vc.data_id, NULL, false,
				    CAP), 0);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));

	/* Equal: nothing. A file version has no path inside it. */
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, va.data_id, NULL, false,
				    CAP), 0);
	assert_int_equal(out.len, 0);
	assert_false(trunc);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, "data.txt",
				    false, CAP), -ENOENT);
	assert_int_equal(out.len, 0);

	free(ta);
	free(tb);
	free(tc);
	vd_buf_release(&out);
	vd_buf_release(&why);
	vd_buf_release(&expect);
}

struct tfile {
	const char *path;
	char *p;
	size_t n;
};

static void make_tree(const char *root, const struct tfile *files, size_t n)
{
	char path[512];
	vd_rm_rf(root);
	assert_int_equal(mkdir(root, 0755), 0);
	snprintf(path, sizeof path, "%s/sub", root);
	assert_int_equal(mkdir(path, 0755), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", root, files[i].path);
		write_file(path, files[i].p, files[i].n);
	}
}

/* Two versions of a tree: every file by path, in path order, a file of
 * one side only against /dev/null, each as GNU diff -u prints it, under
 * a/NAME/PATH and b/NAME/PATH; path picks one of them. A tree against a
 * file: the file is compared with nothing, as in `vdfs diff --lines`. */
static void test_tree_versions(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va, vb, vf;
	struct vd_buf out = VD_BUF_INIT(CAP + 1), why = VD_BUF_INIT(4096);
	struct vd_buf expect = VD_BUF_INIT((size_t)1 << 26);
	char root[128];
	bool trunc;
	size_t n;
	struct tfile A[4], B[4];

	A[0] = (struct tfile){ "only_a.txt", make_text(50, 2, &n), 0 };
	A[0].n = n;
	A[1] = (struct tfile){ "sub/same.txt", make_text(3000, 3, &n), 0 };
	A[1].n = n;
	A[2] = (struct tfile){ "sub/y.txt", make_text(4000, 4, &n), 0 };
	A[2].n = n;
	A[3] = (struct tfile){ "x.txt", make_text(6000, 5, &n), 0 };
	A[3].n = n;
	B[0] = (struct tfile){ "only_b.txt", make_text(40, 6, &n), 0 };
	B[0].n = n;
	B[1] = A[1];
	B[2] = (struct tfile){ "sub/y.txt", edit_text(A[2].p, A[2].n, 1500, false, &n), 0 };
	B[2].n = n;
	B[3] = (struct tfile){ "x.txt", edit_text(A[3].p, A[3].n, 333, false, &n), 0 };
	B[3].n = n;

	snprintf(root, sizeof root, "%s/tree", f->src);
	make_tree(root, A, 4);
	assert_int_equal(vd_engine_submit_tree(&va, &why, f->e, "t", "proj", NULL, root), 1);
	make_tree(root, B, 4);
	assert_int_equal(vd_engine_submit_tree(&vb, &why, f->e, "t", "proj", NULL, root), 1);

	expect_file(&expect, "a/proj/only_a.txt", "/dev/null", A[0].p, A[0].n, NULL, 0);
	expect_file(&expect, "/dev/null", "b/proj/only_b.txt", NULL, 0, B[0].p, B[0].n);
	expect_file(&expect, "a/proj/sub/y.txt", "b/proj/sub/y.txt", A[2].p, A[2].n, B[2].p,
		    B[2].n);
	expect_file(&expect, "a/proj/x.txt", "b/proj/x.txt", A[3].p, A[3].n, B[3].p, B[3].n);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    CAP), 0);
	assert_false(trunc);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));

	/* One file of both. */
	vd_buf_reset(&expect);
	expect_file(&expect, "a/proj/x.txt", "b/proj/x.txt", A[3].p, A[3].n, B[3].p, B[3].n);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, "x.txt",
				    false, CAP), 0);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id,
				    "sub/same.txt", false, CAP), 0);
	assert_int_equal(out.len, 0);
	/* Not a file of both: one side's only, a directory, nothing. */
	const char *bad[] = { "only_a.txt", "only_b.txt", "sub", "nope", "/x.txt" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, bad[i],
					    false, CAP), -ENOENT);
		assert_non_null(strstr(vd_buf_cstr(&why), bad[i]));
		assert_int_equal(out.len, 0);
	}

	/* A file version against the tree: the file (path "") sorts first and
	 * has no partner, then every file of the tree has none. */
	submit(&vf, f->e, "x.txt", A[3].p, A[3].n);
	vd_buf_reset(&expect);
	expect_file(&expect, "a/x.txt", "/dev/null", A[3].p, A[3].n, NULL, 0);
	for (size_t i = 0; i < 4; i++) {
		char lb[64];
		snprintf(lb, sizeof lb, "b/proj/%s", B[i].path);
		expect_file(&expect, "/dev/null", lb, NULL, 0, B[i].p, B[i].n);
	}
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, vf.data_id, vb.data_id, NULL, false,
				    CAP), 0);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, vf.data_id, vb.data_id, "x.txt",
				    false, CAP), -ENOENT);

	for (size_t i = 0; i < 4; i++) {
		free(A[i].p);
		if (i != 1)
			free(B[i].p);
	}
	vd_buf_release(&out);
	vd_buf_release(&why);
	vd_buf_release(&expect);
}

/* The last hunk header of a unified diff, whose counts must match the
 * lines after it. */
static const char *check_last_hunk(const char *s)
{
	const char *h = NULL, *p = s;
	unsigned long ca = 1, cb = 1, na = 0, nb = 0;
	char *q;
	while ((p = strstr(p, "@@ -"))) {
		if (p == s || p[-1] == '\n')
			h = p;
		p += 4;
	}
	assert_non_null(h);
	strtoul(h + 4, &q, 10);
	if (*q == ',')
		ca = strtoul(q + 1, &q, 10);
	assert_true(q[0] == ' ' && q[1] == '+');
	strtoul(q + 2, &q, 10);
	if (*q == ',')
		cb = strtoul(q + 1, &q, 10);
	for (p = strchr(h, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
		na += *p == ' ' || *p == '-';
		nb += *p == ' ' || *p == '+';
	}
	assert_int_equal(na, ca);
	assert_int_equal(nb, cb);
	return h;
}

/*
 * The cap: at most cap bytes, truncated set, ending at a line end, and
 * what is there is the whole diff's beginning: byte for byte up to its
 * last hunk header, then the beginning of that hunk's lines, which its
 * range counts (the diff stopped before the first line that did not fit,
 * so that hunk is shorter than in the whole diff). A cap the diff fits
 * in exactly cuts nothing; one byte less does.
 */
static void test_cap(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va, vb;
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 26), why = VD_BUF_INIT(4096);
	struct vd_buf full = VD_BUF_INIT((size_t)1 << 26);
	bool trunc;
	size_t na, nb;
	char *ta = make_text(30000, 7, &na), *tb = edit_text(ta, na, 20, false, &nb);

	submit(&va, f->e, "big.txt", ta, na);
	submit(&vb, f->e, "big.txt", tb, nb);
	assert_int_equal(diff_lines(&full, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    SIZE_MAX), 0);
	assert_false(trunc);
	assert_true(full.len > 300000);
	char *g = gnu_body(ta, na, tb, nb);
	assert_int_equal(strncmp(vd_buf_cstr(&full), "--- a/big.txt\n+++ b/big.txt\n", 28), 0);
	assert_same_text(vd_buf_cstr(&full) + 28, g);
	free(g);

	const size_t caps[] = { 0, 1, 29, 100, 4096, 65536, 200001, full.len - 1 };
	for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
		size_t cap = caps[i];
		assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL,
					    false, cap), 0);
		assert_true(trunc);
		assert_true(out.len <= cap);
		assert_int_equal(strlen(vd_buf_cstr(&out)), out.len);
		if (cap >= 1000)
			assert_true(out.len + 300 > cap);
		if (!out.len)
			continue;
		assert_int_equal(out.data[out.len - 1], '\n');
		const char *h = check_last_hunk(out.data);
		size_t at = (size_t)(h - out.data);
		assert_memory_equal(out.data, full.data, at);
		const char *ob = strchr(h, '\n') + 1, *fb = strchr(full.data + at, '\n') + 1;
		assert_memory_equal(ob, fb, out.len - (size_t)(ob - out.data));
	}
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    full.len), 0);
	assert_false(trunc);
	assert_string_equal(vd_buf_cstr(&out), vd_buf_cstr(&full));

	free(ta);
	free(tb);
	vd_buf_release(&out);
	vd_buf_release(&why);
	vd_buf_release(&full);
}

/* The cap over a tree: files that fit come whole, the diff stops inside
 * the one that does not, and an exact fit is no cut. */
static void test_cap_tree(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va, vb;
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 26), why = VD_BUF_INIT(4096);
	struct vd_buf full = VD_BUF_INIT((size_t)1 << 26);
	char root[128];
	bool trunc;
	size_t n;
	struct tfile A[3], B[3];

	for (int i = 0; i < 3; i++) {
		static const char *names[] = { "a.txt", "b.txt", "sub/c.txt" };
		A[i] = (struct tfile){ names[i], make_text(3000, 10 + (unsigned)i, &n), 0 };
		A[i].n = n;
		B[i] = (struct tfile){ names[i], edit_text(A[i].p, A[i].n, 100, false, &n), 0 };
		B[i].n = n;
	}
	snprintf(root, sizeof root, "%s/tree", f->src);
	make_tree(root, A, 3);
	assert_int_equal(vd_engine_submit_tree(&va, &why, f->e, "t", "tr", NULL, root), 1);
	make_tree(root, B, 3);
	assert_int_equal(vd_engine_submit_tree(&vb, &why, f->e, "t", "tr", NULL, root), 1);
	assert_int_equal(diff_lines(&full, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    SIZE_MAX), 0);
	assert_non_null(full.data);
	const char *second = strstr(full.data, "--- a/tr/b.txt\n");
	const char *third = strstr(full.data, "--- a/tr/sub/c.txt\n");
	assert_non_null(second);
	assert_non_null(third);
	/* Exactly the first two files. */
	size_t two = (size_t)(third - full.data);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    two), 0);
	assert_true(trunc);
	assert_int_equal(out.len, two);
	assert_memory_equal(out.data, full.data, two);
	/* Into the second file. */
	size_t mid = (size_t)(second - full.data) + 500;
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    mid), 0);
	assert_true(trunc);
	assert_true(out.len <= mid && out.len > (size_t)(second - full.data));
	check_last_hunk(out.data);
	assert_memory_equal(out.data, full.data, (size_t)(second - full.data));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, false,
				    full.len), 0);
	assert_false(trunc);
	assert_string_equal(vd_buf_cstr(&out), vd_buf_cstr(&full));

	for (int i = 0; i < 3; i++) {
		free(A[i].p);
		free(B[i].p);
	}
	vd_buf_release(&out);
	vd_buf_release(&why);
	vd_buf_release(&full);
}

static void test_unknown_ids(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va;
	struct vd_buf out = VD_BUF_INIT(CAP + 1), why = VD_BUF_INIT(4096);
	const char *none = "0123456789abcdef0123456789abcdef";
	bool trunc;
	size_t n;
	char *t = make_text(100, 8, &n);

	submit(&va, f->e, "a.txt", t, n);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, none, NULL, false, CAP),
			 -ENOENT);
	assert_non_null(strstr(vd_buf_cstr(&why), "no version 0123456789abcdef"));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, none, va.data_id, NULL, false, CAP),
			 -ENOENT);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, none, va.data_id, NULL, true, CAP),
			 -ENOENT);
	assert_non_null(strstr(vd_buf_cstr(&why), "no version"));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, "xyz", va.data_id, NULL, false, CAP),
			 -EINVAL);
	assert_int_equal(out.len, 0);
	free(t);
	vd_buf_release(&out);
	vd_buf_release(&why);
}

/* ---- results: an executor played here, as test_engine.c does ------------ */

static json_t *lease(vd_engine *e, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", 8, "wait_ms", 0);
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

/* The unit's input, upper-cased, as its output. */
static void answer(vd_engine *e, const json_t *l)
{
	struct vd_buf in = VD_BUF_INIT(1 << 26), why = VD_BUF_INIT(1024);
	json_t *c, *reply = NULL;
	size_t i;
	json_array_foreach(json_object_get(l, "chunks"), i, c)
		assert_int_equal(vd_engine_api_chunk(&in, &why, e,
				 json_string_value(json_object_get(c, "id"))), 0);
	size_t skip = (size_t)json_integer_value(json_object_get(l, "skip"));
	for (size_t j = 0; j < in.len; j++)
		if (in.data[j] >= 'a' && in.data[j] <= 'z')
			in.data[j] -= 32;
	json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", 0, "ms", 1, "stderr", "");
	assert_int_equal(vd_engine_api_result(&reply, &why, e,
		json_string_value(json_object_get(l, "lease")), meta, in.data + skip,
		in.len - skip), 0);
	json_decref(meta);
	json_decref(reply);
	vd_buf_release(&in);
	vd_buf_release(&why);
}

static void wait_done(vd_engine *e, const char *id)
{
	struct vd_buf st = VD_BUF_INIT(4096);
	for (int i = 0; i < 500; i++) {
		vd_buf_reset(&st);
		assert_int_equal(vd_engine_render(&st, e, "t", id, VD_GEN_STATUS), 0);
		if (!strncmp(vd_buf_cstr(&st), "done", 4)) {
			vd_buf_release(&st);
			return;
		}
		usleep(10000);
	}
	fail_msg("status stayed '%s'", vd_buf_cstr(&st));
}

static char *result_bytes(size_t *n, char id[VD_ID_SIZE], vd_engine *e, const char *data)
{
	struct vd_file *r = NULL;
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	assert_int_equal(vd_engine_result_get(&r, e, "t", data), 0);
	for (size_t i = 0; i < r->n; i++)
		assert_int_equal(vd_engine_chunk_read(&b, e, r->ext[i].id), 0);
	memcpy(id, r->id, VD_ID_SIZE);
	vd_file_free(r);
	return vd_buf_detach(&b, n);
}

/* result=1 before any run: -ENOENT, no result yet. After the runs: the
 * two results' diff under a/result.csv, b/result.csv, which is also what
 * the two result IDs give without result=1; a result ID with result=1 is
 * not a dataset version. */
static void test_results(void **state)
{
	struct fx *f = *state;
	struct vd_version_info va, vb;
	struct vd_buf out = VD_BUF_INIT(CAP + 1), why = VD_BUF_INIT(4096);
	struct vd_buf expect = VD_BUF_INIT((size_t)1 << 26);
	char code[VD_ID_SIZE], ra[VD_ID_SIZE], rb[VD_ID_SIZE];
	bool trunc;
	size_t na, nb, nra, nrb;
	char *ta = make_text(5000, 9, &na), *tb = edit_text(ta, na, 900, false, &nb);

	submit(&va, f->e, "in.txt", ta, na);
	submit(&vb, f->e, "in.txt", tb, nb);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, true,
				    CAP), -ENOENT);
	assert_non_null(strstr(vd_buf_cstr(&why), "has no result yet"));
	assert_non_null(strstr(vd_buf_cstr(&why), va.data_id));
	assert_int_equal(out.len, 0);

	const char *cfg = "unit_size = 16K\n";
	assert_int_equal(vd_engine_config_write(&why, f->e, "t", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, f->e, "t", "#!/bin/sh\n", 10), 1);
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", "ex", "level", 1, "slots", 4), *reply = NULL;
	assert_int_equal(vd_engine_api_register(&reply, &why, f->e, req), 0);
	json_decref(req);
	json_decref(reply);
	json_t *l;
	while ((l = lease(f->e, "ex"))) {
		size_t i;
		json_t *one;
		json_array_foreach(json_object_get(l, "leases"), i, one)
			answer(f->e, one);
		json_decref(l);
	}
	wait_done(f->e, va.data_id);
	wait_done(f->e, vb.data_id);

	char *pa = result_bytes(&nra, ra, f->e, va.data_id);
	char *pb = result_bytes(&nrb, rb, f->e, vb.data_id);
	expect_file(&expect, "a/result.csv", "b/result.csv", pa, nra, pb, nrb);
	assert_true(expect.len > 100);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, vb.data_id, NULL, true,
				    CAP), 0);
	assert_false(trunc);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, ra, rb, NULL, false, CAP), 0);
	assert_same_text(vd_buf_cstr(&out), vd_buf_cstr(&expect));
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, va.data_id, va.data_id, NULL, true,
				    CAP), 0);
	assert_int_equal(out.len, 0);
	assert_int_equal(diff_lines(&out, &trunc, &why, f->e, ra, rb, NULL, true, CAP), -EINVAL);

	free(pa);
	free(pb);
	free(ta);
	free(tb);
	vd_buf_release(&out);
	vd_buf_release(&why);
	vd_buf_release(&expect);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
