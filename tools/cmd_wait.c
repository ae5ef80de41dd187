/*
 * cmd_wait.c - `vdfs wait TASK|ID [--timeout S]`: block until a version's
 * run is done or failed, for scripts and CI. A TASK means its latest
 * version (followed as it moves); an ID (or unique prefix) that version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "timeout", 't', "S", "give up after S seconds (default: wait as long as it takes)", 0 },
	{ "quiet", 'q', NULL, "print nothing; only the exit code tells", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_wait = {
	.name = "wait",
	.args = "TASK|ID",
	.summary = "wait until a version's run is done or failed",
	.description =
		"Polls the daemon twice a second until the status of TASK's latest "
		"version (or of version ID: a data ID or a unique prefix) starts with "
		"done or failed, then prints that status line. With a TASK, a version "
		"submitted meanwhile becomes the one waited for. "
		"Exit: 0 done, 1 failed, 2 timed out (or no such task or ID), 3 "
		"the daemon could not be asked.",
	.opts = opts,
	.conn = true,
	.run = run,
};

/* The status line of what is waited for, into *status (malloc'd). 0, or
 * an exit code after a line on stderr. */
static int fetch(char **status, const struct vd_cli_conn *c, const char *task, const char *id)
{
	struct vd_buf path = VD_BUF_INIT(1024);
	json_t *j = NULL, *v;
	size_t i;
	int rc = 1;
	*status = NULL;
	if (task) {
		if (vd_buf_adds(&path, "/v1/tasks/") || vd_cli_url_escape(&path, task) ||
		    vd_buf_adds(&path, "/log"))
			goto out;
	} else if (vd_buf_addf(&path, "/v1/versions/%s", id)) {
		goto out;
	}
	if ((rc = vd_cli_get_json(&j, c, "wait", vd_buf_cstr(&path))))
		goto out;
	const char *want = task ? vd_cli_jstr(j, "latest") : id;
	json_array_foreach(json_object_get(j, "versions"), i, v) {
		if (!strcmp(vd_cli_jstr(v, "data_id"), want) || (!task && !*status)) {
			free(*status);
			*status = strdup(vd_cli_jstr(v, "status"));
		}
	}
	if (!*status) {
		fprintf(stderr, "vdfs wait: %s has no version yet\n", task ? task : id);
		rc = 2;
	}
out:
	json_decref(j);
	vd_buf_release(&path);
	return rc;
}

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_wait, .conn = &c, .argc = argc, .argv = argv };
	double timeout = -1;
	bool quiet = false;
	char id[VD_ID_SIZE], *status = NULL;
	const char *task = NULL;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'q') {
			quiet = true;
		} else if (opt == 't') {
			char *end;
			timeout = strtod(optarg, &end);
			if (*end || end == optarg || !(timeout >= 0)) {
				rc = vd_cli_usage(&vd_cli_cmd_wait, "--timeout wants seconds");
				goto out;
			}
		}
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind + 1 != argc) {
		rc = vd_cli_usage(&vd_cli_cmd_wait, optind == argc ? "wait for what?" : "one TASK or ID");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "wait")))
		goto out;
	/* A task name that is also hex is a task first: names are what
	 * people type, IDs what they paste. */
	struct vd_buf path = VD_BUF_INIT(1024);
	long st = 0;
	struct vd_buf body = VD_BUF_INIT(1 << 20);
	if (!vd_buf_adds(&path, "/v1/tasks/") && !vd_cli_url_escape(&path, argv[optind]) &&
	    !vd_buf_adds(&path, "/log") &&
	    !vd_cli_request(&body, &st, &c, "GET", vd_buf_cstr(&path), NULL, 0) && st == 200)
		task = argv[optind];
	vd_buf_release(&path);
	vd_buf_release(&body);
	if (!task && (rc = vd_cli_resolve_id(id, &c, "wait", argv[optind])))
		goto out;
	struct timespec t0, now, nap = { 0, 500 * 1000 * 1000 };
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		free(status);
		if ((rc = fetch(&status, &c, task, id))) {
			rc = rc == 2 ? 2 : 3;
			goto out;
		}
		int end = vd_cli_status_end(status);
		if (end) {
			rc = end > 0 ? 0 : 1;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		double waited = (double)(now.tv_sec - t0.tv_sec) +
				(double)(now.tv_nsec - t0.tv_nsec) / 1e9;
		if (timeout >= 0 && waited >= timeout) {
			if (!quiet)
				fprintf(stderr, "vdfs wait: still '%s' after %.0f s\n", status, timeout);
			rc = 2;
			goto out;
		}
		nanosleep(&nap, NULL);
	}
	if (!quiet)
		printf("%s\n", status);
out:
	free(status);
	vd_cli_conn_close(&c);
	return rc;
}
