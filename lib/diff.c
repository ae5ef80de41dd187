/*
 * diff.c - unified line diffs of stored files in bounded memory (diff.h).
 *
 * Three layers:
 *   vd_diff_seq    Myers' O(ND) longest common subsequence over symbols
 *                  (used twice: over chunk IDs, then over lines);
 *   the hunker     turns a stream of equal / removed / added lines into
 *                  `diff -u` hunks with their line ranges;
 *   vd_diff_files  aligns two files by chunk ID, widens each stretch between
 *                  shared chunks to whole lines plus context, and line-diffs
 *                  those regions window by window.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "diff.h"

void vd_diff_opts_default(struct vd_diff_opts *o)
{
	memset(o, 0, sizeof *o);
	o->context = 3;
	o->window = (size_t)4 << 20;
	o->window_lines = 100000;
	o->max_line = (size_t)16 << 20;
	o->cache = (size_t)32 << 20;
	o->out = stdout;
}

/* ---- the longest common subsequence --------------------------------- */

/*
 * This follows GNU diff's analyze.c (Myers 1986 with the linear-space
 * middle snake): diag() finds where a shortest edit script crosses the
 * middle, and the caller splits there. After too_expensive rounds it gives
 * up on minimality and splits at the furthest-reaching diagonal, which
 * bounds the time on very different inputs.
 */
struct seq {
	const uint32_t *x, *y;
	bool *cx, *cy;
	ptrdiff_t *fd, *bd;   /* furthest x per diagonal, forward and backward */
	ptrdiff_t too_expensive;
};

struct part {
	ptrdiff_t xmid, ymid;
	bool lo_minimal, hi_minimal;
};

struct job {
	ptrdiff_t xoff, xlim, yoff, ylim;
	bool minimal;
};

static void diag(struct part *p, const struct seq *s, ptrdiff_t xoff, ptrdiff_t xlim,
		 ptrdiff_t yoff, ptrdiff_t ylim, bool minimal)
{
	ptrdiff_t *fd = s->fd, *bd = s->bd;
	const uint32_t *xv = s->x, *yv = s->y;
	const ptrdiff_t dmin = xoff - ylim, dmax = xlim - yoff;
	const ptrdiff_t fmid = xoff - yoff, bmid = xlim - ylim;
	ptrdiff_t fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
	const bool odd = (fmid - bmid) & 1;

	fd[fmid] = xoff;
	bd[bmid] = xlim;
	for (ptrdiff_t c = 1;; c++) {
		ptrdiff_t d;

		if (fmin > dmin)
			fd[--fmin - 1] = -1;
		else
			++fmin;
		if (fmax < dmax)
			fd[++fmax + 1] = -1;
		else
			--fmax;
		for (d = fmax; d >= fmin; d -= 2) {
			ptrdiff_t tlo = fd[d - 1], thi = fd[d + 1];
			ptrdiff_t x = tlo >= thi ? tlo + 1 : thi, y = x - d;
			while (x < xlim && y < ylim && xv[x] == yv[y]) {
				x++;
				y++;
			}
			fd[d] = x;
			if (odd && bmin <= d && d <= bmax && bd[d] <= x) {
				*p = (struct part){ x, y, true, true };
				return;
			}
		}
		if (bmin > dmin)
			bd[--bmin - 1] = PTRDIFF_MAX;
		else
			++bmin;
		if (bmax < dmax)
			bd[++bmax + 1] = PTRDIFF_MAX;
		else
			--bmax;
		for (d = bmax; d >= bmin; d -= 2) {
			ptrdiff_t tlo = bd[d - 1], thi = bd[d + 1];
			ptrdiff_t x = tlo < thi ? tlo : thi - 1, y = x - d;
			while (x > xoff && y > yoff && xv[x - 1] == yv[y - 1]) {
				x--;
				y--;
			}
			bd[d] = x;
			if (!odd && fmin <= d && d <= fmax && x <= fd[d]) {
				*p = (struct part){ x, y, true, true };
				return;
			}
		}
		if (minimal || c < s->too_expensive)
			continue;

		/* Too expensive: take the forward diagonal reaching furthest
		 * (max x + y) or the backward one (min x + y), whichever got
		 * further from its end. */
		ptrdiff_t fxybest = -1, fxbest = xoff, bxybest = PTRDIFF_MAX, bxbest = xlim;
		for (d = fmax; d >= fmin; d -= 2) {
			ptrdiff_t x = fd[d] < xlim ? fd[d] : xlim, y = x - d;
			if (ylim < y) {
				x = ylim + d;
				y = ylim;
			}
			if (fxybest < x + y) {
				fxybest = x + y;
				fxbest = x;
			}
		}
		for (d = bmax; d >= bmin; d -= 2) {
			ptrdiff_t x = bd[d] > xoff ? bd[d] : xoff, y = x - d;
			if (y < yoff) {
				x = yoff + d;
				y = yoff;
			}
			if (x + y < bxybest) {
				bxybest = x + y;
				bxbest = x;
			}
		}
		if ((xlim + ylim) - bxybest < fxybest - (xoff + yoff))
			*p = (struct part){ fxbest, fxybest - fxbest, true, false };
		else
			*p = (struct part){ bxbest, bxybest - bxbest, false, true };
		return;
	}
}

static int push_job(struct job **st, size_t *n, size_t *cap, struct job j)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct job *ns = realloc(*st, nc * sizeof *ns);
		if (!ns)
			return -ENOMEM;
		*st = ns;
		*cap = nc;
	}
	(*st)[(*n)++] = j;
	return 0;
}

/* Mark the changes between s->x[0..nx) and s->y[0..ny). An explicit stack
 * instead of recursion: a heuristic split can be lopsided, and a deep
 * recursion on a large window would risk the stack. */
static int compareseq(struct seq *s, ptrdiff_t nx, ptrdiff_t ny)
{
	struct job *st = NULL;
	size_t n = 0, cap = 0;
	int rc = push_job(&st, &n, &cap, (struct job){ 0, nx, 0, ny, false });

	while (!rc && n) {
		struct job j = st[--n];
		struct part p;

		while (j.xoff < j.xlim && j.yoff < j.ylim && s->x[j.xoff] == s->y[j.yoff]) {
			j.xoff++;
			j.yoff++;
		}
		while (j.xlim > j.xoff && j.ylim > j.yoff && s->x[j.xlim - 1] == s->y[j.ylim - 1]) {
			j.xlim--;
			j.ylim--;
		}
		if (j.xoff == j.xlim) {
			for (ptrdiff_t i = j.yoff; i < j.ylim; i++)
				s->cy[i] = true;
			continue;
		}
		if (j.yoff == j.ylim) {
			for (ptrdiff_t i = j.xoff; i < j.xlim; i++)
				s->cx[i] = true;
			continue;
		}
		diag(&p, s, j.xoff, j.xlim, j.yoff, j.ylim, j.minimal);
		/* A heuristic split at either end would make no progress; redo
		 * that part minimally (the middle snake is always inside). */
		if ((p.xmid == j.xoff && p.ymid == j.yoff) || (p.xmid == j.xlim && p.ymid == j.ylim)) {
			j.minimal = true;
			rc = push_job(&st, &n, &cap, j);
			continue;
		}
		rc = push_job(&st, &n, &cap, (struct job){ p.xmid, j.xlim, p.ymid, j.ylim, p.hi_minimal });
		if (!rc)
			rc = push_job(&st, &n, &cap,
				      (struct job){ j.xoff, p.xmid, j.yoff, p.ymid, p.lo_minimal });
	}
	free(st);
	return rc;
}

int vd_diff_seq(bool *chg_a, bool *chg_b, const uint32_t *a, size_t na,
		const uint32_t *b, size_t nb, uint32_t nsym)
{
	unsigned char *seen = calloc((size_t)nsym + 1, 1);   /* bit 0: in a, bit 1: in b */
	uint32_t *x = malloc((na + 1) * sizeof *x), *y = malloc((nb + 1) * sizeof *y);
	size_t *xi = malloc((na + 1) * sizeof *xi), *yi = malloc((nb + 1) * sizeof *yi);
	bool *cx = calloc(na + 1, 1), *cy = calloc(nb + 1, 1);
	ptrdiff_t *fdv = NULL, *bdv = NULL;
	size_t nx = 0, ny = 0, i;
	int rc = -ENOMEM;

	if (!seen || !x || !y || !xi || !yi || !cx || !cy)
		goto out;
	for (i = 0; i < na; i++)
		seen[a[i]] |= 1;
	for (i = 0; i < nb; i++)
		seen[b[i]] |= 2;
	/* A symbol found on one side only is a change whatever the alignment;
	 * setting such elements aside first makes very different inputs cheap
	 * and keeps the result minimal. */
	for (i = 0; i < na; i++) {
		chg_a[i] = seen[a[i]] != 3;
		if (!chg_a[i]) {
			x[nx] = a[i];
			xi[nx++] = i;
		}
	}
	for (i = 0; i < nb; i++) {
		chg_b[i] = seen[b[i]] != 3;
		if (!chg_b[i]) {
			y[ny] = b[i];
			yi[ny++] = i;
		}
	}
	size_t diags = nx + ny + 3;
	fdv = malloc(diags * sizeof *fdv);
	bdv = malloc(diags * sizeof *bdv);
	if (!fdv || !bdv)
		goto out;
	struct seq s = { x, y, cx, cy, fdv + ny + 1, bdv + ny + 1, 1 };
	/* GNU diff's cost cap: about the square root of the diagonals, at
	 * least 4,096. */
	for (size_t d = diags; d; d >>= 2)
		s.too_expensive <<= 1;
	if (s.too_expensive < 4096)
		s.too_expensive = 4096;
	if ((rc = compareseq(&s, (ptrdiff_t)nx, (ptrdiff_t)ny)))
		goto out;
	for (i = 0; i < nx; i++)
		chg_a[xi[i]] = cx[i];
	for (i = 0; i < ny; i++)
		chg_b[yi[i]] = cy[i];
	rc = 0;
out:
	free(seen);
	free(x);
	free(y);
	free(xi);
	free(yi);
	free(cx);
	free(cy);
	free(fdv);
	free(bdv);
	return rc;
}

/* ---- interning: equal byte strings get equal small numbers ----------- */

struct slot {
	uint64_t h;
	const char *p;
	size_t len;
	uint32_t cls;    /* class + 1; 0 is an empty slot */
};

struct intern {
	struct slot *t;
	size_t mask;
	uint32_t n;
};

static int intern_init(struct intern *it, size_t items)
{
	size_t cap = 16;
	while (cap < 2 * items + 2)
		cap *= 2;
	it->t = calloc(cap, sizeof *it->t);
	it->mask = cap - 1;
	it->n = 0;
	return it->t ? 0 : -ENOMEM;
}

static uint32_t intern_get(struct intern *it, const char *p, size_t len)
{
	uint64_t h = XXH3_64bits(p, len);
	size_t i = (size_t)h & it->mask;
	while (it->t[i].cls) {
		const struct slot *s = &it->t[i];
		if (s->h == h && s->len == len && !memcmp(s->p, p, len))
			return s->cls - 1;
		i = (i + 1) & it->mask;
	}
	it->t[i] = (struct slot){ h, p, len, ++it->n };
	return it->n - 1;
}

static void intern_free(struct intern *it)
{
	free(it->t);
	it->t = NULL;
}

/* ---- the hunker: a stream of lines to `diff -u` hunks ----------------- */

/*
 * Lines arrive as equal (in both files), removed (from a) or added (to b),
 * in order. A hunk opens at the first change with up to `context` equal
 * lines before it, and closes once more than 2 × context equal lines follow
 * its last change (GNU diff joins changes closer than that into one hunk);
 * equal lines past the first `context` after a change wait in a ring until
 * it is known which hunk, if any, they belong to. A hunk's range header is
 * known only when it closes, so its body is kept in memory up to a cap and
 * spills to a temporary file beyond it.
 */
#define BODY_CAP ((size_t)4 << 20)
#define RING_MAX 64

struct hunker {
	FILE *out;
	const char *label_a, *label_b;
	bool header_done;
	int k;                        /* context */
	uint64_t na, nb;              /* lines of a and b passed so far */
	bool open;
	uint64_t ha, hb, hca, hcb;    /* the open hunk: first lines (0-based), counts */
	uint64_t eq_run;              /* equal lines since its last change */
	struct vd_buf body;
	FILE *spill;
	struct vd_buf ring[RING_MAX];
	int ring_n, ring_head;
	struct vd_diff_stats *st;
	int err;                      /* first error, sticky */
	uint64_t limit;               /* opts.limit (0: none) */
	uint64_t made;                /* bytes printed and in the open hunk's body */
	bool stop;                    /* a line did not fit the limit: take no more */
};

static void hunker_init(struct hunker *h, FILE *out, int k, struct vd_diff_stats *st,
			size_t max_line, uint64_t limit)
{
	memset(h, 0, sizeof *h);
	h->out = out;
	h->limit = limit;
	h->k = k < 0 ? 0 : k > RING_MAX ? RING_MAX : k;
	h->st = st;
	vd_buf_init(&h->body, BODY_CAP);
	for (int i = 0; i < RING_MAX; i++)
		vd_buf_init(&h->ring[i], max_line + 1);
}

static void hunker_release(struct hunker *h)
{
	vd_buf_release(&h->body);
	if (h->spill)
		fclose(h->spill);
	h->spill = NULL;
	for (int i = 0; i < RING_MAX; i++)
		vd_buf_release(&h->ring[i]);
}

static void body_add(struct hunker *h, const void *p, size_t n)
{
	if (h->err)
		return;
	if (!h->spill && vd_buf_add(&h->body, p, n) == 0)
		return;
	if (!h->spill) {
		if (!(h->spill = tmpfile())) {
			h->err = -errno;
			return;
		}
		if (h->body.len && fwrite(h->body.data, 1, h->body.len, h->spill) != h->body.len)
			h->err = -EIO;
		vd_buf_reset(&h->body);
	}
	if (n && fwrite(p, 1, n, h->spill) != n)
		h->err = -EIO;
}

/* GNU's note after a line that has no newline (the last line of a file). */
static const char NO_NEWLINE[] = "\n\\ No newline at end of file\n";

/* One line of the body: its mark, its bytes, and the note when due. */
static void body_line(struct hunker *h, char mark, const char *p, size_t n)
{
	body_add(h, &mark, 1);
	body_add(h, p, n);
	h->made += 1 + n;
	if (!n || p[n - 1] != '\n') {
		body_add(h, NO_NEWLINE, sizeof NO_NEWLINE - 1);
		h->made += sizeof NO_NEWLINE - 1;
	}
}

/* What body_line adds for a line of n bytes ending in last. */
static uint64_t line_bytes(size_t n, char last)
{
	return 1 + (uint64_t)n + (!n || last != '\n' ? sizeof NO_NEWLINE - 1 : 0);
}

static uint64_t digits(uint64_t v)
{
	uint64_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* The length of what print_range prints. */
static uint64_t range_len(uint64_t start, uint64_t count)
{
	if (count == 0)
		return digits(start) + 2;
	if (count == 1)
		return digits(start + 1);
	return digits(start + 1) + 1 + digits(count);
}

/*
 * Would `more` bytes of hunk lines, which make the hunk they go to start
 * at lines (ha, hb) and hold (ca, cb) lines, keep the output within the
 * limit? Counted with that hunk's header as it would be printed if it
 * closed right after (later lines are checked with their own counts, so
 * the header printed in the end was counted exactly) and, before the
 * first hunk, the file's two header lines. No: the diff stops here.
 */
static bool fits(struct hunker *h, uint64_t more, uint64_t ha, uint64_t hb, uint64_t ca,
		 uint64_t cb)
{
	uint64_t need = h->made + more + 4 + range_len(ha, ca) + 2 + range_len(hb, cb) + 4;

	if (!h->limit)
		return true;
	if (!h->header_done)
		need += strlen(h->label_a) + strlen(h->label_b) + 10;
	if (need <= h->limit)
		return true;
	h->stop = true;
	return false;
}

/* Bytes printed by one fprintf, for the limit (0 on an error, which
 * ferror reports at the end). */
static uint64_t printed(int n)
{
	return n > 0 ? (uint64_t)n : 0;
}

static uint64_t print_range(FILE *f, uint64_t start, uint64_t count)
{
	/* GNU diff: an empty range names the line before it; a one-line range
	 * has no count. */
	if (count == 0)
		return printed(fprintf(f, "%llu,0", (unsigned long long)start));
	if (count == 1)
		return printed(fprintf(f, "%llu", (unsigned long long)start + 1));
	return printed(fprintf(f, "%llu,%llu", (unsigned long long)start + 1,
			       (unsigned long long)count));
}

static void hunker_header(struct hunker *h)
{
	if (!h->header_done) {
		h->made += printed(fprintf(h->out, "--- %s\n+++ %s\n", h->label_a, h->label_b));
		h->header_done = true;
	}
}

static void hunk_close(struct hunker *h)
{
	if (!h->open)
		return;
	hunker_header(h);
	fputs("@@ -", h->out);
	h->made += 4 + print_range(h->out, h->ha, h->hca);
	fputs(" +", h->out);
	h->made += 2 + print_range(h->out, h->hb, h->hcb);
	fputs(" @@\n", h->out);
	h->made += 4;
	if (h->spill) {
		char buf[65536];
		size_t n;
		if (fflush(h->spill) || fseek(h->spill, 0, SEEK_SET))
			h->err = h->err ? h->err : -EIO;
		while ((n = fread(buf, 1, sizeof buf, h->spill)) > 0)
			fwrite(buf, 1, n, h->out);
		fclose(h->spill);
		h->spill = NULL;
	} else if (h->body.len) {
		fwrite(h->body.data, 1, h->body.len, h->out);
	}
	vd_buf_reset(&h->body);
	h->open = false;
	h->st->hunks++;
}

static struct vd_buf *ring_at(struct hunker *h, int i)
{
	return &h->ring[(h->ring_head + i) % (h->k ? h->k : 1)];
}

static void ring_push(struct hunker *h, const char *p, size_t n)
{
	struct vd_buf *b;
	if (!h->k)
		return;
	if (h->ring_n == h->k) {
		b = ring_at(h, 0);
		h->ring_head = (h->ring_head + 1) % h->k;
		h->ring_n--;
	}
	b = ring_at(h, h->ring_n++);
	vd_buf_reset(b);
	if (vd_buf_add(b, p, n) && !h->err)
		h->err = -EFBIG;
}

/* The ring's lines as context of the open hunk, oldest first. */
static void ring_flush(struct hunker *h)
{
	for (int i = 0; i < h->ring_n; i++) {
		const struct vd_buf *b = ring_at(h, i);
		body_line(h, ' ', b->data ? b->data : "", b->len);
		h->hca++;
		h->hcb++;
	}
	h->ring_n = 0;
	h->ring_head = 0;
}

static void h_equal(struct hunker *h, const char *p, size_t n)
{
	if (h->stop)
		return;
	if (h->open && h->eq_run < (uint64_t)h->k &&
	    !fits(h, line_bytes(n, n ? p[n - 1] : 0), h->ha, h->hb, h->hca + 1, h->hcb + 1))
		return;
	if (h->open && h->eq_run < (uint64_t)h->k) {
		body_line(h, ' ', p, n);
		h->hca++;
		h->hcb++;
	} else {
		ring_push(h, p, n);
	}
	if (h->open && ++h->eq_run > 2 * (uint64_t)h->k) {
		/* The ring now holds only lines after this hunk's context: they
		 * may become the next hunk's leading context. */
		hunk_close(h);
	}
	h->na++;
	h->nb++;
}

static void h_change(struct hunker *h, bool added, const char *p, size_t n)
{
	if (h->stop)
		return;
	/* The line and the context it brings from the ring fit whole, or the
	 * diff stops before them: a hunk's range always counts what it shows. */
	uint64_t more = line_bytes(n, n ? p[n - 1] : 0), ctx = 0;
	uint64_t ha = h->open ? h->ha : h->na - (uint64_t)h->ring_n;
	uint64_t hb = h->open ? h->hb : h->nb - (uint64_t)h->ring_n;
	uint64_t ca = h->open ? h->hca : 0, cb = h->open ? h->hcb : 0;
	if (!h->open || h->eq_run > (uint64_t)h->k) {
		for (int i = 0; i < h->ring_n; i++) {
			const struct vd_buf *b = ring_at(h, i);
			more += line_bytes(b->len, b->len ? b->data[b->len - 1] : 0);
		}
		ctx = (uint64_t)h->ring_n;
	}
	if (!fits(h, more, ha, hb, ca + ctx + !added, cb + ctx + added))
		return;
	if (!h->open) {
		h->open = true;
		h->ha = h->na - (uint64_t)h->ring_n;
		h->hb = h->nb - (uint64_t)h->ring_n;
		h->hca = h->hcb = 0;
		ring_flush(h);
	} else if (h->eq_run > (uint64_t)h->k) {
		ring_flush(h);   /* the gap is at most 2 × context: one hunk */
	}
	h->eq_run = 0;
	body_line(h, added ? '+' : '-', p, n);
	if (added) {
		h->hcb++;
		h->nb++;
		h->st->added++;
	} else {
		h->hca++;
		h->na++;
		h->st->removed++;
	}
}

/* Lines up to a's line la and b's line lb are equal and not shown. */
static void h_skip_to(struct hunker *h, uint64_t la, uint64_t lb)
{
	if (la == h->na && lb == h->nb)
		return;
	hunk_close(h);
	h->ring_n = 0;
	h->ring_head = 0;
	h->na = la;
	h->nb = lb;
}

/* ---- stored files: sides, the chunk cache, newline positions ---------- */

#define NCACHE 4

struct centry {
	char id[VD_ID_SIZE];
	struct vd_buf b;
	uint64_t tick;
	bool used;
};

struct side {
	const struct vd_diff_extent *x;
	size_t n;
	uint64_t *off;    /* n + 1: where chunk i starts */
	uint64_t *nl;     /* n + 1: newlines before chunk i */
	uint64_t *cnt;    /* n: newlines in chunk i */
};

struct line {
	size_t off, len;
};

struct ctx {
	const struct vd_diff_opts *o;
	struct vd_diff_stats *st;
	struct centry cache[NCACHE];
	uint64_t tick;
	struct hunker h;
	const char *label_a, *label_b;
	bool binary;
	uint64_t max_chunk;       /* the longest extent on either side */
	struct line *la, *lb;     /* one window's lines, window_lines each */
};

/* The bytes of extent x (valid until the next chunk_get). */
static int chunk_get(const char **data, struct ctx *c, const struct vd_diff_extent *x)
{
	struct centry *e = NULL;
	size_t held = 0;
	int i, rc;

	for (i = 0; i < NCACHE; i++) {
		struct centry *ce = &c->cache[i];
		if (ce->used && ce->b.len == x->len && !strcmp(ce->id, x->id)) {
			ce->tick = ++c->tick;
			*data = ce->b.data ? ce->b.data : "";
			return 0;
		}
	}
	/* Make room: drop least recently used entries until the new chunk
	 * fits the cache's byte budget (or it is the only one left). */
	for (;;) {
		struct centry *lru = NULL;
		held = 0;
		for (i = 0; i < NCACHE; i++) {
			struct centry *ce = &c->cache[i];
			if (!ce->used) {
				e = e ? e : ce;
				continue;
			}
			held += ce->b.len;
			if (!lru || ce->tick < lru->tick)
				lru = ce;
		}
		if (e && held + x->len <= c->o->cache)
			break;
		if (!lru)
			break;
		vd_buf_release(&lru->b);
		lru->used = false;
		e = lru;
	}
	vd_buf_init(&e->b, x->len);
	rc = c->o->fetch(&e->b, c->o->fetch_arg, x->id, x->len);
	if (!rc && e->b.len != x->len)
		rc = -EIO;
	if (rc) {
		vd_buf_release(&e->b);
		return rc;
	}
	memcpy(e->id, x->id, VD_ID_SIZE);
	e->used = true;
	e->tick = ++c->tick;
	c->st->chunks_fetched++;
	c->st->bytes_fetched += x->len;
	*data = e->b.data ? e->b.data : "";
	return 0;
}

static uint64_t count_nl(const char *p, size_t n)
{
	uint64_t k = 0;
	const char *end = p + n;
	while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
		k++;
		p++;
	}
	return k;
}

static void side_free(struct side *s)
{
	free(s->off);
	free(s->nl);
	free(s->cnt);
}

static int side_init(struct side *s, struct ctx *c, const struct vd_diff_extent *x, size_t n)
{
	s->x = x;
	s->n = n;
	s->off = malloc((n + 1) * sizeof *s->off);
	s->nl = malloc((n + 1) * sizeof *s->nl);
	s->cnt = malloc((n + 1) * sizeof *s->cnt);
	if (!s->off || !s->nl || !s->cnt)
		return -ENOMEM;
	s->off[0] = s->nl[0] = 0;
	for (size_t i = 0; i < n; i++) {
		/* Content sealed before newline counts were kept has none in its
		 * manifest: count them from the bytes, one chunk at a time. */
		if (x[i].lines == VD_DIFF_LINES_UNKNOWN) {
			const char *p;
			int rc = chunk_get(&p, c, &x[i]);
			if (rc)
				return rc;
			s->cnt[i] = count_nl(p, x[i].len);
		} else {
			s->cnt[i] = x[i].lines;
		}
		s->off[i + 1] = s->off[i] + x[i].len;
		if (x[i].len > c->max_chunk)
			c->max_chunk = x[i].len;
		s->nl[i + 1] = s->nl[i] + s->cnt[i];
	}
	return 0;
}

/* The chunk holding byte pos (pos < total size). */
static size_t chunk_at(const struct side *s, uint64_t pos)
{
	size_t lo = 0, hi = s->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->off[mid] <= pos)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

/* *pos = just after the k-th newline (k >= 1) of chunks [i0, i1). Returns
 * 0, -ENOENT when they hold fewer, or another -errno. */
static int find_fwd(uint64_t *pos, struct ctx *c, const struct side *s, size_t i0, size_t i1,
		    uint64_t k)
{
	uint64_t cum = 0;
	for (size_t i = i0; i < i1; i++) {
		if (cum + s->cnt[i] >= k) {
			const char *p, *q;
			int rc = chunk_get(&p, c, &s->x[i]);
			if (rc)
				return rc;
			q = p;
			for (uint64_t want = k - cum; q; want--) {
				q = memchr(q, '\n', s->x[i].len - (size_t)(q - p));
				if (q && want == 1) {
					*pos = s->off[i] + (uint64_t)(q - p) + 1;
					return 0;
				}
				if (q)
					q++;
			}
			return -EIO;   /* the manifest's count is wrong */
		}
		cum += s->cnt[i];
	}
	return -ENOENT;
}

/* *pos = just after the k-th newline (k >= 1) counted backwards from the
 * end of chunks [i0, i1). Returns 0, -ENOENT when they hold fewer, or
 * another -errno. */
static int find_back(uint64_t *pos, struct ctx *c, const struct side *s, size_t i0, size_t i1,
		     uint64_t k)
{
	uint64_t cum = 0;
	for (size_t i = i1; i-- > i0;) {
		if (cum + s->cnt[i] >= k) {
			const char *p;
			int rc = chunk_get(&p, c, &s->x[i]);
			if (rc)
				return rc;
			uint64_t want = k - cum;
			for (size_t j = s->x[i].len; j-- > 0;) {
				if (p[j] == '\n' && --want == 0) {
					*pos = s->off[i] + j + 1;
					return 0;
				}
			}
			return -EIO;
		}
		cum += s->cnt[i];
	}
	return -ENOENT;
}

/* Newlines before byte pos. */
static int lines_before(uint64_t *out, struct ctx *c, const struct side *s, uint64_t pos)
{
	if (pos >= s->off[s->n]) {
		*out = s->nl[s->n];
		return 0;
	}
	size_t i = chunk_at(s, pos);
	const char *p;
	if (pos == s->off[i]) {
		*out = s->nl[i];
		return 0;
	}
	int rc = chunk_get(&p, c, &s->x[i]);
	if (!rc)
		*out = s->nl[i] + count_nl(p, (size_t)(pos - s->off[i]));
	return rc;
}

/* ---- regions: windowed line diffs ------------------------------------- */

struct reader {
	const struct side *s;
	uint64_t pos, end;
	struct vd_buf w;      /* bytes read, not yet committed */
};

/* Read until the window holds `want` bytes or the region ends. Whole
 * chunks are taken (a window may pass `want` by one chunk): a chunk left
 * half read would likely be evicted by the other side's reads before the
 * next window, and fetched twice. */
static int reader_fill(struct ctx *c, struct reader *r, size_t want)
{
	while (r->w.len < want && r->pos < r->end) {
		size_t i = chunk_at(r->s, r->pos);
		const char *p;
		int rc = chunk_get(&p, c, &r->s->x[i]);
		if (rc)
			return rc;
		uint64_t cend = r->s->off[i + 1] < r->end ? r->s->off[i + 1] : r->end;
		size_t take = (size_t)(cend - r->pos);
		const char *from = p + (r->pos - r->s->off[i]);
		if (memchr(from, '\0', take))
			c->binary = true;
		if ((rc = vd_buf_add(&r->w, from, take)))
			return rc;
		r->pos += take;
	}
	return 0;
}

/* Fill a window and make sure it holds a whole line (or the region's end). */
static int reader_ready(struct ctx *c, struct reader *r)
{
	int rc = reader_fill(c, r, c->o->window);
	while (!rc && !c->binary && r->pos < r->end && !memchr(vd_buf_cstr(&r->w), '\n', r->w.len)) {
		if (r->w.len > c->o->max_line) {
			c->binary = true;
			break;
		}
		rc = reader_fill(c, r, r->w.len + 65536);
	}
	return rc;
}

/* Split the window into at most cap lines; the last partial line counts
 * only at the region's end. *all: every byte is in a line. */
static size_t split_lines(struct line *L, size_t cap, const struct reader *r, bool *all)
{
	const char *p = vd_buf_cstr(&r->w);
	size_t n = 0, off = 0, len = r->w.len;
	while (n < cap && off < len) {
		const char *q = memchr(p + off, '\n', len - off);
		if (!q && r->pos < r->end)
			break;
		size_t e = q ? (size_t)(q - p) + 1 : len;
		L[n++] = (struct line){ off, e - off };
		off = e;
	}
	*all = off == len && r->pos == r->end;
	return n;
}

static void drop_front(struct vd_buf *b, size_t n)
{
	if (!n)
		return;
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

/* One window: diff the lines held on both sides, pass the edit script to
 * the hunker up to the last matching line (everything when both sides are
 * complete), and drop what was passed. *done when nothing is left. */
static int window_step(struct ctx *c, struct reader *ra, struct reader *rb, bool *done)
{
	size_t cap = c->o->window_lines, na, nb, ca, cb, i, j;
	bool alla, allb;
	uint32_t *sa = NULL, *sb = NULL;
	bool *ga = NULL, *gb = NULL;
	struct intern it = { 0 };
	int rc;

	if ((rc = reader_ready(c, ra)) || (rc = reader_ready(c, rb)))
		return rc;
	if (c->binary)
		return 0;
	na = split_lines(c->la, cap, ra, &alla);
	nb = split_lines(c->lb, cap, rb, &allb);
	for (i = 0; i < na; i++)
		if (c->la[i].len > c->o->max_line)
			c->binary = true;
	for (i = 0; i < nb; i++)
		if (c->lb[i].len > c->o->max_line)
			c->binary = true;
	if (c->binary)
		return 0;
	c->st->windows++;
	sa = malloc((na + 1) * sizeof *sa);
	sb = malloc((nb + 1) * sizeof *sb);
	ga = malloc(na + 1);
	gb = malloc(nb + 1);
	rc = -ENOMEM;
	if (!sa || !sb || !ga || !gb || intern_init(&it, na + nb))
		goto out;
	for (i = 0; i < na; i++)
		sa[i] = intern_get(&it, ra->w.data + c->la[i].off, c->la[i].len);
	for (i = 0; i < nb; i++)
		sb[i] = intern_get(&it, rb->w.data + c->lb[i].off, c->lb[i].len);
	if ((rc = vd_diff_seq(ga, gb, sa, na, sb, nb, it.n)))
		goto out;

	/* How far to commit. Past the last match, the lines still in the
	 * window may well match lines the next window brings. */
	ca = na;
	cb = nb;
	if (!(alla && allb)) {
		size_t lasti = SIZE_MAX, lastj = SIZE_MAX;
		for (i = 0, j = 0; i < na && j < nb;) {
			if (ga[i]) {
				i++;
			} else if (gb[j]) {
				j++;
			} else {
				lasti = i++;
				lastj = j++;
			}
		}
		if (lasti != SIZE_MAX) {
			ca = lasti + 1;
			cb = lastj + 1;
		} else if (alla) {
			ca = 0;   /* a's rest may match b's next window */
		} else if (allb) {
			cb = 0;
		}
	}
	for (i = 0, j = 0; i < ca || j < cb;) {
		if (i < ca && j < cb && !ga[i] && !gb[j]) {
			h_equal(&c->h, ra->w.data + c->la[i].off, c->la[i].len);
			i++;
			j++;
			continue;
		}
		size_t i0 = i, j0 = j;
		while (i < ca && ga[i]) {
			h_change(&c->h, false, ra->w.data + c->la[i].off, c->la[i].len);
			i++;
		}
		while (j < cb && gb[j]) {
			h_change(&c->h, true, rb->w.data + c->lb[j].off, c->lb[j].len);
			j++;
		}
		if (i == i0 && j == j0) {
			rc = -EIO;   /* cannot happen: equal lines pair up in order */
			goto out;
		}
	}
	drop_front(&ra->w, ca ? c->la[ca - 1].off + c->la[ca - 1].len : 0);
	drop_front(&rb->w, cb ? c->lb[cb - 1].off + c->lb[cb - 1].len : 0);
	*done = ra->pos == ra->end && rb->pos == rb->end && !ra->w.len && !rb->w.len;
	/* At the limit: any error ends the region and the walk at once;
	 * vd_diff_files tells the two apart by h.stop. */
	rc = c->h.err ? c->h.err : c->h.stop ? -ENOBUFS : 0;
out:
	intern_free(&it);
	free(sa);
	free(sb);
	free(ga);
	free(gb);
	return rc;
}

/* Line-diff a[a0, a1) against b[b0, b1); both start at a line start and end
 * at a line end (or the file's end). */
static int do_region(struct ctx *c, const struct side *A, uint64_t a0, uint64_t a1,
		     const struct side *B, uint64_t b0, uint64_t b1)
{
	/* A window: `window` bytes, plus the rest of a line (max_line), plus
	 * the rest of the chunk it ends in. */
	size_t wcap = c->o->window + c->o->max_line + (size_t)c->max_chunk + 65536;
	struct reader ra = { A, a0, a1, VD_BUF_INIT(wcap) };
	struct reader rb = { B, b0, b1, VD_BUF_INIT(wcap) };
	uint64_t la, lb;
	bool done = false;
	int rc;

	if (c->binary)
		return 0;
	if ((rc = lines_before(&la, c, A, a0)) || (rc = lines_before(&lb, c, B, b0)))
		return rc;
	c->st->regions++;
	h_skip_to(&c->h, la, lb);
	while (!rc && !done && !c->binary)
		rc = window_step(c, &ra, &rb, &done);
	vd_buf_release(&ra.w);
	vd_buf_release(&rb.w);
	return rc;
}

/* ---- files ------------------------------------------------------------- */

struct run {
	size_t ia, ib, n;    /* a's chunks [ia, ia + n) are b's [ib, ib + n) */
};

/* Shared chunks in order, as maximal runs. */
static int chunk_runs(struct run **out, size_t *nruns, const struct side *A, const struct side *B)
{
	uint32_t *sa = malloc((A->n + 1) * sizeof *sa), *sb = malloc((B->n + 1) * sizeof *sb);
	bool *ga = malloc(A->n + 1), *gb = malloc(B->n + 1);
	struct run *runs = NULL;
	struct intern it = { 0 };
	size_t n = 0, i, j;
	int rc = -ENOMEM;

	if (!sa || !sb || !ga || !gb || intern_init(&it, A->n + B->n))
		goto out;
	for (i = 0; i < A->n; i++)
		sa[i] = intern_get(&it, A->x[i].id, strlen(A->x[i].id));
	for (i = 0; i < B->n; i++)
		sb[i] = intern_get(&it, B->x[i].id, strlen(B->x[i].id));
	if ((rc = vd_diff_seq(ga, gb, sa, A->n, sb, B->n, it.n)))
		goto out;
	rc = -ENOMEM;
	if (!(runs = malloc((A->n + 1) * sizeof *runs)))
		goto out;
	for (i = 0, j = 0; i < A->n && j < B->n;) {
		if (ga[i]) {
			i++;
		} else if (gb[j]) {
			j++;
		} else {
			/* Equal IDs of different lengths cannot be the same chunk. */
			if (A->x[i].len != B->x[j].len) {
				rc = -EIO;
				goto out;
			}
			if (n && runs[n - 1].ia + runs[n - 1].n == i && runs[n - 1].ib + runs[n - 1].n == j)
				runs[n - 1].n++;
			else
				runs[n++] = (struct run){ i, j, 1 };
			i++;
			j++;
		}
	}
	*out = runs;
	*nruns = n;
	runs = NULL;
	rc = 0;
out:
	intern_free(&it);
	free(runs);
	free(sa);
	free(sb);
	free(ga);
	free(gb);
	return rc;
}

/*
 * Walk the shared runs; between them lie the regions to line-diff. A region
 * is widened into the runs around it by context + 2 newlines on each side,
 * so that it starts and ends on a line boundary and carries at least
 * context + 1 whole equal lines beyond the changes: then two regions that
 * stay apart have more than 2 × context equal lines between their changes,
 * which is exactly when `diff -u` makes two hunks of them too. Where a run
 * has too few newlines for both widenings, the regions on either side of it
 * merge into one.
 */
static int walk(struct ctx *c, const struct side *A, const struct side *B, const struct run *runs,
		size_t nr)
{
	const uint64_t k2 = (uint64_t)c->o->context + 2;
	bool open = false;
	uint64_t ra0 = 0, rb0 = 0, fe = 0, bs = 0;
	int rc = 0;

	for (size_t r = 0; r < nr && !rc && !c->binary; r++) {
		const struct run *u = &runs[r];
		size_t ea = u->ia + u->n, eb = u->ib + u->n;
		/* b's bytes of this run are a's, shifted by delta */
		uint64_t sa = A->off[u->ia], sb = B->off[u->ib];
		size_t nia = r + 1 < nr ? runs[r + 1].ia : A->n;
		size_t nib = r + 1 < nr ? runs[r + 1].ib : B->n;
		bool gap_before = u->ia > (r ? runs[r - 1].ia + runs[r - 1].n : 0) ||
				  u->ib > (r ? runs[r - 1].ib + runs[r - 1].n : 0);
		bool gap_after = nia > ea || nib > eb;
		int ff = -ENOENT, fb = -ENOENT;   /* 0: the widening was found */

		if (gap_before && !open) {   /* only before the first run */
			open = true;
			ra0 = rb0 = 0;
		}
		if (gap_after)
			fb = find_back(&bs, c, A, u->ia, ea, k2);
		if (open)
			ff = find_fwd(&fe, c, A, u->ia, ea, k2);
		if ((fb && fb != -ENOENT) || (ff && ff != -ENOENT)) {
			rc = fb && fb != -ENOENT ? fb : ff;
			break;
		}
		if (open && !gap_after) {
			/* The last run, to both files' ends. */
			if (ff == 0)
				rc = do_region(c, A, ra0, fe, B, rb0, sb + (fe - sa));
			else
				rc = do_region(c, A, ra0, A->off[A->n], B, rb0, B->off[B->n]);
			c->st->bytes_skipped += ff == 0 ? A->off[ea] - fe : 0;
			open = false;
		} else if (open) {
			if (ff == 0 && fb == 0 && fe < bs) {
				rc = do_region(c, A, ra0, fe, B, rb0, sb + (fe - sa));
				c->st->bytes_skipped += bs - fe;
				ra0 = bs;
				rb0 = sb + (bs - sa);
			}
			/* else: the run is too short to part the regions */
		} else if (gap_after) {
			/* The first run, from both files' starts. */
			open = true;
			ra0 = fb == 0 ? bs : 0;
			rb0 = fb == 0 ? sb + (bs - sa) : 0;
			c->st->bytes_skipped += ra0;
		} else {
			c->st->bytes_skipped += A->off[ea] - sa;   /* identical files */
		}
	}
	if (!rc && !c->binary && (open || (!nr && (A->n || B->n))))
		rc = do_region(c, A, open ? ra0 : 0, A->off[A->n], B, open ? rb0 : 0, B->off[B->n]);
	return rc;
}

int vd_diff_files(struct vd_diff_stats *st, const struct vd_diff_opts *o,
		  const char *label_a, const struct vd_diff_extent *a, size_t na,
		  const char *label_b, const struct vd_diff_extent *b, size_t nb)
{
	struct ctx c = { 0 };
	struct side A = { 0 }, B = { 0 };
	struct run *runs = NULL;
	size_t nr = 0;
	int rc = -EINVAL;

	if (!o->fetch || !o->out || o->window < 1 || o->window_lines < 1 || o->context < 0 ||
	    o->context > RING_MAX)
		return rc;
	c.o = o;
	c.st = st;
	c.label_a = label_a;
	c.label_b = label_b;
	hunker_init(&c.h, o->out, o->context, st, o->max_line, o->limit);
	c.h.label_a = label_a;
	c.h.label_b = label_b;
	rc = -ENOMEM;
	c.la = malloc(o->window_lines * sizeof *c.la);
	c.lb = malloc(o->window_lines * sizeof *c.lb);
	if (!c.la || !c.lb)
		goto out;
	if ((rc = side_init(&A, &c, a, na)) || (rc = side_init(&B, &c, b, nb)))
		goto out;
	if ((rc = chunk_runs(&runs, &nr, &A, &B)))
		goto out;
	if ((rc = walk(&c, &A, &B, runs, nr)) && !c.h.stop)
		goto out;
	/* Stopped at the limit, the hunk being built is printed as far as it
	 * got: its range counts the lines it shows. */
	hunk_close(&c.h);
	if (c.binary && !c.h.stop &&
	    (!o->limit || c.h.made + strlen(label_a) + strlen(label_b) + 26 <= o->limit)) {
		/* What has been printed stays; the rest is not line data. */
		fprintf(o->out, "Binary files %s and %s differ\n", label_a, label_b);
		st->files_binary++;
	} else if (c.binary && !c.h.stop) {
		c.h.stop = true;
	}
	rc = c.h.err ? c.h.err : c.h.stop ? -ENOBUFS : 0;
	if (!rc && ferror(o->out))
		rc = -EIO;
out:
	for (int i = 0; i < NCACHE; i++)
		vd_buf_release(&c.cache[i].b);
	hunker_release(&c.h);
	side_free(&A);
	side_free(&B);
	free(runs);
	free(c.la);
	free(c.lb);
	return rc;
}
