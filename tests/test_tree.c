/*
 * test_tree.c - tree versions keep what `cp -a` copies: modes, empty
 * directories, symlinks (never followed), hard links; FIFOs and the like
 * are refused or skipped as config says; a tree of plain files keeps the
 * ID it always had; a sealed tree copied back for changes is the same
 * tree; symlinks = follow-inside-tree cuts units only from links that
 * stay inside the tree.
 *
 * Everything here goes through interfaces that existed before trees kept
 * more (vd_engine_submit_tree, the manifest JSON of GET /v1/versions/<id>,
 * leases, materialize_tree), so the same file shows what the old code
 * did. test_tree_view.c covers the view's new side.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine.h"
#include "view_int.h"

/* The ID a tree of plain files had before trees kept modes and links,
 * computed by that code (commit c1b6e69) for plain_tree() with the secret
 * fixed_secret() and 4 KiB average chunks: it must never change. */
#define PLAIN_TREE_ID "2b9485091ca39be34254d2e84faa09f3"

struct fx {
	char dir[64];
	char src[PATH_MAX];
	vd_engine *e;
};

static void fixed_secret(const char *state)
{
	char path[PATH_MAX];
	unsigned char key[VD_KEY_SIZE];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (unsigned char)(i * 7 + 3);
	int k = snprintf(path, sizeof path, "%s/secret", state);
	assert_true(k > 0 && (size_t)k < sizeof path);
	assert_int_equal(vd_write_file_atomic(path, key, sizeof key, 0600), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/vd-test-tree-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char st[PATH_MAX];
	snprintf(st, sizeof st, "%s/state", f->dir);
	assert_int_equal(mkdir(st, 0700), 0);
	fixed_secret(st);
	struct vd_engine_opts o = { .state_dir = st, .lease_ms = 5000, .chunk_avg = 4096 };
	assert_int_equal(vd_engine_open(&f->e, &o), 0);
	snprintf(f->src, sizeof f->src, "%s/src", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	assert_int_equal(chmod(f->src, 0755), 0);
	assert_int_equal(vd_engine_task_create(f->e, "t"), 0);
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

/* ---- making trees ------------------------------------------------------- */

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

static void mk_hard(const char *dir, const char *from, const char *to)
{
	char a[PATH_MAX], b[PATH_MAX];
	at(a, sizeof a, dir, from);
	at(b, sizeof b, dir, to);
	assert_int_equal(link(a, b), 0);
}

/* Text of n lines, so that files span several chunks. */
static char *lines(const char *tag, size_t n)
{
	struct vd_buf b = VD_BUF_INIT(1 << 24);
	for (size_t i = 0; i < n; i++)
		vd_buf_addf(&b, "%s line %zu of the file\n", tag, i);
	return vd_buf_detach(&b, NULL);
}

/* Plain files only, all 0644, directories 0755: the kind of tree that was
 * all there was before. */
static void plain_tree(const char *dir)
{
	char *big = lines("big", 3000);
	mk_file(dir, "a.txt", "alpha\nbeta\n", 0644);
	mk_dir(dir, "sub", 0755);
	mk_file(dir, "sub/b.txt", big, 0644);
	mk_dir(dir, "sub/deeper", 0755);
	mk_file(dir, "sub/deeper/c.csv", "k,v\nx,1\n", 0644);
	mk_file(dir, "z", "", 0644);
	free(big);
}

/* ---- reading what was sealed ------------------------------------------- */

static int submit(struct vd_version_info *vi, struct vd_buf *why, vd_engine *e,
		  const char *name, const char *dir)
{
	vd_buf_reset(why);
	return vd_engine_submit_tree(vi, why, e, "t", name, NULL, dir);
}

/* The manifest as the operator API gives it. */
static json_t *manifest_of(vd_engine *e, const char *id)
{
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_version(&reply, &why, e, id), 0);
	json_t *m = json_deep_copy(json_object_get(reply, "manifest"));
	json_decref(reply);
	vd_buf_release(&why);
	assert_non_null(m);
	return m;
}

static json_t *entry(const json_t *man, const char *path)
{
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(man, "files"), i, f) {
		const char *p = json_string_value(json_object_get(f, "path"));
		if (p && !strcmp(p, path))
			return f;
	}
	return NULL;
}

static const char *field(const json_t *man, const char *path, const char *key)
{
	json_t *f = entry(man, path);
	if (!f)
		fail_msg("no entry %s in the manifest", path);
	return json_string_value(json_object_get(f, key));
}

static void expect_field(const json_t *man, const char *path, const char *key,
			 const char *want)
{
	const char *got = field(man, path, key);
	if (!got || strcmp(got, want))
		fail_msg("%s: %s is %s, not %s", path, key, got ? got : "absent", want);
}

/* ---- the tests ---------------------------------------------------------- */

/* A tree of plain files has the ID it always had: the old formula, by
 * hand, and the value the old code computed. */
static void test_plain_id_unchanged(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_key key;
	char st[PATH_MAX], want[VD_ID_SIZE];
	plain_tree(f->src);
	assert_int_equal(submit(&vi, &why, f->e, "plain", f->src), 1);

	snprintf(st, sizeof st, "%s/state/secret", f->dir);
	assert_int_equal(vd_key_load_or_create(&key, st), 0);
	json_t *man = manifest_of(f->e, vi.data_id);
	vd_hasher *h = NULL;
	assert_int_equal(vd_hasher_new(&h, &key), 0);
	vd_hasher_update(h, "vdfs-tree\n", 10);
	size_t i, j;
	json_t *e, *c;
	json_array_foreach(json_object_get(man, "files"), i, e) {
		const char *p = json_string_value(json_object_get(e, "path"));
		char sz[32];
		int n = snprintf(sz, sizeof sz, "%lld\n",
				 (long long)json_integer_value(json_object_get(e, "size")));
		vd_hasher_update(h, p, strlen(p) + 1);
		vd_hasher_update(h, sz, (size_t)n);
		json_array_foreach(json_object_get(e, "chunks"), j, c)
			vd_hasher_update(h, json_string_value(json_array_get(c, 0)), VD_ID_LEN);
		vd_hasher_update(h, "\n", 1);
		/* Nothing beyond what old manifests held. */
		assert_null(json_object_get(e, "mode"));
		assert_null(json_object_get(e, "type"));
		assert_null(json_object_get(e, "hardlink"));
	}
	assert_int_equal(json_array_size(json_object_get(man, "files")), 4);
	assert_null(json_object_get(man, "mode"));
	vd_hasher_digest(h, want);
	vd_hasher_free(h);
	assert_string_equal(vi.data_id, want);
	assert_string_equal(vi.data_id, PLAIN_TREE_ID);
	json_decref(man);
	vd_buf_release(&why);
}

static void test_modes_and_dirs(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi, plain;
	struct vd_buf why = VD_BUF_INIT(4096);
	mk_file(f->src, "run.sh", "#!/bin/sh\necho hi\n", 0755);
	mk_file(f->src, "secret", "s3cr3t\n", 0600);
	mk_file(f->src, "none", "0\n", 0);
	mk_file(f->src, "suid", "x\n", 04711);
	mk_dir(f->src, "d750", 0750);
	mk_file(f->src, "d750/in.txt", "in\n", 0644);
	mk_dir(f->src, "empty", 0755);
	mk_dir(f->src, "emptier", 0700);
	mk_dir(f->src, "plain", 0755);
	mk_file(f->src, "plain/p.txt", "p\n", 0644);
	assert_int_equal(chmod(f->src, 0750), 0);
	assert_int_equal(submit(&vi, &why, f->e, "modes", f->src), 1);

	json_t *man = manifest_of(f->e, vi.data_id);
	expect_field(man, "run.sh", "mode", "0755");
	expect_field(man, "secret", "mode", "0600");
	expect_field(man, "none", "mode", "0000");
	expect_field(man, "suid", "mode", "4711");
	assert_null(field(man, "d750/in.txt", "mode"));
	expect_field(man, "d750", "type", "dir");
	expect_field(man, "d750", "mode", "0750");
	expect_field(man, "empty", "type", "dir");
	assert_null(field(man, "empty", "mode"));
	expect_field(man, "emptier", "mode", "0700");
	/* A directory with files and the default mode stays implied. */
	assert_null(entry(man, "plain"));
	const char *top = json_string_value(json_object_get(man, "mode"));
	if (!top || strcmp(top, "0750"))
		fail_msg("the top directory's mode is %s, not 0750", top ? top : "absent");
	json_decref(man);

	/* The same tree again: known content. */
	struct vd_version_info again;
	assert_int_equal(submit(&again, &why, f->e, "modes2", f->src), 0);
	assert_string_equal(again.data_id, vi.data_id);

	/* A mode is part of the ID: one bit less is another version. */
	char p[PATH_MAX];
	at(p, sizeof p, f->src, "secret");
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(submit(&plain, &why, f->e, "modes3", f->src), 1);
	assert_string_not_equal(plain.data_id, vi.data_id);
	/* So is an empty directory. */
	at(p, sizeof p, f->src, "empty");
	assert_int_equal(rmdir(p), 0);
	struct vd_version_info fewer;
	assert_int_equal(submit(&fewer, &why, f->e, "modes4", f->src), 1);
	assert_string_not_equal(fewer.data_id, plain.data_id);
	vd_buf_release(&why);
}

static void test_symlinks(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi, vi2, vs;
	struct vd_buf why = VD_BUF_INIT(4096), cfg_why = VD_BUF_INIT(1024);
	mk_file(f->src, "a.txt", "alpha\n", 0644);
	mk_dir(f->src, "sub", 0755);
	mk_file(f->src, "sub/b.txt", "beta\n", 0644);
	mk_link(f->src, "lnk", "a.txt");
	mk_link(f->src, "sub/up", "../a.txt");
	mk_link(f->src, "abs", "/etc/passwd");
	mk_link(f->src, "dang", "no/such/file");
	mk_link(f->src, "dirlink", "sub");
	assert_int_equal(submit(&vi, &why, f->e, "links", f->src), 1);

	json_t *man = manifest_of(f->e, vi.data_id);
	const char *names[] = { "lnk", "sub/up", "abs", "dang", "dirlink" };
	const char *targets[] = { "a.txt", "../a.txt", "/etc/passwd", "no/such/file", "sub" };
	for (size_t i = 0; i < 5; i++) {
		expect_field(man, names[i], "type", "symlink");
		expect_field(man, names[i], "target", targets[i]);
		/* Never followed: no content of what it points to. */
		json_t *e = entry(man, names[i]);
		assert_int_equal(json_array_size(json_object_get(e, "chunks")), 0);
		assert_int_equal(json_integer_value(json_object_get(e, "size")), 0);
	}
	/* Nothing of the link target's directory was walked as the link. */
	assert_null(entry(man, "dirlink/b.txt"));
	json_decref(man);

	/* The target string is data: another target, another ID. */
	char p[PATH_MAX];
	at(p, sizeof p, f->src, "dang");
	assert_int_equal(unlink(p), 0);
	mk_link(f->src, "dang", "no/such/other");
	assert_int_equal(submit(&vi2, &why, f->e, "links2", f->src), 1);
	assert_string_not_equal(vi2.data_id, vi.data_id);

	/* symlinks = skip leaves them out of the version. */
	const char *cfg = "symlinks = skip\n";
	assert_int_equal(vd_engine_config_write(&cfg_why, f->e, "t", cfg, strlen(cfg)), 0);
	assert_int_equal(submit(&vs, &why, f->e, "links3", f->src), 1);
	man = manifest_of(f->e, vs.data_id);
	assert_int_equal(json_array_size(json_object_get(man, "files")), 2);
	assert_null(entry(man, "lnk"));
	json_decref(man);
	vd_buf_release(&why);
	vd_buf_release(&cfg_why);
}

static void test_hardlinks(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi, copies;
	struct vd_buf why = VD_BUF_INIT(4096);
	char *big = lines("linked", 5000);
	char other[PATH_MAX], p[PATH_MAX];
	/* The walk meets a/x before a.txt ("a" < "a.txt"), but a.txt comes
	 * first in path order: it is the first name. */
	mk_dir(f->src, "a", 0755);
	mk_file(f->src, "a/x", big, 0640);
	mk_hard(f->src, "a/x", "a.txt");
	mk_hard(f->src, "a/x", "z");
	/* A file whose other name is outside the tree is a plain file. */
	snprintf(other, sizeof other, "%s/outside", f->dir);
	mk_file(f->dir, "outside", "out\n", 0644);
	at(p, sizeof p, f->src, "single");
	assert_int_equal(link(other, p), 0);
	assert_int_equal(submit(&vi, &why, f->e, "hard", f->src), 1);

	json_t *man = manifest_of(f->e, vi.data_id);
	assert_null(field(man, "a.txt", "hardlink"));
	expect_field(man, "a/x", "hardlink", "a.txt");
	expect_field(man, "z", "hardlink", "a.txt");
	assert_null(field(man, "single", "hardlink"));
	expect_field(man, "a/x", "mode", "0640");
	/* The second names repeat the content (readers that do not know
	 * links still read the bytes); the store holds it once. */
	assert_true(json_equal(json_object_get(entry(man, "a/x"), "chunks"),
			       json_object_get(entry(man, "a.txt"), "chunks")));
	assert_true(vi.stored < 2 * strlen(big));
	json_decref(man);

	/* Three copies instead of three names: another version. */
	vd_rm_rf(f->src);
	assert_int_equal(mkdir(f->src, 0755), 0);
	mk_dir(f->src, "a", 0755);
	mk_file(f->src, "a/x", big, 0640);
	mk_file(f->src, "a.txt", big, 0640);
	mk_file(f->src, "z", big, 0640);
	assert_int_equal(link(other, p), 0);
	assert_int_equal(submit(&copies, &why, f->e, "copies", f->src), 1);
	assert_string_not_equal(copies.data_id, vi.data_id);
	free(big);
	vd_buf_release(&why);
}

static void test_special_files(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096), cfg_why = VD_BUF_INIT(1024);
	struct vd_strv versions = { 0 };
	char p[PATH_MAX];
	mk_file(f->src, "a.txt", "alpha\n", 0644);
	mk_dir(f->src, "sub", 0755);
	at(p, sizeof p, f->src, "sub/pipe");
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_int_equal(submit(&vi, &why, f->e, "fifo", f->src), -EPERM);
	assert_non_null(strstr(vd_buf_cstr(&why), "sub/pipe"));
	assert_non_null(strstr(vd_buf_cstr(&why), "FIFO"));
	assert_non_null(strstr(vd_buf_cstr(&why), "special = skip"));
	assert_int_equal(vd_engine_version_list(&versions, f->e, "t"), 0);
	assert_int_equal(versions.n, 0);
	vd_strv_release(&versions);

	/* A socket is refused the same way. */
	assert_int_equal(unlink(p), 0);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	at(p, sizeof p, f->src, "sock");
	assert_true(strlen(p) < sizeof sa.sun_path);
	memcpy(sa.sun_path, p, strlen(p) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(submit(&vi, &why, f->e, "sock", f->src), -EPERM);
	assert_non_null(strstr(vd_buf_cstr(&why), "sock is a socket"));

	/* special = skip: left out; a directory left empty is kept empty. */
	at(p, sizeof p, f->src, "sub/pipe");
	assert_int_equal(mkfifo(p, 0644), 0);
	const char *cfg = "special = skip\n";
	assert_int_equal(vd_engine_config_write(&cfg_why, f->e, "t", cfg, strlen(cfg)), 0);
	assert_int_equal(submit(&vi, &why, f->e, "skipped", f->src), 1);
	json_t *man = manifest_of(f->e, vi.data_id);
	assert_int_equal(json_array_size(json_object_get(man, "files")), 2);
	assert_non_null(entry(man, "a.txt"));
	expect_field(man, "sub", "type", "dir");
	json_decref(man);
	close(s);
	vd_buf_release(&why);
	vd_buf_release(&cfg_why);
}

static void test_config_keys(void **state)
{
	struct fx *f = *state;
	struct vd_buf why = VD_BUF_INIT(1024);
	const char *good[] = { "symlinks = keep\n", "symlinks = skip\n",
			       "symlinks = follow-inside-tree\n", "special = refuse\n",
			       "special = skip\n" };
	const char *bad[] = { "symlinks = follow\n", "special = yes\n" };
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_int_equal(vd_engine_config_write(&why, f->e, "t", good[i],
							strlen(good[i])), 0);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		vd_buf_reset(&why);
		assert_int_equal(vd_engine_config_write(&why, f->e, "t", bad[i], strlen(bad[i])),
				 -EINVAL);
		assert_non_null(strstr(vd_buf_cstr(&why), "line 1"));
	}
	vd_buf_release(&why);
}

/* Compare two real trees as `diff -r --no-dereference` and `stat -c %a`
 * would, and hard links by inode. */
static void same_tree(const char *a, const char *b, const char *rel)
{
	char pa[PATH_MAX], pb[PATH_MAX];
	struct stat sa, sb;
	at(pa, sizeof pa, a, rel);
	at(pb, sizeof pb, b, rel);
	assert_int_equal(lstat(pa, &sa), 0);
	if (lstat(pb, &sb))
		fail_msg("%s is missing from the copy", rel);
	if (sa.st_mode != sb.st_mode)
		fail_msg("%s: mode %o, the copy has %o", rel, (unsigned)sa.st_mode,
			 (unsigned)sb.st_mode);
	if (S_ISLNK(sa.st_mode)) {
		char ta[PATH_MAX], tb[PATH_MAX];
		ssize_t na = readlink(pa, ta, sizeof ta - 1), nb = readlink(pb, tb, sizeof tb - 1);
		assert_true(na > 0 && nb > 0);
		ta[na] = tb[nb] = '\0';
		assert_string_equal(ta, tb);
		return;
	}
	if (S_ISREG(sa.st_mode)) {
		struct vd_buf ba = VD_BUF_INIT(1 << 26), bb = VD_BUF_INIT(1 << 26);
		assert_int_equal(vd_read_file(&ba, pa), 0);
		assert_int_equal(vd_read_file(&bb, pb), 0);
		assert_int_equal(ba.len, bb.len);
		if (ba.len)
			assert_memory_equal(ba.data, bb.data, ba.len);
		assert_int_equal(sa.st_nlink > 1, sb.st_nlink > 1);
		vd_buf_release(&ba);
		vd_buf_release(&bb);
		return;
	}
	DIR *d = opendir(pa);
	assert_non_null(d);
	size_t na = 0, nb = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char sub[PATH_MAX];
		snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		same_tree(a, b, sub);
		na++;
	}
	closedir(d);
	d = opendir(pb);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			nb++;
	closedir(d);
	assert_int_equal(na, nb);
}

static void rich_tree(const char *dir)
{
	char *big = lines("rich", 4000);
	mk_file(dir, "a.txt", "alpha\n", 0644);
	mk_file(dir, "run.sh", "#!/bin/sh\necho hi\n", 0755);
	mk_file(dir, "secret", "s\n", 0600);
	mk_dir(dir, "d750", 0750);
	mk_file(dir, "d750/big", big, 0644);
	mk_hard(dir, "d750/big", "big-again");
	mk_dir(dir, "ro", 0555);
	mk_dir(dir, "empty", 0755);
	mk_dir(dir, "nest", 0755);
	mk_dir(dir, "nest/deep", 0711);
	mk_link(dir, "nest/up", "../a.txt");
	mk_link(dir, "abs", "/etc/passwd");
	mk_link(dir, "dang", "nowhere");
	mk_file(dir, "d-x", "sorts between d750 and d750/\n", 0644);
	assert_int_equal(chmod(dir, 0700), 0);
	free(big);
}

/* A sealed tree copied back into a staging directory (what a change to a
 * sealed data/TREE does first) is the tree as submitted, and seals to the
 * same ID. */
static void test_materialize_roundtrip(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi, back;
	struct vd_buf why = VD_BUF_INIT(4096);
	struct vd_manifest *m = NULL;
	struct vd_view v;
	char out[PATH_MAX];
	rich_tree(f->src);
	/* ro/ is 0555: a file in it is made before its mode is. */
	char p[PATH_MAX];
	at(p, sizeof p, f->src, "ro");
	assert_int_equal(chmod(p, 0755), 0);
	mk_file(f->src, "ro/inside", "i\n", 0444);
	assert_int_equal(chmod(p, 0555), 0);
	assert_int_equal(submit(&vi, &why, f->e, "rich", f->src), 1);

	memset(&v, 0, sizeof v);
	v.e = f->e;
	pthread_mutex_init(&v.mlock, NULL);
	assert_int_equal(vd_engine_manifest_get(&m, f->e, vi.data_id), 0);
	snprintf(out, sizeof out, "%s/copy", f->dir);
	assert_int_equal(mkdir(out, 0755), 0);
	assert_int_equal(materialize_tree(&v, m, out), 0);
	same_tree(f->src, out, "");
	struct stat s1, s2;
	at(p, sizeof p, out, "d750/big");
	assert_int_equal(lstat(p, &s1), 0);
	at(p, sizeof p, out, "big-again");
	assert_int_equal(lstat(p, &s2), 0);
	assert_true(s1.st_ino == s2.st_ino);
	assert_int_equal(s1.st_nlink, 2);
	assert_int_equal(submit(&back, &why, f->e, "rich", out), 0);
	assert_string_equal(back.data_id, vi.data_id);
	vd_manifest_free(m);
	mc_free_all(&v);
	pthread_mutex_destroy(&v.mlock);
	vd_buf_release(&why);
}

/* Non-UTF-8 names and targets are bytes like any others. */
static void test_raw_bytes(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096);
	mk_file(f->src, "caf\xe9.txt", "latin-1 name\n", 0644);
	mk_link(f->src, "l\xff", "caf\xe9.txt");
	assert_int_equal(submit(&vi, &why, f->e, "raw", f->src), 1);
	struct vd_manifest *m = NULL;
	assert_int_equal(vd_engine_manifest_get(&m, f->e, vi.data_id), 0);
	assert_int_equal(m->nfiles, 2);
	assert_string_equal(m->files[0].path, "caf\xe9.txt");
	assert_string_equal(m->files[1].path, "l\xff");
	vd_manifest_free(m);
	vd_buf_release(&why);
}

/* ---- units ------------------------------------------------------------- */

static void reg(vd_engine *e, const char *who)
{
	json_t *req = json_pack("{s:s, s:i, s:i}", "name", who, "level", 5, "slots", 4);
	json_t *reply = NULL;
	struct vd_buf why = VD_BUF_INIT(1024);
	assert_int_equal(vd_engine_api_register(&reply, &why, e, req), 0);
	json_decref(req);
	json_decref(reply);
	vd_buf_release(&why);
}

/* Lease every unit there is; the paths they are for, and each path's
 * chunk IDs, as "path=id,id,...\n" lines sorted. */
static char *unit_paths(vd_engine *e, const char *who)
{
	struct vd_strv got = { 0 };
	struct vd_buf why = VD_BUF_INIT(1024), out = VD_BUF_INIT(1 << 20);
	for (int round = 0; round < 50; round++) {
		json_t *req = json_pack("{s:s, s:i, s:i}", "executor", who, "max", 16, "wait_ms",
					round ? 0 : 2000);
		json_t *reply = NULL;
		int rc = vd_engine_api_lease(&reply, &why, e, req);
		json_decref(req);
		if (rc == -EAGAIN)
			break;
		assert_int_equal(rc, 0);
		size_t i, j;
		json_t *one, *c;
		json_array_foreach(json_object_get(reply, "leases"), i, one) {
			struct vd_buf line = VD_BUF_INIT(1 << 16);
			vd_buf_addf(&line, "%s=", json_string_value(json_object_get(one, "path")));
			json_array_foreach(json_object_get(one, "chunks"), j, c)
				vd_buf_addf(&line, "%s,", json_string_value(json_object_get(c, "id")));
			vd_strv_push(&got, vd_buf_cstr(&line));
			vd_buf_release(&line);
			json_t *meta = json_pack("{s:i, s:i, s:s}", "exit", 0, "ms", 1, "stderr", "");
			json_t *r2 = NULL;
			assert_int_equal(vd_engine_api_result(&r2, &why, e,
				json_string_value(json_object_get(one, "lease")), meta, "x\n", 2), 0);
			json_decref(meta);
			json_decref(r2);
		}
		json_decref(reply);
	}
	vd_strv_sort(&got);
	for (size_t i = 0; i < got.n; i++)
		vd_buf_addf(&out, "%s\n", got.v[i]);
	vd_strv_release(&got);
	vd_buf_release(&why);
	return vd_buf_detach(&out, NULL);
}

/* The chunks a path's units read, as unit_paths prints them. */
static char *chunks_of(const json_t *man, const char *path)
{
	struct vd_buf b = VD_BUF_INIT(1 << 16);
	size_t j;
	json_t *c;
	json_array_foreach(json_object_get(entry(man, path), "chunks"), j, c)
		vd_buf_addf(&b, "%s,", json_string_value(json_array_get(c, 0)));
	return vd_buf_detach(&b, NULL);
}

static void links_tree(const char *dir)
{
	mk_dir(dir, "data", 0755);
	mk_file(dir, "data/f.txt", "one\ntwo\nthree\n", 0644);
	mk_link(dir, "l1", "data/f.txt");            /* inside: followed */
	mk_link(dir, "l6", "l1");                    /* a link to a link inside */
	mk_link(dir, "dl", "data");                  /* a link to a directory */
	mk_link(dir, "l7", "dl/./f.txt");            /* through it: inside */
	mk_link(dir, "data/back", "../data/f.txt");  /* up and down again */
	mk_link(dir, "out", "../outside.txt");       /* leaves the tree */
	mk_link(dir, "abs", "/etc/passwd");          /* absolute */
	mk_link(dir, "dang", "data/nothing");        /* dangling */
	mk_link(dir, "loop1", "loop2");
	mk_link(dir, "loop2", "loop1");
	mk_link(dir, "notdir", "data/f.txt/x");      /* a file used as a directory */
}

static void test_units_follow(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096);
	char code[VD_ID_SIZE], outside[PATH_MAX];
	snprintf(outside, sizeof outside, "%s/outside.txt", f->dir);
	mk_file(f->dir, "outside.txt", "never read\n", 0644);
	links_tree(f->src);
	const char *cfg = "symlinks = follow-inside-tree\nformat = whole\n";
	assert_int_equal(vd_engine_config_write(&why, f->e, "t", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, f->e, "t", "#!/bin/sh\ncat\n", 14), 1);
	reg(f->e, "ex");
	assert_int_equal(submit(&vi, &why, f->e, "links", f->src), 1);
	json_t *man = manifest_of(f->e, vi.data_id);
	char *fc = chunks_of(man, "data/f.txt");
	char want[4096];
	snprintf(want, sizeof want, "data/back=%s\ndata/f.txt=%s\nl1=%s\nl6=%s\nl7=%s\n", fc, fc,
		 fc, fc, fc);
	char *got = unit_paths(f->e, "ex");
	assert_string_equal(got, want);
	free(got);
	free(fc);
	json_decref(man);
	vd_buf_release(&why);
}

/* The default, keep: links are in the version and yield no unit. */
static void test_units_keep(void **state)
{
	struct fx *f = *state;
	struct vd_version_info vi;
	struct vd_buf why = VD_BUF_INIT(4096);
	char code[VD_ID_SIZE];
	links_tree(f->src);
	const char *cfg = "format = whole\n";
	assert_int_equal(vd_engine_config_write(&why, f->e, "t", cfg, strlen(cfg)), 0);
	assert_int_equal(vd_engine_function_write(code, f->e, "t", "#!/bin/sh\ncat\n", 14), 1);
	reg(f->e, "ex");
	assert_int_equal(submit(&vi, &why, f->e, "links", f->src), 1);
	json_t *man = manifest_of(f->e, vi.data_id);
	char *fc = chunks_of(man, "data/f.txt");
	char want[4096];
	snprintf(want, sizeof want, "data/f.txt=%s\n", fc);
	char *got = unit_paths(f->e, "ex");
	assert_string_equal(got, want);
	expect_field(man, "l1", "type", "symlink");
	free(got);
	free(fc);
	json_decref(man);
	vd_buf_release(&why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_plain_id_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_modes_and_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hardlinks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_special_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_materialize_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_raw_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_units_keep, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
