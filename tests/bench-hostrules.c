/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the host rules cost each connection: reading and parsing a 1000-rule file (networks of both
 * families, dotted prefixes, WARN lines, a comment every tenth line, DENY ALL at the end; every
 * Accept=yes and inetd process does it) and checking one client against it. Prints the
 * fastest and the median of many runs in microseconds. */
#include "hostrules-gen.h"
#include "hostrules.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define RUNS 501
#define CHECKS 10000

static int
cmp_u64(const void *a, const void *b)
{
	guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
	return x < y ? -1 : x > y;
}

int
main(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) text = mpop_test_rules(1000, TRUE);
	g_autofree char *dir = g_dir_make_tmp("bench-hostrules-XXXXXX", &error);
	g_autofree char *path = g_build_filename(dir, "rules", NULL);
	static guint64 load[RUNS];
	guint8 miss[16], hit[16];
	MpopHostVerdict v;
	MpopHostRules *r = NULL;
	guint64 t;

	if (!dir || !g_file_set_contents(path, text->str, (gssize)text->len, &error)) {
		fprintf(stderr, "%s\n", error->message);
		return 1;
	}
	for (guint i = 0; i < RUNS; i++) {
		t = mpop_now_usec();
		r = mpop_hostrules_load(path, &error);
		load[i] = mpop_now_usec() - t;
		if (!r) {
			fprintf(stderr, "%s\n", error->message);
			return 1;
		}
		if (i + 1 < RUNS)
			mpop_hostrules_free(r);
	}
	qsort(load, RUNS, sizeof(load[0]), cmp_u64);
	printf("load 1000 rules (%zu bytes, read + parse): fastest %" G_GUINT64_FORMAT
	       " us, median %" G_GUINT64_FORMAT " us over %d runs\n",
	       text->len, load[0], load[RUNS / 2], RUNS);
	/* A client no rule matches walks all 1000 before the DENY ALL default. */
	mpop_addr_parse("198.51.100.7", miss);
	mpop_addr_parse("192.3.231.9", hit);
	t = mpop_now_usec();
	for (guint i = 0; i < CHECKS; i++)
		mpop_hostrules_check(r, i % 2 ? miss : hit, NULL, &v);
	t = mpop_now_usec() - t;
	printf("check one client against 1000 rules: %.2f us on average (%d checks)\n",
	       (double)t / CHECKS, CHECKS);
	mpop_hostrules_free(r);
	unlink(path);
	rmdir(dir);
	return 0;
}
