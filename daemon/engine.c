/*
 * engine.c - opening the state directory; tasks, code versions and configs.
 *
 * The state directory holds:
 *   secret     the store's ID key (192 random bytes, 0600)
 *   token      the enrollment token executors present (0600)
 *   catalog/   the RocksDB database (docs/catalog.md)
 *   packs/     the chunk store's pack files
 *   spill/     reduce = sum's temporary files (engine_reduce_sum.c),
 *              emptied at open
 * Everything else (the mount's staging area, the url file) belongs to vdfsd.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "config_keys.h"
#include "engine_int.h"

void vd_engine_key(struct vd_buf *out, const char *prefix, const char *a,
		   const char *b, const char *c)
{
	/* Keys are built from validated names (no '/', bounded length), so
	 * the cap is never reached in practice; a failed append leaves a
	 * truncated key that simply matches nothing. */
	vd_buf_reset(out);
	vd_buf_adds(out, prefix);
	const char *parts[3] = { a, b, c };
	for (int i = 0; i < 3 && parts[i]; i++) {
		vd_buf_add(out, "/", 1);
		vd_buf_adds(out, parts[i]);
	}
}

/* ---- the state disk's space ------------------------------------------- */

/*
 * A full state disk is a condition to wait out, not a failure: a result or
 * a seal refused for want of space is sent or tried again, and the work
 * goes on once space is back (docs/engine.md, "A full state disk"). What
 * the engine keeps is only whether the last write to the disk failed that
 * way, so that status, log and /metrics can say why nothing moves.
 */
bool vd_engine_no_space(int rc)
{
	return rc == -ENOSPC || rc == -EDQUOT;
}

uint64_t vd_engine_disk_free(vd_engine *e)
{
	struct statvfs s;
	if (statvfs(e->state, &s) < 0)
		return 0;
	return (uint64_t)s.f_bavail * s.f_frsize;
}

int vd_engine_disk_note(vd_engine *e, int rc)
{
	if (vd_engine_no_space(rc)) {
		if (!atomic_exchange(&e->disk_full, true))
			vd_warn("state disk %s is full (%llu bytes free): results and "
				"submissions wait until there is space", e->state,
				(unsigned long long)vd_engine_disk_free(e));
	} else if (rc == 0 && atomic_load(&e->disk_full)) {
		if (atomic_exchange(&e->disk_full, false))
			vd_info("state disk %s has space again (%llu bytes free)", e->state,
				(unsigned long long)vd_engine_disk_free(e));
	}
	return rc;
}

int vd_engine_space_check(vd_engine *e, uint64_t n)
{
	int rc = vd_store_space_check(e->store, n);
	return rc ? vd_engine_disk_note(e, rc) : 0;
}

int vd_engine_disk_status(struct vd_buf *out, vd_engine *e)
{
	if (!atomic_load(&e->disk_full))
		return 0;
	return vd_buf_addf(out, ": waiting: state disk full (%llu bytes free)",
			   (unsigned long long)vd_engine_disk_free(e));
}

bool vd_engine_name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 255)
		return false;
	if (!strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '/' || ch < 0x20 || ch == 0x7f)
			return false;
	}
	return true;
}

/* ---- config ------------------------------------------------------------ */

void vd_config_default(struct vd_config *c)
{
	c->level = 1;
	c->reduce = VD_REDUCE_CONCAT;
	c->format = VD_FORMAT_LINES;
	c->timeout_s = 300;
	c->memory = 2ull << 30;
	c->retries = 3;
	c->replicas = 1;
	c->settle_ms = 2000;
	c->rerun = VD_RERUN_LATEST;
	c->allow_empty = false;
	c->unit_size = 8u << 20;
	snprintf(c->encoding, sizeof c->encoding, "auto");
	c->env[0] = '\0';
	c->symlinks = VD_SYMLINKS_KEEP;
	c->special = VD_SPECIAL_REFUSE;
	c->mode = VD_MODE_EXEC;
	c->keep_n = 0;
	c->keep_ms = 0;
}

bool vd_config_runs_equal(const struct vd_config *a, const struct vd_config *b)
{
	/* Every field but retention, which only gc reads, and the mode, which
	 * changes how units run, not what they give: a run made in one mode
	 * stands for the other. */
	return a->level == b->level && a->reduce == b->reduce && a->format == b->format &&
	       a->timeout_s == b->timeout_s && a->memory == b->memory &&
	       a->retries == b->retries && a->replicas == b->replicas &&
	       a->settle_ms == b->settle_ms && a->rerun == b->rerun &&
	       a->allow_empty == b->allow_empty && a->unit_size == b->unit_size &&
	       !strcmp(a->encoding, b->encoding) && !strcmp(a->env, b->env) &&
	       a->symlinks == b->symlinks && a->special == b->special;
}

/* `env.NAME = value`: NAME a portable environment name, not VDFS_* (those
 * are vdfs's own) nor one of the few that would change how the function is
 * found or loaded. */
static int config_env(struct vd_config *c, struct vd_buf *why, const char *name,
		      const char *val)
{
	static const char *reserved[] = { "PATH", "HOME", "TMPDIR" };
	size_t n = strlen(name);
	bool ok = n > 0 && n <= 64 && !(name[0] >= '0' && name[0] <= '9');
	for (size_t i = 0; ok && i < n; i++)
		ok = (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= 'a' && name[i] <= 'z') ||
		     (name[i] >= '0' && name[i] <= '9') || name[i] == '_';
	if (!ok) {
		vd_buf_addf(why, "env.%s: not a valid environment variable name", name);
		return -EINVAL;
	}
	for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
		ok = ok && strcmp(name, reserved[i]);
	if (!ok || !strncmp(name, "VDFS_", 5) || !strncmp(name, "LD_", 3)) {
		vd_buf_addf(why, "env.%s: that variable is vdfs's to set", name);
		return -EINVAL;
	}
	for (const char *v = val; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f) {
			vd_buf_addf(why, "env.%s: the value has a control character", name);
			return -EINVAL;
		}
	size_t used = strlen(c->env);
	int len = snprintf(c->env + used, sizeof c->env - used, "%s=%s\n", name, val);
	if (len < 0 || (size_t)len >= sizeof c->env - used) {
		c->env[used] = '\0';
		vd_buf_addf(why, "env.%s: env lines add up to more than %zu bytes", name,
			    sizeof c->env - 1);
		return -EINVAL;
	}
	return 0;
}

static int parse_int(long *out, const char *v, long lo, long hi)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_size(uint64_t *out, const char *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || v[0] == '-')
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if ((*end == 'i' || *end == 'B') && shift)
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end || x == 0 || x > (1ull << 40) >> shift)
		return -EINVAL;
	*out = x << shift;
	return 0;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* One `key = value` line into c. -EINVAL with the reason in why. */
/* `keep = all | N | AGE`: retention (engine_delete.c). AGE is a number
 * with a unit, s m h d or w (30d); N a count of newest versions, 1 or more
 * (latest is always kept, so 0 would mean nothing different). */
static int config_keep(struct vd_config *c, const char *val)
{
	static const struct { char unit; int64_t ms; } units[] = {
		{ 's', 1000 }, { 'm', 60000 }, { 'h', 3600000 }, { 'd', 86400000 },
		{ 'w', 7 * 86400000LL },
	};
	c->keep_n = 0;
	c->keep_ms = 0;
	if (!strcmp(val, "all"))
		return 0;
	char *end;
	errno = 0;
	long long n = strtoll(val, &end, 10);
	if (errno || end == val || n < 1 || n > 1000000000LL || val[0] == '+')
		return -EINVAL;
	if (!*end) {
		c->keep_n = n;
		return 0;
	}
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (end[0] == units[i].unit && !end[1] && n <= INT64_MAX / units[i].ms) {
			c->keep_ms = n * units[i].ms;
			return 0;
		}
	return -EINVAL;
}

static int config_line(struct vd_config *c, struct vd_buf *why, char *key,
		       char *val)
{
	long x;
	/* config_keys.c's table is the list of keys: one without a row is
	 * refused here, so what is printed from it (vdfs help config,
	 * vdfs-config(5)) names every key this accepts. */
	if (!vd_config_key_find(key)) {
		vd_buf_addf(why, "unknown key '%s' (known:", key);
		for (const struct vd_config_key *k = vd_config_keys; k->name; k++)
			vd_buf_addf(why, "%s %s%s", k == vd_config_keys ? "" : ",", k->name,
				    k->name[strlen(k->name) - 1] == '.' ? "NAME" : "");
		vd_buf_adds(why, ")");
		return -EINVAL;
	}
	if (!strcmp(key, "level")) {
		if (parse_int(&x, val, 1, 5))
			goto bad_range;
		c->level = (int)x;
	} else if (!strcmp(key, "reduce")) {
		if (!strcmp(val, "concat"))
			c->reduce = VD_REDUCE_CONCAT;
		else if (!strcmp(val, "sum"))
			c->reduce = VD_REDUCE_SUM;
		else
			goto bad_choice;
	} else if (!strcmp(key, "format")) {
		if (!strcmp(val, "lines"))
			c->format = VD_FORMAT_LINES;
		else if (!strcmp(val, "csv"))
			c->format = VD_FORMAT_CSV;
		else if (!strcmp(val, "whole"))
			c->format = VD_FORMAT_WHOLE;
		else
			goto bad_choice;
	} else if (!strcmp(key, "timeout")) {
		if (parse_int(&x, val, 1, 7 * 86400))
			goto bad_range;
		c->timeout_s = (int)x;
	} else if (!strcmp(key, "retries")) {
		if (parse_int(&x, val, 1, 100))
			goto bad_range;
		c->retries = (int)x;
	} else if (!strcmp(key, "replicas")) {
		if (parse_int(&x, val, 1, 5))
			goto bad_range;
		c->replicas = (int)x;
	} else if (!strcmp(key, "memory")) {
		if (parse_size(&c->memory, val) || c->memory < (1u << 20))
			goto bad_range;
	} else if (!strcmp(key, "settle")) {
		char *end;
		errno = 0;
		double s = strtod(val, &end);
		if (errno || end == val || *end || !(s >= 0 && s <= 3600))
			goto bad_range;
		c->settle_ms = (int)(s * 1000.0 + 0.5);
	} else if (!strcmp(key, "keep")) {
		if (config_keep(c, val))
			goto bad_range;
	} else if (!strcmp(key, "rerun")) {
		if (!strcmp(val, "latest"))
			c->rerun = VD_RERUN_LATEST;
		else if (!strcmp(val, "none"))
			c->rerun = VD_RERUN_NONE;
		else
			goto bad_choice;
	} else if (!strcmp(key, "allow_empty")) {
		if (!strcmp(val, "true") || !strcmp(val, "yes") || !strcmp(val, "1"))
			c->allow_empty = true;
		else if (!strcmp(val, "false") || !strcmp(val, "no") || !strcmp(val, "0"))
			c->allow_empty = false;
		else
			goto bad_choice;
	} else if (!strcmp(key, "mode")) {
		if (!strcmp(val, "exec"))
			c->mode = VD_MODE_EXEC;
		else if (!strcmp(val, "persistent"))
			c->mode = VD_MODE_PERSISTENT;
		else
			goto bad_choice;
	} else if (!strcmp(key, "encoding")) {
		if (strcmp(val, "auto") && strcmp(val, "utf-8") && strcmp(val, "gb18030") &&
		    strcmp(val, "big5"))
			goto bad_choice;
		snprintf(c->encoding, sizeof c->encoding, "%s", val);
	} else if (!strncmp(key, "env.", 4)) {
		return config_env(c, why, key + 4, val);
	} else if (!strcmp(key, "unit_size")) {
		if (parse_size(&c->unit_size, val) || c->unit_size < 4096)
			goto bad_range;
	} else if (!strcmp(key, "symlinks")) {
		if (!strcmp(val, "keep"))
			c->symlinks = VD_SYMLINKS_KEEP;
		else if (!strcmp(val, "skip"))
			c->symlinks = VD_SYMLINKS_SKIP;
		else if (!strcmp(val, "follow-inside-tree"))
			c->symlinks = VD_SYMLINKS_FOLLOW;
		else
			goto bad_choice;
	} else if (!strcmp(key, "special")) {
		if (!strcmp(val, "refuse"))
			c->special = VD_SPECIAL_REFUSE;
		else if (!strcmp(val, "skip"))
			c->special = VD_SPECIAL_SKIP;
		else
			goto bad_choice;
	} else {
		vd_buf_addf(why, "unknown key '%s'", key);
		return -EINVAL;
	}
	return 0;
bad_range:
	vd_buf_addf(why, "%s: '%s' is not a valid value", key, val);
	return -EINVAL;
bad_choice:
	vd_buf_addf(why, "%s: '%s' is not one of the allowed values", key, val);
	return -EINVAL;
}

int vd_config_parse(struct vd_config *out, struct vd_buf *why, const char *text,
		    size_t n)
{
	struct vd_config c;
	struct vd_buf line = VD_BUF_INIT(VD_CONFIG_MAX);
	int rc = 0, lineno = 0;
	vd_config_default(&c);
	if (memchr(text, '\0', n)) {
		vd_buf_adds(why, "config contains a NUL byte");
		return -EINVAL;
	}
	for (size_t pos = 0; pos < n;) {
		const char *nl = memchr(text + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (text + pos)) : n - pos;
		lineno++;
		vd_buf_reset(&line);
		if ((rc = vd_buf_add(&line, text + pos, len)))
			goto out;
		pos += len + (nl ? 1 : 0);
		char *s = trim(line.data ? line.data : (char *)"");
		if (!*s || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			vd_buf_addf(why, "line %d: expected 'key = value'", lineno);
			rc = -EINVAL;
			goto out;
		}
		*eq = '\0';
		char *key = trim(s), *val = trim(eq + 1);
		char *hash = strchr(val, '#');
		if (hash) {
			*hash = '\0';
			val = trim(val);
		}
		size_t mark = why->len;
		vd_buf_addf(why, "line %d: ", lineno);
		if ((rc = config_line(&c, why, key, val)))
			goto out;
		why->len = mark;     /* no error: drop the prefix again */
		if (why->data)
			why->data[mark] = '\0';
	}
	*out = c;
out:
	vd_buf_release(&line);
	return rc;
}

void vd_config_output_key(struct vd_buf *out, const struct vd_config *c)
{
	static const char *formats[] = { "lines", "csv", "whole" };
	vd_buf_addf(out, "format=%s\nallow_empty=%d\nencoding=%s\n%s", formats[c->format],
		    c->allow_empty ? 1 : 0, c->encoding, c->env);
	/* A replicated result is vouched for by several executors; one
	 * computed once must not stand in for it. (Only > 1 is added, so
	 * results of unreplicated runs keep their keys.) */
	if (c->replicas > 1)
		vd_buf_addf(out, "replicas=%d\n", c->replicas);
}

/* ---- tasks --------------------------------------------------------------- */

/* vd_engine_task_note with the lock held. */
static void task_note_locked(vd_engine *e, const char *task, const char *msg)
{
	vd_catalog_batch *b = NULL;
	json_t *t = NULL;
	if (vd_engine_task_json(&t, e, task) == 0 && vd_catalog_batch_new(&b) == 0) {
		const char *latest = json_string_value(json_object_get(t, "latest"));
		const char *code = json_string_value(json_object_get(t, "code"));
		if (latest) {
			vd_engine_log_add(b, e, task, latest, code ? code : "--------", "%s", msg);
			vd_catalog_commit(e->cat, b, false);
		}
	}
	vd_catalog_batch_free(b);
	json_decref(t);
}

int vd_engine_task_json(json_t **out, vd_engine *e, const char *task)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	int rc;
	if (!vd_engine_name_valid(task))
		return -ENOENT;
	vd_engine_key(&k, "t", task, NULL, NULL);
	rc = vd_catalog_get_json(out, e->cat, vd_buf_cstr(&k));
	vd_buf_release(&k);
	return rc;
}

int vd_engine_task_config(struct vd_config *out, char **text, vd_engine *e,
			  const char *task)
{
	json_t *t = NULL;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	const char *cfg = json_string_value(json_object_get(t, "config"));
	if (!cfg)
		cfg = "";
	struct vd_buf why = VD_BUF_INIT(1024);
	/* Stored configs were validated when written; a failure here would
	 * mean a damaged catalog, and defaults are the safest reading. */
	if (vd_config_parse(out, &why, cfg, strlen(cfg))) {
		vd_warn("task %s: stored config no longer parses: %s", task,
			vd_buf_cstr(&why));
		vd_config_default(out);
	}
	vd_buf_release(&why);
	if (text) {
		*text = strdup(cfg);
		if (!*text)
			rc = -ENOMEM;
	}
	json_decref(t);
	return rc;
}

int vd_engine_task_create(vd_engine *e, const char *task)
{
	return vd_engine_task_create_owned(e, task, NULL);
}

/* A local owner to record with a new task, or none (NULL). */
struct task_uid {
	uid_t uid;
	gid_t gid;
};

static int task_create(vd_engine *e, const char *task, const char *owner,
		       const struct task_uid *local);

int vd_engine_task_create_owned(vd_engine *e, const char *task, const char *owner)
{
	return task_create(e, task, owner, NULL);
}

int vd_engine_task_create_uid(vd_engine *e, const char *task, uid_t uid, gid_t gid)
{
	return task_create(e, task, NULL, &(struct task_uid){ .uid = uid, .gid = gid });
}

/* A uid or gid as recorded: a JSON integer in [0, 2^32 - 1), since
 * (uid_t)-1 means "no change" to chown(2) and is no owner. */
static bool id_of_json(json_int_t *out, const json_t *j)
{
	if (!json_is_integer(j))
		return false;
	json_int_t x = json_integer_value(j);
	if (x < 0 || x >= (json_int_t)UINT32_MAX)
		return false;
	*out = x;
	return true;
}

int vd_engine_task_uid(uid_t *uid, gid_t *gid, vd_engine *e, const char *task)
{
	json_t *t = NULL;
	json_int_t u, g;
	*uid = getuid();
	*gid = getgid();
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	/* Both or neither: a record with only one of them is damaged, and
	 * the daemon's own is the safe reading (only it and root may then
	 * change the task). */
	if (id_of_json(&u, json_object_get(t, "uid")) && id_of_json(&g, json_object_get(t, "gid"))) {
		*uid = (uid_t)u;
		*gid = (gid_t)g;
	}
	json_decref(t);
	return 0;
}

int vd_engine_task_set_uid(vd_engine *e, const char *task, uid_t uid, gid_t gid)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *t = NULL;
	int rc;
	if (uid == (uid_t)-1 || gid == (gid_t)-1)
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	if ((rc = vd_engine_task_json(&t, e, task)))
		goto out;
	if (json_object_set_new(t, "uid", json_integer((json_int_t)uid)) ||
	    json_object_set_new(t, "gid", json_integer((json_int_t)gid))) {
		rc = -ENOMEM;
		goto out;
	}
	vd_engine_key(&k, "t", task, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto out;
	rc = vd_catalog_commit(e->cat, b, true);
	if (!rc)
		vd_info("task %s: local owner now uid %ld gid %ld", task, (long)uid, (long)gid);
out:
	pthread_mutex_unlock(&e->lock);
	json_decref(t);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

static int task_create(vd_engine *e, const char *task, const char *owner,
		       const struct task_uid *local)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *t = NULL;
	int rc;
	if (!vd_engine_name_valid(task))
		return -EINVAL;
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	vd_engine_key(&k, "t", task, NULL, NULL);
	pthread_mutex_lock(&e->lock);
	rc = vd_catalog_has(e->cat, vd_buf_cstr(&k));
	if (rc != 0) {
		rc = rc > 0 ? -EEXIST : rc;
		goto out;
	}
	t = json_pack("{s:s, s:I, s:n, s:s, s:n, s:[]}", "name", task, "created",
		      (json_int_t)vd_now_ms(), "code", "config", "", "latest",
		      "codes");
	if (!t) {
		rc = -ENOMEM;
		goto out;
	}
	if (owner && *owner)
		json_object_set_new(t, "owner", json_string(owner));
	if (local && (json_object_set_new(t, "uid", json_integer((json_int_t)local->uid)) ||
		      json_object_set_new(t, "gid", json_integer((json_int_t)local->gid)))) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto out;
	rc = vd_catalog_commit(e->cat, b, true);
	if (!rc)
		vd_engine_event_task(e, task, "created");
	if (!rc && local)
		vd_info("task %s created by uid %ld", task, (long)local->uid);
	else if (!rc)
		vd_info("task %s created%s%s", task, owner && *owner ? " by " : "",
			owner && *owner ? owner : "");
out:
	pthread_mutex_unlock(&e->lock);
	json_decref(t);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

bool vd_engine_task_exists(vd_engine *e, const char *task)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	if (!vd_engine_name_valid(task))
		return false;
	vd_engine_key(&k, "t", task, NULL, NULL);
	bool yes = vd_catalog_has(e->cat, vd_buf_cstr(&k)) == 1;
	vd_buf_release(&k);
	return yes;
}

/* Collects the part of each key after a fixed prefix. */
static int collect_suffix(void *ctx, const char *key, size_t klen,
			  const char *val, size_t vlen)
{
	struct { struct vd_strv *sv; size_t skip; } *c = ctx;
	return vd_strv_pushn(c->sv, key + c->skip, klen - c->skip);
}

int vd_engine_list_suffix(struct vd_strv *out, vd_engine *e, const char *prefix)
{
	struct { struct vd_strv *sv; size_t skip; } c = { out, strlen(prefix) };
	return vd_catalog_scan(e->cat, prefix, collect_suffix, &c);
}

int vd_engine_task_list(struct vd_strv *out, vd_engine *e)
{
	return vd_engine_list_suffix(out, e, "t/");
}

int vd_engine_function_read(struct vd_buf *out, vd_engine *e, const char *task)
{
	json_t *t = NULL;
	char *val = NULL;
	size_t len;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	const char *code = json_string_value(json_object_get(t, "code"));
	if (code) {
		struct vd_buf k = VD_BUF_INIT(128);
		vd_engine_key(&k, "code", code, NULL, NULL);
		rc = vd_catalog_get(&val, &len, e->cat, vd_buf_cstr(&k));
		vd_buf_release(&k);
		if (!rc)
			rc = vd_buf_add(out, val, len);
	}
	free(val);
	json_decref(t);
	return rc;
}

/* Runs a new code version starts (lock held, adds to b, names in `made`):
 * every version that has no run yet (it waited for a function), and with
 * rerun = latest the latest version. */
static int runs_for_new_code(vd_catalog_batch *b, struct vd_strv *made,
			     vd_engine *e, const char *task, const json_t *t,
			     const char *code)
{
	struct vd_strv ids = { 0 };
	struct vd_config cfg;
	int rc;
	if ((rc = vd_engine_task_config(&cfg, NULL, e, task)))
		return rc;
	if ((rc = vd_engine_version_list(&ids, e, task)))
		goto out;
	const char *latest = json_string_value(json_object_get(t, "latest"));
	for (size_t i = 0; i < ids.n; i++) {
		struct vd_buf k = VD_BUF_INIT(1024);
		json_t *v = NULL;
		vd_engine_key(&k, "v", task, ids.v[i], NULL);
		rc = vd_catalog_get_json(&v, e->cat, vd_buf_cstr(&k));
		vd_buf_release(&k);
		if (rc)
			goto out;
		bool waiting = json_array_size(json_object_get(v, "runs")) == 0;
		bool is_latest = latest && !strcmp(latest, ids.v[i]);
		json_decref(v);
		if (!waiting && !(is_latest && cfg.rerun == VD_RERUN_LATEST))
			continue;
		rc = vd_engine_run_add(b, e, task, ids.v[i], code, NULL);
		if (rc < 0)
			goto out;
		if (rc > 0 && (rc = vd_strv_push(made, ids.v[i])))
			goto out;
	}
	rc = 0;
out:
	vd_strv_release(&ids);
	return rc;
}

int vd_engine_function_write(char code_id[VD_ID_SIZE], vd_engine *e,
			     const char *task, const void *p, size_t n)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct vd_strv made = { 0 };
	vd_catalog_batch *b = NULL;
	json_t *t = NULL;
	int rc;
	if (n > VD_CODE_MAX)
		return -EFBIG;
	vd_id_of(code_id, &e->key, p, n);
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	if ((rc = vd_engine_task_json(&t, e, task)))
		goto out;
	const char *cur = json_string_value(json_object_get(t, "code"));
	if (cur && !strcmp(cur, code_id)) {
		rc = 0;
		goto out;
	}
	vd_engine_key(&k, "code", code_id, NULL, NULL);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), p, n);
	json_object_set_new(t, "code", json_string(code_id));
	/* Each code ID once, in the order they were last made current: going
	 * back to an older code moves it to the end, keeping when it was
	 * first written. */
	json_t *codes = json_object_get(t, "codes"), *c;
	json_int_t first = (json_int_t)vd_now_ms();
	size_t ci;
	json_array_foreach(codes, ci, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		if (id && !strcmp(id, code_id)) {
			first = json_integer_value(json_object_get(c, "time"));
			json_array_remove(codes, ci);
			break;
		}
	}
	json_array_append_new(codes, json_pack("{s:s, s:I, s:I}", "id", code_id, "time",
					       first, "current_since", (json_int_t)vd_now_ms()));
	vd_engine_key(&k, "t", task, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto out;
	if ((rc = runs_for_new_code(b, &made, e, task, t, code_id)))
		goto out;
	if ((rc = vd_catalog_commit(e->cat, b, true)))
		goto out;
	vd_info("task %s: new code version %s (%zu bytes, %zu runs)", task,
		code_id, n, made.n);
	vd_engine_event_task(e, task, "function");
	/* exec(2) runs a script only with a #! line; without one every unit
	 * would fail with "Exec format error", which says little. */
	if (n && !(n >= 2 && !memcmp(p, "#!", 2)) && !(n >= 4 && !memcmp(p, "\177ELF", 4))) {
		vd_warn("task %s: the function has no #! line and is not a binary: executors "
			"cannot run it (start it with a line such as #!/bin/sh)", task);
		task_note_locked(e, task, "the function has no #! line and is not a binary: "
				 "executors cannot run it (start it with a line such as #!/bin/sh)");
	}
	for (size_t i = 0; i < made.n; i++)
		vd_engine_run_activate(e, task, made.v[i], code_id);
	rc = 1;
out:
	pthread_mutex_unlock(&e->lock);
	vd_strv_release(&made);
	json_decref(t);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_config_read(struct vd_buf *out, vd_engine *e, const char *task)
{
	json_t *t = NULL;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	const char *cfg = json_string_value(json_object_get(t, "config"));
	rc = vd_buf_adds(out, cfg ? cfg : "");
	json_decref(t);
	return rc;
}

void vd_engine_settling_set(vd_engine *e, const char *task, const char *name,
			    uint64_t files, uint64_t bytes, int64_t seals_at)
{
	pthread_mutex_lock(&e->lock);
	struct vd_settling *s = e->settling;
	while (s && (strcmp(s->task, task) || strcmp(s->name, name)))
		s = s->next;
	if (!s && (s = calloc(1, sizeof *s))) {
		snprintf(s->task, sizeof s->task, "%s", task);
		snprintf(s->name, sizeof s->name, "%s", name);
		s->next = e->settling;
		e->settling = s;
	}
	if (s) {
		s->files = files;
		s->bytes = bytes;
		s->seals_at = seals_at;
	}
	pthread_mutex_unlock(&e->lock);
}

void vd_engine_settling_clear(vd_engine *e, const char *task, const char *name)
{
	pthread_mutex_lock(&e->lock);
	for (struct vd_settling **pp = &e->settling; *pp; pp = &(*pp)->next) {
		struct vd_settling *s = *pp;
		if (!strcmp(s->task, task) && !strcmp(s->name, name)) {
			*pp = s->next;
			free(s);
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
}

int vd_engine_task_times(struct vd_task_times *out, vd_engine *e, const char *task,
			 const char *code_id)
{
	json_t *t = NULL, *c;
	size_t i;
	int rc = vd_engine_task_json(&t, e, task);
	if (rc)
		return rc;
	int64_t created = json_integer_value(json_object_get(t, "created"));
	const char *cur = json_string_value(json_object_get(t, "code"));
	*out = (struct vd_task_times){ created, created, created, created, created };
	json_t *x = json_object_get(t, "config_time");
	if (json_is_integer(x))
		out->config = json_integer_value(x);
	if ((x = json_object_get(t, "latest_time")) && json_is_integer(x))
		out->latest = json_integer_value(x);
	json_array_foreach(json_object_get(t, "codes"), i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		json_t *since = json_object_get(c, "current_since");
		int64_t first = json_integer_value(json_object_get(c, "time"));
		if (id && cur && !strcmp(id, cur))
			out->function = json_is_integer(since) ? json_integer_value(since) : first;
		if (id && code_id && !strcmp(id, code_id))
			out->code = first;
	}
	json_decref(t);
	return 0;
}

void vd_engine_task_note(vd_engine *e, const char *task, const char *fmt, ...)
{
	struct vd_buf msg = VD_BUF_INIT(4096);
	va_list ap;
	va_start(ap, fmt);
	vd_buf_vaddf(&msg, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&e->lock);
	task_note_locked(e, task, vd_buf_cstr(&msg));
	pthread_mutex_unlock(&e->lock);
	vd_buf_release(&msg);
}

int vd_engine_config_check(struct vd_buf *why, vd_engine *e, const void *p, size_t n)
{
	struct vd_config cfg;
	int rc = vd_config_parse(&cfg, why, p, n);
	/* A unit is whole chunks: one smaller than this store's chunks
	 * would silently be a chunk. */
	if (rc == 0 && cfg.unit_size < e->chunking.avg_size) {
		vd_buf_addf(why, "unit_size: %llu bytes is smaller than a chunk of this store "
			    "(%zu bytes on average); units are made of whole chunks",
			    (unsigned long long)cfg.unit_size, e->chunking.avg_size);
		rc = -EINVAL;
	}
	return rc;
}

int vd_engine_config_write(struct vd_buf *why, vd_engine *e, const char *task,
			   const void *p, size_t n)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	vd_catalog_batch *b = NULL;
	json_t *t = NULL;
	int rc;
	if (n > VD_CONFIG_MAX) {
		vd_buf_addf(why, "config is larger than %u bytes", VD_CONFIG_MAX);
		return -EFBIG;
	}
	if ((rc = vd_engine_config_check(why, e, p, n))) {
		vd_warn("task %s: config refused: %s", task, vd_buf_cstr(why));
		return rc;
	}
	if ((rc = vd_catalog_batch_new(&b)))
		return rc;
	pthread_mutex_lock(&e->lock);
	if ((rc = vd_engine_task_json(&t, e, task)))
		goto out;
	json_object_set_new(t, "config", json_stringn(p, n));
	json_object_set_new(t, "config_time", json_integer((json_int_t)vd_now_ms()));
	vd_engine_key(&k, "t", task, NULL, NULL);
	if ((rc = vd_catalog_batch_put_json(b, vd_buf_cstr(&k), t)))
		goto out;
	if (!(rc = vd_catalog_commit(e->cat, b, true)))
		vd_engine_event_task(e, task, "config");
out:
	pthread_mutex_unlock(&e->lock);
	/* Config is part of what a run computes: with rerun = latest a new
	 * config re-runs latest, as a new code does. */
	struct vd_config cfg;
	struct vd_buf ignored = VD_BUF_INIT(4096);
	if (rc == 0 && vd_config_parse(&cfg, &ignored, p, n) == 0 && cfg.rerun == VD_RERUN_LATEST)
		vd_engine_rerun_for_config(e, task);
	vd_buf_release(&ignored);
	json_decref(t);
	vd_catalog_batch_free(b);
	vd_buf_release(&k);
	return rc;
}

int vd_engine_settle_ms(vd_engine *e, const char *task)
{
	struct vd_config cfg;
	if (vd_engine_task_config(&cfg, NULL, e, task))
		vd_config_default(&cfg);
	return cfg.settle_ms;
}

/* ---- open and close -------------------------------------------------- */

/* STATE/token: 32 random bytes as hex, created once, 0600. */
static int load_token(vd_engine *e)
{
	struct vd_buf path = VD_BUF_INIT(PATH_MAX), tok = VD_BUF_INIT(256);
	int rc;
	vd_buf_addf(&path, "%s/token", e->state);
	rc = vd_read_file(&tok, vd_buf_cstr(&path));
	if (rc == -ENOENT) {
		unsigned char raw[32];
		char hex[66];
		if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
			rc = -EIO;
			goto out;
		}
		for (size_t i = 0; i < sizeof raw; i++)
			snprintf(hex + 2 * i, 3, "%02x", raw[i]);
		hex[64] = '\n';
		hex[65] = '\0';
		if ((rc = vd_write_file_atomic(vd_buf_cstr(&path), hex, 65, 0600)))
			goto out;
		vd_buf_reset(&tok);
		vd_buf_add(&tok, hex, 64);
	} else if (rc) {
		goto out;
	}
	while (tok.len && (tok.data[tok.len - 1] == '\n' || tok.data[tok.len - 1] == '\r'))
		tok.data[--tok.len] = '\0';
	if (tok.len < 16 || tok.len >= sizeof e->token) {
		vd_err("%s: token must be 16 to %zu characters", vd_buf_cstr(&path),
		       sizeof e->token - 1);
		rc = -EINVAL;
		goto out;
	}
	memcpy(e->token, tok.data, tok.len + 1);
	rc = 0;
out:
	vd_buf_release(&path);
	vd_buf_release(&tok);
	return rc;
}

/* The store's chunking parameters are fixed when the store is made (cuts
 * must stay the same for dedup to work) and kept in the catalog. */
static int load_chunking(vd_engine *e, size_t avg)
{
	json_t *j = NULL;
	vd_catalog_batch *b = NULL;
	int rc = vd_catalog_get_json(&j, e->cat, "meta/chunking");
	if (rc == 0) {
		e->chunking.min_size = json_integer_value(json_object_get(j, "min"));
		e->chunking.avg_size = json_integer_value(json_object_get(j, "avg"));
		e->chunking.max_size = json_integer_value(json_object_get(j, "max"));
		e->chunking.hard_max = json_integer_value(json_object_get(j, "hard_max"));
		rc = vd_chunker_params_check(&e->chunking);
		if (rc)
			vd_err("catalog: bad chunking parameters");
		goto out;
	}
	if (rc != -ENOENT)
		goto out;
	vd_chunker_params_default(&e->chunking);
	if (avg) {
		e->chunking.avg_size = avg;
		e->chunking.min_size = avg / 4;
		e->chunking.max_size = avg * 4;
	}
	if ((rc = vd_chunker_params_check(&e->chunking))) {
		vd_err("chunk size %zu is not a power of two >= 4096", avg);
		goto out;
	}
	j = json_pack("{s:I, s:I, s:I, s:I}", "min", (json_int_t)e->chunking.min_size,
		      "avg", (json_int_t)e->chunking.avg_size, "max",
		      (json_int_t)e->chunking.max_size, "hard_max",
		      (json_int_t)e->chunking.hard_max);
	if ((rc = vd_catalog_batch_new(&b)))
		goto out;
	if ((rc = vd_catalog_batch_put_json(b, "meta/chunking", j)))
		goto out;
	rc = vd_catalog_commit(e->cat, b, true);
out:
	vd_catalog_batch_free(b);
	json_decref(j);
	return rc;
}

int vd_engine_open(vd_engine **out, const struct vd_engine_opts *o)
{
	struct vd_buf p = VD_BUF_INIT(PATH_MAX);
	vd_engine *e = calloc(1, sizeof *e);
	int rc;
	if (!e)
		return -ENOMEM;
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->gc_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->work, &ca);
	pthread_cond_init(&e->tick, &ca);
	pthread_condattr_destroy(&ca);
	e->lease_ms = o->lease_ms > 0 ? o->lease_ms : 30000;
	e->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : e->lease_ms / 3;
	e->quarantine_ms = o->quarantine_ms > 0 ? o->quarantine_ms : 300000;
	e->upload_keep_ms = o->upload_keep_ms > 0 ? o->upload_keep_ms : (int64_t)86400 * 1000;
	e->started_mono = vd_mono_ms();
	if (!(e->state = strdup(o->state_dir))) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = vd_mkdir_p(e->state, 0700))) {
		vd_err("cannot create %s: %s", e->state, strerror(-rc));
		goto fail;
	}
	vd_buf_addf(&p, "%s/secret", e->state);
	if ((rc = vd_key_load_or_create(&e->key, vd_buf_cstr(&p)))) {
		vd_err("%s: %s", vd_buf_cstr(&p), strerror(-rc));
		goto fail;
	}
	if ((rc = load_token(e)))
		goto fail;
	vd_buf_reset(&p);
	vd_buf_addf(&p, "%s/catalog", e->state);
	if ((rc = vd_catalog_open(&e->cat, vd_buf_cstr(&p))))
		goto fail;
	if ((rc = load_chunking(e, o->chunk_avg)))
		goto fail;
	if ((rc = vd_engine_order_migrate(e)))
		goto fail;
	vd_buf_reset(&p);
	vd_buf_addf(&p, "%s/packs", e->state);
	if ((rc = vd_store_open(&e->store, vd_buf_cstr(&p), e->cat, &e->key)))
		goto fail;
	if (o->compress_level)
		vd_store_set_level(e->store, o->compress_level < 0 ? 0 : o->compress_level);
	/* What a reduce that spilled left when the daemon died (logged;
	 * spilling works without it). Before runs are loaded and finished. */
	vd_engine_reduce_sweep(e);
	/* Before the runs are loaded: loading one posts that it is queued. */
	if ((rc = vd_engine_events_open(e)))
		goto fail;
	if ((rc = vd_engine_sched_start(e)))
		goto fail;
	vd_buf_release(&p);
	*out = e;
	return 0;
fail:
	vd_buf_release(&p);
	vd_engine_close(e);
	return rc;
}

void vd_engine_close(vd_engine *e)
{
	if (!e)
		return;
	vd_engine_sched_stop(e);
	if (e->store)
		vd_store_close(e->store);
	if (e->cat)
		vd_catalog_close(e->cat);
	while (e->settling) {
		struct vd_settling *s = e->settling;
		e->settling = s->next;
		free(s);
	}
	vd_engine_events_close(e);
	pthread_cond_destroy(&e->work);
	pthread_cond_destroy(&e->tick);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->gc_lock);
	free(e->state);
	free(e);
}

const char *vd_engine_token(const vd_engine *e)
{
	return e->token;
}

void vd_engine_wake_all(vd_engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->work);
	pthread_mutex_unlock(&e->lock);
	vd_engine_events_stop(e);
}
