/*
 * view.h - the FUSE view: the mount a user sees (DESIGN.md "The mount").
 *
 * The view is a thin translation of the engine (daemon/engine.h) into files
 * and directories: every piece of state it shows comes from the engine, and
 * every change a user makes through the mount becomes one engine call. The
 * only state the view keeps itself is what is in flight: files and trees
 * being written into tasks/NAME/data/ (kept under staging_dir until they are
 * sealed), open file handles and the kernel's inode numbers.
 *
 * Lifecycle: vd_view_new mounts; vd_view_loop serves requests on a pool of
 * threads until the file system is unmounted (fusermount3 -u), a signal
 * arrives (SIGTERM/SIGINT/SIGHUP) or vd_view_exit is called; vd_view_free
 * unmounts if still mounted, seals trees still waiting for their settle time
 * and frees everything. The engine must outlive the view.
 *
 * Threads: vd_view_exit may be called from any thread (also from a signal
 * handler's deferred work, but not from within a signal handler). The other
 * three functions belong to the thread that owns the view.
 *
 * Errors: 0 on success, -errno on failure (a line is logged with the reason).
 * docs/mount.md describes the behaviour of the mount in detail.
 */
#ifndef VD_VIEW_H
#define VD_VIEW_H

#include <stdbool.h>

#include "engine.h"

typedef struct vd_view vd_view;

/* Mount the view of engine e at mountpoint. staging_dir (created if needed)
 * holds files being written. debug enables libfuse debug output.
 * allow_other lets other local users in (FUSE allow_other), with the
 * kernel checking permissions against the owners and modes shown
 * (default_permissions): a task belongs to the uid that made it, and only
 * its owner and root change it; files made in data/ belong to their maker
 * (docs/remote-access.md). */
int vd_view_new(vd_view **out, vd_engine *e, const char *mountpoint,
		const char *staging_dir, bool debug, bool allow_other);
/* Run the multi-threaded session loop until unmounted or vd_view_exit;
 * installs libfuse's signal handlers (SIGTERM/SIGINT/SIGHUP -> clean
 * unmount) for the duration. */
int vd_view_loop(vd_view *v);
void vd_view_exit(vd_view *v);
void vd_view_free(vd_view *v);   /* unmounts if still mounted, frees */

#endif
