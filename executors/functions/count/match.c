/*
 * match.c - counting many words in one pass over a byte stream.
 *
 * An Aho-Corasick automaton, completed into a DFA over bytes: one table
 * lookup per input byte whatever the number of words, and the state carries
 * over from one buffer to the next, so a word cut by a buffer boundary is
 * found like any other. States are numbered so that every state at which
 * some word ends comes last: the hot loop then needs a single comparison
 * per byte to know whether anything ended.
 *
 * When the words come to at most 64 bytes (up to 21 Chinese characters)
 * a bit-parallel Shift-And runs instead: one 64-bit state, one bit per word
 * byte, updated with a shift, an AND and an OR per input byte. Its chain of
 * dependent operations per byte is three one-cycle instructions where the
 * table walk's is a load, so it runs about twice as fast. Both find the
 * same occurrences.
 *
 * Most words cannot overlap themselves (no single character can): then
 * every occurrence counts and their order does not matter, so Shift-And
 * runs two independent chains at once, over the two halves of a buffer,
 * which nearly doubles its speed on one core.
 *
 * Counting is per word and non-overlapping, as `grep -o WORD | wc -l` does
 * for each word alone: the automaton reports every occurrence of every word
 * in order of its end, and an occurrence of word w counts only if it starts
 * at or after the end of the last counted occurrence of w. For one word of
 * fixed length, end order is start order, so this is grep's leftmost-first
 * scan ("aa" occurs twice in "aaaaa"). Different words are independent:
 * "刀" inside "刀剑" counts for both.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "count.h"

#define NONE UINT32_MAX

struct vd_match {
	/* Shift-And (words <= 64 bytes; `next` is NULL): bit j of `bits` is
	 * set when the last bytes read equal the first ones of a word up to
	 * its byte j (word bytes laid end to end). */
	uint64_t bits;
	uint64_t mask[256];   /* bit j set: the word byte at j is this byte */
	uint64_t start[256];  /* mask[c] & the first bit of every word */
	uint64_t last;        /* the last bit of every word */
	uint32_t word_at[64]; /* the word whose last byte is bit j */
	uint32_t maxlen;      /* the longest word, in bytes */
	bool any_order;       /* no word overlaps itself: count every occurrence */
	/* Aho-Corasick DFA. */
	uint32_t *next;       /* next[s << 8 | byte] */
	uint32_t nstates;
	uint32_t first_out;   /* states >= first_out have a word ending at them */
	uint32_t *own;        /* own[s]: the word that ends exactly at s, or NONE */
	uint32_t *link;       /* link[s]: longest proper suffix state with own != NONE */
	size_t nwords;
	uint32_t *len;        /* bytes of each word */
	uint64_t *count;
	uint64_t *last_end;   /* stream offset just past the last counted occurrence */
	uint64_t pos;         /* bytes fed so far */
	uint32_t state;
};

/* The trie with its goto table filled in as a DFA (breadth-first), the
 * failure links, and the output links. Indices are the trie's. */
static int build(vd_match *m, const char *const *words, size_t n, uint32_t nmax)
{
	uint32_t *fail = NULL, *queue = NULL;
	int rc = -ENOMEM;

	m->next = malloc((size_t)nmax * 256 * sizeof *m->next);
	m->own = malloc((size_t)nmax * sizeof *m->own);
	m->link = malloc((size_t)nmax * sizeof *m->link);
	fail = calloc(nmax, sizeof *fail);
	queue = malloc((size_t)nmax * sizeof *queue);
	if (!m->next || !m->own || !m->link || !fail || !queue)
		goto out;
	memset(m->next, 0xff, (size_t)nmax * 256 * sizeof *m->next);
	m->own[0] = NONE;
	m->nstates = 1;
	for (size_t w = 0; w < n; w++) {
		uint32_t s = 0;
		for (const unsigned char *c = (const unsigned char *)words[w]; *c; c++) {
			uint32_t *t = &m->next[(size_t)s << 8 | *c];
			if (*t == NONE) {
				*t = m->nstates;
				m->own[m->nstates++] = NONE;
			}
			s = *t;
		}
		if (m->own[s] != NONE) {
			rc = -EINVAL;   /* the same word twice */
			goto out;
		}
		m->own[s] = (uint32_t)w;
	}
	/* Breadth-first: a state's failure target is shallower, so it is
	 * complete by the time its row is filled from it. */
	uint32_t head = 0, tail = 0;
	m->link[0] = NONE;
	for (int c = 0; c < 256; c++) {
		uint32_t *t = &m->next[c];
		if (*t == NONE) {
			*t = 0;
		} else {
			fail[*t] = 0;
			m->link[*t] = NONE;
			queue[tail++] = *t;
		}
	}
	while (head < tail) {
		uint32_t s = queue[head++];
		for (int c = 0; c < 256; c++) {
			uint32_t *t = &m->next[(size_t)s << 8 | c];
			uint32_t via = m->next[(size_t)fail[s] << 8 | c];
			if (*t == NONE) {
				*t = via;
				continue;
			}
			fail[*t] = via;
			m->link[*t] = m->own[via] != NONE ? via : m->link[via];
			queue[tail++] = *t;
		}
	}
	rc = 0;
out:
	free(fail);
	free(queue);
	return rc;
}

/* Renumber the states so that those with output come last. */
static int renumber(vd_match *m)
{
	uint32_t n = m->nstates, lo = 0, hi;
	uint32_t *map = malloc((size_t)n * sizeof *map), *next = NULL, *own = NULL,
		 *link = NULL;
	int rc = -ENOMEM;

	if (!map)
		goto out;
	hi = 0;
	for (uint32_t s = 0; s < n; s++)
		if (m->own[s] == NONE && m->link[s] == NONE)
			hi++;
	m->first_out = hi;
	/* The root has no output (words are not empty), so it stays 0. */
	for (uint32_t s = 0; s < n; s++)
		map[s] = m->own[s] == NONE && m->link[s] == NONE ? lo++ : hi++;
	next = malloc((size_t)n * 256 * sizeof *next);
	own = malloc((size_t)n * sizeof *own);
	link = malloc((size_t)n * sizeof *link);
	if (!next || !own || !link)
		goto out;
	for (uint32_t s = 0; s < n; s++) {
		for (int c = 0; c < 256; c++)
			next[(size_t)map[s] << 8 | c] = map[m->next[(size_t)s << 8 | c]];
		own[map[s]] = m->own[s];
		link[map[s]] = m->link[s] == NONE ? NONE : map[m->link[s]];
	}
	free(m->next);
	free(m->own);
	free(m->link);
	m->next = next;
	m->own = own;
	m->link = link;
	next = own = link = NULL;
	rc = 0;
out:
	free(map);
	free(next);
	free(own);
	free(link);
	return rc;
}

/* A word that ends with a proper prefix of itself ("aa", "abab", "刀刀")
 * can overlap its own occurrences. */
static bool overlaps_itself(const char *w, size_t n)
{
	for (size_t k = 1; k < n; k++)
		if (!memcmp(w, w + n - k, k))
			return true;
	return false;
}

int vd_match_new(vd_match **out, const char *const *words, size_t n)
{
	vd_match *m = calloc(1, sizeof *m);
	size_t total = 0;
	int rc = -ENOMEM;

	*out = NULL;
	if (!m)
		goto fail;
	for (size_t w = 0; w < n; w++) {
		size_t l = strlen(words[w]);
		if (l == 0) {
			rc = -EINVAL;
			goto fail;
		}
		total += l;
		if (total > VD_MATCH_MAX_BYTES) {
			rc = -E2BIG;
			goto fail;
		}
	}
	m->nwords = n;
	m->len = malloc((n ? n : 1) * sizeof *m->len);
	m->count = calloc(n ? n : 1, sizeof *m->count);
	m->last_end = calloc(n ? n : 1, sizeof *m->last_end);
	if (!m->len || !m->count || !m->last_end)
		goto fail;
	m->any_order = true;
	for (size_t w = 0; w < n; w++) {
		m->len[w] = (uint32_t)strlen(words[w]);
		if (m->len[w] > m->maxlen)
			m->maxlen = m->len[w];
		if (overlaps_itself(words[w], m->len[w]))
			m->any_order = false;
	}
	if (total <= 64) {
		uint32_t j = 0;
		for (size_t w = 0; w < n; w++) {
			const unsigned char *c = (const unsigned char *)words[w];
			for (uint32_t k = 0; k < m->len[w]; k++, j++)
				m->mask[c[k]] |= 1ull << j;
			m->start[c[0]] |= 1ull << (j - m->len[w]);
			m->last |= 1ull << (j - 1);
			m->word_at[j - 1] = (uint32_t)w;
		}
		/* A repeated word would share no bits with its twin and count
		 * twice as one; the DFA refuses it, and so does this. */
		for (size_t w = 0; w < n; w++)
			for (size_t v = w + 1; v < n; v++)
				if (!strcmp(words[w], words[v])) {
					rc = -EINVAL;
					goto fail;
				}
	} else if ((rc = build(m, words, n, (uint32_t)total + 1)) || (rc = renumber(m))) {
		goto fail;
	}
	*out = m;
	return 0;
fail:
	vd_match_free(m);
	return rc;
}

/* Word w occurs just before stream offset end: count it unless it
 * overlaps the last occurrence counted. */
static inline void found(vd_match *m, uint32_t w, uint64_t end)
{
	if (m->any_order || end - m->len[w] >= m->last_end[w]) {
		m->count[w]++;
		m->last_end[w] = end;
	}
}

/* Some word ends at DFA state s. */
static void hit(vd_match *m, uint32_t s, uint64_t end)
{
	if (m->own[s] == NONE)
		s = m->link[s];
	for (; s != NONE; s = m->link[s])
		found(m, m->own[s], end);
}

/* Words end at the set bits of `ends` (Shift-And). */
static void hit_bits(vd_match *m, uint64_t ends, uint64_t end)
{
	for (; ends; ends &= ends - 1)
		found(m, m->word_at[__builtin_ctzll(ends)], end);
}

/* Shift-And over two halves of p[0..n) at once (any_order only). The
 * second chain starts maxlen - 1 bytes before its half, reporting nothing
 * there: enough history for every partial match to be in its bits, so it
 * is in the state a single chain would have, and it is the state carried
 * on. Needs n >= 2 * maxlen. */
static void shift_and_2(vd_match *m, const unsigned char *p, size_t n, uint64_t base)
{
	size_t h = n / 2, warm = m->maxlen - 1;
	const unsigned char *q = p + h;
	uint64_t a = m->bits, b = 0, last = m->last;

	for (size_t i = h - warm; i < h; i++)
		b = ((b << 1) & m->mask[p[i]]) | m->start[p[i]];
	for (size_t i = 0; i < h; i++) {
		a = ((a << 1) & m->mask[p[i]]) | m->start[p[i]];
		b = ((b << 1) & m->mask[q[i]]) | m->start[q[i]];
		if (__builtin_expect(((a | b) & last) != 0, 0)) {
			hit_bits(m, a & last, base + i + 1);
			hit_bits(m, b & last, base + h + i + 1);
		}
	}
	for (size_t i = h; i < n - h; i++) {
		b = ((b << 1) & m->mask[q[i]]) | m->start[q[i]];
		if (__builtin_expect((b & last) != 0, 0))
			hit_bits(m, b & last, base + h + i + 1);
	}
	m->bits = b;
}

void vd_match_feed(vd_match *m, const char *p, size_t n)
{
	const unsigned char *q = (const unsigned char *)p, *e = q + n;
	uint64_t base = m->pos;

	if (!m->next && m->any_order && n >= 2 * (size_t)m->maxlen + 256) {
		shift_and_2(m, q, n, base);
	} else if (!m->next) {
		uint64_t d = m->bits, last = m->last;
		for (; q < e; q++) {
			d = ((d << 1) & m->mask[*q]) | m->start[*q];
			if (__builtin_expect((d & last) != 0, 0))
				hit_bits(m, d & last, base + (uint64_t)(q - (const unsigned char *)p) + 1);
		}
		m->bits = d;
	} else {
		const uint32_t *next = m->next;
		const uint32_t out = m->first_out;
		uint32_t s = m->state;
		for (; q < e; q++) {
			s = next[(size_t)s << 8 | *q];
			if (__builtin_expect(s >= out, 0))
				hit(m, s, base + (uint64_t)(q - (const unsigned char *)p) + 1);
		}
		m->state = s;
	}
	m->pos = base + n;
}

uint64_t vd_match_count(const vd_match *m, size_t i)
{
	return i < m->nwords ? m->count[i] : 0;
}

void vd_match_free(vd_match *m)
{
	if (!m)
		return;
	free(m->next);
	free(m->own);
	free(m->link);
	free(m->len);
	free(m->count);
	free(m->last_end);
	free(m);
}
