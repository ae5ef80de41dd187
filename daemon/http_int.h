/*
 * http_int.h - what http.c (the API) and http_door.c (the front door that
 * admits connections) share: the limits, the server's state and the
 * admission records. Not for other modules: they use http.h.
 */
#ifndef VD_HTTP_INT_H
#define VD_HTTP_INT_H

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
#include "http_session.h"

/* Retry-After, in seconds, of a 507 (the state disk is full). */
#define HTTP_DISK_RETRY_S "5"
#define HTTP_JSON_MAX ((size_t)1 << 20)
#define HTTP_RESULT_MAX (((size_t)1 << 30) + ((size_t)64 << 10))
/* POST /v1/results: several results, buffered whole; a larger one goes
 * by PUT /v1/results/<lease>. */
#define HTTP_RESULTS_MAX ((size_t)64 << 20)
#define HTTP_RESULTS_COUNT_MAX 4096
/* POST /v1/chunks: a batch of chunks, buffered whole (it is verified
 * before any of it is stored). */
#define HTTP_UPLOAD_MAX VD_UPLOAD_BATCH_MAX
/* PUT /v1/tasks/<task>/function: the engine's cap (VD_CODE_MAX). */
#define HTTP_FUNCTION_MAX ((size_t)64 << 20)
/* POST /v1/tasks/<task>/versions: the manifest. */
#define HTTP_MANIFEST_MAX ((size_t)64 << 20)
/* What a code or chunk download may be; the engine's own caps are smaller. */
#define HTTP_BLOB_MAX ((size_t)1 << 30)
#define HTTP_METRICS_MAX ((size_t)16 << 20)
#define HTTP_DIFF_MAX ((size_t)1 << 20)      /* GET /v1/diff/A/B/lines */
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
	/* Request body bytes received, for /metrics: what clients sent
	 * over the network, uploads above all. */
	atomic_uint_fast64_t received;
	/* http_transfer.c, for /metrics: chunk bytes sent by GET
	 * /v1/chunks as sent (frames or raw) and the raw length they stand
	 * for; output bytes of accepted results as received, and theirs. */
	atomic_uint_fast64_t chunk_sent, chunk_raw_sent;
	atomic_uint_fast64_t result_received, result_raw_received;

	/* Sign-in sessions of the dashboard (http_session.h has its own lock). */
	vd_sessions *sessions;
	/* GET /v1/events streams open now (http_events.c), at most
	 * HTTP_EVENT_STREAMS_MAX: each holds a connection thread. */
	atomic_int event_streams;

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

/* The log throttle (http_reply.c): lines about strangers' connections. */
int64_t http_log_flush(vd_http *h, int64_t now, bool force);
bool http_log_allowed(vd_http *h);

/* Answers (http_reply.c). Each queues the response on c and returns what
 * MHD_queue_response did (MHD_NO when it could not be made). */
/* `len` bytes of malloc'd `data`, taken over (also on failure). */
enum MHD_Result http_reply_bytes(struct MHD_Connection *c, unsigned status,
				 const char *ctype, char *data, size_t len);
enum MHD_Result http_reply_empty(struct MHD_Connection *c, unsigned status);
enum MHD_Result http_reply_json(struct MHD_Connection *c, unsigned status, const json_t *j);
/* {"error": why}, logged once unless quiet; `allow` fills Allow (405).
 * 401, 411, 413 and 503 close the connection; 507 says Retry-After. */
enum MHD_Result http_reply_error_q(struct MHD_Connection *c, unsigned status,
				   const char *method, const char *url,
				   const char *why, const char *allow, bool quiet);
enum MHD_Result http_reply_error(struct MHD_Connection *c, unsigned status,
				 const char *method, const char *url,
				 const char *why, const char *allow);
/* The HTTP status for an engine -errno (the mapping in engine.h). */
unsigned http_status_of(int rc);
/* An engine refusal: its status, and why (or strerror) as the error. */
enum MHD_Result http_reply_engine_error(struct MHD_Connection *c, int rc,
					const char *method, const char *url,
					const struct vd_buf *why);

/* The dashboard (http_web.c). */
/* A file of web/, compiled in (http_web_assets.c, generated). */
struct vd_web_asset {
	const char *name;               /* "index.html": served as /ui/<name> */
	const unsigned char *data;
	size_t len;
	const char *etag;               /* "\"<16 hex of its SHA-256>\"" */
};
extern const struct vd_web_asset vd_web_assets[];
extern const size_t vd_web_assets_n;
/* Is url one of the pages or assets (/, /signin, /ui/...), which need no
 * token? (/ itself wants a session, and redirects to /signin without.) */
bool http_web_is_page(const char *url);
enum MHD_Result http_web_page(vd_http *h, struct MHD_Connection *c, const char *method,
			      const char *url);
/* The role of the request's session cookie (who: the user), with the
 * session in *info; NONE when there is no live session. */
enum vd_role http_web_cookie_auth(char who[VD_EXECUTOR_NAME_SIZE],
				  struct vd_session_info *info, vd_http *h,
				  struct MHD_Connection *c);
/* NULL when a cookie-authenticated request may go on, else why not (403):
 * a method other than GET and HEAD needs the session's X-VDFS-CSRF and
 * no foreign Origin. */
const char *http_web_csrf_refusal(vd_http *h, struct MHD_Connection *c, const char *method,
				  const struct vd_session_info *info);
/* NULL, or why the request comes from another site (Origin, Sec-Fetch-Site). */
const char *http_web_cross_site(vd_http *h, struct MHD_Connection *c);
/* /v1/session: POST signs in (body {"token"}; no other auth), GET says who
 * the caller is (info: the session, NULL for a bearer token), DELETE signs
 * out. */
enum MHD_Result http_web_session(vd_http *h, struct MHD_Connection *c, const char *method,
				 const char *url, enum vd_role role, const char *who,
				 const struct vd_session_info *info, const char *body, size_t len);
/* CSP sandbox and nosniff, for answers that carry a user's bytes. */
void http_web_untrusted_headers(struct MHD_Response *r);

/* The door (http_door.c). */
/* A request on c presented a valid token: its address is known, and c
 * may idle for HTTP_AUTH_TIMEOUT_S. */
void http_door_authed(vd_http *h, struct MHD_Connection *c);
/* Around a request that may run for minutes without a byte on the wire
 * (gc, fsck): on, the connection has no inactivity timeout; off, it has
 * HTTP_AUTH_TIMEOUT_S again, counted from then. */
void http_door_patient(struct MHD_Connection *c, bool on);
/* http_download.c: the response to GET (or HEAD) of a version's file,
 * rest being what follows /v1/tasks/<task>/versions/<id>/ (result.csv,
 * input[/<path>], meta.json, log, status): *resp ready to queue with
 * *status (200, 206, 304, 416), or -errno with the reason in why. */
int http_download(struct MHD_Response **resp, unsigned *status, struct vd_buf *why,
		  vd_engine *e, struct MHD_Connection *c, const char *task, const char *id,
		  const char *rest);
/* http_archive.c: the response to GET /v1/archive?ids=<id>,<id>...&what=
 * result|input: a zip of those versions' files, streamed as it is made
 * (docs/protocol.md, "Archives"). *resp ready to queue with *status, or
 * -errno with the reason in why (400 bad query, 404 unknown ID...). */
int http_archive(struct MHD_Response **resp, unsigned *status, struct vd_buf *why,
		 vd_engine *e, struct MHD_Connection *c);
/* http_events.c: GET /v1/events, the live event stream (docs/protocol.md,
 * "Events"). */
#define HTTP_EVENT_STREAMS_MAX 64
/* `after` for a client that names no event: only what comes from now on. */
#define HTTP_EVENTS_NOW UINT64_MAX
/* Where the client resumes: the Last-Event-ID header, else ?since=, else
 * HTTP_EVENTS_NOW. -EINVAL when the one given is not a decimal number. */
int http_events_after(uint64_t *after, struct MHD_Connection *c);
/* Queue the stream (200 text/event-stream) of the events after `after`,
 * or 503 with Retry-After when HTTP_EVENT_STREAMS_MAX are open. It ends
 * when the client goes, or within half a second of h->stopping. */
enum MHD_Result http_events_reply(vd_http *h, struct MHD_Connection *c, uint64_t after);
/* http_transfer.c: chunks and results on the wire, zstd where both ends
 * can (docs/protocol.md). GET /v1/chunks/<id>: the stored frame to a
 * client whose Accept-Encoding names zstd, else the raw bytes; executor
 * (NULL for other roles) is remembered as holding the chunk. */
enum MHD_Result http_chunk(vd_http *h, struct MHD_Connection *c, const char *method,
			   const char *url, const char *id, const char *executor);
/* A PUT /v1/results/<lease> body, split: meta (owned; json_decref it),
 * the n bytes that follow at out, a zstd frame (zstd, with id the
 * executor's out_id) or raw, raw_len the output's length. */
struct http_result {
	json_t *meta;
	const char *out;
	size_t n;
	bool zstd;
	size_t raw_len;
	const char *id;    /* in meta */
};
/* -EINVAL (400) for a malformed body (why says what), -EFBIG (413) for
 * out_bytes over the result cap; meta is NULL then. */
int http_result_parse(struct http_result *res, struct vd_buf *why, const char *body,
		      size_t n);
/* Hand the result to the engine (and count its bytes when accepted). */
int http_result_take(json_t **reply, struct vd_buf *why, vd_http *h, const char *lease,
		     const struct http_result *res);
/* http_results.c: POST /v1/results, the body of several results of the
 * executor who: 0 with *reply {"results": [...]}, one status per result;
 * -EINVAL (400) when the body cannot be cut into results, -ESHUTDOWN or
 * -ENOSPC when every result came back so (503, 507). */
int http_results_take(json_t **reply, struct vd_buf *why, vd_http *h, const char *who,
		      const char *body, size_t n);
/* Where result number i of such a body, starting at p with n bytes left,
 * ends: 0 with *len its length (line and output, at most n), or -EINVAL
 * with the reason in why. Public for fuzz/fuzz_results.c. */
int http_results_frame_next(size_t *len, struct vd_buf *why, const char *p, size_t n,
			    size_t i);
/* The byte counters, in Prometheus text, appended to out. */
int http_transfer_metrics(struct vd_buf *out, vd_http *h);
/* MHD_OPTION_NOTIFY_CONNECTION: counts a connection MHD starts or closes. */
void http_door_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe);
/* The door thread: accepts on h->listen_fd until h->wake_fd is written. */
void *http_door_main(void *arg);
/* Stop the door thread and close what it holds (at vd_http_stop). */
void http_door_stop(vd_http *h);

#endif
