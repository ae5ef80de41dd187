/*
 * engine_reduce_sum.c - reduce = sum, in bounded memory.
 *
 * Each output row is key,number[,number...]. The key is the first field
 * and every later field up to the last one that is not a number, so
 * `path,word,3` sums per (path, word) and `2024,5` per 2024. Numbers are
 * summed per key and column, as 64-bit integers while every value in the
 * column is one (and no sum overflows), else as doubles printed with 15
 * significant digits, added in the order the rows come. Rows come out
 * sorted by key, bytewise. A row with no number fails the reduce
 * (-EINVAL), and with it the run.
 *
 * Memory. The sums live in a hash table of keys. While it stays under a
 * cap (SUM_MEM_CAP, or vd_engine.reduce_mem) all of it happens in memory.
 * When a new key would take the table past the cap, the keys are split by
 * a hash of the key into partitions, temporary files under STATE/spill/:
 * first the sums so far of every key in the table (a "state" record each),
 * then every later row as it comes (a "row" record: its bytes). Then each
 * partition is summed alone, with a table of its own (and split again, by
 * another hash, if that is still too big), sorted, and appended to a file
 * of sorted runs; the runs are merged into result.csv, which is put out in
 * pieces of about 1 MiB as the rows come, never held whole.
 *
 * Why partitions by key rather than sorted runs of partial sums merged at
 * the end, summing equal keys: a float column is summed as doubles in the
 * order the rows come, and double addition is not associative (1e16 + 1 +
 * 1 is 1e16, 1e16 + 2 is not), nor is the switch from integers to doubles
 * when a sum overflows a property of partial sums. A partition holds every
 * row of its keys in their order, after the one exact state of each sum at
 * the split, so each key is summed exactly as in memory: the output is the
 * same bytes whatever the cap.
 *
 * Spill files are opened O_TMPFILE: they have no name, so neither the end
 * of the reduce nor a crash leaves one behind. Where the file system
 * cannot, one is made and unlinked at once; STATE/spill/ is emptied at
 * every start (vd_engine_reduce_sweep) for what a crash in between leaves.
 * Spilling checks the store's reserve like a writer does (-ENOSPC: the
 * reduce is tried again once there is room, docs/engine.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_int.h"
#include "util.h"

/* Pieces of result.csv: about this many bytes, cut after a newline. */
#define PIECE (1u << 20)
/*
 * What the key table may take before it spills: slots and the keys' and
 * sums' bytes. vdfsd is meant to stay near 100 MB whatever it reduces (it
 * sits at about 30 MB, a unit's output being read adds up to its size),
 * and 64 MiB holds about 600,000 short keys, which covers a word count of
 * any natural text without a single spill.
 */
#define SUM_MEM_CAP ((size_t)64 << 20)
/* Keys and sums are allocated from blocks of this size (an eighth of the
 * cap when that is less, so that a small cap still holds many keys). */
#define ARENA_BLOCK ((size_t)256 << 10)
#define ARENA_BLOCK_MIN ((size_t)4 << 10)
/* Partitions per split: enough that each holds what fits under the cap
 * (estimated from how far into its input the split came), at most this. */
#define FANOUT_MIN 4
#define FANOUT_MAX 64
/* A partition split this many times over is summed in memory whatever it
 * takes: only keys that hash alike at every level could get it there. */
#define DEPTH_MAX 4
/* Buffers of spill files written, and of sorted runs read back. */
#define SPILL_BUF ((size_t)64 << 10)
#define RUNS_READ_BUDGET ((size_t)8 << 20)
/* The reserve is checked every this many bytes spilled. */
#define SPACE_STEP ((uint64_t)8 << 20)

/* ---- the key table --------------------------------------------------- */

struct col {
	bool is_float;
	long long i;
	double d;
};

/* A key's record in the arena: ncols sums, then the key's bytes. */
struct entry {
	uint64_t hash;
	char *rec;             /* NULL: an empty slot */
	uint32_t klen, ncols;
};

#define ENTRY_COLS(en) ((struct col *)(void *)(en)->rec)
#define ENTRY_KEY(en) ((en)->rec + (size_t)(en)->ncols * sizeof(struct col))

struct block {
	struct block *next;
	size_t used, size;
	_Alignas(16) char data[];
};

struct table {
	struct entry *slots;   /* open addressing, a power of two */
	size_t nslots, used;
	struct block *blocks;  /* the arena, newest first */
	size_t bytes;          /* slots and arena: what the cap counts */
	size_t cap;
};

static void table_init(struct table *t, size_t cap)
{
	memset(t, 0, sizeof *t);
	t->cap = cap;
}

static void table_release(struct table *t)
{
	free(t->slots);
	while (t->blocks) {
		struct block *b = t->blocks;
		t->blocks = b->next;
		free(b);
	}
	table_init(t, t->cap);
}

static void *arena_alloc(struct table *t, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct block *b = t->blocks;
	if (!b || b->size - b->used < n) {
		size_t bs = t->cap / 8 < ARENA_BLOCK ? t->cap / 8 : ARENA_BLOCK;
		if (bs < ARENA_BLOCK_MIN)
			bs = ARENA_BLOCK_MIN;
		size_t size = n > bs - sizeof *b ? n : bs - sizeof *b;
		if (!(b = malloc(sizeof *b + size)))
			return NULL;
		b->used = 0;
		b->size = size;
		b->next = t->blocks;
		t->blocks = b;
		t->bytes += sizeof *b + size;
	}
	void *p = b->data + b->used;
	b->used += n;
	return p;
}

static int table_grow(struct table *t)
{
	size_t ncap = t->nslots ? t->nslots * 2 : 1024;
	struct entry *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < t->nslots; i++) {
		if (!t->slots[i].rec)
			continue;
		size_t j = t->slots[i].hash & (ncap - 1);
		while (ns[j].rec)
			j = (j + 1) & (ncap - 1);
		ns[j] = t->slots[i];
	}
	free(t->slots);
	t->bytes += (ncap - t->nslots) * sizeof *ns;
	t->slots = ns;
	t->nslots = ncap;
	return 0;
}

/* Give en room for ncols sums (new ones zero). */
static int entry_widen(struct table *t, struct entry *en, size_t ncols)
{
	if (ncols <= en->ncols)
		return 0;
	if (ncols > UINT32_MAX)
		return -EFBIG;
	char *rec = arena_alloc(t, ncols * sizeof(struct col) + en->klen);
	if (!rec)
		return -ENOMEM;
	struct col *c = (struct col *)(void *)rec;
	memcpy(c, ENTRY_COLS(en), en->ncols * sizeof *c);
	memset(c + en->ncols, 0, (ncols - en->ncols) * sizeof *c);
	memcpy(rec + ncols * sizeof *c, ENTRY_KEY(en), en->klen);
	en->rec = rec;
	en->ncols = (uint32_t)ncols;
	return 0;
}

/*
 * The entry of key, with room for at least ncols sums; *created when it
 * is new (its sums zero). 1 when the key is new and the table is at its
 * cap (nothing changed): the caller spills.
 */
static int table_get(struct entry **out, bool *created, struct table *t,
		     const char *key, size_t klen, size_t ncols)
{
	int rc;
	if (klen > UINT32_MAX)
		return -EFBIG;
	uint64_t h = XXH3_64bits(key, klen);
	if (t->nslots) {
		for (size_t j = h & (t->nslots - 1); t->slots[j].rec; j = (j + 1) & (t->nslots - 1)) {
			struct entry *en = &t->slots[j];
			if (en->hash == h && en->klen == klen && !memcmp(ENTRY_KEY(en), key, klen)) {
				*out = en;
				*created = false;
				return entry_widen(t, en, ncols);
			}
		}
	}
	/* Growing holds the old slots and the new, twice as many, at once. */
	bool grow = (t->used + 1) * 2 > t->nslots;
	size_t more = grow ? 2 * (t->nslots ? t->nslots : 512) * sizeof(struct entry) : 0;
	if (t->used && (t->bytes > t->cap || more > t->cap - t->bytes))
		return 1;
	if (grow && (rc = table_grow(t)))
		return rc;
	size_t j = h & (t->nslots - 1);
	while (t->slots[j].rec)
		j = (j + 1) & (t->nslots - 1);
	struct entry *en = &t->slots[j];
	char *rec = arena_alloc(t, ncols * sizeof(struct col) + klen);
	if (!rec)
		return -ENOMEM;
	memset(rec, 0, ncols * sizeof(struct col));
	memcpy(rec + ncols * sizeof(struct col), key, klen);
	en->rec = rec;
	en->hash = h;
	en->klen = (uint32_t)klen;
	en->ncols = (uint32_t)ncols;
	t->used++;
	*out = en;
	*created = true;
	return 0;
}

/* ---- rows ------------------------------------------------------------ */

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

/* Where the key of row s[0..n) ends (s[*key_end] is the comma before the
 * numbers) and how many numbers follow; -EINVAL when none do. */
static int row_parse(size_t *key_end, size_t *nums, const char *s, size_t n)
{
	size_t nf = 1;
	for (size_t i = 0; i < n; i++)
		nf += s[i] == ',';
	if (nf < 2)
		return -EINVAL;
	size_t end = n, pos = n;
	*nums = 0;
	for (size_t f = nf; f > 1; f--) {
		size_t start = pos;
		while (start > 0 && s[start - 1] != ',')
			start--;
		bool is_int;
		long long iv;
		double dv;
		if (!parse_number(s + start, pos - start, &is_int, &iv, &dv))
			break;
		(*nums)++;
		end = start - 1;   /* the comma before this field */
		pos = start - 1;
	}
	*key_end = end;
	return *nums ? 0 : -EINVAL;
}

/* Add a value to a sum: exact while it and every earlier one are
 * integers and nothing overflows, then in doubles from the exact sum so
 * far on. */
static void col_add(struct col *c, bool is_int, long long iv, double dv)
{
	long long s;
	if (is_int && !c->is_float && !__builtin_add_overflow(c->i, iv, &s)) {
		c->i = s;
		return;
	}
	if (!c->is_float)
		c->d = (double)c->i;
	c->is_float = true;
	c->d += dv;
}

/* Add row s[0..n) (parsed by row_parse) to the table; 1 when its key is
 * new and the table is full (nothing added). */
static int table_add_row(struct table *t, const char *s, size_t n, size_t key_end,
			 size_t nums)
{
	struct entry *en;
	bool created;
	int rc = table_get(&en, &created, t, s, key_end, nums);
	if (rc)
		return rc;
	struct col *cols = ENTRY_COLS(en);
	const char *p = s + key_end + 1;
	for (size_t c = 0; c < nums; c++) {
		const char *q = memchr(p, ',', (size_t)(s + n - p));
		size_t len = q ? (size_t)(q - p) : (size_t)(s + n - p);
		bool is_int = false;
		long long iv = 0;
		double dv = 0;
		parse_number(p, len, &is_int, &iv, &dv);
		col_add(&cols[c], is_int, iv, dv);
		p += len + 1;
	}
	return 0;
}

/* ---- the result, in pieces ------------------------------------------- */

struct sum_out {
	struct vd_file *f;
	size_t cap;            /* f->ext's room */
	vd_store_writer *w;
	vd_hasher *h;
	struct vd_buf piece;
};

static int out_put(struct sum_out *o, const char *p, size_t n)
{
	char id[VD_ID_SIZE];
	int rc = vd_store_writer_put(id, o->w, p, n);
	if (!rc)
		rc = vd_engine_file_push(o->f, &o->cap, id, n, vd_engine_count_lines(p, n));
	if (!rc)
		vd_hasher_update(o->h, p, n);
	return rc;
}

/* Append rows; a piece is put as soon as it is past PIECE bytes, cut at
 * the first newline from there (as the whole result cut in one go). */
static int out_add(struct sum_out *o, const char *p, size_t n)
{
	int rc = vd_buf_add(&o->piece, p, n);
	while (!rc && o->piece.len > PIECE) {
		char *d = o->piece.data;
		const char *nl = memchr(d + PIECE, '\n', o->piece.len - PIECE);
		if (!nl)
			break;
		size_t cut = (size_t)(nl - d) + 1;
		if ((rc = out_put(o, d, cut)))
			break;
		memmove(d, d + cut, o->piece.len - cut);
		o->piece.len -= cut;
	}
	return rc;
}

static int out_finish(struct sum_out *o)
{
	int rc = o->piece.len ? out_put(o, o->piece.data, o->piece.len) : 0;
	vd_buf_reset(&o->piece);
	return rc;
}

/* ---- spill files ----------------------------------------------------- */

/* A sorted run: a stretch of the runs file. */
struct run {
	uint64_t off, end;
};

struct sum {
	vd_engine *e;
	size_t cap;
	struct sum_out out;
	FILE *runs;            /* sorted runs, NULL until the first */
	struct run *run;
	size_t nruns, caprun;
	uint64_t unchecked;    /* bytes spilled since the reserve was checked */
	bool deep_logged;
	struct vd_buf line;    /* scratch: a row formatted */
	struct vd_buf key;     /* scratch: a record's key read back */
	struct vd_buf body;    /* scratch: a record's row or sums read back */
};

static int spill_open(FILE **out, struct sum *s)
{
	struct vd_buf dir = VD_BUF_INIT(4096);
	int fd = -1, rc;
	vd_buf_addf(&dir, "%s/spill", s->e->state);
	if ((rc = vd_mkdir_p(vd_buf_cstr(&dir), 0700)))
		goto out;
	fd = open(vd_buf_cstr(&dir), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		vd_buf_adds(&dir, "/sum-XXXXXX");
		fd = mkostemp(dir.data, O_CLOEXEC);
		if (fd >= 0)
			unlink(dir.data);
	}
	if (fd < 0) {
		rc = -errno;
		vd_err("reduce = sum: cannot make a spill file in %s/spill: %s", s->e->state,
		       strerror(errno));
		goto out;
	}
	FILE *f = fdopen(fd, "w+");
	if (!f) {
		rc = -errno;
		close(fd);
		goto out;
	}
	setvbuf(f, NULL, _IOFBF, SPILL_BUF);
	*out = f;
out:
	vd_buf_release(&dir);
	return rc;
}

static int io_err(void)
{
	return errno ? -errno : -EIO;
}

static int spill_write(struct sum *s, FILE *f, const void *p, size_t n)
{
	s->unchecked += n;
	if (s->unchecked >= SPACE_STEP) {
		int rc = vd_store_space_check(s->e->store, s->unchecked);
		if (rc)
			return rc;
		s->unchecked = 0;
	}
	errno = 0;
	return n && fwrite(p, 1, n, f) != n ? io_err() : 0;
}

static int spill_u32(struct sum *s, FILE *f, uint32_t v)
{
	return spill_write(s, f, &v, sizeof v);
}

static int read_exact(FILE *f, void *p, size_t n)
{
	errno = 0;
	if (n && fread(p, 1, n, f) != n)
		return ferror(f) ? io_err() : -EIO;
	return 0;
}

/* Partition records: 'S' klen ncols key (is_float i d)*ncols, the exact
 * sums of a key at the split; 'R' len bytes, a row as it came. */
static int put_state(struct sum *s, FILE *f, const struct entry *en)
{
	int rc;
	if ((rc = spill_write(s, f, "S", 1)) || (rc = spill_u32(s, f, en->klen)) ||
	    (rc = spill_u32(s, f, en->ncols)) ||
	    (rc = spill_write(s, f, ENTRY_KEY(en), en->klen)))
		return rc;
	const struct col *c = ENTRY_COLS(en);
	for (uint32_t k = 0; k < en->ncols; k++) {
		unsigned char fl = c[k].is_float;
		if ((rc = spill_write(s, f, &fl, 1)) ||
		    (rc = spill_write(s, f, &c[k].i, sizeof c[k].i)) ||
		    (rc = spill_write(s, f, &c[k].d, sizeof c[k].d)))
			return rc;
	}
	return 0;
}

static int put_row(struct sum *s, FILE *f, const char *row, size_t n)
{
	int rc;
	if (n > UINT32_MAX)
		return -EFBIG;
	if ((rc = spill_write(s, f, "R", 1)) || (rc = spill_u32(s, f, (uint32_t)n)))
		return rc;
	return spill_write(s, f, row, n);
}

struct parts {
	FILE **f;              /* NULL until something goes into it */
	size_t n;
	uint64_t seed;         /* of the hash that picks a key's partition */
};

/* The file of key's partition, made on first use. */
static int part_of(FILE **out, struct parts *p, struct sum *s, const char *key,
		   size_t klen)
{
	size_t i = (size_t)(XXH3_64bits_withSeed(key, klen, p->seed) % p->n);
	int rc = p->f[i] ? 0 : spill_open(&p->f[i], s);
	*out = p->f[i];
	return rc;
}

static void parts_close(struct parts *p)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->f[i])
			fclose(p->f[i]);
	free(p->f);
	p->f = NULL;
	p->n = 0;
}

/*
 * Split: open the partitions and move the table's sums into them. done of
 * total bytes of input were read when the table filled up, so the whole
 * input wants about total / done tables like it; twice that many
 * partitions leave each room to spare.
 */
static int split(struct parts *p, struct sum *s, struct table *t, int depth,
		 uint64_t done, uint64_t total)
{
	uint64_t want = done ? 2 * (total / done + 1) : FANOUT_MAX;
	size_t n = FANOUT_MIN;
	while (n < FANOUT_MAX && n < want)
		n *= 2;
	int rc = 0;
	if (!(p->f = calloc(n, sizeof *p->f)))
		return -ENOMEM;
	p->n = n;
	p->seed = (uint64_t)depth + 1;
	atomic_fetch_add(&s->e->reduce_splits, 1);
	for (size_t i = 0; i < t->nslots && !rc; i++) {
		const struct entry *en = &t->slots[i];
		FILE *to;
		if (en->rec && !(rc = part_of(&to, p, s, ENTRY_KEY(en), en->klen)))
			rc = put_state(s, to, en);
	}
	table_release(t);
	return rc;
}

/* ---- sorted output --------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(ENTRY_KEY(x), ENTRY_KEY(y), n);
	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int format_row(struct vd_buf *out, const struct entry *en)
{
	char num[64];
	vd_buf_reset(out);
	int rc = vd_buf_add(out, ENTRY_KEY(en), en->klen);
	const struct col *c = ENTRY_COLS(en);
	for (uint32_t k = 0; !rc && k < en->ncols; k++) {
		if (c[k].is_float)
			snprintf(num, sizeof num, ",%.15g", c[k].d);
		else
			snprintf(num, sizeof num, ",%lld", c[k].i);
		rc = vd_buf_adds(out, num);
	}
	return rc ? rc : vd_buf_add(out, "\n", 1);
}

/* The table's rows in key order: into the result (to_runs false) or as
 * one sorted run ('klen linelen line' records) appended to the runs file. */
static int table_emit(struct sum *s, struct table *t, bool to_runs)
{
	struct entry **sorted = malloc((t->used + 1) * sizeof *sorted);
	int rc = 0;
	if (!sorted)
		return -ENOMEM;
	size_t m = 0;
	for (size_t i = 0; i < t->nslots; i++)
		if (t->slots[i].rec)
			sorted[m++] = &t->slots[i];
	qsort(sorted, m, sizeof *sorted, entry_cmp);
	struct run r = { 0, 0 };
	if (to_runs) {
		if (!s->runs && (rc = spill_open(&s->runs, s)))
			goto out;
		errno = 0;
		off_t at = ftello(s->runs);
		if (at < 0) {
			rc = io_err();
			goto out;
		}
		r.off = (uint64_t)at;
	}
	for (size_t i = 0; i < m && !rc; i++) {
		if ((rc = format_row(&s->line, sorted[i])))
			break;
		if (!to_runs) {
			rc = out_add(&s->out, s->line.data, s->line.len);
			continue;
		}
		if (s->line.len > UINT32_MAX) {
			rc = -EFBIG;
			break;
		}
		if (!(rc = spill_u32(s, s->runs, sorted[i]->klen)) &&
		    !(rc = spill_u32(s, s->runs, (uint32_t)s->line.len)))
			rc = spill_write(s, s->runs, s->line.data, s->line.len);
	}
	if (!rc && to_runs && m) {
		r.end = r.off;
		errno = 0;
		off_t at = ftello(s->runs);
		if (at < 0) {
			rc = io_err();
			goto out;
		}
		r.end = (uint64_t)at;
		if (s->nruns == s->caprun) {
			size_t ncap = s->caprun ? s->caprun * 2 : 64;
			struct run *nr = realloc(s->run, ncap * sizeof *nr);
			if (!nr) {
				rc = -ENOMEM;
				goto out;
			}
			s->run = nr;
			s->caprun = ncap;
		}
		s->run[s->nruns++] = r;
	}
out:
	free(sorted);
	return rc;
}

/* ---- partitions summed one by one ------------------------------------ */

/* Read one record back: 'S' (the sums into cols) or 'R' (the row into
 * s->body); the key into s->key ('R': parsed from the row). 0 and *type 0
 * at the end. */
static int get_record(char *type, struct sum *s, FILE *f, size_t *key_end,
		      size_t *nums)
{
	uint32_t a, b;
	int c = getc(f), rc;
	*type = 0;
	if (c == EOF)
		return ferror(f) ? io_err() : 0;
	if (c == 'S') {
		if ((rc = read_exact(f, &a, sizeof a)) || (rc = read_exact(f, &b, sizeof b)))
			return rc;
		vd_buf_reset(&s->key);
		vd_buf_reset(&s->body);
		if ((rc = vd_buf_grow(&s->key, a)) ||
		    (rc = vd_buf_grow(&s->body, (size_t)b * sizeof(struct col))) ||
		    (rc = read_exact(f, s->key.data, a)))
			return rc;
		s->key.len = a;
		struct col *cols = (struct col *)(void *)s->body.data;
		for (uint32_t k = 0; k < b; k++) {
			unsigned char fl;
			if ((rc = read_exact(f, &fl, 1)) ||
			    (rc = read_exact(f, &cols[k].i, sizeof cols[k].i)) ||
			    (rc = read_exact(f, &cols[k].d, sizeof cols[k].d)))
				return rc;
			cols[k].is_float = fl;
		}
		s->body.len = (size_t)b * sizeof(struct col);
		*nums = b;
		*type = 'S';
		return 0;
	}
	if (c != 'R')
		return -EIO;
	if ((rc = read_exact(f, &a, sizeof a)))
		return rc;
	vd_buf_reset(&s->body);
	if ((rc = vd_buf_grow(&s->body, a)) || (rc = read_exact(f, s->body.data, a)))
		return rc;
	s->body.len = a;
	s->body.data[a] = '\0';
	/* It parsed when it came; if it does not now, the file is damaged. */
	if (row_parse(key_end, nums, s->body.data, a))
		return -EIO;
	*type = 'R';
	return 0;
}

/* Take in the exact sums a key had at a split: its first record there. */
static int table_put_state(struct table *t, const char *key, size_t klen,
			   const struct col *cols, size_t ncols)
{
	struct entry *en;
	bool created;
	int rc = table_get(&en, &created, t, key, klen, ncols);
	if (rc)
		return rc;
	if (!created)
		return -EIO;
	memcpy(ENTRY_COLS(en), cols, ncols * sizeof *cols);
	return 0;
}

static int part_sum(struct sum *s, FILE *in, int depth)
{
	struct table t;
	struct parts p = { 0 };
	int rc;
	errno = 0;
	if (fflush(in) || fseeko(in, 0, SEEK_END))
		return io_err();
	off_t size = ftello(in);
	if (size < 0 || fseeko(in, 0, SEEK_SET))
		return io_err();
	/* Deep enough: sum what is left in memory, cap or not. */
	table_init(&t, depth >= DEPTH_MAX ? SIZE_MAX : s->cap);
	if (depth >= DEPTH_MAX && !s->deep_logged) {
		vd_warn("reduce = sum: a partition is still over the memory cap after "
			"%d splits; summing it in memory", DEPTH_MAX);
		s->deep_logged = true;
	}
	for (;;) {
		char type;
		size_t key_end = 0, nums = 0;
		if ((rc = get_record(&type, s, in, &key_end, &nums)) || !type)
			break;
		const char *key = type == 'S' ? s->key.data : s->body.data;
		size_t klen = type == 'S' ? s->key.len : key_end;
		if (!p.n) {
			rc = type == 'S'
				? table_put_state(&t, key, klen, (const struct col *)(void *)s->body.data, nums)
				: table_add_row(&t, s->body.data, s->body.len, key_end, nums);
			if (rc != 1) {
				if (rc)
					break;
				continue;
			}
			errno = 0;
			off_t at = ftello(in);
			if (at < 0) {
				rc = io_err();
				break;
			}
			if ((rc = split(&p, s, &t, depth, (uint64_t)at, (uint64_t)size)))
				break;
		}
		FILE *to;
		if ((rc = part_of(&to, &p, s, key, klen)))
			break;
		if (type == 'R') {
			rc = put_row(s, to, s->body.data, s->body.len);
		} else {
			/* A state record as read, moved on as it is. */
			struct entry en = { .klen = (uint32_t)klen, .ncols = (uint32_t)nums };
			struct vd_buf rec = VD_BUF_INIT(SIZE_MAX / 2);
			if (!(rc = vd_buf_add(&rec, s->body.data, s->body.len)) &&
			    !(rc = vd_buf_add(&rec, key, klen))) {
				en.rec = rec.data;
				rc = put_state(s, to, &en);
			}
			vd_buf_release(&rec);
		}
		if (rc)
			break;
	}
	if (!rc && !p.n)
		rc = table_emit(s, &t, true);
	table_release(&t);
	for (size_t i = 0; !rc && i < p.n; i++) {
		if (!p.f[i])
			continue;
		rc = part_sum(s, p.f[i], depth + 1);
		fclose(p.f[i]);
		p.f[i] = NULL;
	}
	parts_close(&p);
	return rc;
}

/* ---- merging the sorted runs ----------------------------------------- */

struct reader {
	int fd;
	uint64_t pos, end;     /* in the runs file */
	char *buf;
	size_t bufsize, at, len;
	struct vd_buf line;    /* the current row */
	size_t klen;
};

static int rd_bytes(struct reader *r, void *dst, size_t n)
{
	char *d = dst;
	while (n) {
		if (r->at == r->len) {
			uint64_t left = r->end - r->pos;
			size_t want = left < r->bufsize ? (size_t)left : r->bufsize;
			if (!want)
				return -EIO;
			ssize_t got = pread(r->fd, r->buf, want, (off_t)r->pos);
			if (got <= 0)
				return got < 0 ? -errno : -EIO;
			r->pos += (uint64_t)got;
			r->at = 0;
			r->len = (size_t)got;
		}
		size_t take = r->len - r->at < n ? r->len - r->at : n;
		memcpy(d, r->buf + r->at, take);
		r->at += take;
		d += take;
		n -= take;
	}
	return 0;
}

/* The run's next row; 1 at its end. */
static int rd_next(struct reader *r)
{
	uint32_t klen, len;
	int rc;
	if (r->at == r->len && r->pos == r->end)
		return 1;
	if ((rc = rd_bytes(r, &klen, sizeof klen)) || (rc = rd_bytes(r, &len, sizeof len)))
		return rc;
	if (klen > len)
		return -EIO;
	vd_buf_reset(&r->line);
	if ((rc = vd_buf_grow(&r->line, len)) || (rc = rd_bytes(r, r->line.data, len)))
		return rc;
	r->line.len = len;
	r->klen = klen;
	return 0;
}

static int rd_cmp(const struct reader *a, const struct reader *b)
{
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	int c = memcmp(a->line.data, b->line.data, n);
	return c ? c : (a->klen > b->klen) - (a->klen < b->klen);
}

static void heap_down(struct reader **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		if (l < n && rd_cmp(h[l], h[m]) < 0)
			m = l;
		if (l + 1 < n && rd_cmp(h[l + 1], h[m]) < 0)
			m = l + 1;
		if (m == i)
			return;
		struct reader *x = h[i];
		h[i] = h[m];
		h[m] = x;
		i = m;
	}
}

/* Every key is in one partition, so in one run: the merge only orders.
 * A key seen twice, or out of order, means a damaged file: -EIO. */
static int runs_merge(struct sum *s)
{
	size_t n = s->nruns;
	struct reader *rd = calloc(n ? n : 1, sizeof *rd);
	struct reader **heap = calloc(n ? n : 1, sizeof *heap);
	struct vd_buf last = VD_BUF_INIT(SIZE_MAX / 2);
	bool have_last = false;
	size_t bufsize = n ? RUNS_READ_BUDGET / n : 0;
	int rc = 0;
	if (!rd || !heap) {
		rc = -ENOMEM;
		goto out;
	}
	if (bufsize < 4096)
		bufsize = 4096;
	if (bufsize > SPILL_BUF)
		bufsize = SPILL_BUF;
	errno = 0;
	if (n && fflush(s->runs)) {
		rc = io_err();
		goto out;
	}
	size_t live = 0;
	for (size_t i = 0; i < n; i++) {
		struct reader *r = &rd[i];
		r->fd = fileno(s->runs);
		r->pos = s->run[i].off;
		r->end = s->run[i].end;
		vd_buf_init(&r->line, SIZE_MAX / 2);
		r->bufsize = bufsize;
		if (!(r->buf = malloc(bufsize))) {
			rc = -ENOMEM;
			goto out;
		}
		if ((rc = rd_next(r)) < 0)
			goto out;
		if (rc == 0)
			heap[live++] = r;
		rc = 0;
	}
	for (size_t i = live / 2; i-- > 0;)
		heap_down(heap, live, i);
	while (live) {
		struct reader *r = heap[0];
		if (have_last) {
			size_t m = last.len < r->klen ? last.len : r->klen;
			int c = memcmp(last.data, r->line.data, m);
			if (c > 0 || (!c && last.len >= r->klen)) {
				vd_err("reduce = sum: spilled runs out of order");
				rc = -EIO;
				goto out;
			}
		}
		vd_buf_reset(&last);
		if ((rc = vd_buf_add(&last, r->line.data, r->klen)) ||
		    (rc = out_add(&s->out, r->line.data, r->line.len)))
			goto out;
		have_last = true;
		if ((rc = rd_next(r)) < 0)
			goto out;
		if (rc == 1)
			heap[0] = heap[--live];
		rc = 0;
		heap_down(heap, live, 0);
	}
out:
	for (size_t i = 0; rd && i < n; i++) {
		free(rd[i].buf);
		vd_buf_release(&rd[i].line);
	}
	free(rd);
	free(heap);
	vd_buf_release(&last);
	return rc;
}

/* ---- the reduce ------------------------------------------------------ */

int vd_engine_reduce_sweep(vd_engine *e)
{
	struct vd_buf dir = VD_BUF_INIT(4096);
	vd_buf_addf(&dir, "%s/spill", e->state);
	int rc = vd_rm_rf(vd_buf_cstr(&dir));
	if (rc)
		vd_warn("cannot empty %s: %s", vd_buf_cstr(&dir), strerror(-rc));
	vd_buf_release(&dir);
	return rc;
}

int vd_engine_reduce_sum(struct vd_file *f, vd_hasher *h, vd_store_writer *w,
			 vd_engine *e, const struct vd_extent *outs, size_t n)
{
	struct vd_buf b = VD_BUF_INIT(VD_RESULT_MAX);
	struct sum s = {
		.e = e,
		.cap = e->reduce_mem ? e->reduce_mem : SUM_MEM_CAP,
		.out = { .f = f, .w = w, .h = h, .piece = VD_BUF_INIT(VD_RESULT_MAX) },
		.line = VD_BUF_INIT(VD_RESULT_MAX),
		.key = VD_BUF_INIT(VD_RESULT_MAX),
		.body = VD_BUF_INIT(VD_RESULT_MAX),
	};
	struct table t;
	struct parts p = { 0 };
	uint64_t total = 0, done = 0;
	int rc = 0;
	table_init(&t, s.cap);
	for (size_t i = 0; i < n; i++)
		total += outs[i].len;
	for (size_t i = 0; i < n; i++) {
		if (outs[i].len == 0)
			continue;
		vd_buf_reset(&b);
		if ((rc = vd_store_read(&b, e->store, outs[i].id)))
			goto out;
		for (size_t pos = 0; pos < b.len;) {
			const char *row = b.data + pos;
			const char *nl = memchr(row, '\n', b.len - pos);
			size_t len = nl ? (size_t)(nl - row) : b.len - pos;
			size_t l = len, key_end, nums;
			pos += len + 1;
			if (l && row[l - 1] == '\r')
				l--;
			if (!l)
				continue;
			if ((rc = row_parse(&key_end, &nums, row, l))) {
				vd_warn("reduce = sum: unit %zu: a row is not "
					"key,number: %.*s", i, (int)(l < 80 ? l : 80), row);
				goto out;
			}
			if (!p.n) {
				if ((rc = table_add_row(&t, row, l, key_end, nums)) != 1) {
					if (rc)
						goto out;
					continue;
				}
				if ((rc = split(&p, &s, &t, 0, done + (uint64_t)(row - b.data),
						total)))
					goto out;
			}
			FILE *to;
			if ((rc = part_of(&to, &p, &s, row, key_end)) ||
			    (rc = put_row(&s, to, row, l)))
				goto out;
		}
		done += b.len;
	}
	if (!p.n) {
		rc = table_emit(&s, &t, false);
	} else {
		vd_info("reduce = sum: %zu units' rows did not fit in %zu KiB: summing "
			"them in %zu partitions under %s/spill", n, s.cap >> 10, p.n, e->state);
		for (size_t i = 0; !rc && i < p.n; i++) {
			if (!p.f[i])
				continue;
			rc = part_sum(&s, p.f[i], 1);
			fclose(p.f[i]);
			p.f[i] = NULL;
		}
		if (!rc)
			rc = runs_merge(&s);
	}
	if (!rc)
		rc = out_finish(&s.out);
out:
	table_release(&t);
	parts_close(&p);
	if (s.runs)
		fclose(s.runs);
	free(s.run);
	vd_buf_release(&b);
	vd_buf_release(&s.out.piece);
	vd_buf_release(&s.line);
	vd_buf_release(&s.key);
	vd_buf_release(&s.body);
	return rc;
}
