/*
 * runner.h - run one function on one unit: a child process in its own
 * process group, stdin fed from memory and files by a writer thread, stdout
 * collected under a cap, the tail of stderr kept, a deadline, a memory
 * limit and a cancellation flag enforced by killing the whole group, and
 * rlimits (CPU, address space, file size, open files) set in the child.
 * When the function's first process ends, every process of the unit still
 * alive is killed, also those that left the group (setsid, double fork):
 * the process is a child subreaper and reaps them (runner.c, "strays").
 *
 * The runner knows nothing of HTTP or leases, so that it can be tested on
 * its own with /bin/sh scripts (tests/test_runner.c).
 *
 * Threads: any number of runs may go on at once from different threads.
 * The process must ignore SIGPIPE (vd_runner_init does that): a function
 * that stops reading its stdin is normal, and the writer must see EPIPE
 * instead of dying.
 */
#ifndef VD_RUNNER_H
#define VD_RUNNER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define VD_RUN_ERR_TAIL 4096

/* One piece of the function's stdin: `len` bytes at `mem`, or, when mem is
 * NULL, `len` bytes of the file `file` from offset `off`. With `zstd` the
 * file is a zstd frame (a chunk cached as the daemon stored it, cache.h)
 * and off and len count its decompressed bytes: it is decompressed as it
 * is fed (zframe.h), through a small window; a frame that does not give
 * those bytes cuts the unit's stdin short (logged), as a short file does. */
struct vd_run_input {
	const void *mem;
	const char *file;
	uint64_t off;
	uint64_t len;
	bool zstd;
};

struct vd_run_spec {
	const char *exe;              /* path of the executable; run as argv[0] */
	const char *const *env;       /* NULL-terminated "NAME=value" entries set
				       * over the inherited environment; may be NULL */
	const char *path_first;       /* directory put first on PATH; may be NULL */
	const char *cwd;              /* working directory; NULL = inherited */
	const struct vd_run_input *in;
	size_t nin;
	/* When set, stdin is a regular file: the pieces are copied (in the
	 * kernel, copy_file_range) into an unnamed file made in this directory
	 * (O_TMPFILE), and the function reads it as a seekable file from
	 * offset 0. NULL, or a file system without O_TMPFILE: a pipe that a
	 * thread of ours fills. A file costs one in-kernel copy of the unit;
	 * the pipe costs two copies through our memory, a thread, and the
	 * function's reads of at most a pipe buffer at a time. */
	const char *stdin_dir;
	int64_t timeout_ms;           /* 0 = no deadline */
	size_t out_cap;               /* stdout over this kills with "stdout cap" */
	atomic_bool *cancel;          /* set by another thread to kill; may be NULL */
	/* A sandbox: argv put in front of exe (wrap[0] an absolute path,
	 * the list NULL-terminated); NULL runs exe directly. */
	const char *const *wrap;
	/* Limits; 0 means none. mem_limit is bytes of resident memory of the
	 * whole process group, polled every 200 ms ("memory limit").
	 * as_limit, when set, is RLIMIT_AS for each process: a wall for a
	 * burst between two polls, opt-in because many sound programs reserve
	 * far more address space than they use (sanitizers, JVMs, Go). cpu_limit_s is
	 * RLIMIT_CPU ("cpu limit"), fsize_limit RLIMIT_FSIZE ("file size
	 * limit"), nofile_limit RLIMIT_NOFILE. */
	uint64_t mem_limit;
	uint64_t as_limit;
	int64_t cpu_limit_s;
	uint64_t fsize_limit;
	uint64_t nofile_limit;
};

struct vd_run_result {
	/* Exit status; 128 + N when the function died of signal N; 127 when it
	 * could not be started. When the runner killed it (timeout, stdout
	 * cap, cancel) this is always 137 / signal 9, even if the function
	 * happened to exit cleanly at the same moment: its output is cut. */
	int exit;
	int signal;
	/* "" for a normal exit, else "timeout", "stdout cap", "memory limit",
	 * "cpu limit", "file size limit", "cancelled", "signal N" or
	 * "exec failed: <strerror>". */
	char reason[160];
	bool cancelled;
	int64_t ms;                   /* wall time from start to exit */
	uint64_t peak_rss;            /* the most resident bytes seen (polled, and
				       * the largest process's own high-water mark) */
	struct vd_buf out;            /* stdout (capped at spec->out_cap) */
	char err[VD_RUN_ERR_TAIL + 1];/* the last bytes of stderr, NUL-terminated */
	size_t errlen;
};

/* Ignore SIGPIPE process-wide (see above), and make the process a child
 * subreaper, so that orphans of its units come back to it to be killed.
 * From then on, any child process of this process that a run did not
 * start is taken for a unit's leftover and killed when a run ends: a
 * program using the runner must start no child processes of its own.
 * Idempotent. */
void vd_runner_init(void);

/* Run spec->exe. Returns 0 with *out filled (also for exec failures, which
 * are a result: exit 127), or -errno when the run could not be set up
 * (pipes, threads, memory, process table full); then *out holds nothing to
 * release but is safe to release. */
int vd_runner_run(struct vd_run_result *out, const struct vd_run_spec *spec);
void vd_run_result_release(struct vd_run_result *r);

/*
 * Write an executable (or any file) atomically: a private temporary name,
 * then rename. Writing happens with spawns held off, because a child forked
 * while the file is open for writing would keep a writable descriptor to it
 * until it execs, and exec of the file in that window fails with ETXTBSY.
 */
int vd_runner_install(const char *path, const void *p, size_t n, mode_t mode);

#endif
