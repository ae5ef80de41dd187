/*
 * Unit tests for lib/diff.c: vd_diff_seq against a dynamic-programming
 * LCS, and vd_diff_files on files cut into chunks held in memory, against
 * GNU `diff -u` on the same two files (identical output, headers aside),
 * against an independent LCS (the number of changed lines is minimal), and
 * by applying the printed hunks to the first file (which must give the
 * second). Also: chunks shared in order are never fetched, small windows
 * still give a correct patch, missing newline counts, chunks cut inside
 * lines, binary data, and a limit on the output that stops the work.
 */
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

#include <xxhash.h>

#include "buf.h"
#include "diff.h"

/* ---- a deterministic generator ---------------------------------------- */

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

/* ---- texts as arrays of lines ----------------------------------------- */

struct text {
	struct vd_buf b;
};

static void text_init(struct text *t)
{
	vd_buf_init(&t->b, (size_t)1 << 30);
}

static void add_line(struct text *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	assert_int_equal(vd_buf_vaddf(&t->b, fmt, ap), 0);
	va_end(ap);
}

/* Lines of t as (pointer, length) pairs, newline included. */
struct lines {
	const char **p;
	size_t *len;
	size_t n;
};

static void split(struct lines *L, const char *s, size_t n)
{
	size_t cap = 16, off = 0;
	L->p = malloc(cap * sizeof *L->p);
	L->len = malloc(cap * sizeof *L->len);
	L->n = 0;
	while (off < n) {
		const char *q = memchr(s + off, '\n', n - off);
		size_t e = q ? (size_t)(q - s) + 1 : n;
		if (L->n == cap) {
			cap *= 2;
			L->p = realloc(L->p, cap * sizeof *L->p);
			L->len = realloc(L->len, cap * sizeof *L->len);
		}
		L->p[L->n] = s + off;
		L->len[L->n++] = e - off;
		off = e;
	}
}

static void lines_free(struct lines *L)
{
	free(L->p);
	free(L->len);
}

/* Unique lines 0..n-1. */
static void gen_unique(struct text *t, size_t n)
{
	text_init(t);
	for (size_t i = 0; i < n; i++)
		add_line(t, "line %zu of the original text %016llx\n", i,
			 (unsigned long long)(rnd() & 0xffffffffffffULL));
}

/* Lines drawn from a small vocabulary: many repeats, many ambiguities. */
static void gen_repetitive(struct text *t, size_t n, size_t vocab)
{
	text_init(t);
	for (size_t i = 0; i < n; i++)
		add_line(t, "w%zu\n", rnd_below(vocab));
}

/* Copy of a with `edits` random line edits: change, insert or delete. */
static void gen_edited(struct text *out, const struct text *a, int edits, size_t vocab)
{
	struct lines L;
	split(&L, vd_buf_cstr(&a->b), a->b.len);
	size_t *kind = calloc(L.n + 1, sizeof *kind);   /* 0 keep, 1 change, 2 insert before, 3 delete */
	for (int e = 0; e < edits; e++)
		kind[rnd_below(L.n + 1)] = 1 + rnd_below(3);
	text_init(out);
	for (size_t i = 0; i <= L.n; i++) {
		if (kind[i] == 2) {
			if (vocab)
				add_line(out, "w%zu\n", rnd_below(vocab));
			else
				add_line(out, "inserted line %zu %llx\n", i, (unsigned long long)rnd());
		}
		if (i == L.n)
			break;
		if (kind[i] == 1) {
			if (vocab)
				add_line(out, "w%zu\n", rnd_below(vocab));
			else
				add_line(out, "changed line %zu %llx\n", i, (unsigned long long)rnd());
		} else if (kind[i] != 3) {
			assert_int_equal(vd_buf_add(&out->b, L.p[i], L.len[i]), 0);
		}
	}
	free(kind);
	lines_free(&L);
}

/* ---- chunking and the in-memory chunk store --------------------------- */

#define MAX_CHUNKS 200000

struct chunk {
	char id[VD_ID_SIZE];
	const char *p;
	size_t len;
};

static struct chunk store[MAX_CHUNKS];
static size_t nstore;
static size_t fetches;

static void make_id(char out[VD_ID_SIZE], const char *p, size_t n)
{
	XXH128_hash_t h = XXH3_128bits(p, n);
	snprintf(out, VD_ID_SIZE, "%016llx%016llx", (unsigned long long)h.high64,
		 (unsigned long long)h.low64);
}

enum cut { CUT_LINES, CUT_BYTES };

/*
 * Content-defined cuts, so that an edit changes only nearby chunks: with
 * CUT_LINES after a line whose hash hits 1 in `avg` (chunks hold whole
 * lines, as the daemon's chunker makes them); with CUT_BYTES after any byte
 * whose 8-byte window hits (chunks end mid-line, as results and binary data
 * may). known = false leaves the newline counts out of the extents.
 */
static struct vd_diff_extent *chunk_text(size_t *n, const struct text *t, enum cut how,
					 unsigned avg, bool known)
{
	const char *s = vd_buf_cstr(&t->b);
	size_t len = t->b.len, start = 0, cap = 16;
	struct vd_diff_extent *x = malloc(cap * sizeof *x);
	*n = 0;
	for (size_t i = 0; i < len; i++) {
		bool cut = i + 1 == len;
		if (how == CUT_LINES && s[i] == '\n') {
			size_t ls = i;
			while (ls > start && s[ls - 1] != '\n')
				ls--;
			cut = cut || XXH3_64bits(s + ls, i - ls) % avg == 0;
		} else if (how == CUT_BYTES && i >= 8) {
			cut = cut || XXH3_64bits(s + i - 7, 8) % avg == 0;
		}
		if (!cut)
			continue;
		if (*n == cap) {
			cap *= 2;
			x = realloc(x, cap * sizeof *x);
		}
		struct vd_diff_extent *e = &x[(*n)++];
		make_id(e->id, s + start, i + 1 - start);
		e->len = i + 1 - start;
		uint64_t nl = 0;
		for (size_t j = start; j <= i; j++)
			nl += s[j] == '\n';
		e->lines = known ? nl : VD_DIFF_LINES_UNKNOWN;
		assert_true(nstore < MAX_CHUNKS);
		store[nstore++] = (struct chunk){ "", s + start, e->len };
		memcpy(store[nstore - 1].id, e->id, VD_ID_SIZE);
		start = i + 1;
	}
	return x;
}

static int fake_fetch(struct vd_buf *out, void *arg, const char *id, uint64_t len)
{
	(void)arg;
	for (size_t i = 0; i < nstore; i++) {
		if (!strcmp(store[i].id, id)) {
			assert_int_equal(store[i].len, len);
			fetches++;
			return vd_buf_add(out, store[i].p, store[i].len);
		}
	}
	return -ENOENT;
}

/* ---- running both diffs ----------------------------------------------- */

static char *slurp(FILE *f, size_t *n)
{
	struct vd_buf b = VD_BUF_INIT((size_t)1 << 30);
	char tmp[65536];
	size_t k;
	rewind(f);
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		assert_int_equal(vd_buf_add(&b, tmp, k), 0);
	return vd_buf_detach(&b, n);
}

/* Output minus the first two lines (the --- and +++ headers). */
static const char *body_of(const char *s)
{
	for (int i = 0; i < 2 && *s; i++) {
		const char *q = strchr(s, '\n');
		s = q ? q + 1 : s + strlen(s);
	}
	return s;
}

static char *gnu_diff_u(const struct text *a, const struct text *b, int context)
{
	char pa[] = "/tmp/vdfs-test-diff-a.XXXXXX", pb[] = "/tmp/vdfs-test-diff-b.XXXXXX";
	int fa = mkstemp(pa), fb = mkstemp(pb);
	assert_true(fa >= 0 && fb >= 0);
	assert_int_equal(write(fa, vd_buf_cstr(&a->b), a->b.len), (ssize_t)a->b.len);
	assert_int_equal(write(fb, vd_buf_cstr(&b->b), b->b.len), (ssize_t)b->b.len);
	close(fa);
	close(fb);
	char cmd[256];
	snprintf(cmd, sizeof cmd, "LC_ALL=C diff -U%d %s %s", context, pa, pb);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 30);
	char tmp[65536];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, p)) > 0)
		assert_int_equal(vd_buf_add(&out, tmp, k), 0);
	int st = pclose(p);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
	unlink(pa);
	unlink(pb);
	return vd_buf_detach(&out, NULL);
}

static char *gnu_diff(const struct text *a, const struct text *b)
{
	return gnu_diff_u(a, b, 3);
}

struct result {
	char *out;
	size_t len;
	struct vd_diff_stats st;
	size_t fetches;
	size_t chunks_a, chunks_b;
};

static void run_diff(struct result *r, const struct text *a, const struct text *b, enum cut how,
		     unsigned avg, bool known, const struct vd_diff_opts *opts)
{
	size_t na, nb;
	struct vd_diff_opts o;
	FILE *f = tmpfile();
	assert_non_null(f);
	nstore = 0;
	struct vd_diff_extent *xa = chunk_text(&na, a, how, avg, known);
	struct vd_diff_extent *xb = chunk_text(&nb, b, how, avg, known);
	if (opts)
		o = *opts;
	else
		vd_diff_opts_default(&o);
	o.fetch = fake_fetch;
	o.out = f;
	memset(r, 0, sizeof *r);
	fetches = 0;
	assert_int_equal(vd_diff_files(&r->st, &o, "a", xa, na, "b", xb, nb), 0);
	r->out = slurp(f, &r->len);
	r->fetches = fetches;
	r->chunks_a = na;
	r->chunks_b = nb;
	fclose(f);
	free(xa);
	free(xb);
}

/* Apply a unified diff to a; it must give b, and every context and removed
 * line must match a. */
static void apply_check(const struct text *a, const struct text *b, const char *patch)
{
	struct lines A, P;
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 30);
	struct vd_buf cur = VD_BUF_INIT((size_t)1 << 30);   /* a hunk line being built */
	char mark = 0;
	size_t ai = 0;

	split(&A, vd_buf_cstr(&a->b), a->b.len);
	split(&P, patch, strlen(patch));
	/* Body lines: a mark and text with '\n'; a following "\ No newline"
	 * line takes the '\n' away. Flushed when the next line arrives. */
#define FLUSH()                                                                           \
	do {                                                                              \
		if (mark == ' ' || mark == '-') {                                         \
			assert_true(ai < A.n);                                            \
			assert_int_equal(A.len[ai], cur.len);                             \
			assert_memory_equal(A.p[ai], vd_buf_cstr(&cur), cur.len);         \
			if (mark == ' ')                                                  \
				assert_int_equal(vd_buf_add(&out, A.p[ai], A.len[ai]), 0); \
			ai++;                                                             \
		} else if (mark == '+') {                                                 \
			assert_int_equal(vd_buf_add(&out, vd_buf_cstr(&cur), cur.len), 0); \
		}                                                                         \
		mark = 0;                                                                 \
		vd_buf_reset(&cur);                                                       \
	} while (0)
	for (size_t i = 0; i < P.n; i++) {
		const char *l = P.p[i];
		size_t n = P.len[i];
		if (!strncmp(l, "--- ", 4) || !strncmp(l, "+++ ", 4)) {
			FLUSH();
			continue;
		}
		if (!strncmp(l, "@@ -", 4)) {
			FLUSH();
			unsigned long long s = strtoull(l + 4, NULL, 10);
			const char *comma = memchr(l, ',', n);
			const char *space = strchr(l + 4, ' ');
			unsigned long long cnt = comma && comma < space ? strtoull(comma + 1, NULL, 10) : 1;
			size_t first = cnt ? (size_t)s - 1 : (size_t)s;   /* 0-based */
			assert_true(first >= ai);
			while (ai < first)
				assert_int_equal(vd_buf_add(&out, A.p[ai], A.len[ai]), 0), ai++;
			continue;
		}
		if (l[0] == '\\') {
			assert_true(cur.len && cur.data[cur.len - 1] == '\n');
			cur.data[--cur.len] = '\0';
			continue;
		}
		FLUSH();
		assert_true(l[0] == ' ' || l[0] == '-' || l[0] == '+');
		mark = l[0];
		assert_int_equal(vd_buf_add(&cur, l + 1, n - 1), 0);
	}
	FLUSH();
#undef FLUSH
	while (ai < A.n)
		assert_int_equal(vd_buf_add(&out, A.p[ai], A.len[ai]), 0), ai++;
	assert_int_equal(out.len, b->b.len);
	assert_memory_equal(vd_buf_cstr(&out), vd_buf_cstr(&b->b), out.len);
	vd_buf_release(&out);
	vd_buf_release(&cur);
	lines_free(&A);
	lines_free(&P);
}

/* The length of a longest common subsequence of lines (small inputs). */
static size_t lcs_lines(const struct text *a, const struct text *b)
{
	struct lines A, B;
	split(&A, vd_buf_cstr(&a->b), a->b.len);
	split(&B, vd_buf_cstr(&b->b), b->b.len);
	size_t *prev = calloc(B.n + 1, sizeof *prev), *cur = calloc(B.n + 1, sizeof *cur);
	for (size_t i = 1; i <= A.n; i++) {
		for (size_t j = 1; j <= B.n; j++) {
			if (A.len[i - 1] == B.len[j - 1] && !memcmp(A.p[i - 1], B.p[j - 1], A.len[i - 1]))
				cur[j] = prev[j - 1] + 1;
			else
				cur[j] = prev[j] > cur[j - 1] ? prev[j] : cur[j - 1];
		}
		size_t *t = prev;
		prev = cur;
		cur = t;
	}
	size_t r = prev[B.n];
	free(prev);
	free(cur);
	lines_free(&A);
	lines_free(&B);
	return r;
}

static size_t nlines(const struct text *t)
{
	struct lines L;
	split(&L, vd_buf_cstr(&t->b), t->b.len);
	size_t n = L.n;
	lines_free(&L);
	return n;
}

/* Ours equals GNU diff -u (headers aside) and applies. */
static void check_like_gnu(const struct text *a, const struct text *b, enum cut how, unsigned avg,
			   bool known, struct result *r)
{
	run_diff(r, a, b, how, avg, known, NULL);
	char *g = gnu_diff(a, b);
	if (strcmp(body_of(r->out), body_of(g))) {
		fprintf(stderr, "---- ours ----\n%.2000s\n---- GNU diff ----\n%.2000s\n", r->out, g);
		fail_msg("vd_diff_files differs from diff -u");
	}
	apply_check(a, b, r->out);
	free(g);
}

static void text_free(struct text *t)
{
	vd_buf_release(&t->b);
}

/* ---- tests ------------------------------------------------------------ */

static void test_seq_vs_dp(void **state)
{
	(void)state;
	for (int round = 0; round < 300; round++) {
		size_t na = rnd_below(60), nb = rnd_below(60);
		uint32_t vocab = 1 + (uint32_t)rnd_below(8), a[64], b[64];
		bool ga[64], gb[64];
		for (size_t i = 0; i < na; i++)
			a[i] = (uint32_t)rnd_below(vocab);
		for (size_t i = 0; i < nb; i++)
			b[i] = (uint32_t)rnd_below(vocab);
		assert_int_equal(vd_diff_seq(ga, gb, a, na, b, nb, vocab), 0);
		/* The unchanged elements pair up in order and are equal ... */
		size_t i = 0, j = 0, kept = 0;
		for (;;) {
			while (i < na && ga[i])
				i++;
			while (j < nb && gb[j])
				j++;
			if (i == na || j == nb)
				break;
			assert_int_equal(a[i], b[j]);
			i++, j++, kept++;
		}
		while (i < na)
			assert_true(ga[i++]);
		while (j < nb)
			assert_true(gb[j++]);
		/* ... and are as many as a longest common subsequence. */
		size_t dp[65][65] = { { 0 } };
		for (size_t x = 1; x <= na; x++)
			for (size_t y = 1; y <= nb; y++)
				dp[x][y] = a[x - 1] == b[y - 1] ? dp[x - 1][y - 1] + 1
					 : dp[x - 1][y] > dp[x][y - 1] ? dp[x - 1][y] : dp[x][y - 1];
		assert_int_equal(kept, dp[na][nb]);
	}
}

static void test_identical(void **state)
{
	struct text a;
	struct result r;
	(void)state;
	gen_unique(&a, 20000);
	run_diff(&r, &a, &a, CUT_LINES, 64, true, NULL);
	assert_int_equal(r.len, 0);
	assert_int_equal(r.fetches, 0);   /* every chunk shared in order */
	assert_int_equal(r.st.regions, 0);
	free(r.out);
	text_free(&a);
}

static void test_random_edits(void **state)
{
	(void)state;
	for (int round = 0; round < 6; round++) {
		struct text a, b;
		struct result r;
		gen_unique(&a, 30000);
		gen_edited(&b, &a, 10, 0);
		check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
		/* Only the chunks near the 10 edits are read: well under half. */
		assert_true(r.fetches < r.chunks_a / 4);
		assert_true(r.st.removed + r.st.added > 0);
		free(r.out);
		text_free(&a);
		text_free(&b);
	}
}

static void test_insert_at_start(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 20000);
	text_init(&b);
	add_line(&b, "a brand new first line\n");
	assert_int_equal(vd_buf_add(&b.b, a.b.data, a.b.len), 0);
	check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
	assert_int_equal(r.st.added, 1);
	assert_int_equal(r.st.removed, 0);
	assert_non_null(strstr(r.out, "@@ -1,3 +1,4 @@\n+a brand new first line\n"));
	assert_true(r.fetches <= 4);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

static void test_append(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 20000);
	text_init(&b);
	assert_int_equal(vd_buf_add(&b.b, a.b.data, a.b.len), 0);
	add_line(&b, "appended 1\nappended 2\n");
	check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
	assert_int_equal(r.st.added, 2);
	assert_non_null(strstr(r.out, "@@ -19998,3 +19998,5 @@\n"));
	assert_true(r.fetches <= 4);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

static void test_deletions(void **state)
{
	struct text a, b;
	struct result r;
	struct lines L;
	(void)state;
	gen_unique(&a, 20000);
	split(&L, a.b.data, a.b.len);
	text_init(&b);
	/* Delete lines 1, 5000-5099, and the last one. */
	for (size_t i = 1; i + 1 < L.n; i++)
		if (i < 4999 || i >= 5099)
			assert_int_equal(vd_buf_add(&b.b, L.p[i], L.len[i]), 0);
	check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
	assert_int_equal(r.st.removed, 102);
	assert_int_equal(r.st.added, 0);
	assert_non_null(strstr(r.out, "@@ -1,4 +1,3 @@\n-line 0 "));
	assert_non_null(strstr(r.out, "@@ -4997,106 +4996,6 @@\n"));
	lines_free(&L);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

static void test_completely_different(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 5000);
	gen_unique(&b, 4000);
	check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
	assert_int_equal(r.st.removed, 5000);
	assert_int_equal(r.st.added, 4000);
	assert_int_equal(r.st.hunks, 1);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

static void test_empty_sides(void **state)
{
	struct text a, e;
	struct result r;
	(void)state;
	gen_unique(&a, 100);
	text_init(&e);
	check_like_gnu(&e, &a, CUT_LINES, 16, true, &r);
	assert_non_null(strstr(r.out, "@@ -0,0 +1,100 @@\n"));
	free(r.out);
	check_like_gnu(&a, &e, CUT_LINES, 16, true, &r);
	assert_non_null(strstr(r.out, "@@ -1,100 +0,0 @@\n"));
	free(r.out);
	run_diff(&r, &e, &e, CUT_LINES, 16, true, NULL);
	assert_int_equal(r.len, 0);
	free(r.out);
	text_free(&a);
	text_free(&e);
}

static void test_no_newline_at_end(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 3000);
	text_init(&b);
	assert_int_equal(vd_buf_add(&b.b, a.b.data, a.b.len - 1), 0);   /* drop the last '\n' */
	check_like_gnu(&a, &b, CUT_LINES, 32, true, &r);
	assert_non_null(strstr(r.out, "\\ No newline at end of file\n"));
	free(r.out);
	/* and a changed last line without a newline on both sides */
	text_free(&a);
	text_init(&a);
	assert_int_equal(vd_buf_add(&a.b, b.b.data, b.b.len), 0);
	add_line(&a, "X");
	check_like_gnu(&a, &b, CUT_LINES, 32, true, &r);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

/* Chunks cut inside lines, and no newline counts in the manifests. */
static void test_cuts_inside_lines(void **state)
{
	(void)state;
	for (int round = 0; round < 4; round++) {
		struct text a, b;
		struct result r;
		gen_unique(&a, 20000);
		gen_edited(&b, &a, 10, 0);
		check_like_gnu(&a, &b, CUT_BYTES, 256, round & 1, &r);
		if (round & 1)   /* counts known: only what is near the edits */
			assert_true(r.fetches < r.chunks_a / 4);
		free(r.out);
		text_free(&a);
		text_free(&b);
	}
}

/* Repeated lines: many equally short scripts; ours must be as short as a
 * longest common subsequence allows, and apply. */
static void test_repetitive_minimal(void **state)
{
	(void)state;
	for (int round = 0; round < 8; round++) {
		struct text a, b;
		struct result r;
		gen_repetitive(&a, 1500, 1 + rnd_below(40));
		gen_edited(&b, &a, 1 + (int)rnd_below(60), 30);
		run_diff(&r, &a, &b, round & 1 ? CUT_BYTES : CUT_LINES, 16, true, NULL);
		apply_check(&a, &b, r.out);
		size_t l = lcs_lines(&a, &b);
		assert_int_equal(r.st.removed, nlines(&a) - l);
		assert_int_equal(r.st.added, nlines(&b) - l);
		free(r.out);
		text_free(&a);
		text_free(&b);
	}
}

/* Windows far smaller than the regions: still a correct patch; with unique
 * lines and sparse edits, still exactly GNU's. */
static void test_small_windows(void **state)
{
	(void)state;
	for (int round = 0; round < 6; round++) {
		struct text a, b;
		struct result r;
		struct vd_diff_opts o;
		vd_diff_opts_default(&o);
		o.window = 300 + rnd_below(2000);
		o.window_lines = 3 + rnd_below(40);
		o.cache = 1;   /* keep one chunk only */
		if (round < 3) {
			gen_unique(&a, 3000);
			gen_edited(&b, &a, 20, 0);
		} else {
			gen_repetitive(&a, 2000, 20);
			gen_edited(&b, &a, 40, 20);
		}
		/* one region: big chunks, so everything is line-diffed in windows */
		run_diff(&r, &a, &b, CUT_LINES, 100000, true, &o);
		assert_true(r.st.windows > 10);
		apply_check(&a, &b, r.out);
		if (round < 3) {
			char *g = gnu_diff(&a, &b);
			assert_string_equal(body_of(r.out), body_of(g));
			free(g);
		}
		free(r.out);
		text_free(&a);
		text_free(&b);
	}
	/* Completely different, windowed: all removed, all added. */
	struct text a, b;
	struct result r;
	struct vd_diff_opts o;
	vd_diff_opts_default(&o);
	o.window = 1000;
	o.window_lines = 10;
	gen_unique(&a, 2000);
	gen_unique(&b, 1000);
	run_diff(&r, &a, &b, CUT_LINES, 50, true, &o);
	apply_check(&a, &b, r.out);
	assert_int_equal(r.st.removed, 2000);
	assert_int_equal(r.st.added, 1000);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

/* A hunk body larger than the in-memory cap (4 MiB) spills to a file. */
static void test_huge_hunk(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 70000);
	gen_unique(&b, 70000);
	assert_true(a.b.len + b.b.len > ((size_t)6 << 20));
	check_like_gnu(&a, &b, CUT_LINES, 64, true, &r);
	assert_int_equal(r.st.hunks, 1);
	assert_int_equal(r.st.removed + r.st.added, 140000);
	free(r.out);
	text_free(&a);
	text_free(&b);
}

/* Other amounts of context, as diff -U N prints them. */
static void test_context_sizes(void **state)
{
	(void)state;
	for (int ctx = 0; ctx <= 10; ctx += 5) {
		struct text a, b;
		struct result r;
		struct vd_diff_opts o;
		vd_diff_opts_default(&o);
		o.context = ctx;
		gen_unique(&a, 20000);
		gen_edited(&b, &a, 40, 0);
		run_diff(&r, &a, &b, CUT_LINES, 32, true, &o);
		char *g = gnu_diff_u(&a, &b, ctx);
		assert_string_equal(body_of(r.out), body_of(g));
		apply_check(&a, &b, r.out);
		free(g);
		free(r.out);
		text_free(&a);
		text_free(&b);
	}
}

static void test_binary(void **state)
{
	struct text a, b;
	struct result r;
	(void)state;
	gen_unique(&a, 2000);
	text_init(&b);
	assert_int_equal(vd_buf_add(&b.b, a.b.data, a.b.len), 0);
	b.b.data[b.b.len / 2] = '\0';
	run_diff(&r, &a, &b, CUT_LINES, 32, true, NULL);
	assert_string_equal(r.out, "Binary files a and b differ\n");
	assert_int_equal(r.st.files_binary, 1);
	free(r.out);
	/* A line longer than max_line counts as binary too. */
	struct vd_diff_opts o;
	vd_diff_opts_default(&o);
	o.max_line = 1000;
	text_free(&b);
	text_init(&b);
	for (int i = 0; i < 5000; i++)
		add_line(&b, "x");
	add_line(&b, "\n");
	run_diff(&r, &a, &b, CUT_LINES, 32, true, &o);
	assert_non_null(strstr(r.out, "Binary files a and b differ\n"));
	free(r.out);
	text_free(&a);
	text_free(&b);
}

/* The last hunk header of a unified diff, whose counts must match the body
 * lines after it (to the end of s). */
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
	/* "@@ -A[,N] +B[,M] @@" */
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

/* A diff printed with opts.limit against the whole one: at most limit
 * bytes, the whole diff's beginning up to its last hunk header, that
 * hunk's lines the beginning of the whole diff's same hunk, with a range
 * that counts them. */
static void check_limited(const char *out, size_t len, const char *full, uint64_t limit)
{
	assert_true(len <= limit);
	assert_int_equal(strlen(out), len);
	if (!len)
		return;
	assert_int_equal(out[len - 1], '\n');
	const char *h = check_last_hunk(out);
	size_t at = (size_t)(h - out);
	assert_memory_equal(out, full, at);
	const char *ob = strchr(h, '\n') + 1, *fb = strchr(full + at, '\n') + 1;
	assert_memory_equal(ob, fb, len - (size_t)(ob - out));
}

/* opts.limit: the diff stops before the first line that would not fit,
 * with -ENOBUFS, and what it printed is consistent (check_limited). Two
 * completely different 3 MB files stop after a few chunks. */
static void test_limit(void **state)
{
	struct text a, b;
	struct result full;
	struct vd_diff_opts o;
	size_t na, nb, len;
	(void)state;
	gen_unique(&a, 20000);
	gen_edited(&b, &a, 400, 0);
	run_diff(&full, &a, &b, CUT_LINES, 32, true, NULL);
	assert_true(full.len > 20000);
	for (uint64_t limit = 1; limit < full.len; limit = limit * 3 + 100) {
		FILE *f = tmpfile();
		struct vd_diff_stats st = { 0 };
		nstore = 0;
		struct vd_diff_extent *xa = chunk_text(&na, &a, CUT_LINES, 32, true);
		struct vd_diff_extent *xb = chunk_text(&nb, &b, CUT_LINES, 32, true);
		vd_diff_opts_default(&o);
		o.fetch = fake_fetch;
		o.out = f;
		o.limit = limit;
		assert_int_equal(vd_diff_files(&st, &o, "a", xa, na, "b", xb, nb), -ENOBUFS);
		char *out = slurp(f, &len);
		check_limited(out, len, full.out, limit);
		/* Stopped at the line that did not fit: with the context it
		 * brings and a new hunk's header, at most about 300 bytes. */
		if (limit > 1000)
			assert_true(len + 300 > limit);
		free(out);
		fclose(f);
		free(xa);
		free(xb);
	}
	/* A limit the diff fits in exactly changes nothing; a byte less
	 * stops it before its last line. */
	vd_diff_opts_default(&o);
	o.limit = full.len;
	struct result r;
	run_diff(&r, &a, &b, CUT_LINES, 32, true, &o);
	assert_string_equal(r.out, full.out);
	free(r.out);
	{
		FILE *f = tmpfile();
		struct vd_diff_stats st = { 0 };
		nstore = 0;
		struct vd_diff_extent *xa = chunk_text(&na, &a, CUT_LINES, 32, true);
		struct vd_diff_extent *xb = chunk_text(&nb, &b, CUT_LINES, 32, true);
		o.fetch = fake_fetch;
		o.out = f;
		o.limit = full.len - 1;
		assert_int_equal(vd_diff_files(&st, &o, "a", xa, na, "b", xb, nb), -ENOBUFS);
		char *out = slurp(f, &len);
		check_limited(out, len, full.out, o.limit);
		assert_true(len + 200 > full.len);
		free(out);
		fclose(f);
		free(xa);
		free(xb);
	}
	free(full.out);
	text_free(&a);
	text_free(&b);

	/* Nothing in common: the work stops with the output. */
	gen_unique(&a, 70000);
	gen_unique(&b, 70000);
	vd_diff_opts_default(&o);
	o.window = 65536;
	run_diff(&full, &a, &b, CUT_LINES, 64, true, &o);
	FILE *f = tmpfile();
	struct vd_diff_stats st = { 0 };
	nstore = 0;
	struct vd_diff_extent *xa = chunk_text(&na, &a, CUT_LINES, 64, true);
	struct vd_diff_extent *xb = chunk_text(&nb, &b, CUT_LINES, 64, true);
	vd_diff_opts_default(&o);
	o.fetch = fake_fetch;
	o.out = f;
	o.window = 65536;
	o.limit = 100000;
	fetches = 0;
	assert_int_equal(vd_diff_files(&st, &o, "a", xa, na, "b", xb, nb), -ENOBUFS);
	char *out = slurp(f, &len);
	assert_true(len > 99000);
	check_limited(out, len, full.out, o.limit);
	assert_true(fetches < (na + nb) / 10);
	free(out);
	free(full.out);
	fclose(f);
	free(xa);
	free(xb);
	text_free(&a);
	text_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_vs_dp),
		cmocka_unit_test(test_identical),
		cmocka_unit_test(test_random_edits),
		cmocka_unit_test(test_insert_at_start),
		cmocka_unit_test(test_append),
		cmocka_unit_test(test_deletions),
		cmocka_unit_test(test_completely_different),
		cmocka_unit_test(test_empty_sides),
		cmocka_unit_test(test_no_newline_at_end),
		cmocka_unit_test(test_cuts_inside_lines),
		cmocka_unit_test(test_repetitive_minimal),
		cmocka_unit_test(test_small_windows),
		cmocka_unit_test(test_huge_hunk),
		cmocka_unit_test(test_context_sizes),
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
