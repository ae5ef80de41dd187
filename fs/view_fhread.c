/*
 * view_fhread.c - reading a stored file through an open handle.
 *
 * A stored file is a list of extents, each one whole chunk (its bytes come
 * from the store decompressed and verified against the chunk ID before any
 * of them is handed out) or, in a result, a unit's whole output. The
 * kernel reads 128 KiB at a time, so a handle keeps loaded extents: a
 * sequential read costs one load per extent, not per request.
 *
 * A handle has FH_SLOTS slots. The reader takes bytes from one; the
 * decode-ahead workers (FH_WORKERS threads per mount) load the FH_AHEAD
 * extents after it into the others meanwhile, in parallel. Without them,
 * every extent's load (a pread, a zstd decode and a hash of up to tens of
 * MiB) was done by the request that first needed it, on one core, while
 * the reader waited: cold `cat result.csv` took 1.24 x passthrough_ll,
 * about 40 % of it in the decode. One worker ahead was not enough (1.21
 * x): serving an extent is quick, loading one is the work, so the loads
 * themselves must run side by side. The disk is asked for the next READ_AHEAD bytes of
 * extents as well (posix_fadvise through the store), which a result's
 * extents, each often in a pack of its own, need: the kernel's readahead
 * follows one file.
 *
 * Locking: a handle's slots, cur and ahead are under fh->lock; a slot
 * being loaded (by a request or a worker) is marked so, and a request
 * that wants its extent waits on fh->loaded. The workers' queue is under
 * v->alock; fh->lock is never taken inside alock: a worker leaves alock
 * first. A handle being
 * released is taken off the queue and waited for (view_ahead_forget)
 * before anything of it is freed.
 */
#include "view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define READ_AHEAD ((uint64_t)16 << 20)
/* The most one page-cache store carries, and the size of a group of small
 * extents pushed together (push_plan). */
#define PUSH_STEP ((size_t)1 << 20)

/* The extent that holds byte pos: the last one starting at or before it. */
static size_t ext_find(const struct vd_file *f, uint64_t pos)
{
	size_t lo = 0, hi = f->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->ext[mid].off <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? 0 : lo - 1;
}

/* lock: the slot holding extent i loaded (ready) or being loaded
 * (loading), or -1. */
static int slot_of(const struct vfh *fh, size_t i, bool loading)
{
	for (int k = 0; k < FH_SLOTS; k++)
		if (fh->sidx[k] == i && fh->sload[k] == loading)
			return k;
	return -1;
}

/* lock: a slot a load may take: an empty one, else one that is not being
 * loaded or pushed, not the reader's and not holding an extent in [lo, hi];
 * -1 when none is. */
static int slot_free(const struct vfh *fh, size_t lo, size_t hi)
{
	for (int k = 0; k < FH_SLOTS; k++)
		if (!fh->sload[k] && !fh->spush[k] && fh->sidx[k] == SIZE_MAX)
			return k;
	for (int k = 0; k < FH_SLOTS; k++)
		if (!fh->sload[k] && !fh->spush[k] && fh->sidx[k] != fh->cur &&
		    !(lo <= fh->sidx[k] && fh->sidx[k] <= hi))
			return k;
	return -1;
}

/* lock: whether some slot is being loaded (a load ends on its own). */
static bool slot_loading(const struct vfh *fh)
{
	for (int k = 0; k < FH_SLOTS; k++)
		if (fh->sload[k])
			return true;
	return false;
}

/* How far ahead of extent i the disk is asked for (the last extent to
 * prefetch): at least the next one and READ_AHEAD bytes. */
static size_t disk_ahead_end(const struct vd_file *f, size_t i)
{
	uint64_t bytes = 0;
	size_t k = i + 1;
	while (k < f->n && (bytes += f->ext[k].len) < READ_AHEAD)
		k++;
	return k;
}

/*
 * Load extent i into slot s of fh. Called with fh->lock held; returns with
 * it held. The load runs without the lock, so reads of the other slots go
 * on meanwhile; its buffer is the one the slot had, whose pages are there
 * already (a fresh buffer of many MiB costs a page fault per 4 KiB, which
 * in a VM cost more than reading the bytes).
 */
static int slot_load(struct vd_view *v, struct vfh *fh, int s, size_t i)
{
	struct vd_buf b = fh->sbuf[s];
	int rc;

	vd_buf_init(&fh->sbuf[s], 0);
	fh->sidx[s] = i;
	fh->sload[s] = true;
	pthread_mutex_unlock(&fh->lock);
	rc = ext_load(&b, v, &fh->file->ext[i]);
	pthread_mutex_lock(&fh->lock);
	if (rc == 0)
		fh->sbuf[s] = b;
	else
		fh->sidx[s] = SIZE_MAX;
	fh->sload[s] = false;
	pthread_cond_broadcast(&fh->loaded);
	return rc;
}

static void ahead_queue(struct vd_view *v, struct vfh *fh, size_t i, bool group);
static void push_plan(struct vd_view *v, struct vfh *fh, uint64_t off, uint64_t end);

int chunk_read(size_t *got, struct vd_view *v, struct vfh *fh, char *dst,
	       size_t size, uint64_t off)
{
	int rc = 0;
	const struct vd_file *f = fh->file;
	size_t done = 0;

	*got = 0;
	if (off >= f->size)
		return 0;
	size_t want = f->size - off < size ? (size_t)(f->size - off) : size;
	while (done < want) {
		uint64_t pos = off + done;
		size_t i = ext_find(f, pos);
		if (i >= f->n || pos - f->ext[i].off >= f->ext[i].len) {
			vd_warn("stored file: no extent holds offset %llu",
				(unsigned long long)pos);
			rc = -EIO;
			goto out;
		}
		const struct vd_extent *x = &f->ext[i];
		size_t in = (size_t)(pos - x->off);
		size_t take = x->len - in < want - done ? (size_t)(x->len - in) : want - done;
		size_t from = 0, to = 0, nask = 0, ask[FH_AHEAD];
		bool moved = false, own = false;
		int k;

		pthread_mutex_lock(&fh->lock);
		/* A load under way may be of the extent wanted (the kernel
		 * sends several reads of a file at once; a worker may be
		 * loading it): wait for it rather than load it twice. So
		 * also when every slot but the reader's is being loaded. */
		while ((k = slot_of(fh, i, false)) < 0) {
			int s = -1;
			if (slot_of(fh, i, true) < 0) {
				/* Keep what was loaded ahead of i if it can
				 * (a read that skipped back), else any slot
				 * but the reader's that is not being loaded. */
				s = slot_free(fh, i + 1, i + FH_AHEAD);
				if (s < 0)
					s = slot_free(fh, 1, 0);
			}
			if (s < 0 && !slot_loading(fh) && slot_of(fh, i, true) < 0) {
				/* Every other slot is being pushed, and a push
				 * may wait for the page this very request
				 * fills: never wait for one. */
				own = true;
				break;
			}
			if (s < 0) {
				pthread_cond_wait(&fh->loaded, &fh->lock);
				continue;
			}
			rc = slot_load(v, fh, s, i);
			if (rc < 0) {
				pthread_mutex_unlock(&fh->lock);
				goto out;
			}
			moved = true;
		}
		if (own) {
			struct vd_buf b = VD_BUF_INIT(0);
			pthread_mutex_unlock(&fh->lock);
			rc = ext_load(&b, v, x);
			if (rc == 0)
				memcpy(dst + done, b.data + in, take);
			vd_buf_release(&b);
			if (rc < 0)
				goto out;
			pthread_mutex_lock(&fh->lock);
			moved = true;
		} else {
			memcpy(dst + done, fh->sbuf[k].data + in, take);
		}
		if (fh->cur != i || moved) {
			/* The reader moved to a new extent: have the workers
			 * load the ones after it while it is handed out, and
			 * the disk fetch what follows those. */
			fh->cur = i;
			for (size_t j = i + 1; j <= i + FH_AHEAD && j < f->n; j++)
				if (slot_of(fh, j, false) < 0 && slot_of(fh, j, true) < 0)
					ask[nask++] = j;
			from = fh->ahead > i ? fh->ahead + 1 : i + 1;
			to = disk_ahead_end(f, i);
			if (to > fh->ahead)
				fh->ahead = to;
		}
		pthread_mutex_unlock(&fh->lock);
		for (size_t j = from; j && j <= to && j < f->n; j++)
			vd_engine_chunk_prefetch(v->e, f->ext[j].id);
		for (size_t j = 0; j < nask; j++)
			view_ahead_ask(v, fh, ask[j]);
		done += take;
	}
	*got = done;
	if (fh->push)
		push_plan(v, fh, off, off + done);
out:
	return rc;
}

/*
 * Pushing small extents (an input's chunks, 64 KiB on average) one by one
 * as the slots load them would be too late and too little: the kernel's
 * readahead asks for 256 KiB at a time, ahead of the two extents the
 * workers load, and every page that two extents share would still come by
 * READ. So a sequential reader of small extents has the workers push whole
 * groups of them, PUSH_STEP or more each, PUSH_LEAD ahead of where it
 * reads: only the page between two groups then comes by READ, and that
 * READ is what moves the plan on. Extents of PUSH_STEP or more (a result's
 * unit outputs) go through the slots (ahead_run) as before.
 */
#define PUSH_LEAD ((uint64_t)8 << 20)

static void push_plan(struct vd_view *v, struct vfh *fh, uint64_t off, uint64_t end)
{
	const struct vd_file *f = fh->file;
	size_t ask[8], nask = 0;

	pthread_mutex_lock(&fh->lock);
	/* Only a reader that goes on from where it was: one that jumps
	 * about (tail, a binary search) does not get the file pushed at
	 * it. The kernel has two READs in flight, hence the slack. */
	bool seq = off <= fh->rd_end + 2 * PUSH_LEAD && off + 2 * PUSH_LEAD >= fh->rd_end;
	fh->rd_end = end;
	if (seq && fh->push_end < end) {
		/* Fell behind (or starting): plan from the extent after
		 * the one this READ ended in. */
		fh->push_next = ext_find(f, end) + 1;
		fh->push_end = fh->push_next < f->n ? f->ext[fh->push_next].off : f->size;
	}
	while (seq && fh->push && nask < 8 && fh->push_next < f->n && fh->push_end < end + PUSH_LEAD) {
		size_t a = fh->push_next, b = a;
		uint64_t bytes = 0;
		while (b < f->n && f->ext[b].len < PUSH_STEP && bytes < PUSH_STEP)
			bytes += f->ext[b++].len;
		if (b == a) {
			b = a + 1;   /* a big extent: the slots push it */
		} else {
			ask[nask++] = a;
		}
		fh->push_next = b;
		fh->push_end = b < f->n ? f->ext[b].off : f->size;
	}
	pthread_mutex_unlock(&fh->lock);
	for (size_t j = 0; j < nask; j++)
		ahead_queue(v, fh, ask[j], true);
}

/* ---- the decode-ahead workers ------------------------------------------ */

/*
 * Store the whole pages of extent x (its bytes in data) into the kernel's
 * page cache of fh's inode (FUSE_NOTIFY_STORE), so that the reader finds
 * them there instead of asking for them. Only whole pages, so that every
 * page stored is complete (the kernel marks a page up to date only when it
 * gets all of it); the pages an extent shares with its neighbours come by
 * READ as before. A store may wait for a page the kernel has locked for a
 * READ of the same range, so it runs without fh->lock and with nothing a
 * READ waits for (see chunk_read). Returns false when the kernel refused
 * (the inode was forgotten, or no store support): push no more.
 */
static bool ext_push(struct vd_view *v, struct vfh *fh, const struct vd_extent *x,
		     const char *data)
{
	uint64_t ps = (uint64_t)getpagesize();
	uint64_t start = (x->off + ps - 1) / ps * ps, end = x->off + x->len;
	if (end != fh->file->size)
		end = end / ps * ps;
	while (start < end) {
		size_t n = end - start < PUSH_STEP ? (size_t)(end - start) : PUSH_STEP;
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT(n);
		bv.buf[0].mem = (void *)(data + (start - x->off));
		int rc = fuse_lowlevel_notify_store(v->se, fh->node->ino, (off_t)start, &bv, 0);
		if (rc < 0) {
			vd_debug("storing ahead into the page cache: %s", strerror(-rc));
			return false;
		}
		start += n;
	}
	return true;
}

/* Push the group of small extents of fh that starts at extent a (as
 * push_plan made it): load them one after the other into one buffer, which
 * they fill without gaps, and push its whole pages. The bytes are loaded
 * here, not in slots: no READ ever waits for this. */
static void group_push(struct vd_view *v, struct vfh *fh, size_t a)
{
	const struct vd_file *f = fh->file;
	struct vd_buf all = VD_BUF_INIT(SIZE_MAX / 2), one = VD_BUF_INIT(0);
	size_t b = a;
	int rc = 0;

	pthread_mutex_lock(&fh->lock);
	bool go = fh->push;
	pthread_mutex_unlock(&fh->lock);
	while (go && rc == 0 && b < f->n && f->ext[b].len < PUSH_STEP && all.len < PUSH_STEP) {
		rc = ext_load(&one, v, &f->ext[b]);
		if (rc == 0)
			rc = vd_buf_add(&all, one.data, one.len);
		b++;
	}
	if (go && rc == 0 && b > a) {
		struct vd_extent x = { .off = f->ext[a].off, .len = all.len };
		if (!ext_push(v, fh, &x, all.data)) {
			pthread_mutex_lock(&fh->lock);
			fh->push = false;
			pthread_mutex_unlock(&fh->lock);
		}
	}
	vd_buf_release(&one);
	vd_buf_release(&all);
}

/* Load extent i of fh into a free slot if it is still ahead of the reader
 * and nobody has it, and push it into the page cache if fh does. A failure
 * is left to the reader that needs the extent, which loads it itself and
 * reports it. */
static void ahead_run(struct vd_view *v, struct vfh *fh, size_t i)
{
	pthread_mutex_lock(&fh->lock);
	size_t cur = fh->cur;
	if (cur != SIZE_MAX && i > cur && i <= cur + FH_AHEAD && i < fh->file->n &&
	    slot_of(fh, i, false) < 0 && slot_of(fh, i, true) < 0) {
		int s = slot_free(fh, cur, cur + FH_AHEAD);
		if (s >= 0 && slot_load(v, fh, s, i) == 0 && fh->push && v->se && fh->node) {
			/* The slot stays as loaded (readers take from it) but
			 * no load may reuse its buffer meanwhile. */
			fh->spush[s] = true;
			const char *data = fh->sbuf[s].data;
			pthread_mutex_unlock(&fh->lock);
			bool ok = ext_push(v, fh, &fh->file->ext[i], data);
			pthread_mutex_lock(&fh->lock);
			fh->spush[s] = false;
			if (!ok)
				fh->push = false;
			pthread_cond_broadcast(&fh->loaded);
		}
	}
	pthread_mutex_unlock(&fh->lock);
}

struct ahead_arg {
	struct vd_view *v;
	size_t w;
};

static void *ahead_main(void *arg)
{
	struct vd_view *v = ((struct ahead_arg *)arg)->v;
	size_t w = ((struct ahead_arg *)arg)->w;
	free(arg);
	pthread_mutex_lock(&v->alock);
	for (;;) {
		while (!v->astop && v->aq_n == 0)
			pthread_cond_wait(&v->acond, &v->alock);
		if (v->astop)
			break;
		struct ahead_job j = v->aq[v->aq_first];
		v->aq_first = (v->aq_first + 1) % FH_QUEUE;
		v->aq_n--;
		v->abusy[w] = j.fh;
		pthread_mutex_unlock(&v->alock);
		if (j.group)
			group_push(v, j.fh, j.idx);
		else
			ahead_run(v, j.fh, j.idx);
		pthread_mutex_lock(&v->alock);
		v->abusy[w] = NULL;
		pthread_cond_broadcast(&v->adone);
	}
	pthread_mutex_unlock(&v->alock);
	return NULL;
}

void view_ahead_ask(struct vd_view *v, struct vfh *fh, size_t i)
{
	ahead_queue(v, fh, i, false);
}

static void ahead_queue(struct vd_view *v, struct vfh *fh, size_t i, bool group)
{
	pthread_mutex_lock(&v->alock);
	/* A full queue drops the job: its extent is then loaded by the
	 * request that needs it, as without the workers. */
	if (v->aworkers && !v->astop && v->aq_n < FH_QUEUE) {
		v->aq[(v->aq_first + v->aq_n) % FH_QUEUE] = (struct ahead_job){ fh, i, group };
		v->aq_n++;
		pthread_cond_signal(&v->acond);
	}
	pthread_mutex_unlock(&v->alock);
}

void view_ahead_forget(struct vd_view *v, struct vfh *fh)
{
	pthread_mutex_lock(&v->alock);
	size_t n = 0;
	for (size_t k = 0; k < v->aq_n; k++) {
		struct ahead_job j = v->aq[(v->aq_first + k) % FH_QUEUE];
		if (j.fh != fh)
			v->aq[(v->aq_first + n++) % FH_QUEUE] = j;
	}
	v->aq_n = n;
	for (;;) {
		bool busy = false;
		for (size_t w = 0; w < FH_WORKERS; w++)
			busy |= v->abusy[w] == fh;
		if (!busy)
			break;
		pthread_cond_wait(&v->adone, &v->alock);
	}
	pthread_mutex_unlock(&v->alock);
}

int view_ahead_start(struct vd_view *v)
{
	int rc = 0;
	for (size_t w = 0; w < FH_WORKERS; w++) {
		struct ahead_arg *a = malloc(sizeof(*a));
		if (!a) {
			rc = -ENOMEM;
			break;
		}
		*a = (struct ahead_arg){ v, w };
		rc = -pthread_create(&v->aworker[w], NULL, ahead_main, a);
		if (rc < 0) {
			free(a);
			break;
		}
		pthread_mutex_lock(&v->alock);
		v->aworkers = w + 1;
		pthread_mutex_unlock(&v->alock);
	}
	if (rc < 0)
		vd_err("starting the read-ahead threads: %s", strerror(-rc));
	return rc;
}

void view_ahead_stop(struct vd_view *v)
{
	pthread_mutex_lock(&v->alock);
	size_t n = v->aworkers;
	v->astop = true;
	pthread_cond_broadcast(&v->acond);
	pthread_mutex_unlock(&v->alock);
	for (size_t w = 0; w < n; w++)
		pthread_join(v->aworker[w], NULL);
	pthread_mutex_lock(&v->alock);
	v->aworkers = 0;
	pthread_mutex_unlock(&v->alock);
}

/* ---- handle set-up and release ----------------------------------------- */

static void fh_chunk_reset(struct vfh *fh)
{
	fh->kind = FH_CHUNK;
	for (int k = 0; k < FH_SLOTS; k++) {
		vd_buf_init(&fh->sbuf[k], 0);
		fh->sidx[k] = SIZE_MAX;
		fh->sload[k] = false;
		fh->spush[k] = false;
	}
	fh->cur = SIZE_MAX;
	fh->ahead = 0;
	fh->push_next = 0;
	fh->push_end = 0;
	fh->rd_end = 0;
}

int fh_chunk_init_man(struct vfh *fh, struct mc_ent *ent, size_t idx)
{
	if (idx >= ent->m->nfiles)
		return -EIO;
	fh_chunk_reset(fh);
	fh->ment = ent;
	fh->file = &ent->m->files[idx];
	return 0;
}

void fh_chunk_init_own(struct vfh *fh, struct vd_file *f)
{
	fh_chunk_reset(fh);
	fh->own = f;
	fh->file = f;
}

void fh_chunk_release(struct vd_view *v, struct vfh *fh)
{
	view_ahead_forget(v, fh);
	for (int k = 0; k < FH_SLOTS; k++)
		vd_buf_release(&fh->sbuf[k]);
}
