/*
 * cmd_help.c - `vdfs help [SUBCOMMAND | config]`, and the config keys'
 * documentation: `vdfs help config` and the vdfs-config(5) page, both
 * printed from the engine's own table of keys (daemon/config_keys.c), the
 * one its parser checks every key against.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "config_keys.h"

static int run(int argc, char **argv);

const struct vd_cli_cmd vd_cli_cmd_help = {
	.name = "help",
	.args = "[SUBCOMMAND | config]",
	.summary = "the subcommands, one subcommand's options, or the config keys",
	.description =
		"vdfs help SUBCOMMAND prints what vdfs SUBCOMMAND --help does: what it "
		"prints and every option it takes. vdfs help config lists the keys a "
		"task's config file takes, with their values and defaults, as "
		"vdfs-config(5) does.",
	.opts = NULL,
	.conn = false,
	.run = run,
};

static int run(int argc, char **argv)
{
	struct vd_cli_opts o = { .cmd = &vd_cli_cmd_help, .argc = argc, .argv = argv };
	const struct vd_cli_cmd *cmd;
	int opt;

	while ((opt = vd_cli_opt(&o)) > 0)
		;
	if (opt < 0)
		return o.exit;
	if (optind == argc) {
		vd_cli_main_help(stdout);
		return 0;
	}
	if (optind + 1 != argc)
		return vd_cli_usage(&vd_cli_cmd_help, "one subcommand at a time");
	if (!strcmp(argv[optind], "config")) {
		vd_cli_config_help(stdout);
		return 0;
	}
	if (!(cmd = vd_cli_command(argv[optind]))) {
		fprintf(stderr, "vdfs help: no subcommand '%s' (vdfs --help lists them)\n",
			argv[optind]);
		return 2;
	}
	vd_cli_help_print(stdout, cmd);
	return 0;
}

/* ---- the config keys ------------------------------------------------------ */

static const char config_intro[] =
	"A task's config is the file tasks/NAME/config in the mount: optional, "
	"key = value lines, for example\n\n"
	"  echo 'reduce = sum' > MNT/tasks/wc/config\n\n"
	"Spaces around the key and the value do not matter; empty lines and lines "
	"starting with # are ignored, and so is a # after a value with the rest of "
	"its line. "
	"A key not written takes its default. The file holds at most 64 KiB.\n\n"
	"vdfsd accepts exactly the keys below, with the values shown. A config with "
	"any other key, or a value it does not take, is refused: the write or the "
	"close fails with EINVAL, and vdfsd logs why. Every run keeps the config it "
	"was made with.";

static const char config_example[] =
	"  # count words: outputs summed across units, small units, 1 minute each\n"
	"  reduce = sum\n"
	"  unit_size = 4M\n"
	"  timeout = 60\n"
	"  env.LIMIT = 10";

/* "level = 1-5", "env.NAME = TEXT ..." */
static void key_tag(char *out, size_t n, const struct vd_config_key *k)
{
	size_t len = strlen(k->name);
	bool prefix = len && k->name[len - 1] == '.';

	snprintf(out, n, "%s%s = %s", k->name, prefix ? "NAME" : "", k->value);
}

/* The design's keys the engine refuses, or none: what the page lists
 * as not accepted yet. */
static bool planned_missing(const struct vd_config_planned *p)
{
	return !vd_config_key_find(p->name);
}

void vd_cli_config_help(FILE *f)
{
	char tag[256];
	bool any = false;

	fputs("vdfs config: the keys of a task's config file (see vdfs-config(5)).\n\n", f);
	vd_doc_help_text(f, config_intro, 0);
	fputs("\nkeys:\n", f);
	for (const struct vd_config_key *k = vd_config_keys; k->name; k++) {
		key_tag(tag, sizeof tag, k);
		fprintf(f, "  %s", tag);
		if (*k->def)
			fprintf(f, "  (default %s)", k->def);
		fputc('\n', f);
		vd_doc_help_text(f, k->help, 6);
	}
	for (const struct vd_config_planned *p = vd_config_planned; p->name; p++) {
		if (!planned_missing(p))
			continue;
		if (!any)
			fputs("\nnot accepted yet (a config naming one is refused):\n", f);
		any = true;
		snprintf(tag, sizeof tag, "  %s", p->name);
		vd_doc_help_item(f, tag, p->what);
	}
	fputs("\nexample:\n", f);
	vd_doc_help_text(f, config_example, 0);
}

void vd_cli_config_man(FILE *f)
{
	char tag[256], def[300];
	bool any = false;

	vd_doc_man_head(f, "vdfs-config", 5, "the config file of a vdfs task");
	vd_doc_man_section(f, "SYNOPSIS");
	fputs("\\fIMOUNTPOINT\\fR/tasks/\\fINAME\\fR/config\n", f);
	vd_doc_man_section(f, "DESCRIPTION");
	vd_doc_man_text(f, config_intro);
	vd_doc_man_section(f, "KEYS");
	for (const struct vd_config_key *k = vd_config_keys; k->name; k++) {
		key_tag(tag, sizeof tag, k);
		vd_doc_man_item(f, tag, k->help);
		if (*k->def) {
			snprintf(def, sizeof def, "Default: %s.", k->def);
			fputs(".IP\n", f);
			vd_doc_man_escape(f, def);
			fputc('\n', f);
		}
	}
	for (const struct vd_config_planned *p = vd_config_planned; p->name; p++) {
		if (!planned_missing(p))
			continue;
		if (!any) {
			vd_doc_man_section(f, "NOT ACCEPTED YET");
			vd_doc_man_text(f, "The design of vdfs names these keys too; this vdfsd "
					   "does not take them yet, and refuses a config that "
					   "names one.");
		}
		any = true;
		vd_doc_man_item(f, p->name, p->what);
	}
	vd_doc_man_section(f, "EXAMPLE");
	vd_doc_man_text(f, config_example);
	vd_doc_man_section(f, "SEE ALSO");
	fputs(".BR vdfs (1),\n.BR vdfsd (8),\n.BR vdfs-executor (1)\n", f);
}
