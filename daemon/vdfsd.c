/*
 * vdfsd - the vdfs daemon: mounts the view, keeps the store and the
 * catalog, serves executors over HTTP.
 *
 *   vdfsd [--foreground] --state DIR [--listen HOST:PORT] MOUNTPOINT
 *
 * Start-up order matters: the engine first (it recovers the catalog and
 * resumes queued runs), then the HTTP server (so executors can connect as
 * soon as the mount exists), then the mount. Without --foreground the
 * process forks before any of that, because threads do not survive fork():
 * the parent waits on a pipe until the child has mounted (or failed) and
 * exits with the child's verdict, so `vdfsd ... && ls MNT` works.
 */
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

#include "engine.h"
#include "http.h"
#include "view.h"

struct opts {
	bool foreground, debug, verbose;
	const char *state, *mountpoint;
	char host[256];
	int port;
	int lease_ms;
	size_t chunk_avg;
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

static int parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "lease-ms", required_argument, NULL, 'L' },
		{ "chunk-size", required_argument, NULL, 'c' },
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
	char path[PATH_MAX], url[600];
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
	};
	if ((rc = vd_engine_open(&e, &eo))) {
		vd_err("cannot open the state in %s: %s", o.state, strerror(-rc));
		goto out;
	}
	if ((rc = vd_http_start(&http, &port, e, o.host, o.port))) {
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
	snprintf(url, sizeof url, strchr(h, ':') ? "http://[%s]:%d\n" : "http://%s:%d\n",
		 h, port);
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
	report(report_fd, 1);
	return rc ? 1 : 0;
}
