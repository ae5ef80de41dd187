/*
 * chunkset.c - an exact set of IDs (see chunkset.h).
 */
#include "chunkset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The ID's 128 bits as two words; -EINVAL unless 32 lowercase hex digits. */
static int parse(uint64_t w[2], const char *id)
{
	w[0] = w[1] = 0;
	for (int i = 0; i < VD_ID_LEN; i++) {
		int v = hexval(id[i]);
		if (v < 0)
			return -EINVAL;
		w[i / 16] = w[i / 16] << 4 | (uint64_t)v;
	}
	return id[VD_ID_LEN] ? -EINVAL : 0;
}

static size_t find(const uint64_t *slot, size_t cap, const uint64_t w[2])
{
	size_t mask = cap - 1, i = (size_t)w[0] & mask;
	while ((slot[2 * i] || slot[2 * i + 1]) &&
	       (slot[2 * i] != w[0] || slot[2 * i + 1] != w[1]))
		i = (i + 1) & mask;
	return i;
}

static int grow(struct vd_chunkset *s)
{
	size_t ncap = s->cap ? s->cap * 2 : 1024;
	uint64_t *ns = calloc(ncap, 2 * sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		const uint64_t *w = &s->slot[2 * i];
		if (!w[0] && !w[1])
			continue;
		size_t j = find(ns, ncap, w);
		ns[2 * j] = w[0];
		ns[2 * j + 1] = w[1];
	}
	free(s->slot);
	s->slot = ns;
	s->cap = ncap;
	return 0;
}

int vd_chunkset_add(struct vd_chunkset *s, const char *id)
{
	uint64_t w[2];
	int rc;
	if ((rc = parse(w, id)))
		return rc;
	if (!w[0] && !w[1]) {
		bool was = s->has_zero;
		s->has_zero = true;
		s->n += !was;
		return !was;
	}
	if ((s->n + 1) * 2 > s->cap && (rc = grow(s)))
		return rc;
	size_t i = find(s->slot, s->cap, w);
	if (s->slot[2 * i] || s->slot[2 * i + 1])
		return 0;
	s->slot[2 * i] = w[0];
	s->slot[2 * i + 1] = w[1];
	s->n++;
	return 1;
}

bool vd_chunkset_has(const struct vd_chunkset *s, const char *id)
{
	uint64_t w[2];
	if (parse(w, id))
		return false;
	if (!w[0] && !w[1])
		return s->has_zero;
	if (!s->cap)
		return false;
	size_t i = find(s->slot, s->cap, w);
	return s->slot[2 * i] || s->slot[2 * i + 1];
}

size_t vd_chunkset_count(const struct vd_chunkset *s)
{
	return s->n;
}

void vd_chunkset_clear(struct vd_chunkset *s)
{
	free(s->slot);
	s->slot = NULL;
	s->n = s->cap = 0;
	s->has_zero = false;
}
