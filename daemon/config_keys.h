/*
 * config_keys.h - the keys a task's config accepts: the table the engine's
 * parser checks every key against (vd_config_parse in engine.c refuses one
 * that has no row), and that `vdfs help config` and the vdfs-config(5) page
 * are printed from. A key is added by adding its row here and its branch
 * in engine.c's config_line(); tests/test_config_keys.c parses every row's
 * example, so a row without a branch fails the unit tests.
 *
 * This file and config_keys.c depend on nothing but libc, so that the vdfs
 * tool can link them without the engine.
 */
#ifndef VD_CONFIG_KEYS_H
#define VD_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

struct vd_config_key {
	const char *name;      /* "unit_size"; a prefix if it ends in '.' */
	const char *value;     /* the values it takes: "1-5", "concat | sum" */
	const char *def;       /* the default, as it would be written */
	const char *example;   /* a value it accepts ("" for the default) */
	const char *help;      /* what it does: doc.h text */
};

/* The table, ended by a row with a NULL name. */
extern const struct vd_config_key vd_config_keys[];

/*
 * Keys the design names that this engine does not accept yet, each with
 * what it is to do. The page lists those that vd_config_key_find() refuses
 * (a config naming one is refused); once a key gets a row it is documented
 * from its row instead, whatever this list says.
 */
struct vd_config_planned {
	const char *name;   /* NULL ends the list */
	const char *what;
};
extern const struct vd_config_planned vd_config_planned[];

/* The row for key (an exact name, or "env.NAME" for the "env." prefix);
 * NULL if the engine does not take it. */
const struct vd_config_key *vd_config_key_find(const char *key);

#endif
