/*
 * store_pipe.c - a writer's compression workers.
 *
 * Compressing text at zstd level 3 costs two to three times what the
 * rest of ingest (chunking, hashing, writing) costs together, all in the
 * one thread that seals a submission. So a writer hands its chunks to
 * worker threads of its own (vd_store.pipe_threads: one per core, at most
 * STORE_PIPE_MAX) and goes on cutting and hashing the next ones: the
 * caller copies the chunk, adds its entry (marked pending) and queues it;
 * a worker compresses it, takes its place at the end of the pack, writes
 * it there and fills in the entry. Only chunks that pass the probe
 * (store_zstd.c) and are at least STORE_PIPE_MIN_CHUNK go, from the
 * second new one on; the others are stored by the caller itself, after
 * what is queued. So a writer that stores one chunk (a unit's output, a
 * small file) never starts a thread, nor does a store of small chunks,
 * where handing each over would cost more than compressing it.
 *
 * The pack keeps the order in which chunks were put, as without workers:
 * reads of a file then go through its pack forwards, which the kernel's
 * readahead follows. Workers compress in parallel but take pack space in
 * queue order (next_write), and write in parallel once their place is
 * theirs.
 *
 * The queue holds at most PIPE_QUEUE_MAX raw bytes (a chunk larger than
 * that still goes, alone); the caller waits for room, so memory stays
 * bounded whatever the input rate. Finished jobs' buffers are kept for the
 * next chunks (spare, up to that much again): a chunk-sized malloc and
 * free per chunk would be an mmap and munmap each, whose page faults cost
 * more than the copy.
 *
 * Errors: the first one a worker meets (a failed write, ENOMEM) is kept in
 * err; later jobs are dropped, and the writer's next put, read, commit or
 * gather returns it. The caller frees such a writer, as after any error.
 *
 * Locking: mu guards the queue, the counters, err, and everything of the
 * writer a worker touches: ents (which the caller reallocates under mu),
 * off and flushed. fd is set before the workers start and fixed then.
 * Workers compress and pwrite without mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_int.h"
#include "util.h"

/* Raw bytes queued or being compressed, at most. */
#define PIPE_QUEUE_MAX ((size_t)8 << 20)
/* A job's buffer holds at least this much (the default largest chunk:
 * every chunk of a default store fits, and buffers stay under glibc's
 * mmap threshold of 32 MiB queued in 256 KiB pieces at most). */
#define PIPE_JOB_MIN ((size_t)256 << 10)

struct pipe_job {
	struct pipe_job *next;
	size_t ent;                    /* index in w->ents */
	uint64_t seq;                  /* queue order */
	size_t n;
	size_t cap;                    /* bytes raw has room for */
	unsigned char raw[];           /* a copy of the chunk */
};

struct store_pipe {
	vd_store_writer *w;
	pthread_mutex_t mu;
	pthread_cond_t cv;             /* a job queued or done, a turn passed, stop */
	struct pipe_job *head, *tail;  /* mu: queued, not yet taken */
	size_t inflight;               /* mu: raw bytes queued or being compressed */
	uint64_t queued;               /* mu: jobs queued so far (the next seq) */
	uint64_t next_write;           /* mu: the seq whose turn it is to take space */
	uint64_t done;                 /* mu: jobs finished (written, or dropped) */
	struct pipe_job *spare;        /* mu: finished jobs, for their buffers */
	size_t spare_bytes;            /* mu */
	int err;                       /* mu: the first error */
	bool stop;                     /* mu */
	int nthreads;
	pthread_t threads[STORE_PIPE_MAX];
};

static void *pipe_worker(void *arg)
{
	struct store_pipe *p = arg;
	vd_store_writer *w = p->w;
	struct vd_buf out = VD_BUF_INIT(SIZE_MAX / 2);
	ZSTD_CCtx *cctx = NULL;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!p->head)
			break;
		struct pipe_job *j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		int err = p->err;
		pthread_mutex_unlock(&p->mu);

		int kept = err ? 0 : store_zstd_compress(&out, &cctx, w->s, w->level, j->raw, j->n,
							  true);
		const void *bytes = kept > 0 ? (const void *)out.data : j->raw;
		size_t len = kept > 0 ? out.len : j->n;
		uint64_t off = 0;

		pthread_mutex_lock(&p->mu);
		while (j->seq != p->next_write)
			pthread_cond_wait(&p->cv, &p->mu);
		if (kept < 0 && !p->err)
			p->err = kept;
		bool write = !p->err;
		if (write) {
			off = w->off;
			w->off += len;
		}
		p->next_write++;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);

		int rc = write ? vd_pwrite_all(w->fd, bytes, len, (off_t)off) : 0;
		if (rc)
			vd_err("store: writing pack %s: %s", w->pack, strerror(-rc));

		pthread_mutex_lock(&p->mu);
		if (rc && !p->err)
			p->err = rc;
		if (write && !rc) {
			struct wentry *e = &w->ents[j->ent];

			e->off = off;
			e->stored_len = len;
			e->zstd = kept > 0;
			/* As writer_append: start writeback of what piled up. A
			 * range another worker is still writing is only a hint
			 * the kernel takes as far as it can. */
			if (w->off - w->flushed >= STORE_WRITEBACK_STEP) {
				sync_file_range(w->fd, (off_t)w->flushed,
						(off_t)(w->off - w->flushed), SYNC_FILE_RANGE_WRITE);
				w->flushed = w->off;
			}
		}
		p->inflight -= j->n;
		p->done++;
		pthread_cond_broadcast(&p->cv);
		if (p->spare_bytes + j->cap <= PIPE_QUEUE_MAX) {
			j->next = p->spare;
			p->spare = j;
			p->spare_bytes += j->cap;
		} else {
			free(j);
		}
	}
	pthread_mutex_unlock(&p->mu);
	store_cctx_put(w->s, cctx);
	vd_buf_release(&out);
	return NULL;
}

int store_pipe_start(vd_store_writer *w)
{
	struct store_pipe *p = calloc(1, sizeof *p);
	int n = w->s->pipe_threads, rc = 0;

	if (!p)
		return -ENOMEM;
	p->w = w;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < n; i++) {
		if ((rc = -pthread_create(&p->threads[i], NULL, pipe_worker, p)))
			break;
		p->nthreads++;
	}
	/* One worker is enough to be useful; none means the caller goes on
	 * compressing itself. */
	if (!p->nthreads) {
		pthread_cond_destroy(&p->cv);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return rc;
	}
	w->pipe = p;
	return 0;
}

void store_pipe_lock(vd_store_writer *w)
{
	if (w->pipe)
		pthread_mutex_lock(&w->pipe->mu);
}

void store_pipe_unlock(vd_store_writer *w)
{
	if (w->pipe)
		pthread_mutex_unlock(&w->pipe->mu);
}

int store_pipe_put(vd_store_writer *w, const char *id, const void *raw, size_t n)
{
	struct store_pipe *p = w->pipe;
	struct pipe_job *j;
	int rc;

	if ((rc = store_wset_reserve(w)) || (rc = vd_store_space_check(w->s, n)))
		return rc;
	pthread_mutex_lock(&p->mu);
	if ((j = p->spare)) {
		p->spare = j->next;
		p->spare_bytes -= j->cap;
	}
	pthread_mutex_unlock(&p->mu);
	if (j && j->cap < n) {
		free(j);
		j = NULL;
	}
	if (!j) {
		/* Room for the usual chunk at least, so that the buffer serves
		 * the ones after it. */
		size_t cap = n > PIPE_JOB_MIN ? n : PIPE_JOB_MIN;

		if (!(j = malloc(sizeof *j + cap)))
			return -ENOMEM;
		j->cap = cap;
	}
	memcpy(j->raw, raw, n);
	j->n = n;
	j->next = NULL;
	pthread_mutex_lock(&p->mu);
	while (!p->err && p->inflight && p->inflight + n > PIPE_QUEUE_MAX)
		pthread_cond_wait(&p->cv, &p->mu);
	if ((rc = p->err)) {
		pthread_mutex_unlock(&p->mu);
		free(j);
		return rc;
	}
	j->ent = w->nents;
	j->seq = p->queued++;
	store_wset_add(w, id, 0, 0, n, false, false);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->inflight += n;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int store_pipe_drain(vd_store_writer *w)
{
	struct store_pipe *p = w->pipe;
	int rc;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	while (p->done != p->queued)
		pthread_cond_wait(&p->cv, &p->mu);
	rc = p->err;
	pthread_mutex_unlock(&p->mu);
	return rc;
}

void store_pipe_stop(vd_store_writer *w)
{
	struct store_pipe *p = w->pipe;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	/* Jobs nobody took are dropped; those taken are finished first (a
	 * later job may wait for an earlier one's turn, never the other way). */
	while (p->head) {
		struct pipe_job *j = p->head;

		p->head = j->next;
		p->done++;
		free(j);
	}
	p->tail = NULL;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	while (p->spare) {
		struct pipe_job *j = p->spare;

		p->spare = j->next;
		free(j);
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
	w->pipe = NULL;
}
