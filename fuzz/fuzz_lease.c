/*
 * fuzz_lease.c - vdfs-executor's reading of the daemon's answer to POST
 * /v1/leases (docs/protocol.md): the JSON body as vd_client_json loads it,
 * its "leases" as take_leases (executors/executor.c) queues them (a valid
 * lease ID, else skipped), and of each lease what exec_lease.c takes
 * before anything is fetched or run: the unit's environment
 * (ex_unit_env) and its limits and sandbox (ex_unit_limits), once with
 * --sandbox bwrap and once without.
 *
 * What it asserts: every environment entry is "K=V" with our five
 * variables first, in order, and no lease parameter overriding one of
 * ours (or PATH, TMPDIR, VDFS_MODE: a name holding '=', "VDFS_MODE=x",
 * did, found by this harness in its first 20 s, seed env_name_equals);
 * the timeout is between 1 s and a
 * week whatever the lease says (the seconds were taken as they came:
 * over 9.2e15 overflowed timeout_s * 1000, UBSan's report on the seed
 * timeout_overflow; with the clamp taken out this harness found
 * 2147483 s, timeout_over_a_week, in 640 runs), the CPU limit
 * behind it, the memory limit within --max-memory, and the sandbox's argv
 * NULL-terminated within its 32 entries. And each chunk's inline `data`
 * (exec_inline.c): taken only when it decodes to exactly `len` bytes that
 * hash to the chunk's ID under the key (all zero here), at most
 * EX_INLINE_MAX of them; else refused, so that the chunk is fetched.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "exec_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_env(const struct vd_strv *env)
{
	static const char *ours[] = { "VDFS_TASK=", "VDFS_DATA_ID=", "VDFS_CODE_ID=",
				      "VDFS_UNIT=", "VDFS_PATH=" };
	static const char *reserved[] = { "VDFS_TASK=", "VDFS_DATA_ID=", "VDFS_CODE_ID=",
					  "VDFS_UNIT=", "VDFS_PATH=", "VDFS_MODE=",
					  "PATH=", "TMPDIR=" };

	assert(env->n >= 5);
	for (size_t i = 0; i < env->n; i++) {
		assert(strchr(env->v[i], '='));
		if (i < 5) {
			assert(!strncmp(env->v[i], ours[i], strlen(ours[i])));
			continue;
		}
		for (size_t k = 0; k < sizeof(reserved) / sizeof(*reserved); k++)
			assert(strncmp(env->v[i], reserved[k], strlen(reserved[k])));
	}
}

static void check_limits(struct exec *x, const struct lease *l)
{
	struct vd_run_spec spec;
	const char *wrap[32];

	for (size_t i = 0; i < 32; i++)
		wrap[i] = "unset";
	ex_unit_limits(&spec, wrap, x, l, "/cache/code/x", "/tmp/vdfs-unit.X");
	assert(spec.timeout_ms >= 1000 && spec.timeout_ms <= 604800LL * 1000);
	assert(spec.cpu_limit_s >= spec.timeout_ms / 1000);
	if (x->max_memory)
		assert(spec.mem_limit && spec.mem_limit <= x->max_memory);
	if (x->bwrap) {
		size_t n = 0;

		assert(spec.wrap == wrap);
		while (n < 32 && wrap[n])
			n++;
		assert(n < 32 && !strcmp(wrap[0], x->bwrap));
	} else {
		assert(!spec.wrap);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct exec x;
	json_t *reply = json_loadb((const char *)data, size, 0, NULL);
	const json_t *arr = json_object_get(reply, "leases");

	memset(&x, 0, sizeof(x));
	x.cores = 8;
	x.selfdir = (char *)"/opt/vdfs/bin";
	x.out_cap = 1 << 20;
	for (size_t i = 0; i < json_array_size(arr); i++) {
		json_t *o = json_array_get(arr, i);
		struct vd_strv env = { 0 };
		struct lease l;

		if (!vd_id_valid(jstr(o, "lease")))
			continue;
		memset(&l, 0, sizeof(l));
		l.j = o;
		const json_t *c;
		size_t k;
		json_array_foreach(json_object_get(o, "chunks"), k, c) {
			struct vd_buf got = VD_BUF_INIT(EX_INLINE_MAX);
			struct vd_key key;
			char id[VD_ID_SIZE];
			int rc;

			memset(&key, 0, sizeof(key));
			rc = ex_inline_chunk(&got, c, &key);
			assert(rc == 0 || rc == -ENOENT || rc == -EBADMSG);
			if (rc == 0) {
				assert(got.len <= EX_INLINE_MAX);
				assert((json_int_t)got.len == jint(c, "len", -1));
				vd_id_of(id, &key, got.data, got.len);
				assert(!strcmp(id, jstr(c, "id")));
			}
			vd_buf_release(&got);
		}
		assert(ex_unit_env(&env, o) == 0);
		check_env(&env);
		vd_strv_release(&env);
		x.bwrap = NULL;
		x.max_memory = 0;
		check_limits(&x, &l);
		x.bwrap = "/usr/bin/bwrap";
		x.max_memory = 1 << 30;
		check_limits(&x, &l);
	}
	json_decref(reply);
	return 0;
}
