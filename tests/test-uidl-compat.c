/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the UIDLs of other servers: Dovecot's format, popa3d's digest, dovecot-uidlist,
 * X-IMAPbase/X-UID and the mbox uidl_source entries built on them. */
#include "uidl-compat.h"
#include "mailbox-mbox.h"

#include <string.h>

static void
test_dovecot_format(void)
{
	char out[17];

	mpop_uidl_dovecot_format(1, 0x6b0f69f7, out);
	g_assert_cmpstr(out, ==, "000000016b0f69f7");
	mpop_uidl_dovecot_format(G_MAXUINT32 - 1, 1, out);
	g_assert_cmpstr(out, ==, "fffffffe00000001");
}

static void
popa3d(const char *header, char out[17])
{
	mpop_uidl_popa3d(header, strlen(header), out);
}

/* Expected values answered by Debian's popa3d 1.0.3 for these headers. */
static void
test_popa3d(void)
{
	static const struct {
		const char *header, *uidl;
	} cases[] = {
		/* nothing it keeps: the MD5 of nothing, d41d8cd9 8f00b204 word-swapped */
		{"Subject: two\n", "d98c1dd404b2008f"},
		{"", "d98c1dd404b2008f"},
		{"Subject: one\nMessage-ID: <1@x>\n", "233126efa5745439"},
		{"Message-ID: <1@x>\n", "233126efa5745439"},
		/* lowercase x: not X-Delivery-ID for popa3d */
		{"x-delivery-id: 1\nSubject: two\n", "d98c1dd404b2008f"},
		/* after a Received:, Message-ID no longer counts */
		{"Received: x\n", NULL},
	};
	char out[17], out2[17];

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		mpop_uidl_popa3d(cases[i].header, strlen(cases[i].header), out);
		if (cases[i].uidl != NULL)
			g_assert_cmpstr(out, ==, cases[i].uidl);
		g_assert_cmpuint(strlen(out), ==, 16);
	}
	popa3d("Received: x\n", out);
	popa3d("Received: x\nMessage-ID: <y>\nReceived: z\nDate: d\n", out2);
	g_assert_cmpstr(out, ==, out2);
	/* a folded line belongs to its field */
	popa3d("Received: x\n", out);
	popa3d("Received: x\n\ty\n", out2);
	g_assert_cmpstr(out, !=, out2);
	popa3d("Subject: a\n\ty\n", out2);
	g_assert_cmpstr(out2, ==, "d98c1dd404b2008f");
}

static void
test_imapbase(void)
{
	static const struct {
		const char *in;
		guint32 v, last; /* 0: refused */
	} cases[] = {
		{"1796172333 0000000003", 1796172333, 3},
		{" 1 2 $Junk NonJunk", 1, 2},
		{"1\t2", 1, 2},
		{"4294967295 4294967295", G_MAXUINT32, G_MAXUINT32},
		{"4294967296 1", 0, 0},
		{"0 1", 0, 0},
		{"1 0", 0, 0},
		{"1", 0, 0},
		{"1 ", 0, 0},
		{"-1 2", 0, 0},
		{"1 2x", 0, 0},
		{"99999999999999999999 1", 0, 0},
		{"", 0, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint32 v = 7, last = 7;
		gboolean ok = mpop_uidl_imapbase_parse(cases[i].in, strlen(cases[i].in), &v, &last);
		g_assert_cmpint(ok, ==, cases[i].v != 0);
		if (ok) {
			g_assert_cmpuint(v, ==, cases[i].v);
			g_assert_cmpuint(last, ==, cases[i].last);
		} else {
			g_assert_cmpuint(v, ==, 7); /* out_* written only on success */
		}
	}
}

static void
test_uid(void)
{
	guint32 u = 0;

	g_assert_true(mpop_uidl_uid_parse("1                 ", 18, &u));
	g_assert_cmpuint(u, ==, 1);
	g_assert_true(mpop_uidl_uid_parse(" 42", 3, &u));
	g_assert_cmpuint(u, ==, 42);
	g_assert_false(mpop_uidl_uid_parse("0", 1, &u));
	g_assert_false(mpop_uidl_uid_parse("1 2", 3, &u));
	g_assert_false(mpop_uidl_uid_parse("", 0, &u));
	g_assert_false(mpop_uidl_uid_parse("4294967296", 10, &u));
}

static gint
cmp_str(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* name=uidl pairs of the table, sorted, as one string (or "NULL"). */
static char *
uidlist(const char *data)
{
	g_autoptr(GHashTable) t = mpop_uidl_dovecot_uidlist(data, strlen(data));
	g_autoptr(GPtrArray) a = g_ptr_array_new_with_free_func(g_free);
	GHashTableIter it;
	gpointer k, v;

	if (t == NULL)
		return g_strdup("NULL");
	g_hash_table_iter_init(&it, t);
	while (g_hash_table_iter_next(&it, &k, &v))
		g_ptr_array_add(a, g_strdup_printf("%s=%s", (char *)k, (char *)v));
	g_ptr_array_sort(a, cmp_str);
	g_ptr_array_add(a, NULL);
	return g_strjoinv(" ", (char **)a->pdata);
}

static void
test_uidlist(void)
{
	static const struct {
		const char *name, *in, *want;
	} cases[] = {
		{"v3",
		 "3 V1796172279 N4 G07b81824f7690f6b737e000083ecc375\n1 W22 :a.M0P0.host\n"
		 "2 W22 :b.M1P1.host:2,S\n3 :c\n",
		 "a.M0P0.host=000000016b0f69f7 b.M1P1.host=000000026b0f69f7 c=000000036b0f69f7"},
		{"v1", "1 1000 5\n1 a:2,\n4 b\n", "a=00000001000003e8 b=00000004000003e8"},
		{"pop3-saved", "3 V1 N9\n1 P<saved@x> W9 :a\n2 P :b:2,S\n3 Pbad\x01 :c\n",
		 "a=<saved@x> c=0000000300000001"},
		{"pop3-empty-replaces", "3 V1 N9\n1 :b\n2 P :b:2,S\n", ""},
		{"empty-list", "3 V1 N1\n", ""},
		{"later-line-wins", "3 V1 N9\n1 :a\n5 :a\n", "a=0000000500000001"},
		{"unknown-ext", "3 V1 N9\n1 z9 :a\n", "a=0000000100000001"},
		{"partial-last-line", "3 V1 N9\n1 :a\n2 :b", "a=0000000100000001"},
		{"no-newline-header", "3 V1 N9", "NULL"},
		{"empty", "", "NULL"},
		{"version-2", "2 1 5\n1 a\n", "NULL"},
		{"no-uidvalidity", "3 N9\n1 :a\n", "NULL"},
		{"bad-uidvalidity", "3 Vx N9\n1 :a\n", "NULL"},
		{"uidvalidity-tail", "3 V1x N9\n1 :a\n", "NULL"},
		{"v1-short", "1 1000\n", "NULL"},
		{"v1-uid-too-high", "1 1000 5\n5 a\n", "NULL"},
		{"not-ascending", "3 V1 N9\n2 :a\n2 :b\n", "NULL"},
		{"uid-zero", "3 V1 N9\n0 :a\n", "NULL"},
		{"no-name", "3 V1 N9\n1 W5\n", "NULL"},
		{"slash", "3 V1 N9\n1 :../x\n", "NULL"},
		{"no-space", "3 V1 N9\n1:a\n", "NULL"},
		{"uid-max", "3 V1 N9\n4294967295 :a\n", "NULL"},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *got = uidlist(cases[i].in);
		if (g_strcmp0(got, cases[i].want) != 0)
			g_error("%s: got \"%s\", want \"%s\"", cases[i].name, got, cases[i].want);
	}
}

/* The mbox uidl_source entries on one message's header. */
static void
test_mbox_sources(void)
{
	static const struct {
		const char *header;
		const char *sources[5];
		const char *want; /* NULL: the SHA-256 digest of the header */
	} cases[] = {
		{"X-IMAPbase: 1796172333 0000000003\nX-UID: 2          \n",
		 {"dovecot"},
		 "000000026b0f6a2d"},
		{"X-UID: 2\nX-IMAPbase: 1796172333 3\nMessage-ID: <m@x>\n",
		 {"dovecot", "message-id"},
		 "000000026b0f6a2d"},
		/* above the last UID: brought by the mail */
		{"X-IMAPbase: 1796172333 3\nX-UID: 4\nMessage-ID: <m@x>\n",
		 {"dovecot", "message-id"},
		 "<m@x>"},
		/* no X-IMAPbase (this is not the first message) */
		{"X-UID: 2\nMessage-ID: <m@x>\n", {"dovecot", "message-id"}, "<m@x>"},
		{"X-UID: 2\n", {"dovecot"}, NULL},
		{"X-IMAPbase: 5 9\nX-UID: two\n", {"dovecot"}, NULL},
		/* X-UIDL is not X-UID */
		{"X-IMAPbase: 5 9\nX-UIDL: 3\n", {"dovecot", "x-uidl"}, "3"},
		{"X-IMAP: 5 9\nX-UID: 3\n", {"dovecot"}, "0000000300000005"},
		{"Message-ID: <1@x>\nX-UIDL: u\n", {"popa3d", "x-uidl"}, "233126efa5745439"},
		{"X-UIDL: u\nMessage-ID: <1@x>\n", {"x-uidl", "popa3d"}, "u"},
		{"Subject: s\n", {"message-id", "popa3d"}, "d98c1dd404b2008f"},
	};
	char out[MPOP_UIDL_MAX + 1];

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *h = cases[i].header;
		g_autofree char *d = mpop_uidl_digest(h, strlen(h));
		size_t n = mpop_mbox_uidl(h, strlen(h), cases[i].sources, out);
		g_assert_cmpuint(n, ==, strlen(out));
		g_assert_cmpstr(out, ==, cases[i].want != NULL ? cases[i].want : d);
	}
}

/* The mailbox-wide part: X-IMAPbase only from the first message, after its From line. */
static void
test_plan_mailbox(void)
{
	static const char *const src[] = {"dovecot", NULL};
	static const char box[] = "From a Mon Jan  1 00:00:00 2024\nSubject: x\n"
				  "X-IMAPbase: 10 20\n\nbody\n";
	static const char late[] = "From a Mon Jan  1 00:00:00 2024\nSubject: x\n\n"
				   "X-IMAPbase: 10 20\n";
	static const char *const other[] = {"x-uidl", NULL};
	MpopUidlPlan plan;

	mpop_mbox_uidl_plan(src, &plan);
	mpop_mbox_uidl_plan_mailbox(&plan, box, strlen(box));
	g_assert_cmpuint(plan.uidvalidity, ==, 10);
	g_assert_cmpuint(plan.last_uid, ==, 20);
	/* in the body, not the header */
	mpop_mbox_uidl_plan_mailbox(&plan, late, strlen(late));
	g_assert_cmpuint(plan.uidvalidity, ==, 0);
	mpop_mbox_uidl_plan_mailbox(&plan, "", 0);
	g_assert_cmpuint(plan.uidvalidity, ==, 0);
	mpop_mbox_uidl_plan_mailbox(&plan, "From x", 6);
	g_assert_cmpuint(plan.uidvalidity, ==, 0);
	/* not asked for: not looked at */
	mpop_mbox_uidl_plan(other, &plan);
	mpop_mbox_uidl_plan_mailbox(&plan, box, strlen(box));
	g_assert_cmpuint(plan.uidvalidity, ==, 0);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/uidl-compat/dovecot-format", test_dovecot_format);
	g_test_add_func("/uidl-compat/popa3d", test_popa3d);
	g_test_add_func("/uidl-compat/imapbase", test_imapbase);
	g_test_add_func("/uidl-compat/uid", test_uid);
	g_test_add_func("/uidl-compat/uidlist", test_uidlist);
	g_test_add_func("/uidl-compat/mbox-sources", test_mbox_sources);
	g_test_add_func("/uidl-compat/plan-mailbox", test_plan_mailbox);
	return g_test_run();
}
