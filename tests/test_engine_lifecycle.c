/*
 * test_engine_lifecycle.c - deleting, pinning, retention, gc and fsck,
 * on the engine without FUSE or HTTP.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "catalog.h"
#include "engine.h"

struct fx {
	char dir[64];
	vd_engine *e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-life-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
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

/* Lines of text; seed changes every line. */
static char *make_text(size_t lines, unsigned seed, size_t *n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 26);
	for (size_t i = 0; i < lines; i++)
		vd_buf_addf(&b, "%u line %zu of the text, word%zu\n", seed, i, i % 97);
	return vd_buf_detach(&b, n);
}

static void submit(struct vd_version_info *vi, vd_engine *e, const char *task,
		   const char *name, const char *text, size_t n)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	char path[] = "/tmp/vd-test-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, text, n), 0);
	assert_true(vd_engine_submit_file(vi, &why, e, task, name, NULL, fd) >= 0);
	close(fd);
	vd_buf_release(&why);
}

/* The version's content, read back through its manifest. */
static void read_version(struct vd_buf *out, vd_engine *e, const char *id, int want_rc)
{
	struct vd_manifest *m = NULL;
	int rc = 0;
	assert_int_equal(vd_engine_manifest_get(&m, e, id), 0);
	for (size_t i = 0; i < m->nfiles && !rc; i++)
		for (size_t j = 0; j < m->files[i].n && !rc; j++)
			rc = vd_engine_chunk_read(out, e, m->files[i].ext[j].id);
	vd_manifest_free(m);
	assert_int_equal(rc, want_rc);
}

static json_t *gc(vd_engine *e, bool dry)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	json_t *body = json_pack("{s:b}", "dry_run", dry), *r = NULL;
	assert_int_equal(vd_engine_api_gc(&r, &why, e, body), 0);
	json_decref(body);
	vd_buf_release(&why);
	return r;
}

static json_t *fsck(vd_engine *e, bool full, bool repair)
{
	struct vd_buf why = VD_BUF_INIT(1024);
	json_t *body = json_pack("{s:b, s:b}", "full", full, "repair", repair), *r = NULL;
	assert_int_equal(vd_engine_api_fsck(&r, &why, e, body), 0);
	json_decref(body);
	vd_buf_release(&why);
	return r;
}

static int collect(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	(void)val;
	(void)vlen;
	return vd_strv_pushn(ctx, key, klen);
}

static json_int_t num(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void assert_clean(vd_engine *e)
{
	json_t *r = fsck(e, true, false);
	if (num(r, "problems_total")) {
		char *s = json_dumps(r, JSON_INDENT(1));
		fail_msg("fsck found problems: %s", s);
	}
	json_decref(r);
}

static void test_delete_latest_pin(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info a, b, c;
	struct vd_buf why = VD_BUF_INIT(1024);
	char latest[VD_ID_SIZE];
	size_t n;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	char *ta = make_text(2000, 1, &n);
	submit(&a, e, "t", "a.txt", ta, n);
	free(ta);
	char *tb = make_text(2000, 2, &n);
	submit(&b, e, "t", "b.txt", tb, n);
	free(tb);
	char *tc = make_text(2000, 3, &n);
	submit(&c, e, "t", "c.txt", tc, n);
	free(tc);
	uint64_t seq = vd_engine_versions_seq(e);

	/* Deleting latest moves it to the newest remaining version. */
	assert_int_equal(vd_engine_version_latest(latest, e, "t"), 0);
	assert_string_equal(latest, c.data_id);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", c.data_id), 0);
	assert_true(vd_engine_versions_seq(e) > seq);
	assert_int_equal(vd_engine_version_latest(latest, e, "t"), 0);
	assert_string_equal(latest, b.data_id);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", c.data_id), -ENOENT);
	/* Its data name went with it. */
	struct vd_version_info got;
	assert_int_equal(vd_engine_data_get(&got, e, "t", "c.txt"), -ENOENT);

	/* Pinned: refused until unpinned. */
	assert_int_equal(vd_engine_version_pin(e, "t", a.data_id, true), 0);
	assert_int_equal(vd_engine_version_pinned(e, "t", a.data_id), 1);
	vd_buf_reset(&why);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", a.data_id), -EPERM);
	assert_non_null(strstr(vd_buf_cstr(&why), "pinned"));
	assert_int_equal(vd_engine_task_delete(&why, e, "t"), -EPERM);
	assert_int_equal(vd_engine_version_pin(e, "t", a.data_id, false), 0);

	/* A queued run (code, no executor) makes it busy. */
	char code[VD_ID_SIZE];
	assert_int_equal(vd_engine_function_write(code, e, "t", "#!/bin/sh\ncat\n", 14), 1);
	vd_buf_reset(&why);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", b.data_id), -EBUSY);
	assert_non_null(strstr(vd_buf_cstr(&why), "cancel"));
	char d[VD_ID_SIZE];
	assert_int_equal(vd_engine_cancel(d, &why, e, "t", b.data_id), 0);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", b.data_id), 0);

	/* Lineage still knows the deleted ID. */
	json_t *lin = NULL;
	vd_buf_reset(&why);
	assert_int_equal(vd_engine_api_lineage(&lin, &why, e, c.data_id), 0);
	char *dump = json_dumps(lin, 0);
	assert_non_null(strstr(dump, "\"deleted\""));
	free(dump);
	json_decref(lin);

	/* The task, and with it everything; a's run (it was waiting for
	 * code) holds it up until cancelled. */
	assert_int_equal(vd_engine_task_delete(&why, e, "t"), -EBUSY);
	assert_true(vd_engine_task_exists(e, "t"));
	assert_int_equal(vd_engine_cancel(d, &why, e, "t", a.data_id), 0);
	assert_int_equal(vd_engine_task_delete(&why, e, "t"), 0);
	assert_false(vd_engine_task_exists(e, "t"));
	assert_clean(e);
	vd_buf_release(&why);
}

static void test_gc_reclaims(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info v[4];
	struct vd_buf why = VD_BUF_INIT(1024), got = VD_BUF_INIT(1 << 26);
	size_t n;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	char *texts[4];
	for (unsigned i = 0; i < 4; i++) {
		texts[i] = make_text(20000, i, &n);
		submit(&v[i], e, "t", "x.txt", texts[i], n);
	}
	json_t *dry = gc(e, true);
	assert_int_equal(num(dry, "chunks_swept"), 0);
	json_decref(dry);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vd_engine_version_delete(&why, e, "t", v[i].data_id), 0);
	dry = gc(e, true);
	json_int_t would = num(dry, "bytes_reclaimed");
	assert_true(would > 0);
	json_decref(dry);
	json_t *r = gc(e, false);
	assert_true(num(r, "chunks_swept") > 0);
	assert_int_equal(num(r, "bytes_reclaimed"), would);
	/* Three whole packs were garbage. */
	assert_int_equal(num(r, "packs_deleted"), 3);
	json_decref(r);
	read_version(&got, e, v[3].data_id, 0);
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, texts[3], n);
	assert_clean(e);
	r = fsck(e, false, false);
	assert_int_equal(num(json_object_get(r, "orphans"), "chunks"), 0);
	json_decref(r);
	/* A second gc has nothing to do. */
	r = gc(e, false);
	assert_int_equal(num(r, "chunks_swept"), 0);
	json_decref(r);
	for (int i = 0; i < 4; i++)
		free(texts[i]);
	vd_buf_release(&why);
	vd_buf_release(&got);
}

/*
 * The race restic's prune once lost: a submission that reuses chunks of a
 * deleted version, still open (not committed) while gc runs. Those chunks
 * look unreferenced to the mark; gc must keep them anyway.
 */
static void test_gc_spares_open_writer(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info a, b;
	struct vd_buf why = VD_BUF_INIT(1024), got = VD_BUF_INIT(1 << 26);
	vd_ingest *in = NULL;
	size_t n;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	char *text = make_text(20000, 7, &n);
	submit(&a, e, "t", "a.txt", text, n);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", a.data_id), 0);
	/* The same bytes come again, in a stream that stays open over gc. */
	assert_int_equal(vd_engine_ingest_begin(&in, e, "t"), 0);
	assert_int_equal(vd_engine_ingest_write(in, text, n), 0);
	/* Let the stream's thread chunk and look everything up. */
	for (int i = 0; i < 200 && vd_engine_ingest_size(in) < n; i++)
		usleep(10000);
	usleep(200000);
	json_t *r = gc(e, false);
	json_decref(r);
	assert_true(vd_engine_ingest_seal(&b, &why, in, "b.txt") >= 0);
	assert_string_equal(a.data_id, b.data_id);
	read_version(&got, e, b.data_id, 0);
	assert_int_equal(got.len, n);
	assert_memory_equal(got.data, text, n);
	assert_clean(e);
	free(text);
	vd_buf_release(&why);
	vd_buf_release(&got);
}

/* The first pack file in the store, for damaging it. */
static void first_pack(char *out, size_t size, const char *state)
{
	char dir[128];
	snprintf(dir, sizeof dir, "%s/packs", state);
	DIR *d = opendir(dir);
	struct dirent *de;
	assert_non_null(d);
	out[0] = '\0';
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".pack") && strncmp(de->d_name, "tmp-", 4)) {
			snprintf(out, size, "%.128s/%.64s", dir, de->d_name);
			break;
		}
	closedir(d);
	assert_true(out[0] != '\0');
}

static void test_fsck_corrupt(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info a;
	struct vd_buf got = VD_BUF_INIT(1 << 26), st = VD_BUF_INIT(4096);
	char pack[512];
	size_t n;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	char *text = make_text(5000, 1, &n);
	submit(&a, e, "t", "a.txt", text, n);
	assert_clean(e);
	first_pack(pack, sizeof pack, f->dir);
	int fd = open(pack, O_RDWR);
	assert_true(fd >= 0);
	char c;
	assert_int_equal(pread(fd, &c, 1, 100), 1);
	c ^= 0x20;
	assert_int_equal(pwrite(fd, &c, 1, 100), 1);
	close(fd);
	/* Without full, fsck does not read chunks. */
	json_t *r = fsck(e, false, false);
	assert_int_equal(num(r, "problems_total"), 0);
	json_decref(r);
	r = fsck(e, true, false);
	assert_int_equal(num(r, "problems_total"), 1);
	json_t *p = json_array_get(json_object_get(r, "problems"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "kind")), "corrupt_chunk");
	json_t *vs = json_object_get(p, "versions");
	assert_int_equal(json_array_size(vs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(vs, 0), "data_id")),
			    a.data_id);
	json_decref(r);
	read_version(&got, e, a.data_id, -EIO);
	r = fsck(e, true, true);
	assert_int_equal(num(json_object_get(r, "repaired"), "versions_damaged"), 1);
	json_decref(r);
	assert_int_equal(vd_engine_render(&st, e, "t", a.data_id, VD_GEN_STATUS), 0);
	assert_non_null(strstr(vd_buf_cstr(&st), "DAMAGED"));
	vd_buf_reset(&got);
	read_version(&got, e, a.data_id, -ENOENT);
	/* The same bytes submitted again are stored again, and a full check
	 * then finds the version whole. */
	struct vd_version_info b;
	submit(&b, e, "t", "again.txt", text, n);
	vd_buf_reset(&got);
	read_version(&got, e, a.data_id, 0);
	r = fsck(e, true, true);
	assert_int_equal(num(json_object_get(r, "repaired"), "versions_healed"), 1);
	json_decref(r);
	vd_buf_reset(&st);
	assert_int_equal(vd_engine_render(&st, e, "t", a.data_id, VD_GEN_STATUS), 0);
	assert_null(strstr(vd_buf_cstr(&st), "DAMAGED"));
	free(text);
	vd_buf_release(&got);
	vd_buf_release(&st);
}

static void test_retention(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info v[6];
	struct vd_buf why = VD_BUF_INIT(1024);
	struct vd_strv ids = { 0 };
	size_t n;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "t", "keep = 3\n", 9), 0);
	assert_int_equal(vd_engine_config_write(&why, e, "t", "keep = 0\n", 9), -EINVAL);
	assert_int_equal(vd_engine_config_write(&why, e, "t", "keep = 3x\n", 10), -EINVAL);
	for (unsigned i = 0; i < 6; i++) {
		char *t = make_text(500, i, &n);
		submit(&v[i], e, "t", "x.txt", t, n);
		free(t);
		usleep(2000);   /* distinct seal times */
	}
	assert_int_equal(vd_engine_version_pin(e, "t", v[0].data_id, true), 0);
	json_t *r = gc(e, true);
	assert_int_equal(json_array_size(json_object_get(r, "expired")), 2);
	json_decref(r);
	assert_int_equal(vd_engine_version_list(&ids, e, "t"), 0);
	assert_int_equal(ids.n, 6);
	vd_strv_release(&ids);
	r = gc(e, false);
	assert_int_equal(json_array_size(json_object_get(r, "expired")), 2);
	json_decref(r);
	assert_int_equal(vd_engine_version_list(&ids, e, "t"), 0);
	assert_int_equal(ids.n, 4);
	for (int i = 0; i < 6; i++) {
		bool there = false;
		for (size_t j = 0; j < ids.n; j++)
			there |= !strcmp(ids.v[j], v[i].data_id);
		assert_int_equal(there, i == 0 || i >= 3);
	}
	vd_strv_release(&ids);
	assert_int_equal(vd_engine_config_write(&why, e, "t", "keep = 30d\n", 11), 0);
	r = gc(e, false);
	assert_int_equal(json_array_size(json_object_get(r, "expired")), 0);
	json_decref(r);
	assert_clean(e);
	vd_buf_release(&why);
}

/* The time-order index (engine_order.c): newest first, paged, kept by
 * seal and delete, and built at open for a catalog that lacks it. */
static void test_version_order(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info v[5];
	struct vd_buf why = VD_BUF_INIT(1024);
	struct vd_strv ids = { 0 };
	size_t n, total = 0;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	/* "t2" sorts right after "t": its keys must not leak into t's. */
	assert_int_equal(vd_engine_task_create(e, "t2"), 0);
	for (unsigned i = 0; i < 5; i++) {
		char *t = make_text(300, 10 + i, &n);
		submit(&v[i], e, "t", "x.txt", t, n);
		if (i == 2)
			submit(&(struct vd_version_info){ 0 }, e, "t2", "y.txt", t, n);
		free(t);
		usleep(2000);   /* distinct seal times */
	}
	assert_int_equal(vd_engine_version_page(&ids, &total, e, "t", 0, 0), 0);
	assert_int_equal(total, 5);
	assert_int_equal(ids.n, 5);
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(ids.v[i], v[4 - i].data_id);
	vd_strv_release(&ids);
	assert_int_equal(vd_engine_version_page(&ids, &total, e, "t", 1, 2), 0);
	assert_int_equal(total, 5);
	assert_int_equal(ids.n, 2);
	assert_string_equal(ids.v[0], v[3].data_id);
	assert_string_equal(ids.v[1], v[2].data_id);
	vd_strv_release(&ids);
	/* Without a total the scan stops at the page's end, not before it. */
	assert_int_equal(vd_engine_version_page(&ids, NULL, e, "t", 2, 0), 0);
	assert_int_equal(ids.n, 3);
	assert_string_equal(ids.v[0], v[2].data_id);
	vd_strv_release(&ids);
	assert_int_equal(vd_engine_version_page(&ids, NULL, e, "t", 0, 1), 0);
	assert_int_equal(ids.n, 1);
	vd_strv_release(&ids);

	/* The log API pages the same way, and says how many there are. */
	struct vd_log_filter lf = { .offset = 3, .limit = 10 };
	json_t *log = NULL;
	assert_int_equal(vd_engine_api_task_log(&log, &why, e, "t", &lf), 0);
	assert_int_equal(num(log, "total"), 5);
	json_t *rows = json_object_get(log, "versions");
	assert_int_equal(json_array_size(rows), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 0), "data_id")),
			    v[1].data_id);
	json_decref(log);
	/* A text filter (an ID prefix) counts only what matches. */
	char prefix[9];
	memcpy(prefix, v[2].data_id, 8);
	prefix[8] = '\0';
	lf = (struct vd_log_filter){ .text = prefix, .limit = 10 };
	assert_int_equal(vd_engine_api_task_log(&log, &why, e, "t", &lf), 0);
	assert_int_equal(num(log, "total"), 1);
	json_decref(log);

	/* Deleting a version takes its key; deleting latest moves latest to
	 * the next newest. */
	char latest[VD_ID_SIZE];
	assert_int_equal(vd_engine_version_delete(&why, e, "t", v[4].data_id), 0);
	assert_int_equal(vd_engine_version_latest(latest, e, "t"), 0);
	assert_string_equal(latest, v[3].data_id);
	assert_int_equal(vd_engine_version_page(&ids, &total, e, "t", 0, 1), 0);
	assert_int_equal(total, 4);
	assert_string_equal(ids.v[0], v[3].data_id);
	vd_strv_release(&ids);
	assert_clean(e);

	/* A catalog from before the index: take it away, and the next open
	 * builds it again. */
	vd_engine_close(e);
	f->e = NULL;
	char cdir[128];
	snprintf(cdir, sizeof cdir, "%s/catalog", f->dir);
	vd_catalog *cat = NULL;
	vd_catalog_batch *b = NULL;
	struct vd_strv keys = { 0 };
	assert_int_equal(vd_catalog_open(&cat, cdir), 0);
	assert_int_equal(vd_catalog_scan(cat, "vo/", collect, &keys), 0);
	assert_int_equal(keys.n, 5);
	assert_int_equal(vd_catalog_batch_new(&b), 0);
	for (size_t i = 0; i < keys.n; i++)
		vd_catalog_batch_del(b, keys.v[i]);
	vd_catalog_batch_del(b, "meta/version_order");
	assert_int_equal(vd_catalog_commit(cat, b, true), 0);
	vd_catalog_batch_free(b);
	vd_catalog_close(cat);
	vd_strv_release(&keys);
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	e = f->e;
	assert_int_equal(vd_engine_version_page(&ids, &total, e, "t", 0, 0), 0);
	assert_int_equal(total, 4);
	for (size_t i = 0; i < 4; i++)
		assert_string_equal(ids.v[i], v[3 - i].data_id);
	vd_strv_release(&ids);
	assert_int_equal(vd_engine_version_page(&ids, &total, e, "t2", 0, 0), 0);
	assert_int_equal(total, 1);
	vd_strv_release(&ids);
	assert_clean(e);
	vd_buf_release(&why);
}

/* A pack most of whose bytes are dead is rewritten with its live ones. */
static void test_compaction(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info a, b;
	struct vd_buf why = VD_BUF_INIT(1024), got = VD_BUF_INIT(1 << 26);
	size_t na, nb;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	/* a: a big text; b: its first tenth, which shares a's first chunks. */
	char *ta = make_text(40000, 5, &na);
	submit(&a, e, "t", "a.txt", ta, na);
	nb = na / 10;
	while (nb < na && ta[nb - 1] != '\n')
		nb++;
	submit(&b, e, "t", "b.txt", ta, nb);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", a.data_id), 0);
	json_t *r = gc(e, false);
	assert_int_equal(num(r, "packs_compacted"), 1);
	assert_true(num(r, "bytes_moved") > 0);
	assert_true(num(r, "store_bytes_after") < num(r, "store_bytes_before") / 2);
	json_decref(r);
	read_version(&got, e, b.data_id, 0);
	assert_int_equal(got.len, nb);
	assert_memory_equal(got.data, ta, nb);
	assert_clean(e);
	/* And after a restart, too. */
	vd_engine_close(e);
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	vd_buf_reset(&got);
	read_version(&got, f->e, b.data_id, 0);
	assert_memory_equal(got.data, ta, nb);
	assert_clean(f->e);
	free(ta);
	vd_buf_release(&why);
	vd_buf_release(&got);
}

/* A big pack with a few dead chunks is not rewritten: their blocks are
 * punched out, and the live chunks around them stay readable. */
static void test_punch(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct vd_version_info a, b;
	struct vd_buf why = VD_BUF_INIT(1024), got = VD_BUF_INIT(1 << 26);
	size_t na;
	/* Raw chunks: the 64 KiB below are then 64 KiB of pack, whole blocks
	 * of it (compressed they would be a third of that). */
	vd_engine_close(e);
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 300, .chunk_avg = 4096,
				    .compress_level = -1 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	e = f->e;
	assert_int_equal(vd_engine_task_create(e, "t"), 0);
	char *ta = make_text(40000, 8, &na);
	submit(&a, e, "t", "a.txt", ta, na);
	/* b: a with 64 KiB in the middle changed, so that a's chunks there
	 * (whole blocks of its pack) are a's alone. */
	char *tb = malloc(na);
	memcpy(tb, ta, na);
	for (size_t i = na / 2; i < na / 2 + 65536; i++)
		if (tb[i] >= 'a' && tb[i] <= 'z')
			tb[i] = (char)(tb[i] - 32);
	submit(&b, e, "t", "b.txt", tb, na);
	assert_int_equal(vd_engine_version_delete(&why, e, "t", a.data_id), 0);
	json_t *d = gc(e, true);
	json_t *r = gc(e, false);
	assert_int_equal(num(r, "packs_compacted"), 0);
	assert_int_equal(num(r, "packs_punched"), 1);
	assert_true(num(r, "bytes_punched") >= 65536 - 2 * 4096 - 16384);
	assert_int_equal(num(d, "bytes_punched"), num(r, "bytes_punched"));
	assert_int_equal(num(r, "store_bytes_after"),
			 num(r, "store_bytes_before") - num(r, "bytes_reclaimed"));
	json_decref(d);
	json_decref(r);
	read_version(&got, e, b.data_id, 0);
	assert_int_equal(got.len, na);
	assert_memory_equal(got.data, tb, na);
	assert_clean(e);
	/* Nothing more to punch. */
	r = gc(e, false);
	assert_int_equal(num(r, "bytes_reclaimed"), 0);
	json_decref(r);
	free(ta);
	free(tb);
	vd_buf_release(&why);
	vd_buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_delete_latest_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_reclaims, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gc_spares_open_writer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsck_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_punch, setup, teardown),
	};
	vd_log_init("test_engine_lifecycle", VD_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
