/*
 * spool.h - finished results that the daemon did not take yet, kept on
 * disk so that no computed unit is lost while vdfsd is down or restarting,
 * nor when this executor is killed meanwhile and started again with the
 * same --cache and --name (docs/executors.md, "The result spool").
 *
 * One file per result, DIR/<lease-id>.result: a header line of JSON
 * ({"lease", "what", "body"}: the lease, a few words for the log, and the
 * body's length), then the body of PUT /v1/results/<lease> exactly as it
 * is sent (the metadata line and the output, which may be a zstd frame:
 * the line says so, and the daemon takes either, so a spool written before
 * results were compressed sends as it is). Each is written to a
 * temporary name, fsync'd, renamed into place and the directory fsync'd,
 * so a crash leaves either the whole file or none; temporary files found
 * at open are what a crash cut short and are removed.
 *
 * The spool is bounded by a cap on its bytes, which it only reports
 * (vd_spool_over): a result is never refused for want of room under the
 * cap, because the unit is computed already; the caller takes no new work
 * while the spool is over it.
 *
 * Entries are kept in order, oldest first; a sender takes the first and,
 * when the daemon could not take it, moves it to the end, so one result
 * the daemon keeps failing on does not hold up the others.
 *
 * Threads: every call may be made from any thread; the spool has its own
 * lock. Only one thread should send (map, then done or rotate) entries.
 */
#ifndef VD_SPOOL_H
#define VD_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client.h"
#include "id.h"
#include "util.h"

struct vd_spool;

/* An entry's body, mapped for sending. */
struct vd_spool_body {
	void *map;                 /* the whole file */
	size_t maplen;
	const char *p;             /* the body within it */
	size_t n;
};

/* Open (creating) the spool directory dir and load what it holds from an
 * earlier run. cap: bytes at which vd_spool_over says stop. */
int vd_spool_open(struct vd_spool **out, const char *dir, uint64_t cap);
void vd_spool_close(struct vd_spool *s);
const char *vd_spool_dir(const struct vd_spool *s);

/* Write the result for lease (body: the concatenation of n pieces) and add
 * it at the end. what: a few words for the log ("wc unit 3/12"). -EEXIST
 * when the lease is spooled already; -errno when it could not be written
 * (nothing is left behind then). */
int vd_spool_put(struct vd_spool *s, const char *lease, const char *what,
		 const struct vd_client_piece *body, size_t n);

/* The first entry's lease ID and words; -ENOENT when the spool is empty. */
int vd_spool_first(struct vd_spool *s, char lease[VD_ID_SIZE], char *what,
		   size_t whatn);
/* Map lease's body for sending. Release with vd_spool_unmap. */
int vd_spool_map(struct vd_spool_body *b, struct vd_spool *s, const char *lease);
void vd_spool_unmap(struct vd_spool_body *b);
/* The daemon took the result, or will never take it: delete it. */
void vd_spool_done(struct vd_spool *s, const char *lease);
/* The daemon could not take it now: move it to the end. */
void vd_spool_rotate(struct vd_spool *s, const char *lease);

/* Append the spooled lease IDs, oldest first, at most max. */
int vd_spool_ids(struct vd_strv *out, struct vd_spool *s, size_t max);
/* How many results, how many bytes. */
void vd_spool_usage(struct vd_spool *s, size_t *count, uint64_t *bytes);
/* Are the spooled bytes at or over the cap? */
bool vd_spool_over(struct vd_spool *s);

#endif
