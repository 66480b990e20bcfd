/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the RETR/TOP stuffer: exact output, exact size, any chunking, vs a reference. */
#include "dotstuff.h"

#include <string.h>

static const char *const hide_std[] = {"Status", "X-Status", "Content-Length", NULL};

typedef struct {
	const char *name;
	const char *in;
	gint64 top;
	gboolean unquote;
	gboolean hide;
	const char *out;
} Case;

static const Case cases[] = {
	{"empty", "", -1, FALSE, FALSE, ""},
	{"bare-lf", "a\nb\n", -1, FALSE, FALSE, "a\r\nb\r\n"},
	{"crlf", "a\r\nb\r\n", -1, FALSE, FALSE, "a\r\nb\r\n"},
	{"mixed", "a\r\nb\nc\r\n\n", -1, FALSE, FALSE, "a\r\nb\r\nc\r\n\r\n"},
	{"lone-cr", "a\rb\n", -1, FALSE, FALSE, "a\rb\r\n"},
	{"cr-cr-lf", "a\r\r\n", -1, FALSE, FALSE, "a\r\r\n"},
	{"cr-at-end", "a\r", -1, FALSE, FALSE, "a\r\r\n"},
	{"cr-only-lines", "\r\r\r\n", -1, FALSE, FALSE, "\r\r\r\n"},
	{"leading-dots", ".a\n..b\n.\nx.y\n", -1, FALSE, FALSE, "..a\r\n...b\r\n..\r\nx.y\r\n"},
	{"dot-line-crlf", "H: x\r\n\r\n.\r\n", -1, FALSE, FALSE, "H: x\r\n\r\n..\r\n"},
	{"no-final-newline", "a\nlast", -1, FALSE, FALSE, "a\r\nlast\r\n"},
	{"no-final-newline-dot", ".", -1, FALSE, FALSE, "..\r\n"},
	{"only-newline", "\n", -1, FALSE, FALSE, "\r\n"},
	{"header-only", "Subject: x\nFrom: y\n", -1, FALSE, FALSE, "Subject: x\r\nFrom: y\r\n"},
	{"top0", "S: x\n\nb1\nb2\n", 0, FALSE, FALSE, "S: x\r\n\r\n"},
	{"top2", "S: x\r\n\r\nb1\r\nb2\r\nb3\r\n", 2, FALSE, FALSE, "S: x\r\n\r\nb1\r\nb2\r\n"},
	{"top2-dots", "S: x\n\n.b1\n\n.b3\n", 2, FALSE, FALSE, "S: x\r\n\r\n..b1\r\n\r\n"},
	{"top-larger", "S: x\n\nb1\nb2", 10, FALSE, FALSE, "S: x\r\n\r\nb1\r\nb2\r\n"},
	{"top0-no-body", "S: x\nT: y\n", 0, FALSE, FALSE, "S: x\r\nT: y\r\n"},
	{"top1-empty-body-line", "S\n\n\nb\n", 1, FALSE, FALSE, "S\r\n\r\n\r\n"},
	{"from-raw", "S\n\n>From a\n>>From b\n", -1, FALSE, FALSE,
	 "S\r\n\r\n>From a\r\n>>From b\r\n"},
	{"from-mboxrd", "S\n\n>From a\n>>From b\n>Frm\n>From\n>\n>>>\nFrom x\n", -1, TRUE, FALSE,
	 "S\r\n\r\nFrom a\r\n>From b\r\n>Frm\r\n>From\r\n>\r\n>>>\r\nFrom x\r\n"},
	{"from-mboxrd-long-run",
	 "\n>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>"
	 ">>>>>>>>>>>>>>>>>>>>From z\n",
	 -1, TRUE, FALSE,
	 "\r\n>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>>"
	 ">>>>>>>>>>>>>>>>>>>>From z\r\n"},
	{"hide", "Status: RO\nSubject: s\nX-Status: A\n\nb\n", -1, FALSE, TRUE,
	 "Subject: s\r\n\r\nb\r\n"},
	{"hide-case-space", "status :RO\r\nx-STATUS\t: A\r\nStatusX: k\r\n\r\n", -1, FALSE, TRUE,
	 "StatusX: k\r\n\r\n"},
	{"hide-continuation", "Content-Length: 5\n 6\n\t7\nA: b\n c\n\n", -1, FALSE, TRUE,
	 "A: b\r\n c\r\n\r\n"},
	{"hide-not-in-body", "A: b\n\nStatus: RO\n  x\n", -1, FALSE, TRUE,
	 "A: b\r\n\r\nStatus: RO\r\n  x\r\n"},
	{"hide-no-colon", "Status\nStatus x: y\n", -1, FALSE, TRUE, "Status\r\nStatus x: y\r\n"},
	{"hide-last-line", "A: b\nStatus: RO", -1, FALSE, TRUE, "A: b\r\n"},
	{"hide-top0", "Status: RO\nA: b\n\nbody\n", 0, FALSE, TRUE, "A: b\r\n\r\n"},
	/* The colon at index 80 is beyond the hold: sent; at index 79: hidden. */
	{"hide-too-long",
	 "Status                                                                          :x\n"
	 "Status                                                                         :y\n",
	 -1, FALSE, TRUE,
	 "Status                                                                          :x\r\n"},
	{"hide-off", "Status: RO\n\n", -1, FALSE, FALSE, "Status: RO\r\n\r\n"},
	{"hide-dot-header", ".Status: x\n", -1, FALSE, TRUE, "..Status: x\r\n"},
	{"hide-cr-in-name", "Sta\rtus: x\n", -1, FALSE, TRUE, "Sta\rtus: x\r\n"},
};

/* Reverse RFC 1939 §3 byte-stuffing; fails on a bare LF or a lone "." line. */
static GString *
unstuff(const GString *data)
{
	GString *res = g_string_new(NULL);
	const char *p = data->str, *end = data->str + data->len;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n;
		g_assert_nonnull(lf);
		g_assert_true(lf > p && lf[-1] == '\r');
		n = (size_t)(lf - p) - 1;
		g_assert_false(n == 1 && p[0] == '.');
		if (n > 0 && p[0] == '.')
			g_string_append_len(res, p + 1, (gssize)n + 1);
		else
			g_string_append_len(res, p, (gssize)n + 2);
		p = lf + 1;
	}
	return res;
}

/* The reference: whole input, one line at a time, no streaming concerns. */
static gboolean
ref_hidden(const char *const *names, const char *l, size_t n)
{
	if (n == 0 || l[0] == '.' || l[0] == '>')
		return FALSE;
	for (; *names != NULL; names++) {
		size_t k = strlen(*names);
		if (k == 0 || k > n || g_ascii_strncasecmp(*names, l, k) != 0)
			continue;
		while (k < n && (l[k] == ' ' || l[k] == '\t'))
			k++;
		if (k < n && k < 80 && l[k] == ':')
			return TRUE;
	}
	return FALSE;
}

static gboolean
ref_from_quoted(const char *l, size_t n)
{
	size_t j = 0;

	while (j < n && l[j] == '>')
		j++;
	return j > 0 && n - j >= 5 && memcmp(l + j, "From ", 5) == 0;
}

static GString *
reference(const MpopStuffOpts *opts, gint64 top, const char *in, size_t len, guint64 *size)
{
	GString *res = g_string_new(NULL);
	gboolean in_body = FALSE, hiding = FALSE;
	size_t i = 0;

	*size = 0;
	while (i < len) {
		const char *lf = memchr(in + i, '\n', len - i);
		const char *l = in + i;
		size_t n = lf ? (size_t)(lf - l) : len - i;
		i += n + (lf ? 1 : 0);
		if (lf && n > 0 && l[n - 1] == '\r')
			n--;
		if (!in_body && n == 0) {
			g_string_append(res, "\r\n");
			*size += 2;
			in_body = TRUE;
			if (top == 0)
				break;
			continue;
		}
		if (!in_body && opts->hide_headers) {
			if (hiding && (l[0] == ' ' || l[0] == '\t'))
				continue;
			hiding = ref_hidden(opts->hide_headers, l, n);
			if (hiding)
				continue;
		}
		if (opts->unquote_from && ref_from_quoted(l, n)) {
			l++;
			n--;
		}
		if (n > 0 && l[0] == '.')
			g_string_append_c(res, '.');
		g_string_append_len(res, l, (gssize)n);
		g_string_append(res, "\r\n");
		*size += n + 2;
		if (in_body && top > 0 && --top == 0)
			break;
	}
	return res;
}

/* Feed in chunks (chunk 0: whole; < 0: random sizes from rand), with out or count only. */
static GString *
run(const MpopStuffOpts *opts, gint64 top, const char *in, size_t len, gssize chunk, GRand *rand,
    gboolean count_only, guint64 *size)
{
	GString *res = g_string_new(NULL);
	MpopStuffer st;
	size_t i = 0, n;
	char *out;

	mpop_stuffer_init(&st, opts, top);
	while (i < len) {
		if (chunk == 0)
			n = len - i;
		else if (chunk > 0)
			n = MIN((size_t)chunk, len - i);
		else
			n = MIN((size_t)g_rand_int_range(rand, 1, 40), len - i);
		/* Exactly the documented bound, so ASan catches any overrun. */
		out = count_only ? NULL : g_malloc(MPOP_STUFF_OUT_MAX(n));
		n = MIN(n, len - i);
		{
			size_t w = mpop_stuffer_feed(&st, in + i, n, out);
			g_assert_cmpuint(w, <=, MPOP_STUFF_OUT_MAX(n));
			if (count_only)
				g_assert_cmpuint(w, ==, 0);
			else
				g_string_append_len(res, out, (gssize)w);
		}
		g_free(out);
		i += n;
	}
	out = count_only ? NULL : g_malloc(2 + 80);
	n = mpop_stuffer_finish(&st, out);
	if (!count_only)
		g_string_append_len(res, out, (gssize)n);
	g_free(out);
	*size = st.size;
	return res;
}

/* The size counted through mpop_stuffer_count() in pieces of 1 to 17 bytes (as the index
 * counts a long message a window at a time: CRLF, quoted From lines and the header's end
 * fall across piece edges) is the size of one pass. */
static void
check_steps(const MpopStuffOpts *opts, const char *in, size_t len, guint64 want)
{
	for (size_t step = 1; step <= 17; step += 4) {
		MpopStuffer st;
		mpop_stuffer_init(&st, opts, -1);
		for (size_t off = 0; off < len; off += step)
			mpop_stuffer_count(&st, in + off, MIN(step, len - off));
		mpop_stuffer_finish(&st, NULL);
		g_assert_cmpuint(st.size, ==, want);
	}
}

static void
check_all_ways(const MpopStuffOpts *opts, gint64 top, const char *in, size_t len,
	       const char *expect, size_t expect_len, GRand *rand)
{
	/* 16 and 33: whole and split 16-byte blocks of the vector path (SSE2). */
	static const gssize chunks[] = {0, 1, 2, 3, 7, 16, 33, -1, -1, -1, -1};
	guint64 size0 = 0, ref_size;
	g_autoptr(GString) ref = reference(opts, top, in, len, &ref_size);

	if (expect != NULL)
		g_assert_cmpmem(ref->str, ref->len, expect, expect_len);
	for (size_t c = 0; c < G_N_ELEMENTS(chunks); c++) {
		guint64 size, csize;
		g_autoptr(GString) got = run(opts, top, in, len, chunks[c], rand, FALSE, &size);
		g_autoptr(GString) counted = run(opts, top, in, len, chunks[c], rand, TRUE, &csize);
		g_autoptr(GString) plain = unstuff(got);

		g_assert_cmpmem(got->str, got->len, ref->str, ref->len);
		g_assert_cmpuint(size, ==, ref_size);
		g_assert_cmpuint(plain->len, ==, size);
		g_assert_cmpuint(csize, ==, size);
		g_assert_cmpuint(counted->len, ==, 0);
		size0 = size;
	}
	if (top < 0) {
		g_assert_cmpuint(mpop_stuffer_measure(opts, in, len), ==, size0);
		check_steps(opts, in, len, size0);
	}
}

static void
test_cases(void)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(1939);

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const Case *c = &cases[i];
		MpopStuffOpts opts = {c->unquote, c->hide ? hide_std : NULL};
		g_test_message("case %s", c->name);
		check_all_ways(&opts, c->top, c->in, strlen(c->in), c->out, strlen(c->out), rand);
	}
}

/* The hand-written expectations above pin the reference; these pin a few facts directly. */
static void
test_size_and_done(void)
{
	MpopStuffer st;
	char out[MPOP_STUFF_OUT_MAX(64)];
	size_t n;

	mpop_stuffer_init(&st, NULL, 1);
	n = mpop_stuffer_feed(&st, "A: b\n\n.x\nnot sent\n", 18, out);
	g_assert_cmpmem(out, n, "A: b\r\n\r\n..x\r\n", 13);
	g_assert_true(st.done);
	g_assert_cmpuint(st.size, ==, 12);
	g_assert_cmpuint(mpop_stuffer_feed(&st, "more\n", 5, out), ==, 0);
	g_assert_cmpuint(mpop_stuffer_finish(&st, out), ==, 0);
	g_assert_cmpuint(st.size, ==, 12);

	/* A split CR: held, then found to be the CR of CRLF. */
	mpop_stuffer_init(&st, NULL, -1);
	n = mpop_stuffer_feed(&st, "ab\r", 3, out);
	g_assert_cmpmem(out, n, "ab", 2);
	n = mpop_stuffer_feed(&st, "\ncd", 3, out);
	g_assert_cmpmem(out, n, "\r\ncd", 4);
	n = mpop_stuffer_finish(&st, out);
	g_assert_cmpmem(out, n, "\r\n", 2);
	g_assert_cmpuint(st.size, ==, 8);

	g_assert_cmpuint(mpop_stuffer_measure(NULL, "From x\n>From y\n", 15), ==, 17);
	{
		MpopStuffOpts rd = {TRUE, NULL};
		g_assert_cmpuint(mpop_stuffer_measure(&rd, "From x\n>From y\n", 15), ==, 16);
	}
}

/* Random messages built from the pieces that matter, against the reference. */
static void
test_random(void)
{
	static const char *const pieces[] = {
		"\n",	       "\r\n",	 "\r",		 ".",
		"..",	       ">",	 ">>",		 "From ",
		"Fro",	       "Status", "X-Status",	 "content-length",
		":",	       " ",	 "\t",		 "a",
		"hello world", "\0",	 "Subject: x\n", "\n\n",
	};
	static const char *const names[] = {"Status", "X-Status", "Content-Length", "", NULL};
	g_autoptr(GRand) rand = g_rand_new_with_seed(2449);
	guint iters = g_test_slow() ? 20000 : 2000;

	for (guint it = 0; it < iters; it++) {
		g_autoptr(GString) msg = g_string_new(NULL);
		guint np = (guint)g_rand_int_range(rand, 0, 60);
		MpopStuffOpts opts = {g_rand_boolean(rand), g_rand_boolean(rand) ? names : NULL};
		gint64 top = g_rand_int_range(rand, -3, 4);

		for (guint k = 0; k < np; k++) {
			guint pi = (guint)g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces));
			if (pi == 17)
				g_string_append_c(msg, '\0');
			else
				g_string_append(msg, pieces[pi]);
		}
		if (g_rand_int_range(rand, 0, 20) == 0) { /* long '>' runs and long names */
			guint k, run = (guint)g_rand_int_range(rand, 70, 100);
			gboolean quote = g_rand_boolean(rand);
			g_string_append(msg, quote ? "" : "\nStatus");
			for (k = 0; k < run; k++)
				g_string_append_c(msg, quote ? '>' : ' ');
			g_string_append(msg, quote ? "From x\n" : ":x\n");
		}
		check_all_ways(&opts, top, msg->str, msg->len, NULL, 0, rand);
	}
}

/* Body lines of every length from 0 to 80 (the vector path copies 16-byte blocks and ends
 * a line at the first LF of a block: lines ending at, before and after a block edge), with
 * LF or CRLF, a leading '.' or '>', CRs inside, against the reference in every chunking. */
static void
test_long_lines(void)
{
	static const char fill[] = "abcdefghijklmnopqrstuvwxyz0123456789 .>\r\t=+/";
	g_autoptr(GRand) rand = g_rand_new_with_seed(1081);
	guint iters = g_test_slow() ? 4000 : 400;

	for (guint it = 0; it < iters; it++) {
		g_autoptr(GString) msg = g_string_new("Subject: lines\n\n");
		MpopStuffOpts opts = {g_rand_boolean(rand), NULL};
		guint lines = (guint)g_rand_int_range(rand, 1, 40);

		for (guint l = 0; l < lines; l++) {
			guint len = (guint)g_rand_int_range(rand, 0, 81);
			guint lead = (guint)g_rand_int_range(rand, 0, 6);

			if (lead == 0)
				g_string_append_c(msg, '.');
			else if (lead == 1)
				g_string_append(msg, ">From ");
			for (guint k = 0; k < len; k++)
				g_string_append_c(
					msg, fill[g_rand_int_range(rand, 0, sizeof(fill) - 1)]);
			g_string_append(msg, g_rand_boolean(rand) ? "\r\n" : "\n");
		}
		if (g_rand_boolean(rand)) /* a last line without LF, maybe ending in CR */
			g_string_append(msg, g_rand_boolean(rand) ? "tail" : "tail\r");
		check_all_ways(&opts, -1, msg->str, msg->len, NULL, 0, rand);
		check_all_ways(&opts, g_rand_int_range(rand, 0, 5), msg->str, msg->len, NULL, 0,
			       rand);
	}
}

/* The size of a whole message by the stuffer fed one byte at a time. */
static guint64
fed_size(const MpopStuffOpts *opts, const char *in, size_t len)
{
	MpopStuffer st;

	mpop_stuffer_init(&st, opts, -1);
	for (size_t i = 0; i < len; i++)
		mpop_stuffer_feed(&st, in + i, 1, NULL);
	mpop_stuffer_finish(&st, NULL);
	return st.size;
}

/* mpop_stuffer_measure() counts bodies in 16-byte vectors with byte counters emptied every
 * 255 steps: long bodies of line ends only (every lane at its limit), CRLF pairs split at
 * every vector edge, quoted From lines and a last line without LF must all agree with the
 * stuffer's own count. */
static void
test_measure_long(void)
{
	static const char *const pieces[] = {
		"\n",  "\r\n", "\r", ">From x\n", ">>From ",	     "From ",
		"abc", "\n\n", ".",  "\r\r\n",	  "0123456789abcdef"};
	static const char *const names[] = {"Status", NULL};
	g_autoptr(GRand) rand = g_rand_new_with_seed(5034);
	const size_t lens[] = {4079, 4080, 4081, 4097, 16 * 255 * 3 + 1, 70000};

	for (size_t l = 0; l < G_N_ELEMENTS(lens); l++) {
		for (int fill = 0; fill < 4; fill++) {
			g_autoptr(GString) msg = g_string_new("Status: RO\nSubject: s\n\n");
			MpopStuffOpts opts = {fill % 2 == 0, fill < 2 ? names : NULL};
			while (msg->len < lens[l]) {
				if (fill == 0)
					g_string_append_c(msg, '\n');
				else if (fill == 1)
					g_string_append(msg, "\r\n");
				else
					g_string_append(msg,
							pieces[g_rand_int_range(
								rand, 0, G_N_ELEMENTS(pieces))]);
			}
			for (int cut = 0; cut < 3; cut++) {
				size_t len = msg->len - (size_t)cut;
				g_assert_cmpuint(mpop_stuffer_measure(&opts, msg->str, len), ==,
						 fed_size(&opts, msg->str, len));
			}
		}
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/dotstuff/cases", test_cases);
	g_test_add_func("/dotstuff/size-and-done", test_size_and_done);
	g_test_add_func("/dotstuff/random", test_random);
	g_test_add_func("/dotstuff/measure-long", test_measure_long);
	g_test_add_func("/dotstuff/long-lines", test_long_lines);
	return g_test_run();
}
