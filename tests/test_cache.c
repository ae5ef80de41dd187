/*
 * test_cache.c - the executor's chunk cache with compressed entries
 * (executors/cache.c) and the zstd frames it keeps (executors/zframe.c):
 * frames round-trip, slices of them decode exactly, bad frames (cut short,
 * a flipped byte, over the cap, not zstd, too large a window) are refused, incompressible bytes
 * are not compressed; a chunk that came as a frame is kept as <id>.zst,
 * verified by decompressing it, found again after a reopen, listed by its
 * ID, counted by its bytes on disk; a corrupted one is removed and its size
 * forgotten; a frame that is not the chunk is never kept; the raw and the
 * framed name never both stay; a pin on the raw name holds the frame
 * through an eviction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "cache.h"
#include "id.h"
#include "util.h"
#include "zframe.h"

#define MAX ((uint64_t)64 << 20)

struct fixture {
	char dir[64];
	struct vd_key key;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cache.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	for (size_t i = 0; i < sizeof(f->key.secret); i++)
		f->key.secret[i] = (unsigned char)(i * 37 + 11);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

/* n bytes of word-like text (compresses several times over). */
static char *text(size_t n, unsigned seed)
{
	static const char *words[] = { "ba", "kelo", "mipu", "zorga", "ti", "vensa",
				       "lu", "dapo", "rikke", "sona", "fe", "gumbaro" };
	char *p = malloc(n + 1);
	size_t i = 0;

	assert_non_null(p);
	while (i < n) {
		seed = seed * 1103515245u + 12345u;
		const char *w = words[(seed >> 16) % 12];
		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = w[k];
		if (i < n)
			p[i++] = (seed >> 8) % 9 ? ' ' : '\n';
	}
	p[n] = '\0';
	return p;
}

/* n bytes that do not compress. */
static char *noise(size_t n, unsigned long long seed)
{
	char *p = malloc(n);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		p[i] = (char)(seed >> 24);
	}
	return p;
}

struct collect {
	struct vd_buf b;
};

static int collect_sink(void *ctx, const void *p, size_t n)
{
	return vd_buf_add(&((struct collect *)ctx)->b, p, n);
}

static void frame_of(struct vd_buf *out, const char *p, size_t n)
{
	vd_buf_init(out, n);
	assert_int_equal(vd_zframe_compress(out, p, n, 3), 1);
	assert_true(out->len < n);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* ---- frames ------------------------------------------------------------ */

static void test_frame_round_trip(void **state)
{
	struct fixture *f = *state;
	size_t n = 3u << 20;   /* many of the decoder's 128 KiB windows */
	char *raw = text(n, 7), got[VD_ID_SIZE], want[VD_ID_SIZE];
	struct vd_buf z;
	struct collect c = { VD_BUF_INIT(n) };
	uint64_t raw_len = 0;

	frame_of(&z, raw, n);
	/* Text: well under half. */
	assert_true(z.len < n / 2);
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, z.data, z.len, MAX), 0);
	vd_id_of(want, &f->key, raw, n);
	assert_string_equal(got, want);
	assert_int_equal(raw_len, n);
	/* The whole, then slices across window edges, and the empty one. */
	assert_int_equal(vd_zframe_each(&raw_len, z.data, z.len, 0, UINT64_MAX, MAX,
					collect_sink, &c), 0);
	assert_int_equal(c.b.len, n);
	assert_memory_equal(c.b.data, raw, n);
	static const uint64_t cuts[][2] = { { 0, 1 }, { 1, 131071 }, { 131071, 2 },
					    { 131072, 131072 }, { 999999, 1234567 },
					    { (3u << 20) - 5, 5 }, { 17, 0 } };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		vd_buf_reset(&c.b);
		assert_int_equal(vd_zframe_each(NULL, z.data, z.len, cuts[i][0], cuts[i][1],
						MAX, collect_sink, &c), 0);
		assert_int_equal(c.b.len, cuts[i][1]);
		if (cuts[i][1])
			assert_memory_equal(c.b.data, raw + cuts[i][0], cuts[i][1]);
	}
	/* A slice past the end is not there. */
	vd_buf_reset(&c.b);
	assert_int_equal(vd_zframe_each(NULL, z.data, z.len, n - 2, 3, MAX, collect_sink,
					&c), -EBADMSG);
	vd_buf_release(&c.b);
	vd_buf_release(&z);
	free(raw);
}

static void test_frame_bad(void **state)
{
	struct fixture *f = *state;
	size_t n = 1u << 20;
	char *raw = text(n, 9), got[VD_ID_SIZE], want[VD_ID_SIZE];
	struct vd_buf z, two = VD_BUF_INIT(8u << 20);
	uint64_t raw_len;
	int rc;

	frame_of(&z, raw, n);
	vd_id_of(want, &f->key, raw, n);
	/* Cut short anywhere: never the chunk. */
	for (size_t cut = 0; cut < z.len; cut += z.len / 7 + 1)
		assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, z.data, cut, MAX),
				 -EBADMSG);
	/* Over the cap on raw bytes. */
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, z.data, z.len, n - 1),
			 -EBADMSG);
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, z.data, z.len, n), 0);
	/* Not zstd at all. */
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, raw, 4096, MAX), -EBADMSG);
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, "", 0, MAX), -EBADMSG);
	/* A flipped byte in the middle: refused by the decoder, or decoded
	 * to other bytes (the frame has no checksum; the ID is the check). */
	z.data[z.len / 2] ^= 0x5a;
	rc = vd_zframe_id(got, &raw_len, &f->key, z.data, z.len, MAX);
	assert_true(rc == -EBADMSG || (rc == 0 && strcmp(got, want) != 0));
	z.data[z.len / 2] ^= 0x5a;
	/* Two frames back to back are their concatenation; garbage after a
	 * frame is not. */
	assert_int_equal(vd_buf_add(&two, z.data, z.len), 0);
	assert_int_equal(vd_buf_add(&two, z.data, z.len), 0);
	{
		vd_hasher *h;
		char both[VD_ID_SIZE];

		assert_int_equal(vd_hasher_new(&h, &f->key), 0);
		vd_hasher_update(h, raw, n);
		vd_hasher_update(h, raw, n);
		vd_hasher_digest(h, both);
		vd_hasher_free(h);
		assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, two.data, two.len, MAX), 0);
		assert_string_equal(got, both);
		assert_int_equal(raw_len, 2 * n);
	}
	/* A frame that asks for a window over the decoder's limit is
	 * refused; one at the limit, of an unknown size, is fine. */
	for (int wlog = VD_ZFRAME_WINDOW_LOG_MAX; wlog <= VD_ZFRAME_WINDOW_LOG_MAX + 1; wlog++) {
		ZSTD_CCtx *cc = ZSTD_createCCtx();
		struct vd_buf big = VD_BUF_INIT(8u << 20);
		ZSTD_inBuffer in = { raw, n, 0 }, none = { NULL, 0, 0 };
		ZSTD_DCtx *d = ZSTD_createDCtx();
		char *back = malloc(n);

		assert_non_null(cc);
		assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, wlog)));
		assert_int_equal(vd_buf_grow(&big, 4u << 20), 0);
		ZSTD_outBuffer o = { big.data, 4u << 20, 0 };
		/* Fed in two steps, the encoder does not know the size and
		 * keeps the window it was given (whole, it would shrink it). */
		assert_false(ZSTD_isError(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_continue)));
		assert_int_equal(ZSTD_compressStream2(cc, &o, &none, ZSTD_e_end), 0);
		assert_true(ZSTD_getFrameContentSize(big.data, o.pos) == ZSTD_CONTENTSIZE_UNKNOWN);
		/* zstd's own limit takes either. */
		assert_int_equal(ZSTD_decompressDCtx(d, back, n, big.data, o.pos), n);
		assert_memory_equal(back, raw, n);
		rc = vd_zframe_id(got, &raw_len, &f->key, big.data, o.pos, MAX);
		if (wlog > VD_ZFRAME_WINDOW_LOG_MAX) {
			assert_int_equal(rc, -EBADMSG);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(got, want);
		}
		free(back);
		ZSTD_freeDCtx(d);
		ZSTD_freeCCtx(cc);
		vd_buf_release(&big);
	}
	assert_int_equal(vd_buf_add(&two, "garbage!", 8), 0);
	assert_int_equal(vd_zframe_id(got, &raw_len, &f->key, two.data, two.len, MAX),
			 -EBADMSG);
	vd_buf_release(&two);
	vd_buf_release(&z);
	free(raw);
}

static void test_frame_incompressible(void **state)
{
	(void)state;
	size_t n = 1u << 20;
	char *raw = noise(n, 42);
	struct vd_buf z = VD_BUF_INIT(n);

	/* Random bytes: not worth a frame, and nothing is left in out. */
	assert_int_equal(vd_zframe_compress(&z, raw, n, 3), 0);
	assert_int_equal(z.len, 0);
	/* Nor are a few bytes, whatever they are. */
	assert_int_equal(vd_zframe_compress(&z, "aaaaaaaaaaaaaaaaaaaa", 20, 3), 0);
	/* Text with 10 % noise in it still saves more than 3 %. */
	char *t = text(n, 3);
	memcpy(t, raw, n / 10);
	assert_int_equal(vd_zframe_compress(&z, t, n, 3), 1);
	assert_true(z.len <= n / 100 * 97);
	vd_buf_release(&z);
	free(t);
	free(raw);
}

/* ---- the cache ---------------------------------------------------------- */

static void test_cache_framed_entry(void **state)
{
	struct fixture *f = *state;
	size_t n = 1u << 20;
	char *raw = text(n, 11), id[VD_ID_SIZE];
	struct vd_buf z, path = VD_BUF_INIT(4096), zpath = VD_BUF_INIT(4096);
	struct vd_cache *c;
	struct vd_strv ids = { 0 };
	uint64_t raw_len = 0;
	bool zstd = false;

	frame_of(&z, raw, n);
	vd_id_of(id, &f->key, raw, n);
	assert_int_equal(vd_cache_open(&c, f->dir, 0), 0);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX),
			 -ENOENT);
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, MAX), 0);
	assert_int_equal(raw_len, n);
	assert_int_equal(vd_buf_addf(&zpath, "%s/chunks/%s.zst", f->dir, id), 0);
	assert_string_equal(path.data, zpath.data);
	/* Kept as it came: the frame's bytes, counted as such. */
	assert_int_equal(file_size(zpath.data), z.len);
	assert_int_equal(vd_cache_bytes(c), z.len);
	zstd = false;
	raw_len = 0;
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX), 0);
	assert_true(zstd);
	assert_int_equal(raw_len, n);
	assert_string_equal(path.data, zpath.data);
	/* Listed by its ID, for the lease's `cached`. */
	assert_int_equal(vd_cache_chunk_ids(&ids, c, 10), 0);
	assert_int_equal(ids.n, 1);
	assert_string_equal(ids.v[0], id);
	vd_strv_release(&ids);
	vd_cache_close(c);

	/* A reopen counts what is on disk, and finds it again. */
	assert_int_equal(vd_cache_open(&c, f->dir, 0), 0);
	assert_int_equal(vd_cache_bytes(c), z.len);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX), 0);
	assert_true(zstd);

	/* The same chunk fetched raw replaces the frame (never both). */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, raw, n, false,
					    MAX), 0);
	assert_false(exists(zpath.data));
	assert_int_equal(vd_cache_bytes(c), n);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX), 0);
	assert_false(zstd);
	/* And back. */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, MAX), 0);
	assert_int_equal(vd_cache_bytes(c), z.len);
	assert_int_equal(vd_cache_chunk_ids(&ids, c, 10), 0);
	assert_int_equal(ids.n, 1);
	vd_strv_release(&ids);
	vd_cache_close(c);
	vd_buf_release(&path);
	vd_buf_release(&zpath);
	vd_buf_release(&z);
	free(raw);
}

static void test_cache_corrupt_frame(void **state)
{
	struct fixture *f = *state;
	size_t n = 1u << 20;
	char *raw = text(n, 13), *other = text(n, 14), id[VD_ID_SIZE];
	struct vd_buf z, zo, path = VD_BUF_INIT(4096);
	struct vd_cache *c;
	uint64_t raw_len;
	bool zstd;
	int fd;

	frame_of(&z, raw, n);
	frame_of(&zo, other, n);
	vd_id_of(id, &f->key, raw, n);
	assert_int_equal(vd_cache_open(&c, f->dir, 0), 0);
	/* A frame of other bytes is not kept under this ID; nor are raw
	 * bytes claimed to be a frame. */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, zo.data, zo.len,
					    true, MAX), -EBADMSG);
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, raw, n, true,
					    MAX), -EBADMSG);
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, raw, n - 1,
					    false, MAX), -EBADMSG);
	/* Nor a frame of more raw bytes than the cap. */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, n - 1), -EBADMSG);
	assert_int_equal(vd_cache_bytes(c), 0);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX),
			 -ENOENT);

	/* Kept, then altered on disk: a byte in the middle of the frame. */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, MAX), 0);
	fd = open(path.data, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\x5a\xa5\x5a", 3, (off_t)(z.len / 2)), 3);
	close(fd);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX),
			 -ENOENT);
	assert_int_equal(vd_cache_bytes(c), 0);
	/* (find left path empty) */
	assert_int_equal(vd_buf_addf(&path, "%s/chunks/%s.zst", f->dir, id), 0);
	assert_false(exists(path.data));

	/* Cut short (a torn write). */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, MAX), 0);
	assert_int_equal(truncate(path.data, (off_t)(z.len - 10)), 0);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX),
			 -ENOENT);
	/* Fetched again, it is fine. */
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id, z.data, z.len,
					    true, MAX), 0);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id, MAX), 0);
	assert_true(zstd);
	/* The torn file was forgotten by the size it had left, 10 bytes
	 * short of what its put counted: the running total is 10 high until
	 * the next eviction recounts the directories (as for raw files). */
	assert_int_equal(vd_cache_bytes(c), z.len + 10);
	vd_cache_close(c);
	assert_int_equal(vd_cache_open(&c, f->dir, 0), 0);
	assert_int_equal(vd_cache_bytes(c), z.len);
	vd_cache_close(c);
	vd_buf_release(&path);
	vd_buf_release(&z);
	vd_buf_release(&zo);
	free(raw);
	free(other);
}

/* The cap counts frames by their size on disk, and a pin on the raw name
 * holds the frame while older entries go. */
static void test_cache_evict_framed(void **state)
{
	struct fixture *f = *state;
	size_t n = 512u << 10;
	enum { N = 8 };
	char *raw[N], id[N][VD_ID_SIZE];
	struct vd_buf z[N], path = VD_BUF_INIT(4096), pin = VD_BUF_INIT(4096);
	struct vd_cache *c;
	uint64_t raw_len, total = 0, cap;
	bool zstd;

	for (int i = 0; i < N; i++) {
		raw[i] = text(n, 100 + (unsigned)i);
		frame_of(&z[i], raw[i], n);
		vd_id_of(id[i], &f->key, raw[i], n);
		total += z[i].len;
	}
	/* Room for all eight frames, not for their raw bytes: counting
	 * those would have evicted. */
	cap = total + 1024;
	assert_true(cap < (uint64_t)N * n);
	assert_int_equal(vd_cache_open(&c, f->dir, cap), 0);
	/* The first is pinned (by its raw name) and the oldest. */
	assert_int_equal(vd_cache_path(&pin, c, "chunks", id[0]), 0);
	assert_int_equal(vd_cache_pin(c, pin.data), 0);
	for (int i = 0; i < N; i++) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, id[i],
						    z[i].data, z[i].len, true, MAX), 0);
		nanosleep(&ts, NULL);   /* distinct modification times */
	}
	assert_int_equal(vd_cache_bytes(c), total);
	for (int i = 0; i < N; i++)
		assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key,
						     id[i], MAX), 0);
	/* One more, raw: over the cap, down to 90 %: the oldest unpinned go,
	 * the pinned frame stays. */
	char *big = text(n, 999), bid[VD_ID_SIZE];
	vd_id_of(bid, &f->key, big, n);
	assert_int_equal(vd_cache_chunk_put(&path, &raw_len, c, &f->key, bid, big, n, false,
					    MAX), 0);
	assert_true(vd_cache_bytes(c) <= cap / 10 * 9);
	assert_int_equal(vd_cache_chunk_find(&path, &zstd, &raw_len, c, &f->key, id[0], MAX),
			 0);
	assert_true(zstd);
	vd_cache_unpin(c, pin.data);
	vd_cache_close(c);
	for (int i = 0; i < N; i++) {
		vd_buf_release(&z[i]);
		free(raw[i]);
	}
	free(big);
	vd_buf_release(&path);
	vd_buf_release(&pin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_frame_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_bad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_incompressible, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_framed_entry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_corrupt_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_evict_framed, setup, teardown),
	};

	vd_log_init("test_cache", VD_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
