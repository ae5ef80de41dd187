/*
 * cmd_log.c - `vdfs log TASK`: a task's versions, newest first (GET
 * /v1/tasks/<task>/log), with name, local time, code ID, run duration,
 * logical and newly stored bytes, units and status.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define SHORT_ID 12

static void add_time(struct vd_cli_table *t, long long ms)
{
	char s[32];
	vd_cli_time(s, ms);
	vd_cli_table_add(t, s);
}

static void add_duration(struct vd_cli_table *t, const json_t *d)
{
	char s[32];
	vd_cli_duration(s, json_is_integer(d) ? (long long)json_integer_value(d) : -1);
	vd_cli_table_add(t, s);
}

static void add_bytes(struct vd_cli_table *t, const json_t *v, bool raw)
{
	char s[32];
	if (!json_is_integer(v)) {
		vd_cli_table_add(t, "-");
	} else if (raw) {
		vd_cli_table_addf(t, "%lld", (long long)json_integer_value(v));
	} else {
		vd_cli_human_bytes(s, (unsigned long long)json_integer_value(v));
		vd_cli_table_add(t, s);
	}
}

static void add_id(struct vd_cli_table *t, const char *id, bool full)
{
	if (!*id)
		vd_cli_table_add(t, "-");
	else
		vd_cli_table_addf(t, "%.*s", full ? (int)strlen(id) : SHORT_ID, id);
}

static void print_log(const json_t *log, bool full, bool raw)
{
	const json_t *vs = json_object_get(log, "versions"), *v;
	struct vd_cli_table t = { .ncols = 9, .maxw = { [1] = 40 } };
	size_t i;

	if (!json_array_size(vs)) {
		printf("task %s has no versions\n", vd_cli_jstr(log, "task"));
		return;
	}
	const char *head[] = { "ID", "NAME", "TIME", "CODE", "DURATION", "LOGICAL", "STORED",
			       "UNITS", "STATUS" };
	for (i = 0; i < 9; i++)
		vd_cli_table_add(&t, head[i]);
	json_array_foreach(vs, i, v) {
		const json_t *units = json_object_get(v, "units");
		add_id(&t, vd_cli_jstr(v, "data_id"), full);
		vd_cli_table_add(&t, *vd_cli_jstr(v, "name") ? vd_cli_jstr(v, "name") : "-");
		add_time(&t, vd_cli_jint(v, "time"));
		add_id(&t, vd_cli_jstr(v, "code_id"), full);
		add_duration(&t, json_object_get(v, "duration_ms"));
		add_bytes(&t, json_object_get(v, "size"), raw);
		add_bytes(&t, json_object_get(v, "stored"), raw);
		if (json_is_integer(units))
			vd_cli_table_addf(&t, "%lld", (long long)json_integer_value(units));
		else
			vd_cli_table_add(&t, "-");
		vd_cli_table_add(&t, *vd_cli_jstr(v, "status") ? vd_cli_jstr(v, "status") : "-");
	}
	vd_cli_table_print(&t);
}

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "long", 'l', NULL, "print IDs whole (32 hex digits) instead of their first 12",
	  VD_DOC_SHORT },
	{ "bytes", 'b', NULL, "print sizes as exact byte counts instead of KiB, MiB, ...",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_log = {
	.name = "log",
	.args = "TASK",
	.summary = "a task's versions, newest first",
	.description =
		"One row per dataset version of TASK: its data ID (ID), the name it was "
		"submitted under (NAME), when it was submitted (TIME, local time), the code ID "
		"of its latest run (CODE), how long that run took (DURATION), its size "
		"(LOGICAL), what sealing it added to the store (STORED: less when chunks "
		"were shared with earlier versions), how many units it was cut into "
		"(UNITS) and the run's state (STATUS). A dash means there is none yet.\n\n"
		"On a terminal, names wider than the table allows are shortened with an "
		"ellipsis; piped, every cell is printed whole.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_log, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(4096);
	json_t *log = NULL;
	bool full = false, raw = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'l')
			full = true;
		else if (opt == 'b')
			raw = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind + 1 != argc) {
		rc = vd_cli_usage(&vd_cli_cmd_log, optind == argc ? "which task?" : "one task only");
		goto out;
	}
	if (vd_buf_adds(&path, "/v1/tasks/") || vd_cli_url_escape(&path, argv[optind]) ||
	    vd_buf_adds(&path, "/log")) {
		fprintf(stderr, "vdfs log: task name too long\n");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "log")))
		goto out;
	rc = vd_cli_get_json(&log, &c, "log", vd_buf_cstr(&path));
	if (!rc)
		print_log(log, full, raw);
out:
	json_decref(log);
	vd_buf_release(&path);
	vd_cli_conn_close(&c);
	return rc;
}
