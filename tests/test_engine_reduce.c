/*
 * test_engine_reduce.c - reduce = sum in bounded memory and concat's
 * gathering, on the engine's reduce itself (vd_engine_reduce) with unit
 * outputs stored as the result path stores them: one pack each.
 *
 * The sum tests reduce the same outputs with the default memory cap (all
 * in memory) and with caps small enough to split once, twice or down to
 * the last level, and want the same bytes, the same data ID and the same
 * pieces every time, and a spill to have happened when the cap is small.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_int.h"
#include "util.h"

struct fx {
	char dir[64];
	vd_engine *e;
};

static int open_engine(struct fx *f)
{
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300,
				    .chunk_avg = 4096 };
	return vd_engine_open(&f->e, &o);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-reduce-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(open_engine(f), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Store each text as a unit's output is stored: a writer, a pack and a
 * committed batch of its own. */
static void put_outputs(vd_engine *e, struct vd_extent *outs, char **texts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		vd_store_writer *w = NULL;
		vd_catalog_batch *b = NULL;
		size_t len = strlen(texts[i]);
		assert_int_equal(vd_catalog_batch_new(&b), 0);
		assert_int_equal(vd_store_writer_new(&w, e->store), 0);
		assert_int_equal(vd_store_writer_put(outs[i].id, w, texts[i], len), 0);
		assert_int_equal(vd_store_writer_commit(w, b), 0);
		assert_int_equal(vd_catalog_commit(e->cat, b, true), 0);
		vd_store_writer_free(w);
		vd_catalog_batch_free(b);
		outs[i].len = len;
	}
}

struct result {
	struct vd_buf bytes;
	char id[VD_ID_SIZE];
	struct vd_file *f;
};

/* Reduce, commit, and read the result back through its extents. */
static int reduce(struct result *r, vd_engine *e, enum vd_reduce how,
		  const struct vd_extent *outs, size_t n)
{
	vd_catalog_batch *b = NULL;
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	r->f = NULL;
	vd_buf_init(&r->bytes, SIZE_MAX / 2);
	int rc = vd_engine_reduce(&r->f, r->id, b, e, how, outs, n);
	if (rc) {
		vd_catalog_batch_free(b);
		return rc;
	}
	assert_int_equal(vd_catalog_commit(e->cat, b, true), 0);
	vd_catalog_batch_free(b);
	uint64_t lines = 0;
	for (size_t i = 0; i < r->f->n; i++) {
		size_t before = r->bytes.len;
		assert_int_equal(vd_store_read(&r->bytes, e->store, r->f->ext[i].id), 0);
		assert_int_equal(r->bytes.len - before, r->f->ext[i].len);
		assert_int_equal(vd_engine_count_lines(r->bytes.data + before, r->f->ext[i].len),
				 r->f->ext[i].lines);
		lines += r->f->ext[i].lines;
	}
	assert_int_equal(r->bytes.len, r->f->size);
	assert_int_equal(lines, vd_engine_count_lines(r->bytes.data, r->bytes.len));
	return 0;
}

static void result_release(struct result *r)
{
	vd_buf_release(&r->bytes);
	vd_file_free(r->f);
}

/* Same bytes, ID and pieces. */
static void assert_same_result(const struct result *a, const struct result *b)
{
	assert_int_equal(a->bytes.len, b->bytes.len);
	assert_memory_equal(a->bytes.data, b->bytes.data, a->bytes.len);
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->f->n, b->f->n);
	for (size_t i = 0; i < a->f->n; i++)
		assert_string_equal(a->f->ext[i].id, b->f->ext[i].id);
}

static void free_texts(char **texts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Outputs a word count or a messier function could give: many distinct
 * keys, repeated keys, keys with commas, one to three number columns (the
 * same key with different counts), floats and integers in one column,
 * CRLF ends, blank lines, a last row without a newline. */
static char **make_outputs(size_t n, size_t rows, size_t keys, uint64_t seed)
{
	char **texts = calloc(n, sizeof *texts);
	uint64_t s = seed;
	for (size_t i = 0; i < n; i++) {
		struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
		for (size_t r = 0; r < rows; r++) {
			uint64_t k = rnd(&s) % keys, kind = rnd(&s) % 16;
			if (kind == 0)
				vd_buf_addf(&b, "path/%llu,w%llu,%llu\n", (unsigned long long)(k % 7),
					    (unsigned long long)k, (unsigned long long)(rnd(&s) % 100));
			else if (kind == 1)
				vd_buf_addf(&b, "k%llu,%.3f\r\n", (unsigned long long)k,
					    (double)(rnd(&s) % 100000) / 1000.0);
			else if (kind == 2)
				vd_buf_addf(&b, "k%llu,%llu,%lld\n", (unsigned long long)k,
					    (unsigned long long)(rnd(&s) % 10),
					    (long long)(rnd(&s) % 1000) - 500);
			else if (kind == 3)
				vd_buf_adds(&b, "\n");
			else if (kind == 4)
				vd_buf_addf(&b, "k%llu, 1e%d ,2\n", (unsigned long long)k,
					    (int)(rnd(&s) % 20));
			else
				vd_buf_addf(&b, "k%llu,%llu\n", (unsigned long long)k,
					    (unsigned long long)(rnd(&s) % 1000));
		}
		vd_buf_addf(&b, "last%zu,1", i);
		texts[i] = vd_buf_detach(&b, NULL);
	}
	return texts;
}

static void test_sum_spill_same_bytes(void **state)
{
	struct fx *f = *state;
	enum { N = 24 };
	struct vd_extent outs[N];
	char **texts = make_outputs(N, 3000, 40000, 42);
	put_outputs(f->e, outs, texts, N);

	struct result mem, small;
	assert_int_equal(reduce(&mem, f->e, VD_REDUCE_SUM, outs, N), 0);
	assert_int_equal(atomic_load(&f->e->reduce_splits), 0);
	assert_true(mem.bytes.len > 100000);
	/* 1 MiB and 256 KiB: one split; 64 KiB: the partitions split
	 * again. */
	size_t caps[] = { 1u << 20, 256u << 10, 64u << 10 };
	uint64_t splits = 0;
	for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
		f->e->reduce_mem = caps[c];
		assert_int_equal(reduce(&small, f->e, VD_REDUCE_SUM, outs, N), 0);
		assert_true(atomic_load(&f->e->reduce_splits) > splits);
		splits = atomic_load(&f->e->reduce_splits);
		assert_same_result(&mem, &small);
		result_release(&small);
	}
	result_release(&mem);
	free_texts(texts, N);
}

/* A cap below what an empty table takes: every partition splits again
 * until the last level, which is summed in memory regardless. */
static void test_sum_spill_deepest(void **state)
{
	struct fx *f = *state;
	enum { N = 3 };
	struct vd_extent outs[N];
	char **texts = make_outputs(N, 600, 2000, 9);
	put_outputs(f->e, outs, texts, N);
	struct result mem, small;
	assert_int_equal(reduce(&mem, f->e, VD_REDUCE_SUM, outs, N), 0);
	f->e->reduce_mem = 16u << 10;
	assert_int_equal(reduce(&small, f->e, VD_REDUCE_SUM, outs, N), 0);
	assert_true(atomic_load(&f->e->reduce_splits) > 100);
	assert_same_result(&mem, &small);
	result_release(&mem);
	result_release(&small);
	free_texts(texts, N);
}

/* The rows of each key in their order, whatever the cap: a float column
 * summed in another order would print otherwise (1e16 + 1 is 1e16). */
static void test_sum_spill_float_order(void **state)
{
	struct fx *f = *state;
	enum { N = 8 };
	struct vd_extent outs[N];
	char **texts = calloc(N, sizeof *texts);
	for (size_t i = 0; i < N; i++) {
		struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
		if (i == 0)
			vd_buf_adds(&b, "big,1e16\nsmall,0.1\n");
		for (size_t r = 0; r < 5000; r++)
			vd_buf_addf(&b, "big,1\nsmall,0.2\nfill%zu_%zu,1\n", i, r);
		texts[i] = vd_buf_detach(&b, NULL);
	}
	put_outputs(f->e, outs, texts, N);
	struct result mem, small;
	assert_int_equal(reduce(&mem, f->e, VD_REDUCE_SUM, outs, N), 0);
	f->e->reduce_mem = 128u << 10;
	assert_int_equal(reduce(&small, f->e, VD_REDUCE_SUM, outs, N), 0);
	assert_true(atomic_load(&f->e->reduce_splits) > 0);
	assert_same_result(&mem, &small);
	/* The sequential sums, as doubles: 1e16 + 1 rounds back to 1e16. */
	assert_int_equal(strncmp(mem.bytes.data, "big,1e+16\n", 10), 0);
	double small_sum = 0.1;
	for (size_t i = 0; i < N * 5000; i++)
		small_sum += 0.2;
	char want[64];
	snprintf(want, sizeof want, "\nsmall,%.15g\n", small_sum);
	assert_non_null(strstr(mem.bytes.data, want));
	result_release(&mem);
	result_release(&small);
	free_texts(texts, N);
}

/* Integers stay exact until a sum overflows, then go on as doubles from
 * the exact sum so far. */
static void test_sum_overflow(void **state)
{
	struct fx *f = *state;
	char *texts[] = {
		strdup("max,9223372036854775807\nmin,-9223372036854775808\nint,5\n"),
		strdup("max,1\nmin,-1\nint,-7\nmax,1\n"),
	};
	struct vd_extent outs[2];
	put_outputs(f->e, outs, texts, 2);
	struct result r;
	assert_int_equal(reduce(&r, f->e, VD_REDUCE_SUM, outs, 2), 0);
	assert_string_equal(r.bytes.data,
			    "int,-2\nmax,9.22337203685478e+18\nmin,-9.22337203685478e+18\n");
	result_release(&r);
	free(texts[0]);
	free(texts[1]);
}

static void test_sum_bad_row(void **state)
{
	struct fx *f = *state;
	char *texts[] = { strdup("a,1\nno number here\n") };
	struct vd_extent outs[1];
	put_outputs(f->e, outs, texts, 1);
	struct result r;
	assert_int_equal(reduce(&r, f->e, VD_REDUCE_SUM, outs, 1), -EINVAL);
	/* The same when the row comes after the table spilled. */
	free(texts[0]);
	struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
	for (int i = 0; i < 20000; i++)
		vd_buf_addf(&b, "key%d,1\n", i);
	vd_buf_adds(&b, "key,x\n");
	texts[0] = vd_buf_detach(&b, NULL);
	put_outputs(f->e, outs, texts, 1);
	f->e->reduce_mem = 64u << 10;
	assert_int_equal(reduce(&r, f->e, VD_REDUCE_SUM, outs, 1), -EINVAL);
	free(texts[0]);
}

/* A result of several MiB comes out in pieces of about 1 MiB, each ending
 * in a newline, the same pieces whether it spilled or not. */
static void test_sum_pieces(void **state)
{
	struct fx *f = *state;
	enum { N = 4 };
	struct vd_extent outs[N];
	char **texts = calloc(N, sizeof *texts);
	for (size_t i = 0; i < N; i++) {
		struct vd_buf b = VD_BUF_INIT(SIZE_MAX / 2);
		for (size_t r = 0; r < 60000; r++)
			vd_buf_addf(&b, "a rather long key to make the result large %zu,%zu\n",
				    r * N + i, r);
		texts[i] = vd_buf_detach(&b, NULL);
	}
	put_outputs(f->e, outs, texts, N);
	struct result mem, small;
	assert_int_equal(reduce(&mem, f->e, VD_REDUCE_SUM, outs, N), 0);
	assert_true(mem.f->n >= 10);
	for (size_t i = 0; i < mem.f->n; i++) {
		const struct vd_extent *x = &mem.f->ext[i];
		assert_int_equal(mem.bytes.data[x->off + x->len - 1], '\n');
		if (i + 1 < mem.f->n) {
			assert_true(x->len > (1u << 20));
			/* Cut at the first newline past 1 MiB. */
			assert_null(memchr(mem.bytes.data + x->off + (1u << 20), '\n',
					   x->len - (1u << 20) - 1));
		}
	}
	f->e->reduce_mem = 512u << 10;
	assert_int_equal(reduce(&small, f->e, VD_REDUCE_SUM, outs, N), 0);
	assert_true(atomic_load(&f->e->reduce_splits) > 0);
	assert_same_result(&mem, &small);
	result_release(&mem);
	result_release(&small);
	free_texts(texts, N);
}

static size_t dir_entries(const char *path)
{
	DIR *d = opendir(path);
	size_t n = 0;
	if (!d)
		return 0;
	for (struct dirent *de; (de = readdir(d));)
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

/* Spill files leave nothing behind, and what a crash left is removed at
 * the next start. */
static void test_spill_cleanup(void **state)
{
	struct fx *f = *state;
	char path[128], left[160];
	char **texts = make_outputs(2, 5000, 100000, 7);
	struct vd_extent outs[2];
	put_outputs(f->e, outs, texts, 2);
	f->e->reduce_mem = 64u << 10;
	struct result r;
	assert_int_equal(reduce(&r, f->e, VD_REDUCE_SUM, outs, 2), 0);
	assert_true(atomic_load(&f->e->reduce_splits) > 0);
	result_release(&r);
	snprintf(path, sizeof path, "%s/spill", f->dir);
	assert_int_equal(dir_entries(path), 0);
	snprintf(left, sizeof left, "%s/sum-crashed", path);
	assert_int_equal(vd_write_file_atomic(left, "x", 1, 0600), 0);
	assert_int_equal(dir_entries(path), 1);
	vd_engine_close(f->e);
	assert_int_equal(open_engine(f), 0);
	assert_int_equal(dir_entries(path), 0);
	free_texts(texts, 2);
}

/* Where the index says a chunk is: the k/ record's pack and offset (its
 * first 32 bytes, whatever follows them). */
static void chunk_place(char pack[17], uint64_t *off, vd_engine *e, const char *id)
{
	char key[64], *val = NULL;
	size_t len;
	snprintf(key, sizeof key, "k/%s", id);
	assert_int_equal(vd_catalog_get(&val, &len, e->cat, key), 0);
	assert_true(len >= 32);
	memcpy(pack, val, 16);
	pack[16] = '\0';
	*off = 0;
	for (int i = 7; i >= 0; i--)
		*off = *off << 8 | (unsigned char)val[16 + i];
	free(val);
}

/* concat gathers the small outputs, each in a pack of its own, into the
 * result's pack in result order; an output in a big pack stays there. */
static void test_concat_gathers(void **state)
{
	struct fx *f = *state;
	enum { N = 6 };
	struct vd_extent outs[N + 1];
	char *texts[N + 1];
	for (size_t i = 0; i < N; i++) {
		char t[64];
		/* Every other one lacks its last newline. */
		snprintf(t, sizeof t, "unit %zu row 1\nunit %zu row 2%s", i, i, i % 2 ? "" : "\n");
		texts[i] = strdup(t);
	}
	/* One big output: a pack past the gathering threshold, of bytes
	 * that do not compress (random, no NUL: it is a string here). */
	size_t big = (size_t)6 << 20;
	uint64_t seed = 1;
	texts[N] = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		texts[N][i] = i % 64 == 63 ? '\n' : (char)(1 + rnd(&seed) % 255);
	texts[N][big] = '\0';
	put_outputs(f->e, outs, texts, N + 1);
	char before[N + 1][17];
	uint64_t off;
	for (size_t i = 0; i <= N; i++)
		chunk_place(before[i], &off, f->e, outs[i].id);
	/* The big one in the middle. */
	struct vd_extent order[N + 1];
	for (size_t i = 0, j = 0; i <= N; i++)
		order[i] = i == N / 2 ? outs[N] : outs[j++];

	struct result r;
	assert_int_equal(reduce(&r, f->e, VD_REDUCE_CONCAT, order, N + 1), 0);
	struct vd_buf want = VD_BUF_INIT(SIZE_MAX / 2);
	for (size_t i = 0; i <= N; i++) {
		const char *t = i == N / 2 ? texts[N] : texts[i < N / 2 ? i : i - 1];
		vd_buf_adds(&want, t);
		if (t[strlen(t) - 1] != '\n')
			vd_buf_adds(&want, "\n");
	}
	assert_int_equal(r.bytes.len, want.len);
	assert_memory_equal(r.bytes.data, want.data, want.len);

	/* The small ones (and the "\n" chunk) now lie in one new pack, in
	 * the order the result reads them; the big one where it was. */
	char pack[17] = "", p[17];
	uint64_t last = 0;
	bool first = true;
	for (size_t i = 0; i < r.f->n; i++) {
		const char *id = r.f->ext[i].id;
		chunk_place(p, &off, f->e, id);
		if (!strcmp(id, outs[N].id)) {
			assert_string_equal(p, before[N]);
			continue;
		}
		if (r.f->ext[i].len == 1 && !first && !strcmp(p, pack))
			continue;   /* the "\n" chunk, gathered once, read again */
		if (first) {
			memcpy(pack, p, sizeof pack);
			for (size_t k = 0; k < N; k++)
				assert_string_not_equal(pack, before[k]);
			first = false;
		} else {
			assert_string_equal(p, pack);
			assert_true(off > last);
		}
		last = off;
	}
	/* Run again (a rerun, memo reused): the same result. */
	struct result again;
	assert_int_equal(reduce(&again, f->e, VD_REDUCE_CONCAT, order, N + 1), 0);
	assert_string_equal(again.id, r.id);
	assert_memory_equal(again.bytes.data, want.data, want.len);
	result_release(&again);
	result_release(&r);
	vd_buf_release(&want);
	for (size_t i = 0; i <= N; i++)
		free(texts[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_sum_spill_same_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_spill_deepest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_spill_float_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_bad_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sum_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spill_cleanup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concat_gathers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
