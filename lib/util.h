/*
 * util.h - small system helpers shared by every program: whole-buffer I/O
 * that retries on EINTR and short counts, durable file replacement, directory
 * creation and removal, clocks, and logging to stderr.
 *
 * All return 0 (or a count) on success and -errno on failure.
 */
#ifndef VD_UTIL_H
#define VD_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"

int vd_write_all(int fd, const void *p, size_t n);
int vd_pwrite_all(int fd, const void *p, size_t n, off_t off);
/* Reads exactly n bytes; -EIO if the file ends first. */
int vd_pread_all(int fd, void *p, size_t n, off_t off);
/* Append the whole file at `path` to `out` (its cap applies: -EFBIG). */
int vd_read_file(struct vd_buf *out, const char *path);
/* Write to path.tmp, fsync, rename over path, fsync the directory. */
int vd_write_file_atomic(const char *path, const void *p, size_t n, mode_t mode);
int vd_fsync_dir(const char *dir);          /* dir of a path: use vd_fsync_parent */
int vd_fsync_parent(const char *path);
int vd_mkdir_p(const char *path, mode_t mode);   /* like mkdir -p; exists is fine */
int vd_rm_rf(const char *path);                  /* missing is fine */

int64_t vd_now_ms(void);       /* CLOCK_REALTIME in milliseconds */
int64_t vd_mono_ms(void);      /* CLOCK_MONOTONIC in milliseconds */
/* ms from now on clock (CLOCK_REALTIME, or the clock a condition variable
 * was made with), as pthread_cond_timedwait wants its deadline. */
struct timespec vd_deadline_ms(clockid_t clock, long ms);
/* ISO 8601 UTC with milliseconds: 2026-11-22T02:31:43.123Z */
void vd_format_time(char out[32], int64_t ms);

enum vd_log_level { VD_LOG_ERROR, VD_LOG_WARN, VD_LOG_INFO, VD_LOG_DEBUG };
/* Program name for log lines and the most verbose level printed. */
void vd_log_init(const char *prog, enum vd_log_level max);
void vd_log(enum vd_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
#define vd_err(...)   vd_log(VD_LOG_ERROR, __VA_ARGS__)
#define vd_warn(...)  vd_log(VD_LOG_WARN, __VA_ARGS__)
#define vd_info(...)  vd_log(VD_LOG_INFO, __VA_ARGS__)
#define vd_debug(...) vd_log(VD_LOG_DEBUG, __VA_ARGS__)


/* A growable vector of malloc'd strings. Zero-initialize, push, release. */
struct vd_strv {
	char **v;
	size_t n;
	size_t cap;
};
int vd_strv_push(struct vd_strv *sv, const char *s);        /* copies s */
int vd_strv_pushn(struct vd_strv *sv, const char *s, size_t n);
void vd_strv_sort(struct vd_strv *sv);                      /* strcmp order */
void vd_strv_release(struct vd_strv *sv);

#endif
