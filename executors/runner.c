/*
 * runner.c - one function run as a child process (see runner.h).
 *
 * The child is started with posix_spawn (glibc spawns with CLONE_VFORK, so
 * nothing of ours runs in the child between fork and exec, which matters in
 * a threaded program) into a process group of its own, with the signal mask
 * and dispositions reset: the executor ignores SIGPIPE, and an ignored
 * signal would otherwise stay ignored across exec.
 *
 * The parent then loops on poll() over the child's stdout and stderr with a
 * short timeout, so that the deadline, the cancel flag and the child's exit
 * are all noticed within 100 ms whatever the child does with its pipes.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"
#include "util.h"

extern char **environ;

#define RUN_TICK_MS 100
#define RUN_IO_BLOCK 65536

/* Spawns take it shared, vd_runner_install exclusive (see runner.h). */
static pthread_rwlock_t spawn_lock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_uint install_seq;

void vd_runner_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGPIPE, &sa, NULL);
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
static int build_env(struct vd_strv *out, const struct vd_run_spec *spec)
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

struct feeder {
	int fd;                          /* write end, non-blocking; owned */
	const struct vd_run_input *in;
	size_t nin;
	atomic_bool stop;                /* set by the runner to end early */
};

/* Write all of p, waiting for room with poll so that `stop` is honoured
 * even if something outside the process group holds the pipe open and
 * never reads. -EPIPE when the function closed its stdin. */
static int feed_bytes(struct feeder *f, const char *p, size_t n)
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

static int feed_file(struct feeder *f, const struct vd_run_input *in, char *blk)
{
	uint64_t off = in->off, left = in->len;
	int fd, rc = 0;

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
			rc = feed_bytes(f, blk, (size_t)r);
			off += (uint64_t)r;
			left -= (uint64_t)r;
		}
	}
	close(fd);
	return rc;
}

static void *feeder_main(void *arg)
{
	struct feeder *f = arg;
	char *blk = malloc(RUN_IO_BLOCK);
	size_t i;
	int rc = blk ? 0 : -ENOMEM;

	for (i = 0; i < f->nin && !rc; i++) {
		const struct vd_run_input *in = &f->in[i];

		if (in->mem)
			rc = feed_bytes(f, in->mem, (size_t)in->len);
		else
			rc = feed_file(f, in, blk);
	}
	/* A function that does not read all its input is fine; anything else
	 * means it saw a cut stdin, which it may or may not notice. */
	if (rc && rc != -EPIPE && rc != -ECANCELED)
		vd_warn("runner: feeding stdin: %s", strerror(-rc));
	free(blk);
	close(f->fd);
	f->fd = -1;
	return NULL;
}

/* ---- the run ---------------------------------------------------------- */

static void tail_add(struct vd_run_result *r, const char *p, size_t n)
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

static int spawn(pid_t *pid, const struct vd_run_spec *spec, char **envp,
		 int in_fd, int out_fd, int err_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	char *argv[2] = { (char *)spec->exe, NULL };
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	rc = posix_spawn_file_actions_init(&fa);
	if (rc)
		return -rc;
	rc = posix_spawnattr_init(&at);
	if (rc) {
		posix_spawn_file_actions_destroy(&fa);
		return -rc;
	}
	rc = posix_spawn_file_actions_adddup2(&fa, in_fd, STDIN_FILENO);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, out_fd, STDOUT_FILENO);
	if (!rc)
		rc = posix_spawn_file_actions_adddup2(&fa, err_fd, STDERR_FILENO);
	if (!rc && spec->cwd)
		rc = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
	if (!rc)
		rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
					      POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	if (!rc)
		rc = posix_spawnattr_setpgroup(&at, 0);
	if (!rc)
		rc = posix_spawnattr_setsigmask(&at, &none);
	if (!rc)
		rc = posix_spawnattr_setsigdefault(&at, &all);
	if (!rc) {
		pthread_rwlock_rdlock(&spawn_lock);
		rc = posix_spawn(pid, spec->exe, &fa, &at, argv, envp);
		pthread_rwlock_unlock(&spawn_lock);
	}
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -rc;
}

static void set_status(struct vd_run_result *r, int status, bool killed)
{
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
}

int vd_runner_run(struct vd_run_result *out, const struct vd_run_spec *spec)
{
	struct vd_strv env = { 0 };
	struct feeder feed = { .fd = -1 };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	pthread_t feeder_thread;
	bool feeding = false, killed = false, reaped = false;
	int64_t start, deadline;
	pid_t pid = -1;
	char *blk = NULL;
	int status = 0, rc;

	memset(out, 0, sizeof(*out));
	vd_buf_init(&out->out, spec->out_cap);
	rc = build_env(&env, spec);
	if (rc)
		goto out;
	blk = malloc(RUN_IO_BLOCK);
	if (!blk) {
		rc = -ENOMEM;
		goto out;
	}
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	start = vd_mono_ms();
	rc = spawn(&pid, spec, env.v, pin[0], pout[1], perr[1]);
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
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;

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
		pid = -1;
		goto out;
	}
	feeding = true;

	deadline = spec->timeout_ms > 0 ? start + spec->timeout_ms : 0;
	while (!reaped || pout[0] >= 0 || perr[0] >= 0) {
		struct pollfd pfd[2];
		int nfd = 0, i;

		if (spec->cancel && atomic_load(spec->cancel) && !killed) {
			out->cancelled = true;
			kill_group(out, pid, &killed, "cancelled");
		}
		if (deadline && vd_mono_ms() >= deadline)
			kill_group(out, pid, &killed, "timeout");
		if (!reaped) {
			pid_t w = waitpid(pid, &status, WNOHANG);

			if (w == pid) {
				reaped = true;
				/* The function is over; whatever it left behind
				 * (background children holding our pipes) goes
				 * too, so the pipes reach EOF. The group ID stays
				 * reserved while any member lives, so this cannot
				 * hit a stranger. */
				kill(-pid, SIGKILL);
			}
		}
		if (pout[0] >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = pout[0], .events = POLLIN };
		if (perr[0] >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = perr[0], .events = POLLIN };
		if (poll(pfd, (nfds_t)nfd, RUN_TICK_MS) < 0) {
			if (errno != EINTR)
				vd_warn("runner: poll: %s", strerror(errno));
			continue;
		}
		for (i = 0; i < nfd; i++) {
			bool is_out = pfd[i].fd == pout[0];
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
				tail_add(out, blk, (size_t)r);
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
	set_status(out, status, killed);
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
	}
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
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
