/* Unit tests for daemon/store.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zstd.h>

#include "catalog.h"
#include "store.h"
#include "store_int.h"   /* pipe_threads, to use compression workers on any machine */
#include "util.h"

struct fixture {
	char dir[64];
	char cat_dir[96];
	char pack_dir[96];
	struct vd_key key;
	vd_catalog *cat;
	vd_store *st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vdfs-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->cat_dir, sizeof(f->cat_dir), "%s/catalog", f->dir);
	snprintf(f->pack_dir, sizeof(f->pack_dir), "%s/packs", f->dir);
	for (size_t i = 0; i < VD_KEY_SIZE; i++)
		f->key.secret[i] = (unsigned char)(i * 13 + 5);
	if (vd_catalog_open(&f->cat, f->cat_dir))
		return -1;
	if (vd_store_open(&f->st, f->pack_dir, f->cat, &f->key))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_store_close(f->st);
	vd_catalog_close(f->cat);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static void reopen_store(struct fixture *f)
{
	vd_store_close(f->st);
	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), 0);
}

/* Names of files in the pack directory, and the sum of their sizes. */
static int list_packs(const struct fixture *f, char names[][64], int max,
		      uint64_t *total)
{
	struct dirent *de;
	DIR *d = opendir(f->pack_dir);
	int n = 0;

	assert_non_null(d);
	if (total)
		*total = 0;
	while ((de = readdir(d)) != NULL) {
		char path[512];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		assert_true(n < max);
		snprintf(names[n], 64, "%.63s", de->d_name);
		snprintf(path, sizeof(path), "%s/%.255s", f->pack_dir, de->d_name);
		assert_int_equal(stat(path, &st), 0);
		if (total)
			*total += (uint64_t)st.st_size;
		n++;
	}
	closedir(d);
	return n;
}

/* Put each buffer through one writer and commit its batch. */
static uint64_t put_commit(struct fixture *f, const char *const *data, int n,
			   char ids[][VD_ID_SIZE])
{
	vd_catalog_batch *b;
	vd_store_writer *w;
	uint64_t nb;

	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(vd_store_writer_put(ids[i], w, data[i],
						     strlen(data[i])), 0);
	nb = vd_store_writer_new_bytes(w);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	return nb;
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	const char *data[] = { "first chunk\n", "second chunk\nwith two lines\n", "" };
	char ids[3][VD_ID_SIZE], want[VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	uint64_t len;

	assert_int_equal(put_commit(f, data, 3, ids),
			 strlen(data[0]) + strlen(data[1]));
	for (int i = 0; i < 3; i++) {
		vd_id_of(want, &f->key, data[i], strlen(data[i]));
		assert_string_equal(ids[i], want);
		assert_int_equal(vd_store_has(f->st, ids[i]), 1);
		assert_int_equal(vd_store_size(&len, f->st, ids[i]), 0);
		assert_int_equal(len, strlen(data[i]));
		vd_buf_reset(&out);
		assert_int_equal(vd_store_read(&out, f->st, ids[i]), 0);
		assert_int_equal(out.len, strlen(data[i]));
		assert_string_equal(vd_buf_cstr(&out), data[i]);
	}
	/* Reads append. */
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	assert_int_equal(out.len, strlen(data[0]) + strlen(data[1]));
	/* The cap applies. */
	out.max = out.len + 3;
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EFBIG);
	vd_buf_release(&out);

	/* Still there after reopening everything. */
	reopen_store(f);
	vd_store_close(f->st);
	vd_catalog_close(f->cat);
	assert_int_equal(vd_catalog_open(&f->cat, f->cat_dir), 0);
	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), 0);
	out.max = 1 << 20;
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	assert_string_equal(out.data, data[1]);
	vd_buf_release(&out);

	assert_int_equal(vd_store_has(f->st, "00000000000000000000000000000000"), 0);
	assert_int_equal(vd_store_read(&out, f->st, "00000000000000000000000000000000"),
			 -ENOENT);
	assert_int_equal(vd_store_size(&len, f->st, "00000000000000000000000000000000"),
			 -ENOENT);
	assert_int_equal(vd_store_has(f->st, "../x"), -EINVAL);
}

static void test_dedup(void **state)
{
	struct fixture *f = *state;
	const char *data[] = { "same bytes\n", "other\n", "same bytes\n" };
	char ids[3][VD_ID_SIZE], names[8][64];
	uint64_t total;

	assert_int_equal(put_commit(f, data, 3, ids),
			 strlen(data[0]) + strlen(data[1]));
	assert_string_equal(ids[0], ids[2]);
	assert_int_equal(list_packs(f, names, 8, &total), 1);
	assert_int_equal(total, strlen(data[0]) + strlen(data[1]));

	/* A second writer with only known chunks writes nothing at all. */
	assert_int_equal(put_commit(f, data, 3, ids), 0);
	assert_int_equal(list_packs(f, names, 8, &total), 1);
	assert_int_equal(total, strlen(data[0]) + strlen(data[1]));

	/* A mix stores only the new one. */
	{
		const char *more[] = { "other\n", "new\n" };

		assert_int_equal(put_commit(f, more, 2, ids), 4);
		assert_int_equal(list_packs(f, names, 8, &total), 2);
		assert_int_equal(total, strlen(data[0]) + strlen(data[1]) + 4);
	}
}

static void test_uncommitted(void **state)
{
	struct fixture *f = *state;
	vd_store_writer *w;
	vd_catalog_batch *b;
	char id[VD_ID_SIZE], names[8][64];

	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	assert_int_equal(vd_store_writer_put(id, w, "lost\n", 5), 0);
	assert_int_equal(vd_store_writer_new_bytes(w), 5);
	assert_int_equal(list_packs(f, names, 8, NULL), 1);
	assert_non_null(strstr(names[0], "tmp-"));
	assert_int_equal(vd_store_has(f->st, id), 0);
	vd_store_writer_free(w);
	assert_int_equal(list_packs(f, names, 8, NULL), 0);
	assert_int_equal(vd_store_has(f->st, id), 0);

	/* A writer with nothing new adds nothing to the batch. */
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_batch_count(b), 0);
	/* And accepts no puts after commit. */
	assert_int_equal(vd_store_writer_put(id, w, "x", 1), -EINVAL);
	vd_store_writer_free(w);
	vd_catalog_batch_free(b);
	assert_int_equal(list_packs(f, names, 8, NULL), 0);
}

static void test_orphans(void **state)
{
	struct fixture *f = *state;
	const char *data[] = { "kept\n" };
	char ids[1][VD_ID_SIZE], id[VD_ID_SIZE], names[8][64], path[256];
	vd_store_writer *w;
	vd_catalog_batch *b;
	struct vd_buf out = VD_BUF_INIT(1024);

	put_commit(f, data, 1, ids);

	/* Renamed into place but its batch never committed (a crash). */
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	assert_int_equal(vd_store_writer_put(id, w, "orphan\n", 7), 0);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_batch_count(b), 2);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	/* A temporary pack left by a crash mid-write. */
	snprintf(path, sizeof(path), "%s/tmp-0123456789abcdef.pack", f->pack_dir);
	assert_int_equal(vd_write_file_atomic(path, "tmp\n", 4, 0600), 0);
	/* An unrelated file is left alone. */
	snprintf(path, sizeof(path), "%s/README", f->pack_dir);
	assert_int_equal(vd_write_file_atomic(path, "x", 1, 0600), 0);
	assert_int_equal(list_packs(f, names, 8, NULL), 4);

	reopen_store(f);
	assert_int_equal(list_packs(f, names, 8, NULL), 2);
	assert_int_equal(vd_store_has(f->st, id), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_string_equal(out.data, "kept\n");
	vd_buf_release(&out);
}

static void test_corruption(void **state)
{
	struct fixture *f = *state;
	const char *data[] = { "aaaa\n", "bbbb\n" };
	char ids[2][VD_ID_SIZE], names[8][64], path[256], c;
	struct vd_buf out = VD_BUF_INIT(1024);
	int fd;

	put_commit(f, data, 2, ids);
	assert_int_equal(list_packs(f, names, 8, NULL), 1);
	/* Read once so the pack's fd is cached: corruption must still show. */
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	vd_buf_reset(&out);
	snprintf(path, sizeof(path), "%s/%s", f->pack_dir, names[0]);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 7), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, 7), 1);
	close(fd);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), -EIO);
	assert_int_equal(out.len, 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_string_equal(out.data, "aaaa\n");
	vd_buf_release(&out);

	/* A truncated pack is an I/O error too. */
	assert_int_equal(truncate(path, 3), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	vd_buf_release(&out);
}

static void test_many(void **state)
{
	struct fixture *f = *state;
	enum { N = 3000 };
	char (*ids)[VD_ID_SIZE] = calloc(N, VD_ID_SIZE);
	char buf[64];
	struct vd_buf out = VD_BUF_INIT(1024);
	vd_store_writer *w;
	vd_catalog_batch *b;
	uint64_t want = 0;

	assert_non_null(ids);
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	for (int r = 0; r < 2; r++) {
		for (int i = 0; i < N; i++) {
			int n = snprintf(buf, sizeof(buf), "record %d\n", i);

			assert_int_equal(vd_store_writer_put(ids[i], w, buf, (size_t)n), 0);
			if (r == 0)
				want += (uint64_t)n;
		}
	}
	assert_int_equal(vd_store_writer_new_bytes(w), want);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_batch_count(b), N + 1);
	assert_int_equal(vd_catalog_commit(f->cat, b, false), 0);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	for (int i = 0; i < N; i += 97) {
		int n = snprintf(buf, sizeof(buf), "record %d\n", i);

		vd_buf_reset(&out);
		assert_int_equal(vd_store_read(&out, f->st, ids[i]), 0);
		assert_int_equal(out.len, (size_t)n);
		assert_memory_equal(out.data, buf, (size_t)n);
	}
	vd_buf_release(&out);
	free(ids);
}

/* ---- compression ---- */

/* n bytes of text: lines of words from a small vocabulary (an LCG, so the
 * same every run), which zstd compresses to well under half. */
static char *gen_text(size_t n, unsigned seed)
{
	static const char *const words[] = { "alpha", "beta", "gamma", "delta", "chunk",
					     "store", "pack", "frame", "zstd", "line" };
	char *p = malloc(n + 1);
	uint32_t x = seed * 2654435761u + 1;
	size_t i = 0;

	assert_non_null(p);
	while (i < n) {
		x = x * 1103515245u + 12345u;
		const char *w = words[(x >> 16) % 10];
		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = w[k];
		if (i < n)
			p[i++] = (x >> 8) % 7 == 0 ? '\n' : ' ';
	}
	p[n] = '\0';
	return p;
}

/* n bytes no compressor can shrink (xorshift; the same every run). */
static unsigned char *gen_random(size_t n, uint64_t seed)
{
	unsigned char *p = malloc(n ? n : 1);
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)(x >> 24);
	}
	return p;
}

/* Put n buffers through one writer, commit; the stored bytes. */
static uint64_t put_bufs(struct fixture *f, const void *const *data, const size_t *len, int n,
			 char ids[][VD_ID_SIZE])
{
	vd_catalog_batch *b;
	vd_store_writer *w;
	uint64_t stored;

	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(vd_store_writer_put(ids[i], w, data[i], len[i]), 0);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	stored = vd_store_writer_stored_bytes(w);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	return stored;
}

/* The chunk's index record as vd_store_chunks gives it. */
struct chunk_rec {
	const char *id;
	char pack[PACK_NAME_SIZE];
	uint64_t off, stored_len, raw_len;
	int found, bad;
};

static int find_chunk(void *ctx, const char *id, const char *pack, uint64_t off,
		      uint64_t stored_len, uint64_t raw_len)
{
	struct chunk_rec *c = ctx;

	if (!id) {
		c->bad++;
		return 0;
	}
	if (strcmp(id, c->id))
		return 0;
	c->found++;
	snprintf(c->pack, sizeof c->pack, "%s", pack);
	c->off = off;
	c->stored_len = stored_len;
	c->raw_len = raw_len;
	return 0;
}

static struct chunk_rec chunk_rec(struct fixture *f, const char *id)
{
	struct chunk_rec c = { .id = id };

	assert_int_equal(vd_store_chunks(f->st, find_chunk, &c), 0);
	assert_int_equal(c.found, 1);
	assert_int_equal(c.bad, 0);
	return c;
}

/* Bytes of the chunk's k/ value. */
static size_t rec_size(struct fixture *f, const char *id)
{
	char key[64], *val = NULL;
	size_t vlen = 0;

	snprintf(key, sizeof key, "k/%s", id);
	assert_int_equal(vd_catalog_get(&val, &vlen, f->cat, key), 0);
	free(val);
	return vlen;
}

static void flip_byte(struct fixture *f, const char *pack, uint64_t off)
{
	char path[256];
	unsigned char c;
	int fd;

	snprintf(path, sizeof path, "%s/%s.pack", f->pack_dir, pack);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

static void test_compressed_round_trip(void **state)
{
	struct fixture *f = *state;
	enum { N = 300000 };
	char *text = gen_text(N, 1);
	const void *data[] = { text, "tiny\n" };
	size_t len[] = { N, 5 };
	char ids[2][VD_ID_SIZE], want[VD_ID_SIZE], names[8][64];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	uint64_t size, total;
	bool zstd;

	uint64_t stored = put_bufs(f, data, len, 2, ids);
	vd_id_of(want, &f->key, text, N);
	assert_string_equal(ids[0], want);
	/* The text is a frame well under its size; the tiny chunk stays raw. */
	assert_true(stored < N / 2 + 5);
	assert_int_equal(list_packs(f, names, 8, &total), 1);
	assert_int_equal(total, stored);
	struct chunk_rec c = chunk_rec(f, ids[0]);
	assert_int_equal(c.raw_len, N);
	assert_true(c.stored_len < N / 2);
	assert_int_equal(rec_size(f, ids[0]), 41);
	c = chunk_rec(f, ids[1]);
	assert_int_equal(c.stored_len, 5);
	assert_int_equal(c.raw_len, 5);
	assert_int_equal(rec_size(f, ids[1]), 32);
	/* Sizes and reads are the raw chunk's. */
	assert_int_equal(vd_store_size(&size, f->st, ids[0]), 0);
	assert_int_equal(size, N);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_int_equal(out.len, N);
	assert_memory_equal(out.data, text, N);
	/* The cap is on the raw length. */
	vd_buf_reset(&out);
	out.max = N - 1;
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EFBIG);
	out.max = 1 << 20;
	/* As stored: the frame, which zstd itself decodes to the text. */
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read_stored(&out, &zstd, &size, f->st, ids[0]), 0);
	assert_true(zstd);
	assert_int_equal(size, N);
	assert_int_equal(out.len, chunk_rec(f, ids[0]).stored_len);
	char *raw = malloc(N);
	assert_int_equal(ZSTD_decompress(raw, N, out.data, out.len), N);
	assert_memory_equal(raw, text, N);
	free(raw);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read_stored(&out, &zstd, &size, f->st, ids[1]), 0);
	assert_false(zstd);
	assert_int_equal(size, 5);
	assert_string_equal(out.data, "tiny\n");
	/* And after reopening everything. */
	vd_store_close(f->st);
	vd_catalog_close(f->cat);
	assert_int_equal(vd_catalog_open(&f->cat, f->cat_dir), 0);
	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), 0);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_memory_equal(out.data, text, N);
	/* A full check reads it as fsck does. */
	c = chunk_rec(f, ids[0]);
	assert_int_equal(vd_store_check(f->st, &out, ids[0], c.pack, c.off, c.stored_len,
					c.raw_len), 0);
	assert_int_equal(out.len, N);
	vd_buf_release(&out);
	free(text);
}

static void test_incompressible(void **state)
{
	struct fixture *f = *state;
	enum { N = 1 << 20 };
	unsigned char *rnd = gen_random(N, 2);
	const void *data[] = { rnd };
	size_t len[] = { N };
	char ids[1][VD_ID_SIZE], names[8][64];
	struct vd_buf out = VD_BUF_INIT(2 << 20);
	uint64_t total;

	/* Stored raw: exactly its size (the bound is 1.02 x), a 32-byte
	 * record as before compression existed. */
	assert_int_equal(put_bufs(f, data, len, 1, ids), N);
	assert_int_equal(list_packs(f, names, 8, &total), 1);
	assert_true(total * 100 <= (uint64_t)N * 102);
	assert_int_equal(total, N);
	struct chunk_rec c = chunk_rec(f, ids[0]);
	assert_int_equal(c.stored_len, N);
	assert_int_equal(c.raw_len, N);
	assert_int_equal(rec_size(f, ids[0]), 32);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_memory_equal(out.data, rnd, N);
	vd_buf_release(&out);

	/* Small chunks (under the probe's 64 KiB) are judged by their byte
	 * histogram: random stays raw, text is compressed. */
	{
		char *small = gen_text(16384, 16);
		const void *sd[] = { rnd, small, rnd + 20000 };
		size_t sl[] = { 16384, 16384, 2000 };
		char sid[3][VD_ID_SIZE];

		put_bufs(f, sd, sl, 3, sid);
		assert_int_equal(rec_size(f, sid[0]), 32);
		assert_int_equal(chunk_rec(f, sid[0]).stored_len, 16384);
		assert_int_equal(rec_size(f, sid[1]), 41);
		assert_true(chunk_rec(f, sid[1]).stored_len < 16384 / 2);
		/* 2000 random bytes may be tried; they stay raw either way. */
		assert_int_equal(chunk_rec(f, sid[2]).stored_len, 2000);
		free(small);
	}
	/* Half random, half text: the probe finds the text, and the frame
	 * is kept since it saves over 3 %. */
	char *text = gen_text(N / 2, 3);
	memcpy(rnd + N / 2, text, N / 2);
	uint64_t stored = put_bufs(f, data, len, 1, ids);
	c = chunk_rec(f, ids[0]);
	assert_int_equal(stored, c.stored_len);
	assert_true(c.stored_len < N * 97 / 100);
	assert_true(c.stored_len > N / 2);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_memory_equal(out.data, rnd, N);
	vd_buf_release(&out);
	free(text);
	free(rnd);
}

static void test_level_none(void **state)
{
	struct fixture *f = *state;
	char *text = gen_text(100000, 4);
	const void *data[] = { text, text + 50000 };
	size_t len[] = { 50000, 50000 };
	char ids[2][VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);

	vd_store_set_level(f->st, 0);
	assert_int_equal(put_bufs(f, data, len, 2, ids), 100000);
	assert_int_equal(rec_size(f, ids[0]), 32);
	assert_int_equal(rec_size(f, ids[1]), 32);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	assert_memory_equal(out.data, text + 50000, 50000);
	/* A level governs new writes: what is stored stays raw. */
	vd_store_set_level(f->st, 19);
	assert_int_equal(put_bufs(f, data, len, 2, ids), 0);
	assert_int_equal(rec_size(f, ids[0]), 32);
	vd_buf_release(&out);
	free(text);
}

/* Many compressible chunks through one writer: the compression workers
 * (two, whatever the machine has) write them in put order, reads before
 * the commit wait for them, and everything reads back after it. */
static void test_pipe(void **state)
{
	struct fixture *f = *state;
	enum { N = 40, SZ = 100000 };
	char *text = gen_text((size_t)N * SZ, 5);
	char ids[N][VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	vd_store_writer *w;
	vd_catalog_batch *b;

	f->st->pipe_threads = 2;
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(vd_store_writer_put(ids[i], w, text + (size_t)i * SZ, SZ), 0);
		/* The same chunk again is found in the writer, pending or not. */
		char again[VD_ID_SIZE];
		assert_int_equal(vd_store_writer_put(again, w, text + (size_t)i * SZ, SZ), 0);
		assert_string_equal(again, ids[i]);
		if (i == N / 2) {
			vd_buf_reset(&out);
			assert_int_equal(vd_store_writer_read(&out, w, ids[i]), 0);
			assert_memory_equal(out.data, text + (size_t)i * SZ, SZ);
		}
	}
	assert_non_null(w->pipe);
	assert_int_equal(vd_store_writer_new_bytes(w), (uint64_t)N * SZ);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_null(w->pipe);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	uint64_t stored = vd_store_writer_stored_bytes(w);
	assert_true(stored < (uint64_t)N * SZ / 2);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	uint64_t at = 0;
	for (int i = 0; i < N; i++) {
		struct chunk_rec c = chunk_rec(f, ids[i]);

		/* Back to back in put order. */
		assert_int_equal(c.off, at);
		at += c.stored_len;
		vd_buf_reset(&out);
		assert_int_equal(vd_store_read(&out, f->st, ids[i]), 0);
		assert_int_equal(out.len, SZ);
		assert_memory_equal(out.data, text + (size_t)i * SZ, SZ);
	}
	assert_int_equal(at, stored);

	/* A writer freed with chunks still queued leaves nothing behind. */
	char *more = gen_text((size_t)N * SZ, 6);
	char names[8][64];
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(vd_store_writer_put(ids[i], w, more + (size_t)i * SZ, SZ), 0);
	vd_store_writer_free(w);
	assert_int_equal(list_packs(f, names, 8, NULL), 1);
	assert_int_equal(vd_store_has(f->st, ids[3]), 0);
	vd_buf_release(&out);
	free(more);
	free(text);
}

static void test_corrupt_compressed(void **state)
{
	struct fixture *f = *state;
	enum { N = 200000 };
	char *text = gen_text(N, 7), *other = gen_text(N, 8);
	const void *data[] = { text, other };
	size_t len[] = { N, N };
	char ids[2][VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);

	put_bufs(f, data, len, 2, ids);
	struct chunk_rec c = chunk_rec(f, ids[0]), d = chunk_rec(f, ids[1]);
	assert_true(c.stored_len < c.raw_len && d.stored_len < d.raw_len);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	/* A byte in the middle of the first frame: never the wrong bytes. */
	flip_byte(f, c.pack, c.off + c.stored_len / 2);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	assert_int_equal(out.len, 0);
	assert_int_equal(vd_store_check(f->st, &out, ids[0], c.pack, c.off, c.stored_len,
					c.raw_len), -EIO);
	/* Its header (the magic number): not a frame at all. */
	flip_byte(f, d.pack, d.off);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), -EIO);
	assert_int_equal(vd_store_check(f->st, &out, ids[1], d.pack, d.off, d.stored_len,
					d.raw_len), -EIO);
	flip_byte(f, d.pack, d.off);
	assert_int_equal(vd_store_check(f->st, &out, ids[1], d.pack, d.off, d.stored_len,
					d.raw_len), 0);
	assert_memory_equal(out.data, other, N);
	/* A frame that decodes well but to other bytes (the index pointed at
	 * the other chunk's frame, of the same length): the hash catches it. */
	unsigned char rec[41];
	char key[64];
	vd_catalog_batch *b;
	snprintf(key, sizeof key, "k/%s", ids[1]);
	char *val = NULL;
	size_t vlen = 0;
	assert_int_equal(vd_catalog_get(&val, &vlen, f->cat, key), 0);
	assert_int_equal(vlen, 41);
	memcpy(rec, val, 41);
	free(val);
	snprintf(key, sizeof key, "k/%s", ids[0]);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	vd_catalog_batch_put(b, key, rec, sizeof rec);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	assert_int_equal(out.len, 0);
	assert_int_equal(vd_store_check(f->st, &out, ids[0], d.pack, d.off, d.stored_len,
					d.raw_len), -EIO);
	/* The frame's last byte. */
	flip_byte(f, d.pack, d.off + d.stored_len - 1);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), -EIO);
	assert_int_equal(out.len, 0);
	/* Compaction does not move a corrupt chunk. */
	uint64_t moved;
	assert_int_equal(vd_store_pack_compact(&moved, f->st, c.pack, ids, 1), -EIO);
	vd_buf_release(&out);
	free(text);
	free(other);
}

/* A store as the code before compression left it: 32-byte records and
 * no meta/store_format. */
static void test_old_records(void **state)
{
	struct fixture *f = *state;
	const char *chunks[] = { "old chunk one\n", "and another, the second\n" };
	char ids[2][VD_ID_SIZE], path[256], *val = NULL;
	unsigned char rec[32];
	struct vd_buf out = VD_BUF_INIT(1024);
	vd_catalog_batch *b;
	size_t vlen;
	uint64_t off = 0, len;

	vd_store_close(f->st);
	f->st = NULL;
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	vd_catalog_batch_del(b, "meta/store_format");
	snprintf(path, sizeof path, "%s/0123456789abcdef.pack", f->pack_dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	for (int i = 0; i < 2; i++) {
		char key[2 + 2 * VD_ID_SIZE];   /* "k/" and an ID, with room to spare */
		size_t n = strlen(chunks[i]);

		vd_id_of(ids[i], &f->key, chunks[i], n);
		assert_int_equal(write(fd, chunks[i], n), (ssize_t)n);
		memcpy(rec, "0123456789abcdef", 16);
		for (int k = 0; k < 8; k++) {
			rec[16 + k] = (unsigned char)(off >> (8 * k));
			rec[24 + k] = (unsigned char)((uint64_t)n >> (8 * k));
		}
		snprintf(key, sizeof key, "k/%s", ids[i]);
		vd_catalog_batch_put(b, key, rec, sizeof rec);
		off += n;
	}
	close(fd);
	vd_catalog_batch_put(b, "p/0123456789abcdef", "", 0);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);

	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), 0);
	for (int i = 0; i < 2; i++) {
		vd_buf_reset(&out);
		assert_int_equal(vd_store_read(&out, f->st, ids[i]), 0);
		assert_string_equal(out.data, chunks[i]);
		assert_int_equal(vd_store_size(&len, f->st, ids[i]), 0);
		assert_int_equal(len, strlen(chunks[i]));
		struct chunk_rec c = chunk_rec(f, ids[i]);
		assert_int_equal(c.stored_len, c.raw_len);
	}
	/* Opening marked it format 2; a format this code does not know is
	 * refused rather than misread. */
	assert_int_equal(vd_catalog_get(&val, &vlen, f->cat, "meta/store_format"), 0);
	assert_string_equal(val, "2");
	free(val);
	vd_store_close(f->st);
	f->st = NULL;
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	vd_catalog_batch_put(b, "meta/store_format", "3", 1);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_clear(b);
	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), -EPROTO);
	vd_catalog_batch_put(b, "meta/store_format", "2", 1);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	assert_int_equal(vd_store_open(&f->st, f->pack_dir, f->cat, &f->key), 0);

	/* A record that is neither kind, or a frame no smaller than its
	 * chunk, is corrupt. */
	unsigned char bad[41];
	memcpy(bad, "0123456789abcdef", 16);
	memset(bad + 16, 0, sizeof bad - 16);
	bad[24] = 14;       /* stored 14 */
	bad[32] = 0x02;     /* a flag from no format */
	bad[33] = 20;       /* raw 20 */
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	char key[64];
	snprintf(key, sizeof key, "k/%s", ids[0]);
	vd_catalog_batch_put(b, key, bad, sizeof bad);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	bad[32] = 0x01;
	bad[33] = 14;       /* raw = stored */
	vd_catalog_batch_clear(b);
	vd_catalog_batch_put(b, key, bad, sizeof bad);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	vd_catalog_batch_clear(b);
	vd_catalog_batch_put(b, key, bad, 33);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), -EIO);
	vd_catalog_batch_free(b);
	vd_buf_release(&out);
}

static void test_put_zstd(void **state)
{
	struct fixture *f = *state;
	enum { N = 150000 };
	char *text = gen_text(N, 9);
	unsigned char *rnd = gen_random(N, 10);
	size_t bound = ZSTD_compressBound(N);
	char *frame = malloc(bound), *rframe = malloc(bound);
	char id[VD_ID_SIZE], rid[VD_ID_SIZE], wrong[VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	vd_store_writer *w;
	vd_catalog_batch *b;

	size_t fz = ZSTD_compress(frame, bound, text, N, 5);
	size_t rz = ZSTD_compress(rframe, bound, rnd, N, 5);
	assert_false(ZSTD_isError(fz) || ZSTD_isError(rz));
	assert_true(rz > N);
	vd_id_of(id, &f->key, text, N);
	vd_id_of(rid, &f->key, rnd, N);
	vd_id_of(wrong, &f->key, text, N - 1);
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	/* Not what it claims, not a frame, cut short, over the cap. */
	assert_int_equal(vd_store_writer_put_zstd(w, wrong, frame, fz, N), -EIO);
	assert_int_equal(vd_store_writer_put_zstd(w, id, text, 1000, N), -EIO);
	assert_int_equal(vd_store_writer_put_zstd(w, id, frame, fz - 1, N), -EIO);
	assert_int_equal(vd_store_writer_put_zstd(w, id, frame, fz, N - 1), -EIO);
	assert_int_equal(vd_store_writer_put_zstd(w, "nope", frame, fz, N), -EINVAL);
	assert_int_equal(vd_store_writer_stored_bytes(w), 0);
	/* Kept as it came; the random one's frame is larger than its bytes,
	 * so those are stored raw. */
	assert_int_equal(vd_store_writer_put_zstd(w, id, frame, fz, N), 0);
	assert_int_equal(vd_store_writer_put_zstd(w, id, frame, fz, N), 0);
	assert_int_equal(vd_store_writer_put_zstd(w, rid, rframe, rz, N), 0);
	assert_int_equal(vd_store_writer_stored_bytes(w), fz + N);
	assert_int_equal(vd_store_writer_new_bytes(w), 2 * N);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_writer_read(&out, w, id), 0);
	assert_memory_equal(out.data, text, N);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	struct chunk_rec c = chunk_rec(f, id);
	assert_int_equal(c.stored_len, fz);
	assert_int_equal(c.raw_len, N);
	c = chunk_rec(f, rid);
	assert_int_equal(c.stored_len, N);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, id), 0);
	assert_memory_equal(out.data, text, N);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, rid), 0);
	assert_memory_equal(out.data, rnd, N);
	/* read_stored gives back the very frame. */
	bool zstd;
	uint64_t raw_len;
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read_stored(&out, &zstd, &raw_len, f->st, id), 0);
	assert_true(zstd);
	assert_int_equal(raw_len, N);
	assert_int_equal(out.len, fz);
	assert_memory_equal(out.data, frame, fz);
	vd_buf_release(&out);
	free(frame);
	free(rframe);
	free(text);
	free(rnd);
}

static void test_gather(void **state)
{
	struct fixture *f = *state;
	enum { N = 120000 };
	char *text = gen_text(N, 11);
	unsigned char *rnd = gen_random(N, 12);
	const void *data[] = { text, rnd };
	size_t len[] = { N, N };
	char ids[2][VD_ID_SIZE], own[VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	vd_store_writer *w;
	vd_catalog_batch *b;

	put_bufs(f, data, len, 2, ids);
	struct chunk_rec c0 = chunk_rec(f, ids[0]), c1 = chunk_rec(f, ids[1]);
	assert_true(c0.stored_len < N);
	assert_int_equal(c1.stored_len, N);

	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	assert_int_equal(vd_store_writer_put(own, w, "its own chunk\n", 14), 0);
	assert_int_equal(vd_store_writer_gather(w, ids[0]), 1);
	assert_int_equal(vd_store_writer_gather(w, ids[1]), 1);
	/* Not twice, not its own, not what is not stored. */
	assert_int_equal(vd_store_writer_gather(w, ids[0]), 0);
	assert_int_equal(vd_store_writer_gather(w, own), 0);
	assert_int_equal(vd_store_writer_gather(w, "00000000000000000000000000000000"), -ENOENT);
	assert_int_equal(vd_store_writer_gather(w, "bad"), -EINVAL);
	/* Copied as stored: the frame is not made again. */
	assert_int_equal(vd_store_writer_stored_bytes(w), 14 + c0.stored_len + N);
	assert_int_equal(vd_store_writer_new_bytes(w), 14);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_writer_read(&out, w, ids[0]), 0);
	assert_memory_equal(out.data, text, N);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_commit(f->cat, b, true), 0);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	/* Both now lie in the new pack, after its own chunk. */
	struct chunk_rec n0 = chunk_rec(f, ids[0]), n1 = chunk_rec(f, ids[1]),
			 no = chunk_rec(f, own);
	assert_string_equal(n0.pack, no.pack);
	assert_string_equal(n1.pack, no.pack);
	assert_string_not_equal(n0.pack, c0.pack);
	assert_int_equal(n0.off, 14);
	assert_int_equal(n0.stored_len, c0.stored_len);
	assert_int_equal(n0.raw_len, N);
	assert_int_equal(n1.off, 14 + c0.stored_len);
	assert_int_equal(rec_size(f, ids[0]), 41);
	assert_int_equal(rec_size(f, ids[1]), 32);
	reopen_store(f);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[0]), 0);
	assert_memory_equal(out.data, text, N);
	vd_buf_reset(&out);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	assert_memory_equal(out.data, rnd, N);
	/* The old pack still holds the old copies, dead now; a full check of
	 * the index reads the new ones. */
	assert_int_equal(vd_store_check(f->st, &out, ids[0], n0.pack, n0.off, n0.stored_len,
					n0.raw_len), 0);

	/* A corrupt chunk is not gathered. */
	flip_byte(f, n1.pack, n1.off + 10);
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	assert_int_equal(vd_store_writer_gather(w, ids[1]), -EIO);
	vd_store_writer_free(w);
	vd_buf_release(&out);
	free(text);
	free(rnd);
}

static void test_gather_big_pack(void **state)
{
	struct fixture *f = *state;
	enum { N = 5 << 20 };
	unsigned char *rnd = gen_random(N, 13);
	const void *data[] = { rnd, "small\n" };
	size_t len[] = { N, 6 };
	char ids[2][VD_ID_SIZE];
	vd_store_writer *w;
	vd_catalog_batch *b;

	put_bufs(f, data, len, 2, ids);
	struct chunk_rec c = chunk_rec(f, ids[1]);
	assert_int_equal(vd_store_writer_new(&w, f->st), 0);
	/* Both lie in a pack of over 4 MiB: left where they are. */
	assert_int_equal(vd_store_writer_gather(w, ids[0]), 0);
	assert_int_equal(vd_store_writer_gather(w, ids[1]), 0);
	assert_int_equal(vd_store_writer_stored_bytes(w), 0);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	assert_int_equal(vd_store_writer_commit(w, b), 0);
	assert_int_equal(vd_catalog_batch_count(b), 0);
	vd_catalog_batch_free(b);
	vd_store_writer_free(w);
	struct chunk_rec d = chunk_rec(f, ids[1]);
	assert_string_equal(d.pack, c.pack);
	assert_int_equal(d.off, c.off);
	free(rnd);
}

/* Compaction moves frames as they are. */
static void test_compact_compressed(void **state)
{
	struct fixture *f = *state;
	enum { N = 200000 };
	char *a = gen_text(N, 14), *bb = gen_text(N, 15);
	const void *data[] = { a, bb };
	size_t len[] = { N, N };
	char ids[2][VD_ID_SIZE];
	struct vd_buf out = VD_BUF_INIT(1 << 20);
	uint64_t moved;

	put_bufs(f, data, len, 2, ids);
	struct chunk_rec c = chunk_rec(f, ids[1]);
	assert_int_equal(vd_store_pack_compact(&moved, f->st, c.pack, ids + 1, 1), 0);
	assert_int_equal(moved, c.stored_len);
	struct chunk_rec d = chunk_rec(f, ids[1]);
	assert_string_not_equal(d.pack, c.pack);
	assert_int_equal(d.off, 0);
	assert_int_equal(d.stored_len, c.stored_len);
	assert_int_equal(d.raw_len, N);
	assert_int_equal(vd_store_read(&out, f->st, ids[1]), 0);
	assert_memory_equal(out.data, bb, N);
	assert_int_equal(vd_store_has(f->st, ids[0]), 1);
	vd_buf_reset(&out);
	/* The one left behind went with the old pack. */
	assert_true(vd_store_read(&out, f->st, ids[0]) < 0);
	vd_buf_release(&out);
	free(a);
	free(bb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compressed_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incompressible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_level_none, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipe, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_compressed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_zstd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gather, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gather_big_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compact_compressed, setup, teardown),
	};

	vd_log_init("test_store", VD_LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
