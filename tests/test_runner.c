/*
 * test_runner.c - the executor's child-process runner, with /bin/sh
 * functions: exit codes, stdin pieces, environment, deadline, stdout cap,
 * stderr tail, exec failure, cancellation, stragglers, the memory, CPU,
 * file size and open-file limits, a wrapper (sandbox) command, and
 * processes that leave the unit's process group (setsid, double fork,
 * SIGTERM ignored) killed when the unit ends, but not while it runs;
 * pieces from zstd frames (a chunk cached compressed), as a file and
 * through the pipe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"
#include "util.h"
#include "zframe.h"

struct fixture {
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_runner.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

/* Whether process pid is one of the strays the tests start: every one
 * has "299.5" (a sleep) or "vdfs-stray" (a shell's $0) in its arguments,
 * so that a PID reused by a stranger is never killed. */
static bool is_test_stray(long pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return strstr(buf, "299.5") || strstr(buf, "vdfs-stray");
}

/* The PIDs listed in file (one a line), how many, and how many of them
 * are still strays of ours; with kill_them, SIGKILL those. */
static int strays_alive(const char *file, int *listed, bool kill_them)
{
	FILE *fp = fopen(file, "r");
	long pid;
	int alive = 0;

	*listed = 0;
	if (!fp)
		return 0;
	while (fscanf(fp, "%ld", &pid) == 1) {
		(*listed)++;
		if (pid > 0 && is_test_stray(pid)) {
			alive++;
			if (kill_them)
				kill((pid_t)pid, SIGKILL);
		}
	}
	fclose(fp);
	return alive;
}

/* The same over every file in dir whose name starts with prefix. */
static int strays_alive_in(const char *dir, const char *prefix, int *listed,
			   bool kill_them)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int alive = 0;

	*listed = 0;
	while (d && (de = readdir(d)) != NULL) {
		char path[512];
		int n;

		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		alive += strays_alive(path, &n, kill_them);
		*listed += n;
	}
	if (d)
		closedir(d);
	return alive;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int n;

	/* A failed test must not leave its strays behind either. */
	strays_alive_in(f->dir, "pids", &n, true);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Install a shell script as f->dir/name and return its path (static buf). */
static const char *script(struct fixture *f, const char *name, const char *body)
{
	static char path[256];
	struct vd_buf b = VD_BUF_INIT(1 << 16);

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	assert_int_equal(vd_buf_addf(&b, "#!/bin/sh\n%s\n", body), 0);
	assert_int_equal(vd_runner_install(path, b.data, b.len, 0755), 0);
	vd_buf_release(&b);
	return path;
}

static void spec_init(struct vd_run_spec *s, const char *exe)
{
	memset(s, 0, sizeof(*s));
	s->exe = exe;
	s->timeout_ms = 10000;
	s->out_cap = 1 << 20;
}

static void test_exit_and_stdin(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	char file[256];
	struct vd_run_input in[2];

	snprintf(file, sizeof(file), "%s/data", f->dir);
	assert_int_equal(vd_write_file_atomic(file, "SKIPworld\n", 10, 0644), 0);
	in[0] = (struct vd_run_input){ .mem = "hello ", .len = 6 };
	in[1] = (struct vd_run_input){ .file = file, .off = 4, .len = 6 };
	spec_init(&s, script(f, "f", "cat; echo oops >&2; exit 3"));
	s.in = in;
	s.nin = 2;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 3);
	assert_int_equal(r.signal, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.out.len, 12);
	assert_memory_equal(r.out.data, "hello world\n", 12);
	assert_string_equal(r.err, "oops\n");
	vd_run_result_release(&r);
}

/* stdin_dir: the same pieces arrive as a regular file the function can
 * seek in (read twice here), and nothing is left behind in the directory. */
static void test_stdin_file(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	char file[256], dir[256];
	struct vd_run_input in[3];

	snprintf(file, sizeof(file), "%s/data", f->dir);
	snprintf(dir, sizeof(dir), "%s/unit", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(vd_write_file_atomic(file, "SKIPworld\nTAIL", 14, 0644), 0);
	in[0] = (struct vd_run_input){ .mem = "hello ", .len = 6 };
	in[1] = (struct vd_run_input){ .file = file, .off = 4, .len = 6 };
	in[2] = (struct vd_run_input){ .mem = "", .len = 0 };
	spec_init(&s, script(f, "f", "test -f /dev/stdin || exit 9; cat; "
			     "cat /dev/stdin; ls -A | wc -l"));
	s.in = in;
	s.nin = 3;
	s.stdin_dir = dir;
	s.cwd = dir;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	/* cat reads it, then /dev/stdin opens it afresh from offset 0. */
	assert_int_equal(r.out.len, 26);
	assert_memory_equal(r.out.data, "hello world\nhello world\n0\n", 26);
	vd_run_result_release(&r);

	/* A piece past the end of its file fails the run's set-up. */
	in[1].len = 60;
	assert_int_equal(vd_runner_run(&r, &s), -EIO);
	vd_run_result_release(&r);
}

/* A piece that is a zstd frame (a chunk cached compressed) arrives
 * decompressed, from its raw offset on, across many of the decoder's
 * windows, as a file and through the pipe; a frame cut short fails the
 * file's set-up like a short file, and cuts the pipe's stdin short. */
static void test_stdin_zstd(void **state)
{
	struct fixture *f = *state;
	size_t n = 3u << 20, i;
	char *raw = malloc(n), file[256], dir[256], want[256];
	struct vd_buf z = VD_BUF_INIT(n);
	struct vd_run_input in[3];
	struct vd_run_spec s;
	struct vd_run_result r;
	unsigned seed = 5;

	assert_non_null(raw);
	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		raw[i] = (seed >> 16) % 11 ? (char)('a' + (seed >> 20) % 6) : '\n';
	}
	assert_int_equal(vd_zframe_compress(&z, raw, n, 3), 1);
	snprintf(file, sizeof(file), "%s/chunk.zst", f->dir);
	snprintf(want, sizeof(want), "%s/want", f->dir);
	snprintf(dir, sizeof(dir), "%s/unit", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(vd_write_file_atomic(file, z.data, z.len, 0644), 0);
	/* What stdin must be: "head:" then the raw bytes from 1000 on. */
	{
		struct vd_buf w = VD_BUF_INIT(n + 16);

		assert_int_equal(vd_buf_adds(&w, "head:"), 0);
		assert_int_equal(vd_buf_add(&w, raw + 1000, n - 1000), 0);
		assert_int_equal(vd_write_file_atomic(want, w.data, w.len, 0644), 0);
		vd_buf_release(&w);
	}
	in[0] = (struct vd_run_input){ .mem = "head:", .len = 5 };
	in[1] = (struct vd_run_input){ .file = file, .off = 1000, .len = n - 1000,
				       .zstd = true };
	in[2] = (struct vd_run_input){ .file = file, .off = 7, .len = 0, .zstd = true };
	for (int pipe_mode = 0; pipe_mode < 2; pipe_mode++) {
		struct vd_buf cmd = VD_BUF_INIT(1024);

		assert_int_equal(vd_buf_addf(&cmd, "cmp - %s && echo same", want), 0);
		spec_init(&s, script(f, pipe_mode ? "fp" : "ff", cmd.data));
		vd_buf_release(&cmd);
		s.in = in;
		s.nin = 3;
		s.stdin_dir = pipe_mode ? NULL : dir;
		s.cwd = dir;
		assert_int_equal(vd_runner_run(&r, &s), 0);
		assert_int_equal(r.exit, 0);
		assert_int_equal(r.out.len, 5);
		assert_memory_equal(r.out.data, "same\n", 5);
		vd_run_result_release(&r);
	}
	/* A frame cut short. */
	assert_int_equal(vd_write_file_atomic(file, z.data, z.len / 2, 0644), 0);
	spec_init(&s, script(f, "fc", "wc -c"));
	s.in = in;
	s.nin = 3;
	s.stdin_dir = dir;
	assert_int_equal(vd_runner_run(&r, &s), -EIO);
	vd_run_result_release(&r);
	s.stdin_dir = NULL;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_true(r.out.len > 0);
	assert_true(strtoull(r.out.data, NULL, 10) < n - 1000 + 5);
	vd_run_result_release(&r);
	vd_buf_release(&z);
	free(raw);
}

static void test_env_and_cwd(void **state)
{
	struct fixture *f = *state;
	const char *env[] = { "VDFS_TASK=wc", "VDFS_UNIT=7", NULL };
	struct vd_run_spec s;
	struct vd_run_result r;
	struct vd_buf want = VD_BUF_INIT(4096);

	spec_init(&s, script(f, "f", "echo \"$VDFS_TASK $VDFS_UNIT\"; "
				     "echo \"${PATH%%:*}\"; pwd"));
	s.env = env;
	s.path_first = "/opt/first";
	s.cwd = f->dir;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_int_equal(vd_buf_addf(&want, "wc 7\n/opt/first\n%s\n", f->dir), 0);
	assert_string_equal(vd_buf_cstr(&r.out), want.data);
	vd_buf_release(&want);
	vd_run_result_release(&r);
}

static void test_timeout_kills_group(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	/* The sleep is a grandchild: killing only the shell would leave it
	 * holding stdout and the run would hang. */
	spec_init(&s, script(f, "f", "echo started; sleep 30; echo never"));
	s.timeout_ms = 300;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "timeout");
	assert_int_equal(r.exit, 137);
	assert_int_equal(r.signal, 9);
	assert_true(r.ms >= 300 && r.ms < 5000);
	assert_string_equal(vd_buf_cstr(&r.out), "started\n");
	vd_run_result_release(&r);
}

static void test_stdout_cap(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	spec_init(&s, script(f, "f", "yes flood"));
	s.out_cap = 1000;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "stdout cap");
	assert_int_equal(r.exit, 137);
	assert_true(r.out.len <= 1000);
	vd_run_result_release(&r);
}

/* A function that allocates without bound is stopped, and says so; one
 * that stays under the limit is not. */
static void test_memory_limit(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	spec_init(&s, script(f, "hog", "x=x; while :; do x=\"$x$x\"; done"));
	s.mem_limit = 64u << 20;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "memory limit");
	assert_true(r.exit != 0);
	assert_true(r.peak_rss >= s.mem_limit);
	vd_run_result_release(&r);

	spec_init(&s, script(f, "small", "x=$(head -c 4000000 /dev/zero | tr '\\0' x); "
			     "echo ${#x}"));
	s.mem_limit = 64u << 20;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "4000000\n");
	vd_run_result_release(&r);

	/* Failing for its own reasons under the limit is not the limit. */
	spec_init(&s, script(f, "fail", "exit 4"));
	s.mem_limit = 64u << 20;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.exit, 4);
	vd_run_result_release(&r);
}

static void test_rlimits(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	/* File size: the writer gets SIGXFSZ, directly or as the shell's child. */
	spec_init(&s, script(f, "big", "exec head -c 3000000 /dev/zero > big"));
	s.cwd = f->dir;
	s.fsize_limit = 1u << 20;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "file size limit");
	vd_run_result_release(&r);
	spec_init(&s, script(f, "big2", "head -c 3000000 /dev/zero > big2; exit $?"));
	s.cwd = f->dir;
	s.fsize_limit = 1u << 20;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "file size limit");
	vd_run_result_release(&r);

	/* Open files: what ulimit sees. */
	spec_init(&s, script(f, "nofile", "ulimit -n"));
	s.nofile_limit = 16;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "16\n");
	vd_run_result_release(&r);

	/* CPU: a busy loop is stopped after a second of CPU time. */
	spec_init(&s, script(f, "spin", "while :; do :; done"));
	s.cpu_limit_s = 1;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "cpu limit");
	assert_true(r.ms < 9000);
	vd_run_result_release(&r);
}

/* A wrapper command runs in front of the function (how a sandbox is put
 * around it). */
static void test_wrap(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	const char *const wrap[] = { "/usr/bin/env", "WRAPPED=yes", NULL };

	spec_init(&s, script(f, "w", "echo \"$WRAPPED\""));
	s.wrap = wrap;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "yes\n");
	vd_run_result_release(&r);
}

static void test_stderr_tail(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	/* 10000 lines of "x", then a marker: only the last 4 KiB are kept. */
	spec_init(&s, script(f, "f", "i=0; while [ $i -lt 10000 ]; do echo x; "
				     "i=$((i+1)); done >&2; echo END >&2"));
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_int_equal(r.errlen, VD_RUN_ERR_TAIL);
	assert_int_equal(strlen(r.err), VD_RUN_ERR_TAIL);
	assert_string_equal(r.err + VD_RUN_ERR_TAIL - 6, "x\nEND\n");
	vd_run_result_release(&r);
}

static void test_exec_failure(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	char path[256];

	snprintf(path, sizeof(path), "%s/missing", f->dir);
	spec_init(&s, path);
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 127);
	assert_string_equal(r.reason, "exec failed: No such file or directory");
	vd_run_result_release(&r);

	/* Not executable. */
	assert_int_equal(vd_write_file_atomic(path, "data", 4, 0644), 0);
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 127);
	assert_string_equal(r.reason, "exec failed: Permission denied");
	vd_run_result_release(&r);
}

static void test_ignores_stdin(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	struct vd_run_input in;
	size_t n = 8u << 20;
	char *big = malloc(n);

	assert_non_null(big);
	memset(big, 'a', n);
	in = (struct vd_run_input){ .mem = big, .len = n };
	spec_init(&s, script(f, "f", "echo ok"));
	s.in = &in;
	s.nin = 1;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "ok\n");
	vd_run_result_release(&r);
	free(big);
}

static void test_signal(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	spec_init(&s, script(f, "f", "kill -TERM $$"));
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.signal, 15);
	assert_int_equal(r.exit, 128 + 15);
	assert_string_equal(r.reason, "signal 15");
	vd_run_result_release(&r);
}

static void test_straggler(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;

	/* A background child keeps stdout open after the function exits;
	 * the run must end with the function, not with the straggler. */
	spec_init(&s, script(f, "f", "sleep 30 & echo done"));
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "done\n");
	assert_true(r.ms < 5000);
	vd_run_result_release(&r);
}

static void *cancel_later(void *arg)
{
	struct timespec ts = { 0, 200 * 1000 * 1000 };

	nanosleep(&ts, NULL);
	atomic_store((atomic_bool *)arg, true);
	return NULL;
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	atomic_bool cancel;
	pthread_t t;

	atomic_init(&cancel, false);
	spec_init(&s, script(f, "f", "sleep 30"));
	s.cancel = &cancel;
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &cancel), 0);
	assert_int_equal(vd_runner_run(&r, &s), 0);
	pthread_join(t, NULL);
	assert_true(r.cancelled);
	assert_string_equal(r.reason, "cancelled");
	assert_true(r.ms < 5000);
	vd_run_result_release(&r);
}

struct par {
	struct fixture *f;
	const char *exe;
	int ok;
};

static void *run_one(void *arg)
{
	struct par *p = arg;
	struct vd_run_spec s;
	struct vd_run_result r;
	struct vd_run_input in = { .mem = "1\n2\n3\n", .len = 6 };

	spec_init(&s, p->exe);
	s.in = &in;
	s.nin = 1;
	if (vd_runner_run(&r, &s) == 0 && r.exit == 0 &&
	    strcmp(vd_buf_cstr(&r.out), "3\n") == 0)
		p->ok = 1;
	vd_run_result_release(&r);
	return NULL;
}

static void test_parallel(void **state)
{
	struct fixture *f = *state;
	struct par p[8];
	pthread_t t[8];
	const char *exe = script(f, "wc", "wc -l | tr -d ' '");
	int i;

	for (i = 0; i < 8; i++) {
		p[i] = (struct par){ f, exe, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, run_one, &p[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].ok, 1);
	}
}

/* A function body that starts three strays, each writing its PID to
 * `pids` once it has left the unit's session: a setsid'd sleep, a
 * double-forked setsid'd sleep, and a setsid'd shell that ignores SIGTERM,
 * SIGHUP and SIGINT, with a sleep of its own. It waits until all four PIDs
 * are written (else killing the group could still catch them). None has
 * the unit's stdio. */
#define STRAY_SLEEP(pids) \
	"setsid sh -c 'echo $$ >>\"$1\"; exec sleep 299.5' vdfs-stray " pids
#define STRAYS_BODY(pids)                                                      \
	"P=" pids "; : >>$P\n"                                                       \
	STRAY_SLEEP("$P") " </dev/null >/dev/null 2>&1 &\n"                     \
	"( " STRAY_SLEEP("$P") " </dev/null >/dev/null 2>&1 & )\n"              \
	"setsid sh -c 'trap \"\" TERM HUP INT; sleep 299.5 & echo $! >>\"$1\"; " \
	"echo $$ >>\"$1\"; wait' vdfs-stray $P </dev/null >/dev/null 2>&1 &\n"   \
	"n=0; while [ \"$(wc -l <$P)\" -lt 4 ] && [ $n -lt 400 ]; do "          \
	"sleep 0.05; n=$((n+1)); done\n"

/* Processes that left the unit's process group die with the unit, whether
 * it exits, or is killed for its deadline. */
static void test_strays_killed(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	char pids[256], body[2048];
	int listed;

	snprintf(pids, sizeof(pids), "%s/pids-exit", f->dir);
	snprintf(body, sizeof(body), STRAYS_BODY("%s") "echo ok", pids);
	spec_init(&s, script(f, "f", body));
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "ok\n");
	vd_run_result_release(&r);
	/* vd_runner_run returns once they are killed and reaped: no wait. */
	assert_int_equal(strays_alive(pids, &listed, false), 0);
	assert_int_equal(listed, 4);

	snprintf(pids, sizeof(pids), "%s/pids-timeout", f->dir);
	snprintf(body, sizeof(body), STRAYS_BODY("%s") "echo ok; sleep 30", pids);
	spec_init(&s, script(f, "g", body));
	s.timeout_ms = 3000;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_string_equal(r.reason, "timeout");
	vd_run_result_release(&r);
	assert_int_equal(strays_alive(pids, &listed, false), 0);
	assert_int_equal(listed, 4);
}

/* A stray that keeps the unit's stdout open does not keep the run going:
 * it is killed when the function exits, and the pipe reaches EOF. */
static void test_stray_holds_stdout(void **state)
{
	struct fixture *f = *state;
	struct vd_run_spec s;
	struct vd_run_result r;
	char pids[256], body[2048];
	int listed;

	snprintf(pids, sizeof(pids), "%s/pids-stdout", f->dir);
	snprintf(body, sizeof(body),
		 "setsid sh -c 'echo $$ >>\"$1\"; sleep 20; :' vdfs-stray %s &\n"
		 "n=0; while [ ! -s %s ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n"
		 "echo done", pids, pids);
	spec_init(&s, script(f, "f", body));
	s.timeout_ms = 60000;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_string_equal(vd_buf_cstr(&r.out), "done\n");
	/* Not 20 s, as it would be if the run waited for the stray. */
	assert_true(r.ms < 15000);
	vd_run_result_release(&r);
	assert_int_equal(strays_alive(pids, &listed, false), 0);
	assert_int_equal(listed, 1);
}

struct stray_par {
	struct fixture *f;
	const char *exe;
	int code;          /* the exit code the function is to give */
	int bad;           /* runs that went wrong */
};

/* Short units, each leaving a stray and exiting with its own code: every
 * one ends a run, and so sweeps, while the helper test below runs. */
static void *run_strays(void *arg)
{
	struct stray_par *p = arg;
	char code[16];
	const char *env[] = { code, NULL };

	snprintf(code, sizeof(code), "CODE=%d", p->code);
	for (int i = 0; i < 20; i++) {
		struct vd_run_spec s;
		struct vd_run_result r;

		spec_init(&s, p->exe);
		s.env = env;
		if (vd_runner_run(&r, &s) != 0 || r.exit != p->code)
			p->bad++;
		vd_run_result_release(&r);
	}
	return NULL;
}

/* Several runs at once: the strays of the units that end are killed
 * while another unit still runs, yet that unit's own daemonized helper
 * (an orphan of a unit in progress) lives until the unit is done with it;
 * no run loses its exit status to another's sweep. */
static void test_strays_parallel(void **state)
{
	struct fixture *f = *state;
	struct stray_par p[4];
	pthread_t t[4];
	struct vd_run_spec s;
	struct vd_run_result r;
	char flag[256], body[1024], exe[256];
	int listed, i;

	snprintf(body, sizeof(body),
		 "D=$(mktemp %s/pids-par.XXXXXX)\n"
		 STRAY_SLEEP("$D") " </dev/null >/dev/null 2>&1 &\n"
		 "n=0; while [ ! -s $D ] && [ $n -lt 400 ]; do sleep 0.01; n=$((n+1)); done\n"
		 "exit $CODE", f->dir);
	/* script() returns a static buffer, which the helper reuses. */
	snprintf(exe, sizeof(exe), "%s", script(f, "short", body));
	for (i = 0; i < 4; i++) {
		p[i] = (struct stray_par){ f, exe, 3 + i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, run_strays, &p[i]), 0);
	}
	/* The helper leaves the group, becomes an orphan at once, and writes
	 * the flag after a while, which the function waits for. */
	snprintf(flag, sizeof(flag), "%s/flag", f->dir);
	snprintf(body, sizeof(body),
		 "( setsid sh -c 'sleep 1; echo ready >\"$1\"' vdfs-stray %s "
		 "</dev/null >/dev/null 2>&1 & )\n"
		 "n=0; while [ ! -s %s ] && [ $n -lt 400 ]; do sleep 0.05; n=$((n+1)); done\n"
		 "cat %s", flag, flag, flag);
	spec_init(&s, script(f, "helper", body));
	s.timeout_ms = 60000;
	assert_int_equal(vd_runner_run(&r, &s), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "ready\n");
	vd_run_result_release(&r);
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].bad, 0);
	}
	assert_int_equal(strays_alive_in(f->dir, "pids-par.", &listed, false), 0);
	assert_int_equal(listed, 80);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_exit_and_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdin_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdin_zstd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_env_and_cwd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_kills_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdout_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_exec_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ignores_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_straggler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parallel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rlimits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strays_killed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stray_holds_stdout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_strays_parallel, setup, teardown),
	};

	vd_runner_init();
	vd_log_init("test_runner", VD_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
