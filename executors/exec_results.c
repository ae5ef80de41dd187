/*
 * exec_results.c - a unit's output, sent to the daemon: once from memory
 * by the worker that ran it, and, when the daemon cannot take it, from the
 * spool (spool.h) by the sender thread until it is taken or the lease is
 * gone (see executor.c's top comment for the threads).
 */
#include "exec_int.h"

/* ---- results and the spool ------------------------------------------- */

/*
 * What the daemon's answer to one result means. Taken: it accepted it
 * (200), does not need it (409: the unit has a result, or its run ended),
 * does not know the lease (404), or refused it as malformed (another 4xx,
 * which no retry mends); each is logged with `what`. Again: an answer
 * that says "later" (5xx, among them 507 for a full state disk and 503;
 * 408, 429), with why in fail. The same for a PUT of one result and for
 * each result of a POST /v1/results (exec_outbox.c).
 */
enum sent result_answer(struct exec *x, struct vd_client *c, const char *lease,
			const char *what, long status, const char *why, char *fail,
			size_t failn)
{
	struct vd_buf w = VD_BUF_INIT(1024);
	enum sent out = SENT_TAKEN;

	vd_buf_adds(&w, why ? why : "");
	if (status == 200) {
		vd_info("lease %s: result accepted (%s)", lease, what);
	} else if (status == 409) {
		vd_info("lease %s: result not needed any more: %s", lease, why);
	} else if (status == 404) {
		vd_warn("lease %s: the daemon does not know this lease (%s); the result "
			"(%s) is dropped", lease, why, what);
	} else if (status == 401) {
		set_fatal(x, "PUT result");
		out = SENT_FATAL;
	} else if (status >= 500 || status == 408 || status == 429) {
		fail_text(fail, failn, 0, status, c, &w);
		out = SENT_AGAIN;
	} else {
		vd_warn("lease %s: result refused (HTTP %ld): %s", lease, status, why);
	}
	vd_buf_release(&w);
	return out;
}

/*
 * One PUT /v1/results/<lease> of body (the metadata line and the output),
 * its answer as result_answer says; also Again when there is no answer.
 * When the daemon said when to try again (Retry-After), that is in
 * *retry_ms.
 */
enum sent put_result(struct exec *x, struct vd_client *c, const char *lease,
			    const char *what, const struct vd_client_piece *body,
			    size_t n, char *fail, size_t failn, int *retry_ms)
{
	struct vd_buf path = VD_BUF_INIT(256), why = VD_BUF_INIT(1024);
	struct vd_buf resp = VD_BUF_INIT(1 << 16);
	enum sent out = SENT_AGAIN;
	long status = 0;
	int rc;

	*retry_ms = 0;
	fail[0] = '\0';
	rc = vd_buf_addf(&path, "/v1/results/%s", lease);
	if (!rc)
		rc = vd_client_do(&status, &resp, c, "PUT", path.data,
				  "application/vnd.vdfs.result", body, n, 0);
	if (rc) {
		fail_text(fail, failn, rc, status, c, NULL);
		goto out;
	}
	if (status != 200) {
		json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
		const char *e = json_string_value(json_object_get(j, "error"));

		vd_buf_addf(&why, "%s", e ? e : vd_buf_cstr(&resp));
		json_decref(j);
	}
	if (c->retry_after_s > 0)
		*retry_ms = c->retry_after_s * 1000L > EX_RETRY_AFTER_MAX_MS
			    ? EX_RETRY_AFTER_MAX_MS : (int)(c->retry_after_s * 1000L);
	out = result_answer(x, c, lease, what, status, vd_buf_cstr(&why), fail, failn);
out:
	vd_buf_release(&resp);
	vd_buf_release(&why);
	vd_buf_release(&path);
	return out;
}

int spool_result(struct exec *x, const char *lease, const char *what,
		 const struct vd_client_piece *body, size_t n, const char *fail)
{
	int rc = vd_spool_put(x->spool, lease, what, body, n);
	size_t count;
	uint64_t bytes;

	if (rc) {
		vd_warn("lease %s: sending the result: %s; it cannot be spooled either "
			"(%s): kept in memory, trying again", lease, fail, strerror(-rc));
		return rc;
	}
	vd_spool_usage(x->spool, &count, &bytes);
	vd_warn("lease %s: sending the result: %s; spooled it to %s (%zu waiting, "
		"%llu bytes) to send when the daemon takes it", lease, fail,
		vd_spool_dir(x->spool), count, (unsigned long long)bytes);
	return 0;
}

/*
 * Send a finished unit's result. The first try goes from memory; if the
 * daemon cannot take it now, the result is spooled to disk for the sender
 * thread and the worker goes on. Spooling it only then, not always, keeps
 * an fsync off every unit's path: what the spool saves is the wait for a
 * daemon that is away, and a result is in flight only for its upload. If
 * the spool cannot be written either (its disk is full), the worker keeps
 * the result and tries again itself, until the daemon takes it or, once
 * the executor is stopping, EX_RESULT_TRIES more times.
 */
void send_result(struct exec *x, struct vd_client *c, struct lease *l,
			const struct vd_run_result *r)
{
	struct vd_client_piece pieces[2];
	struct vd_buf frame = VD_BUF_INIT(r->out.len);
	const char *body = r->out.data ? r->out.data : "";
	size_t body_len = r->out.len;
	json_t *meta;
	char *line = NULL, fail[512], what[160], out_id[VD_ID_SIZE];
	int tries, rc, retry_ms = 0, wait = EX_BACKOFF_MIN_MS;
	enum sent sent;

	meta = json_pack("{s:i, s:i, s:s, s:I, s:o, s:I}", "exit", r->exit,
			 "signal", r->signal, "reason", r->reason,
			 "ms", (json_int_t)r->ms,
			 "stderr", vd_ex_json_text(r->err, r->errlen),
			 "out_bytes", (json_int_t)r->out.len);
	/* The lease in the line too: a POST /v1/results of several needs it
	 * (a PUT names it in its path, and the daemon ignores it here). */
	if (meta && json_object_set_new(meta, "lease", json_string(l->id))) {
		json_decref(meta);
		meta = NULL;
	}
	/* Compressed when the daemon takes it so (it said at registration)
	 * and it saves enough; out_bytes stays the raw length, and out_id
	 * is the ID the daemon checks the frame's bytes against and keeps
	 * the frame under, as it came (docs/protocol.md). */
	if (meta && atomic_load(&x->result_zstd) &&
	    vd_zframe_compress(&frame, body, body_len, VD_ZFRAME_RESULT_LEVEL) == 1) {
		vd_id_of(out_id, &x->key, body, body_len);
		if (json_object_set_new(meta, "encoding", json_string("zstd")) ||
		    json_object_set_new(meta, "body_bytes", json_integer((json_int_t)frame.len)) ||
		    json_object_set_new(meta, "out_id", json_string(out_id))) {
			json_decref(meta);
			meta = NULL;
		}
		body = frame.data;
		body_len = frame.len;
	}
	line = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
	if (!line) {
		vd_err("lease %s: cannot build the result", l->id);
		goto out;
	}
	/* The line ends with the newline that separates it from the output. */
	{
		size_t n = strlen(line);
		char *t = realloc(line, n + 2);

		if (!t) {
			vd_err("lease %s: out of memory", l->id);
			goto out;
		}
		line = t;
		line[n] = '\n';
		line[n + 1] = '\0';
	}
	atomic_fetch_add(&x->result_bytes_out, body_len);
	atomic_fetch_add(&x->result_raw_out, r->out.len);
	if (frame.len)
		snprintf(what, sizeof(what), "%.60s unit %lld/%lld: exit %d, %zu bytes "
			 "(%zu zstd), %lld ms", jstr(l->j, "task"),
			 (long long)jint(l->j, "unit", 0), (long long)jint(l->j, "units", 0),
			 r->exit, r->out.len, frame.len, (long long)r->ms);
	else
		snprintf(what, sizeof(what), "%.60s unit %lld/%lld: exit %d, %zu bytes, "
			 "%lld ms", jstr(l->j, "task"), (long long)jint(l->j, "unit", 0),
			 (long long)jint(l->j, "units", 0), r->exit, r->out.len,
			 (long long)r->ms);
	/* A small result waits in the outbox for the next POST of several
	 * (exec_outbox.c): the worker goes on at once, and the daemon takes
	 * what finished meanwhile in one commit. The outbox's sender keeps
	 * the guarantees below: spooled when the daemon cannot take it. */
	if (x->outbox && !atomic_load(&x->batch_off) && body_len <= EX_BATCH_ITEM_MAX &&
	    ex_outbox_put(x, l->id, what, line, body, body_len) == 0)
		goto out;
	pieces[0] = (struct vd_client_piece){ line, strlen(line) };
	pieces[1] = (struct vd_client_piece){ body, body_len };
	sent = put_result(x, c, l->id, what, pieces, 2, fail, sizeof(fail), &retry_ms);
	if (sent != SENT_AGAIN)
		goto out;
	rc = spool_result(x, l->id, what, pieces, 2, fail);
	if (rc == 0)
		goto out;
	for (tries = 1; sent == SENT_AGAIN; tries++) {
		if (atomic_load(&g_stop) && tries > EX_RESULT_TRIES) {
			vd_err("lease %s: result lost after %d tries: %s", l->id, tries - 1,
			       fail);
			break;
		}
		nap(retry_ms > wait ? retry_ms : wait, NULL);
		wait = backoff_next(wait);
		sent = put_result(x, c, l->id, what, pieces, 2, fail, sizeof(fail),
				  &retry_ms);
		if (sent == SENT_AGAIN)
			vd_warn("lease %s: sending the result: %s; retrying in %.1f s",
				l->id, fail, (retry_ms > wait ? retry_ms : wait) / 1000.0);
	}
out:
	free(line);
	json_decref(meta);
	vd_buf_release(&frame);
}

/*
 * The sender: the spooled results, oldest first, each until the daemon
 * takes it or says it never will (put_result). While the daemon cannot
 * take them it waits, doubling from EX_BACKOFF_MIN_MS up to a heartbeat
 * period (EX_SPOOL_RETRY_MIN_MS..MAX_MS), or as long as a Retry-After
 * said, then tries the next one. Once spool_final is set (the workers are
 * done) it tries each one once more, at once, and leaves; a 401 ends it
 * too. What is left stays on disk for the next start.
 */
void *sender_main(void *arg)
{
	struct exec *x = arg;
	struct vd_client c;
	int wait = EX_BACKOFF_MIN_MS, cap = x->heartbeat_ms;
	int64_t next = 0, said = 0;
	size_t final_fails = 0;
	bool failing = false, was_final = false;

	if (cap < EX_SPOOL_RETRY_MIN_MS)
		cap = EX_SPOOL_RETRY_MIN_MS;
	if (cap > EX_SPOOL_RETRY_MAX_MS)
		cap = EX_SPOOL_RETRY_MAX_MS;
	if (client_open(&c, x, x->own_token, NULL)) {
		vd_err("spool: cannot set up HTTP; spooled results wait for the next start");
		return NULL;
	}
	for (;;) {
		char lease[VD_ID_SIZE], what[160], fail[512];
		struct vd_client_piece piece;
		struct vd_spool_body b;
		bool final = atomic_load(&x->spool_final);
		int retry_ms, delay, rc;
		uint64_t bytes;
		enum sent sent;
		size_t n;

		if (final && !was_final) {
			was_final = true;
			final_fails = 0;
		}
		vd_spool_usage(x->spool, &n, &bytes);
		if (final && (n == 0 || final_fails >= n))
			break;
		if (!final && (n == 0 || vd_mono_ms() < next)) {
			nap(100, NULL);
			continue;
		}
		if (vd_spool_first(x->spool, lease, what, sizeof(what)))
			continue;
		rc = vd_spool_map(&b, x->spool, lease);
		if (rc) {
			/* Gone or unreadable: nothing we could ever send. */
			vd_err("spool: cannot read the result of lease %s (%s): %s; "
			       "dropped", lease, what, strerror(-rc));
			vd_spool_done(x->spool, lease);
			continue;
		}
		piece = (struct vd_client_piece){ b.p, b.n };
		sent = put_result(x, &c, lease, what, &piece, 1, fail, sizeof(fail),
				  &retry_ms);
		vd_spool_unmap(&b);
		if (sent == SENT_FATAL)
			break;
		if (sent == SENT_TAKEN) {
			vd_spool_done(x->spool, lease);
			if (failing)
				vd_info("spool: the daemon takes results again (%zu more to "
					"send)", n - 1);
			failing = false;
			wait = EX_BACKOFF_MIN_MS;
			final_fails = 0;
			continue;
		}
		vd_spool_rotate(x->spool, lease);
		final_fails++;
		delay = retry_ms > wait ? retry_ms : wait;
		if (!failing || vd_mono_ms() - said >= EX_SPOOL_SAY_MS) {
			vd_warn("spool: sending the result of lease %s: %s; %zu result%s "
				"waiting (%llu bytes), trying again in %.1f s", lease, fail,
				n, EX_S(n), (unsigned long long)bytes, delay / 1000.0);
			said = vd_mono_ms();
		} else {
			vd_debug("spool: lease %s: %s; trying again in %.1f s", lease, fail,
				 delay / 1000.0);
		}
		failing = true;
		next = vd_mono_ms() + delay;
		wait = wait * 2 > cap ? cap : wait * 2;
	}
	vd_client_release(&c);
	return NULL;
}
