/*
 * config_keys.c - the config keys the engine accepts (see config_keys.h).
 *
 * Each row says what engine.c's config_line() does with the key today:
 * keep its value syntax, default and meaning in step with that code. The
 * defaults are vd_config_default()'s.
 */
#include <string.h>

#include "config_keys.h"

const struct vd_config_key vd_config_keys[] = {
	{ "level", "1-5", "1", "3",
	  "The executor level the function needs: only executors started with "
	  "vdfs-executor --level N, N at least this, are given its units. A run with "
	  "no such executor waits, and its status says so." },
	{ "reduce", "concat | sum", "concat", "sum",
	  "How the units' outputs become result.csv. concat: the outputs in unit "
	  "order, each ending in a newline. sum: each output line is key,number"
	  "[,number...] (the key is every field before the trailing numbers); lines "
	  "with the same key are added up, column by column, and come out sorted by "
	  "key. A line with no number fails the run." },
	{ "format", "lines | csv | whole", "lines", "csv",
	  "How a file is cut into units. lines: runs of whole lines, about "
	  "unit_size bytes each. csv: the same, and every unit's input starts with "
	  "the file's first line (its header). whole: each file is one unit." },
	{ "timeout", "SECONDS (1-604800)", "300", "60",
	  "How long one unit may run; one that runs longer is killed, and that "
	  "counts as a failed attempt." },
	{ "retries", "1-100", "3", "5",
	  "Failed attempts of one unit before its run fails. A lease lost with an "
	  "executor does not count." },
	{ "replicas", "1-5", "1", "2",
	  "How many different executors run each unit. With more than one, a unit "
	  "is accepted only when that many outputs are identical; executors whose "
	  "output disagreed are flagged. A replicated result is never reused for an "
	  "unreplicated run of the same code and data, nor the other way round." },
	{ "memory", "SIZE (at least 1M; K, M, G)", "2G", "512M",
	  "The resident memory a unit's processes may use; a unit above it is "
	  "stopped, and that counts as a failed attempt. An executor's --max-memory "
	  "caps it further." },
	{ "settle", "SECONDS (0-3600, fractions allowed)", "2", "0.5",
	  "How long a tree copied into data/ must be quiet (nothing created, written, "
	  "renamed or removed in it, no file in it open) before it is sealed as one "
	  "version." },
	{ "rerun", "latest | none", "latest", "none",
	  "What a new code version or a changed config runs again, besides "
	  "versions still waiting for code: latest, the latest version (with the "
	  "current code and config; results already known are reused); none, "
	  "nothing." },
	{ "unit_size", "SIZE (at least 4K; K, M, G)", "8M", "1M",
	  "The target size of a unit. Units end at chunk boundaries that depend "
	  "only on the data, so after an edit the units away from it are the same "
	  "as before (and their results are reused)." },
	{ "allow_empty", "true | false (yes | no, 1 | 0)", "false", "true",
	  "Whether empty output from a non-empty unit is a success. By default it "
	  "is a failed attempt: a function that silently prints nothing is more "
	  "often broken than right." },
	{ "encoding", "auto | utf-8 | gb18030 | big5", "auto", "gb18030",
	  "The text encoding of the data, given to the function as "
	  "VDFS_ENCODING. It changes what a function computes, so results made "
	  "under another encoding are not reused." },
	{ "symlinks", "keep | skip | follow-inside-tree", "keep", "skip",
	  "What the symbolic links of a tree become. keep: they are part of the "
	  "version, as links, but no unit's input. skip: they are left out of the "
	  "version when it is sealed. follow-inside-tree: a link to a regular file "
	  "inside the tree is cut into units as that file's content, under the "
	  "link's path (VDFS_PATH); a link that points outside the tree, to a "
	  "directory or to nothing is never followed, and the daemon's log says "
	  "so. The daemon never follows a link anywhere else." },
	{ "special", "refuse | skip", "refuse", "skip",
	  "What a FIFO, socket or device node in a tree does. refuse: the tree's "
	  "seal fails, the daemon's log names the file, and the tree stays staged "
	  "until it changes. skip: it is left out of the version, with a line in "
	  "the log naming it." },
	{ "keep", "all | N | AGE (N at least 1; AGE like 12h, 30d, 8w)", "all", "3",
	  "Retention, applied by vdfs gc: keep the newest N versions, or the "
	  "versions sealed less than AGE ago (units s, m, h, d, w); gc deletes the "
	  "others. latest, pinned versions (vdfs pin) and versions a run is "
	  "reading are never deleted by it. Changing it re-runs nothing." },
	{ "mode", "exec | persistent", "exec", "persistent",
	  "How an executor runs the function. exec: a new process per unit, its "
	  "stdin the unit and its stdout the output. persistent: one process per "
	  "executor slot, started once and fed units as length-prefixed frames on "
	  "stdin, answering each with a frame on stdout (docs/persistent.md); a "
	  "unit costs no process start. timeout, memory and the stdout cap still "
	  "apply to each unit: a unit over one, or a process that dies, fails that "
	  "unit only, and the process is started again. It changes no result, so "
	  "results are reused across modes." },
	{ "env.", "TEXT (no control characters)", "", "10",
	  "env.NAME = value sets NAME=value in the function's environment: a "
	  "parameter, such as a word to count or a time limit. NAME is a portable "
	  "variable name (letters, digits, _), not VDFS_*, LD_*, PATH, HOME or "
	  "TMPDIR, which are vdfs's to set. Like encoding it is part of what a "
	  "result was made with. All env lines together hold at most 2 KiB." },
	{ NULL, NULL, NULL, NULL, NULL },
};

const struct vd_config_planned vd_config_planned[] = {
	{ "input", "other tasks' results as this task's data (tasks/A[,tasks/B]): a pipeline" },
	{ NULL, NULL },
};

const struct vd_config_key *vd_config_key_find(const char *key)
{
	for (const struct vd_config_key *k = vd_config_keys; k->name; k++) {
		size_t n = strlen(k->name);

		if (n && k->name[n - 1] == '.' ? !strncmp(key, k->name, n) && key[n]
					       : !strcmp(key, k->name))
			return k;
	}
	return NULL;
}
