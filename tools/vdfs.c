/*
 * vdfs.c - the operator's tool.
 *
 *   vdfs status [--server URL] [--token-file FILE] [--state DIR]
 *
 * prints the daemon's GET /v1/status as tables. With --state DIR the URL
 * and the token come from DIR/url and DIR/token, which vdfsd writes; an
 * explicit --server or --token-file wins over them.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "util.h"

#define STATUS_MAX ((size_t)16 << 20)

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vdfs SUBCOMMAND [options]\n"
		"\n"
		"subcommands:\n"
		"  status [--server URL] [--token-file FILE] [--state DIR]\n"
		"        tasks, runs and executors of a running vdfsd\n"
		"\n"
		"  --state DIR reads DIR/url and DIR/token (written by vdfsd);\n"
		"  the default server is http://127.0.0.1:7070.\n"
		"  vdfs --help prints this text.\n");
}

/* Read a one-line file into a malloc'd string without trailing space. */
static char *read_line_file(const char *path)
{
	struct vd_buf b = VD_BUF_INIT(8192);
	int rc = vd_read_file(&b, path);

	if (rc) {
		fprintf(stderr, "vdfs: cannot read %s: %s\n", path, strerror(-rc));
		vd_buf_release(&b);
		return NULL;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' ||
			 b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	if (!b.len || memchr(b.data, '\n', b.len)) {
		fprintf(stderr, "vdfs: %s does not hold one line\n", path);
		vd_buf_release(&b);
		return NULL;
	}
	return vd_buf_detach(&b, NULL);
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb;

	return vd_buf_add(arg, p, n) == 0 ? n : 0;
}

/* GET url with the token; 0 with the parsed JSON, else 1 after one line on
 * stderr. */
static int fetch_status(json_t **out, const char *server, const char *token)
{
	struct vd_buf url = VD_BUF_INIT(8192), auth = VD_BUF_INIT(8192);
	struct vd_buf body = VD_BUF_INIT(STATUS_MAX);
	char err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	size_t n = strlen(server);
	json_error_t jerr;
	CURL *curl = NULL;
	CURLcode cc;
	long status = 0;
	int rc = 1;

	*out = NULL;
	while (n && server[n - 1] == '/')
		n--;
	if (vd_buf_addf(&url, "%.*s/v1/status", (int)n, server) ||
	    vd_buf_addf(&auth, "Authorization: Bearer %s", token)) {
		fprintf(stderr, "vdfs: out of memory\n");
		goto out;
	}
	curl = curl_easy_init();
	hdrs = curl_slist_append(NULL, auth.data);
	if (!curl || !hdrs) {
		fprintf(stderr, "vdfs: cannot set up libcurl\n");
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "vdfs: %s: %s\n", url.data,
			err[0] ? err : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	*out = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
	if (status != 200) {
		const char *e = json_string_value(json_object_get(*out, "error"));

		fprintf(stderr, "vdfs: %s: HTTP %ld: %s\n", url.data, status,
			e ? e : "no reason given");
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	if (!json_is_object(*out)) {
		fprintf(stderr, "vdfs: %s: the reply is not a JSON object\n", url.data);
		json_decref(*out);
		*out = NULL;
		goto out;
	}
	rc = 0;
out:
	if (curl)
		curl_easy_cleanup(curl);
	curl_slist_free_all(hdrs);
	vd_buf_release(&url);
	vd_buf_release(&auth);
	vd_buf_release(&body);
	return rc;
}

/* ---- tables ----------------------------------------------------------- */

#define MAXCOLS 8

/* Rows of cells, printed with each column as wide as its widest cell. */
struct table {
	int ncols;
	struct vd_strv cells;   /* row-major */
};

static void table_add(struct table *t, const char *s)
{
	if (vd_strv_push(&t->cells, s))
		vd_strv_push(&t->cells, "?");
}

static void table_addf(struct table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void table_addf(struct table *t, const char *fmt, ...)
{
	struct vd_buf b = VD_BUF_INIT(1024);
	va_list ap;

	va_start(ap, fmt);
	vd_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	table_add(t, vd_buf_cstr(&b));
	vd_buf_release(&b);
}

static void table_print(struct table *t)
{
	size_t width[MAXCOLS] = { 0 }, i;

	for (i = 0; i < t->cells.n; i++) {
		size_t w = strlen(t->cells.v[i]);
		size_t col = i % (size_t)t->ncols;

		if (w > width[col])
			width[col] = w;
	}
	for (i = 0; i < t->cells.n; i++) {
		size_t col = i % (size_t)t->ncols;
		bool last = col == (size_t)t->ncols - 1;

		if (last)
			printf("%s\n", t->cells.v[i]);
		else
			printf("%-*s  ", (int)width[col], t->cells.v[i]);
	}
	vd_strv_release(&t->cells);
}

static long long jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static void print_status(const json_t *st)
{
	const json_t *tasks = json_object_get(st, "tasks");
	const json_t *execs = json_object_get(st, "executors");
	const json_t *units = json_object_get(st, "units");
	struct table t = { 0 };
	size_t i;

	printf("uptime %lld s; units: %lld pending, %lld leased\n\n",
	       jint(st, "uptime_s"), jint(units, "pending"), jint(units, "leased"));

	if (!json_array_size(tasks)) {
		printf("no tasks\n");
	} else {
		t.ncols = 6;
		table_add(&t, "TASK");
		table_add(&t, "VERSIONS");
		table_add(&t, "QUEUED");
		table_add(&t, "RUNNING");
		table_add(&t, "DONE");
		table_add(&t, "FAILED");
		for (i = 0; i < json_array_size(tasks); i++) {
			const json_t *o = json_array_get(tasks, i);
			const json_t *runs = json_object_get(o, "runs");

			table_add(&t, jstr(o, "name"));
			table_addf(&t, "%lld", jint(o, "versions"));
			table_addf(&t, "%lld", jint(runs, "queued"));
			table_addf(&t, "%lld", jint(runs, "running"));
			table_addf(&t, "%lld", jint(runs, "done"));
			table_addf(&t, "%lld", jint(runs, "failed"));
		}
		table_print(&t);
	}
	printf("\n");
	if (!json_array_size(execs)) {
		printf("no executors\n");
		return;
	}
	t.ncols = 7;
	table_add(&t, "EXECUTOR");
	table_add(&t, "LEVEL");
	table_add(&t, "SLOTS");
	table_add(&t, "STATE");
	table_add(&t, "LAST SEEN");
	table_add(&t, "DONE");
	table_add(&t, "FAILED");
	for (i = 0; i < json_array_size(execs); i++) {
		const json_t *o = json_array_get(execs, i);
		long long ms = jint(o, "last_seen_ms");

		table_add(&t, jstr(o, "name"));
		table_addf(&t, "%lld", jint(o, "level"));
		table_addf(&t, "%lld", jint(o, "slots"));
		table_add(&t, jstr(o, "state"));
		if (ms < 10000)
			table_addf(&t, "%.1f s ago", (double)ms / 1000.0);
		else
			table_addf(&t, "%lld s ago", ms / 1000);
		table_addf(&t, "%lld", jint(o, "units_done"));
		table_addf(&t, "%lld", jint(o, "units_failed"));
	}
	table_print(&t);
}

/* ---- subcommands ------------------------------------------------------ */

static int cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "server", required_argument, NULL, 's' },
		{ "token-file", required_argument, NULL, 't' },
		{ "state", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *server = NULL, *token_file = NULL, *state = NULL;
	char *url = NULL, *token = NULL;
	struct vd_buf path = VD_BUF_INIT(8192);
	json_t *st = NULL;
	int opt, rc = 1;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			server = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'S':
			state = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, "vdfs status: bad option (see vdfs --help)\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vdfs status: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if (!server && state) {
		vd_buf_addf(&path, "%s/url", state);
		url = read_line_file(path.data);
		if (!url)
			goto out;
		server = url;
	}
	if (!server)
		server = "http://127.0.0.1:7070";
	if (token_file) {
		token = read_line_file(token_file);
	} else if (state) {
		vd_buf_reset(&path);
		vd_buf_addf(&path, "%s/token", state);
		token = read_line_file(path.data);
	} else {
		fprintf(stderr, "vdfs status: give --token-file FILE or --state DIR\n");
		rc = 2;
		goto out;
	}
	if (!token)
		goto out;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "vdfs: cannot initialise libcurl\n");
		goto out;
	}
	rc = fetch_status(&st, server, token);
	if (!rc)
		print_status(st);
	curl_global_cleanup();
out:
	json_decref(st);
	free(url);
	free(token);
	vd_buf_release(&path);
	return rc;
}

int main(int argc, char **argv)
{
	vd_log_init("vdfs", VD_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "status") == 0)
		return cmd_status(argc - 1, argv + 1);
	fprintf(stderr, "vdfs: unknown subcommand '%s' (see vdfs --help)\n", argv[1]);
	return 2;
}
