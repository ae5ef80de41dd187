/*
 * http_door.c - the front door of the HTTP API: who gets a connection.
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
 */
#include "http_int.h"

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
void http_door_authed(vd_http *h, struct MHD_Connection *c)
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

/* libmicrohttpd 0.9.75 does not count the time a handler runs as idle (a
 * handler of 4 s under a 2 s timeout still gets its answer out, checked
 * with a small server of these flags), but nothing in its documentation
 * promises that. Switching the timeout off around a call that may run
 * for minutes, and on again after (set from 0, the timer starts anew, as
 * microhttpd.h says), keeps the connection for the answer whatever a later
 * version does. */
void http_door_patient(struct MHD_Connection *c, bool on)
{
	MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT,
				  on ? 0u : (unsigned)HTTP_AUTH_TIMEOUT_S);
}

/* MHD started a connection the door handed over (it becomes the socket
 * context), or closed one (it stops being counted). */
void http_door_notify(void *cls, struct MHD_Connection *c, void **socket_context,
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

	if (!http_log_allowed(h))
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

				if (http_log_allowed(h))
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
	due = http_log_flush(h, now, false);
	if (due >= 0 && (next < 0 || due < next))
		next = due;
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now > INT_MAX ? INT_MAX : next - now);
}

void *http_door_main(void *arg)
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

void http_door_stop(vd_http *h)
{
	uint64_t one = 1;
	ssize_t ignored = write(h->wake_fd, &one, sizeof(one));
	(void)ignored;
	pthread_join(h->door, NULL);
	while (h->queue_head)
		door_close(h, h->queue_head);
}
