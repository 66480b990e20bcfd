/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench's reader of multi-line answers: RFC 1939 §3 framing, whole and in every chunking. */
#include "mpopd-bench.h"

#include <string.h>

typedef struct {
	const char *in; /* the answer after its status line, and what follows it */
	guint64 octets; /* un-stuffed, CRLF counted */
	guint64 lines;
	gboolean defect;
	size_t consumed;  /* through the terminator; 0: the input ends first */
	const char *keep; /* the un-stuffed lines */
} Case;

static const Case cases[] = {
	{".\r\n", 0, 0, FALSE, 3, ""},
	{"a\r\n.\r\n", 3, 1, FALSE, 6, "a\r\n"},
	{"a\r\n.\r\n+OK next\r\n", 3, 1, FALSE, 6, "a\r\n"},
	{"..\r\n.\r\n", 3, 1, FALSE, 7, ".\r\n"},
	{"..x\r\n...y\r\n\r\n.\r\n", 11, 3, FALSE, 16, ".x\r\n..y\r\n\r\n"},
	{".x\r\n.\r\n", 4, 1, TRUE, 7, ".x\r\n"},
	{".\rx\r\n.\r\n", 5, 1, TRUE, 8, ".\rx\r\n"},
	{"a\nb\r\n.\r\n", 5, 2, TRUE, 8, "a\nb\r\n"},
	{"\n.\r\n", 1, 1, TRUE, 4, "\n"},
	{"a\r\n.\n", 3, 1, TRUE, 5, "a\r\n"},
	{"a\r\nb", 4, 1, FALSE, 0, "a\r\nb"},
	{"x.\r\n.\r\n", 4, 1, FALSE, 7, "x.\r\n"},
	{"a\r\r\n.\r\n", 4, 1, FALSE, 7, "a\r\r\n"},
};

/* Feeds c->in in pieces of chunk bytes (the last one shorter). */
static void
check(const Case *c, size_t chunk)
{
	g_autoptr(GString) keep = g_string_new(NULL);
	size_t len = strlen(c->in), off = 0;
	gboolean done = FALSE;
	BenchBody b;

	bench_body_init(&b);
	while (off < len && !done) {
		size_t n = MIN(chunk, len - off);
		size_t used = bench_body_feed(&b, c->in + off, n, keep, &done);

		g_assert_cmpuint(used, <=, n);
		if (!done)
			g_assert_cmpuint(used, ==, n);
		off += used;
	}
	g_assert_cmpuint(done ? off : 0, ==, c->consumed);
	g_assert_cmpuint(b.octets, ==, c->octets);
	g_assert_cmpuint(b.lines, ==, c->lines);
	g_assert_cmpint(b.defect != NULL, ==, c->defect);
	g_assert_cmpstr(keep->str, ==, c->keep);
}

static void
test_whole_and_chunked(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++)
		for (size_t chunk = 1; chunk <= strlen(cases[i].in); chunk++)
			check(&cases[i], chunk);
}

static void
test_no_keep(void)
{
	BenchBody b;
	gboolean done;

	bench_body_init(&b);
	g_assert_cmpuint(bench_body_feed(&b, "..a\r\n.\r\nX", 9, NULL, &done), ==, 8);
	g_assert_true(done);
	g_assert_cmpuint(b.octets, ==, 4);
	g_assert_null(b.defect);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/bench/body/whole-and-chunked", test_whole_and_chunked);
	g_test_add_func("/bench/body/no-keep", test_no_keep);
	return g_test_run();
}
