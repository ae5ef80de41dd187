/*
 * http_session.c - sign-in sessions (see http_session.h).
 *
 * A flat table searched from end to end: at most VD_SESSION_MAX entries
 * of a hundred-odd bytes, compared by their 32-byte digests, costs a few
 * microseconds a request, less than the catalog lookup every session
 * request does anyway. Lookups compare digests of the presented ID, so how
 * long a lookup takes says nothing about how close a guess came.
 */
#include "http_session.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "util.h"

struct slot {
	bool used;
	unsigned char sid_sha[32];      /* SHA-256 of the session ID's hex */
	struct vd_session_info info;
};

struct vd_sessions {
	pthread_mutex_t lock;
	/* Under lock. */
	struct slot slots[VD_SESSION_MAX];
	unsigned open;
};

int vd_sessions_new(vd_sessions **out)
{
	vd_sessions *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
}

void vd_sessions_free(vd_sessions *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	/* The digests are not secrets, but the CSRF tokens are worth wiping. */
	memset(s->slots, 0, sizeof(s->slots));
	free(s);
}

static void hex_of(char *out, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* 32 random bytes as 64 hex digits. */
static int random_hex(char out[VD_SESSION_HEX])
{
	unsigned char r[32];
	size_t got = 0;

	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -EIO;
		got += (size_t)n;
	}
	hex_of(out, r, sizeof(r));
	return 0;
}

/* The digest a session is filed under; -ENOENT for anything that is not
 * 64 lowercase hex digits (so junk never reaches the table). */
static int sid_digest(unsigned char out[32], const char *sid)
{
	size_t n = 0;

	for (; sid[n]; n++)
		if (n >= 64 || !((sid[n] >= '0' && sid[n] <= '9') || (sid[n] >= 'a' && sid[n] <= 'f')))
			return -ENOENT;
	if (n != 64)
		return -ENOENT;
	return gnutls_hash_fast(GNUTLS_DIG_SHA256, sid, 64, out) == 0 ? 0 : -EIO;
}

int vd_sessions_open(char sid[VD_SESSION_HEX], struct vd_session_info *info,
		     vd_sessions *s, bool admin, const unsigned char token_sha[32])
{
	unsigned char d[32];
	struct slot *pick = NULL;
	int64_t now = vd_now_ms();
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = random_hex(sid)) || (rc = random_hex(info->csrf)) ||
	    (rc = sid_digest(d, sid)))
		return rc;
	info->admin = admin;
	if (!admin)
		memcpy(info->token_sha, token_sha, 32);
	info->expires = now + VD_SESSION_TTL_MS;

	pthread_mutex_lock(&s->lock);
	/* A free or expired slot, else the one that expires first: a flood
	 * of sign-ins pushes out the oldest sessions, never the table's
	 * bounds. */
	for (size_t i = 0; i < VD_SESSION_MAX; i++) {
		struct slot *t = &s->slots[i];

		if (!t->used || t->info.expires <= now) {
			pick = t;
			break;
		}
		if (!pick || t->info.expires < pick->info.expires)
			pick = t;
	}
	s->open += !pick->used;
	pick->used = true;
	memcpy(pick->sid_sha, d, sizeof(d));
	pick->info = *info;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The slot filed under d, lock held; NULL when none. */
static struct slot *slot_of(vd_sessions *s, const unsigned char d[32])
{
	for (size_t i = 0; i < VD_SESSION_MAX; i++)
		if (s->slots[i].used && !memcmp(s->slots[i].sid_sha, d, 32))
			return &s->slots[i];
	return NULL;
}

int vd_sessions_find(struct vd_session_info *info, vd_sessions *s, const char *sid)
{
	unsigned char d[32];
	struct slot *t;
	int rc = sid ? sid_digest(d, sid) : -ENOENT;

	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	t = slot_of(s, d);
	if (t && t->info.expires <= vd_now_ms()) {
		t->used = false;
		s->open--;
		t = NULL;
	}
	if (t)
		*info = t->info;
	pthread_mutex_unlock(&s->lock);
	return t ? 0 : -ENOENT;
}

int vd_sessions_close(vd_sessions *s, const char *sid)
{
	unsigned char d[32];
	struct slot *t;
	int rc = sid ? sid_digest(d, sid) : -ENOENT;

	if (rc)
		return rc;
	pthread_mutex_lock(&s->lock);
	t = slot_of(s, d);
	if (t) {
		memset(t, 0, sizeof(*t));
		s->open--;
	}
	pthread_mutex_unlock(&s->lock);
	return t ? 0 : -ENOENT;
}

unsigned vd_sessions_count(vd_sessions *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->open;
	pthread_mutex_unlock(&s->lock);
	return n;
}
