/*
 * cmd_gc.c - `vdfs gc [--dry-run] [--json]`: apply retention, then mark
 * the chunks the catalog reaches, sweep the rest and compact sparse packs
 * (POST /v1/gc), and print the daemon's report. It can take minutes on a
 * big store, all of it without a byte on the connection: the request is a
 * patient one (tools/cli.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "dry-run", 'n', NULL, "change nothing: say what gc would delete and reclaim",
	  VD_DOC_SHORT },
	{ "json", 'j', NULL, "print the daemon's report as JSON (docs/protocol.md)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_gc = {
	.name = "gc",
	.args = "",
	.summary = "delete expired versions and give back the space nothing uses",
	.description =
		"Runs the daemon's garbage collection, online: the mount and executors "
		"keep working. First retention: each task's config keep = N or 30d "
		"deletes its older versions (never latest, a pinned one or one a run is "
		"reading). Then every chunk that no version, result, code or memoized "
		"result reaches is swept, memo entries whose results are gone are "
		"dropped, pack files whose live part fell under half are rewritten "
		"with only their live chunks, and in the others the disk blocks of dead "
		"chunks are punched out (the live ones stay where they are). "
		"docs/lifecycle.md says how this stays safe "
		"against a concurrent cp and a crash at any moment.\n\n"
		"Prints the versions retention deleted, the chunks and packs swept and "
		"compacted, the bytes reclaimed, the store's size before and after, and "
		"how long each phase took. With --dry-run nothing changes and the "
		"numbers are what gc would do. One gc runs at a time: another is "
		"refused (exit 1) while one is under way.\n\n"
		"Exit: 0 done; 1 failed or refused (the reason on stderr).",
	.opts = opts,
	.conn = true,
	.run = run,
};

static void bytes(char out[32], const json_t *r, const char *key)
{
	long long n = vd_cli_jint(r, key);
	vd_cli_human_bytes(out, (unsigned long long)(n < 0 ? 0 : n));
}

static void print_report(const json_t *r)
{
	bool dry = json_is_true(json_object_get(r, "dry_run"));
	const json_t *expired = json_object_get(r, "expired"), *x;
	char a[32], b[32], c[32], d[32], e[32];
	size_t i;

	printf("%s\n", dry ? "gc --dry-run: nothing was changed; this is what gc would do"
			   : "gc done");
	printf("retention: %zu version%s %s\n", json_array_size(expired),
	       json_array_size(expired) == 1 ? "" : "s", dry ? "would expire" : "expired");
	json_array_foreach(expired, i, x)
		printf("  %s %s of task %s\n", dry ? "would delete" : "deleted",
		       vd_cli_jstr(x, "data_id"), vd_cli_jstr(x, "task"));
	bytes(a, r, "bytes_swept");
	printf("chunks: %lld in the store, %lld live, %lld %s (%s)\n",
	       vd_cli_jint(r, "chunks_total"), vd_cli_jint(r, "chunks_live"),
	       vd_cli_jint(r, "chunks_swept"), dry ? "to sweep" : "swept", a);
	printf("memo: %lld entr%s %s\n", vd_cli_jint(r, "memo_dropped"),
	       vd_cli_jint(r, "memo_dropped") == 1 ? "y" : "ies", dry ? "to drop" : "dropped");
	bytes(b, r, "bytes_moved");
	printf("packs: %lld, %lld %s, %lld %s (%s of live chunks %s)\n",
	       vd_cli_jint(r, "packs_total"), vd_cli_jint(r, "packs_deleted"),
	       dry ? "to delete" : "deleted", vd_cli_jint(r, "packs_compacted"),
	       dry ? "to compact" : "compacted", b, dry ? "to move" : "moved");
	bytes(b, r, "bytes_punched");
	printf("holes: %lld pack%s, %s of dead chunks %s\n", vd_cli_jint(r, "packs_punched"),
	       vd_cli_jint(r, "packs_punched") == 1 ? "" : "s", b,
	       dry ? "to punch out" : "punched out");
	bytes(c, r, "bytes_reclaimed");
	bytes(d, r, "store_bytes_before");
	bytes(e, r, "store_bytes_after");
	printf("%s: %s; the store %s %s to %s\n", dry ? "would reclaim" : "reclaimed", c,
	       dry ? "would go from" : "went from", d, e);
	vd_cli_duration(a, vd_cli_jint(r, "mark_ms"));
	vd_cli_duration(b, vd_cli_jint(r, "sweep_ms"));
	vd_cli_duration(c, vd_cli_jint(r, "compact_ms"));
	printf("time: mark %s, sweep %s, compact %s\n", a, b, c);
}

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_gc, .conn = &c, .argc = argc, .argv = argv };
	json_t *req = NULL, *reply = NULL;
	bool dry = false, as_json = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'n')
			dry = true;
		else if (opt == 'j')
			as_json = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind < argc) {
		rc = vd_cli_usage(&vd_cli_cmd_gc, "no arguments");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "gc")))
		goto out;
	c.patient = true;
	req = json_pack("{s:b}", "dry_run", dry);
	rc = req ? vd_cli_send_json(&reply, &c, "gc", "POST", "/v1/gc", req) : 1;
	if (rc) {
		rc = 1;   /* a 404 here is no unknown ID: a failure like any other */
		goto out;
	}
	if (as_json) {
		json_dumpf(reply, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_report(reply);
	}
out:
	json_decref(reply);
	json_decref(req);
	vd_cli_conn_close(&c);
	return rc;
}
