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

enum vd_reduce { VD_REDUCE_CONCAT, VD_REDUCE_SUM };
enum vd_format { VD_FORMAT_LINES, VD_FORMAT_CSV, VD_FORMAT_WHOLE };
enum vd_rerun { VD_RERUN_LATEST, VD_RERUN_NONE };

/* A task's parsed config. Defaults are what an empty config means. */
struct vd_config {
	int level;             /* executor level needed, 1..5 */
	enum vd_reduce reduce;
	enum vd_format format;
	int timeout_s;         /* per unit */
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
};

void vd_config_default(struct vd_config *c);
/* Parse config text; -EINVAL with "line N: reason" appended to why. */
int vd_config_parse(struct vd_config *out, struct vd_buf *why, const char *text,
		    size_t n);
/* The config that a unit's output depends on, as canonical text: results
 * are memoized per (code, this, unit). */
void vd_config_output_key(struct vd_buf *out, const struct vd_config *c);

enum vd_unit_state { VD_UNIT_PENDING, VD_UNIT_LEASED, VD_UNIT_DONE };

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
	size_t cursor;             /* lock: no pending unit before this index */
	bool started;              /* lock: some unit was leased */
	bool finishing;            /* lock: all done, being reduced */
	int64_t created_ms, started_ms;
};

struct vd_lease {
	struct vd_lease *next;     /* lock */
	char id[VD_ID_SIZE];
	struct vd_run *run;
	size_t unit;
	char executor[VD_EXEC_NAME_MAX + 1];
	int64_t expires_ms;        /* lock; monotonic clock */
};

struct vd_executor {
	struct vd_executor *next;  /* lock */
	char name[VD_EXEC_NAME_MAX + 1];
	int level, slots;
	char *host;                /* JSON text of its host facts */
	int64_t registered_ms;     /* wall clock */
	int64_t last_seen_ms;      /* lock; monotonic */
	uint64_t units_done, units_failed;   /* lock */
	int active;                /* lock: live leases */
};

struct vd_engine {
	char *state;
	struct vd_key key;
	char token[128];
	vd_catalog *cat;
	vd_store *store;
	struct vd_chunker_params chunking;
	int lease_ms, heartbeat_ms;
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

	/* Counters for /metrics; lock. */
	uint64_t m_leased, m_accepted, m_failed, m_expired, m_late;
	uint64_t m_versions, m_bytes_in, m_bytes_stored;
};

/* ---- engine.c ---- */
int vd_engine_task_json(json_t **out, vd_engine *e, const char *task);
int vd_engine_task_config(struct vd_config *out, char **text, vd_engine *e,
			  const char *task);
void vd_engine_key(struct vd_buf *out, const char *prefix, const char *a,
		   const char *b, const char *c);
/* The rest of every key under prefix, in key order. */
int vd_engine_list_suffix(struct vd_strv *out, vd_engine *e, const char *prefix);

/* ---- engine_ingest.c ---- */
int vd_engine_manifest_parse(struct vd_manifest **out, const char *json, size_t n);
int vd_engine_version_json(json_t **out, vd_engine *e, const char *task,
			   const char *data_id);
/* A file's extents as [[id, len], ...] and back. */
json_t *vd_engine_file_json(const struct vd_file *f);
int vd_engine_extents_parse(struct vd_file *f, const json_t *a);

/* ---- engine_sched.c ---- */
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

/* ---- engine_reduce.c ---- */
/* Build the aggregated result of a finished run from its units' outputs
 * (blobs in the store, in unit order). The result's bytes are stored with
 * a writer whose index entries go into b; *out lists them. */
int vd_engine_reduce(struct vd_file **out, char data_id[VD_ID_SIZE],
		     vd_catalog_batch *b, vd_engine *e, enum vd_reduce how,
		     const struct vd_extent *outs, size_t n);

#endif
