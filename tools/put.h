/*
 * put.h - the state of one `vdfs put` (tools/cmd_put.c), shared with its
 * walk of the arguments (tools/put_walk.c).
 *
 * Three kinds of thread touch it: the main thread (the sender: walk,
 * questions, batches, commits, progress), the cutter (reads and hashes
 * the files) and the posters (send batches). What more than one touches
 * is under mu, or atomic; the rest is the sender's. The walk runs before
 * any other thread starts; files[] is read-only after it, but for each
 * file's chunk range, which only the cutter writes and nobody reads before
 * it is joined.
 */
#ifndef VD_PUT_H
#define VD_PUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "chunker.h"
#include "cli.h"

/* The daemon refuses tree paths and symlink targets this long. */
#define VD_PUT_PATH_CAP 4096
#define VD_PUT_FP_LEN 32
/* Batches in flight at once, each on its own connection. */
#define VD_PUT_POSTERS 2
#define VD_PUT_SLOTS (VD_PUT_POSTERS + 1)

/* An entry of an item: a regular file, a directory entry or a symlink. */
struct vd_put_file {
	char *disk;                /* the path to read */
	char *rel;                 /* the path in the tree; "" for a file version */
	mode_t type;               /* S_IFREG, S_IFDIR or S_IFLNK */
	mode_t perm;
	char *target;              /* symlinks */
	/* A regular file as the walk saw it, to tell whether it changed. */
	dev_t dev;
	ino_t ino;
	uint64_t size;
	struct timespec mtime, ctime;
	/* Its chunks, chunks[cfirst .. cfirst + cn) (set by the cutter). */
	size_t cfirst, cn;
};

/* One argument: a file version or a tree version. */
struct vd_put_item {
	const char *arg;
	char *name;
	bool tree;
	mode_t perm;               /* a tree's top directory */
	size_t first, n;           /* its entries, files[first .. first + n) */
	char data_id[VD_ID_SIZE];
};

struct vd_put_chunk {
	uint64_t off;
	uint32_t len;
	uint32_t file;
	unsigned char fp[VD_PUT_FP_LEN];
};

/* What this put knows of a fingerprint (sender only). */
enum { VD_PUT_FP_ASKED = 1, VD_PUT_FP_MISSING, VD_PUT_FP_QUEUED, VD_PUT_FP_HAVE };
struct vd_put_fpent {
	unsigned char fp[VD_PUT_FP_LEN];
	size_t chunk;              /* a chunk with these bytes */
	uint8_t state;             /* 0: a free slot */
};
struct vd_put_fpset {
	struct vd_put_fpent *v;
	size_t cap, n;             /* cap a power of two */
};

/* A batch: FREE, FILLING (the sender's), READY (for a poster), POSTING,
 * DONE (the answer is in, for the sender). */
enum { VD_PUT_SLOT_FREE, VD_PUT_SLOT_FILLING, VD_PUT_SLOT_READY, VD_PUT_SLOT_POSTING,
       VD_PUT_SLOT_DONE };
struct vd_put_slot {
	int state;                 /* under mu */
	struct vd_buf body;        /* frames */
	struct vd_put_chunk *ch;   /* what they hold */
	size_t n, cap;
	atomic_uint_fast64_t inflight;   /* body bytes sent so far */
	int rc;                    /* the answer, once DONE */
	long status;
	json_t *reply;
	char err[256];
};

struct vd_put_poster {
	struct vd_put *p;
	pthread_t th;
	bool started;
	struct vd_cli_session s;
};

struct vd_put {
	const char *task;
	struct vd_buf tpath;       /* "/v1/tasks/<escaped task>" */
	bool quiet, wait;
	double timeout;
	struct vd_cli_conn conn;
	struct vd_cli_session s;   /* the sender's */
	struct vd_chunker_params prm;
	size_t batch_max, query_max, batch_target;
	mode_t umask;

	struct vd_put_item *items;
	size_t nitems;
	struct vd_put_file *files;
	size_t nfiles, fcap;
	uint64_t total;            /* bytes of the regular files */

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;         /* any change of the below */
	struct vd_put_chunk *chunks;
	size_t nchunks, ccap;
	uint64_t cut_bytes;        /* content cut */
	uint64_t held;             /* content the daemon holds (the cutter's lead) */
	bool cut_done, stop;
	int cut_rc;                /* the cutter's exit code */
	char cut_why[VD_PUT_PATH_CAP + 256];
	struct vd_put_slot slots[VD_PUT_SLOTS];
	bool posters_quit;
	atomic_bool abandon;       /* a failure: posters stop waiting out a full disk */

	/* The sender's. */
	struct vd_put_poster posters[VD_PUT_POSTERS];
	struct vd_put_fpset set;
	size_t asked;              /* chunks[0 .. asked) are asked about */
	uint64_t asked_bytes;
	struct vd_put_slot *cur;   /* the batch being filled */
	int fd;                    /* the file last read for sending */
	size_t fd_file;
	uint64_t sent, sent_chunks;

	/* Progress (the sender's). */
	bool show;
	const char *phase;
	uint64_t done;             /* content the daemon has, or that is out to it */
	int64_t t0, last_show;
	int64_t rt[16];            /* recent (time, done) samples, for the rate */
	uint64_t rd[16];
	unsigned rn;
};

/* Walk argument arg (a file, or a directory, followed if a symlink) into
 * item it, appending its entries to p->files (named name, or by the
 * argument's basename when NULL). Exit code, after a line on stderr. */
int vd_put_walk_item(struct vd_put *p, struct vd_put_item *it, const char *arg,
		     const char *name);
/* Whether st is still the regular file f was when walked (device, inode,
 * size, mtime and ctime). */
bool vd_put_same_file(const struct vd_put_file *f, const struct stat *st);

/* The progress line on stderr (when p->show), redrawn at most five times a
 * second unless force; and its removal, before any other line. */
void vd_put_progress(struct vd_put *p, bool force);
void vd_put_progress_clear(struct vd_put *p);

#endif
