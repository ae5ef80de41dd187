/*
 * cli.h - what every `vdfs` subcommand shares: its documentation record and
 * option parsing, finding the daemon and its token, talking to its HTTP API,
 * and printing tables.
 *
 * A subcommand is a `const struct vd_cli_cmd vd_cli_cmd_NAME` (one file
 * each, tools/cmd_NAME.c), named once in vdfs.c's list. Its record is
 * everything said about it: `vdfs --help` lists its summary, `vdfs help
 * NAME` and `vdfs NAME --help` print its description and options, and the
 * vdfs(1) page is made from the same record (vdfs --man). Its options are
 * the rows of its doc.h table, so parsing, --help and the page cannot
 * disagree. run() returns the process exit code: 0 success, 1 a failure
 * (after one line on stderr), 2 a usage error or an unknown ID.
 */
#ifndef VD_CLI_H
#define VD_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>

#include "buf.h"
#include "doc.h"
#include "id.h"
#include "util.h"

struct vd_cli_cmd {
	const char *name;          /* "log" */
	const char *args;          /* what follows the name: "TASK", "[TASK]" */
	const char *summary;       /* one line for `vdfs --help`, no full stop */
	const char *description;   /* doc.h text for --help and the page */
	const struct vd_doc_opt *opts;   /* its own options; { NULL } ends */
	bool conn;                 /* it also takes --state, --server, --token-file */
	bool stop_at_arg;          /* options end at the first argument */
	int (*run)(int argc, char **argv);   /* argv[0] is the subcommand's name */
};

/* vdfs.c's list of subcommands, in `vdfs --help` order, and its own help
 * (`vdfs --help`, also `vdfs help`). */
const struct vd_cli_cmd *const *vd_cli_commands(size_t *n);
const struct vd_cli_cmd *vd_cli_command(const char *name);   /* NULL: none */
void vd_cli_main_help(FILE *f);

/* `vdfs help NAME` / `vdfs NAME --help`, and NAME's part of vdfs(1). */
void vd_cli_help_print(FILE *f, const struct vd_cli_cmd *cmd);
void vd_cli_man_print(FILE *f, const struct vd_cli_cmd *cmd);
/* The config keys (daemon/config_keys.c's table): `vdfs help config` and
 * the vdfs-config(5) page (`vdfs --man-config`). tools/cmd_help.c. */
void vd_cli_config_help(FILE *f);
void vd_cli_config_man(FILE *f);

/* Where the daemon is. Filled by vd_cli_opt and vd_cli_conn_open. */
struct vd_cli_conn {
	const char *server;        /* --server URL */
	const char *token_file;    /* --token-file FILE */
	const char *state;         /* --state DIR: DIR/url and DIR/token */
	char *url;                 /* resolved base URL, malloc'd */
	char *token;               /* resolved token, malloc'd */
	char *pin;                 /* https: DIR/tls-pin (vdfsd writes it), malloc'd */
	/* A request that may run for many minutes without a byte coming
	 * back (gc, fsck): no low-speed limit, TCP keepalives instead, so
	 * that only a dead peer ends it. Set before the request. */
	bool patient;
};

/* The connection options' rows, and --help's (every subcommand has it). */
extern const struct vd_doc_opt vd_cli_conn_doc[];
extern const struct vd_doc_opt vd_cli_help_doc[];

/*
 * A subcommand's option parser:
 *
 *	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_log, .conn = &conn,
 *				  .argc = argc, .argv = argv };
 *	while ((opt = vd_cli_opt(&o)) > 0)
 *		switch (opt) { case 'l': ...; }
 *	if (opt < 0)
 *		return o.exit;
 *	// argv[optind] is the first argument
 *
 * vd_cli_opt returns the val of the next of the subcommand's own options
 * (optarg is its value), 0 when the options are over, or -1 when the
 * subcommand is to return o.exit at once: 0 after printing --help, 2 after
 * one line on stderr about a bad option. Connection options are stored in
 * *conn (NULL for a subcommand without them).
 */
struct vd_cli_opts {
	const struct vd_cli_cmd *cmd;
	struct vd_cli_conn *conn;
	int argc;
	char **argv;
	int exit;
	bool ready;
	struct vd_doc_getopt g;
};
int vd_cli_opt(struct vd_cli_opts *o);
/* One line on stderr, "vdfs CMD: WHY (usage: vdfs CMD ARGS; see vdfs help
 * CMD)"; returns 2, the usage error's exit code. */
int vd_cli_usage(const struct vd_cli_cmd *cmd, const char *why);

/* Resolve URL and token (explicit options win over --state; the default
 * server is http://127.0.0.1:7070; the token must be given somehow).
 * Returns an exit code: 0, or 1/2 after one line on stderr. */
int vd_cli_conn_open(struct vd_cli_conn *c, const char *cmd);
void vd_cli_conn_close(struct vd_cli_conn *c);

/* One request. body/blen may be NULL/0. *status gets the HTTP status; the
 * reply body is appended to out (capped by out's max). Returns 0, or 1
 * after a line on stderr for a transport failure. */
int vd_cli_request(struct vd_buf *out, long *status, const struct vd_cli_conn *c,
		   const char *method, const char *path, const void *body,
		   size_t blen);
/*
 * A session: one libcurl handle kept across requests, so that they share
 * one kept-alive connection (vdfs put sends many). Not thread-safe: one
 * thread uses a session at a time.
 *
 *	struct vd_cli_session s;
 *	if (vd_cli_session_open(&s, &conn)) ...;
 *	rc = vd_cli_session_request(&reply, &status, &s, "POST", path,
 *				    "application/octet-stream", body, len);
 *	vd_cli_session_close(&s);
 *
 * The body is sent from where it lies (never copied). An answer's
 * Retry-After (seconds) is left in retry_after (-1 when none). With
 * on_sent set, it is called with the body bytes sent so far, about once a
 * second at least while a request is under way (for progress).
 */
struct vd_cli_session {
	const struct vd_cli_conn *c;
	void *curl;                /* CURL * */
	long retry_after;
	void (*on_sent)(void *arg, uint64_t sent);
	void *on_sent_arg;
	/* A transport failure is left in err, not printed (for a thread
	 * whose caller reports it). */
	bool keep_errors;
	char err[256];             /* CURL_ERROR_SIZE */
};
/* 0, or 1 after a line on stderr. */
int vd_cli_session_open(struct vd_cli_session *s, const struct vd_cli_conn *c);
void vd_cli_session_close(struct vd_cli_session *s);
/* Like vd_cli_request, on s. ctype: the body's Content-Type (NULL:
 * application/json). patient: no low-speed limit for this request (one
 * the daemon may take minutes to answer), TCP keepalives instead. */
int vd_cli_session_request(struct vd_buf *out, long *status, struct vd_cli_session *s,
			   const char *method, const char *path, const char *ctype,
			   const void *body, size_t blen, bool patient);
/* The "error" of a JSON error reply, or "the daemon gave no reason";
 * into out (truncated to its size). */
void vd_cli_reply_error(char *out, size_t size, const struct vd_buf *reply);

/* What a status line (`cat status`, the first word queued | running |
 * done | failed) says of a run: 1 done, -1 failed, 0 not over. */
int vd_cli_status_end(const char *status);

/* GET path and parse a JSON object. Exit code: 0; 2 for a 404 (an unknown
 * ID: the daemon's message is printed); 1 otherwise. */
int vd_cli_get_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		    const char *path);
/* s percent-encoded (all but RFC 3986's unreserved characters), for a
 * task name in a path. -ENOMEM. */
int vd_cli_url_escape(struct vd_buf *out, const char *s);
/* An ID argument: 32 hex digits as they are, or a unique prefix of at least
 * 6 (GET /v1/resolve/<prefix>). Exit code: 0; 2 when no ID or several
 * start so (the daemon's message, naming them, is printed); 1 otherwise. */
int vd_cli_resolve_id(char out[VD_ID_SIZE], const struct vd_cli_conn *c, const char *cmd,
		      const char *arg);
/* The same with a JSON body (POST/PUT). */
int vd_cli_send_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		     const char *method, const char *path, const json_t *body);
/* The task that holds dataset version id, into task (GET /v1/versions/ID):
 * `want` when given and it does hold it, else the only one. Exit code: 0;
 * 2 when no task holds it (or not `want`), or several do and want is NULL
 * (they are named on stderr, with --task to pick one); 1 otherwise. */
int vd_cli_version_task(struct vd_buf *task, const struct vd_cli_conn *c, const char *cmd,
			const char *id, const char *want);

/*
 * Text on a terminal. vd_cli_locale() is called once by main(): the user's
 * locale for character classes (LC_CTYPE), but numbers stay "1.5" whatever
 * it says (scripts read them); since every string from the daemon is UTF-8
 * (it comes as JSON), a locale whose characters are not UTF-8 is replaced by
 * C.UTF-8 for measuring them.
 *
 * vd_cli_width_cut() measures UTF-8 text in terminal columns (a CJK
 * character takes two, a combining one none, a byte that does not decode
 * one): it returns the columns of the longest prefix of s that fits in
 * maxw columns, and that prefix's length in bytes in *bytes (may be NULL).
 * It never cuts a character in half. SIZE_MAX measures the whole string.
 */
void vd_cli_locale(void);
size_t vd_cli_width_cut(const char *s, size_t maxw, size_t *bytes);
static inline size_t vd_cli_width(const char *s)
{
	return vd_cli_width_cut(s, (size_t)-1, NULL);
}

/* Rows of cells printed with each column as wide, in terminal columns, as
 * its widest cell. On a terminal a column with a maxw is cut to that many
 * columns, ending in "…"; through a pipe every cell is printed whole. */
#define VD_CLI_MAXCOLS 12
struct vd_cli_table {
	int ncols;
	struct vd_strv cells;   /* row-major */
	size_t maxw[VD_CLI_MAXCOLS];   /* 0: never cut */
};
void vd_cli_table_add(struct vd_cli_table *t, const char *s);
void vd_cli_table_addf(struct vd_cli_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints (to stdout, cutting if it is a terminal) and empties the table. */
void vd_cli_table_print(struct vd_cli_table *t);
void vd_cli_table_fprint(FILE *f, struct vd_cli_table *t, bool cut);

/* GET path, the body written to fd (from where it stands). With from > 0,
 * only bytes from..end are asked for, If-Range: if_range: a 206 appends
 * them; a 200 (the content changed) truncates fd and writes it all. The
 * answer's ETag goes to etag ("" when none). fd -1: HEAD, for the ETag
 * alone. 0, or the exit status after a message on stderr (2 for 404 and
 * 416, 1 otherwise). */
#define VD_CLI_ETAG_SIZE 80
int vd_cli_download(long *status, char etag[VD_CLI_ETAG_SIZE], const struct vd_cli_conn *c,
		    const char *cmd, const char *path, int fd, uint64_t from, const char *if_range);

long long vd_cli_jint(const json_t *o, const char *k);
const char *vd_cli_jstr(const json_t *o, const char *k);   /* "" when absent */
/* 1536 → "1.5 KiB" */
void vd_cli_human_bytes(char out[32], unsigned long long n);
/* A time in ms since the epoch as local "2026-01-31 12:00:00", or "-" for
 * none (0 or less). */
void vd_cli_time(char out[32], long long ms);
/* 1234 ms → "1.2s", as vdfs log prints durations; "-" when negative. */
void vd_cli_duration(char out[32], long long ms);

#endif
