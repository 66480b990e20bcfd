/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: mpopd-bench's reader of a server's multi-line answer must give the same
 * result whole and in chunks, never count more octets than it read, and stop exactly after
 * the terminator. The first input byte picks the chunk size. */
#include "mpopd-bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
run(const char *in, size_t len, size_t chunk, BenchBody *b, GString *keep, gboolean *done)
{
	size_t off = 0;

	bench_body_init(b);
	*done = FALSE;
	while (off < len && !*done) {
		size_t n = MIN(chunk, len - off),
		       used = bench_body_feed(b, in + off, n, keep, done);

		if (used > n || (!*done && used != n))
			abort();
		off += used;
	}
	return off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GString) k1 = g_string_new(NULL), k2 = g_string_new(NULL);
	BenchBody b1, b2;
	gboolean d1, d2;
	size_t o1, o2, chunk;

	if (size < 1)
		return 0;
	chunk = (size_t)data[0] % 16 + 1;
	o1 = run((const char *)data + 1, size - 1, size, &b1, k1, &d1);
	o2 = run((const char *)data + 1, size - 1, chunk, &b2, k2, &d2);
	if (o1 != o2 || d1 != d2 || b1.octets != b2.octets || b1.lines != b2.lines ||
	    (b1.defect == NULL) != (b2.defect == NULL) || !g_string_equal(k1, k2))
		abort();
	if (b1.octets > o1 || k1->len != b1.octets)
		abort();
	if (d1 && (o1 < 2 || data[o1] != '\n'))
		abort(); /* the terminator ends with LF */
	return 0;
}
