/*
 * cmd_fsck.c - `vdfs fsck [--full] [--repair] [--json]`: check the store
 * and the catalog (POST /v1/fsck) and print each problem on one line with
 * the versions it affects. The exit status is fsck(8)'s in spirit: 0 clean,
 * 1 problems (also once repaired), 2 the check itself could not be made.
 * Like gc, it may run for minutes without a byte on the connection.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run(int argc, char **argv);

static const struct vd_doc_opt opts[] = {
	{ "full", 'f', NULL, "also read every chunk and verify it against its ID (reads the "
	  "whole store)", 0 },
	{ "repair", 'r', NULL, "drop orphans and mark versions with missing or corrupt chunks "
	  "damaged (their status says so; reading a damaged part gives EIO)", 0 },
	{ "json", 'j', NULL, "print the daemon's report as JSON (docs/protocol.md)", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_fsck = {
	.name = "fsck",
	.args = "",
	.summary = "check that every version's bytes are there, and right",
	.description =
		"Checks, online, that every reference in the catalog resolves: versions "
		"to manifests to chunks, runs to results, lineage edges to versions or "
		"tombstones; and counts orphans (records and chunks nothing refers to, "
		"packs nothing uses). With --full it also reads every chunk and verifies "
		"its bytes against its ID. Each problem is one line: its kind, what is "
		"wrong, the chunk when there is one, and the versions it affects "
		"(TASK/ID). With --repair the orphans are dropped and the versions "
		"affected are marked damaged: never silently, the report says what was "
		"repaired, and those versions still show the problem.\n\n"
		"Exit: 0 no problems; 1 problems found (also after --repair, which says "
		"what it did); 2 the check could not be made (a usage error, no daemon, "
		"or the daemon refused or failed it, with the reason on stderr).",
	.opts = opts,
	.conn = true,
	.run = run,
};

/* " affects TASK/ID, TASK/ID" for a list of {"task","data_id"}, or "". */
static void print_versions(const json_t *vs, const char *lead)
{
	const json_t *v;
	size_t i;
	json_array_foreach(vs, i, v)
		printf("%s%s/%s", i ? ", " : lead, vd_cli_jstr(v, "task"), vd_cli_jstr(v, "data_id"));
}

static void print_report(const json_t *r)
{
	const json_t *problems = json_object_get(r, "problems"), *p;
	const json_t *orph = json_object_get(r, "orphans"), *rep = json_object_get(r, "repaired");
	bool repair = json_is_true(json_object_get(r, "repair"));
	char a[32], b[32];
	size_t i, n = json_array_size(problems);

	vd_cli_human_bytes(a, (unsigned long long)vd_cli_jint(r, "bytes_checked"));
	vd_cli_duration(b, vd_cli_jint(r, "ms"));
	printf("checked %lld chunks (%s) in %s: %s\n", vd_cli_jint(r, "chunks_checked"), a, b,
	       json_is_true(json_object_get(r, "full")) ? "references, and every chunk's bytes"
							: "references only (--full reads the bytes too)");
	json_array_foreach(problems, i, p) {
		const char *chunk = vd_cli_jstr(p, "chunk");
		printf("problem: %s: %s", vd_cli_jstr(p, "kind"), vd_cli_jstr(p, "what"));
		if (*chunk)
			printf(" (chunk %s)", chunk);
		if (json_array_size(json_object_get(p, "versions")))
			print_versions(json_object_get(p, "versions"), "; affects ");
		else
			printf("; affects no version");
		putchar('\n');
	}
	vd_cli_human_bytes(a, (unsigned long long)vd_cli_jint(orph, "bytes"));
	printf("orphans: %lld records, %lld chunks (%s), %lld packs%s\n",
	       vd_cli_jint(orph, "records"), vd_cli_jint(orph, "chunks"), a,
	       vd_cli_jint(orph, "packs"), repair ? "" : " (vdfs gc or fsck --repair drops them)");
	if (repair) {
		printf("repaired: %lld records dropped, %lld chunks dropped, %lld versions marked "
		       "damaged, %lld found whole again\n", vd_cli_jint(rep, "records_dropped"),
		       vd_cli_jint(rep, "chunks_dropped"), vd_cli_jint(rep, "versions_damaged"),
		       vd_cli_jint(rep, "versions_healed"));
	}
	if (json_array_size(json_object_get(r, "damaged"))) {
		print_versions(json_object_get(r, "damaged"), "damaged: ");
		putchar('\n');
	}
	/* The report lists the first 1,000; problems_total counts them all. */
	long long total = vd_cli_jint(r, "problems_total");
	if (total > (long long)n)
		printf("%lld problems found (the first %zu listed)\n", total, n);
	else if (n)
		printf("%zu problem%s found\n", n, n == 1 ? "" : "s");
	else
		printf("no problems found\n");
}

static int run(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_fsck, .conn = &c, .argc = argc, .argv = argv };
	json_t *req = NULL, *reply = NULL;
	bool full = false, repair = false, as_json = false;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0) {
		if (opt == 'f')
			full = true;
		else if (opt == 'r')
			repair = true;
		else if (opt == 'j')
			as_json = true;
	}
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (optind < argc) {
		rc = vd_cli_usage(&vd_cli_cmd_fsck, "no arguments");
		goto out;
	}
	/* From here on every failure to get a report is 2: 1 means problems. */
	if (vd_cli_conn_open(&c, "fsck"))
		goto out;
	c.patient = true;
	req = json_pack("{s:b, s:b}", "full", full, "repair", repair);
	if (!req || vd_cli_send_json(&reply, &c, "fsck", "POST", "/v1/fsck", req))
		goto out;
	if (!json_is_array(json_object_get(reply, "problems"))) {
		fprintf(stderr, "vdfs fsck: the daemon's report has no problems list\n");
		goto out;
	}
	if (as_json) {
		json_dumpf(reply, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_report(reply);
	}
	rc = json_array_size(json_object_get(reply, "problems")) ? 1 : 0;
out:
	json_decref(reply);
	json_decref(req);
	vd_cli_conn_close(&c);
	return rc;
}
