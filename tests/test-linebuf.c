/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the command line reader: limits, NUL, CR/LF handling, pipelining, hand-over. */
#include "linebuf.h"

#include <string.h>

typedef struct {
	const char *name;
	const char *in;	       /* may contain NUL: in_len counts */
	size_t in_len;	       /* 0: strlen(in) */
	size_t max;	       /* 0: MPOP_LINE_MAX */
	const char *expect[6]; /* "OK:<line>", "TOOLONG", "INVALID"; NULL-terminated */
	const char *pending;   /* what is left (an unterminated line) */
} Case;

/* Built at run time: lines whose length is exactly at or past the RFC 2449 §4 boundary. */
static char *line_253, *line_254, *line_298, *line_5000;

static const Case cases[] = {
	{"simple", "USER a\r\nPASS b\r\n", 0, 0, {"OK:USER a", "OK:PASS b"}, ""},
	{"bare-lf", "USER a\nQUIT\n", 0, 0, {"OK:USER a", "OK:QUIT"}, ""},
	{"pipelined-partial", "NOOP\r\nSTAT\nLI", 0, 0, {"OK:NOOP", "OK:STAT"}, "LI"},
	{"empty-lines", "\r\n\n", 0, 0, {"OK:", "OK:"}, ""},
	{"lone-cr-is-data", "A\rB\r\n", 0, 0, {"OK:A\rB"}, ""},
	{"cr-cr-lf", "A\r\r\n", 0, 0, {"OK:A\r"}, ""},
	{"trailing-cr-pending", "A\r", 0, 0, {NULL}, "A\r"},
	{"nul", "US\0ER\r\nQUIT\r\n", 13, 0, {"INVALID", "OK:QUIT"}, ""},
	{"nul-only", "\0\n", 2, 0, {"INVALID"}, ""},
	{"nul-and-too-long", "\0xxxxxxxxxxxxxxxxxxxxx\nQUIT\n", 28, 10, {"TOOLONG", "OK:QUIT"}, ""},
	{"small-max-ok", "12345678\r\n12345678\n", 0, 10, {"OK:12345678", "OK:12345678"}, ""},
	{"small-max-over",
	 "123456789\r\n123456789\nok\n",
	 0,
	 10,
	 {"TOOLONG", "TOOLONG", "OK:ok"},
	 ""},
	{"overlong-twice",
	 "xxxxxxxxxxxxxxxxxxxx\nyyyyyyyyyyyyyyyyyyyyyy\r\nQUIT\r\n",
	 0,
	 10,
	 {"TOOLONG", "TOOLONG", "OK:QUIT"},
	 ""},
	{"overlong-then-partial", "xxxxxxxxxxxxxxxxxxxx\nQU", 0, 10, {"TOOLONG"}, "QU"},
	{"overlong-unterminated", "xxxxxxxxxxxxxxxxxxxxxxxxx", 0, 10, {"TOOLONG"}, ""},
};

/* The lines below reference the run-time strings, so they are a second table. */
typedef struct {
	const char *name;
	char **prefix; /* a long line, then suffix */
	const char *suffix;
	const char *expect[4];
} LongCase;

static const LongCase long_cases[] = {
	/* RFC 2449 §4: 255 octets including CRLF: 253 characters are the most a line has. */
	{"exactly-255-crlf", &line_253, "\r\nQUIT\r\n", {"OK:253", "OK:QUIT"}},
	{"exactly-255-lf", &line_253, "\nQUIT\n", {"OK:253", "OK:QUIT"}},
	{"256-crlf", &line_254, "\r\nQUIT\r\n", {"TOOLONG", "OK:QUIT"}},
	{"256-lf", &line_254, "\nQUIT\n", {"TOOLONG", "OK:QUIT"}},
	{"300-then-quit", &line_298, "\r\nQUIT\r\n", {"TOOLONG", "OK:QUIT"}},
	{"5000-then-quit", &line_5000, "\r\nQUIT\r\n", {"TOOLONG", "OK:QUIT"}},
	{"253-then-cr-data", &line_253, "\rx\nQUIT\n", {"TOOLONG", "OK:QUIT"}},
};

static void
drain(MpopLinebuf *lb, GPtrArray *got)
{
	for (;;) {
		const char *line = NULL;
		size_t len = 0;
		MpopLineStatus s = mpop_linebuf_next(lb, &line, &len);

		switch (s) {
		case MPOP_LINE_NONE:
			return;
		case MPOP_LINE_OK:
			g_assert_cmpuint(strlen(line), ==, len);
			g_assert_cmpuint(len + 2, <=, lb->max);
			/* Long lines are reported by length to keep messages short. */
			if (len > 200)
				g_ptr_array_add(got, g_strdup_printf("OK:%zu", len));
			else
				g_ptr_array_add(got, g_strdup_printf("OK:%s", line));
			break;
		case MPOP_LINE_TOOLONG:
			g_ptr_array_add(got, g_strdup("TOOLONG"));
			break;
		case MPOP_LINE_INVALID:
			g_ptr_array_add(got, g_strdup("INVALID"));
			break;
		}
	}
}

/* chunk 0: as much as fits at once; chunk < 0: random sizes. Reads through
 * space()/commit() on odd chunks and push() otherwise, so both paths are used. */
static GPtrArray *
feed(const char *in, size_t len, size_t max, gssize chunk, GRand *rand, GString *pending)
{
	GPtrArray *got = g_ptr_array_new_with_free_func(g_free);
	MpopLinebuf lb;
	size_t i = 0, round = 0;
	size_t plen;
	const char *p;

	mpop_linebuf_init(&lb, max);
	while (i < len) {
		size_t n = chunk > 0 ? (size_t)chunk : len - i;
		if (chunk < 0)
			n = (size_t)g_rand_int_range(rand, 1, 300);
		n = MIN(n, len - i);
		if (round++ % 2 == 1) {
			size_t room;
			char *dst = mpop_linebuf_space(&lb, &room);
			n = MIN(n, room);
			memcpy(dst, in + i, n);
			mpop_linebuf_commit(&lb, n);
		} else {
			n = mpop_linebuf_push(&lb, in + i, n);
		}
		g_assert_cmpuint(n, >, 0);
		i += n;
		drain(&lb, got);
	}
	p = mpop_linebuf_pending(&lb, &plen);
	g_string_append_len(pending, p, (gssize)plen);
	return got;
}

static void
check(const char *name, const char *in, size_t len, size_t max, const char *const *expect,
      const char *pending, GRand *rand)
{
	static const gssize chunks[] = {0, 1, 2, 3, -1, -1, -1};

	g_test_message("case %s", name);
	for (size_t c = 0; c < G_N_ELEMENTS(chunks); c++) {
		g_autoptr(GString) rest = g_string_new(NULL);
		g_autoptr(GPtrArray) got = feed(in, len, max, chunks[c], rand, rest);
		size_t k;

		for (k = 0; expect[k] != NULL; k++) {
			g_assert_cmpuint(k, <, got->len);
			g_assert_cmpstr(g_ptr_array_index(got, k), ==, expect[k]);
		}
		g_assert_cmpuint(got->len, ==, k);
		if (pending != NULL)
			g_assert_cmpmem(rest->str, rest->len, pending, strlen(pending));
	}
}

static void
test_cases(void)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(2449);

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const Case *c = &cases[i];
		size_t len = c->in_len ? c->in_len : strlen(c->in);
		check(c->name, c->in, len, c->max, c->expect, c->pending, rand);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(long_cases); i++) {
		const LongCase *c = &long_cases[i];
		g_autofree char *in = g_strconcat(*c->prefix, c->suffix, NULL);
		check(c->name, in, strlen(in), 0, c->expect, "", rand);
	}
}

static void
test_pending_push_clear(void)
{
	static const char input[] = "USER a\r\nPASS b\r\nSTAT\r\nLIST";
	MpopLinebuf lb, lb2;
	const char *line, *p;
	size_t len;
	g_autofree char *big = g_malloc0(MPOP_LINEBUF_SIZE + 100);

	mpop_linebuf_init(&lb, MPOP_LINE_MAX);
	g_assert_cmpuint(mpop_linebuf_push(&lb, input, strlen(input)), ==, strlen(input));
	g_assert_cmpint(mpop_linebuf_next(&lb, &line, &len), ==, MPOP_LINE_OK);
	g_assert_cmpstr(line, ==, "USER a");
	p = mpop_linebuf_pending(&lb, &len);
	g_assert_cmpmem(p, len, "PASS b\r\nSTAT\r\nLIST", 18);

	/* Hand-over (privsep): the pipelined rest goes on in another reader. */
	mpop_linebuf_init(&lb2, MPOP_LINE_MAX);
	g_assert_cmpuint(mpop_linebuf_push(&lb2, p, len), ==, len);
	g_assert_cmpint(mpop_linebuf_next(&lb2, &line, &len), ==, MPOP_LINE_OK);
	g_assert_cmpstr(line, ==, "PASS b");
	g_assert_cmpint(mpop_linebuf_next(&lb2, &line, &len), ==, MPOP_LINE_OK);
	g_assert_cmpstr(line, ==, "STAT");
	g_assert_cmpint(mpop_linebuf_next(&lb2, &line, &len), ==, MPOP_LINE_NONE);

	/* RFC 2595 §4: after STLS nothing received before the handshake survives. */
	mpop_linebuf_clear(&lb);
	p = mpop_linebuf_pending(&lb, &len);
	g_assert_cmpuint(len, ==, 0);
	g_assert_cmpint(mpop_linebuf_next(&lb, &line, &len), ==, MPOP_LINE_NONE);

	/* push stops when the buffer is full. */
	memset(big, 'x', MPOP_LINEBUF_SIZE + 100);
	g_assert_cmpuint(mpop_linebuf_push(&lb, big, MPOP_LINEBUF_SIZE + 100), ==,
			 MPOP_LINEBUF_SIZE);
	g_assert_cmpuint(mpop_linebuf_push(&lb, big, 1), ==, 0);
	g_assert_cmpint(mpop_linebuf_next(&lb, &line, &len), ==, MPOP_LINE_TOOLONG);
	/* The rest of the discarded line is not pending input; what follows its LF is. */
	g_assert_cmpuint(mpop_linebuf_push(&lb, "xx", 2), ==, 2);
	mpop_linebuf_pending(&lb, &len);
	g_assert_cmpuint(len, ==, 0);
	g_assert_cmpint(mpop_linebuf_next(&lb, &line, &len), ==, MPOP_LINE_NONE);
	g_assert_cmpuint(mpop_linebuf_push(&lb, "x\nQUIT\r\n", 8), ==, 8);
	p = mpop_linebuf_pending(&lb, &len);
	g_assert_cmpmem(p, len, "QUIT\r\n", 6);
	g_assert_cmpint(mpop_linebuf_next(&lb, &line, &len), ==, MPOP_LINE_OK);
	g_assert_cmpstr(line, ==, "QUIT");
}

static void
test_init_max(void)
{
	MpopLinebuf lb;

	mpop_linebuf_init(&lb, 0);
	g_assert_cmpuint(lb.max, ==, MPOP_LINE_MAX);
	mpop_linebuf_init(&lb, 100000);
	g_assert_cmpuint(lb.max, ==, MPOP_LINE_MAX);
	mpop_linebuf_init(&lb, 64);
	g_assert_cmpuint(lb.max, ==, 64);
}

/* Random input: never a line over the limit or with a NUL (checked in drain()), and the
 * same results and leftover whether fed whole or one byte at a time. */
static void
test_random(void)
{
	static const char alphabet[] = "ab \r\n\n\0";
	g_autoptr(GRand) rand = g_rand_new_with_seed(1939);

	for (guint it = 0; it < 500; it++) {
		size_t len = (size_t)g_rand_int_range(rand, 0, 2000);
		g_autofree char *in = g_malloc(len + 1);
		size_t max = (size_t)g_rand_int_range(rand, 2, MPOP_LINE_MAX + 1);
		g_autoptr(GString) r1 = g_string_new(NULL), r2 = g_string_new(NULL);
		g_autoptr(GPtrArray) whole = NULL, bytes = NULL;

		for (size_t i = 0; i < len; i++) {
			/* mostly letters so that long lines happen */
			guint k = (guint)g_rand_int_range(rand, 0, 60);
			in[i] = k < sizeof(alphabet) - 1 ? alphabet[k] : 'a';
		}
		whole = feed(in, len, max, 0, rand, r1);
		bytes = feed(in, len, max, 1, rand, r2);
		g_assert_cmpuint(whole->len, ==, bytes->len);
		for (guint k = 0; k < whole->len; k++)
			g_assert_cmpstr(g_ptr_array_index(whole, k), ==,
					g_ptr_array_index(bytes, k));
		g_assert_cmpmem(r1->str, r1->len, r2->str, r2->len);
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	line_253 = g_strnfill(253, 'x');
	line_254 = g_strnfill(254, 'y');
	line_298 = g_strnfill(298, 'z');
	line_5000 = g_strnfill(5000, 'w');
	g_test_add_func("/linebuf/cases", test_cases);
	g_test_add_func("/linebuf/pending-push-clear", test_pending_push_clear);
	g_test_add_func("/linebuf/init-max", test_init_max);
	g_test_add_func("/linebuf/random", test_random);
	return g_test_run();
}
