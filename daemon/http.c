/*
 * http.c - the executor protocol over libmicrohttpd.
 *
 * Request life cycle (MHD calls the access handler several times per
 * request): the first call sees only the headers; there we authenticate,
 * route, validate the path's ID and check Content-Length, and answer at once
 * when any of that fails (MHD then skips the body and closes the
 * connection). Later calls hand us body pieces, which go into a per-request
 * vd_buf capped for the route. The last call (upload size 0) runs the
 * engine and queues the answer.
 *
 * Who may do what: the enrollment token (STATE/token) is the operator's
 * and a new executor's: register, status, metrics, revoke, and reading
 * code and chunks. An executor's own token (from registration) leases,
 * heartbeats and posts results, only for its own leases (403 otherwise),
 * and reads code and chunks. A missing or unknown token is 401.
 *
 * TLS (vd_http_start_tls) is libmicrohttpd's, over GnuTLS.
 */
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

#include "http.h"

#define HTTP_JSON_MAX ((size_t)1 << 20)
#define HTTP_RESULT_MAX (((size_t)1 << 30) + ((size_t)64 << 10))
/* What a code or chunk download may be; the engine's own caps are smaller. */
#define HTTP_BLOB_MAX ((size_t)1 << 30)
#define HTTP_METRICS_MAX ((size_t)16 << 20)
#define HTTP_CONN_LIMIT 1024
#define HTTP_CONN_TIMEOUT_S 120

struct vd_http {
	struct MHD_Daemon *d;
	vd_engine *e;
	/* Set once by vd_http_stop; every request checks it before calling
	 * into the engine. */
	atomic_bool stopping;
	/* Long-polls currently inside vd_engine_api_lease. Incremented before
	 * `stopping` is checked, so vd_http_stop either sees the request here
	 * or the request sees `stopping`: no long-poll can slip past the
	 * final wake-up and hold MHD_stop_daemon for its whole wait. */
	atomic_int in_lease;
};

enum route {
	ROUTE_REGISTER,
	ROUTE_LEASE,
	ROUTE_HEARTBEAT,
	ROUTE_RESULT,
	ROUTE_CODE,
	ROUTE_CHUNK,
	ROUTE_STATUS,
	ROUTE_METRICS,
	ROUTE_REVOKE,
	/* The operator API (docs/protocol.md, "Operators"). */
	ROUTE_VERSION,
	ROUTE_LINEAGE,
	ROUTE_DU,
	ROUTE_TASK_LOG,
	ROUTE_DIFF,
};

/* Per-request state, owned by MHD's connection-class pointer and freed in
 * the completion callback. Only the connection's own thread touches it. */
struct req {
	enum route route;
	char id[VD_ID_SIZE];
	char name[VD_EXECUTOR_NAME_SIZE];  /* ROUTE_REVOKE: the executor */
	char id2[VD_ID_SIZE];              /* ROUTE_DIFF: the second ID */
	char task[256];                    /* ROUTE_TASK_LOG: the task */
	enum vd_role role;                 /* who the token says is asking */
	char who[VD_EXECUTOR_NAME_SIZE];   /* VD_ROLE_EXECUTOR: its name */
	struct vd_buf body;
	/* The body went over its cap: the rest is read and dropped, and the
	 * answer is 413 once the upload is done. */
	bool too_big;
};

/* ---- answers ---------------------------------------------------------- */

/* Queue `len` bytes of malloc'd `data` (taken over, also on failure). */
static enum MHD_Result reply_bytes(struct MHD_Connection *c, unsigned status,
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

static enum MHD_Result reply_empty(struct MHD_Connection *c, unsigned status)
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

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status,
				  const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	if (!s) {
		vd_warn("http: cannot encode a JSON reply");
		return MHD_NO;
	}
	return reply_bytes(c, status, "application/json", s, strlen(s));
}

/* Log one line and answer {"error": why}. Every refusal goes through here,
 * so each one is logged exactly once. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status,
				   const char *method, const char *url,
				   const char *why, const char *allow)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	json_t *j;
	char *s;

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
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* The mapping documented in engine.h. -EAGAIN (204) is handled by callers. */
static unsigned status_of(int rc)
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
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

static enum MHD_Result reply_engine_error(struct MHD_Connection *c, int rc,
					  const char *method, const char *url,
					  const struct vd_buf *why)
{
	const char *msg = why && why->len ? vd_buf_cstr(why) : strerror(-rc);

	return reply_error(c, status_of(rc), method, url, msg, NULL);
}

/* ---- request checks --------------------------------------------------- */

/* The token of "Authorization: Bearer <token>", or NULL. */
static const char *bearer(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

/* May this role use this route? Code and chunks are for both. */
static bool role_may(enum vd_role role, enum route r)
{
	switch (r) {
	case ROUTE_LEASE:
	case ROUTE_HEARTBEAT:
	case ROUTE_RESULT:
		return role == VD_ROLE_EXECUTOR;
	case ROUTE_CODE:
	case ROUTE_CHUNK:
		return role == VD_ROLE_EXECUTOR || role == VD_ROLE_ADMIN;
	default:
		return role == VD_ROLE_ADMIN;
	}
}

/* Split url into a route and its ID. Returns 0, -ENOENT for an unknown path,
 * -EINVAL for a known path with a malformed ID. *allowed is the one method
 * the route takes. */
static int route_of(struct req *q, const char **allowed, const char *url)
{
	static const struct {
		const char *prefix;   /* exact path, or prefix before the ID */
		const char *suffix;   /* NULL: exact path; else after the ID */
		enum route route;
		const char *method;
	} table[] = {
		{ "/v1/executors", NULL, ROUTE_REGISTER, MHD_HTTP_METHOD_POST },
		{ "/v1/leases", NULL, ROUTE_LEASE, MHD_HTTP_METHOD_POST },
		{ "/v1/status", NULL, ROUTE_STATUS, MHD_HTTP_METHOD_GET },
		{ "/metrics", NULL, ROUTE_METRICS, MHD_HTTP_METHOD_GET },
		{ "/v1/leases/", "/heartbeat", ROUTE_HEARTBEAT, MHD_HTTP_METHOD_POST },
		{ "/v1/results/", "", ROUTE_RESULT, MHD_HTTP_METHOD_PUT },
		{ "/v1/code/", "", ROUTE_CODE, MHD_HTTP_METHOD_GET },
		{ "/v1/chunks/", "", ROUTE_CHUNK, MHD_HTTP_METHOD_GET },
		{ "/v1/executors/", "", ROUTE_REVOKE, MHD_HTTP_METHOD_DELETE },
		{ "/v1/du", NULL, ROUTE_DU, MHD_HTTP_METHOD_GET },
		{ "/v1/versions/", "", ROUTE_VERSION, MHD_HTTP_METHOD_GET },
		{ "/v1/lineage/", "", ROUTE_LINEAGE, MHD_HTTP_METHOD_GET },
		{ "/v1/tasks/", "/log", ROUTE_TASK_LOG, MHD_HTTP_METHOD_GET },
	};
	size_t i;

	/* /v1/diff/<a>/<b>: the one route with two IDs. */
	if (!strncmp(url, "/v1/diff/", 9)) {
		const char *a = url + 9;
		q->route = ROUTE_DIFF;
		*allowed = MHD_HTTP_METHOD_GET;
		if (strlen(a) != 2 * VD_ID_LEN + 1 || a[VD_ID_LEN] != '/')
			return -EINVAL;
		memcpy(q->id, a, VD_ID_LEN);
		q->id[VD_ID_LEN] = '\0';
		memcpy(q->id2, a + VD_ID_LEN + 1, VD_ID_LEN);
		q->id2[VD_ID_LEN] = '\0';
		return vd_id_valid(q->id) && vd_id_valid(q->id2) ? 0 : -EINVAL;
	}

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		size_t plen = strlen(table[i].prefix);
		const char *rest, *slash;
		size_t idlen;

		if (!table[i].suffix) {
			if (strcmp(url, table[i].prefix) != 0)
				continue;
			q->route = table[i].route;
			*allowed = table[i].method;
			return 0;
		}
		if (strncmp(url, table[i].prefix, plen) != 0)
			continue;
		rest = url + plen;
		slash = strchr(rest, '/');
		idlen = slash ? (size_t)(slash - rest) : strlen(rest);
		if (strcmp(rest + idlen, table[i].suffix) != 0)
			continue;
		q->route = table[i].route;
		*allowed = table[i].method;
		if (q->route == ROUTE_TASK_LOG) {
			/* A task name (MHD has already percent-decoded it). */
			if (idlen == 0 || idlen >= sizeof(q->task))
				return -EINVAL;
			memcpy(q->task, rest, idlen);
			q->task[idlen] = '\0';
			return 0;
		}
		if (q->route == ROUTE_REVOKE) {
			/* A name, checked by the engine. */
			if (idlen == 0 || idlen >= sizeof(q->name))
				return -EINVAL;
			memcpy(q->name, rest, idlen);
			q->name[idlen] = '\0';
			return 0;
		}
		if (idlen != VD_ID_LEN)
			return -EINVAL;
		memcpy(q->id, rest, VD_ID_LEN);
		q->id[VD_ID_LEN] = '\0';
		return vd_id_valid(q->id) ? 0 : -EINVAL;
	}
	return -ENOENT;
}

static size_t body_cap(enum route r)
{
	return r == ROUTE_RESULT ? HTTP_RESULT_MAX : HTTP_JSON_MAX;
}

/* Parse a JSON object; on failure fill why with jansson's reason. */
static json_t *parse_object(struct vd_buf *why, const char *p, size_t n)
{
	json_error_t err;
	json_t *j = json_loadb(p, n, 0, &err);

	if (!j) {
		vd_buf_addf(why, "bad JSON at line %d column %d: %s", err.line,
			    err.column, err.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		vd_buf_adds(why, "body must be a JSON object");
		return NULL;
	}
	return j;
}

/* ---- the engine calls ------------------------------------------------- */

static int call_lease(vd_http *h, json_t **reply, struct vd_buf *why,
		      const json_t *body)
{
	int rc;

	atomic_fetch_add(&h->in_lease, 1);
	if (atomic_load(&h->stopping)) {
		vd_buf_adds(why, "the daemon is shutting down");
		rc = -ESHUTDOWN;
	} else {
		rc = vd_engine_api_lease(reply, why, h->e, body);
	}
	atomic_fetch_sub(&h->in_lease, 1);
	return rc;
}

/* A heartbeat or result names a lease: it must be the caller's. */
static int check_owner(vd_http *h, const struct req *q, struct vd_buf *why)
{
	char owner[VD_EXECUTOR_NAME_SIZE];
	int rc = vd_engine_lease_owner(owner, h->e, q->id);

	if (rc == -ENOENT) {
		vd_buf_adds(why, "unknown lease");
		return rc;
	}
	if (rc)
		return rc;
	if (strcmp(owner, q->who) != 0) {
		vd_buf_adds(why, "this lease was granted to another executor");
		return -EPERM;
	}
	return 0;
}

/* The body is complete: run the route and queue the answer. */
static enum MHD_Result handle(vd_http *h, struct MHD_Connection *c,
			      struct req *q, const char *method, const char *url)
{
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_buf out = VD_BUF_INIT(HTTP_BLOB_MAX);
	json_t *body = NULL, *reply = NULL, *ex;
	const char *ctype = "application/octet-stream";
	enum MHD_Result ret;
	int rc;

	if (atomic_load(&h->stopping)) {
		ret = reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, method, url,
				  "the daemon is shutting down", NULL);
		goto out;
	}
	switch (q->route) {
	case ROUTE_REGISTER:
	case ROUTE_LEASE:
		body = parse_object(&why, q->body.data, q->body.len);
		if (!body) {
			rc = -EINVAL;
			break;
		}
		if (q->route == ROUTE_REGISTER) {
			rc = vd_engine_api_register(&reply, &why, h->e, body);
			break;
		}
		/* An executor leases for itself only. */
		ex = json_object_get(body, "executor");
		if (ex && (!json_is_string(ex) || strcmp(json_string_value(ex), q->who))) {
			vd_buf_adds(&why, "'executor' is not the executor this token belongs to");
			rc = -EPERM;
			break;
		}
		if (!ex)
			json_object_set_new(body, "executor", json_string(q->who));
		rc = call_lease(h, &reply, &why, body);
		break;
	case ROUTE_HEARTBEAT:
		/* The body is empty or {}; anything else that parses is ignored,
		 * but malformed JSON is still an error worth telling. */
		if (q->body.len) {
			body = parse_object(&why, q->body.data, q->body.len);
			if (!body) {
				rc = -EINVAL;
				break;
			}
		}
		if ((rc = check_owner(h, q, &why)))
			break;
		rc = vd_engine_api_heartbeat(&reply, &why, h->e, q->id);
		break;
	case ROUTE_RESULT: {
		const char *p = q->body.data ? q->body.data : "";
		const char *nl = memchr(p, '\n', q->body.len);
		size_t outlen;
		json_t *ob;

		if (!nl) {
			vd_buf_adds(&why, "result body needs a JSON line, a newline, then the output");
			rc = -EINVAL;
			break;
		}
		body = parse_object(&why, p, (size_t)(nl - p));
		if (!body) {
			rc = -EINVAL;
			break;
		}
		outlen = q->body.len - (size_t)(nl + 1 - p);
		ob = json_object_get(body, "out_bytes");
		if (!json_is_integer(ob) || json_integer_value(ob) < 0 ||
		    (uint64_t)json_integer_value(ob) != (uint64_t)outlen) {
			vd_buf_addf(&why, "out_bytes must be the %zu bytes that follow the JSON line",
				    outlen);
			rc = -EINVAL;
			break;
		}
		if ((rc = check_owner(h, q, &why)))
			break;
		rc = vd_engine_api_result(&reply, &why, h->e, q->id, body, nl + 1,
					  outlen);
		break;
	}
	case ROUTE_CODE:
		rc = vd_engine_api_code(&out, &why, h->e, q->id);
		break;
	case ROUTE_CHUNK:
		rc = vd_engine_api_chunk(&out, &why, h->e, q->id);
		if (!rc && q->role == VD_ROLE_EXECUTOR)
			vd_engine_note_chunk(h->e, q->who, q->id);
		break;
	case ROUTE_REVOKE:
		rc = vd_engine_api_revoke(&reply, &why, h->e, q->name);
		break;
	case ROUTE_STATUS:
		rc = vd_engine_api_status(&reply, h->e);
		break;
	case ROUTE_VERSION:
		rc = vd_engine_api_version(&reply, &why, h->e, q->id);
		break;
	case ROUTE_LINEAGE:
		rc = vd_engine_api_lineage(&reply, &why, h->e, q->id);
		break;
	case ROUTE_DU:
		rc = vd_engine_api_du(&reply, h->e);
		break;
	case ROUTE_TASK_LOG:
		rc = vd_engine_api_task_log(&reply, &why, h->e, q->task);
		break;
	case ROUTE_DIFF:
		rc = vd_engine_api_diff(&reply, &why, h->e, q->id, q->id2);
		break;
	case ROUTE_METRICS:
		rc = vd_engine_api_metrics(&out, h->e);
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		break;
	default:
		rc = -EINVAL;
		break;
	}

	if (rc == -EAGAIN) {
		ret = reply_empty(c, MHD_HTTP_NO_CONTENT);
	} else if (rc < 0) {
		ret = reply_engine_error(c, rc, method, url, &why);
	} else if (q->route == ROUTE_CODE || q->route == ROUTE_CHUNK ||
		   q->route == ROUTE_METRICS) {
		size_t len;
		char *data = vd_buf_detach(&out, &len);

		ret = data ? reply_bytes(c, MHD_HTTP_OK, ctype, data, len) : MHD_NO;
	} else if (reply) {
		ret = reply_json(c, MHD_HTTP_OK, reply);
	} else {
		/* An engine call that succeeded without a reply: still JSON. */
		ret = reply_bytes(c, MHD_HTTP_OK, "application/json", strdup("{}"), 2);
	}
out:
	json_decref(body);
	json_decref(reply);
	vd_buf_release(&out);
	vd_buf_release(&why);
	return ret;
}

/* The first call for a request: only headers are known. Returns true with
 * *ret set when the request was answered (refused) already. */
static bool first_call(vd_http *h, struct MHD_Connection *c, struct req *q,
		       const char *method, const char *url, enum MHD_Result *ret)
{
	const char *allowed = NULL, *cl;
	int rc;

	q->role = vd_engine_auth(q->who, h->e, bearer(c));
	if (q->role == VD_ROLE_NONE) {
		*ret = reply_error(c, MHD_HTTP_UNAUTHORIZED, method, url,
				   "missing or wrong bearer token", NULL);
		return true;
	}
	rc = route_of(q, &allowed, url);
	if (rc == -ENOENT) {
		*ret = reply_error(c, MHD_HTTP_NOT_FOUND, method, url, "no such path", NULL);
		return true;
	}
	if (strcmp(method, allowed) != 0) {
		*ret = reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, method, url,
				   "method not allowed here", allowed);
		return true;
	}
	if (rc == -EINVAL) {
		*ret = reply_error(c, MHD_HTTP_BAD_REQUEST, method, url,
				   q->route == ROUTE_REVOKE ? "bad executor name"
				   : "bad ID: want 32 lowercase hex digits", NULL);
		return true;
	}
	if (!role_may(q->role, q->route)) {
		*ret = reply_error(c, MHD_HTTP_FORBIDDEN, method, url,
				   q->role == VD_ROLE_ADMIN
				   ? "this needs an executor's own token (register first)"
				   : "an executor's token may not do this; use the "
				     "enrollment token", NULL);
		return true;
	}
	/* A declared length over the cap is refused before a byte is read. */
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno || end == cl || *end || n > body_cap(q->route)) {
			*ret = reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, method, url,
					   "body over the limit", NULL);
			return true;
		}
	}
	vd_buf_init(&q->body, body_cap(q->route));
	return false;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	vd_http *h = cls;
	struct req *q = *con_cls;
	enum MHD_Result ret;

	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q) {
			vd_warn("http: %s %s: out of memory", method, url);
			return MHD_NO;
		}
		*con_cls = q;
		if (first_call(h, c, q, method, url, &ret))
			return ret;
		return MHD_YES;
	}
	if (*upload_data_size) {
		/* Past the cap we keep reading (to answer cleanly after the
		 * upload) but drop the bytes, so memory stays bounded. */
		if (!q->too_big) {
			int rc = vd_buf_add(&q->body, upload_data, *upload_data_size);

			if (rc == -EFBIG) {
				q->too_big = true;
				vd_buf_release(&q->body);
			} else if (rc < 0) {
				vd_warn("http: %s %s: cannot buffer the body: %s", method,
					url, strerror(-rc));
				return MHD_NO;
			}
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (q->too_big)
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, method, url,
				   "body over the limit", NULL);
	return handle(h, c, q, method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!q)
		return;
	vd_buf_release(&q->body);
	free(q);
	*con_cls = NULL;
}

/* MHD's own diagnostics (bind failures, dropped connections) go to our log
 * as single lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct vd_buf b = VD_BUF_INIT(1024);
	va_list aq;

	(void)cls;
	va_copy(aq, ap);
	vd_buf_vaddf(&b, fmt, aq);
	va_end(aq);
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	vd_warn("http: %s", vd_buf_cstr(&b));
	vd_buf_release(&b);
}

/* ---- start and stop --------------------------------------------------- */

static int resolve(struct addrinfo **out, const char *host, int port)
{
	struct addrinfo hints;
	char hostbuf[256];
	char portstr[16];
	size_t n;
	int rc;

	if (!host || !*host)
		host = "127.0.0.1";
	n = strlen(host);
	if (n >= sizeof(hostbuf))
		return -EINVAL;
	/* "[::1]" as written in URLs. */
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		memcpy(hostbuf, host + 1, n - 2);
		hostbuf[n - 2] = '\0';
	} else {
		memcpy(hostbuf, host, n + 1);
	}
	if (port < 0 || port > 65535)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%d", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(hostbuf, portstr, &hints, out);
	if (rc) {
		vd_err("http: cannot resolve %s: %s", hostbuf, gai_strerror(rc));
		return -EINVAL;
	}
	return 0;
}

int vd_http_start(vd_http **out, int *bound_port, vd_engine *e,
		  const char *host, int port)
{
	return vd_http_start_tls(out, bound_port, e, host, port, NULL, NULL);
}

int vd_http_start_tls(vd_http **out, int *bound_port, vd_engine *e,
		      const char *host, int port, const char *cert_pem,
		      const char *key_pem)
{
	struct MHD_OptionItem tls[3];
	struct addrinfo *ai = NULL;
	const union MHD_DaemonInfo *info;
	vd_http *h = NULL;
	unsigned flags;
	int rc;

	*out = NULL;
	if ((cert_pem != NULL) != (key_pem != NULL))
		return -EINVAL;
	if (cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		vd_err("http: this libmicrohttpd was built without TLS");
		return -ENOTSUP;
	}
	rc = resolve(&ai, host, port);
	if (rc)
		goto fail;
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto fail;
	}
	h->e = e;
	atomic_init(&h->stopping, false);
	atomic_init(&h->in_lease, 0);
	/* One thread per connection because a lease long-poll blocks inside
	 * vd_engine_api_lease for up to 30 s: with a shared polling thread
	 * (or a small pool) a handful of idle executors would stall every
	 * other request. Threads are cheap next to that, and the connection
	 * limit bounds them. MHD_USE_AUTO picks poll(), which, unlike select(),
	 * has no FD_SETSIZE ceiling under that many connections. */
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (ai->ai_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* MHD copies neither: the PEM strings must outlive the daemon, which
	 * the caller guarantees (vdfsd keeps them until it exits). */
	if (cert_pem) {
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key_pem };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert_pem };
		tls[2] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	} else {
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	}
	/* The logger goes first so that MHD's complaints about the options
	 * that follow reach it too. */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
				MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_CONN_TIMEOUT_S,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_ARRAY, tls,
				MHD_OPTION_END);
	if (!h->d) {
		/* MHD logged the reason; a taken port is the likely one. */
		vd_err("http: cannot listen on %s:%d", host && *host ? host : "127.0.0.1",
		       port);
		rc = port ? -EADDRINUSE : -EIO;
		goto fail;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		vd_err("http: cannot learn the bound port");
		MHD_stop_daemon(h->d);
		rc = -EIO;
		goto fail;
	}
	if (bound_port)
		*bound_port = info->port;
	freeaddrinfo(ai);
	*out = h;
	return 0;
fail:
	if (ai)
		freeaddrinfo(ai);
	free(h);
	return rc;
}

void vd_http_stop(vd_http *h)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int i;

	if (!h)
		return;
	atomic_store(&h->stopping, true);
	/* Wake until no long-poll is left in the engine (bounded: 5 s), so
	 * MHD_stop_daemon, which joins every connection thread, returns
	 * promptly. */
	for (i = 0; i < 250; i++) {
		vd_engine_wake_all(h->e);
		if (atomic_load(&h->in_lease) == 0)
			break;
		nanosleep(&ts, NULL);
	}
	MHD_stop_daemon(h->d);
	free(h);
}
