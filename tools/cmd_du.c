/*
 * cmd_du.c - `vdfs du [TASK]`: logical bytes (what the versions hold)
 * against stored bytes (what sealing them added to the store), per task
 * and for the store, with the dedup ratio logical / stored (GET /v1/du).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void add_bytes(struct vd_cli_table *t, long long n, bool raw)
{
	char s[32];
	if (raw) {
		vd_cli_table_addf(t, "%lld", n);
	} else {
		vd_cli_human_bytes(s, (unsigned long long)(n < 0 ? 0 : n));
		vd_cli_table_add(t, s);
	}
}

static void add_ratio(struct vd_cli_table *t, long long logical, long long stored)
{
	if (stored > 0)
		vd_cli_table_addf(t, "%.1fx", (double)logical / (double)stored);
	else if (logical > 0)
		vd_cli_table_add(t, "all shared");   /* every byte was stored before */
	else
		vd_cli_table_add(t, "-");
}

static void add_row(struct vd_cli_table *t, const char *name, long long versions,
		    long long logical, long long stored, bool raw)
{
	vd_cli_table_add(t, name);
	vd_cli_table_addf(t, "%lld", versions);
	add_bytes(t, logical, raw);
	add_bytes(t, stored, raw);
	add_ratio(t, logical, stored);
}

/* Exit code: 0, or 2 when `only` names no task. */
static int print_du(const json_t *du, const char *only, bool raw)
{
	const json_t *tasks = json_object_get(du, "tasks"), *store = json_object_get(du, "store"), *o;
	struct vd_cli_table t = { .ncols = 5, .maxw = { [0] = 40 } };
	long long versions = 0, logical = 0, stored = 0;
	size_t i, shown = 0;

	vd_cli_table_add(&t, "TASK");
	vd_cli_table_add(&t, "VERSIONS");
	vd_cli_table_add(&t, "LOGICAL");
	vd_cli_table_add(&t, "STORED");
	vd_cli_table_add(&t, "DEDUP");
	json_array_foreach(tasks, i, o) {
		if (only && strcmp(vd_cli_jstr(o, "name"), only))
			continue;
		add_row(&t, vd_cli_jstr(o, "name"), vd_cli_jint(o, "versions"), vd_cli_jint(o, "logical"),
			vd_cli_jint(o, "stored"), raw);
		versions += vd_cli_jint(o, "versions");
		logical += vd_cli_jint(o, "logical");
		stored += vd_cli_jint(o, "stored");
		shown++;
	}
	if (only && !shown) {
		vd_strv_release(&t.cells);
		fprintf(stderr, "vdfs du: no task '%s'\n", only);
		return 2;
	}
	if (!only) {
		add_row(&t, "(all)", versions, vd_cli_jint(store, "logical"), vd_cli_jint(store, "stored"),
			raw);
	}
	vd_cli_table_print(&t);
	if (!only) {
		char s[32];
		long long pb = vd_cli_jint(store, "pack_bytes");
		if (raw)
			snprintf(s, sizeof s, "%lld", pb);
		else
			vd_cli_human_bytes(s, (unsigned long long)(pb < 0 ? 0 : pb));
		printf("\nstore: %lld pack files, %s on disk (results included)\n",
		       vd_cli_jint(store, "packs"), s);
		/* A daemon from before gc does not say; then neither do we. */
		const json_t *rec = json_object_get(store, "reclaimable");
		if (json_is_integer(rec)) {
			long long rb = (long long)json_integer_value(rec);
			if (raw)
				snprintf(s, sizeof s, "%lld", rb);
			else
				vd_cli_human_bytes(s, (unsigned long long)(rb < 0 ? 0 : rb));
			printf("reclaimable: %s (what vdfs gc would free now)\n", s);
		}
	}
	return 0;
}

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "bytes", 'b', NULL, "print sizes as exact byte counts instead of KiB, MiB, ...",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_du = {
	.name = "du",
	.args = "[TASK]",
	.summary = "logical against stored bytes, and the dedup ratio",
	.description =
		"One row per task (or only TASK's): how many versions it holds, their "
		"LOGICAL size (what reading them all would return), the bytes sealing them "
		"added to the store (STORED: a chunk already stored is counted once, by "
		"the first version that brought it) and DEDUP, LOGICAL / STORED. Without "
		"TASK a last row (all) covers the whole store, and a line gives the pack "
		"files and their size on disk, results included, and the bytes vdfs gc "
		"would free now (reclaimable: chunks of deleted versions and results, "
		"and the dead parts of packs). \"all shared\" means every byte was "
		"stored before.",
	.opts = opts,
	.conn = true,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_du, .conn = &c, .argc = argc, .argv = argv };
	json_t *du = NULL;
	bool raw = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'b')
			raw = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind + 1 < argc) {
		rc = vd_cli_usage(&vd_cli_cmd_du, "one task at most");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "du")))
		goto out;
	rc = vd_cli_get_json(&du, &c, "du", "/v1/du");
	if (!rc)
		rc = print_du(du, optind < argc ? argv[optind] : NULL, raw);
out:
	json_decref(du);
	vd_cli_conn_close(&c);
	return rc;
}
