/*
 * cli.c - the shared parts of the `vdfs` subcommands (see cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"

#define REPLY_MAX ((size_t)256 << 20)

bool vd_cli_conn_option(struct vd_cli_conn *c, int opt, const char *arg)
{
	switch (opt) {
	case 0x1001: c->server = arg; return true;
	case 0x1002: c->token_file = arg; return true;
	case 0x1003: c->state = arg; return true;
	default: return false;
	}
}

/* A one-line file as a malloc'd string without trailing space. */
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

int vd_cli_conn_open(struct vd_cli_conn *c, const char *cmd)
{
	struct vd_buf path = VD_BUF_INIT(8192);
	int rc = 1;
	if (c->server) {
		c->url = strdup(c->server);
	} else if (c->state) {
		vd_buf_addf(&path, "%s/url", c->state);
		c->url = read_line_file(vd_buf_cstr(&path));
	} else {
		c->url = strdup("http://127.0.0.1:7070");
	}
	if (!c->url)
		goto out;
	size_t n = strlen(c->url);
	while (n && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	if (c->token_file) {
		c->token = read_line_file(c->token_file);
	} else if (c->state) {
		vd_buf_reset(&path);
		vd_buf_addf(&path, "%s/token", c->state);
		c->token = read_line_file(vd_buf_cstr(&path));
	} else {
		fprintf(stderr, "vdfs %s: give --state DIR or --token-file FILE\n", cmd);
		rc = 2;
		goto out;
	}
	if (!c->token)
		goto out;
	/* A daemon serving TLS writes its key's pin beside its url: with
	 * --state, pin it (its certificate may well be self-signed). */
	if (c->state && !strncmp(c->url, "https://", 8)) {
		vd_buf_reset(&path);
		vd_buf_addf(&path, "%s/tls-pin", c->state);
		if (!(c->pin = read_line_file(vd_buf_cstr(&path))))
			goto out;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "vdfs: cannot initialise libcurl\n");
		goto out;
	}
	rc = 0;
out:
	vd_buf_release(&path);
	return rc;
}

void vd_cli_conn_close(struct vd_cli_conn *c)
{
	if (c->token)
		curl_global_cleanup();
	free(c->url);
	free(c->token);
	free(c->pin);
	c->url = c->token = c->pin = NULL;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	size_t n = size * nmemb;
	return vd_buf_add(arg, p, n) == 0 ? n : 0;
}

int vd_cli_request(struct vd_buf *out, long *status, const struct vd_cli_conn *c,
		   const char *method, const char *path, const void *body,
		   size_t blen)
{
	struct vd_buf url = VD_BUF_INIT(16384), auth = VD_BUF_INIT(8192);
	char err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	CURL *curl = NULL;
	int rc = 1;
	*status = 0;
	if (vd_buf_addf(&url, "%s%s", c->url, path) ||
	    vd_buf_addf(&auth, "Authorization: Bearer %s", c->token)) {
		fprintf(stderr, "vdfs: request too long\n");
		goto out;
	}
	curl = curl_easy_init();
	hdrs = curl_slist_append(NULL, auth.data);
	if (hdrs && body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (!curl || !hdrs) {
		fprintf(stderr, "vdfs: cannot set up libcurl\n");
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 120L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->pin) {
		/* The pin is the trust; libcurl checks it with verification off. */
		curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, c->pin);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	CURLcode cc = curl_easy_perform(curl);
	if (cc != CURLE_OK) {
		fprintf(stderr, "vdfs: %s: %s\n", url.data, err[0] ? err : curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	if (curl)
		curl_easy_cleanup(curl);
	curl_slist_free_all(hdrs);
	vd_buf_release(&url);
	vd_buf_release(&auth);
	return rc;
}

static int reply_json(json_t **out, long status, struct vd_buf *body, const char *cmd,
		      const char *path)
{
	json_t *j = json_loadb(body->data ? body->data : "", body->len, 0, NULL);
	if (status != 200) {
		const char *e = json_string_value(json_object_get(j, "error"));
		fprintf(stderr, "vdfs %s: %s\n", cmd, e ? e : "the daemon gave no reason");
		json_decref(j);
		return status == 404 ? 2 : 1;
	}
	if (!json_is_object(j)) {
		fprintf(stderr, "vdfs %s: %s: the reply is not a JSON object\n", cmd, path);
		json_decref(j);
		return 1;
	}
	*out = j;
	return 0;
}

int vd_cli_get_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		    const char *path)
{
	struct vd_buf body = VD_BUF_INIT(REPLY_MAX);
	long status;
	int rc = vd_cli_request(&body, &status, c, "GET", path, NULL, 0);
	if (!rc)
		rc = reply_json(out, status, &body, cmd, path);
	vd_buf_release(&body);
	return rc;
}

int vd_cli_send_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		     const char *method, const char *path, const json_t *req)
{
	struct vd_buf body = VD_BUF_INIT(REPLY_MAX);
	char *text = json_dumps(req, JSON_COMPACT);
	long status;
	int rc = 1;
	if (text) {
		rc = vd_cli_request(&body, &status, c, method, path, text, strlen(text));
		if (!rc)
			rc = reply_json(out, status, &body, cmd, path);
	}
	free(text);
	vd_buf_release(&body);
	return rc;
}

void vd_cli_table_add(struct vd_cli_table *t, const char *s)
{
	if (vd_strv_push(&t->cells, s))
		vd_strv_push(&t->cells, "?");
}

void vd_cli_table_addf(struct vd_cli_table *t, const char *fmt, ...)
{
	struct vd_buf b = VD_BUF_INIT(4096);
	va_list ap;
	va_start(ap, fmt);
	vd_buf_vaddf(&b, fmt, ap);
	va_end(ap);
	vd_cli_table_add(t, vd_buf_cstr(&b));
	vd_buf_release(&b);
}

void vd_cli_table_print(struct vd_cli_table *t)
{
	size_t width[VD_CLI_MAXCOLS] = { 0 }, i;
	size_t ncols = t->ncols > 0 && t->ncols <= VD_CLI_MAXCOLS ? (size_t)t->ncols : 1;
	for (i = 0; i < t->cells.n; i++) {
		size_t w = strlen(t->cells.v[i]);
		if (w > width[i % ncols])
			width[i % ncols] = w;
	}
	for (i = 0; i < t->cells.n; i++) {
		size_t col = i % ncols;
		if (col == ncols - 1)
			printf("%s\n", t->cells.v[i]);
		else
			printf("%-*s  ", (int)width[col], t->cells.v[i]);
	}
	vd_strv_release(&t->cells);
}

long long vd_cli_jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

const char *vd_cli_jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

void vd_cli_human_bytes(char out[32], unsigned long long n)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double x = (double)n;
	int u = 0;
	while (x >= 1024 && u < 4) {
		x /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, 32, "%llu B", n);
	else
		snprintf(out, 32, "%.1f %s", x, units[u]);
}
