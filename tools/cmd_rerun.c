/*
 * cmd_rerun.c - `vdfs rerun TASK [ID] [--force]` and `vdfs cancel TASK [ID]`:
 * act on a version's run of the task's current code (POST
 * /v1/tasks/<task>/rerun and /cancel). ID, a data ID or a unique prefix of
 * one, defaults to the task's latest version.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run_rerun(int argc, char **argv);
static int run_cancel(int argc, char **argv);

static const struct vd_doc_opt rerun_opts[] = {
	{ "force", 'f', NULL, "compute every unit again, even those memo has a result for", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static const struct vd_doc_opt cancel_opts[] = {
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_rerun = {
	.name = "rerun",
	.args = "TASK [ID]",
	.summary = "run a version again with the task's current code and config",
	.description =
		"Queues a run of version ID (a data ID or a unique prefix of at least 6 "
		"hex digits; default: the task's latest) with the task's current code "
		"and config. Units memo already has a result for (same code, same "
		"config, same unit) are taken from it unless --force. A run of it that is "
		"under way is replaced; results its executors send late are refused. "
		"Prints the version's ID. Use it after a run failed (a fixed input "
		"elsewhere, an executor that lied), or with rerun = none in the config. "
		"Exit: 0 queued, 1 refused (the reason on stderr), 2 no such task, "
		"function or version.",
	.opts = rerun_opts,
	.conn = true,
	.run = run_rerun,
};

const struct vd_cli_cmd vd_cli_cmd_cancel = {
	.name = "cancel",
	.args = "TASK [ID]",
	.summary = "stop the queued or running run of a version",
	.description =
		"Ends the run of the task's current code on version ID (default: latest) "
		"as failed, with `cancelled by the operator` in its status and log; "
		"executors working on it are told at their next heartbeat. `vdfs rerun` "
		"starts it again. Exit: 0 cancelled, 1 nothing to cancel or refused, 2 "
		"no such task or version.",
	.opts = cancel_opts,
	.conn = true,
	.run = run_cancel,
};

/* POST /v1/tasks/<task>/<what> with {"data_id"?, "force"?}. */
static int act(const struct vd_cli_cmd *cmd, int argc, char **argv, const char *what)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = cmd, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(1024);
	json_t *req = json_object(), *reply = NULL;
	char id[VD_ID_SIZE];
	bool force = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0)
		if (opt == 'f')
			force = true;
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind >= argc || argc - optind > 2) {
		rc = vd_cli_usage(cmd, optind >= argc ? "which task?" : "a task and at most one ID");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, cmd->name)))
		goto out;
	if (argc - optind == 2) {
		if ((rc = vd_cli_resolve_id(id, &c, cmd->name, argv[optind + 1])))
			goto out;
		json_object_set_new(req, "data_id", json_string(id));
	}
	if (force)
		json_object_set_new(req, "force", json_true());
	rc = 1;
	if (vd_buf_adds(&path, "/v1/tasks/") || vd_cli_url_escape(&path, argv[optind]) ||
	    vd_buf_addf(&path, "/%s", what))
		goto out;
	if ((rc = vd_cli_send_json(&reply, &c, cmd->name, "POST", vd_buf_cstr(&path), req)))
		goto out;
	printf("%s\n", vd_cli_jstr(reply, "data_id"));
out:
	json_decref(reply);
	json_decref(req);
	vd_buf_release(&path);
	vd_cli_conn_close(&c);
	return rc;
}

static int run_rerun(int argc, char **argv)
{
	return act(&vd_cli_cmd_rerun, argc, argv, "rerun");
}

static int run_cancel(int argc, char **argv)
{
	return act(&vd_cli_cmd_cancel, argc, argv, "cancel");
}
