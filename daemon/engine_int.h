/*
 * engine_int.h - what the engine's files share and nobody else sees.
 *
 * The engine's durable state is the catalog (key schema in docs/catalog.md).
 * Its in-memory state is only what makes scheduling fast: the active runs
 * (queued or running) with their units, the live leases, and executor
 * statistics. All of it can be rebuilt from the catalog, which is what
 * vd_engine_open does after a crash.
 *
 * Locking: one mutex, vd_engine.lock, guards every in-memory field below
 * that is marked "lock", and is held across every catalog commit that
 * changes tasks, versions, runs or leases, so that the catalog and memory
 * change together. Slow work is done outside it: chunking and storing a
 * submission, storing a result's bytes, reducing a finished run. Chunk
 * reads go straight to the store, which has its own locking.
 */
#ifndef VD_ENGINE_INT_H
#define VD_ENGINE_INT_H

#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "catalog.h"
#include "chunker.h"
#include "engine.h"
#include "store.h"

#define VD_CODE_MAX (64u << 20)          /* largest function we accept */
#define VD_CONFIG_MAX (64u << 10)
#define VD_JSON_MAX (1u << 20)
#define VD_RESULT_MAX ((1ull << 30) + (64u << 10))
#define VD_STDERR_TAIL 4096
#define VD_EXEC_NAME_MAX 64
#define VD_LEASE_WAIT_MAX_MS 30000
/* A unit whose leases ran out this often fails its run: something about it
 * (or the cluster) keeps killing executors, and retrying forever hides it. */
#define VD_EXPIRIES_MAX 10
/* With replication, a unit that gathered this many more results than it
 * needs without `replicas` of them agreeing fails its run. */
#define VD_VOTES_SPARE 3
/* Chunk IDs remembered per executor for locality (a power of two). */
#define VD_HELD_MAX 16384
/* Failures in a row an executor is to blame for before it is quarantined. */
#define VD_STRIKES_MAX 5

enum vd_reduce { VD_REDUCE_CONCAT, VD_REDUCE_SUM };
enum vd_format { VD_FORMAT_LINES, VD_FORMAT_CSV, VD_FORMAT_WHOLE };
enum vd_rerun { VD_RERUN_LATEST, VD_RERUN_NONE };
/* What a tree's symlinks are (docs/versioning.md, "Trees"): kept in the
 * version but no unit's input; left out of the version when sealed; or,
 * for one that points inside the tree to a regular file, that file's
 * content cut into units under the link's path. */
enum vd_symlinks { VD_SYMLINKS_KEEP, VD_SYMLINKS_SKIP, VD_SYMLINKS_FOLLOW };
/* A FIFO, socket or device node in a tree: its seal fails, or it is left
 * out with a log line. */
enum vd_special { VD_SPECIAL_REFUSE, VD_SPECIAL_SKIP };
/* How executors run the function: a process per unit, or one per slot fed
 * framed units (docs/persistent.md). */
enum vd_mode { VD_MODE_EXEC, VD_MODE_PERSISTENT };

/* A task's parsed config. Defaults are what an empty config means. */
struct vd_config {
	int level;             /* executor level needed, 1..5 */
	enum vd_reduce reduce;
	enum vd_format format;
	int timeout_s;         /* per unit */
	uint64_t memory;       /* bytes a unit may use (its process group's RSS) */
	int retries;           /* failed attempts before the run fails */
	int replicas;
	int settle_ms;
	enum vd_rerun rerun;
	bool allow_empty;      /* empty output from a non-empty unit is fine */
	uint64_t unit_size;    /* target bytes per unit */
	char encoding[16];     /* auto | utf-8 | gb18030 | big5: VDFS_ENCODING */
	/* Function parameters from `env.NAME = value` lines, as "NAME=value\n"
	 * lines in the order written; they reach the function's environment. */
	char env[2048];
	enum vd_symlinks symlinks;
	enum vd_special special;
	enum vd_mode mode;     /* changes no output: not in the memo key */
	/* Retention (`keep`), applied by gc: keep the newest keep_n versions,
	 * or those younger than keep_ms; both 0 = keep all. */
	long long keep_n;
	int64_t keep_ms;
};

void vd_config_default(struct vd_config *c);
/* Parse config text; -EINVAL with "line N: reason" appended to why. */
int vd_config_parse(struct vd_config *out, struct vd_buf *why, const char *text,
		    size_t n);
/* Would a run made under a be made the same under b? (Every key but
 * keep; a config rewritten with other comments or spacing is the same.) */
bool vd_config_runs_equal(const struct vd_config *a, const struct vd_config *b);
/* The config that a unit's output depends on, as canonical text: results
 * are memoized per (code, this, unit). */
void vd_config_output_key(struct vd_buf *out, const struct vd_config *c);

/* PENDING: it wants another lease (none yet, or replication or a
 * straggler copy is due); LEASED: every lease it wants is out; DONE: a
 * result was accepted. */
enum vd_unit_state { VD_UNIT_PENDING, VD_UNIT_LEASED, VD_UNIT_DONE };

/* One successful result of a replicated unit, kept until enough agree. */
struct vd_vote {
	char executor[VD_EXEC_NAME_MAX + 1];
	char blob[VD_ID_SIZE];     /* the stored output: equal IDs, equal bytes */
	uint64_t len;
	int64_t ms;
};

/* One piece of work: consecutive whole chunks of one file. */
struct vd_unit {
	char id[VD_ID_SIZE];
	size_t file;               /* index into the run's manifest */
	size_t first, count;       /* extents of that file */
	uint64_t bytes;            /* input bytes, header not counted */
	uint64_t skip;             /* bytes of the first chunk left out (csv header) */
	enum vd_unit_state state;  /* lock */
	int failures;              /* lock: failed attempts (function's fault) */
	int expiries;              /* lock: leases that ran out */
	int nleases;               /* lock: live leases on this unit */
	char executor[VD_EXEC_NAME_MAX + 1];  /* lock: whose result was accepted */
	/* lock: the last two executors whose attempt failed; if the unit then
	 * succeeds elsewhere, that counts against them (see strikes). */
	char failed_by[2][VD_EXEC_NAME_MAX + 1];
	struct vd_vote *votes;     /* lock: replicas > 1, results so far */
	int nvotes;                /* lock */
	bool copied;               /* lock: a straggler copy was handed out */
	/* lock: a result for this unit is staged in a catalog batch that is
	 * being committed without the lock (engine_result.c): another result
	 * for it is answered "later" until that commit is over. */
	bool committing;
};

/* An active (queued or running) run and its units. */
struct vd_run {
	struct vd_run *next;       /* lock: engine's active list, oldest first */
	char task[256];
	char data[VD_ID_SIZE];
	char code[VD_ID_SIZE];
	struct vd_config cfg;      /* snapshot taken when the run was made */
	char *cfg_text;
	char out_key[VD_ID_SIZE];  /* ID of vd_config_output_key */
	struct vd_manifest *man;
	char **headers;            /* csv: each file's header line, else NULL */
	struct vd_unit *units;
	size_t nunits;
	size_t ndone;              /* lock */
	int64_t done_ms_sum;       /* lock: summed `ms` of results accepted in */
	size_t done_ms_n;          /* this run, for the straggler threshold */
	size_t cursor;             /* lock: no pending unit before this index */
	bool started;              /* lock: some unit was leased */
	bool finishing;            /* lock: all done, being reduced */
	int64_t finish_after_ms;   /* lock: vd_mono_ms before which a reduce that
				    * failed for want of space is not tried again */
	/* lock: a unit lost VD_EXPIRIES_MAX leases; the background thread
	 * fails the run (it cannot be done where the lease is lost, which
	 * is in the middle of walking the lease list). */
	bool doomed;
	size_t doomed_unit;
	int64_t created_ms, started_ms;
	int64_t planned_ms;        /* lock: when this daemon planned it (vd_now_ms) */
};

struct vd_lease {
	struct vd_lease *next;     /* lock */
	char id[VD_ID_SIZE];
	struct vd_run *run;
	size_t unit;
	char executor[VD_EXEC_NAME_MAX + 1];
	int64_t expires_ms;        /* lock; monotonic clock */
	int64_t granted_ms;        /* monotonic */
	bool copy;                 /* a straggler copy of a unit already leased */
};

/* A set of chunk IDs (their first 64 bits), open addressing; emptied when
 * half full. Good enough to say "this executor probably has it". */
struct vd_idset {
	uint64_t *slot;            /* VD_HELD_MAX entries, 0 = empty; or NULL */
	size_t n;
};

struct vd_executor {
	struct vd_executor *next;  /* lock */
	char name[VD_EXEC_NAME_MAX + 1];
	int level, slots;
	char *host;                /* JSON text of its host facts */
	int64_t registered_ms;     /* wall clock */
	int64_t last_seen_ms;      /* lock; monotonic: its last request */
	/* lock; monotonic: when the long-poll it is in ends. An executor is
	 * gone once it was silent for half a lease past both (see
	 * exec_state in engine_render.c). */
	int64_t poll_until_ms;
	bool left;                 /* lock: it said it was leaving (its drain) */
	/* lock: counts its registrations. A long-poll that began before the
	 * latest one, or before it left, belongs to a process that is gone
	 * (the daemon cannot see a client close a held request) and takes
	 * nothing more, or the units it took would wait out their term. */
	unsigned generation;
	/* lock: the counters below are also kept in the catalog (exc/<name>),
	 * written in the batch that records what changed them. */
	uint64_t units_done;       /* lock: results accepted */
	uint64_t units_failed;     /* lock: failed attempts (the function's fault) */
	uint64_t infra_failed;     /* lock: leases lost (expired, abandoned) and
				    * inputs it could not get */
	uint64_t flagged;          /* lock: replicated results it disagreed on */
	int active;                /* lock: live leases */
	/* lock: SHA-256 of its own token; has_token false once revoked. */
	unsigned char token_hash[32];
	bool has_token;
	bool revoked;              /* lock: cut off by the operator */
	int strikes;               /* lock: failures in a row it is to blame for */
	int64_t quarantine_until;  /* lock: monotonic; 0 = not quarantined */
	char quarantine_why[200];  /* lock */
	struct vd_idset held;      /* lock: chunks it fetched or said it caches */
};

struct vd_settling {
	struct vd_settling *next;
	char task[256], name[256];
	uint64_t files, bytes;
	int64_t seals_at;          /* vd_mono_ms when it seals if nothing changes */
};

struct vd_engine {
	char *state;
	struct vd_key key;
	char token[128];
	vd_catalog *cat;
	vd_store *store;
	struct vd_chunker_params chunking;
	int lease_ms, heartbeat_ms;
	int quarantine_ms;         /* how long a quarantine lasts */
	int64_t upload_keep_ms;    /* gc keeps uploaded chunks this long (fixed) */
	/* What reduce = sum's key table may take before it spills; 0: its
	 * default (engine_reduce_sum.c). Tests make it tiny, before any run
	 * finishes; nothing changes it after. */
	size_t reduce_mem;
	/* Times a reduce = sum split its keys into partitions (logged; the
	 * tests check that a tiny reduce_mem makes it spill). */
	atomic_uint_fast64_t reduce_splits;
	int64_t started_mono;

	pthread_mutex_t lock;
	pthread_cond_t work;       /* a unit became pending, or stopping */
	pthread_cond_t tick;       /* wakes the background thread: a run to finish */
	bool stopping;             /* lock */
	struct vd_run *runs;       /* lock */
	struct vd_lease *leases;   /* lock */
	struct vd_executor *execs; /* lock */
	uint64_t log_seq;          /* lock */
	pthread_t reaper;
	bool reaper_started;
	/* Held by a gc that changes the store and by fsck --repair, which
	 * must not run together (engine_gc.c); taken with trylock, never
	 * while holding lock. */
	pthread_mutex_t gc_lock;

	/* The state disk ran out of space: set by a store or catalog write
	 * that failed with ENOSPC or EDQUOT, cleared by the next such write
	 * that succeeds (vd_engine_disk_note). Atomic: status, log and
	 * /metrics read it without the lock. */
	atomic_bool disk_full;

	/* Trees in data/ waiting to settle, as the view last told
	 * (vd_engine_settling_set); lock. For status only. */
	struct vd_settling *settling;

	/* The live events (engine_events.c), behind a lock of their own
	 * that is taken after this one, never before: NULL when they could
	 * not be set up, and then nothing is posted. */
	struct vd_events *events;

	/* Counters for /metrics; lock. */
	uint64_t m_leased, m_accepted, m_failed, m_expired, m_late;
	uint64_t m_copies, m_mismatches, m_quarantines;
	uint64_t m_versions, m_bytes_in, m_bytes_stored;
	uint64_t m_upload_bytes, m_upload_new_bytes;   /* POST /v1/chunks */
	uint64_t m_deleted;        /* versions and tasks deleted (versions_seq) */
	/* Result requests taken (a PUT, or a POST /v1/results of several)
	 * and the results in them. */
	uint64_t m_result_requests, m_results_in;
	uint64_t m_inline_bytes;   /* chunk bytes sent inside leases */
};

/* ---- engine.c ---- */
/* Note the outcome rc of a write to the state disk (store or catalog):
 * -ENOSPC and -EDQUOT mark the disk full (logged once), 0 clears it; any
 * other code says nothing about space. Returns rc. */
int vd_engine_disk_note(vd_engine *e, int rc);
/* Bytes free for us on the state disk (0 if it cannot be told). */
uint64_t vd_engine_disk_free(vd_engine *e);
/* rc is a want of space on the state disk. */
bool vd_engine_no_space(int rc);
/* A status suffix while the disk is full: ": waiting: state disk full (N
 * bytes free)"; nothing otherwise. */
int vd_engine_disk_status(struct vd_buf *out, vd_engine *e);
int vd_engine_task_json(json_t **out, vd_engine *e, const char *task);
int vd_engine_task_config(struct vd_config *out, char **text, vd_engine *e,
			  const char *task);
void vd_engine_key(struct vd_buf *out, const char *prefix, const char *a,
		   const char *b, const char *c);
/* The rest of every key under prefix, in key order. */
int vd_engine_list_suffix(struct vd_strv *out, vd_engine *e, const char *prefix);

/* ---- engine_ingest.c ---- */
int vd_engine_manifest_parse(struct vd_manifest **out, const char *json, size_t n);
/* Where the bytes of one file come from, in order: read puts up to cap
 * bytes into buf and their count in *got (0: the end); -errno with the
 * reason in why. */
struct vd_engine_source {
	int (*read)(void *ctx, void *buf, size_t cap, size_t *got, struct vd_buf *why);
	void *ctx;
};
/* Cut what src gives into f's extents with the store's chunker, storing
 * chunks w has not seen with w and feeding the bytes to h (may be NULL):
 * what every submission, from the mount or uploaded, goes through. */
int vd_engine_ingest_source(struct vd_file *f, vd_store_writer *w, vd_hasher *h,
			    vd_engine *e, const struct vd_engine_source *src,
			    struct vd_buf *why);
/* The quick half of sealing (under e->lock inside): record version
 * data_id of task with manifest m, its run, the data name, and w's pack
 * entries, in one synced batch. 1 a new version, 0 known content. */
int vd_engine_seal(struct vd_version_info *out, vd_engine *e, const char *task,
		   const char *name, const char *by, const struct vd_manifest *m,
		   const char *data_id, vd_store_writer *w);
/* A tree's data ID from its manifest (files sorted by path), h fresh. */
void vd_engine_tree_id(char data_id[VD_ID_SIZE], vd_hasher *h, const struct vd_manifest *m);
int vd_engine_version_json(json_t **out, vd_engine *e, const char *task,
			   const char *data_id);

/* ---- engine_manifest.c ---- */
/* Append a chunk to f's extents (cap: how many ext has room for). */
int vd_engine_file_push(struct vd_file *f, size_t *cap, const char *id, uint64_t len,
			uint64_t lines);
/* A file's extents as [[id, len], ...] and back. */
json_t *vd_engine_file_json(const struct vd_file *f);
int vd_engine_extents_parse(struct vd_file *f, const json_t *a);
/* Free what f owns (not f). */
void vd_engine_file_release(struct vd_file *f);
/* m as the JSON of its m/<data-id> record. NULL: no memory. */
json_t *vd_engine_manifest_json(const struct vd_manifest *m);
/* qsort order of files: by path. */
int vd_engine_file_path_cmp(const void *a, const void *b);
/* The entry whose path is path in files sorted by path; SIZE_MAX if none. */
size_t vd_engine_entry_index(const struct vd_file *files, size_t n, const char *path);

/* ---- engine_render.c ---- */
/* The code whose run version record v shows (docs/engine.md): the task's
 * current code when it ran on v, else the newest that did; copied into
 * buf. NULL when no code ran on it. */
const char *vd_engine_version_code(char buf[VD_ID_SIZE], vd_engine *e, const char *task,
				   const json_t *v);

/* ---- engine_sched.c ---- */
int64_t vd_engine_run_t0(const struct vd_run *r);
/* Make the run (task, data, code) if it does not exist: adds its record to b
 * and the code to the version's run list (version: the version record when
 * the caller has it, perhaps only in b so far; NULL reads it). The caller
 * commits b and then calls vd_engine_run_activate. Lock held. 1 made, 0 known. */
int vd_engine_run_add(vd_catalog_batch *b, vd_engine *e, const char *task,
		      const char *data, const char *code, json_t *version);
/* Load a committed queued/running run into memory (lock held). Runs whose
 * units are all memoized are finished at once (the lock is dropped and
 * taken again for that). */
int vd_engine_run_activate(vd_engine *e, const char *task, const char *data,
			   const char *code);
int vd_engine_sched_start(vd_engine *e);    /* loads runs and leases, starts the reaper */
void vd_engine_sched_stop(vd_engine *e);
/* Append a line to a run's log (lock held; goes into b). */
void vd_engine_log_add(vd_catalog_batch *b, vd_engine *e, const char *task,
		       const char *data, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

/* Shared by engine_sched.c and engine_lease.c (lock held for all). */
struct vd_run *vd_engine_find_run(vd_engine *e, const char *task, const char *data,
				  const char *code);
struct vd_lease *vd_engine_find_lease(vd_engine *e, const char *id);
/* Recompute a unit's state from its leases, votes and result; wakes
 * long-polls when it became pending. */
void vd_engine_unit_update(vd_engine *e, struct vd_run *r, size_t u);
/* Look a lease up in memory or, after a restart or expiry, in the
 * catalog (engine_lease.c): *lp the lease when in memory, *rp and *up its
 * run and unit when the run is still active (else *rp NULL), executor
 * the one it was granted to. -ENOENT when unknown. */
/* engine_inline.c: small chunks inside the lease reply. Each chunk in
 * leases (a reply's "leases" array) of at most max_each bytes (capped at
 * VD_INLINE_MAX, engine.h) gets its raw bytes as base64 `data`, VD_INLINE_TOTAL bytes
 * of chunks per reply at most. Without the engine lock. */
void vd_engine_lease_inline(vd_engine *e, json_t *leases, size_t max_each);
int vd_engine_lease_resolve(struct vd_lease **lp, struct vd_run **rp, size_t *up,
			    char executor[VD_EXEC_NAME_MAX + 1], vd_engine *e,
			    const char *id);
/* Unlink and free a lease, then update its unit. */
void vd_engine_lease_drop(vd_engine *e, struct vd_lease *l);
/* Record a run failed and take it out of memory. */
int vd_engine_run_fail(vd_engine *e, struct vd_run *r, const char *error);
void vd_engine_memo_key(struct vd_buf *k, const char *code, const char *out_key,
			const char *unit);
/* s with newlines folded to " | " and control bytes to spaces, at most
 * max bytes of its end. */
void vd_engine_add_one_line(struct vd_buf *out, const char *s, size_t max);
/* A lease ran out or was abandoned (lock held): log it, count it against
 * its unit and executor, drop it. The caller commits b. */
void vd_engine_lease_lost(vd_catalog_batch *b, vd_engine *e, struct vd_lease *l,
			  const char *what);

/* An integer field of a request in [lo, hi], or def when absent; -EINVAL
 * with the reason in why. */
int vd_engine_int_field(long long *out, struct vd_buf *why, const json_t *req,
			const char *name, long long lo, long long hi, long long def);

/* ---- engine_exec.c ---- */
/* A user's or an enrollment token's role (engine_users.c); NONE when it
 * is neither. */
enum vd_role vd_engine_user_auth(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
				 const char *token);
/* n bytes as 2n lowercase hex digits and a NUL. */
void vd_engine_hex(char *out, const unsigned char *p, size_t n);
struct vd_executor *vd_engine_find_exec(vd_engine *e, const char *name);
bool vd_engine_exec_name_valid(const char *s);
/* Load registered executors from the catalog (at start, lock held). */
int vd_engine_exec_load(vd_engine *e);
void vd_engine_exec_free_all(vd_engine *e);
/* Can x be given work now? Ends a quarantine whose time is up. */
bool vd_engine_exec_usable(vd_engine *e, struct vd_executor *x);
/* A failure x is to blame for; enough in a row quarantine it. NULL x and
 * unknown names are ignored. */
void vd_engine_exec_strike(vd_engine *e, const char *name, const char *why);
/* x's result was accepted: its run of failures is over. */
void vd_engine_exec_success(vd_engine *e, const char *name);
/* Put x's counters (units_done, units_failed, infra_failed, flagged) into
 * b as exc/<name> (lock held). Called wherever they change, in the batch
 * that records the change, so they survive a restart without a commit of
 * their own. */
void vd_engine_exec_counts_put(vd_catalog_batch *b, const struct vd_executor *x);
bool vd_idset_has(const struct vd_idset *s, const char *id);
void vd_idset_add(struct vd_idset *s, const char *id);

/* A run from its record rj (r/<task>/<data>/<code>), not yet planned:
 * names, config (text, parsed, output key), creation time. Free with
 * vd_engine_run_discard. */
int vd_engine_run_new(struct vd_run **out, vd_engine *e, const char *task, const char *data,
		      const char *code, const json_t *rj);
/* Plan the units of r (r->man and r->cfg set) as a run would; for queries
 * that compare versions. Free r with vd_engine_run_discard (r->man too). */
int vd_engine_run_plan(struct vd_run *r, vd_engine *e);
void vd_engine_run_discard(struct vd_run *r);

/* ---- engine_order.c ---- */
/* Index the version sealed at `time` (ms) in its task's time order, or take
 * it out: in the batch that writes or deletes its record. */
void vd_engine_order_put(vd_catalog_batch *b, const char *task, const char *data_id,
			 int64_t time);
void vd_engine_order_del(vd_catalog_batch *b, const char *task, const char *data_id,
			 int64_t time);
/* At open: index every version of a catalog written before the index
 * existed (once; meta/version_order says it is done). */
int vd_engine_order_migrate(vd_engine *e);

/* ---- engine_delete.c ---- */
/* Delete (unless dry_run) the versions that their task's `keep` rule lets
 * go, appending {"task","data_id"} for each to expired. */
int vd_engine_retention_apply(json_t *expired, vd_engine *e, bool dry_run);

/* ---- engine_gc.c ---- */
/* gc (dry_run: only say what it would do); the reply is its report. */
int vd_engine_gc(json_t **reply, struct vd_buf *why, vd_engine *e, bool dry_run);

/* ---- engine_render.c ---- */
int vd_engine_version_status(struct vd_buf *out, vd_engine *e, const char *task,
			     const char *data, const json_t *v);
int vd_engine_run_json(json_t **out, vd_engine *e, const char *task, const char *data,
		       const char *code);

/* ---- engine_events.c ---- */
/* Set up and tear down the ring (at open, before runs are loaded, and at
 * close, after the threads that post are gone). */
int vd_engine_events_open(vd_engine *e);
void vd_engine_events_close(vd_engine *e);
/* Every event wait returns -ESHUTDOWN from now on (vd_engine_wake_all). */
void vd_engine_events_stop(vd_engine *e);
/* Number ev, stamp it and keep it, waking the waiters. Never fails: the
 * oldest event makes room. May be called with e->lock held (the events'
 * lock is taken after it); calls nothing else of the engine. */
void vd_engine_event_post(vd_engine *e, const struct vd_event *ev);
/* One-call hooks, each an event_post. Strings are copied (cut to fit);
 * NULL is "". */
void vd_engine_event_unit(vd_engine *e, const struct vd_run *r);
void vd_engine_event_run(vd_engine *e, const struct vd_run *r, const char *state);
void vd_engine_event_version(vd_engine *e, const char *task, const char *data_id,
			     const char *name, const char *what);
void vd_engine_event_task(vd_engine *e, const char *task, const char *what);
void vd_engine_event_executor(vd_engine *e, const char *name, const char *what);

/* ---- engine_reduce.c ---- */
/* Build the aggregated result of a finished run from its units' outputs
 * (blobs in the store, in unit order). The result's bytes are stored with
 * a writer whose index entries go into b (concat: with the outputs
 * gathered into its pack); *out lists them. */
int vd_engine_reduce(struct vd_file **out, char data_id[VD_ID_SIZE],
		     vd_catalog_batch *b, vd_engine *e, enum vd_reduce how,
		     const struct vd_extent *outs, size_t n);
/* Newlines in p[0..n). */
uint64_t vd_engine_count_lines(const char *p, size_t n);

/* ---- engine_reduce_sum.c ---- */
/* reduce = sum of the outputs into f's extents (stored with w, hashed
 * into h), in e->reduce_mem of memory, spilling under STATE/spill/. */
int vd_engine_reduce_sum(struct vd_file *f, vd_hasher *h, vd_store_writer *w,
			 vd_engine *e, const struct vd_extent *outs, size_t n);
/* At open: remove what a crash left in STATE/spill/. */
int vd_engine_reduce_sweep(vd_engine *e);

#endif
