/*
 * fuzz_config.c - a task's config text (PUT /v1/tasks/<task>/config, the
 * mount's config file) parsed into struct vd_config (vd_config_parse,
 * daemon/engine.c).
 *
 * What it asserts: a refused text says why ("line N: ..."); an accepted
 * one gives values inside the documented ranges, NUL-terminated strings,
 * and parses again to the same config (runs_equal and the same output
 * key, the memo key of every result).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "engine_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vd_buf why = VD_BUF_INIT(4096), k1 = VD_BUF_INIT(1 << 16),
		      k2 = VD_BUF_INIT(1 << 16);
	struct vd_config a, b;
	const char *text = (const char *)data;

	if (vd_config_parse(&a, &why, text, size)) {
		assert(why.len > 0);
		goto out;
	}
	assert(a.level >= 1 && a.level <= 5);
	assert(a.timeout_s > 0 && a.retries >= 0 && a.replicas >= 1);
	assert(a.unit_size > 0 && a.keep_n >= 0 && a.keep_ms >= 0);
	assert(memchr(a.encoding, '\0', sizeof(a.encoding)));
	assert(memchr(a.env, '\0', sizeof(a.env)));
	assert(vd_config_parse(&b, &why, text, size) == 0);
	assert(vd_config_runs_equal(&a, &b) && vd_config_runs_equal(&b, &a));
	vd_config_output_key(&k1, &a);
	vd_config_output_key(&k2, &b);
	assert(k1.len == k2.len && !memcmp(vd_buf_cstr(&k1), vd_buf_cstr(&k2), k1.len));
out:
	vd_buf_release(&why);
	vd_buf_release(&k1);
	vd_buf_release(&k2);
	return 0;
}
