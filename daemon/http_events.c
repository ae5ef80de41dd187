/*
 * http_events.c - GET /v1/events: the engine's live events as a stream of
 * Server-Sent Events (docs/protocol.md, "Events"), what the dashboard
 * listens to instead of polling.
 *
 * This file owns the stream: its response, the state its reader callback
 * keeps, and the count of streams open (h->event_streams). The events
 * themselves are the engine's (engine_events.c); http.c routes and
 * authorizes, then calls http_events_reply.
 *
 * Each message is "id: <seq>\nevent: <kind>\ndata: <json>\n\n". The stream
 * begins with `hello`; a client that resumes (Last-Event-ID, ?since=) from
 * further back than the engine still holds, or from before a restart, gets
 * `reset` and should fetch everything again. Unit events of one run that
 * come within EV_GATHER_MS of each other are sent as the newest alone: a
 * run of thousands of small units would otherwise be thousands of
 * messages a second to every dashboard. A comment line keeps a quiet
 * stream from looking dead to proxies and to the connection's timeout.
 *
 * MHD runs one thread per connection here, so the reader callback blocks
 * until there is something to send (returning 0 would make MHD call it
 * again at once, a busy loop). It waits in slices of EV_SLICE_MS so that
 * it sees h->stopping, or the client hanging up, within one slice.
 */
#include "http_int.h"

#include <poll.h>

#include "engine.h"

/* Events fetched from the engine at once, and so the most one batch of
 * gathered units can hold. */
#define EV_BATCH 64
#define EV_SLICE_MS 500
#define EV_GATHER_MS 100
#define EV_PING_MS 15000
/* What MHD is handed per call at most (it passes this as `max`). */
#define EV_BLOCK ((size_t)32 << 10)
/* Formatted output waiting for MHD: one batch, some 4 KiB an event at the
 * very worst (two 255-byte names of stray bytes, each \ufffd). */
#define EV_OUT_MAX ((size_t)1 << 20)
#define EV_RETRY_AFTER_S "5"

struct stream {
	vd_http *h;
	int fd;                    /* the connection's socket; -1 if unknown */
	uint64_t after;            /* the newest event sent (or folded into one) */
	struct vd_buf out;         /* formatted, not all handed to MHD yet */
	size_t sent;               /* bytes of out handed to MHD */
	int64_t quiet_since;       /* vd_mono_ms of the last bytes handed over */
	struct vd_event ev[EV_BATCH];
};

static void stream_free(void *cls)
{
	struct stream *s = cls;

	atomic_fetch_sub(&s->h->event_streams, 1);
	vd_buf_release(&s->out);
	free(s);
}

/* Has the client closed its end? Without this a stream to a closed tab
 * would hold its thread and its place among the 64 until the next ping
 * failed to go out. */
static bool hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	if (fd < 0 || poll(&p, 1, 0) <= 0)
		return false;
	return (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
}

static int add_message(struct vd_buf *out, uint64_t id, const char *kind,
		       const struct vd_event *ev, uint64_t seq)
{
	int rc = vd_buf_addf(out, "id: %llu\nevent: %s\ndata: ", (unsigned long long)id, kind);

	if (!rc)
		rc = ev ? vd_event_json(out, ev)
			: vd_buf_addf(out, "{\"seq\":%llu}", (unsigned long long)seq);
	return rc ? rc : vd_buf_adds(out, "\n\n");
}

static bool same_run(const struct vd_event *a, const struct vd_event *b)
{
	return a->kind == VD_EVENT_UNIT && b->kind == VD_EVENT_UNIT &&
	       !strcmp(a->task, b->task) && !strcmp(a->data_id, b->data_id) &&
	       !strcmp(a->code_id, b->code_id);
}

/* s->ev[0..n) came: when units are among them, wait up to EV_GATHER_MS for
 * more, then format all but the units a newer one of the same run
 * replaces. */
static int send_batch(struct stream *s, size_t n)
{
	bool units = false;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		units |= s->ev[i].kind == VD_EVENT_UNIT;
	int64_t until = vd_mono_ms() + EV_GATHER_MS;
	while (units && n < EV_BATCH && !atomic_load(&s->h->stopping)) {
		int64_t left = until - vd_mono_ms();
		size_t m = 0;
		bool lost = false;

		/* A lost batch is left for the next wait to find (a reset). */
		if (left <= 0 || vd_engine_events_wait(s->ev + n, EV_BATCH - n, &m, &lost, s->h->e,
						       s->ev[n - 1].seq, (int)left) || lost)
			break;
		n += m;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		bool newer = false;

		for (size_t j = i + 1; j < n && !newer; j++)
			newer = same_run(&s->ev[i], &s->ev[j]);
		if (!newer)
			rc = add_message(&s->out, s->ev[i].seq, vd_event_kind_name(s->ev[i].kind),
					 &s->ev[i], 0);
	}
	if (!rc)
		s->after = s->ev[n - 1].seq;
	return rc;
}

/* Wait until there is something to send and put it in s->out: 0, or 1 when
 * the stream is to end (shutting down), -EPIPE when the client went, or
 * another -errno when the output could not be made. */
static int fill(struct stream *s)
{
	for (;;) {
		size_t n = 0;
		bool lost = false;
		int rc;

		if (atomic_load(&s->h->stopping))
			return 1;
		if (hung_up(s->fd))
			return -EPIPE;
		rc = vd_engine_events_wait(s->ev, EV_BATCH, &n, &lost, s->h->e, s->after,
					   EV_SLICE_MS);
		if (rc == -ESHUTDOWN)
			return 1;
		if (rc)
			return rc;
		if (lost) {
			/* Whatever happens from here on comes after the state
			 * the client fetches once it sees the reset. */
			s->after = vd_engine_events_seq(s->h->e);
			return add_message(&s->out, s->after, "reset", NULL, s->after);
		}
		if (n)
			return send_batch(s, n);
		if (vd_mono_ms() - s->quiet_since >= EV_PING_MS)
			return vd_buf_adds(&s->out, ": ping\n\n");
	}
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	size_t n;

	(void)pos;
	while (s->sent == s->out.len) {
		int rc;

		vd_buf_reset(&s->out);
		s->sent = 0;
		/* A client that went is an end like any other: as an error,
		 * MHD would log a line for every dashboard tab closed. */
		if ((rc = fill(s)) > 0 || rc == -EPIPE)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (rc < 0) {
			vd_warn("http: events: cannot make the next message: %s", strerror(-rc));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	n = s->out.len - s->sent < max ? s->out.len - s->sent : max;
	memcpy(buf, s->out.data + s->sent, n);
	s->sent += n;
	s->quiet_since = vd_mono_ms();
	return (ssize_t)n;
}

int http_events_after(uint64_t *after, struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	unsigned long long x;
	char *end;

	*after = HTTP_EVENTS_NOW;
	if (!v || !*v)
		v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
	if (!v)
		return 0;
	if (*v < '0' || *v > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno || *end || x == HTTP_EVENTS_NOW)
		return -EINVAL;
	*after = x;
	return 0;
}

/* 503 with Retry-After: a browser's EventSource tries again by itself. */
static enum MHD_Result too_many(struct MHD_Connection *c)
{
	static const char body[] = "{\"error\": \"too many event streams\"}";
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, EV_RETRY_AFTER_S);
	ret = MHD_queue_response(c, MHD_HTTP_SERVICE_UNAVAILABLE, r);
	MHD_destroy_response(r);
	return ret;
}

enum MHD_Result http_events_reply(vd_http *h, struct MHD_Connection *c, uint64_t after)
{
	const union MHD_ConnectionInfo *ci;
	struct MHD_Response *r;
	struct stream *s;
	enum MHD_Result ret;
	uint64_t seq;

	if (atomic_fetch_add(&h->event_streams, 1) >= HTTP_EVENT_STREAMS_MAX) {
		atomic_fetch_sub(&h->event_streams, 1);
		if (http_log_allowed(h))
			vd_warn("http: GET /v1/events -> 503: %d streams are open already",
				HTTP_EVENT_STREAMS_MAX);
		return too_many(c);
	}
	if (!(s = calloc(1, sizeof *s))) {
		atomic_fetch_sub(&h->event_streams, 1);
		return MHD_NO;
	}
	s->h = h;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->fd = ci ? ci->connect_fd : -1;
	vd_buf_init(&s->out, EV_OUT_MAX);
	s->quiet_since = vd_mono_ms();
	seq = vd_engine_events_seq(h->e);
	s->after = after == HTTP_EVENTS_NOW ? seq : after;
	/* hello carries the point the stream goes on from as its id, not the
	 * newest event's number: a client that drops before the events in
	 * between came must ask for them again. */
	if (add_message(&s->out, s->after, "hello", NULL, seq)) {
		stream_free(s);
		return MHD_NO;
	}
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, EV_BLOCK, stream_read, s,
					      stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	/* nginx and its kin would otherwise hold the stream back in a buffer. */
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}
