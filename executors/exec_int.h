/*
 * exec_int.h - what executor.c (threads, registration, dispatch) and
 * exec_results.c (sending results, the spool's sender) share: the
 * executor's state and a few helpers. Not for other programs.
 */
#ifndef VD_EXEC_INT_H
#define VD_EXEC_INT_H

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "buf.h"
#include "cache.h"
#include "doc.h"
#include "client.h"
#include "id.h"
#include "exutil.h"
#include "runner.h"
#include "spool.h"
#include "util.h"
#include "zframe.h"

#define EX_LEASE_WAIT_MS 20000
/* The long-poll may be held wait_ms by the server; allow for transfer. */
#define EX_LEASE_TIMEOUT_MS (EX_LEASE_WAIT_MS + 15000)
#define EX_REQ_TIMEOUT_MS 30000
#define EX_BACKOFF_MIN_MS 500
#define EX_BACKOFF_MAX_MS 5000
#define EX_FETCH_TRIES 4
/* Tries at a result that could be neither sent nor spooled (the disk
 * failed too), once the executor is stopping; before that it tries on. */
#define EX_RESULT_TRIES 5
/* The spool's default cap (--spool-size). */
#define EX_SPOOL_CAP (2ull << 30)
/* Spooled results are retried at most a heartbeat apart (within these
 * bounds), so that a restarted daemon gets them before the leases it
 * restored run out. A Retry-After the daemon sends is honoured, up to a
 * minute (a longer one would only be a daemon's mistake). */
#define EX_SPOOL_RETRY_MIN_MS 1000
#define EX_SPOOL_RETRY_MAX_MS 10000
#define EX_RETRY_AFTER_MAX_MS 60000
/* While the daemon cannot take results, say so at most this often. */
#define EX_SPOOL_SAY_MS 30000
/* Lease IDs listed as spooled at registration (the daemon takes 4096). */
#define EX_SPOOLED_MAX 4096
/* Saying that we leave is worth a moment, not a hang at exit. */
#define EX_LEAVE_TIMEOUT_MS 5000
#define EX_OUT_CAP ((size_t)1 << 30)
/* "result" or "results" in a log line. */
#define EX_S(n) ((n) == 1 ? "" : "s")
/* Code is capped at 64 MiB by the daemon, chunks far lower; this only
 * bounds what a misbehaving server can make us hold. */
#define EX_BLOB_MAX ((size_t)256 << 20)
#define EX_DEFAULT_TIMEOUT_S 300
/* Units queued beyond the slots, per slot: what a lease request asks for
 * on top of the free slots (the daemon gives fewer when units are long:
 * docs/executors.md, "How many units a lease request gets"). */
#define EX_QUEUE_PER_SLOT 4
/* The outbox (exec_outbox.c): a result of up to EX_BATCH_ITEM_MAX bytes
 * of output waits there for the next POST /v1/results, which carries at
 * most EX_BATCH_RESULTS results and EX_BATCH_BYTES bytes; over
 * EX_OUTBOX_BYTES waiting, or a larger output, goes by its own PUT. */
#define EX_BATCH_ITEM_MAX ((size_t)1 << 20)
#define EX_BATCH_RESULTS 256
#define EX_BATCH_BYTES ((size_t)16 << 20)
#define EX_OUTBOX_BYTES ((size_t)64 << 20)
/* Chunks of at most EX_INLINE_DEFAULT bytes (--inline-max) are asked for
 * inside the lease (exec_inline.c): a round trip and a cache file cost
 * more than they do. The default chunker's chunks are larger, and come by
 * GET, cached. EX_INLINE_MAX is the most --inline-max may say (the
 * daemon's cap too). */
#define EX_INLINE_DEFAULT ((size_t)16 << 10)
#define EX_INLINE_MAX ((size_t)64 << 10)

/* What became of one try at sending a result. */
enum sent {
	SENT_TAKEN,   /* the daemon answered for good: nothing more to do */
	SENT_AGAIN,   /* it could not take it now: try again later */
	SENT_FATAL,   /* our token is refused (401): we are leaving */
};

/* A unit held by this executor, from the lease reply to the result. */
struct lease {
	struct lease *next_queued;   /* exec.lock */
	struct lease *next_active;   /* exec.lock */
	json_t *j;                   /* the lease object from the server */
	char id[VD_ID_SIZE];
	/* Set by the heartbeat thread when the server says the lease is no
	 * longer ours, or on a fatal error: the runner kills the function and
	 * the unit is dropped without a result. */
	atomic_bool cancel;
};

struct exec {
	/* Configuration: set before any thread starts, read-only after. */
	const char *server;
	char *token;          /* the enrollment token, for registering */
	char *own_token;      /* ours, from registration */
	const char *cacert;   /* --cacert */
	const char *pin;      /* --pin */
	int idle_exit_s;      /* --idle-exit; 0 = never */
	const char *bwrap;    /* --sandbox bwrap: the bwrap program, else NULL */
	uint64_t max_memory;  /* --max-memory: cap on what a unit may ask for */
	uint64_t as_limit;    /* --max-address-space: RLIMIT_AS per process */
	uint64_t fsize_limit; /* --max-file-size */
	uint64_t nofile_limit;/* --max-open-files */
	size_t out_cap;       /* --stdout-cap */
	uint64_t cache_cap;   /* --cache-size */
	size_t inline_max;    /* --inline-max: chunks asked for inside the lease */
	struct vd_cache *store; /* the cache of code and chunks */
	int cores;
	int level;
	int slots;
	char name[VD_ID_SIZE * 2];
	char *cache;          /* cache root; code/ and chunks/ below it */
	char *selfdir;        /* directory of this binary, first on PATH */
	bool once;
	struct vd_key key;    /* from registration: verifies downloads */
	int lease_ms;
	int heartbeat_ms;
	/* The daemon takes results as zstd frames: its registration reply
	 * lists "zstd" in result_encodings (an older daemon does not, and
	 * would refuse them). Set at each registration. */
	atomic_bool result_zstd;
	/* Bytes over the wire and what they stand for, for the line logged
	 * at exit: chunks received (as sent: frames or raw) and their raw
	 * length; results sent (the output part of the body) and theirs. */
	atomic_uint_fast64_t chunk_bytes_in, chunk_raw_in;
	atomic_uint_fast64_t result_bytes_out, result_raw_out;

	pthread_mutex_t lock;
	/* Signalled when a unit is queued, a slot is freed, or on stop. */
	pthread_cond_t cond;
	struct lease *queue_head;    /* lock: leased, not started; FIFO */
	struct lease *queue_tail;    /* lock */
	struct lease *active;        /* lock: every lease held (for heartbeats) */
	int held;                    /* lock: leases held = slots in use */
	bool workers_stop;           /* lock: workers leave once the queue is empty */
	atomic_bool heartbeat_stop;  /* the heartbeat thread leaves */
	/* The spool of results the daemon did not take yet (its own lock),
	 * under cache/spool/<name>; spool_cap is --spool-size. */
	struct vd_spool *spool;
	uint64_t spool_cap;
	/* The workers are done: the sender tries each spooled result once
	 * more and leaves. */
	atomic_bool spool_final;
	/* Finished units' results waiting to be sent together
	 * (exec_outbox.c, its own lock); NULL: each goes by its own PUT. */
	struct ex_outbox *outbox;
	/* The daemon has no POST /v1/results (an older one): one PUT each. */
	atomic_bool batch_off;
	int fatal;                   /* lock: exit code of a fatal error, else 0 */
};

/* What one worker thread keeps between units (exec_unit.c): the
 * persistent function it runs, if any. Owned by that thread alone. */
struct exec_slot {
	struct vd_persist *proc;     /* NULL: none */
	struct vd_buf key;           /* task, code ID, parameters it serves */
	char workdir[PATH_MAX];      /* its directory and TMPDIR; "" = none */
	int64_t last_used_ms;        /* when its last unit ended */
};
/* An idle persistent function is stopped after this long. */
#define EX_PERSIST_IDLE_MS 60000

/* Set from the signal handler (and on fatal errors): take no more leases.
 * Lock-free atomic, so safe to store from a handler. */

/* Set by SIGTERM/SIGINT: stop taking work, finish, leave. */
extern atomic_bool g_stop;

/* executor.c */
void nap(int ms, const atomic_bool *stop);
int backoff_next(int ms);
void set_fatal(struct exec *x, const char *what);
const char *fail_text(char *buf, size_t n, int e, long status,
			     const struct vd_client *c, const struct vd_buf *why);
int client_open(struct vd_client *c, const struct exec *x, const char *token,
		       const atomic_bool *abort);

/* exec_lease.c: a lease's fields; a string that is missing or no string
 * is "", an integer that is missing or no integer dflt. */
const char *jstr(const json_t *o, const char *k);
json_int_t jint(const json_t *o, const char *k, json_int_t dflt);
/* Push "K=V" onto env; -ENOMEM. */
int ex_env_add(struct vd_strv *env, const char *k, const char *v);
/* May a lease's parameter name k go into an environment? Not empty, and
 * no '=': "PATH=/x" as a name would set PATH past the checks on it (the
 * daemon sends only names its config parser vetted; a server need not). */
bool ex_env_name_ok(const char *k);
/* Push the unit's environment (VDFS_TASK, VDFS_DATA_ID, VDFS_CODE_ID,
 * VDFS_UNIT, VDFS_PATH, then the lease's "env" parameters that override
 * none of ours) onto env as "K=V"; -ENOMEM. */
int ex_unit_env(struct vd_strv *env, const json_t *lj);
/* The limits and sandbox every unit of lease l gets, within what this
 * machine lends; wrap (32 entries) is filled when --sandbox bwrap. */
void ex_unit_limits(struct vd_run_spec *spec, const char **wrap, struct exec *x,
		    const struct lease *l, const char *exe, const char *workdir);

/* exec_unit.c */
void exec_run_unit(struct exec *x, struct vd_client *c, struct lease *l,
		   struct exec_slot *slot);
void exec_slot_release(struct exec_slot *s);

/* exec_results.c */
void send_result(struct exec *x, struct vd_client *c, struct lease *l,
			const struct vd_run_result *r);
void *sender_main(void *arg);
enum sent put_result(struct exec *x, struct vd_client *c, const char *lease,
			    const char *what, const struct vd_client_piece *body,
			    size_t n, char *fail, size_t failn, int *retry_ms);
/* What the daemon's answer status (with its error text why) to one
 * result means, logged with `what`; fail gets why for SENT_AGAIN. */
enum sent result_answer(struct exec *x, struct vd_client *c, const char *lease,
			const char *what, long status, const char *why, char *fail,
			size_t failn);
/* Write a result the daemon could not take to the spool (logged); if the
 * spool cannot take it either, -errno and the caller keeps it. */
int spool_result(struct exec *x, const char *lease, const char *what,
		 const struct vd_client_piece *body, size_t n, const char *fail);

/* exec_inline.c: the bytes of a chunk the daemon sent inside the lease
 * (chunk: one entry of the lease's "chunks"), verified against its ID
 * with key, into out. -ENOENT when it sent none; -EBADMSG when what it
 * sent is not base64 of the chunk (fetch it instead); -ENOMEM. */
int ex_inline_chunk(struct vd_buf *out, const json_t *chunk, const struct vd_key *key);

/* exec_outbox.c */
int ex_outbox_open(struct ex_outbox **out);
void ex_outbox_close(struct ex_outbox *o);
/* Queue a result (line: its JSON line with the newline; body: the output
 * as sent) for the next POST /v1/results; copies both. 0, or -EAGAIN when
 * the outbox is full or closing (the caller sends it itself), -ENOMEM. */
int ex_outbox_put(struct exec *x, const char *lease, const char *what,
		  const char *line, const void *body, size_t n);
/* Append the lease IDs of the results waiting or being sent (at most max
 * in all in ids), for the heartbeat thread. */
void ex_outbox_ids(struct vd_strv *ids, struct ex_outbox *o, size_t max);
/* The workers are done: the outbox thread sends (or spools) what is left
 * and returns. */
void ex_outbox_finish(struct ex_outbox *o);
void *outbox_main(void *arg);

#endif
