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
const char *jstr(const json_t *o, const char *k);
json_int_t jint(const json_t *o, const char *k, json_int_t dflt);

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

#endif
