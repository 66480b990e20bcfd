/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the line reader must give the same lines whole and chunked, within limits. */
#include "linebuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Results as one string: 'O' + line + '\n', 'T' (too long), 'I' (invalid). */
static void
drain(MpopLinebuf *lb, GString *res)
{
	const char *line;
	size_t len;
	MpopLineStatus s;

	while ((s = mpop_linebuf_next(lb, &line, &len)) != MPOP_LINE_NONE) {
		switch (s) {
		case MPOP_LINE_OK:
			if (len + 2 > lb->max || strlen(line) != len)
				abort();
			g_string_append_c(res, 'O');
			g_string_append_len(res, line, (gssize)len);
			g_string_append_c(res, '\n');
			break;
		case MPOP_LINE_TOOLONG:
			g_string_append_c(res, 'T');
			break;
		case MPOP_LINE_INVALID:
			g_string_append_c(res, 'I');
			break;
		case MPOP_LINE_NONE:
			break;
		}
	}
}

static GString *
run(const char *in, size_t len, size_t max, size_t chunk)
{
	GString *res = g_string_new(NULL);
	MpopLinebuf lb;
	size_t i = 0, plen;
	const char *p;

	mpop_linebuf_init(&lb, max);
	while (i < len) {
		size_t n = mpop_linebuf_push(&lb, in + i, MIN(chunk, len - i));
		if (n == 0)
			abort(); /* drained readers always have room */
		i += n;
		drain(&lb, res);
	}
	p = mpop_linebuf_pending(&lb, &plen);
	g_string_append_c(res, 'P');
	g_string_append_len(res, p, (gssize)plen);
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t max, chunk;
	GString *whole, *part;

	if (size < 2)
		return 0;
	max = data[0] + 1;
	chunk = data[1] % 16 + 1;
	whole = run((const char *)data + 2, size - 2, max, SIZE_MAX);
	part = run((const char *)data + 2, size - 2, max, chunk);
	if (!g_string_equal(whole, part))
		abort();
	g_string_free(whole, TRUE);
	g_string_free(part, TRUE);
	return 0;
}
