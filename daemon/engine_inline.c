/*
 * engine_inline.c - small chunks sent inside the lease that needs them.
 *
 * A unit of a few kilobytes would otherwise cost the executor a second
 * round trip (GET /v1/chunks/<id>) and a file in its chunk cache, which
 * together cost more than the unit's function in persistent mode: half
 * of an executor's CPU in the dispatch bench was ext4 making those files.
 * So when the lease request says it takes them (`inline_max`), each chunk
 * of at most that many bytes (and at most VD_INLINE_MAX) goes in the
 * reply as `data`, base64 of its raw bytes, up to VD_INLINE_TOTAL bytes
 * of chunks per reply; the rest is fetched as before. The executor
 * verifies the bytes against the chunk's ID as it would a download, and
 * does not cache them (docs/protocol.md, "POST /v1/leases").
 *
 * Called after the grant, without the engine lock: the chunks are read
 * from the store like a GET would read them.
 */
#include <errno.h>
#include <gnutls/gnutls.h>

#include "engine_int.h"

void vd_engine_lease_inline(vd_engine *e, json_t *leases, size_t max_each)
{
	struct vd_buf raw = VD_BUF_INIT(VD_INLINE_MAX);
	size_t total = 0, i, j;
	json_t *l, *c;

	if (max_each > VD_INLINE_MAX)
		max_each = VD_INLINE_MAX;
	json_array_foreach(leases, i, l) {
		json_array_foreach(json_object_get(l, "chunks"), j, c) {
			json_int_t len = json_integer_value(json_object_get(c, "len"));
			const char *id = json_string_value(json_object_get(c, "id"));
			gnutls_datum_t in, out = { NULL, 0 };

			if (!id || len <= 0 || (size_t)len > max_each ||
			    total + (size_t)len > VD_INLINE_TOTAL)
				continue;
			vd_buf_reset(&raw);
			/* A chunk that cannot be read now is left to the GET,
			 * which reports why. */
			if (vd_store_read(&raw, e->store, id) || raw.len != (size_t)len)
				continue;
			in.data = (unsigned char *)raw.data;
			in.size = (unsigned)raw.len;
			if (gnutls_base64_encode2(&in, &out) < 0)
				continue;
			if (!json_object_set_new(c, "data", json_stringn((const char *)out.data,
									 out.size)))
				total += (size_t)len;
			gnutls_free(out.data);
		}
	}
	if (total) {
		pthread_mutex_lock(&e->lock);
		e->m_inline_bytes += total;
		pthread_mutex_unlock(&e->lock);
	}
	vd_buf_release(&raw);
}
