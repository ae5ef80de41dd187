/*
 * test_engine_events.c - the engine's live events (engine_events.c): the
 * ring's order, wrap-around and `lost`, a wait that times out, one woken
 * by a post from another thread and by vd_engine_wake_all, the JSON of
 * each kind (names that are not UTF-8 included), and the events a whole
 * run posts, from the task's creation to its deletion.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_int.h"

struct fx {
	char dir[64];
	vd_engine *e;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-events-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	struct vd_engine_opts o = { .state_dir = f->dir, .lease_ms = 5000, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Post a task event whose task name says its order: "t<i>". */
static void post_n(vd_engine *e, int from, int count)
{
	for (int i = from; i < from + count; i++) {
		char name[32];
		snprintf(name, sizeof name, "t%d", i);
		vd_engine_event_task(e, name, "created");
	}
}

static void test_order(void **state)
{
	struct fx *f = *state;
	struct vd_event ev[8];
	size_t n;
	bool lost;

	assert_int_equal(vd_engine_events_seq(f->e), 0);
	/* Nothing yet: a wait of 0 ms returns at once, empty, not lost. */
	assert_int_equal(vd_engine_events_wait(ev, 8, &n, &lost, f->e, 0, 0), 0);
	assert_int_equal(n, 0);
	assert_false(lost);
	int64_t t0 = vd_now_ms();
	post_n(f->e, 1, 5);
	assert_int_equal(vd_engine_events_seq(f->e), 5);
	assert_int_equal(vd_engine_events_wait(ev, 8, &n, &lost, f->e, 0, 1000), 0);
	assert_false(lost);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "t%zu", i + 1);
		assert_int_equal(ev[i].seq, i + 1);
		assert_int_equal(ev[i].kind, VD_EVENT_TASK);
		assert_string_equal(ev[i].task, name);
		assert_string_equal(ev[i].what, "created");
		assert_true(ev[i].time_ms >= t0 && ev[i].time_ms <= vd_now_ms());
	}
	/* cap: the oldest first; then on from there. */
	assert_int_equal(vd_engine_events_wait(ev, 2, &n, &lost, f->e, 1, 1000), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0].seq, 2);
	assert_int_equal(ev[1].seq, 3);
	assert_int_equal(vd_engine_events_wait(ev, 8, &n, &lost, f->e, 3, 1000), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ev[1].seq, 5);
	/* Ahead of the newest (a number from before a restart): lost. */
	assert_int_equal(vd_engine_events_wait(ev, 8, &n, &lost, f->e, 6, 1000), 0);
	assert_true(lost);
	assert_int_equal(n, 0);
}

static void test_wrap_and_lost(void **state)
{
	struct fx *f = *state;
	struct vd_event *ev = calloc(VD_EVENTS_KEEP, sizeof *ev);
	size_t n;
	bool lost;

	assert_non_null(ev);
	post_n(f->e, 1, VD_EVENTS_KEEP + 10);
	uint64_t seq = vd_engine_events_seq(f->e);
	assert_int_equal(seq, VD_EVENTS_KEEP + 10);
	/* 1..10 were overwritten: whoever still needs one of them lost it. */
	for (uint64_t after = 0; after < 10; after++) {
		assert_int_equal(vd_engine_events_wait(ev, VD_EVENTS_KEEP, &n, &lost, f->e,
						       after, 1000), 0);
		assert_true(lost);
		assert_int_equal(n, 0);
	}
	/* After 10 everything needed is held: 11 .. KEEP + 10, in order. */
	assert_int_equal(vd_engine_events_wait(ev, VD_EVENTS_KEEP, &n, &lost, f->e, 10, 1000), 0);
	assert_false(lost);
	assert_int_equal(n, VD_EVENTS_KEEP);
	for (size_t i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "t%zu", i + 11);
		assert_int_equal(ev[i].seq, i + 11);
		assert_string_equal(ev[i].task, name);
	}
	assert_int_equal(vd_engine_events_wait(ev, 4, &n, &lost, f->e, seq - 1, 1000), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].seq, seq);
	free(ev);
}

static void test_timeout(void **state)
{
	struct fx *f = *state;
	struct vd_event ev[4];
	size_t n;
	bool lost;

	post_n(f->e, 1, 1);
	int64_t t0 = vd_mono_ms();
	assert_int_equal(vd_engine_events_wait(ev, 4, &n, &lost, f->e, 1, 300), 0);
	int64_t took = vd_mono_ms() - t0;
	assert_int_equal(n, 0);
	assert_false(lost);
	assert_true(took >= 290);
	assert_true(took < 3000);
}

struct poster {
	vd_engine *e;
	int delay_ms;
	bool wake_all;      /* vd_engine_wake_all instead of a post */
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	usleep((useconds_t)p->delay_ms * 1000);
	if (p->wake_all)
		vd_engine_wake_all(p->e);
	else
		vd_engine_event_executor(p->e, "ex9", "registered");
	return NULL;
}

static void test_wake(void **state)
{
	struct fx *f = *state;
	struct poster p = { f->e, 200, false };
	struct vd_event ev[4];
	pthread_t t;
	size_t n;
	bool lost;

	/* A post from another thread ends the wait long before its 10 s. */
	assert_int_equal(pthread_create(&t, NULL, poster_main, &p), 0);
	int64_t t0 = vd_mono_ms();
	assert_int_equal(vd_engine_events_wait(ev, 4, &n, &lost, f->e, 0, 10000), 0);
	int64_t took = vd_mono_ms() - t0;
	pthread_join(t, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, VD_EVENT_EXECUTOR);
	assert_string_equal(ev[0].name, "ex9");
	assert_string_equal(ev[0].what, "registered");
	assert_true(took >= 150 && took < 5000);

	/* Shutting down ends it too, and every wait after. */
	p.wake_all = true;
	assert_int_equal(pthread_create(&t, NULL, poster_main, &p), 0);
	t0 = vd_mono_ms();
	assert_int_equal(vd_engine_events_wait(ev, 4, &n, &lost, f->e, 1, 10000), -ESHUTDOWN);
	took = vd_mono_ms() - t0;
	pthread_join(t, NULL);
	assert_true(took < 5000);
	assert_int_equal(vd_engine_events_wait(ev, 4, &n, &lost, f->e, 0, 10000), -ESHUTDOWN);
}

/* ev as JSON, parsed back. */
static json_t *as_json(const struct vd_event *ev)
{
	struct vd_buf b = VD_BUF_INIT(1 << 16);
	json_error_t err;

	assert_int_equal(vd_event_json(&b, ev), 0);
	assert_null(strchr(vd_buf_cstr(&b), '\n'));
	json_t *j = json_loads(vd_buf_cstr(&b), 0, &err);
	if (!j)
		fail_msg("not JSON (%s): %s", err.text, vd_buf_cstr(&b));
	vd_buf_release(&b);
	return j;
}

static void expect_keys(const json_t *j, const char *const *keys)
{
	size_t n = 0;
	for (; keys[n]; n++)
		assert_non_null(json_object_get(j, keys[n]));
	assert_int_equal(json_object_size(j), n);
}

static void test_json(void **state)
{
	(void)state;
	struct vd_event ev = { .seq = 7, .time_ms = 1700000000123, .kind = VD_EVENT_UNIT,
			       .done = 3, .units = 12 };
	snprintf(ev.task, sizeof ev.task, "wc \"q\" \\ <b>é");
	snprintf(ev.data_id, sizeof ev.data_id, "%032x", 1);
	snprintf(ev.code_id, sizeof ev.code_id, "%032x", 2);
	json_t *j = as_json(&ev);
	expect_keys(j, (const char *const[]){ "seq", "time", "task", "data_id", "code_id",
					      "done", "units", NULL });
	assert_int_equal(json_integer_value(json_object_get(j, "seq")), 7);
	assert_int_equal(json_integer_value(json_object_get(j, "time")), 1700000000123);
	assert_string_equal(json_string_value(json_object_get(j, "task")), "wc \"q\" \\ <b>é");
	assert_int_equal(json_integer_value(json_object_get(j, "done")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "units")), 12);
	json_decref(j);

	ev.kind = VD_EVENT_RUN;
	snprintf(ev.what, sizeof ev.what, "running");
	j = as_json(&ev);
	expect_keys(j, (const char *const[]){ "seq", "time", "task", "data_id", "code_id",
					      "state", NULL });
	assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
	json_decref(j);

	/* A name of stray bytes (a task name may be any bytes but '/', NUL
	 * and controls): U+FFFD for each, and still JSON. A cut-off
	 * sequence, an overlong one and a surrogate are stray too. */
	ev.kind = VD_EVENT_VERSION;
	snprintf(ev.what, sizeof ev.what, "sealed");
	snprintf(ev.task, sizeof ev.task, "a\xff" "b\xe2\x82" "c\xc0\xaf" "d\xed\xa0\x80" "e\xf0\x9f\x98\x80");
	snprintf(ev.name, sizeof ev.name, "in\x01.txt");
	j = as_json(&ev);
	expect_keys(j, (const char *const[]){ "seq", "time", "task", "data_id", "name",
					      "what", NULL });
	assert_string_equal(json_string_value(json_object_get(j, "task")),
			    "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd" "c\xef\xbf\xbd\xef\xbf\xbd"
			    "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e\xf0\x9f\x98\x80");
	assert_string_equal(json_string_value(json_object_get(j, "name")), "in\x01.txt");
	assert_string_equal(json_string_value(json_object_get(j, "what")), "sealed");
	json_decref(j);

	ev.kind = VD_EVENT_TASK;
	snprintf(ev.task, sizeof ev.task, "wc");
	snprintf(ev.what, sizeof ev.what, "config");
	j = as_json(&ev);
	expect_keys(j, (const char *const[]){ "seq", "time", "task", "what", NULL });
	json_decref(j);

	ev.kind = VD_EVENT_EXECUTOR;
	snprintf(ev.name, sizeof ev.name, "ex1");
	snprintf(ev.what, sizeof ev.what, "left");
	j = as_json(&ev);
	expect_keys(j, (const char *const[]){ "seq", "time", "name", "what", NULL });
	assert_string_equal(json_string_value(json_object_get(j, "name")), "ex1");
	json_decref(j);

	assert_string_equal(vd_event_kind_name(VD_EVENT_UNIT), "unit");
	assert_string_equal(vd_event_kind_name(VD_EVENT_EXECUTOR), "executor");
}

/* ---- a whole run's events ---------------------------------------------- */

static json_t *lease(vd_engine *e, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", 4, "wait_ms", 0);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	int rc = vd_engine_api_lease(&reply, &why, e, req);
	json_decref(req);
	vd_buf_release(&why);
	if (rc == -EAGAIN)
		return NULL;
	assert_int_equal(rc, 0);
	return reply;
}

/* Play executor: the unit's input as its output. */
static void answer(vd_engine *e, const json_t *l)
{
	struct vd_buf in = VD_BUF_INIT(1 << 26), why = VD_BUF_INIT(1024);
	json_t *c, *reply = NULL;
	size_t i;
	json_array_foreach(json_object_get(l, "chunks"), i, c)
		assert_int_equal(vd_engine_api_chunk(&in, &why, e,
				 json_string_value(json_object_get(c, "id"))), 0);
	size_t skip = (size_t)json_integer_value(json_object_get(l, "skip"));
	json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", 0, "ms", 1, "stderr", "");
	assert_int_equal(vd_engine_api_result(&reply, &why, e,
		json_string_value(json_object_get(l, "lease")), meta, in.data + skip,
		in.len - skip), 0);
	json_decref(meta);
	json_decref(reply);
	vd_buf_release(&in);
	vd_buf_release(&why);
}

/* The events read so far, all of them from the first, and where the last
 * await found its match. */
struct seen {
	struct vd_event ev[512];
	size_t n, next;
};

/* The first event after the last one await returned that is of kind (and
 * what, unless NULL), reading more as they come for up to 10 s. */
static const struct vd_event *await(struct seen *s, vd_engine *e, enum vd_event_kind kind,
				    const char *what)
{
	int64_t until = vd_mono_ms() + 10000;
	for (;;) {
		for (; s->next < s->n; s->next++) {
			const struct vd_event *x = &s->ev[s->next];
			if (x->kind == kind && (!what || !strcmp(x->what, what))) {
				s->next++;
				return x;
			}
		}
		uint64_t after = s->n ? s->ev[s->n - 1].seq : 0;
		size_t n;
		bool lost;
		assert_true(vd_mono_ms() < until);
		assert_true(s->n < 512);
		assert_int_equal(vd_engine_events_wait(s->ev + s->n, 512 - s->n, &n, &lost, e,
						       after, 500), 0);
		assert_false(lost);
		s->n += n;
	}
}

static void test_run_events(void **state)
{
	struct fx *f = *state;
	vd_engine *e = f->e;
	struct seen *s = calloc(1, sizeof *s);
	struct vd_buf why = VD_BUF_INIT(4096), text = VD_BUF_INIT(1 << 24);
	struct vd_version_info vi;
	char code[VD_ID_SIZE];
	const struct vd_event *x;

	assert_non_null(s);
	assert_int_equal(vd_engine_task_create(e, "wc"), 0);
	x = await(s, e, VD_EVENT_TASK, "created");
	assert_string_equal(x->task, "wc");
	assert_int_equal(vd_engine_config_write(&why, e, "wc", "unit_size = 8K\n", 15), 0);
	assert_string_equal(await(s, e, VD_EVENT_TASK, "config")->task, "wc");
	assert_int_equal(vd_engine_function_write(code, e, "wc", "#!/bin/cat\n", 11), 1);
	assert_string_equal(await(s, e, VD_EVENT_TASK, "function")->task, "wc");

	for (int i = 0; i < 4000; i++)
		vd_buf_addf(&text, "line %d of the input, word%d\n", i, i % 13);
	char path[] = "/tmp/vd-test-events-in-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(vd_write_all(fd, text.data, text.len), 0);
	assert_int_equal(vd_engine_submit_file(&vi, &why, e, "wc", "in.txt", NULL, fd), 1);
	close(fd);
	x = await(s, e, VD_EVENT_VERSION, "sealed");
	assert_string_equal(x->task, "wc");
	assert_string_equal(x->data_id, vi.data_id);
	assert_string_equal(x->name, "in.txt");
	uint64_t sealed_seq = x->seq;
	x = await(s, e, VD_EVENT_RUN, "queued");
	assert_string_equal(x->data_id, vi.data_id);
	assert_string_equal(x->code_id, code);
	assert_true(x->seq > sealed_seq);

	json_t *req = json_pack("{s:s, s:i, s:i}", "name", "ex1", "level", 1, "slots", 4);
	json_t *reply = NULL;
	assert_int_equal(vd_engine_api_register(&reply, &why, e, req), 0);
	json_decref(req);
	json_decref(reply);
	assert_string_equal(await(s, e, VD_EVENT_EXECUTOR, "registered")->name, "ex1");

	size_t answered = 0;
	json_t *l;
	while ((l = lease(e, "ex1"))) {
		json_t *one;
		size_t i;
		json_array_foreach(json_object_get(l, "leases"), i, one) {
			answer(e, one);
			answered++;
		}
		json_decref(l);
	}
	assert_true(answered > 3);
	uint64_t running = await(s, e, VD_EVENT_RUN, "running")->seq;
	x = await(s, e, VD_EVENT_RUN, "done");
	assert_string_equal(x->data_id, vi.data_id);
	uint64_t done_seq = x->seq;
	/* Each result accepted is one unit event, done counting up to units,
	 * all after the run started and before it was done. */
	uint64_t last = 0;
	size_t units = 0;
	for (size_t i = 0; i < s->n; i++) {
		if (s->ev[i].kind != VD_EVENT_UNIT)
			continue;
		assert_string_equal(s->ev[i].data_id, vi.data_id);
		assert_string_equal(s->ev[i].code_id, code);
		assert_int_equal(s->ev[i].units, answered);
		assert_int_equal(s->ev[i].done, last + 1);
		assert_true(s->ev[i].seq > running && s->ev[i].seq < done_seq);
		last = s->ev[i].done;
		units++;
	}
	assert_int_equal(units, answered);
	assert_int_equal(last, answered);

	/* Cancelling a run posts it failed. */
	char data[VD_ID_SIZE];
	assert_int_equal(vd_engine_rerun(data, &why, e, "wc", NULL, true), 0);
	await(s, e, VD_EVENT_RUN, "queued");
	assert_int_equal(vd_engine_cancel(data, &why, e, "wc", NULL), 0);
	assert_string_equal(await(s, e, VD_EVENT_RUN, "failed")->data_id, vi.data_id);

	assert_int_equal(vd_engine_version_delete(&why, e, "wc", vi.data_id), 0);
	x = await(s, e, VD_EVENT_VERSION, "deleted");
	assert_string_equal(x->data_id, vi.data_id);
	assert_string_equal(x->name, "in.txt");
	assert_int_equal(vd_engine_task_delete(&why, e, "wc"), 0);
	assert_string_equal(await(s, e, VD_EVENT_TASK, "deleted")->task, "wc");

	reply = NULL;
	assert_int_equal(vd_engine_api_leave(&reply, &why, e, "ex1"), 0);
	json_decref(reply);
	assert_string_equal(await(s, e, VD_EVENT_EXECUTOR, "left")->name, "ex1");
	reply = NULL;
	assert_int_equal(vd_engine_api_revoke(&reply, &why, e, "ex1"), 0);
	json_decref(reply);
	assert_string_equal(await(s, e, VD_EVENT_EXECUTOR, "revoked")->name, "ex1");

	/* Numbers go up by one, with no gaps. */
	for (size_t i = 0; i < s->n; i++)
		assert_int_equal(s->ev[i].seq, i + 1);
	free(s);
	vd_buf_release(&why);
	vd_buf_release(&text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrap_and_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wake, setup, teardown),
		cmocka_unit_test(test_json),
		cmocka_unit_test_setup_teardown(test_run_events, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
