/*
 * forecast.c - vdfs-forecast: day-ahead load forecasting.
 *
 *   vdfs-forecast train [--period N] [--lags L1,L2,...] [--script] < history.csv
 *   vdfs-forecast features [--period N] [--lags ...] [--from TIME] [--ahead K]
 *                 < history.csv
 *   vdfs-forecast predict (--model FILE | --coef TEXT) < rows.csv
 *
 * The model is the classic regression for day-ahead load: for each time of
 * day (slot: one of N per day, 48 for half-hours) a least-squares fit of the
 * load on the loads 1, 7 and 8 days earlier (lags N, 7N, 8N steps), with one
 * intercept per day type (Monday, Tuesday to Friday, Saturday, Sunday). The
 * 8-day lag lets the fit learn "a week ago, plus yesterday's change from the
 * week before", and the day types carry what a lag cannot see: Monday's
 * yesterday is a Sunday. Every lag is at least one day, so a whole day can
 * be forecast once the day before it is known. Each slot's fit is a small
 * dense least-squares problem, solved by Householder QR.
 *
 * `train` reads a history (rows "time,load"; a header is optional) and
 * writes the model: a short text of coefficients, or with --script a whole
 * vdfs function that runs `vdfs-forecast predict` with the model inside it.
 * Copied into a task as its function, a retrained model is then a new code
 * version, and lineage tells which model made which forecast.
 *
 * `predict` reads rows "time,lag48,lag336,lag384" (one column per lag of the
 * model, named lagL in an optional header; extra columns are ignored) and
 * writes "time,prediction" for every row, in order. A row whose time or
 * features are missing or not numbers gets an empty prediction and a line on
 * stderr, so the row count is kept.
 *
 * `features` turns a history into such rows: one per history row (with its
 * actual load as a last column, for scoring) and K more after its end (K up
 * to the shortest lag), the day to forecast.
 *
 * Times are "YYYY-MM-DD HH:MM[:SS]" (or with a 'T'; a trailing 'Z' is
 * allowed), wall-clock with no zone, on the grid of the period; or a
 * non-negative integer index of steps, step 0 being the first slot of a
 * Monday. docs/workloads.md has the full contract.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "lines.h"
#include "util.h"

/* No input line a forecaster needs is anywhere near this long. */
#define FC_LINE_MAX (1u << 20)
/* At most this many columns are looked at in a row. */
#define FC_FIELDS_MAX 64
/* Lags a model may use, and day types (fixed: see daytype()). */
#define FC_LAGS_MAX 16
#define FC_TYPES 4
#define FC_PARAMS_MAX (FC_TYPES + FC_LAGS_MAX)
/* A history spans at most this many steps (four million half-hours are
 * two centuries): the dense array of loads is 8 bytes a step. */
#define FC_SPAN_MAX 4000000
/* The model text: a few hundred bytes per slot. */
#define FC_MODEL_MAX (8u << 20)
#define FC_OUT_BLOCK (64u << 10)
#define FC_MAX_NOTES 50

static const char *const type_names[FC_TYPES] = { "mon", "tue-fri", "sat", "sun" };

static unsigned long notes;

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;

	if (++notes > FC_MAX_NOTES)
		return;
	va_start(ap, fmt);
	fputs("vdfs-forecast: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* One line on stderr for a failure of the whole command. */
__attribute__((format(printf, 1, 2)))
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("vdfs-forecast: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- fields, numbers, times ------------------------------------------- */

struct field {
	const char *p;
	size_t n;
};

/* Split a CSV line on commas, each field trimmed of blanks and of one pair
 * of surrounding double quotes. Quoted commas are not supported: no column
 * of these files holds one. Returns the number of fields (at most max). */
static size_t split_fields(struct field *f, size_t max, const char *s, size_t n)
{
	size_t nf = 0, i = 0;

	while (nf < max) {
		size_t a = i, b;

		while (i < n && s[i] != ',')
			i++;
		b = i;
		while (a < b && (s[a] == ' ' || s[a] == '\t'))
			a++;
		while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r'))
			b--;
		if (b - a >= 2 && s[a] == '"' && s[b - 1] == '"') {
			a++;
			b--;
		}
		f[nf].p = s + a;
		f[nf].n = b - a;
		nf++;
		if (i >= n)
			break;
		i++;
	}
	return nf;
}

/* A finite decimal number filling the whole field. */
static bool parse_number(const struct field *f, double *v)
{
	char tmp[64];
	char *end;

	if (f->n == 0 || f->n >= sizeof(tmp))
		return false;
	memcpy(tmp, f->p, f->n);
	tmp[f->n] = '\0';
	/* strtod would also take hex, "inf" and "nan": loads are decimals. */
	for (size_t i = 0; i < f->n; i++)
		if (!strchr("0123456789+-.eE", tmp[i]))
			return false;
	errno = 0;
	*v = strtod(tmp, &end);
	return !errno && *end == '\0' && isfinite(*v);
}

/* Read exactly `digits` decimal digits at s[*i]. */
static bool take_digits(const char *s, size_t n, size_t *i, int digits, int *out)
{
	int v = 0;

	for (int k = 0; k < digits; k++, (*i)++) {
		if (*i >= n || s[*i] < '0' || s[*i] > '9')
			return false;
		v = v * 10 + (s[*i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* The inverse, for the times `features` makes up after the history. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

enum time_kind { TK_NONE, TK_DATE, TK_INDEX };

/*
 * A time as a step number: for a date, steps since 1970-01-01 00:00 (which
 * must fall on the period's grid); for an index, the index itself. Sets
 * *kind. False if the field is neither.
 */
static bool parse_time(const struct field *f, int period, int64_t *step,
		       enum time_kind *kind)
{
	const char *s = f->p;
	size_t n = f->n, i = 0;
	int y, mo, d, h, mi, sec = 0;
	int64_t secs, grid = 86400 / period;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	if (i == n && n > 0 && n <= 18) {
		int64_t v = 0;

		for (i = 0; i < n; i++)
			v = v * 10 + (s[i] - '0');
		*step = v;
		*kind = TK_INDEX;
		return true;
	}
	i = 0;
	if (!take_digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' ||
	    !take_digits(s, n, &i, 2, &mo) || i >= n || s[i++] != '-' ||
	    !take_digits(s, n, &i, 2, &d) || i >= n || (s[i] != ' ' && s[i] != 'T'))
		return false;
	i++;
	if (!take_digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' ||
	    !take_digits(s, n, &i, 2, &mi))
		return false;
	if (i < n && s[i] == ':') {
		i++;
		if (!take_digits(s, n, &i, 2, &sec))
			return false;
	}
	if (i < n && s[i] == 'Z')
		i++;
	if (i != n || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    h > 23 || mi > 59 || sec > 59)
		return false;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return false;
	secs = h * 3600 + mi * 60 + sec;
	if (secs % grid)
		return false;
	*step = days_from_civil(y, mo, d) * period + secs / grid;
	*kind = TK_DATE;
	return true;
}

/* Day type of a step: 0 Monday, 1 Tuesday to Friday, 2 Saturday, 3 Sunday.
 * 1970-01-01 was a Thursday; index 0 is a Monday by definition. */
static int daytype(int64_t step, int period, enum time_kind kind)
{
	static const int type_of_wday[7] = { 0, 1, 1, 1, 1, 2, 3 };
	int64_t day = floor_div(step, period);
	int64_t wday = (day + (kind == TK_DATE ? 3 : 0)) % 7;

	return type_of_wday[wday < 0 ? wday + 7 : wday];
}

static int slot_of(int64_t step, int period)
{
	return (int)(step - floor_div(step, period) * period);
}

/* Append the time of a step, in the form the history used. */
static int add_time(struct vd_buf *b, int64_t step, int period, enum time_kind kind)
{
	int64_t day, y, mins;
	int m, d;

	if (kind == TK_INDEX)
		return vd_buf_addf(b, "%lld", (long long)step);
	day = floor_div(step, period);
	mins = (step - day * period) * (1440 / period);
	civil_from_days(day, &y, &m, &d);
	return vd_buf_addf(b, "%04lld-%02d-%02dT%02lld:%02lld", (long long)y, m, d,
			   (long long)(mins / 60), (long long)(mins % 60));
}

/* ---- options shared by the subcommands --------------------------------- */

struct opts {
	int period;
	int nlags;
	int lags[FC_LAGS_MAX];
	bool script;
	const char *model_file;
	const char *coef;
	const char *from;
	int ahead;
};

static bool parse_int_arg(const char *s, long lo, long hi, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return !errno && end != s && *end == '\0' && *out >= lo && *out <= hi;
}

static int parse_lags(struct opts *o, const char *s)
{
	const char *p = s;

	o->nlags = 0;
	while (*p) {
		char tmp[16];
		size_t n = strcspn(p, ",");
		long v;

		if (o->nlags == FC_LAGS_MAX || n == 0 || n >= sizeof(tmp))
			return -EINVAL;
		memcpy(tmp, p, n);
		tmp[n] = '\0';
		if (!parse_int_arg(tmp, 1, FC_SPAN_MAX / 2, &v))
			return -EINVAL;
		o->lags[o->nlags++] = (int)v;
		p += n;
		if (*p == ',')
			p++;
	}
	return o->nlags ? 0 : -EINVAL;
}

/* ---- histories --------------------------------------------------------- */

struct history {
	enum time_kind kind;
	int64_t first;        /* step of y[0] */
	size_t span;          /* y[] covers steps first .. first + span - 1 */
	double *y;            /* NAN where no load is known */
	size_t rows;          /* rows read, header excluded */
	size_t loads;         /* of which with a usable load */
	/* The rows in input order, for `features`. */
	int64_t *order;
	size_t norder, corder;
};

static void history_release(struct history *h)
{
	free(h->y);
	free(h->order);
	memset(h, 0, sizeof(*h));
}

struct point {
	int64_t step;
	double y;
};

/* Read "time,load" rows from stdin: a first line that is not a row is a
 * header; a later bad time skips its row with a note; a missing or
 * non-numeric load is a gap. */
static int history_read(struct history *h, int period)
{
	struct vd_lines in;
	struct point *pts = NULL, *np;
	size_t npts = 0, cpts = 0;
	int64_t lo = INT64_MAX, hi = INT64_MIN;
	const char *line;
	size_t len;
	int rc;

	memset(h, 0, sizeof(*h));
	rc = vd_lines_init(&in, STDIN_FILENO, FC_LINE_MAX);
	while (!rc) {
		struct field f[2];
		size_t nf;
		int64_t step;
		enum time_kind kind;
		double v;

		rc = vd_lines_next(&in, &line, &len, -1);
		if (rc == 0)
			break;
		if (rc == -EFBIG) {
			note("line %llu: longer than %u bytes; skipped",
			     (unsigned long long)in.lineno, FC_LINE_MAX);
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		rc = 0;
		nf = split_fields(f, 2, line, len);
		if (nf == 1 && f[0].n == 0)
			continue;       /* a blank line */
		if (!parse_time(&f[0], period, &step, &kind)) {
			if (in.lineno > 1)
				note("line %llu: '%.*s' is not a time on the grid of "
				     "period %d; row skipped", (unsigned long long)in.lineno,
				     (int)(f[0].n > 40 ? 40 : f[0].n), f[0].p, period);
			continue;
		}
		if (h->kind == TK_NONE)
			h->kind = kind;
		if (kind != h->kind) {
			fail("line %llu: the history mixes dates and indexes",
			     (unsigned long long)in.lineno);
			rc = -EINVAL;
			break;
		}
		h->rows++;
		if (nf < 2 || !parse_number(&f[1], &v)) {
			note("line %llu: no numeric load; taken as a gap",
			     (unsigned long long)in.lineno);
			v = NAN;
		}
		if (npts == cpts) {
			if (npts == FC_SPAN_MAX) {
				fail("the history has more than %d rows", FC_SPAN_MAX);
				rc = -EFBIG;
				break;
			}
			cpts = cpts ? cpts * 2 : 4096;
			if (cpts > FC_SPAN_MAX)
				cpts = FC_SPAN_MAX;
			np = realloc(pts, cpts * sizeof(*pts));
			if (!np) {
				rc = -ENOMEM;
				break;
			}
			pts = np;
		}
		pts[npts].step = step;
		pts[npts].y = v;
		npts++;
		if (step < lo)
			lo = step;
		if (step > hi)
			hi = step;
	}
	if (rc < 0 && rc != -EINVAL && rc != -EFBIG)
		fail("reading the history: %s", strerror(-rc));
	if (!rc && npts == 0) {
		fail("the history has no rows");
		rc = -EINVAL;
	}
	if (!rc && (uint64_t)(hi - lo) >= FC_SPAN_MAX) {
		fail("the history spans %lld steps; at most %d are supported",
		     (long long)(hi - lo + 1), FC_SPAN_MAX);
		rc = -EFBIG;
	}
	if (!rc) {
		h->first = lo;
		h->span = (size_t)(hi - lo + 1);
		h->y = malloc(h->span * sizeof(*h->y));
		h->order = malloc(npts * sizeof(*h->order));
		if (!h->y || !h->order)
			rc = -ENOMEM;
	}
	if (!rc) {
		bool *seen = calloc(h->span, sizeof(*seen));

		if (!seen)
			rc = -ENOMEM;
		for (size_t i = 0; !rc && i < h->span; i++)
			h->y[i] = NAN;
		for (size_t i = 0; !rc && i < npts; i++) {
			size_t k = (size_t)(pts[i].step - lo);

			/* A repeated time (a clock going back for daylight saving)
			 * keeps its first load. */
			if (seen[k]) {
				note("time step %lld appears twice; the first row counts",
				     (long long)pts[i].step);
				continue;
			}
			seen[k] = true;
			h->y[k] = pts[i].y;
			h->order[h->norder++] = pts[i].step;
			if (!isnan(pts[i].y))
				h->loads++;
		}
		free(seen);
	}
	free(pts);
	vd_lines_release(&in);
	if (rc)
		history_release(h);
	return rc;
}

/* The load at a step, NAN outside the history or in a gap. */
static double history_at(const struct history *h, int64_t step)
{
	if (step < h->first || step >= h->first + (int64_t)h->span)
		return NAN;
	return h->y[step - h->first];
}

/* ---- the model --------------------------------------------------------- */

struct model {
	int period;
	int nlags;
	int lags[FC_LAGS_MAX];
	double *coef;         /* period rows of FC_TYPES + nlags */
};

static int model_nparams(const struct model *m)
{
	return FC_TYPES + m->nlags;
}

static void model_release(struct model *m)
{
	free(m->coef);
	m->coef = NULL;
}

/* The model as text: what `predict --model` and `--coef` read. %.17g keeps
 * every coefficient exact, so a model file and a script predict alike. */
static int model_write(struct vd_buf *b, const struct model *m)
{
	int rc, np = model_nparams(m);

	rc = vd_buf_addf(b, "vdfs-forecast model 1\nperiod %d\nlags", m->period);
	for (int k = 0; !rc && k < m->nlags; k++)
		rc = vd_buf_addf(b, " %d", m->lags[k]);
	if (!rc)
		rc = vd_buf_adds(b, "\ndaytypes mon tue-fri sat sun\n# slot");
	for (int t = 0; !rc && t < FC_TYPES; t++)
		rc = vd_buf_addf(b, " %s", type_names[t]);
	for (int k = 0; !rc && k < m->nlags; k++)
		rc = vd_buf_addf(b, " lag%d", m->lags[k]);
	if (!rc)
		rc = vd_buf_adds(b, "\n");
	for (int s = 0; !rc && s < m->period; s++) {
		rc = vd_buf_addf(b, "slot %d", s);
		for (int j = 0; !rc && j < np; j++)
			rc = vd_buf_addf(b, " %.17g", m->coef[(size_t)s * np + j]);
		if (!rc)
			rc = vd_buf_adds(b, "\n");
	}
	return rc;
}

/* Split s at blanks into at most max words; returns how many. */
static size_t split_words(struct field *w, size_t max, const char *s, size_t n)
{
	size_t nw = 0, i = 0;

	while (i < n) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i == n)
			break;
		if (nw == max)
			return max + 1;
		w[nw].p = s + i;
		while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			i++;
		w[nw].n = (size_t)(s + i - w[nw].p);
		nw++;
	}
	return nw;
}

static bool word_is(const struct field *w, const char *s)
{
	return w->n == strlen(s) && !memcmp(w->p, s, w->n);
}

static bool word_int(const struct field *w, long lo, long hi, long *v)
{
	char tmp[24];

	if (w->n == 0 || w->n >= sizeof(tmp))
		return false;
	memcpy(tmp, w->p, w->n);
	tmp[w->n] = '\0';
	return parse_int_arg(tmp, lo, hi, v);
}

/* Parse a model text; on error a line on stderr and -EINVAL. */
static int model_parse(struct model *m, const char *text, size_t n)
{
	struct field w[2 + FC_PARAMS_MAX + 1];
	const char *p = text, *end = text + n;
	unsigned lineno = 0;
	size_t nw, filled = 0;
	bool *have = NULL;
	long v;
	int rc = 0, stage = 0;

	memset(m, 0, sizeof(*m));
	while (p < end && !rc) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		lineno++;
		nw = split_words(w, sizeof(w) / sizeof(w[0]), p, len);
		p += len + (nl ? 1 : 0);
		if (nw == 0 || w[0].p[0] == '#')
			continue;
		if (stage == 0) {
			/* The first line names the format. */
			if (nw != 3 || !word_is(&w[0], "vdfs-forecast") ||
			    !word_is(&w[1], "model") || !word_is(&w[2], "1"))
				rc = -EINVAL;
			stage = 1;
		} else if (stage == 1) {
			if (nw != 2 || !word_is(&w[0], "period") ||
			    !word_int(&w[1], 1, 100000, &v))
				rc = -EINVAL;
			else
				m->period = (int)v;
			stage = 2;
		} else if (stage == 2) {
			if (nw < 2 || nw > 1 + FC_LAGS_MAX || !word_is(&w[0], "lags"))
				rc = -EINVAL;
			for (size_t k = 1; !rc && k < nw; k++) {
				if (!word_int(&w[k], 1, FC_SPAN_MAX / 2, &v))
					rc = -EINVAL;
				else
					m->lags[m->nlags++] = (int)v;
			}
			stage = 3;
		} else if (stage == 3) {
			if (nw != 5 || !word_is(&w[0], "daytypes") ||
			    !word_is(&w[1], "mon") || !word_is(&w[2], "tue-fri") ||
			    !word_is(&w[3], "sat") || !word_is(&w[4], "sun"))
				rc = -EINVAL;
			m->coef = calloc((size_t)m->period * model_nparams(m), sizeof(double));
			have = calloc((size_t)m->period, sizeof(*have));
			if (!rc && (!m->coef || !have))
				rc = -ENOMEM;
			stage = 4;
		} else {
			int np = model_nparams(m);

			if (nw != (size_t)(2 + np) || !word_is(&w[0], "slot") ||
			    !word_int(&w[1], 0, m->period - 1, &v) || have[v]) {
				rc = -EINVAL;
				break;
			}
			have[v] = true;
			filled++;
			for (int j = 0; j < np && !rc; j++) {
				double *c = &m->coef[(size_t)v * np + j];

				if (!parse_number(&w[2 + j], c))
					rc = -EINVAL;
			}
		}
	}
	if (rc == -EINVAL)
		fail("model line %u is not what a vdfs-forecast model 1 has there", lineno);
	else if (!rc && (stage < 4 || filled != (size_t)m->period)) {
		fail("the model is incomplete: %zu of %d slots", filled, m->period);
		rc = -EINVAL;
	}
	free(have);
	if (rc)
		model_release(m);
	return rc;
}

/* ---- least squares ------------------------------------------------------ */

/*
 * Minimize |A x - b| for A with m rows and n columns (row-major, m >= n),
 * by Householder QR; A and b are overwritten. A column that adds nothing
 * to the ones before it (its pivot below 1e-10 of its own norm) makes the
 * problem rank deficient: -EDOM.
 */
static int lstsq(double *x, double *a, double *b, size_t m, size_t n)
{
	double colnorm[FC_PARAMS_MAX];

	if (m < n || n > FC_PARAMS_MAX)
		return -EDOM;
	for (size_t j = 0; j < n; j++) {
		double s = 0;

		for (size_t i = 0; i < m; i++)
			s += a[i * n + j] * a[i * n + j];
		colnorm[j] = sqrt(s);
	}
	for (size_t k = 0; k < n; k++) {
		double norm = 0, alpha, vnorm2 = 0;

		for (size_t i = k; i < m; i++)
			norm += a[i * n + k] * a[i * n + k];
		norm = sqrt(norm);
		if (colnorm[k] == 0 || norm <= 1e-10 * colnorm[k])
			return -EDOM;
		alpha = a[k * n + k] > 0 ? -norm : norm;
		/* v = column k below the diagonal, minus alpha e_k; kept in a. */
		a[k * n + k] -= alpha;
		for (size_t i = k; i < m; i++)
			vnorm2 += a[i * n + k] * a[i * n + k];
		for (size_t j = k + 1; j <= n; j++) {
			double dot = 0, f;

			for (size_t i = k; i < m; i++)
				dot += a[i * n + k] * (j < n ? a[i * n + j] : b[i]);
			f = 2 * dot / vnorm2;
			for (size_t i = k; i < m; i++) {
				if (j < n)
					a[i * n + j] -= f * a[i * n + k];
				else
					b[i] -= f * a[i * n + k];
			}
		}
		a[k * n + k] = alpha;   /* R's diagonal */
	}
	for (size_t kk = n; kk-- > 0;) {
		double s = b[kk];

		for (size_t j = kk + 1; j < n; j++)
			s -= a[kk * n + j] * x[j];
		x[kk] = s / a[kk * n + kk];
	}
	return 0;
}

/* ---- train --------------------------------------------------------------- */

/* The features of a step: loads at its lags; false if any is missing. */
static bool features_at(const struct history *h, const struct model *m,
			int64_t step, double *feat)
{
	for (int k = 0; k < m->nlags; k++) {
		feat[k] = history_at(h, step - m->lags[k]);
		if (isnan(feat[k]))
			return false;
	}
	return true;
}

static double predict_one(const struct model *m, int slot, int type, const double *feat)
{
	const double *c = &m->coef[(size_t)slot * model_nparams(m)];
	double y = c[type];

	for (int k = 0; k < m->nlags; k++)
		y += c[FC_TYPES + k] * feat[k];
	return y;
}

/* The hh:mm of a slot, for messages about it. */
static void slot_name(char out[16], int slot, int period, enum time_kind kind)
{
	int mins = slot * (1440 / period);

	if (kind == TK_DATE && 1440 % period == 0)
		snprintf(out, 16, "%02d:%02d", mins / 60, mins % 60);
	else
		snprintf(out, 16, "#%d", slot);
}

/* What a fit used and how well it fits its own history. */
struct fit_stats {
	size_t used;          /* rows with a load and every lag */
	double mape;          /* in-sample, percent */
};

static int fit(struct fit_stats *fs, struct model *m, const struct history *h)
{
	int np = model_nparams(m), rc = 0;
	size_t per = h->span / (size_t)m->period + 2, used = 0;
	double *a = malloc(per * np * sizeof(double));
	double *b = malloc(per * sizeof(double));
	double feat[FC_LAGS_MAX], ape = 0;
	size_t nape = 0;
	char sn[16];

	m->coef = calloc((size_t)m->period * np, sizeof(double));
	if (!a || !b || !m->coef) {
		rc = -ENOMEM;
		goto out;
	}
	for (int s = 0; s < m->period && !rc; s++) {
		size_t rows = 0, bytype[FC_TYPES] = { 0 };
		int64_t step0 = h->first + (((s - slot_of(h->first, m->period)) %
				 m->period) + m->period) % m->period;

		for (int64_t st = step0; st < h->first + (int64_t)h->span; st += m->period) {
			double y = history_at(h, st);
			int t;

			if (isnan(y) || !features_at(h, m, st, feat))
				continue;
			t = daytype(st, m->period, h->kind);
			memset(&a[rows * np], 0, np * sizeof(double));
			a[rows * np + t] = 1;
			memcpy(&a[rows * np + FC_TYPES], feat, m->nlags * sizeof(double));
			b[rows] = y;
			bytype[t]++;
			rows++;
		}
		slot_name(sn, s, m->period, h->kind);
		for (int t = 0; t < FC_TYPES; t++) {
			if (bytype[t] < 2) {
				fail("slot %s: %zu usable rows on %s days; training needs "
				     "at least 2 of each day type per slot, so a history "
				     "of the longest lag plus two weeks", sn, bytype[t],
				     type_names[t]);
				rc = -EINVAL;
				goto out;
			}
		}
		if (rows < (size_t)np * 2) {
			fail("slot %s: only %zu usable rows for %d coefficients",
			     sn, rows, np);
			rc = -EINVAL;
			goto out;
		}
		rc = lstsq(&m->coef[(size_t)s * np], a, b, rows, (size_t)np);
		if (rc) {
			fail("slot %s: the loads at the lags are collinear; "
			     "no unique fit", sn);
			goto out;
		}
		used += rows;
	}
	/* In-sample fit, for the log. */
	for (size_t i = 0; i < h->span; i++) {
		int64_t st = h->first + (int64_t)i;
		double y = h->y[i];

		if (isnan(y) || y == 0 || !features_at(h, m, st, feat))
			continue;
		ape += fabs(predict_one(m, slot_of(st, m->period),
					daytype(st, m->period, h->kind), feat) - y) / fabs(y);
		nape++;
	}
	fs->used = used;
	fs->mape = nape ? 100 * ape / (double)nape : NAN;
	fprintf(stderr, "vdfs-forecast: trained on %zu rows (%zu with a load) "
		"of %zu read; in-sample MAPE %.3f %%\n", used, h->loads, h->rows,
		fs->mape);
out:
	free(a);
	free(b);
	return rc;
}

static void default_lags(struct opts *o)
{
	if (o->nlags == 0) {
		o->nlags = 3;
		o->lags[0] = o->period;
		o->lags[1] = 7 * o->period;
		o->lags[2] = 8 * o->period;
	}
}

static int cmd_train(struct opts *o)
{
	struct history h;
	struct model m = { 0 };
	struct fit_stats fs = { 0 };
	struct vd_buf out = VD_BUF_INIT(FC_MODEL_MAX + 4096);
	struct vd_buf text = VD_BUF_INIT(FC_MODEL_MAX);
	char t0[40] = "", t1[40] = "";
	int rc;

	default_lags(o);
	rc = history_read(&h, o->period);
	if (rc)
		return rc;
	m.period = o->period;
	m.nlags = o->nlags;
	memcpy(m.lags, o->lags, sizeof(m.lags));
	rc = fit(&fs, &m, &h);
	if (!rc)
		rc = model_write(&text, &m);
	if (!rc && !o->script) {
		rc = vd_buf_add(&out, text.data, text.len);
	} else if (!rc) {
		struct vd_buf tb = VD_BUF_INIT(40);

		if (!add_time(&tb, h.first, o->period, h.kind))
			snprintf(t0, sizeof(t0), "%s", tb.data);
		vd_buf_reset(&tb);
		if (!add_time(&tb, h.first + (int64_t)h.span - 1, o->period, h.kind))
			snprintf(t1, sizeof(t1), "%s", tb.data);
		vd_buf_release(&tb);
		/* The model rides in a single-quoted argument: it holds no quote. */
		rc = vd_buf_addf(&out,
			"#!/bin/sh\n"
			"# Made by `vdfs-forecast train --script`: a day-ahead load model\n"
			"# fitted on %zu loads from %s to %s (%zu rows\n"
			"# with every lag); in-sample MAPE %.3f %%. Input rows: time and the\n"
			"# lags named below (`vdfs-forecast features` writes them); output\n"
			"# rows: time,prediction.\n"
			"exec vdfs-forecast predict --coef '\n%s'\n",
			h.loads, t0, t1, fs.used, fs.mape, text.data);
	}
	if (!rc)
		rc = vd_write_all(STDOUT_FILENO, out.data, out.len);
	vd_buf_release(&out);
	vd_buf_release(&text);
	model_release(&m);
	history_release(&h);
	return rc;
}

/* ---- features ------------------------------------------------------------ */

static int cmd_features(struct opts *o)
{
	struct history h;
	struct model m = { 0 };
	struct vd_buf out = VD_BUF_INIT(FC_OUT_BLOCK * 2);
	int64_t from = INT64_MIN, last;
	double feat[FC_LAGS_MAX];
	int rc, minlag;

	default_lags(o);
	m.period = o->period;
	m.nlags = o->nlags;
	memcpy(m.lags, o->lags, sizeof(m.lags));
	minlag = m.lags[0];
	for (int k = 1; k < m.nlags; k++)
		if (m.lags[k] < minlag)
			minlag = m.lags[k];
	if (o->ahead > minlag) {
		fail("--ahead %d: at most %d steps (the shortest lag) can be "
		     "forecast from the history", o->ahead, minlag);
		return -EINVAL;
	}
	rc = history_read(&h, o->period);
	if (rc)
		return rc;
	if (o->from) {
		struct field f = { o->from, strlen(o->from) };
		enum time_kind kind;

		if (!parse_time(&f, o->period, &from, &kind) || kind != h.kind) {
			fail("--from '%s' is not a time of the kind the history uses", o->from);
			rc = -EINVAL;
		}
	}
	rc = rc ? rc : vd_buf_adds(&out, "time");
	for (int k = 0; !rc && k < m.nlags; k++)
		rc = vd_buf_addf(&out, ",lag%d", m.lags[k]);
	if (!rc)
		rc = vd_buf_adds(&out, ",load\n");
	last = h.first + (int64_t)h.span - 1;
	for (size_t i = 0; !rc && i < h.norder + (size_t)o->ahead; i++) {
		int64_t st = i < h.norder ? h.order[i] : last + (int64_t)(i - h.norder) + 1;
		double y = history_at(&h, st);

		if (st < from)
			continue;
		rc = add_time(&out, st, o->period, h.kind);
		features_at(&h, &m, st, feat);
		for (int k = 0; !rc && k < m.nlags; k++)
			rc = isnan(feat[k]) ? vd_buf_adds(&out, ",") :
			     vd_buf_addf(&out, ",%.15g", feat[k]);
		if (!rc)
			rc = isnan(y) ? vd_buf_adds(&out, ",\n") : vd_buf_addf(&out, ",%.15g\n", y);
		if (!rc)
			rc = vd_out_flush(&out, STDOUT_FILENO, FC_OUT_BLOCK);
	}
	if (!rc)
		rc = vd_out_flush(&out, STDOUT_FILENO, 0);
	vd_buf_release(&out);
	history_release(&h);
	return rc;
}

/* ---- predict ------------------------------------------------------------- */

/* Is this first line a header: names, no field a number or a time? */
static bool is_header(const struct field *f, size_t nf, int period)
{
	bool letters = false;

	for (size_t i = 0; i < nf; i++) {
		int64_t st;
		enum time_kind kind;
		double v;

		if (parse_number(&f[i], &v) || parse_time(&f[i], period, &st, &kind))
			return false;
		for (size_t j = 0; j < f[i].n; j++)
			if ((f[i].p[j] | 0x20) >= 'a' && (f[i].p[j] | 0x20) <= 'z')
				letters = true;
	}
	return letters;
}

/* Map the model's lags to the header's columns named lagL. */
static int map_columns(int *col, const struct model *m, const struct field *f, size_t nf)
{
	for (int k = 0; k < m->nlags; k++) {
		char name[24];

		snprintf(name, sizeof(name), "lag%d", m->lags[k]);
		col[k] = -1;
		for (size_t i = 1; i < nf; i++)
			if (word_is(&f[i], name))
				col[k] = (int)i;
		if (col[k] < 0) {
			fail("the input's header has no column %s, which the model needs", name);
			return -EINVAL;
		}
	}
	return 0;
}

/* One output row for an input row: "time,prediction", the prediction empty
 * (and a note) when the row lacks what the model needs. */
static int predict_row(struct vd_buf *out, const struct model *m, const int *col,
		       const struct field *f, size_t nf, uint64_t lineno)
{
	double feat[FC_LAGS_MAX];
	int64_t st;
	enum time_kind kind;
	int rc;

	rc = vd_csv_add_field(out, f[0].p, f[0].n);
	if (!rc)
		rc = vd_buf_add(out, ",", 1);
	if (rc)
		return rc;
	if (!parse_time(&f[0], m->period, &st, &kind)) {
		note("line %llu: '%.*s' is not a time on the grid of period %d; "
		     "no prediction", (unsigned long long)lineno,
		     (int)(f[0].n > 40 ? 40 : f[0].n), f[0].p, m->period);
		return vd_buf_add(out, "\n", 1);
	}
	for (int k = 0; k < m->nlags; k++) {
		if ((size_t)col[k] >= nf || !parse_number(&f[col[k]], &feat[k])) {
			note("line %llu: lag%d is missing or not a number; no prediction",
			     (unsigned long long)lineno, m->lags[k]);
			return vd_buf_add(out, "\n", 1);
		}
	}
	return vd_buf_addf(out, "%.10g\n", predict_one(m, slot_of(st, m->period),
			   daytype(st, m->period, kind), feat));
}

/* The row of an over-long line: its first bytes and "...", as the time
 * field, and no prediction. */
static int add_long_row(struct vd_buf *out, const struct vd_lines *in)
{
	struct vd_buf head = VD_BUF_INIT(VD_LINES_PREFIX + 8);
	int rc;

	rc = vd_buf_add(&head, in->long_prefix, in->long_prefix_len);
	if (!rc)
		rc = vd_buf_adds(&head, "...");
	if (!rc)
		rc = vd_csv_add_field(out, head.data, head.len);
	if (!rc)
		rc = vd_buf_adds(out, ",\n");
	vd_buf_release(&head);
	return rc;
}

static int cmd_predict(struct opts *o)
{
	struct model m = { 0 };
	struct vd_buf text = VD_BUF_INIT(FC_MODEL_MAX);
	struct vd_buf out = VD_BUF_INIT(FC_OUT_BLOCK + FC_LINE_MAX + 64);
	struct vd_lines in;
	struct field f[FC_FIELDS_MAX];
	int col[FC_LAGS_MAX];
	const char *line;
	size_t len, nf;
	bool first = true;
	int rc;

	if (o->model_file) {
		rc = vd_read_file(&text, o->model_file);
		if (rc) {
			fail("cannot read the model %s: %s", o->model_file, strerror(-rc));
			return rc;
		}
		rc = model_parse(&m, text.data, text.len);
	} else {
		rc = model_parse(&m, o->coef, strlen(o->coef));
	}
	vd_buf_release(&text);
	if (rc)
		return rc;
	for (int k = 0; k < m.nlags; k++)
		col[k] = 1 + k;
	rc = vd_lines_init(&in, STDIN_FILENO, FC_LINE_MAX);
	while (!rc) {
		rc = vd_lines_next(&in, &line, &len, -1);
		if (rc == 0)
			break;
		if (rc == -EFBIG) {
			/* Kept as a row: its first bytes, and no prediction. */
			note("line %llu: longer than %u bytes; no prediction",
			     (unsigned long long)in.lineno, FC_LINE_MAX);
			rc = add_long_row(&out, &in);
		} else if (rc < 0) {
			fail("reading the input: %s", strerror(-rc));
			break;
		} else {
			rc = 0;
			nf = split_fields(f, FC_FIELDS_MAX, line, len);
			if (nf == 1 && f[0].n == 0)
				continue;       /* a blank line is no row */
			if (first && is_header(f, nf, m.period))
				rc = map_columns(col, &m, f, nf);
			else
				rc = predict_row(&out, &m, col, f, nf, in.lineno);
			first = false;
		}
		if (!rc)
			rc = vd_out_flush(&out, STDOUT_FILENO, FC_OUT_BLOCK);
	}
	if (!rc)
		rc = vd_out_flush(&out, STDOUT_FILENO, 0);
	vd_lines_release(&in);
	vd_buf_release(&out);
	model_release(&m);
	return rc;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *to)
{
	fputs("usage: vdfs-forecast train [--period N] [--lags L1,L2,...] [--script] < history.csv\n"
	      "       vdfs-forecast features [--period N] [--lags L1,...] [--from TIME] [--ahead K]\n"
	      "                     < history.csv\n"
	      "       vdfs-forecast predict (--model FILE | --coef TEXT) < rows.csv\n"
	      "history rows: time,load; predict rows: time,lagL1,lagL2,... (see\n"
	      "docs/workloads.md). Defaults: --period 48 (half-hours), lags of 1, 7\n"
	      "and 8 days.\n", to);
}

static int forecast_unit(int argc, char **argv, void *ctx)
{
	struct opts o = { .period = 48 };
	const char *cmd;
	long v;
	int i, rc;

	(void)ctx;
	notes = 0;
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	for (i = 2; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = strcmp(a, "--script") != 0;

		if (takes && !val) {
			fail("%s needs a value", a);
			return 2;
		}
		if (!strcmp(a, "--script")) {
			o.script = true;
		} else if (!strcmp(a, "--period")) {
			if (!parse_int_arg(val, 1, 1440, &v) || 1440 % v) {
				fail("--period wants a divisor of 1440 (steps per day)");
				return 2;
			}
			o.period = (int)v;
		} else if (!strcmp(a, "--lags")) {
			if (parse_lags(&o, val)) {
				fail("--lags wants up to %d positive step counts, "
				     "comma-separated", FC_LAGS_MAX);
				return 2;
			}
		} else if (!strcmp(a, "--model")) {
			o.model_file = val;
		} else if (!strcmp(a, "--coef")) {
			o.coef = val;
		} else if (!strcmp(a, "--from")) {
			o.from = val;
		} else if (!strcmp(a, "--ahead")) {
			if (!parse_int_arg(val, 0, FC_SPAN_MAX, &v)) {
				fail("--ahead wants a number of steps");
				return 2;
			}
			o.ahead = (int)v;
		} else {
			fail("unknown option '%s' (see vdfs-forecast --help)", a);
			return 2;
		}
		i += takes;
	}
	if (!strcmp(cmd, "train")) {
		rc = cmd_train(&o);
	} else if (!strcmp(cmd, "features")) {
		rc = cmd_features(&o);
	} else if (!strcmp(cmd, "predict")) {
		if (!o.model_file == !o.coef) {
			fail("predict needs one of --model FILE and --coef TEXT");
			return 2;
		}
		rc = cmd_predict(&o);
	} else {
		fail("unknown %s '%s' (see vdfs-forecast --help)",
		     cmd[0] == '-' ? "option" : "command", cmd);
		return 2;
	}
	if (notes > FC_MAX_NOTES)
		fprintf(stderr, "vdfs-forecast: %lu problems in all (the first %d "
			"are shown)\n", notes, FC_MAX_NOTES);
	if (rc && rc != -EINVAL && rc != -EFBIG)
		fail("%s", strerror(-rc));
	return rc ? 1 : 0;
}

/* One unit per process, or one per frame with VDFS_MODE=persistent
 * (frame.h); each unit parses its options and reads its model again. */
int main(int argc, char **argv)
{
	return vd_frame_main(argc, argv, forecast_unit, NULL);
}
