/*
 * id.h - content IDs: lowercase hex of keyed XXH3-128 (32 characters).
 *
 * Chunk, data, code and unit IDs are all computed with the store's secret
 * (192 random bytes in STATE/secret, mode 0600), so that nobody who lacks the
 * secret can craft two contents with the same ID. The secret is given to
 * executors at registration (they hold the enrollment token already) so that
 * they can verify what they download.
 *
 * A vd_key is plain data and may be copied. A vd_hasher keeps a pointer to the
 * key it was made with: the key must outlive the hasher.
 */
#ifndef VD_ID_H
#define VD_ID_H

#include <stdbool.h>
#include <stddef.h>

#define VD_ID_LEN 32          /* hex characters */
#define VD_ID_SIZE 33         /* with the terminating NUL */
#define VD_KEY_SIZE 192       /* >= XXH3_SECRET_SIZE_MIN (136) */
#define VD_KEY_HEX_SIZE (2 * VD_KEY_SIZE + 1)

struct vd_key {
	unsigned char secret[VD_KEY_SIZE];
};

/* Read the key from `path`, or create it there (0600, O_EXCL, fsync'd) from
 * getrandom() when it does not exist yet. -EINVAL if the file has the wrong
 * size, other -errno from the system. */
int vd_key_load_or_create(struct vd_key *out, const char *path);
void vd_key_to_hex(char out[VD_KEY_HEX_SIZE], const struct vd_key *k);
int vd_key_from_hex(struct vd_key *out, const char *hex);  /* -EINVAL */

/* One-shot ID of a byte range. */
void vd_id_of(char out[VD_ID_SIZE], const struct vd_key *k, const void *p, size_t n);
/* True when s is exactly 32 lowercase hex digits. */
bool vd_id_valid(const char *s);

/* Streaming ID, equal to vd_id_of over the concatenation of all updates. */
typedef struct vd_hasher vd_hasher;
int vd_hasher_new(vd_hasher **out, const struct vd_key *k);   /* -ENOMEM */
void vd_hasher_reset(vd_hasher *h);
void vd_hasher_update(vd_hasher *h, const void *p, size_t n);
/* Write the ID of everything fed since the last reset; the hasher may go on
 * being fed afterwards (digest does not consume the state). */
void vd_hasher_digest(vd_hasher *h, char out[VD_ID_SIZE]);
void vd_hasher_free(vd_hasher *h);

#endif
