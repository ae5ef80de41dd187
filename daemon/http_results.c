/*
 * http_results.c - POST /v1/results: several results in one request
 * (docs/protocol.md, "POST /v1/results").
 *
 * The body is results back to back, each framed as a PUT
 * /v1/results/<lease> body is (a JSON line, a newline, the output raw or
 * as a zstd frame) with the lease ID in the JSON line. The framing is
 * checked first, all of it: a body that cannot be cut into results is 400
 * and nothing of it is taken. Each result is then checked as a PUT would
 * check it (http_result_parse, the engine), and answered on its own, in
 * order, in one 200 reply; the engine takes the accepted ones in one
 * store write and one synced catalog commit (engine_result.c). Only when
 * every result came back "later" (the daemon is stopping, or its disk is
 * full) is the whole request answered so (503, 507).
 */
#include "http_int.h"

/* The JSON line's out_bytes (raw) or body_bytes (a zstd frame) says how
 * many bytes follow it. */
int http_results_frame_next(size_t *len, struct vd_buf *why, const char *p, size_t n,
			    size_t i)
{
	const char *nl = memchr(p, '\n', n);
	json_error_t err;
	json_t *meta, *enc, *cnt;
	long long follow;
	size_t line;
	int rc = -EINVAL;

	if (!nl) {
		vd_buf_addf(why, "result %zu: needs a JSON line, a newline, then the output", i);
		return -EINVAL;
	}
	line = (size_t)(nl - p) + 1;
	meta = json_loadb(p, line - 1, 0, &err);
	if (!json_is_object(meta)) {
		vd_buf_addf(why, "result %zu: the line is not a JSON object%s%s", i,
			    meta ? "" : ": ", meta ? "" : err.text);
		goto out;
	}
	enc = json_object_get(meta, "encoding");
	cnt = json_object_get(meta, json_is_string(enc) &&
				    !strcmp(json_string_value(enc), "zstd")
				    ? "body_bytes" : "out_bytes");
	follow = json_is_integer(cnt) ? json_integer_value(cnt) : -1;
	if (follow < 0 || (unsigned long long)follow > n - line) {
		vd_buf_addf(why, "result %zu: out_bytes (body_bytes for zstd) must be the "
			    "bytes that follow its line, at most the %zu left", i, n - line);
		goto out;
	}
	*len = line + (size_t)follow;
	rc = 0;
out:
	json_decref(meta);
	return rc;
}

int http_results_take(json_t **reply, struct vd_buf *why, vd_http *h, const char *who,
		      const char *body, size_t n)
{
	struct http_result *res = NULL;
	struct vd_result_in *in = NULL;
	struct vd_buf item_why = VD_BUF_INIT(4096);
	json_t *list = NULL;
	size_t count = 0, off = 0, len, i, later = 0, full = 0;
	int rc = 0;

	/* The framing, all of it, before anything is taken. */
	while (off < n) {
		if (count == HTTP_RESULTS_COUNT_MAX) {
			vd_buf_addf(why, "at most %d results in one request", HTTP_RESULTS_COUNT_MAX);
			return -EINVAL;
		}
		if ((rc = http_results_frame_next(&len, why, body + off, n - off, count)))
			return rc;
		off += len;
		count++;
	}
	if (!count) {
		vd_buf_adds(why, "no results in the body");
		return -EINVAL;
	}
	res = calloc(count, sizeof(*res));
	in = calloc(count, sizeof(*in));
	list = json_array();
	if (!res || !in || !list) {
		rc = -ENOMEM;
		goto out;
	}
	for (off = 0, i = 0; i < count; i++, off += len) {
		http_results_frame_next(&len, why, body + off, n - off, i);
		in[i].lease = "";
		rc = http_result_parse(&res[i], &item_why, body + off, len);
		if (rc) {
			/* Answered as a PUT would be, the others taken. */
			in[i].rc = rc;
			snprintf(in[i].why, sizeof(in[i].why), "%s", vd_buf_cstr(&item_why));
			vd_buf_reset(&item_why);
			continue;
		}
		const char *lease = json_string_value(json_object_get(res[i].meta, "lease"));
		in[i].lease = lease ? lease : "";
		in[i].meta = res[i].meta;
		in[i].out = res[i].out;
		in[i].n = res[i].n;
		in[i].outlen = res[i].raw_len;
		in[i].zstd = res[i].zstd;
		in[i].out_id = res[i].id;
	}
	rc = 0;
	/* The engine takes those that parsed; it leaves the others' rc. */
	{
		struct vd_result_in *take = calloc(count, sizeof(*take));
		size_t *idx = calloc(count, sizeof(*idx)), k = 0;

		if (!take || !idx) {
			free(take);
			free(idx);
			rc = -ENOMEM;
			goto out;
		}
		for (i = 0; i < count; i++)
			if (res[i].meta) {
				take[k] = in[i];
				idx[k++] = i;
			}
		if (k)
			vd_engine_api_results(h->e, who, take, k);
		for (i = 0; i < k; i++) {
			in[idx[i]].rc = take[i].rc;
			memcpy(in[idx[i]].why, take[i].why, sizeof(in[idx[i]].why));
		}
		free(take);
		free(idx);
	}
	for (i = 0; i < count; i++) {
		unsigned status = in[i].rc ? http_status_of(in[i].rc) : MHD_HTTP_OK;
		const char *text = in[i].why[0] ? in[i].why
				   : in[i].rc ? strerror(-in[i].rc) : "";
		json_t *o;

		later += in[i].rc == -ESHUTDOWN;
		full += in[i].rc == -ENOSPC || in[i].rc == -EDQUOT;
		if (!in[i].rc) {
			atomic_fetch_add(&h->result_received, (uint64_t)res[i].n);
			atomic_fetch_add(&h->result_raw_received, (uint64_t)res[i].raw_len);
		} else if (status != MHD_HTTP_CONFLICT) {
			vd_warn("http: POST /v1/results: result %zu (lease %.32s) -> %u: %s", i,
				in[i].lease, status, text);
		}
		o = in[i].rc ? json_pack("{s:s, s:i, s:s}", "lease", in[i].lease, "status",
					 (int)status, "error", text)
			     : json_pack("{s:s, s:i}", "lease", in[i].lease, "status", (int)status);
		if (!o || json_array_append_new(list, o)) {
			rc = -ENOMEM;
			goto out;
		}
	}
	/* "Later, all of them": nothing was taken, say it for the request. */
	if (later == count || full == count) {
		rc = in[0].rc;
		snprintf(in[0].why, sizeof(in[0].why), "%s", in[0].why[0] ? in[0].why
			 : later == count ? "the daemon is shutting down"
					  : "the state disk is full");
		vd_buf_adds(why, in[0].why);
		goto out;
	}
	*reply = json_pack("{s:O}", "results", list);
	rc = *reply ? 0 : -ENOMEM;
out:
	for (i = 0; res && i < count; i++)
		json_decref(res[i].meta);
	json_decref(list);
	free(res);
	free(in);
	vd_buf_release(&item_why);
	return rc;
}
