/*
 * frame.h - persistent mode for the shipped functions (docs/persistent.md):
 * when the executor starts one with VDFS_MODE=persistent, it is fed units
 * as frames on stdin and answers each with a frame on stdout, instead of
 * reading one unit to EOF.
 *
 * vd_frame_main() lets a program written for one unit per process serve
 * frames unchanged: for each frame it sets the frame's NAME=value entries
 * in the environment, makes the unit's bytes the program's stdin (a memfd,
 * so a program may read it as a file) and a second memfd its stdout, calls
 * the program's per-unit function, and answers with what it wrote (status
 * 0) or its exit status (the output dropped). Anything the function keeps
 * between units (PARI, a model) is the program's business: set it up
 * before, and reset per-unit counters in the function.
 */
#ifndef VD_FN_FRAME_H
#define VD_FN_FRAME_H

/* One unit: reads fd 0 to its end, writes its output to fd 1 (stdio's
 * stdout is flushed after it), returns its exit status. */
typedef int (*vd_frame_unit_fn)(int argc, char **argv, void *ctx);

/* Without VDFS_MODE=persistent: unit(argc, argv, ctx) once, its status.
 * With it: serve frames until stdin ends (status 0) or a frame is
 * malformed or cannot be answered (status 1, said on stderr). getopt's
 * optind is reset before each unit. */
int vd_frame_main(int argc, char **argv, vd_frame_unit_fn unit, void *ctx);

#endif
