/*
 * test_tree_view.c - what versions/<id>/input shows of a tree, without a
 * mount: the recorded modes, symlinks as symlinks with their stored
 * targets, st_nlink of hard-linked files, directory listings with types;
 * and manifests sealed before trees kept any of that, which must still
 * load with the defaults (regular files 0644, directories 0755).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine_int.h"
#include "view_int.h"

struct fx {
	char dir[64];
	char src[PATH_MAX];
	vd_engine *e;
	struct vd_view v;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-treev-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char st[PATH_MAX];
	snprintf(st, sizeof st, "%s/state", f->dir);
	struct vd_engine_opts o = { .state_dir = st, .lease_ms = 5000, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	snprintf(f->src, sizeof f->src, "%s/src", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(chmod(f->src, 0755), 0);
	assert_int_equal(vd_engine_task_create(f->e, "t"), 0);
	f->v.e = f->e;
	f->v.uid = getuid();
	f->v.gid = getgid();
	pthread_mutex_init(&f->v.mlock, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	mc_free_all(&f->v);
	pthread_mutex_destroy(&f->v.mlock);
	vd_engine_close(f->e);
	vd_rm_rf(f->dir);
	free(f);
	return 0;
}

static void at(char *out, size_t n, const char *dir, const char *rel)
{
	int k = snprintf(out, n, "%s/%s", dir, rel);
	assert_true(k > 0 && (size_t)k < n);
}

static void mk_file(const char *dir, const char *rel, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	at(p, sizeof p, dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(vd_write_all(fd, text, strlen(text)), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void mk_dir(const char *dir, const char *rel, mode_t mode)
{
	char p[PATH_MAX];
	at(p, sizeof p, dir, rel);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, mode), 0);
}

static void mk_link(const char *dir, const char *rel, const char *target)
{
	char p[PATH_MAX];
	at(p, sizeof p, dir, rel);
	assert_int_equal(symlink(target, p), 0);
}

/* What stat of versions/ID/input/<path> gives. */
static struct stat input_stat(struct fx *f, const char *id, const char *path)
{
	struct vref r;
	struct stat st;
	memset(&r, 0, sizeof r);
	r.kind = NK_INPUT;
	r.task = "t";
	memcpy(r.data_id, id, VD_ID_SIZE);
	snprintf(r.path, sizeof r.path, "%s", path);
	int rc = vref_stat(&st, &f->v, &r);
	if (rc)
		fail_msg("stat input/%s: %s", path, strerror(-rc));
	return st;
}

static mode_t listed_type(struct fx *f, const char *id, const char *dir, const char *name)
{
	struct vref r;
	struct dlist l = { 0 };
	mode_t type = 0;
	int count = 0;
	memset(&r, 0, sizeof r);
	r.kind = NK_INPUT;
	r.task = "t";
	memcpy(r.data_id, id, VD_ID_SIZE);
	snprintf(r.path, sizeof r.path, "%s", dir);
	assert_int_equal(vref_list(&l, &f->v, &r), 0);
	for (size_t i = 0; i < l.n; i++)
		if (!strcmp(l.v[i].name, name)) {
			type = l.v[i].type;
			count++;
		}
	dlist_free(&l);
	if (count > 1)
		fail_msg("%s listed %d times in input/%s", name, count, dir);
	return type;
}

static void test_input_shows_tree(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096);
	char p[PATH_MAX], q[PATH_MAX];
	mk_file(f->src, "a.txt", "alpha\n", 0644);
	mk_file(f->src, "run.sh", "#!/bin/sh\n", 0755);
	mk_file(f->src, "secret", "s\n", 0600);
	mk_dir(f->src, "d750", 0750);
	mk_file(f->src, "d750/x", "x\n", 0644);
	mk_file(f->src, "d-x", "between d750 and d750/x in path order\n", 0644);
	mk_dir(f->src, "empty", 0755);
	mk_dir(f->src, "plain", 0755);
	mk_file(f->src, "plain/p", "p\n", 0644);
	mk_link(f->src, "plain/up", "../a.txt");
	mk_link(f->src, "abs", "/etc/passwd");
	at(p, sizeof p, f->src, "a.txt");
	at(q, sizeof q, f->src, "plain/again");
	assert_int_equal(link(p, q), 0);
	assert_int_equal(chmod(f->src, 0711), 0);
	assert_int_equal(vd_engine_submit_tree(&vi, &why, f->e, "t", "tree", NULL, f->src), 1);

	struct stat st = input_stat(f, vi.data_id, "");
	assert_int_equal(st.st_mode, S_IFDIR | 0711);
	st = input_stat(f, vi.data_id, "a.txt");
	assert_int_equal(st.st_mode, S_IFREG | 0644);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(st.st_size, 6);
	assert_int_equal(input_stat(f, vi.data_id, "plain/again").st_nlink, 2);
	assert_int_equal(input_stat(f, vi.data_id, "run.sh").st_mode, S_IFREG | 0755);
	assert_int_equal(input_stat(f, vi.data_id, "run.sh").st_nlink, 1);
	assert_int_equal(input_stat(f, vi.data_id, "secret").st_mode, S_IFREG | 0600);
	assert_int_equal(input_stat(f, vi.data_id, "d750").st_mode, S_IFDIR | 0750);
	assert_int_equal(input_stat(f, vi.data_id, "empty").st_mode, S_IFDIR | 0755);
	assert_int_equal(input_stat(f, vi.data_id, "plain").st_mode, S_IFDIR | 0755);
	st = input_stat(f, vi.data_id, "plain/up");
	assert_int_equal(st.st_mode, S_IFLNK | 0777);
	assert_int_equal(st.st_size, strlen("../a.txt"));

	/* readlink answers the stored target, resolved by nobody. */
	struct vref r;
	struct vd_buf target = VD_BUF_INIT(PATH_MAX), tiny = VD_BUF_INIT(4);
	memset(&r, 0, sizeof r);
	r.kind = NK_INPUT;
	r.task = "t";
	memcpy(r.data_id, vi.data_id, VD_ID_SIZE);
	snprintf(r.path, sizeof r.path, "abs");
	assert_int_equal(input_readlink(&target, &f->v, &r), 0);
	assert_string_equal(vd_buf_cstr(&target), "/etc/passwd");
	vd_buf_reset(&target);
	assert_int_equal(version_readlink(&target, &f->v, vi.data_id, "plain/up"), 0);
	assert_string_equal(vd_buf_cstr(&target), "../a.txt");
	assert_int_equal(version_readlink(&target, &f->v, vi.data_id, "a.txt"), -EINVAL);
	assert_int_equal(version_readlink(&target, &f->v, vi.data_id, ""), -EINVAL);
	assert_int_equal(version_readlink(&target, &f->v, vi.data_id, "nope"), -ENOENT);
	assert_int_equal(version_readlink(&tiny, &f->v, vi.data_id, "plain/up"), -ENAMETOOLONG);
	r.kind = NK_STATUS;
	assert_int_equal(input_readlink(&target, &f->v, &r), -EINVAL);
	vd_buf_release(&target);
	vd_buf_release(&tiny);

	/* Listings carry the types; a directory's own entry is listed once. */
	assert_int_equal(listed_type(f, vi.data_id, "", "abs"), S_IFLNK);
	assert_int_equal(listed_type(f, vi.data_id, "", "empty"), S_IFDIR);
	assert_int_equal(listed_type(f, vi.data_id, "", "d750"), S_IFDIR);
	assert_int_equal(listed_type(f, vi.data_id, "", "d-x"), S_IFREG);
	assert_int_equal(listed_type(f, vi.data_id, "", "plain"), S_IFDIR);
	assert_int_equal(listed_type(f, vi.data_id, "plain", "up"), S_IFLNK);
	assert_int_equal(listed_type(f, vi.data_id, "d750", "x"), S_IFREG);

	struct vd_manifest *m = NULL;
	assert_int_equal(vd_engine_manifest_get(&m, f->e, vi.data_id), 0);
	mode_t type;
	size_t idx;
	assert_int_equal(vd_manifest_lookup(&type, &idx, m, "plain"), 0);
	assert_int_equal(type, S_IFDIR);
	assert_int_equal(idx, SIZE_MAX);
	assert_int_equal(vd_manifest_lookup(&type, &idx, m, "empty"), 0);
	assert_int_equal(type, S_IFDIR);
	assert_true(idx != SIZE_MAX);
	assert_int_equal(vd_manifest_lookup(&type, &idx, m, "plain/up"), 0);
	assert_int_equal(type, S_IFLNK);
	assert_int_equal(vd_manifest_lookup(&type, &idx, m, "nope"), -ENOENT);
	vd_manifest_free(m);
	vd_buf_release(&why);
}

/* A manifest written before trees kept modes and links. */
static void test_old_manifest(void **state)
{
	struct fx *f = *state;
	const char *id = "0123456789abcdef0123456789abcdef";
	char json[1024];
	snprintf(json, sizeof json,
		 "{\"files\":[{\"chunks\":[[\"%s\",6,1]],\"id\":\"%s\",\"path\":\"d/x\","
		 "\"size\":6},{\"chunks\":[],\"path\":\"e\",\"size\":0}],\"kind\":\"tree\"}",
		 id, id);
	struct vd_manifest *m = NULL;
	assert_int_equal(vd_engine_manifest_parse(&m, json, strlen(json)), 0);
	assert_int_equal(m->nfiles, 2);
	assert_int_equal(m->files[0].mode, S_IFREG | 0644);
	assert_int_equal(vd_file_type(&m->files[1]), S_IFREG);
	assert_int_equal(vd_file_perm(&m->files[1]), 0644);
	assert_null(m->files[0].target);
	assert_null(m->files[0].hardlink);
	struct stat st;
	assert_int_equal(man_stat(&st, &f->v, m, "d", 0), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0755);
	assert_int_equal(man_stat(&st, &f->v, m, "", 0), 0);
	assert_int_equal(st.st_mode, S_IFDIR | 0755);
	assert_int_equal(man_stat(&st, &f->v, m, "d/x", 0), 0);
	assert_int_equal(st.st_mode, S_IFREG | 0644);
	assert_int_equal(st.st_nlink, 1);
	vd_manifest_free(m);

	/* A file version's one file records no mode. */
	snprintf(json, sizeof json,
		 "{\"files\":[{\"chunks\":[[\"%s\",6]],\"path\":\"\",\"size\":6}],"
		 "\"kind\":\"file\"}", id);
	assert_int_equal(vd_engine_manifest_parse(&m, json, strlen(json)), 0);
	assert_int_equal(m->files[0].mode, 0);
	assert_int_equal(vd_file_type(&m->files[0]), S_IFREG);
	vd_manifest_free(m);

	/* Forged paths and links to nowhere are refused. */
	const char *bad[] = {
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"../x\",\"size\":0,\"chunks\":[]}]}",
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"a//b\",\"size\":0,\"chunks\":[]}]}",
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"l\",\"type\":\"symlink\"}]}",
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"h\",\"hardlink\":\"nope\"}]}",
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"m\",\"mode\":\"99\",\"chunks\":[]}]}",
		"{\"kind\":\"tree\",\"files\":[{\"path\":\"t\",\"type\":\"fifo\"}]}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		m = NULL;
		if (vd_engine_manifest_parse(&m, bad[i], strlen(bad[i])) != -EBADMSG)
			fail_msg("accepted %s", bad[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_input_shows_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_manifest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
