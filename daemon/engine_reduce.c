/*
 * engine_reduce.c - turning the units' outputs into one result.csv.
 *
 * concat: the result is the outputs in unit order. No byte is copied: the
 * result's extents are the output blobs themselves, with a one-byte "\n"
 * chunk put after any output that does not end in a newline, so that two
 * units' rows never run together.
 *
 * sum: each output row is key,number[,number...]. The key is the first
 * field and every later field up to the last one that is not a number, so
 * `path,word,3` sums per (path, word) and `2024,5` per 2024. Numbers are
 * summed per key and column, as 64-bit integers while every value in the
 * column is one (and no sum overflows), else as doubles printed with 15
 * significant digits. Rows come out sorted by key, bytewise. A row with no
 * number fails the reduce (-EINVAL), and with it the run.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine_int.h"

#define PIECE (1u << 20)

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t lines = 0;
	for (const char *q = p, *e = p + n; (q = memchr(q, '\n', (size_t)(e - q))); q++)
		lines++;
	return lines;
}


static int reduce_concat(struct vd_file *f, vd_hasher *h, vd_store_writer *w,
			 vd_engine *e, const struct vd_extent *outs, size_t n)
{
	struct vd_buf b = VD_BUF_INIT(VD_RESULT_MAX);
	char nl_id[VD_ID_SIZE] = "";
	size_t cap = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (outs[i].len == 0)
			continue;
		vd_buf_reset(&b);
		if ((rc = vd_store_read(&b, e->store, outs[i].id)))
			goto out;
		vd_hasher_update(h, b.data, b.len);
		if ((rc = vd_engine_file_push(f, &cap, outs[i].id, b.len, count_lines(b.data, b.len))))
			goto out;
		if (b.data[b.len - 1] != '\n') {
			if (!nl_id[0] && (rc = vd_store_writer_put(nl_id, w, "\n", 1)))
				goto out;
			vd_hasher_update(h, "\n", 1);
			if ((rc = vd_engine_file_push(f, &cap, nl_id, 1, 1)))
				goto out;
		}
	}
out:
	vd_buf_release(&b);
	return rc;
}

/* ---- sum ------------------------------------------------------------- */

struct col {
	bool is_float;
	long long i;
	double d;
};

struct entry {
	char *key;
	size_t klen;
	uint64_t hash;
	size_t ncols;
	struct col *cols;
};

struct table {
	struct entry *slots;     /* open addressing; key == NULL is empty */
	size_t cap, used;
};

static int table_grow(struct table *t)
{
	size_t ncap = t->cap ? t->cap * 2 : 1024;
	struct entry *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (!t->slots[i].key)
			continue;
		size_t j = t->slots[i].hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = t->slots[i];
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	return 0;
}

static int table_find(struct entry **out, struct table *t, const char *key,
		      size_t klen)
{
	int rc;
	if ((t->used + 1) * 2 > t->cap && (rc = table_grow(t)))
		return rc;
	uint64_t h = XXH3_64bits(key, klen);
	size_t j = h & (t->cap - 1);
	while (t->slots[j].key) {
		struct entry *en = &t->slots[j];
		if (en->hash == h && en->klen == klen && !memcmp(en->key, key, klen)) {
			*out = en;
			return 0;
		}
		j = (j + 1) & (t->cap - 1);
	}
	struct entry *en = &t->slots[j];
	if (!(en->key = malloc(klen + 1)))
		return -ENOMEM;
	memcpy(en->key, key, klen);
	en->key[klen] = '\0';
	en->klen = klen;
	en->hash = h;
	t->used++;
	*out = en;
	return 0;
}

static void table_release(struct table *t)
{
	for (size_t i = 0; i < t->cap; i++) {
		free(t->slots[i].key);
		free(t->slots[i].cols);
	}
	free(t->slots);
}

/* A field that is a number: an integer (is_int) or a finite decimal. */
static bool parse_number(const char *s, size_t n, bool *is_int, long long *iv,
			 double *dv)
{
	char tmp[64], *end;
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof tmp)
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	long long x = strtoll(tmp, &end, 10);
	if (!*end && !errno) {
		*is_int = true;
		*iv = x;
		*dv = (double)x;
		return true;
	}
	errno = 0;
	double d = strtod(tmp, &end);
	if (*end || errno || !isfinite(d) || (tmp[0] != '-' && tmp[0] != '+' &&
					      tmp[0] != '.' && (tmp[0] < '0' || tmp[0] > '9')))
		return false;
	*is_int = false;
	*dv = d;
	return true;
}

static int sum_line(struct table *t, const char *s, size_t n)
{
	/* Find where the trailing run of numeric fields starts. */
	size_t nf = 1;
	for (size_t i = 0; i < n; i++)
		nf += s[i] == ',';
	if (nf < 2)
		return -EINVAL;
	size_t key_end = n, pos = n;   /* key is s[0..key_end) */
	size_t nums = 0;
	for (size_t f = nf; f > 1; f--) {
		size_t start = pos;
		while (start > 0 && s[start - 1] != ',')
			start--;
		bool is_int;
		long long iv;
		double dv;
		if (!parse_number(s + start, pos - start, &is_int, &iv, &dv))
			break;
		nums++;
		key_end = start - 1;   /* the comma before this field */
		pos = start - 1;
	}
	if (nums == 0)
		return -EINVAL;
	struct entry *en;
	int rc = table_find(&en, t, s, key_end);
	if (rc)
		return rc;
	if (en->ncols < nums) {
		struct col *nc = realloc(en->cols, nums * sizeof *nc);
		if (!nc)
			return -ENOMEM;
		memset(nc + en->ncols, 0, (nums - en->ncols) * sizeof *nc);
		en->cols = nc;
		en->ncols = nums;
	}
	const char *p = s + key_end + 1;
	for (size_t c = 0; c < nums; c++) {
		const char *q = memchr(p, ',', (size_t)(s + n - p));
		size_t len = q ? (size_t)(q - p) : (size_t)(s + n - p);
		bool is_int;
		long long iv;
		double dv;
		parse_number(p, len, &is_int, &iv, &dv);
		struct col *col = &en->cols[c];
		if (is_int && !col->is_float && !__builtin_add_overflow(col->i, iv, &col->i)) {
			col->d += dv;
		} else {
			if (!col->is_float)
				col->d = (double)col->i;
			col->is_float = true;
			col->d += dv;
		}
		p += len + 1;
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* Put out[0..len) as pieces of about PIECE bytes cut after newlines. */
static int put_pieces(struct vd_file *f, size_t *cap, vd_store_writer *w,
		      const char *p, size_t len)
{
	while (len) {
		size_t n = len;
		if (n > PIECE) {
			const char *nl = memchr(p + PIECE, '\n', len - PIECE);
			n = nl ? (size_t)(nl - p) + 1 : len;
		}
		char id[VD_ID_SIZE];
		int rc = vd_store_writer_put(id, w, p, n);
		if (!rc)
			rc = vd_engine_file_push(f, cap, id, n, count_lines(p, n));
		if (rc)
			return rc;
		p += n;
		len -= n;
	}
	return 0;
}

static int reduce_sum(struct vd_file *f, vd_hasher *h, vd_store_writer *w,
		      vd_engine *e, const struct vd_extent *outs, size_t n)
{
	struct vd_buf b = VD_BUF_INIT(VD_RESULT_MAX), res = VD_BUF_INIT(VD_RESULT_MAX);
	struct table t = { 0 };
	struct entry **sorted = NULL;
	size_t cap = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		if (outs[i].len == 0)
			continue;
		vd_buf_reset(&b);
		if ((rc = vd_store_read(&b, e->store, outs[i].id)))
			goto out;
		for (size_t pos = 0; pos < b.len;) {
			const char *nl = memchr(b.data + pos, '\n', b.len - pos);
			size_t len = nl ? (size_t)(nl - (b.data + pos)) : b.len - pos;
			size_t l = len;
			if (l && b.data[pos + l - 1] == '\r')
				l--;
			if (l && (rc = sum_line(&t, b.data + pos, l))) {
				vd_warn("reduce = sum: unit %zu: a row is not "
					"key,number: %.80s", i, b.data + pos);
				goto out;
			}
			pos += len + 1;
		}
	}
	if (!(sorted = malloc((t.used + 1) * sizeof *sorted))) {
		rc = -ENOMEM;
		goto out;
	}
	size_t m = 0;
	for (size_t i = 0; i < t.cap; i++)
		if (t.slots[i].key)
			sorted[m++] = &t.slots[i];
	qsort(sorted, m, sizeof *sorted, entry_cmp);
	for (size_t i = 0; i < m; i++) {
		struct entry *en = sorted[i];
		if ((rc = vd_buf_add(&res, en->key, en->klen)))
			goto out;
		for (size_t c = 0; c < en->ncols; c++) {
			if (en->cols[c].is_float)
				rc = vd_buf_addf(&res, ",%.15g", en->cols[c].d);
			else
				rc = vd_buf_addf(&res, ",%lld", en->cols[c].i);
			if (rc)
				goto out;
		}
		if ((rc = vd_buf_add(&res, "\n", 1)))
			goto out;
	}
	vd_hasher_update(h, res.data ? res.data : "", res.len);
	rc = put_pieces(f, &cap, w, res.data, res.len);
out:
	free(sorted);
	table_release(&t);
	vd_buf_release(&b);
	vd_buf_release(&res);
	return rc;
}

int vd_engine_reduce(struct vd_file **out, char data_id[VD_ID_SIZE],
		     vd_catalog_batch *b, vd_engine *e, enum vd_reduce how,
		     const struct vd_extent *outs, size_t n)
{
	struct vd_file *f = calloc(1, sizeof *f);
	vd_store_writer *w = NULL;
	vd_hasher *h = NULL;
	int rc;
	if (!f || !(f->path = strdup("result.csv"))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = vd_hasher_new(&h, &e->key)) || (rc = vd_store_writer_new(&w, e->store)))
		goto out;
	if (how == VD_REDUCE_SUM)
		rc = reduce_sum(f, h, w, e, outs, n);
	else
		rc = reduce_concat(f, h, w, e, outs, n);
	if (rc || (rc = vd_store_writer_commit(w, b)))
		goto out;
	vd_hasher_digest(h, data_id);
	memcpy(f->id, data_id, VD_ID_SIZE);
	*out = f;
	f = NULL;
out:
	vd_file_free(f);
	vd_store_writer_free(w);
	vd_hasher_free(h);
	return rc;
}
