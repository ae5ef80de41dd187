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
 * and a new executor's: register, status, metrics, revoke, the operator
 * routes (runs, deletes, pins, gc, fsck), and reading code and chunks. An
 * executor's own token (from registration) leases, heartbeats and posts
 * results, only for its own leases (403 otherwise), and reads code and
 * chunks. Users' roles are in role_refusal (docs/users.md). A missing or
 * unknown token is 401. The dashboard's session cookie stands in for a
 * bearer token (http_web.c, which also checks CSRF); its pages and the
 * sign-in are the only requests taken without one.
 *
 * Connections, admission and the front door that answers malformed
 * requests in JSON are in http_door.c; chunks and results on the wire,
 * zstd-compressed where both ends can, in http_transfer.c.
 *
 * TLS (vd_http_start_tls) is libmicrohttpd's, over GnuTLS.
 */
#include <pwd.h>

#include "http_int.h"

enum route {
	ROUTE_REGISTER,
	ROUTE_LEASE,
	ROUTE_HEARTBEAT,
	ROUTE_RESULT,
	ROUTE_RESULTS,
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
	/* Acting on runs (docs/protocol.md, "Runs"). */
	ROUTE_RERUN,
	ROUTE_CANCEL,
	ROUTE_RESOLVE,
	/* The lifecycle (docs/protocol.md, "Lifecycle"). */
	ROUTE_DELETE_TASK,
	ROUTE_DELETE_VERSION,
	ROUTE_PIN,
	ROUTE_GC,
	ROUTE_FSCK,
	/* Users and tokens (docs/users.md). */
	ROUTE_TASKS,           /* GET lists, POST creates (owned by the caller) */
	ROUTE_USERS,           /* GET lists, POST adds */
	ROUTE_USER_REVOKE,
	ROUTE_ENROLL_TOKEN,
	ROUTE_DOWNLOAD,        /* a version's file (http_download.c) */
	ROUTE_ARCHIVE,         /* several versions' files as one zip (http_archive.c) */
	/* Submitting from another machine (docs/protocol.md, "Upload"). */
	ROUTE_UPLOAD_INFO,
	ROUTE_CHUNKS_MISSING,
	ROUTE_CHUNKS_PUT,
	ROUTE_VERSIONS,        /* GET lists a task's versions, POST commits one */
	ROUTE_FUNCTION,        /* GET, PUT a task's function */
	ROUTE_CONFIG,          /* GET, PUT a task's config */
	/* The dashboard (http_web.c, http_events.c). */
	ROUTE_SESSION,         /* POST signs in, GET says who, DELETE signs out */
	ROUTE_EVENTS,          /* the live event stream */
	ROUTE_DIFF_LINES,      /* /v1/diff/<a>/<b>/lines: a unified diff */
};

/* Per-request state, owned by MHD's connection-class pointer and freed in
 * the completion callback. Only the connection's own thread touches it. */
struct req {
	enum route route;
	char id[VD_ID_SIZE];
	char name[VD_EXECUTOR_NAME_SIZE];  /* ROUTE_REVOKE: the executor */
	char id2[VD_ID_SIZE];              /* ROUTE_DIFF: the second ID */
	char task[256];                    /* ROUTE_TASK_LOG and the lifecycle: the task */
	char *rest;                        /* ROUTE_DOWNLOAD: what, after the ID (malloc'd) */
	enum vd_role role;                 /* who the token says is asking */
	char who[VD_EXECUTOR_NAME_SIZE];   /* VD_ROLE_EXECUTOR: its name */
	/* Authenticated by the dashboard's session cookie, not a bearer
	 * token: then `session` is the session (its CSRF token). */
	bool by_cookie;
	struct vd_session_info session;
	struct vd_buf body;
	/* The body went over its cap: the rest is read and dropped, and the
	 * answer is 413 once the upload is done. */
	bool too_big;
};

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
/*
 * Who may do what (docs/users.md): NULL when role may take route with
 * method, else why not, for the 403. Submitters pass here for the routes
 * on one task; that the task is theirs is checked next (owner_refusal).
 */
static const char *role_refusal(enum vd_role role, enum route r, const char *method)
{
	bool op = role == VD_ROLE_ADMIN || role == VD_ROLE_OPERATOR;
	bool user = op || role == VD_ROLE_SUBMITTER || role == VD_ROLE_READER;
	bool ok;

	switch (r) {
	case ROUTE_LEASE:
	case ROUTE_HEARTBEAT:
	case ROUTE_RESULT:
	case ROUTE_RESULTS:
		if (role == VD_ROLE_EXECUTOR)
			return NULL;
		return op ? "this needs an executor's own token (register first)"
			  : "only an executor may do this";
	case ROUTE_CODE:
	case ROUTE_CHUNK:
		ok = role == VD_ROLE_EXECUTOR || op;
		break;
	case ROUTE_REGISTER:
		ok = op || role == VD_ROLE_ENROLL;
		break;
	case ROUTE_REVOKE:
		/* The operator revokes; an executor may only say it leaves,
		 * and only for itself (checked in handle). */
		ok = role == VD_ROLE_EXECUTOR || op;
		break;
	case ROUTE_STATUS:
	case ROUTE_SESSION:
	case ROUTE_EVENTS:
	case ROUTE_DIFF_LINES:
	case ROUTE_VERSION:
	case ROUTE_DOWNLOAD:
	case ROUTE_LINEAGE:
	case ROUTE_TASK_LOG:
	case ROUTE_DU:
	case ROUTE_DIFF:
	case ROUTE_RESOLVE:
		ok = user;
		break;
	case ROUTE_ARCHIVE:
		ok = user;
		break;
	case ROUTE_TASKS:
	case ROUTE_VERSIONS:
	case ROUTE_FUNCTION:
	case ROUTE_CONFIG:
		ok = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ? user
							      : op || role == VD_ROLE_SUBMITTER;
		break;
	case ROUTE_UPLOAD_INFO:
	case ROUTE_CHUNKS_MISSING:
	case ROUTE_CHUNKS_PUT:
		ok = op || role == VD_ROLE_SUBMITTER;
		break;
	case ROUTE_RERUN:
	case ROUTE_CANCEL:
	case ROUTE_DELETE_TASK:
	case ROUTE_DELETE_VERSION:
	case ROUTE_PIN:
		ok = op || role == VD_ROLE_SUBMITTER;
		break;
	default:
		/* metrics, gc, fsck, users, enrollment tokens */
		ok = op;
		break;
	}
	if (ok)
		return NULL;
	switch (role) {
	case VD_ROLE_EXECUTOR:
		return "an executor's token may not do this; use an operator's token";
	case VD_ROLE_ENROLL:
		return "an executor enrollment token may only register executors";
	case VD_ROLE_READER:
		return "role reader may not do this (it may browse and download)";
	case VD_ROLE_SUBMITTER:
		return "role submitter may not do this (only an operator may)";
	default:
		return "this token may not do this";
	}
}

/* A submitter changes only the tasks it owns. NULL when q may go on, else
 * the reason (in buf) for the 403. */
static const char *owner_refusal(char *buf, size_t size, vd_http *h, const struct req *q,
				 const char *method)
{
	char owner[VD_EXECUTOR_NAME_SIZE];

	if (q->role != VD_ROLE_SUBMITTER)
		return NULL;
	switch (q->route) {
	case ROUTE_VERSIONS:
	case ROUTE_FUNCTION:
	case ROUTE_CONFIG:
		if (!strcmp(method, MHD_HTTP_METHOD_GET))
			return NULL;
		break;
	case ROUTE_RERUN:
	case ROUTE_CANCEL:
	case ROUTE_DELETE_TASK:
	case ROUTE_DELETE_VERSION:
	case ROUTE_PIN:
		break;
	default:
		return NULL;
	}
	/* An unknown task is the handler's 404, as for anyone. */
	if (vd_engine_task_owner(owner, h->e, q->task) || !strcmp(owner, q->who))
		return NULL;
	snprintf(buf, size, "role submitter may change only its own tasks; task %s is %s%s",
		 q->task, owner[0] ? "owned by " : "not owned by a user (an operator's)",
		 owner);
	return buf;
}

/*
 * The lifecycle routes under /v1/tasks/<task>: the task itself (DELETE),
 * one of its versions (DELETE) and that version's pin (POST pins, DELETE
 * unpins), the paths that take more than one method or end in an ID.
 * True when url is one of them, with *rc 0 or -EINVAL (a bad ID).
 */
static bool lifecycle_route(struct req *q, const char **allowed, int *rc, const char *url)
{
	static const char prefix[] = "/v1/tasks/", versions[] = "/versions/";
	const char *rest, *slash, *id;
	size_t tlen, idlen;

	if (strncmp(url, prefix, sizeof(prefix) - 1) != 0)
		return false;
	rest = url + sizeof(prefix) - 1;
	slash = strchr(rest, '/');
	tlen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (tlen == 0 || tlen >= sizeof(q->task))
		return false;
	if (!slash) {
		q->route = ROUTE_DELETE_TASK;
		*allowed = MHD_HTTP_METHOD_DELETE;
	} else if (!strcmp(slash, "/versions") || !strcmp(slash, "/function") ||
		   !strcmp(slash, "/config")) {
		q->route = slash[1] == 'v' ? ROUTE_VERSIONS
			 : slash[1] == 'f' ? ROUTE_FUNCTION : ROUTE_CONFIG;
		*allowed = slash[1] == 'v' ? MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_POST
					   : MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_PUT;
		*rc = 0;
	} else if (!strncmp(slash, versions, sizeof(versions) - 1)) {
		id = slash + sizeof(versions) - 1;
		idlen = strcspn(id, "/");
		if (!strcmp(id + idlen, "/pin")) {
			q->route = ROUTE_PIN;
			*allowed = MHD_HTTP_METHOD_POST ", " MHD_HTTP_METHOD_DELETE;
		} else if (id[idlen] == '/' && id[idlen + 1]) {
			/* .../versions/<id>/result.csv, input[/<path>], meta.json,
			 * log, status: a download. */
			q->route = ROUTE_DOWNLOAD;
			*allowed = MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_HEAD;
			free(q->rest);
			if (!(q->rest = strdup(id + idlen + 1)))
				return false;
		} else if (id[idlen] == '\0') {
			q->route = ROUTE_DELETE_VERSION;
			*allowed = MHD_HTTP_METHOD_DELETE;
		} else {
			return false;
		}
		*rc = idlen == VD_ID_LEN ? 0 : -EINVAL;
		if (*rc == 0) {
			memcpy(q->id, id, VD_ID_LEN);
			q->id[VD_ID_LEN] = '\0';
			*rc = vd_id_valid(q->id) ? 0 : -EINVAL;
		}
	} else {
		return false;
	}
	memcpy(q->task, rest, tlen);
	q->task[tlen] = '\0';
	if (q->route == ROUTE_DELETE_TASK || q->route == ROUTE_VERSIONS ||
	    q->route == ROUTE_FUNCTION || q->route == ROUTE_CONFIG)
		*rc = 0;
	return true;
}

/* Is method one of allowed's ("POST" or "POST, DELETE")? */
static bool method_allowed(const char *method, const char *allowed)
{
	size_t n = strlen(method);
	for (const char *p = allowed; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && !strncmp(p, method, n))
			return true;
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return false;
}

/* Split url into a route and its ID. Returns 0, -ENOENT for an unknown path,
 * -EINVAL for a known path with a malformed ID. *allowed is the method the
 * route takes ("POST, DELETE" for one that takes two), as Allow says it. */
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
		{ "/v1/results", NULL, ROUTE_RESULTS, MHD_HTTP_METHOD_POST },
		{ "/v1/results/", "", ROUTE_RESULT, MHD_HTTP_METHOD_PUT },
		{ "/v1/code/", "", ROUTE_CODE, MHD_HTTP_METHOD_GET },
		/* Before "/v1/chunks/<id>", which would take "missing" for a bad ID. */
		{ "/v1/chunks/missing", NULL, ROUTE_CHUNKS_MISSING, MHD_HTTP_METHOD_POST },
		{ "/v1/chunks", NULL, ROUTE_CHUNKS_PUT, MHD_HTTP_METHOD_POST },
		{ "/v1/upload", NULL, ROUTE_UPLOAD_INFO, MHD_HTTP_METHOD_GET },
		{ "/v1/archive", NULL, ROUTE_ARCHIVE, MHD_HTTP_METHOD_GET },
		{ "/v1/chunks/", "", ROUTE_CHUNK, MHD_HTTP_METHOD_GET },
		{ "/v1/executors/", "", ROUTE_REVOKE, MHD_HTTP_METHOD_DELETE },
		{ "/v1/du", NULL, ROUTE_DU, MHD_HTTP_METHOD_GET },
		{ "/v1/versions/", "", ROUTE_VERSION, MHD_HTTP_METHOD_GET },
		{ "/v1/lineage/", "", ROUTE_LINEAGE, MHD_HTTP_METHOD_GET },
		{ "/v1/tasks/", "/log", ROUTE_TASK_LOG, MHD_HTTP_METHOD_GET },
		{ "/v1/tasks/", "/rerun", ROUTE_RERUN, MHD_HTTP_METHOD_POST },
		{ "/v1/tasks/", "/cancel", ROUTE_CANCEL, MHD_HTTP_METHOD_POST },
		{ "/v1/resolve/", "", ROUTE_RESOLVE, MHD_HTTP_METHOD_GET },
		{ "/v1/gc", NULL, ROUTE_GC, MHD_HTTP_METHOD_POST },
		{ "/v1/fsck", NULL, ROUTE_FSCK, MHD_HTTP_METHOD_POST },
		{ "/v1/tasks", NULL, ROUTE_TASKS, MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_POST },
		{ "/v1/users", NULL, ROUTE_USERS, MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_POST },
		{ "/v1/users/", "", ROUTE_USER_REVOKE, MHD_HTTP_METHOD_DELETE },
		{ "/v1/tokens/executor", NULL, ROUTE_ENROLL_TOKEN, MHD_HTTP_METHOD_POST },
		{ "/v1/session", NULL, ROUTE_SESSION,
		  MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_POST ", " MHD_HTTP_METHOD_DELETE },
		{ "/v1/events", NULL, ROUTE_EVENTS, MHD_HTTP_METHOD_GET },
	};
	size_t i;
	int rc = 0;

	if (lifecycle_route(q, allowed, &rc, url))
		return rc;

	/* /v1/diff/<a>/<b>[/lines]: the routes with two IDs. */
	if (!strncmp(url, "/v1/diff/", 9)) {
		const char *a = url + 9;
		size_t alen = strlen(a);
		q->route = ROUTE_DIFF;
		*allowed = MHD_HTTP_METHOD_GET;
		if (alen == 2 * VD_ID_LEN + 7 && !strcmp(a + 2 * VD_ID_LEN + 1, "/lines")) {
			q->route = ROUTE_DIFF_LINES;
			alen -= 6;
		}
		if (alen != 2 * VD_ID_LEN + 1 || a[VD_ID_LEN] != '/')
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
		if (q->route == ROUTE_TASK_LOG || q->route == ROUTE_RERUN ||
		    q->route == ROUTE_CANCEL) {
			/* A task name (MHD has already percent-decoded it). */
			if (idlen == 0 || idlen >= sizeof(q->task))
				return -EINVAL;
			memcpy(q->task, rest, idlen);
			q->task[idlen] = '\0';
			return 0;
		}
		if (q->route == ROUTE_REVOKE || q->route == ROUTE_USER_REVOKE) {
			/* A name, checked by the engine. */
			if (idlen == 0 || idlen >= sizeof(q->name))
				return -EINVAL;
			memcpy(q->name, rest, idlen);
			q->name[idlen] = '\0';
			return 0;
		}
		if (q->route == ROUTE_RESOLVE) {
			/* An ID prefix: 6 to 32 hex digits, checked by the engine. */
			if (idlen < 6 || idlen > VD_ID_LEN)
				return -EINVAL;
			memcpy(q->id, rest, idlen);
			q->id[idlen] = '\0';
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
	switch (r) {
	case ROUTE_RESULT:
		return HTTP_RESULT_MAX;
	case ROUTE_RESULTS:
		return HTTP_RESULTS_MAX;
	case ROUTE_CHUNKS_PUT:
		return HTTP_UPLOAD_MAX;
	case ROUTE_FUNCTION:
		return HTTP_FUNCTION_MAX;
	case ROUTE_VERSIONS:
		/* A manifest: some 70 bytes a chunk (a 64 GiB file at 1 MiB
		 * chunks), and a path and mode a file of a tree. */
		return HTTP_MANIFEST_MAX;
	default:
		return HTTP_JSON_MAX;
	}
}

/* ?offset=K&limit=N&state=WORD&q=TEXT of GET /v1/tasks/<task>/versions
 * (and /log). The strings stay MHD's, valid while the request is. */
static int log_filter_of(struct vd_log_filter *f, struct vd_buf *why, struct MHD_Connection *c)
{
	static const char *const nums[] = { "offset", "limit" };
	size_t *dst[] = { &f->offset, &f->limit };

	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < 2; i++) {
		const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, nums[i]);
		unsigned long long n;
		char *end;

		if (!v)
			continue;
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno || end == v || *end || *v == '-' || n > 1000000000ull) {
			vd_buf_addf(why, "%s must be a number of versions", nums[i]);
			return -EINVAL;
		}
		*dst[i] = (size_t)n;
	}
	f->state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	f->text = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "q");
	return 0;
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

/* Who submits what q uploads, for meta.json: the user; for STATE/token,
 * the user the daemon runs as, whose token it is. */
static char daemon_user_name[VD_BY_SIZE];
static pthread_once_t daemon_user_once = PTHREAD_ONCE_INIT;

static void daemon_user(void)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(daemon_user_name, sizeof(daemon_user_name), "%s", pw.pw_name);
	else
		snprintf(daemon_user_name, sizeof(daemon_user_name), "uid %u",
			 (unsigned)getuid());
}

static const char *submitter(const struct req *q)
{
	if (q->role != VD_ROLE_ADMIN)
		return q->who;
	pthread_once(&daemon_user_once, daemon_user);
	return daemon_user_name;
}

/* GET /v1/diff/<a>/<b>/lines[?path=P][&result=1]: the unified diff as
 * text, at most HTTP_DIFF_MAX bytes (cut at a line end, X-VDFS-Truncated). */
static enum MHD_Result diff_lines(vd_http *h, struct MHD_Connection *c, const struct req *q,
				  const char *method, const char *url)
{
	const char *path = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "path");
	const char *res = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "result");
	struct vd_buf text = VD_BUF_INIT(HTTP_DIFF_MAX), why = VD_BUF_INIT(4096);
	struct MHD_Response *r = NULL;
	enum MHD_Result ret;
	bool truncated = false;
	char *data = NULL;
	size_t len;
	int rc;

	if (res && strcmp(res, "1") && strcmp(res, "0")) {
		vd_buf_adds(&why, "'result' must be 1 or 0");
		rc = -EINVAL;
	} else {
		/* Large inputs take seconds with nothing on the wire. */
		http_door_patient(c, true);
		rc = vd_engine_api_diff_lines(&text, &truncated, &why, h->e, q->id, q->id2, path,
					      res && !strcmp(res, "1"), HTTP_DIFF_MAX);
		http_door_patient(c, false);
	}
	if (rc < 0) {
		ret = http_reply_engine_error(c, rc, method, url, &why);
		goto out;
	}
	data = vd_buf_detach(&text, &len);
	r = MHD_create_response_from_buffer(data ? len : 0, data ? data : (char *)"",
					    data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(data);
		ret = MHD_NO;
		goto out;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/x-diff; charset=utf-8");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	if (truncated)
		MHD_add_response_header(r, "X-VDFS-Truncated", "1");
	/* Users' bytes, like a download. */
	http_web_untrusted_headers(r);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
out:
	vd_buf_release(&text);
	vd_buf_release(&why);
	return ret;
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
		ret = http_reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, method, url,
				  "the daemon is shutting down", NULL);
		goto out;
	}
	if (q->route == ROUTE_SESSION) {
		ret = http_web_session(h, c, method, url, q->role, q->who,
				       q->by_cookie ? &q->session : NULL, q->body.data, q->body.len);
		goto out;
	}
	if (q->route == ROUTE_DIFF_LINES) {
		ret = diff_lines(h, c, q, method, url);
		goto out;
	}
	if (q->route == ROUTE_EVENTS) {
		uint64_t after;

		if (http_events_after(&after, c))
			ret = http_reply_error(c, MHD_HTTP_BAD_REQUEST, method, url,
					       "Last-Event-ID and since must be event numbers", NULL);
		else
			ret = http_events_reply(h, c, after);
		goto out;
	}
	if (q->route == ROUTE_CHUNK) {
		/* Raw, or the stored zstd frame with its own headers. */
		ret = http_chunk(h, c, method, url, q->id,
				 q->role == VD_ROLE_EXECUTOR ? q->who : NULL);
		goto out;
	}
	if (q->route == ROUTE_DOWNLOAD || q->route == ROUTE_ARCHIVE) {
		struct MHD_Response *r = NULL;
		unsigned status;

		rc = q->route == ROUTE_ARCHIVE
			? http_archive(&r, &status, &why, h->e, c)
			: http_download(&r, &status, &why, h->e, c, q->task, q->id, q->rest);
		if (rc < 0) {
			ret = http_reply_engine_error(c, rc, method, url, &why);
		} else {
			http_web_untrusted_headers(r);
			ret = MHD_queue_response(c, status, r);
			MHD_destroy_response(r);
		}
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
		/* The metadata line, then the output, raw or a zstd frame
		 * (http_transfer.c). */
		struct http_result res;

		if ((rc = http_result_parse(&res, &why, q->body.data, q->body.len)))
			break;
		body = res.meta;
		if ((rc = check_owner(h, q, &why)))
			break;
		rc = http_result_take(&reply, &why, h, q->id, &res);
		break;
	}
	case ROUTE_RESULTS:
		/* Several, each answered on its own (http_results.c). */
		rc = http_results_take(&reply, &why, h, q->who, q->body.data, q->body.len);
		break;
	case ROUTE_CODE:
		rc = vd_engine_api_code(&out, &why, h->e, q->id);
		break;
	case ROUTE_REVOKE:
		if (q->role != VD_ROLE_EXECUTOR) {
			rc = vd_engine_api_revoke(&reply, &why, h->e, q->name);
		} else if (strcmp(q->name, q->who)) {
			vd_buf_adds(&why, "an executor may only take itself off; "
				    "revoking needs the enrollment token");
			rc = -EPERM;
		} else {
			rc = vd_engine_api_leave(&reply, &why, h->e, q->name);
		}
		break;
	case ROUTE_STATUS:
		rc = vd_engine_api_status(&reply, h->e);
		break;
	case ROUTE_TASKS:
	case ROUTE_USERS:
	case ROUTE_ENROLL_TOKEN:
		if (q->route == ROUTE_TASKS && !strcmp(method, MHD_HTTP_METHOD_GET)) {
			rc = vd_engine_api_task_list(&reply, h->e);
			break;
		}
		if (q->route == ROUTE_USERS && !strcmp(method, MHD_HTTP_METHOD_GET)) {
			rc = vd_engine_api_user_list(&reply, h->e);
			break;
		}
		body = q->body.len ? parse_object(&why, q->body.data, q->body.len) : json_object();
		if (!body) {
			rc = -EINVAL;
			break;
		}
		if (q->route == ROUTE_TASKS)
			rc = vd_engine_api_task_create(&reply, &why, h->e,
						       q->role == VD_ROLE_ADMIN ? "" : q->who, body);
		else if (q->route == ROUTE_USERS)
			rc = vd_engine_api_user_add(&reply, &why, h->e, body);
		else
			rc = vd_engine_api_enroll_token(&reply, &why, h->e,
							q->role == VD_ROLE_ADMIN ? "" : q->who);
		break;
	case ROUTE_USER_REVOKE:
		rc = vd_engine_api_user_revoke(&reply, &why, h->e, q->name);
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
	case ROUTE_TASK_LOG: {
		struct vd_log_filter f;
		rc = log_filter_of(&f, &why, c);
		if (!rc)
			rc = vd_engine_api_task_log(&reply, &why, h->e, q->task, &f);
		break;
	}
	case ROUTE_DIFF:
		rc = vd_engine_api_diff(&reply, &why, h->e, q->id, q->id2);
		break;
	case ROUTE_RERUN:
	case ROUTE_CANCEL:
		/* {"data_id": ID} picks a version (default: latest);
		 * {"force": true} reruns every unit, memo or not. */
		body = q->body.len ? parse_object(&why, q->body.data, q->body.len) : json_object();
		if (!body) {
			rc = -EINVAL;
			break;
		}
		rc = q->route == ROUTE_RERUN ? vd_engine_api_rerun(&reply, &why, h->e, q->task, body)
					     : vd_engine_api_cancel(&reply, &why, h->e, q->task, body);
		break;
	case ROUTE_RESOLVE:
		rc = vd_engine_api_resolve(&reply, &why, h->e, q->id);
		break;
	case ROUTE_DELETE_TASK:
	case ROUTE_DELETE_VERSION:
		rc = vd_engine_api_delete(&reply, &why, h->e, q->task,
					  q->route == ROUTE_DELETE_VERSION ? q->id : NULL);
		break;
	case ROUTE_PIN:
		rc = vd_engine_api_pin(&reply, &why, h->e, q->task, q->id,
				       !strcmp(method, MHD_HTTP_METHOD_POST));
		break;
	case ROUTE_GC:
	case ROUTE_FSCK:
		/* {"dry_run"} or {"full", "repair"}; an empty body is {}. */
		body = q->body.len ? parse_object(&why, q->body.data, q->body.len) : json_object();
		if (!body) {
			rc = -EINVAL;
			break;
		}
		/* Minutes on a big store, with nothing sent meanwhile: the
		 * connection must not time out under it. */
		http_door_patient(c, true);
		rc = q->route == ROUTE_GC ? vd_engine_api_gc(&reply, &why, h->e, body)
					  : vd_engine_api_fsck(&reply, &why, h->e, body);
		http_door_patient(c, false);
		break;
	case ROUTE_METRICS:
		rc = vd_engine_api_metrics(&out, h->e);
		if (!rc)
			rc = vd_buf_addf(&out,
				"# HELP vdfs_http_received_bytes_total Request body bytes received.\n"
				"# TYPE vdfs_http_received_bytes_total counter\n"
				"vdfs_http_received_bytes_total %llu\n",
				(unsigned long long)atomic_load(&h->received));
		if (!rc)
			rc = vd_buf_addf(&out,
				"# HELP vdfs_event_streams Open GET /v1/events streams.\n"
				"# TYPE vdfs_event_streams gauge\n"
				"vdfs_event_streams %d\n",
				atomic_load(&h->event_streams));
		if (!rc)
			rc = http_transfer_metrics(&out, h);
		ctype = "text/plain; version=0.0.4; charset=utf-8";
		break;
	case ROUTE_UPLOAD_INFO:
		rc = vd_engine_api_upload_info(&reply, h->e);
		break;
	case ROUTE_CHUNKS_PUT:
		rc = vd_engine_api_chunks_put(&reply, &why, h->e, q->body.data, q->body.len);
		break;
	case ROUTE_CHUNKS_MISSING:
	case ROUTE_VERSIONS:
		if (!strcmp(method, MHD_HTTP_METHOD_GET)) {
			/* The versions: what /log lists. */
			struct vd_log_filter f;
			rc = log_filter_of(&f, &why, c);
			if (!rc)
				rc = vd_engine_api_task_log(&reply, &why, h->e, q->task, &f);
			break;
		}
		if (!(body = parse_object(&why, q->body.data, q->body.len))) {
			rc = -EINVAL;
			break;
		}
		if (q->route == ROUTE_CHUNKS_MISSING) {
			rc = vd_engine_api_chunks_missing(&reply, &why, h->e, body);
			break;
		}
		/* Reading a big file's chunks back takes seconds. */
		http_door_patient(c, true);
		rc = vd_engine_api_submit(&reply, &why, h->e, q->task, submitter(q), body);
		http_door_patient(c, false);
		break;
	case ROUTE_FUNCTION:
	case ROUTE_CONFIG:
		if (!strcmp(method, MHD_HTTP_METHOD_GET)) {
			if (!vd_engine_task_exists(h->e, q->task)) {
				vd_buf_addf(&why, "no task '%s'", q->task);
				rc = -ENOENT;
				break;
			}
			rc = q->route == ROUTE_FUNCTION
				? vd_engine_function_read(&out, h->e, q->task)
				: vd_engine_config_read(&out, h->e, q->task);
			ctype = q->route == ROUTE_CONFIG ? "text/plain; charset=utf-8" : ctype;
			break;
		}
		rc = q->route == ROUTE_FUNCTION
			? vd_engine_api_function_put(&reply, &why, h->e, q->task, q->body.data,
						     q->body.len)
			: vd_engine_api_config_put(&reply, &why, h->e, q->task, q->body.data,
						   q->body.len);
		break;
	default:
		rc = -EINVAL;
		break;
	}

	if (rc == -EAGAIN) {
		ret = http_reply_empty(c, MHD_HTTP_NO_CONTENT);
	} else if (rc < 0 && json_is_object(reply)) {
		/* A refusal with details (a commit's missing chunks). */
		vd_warn("http: %s %s -> %u: %s", method, url, http_status_of(rc), vd_buf_cstr(&why));
		json_object_set_new(reply, "error", json_string(vd_buf_cstr(&why)));
		ret = http_reply_json(c, http_status_of(rc), reply);
	} else if (rc < 0) {
		ret = http_reply_engine_error(c, rc, method, url, &why);
	} else if (q->route == ROUTE_CODE || q->route == ROUTE_METRICS ||
		   ((q->route == ROUTE_FUNCTION || q->route == ROUTE_CONFIG) &&
		    !strcmp(method, MHD_HTTP_METHOD_GET))) {
		size_t len;
		char *data = vd_buf_detach(&out, &len);

		ret = data ? http_reply_bytes(c, MHD_HTTP_OK, ctype, data, len) : MHD_NO;
	} else if (reply) {
		ret = http_reply_json(c, MHD_HTTP_OK, reply);
	} else {
		/* An engine call that succeeded without a reply: still JSON. */
		ret = http_reply_bytes(c, MHD_HTTP_OK, "application/json", strdup("{}"), 2);
	}
out:
	json_decref(body);
	json_decref(reply);
	vd_buf_release(&out);
	vd_buf_release(&why);
	return ret;
}

void http_door_authed(vd_http *h, struct MHD_Connection *c);

/* The first call for a request: only headers are known. Returns true with
 * *ret set when the request was answered (refused) already. */
static bool first_call(vd_http *h, struct MHD_Connection *c, struct req *q,
		       const char *method, const char *url, enum MHD_Result *ret)
{
	const char *allowed = NULL, *cl, *tok;
	bool sign_in = !strcmp(url, "/v1/session") && !strcmp(method, MHD_HTTP_METHOD_POST);
	int rc;

	/* The dashboard's pages and scripts are public (the page itself
	 * checks for a session), and signing in brings its token in the
	 * body: the only requests taken without a token. */
	if (http_web_is_page(url)) {
		*ret = http_web_page(h, c, method, url);
		return true;
	}
	if (sign_in) {
		q->route = ROUTE_SESSION;
		goto length;
	}
	/* A bearer token, else the dashboard's session cookie. A request
	 * that brings a wrong token is refused even with a good cookie: it
	 * meant the token. */
	tok = bearer(c);
	q->role = vd_engine_auth(q->who, h->e, tok);
	if (q->role == VD_ROLE_NONE && !tok) {
		q->role = http_web_cookie_auth(q->who, &q->session, h, c);
		q->by_cookie = q->role != VD_ROLE_NONE;
	}
	if (q->role == VD_ROLE_NONE) {
		/* Anyone can make these by the thousand: throttled. */
		*ret = http_reply_error_q(c, MHD_HTTP_UNAUTHORIZED, method, url,
				     "missing or wrong bearer token", NULL, !http_log_allowed(h));
		return true;
	}
	http_door_authed(h, c);
	/* A chunk can declare any size and MHD reads it without asking us,
	 * so a body must say its length up front (see the top of the file). */
	if (MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
		*ret = http_reply_error(c, MHD_HTTP_LENGTH_REQUIRED, method, url,
				   "send the body with a Content-Length; chunked "
				   "request bodies are not accepted", NULL);
		return true;
	}
	rc = route_of(q, &allowed, url);
	if (rc == -ENOENT) {
		*ret = http_reply_error(c, MHD_HTTP_NOT_FOUND, method, url, "no such path", NULL);
		return true;
	}
	if (!method_allowed(method, allowed)) {
		*ret = http_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, method, url,
				   "method not allowed here", allowed);
		return true;
	}
	if (rc == -EINVAL) {
		*ret = http_reply_error(c, MHD_HTTP_BAD_REQUEST, method, url,
				   q->route == ROUTE_REVOKE ? "bad executor name"
				   : "bad ID: want 32 lowercase hex digits", NULL);
		return true;
	}
	const char *no = role_refusal(q->role, q->route, method);
	char nobuf[512];
	if (!no)
		no = owner_refusal(nobuf, sizeof(nobuf), h, q, method);
	if (!no && q->by_cookie)
		no = http_web_csrf_refusal(h, c, method, &q->session);
	if (no) {
		*ret = http_reply_error(c, MHD_HTTP_FORBIDDEN, method, url, no, NULL);
		return true;
	}
length:
	/* A declared length over the cap is refused before a byte is read. */
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl) {
		char *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(cl, &end, 10);
		if (errno || end == cl || *end || n > body_cap(q->route)) {
			*ret = http_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, method, url,
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
		atomic_fetch_add(&h->received, (uint64_t)*upload_data_size);
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
		return http_reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, method, url,
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
	free(q->rest);
	free(q);
	*con_cls = NULL;
}

/* MHD's own diagnostics (mostly about broken connections, TLS handshakes
 * of strangers among them) go to our log as single lines, throttled. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct vd_buf b = VD_BUF_INIT(1024);
	va_list aq;

	if (!http_log_allowed(cls))
		return;
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
	vd_sessions_free(h->sessions);
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
	if ((rc = vd_sessions_new(&h->sessions)))
		goto fail;
	atomic_init(&h->stopping, false);
	atomic_init(&h->in_lease, 0);
	atomic_init(&h->received, 0);
	atomic_init(&h->chunk_sent, 0);
	atomic_init(&h->chunk_raw_sent, 0);
	atomic_init(&h->result_received, 0);
	atomic_init(&h->result_raw_received, 0);
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
	 * not presented a valid token (http_door_authed lengthens it). */
	h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h,
				MHD_OPTION_CONNECTION_LIMIT, h->max_conns + 64u,
				MHD_OPTION_CONNECTION_TIMEOUT, h->idle_s,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_POOL_SIZE,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_NOTIFY_CONNECTION, http_door_notify, h,
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
		rc = -pthread_create(&h->door, NULL, http_door_main, h);
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
	int i;

	if (!h)
		return;
	atomic_store(&h->stopping, true);
	/* No new connections: stop the door and drop those it holds. */
	http_door_stop(h);
	http_log_flush(h, vd_mono_ms(), true);
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
