/*
 * http_reply.c - answers: bytes, JSON, errors in JSON, and the throttle
 * on lines about strangers' connections. Shared by the routes in http.c and
 * the pages, sessions and streams in http_web.c, http_events.c and the
 * download and archive files, so that every refusal is shaped and logged
 * one way.
 */
#include "http_int.h"

/* ---- the log throttle ------------------------------------------------- */

/* Say how many lines were left out once their window is over (at once
 * with `force`). Returns when the current window ends if lines are
 * waiting to be counted there, else -1. */
int64_t http_log_flush(vd_http *h, int64_t now, bool force)
{
	unsigned dropped = 0;
	int64_t due = -1;

	pthread_mutex_lock(&h->lock);
	if (force || now - h->log_window >= HTTP_LOG_WINDOW_MS) {
		dropped = h->log_dropped;
		h->log_window = now;
		h->log_lines = 0;
		h->log_dropped = 0;
	} else if (h->log_dropped) {
		due = h->log_window + HTTP_LOG_WINDOW_MS;
	}
	pthread_mutex_unlock(&h->lock);
	if (dropped)
		vd_warn("http: %u more lines about refused or broken connections "
			"were not logged", dropped);
	return due;
}

/* May one more line about a stranger's connection be logged now? */
bool http_log_allowed(vd_http *h)
{
	bool ok;

	http_log_flush(h, vd_mono_ms(), false);
	pthread_mutex_lock(&h->lock);
	ok = h->log_lines < HTTP_LOG_BURST;
	if (ok)
		h->log_lines++;
	else
		h->log_dropped++;
	pthread_mutex_unlock(&h->lock);
	return ok;
}

/* ---- answers ---------------------------------------------------------- */

/* Queue `len` bytes of malloc'd `data` (taken over, also on failure). */
enum MHD_Result http_reply_bytes(struct MHD_Connection *c, unsigned status,
				   const char *ctype, char *data, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(data);
		vd_warn("http: cannot create a response (status %u)", status);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_reply_empty(struct MHD_Connection *c, unsigned status)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_reply_json(struct MHD_Connection *c, unsigned status,
				  const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (!s) {
		vd_warn("http: cannot encode a JSON reply");
		return MHD_NO;
	}
	return http_reply_bytes(c, status, "application/json", s, strlen(s));
}

/* Answer {"error": why}, logged in one line unless `quiet`. Every refusal
 * goes through here, so each one is logged once at most. A 401 closes the
 * connection (only a token holder keeps one; see the top of this file),
 * and so do 411 and 413, whose bodies are left unread, and 503 (shutting
 * down). */
enum MHD_Result http_reply_error_q(struct MHD_Connection *c, unsigned status,
				     const char *method, const char *url,
				     const char *why, const char *allow, bool quiet)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	json_t *j;
	char *s;

	if (!quiet)
		vd_warn("http: %s %s -> %u: %s", method, url, status, why);
	j = json_pack("{s:s}", "error", why);
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	/* A full state disk is a wait, not a failure: say when to try again. */
	if (status == MHD_HTTP_INSUFFICIENT_STORAGE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_DISK_RETRY_S);
	if (status == MHD_HTTP_UNAUTHORIZED || status == MHD_HTTP_LENGTH_REQUIRED ||
	    status == MHD_HTTP_CONTENT_TOO_LARGE || status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_reply_error(struct MHD_Connection *c, unsigned status,
				   const char *method, const char *url,
				   const char *why, const char *allow)
{
	return http_reply_error_q(c, status, method, url, why, allow, false);
}

/* The mapping documented in engine.h. -EAGAIN (204) is handled by callers. */
unsigned http_status_of(int rc)
{
	switch (rc) {
	case -EINVAL:
		return MHD_HTTP_BAD_REQUEST;
	case -EACCES:
		return MHD_HTTP_UNAUTHORIZED;
	case -EPERM:
		return MHD_HTTP_FORBIDDEN;
	case -ENOENT:
		return MHD_HTTP_NOT_FOUND;
	case -ESTALE:
		return MHD_HTTP_CONFLICT;
	case -EFBIG:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case -ESHUTDOWN:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case -ENOSPC:
	case -EDQUOT:
		return MHD_HTTP_INSUFFICIENT_STORAGE;
	case -EALREADY:
	case -EBUSY:
		return MHD_HTTP_CONFLICT;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

enum MHD_Result http_reply_engine_error(struct MHD_Connection *c, int rc,
					  const char *method, const char *url,
					  const struct vd_buf *why)
{
	const char *msg = why && why->len ? vd_buf_cstr(why) : strerror(-rc);

	return http_reply_error(c, http_status_of(rc), method, url, msg, NULL);
}
