/*
 * cmd_du.c - `vdfs du [TASK]`: per task and for the store, the logical
 * bytes (what the versions hold), what sealing them added to the store
 * after dedup (raw bytes of the new chunks) and after compression (what
 * those take in the packs), with the ratios (GET /v1/du); then the whole
 * index (every distinct chunk, results included) and the pack files.
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
		    long long logical, long long stored, long long compressed, bool raw)
{
	vd_cli_table_add(t, name);
	vd_cli_table_addf(t, "%lld", versions);
	add_bytes(t, logical, raw);
	add_bytes(t, stored, raw);
	add_bytes(t, compressed, raw);
	add_ratio(t, logical, stored);
	add_ratio(t, logical, compressed);
}

/* After compression; a daemon from before compression does not say, and
 * stored everything raw. */
static long long compressed_of(const json_t *o)
{
	const json_t *c = json_object_get(o, "compressed");
	return json_is_integer(c) ? (long long)json_integer_value(c) : vd_cli_jint(o, "stored");
}

static void print_bytes(char s[32], long long n, bool raw)
{
	if (raw)
		snprintf(s, 32, "%lld", n);
	else
		vd_cli_human_bytes(s, (unsigned long long)(n < 0 ? 0 : n));
}

/* Exit code: 0, or 2 when `only` names no task. */
static int print_du(const json_t *du, const char *only, bool raw)
{
	const json_t *tasks = json_object_get(du, "tasks"), *store = json_object_get(du, "store"), *o;
	struct vd_cli_table t = { .ncols = 7, .maxw = { [0] = 40 } };
	long long versions = 0, logical = 0, stored = 0, compressed = 0;
	size_t i, shown = 0;

	vd_cli_table_add(&t, "TASK");
	vd_cli_table_add(&t, "VERSIONS");
	vd_cli_table_add(&t, "LOGICAL");
	vd_cli_table_add(&t, "DEDUPED");
	vd_cli_table_add(&t, "COMPRESSED");
	vd_cli_table_add(&t, "DEDUP");
	vd_cli_table_add(&t, "TOTAL");
	json_array_foreach(tasks, i, o) {
		if (only && strcmp(vd_cli_jstr(o, "name"), only))
			continue;
		add_row(&t, vd_cli_jstr(o, "name"), vd_cli_jint(o, "versions"), vd_cli_jint(o, "logical"),
			vd_cli_jint(o, "stored"), compressed_of(o), raw);
		versions += vd_cli_jint(o, "versions");
		logical += vd_cli_jint(o, "logical");
		stored += vd_cli_jint(o, "stored");
		compressed += compressed_of(o);
		shown++;
	}
	if (only && !shown) {
		vd_strv_release(&t.cells);
		fprintf(stderr, "vdfs du: no task '%s'\n", only);
		return 2;
	}
	if (!only) {
		add_row(&t, "(all)", versions, vd_cli_jint(store, "logical"), vd_cli_jint(store, "stored"),
			compressed_of(store), raw);
	}
	vd_cli_table_print(&t);
	if (!only) {
		char s[32], z[32];
		/* The whole index, when the daemon gives it (one from before
		 * compression does not). */
		if (json_is_integer(json_object_get(store, "chunks_raw"))) {
			long long cr = vd_cli_jint(store, "chunks_raw"), cs = vd_cli_jint(store, "chunks_stored");
			print_bytes(s, cr, raw);
			print_bytes(z, cs, raw);
			printf("\nchunks: %lld, %s after dedup, %s after compression (", vd_cli_jint(store, "chunks"),
			       s, z);
			if (cs > 0)
				printf("%.1fx", (double)cr / (double)cs);
			else
				printf("-");
			printf("; results included)\n");
		} else {
			printf("\n");
		}
		print_bytes(s, vd_cli_jint(store, "pack_bytes"), raw);
		printf("store: %lld pack files, %s on disk (results included)\n",
		       vd_cli_jint(store, "packs"), s);
		/* A daemon from before gc does not say; then neither do we. */
		const json_t *rec = json_object_get(store, "reclaimable");
		if (json_is_integer(rec)) {
			print_bytes(s, (long long)json_integer_value(rec), raw);
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
	.summary = "logical bytes against what dedup and compression leave of them",
	.description =
		"One row per task (or only TASK's): how many versions it holds, their "
		"LOGICAL size (what reading them all would return), the bytes sealing them "
		"added to the store after dedup (DEDUPED: the raw bytes of new chunks; a "
		"chunk already stored is counted once, by the first version that brought "
		"it) and what those take after compression (COMPRESSED: each chunk is "
		"stored as a zstd frame when that saves at least 3 %, else raw), then "
		"DEDUP, LOGICAL / DEDUPED, and TOTAL, LOGICAL / COMPRESSED. Without TASK a "
		"last row (all) covers the tasks together; a line gives every distinct "
		"chunk in the store (results, and what gc has yet to take, included) after "
		"dedup and after compression, one the pack files and their size on disk, "
		"and one the bytes vdfs gc would free now (reclaimable: chunks of deleted "
		"versions and results, and the dead parts of packs). \"all shared\" means "
		"every byte was stored before.",
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
