/*
 * factor.c - vdfs-factor: factor integers, one per input line.
 *
 *   vdfs-factor < numbers          rows "n,p1,p2,..." in input order
 *
 * Each line holds one integer of any size; the row is the number (in
 * canonical decimal: no sign for positives, no leading zeros), then its prime
 * factors in ascending order, each repeated as often as it divides n. The
 * conventions for 0, 1 and negatives follow PARI's factor(): "0,0", "1" (no
 * factors: the empty product), "-12,-1,2,2,3". Surrounding spaces, tabs and
 * a CR are ignored, as is a leading '+'; blank lines give no row. Anything
 * else gives "<line>,error: not an integer" and the rest go on. docs/
 * workloads.md has the full contract.
 *
 * The factoring is PARI's (Z_factor, the code behind gp's factor()), which is
 * as fast as anything in Debian for the sizes users bring. A number can take
 * forever, though (a 300-digit semiprime), and PARI has no timeout hook that
 * is safe to fire at an arbitrary point: longjmp out of a signal handler in
 * the middle of a GMP allocation leaves the heap broken. So numbers of 20
 * digits and more go to a child process, a "worker" forked once and fed one
 * number at a time over a pipe; the parent waits for each answer with a
 * deadline (FACTOR_TIME_LIMIT seconds, default 60; 0 for none) and, when it
 * passes, kills the worker, writes "n,error: time limit" and forks a new
 * worker for the next number. A live worker costs one pipe round trip per
 * number, a few microseconds against the 30 ms of a 128-bit semiprime; only
 * a timed-out number costs a fork. Smaller numbers, which PARI factors in
 * at most about a millisecond, are factored in this process: for them the
 * round trip would be most of the cost.
 *
 * Environment: FACTOR_TIME_LIMIT (seconds, decimals allowed), FACTOR_PROVE=1
 * (prove every factor prime instead of PARI's default BPSW test, which has
 * no known counterexample; proving is slow for big factors).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pari/pari.h>

#include "buf.h"
#include "frame.h"
#include "lines.h"
#include "util.h"

/* A line may hold a number of up to about a million digits; longer lines
 * are reported as errors, never buffered whole. */
#define FACTOR_LINE_MAX (1u << 20)
/* A row is at most the number plus its factors: for n < 10^d the factors
 * with their commas need at most about 6.7 d bytes (all 2s), so 16 MiB
 * holds any row of a line that fits. */
#define FACTOR_ROW_MAX (16u << 20)
/* Numbers of up to this many digits (below 2^64) are factored in this
 * process: PARI needs at most about a millisecond for them, far less than a
 * round trip to the worker costs in proportion, and none can get stuck. */
#define FACTOR_INLINE_DIGITS 19
/* Output is written in blocks of about this size. */
#define FACTOR_OUT_BLOCK (64u << 10)
/* PARI's stack starts at this size and may grow to FACTOR_STACK_MAX, or to
 * a quarter of the address-space limit when one is set. */
#define FACTOR_STACK_START (8u << 20)
#define FACTOR_STACK_MAX ((size_t)1 << 30)
/* The primes PARI precomputes, as gp's default primelimit. */
#define FACTOR_PRIMELIMIT 500000
/* Error lines on stderr per run before they are only counted. */
#define FACTOR_MAX_NOTES 50

static unsigned long notes;

/* One stderr line per problem, up to FACTOR_MAX_NOTES: the rows carry every
 * error anyway, the log needs only a sample. */
__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;

	if (++notes > FACTOR_MAX_NOTES)
		return;
	va_start(ap, fmt);
	fputs("vdfs-factor: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- the worker: PARI in a child process ----------------------------- */

/* A PARI error message as one CSV-safe phrase: newlines become spaces and
 * runs of spaces (PARI indents its messages) one space. */
static int add_pari_error(struct vd_buf *row, const char *msg)
{
	struct vd_buf clean = VD_BUF_INIT(1024);
	bool space = true;
	int rc = 0;

	rc = vd_buf_adds(&clean, "error: pari: ");
	for (const char *c = msg; *c && !rc; c++) {
		bool s = (*c == ' ' || *c == '\n' || *c == '\t' || *c == '\r');

		if (s && space)
			continue;
		space = s;
		rc = vd_buf_add(&clean, s ? " " : c, 1);
		if (rc == -EFBIG)
			rc = 0;         /* a long message is cut, not an error */
	}
	if (!rc)
		rc = vd_csv_add_field(row, clean.data, clean.len);
	vd_buf_release(&clean);
	return rc;
}

/* Drop what was appended to b after its first `len` bytes. */
static void truncate_to(struct vd_buf *b, size_t len)
{
	if (b->len > len) {
		b->len = len;
		b->data[len] = '\0';
	}
}

/*
 * Append ",p1,p2,..." for the integer num ("-?[0-9]+", canonical) to fac,
 * or ",error: ..." when PARI gives up. PARI errors longjmp out of the
 * library to pari_CATCH, so everything the recovery path uses is either
 * untouched inside pari_TRY or volatile.
 */
static int factor_one(struct vd_buf *fac, const char *num)
{
	pari_sp av = avma;
	size_t mark = fac->len;
	volatile int rc = 0;

	pari_CATCH(CATCH_ALL) {
		char *msg = pari_err2str(pari_err_last());

		truncate_to(fac, mark);
		rc = vd_buf_add(fac, ",", 1);
		if (!rc)
			rc = add_pari_error(fac, msg ? msg : "unknown error");
		pari_free(msg);
	} pari_TRY {
		bool neg = num[0] == '-';
		GEN n = strtoi(num + neg), f, p, e;

		if (neg)
			n = negi(n);
		f = Z_factor(n);
		p = gel(f, 1);
		e = gel(f, 2);
		for (long i = 1; i < lg(p) && !rc; i++) {
			char *s = itostr(gel(p, i));
			size_t slen = strlen(s);
			ulong k = itou(gel(e, i));

			for (ulong j = 0; j < k && !rc; j++) {
				rc = vd_buf_add(fac, ",", 1);
				if (!rc)
					rc = vd_buf_add(fac, s, slen);
			}
		}
	} pari_ENDCATCH
	set_avma(av);
	if (rc == -EFBIG) {
		/* Only a number with millions of small factors gets here. */
		truncate_to(fac, mark);
		rc = vd_buf_adds(fac, ",error: too many factors to print");
	}
	return rc;
}

/* The largest PARI stack this process may reserve: FACTOR_STACK_MAX, less
 * under an address-space limit (the executor sets one with a memory cap). */
static size_t stack_max(void)
{
	struct rlimit rl;
	size_t max = FACTOR_STACK_MAX;

	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur / 4 < max)
		max = rl.rlim_cur / 4;
	if (max < FACTOR_STACK_START)
		max = FACTOR_STACK_START;
	return max;
}

/* The worker: read numbers from in_fd, write rows to out_fd, until EOF.
 * Never returns. */
__attribute__((noreturn))
static void worker_main(int in_fd, int out_fd)
{
	struct vd_lines in;
	struct vd_buf num = VD_BUF_INIT(FACTOR_LINE_MAX + 1);
	struct vd_buf row = VD_BUF_INIT(FACTOR_ROW_MAX);
	const char *line;
	size_t len;
	int rc, status = 1;

	/* Nothing PARI might print may reach the unit's output. */
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
		_exit(1);
	/* PARI is already set up: the parent did it before forking. */
	rc = vd_lines_init(&in, in_fd, FACTOR_LINE_MAX);
	while (!rc) {
		rc = vd_lines_next(&in, &line, &len, -1);
		if (rc <= 0)
			break;
		vd_buf_reset(&num);
		vd_buf_reset(&row);
		rc = vd_buf_add(&num, line, len);
		if (!rc)
			rc = vd_buf_add(&row, line, len);
		if (!rc)
			rc = factor_one(&row, num.data);
		if (!rc)
			rc = vd_buf_add(&row, "\n", 1);
		if (!rc)
			rc = vd_write_all(out_fd, row.data, row.len);
	}
	if (rc == 0)
		status = 0;
	else
		fprintf(stderr, "vdfs-factor: factoring process: %s\n", strerror(-rc));
	vd_lines_release(&in);
	vd_buf_release(&num);
	vd_buf_release(&row);
	/* _exit: the inherited copy of the parent's state, PARI's included, is
	 * not ours to clean up (and stdio buffers are the parent's to flush). */
	_exit(status);
}

/* ---- the parent: input, rows, and the worker's life ------------------- */

struct worker {
	pid_t pid;        /* 0: none running */
	int to;           /* numbers to the worker */
	int from;         /* rows from the worker */
	struct vd_lines rows;
};

static int worker_start(struct worker *w)
{
	int to[2] = { -1, -1 }, from[2] = { -1, -1 }, rc = 0;
	pid_t pid, parent = getpid();

	if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0) {
		rc = -errno;
		goto out;
	}
	/* Pending output would be written twice if the child flushed it. */
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out;
	}
	if (pid == 0) {
		/* A worker outlives a parent killed mid-number only until the
		 * kernel tells it (the executor kills the process group anyway). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(1);
		close(to[1]);
		close(from[0]);
		worker_main(to[0], from[1]);
	}
	w->pid = pid;
	w->to = to[1];
	w->from = from[0];
	to[1] = from[0] = -1;
	/* A row holds the number, its factors, the commas and the '\n'. */
	rc = vd_lines_init(&w->rows, w->from, FACTOR_ROW_MAX + FACTOR_LINE_MAX);
out:
	for (int i = 0; i < 2; i++) {
		if (to[i] >= 0)
			close(to[i]);
		if (from[i] >= 0)
			close(from[i]);
	}
	return rc;
}

/* Stop the worker: close its input (it exits at EOF) or, with kill, SIGKILL
 * it. Returns its wait status, or -1 if none was running. */
static int worker_stop(struct worker *w, bool kill_it)
{
	int st = -1;

	if (w->pid <= 0)
		return -1;
	if (kill_it)
		kill(w->pid, SIGKILL);
	close(w->to);
	close(w->from);
	vd_lines_release(&w->rows);
	while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
		;
	w->pid = 0;
	w->to = w->from = -1;
	return st;
}

/* What a dead worker's wait status says, for an error row. */
static void describe_death(char out[64], int st)
{
	if (WIFSIGNALED(st))
		snprintf(out, 64, "error: factoring process died (signal %d)",
			 WTERMSIG(st));
	else
		snprintf(out, 64, "error: factoring process exited (status %d)",
			 WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

struct factor_run {
	struct worker w;
	int64_t limit_ms;         /* 0: no time limit */
	struct vd_buf out;        /* rows not yet written to stdout */
	struct vd_buf msg;        /* scratch for the number sent */
	struct vd_buf fac;        /* scratch for a row factored here */
};

/*
 * Factor the canonical integer num (n bytes) through the worker and append
 * its row to r->out: the worker's row, or "n,error: ..." when it ran out of
 * time or died. Returns -errno only for failures of this process.
 */
static int factor_via_worker(struct factor_run *r, uint64_t lineno,
			     const char *num, size_t n)
{
	const char *row;
	size_t rlen;
	char why[64];
	int rc, st;

	if (n - (num[0] == '-') <= FACTOR_INLINE_DIGITS) {
		/* Small enough to factor here: no round trip, no time limit. */
		rc = vd_buf_add(&r->fac, num, n);
		if (!rc)
			rc = factor_one(&r->fac, num);
		if (!rc)
			rc = vd_buf_add(&r->out, r->fac.data, r->fac.len);
		vd_buf_reset(&r->fac);
		return rc ? rc : vd_buf_add(&r->out, "\n", 1);
	}
	if (!r->w.pid) {
		rc = worker_start(&r->w);
		if (rc)
			return rc;
	}
	vd_buf_reset(&r->msg);
	rc = vd_buf_add(&r->msg, num, n);
	if (!rc)
		rc = vd_buf_add(&r->msg, "\n", 1);
	if (rc)
		return rc;
	/* A worker that died between numbers shows up as EPIPE here (SIGPIPE
	 * is ignored) and as EOF below; both are reported the same way. */
	rc = vd_write_all(r->w.to, r->msg.data, r->msg.len);
	if (!rc)
		rc = vd_lines_next(&r->w.rows, &row, &rlen,
				   r->limit_ms ? vd_mono_ms() + r->limit_ms : -1);
	if (rc == 1) {
		rc = vd_buf_add(&r->out, row, rlen);
		return rc ? rc : vd_buf_add(&r->out, "\n", 1);
	}
	if (rc == -ETIMEDOUT) {
		worker_stop(&r->w, true);
		note("line %llu: time limit of %.3g s passed; number of %zu digits",
		     (unsigned long long)lineno, (double)r->limit_ms / 1000,
		     n - (num[0] == '-'));
		snprintf(why, sizeof(why), "error: time limit");
	} else if (rc == 0 || rc == -EPIPE || rc == -ECONNRESET) {
		st = worker_stop(&r->w, false);
		describe_death(why, st);
		note("line %llu: %s", (unsigned long long)lineno, why);
	} else {
		return rc < 0 ? rc : -EIO;
	}
	rc = vd_buf_add(&r->out, num, n);
	if (!rc)
		rc = vd_buf_add(&r->out, ",", 1);
	if (!rc)
		rc = vd_buf_adds(&r->out, why);
	if (!rc)
		rc = vd_buf_add(&r->out, "\n", 1);
	return rc;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * Is s[0..n) an integer as documented: blanks around it, an optional sign,
 * then only decimal digits? If so, the canonical form (leading zeros
 * dropped, "-" only for negatives, never "-0") goes to canon.
 */
static int parse_integer(struct vd_buf *canon, const char *s, size_t n, bool *ok)
{
	size_t i = 0, j = n, k;
	bool neg = false;

	*ok = false;
	vd_buf_reset(canon);
	while (i < j && is_blank(s[i]))
		i++;
	while (j > i && is_blank(s[j - 1]))
		j--;
	if (i < j && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == j)
		return 0;
	for (k = i; k < j; k++)
		if (s[k] < '0' || s[k] > '9')
			return 0;
	while (i + 1 < j && s[i] == '0')
		i++;
	if (s[i] == '0')
		neg = false;
	*ok = true;
	if (neg && vd_buf_add(canon, "-", 1))
		return -EFBIG;
	return vd_buf_add(canon, s + i, j - i);
}

static bool is_blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!is_blank(s[i]))
			return false;
	return true;
}

/* "<line>,error: WHY\n" with the line as one CSV field. */
static int add_error_row(struct vd_buf *out, const char *line, size_t n,
			 const char *why)
{
	int rc = vd_csv_add_field(out, line, n);

	if (!rc)
		rc = vd_buf_add(out, ",", 1);
	if (!rc)
		rc = vd_buf_adds(out, why);
	if (!rc)
		rc = vd_buf_add(out, "\n", 1);
	return rc;
}

/* The row of an over-long line: its first bytes and "...", then why. */
static int add_long_row(struct vd_buf *out, const struct vd_lines *in,
			const char *why)
{
	struct vd_buf head = VD_BUF_INIT(VD_LINES_PREFIX + 8);
	int rc;

	rc = vd_buf_add(&head, in->long_prefix, in->long_prefix_len);
	if (!rc)
		rc = vd_buf_adds(&head, "...");
	if (!rc)
		rc = add_error_row(out, head.data, head.len, why);
	vd_buf_release(&head);
	return rc;
}

/* FACTOR_TIME_LIMIT: seconds (decimals allowed), 0 for none; default 60. */
static int read_limit(int64_t *ms)
{
	const char *v = getenv("FACTOR_TIME_LIMIT");
	char *end;
	double s;

	*ms = 60000;
	if (!v || !*v)
		return 0;
	errno = 0;
	s = strtod(v, &end);
	while (*end == ' ')
		end++;
	if (errno || *end || !isfinite(s) || s < 0 || s > 1e7) {
		fprintf(stderr, "vdfs-factor: FACTOR_TIME_LIMIT='%s' is not a number "
			"of seconds between 0 and 10000000\n", v);
		return -EINVAL;
	}
	*ms = (int64_t)(s * 1000 + 0.5);
	if (s > 0 && *ms == 0)
		*ms = 1;
	return 0;
}

static int run(struct factor_run *r)
{
	struct vd_lines in;
	struct vd_buf canon = VD_BUF_INIT(FACTOR_LINE_MAX + 1);
	const char *line;
	size_t len;
	char why[96];
	bool ok;
	int rc;

	rc = vd_lines_init(&in, STDIN_FILENO, FACTOR_LINE_MAX);
	while (!rc) {
		rc = vd_lines_next(&in, &line, &len, -1);
		if (rc == 0)
			break;
		if (rc == -EFBIG) {
			snprintf(why, sizeof(why), "error: line too long (%zu bytes; "
				 "the limit is %u)", in.long_len, FACTOR_LINE_MAX);
			note("line %llu: %s", (unsigned long long)in.lineno, why);
			rc = add_long_row(&r->out, &in, why);
		} else if (rc < 0) {
			fprintf(stderr, "vdfs-factor: reading the input: %s\n", strerror(-rc));
			break;
		} else if (is_blank_line(line, len)) {
			rc = 0;
		} else {
			rc = parse_integer(&canon, line, len, &ok);
			if (!rc && ok) {
				rc = factor_via_worker(r, in.lineno, canon.data, canon.len);
			} else if (!rc) {
				note("line %llu: not an integer", (unsigned long long)in.lineno);
				rc = add_error_row(&r->out, line, len, "error: not an integer");
			}
		}
		if (!rc)
			rc = vd_out_flush(&r->out, STDOUT_FILENO, FACTOR_OUT_BLOCK);
	}
	if (!rc)
		rc = vd_out_flush(&r->out, STDOUT_FILENO, 0);
	vd_lines_release(&in);
	vd_buf_release(&canon);
	return rc;
}

/* One unit: its numbers factored, its rows written. PARI is set up once
 * for all units (main); the time limit and the notes are the unit's. */
static int factor_unit(int argc, char **argv, void *ctx)
{
	struct factor_run r = {
		.w = { .pid = 0, .to = -1, .from = -1 },
		.out = VD_BUF_INIT(FACTOR_ROW_MAX + FACTOR_OUT_BLOCK + 256),
		.msg = VD_BUF_INIT(FACTOR_LINE_MAX + 2),
		.fac = VD_BUF_INIT(FACTOR_ROW_MAX),
	};
	const char *prove = getenv("FACTOR_PROVE");
	int rc, st;

	(void)argc;
	(void)argv;
	(void)ctx;
	notes = 0;
	if (read_limit(&r.limit_ms))
		return 2;
	factor_proven = prove && !strcmp(prove, "1");
	rc = run(&r);
	st = worker_stop(&r.w, false);
	if (!rc && st != -1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		char why[64];

		describe_death(why, st);
		fprintf(stderr, "vdfs-factor: at the end: %s\n", why);
		rc = -EIO;
	}
	if (rc && rc != -EIO)
		fprintf(stderr, "vdfs-factor: %s\n", strerror(-rc));
	if (notes > FACTOR_MAX_NOTES)
		fprintf(stderr, "vdfs-factor: %lu problems in all (the first %d "
			"are shown)\n", notes, FACTOR_MAX_NOTES);
	vd_buf_release(&r.out);
	vd_buf_release(&r.msg);
	vd_buf_release(&r.fac);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	int rc;

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: vdfs-factor < numbers\n"
		       "Factors one integer per input line; prints n,p1,p2,... rows in input\n"
		       "order (n,error: REASON for a line that is not an integer, or one that\n"
		       "took too long). Environment: FACTOR_TIME_LIMIT=SECONDS per number\n"
		       "(default 60, 0 for none), FACTOR_PROVE=1 to prove every factor prime.\n"
		       "With VDFS_MODE=persistent it serves units as frames on stdin\n"
		       "(docs/persistent.md) instead of reading one to its end.\n"
		       "Exit: 0 when every line got its row, 1 when the input or output failed,\n"
		       "2 for a bad FACTOR_TIME_LIMIT or any argument but --help.\n");
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "vdfs-factor: takes no arguments, not '%s' (see vdfs-factor "
			"--help)\n", argv[1]);
		return 2;
	}
	/* A dead worker must show up as EPIPE on write, not kill us. */
	signal(SIGPIPE, SIG_IGN);
	/* No signal handlers (INIT_SIGm): PARI's would fight the sanitizers'
	 * and turn a crash into a message; the parent reports a dead worker.
	 * The worker is forked with PARI set up and inherits it. */
	pari_init_opts(FACTOR_STACK_START, FACTOR_PRIMELIMIT, INIT_DFTm);
	paristack_setsize(FACTOR_STACK_START, stack_max());
	/* Growing the stack is routine here, not worth a warning per number. */
	DEBUGMEM = 0;
	rc = vd_frame_main(argc, argv, factor_unit, NULL);
	pari_close();
	return rc;
}
