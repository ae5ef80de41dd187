/*
 * cmd_pin.c - `vdfs pin ID [--task T]` and `vdfs unpin ID [--task T]`: keep
 * a version whatever retention (config `keep`) says, and refuse to delete
 * it (POST and DELETE /v1/tasks/<task>/versions/<id>/pin).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run_pin(int argc, char **argv);
static int run_unpin(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "task", 't', "TASK",
	  "the task whose version ID is (needed when several tasks hold the same "
	  "content)", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_pin = {
	.name = "pin",
	.args = "ID",
	.summary = "keep a version whatever retention says, and refuse to delete it",
	.description =
		"Pins version ID (a data ID or a unique prefix of at least 6 hex digits) "
		"of the task that holds it (--task when several do): gc's retention "
		"(config keep = N or 30d) never deletes it, and vdfs rm and rm -r in the "
		"mount refuse it (EPERM) until vdfs unpin. Pinning a pinned version "
		"changes nothing. Exit: 0 pinned; 1 failed; 2 no such version, or an ID "
		"that several tasks hold without --task.",
	.opts = opts,
	.conn = true,
	.run = run_pin,
};

const struct vd_cli_cmd vd_cli_cmd_unpin = {
	.name = "unpin",
	.args = "ID",
	.summary = "let retention and rm delete a pinned version again",
	.description =
		"Takes the pin off version ID (see vdfs pin): retention applies to it "
		"again and it may be deleted. Unpinning a version that is not pinned "
		"changes nothing. Exit: 0 unpinned; 1 failed; 2 no such version, or an "
		"ID that several tasks hold without --task.",
	.opts = opts,
	.conn = true,
	.run = run_unpin,
};

static int act(const struct vd_cli_cmd *cmd, int argc, char **argv, bool pin)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = cmd, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(4096), task = VD_BUF_INIT(1024);
	json_t *req = json_object(), *reply = NULL;
	const char *want = NULL;
	char id[VD_ID_SIZE];
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0)
		if (opt == 't')
			want = optarg;
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (argc - optind != 1) {
		rc = vd_cli_usage(cmd, optind == argc ? "which version?" : "one ID only");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, cmd->name)) ||
	    (rc = vd_cli_resolve_id(id, &c, cmd->name, argv[optind])) ||
	    (rc = vd_cli_version_task(&task, &c, cmd->name, id, want)))
		goto out;
	rc = 1;
	if (vd_buf_adds(&path, "/v1/tasks/") || vd_cli_url_escape(&path, vd_buf_cstr(&task)) ||
	    vd_buf_addf(&path, "/versions/%s/pin", id)) {
		fprintf(stderr, "vdfs %s: task name too long\n", cmd->name);
		goto out;
	}
	if ((rc = vd_cli_send_json(&reply, &c, cmd->name, pin ? "POST" : "DELETE",
				   vd_buf_cstr(&path), req)))
		goto out;
	printf("%s version %s of task %s\n",
	       json_is_true(json_object_get(reply, "pinned")) ? "pinned" : "unpinned", id,
	       vd_buf_cstr(&task));
out:
	json_decref(reply);
	json_decref(req);
	vd_buf_release(&path);
	vd_buf_release(&task);
	vd_cli_conn_close(&c);
	return rc;
}

static int run_pin(int argc, char **argv)
{
	return act(&vd_cli_cmd_pin, argc, argv, true);
}

static int run_unpin(int argc, char **argv)
{
	return act(&vd_cli_cmd_unpin, argc, argv, false);
}
