/*
 * cmd_rm.c - `vdfs rm ID [--task T]` deletes a dataset version (DELETE
 * /v1/tasks/<task>/versions/<id>), `vdfs rm --task T` a whole task (DELETE
 * /v1/tasks/<task>). Both are what `rm -r` of the directory in the mount
 * does (docs/lifecycle.md), except that a task goes all at once or not at
 * all. The bytes stay in the store until `vdfs gc`.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "task", 't', "TASK",
	  "the task whose version ID is (needed when several tasks hold the same "
	  "content); without ID, delete the task TASK itself", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_rm = {
	.name = "rm",
	.args = "ID | -t TASK",
	.summary = "delete a dataset version, or a whole task",
	.description =
		"With ID (a data ID or a unique prefix of at least 6 hex digits), deletes "
		"that version of the task that holds it, with its runs, results and logs, "
		"in one catalog change; latest moves to the newest version left, and "
		"lineage keeps a tombstone (vdfs lineage shows it as deleted). When the "
		"same content is a version of several tasks, --task says which. Without "
		"ID, --task TASK deletes the task: every version, its data names, code "
		"and config, or nothing at all when one version may not go.\n\n"
		"A version is refused while a run of it is queued or running (vdfs cancel "
		"it first) and while it is pinned (vdfs unpin it first). The space comes "
		"back at the next vdfs gc. Prints one line per version deleted.\n\n"
		"Exit: 0 deleted; 1 refused (the reason on stderr); 2 no such task or "
		"version, or an ID that several tasks hold without --task.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static void print_deleted(const json_t *reply, const char *task, bool whole)
{
	const json_t *d;
	size_t i, n = 0;
	json_array_foreach(json_object_get(reply, "deleted"), i, d) {
		printf("deleted version %s of task %s\n", vd_cli_jstr(d, "data_id"),
		       vd_cli_jstr(d, "task"));
		n++;
	}
	if (whole)
		printf("deleted task %s (%zu version%s)\n", task, n, n == 1 ? "" : "s");
}

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_rm, .conn = &c, .argc = argc, .argv = argv };
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
	if (argc - optind > 1 || (optind == argc && !want)) {
		rc = vd_cli_usage(&vd_cli_cmd_rm, optind == argc ? "which version (ID) or task "
					  "(--task TASK)?" : "one ID at most");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "rm")))
		goto out;
	if (optind < argc) {
		if ((rc = vd_cli_resolve_id(id, &c, "rm", argv[optind])) ||
		    (rc = vd_cli_version_task(&task, &c, "rm", id, want)))
			goto out;
	} else if (vd_buf_adds(&task, want)) {
		rc = 1;
		goto out;
	}
	rc = 1;
	if (vd_buf_adds(&path, "/v1/tasks/") || vd_cli_url_escape(&path, vd_buf_cstr(&task)) ||
	    (optind < argc && vd_buf_addf(&path, "/versions/%s", id))) {
		fprintf(stderr, "vdfs rm: task name too long\n");
		goto out;
	}
	if ((rc = vd_cli_send_json(&reply, &c, "rm", "DELETE", vd_buf_cstr(&path), req)))
		goto out;
	print_deleted(reply, vd_buf_cstr(&task), optind == argc);
out:
	json_decref(reply);
	json_decref(req);
	vd_buf_release(&path);
	vd_buf_release(&task);
	vd_cli_conn_close(&c);
	return rc;
}
