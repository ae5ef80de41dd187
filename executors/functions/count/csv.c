/*
 * csv.c - one CSV field, quoted when a reader could misread it.
 */
#include <string.h>

#include "count.h"

static int needs_quotes(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	/* reduce = sum reads trailing fields that parse as numbers (after
	 * trimming blanks) as the values to add up; a word like "2024" or
	 * "-1" must stay part of the key, and a quoted field never parses. */
	if ((s[0] >= '0' && s[0] <= '9') || s[0] == '+' || s[0] == '-' || s[0] == '.')
		return 1;
	if (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
		return 1;
	for (size_t i = 0; i < n; i++)
		if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
			return 1;
	return 0;
}

int vd_csv_field(struct vd_buf *out, const char *s, size_t n)
{
	int rc;

	if (!needs_quotes(s, n))
		return vd_buf_add(out, s, n);
	if ((rc = vd_buf_add(out, "\"", 1)))
		return rc;
	/* Each inner quote is written twice: up to and including it, then
	 * once more. */
	const char *q;
	while (n && (q = memchr(s, '"', n))) {
		size_t k = (size_t)(q + 1 - s);
		if ((rc = vd_buf_add(out, s, k)) || (rc = vd_buf_add(out, "\"", 1)))
			return rc;
		s += k;
		n -= k;
	}
	if ((rc = vd_buf_add(out, s, n)))
		return rc;
	return vd_buf_add(out, "\"", 1);
}
