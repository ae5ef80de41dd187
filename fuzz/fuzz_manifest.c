/*
 * fuzz_manifest.c - a version's manifest, the m/<data-id> catalog record
 * read from disk (vd_engine_manifest_parse, daemon/engine_manifest.c):
 * what every read of a version, the view and gc go through.
 *
 * What it asserts: an accepted manifest has its files sorted by path, no
 * path twice, each file's extents back to back from 0 adding up to its
 * size, and it writes out (vd_engine_manifest_json) as JSON that parses
 * again to the same files.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const struct vd_manifest *m)
{
	for (size_t i = 0; i < m->nfiles; i++) {
		const struct vd_file *f = &m->files[i];
		uint64_t off = 0;

		assert(f->path);
		if (i)
			assert(strcmp(m->files[i - 1].path, f->path) < 0);
		for (size_t j = 0; j < f->n; j++) {
			assert(f->ext[j].off == off);
			assert(vd_id_valid(f->ext[j].id));
			off += f->ext[j].len;
		}
		assert(off == f->size);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vd_manifest *m = NULL, *m2 = NULL;
	json_t *j;
	char *text;

	if (vd_engine_manifest_parse(&m, (const char *)data, size))
		return 0;
	check(m);
	j = vd_engine_manifest_json(m);
	assert(j);
	text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert(text);
	assert(vd_engine_manifest_parse(&m2, text, strlen(text)) == 0);
	check(m2);
	assert(m2->nfiles == m->nfiles && m2->kind == m->kind);
	for (size_t i = 0; i < m->nfiles; i++) {
		assert(!strcmp(m->files[i].path, m2->files[i].path));
		assert(m->files[i].size == m2->files[i].size);
		assert(m->files[i].n == m2->files[i].n);
		assert(vd_file_type(&m->files[i]) == vd_file_type(&m2->files[i]));
	}
	free(text);
	json_decref(j);
	vd_manifest_free(m2);
	vd_manifest_free(m);
	return 0;
}
