/*
 * http_session.h - sign-in sessions for the web dashboard.
 *
 * A browser cannot keep a bearer token safe from the page's own scripts,
 * so the dashboard trades the user's token once (POST /v1/session) for a
 * session: a random 256-bit ID sent back as an HttpOnly, SameSite=Strict
 * cookie, and a second random value, the CSRF token, that the page must
 * echo in a header on every request that changes something. The table
 * keeps neither the user's token nor the session ID, only their SHA-256
 * digests: a copy of the daemon's memory lets nobody sign in.
 *
 * A session does not carry the user's role: it carries the hash of the
 * token it was opened with, and every request asks the catalog again who
 * that token belongs to (vd_engine_user_auth_sha). Revoking the user
 * therefore ends its sessions at their next request, and a user added
 * again under the same name (a new token) does not inherit them.
 *
 * Sessions live in memory only: a daemon restart signs everyone out,
 * which costs one sign-in and keeps the catalog free of short-lived
 * secrets. At most VD_SESSION_MAX are open; a new one past that replaces
 * the one that expires first. Each lasts VD_SESSION_TTL_MS from sign-in.
 *
 * Thread safety: every function takes the table's own lock; none calls
 * out while holding it.
 */
#ifndef VD_HTTP_SESSION_H
#define VD_HTTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#define VD_SESSION_MAX 4096
#define VD_SESSION_TTL_MS ((int64_t)7 * 24 * 3600 * 1000)
#define VD_SESSION_HEX 65           /* 64 hex digits and a NUL */
#define VD_SESSION_COOKIE "vdfs_session"

/* What a session says about its holder. */
struct vd_session_info {
	bool admin;                     /* opened with STATE/token */
	unsigned char token_sha[32];    /* else: the user's token's SHA-256 */
	char csrf[VD_SESSION_HEX];      /* what X-VDFS-CSRF must say */
	int64_t expires;                /* ms since the epoch */
};

typedef struct vd_sessions vd_sessions;

int vd_sessions_new(vd_sessions **out);
void vd_sessions_free(vd_sessions *s);

/*
 * Open a session for the holder of STATE/token (admin) or of the user
 * token whose SHA-256 is token_sha. sid gets the session ID (the cookie
 * value, 64 hex digits); info gets the rest, the new CSRF token among it.
 * -EIO when no random bytes could be had.
 */
int vd_sessions_open(char sid[VD_SESSION_HEX], struct vd_session_info *info,
		     vd_sessions *s, bool admin, const unsigned char token_sha[32]);

/* The open, unexpired session whose ID is sid: 0 and *info, or -ENOENT
 * (unknown, expired, malformed). */
int vd_sessions_find(struct vd_session_info *info, vd_sessions *s, const char *sid);

/* Close the session whose ID is sid (sign-out, or its user is gone).
 * 0, or -ENOENT when there was none. */
int vd_sessions_close(vd_sessions *s, const char *sid);

/* Open sessions now, for /metrics. */
unsigned vd_sessions_count(vd_sessions *s);

#endif
