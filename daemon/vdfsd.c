/*
 * vdfsd - the vdfs daemon: mounts the view, keeps the store and the
 * catalog, serves executors over HTTP.
 *
 *   vdfsd [--foreground] --state DIR [--listen HOST:PORT]
 *         [--tls-cert FILE --tls-key FILE | --insecure]
 *         [--http-idle-timeout S] [--http-max-conns N] [--http-max-per-ip N]
 *         MOUNTPOINT
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
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "doc.h"
#include "engine.h"
#include "http.h"
#include "store.h"
#include "view.h"

struct opts {
	bool foreground, debug, verbose;
	const char *state, *mountpoint;
	char host[256];
	int port;
	int lease_ms, heartbeat_ms, quarantine_ms;
	int64_t upload_keep_ms;
	size_t chunk_avg;
	int compress_level;      /* vd_engine_opts.compress_level */
	const char *tls_cert, *tls_key;
	bool insecure;
	bool allow_other;
	unsigned http_idle_s, http_max_conns, http_max_per_ip;  /* 0: http.h's defaults */
};

/*
 * The options, once: parse_args' getopt table, --help and the vdfsd(8) page
 * (`vdfsd --man`, run by the build) are all made from these rows (doc.h).
 * A new option is a row here and a case in parse_args. Defaults from
 * http.h are spelled with STR(), so they must stay plain numbers.
 */
#define STR_(x) #x
#define STR(x) STR_(x)
enum { OPT_MAN = 0x2001 };
static const struct vd_doc_opt opt_doc[] = {
	{ "foreground", 'f', NULL, "stay in the foreground and log to stderr (else vdfsd "
	  "forks once the mount is up, and logs to DIR/vdfsd.log)", VD_DOC_SHORT },
	{ "state", 's', "DIR", "the store, the catalog and the operator token (created if "
	  "missing; required)", VD_DOC_SHORT },
	{ "listen", 'l', "HOST:PORT", "the HTTP API's address, for executors and vdfs "
	  "(default 127.0.0.1:7070; port 0 picks a free one; the URL is written to "
	  "DIR/url)", VD_DOC_SHORT },
	{ "lease-ms", 'L', "N", "how long a unit's lease lasts without heartbeats (100 to "
	  "3600000, default 30000)", 0 },
	{ "heartbeat-ms", 'H', "N", "how often executors renew their leases (50 to 3600000, "
	  "shorter than the lease; default a third of it)", 0 },
	{ "quarantine-s", 'Q', "N", "how long an executor that keeps failing gets no work "
	  "(1 to 86400, default 300)", 0 },
	{ "upload-keep-s", 'U', "N", "how long gc keeps uploaded chunks that no version uses "
	  "yet, so that an interrupted vdfs put can resume (60 to 31536000, default 86400)", 0 },
	{ "tls-cert", 'C', "FILE", "serve HTTPS with this certificate (PEM), with --tls-key; "
	  "its key's pin is written to DIR/tls-pin", 0 },
	{ "tls-key", 'K', "FILE", "the certificate's private key (PEM)", 0 },
	{ "insecure", 'I', NULL, "allow plain HTTP on an address other than loopback (tokens "
	  "and data then cross the network in the clear)", 0 },
	{ "http-idle-timeout", 'T', "S", "seconds a connection has to send its first request, "
	  "and to present a valid token (1 to 3600, default " STR(VD_HTTP_IDLE_TIMEOUT_S) ")",
	  0 },
	{ "http-max-conns", 'M', "N", "connections open at once (16 to 65536, default "
	  STR(VD_HTTP_MAX_CONNS) ", lowered to what the file descriptor limit allows)", 0 },
	{ "http-max-per-ip", 'P', "N", "connections from one address that has presented no "
	  "valid token in the last hour (1 to 65536, default " STR(VD_HTTP_MAX_PER_IP) ")", 0 },
	{ "chunk-size", 'c', "N", "the average chunk size of a new store, a power of two of "
	  "at least 4096 (default 65536); an existing store keeps its own", 0 },
	{ "compress", 'Z', "zstd:N|none", "compress new chunks with zstd at level N (1 to 19; "
	  "default zstd:2), each kept only when it saves at least 3 %, or store them raw "
	  "(none); what is stored already stays as it is", 0 },
	{ "allow-other", 'A', NULL, "let other local users (and Samba or NFS re-exports) use "
	  "the mount, with owners and modes enforced as on any file system: a task is its "
	  "maker's, and only its owner and root change it (as a user other than root, needs "
	  "the line user_allow_other in /etc/fuse.conf)", 0 },
	{ "verbose", 'v', NULL, "log debug lines", VD_DOC_SHORT },
	{ "debug", 'd', NULL, "libfuse's debug output (implies --foreground)", VD_DOC_SHORT },
	{ "help", 'h', NULL, "print this help and exit", VD_DOC_SHORT },
	{ "man", OPT_MAN, NULL, "print the vdfsd(8) manual page as roff and exit", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static const struct vd_doc_sect doc_sections[] = {
	{ "FILES",
	  "In the state directory DIR:\n\n"
	  "  token       the operator token (0600), made on first start; it also\n"
	  "              enrolls executors (vdfs-executor --token-file DIR/token)\n"
	  "  url         the API's URL, written once the mount is up, removed at exit\n"
	  "  tls-pin     with --tls-cert: the key's pin (vdfs-executor --pin)\n"
	  "  vdfsd.log   the log, without --foreground\n\n"
	  "and the store and catalog beside them." },
	{ "SIGNALS",
	  "SIGTERM, SIGINT or SIGHUP, or fusermount3 -u MOUNTPOINT, unmounts cleanly; "
	  "vdfsd then exits 0." },
	{ "EXIT STATUS",
	  "0 after a clean unmount; 1 when start-up failed (the log says why; without "
	  "--foreground the parent waits until the mount is up or has failed, so "
	  "vdfsd ... && ls MOUNTPOINT works); 2 for a usage error." },
	{ "SEE ALSO", "vdfs(1), vdfs-executor(1), vdfs-config(5)" },
	{ NULL, NULL },
};

static const struct vd_doc doc = {
	.name = "vdfsd",
	.section = 8,
	.summary = "the vdfs daemon: mounts the view, keeps the store, serves executors",
	.synopsis = "[--foreground] --state DIR [--listen HOST:PORT] [options] MOUNTPOINT",
	.description =
		"vdfsd mounts a vdfs at MOUNTPOINT: make a task with mkdir "
		"MOUNTPOINT/tasks/NAME, give it a function by copying an executable to "
		"tasks/NAME/function, and submit data by copying files or trees into "
		"tasks/NAME/data/. Every submission becomes an immutable, "
		"content-addressed version under versions/, cut into units that "
		"executors (vdfs-executor(1)) on any machine pull over HTTP; the "
		"aggregated result.csv appears beside the version.\n\n"
		"Plain HTTP is only for the loopback address, since executors' tokens "
		"and the data travel in the clear: listening elsewhere wants "
		"--tls-cert and --tls-key, or --insecure on a trusted network.",
	.opts = opt_doc,
	.sections = doc_sections,
};

static void usage(FILE *f)
{
	vd_doc_help(f, &doc);
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

/* A whole number lo..hi for option `name`, or a complaint and -EINVAL. */
static int parse_count(unsigned *out, const char *name, const char *arg, long lo, long hi)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*end || end == arg || v < lo || v > hi) {
		fprintf(stderr, "vdfsd: %s wants %ld to %ld\n", name, lo, hi);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

/* "zstd:N" (1 to VD_STORE_ZSTD_MAX) or "none" (-1, as vd_engine_opts
 * says); "zstd" alone is the default level. */
static int parse_compress(int *out, const char *arg)
{
	char *end;

	if (strcmp(arg, "none") == 0) {
		*out = -1;
		return 0;
	}
	if (strcmp(arg, "zstd") == 0) {
		*out = 0;
		return 0;
	}
	if (strncmp(arg, "zstd:", 5) != 0)
		return -EINVAL;
	long v = strtol(arg + 5, &end, 10);
	if (*end || end == arg + 5 || v < 1 || v > VD_STORE_ZSTD_MAX)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	struct vd_doc_getopt g;
	char *end;
	int c;
	memset(o, 0, sizeof *o);
	snprintf(o->host, sizeof o->host, "127.0.0.1");
	o->port = 7070;
	vd_doc_getopt_init(&g, false);
	if (vd_doc_getopt_add(&g, opt_doc))
		return 1;
	opterr = 0;   /* a bad option is one line of ours, below */
	while ((c = getopt_long(argc, argv, g.shorts, g.longs, NULL)) != -1) {
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
		case 'U': {
			long long k = strtoll(optarg, &end, 10);
			if (*end || k < 60 || k > 31536000) {
				fprintf(stderr, "vdfsd: --upload-keep-s wants 60 to 31536000\n");
				return 2;
			}
			o->upload_keep_ms = (int64_t)k * 1000;
			break;
		}
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'I': o->insecure = true; break;
		case 'A': o->allow_other = true; break;
		case 'T':
			if (parse_count(&o->http_idle_s, "--http-idle-timeout", optarg, 1, 3600))
				return 2;
			break;
		case 'M':
			if (parse_count(&o->http_max_conns, "--http-max-conns", optarg, 16, 65536))
				return 2;
			break;
		case 'P':
			if (parse_count(&o->http_max_per_ip, "--http-max-per-ip", optarg, 1, 65536))
				return 2;
			break;
		case 'c':
			o->chunk_avg = (size_t)strtoull(optarg, &end, 10);
			if (*end || o->chunk_avg < 4096 || (o->chunk_avg & (o->chunk_avg - 1))) {
				fprintf(stderr, "vdfsd: --chunk-size wants a power of two >= 4096\n");
				return 2;
			}
			break;
		case 'Z':
			if (parse_compress(&o->compress_level, optarg)) {
				fprintf(stderr, "vdfsd: --compress wants zstd:N (N 1 to 19) or none, "
					"not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'v': o->verbose = true; break;
		case 'd': o->debug = o->foreground = true; break;
		case 'h': usage(stdout); exit(0);
		case OPT_MAN: vd_doc_man(stdout, &doc); exit(0);
		default: vd_doc_bad_option("vdfsd", "vdfsd --help", c, argv); return 2;
		}
	}
	if (!o->state || optind != argc - 1) {
		fprintf(stderr, "vdfsd: %s (see vdfsd --help)\n",
			!o->state ? "--state DIR is required"
			: optind == argc ? "which MOUNTPOINT?" : "one MOUNTPOINT only");
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

/* Every HTTP connection is a file descriptor, and the soft limit is often
 * 1024: raise it to the hard limit (capped; nothing here needs more), so
 * that the HTTP limits, not EMFILE, decide who is turned away. The HTTP
 * server fits its connection limit under whatever this leaves. */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1 << 20) ? (1 << 20) : rl.rlim_max;
	if (rl.rlim_cur >= want)
		return;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		vd_warn("cannot raise the file descriptor limit to %llu: %s",
			(unsigned long long)want, strerror(errno));
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
/*
 * One daemon per state directory: STATE/vdfsd.pid, locked (flock) for as
 * long as this process lives and holding its pid. A second vdfsd on the
 * same state finds it locked and names the pid, rather than failing later
 * on RocksDB's lock with a message about files. The lock goes with the
 * process, however it ends, so a pid file left by a killed daemon does
 * not stop the next one.
 */
static int state_lock(const char *state)
{
	char path[PATH_MAX], pid[32] = "";
	snprintf(path, sizeof path, "%s/vdfsd.pid", state);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		vd_err("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = errno == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
		if (n > 0) {
			pid[n] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			vd_err("state dir %s in use by vdfsd pid %s", state, pid);
		} else {
			vd_err("state dir %s in use by another vdfsd", state);
		}
		close(fd);
		return -1;
	}
	int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
		vd_warn("cannot write %s: %s", path, strerror(errno));
	return fd;   /* kept open: the lock lasts as long as we do */
}

/* Is mnt the mount point of a vdfs (fuse.vdfs) mount? From mountinfo:
 * field 5 is the mount point (octal escapes as in /proc), after " - " the
 * type. */
static bool is_vdfs_mount(const char *mnt)
{
	char real[PATH_MAX], line[4096];
	bool found = false;
	if (!realpath(mnt, real))
		snprintf(real, sizeof real, "%s", mnt);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	while (f && !found && fgets(line, sizeof line, f)) {
		char point[PATH_MAX];
		const char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
			continue;
		found = !strcmp(point, real) && !strncmp(sep + 3, "fuse.vdfs ", 10);
	}
	if (f)
		fclose(f);
	return found;
}

/*
 * The mount point, checked before anything is mounted on it: a vdfs whose
 * daemon was killed leaves a dead mount (every access ENOTCONN), which is
 * detached and said so; a live vdfs mount there is refused (two daemons
 * would shadow each other); anything but a directory is named.
 */
static int mountpoint_check(const char *mnt)
{
	struct stat st;
	if (stat(mnt, &st) < 0 && errno == ENOTCONN) {
		int rc = umount2(mnt, MNT_DETACH) == 0 ? 0 : -errno;
		if (rc < 0) {
			/* Not root: fusermount3 may detach a mount of ours. */
			pid_t p = fork();
			if (p == 0) {
				execlp("fusermount3", "fusermount3", "-uz", mnt, (char *)NULL);
				_exit(127);
			}
			int ws = 0;
			rc = p > 0 && waitpid(p, &ws, 0) == p && WIFEXITED(ws) &&
			     WEXITSTATUS(ws) == 0 ? 0 : rc;
		}
		if (rc < 0) {
			vd_err("%s is a dead mount (its daemon is gone) and cannot be detached: %s; "
			       "run fusermount3 -uz %s", mnt, strerror(-rc), mnt);
			return -1;
		}
		vd_warn("%s was a dead mount (its daemon was killed); detached it", mnt);
	}
	if (stat(mnt, &st) < 0) {
		vd_err("mount point %s: %s", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		vd_err("mount point %s is not a directory", mnt);
		return -1;
	}
	if (is_vdfs_mount(mnt)) {
		vd_err("%s is already a live vdfs mount: stop its vdfsd (fusermount3 -u %s) "
		       "or pick another mount point", mnt, mnt);
		return -1;
	}
	return 0;
}

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
	int report_fd = -1, port = 0, lock_fd = -1, rc;

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
	/* The daemon's large buffers (a unit's output as it arrives, a
	 * result's chunk read for the mount or for reduce, up to tens of
	 * MiB) come and go from many threads. glibc would serve them from
	 * mmap, but after the first one is freed it raises its mmap
	 * threshold to that size and serves the next ones from the threads'
	 * heaps, which keep up to twice that free: a cold read of a 1 GiB
	 * concat result left vdfsd at 250 MB. So the threshold is fixed just
	 * above the largest chunk the chunker cuts (4 MiB): anything bigger
	 * is an mmap of its own, returned when freed. Fixing it also fixes
	 * the trim threshold, at 128 KiB unless set: every free at the top
	 * of a heap would then hand pages back that the next chunk buffer
	 * faults in again (cold reads of an input ran 4 times slower), so a
	 * heap keeps up to 8 MiB, a few chunk buffers. */
	mallopt(M_MMAP_THRESHOLD, (4 << 20) + (64 << 10));
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	raise_nofile();
	if ((lock_fd = state_lock(o.state)) < 0 || mountpoint_check(o.mountpoint) < 0) {
		rc = -EBUSY;
		goto out;
	}

	struct vd_engine_opts eo = {
		.state_dir = o.state, .lease_ms = o.lease_ms, .chunk_avg = o.chunk_avg,
		.heartbeat_ms = o.heartbeat_ms, .quarantine_ms = o.quarantine_ms,
		.upload_keep_ms = o.upload_keep_ms, .compress_level = o.compress_level,
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
	struct vd_http_opts ho = {
		.host = o.host, .port = o.port,
		.cert_pem = o.tls_cert ? vd_buf_cstr(&cert) : NULL,
		.key_pem = o.tls_cert ? vd_buf_cstr(&key) : NULL,
		.idle_timeout_s = o.http_idle_s, .max_conns = o.http_max_conns,
		.max_per_ip = o.http_max_per_ip,
	};
	if ((rc = vd_http_start_opts(&http, &port, e, &ho))) {
		if (rc == -EADDRINUSE)
			vd_err("port %d on %s is in use by another program (another vdfsd?): "
			       "pick another with --listen HOST:PORT", o.port, o.host);
		else
			vd_err("cannot listen on %s:%d: %s", o.host, o.port, strerror(-rc));
		goto out;
	}
	/* Files being written when the last daemon died are gone with it:
	 * their writers got an error, and nothing of them was sealed. */
	snprintf(path, sizeof path, "%s/staging", o.state);
	vd_rm_rf(path);
	if ((rc = vd_view_new(&view, e, o.mountpoint, path, o.debug, o.allow_other))) {
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
	if (lock_fd >= 0)
		close(lock_fd);
	explicit_bzero(key.data ? key.data : path, key.data ? key.len : 0);
	vd_buf_release(&key);
	vd_buf_release(&cert);
	report(report_fd, 1);
	return rc ? 1 : 0;
}
