/*
 * cmd_status.c - `vdfs status`: the daemon's GET /v1/status as tables of
 * tasks (versions and runs by state) and executors.
 */
#include <stdio.h>

#include "cli.h"

static void print_status(const json_t *st)
{
	const json_t *tasks = json_object_get(st, "tasks");
	const json_t *execs = json_object_get(st, "executors");
	const json_t *units = json_object_get(st, "units");
	struct vd_cli_table t = { 0 };
	size_t i;

	printf("uptime %lld s; units: %lld pending, %lld leased\n\n",
	       vd_cli_jint(st, "uptime_s"), vd_cli_jint(units, "pending"), vd_cli_jint(units, "leased"));

	if (!json_array_size(tasks)) {
		printf("no tasks\n");
	} else {
		t.ncols = 6;
		vd_cli_table_add(&t, "TASK");
		vd_cli_table_add(&t, "VERSIONS");
		vd_cli_table_add(&t, "QUEUED");
		vd_cli_table_add(&t, "RUNNING");
		vd_cli_table_add(&t, "DONE");
		vd_cli_table_add(&t, "FAILED");
		for (i = 0; i < json_array_size(tasks); i++) {
			const json_t *o = json_array_get(tasks, i);
			const json_t *runs = json_object_get(o, "runs");

			vd_cli_table_add(&t, vd_cli_jstr(o, "name"));
			vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "versions"));
			vd_cli_table_addf(&t, "%lld", vd_cli_jint(runs, "queued"));
			vd_cli_table_addf(&t, "%lld", vd_cli_jint(runs, "running"));
			vd_cli_table_addf(&t, "%lld", vd_cli_jint(runs, "done"));
			vd_cli_table_addf(&t, "%lld", vd_cli_jint(runs, "failed"));
		}
		vd_cli_table_print(&t);
	}
	printf("\n");
	if (!json_array_size(execs)) {
		printf("no executors\n");
		return;
	}
	t.ncols = 7;
	vd_cli_table_add(&t, "EXECUTOR");
	vd_cli_table_add(&t, "LEVEL");
	vd_cli_table_add(&t, "SLOTS");
	vd_cli_table_add(&t, "STATE");
	vd_cli_table_add(&t, "LAST SEEN");
	vd_cli_table_add(&t, "DONE");
	vd_cli_table_add(&t, "FAILED");
	for (i = 0; i < json_array_size(execs); i++) {
		const json_t *o = json_array_get(execs, i);
		long long ms = vd_cli_jint(o, "last_seen_ms");

		vd_cli_table_add(&t, vd_cli_jstr(o, "name"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "level"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "slots"));
		vd_cli_table_add(&t, vd_cli_jstr(o, "state"));
		if (ms < 0)
			vd_cli_table_add(&t, "never");
		else if (ms < 10000)
			vd_cli_table_addf(&t, "%.1f s ago", (double)ms / 1000.0);
		else
			vd_cli_table_addf(&t, "%lld s ago", ms / 1000);
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "units_done"));
		vd_cli_table_addf(&t, "%lld", vd_cli_jint(o, "units_failed"));
	}
	vd_cli_table_print(&t);
}

int vd_cli_cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		VD_CLI_CONN_OPTIONS,
		{ NULL, 0, NULL, 0 },
	};
	struct vd_cli_conn c = { 0 };
	json_t *st = NULL;
	int opt, rc;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (!vd_cli_conn_option(&c, opt, optarg)) {
			fprintf(stderr, "vdfs status: bad option (see vdfs --help)\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vdfs status: unexpected argument %s\n", argv[optind]);
		return 2;
	}
	if ((rc = vd_cli_conn_open(&c, "status")))
		goto out;
	rc = vd_cli_get_json(&st, &c, "status", "/v1/status");
	if (!rc)
		print_status(st);
out:
	json_decref(st);
	vd_cli_conn_close(&c);
	return rc;
}
