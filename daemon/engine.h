/*
 * engine.h - the data factory: tasks, code versions, configs, dataset
 * versions, runs, the work queue and results, over the catalog and the store.
 *
 * The engine is the one owner of vdfs's state. The FUSE view (fs/) and the
 * HTTP API (daemon/http.c) are thin translations of it: they parse, call one
 * function here, and turn the -errno it returns into an errno for the kernel
 * or a status code for the executor. Everything a user or an executor can
 * change goes through this header.
 *
 * Threads: every function may be called from any thread at any time. The
 * engine serializes state changes internally; long work (chunking and
 * hashing a submission, reading chunks) runs outside its lock.
 *
 * Ownership: out-parameters are filled by the engine and owned by the caller
 * afterwards (vd_buf / vd_strv / json_t / structs with their own *_free).
 * Input pointers are only read during the call.
 *
 * Errors: 0 (or a documented count) on success, -errno on failure. Where a
 * `why` buffer is taken, a one-line reason for the user is appended to it
 * on failure (and the failure is logged).
 */
#ifndef VD_ENGINE_H
#define VD_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <jansson.h>

#include "buf.h"
#include "id.h"
#include "util.h"

typedef struct vd_engine vd_engine;

struct vd_engine_opts {
	const char *state_dir;   /* created if missing */
	int lease_ms;            /* how long a lease lives without heartbeat; 0 = 30000 */
	int heartbeat_ms;        /* what executors are told to use; 0 = lease_ms / 3 */
	int quarantine_ms;       /* how long a failing executor gets no work; 0 = 300000 */
	size_t chunk_avg;        /* a new store's average chunk size, a power of
				  * two (0 = 1 MiB); an existing store keeps its own */
	int64_t upload_keep_ms;  /* how long gc keeps uploaded chunks no version
				  * uses yet; 0 = a day */
	int compress_level;      /* zstd level of new chunks, 1 to 19; 0 = the
				  * store's default (3); -1 = none */
};

int vd_engine_open(vd_engine **out, const struct vd_engine_opts *o);
/* Stops background threads, wakes long-polls, closes the catalog. */
void vd_engine_close(vd_engine *e);
/* The enrollment token (STATE/token): executors present it once, to
 * register, and get a token of their own; operators use it for status,
 * metrics and revocation. */
const char *vd_engine_token(const vd_engine *e);

/* Who holds a bearer token (engine_users.c says what each may do). */
enum vd_role {
	VD_ROLE_NONE,
	VD_ROLE_ADMIN,       /* STATE/token: the owner, an operator */
	VD_ROLE_EXECUTOR,    /* a registered executor's own token */
	VD_ROLE_READER,      /* users (vdfs user add NAME --role ...) */
	VD_ROLE_SUBMITTER,
	VD_ROLE_OPERATOR,
	VD_ROLE_ENROLL,      /* vdfs token executor: may register executors */
};
#define VD_EXECUTOR_NAME_SIZE 65
/* ADMIN for STATE/token; EXECUTOR (name filled) for a registered,
 * unrevoked executor's own token; a user's role (name: the user) for a
 * user's token; ENROLL for an executor enrollment token; NONE otherwise.
 * Compares in constant time per candidate, or looks up by hash. */
enum vd_role vd_engine_auth(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
			    const char *token);
/* SHA-256 of a bearer token (what the catalog keeps instead of it). */
int vd_engine_token_sha256(unsigned char out[32], const char *token);
/* The role of the live user whose token's SHA-256 is `sha` (name filled),
 * or NONE: unknown or revoked. A sign-in session keeps that hash, not the
 * token, and asks again on every request, so revoking the user ends it. */
enum vd_role vd_engine_user_auth_sha(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
				     const unsigned char sha[32]);
/* "reader", "submitter", "operator" (also for ADMIN), "executor",
 * "executor enrollment", "none". */
const char *vd_role_name(enum vd_role r);
/* Makes every long-poll (and event wait) return at once; used at
 * shutdown before the HTTP server is stopped. */
void vd_engine_wake_all(vd_engine *e);

/*
 * Names. Task names and data names (and each component of a path inside a
 * tree) are 1..255 bytes, any bytes but NUL, '/' and control characters
 * (< 0x20, 0x7f), and not "." or "..". Anything else is -EINVAL.
 */
bool vd_engine_name_valid(const char *name);

/* ---- tasks, code and config ------------------------------------------ */

int vd_engine_task_create(vd_engine *e, const char *task);   /* -EEXIST, -EINVAL */
/* The same, owned by user owner (NULL or "": no owner, as a task made
 * through the mount): a submitter may change only the tasks it owns. */
int vd_engine_task_create_owned(vd_engine *e, const char *task, const char *owner);
/* The task's owner, "" when it has none. -ENOENT. */
int vd_engine_task_owner(char owner[VD_EXECUTOR_NAME_SIZE], vd_engine *e, const char *task);
/*
 * The task's local owner: who a mount with --allow-other shows the task
 * (its directory, data/, function, config) as owned by, and who alone
 * (with root) may change it through the mount (docs/remote-access.md).
 * _create_uid makes a task owned by uid:gid (mkdir through the mount);
 * a task made otherwise, or recorded before owners were, reads as the
 * daemon's own uid and gid. _set_uid records a new one (chown by root).
 * -ENOENT for an unknown task; -EINVAL for (uid_t)-1 or (gid_t)-1.
 */
int vd_engine_task_create_uid(vd_engine *e, const char *task, uid_t uid, gid_t gid);
int vd_engine_task_uid(uid_t *uid, gid_t *gid, vd_engine *e, const char *task);
int vd_engine_task_set_uid(vd_engine *e, const char *task, uid_t uid, gid_t gid);
bool vd_engine_task_exists(vd_engine *e, const char *task);
int vd_engine_task_list(struct vd_strv *out, vd_engine *e);  /* sorted */

/* The current code bytes (empty when no function was written yet). */
int vd_engine_function_read(struct vd_buf *out, vd_engine *e, const char *task);
/* Store p[0..n) as the task's code. A content equal to the current code is
 * no new version (returns 0); a new one returns 1 and may start runs. */
int vd_engine_function_write(char code_id[VD_ID_SIZE], vd_engine *e,
			     const char *task, const void *p, size_t n);
/* The config text as written (empty when never written). */
int vd_engine_config_read(struct vd_buf *out, vd_engine *e, const char *task);
/* Parse and store. A bad line is -EINVAL with "line N: reason" in why. */
/*
 * Run a version again with the task's current code and config (data NULL:
 * the task's latest): `vdfs rerun`. Memo still applies unless force. A run
 * under way is replaced (its late results are refused). *data_out gets the
 * version's ID. -ENOENT (no task, function or version, reason in why),
 * -EBUSY while the run is combining its results.
 */
int vd_engine_rerun(char data_out[VD_ID_SIZE], struct vd_buf *why, vd_engine *e,
		    const char *task, const char *data, bool force);
/* End the queued or running run of the current code on a version (data
 * NULL: latest) as failed, "cancelled by the operator": `vdfs cancel`.
 * -EALREADY when there is none, -EBUSY while it combines its results. */
int vd_engine_cancel(char data_out[VD_ID_SIZE], struct vd_buf *why, vd_engine *e,
		     const char *task, const char *data);
/* After a config change: re-run latest when its run was made with another
 * config (what `rerun = latest` does for a new code). */
int vd_engine_rerun_for_config(vd_engine *e, const char *task);

/* The view's word on a tree in data/ that is waiting to settle: files and
 * bytes so far, and when it seals if it stays quiet (vd_mono_ms; 0: not
 * before its open files are closed). clear when it is sealed or gone.
 * `vdfs status` shows it. */
void vd_engine_settling_set(vd_engine *e, const char *task, const char *name,
			    uint64_t files, uint64_t bytes, int64_t seals_at);
void vd_engine_settling_clear(vd_engine *e, const char *task, const char *name);

/* When things of a task last changed (vd_now_ms; the task's creation when
 * never): its function, its config, where latest points; and when code
 * version code_id (NULL: none) was first written. For ls -l. */
struct vd_task_times {
	int64_t created, function, config, latest, code;
};
int vd_engine_task_times(struct vd_task_times *out, vd_engine *e, const char *task,
			 const char *code_id);

/* Add a line to the log of the task's latest version (what `cat
 * tasks/T/latest/log` shows), for things about the task as a whole, such
 * as a refused config line. Nothing when the task has no version yet. */
void vd_engine_task_note(vd_engine *e, const char *task, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Check config text without storing it: what vd_engine_config_write would
 * refuse (-EINVAL, "line N: reason" in why). The view checks each line as
 * it is written, so that the write(2) of a bad line fails where the user
 * sees it (a shell ignores close errors). */
int vd_engine_config_check(struct vd_buf *why, vd_engine *e, const void *p, size_t n);
int vd_engine_config_write(struct vd_buf *why, vd_engine *e, const char *task,
			   const void *p, size_t n);
/* The task's settle time for trees, in ms (config `settle`, default 2 s). */
int vd_engine_settle_ms(vd_engine *e, const char *task);

/* 0 if n more bytes may be written to the state disk (staging files are
 * on it too), -ENOSPC when that would eat into the store's reserve; a
 * refusal marks the disk full for status (vd_engine_disk_note). */
int vd_engine_space_check(vd_engine *e, uint64_t n);

/* ---- dataset versions -------------------------------------------------- */

/* How long after its seal a version renamed from its own name is recorded
 * under the new name (vd_engine_data_rename). */
#define VD_RENAME_RECORD_MS 10000

enum vd_kind { VD_KIND_FILE = 1, VD_KIND_TREE = 2 };

struct vd_version_info {
	char data_id[VD_ID_SIZE];
	char name[256];        /* the data/ name it was submitted under */
	enum vd_kind kind;
	uint64_t size;         /* logical bytes, summed over files for a tree */
	uint64_t nfiles;
	uint64_t stored;       /* bytes newly stored when it was sealed */
	int64_t time_ms;       /* when it was sealed */
};

/*
 * Seal the content of fd (read with pread from offset 0 to EOF) as a version
 * of task under data name `name`. Returns 1 when a new version was made, 0
 * when the content was known already (no new version, no new work; the name
 * now points to it), -E2BIG for a record over the hard cap (offset in why),
 * -ENOENT for an unknown task. Durable on return. by (NULL: nobody named)
 * is who submitted it: a new version's meta.json says so (submitted_by).
 */
#define VD_BY_SIZE 256
int vd_engine_submit_file(struct vd_version_info *out, struct vd_buf *why,
			  vd_engine *e, const char *task, const char *name, const char *by,
			  int fd);
/* The same for a real directory tree, recursively (paths joined with '/'),
 * keeping what `cp -a` copies: regular files with their modes, directories
 * (an empty one, or one whose mode is not 0755, as an entry of its own),
 * symlinks as their target strings (never followed; left out with a log
 * line under config `symlinks = skip`) and hard links inside the tree.
 * A FIFO, socket or device node makes it -EPERM with the path in why,
 * unless config says `special = skip` (then each is left out, logged).
 * docs/versioning.md, "Trees". */
int vd_engine_submit_tree(struct vd_version_info *out, struct vd_buf *why,
			  vd_engine *e, const char *task, const char *name, const char *by,
			  const char *dir);

/*
 * Streaming submission: the content of one file arrives in order (as `cp`
 * writes it) and is chunked, hashed and stored as it comes, on a thread of
 * the stream's own, so that sealing at close has almost nothing left to do
 * but make the pack durable and commit. A stream belongs to one caller
 * thread at a time.
 */
typedef struct vd_ingest vd_ingest;
int vd_engine_ingest_begin(vd_ingest **out, vd_engine *e, const char *task);
/* Who submits what the stream carries (see vd_engine_submit_file). */
void vd_engine_ingest_by(vd_ingest *in, const char *by);
/* Append p[0..n) (copied). Blocks while too much is queued. An error of
 * the worker is returned by the next call and stays. */
int vd_engine_ingest_write(vd_ingest *in, const void *p, size_t n);
/* Bytes accepted so far. */
uint64_t vd_engine_ingest_size(const vd_ingest *in);
/* Write everything accepted so far to fd from offset 0: the way back to a
 * plain staging file when writes stop arriving in order. */
int vd_engine_ingest_copy_to(vd_ingest *in, int fd);
/* Finish and seal under `name`, with the results of vd_engine_submit_file.
 * Frees the stream whatever the outcome. */
int vd_engine_ingest_seal(struct vd_version_info *out, struct vd_buf *why,
			  vd_ingest *in, const char *name);
/* Drop the stream and everything it stored (nothing was committed). */
void vd_engine_ingest_abort(vd_ingest *in);

/* Names currently in data/, sorted. */
int vd_engine_data_list(struct vd_strv *out, vd_engine *e, const char *task);
/* The latest version submitted under name. -ENOENT. */
int vd_engine_data_get(struct vd_version_info *out, vd_engine *e,
		       const char *task, const char *name);
/* Forget the name (its versions stay). -ENOENT. */
int vd_engine_data_unlink(vd_engine *e, const char *task, const char *name);
/* Give the content of data name from the name to instead (to's old content
 * is no longer named; versions stay). With submit (to is not a temporary)
 * it counts as submitting that content again: it becomes latest, gets a
 * run of the current code if it has none, and a version sealed less than
 * VD_RENAME_RECORD_MS ago under from is recorded under to. -ENOENT. */
int vd_engine_data_rename(vd_engine *e, const char *task, const char *from,
			  const char *to, bool submit);
/* Name the content of from under to as well (ln): a submission of it
 * under to. -ENOENT. */
int vd_engine_data_link(vd_engine *e, const char *task, const char *from, const char *to);

/* A number that grows whenever a version of any task is committed or
 * deleted, or a task deleted (never reset while the engine is open). While it stays the same, every versions/ listing does too: the
 * view lets the kernel keep its cached listings of versions/ until then. */
uint64_t vd_engine_versions_seq(vd_engine *e);
/* A number that grows whenever a version or a task is deleted (through the
 * mount, vdfs rm or retention): the view then drops what the kernel still
 * caches of them. */
uint64_t vd_engine_deletes_seq(vd_engine *e);
/* Data IDs of the task's versions, sorted. */
int vd_engine_version_list(struct vd_strv *out, vd_engine *e, const char *task);
/* Data IDs of the task's versions newest first (by seal time; the same
 * millisecond by ascending ID), from the offset'th, at most limit of them
 * (0: all). With total, also how many the task has (that goes through the
 * whole index: keys only, no record is read); out NULL: only that count.
 * engine_order.c. */
int vd_engine_version_page(struct vd_strv *out, size_t *total, vd_engine *e,
			   const char *task, size_t offset, size_t limit);
int vd_engine_version_get(struct vd_version_info *out, vd_engine *e,
			  const char *task, const char *data_id);   /* -ENOENT */
/* The most recently sealed version of the task. -ENOENT when none. */
int vd_engine_version_latest(char data_id[VD_ID_SIZE], vd_engine *e,
			     const char *task);

/*
 * Content. A file is a list of extents, each a whole stored chunk, in order:
 * ext[i].off is where the chunk starts in the file, ext[i].len its length.
 * A file version's manifest has one file with path "". A tree's entries are
 * sorted by path (strcmp); most directories are implied by the paths.
 */
#define VD_LINES_UNKNOWN UINT64_MAX
struct vd_extent {
	char id[VD_ID_SIZE];
	uint64_t off;
	uint64_t len;
	uint64_t lines;        /* '\n' bytes in the chunk, or VD_LINES_UNKNOWN */
};
#define VD_FILE_MODE_DEFAULT 0644   /* a tree's file whose mode is not recorded */
#define VD_DIR_MODE_DEFAULT 0755    /* a tree's directory, likewise */
struct vd_file {
	char *path;
	char id[VD_ID_SIZE];   /* the content's data ID; "" when not known */
	uint64_t size;
	size_t n;
	struct vd_extent *ext;
	/* What a tree keeps beside the bytes. mode is an st_mode: type
	 * (S_IFREG, S_IFDIR or S_IFLNK) and permission bits (07777). It is 0
	 * where nothing is recorded (a file version, a result), which means a
	 * regular file. Manifests parsed from the catalog always have it set,
	 * with the defaults above for entries sealed before modes were kept.
	 * A directory is an entry only when it is empty or its mode is not
	 * VD_DIR_MODE_DEFAULT; a symlink and a directory have no extents. */
	mode_t mode;
	char *target;          /* S_IFLNK: the target string, exactly as
				* readlink(2) gave it; never resolved */
	/* A second (third, ...) name of a regular file in the tree: the path
	 * of its first name in path order. Its size and extents are a copy
	 * of that entry's, so a reader may treat it as a plain file. */
	char *hardlink;
	uint32_t nlink;        /* names the content has in the tree; 0 means 1 */
};
struct vd_manifest {
	enum vd_kind kind;
	size_t nfiles;
	struct vd_file *files;
	mode_t mode;           /* a tree's top directory (permission bits);
				* 0 = VD_DIR_MODE_DEFAULT */
};
int vd_engine_manifest_get(struct vd_manifest **out, vd_engine *e,
			   const char *data_id);                 /* -ENOENT */
void vd_manifest_free(struct vd_manifest *m);
/* f's type: S_IFREG (also when nothing is recorded), S_IFDIR or S_IFLNK. */
mode_t vd_file_type(const struct vd_file *f);
/* f's permission bits, with the defaults for a tree entry that has none. */
mode_t vd_file_perm(const struct vd_file *f);
/* Find path in a manifest whose entries are sorted by path (every
 * manifest vd_engine_manifest_get returns is): *type is S_IFREG, S_IFLNK
 * or S_IFDIR and *idx the entry, SIZE_MAX for a directory that only the
 * paths below it imply ("" is the top). -ENOENT. */
int vd_manifest_lookup(mode_t *type, size_t *idx, const struct vd_manifest *m,
		       const char *path);
/* Append a stored chunk's bytes to out, verified against its ID. */
int vd_engine_chunk_read(struct vd_buf *out, vd_engine *e, const char *chunk_id);
/* Start reading a chunk from disk in the background (vd_store_prefetch). */
void vd_engine_chunk_prefetch(vd_engine *e, const char *chunk_id);

enum vd_gen { VD_GEN_STATUS, VD_GEN_META, VD_GEN_LOG };

/* ---- code versions and runs ------------------------------------------ */

/* The task's code IDs, oldest first. */
int vd_engine_code_list(struct vd_strv *out, vd_engine *e, const char *task);
/* One code version's bytes; -ENOENT unless it is one of the task's. */
int vd_engine_code_read(struct vd_buf *out, vd_engine *e, const char *task,
			const char *code_id);
/* Code IDs that have a run on this version, oldest first. */
int vd_engine_run_list(struct vd_strv *out, vd_engine *e, const char *task,
		       const char *data_id);
/* status / meta.json / log of one run (META: the run's own record). */
int vd_engine_run_render(struct vd_buf *out, vd_engine *e, const char *task,
			 const char *data_id, const char *code_id, enum vd_gen which);
/* That run's result; -ENOENT until it is done. */
int vd_engine_run_result(struct vd_file **out, vd_engine *e, const char *task,
			 const char *data_id, const char *code_id);

/* ---- what versions/<id>/ shows --------------------------------------- */

/* status: one line, first word queued | running | done | failed.
 * meta: meta.json. log: the run log. -ENOENT for an unknown version. */
int vd_engine_render(struct vd_buf *out, vd_engine *e, const char *task,
		     const char *data_id, enum vd_gen which);
/* The aggregated result of the version's newest-code run, as a file of
 * stored chunks. -ENOENT until that run is done. Free with vd_file_free. */
int vd_engine_result_get(struct vd_file **out, vd_engine *e, const char *task,
			 const char *data_id);
void vd_file_free(struct vd_file *f);
/* The mount's README text. */
int vd_engine_render_readme(struct vd_buf *out, vd_engine *e);
/* Registered executors' names, sorted, and one's state as text. */
int vd_engine_executor_list(struct vd_strv *out, vd_engine *e);
int vd_engine_executor_render(struct vd_buf *out, vd_engine *e, const char *name);

/* ---- the executor protocol (docs/protocol.md) ------------------------
 *
 * Each takes the parsed request and fills the reply. Errors map to HTTP:
 * -EINVAL 400, -EACCES 401, -EPERM 403, -ENOENT 404, -ESTALE 409 (late or
 * duplicate), -EALREADY and -EBUSY 409 (nothing to cancel, a run that is
 * combining its results), -EFBIG 413, -ENOSPC and -EDQUOT 507 with
 * Retry-After (the state disk is full: send it again), -EAGAIN 204 (no
 * work within the wait), -ESHUTDOWN 503; anything else 500. `why` gets
 * the message for the JSON error body.
 */
int vd_engine_api_register(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const json_t *req);
/* Blocks up to the request's wait_ms (capped at 30 s). With
 * "inline_max": N, chunks of at most N bytes (and VD_INLINE_MAX) come in
 * the reply as base64 `data`, at most VD_INLINE_TOTAL bytes of them. */
#define VD_INLINE_MAX ((size_t)64 << 10)
#define VD_INLINE_TOTAL ((size_t)1 << 20)
int vd_engine_api_lease(json_t **reply, struct vd_buf *why, vd_engine *e,
			const json_t *req);
int vd_engine_api_heartbeat(json_t **reply, struct vd_buf *why, vd_engine *e,
			    const char *lease_id);
/* meta is the result's JSON header line; out the raw output bytes. */
int vd_engine_api_result(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *lease_id, const json_t *meta,
			 const void *out, size_t outlen);
/* The same for an output that came as a zstd frame, frame[0..n), of
 * outlen raw bytes whose chunk ID the executor says is out_id (meta's
 * "encoding": "zstd", docs/protocol.md). A wanted result's frame is
 * decoded, at most outlen bytes, into the hash before anything is kept:
 * -EINVAL (400) when it is not that output; then it is stored as it came
 * (vd_store_writer_put_zstd). */
int vd_engine_api_result_zstd(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *lease_id, const json_t *meta,
			      const void *frame, size_t n, size_t outlen, const char *out_id);
/*
 * Several results in one request (POST /v1/results, engine_result.c): each
 * of v[0..n) is taken as the single calls above would take it, and its
 * outcome left in rc (0: taken, answered 200; -ENOENT, -EPERM, -ESTALE,
 * -EINVAL, -EFBIG, -ENOSPC, ... as http_status_of maps them) with why.
 * The outputs wanted go through one store writer and the accepted results
 * into one catalog commit, synced once; every rc 0 is on disk when this
 * returns. executor, when not NULL, must be the executor each lease was
 * granted to (else that result is -EPERM).
 */
struct vd_result_in {
	const char *lease;       /* lease ID (validity checked here) */
	const json_t *meta;      /* the result's metadata line */
	const void *out;         /* raw output, or a zstd frame (zstd) */
	size_t n;                /* bytes at out */
	size_t outlen;           /* the raw output's length */
	bool zstd;
	const char *out_id;      /* zstd: the raw output's ID */
	int rc;                  /* out */
	char why[512];           /* out: why rc, for the answer */
};
void vd_engine_api_results(vd_engine *e, const char *executor, struct vd_result_in *v,
			   size_t n);
int vd_engine_api_code(struct vd_buf *out, struct vd_buf *why, vd_engine *e,
		       const char *code_id);
/* The executor a lease was granted to (in memory or, after a restart, in
 * the catalog). -ENOENT for an unknown lease. A lease never changes hands,
 * so the HTTP layer can check ownership before calling heartbeat/result. */
int vd_engine_lease_owner(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
			  const char *lease_id);
/* The executor fetched this chunk (it is in its cache now): remembered so
 * that units reading it go to that executor first. */
void vd_engine_note_chunk(vd_engine *e, const char *executor, const char *chunk_id);
/* DELETE /v1/executors/<name>: forget its token (its requests are 401 from
 * now on) and put its units back in the queue. -ENOENT for an unknown name. */
int vd_engine_api_revoke(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *name);
/* DELETE /v1/executors/<name> with that executor's own token: it is
 * leaving (its drain is over). It shows as gone at once and whatever it
 * still held goes back to the queue; its token and record stay, so it
 * may come back. -ENOENT for an unknown name. */
int vd_engine_api_leave(json_t **reply, struct vd_buf *why, vd_engine *e,
			const char *name);
int vd_engine_api_chunk(struct vd_buf *out, struct vd_buf *why, vd_engine *e,
			const char *chunk_id);
/* The chunk as the store holds it, for a client that takes zstd: a frame
 * (*zstd) of *raw_len bytes, or the raw bytes; appended to out. Not
 * verified here: the executor verifies it after decompressing. */
int vd_engine_api_chunk_stored(struct vd_buf *out, bool *zstd, uint64_t *raw_len,
			       struct vd_buf *why, vd_engine *e, const char *chunk_id);
int vd_engine_api_status(json_t **reply, vd_engine *e);
int vd_engine_api_metrics(struct vd_buf *out, vd_engine *e);

/* ---- the operator API (docs/protocol.md, "Operators") ---------------- */
/* GET /v1/versions/<id>: a version (in every task that has it) or a result. */
int vd_engine_api_version(json_t **reply, struct vd_buf *why, vd_engine *e,
			  const char *id);
/* GET /v1/tasks: every task with its owner, how many versions it has, its
 * code ID and its latest version (ID, name, time, status line). */
int vd_engine_api_task_list(json_t **reply, vd_engine *e);
/* Which of a task's versions GET /v1/tasks/<task>/versions lists. */
struct vd_log_filter {
	size_t offset;          /* skip this many (after filtering) */
	size_t limit;           /* at most this many; 0: all */
	const char *state;      /* NULL, or the status's first word must be this */
	const char *text;       /* NULL, or the name contains it or the ID starts with it */
};
/* GET /v1/tasks/<task>/log and /versions: the task's versions, newest
 * first, filtered and paged by f (NULL: all), with "total" (how many match)
 * and "offset". Status lines are worked out only for the versions returned,
 * unless f->state needs them for all. */
int vd_engine_api_task_log(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const char *task, const struct vd_log_filter *f);
/* POST /v1/tasks/<task>/rerun {"data_id"?, "force"?}: vd_engine_rerun. */
int vd_engine_api_rerun(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
			const json_t *body);
/* POST /v1/tasks/<task>/cancel {"data_id"?}: vd_engine_cancel. */
int vd_engine_api_cancel(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
			 const json_t *body);
/* GET /v1/resolve/<prefix>: the one version, result or code ID that starts
 * with prefix (6 to 32 hex digits). -ENOENT none, -EALREADY (409) several,
 * with them in why. */
int vd_engine_api_resolve(json_t **reply, struct vd_buf *why, vd_engine *e, const char *prefix);
/* GET /v1/lineage/<id>: every node and edge connected to id. */
int vd_engine_api_lineage(json_t **reply, struct vd_buf *why, vd_engine *e,
			  const char *id);
/* GET /v1/du: logical and stored bytes per task and for the store. */
int vd_engine_api_du(json_t **reply, vd_engine *e);
/* GET /v1/diff/<a>/<b>: chunks, bytes and units shared, added, removed. */
int vd_engine_api_diff(json_t **reply, struct vd_buf *why, vd_engine *e,
		       const char *a, const char *b);
/*
 * GET /v1/diff/<a>/<b>/lines[?path=P][&result=1] (engine_difflines.c): the
 * unified diff of b against a (`diff -u`, 3 lines of context), exactly as
 * `vdfs diff --lines a b` prints it (result: `--result`, the diff of the
 * two versions' newest results): two single files whatever their names,
 * trees file by file by path (a file on one side only against /dev/null),
 * or with path (not NULL or "") only that file, which must be a regular
 * file of both. a or b may be a result's ID (not with result). Appended to
 * out: at most cap bytes, cut at a line end, with *truncated set when cut;
 * the diff stops there (lib/diff.h, opts.limit). Nothing when the contents
 * are equal. -EINVAL a bad ID, or a result with result; -ENOENT an unknown
 * ID ("no version <id>"), a version with no result yet with result,
 * path not a file of both; -EIO a chunk that cannot be read (verified) or
 * disagrees with its manifest. The reason is in why; out is left as it was
 * on failure.
 */
int vd_engine_api_diff_lines(struct vd_buf *out, bool *truncated, struct vd_buf *why,
			     vd_engine *e, const char *a, const char *b, const char *path,
			     bool result, size_t cap);

/* ---- lifecycle: delete, pin, retention, gc, fsck (docs/lifecycle.md) -- */

/*
 * Delete one version of task with its runs, run logs and the data names
 * that point to it, in one catalog batch. A tombstone stays (vt/), so that
 * lineage shows "deleted <time>" where the version was. latest moves to the
 * newest remaining version. The bytes stay until vd_engine_gc. -ENOENT no
 * such version; -EBUSY a run of it is queued or running (cancel it first);
 * -EPERM it is pinned (unpin it first). The reason is in why.
 */
int vd_engine_version_delete(struct vd_buf *why, vd_engine *e, const char *task,
			     const char *data_id);
/* Delete a task: every version as above, its data names, code and config,
 * in one batch; nothing at all when one of its versions is busy or
 * pinned. -ENOENT, -EBUSY, -EPERM. */
int vd_engine_task_delete(struct vd_buf *why, vd_engine *e, const char *task);
/* Pin (pin true) or unpin a version: retention never deletes a pinned
 * version and rm refuses it. Idempotent. -ENOENT. */
int vd_engine_version_pin(vd_engine *e, const char *task, const char *data_id, bool pin);
/* 1 pinned, 0 not, -errno. */
int vd_engine_version_pinned(vd_engine *e, const char *task, const char *data_id);
/* Tasks that have a version with this ID, sorted (vdfs rm ID). */
int vd_engine_version_tasks(struct vd_strv *out, vd_engine *e, const char *data_id);

/* DELETE /v1/tasks/<task>[/versions/<id>] (data_id NULL: the task). Reply
 * {"deleted":[{"task","data_id"}...]}. */
int vd_engine_api_delete(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *task, const char *data_id);
/* POST (pin) / DELETE (unpin) /v1/tasks/<task>/versions/<id>/pin. Reply
 * {"task","data_id","pinned"}. */
int vd_engine_api_pin(json_t **reply, struct vd_buf *why, vd_engine *e, const char *task,
		      const char *data_id, bool pin);
/* POST /v1/gc {"dry_run"?}: apply retention, mark, sweep, compact
 * (docs/lifecycle.md). One at a time: -EBUSY while another runs. The reply
 * is the report (docs/protocol.md). */
int vd_engine_api_gc(json_t **reply, struct vd_buf *why, vd_engine *e, const json_t *body);
/* POST /v1/fsck {"full"?, "repair"?}: check every reference (and with
 * full every chunk's bytes). The reply lists the problems found, each
 * with the versions it affects, and what repair did. */
int vd_engine_api_fsck(json_t **reply, struct vd_buf *why, vd_engine *e, const json_t *body);

/* ---- live events (engine_events.c) ------------------------------------
 *
 * What changed, as it happens, for GET /v1/events (the dashboard's live
 * view): the engine posts an event after each change it reports is
 * committed. They are kept in memory only, the last VD_EVENTS_KEEP of
 * them, numbered 1, 2, ... from the engine's open (a restart begins at 1
 * again). A reader that fell behind by more than the ring holds is told
 * so (`lost`) and must fetch the state afresh.
 */
#define VD_EVENTS_KEEP 4096
enum vd_event_kind {
	VD_EVENT_UNIT = 1,     /* a unit's result was accepted */
	VD_EVENT_RUN,          /* what: queued | running | done | failed */
	VD_EVENT_VERSION,      /* what: sealed | deleted */
	VD_EVENT_TASK,         /* what: created | deleted | function | config */
	VD_EVENT_EXECUTOR,     /* what: registered | revoked | left */
};
struct vd_event {
	uint64_t seq;              /* set by the engine when posted */
	int64_t time_ms;           /* likewise: vd_now_ms */
	enum vd_event_kind kind;
	char what[12];
	char task[256];            /* unit, run, version, task */
	char data_id[VD_ID_SIZE];  /* unit, run, version */
	char code_id[VD_ID_SIZE];  /* unit, run */
	char name[256];            /* version: its data name; executor: its name */
	uint64_t done, units;      /* unit: the run's units done so far, and all */
};
/* "unit", "run", "version", "task", "executor". */
const char *vd_event_kind_name(enum vd_event_kind k);
/* The event as the JSON object GET /v1/events sends (docs/protocol.md,
 * "Events"), appended to out on one line. Names that are not UTF-8 have
 * their stray bytes shown as U+FFFD, so the text is always valid JSON. */
int vd_event_json(struct vd_buf *out, const struct vd_event *ev);
/* The number of the newest event (0: none yet). */
uint64_t vd_engine_events_seq(vd_engine *e);
/*
 * Copy the events numbered after `after` into out[0..cap), oldest first,
 * their count in *n, waiting up to timeout_ms for one to come when there
 * is none yet (*n 0 when none came). *lost is set, with nothing copied and
 * at once, when some of them are no longer held (they fell out of the
 * ring) or `after` is ahead of the newest (a number from before a
 * restart): the reader then fetches the state afresh and goes on after
 * vd_engine_events_seq. -ESHUTDOWN once vd_engine_wake_all was called.
 */
int vd_engine_events_wait(struct vd_event *out, size_t cap, size_t *n, bool *lost,
			  vd_engine *e, uint64_t after, int timeout_ms);

/* ---- users and tokens (engine_users.c) -------------------------------- */
/* POST /v1/users {"name","role"}: a user and its token, shown this once:
 * {"name","role","token"}. -EEXIST for a name in use (a revoked one may be
 * given again), -EINVAL. */
int vd_engine_api_user_add(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const json_t *body);
/* GET /v1/users: {"users":[{"name","role","created","revoked"?}]}. */
int vd_engine_api_user_list(json_t **reply, vd_engine *e);
/* DELETE /v1/users/<name>: its token is refused from now on. -ENOENT. */
int vd_engine_api_user_revoke(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *name);
/* POST /v1/tokens/executor: a new executor enrollment token,
 * {"kind":"executor","token"}; by: who asked (for the log). */
int vd_engine_api_enroll_token(json_t **reply, struct vd_buf *why, vd_engine *e,
			       const char *by);
/* POST /v1/tasks {"name"}: create a task owned by owner. */
int vd_engine_api_task_create(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *owner, const json_t *body);

/*
 * Upload (engine_upload.c; docs/protocol.md, "Upload"). Chunks are named by
 * fingerprints, the SHA-256 of their bytes in lowercase hex, which clients
 * compute without the store's key.
 */
#define VD_FP_LEN 64
#define VD_FP_SIZE (VD_FP_LEN + 1)
/* What one POST /v1/chunks may carry: the largest chunk the chunker makes
 * (hard_max, 64 MiB) and its head line. */
#define VD_UPLOAD_BATCH_MAX (((size_t)64 << 20) + ((size_t)64 << 10))
bool vd_engine_fp_valid(const char *s);
/* GET /v1/upload: the chunking parameters and limits a client cuts with. */
int vd_engine_api_upload_info(json_t **reply, vd_engine *e);
/* POST /v1/chunks/missing {"fingerprints": [...]}: {"missing": [...]}. */
int vd_engine_api_chunks_missing(json_t **reply, struct vd_buf *why, vd_engine *e,
				 const json_t *body);
/* POST /v1/chunks: frames "<fp> <len>\n<bytes>"; all verified, then all
 * stored and durable, or nothing (-EINVAL with the frame in why). */
int vd_engine_api_chunks_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			     const void *body, size_t len);
/* POST /v1/tasks/<task>/versions: commit a manifest of fingerprints as a
 * version submitted by `by`, sealed as the mount seals a cp. -ESTALE (409)
 * with *reply {"missing": [...]} when chunks are not uploaded. */
int vd_engine_api_submit(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *task, const char *by, const json_t *body);
/* PUT /v1/tasks/<task>/function and /config. */
int vd_engine_api_function_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			       const char *task, const void *p, size_t n);
int vd_engine_api_config_put(json_t **reply, struct vd_buf *why, vd_engine *e,
			     const char *task, const void *p, size_t n);

#endif
