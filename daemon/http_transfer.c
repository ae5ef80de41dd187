/*
 * http_transfer.c - chunks and results on the wire, compressed where both
 * ends can (docs/protocol.md, "GET /v1/code/<code-id>, GET
 * /v1/chunks/<chunk-id>" and "PUT /v1/results/<lease>").
 *
 * A chunk the store keeps as a zstd frame goes out as that frame to a
 * client whose Accept-Encoding names zstd, with Content-Encoding: zstd and
 * X-VDFS-Length (its raw length): no decoding or encoding on the daemon's
 * side, and the executor verifies it after decompressing. Any other client
 * (curl, an older executor, the CLI) gets the raw bytes, decoded and
 * verified by the store, as before.
 *
 * A result says in its metadata line whether its output is a frame
 * ("encoding": "zstd", with out_bytes the raw length and body_bytes what
 * follows); the engine checks the frame against out_bytes and out_id
 * before it keeps it as it came.
 *
 * The bytes each way are counted for /metrics, as sent and as they stand
 * for (vdfs_chunk_bytes_sent_total, vdfs_chunk_raw_bytes_sent_total,
 * vdfs_result_bytes_received_total, vdfs_result_raw_bytes_received_total),
 * so that what compression saves on the LAN can be read off the daemon.
 */
#include "http_int.h"

/* The parameters of one Accept-Encoding entry (";q=0.5") say q=0: "not
 * acceptable" (also q=0.0, q=0.000). */
static bool q_is_zero(const char *p, size_t n)
{
	while (n) {
		const char *semi;
		size_t k;

		while (n && (*p == ';' || *p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		semi = memchr(p, ';', n);
		k = semi ? (size_t)(semi - p) : n;
		if (k > 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			bool zero = p[2] == '0';

			for (size_t i = 3; zero && i < k; i++)
				zero = p[i] == '.' || p[i] == '0' || p[i] == ' ' || p[i] == '\t';
			return zero;
		}
		p += k;
		n -= k;
	}
	return false;
}

/* Does Accept-Encoding name zstd, with a q-value above 0? Only a client
 * that names it gets frames: a bare "*" is not taken as a promise that it
 * decodes zstd. */
static bool accepts_zstd(struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_ACCEPT_ENCODING);

	while (h && *h) {
		const char *end = strchr(h, ','), *semi;
		size_t n = end ? (size_t)(end - h) : strlen(h), name;

		while (n && (*h == ' ' || *h == '\t')) {
			h++;
			n--;
		}
		semi = memchr(h, ';', n);
		name = semi ? (size_t)(semi - h) : n;
		while (name && (h[name - 1] == ' ' || h[name - 1] == '\t'))
			name--;
		if (name == 4 && !strncasecmp(h, "zstd", 4) &&
		    !(semi && q_is_zero(semi, (size_t)(h + n - semi))))
			return true;
		h = end ? end + 1 : NULL;
	}
	return false;
}

enum MHD_Result http_chunk(vd_http *h, struct MHD_Connection *c, const char *method,
			   const char *url, const char *id, const char *executor)
{
	struct vd_buf out = VD_BUF_INIT(HTTP_BLOB_MAX), why = VD_BUF_INIT(4096);
	struct MHD_Response *r;
	enum MHD_Result ret;
	uint64_t raw_len = 0;
	bool zstd = false;
	char num[24], *data;
	size_t len;
	int rc;

	if (accepts_zstd(c)) {
		rc = vd_engine_api_chunk_stored(&out, &zstd, &raw_len, &why, h->e, id);
	} else {
		rc = vd_engine_api_chunk(&out, &why, h->e, id);
		raw_len = out.len;
	}
	if (rc) {
		ret = http_reply_engine_error(c, rc, method, url, &why);
		goto out;
	}
	if (executor)
		vd_engine_note_chunk(h->e, executor, id);
	data = vd_buf_detach(&out, &len);
	r = data ? MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE) : NULL;
	if (!r) {
		free(data);
		ret = MHD_NO;
		goto out;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	/* The same URL answers differently by Accept-Encoding. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	if (zstd) {
		snprintf(num, sizeof(num), "%llu", (unsigned long long)raw_len);
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "zstd");
		MHD_add_response_header(r, "X-VDFS-Length", num);
	}
	atomic_fetch_add(&h->chunk_sent, (uint64_t)len);
	atomic_fetch_add(&h->chunk_raw_sent, raw_len);
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
out:
	vd_buf_release(&out);
	vd_buf_release(&why);
	return ret;
}

int http_result_parse(struct http_result *res, struct vd_buf *why, const char *body,
		      size_t n)
{
	const char *p = body ? body : "", *nl = memchr(p, '\n', n);
	json_error_t err;
	json_t *ob, *bb, *enc;
	size_t follow;

	memset(res, 0, sizeof(*res));
	if (!nl) {
		vd_buf_adds(why, "result body needs a JSON line, a newline, then the output");
		return -EINVAL;
	}
	res->meta = json_loadb(p, (size_t)(nl - p), 0, &err);
	if (!res->meta) {
		vd_buf_addf(why, "bad JSON at line %d column %d: %s", err.line, err.column,
			    err.text);
		return -EINVAL;
	}
	if (!json_is_object(res->meta)) {
		vd_buf_adds(why, "body must be a JSON object");
		goto bad;
	}
	res->out = nl + 1;
	follow = n - (size_t)(nl + 1 - p);
	res->n = follow;
	ob = json_object_get(res->meta, "out_bytes");
	enc = json_object_get(res->meta, "encoding");
	if (enc && (!json_is_string(enc) || (strcmp(json_string_value(enc), "zstd") &&
					     strcmp(json_string_value(enc), "identity")))) {
		vd_buf_adds(why, "encoding must be \"zstd\" or \"identity\"");
		goto bad;
	}
	res->zstd = enc && !strcmp(json_string_value(enc), "zstd");
	if (!res->zstd) {
		if (!json_is_integer(ob) || json_integer_value(ob) < 0 ||
		    (uint64_t)json_integer_value(ob) != (uint64_t)follow) {
			vd_buf_addf(why, "out_bytes must be the %zu bytes that follow the JSON line",
				    follow);
			goto bad;
		}
		res->raw_len = follow;
		return 0;
	}
	/* A frame: body_bytes is what follows, out_bytes what it decodes to,
	 * which the result cap bounds as it bounds raw output. */
	bb = json_object_get(res->meta, "body_bytes");
	if (!json_is_integer(bb) || json_integer_value(bb) < 0 ||
	    (uint64_t)json_integer_value(bb) != (uint64_t)follow) {
		vd_buf_addf(why, "body_bytes must be the %zu bytes that follow the JSON line",
			    follow);
		goto bad;
	}
	if (!json_is_integer(ob) || json_integer_value(ob) < 0) {
		vd_buf_adds(why, "out_bytes must be the output's length");
		goto bad;
	}
	if ((uint64_t)json_integer_value(ob) > HTTP_RESULT_MAX) {
		vd_buf_adds(why, "result is larger than the limit");
		json_decref(res->meta);
		res->meta = NULL;
		return -EFBIG;
	}
	res->raw_len = (size_t)json_integer_value(ob);
	res->id = json_string_value(json_object_get(res->meta, "out_id"));
	if (!res->id || !vd_id_valid(res->id)) {
		vd_buf_adds(why, "out_id must be the output's ID (32 lowercase hex digits)");
		goto bad;
	}
	return 0;
bad:
	json_decref(res->meta);
	res->meta = NULL;
	return -EINVAL;
}

int http_result_take(json_t **reply, struct vd_buf *why, vd_http *h, const char *lease,
		     const struct http_result *res)
{
	int rc = res->zstd
		? vd_engine_api_result_zstd(reply, why, h->e, lease, res->meta, res->out,
					    res->n, res->raw_len, res->id)
		: vd_engine_api_result(reply, why, h->e, lease, res->meta, res->out, res->n);

	if (!rc) {
		atomic_fetch_add(&h->result_received, (uint64_t)res->n);
		atomic_fetch_add(&h->result_raw_received, (uint64_t)res->raw_len);
	}
	return rc;
}

int http_transfer_metrics(struct vd_buf *out, vd_http *h)
{
	return vd_buf_addf(out,
		"# HELP vdfs_chunk_bytes_sent_total Chunk bytes sent by GET /v1/chunks, as sent "
		"(zstd frames or raw).\n"
		"# TYPE vdfs_chunk_bytes_sent_total counter\n"
		"vdfs_chunk_bytes_sent_total %llu\n"
		"# HELP vdfs_chunk_raw_bytes_sent_total The raw length of the chunks sent.\n"
		"# TYPE vdfs_chunk_raw_bytes_sent_total counter\n"
		"vdfs_chunk_raw_bytes_sent_total %llu\n"
		"# HELP vdfs_result_bytes_received_total Output bytes of accepted results, as "
		"received (zstd frames or raw).\n"
		"# TYPE vdfs_result_bytes_received_total counter\n"
		"vdfs_result_bytes_received_total %llu\n"
		"# HELP vdfs_result_raw_bytes_received_total The raw length of those outputs.\n"
		"# TYPE vdfs_result_raw_bytes_received_total counter\n"
		"vdfs_result_raw_bytes_received_total %llu\n",
		(unsigned long long)atomic_load(&h->chunk_sent),
		(unsigned long long)atomic_load(&h->chunk_raw_sent),
		(unsigned long long)atomic_load(&h->result_received),
		(unsigned long long)atomic_load(&h->result_raw_received));
}
