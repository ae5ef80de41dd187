/*
 * cmd_bench.c - `vdfs bench [--quick] [--out DIR] [--cases LIST] ...`: the
 * side-by-side performance benchmark (issue 6). The harness is a script,
 * tools/vdfs-bench.sh; this subcommand finds it and execs it with bash,
 * passing its options through (checked against the table below first),
 * and tells it which build to measure
 * (VDFS_BUILD: the directory above the one this binary is in, unless the
 * caller set it).
 *
 * The script is found, first match wins, at
 *   $VDFS_BENCH_SCRIPT                       (must exist if set)
 *   <dir of this binary>/../../tools/vdfs-bench.sh   (build/bin/vdfs)
 *   <source dir this file was compiled from>/vdfs-bench.sh
 *
 * `vdfs bench gen-text BYTES SEED` is a helper for the harness: it writes
 * exactly BYTES bytes of deterministic text (lines of 4-15 words drawn,
 * skewed, from a vocabulary of 3,000 made-up words; the last byte is a
 * newline) to stdout, at several hundred MB/s, so that a 10 GiB input costs
 * seconds. The same SEED gives the same bytes; different seeds give text
 * that shares no chunk.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define GEN_WORDS 3000
#define GEN_BUF (1u << 20)

static uint64_t gen_next(uint64_t *s)
{
	/* xorshift64*: fast, and plenty for made-up prose. */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Words of one to three consonant-vowel syllables, shortest first. */
static void gen_vocab(char words[GEN_WORDS][8])
{
	static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou";
	char syl[70][2];
	int ns = 0, nw = 0;

	for (int c = 0; cons[c]; c++)
		for (int v = 0; vow[v]; v++) {
			syl[ns][0] = cons[c];
			syl[ns][1] = vow[v];
			ns++;
		}
	/* Word number w (0-based) spells w in base 70 after the shorter ones. */
	for (int len = 1; len <= 3 && nw < GEN_WORDS; len++) {
		int count = len == 1 ? 70 : len == 2 ? 70 * 70 : 70 * 70 * 70;

		for (int i = 0; i < count && nw < GEN_WORDS; i++, nw++) {
			int x = i;

			memset(words[nw], 0, 8);
			for (int k = len - 1; k >= 0; k--) {
				memcpy(words[nw] + 2 * k, syl[x % 70], 2);
				x /= 70;
			}
		}
	}
}

static int parse_u64(unsigned long long *out, const char *s)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'K': *out <<= 10; end++; break;
	case 'M': *out <<= 20; end++; break;
	case 'G': *out <<= 30; end++; break;
	default: break;
	}
	return *end ? -1 : 0;
}

static int gen_text(int argc, char **argv)
{
	static char words[GEN_WORDS][8];
	unsigned char wlen[GEN_WORDS];
	unsigned long long bytes, seed;
	uint64_t s;
	char *buf;
	size_t used = 0;
	int rc = 0;

	if (argc != 3 || parse_u64(&bytes, argv[1]) || parse_u64(&seed, argv[2])) {
		fprintf(stderr, "usage: vdfs bench gen-text BYTES SEED (BYTES may end in K, M or G)\n");
		return 2;
	}
	gen_vocab(words);
	for (int i = 0; i < GEN_WORDS; i++)
		wlen[i] = (unsigned char)strlen(words[i]);
	/* splitmix64 of the seed, never zero (xorshift's fixed point). */
	s = seed + 0x9E3779B97F4A7C15ULL;
	s = (s ^ (s >> 30)) * 0xBF58476D1CE4E5B9ULL;
	s = (s ^ (s >> 27)) * 0x94D049BB133111EBULL;
	s ^= s >> 31;
	if (!s)
		s = 1;
	buf = malloc(GEN_BUF);
	if (!buf) {
		fprintf(stderr, "vdfs bench gen-text: out of memory\n");
		return 1;
	}
	while (bytes > 0) {
		/* One line: at most 15 words of 6 letters plus separators. */
		char line[128];
		size_t n = 0;
		uint64_t r = gen_next(&s);
		int nwords = 4 + (int)(r % 12);

		for (int k = 0; k < nwords; k++) {
			/* r^3 skew: a few words very common, most rare. */
			uint64_t u = gen_next(&s) >> 43;   /* 21 bits */
			uint64_t u3 = (((u * u) >> 21) * u) >> 21;
			int w = (int)((u3 * GEN_WORDS) >> 21);

			if (k)
				line[n++] = ' ';
			memcpy(line + n, words[w], wlen[w]);
			n += wlen[w];
		}
		line[n++] = '\n';
		if (n > bytes) {
			n = (size_t)bytes;
			line[n - 1] = '\n';
		}
		if (used + n > GEN_BUF) {
			if (vd_write_all(STDOUT_FILENO, buf, used)) {
				rc = 1;
				break;
			}
			used = 0;
		}
		memcpy(buf + used, line, n);
		used += n;
		bytes -= n;
	}
	if (!rc && used && vd_write_all(STDOUT_FILENO, buf, used))
		rc = 1;
	if (rc)
		fprintf(stderr, "vdfs bench gen-text: write: %s\n", strerror(errno));
	free(buf);
	return rc;
}

static int usable(const char *path)
{
	return access(path, R_OK) == 0;
}

/* Directory part of path into out (no trailing slash); -1 if too long. */
static int dir_of(char *out, size_t cap, const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (!slash) {
		if (cap < 2)
			return -1;
		out[0] = '.';
		out[1] = 0;
		return 0;
	}
	if (n >= cap)
		return -1;
	memcpy(out, path, n);
	out[n] = 0;
	return 0;
}

/* script = the first readable candidate; 0, or -1 when there is none. */
static int find_script(char *script, size_t cap, const char *bindir)
{
	char srcdir[PATH_MAX];
	const char *env = getenv("VDFS_BENCH_SCRIPT");

	if (env && *env) {
		if (!usable(env)) {
			fprintf(stderr, "vdfs bench: VDFS_BENCH_SCRIPT=%s: %s\n", env, strerror(errno));
			return -1;
		}
		return snprintf(script, cap, "%s", env) < (int)cap ? 0 : -1;
	}
	if (snprintf(script, cap, "%s/../../tools/vdfs-bench.sh", bindir) < (int)cap &&
	    usable(script))
		return 0;
	/* CMake compiles with absolute paths: the source tree's tools/. */
	if (!dir_of(srcdir, sizeof srcdir, __FILE__) && srcdir[0] == '/' &&
	    snprintf(script, cap, "%s/vdfs-bench.sh", srcdir) < (int)cap && usable(script))
		return 0;
	fprintf(stderr, "vdfs bench: harness tools/vdfs-bench.sh not found from %s "
			"(set VDFS_BENCH_SCRIPT=/path/to/vdfs-bench.sh)\n", bindir);
	return -1;
}

static int run(int argc, char **argv);

/* The harness's options: this table is what `vdfs bench` accepts and
 * documents; tools/vdfs-bench.sh parses them again (and t_cli_help checks
 * that its own --help names the same ones). */
static const struct vd_doc_opt opts[] = {
	{ "quick", 'q', NULL, "tiny sizes of every case: a smoke run of about a minute", 0 },
	{ "out", 'o', "DIR", "write the report there (default BUILD/bench/<timestamp>/)", 0 },
	{ "cases", 'c', "LIST", "only these cases, comma-separated: ingest, read, browse, small, "
	  "dispatch, e2e, memory (default all)", 0 },
	{ "rounds", 'r', "N", "rounds of every case (default 3; 1 with --quick)", 0 },
	{ "budget", 'B', "SECONDS", "a full run aims to end within SECONDS (default 780): the first "
	  "round of every case always runs, a further one only if the time left covers it; 0: no "
	  "budget", 0 },
	{ "perf", 'p', NULL, "record `perf record -a -g` during each case's vdfs part and write "
	  "the top symbols to perf/CASE.txt (timings then include perf's overhead)", 0 },
	{ "no-install", 'n', NULL, "do not apt-get install gnuplot when it is missing (the plot "
	  "is then skipped)", 0 },
	{ "keep", 'k', NULL, "keep the work directory", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_bench = {
	.name = "bench",
	.args = "",
	.summary = "performance against baselines (tools/vdfs-bench.sh)",
	.description =
		"Runs each case of the benchmark against its baselines in the same run "
		"(libfuse's passthrough_ll, a native directory, a single process), "
		"alternating who goes first, several rounds, as root. Prints medians, "
		"ratios and PASS or MISS against each target, and writes report.md, "
		"bench.png, results.tsv and rounds.tsv into the output directory.\n\n"
		"  ingest    cp of 1 GiB and 64 MiB into data/\n"
		"  read      cat of an input and its result.csv, cold and warm\n"
		"  browse    ls -l versions/ with 10,000 and 100,000 versions\n"
		"  small     cp -r of 10,000 files of 4 KiB\n"
		"  dispatch  units/s of a no-op function on 8 executors\n"
		"  e2e       the word count of 1 GB of text, cp to result.csv\n"
		"  memory    peak RSS of vdfsd and of the executors\n\n"
		"It measures the build this vdfs belongs to (VDFS_BUILD, unless set); "
		"VDFS_BENCH_DIR is where the work directory goes (default /var/tmp). Exit "
		"status: 0 when every case ran, whatever PASS or MISS says; 1 when one could "
		"not; 2 usage.\n\n"
		"vdfs bench gen-text BYTES SEED, a helper of the harness, writes BYTES bytes "
		"(K, M or G may follow) of made-up text to stdout; the same SEED gives the "
		"same bytes.",
	.opts = opts,
	.conn = false,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_bench, .argc = argc, .argv = argv };
	char self[PATH_MAX], bindir[PATH_MAX], script[PATH_MAX];
	struct vd_strv names = { 0 };   /* "--quick", ... as the harness spells them */
	char **args = NULL;             /* bash SCRIPT OPTIONS... */
	size_t nargs = 2;
	ssize_t n;
	int opt, rc = 1;

	if (argc >= 2 && !strcmp(argv[1], "gen-text"))
		return gen_text(argc - 1, argv + 1);
	if (!(args = calloc(2 * (size_t)argc + 3, sizeof *args))) {
		fprintf(stderr, "vdfs bench: out of memory\n");
		return 1;
	}
	/* Checked against the table here, then passed on by their full names
	 * (getopt takes abbreviations; the harness does not). */
	while ((opt = vd_cli_opt(&o)) > 0) {
		const struct vd_doc_opt *r = opts;
		char flag[64];

		while (r->name && r->val != opt)
			r++;
		if (!r->name)
			continue;
		snprintf(flag, sizeof flag, "--%s", r->name);
		if (vd_strv_push(&names, flag)) {
			fprintf(stderr, "vdfs bench: out of memory\n");
			goto out;
		}
		args[nargs++] = names.v[names.n - 1];
		if (r->arg)
			args[nargs++] = optarg;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind < argc) {
		rc = vd_cli_usage(&vd_cli_cmd_bench, "takes options only (or gen-text BYTES SEED)");
		goto out;
	}

	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0) {
		fprintf(stderr, "vdfs bench: cannot tell where this program is (/proc/self/exe)\n");
		goto out;
	}
	self[n] = 0;
	if (dir_of(bindir, sizeof bindir, self) || find_script(script, sizeof script, bindir))
		goto out;

	/* The build this binary belongs to is the one to measure. */
	if (!getenv("VDFS_BUILD")) {
		char build[PATH_MAX];

		if (snprintf(build, sizeof build, "%s/..", bindir) >= (int)sizeof build ||
		    setenv("VDFS_BUILD", build, 1)) {
			fprintf(stderr, "vdfs bench: cannot set VDFS_BUILD\n");
			goto out;
		}
	}
	if (setenv("VDFS_BENCH_VDFS", self, 1)) {
		fprintf(stderr, "vdfs bench: cannot set VDFS_BENCH_VDFS\n");
		goto out;
	}
	args[0] = "bash";
	args[1] = script;
	args[nargs] = NULL;
	fflush(NULL);
	execvp("bash", args);
	fprintf(stderr, "vdfs bench: cannot run bash %s: %s\n", script, strerror(errno));
out:
	vd_strv_release(&names);
	free(args);
	return rc;
}
