/*
 * test_persist.c - the persistent-function runner (persist.h) with a
 * Python function (standard library only) that speaks the frames of
 * docs/persistent.md: many units through one process, binary input
 * (NUL bytes, newlines, a frame-looking line, more than a pipe buffer)
 * echoed exactly, header values with an escaped newline and backslash
 * arriving decoded, an answer arriving in pieces, a unit the function
 * fails itself (the process stays), a crash mid-unit (exit, SIGSEGV, an
 * exit 0 without an answer), a timeout, cancellation, the memory limit,
 * the stdout cap, answers out of the protocol (a bad header line, none in
 * 48 bytes, a status over 255, bytes past the answer, an answer before
 * the frame was read), a process that ended before the unit (-EPIPE),
 * a function that closed its stderr (fails today: the unit spins), a
 * unit given no input pieces as in = NULL (fails under UBSan today),
 * exec failures at start, and freeing a live process (one that leaves at
 * EOF, one that does not), and NULL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "persist.h"
#include "runner.h"
#include "util.h"

/*
 * What the function does with a unit is its header's ACT: echo (the
 * default: the input back), pid (its PID), raw (the header bytes as they
 * came), vals (each NAME=value decoded, NUL-separated), mode (its
 * VDFS_MODE), fail (status 3, message "oops", "bad unit" on stderr), exit
 * (exit 7 after reading the unit), exit0 (exit 0 without answering), segv,
 * quiet (closes its stderr, answers "ok" after 2 s), sleep, big (an
 * answer of N bytes), mem (holds N bytes), say (writes X as
 * it is and waits), slow (answers "hello world" in pieces), bye (answers
 * its PID, then exits 0), early (answers before reading the input, then
 * waits). It checks the frame's shape and answers status 9 when it is
 * wrong. At EOF it writes "eof" to $MARK, and with ON_EOF=stay it does not
 * leave. No core dumps (the SIGSEGV test).
 */
static const char fn_py[] =
	"#!/usr/bin/python3\n"
	"import os, resource, signal, sys, time\n"
	"resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
	"inp, out = sys.stdin.buffer, sys.stdout.buffer\n"
	"def unesc(b):\n"
	"    r, i = bytearray(), 0\n"
	"    while i < len(b):\n"
	"        if b[i] == 92 and i + 1 < len(b):\n"
	"            r.append(10 if b[i + 1] == 110 else b[i + 1])\n"
	"            i += 2\n"
	"        else:\n"
	"            r.append(b[i])\n"
	"            i += 1\n"
	"    return bytes(r)\n"
	"def reply(st, b):\n"
	"    out.write(b'%d %d\\n' % (st, len(b)) + b)\n"
	"    out.flush()\n"
	"while True:\n"
	"    line = inp.readline()\n"
	"    if not line:\n"
	"        if 'MARK' in os.environ:\n"
	"            open(os.environ['MARK'], 'w').write('eof\\n')\n"
	"        if os.environ.get('ON_EOF') == 'stay':\n"
	"            time.sleep(300)\n"
	"        break\n"
	"    f = line.split(b' ')\n"
	"    if len(f) != 3 or f[0] != b'unit' or not line.endswith(b'\\n'):\n"
	"        reply(9, b'bad frame line: ' + line)\n"
	"        continue\n"
	"    raw = inp.read(int(f[1]))\n"
	"    env = []\n"
	"    if raw and not raw.endswith(b'\\n'):\n"
	"        reply(9, b'header does not end with a newline: ' + raw)\n"
	"        continue\n"
	"    for l in raw.split(b'\\n')[:-1]:\n"
	"        k, v = l.split(b'=', 1)\n"
	"        env.append((k, unesc(v)))\n"
	"    d = dict(env)\n"
	"    act = d.get(b'ACT', b'echo')\n"
	"    if act == b'early':\n"
	"        reply(0, b'early')\n"
	"        time.sleep(300)\n"
	"    data = inp.read(int(f[2]))\n"
	"    if len(data) != int(f[2]):\n"
	"        os._exit(5)\n"
	"    if act == b'echo':\n"
	"        reply(0, data)\n"
	"    elif act == b'pid':\n"
	"        reply(0, b'%d' % os.getpid())\n"
	"    elif act == b'raw':\n"
	"        reply(0, raw)\n"
	"    elif act == b'vals':\n"
	"        reply(0, b'\\0'.join(k + b'=' + v for k, v in env))\n"
	"    elif act == b'mode':\n"
	"        reply(0, os.environ.get('VDFS_MODE', '').encode())\n"
	"    elif act == b'fail':\n"
	"        sys.stderr.buffer.write(b'bad unit\\n')\n"
	"        sys.stderr.flush()\n"
	"        reply(3, b'oops')\n"
	"    elif act == b'exit':\n"
	"        os._exit(7)\n"
	"    elif act == b'exit0':\n"
	"        os._exit(0)\n"
	"    elif act == b'segv':\n"
	"        signal.signal(signal.SIGSEGV, signal.SIG_DFL)\n"
	"        os.kill(os.getpid(), signal.SIGSEGV)\n"
	"        time.sleep(300)\n"
	"    elif act == b'quiet':\n"
	"        os.close(2)\n"
	"        time.sleep(2)\n"
	"        reply(0, b'ok')\n"
	"    elif act == b'sleep':\n"
	"        time.sleep(300)\n"
	"    elif act == b'big':\n"
	"        reply(0, b'b' * int(d[b'N']))\n"
	"    elif act == b'mem':\n"
	"        m = b'\\1' * int(d[b'N'])\n"
	"        time.sleep(300)\n"
	"    elif act == b'say':\n"
	"        out.write(d[b'X'])\n"
	"        out.flush()\n"
	"        time.sleep(300)\n"
	"    elif act == b'slow':\n"
	"        for piece in (b'0', b' 1', b'1\\nhel', b'lo ', b'world'):\n"
	"            out.write(piece)\n"
	"            out.flush()\n"
	"            time.sleep(0.05)\n"
	"    elif act == b'bye':\n"
	"        reply(0, b'%d' % os.getpid())\n"
	"        os._exit(0)\n"
	"    else:\n"
	"        reply(9, b'unknown ACT ' + act)\n"
	;

#define LONG_MS 60000

struct fixture {
	char dir[64];
	char exe[128];
	char mark[128];
	char mark_env[160];
	const char *env[4];
	struct vd_run_spec start;
	vd_persist *p;
};

static void start_env(struct fixture *f, const char *extra)
{
	f->env[0] = "VDFS_MODE=persistent";
	f->env[1] = f->mark_env;
	f->env[2] = extra;
	f->env[3] = NULL;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_persist.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->exe, sizeof(f->exe), "%s/fn.py", f->dir);
	assert_int_equal(vd_runner_install(f->exe, fn_py, sizeof(fn_py) - 1, 0755), 0);
	snprintf(f->mark, sizeof(f->mark), "%s/mark", f->dir);
	snprintf(f->mark_env, sizeof(f->mark_env), "MARK=%s", f->mark);
	start_env(f, NULL);
	memset(&f->start, 0, sizeof(f->start));
	f->start.exe = f->exe;
	f->start.env = f->env;
	f->start.cwd = f->dir;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vd_persist_free(f->p);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static void start(struct fixture *f)
{
	vd_persist_free(f->p);
	f->p = NULL;
	assert_int_equal(vd_persist_start(&f->p, &f->start), 0);
	assert_non_null(f->p);
	assert_true(vd_persist_alive(f->p));
}

/* No pieces, but a valid array: in = NULL has a test of its own
 * (test_null_input). */
static const struct vd_run_input no_input = { .mem = "", .len = 0 };

/* A unit's limits: generous, so that a loaded machine does not fail it. */
static void unit_init(struct vd_run_spec *u, const struct vd_run_input *in, size_t nin)
{
	memset(u, 0, sizeof(*u));
	u->in = in;
	u->nin = nin;
	u->timeout_ms = LONG_MS;
	u->out_cap = 1 << 20;
}

/* One unit of n input bytes at data, header hdr, default limits. */
static int run(struct vd_run_result *r, struct fixture *f, const char *const *hdr,
	       const void *data, size_t n)
{
	struct vd_run_input in = { .mem = data, .len = n };
	struct vd_run_spec u;

	unit_init(&u, &in, 1);
	return vd_persist_run(r, f->p, hdr, &u);
}

/* Run ACT=act with no input. */
static int run_act(struct vd_run_result *r, struct fixture *f, const char *act)
{
	char a[64];
	const char *hdr[] = { a, NULL };

	snprintf(a, sizeof(a), "ACT=%s", act);
	return run(r, f, hdr, "", 0);
}

/* The PID the function answers with ACT=pid; the unit must succeed. */
static long fn_pid(struct fixture *f)
{
	struct vd_run_result r;
	long pid;

	assert_int_equal(run_act(&r, f, "pid"), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	pid = strtol(vd_buf_cstr(&r.out), NULL, 10);
	assert_true(pid > 1);
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
	return pid;
}

/* pid has been reaped (and so is not a zombie of ours either). */
static bool gone(long pid)
{
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Wait (bounded, not timed) until our child pid has exited unreaped. */
static bool became_zombie(long pid)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (int i = 0; i < 6000; i++) {
		FILE *fp = fopen(path, "r");
		char *rp;

		if (!fp)
			return false;
		buf[0] = '\0';
		if (!fgets(buf, sizeof(buf), fp))
			buf[0] = '\0';
		fclose(fp);
		rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

/* A result of a unit the runner killed: 137 / signal 9, reason. */
static void assert_killed(const struct vd_run_result *r, const char *reason)
{
	assert_string_equal(r->reason, reason);
	assert_int_equal(r->exit, 137);
	assert_int_equal(r->signal, SIGKILL);
}

/* Fifty units of every kind through one process: one PID throughout, each
 * answer its own unit's, VDFS_MODE from the start spec. */
static void test_many_units(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	char file[256], data[512], unit[64];
	long pid;

	start(f);
	pid = fn_pid(f);
	assert_int_equal(run_act(&r, f, "mode"), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "persistent");
	vd_run_result_release(&r);
	snprintf(file, sizeof(file), "%s/data", f->dir);
	assert_int_equal(vd_write_file_atomic(file, "SKIPfrom a file\nTAIL", 20, 0644), 0);
	for (int i = 0; i < 50; i++) {
		struct vd_run_input in[2];
		struct vd_run_spec u;
		const char *hdr[] = { unit, NULL };
		size_t n = 0;

		snprintf(unit, sizeof(unit), "VDFS_UNIT=%d", i);
		for (int k = 0; k < i % 7; k++)
			n += (size_t)snprintf(data + n, sizeof(data) - n, "unit %d line %d\n", i, k);
		in[0] = (struct vd_run_input){ .mem = data, .len = n };
		in[1] = (struct vd_run_input){ .file = file, .off = 4, .len = 12 };
		/* Every third unit has no input at all (DLEN 0, an empty
		 * answer); every other one a second piece from a file. */
		unit_init(&u, in, i % 3 == 0 ? 0 : i % 2 ? 2 : 1);
		assert_int_equal(vd_persist_run(&r, f->p, i % 5 ? hdr : NULL, &u), 0);
		assert_int_equal(r.exit, 0);
		assert_int_equal(r.signal, 0);
		assert_string_equal(r.reason, "");
		if (i % 3 == 0) {
			assert_int_equal(r.out.len, 0);
		} else if (i % 2) {
			assert_int_equal(r.out.len, n + 12);
			assert_memory_equal(r.out.data, data, n);
			assert_memory_equal(r.out.data + n, "from a file\n", 12);
		} else {
			assert_int_equal(r.out.len, n);
			assert_memory_equal(r.out.data, data, n);
		}
		vd_run_result_release(&r);
		assert_true(vd_persist_alive(f->p));
	}
	assert_int_equal(fn_pid(f), pid);
}

/* Every byte value, a line that looks like a frame, NULs, and more than a
 * pipe buffer (the feeder and the answer cross): echoed exactly. */
static void test_binary(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	const size_t n = 300000;
	unsigned char *data = malloc(n);
	long pid;

	assert_non_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)(i * 7 + i / 256);
	memcpy(data + 1000, "\nunit 0 5\n0 3\n\0\0\n", 17);
	start(f);
	pid = fn_pid(f);
	for (int k = 0; k < 3; k++) {
		size_t len = k == 0 ? n : k == 1 ? 1 : 3;
		const unsigned char *at = k == 0 ? data : k == 1 ? (const unsigned char *)"\0" :
			(const unsigned char *)"\n\0\n";

		assert_int_equal(run(&r, f, NULL, at, len), 0);
		assert_int_equal(r.exit, 0);
		assert_string_equal(r.reason, "");
		assert_int_equal(r.out.len, len);
		assert_memory_equal(r.out.data, at, len);
		vd_run_result_release(&r);
	}
	assert_int_equal(fn_pid(f), pid);
	free(data);
}

/* A value's newline and backslash are written \n and \\ (so that a
 * backslash followed by 'n' stays two characters), and arrive decoded. */
static void test_header_escapes(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	const char *raw[] = { "ACT=raw", "X=a\nb\\c", "Y=back\\nslash", "Z=", "EQ=a=b",
			      "NL=\n\n", NULL };
	const char *vals[] = { "ACT=vals", "X=a\nb\\c", "Y=back\\nslash", "Z=", "EQ=a=b",
			       "NL=\n\n", NULL };
	static const char want_raw[] =
		"ACT=raw\nX=a\\nb\\\\c\nY=back\\\\nslash\nZ=\nEQ=a=b\nNL=\\n\\n\n";
	static const char want_vals[] =
		"ACT=vals\0X=a\nb\\c\0Y=back\\nslash\0Z=\0EQ=a=b\0NL=\n\n";

	start(f);
	assert_int_equal(run(&r, f, raw, "", 0), 0);
	assert_int_equal(r.exit, 0);
	assert_int_equal(r.out.len, sizeof(want_raw) - 1);
	assert_memory_equal(r.out.data, want_raw, sizeof(want_raw) - 1);
	vd_run_result_release(&r);
	assert_int_equal(run(&r, f, vals, "in", 2), 0);
	assert_int_equal(r.exit, 0);
	assert_int_equal(r.out.len, sizeof(want_vals) - 1);
	assert_memory_equal(r.out.data, want_vals, sizeof(want_vals) - 1);
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
}

/* An answer header and body that come in several writes. */
static void test_answer_in_pieces(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	long pid;

	start(f);
	pid = fn_pid(f);
	assert_int_equal(run_act(&r, f, "slow"), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_string_equal(vd_buf_cstr(&r.out), "hello world");
	vd_run_result_release(&r);
	assert_int_equal(fn_pid(f), pid);
}

/* STATUS 3: the unit failed with exit 3, its message kept as stderr is,
 * no output; the process goes on with the next unit. */
static void test_unit_fails_itself(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	long pid;

	start(f);
	pid = fn_pid(f);
	assert_int_equal(run_act(&r, f, "fail"), 0);
	assert_int_equal(r.exit, 3);
	assert_int_equal(r.signal, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.out.len, 0);
	assert_string_equal(r.err, "bad unit\noops");
	assert_int_equal(r.errlen, 13);
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
	assert_int_equal(fn_pid(f), pid);
	assert_int_equal(run(&r, f, NULL, "after", 5), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "after");
	vd_run_result_release(&r);
}

/* The process dies during a unit: that unit fails with its exit status
 * or signal, the process is reaped, the next unit gets a new one. */
static void test_crash(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	static const struct {
		const char *act;
		int exit, sig;
		const char *reason;
	} c[] = {
		{ "exit", 7, 0, "" },
		{ "segv", 128 + SIGSEGV, SIGSEGV, "signal 11" },
		{ "exit0", 1, 0, "protocol: the function exited (status 0) without answering the unit" },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		long pid, pid2;

		start(f);
		pid = fn_pid(f);
		assert_int_equal(run_act(&r, f, c[i].act), 0);
		assert_string_equal(r.reason, c[i].reason);
		assert_int_equal(r.exit, c[i].exit);
		assert_int_equal(r.signal, c[i].sig);
		assert_int_equal(r.out.len, 0);
		vd_run_result_release(&r);
		assert_false(vd_persist_alive(f->p));
		assert_true(gone(pid));
		/* The dead one refuses units; a new start serves them. */
		assert_int_equal(run(&r, f, NULL, "x", 1), -EPIPE);
		vd_run_result_release(&r);
		start(f);
		pid2 = fn_pid(f);
		assert_int_not_equal(pid2, pid);
		assert_int_equal(run(&r, f, NULL, "again", 5), 0);
		assert_int_equal(r.exit, 0);
		assert_string_equal(vd_buf_cstr(&r.out), "again");
		vd_run_result_release(&r);
	}
}

/* The one test where the deadline is the point: 300 ms against a unit
 * that sleeps 300 s. */
static void test_timeout(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	struct vd_run_spec u;
	const char *hdr[] = { "ACT=sleep", NULL };
	long pid;

	start(f);
	pid = fn_pid(f);
	unit_init(&u, &no_input, 0);
	u.timeout_ms = 300;
	assert_int_equal(vd_persist_run(&r, f->p, hdr, &u), 0);
	assert_killed(&r, "timeout");
	assert_false(r.cancelled);
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
	start(f);
	assert_int_not_equal(fn_pid(f), pid);
}

static void test_cancel(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	struct vd_run_spec u;
	const char *hdr[] = { "ACT=sleep", NULL };
	atomic_bool cancel;
	long pid;

	atomic_init(&cancel, true);
	start(f);
	pid = fn_pid(f);
	unit_init(&u, &no_input, 0);
	u.cancel = &cancel;
	assert_int_equal(vd_persist_run(&r, f->p, hdr, &u), 0);
	assert_killed(&r, "cancelled");
	assert_true(r.cancelled);
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
}

/* 64 MiB held against a 32 MiB limit on the unit (none at start). */
static void test_memory_limit(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	struct vd_run_spec u;
	const char *hdr[] = { "ACT=mem", "N=67108864", NULL };
	long pid;

	start(f);
	pid = fn_pid(f);
	unit_init(&u, &no_input, 0);
	u.mem_limit = 32 << 20;
	assert_int_equal(vd_persist_run(&r, f->p, hdr, &u), 0);
	assert_killed(&r, "memory limit");
	assert_true(r.peak_rss > 32u << 20);
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
}

/* An answer of exactly the cap passes; one byte over is refused from its
 * header on, and the process is killed. */
static void test_stdout_cap(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	struct vd_run_spec u;
	const char *fit[] = { "ACT=big", "N=1000", NULL };
	const char *over[] = { "ACT=big", "N=1001", NULL };
	long pid;

	start(f);
	pid = fn_pid(f);
	unit_init(&u, &no_input, 0);
	u.out_cap = 1000;
	assert_int_equal(vd_persist_run(&r, f->p, fit, &u), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.out.len, 1000);
	assert_int_equal(r.out.data[999], 'b');
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
	assert_int_equal(vd_persist_run(&r, f->p, over, &u), 0);
	assert_killed(&r, "stdout cap");
	assert_int_equal(r.out.len, 0);
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
}

/* Answers the stream cannot be trusted after: the unit fails with exit 1
 * and a "protocol:" reason showing what came (unprintable bytes as '?'),
 * and the process is killed. */
static void test_malformed_answer(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	char x49[64], reason49[160];
	const struct {
		const char *say, *reason;
	} c[] = {
		{ "X=hello world\n", "protocol: the answer header 'hello world' is not 'STATUS LEN'" },
		{ "X=300 0\n", "protocol: the answer header '300 0' is not 'STATUS LEN'" },
		{ "X=0 5\r\nhello", "protocol: the answer header '0 5?' is not 'STATUS LEN'" },
		{ "X=0 -1\n", "protocol: the answer header '0 -1' is not 'STATUS LEN'" },
		{ "X=\n", "protocol: the answer header '' is not 'STATUS LEN'" },
		{ x49, reason49 },
	};

	/* 49 bytes with no newline: the header is given up after 48. */
	snprintf(x49, sizeof(x49), "X=%s", "0123456789012345678901234567890123456789012345678");
	snprintf(reason49, sizeof(reason49), "protocol: no answer header ('STATUS LEN\\n') but '%s'",
		 "012345678901234567890123456789012345678901234567");
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *hdr[] = { "ACT=say", c[i].say, NULL };
		long pid;

		start(f);
		pid = fn_pid(f);
		assert_int_equal(run(&r, f, hdr, "", 0), 0);
		assert_string_equal(r.reason, c[i].reason);
		assert_int_equal(r.exit, 1);
		assert_int_equal(r.signal, 0);
		assert_int_equal(r.out.len, 0);
		vd_run_result_release(&r);
		assert_false(vd_persist_alive(f->p));
		assert_true(gone(pid));
	}
}

/* A well-formed answer that leaves the stream in doubt (a byte after it;
 * given before the 1 MiB input was read) is the unit's result, but the
 * process is not used again. */
static void test_answer_then_doubt(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	const char *extra[] = { "ACT=say", "X=0 2\nokX", NULL };
	const char *early[] = { "ACT=early", NULL };
	const size_t n = 1 << 20;
	char *big = calloc(1, n);
	long pid;

	assert_non_null(big);
	start(f);
	pid = fn_pid(f);
	assert_int_equal(run(&r, f, extra, "", 0), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_string_equal(vd_buf_cstr(&r.out), "ok");
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));

	start(f);
	pid = fn_pid(f);
	assert_int_equal(run(&r, f, early, big, n), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_string_equal(vd_buf_cstr(&r.out), "early");
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
	free(big);
}

/* A process that ended between units: -EPIPE with nothing sent, the
 * result empty and safe to release; then a new start. */
static void test_died_before_unit(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	long pid;

	start(f);
	assert_int_equal(run_act(&r, f, "bye"), 0);
	assert_int_equal(r.exit, 0);
	pid = strtol(vd_buf_cstr(&r.out), NULL, 10);
	assert_true(pid > 1);
	vd_run_result_release(&r);
	assert_true(became_zombie(pid));
	assert_int_equal(run(&r, f, NULL, "lost", 4), -EPIPE);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.out.len, 0);
	vd_run_result_release(&r);
	assert_false(vd_persist_alive(f->p));
	assert_true(gone(pid));
	/* Its EOF never came: it left on its own. */
	assert_int_not_equal(access(f->mark, F_OK), 0);
	assert_int_equal(run(&r, f, NULL, "lost", 4), -EPIPE);
	vd_run_result_release(&r);
	start(f);
	assert_int_equal(run(&r, f, NULL, "found", 5), 0);
	assert_string_equal(vd_buf_cstr(&r.out), "found");
	vd_run_result_release(&r);
}

static int64_t thread_cpu_ms(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_THREAD, &ru), 0);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* A function may close its stderr. The unit still waits in poll, not in
 * a loop: vd_persist_run used to keep polling the hung-up stderr pipe
 * (POLLHUP, read gives 0) and so spun for the whole unit (about 1 s of
 * CPU per second waited, against 2 ms with stderr open). Not a timed
 * assertion: CPU time of this thread, with a bound of a quarter of what
 * the spin cost, which load on the machine can only lower. */
static void test_closed_stderr_no_spin(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	int64_t cpu;

	start(f);
	cpu = thread_cpu_ms();
	assert_int_equal(run_act(&r, f, "quiet"), 0);
	cpu = thread_cpu_ms() - cpu;
	assert_int_equal(r.exit, 0);
	assert_string_equal(vd_buf_cstr(&r.out), "ok");
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
	assert_in_range(cpu, 0, 500);
}

/* A unit with no input given as in = NULL, nin = 0, which runner.h allows
 * and runner.c takes: an empty frame body. vd_persist_run used to copy the
 * pieces with memcpy(pieces + 1, unit->in, 0), and a null source is
 * undefined even for 0 bytes (UBSan stopped here). */
static void test_null_input(void **state)
{
	struct fixture *f = *state;
	struct vd_run_result r;
	struct vd_run_spec u;
	const char *hdr[] = { "ACT=echo", NULL };

	start(f);
	unit_init(&u, NULL, 0);
	assert_int_equal(vd_persist_run(&r, f->p, hdr, &u), 0);
	assert_int_equal(r.exit, 0);
	assert_string_equal(r.reason, "");
	assert_int_equal(r.out.len, 0);
	vd_run_result_release(&r);
	assert_true(vd_persist_alive(f->p));
}

static void test_start_fails(void **state)
{
	struct fixture *f = *state;
	char path[256];
	vd_persist *p = (vd_persist *)&p;

	snprintf(path, sizeof(path), "%s/missing", f->dir);
	f->start.exe = path;
	assert_int_equal(vd_persist_start(&p, &f->start), -ENOENT);
	assert_null(p);
	snprintf(path, sizeof(path), "%s/noexec", f->dir);
	assert_int_equal(vd_runner_install(path, fn_py, sizeof(fn_py) - 1, 0644), 0);
	p = (vd_persist *)&p;
	assert_int_equal(vd_persist_start(&p, &f->start), -EACCES);
	assert_null(p);
	assert_false(vd_persist_alive(NULL));
}

/* Freeing a live process: it sees EOF and leaves; one that stays after
 * EOF is killed after the grace. Either way it is reaped. NULL is fine. */
static void test_free_process(void **state)
{
	struct fixture *f = *state;
	long pid;

	vd_persist_free(NULL);
	start(f);
	pid = fn_pid(f);
	vd_persist_free(f->p);
	f->p = NULL;
	assert_true(gone(pid));
	assert_int_equal(access(f->mark, F_OK), 0);
	assert_int_equal(unlink(f->mark), 0);

	start_env(f, "ON_EOF=stay");
	start(f);
	pid = fn_pid(f);
	vd_persist_free(f->p);
	f->p = NULL;
	assert_true(gone(pid));
	assert_int_equal(access(f->mark, F_OK), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_units, setup, teardown),
		cmocka_unit_test_setup_teardown(test_binary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_in_pieces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unit_fails_itself, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdout_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_answer_then_doubt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_died_before_unit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_process, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_stderr_no_spin, setup, teardown),
		/* Last: under UBSan it halts the program today. */
		cmocka_unit_test_setup_teardown(test_null_input, setup, teardown),
	};

	vd_runner_init();
	vd_log_init("test_persist", VD_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
