/*
 * exec_outbox.c - finished units' results, sent several in one POST
 * /v1/results (docs/protocol.md) by one thread on one kept-alive
 * connection.
 *
 * A worker that finished a unit puts its result here (send_result) and
 * takes the next unit; the outbox thread sends everything waiting in one
 * request. While a request is in flight (the daemon answers only once the
 * results are on its disk) the next batch gathers: a group commit that
 * sizes itself, one result per request when units are slow, hundreds when
 * they take microseconds.
 *
 * The guarantees stay those of a result sent by its worker (exec_results.c,
 * docs/executors.md "The result spool"): a result is forgotten only when
 * the daemon answered 200, 409 or 404 (or refused it as malformed) for
 * it; one it could not take (no answer, 5xx, 503, 507, per result or for
 * the request) goes to the spool for the sender thread; one the spool
 * cannot take either stays here and is tried again, until the daemon
 * takes it or, once the executor is stopping, EX_RESULT_TRIES more times.
 * The leases of the results here are renewed by the heartbeat thread
 * (ex_outbox_ids). At shutdown the workers finish first, then this thread
 * sends or spools what is left (ex_outbox_finish), then the spool's
 * sender has its last try.
 *
 * A daemon without the route (an older one: 404 or 405 for the request)
 * gets one PUT /v1/results/<lease> per result from then on (batch_off);
 * a request refused as a whole for another 4xx (none should be) is sent
 * again as one PUT per result, so that each gets its own answer.
 */
#include "exec_int.h"

struct ob_item {
	struct ob_item *next;
	char lease[VD_ID_SIZE];
	char what[160];
	char *line;                /* the JSON line and its newline */
	size_t line_len;
	char *body;                /* the output as sent (raw or a frame) */
	size_t n;
	int tries;                 /* sends that could neither send nor spool it */
};

struct ex_outbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;       /* an item came, or finish */
	struct ob_item *head, *tail;   /* lock: waiting, oldest first */
	struct ob_item *flight;        /* lock: the batch being sent */
	size_t bytes;                  /* lock: body and line bytes held */
	bool final;                    /* lock: no more puts; drain and return */
};

int ex_outbox_open(struct ex_outbox **out)
{
	struct ex_outbox *o = calloc(1, sizeof(*o));

	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	*out = o;
	return 0;
}

static void item_free(struct ob_item *it)
{
	free(it->line);
	free(it->body);
	free(it);
}

void ex_outbox_close(struct ex_outbox *o)
{
	struct ob_item *it, *next;

	if (!o)
		return;
	/* Only after the thread returned, which leaves nothing here unless
	 * it could not start. */
	for (it = o->head; it; it = next) {
		next = it->next;
		vd_err("lease %s: result lost at exit (%s)", it->lease, it->what);
		item_free(it);
	}
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	free(o);
}

int ex_outbox_put(struct exec *x, const char *lease, const char *what,
		  const char *line, const void *body, size_t n)
{
	struct ex_outbox *o = x->outbox;
	struct ob_item *it;
	size_t line_len = strlen(line);

	pthread_mutex_lock(&o->lock);
	if (o->final || o->bytes + line_len + n > EX_OUTBOX_BYTES) {
		pthread_mutex_unlock(&o->lock);
		return -EAGAIN;
	}
	pthread_mutex_unlock(&o->lock);
	it = calloc(1, sizeof(*it));
	if (!it)
		return -ENOMEM;
	it->line = malloc(line_len + 1);
	it->body = malloc(n ? n : 1);
	if (!it->line || !it->body) {
		item_free(it);
		return -ENOMEM;
	}
	memcpy(it->line, line, line_len + 1);
	it->line_len = line_len;
	if (n)
		memcpy(it->body, body, n);
	it->n = n;
	snprintf(it->lease, sizeof(it->lease), "%s", lease);
	snprintf(it->what, sizeof(it->what), "%s", what);
	pthread_mutex_lock(&o->lock);
	if (o->tail)
		o->tail->next = it;
	else
		o->head = it;
	o->tail = it;
	o->bytes += line_len + n;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	return 0;
}

void ex_outbox_ids(struct vd_strv *ids, struct ex_outbox *o, size_t max)
{
	const struct ob_item *lists[2], *it;

	if (!o)
		return;
	pthread_mutex_lock(&o->lock);
	lists[0] = o->flight;
	lists[1] = o->head;
	for (int k = 0; k < 2; k++)
		for (it = lists[k]; it && ids->n < max; it = it->next)
			if (vd_strv_push(ids, it->lease))
				break;
	pthread_mutex_unlock(&o->lock);
}

void ex_outbox_finish(struct ex_outbox *o)
{
	pthread_mutex_lock(&o->lock);
	o->final = true;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

/* One PUT per result of the batch (an older daemon, or a request refused
 * as a whole), each answer in sent[]. */
static void send_each(struct exec *x, struct vd_client *c, struct ob_item **v, size_t k,
		      enum sent *sent, char (*fail)[512], int *retry_ms)
{
	for (size_t i = 0; i < k; i++) {
		struct vd_client_piece p[2] = { { v[i]->line, v[i]->line_len },
						{ v[i]->body, v[i]->n } };
		int r = 0;

		sent[i] = put_result(x, c, v[i]->lease, v[i]->what, p, 2, fail[i],
				     sizeof(fail[i]), &r);
		if (r > *retry_ms)
			*retry_ms = r;
	}
}

/*
 * One POST /v1/results of the batch v[0..k), each result's fate in
 * sent[] (and why, for those to send again, in fail[]).
 */
static void send_batch(struct exec *x, struct vd_client *c, struct ob_item **v, size_t k,
		       enum sent *sent, char (*fail)[512], int *retry_ms)
{
	struct vd_client_piece *p = calloc(2 * k, sizeof(*p));
	struct vd_buf resp = VD_BUF_INIT(1 << 20), why = VD_BUF_INIT(1024);
	json_t *j = NULL, *list;
	long status = 0;
	size_t i;
	int rc;

	*retry_ms = 0;
	for (i = 0; i < k; i++) {
		sent[i] = SENT_AGAIN;
		snprintf(fail[i], sizeof(fail[i]), "out of memory");
	}
	if (!p)
		goto out;
	for (i = 0; i < k; i++) {
		p[2 * i] = (struct vd_client_piece){ v[i]->line, v[i]->line_len };
		p[2 * i + 1] = (struct vd_client_piece){ v[i]->body, v[i]->n };
	}
	rc = vd_client_do(&status, &resp, c, "POST", "/v1/results",
			  "application/vnd.vdfs.results", p, 2 * k, 0);
	if (c->retry_after_s > 0)
		*retry_ms = c->retry_after_s * 1000L > EX_RETRY_AFTER_MAX_MS
			    ? EX_RETRY_AFTER_MAX_MS : (int)(c->retry_after_s * 1000L);
	if (rc) {
		fail_text(fail[0], sizeof(fail[0]), rc, status, c, NULL);
		for (i = 1; i < k; i++)
			memcpy(fail[i], fail[0], sizeof(fail[0]));
		goto out;
	}
	j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
	if (status != 200) {
		const char *e = json_string_value(json_object_get(j, "error"));

		vd_buf_adds(&why, e ? e : vd_buf_cstr(&resp));
	}
	if (status == 404 || status == 405) {
		vd_info("the daemon takes no POST /v1/results (HTTP %ld): one PUT per "
			"result from now on", status);
		atomic_store(&x->batch_off, true);
		send_each(x, c, v, k, sent, fail, retry_ms);
		goto out;
	}
	if (status == 401) {
		set_fatal(x, "POST results");
		for (i = 0; i < k; i++)
			sent[i] = SENT_FATAL;
		goto out;
	}
	if (status >= 500 || status == 408 || status == 429) {
		fail_text(fail[0], sizeof(fail[0]), 0, status, c, &why);
		for (i = 1; i < k; i++)
			memcpy(fail[i], fail[0], sizeof(fail[0]));
		goto out;
	}
	if (status != 200) {
		vd_warn("POST /v1/results of %zu result%s refused (HTTP %ld: %s); sending "
			"them one by one", k, EX_S(k), status, vd_buf_cstr(&why));
		send_each(x, c, v, k, sent, fail, retry_ms);
		goto out;
	}
	vd_debug("POST /v1/results: %zu result%s in one request answered", k, EX_S(k));
	/* One answer per result, in order. One that is missing, or names
	 * another lease, is sent again: a duplicate is only a 409. */
	list = json_object_get(j, "results");
	for (i = 0; i < k; i++) {
		json_t *o = json_array_get(list, i);
		const char *lease = json_string_value(json_object_get(o, "lease"));
		const char *err = json_string_value(json_object_get(o, "error"));
		json_t *st = json_object_get(o, "status");

		if (!lease || strcmp(lease, v[i]->lease) || !json_is_integer(st)) {
			snprintf(fail[i], sizeof(fail[i]), "the daemon's answer has no status "
				 "for this result");
			continue;
		}
		sent[i] = result_answer(x, c, v[i]->lease, v[i]->what,
					(long)json_integer_value(st), err ? err : "", fail[i],
					sizeof(fail[i]));
	}
out:
	json_decref(j);
	vd_buf_release(&resp);
	vd_buf_release(&why);
	free(p);
}

void *outbox_main(void *arg)
{
	struct exec *x = arg;
	struct ex_outbox *o = x->outbox;
	struct ob_item *v[EX_BATCH_RESULTS];
	enum sent sent[EX_BATCH_RESULTS];
	char (*fail)[512] = calloc(EX_BATCH_RESULTS, sizeof(*fail));
	struct vd_client c;
	int wait = EX_BACKOFF_MIN_MS;
	bool client_ok;

	if (!fail) {
		/* The workers find the outbox closed and send their own. */
		vd_err("outbox: out of memory; each result goes by its own PUT");
		ex_outbox_finish(o);
		return NULL;
	}
	client_ok = client_open(&c, x, x->own_token, NULL) == 0;
	if (!client_ok)
		vd_err("outbox: cannot set up HTTP; results go to the spool");
	for (;;) {
		struct ob_item *keep = NULL, *keep_last = NULL;
		size_t k = 0, bytes = 0, i;
		int retry_ms = 0;
		bool final;

		pthread_mutex_lock(&o->lock);
		while (!o->head && !o->final)
			pthread_cond_wait(&o->cond, &o->lock);
		if (!o->head) {
			pthread_mutex_unlock(&o->lock);
			break;
		}
		/* Everything waiting, up to the request's caps. */
		while (o->head && k < EX_BATCH_RESULTS &&
		       (k == 0 || bytes + o->head->line_len + o->head->n <= EX_BATCH_BYTES)) {
			struct ob_item *it = o->head;

			o->head = it->next;
			if (!o->head)
				o->tail = NULL;
			it->next = NULL;
			if (k)
				v[k - 1]->next = it;
			v[k++] = it;
			bytes += it->line_len + it->n;
		}
		o->flight = v[0];
		final = o->final;
		pthread_mutex_unlock(&o->lock);

		if (!client_ok) {
			for (i = 0; i < k; i++) {
				sent[i] = SENT_AGAIN;
				snprintf(fail[i], sizeof(fail[i]), "no HTTP client");
			}
		} else if (atomic_load(&x->batch_off)) {
			send_each(x, &c, v, k, sent, fail, &retry_ms);
		} else {
			send_batch(x, &c, v, k, sent, fail, &retry_ms);
		}
		/* Off the heartbeat's list before the items change: the spooled
		 * ones the heartbeat finds in the spool. */
		pthread_mutex_lock(&o->lock);
		o->flight = NULL;
		pthread_mutex_unlock(&o->lock);
		for (i = 0; i < k; i++) {
			struct vd_client_piece p[2] = { { v[i]->line, v[i]->line_len },
							{ v[i]->body, v[i]->n } };

			v[i]->next = NULL;
			/* A refused token: spooled, for a next start to send. */
			if (sent[i] == SENT_FATAL)
				snprintf(fail[i], sizeof(fail[i]), "the token is refused");
			if (sent[i] == SENT_TAKEN ||
			    spool_result(x, v[i]->lease, v[i]->what, p, 2, fail[i]) == 0) {
				item_free(v[i]);
				continue;
			}
			if (final && ++v[i]->tries > EX_RESULT_TRIES) {
				vd_err("lease %s: result lost after %d tries: %s", v[i]->lease,
				       v[i]->tries - 1, fail[i]);
				item_free(v[i]);
				continue;
			}
			if (keep_last)
				keep_last->next = v[i];
			else
				keep = v[i];
			keep_last = v[i];
		}
		pthread_mutex_lock(&o->lock);
		o->bytes -= bytes;
		/* What could be neither sent nor spooled goes first next time. */
		if (keep) {
			for (struct ob_item *it = keep; it; it = it->next)
				o->bytes += it->line_len + it->n;
			keep_last->next = o->head;
			if (!o->head)
				o->tail = keep_last;
			o->head = keep;
		}
		pthread_mutex_unlock(&o->lock);
		if (keep) {
			nap(retry_ms > wait ? retry_ms : wait, NULL);
			wait = backoff_next(wait);
		} else {
			wait = EX_BACKOFF_MIN_MS;
		}
	}
	if (client_ok)
		vd_client_release(&c);
	free(fail);
	return NULL;
}
