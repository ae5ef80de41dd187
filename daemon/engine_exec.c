/*
 * engine_exec.c - executors: registration and their own tokens, who holds
 * a bearer token, revocation, quarantine, and which chunks each holds.
 *
 * Tokens. The enrollment token (STATE/token) is only for registering and
 * for operators. At registration an executor gets a token of its own (32
 * random bytes as hex); the daemon keeps only its SHA-256, in memory and
 * in the executor's catalog record, so a copy of the catalog lets nobody
 * act as an executor. Registering again under the same name replaces the
 * token: the previous process of that name is cut off, and the leases it
 * held go back to the queue at once instead of waiting for their term.
 *
 * Re-registering with spooled results. A restarted vdfs-executor may still
 * hold results it computed and could not deliver (the daemon was down):
 * it lists their lease IDs as "spooled" when it registers, and those
 * leases are kept (with a fresh term) while the rest go back at once. A
 * result is kept on its own, so keeping a lease only saves the unit from
 * being computed again meanwhile; first result wins either way.
 *
 * Leaving. An executor that drains (SIGTERM) says so last, DELETE
 * /v1/executors/<its name> with its own token: it shows as gone at once
 * and anything it still held goes back to the queue. The operator's
 * DELETE, with the enrollment token, revokes instead.
 *
 * Counters (units done and failed, inputs it could not get, flagged
 * results) are kept in the catalog under exc/<name>, put into the batch
 * that records the result, failure or lost lease that changed them, so
 * they survive a restart and cost no commit of their own.
 *
 * Quarantine. An executor collects a strike for each failure it is to
 * blame for: a lease it lost (expired, or abandoned by re-registering), a
 * replicated result that disagreed with the others, or a failed attempt at
 * a unit that then succeeded elsewhere. An accepted result clears them.
 * VD_STRIKES_MAX in a row and it gets no work for quarantine_ms. Strikes
 * and quarantines live in memory only; a daemon restart forgives them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "engine_int.h"

#define TOKEN_BYTES 32
/* How many chunk IDs a registration may list as already cached. */
#define CACHED_MAX (VD_HELD_MAX / 2)
/* How many lease IDs a registration may list as spooled. With CACHED_MAX
 * chunk IDs this keeps the body well under the 1 MiB a JSON body may be. */
#define SPOOLED_MAX 4096

/* ---- small helpers ---------------------------------------------------- */

int vd_engine_token_sha256(unsigned char out[32], const char *token)
{
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, token, strlen(token), out) ? -EIO : 0;
}


/* Equal in time independent of where they differ. */
static bool same_bytes(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned diff = 0;
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(a[i] ^ b[i]);
	return diff == 0;
}

void vd_engine_hex(char *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}


static int hex_to(unsigned char *out, size_t n, const char *hex)
{
	if (!hex || strlen(hex) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = hex[2 * i + (size_t)k];
			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -EINVAL;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

struct vd_executor *vd_engine_find_exec(vd_engine *e, const char *name)
{
	for (struct vd_executor *x = e->execs; x; x = x->next)
		if (!strcmp(x->name, name))
			return x;
	return NULL;
}

bool vd_engine_exec_name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > VD_EXEC_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int vd_engine_int_field(long long *out, struct vd_buf *why, const json_t *req,
			const char *name, long long lo, long long hi, long long def)
{
	json_t *v = json_object_get(req, name);
	if (!v) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
		vd_buf_addf(why, "'%s' must be an integer from %lld to %lld", name, lo, hi);
		return -EINVAL;
	}
	*out = json_integer_value(v);
	return 0;
}

/* ---- the set of chunks an executor holds ------------------------------ */

static uint64_t id64(const char *id)
{
	uint64_t v = 0;
	for (int i = 0; i < 16 && id[i]; i++) {
		char c = id[i];
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
	}
	return v ? v : 1;
}

bool vd_idset_has(const struct vd_idset *s, const char *id)
{
	if (!s->slot)
		return false;
	uint64_t h = id64(id);
	for (size_t i = h & (VD_HELD_MAX - 1); s->slot[i]; i = (i + 1) & (VD_HELD_MAX - 1))
		if (s->slot[i] == h)
			return true;
	return false;
}

void vd_idset_add(struct vd_idset *s, const char *id)
{
	if (!s->slot && !(s->slot = calloc(VD_HELD_MAX, sizeof *s->slot)))
		return;
	/* Half full: start over. The executor's cache is LRU-capped anyway,
	 * so old entries are the likeliest to be wrong. */
	if (s->n >= VD_HELD_MAX / 2) {
		memset(s->slot, 0, VD_HELD_MAX * sizeof *s->slot);
		s->n = 0;
	}
	uint64_t h = id64(id);
	size_t i = h & (VD_HELD_MAX - 1);
	for (; s->slot[i]; i = (i + 1) & (VD_HELD_MAX - 1))
		if (s->slot[i] == h)
			return;
	s->slot[i] = h;
	s->n++;
}

void vd_engine_note_chunk(vd_engine *e, const char *executor, const char *chunk_id)
{
	if (!executor || !vd_id_valid(chunk_id))
		return;
	pthread_mutex_lock(&e->lock);
	struct vd_executor *x = vd_engine_find_exec(e, executor);
	if (x)
		vd_idset_add(&x->held, chunk_id);
	pthread_mutex_unlock(&e->lock);
}

/* ---- who is asking ----------------------------------------------------- */

enum vd_role vd_engine_auth(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
			    const char *token)
{
	unsigned char h[32];
	enum vd_role role = VD_ROLE_NONE;
	if (!token || !*token)
		return VD_ROLE_NONE;
	size_t tlen = strlen(e->token), glen = strlen(token);
	unsigned diff = tlen != glen;
	for (size_t i = 0; i < tlen; i++)
		diff |= (unsigned char)e->token[i] ^ (unsigned char)(i < glen ? token[i] : 0);
	if (!diff)
		return VD_ROLE_ADMIN;
	if (vd_engine_token_sha256(h, token))
		return VD_ROLE_NONE;
	pthread_mutex_lock(&e->lock);
	for (struct vd_executor *x = e->execs; x; x = x->next) {
		if (x->has_token && same_bytes(h, x->token_hash, sizeof h)) {
			snprintf(name, VD_EXECUTOR_NAME_SIZE, "%s", x->name);
			role = VD_ROLE_EXECUTOR;
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return role != VD_ROLE_NONE ? role : vd_engine_user_auth(name, e, token);
}

/* ---- quarantine -------------------------------------------------------- */

bool vd_engine_exec_usable(vd_engine *e, struct vd_executor *x)
{
	if (x->revoked || !x->has_token)
		return false;
	if (x->quarantine_until && vd_mono_ms() >= x->quarantine_until) {
		x->quarantine_until = 0;
		vd_info("executor %s: quarantine over", x->name);
	}
	return x->quarantine_until == 0;
}

void vd_engine_exec_strike(vd_engine *e, const char *name, const char *why)
{
	struct vd_executor *x = name ? vd_engine_find_exec(e, name) : NULL;
	if (!x || x->quarantine_until)
		return;
	if (++x->strikes < VD_STRIKES_MAX)
		return;
	x->strikes = 0;
	x->quarantine_until = vd_mono_ms() + e->quarantine_ms;
	snprintf(x->quarantine_why, sizeof x->quarantine_why,
		 "%d failures in a row, the last: %s", VD_STRIKES_MAX, why);
	e->m_quarantines++;
	vd_warn("executor %s quarantined for %d s: %s", x->name, e->quarantine_ms / 1000,
		x->quarantine_why);
}

void vd_engine_exec_success(vd_engine *e, const char *name)
{
	struct vd_executor *x = name ? vd_engine_find_exec(e, name) : NULL;
	if (x)
		x->strikes = 0;
}

/* ---- the catalog -------------------------------------------------------- */

void vd_engine_exec_counts_put(vd_catalog_batch *b, const struct vd_executor *x)
{
	char key[4 + VD_EXEC_NAME_MAX + 1];
	json_t *j = json_pack("{s:I, s:I, s:I, s:I}", "units_done",
			      (json_int_t)x->units_done, "units_failed",
			      (json_int_t)x->units_failed, "infra_failed",
			      (json_int_t)x->infra_failed, "flagged", (json_int_t)x->flagged);
	snprintf(key, sizeof key, "exc/%s", x->name);
	/* Out of memory: the counters in memory are still right; the record
	 * catches up with the next change. */
	if (j)
		vd_catalog_batch_put_json(b, key, j);
	json_decref(j);
}

static uint64_t count_of(const json_t *j, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(j, k));
	return v > 0 ? (uint64_t)v : 0;
}

static int load_counts(void *ctx, const char *key, size_t klen, const char *val,
		       size_t vlen)
{
	vd_engine *e = ctx;
	char name[VD_EXEC_NAME_MAX + 1];
	if (klen <= 4 || klen - 4 > VD_EXEC_NAME_MAX)
		return 0;
	memcpy(name, key + 4, klen - 4);
	name[klen - 4] = '\0';
	struct vd_executor *x = vd_engine_find_exec(e, name);
	json_t *j = x ? json_loadb(val, vlen, 0, NULL) : NULL;
	if (j) {
		x->units_done = count_of(j, "units_done");
		x->units_failed = count_of(j, "units_failed");
		x->infra_failed = count_of(j, "infra_failed");
		x->flagged = count_of(j, "flagged");
	}
	json_decref(j);
	return 0;
}

static int load_one(void *ctx, const char *key, size_t klen, const char *val,
		    size_t vlen)
{
	vd_engine *e = ctx;
	json_t *j = json_loadb(val, vlen, 0, NULL);
	const char *name = json_string_value(json_object_get(j, "name"));
	struct vd_executor *x = vd_engine_exec_name_valid(name) ? calloc(1, sizeof *x) : NULL;
	(void)key;
	(void)klen;
	if (x) {
		snprintf(x->name, sizeof x->name, "%s", name);
		x->level = (int)json_integer_value(json_object_get(j, "level"));
		x->slots = (int)json_integer_value(json_object_get(j, "slots"));
		x->registered_ms = json_integer_value(json_object_get(j, "registered"));
		x->host = json_dumps(json_object_get(j, "host"), JSON_COMPACT | JSON_ENCODE_ANY);
		x->last_seen_ms = INT64_MIN;
		x->poll_until_ms = INT64_MIN;
		x->has_token = !hex_to(x->token_hash, sizeof x->token_hash,
				       json_string_value(json_object_get(j, "token_sha256")));
		x->revoked = json_object_get(j, "revoked") != NULL;
		x->next = e->execs;
		e->execs = x;
	}
	json_decref(j);
	return 0;
}

int vd_engine_exec_load(vd_engine *e)
{
	int rc = vd_catalog_scan(e->cat, "ex/", load_one, e);
	if (!rc)
		rc = vd_catalog_scan(e->cat, "exc/", load_counts, e);
	return rc;
}

void vd_engine_exec_free_all(vd_engine *e)
{
	while (e->execs) {
		struct vd_executor *x = e->execs;
		e->execs = x->next;
		free(x->host);
		free(x->held.slot);
		free(x);
	}
}

static bool listed(const json_t *ids, const char *id)
{
	for (size_t i = 0; i < json_array_size(ids); i++) {
		const char *s = json_string_value(json_array_get(ids, i));
		if (s && !strcmp(s, id))
			return true;
	}
	return false;
}

/* Leases of x back to the queue (lock held), each counted as lost when
 * `lost` (x's process is gone), else just dropped. Those listed in keep
 * (lease IDs whose results x has spooled; may be NULL) stay, with a fresh
 * term, and are counted in *kept. */
static int drop_leases_of(vd_catalog_batch *b, vd_engine *e, const char *name,
			  const char *what, bool lost, const json_t *keep, int *kept)
{
	int n = 0;
	/* Dropping a lease frees it and nothing else (as expire_leases
	 * relies on too), so the walk goes on from the one after it. */
	for (struct vd_lease *l = e->leases, *next; l; l = next) {
		next = l->next;
		if (strcmp(l->executor, name))
			continue;
		if (keep && listed(keep, l->id)) {
			l->expires_ms = vd_mono_ms() + e->lease_ms;
			(*kept)++;
			continue;
		}
		if (lost) {
			vd_engine_lease_lost(b, e, l, what);
		} else {
			if (l->run)
				vd_engine_log_add(b, e, l->run->task, l->run->data,
						  l->run->code, "unit %zu/%zu executor=%s "
						  "%s, back in the queue", l->unit,
						  l->run->nunits, name, what);
			vd_engine_lease_drop(e, l);
		}
		n++;
	}
	return n;
}

/* ---- the protocol ------------------------------------------------------- */

int vd_engine_api_register(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const json_t *req)
{
	const char *name = json_string_value(json_object_get(req, "name"));
	json_t *host = json_object_get(req, "host"), *cached = json_object_get(req, "cached");
	json_t *spooled = json_object_get(req, "spooled");
	json_t *rec = NULL;
	struct vd_buf k = VD_BUF_INIT(256);
	vd_catalog_batch *b = NULL;
	long long level, slots;
	unsigned char raw[TOKEN_BYTES], hash[32];
	char token[2 * TOKEN_BYTES + 1], hash_hex[65], keyhex[VD_KEY_HEX_SIZE];
	int rc, dropped = 0, kept = 0;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "'name' must be 1 to 64 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if ((rc = vd_engine_int_field(&level, why, req, "level", 1, 5, 1)) ||
	    (rc = vd_engine_int_field(&slots, why, req, "slots", 1, 256, 1)))
		return rc;
	if (host && !json_is_object(host)) {
		vd_buf_adds(why, "'host' must be an object");
		return -EINVAL;
	}
	if (cached && (!json_is_array(cached) || json_array_size(cached) > CACHED_MAX)) {
		vd_buf_addf(why, "'cached' must be an array of at most %d chunk IDs",
			    CACHED_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(cached); i++)
		if (!vd_id_valid(json_string_value(json_array_get(cached, i)))) {
			vd_buf_adds(why, "'cached' holds something that is not a chunk ID");
			return -EINVAL;
		}
	if (spooled && (!json_is_array(spooled) || json_array_size(spooled) > SPOOLED_MAX)) {
		vd_buf_addf(why, "'spooled' must be an array of at most %d lease IDs",
			    SPOOLED_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < json_array_size(spooled); i++)
		if (!vd_id_valid(json_string_value(json_array_get(spooled, i)))) {
			vd_buf_adds(why, "'spooled' holds something that is not a lease ID");
			return -EINVAL;
		}
	if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
		return -EIO;
	vd_engine_hex(token, raw, sizeof raw);
	if ((rc = vd_engine_token_sha256(hash, token)))
		return rc;
	vd_engine_hex(hash_hex, hash, sizeof hash);
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	/* "o" steals the reference: a new one for the caller's host. */
	rec = json_pack("{s:s, s:I, s:I, s:o, s:I, s:s}", "name", name, "level",
			(json_int_t)level, "slots", (json_int_t)slots, "host",
			host ? json_incref(host) : json_object(), "registered",
			(json_int_t)vd_now_ms(), "token_sha256", hash_hex);
	if (!rec) {
		rc = -ENOMEM;
		goto out;
	}
	vd_engine_key(&k, "ex", name, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rec)))
		goto out;
	pthread_mutex_lock(&e->lock);
	struct vd_executor *x = vd_engine_find_exec(e, name);
	/* A process registering under a name in use replaces the old one,
	 * whose leases are lost with it, except those whose results it says
	 * it has spooled: those it is about to send. */
	if (x)
		dropped = drop_leases_of(b, e, name, "abandoned (its executor "
					 "registered again)", true, spooled, &kept);
	rc = vd_catalog_commit(e->cat, b, true);
	if (!rc && !x && (x = calloc(1, sizeof *x))) {
		snprintf(x->name, sizeof x->name, "%s", name);
		x->next = e->execs;
		e->execs = x;
	}
	if (x) {
		x->level = (int)level;
		x->slots = (int)slots;
		x->registered_ms = vd_now_ms();
		free(x->host);
		x->host = json_dumps(json_object_get(rec, "host"), JSON_COMPACT);
		x->last_seen_ms = vd_mono_ms();
		x->poll_until_ms = INT64_MIN;
		x->left = false;
		x->generation++;
		memcpy(x->token_hash, hash, sizeof hash);
		x->has_token = true;
		x->revoked = false;
		for (size_t i = 0; i < json_array_size(cached); i++)
			vd_idset_add(&x->held, json_string_value(json_array_get(cached, i)));
	} else if (!rc) {
		rc = -ENOMEM;
	}
	pthread_mutex_unlock(&e->lock);
	if (rc)
		goto out;
	vd_info("executor %s registered (level %lld, %lld slots, %zu chunks cached, "
		"%zu results spooled)", name, level, slots, json_array_size(cached),
		json_array_size(spooled));
	vd_engine_event_executor(e, name, "registered");
	if (dropped || kept)
		vd_info("executor %s replaced a process of that name: %d of its leases "
			"back in the queue, %d kept for the results it has spooled", name,
			dropped, kept);
	vd_key_to_hex(keyhex, &e->key);
	/* result_encodings: results may come as zstd frames
	 * (vd_engine_api_result_zstd); an executor sends them so only to a
	 * daemon that says it takes them. */
	*reply = json_pack("{s:s, s:s, s:s, s:i, s:i, s:[s]}", "executor", name, "token",
			   token, "hash_key", keyhex, "lease_ms", e->lease_ms, "heartbeat_ms",
			   e->heartbeat_ms, "result_encodings", "zstd");
	rc = *reply ? 0 : -ENOMEM;
out:
	explicit_bzero(token, sizeof token);
	explicit_bzero(raw, sizeof raw);
	json_decref(rec);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_api_revoke(json_t **reply, struct vd_buf *why, vd_engine *e,
			 const char *name)
{
	struct vd_buf k = VD_BUF_INIT(256);
	vd_catalog_batch *b = NULL;
	json_t *rec = NULL;
	int rc, n = 0;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "not a valid executor name");
		return -EINVAL;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	vd_engine_key(&k, "ex", name, NULL, NULL);
	pthread_mutex_lock(&e->lock);
	struct vd_executor *x = vd_engine_find_exec(e, name);
	if (!x) {
		vd_buf_addf(why, "no executor named '%s'", name);
		rc = -ENOENT;
		goto unlock;
	}
	if ((rc = vd_catalog_get_json(&rec, e->cat, vd_buf_cstr(&k))))
		goto unlock;
	json_object_del(rec, "token_sha256");
	json_object_set_new(rec, "revoked", json_integer(vd_now_ms()));
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rec)))
		goto unlock;
	n = drop_leases_of(b, e, name, "revoked by the operator", false, NULL, NULL);
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto unlock;
	x->has_token = false;
	x->revoked = true;
	memset(x->token_hash, 0, sizeof x->token_hash);
	vd_warn("executor %s revoked; %d of its units back in the queue", name, n);
	vd_engine_event_executor(e, name, "revoked");
unlock:
	pthread_mutex_unlock(&e->lock);
	if (!rc) {
		*reply = json_pack("{s:s, s:b, s:i}", "executor", name, "revoked", 1,
				   "units_requeued", n);
		rc = *reply ? 0 : -ENOMEM;
	}
	json_decref(rec);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_api_leave(json_t **reply, struct vd_buf *why, vd_engine *e,
			const char *name)
{
	vd_catalog_batch *b = NULL;
	int rc, n = 0;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "not a valid executor name");
		return -EINVAL;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	struct vd_executor *x = vd_engine_find_exec(e, name);
	if (!x) {
		vd_buf_addf(why, "no executor named '%s'", name);
		rc = -ENOENT;
		goto unlock;
	}
	/* It drained, so it should hold nothing; what it still does (a unit
	 * it gave up on) goes back now rather than at the end of its term. */
	n = drop_leases_of(b, e, name, "left with its executor", false, NULL, NULL);
	if (vd_catalog_batch_count(b))
		rc = vd_catalog_commit(e->cat, b, false);
	if (rc)
		goto unlock;
	x->left = true;
	x->generation++;
	x->poll_until_ms = INT64_MIN;
	x->last_seen_ms = vd_mono_ms();
	vd_info("executor %s left%s", name, n ? "; its units are back in the queue" : "");
	vd_engine_event_executor(e, name, "left");
unlock:
	pthread_mutex_unlock(&e->lock);
	if (!rc) {
		*reply = json_pack("{s:s, s:b, s:i}", "executor", name, "left", 1,
				   "units_requeued", n);
		rc = *reply ? 0 : -ENOMEM;
	}
	vd_catalog_batch_free(b);
	return rc;
}
