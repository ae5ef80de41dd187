/*
 * spool.c - finished results waiting for the daemon, on disk (see spool.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "spool.h"

#define SPOOL_SUFFIX ".result"
/* The header line is a few hundred bytes; this bounds what is read of a
 * file that is not ours. */
#define SPOOL_HEADER_MAX 4096

struct entry {
	struct entry *next;        /* spool.lock */
	char lease[VD_ID_SIZE];
	char what[160];
	uint64_t size;             /* the whole file */
	size_t hdr;                /* bytes of the header line, newline included */
	int64_t mtime_ns;          /* for the order at open */
};

struct vd_spool {
	char *dir;
	uint64_t cap;
	pthread_mutex_t lock;
	struct entry *head, *tail; /* lock: oldest first */
	size_t n;                  /* lock */
	uint64_t bytes;            /* lock: the files' sizes */
};

static int path_of(struct vd_buf *p, const struct vd_spool *s, const char *lease,
		   bool tmp)
{
	vd_buf_reset(p);
	return tmp ? vd_buf_addf(p, "%s/.%s.tmp", s->dir, lease)
		   : vd_buf_addf(p, "%s/%s" SPOOL_SUFFIX, s->dir, lease);
}

/* lock held */
static struct entry *find(struct vd_spool *s, const char *lease, struct entry **prev)
{
	struct entry *p = NULL;

	for (struct entry *e = s->head; e; p = e, e = e->next)
		if (!strcmp(e->lease, lease)) {
			if (prev)
				*prev = p;
			return e;
		}
	return NULL;
}

/* lock held */
static void unlink_entry(struct vd_spool *s, struct entry *e, struct entry *prev)
{
	if (prev)
		prev->next = e->next;
	else
		s->head = e->next;
	if (s->tail == e)
		s->tail = prev;
	e->next = NULL;
}

/* lock held */
static void append(struct vd_spool *s, struct entry *e)
{
	e->next = NULL;
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
}

/* Read and check the header of the spool file at path (size bytes):
 * fills e's lease, words and header length. -EBADMSG when it is not a
 * whole spool file. */
static int read_header(struct entry *e, const char *path, uint64_t size,
		       const char *lease)
{
	char buf[SPOOL_HEADER_MAX];
	json_t *j = NULL;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -EBADMSG;
	char *nl;

	if (fd < 0)
		return -errno;
	got = pread(fd, buf, sizeof(buf), 0);
	close(fd);
	if (got <= 0)
		return got < 0 ? -errno : -EBADMSG;
	nl = memchr(buf, '\n', (size_t)got);
	if (!nl)
		return -EBADMSG;
	j = json_loadb(buf, (size_t)(nl - buf), 0, NULL);
	const char *id = json_string_value(json_object_get(j, "lease"));
	const char *what = json_string_value(json_object_get(j, "what"));
	json_int_t body = json_integer_value(json_object_get(j, "body"));
	e->hdr = (size_t)(nl - buf) + 1;
	/* The body's length is the proof that the whole file is there. */
	if (id && !strcmp(id, lease) && body >= 0 && (uint64_t)body + e->hdr == size) {
		memcpy(e->lease, lease, VD_ID_SIZE);
		snprintf(e->what, sizeof(e->what), "%s", what ? what : "");
		e->size = size;
		rc = 0;
	}
	json_decref(j);
	return rc;
}

static int by_mtime(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;

	return x->mtime_ns < y->mtime_ns ? -1 : x->mtime_ns > y->mtime_ns;
}

/* Load what an earlier run left: whole results in order of writing;
 * temporary files (a write cut short) removed; files that are not whole
 * results renamed to *.bad, once, and left alone. */
static int load(struct vd_spool *s)
{
	struct entry **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir(s->dir);
	int rc = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		struct vd_buf p = VD_BUF_INIT(8192);
		size_t len = strlen(de->d_name);
		char lease[VD_ID_SIZE];
		struct stat st;
		struct entry *e;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		vd_buf_addf(&p, "%s/%s", s->dir, de->d_name);
		if (de->d_name[0] == '.' && len > 4 && !strcmp(de->d_name + len - 4, ".tmp")) {
			vd_info("spool: removing %s, a result whose writing was cut short",
				vd_buf_cstr(&p));
			unlink(vd_buf_cstr(&p));
			vd_buf_release(&p);
			continue;
		}
		if (len != VD_ID_LEN + strlen(SPOOL_SUFFIX) ||
		    strcmp(de->d_name + VD_ID_LEN, SPOOL_SUFFIX) != 0 ||
		    stat(vd_buf_cstr(&p), &st) != 0 || !S_ISREG(st.st_mode)) {
			vd_buf_release(&p);
			continue;
		}
		memcpy(lease, de->d_name, VD_ID_LEN);
		lease[VD_ID_LEN] = '\0';
		e = vd_id_valid(lease) ? calloc(1, sizeof(*e)) : NULL;
		if (!e) {
			vd_buf_release(&p);
			continue;
		}
		if (read_header(e, vd_buf_cstr(&p), (uint64_t)st.st_size, lease) != 0) {
			struct vd_buf bad = VD_BUF_INIT(8192);

			vd_buf_addf(&bad, "%s/%s.bad", s->dir, lease);
			vd_warn("spool: %s is not a whole result; kept as %s and not sent",
				vd_buf_cstr(&p), vd_buf_cstr(&bad));
			rename(vd_buf_cstr(&p), vd_buf_cstr(&bad));
			vd_buf_release(&bad);
			vd_buf_release(&p);
			free(e);
			continue;
		}
		e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		vd_buf_release(&p);
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct entry **nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				free(e);
				rc = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[n++] = e;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), by_mtime);
	for (size_t i = 0; i < n; i++) {
		if (rc) {
			free(v[i]);
			continue;
		}
		append(s, v[i]);
		s->n++;
		s->bytes += v[i]->size;
	}
	free(v);
	return rc;
}

int vd_spool_open(struct vd_spool **out, const char *dir, uint64_t cap)
{
	struct vd_spool *s = calloc(1, sizeof(*s));
	int rc;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->cap = cap;
	s->dir = strdup(dir);
	rc = s->dir ? vd_mkdir_p(dir, 0700) : -ENOMEM;
	if (!rc)
		rc = load(s);
	if (rc) {
		vd_spool_close(s);
		return rc;
	}
	*out = s;
	return 0;
}

void vd_spool_close(struct vd_spool *s)
{
	if (!s)
		return;
	while (s->head) {
		struct entry *e = s->head;

		s->head = e->next;
		free(e);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->dir);
	free(s);
}

const char *vd_spool_dir(const struct vd_spool *s)
{
	return s->dir;
}

int vd_spool_put(struct vd_spool *s, const char *lease, const char *what,
		 const struct vd_client_piece *body, size_t n)
{
	struct vd_buf tmp = VD_BUF_INIT(8192), fin = VD_BUF_INIT(8192);
	struct entry *e = calloc(1, sizeof(*e));
	uint64_t total = 0;
	json_t *h = NULL;
	char *line = NULL;
	int fd = -1, rc;

	if (!e)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	rc = find(s, lease, NULL) ? -EEXIST : 0;
	pthread_mutex_unlock(&s->lock);
	if (rc)
		goto out;
	for (size_t i = 0; i < n; i++)
		total += body[i].n;
	h = json_pack("{s:s, s:s, s:I}", "lease", lease, "what", what, "body",
		      (json_int_t)total);
	line = h ? json_dumps(h, JSON_COMPACT) : NULL;
	if (!line || path_of(&tmp, s, lease, true) || path_of(&fin, s, lease, false)) {
		rc = -ENOMEM;
		goto out;
	}
	/* O_CLOEXEC: a unit's process started meanwhile must not inherit it. */
	fd = open(vd_buf_cstr(&tmp), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = vd_write_all(fd, line, strlen(line));
	if (!rc)
		rc = vd_write_all(fd, "\n", 1);
	for (size_t i = 0; !rc && i < n; i++)
		if (body[i].n)
			rc = vd_write_all(fd, body[i].p, body[i].n);
	if (!rc && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && !rc)
		rc = -errno;
	fd = -1;
	if (!rc && rename(vd_buf_cstr(&tmp), vd_buf_cstr(&fin)) != 0)
		rc = -errno;
	if (rc) {
		unlink(vd_buf_cstr(&tmp));
		goto out;
	}
	/* The rename is durable once the directory is. If that fails the
	 * file is still there for us to send; only a crash might lose it. */
	if (vd_fsync_dir(s->dir) != 0)
		vd_warn("spool: cannot fsync %s", s->dir);
	memcpy(e->lease, lease, VD_ID_SIZE);
	snprintf(e->what, sizeof(e->what), "%s", what);
	e->hdr = strlen(line) + 1;
	e->size = e->hdr + total;
	pthread_mutex_lock(&s->lock);
	append(s, e);
	s->n++;
	s->bytes += e->size;
	pthread_mutex_unlock(&s->lock);
	e = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(e);
	free(line);
	json_decref(h);
	vd_buf_release(&tmp);
	vd_buf_release(&fin);
	return rc;
}

int vd_spool_first(struct vd_spool *s, char lease[VD_ID_SIZE], char *what, size_t whatn)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&s->lock);
	if (s->head) {
		memcpy(lease, s->head->lease, VD_ID_SIZE);
		snprintf(what, whatn, "%s", s->head->what);
		rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int vd_spool_map(struct vd_spool_body *b, struct vd_spool *s, const char *lease)
{
	struct vd_buf p = VD_BUF_INIT(8192);
	struct entry *e;
	size_t hdr = 0;
	uint64_t size = 0;
	struct stat st;
	int fd = -1, rc = 0;

	memset(b, 0, sizeof(*b));
	pthread_mutex_lock(&s->lock);
	e = find(s, lease, NULL);
	if (e) {
		hdr = e->hdr;
		size = e->size;
	}
	pthread_mutex_unlock(&s->lock);
	if (!e)
		return -ENOENT;
	if (path_of(&p, s, lease, false)) {
		rc = -ENOMEM;
		goto out;
	}
	fd = open(vd_buf_cstr(&p), O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if ((uint64_t)st.st_size != size) {
		rc = -EBADMSG;
		goto out;
	}
	b->map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (b->map == MAP_FAILED) {
		b->map = NULL;
		rc = -errno;
		goto out;
	}
	b->maplen = (size_t)size;
	b->p = (const char *)b->map + hdr;
	b->n = (size_t)size - hdr;
out:
	if (fd >= 0)
		close(fd);
	vd_buf_release(&p);
	return rc;
}

void vd_spool_unmap(struct vd_spool_body *b)
{
	if (b->map)
		munmap(b->map, b->maplen);
	memset(b, 0, sizeof(*b));
}

void vd_spool_done(struct vd_spool *s, const char *lease)
{
	struct vd_buf p = VD_BUF_INIT(8192);
	struct entry *e, *prev = NULL;

	pthread_mutex_lock(&s->lock);
	e = find(s, lease, &prev);
	if (e) {
		unlink_entry(s, e, prev);
		s->n--;
		s->bytes -= e->size;
	}
	pthread_mutex_unlock(&s->lock);
	if (e && !path_of(&p, s, lease, false) && unlink(vd_buf_cstr(&p)) != 0 &&
	    errno != ENOENT)
		vd_warn("spool: cannot remove %s: %s", vd_buf_cstr(&p), strerror(errno));
	free(e);
	vd_buf_release(&p);
}

void vd_spool_rotate(struct vd_spool *s, const char *lease)
{
	struct entry *e, *prev = NULL;

	pthread_mutex_lock(&s->lock);
	e = find(s, lease, &prev);
	if (e && e != s->tail) {
		unlink_entry(s, e, prev);
		append(s, e);
	}
	pthread_mutex_unlock(&s->lock);
}

int vd_spool_ids(struct vd_strv *out, struct vd_spool *s, size_t max)
{
	int rc = 0;
	size_t i = 0;

	pthread_mutex_lock(&s->lock);
	for (struct entry *e = s->head; e && i < max && !rc; e = e->next, i++)
		rc = vd_strv_push(out, e->lease);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void vd_spool_usage(struct vd_spool *s, size_t *count, uint64_t *bytes)
{
	pthread_mutex_lock(&s->lock);
	if (count)
		*count = s->n;
	if (bytes)
		*bytes = s->bytes;
	pthread_mutex_unlock(&s->lock);
}

bool vd_spool_over(struct vd_spool *s)
{
	bool over;

	pthread_mutex_lock(&s->lock);
	over = s->bytes >= s->cap;
	pthread_mutex_unlock(&s->lock);
	return over;
}
