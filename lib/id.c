/*
 * id.c - keyed XXH3-128 content IDs and the store secret (see id.h).
 */
#include "id.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "util.h"

_Static_assert(VD_KEY_SIZE >= XXH3_SECRET_SIZE_MIN, "key too short for XXH3");

struct vd_hasher {
	const struct vd_key *key;
	XXH3_state_t *st;
};

static void id_format(char out[VD_ID_SIZE], XXH128_hash_t h)
{
	/* High half first, as XXH128_canonicalFromHash orders it. */
	snprintf(out, VD_ID_SIZE, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
}

void vd_id_of(char out[VD_ID_SIZE], const struct vd_key *k, const void *p, size_t n)
{
	/* XXH3 reads nothing through p when n is 0, but keep a valid pointer so
	 * no sanitizer sees a NULL argument. */
	static const unsigned char empty[1];

	id_format(out, XXH3_128bits_withSecret(n ? p : empty, n, k->secret,
					       sizeof(k->secret)));
}

bool vd_id_valid(const char *s)
{
	size_t i;

	if (!s)
		return false;
	for (i = 0; i < VD_ID_LEN; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return false;
	}
	return s[VD_ID_LEN] == '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void vd_key_to_hex(char out[VD_KEY_HEX_SIZE], const struct vd_key *k)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < VD_KEY_SIZE; i++) {
		out[2 * i] = digits[k->secret[i] >> 4];
		out[2 * i + 1] = digits[k->secret[i] & 15];
	}
	out[2 * VD_KEY_SIZE] = '\0';
}

int vd_key_from_hex(struct vd_key *out, const char *hex)
{
	struct vd_key k;
	size_t i;

	if (!hex || strlen(hex) != 2 * VD_KEY_SIZE)
		return -EINVAL;
	for (i = 0; i < VD_KEY_SIZE; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		k.secret[i] = (unsigned char)(hi << 4 | lo);
	}
	*out = k;
	return 0;
}

static int key_read(struct vd_key *out, int fd)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size != VD_KEY_SIZE)
		return -EINVAL;
	rc = vd_pread_all(fd, out->secret, VD_KEY_SIZE, 0);
	return rc < 0 ? rc : 0;
}

static int key_fill_random(struct vd_key *k)
{
	size_t got = 0;

	while (got < VD_KEY_SIZE) {
		ssize_t r = getrandom(k->secret + got, VD_KEY_SIZE - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

/* Create the key file. O_EXCL makes two processes racing to create it agree:
 * the loser gets -EEXIST and reads the winner's key. */
static int key_create(struct vd_key *out, const char *path)
{
	struct vd_key k;
	int fd = -1, rc;

	rc = key_fill_random(&k);
	if (rc)
		return rc;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* The umask may only remove bits, but be explicit about the mode. */
	if (fchmod(fd, 0600) < 0) {
		rc = -errno;
		goto out;
	}
	rc = vd_write_all(fd, k.secret, VD_KEY_SIZE);
	if (rc)
		goto out;
	if (fsync(fd) < 0) {
		rc = -errno;
		goto out;
	}
	rc = vd_fsync_parent(path);
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(path);
	else
		*out = k;
	explicit_bzero(&k, sizeof(k));
	return rc;
}

int vd_key_load_or_create(struct vd_key *out, const char *path)
{
	int attempt, rc = -ENOENT;

	/* Two rounds cover the race where another process creates the file
	 * between our failed open and our O_EXCL create. */
	for (attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd >= 0) {
			rc = key_read(out, fd);
			close(fd);
			return rc;
		}
		if (errno != ENOENT)
			return -errno;
		rc = key_create(out, path);
		if (rc != -EEXIST)
			return rc;
	}
	return rc;
}

int vd_hasher_new(vd_hasher **out, const struct vd_key *k)
{
	vd_hasher *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->st = XXH3_createState();
	if (!h->st) {
		free(h);
		return -ENOMEM;
	}
	h->key = k;
	vd_hasher_reset(h);
	*out = h;
	return 0;
}

void vd_hasher_reset(vd_hasher *h)
{
	/* Fails only for a secret shorter than XXH3_SECRET_SIZE_MIN, which the
	 * static assertion above rules out. */
	(void)XXH3_128bits_reset_withSecret(h->st, h->key->secret,
					    sizeof(h->key->secret));
}

void vd_hasher_update(vd_hasher *h, const void *p, size_t n)
{
	if (n)
		(void)XXH3_128bits_update(h->st, p, n);
}

void vd_hasher_digest(vd_hasher *h, char out[VD_ID_SIZE])
{
	id_format(out, XXH3_128bits_digest(h->st));
}

void vd_hasher_free(vd_hasher *h)
{
	if (!h)
		return;
	XXH3_freeState(h->st);
	free(h);
}
