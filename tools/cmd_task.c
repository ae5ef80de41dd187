/*
 * cmd_task.c - `vdfs task create T [--function FILE] [-c KEY=VALUE]...
 * [--config FILE]` and `vdfs tasks`: making a task and listing them from
 * any machine (docs/protocol.md, "Users and tokens" and "Tasks over HTTP").
 *
 * task create is POST /v1/tasks (the task is the caller's), then PUT
 * /v1/tasks/T/function with the file's bytes, then PUT /v1/tasks/T/config
 * with the -c pairs as `key = value` lines (or the --config file's text).
 * Should the function or the config be refused (an empty function, a bad
 * config line), the task just made is deleted again (DELETE /v1/tasks/T),
 * so that the command either makes the whole task or nothing, and can
 * simply be run again once fixed. It prints `NAME  CODE-ID` ("-" without
 * a function).
 *
 * tasks is GET /v1/tasks as a table: NAME, OWNER ("-" for tasks made
 * through the mount or with STATE/token) and LATEST (the latest version's
 * data ID, 12 digits unless --long).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define SHORT_ID 12
/* The daemon's caps: a function of up to 64 MiB, a config of 1 MiB. */
#define FUNCTION_MAX ((size_t)64 << 20)
#define CONFIG_MAX ((size_t)1 << 20)

static int run_task(int argc, char **argv);
static int run_tasks(int argc, char **argv);

enum { OPT_CONFIG_FILE = 0x3101 };

static const struct vd_doc_opt task_opts[] = {
	{ "function", 'f', "FILE",
	  "the function: FILE's bytes become the task's code (a script with a "
	  "shebang, or a binary), as cp FILE tasks/T/function does", VD_DOC_SHORT },
	{ "set", 'c', "KEY=VALUE",
	  "a config line, key = value (vdfs help config lists the keys); may be "
	  "given several times", VD_DOC_SHORT },
	{ "config", OPT_CONFIG_FILE, "FILE",
	  "the config: FILE's text, as written to tasks/T/config (instead of -c)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_task = {
	.name = "task",
	.args = "create T [-f FILE] [-c KEY=VALUE]...",
	.summary = "make a task, with its function and config, from any machine",
	.description =
		"create T makes task T, owned by the caller (a submitter's task is its "
		"own to change; operators may change any), puts FILE as its function "
		"and the -c lines (or the --config file) as its config: what mkdir "
		"tasks/T, cp FILE tasks/T/function and writing tasks/T/config do in the "
		"mount. Each config line is checked by the daemon; when the function or "
		"the config is refused, the task is deleted again and nothing is left "
		"behind. Prints the task's name and its code ID (- without a "
		"function).\n\n"
		" vdfs task create wc --function wc.sh -c reduce=sum -c format=lines\n\n"
		"Exit: 0 done; 1 refused or failed (a task of that name exists, a bad "
		"config line: the reason on stderr); 2 a usage error.",
	.opts = task_opts,
	.conn = true,
	.run = run_task,
};

static const struct vd_doc_opt tasks_opts[] = {
	{ "long", 'l', NULL, "print data IDs whole (32 digits), not their first 12", VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_tasks = {
	.name = "tasks",
	.args = "",
	.summary = "list every task with its owner and latest version",
	.description =
		"One row per task: its name, its owner (the user who made it with vdfs "
		"task create, - for one made through the mount or with the operator "
		"token) and its latest version's data ID (- when it has none). Any "
		"user may list them.\n\n"
		"Exit: 0 done; 1 failed.",
	.opts = tasks_opts,
	.conn = true,
	.run = run_tasks,
};

/* One request on s, its reply's "error" printed when the status is not
 * 200. Exit code: 0; 2 for 400, 403 and 404 (the user's to fix); 1
 * otherwise. *reply: the JSON answer of a 200 (may be NULL). */
static int ask(json_t **reply, struct vd_cli_session *s, const char *what, const char *method,
	       const char *path, const char *ctype, const void *body, size_t len)
{
	struct vd_buf out = VD_BUF_INIT((size_t)1 << 20);
	long st;
	int rc;
	if (reply)
		*reply = NULL;
	if ((rc = vd_cli_session_request(&out, &st, s, method, path, ctype, body, len, false)))
		goto out;
	if (st != 200) {
		char why[1024];
		vd_cli_reply_error(why, sizeof why, &out);
		fprintf(stderr, "vdfs task: %s: %s\n", what, why);
		rc = st == 400 || st == 403 || st == 404 ? 2 : 1;
		goto out;
	}
	if (reply)
		*reply = json_loadb(vd_buf_cstr(&out), out.len, 0, NULL);
out:
	vd_buf_release(&out);
	return rc;
}

/* "-c key=value" as a config line "key = value\n", appended to cfg.
 * Exit code. */
static int add_pair(struct vd_buf *cfg, const char *kv)
{
	const char *eq = strchr(kv, '=');
	size_t kb = 0, ke, vb, ve = strlen(kv);
	if (!eq)
		return vd_cli_usage(&vd_cli_cmd_task, "-c wants KEY=VALUE");
	while (kv + kb < eq && (kv[kb] == ' ' || kv[kb] == '\t'))
		kb++;
	ke = (size_t)(eq - kv);
	while (ke > kb && (kv[ke - 1] == ' ' || kv[ke - 1] == '\t'))
		ke--;
	for (vb = (size_t)(eq - kv) + 1; kv[vb] == ' ' || kv[vb] == '\t'; vb++)
		;
	while (ve > vb && (kv[ve - 1] == ' ' || kv[ve - 1] == '\t'))
		ve--;
	if (ke == kb)
		return vd_cli_usage(&vd_cli_cmd_task, "-c wants KEY=VALUE, with a key");
	if (strchr(kv, '\n'))
		return vd_cli_usage(&vd_cli_cmd_task, "-c takes one line");
	if (vd_buf_addf(cfg, "%.*s = %.*s\n", (int)(ke - kb), kv + kb, (int)(ve - vb), kv + vb)) {
		fprintf(stderr, "vdfs task: the config is too long\n");
		return 1;
	}
	return 0;
}

static int run_task(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_task, .conn = &c, .argc = argc, .argv = argv };
	struct vd_cli_session s = { 0 };
	struct vd_buf cfg = VD_BUF_INIT(CONFIG_MAX), code = VD_BUF_INIT(FUNCTION_MAX),
		      tpath = VD_BUF_INIT(8192), path = VD_BUF_INIT(8192);
	const char *function = NULL, *config_file = NULL, *task;
	json_t *req = NULL, *reply = NULL;
	char *text = NULL;
	bool pairs = false, made = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'f') {
			function = optarg;
		} else if (opt == OPT_CONFIG_FILE) {
			config_file = optarg;
		} else if (opt == 'c') {
			pairs = true;
			if ((rc = add_pair(&cfg, optarg)))
				goto out;
		}
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	const char *verb = optind < argc ? argv[optind] : NULL;
	if (!verb) {
		rc = vd_cli_usage(&vd_cli_cmd_task, "which subcommand? (create)");
		goto out;
	}
	if (strcmp(verb, "create")) {
		fprintf(stderr, "vdfs task: unknown subcommand '%s' (vdfs task create T; see vdfs "
			"help task)\n", verb);
		rc = 2;
		goto out;
	}
	if (argc - optind != 2) {
		rc = vd_cli_usage(&vd_cli_cmd_task, "create takes one task name");
		goto out;
	}
	if (pairs && config_file) {
		rc = vd_cli_usage(&vd_cli_cmd_task, "-c and --config: give one of them");
		goto out;
	}
	task = argv[optind + 1];
	/* Read what is to be sent first: a missing file makes no task. */
	rc = 1;
	int r;
	if (function && (r = vd_read_file(&code, function))) {
		fprintf(stderr, "vdfs task: %s: %s\n", function,
			r == -EFBIG ? "larger than a function may be (64 MiB)" : strerror(-r));
		goto out;
	}
	if (config_file && (r = vd_read_file(&cfg, config_file))) {
		fprintf(stderr, "vdfs task: %s: %s\n", config_file,
			r == -EFBIG ? "larger than a config may be (1 MiB)" : strerror(-r));
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "task")))
		goto out;
	rc = 1;
	if (vd_cli_session_open(&s, &c))
		goto out;
	if (vd_buf_adds(&tpath, "/v1/tasks/") || vd_cli_url_escape(&tpath, task)) {
		rc = vd_cli_usage(&vd_cli_cmd_task, "the task name is too long");
		goto out;
	}
	if (!(req = json_pack("{s:s}", "name", task)) || !(text = json_dumps(req, JSON_COMPACT))) {
		fprintf(stderr, "vdfs task: out of memory\n");
		goto out;
	}
	if ((rc = ask(NULL, &s, task, "POST", "/v1/tasks", NULL, text, strlen(text))))
		goto out;
	made = true;
	const char *code_id = "-";
	if (function) {
		vd_buf_addf(&path, "%s/function", vd_buf_cstr(&tpath));
		if ((rc = ask(&reply, &s, function, "PUT", vd_buf_cstr(&path),
			      "application/octet-stream", code.data ? code.data : "", code.len)))
			goto out;
		code_id = vd_cli_jstr(reply, "code_id");
	}
	if (pairs || config_file) {
		vd_buf_reset(&path);
		vd_buf_addf(&path, "%s/config", vd_buf_cstr(&tpath));
		if ((rc = ask(NULL, &s, config_file ? config_file : "the config", "PUT",
			      vd_buf_cstr(&path), "text/plain", cfg.data ? cfg.data : "", cfg.len)))
			goto out;
	}
	made = false;
	printf("%s  %s\n", task, *code_id ? code_id : "-");
	rc = 0;
out:
	if (made) {
		/* Half a task is worse than none: the command is to be run
		 * again once what was refused is fixed. */
		if (ask(NULL, &s, "deleting the task again", "DELETE", vd_buf_cstr(&tpath), NULL,
			NULL, 0) == 0)
			fprintf(stderr, "vdfs task: task %s was not made\n", task);
		else
			fprintf(stderr, "vdfs task: task %s was made, but without its function or "
				"config; vdfs rm --task %s deletes it\n", task, task);
	}
	free(text);
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&cfg);
	vd_buf_release(&code);
	vd_buf_release(&tpath);
	vd_buf_release(&path);
	vd_cli_session_close(&s);
	vd_cli_conn_close(&c);
	return rc;
}

static int run_tasks(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_tasks, .conn = &c, .argc = argc, .argv = argv };
	struct vd_cli_table t = { .ncols = 3, .maxw = { [0] = 40, [1] = 24 } };
	json_t *reply = NULL, *x;
	bool full = false;
	size_t i;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0)
		if (opt == 'l')
			full = true;
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind != argc) {
		rc = vd_cli_usage(&vd_cli_cmd_tasks, "it takes no arguments");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "tasks")) || (rc = vd_cli_get_json(&reply, &c, "tasks", "/v1/tasks")))
		goto out;
	vd_cli_table_add(&t, "NAME");
	vd_cli_table_add(&t, "OWNER");
	vd_cli_table_add(&t, "LATEST");
	json_array_foreach(json_object_get(reply, "tasks"), i, x) {
		const char *owner = vd_cli_jstr(x, "owner"), *latest = vd_cli_jstr(x, "latest");
		vd_cli_table_add(&t, vd_cli_jstr(x, "name"));
		vd_cli_table_add(&t, *owner ? owner : "-");
		if (*latest)
			vd_cli_table_addf(&t, "%.*s", full ? (int)strlen(latest) : SHORT_ID, latest);
		else
			vd_cli_table_add(&t, "-");
	}
	vd_cli_table_print(&t);
out:
	json_decref(reply);
	vd_cli_conn_close(&c);
	return rc;
}
