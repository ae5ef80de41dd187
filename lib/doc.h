/*
 * doc.h - one table per command line that is at once its getopt table, its
 * --help text and its manual page.
 *
 * A program (or a `vdfs` subcommand) describes each of its options once, as
 * a struct vd_doc_opt row. vd_doc_getopt_add() turns the rows into what
 * getopt_long() wants, vd_doc_help*() into --help text and vd_doc_man*()
 * into roff for man(7). An option exists only as a row, so the parser cannot
 * accept one that --help and the manual page do not describe, nor the other
 * way round. The build runs each program with --man to write build/man/
 * (CMakeLists.txt), so the installed pages are always the programs' own.
 *
 * Text handed to these functions follows three rules, so that one string
 * reads well both on a terminal and through groff:
 *  - paragraphs are separated by an empty line ("\n\n");
 *  - a paragraph is reflowed: its line breaks are only spaces;
 *  - a paragraph whose first character is a space is printed as it is
 *    (commands, examples, small tables), indented.
 * Keep the text ASCII: it goes into roff, where a few characters are special
 * and are escaped here ('\\', '-', and '.' or '\'' starting a line).
 */
#ifndef VD_DOC_H
#define VD_DOC_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#define VD_DOC_MAXOPTS 64
/* --help's right margin and the column option descriptions start at. */
#define VD_DOC_WIDTH 79
#define VD_DOC_OPTCOL 26

/* A row's val is also its short option: -f as well as --foreground. */
#define VD_DOC_SHORT 1

struct vd_doc_opt {
	const char *name;   /* long name without "--"; NULL ends a table */
	int val;            /* what getopt_long() returns for it */
	const char *arg;    /* the value's name ("DIR"); NULL: it takes none */
	const char *help;   /* what it does: text as above */
	int flags;          /* VD_DOC_SHORT */
};

/* What getopt_long() wants, built from one or more tables. */
struct vd_doc_getopt {
	struct option longs[VD_DOC_MAXOPTS + 1];
	/* "+:" or ":", then each short letter, followed by ':' if it takes a
	 * value. The leading ':' makes a missing value ':' rather than '?'. */
	char shorts[2 * VD_DOC_MAXOPTS + 3];
	size_t n;
};

/* An empty table. stop_at_arg: options end at the first non-option (for
 * commands whose arguments may look like options, or are passed on). */
void vd_doc_getopt_init(struct vd_doc_getopt *g, bool stop_at_arg);
/* Append a table's rows. 0, or -E2BIG past VD_DOC_MAXOPTS rows. */
int vd_doc_getopt_add(struct vd_doc_getopt *g, const struct vd_doc_opt *opts);

/*
 * One line on stderr for getopt_long()'s '?' (an unknown option) or ':' (a
 * value missing), which must have been called with opterr = 0:
 *   PROG: unknown option '--bogus' (see HELP)
 * HELP is what to run for help ("vdfsd --help"). Call it right after
 * getopt_long() returned, before optind changes.
 */
void vd_doc_bad_option(const char *prog, const char *help, int opt, char *const *argv);

/* ---- --help ------------------------------------------------------------ */

/* text (as above), reflowed to VD_DOC_WIDTH, every line indented. */
void vd_doc_help_text(FILE *f, const char *text, int indent);
/* tag as it is (with its indent), then text from VD_DOC_OPTCOL on (on the
 * next line if the tag reaches it), reflowed. */
void vd_doc_help_item(FILE *f, const char *tag, const char *text);
/* "  -f, --foreground        stay in ..." for each row. */
void vd_doc_help_opts(FILE *f, const struct vd_doc_opt *opts);

/* ---- roff (man(7) macros) ------------------------------------------------ */

/* .TH, the no-hyphenation settings and the NAME section. */
void vd_doc_man_head(FILE *f, const char *name, int section, const char *summary);
void vd_doc_man_section(FILE *f, const char *title);      /* .SH */
void vd_doc_man_subsection(FILE *f, const char *title);   /* .SS */
/* text (as above) as paragraphs. */
void vd_doc_man_text(FILE *f, const char *text);
/* A .TP entry with a bold tag (a key, a subcommand) and text. */
void vd_doc_man_item(FILE *f, const char *tag, const char *text);
/* One .TP entry per row. */
void vd_doc_man_opts(FILE *f, const struct vd_doc_opt *opts);
/* s escaped for roff (no paragraph rules), for callers' own lines. */
void vd_doc_man_escape(FILE *f, const char *s);

/* ---- a whole program ------------------------------------------------------ */

struct vd_doc_sect {
	const char *title;   /* NULL ends a list */
	const char *text;
};

struct vd_doc {
	const char *name;          /* "vdfsd" */
	int section;               /* its manual section: 1 or 8 */
	const char *summary;       /* the NAME line: "the vdfs daemon" */
	/* What follows the name on the usage line; "\n" separates forms. */
	const char *synopsis;
	const char *description;   /* text */
	const struct vd_doc_opt *opts;
	const struct vd_doc_sect *sections;   /* after OPTIONS; may be NULL */
};

/* usage, summary, description, options and sections, as --help prints them. */
void vd_doc_help(FILE *f, const struct vd_doc *d);
/* The whole manual page. */
void vd_doc_man(FILE *f, const struct vd_doc *d);

#endif
