/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the stuffer's output and size must not depend on chunking, stay within
 * MPOP_STUFF_OUT_MAX, and unstuff to exactly size octets of CRLF lines. */
#include "dotstuff.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const hide[] = {"Status", "X-Status", "Content-Length", NULL};

static GString *
run(const MpopStuffOpts *opts, gint64 top, const char *in, size_t len, size_t chunk, guint64 *size)
{
	GString *res = g_string_new(NULL);
	MpopStuffer st;
	size_t i = 0;
	char *out;

	mpop_stuffer_init(&st, opts, top);
	while (i < len) {
		size_t n = MIN(chunk, len - i), w;
		out = malloc(MPOP_STUFF_OUT_MAX(n)); /* exact: ASan sees any overrun */
		w = mpop_stuffer_feed(&st, in + i, n, out);
		g_string_append_len(res, out, (gssize)w);
		free(out);
		i += n;
	}
	out = malloc(2 + 80);
	g_string_append_len(res, out, (gssize)mpop_stuffer_finish(&st, out));
	free(out);
	*size = st.size;
	return res;
}

/* RFC 1939 §3: undo the stuffing; every line must end in CRLF and none may be ".". */
static guint64
unstuffed_len(const GString *s)
{
	guint64 total = 0;
	size_t i = 0;

	while (i < s->len) {
		const char *crlf = memmem(s->str + i, s->len - i, "\r\n", 2);
		size_t n;
		if (crlf == NULL)
			abort();
		n = (size_t)(crlf - (s->str + i));
		if (memchr(s->str + i, '\n', n) != NULL || (n == 1 && s->str[i] == '.'))
			abort();
		total += n + 2 - (n > 0 && s->str[i] == '.');
		i += n + 2;
	}
	return total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopStuffOpts opts;
	gint64 top;
	size_t chunk;
	guint64 s1, s2;
	GString *whole, *part;
	const char *in = (const char *)data + 2;

	if (size < 2)
		return 0;
	opts.unquote_from = data[0] & 1;
	opts.hide_headers = data[0] & 2 ? hide : NULL;
	top = (data[0] >> 2) % 8 - 2;
	chunk = data[1] % 32 + 1;
	whole = run(&opts, top, in, size - 2, SIZE_MAX / 4, &s1);
	part = run(&opts, top, in, size - 2, chunk, &s2);
	if (!g_string_equal(whole, part) || s1 != s2 || unstuffed_len(whole) != s1)
		abort();
	if (top < 0 && mpop_stuffer_measure(&opts, in, size - 2) != s1)
		abort();
	g_string_free(whole, TRUE);
	g_string_free(part, TRUE);
	return 0;
}
