/*
 * vdfs.c - the operator's tool: `vdfs SUBCOMMAND [options]`.
 *
 * Each subcommand lives in tools/cmd_NAME.c and talks to a running vdfsd
 * over its HTTP API (tools/cli.h); this file lists them, dispatches, and
 * prints the tool's own help and its manual pages.
 *
 * Adding a subcommand NAME takes two things:
 *  1. tools/cmd_NAME.c defining `const struct vd_cli_cmd vd_cli_cmd_NAME`:
 *     its arguments, summary, description, option table (doc.h rows) and
 *     run function, which parses with vd_cli_opt() (see cmd_log.c);
 *  2. X(NAME) in VD_CLI_COMMANDS below, where it should appear in the list.
 * CMake builds every tools/cmd_*.c; `vdfs --help`, `vdfs help NAME`, `vdfs
 * NAME --help`, the vdfs(1) page and mount-tests/t_cli_help.sh all follow
 * from the record, with nothing else to edit.
 *
 * `vdfs --man` prints vdfs(1) and `vdfs --man-config` vdfs-config(5), as
 * roff; the build writes them into build/man/ and `cmake --install`
 * installs them.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define VD_CLI_COMMANDS(X) \
	X(status)          \
	X(log)             \
	X(wait)            \
	X(rerun)           \
	X(cancel)          \
	X(rm)              \
	X(pin)             \
	X(unpin)           \
	X(gc)              \
	X(fsck)            \
	X(du)              \
	X(diff)            \
	X(lineage)         \
	X(task)            \
	X(tasks)           \
	X(put)             \
	X(get)             \
	X(executors)       \
	X(user)            \
	X(token)           \
	X(bench)           \
	X(help)

#define VD_CLI_DECLARE(name) extern const struct vd_cli_cmd vd_cli_cmd_##name;
VD_CLI_COMMANDS(VD_CLI_DECLARE)

#define VD_CLI_ROW(name) &vd_cli_cmd_##name,
static const struct vd_cli_cmd *const commands[] = { VD_CLI_COMMANDS(VD_CLI_ROW) };
#define NCOMMANDS (sizeof commands / sizeof *commands)

enum { OPT_MAN = 0x2001, OPT_MAN_CONFIG };

/* vdfs's own options, before any subcommand. */
static const struct vd_doc_opt top_opts[] = {
	{ "help", 'h', NULL, "print this help and exit (vdfs help NAME: a subcommand's)",
	  VD_DOC_SHORT },
	{ "man", OPT_MAN, NULL, "print this manual page, vdfs(1), as roff (the build installs "
	  "it from here)", 0 },
	{ "man-config", OPT_MAN_CONFIG, NULL, "print vdfs-config(5), the config keys' page, as "
	  "roff", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static const char synopsis[] =
	"SUBCOMMAND [options] [--state DIR | --server URL --token-file FILE]\n"
	"help [SUBCOMMAND | config]\n"
	"--help | --man | --man-config";

static const char description[] =
	"vdfs is the operator's tool of a vdfs daemon (vdfsd(8)): it reads and acts "
	"on the daemon's state over the daemon's HTTP API, with the operator's "
	"token, from the same machine or any other that reaches it. Each subcommand "
	"has its own options, given after its name; vdfs help NAME or vdfs NAME "
	"--help prints them.\n\n"
	"IDs are the 32-hex-digit names under versions/ in the mount (data IDs) and "
	"the code IDs of functions; vdfs log prints their first 12 digits, --long "
	"all 32.";

static const char conn_text[] =
	"Every subcommand that talks to vdfsd finds it, and its operator token, "
	"with these options; explicit --server and --token-file win over --state. "
	"Without any, the server is http://127.0.0.1:7070 and a token must still be "
	"given.";

static const char exit_text[] =
	"0 done; 1 failed (one line on stderr says why); 2 a usage error, an "
	"unknown option, or an unknown task or ID.";

const struct vd_cli_cmd *const *vd_cli_commands(size_t *n)
{
	*n = NCOMMANDS;
	return commands;
}

const struct vd_cli_cmd *vd_cli_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(name, commands[i]->name))
			return commands[i];
	return NULL;
}

void vd_cli_main_help(FILE *f)
{
	const char *s = synopsis;
	bool first = true;

	do {
		size_t n = strcspn(s, "\n");

		fprintf(f, "%s vdfs %.*s\n", first ? "usage:" : "      ", (int)n, s);
		s += n + (s[n] == '\n');
		first = false;
	} while (*s);
	fputs("\nvdfs - the operator's tool of a vdfs daemon.\n\nsubcommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char tag[128];

		snprintf(tag, sizeof tag, "  %s%s%s", commands[i]->name,
			 *commands[i]->args ? " " : "", commands[i]->args);
		vd_doc_help_item(f, tag, commands[i]->summary);
	}
	fputc('\n', f);
	vd_doc_help_text(f, description, 0);
	fputs("\noptions (before a subcommand):\n", f);
	vd_doc_help_opts(f, top_opts);
	fputs("\nconnection options (after a subcommand that talks to vdfsd):\n", f);
	vd_doc_help_opts(f, vd_cli_conn_doc);
	fputc('\n', f);
	vd_doc_help_text(f, conn_text, 2);
	fputs("\nexit status:\n", f);
	vd_doc_help_text(f, exit_text, 2);
}

static void man_page(FILE *f)
{
	const char *s = synopsis;

	vd_doc_man_head(f, "vdfs", 1, "the operator's tool of a vdfs daemon");
	vd_doc_man_section(f, "SYNOPSIS");
	fputs(".nf\n", f);
	do {
		size_t n = strcspn(s, "\n");
		char line[256];

		snprintf(line, sizeof line, "%.*s", (int)n, s);
		fputs("\\fBvdfs\\fR ", f);
		vd_doc_man_escape(f, line);
		fputc('\n', f);
		s += n + (s[n] == '\n');
	} while (*s);
	fputs(".fi\n", f);
	vd_doc_man_section(f, "DESCRIPTION");
	vd_doc_man_text(f, description);
	vd_doc_man_section(f, "OPTIONS");
	vd_doc_man_text(f, "These come before any subcommand.");
	vd_doc_man_opts(f, top_opts);
	vd_doc_man_section(f, "CONNECTING");
	vd_doc_man_text(f, conn_text);
	vd_doc_man_opts(f, vd_cli_conn_doc);
	vd_doc_man_section(f, "SUBCOMMANDS");
	for (size_t i = 0; i < NCOMMANDS; i++)
		vd_cli_man_print(f, commands[i]);
	vd_doc_man_section(f, "EXIT STATUS");
	vd_doc_man_text(f, exit_text);
	vd_doc_man_section(f, "SEE ALSO");
	fputs(".BR vdfsd (8),\n.BR vdfs-executor (1),\n.BR vdfs-config (5)\n", f);
}

int main(int argc, char **argv)
{
	struct vd_doc_getopt g;
	int opt;

	vd_log_init("vdfs", VD_LOG_WARN);
	vd_cli_locale();
	if (argc < 2) {
		vd_cli_main_help(stderr);
		return 2;
	}
	vd_doc_getopt_init(&g, true);
	if (vd_doc_getopt_add(&g, top_opts))
		return 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, g.shorts, g.longs, NULL)) != -1) {
		switch (opt) {
		case 'h':
			vd_cli_main_help(stdout);
			return 0;
		case OPT_MAN:
			man_page(stdout);
			return 0;
		case OPT_MAN_CONFIG:
			vd_cli_config_man(stdout);
			return 0;
		default:
			vd_doc_bad_option("vdfs", "vdfs --help", opt, argv);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "vdfs: which subcommand? (see vdfs --help)\n");
		return 2;
	}
	const struct vd_cli_cmd *cmd = vd_cli_command(argv[optind]);

	if (!cmd) {
		fprintf(stderr, "vdfs: unknown subcommand '%s' (see vdfs --help)\n", argv[optind]);
		return 2;
	}
	return cmd->run(argc - optind, argv + optind);
}
