/*
 * cmd_user.c - `vdfs user add NAME --role ROLE`, `vdfs user list`, `vdfs
 * user revoke NAME` (POST, GET /v1/users; DELETE /v1/users/<name>), and
 * `vdfs token executor` (POST /v1/tokens/executor): who may use the
 * daemon, and what (docs/users.md). All are an operator's.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int run_user(int argc, char **argv);
static int run_token(int argc, char **argv);

static const struct vd_doc_opt user_opts[] = {
	{ "role", 'r', "ROLE",
	  "with add: reader (browse and download), submitter (also create tasks and "
	  "submit, rerun, cancel and delete on its own) or operator (everything)",
	  VD_DOC_SHORT },
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_user = {
	.name = "user",
	.args = "add NAME -r ROLE | list | revoke NAME",
	.summary = "add, list and revoke the daemon's users",
	.description =
		"add NAME --role ROLE makes a user and prints its token, once: the "
		"daemon keeps only its SHA-256. Give it to the user, who keeps it in a "
		"file for --token-file. A name that was revoked may be added again, with "
		"a new token. list shows every user, its role, and when it was made or "
		"revoked. revoke NAME refuses its token from the next request on "
		"(HTTP 401). STATE/token stays the owner's operator token. Roles: reader "
		"browses and downloads; submitter also creates tasks, which it owns, and "
		"submits, reruns, cancels and deletes on those; operator does "
		"everything, executors, users, gc and fsck included.\n\n"
		"Exit: 0 done; 1 refused or failed (the reason on stderr); 2 a usage "
		"error or no such user.",
	.opts = user_opts,
	.conn = true,
	.run = run_user,
};

static const struct vd_doc_opt token_opts[] = {
	{ NULL, 0, NULL, NULL, 0 },
};

const struct vd_cli_cmd vd_cli_cmd_token = {
	.name = "token",
	.args = "executor",
	.summary = "make a token that can only enroll executors",
	.description =
		"Prints a new executor enrollment token: vdfs-executor --token-file FILE "
		"registers with it and gets a token of its own, but the enrollment "
		"token does nothing else (no status, no users, no gc), so a machine "
		"lent for computing gets no right to administer. The daemon keeps only "
		"its SHA-256.\n\nExit: 0 done; 1 refused or failed; 2 a usage error.",
	.opts = token_opts,
	.conn = true,
	.run = run_token,
};

static int user_list(const struct vd_cli_conn *c)
{
	struct vd_cli_table t = { 0 };
	json_t *reply = NULL, *u;
	size_t i;
	int rc = vd_cli_get_json(&reply, c, "user", "/v1/users");
	if (rc)
		return rc;
	t.ncols = 4;
	vd_cli_table_add(&t, "USER");
	vd_cli_table_add(&t, "ROLE");
	vd_cli_table_add(&t, "CREATED");
	vd_cli_table_add(&t, "REVOKED");
	json_array_foreach(json_object_get(reply, "users"), i, u) {
		char made[32], gone[32];
		vd_cli_time(made, vd_cli_jint(u, "created"));
		vd_cli_time(gone, vd_cli_jint(u, "revoked"));
		vd_cli_table_add(&t, vd_cli_jstr(u, "name"));
		vd_cli_table_add(&t, vd_cli_jstr(u, "role"));
		vd_cli_table_add(&t, made);
		vd_cli_table_add(&t, gone);
	}
	vd_cli_table_print(&t);
	json_decref(reply);
	return 0;
}

static int run_user(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_user, .conn = &c, .argc = argc, .argv = argv };
	struct vd_buf path = VD_BUF_INIT(1024);
	json_t *req = NULL, *reply = NULL;
	const char *role = NULL, *verb;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0)
		if (opt == 'r')
			role = optarg;
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	verb = optind < argc ? argv[optind] : "";
	int nargs = argc - optind;
	if (!strcmp(verb, "add") && (nargs != 2 || !role)) {
		rc = vd_cli_usage(&vd_cli_cmd_user, nargs != 2 ? "add takes one NAME" : "add needs --role");
		goto out;
	}
	if (!strcmp(verb, "revoke") && nargs != 2) {
		rc = vd_cli_usage(&vd_cli_cmd_user, "revoke takes one NAME");
		goto out;
	}
	if (!strcmp(verb, "list") && nargs != 1) {
		rc = vd_cli_usage(&vd_cli_cmd_user, "list takes no arguments");
		goto out;
	}
	if (strcmp(verb, "add") && strcmp(verb, "revoke") && strcmp(verb, "list")) {
		rc = vd_cli_usage(&vd_cli_cmd_user, "add, list or revoke?");
		goto out;
	}
	if (role && strcmp(verb, "add")) {
		rc = vd_cli_usage(&vd_cli_cmd_user, "--role goes with add");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "user")))
		goto out;
	if (!strcmp(verb, "list")) {
		rc = user_list(&c);
		goto out;
	}
	const char *name = argv[optind + 1];
	if (!strcmp(verb, "add")) {
		req = json_pack("{s:s, s:s}", "name", name, "role", role);
		if ((rc = vd_cli_send_json(&reply, &c, "user", "POST", "/v1/users", req)))
			goto out;
		/* The token alone on stdout, so that `> file` keeps just it;
		 * what it is on stderr. */
		fprintf(stderr, "user %s (%s): its token follows, shown this once\n",
			vd_cli_jstr(reply, "name"), vd_cli_jstr(reply, "role"));
		printf("%s\n", vd_cli_jstr(reply, "token"));
		goto out;
	}
	req = json_object();
	if (vd_buf_adds(&path, "/v1/users/") || vd_cli_url_escape(&path, name)) {
		rc = vd_cli_usage(&vd_cli_cmd_user, "name too long");
		goto out;
	}
	if ((rc = vd_cli_send_json(&reply, &c, "user", "DELETE", vd_buf_cstr(&path), req)))
		goto out;
	printf("revoked user %s\n", name);
out:
	json_decref(reply);
	json_decref(req);
	vd_buf_release(&path);
	vd_cli_conn_close(&c);
	return rc;
}

static int run_token(int argc, char **argv)
{
	struct vd_cli_conn c = { 0 };
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_token, .conn = &c, .argc = argc, .argv = argv };
	json_t *req = NULL, *reply = NULL;
	int opt, rc = 2;

	while ((opt = vd_cli_opt(&o)) > 0)
		;
	if (opt < 0) {
		rc = o.exit;
		goto out;
	}
	if (argc - optind != 1 || strcmp(argv[optind], "executor")) {
		rc = vd_cli_usage(&vd_cli_cmd_token, "which kind? (executor)");
		goto out;
	}
	if ((rc = vd_cli_conn_open(&c, "token")))
		goto out;
	req = json_object();
	if ((rc = vd_cli_send_json(&reply, &c, "token", "POST", "/v1/tokens/executor", req)))
		goto out;
	fprintf(stderr, "an executor enrollment token (it can register executors, nothing "
		"else), shown this once:\n");
	printf("%s\n", vd_cli_jstr(reply, "token"));
out:
	json_decref(reply);
	json_decref(req);
	vd_cli_conn_close(&c);
	return rc;
}
