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

#include "catalog.h"
#include "store.h"
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uncommitted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_orphans, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
	};

	vd_log_init("test_store", VD_LOG_DEBUG);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
