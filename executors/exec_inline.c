/*
 * exec_inline.c - a chunk the daemon sent inside the lease (its `data`,
 * base64 of the raw bytes: daemon/engine_inline.c, docs/protocol.md). The
 * executor asks for chunks of up to EX_INLINE_MAX bytes so: for those a
 * GET and a file in the chunk cache cost more than the bytes themselves.
 * Bigger chunks come by GET and are cached, as the locality of later runs
 * over the same data wants.
 */
#include <gnutls/gnutls.h>

#include "exec_int.h"

int ex_inline_chunk(struct vd_buf *out, const json_t *chunk, const struct vd_key *key)
{
	const json_t *data = json_object_get(chunk, "data");
	const char *id = json_string_value(json_object_get(chunk, "id"));
	json_int_t len = json_integer_value(json_object_get(chunk, "len"));
	gnutls_datum_t in, raw = { NULL, 0 };
	char got[VD_ID_SIZE];
	int rc = -EBADMSG;

	if (!data)
		return -ENOENT;
	/* Base64 of at most EX_INLINE_MAX bytes; anything else is not what
	 * was asked for. */
	if (!json_is_string(data) || !id || len <= 0 || (size_t)len > EX_INLINE_MAX ||
	    json_string_length(data) > (EX_INLINE_MAX / 3 + 1) * 4)
		return -EBADMSG;
	in.data = (unsigned char *)json_string_value(data);
	in.size = (unsigned)json_string_length(data);
	if (gnutls_base64_decode2(&in, &raw) < 0)
		goto out;
	if (raw.size != (size_t)len)
		goto out;
	/* Verified as a download is: the bytes must be the chunk. */
	vd_id_of(got, key, raw.data, raw.size);
	if (strcmp(got, id))
		goto out;
	vd_buf_reset(out);
	rc = vd_buf_add(out, raw.data, raw.size);
out:
	gnutls_free(raw.data);
	return rc;
}
