/*
 * test_engine_batch.c - several results in one request (docs/protocol.md,
 * "POST /v1/results"; daemon/engine_result.c): a batch of N results is
 * taken with one synced catalog commit (vdfs_catalog_syncs_total) and one
 * pack; in a batch with a duplicate, a bad frame, an unknown lease,
 * another executor's lease and a failed attempt, each gets its own answer
 * and the good ones are taken; replicated units vote across batches, a
 * disagreement leaves the unit to a third executor, and the run's result
 * is what was sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "zframe.h"

/* Units are whole chunks (64 KiB on average): 1 MiB in 128 KiB units
 * makes some 5 to 10 of them; how many the leases say. */
#define NUNITS 32
static size_t nunits;

struct fx {
	char dir[64];
	vd_engine *e;
	struct vd_key key;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-batch-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 5000, .chunk_avg = 65536 };
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

static void reg(struct fx *f, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", who, "level", 1, "slots", 16);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_register(&reply, &why, f->e, req), 0);
	assert_int_equal(vd_key_from_hex(&f->key, json_string_value(json_object_get(reply,
										 "hash_key"))), 0);
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&why);
}

/* Every lease x can have now, in a[] by unit. */
static size_t lease_all(json_t *a[NUNITS], struct fx *f, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", 64, "wait_ms", 0);
	json_t *reply = NULL, *one;
	struct vd_buf why = VD_BUF_INIT(1024);
	size_t i, n = 0;
	int rc = vd_engine_api_lease(&reply, &why, f->e, req);
	json_decref(req);
	vd_buf_release(&why);
	if (rc == -EAGAIN)
		return 0;
	assert_int_equal(rc, 0);
	json_array_foreach(json_object_get(reply, "leases"), i, one) {
		json_int_t u = json_integer_value(json_object_get(one, "unit"));
		assert_true(u >= 0 && u < NUNITS);
		nunits = (size_t)json_integer_value(json_object_get(one, "units"));
		a[u] = json_incref(one);
		n++;
	}
	json_decref(reply);
	return n;
}

static uint64_t metric(struct fx *f, const char *name)
{
	struct vd_buf m = VD_BUF_INIT(1 << 20);
	assert_int_equal(vd_engine_api_metrics(&m, f->e), 0);
	const char *p = strstr(vd_buf_cstr(&m), name);
	size_t len = strlen(name);
	while (p && (p[len] != ' ' || (p > m.data && p[-1] != '\n')))
		p = strstr(p + 1, name);
	assert_non_null(p);
	uint64_t v = strtoull(p + len + 1, NULL, 10);
	vd_buf_release(&m);
	return v;
}

static size_t packs;
static int count_pack(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	const char *base = path + ftw->base;
	size_t n = strlen(base);
	(void)st;
	if (flag == FTW_F && n > 5 && !strcmp(base + n - 5, ".pack") && strncmp(base, "tmp-", 4))
		packs++;
	return 0;
}

static size_t count_packs(struct fx *f)
{
	packs = 0;
	assert_int_equal(nftw(f->dir, count_pack, 16, FTW_PHYS), 0);
	return packs;
}

static void wait_status(struct fx *f, const char *id, const char *word)
{
	struct vd_buf st = VD_BUF_INIT(4096);
	for (int i = 0; i < 500; i++) {
		vd_buf_reset(&st);
		assert_int_equal(vd_engine_render(&st, f->e, "t", id, VD_GEN_STATUS), 0);
		if (!strncmp(vd_buf_cstr(&st), word, strlen(word))) {
			vd_buf_release(&st);
			return;
		}
		usleep(10000);
	}
	fail_msg("status stayed '%s', wanted %s", vd_buf_cstr(&st), word);
}

/* 1 MiB of numbered lines in NUNITS units of 128 KiB. */
static void submit(struct vd_version_info *vi, struct fx *f, const char *config)
{
	struct vd_buf why = VD_BUF_INIT(1024), data = VD_BUF_INIT(1 << 21);
	char code[VD_ID_SIZE], path[] = "/tmp/vd-test-batch-data-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	for (int i = 0; data.len < (1u << 20) - 64; i++)
		assert_int_equal(vd_buf_addf(&data, "%09d the quick brown fox\n", i), 0);
	assert_int_equal(vd_write_all(fd, data.data, data.len), 0);
	assert_int_equal(vd_engine_task_create(f->e, "t"), 0);
	assert_int_equal(vd_engine_config_write(&why, f->e, "t", config, strlen(config)), 0);
	assert_int_equal(vd_engine_function_write(code, f->e, "t", "#!/bin/sh\n", 10), 1);
	assert_int_equal(vd_engine_submit_file(vi, &why, f->e, "t", "d", NULL, fd), 1);
	close(fd);
	vd_buf_release(&why);
	vd_buf_release(&data);
}

/* A unit's output: a few lines of its own, bigger than nothing so that
 * each is a new chunk (the pack count sees them). */
static void output(struct vd_buf *out, size_t unit, const char *salt)
{
	vd_buf_reset(out);
	for (int i = 0; i < 200; i++)
		assert_int_equal(vd_buf_addf(out, "unit %zu line %d %s\n", unit, i, salt), 0);
}

/* One result of the request: raw output, exit code. */
struct one {
	json_t *meta;
	struct vd_buf out, frame;
	char id[VD_ID_SIZE];
};

static void one_raw(struct vd_result_in *in, struct one *o, const char *lease, int exit_code)
{
	o->meta = json_pack("{s:s, s:i, s:i, s:I}", "lease", lease, "exit", exit_code, "ms", 3,
			    "out_bytes", (json_int_t)o->out.len);
	memset(in, 0, sizeof *in);
	in->lease = lease;
	in->meta = o->meta;
	in->out = o->out.data;
	in->n = o->out.len;
	in->outlen = o->out.len;
}

/* The output as a zstd frame, under the ID id_of (its own unless bad). */
static void one_zstd(struct vd_result_in *in, struct one *o, struct fx *f, const char *lease,
		     bool bad)
{
	vd_buf_init(&o->frame, 1 << 20);
	assert_int_equal(vd_zframe_compress(&o->frame, o->out.data, o->out.len, 3), 1);
	vd_id_of(o->id, &f->key, o->out.data, o->out.len);
	if (bad)
		o->id[0] = o->id[0] == 'a' ? 'b' : 'a';
	o->meta = json_pack("{s:s, s:i, s:I, s:s}", "lease", lease, "exit", 0,
			    "out_bytes", (json_int_t)o->out.len, "encoding", "zstd");
	memset(in, 0, sizeof *in);
	in->lease = lease;
	in->meta = o->meta;
	in->out = o->frame.data;
	in->n = o->frame.len;
	in->outlen = o->out.len;
	in->zstd = true;
	in->out_id = o->id;
}

static const char *lid(json_t *l)
{
	return json_string_value(json_object_get(l, "lease"));
}

/* The run's result, read back. */
static void result(struct vd_buf *got, struct fx *f, const char *data_id)
{
	struct vd_file *res = NULL;
	assert_int_equal(vd_engine_result_get(&res, f->e, "t", data_id), 0);
	for (size_t i = 0; i < res->n; i++)
		assert_int_equal(vd_engine_chunk_read(got, f->e, res->ext[i].id), 0);
	vd_file_free(res);
}

/* N results, one request: one synced commit, one pack, all taken. */
static void test_batch_one_sync(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	json_t *l[NUNITS] = { 0 };
	struct vd_result_in in[NUNITS];
	struct one o[NUNITS];
	struct vd_buf want = VD_BUF_INIT(1 << 20), got = VD_BUF_INIT(1 << 20);

	submit(&vi, f, "unit_size = 128K\n");
	reg(f, "ex");
	size_t got_n = lease_all(l, f, "ex");
	assert_int_equal(got_n, nunits);
	assert_true(nunits > 3 && nunits <= NUNITS);
	for (size_t u = 0; u < nunits; u++) {
		vd_buf_init(&o[u].out, 1 << 20);
		output(&o[u].out, u, "one");
		assert_int_equal(vd_buf_add(&want, o[u].out.data, o[u].out.len), 0);
		if (u % 2)
			one_zstd(&in[u], &o[u], f, lid(l[u]), false);
		else
			one_raw(&in[u], &o[u], lid(l[u]), 0);
	}
	uint64_t syncs = metric(f, "vdfs_catalog_syncs_total");
	uint64_t reqs = metric(f, "vdfs_result_requests_total");
	size_t p0 = count_packs(f);
	vd_engine_api_results(f->e, "ex", in, nunits);
	for (size_t u = 0; u < nunits; u++)
		assert_int_equal(in[u].rc, 0);
	assert_int_equal(metric(f, "vdfs_catalog_syncs_total"), syncs + 1);
	assert_int_equal(metric(f, "vdfs_result_requests_total"), reqs + 1);
	assert_int_equal(count_packs(f), p0 + 1);
	assert_int_equal(metric(f, "vdfs_units_done_total"), nunits);
	wait_status(f, vi.data_id, "done");
	result(&got, f, vi.data_id);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	/* Sent again, each is a duplicate now. */
	vd_engine_api_results(f->e, "ex", in, nunits);
	for (size_t u = 0; u < nunits; u++)
		assert_int_equal(in[u].rc, -ESTALE);
	for (size_t u = 0; u < nunits; u++) {
		json_decref(o[u].meta);
		json_decref(l[u]);
		vd_buf_release(&o[u].out);
		if (u % 2)
			vd_buf_release(&o[u].frame);
	}
	vd_buf_release(&want);
	vd_buf_release(&got);
}

/* One request, every kind of answer; the good results are taken. */
static void test_batch_mixed(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	json_t *l[NUNITS] = { 0 }, *lo[NUNITS] = { 0 };
	struct vd_result_in in[7];
	struct one o[7];
	char unknown[VD_ID_SIZE];

	submit(&vi, f, "unit_size = 128K\nretries = 3\n");
	reg(f, "ex");
	reg(f, "other");
	/* ex takes four units, other one. */
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", "ex", "max", 4, "wait_ms", 0);
	json_t *reply = NULL, *one;
	struct vd_buf why = VD_BUF_INIT(1024);
	size_t i;
	assert_int_equal(vd_engine_api_lease(&reply, &why, f->e, req), 0);
	json_array_foreach(json_object_get(reply, "leases"), i, one)
		l[json_integer_value(json_object_get(one, "unit"))] = json_incref(one);
	json_decref(reply);
	json_decref(req);
	vd_buf_release(&why);
	json_t *oreq = json_pack("{s:s, s:i, s:i}", "executor", "other", "max", 1, "wait_ms", 0);
	why = (struct vd_buf)VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_lease(&reply, &why, f->e, oreq), 0);
	json_array_foreach(json_object_get(reply, "leases"), i, one)
		lo[json_integer_value(json_object_get(one, "unit"))] = json_incref(one);
	json_decref(reply);
	json_decref(oreq);
	vd_buf_release(&why);
	size_t theirs = 0;
	while (!lo[theirs])
		theirs++;
	size_t mine[NUNITS], k = 0;
	for (size_t u = 0; u < NUNITS; u++)
		if (l[u])
			mine[k++] = u;
	assert_int_equal(k, 4);
	assert_true(theirs < NUNITS && !l[theirs]);
	for (i = 0; i < 7; i++) {
		vd_buf_init(&o[i].out, 1 << 20);
		vd_buf_init(&o[i].frame, 16);
	}
	memset(unknown, 'a', VD_ID_SIZE - 1);
	unknown[VD_ID_SIZE - 1] = '\0';
	/* 0, 1: good; 2: a frame that is not the output it says; 3: 0 again;
	 * 4: a lease nobody was given; 5: other's lease; 6: a failed attempt. */
	output(&o[0].out, mine[0], "m");
	one_raw(&in[0], &o[0], lid(l[mine[0]]), 0);
	output(&o[1].out, mine[1], "m");
	one_zstd(&in[1], &o[1], f, lid(l[mine[1]]), false);
	output(&o[2].out, mine[2], "m");
	one_zstd(&in[2], &o[2], f, lid(l[mine[2]]), true);
	output(&o[3].out, mine[0], "m");
	one_raw(&in[3], &o[3], lid(l[mine[0]]), 0);
	output(&o[4].out, mine[0], "x");
	one_raw(&in[4], &o[4], unknown, 0);
	output(&o[5].out, theirs, "m");
	one_raw(&in[5], &o[5], lid(lo[theirs]), 0);
	output(&o[6].out, mine[3], "m");
	one_raw(&in[6], &o[6], lid(l[mine[3]]), 1);
	uint64_t syncs = metric(f, "vdfs_catalog_syncs_total");
	uint64_t failed = metric(f, "vdfs_units_failed_total");
	vd_engine_api_results(f->e, "ex", in, 7);
	assert_int_equal(in[0].rc, 0);
	assert_int_equal(in[1].rc, 0);
	assert_int_equal(in[2].rc, -EINVAL);
	assert_non_null(strstr(in[2].why, "zstd output does not decompress"));
	assert_int_equal(in[3].rc, -ESTALE);
	assert_int_equal(in[4].rc, -ENOENT);
	assert_int_equal(in[5].rc, -EPERM);
	assert_int_equal(in[6].rc, 0);
	/* The failure is recorded on its own (as a PUT of it would be), the
	 * two accepted ones together. */
	assert_int_equal(metric(f, "vdfs_catalog_syncs_total"), syncs + 2);
	assert_int_equal(metric(f, "vdfs_units_failed_total"), failed + 1);
	assert_int_equal(metric(f, "vdfs_units_done_total"), 2);
	/* The bad frame kept nothing: the right one is taken after it. */
	json_decref(o[2].meta);
	vd_buf_release(&o[2].frame);
	one_zstd(&in[2], &o[2], f, lid(l[mine[2]]), false);
	vd_engine_api_results(f->e, "ex", &in[2], 1);
	assert_int_equal(in[2].rc, 0);
	assert_int_equal(metric(f, "vdfs_units_done_total"), 3);
	for (i = 0; i < 7; i++) {
		json_decref(o[i].meta);
		vd_buf_release(&o[i].out);
		vd_buf_release(&o[i].frame);
	}
	for (size_t u = 0; u < NUNITS; u++) {
		json_decref(l[u]);
		json_decref(lo[u]);
	}
}

/* replicas = 2 across batches: a vote that disagrees leaves its unit to a
 * third executor; the result is the agreed outputs. */
static void test_batch_replicas(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	const char *who[3] = { "r1", "r2", "r3" };
	struct vd_buf want = VD_BUF_INIT(1 << 20), got = VD_BUF_INIT(1 << 20);
	size_t odd = 1;

	submit(&vi, f, "unit_size = 128K\nreplicas = 2\n");
	for (int x = 0; x < 3; x++)
		reg(f, who[x]);
	for (int x = 0; x < 3; x++) {
		json_t *l[NUNITS] = { 0 };
		struct vd_result_in in[NUNITS];
		struct one o[NUNITS];
		size_t n = lease_all(l, f, who[x]), k = 0;
		/* r1 and r2 get every unit; r3 only the one they disagree on. */
		assert_int_equal(n, x < 2 ? nunits : 1);
		uint64_t syncs = metric(f, "vdfs_catalog_syncs_total");
		for (size_t u = 0; u < NUNITS; u++) {
			if (!l[u])
				continue;
			assert_true(x < 2 || u == odd);
			vd_buf_init(&o[k].out, 1 << 20);
			output(&o[k].out, u, x == 1 && u == odd ? "wrong" : "agreed");
			one_raw(&in[k], &o[k], lid(l[u]), 0);
			k++;
		}
		vd_engine_api_results(f->e, who[x], in, k);
		for (size_t i = 0; i < k; i++)
			assert_int_equal(in[i].rc, 0);
		assert_int_equal(metric(f, "vdfs_catalog_syncs_total"), syncs + 1);
		/* After r1 nothing is done; after r2 all but the odd unit. */
		assert_int_equal(metric(f, "vdfs_units_done_total"),
				 x == 0 ? 0 : x == 1 ? nunits - 1 : nunits);
		for (size_t i = 0; i < k; i++) {
			json_decref(o[i].meta);
			vd_buf_release(&o[i].out);
		}
		for (size_t u = 0; u < NUNITS; u++)
			json_decref(l[u]);
	}
	assert_int_equal(metric(f, "vdfs_replica_mismatches_total"), 1);
	for (size_t u = 0; u < nunits; u++) {
		struct vd_buf b = VD_BUF_INIT(1 << 20);
		output(&b, u, "agreed");
		assert_int_equal(vd_buf_add(&want, b.data, b.len), 0);
		vd_buf_release(&b);
	}
	wait_status(f, vi.data_id, "done");
	result(&got, f, vi.data_id);
	assert_int_equal(got.len, want.len);
	assert_memory_equal(got.data, want.data, want.len);
	vd_buf_release(&want);
	vd_buf_release(&got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batch_one_sync, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_mixed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_replicas, setup, teardown),
	};
	vd_log_init("test_engine_batch", VD_LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
