/*
 * http_web.c - the dashboard's pages, its sessions and the browser's side
 * of authentication (docs/dashboard.md, docs/protocol.md "Dashboard").
 *
 * The pages are one HTML file and a few scripts and a style sheet from
 * web/, compiled into vdfsd (http_web_assets.c, made by
 * tools/embed-web.cmake), so a fresh build serves them with nothing to
 * install. Assets are public: they hold no data, and the sign-in page must
 * load before anyone has signed in. The data comes from the same JSON
 * routes the CLI uses, with a session cookie instead of a bearer token.
 *
 * Three defences keep a page from being turned against its user:
 *  - a strict Content-Security-Policy on every page and asset: scripts and
 *    styles only from this origin, no inline script, nothing framed; a
 *    name a user chose can then at worst show as text, never run;
 *  - the session cookie is HttpOnly (no script reads it) and
 *    SameSite=Strict (a cross-site page cannot make the browser send it);
 *  - a request authenticated by the cookie that changes something must
 *    carry the session's CSRF token in X-VDFS-CSRF, which only a page of
 *    this origin can have read (from GET /v1/session), and must not come
 *    with an Origin other than ours. Bearer-token requests need neither:
 *    a browser never adds a bearer token by itself.
 */
#include "http_int.h"

#include <gnutls/crypto.h>

#define WEB_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
		"img-src 'self' data: blob:; connect-src 'self'; form-action 'self'; " \
		"frame-ancestors 'none'; base-uri 'none'"

/* Headers every page and asset carries. */
static void page_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Content-Security-Policy", WEB_CSP);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

void http_web_untrusted_headers(struct MHD_Response *r)
{
	/* A version's file is a user's bytes: were it HTML opened from this
	 * origin, its scripts would run as the dashboard. Sandboxed and not
	 * sniffed, it is only ever shown or saved. */
	MHD_add_response_header(r, "Content-Security-Policy", "sandbox; default-src 'none'");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
}

static const struct vd_web_asset *asset_named(const char *name)
{
	for (size_t i = 0; i < vd_web_assets_n; i++)
		if (!strcmp(vd_web_assets[i].name, name))
			return &vd_web_assets[i];
	return NULL;
}

static const char *type_of(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
	};
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (!strcmp(dot, types[i].ext))
			return types[i].type;
	return "application/octet-stream";
}

/* The session cookie's value, or NULL. */
static const char *session_cookie(struct MHD_Connection *c)
{
	return MHD_lookup_connection_value(c, MHD_COOKIE_KIND, VD_SESSION_COOKIE);
}

enum vd_role http_web_cookie_auth(char who[VD_EXECUTOR_NAME_SIZE],
				  struct vd_session_info *info, vd_http *h,
				  struct MHD_Connection *c)
{
	const char *sid = session_cookie(c);
	enum vd_role role;

	who[0] = '\0';
	if (!sid || vd_sessions_find(info, h->sessions, sid))
		return VD_ROLE_NONE;
	if (info->admin)
		return VD_ROLE_ADMIN;
	role = vd_engine_user_auth_sha(who, h->e, info->token_sha);
	if (role == VD_ROLE_NONE)
		/* Its user was revoked: the session is over for good. */
		vd_sessions_close(h->sessions, sid);
	return role;
}

/* "http://host:port" as this request's Host names us. */
static void own_origin(char *out, size_t size, vd_http *h, struct MHD_Connection *c)
{
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);

	snprintf(out, size, "%s://%s", h->tls ? "https" : "http", host ? host : "");
}

const char *http_web_cross_site(vd_http *h, struct MHD_Connection *c)
{
	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
	char own[512];

	/* Browsers send Sec-Fetch-Site on every request; "same-site" is a
	 * sibling host, which on a LAN may be anyone's. */
	if (site && strcmp(site, "same-origin") && strcmp(site, "none"))
		return "cross-site request refused: Sec-Fetch-Site is not same-origin";
	if (origin) {
		own_origin(own, sizeof(own), h, c);
		if (strcmp(origin, own))
			return "cross-site request refused: Origin is not this server";
	}
	return NULL;
}

const char *http_web_csrf_refusal(vd_http *h, struct MHD_Connection *c, const char *method,
				  const struct vd_session_info *info)
{
	const char *tok;
	unsigned diff = 0;
	size_t n;

	if (!strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD))
		return NULL;
	tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-VDFS-CSRF");
	if (!tok)
		return "cross-site request refused: no X-VDFS-CSRF header "
		       "(a page of this server sends it; see GET /v1/session)";
	n = strlen(tok);
	diff = n != VD_SESSION_HEX - 1;
	for (size_t i = 0; i < VD_SESSION_HEX - 1; i++)
		diff |= (unsigned)(info->csrf[i] ^ (i < n ? tok[i] : 0));
	if (diff)
		return "cross-site request refused: wrong X-VDFS-CSRF token";
	return http_web_cross_site(h, c);
}

/* A page or asset: 200 (or 304 for a matching If-None-Match). */
static enum MHD_Result send_asset(struct MHD_Connection *c, const char *method,
				  const struct vd_web_asset *a)
{
	const char *inm = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_IF_NONE_MATCH);
	bool same = inm && !strcmp(inm, a->etag);
	bool head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(same || head ? 0 : a->len, (void *)a->data,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	page_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type_of(a->name));
	MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
	/* Revalidated on every load (a cheap 304), so a daemon upgraded
	 * under an open browser serves its new scripts at the next reload. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	ret = MHD_queue_response(c, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result redirect(struct MHD_Connection *c, const char *to)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	page_headers(r);
	MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, to);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c, MHD_HTTP_SEE_OTHER, r);
	MHD_destroy_response(r);
	return ret;
}

bool http_web_is_page(const char *url)
{
	return !strcmp(url, "/") || !strcmp(url, "/signin") || !strcmp(url, "/favicon.ico") ||
	       !strncmp(url, "/ui/", 4);
}

enum MHD_Result http_web_page(vd_http *h, struct MHD_Connection *c, const char *method,
			      const char *url)
{
	const struct vd_web_asset *a = NULL;
	struct vd_session_info info;
	char who[VD_EXECUTOR_NAME_SIZE];

	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return http_reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, method, url,
					"method not allowed here",
					MHD_HTTP_METHOD_GET ", " MHD_HTTP_METHOD_HEAD);
	if (!strcmp(url, "/favicon.ico"))
		/* Asked by every browser; there is none, and a 404 would be a
		 * console error on every page. */
		return http_reply_empty(c, MHD_HTTP_NO_CONTENT);
	if (!strcmp(url, "/")) {
		/* The page itself needs a live session; everything it shows
		 * comes from routes that check again. */
		if (http_web_cookie_auth(who, &info, h, c) == VD_ROLE_NONE)
			return redirect(c, "/signin");
		http_door_authed(h, c);
		a = asset_named("index.html");
	} else if (!strcmp(url, "/signin")) {
		a = asset_named("signin.html");
	} else {
		a = asset_named(url + 4);
	}
	if (!a)
		return http_reply_error_q(c, MHD_HTTP_NOT_FOUND, method, url, "no such page",
					  NULL, !http_log_allowed(h));
	return send_asset(c, method, a);
}

/* Set-Cookie for sid (NULL: clear the cookie). */
static void set_cookie(struct MHD_Response *r, vd_http *h, const char *sid)
{
	char v[256];

	snprintf(v, sizeof(v), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
		 VD_SESSION_COOKIE, sid ? sid : "",
		 sid ? (long long)(VD_SESSION_TTL_MS / 1000) : 0LL, h->tls ? "; Secure" : "");
	MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, v);
}

static enum MHD_Result reply_session(struct MHD_Connection *c, vd_http *h, json_t *j,
				     const char *sid, bool clear)
{
	char *s = json_dumps(j, JSON_COMPACT);
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(j);
	if (!s)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (sid || clear)
		set_cookie(r, h, sid);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* The name a session shows for role and who. */
static const char *shown_name(enum vd_role role, const char *who)
{
	return role == VD_ROLE_ADMIN ? "STATE/token" : who;
}

/* POST /v1/session: trade a token for a session. */
static enum MHD_Result sign_in(vd_http *h, struct MHD_Connection *c, const char *method,
			       const char *url, const char *body, size_t len)
{
	char who[VD_EXECUTOR_NAME_SIZE] = "", sid[VD_SESSION_HEX];
	struct vd_session_info info;
	unsigned char sha[32];
	const char *no, *token;
	enum vd_role role;
	json_error_t err;
	json_t *j = NULL;
	enum MHD_Result ret;
	int rc;

	if ((no = http_web_cross_site(h, c))) {
		ret = http_reply_error(c, MHD_HTTP_FORBIDDEN, method, url, no, NULL);
		goto out;
	}
	j = json_loadb(body ? body : "", len, 0, &err);
	token = json_string_value(json_object_get(j, "token"));
	if (!token) {
		ret = http_reply_error(c, MHD_HTTP_BAD_REQUEST, method, url,
				       "want {\"token\": \"<a user's token>\"}", NULL);
		goto out;
	}
	role = vd_engine_auth(who, h->e, token);
	if (role == VD_ROLE_NONE) {
		ret = http_reply_error_q(c, MHD_HTTP_UNAUTHORIZED, method, url,
					 "wrong or revoked token", NULL, !http_log_allowed(h));
		goto out;
	}
	if (role == VD_ROLE_EXECUTOR || role == VD_ROLE_ENROLL) {
		ret = http_reply_error(c, MHD_HTTP_FORBIDDEN, method, url,
				       "sign in with a user's token (vdfs user add), "
				       "not an executor's", NULL);
		goto out;
	}
	rc = vd_engine_token_sha256(sha, token);
	if (!rc)
		rc = vd_sessions_open(sid, &info, h->sessions, role == VD_ROLE_ADMIN, sha);
	if (rc) {
		ret = http_reply_engine_error(c, rc, method, url, NULL);
		goto out;
	}
	http_door_authed(h, c);
	vd_info("http: %s signed in to the dashboard", shown_name(role, who));
	ret = reply_session(c, h, json_pack("{s:s, s:s, s:s, s:I}", "name", shown_name(role, who),
					    "role", vd_role_name(role), "csrf", info.csrf,
					    "expires", (json_int_t)info.expires),
			    sid, false);
out:
	json_decref(j);
	return ret;
}

enum MHD_Result http_web_session(vd_http *h, struct MHD_Connection *c, const char *method,
				 const char *url, enum vd_role role, const char *who,
				 const struct vd_session_info *info, const char *body, size_t len)
{
	const char *sid = session_cookie(c);

	if (!strcmp(method, MHD_HTTP_METHOD_POST))
		return sign_in(h, c, method, url, body, len);
	if (!strcmp(method, MHD_HTTP_METHOD_DELETE)) {
		/* Signing out twice, or with a bearer token, is not an error:
		 * the caller ends up signed out either way. */
		if (info && sid)
			vd_sessions_close(h->sessions, sid);
		return reply_session(c, h, json_pack("{s:b}", "signed_out", 1), NULL, true);
	}
	if (!info)
		return reply_session(c, h, json_pack("{s:s, s:s}", "name", shown_name(role, who),
						     "role", vd_role_name(role)), NULL, false);
	return reply_session(c, h, json_pack("{s:s, s:s, s:s, s:I}", "name", shown_name(role, who),
					     "role", vd_role_name(role), "csrf", info->csrf,
					     "expires", (json_int_t)info->expires),
			     NULL, false);
}
