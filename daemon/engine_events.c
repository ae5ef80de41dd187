/*
 * engine_events.c - the live events: what the engine did, as it happens,
 * for GET /v1/events (daemon/http_events.c).
 *
 * This file owns the ring of the last VD_EVENTS_KEEP events, their numbers
 * and the waiters. The engine's files post an event once the change it
 * reports is committed (a unit's result, a run's state, a version sealed
 * or deleted, a task made, deleted or given a new function or config, an
 * executor registered, revoked or leaving). Nothing is kept on disk: a
 * dashboard that reconnects to a restarted daemon, or that fell behind by
 * more than the ring holds, is told it lost events and fetches everything
 * again, which is cheaper than a durable log nobody else needs.
 *
 * Posting never fails and never waits for a reader: the newest event
 * overwrites the oldest. It is done with e->lock held in most places, so
 * the order is e->lock, then the events' lock; a waiter holds only the
 * events' lock, and nothing here calls out of this file while holding it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"

struct vd_events {
	pthread_mutex_t lock;
	pthread_cond_t posted;     /* an event was posted, or stopping */
	/* lock: event number seq is at ring[(seq - 1) % VD_EVENTS_KEEP]. */
	struct vd_event ring[VD_EVENTS_KEEP];
	uint64_t seq;              /* lock: the newest event's number; 0 = none */
	bool stopping;             /* lock: vd_engine_events_stop was called */
};

int vd_engine_events_open(vd_engine *e)
{
	struct vd_events *ev = calloc(1, sizeof *ev);
	pthread_condattr_t ca;

	if (!ev)
		return -ENOMEM;
	pthread_mutex_init(&ev->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->posted, &ca);
	pthread_condattr_destroy(&ca);
	e->events = ev;
	return 0;
}

void vd_engine_events_close(vd_engine *e)
{
	struct vd_events *ev = e->events;

	if (!ev)
		return;
	pthread_cond_destroy(&ev->posted);
	pthread_mutex_destroy(&ev->lock);
	free(ev);
	e->events = NULL;
}

void vd_engine_events_stop(vd_engine *e)
{
	struct vd_events *ev = e->events;

	if (!ev)
		return;
	pthread_mutex_lock(&ev->lock);
	ev->stopping = true;
	pthread_cond_broadcast(&ev->posted);
	pthread_mutex_unlock(&ev->lock);
}

void vd_engine_event_post(vd_engine *e, const struct vd_event *in)
{
	struct vd_events *ev = e->events;
	struct vd_event *slot;

	if (!ev)
		return;
	int64_t now = vd_now_ms();
	pthread_mutex_lock(&ev->lock);
	slot = &ev->ring[ev->seq % VD_EVENTS_KEEP];
	*slot = *in;
	slot->seq = ++ev->seq;
	slot->time_ms = now;
	pthread_cond_broadcast(&ev->posted);
	pthread_mutex_unlock(&ev->lock);
}

uint64_t vd_engine_events_seq(vd_engine *e)
{
	struct vd_events *ev = e->events;
	uint64_t seq;

	if (!ev)
		return 0;
	pthread_mutex_lock(&ev->lock);
	seq = ev->seq;
	pthread_mutex_unlock(&ev->lock);
	return seq;
}

int vd_engine_events_wait(struct vd_event *out, size_t cap, size_t *n, bool *lost,
			  vd_engine *e, uint64_t after, int timeout_ms)
{
	struct vd_events *ev = e->events;
	struct timespec until = vd_deadline_ms(CLOCK_MONOTONIC, timeout_ms > 0 ? timeout_ms : 0);
	int rc = 0;

	*n = 0;
	*lost = false;
	if (!ev)
		return -ESHUTDOWN;
	pthread_mutex_lock(&ev->lock);
	for (;;) {
		if (ev->stopping) {
			rc = -ESHUTDOWN;
			break;
		}
		/* The oldest held is seq - KEEP + 1: the reader needs after + 1. */
		if (after > ev->seq ||
		    (ev->seq > VD_EVENTS_KEEP && after < ev->seq - VD_EVENTS_KEEP)) {
			*lost = true;
			break;
		}
		if (after < ev->seq) {
			uint64_t s = after + 1;
			for (; s <= ev->seq && *n < cap; s++)
				out[(*n)++] = ev->ring[(s - 1) % VD_EVENTS_KEEP];
			break;
		}
		if (timeout_ms <= 0 ||
		    pthread_cond_timedwait(&ev->posted, &ev->lock, &until) == ETIMEDOUT) {
			/* One last look: an event may have come with the timeout. */
			timeout_ms = 0;
			if (after < ev->seq || ev->stopping)
				continue;
			break;
		}
	}
	pthread_mutex_unlock(&ev->lock);
	return rc;
}

/* ---- the hooks -------------------------------------------------------- */

static void copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void vd_engine_event_unit(vd_engine *e, const struct vd_run *r)
{
	struct vd_event ev = { .kind = VD_EVENT_UNIT, .done = r->ndone, .units = r->nunits };

	copy(ev.task, sizeof ev.task, r->task);
	copy(ev.data_id, sizeof ev.data_id, r->data);
	copy(ev.code_id, sizeof ev.code_id, r->code);
	vd_engine_event_post(e, &ev);
}

void vd_engine_event_run(vd_engine *e, const struct vd_run *r, const char *state)
{
	struct vd_event ev = { .kind = VD_EVENT_RUN };

	copy(ev.what, sizeof ev.what, state);
	copy(ev.task, sizeof ev.task, r->task);
	copy(ev.data_id, sizeof ev.data_id, r->data);
	copy(ev.code_id, sizeof ev.code_id, r->code);
	vd_engine_event_post(e, &ev);
}

void vd_engine_event_version(vd_engine *e, const char *task, const char *data_id,
			     const char *name, const char *what)
{
	struct vd_event ev = { .kind = VD_EVENT_VERSION };

	copy(ev.what, sizeof ev.what, what);
	copy(ev.task, sizeof ev.task, task);
	copy(ev.data_id, sizeof ev.data_id, data_id);
	copy(ev.name, sizeof ev.name, name);
	vd_engine_event_post(e, &ev);
}

void vd_engine_event_task(vd_engine *e, const char *task, const char *what)
{
	struct vd_event ev = { .kind = VD_EVENT_TASK };

	copy(ev.what, sizeof ev.what, what);
	copy(ev.task, sizeof ev.task, task);
	vd_engine_event_post(e, &ev);
}

void vd_engine_event_executor(vd_engine *e, const char *name, const char *what)
{
	struct vd_event ev = { .kind = VD_EVENT_EXECUTOR };

	copy(ev.what, sizeof ev.what, what);
	copy(ev.name, sizeof ev.name, name);
	vd_engine_event_post(e, &ev);
}

/* ---- JSON ------------------------------------------------------------- */

const char *vd_event_kind_name(enum vd_event_kind k)
{
	switch (k) {
	case VD_EVENT_UNIT:
		return "unit";
	case VD_EVENT_RUN:
		return "run";
	case VD_EVENT_VERSION:
		return "version";
	case VD_EVENT_TASK:
		return "task";
	case VD_EVENT_EXECUTOR:
		return "executor";
	}
	return "unknown";
}

/* Length of the well-formed UTF-8 sequence at p (of at most n bytes), 0
 * when it is not one (RFC 3629: no overlong forms, no surrogates, nothing
 * past U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return len;
}

/* s as a JSON string, quotes included. */
static int add_string(struct vd_buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int rc = vd_buf_adds(out, "\"");

	while (!rc && n) {
		size_t len = utf8_len(p, n);

		if (*p == '"' || *p == '\\')
			rc = vd_buf_addf(out, "\\%c", *p);
		else if (*p < 0x20)
			rc = vd_buf_addf(out, "\\u%04x", *p);
		else if (len)
			rc = vd_buf_add(out, p, len);
		else
			rc = vd_buf_adds(out, "\\ufffd");
		len = len ? len : 1;
		p += len;
		n -= len;
	}
	return rc ? rc : vd_buf_adds(out, "\"");
}

static int add_field(struct vd_buf *out, const char *key, const char *val)
{
	int rc = vd_buf_addf(out, ",\"%s\":", key);

	return rc ? rc : add_string(out, val);
}

int vd_event_json(struct vd_buf *out, const struct vd_event *ev)
{
	size_t was = out->len;
	int rc = vd_buf_addf(out, "{\"seq\":%llu,\"time\":%lld", (unsigned long long)ev->seq,
			     (long long)ev->time_ms);

	switch (ev->kind) {
	case VD_EVENT_UNIT:
	case VD_EVENT_RUN:
		if (!rc)
			rc = add_field(out, "task", ev->task);
		if (!rc)
			rc = add_field(out, "data_id", ev->data_id);
		if (!rc)
			rc = add_field(out, "code_id", ev->code_id);
		if (!rc && ev->kind == VD_EVENT_UNIT)
			rc = vd_buf_addf(out, ",\"done\":%llu,\"units\":%llu",
					 (unsigned long long)ev->done, (unsigned long long)ev->units);
		if (!rc && ev->kind == VD_EVENT_RUN)
			rc = add_field(out, "state", ev->what);
		break;
	case VD_EVENT_VERSION:
		if (!rc)
			rc = add_field(out, "task", ev->task);
		if (!rc)
			rc = add_field(out, "data_id", ev->data_id);
		if (!rc)
			rc = add_field(out, "name", ev->name);
		if (!rc)
			rc = add_field(out, "what", ev->what);
		break;
	case VD_EVENT_TASK:
	case VD_EVENT_EXECUTOR:
		if (!rc)
			rc = add_field(out, ev->kind == VD_EVENT_TASK ? "task" : "name",
				       ev->kind == VD_EVENT_TASK ? ev->task : ev->name);
		if (!rc)
			rc = add_field(out, "what", ev->what);
		break;
	}
	if (!rc)
		rc = vd_buf_adds(out, "}");
	if (rc && out->data) {
		/* Nothing half-written stays behind. */
		out->len = was;
		out->data[was] = '\0';
	}
	return rc;
}
