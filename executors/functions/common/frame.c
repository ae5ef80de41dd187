/*
 * frame.c - the persistent-mode loop of the shipped functions (frame.h).
 *
 * Frames (docs/persistent.md): "unit HLEN DLEN\n", HLEN bytes of
 * NAME=value lines (\\ and \n escaped in values), DLEN bytes of input;
 * the answer "STATUS LEN\n" and LEN bytes. The header line is read a byte
 * at a time, so that no byte of the next frame is taken early; the rest
 * in blocks of at most what the frame has left.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "frame.h"
#include "util.h"

#define FRAME_LINE_MAX 64
#define FRAME_HDR_MAX ((size_t)1 << 20)
#define FRAME_BLOCK 65536

/* Read exactly n bytes; -EPIPE at an early EOF. */
static int read_exact(int fd, void *p, size_t n)
{
	char *c = p;

	while (n) {
		ssize_t r = read(fd, c, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPIPE;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* "unit HLEN DLEN"; 1 for a frame, 0 at EOF before one, -EPROTO. */
static int read_frame_line(int fd, unsigned long long *hlen, unsigned long long *dlen)
{
	char line[FRAME_LINE_MAX + 1];
	size_t n = 0;
	char c, tail;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return n ? -EPROTO : 0;
		if (c == '\n')
			break;
		if (n == FRAME_LINE_MAX)
			return -EPROTO;
		line[n++] = c;
	}
	line[n] = '\0';
	if (sscanf(line, "unit %llu %llu%c", hlen, dlen, &tail) != 2)
		return -EPROTO;
	return 1;
}

/* Set each NAME=value line of the header in the environment. */
static int apply_header(char *h, size_t n)
{
	char *p = h, *end = h + n;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eq, *w, *r;

		if (!nl)
			return -EPROTO;
		*nl = '\0';
		eq = strchr(p, '=');
		if (!eq || eq == p)
			return -EPROTO;
		*eq = '\0';
		/* Undo the escapes in place: the value only shrinks. */
		for (r = w = eq + 1; *r; r++) {
			if (*r == '\\' && r[1] == 'n') {
				*w++ = '\n';
				r++;
			} else if (*r == '\\' && r[1] == '\\') {
				*w++ = '\\';
				r++;
			} else {
				*w++ = *r;
			}
		}
		*w = '\0';
		if (setenv(p, eq + 1, 1) < 0)
			return -errno;
		p = nl + 1;
	}
	return 0;
}

/* Copy n bytes from fd into a new memfd, positioned at 0. */
static int input_memfd(int *out, int fd, unsigned long long n, char *blk)
{
	int m = memfd_create("vdfs-unit", MFD_CLOEXEC), rc = 0;

	if (m < 0)
		return -errno;
	while (n && !rc) {
		size_t want = n < FRAME_BLOCK ? (size_t)n : FRAME_BLOCK;

		rc = read_exact(fd, blk, want);
		if (!rc)
			rc = vd_write_all(m, blk, want);
		n -= want;
	}
	if (!rc && lseek(m, 0, SEEK_SET) < 0)
		rc = -errno;
	if (rc) {
		close(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* Answer "STATUS LEN\n" and the output memfd's bytes (none if STATUS). */
static int answer(int fd, int st, int outm, char *blk)
{
	struct stat sb;
	char hdr[64];
	off_t off = 0, len;
	int rc;

	if (fstat(outm, &sb) < 0)
		return -errno;
	len = st ? 0 : sb.st_size;
	snprintf(hdr, sizeof hdr, "%d %lld\n", st, (long long)len);
	rc = vd_write_all(fd, hdr, strlen(hdr));
	while (!rc && off < len) {
		ssize_t r = pread(outm, blk, FRAME_BLOCK, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		rc = vd_write_all(fd, blk, (size_t)r);
		off += r;
	}
	return rc;
}

int vd_frame_main(int argc, char **argv, vd_frame_unit_fn unit, void *ctx)
{
	const char *mode = getenv("VDFS_MODE");
	struct vd_buf hdr = VD_BUF_INIT(FRAME_HDR_MAX);
	unsigned long long hlen, dlen;
	char *blk = NULL;
	int in = -1, out = -1, status = 1, rc;

	if (!mode || strcmp(mode, "persistent"))
		return unit(argc, argv, ctx);
	/* The frames' own descriptors, apart from the 0 and 1 each unit
	 * gets. */
	in = fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
	out = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
	blk = malloc(FRAME_BLOCK);
	if (in < 0 || out < 0 || !blk) {
		fprintf(stderr, "%s: cannot set up persistent mode: %s\n", argv[0],
			strerror(errno ? errno : ENOMEM));
		goto out;
	}
	while ((rc = read_frame_line(in, &hlen, &dlen)) == 1) {
		int inm = -1, outm = -1, st;

		vd_buf_reset(&hdr);
		if (hlen > FRAME_HDR_MAX || vd_buf_grow(&hdr, (size_t)hlen + 1)) {
			rc = -EPROTO;
			break;
		}
		if ((rc = read_exact(in, hdr.data, (size_t)hlen)))
			break;
		if ((rc = apply_header(hdr.data, (size_t)hlen)))
			break;
		if ((rc = input_memfd(&inm, in, dlen, blk)))
			break;
		outm = memfd_create("vdfs-out", MFD_CLOEXEC);
		if (outm < 0 || dup2(inm, STDIN_FILENO) < 0 || dup2(outm, STDOUT_FILENO) < 0) {
			rc = -errno;
			close(inm);
			if (outm >= 0)
				close(outm);
			break;
		}
		close(inm);
		optind = 0;
		st = unit(argc, argv, ctx);
		fflush(stdout);
		rc = answer(out, st, outm, blk);
		close(outm);
		if (rc)
			break;
	}
	if (rc == 0)
		status = 0;   /* stdin ended between frames: we are done */
	else
		fprintf(stderr, "%s: persistent mode: %s\n", argv[0],
			rc == -EPROTO ? "a frame out of the protocol" : strerror(-rc));
out:
	free(blk);
	vd_buf_release(&hdr);
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return status;
}
