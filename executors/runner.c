/*
 * runner.c - one function run as a child process (see runner.h).
 *
 * The child is started with vfork and exec. Between the two it only makes
 * system calls on values prepared before the vfork, and writes nothing but
 * its own stack frame (it shares our memory until it execs, and the process
 * is threaded): it resets every signal's disposition and
 * the mask (the executor ignores SIGPIPE, and an ignored signal would stay
 * ignored across exec), joins a process group of its own, asks to be
 * killed if the thread that started it dies, wires its stdio, closes every
 * other descriptor (sockets and the token stay with us), sets its rlimits
 * and execs. posix_spawn cannot set rlimits, and setting them on the child
 * after it started would race with what it does first. An exec failure is
 * reported through a close-on-exec pipe.
 *
 * Why vfork rather than fork: fork copies the executor's page tables (curl,
 * TLS, a thread stack per slot) and every page either side then touches is
 * a copy-on-write fault, only for exec to throw it all away a moment later.
 * Measured with a no-op function on 8 executors (tools/bench-dispatch.sh),
 * fork and its faults were the largest single cost of a unit. The vfork
 * child gets its own copies of the signal dispositions, descriptor table,
 * rlimits and working directory (no CLONE_SIGHAND, CLONE_FILES or
 * CLONE_FS), so everything it changes is its own; only the calling thread
 * waits, until the exec.
 *
 * The parent then loops on poll() over the child's stdout and stderr with a
 * short timeout, so that the deadline, the cancel flag and the child's exit
 * are all noticed within 100 ms whatever the child does with its pipes.
 *
 * When the function's first process has been reaped, every process the
 * unit left behind is killed, also those that left its process group
 * (setsid, double fork): see "strays" below.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"
#include "runner_int.h"
#include "util.h"
#include "zframe.h"

extern char **environ;

#define RUN_WRAP_MAX 64

/* Spawns take it shared; vd_runner_install (see runner.h) and a sweep
 * listing our children (see "strays") take it exclusive. */
static pthread_rwlock_t spawn_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_uint install_seq;

/* ---- strays: no process outlives its unit -------------------------------
 *
 * A function may leave processes behind outside its process group, which
 * is all that killing the group reaches: `setsid cmd &`, a double fork, a
 * daemon. Left alone they would be re-parented to init and live on, and
 * one that kept our stdout pipe would keep the run from ever ending. Three
 * rules make sure that no process of a finished unit stays behind:
 *
 *  1. This process is a child subreaper (vd_runner_init): an orphan
 *     anywhere below it is re-parented to it rather than to init, so it
 *     stays ours to find and to kill.
 *  2. Each unit's first process (the function, or bwrap in front of it) is
 *     made a subreaper too, in the child before exec (the flag survives
 *     exec). While it runs, every orphan of its unit is re-parented to it,
 *     not to us: the whole unit stays one tree below its first process.
 *     So a function may daemonize a helper it still needs, and an orphan
 *     of a running unit is never mistaken for a leftover.
 *  3. Hence: a child of ours that is not the first process of a run in
 *     progress is a stray, left by a unit whose first process has exited
 *     (it came to us when that process died), and it is killed. Each run
 *     sweeps as soon as it has reaped its first process: SIGKILL to every
 *     stray (a stray may ignore SIGTERM; the group gets SIGKILL too), reap
 *     it, and again, since the children of a killed stray are re-parented
 *     to us in turn, until a listing finds none.
 *
 * A unit ends when its first process exits (or is killed for a limit);
 * what it started and did not wait for dies then, wherever it went.
 *
 * With several runs at once (--slots N), any sweep may kill the strays of
 * another run: that is right, since a stray's unit has ended, whichever it
 * was. What a sweep must never kill or reap is another run's first
 * process. Those are listed in `roots` from the moment vfork returns,
 * under spawn_lock held shared, and a sweep lists our children with
 * spawn_lock held exclusive, so it never sees a first process that is not
 * listed yet. A first process is reaped only by its own run (wait4 on its
 * PID, never on -1) and a stray only by a sweep, one sweep at a time
 * (sweep_lock), so a PID that a sweep listed stays our child, alive or a
 * zombie, until that same sweep reaps it: its kill() cannot hit a
 * stranger, and no run's wait4 can lose its child to a sweep.
 *
 * Limits: a function that clears its own subreaper flag (prctl) sends its
 * orphans to us while it still runs, and the next sweep of any run kills
 * them; processes started through another daemon (at, systemd-run, ssh to
 * localhost) are not our descendants at all. --sandbox bwrap also puts the
 * unit in a PID namespace, which the kernel empties when bwrap's init
 * ends. A cgroup per unit would catch daemons' children too, but needs a
 * delegated cgroup v2 subtree, which executor machines seldom give a user
 * process; this works everywhere, unprivileged. A program using the runner
 * must not start child processes of its own: they would be strays.
 *
 * Our children are read from /proc/self/task/<tid>/children (a short file
 * per thread), or, on kernels built without those files, from the parent
 * field of every /proc/<pid>/stat.
 */

static pthread_mutex_t roots_lock = PTHREAD_MUTEX_INITIALIZER;
static struct runner_root *roots;             /* roots_lock */
/* Held for a whole sweep: sweeps are the only reapers of strays. */
static pthread_mutex_t sweep_lock = PTHREAD_MUTEX_INITIALIZER;
/* Set once by vd_runner_init: /proc/<pid>/task/<tid>/children exists. */
static atomic_bool have_children_files;

#define STRAY_BATCH 256
/* A stray that SIGKILL does not end at once is in an uninterruptible
 * sleep (a hung network file system); the sweep leaves it to the next
 * run's sweep after this long rather than hold a slot. */
#define STRAY_GIVE_UP_MS 2000

void vd_runner_init(void)
{
	struct sigaction sa;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L) < 0)
		vd_warn("runner: cannot become a child subreaper (%s): processes a "
			"function leaves behind outside its process group may survive it",
			strerror(errno));
	fd = open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
	atomic_store(&have_children_files, fd >= 0);
	if (fd >= 0)
		close(fd);
}

/* List r as the first process `pid` of a run. The caller holds spawn_lock
 * (shared) since before the vfork. */
static void root_add(struct runner_root *r, pid_t pid)
{
	pthread_mutex_lock(&roots_lock);
	r->pid = pid;
	r->next = roots;
	roots = r;
	pthread_mutex_unlock(&roots_lock);
}

/* Unlist r, once its run has reaped it (or never listed it). */
void runner_root_del(struct runner_root *r)
{
	struct runner_root **pp;

	if (!r->pid)
		return;
	pthread_mutex_lock(&roots_lock);
	for (pp = &roots; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	pthread_mutex_unlock(&roots_lock);
	r->pid = 0;
	r->next = NULL;
}

struct strays {
	pid_t pid[STRAY_BATCH];
	size_t n;
};

/* Note a child of ours unless it is a run's first process. The caller
 * holds roots_lock. */
static void stray_note(struct strays *s, long long v)
{
	const struct runner_root *r;

	if (v <= 0 || v > INT32_MAX || s->n == STRAY_BATCH)
		return;   /* a full batch: the rest are found by the next listing */
	for (r = roots; r; r = r->next)
		if (r->pid == (pid_t)v)
			return;
	s->pid[s->n++] = (pid_t)v;
}

/* Our children from the children file of each of our threads. */
static int strays_from_tasks(struct strays *s)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;
	char buf[4096];

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char path[300];
		long long v = 0;
		bool in_num = false;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;   /* a thread that has just ended */
		/* "pid pid pid ", read in pieces: a number may span two reads. */
		while ((n = read(fd, buf, sizeof(buf))) > 0) {
			for (ssize_t i = 0; i < n; i++) {
				if (buf[i] >= '0' && buf[i] <= '9') {
					v = v * 10 + (buf[i] - '0');
					in_num = true;
				} else if (in_num) {
					stray_note(s, v);
					v = 0;
					in_num = false;
				}
			}
		}
		if (in_num)
			stray_note(s, v);
		close(fd);
	}
	closedir(d);
	return 0;
}

/* Our children found by the parent field of every process's stat. */
static int strays_from_proc(struct strays *s)
{
	long long self = (long long)getpid();
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[512], *p, *end;
		long long ppid;
		ssize_t n;
		int fd;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* "pid (comm) S ppid ...": the command may hold ") ". */
		p = strrchr(buf, ')');
		if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
			continue;
		ppid = strtoll(p + 4, &end, 10);
		if (end != p + 4 && ppid == self)
			stray_note(s, strtoll(de->d_name, NULL, 10));
	}
	closedir(d);
	return 0;
}

/* Kill and reap every stray (see above). Called by a run once it has
 * reaped its first process. */
void runner_kill_strays(void)
{
	struct strays s;
	int64_t give_up = vd_mono_ms() + STRAY_GIVE_UP_MS;
	size_t i, left;
	int rc;

	pthread_mutex_lock(&sweep_lock);
	for (;;) {
		s.n = 0;
		pthread_rwlock_wrlock(&spawn_lock);
		pthread_mutex_lock(&roots_lock);
		rc = atomic_load(&have_children_files) ? strays_from_tasks(&s)
						       : strays_from_proc(&s);
		pthread_mutex_unlock(&roots_lock);
		pthread_rwlock_unlock(&spawn_lock);
		if (rc) {
			vd_warn("runner: cannot list the processes left by units: %s",
				strerror(-rc));
			break;
		}
		if (s.n == 0)
			break;
		for (i = 0; i < s.n; i++)
			kill(s.pid[i], SIGKILL);
		left = 0;
		for (i = 0; i < s.n; i++)
			if (waitpid(s.pid[i], NULL, WNOHANG | __WALL) == 0)
				left++;   /* not dead yet: a zombie in a moment */
		if (vd_mono_ms() >= give_up) {
			vd_warn("runner: %zu processes left by finished units do not die "
				"of SIGKILL (uninterruptible sleep?); the next run tries "
				"again", left);
			break;
		}
		if (left) {
			struct timespec ts = { 0, 2 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	}
	pthread_mutex_unlock(&sweep_lock);
}

int vd_runner_install(const char *path, const void *p, size_t n, mode_t mode)
{
	struct vd_buf tmp = VD_BUF_INIT(8192);
	int fd = -1, rc;

	rc = vd_buf_addf(&tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
			 atomic_fetch_add(&install_seq, 1));
	if (rc)
		goto out;
	pthread_rwlock_wrlock(&spawn_lock);
	fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = -errno;
	} else {
		rc = vd_write_all(fd, p, n);
		/* The umask may have taken bits the file needs (0755 code). */
		if (!rc && fchmod(fd, mode) < 0)
			rc = -errno;
		if (close(fd) < 0 && !rc)
			rc = -errno;
	}
	pthread_rwlock_unlock(&spawn_lock);
	if (rc)
		goto out;
	if (rename(tmp.data, path) < 0)
		rc = -errno;
out:
	if (rc && fd >= 0)
		unlink(tmp.data);
	vd_buf_release(&tmp);
	return rc;
}

/* ---- the environment ---------------------------------------------------- */

static bool env_overridden(const char *entry, const char *const *env)
{
	const char *eq = strchr(entry, '=');
	size_t klen = eq ? (size_t)(eq - entry) : strlen(entry);
	size_t i;

	if (klen == 4 && memcmp(entry, "PATH", 4) == 0)
		return true;
	for (i = 0; env && env[i]; i++)
		if (strncmp(env[i], entry, klen) == 0 && env[i][klen] == '=')
			return true;
	return false;
}

/* The child's environment: ours minus what spec sets, plus spec->env, plus
 * PATH with spec->path_first in front. Built before spawning, since nothing
 * may allocate in the child. */
int runner_build_env(struct vd_strv *out, const struct vd_run_spec *spec)
{
	struct vd_buf path = VD_BUF_INIT(1 << 16);
	const char *old = getenv("PATH");
	size_t i;
	int rc = 0;

	for (i = 0; environ && environ[i] && !rc; i++)
		if (!env_overridden(environ[i], spec->env))
			rc = vd_strv_push(out, environ[i]);
	for (i = 0; spec->env && spec->env[i] && !rc; i++)
		rc = vd_strv_push(out, spec->env[i]);
	if (rc)
		goto out;
	if (!old)
		old = "/usr/local/bin:/usr/bin:/bin";
	if (spec->path_first && *spec->path_first)
		rc = vd_buf_addf(&path, "PATH=%s%s%s", spec->path_first,
				 *old ? ":" : "", old);
	else
		rc = vd_buf_addf(&path, "PATH=%s", old);
	/* vd_strv keeps v NULL-terminated, as execve wants. */
	if (!rc)
		rc = vd_strv_push(out, path.data);
out:
	vd_buf_release(&path);
	return rc;
}

/* ---- the stdin writer ------------------------------------------------- */

/* Write all of p, waiting for room with poll so that `stop` is honoured
 * even if something outside the process group holds the pipe open and
 * never reads. -EPIPE when the function closed its stdin. */
int runner_feed_bytes(struct runner_feeder *f, const char *p, size_t n)
{
	while (n > 0) {
		struct pollfd pfd = { .fd = f->fd, .events = POLLOUT };
		ssize_t w;

		if (atomic_load(&f->stop))
			return -ECANCELED;
		w = write(f->fd, p, n);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(&pfd, 1, RUN_TICK_MS) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* A cached chunk is at most a few MiB; this bounds what a file that is
 * not one makes us read. */
#define RUN_FRAME_MAX ((size_t)256 << 20)

/* Decompress in's frame, handing [off, off + len) of its raw bytes to
 * sink. The frame is read whole (it is a compressed chunk), the raw bytes
 * only pass through the decoder's window. */
static int each_framed(const struct vd_run_input *in, vd_zframe_sink sink, void *ctx)
{
	struct vd_buf frame = VD_BUF_INIT(RUN_FRAME_MAX);
	int rc = vd_read_file(&frame, in->file);

	if (!rc)
		rc = vd_zframe_each(NULL, frame.data ? frame.data : "", frame.len, in->off,
				    in->len, UINT64_MAX, sink, ctx);
	/* Decoded fewer bytes than promised: as a short file. */
	if (rc == -EBADMSG)
		rc = -EIO;
	vd_buf_release(&frame);
	return rc;
}

static int feed_sink(void *ctx, const void *p, size_t n)
{
	return runner_feed_bytes(ctx, p, n);
}

static int feed_file(struct runner_feeder *f, const struct vd_run_input *in, char *blk)
{
	uint64_t off = in->off, left = in->len;
	int fd, rc = 0;

	if (in->zstd)
		return in->len ? each_framed(in, feed_sink, f) : 0;
	fd = open(in->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (left > 0 && !rc) {
		size_t want = left < RUN_IO_BLOCK ? (size_t)left : RUN_IO_BLOCK;
		ssize_t r = pread(fd, blk, want, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
		} else if (r == 0) {
			rc = -EIO;   /* the file is shorter than promised */
		} else {
			rc = runner_feed_bytes(f, blk, (size_t)r);
			off += (uint64_t)r;
			left -= (uint64_t)r;
		}
	}
	close(fd);
	return rc;
}

int runner_feed_all(struct runner_feeder *f)
{
	char *blk = malloc(RUN_IO_BLOCK);
	size_t i;
	int rc = blk ? 0 : -ENOMEM;

	for (i = 0; i < f->nin && !rc; i++) {
		const struct vd_run_input *in = &f->in[i];

		if (in->mem)
			rc = runner_feed_bytes(f, in->mem, (size_t)in->len);
		else
			rc = feed_file(f, in, blk);
	}
	free(blk);
	return rc;
}

static void *feeder_main(void *arg)
{
	struct runner_feeder *f = arg;
	int rc = runner_feed_all(f);

	/* A function that does not read all its input is fine; anything else
	 * means it saw a cut stdin, which it may or may not notice. */
	if (rc && rc != -EPIPE && rc != -ECANCELED)
		vd_warn("runner: feeding stdin: %s", strerror(-rc));
	close(f->fd);
	f->fd = -1;
	return NULL;
}

/* ---- stdin as a file --------------------------------------------------- */

static int write_sink(void *ctx, const void *p, size_t n)
{
	return vd_write_all(*(const int *)ctx, p, n);
}

static int copy_piece(int dst, const struct vd_run_input *in)
{
	uint64_t left = in->len;
	loff_t off = (loff_t)in->off;
	int src, rc = 0;

	if (in->mem)
		return vd_write_all(dst, in->mem, (size_t)in->len);
	if (in->zstd)
		return in->len ? each_framed(in, write_sink, &dst) : 0;
	src = open(in->file, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	while (left > 0) {
		size_t want = left < (1u << 30) ? (size_t)left : (1u << 30);
		ssize_t n = copy_file_range(src, &off, dst, NULL, want, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0) {
			rc = -EIO;   /* the file is shorter than promised */
			break;
		}
		left -= (uint64_t)n;
	}
	close(src);
	return rc;
}

/* The unit's stdin as an unnamed file in dir, positioned at 0, or -errno
 * (-EOPNOTSUPP and -EISDIR: this file system has no O_TMPFILE). */
static int stdin_file(int *fd_out, const struct vd_run_spec *spec)
{
	int fd = open(spec->stdin_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0400);
	int rc = 0;

	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < spec->nin && !rc; i++)
		rc = copy_piece(fd, &spec->in[i]);
	if (!rc && lseek(fd, 0, SEEK_SET) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	*fd_out = fd;
	return 0;
}

/* ---- the run ---------------------------------------------------------- */

void runner_tail_add(struct vd_run_result *r, const char *p, size_t n)
{
	if (n >= VD_RUN_ERR_TAIL) {
		memcpy(r->err, p + n - VD_RUN_ERR_TAIL, VD_RUN_ERR_TAIL);
		r->errlen = VD_RUN_ERR_TAIL;
	} else {
		if (r->errlen + n > VD_RUN_ERR_TAIL) {
			size_t drop = r->errlen + n - VD_RUN_ERR_TAIL;

			memmove(r->err, r->err + drop, r->errlen - drop);
			r->errlen -= drop;
		}
		memcpy(r->err + r->errlen, p, n);
		r->errlen += n;
	}
	r->err[r->errlen] = '\0';
}

/* Kill the function's whole group once, recording why. */
static void kill_group(struct vd_run_result *r, pid_t pgid, bool *killed,
		       const char *why)
{
	if (*killed)
		return;
	*killed = true;
	if (why)
		snprintf(r->reason, sizeof(r->reason), "%s", why);
	kill(-pgid, SIGKILL);
}

/* The limits the child sets on itself, worked out before fork. */
struct child_limits {
	bool as, cpu, fsize, nofile;
	struct rlimit as_l, cpu_l, fsize_l, nofile_l;
};

static void limits_of(struct child_limits *cl, const struct vd_run_spec *spec)
{
	memset(cl, 0, sizeof(*cl));
	if (spec->as_limit) {
		cl->as = true;
		cl->as_l.rlim_cur = cl->as_l.rlim_max = (rlim_t)spec->as_limit;
	}
	if (spec->cpu_limit_s > 0) {
		cl->cpu = true;
		cl->cpu_l.rlim_cur = (rlim_t)spec->cpu_limit_s;
		/* SIGXCPU at the soft limit, SIGKILL a little later. */
		cl->cpu_l.rlim_max = (rlim_t)spec->cpu_limit_s + 5;
	}
	if (spec->fsize_limit) {
		cl->fsize = true;
		cl->fsize_l.rlim_cur = cl->fsize_l.rlim_max = (rlim_t)spec->fsize_limit;
	}
	if (spec->nofile_limit) {
		cl->nofile = true;
		cl->nofile_l.rlim_cur = cl->nofile_l.rlim_max = (rlim_t)spec->nofile_limit;
	}
}

/* The child between vfork and exec: system calls only, on values made
 * before the vfork; nothing written but this frame's locals. */
static void __attribute__((noreturn))
child_main(const struct vd_run_spec *spec, char **argv, char **envp, int in_fd,
	   int out_fd, int err_fd, int report_fd, const struct child_limits *cl)
{
	struct sigaction dfl;
	sigset_t none;
	int err, sig;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);   /* fails harmlessly for 32, 33 */
	if (setpgid(0, 0) < 0)
		goto fail;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* The unit's orphans stay below its first process while it runs
	 * (see "strays"). */
	prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L);
	if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
	    dup2(err_fd, STDERR_FILENO) < 0)
		goto fail;
	/* Nothing else of ours reaches the function (the report pipe closes
	 * itself on exec). */
	if (report_fd > 3)
		close_range(3, (unsigned)report_fd - 1, 0);
	close_range((unsigned)report_fd + 1, ~0u, 0);
	if (spec->cwd && chdir(spec->cwd) < 0)
		goto fail;
	if ((cl->as && setrlimit(RLIMIT_AS, &cl->as_l) < 0) ||
	    (cl->cpu && setrlimit(RLIMIT_CPU, &cl->cpu_l) < 0) ||
	    (cl->fsize && setrlimit(RLIMIT_FSIZE, &cl->fsize_l) < 0) ||
	    (cl->nofile && setrlimit(RLIMIT_NOFILE, &cl->nofile_l) < 0))
		goto fail;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(argv[0], argv, envp);
fail:
	err = errno;
	if (write(report_fd, &err, sizeof(err)) < 0)
		err = 0;
	_exit(127);
}

/* Start the child, listed in `root` until the caller reaps it. -errno of
 * an exec (or set-up) failure in the child (then it is reaped and
 * unlisted), or of fork itself (-EAGAIN, -ENOMEM). */
int runner_spawn(pid_t *pid, struct runner_root *root, const struct vd_run_spec *spec,
		 char **envp, int in_fd, int out_fd, int err_fd)
{
	char *argv[RUN_WRAP_MAX + 2];
	struct child_limits cl;
	sigset_t all, old;
	int rep[2], n = 0, err = 0, fork_err;
	ssize_t got;
	pid_t p;

	for (; spec->wrap && spec->wrap[n]; n++) {
		if (n == RUN_WRAP_MAX)
			return -E2BIG;
		argv[n] = (char *)spec->wrap[n];
	}
	argv[n++] = (char *)spec->exe;
	argv[n] = NULL;
	limits_of(&cl, spec);
	if (pipe2(rep, O_CLOEXEC) < 0)
		return -errno;
	/* Signals stay blocked until the child has reset their handlers. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_rwlock_rdlock(&spawn_lock);
	p = vfork();
	if (p == 0)
		child_main(spec, argv, envp, in_fd, out_fd, err_fd, rep[1], &cl);
	fork_err = errno;
	/* Listed before spawn_lock goes, so that no sweep takes it for a
	 * stray. */
	if (p > 0)
		root_add(root, p);
	pthread_rwlock_unlock(&spawn_lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(rep[1]);
	if (p < 0) {
		close(rep[0]);
		return fork_err == ENOMEM ? -ENOMEM : -EAGAIN;
	}
	do {
		got = read(rep[0], &err, sizeof(err));
	} while (got < 0 && errno == EINTR);
	close(rep[0]);
	if (got == (ssize_t)sizeof(err)) {
		int st;

		waitpid(p, &st, 0);
		runner_root_del(root);
		/* Keep resource trouble apart from a function that cannot run. */
		return -(err == EAGAIN || err == ENOMEM ? EIO : (err ? err : EIO));
	}
	*pid = p;
	return 0;
}

/* Resident bytes of every process in group pgid, from /proc/N/stat. */
uint64_t runner_group_rss(pid_t pgid)
{
	long page = sysconf(_SC_PAGESIZE);
	uint64_t sum = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[1024], *p, *end;
		long long v = 0;
		ssize_t n;
		int fd, field;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		/* Fields after the command's ")": 3 state, 4 ppid, 5 pgrp,
		 * ... 24 rss (pages). */
		p = strrchr(buf, ')');
		if (!p)
			continue;
		p++;
		for (field = 3; field <= 24; field++) {
			while (*p == ' ')
				p++;
			if (field == 3) {
				p++;
				continue;
			}
			v = strtoll(p, &end, 10);
			if (end == p)
				break;
			p = end;
			if (field == 5 && v != (long long)pgid)
				break;
		}
		if (field == 25 && v > 0)
			sum += (uint64_t)v * (uint64_t)page;
	}
	closedir(d);
	return sum;
}

void runner_set_status(struct vd_run_result *r, int status, bool killed,
		       const struct vd_run_spec *spec)
{
	int sig = 0;

	if (killed) {
		r->exit = 128 + SIGKILL;
		r->signal = SIGKILL;
	} else if (WIFEXITED(status)) {
		r->exit = WEXITSTATUS(status);
		r->signal = 0;
	} else if (WIFSIGNALED(status)) {
		r->signal = WTERMSIG(status);
		r->exit = 128 + r->signal;
		snprintf(r->reason, sizeof(r->reason), "signal %d", r->signal);
	} else {
		r->exit = 255;
		snprintf(r->reason, sizeof(r->reason), "unknown wait status %d", status);
	}
	if (killed)
		return;
	/* A limit the kernel enforced: by signal, or as a shell reports a
	 * child that died of it (128 + N). */
	sig = r->signal ? r->signal : (r->exit > 128 && r->exit < 128 + 65 ? r->exit - 128 : 0);
	if (sig == SIGXCPU && spec->cpu_limit_s > 0)
		snprintf(r->reason, sizeof(r->reason), "cpu limit");
	else if (sig == SIGXFSZ && spec->fsize_limit)
		snprintf(r->reason, sizeof(r->reason), "file size limit");
	else if (spec->mem_limit && (r->exit || r->signal) && r->peak_rss >= spec->mem_limit)
		/* It failed after using all it may: most likely an allocation
		 * that the address-space limit refused. */
		snprintf(r->reason, sizeof(r->reason), "memory limit");
}

int vd_runner_run(struct vd_run_result *out, const struct vd_run_spec *spec)
{
	struct vd_strv env = { 0 };
	struct runner_feeder feed = { .fd = -1 };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	pthread_t feeder_thread;
	struct runner_root root = { 0 };
	bool feeding = false, killed = false, reaped = false;
	int64_t start, deadline, next_mem = 0;
	struct rusage ru;
	pid_t pid = -1;
	char *blk = NULL;
	int status = 0, rc, pidfd = -1, infile = -1;

	memset(out, 0, sizeof(*out));
	vd_buf_init(&out->out, spec->out_cap);
	rc = runner_build_env(&env, spec);
	if (rc)
		goto out;
	blk = malloc(RUN_IO_BLOCK);
	if (!blk) {
		rc = -ENOMEM;
		goto out;
	}
	if (spec->stdin_dir) {
		rc = stdin_file(&infile, spec);
		if (rc == -EOPNOTSUPP || rc == -EISDIR)
			rc = 0;   /* no O_TMPFILE here: use the pipe */
		if (rc)
			goto out;
	}
	if ((infile < 0 && pipe2(pin, O_CLOEXEC) < 0) || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	start = vd_mono_ms();
	rc = runner_spawn(&pid, &root, spec, env.v, infile >= 0 ? infile : pin[0], pout[1], perr[1]);
	if (rc == -EAGAIN || rc == -ENOMEM) {
		/* Our own lack of resources, not the function's fault. */
		pid = -1;
		goto out;
	}
	if (rc) {
		/* The exec itself failed: a result, as if the child exited 127. */
		pid = -1;
		out->exit = 127;
		snprintf(out->reason, sizeof(out->reason), "exec failed: %s",
			 strerror(-rc));
		out->ms = vd_mono_ms() - start;
		rc = 0;
		goto out;
	}
	if (pin[0] >= 0)
		close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	if (infile >= 0) {
		close(infile);
		infile = -1;
		goto fed;
	}

	feed.fd = pin[1];
	pin[1] = -1;
	feed.in = spec->in;
	feed.nin = spec->nin;
	atomic_init(&feed.stop, false);
	if (fcntl(feed.fd, F_SETFL, O_NONBLOCK) < 0 ||
	    (rc = -pthread_create(&feeder_thread, NULL, feeder_main, &feed)) != 0) {
		if (!rc)
			rc = -errno;
		close(feed.fd);
		feed.fd = -1;
		/* Without a feeder the child would read EOF at once; stop it. */
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		runner_root_del(&root);
		runner_kill_strays();
		pid = -1;
		goto out;
	}
	feeding = true;
fed:
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	deadline = spec->timeout_ms > 0 ? start + spec->timeout_ms : 0;
	next_mem = start + RUN_MEM_TICK_MS;
	memset(&ru, 0, sizeof(ru));
	while (!reaped || pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd pfd[3];
		int nfd = 0, i;

		if (spec->cancel && atomic_load(spec->cancel) && !killed) {
			out->cancelled = true;
			kill_group(out, pid, &killed, "cancelled");
		}
		if (deadline && vd_mono_ms() >= deadline)
			kill_group(out, pid, &killed, "timeout");
		if (spec->mem_limit && !reaped && !killed && vd_mono_ms() >= next_mem) {
			uint64_t rss = runner_group_rss(pid);

			if (rss > out->peak_rss)
				out->peak_rss = rss;
			if (rss > spec->mem_limit)
				kill_group(out, pid, &killed, "memory limit");
			next_mem = vd_mono_ms() + RUN_MEM_TICK_MS;
		}
		if (!reaped) {
			pid_t w = wait4(pid, &status, WNOHANG, &ru);

			if (w < 0 && errno == ECHILD) {
				/* Nothing but this run reaps its child (see
				 * "strays"); should that ever fail, end the run
				 * rather than wait for a child that is gone (and
				 * spare its group ID, which may be reused). */
				vd_warn("runner: process %ld was reaped by someone else",
					(long)pid);
				status = 255 << 8;
				reaped = true;
				runner_root_del(&root);
				runner_kill_strays();
			} else if (w == pid) {
				reaped = true;
				runner_root_del(&root);
				/* The function is over; whatever it left behind
				 * (background children holding our pipes) goes
				 * too, so the pipes reach EOF: its group (the
				 * group ID stays reserved while any member lives,
				 * so this cannot hit a stranger), then every
				 * process it left anywhere else. */
				kill(-pid, SIGKILL);
				runner_kill_strays();
			}
		}
		if (reaped && pout[0] < 0 && perr[0] < 0)
			break;     /* all done: do not sleep a tick for nothing */
		if (pout[0] >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = pout[0], .events = POLLIN };
		if (perr[0] >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = perr[0], .events = POLLIN };
		/* The child's exit wakes us at once (a pidfd is readable then),
		 * rather than at the next tick: short units add up. */
		if (!reaped && pidfd >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		if (poll(pfd, (nfds_t)nfd, RUN_TICK_MS) < 0) {
			if (errno != EINTR)
				vd_warn("runner: poll: %s", strerror(errno));
			continue;
		}
		for (i = 0; i < nfd; i++) {
			bool is_out = pfd[i].fd == pout[0];

			if (pfd[i].fd == pidfd)
				continue;   /* waitpid at the top of the loop */
			ssize_t r;

			if (!pfd[i].revents)
				continue;
			r = read(pfd[i].fd, blk, RUN_IO_BLOCK);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				close(pfd[i].fd);
				if (is_out)
					pout[0] = -1;
				else
					perr[0] = -1;
				continue;
			}
			if (!is_out) {
				runner_tail_add(out, blk, (size_t)r);
			} else if (vd_buf_add(&out->out, blk, (size_t)r) < 0) {
				/* Over the cap (or out of memory): the output is
				 * unusable, so the function is stopped. */
				kill_group(out, pid, &killed, "stdout cap");
				close(pout[0]);
				pout[0] = -1;
			}
		}
	}
	out->ms = vd_mono_ms() - start;
	/* ru_maxrss (KiB) is the largest of the child and the descendants
	 * it waited for. */
	if ((uint64_t)ru.ru_maxrss * 1024 > out->peak_rss)
		out->peak_rss = (uint64_t)ru.ru_maxrss * 1024;
	runner_set_status(out, status, killed, spec);
	pid = -1;
	rc = 0;
out:
	if (feeding) {
		atomic_store(&feed.stop, true);
		pthread_join(feeder_thread, NULL);
	}
	if (pid > 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		runner_root_del(&root);
		runner_kill_strays();
	}
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	if (pidfd >= 0)
		close(pidfd);
	if (infile >= 0)
		close(infile);
	free(blk);
	vd_strv_release(&env);
	if (rc)
		vd_buf_release(&out->out);
	return rc;
}

void vd_run_result_release(struct vd_run_result *r)
{
	if (r)
		vd_buf_release(&r->out);
}
