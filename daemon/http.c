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
 * Connections. MHD runs one thread per connection, because a lease
 * long-poll blocks its thread inside the engine; so a connection costs a
 * thread, a file descriptor and a memory pool, and whoever can open TCP
 * connections could take them all and lock executors and operators out.
 * The listening socket is therefore ours, not MHD's: a front door thread
 * accepts, applies the admission rules below, and holds each new
 * connection, with no thread of its own, until its first request head has
 * arrived complete (plain HTTP: the bytes are peeked at, not consumed) or
 * its first bytes have (TLS, whose bytes only MHD can read). Only then is
 * it handed to MHD with MHD_add_connection. MHD's own accept policy
 * callback could count and refuse too, but every idle socket it admits
 * would still hold a thread for the whole timeout.
 *
 * The door also answers, in JSON and at once, what MHD would answer with
 * its own HTML page or not at all: a malformed request line or header
 * field, a head too long, an HTTP version other than 1.x, a malformed
 * Content-Length. MHD 0.9.75 cannot replace the bodies of the errors it
 * generates, so the door lets through only first requests that MHD will
 * parse without complaint. A connection stays open after an answer only
 * if the request presented a valid token (every 401, 411 and 413 closes
 * it), so later requests on a connection come from token holders; what
 * they get wrong in the framing MHD answers itself (docs/protocol.md).
 * Chunked request bodies are refused with 411 at the headers: a chunk may
 * declare any size and MHD reads it without telling us, whereas with a
 * Content-Length the size is refused (413) before a byte of it is read.
 *
 * Admission (docs/protocol.md, "Connections"): at most max_conns open in
 * all. An address that presented a valid token in the last
 * HTTP_KNOWN_TTL_MS is known; the others (strangers) may hold max_per_ip
 * connections each and, all together, max_conns less a reserve of a
 * quarter, kept for known addresses, so registered executors and operators
 * are served while strangers hold every socket they are allowed. A
 * connection has idle_timeout_s from its accept to present a valid token:
 * its first head must be complete at the door by then (408 otherwise),
 * and a connection in MHD without a valid token by then is shut down. That
 * is a deadline, so trickling bytes does not extend it; MHD's inactivity
 * timeout is idle_timeout_s too until the token, and HTTP_AUTH_TIMEOUT_S
 * from then on.
 *
 * TLS (vd_http_start_tls) is libmicrohttpd's, over GnuTLS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "http.h"

/* Retry-After, in seconds, of a 507 (the state disk is full). */
#define HTTP_DISK_RETRY_S "5"
#define HTTP_JSON_MAX ((size_t)1 << 20)
#define HTTP_RESULT_MAX (((size_t)1 << 30) + ((size_t)64 << 10))
/* What a code or chunk download may be; the engine's own caps are smaller. */
#define HTTP_BLOB_MAX ((size_t)1 << 30)
#define HTTP_METRICS_MAX ((size_t)16 << 20)
/* Idle time a connection is allowed once a request on it presented a
 * valid token: executors keep theirs open between polls and uploads. */
#define HTTP_AUTH_TIMEOUT_S 120
/* The first request's head (request line and header fields) as the door
 * checks it. vdfs-executor and vdfs send a few hundred bytes. */
#define HTTP_HEAD_MAX ((size_t)16 << 10)
#define HTTP_HEAD_FIELDS_MAX 100
/* MHD's memory per connection. The head and MHD's parsed fields must fit
 * in it with room to spare (MHD reads into half of what is free), or MHD
 * would answer a head the door let through with its own 431 page. */
#define HTTP_POOL_SIZE ((size_t)64 << 10)
/* An address stays known this long after its last valid token. */
#define HTTP_KNOWN_TTL_MS ((int64_t)3600 * 1000)
/* File descriptors left to the rest of vdfsd (store packs, catalog, FUSE,
 * logs) when max_conns is fitted under RLIMIT_NOFILE. */
#define HTTP_FDS_SPARE 256
#define HTTP_ADDR_BUCKETS 1024
/* Lines about connections of strangers (the door's refusals, 401s, MHD's
 * complaints about broken connections): at most HTTP_LOG_BURST per window,
 * the rest counted, so that a flood of connections is not one in the log. */
#define HTTP_LOG_BURST 20
#define HTTP_LOG_WINDOW_MS 10000
/* accept() failing for want of file descriptors would wake the door again
 * at once; it stops accepting this long instead (the backlog waits). */
#define HTTP_ACCEPT_PAUSE_MS 100

/* One client address as the admission rules count it: an IPv4 address, or
 * the /64 of an IPv6 one (a host on a LAN gets a whole /64 and could
 * otherwise claim 2^64 budgets). Reached from h->addrs and from the
 * gate_conns counted against it; all fields under h->lock. */
struct gate_addr {
	struct gate_addr *next;       /* hash chain */
	unsigned char key[9];         /* 4 or 6, then 4 or 8 address bytes */
	unsigned conns;               /* connections open from it */
	int64_t known_until;          /* vd_mono_ms(); known while in the future */
};

enum gate_where {
	GATE_AT_DOOR,     /* the door holds it, waiting for its first head */
	GATE_HANDED,      /* given to MHD_add_connection, not yet started */
	GATE_UNAUTH,      /* MHD's, and no request on it presented a valid token */
	GATE_IN_MHD,      /* MHD's, and it did (or it was shut down: too late) */
};

/* One accepted connection, counted from accept() until MHD (or the door)
 * closes it; from MHD's start notification on, it is the connection's
 * socket context and is freed when MHD says it closed it. At the door
 * only the door thread touches it; once handed over, `where`, `stranger`
 * and the list links are under h->lock (the rest is fixed at accept). */
struct gate_conn {
	/* The list `where` says: the door's queue, h->handed, h->unauth
	 * (GATE_IN_MHD: none). */
	struct gate_conn *prev, *next;
	int fd;
	enum gate_where where;
	bool stranger;                  /* counted in h->strangers */
	struct gate_addr *addr;
	/* accept time + idle_s: its first head is due at the door by then,
	 * and a valid token in MHD (after that it is shut down). */
	int64_t deadline;
	struct sockaddr_storage sa;
	socklen_t salen;
};

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

	/* Settings, fixed after start. */
	bool tls;
	unsigned idle_s, max_conns, max_per_ip, reserve;

	/* The door: its thread, the listening socket, its epoll set and the
	 * eventfd that stops it. */
	int listen_fd, epoll_fd, wake_fd;
	pthread_t door;
	bool door_running;

	/* Under lock: the counts the admission rules read, the address table
	 * and the connections handed to MHD but not yet started by it. Taken
	 * by the door thread and by MHD's threads (connection notifications,
	 * the first call of a request); never held across a call into MHD. */
	pthread_mutex_t lock;
	unsigned conns;                 /* every counted connection */
	unsigned strangers;             /* of those: no valid token, unknown address */
	unsigned naddrs;
	struct gate_addr *addrs[HTTP_ADDR_BUCKETS];
	struct gate_conn *handed;       /* GATE_HANDED, newest first */
	struct gate_conn *unauth_head, *unauth_tail;  /* GATE_UNAUTH by deadline */
	int64_t log_window;             /* the log throttle: when this window began, */
	unsigned log_lines, log_dropped;  /* lines logged in it and left out */

	/* Only the door thread: connections at the door in accept order
	 * (so deadlines come in order), the peek buffer and the accept
	 * pause. */
	struct gate_conn *queue_head, *queue_tail;
	unsigned char peek[HTTP_HEAD_MAX];
	int64_t accept_paused_until;
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

/* ---- the log throttle ------------------------------------------------- */

/* Say how many lines were left out once their window is over (at once
 * with `force`). Returns when the current window ends if lines are
 * waiting to be counted there, else -1. */
static int64_t log_flush(vd_http *h, int64_t now, bool force)
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
static bool log_allowed(vd_http *h)
{
	bool ok;

	log_flush(h, vd_mono_ms(), false);
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

/* Answer {"error": why}, logged in one line unless `quiet`. Every refusal
 * goes through here, so each one is logged once at most. A 401 closes the
 * connection (only a token holder keeps one; see the top of this file),
 * and so do 411 and 413, whose bodies are left unread, and 503 (shutting
 * down). */
static enum MHD_Result reply_error_q(struct MHD_Connection *c, unsigned status,
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

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status,
				   const char *method, const char *url,
				   const char *why, const char *allow)
{
	return reply_error_q(c, status, method, url, why, allow, false);
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

static void gate_authed(vd_http *h, struct MHD_Connection *c);

/* The first call for a request: only headers are known. Returns true with
 * *ret set when the request was answered (refused) already. */
static bool first_call(vd_http *h, struct MHD_Connection *c, struct req *q,
		       const char *method, const char *url, enum MHD_Result *ret)
{
	const char *allowed = NULL, *cl;
	int rc;

	q->role = vd_engine_auth(q->who, h->e, bearer(c));
	if (q->role == VD_ROLE_NONE) {
		/* Anyone can make these by the thousand: throttled. */
		*ret = reply_error_q(c, MHD_HTTP_UNAUTHORIZED, method, url,
				     "missing or wrong bearer token", NULL, !log_allowed(h));
		return true;
	}
	gate_authed(h, c);
	/* A chunk can declare any size and MHD reads it without asking us,
	 * so a body must say its length up front (see the top of the file). */
	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		*ret = reply_error(c, MHD_HTTP_LENGTH_REQUIRED, method, url,
				   "send the body with a Content-Length; chunked "
				   "request bodies are not accepted", NULL);
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

/* MHD's own diagnostics (mostly about broken connections, TLS handshakes
 * of strangers among them) go to our log as single lines, throttled. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct vd_buf b = VD_BUF_INIT(1024);
	va_list aq;

	if (!log_allowed(cls))
		return;
	va_copy(aq, ap);
	vd_buf_vaddf(&b, fmt, aq);
	va_end(aq);
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
		b.data[--b.len] = '\0';
	vd_warn("http: %s", vd_buf_cstr(&b));
	vd_buf_release(&b);
}


/* ---- the front door --------------------------------------------------- */

/* RFC 9110 5.6.2: the characters of a method or a field name. */
static bool tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= 'A' && ch <= 'Z') || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool digit(unsigned char ch)
{
	return ch >= '0' && ch <= '9';
}

/* What head_check found in the bytes received so far. */
enum head {
	HEAD_LINE_MORE,   /* a valid beginning of the request line */
	HEAD_MORE,        /* a valid request line and fields so far */
	HEAD_OK,          /* a complete head MHD will take */
	HEAD_BAD,         /* refuse it: *status and *why say how */
};

/* A Content-Length value (OWS and the CR around it included) MHD will
 * take: digits only. More than 19 digits is over every cap here (MHD
 * itself only refuses what does not fit 64 bits); the caps of the routes
 * are checked in first_call. */
static enum head check_length(const unsigned char *v, size_t n, unsigned *status,
			      const char **why)
{
	size_t i;

	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r'))
		n--;
	for (i = 0; i < n; i++)
		if (!digit(v[i]))
			break;
	if (n == 0 || i < n) {
		*status = MHD_HTTP_BAD_REQUEST;
		*why = "malformed Content-Length";
		return HEAD_BAD;
	}
	if (n > 19) {
		*status = MHD_HTTP_CONTENT_TOO_LARGE;
		*why = "body over the limit";
		return HEAD_BAD;
	}
	return HEAD_OK;
}

/* Check the first request's head in p[0..n), the bytes received so far,
 * against the grammar of RFC 9112 as MHD parses it: a request line
 * `method SP target SP HTTP/1.x`, then `name: value` lines (a line
 * starting with white space continues the previous value, as MHD allows),
 * then an empty line; CRLF or a bare LF ends a line. Whatever can no
 * longer become a valid head is refused at once, without waiting for more.
 * *why is plain text without quotes or backslashes (door_answer relies on
 * it). */
static enum head head_check(const unsigned char *p, size_t n, unsigned *status,
			    const char **why)
{
	static const char proto[] = "HTTP/";
	size_t i = 0, start, fields = 0, k;

	*status = MHD_HTTP_BAD_REQUEST;
	*why = "malformed request line";
	/* RFC 9112 2.2: empty lines before a request line are ignored. */
	while (i < n && i < 8 && (p[i] == '\r' || p[i] == '\n'))
		i++;
	start = i;
	while (i < n && tchar(p[i]) && i - start < 32)
		i++;
	if (i == n)
		return HEAD_LINE_MORE;
	if (i == start || p[i] != ' ')
		return HEAD_BAD;
	start = ++i;
	/* The target: visible ASCII, or bytes past it (MHD takes them). */
	while (i < n && p[i] > ' ' && p[i] != 0x7f)
		i++;
	if (i == n)
		return HEAD_LINE_MORE;
	if (i == start || p[i] != ' ')
		return HEAD_BAD;
	i++;
	for (k = 0; k < 5; k++, i++) {
		if (i == n)
			return HEAD_LINE_MORE;
		if (p[i] != (unsigned char)proto[k])
			return HEAD_BAD;
	}
	if (i == n)
		return HEAD_LINE_MORE;
	if (digit(p[i]) && p[i] != '1') {
		*status = MHD_HTTP_HTTP_VERSION_NOT_SUPPORTED;
		*why = "only HTTP/1.0 and HTTP/1.1 are served";
		return HEAD_BAD;
	}
	if (p[i++] != '1')
		return HEAD_BAD;
	if (i == n)
		return HEAD_LINE_MORE;
	if (p[i++] != '.')
		return HEAD_BAD;
	if (i == n)
		return HEAD_LINE_MORE;
	if (!digit(p[i++]))
		return HEAD_BAD;
	if (i < n && p[i] == '\r')
		i++;
	if (i == n)
		return HEAD_LINE_MORE;
	if (p[i++] != '\n')
		return HEAD_BAD;

	*why = "malformed header field";
	for (;;) {
		const unsigned char *name = NULL;
		size_t namelen = 0, v;

		if (i < n && p[i] == '\r')
			i++;
		if (i == n)
			return HEAD_MORE;
		if (p[i] == '\n')
			return HEAD_OK;
		if (p[i - 1] == '\r')
			return HEAD_BAD;        /* a CR not ending a line */
		if (p[i] == ' ' || p[i] == '\t') {
			if (!fields)
				return HEAD_BAD;  /* continues no field */
		} else {
			start = i;
			while (i < n && tchar(p[i]))
				i++;
			if (i == n)
				return HEAD_MORE;
			if (i == start || p[i] != ':')
				return HEAD_BAD;
			if (++fields > HTTP_HEAD_FIELDS_MAX) {
				*status = MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
				*why = "more than 100 header fields";
				return HEAD_BAD;
			}
			name = p + start;
			namelen = i - start;
			i++;
		}
		v = i;
		while (i < n && p[i] != '\n') {
			if (p[i] == '\0' || (p[i] == '\r' && i + 1 < n && p[i + 1] != '\n'))
				return HEAD_BAD;
			i++;
		}
		if (i == n)
			return HEAD_MORE;
		if (namelen == 14 && !strncasecmp((const char *)name, "Content-Length", 14) &&
		    check_length(p + v, i - v, status, why) == HEAD_BAD)
			return HEAD_BAD;
		i++;
	}
}

/* The key of the address in ss (see struct gate_addr). */
static void addr_key(unsigned char key[9], const struct sockaddr_storage *ss)
{
	memset(key, 0, 9);
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		key[0] = 4;
		memcpy(key + 1, &s4->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			key[0] = 4;
			memcpy(key + 1, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, s6->sin6_addr.s6_addr, 8);
		}
	}
}

/* The address of ss as text, for log lines. */
static void addr_text(char *out, size_t size, const struct sockaddr_storage *ss)
{
	const void *a = ss->ss_family == AF_INET6
		? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
		: (const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	if (!inet_ntop(ss->ss_family, a, out, (socklen_t)size))
		snprintf(out, size, "?");
}

/* Where the entry for key is, or would be linked (h->lock held). */
static struct gate_addr **addr_slot_locked(vd_http *h, const unsigned char key[9])
{
	struct gate_addr **pp;
	uint32_t x = 2166136261u;    /* FNV-1a */
	size_t i;

	for (i = 0; i < 9; i++)
		x = (x ^ key[i]) * 16777619u;
	pp = &h->addrs[x % HTTP_ADDR_BUCKETS];
	while (*pp && memcmp((*pp)->key, key, 9) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Forget a no longer used address unless a token vouches for it still
 * (h->lock held). */
static void addr_drop_idle_locked(vd_http *h, struct gate_addr *a, int64_t now)
{
	struct gate_addr **pp;

	if (a->conns || a->known_until > now)
		return;
	pp = addr_slot_locked(h, a->key);
	*pp = a->next;
	free(a);
	h->naddrs--;
}

/* Forget every address that addr_drop_idle_locked would (h->lock held):
 * known addresses expire while unused, and nobody else would notice. */
static void addr_sweep_locked(vd_http *h, int64_t now)
{
	size_t b;

	for (b = 0; b < HTTP_ADDR_BUCKETS; b++) {
		struct gate_addr **pp = &h->addrs[b];

		while (*pp) {
			struct gate_addr *a = *pp;

			if (a->conns || a->known_until > now) {
				pp = &a->next;
				continue;
			}
			*pp = a->next;
			free(a);
			h->naddrs--;
		}
	}
}

static void list_push(struct gate_conn **head, struct gate_conn *gc)
{
	gc->prev = NULL;
	gc->next = *head;
	if (*head)
		(*head)->prev = gc;
	*head = gc;
}

static void list_unlink(struct gate_conn **head, struct gate_conn *gc)
{
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		*head = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	gc->prev = gc->next = NULL;
}

/* Stop counting gc (h->lock held); the caller frees it. */
static void conn_release_locked(vd_http *h, struct gate_conn *gc, int64_t now)
{
	h->conns--;
	if (gc->stranger)
		h->strangers--;
	gc->addr->conns--;
	addr_drop_idle_locked(h, gc->addr, now);
}

/* Admit the connection fd from ss and count it, or say why not (NULL).
 * The rules are those at the top of this file. */
static struct gate_conn *gate_admit(vd_http *h, int fd, const struct sockaddr_storage *ss,
				    socklen_t salen, int64_t now, const char **why)
{
	unsigned char key[9];
	struct gate_addr **pp, *a;
	struct gate_conn *gc = NULL, *s, *next;
	bool known;

	addr_key(key, ss);
	pthread_mutex_lock(&h->lock);
	/* A connection handed to MHD that MHD dropped without starting it
	 * cannot hold this descriptor any more, since accept() just reused
	 * it: stop counting it. (MHD does that only when out of memory.) */
	for (s = h->handed; s; s = next) {
		next = s->next;
		if (s->fd == fd) {
			list_unlink(&h->handed, s);
			conn_release_locked(h, s, now);
			free(s);
		}
	}
	if (h->naddrs >= 2 * h->max_conns + HTTP_ADDR_BUCKETS)
		addr_sweep_locked(h, now);
	pp = addr_slot_locked(h, key);
	a = *pp;
	known = a && a->known_until > now;
	if (h->conns >= h->max_conns) {
		*why = "the server is at its connection limit";
		goto out;
	}
	if (!known && h->strangers >= h->max_conns - h->reserve) {
		*why = "too many connections from addresses that presented no token";
		goto out;
	}
	if (!known && a && a->conns >= h->max_per_ip) {
		*why = "too many connections from this address";
		goto out;
	}
	gc = calloc(1, sizeof(*gc));
	if (gc && !a) {
		a = calloc(1, sizeof(*a));
		if (a) {
			memcpy(a->key, key, sizeof(a->key));
			*pp = a;
			h->naddrs++;
		}
	}
	if (!gc || !a) {
		free(gc);
		gc = NULL;
		*why = "out of memory";
		goto out;
	}
	gc->fd = fd;
	gc->where = GATE_AT_DOOR;
	gc->addr = a;
	gc->stranger = !known;
	gc->deadline = now + (int64_t)h->idle_s * 1000;
	memcpy(&gc->sa, ss, sizeof(gc->sa));
	gc->salen = salen;
	a->conns++;
	h->conns++;
	if (gc->stranger)
		h->strangers++;
out:
	pthread_mutex_unlock(&h->lock);
	return gc;
}

/* h->unauth is kept in deadline order; connections arrive at MHD about in
 * accept order, so the place is found from the tail in a step or two. */
static void unauth_insert_locked(vd_http *h, struct gate_conn *gc)
{
	struct gate_conn *after = h->unauth_tail;

	while (after && after->deadline > gc->deadline)
		after = after->prev;
	gc->prev = after;
	gc->next = after ? after->next : h->unauth_head;
	if (gc->next)
		gc->next->prev = gc;
	else
		h->unauth_tail = gc;
	if (after)
		after->next = gc;
	else
		h->unauth_head = gc;
}

static void unauth_unlink_locked(vd_http *h, struct gate_conn *gc)
{
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		h->unauth_head = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	else
		h->unauth_tail = gc->prev;
	gc->prev = gc->next = NULL;
}

/* A request on c presented a valid token: the connection may idle longer,
 * stops counting as a stranger's, and its address is known from now on. */
static void gate_authed(vd_http *h, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct gate_conn *gc = ci ? ci->socket_context : NULL;

	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
				  (unsigned)HTTP_AUTH_TIMEOUT_S);
	if (!gc)
		return;
	pthread_mutex_lock(&h->lock);
	if (gc->stranger) {
		gc->stranger = false;
		h->strangers--;
	}
	if (gc->where == GATE_UNAUTH) {
		unauth_unlink_locked(h, gc);
		gc->where = GATE_IN_MHD;
	}
	gc->addr->known_until = vd_mono_ms() + HTTP_KNOWN_TTL_MS;
	pthread_mutex_unlock(&h->lock);
}

/* MHD started a connection the door handed over (it becomes the socket
 * context), or closed one (it stops being counted). */
static void on_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		      enum MHD_ConnectionNotificationCode code)
{
	vd_http *h = cls;
	struct gate_conn *gc;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		pthread_mutex_lock(&h->lock);
		for (gc = h->handed; gc && ci; gc = gc->next)
			if (gc->fd == ci->connect_fd)
				break;
		if (gc && ci) {
			list_unlink(&h->handed, gc);
			gc->where = GATE_UNAUTH;
			unauth_insert_locked(h, gc);
		} else {
			gc = NULL;
		}
		pthread_mutex_unlock(&h->lock);
		*socket_context = gc;
		return;
	}
	/* MHD calls this before it closes the socket, so while gc is on
	 * h->unauth under the lock, its fd is still this connection's (which
	 * door_timers relies on). */
	gc = *socket_context;
	if (!gc)
		return;
	*socket_context = NULL;
	pthread_mutex_lock(&h->lock);
	if (gc->where == GATE_UNAUTH)
		unauth_unlink_locked(h, gc);
	conn_release_locked(h, gc, vd_mono_ms());
	pthread_mutex_unlock(&h->lock);
	free(gc);
}

/* The rest runs in the door thread only (and in vd_http_stop once the
 * thread has been joined). */

/* Log a refusal by the door (status 0: closed without an answer). */
static void door_log(vd_http *h, const struct sockaddr_storage *ss, unsigned status,
		     const char *why)
{
	char addr[INET6_ADDRSTRLEN];

	if (!log_allowed(h))
		return;
	addr_text(addr, sizeof(addr), ss);
	if (status)
		vd_warn("http: connection from %s -> %u: %s", addr, status, why);
	else
		vd_warn("http: connection from %s closed: %s", addr, why);
}

/* Answer {"error": why} and say the connection closes. Nothing was sent on
 * it yet, so its send buffer takes these few hundred bytes at once. Over
 * TLS there is nothing the door can say: it only closes. */
static void door_answer(vd_http *h, int fd, unsigned status, const char *why)
{
	char body[256], msg[768], retry[48] = "", date[64] = "";
	time_t now = time(NULL);
	ssize_t ignored;
	struct tm tm;
	int bn, mn;

	if (h->tls)
		return;
	bn = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", why);
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		snprintf(retry, sizeof(retry), "Retry-After: %u\r\n", h->idle_s);
	/* RFC 9110 6.6.1: a server with a clock sends Date (as MHD does). */
	if (gmtime_r(&now, &tm))
		strftime(date, sizeof(date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	mn = snprintf(msg, sizeof(msg),
		      "HTTP/1.1 %u %s\r\n%sContent-Type: application/json\r\n"
		      "Content-Length: %d\r\nConnection: close\r\n%s\r\n%s",
		      status, MHD_get_reason_phrase_for(status), date, bn, retry, body);
	if (bn <= 0 || (size_t)bn >= sizeof(body) || mn <= 0 || (size_t)mn >= sizeof(msg))
		return;
	ignored = send(fd, msg, (size_t)mn, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)ignored;
}

/* Close fd after reading what the client already sent (a few buffers'
 * worth): closing with unread bytes would send a reset, which can make the
 * client drop the answer before reading it. */
static void drain_close(vd_http *h, int fd)
{
	int i;

	for (i = 0; i < 4; i++)
		if (recv(fd, h->peek, sizeof(h->peek), MSG_DONTWAIT) <= 0)
			break;
	close(fd);
}

/* Close a connection held at the door and stop counting it. */
static void door_close(vd_http *h, struct gate_conn *gc)
{
	epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, gc->fd, NULL);
	drain_close(h, gc->fd);
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		h->queue_head = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	else
		h->queue_tail = gc->prev;
	pthread_mutex_lock(&h->lock);
	conn_release_locked(h, gc, vd_mono_ms());
	pthread_mutex_unlock(&h->lock);
	free(gc);
}

/* Give a connection whose first head (or first TLS bytes) arrived to MHD.
 * It goes on h->handed first: MHD may start it, in its own thread, before
 * MHD_add_connection returns. */
static void door_handover(vd_http *h, struct gate_conn *gc)
{
	epoll_ctl(h->epoll_fd, EPOLL_CTL_DEL, gc->fd, NULL);
	if (gc->prev)
		gc->prev->next = gc->next;
	else
		h->queue_head = gc->next;
	if (gc->next)
		gc->next->prev = gc->prev;
	else
		h->queue_tail = gc->prev;
	pthread_mutex_lock(&h->lock);
	gc->where = GATE_HANDED;
	list_push(&h->handed, gc);
	pthread_mutex_unlock(&h->lock);
	if (MHD_add_connection(h->d, gc->fd, (const struct sockaddr *)&gc->sa,
			       gc->salen) == MHD_YES)
		return;
	/* MHD refused it, closed the socket and logged why. With MHD's own
	 * thread, a refusal comes before MHD could have started it, so gc is
	 * still ours and on h->handed. */
	pthread_mutex_lock(&h->lock);
	if (gc->where == GATE_HANDED) {
		list_unlink(&h->handed, gc);
		conn_release_locked(h, gc, vd_mono_ms());
		free(gc);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Bytes (or the end) arrived on a connection at the door. */
static void door_readable(vd_http *h, struct gate_conn *gc, uint32_t events)
{
	char whybuf[64];
	const char *why = NULL;
	unsigned status = 0;
	ssize_t n;

	/* Peeked, not read: MHD reads the head again after the handover. */
	n = recv(gc->fd, h->peek, h->tls ? 1 : sizeof(h->peek), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		if (events & (EPOLLERR | EPOLLHUP))
			door_close(h, gc);
		return;
	}
	if (n <= 0) {
		/* Gone without sending anything: nobody to answer. */
		door_close(h, gc);
		return;
	}
	if (h->tls) {
		door_handover(h, gc);
		return;
	}
	switch (head_check(h->peek, (size_t)n, &status, &why)) {
	case HEAD_OK:
		door_handover(h, gc);
		return;
	case HEAD_BAD:
		break;
	case HEAD_LINE_MORE:
		if ((size_t)n >= sizeof(h->peek)) {
			snprintf(whybuf, sizeof(whybuf), "request line over %zu bytes",
				 sizeof(h->peek));
			status = MHD_HTTP_URI_TOO_LONG;
			why = whybuf;
			break;
		}
		/* fall through */
	case HEAD_MORE:
		if ((size_t)n >= sizeof(h->peek)) {
			snprintf(whybuf, sizeof(whybuf), "request head over %zu bytes",
				 sizeof(h->peek));
			status = MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE;
			why = whybuf;
			break;
		}
		if (!(events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			return;         /* wait for the rest */
		status = MHD_HTTP_BAD_REQUEST;
		why = "the request head ends before its empty line";
		break;
	}
	door_log(h, &gc->sa, status, why);
	door_answer(h, gc->fd, status, why);
	door_close(h, gc);
}

/* Accept what the backlog holds (a bounded batch, so that the door also
 * gets to the connections it holds), admitting or refusing each. */
static void door_accept(vd_http *h)
{
	int i;

	for (i = 0; i < 256; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct epoll_event ev;
		struct gate_conn *gc;
		const char *why = NULL;
		int fd = accept4(h->listen_fd, (struct sockaddr *)&ss, &sl,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				int e = errno;

				if (log_allowed(h))
					vd_warn("http: cannot accept a connection: %s; pausing %d ms",
						strerror(e), HTTP_ACCEPT_PAUSE_MS);
				memset(&ev, 0, sizeof(ev));
				ev.data.ptr = &h->listen_fd;
				epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, h->listen_fd, &ev);
				h->accept_paused_until = vd_mono_ms() + HTTP_ACCEPT_PAUSE_MS;
			} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				vd_warn("http: cannot accept a connection: %s", strerror(errno));
			}
			return;
		}
		gc = gate_admit(h, fd, &ss, sl, vd_mono_ms(), &why);
		if (!gc) {
			door_log(h, &ss, MHD_HTTP_SERVICE_UNAVAILABLE, why);
			door_answer(h, fd, MHD_HTTP_SERVICE_UNAVAILABLE, why);
			drain_close(h, fd);
			continue;
		}
		gc->prev = h->queue_tail;
		gc->next = NULL;
		if (h->queue_tail)
			h->queue_tail->next = gc;
		else
			h->queue_head = gc;
		h->queue_tail = gc;
		/* Edge-triggered: a peek leaves the bytes in the socket, so a
		 * level-triggered wait would report them again and again. Each
		 * new arrival is an edge; one already there when it is added
		 * is reported too. */
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = gc;
		if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, fd, &ev)) {
			vd_warn("http: cannot watch a connection: %s", strerror(errno));
			door_close(h, gc);
		}
	}
}

/* Shut down the first connection in MHD that is past its deadline without
 * a valid token (true if there was one). MHD's thread then sees the end
 * of the stream and closes it. Only this bounds a TLS client that trickles
 * a byte now and then, each of which restarts MHD's inactivity timeout. */
static bool door_reap(vd_http *h, int64_t now, int64_t *next)
{
	struct sockaddr_storage sa;
	struct gate_conn *gc;
	char why[96];

	pthread_mutex_lock(&h->lock);
	gc = h->unauth_head;
	if (gc && gc->deadline <= now) {
		unauth_unlink_locked(h, gc);
		gc->where = GATE_IN_MHD;
		shutdown(gc->fd, SHUT_RDWR);
		memcpy(&sa, &gc->sa, sizeof(sa));
	} else {
		if (gc && (*next < 0 || gc->deadline < *next))
			*next = gc->deadline;
		gc = NULL;
	}
	pthread_mutex_unlock(&h->lock);
	if (!gc)
		return false;
	snprintf(why, sizeof(why), "no request with a valid token within %u s", h->idle_s);
	door_log(h, &sa, 0, why);
	return true;
}

/* Close the connections past their deadline, resume accepting after a
 * pause, flush the log throttle; returns the ms until any of that is due
 * next (-1: nothing is). */
static int door_timers(vd_http *h)
{
	char why[96];
	int64_t now = vd_mono_ms(), next = -1, due;

	while (h->queue_head && h->queue_head->deadline <= now) {
		struct gate_conn *gc = h->queue_head;

		snprintf(why, sizeof(why), "no complete request within %u s", h->idle_s);
		door_log(h, &gc->sa, h->tls ? 0 : MHD_HTTP_REQUEST_TIMEOUT, why);
		door_answer(h, gc->fd, MHD_HTTP_REQUEST_TIMEOUT, why);
		door_close(h, gc);
	}
	if (h->queue_head)
		next = h->queue_head->deadline;
	while (door_reap(h, now, &next))
		;
	if (h->accept_paused_until && h->accept_paused_until <= now) {
		struct epoll_event ev;

		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.ptr = &h->listen_fd;
		epoll_ctl(h->epoll_fd, EPOLL_CTL_MOD, h->listen_fd, &ev);
		h->accept_paused_until = 0;
	}
	if (h->accept_paused_until && (next < 0 || h->accept_paused_until < next))
		next = h->accept_paused_until;
	due = log_flush(h, now, false);
	if (due >= 0 && (next < 0 || due < next))
		next = due;
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
}

static void *door_main(void *arg)
{
	vd_http *h = arg;
	struct epoll_event ev[64];

	for (;;) {
		int n = epoll_wait(h->epoll_fd, ev, 64, door_timers(h)), i;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			vd_err("http: epoll_wait: %s; no more connections are accepted",
			       strerror(errno));
			return NULL;
		}
		/* Each descriptor appears once per batch, and only its own
		 * event frees its gate_conn, so no pointer here is stale. */
		for (i = 0; i < n; i++) {
			void *p = ev[i].data.ptr;

			if (p == &h->wake_fd)
				return NULL;
			if (p == &h->listen_fd)
				door_accept(h);
			else
				door_readable(h, p, ev[i].events);
		}
	}
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

/* The door's listening socket on ai; *port gets the bound port. Like MHD's
 * own: SO_REUSEADDR, so that a restarted daemon binds while connections of
 * the last one linger in TIME_WAIT, and an IPv6 address serves IPv6 only. */
static int listen_on(int *fd_out, int *port, const struct addrinfo *ai)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd, one = 1, rc = 0;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    (ai->ai_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one))) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN) ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		rc = -errno;
		goto out;
	}
	*port = ntohs(ss.ss_family == AF_INET6
		      ? ((const struct sockaddr_in6 *)&ss)->sin6_port
		      : ((const struct sockaddr_in *)&ss)->sin_port);
	*fd_out = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* max_conns, lowered to what RLIMIT_NOFILE leaves after HTTP_FDS_SPARE:
 * every connection is a descriptor, and running out of them would fail
 * the store and the mount, not only the server. */
static unsigned fit_conns(unsigned want, bool asked)
{
	struct rlimit rl;
	rlim_t fds = 1024, room;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fds = rl.rlim_cur;
	room = fds > HTTP_FDS_SPARE + 16 ? fds - HTTP_FDS_SPARE : 16;
	if (want > room) {
		if (asked)
			vd_warn("http: %u connections asked, but the file descriptor limit "
				"(%llu) leaves room for %llu", want,
				(unsigned long long)fds, (unsigned long long)room);
		want = (unsigned)room;
	}
	return want;
}

/* Free h and whatever of it was set up; the door thread is not running. */
static void http_free(vd_http *h)
{
	struct gate_conn *gc;
	size_t b;

	if (h->d)
		MHD_stop_daemon(h->d);
	while ((gc = h->handed)) {
		h->handed = gc->next;
		free(gc);
	}
	for (b = 0; b < HTTP_ADDR_BUCKETS; b++) {
		struct gate_addr *a, *next;

		for (a = h->addrs[b]; a; a = next) {
			next = a->next;
			free(a);
		}
	}
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	if (h->epoll_fd >= 0)
		close(h->epoll_fd);
	if (h->wake_fd >= 0)
		close(h->wake_fd);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int vd_http_start_opts(vd_http **out, int *bound_port, vd_engine *e,
		       const struct vd_http_opts *o)
{
	struct MHD_OptionItem tls[3];
	struct addrinfo *ai = NULL;
	struct epoll_event ev;
	vd_http *h = NULL;
	unsigned flags;
	int rc, port = 0;

	*out = NULL;
	if ((o->cert_pem != NULL) != (o->key_pem != NULL) || o->idle_timeout_s > 86400)
		return -EINVAL;
	if (o->cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		vd_err("http: this libmicrohttpd was built without TLS");
		return -ENOTSUP;
	}
	rc = resolve(&ai, o->host, o->port);
	if (rc)
		goto fail;
	h = calloc(1, sizeof(*h));
	if (!h) {
		rc = -ENOMEM;
		goto fail;
	}
	h->e = e;
	h->listen_fd = h->epoll_fd = h->wake_fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	atomic_init(&h->stopping, false);
	atomic_init(&h->in_lease, 0);
	h->tls = o->cert_pem != NULL;
	h->idle_s = o->idle_timeout_s ? o->idle_timeout_s : VD_HTTP_IDLE_TIMEOUT_S;
	h->max_conns = fit_conns(o->max_conns ? o->max_conns : VD_HTTP_MAX_CONNS,
				 o->max_conns != 0);
	h->max_per_ip = o->max_per_ip ? o->max_per_ip : VD_HTTP_MAX_PER_IP;
	h->reserve = h->max_conns / 4;
	h->log_window = vd_mono_ms();

	rc = listen_on(&h->listen_fd, &port, ai);
	if (rc) {
		vd_err("http: cannot listen on %s:%d: %s",
		       o->host && *o->host ? o->host : "127.0.0.1", o->port, strerror(-rc));
		goto fail;
	}
	/* One thread per connection because a lease long-poll blocks inside
	 * vd_engine_api_lease for up to 30 s: with a shared polling thread
	 * (or a small pool) a handful of idle executors would stall every
	 * other request. The door keeps connections that sent no request
	 * yet off those threads, and the limits bound them. MHD_USE_AUTO
	 * picks poll(), which, unlike select(), has no FD_SETSIZE ceiling.
	 * No listening socket (the door has it); MHD_USE_ITC so that MHD's
	 * thread wakes for each connection the door adds. */
	flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_AUTO | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
	/* MHD copies neither: the PEM strings must outlive the daemon, which
	 * the caller guarantees (vdfsd keeps them until it exits). */
	if (o->cert_pem) {
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)o->key_pem };
		tls[1] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)o->cert_pem };
		tls[2] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	} else {
		tls[0] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
	}
	/* The logger goes first so that MHD's complaints about the options
	 * that follow reach it too. MHD's connection limit is only a backstop
	 * above the door's. Its timeout is the one for connections that have
	 * not presented a valid token (gate_authed lengthens it). */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
				MHD_OPTION_CONNECTION_LIMIT, h->max_conns + 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, h->idle_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_POOL_SIZE,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_NOTIFY_CONNECTION, on_notify, h,
				MHD_OPTION_ARRAY, tls,
				MHD_OPTION_END);
	if (!h->d) {
		vd_err("http: libmicrohttpd did not start (see above)");
		rc = -EIO;
		goto fail;
	}
	h->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->epoll_fd < 0 || h->wake_fd < 0) {
		rc = -errno;
		vd_err("http: cannot set up the connection loop: %s", strerror(-rc));
		goto fail;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &h->listen_fd;
	if (epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->listen_fd, &ev) == 0) {
		ev.data.ptr = &h->wake_fd;
		rc = epoll_ctl(h->epoll_fd, EPOLL_CTL_ADD, h->wake_fd, &ev) ? -errno : 0;
	} else {
		rc = -errno;
	}
	if (!rc)
		rc = -pthread_create(&h->door, NULL, door_main, h);
	if (rc) {
		vd_err("http: cannot start the connection loop: %s", strerror(-rc));
		goto fail;
	}
	h->door_running = true;
	vd_info("http: at most %u connections; %u per address without a recent token, "
		"%u kept for known addresses; %u s to send a first request",
		h->max_conns, h->max_per_ip, h->reserve, h->idle_s);
	if (bound_port)
		*bound_port = port;
	freeaddrinfo(ai);
	*out = h;
	return 0;
fail:
	if (ai)
		freeaddrinfo(ai);
	if (h)
		http_free(h);
	return rc;
}

int vd_http_start(vd_http **out, int *bound_port, vd_engine *e,
		  const char *host, int port)
{
	struct vd_http_opts o = { .host = host, .port = port };

	return vd_http_start_opts(out, bound_port, e, &o);
}

int vd_http_start_tls(vd_http **out, int *bound_port, vd_engine *e,
		      const char *host, int port, const char *cert_pem,
		      const char *key_pem)
{
	struct vd_http_opts o = {
		.host = host, .port = port, .cert_pem = cert_pem, .key_pem = key_pem,
	};

	return vd_http_start_opts(out, bound_port, e, &o);
}

void vd_http_stop(vd_http *h)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint64_t one = 1;
	ssize_t ignored;
	int i;

	if (!h)
		return;
	atomic_store(&h->stopping, true);
	/* No new connections: stop the door and drop those it holds. */
	ignored = write(h->wake_fd, &one, sizeof(one));
	(void)ignored;
	pthread_join(h->door, NULL);
	while (h->queue_head)
		door_close(h, h->queue_head);
	log_flush(h, vd_mono_ms(), true);
	/* Wake until no long-poll is left in the engine (bounded: 5 s), so
	 * MHD_stop_daemon, which joins every connection thread, returns
	 * promptly. */
	for (i = 0; i < 250; i++) {
		vd_engine_wake_all(h->e);
		if (atomic_load(&h->in_lease) == 0)
			break;
		nanosleep(&ts, NULL);
	}
	http_free(h);
}
