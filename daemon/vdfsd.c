/*
 * vdfsd - the vdfs daemon: mounts the view, keeps the store and the
 * catalog, serves executors over HTTP.
 *
 *   vdfsd [--foreground] --state DIR [--listen HOST:PORT]
 *         [--tls-cert FILE --tls-key FILE | --insecure] MOUNTPOINT
 *
 * Plain HTTP is only for the loopback address: executors' tokens and the
 * data travel in the clear. Listening elsewhere wants TLS, or --insecure
 * to say that the network is trusted.
 *
 * Start-up order matters: the engine first (it recovers the catalog and
 * resumes queued runs), then the HTTP server (so executors can connect as
 * soon as the mount exists), then the mount. Without --foreground the
 * process forks before any of that, because threads do not survive fork():
 * the parent waits on a pipe until the child has mounted (or failed) and
 * exits with the child's verdict, so `vdfsd ... && ls MNT` works.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "engine.h"
#include "http.h"
#include "view.h"

struct opts {
	bool foreground, debug, verbose;
	const char *state, *mountpoint;
	char host[256];
	int port;
	int lease_ms, heartbeat_ms, quarantine_ms;
	size_t chunk_avg;
	const char *tls_cert, *tls_key;
	bool insecure;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vdfsd [--foreground] --state DIR [--listen HOST:PORT] MOUNTPOINT\n"
		"  --foreground       stay in the foreground, log to stderr\n"
		"  --state DIR        the store, catalog and token (created if missing)\n"
		"  --listen HOST:PORT executor API address (default 127.0.0.1:7070;\n"
		"                     port 0 picks a free one, written to DIR/url)\n"
		"  --lease-ms N       lease lifetime without heartbeats (default 30000)\n"
		"  --heartbeat-ms N   how often executors renew leases (default lease/3)\n"
		"  --quarantine-s N   how long a failing executor gets no work (default 300)\n"
		"  --tls-cert FILE    serve HTTPS with this certificate (PEM) ...\n"
		"  --tls-key FILE     ... and this private key (PEM)\n"
		"  --insecure         allow plain HTTP on an address other than loopback\n"
		"  --chunk-size N     average chunk size of a new store (default 1048576)\n"
		"  --verbose          log debug lines\n"
		"  --debug            libfuse debug output (implies --foreground)\n");
}

static int parse_listen(struct opts *o, const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	if (!colon || colon == s || (size_t)(colon - s) >= sizeof o->host)
		return -EINVAL;
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return -EINVAL;
	/* [::1]:7070 → ::1 */
	const char *h = s;
	size_t n = (size_t)(colon - s);
	if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
		h++;
		n -= 2;
	}
	memcpy(o->host, h, n);
	o->host[n] = '\0';
	o->port = (int)port;
	return 0;
}

/* 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z) or "localhost". */
static bool loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!strcmp(host, "localhost"))
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

/* The certificate's public key pin as curl wants it: "sha256//" and the
 * base64 of the SHA-256 of its DER SubjectPublicKeyInfo. */
static int tls_pin(char *out, size_t size, const char *pem)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pk = NULL;
	gnutls_datum_t d = { (unsigned char *)pem, (unsigned)strlen(pem) }, b64 = { NULL, 0 };
	unsigned char der[16384], h[32];
	size_t n = sizeof der;
	int rc = -EINVAL;

	if (gnutls_x509_crt_init(&crt) || gnutls_pubkey_init(&pk))
		goto out;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) ||
	    gnutls_pubkey_import_x509(pk, crt, 0) ||
	    gnutls_pubkey_export(pk, GNUTLS_X509_FMT_DER, der, &n) ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, der, n, h))
		goto out;
	gnutls_datum_t hd = { h, sizeof h };
	if (gnutls_base64_encode2(&hd, &b64))
		goto out;
	snprintf(out, size, "sha256//%.*s", (int)b64.size, (const char *)b64.data);
	rc = 0;
out:
	gnutls_free(b64.data);
	if (pk)
		gnutls_pubkey_deinit(pk);
	if (crt)
		gnutls_x509_crt_deinit(crt);
	return rc;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "lease-ms", required_argument, NULL, 'L' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "heartbeat-ms", required_argument, NULL, 'H' },
		{ "quarantine-s", required_argument, NULL, 'Q' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'K' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int c;
	memset(o, 0, sizeof *o);
	snprintf(o->host, sizeof o->host, "127.0.0.1");
	o->port = 7070;
	while ((c = getopt_long(argc, argv, "fs:l:vdh", longs, NULL)) != -1) {
		switch (c) {
		case 'f': o->foreground = true; break;
		case 's': o->state = optarg; break;
		case 'l':
			if (parse_listen(o, optarg)) {
				fprintf(stderr, "vdfsd: --listen wants HOST:PORT, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'L':
			o->lease_ms = (int)strtol(optarg, &end, 10);
			if (*end || o->lease_ms < 100 || o->lease_ms > 3600000) {
				fprintf(stderr, "vdfsd: --lease-ms wants 100 to 3600000\n");
				return 2;
			}
			break;
		case 'H':
			o->heartbeat_ms = (int)strtol(optarg, &end, 10);
			if (*end || o->heartbeat_ms < 50 || o->heartbeat_ms > 3600000) {
				fprintf(stderr, "vdfsd: --heartbeat-ms wants 50 to 3600000\n");
				return 2;
			}
			break;
		case 'Q': {
			long q = strtol(optarg, &end, 10);
			if (*end || q < 1 || q > 86400) {
				fprintf(stderr, "vdfsd: --quarantine-s wants 1 to 86400\n");
				return 2;
			}
			o->quarantine_ms = (int)q * 1000;
			break;
		}
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'I': o->insecure = true; break;
		case 'c':
			o->chunk_avg = (size_t)strtoull(optarg, &end, 10);
			if (*end || o->chunk_avg < 4096 || (o->chunk_avg & (o->chunk_avg - 1))) {
				fprintf(stderr, "vdfsd: --chunk-size wants a power of two >= 4096\n");
				return 2;
			}
			break;
		case 'v': o->verbose = true; break;
		case 'd': o->debug = o->foreground = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return 2;
		}
	}
	if (!o->state || optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o->mountpoint = argv[optind];
	if (!o->tls_cert != !o->tls_key) {
		fprintf(stderr, "vdfsd: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (o->heartbeat_ms && o->heartbeat_ms >= (o->lease_ms ? o->lease_ms : 30000)) {
		fprintf(stderr, "vdfsd: --heartbeat-ms must be shorter than the lease\n");
		return 2;
	}
	if (!o->tls_cert && !o->insecure && !loopback(o->host)) {
		fprintf(stderr, "vdfsd: plain HTTP on %s would send tokens and data in the "
			"clear; give --tls-cert and --tls-key, or --insecure on a "
			"trusted network\n", o->host);
		return 2;
	}
	return 0;
}

/* Tell the waiting parent how start-up went: one byte, 0 for success. */
static void report(int fd, unsigned char code)
{
	if (fd < 0)
		return;
	ssize_t ignored = write(fd, &code, 1);
	(void)ignored;
	close(fd);
}

/* Fork; the parent waits for the child's report and exits with it. In the
 * child, *report_fd is the pipe to write the verdict to. */
static int daemonize(int *report_fd, const char *state)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		unsigned char code = 1;
		close(p[1]);
		if (read(p[0], &code, 1) != 1)
			code = 1;
		if (code)
			fprintf(stderr, "vdfsd: start-up failed; see %s/vdfsd.log\n", state);
		_exit(code);
	}
	close(p[0]);
	*report_fd = p[1];
	setsid();
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/vdfsd.log", state);
	int log = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (log >= 0) {
		dup2(log, STDERR_FILENO);
		close(log);
	}
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	vd_engine *e = NULL;
	vd_http *http = NULL;
	vd_view *view = NULL;
	char path[PATH_MAX], url[600], pin[128] = "";
	struct vd_buf cert = VD_BUF_INIT(1 << 20), key = VD_BUF_INIT(1 << 20);
	int report_fd = -1, port = 0, rc;

	if ((rc = parse_args(&o, argc, argv)))
		return rc;
	vd_log_init("vdfsd", o.verbose ? VD_LOG_DEBUG : VD_LOG_INFO);
	if ((rc = vd_mkdir_p(o.state, 0700))) {
		fprintf(stderr, "vdfsd: cannot create %s: %s\n", o.state, strerror(-rc));
		return 1;
	}
	if (!o.foreground && (rc = daemonize(&report_fd, o.state))) {
		fprintf(stderr, "vdfsd: cannot daemonize: %s\n", strerror(-rc));
		return 1;
	}
	/* A dead executor connection must not kill the daemon. */
	signal(SIGPIPE, SIG_IGN);

	struct vd_engine_opts eo = {
		.state_dir = o.state, .lease_ms = o.lease_ms, .chunk_avg = o.chunk_avg,
		.heartbeat_ms = o.heartbeat_ms, .quarantine_ms = o.quarantine_ms,
	};
	if (o.tls_cert) {
		if ((rc = vd_read_file(&cert, o.tls_cert)) || (rc = vd_read_file(&key, o.tls_key))) {
			vd_err("cannot read the TLS %s: %s",
			       cert.len ? "key" : "certificate", strerror(-rc));
			goto out;
		}
		if ((rc = tls_pin(pin, sizeof pin, vd_buf_cstr(&cert)))) {
			vd_err("%s holds no PEM certificate GnuTLS can read", o.tls_cert);
			goto out;
		}
	}
	if ((rc = vd_engine_open(&e, &eo))) {
		vd_err("cannot open the state in %s: %s", o.state, strerror(-rc));
		goto out;
	}
	if ((rc = vd_http_start_tls(&http, &port, e, o.host, o.port,
				     o.tls_cert ? vd_buf_cstr(&cert) : NULL,
				     o.tls_cert ? vd_buf_cstr(&key) : NULL))) {
		vd_err("cannot listen on %s:%d: %s", o.host, o.port, strerror(-rc));
		goto out;
	}
	/* Files being written when the last daemon died are gone with it:
	 * their writers got an error, and nothing of them was sealed. */
	snprintf(path, sizeof path, "%s/staging", o.state);
	vd_rm_rf(path);
	if ((rc = vd_view_new(&view, e, o.mountpoint, path, o.debug))) {
		vd_err("cannot mount %s: %s", o.mountpoint, strerror(-rc));
		goto out;
	}
	const char *h = o.host;
	if (!strcmp(h, "0.0.0.0") || !strcmp(h, "::"))
		h = "127.0.0.1";
	snprintf(url, sizeof url, strchr(h, ':') ? "%s://[%s]:%d\n" : "%s://%s:%d\n",
		 o.tls_cert ? "https" : "http", h, port);
	/* Operators' tools (vdfs --state) pin the key from here. */
	snprintf(path, sizeof path, "%s/tls-pin", o.state);
	if (*pin) {
		char line[160];
		snprintf(line, sizeof line, "%s\n", pin);
		if ((rc = vd_write_file_atomic(path, line, strlen(line), 0644)))
			vd_warn("cannot write %s: %s", path, strerror(-rc));
		vd_info("TLS on; executors: --pin %s (or --cacert with the CA)", pin);
	} else {
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/url", o.state);
	if ((rc = vd_write_file_atomic(path, url, strlen(url), 0644)))
		vd_warn("cannot write %s: %s", path, strerror(-rc));
	vd_info("mounted %s; executors: vdfs-executor --server %.*s --token-file %s/token",
		o.mountpoint, (int)strlen(url) - 1, url, o.state);
	report(report_fd, 0);
	report_fd = -1;
	rc = vd_view_loop(view);
	vd_info("unmounting");
	unlink(path);
out:
	if (http)
		vd_http_stop(http);
	vd_view_free(view);
	vd_engine_close(e);
	explicit_bzero(key.data ? key.data : path, key.data ? key.len : 0);
	vd_buf_release(&key);
	vd_buf_release(&cert);
	report(report_fd, 1);
	return rc ? 1 : 0;
}
