/*
 * runner_int.h - what runner.c (a process per unit) and runner_persist.c
 * (a process per slot, fed framed units) share: starting a function's
 * first process, listing it so that no sweep takes it for a stray, the
 * sweep itself, the stdin feeder, memory polling and the exit status.
 * Not for other modules: they use runner.h and persist.h.
 */
#ifndef VD_RUNNER_INT_H
#define VD_RUNNER_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "runner.h"
#include "util.h"

#define RUN_TICK_MS 100
#define RUN_IO_BLOCK 65536
/* How often the process group's memory is summed from /proc. */
#define RUN_MEM_TICK_MS 200

/* A run's first process, listed while its run (or its persistent
 * process's owner) has not reaped it: sweeps never kill a listed PID. */
struct runner_root {
	pid_t pid;                 /* 0 while not listed */
	struct runner_root *next;  /* runner.c's roots_lock */
};

/* Start spec's function (wrap, exe, cwd, rlimits) with the given stdio in
 * a process group of its own, listed in root until runner_root_del. 0;
 * -errno of an exec failure in the child (it is reaped and unlisted);
 * -EAGAIN or -ENOMEM when we could not fork. */
int runner_spawn(pid_t *pid, struct runner_root *root, const struct vd_run_spec *spec,
		 char **envp, int in_fd, int out_fd, int err_fd);
/* Unlist root, once its process has been reaped. */
void runner_root_del(struct runner_root *root);
/* Kill and reap every child of ours that no run lists (runner.c,
 * "strays"). Call after reaping a first process. */
void runner_kill_strays(void);
/* The child's environment: ours minus what spec sets, plus spec->env,
 * PATH with spec->path_first in front. */
int runner_build_env(struct vd_strv *out, const struct vd_run_spec *spec);
/* Resident bytes of every process in group pgid. */
uint64_t runner_group_rss(pid_t pgid);
/* Keep the last VD_RUN_ERR_TAIL bytes of stderr in r->err. */
void runner_tail_add(struct vd_run_result *r, const char *p, size_t n);
/* r->exit, signal and reason from a wait status (killed: we killed it). */
void runner_set_status(struct vd_run_result *r, int status, bool killed,
		       const struct vd_run_spec *spec);

/* Writes a unit's input pieces to fd (non-blocking), honouring stop. */
struct runner_feeder {
	int fd;                    /* write end, non-blocking */
	const struct vd_run_input *in;
	size_t nin;
	atomic_bool stop;          /* set by the owner to end early */
};
/* Write n bytes; -EPIPE when the reader closed, -ECANCELED on stop. */
int runner_feed_bytes(struct runner_feeder *f, const char *p, size_t n);
/* Write every piece in turn; fd stays open. 0 or -errno. */
int runner_feed_all(struct runner_feeder *f);

#endif
