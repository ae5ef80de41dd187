/*
 * runner_persist.c - a function process kept between units (persist.h).
 *
 * The process is started as runner.c starts a unit's (runner_spawn: its
 * own process group, rlimits, the sandbox wrapper) and stays listed as a
 * running first process for its whole life, so that the stray sweeps of
 * other slots' runs never kill it; its own orphans stay below it, as it
 * is a subreaper. Each unit is a frame written by a feeder thread (the
 * input may be megabytes, and a function may answer before it has read
 * all of it) while this thread reads the answer, stderr and the process's
 * exit with poll, checking the unit's deadline, cancel flag and memory as
 * runner.c does.
 *
 * The stream is only trusted while both sides agree on where a frame
 * ends. Anything that could leave them disagreeing ends the process: an
 * answer before the function read all of its frame (the rest would be
 * read as the next frame), bytes after the answer, an answer header that
 * does not parse. The unit itself keeps a well-formed answer; the next
 * unit gets a new process.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "persist.h"
#include "runner_int.h"

/* "STATUS LEN\n": two decimals, a space, a newline. */
#define PERSIST_ANSWER_HDR_MAX 48

struct vd_persist {
	pid_t pid;                 /* the process; its group ID too */
	struct runner_root root;   /* listed while pid lives */
	int in_fd;                 /* its stdin, ours to write (non-blocking) */
	int out_fd, err_fd;        /* its stdout and stderr */
	int pidfd;                 /* readable once it exits; -1 if none */
	bool alive;
	struct vd_run_spec spec;   /* what it was started with (for statuses) */
};

struct feed_job {
	struct runner_feeder f;
	int rc;
	atomic_bool done;
};

static void *feed_main(void *arg)
{
	struct feed_job *j = arg;

	j->rc = runner_feed_all(&j->f);
	atomic_store(&j->done, true);
	return NULL;
}

/* Kill p's group, reap it and what it left; p is dead from then on. */
static void persist_end(vd_persist *p, int *status)
{
	int st = 0;

	if (!p->alive)
		return;
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
		;
	runner_root_del(&p->root);
	runner_kill_strays();
	p->alive = false;
	if (status)
		*status = st;
}

/* Has the process ended without us? Reaps it if so. */
static bool persist_exited(vd_persist *p, int *status)
{
	int st = 0;
	pid_t w = waitpid(p->pid, &st, WNOHANG);

	if (w == p->pid || (w < 0 && errno == ECHILD)) {
		runner_root_del(&p->root);
		kill(-p->pid, SIGKILL);   /* what it left in its group */
		runner_kill_strays();
		p->alive = false;
		if (status)
			*status = w == p->pid ? st : (255 << 8);
		return true;
	}
	return false;
}

int vd_persist_start(vd_persist **out, const struct vd_run_spec *spec)
{
	struct vd_strv env = { 0 };
	int pin[2] = { -1, -1 }, pout[2] = { -1, -1 }, perr[2] = { -1, -1 };
	vd_persist *p = calloc(1, sizeof(*p));
	int rc;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->spec = *spec;
	p->spec.in = NULL;
	p->spec.nin = 0;
	p->pidfd = -1;
	if ((rc = runner_build_env(&env, spec)))
		goto out;
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	rc = runner_spawn(&p->pid, &p->root, spec, env.v, pin[0], pout[1], perr[1]);
	if (rc)
		goto out;
	p->alive = true;
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	pin[0] = pout[1] = perr[1] = -1;
	p->in_fd = pin[1];
	p->out_fd = pout[0];
	p->err_fd = perr[0];
	pin[1] = pout[0] = perr[0] = -1;
	if (fcntl(p->in_fd, F_SETFL, O_NONBLOCK) < 0) {
		rc = -errno;
		goto out;
	}
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	*out = p;
	p = NULL;
out:
	for (int i = 0; i < 2; i++) {
		if (pin[i] >= 0)
			close(pin[i]);
		if (pout[i] >= 0)
			close(pout[i]);
		if (perr[i] >= 0)
			close(perr[i]);
	}
	vd_strv_release(&env);
	if (p) {
		if (p->alive) {
			persist_end(p, NULL);
			close(p->in_fd);
			close(p->out_fd);
			close(p->err_fd);
		}
		free(p);
	}
	return rc;
}

bool vd_persist_alive(const vd_persist *p)
{
	return p && p->alive;
}

void vd_persist_free(vd_persist *p)
{
	if (!p)
		return;
	if (p->alive) {
		/* EOF on its stdin is the sign to leave; its pipes closed, it
		 * cannot block writing to us meanwhile. */
		close(p->in_fd);
		close(p->out_fd);
		close(p->err_fd);
		p->in_fd = p->out_fd = p->err_fd = -1;
		int64_t until = vd_mono_ms() + VD_PERSIST_EXIT_GRACE_MS;
		while (p->alive && vd_mono_ms() < until) {
			struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };

			if (persist_exited(p, NULL))
				break;
			if (p->pidfd >= 0)
				poll(&pfd, 1, (int)(until - vd_mono_ms() > 0 ? until - vd_mono_ms() : 0));
			else
				poll(NULL, 0, 10);
		}
		persist_end(p, NULL);
	}
	if (p->in_fd >= 0)
		close(p->in_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	if (p->err_fd >= 0)
		close(p->err_fd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	free(p);
}

/* The frame's header: "unit HLEN DLEN\n" and the NAME=value lines. */
static int frame_header(struct vd_buf *h, const char *const *hdr, uint64_t dlen)
{
	struct vd_buf lines = VD_BUF_INIT(1 << 20);
	int rc = 0;

	for (size_t i = 0; hdr && hdr[i] && !rc; i++) {
		for (const char *c = hdr[i]; *c && !rc; c++) {
			if (*c == '\\')
				rc = vd_buf_add(&lines, "\\\\", 2);
			else if (*c == '\n')
				rc = vd_buf_add(&lines, "\\n", 2);
			else
				rc = vd_buf_add(&lines, c, 1);
		}
		if (!rc)
			rc = vd_buf_add(&lines, "\n", 1);
	}
	if (!rc)
		rc = vd_buf_addf(h, "unit %zu %llu\n", lines.len, (unsigned long long)dlen);
	if (!rc && lines.len)
		rc = vd_buf_add(h, lines.data, lines.len);
	vd_buf_release(&lines);
	return rc;
}

/* "STATUS LEN" (without its '\n') into *st and *len; false if malformed. */
static bool parse_answer(const char *s, size_t n, long *st, uint64_t *len)
{
	size_t i = 0;
	uint64_t a = 0, b = 0;
	int da = 0, db = 0;

	for (; i < n && s[i] >= '0' && s[i] <= '9' && da < 4; i++, da++)
		a = a * 10 + (uint64_t)(s[i] - '0');
	if (!da || i >= n || s[i] != ' ')
		return false;
	for (i++; i < n && s[i] >= '0' && s[i] <= '9' && db < 19; i++, db++)
		b = b * 10 + (uint64_t)(s[i] - '0');
	if (!db || i != n || a > 255)
		return false;
	*st = (long)a;
	*len = b;
	return true;
}

/* Make a printable copy of an answer header for the reason. */
static void shown(char *dst, size_t cap, const char *s, size_t n)
{
	size_t j = 0;

	for (size_t i = 0; i < n && j + 1 < cap; i++)
		dst[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	dst[j] = '\0';
}

int vd_persist_run(struct vd_run_result *out, vd_persist *p, const char *const *hdr,
		   const struct vd_run_spec *unit)
{
	struct vd_buf head = VD_BUF_INIT(1 << 21);
	struct vd_run_input *pieces = NULL;
	struct feed_job job;
	pthread_t feeder;
	bool feeding = false, killed = false, ended = false, answered = false;
	bool broken = false, in_body = false, extra = false;
	char ahdr[PERSIST_ANSWER_HDR_MAX + 1];
	size_t ahdr_len = 0;
	uint64_t dlen = 0, want = 0, got = 0;
	long ast = 0;
	int64_t start, deadline, next_mem;
	char *blk = NULL;
	int status = 0, rc;

	memset(out, 0, sizeof(*out));
	vd_buf_init(&out->out, unit->out_cap);
	if (!p->alive || persist_exited(p, NULL))
		return -EPIPE;
	for (size_t i = 0; i < unit->nin; i++)
		dlen += unit->in[i].len;
	if ((rc = frame_header(&head, hdr, dlen)))
		goto out;
	pieces = calloc(unit->nin + 1, sizeof(*pieces));
	blk = malloc(RUN_IO_BLOCK);
	if (!pieces || !blk) {
		rc = -ENOMEM;
		goto out;
	}
	pieces[0] = (struct vd_run_input){ .mem = head.data, .len = head.len };
	memcpy(pieces + 1, unit->in, unit->nin * sizeof(*pieces));
	memset(&job, 0, sizeof(job));
	job.f.fd = p->in_fd;
	job.f.in = pieces;
	job.f.nin = unit->nin + 1;
	atomic_init(&job.f.stop, false);
	atomic_init(&job.done, false);
	start = vd_mono_ms();
	if ((rc = -pthread_create(&feeder, NULL, feed_main, &job)))
		goto out;
	feeding = true;
	deadline = unit->timeout_ms > 0 ? start + unit->timeout_ms : 0;
	next_mem = start + RUN_MEM_TICK_MS;

	while (!answered && !ended) {
		struct pollfd pfd[3];
		int nfd = 0;

		if (unit->cancel && atomic_load(unit->cancel) && !killed) {
			out->cancelled = true;
			snprintf(out->reason, sizeof(out->reason), "cancelled");
			killed = true;
		}
		if (!killed && deadline && vd_mono_ms() >= deadline) {
			snprintf(out->reason, sizeof(out->reason), "timeout");
			killed = true;
		}
		if (!killed && unit->mem_limit && vd_mono_ms() >= next_mem) {
			uint64_t rss = runner_group_rss(p->pid);

			if (rss > out->peak_rss)
				out->peak_rss = rss;
			if (rss > unit->mem_limit) {
				snprintf(out->reason, sizeof(out->reason), "memory limit");
				killed = true;
			}
			next_mem = vd_mono_ms() + RUN_MEM_TICK_MS;
		}
		if (killed)
			break;
		/* A feeder that failed for another reason than the function
		 * closing its stdin (a chunk file gone short) leaves a frame
		 * that cannot end: the unit fails. */
		if (atomic_load(&job.done) && job.rc && job.rc != -EPIPE) {
			snprintf(out->reason, sizeof(out->reason), "input: %s", strerror(-job.rc));
			killed = true;
			break;
		}
		pfd[nfd++] = (struct pollfd){ .fd = p->out_fd, .events = POLLIN };
		pfd[nfd++] = (struct pollfd){ .fd = p->err_fd, .events = POLLIN };
		if (p->pidfd >= 0)
			pfd[nfd++] = (struct pollfd){ .fd = p->pidfd, .events = POLLIN };
		if (poll(pfd, (nfds_t)nfd, RUN_TICK_MS) < 0) {
			if (errno != EINTR)
				vd_warn("persist: poll: %s", strerror(errno));
			continue;
		}
		if (pfd[1].revents) {
			ssize_t r = read(p->err_fd, blk, RUN_IO_BLOCK);

			if (r > 0)
				runner_tail_add(out, blk, (size_t)r);
		}
		if (pfd[0].revents) {
			ssize_t r = read(p->out_fd, blk, RUN_IO_BLOCK);
			size_t i = 0, n;

			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r <= 0) {
				ended = true;   /* stdout closed: it is ending */
				break;
			}
			n = (size_t)r;
			while (i < n && !in_body) {
				char c = blk[i++];

				if (c == '\n') {
					in_body = true;
					if (!parse_answer(ahdr, ahdr_len, &ast, &want)) {
						char sh[PERSIST_ANSWER_HDR_MAX + 1];
						shown(sh, sizeof sh, ahdr, ahdr_len);
						snprintf(out->reason, sizeof(out->reason),
							 "protocol: the answer header '%s' is not "
							 "'STATUS LEN'", sh);
						broken = true;
					} else if (!ast && want > unit->out_cap) {
						snprintf(out->reason, sizeof(out->reason), "stdout cap");
						killed = true;
					}
				} else if (ahdr_len == PERSIST_ANSWER_HDR_MAX) {
					char sh[PERSIST_ANSWER_HDR_MAX + 1];
					shown(sh, sizeof sh, ahdr, ahdr_len);
					snprintf(out->reason, sizeof(out->reason),
						 "protocol: no answer header ('STATUS LEN\\n') but '%s'", sh);
					broken = true;
				} else {
					ahdr[ahdr_len++] = c;
				}
				if (broken || killed)
					break;
			}
			if (broken || killed)
				break;
			if (in_body && i < n) {
				size_t take = n - i < want - got ? n - i : (size_t)(want - got);

				if (ast) {
					/* A failed unit's message: kept as its stderr is. */
					runner_tail_add(out, blk + i, take);
				} else if (vd_buf_add(&out->out, blk + i, take) < 0) {
					snprintf(out->reason, sizeof(out->reason), "stdout cap");
					killed = true;
					break;
				}
				got += take;
				/* Bytes past the answer: out of the protocol. */
				if (i + take < n)
					extra = true;
			}
			if (in_body && got == want)
				answered = true;
		}
		if (!answered && pfd[nfd - 1].fd == p->pidfd && pfd[nfd - 1].revents) {
			/* It exited: drain what it wrote first (its answer may be
			 * in the pipe still), then it ends. */
			int fl = fcntl(p->out_fd, F_GETFL);
			if (fl >= 0)
				fcntl(p->out_fd, F_SETFL, fl | O_NONBLOCK);
			struct pollfd q = { .fd = p->out_fd, .events = POLLIN };
			if (poll(&q, 1, 0) <= 0)
				ended = true;
		}
	}
	out->ms = vd_mono_ms() - start;
	if (feeding) {
		/* An answer while the frame is still being written means the
		 * function did not read all of it: the rest would be taken for
		 * the next frame. */
		if (answered && !atomic_load(&job.done)) {
			/* Give a feeder that is about to finish a moment. */
			for (int i = 0; i < 20 && !atomic_load(&job.done); i++)
				poll(NULL, 0, 1);
			if (!atomic_load(&job.done))
				broken = true;
		}
		atomic_store(&job.f.stop, true);
		pthread_join(feeder, NULL);
		feeding = false;
		if (answered && job.rc)
			broken = true;   /* EPIPE: it closed its stdin */
	}
	if (answered && extra)
		broken = true;
	if (killed) {
		persist_end(p, &status);
		out->exit = 128 + SIGKILL;
		out->signal = SIGKILL;
	} else if (ended) {
		/* Its stdout ended before its answer: wait for it (it may be
		 * closing stdout on the way out), then say how it ended. */
		int64_t until = vd_mono_ms() + VD_PERSIST_EXIT_GRACE_MS;
		while (!persist_exited(p, &status) && vd_mono_ms() < until)
			poll(NULL, 0, 5);
		if (p->alive)
			persist_end(p, &status);
		runner_set_status(out, status, false, &p->spec);
		if (!out->exit && !out->signal) {
			out->exit = 1;
			snprintf(out->reason, sizeof(out->reason),
				 "protocol: the function exited (status 0) without answering the unit");
		}
		vd_buf_reset(&out->out);
	} else if (broken && !answered) {
		persist_end(p, &status);
		out->exit = 1;
		vd_buf_reset(&out->out);
	} else {
		out->exit = (int)ast;
		if (ast)
			vd_buf_reset(&out->out);
		if (broken) {
			vd_warn("persist: %s ignored part of its frame or wrote past its answer; "
				"it is started again for the next unit", p->spec.exe);
			persist_end(p, NULL);
		}
	}
	rc = 0;
out:
	if (feeding) {
		atomic_store(&job.f.stop, true);
		pthread_join(feeder, NULL);
	}
	free(blk);
	free(pieces);
	vd_buf_release(&head);
	if (rc)
		vd_buf_release(&out->out);
	return rc;
}
