/*
 * exutil.h - vdfs-executor's stateless helpers (exutil.c). Strings returned
 * as char * are malloc'd and the caller's to free.
 */
#ifndef VD_EXUTIL_H
#define VD_EXUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

size_t vd_ex_utf8_len(const unsigned char *p, size_t n);
json_t *vd_ex_json_text(const char *s, size_t n);
int vd_ex_parse_int(int *out, const char *s, int lo, int hi);
void vd_ex_default_name(char *out, size_t size);
int vd_ex_parse_size(uint64_t *out, const char *s);
bool vd_ex_loopback_url(const char *url);
bool vd_ex_name_ok(const char *s);
char *vd_ex_default_cache(const char *server);
char *vd_ex_self_dir(void);
char *vd_ex_read_token(const char *file);

#endif
