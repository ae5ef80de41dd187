/*
 * exec_unit.c - one unit on a worker thread of vdfs-executor: its code
 * and chunks fetched (verified, cached, pinned while it runs), its
 * environment, limits and sandbox, then the function run on it and the
 * result sent (exec_results.c).
 *
 * Two ways to run it, as the task's config `mode` says (the lease's
 * "mode"): exec, a new process per unit in a fresh directory (runner.c);
 * persistent, one process per worker slot kept between units and fed
 * each as a frame (persist.h, docs/persistent.md). The slot's process is
 * for one task, code and set of parameters: a unit with others stops it
 * and starts another, and so does a unit that killed it or found it
 * dead. Its directory (its TMPDIR) lives as long as the process.
 */
#include "exec_int.h"
#include "persist.h"

/* ---- code and chunks ---------------------------------------------------- */

/*
 * GET /v1/<kind>/<id> into data (reset first), retried on transport
 * trouble and 5xx. Chunks are asked for with Accept-Encoding: zstd: *zstd
 * then says whether they came as the daemon's frame, and *raw_len what
 * the daemon says it decodes to (X-VDFS-Length; 0: it did not say).
 * -ENOENT: the server does not know the ID; -EACCES: 401; -EIO and other:
 * transport trouble after retries.
 */
static int fetch(struct vd_buf *data, bool *zstd, uint64_t *raw_len, struct exec *x,
		 struct vd_client *c, const char *kind, const char *id)
{
	struct vd_buf url = VD_BUF_INIT(256);
	bool chunk = !strcmp(kind, "chunks");
	char fail[512];
	int rc, tries, wait = EX_BACKOFF_MIN_MS;
	long status = 0;

	*zstd = false;
	*raw_len = 0;
	rc = vd_buf_addf(&url, "/v1/%s/%s", kind, id);
	if (rc)
		goto out;
	for (tries = 0; tries < EX_FETCH_TRIES; tries++) {
		vd_buf_reset(data);
		rc = chunk ? vd_client_get_zstd(&status, data, c, url.data, 0)
			   : vd_client_do(&status, data, c, "GET", url.data, NULL, NULL, 0, 0);
		if ((rc == 0 && status < 500) || rc == -EKEYREJECTED)
			break;
		vd_warn("GET %s: %s; retrying in %.1f s", url.data,
			fail_text(fail, sizeof(fail), rc, status, c, NULL), wait / 1000.0);
		nap(wait, NULL);
		wait = backoff_next(wait);
	}
	if (rc)
		goto out;
	if (status == 401) {
		rc = -EACCES;
	} else if (status == 404) {
		rc = -ENOENT;
	} else if (status != 200) {
		vd_warn("GET %s: HTTP %ld", url.data, status);
		rc = -EIO;
	}
	if (!rc && chunk) {
		*zstd = c->resp_zstd;
		*raw_len = c->resp_raw_len;
		atomic_fetch_add(&x->chunk_bytes_in, data->len);
	}
out:
	vd_buf_release(&url);
	return rc;
}

/*
 * Make the cache file `path` (of code/<id>) hold the verified bytes of
 * the code id, downloading them if the cache lacks them or holds something
 * else. -EBADMSG: the server sent other bytes; else as fetch. The caller
 * has pinned path.
 */
static int code_ensure(struct exec *x, struct vd_client *c, const char *id,
		       const char *path)
{
	struct vd_buf data = VD_BUF_INIT(EX_BLOB_MAX);
	char got[VD_ID_SIZE];
	uint64_t said;
	bool zstd;
	int rc;

	/* Cached files are re-hashed on use: a cache entry torn by a crash
	 * (they are not fsync'd) or altered must not reach a function. */
	if (vd_read_file(&data, path) == 0) {
		vd_id_of(got, &x->key, data.data ? data.data : "", data.len);
		if (strcmp(got, id) == 0) {
			vd_cache_touch(x->store, path);
			rc = 0;
			goto out;
		}
		vd_warn("cache: %s does not hash to its name; fetching again", path);
		if (unlink(path) == 0)
			vd_cache_forget(x->store, data.len);
	}
	rc = fetch(&data, &zstd, &said, x, c, "code", id);
	if (rc)
		goto out;
	vd_id_of(got, &x->key, data.data ? data.data : "", data.len);
	if (strcmp(got, id) != 0) {
		vd_warn("GET /v1/code/%s: the bytes hash to %s", id, got);
		rc = -EBADMSG;
		goto out;
	}
	rc = vd_cache_put(x->store, path, data.data ? data.data : "", data.len, 0755);
	if (rc)
		vd_warn("cache: cannot write %s: %s", path, strerror(-rc));
out:
	vd_buf_release(&data);
	return rc;
}

/*
 * The chunk id in the cache, verified: *file the cache file (raw, or the
 * daemon's zstd frame as it came, *zstd), *size the chunk's length. A
 * chunk the cache lacks, or holds torn or altered, is downloaded, verified
 * (a frame by decompressing it into the hash) and kept. -EBADMSG: the
 * server sent bytes that are not the chunk; else as fetch. The caller has
 * pinned the chunk's raw name (cache.h).
 */
static int chunk_ensure(struct vd_buf *file, bool *zstd, uint64_t *size, struct exec *x,
			struct vd_client *c, const char *id)
{
	struct vd_buf data = VD_BUF_INIT(EX_BLOB_MAX);
	uint64_t said = 0;
	int rc = vd_cache_chunk_find(file, zstd, size, x->store, &x->key, id, EX_BLOB_MAX);

	if (rc != -ENOENT)
		goto out;
	rc = fetch(&data, zstd, &said, x, c, "chunks", id);
	if (rc)
		goto out;
	/* A frame decodes to what the daemon said, not a byte more. */
	rc = vd_cache_chunk_put(file, size, x->store, &x->key, id,
				data.data ? data.data : "", data.len, *zstd,
				said && said < EX_BLOB_MAX ? said : EX_BLOB_MAX);
	if (rc == -EBADMSG) {
		vd_warn("GET /v1/chunks/%s: %s", id,
			*zstd ? "the frame does not decompress to bytes that hash to the ID"
			      : "the bytes do not hash to the ID");
	} else if (rc) {
		vd_warn("cache: cannot write chunk %s: %s", id, strerror(-rc));
	} else {
		atomic_fetch_add(&x->chunk_raw_in, *size);
		vd_debug("chunk %s: %zu bytes on the wire%s, %llu raw", id, data.len,
			 *zstd ? " (zstd)" : "", (unsigned long long)*size);
	}
out:
	vd_buf_release(&data);
	return rc;
}

/* A unit whose inputs cannot be had is reported as a failed attempt (so
 * that the server's retry count sees it) unless the trouble looks
 * transient, in which case the lease is left to expire. */
static void input_failed(struct exec *x, struct vd_client *c, struct lease *l,
			 const char *what, const char *id, int rc)
{
	struct vd_run_result r;

	if (rc == -EACCES) {
		set_fatal(x, "GET input");
		return;
	}
	if (rc != -ENOENT && rc != -EBADMSG) {
		vd_warn("lease %s: cannot fetch %s %s: %s; dropping the unit", l->id,
			what, id, strerror(-rc));
		return;
	}
	memset(&r, 0, sizeof(r));
	vd_buf_init(&r.out, 0);
	r.exit = 1;
	snprintf(r.reason, sizeof(r.reason), "input: %s %s %s", what, id,
		 rc == -ENOENT ? "unknown to the server" : "failed verification");
	vd_warn("lease %s: %s", l->id, r.reason);
	send_result(x, c, l, &r);
}

/* A fresh directory for a unit or a slot's process, under $TMPDIR. */
static int make_workdir(char dir[PATH_MAX], const char *what)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, PATH_MAX, "%s/vdfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		int e = errno;
		vd_err("%s: cannot make a working directory in %s: %s", what,
		       tmp && *tmp ? tmp : "/tmp", strerror(e));
		dir[0] = '\0';
		return -e;
	}
	return 0;
}

static void remove_workdir(char dir[PATH_MAX])
{
	if (dir[0]) {
		int e = vd_rm_rf(dir);

		if (e)
			vd_warn("cannot remove %s: %s", dir, strerror(-e));
	}
	dir[0] = '\0';
}

void exec_slot_release(struct exec_slot *s)
{
	if (s->proc) {
		vd_persist_free(s->proc);
		s->proc = NULL;
	}
	remove_workdir(s->workdir);
	vd_buf_release(&s->key);
}

/* The process a persistent unit of l runs in: the slot's, if it is for
 * the same task, code and parameters and still alive, else a new one.
 * 0; -errno from vd_persist_start (an exec failure is the unit's). */
static int slot_process(struct exec_slot *s, struct exec *x, const struct lease *l,
			const char *exe)
{
	struct vd_buf key = VD_BUF_INIT(1 << 16);
	struct vd_strv env = { 0 };
	struct vd_run_spec spec;
	const char *wrap[32];
	char *params = json_dumps(json_object_get(l->j, "env"), JSON_SORT_KEYS | JSON_COMPACT);
	const char *ek;
	json_t *ev;
	int rc;

	rc = params ? vd_buf_addf(&key, "%s\n%s\n%s", jstr(l->j, "task"),
				  jstr(l->j, "code_id"), params)
		    : -ENOMEM;
	free(params);
	if (rc)
		goto out;
	if (s->proc && vd_persist_alive(s->proc) && s->key.len == key.len &&
	    !memcmp(s->key.data, key.data, key.len))
		goto out;
	exec_slot_release(s);
	if ((rc = make_workdir(s->workdir, "persistent function")))
		goto out;
	/* The process's own environment holds what stays the same for all
	 * its units; each unit's frame says which unit it is. */
	rc = ex_env_add(&env, "VDFS_TASK", jstr(l->j, "task"));
	if (!rc)
		rc = ex_env_add(&env, "VDFS_CODE_ID", jstr(l->j, "code_id"));
	if (!rc)
		rc = ex_env_add(&env, "VDFS_MODE", "persistent");
	if (!rc)
		rc = ex_env_add(&env, "TMPDIR", s->workdir);
	json_object_foreach(json_object_get(l->j, "env"), ek, ev) {
		bool ours = !strncmp(ek, "VDFS_", 5) && strcmp(ek, "VDFS_ENCODING");
		if (!rc && !ours && strcmp(ek, "PATH") && strcmp(ek, "TMPDIR") &&
		    ex_env_name_ok(ek) && json_is_string(ev))
			rc = ex_env_add(&env, ek, json_string_value(ev));
	}
	if (rc)
		goto out;
	ex_unit_limits(&spec, wrap, x, l, exe, s->workdir);
	spec.env = (const char *const *)env.v;
	/* RLIMIT_CPU counts the process's whole life, which spans many
	 * units: each unit's deadline is the limit instead. */
	spec.cpu_limit_s = 0;
	if ((rc = vd_persist_start(&s->proc, &spec)))
		goto out;
	vd_buf_release(&s->key);
	s->key = key;
	key = (struct vd_buf)VD_BUF_INIT(0);
	vd_debug("slot: persistent function %s started for task %s", jstr(l->j, "code_id"),
		 jstr(l->j, "task"));
out:
	if (rc && !s->proc)
		remove_workdir(s->workdir);
	vd_buf_release(&key);
	vd_strv_release(&env);
	return rc;
}

/* Run l's unit in the slot's persistent process; r is filled, or -errno
 * when the unit could not be run (it is dropped). */
static int run_persistent(struct vd_run_result *r, struct exec_slot *s, struct exec *x,
			  const struct lease *l, const char *exe, struct vd_strv *env,
			  const struct vd_run_input *in, size_t nin)
{
	struct vd_run_spec spec;
	const char *wrap[32];
	int rc = 0;

	/* A process found dead before its frame went out did not fail the
	 * unit: a new one gets it, once. */
	for (int tries = 0; tries < 2; tries++) {
		rc = slot_process(s, x, l, exe);
		if (rc == -EAGAIN || rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE)
			return rc;
		if (rc) {
			/* The function cannot be started: a result, as in
			 * exec mode. */
			memset(r, 0, sizeof(*r));
			vd_buf_init(&r->out, 0);
			r->exit = 127;
			snprintf(r->reason, sizeof(r->reason), "exec failed: %s", strerror(-rc));
			return 0;
		}
		ex_unit_limits(&spec, wrap, x, l, exe, s->workdir);
		spec.in = in;
		spec.nin = nin;
		rc = vd_persist_run(r, s->proc, (const char *const *)env->v, &spec);
		if (rc != -EPIPE)
			break;
		vd_run_result_release(r);
		vd_info("lease %s: the persistent function had ended; starting it again",
			l->id);
		exec_slot_release(s);
	}
	s->last_used_ms = vd_mono_ms();
	if (!vd_persist_alive(s->proc))
		exec_slot_release(s);
	return rc;
}

void exec_run_unit(struct exec *x, struct vd_client *c, struct lease *l,
		   struct exec_slot *slot)
{
	const json_t *chunks = json_object_get(l->j, "chunks");
	const char *code_id = jstr(l->j, "code_id");
	const char *header = jstr(l->j, "header");
	bool persistent = !strcmp(jstr(l->j, "mode"), "persistent");
	struct vd_buf codepath = VD_BUF_INIT(PATH_MAX);
	struct vd_strv chunkpaths = { 0 }, infiles = { 0 }, env = { 0 };
	struct vd_run_input *in = NULL;
	struct vd_buf *inl = NULL;     /* chunks that came inside the lease */
	size_t ninl = 0;
	struct vd_run_spec spec;
	struct vd_run_result r;
	char workdir[PATH_MAX] = "";
	uint64_t skip, size;
	size_t i, nin = 0, nchunks = json_array_size(chunks);
	const char *wrap[32];
	bool code_pinned = false;
	int rc;

	memset(&r, 0, sizeof(r));
	if (!vd_id_valid(code_id) || !json_is_array(chunks)) {
		vd_warn("lease %s: malformed lease (code_id or chunks); dropping", l->id);
		goto out;
	}
	rc = vd_cache_path(&codepath, x->store, "code", code_id);
	if (!rc && !(rc = vd_cache_pin(x->store, codepath.data)))
		code_pinned = true;
	if (!rc)
		rc = code_ensure(x, c, code_id, codepath.data);
	if (rc) {
		input_failed(x, c, l, "code", code_id, rc);
		goto out;
	}
	in = calloc(nchunks + 1, sizeof(*in));
	inl = calloc(nchunks ? nchunks : 1, sizeof(*inl));
	if (!in || !inl) {
		vd_err("lease %s: out of memory", l->id);
		goto out;
	}
	if (*header)
		in[nin++] = (struct vd_run_input){ .mem = header, .len = strlen(header) };
	skip = (uint64_t)jint(l->j, "skip", 0);
	for (i = 0; i < nchunks; i++) {
		const char *cid = jstr(json_array_get(chunks, i), "id");
		struct vd_buf p = VD_BUF_INIT(PATH_MAX), file = VD_BUF_INIT(PATH_MAX);
		bool zstd = false;

		if (atomic_load(&l->cancel))
			goto out;
		if (!vd_id_valid(cid)) {
			vd_warn("lease %s: malformed chunk ID; dropping", l->id);
			goto out;
		}
		/* Sent with the lease: from memory, not cached. */
		vd_buf_init(&inl[ninl], EX_INLINE_MAX);
		rc = ex_inline_chunk(&inl[ninl], json_array_get(chunks, i), &x->key);
		if (rc == 0) {
			const struct vd_buf *m = &inl[ninl++];
			vd_buf_release(&p);
			vd_buf_release(&file);
			vd_debug("chunk %s: %zu bytes inside the lease", cid, m->len);
			if (skip >= m->len) {
				skip -= m->len;
				continue;
			}
			in[nin++] = (struct vd_run_input){ .mem = m->data + skip,
							   .len = m->len - skip };
			skip = 0;
			continue;
		}
		vd_buf_release(&inl[ninl]);
		if (rc == -EBADMSG)
			vd_warn("lease %s: chunk %s sent inside the lease is not the chunk; "
				"fetching it", l->id, cid);
		rc = vd_cache_path(&p, x->store, "chunks", cid);
		if (!rc)
			rc = vd_strv_push(&chunkpaths, p.data);
		vd_buf_release(&p);
		if (!rc && (rc = vd_cache_pin(x->store, chunkpaths.v[chunkpaths.n - 1]))) {
			free(chunkpaths.v[--chunkpaths.n]);
			chunkpaths.v[chunkpaths.n] = NULL;
		}
		if (!rc)
			rc = chunk_ensure(&file, &zstd, &size, x, c, cid);
		/* The input names the file it reads: the pinned raw name, or
		 * the frame's beside it, which that pin holds too. */
		if (!rc)
			rc = vd_strv_push(&infiles, file.data);
		vd_buf_release(&file);
		if (rc) {
			input_failed(x, c, l, "chunk", cid, rc);
			goto out;
		}
		/* skip may reach past the first chunk. */
		if (skip >= size) {
			skip -= size;
			continue;
		}
		in[nin++] = (struct vd_run_input){ .file = infiles.v[infiles.n - 1],
						   .off = skip, .len = size - skip,
						   .zstd = zstd };
		skip = 0;
	}
	if (ex_unit_env(&env, l->j)) {
		vd_err("lease %s: out of memory", l->id);
		goto out;
	}
	if (atomic_load(&l->cancel))
		goto out;
	vd_debug("lease %s: running %s unit %lld%s", l->id, jstr(l->j, "task"),
		 (long long)jint(l->j, "unit", 0), persistent ? " (persistent)" : "");
	if (persistent) {
		rc = run_persistent(&r, slot, x, l, codepath.data, &env, in, nin);
	} else {
		/* A slot leaves its persistent process when it takes an exec
		 * unit: memory is for the units that run. */
		exec_slot_release(slot);
		if (make_workdir(workdir, l->id))
			goto out;
		/* Its temporary files go with its directory. */
		if (ex_env_add(&env, "TMPDIR", workdir)) {
			vd_err("lease %s: out of memory", l->id);
			goto out;
		}
		ex_unit_limits(&spec, wrap, x, l, codepath.data, workdir);
		spec.env = (const char *const *)env.v;
		spec.in = in;
		spec.nin = nin;
		/* stdin as a file in the unit's directory: cheaper for us and
		 * faster for the function than a pipe (docs/executors.md). */
		spec.stdin_dir = workdir;
		rc = vd_runner_run(&r, &spec);
	}
	if (rc) {
		vd_err("lease %s: cannot run the function: %s; dropping the unit",
		       l->id, strerror(-rc));
		goto out;
	}
	if (r.cancelled) {
		vd_info("lease %s: the lease is no longer ours; unit dropped", l->id);
		goto out;
	}
	if (r.exit || r.reason[0])
		vd_info("lease %s: %s unit %lld failed: exit %d%s%s", l->id,
			jstr(l->j, "task"), (long long)jint(l->j, "unit", 0), r.exit,
			r.reason[0] ? ", " : "", r.reason);
	send_result(x, c, l, &r);
out:
	remove_workdir(workdir);
	vd_run_result_release(&r);
	vd_strv_release(&env);
	for (i = 0; i < chunkpaths.n; i++)
		vd_cache_unpin(x->store, chunkpaths.v[i]);
	if (code_pinned)
		vd_cache_unpin(x->store, codepath.data);
	vd_strv_release(&chunkpaths);
	vd_strv_release(&infiles);
	vd_buf_release(&codepath);
	for (i = 0; i < ninl; i++)
		vd_buf_release(&inl[i]);
	free(inl);
	free(in);
}
