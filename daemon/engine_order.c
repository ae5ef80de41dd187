/*
 * engine_order.c - the versions of a task in time order.
 *
 * A task's version records live at v/<task>/<data-id>, so a prefix scan
 * gives them in ID order, which is no order a person wants. Listing them
 * newest first used to mean reading and parsing every record and sorting
 * them; for a page of 100 out of 10,000 versions that was a tenth of a
 * second of daemon time per request, and the dashboard asks for a page on
 * every update. So each version also has an empty index key
 *
 *     vo/<task>/<inverted time>/<data-id>
 *
 * where the inverted time is UINT64_MAX minus the seal time in ms, as 16
 * hex digits: the catalog's key order is then newest first, and versions
 * sealed in the same millisecond list by ascending ID. The time is fixed
 * when a version is sealed and never changes, so the key is put in the
 * seal's batch and taken away in the delete's, and can never disagree with
 * the record.
 *
 * A catalog written before this index existed gets it at the first start
 * (vd_engine_order_migrate, marked done by meta/version_order). fsck counts
 * an index key whose version is gone as an orphan.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

/* After vo/<task>/: 16 hex digits and a slash, then the ID. */
#define TIME_HEX 16
/* The longest task name (vd_engine_name_valid). */
#define TASK_MAX 255

static void order_key(struct vd_buf *k, const char *task, int64_t time, const char *id)
{
	uint64_t inv = UINT64_MAX - (uint64_t)(time < 0 ? 0 : time);

	vd_buf_reset(k);
	vd_buf_addf(k, "vo/%s/%016" PRIx64 "/%s", task, inv, id);
}

void vd_engine_order_put(vd_catalog_batch *b, const char *task, const char *data_id,
			 int64_t time)
{
	struct vd_buf k = VD_BUF_INIT(1024);

	order_key(&k, task, time, data_id);
	vd_catalog_batch_put(b, vd_buf_cstr(&k), "", 0);
	vd_buf_release(&k);
}

void vd_engine_order_del(vd_catalog_batch *b, const char *task, const char *data_id,
			 int64_t time)
{
	struct vd_buf k = VD_BUF_INIT(1024);

	order_key(&k, task, time, data_id);
	vd_catalog_batch_del(b, vd_buf_cstr(&k));
	vd_buf_release(&k);
}

struct page_ctx {
	struct vd_strv *out;
	size_t skip;            /* the prefix's length */
	size_t offset, limit;   /* limit 0: no limit */
	size_t seen;
	bool count;             /* go on to the end to count them all */
};

static int page_one(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct page_ctx *c = ctx;
	size_t i = c->seen++;

	(void)val;
	(void)vlen;
	if (klen < c->skip + TIME_HEX + 1 + VD_ID_LEN)
		return 0;   /* not an index key: fsck reports it */
	if (!c->out || i < c->offset)
		return 0;
	if (c->limit && i >= c->offset + c->limit)
		return c->count ? 0 : 1;   /* 1: past the page, stop */
	return vd_strv_pushn(c->out, key + c->skip + TIME_HEX + 1,
			     klen - c->skip - TIME_HEX - 1);
}

int vd_engine_version_page(struct vd_strv *out, size_t *total, vd_engine *e,
			   const char *task, size_t offset, size_t limit)
{
	struct vd_buf k = VD_BUF_INIT(1024);
	struct page_ctx c = { out, 0, offset, limit, 0, total != NULL };
	int rc;

	if (!vd_engine_name_valid(task))
		return -ENOENT;
	vd_buf_addf(&k, "vo/%s/", task);
	c.skip = k.len;
	rc = vd_catalog_scan(e->cat, vd_buf_cstr(&k), page_one, &c);
	if (rc == 1)
		rc = 0;   /* stopped at the page's end */
	if (!rc && total)
		*total = c.seen;
	vd_buf_release(&k);
	return rc;
}

/* ---- the first start with this index ----------------------------------- */

struct migrate_ctx {
	vd_catalog_batch *b;
	size_t n;
};

static int migrate_one(void *ctx, const char *key, size_t klen, const char *val, size_t vlen)
{
	struct migrate_ctx *c = ctx;
	char task[TASK_MAX + 1], id[VD_ID_SIZE];
	const char *rest = key + 2, *slash;
	size_t rlen = klen - 2;
	json_t *v;

	/* v/<task>/<data-id>: anything else under v/ is fsck's to report. */
	slash = memchr(rest, '/', rlen);
	if (!slash || (size_t)(slash - rest) > TASK_MAX ||
	    rlen - (size_t)(slash - rest) - 1 != VD_ID_LEN)
		return 0;
	memcpy(task, rest, (size_t)(slash - rest));
	task[slash - rest] = '\0';
	memcpy(id, slash + 1, VD_ID_LEN);
	id[VD_ID_LEN] = '\0';
	if (!(v = json_loadb(val, vlen, 0, NULL)))
		return 0;
	vd_engine_order_put(c->b, task, id, json_integer_value(json_object_get(v, "time")));
	json_decref(v);
	c->n++;
	return 0;
}

int vd_engine_order_migrate(vd_engine *e)
{
	struct migrate_ctx c = { 0 };
	int rc = vd_catalog_has(e->cat, "meta/version_order");

	if (rc != 0)
		return rc < 0 ? rc : 0;
	if ((rc = vd_catalog_batch_new(&c.b)))
		return rc;
	if ((rc = vd_catalog_scan(e->cat, "v/", migrate_one, &c)))
		goto out;
	vd_catalog_batch_put(c.b, "meta/version_order", "1", 1);
	if ((rc = vd_catalog_commit(e->cat, c.b, true)))
		goto out;
	if (c.n)
		vd_info("catalog: indexed %zu versions by time", c.n);
out:
	vd_catalog_batch_free(c.b);
	return rc;
}
