/*
 * chunker.c - content-defined chunking on line boundaries (see chunker.h).
 *
 * For the chunk starting at p[0] with n bytes available (min/avg/max/hard
 * are the parameters):
 *  1. n <= min: at EOF the rest is one chunk; otherwise ask for more.
 *  2. Roll the gear hash from byte min up to min(n, max). At the first
 *     position i where it hits the mask (strict before avg, loose after),
 *     cut after the first '\n' at j >= i, j < max. If the buffer ends before
 *     max with no such '\n' and no EOF, ask for more.
 *  3. Without a decision: before max and no EOF, ask for more; at EOF with
 *     n < max, the rest is one chunk; otherwise cut after the last '\n' in
 *     p[0 .. max).
 *  4. No '\n' at all in p[0 .. max): one long record. Cut after the first
 *     '\n' in [max, hard); none with n >= hard is -E2BIG; at EOF the rest is
 *     one chunk; otherwise ask for more.
 *
 * Every answer given without EOF is one that EOF at the same n would give
 * too, and depends on no byte at or past n; that is why the caller's read
 * sizes cannot change the cuts. (Hence "n < max" in rule 3: with exactly
 * max bytes and no EOF we cut at the last '\n', so EOF at exactly max bytes
 * must do the same.)
 */
#include "chunker.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Any fixed value will do; changing it changes every chunk ID. */
#define GEAR_SEED UINT64_C(0x7664667367656172)   /* "vdfsgear" */

static uint64_t gear[256];
static pthread_once_t gear_once = PTHREAD_ONCE_INIT;

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static void gear_init(void)
{
	uint64_t st = GEAR_SEED;

	for (int i = 0; i < 256; i++)
		gear[i] = splitmix64(&st);
}

void vd_chunker_params_default(struct vd_chunker_params *p)
{
	p->min_size = (size_t)16 << 10;
	p->avg_size = (size_t)64 << 10;
	p->max_size = (size_t)256 << 10;
	p->hard_max = (size_t)64 << 20;
}

int vd_chunker_params_check(const struct vd_chunker_params *p)
{
	if (!p || p->min_size == 0 || p->min_size >= p->avg_size ||
	    p->avg_size >= p->max_size || p->max_size > p->hard_max)
		return -EINVAL;
	if (p->avg_size & (p->avg_size - 1))
		return -EINVAL;
	return 0;
}

static unsigned log2_size(size_t v)
{
	unsigned r = 0;

	while (v >>= 1)
		r++;
	return r;
}

/* A mask of `bits` one-bits at the top of the word. The gear hash shifts
 * left, so its high bits mix the most bytes (the last 64); the low bits would
 * see only the last few. */
static uint64_t top_mask(int bits)
{
	if (bits < 1)
		bits = 1;
	if (bits > 63)
		bits = 63;
	return ~UINT64_C(0) << (64 - bits);
}

/* First position in [from, to) where the hash hits, or `to`. Two loops so
 * that the mask is a constant in each. */
static size_t gear_scan(const unsigned char *p, size_t from, size_t avg, size_t to,
			uint64_t mask_s, uint64_t mask_l)
{
	size_t i = from, mid = avg < to ? avg : to;
	uint64_t h = 0;

	for (; i < mid; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask_s))
			return i;
	}
	for (; i < to; i++) {
		h = (h << 1) + gear[p[i]];
		if (!(h & mask_l))
			return i;
	}
	return to;
}

int vd_chunker_cut(size_t *cut, const unsigned char *p, size_t n, bool eof,
		   const struct vd_chunker_params *prm)
{
	size_t min = prm->min_size, max = prm->max_size, hard = prm->hard_max;
	size_t end, i;
	const unsigned char *nl;
	unsigned lg;

	*cut = 0;
	/* Rule 1. */
	if (n <= min) {
		if (eof)
			*cut = n;
		return 0;
	}

	/* Rule 2. */
	pthread_once(&gear_once, gear_init);
	lg = log2_size(prm->avg_size);
	end = n < max ? n : max;
	i = gear_scan(p, min, prm->avg_size, end, top_mask((int)lg + 2),
		      top_mask((int)lg - 2));
	if (i < end) {
		nl = memchr(p + i, '\n', end - i);
		if (nl) {
			*cut = (size_t)(nl - p) + 1;
			return 0;
		}
		if (n < max && !eof)
			return 0;
	}

	/* Rule 3. */
	if (n < max) {
		if (eof)
			*cut = n;
		return 0;
	}
	nl = memrchr(p, '\n', max);
	if (nl) {
		*cut = (size_t)(nl - p) + 1;
		return 0;
	}

	/* Rule 4: the first record is longer than max. */
	end = n < hard ? n : hard;
	nl = memchr(p + max, '\n', end - max);
	if (nl) {
		*cut = (size_t)(nl - p) + 1;
		return 0;
	}
	if (n >= hard) {
		*cut = hard;
		return -E2BIG;
	}
	if (eof)
		*cut = n;
	return 0;
}
