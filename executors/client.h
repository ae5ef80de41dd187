/*
 * client.h - the executor's side of HTTP: one libcurl easy handle per
 * thread, reused between requests so that connections stay alive, with the
 * bearer token on every request.
 *
 * A vd_client is used by one thread at a time.
 */
#ifndef VD_CLIENT_H
#define VD_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"

struct vd_client {
	CURL *curl;
	char *base;                  /* server URL without a trailing '/' */
	struct curl_slist *auth;     /* the Authorization header */
	const atomic_bool *abort;    /* when it turns true, a transfer stops */
	bool resp_too_big;           /* the last response went over its cap */
	/* TLS: trust this CA file (PEM) instead of the system's, and/or
	 * accept only a server key with this pin ("sha256//<base64>"). With
	 * a pin and no CA the pin alone is the trust: the certificate may
	 * be self-signed. Both are the caller's strings; NULL = unused. */
	const char *cacert;
	const char *pin;
	/* The last transport failure in plain words, for the log ("the
	 * daemon closed the connection (restarting?)"); TLS failures keep
	 * libcurl's text, which says what was wrong with the certificate. */
	char err[CURL_ERROR_SIZE + 128];
	char curl_err[CURL_ERROR_SIZE]; /* libcurl's own text (CURLOPT_ERRORBUFFER) */
	/* The last answer's Retry-After in seconds (at most a day); 0 when
	 * it had none. The daemon sends one with 507 (its disk is full) and
	 * with 503 when its connection limits turn a request away. */
	long retry_after_s;
	/* The last vd_client_get_zstd answer came as a zstd frame
	 * (Content-Encoding: zstd), of resp_raw_len bytes decompressed
	 * (X-VDFS-Length; 0 when it did not say). */
	bool resp_zstd;
	uint64_t resp_raw_len;
};

/* A request body: the concatenation of n pieces, sent without copying.
 * libcurl may send it twice: when a kept-alive connection turns out to be
 * dead (the daemon restarted) it sends the request again on a new one,
 * rewinding the body through a seek callback. */
struct vd_client_piece {
	const void *p;
	size_t n;
};

/* curl_global_init must have been called. abort may be NULL. */
int vd_client_init(struct vd_client *c, const char *base, const char *token,
		   const atomic_bool *abort);
void vd_client_release(struct vd_client *c);
/* Use another bearer token from now on (the executor's own, after it
 * registered with the enrollment token). */
int vd_client_set_token(struct vd_client *c, const char *token);

/*
 * One request: method "GET", "POST", "PUT" or "DELETE" (no body) on path
 * (starting with '/'). The response body is appended to resp (may be NULL to drop it); its cap
 * applies. timeout_ms bounds the whole transfer (0: none, but a transfer
 * stalled for a minute is dropped). Returns 0 with *status for any HTTP
 * answer; -ECONNREFUSED, -ETIMEDOUT, -EIO for transport failures (what
 * happened, in words, in c->err), -EKEYREJECTED when TLS did not trust
 * the server (wrong pin, unknown CA, bad certificate: retrying will not
 * help), -ECANCELED when the abort flag stopped it, -EFBIG when the
 * response was over resp's cap.
 */
int vd_client_do(long *status, struct vd_buf *resp, struct vd_client *c,
		 const char *method, const char *path, const char *ctype,
		 const struct vd_client_piece *body, size_t nbody, long timeout_ms);

/* GET path saying that a zstd frame will do (Accept-Encoding: zstd): the
 * body comes as the daemon sends it, undecoded, and c->resp_zstd says
 * whether it is a frame. Returns like vd_client_do. */
int vd_client_get_zstd(long *status, struct vd_buf *resp, struct vd_client *c,
		       const char *path, long timeout_ms);

/*
 * JSON round trip: req (NULL: empty body) is sent as application/json; a
 * 200 reply is parsed into *reply (NULL for 204). For any other status
 * *reply is NULL and why gets the server's "error" text (or the raw body).
 * Returns like vd_client_do, and -EBADMSG for a 200 reply that is not JSON.
 */
int vd_client_json(long *status, json_t **reply, struct vd_buf *why,
		   struct vd_client *c, const char *method, const char *path,
		   const json_t *req, long timeout_ms);

#endif
