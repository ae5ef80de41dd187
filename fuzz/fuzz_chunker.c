/*
 * fuzz_chunker.c - the chunker (vd_chunker_cut, daemon/chunker.c) on
 * arbitrary bytes, with small parameters so that every rule is reached
 * within libFuzzer's input sizes: min 16, avg 64, max 256, hard_max 1024
 * (the store's defaults are 16 KiB, 64 KiB, 256 KiB, 64 MiB; the rules do
 * not depend on the scale).
 *
 * What it asserts: the chunks cover the input exactly, in order; every
 * chunk but the last ends just after a '\n' and holds at most max_size
 * bytes, or more only when it is one record (a single '\n', at its end)
 * of at most hard_max; only a record over hard_max is refused (-E2BIG);
 * and the cuts do not depend on how the input is fed: a window that
 * grows by a few bytes at a time (asking again on *cut == 0) cuts the
 * same as the whole input at once.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "chunker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CUTS_MAX 4096

static const struct vd_chunker_params prm = { 16, 64, 256, 1024 };

/* All the cuts of data, feeding the window step bytes more each time it
 * asks (step 0: all of it at once). -E2BIG when a record is too long. */
static int cut_all(size_t *cuts, size_t *ncuts, const uint8_t *data, size_t size,
		   size_t step)
{
	size_t start = 0, k = 0;

	while (start < size) {
		size_t avail = step ? (step < size - start ? step : size - start) : size - start;
		size_t cut;
		int rc;

		for (;;) {
			bool eof = start + avail == size;

			rc = vd_chunker_cut(&cut, data + start, avail, eof, &prm);
			if (rc) {
				assert(rc == -E2BIG);
				*ncuts = k;
				return rc;
			}
			if (cut)
				break;
			assert(!eof);
			avail += step ? step : size - start - avail;
			if (avail > size - start)
				avail = size - start;
		}
		assert(cut <= avail);
		assert(k < CUTS_MAX);
		cuts[k++] = start + cut;
		start += cut;
	}
	*ncuts = k;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static size_t cuts[CUTS_MAX], again[CUTS_MAX];
	size_t n = 0, n2 = 0, start = 0;
	int rc;

	assert(vd_chunker_params_check(&prm) == 0);
	rc = cut_all(cuts, &n, data, size, 0);
	for (size_t i = 0; i < n; i++) {
		size_t len = cuts[i] - start;
		bool last = cuts[i] == size;
		const uint8_t *c = data + start;

		assert(cuts[i] > start);
		if (!last)
			assert(c[len - 1] == '\n');
		if (len > prm.max_size) {
			/* One record longer than max_size, cut at its end. */
			assert(len <= prm.hard_max);
			const uint8_t *nl = memchr(c, '\n', len);
			assert(!nl || nl == c + len - 1);
		}
		start = cuts[i];
	}
	if (rc == 0) {
		assert(start == size);
	} else {
		/* What is left starts a record of more than hard_max bytes,
		 * counting its '\n': a last record without one is refused at
		 * hard_max bytes already (the first run of this harness found
		 * that edge). That is what keeps the cuts independent of read
		 * sizes: a window of exactly hard_max bytes before EOF is known
		 * cannot tell the two apart. */
		assert(size - start >= prm.hard_max);
		assert(!memchr(data + start, '\n', prm.hard_max));
	}
	/* Fed in small pieces, the same cuts. */
	assert(cut_all(again, &n2, data, size, 7) == rc);
	assert(n2 == n && !memcmp(cuts, again, n * sizeof(*cuts)));
	return 0;
}
