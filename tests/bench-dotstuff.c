/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Throughput of the RETR stuffer on ~100 MB of synthetic mail in 64 KiB chunks (prints MB/s). */
#include "dotstuff.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK (64 * 1024)
#define RUNS 7

/* Typical mail: a header, then text lines of 40-76 characters, a few with a leading dot
 * or an mboxrd quote. crlf selects the line ends stored on disk. */
static GString *
make_mail(size_t target, gboolean crlf)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog while mail "
				    "servers count octets and stuff dots at the start of lines ";
	const char *eol = crlf ? "\r\n" : "\n";
	GString *s = g_string_sized_new(target + 4096);
	GRand *rand = g_rand_new_with_seed(42);

	while (s->len < target) {
		g_string_append_printf(s,
				       "Return-Path: <a@example.org>%sFrom: A <a@example.org>%s"
				       "Subject: test %u%sStatus: RO%s%s",
				       eol, eol, g_rand_int(rand), eol, eol, eol);
		for (int line = 0; line < 200; line++) {
			int n = g_rand_int_range(rand, 40, 77);
			int off = g_rand_int_range(rand, 0, (int)sizeof(words) - 78);
			if (g_rand_int_range(rand, 0, 50) == 0)
				g_string_append_c(s, '.');
			else if (g_rand_int_range(rand, 0, 200) == 0)
				g_string_append(s, ">From ");
			g_string_append_len(s, words + off, n);
			g_string_append(s, eol);
		}
	}
	g_rand_free(rand);
	return s;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double
run_once(const GString *mail, const MpopStuffOpts *opts, char *out, guint64 *sink)
{
	MpopStuffer st;
	guint64 t0 = mpop_now_usec(), t1;
	guint64 written = 0;

	mpop_stuffer_init(&st, opts, -1);
	for (size_t i = 0; i < mail->len; i += CHUNK) {
		size_t n = MIN((size_t)CHUNK, mail->len - i);
		written += mpop_stuffer_feed(&st, mail->str + i, n, out);
	}
	written += mpop_stuffer_finish(&st, out);
	t1 = mpop_now_usec();
	*sink += written + st.size;
	return (double)mail->len / (double)MAX(t1 - t0, 1); /* bytes/usec = MB/s */
}

static void
bench(const char *label, const GString *mail, const MpopStuffOpts *opts, gboolean count_only)
{
	static char out[MPOP_STUFF_OUT_MAX(CHUNK)];
	double mbs[RUNS];
	guint64 sink = 0;

	for (int r = 0; r < RUNS; r++)
		mbs[r] = run_once(mail, opts, count_only ? NULL : out, &sink);
	qsort(mbs, RUNS, sizeof(mbs[0]), cmp_double);
	printf("%-34s %8.0f MB/s (median of %d, min %.0f, max %.0f)%s\n", label, mbs[RUNS / 2],
	       RUNS, mbs[0], mbs[RUNS - 1], sink == 0 ? " ?" : "");
}

int
main(int argc, char **argv)
{
	size_t mb = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 100;
	static const char *const hide[] = {"Status", "X-Status", "Content-Length", NULL};
	MpopStuffOpts plain = {FALSE, NULL}, mboxrd = {TRUE, hide};
	GString *lf = make_mail(mb << 20, FALSE);
	GString *crlf = make_mail(mb << 20, TRUE);

	printf("input: %zu MB (LF), %zu MB (CRLF), chunks of %d KiB\n", lf->len >> 20,
	       crlf->len >> 20, CHUNK / 1024);
	bench("LF text, copy", lf, &plain, FALSE);
	bench("CRLF text, copy", crlf, &plain, FALSE);
	bench("LF text, count only", lf, &plain, TRUE);
	bench("LF text, mboxrd + hidden headers", lf, &mboxrd, FALSE);
	g_string_free(lf, TRUE);
	g_string_free(crlf, TRUE);
	return 0;
}
