/* Unit tests for daemon/chunker.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chunker.h"
#include "id.h"

/* Small parameters keep the tests quick while exercising every rule. */
static const struct vd_chunker_params P = {
	.min_size = 4096, .avg_size = 16384, .max_size = 65536, .hard_max = 1 << 20,
};

struct cuts {
	size_t *v;
	size_t n, cap;
};

static void cuts_push(struct cuts *c, size_t len)
{
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->v = realloc(c->v, c->cap * sizeof(*c->v));
		assert_non_null(c->v);
	}
	c->v[c->n++] = len;
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Lines of 1..maxline printable characters plus '\n', filling exactly n
 * bytes; the last byte is '\n' unless no_final_nl. */
static unsigned char *gen_lines(size_t n, uint64_t seed, size_t maxline,
				bool no_final_nl)
{
	unsigned char *p = malloc(n ? n : 1);
	size_t i = 0;

	assert_non_null(p);
	while (i < n) {
		size_t len = 1 + rng_next(&seed) % maxline;

		for (size_t k = 0; k < len && i < n; k++)
			p[i++] = (unsigned char)(' ' + rng_next(&seed) % 95);
		if (i < n)
			p[i++] = '\n';
	}
	if (n)
		p[n - 1] = no_final_nl ? 'x' : '\n';
	return p;
}

/* Chunk the whole buffer, knowing where it ends. */
static void chunk_whole(struct cuts *out, const unsigned char *p, size_t n,
			const struct vd_chunker_params *prm)
{
	size_t off = 0, cut;

	out->n = 0;
	while (off < n) {
		assert_int_equal(vd_chunker_cut(&cut, p + off, n - off, true, prm), 0);
		assert_true(cut > 0 && cut <= n - off);
		cuts_push(out, cut);
		off += cut;
	}
	assert_int_equal(vd_chunker_cut(&cut, p + n, 0, true, prm), 0);
	assert_int_equal(cut, 0);
}

/* Chunk as a reader would: the window holds what reads of `block` bytes
 * brought in; EOF is only known once a read came back empty (lazy_eof) or as
 * soon as the last byte is in the window (otherwise). */
static void chunk_windowed(struct cuts *out, const unsigned char *p, size_t n,
			   size_t block, bool lazy_eof,
			   const struct vd_chunker_params *prm)
{
	size_t off = 0, have = 0, cut;
	bool eof = false;

	out->n = 0;
	for (;;) {
		if (!lazy_eof && off + have == n)
			eof = true;
		assert_int_equal(vd_chunker_cut(&cut, p + off, have, eof, prm), 0);
		if (cut == 0) {
			if (eof)
				break;
			/* Need more: read another block. */
			size_t got = n - off - have < block ? n - off - have : block;

			if (got == 0)
				eof = true;
			have += got;
			continue;
		}
		assert_true(cut <= have);
		cuts_push(out, cut);
		off += cut;
		have -= cut;
	}
	assert_int_equal(off, n);
}

static void assert_same_cuts(const struct cuts *a, const struct cuts *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->v, b->v, a->n * sizeof(*a->v));
}

static void test_params(void **state)
{
	struct vd_chunker_params d, bad;

	vd_chunker_params_default(&d);
	assert_int_equal(vd_chunker_params_check(&d), 0);
	assert_int_equal(d.avg_size, 64 << 10);
	assert_int_equal(d.min_size, d.avg_size / 4);
	assert_int_equal(d.max_size, d.avg_size * 4);
	assert_int_equal(d.hard_max, 64 << 20);
	assert_int_equal(vd_chunker_params_check(&P), 0);
	bad = P;
	bad.avg_size = 20000;
	assert_int_equal(vd_chunker_params_check(&bad), -EINVAL);
	bad = P;
	bad.min_size = 0;
	assert_int_equal(vd_chunker_params_check(&bad), -EINVAL);
	bad = P;
	bad.hard_max = bad.max_size - 1;
	assert_int_equal(vd_chunker_params_check(&bad), -EINVAL);
	bad = P;
	bad.min_size = bad.avg_size;
	assert_int_equal(vd_chunker_params_check(&bad), -EINVAL);
}

static void test_small_inputs(void **state)
{
	unsigned char *p = gen_lines(P.max_size * 2, 7, 80, false);
	size_t cut = 99;

	assert_int_equal(vd_chunker_cut(&cut, p, 0, true, &P), 0);
	assert_int_equal(cut, 0);
	assert_int_equal(vd_chunker_cut(&cut, p, 0, false, &P), 0);
	assert_int_equal(cut, 0);
	assert_int_equal(vd_chunker_cut(&cut, p, 10, true, &P), 0);
	assert_int_equal(cut, 10);
	assert_int_equal(vd_chunker_cut(&cut, p, P.min_size, false, &P), 0);
	assert_int_equal(cut, 0);
	assert_int_equal(vd_chunker_cut(&cut, p, P.min_size, true, &P), 0);
	assert_int_equal(cut, P.min_size);
	/* With max bytes or more, there is always an answer. */
	assert_int_equal(vd_chunker_cut(&cut, p, P.max_size, false, &P), 0);
	assert_true(cut > P.min_size && cut <= P.max_size);
	assert_int_equal(p[cut - 1], '\n');
	free(p);
}

static void test_properties(void **state)
{
	size_t n = 8u << 20, off = 0;
	unsigned char *p = gen_lines(n, 11, 200, true);
	struct cuts c = { 0 };
	double mean;

	chunk_whole(&c, p, n, &P);
	assert_true(c.n > 2);
	for (size_t i = 0; i < c.n; i++) {
		off += c.v[i];
		if (i + 1 < c.n) {
			assert_int_equal(p[off - 1], '\n');
			assert_true(c.v[i] >= P.min_size);
			assert_true(c.v[i] <= P.max_size);
		}
	}
	assert_int_equal(off, n);
	assert_true(p[n - 1] != '\n');
	/* Normalized chunking keeps the mean near avg_size. */
	mean = (double)n / (double)c.n;
	assert_true(mean > P.avg_size / 2.0 && mean < P.avg_size * 2.0);
	free(c.v);
	free(p);
}

static void test_window_independence(void **state)
{
	static const size_t blocks[] = { 1000, 4095, 4096, 4097, 16384, 65535,
					 65536, 65537, 100000, 300000, 1 << 20 };
	const size_t nl = 600000;
	size_t n, pos = 0;
	unsigned char *p;
	struct cuts whole = { 0 }, win = { 0 };

	/* Short lines, a record longer than max, more lines, a second long
	 * record, then a tail of exactly max_size bytes without a final
	 * newline (the edge where a reader may not know EOF yet). */
	n = nl + 200000 + nl + 150000 + P.max_size;
	p = malloc(n);
	assert_non_null(p);
	{
		unsigned char *a = gen_lines(nl, 21, 120, false);

		memcpy(p, a, nl);
		pos = nl;
		free(a);
	}
	memset(p + pos, 'L', 200000);
	pos += 200000;
	p[pos - 1] = '\n';
	{
		unsigned char *a = gen_lines(nl, 22, 120, false);

		memcpy(p + pos, a, nl);
		pos += nl;
		free(a);
	}
	memset(p + pos, 'M', 150000);
	pos += 150000;
	p[pos - 1] = '\n';
	/* A periodic tail gives the gear hash no cut candidate, so the cut
	 * falls to rule 3, where EOF at exactly max_size matters. */
	for (size_t i = 0; i < P.max_size; i++)
		p[pos + i] = (unsigned char)"the same line again\n"[i % 20];
	pos += P.max_size;
	p[pos - 1] = 'x';
	assert_int_equal(pos, n);

	chunk_whole(&whole, p, n, &P);
	for (size_t b = 0; b < sizeof(blocks) / sizeof(blocks[0]); b++) {
		chunk_windowed(&win, p, n, blocks[b], false, &P);
		assert_same_cuts(&whole, &win);
		chunk_windowed(&win, p, n, blocks[b], true, &P);
		assert_same_cuts(&whole, &win);
	}
	/* The long records became chunks of their own. */
	{
		bool saw200 = false, saw150 = false;

		for (size_t i = 0; i < whole.n; i++) {
			saw200 |= whole.v[i] == 200000;
			saw150 |= whole.v[i] == 150000;
		}
		assert_true(saw200);
		assert_true(saw150);
	}
	/* Whatever the caller passes beyond a decided cut does not move it. */
	{
		size_t cut0, cut1;

		for (size_t extra = 0; extra < 70000; extra += 997) {
			size_t m = whole.v[0] + extra;

			assert_int_equal(vd_chunker_cut(&cut0, p, n, true, &P), 0);
			assert_int_equal(vd_chunker_cut(&cut1, p, m, false, &P), 0);
			assert_true(cut1 == 0 || cut1 == cut0);
		}
	}
	free(whole.v);
	free(win.v);
	free(p);
}

static void test_hard_max(void **state)
{
	size_t n = P.hard_max + 500000, cut;
	unsigned char *p = malloc(n);

	assert_non_null(p);
	memset(p, 'z', n);
	assert_int_equal(vd_chunker_cut(&cut, p, n, true, &P), -E2BIG);
	assert_int_equal(cut, P.hard_max);
	assert_int_equal(vd_chunker_cut(&cut, p, P.hard_max, false, &P), -E2BIG);
	assert_int_equal(cut, P.hard_max);
	/* Short of hard_max without EOF: keep reading. */
	assert_int_equal(vd_chunker_cut(&cut, p, P.hard_max - 1, false, &P), 0);
	assert_int_equal(cut, 0);
	/* At EOF a long final record is one chunk. */
	assert_int_equal(vd_chunker_cut(&cut, p, P.hard_max - 1, true, &P), 0);
	assert_int_equal(cut, P.hard_max - 1);
	/* A record just inside the limit is accepted. */
	p[P.hard_max - 1] = '\n';
	assert_int_equal(vd_chunker_cut(&cut, p, n, false, &P), 0);
	assert_int_equal(cut, P.hard_max);
	/* Lines before a huge record end a chunk before it; the record itself
	 * then fails at hard_max past its start. */
	memset(p, 'z', n);
	memcpy(p, "short line\n", 11);
	assert_int_equal(vd_chunker_cut(&cut, p, n, true, &P), 0);
	assert_int_equal(cut, 11);
	assert_int_equal(vd_chunker_cut(&cut, p + 11, n - 11, true, &P), -E2BIG);
	assert_int_equal(cut, P.hard_max);
	free(p);
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, VD_ID_LEN);
}

/* Chunk IDs of p[0..n), sorted. */
static char (*chunk_ids(const unsigned char *p, size_t n, const struct vd_key *k,
			size_t *count))[VD_ID_SIZE]
{
	struct cuts c = { 0 };
	char (*ids)[VD_ID_SIZE];
	size_t off = 0;

	chunk_whole(&c, p, n, &P);
	ids = calloc(c.n, VD_ID_SIZE);
	assert_non_null(ids);
	for (size_t i = 0; i < c.n; i++) {
		vd_id_of(ids[i], k, p + off, c.v[i]);
		off += c.v[i];
	}
	qsort(ids, c.n, VD_ID_SIZE, cmp_id);
	*count = c.n;
	free(c.v);
	return ids;
}

static size_t count_missing(char (*a)[VD_ID_SIZE], size_t na,
			    char (*b)[VD_ID_SIZE], size_t nb)
{
	size_t missing = 0;

	for (size_t i = 0; i < nb; i++)
		if (!bsearch(b[i], a, na, VD_ID_SIZE, cmp_id))
			missing++;
	return missing;
}

static void test_local_edit(void **state)
{
	const size_t n = 20u << 20;
	static const char ins[] = "an edit in the middle of a line";
	unsigned char *a = gen_lines(n, 99, 160, false), *b;
	char (*ia)[VD_ID_SIZE], (*ib)[VD_ID_SIZE];
	size_t na, nb, at = n / 2 + 12345, m = n + sizeof(ins) - 1;
	struct vd_key k;

	memset(k.secret, 0x5a, sizeof(k.secret));
	b = malloc(m);
	assert_non_null(b);
	memcpy(b, a, at);
	memcpy(b + at, ins, sizeof(ins) - 1);
	memcpy(b + at + sizeof(ins) - 1, a + at, n - at);

	ia = chunk_ids(a, n, &k, &na);
	ib = chunk_ids(b, m, &k, &nb);
	assert_true(na > 500);
	/* Only the chunks around the edit differ. */
	assert_in_range(count_missing(ia, na, ib, nb), 1, 2);
	assert_in_range(count_missing(ib, nb, ia, na), 1, 2);
	free(ia);
	free(ib);

	/* An in-place change of one byte as well. */
	memcpy(b, a, n);
	at = n / 3;
	while (a[at] == '\n')
		at++;
	b[at] = a[at] == 'q' ? 'r' : 'q';
	ia = chunk_ids(a, n, &k, &na);
	ib = chunk_ids(b, n, &k, &nb);
	assert_in_range(count_missing(ia, na, ib, nb), 1, 2);
	free(ia);
	free(ib);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_small_inputs),
		cmocka_unit_test(test_properties),
		cmocka_unit_test(test_window_independence),
		cmocka_unit_test(test_hard_max),
		cmocka_unit_test(test_local_edit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
