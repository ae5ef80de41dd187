/*
 * engine_users.c - users, their roles, and executor enrollment tokens.
 *
 * A LAN team shares one daemon, so one token can no longer open everything.
 * Each user has a role:
 *
 *   reader      browse and download;
 *   submitter   also create tasks, which it then owns, and submit, rerun,
 *               cancel and delete on its own tasks;
 *   operator    everything: every task, executors, users, gc and fsck.
 *
 * STATE/token stays what it was, the owner's operator token, so existing
 * set-ups keep working. Executors enroll with tokens of their own kind
 * (vdfs token executor), which can register an executor and do nothing
 * else: handing a machine the right to compute no longer hands it the
 * right to administer.
 *
 * Tokens are 32 random bytes in hex, shown once when made. The catalog
 * keeps only their SHA-256: u/<name> holds the user's record with it, and
 * ut/<sha256> names the user, so that a request is authenticated with one
 * lookup by hash (which leaks nothing about the token through timing); an
 * enrollment token is et/<sha256>. Revoking a user deletes its ut/ entry in
 * the same batch that marks the record revoked: its next request is 401.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine_int.h"

#define USER_TOKEN_BYTES 32

static const char *const role_names[] = {
	[VD_ROLE_NONE] = "none",           [VD_ROLE_ADMIN] = "operator",
	[VD_ROLE_EXECUTOR] = "executor",   [VD_ROLE_READER] = "reader",
	[VD_ROLE_SUBMITTER] = "submitter", [VD_ROLE_OPERATOR] = "operator",
	[VD_ROLE_ENROLL] = "executor enrollment",
};

const char *vd_role_name(enum vd_role r)
{
	return (size_t)r < sizeof role_names / sizeof *role_names && role_names[r]
		       ? role_names[r] : "none";
}

static int role_parse(enum vd_role *out, const char *s)
{
	if (s && !strcmp(s, "reader"))
		*out = VD_ROLE_READER;
	else if (s && !strcmp(s, "submitter"))
		*out = VD_ROLE_SUBMITTER;
	else if (s && !strcmp(s, "operator"))
		*out = VD_ROLE_OPERATOR;
	else
		return -EINVAL;
	return 0;
}

/* A new token and the hex of its SHA-256. */
static int new_token(char token[2 * USER_TOKEN_BYTES + 1], char hash_hex[65])
{
	unsigned char raw[USER_TOKEN_BYTES], h[32];
	ssize_t r;
	do
		r = getrandom(raw, sizeof raw, 0);
	while (r < 0 && errno == EINTR);
	if (r != (ssize_t)sizeof raw)
		return r < 0 ? -errno : -EIO;
	vd_engine_hex(token, raw, sizeof raw);
	if (vd_engine_token_sha256(h, token))
		return -EIO;
	vd_engine_hex(hash_hex, h, sizeof h);
	return 0;
}

enum vd_role vd_engine_user_auth_sha(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
				     const unsigned char h[32])
{
	char hex[65], *val = NULL;
	struct vd_buf k = VD_BUF_INIT(128);
	enum vd_role role = VD_ROLE_NONE;
	json_t *u = NULL;
	size_t vlen;
	vd_engine_hex(hex, h, 32);
	vd_buf_addf(&k, "ut/%s", hex);
	if (vd_catalog_get(&val, &vlen, e->cat, vd_buf_cstr(&k)) || vlen >= VD_EXECUTOR_NAME_SIZE)
		goto out;
	vd_buf_reset(&k);
	vd_buf_addf(&k, "u/%s", val);
	if (vd_catalog_get_json(&u, e->cat, vd_buf_cstr(&k)) ||
	    json_object_get(u, "revoked") ||
	    role_parse(&role, json_string_value(json_object_get(u, "role")))) {
		role = VD_ROLE_NONE;
		goto out;
	}
	snprintf(name, VD_EXECUTOR_NAME_SIZE, "%s", val);
out:
	json_decref(u);
	free(val);
	vd_buf_release(&k);
	return role;
}

enum vd_role vd_engine_user_auth(char name[VD_EXECUTOR_NAME_SIZE], vd_engine *e,
				 const char *token)
{
	unsigned char h[32];
	char hex[65];
	struct vd_buf k = VD_BUF_INIT(128);
	enum vd_role role;
	if (vd_engine_token_sha256(h, token))
		return VD_ROLE_NONE;
	vd_engine_hex(hex, h, sizeof h);
	vd_buf_addf(&k, "et/%s", hex);
	if (vd_catalog_has(e->cat, vd_buf_cstr(&k)) == 1) {
		snprintf(name, VD_EXECUTOR_NAME_SIZE, "%s", "");
		role = VD_ROLE_ENROLL;
	} else {
		role = vd_engine_user_auth_sha(name, e, h);
	}
	vd_buf_release(&k);
	return role;
}

int vd_engine_api_user_add(json_t **reply, struct vd_buf *why, vd_engine *e,
			   const json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	const char *rs = json_string_value(json_object_get(body, "role"));
	char token[2 * USER_TOKEN_BYTES + 1], hex[65];
	struct vd_buf k = VD_BUF_INIT(256);
	vd_catalog_batch *b = NULL;
	enum vd_role role;
	json_t *rec = NULL;
	int rc;
	if (!name || !vd_engine_exec_name_valid(name)) {
		vd_buf_adds(why, "'name' must be 1 to 64 characters of [A-Za-z0-9._-]");
		return -EINVAL;
	}
	if (role_parse(&role, rs)) {
		vd_buf_adds(why, "'role' must be reader, submitter or operator");
		return -EINVAL;
	}
	if ((rc = new_token(token, hex)) || (rc = vd_catalog_batch_new(&b)))
		goto out;
	pthread_mutex_lock(&e->lock);
	vd_buf_addf(&k, "u/%s", name);
	json_t *old = NULL;
	if (vd_catalog_get_json(&old, e->cat, vd_buf_cstr(&k)) == 0) {
		bool revoked = json_object_get(old, "revoked") != NULL;
		json_decref(old);
		/* A revoked name may be given again (a new token, a new role);
		 * a live one is the operator's to revoke first. */
		if (!revoked) {
			vd_buf_addf(why, "user %s exists (vdfs user revoke %s first)", name, name);
			rc = -EEXIST;
			goto unlock;
		}
	}
	rec = json_pack("{s:s, s:s, s:I, s:s}", "name", name, "role", vd_role_name(role),
			"created", (json_int_t)vd_now_ms(), "token_sha256", hex);
	if (!rec || (rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rec))) {
		rc = rc ? rc : -ENOMEM;
		goto unlock;
	}
	vd_buf_reset(&k);
	vd_buf_addf(&k, "ut/%s", hex);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), name, strlen(name));
	rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true));
unlock:
	pthread_mutex_unlock(&e->lock);
	if (!rc) {
		vd_info("user %s added (%s)", name, vd_role_name(role));
		*reply = json_pack("{s:s, s:s, s:s}", "name", name, "role", vd_role_name(role),
				   "token", token);
		rc = *reply ? 0 : -ENOMEM;
	}
out:
	json_decref(rec);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

static int list_one(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	json_t *arr = ctx, *u = json_loadb(val, vlen, 0, NULL);
	(void)key;
	(void)klen;
	if (!u)
		return 0;
	/* Never the hash: what a list shows may be pasted anywhere. */
	json_object_del(u, "token_sha256");
	return json_array_append_new(arr, u) ? -ENOMEM : 0;
}

int vd_engine_api_user_list(json_t **reply, vd_engine *e)
{
	json_t *arr = json_array();
	int rc = arr ? vd_catalog_scan(e->cat, "u/", list_one, arr) : -ENOMEM;
	if (!rc && !(*reply = json_pack("{s:O}", "users", arr)))
		rc = -ENOMEM;
	json_decref(arr);
	return rc;
}

int vd_engine_api_user_revoke(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *name)
{
	struct vd_buf k = VD_BUF_INIT(256);
	vd_catalog_batch *b = NULL;
	json_t *u = NULL;
	int rc;
	if (!vd_engine_exec_name_valid(name)) {
		vd_buf_addf(why, "no user %s", name);
		return -ENOENT;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	vd_buf_addf(&k, "u/%s", name);
	if ((rc = vd_catalog_get_json(&u, e->cat, vd_buf_cstr(&k)))) {
		if (rc == -ENOENT)
			vd_buf_addf(why, "no user %s", name);
		goto unlock;
	}
	const char *hex = json_string_value(json_object_get(u, "token_sha256"));
	if (hex) {
		struct vd_buf ik = VD_BUF_INIT(128);
		vd_buf_addf(&ik, "ut/%s", hex);
		vd_catalog_batch_del(b, vd_buf_cstr(&ik));
		vd_buf_release(&ik);
	}
	json_object_del(u, "token_sha256");
	if (!json_object_get(u, "revoked"))
		json_object_set_new(u, "revoked", json_integer((json_int_t)vd_now_ms()));
	if (!(rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), u)))
		rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true));
unlock:
	pthread_mutex_unlock(&e->lock);
	if (!rc) {
		vd_info("user %s revoked", name);
		*reply = json_pack("{s:s, s:b}", "name", name, "revoked", 1);
		rc = *reply ? 0 : -ENOMEM;
	}
	json_decref(u);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_api_enroll_token(json_t **reply, struct vd_buf *why, vd_engine *e,
			       const char *by)
{
	char token[2 * USER_TOKEN_BYTES + 1], hex[65];
	struct vd_buf k = VD_BUF_INIT(128);
	vd_catalog_batch *b = NULL;
	json_t *rec = NULL;
	int rc;
	(void)why;
	if ((rc = new_token(token, hex)) || (rc = vd_catalog_batch_new(&b)))
		goto out;
	vd_buf_addf(&k, "et/%s", hex);
	rec = json_pack("{s:I, s:s}", "created", (json_int_t)vd_now_ms(), "by", by && *by ? by : "owner");
	if (!rec || (rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), rec)) ||
	    (rc = vd_engine_disk_note(e, vd_catalog_commit(e->cat, b, true)))) {
		rc = rc ? rc : -ENOMEM;
		goto out;
	}
	vd_info("executor enrollment token made (by %s)", by && *by ? by : "owner");
	*reply = json_pack("{s:s, s:s}", "kind", "executor", "token", token);
	rc = *reply ? 0 : -ENOMEM;
out:
	json_decref(rec);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_task_owner(char owner[VD_EXECUTOR_NAME_SIZE], vd_engine *e, const char *task)
{
	json_t *t = NULL;
	int rc = vd_engine_task_json(&t, e, task);
	owner[0] = '\0';
	if (!rc) {
		const char *o = json_string_value(json_object_get(t, "owner"));
		snprintf(owner, VD_EXECUTOR_NAME_SIZE, "%s", o ? o : "");
	}
	json_decref(t);
	return rc;
}

int vd_engine_api_task_create(json_t **reply, struct vd_buf *why, vd_engine *e,
			      const char *owner, const json_t *body)
{
	const char *name = json_string_value(json_object_get(body, "name"));
	int rc;
	if (!name || !vd_engine_name_valid(name)) {
		vd_buf_adds(why, "'name' must be a valid task name (1 to 255 bytes, no '/', no "
			    "control characters, not . or ..)");
		return -EINVAL;
	}
	if ((rc = vd_engine_task_create_owned(e, name, owner))) {
		if (rc == -EEXIST)
			vd_buf_addf(why, "task %s exists", name);
		return rc;
	}
	*reply = json_pack("{s:s, s:s}", "name", name, "owner", owner && *owner ? owner : "");
	return *reply ? 0 : -ENOMEM;
}
