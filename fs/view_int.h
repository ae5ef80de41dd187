/*
 * view_int.h - what the files of the FUSE view share: the view itself, the
 * node (inode) table, references to places in the tree, file handles,
 * directory listings, the manifest cache and the staging of data/ entries.
 *
 * Files:
 *   view.c       mount, session loop, the fuse_lowlevel_ops table and the
 *                dispatch of each operation by node kind
 *   view_node.c  the node table: inode numbers, lookup counts, renames
 *   view_tree.c  what each place in the tree is: child resolution,
 *                attributes, cache timeouts, directory listings
 *   view_read.c  immutable content: manifest cache, chunked reads,
 *                copying stored files out to staging
 *   view_data.c  tasks/NAME/data/: staging files and trees, sealing, the
 *                settle thread
 *   view_runs.c  tasks/NAME/code/ (every code version) and
 *                versions/ID/runs/ (every code's run on a version)
 *   view_delete.c rm -r of versions and tasks, and telling the kernel
 *                about deletions made elsewhere (vdfs rm, retention)
 *   view_owner.c --allow-other: who owns a task, who may change it
 *
 * Locks (never held while calling the engine's slow functions, and never
 * two at once except where noted):
 *   v->nlock  the node table (struct vnode fields marked so)
 *   v->slock  the list of stages and every field of struct stage marked so;
 *             v->scond is signalled when a stage leaves its exclusive state
 *   v->mlock  the manifest cache
 *   v->wlock  the deletion watcher's stop flag (view_delete.c)
 *   fh->lock  one file handle's buffer or chunk cache
 */
#ifndef VD_VIEW_INT_H
#define VD_VIEW_INT_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "engine.h"
#include "view.h"

/* How long the kernel may cache what cannot change, and what can. */
#define VIEW_TTL_LONG 3600.0
#define VIEW_TTL_NONE 0.0

#define VIEW_FUNCTION_MAX ((size_t)64 << 20)   /* function bytes per handle */
#define VIEW_CONFIG_MAX ((size_t)64 << 10)     /* config bytes per handle */
#define VIEW_NAME_MAX 255

enum nkind {
	NK_ROOT,
	NK_README,
	NK_TASKS,
	NK_EXECUTORS,
	NK_EXECUTOR,    /* executors/NAME */
	NK_TASK,        /* tasks/NAME */
	NK_FUNCTION,
	NK_CONFIG,
	NK_DATA,        /* tasks/NAME/data */
	NK_DATAENT,     /* anything under data/: staging or sealed, file or dir */
	NK_VERSIONS,
	NK_VERSION,     /* versions/ID */
	NK_INPUT,       /* versions/ID/input and everything under it */
	NK_STATUS,
	NK_META,
	NK_LOG,
	NK_RESULT,
	NK_LATEST,
	NK_CODES,       /* tasks/NAME/code */
	NK_CODE,        /* tasks/NAME/code/CODE-ID */
	NK_RUNS,        /* versions/ID/runs */
	NK_RUN,         /* versions/ID/runs/CODE-ID */
	NK_RUN_STATUS,  /* versions/ID/runs/CODE-ID/status, ... */
	NK_RUN_META,
	NK_RUN_LOG,
	NK_RUN_RESULT,
};

/*
 * One inode the kernel knows (or is about to learn). Nodes are found by
 * (parent inode, name) while hashed, and by inode number until the kernel
 * forgets them and no open handle or child refers to them.
 */
struct vnode {
	fuse_ino_t ino;            /* immutable */
	uint64_t gen;              /* immutable */
	uint64_t nlookup;          /* nlock: the kernel's lookup count */
	unsigned refs;             /* nlock: children + open handles */
	bool hashed;               /* nlock: reachable by (parent, name) */
	struct vnode *parent;      /* nlock: NULL for the root; changes on rename */
	char *name;                /* nlock: changes on rename */
	struct vnode *next_name;   /* nlock: bucket chains */
	struct vnode *next_ino;
	/* Immutable after creation: what the node is. */
	enum nkind kind;
	mode_t type;               /* S_IFDIR, S_IFREG or S_IFLNK */
	char *task;                /* tasks/<task>/..., else NULL */
	char *dname;               /* NK_DATAENT: the name in data/ */
	char data_id[VD_ID_SIZE];  /* NK_VERSION and below */
	char code_id[VD_ID_SIZE];  /* NK_CODE, NK_RUN and below */
	uint64_t ckey;             /* NK_RESULT, NK_RUN_RESULT: which result
				    * (content key) */
	/* NK_VERSIONS: vd_engine_versions_seq when the kernel was last given
	 * this directory's listing to cache (0: never). */
	uint64_t list_seq;         /* nlock */
};

/*
 * A place in the tree, resolved without the node table: built from a node
 * (vref_of_node) or from a parent and a name (vref_child), then looked at
 * (vref_stat fills type and ckey). The string pointers borrow from the node
 * or the caller for the duration of one operation.
 */
struct vref {
	enum nkind kind;
	const char *task;
	const char *dname;
	const char *name;              /* last component */
	char data_id[VD_ID_SIZE];
	char code_id[VD_ID_SIZE];
	mode_t type;                   /* filled by vref_stat */
	uint64_t ckey;                 /* filled by vref_stat for NK_RESULT, NK_RUN_RESULT */
	/* NK_DATAENT built from a node: dname's copy, taken from the node at
	 * the top of data/ under nlock (a rename of that name changes it). */
	char dname_buf[VIEW_NAME_MAX + 1];
	/* Last, because it is large: builders clear every field before it
	 * (memset up to offsetof(path)) and set path[0] alone. A field added
	 * after it would be left as garbage, and a garbage ckey makes the node
	 * table see a new meaning, hand out a new inode and so drop the
	 * kernel's cached pages of immutable files. */
	char path[PATH_MAX];           /* NK_DATAENT, NK_INPUT: path below the top, "" = top */
};

struct dent {
	char *name;
	mode_t type;
};
struct dlist {
	struct dent *v;
	size_t n;
	size_t cap;
};

/* A cached manifest, shared by handles and lookups; refs under v->mlock. */
struct mc_ent {
	char id[VD_ID_SIZE];
	struct vd_manifest *m;
	unsigned refs;
	uint64_t used;                 /* LRU tick */
	bool in_cache;                 /* false: the cache was full; freed at refs 0 */
};
#define MC_SLOTS 32

/*
 * A data/ entry in flight. A staging file exists while a handle that may
 * write it is open (and until the last handle on it closes); a staging tree
 * from mkdir (or the first change to a sealed tree) until it is sealed or
 * removed. At most one stage per (task, name) is in the list.
 */
struct stage {
	struct stage *next;          /* slock */
	char *task;                  /* immutable */
	/* Changes on rename, under slock and seal_lock both (so holding
	 * either keeps it steady); a replaced name stays allocated in
	 * old_names until the stage is freed, so that a log line being
	 * written with it never reads freed memory. */
	char *name;
	struct vd_strv old_names;
	bool is_tree;                /* immutable */
	bool dead;                   /* slock: out of the list; freed when unused */
	unsigned pins;               /* slock: file: open handles; tree: settle thread */
	/* staging file */
	int fd;                      /* immutable while pinned */
	char *path;                  /* immutable */
	unsigned writers;            /* slock: handles open for writing */
	bool dirty;                  /* slock: changed (made, truncated, written) since
				      * the last seal */
	bool written;                /* slock: bytes written or size set since made */
	bool unlinked;               /* slock: unlinked while open: never sealed */
	/* slock: a temporary's (data_name_temporary): kept, unsealed, when
	 * its last handle closes, until it is renamed (and sealed under the
	 * new name) or removed. */
	bool held;
	pthread_mutex_t seal_lock;   /* serializes seals of this file */
	/* Where the staging file's content is. Normally in fd. A file made
	 * empty (new, or opened with O_TRUNC) starts as a stream instead: the
	 * engine chunks and stores writes as they come in order, and nothing
	 * touches fd. Once such a file is sealed, its content is the sealed
	 * version's (refill), copied into fd only if something needs it. An
	 * out-of-order write, a read or a truncate first moves the content
	 * into fd (stage_plain). All under io_lock, taken before seal_lock's
	 * holder calls in and never while holding slock. */
	pthread_mutex_t io_lock;
	vd_ingest *stream;           /* io_lock */
	char refill[VD_ID_SIZE];     /* io_lock: sealed content not yet in fd */
	uint64_t vsize;              /* io_lock: size while stream or refill */
	int stream_err;              /* io_lock: a failed streamed seal lost the
				      * content; every later use fails with it */
	/* The first write (or fsync) that failed since the file was made or
	 * last truncated to zero. What the file holds is then not what its
	 * writer meant, so every flush and fsync fails with it and nothing
	 * is sealed; truncating to zero discards the content and clears it. */
	int write_err;               /* io_lock */
	/* staging tree */
	char *dir;                   /* immutable: the real directory */
	int dfd;                     /* immutable: dir, opened O_PATH */
	unsigned busy;               /* slock: operations in flight inside */
	unsigned open_files;         /* slock: handles open inside */
	int64_t last_change;         /* slock: vd_mono_ms of the last change */
	bool excl;                   /* slock: being materialized or sealed */
	bool failed;                 /* slock: the last seal failed; wait for a change */
	bool empty;                  /* slock: holds no file; nothing to seal */
	/* A seal that failed for want of space is tried again at this
	 * vd_mono_ms (0: only after a change), so a tree copied while the
	 * state disk was full seals once space is back. */
	int64_t retry_ms;            /* slock */
	/* What `vdfs status` says of a tree waiting to settle: files and
	 * bytes in it (counted as they come; a tree copied out of a sealed
	 * one starts with its counts), and the last_change it was told. */
	uint64_t nfiles, nbytes;     /* slock */
	int64_t told_change;         /* slock */
	/* Files inside the tree whose last write failed (the same rule as
	 * write_err above, per path): the tree is not sealed while any is
	 * listed. Truncating such a file to zero, unlinking it or renaming
	 * another over it takes it off. */
	struct bad_path *bad;        /* slock */
	bool bad_lost;               /* slock: an entry could not be kept */
};

struct bad_path {
	struct bad_path *next;
	int err;                     /* the failed write's -errno */
	char path[];                 /* inside the tree, as in vref.path */
};

enum fh_kind {
	FH_DIR,        /* a directory listing */
	FH_GEN,        /* rendered text, read-only */
	FH_BUF,        /* function or config: the bytes, written back on flush */
	FH_CHUNK,      /* a stored file, read through chunks */
	FH_STAGE,      /* a staging file in data/ */
	FH_TREEFILE,   /* a file inside a staging tree */
};

/* One open file or directory. */
/* A chunked handle keeps the extent being read and the FH_AHEAD after it
 * loaded, each loaded by one of FH_WORKERS threads (view_fhread.c). */
#define FH_AHEAD 2
#define FH_SLOTS (FH_AHEAD + 1)
#define FH_WORKERS 2
#define FH_QUEUE 64

struct vfh {
	struct vfh *prev, *next;     /* v->fhs, under v->nlock, once opened */
	bool linked;                 /* nlock: in v->fhs */
	enum fh_kind kind;
	struct vnode *node;          /* a reference (refs) */
	pthread_mutex_t lock;        /* buf, dirty, chunk cache */
	/* FH_DIR */
	struct dlist list;
	/* FH_GEN, FH_BUF */
	struct vd_buf buf;
	bool writable;
	bool dirty;                  /* FH_BUF: differs from what the engine has */
	bool written;                /* FH_BUF: a write or truncate came (not only O_TRUNC) */
	bool is_config;              /* FH_BUF: a task's config, checked line by line
				      * as it is written (config_check_write) */
	/* FH_CHUNK */
	struct mc_ent *ment;         /* the manifest the file is in, or NULL */
	struct vd_file *own;         /* or a file of its own (result.csv) */
	const struct vd_file *file;
	/* lock: loaded extents, the one the reader is in and the FH_AHEAD
	 * after it (view_fhread.c): sidx[k] is the extent in sbuf[k] (or
	 * SIZE_MAX), being loaded while sload[k]. */
	struct vd_buf sbuf[FH_SLOTS];
	size_t sidx[FH_SLOTS];
	bool sload[FH_SLOTS];
	/* lock: slot k's bytes are being pushed into the kernel's page
	 * cache (view_fhread.c, ext_push): no load may take the slot. */
	bool spush[FH_SLOTS];
	/* lock: extents the workers load ahead are also pushed into the
	 * page cache (set at open for an immutable file read through the
	 * cache; cleared when the kernel refuses a push). */
	bool push;
	/* lock: where pushing groups of small extents stands: the next
	 * extent to push and the file offset pushes were asked up to;
	 * rd_end, where the last READ ended (a READ near it is
	 * sequential). */
	size_t push_next;
	uint64_t push_end;
	uint64_t rd_end;
	size_t cur;                  /* lock: the extent last read from, or SIZE_MAX */
	pthread_cond_t loaded;       /* lock: a load ended (or failed) */
	/* lock: extents up to this one were handed to the disk ahead of
	 * the reader (chunk_read), 0 before any. */
	size_t ahead;
	/* FH_STAGE, FH_TREEFILE */
	struct stage *st;
	int fd;                      /* FH_TREEFILE: its own descriptor */
	char *tpath;                 /* FH_TREEFILE: its path inside the tree */
	int werr;                    /* FH_TREEFILE, FH_BUF: its first failed write;
				      * its flush and fsync fail with it (and an
				      * FH_BUF stores nothing) */
};

struct vd_view {
	vd_engine *e;
	char *mountpoint;
	char *staging;
	struct fuse_session *se;
	bool mounted;
	uid_t uid;
	gid_t gid;
	bool allow_other;            /* immutable: --allow-other (owners are real) */
	int64_t start_ms;

	pthread_mutex_t nlock;
	struct vnode **by_name;      /* nlock */
	struct vnode **by_ino;       /* nlock */
	size_t nbuckets;             /* nlock: both tables, a power of two */
	size_t nnodes;               /* nlock */
	uint64_t next_gen;           /* nlock */
	struct vnode *root;
	struct vfh *fhs;             /* nlock: open handles, freed at the end if
				      * the kernel never released them */

	pthread_mutex_t slock;
	pthread_cond_t scond;
	struct stage *stages;        /* slock */
	uint64_t stage_seq;          /* slock */
	bool stopping;               /* slock: the settle thread should end */
	pthread_cond_t stop_cond;    /* slock: wakes the settle thread */
	pthread_t settler;
	bool settler_started;

	pthread_mutex_t mlock;
	struct mc_ent *mc[MC_SLOTS]; /* mlock */
	uint64_t mc_tick;            /* mlock */

	/* The deletion watcher (view_delete.c). */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	/* Set once, before anything waits for the watcher; read under wlock
	 * before each notification (view_watch_stop). */
	atomic_bool wstop;
	pthread_t watcher;
	bool watcher_started;

	/* The decode-ahead workers (view_fhread.c): extents of handles to
	 * load, first in first out, dropped when the queue is full. */
	pthread_mutex_t alock;
	pthread_cond_t acond;        /* alock: a job was queued, or astop */
	pthread_cond_t adone;        /* alock: a worker let go of its handle */
	/* A job loads extent idx into a slot ahead of the reader (group
	 * false), or pushes the group of small extents that starts at idx
	 * into the page cache (view_fhread.c, group_push). */
	struct ahead_job { struct vfh *fh; size_t idx; bool group; } aq[FH_QUEUE]; /* alock */
	size_t aq_first, aq_n;       /* alock: the queue in aq, a ring */
	struct vfh *abusy[FH_WORKERS]; /* alock: the handle each is loading for */
	bool astop;                  /* alock: the workers should end */
	size_t aworkers;             /* alock: how many were started */
	pthread_t aworker[FH_WORKERS];

	pthread_mutex_t looplock;
	bool looping;                /* looplock: vd_view_loop is in the loop */
	pthread_t loop_thread;       /* looplock */
	bool kicked;                 /* looplock */
};

/* ---- view.c ---------------------------------------------------------- */
/* Wake the session loop after fuse_session_exit (see vd_view_exit). */
void view_kick_loop(struct vd_view *v);

/* ---- view_node.c ----------------------------------------------------- */
int node_table_init(struct vd_view *v);
void node_table_free(struct vd_view *v);
/* The node for an inode the kernel holds; NULL if unknown. */
struct vnode *node_get(struct vd_view *v, fuse_ino_t ino);
/* Find or make the node for r under parent and count one kernel lookup. A
 * node at that name that is something else now is unhashed first. */
int node_enter(struct vnode **out, struct vd_view *v, struct vnode *parent,
	       const char *name, const struct vref *r);
void node_forget(struct vd_view *v, fuse_ino_t ino, uint64_t n);
void node_ref(struct vd_view *v, struct vnode *n);
void node_unref(struct vd_view *v, struct vnode *n);
/* The inode number a lookup of (parent, name) would give now. */
fuse_ino_t node_peek_ino(struct vd_view *v, struct vnode *parent, const char *name);
/* After unlink/rmdir: the name no longer finds the node. */
void node_unhash_child(struct vd_view *v, struct vnode *parent, const char *name);
/* After a rename: move the node and unhash what it replaced. */
int node_move(struct vd_view *v, struct vnode *parent, const char *name,
	      struct vnode *newparent, const char *newname);
/* Call fn for every node reachable by name, with nlock held: fn only
 * copies what it needs and calls nothing of the view. */
void node_walk(struct vd_view *v, void (*fn)(void *ctx, const struct vnode *n), void *ctx);
/* node_unhash_child by the parent's inode number, for callers that hold no
 * reference to the parent (it may be gone: false). */
bool node_unhash_at(struct vd_view *v, fuse_ino_t parent, const char *name);
/* ".." of a directory node. */
fuse_ino_t node_parent_ino(struct vd_view *v, struct vnode *n);
/* A node's path below its tree top (NK_DATAENT, NK_INPUT); "" for the top. */
int node_relpath(char *out, size_t outsz, struct vd_view *v, struct vnode *n);
/* The name in data/ that NK_DATAENT node n is, or is inside of. */
int node_dname(char *out, size_t outsz, struct vd_view *v, struct vnode *n);

/* ---- view_tree.c ----------------------------------------------------- */
int vref_of_node(struct vref *r, struct vd_view *v, struct vnode *n);
int vref_child(struct vref *c, struct vd_view *v, const struct vref *parent,
	       const char *name);
/* Make c the child `name` of kind `kind` in p (task and IDs inherited). */
void vref_child_init(struct vref *c, const struct vref *p, enum nkind kind,
		     const char *name);
/* Attributes of the place now; fills r->type (and r->ckey). -ENOENT. */
int vref_stat(struct stat *st, struct vd_view *v, struct vref *r);
void vref_ttl(const struct vref *r, double *entry, double *attr);
/* Everything in a directory, without "." and "..". */
int vref_list(struct dlist *out, struct vd_view *v, const struct vref *r);
/* readlink of a symlink in a sealed tree: the target as stored, appended
 * to out, never resolved. version_readlink takes the tree's data ID and
 * the path inside it (for data/TREE/... while only sealed: sealed_get's
 * data_id and r->path); input_readlink a vref of kind NK_INPUT. -EINVAL
 * for anything that is no symlink, -ENAMETOOLONG past out's cap. */
int version_readlink(struct vd_buf *out, struct vd_view *v, const char *data_id,
		     const char *path);
int input_readlink(struct vd_buf *out, struct vd_view *v, const struct vref *r);
/* Read-only places: under versions/ and code/, plus the generated files. */
bool vref_immutable(const struct vref *r);
/* Fill the fields every stat shares. */
void view_stat_base(struct stat *st, struct vd_view *v, mode_t mode,
		    uint64_t size, int64_t time_ms);
int path_join(char *out, size_t outsz, const char *a, const char *b);
int name_check(const char *name);   /* -ENAMETOOLONG, -EINVAL */

int dlist_add(struct dlist *l, const char *name, size_t len, mode_t type);
void dlist_free(struct dlist *l);
void dlist_sort_unique(struct dlist *l);

/* ---- view_read.c ----------------------------------------------------- */
int mc_get(struct mc_ent **out, struct vd_view *v, const char *data_id);
void mc_put(struct vd_view *v, struct mc_ent *ent);
void mc_free_all(struct vd_view *v);
/* Find path in a manifest (vd_manifest_lookup): *type S_IFREG, S_IFLNK or
 * S_IFDIR; *idx the entry, SIZE_MAX for the top or an implied directory. */
int man_find(mode_t *type, size_t *idx, const struct vd_manifest *m,
	     const char *path);
/* Names in a directory of a tree manifest, with their types (DT_LNK for
 * symlinks). */
int man_list(struct dlist *out, const struct vd_manifest *m, const char *dir);
/* Attributes of path in a tree manifest as a sealed tree shows them: the
 * recorded modes (0644 / 0755 where none were recorded), a symlink as a
 * symlink (size: its target's length), st_nlink = the names of a
 * hard-linked file. -ENOENT. */
int man_stat(struct stat *st, struct vd_view *v, const struct vd_manifest *m,
	     const char *path, int64_t time_ms);
/* The stored target of the symlink at path, never resolved, appended to
 * out; -EINVAL when path is no symlink, -ENAMETOOLONG past out's cap. */
int man_readlink(struct vd_buf *out, const struct vd_manifest *m, const char *path);
/* Read one extent's chunk into out (emptied first; an allocation it has
 * is used), verified and checked against the manifest's length; a missing
 * or bad chunk is -EIO (view_read.c). */
int ext_load(struct vd_buf *out, struct vd_view *v, const struct vd_extent *x);
/* Read [off, off+size) of fh->file into dst; *got bytes (short at EOF)
 * (view_fhread.c). */
int chunk_read(size_t *got, struct vd_view *v, struct vfh *fh, char *dst,
	       size_t size, uint64_t off);
/* Write a stored file's whole content to fd from offset 0. */
int copy_file_to_fd(struct vd_view *v, const struct vd_file *f, int fd);
/* A staging handle's fd with its content in it (see struct stage), for
 * reads; -errno. */
int data_ready_fd(struct vd_view *v, const struct vfh *fh);
/* The size of a staging file whose content is not in its fd: true and
 * *size when so. */
bool data_virtual_size(const struct vfh *fh, uint64_t *size);
/* Recreate a sealed tree below dir (which exists) as it was submitted:
 * modes (through stage_mode), empty directories, symlinks, hard links. */
int materialize_tree(struct vd_view *v, const struct vd_manifest *m, const char *dir);
uint64_t file_ckey(const struct vd_file *f);

/* ---- view_fh.c: file handles ------------------------------------------- */
/* A new handle of kind on n (a reference is taken; n may be NULL); NULL
 * when out of memory. */
struct vfh *fh_new(struct vd_view *v, struct vnode *n, enum fh_kind kind);
/* Join v->fhs: getattr may look at it and unmount frees it if the kernel
 * never releases it. */
void fh_link(struct vd_view *v, struct vfh *fh);
void fh_set_node(struct vd_view *v, struct vfh *fh, struct vnode *n);
/* Unlink and free fh and what it holds; NULL is a no-op. */
void fh_free(struct vd_view *v, struct vfh *fh);

/* ---- view_fhread.c: reading a stored file through a handle ------------ */
/* Open fh as a chunked reader of a file in a manifest or of its own. */
int fh_chunk_init_man(struct vfh *fh, struct mc_ent *ent, size_t idx);
void fh_chunk_init_own(struct vfh *fh, struct vd_file *f);
/* Before fh is freed: off the decode-ahead queue, its loads done, its
 * slots freed. Safe on any handle from fh_new. */
void fh_chunk_release(struct vd_view *v, struct vfh *fh);
/* Have a worker load extent i of fh. */
void view_ahead_ask(struct vd_view *v, struct vfh *fh, size_t i);
/* Take fh's jobs off the queue and wait until no worker loads for it. */
void view_ahead_forget(struct vd_view *v, struct vfh *fh);
/* The workers' threads: started with the mount, stopped (joined) before
 * handles the kernel never released are freed. */
int view_ahead_start(struct vd_view *v);
void view_ahead_stop(struct vd_view *v);

/* ---- view_stage.c: staging entries and sealing ------------------------ */
int data_init(struct vd_view *v);
void data_shutdown(struct vd_view *v);   /* stops the settle thread, seals, frees */
/* The list v->stages (slock held for the _locked ones). */
struct stage *stage_find_locked(struct vd_view *v, const char *task, const char *name);
void stage_insert_locked(struct vd_view *v, struct stage *s);
void stage_remove_locked(struct vd_view *v, struct stage *s);   /* freed when unused */
bool stage_unused_locked(const struct stage *s);
/* A new staging file (O_EXCL) or directory, not yet in the list. */
int stage_new(struct stage **out, struct vd_view *v, const char *task,
	      const char *name, bool tree);
void stage_destroy(struct stage *s);     /* deletes what is on disk; no locks */
/* The staging file of a name, pinned, or NULL; put drops the pin (and a
 * writer's count) and frees it with the last one. */
struct stage *file_stage_get(struct vd_view *v, const char *task, const char *name);
void file_stage_put(struct vd_view *v, struct stage *s, bool writer);
/* An editor's or sync tool's temporary (sed's sedXXXXXX, rsync's and
 * vim's dotfiles, 4913, *~, *.swp, #name#, tmpXXXXXXXX, *.tmp): never
 * sealed under that name (docs/mount.md, "Editors and sync tools"). */
bool data_name_temporary(const char *name);
/* Rename staging entry s (slock held; seal_lock too for a file). */
int stage_rename_locked(struct stage *s, const char *to);
/* Failed writes (see struct stage: write_err and bad). */
void stage_write_failed(struct stage *s, int err);      /* io_lock held */
void stage_size_set(struct stage *s, off_t size);       /* io_lock held */
void bad_drop_locked(struct stage *s, const char *path);
void bad_move_locked(struct stage *src, const char *from, struct stage *dst, const char *to);
void tree_bad_add(struct vd_view *v, struct stage *s, const char *path, int err);
void tree_bad_drop(struct vd_view *v, struct stage *s, const char *path);
/* The engine's latest version under a data name. */
int sealed_get(struct vd_version_info *vi, struct vd_view *v, const char *task,
	       const char *name);
/* Pin a staging tree for one operation; with modify a sealed tree gets a
 * staging tree first. Without, *out is NULL when the tree is only sealed. */
int tree_enter(struct stage **out, struct vd_view *v, const char *task,
	       const char *name, bool modify);
void tree_leave(struct vd_view *v, struct stage *s, bool modified);
int tree_path(char *out, size_t outsz, const struct stage *s, const char *path);
/*
 * A place inside a staging tree, for the *at() calls: the directory that
 * holds it, opened without following any symlink on the way (users make
 * symlinks in trees, and the daemon, often root, must never act through
 * one), and its last component. For the tree's top (path "") it is the
 * staging directory's parent and the staging directory's own name.
 */
struct tree_at {
	int dfd;                     /* owned */
	const char *name;            /* points into the path or s->dir */
};
int tree_at_open(struct tree_at *at, const struct stage *s, const char *path);
void tree_at_close(struct tree_at *at);
/* Open a directory inside a staging tree (O_RDONLY), never through a
 * symlink. */
int tree_opendir(const struct stage *s, const char *path);
/* The mode a staging file or directory is made with or set to: what was
 * asked for when the daemon can read and write anything (root); otherwise
 * at least u+rw (u+rwx for directories), since it must read what it seals
 * (docs/mount.md). */
mode_t stage_mode(mode_t asked, bool dir);
/* Who asked for the operation this thread serves (view.c's req_view). */
struct view_caller {
	uid_t uid;
	gid_t gid;
};
extern _Thread_local struct view_caller view_caller;
/* The login name of uid (for a version's submitted_by), "uid N" when it
 * has none. */
void view_uid_name(char *out, size_t size, uid_t uid);
/* With --allow-other, give what was just made (at dfd/name, or fd) to the
 * caller; otherwise nothing. A failure is logged, not returned: the entry
 * exists, and is the daemon's. */
void stage_own_at(const struct vd_view *v, int dfd, const char *name);
void stage_own_fd(const struct vd_view *v, int fd);
/* The staging tree's directory holds nothing at all. */
bool stage_tree_empty(const struct stage *s);
/* Move a staging file's content into its fd (io_lock held). */
int stage_plain(struct vd_view *v, struct stage *s);
/* Seal a staging file if it changed (force: even if only made or
 * truncated); a failed write makes it fail. */
int stage_seal(struct vd_view *v, struct stage *s, bool force);
void mark_dirty(struct vd_view *v, struct stage *s, bool written);
/* truncate(2) of a sealed file nobody has open: sealed at once. */
int seal_truncated(struct vd_view *v, const struct vref *r, off_t size);

/* ---- view_data.c: operations in data/ -------------------------------- */
int data_stat(struct stat *st, struct vd_view *v, struct vref *r);
int data_list(struct dlist *out, struct vd_view *v, const struct vref *r);
int data_mkdir(struct vd_view *v, const struct vref *c, mode_t mode);
int data_create(struct vfh *fh, struct vd_view *v, const struct vref *c,
		int flags, mode_t mode);
int data_open(struct vfh *fh, struct vd_view *v, const struct vref *r, int flags);
int data_unlink(struct vd_view *v, const struct vref *c);
int data_rmdir(struct vd_view *v, const struct vref *c);
int data_rename(struct vd_view *v, const struct vref *from, const struct vref *to,
		unsigned flags);
int data_setattr(struct vd_view *v, const struct vref *r, struct vfh *fh,
		 const struct stat *attr, int to_set);
int data_write(struct vd_view *v, struct vfh *fh, const char *p, size_t n, off_t off);
int data_flush(struct vd_view *v, struct vfh *fh);
int data_fsync(struct vd_view *v, struct vfh *fh, int datasync);
void data_release(struct vd_view *v, struct vfh *fh);
/* The descriptor to read a staging handle from. */
int data_read_fd(const struct vfh *fh);
/* name_check for a new name in data/, saying in vdfsd's log and the
 * task's latest log why a refused name is refused. */
int data_name_check(struct vd_view *v, const char *task, const char *name);
void data_name_refused(struct vd_view *v, const char *task, const char *name, int rc);
int data_symlink(struct vd_view *v, const struct vref *c, const char *target);
/* A staging symlink's target into out; -EINVAL when r is not one. */
int data_readlink(struct vd_buf *out, struct vd_view *v, const struct vref *r);
int data_link(struct vd_view *v, const struct vref *from, const struct vref *to);
int data_mknod(struct vd_view *v, const struct vref *c, mode_t mode, dev_t rdev);

/* ---- view_runs.c ----------------------------------------------------- */
/* True for the kinds view_runs.c answers for (code/, runs/ and below). */
bool runs_kind(enum nkind kind);
int runs_child(struct vref *c, const struct vref *parent, const char *name);
/* Attributes of code/, runs/ and what is in them; fills r->ckey. -ENOENT. */
int runs_stat(struct stat *st, struct vd_view *v, struct vref *r);
int runs_list(struct dlist *out, struct vd_view *v, const struct vref *r);
/* Open a code file or a run's file read-only; sets fi's caching. -EROFS
 * for a write, -ESTALE when r's result is no longer the one shown. */
int runs_open(struct vfh *fh, struct fuse_file_info *fi, struct vd_view *v,
	      const struct vref *r, bool wr);

/* ---- view_delete.c: removing versions and tasks ------------------------ */
/* True for the parents whose unlink and rmdir view_remove answers: tasks/,
 * a task, versions/, a version and everything inside it, code/. */
bool view_remove_here(const struct vref *parent);
/* unlink (dir false) or rmdir (dir true) of name in parent pr
 * (docs/lifecycle.md, "From the mount"). */
int view_remove(struct vd_view *v, const struct vref *pr, const char *name, bool dir);
/* The thread that tells the kernel to drop its cached entries of versions
 * and tasks deleted other than through the mount. Started once mounted;
 * stop is safe without a start. */
int view_watch_start(struct vd_view *v);
/* Before unmounting: stop, or (it is blocked in the kernel) make sure it
 * sends nothing more; view_watch_join after unmounting. */
void view_watch_stop(struct vd_view *v);
void view_watch_join(struct vd_view *v);

/* ---- view_owner.c: owners under --allow-other ------------------------- */
/* Who tasks/<task> and what it holds show as owned by: its recorded
 * owner with --allow-other (vd_engine_task_uid), else the mounting user.
 * -ENOENT for an unknown task. */
int task_owner(uid_t *uid, gid_t *gid, struct vd_view *v, const char *task);
/* Set st's owner to task's owner (--allow-other; otherwise nothing). */
void task_owner_stat(struct stat *st, struct vd_view *v, const char *task);
/* Whether the caller (view_caller) may change task: with --allow-other
 * only its owner and root may (0, or -EACCES with a log line); anyone
 * otherwise. -ENOENT for an unknown task. */
int task_may_change(struct vd_view *v, const char *task);
/* mkdir tasks/NAME: with --allow-other the caller owns the new task. */
int task_make(struct vd_view *v, const char *name);
/* A setattr's chown/chgrp of tasks/NAME (--allow-other; for anything
 * else 0, nothing done): recorded; -EPERM unless root, or the owner
 * setting its own primary group. */
int task_chown(struct vd_view *v, const struct vref *r, const struct stat *attr, int to_set);
/* With --allow-other, st shows real's owner (a staging entry's). */
void stat_real_owner(struct stat *st, const struct vd_view *v, const struct stat *real);
/* Give everything in dir (a sealed tree copied out for changes) to the
 * task's owner (--allow-other; otherwise nothing). Failures are logged. */
void tree_give(struct vd_view *v, const char *dir, const char *task);
/* After fuse_session_mount failed: log why, naming the line /etc/fuse.conf
 * lacks when that is the reason (-EPERM), else -EIO. */
int view_mount_failed(const struct vd_view *v);

#endif
