/*
 * persist.h - a function kept running between units (task config `mode =
 * persistent`): started once per executor slot, fed one unit at a time as
 * a frame on its stdin, answering each with a frame on its stdout. What
 * the frames hold is docs/persistent.md; in short:
 *
 *   to the function:    "unit HLEN DLEN\n" HLEN bytes of NAME=value lines
 *                       (backslash and newline in a value written \\ and
 *                       \n), then DLEN bytes: the unit's input;
 *   from the function:  "STATUS LEN\n" LEN bytes: the output when STATUS
 *                       is 0, else a message, and the unit failed.
 *
 * Each unit keeps its own limits, as a process per unit would: the
 * deadline runs from the frame to the whole answer, the memory limit is
 * polled on the process group while the unit runs, and an answer over the
 * stdout cap is refused. A unit over a limit, cancelled, answered out of
 * the protocol, or whose process died, fails alone: the process is killed
 * (if it still lives) and vd_persist_alive() turns false, so that the
 * owner starts another for the next unit.
 *
 * Ownership: one vd_persist belongs to one thread at a time (an executor
 * slot); the runner's other runs on other threads may go on meanwhile, and
 * never take the process for a leftover of theirs (it is listed as a
 * running first process, runner_int.h). vd_runner_init must have run.
 */
#ifndef VD_PERSIST_H
#define VD_PERSIST_H

#include <stdbool.h>

#include "runner.h"

typedef struct vd_persist vd_persist;

/* How long a process has to exit once its stdin is closed, before it is
 * killed. */
#define VD_PERSIST_EXIT_GRACE_MS 1000

/*
 * Start spec->exe as a persistent function: spec's exe, wrap, env,
 * path_first, cwd and rlimits are used (the caller puts VDFS_MODE=
 * persistent in env); in, nin, stdin_dir, timeout_ms, out_cap, cancel and
 * mem_limit are the units' and ignored here. 0; -errno of an exec failure
 * (ENOENT, EACCES, ENOEXEC: the function cannot run) or of our resources
 * (-EAGAIN, -ENOMEM, -EMFILE).
 */
int vd_persist_start(vd_persist **out, const struct vd_run_spec *spec);

/*
 * Run one unit: hdr (NULL-terminated "NAME=value" entries) goes in the
 * frame's header, unit->in[0..nin) is its input; unit->timeout_ms,
 * out_cap, cancel and mem_limit are its limits. Returns 0 with *out filled
 * as vd_runner_run fills it (a failed unit is a result; reason "protocol:
 * ..." for an answer out of the protocol); -EPIPE, with nothing sent, when
 * the process had already ended before the unit (start another and try
 * again: the unit did not fail); other -errno when the unit could not be
 * set up. *out is safe to release in every case.
 */
int vd_persist_run(struct vd_run_result *out, vd_persist *p, const char *const *hdr,
		   const struct vd_run_spec *unit);

/* False once the process ended or was killed. */
bool vd_persist_alive(const vd_persist *p);

/* Close its stdin, let it exit within VD_PERSIST_EXIT_GRACE_MS, else kill
 * its process group; reap it and whatever it left. NULL is fine. */
void vd_persist_free(vd_persist *p);

#endif
