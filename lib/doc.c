/*
 * doc.c - option tables as getopt tables, --help text and roff (see doc.h).
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "doc.h"

void vd_doc_getopt_init(struct vd_doc_getopt *g, bool stop_at_arg)
{
	memset(g, 0, sizeof *g);
	snprintf(g->shorts, sizeof g->shorts, "%s", stop_at_arg ? "+:" : ":");
}

int vd_doc_getopt_add(struct vd_doc_getopt *g, const struct vd_doc_opt *opts)
{
	for (const struct vd_doc_opt *o = opts; o && o->name; o++) {
		if (g->n >= VD_DOC_MAXOPTS)
			return -E2BIG;
		g->longs[g->n].name = o->name;
		g->longs[g->n].has_arg = o->arg ? required_argument : no_argument;
		g->longs[g->n].flag = NULL;
		g->longs[g->n].val = o->val;
		g->n++;
		if (o->flags & VD_DOC_SHORT) {
			size_t len = strlen(g->shorts);
			/* Room is reserved for two characters per row. */
			g->shorts[len++] = (char)o->val;
			if (o->arg)
				g->shorts[len++] = ':';
			g->shorts[len] = '\0';
		}
	}
	memset(&g->longs[g->n], 0, sizeof g->longs[g->n]);
	return 0;
}

void vd_doc_bad_option(const char *prog, const char *help, int opt, char *const *argv)
{
	const char *a = optind > 0 ? argv[optind - 1] : NULL;
	char shortname[3] = { '-', (char)optopt, '\0' };
	int n;

	/* getopt_long() leaves optopt at 0 for an unknown long option, and at
	 * the row's val for a long one missing its value; a short option is
	 * told by optopt being a letter while the last element is not a long
	 * option (it may be a cluster like -xb, or the element before). */
	if (!a || strncmp(a, "--", 2)) {
		if (optopt > ' ' && optopt < 0x7f)
			a = shortname;
		else if (!a)
			a = "?";
	}
	n = (int)strcspn(a, "=");
	if (opt == ':')
		fprintf(stderr, "%s: option '%.*s' needs a value (see %s)\n", prog, n, a, help);
	else
		fprintf(stderr, "%s: unknown option '%.*s' (see %s)\n", prog, n, a, help);
}

/* ---- paragraphs ----------------------------------------------------------- */

/* The next paragraph of *text: its start and length; false at the end. */
static bool next_para(const char **text, const char **p, size_t *n)
{
	const char *s = *text, *end;

	while (*s == '\n')
		s++;
	if (!*s)
		return false;
	end = strstr(s, "\n\n");
	if (!end)
		end = s + strlen(s);
	*p = s;
	*n = (size_t)(end - s);
	*text = end;
	return true;
}

static void pad(FILE *f, int n)
{
	while (n-- > 0)
		fputc(' ', f);
}

/*
 * Print text from column col (the cursor's column; 0 at a line's start),
 * continuing lines at indent. Paragraphs after the first start on a line
 * of their own, after an empty line if blank_between.
 */
static void help_flow(FILE *f, const char *text, int col, int indent, bool blank_between)
{
	const char *p;
	size_t n;
	bool first = true;

	while (next_para(&text, &p, &n)) {
		if (!first) {
			if (col > 0)
				fputc('\n', f);
			if (blank_between)
				fputc('\n', f);
			col = 0;
		}
		first = false;
		if (*p == ' ') {
			/* As it is: each line, indented. */
			const char *q = p, *end = p + n;

			if (col > 0) {
				fputc('\n', f);
				col = 0;
			}
			while (q < end) {
				const char *nl = memchr(q, '\n', (size_t)(end - q));
				size_t len = nl ? (size_t)(nl - q) : (size_t)(end - q);

				pad(f, indent);
				fprintf(f, "%.*s\n", (int)len, q);
				q += len + (nl ? 1 : 0);
			}
			continue;
		}
		/* Reflowed: words separated by spaces or line breaks. */
		const char *q = p, *end = p + n;
		bool line_empty = true;

		if (col < indent) {
			pad(f, indent - col);
			col = indent;
		}
		while (q < end) {
			while (q < end && (*q == ' ' || *q == '\n'))
				q++;
			if (q >= end)
				break;
			size_t w = strcspn(q, " \n");

			if (q + w > end)
				w = (size_t)(end - q);
			if (!line_empty && col + 1 + (int)w > VD_DOC_WIDTH) {
				fputc('\n', f);
				pad(f, indent);
				col = indent;
				line_empty = true;
			}
			if (!line_empty) {
				fputc(' ', f);
				col++;
			}
			fprintf(f, "%.*s", (int)w, q);
			col += (int)w;
			line_empty = false;
			q += w;
		}
		fputc('\n', f);
		col = 0;
	}
	if (col > 0)
		fputc('\n', f);
}

void vd_doc_help_text(FILE *f, const char *text, int indent)
{
	if (text)
		help_flow(f, text, 0, indent, true);
}

void vd_doc_help_item(FILE *f, const char *tag, const char *text)
{
	int col = fprintf(f, "%s", tag);

	if (col + 2 > VD_DOC_OPTCOL) {
		fputc('\n', f);
		col = 0;
	}
	help_flow(f, text ? text : "", col, VD_DOC_OPTCOL, false);
}

void vd_doc_help_opts(FILE *f, const struct vd_doc_opt *opts)
{
	for (const struct vd_doc_opt *o = opts; o && o->name; o++) {
		char tag[128];
		int n;

		if (o->flags & VD_DOC_SHORT)
			n = snprintf(tag, sizeof tag, "  -%c, --%s", o->val, o->name);
		else
			n = snprintf(tag, sizeof tag, "      --%s", o->name);
		if (o->arg && n > 0 && (size_t)n < sizeof tag)
			snprintf(tag + n, sizeof tag - (size_t)n, " %s", o->arg);
		vd_doc_help_item(f, tag, o->help);
	}
}

/* ---- roff --------------------------------------------------------------- */

/* Escape n bytes of s; at_bol: s starts an output line. */
static void man_escape_n(FILE *f, const char *s, size_t n, bool at_bol)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (at_bol && (ch == '.' || ch == '\''))
			fputs("\\&", f);
		at_bol = false;
		if (ch == '\\')
			fputs("\\e", f);
		else if (ch == '-')
			fputs("\\-", f);
		else if (ch == '\n') {
			fputc('\n', f);
			at_bol = true;
		} else
			fputc(ch, f);
	}
}

void vd_doc_man_escape(FILE *f, const char *s)
{
	man_escape_n(f, s, strlen(s), false);
}

/* Paragraphs; in_item: inside a .TP entry, whose first paragraph follows
 * its tag and whose later ones are .IP so that they keep its indent. */
static void man_flow(FILE *f, const char *text, bool in_item)
{
	const char *p;
	size_t n;
	bool first = true;

	while (text && next_para(&text, &p, &n)) {
		bool pre = *p == ' ';

		if (!in_item)
			fputs(pre ? ".PP\n.RS 4\n" : ".PP\n", f);
		else if (!first)
			fputs(".IP\n", f);
		first = false;
		if (pre) {
			fputs(".nf\n", f);
			man_escape_n(f, p, n, true);
			fputs("\n.fi\n", f);
			if (!in_item)
				fputs(".RE\n", f);
			continue;
		}
		/* A reflowed paragraph: one word after another, lines of about
		 * 72 bytes, none starting with a space (that would break). */
		const char *q = p, *end = p + n;
		int col = 0;

		while (q < end) {
			while (q < end && (*q == ' ' || *q == '\n'))
				q++;
			if (q >= end)
				break;
			size_t w = strcspn(q, " \n");

			if (q + w > end)
				w = (size_t)(end - q);
			if (col && col + 1 + (int)w > 72) {
				fputc('\n', f);
				col = 0;
			}
			if (col) {
				fputc(' ', f);
				col++;
			}
			man_escape_n(f, q, w, col == 0);
			col += (int)w;
			q += w;
		}
		fputc('\n', f);
	}
}

void vd_doc_man_head(FILE *f, const char *name, int section, const char *summary)
{
	fprintf(f, ".\\\" Generated by `%s --man`: edit the tables in the source, not this.\n"
		   ".TH \"", name);
	for (const char *s = name; *s; s++)
		fputc(toupper((unsigned char)*s), f);
	/* Flags must never be split at a hyphen when rendered (nor text
	 * justified into gaps): readers copy them, and tests grep them. */
	fprintf(f, "\" \"%d\" \"\" \"vdfs\" \"vdfs manual\"\n.nh\n.ad l\n.SH NAME\n", section);
	man_escape_n(f, name, strlen(name), true);
	fputs(" \\- ", f);
	vd_doc_man_escape(f, summary);
	fputc('\n', f);
}

void vd_doc_man_section(FILE *f, const char *title)
{
	fputs(".SH \"", f);
	vd_doc_man_escape(f, title);
	fputs("\"\n", f);
}

void vd_doc_man_subsection(FILE *f, const char *title)
{
	fputs(".SS \"", f);
	vd_doc_man_escape(f, title);
	fputs("\"\n", f);
}

void vd_doc_man_text(FILE *f, const char *text)
{
	man_flow(f, text, false);
}

void vd_doc_man_item(FILE *f, const char *tag, const char *text)
{
	fputs(".TP\n\\fB", f);
	man_escape_n(f, tag, strlen(tag), false);
	fputs("\\fR\n", f);
	man_flow(f, text, true);
}

void vd_doc_man_opts(FILE *f, const struct vd_doc_opt *opts)
{
	for (const struct vd_doc_opt *o = opts; o && o->name; o++) {
		fputs(".TP\n", f);
		if (o->flags & VD_DOC_SHORT)
			fprintf(f, "\\fB\\-%c\\fR, ", o->val);
		fputs("\\fB\\-\\-", f);
		vd_doc_man_escape(f, o->name);
		fputs("\\fR", f);
		if (o->arg) {
			fputs(" \\fI", f);
			vd_doc_man_escape(f, o->arg);
			fputs("\\fR", f);
		}
		fputc('\n', f);
		man_flow(f, o->help, true);
	}
}

/* ---- a whole program ------------------------------------------------------ */

void vd_doc_help(FILE *f, const struct vd_doc *d)
{
	const char *s = d->synopsis ? d->synopsis : "";
	bool first = true;

	/* One usage line per form of the synopsis. */
	do {
		size_t n = strcspn(s, "\n");

		fprintf(f, "%s %s %.*s\n", first ? "usage:" : "      ", d->name, (int)n, s);
		s += n + (s[n] == '\n');
		first = false;
	} while (*s);
	fprintf(f, "\n%s - %s.\n", d->name, d->summary);
	if (d->description) {
		fputc('\n', f);
		vd_doc_help_text(f, d->description, 0);
	}
	if (d->opts && d->opts->name) {
		fputs("\noptions:\n", f);
		vd_doc_help_opts(f, d->opts);
	}
	for (const struct vd_doc_sect *x = d->sections; x && x->title; x++) {
		fputc('\n', f);
		for (const char *t = x->title; *t; t++)
			fputc(tolower((unsigned char)*t), f);
		fputs(":\n", f);
		vd_doc_help_text(f, x->text, 2);
	}
}

void vd_doc_man(FILE *f, const struct vd_doc *d)
{
	const char *s = d->synopsis ? d->synopsis : "";

	vd_doc_man_head(f, d->name, d->section, d->summary);
	vd_doc_man_section(f, "SYNOPSIS");
	fputs(".nf\n", f);
	do {
		size_t n = strcspn(s, "\n");

		fputs("\\fB", f);
		vd_doc_man_escape(f, d->name);
		fputs("\\fR ", f);
		man_escape_n(f, s, n, false);
		fputc('\n', f);
		s += n + (s[n] == '\n');
	} while (*s);
	fputs(".fi\n", f);
	if (d->description) {
		vd_doc_man_section(f, "DESCRIPTION");
		vd_doc_man_text(f, d->description);
	}
	if (d->opts && d->opts->name) {
		vd_doc_man_section(f, "OPTIONS");
		vd_doc_man_opts(f, d->opts);
	}
	for (const struct vd_doc_sect *x = d->sections; x && x->title; x++) {
		vd_doc_man_section(f, x->title);
		vd_doc_man_text(f, x->text);
	}
}
