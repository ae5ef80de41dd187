/*
 * cli.h - what every `vdfs` subcommand shares: finding the daemon and its
 * token, talking to its HTTP API, and printing tables.
 *
 * Subcommands are `int vd_cli_cmd_NAME(int argc, char **argv)` (argv[0] is
 * the subcommand's name), listed in vdfs.c's table, one file each
 * (tools/cmd_NAME.c). They return the process exit code: 0 success, 1 a
 * failure (after one line on stderr), 2 a usage error or an unknown ID.
 */
#ifndef VD_CLI_H
#define VD_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>

#include "buf.h"
#include "util.h"

/* Where the daemon is. Filled by vd_cli_conn_option / vd_cli_conn_open. */
struct vd_cli_conn {
	const char *server;        /* --server URL */
	const char *token_file;    /* --token-file FILE */
	const char *state;         /* --state DIR: DIR/url and DIR/token */
	char *url;                 /* resolved base URL, malloc'd */
	char *token;               /* resolved token, malloc'd */
	char *pin;                 /* https: DIR/tls-pin (vdfsd writes it), malloc'd */
};

/* The long options every subcommand accepts; end a getopt table with
 * VD_CLI_CONN_OPTIONS, { NULL, 0, NULL, 0 }. Their values are 0x1001..3. */
#define VD_CLI_CONN_OPTIONS                                   \
	{ "server", required_argument, NULL, 0x1001 },        \
	{ "token-file", required_argument, NULL, 0x1002 },    \
	{ "state", required_argument, NULL, 0x1003 }
/* True when opt was one of those (and is now recorded in c). */
bool vd_cli_conn_option(struct vd_cli_conn *c, int opt, const char *arg);
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
/* GET path and parse a JSON object. Exit code: 0; 2 for a 404 (an unknown
 * ID: the daemon's message is printed); 1 otherwise. */
int vd_cli_get_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		    const char *path);
/* The same with a JSON body (POST/PUT). */
int vd_cli_send_json(json_t **out, const struct vd_cli_conn *c, const char *cmd,
		     const char *method, const char *path, const json_t *body);

/* Rows of cells printed with each column as wide as its widest cell. */
#define VD_CLI_MAXCOLS 12
struct vd_cli_table {
	int ncols;
	struct vd_strv cells;   /* row-major */
};
void vd_cli_table_add(struct vd_cli_table *t, const char *s);
void vd_cli_table_addf(struct vd_cli_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints and empties the table. */
void vd_cli_table_print(struct vd_cli_table *t);

long long vd_cli_jint(const json_t *o, const char *k);
const char *vd_cli_jstr(const json_t *o, const char *k);   /* "" when absent */
/* 1536 → "1.5 KiB" */
void vd_cli_human_bytes(char out[32], unsigned long long n);

#endif
