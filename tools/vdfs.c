/*
 * vdfs.c - the operator's tool: `vdfs SUBCOMMAND [options]`.
 *
 * Each subcommand lives in tools/cmd_NAME.c and talks to a running vdfsd
 * over its HTTP API (tools/cli.h); this file only dispatches. To add one:
 * write vd_cli_cmd_NAME, declare it below, and add its row to the table.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int vd_cli_cmd_status(int argc, char **argv);
int vd_cli_cmd_log(int argc, char **argv);
int vd_cli_cmd_du(int argc, char **argv);
int vd_cli_cmd_lineage(int argc, char **argv);
int vd_cli_cmd_diff(int argc, char **argv);
int vd_cli_cmd_executors(int argc, char **argv);
int vd_cli_cmd_bench(int argc, char **argv);

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *usage;
} commands[] = {
	{ "status", vd_cli_cmd_status,
	  "status                     tasks, runs and executors of a running vdfsd" },
	{ "log", vd_cli_cmd_log,
	  "log TASK [--long]          a task's versions, newest first" },
	{ "du", vd_cli_cmd_du,
	  "du [TASK] [--bytes]        logical against stored bytes, dedup ratio" },
	{ "lineage", vd_cli_cmd_lineage,
	  "lineage ID [--dot]         where a version or result came from, what came of it" },
	{ "diff", vd_cli_cmd_diff,
	  "diff A B [--lines|--result]\n"
	  "                             B against A: summary, line diff of inputs or results" },
	{ "executors", vd_cli_cmd_executors,
	  "executors [revoke NAME]    executors' state; revoke cuts one off" },
	{ "bench", vd_cli_cmd_bench,
	  "bench [--quick] [--out DIR] [--cases LIST]  performance against baselines (tools/vdfs-bench.sh)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vdfs SUBCOMMAND [options] [--state DIR | --server URL --token-file FILE]\n\n"
		   "subcommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f, "\n"
		   "  --state DIR reads DIR/url and DIR/token (written by vdfsd); explicit\n"
		   "  --server and --token-file win over it. The default server is\n"
		   "  http://127.0.0.1:7070. Exit: 0 done, 1 failed, 2 usage or unknown ID.\n");
}

int main(int argc, char **argv)
{
	vd_log_init("vdfs", VD_LOG_WARN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "vdfs: unknown subcommand '%s' (see vdfs --help)\n", argv[1]);
	return 2;
}
