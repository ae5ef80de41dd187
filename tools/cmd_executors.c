/*
 * cmd_executors.c - `vdfs executors`: the registered executors, and
 * `vdfs executors revoke NAME`, which cuts one off (DELETE
 * /v1/executors/NAME): its token is refused from then on and the units it
 * held go back to the queue.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_executors(const json_t *st)
{
	const json_t *execs = json_object_get(st, "executors");
	struct vd_cli_table t = { 0 };

	if (!json_array_size(execs)) {
		printf("no executors\n");
		return;
	}
	t.ncols = 10;
	t.maxw[0] = 32;
	vd_cli_table_add(&t, "EXECUTOR");
	vd_cli_table_add(&t, "LEVEL");
	vd_cli_table_add(&t, "SLOTS");
	vd_cli_table_add(&t, "STATE");
	vd_cli_table_add(&t, "RUNNING");
	vd_cli_table_add(&t, "DONE");
	vd_cli_table_add(&t, "FAILED");
	vd_cli_table_add(&t, "INFRA");
	vd_cli_table_add(&t, "FLAGGED");
	vd_cli_table_add(&t, "QUARANTINED");
	for (size_t i = 0; i < json_array_size(execs); i++) {
		const json_t *o = json_array_get(execs, i);

		vd_cli_table_add(&t, vd_cli_jstr(o, "name"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "level"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "slots"));
		vd_cli_table_add(&t, vd_cli_jstr(o, "state"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "running"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "units_done"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "units_failed"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "infra_failed"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "flagged"));
		vd_cli_table_add(&t, json_is_true(json_object_get(o, "quarantined")) ? "yes" : "no");
	}
	vd_cli_table_print(&t);
}

static int revoke(const struct vd_cli_conn *c, const char *name)
{
	struct vd_buf path = VD_BUF_INIT(512), body = VD_BUF_INIT(1 << 16);
	long status = 0;
	int rc;

	if (vd_buf_addf(&path, "/v1/executors/%s", name)) {
		fprintf(stderr, "vdfs executors: name too long\n");
		vd_buf_release(&path);
		return 2;
	}
	rc = vd_cli_request(&body, &status, c, "DELETE", path.data, NULL, 0);
	if (!rc) {
		json_t *j = json_loadb(body.data ? body.data : "", body.len, 0, NULL);

		if (status == 200) {
			printf("executor %s revoked; %lld of its units back in the queue\n",
			       name, vd_cli_jint(j, "units_requeued"));
		} else {
			const char *e = json_string_value(json_object_get(j, "error"));

			fprintf(stderr, "vdfs executors revoke: %s\n",
				e ? e : "the daemon gave no reason");
			rc = status == 404 || status == 400 ? 2 : 1;
		}
		json_decref(j);
	}
	vd_buf_release(&path);
	vd_buf_release(&body);
	return rc;
}

static int run(int argc, char **argv);

const struct vd_cli_cmd vd_cli_cmd_executors = {
	.name = "executors",
	.args = "[revoke NAME]",
	.summary = "the executors' state; revoke cuts one off",
	.description =
		"One row per registered executor: the highest function LEVEL it serves, "
		"its SLOTS (units at once), its STATE (idle, busy, gone, revoked), the "
		"units it is RUNNING, has DONE and FAILED (the function's failures), INFRA "
		"(leases it lost, inputs it could not fetch), FLAGGED (replicated results "
		"it disagreed on) and whether it is QUARANTINED (given no work for a while "
		"after five failures in a row it was to blame for).\n\n"
		"revoke NAME cuts executor NAME off: its token is refused from then on and "
		"the units it held go back to the queue.",
	.opts = NULL,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_executors, .conn = &c, .argc = argc, .argv = argv };
	json_t *st = NULL;
	int opt, rc;

	while ((opt = vd_cli_opt(&o)) > 0)
		;   /* no options of its own: vd_cli_opt refuses any other */
	if (opt < 0)
		return o.exit;
	bool rev = optind < argc && !strcmp(argv[optind], "revoke");
	if (rev && optind + 2 != argc)
		return vd_cli_usage(&vd_cli_cmd_executors, "revoke wants one NAME");
	if (!rev && optind != argc)
		return vd_cli_usage(&vd_cli_cmd_executors, "the only action is revoke NAME");
	if ((rc = vd_cli_conn_open(&c, "executors")))
		goto out;
	if (rev) {
		rc = revoke(&c, argv[optind + 1]);
	} else {
		rc = vd_cli_get_json(&st, &c, "executors", "/v1/status");
		if (!rc)
			print_executors(st);
	}
out:
	json_decref(st);
	vd_cli_conn_close(&c);
	return rc;
}
