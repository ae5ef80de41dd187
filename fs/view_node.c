/*
 * view_node.c - the node table: which inode number stands for what.
 *
 * The low-level API leaves inode numbers to us. A node is made on the first
 * lookup of a (parent, name) and lives until the kernel has forgotten every
 * lookup of it and no open handle or child node refers to it.
 *
 * Inode numbers are derived from a hash of (parent inode, name), probing
 * upwards past numbers in use. That makes the number a plain readdir reports
 * for a name nobody has looked up yet (node_peek_ino) the same one a later
 * lookup hands out, without making nodes for every listed name, and it
 * gives a name the same number again after the kernel forgot it.
 *
 * When a name comes to mean something else (data/X was a file and is now a
 * directory, result.csv was replaced by a newer run's result) the old node is
 * unhashed and a new one, with a new number, takes the name: the kernel must
 * never see one inode change its type, and an immutable inode's cached pages
 * must never be reused for other bytes.
 */
#include "view_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64's finalizer: spreads FNV's weak low bits over the word. */
static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t name_hash(fuse_ino_t parent, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (int i = 0; i < 8; i++) {
		h ^= (parent >> (8 * i)) & 0xff;
		h *= 0x100000001b3ULL;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

/* Inode numbers stay below 2^63 (some tools print them signed) and clear
 * of 0 (invalid) and 1 (the root). */
static fuse_ino_t ino_clamp(uint64_t x)
{
	x &= 0x7fffffffffffffffULL;
	return x < 2 ? x + 2 : x;
}

static size_t ino_bucket(const struct vd_view *v, fuse_ino_t ino)
{
	return mix64(ino) & (v->nbuckets - 1);
}

static struct vnode *ino_find_locked(struct vd_view *v, fuse_ino_t ino)
{
	for (struct vnode *n = v->by_ino[ino_bucket(v, ino)]; n; n = n->next_ino)
		if (n->ino == ino)
			return n;
	return NULL;
}

static fuse_ino_t parent_ino(const struct vnode *n)
{
	return n->parent ? n->parent->ino : FUSE_ROOT_ID;
}

static struct vnode *name_find_locked(struct vd_view *v, struct vnode *parent,
				      const char *name)
{
	size_t b = name_hash(parent->ino, name) & (v->nbuckets - 1);
	for (struct vnode *n = v->by_name[b]; n; n = n->next_name)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void name_insert_locked(struct vd_view *v, struct vnode *n)
{
	size_t b = name_hash(parent_ino(n), n->name) & (v->nbuckets - 1);
	n->next_name = v->by_name[b];
	v->by_name[b] = n;
	n->hashed = true;
}

static void name_remove_locked(struct vd_view *v, struct vnode *n)
{
	if (!n->hashed)
		return;
	size_t b = name_hash(parent_ino(n), n->name) & (v->nbuckets - 1);
	for (struct vnode **pp = &v->by_name[b]; *pp; pp = &(*pp)->next_name) {
		if (*pp == n) {
			*pp = n->next_name;
			break;
		}
	}
	n->next_name = NULL;
	n->hashed = false;
}

static void ino_insert_locked(struct vd_view *v, struct vnode *n)
{
	size_t b = ino_bucket(v, n->ino);
	n->next_ino = v->by_ino[b];
	v->by_ino[b] = n;
}

static void ino_remove_locked(struct vd_view *v, struct vnode *n)
{
	for (struct vnode **pp = &v->by_ino[ino_bucket(v, n->ino)]; *pp;
	     pp = &(*pp)->next_ino) {
		if (*pp == n) {
			*pp = n->next_ino;
			return;
		}
	}
}

/* Double both tables when they get crowded; failure to grow only costs
 * longer chains. */
static void grow_locked(struct vd_view *v)
{
	if (v->nnodes < v->nbuckets || v->nbuckets >= ((size_t)1 << 26))
		return;
	size_t nb = v->nbuckets * 2;
	struct vnode **bn = calloc(nb, sizeof(*bn));
	struct vnode **bi = calloc(nb, sizeof(*bi));
	if (!bn || !bi) {
		free(bn);
		free(bi);
		return;
	}
	struct vnode **on = v->by_name, **oi = v->by_ino;
	size_t ob = v->nbuckets;
	v->by_name = bn;
	v->by_ino = bi;
	v->nbuckets = nb;
	for (size_t i = 0; i < ob; i++) {
		struct vnode *n = oi[i];
		while (n) {
			struct vnode *next = n->next_ino;
			ino_insert_locked(v, n);
			n = next;
		}
	}
	/* Rebuild the name chains from the ino table: every hashed node is in
	 * it, and the old name chains are discarded whole. */
	for (size_t i = 0; i < nb; i++)
		for (struct vnode *n = bi[i]; n; n = n->next_ino)
			if (n->hashed)
				name_insert_locked(v, n);
	free(on);
	free(oi);
}

static fuse_ino_t pick_ino_locked(struct vd_view *v, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = ino_clamp(name_hash(parent, name));
	while (ino_find_locked(v, ino))
		ino = ino_clamp(ino + 1);
	return ino;
}

static void node_free_one(struct vnode *n)
{
	free(n->name);
	free(n->task);
	free(n->dname);
	free(n);
}

/* Drop nodes nobody refers to any more, walking up through parents that
 * this releases in turn. */
static void maybe_free_locked(struct vd_view *v, struct vnode *n)
{
	while (n && n != v->root && n->nlookup == 0 && n->refs == 0) {
		struct vnode *parent = n->parent;
		name_remove_locked(v, n);
		ino_remove_locked(v, n);
		v->nnodes--;
		node_free_one(n);
		n = NULL;
		if (parent) {
			parent->refs--;
			n = parent;
		}
	}
}

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int node_table_init(struct vd_view *v)
{
	int rc = 0;
	v->nbuckets = 1024;
	v->by_name = calloc(v->nbuckets, sizeof(*v->by_name));
	v->by_ino = calloc(v->nbuckets, sizeof(*v->by_ino));
	v->root = calloc(1, sizeof(*v->root));
	if (!v->by_name || !v->by_ino || !v->root) {
		rc = -ENOMEM;
		goto out;
	}
	v->root->name = strdup("");
	if (!v->root->name) {
		rc = -ENOMEM;
		goto out;
	}
	v->root->ino = FUSE_ROOT_ID;
	v->root->kind = NK_ROOT;
	v->root->type = S_IFDIR;
	v->root->nlookup = 1;   /* the kernel never forgets the root */
	v->next_gen = 1;
	ino_insert_locked(v, v->root);
	v->nnodes = 1;
out:
	return rc;
}

void node_table_free(struct vd_view *v)
{
	if (v->by_ino) {
		for (size_t i = 0; i < v->nbuckets; i++) {
			struct vnode *n = v->by_ino[i];
			while (n) {
				struct vnode *next = n->next_ino;
				node_free_one(n);
				n = next;
			}
		}
	} else if (v->root) {
		node_free_one(v->root);
	}
	free(v->by_name);
	free(v->by_ino);
	v->by_name = v->by_ino = NULL;
	v->root = NULL;
}

struct vnode *node_get(struct vd_view *v, fuse_ino_t ino)
{
	pthread_mutex_lock(&v->nlock);
	struct vnode *n = ino_find_locked(v, ino);
	pthread_mutex_unlock(&v->nlock);
	return n;
}

static bool node_matches(const struct vnode *n, const struct vref *r)
{
	return n->kind == r->kind && n->type == r->type && n->ckey == r->ckey &&
	       strcmp(n->data_id, r->data_id) == 0 && strcmp(n->code_id, r->code_id) == 0;
}

int node_enter(struct vnode **out, struct vd_view *v, struct vnode *parent,
	       const char *name, const struct vref *r)
{
	int rc = 0;
	bool oom = false;
	struct vnode *n = NULL;

	pthread_mutex_lock(&v->nlock);
	struct vnode *old = name_find_locked(v, parent, name);
	if (old && node_matches(old, r)) {
		old->nlookup++;
		*out = old;
		goto out;
	}
	if (old)
		name_remove_locked(v, old);

	n = calloc(1, sizeof(*n));
	if (!n) {
		rc = -ENOMEM;
		goto out;
	}
	n->name = dup_or_null(name, &oom);
	n->task = dup_or_null(r->task, &oom);
	n->dname = dup_or_null(r->dname, &oom);
	if (oom) {
		node_free_one(n);
		rc = -ENOMEM;
		goto out;
	}
	n->kind = r->kind;
	n->type = r->type;
	n->ckey = r->ckey;
	memcpy(n->data_id, r->data_id, sizeof(n->data_id));
	memcpy(n->code_id, r->code_id, sizeof(n->code_id));
	n->ino = pick_ino_locked(v, parent->ino, name);
	n->gen = v->next_gen++;
	n->parent = parent;
	parent->refs++;
	n->nlookup = 1;
	ino_insert_locked(v, n);
	name_insert_locked(v, n);
	v->nnodes++;
	grow_locked(v);
	*out = n;
out:
	pthread_mutex_unlock(&v->nlock);
	return rc;
}

void node_forget(struct vd_view *v, fuse_ino_t ino, uint64_t count)
{
	pthread_mutex_lock(&v->nlock);
	struct vnode *n = ino_find_locked(v, ino);
	if (n && n != v->root) {
		n->nlookup = count > n->nlookup ? 0 : n->nlookup - count;
		maybe_free_locked(v, n);
	}
	pthread_mutex_unlock(&v->nlock);
}

void node_ref(struct vd_view *v, struct vnode *n)
{
	pthread_mutex_lock(&v->nlock);
	n->refs++;
	pthread_mutex_unlock(&v->nlock);
}

void node_unref(struct vd_view *v, struct vnode *n)
{
	pthread_mutex_lock(&v->nlock);
	n->refs--;
	maybe_free_locked(v, n);
	pthread_mutex_unlock(&v->nlock);
}

fuse_ino_t node_peek_ino(struct vd_view *v, struct vnode *parent, const char *name)
{
	pthread_mutex_lock(&v->nlock);
	struct vnode *n = name_find_locked(v, parent, name);
	fuse_ino_t ino = n ? n->ino : pick_ino_locked(v, parent->ino, name);
	pthread_mutex_unlock(&v->nlock);
	return ino;
}

void node_unhash_child(struct vd_view *v, struct vnode *parent, const char *name)
{
	pthread_mutex_lock(&v->nlock);
	struct vnode *n = name_find_locked(v, parent, name);
	if (n)
		name_remove_locked(v, n);
	pthread_mutex_unlock(&v->nlock);
}

int node_move(struct vd_view *v, struct vnode *parent, const char *name,
	      struct vnode *newparent, const char *newname)
{
	int rc = 0;
	char *nn = strdup(newname);
	if (!nn)
		return -ENOMEM;

	pthread_mutex_lock(&v->nlock);
	struct vnode *victim = name_find_locked(v, newparent, newname);
	if (victim)
		name_remove_locked(v, victim);
	struct vnode *n = name_find_locked(v, parent, name);
	if (!n) {
		/* Never looked up: nothing to move. */
		free(nn);
		goto out;
	}
	name_remove_locked(v, n);
	free(n->name);
	n->name = nn;
	if (n->parent != newparent) {
		newparent->refs++;
		struct vnode *oldp = n->parent;
		n->parent = newparent;
		oldp->refs--;
		/* oldp is still held by the kernel (it is the rename's source
		 * directory), so it is not freed here. */
	}
	name_insert_locked(v, n);
out:
	pthread_mutex_unlock(&v->nlock);
	return rc;
}

int node_dname(char *out, size_t outsz, struct vd_view *v, struct vnode *n)
{
	int rc = 0;
	pthread_mutex_lock(&v->nlock);
	struct vnode *c = n;
	while (c->parent && c->parent->kind == c->kind)
		c = c->parent;
	size_t len = strlen(c->name);
	if (len >= outsz)
		rc = -ENAMETOOLONG;
	else
		memcpy(out, c->name, len + 1);
	pthread_mutex_unlock(&v->nlock);
	return rc;
}

fuse_ino_t node_parent_ino(struct vd_view *v, struct vnode *n)
{
	pthread_mutex_lock(&v->nlock);
	fuse_ino_t ino = parent_ino(n);
	pthread_mutex_unlock(&v->nlock);
	return ino;
}

/*
 * The path of n below the top of its tree: the names from the node up to
 * (not including) the first ancestor of another kind or the tree's top.
 * Built back to front in out, then moved to the start.
 */
int node_relpath(char *out, size_t outsz, struct vd_view *v, struct vnode *n)
{
	int rc = 0;
	size_t pos = outsz - 1;

	if (outsz == 0)
		return -ENAMETOOLONG;
	out[pos] = '\0';
	pthread_mutex_lock(&v->nlock);
	for (struct vnode *c = n; c && c->parent && c->parent->kind == c->kind; c = c->parent) {
		size_t len = strlen(c->name);
		bool sep = pos != outsz - 1;
		if (len + (sep ? 1 : 0) > pos) {
			rc = -ENAMETOOLONG;
			goto out;
		}
		if (sep)
			out[--pos] = '/';
		pos -= len;
		memcpy(out + pos, c->name, len);
	}
	memmove(out, out + pos, outsz - pos);
out:
	pthread_mutex_unlock(&v->nlock);
	if (rc < 0)
		out[0] = '\0';
	return rc;
}

void node_walk(struct vd_view *v, void (*fn)(void *ctx, const struct vnode *n), void *ctx)
{
	pthread_mutex_lock(&v->nlock);
	for (size_t i = 0; i < v->nbuckets; i++)
		for (struct vnode *n = v->by_ino[i]; n; n = n->next_ino)
			if (n->hashed)
				fn(ctx, n);
	pthread_mutex_unlock(&v->nlock);
}

bool node_unhash_at(struct vd_view *v, fuse_ino_t parent, const char *name)
{
	bool found = false;
	pthread_mutex_lock(&v->nlock);
	struct vnode *p = ino_find_locked(v, parent);
	struct vnode *n = p ? name_find_locked(v, p, name) : NULL;
	if (n) {
		name_remove_locked(v, n);
		found = true;
	}
	pthread_mutex_unlock(&v->nlock);
	return found;
}
