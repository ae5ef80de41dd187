/*
 * view_fh.c - file handles: made at open, linked into the view's list once
 * fully opened, freed at release (or at unmount, for what the kernel never
 * released).
 */
#include "view_int.h"

#include <stdlib.h>

struct vfh *fh_new(struct vd_view *v, struct vnode *n, enum fh_kind kind)
{
	struct vfh *fh = calloc(1, sizeof(*fh));
	if (!fh)
		return NULL;
	fh->kind = kind;
	fh->fd = -1;
	for (int k = 0; k < FH_SLOTS; k++) {
		fh->sidx[k] = SIZE_MAX;
		vd_buf_init(&fh->sbuf[k], 0);
	}
	fh->cur = SIZE_MAX;
	pthread_mutex_init(&fh->lock, NULL);
	pthread_cond_init(&fh->loaded, NULL);
	vd_buf_init(&fh->buf, 0);
	pthread_mutex_lock(&v->nlock);
	fh->node = n;
	if (n)
		n->refs++;
	pthread_mutex_unlock(&v->nlock);
	return fh;
}

/* A fully opened handle joins v->fhs: getattr may look at it (see
 * attr_from_handle) and unmount frees what the kernel never released. */
void fh_link(struct vd_view *v, struct vfh *fh)
{
	pthread_mutex_lock(&v->nlock);
	fh->next = v->fhs;
	if (v->fhs)
		v->fhs->prev = fh;
	v->fhs = fh;
	fh->linked = true;
	pthread_mutex_unlock(&v->nlock);
}

void fh_set_node(struct vd_view *v, struct vfh *fh, struct vnode *n)
{
	pthread_mutex_lock(&v->nlock);
	fh->node = n;
	n->refs++;
	pthread_mutex_unlock(&v->nlock);
}

void fh_free(struct vd_view *v, struct vfh *fh)
{
	if (!fh)
		return;
	pthread_mutex_lock(&v->nlock);
	if (fh->linked) {
		if (fh->prev)
			fh->prev->next = fh->next;
		else
			v->fhs = fh->next;
		if (fh->next)
			fh->next->prev = fh->prev;
		fh->linked = false;
	}
	pthread_mutex_unlock(&v->nlock);
	/* The kernel may send RELEASE as soon as it has a READ's reply, while
	 * the thread that sent it is still inside fuse_reply_buf on this
	 * handle's bytes (which it holds the lock for): wait for it. No new
	 * request can come for a released handle. */
	pthread_mutex_lock(&fh->lock);
	pthread_mutex_unlock(&fh->lock);
	fh_chunk_release(v, fh);
	if (fh->st)
		data_release(v, fh);
	if (fh->ment)
		mc_put(v, fh->ment);
	if (fh->own)
		vd_file_free(fh->own);
	dlist_free(&fh->list);
	vd_buf_release(&fh->buf);
	pthread_cond_destroy(&fh->loaded);
	pthread_mutex_destroy(&fh->lock);
	if (fh->node)
		node_unref(v, fh->node);
	free(fh);
}

