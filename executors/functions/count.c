/*
 * vdfs-count - count given words in text: the seed system's first workload.
 *
 *   vdfs-count [--per-file] [--encoding ENC] [--] WORD...
 *
 * Reads stdin (a unit: whole lines of one file), decodes it to UTF-8 and
 * prints `word,count` for each WORD in argument order, zero counts included:
 * the non-overlapping occurrences, as `grep -o WORD | wc -l` counts them in
 * a UTF-8 locale. With --per-file the rows are `path,word,count`, the path
 * being $VDFS_PATH (the file's path inside a submitted tree; "-" when
 * unset or empty). A word given twice gets one row. Fields are CSV,
 * quoted when needed (count/csv.c). With `reduce = sum` in the task's
 * config the rows add up to totals over every file of a version.
 *
 * ENC is auto (the default), utf-8, gb18030 (also gbk, gb2312) or big5;
 * without --encoding it comes from $VDFS_ENCODING, which the executor sets
 * from the task's `encoding` config key. Undecodable bytes count as nothing
 * (no word matches across them) and are reported on stderr with their byte
 * offset in this input; the run still succeeds. Memory stays bounded
 * whatever the input size: input is read and decoded a buffer at a time.
 *
 * Exit: 0 with the rows on stdout; 2 for bad arguments; 1 when stdin
 * cannot be read or stdout written (one line on stderr).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "count/count.h"
#include "frame.h"
#include "doc.h"
#include "util.h"

#define READ_SIZE (256u * 1024)
/* Undecodable spots reported one by one; later ones only in the summary. */
#define BAD_SHOWN 10

struct state {
	vd_match *match;
	const char *path;        /* for messages and --per-file */
	const char *unit;        /* $VDFS_UNIT, for messages */
	uint64_t bad_bytes, bad_spots, bad_first;
	uint64_t run_off, run_len;   /* the bad run being gathered */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vdfs-count [--per-file] [--encoding ENC] [--] WORD...\n"
		"Counts each WORD's non-overlapping occurrences in stdin; prints\n"
		"word,count rows in argument order (path,word,count with --per-file,\n"
		"the path from $VDFS_PATH). ENC: auto (default, or $VDFS_ENCODING),\n"
		"utf-8, gb18030 (gbk), big5.\n");
}

static void on_text(void *arg, const char *p, size_t n)
{
	struct state *st = arg;

	vd_match_feed(st->match, p, n);
}

/* One bad run: a line on stderr for the first few. */
static void report_run(struct state *st)
{
	if (!st->run_len)
		return;
	st->bad_spots++;
	if (st->bad_spots == 1)
		st->bad_first = st->run_off;
	if (st->bad_spots <= BAD_SHOWN)
		fprintf(stderr, "vdfs-count: %s%s%s: byte offset %llu: %llu undecodable "
			"byte%s, counted as nothing\n", st->path,
			st->unit ? " unit " : "", st->unit ? st->unit : "",
			(unsigned long long)st->run_off, (unsigned long long)st->run_len,
			st->run_len == 1 ? "" : "s");
	st->run_len = 0;
}

/* Adjacent bad bytes are one spot, reported once. */
static void on_bad(void *arg, uint64_t off, size_t len)
{
	struct state *st = arg;

	st->bad_bytes += len;
	if (st->run_len && st->run_off + st->run_len == off) {
		st->run_len += len;
		return;
	}
	report_run(st);
	st->run_off = off;
	st->run_len = len;
}

/* Read stdin to its end through the decoder (and so the matcher). 0, or
 * -errno after one line on stderr. */
static int count_stdin(vd_decode *dec)
{
	char *buf = malloc(VD_DECODE_HEADROOM + READ_SIZE);
	const char *what = "reading stdin";
	int rc = -ENOMEM;

	if (!buf)
		goto out;
	for (;;) {
		ssize_t r = read(STDIN_FILENO, buf + VD_DECODE_HEADROOM, READ_SIZE);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		if ((rc = vd_decode_feed(dec, buf + VD_DECODE_HEADROOM, (size_t)r))) {
			what = "decoding";
			goto out;
		}
	}
	what = "decoding";
	rc = vd_decode_finish(dec);
out:
	if (rc)
		fprintf(stderr, "vdfs-count: %s (as %s): %s\n", what,
			vd_enc_name(vd_decode_encoding(dec)), strerror(-rc));
	free(buf);
	return rc;
}

static int count_unit(int argc, char **argv, void *ctx)
{
	static const struct option opts[] = {
		{ "per-file", no_argument, NULL, 'p' },
		{ "encoding", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct state st = { 0 };
	struct vd_strv words = { 0 };
	struct vd_buf out = VD_BUF_INIT((size_t)64 << 20);
	vd_decode *dec = NULL;
	bool per_file = false;
	const char *encname = getenv("VDFS_ENCODING");
	enum vd_enc enc = VD_ENC_AUTO;
	int c, rc, status = 2;

	(void)ctx;
	/* '+': options come first, so that a word may look like one after
	 * them (or after "--"). ':' and opterr = 0: a bad option is one line
	 * of ours. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 'p': per_file = true; break;
		case 'e': encname = optarg; break;
		case 'h': usage(stdout); status = 0; goto out;
		default: vd_doc_bad_option("vdfs-count", "vdfs-count --help", c, argv); goto out;
		}
	}
	if (encname && *encname && vd_enc_parse(&enc, encname)) {
		fprintf(stderr, "vdfs-count: unknown encoding '%s' (auto, utf-8, gb18030, "
			"big5)\n", encname);
		goto out;
	}
	if (optind >= argc) {
		fprintf(stderr, "vdfs-count: no word to count (usage: vdfs-count WORD...)\n");
		goto out;
	}
	size_t total = 0;
	for (int i = optind; i < argc; i++) {
		/* Checked before the words are compared with each other, which
		 * takes time quadratic in their number. */
		total += strlen(argv[i]);
		if (total > VD_MATCH_MAX_BYTES) {
			fprintf(stderr, "vdfs-count: the words come to more than %u bytes\n",
				VD_MATCH_MAX_BYTES);
			goto out;
		}
		if (!*argv[i]) {
			fprintf(stderr, "vdfs-count: a word must have at least one character\n");
			goto out;
		}
		/* Words must be valid UTF-8: that is what the text is decoded to. */
		if (!vd_utf8_valid(argv[i], strlen(argv[i]))) {
			fprintf(stderr, "vdfs-count: word %d is not valid UTF-8\n", i - optind + 1);
			goto out;
		}
		bool seen = false;
		for (size_t j = 0; j < words.n && !seen; j++)
			seen = !strcmp(words.v[j], argv[i]);
		if (!seen && vd_strv_push(&words, argv[i])) {
			fprintf(stderr, "vdfs-count: out of memory\n");
			goto out;
		}
	}
	st.path = getenv("VDFS_PATH");
	if (!st.path || !*st.path)
		st.path = "-";
	st.unit = getenv("VDFS_UNIT");
	if (st.unit && !*st.unit)
		st.unit = NULL;
	if ((rc = vd_match_new(&st.match, (const char *const *)words.v, words.n))) {
		if (rc == -E2BIG)
			fprintf(stderr, "vdfs-count: the words come to more than %u bytes\n",
				VD_MATCH_MAX_BYTES);
		else
			fprintf(stderr, "vdfs-count: cannot set up the words: %s\n",
				strerror(-rc));
		goto out;
	}
	if ((rc = vd_decode_new(&dec, enc, on_text, on_bad, &st))) {
		fprintf(stderr, "vdfs-count: cannot decode %s: %s\n", vd_enc_name(enc),
			strerror(-rc));
		goto out;
	}

	status = 1;
	if (count_stdin(dec))
		goto out;
	report_run(&st);
	if (st.bad_spots)
		fprintf(stderr, "vdfs-count: %s%s%s: %llu undecodable byte%s in %llu place%s "
			"(read as %s; the first at byte offset %llu), counted as nothing\n",
			st.path, st.unit ? " unit " : "", st.unit ? st.unit : "",
			(unsigned long long)st.bad_bytes, st.bad_bytes == 1 ? "" : "s",
			(unsigned long long)st.bad_spots, st.bad_spots == 1 ? "" : "s",
			vd_enc_name(vd_decode_encoding(dec)),
			(unsigned long long)st.bad_first);

	for (size_t i = 0; i < words.n; i++) {
		rc = 0;
		if (per_file)
			rc = vd_csv_field(&out, st.path, strlen(st.path));
		if (!rc && per_file)
			rc = vd_buf_add(&out, ",", 1);
		if (!rc)
			rc = vd_csv_field(&out, words.v[i], strlen(words.v[i]));
		if (!rc)
			rc = vd_buf_addf(&out, ",%llu\n",
					 (unsigned long long)vd_match_count(st.match, i));
		if (rc) {
			fprintf(stderr, "vdfs-count: cannot build the output: %s\n", strerror(-rc));
			goto out;
		}
	}
	if ((rc = vd_write_all(STDOUT_FILENO, out.data, out.len))) {
		fprintf(stderr, "vdfs-count: writing stdout: %s\n", strerror(-rc));
		goto out;
	}
	status = 0;
out:
	vd_decode_free(dec);
	vd_match_free(st.match);
	vd_strv_release(&words);
	vd_buf_release(&out);
	return status;
}

/* One unit per process, or, with VDFS_MODE=persistent, one per frame
 * (frame.h): the words are parsed again for each, which is cheap. */
int main(int argc, char **argv)
{
	return vd_frame_main(argc, argv, count_unit, NULL);
}
