/*
 * executor.c - vdfs-executor: register with a vdfsd, pull units over HTTP,
 * run the task's function on each and send the output back.
 *
 * Threads:
 *  - the main thread is the dispatcher: it long-polls POST /v1/leases for
 *    as many units as there are free slots and queues what it gets;
 *  - --slots worker threads take units off the queue, fetch code and
 *    chunks (verified, cached), run the function (runner.c) and PUT the
 *    result;
 *  - one heartbeat thread renews every lease held, queued or running, on
 *    its own schedule, so that no function, download or upload can delay
 *    it; a 409/404 answer cancels the unit (the runner kills it). It also
 *    renews the leases of spooled results, so that they do not run out
 *    while the daemon cannot take them;
 *  - one sender thread sends the results in the spool (spool.h): a worker
 *    tries its result once, and when the daemon cannot take it (down,
 *    restarting, its disk full) writes it to the spool under --cache and
 *    goes on with the next unit; the sender retries each with capped
 *    exponential backoff (or as long as a Retry-After said) until the
 *    daemon takes it or says the lease is gone. Over --spool-size the
 *    dispatcher takes no new leases. A spool left by a process killed
 *    with the same --cache and --name is sent by the next one, which lists
 *    it when it registers so that the daemon keeps those leases.
 * Each thread has its own vd_client (curl handle).
 *
 * Shutdown (SIGTERM/SIGINT): the dispatcher stops taking leases (an
 * outstanding long-poll is abandoned: whatever it might have leased to us
 * expires and goes back to the queue), the workers finish what they hold
 * and report it, the sender tries what is spooled once more, and the
 * executor tells the daemon it leaves (DELETE /v1/executors/<name>, so
 * that it shows as gone at once) unless results stay spooled; then the
 * process exits 0. --idle-exit does the same once nothing was held for
 * that long.
 *
 * Tokens: --token-file holds the enrollment token, used once, to register;
 * the daemon answers with a token for this executor alone, which every
 * later request carries. A 401 after that means it was revoked (or
 * another process registered under our name): the executor exits 1.
 *
 * Each unit runs in a fresh directory (also its TMPDIR), in its own
 * process group, with rlimits and a memory cap (runner.c), optionally
 * inside bubblewrap (--sandbox bwrap: no network, a read-only system);
 * or, for a task with `mode = persistent`, in the worker's persistent
 * process for that task and code, fed the unit as a frame (exec_unit.c,
 * persist.h).
 */
#include "exec_int.h"

atomic_bool g_stop;

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&g_stop, true);
}

/* Sleep ms in short steps, returning early once stop is set. */
void nap(int ms, const atomic_bool *stop)
{
	while (ms > 0 && !(stop && atomic_load(stop))) {
		int step = ms < 100 ? ms : 100;
		struct timespec ts = { 0, (long)step * 1000000L };

		nanosleep(&ts, NULL);
		ms -= step;
	}
}

int backoff_next(int ms)
{
	return ms * 2 > EX_BACKOFF_MAX_MS ? EX_BACKOFF_MAX_MS : ms * 2;
}

/* A 401 means our token is not (or no longer) accepted: nothing we send
 * will be taken. Say so once, cancel everything and make main exit 1. */
void set_fatal(struct exec *x, const char *what)
{
	struct lease *l;

	pthread_mutex_lock(&x->lock);
	if (!x->fatal) {
		if (x->own_token)
			fprintf(stderr, "vdfs-executor: %s: the server no longer accepts "
				"this executor's token (401): it was revoked, or another "
				"executor registered as '%s'\n", what, x->name);
		else
			fprintf(stderr, "vdfs-executor: %s: the server refused the "
				"enrollment token (401); check --token-file\n", what);
		x->fatal = 1;
	}
	for (l = x->active; l; l = l->next_active)
		atomic_store(&l->cancel, true);
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	atomic_store(&g_stop, true);
}

/*
 * Why a request failed, in words, for a log line such as "lease poll: the
 * daemon closed the connection (restarting?); retrying in 2.0 s": e and
 * c->err for a transport failure (vd_client_do), else the daemon's answer
 * (status, and its error text in why, which may be NULL). Written to buf.
 */
const char *fail_text(char *buf, size_t n, int e, long status,
			     const struct vd_client *c, const struct vd_buf *why)
{
	const char *text = why && why->len ? vd_buf_cstr(why) : "";

	if (e == -EBADMSG)
		snprintf(buf, n, "the daemon sent a bad answer: %s", text);
	else if (e == -ENOMEM)
		snprintf(buf, n, "out of memory");
	else if (e)
		snprintf(buf, n, "%s", c->err[0] ? c->err : strerror(-e));
	else
		snprintf(buf, n, "the daemon answered HTTP %ld%s%s", status,
			 *text ? ": " : "", text);
	return buf;
}

/* A client for this executor: its server, token and TLS settings. */
int client_open(struct vd_client *c, const struct exec *x, const char *token,
		       const atomic_bool *abort)
{
	int rc = vd_client_init(c, x->server, token, abort);

	if (!rc) {
		c->cacert = x->cacert;
		c->pin = x->pin;
	}
	return rc;
}

/* ---- threads ---------------------------------------------------------- */

struct worker {
	struct exec *x;
	pthread_t t;
	int started;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct exec *x = w->x;
	struct exec_slot slot = { .key = VD_BUF_INIT(0) };
	struct vd_client c;

	if (client_open(&c, x, x->own_token, NULL)) {
		vd_err("worker: cannot set up HTTP");
		return NULL;
	}
	for (;;) {
		struct lease *l, **pp;

		pthread_mutex_lock(&x->lock);
		while (!x->queue_head && !x->workers_stop) {
			if (!slot.proc) {
				pthread_cond_wait(&x->cond, &x->lock);
				continue;
			}
			/* A persistent function idle for long is stopped. */
			struct timespec ts = vd_deadline_ms(CLOCK_REALTIME, 1000);
			pthread_cond_timedwait(&x->cond, &x->lock, &ts);
			if (!x->queue_head && vd_mono_ms() - slot.last_used_ms > EX_PERSIST_IDLE_MS) {
				pthread_mutex_unlock(&x->lock);
				exec_slot_release(&slot);
				pthread_mutex_lock(&x->lock);
			}
		}
		l = x->queue_head;
		if (!l) {
			pthread_mutex_unlock(&x->lock);
			break;
		}
		x->queue_head = l->next_queued;
		if (!x->queue_head)
			x->queue_tail = NULL;
		pthread_mutex_unlock(&x->lock);

		if (!atomic_load(&l->cancel))
			exec_run_unit(x, &c, l, &slot);

		pthread_mutex_lock(&x->lock);
		for (pp = &x->active; *pp; pp = &(*pp)->next_active)
			if (*pp == l) {
				*pp = l->next_active;
				break;
			}
		x->held--;
		pthread_cond_broadcast(&x->cond);
		pthread_mutex_unlock(&x->lock);
		json_decref(l->j);
		free(l);
	}
	exec_slot_release(&slot);
	vd_client_release(&c);
	return NULL;
}

static void *heartbeat_main(void *arg)
{
	struct exec *x = arg;
	struct vd_client c;
	struct vd_strv ids = { 0 };

	if (client_open(&c, x, x->own_token, NULL)) {
		vd_err("heartbeat: cannot set up HTTP");
		return NULL;
	}
	for (;;) {
		struct lease *l;
		size_t i, nheld;
		bool quit;

		nap(x->heartbeat_ms, &x->heartbeat_stop);
		quit = atomic_load(&x->heartbeat_stop);
		/* Copy the IDs: leases may be freed while we talk to the server. */
		pthread_mutex_lock(&x->lock);
		for (l = x->active; l && !quit; l = l->next_active)
			if (vd_strv_push(&ids, l->id))
				break;
		pthread_mutex_unlock(&x->lock);
		if (quit)
			break;
		/* Then the spooled results' leases: kept alive, the daemon does
		 * not hand their units to anyone else meanwhile. What it answers
		 * for them changes nothing here: the result is sent anyway, and
		 * the daemon decides when it comes. */
		nheld = ids.n;
		vd_spool_ids(&ids, x->spool, EX_SPOOLED_MAX);
		ex_outbox_ids(&ids, x->outbox, ids.n + EX_BATCH_RESULTS * 2);
		for (i = 0; i < ids.n; i++) {
			bool spooled = i >= nheld;
			struct vd_buf path = VD_BUF_INIT(256), why = VD_BUF_INIT(1024);
			json_t *reply = NULL, *empty = json_object();
			long status = 0;
			char fail[512];
			int rc = vd_buf_addf(&path, "/v1/leases/%s/heartbeat", ids.v[i]);

			if (!rc)
				rc = vd_client_json(&status, &reply, &why, &c, "POST",
						    path.data, empty, EX_REQ_TIMEOUT_MS);
			if (rc) {
				vd_log(spooled ? VD_LOG_DEBUG : VD_LOG_WARN, "heartbeat %s: %s",
				       ids.v[i], fail_text(fail, sizeof(fail), rc, status,
							   &c, &why));
			} else if (status == 401) {
				set_fatal(x, "heartbeat");
			} else if (spooled) {
				if (status != 200)
					vd_debug("heartbeat %s (spooled): HTTP %ld: %s", ids.v[i],
						 status, vd_buf_cstr(&why));
			} else if (status == 409 || status == 404) {
				vd_info("heartbeat %s: HTTP %ld (%s): stopping the unit",
					ids.v[i], status, vd_buf_cstr(&why));
				pthread_mutex_lock(&x->lock);
				for (l = x->active; l; l = l->next_active)
					if (strcmp(l->id, ids.v[i]) == 0)
						atomic_store(&l->cancel, true);
				pthread_mutex_unlock(&x->lock);
			} else if (status != 200) {
				vd_warn("heartbeat %s: HTTP %ld: %s", ids.v[i], status,
					vd_buf_cstr(&why));
			}
			json_decref(reply);
			json_decref(empty);
			vd_buf_release(&path);
			vd_buf_release(&why);
			/* No daemon to talk to: the other spooled leases can wait
			 * for the next round (the spool may hold thousands). */
			if (spooled && rc)
				break;
		}
		vd_strv_release(&ids);
	}
	vd_strv_release(&ids);
	vd_client_release(&c);
	return NULL;
}

/* ---- registration and the dispatcher ---------------------------------- */

static json_t *host_facts(void)
{
	struct utsname u;
	char host[256] = "";
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	struct vd_buf os = VD_BUF_INIT(512);
	json_t *j;

	gethostname(host, sizeof(host) - 1);
	if (uname(&u) == 0)
		vd_buf_addf(&os, "%s %s %s", u.sysname, u.release, u.machine);
	j = json_pack("{s:s, s:i, s:I, s:s}", "hostname", host,
		      "cores", (int)sysconf(_SC_NPROCESSORS_ONLN),
		      "mem_mb", (json_int_t)(pages > 0 && psize > 0 ?
					     (long long)pages * psize / (1024 * 1024) : 0),
		      "os", vd_buf_cstr(&os));
	vd_buf_release(&os);
	return j;
}

/* 0 when registered; else the process exit code (1). Retries while the
 * server is unreachable, until stopped. */
static int do_register(struct exec *x, struct vd_client *c)
{
	int wait = EX_BACKOFF_MIN_MS, rc = 1;
	json_t *req, *reply = NULL, *cached = json_array(), *spooled = json_array();
	struct vd_strv ids = { 0 };

	/* The chunks we hold, newest first, so that the daemon sends us
	 * units that read them (at most what it keeps per executor). */
	if (vd_cache_chunk_ids(&ids, x->store, 8192) == 0)
		for (size_t i = 0; cached && i < ids.n; i++)
			json_array_append_new(cached, json_string(ids.v[i]));
	vd_strv_release(&ids);
	/* The results we hold for leases of an earlier process of ours: the
	 * daemon keeps those leases, and puts the rest back at once. */
	if (vd_spool_ids(&ids, x->spool, EX_SPOOLED_MAX) == 0)
		for (size_t i = 0; spooled && i < ids.n; i++)
			json_array_append_new(spooled, json_string(ids.v[i]));
	vd_strv_release(&ids);
	req = json_pack("{s:s, s:i, s:i, s:o, s:o, s:o}", "name", x->name, "level",
			x->level, "slots", x->slots, "host", host_facts(), "cached",
			cached ? cached : json_array(), "spooled",
			spooled ? spooled : json_array());
	if (!req) {
		fprintf(stderr, "vdfs-executor: out of memory\n");
		return 1;
	}
	while (!atomic_load(&g_stop)) {
		struct vd_buf why = VD_BUF_INIT(1024);
		const char *hk;
		char fail[512];
		long status = 0;
		int e = vd_client_json(&status, &reply, &why, c, "POST", "/v1/executors",
				       req, EX_REQ_TIMEOUT_MS);

		if (e == -ECANCELED) {
			vd_buf_release(&why);
			break;
		}
		if (e == -EKEYREJECTED) {
			fprintf(stderr, "vdfs-executor: TLS: the server at %s is not trusted: "
				"%s%s\n", x->server, c->err,
				x->pin ? " (its public key does not match --pin?)" : "");
			vd_buf_release(&why);
			break;
		}
		if (e || status >= 500) {
			vd_warn("register at %s: %s; retrying in %.1f s", x->server,
				fail_text(fail, sizeof(fail), e, status, c, &why),
				wait / 1000.0);
			vd_buf_release(&why);
			nap(wait, &g_stop);
			wait = backoff_next(wait);
			continue;
		}
		if (status == 401) {
			vd_buf_release(&why);
			set_fatal(x, "register");
			break;
		}
		if (status != 200) {
			fprintf(stderr, "vdfs-executor: register refused (HTTP %ld): %s\n",
				status, vd_buf_cstr(&why));
			vd_buf_release(&why);
			break;
		}
		vd_buf_release(&why);
		hk = json_string_value(json_object_get(reply, "hash_key"));
		if (!hk || vd_key_from_hex(&x->key, hk) != 0) {
			fprintf(stderr, "vdfs-executor: the server sent no usable hash_key\n");
			break;
		}
		const char *tok = json_string_value(json_object_get(reply, "token"));
		if (!tok || !*tok || strlen(tok) > 256) {
			fprintf(stderr, "vdfs-executor: the server sent no executor token\n");
			break;
		}
		free(x->own_token);
		if (!(x->own_token = strdup(tok)) || vd_client_set_token(c, tok)) {
			fprintf(stderr, "vdfs-executor: out of memory\n");
			break;
		}
		bool zr = false;
		size_t ei;
		json_t *ev;
		json_array_foreach(json_object_get(reply, "result_encodings"), ei, ev)
			zr = zr || !strcmp(json_string_value(ev) ? json_string_value(ev) : "", "zstd");
		atomic_store(&x->result_zstd, zr);
		x->lease_ms = (int)jint(reply, "lease_ms", 30000);
		x->heartbeat_ms = (int)jint(reply, "heartbeat_ms", x->lease_ms / 3);
		if (x->heartbeat_ms < 100)
			x->heartbeat_ms = 100;
		size_t nsp = json_array_size(json_object_get(req, "spooled"));

		vd_info("registered as %s at %s (level %d, %d slots, heartbeat %d ms, "
			"%zu result%s spooled)", x->name, x->server, x->level, x->slots,
			x->heartbeat_ms, nsp, EX_S(nsp));
		rc = 0;
		break;
	}
	json_decref(reply);
	json_decref(req);
	return rc;
}

/* Queue the leases of a 200 reply. */
static void take_leases(struct exec *x, const json_t *reply)
{
	const json_t *arr = json_object_get(reply, "leases");
	size_t i;

	for (i = 0; i < json_array_size(arr); i++) {
		json_t *o = json_array_get(arr, i);
		const char *id = jstr(o, "lease");
		struct lease *l;

		if (!vd_id_valid(id)) {
			vd_warn("lease reply without a valid lease ID; ignored");
			continue;
		}
		l = calloc(1, sizeof(*l));
		if (!l) {
			vd_err("out of memory; lease %s left to expire", id);
			continue;
		}
		memcpy(l->id, id, VD_ID_SIZE);
		l->j = json_incref(o);
		atomic_init(&l->cancel, false);
		vd_info("lease %s: %s unit %lld of %lld", l->id, jstr(o, "task"),
			(long long)jint(o, "unit", 0), (long long)jint(o, "units", 0));
		pthread_mutex_lock(&x->lock);
		if (x->queue_tail)
			x->queue_tail->next_queued = l;
		else
			x->queue_head = l;
		x->queue_tail = l;
		l->next_active = x->active;
		x->active = l;
		x->held++;
		pthread_cond_broadcast(&x->cond);
		pthread_mutex_unlock(&x->lock);
	}
}

/* The main loop: returns the process exit code. */
static int dispatch(struct exec *x, struct vd_client *c)
{
	int wait = EX_BACKOFF_MIN_MS, rc;
	int64_t busy_ms = vd_mono_ms();   /* when we last held a unit */
	bool spool_full = false;          /* said that the spool is over its cap */

	while (!atomic_load(&g_stop)) {
		struct vd_buf why = VD_BUF_INIT(1024);
		json_t *req, *reply = NULL;
		long status = 0;
		char fail[512];
		int nfree, e, poll_ms = EX_LEASE_WAIT_MS;
		size_t nspooled;
		uint64_t spooled_bytes;

		/* A full spool means the daemon has not taken our results for a
		 * while: computing more would only pile them up. Wait until it
		 * takes them (nothing is dropped to make room). */
		vd_spool_usage(x->spool, &nspooled, &spooled_bytes);
		if (nspooled)
			busy_ms = vd_mono_ms();
		if (vd_spool_over(x->spool)) {
			if (!spool_full)
				vd_warn("spool %s holds %zu result%s, %llu bytes, over its cap "
					"of %llu (--spool-size): taking no new work until the "
					"daemon takes them", vd_spool_dir(x->spool), nspooled,
					EX_S(nspooled), (unsigned long long)spooled_bytes,
					(unsigned long long)x->spool_cap);
			spool_full = true;
			vd_buf_release(&why);
			nap(200, &g_stop);
			continue;
		}
		if (spool_full)
			vd_info("spool %s is under its cap again (%zu result%s); taking "
				"work again", vd_spool_dir(x->spool), nspooled, EX_S(nspooled));
		spool_full = false;

		/* Free slots and queue room: the daemon gives fewer when its
		 * units run long (docs/executors.md). */
		pthread_mutex_lock(&x->lock);
		while (x->held >= x->slots * (1 + EX_QUEUE_PER_SLOT) && !atomic_load(&g_stop)) {
			struct timespec ts = vd_deadline_ms(CLOCK_REALTIME, 200);

			pthread_cond_timedwait(&x->cond, &x->lock, &ts);
		}
		nfree = x->slots * (1 + EX_QUEUE_PER_SLOT) - x->held;
		if (nfree > 256)
			nfree = 256;
		if (x->held)
			busy_ms = vd_mono_ms();
		pthread_mutex_unlock(&x->lock);
		if (atomic_load(&g_stop))
			break;
		if (x->idle_exit_s) {
			int64_t left = busy_ms + x->idle_exit_s * 1000LL - vd_mono_ms();

			if (left <= 0) {
				vd_info("nothing to do for %d s; leaving (--idle-exit)",
					x->idle_exit_s);
				vd_buf_release(&why);
				break;
			}
			if (left < poll_ms)
				poll_ms = (int)left;
		}

		req = json_pack("{s:s, s:i, s:i, s:I}", "executor", x->name, "max", nfree,
				"wait_ms", poll_ms, "inline_max", (json_int_t)x->inline_max);
		e = req ? vd_client_json(&status, &reply, &why, c, "POST", "/v1/leases",
					 req, EX_LEASE_TIMEOUT_MS)
			: -ENOMEM;
		json_decref(req);
		if (e == -ECANCELED) {
			vd_buf_release(&why);
			break;
		}
		if (e == -EKEYREJECTED) {
			fprintf(stderr, "vdfs-executor: TLS: the server at %s is no longer "
				"trusted: %s\n", x->server, c->err);
			vd_buf_release(&why);
			return 1;
		}
		if (e || status >= 500) {
			vd_warn("lease poll: %s; retrying in %.1f s",
				fail_text(fail, sizeof(fail), e, status, c, &why),
				wait / 1000.0);
			vd_buf_release(&why);
			json_decref(reply);
			nap(wait, &g_stop);
			wait = backoff_next(wait);
			continue;
		}
		wait = EX_BACKOFF_MIN_MS;
		if (status == 200) {
			busy_ms = vd_mono_ms();
			take_leases(x, reply);
		} else if (status == 204) {
			bool idle;

			pthread_mutex_lock(&x->lock);
			idle = x->held == 0;
			pthread_mutex_unlock(&x->lock);
			vd_spool_usage(x->spool, &nspooled, NULL);
			if (x->once && idle && nspooled == 0) {
				vd_info("no work and nothing running; leaving (--once)");
				vd_buf_release(&why);
				break;
			}
		} else if (status == 401) {
			set_fatal(x, "lease poll");
		} else if (status == 404) {
			/* The server does not know us (its state was reset):
			 * register again. */
			vd_warn("lease poll: %s; registering again", vd_buf_cstr(&why));
			rc = do_register(x, c);
			if (rc) {
				vd_buf_release(&why);
				json_decref(reply);
				return rc;
			}
		} else {
			vd_warn("lease poll: HTTP %ld: %s", status, vd_buf_cstr(&why));
			nap(wait * 4, &g_stop);
		}
		vd_buf_release(&why);
		json_decref(reply);
	}
	return 0;
}

/* ---- start and end ---------------------------------------------------- */

/* Say what the spool holds from an earlier run, and which other names
 * have spools under this cache (their results go only with their name). */
static void spool_report(struct exec *x)
{
	struct vd_buf root = VD_BUF_INIT(PATH_MAX);
	struct dirent *de;
	uint64_t bytes;
	size_t n;
	DIR *d;

	vd_spool_usage(x->spool, &n, &bytes);
	if (n)
		vd_info("spool %s: %zu result%s (%llu bytes) from an earlier run, to send",
			vd_spool_dir(x->spool), n, EX_S(n), (unsigned long long)bytes);
	if (vd_buf_addf(&root, "%s/spool", x->cache) || !(d = opendir(root.data))) {
		vd_buf_release(&root);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct vd_buf sub = VD_BUF_INIT(PATH_MAX);
		struct dirent *f;
		size_t results = 0;
		DIR *sd;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, x->name))
			continue;
		if (!vd_buf_addf(&sub, "%s/%s", root.data, de->d_name) &&
		    (sd = opendir(sub.data))) {
			while ((f = readdir(sd)) != NULL) {
				size_t len = strlen(f->d_name);

				results += len > 7 && !strcmp(f->d_name + len - 7, ".result");
			}
			closedir(sd);
		}
		if (results)
			vd_info("spool %s holds %zu result%s of the executor named %s: "
				"started with --name %s and this --cache, it sends them",
				vd_buf_cstr(&sub), results, EX_S(results), de->d_name,
				de->d_name);
		vd_buf_release(&sub);
	}
	closedir(d);
	vd_buf_release(&root);
}

/*
 * The last request: tell the daemon that this executor leaves, so that it
 * shows as gone at once rather than a lease time later. Not while results
 * stay in the spool (their leases are still ours, and a restart sends
 * them), nor after the daemon refused our token.
 */
static void say_leaving(struct exec *x)
{
	struct vd_buf path = VD_BUF_INIT(256);
	struct vd_client c;
	char fail[512];
	uint64_t bytes;
	long status = 0;
	int fatal, rc;
	size_t n;

	vd_spool_usage(x->spool, &n, &bytes);
	if (n) {
		vd_warn("%zu result%s (%llu bytes) stay%s in the spool %s: vdfs-executor "
			"--cache %s --name %s sends %s when started again", n, EX_S(n),
			(unsigned long long)bytes, n == 1 ? "s" : "", vd_spool_dir(x->spool),
			x->cache, x->name, n == 1 ? "it" : "them");
		return;
	}
	pthread_mutex_lock(&x->lock);
	fatal = x->fatal;
	pthread_mutex_unlock(&x->lock);
	if (fatal || !x->own_token)
		return;
	/* A client of its own: the main one aborts once g_stop is set. */
	if (client_open(&c, x, x->own_token, NULL))
		return;
	rc = vd_buf_addf(&path, "/v1/executors/%s", x->name);
	if (!rc)
		rc = vd_client_do(&status, NULL, &c, "DELETE", path.data, NULL, NULL, 0,
				  EX_LEAVE_TIMEOUT_MS);
	if (rc == 0 && status == 200)
		vd_info("told the daemon that %s leaves", x->name);
	else
		vd_info("could not tell the daemon that %s leaves (%s); it shows this "
			"executor as gone within a lease time", x->name,
			fail_text(fail, sizeof(fail), rc, status, &c, NULL));
	vd_client_release(&c);
	vd_buf_release(&path);
}

/* ---- main ------------------------------------------------------------- */

/*
 * The options, once: main's getopt table, --help and the vdfs-executor(1)
 * page (`vdfs-executor --man`, run by the build) are all made from these
 * rows (doc.h). A new option is a row here and a case in main.
 */
enum { OPT_MAN = 0x2001 };
static const struct vd_doc_opt opt_doc[] = {
	{ "server", 's', "URL", "the daemon, e.g. https://10.0.0.5:7070 (what vdfsd logs and "
	  "writes to its STATE/url; required)", 0 },
	{ "token-file", 't', "FILE", "a file holding the daemon's enrollment token "
	  "(STATE/token), used once to register; required", 0 },
	{ "level", 'l', "N", "serve functions of level N or lower (1 to 5, default 1)", 0 },
	{ "slots", 'n', "N", "units run at once (1 to 256, default 1)", 0 },
	{ "name", 'N', "NAME", "this executor's name, 1 to 64 of A-Z a-z 0-9 . _ - (default "
	  "hostname-pid); registering under a name in use replaces that executor", 0 },
	{ "cache", 'c', "DIR", "the code and chunk cache (default $XDG_CACHE_HOME or "
	  "~/.cache, then vdfs-executor/<server>)", 0 },
	{ "cache-size", 'C', "SIZE", "a cap on the cache: the least recently used files go "
	  "first (default 10G; suffixes K, M, G)", 0 },
	{ "inline-max", 'L', "SIZE", "chunks of at most SIZE come inside the lease, not by a "
	  "download of their own, and are not cached (default 16K, at most 64K; 0: every "
	  "chunk downloaded and cached)", 0 },
	{ "spool-size", 'B', "SIZE", "a cap on the results kept under the cache directory "
	  "while the daemon cannot take them (default 2G): at the cap no new work is "
	  "taken until it takes them; nothing is dropped", 0 },
	{ "once", 'o', NULL, "exit when there is no work and nothing runs", 0 },
	{ "idle-exit", 'I', "SECONDS", "exit after that long with nothing to run", 0 },
	{ "cacert", 'A', "FILE", "https: trust this CA certificate (PEM) for the server", 0 },
	{ "pin", 'P', "sha256//B64", "https: accept only a server key with this pin (what "
	  "vdfsd logs; a self-signed certificate is then fine)", 0 },
	{ "insecure", 'k', NULL, "allow http:// to an address other than loopback (the token "
	  "and the data then cross the network in the clear)", 0 },
	{ "sandbox", 'S', "MODE", "none (default) or bwrap: each unit in bubblewrap, without "
	  "network, on a read-only system", 0 },
	{ "max-memory", 'M', "SIZE", "the most memory a unit may use, whatever its task's "
	  "memory asks", 0 },
	{ "max-address-space", 'V', "SIZE", "also cap each process's address space "
	  "(RLIMIT_AS; off by default: many programs reserve more than they use)", 0 },
	{ "max-file-size", 'F', "SIZE", "the largest file a unit may write (default 4G)", 0 },
	{ "max-open-files", 'O', "N", "open files per process of a unit (16 to 1048576, "
	  "default 1024)", 0 },
	{ "stdout-cap", 'U', "SIZE", "the most output a unit may print (default 1G)", 0 },
	{ "verbose", 'v', NULL, "log debug lines", 0 },
	{ "help", 'h', NULL, "print this help and exit", VD_DOC_SHORT },
	{ "man", OPT_MAN, NULL, "print the vdfs-executor(1) manual page as roff and exit", 0 },
	{ NULL, 0, NULL, NULL, 0 },
};

static const struct vd_doc_sect doc_sections[] = {
	{ "SIGNALS",
	  "SIGTERM or SIGINT: take no more work, finish the units held and send their "
	  "results (those the daemon cannot take stay in the spool), tell the daemon "
	  "that this executor leaves, then exit 0." },
	{ "FILES",
	  "CACHE/code and CACHE/chunks: the cache (a chunk that came compressed is "
	  "kept as the zstd frame it came as, CACHE/chunks/ID.zst). CACHE/spool/NAME: "
	  "results the daemon could not take yet (it was down, restarting, or its disk "
	  "full), one "
	  "file each, sent again until it takes them; an executor started again with "
	  "the same --cache and --name sends what an earlier one left there. CACHE is "
	  "--cache." },
	{ "EXIT STATUS",
	  "0 after SIGTERM, --once or --idle-exit; 1 when the daemon refused this "
	  "executor (its token revoked, or another process registered under its name) "
	  "or on another fatal error; 2 for a usage error." },
	{ "SEE ALSO", "vdfsd(8), vdfs(1), vdfs-config(5)" },
	{ NULL, NULL },
};

static const struct vd_doc doc = {
	.name = "vdfs-executor",
	.section = 1,
	.summary = "pull units of work from a vdfsd, run them, send the results back",
	.synopsis = "--server URL --token-file FILE [options]",
	.description =
		"vdfs-executor registers with the daemon at --server and then pulls "
		"units of work over HTTP, as many at once as it has slots. Each unit runs "
		"its task's function (any executable) on a piece of the data, in a fresh "
		"directory and process group, under the task's time and memory limits and "
		"the executor's own caps; the output goes back to the daemon. Code and "
		"chunks are cached, and verified, under --cache.\n\n"
		"The token file holds the enrollment token; registering exchanges it for "
		"a token of this executor's own, which every later request carries.",
	.opts = opt_doc,
	.sections = doc_sections,
};

static void usage(FILE *f)
{
	vd_doc_help(f, &doc);
}

int main(int argc, char **argv)
{
	struct vd_doc_getopt g;
	struct exec x;
	struct vd_client c;
	struct worker *workers = NULL;
	struct sigaction sa;
	const char *token_file = NULL, *cache = NULL, *name = NULL;
	struct vd_buf dir = VD_BUF_INIT(PATH_MAX);
	pthread_t hb, sender, outbox;
	bool verbose = false, hb_started = false, client_ok = false, insecure = false;
	bool sender_started = false, outbox_started = false;
	const char *sandbox = "none";
	uint64_t sz;
	int opt, i, rc, code = 1;

	memset(&x, 0, sizeof(x));
	x.level = 1;
	x.slots = 1;
	x.cache_cap = 10ull << 30;
	x.inline_max = EX_INLINE_DEFAULT;
	x.spool_cap = EX_SPOOL_CAP;
	x.fsize_limit = 4ull << 30;
	x.nofile_limit = 1024;
	x.out_cap = EX_OUT_CAP;
	x.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (x.cores < 1)
		x.cores = 1;
	vd_doc_getopt_init(&g, false);
	if (vd_doc_getopt_add(&g, opt_doc))
		return 1;
	opterr = 0;   /* a bad option is one line of ours, below */
	while ((opt = getopt_long(argc, argv, g.shorts, g.longs, NULL)) != -1) {
		switch (opt) {
		case 's':
			x.server = optarg;
			break;
		case 't':
			token_file = optarg;
			break;
		case 'l':
			if (vd_ex_parse_int(&x.level, optarg, 1, 5)) {
				fprintf(stderr, "vdfs-executor: --level wants 1..5\n");
				return 2;
			}
			break;
		case 'n':
			if (vd_ex_parse_int(&x.slots, optarg, 1, 256)) {
				fprintf(stderr, "vdfs-executor: --slots wants 1..256\n");
				return 2;
			}
			break;
		case 'N':
			name = optarg;
			break;
		case 'c':
			cache = optarg;
			break;
		case 'o':
			x.once = true;
			break;
		case 'C':
		case 'M':
		case 'V':
		case 'F':
		case 'U':
		case 'B':
			if (vd_ex_parse_size(&sz, optarg) || sz < 4096) {
				fprintf(stderr, "vdfs-executor: --%s wants a size like 512M\n",
					opt == 'C' ? "cache-size" : opt == 'M' ? "max-memory"
					: opt == 'V' ? "max-address-space"
					: opt == 'F' ? "max-file-size"
					: opt == 'B' ? "spool-size" : "stdout-cap");
				return 2;
			}
			if (opt == 'B')
				x.spool_cap = sz;
			else if (opt == 'V')
				x.as_limit = sz;
			else if (opt == 'C')
				x.cache_cap = sz;
			else if (opt == 'M')
				x.max_memory = sz;
			else if (opt == 'F')
				x.fsize_limit = sz;
			else
				x.out_cap = (size_t)sz;
			break;
		case 'L':
			if (!strcmp(optarg, "0")) {
				x.inline_max = 0;
			} else if (vd_ex_parse_size(&sz, optarg) || sz > EX_INLINE_MAX) {
				fprintf(stderr, "vdfs-executor: --inline-max wants a size from 0 "
					"to 64K\n");
				return 2;
			} else {
				x.inline_max = (size_t)sz;
			}
			break;
		case 'I':
			if (vd_ex_parse_int(&x.idle_exit_s, optarg, 1, 86400 * 365)) {
				fprintf(stderr, "vdfs-executor: --idle-exit wants seconds\n");
				return 2;
			}
			break;
		case 'O': {
			int nf;

			if (vd_ex_parse_int(&nf, optarg, 16, 1 << 20)) {
				fprintf(stderr, "vdfs-executor: --max-open-files wants 16..1048576\n");
				return 2;
			}
			x.nofile_limit = (uint64_t)nf;
			break;
		}
		case 'A':
			x.cacert = optarg;
			break;
		case 'P':
			if (strncmp(optarg, "sha256//", 8) != 0 || strlen(optarg) < 20) {
				fprintf(stderr, "vdfs-executor: --pin wants sha256//<base64>\n");
				return 2;
			}
			x.pin = optarg;
			break;
		case 'k':
			insecure = true;
			break;
		case 'S':
			sandbox = optarg;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case OPT_MAN:
			vd_doc_man(stdout, &doc);
			return 0;
		default:
			vd_doc_bad_option("vdfs-executor", "vdfs-executor --help", opt, argv);
			return 2;
		}
	}
	if (optind < argc || !x.server || !token_file) {
		fprintf(stderr, "vdfs-executor: %s (see --help)\n",
			optind < argc ? "unexpected argument"
				      : "--server and --token-file are required");
		return 2;
	}
	if (strncmp(x.server, "http://", 7) != 0 && strncmp(x.server, "https://", 8) != 0) {
		fprintf(stderr, "vdfs-executor: --server wants an http:// URL\n");
		return 2;
	}
	if (!strncmp(x.server, "http://", 7) && !insecure && !vd_ex_loopback_url(x.server)) {
		fprintf(stderr, "vdfs-executor: http:// to %s would send the token and the "
			"data in the clear; use https:// (vdfsd --tls-cert), or --insecure "
			"on a trusted network\n", x.server);
		return 2;
	}
	if ((x.cacert || x.pin) && strncmp(x.server, "https://", 8) != 0) {
		fprintf(stderr, "vdfs-executor: --cacert and --pin are for an https:// server\n");
		return 2;
	}
	if (!strcmp(sandbox, "bwrap")) {
		if (access("/usr/bin/bwrap", X_OK) != 0) {
			fprintf(stderr, "vdfs-executor: --sandbox bwrap needs /usr/bin/bwrap "
				"(apt-get install bubblewrap)\n");
			return 2;
		}
		x.bwrap = "/usr/bin/bwrap";
	} else if (strcmp(sandbox, "none") != 0) {
		fprintf(stderr, "vdfs-executor: --sandbox wants none or bwrap\n");
		return 2;
	}
	if (name && !vd_ex_name_ok(name)) {
		fprintf(stderr, "vdfs-executor: --name wants 1..64 of [A-Za-z0-9._-]\n");
		return 2;
	}
	if (name)
		snprintf(x.name, sizeof(x.name), "%s", name);
	else
		vd_ex_default_name(x.name, sizeof(x.name));
	vd_log_init("vdfs-executor", verbose ? VD_LOG_DEBUG : VD_LOG_INFO);

	pthread_mutex_init(&x.lock, NULL);
	pthread_cond_init(&x.cond, NULL);
	x.token = vd_ex_read_token(token_file);
	x.cache = cache ? strdup(cache) : vd_ex_default_cache(x.server);
	x.selfdir = vd_ex_self_dir();
	if (!x.token)
		goto out;
	if (!x.cache || !x.selfdir) {
		fprintf(stderr, "vdfs-executor: cannot work out the %s directory\n",
			x.cache ? "program's" : "cache");
		goto out;
	}
	if ((rc = vd_cache_open(&x.store, x.cache, x.cache_cap))) {
		fprintf(stderr, "vdfs-executor: cannot use the cache %s: %s\n", x.cache,
			strerror(-rc));
		goto out;
	}
	/* The spool is per name: a restarted executor of the same name sends
	 * what it holds, and the daemon accepts it from that name only. */
	rc = vd_buf_addf(&dir, "%s/spool/%s", x.cache, x.name);
	if (rc || (rc = vd_spool_open(&x.spool, dir.data, x.spool_cap))) {
		fprintf(stderr, "vdfs-executor: cannot use the spool %s: %s\n",
			vd_buf_cstr(&dir), strerror(-rc));
		goto out;
	}
	spool_report(&x);

	/* A unit's output is held in one buffer (up to --stdout-cap) until it
	 * is sent. glibc would serve such buffers from mmap, but after the
	 * first one is freed it raises its mmap threshold to that size and
	 * serves the next ones from the heap, where the freed holes of
	 * growing buffers stay resident: with 8 MB outputs an executor sat at
	 * 60 MB. A fixed threshold keeps every large buffer an mmap of its
	 * own, returned to the system when the unit is done. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	vd_runner_init();
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "vdfs-executor: cannot initialise libcurl\n");
		goto out;
	}
	if (client_open(&c, &x, x.token, &g_stop)) {
		fprintf(stderr, "vdfs-executor: cannot set up HTTP\n");
		goto out_curl;
	}
	client_ok = true;
	code = do_register(&x, &c);
	if (code || atomic_load(&g_stop))
		goto out_curl;

	workers = calloc((size_t)x.slots, sizeof(*workers));
	if (!workers) {
		fprintf(stderr, "vdfs-executor: out of memory\n");
		code = 1;
		goto out_curl;
	}
	if (ex_outbox_open(&x.outbox) == 0) {
		if (pthread_create(&outbox, NULL, outbox_main, &x) == 0) {
			outbox_started = true;
		} else {
			ex_outbox_close(x.outbox);
			x.outbox = NULL;
		}
	}
	for (i = 0; i < x.slots; i++) {
		workers[i].x = &x;
		if (pthread_create(&workers[i].t, NULL, worker_main, &workers[i]) == 0)
			workers[i].started = 1;
	}
	if (pthread_create(&hb, NULL, heartbeat_main, &x) == 0)
		hb_started = true;
	if (pthread_create(&sender, NULL, sender_main, &x) == 0)
		sender_started = true;
	else
		vd_err("cannot start the spool's sender; spooled results wait for the "
		       "next start");

	code = dispatch(&x, &c);

	/* Finish what is held: workers drain the queue, then leave. */
	pthread_mutex_lock(&x.lock);
	x.workers_stop = true;
	pthread_cond_broadcast(&x.cond);
	pthread_mutex_unlock(&x.lock);
	for (i = 0; i < x.slots; i++)
		if (workers[i].started)
			pthread_join(workers[i].t, NULL);
	/* Then the outbox: sent, or spooled. */
	if (outbox_started) {
		ex_outbox_finish(x.outbox);
		pthread_join(outbox, NULL);
	}
	/* What the daemon did not take yet gets one more try. */
	atomic_store(&x.spool_final, true);
	if (sender_started)
		pthread_join(sender, NULL);
	atomic_store(&x.heartbeat_stop, true);
	if (hb_started)
		pthread_join(hb, NULL);
	say_leaving(&x);
	vd_info("stopped; chunks: %llu bytes received for %llu raw, results: %llu "
		"bytes sent for %llu raw",
		(unsigned long long)atomic_load(&x.chunk_bytes_in),
		(unsigned long long)atomic_load(&x.chunk_raw_in),
		(unsigned long long)atomic_load(&x.result_bytes_out),
		(unsigned long long)atomic_load(&x.result_raw_out));
out_curl:
	if (client_ok)
		vd_client_release(&c);
	curl_global_cleanup();
out:
	pthread_mutex_lock(&x.lock);
	if (x.fatal)
		code = x.fatal;
	pthread_mutex_unlock(&x.lock);
	free(workers);
	if (x.token)
		explicit_bzero(x.token, strlen(x.token));
	free(x.token);
	free(x.own_token);
	vd_cache_close(x.store);
	ex_outbox_close(x.outbox);
	vd_spool_close(x.spool);
	free(x.cache);
	free(x.selfdir);
	vd_buf_release(&dir);
	pthread_mutex_destroy(&x.lock);
	pthread_cond_destroy(&x.cond);
	return code;
}
