/*
 * cmd_put.c - `vdfs put --task T [--name NAME] [--wait] FILE|DIR...`:
 * submit files and trees from any machine that reaches the daemon, sending
 * only the chunks its store lacks (docs/protocol.md, "Upload: submitting
 * from another machine"; docs/upload.md).
 *
 * Contract:
 *  - each FILE becomes a file version named by its basename (or --name),
 *    the version `cp FILE MNT/tasks/T/data/` makes; each DIR a tree
 *    version, the one `cp -r DIR MNT/tasks/T/data/` makes (modes are the
 *    permission bits less the umask, as cp -r leaves them; symlinks are
 *    kept as their target strings, never followed; FIFOs, sockets and
 *    devices are left out with a warning);
 *  - files are cut with the daemon's own chunker (daemon/chunker.c) and
 *    its parameters (GET /v1/upload), read in windows (never whole in
 *    memory), each chunk named by its SHA-256; the daemon is asked which
 *    it lacks (POST /v1/chunks/missing), only those are sent (POST
 *    /v1/chunks, each once per put, about 8 MiB a request and two
 *    requests at a time, re-read from the file), then the manifest is
 *    committed (POST
 *    /v1/tasks/T/versions); a 409 naming chunks gone meanwhile sends
 *    them and commits again;
 *  - stdout gets one line per argument, `<data-id>  <name>`; with --wait,
 *    each line is followed by that version's result.csv once its run is
 *    done;
 *  - nothing is kept locally: a put cut short (^C, kill -9, a lost
 *    network) is resumed by running it again, which asks anew what is
 *    missing (the daemon keeps uploaded chunks a day);
 *  - a file that changes while it is put fails the put, naming it.
 *
 * Cutting and hashing run in a thread of their own (the cutter), ahead of
 * the main thread, which asks and fills batches (the sender); two poster
 * threads send the batches, each on its own kept-alive connection (see
 * "the posters" below). The cutter stays at most LEAD_MAX bytes ahead of
 * what the daemon holds, so that what the sender re-reads is still in the
 * page cache, and memory stays bounded (only chunk records, some 60 bytes
 * a chunk, are kept, and three batch bodies).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>

#include "put.h"

/* What the cutter reads at a time, as the daemon's ingest does. */
#define READ_BLOCK ((size_t)8 << 20)
/* The body of one POST /v1/chunks: about this much (never over the
 * daemon's batch_max); a larger chunk goes alone. Two are out at a time
 * (VD_PUT_POSTERS), so about 16 MiB is in flight: what the daemon holds
 * in memory for this put, and what a put killed half-way sends again. */
#define BATCH_TARGET ((size_t)8 << 20)
/* Content the cutter may have cut ahead of what the daemon holds. */
#define LEAD_MAX ((uint64_t)256 << 20)
/* Content per "which are missing" question (fewer when the cutter is
 * done, or at query_max fingerprints). */
#define ROUND_BYTES ((uint64_t)32 << 20)
/* Commits answered 409 (chunks removed meanwhile) before giving up. */
#define COMMIT_TRIES 4
/* A 503 with Retry-After (connections turned away) is tried this often. */
#define BUSY_TRIES 10
#define FP_LEN VD_PUT_FP_LEN
#define FP_HEX (2 * FP_LEN)
#define PATH_CAP VD_PUT_PATH_CAP
#define REPLY_CAP ((size_t)16 << 20)
#define PROGRESS_MS 200
#define WAIT_POLL_MS 500

static int run(int argc, char **argv);

enum { OPT_NAME = 'n', OPT_WAIT = 'w', OPT_TIMEOUT = 0x3001, OPT_TASK = 't', OPT_QUIET = 'q' };

static const struct vd_doc_opt opts[] = {
	{ "task", OPT_TASK, "TASK", "the task to submit into (required)", VD_DOC_SHORT },
	{ "name", OPT_NAME, "NAME",
	  "the version's data name instead of the argument's basename (one argument "
	  "only)", VD_DOC_SHORT },
	{ "wait", OPT_WAIT, NULL,
	  "after the commit, wait until each version's run is done or failed and "
	  "print its result.csv after its ID line", VD_DOC_SHORT },
	{ "timeout", OPT_TIMEOUT, "S",
	  "with --wait, give up after S seconds of waiting (exit 2)", 0 },
	{ "quiet", OPT_QUIET, NULL,
	  "no progress line and no summary on stderr (errors and warnings still)",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_put = {
	.name = "put",
	.args = "-t TASK FILE|DIR...",
	.summary = "submit files and trees into a task, sending only what the daemon lacks",
	.description =
		"Submits each FILE as a file version and each DIR as a tree version of "
		"task TASK, named by its basename (or --name): the same version, with the "
		"same data ID, that cp FILE or cp -r DIR into tasks/TASK/data/ in the "
		"mount makes. Works from any machine that reaches the daemon, with a "
		"submitter's or operator's token (vdfs user add).\n\n"
		"Files are cut into chunks the way the daemon cuts them, and only the "
		"chunks the daemon does not hold yet are sent: a file submitted again "
		"with a few lines edited sends little more than the edited chunks. "
		"Nothing is kept on this machine, so a put that was cut short (^C, "
		"kill, a lost network) is resumed by running it again: the chunks sent "
		"before are not sent again (the daemon keeps them a day). In a tree, "
		"modes are kept as cp -r makes them (the permission bits less the "
		"umask), symlinks as they are (never followed), and FIFOs, sockets and "
		"devices are left out with a warning; a DIR of nothing but directories "
		"is refused, as the mount makes no version of one. A file that changes "
		"while it is put fails the put; put it again once it is quiet.\n\n"
		"Prints one line per argument on standard output, the data ID first: "
		"<data-id>  <name>. With --wait, each line is followed by that "
		"version's result.csv once its run is done. On a terminal a progress "
		"line on standard error shows bytes done, rate and time left; at the "
		"end one line says how much was sent of how much content.\n\n"
		" vdfs put --task wc novels/ big.txt\n"
		" vdfs put --task wc --name today.csv --wait /tmp/export.csv > result.csv\n\n"
		"Exit: 0 done; 1 failed (or with --wait, a run failed); 2 a usage error, "
		"a refusal (no such task, not yours, a bad name), or with --wait a "
		"timeout.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static const char hexd[] = "0123456789abcdef";

static void fp_hex(char out[FP_HEX + 1], const unsigned char fp[FP_LEN])
{
	for (size_t i = 0; i < FP_LEN; i++) {
		out[2 * i] = hexd[fp[i] >> 4];
		out[2 * i + 1] = hexd[fp[i] & 15];
	}
	out[FP_HEX] = '\0';
}

static int fp_parse(unsigned char fp[FP_LEN], const char *s)
{
	if (!s || strlen(s) != FP_HEX)
		return -EINVAL;
	for (size_t i = 0; i < FP_HEX; i++) {
		const char *d = strchr(hexd, s[i]);
		if (!s[i] || !d)
			return -EINVAL;
		if (i % 2 == 0)
			fp[i / 2] = (unsigned char)((d - hexd) << 4);
		else
			fp[i / 2] |= (unsigned char)(d - hexd);
	}
	return 0;
}

/* ---- the fingerprint set ------------------------------------------------ */

static size_t fp_slot(const struct vd_put_fpset *s, const unsigned char fp[FP_LEN])
{
	uint64_t h;
	/* SHA-256 bytes are uniform already: any eight of them hash. */
	memcpy(&h, fp, sizeof h);
	size_t i = (size_t)h & (s->cap - 1);
	while (s->v[i].state && memcmp(s->v[i].fp, fp, FP_LEN))
		i = (i + 1) & (s->cap - 1);
	return i;
}

static struct vd_put_fpent *fp_find(struct vd_put_fpset *s, const unsigned char fp[FP_LEN])
{
	if (!s->cap)
		return NULL;
	struct vd_put_fpent *e = &s->v[fp_slot(s, fp)];
	return e->state ? e : NULL;
}

/* The entry of fp, made (state 0 until the caller sets one) when new. */
static int fp_get(struct vd_put_fpent **out, struct vd_put_fpset *s, const unsigned char fp[FP_LEN])
{
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024;
		struct vd_put_fpent *nv = calloc(ncap, sizeof *nv);
		if (!nv)
			return -ENOMEM;
		struct vd_put_fpset ns = { .v = nv, .cap = ncap, .n = s->n };
		for (size_t i = 0; i < s->cap; i++)
			if (s->v[i].state)
				nv[fp_slot(&ns, s->v[i].fp)] = s->v[i];
		free(s->v);
		*s = ns;
	}
	struct vd_put_fpent *e = &s->v[fp_slot(s, fp)];
	if (!e->state) {
		memcpy(e->fp, fp, FP_LEN);
		s->n++;
	}
	*out = e;
	return 0;
}

/* ---- progress ----------------------------------------------------------- */

static void clock_text(char out[32], double s)
{
	long t = s < 0 ? 0 : s > 359999 ? 359999 : (long)(s + 0.5);
	if (t >= 3600)
		snprintf(out, 32, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(out, 32, "%ld:%02ld", t / 60, t % 60);
}

/*
 * The progress line, like rsync --info=progress2: phase, content done of
 * all, percent, rate and time left. The rate is over the last few seconds
 * (samples at each redraw), so that a stretch of known chunks followed by
 * one of sending shows what is going on now.
 */
void vd_put_progress(struct vd_put *p, bool force)
{
	if (!p->show)
		return;
	int64_t now = vd_mono_ms();
	if (!force && now - p->last_show < PROGRESS_MS)
		return;
	p->last_show = now;
	uint64_t done = p->done;
	for (size_t i = 0; i < VD_PUT_SLOTS; i++)
		done += atomic_load(&p->slots[i].inflight);
	if (done > p->total)
		done = p->total;
	unsigned k = p->rn % 16, old = p->rn >= 16 ? (p->rn + 1) % 16 : 0;
	p->rt[k] = now;
	p->rd[k] = done;
	p->rn++;
	char d[32], t[32], r[32], eta[32];
	vd_cli_human_bytes(d, done);
	vd_cli_human_bytes(t, p->total);
	if (!strcmp(p->phase, "scanning")) {
		if (p->nfiles)
			fprintf(stderr, "\rscanning   %zu files, %s\033[K", p->nfiles, t);
		return;
	}
	double dt = (double)(now - p->rt[old]) / 1000.0;
	double rate = dt > 0.3 ? (double)(done - p->rd[old]) / dt : 0;
	vd_cli_human_bytes(r, (unsigned long long)rate);
	if (rate > 0)
		clock_text(eta, (double)(p->total - done) / rate);
	else
		snprintf(eta, sizeof eta, "-:--");
	fprintf(stderr, "\r%-10s %10s of %-10s %3d %%  %10s/s  ETA %s\033[K", p->phase, d, t,
		p->total ? (int)(done * 100 / p->total) : 100, r, eta);
}

void vd_put_progress_clear(struct vd_put *p)
{
	if (p->show)
		fputs("\r\033[K", stderr);
}

/* The sender's own requests (questions, commits): a redraw now and then
 * while one is under way. */
static void on_sent(void *arg, uint64_t sent)
{
	(void)sent;
	vd_put_progress(arg, false);
}

/* ---- talking to the daemon ---------------------------------------------- */

static void nap_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * One request on session s (the sender's, or a poster's). A full state
 * disk (507) is waited out, as its Retry-After says, and the request sent
 * again, until it is taken or the put is abandoned; so is a connection the
 * daemon turned away (503 with Retry-After), a few times. 0 with *status
 * and *reply (the JSON answer, NULL when it is not JSON); 1 when the
 * daemon could not be reached (after a line on stderr, or with the reason
 * in s->err when s keeps its errors).
 */
static int call(json_t **reply, long *status, struct vd_put *p, struct vd_cli_session *s,
		const char *method, const char *path, const char *ctype, const void *body,
		size_t len, bool patient)
{
	struct vd_buf out = VD_BUF_INIT(REPLY_CAP);
	int64_t said = -1;
	int busy = 0, rc;
	*reply = NULL;
	for (;;) {
		vd_buf_reset(&out);
		if ((rc = vd_cli_session_request(&out, status, s, method, path, ctype, body, len,
						 patient)))
			goto out;
		long wait = s->retry_after > 0 ? s->retry_after : 5;
		if (atomic_load(&p->abandon) ||
		    !(*status == 507 || (*status == 503 && s->retry_after >= 0 && ++busy < BUSY_TRIES)))
			break;
		int64_t now = vd_mono_ms();
		if (said < 0 || now - said > 60000) {
			char why[512];
			vd_cli_reply_error(why, sizeof why, &out);
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s (HTTP %ld); trying again in %ld s\n", why,
				*status, wait);
			said = now;
		}
		nap_ms(wait * 1000);
	}
	*reply = json_loadb(out.data ? out.data : "", out.len, 0, NULL);
	if (*reply && !json_is_object(*reply)) {
		json_decref(*reply);
		*reply = NULL;
	}
out:
	vd_buf_release(&out);
	return rc;
}

/* The exit code of a refusal, after one line on stderr with the daemon's
 * reason: 2 for what the user is to fix (a bad request, a role that may
 * not, no such task), 1 otherwise. */
static int refused(struct vd_put *p, long status, const json_t *reply, const char *what)
{
	const char *e = json_string_value(json_object_get(reply, "error"));
	vd_put_progress_clear(p);
	fprintf(stderr, "vdfs put: %s%s%s (HTTP %ld)\n", what ? what : "", what ? ": " : "",
		e && *e ? e : "the daemon gave no reason", status);
	return status == 400 || status == 403 || status == 404 ? 2 : 1;
}

/* GET /v1/upload: how the daemon cuts. Exit code. */
static int upload_info(struct vd_put *p)
{
	json_t *j = NULL;
	long st;
	int rc = call(&j, &st, p, &p->s, "GET", "/v1/upload", NULL, NULL, 0, false);
	if (rc)
		goto out;
	if (st != 200 || !j) {
		rc = refused(p, st, j, NULL);
		goto out;
	}
	const json_t *c = json_object_get(j, "chunking");
	long long mn = vd_cli_jint(c, "min"), avg = vd_cli_jint(c, "avg"),
		  mx = vd_cli_jint(c, "max"), hard = vd_cli_jint(c, "hard_max"),
		  bmax = vd_cli_jint(j, "batch_max"), qmax = vd_cli_jint(j, "query_max");
	rc = 1;
	if (strcmp(vd_cli_jstr(j, "fingerprint"), "sha256")) {
		fprintf(stderr, "vdfs put: the daemon names chunks by '%s', which this vdfs "
			"does not know (it makes sha256)\n", vd_cli_jstr(j, "fingerprint"));
		goto out;
	}
	p->prm.min_size = mn > 0 ? (size_t)mn : 0;
	p->prm.avg_size = avg > 0 ? (size_t)avg : 0;
	p->prm.max_size = mx > 0 ? (size_t)mx : 0;
	p->prm.hard_max = hard > 0 && hard < UINT32_MAX ? (size_t)hard : 0;
	/* A frame's head line is at most 64 + 1 + 20 + 1 bytes. */
	if (vd_chunker_params_check(&p->prm) || bmax < hard + 128 || qmax < 1) {
		fprintf(stderr, "vdfs put: the daemon's upload parameters (GET /v1/upload) "
			"make no sense: min %lld, avg %lld, max %lld, hard_max %lld, batch_max "
			"%lld, query_max %lld\n", mn, avg, mx, hard, bmax, qmax);
		goto out;
	}
	p->batch_max = (size_t)bmax;
	p->query_max = (size_t)qmax;
	p->batch_target = BATCH_TARGET < p->batch_max - 128 ? BATCH_TARGET : p->batch_max - 128;
	rc = 0;
out:
	json_decref(j);
	return rc;
}

/* ---- the cutter ---------------------------------------------------------- */

/* Stop the cutter with an exit code and a message (for the sender to
 * print; rc 0 only stops it). Under mu. */
static void cut_fail(struct vd_put *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cut_fail(struct vd_put *p, int rc, const char *fmt, ...)
{
	va_list ap;
	if (!p->cut_rc && rc) {
		p->cut_rc = rc;
		va_start(ap, fmt);
		vsnprintf(p->cut_why, sizeof p->cut_why, fmt, ap);
		va_end(ap);
	}
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
}

/* One chunk cut: its record for the sender. Under no lock. */
static int cut_push(struct vd_put *p, size_t fi, uint64_t off, const unsigned char *b, size_t len)
{
	struct vd_put_chunk c = { .off = off, .len = (uint32_t)len, .file = (uint32_t)fi };
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, b, len, c.fp) < 0)
		return -EIO;
	pthread_mutex_lock(&p->mu);
	if (p->nchunks == p->ccap) {
		size_t ncap = p->ccap ? p->ccap * 2 : 1024;
		struct vd_put_chunk *nc = realloc(p->chunks, ncap * sizeof *nc);
		if (!nc) {
			pthread_mutex_unlock(&p->mu);
			return -ENOMEM;
		}
		p->chunks = nc;
		p->ccap = ncap;
	}
	p->chunks[p->nchunks++] = c;
	p->files[fi].cn++;
	p->cut_bytes += len;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

/*
 * Cut regular file fi into chunks, reading it in windows of READ_BLOCK
 * plus max_size (the chunker decides a cut on at most max_size bytes),
 * grown towards hard_max only for a record longer than max_size. *buf
 * (*cap bytes) is the window, kept across files. 0, or -ECANCELED when the
 * cutter was stopped, or another -errno after cut_fail.
 */
static int cut_file(struct vd_put *p, size_t fi, unsigned char **buf, size_t *cap)
{
	const struct vd_put_file *f = &p->files[fi];
	size_t start = 0, end = 0, limit = p->prm.hard_max + READ_BLOCK;
	uint64_t off = 0, rd = 0;
	bool eof = false;
	struct stat st;
	int rc = 0;
	int fd = open(f->disk, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!vd_put_same_file(f, &st)) {
		rc = -ESTALE;
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	pthread_mutex_lock(&p->mu);
	p->files[fi].cfirst = p->nchunks;
	pthread_mutex_unlock(&p->mu);
	for (;;) {
		size_t cut = 0;
		if ((rc = vd_chunker_cut(&cut, *buf + start, end - start, eof, &p->prm)))
			goto out;
		if (cut) {
			if ((rc = cut_push(p, fi, off, *buf + start, cut)))
				goto out;
			start += cut;
			off += cut;
			continue;
		}
		if (eof)
			break;
		/* Keep within LEAD_MAX of what the daemon holds. */
		pthread_mutex_lock(&p->mu);
		while (!p->stop && p->cut_bytes - p->held > LEAD_MAX)
			pthread_cond_wait(&p->cv, &p->mu);
		bool stop = p->stop;
		pthread_mutex_unlock(&p->mu);
		if (stop) {
			rc = -ECANCELED;
			goto out;
		}
		if (start > 0 && *cap - end < READ_BLOCK) {
			memmove(*buf, *buf + start, end - start);
			end -= start;
			start = 0;
		}
		if (*cap - end < ((size_t)1 << 20)) {
			/* A record longer than max_size: the chunker wants more
			 * of it in one window. It refuses past hard_max, so the
			 * limit is never passed. */
			size_t ncap = *cap * 2 < limit ? *cap * 2 : limit;
			unsigned char *nb = ncap > *cap ? realloc(*buf, ncap) : NULL;
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			*buf = nb;
			*cap = ncap;
		}
		ssize_t got = pread(fd, *buf + end, *cap - end, (off_t)rd);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = -errno;
			goto out;
		}
		if (got == 0)
			eof = true;
		end += (size_t)got;
		rd += (uint64_t)got;
	}
	if (fstat(fd, &st) < 0 || !vd_put_same_file(f, &st) || rd != f->size)
		rc = -ESTALE;
out:
	pthread_mutex_lock(&p->mu);
	if (rc == -ESTALE)
		cut_fail(p, 1, "%s changed while it was being read; put it again once it is "
			 "quiet", f->disk);
	else if (rc == -E2BIG)
		/* The chunker cuts after the last line end before max_size,
		 * so a record too long is the one the chunk starts with. */
		cut_fail(p, 1, "%s: the record (line) starting at byte %llu is longer than %zu "
			 "bytes, the longest the daemon takes; is it a text file?", f->disk,
			 (unsigned long long)off, p->prm.hard_max);
	else if (rc && rc != -ECANCELED)
		cut_fail(p, 1, "%s: %s", f->disk, strerror(-rc));
	pthread_mutex_unlock(&p->mu);
	if (fd >= 0)
		close(fd);
	return rc;
}

static void *cutter_main(void *arg)
{
	struct vd_put *p = arg;
	size_t cap = READ_BLOCK + p->prm.max_size;
	unsigned char *buf = malloc(cap);
	pthread_mutex_lock(&p->mu);
	if (!buf)
		cut_fail(p, 1, "out of memory");
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; buf && i < p->nfiles; i++)
		if (p->files[i].type == S_IFREG && cut_file(p, i, &buf, &cap))
			break;
	free(buf);
	pthread_mutex_lock(&p->mu);
	p->cut_done = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* ---- the sender ------------------------------------------------------------ */

/* Tell the cutter how much the daemon holds now. */
static void note_held(struct vd_put *p)
{
	pthread_mutex_lock(&p->mu);
	p->held = p->done;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

static int nomem(void)
{
	fprintf(stderr, "vdfs put: out of memory\n");
	return 1;
}

static void changed_msg(struct vd_put *p, const struct vd_put_file *f)
{
	vd_put_progress_clear(p);
	fprintf(stderr, "vdfs put: %s changed while it was being put; put it again once it "
		"is quiet\n", f->disk);
}

/* The bytes of chunk c, re-read from its file into dst. Exit code. */
static int chunk_read(struct vd_put *p, const struct vd_put_chunk *c, void *dst)
{
	const struct vd_put_file *f = &p->files[c->file];
	struct stat st;
	int rc = 0;
	if (p->fd < 0 || p->fd_file != c->file) {
		if (p->fd >= 0)
			close(p->fd);
		p->fd_file = c->file;
		p->fd = open(f->disk, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (p->fd < 0 || fstat(p->fd, &st) < 0)
			rc = -errno;
		else if (!vd_put_same_file(f, &st))
			rc = -ESTALE;
	}
	/* -EIO: the file ends before the chunk does. */
	if (!rc && !(rc = vd_pread_all(p->fd, dst, c->len, (off_t)c->off)))
		return 0;
	if (rc == -ESTALE || rc == -EIO) {
		changed_msg(p, f);
	} else {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: %s: %s\n", f->disk, strerror(-rc));
	}
	return 1;
}

/* ---- the posters ------------------------------------------------------------ */

/*
 * Batches are sent by VD_PUT_POSTERS threads, each on a connection of its
 * own. The daemon answers a batch only once it is durable (its pack synced,
 * then its catalog batch), so with one request at a time its disk and its
 * CPU would wait on each other; with two, it receives and checks one batch
 * while it syncs the other (measured on loopback: a 1 GiB put took 4.1 s
 * instead of 6.0 s). The sender fills a FREE slot, hands it over (READY), and collects
 * what came back (DONE) whenever it needs a slot, or before a commit, when
 * everything must be in.
 */

static void slot_sent(void *arg, uint64_t sent)
{
	struct vd_put_slot *sl = arg;
	atomic_store(&sl->inflight, sent);
}

static void *poster_main(void *arg)
{
	struct vd_put_poster *ps = arg;
	struct vd_put *p = ps->p;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		struct vd_put_slot *sl = NULL;
		for (size_t i = 0; i < VD_PUT_SLOTS && !sl; i++)
			if (p->slots[i].state == VD_PUT_SLOT_READY)
				sl = &p->slots[i];
		if (!sl && p->posters_quit)
			break;
		if (!sl) {
			pthread_cond_wait(&p->cv, &p->mu);
			continue;
		}
		sl->state = VD_PUT_SLOT_POSTING;
		pthread_mutex_unlock(&p->mu);
		json_t *reply = NULL;
		long st = 0;
		ps->s.on_sent_arg = sl;
		int rc = call(&reply, &st, p, &ps->s, "POST", "/v1/chunks",
			      "application/octet-stream", sl->body.data, sl->body.len, false);
		pthread_mutex_lock(&p->mu);
		sl->rc = rc;
		sl->status = st;
		sl->reply = reply;
		snprintf(sl->err, sizeof sl->err, "%s", rc ? ps->s.err : "");
		sl->state = VD_PUT_SLOT_DONE;
		pthread_cond_broadcast(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Start the posters, each with its session. Exit code. */
static int posters_start(struct vd_put *p)
{
	for (size_t i = 0; i < VD_PUT_POSTERS; i++) {
		struct vd_put_poster *ps = &p->posters[i];
		ps->p = p;
		if (vd_cli_session_open(&ps->s, &p->conn))
			return 1;
		ps->s.keep_errors = true;
		ps->s.on_sent = slot_sent;
		int rc = pthread_create(&ps->th, NULL, poster_main, ps);
		if (rc) {
			fprintf(stderr, "vdfs put: cannot start a thread: %s\n", strerror(rc));
			return 1;
		}
		ps->started = true;
	}
	return 0;
}

/* Stop the posters once what they hold is answered (after a failure,
 * batches not yet sent are dropped, and a full disk is no longer waited
 * out). */
static void posters_stop(struct vd_put *p, bool failed)
{
	pthread_mutex_lock(&p->mu);
	for (size_t i = 0; failed && i < VD_PUT_SLOTS; i++)
		if (p->slots[i].state == VD_PUT_SLOT_READY)
			p->slots[i].state = VD_PUT_SLOT_FREE;
	if (failed)
		atomic_store(&p->abandon, true);
	p->posters_quit = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < VD_PUT_POSTERS; i++) {
		struct vd_put_poster *ps = &p->posters[i];
		if (ps->started)
			pthread_join(ps->th, NULL);
		ps->started = false;
		vd_cli_session_close(&ps->s);
	}
}

/*
 * What a DONE slot's answer means. A 400 is most likely a file that
 * changed since it was cut (its bytes no longer match their fingerprint):
 * the batch's files are looked at again to name it. Exit code.
 */
static int slot_reap(struct vd_put *p, struct vd_put_slot *sl)
{
	int rc = 0;
	if (sl->rc) {
		vd_put_progress_clear(p);
		fprintf(stderr, "vdfs put: sending chunks: %s\n", sl->err);
		rc = 1;
	} else if (sl->status != 200) {
		for (size_t i = 0; sl->status == 400 && !rc && i < sl->n; i++) {
			const struct vd_put_file *f = &p->files[sl->ch[i].file];
			struct stat now;
			if (stat(f->disk, &now) < 0 || !vd_put_same_file(f, &now)) {
				changed_msg(p, f);
				rc = 1;
			}
		}
		if (!rc)
			rc = refused(p, sl->status, sl->reply, "sending chunks");
	} else {
		for (size_t i = 0; i < sl->n; i++) {
			p->done += sl->ch[i].len;
			p->sent += sl->ch[i].len;
		}
		p->sent_chunks += sl->n;
	}
	json_decref(sl->reply);
	sl->reply = NULL;
	sl->n = 0;
	vd_buf_reset(&sl->body);
	atomic_store(&sl->inflight, 0);
	return rc;
}

/* Collect every answer that is in (with all, wait until none is out).
 * Exit code: the first failure's. */
static int slots_reap(struct vd_put *p, bool all)
{
	bool reaped = false;
	int rc = 0;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		bool out = false;
		for (size_t i = 0; i < VD_PUT_SLOTS; i++) {
			struct vd_put_slot *sl = &p->slots[i];
			if (sl->state == VD_PUT_SLOT_DONE) {
				/* DONE is the sender's: no poster touches it. */
				pthread_mutex_unlock(&p->mu);
				int r = slot_reap(p, sl);
				pthread_mutex_lock(&p->mu);
				sl->state = VD_PUT_SLOT_FREE;
				reaped = true;
				if (r && !rc)
					rc = r;
			} else if (sl->state == VD_PUT_SLOT_READY || sl->state == VD_PUT_SLOT_POSTING) {
				out = true;
			}
		}
		if (!all || !out || rc)
			break;
		struct timespec ts = vd_deadline_ms(CLOCK_REALTIME, PROGRESS_MS);
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		pthread_mutex_unlock(&p->mu);
		vd_put_progress(p, false);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	if (reaped && !rc)
		note_held(p);
	return rc;
}

/* A free slot for the batch to fill, waiting for one when all are out.
 * Exit code. */
static int slot_get(struct vd_put *p)
{
	for (;;) {
		int rc = slots_reap(p, false);
		if (rc)
			return rc;
		pthread_mutex_lock(&p->mu);
		for (size_t i = 0; i < VD_PUT_SLOTS && !p->cur; i++)
			if (p->slots[i].state == VD_PUT_SLOT_FREE)
				p->cur = &p->slots[i];
		if (p->cur) {
			p->cur->state = VD_PUT_SLOT_FILLING;
			pthread_mutex_unlock(&p->mu);
			return 0;
		}
		bool done = false;
		while (!done) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec++;
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			for (size_t i = 0; i < VD_PUT_SLOTS; i++)
				done |= p->slots[i].state == VD_PUT_SLOT_DONE;
			pthread_mutex_unlock(&p->mu);
			vd_put_progress(p, false);
			pthread_mutex_lock(&p->mu);
		}
		pthread_mutex_unlock(&p->mu);
	}
}

/* Hand the batch being filled to the posters. */
static void batch_flush(struct vd_put *p)
{
	if (!p->cur)
		return;
	pthread_mutex_lock(&p->mu);
	p->cur->state = p->cur->n ? VD_PUT_SLOT_READY : VD_PUT_SLOT_FREE;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	p->cur = NULL;
}

/* Everything sent, and answered. Exit code. */
static int batch_drain(struct vd_put *p)
{
	batch_flush(p);
	return slots_reap(p, true);
}

/* Frame chunk c into the batch (handing the batch over first when c would
 * take it past batch_target; a larger chunk goes alone). Exit code. */
static int batch_add(struct vd_put *p, const struct vd_put_chunk *c)
{
	char hex[FP_HEX + 1], head[FP_HEX + 32];
	int rc, hn;
	fp_hex(hex, c->fp);
	hn = snprintf(head, sizeof head, "%s %u\n", hex, (unsigned)c->len);
	if (p->cur && p->cur->n && p->cur->body.len + (size_t)hn + c->len > p->batch_target)
		batch_flush(p);
	if (!p->cur && (rc = slot_get(p)))
		return rc;
	struct vd_put_slot *sl = p->cur;
	if (sl->n == sl->cap) {
		size_t ncap = sl->cap ? sl->cap * 2 : 64;
		struct vd_put_chunk *nc = realloc(sl->ch, ncap * sizeof *nc);
		if (!nc)
			return nomem();
		sl->ch = nc;
		sl->cap = ncap;
	}
	/* The bytes go straight from the file into the body. */
	if (vd_buf_add(&sl->body, head, (size_t)hn) || vd_buf_grow(&sl->body, c->len))
		return nomem();
	if ((rc = chunk_read(p, c, sl->body.data + sl->body.len)))
		return rc;
	sl->body.len += c->len;
	sl->body.data[sl->body.len] = '\0';
	sl->ch[sl->n++] = *c;
	return 0;
}

/*
 * Settle round[0 .. n) (chunks base .. base + n): ask which of the
 * fingerprints not met before the daemon lacks, and queue those for
 * sending, each once. Exit code.
 */
static int settle(struct vd_put *p, const struct vd_put_chunk *round, size_t n, size_t base)
{
	json_t *fps = json_array(), *req = NULL, *j = NULL, *x;
	char *text = NULL, hex[FP_HEX + 1];
	uint64_t bytes = 0;
	bool oom = !fps;
	size_t i;
	long st;
	int rc = 1;
	for (i = 0; i < n && !oom; i++) {
		struct vd_put_fpent *e;
		bytes += round[i].len;
		if ((oom = fp_get(&e, &p->set, round[i].fp) != 0) || e->state)
			continue;
		e->state = VD_PUT_FP_ASKED;
		e->chunk = base + i;
		fp_hex(hex, round[i].fp);
		oom = json_array_append_new(fps, json_string(hex)) != 0;
	}
	if (!oom && json_array_size(fps))
		oom = !(req = json_pack("{s:O}", "fingerprints", fps)) ||
		      !(text = json_dumps(req, JSON_COMPACT));
	if (oom) {
		rc = nomem();
		goto out;
	}
	if (text) {
		if ((rc = call(&j, &st, p, &p->s, "POST", "/v1/chunks/missing", NULL, text,
			       strlen(text), false)))
			goto out;
		if (st != 200 || !json_is_array(json_object_get(j, "missing"))) {
			rc = refused(p, st, j, "asking which chunks are missing");
			goto out;
		}
		json_array_foreach(json_object_get(j, "missing"), i, x) {
			unsigned char fp[FP_LEN];
			struct vd_put_fpent *e;
			if (!fp_parse(fp, json_string_value(x)) && (e = fp_find(&p->set, fp)) &&
			    e->state == VD_PUT_FP_ASKED)
				e->state = VD_PUT_FP_MISSING;
		}
	}
	/* What the daemon has, or what is on its way to it already, is done
	 * now; the rest once its batch is answered. */
	for (i = 0; i < n; i++) {
		struct vd_put_fpent *e = fp_find(&p->set, round[i].fp);
		if (e->state == VD_PUT_FP_ASKED)
			e->state = VD_PUT_FP_HAVE;
		if (e->state != VD_PUT_FP_MISSING) {
			p->done += round[i].len;
			continue;
		}
		e->state = VD_PUT_FP_QUEUED;
		if ((rc = batch_add(p, &round[i])))
			goto out;
	}
	p->asked_bytes += bytes;
	note_held(p);
	vd_put_progress(p, false);
	rc = 0;
out:
	free(text);
	json_decref(req);
	json_decref(fps);
	json_decref(j);
	return rc;
}

/*
 * The sender's loop: take the chunks the cutter has cut, ROUND_BYTES (or
 * query_max chunks) at a time, or all that are left once it is done, and
 * settle them; then wait until every batch is answered. Exit code; the
 * cutter is stopped on a failure.
 */
static int send_all(struct vd_put *p)
{
	struct vd_put_chunk *round = NULL;
	size_t rcap = 0;
	int rc = 0;
	p->phase = "sending";
	for (;;) {
		pthread_mutex_lock(&p->mu);
		for (;;) {
			if (p->cut_rc)
				break;
			size_t ready = p->nchunks - p->asked;
			if (p->cut_done || ready >= p->query_max ||
			    p->cut_bytes - p->asked_bytes >= ROUND_BYTES)
				break;
			struct timespec ts = vd_deadline_ms(CLOCK_REALTIME, PROGRESS_MS);
			pthread_cond_timedwait(&p->cv, &p->mu, &ts);
			pthread_mutex_unlock(&p->mu);
			/* Answers that came in meanwhile: reaped, so that the
			 * cutter may go on and the progress moves. */
			if ((rc = slots_reap(p, false)))
				goto out;
			vd_put_progress(p, false);
			pthread_mutex_lock(&p->mu);
		}
		if (p->cut_rc) {
			rc = p->cut_rc;
			pthread_mutex_unlock(&p->mu);
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s\n", p->cut_why);
			goto out;
		}
		size_t base = p->asked, n = p->nchunks - base;
		bool last = p->cut_done && n <= p->query_max;
		if (n > p->query_max)
			n = p->query_max;
		if (n > rcap) {
			struct vd_put_chunk *nr = realloc(round, n * sizeof *nr);
			if (!nr) {
				pthread_mutex_unlock(&p->mu);
				fprintf(stderr, "vdfs put: out of memory\n");
				rc = 1;
				goto out;
			}
			round = nr;
			rcap = n;
		}
		/* A copy: the cutter may move the array while it grows it. */
		if (n)
			memcpy(round, p->chunks + base, n * sizeof *round);
		pthread_mutex_unlock(&p->mu);
		if (n && (rc = settle(p, round, n, base)))
			goto out;
		p->asked = base + n;
		if (last)
			break;
	}
	rc = batch_drain(p);
out:
	if (rc) {
		pthread_mutex_lock(&p->mu);
		cut_fail(p, 0, "%s", "");
		pthread_mutex_unlock(&p->mu);
	}
	free(round);
	return rc;
}

/* ---- commit ---------------------------------------------------------------- */

static json_t *chunk_list(const struct vd_put *p, const struct vd_put_file *f)
{
	json_t *a = json_array();
	char hex[FP_HEX + 1];
	for (size_t i = f->cfirst; a && i < f->cfirst + f->cn; i++) {
		fp_hex(hex, p->chunks[i].fp);
		if (json_array_append_new(a, json_string(hex))) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

/* An entry's JSON, with its chunks (a regular file's) as "chunks". */
static json_t *with_chunks(json_t *e, const struct vd_put *p, const struct vd_put_file *f)
{
	json_t *a = chunk_list(p, f);
	if (!e || !a || json_object_set_new(e, "chunks", a)) {
		json_decref(e);
		return NULL;
	}
	return e;
}

/* The manifest of item it (docs/protocol.md, step 4); NULL without memory. */
static json_t *manifest(const struct vd_put *p, const struct vd_put_item *it)
{
	if (!it->tree) {
		const struct vd_put_file *f = &p->files[it->first];
		return with_chunks(json_pack("{s:s, s:s, s:I}", "name", it->name, "kind", "file",
					     "size", (json_int_t)f->size), p, f);
	}
	json_t *files = json_array(), *m;
	for (size_t i = it->first; files && i < it->first + it->n; i++) {
		const struct vd_put_file *f = &p->files[i];
		json_t *e;
		if (f->type == S_IFREG)
			e = with_chunks(json_pack("{s:s, s:s, s:i, s:I}", "path", f->rel, "type",
						  "file", "mode", (int)f->perm, "size",
						  (json_int_t)f->size), p, f);
		else if (f->type == S_IFDIR)
			e = json_pack("{s:s, s:s, s:i}", "path", f->rel, "type", "dir", "mode",
				      (int)f->perm);
		else
			e = json_pack("{s:s, s:s, s:s}", "path", f->rel, "type", "symlink", "target",
				      f->target);
		if (!e || json_array_append_new(files, e)) {
			json_decref(files);
			files = NULL;
		}
	}
	if (!files)
		return NULL;
	m = json_pack("{s:s, s:s, s:i, s:O}", "name", it->name, "kind", "tree", "mode",
		      (int)it->perm, "files", files);
	json_decref(files);
	return m;
}

/*
 * Commit item it: POST /v1/tasks/T/versions. A 409 lists chunks the
 * daemon no longer holds (a gc swept them between the question and the
 * commit): they are sent again and the commit repeated. Exit code; the
 * data ID in it->data_id, *known when it was a version already.
 */
static int commit(bool *known, struct vd_put *p, struct vd_put_item *it)
{
	struct vd_buf path = VD_BUF_INIT(8192);
	json_t *m = manifest(p, it), *j = NULL, *x;
	char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
	long st;
	size_t i;
	int rc = 1;
	if (!text || vd_buf_addf(&path, "%s/versions", vd_buf_cstr(&p->tpath))) {
		fprintf(stderr, "vdfs put: out of memory\n");
		goto out;
	}
	for (int tries = 1;; tries++) {
		p->phase = "committing";
		vd_put_progress(p, true);
		json_decref(j);
		/* The daemon reads the version back and cuts it again before
		 * it answers: a big one takes a while. */
		if ((rc = call(&j, &st, p, &p->s, "POST", vd_buf_cstr(&path), NULL, text,
			       strlen(text), true)))
			goto out;
		const json_t *missing = json_object_get(j, "missing");
		if (st != 409 || !json_is_array(missing) || tries == COMMIT_TRIES)
			break;
		json_array_foreach(missing, i, x) {
			unsigned char fp[FP_LEN];
			struct vd_put_fpent *e;
			if (fp_parse(fp, json_string_value(x)) || !(e = fp_find(&p->set, fp))) {
				vd_put_progress_clear(p);
				fprintf(stderr, "vdfs put: %s: the daemon asks for a chunk this put did "
					"not make (%s)\n", it->name, json_string_value(x));
				rc = 1;
				goto out;
			}
			p->done -= p->chunks[e->chunk].len < p->done ? p->chunks[e->chunk].len : p->done;
			if ((rc = batch_add(p, &p->chunks[e->chunk])))
				goto out;
		}
		if ((rc = batch_drain(p)))
			goto out;
	}
	const char *id = vd_cli_jstr(j, "data_id");
	if (st != 200 || !vd_id_valid(id)) {
		rc = refused(p, st, j, it->name);
		goto out;
	}
	memcpy(it->data_id, id, VD_ID_SIZE);
	x = json_object_get(j, "new");
	*known = json_is_boolean(x) && !json_is_true(x);
	rc = 0;
out:
	free(text);
	json_decref(m);
	json_decref(j);
	vd_buf_release(&path);
	return rc;
}

/* ---- --wait ------------------------------------------------------------------ */

/*
 * Wait for item it's run (GET .../versions/<id>/status, what `cat status`
 * gives, twice a second) until it is done or failed, or the deadline
 * (monotonic ms; < 0 none) passes; when done, its result.csv to stdout.
 * Exit code: 0 done, 1 failed, 2 timed out (or refused).
 */
static int wait_one(struct vd_put *p, const struct vd_put_item *it, int64_t deadline)
{
	struct vd_buf path = VD_BUF_INIT(8192), body = VD_BUF_INIT(1 << 20);
	char etag[VD_CLI_ETAG_SIZE];
	long st;
	int rc = 1;
	if (vd_buf_addf(&path, "%s/versions/%s/status", vd_buf_cstr(&p->tpath), it->data_id))
		goto out;
	for (;;) {
		vd_buf_reset(&body);
		if ((rc = vd_cli_session_request(&body, &st, &p->s, "GET", vd_buf_cstr(&path), NULL,
						 NULL, 0, false)))
			goto out;
		if (st != 200) {
			json_t *j = json_loadb(vd_buf_cstr(&body), body.len, 0, NULL);
			rc = refused(p, st, j, it->name);
			json_decref(j);
			goto out;
		}
		char *line = body.data ? body.data : "";
		line[strcspn(line, "\n")] = '\0';
		int end = vd_cli_status_end(line);
		if (end < 0) {
			fprintf(stderr, "vdfs put: %s (%s): %s\n", it->name, it->data_id, line);
			rc = 1;
			goto out;
		}
		if (end > 0)
			break;
		if (deadline >= 0 && vd_mono_ms() >= deadline) {
			fprintf(stderr, "vdfs put: %s (%s): still '%s' after %.0f s\n", it->name,
				it->data_id, line, p->timeout);
			rc = 2;
			goto out;
		}
		nap_ms(WAIT_POLL_MS);
	}
	vd_buf_reset(&path);
	vd_buf_addf(&path, "%s/versions/%s/result.csv", vd_buf_cstr(&p->tpath), it->data_id);
	fflush(stdout);
	rc = vd_cli_download(&st, etag, &p->conn, "put", vd_buf_cstr(&path), STDOUT_FILENO, 0, NULL);
	if (rc == 2)
		rc = 1;   /* done, yet no result: not the user's to fix */
out:
	vd_buf_release(&path);
	vd_buf_release(&body);
	return rc;
}

/* ---- the command --------------------------------------------------------------- */

/* Every file as it was walked, still: a file changed after it was read
 * would make a version of content it no longer has. Exit code. */
static int check_unchanged(struct vd_put *p)
{
	for (size_t i = 0; i < p->nfiles; i++) {
		const struct vd_put_file *f = &p->files[i];
		struct stat st;
		if (f->type == S_IFREG && (stat(f->disk, &st) < 0 || !vd_put_same_file(f, &st))) {
			vd_put_progress_clear(p);
			fprintf(stderr, "vdfs put: %s changed while it was being put; put it again "
				"once it is quiet\n", f->disk);
			return 1;
		}
	}
	return 0;
}

/* The task exists and the caller may read it: found out before anything
 * is read or sent. Exit code. */
static int task_check(struct vd_put *p)
{
	struct vd_buf path = VD_BUF_INIT(8192);
	json_t *j = NULL;
	long st;
	int rc = 1;
	if (vd_buf_addf(&path, "%s/versions", vd_buf_cstr(&p->tpath)))
		goto out;
	if ((rc = call(&j, &st, p, &p->s, "GET", vd_buf_cstr(&path), NULL, NULL, 0, false)))
		goto out;
	if (st != 200)
		rc = refused(p, st, j, NULL);
out:
	json_decref(j);
	vd_buf_release(&path);
	return rc;
}

static void put_release(struct vd_put *p)
{
	for (size_t i = 0; i < p->nfiles; i++) {
		free(p->files[i].disk);
		free(p->files[i].rel);
		free(p->files[i].target);
	}
	for (size_t i = 0; i < p->nitems; i++)
		free(p->items[i].name);
	for (size_t i = 0; i < VD_PUT_SLOTS; i++) {
		vd_buf_release(&p->slots[i].body);
		free(p->slots[i].ch);
		json_decref(p->slots[i].reply);
	}
	free(p->files);
	free(p->items);
	free(p->chunks);
	free(p->set.v);
	if (p->fd >= 0)
		close(p->fd);
	vd_buf_release(&p->tpath);
	vd_cli_session_close(&p->s);
	vd_cli_conn_close(&p->conn);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

static int run(int argc, char **argv)
{
	struct vd_put p = { .timeout = -1, .fd = -1, .phase = "scanning",
			 .tpath = VD_BUF_INIT(8192),
			 .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_put, .conn = &p.conn, .argc = argc,
				 .argv = argv };
	const char *name = NULL;
	pthread_t cutter;
	bool cutting = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		char *end;
		switch (opt) {
		case OPT_TASK: p.task = optarg; break;
		case OPT_NAME: name = optarg; break;
		case OPT_WAIT: p.wait = true; break;
		case OPT_QUIET: p.quiet = true; break;
		case OPT_TIMEOUT:
			p.timeout = strtod(optarg, &end);
			if (*end || end == optarg || !(p.timeout >= 0)) {
				rc = vd_cli_usage(&vd_cli_cmd_put, "--timeout wants seconds");
				goto out;
			}
			break;
		}
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (!p.task || !*p.task) {
		rc = vd_cli_usage(&vd_cli_cmd_put, "which task? (--task T)");
		goto out;
	}
	if (optind == argc) {
		rc = vd_cli_usage(&vd_cli_cmd_put, "put what? (FILE or DIR)");
		goto out;
	}
	if (name && argc - optind > 1) {
		rc = vd_cli_usage(&vd_cli_cmd_put, "--name names one argument only");
		goto out;
	}
	if (p.timeout >= 0 && !p.wait) {
		rc = vd_cli_usage(&vd_cli_cmd_put, "--timeout is for --wait");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&p.conn, "put")))
		goto out;
	rc = 1;
	if (vd_cli_session_open(&p.s, &p.conn))
		goto out;
	p.s.on_sent = on_sent;
	p.s.on_sent_arg = &p;
	if (vd_buf_adds(&p.tpath, "/v1/tasks/") || vd_cli_url_escape(&p.tpath, p.task)) {
		rc = vd_cli_usage(&vd_cli_cmd_put, "the task name is too long");
		goto out;
	}
	p.umask = umask(0);
	umask(p.umask);
	p.show = !p.quiet && isatty(STDERR_FILENO);
	p.t0 = vd_mono_ms();
	if ((rc = upload_info(&p)) || (rc = task_check(&p)))
		goto out;
	rc = 1;
	for (size_t i = 0; i < VD_PUT_SLOTS; i++) {
		vd_buf_init(&p.slots[i].body, p.batch_max);
		atomic_init(&p.slots[i].inflight, 0);
	}
	atomic_init(&p.abandon, false);
	if (!(p.items = calloc((size_t)(argc - optind), sizeof *p.items)))
		goto out;
	for (int i = optind; i < argc; i++)
		if ((rc = vd_put_walk_item(&p, &p.items[p.nitems++], argv[i], name)))
			goto out;
	p.phase = "sending";
	vd_put_progress(&p, true);
	if ((rc = posters_start(&p)))
		goto out;
	if ((rc = pthread_create(&cutter, NULL, cutter_main, &p))) {
		fprintf(stderr, "vdfs put: cannot start a thread: %s\n", strerror(rc));
		rc = 1;
		goto out;
	}
	cutting = true;
	rc = send_all(&p);
	pthread_join(cutter, NULL);
	cutting = false;
	if (rc || (rc = check_unchanged(&p)))
		goto out;
	for (size_t i = 0; i < p.nitems; i++) {
		bool known = false;
		if ((rc = commit(&known, &p, &p.items[i])))
			goto out;
		vd_put_progress_clear(&p);
		if (known && !p.quiet)
			fprintf(stderr, "vdfs put: %s: that content is version %s already; it is "
				"the latest again\n", p.items[i].name, p.items[i].data_id);
		if (!p.wait) {
			printf("%s  %s\n", p.items[i].data_id, p.items[i].name);
			fflush(stdout);
		}
	}
	vd_put_progress_clear(&p);
	posters_stop(&p, false);
	if (!p.quiet) {
		char sent[32], all[32];
		vd_cli_human_bytes(sent, p.sent);
		vd_cli_human_bytes(all, p.total);
		fprintf(stderr, "vdfs put: sent %s of %s (%.1f %%) in %.1f s\n", sent, all,
			p.total ? 100.0 * (double)p.sent / (double)p.total : 0.0,
			(double)(vd_mono_ms() - p.t0) / 1000.0);
	}
	if (p.wait) {
		int64_t deadline = p.timeout >= 0 ? vd_mono_ms() + (int64_t)(p.timeout * 1000) : -1;
		int worst = 0;
		for (size_t i = 0; i < p.nitems; i++) {
			printf("%s  %s\n", p.items[i].data_id, p.items[i].name);
			fflush(stdout);
			int r = wait_one(&p, &p.items[i], deadline);
			/* A timeout (2) outranks a failure (1). */
			if (r > worst)
				worst = r;
		}
		rc = worst;
	}
out:
	if (cutting) {
		pthread_mutex_lock(&p.mu);
		cut_fail(&p, 0, "%s", "");
		pthread_mutex_unlock(&p.mu);
		pthread_join(cutter, NULL);
	}
	posters_stop(&p, rc != 0);
	vd_put_progress_clear(&p);
	put_release(&p);
	return rc;
}
