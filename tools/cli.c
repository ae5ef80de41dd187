/*
 * cli.c - the shared parts of the `vdfs` subcommands (see cli.h).
 */
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#include <curl/curl.h>

#include "cli.h"

#define REPLY_MAX ((size_t)256 << 20)

/* Values getopt_long returns for the shared options: out of any letter's
 * way, so that subcommands may use every letter but 'h'. */
enum { OPT_SERVER = 0x1001, OPT_TOKEN_FILE, OPT_STATE };

const struct vd_doc_opt vd_cli_conn_doc[] = {
	{ "state", OPT_STATE, "DIR",
	  "the daemon's state directory: its address from DIR/url, the operator "
	  "token from DIR/token and, for https, the key pin from DIR/tls-pin "
	  "(vdfsd writes all three)", 0 },
	{ "server", OPT_SERVER, "URL",
	  "the daemon's address, e.g. http://10.0.0.5:7070; wins over --state. "
	  "Without either: $VDFS_SERVER, else server = URL in "
	  "~/.config/vdfs/client.conf, else http://127.0.0.1:7070", 0 },
	{ "token-file", OPT_TOKEN_FILE, "FILE",
	  "a file holding a token (STATE/token, or a user's from vdfs user add); wins "
	  "over --state. Without either: $VDFS_TOKEN_FILE, else token_file = FILE "
	  "in ~/.config/vdfs/client.conf", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_doc_opt vd_cli_help_doc[] = {
	{ "help", 'h', NULL, "print this help and exit", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

static bool conn_option(struct vd_cli_conn *c, int opt, const char *arg)
{
	switch (opt) {
	case OPT_SERVER: c->server = arg; return true;
	case OPT_TOKEN_FILE: c->token_file = arg; return true;
	case OPT_STATE: c->state = arg; return true;
	default: return false;
	}
}

/* "vdfs log TASK [options]" */
static void usage_line(struct vd_buf *b, const struct vd_cli_cmd *cmd)
{
	vd_buf_addf(b, "vdfs %s%s%s [options]", cmd->name, *cmd->args ? " " : "", cmd->args);
}

int vd_cli_usage(const struct vd_cli_cmd *cmd, const char *why)
{
	struct vd_buf b = VD_BUF_INIT(1024);

	usage_line(&b, cmd);
	fprintf(stderr, "vdfs %s: %s (usage: %s; see vdfs help %s)\n", cmd->name, why,
		vd_buf_cstr(&b), cmd->name);
	vd_buf_release(&b);
	return 2;
}

int vd_cli_opt(struct vd_cli_opts *o)
{
	char prog[64], help[64];
	int opt;

	if (!o->ready) {
		vd_doc_getopt_init(&o->g, o->cmd->stop_at_arg);
		if (vd_doc_getopt_add(&o->g, o->cmd->opts) ||
		    (o->cmd->conn && vd_doc_getopt_add(&o->g, vd_cli_conn_doc)) ||
		    vd_doc_getopt_add(&o->g, vd_cli_help_doc)) {
			fprintf(stderr, "vdfs %s: too many options\n", o->cmd->name);
			o->exit = 1;
			return -1;
		}
		o->ready = true;
		/* Ours to report, in one line; 0 also restarts getopt, which
		 * may have parsed vdfs's own options before. */
		opterr = 0;
		optind = 0;
	}
	for (;;) {
		opt = getopt_long(o->argc, o->argv, o->g.shorts, o->g.longs, NULL);
		if (opt == -1)
			return 0;
		if (opt == 'h') {
			vd_cli_help_print(stdout, o->cmd);
			o->exit = 0;
			return -1;
		}
		if (opt == '?' || opt == ':') {
			snprintf(prog, sizeof prog, "vdfs %s", o->cmd->name);
			snprintf(help, sizeof help, "vdfs help %s", o->cmd->name);
			vd_doc_bad_option(prog, help, opt, o->argv);
			o->exit = 2;
			return -1;
		}
		if (o->cmd->conn && o->conn && conn_option(o->conn, opt, optarg))
			continue;
		return opt;
	}
}

/* "--state DIR, --server URL and --token-file FILE", in roff. */
static void conn_names(FILE *f)
{
	const struct vd_doc_opt *r;
	size_t n = 0, i = 0;

	for (r = vd_cli_conn_doc; r->name; r++)
		n++;
	for (r = vd_cli_conn_doc; r->name; r++, i++) {
		fputs(i == 0 ? "" : i + 1 == n ? " and " : ", ", f);
		fputs("\\fB\\-\\-", f);
		vd_doc_man_escape(f, r->name);
		fputs("\\fR \\fI", f);
		vd_doc_man_escape(f, r->arg);
		fputs("\\fR", f);
	}
}

void vd_cli_help_print(FILE *f, const struct vd_cli_cmd *cmd)
{
	struct vd_buf b = VD_BUF_INIT(1024);

	usage_line(&b, cmd);
	fprintf(f, "usage: %s\n\nvdfs %s - %s.\n", vd_buf_cstr(&b), cmd->name, cmd->summary);
	if (cmd->description) {
		fputc('\n', f);
		vd_doc_help_text(f, cmd->description, 0);
	}
	fputs("\noptions:\n", f);
	vd_doc_help_opts(f, cmd->opts);
	if (cmd->conn)
		vd_doc_help_opts(f, vd_cli_conn_doc);
	vd_doc_help_opts(f, vd_cli_help_doc);
	vd_buf_release(&b);
}

void vd_cli_man_print(FILE *f, const struct vd_cli_cmd *cmd)
{
	struct vd_buf b = VD_BUF_INIT(1024);

	vd_buf_addf(&b, "vdfs %s%s%s", cmd->name, *cmd->args ? " " : "", cmd->args);
	vd_doc_man_subsection(f, vd_buf_cstr(&b));
	vd_buf_reset(&b);
	vd_buf_addf(&b, "%s.", cmd->summary);
	/* The summary starts lowercase, as a list entry; capitalise it here. */
	if (b.data[0] >= 'a' && b.data[0] <= 'z')
		b.data[0] = (char)(b.data[0] - 'a' + 'A');
	vd_doc_man_text(f, vd_buf_cstr(&b));
	vd_doc_man_text(f, cmd->description);
	if (cmd->opts && cmd->opts->name) {
		/* .TP entries after a paragraph need one to start from. */
		fputs(".PP\nOptions:\n", f);
		vd_doc_man_opts(f, cmd->opts);
	}
	fputs(".PP\nIt also takes ", f);
	if (cmd->conn) {
		conn_names(f);
		fputs(" (see\n.BR CONNECTING ),\nand ", f);
	}
	fprintf(f, "\\fB\\-%c\\fR, \\fB\\-\\-%s\\fR.\n", vd_cli_help_doc[0].val,
		vd_cli_help_doc[0].name);
	vd_buf_release(&b);
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

/*
 * The client's own settings, for a user on another machine who should not
 * have to type --server and --token-file each time: `key = value` lines
 * ('#' starts a comment) in $XDG_CONFIG_HOME/vdfs/client.conf, or
 * ~/.config/vdfs/client.conf; keys server and token_file (a leading ~/ is
 * the home directory). Sets *server and *token_file (malloc'd) to what it
 * says; a missing file says nothing. 0, or -1 after a message.
 */
static int client_conf(char **server, char **token_file)
{
	struct vd_buf path = VD_BUF_INIT(8192), text = VD_BUF_INIT(1 << 20);
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
	int rc = 0, lineno = 0;

	if (xdg && *xdg)
		vd_buf_addf(&path, "%s/vdfs/client.conf", xdg);
	else if (home && *home)
		vd_buf_addf(&path, "%s/.config/vdfs/client.conf", home);
	else
		goto out;
	if (vd_read_file(&text, vd_buf_cstr(&path)))
		goto out;   /* none (or unreadable): nothing set */
	for (char *line = text.data, *next; line && line < text.data + text.len; line = next) {
		char *nl = strchr(line, '\n'), *eq, *k, *v, *e;
		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if ((e = strchr(line, '#')))
			*e = '\0';
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		if (!*k)
			continue;
		if (!(eq = strchr(k, '='))) {
			fprintf(stderr, "vdfs: %s line %d: expected key = value\n", vd_buf_cstr(&path),
				lineno);
			rc = -1;
			goto out;
		}
		for (e = eq; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		for (v = eq + 1; *v == ' ' || *v == '\t'; v++)
			;
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'); e--)
			;
		*e = '\0';
		char **dst = !strcmp(k, "server") ? server : !strcmp(k, "token_file") ? token_file : NULL;
		if (!dst) {
			fprintf(stderr, "vdfs: %s line %d: unknown key '%s' (server, token_file)\n",
				vd_buf_cstr(&path), lineno, k);
			rc = -1;
			goto out;
		}
		struct vd_buf val = VD_BUF_INIT(8192);
		if (!strncmp(v, "~/", 2) && home)
			vd_buf_addf(&val, "%s/%s", home, v + 2);
		else
			vd_buf_adds(&val, v);
		free(*dst);
		*dst = vd_buf_detach(&val, NULL);
	}
out:
	vd_buf_release(&path);
	vd_buf_release(&text);
	return rc;
}

int vd_cli_conn_open(struct vd_cli_conn *c, const char *cmd)
{
	struct vd_buf path = VD_BUF_INIT(8192);
	char *conf_server = NULL, *conf_token = NULL;
	const char *env_server = getenv("VDFS_SERVER"), *env_token = getenv("VDFS_TOKEN_FILE");
	int rc = 1;
	/* Flags, then --state, then the environment, then client.conf. */
	if (!c->state && ((!c->server && !(env_server && *env_server)) ||
			  (!c->token_file && !(env_token && *env_token))) &&
	    client_conf(&conf_server, &conf_token)) {
		rc = 2;
		goto out;
	}
	if (c->server) {
		c->url = strdup(c->server);
	} else if (c->state) {
		vd_buf_addf(&path, "%s/url", c->state);
		c->url = read_line_file(vd_buf_cstr(&path));
	} else if (env_server && *env_server) {
		c->url = strdup(env_server);
	} else if (conf_server) {
		c->url = strdup(conf_server);
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
	} else if (env_token && *env_token) {
		c->token = read_line_file(env_token);
	} else if (conf_token) {
		c->token = read_line_file(conf_token);
	} else {
		fprintf(stderr, "vdfs %s: give --state DIR or --token-file FILE (or set "
			"VDFS_TOKEN_FILE, or token_file in ~/.config/vdfs/client.conf)\n", cmd);
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
	free(conf_server);
	free(conf_token);
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

/* The options every request of c shares (a new handle; NULL without
 * memory). */
/* A request that may go minutes without a byte back (gc, fsck, a big
 * commit) has no low-speed limit; TCP keepalives find a dead daemon's host
 * instead. Any other gives up after 120 s of silence. Both set every
 * option, so that a reused handle carries nothing over. */
static void set_patience(CURL *curl, bool patient)
{
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, patient ? 0L : 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, patient ? 0L : 120L);
	curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, patient ? 1L : 0L);
	if (patient) {
		curl_easy_setopt(curl, CURLOPT_TCP_KEEPIDLE, 60L);
		curl_easy_setopt(curl, CURLOPT_TCP_KEEPINTVL, 30L);
	}
}

static CURL *conn_curl(const struct vd_cli_conn *c, const char *url, struct curl_slist *hdrs,
		       char err[CURL_ERROR_SIZE])
{
	CURL *curl = curl_easy_init();
	if (!curl)
		return NULL;
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	set_patience(curl, c->patient);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->pin) {
		/* The pin is the trust; libcurl checks it with verification off. */
		curl_easy_setopt(curl, CURLOPT_PINNEDPUBLICKEY, c->pin);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return curl;
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
	hdrs = curl_slist_append(NULL, auth.data);
	if (hdrs && body)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	if (!hdrs || !(curl = conn_curl(c, url.data, hdrs, err))) {
		fprintf(stderr, "vdfs: cannot set up libcurl\n");
		goto out;
	}
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
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

static size_t session_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct vd_cli_session *s = arg;
	size_t n = size * nmemb;
	if (n > 12 && !strncasecmp(p, "Retry-After:", 12)) {
		char v[32];
		size_t len = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
		memcpy(v, p + 12, len);
		v[len] = '\0';
		char *end;
		long secs = strtol(v, &end, 10);
		/* Only the delta-seconds form; a date is taken as "soon". */
		s->retry_after = end != v && secs >= 0 ? secs : 1;
	}
	return n;
}

static int session_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			curl_off_t ulnow)
{
	struct vd_cli_session *s = arg;
	(void)dltotal, (void)dlnow, (void)ultotal;
	if (s->on_sent)
		s->on_sent(s->on_sent_arg, ulnow > 0 ? (uint64_t)ulnow : 0);
	return 0;
}

int vd_cli_session_open(struct vd_cli_session *s, const struct vd_cli_conn *c)
{
	memset(s, 0, sizeof *s);
	s->c = c;
	s->retry_after = -1;
	CURL *curl = conn_curl(c, c->url, NULL, s->err);
	if (!curl) {
		fprintf(stderr, "vdfs: cannot set up libcurl\n");
		return 1;
	}
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, session_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, session_xfer);
	curl_easy_setopt(curl, CURLOPT_XFERINFODATA, s);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	s->curl = curl;
	return 0;
}

void vd_cli_session_close(struct vd_cli_session *s)
{
	if (s->curl)
		curl_easy_cleanup(s->curl);
	s->curl = NULL;
}

int vd_cli_session_request(struct vd_buf *out, long *status, struct vd_cli_session *s,
			   const char *method, const char *path, const char *ctype,
			   const void *body, size_t blen, bool patient)
{
	struct vd_buf url = VD_BUF_INIT(16384), auth = VD_BUF_INIT(8192), ct = VD_BUF_INIT(512);
	struct curl_slist *hdrs = NULL;
	CURL *curl = s->curl;
	int rc = 1;
	*status = 0;
	s->retry_after = -1;
	s->err[0] = '\0';
	if (vd_buf_addf(&url, "%s%s", s->c->url, path) ||
	    vd_buf_addf(&auth, "Authorization: Bearer %s", s->c->token) ||
	    vd_buf_addf(&ct, "Content-Type: %s", ctype ? ctype : "application/json")) {
		fprintf(stderr, "vdfs: request too long\n");
		goto out;
	}
	hdrs = curl_slist_append(NULL, auth.data);
	if (hdrs && strcmp(method, "GET"))
		hdrs = curl_slist_append(hdrs, ct.data);
	if (!hdrs) {
		fprintf(stderr, "vdfs: out of memory\n");
		goto out;
	}
	/* The handle keeps what the last request set: set all of it. */
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	if (!strcmp(method, "GET")) {
		curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, NULL);
	} else {
		/* POSTFIELDS sends body from where it is; COPYPOSTFIELDS
		 * would copy it. A missing body is an empty one. */
		curl_easy_setopt(curl, CURLOPT_POST, 1L);
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? blen : 0));
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") ? method : NULL);
	}
	set_patience(curl, patient || s->c->patient);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, out);
	CURLcode cc = curl_easy_perform(curl);
	/* The list is the handle's only during a request. */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	if (cc != CURLE_OK) {
		struct vd_buf msg = VD_BUF_INIT(16384 + sizeof s->err);
		vd_buf_addf(&msg, "%s: %s", url.data, s->err[0] ? s->err : curl_easy_strerror(cc));
		/* Cut to fit: the reason is at the end, so keep the end. */
		size_t skip = msg.len >= sizeof s->err ? msg.len - (sizeof s->err - 1) : 0;
		snprintf(s->err, sizeof s->err, "%s", vd_buf_cstr(&msg) + skip);
		vd_buf_release(&msg);
		if (!s->keep_errors)
			fprintf(stderr, "vdfs: %s\n", s->err);
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	rc = 0;
out:
	curl_slist_free_all(hdrs);
	vd_buf_release(&url);
	vd_buf_release(&auth);
	vd_buf_release(&ct);
	return rc;
}

void vd_cli_reply_error(char *out, size_t size, const struct vd_buf *reply)
{
	json_t *j = json_loadb(reply->data ? reply->data : "", reply->len, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "error"));
	snprintf(out, size, "%s", e && *e ? e : "the daemon gave no reason");
	json_decref(j);
}

int vd_cli_status_end(const char *status)
{
	/* The first word, "done" or "failed", may be followed by a colon
	 * and a reason ("failed: unit 3 ..."). */
	size_t n = strcspn(status, " \t\n:");
	if (n == 4 && !strncmp(status, "done", 4))
		return 1;
	if (n == 6 && !strncmp(status, "failed", 6))
		return -1;
	return 0;
}

/* A download in progress (vd_cli_download). */
struct dl {
	CURL *curl;
	int fd;
	bool checked, ok;          /* the status was looked at; 200 or 206 */
	uint64_t from;
	struct vd_buf *err;        /* a refusal's body */
	char *etag;                /* VD_CLI_ETAG_SIZE */
	int werr;                  /* errno of a failed write */
};

static size_t dl_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct dl *d = arg;
	size_t n = size * nmemb;
	if (!d->checked) {
		long st = 0;
		curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &st);
		d->checked = true;
		d->ok = st == 200 || st == 206;
		/* The whole file where a part was asked for: the part held
		 * is of other content (If-Range did not match). */
		if (st == 200 && d->from && (ftruncate(d->fd, 0) < 0 || lseek(d->fd, 0, SEEK_SET) < 0)) {
			d->werr = errno;
			return 0;
		}
	}
	if (!d->ok)
		return vd_buf_add(d->err, p, n) == 0 ? n : 0;
	int rc = vd_write_all(d->fd, p, n);
	if (rc) {
		d->werr = -rc;
		return 0;
	}
	return n;
}

static size_t dl_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct dl *d = arg;
	size_t n = size * nmemb;
	if (n > 5 && !strncasecmp(p, "ETag:", 5)) {
		const char *v = p + 5;
		size_t len = n - 5;
		while (len && (*v == ' ' || *v == '\t'))
			v++, len--;
		while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
			len--;
		snprintf(d->etag, VD_CLI_ETAG_SIZE, "%.*s", (int)len, v);
	}
	return n;
}

int vd_cli_download(long *status, char etag[VD_CLI_ETAG_SIZE], const struct vd_cli_conn *c,
		    const char *cmd, const char *path, int fd, uint64_t from, const char *if_range)
{
	struct vd_buf url = VD_BUF_INIT(16384), auth = VD_BUF_INIT(8192), range = VD_BUF_INIT(256),
		      ir = VD_BUF_INIT(256), err = VD_BUF_INIT(1 << 20);
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct dl d = { .fd = fd, .from = from, .err = &err, .etag = etag };
	int rc = 1;
	*status = 0;
	etag[0] = '\0';
	if (vd_buf_addf(&url, "%s%s", c->url, path) ||
	    vd_buf_addf(&auth, "Authorization: Bearer %s", c->token)) {
		fprintf(stderr, "vdfs %s: request too long\n", cmd);
		goto out;
	}
	hdrs = curl_slist_append(NULL, auth.data);
	if (hdrs && from) {
		vd_buf_addf(&range, "Range: bytes=%llu-", (unsigned long long)from);
		hdrs = curl_slist_append(hdrs, range.data);
		if (hdrs && if_range && *if_range) {
			vd_buf_addf(&ir, "If-Range: %s", if_range);
			hdrs = curl_slist_append(hdrs, ir.data);
		}
	}
	if (!hdrs || !(d.curl = conn_curl(c, url.data, hdrs, cerr))) {
		fprintf(stderr, "vdfs %s: cannot set up libcurl\n", cmd);
		goto out;
	}
	if (fd < 0)
		curl_easy_setopt(d.curl, CURLOPT_NOBODY, 1L);   /* HEAD: the ETag only */
	curl_easy_setopt(d.curl, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(d.curl, CURLOPT_WRITEDATA, &d);
	curl_easy_setopt(d.curl, CURLOPT_HEADERFUNCTION, dl_header);
	curl_easy_setopt(d.curl, CURLOPT_HEADERDATA, &d);
	CURLcode cc = curl_easy_perform(d.curl);
	curl_easy_getinfo(d.curl, CURLINFO_RESPONSE_CODE, status);
	if (d.werr) {
		fprintf(stderr, "vdfs %s: writing: %s\n", cmd, strerror(d.werr));
		goto out;
	}
	if (cc != CURLE_OK) {
		fprintf(stderr, "vdfs %s: %s: %s\n", cmd, url.data, cerr[0] ? cerr : curl_easy_strerror(cc));
		goto out;
	}
	if (*status != 200 && *status != 206) {
		json_t *j = json_loadb(err.data ? err.data : "", err.len, 0, NULL);
		const char *e = json_string_value(json_object_get(j, "error"));
		fprintf(stderr, "vdfs %s: %s\n", cmd, e ? e : "the daemon gave no reason");
		json_decref(j);
		rc = *status == 404 || *status == 416 ? 2 : 1;
		goto out;
	}
	rc = 0;
out:
	if (d.curl)
		curl_easy_cleanup(d.curl);
	curl_slist_free_all(hdrs);
	vd_buf_release(&url);
	vd_buf_release(&auth);
	vd_buf_release(&range);
	vd_buf_release(&ir);
	vd_buf_release(&err);
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

/* Percent-encode everything but RFC 3986's unreserved characters. */
int vd_cli_url_escape(struct vd_buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	int rc = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p && !rc; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			rc = vd_buf_add(out, p, 1);
		} else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			rc = vd_buf_add(out, e, 3);
		}
	}
	return rc;
}

int vd_cli_resolve_id(char out[VD_ID_SIZE], const struct vd_cli_conn *c, const char *cmd,
		      const char *arg)
{
	size_t n = strlen(arg);
	if (n == VD_ID_LEN && vd_id_valid(arg)) {
		memcpy(out, arg, VD_ID_SIZE);
		return 0;
	}
	if (n < 6 || n > VD_ID_LEN || strspn(arg, "0123456789abcdef") != n) {
		fprintf(stderr, "vdfs %s: '%s' is not an ID or an ID prefix (6 to 32 lowercase "
			"hex digits)\n", cmd, arg);
		return 2;
	}
	struct vd_buf path = VD_BUF_INIT(128), body = VD_BUF_INIT(REPLY_MAX);
	long status = 0;
	json_t *j = NULL;
	int rc = vd_buf_addf(&path, "/v1/resolve/%s", arg) ? 1 : 0;
	if (!rc)
		rc = vd_cli_request(&body, &status, c, "GET", vd_buf_cstr(&path), NULL, 0);
	if (!rc) {
		j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));
		const char *e = json_string_value(json_object_get(j, "error"));
		if (status == 200 && id && vd_id_valid(id)) {
			memcpy(out, id, VD_ID_SIZE);
		} else {
			/* 404 none, 409 several (named): both the user's to fix. */
			fprintf(stderr, "vdfs %s: %s\n", cmd, e ? e : "the daemon gave no reason");
			rc = status == 404 || status == 409 ? 2 : 1;
		}
	}
	json_decref(j);
	vd_buf_release(&body);
	vd_buf_release(&path);
	return rc;
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

int vd_cli_version_task(struct vd_buf *task, const struct vd_cli_conn *c, const char *cmd,
			const char *id, const char *want)
{
	struct vd_buf path = VD_BUF_INIT(128), names = VD_BUF_INIT(1 << 16);
	json_t *ver = NULL, *v;
	const char *only = NULL;
	size_t i, n = 0;
	int rc;

	vd_buf_addf(&path, "/v1/versions/%s", id);
	if ((rc = vd_cli_get_json(&ver, c, cmd, vd_buf_cstr(&path))))
		goto out;
	json_array_foreach(json_object_get(ver, "versions"), i, v) {
		const char *t = vd_cli_jstr(v, "task");
		if (want && strcmp(t, want))
			continue;
		vd_buf_addf(&names, "%s%s", n ? ", " : "", t);
		only = t;
		n++;
	}
	rc = 2;
	if (n == 0 && want)
		fprintf(stderr, "vdfs %s: task %s has no version %s\n", cmd, want, id);
	else if (n == 0)
		fprintf(stderr, "vdfs %s: %s is no dataset version of any task\n", cmd, id);
	else if (n > 1)
		fprintf(stderr, "vdfs %s: version %s is in %zu tasks: %s; say which with "
			"--task\n", cmd, id, n, vd_buf_cstr(&names));
	else {
		vd_buf_reset(task);
		rc = vd_buf_adds(task, only) ? 1 : 0;
	}
out:
	json_decref(ver);
	vd_buf_release(&path);
	vd_buf_release(&names);
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

void vd_cli_locale(void)
{
	const char *cs;

	setlocale(LC_ALL, "");
	setlocale(LC_NUMERIC, "C");
	cs = nl_langinfo(CODESET);
	if (!cs || (strcmp(cs, "UTF-8") && strcmp(cs, "utf8")))
		setlocale(LC_CTYPE, "C.UTF-8");
}

size_t vd_cli_width_cut(const char *s, size_t maxw, size_t *bytes)
{
	mbstate_t st;
	size_t w = 0, used = 0, left = strlen(s);

	memset(&st, 0, sizeof st);
	while (left) {
		wchar_t wc;
		size_t n = mbrtowc(&wc, s + used, left, &st);
		int cw;

		if (n == (size_t)-1 || n == (size_t)-2) {
			/* Not UTF-8 here: one byte, one column, and start afresh. */
			memset(&st, 0, sizeof st);
			n = 1;
			cw = 1;
		} else {
			if (n == 0)
				break;
			cw = wcwidth(wc);
			if (cw < 0)
				cw = 1;   /* a control character: shown as one glyph or none */
		}
		if (w + (size_t)cw > maxw)
			break;
		w += (size_t)cw;
		used += n;
		left -= n;
	}
	if (bytes)
		*bytes = used;
	return w;
}

void vd_cli_table_fprint(FILE *f, struct vd_cli_table *t, bool cut)
{
	static const char ellipsis[] = "\u2026";   /* one column */
	size_t width[VD_CLI_MAXCOLS] = { 0 }, i;
	size_t ncols = t->ncols > 0 && t->ncols <= VD_CLI_MAXCOLS ? (size_t)t->ncols : 1;
	struct vd_buf cell = VD_BUF_INIT(1 << 16);

	/* Cut cells first, so that the widths are those printed. */
	for (i = 0; cut && i < t->cells.n; i++) {
		size_t max = t->maxw[i % ncols], bytes;
		char *s = t->cells.v[i];

		if (!max || vd_cli_width(s) <= max)
			continue;
		vd_cli_width_cut(s, max > 1 ? max - 1 : 0, &bytes);
		vd_buf_reset(&cell);
		if (!vd_buf_add(&cell, s, bytes) && !vd_buf_adds(&cell, ellipsis)) {
			char *cutcell = vd_buf_detach(&cell, NULL);

			if (cutcell) {   /* else (no memory) the cell stays whole */
				free(s);
				t->cells.v[i] = cutcell;
			}
		}
	}
	for (i = 0; i < t->cells.n; i++) {
		size_t w = t->cells.v[i] ? vd_cli_width(t->cells.v[i]) : 0;
		if (w > width[i % ncols])
			width[i % ncols] = w;
	}
	for (i = 0; i < t->cells.n; i++) {
		size_t col = i % ncols;
		const char *s = t->cells.v[i] ? t->cells.v[i] : "?";

		if (col == ncols - 1) {
			fprintf(f, "%s\n", s);
			continue;
		}
		/* printf's %-*s pads to bytes, not columns: pad by hand. */
		fputs(s, f);
		for (size_t k = vd_cli_width(s); k < width[col] + 2; k++)
			fputc(' ', f);
	}
	vd_buf_release(&cell);
	vd_strv_release(&t->cells);
}

void vd_cli_table_print(struct vd_cli_table *t)
{
	vd_cli_table_fprint(stdout, t, isatty(STDOUT_FILENO));
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

void vd_cli_time(char out[32], long long ms)
{
	struct tm tm;
	time_t sec = (time_t)(ms / 1000);
	if (ms <= 0 || !localtime_r(&sec, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "-");
}

void vd_cli_duration(char out[32], long long ms)
{
	/* One word each, so that scripts can split on blanks. */
	if (ms < 0)
		snprintf(out, 32, "-");
	else if (ms < 1000)
		snprintf(out, 32, "%lldms", ms);
	else if (ms < 60000)
		snprintf(out, 32, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(out, 32, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else
		snprintf(out, 32, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
}
