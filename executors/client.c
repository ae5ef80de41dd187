/*
 * client.c - HTTP requests for the executor over libcurl (see client.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "util.h"

#define CLIENT_CONNECT_TIMEOUT_MS 10000L
/* A transfer that moves less than a byte a second for this long is dead.
 * Longer than any long-poll (30 s), which is silent until it answers. */
#define CLIENT_STALL_S 60L
#define CLIENT_JSON_MAX ((size_t)64 << 20)

int vd_client_init(struct vd_client *c, const char *base, const char *token,
		   const atomic_bool *abort)
{
	struct vd_buf h = VD_BUF_INIT(8192);
	size_t n;
	int rc;

	memset(c, 0, sizeof(*c));
	c->abort = abort;
	c->curl = curl_easy_init();
	if (!c->curl)
		return -ENOMEM;
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	c->base = strndup(base, n);
	rc = vd_buf_addf(&h, "Authorization: Bearer %s", token);
	if (!c->base || rc) {
		rc = rc ? rc : -ENOMEM;
		goto fail;
	}
	c->auth = curl_slist_append(NULL, h.data);
	if (!c->auth) {
		rc = -ENOMEM;
		goto fail;
	}
	vd_buf_release(&h);
	return 0;
fail:
	vd_buf_release(&h);
	vd_client_release(c);
	return rc;
}

int vd_client_set_token(struct vd_client *c, const char *token)
{
	struct vd_buf h = VD_BUF_INIT(8192);
	struct curl_slist *auth;
	int rc = vd_buf_addf(&h, "Authorization: Bearer %s", token);

	if (rc) {
		vd_buf_release(&h);
		return rc;
	}
	auth = curl_slist_append(NULL, h.data);
	explicit_bzero(h.data, h.len);
	vd_buf_release(&h);
	if (!auth)
		return -ENOMEM;
	curl_slist_free_all(c->auth);
	c->auth = auth;
	return 0;
}

void vd_client_release(struct vd_client *c)
{
	if (c->curl)
		curl_easy_cleanup(c->curl);
	curl_slist_free_all(c->auth);
	free(c->base);
	memset(c, 0, sizeof(*c));
}

/* ---- callbacks -------------------------------------------------------- */

struct reader {
	const struct vd_client_piece *pieces;
	size_t n;
	size_t i;     /* current piece */
	size_t off;   /* offset in it */
};

static size_t on_read(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct reader *r = arg;
	size_t room = size * nmemb, done = 0;

	while (room > 0 && r->i < r->n) {
		const struct vd_client_piece *p = &r->pieces[r->i];
		size_t k = p->n - r->off;

		if (k > room)
			k = room;
		memcpy(dst + done, (const char *)p->p + r->off, k);
		done += k;
		room -= k;
		r->off += k;
		if (r->off == p->n) {
			r->i++;
			r->off = 0;
		}
	}
	return done;
}

/* Rewind (or move) the body to `offset`: libcurl calls this before it
 * sends the request again on a new connection, when the kept-alive one it
 * tried first was closed under it (a daemon that restarted while we
 * long-polled). Without it the retry fails with "necessary data rewind
 * wasn't possible". */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct reader *r = arg;
	size_t i = 0;
	curl_off_t left = offset;

	if (origin != SEEK_SET || offset < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	while (i < r->n && left >= (curl_off_t)r->pieces[i].n) {
		left -= (curl_off_t)r->pieces[i].n;
		i++;
	}
	if (i == r->n && left > 0)
		return CURL_SEEKFUNC_FAIL;   /* past the end */
	r->i = i;
	r->off = (size_t)left;
	return CURL_SEEKFUNC_OK;
}

struct writer {
	struct vd_buf *resp;
	bool *too_big;
};

static size_t on_write(char *src, size_t size, size_t nmemb, void *arg)
{
	struct writer *w = arg;
	size_t n = size * nmemb;

	if (!w->resp)
		return n;
	if (vd_buf_add(w->resp, src, n) < 0) {
		*w->too_big = true;
		return 0;   /* makes libcurl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	const atomic_bool *abort = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return abort && atomic_load(abort) ? 1 : 0;
}

/* ---- requests --------------------------------------------------------- */

/* c->err for a failed transfer: what happened, in words an operator can
 * act on, rather than libcurl's error name. */
static void explain(struct vd_client *c, CURLcode cc)
{
	const char *detail = c->curl_err[0] ? c->curl_err : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_COULDNT_CONNECT:
		snprintf(c->err, sizeof(c->err), "cannot connect to the daemon at %s "
			 "(not running, or restarting?)", c->base);
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
		snprintf(c->err, sizeof(c->err), "cannot find the daemon's host in %s "
			 "(%s)", c->base, detail);
		break;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		snprintf(c->err, sizeof(c->err),
			 "the daemon closed the connection (restarting?)");
		break;
	case CURLE_SEND_FAIL_REWIND:
		snprintf(c->err, sizeof(c->err), "the daemon closed the connection "
			 "and the request could not be sent again");
		break;
	case CURLE_OPERATION_TIMEDOUT:
		snprintf(c->err, sizeof(c->err), "the daemon did not answer in time "
			 "(%s)", detail);
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		snprintf(c->err, sizeof(c->err), "stopped: the executor is leaving");
		break;
	case CURLE_WRITE_ERROR:
		if (c->resp_too_big) {
			snprintf(c->err, sizeof(c->err),
				 "the daemon's answer was larger than expected");
			break;
		}
		/* fall through */
	default:
		/* TLS trouble among others: libcurl's text names the problem
		 * (the pin, the CA, the certificate). */
		snprintf(c->err, sizeof(c->err), "%s", detail);
		break;
	}
}

/* The answer's Content-Encoding is zstd, and its X-VDFS-Length. */
static void read_encoding(struct vd_client *c)
{
	struct curl_header *h = NULL;

	if (curl_easy_header(c->curl, "Content-Encoding", 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK && h && !strcasecmp(h->value, "zstd"))
		c->resp_zstd = true;
	h = NULL;
	if (curl_easy_header(c->curl, "X-VDFS-Length", 0, CURLH_HEADER, -1, &h) ==
	    CURLHE_OK && h) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(h->value, &end, 10);
		if (!errno && end != h->value && !*end && *h->value != '-')
			c->resp_raw_len = v;
	}
}

static int request(long *status, struct vd_buf *resp, struct vd_client *c,
		   const char *method, const char *path, const char *ctype,
		   const char *extra, const struct vd_client_piece *body, size_t nbody,
		   long timeout_ms)
{
	struct vd_buf url = VD_BUF_INIT(8192), ct = VD_BUF_INIT(512);
	struct curl_slist *hdrs = NULL, *last;
	struct reader rd = { body, nbody, 0, 0 };
	struct writer wr = { resp, &c->resp_too_big };
	curl_off_t total = 0;
	CURLcode cc;
	size_t i;
	int rc;

	*status = 0;
	c->retry_after_s = 0;
	c->resp_zstd = false;
	c->resp_raw_len = 0;
	c->err[0] = '\0';
	c->curl_err[0] = '\0';
	c->resp_too_big = false;
	for (i = 0; i < nbody; i++)
		total += (curl_off_t)body[i].n;
	rc = vd_buf_addf(&url, "%s%s", c->base, path);
	if (!rc && ctype)
		rc = vd_buf_addf(&ct, "Content-Type: %s", ctype);
	if (rc)
		goto out;
	/* Our header list is the shared auth header plus per-request ones;
	 * it is built by copying so the shared list is never modified. */
	last = curl_slist_append(NULL, c->auth->data);
	if (last && ctype)
		last = curl_slist_append(last, ct.data);
	if (last && extra)
		last = curl_slist_append(last, extra);
	hdrs = last;
	if (!hdrs) {
		rc = -ENOMEM;
		goto out;
	}

	/* Reset forgets the previous request's options but keeps the
	 * connection cache, so keep-alive still works. */
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url.data);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, CLIENT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, CLIENT_STALL_S);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &wr);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, (void *)c->abort);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->cacert)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cacert);
	if (c->pin) {
		curl_easy_setopt(c->curl, CURLOPT_PINNEDPUBLICKEY, c->pin);
		/* The pin is the trust anchor: a self-signed certificate (or
		 * one for another name) is fine when its key is the pinned
		 * one. libcurl checks the pin even with verification off. */
		if (!c->cacert) {
			curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYPEER, 0L);
			curl_easy_setopt(c->curl, CURLOPT_SSL_VERIFYHOST, 0L);
		}
	}
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "PUT") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE, total);
		curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c->curl, CURLOPT_READDATA, &rd);
		curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, &rd);
	} else if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, total);
		curl_easy_setopt(c->curl, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c->curl, CURLOPT_READDATA, &rd);
		curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, &rd);
	} else if (strcmp(method, "DELETE") == 0 && nbody == 0) {
		curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, "DELETE");
	} else {
		rc = -EINVAL;
		goto out;
	}

	cc = curl_easy_perform(c->curl);
	switch (cc) {
	case CURLE_OK: {
		curl_off_t after = 0;

		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
		/* Seconds, or an HTTP date turned into seconds from now. */
		if (curl_easy_getinfo(c->curl, CURLINFO_RETRY_AFTER, &after) == CURLE_OK &&
		    after > 0)
			c->retry_after_s = after > 86400 ? 86400 : (long)after;
		if (extra)
			read_encoding(c);
		rc = 0;
		break;
	}
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		rc = -ECONNREFUSED;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		rc = -ETIMEDOUT;
		break;
	case CURLE_ABORTED_BY_CALLBACK:
		rc = -ECANCELED;
		break;
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		rc = -EKEYREJECTED;
		break;
	case CURLE_WRITE_ERROR:
		rc = c->resp_too_big ? -EFBIG : -EIO;
		break;
	default:
		rc = -EIO;
		break;
	}
	if (rc) {
		explain(c, cc);
		if (c->curl_err[0])
			vd_debug("%s %s: %s", method, path, c->curl_err);
	}
out:
	curl_slist_free_all(hdrs);
	vd_buf_release(&url);
	vd_buf_release(&ct);
	return rc;
}

int vd_client_do(long *status, struct vd_buf *resp, struct vd_client *c,
		 const char *method, const char *path, const char *ctype,
		 const struct vd_client_piece *body, size_t nbody, long timeout_ms)
{
	return request(status, resp, c, method, path, ctype, NULL, body, nbody,
		       timeout_ms);
}

int vd_client_get_zstd(long *status, struct vd_buf *resp, struct vd_client *c,
		       const char *path, long timeout_ms)
{
	/* Only the header, not CURLOPT_ACCEPT_ENCODING: libcurl would then
	 * decode the frame, and the point is to keep it (cache.h). */
	return request(status, resp, c, "GET", path, NULL, "Accept-Encoding: zstd",
		       NULL, 0, timeout_ms);
}

int vd_client_json(long *status, json_t **reply, struct vd_buf *why,
		   struct vd_client *c, const char *method, const char *path,
		   const json_t *req, long timeout_ms)
{
	struct vd_buf resp = VD_BUF_INIT(CLIENT_JSON_MAX);
	struct vd_client_piece piece = { NULL, 0 };
	json_error_t jerr;
	char *body = NULL;
	int rc;

	*reply = NULL;
	if (req) {
		body = json_dumps(req, JSON_COMPACT);
		if (!body)
			return -ENOMEM;
		piece.p = body;
		piece.n = strlen(body);
	}
	rc = vd_client_do(status, &resp, c, method, path, "application/json",
			  &piece, req ? 1 : 0, timeout_ms);
	if (rc)
		goto out;
	if (*status == 200) {
		*reply = json_loadb(resp.data ? resp.data : "", resp.len, 0, &jerr);
		if (!*reply) {
			vd_buf_addf(why, "bad JSON from the server: %s", jerr.text);
			rc = -EBADMSG;
		}
	} else if (*status != 204) {
		json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, &jerr);
		const char *e = json_string_value(json_object_get(j, "error"));

		if (e)
			vd_buf_adds(why, e);
		else
			vd_buf_addf(why, "HTTP %ld: %.200s", *status, vd_buf_cstr(&resp));
		json_decref(j);
	}
out:
	free(body);
	vd_buf_release(&resp);
	return rc;
}
