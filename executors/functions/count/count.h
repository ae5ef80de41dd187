/*
 * count.h - the pieces of vdfs-count: a streaming multi-word matcher, a
 * streaming decoder to UTF-8 (with encoding detection), and CSV fields.
 *
 * vdfs-count reads a unit's bytes, decodes them to UTF-8 and counts, for each
 * given word, its non-overlapping occurrences, as `grep -o WORD | wc -l`
 * would in a UTF-8 locale. They are a library of their own so that
 * tests/test_count.c can check them piece by piece.
 *
 * The decoder never drops a byte silently and never lets a match run across
 * a bad spot: every undecodable byte is reported through a callback with its
 * byte offset in the input, and becomes one 0xFF byte in the decoded stream.
 * 0xFF never occurs in valid UTF-8, so it is in no word, and the matcher
 * restarts after it.
 */
#ifndef VD_COUNT_H
#define VD_COUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- matcher (match.c) ------------------------------------------------- */

/* The words a matcher can hold at most, in bytes all together: its table is
 * 1 KiB per byte of words. */
#define VD_MATCH_MAX_BYTES (16u * 1024)

typedef struct vd_match vd_match;

/* A matcher for n distinct, non-empty words (any bytes). -EINVAL for an
 * empty or repeated word, -E2BIG past VD_MATCH_MAX_BYTES, -ENOMEM. */
int vd_match_new(vd_match **out, const char *const *words, size_t n);
/* The next n bytes of the stream; a word may span any number of calls. */
void vd_match_feed(vd_match *m, const char *p, size_t n);
/* Non-overlapping occurrences of word i so far (leftmost first, as grep -o). */
uint64_t vd_match_count(const vd_match *m, size_t i);
void vd_match_free(vd_match *m);

/* ---- decoder (decode.c) ------------------------------------------------ */

enum vd_enc { VD_ENC_AUTO, VD_ENC_UTF8, VD_ENC_GB18030, VD_ENC_BIG5 };

/* auto, utf-8 (utf8), gb18030 (gbk, gb2312: both subsets of it), big5; any
 * case. -EINVAL for anything else. */
int vd_enc_parse(enum vd_enc *out, const char *name);
const char *vd_enc_name(enum vd_enc e);

/* s[0..n) is well-formed UTF-8 (RFC 3629). */
bool vd_utf8_valid(const char *s, size_t n);

/* How many bytes of a sample `auto` looks at, from the first non-ASCII byte. */
#define VD_DECODE_SAMPLE (64u * 1024)
/* The guess `auto` makes from a sample that starts at a non-ASCII byte; eof
 * says the input ends with it (else a sequence cut at its end is no error).
 * Never VD_ENC_AUTO. */
enum vd_enc vd_decode_guess(const unsigned char *p, size_t n, bool eof);

/* Bytes the caller leaves writable before every buffer it feeds: the
 * decoder puts a sequence cut by the previous buffer's end there, so that
 * nothing is copied. */
#define VD_DECODE_HEADROOM 8

/* Decoded UTF-8 goes to `sink` (invalid spots as 0xFF); undecodable input
 * bytes [off, off + len) to `bad`. */
typedef void (*vd_decode_sink_fn)(void *arg, const char *p, size_t n);
typedef void (*vd_decode_bad_fn)(void *arg, uint64_t off, size_t len);

typedef struct vd_decode vd_decode;

/* -EINVAL if iconv cannot convert from the encoding, -ENOMEM. */
int vd_decode_new(vd_decode **out, enum vd_enc enc, vd_decode_sink_fn sink,
		  vd_decode_bad_fn bad, void *arg);
/* The next n input bytes; p[-VD_DECODE_HEADROOM..-1] must be writable, and
 * p[0..n) may be changed (UTF-8 is checked in place). 0 or -errno. */
int vd_decode_feed(vd_decode *d, char *p, size_t n);
/* End of input: decode what is held back, report a cut-off last sequence. */
int vd_decode_finish(vd_decode *d);
/* The encoding in use: for `auto`, what it chose, or VD_ENC_AUTO while the
 * input has been all ASCII (which reads the same in every encoding). */
enum vd_enc vd_decode_encoding(const vd_decode *d);
void vd_decode_free(vd_decode *d);

/* ---- CSV (csv.c) ------------------------------------------------------- */

/* Append s[0..n) as one CSV field. It is quoted (RFC 4180: in double
 * quotes, inner quotes doubled) when it holds a comma, a quote, CR or LF,
 * starts or ends with a space or tab, or could be read as a number (starts
 * with a digit, '+', '-' or '.'): reduce = sum takes trailing numeric
 * fields as the values, so an unquoted word "2024" would become one. */
int vd_csv_field(struct vd_buf *out, const char *s, size_t n);

#endif
