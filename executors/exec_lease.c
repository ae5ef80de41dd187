/*
 * exec_lease.c - what vdfs-executor takes from a lease the daemon sent
 * (docs/protocol.md, "POST /v1/leases"): its fields (jstr, jint), the
 * unit's environment and its limits and sandbox. Apart from exec_unit.c,
 * which fetches and runs, so that fuzz/fuzz_lease.c can feed it any
 * lease answer without a daemon or a process.
 */
#include "exec_int.h"

const char *jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

json_int_t jint(const json_t *o, const char *k, json_int_t dflt)
{
	const json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

int ex_env_add(struct vd_strv *env, const char *k, const char *v)
{
	struct vd_buf b = VD_BUF_INIT(1 << 16);
	int rc = vd_buf_addf(&b, "%s=%s", k, v);

	if (!rc)
		rc = vd_strv_push(env, b.data);
	vd_buf_release(&b);
	return rc;
}

bool ex_env_name_ok(const char *k)
{
	return *k && !strchr(k, '=');
}

/* The unit's own environment: who it is and the task's parameters. The
 * daemon vets the parameter names; anything that would override ours is
 * skipped. */
int ex_unit_env(struct vd_strv *env, const json_t *lj)
{
	char unitstr[32];
	const char *ek;
	json_t *ev;
	int rc;

	snprintf(unitstr, sizeof(unitstr), "%lld", (long long)jint(lj, "unit", 0));
	rc = ex_env_add(env, "VDFS_TASK", jstr(lj, "task"));
	if (!rc)
		rc = ex_env_add(env, "VDFS_DATA_ID", jstr(lj, "data_id"));
	if (!rc)
		rc = ex_env_add(env, "VDFS_CODE_ID", jstr(lj, "code_id"));
	if (!rc)
		rc = ex_env_add(env, "VDFS_UNIT", unitstr);
	if (!rc)
		rc = ex_env_add(env, "VDFS_PATH", jstr(lj, "path"));
	json_object_foreach(json_object_get(lj, "env"), ek, ev) {
		bool ours = !strcmp(ek, "VDFS_TASK") || !strcmp(ek, "VDFS_DATA_ID") ||
			    !strcmp(ek, "VDFS_CODE_ID") || !strcmp(ek, "VDFS_UNIT") ||
			    !strcmp(ek, "VDFS_PATH") || !strcmp(ek, "VDFS_MODE") ||
			    !strcmp(ek, "PATH") || !strcmp(ek, "TMPDIR");
		if (!rc && !ours && ex_env_name_ok(ek) && json_is_string(ev))
			rc = ex_env_add(env, ek, json_string_value(ev));
	}
	return rc;
}

/* The limits and sandbox every unit of lease l gets, within what this
 * machine lends; wrap (32 entries) is filled when --sandbox bwrap. */
void ex_unit_limits(struct vd_run_spec *spec, const char **wrap, struct exec *x,
		    const struct lease *l, const char *exe, const char *workdir)
{
	json_int_t timeout_s = jint(l->j, "timeout_s", EX_DEFAULT_TIMEOUT_S);
	json_int_t mem = jint(l->j, "memory_bytes", 0);

	if (timeout_s <= 0)
		timeout_s = EX_DEFAULT_TIMEOUT_S;
	/* The daemon sends config's timeout, at most a week (604800 s); a
	 * larger number from a server would overflow the deadline's ms. */
	if (timeout_s > 604800)
		timeout_s = 604800;
	memset(spec, 0, sizeof(*spec));
	spec->exe = exe;
	spec->path_first = x->selfdir;
	spec->cwd = workdir;
	spec->timeout_ms = (int64_t)timeout_s * 1000;
	spec->out_cap = x->out_cap;
	spec->cancel = (atomic_bool *)&l->cancel;
	spec->mem_limit = mem > 0 ? (uint64_t)mem : 0;
	if (x->max_memory && (!spec->mem_limit || spec->mem_limit > x->max_memory))
		spec->mem_limit = x->max_memory;
	spec->as_limit = x->as_limit;
	/* CPU time is a backstop behind the wall clock: a function may use
	 * every core for the whole timeout. */
	spec->cpu_limit_s = timeout_s * x->cores + 10;
	spec->fsize_limit = x->fsize_limit;
	spec->nofile_limit = x->nofile_limit;
	if (x->bwrap) {
		int n = 0;

		wrap[n++] = x->bwrap;
		wrap[n++] = "--die-with-parent";
		wrap[n++] = "--unshare-net";
		wrap[n++] = "--unshare-ipc";
		wrap[n++] = "--unshare-pid";
		wrap[n++] = "--unshare-uts";
		wrap[n++] = "--ro-bind";
		wrap[n++] = "/";
		wrap[n++] = "/";
		wrap[n++] = "--dev";
		wrap[n++] = "/dev";
		wrap[n++] = "--proc";
		wrap[n++] = "/proc";
		wrap[n++] = "--tmpfs";
		wrap[n++] = "/tmp";
		/* The code and our own directory (shipped functions on PATH)
		 * may live under /tmp, which the tmpfs hides. */
		wrap[n++] = "--ro-bind";
		wrap[n++] = exe;
		wrap[n++] = exe;
		wrap[n++] = "--ro-bind";
		wrap[n++] = x->selfdir;
		wrap[n++] = x->selfdir;
		wrap[n++] = "--bind";
		wrap[n++] = workdir;
		wrap[n++] = workdir;
		wrap[n++] = "--chdir";
		wrap[n++] = workdir;
		wrap[n++] = "--";
		wrap[n] = NULL;
		spec->wrap = wrap;
	}
}
