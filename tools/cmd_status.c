/*
 * cmd_status.c - `vdfs status`: the daemon's GET /v1/status as tables of
 * tasks (versions and runs by state) and executors.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 20

/* Under the tasks table: each run under way, with a bar on a terminal, and
 * each tree in data/ waiting to settle. */
static void print_active(const json_t *tasks)
{
	bool tty = isatty(STDOUT_FILENO);
	size_t i, j;
	const json_t *o, *r;
	json_array_foreach(tasks, i, o) {
		json_array_foreach(json_object_get(o, "active"), j, r) {
			long long units = vd_cli_jint(r, "units"), done = vd_cli_jint(r, "done");
			printf("  %s/%.12s code %.8s: ", vd_cli_jstr(o, "name"), vd_cli_jstr(r, "data_id"),
			       vd_cli_jstr(r, "code_id"));
			if (tty && units > 0) {
				long long fill = done * BAR_WIDTH / units;
				putchar('[');
				for (long long k = 0; k < BAR_WIDTH; k++)
					putchar(k < fill ? '#' : '.');
				printf("] ");
			}
			printf("%lld/%lld units done, %lld running, %lld queued", done, units,
			       vd_cli_jint(r, "running"), vd_cli_jint(r, "queued"));
			const json_t *eta = json_object_get(r, "eta_s");
			if (json_is_true(json_object_get(r, "combining")))
				printf(", combining results");
			else if (json_is_number(eta))
				printf(", about %.0f s left", json_number_value(eta));
			printf("\n");
		}
		json_array_foreach(json_object_get(o, "settling"), j, r) {
			char size[32];
			long long in = vd_cli_jint(r, "seals_in_ms");
			vd_cli_human_bytes(size, (unsigned long long)vd_cli_jint(r, "bytes"));
			printf("  %s/data/%s: settling: %lld files, %s, ", vd_cli_jstr(o, "name"),
			       vd_cli_jstr(r, "name"), vd_cli_jint(r, "files"), size);
			if (in < 0)
				printf("seals once no file in it is open and it is quiet\n");
			else
				printf("seals in %.1f s unless it changes\n", (double)in / 1000.0);
		}
	}
}

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
		t.maxw[0] = 40;
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
		print_active(tasks);
	}
	printf("\n");
	if (!json_array_size(execs)) {
		printf("no executors\n");
		return;
	}
	t.ncols = 7;
	memset(t.maxw, 0, sizeof t.maxw);
	t.maxw[0] = 32;
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

static int run(int argc, char **argv);

const struct vd_cli_cmd vd_cli_cmd_status = {
	.name = "status",
	.args = "",
	.summary = "tasks, runs and executors of a running vdfsd",
	.description =
		"Prints the daemon's uptime and how many units are pending (waiting for an "
		"executor) and leased (running on one), then a table of tasks and one of "
		"executors.\n\n"
		"Tasks: VERSIONS is how many dataset versions the task holds; QUEUED, "
		"RUNNING, DONE and FAILED count its runs (one run is one version under one "
		"code version and config) in each state. Under the table, one line per "
		"run under way: its units done, running (leased to an executor) and "
		"queued, with a bar on a terminal and, once units are done, about how "
		"long it has left; and one line per tree in data/ waiting to settle: its "
		"files and bytes so far and when it will be sealed.\n\n"
		"Executors: LEVEL is the highest function level it serves, SLOTS how many "
		"units it runs at once, STATE what the daemon last heard of it, LAST SEEN "
		"how long ago that was, DONE and FAILED the units it finished and failed.\n\n"
		"On a terminal, names wider than the table allows are shortened with an "
		"ellipsis; piped, every name is printed whole.",
	.opts = NULL,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_status, .conn = &c, .argc = argc, .argv = argv };
	json_t *st = NULL;
	int opt, rc;

	while ((opt = vd_cli_opt(&o)) > 0)
		;   /* no options of its own: vd_cli_opt refuses any other */
	if (opt < 0)
		return o.exit;
	if (optind < argc)
		return vd_cli_usage(&vd_cli_cmd_status, "takes no arguments");
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
