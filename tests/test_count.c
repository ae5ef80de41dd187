/*
 * Unit tests for vdfs-count's pieces (executors/functions/count/): the
 * matcher against a naive counter on random text cut at random places, the
 * decoder's handling of bad and cut sequences, the encoding guess, and CSV
 * fields.
 */
#include <errno.h>
#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "count.h"

/* Plain prose written for these tests, simplified and traditional. */
static const char SIMP[] =
	"春天来了，山上的花都开了。河水静静地流着，月亮挂在天上。人们在田里工作，"
	"孩子们在院子里玩耍。老人坐在门口，看着远处的风景，心里想着过去的日子。"
	"这是一个美丽的村庄，每个人都很快乐。";
static const char TRAD[] =
	"春天來了，山上的花都開了。河水靜靜地流著，月亮掛在天上。人們在田裡工作，"
	"孩子們在院子裡玩耍。老人坐在門口，看著遠處的風景，心裡想著過去的日子。"
	"這是一個美麗的村莊，每個人都很快樂。";

/* The occurrences a naive left-to-right scan counts (grep -o's rule). */
static uint64_t naive(const char *t, size_t n, const char *w)
{
	size_t l = strlen(w);
	uint64_t c = 0;

	for (size_t i = 0; i + l <= n;) {
		if (!memcmp(t + i, w, l)) {
			c++;
			i += l;
		} else {
			i++;
		}
	}
	return c;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* Random text from a few pieces, so that words occur and overlap often. */
static char *random_text(size_t n)
{
	static const char *pieces[] = { "a", "b", "ab", "刀", "剑", "\n", "刀剑", "x" };
	char *t = malloc(n + 8);
	size_t i = 0;

	assert_non_null(t);
	while (i < n) {
		const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
		size_t l = strlen(p);
		if (i + l > n)
			break;
		memcpy(t + i, p, l);
		i += l;
	}
	t[i] = '\0';
	return t;
}

/* Feed t in random pieces and compare every count with the naive one. */
static void check_words(const char *const *words, size_t nw, const char *t, size_t n,
			size_t max_piece)
{
	vd_match *m = NULL;

	assert_int_equal(vd_match_new(&m, words, nw), 0);
	for (size_t i = 0; i < n;) {
		size_t k = 1 + rnd() % max_piece;
		if (k > n - i)
			k = n - i;
		vd_match_feed(m, t + i, k);
		i += k;
	}
	for (size_t w = 0; w < nw; w++) {
		if (vd_match_count(m, w) != naive(t, n, words[w]))
			fail_msg("word '%s': matcher %llu, naive %llu (pieces up to %zu)", words[w],
				 (unsigned long long)vd_match_count(m, w),
				 (unsigned long long)naive(t, n, words[w]), max_piece);
	}
	vd_match_free(m);
}

static void test_match_random(void **state)
{
	/* Self-overlapping words (single chain, order kept), then words that
	 * cannot overlap themselves (two chains on long pieces), then more
	 * than 64 bytes of words (the table-driven automaton). */
	static const char *overlapping[] = { "aa", "aba", "刀", "刀剑", "剑刀剑", "b", "\n刀" };
	static const char *plain[] = { "刀", "剑", "ab", "刀剑", "x\n", "ba" };
	static const char *many[] = {
		"aa", "刀", "剑", "ab", "刀剑刀", "bab",
		"this word is long enough to push the total past sixty-four bytes",
		"刀剑刀剑刀剑刀剑刀剑刀剑刀剑",
	};
	size_t n = 300000;
	char *t = random_text(n);
	n = strlen(t);

	for (size_t piece = 1; piece <= 1 << 20; piece *= 37) {
		check_words(overlapping, sizeof overlapping / sizeof overlapping[0], t, n, piece);
		check_words(plain, sizeof plain / sizeof plain[0], t, n, piece);
		check_words(many, sizeof many / sizeof many[0], t, n, piece);
	}
	free(t);
}

static void test_match_basics(void **state)
{
	const char *w[] = { "aa", "a", "aaa" };
	const char *dup[] = { "a", "b", "a" };
	const char *empty[] = { "a", "" };
	vd_match *m = NULL;

	assert_int_equal(vd_match_new(&m, w, 3), 0);
	vd_match_feed(m, "aa", 2);
	vd_match_feed(m, "aaa", 3);   /* "aaaaa" across two feeds */
	assert_int_equal(vd_match_count(m, 0), 2);
	assert_int_equal(vd_match_count(m, 1), 5);
	assert_int_equal(vd_match_count(m, 2), 1);
	vd_match_free(m);
	assert_int_equal(vd_match_new(&m, dup, 3), -EINVAL);
	assert_null(m);
	assert_int_equal(vd_match_new(&m, empty, 2), -EINVAL);
	/* 0xFF (what the decoder puts at a bad spot) breaks a match. */
	const char *kd[] = { "刀剑" };
	assert_int_equal(vd_match_new(&m, kd, 1), 0);
	vd_match_feed(m, "刀\xff剑刀剑", strlen("刀\xff剑刀剑"));
	assert_int_equal(vd_match_count(m, 0), 1);
	vd_match_free(m);
}

/* ---- decoder ------------------------------------------------------------ */

struct sinkbuf {
	struct vd_buf out;
	char bad[1024];   /* "off+len " per report */
	size_t nbad;
};

static void sink(void *arg, const char *p, size_t n)
{
	struct sinkbuf *s = arg;

	assert_int_equal(vd_buf_add(&s->out, p, n), 0);
}

static void bad(void *arg, uint64_t off, size_t len)
{
	struct sinkbuf *s = arg;
	size_t used = strlen(s->bad);

	snprintf(s->bad + used, sizeof s->bad - used, "%llu+%zu ", (unsigned long long)off, len);
	s->nbad++;
}

/* Decode in[0..n) in pieces of `piece` bytes, each given the headroom
 * the decoder may use; returns the encoding it used. */
static enum vd_enc decode(struct sinkbuf *s, enum vd_enc enc, const char *in, size_t n,
			  size_t piece)
{
	vd_decode *d = NULL;
	char *buf = malloc(VD_DECODE_HEADROOM + piece);

	assert_non_null(buf);
	memset(s, 0, sizeof *s);
	vd_buf_init(&s->out, 1 << 24);
	assert_int_equal(vd_decode_new(&d, enc, sink, bad, s), 0);
	for (size_t i = 0; i < n;) {
		size_t k = n - i < piece ? n - i : piece;
		memset(buf, 0x55, VD_DECODE_HEADROOM);
		memcpy(buf + VD_DECODE_HEADROOM, in + i, k);
		assert_int_equal(vd_decode_feed(d, buf + VD_DECODE_HEADROOM, k), 0);
		i += k;
	}
	assert_int_equal(vd_decode_finish(d), 0);
	enum vd_enc used = vd_decode_encoding(d);
	vd_decode_free(d);
	free(buf);
	return used;
}

/* s in UTF-8 converted to `to` with iconv (the test's own conversion). */
static char *encode(const char *to, const char *s, size_t *len)
{
	iconv_t cd = iconv_open(to, "UTF-8");
	size_t n = strlen(s), room = n * 2 + 16;
	char *out = malloc(room), *o = out, *in = (char *)s;

	assert_true(cd != (iconv_t)-1);
	assert_non_null(out);
	assert_true(iconv(cd, &in, &n, &o, &room) != (size_t)-1);
	iconv_close(cd);
	*len = (size_t)(o - out);
	return out;
}

static void test_decode_utf8(void **state)
{
	/* Bad spots: a lone continuation byte, a lead cut by ASCII, an
	 * overlong form, a surrogate, and a sequence cut by the end. */
	static const char in[] = "刀\x80剑 \xe5\x88x \xc0\xaf \xed\xa0\x80 ok \xe5\x88";
	static const char want[] = "刀\xff剑 \xff\xffx \xff\xff \xff\xff\xff ok \xff\xff";
	size_t n = sizeof in - 1;

	for (size_t piece = 1; piece <= n; piece++) {
		struct sinkbuf s;
		assert_int_equal(decode(&s, VD_ENC_UTF8, in, n, piece), VD_ENC_UTF8);
		assert_int_equal(s.out.len, n);
		assert_memory_equal(s.out.data, want, n);
		/* Offsets: 3 (0x80), 8 (E5 88), 12 (C0), 13 (AF), 15 (ED),
		 * 16, 17 (A0 80: continuation bytes after a bad lead), 22. */
		assert_string_equal(s.bad, "3+1 8+2 12+1 13+1 15+1 16+1 17+1 22+2 ");
		vd_buf_release(&s.out);
	}
}

static void test_decode_iconv(void **state)
{
	size_t n;
	char *gbk = encode("GBK", SIMP, &n), *big5;

	for (size_t piece = 1; piece < 64; piece += 5) {
		struct sinkbuf s;
		assert_int_equal(decode(&s, VD_ENC_GB18030, gbk, n, piece), VD_ENC_GB18030);
		assert_int_equal(s.nbad, 0);
		assert_string_equal(vd_buf_cstr(&s.out), SIMP);
		vd_buf_release(&s.out);
	}
	/* A bad byte (0xFF is no GBK lead) in the middle, and a lead byte
	 * cut by the end of the input. */
	char *with_bad = malloc(n + 8);
	assert_non_null(with_bad);
	memcpy(with_bad, gbk, 6);
	with_bad[6] = (char)0xff;
	memcpy(with_bad + 7, gbk + 6, n - 6);
	with_bad[n + 1] = (char)0xb5;
	for (size_t piece = 1; piece < 40; piece += 3) {
		struct sinkbuf s;
		decode(&s, VD_ENC_GB18030, with_bad, n + 2, piece);
		assert_int_equal(s.nbad, 2);
		char want[64];
		snprintf(want, sizeof want, "6+1 %zu+1 ", n + 1);
		assert_string_equal(s.bad, want);
		/* The text is intact around the marks. */
		assert_memory_equal(s.out.data, SIMP, 9);
		assert_int_equal((unsigned char)s.out.data[9], 0xff);
		assert_memory_equal(s.out.data + 10, SIMP + 9, strlen(SIMP) - 9);
		vd_buf_release(&s.out);
	}
	free(with_bad);

	big5 = encode("BIG5", TRAD, &n);
	struct sinkbuf s;
	assert_int_equal(decode(&s, VD_ENC_BIG5, big5, n, 7), VD_ENC_BIG5);
	assert_int_equal(s.nbad, 0);
	assert_string_equal(vd_buf_cstr(&s.out), TRAD);
	vd_buf_release(&s.out);
	free(gbk);
	free(big5);
}

static void test_guess(void **state)
{
	size_t n;
	char *gbk = encode("GBK", SIMP, &n);
	assert_int_equal(vd_decode_guess((unsigned char *)gbk, n, true), VD_ENC_GB18030);
	free(gbk);
	/* Traditional characters in GBK: outside Big5, still GB18030. */
	gbk = encode("GBK", TRAD, &n);
	assert_int_equal(vd_decode_guess((unsigned char *)gbk, n, true), VD_ENC_GB18030);
	free(gbk);
	char *big5 = encode("BIG5", TRAD, &n);
	assert_int_equal(vd_decode_guess((unsigned char *)big5, n, true), VD_ENC_BIG5);
	/* Cut in the middle of a character, not at the end of the input. */
	assert_int_equal(vd_decode_guess((unsigned char *)big5, n - 1, false), VD_ENC_BIG5);
	free(big5);
	assert_int_equal(vd_decode_guess((const unsigned char *)TRAD, strlen(TRAD), true),
			 VD_ENC_UTF8);
	/* UTF-8 with a corrupt byte is still UTF-8. */
	char *u = strdup(SIMP);
	assert_non_null(u);
	u[30] = (char)0xff;
	assert_int_equal(vd_decode_guess((unsigned char *)u, strlen(u), true), VD_ENC_UTF8);
	free(u);
}

static void test_decode_auto(void **state)
{
	/* An ASCII start (passed on undecided), then Big5 text: the same
	 * UTF-8 comes out whatever the pieces. */
	size_t n;
	char *big5 = encode("BIG5", TRAD, &n);
	struct vd_buf in = VD_BUF_INIT(1 << 20), want = VD_BUF_INIT(1 << 20);
	assert_int_equal(vd_buf_adds(&in, "ascii first\n"), 0);
	assert_int_equal(vd_buf_add(&in, big5, n), 0);
	assert_int_equal(vd_buf_adds(&want, "ascii first\n"), 0);
	assert_int_equal(vd_buf_adds(&want, TRAD), 0);
	for (size_t piece = 1; piece < 100; piece += 11) {
		struct sinkbuf s;
		assert_int_equal(decode(&s, VD_ENC_AUTO, in.data, in.len, piece), VD_ENC_BIG5);
		assert_int_equal(s.nbad, 0);
		assert_string_equal(vd_buf_cstr(&s.out), want.data);
		vd_buf_release(&s.out);
	}
	/* All ASCII: nothing to decide. */
	struct sinkbuf s;
	assert_int_equal(decode(&s, VD_ENC_AUTO, "abc\n", 4, 2), VD_ENC_AUTO);
	assert_string_equal(vd_buf_cstr(&s.out), "abc\n");
	vd_buf_release(&s.out);
	/* More than a sample's worth of GBK, so the guess is made before the
	 * end and the rest streams through. */
	char *gbk = encode("GBK", SIMP, &n);
	vd_buf_reset(&in);
	vd_buf_reset(&want);
	while (in.len < 3 * VD_DECODE_SAMPLE) {
		assert_int_equal(vd_buf_add(&in, gbk, n), 0);
		assert_int_equal(vd_buf_adds(&want, SIMP), 0);
	}
	assert_int_equal(decode(&s, VD_ENC_AUTO, in.data, in.len, 4096), VD_ENC_GB18030);
	assert_int_equal(s.nbad, 0);
	assert_int_equal(s.out.len, want.len);
	assert_memory_equal(s.out.data, want.data, want.len);
	vd_buf_release(&s.out);
	vd_buf_release(&in);
	vd_buf_release(&want);
	free(big5);
	free(gbk);
}

static void test_enc_names(void **state)
{
	enum vd_enc e;

	assert_int_equal(vd_enc_parse(&e, "UTF-8"), 0);
	assert_int_equal(e, VD_ENC_UTF8);
	assert_int_equal(vd_enc_parse(&e, "gbk"), 0);
	assert_int_equal(e, VD_ENC_GB18030);
	assert_int_equal(vd_enc_parse(&e, "Big5"), 0);
	assert_int_equal(e, VD_ENC_BIG5);
	assert_int_equal(vd_enc_parse(&e, "auto"), 0);
	assert_int_equal(e, VD_ENC_AUTO);
	assert_int_equal(vd_enc_parse(&e, "latin1"), -EINVAL);
	assert_true(vd_utf8_valid("刀剑", strlen("刀剑")));
	assert_false(vd_utf8_valid("\xe5\x88", 2));
	assert_false(vd_utf8_valid("\xc0\xaf", 2));
}

static void test_csv(void **state)
{
	static const struct { const char *in, *out; } cases[] = {
		{ "刀", "刀" }, { "a,b", "\"a,b\"" }, { "say \"hi\"", "\"say \"\"hi\"\"\"" },
		{ "2024", "\"2024\"" }, { "-x", "\"-x\"" }, { " x", "\" x\"" },
		{ "x\ny", "\"x\ny\"" }, { "\"", "\"\"\"\"" }, { "a\"", "\"a\"\"\"" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct vd_buf b = VD_BUF_INIT(256);
		assert_int_equal(vd_csv_field(&b, cases[i].in, strlen(cases[i].in)), 0);
		assert_string_equal(vd_buf_cstr(&b), cases[i].out);
		vd_buf_release(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match_basics),
		cmocka_unit_test(test_match_random),
		cmocka_unit_test(test_decode_utf8),
		cmocka_unit_test(test_decode_iconv),
		cmocka_unit_test(test_guess),
		cmocka_unit_test(test_decode_auto),
		cmocka_unit_test(test_enc_names),
		cmocka_unit_test(test_csv),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
