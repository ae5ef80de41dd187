/*
 * http.h - the executor protocol (docs/protocol.md) over libmicrohttpd.
 *
 * The server is a thin translation layer: it authenticates, routes, bounds
 * and parses request bodies, calls one vd_engine_api_* function and turns its
 * return code into an HTTP status (the mapping is in engine.h). It keeps no
 * state of its own besides the listening daemon.
 */
#ifndef VD_HTTP_H
#define VD_HTTP_H

#include "engine.h"

typedef struct vd_http vd_http;

/* Start serving engine e on host:port (port 0 = ephemeral). host is a
 * numeric address or a name (NULL or "" means 127.0.0.1; an IPv6 literal may
 * be given with or without brackets). *bound_port gets the real port.
 * -EADDRINUSE, -EINVAL (bad address), -EIO (the server could not start). */
int vd_http_start(vd_http **out, int *bound_port, vd_engine *e,
		  const char *host, int port);
/* The same over TLS: cert_pem and key_pem are the server's certificate
 * (chain) and private key in PEM, NUL-terminated, and must stay valid
 * until vd_http_stop. Both NULL: plain HTTP. -ENOTSUP when libmicrohttpd
 * has no TLS; a bad key or certificate fails the start (-EIO, logged). */
int vd_http_start_tls(vd_http **out, int *bound_port, vd_engine *e,
		      const char *host, int port, const char *cert_pem,
		      const char *key_pem);
/* Refuse new requests (503), wake long-polls via vd_engine_wake_all, then
 * stop the server, joining every connection thread. NULL is fine. */
void vd_http_stop(vd_http *h);

#endif
