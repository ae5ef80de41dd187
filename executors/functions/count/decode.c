/*
 * decode.c - turning a unit's bytes into UTF-8 for counting, a buffer at a
 * time, in bounded memory.
 *
 * UTF-8 input is checked in place (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) and passed on without a copy; every
 * byte of an invalid sequence becomes 0xFF, so offsets stay those of the
 * input. GB18030 (which covers GBK and GB2312) and Big5 go through glibc's
 * iconv into a fixed output buffer; an undecodable byte is skipped and
 * stands as one 0xFF. Either way each bad spot is reported with its offset,
 * and a sequence cut by the end of a buffer is held back (at most 3 bytes)
 * and put in front of the next one, in the headroom the caller leaves.
 *
 * `auto` decides once per input. ASCII reads the same in all three
 * encodings, so it is passed on undecided; from the first byte >= 0x80 up to
 * VD_DECODE_SAMPLE bytes are held back as a sample, the encoding is guessed
 * from it (vd_decode_guess below), and then the sample and the rest are
 * decoded with the guess.
 */
#include <errno.h>
#include <iconv.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "count.h"

#define OUT_SIZE (64u * 1024)

struct vd_decode {
	enum vd_enc enc;          /* in use; VD_ENC_AUTO while undecided */
	iconv_t cd;               /* (iconv_t)-1 for UTF-8 */
	vd_decode_sink_fn sink;
	vd_decode_bad_fn bad;
	void *arg;
	uint64_t off;             /* input offset of the next byte not yet decoded */
	char carry[VD_DECODE_HEADROOM];
	size_t ncarry;            /* a cut sequence, from input offset off - ncarry */
	char *sample;             /* auto: VD_DECODE_HEADROOM + VD_DECODE_SAMPLE */
	size_t nsample;
	char *out;                /* iconv's output, OUT_SIZE bytes */
};

static const char bad_mark[1] = { (char)0xff };

int vd_enc_parse(enum vd_enc *out, const char *name)
{
	static const struct { const char *name; enum vd_enc enc; } names[] = {
		{ "auto", VD_ENC_AUTO }, { "utf-8", VD_ENC_UTF8 }, { "utf8", VD_ENC_UTF8 },
		{ "gb18030", VD_ENC_GB18030 }, { "gbk", VD_ENC_GB18030 },
		{ "gb2312", VD_ENC_GB18030 }, { "big5", VD_ENC_BIG5 },
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(name, names[i].name)) {
			*out = names[i].enc;
			return 0;
		}
	return -EINVAL;
}

const char *vd_enc_name(enum vd_enc e)
{
	switch (e) {
	case VD_ENC_UTF8: return "utf-8";
	case VD_ENC_GB18030: return "gb18030";
	case VD_ENC_BIG5: return "big5";
	default: return "auto";
	}
}

/* ---- UTF-8 ------------------------------------------------------------- */

/* The length of the UTF-8 sequence at p[0..n) (p[0] >= 0x80): > 0 when it
 * is valid, -k when its first k bytes are a maximal invalid part (k >= 1),
 * 0 when it is a valid beginning cut by the end of the buffer. */
static int utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	int len;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return -1;
	/* The second byte's range excludes overlong forms (E0, F0),
	 * surrogates (ED) and code points past U+10FFFF (F4). */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (int k = 1; k < len; k++) {
		if ((size_t)k >= n)
			return 0;
		if (p[k] < lo || p[k] > hi)
			return -k;
		lo = 0x80;
		hi = 0xbf;
	}
	return len;
}

bool vd_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		int k = p[i] < 0x80 ? 1 : utf8_seq(p + i, n - i);
		if (k <= 0)
			return false;
		i += (size_t)k;
	}
	return true;
}

/* Bytes at p[0..n) that are all ASCII, counted eight at a time first. */
static size_t ascii_run(const unsigned char *p, size_t n)
{
	size_t i = 0;
	uint64_t w;

	while (i + 8 <= n) {
		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ull)
			break;
		i += 8;
	}
	while (i < n && p[i] < 0x80)
		i++;
	return i;
}

/*
 * The fast check: a shift-based DFA. Each state is a multiple of 6 (0 is
 * "between characters", REJECT is sticky), and row[c] packs, at bit 6 * k,
 * the state that byte c leads to from state k, so one step is
 * `s = row[c] >> (s & 63)`: one shift on the chain of dependent
 * operations per byte, where a table of states would put a load there.
 * Only a buffer with an error in it goes through utf8_fix below, which
 * finds, reports and marks each bad spot.
 */
enum { U_OK, U_REJECT, U_C1, U_C2, U_C3, U_E0, U_ED, U_F0, U_F4, U_NSTATES };

static uint64_t utf8_row[256];

static void utf8_rows_init(void)
{
	for (int c = 0; c < 256; c++) {
		int to[U_NSTATES];
		bool cont = c >= 0x80 && c <= 0xbf;
		for (int k = 0; k < U_NSTATES; k++)
			to[k] = U_REJECT;
		if (c < 0x80)
			to[U_OK] = U_OK;
		else if (c >= 0xc2 && c <= 0xdf)
			to[U_OK] = U_C1;
		else if (c == 0xe0)
			to[U_OK] = U_E0;
		else if (c == 0xed)
			to[U_OK] = U_ED;
		else if (c >= 0xe1 && c <= 0xef)
			to[U_OK] = U_C2;
		else if (c == 0xf0)
			to[U_OK] = U_F0;
		else if (c == 0xf4)
			to[U_OK] = U_F4;
		else if (c >= 0xf1 && c <= 0xf3)
			to[U_OK] = U_C3;
		if (cont) {
			to[U_C1] = U_OK;
			to[U_C2] = U_C1;
			to[U_C3] = U_C2;
		}
		if (c >= 0xa0 && c <= 0xbf)
			to[U_E0] = U_C1;
		if (c >= 0x80 && c <= 0x9f)
			to[U_ED] = U_C1;
		if (c >= 0x90 && c <= 0xbf)
			to[U_F0] = U_C2;
		if (c >= 0x80 && c <= 0x8f)
			to[U_F4] = U_C2;
		uint64_t row = 0;
		for (int k = 0; k < U_NSTATES; k++)
			row |= (uint64_t)(6 * to[k]) << (6 * k);
		utf8_row[c] = row;
	}
}

/* The state after p[0..n) from "between characters": U_OK, U_REJECT, or a
 * state inside a sequence cut by the end. */
static int utf8_scan(const unsigned char *p, size_t n)
{
	uint64_t s = 0;
	size_t i = 0;

	/* Unrolled: the shifts stay one chain, the loads run ahead of it. */
	for (; i + 4 <= n; i += 4) {
		s = utf8_row[p[i]] >> (s & 63);
		s = utf8_row[p[i + 1]] >> (s & 63);
		s = utf8_row[p[i + 2]] >> (s & 63);
		s = utf8_row[p[i + 3]] >> (s & 63);
	}
	for (; i < n; i++)
		s = utf8_row[p[i]] >> (s & 63);
	return (int)((s & 63) / 6);
}

/* Check p[0..n) (input offset off) in place; returns how many bytes are
 * settled: the rest is a sequence cut by the end (never at eof). */
static size_t utf8_fix(vd_decode *d, unsigned char *p, size_t n, uint64_t off, bool eof)
{
	size_t i = 0;

	while (i < n) {
		i += ascii_run(p + i, n - i);
		if (i >= n)
			break;
		int k = utf8_seq(p + i, n - i);
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		if (k == 0) {
			if (!eof)
				return i;
			k = -(int)(n - i);   /* cut for good: all of it is bad */
		}
		d->bad(d->arg, off + i, (size_t)-k);
		memset(p + i, 0xff, (size_t)-k);
		i += (size_t)-k;
	}
	return n;
}

/* ---- iconv ------------------------------------------------------------- */

static int iconv_run(vd_decode *d, char *p, size_t n, uint64_t off, size_t *done,
		     bool eof)
{
	char *in = p;
	size_t left = n;

	*done = n;
	while (left) {
		char *o = d->out;
		size_t room = OUT_SIZE;
		size_t r = iconv(d->cd, &in, &left, &o, &room);
		int err = r == (size_t)-1 ? errno : 0;

		if (o > d->out)
			d->sink(d->arg, d->out, (size_t)(o - d->out));
		if (!err || err == E2BIG)
			continue;
		if (err == EINVAL && !eof) {
			*done = (size_t)(in - p);   /* cut by the end: held back */
			return 0;
		}
		if (err != EILSEQ && err != EINVAL)
			return -err;
		/* Skip one byte and go on: in a double-byte encoding the next
		 * byte may start a good character (often a newline). A sequence
		 * cut by the end of the input is bad as a whole. */
		size_t k = err == EINVAL ? left : 1;
		d->bad(d->arg, off + (uint64_t)(in - p), k);
		d->sink(d->arg, bad_mark, 1);
		in += k;
		left -= k;
	}
	return 0;
}

/* ---- guessing ---------------------------------------------------------- */

/*
 * The guess. Valid UTF-8 is almost never an accident for Chinese text, so
 * a sample whose non-ASCII bytes are nearly all (>= 95 %) in well-formed
 * UTF-8 sequences is UTF-8, a few corrupt bytes notwithstanding.
 *
 * GB18030 and Big5 cannot be told apart by validity: nearly any Big5 text
 * is also well-formed GB18030 (both are lead byte 0x81-0xFE plus a trail
 * byte, and GB18030 accepts every Big5 trail byte). What differs is where
 * real text falls. Chinese prose is mostly common characters: in GB2312
 * (GBK's core), punctuation is in rows 0xA1-0xA3 and the 3,755 most common
 * hanzi in rows 0xB0-0xD7, both with trail bytes 0xA1-0xFE; in Big5,
 * punctuation is 0xA140-0xA3BF and the 5,401 common hanzi 0xA440-0xC67E.
 * Read in the wrong encoding those byte pairs land far less often in the
 * other's common area (Big5 text as GBK: under a third; GBK text as Big5:
 * about half), and GBK's extension rows 0x81-0xA0 (used for traditional
 * characters) are not Big5 at all. So each candidate scores its common
 * characters minus twice its invalid sequences, and the higher score wins;
 * a tie goes to GB18030.
 */
enum vd_enc vd_decode_guess(const unsigned char *p, size_t n, bool eof)
{
	size_t good = 0, bad = 0;
	long gb = 0, b5 = 0;

	for (size_t i = 0; i < n;) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		int k = utf8_seq(p + i, n - i);
		if (k == 0 && !eof)
			break;
		if (k > 0)
			good += (size_t)k;
		else
			bad += k < 0 ? (size_t)-k : n - i;
		i += k > 0 ? (size_t)k : k < 0 ? (size_t)-k : n - i;
	}
	if (good > 0 && bad * 20 <= good + bad)
		return VD_ENC_UTF8;

	for (size_t i = 0; i < n;) {
		unsigned char a = p[i], b = i + 1 < n ? p[i + 1] : 0;
		if (a < 0x80) {
			i++;
			continue;
		}
		if (i + 1 >= n) {
			if (eof)
				gb -= 2;
			break;
		}
		if (a >= 0x81 && a <= 0xfe && b >= 0x30 && b <= 0x39) {
			/* A four-byte GB18030 sequence; rare in real text. */
			if (i + 3 < n && p[i + 2] >= 0x81 && p[i + 2] <= 0xfe &&
			    p[i + 3] >= 0x30 && p[i + 3] <= 0x39) {
				i += 4;
			} else {
				gb -= 2;
				i++;
			}
			continue;
		}
		if (a == 0x80 || a == 0xff || b < 0x40 || b == 0x7f || b == 0xff) {
			gb -= 2;
			i++;
			continue;
		}
		if (b >= 0xa1 && ((a >= 0xa1 && a <= 0xa3) || (a >= 0xb0 && a <= 0xd7)))
			gb++;
		i += 2;
	}
	for (size_t i = 0; i < n;) {
		unsigned char a = p[i], b = i + 1 < n ? p[i + 1] : 0;
		if (a < 0x80) {
			i++;
			continue;
		}
		if (i + 1 >= n) {
			if (eof)
				b5 -= 2;
			break;
		}
		if (a < 0xa1 || a > 0xf9 || b < 0x40 || (b > 0x7e && b < 0xa1) || b == 0xff) {
			b5 -= 2;
			i++;
			continue;
		}
		unsigned code = (unsigned)a << 8 | b;
		if ((code >= 0xa140 && code <= 0xa3bf) || (code >= 0xa440 && code <= 0xc67e))
			b5++;
		i += 2;
	}
	return b5 > gb ? VD_ENC_BIG5 : VD_ENC_GB18030;
}

/* ---- the stream -------------------------------------------------------- */

static int choose(vd_decode *d, enum vd_enc enc)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	d->enc = enc;
	if (enc == VD_ENC_UTF8)
		return pthread_once(&once, utf8_rows_init) ? -EINVAL : 0;
	d->cd = iconv_open("UTF-8", enc == VD_ENC_BIG5 ? "BIG5" : "GB18030");
	if (d->cd == (iconv_t)-1)
		return errno == EINVAL ? -EINVAL : -errno;
	if (!d->out && !(d->out = malloc(OUT_SIZE)))
		return -ENOMEM;
	return 0;
}

int vd_decode_new(vd_decode **out, enum vd_enc enc, vd_decode_sink_fn sink,
		  vd_decode_bad_fn bad, void *arg)
{
	vd_decode *d = calloc(1, sizeof *d);
	int rc = -ENOMEM;

	*out = NULL;
	if (!d)
		goto fail;
	d->cd = (iconv_t)-1;
	d->sink = sink;
	d->bad = bad;
	d->arg = arg;
	if (enc == VD_ENC_AUTO) {
		if (!(d->sample = malloc(VD_DECODE_HEADROOM + VD_DECODE_SAMPLE)))
			goto fail;
	} else if ((rc = choose(d, enc))) {
		goto fail;
	}
	*out = d;
	return 0;
fail:
	vd_decode_free(d);
	return rc;
}

/* Decode the new bytes p[0..n) (at input offset d->off) after what was
 * held back, which goes in p's headroom. */
static int run(vd_decode *d, char *p, size_t n, bool eof)
{
	size_t done;
	int rc = 0;

	p -= d->ncarry;
	memcpy(p, d->carry, d->ncarry);
	n += d->ncarry;
	uint64_t off = d->off - d->ncarry;
	d->off += n - d->ncarry;
	d->ncarry = 0;
	if (d->enc == VD_ENC_UTF8) {
		const unsigned char *u = (const unsigned char *)p;
		int st = utf8_scan(u, n);
		if (st == U_OK) {
			done = n;
		} else if (st != U_REJECT && !eof) {
			/* Valid up to a sequence cut by the end: its lead byte
			 * is among the last three, and held back with it. */
			done = n - 1;
			while (u[done] >= 0x80 && u[done] <= 0xbf)
				done--;
		} else {
			done = utf8_fix(d, (unsigned char *)p, n, off, eof);
		}
		if (done)
			d->sink(d->arg, p, done);
	} else if ((rc = iconv_run(d, p, n, off, &done, eof))) {
		return rc;
	}
	d->ncarry = n - done;
	memcpy(d->carry, p + done, d->ncarry);
	return 0;
}

/* auto: guess from the sample, then decode it. */
static int decide(vd_decode *d, bool eof)
{
	int rc = choose(d, vd_decode_guess((unsigned char *)d->sample + VD_DECODE_HEADROOM,
					   d->nsample, eof));
	if (!rc)
		rc = run(d, d->sample + VD_DECODE_HEADROOM, d->nsample, eof);
	d->nsample = 0;
	return rc;
}

int vd_decode_feed(vd_decode *d, char *p, size_t n)
{
	int rc;

	if (d->enc == VD_ENC_AUTO) {
		if (d->nsample == 0) {
			size_t a = ascii_run((const unsigned char *)p, n);
			if (a)
				d->sink(d->arg, p, a);
			d->off += a;
			p += a;
			n -= a;
		}
		size_t take = VD_DECODE_SAMPLE - d->nsample;
		if (take > n)
			take = n;
		memcpy(d->sample + VD_DECODE_HEADROOM + d->nsample, p, take);
		d->nsample += take;
		p += take;
		n -= take;
		if (d->nsample < VD_DECODE_SAMPLE)
			return 0;
		if ((rc = decide(d, false)))
			return rc;
	}
	return n ? run(d, p, n, false) : 0;
}

int vd_decode_finish(vd_decode *d)
{
	char tail[VD_DECODE_HEADROOM + 1];

	if (d->enc == VD_ENC_AUTO)
		return d->nsample ? decide(d, true) : 0;
	return run(d, tail + VD_DECODE_HEADROOM, 0, true);
}

enum vd_enc vd_decode_encoding(const vd_decode *d)
{
	return d->enc;
}

void vd_decode_free(vd_decode *d)
{
	if (!d)
		return;
	if (d->cd != (iconv_t)-1)
		iconv_close(d->cd);
	free(d->sample);
	free(d->out);
	free(d);
}
