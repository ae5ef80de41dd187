/*
 * cmd_get.c - `vdfs get ID [PATH] [-o OUT] [--input] [--task T]`: a
 * version's result.csv (or its input, or one file of a tree input) from
 * any machine (GET /v1/tasks/<task>/versions/<id>/..., docs/protocol.md,
 * "Downloads").
 *
 * With -o OUT the bytes go to OUT.part first and OUT appears only once they
 * are all there, renamed into place: a cut download never leaves a short
 * OUT. The part keeps the content's ETag beside it (OUT.part.etag), so
 * that the next `vdfs get ... -o OUT` asks only for the rest (Range, with
 * If-Range: if the content is another by then, a result of newer code, the
 * daemon sends it whole and the part is started again).
 *
 * `vdfs get --zip ID... [-o OUT] [--input] [--task T]`: those versions'
 * results (or inputs) as one zip (GET /v1/archive, docs/protocol.md,
 * "Archives"). The daemon makes the zip while it sends it, so there is no
 * ETag and nothing to resume: OUT.part is started afresh each time and
 * removed when the download fails. Without -o the zip is saved under the
 * name the daemon gives it (vdfs-results.zip, vdfs-inputs.zip) in the
 * current directory, as wget or curl -OJ do, but never over an existing
 * file; -o - writes it to standard output.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "output", 'o', "OUT",
	  "write to OUT (through OUT.part, which a later run resumes) instead of "
	  "standard output; with --zip instead of vdfs-results.zip, and - is "
	  "standard output", VD_DOC_SHORT },
	{ "input", 'i', NULL,
	  "the version's input instead of its result.csv; with PATH, that file of a "
	  "tree", VD_DOC_SHORT },
	{ "task", 't', "TASK",
	  "the task whose version ID is (needed when several tasks hold the same "
	  "content)", VD_DOC_SHORT },
	{ "zip", 'z', NULL,
	  "every ID given, as one zip: TASK/ID/result.csv, or with --input "
	  "TASK/ID/NAME (a file) and TASK/ID/NAME/PATH (each file of a tree)",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_get = {
	.name = "get",
	.args = "ID [PATH] | -z ID...",
	.summary = "download a version's result.csv or input, or several as a zip",
	.description =
		"Downloads the result.csv of version ID (a data ID or a unique prefix of "
		"at least 6 hex digits), or with --input its input: the file, or with "
		"PATH one file of a tree. To standard output, or with -o OUT to OUT: the "
		"bytes go to OUT.part and OUT appears, renamed into place, only when "
		"they are all there; a download that was cut (^C, a lost network) "
		"resumes from what OUT.part holds at the next vdfs get with the same "
		"-o, unless the content changed meanwhile (then it starts again).\n\n"
		"With --zip, the result.csv of every version named (or with --input "
		"their inputs) comes as one zip, made by the daemon while it is sent: "
		"TASK/ID/result.csv for each, or TASK/ID/NAME for a file input and "
		"TASK/ID/NAME/PATH for each file of a tree. With -o OUT it is written "
		"to OUT.part and renamed to OUT when complete (a cut download is not "
		"resumed: the next run starts again); without -o it is saved as "
		"vdfs-results.zip (vdfs-inputs.zip with --input) in the current "
		"directory, unless a file of that name exists; -o - writes it to "
		"standard output. An ID that several tasks hold is taken from the "
		"first of them in name order, unless --task names the task (then every "
		"ID must be a version of it). One request carries at most about 450 "
		"IDs.\n\n"
		" vdfs get --zip 3f2a9c 81be07 d4410e -o results.zip\n"
		" vdfs get --zip --input 3f2a9c --task wc\n\n"
		"Exit: 0 done; 1 failed; 2 no such version, file or result (not done "
		"yet), or a usage error.",
	.opts = opts,
	.conn = true,
	.run = run,
};

/* The ETag a part was fetched with, or "". */
static void part_etag(char etag[VD_CLI_ETAG_SIZE], const char *path)
{
	FILE *f = fopen(path, "r");
	etag[0] = '\0';
	if (!f)
		return;
	if (fgets(etag, VD_CLI_ETAG_SIZE, f))
		etag[strcspn(etag, "\n")] = '\0';
	fclose(f);
}

/* The longest request path --zip sends: the daemon refuses a request
 * head past 16 KiB, and the head has a few other lines. */
#define ZIP_PATH_MAX ((size_t)15 << 10)

/* vdfs get --zip: argv[first..argc) are the IDs. Exit code. */
static int run_zip(struct vd_cli_conn *c, int argc, char **argv, int first, const char *out,
		   bool input, const char *want)
{
	struct vd_buf url = VD_BUF_INIT(ZIP_PATH_MAX), part = VD_BUF_INIT(8192);
	const char *dflt = input ? "vdfs-inputs.zip" : "vdfs-results.zip";
	char id[VD_ID_SIZE], got[VD_CLI_ETAG_SIZE];
	bool made = false;
	int rc, fd = -1;
	long status;

	/* Each ID takes 33 bytes of the path: too many is said before any
	 * prefix is looked up. */
	if ((size_t)(argc - first) * (VD_ID_LEN + 1) + 64 > ZIP_PATH_MAX) {
		fprintf(stderr, "vdfs get: %d IDs are too many for one request; ask for at most "
			"about 450 at a time\n", argc - first);
		rc = 2;
		goto out;
	}
	if ((rc = vd_cli_conn_open(c, "get")))
		goto out;
	vd_buf_adds(&url, "/v1/archive?ids=");
	for (int i = first; i < argc; i++) {
		if ((rc = vd_cli_resolve_id(id, c, "get", argv[i])))
			goto out;
		if (vd_buf_addf(&url, "%s%s", i > first ? "," : "", id)) {
			fprintf(stderr, "vdfs get: %d IDs are too many for one request; ask for "
				"at most about 450 at a time\n", argc - first);
			rc = 2;
			goto out;
		}
	}
	rc = 1;
	if ((input && vd_buf_adds(&url, "&what=input")) ||
	    (want && (vd_buf_adds(&url, "&task=") || vd_cli_url_escape(&url, want)))) {
		fprintf(stderr, "vdfs get: the request is too long\n");
		goto out;
	}
	if (out && !strcmp(out, "-")) {
		rc = vd_cli_download(&status, got, c, "get", vd_buf_cstr(&url), STDOUT_FILENO, 0,
				     NULL);
		goto out;
	}
	if (!out) {
		/* Never over a file of the user's: the name is ours, not theirs. */
		if (access(dflt, F_OK) == 0) {
			fprintf(stderr, "vdfs get: %s exists; name another file with -o\n", dflt);
			goto out;
		}
		out = dflt;
	}
	vd_buf_addf(&part, "%s.part", out);
	fd = open(vd_buf_cstr(&part), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		goto out;
	}
	made = true;
	if ((rc = vd_cli_download(&status, got, c, "get", vd_buf_cstr(&url), fd, 0, NULL)))
		goto out;
	rc = 1;
	int cr = close(fd);
	fd = -1;
	if (cr < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		goto out;
	}
	/* The default name is put in place with link(2), which fails
	 * rather than replace a file that appeared meanwhile; -o OUT is
	 * the user's word to replace OUT. */
	if (out == dflt ? link(vd_buf_cstr(&part), out) < 0
			: rename(vd_buf_cstr(&part), out) < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", out, strerror(errno));
		goto out;
	}
	if (out == dflt) {
		unlink(vd_buf_cstr(&part));
		fprintf(stderr, "vdfs get: saved %s\n", out);
	}
	made = false;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	/* A zip cut short is of no use, and the next run makes it anew. */
	if (made)
		unlink(vd_buf_cstr(&part));
	vd_buf_release(&url);
	vd_buf_release(&part);
	return rc;
}

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_get, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf url = VD_BUF_INIT(16384), task = VD_BUF_INIT(1024);
	struct vd_buf part = VD_BUF_INIT(8192), tagf = VD_BUF_INIT(8192);
	const char *out = NULL, *want = NULL, *path = NULL;
	char id[VD_ID_SIZE], had[VD_CLI_ETAG_SIZE] = "", got[VD_CLI_ETAG_SIZE];
	bool input = false, zip = false;
	int opt, rc = 2, fd = -1;
	long status;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'o')
			out = optarg;
		else if (opt == 'i')
			input = true;
		else if (opt == 't')
			want = optarg;
		else if (opt == 'z')
			zip = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (zip) {
		rc = optind == argc ? vd_cli_usage(&vd_cli_cmd_get, "which versions?")
				    : run_zip(&c, argc, argv, optind, out, input, want);
		goto out;
	}
	if (argc - optind < 1 || argc - optind > 2) {
		rc = vd_cli_usage(&vd_cli_cmd_get, optind == argc ? "which version?" : "ID [PATH] only");
		goto out;
	}
	path = argc - optind == 2 ? argv[optind + 1] : NULL;
	if (path && !input) {
		rc = vd_cli_usage(&vd_cli_cmd_get, "PATH names a file of the input: add --input");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "get")) ||
	    (rc = vd_cli_resolve_id(id, &c, "get", argv[optind])) ||
	    (rc = vd_cli_version_task(&task, &c, "get", id, want)))
		goto out;
	rc = 1;
	if (vd_buf_adds(&url, "/v1/tasks/") || vd_cli_url_escape(&url, vd_buf_cstr(&task)) ||
	    vd_buf_addf(&url, "/versions/%s/%s", id, input ? "input" : "result.csv")) {
		fprintf(stderr, "vdfs get: task name too long\n");
		goto out;
	}
	if (path) {
		/* Each component escaped, the slashes kept. */
		for (const char *p = path; *p;) {
			size_t n = strcspn(p, "/");
			char comp[4096];
			if (n >= sizeof comp) {
				fprintf(stderr, "vdfs get: path too long\n");
				goto out;
			}
			memcpy(comp, p, n);
			comp[n] = '\0';
			if (vd_buf_adds(&url, "/") || vd_cli_url_escape(&url, comp)) {
				fprintf(stderr, "vdfs get: path too long\n");
				goto out;
			}
			p += n;
			while (*p == '/')
				p++;
		}
	}
	if (!out || !strcmp(out, "-")) {
		rc = vd_cli_download(&status, got, &c, "get", vd_buf_cstr(&url), STDOUT_FILENO, 0, NULL);
		goto out;
	}
	vd_buf_addf(&part, "%s.part", out);
	vd_buf_addf(&tagf, "%s.part.etag", out);
	fd = open(vd_buf_cstr(&part), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		goto out;
	}
	struct stat st;
	uint64_t from = 0;
	part_etag(had, vd_buf_cstr(&tagf));
	if (had[0] && fstat(fd, &st) == 0 && st.st_size > 0)
		from = (uint64_t)st.st_size;
	if (!from && ftruncate(fd, 0) < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		goto out;
	}
	if (lseek(fd, (off_t)from, SEEK_SET) < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		goto out;
	}
	if (from)
		fprintf(stderr, "vdfs get: resuming %s at byte %llu\n", vd_buf_cstr(&part),
			(unsigned long long)from);
	/* A fresh part is tagged before a byte of it arrives (HEAD), so that
	 * however the download ends, the next run knows what the part is
	 * of. Should the content change between the two requests, the tag
	 * names the old one, If-Range then fails, and the next run starts
	 * over: never a part of two contents. */
	if (!from) {
		if ((rc = vd_cli_download(&status, got, &c, "get", vd_buf_cstr(&url), -1, 0, NULL)))
			goto out;
		FILE *tf = fopen(vd_buf_cstr(&tagf), "w");
		if (!tf || fprintf(tf, "%s\n", got) < 0 || fclose(tf) != 0) {
			fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&tagf), strerror(errno));
			rc = 1;
			goto out;
		}
		snprintf(had, sizeof had, "%s", got);
	}
	rc = vd_cli_download(&status, got, &c, "get", vd_buf_cstr(&url), fd, from, had);
	if (rc == 2 && status == 416) {
		/* The part is the whole file already (a cut just before the
		 * rename): what remains is to put it in place. */
		rc = 0;
	} else if (rc) {
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		fprintf(stderr, "vdfs get: %s: %s\n", vd_buf_cstr(&part), strerror(errno));
		rc = 1;
		goto out;
	}
	fd = -1;
	if (rename(vd_buf_cstr(&part), out) < 0) {
		fprintf(stderr, "vdfs get: %s: %s\n", out, strerror(errno));
		rc = 1;
		goto out;
	}
	unlink(vd_buf_cstr(&tagf));
out:
	if (fd >= 0)
		close(fd);
	vd_buf_release(&url);
	vd_buf_release(&task);
	vd_buf_release(&part);
	vd_buf_release(&tagf);
	vd_cli_conn_close(&c);
	return rc;
}
