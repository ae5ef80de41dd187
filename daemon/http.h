/*
 * http.h - the executor protocol (docs/protocol.md) over libmicrohttpd.
 *
 * The server is a thin translation layer: it authenticates, routes, bounds
 * and parses request bodies, calls one vd_engine_api_* function and turns its
 * return code into an HTTP status (the mapping is in engine.h). Besides the
 * libmicrohttpd daemon it keeps only what guards the door: the listening
 * socket, connections whose first request has not arrived yet, and per
 * client address counts (see "the front door" in http.c).
 */
#ifndef VD_HTTP_H
#define VD_HTTP_H

#include "engine.h"

typedef struct vd_http vd_http;

/* Defaults of struct vd_http_opts (docs/protocol.md, "Connections"). */
#define VD_HTTP_IDLE_TIMEOUT_S 10
#define VD_HTTP_MAX_CONNS 1024
#define VD_HTTP_MAX_PER_IP 16

struct vd_http_opts {
	/* A numeric address or a name (NULL or "" means 127.0.0.1; an IPv6
	 * literal may be given with or without brackets); port 0 = ephemeral. */
	const char *host;
	int port;
	/* The server's certificate (chain) and private key in PEM,
	 * NUL-terminated, valid until vd_http_stop. Both NULL: plain HTTP. */
	const char *cert_pem, *key_pem;
	/* Seconds a connection may take to deliver its first request head,
	 * and may stay idle until a request on it presented a valid token
	 * (then HTTP_AUTH_TIMEOUT_S applies). 0: VD_HTTP_IDLE_TIMEOUT_S. */
	unsigned idle_timeout_s;
	/* Connections open at once (0: VD_HTTP_MAX_CONNS), lowered to what
	 * the file descriptor limit allows. A quarter is kept for addresses
	 * that recently presented a valid token. */
	unsigned max_conns;
	/* Connections open at once from one address that has not presented a
	 * valid token recently (an IPv6 address counts by its /64).
	 * 0: VD_HTTP_MAX_PER_IP. */
	unsigned max_per_ip;
};

/* Start serving engine e as o says. *bound_port gets the real port.
 * -EADDRINUSE, -EINVAL (bad address or option), -ENOTSUP (TLS asked of a
 * libmicrohttpd without it), -EIO (the server could not start; logged). */
int vd_http_start_opts(vd_http **out, int *bound_port, vd_engine *e,
		       const struct vd_http_opts *o);
/* vd_http_start_opts with the default limits, plain HTTP. */
int vd_http_start(vd_http **out, int *bound_port, vd_engine *e,
		  const char *host, int port);
/* The same over TLS (cert_pem and key_pem as in vd_http_opts). */
int vd_http_start_tls(vd_http **out, int *bound_port, vd_engine *e,
		      const char *host, int port, const char *cert_pem,
		      const char *key_pem);
/* Refuse new requests (503), wake long-polls via vd_engine_wake_all, then
 * stop the server, joining every connection thread. NULL is fine. */
void vd_http_stop(vd_http *h);

#endif
