/*
 * exutil.c - vdfs-executor's small helpers that need none of its state:
 * text made safe for JSON, option values, and where things go by default.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "buf.h"
#include "id.h"
#include "util.h"
#include "exutil.h"

/* ---- text helpers ----------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
size_t vd_ex_utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* A JSON string of arbitrary bytes (stderr may be binary, and the tail may
 * cut a character): invalid UTF-8 and NUL become '?'. */
json_t *vd_ex_json_text(const char *s, size_t n)
{
	char *t = malloc(n + 1);
	size_t i = 0;
	json_t *j;

	if (!t)
		return NULL;
	while (i < n) {
		size_t k = s[i] ? vd_ex_utf8_len((const unsigned char *)s + i, n - i) : 0;

		if (!k) {
			t[i++] = '?';
			continue;
		}
		memcpy(t + i, s + i, k);
		i += k;
	}
	j = json_stringn(t, n);
	free(t);
	return j;
}


/* ---- options ------------------------------------------------------------ */

int vd_ex_parse_int(int *out, const char *s, int lo, int hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* Executor names are [A-Za-z0-9._-]{1,64}; a hostname may hold others. */
void vd_ex_default_name(char *out, size_t size)
{
	char host[256] = "";
	struct vd_buf b = VD_BUF_INIT(512);
	size_t i, hmax;

	gethostname(host, sizeof(host) - 1);
	if (!host[0])
		snprintf(host, sizeof(host), "executor");
	for (i = 0; host[i]; i++) {
		char ch = host[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			host[i] = '-';
	}
	hmax = 64 - 12;   /* room for "-<pid>" */
	if (strlen(host) > hmax)
		host[hmax] = '\0';
	vd_buf_addf(&b, "%s-%ld", host, (long)getpid());
	snprintf(out, size, "%s", vd_buf_cstr(&b));
	vd_buf_release(&b);
}

/* 1K, 512M, 10G: bytes. */
int vd_ex_parse_size(uint64_t *out, const char *s)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	default: break;
	}
	if (*end || v > (1ull << 50) >> shift)
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* Is the URL's host a loopback address (127.0.0.0/8, [::1], localhost)? */
bool vd_ex_loopback_url(const char *url)
{
	const char *h = strstr(url, "://");
	char host[256];
	size_t n;

	h = h ? h + 3 : url;
	if (*h == '[') {
		const char *e = strchr(h, ']');

		if (!e)
			return false;
		n = (size_t)(e - h - 1);
		h++;
	} else {
		n = strcspn(h, ":/");
	}
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (!strcmp(host, "localhost") || !strcmp(host, "::1"))
		return true;
	return !strncmp(host, "127.", 4) && strspn(host, "0123456789.") == n;
}

bool vd_ex_name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > 64)
		return false;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

/* The cache directory for a server: an FNV-1a hash of the URL keeps caches
 * of different daemons apart (IDs are keyed per store, so sharing would only
 * waste space, never mix contents). */
char *vd_ex_default_cache(const char *server)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	struct vd_buf b = VD_BUF_INIT(PATH_MAX);
	uint64_t h = 0xcbf29ce484222325ull;
	const char *p;
	int rc;

	for (p = server; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	if (xdg && *xdg)
		rc = vd_buf_addf(&b, "%s/vdfs-executor/%016llx", xdg,
				 (unsigned long long)h);
	else
		rc = vd_buf_addf(&b, "%s/.cache/vdfs-executor/%016llx",
				 home && *home ? home : "/tmp", (unsigned long long)h);
	return rc ? NULL : vd_buf_detach(&b, NULL);
}

char *vd_ex_self_dir(void)
{
	char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	path[n] = '\0';
	slash = strrchr(path, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return strdup(path[0] ? path : "/");
}

char *vd_ex_read_token(const char *file)
{
	struct vd_buf b = VD_BUF_INIT(4096);
	int rc = vd_read_file(&b, file);

	if (rc) {
		fprintf(stderr, "vdfs-executor: cannot read token file %s: %s\n", file,
			strerror(-rc));
		vd_buf_release(&b);
		return NULL;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' ||
			 b.data[b.len - 1] == ' ' || b.data[b.len - 1] == '\t'))
		b.data[--b.len] = '\0';
	if (!b.len || memchr(b.data, '\n', b.len) || memchr(b.data, '\r', b.len)) {
		fprintf(stderr, "vdfs-executor: token file %s holds no single-line token\n",
			file);
		vd_buf_release(&b);
		return NULL;
	}
	return vd_buf_detach(&b, NULL);
}

