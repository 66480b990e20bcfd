/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the host rules: every rule form, IPv6 and v4-mapped clients, the precedence of
 * ALLOW, DENY, WARN and DENY ALL, bad lines with their line numbers, a 1000-rule file and
 * forward-confirmed reverse DNS. */
#include "hostrules-gen.h"
#include "hostrules.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static void
addr_of(const char *text, guint8 out[16])
{
	g_assert_true(mpop_addr_parse(text, out));
}

static MpopHostRules *
parse_ok(const char *text)
{
	g_autoptr(GError) error = NULL;
	MpopHostRules *r = mpop_hostrules_parse(text, strlen(text), "rules", &error);

	g_assert_no_error(error);
	g_assert_nonnull(r);
	return r;
}

static void
test_net(void)
{
	static const struct {
		const char *text;
		gboolean ok;
		guint bits;
	} cases[] = {
		{"192.0.2.1", TRUE, 128},
		{"192.0.2.0/24", TRUE, 120},
		{"0.0.0.0/0", TRUE, 96},
		{"192.0.2.", TRUE, 120},
		{"192.0.2.*", TRUE, 120},
		{"10.", TRUE, 104},
		{"10.*", TRUE, 104},
		{"10.0.*.*", TRUE, 112},
		{"2001:db8::1", TRUE, 128},
		{"2001:db8::/32", TRUE, 32},
		{"::/0", TRUE, 0},
		{"::ffff:192.0.2.1", TRUE, 128},
		{"192.0.2.1/24", FALSE, 0}, /* host bits set */
		{"192.0.2.0/33", FALSE, 0},
		{"192.0.2.0/", FALSE, 0},
		{"192.0.2.0/-1", FALSE, 0},
		{"2001:db8::1/32", FALSE, 0},
		{"2001:db8::/129", FALSE, 0},
		{"2001:db8:::1", FALSE, 0},
		{"192.0.2", FALSE, 0}, /* a prefix needs its trailing dot */
		{"10.0.0.0.", FALSE, 0},
		{"256.", FALSE, 0},
		{"01.2.", FALSE, 0},
		{"1..", FALSE, 0},
		{".", FALSE, 0},
		{"*", FALSE, 0},
		{"", FALSE, 0},
		{"192.0.2.300", FALSE, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		MpopNet net;
		const char *why = mpop_net_parse(cases[i].text, &net);
		g_test_message("%s", cases[i].text);
		g_assert_cmpint(why == NULL, ==, cases[i].ok);
		if (why == NULL)
			g_assert_cmpuint(net.bits, ==, cases[i].bits);
	}
}

static void
test_net_contains(void)
{
	static const struct {
		const char *net, *addr;
		gboolean in;
	} cases[] = {
		{"192.0.2.0/24", "192.0.2.255", TRUE},
		{"192.0.2.0/24", "192.0.3.0", FALSE},
		{"192.0.2.0/25", "192.0.2.127", TRUE},
		{"192.0.2.0/25", "192.0.2.128", FALSE},
		{"10.", "10.255.0.1", TRUE},
		{"10.", "100.0.0.1", FALSE}, /* the Perl regex matched this; a prefix does not */
		{"10.0.0.1", "10.0.0.15", FALSE},
		{"0.0.0.0/0", "203.0.113.9", TRUE},
		{"0.0.0.0/0", "2001:db8::1", FALSE},
		{"2001:db8::/32", "2001:db8:ffff::1", TRUE},
		{"2001:db8::/32", "2001:db9::1", FALSE},
		{"::/0", "192.0.2.1", TRUE},
		{"::ffff:192.0.2.0/120", "192.0.2.7", TRUE}, /* a v4-mapped rule is the IPv4 one */
		{"192.0.2.7", "::ffff:192.0.2.7", TRUE},     /* a v4-mapped client is IPv4 */
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		MpopNet net;
		guint8 a[16];
		g_assert_null(mpop_net_parse(cases[i].net, &net));
		addr_of(cases[i].addr, a);
		g_test_message("%s in %s", cases[i].addr, cases[i].net);
		g_assert_cmpint(mpop_net_contains(&net, a), ==, cases[i].in);
	}
	{
		const char *const nets[] = {"10.", "2001:db8::/32", NULL};
		guint8 a[16];
		addr_of("10.1.2.3", a);
		g_assert_true(mpop_net_list_contains(nets, a));
		addr_of("11.1.2.3", a);
		g_assert_false(mpop_net_list_contains(nets, a));
		g_assert_false(mpop_net_list_contains(NULL, a));
	}
}

typedef struct {
	const char *rules;
	const char *addr;
	const char *name; /* the confirmed name, NULL: none */
	gboolean denied;
	guint line, warn_line;
} Case;

static void
run_cases(const Case *cases, guint n)
{
	for (guint i = 0; i < n; i++) {
		g_autoptr(MpopHostRules) r = parse_ok(cases[i].rules);
		MpopHostVerdict v;
		guint8 a[16];

		addr_of(cases[i].addr, a);
		mpop_hostrules_check(r, a, cases[i].name, &v);
		g_test_message("case %u: %s from %s (%s)", i, cases[i].rules, cases[i].addr,
			       cases[i].name ? cases[i].name : "-");
		g_assert_cmpint(v.denied, ==, cases[i].denied);
		g_assert_cmpuint(v.line, ==, cases[i].line);
		g_assert_cmpuint(v.warn_line, ==, cases[i].warn_line);
	}
}

/* Every form a rule's peer may take, against matching and other clients. */
static void
test_forms(void)
{
	static const Case cases[] = {
		{"DENY 192.0.2.1\n", "192.0.2.1", NULL, TRUE, 1, 0},
		{"DENY 192.0.2.1\n", "192.0.2.10", NULL, FALSE, 0, 0},
		{"DENY 192.0.2.0/24\n", "192.0.2.99", NULL, TRUE, 1, 0},
		{"DENY 192.0.2.0/24\n", "192.0.3.1", NULL, FALSE, 0, 0},
		{"DENY 100.0.0.\n", "100.0.0.1", NULL, TRUE, 1, 0},
		{"DENY 100.0.0.\n", "100.0.1.1", NULL, FALSE, 0, 0},
		{"DENY 100.0.0.*\n", "100.0.0.250", NULL, TRUE, 1, 0},
		{"DENY 2001:db8::1\n", "2001:db8::1", NULL, TRUE, 1, 0},
		{"DENY 2001:db8::1\n", "2001:db8::2", NULL, FALSE, 0, 0},
		{"DENY 2001:db8::/48\n", "2001:db8:0:ffff::2", NULL, TRUE, 1, 0},
		{"DENY 2001:db8::/48\n", "2001:db8:1::2", NULL, FALSE, 0, 0},
		/* a client on a dual-stack socket reports ::ffff:a.b.c.d */
		{"DENY 192.0.2.1\n", "::ffff:192.0.2.1", NULL, TRUE, 1, 0},
		{"DENY ::ffff:192.0.2.1\n", "192.0.2.1", NULL, TRUE, 1, 0},
		{"DENY mail.example.org\n", "192.0.2.1", "mail.example.org", TRUE, 1, 0},
		{"DENY Mail.Example.ORG\n", "192.0.2.1", "mail.example.org", TRUE, 1, 0},
		{"DENY mail.example.org\n", "192.0.2.1", "xmail.example.org", FALSE, 0, 0},
		{"DENY mail.example.org\n", "192.0.2.1", NULL, FALSE, 0, 0},
		{"DENY .example.org\n", "192.0.2.1", "a.b.example.org", TRUE, 1, 0},
		{"DENY *.example.org\n", "192.0.2.1", "a.example.org", TRUE, 1, 0},
		{"DENY .example.org\n", "192.0.2.1", "example.org", FALSE, 0, 0},
		{"DENY .example.org\n", "192.0.2.1", "badexample.org", FALSE, 0, 0},
		{"DENY localhost\n", "127.0.0.1", "localhost", TRUE, 1, 0},
		{"ALLOW ALL\n", "192.0.2.1", NULL, FALSE, 1, 0},
		{"WARN ALL\n", "2001:db8::1", NULL, FALSE, 0, 1},
		{"DENY ALL\n", "192.0.2.1", NULL, TRUE, 1, 0},
		/* comments, blank lines, CRLF, tabs, case, trailing comments */
		{"# comment\n\n   \n\t# indented\r\ndeny\t192.0.2.1   # why\r\n", "192.0.2.1", NULL,
		 TRUE, 5, 0},
		{"Allow 192.0.2.1\nDENY ALL", "192.0.2.1", NULL, FALSE, 1, 0},
		{"", "192.0.2.1", NULL, FALSE, 0, 0},
	};

	run_cases(cases, G_N_ELEMENTS(cases));
}

/* The order the rules are read in: the first ALLOW or DENY that matches decides, WARN before
 * it is reported, DENY ALL anywhere makes refusal the default (the Perl mpopd's semantics). */
static void
test_precedence(void)
{
	static const Case cases[] = {
		/* DENY ALL + ALLOW: only the ALLOW matches get in, whatever the order */
		{"DENY ALL\nALLOW 127.0.0.\n", "127.0.0.1", NULL, FALSE, 2, 0},
		{"DENY ALL\nALLOW 127.0.0.\n", "192.0.2.1", NULL, TRUE, 1, 0},
		{"ALLOW 127.0.0.\nDENY ALL\n", "127.0.0.1", NULL, FALSE, 1, 0},
		{"ALLOW 127.0.0.\nDENY ALL\n", "192.0.2.1", NULL, TRUE, 2, 0},
		/* first ALLOW or DENY wins */
		{"ALLOW 10.1.0.0/16\nDENY 10.\n", "10.1.2.3", NULL, FALSE, 1, 0},
		{"ALLOW 10.1.0.0/16\nDENY 10.\n", "10.2.2.3", NULL, TRUE, 2, 0},
		{"DENY 10.\nALLOW 10.1.0.0/16\n", "10.1.2.3", NULL, TRUE, 1, 0},
		{"ALLOW 10.1.0.0/16\nDENY 10.\n", "11.0.0.1", NULL, FALSE, 0, 0},
		/* WARN admits and reports, and does not stop the scan */
		{"WARN 127.0.0.1\n", "127.0.0.1", NULL, FALSE, 0, 1},
		{"WARN 127.0.0.1\nDENY 127.0.0.*\n", "127.0.0.1", NULL, TRUE, 2, 1},
		{"WARN 127.0.0.\nWARN 127.0.0.1\n", "127.0.0.1", NULL, FALSE, 0, 1},
		{"ALLOW 127.0.0.1\nWARN 127.0.0.1\n", "127.0.0.1", NULL, FALSE, 1, 0},
		{"DENY ALL\nWARN 127.0.0.1\nALLOW 127.0.0.1\n", "127.0.0.1", NULL, FALSE, 3, 2},
		{"DENY ALL\nWARN 127.0.0.1\n", "127.0.0.1", NULL, TRUE, 1, 2},
		/* ALLOW ALL and WARN ALL stand where they are */
		{"DENY 192.0.2.1\nALLOW ALL\n", "192.0.2.1", NULL, TRUE, 1, 0},
		{"ALLOW ALL\nDENY 192.0.2.1\n", "192.0.2.1", NULL, FALSE, 1, 0},
		{"DENY ALL\nALLOW ALL\n", "192.0.2.1", NULL, FALSE, 2, 0},
		/* two DENY ALL: the default names the first */
		{"DENY ALL\nDENY ALL\n", "192.0.2.1", NULL, TRUE, 1, 0},
		/* names and addresses in one file */
		{"ALLOW localhost\nDENY ALL\n", "127.0.0.1", "localhost", FALSE, 1, 0},
		{"ALLOW localhost\nDENY ALL\n", "127.0.0.2", NULL, TRUE, 2, 0},
	};

	run_cases(cases, G_N_ELEMENTS(cases));
}

static void
test_need_name(void)
{
	g_autoptr(MpopHostRules) a = parse_ok("DENY 10.\nALLOW ALL\nDENY ALL\n");
	g_autoptr(MpopHostRules) b = parse_ok("DENY 10.\nWARN .example.org\n");

	g_assert_false(mpop_hostrules_need_name(a));
	g_assert_true(mpop_hostrules_need_name(b));
	g_assert_false(mpop_hostrules_need_name(NULL));
	g_assert_cmpuint(mpop_hostrules_count(a), ==, 3);
}

/* A bad line is an error naming the file and the line. */
static void
test_errors(void)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{"DENY 192.0.2.1\nREJECT 192.0.2.2\n",
		 "rules:2: \"REJECT 192.0.2.2\" is not ALLOW"},
		{"DENY\n", "rules:1: \"DENY\" is not ALLOW"},
		{"192.0.2.1\n", "rules:1: \"192.0.2.1\" is not ALLOW"},
		{"\n\n\nDENY 192.0.2\n", "rules:4: \"192.0.2\" is an incomplete address"},
		{"DENY 192.0.2.1/24\n", "rules:1: \"192.0.2.1/24\" has address bits set"},
		{"DENY 192.0.2.0/40\n", "rules:1: \"192.0.2.0/40\" has a prefix length"},
		{"# ok\nDENY 2001:db8::zz\n", "rules:2: \"2001:db8::zz\" is not an IPv6 address"},
		{"DENY 300.1.1.1\n", "rules:1: \"300.1.1.1\" is not an IPv4 address"},
		{"DENY 192.0.2.1 192.0.2.2\n", "rules:1: \"DENY 192.0.2.1 192.0.2.2\" has more"},
		{"ALLOW -bad-.example.org\n", "rules:1: \"-bad-.example.org\" is not an address"},
		{"ALLOW host_name\n", "rules:1: \"host_name\" is not an address"},
		{"ALLOW *\n", "rules:1: \"*\" is not an IPv4 address prefix"},
		{"ALLOW a..b\n", "rules:1: \"a..b\" is not an address"},
		{"ALLOW 192.0.2.1\nDENY a\x01\n", "rules:2: \"a\\x01\" is not an address"},
		{"ALLOW 192.0.2.1\nDENY \xff\n", "rules:2: \"\\xff\" is not an address"},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		MpopHostRules *r =
			mpop_hostrules_parse(cases[i].text, strlen(cases[i].text), "rules", &error);
		g_assert_null(r);
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
		g_test_message("got: %s", error->message);
		g_assert_true(g_str_has_prefix(error->message, cases[i].message));
	}
	{
		static const char nul[] = "ALLOW 192.0.2.1\n\nDENY 1\0.2.3.4\n";
		g_autoptr(GError) error = NULL;
		g_assert_null(mpop_hostrules_parse(nul, sizeof(nul) - 1, "rules", &error));
		g_assert_true(g_str_has_prefix(error->message, "rules:3: "));
		g_assert_nonnull(strstr(error->message, "NUL"));
	}
	{
		g_autoptr(GError) error = NULL;
		g_assert_null(mpop_hostrules_load("/nonexistent/rules", &error));
		g_assert_nonnull(strstr(error->message, "/nonexistent/rules"));
	}
}

/* Every prefix of a valid file either parses or fails with a line number, never crashes;
 * a file cut short gives the same rules as far as it goes. */
static void
test_prefixes(void)
{
	static const char text[] = "# rules\nWARN 2001:db8::/32\nALLOW 127.0.0.\r\nDENY "
				   "*.example.org # x\nDENY ALL\n";

	for (gsize n = 0; n <= sizeof(text) - 1; n++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopHostRules) r = mpop_hostrules_parse(text, n, "rules", &error);
		g_assert_true((r != NULL) != (error != NULL));
		if (error)
			g_assert_true(g_str_has_prefix(error->message, "rules:"));
	}
}

static void
test_thousand(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) s = mpop_test_rules(1000, FALSE);
	g_autofree char *dir = g_dir_make_tmp("mpop-hostrules-XXXXXX", &error);
	g_autofree char *path = g_build_filename(dir, "rules", NULL);
	g_autoptr(MpopHostRules) r = NULL;
	MpopHostVerdict v;
	guint8 a[16];

	g_assert_no_error(error);
	g_assert_true(g_file_set_contents(path, s->str, (gssize)s->len, &error));
	r = mpop_hostrules_load(path, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(mpop_hostrules_count(r), ==, 1001);
	/* the last ALLOW (rule 999, line 1001) */
	addr_of("192.3.231.77", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_false(v.denied);
	g_assert_cmpuint(v.line, ==, 1001);
	/* no rule: DENY ALL at line 1002 */
	addr_of("198.51.100.1", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_true(v.denied);
	g_assert_cmpuint(v.line, ==, 1002);
	/* rule 998 (line 1000): DENY 172.16.3.230, after WARN lines that do not match it */
	addr_of("172.16.3.230", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_true(v.denied);
	g_assert_cmpuint(v.line, ==, 1000);
	g_assert_cmpuint(v.warn_line, ==, 0);
	/* a client of rule 997 (line 999: WARN 2001:db8:3e5::/48), refused by default */
	addr_of("2001:db8:3e5::1", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_true(v.denied);
	g_assert_cmpuint(v.warn_line, ==, 999);
	unlink(path);
	rmdir(dir);
}

/* The sample file shipped in conf/ parses and means what its comments say. */
static void
test_example(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path =
		g_test_build_filename(G_TEST_DIST, "..", "conf", "hosts.allow-deny.example", NULL);
	g_autoptr(MpopHostRules) r = mpop_hostrules_load(path, &error);
	MpopHostVerdict v;
	guint8 a[16];

	g_assert_no_error(error);
	g_assert_true(mpop_hostrules_need_name(r));
	addr_of("10.9.9.9", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_true(v.denied);
	addr_of("10.9.9.8", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_false(v.denied);
	addr_of("203.0.113.1", a);
	mpop_hostrules_check(r, a, "pc1.branch.example.org", &v);
	g_assert_false(v.denied);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_true(v.denied);
	addr_of("198.51.100.23", a);
	mpop_hostrules_check(r, a, NULL, &v);
	g_assert_false(v.denied);
	g_assert_cmpuint(v.warn_line, >, 0);
}

/* 127.0.0.1 is localhost in /etc/hosts (Debian's default), which resolves back to it. */
static void
test_confirmed_name(void)
{
	struct sockaddr_in in = {.sin_family = AF_INET};
	struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
	g_autofree char *name = NULL;
	g_autofree char *mapped = NULL;
	g_autofree char *none = NULL;
	guint64 start;

	in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	name = mpop_hostrules_confirmed_name((struct sockaddr *)&in, sizeof(in), 2000);
	g_assert_cmpstr(name, ==, "localhost");
	/* the same client on a dual-stack socket */
	g_assert_cmpint(inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr), ==, 1);
	mapped = mpop_hostrules_confirmed_name((struct sockaddr *)&in6, sizeof(in6), 2000);
	g_assert_cmpstr(mapped, ==, "localhost");
	/* TEST-NET-2 has no PTR record: no name, and never longer than the timeout */
	in.sin_addr.s_addr = htonl(0xc6336401); /* 198.51.100.1 */
	start = mpop_now_usec();
	none = mpop_hostrules_confirmed_name((struct sockaddr *)&in, sizeof(in), 500);
	g_assert_null(none);
	g_assert_cmpuint(mpop_now_usec() - start, <, 1500000);
	g_assert_null(mpop_hostrules_confirmed_name(NULL, 0, 500));
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/hostrules/net", test_net);
	g_test_add_func("/hostrules/net-contains", test_net_contains);
	g_test_add_func("/hostrules/forms", test_forms);
	g_test_add_func("/hostrules/precedence", test_precedence);
	g_test_add_func("/hostrules/need-name", test_need_name);
	g_test_add_func("/hostrules/errors", test_errors);
	g_test_add_func("/hostrules/prefixes", test_prefixes);
	g_test_add_func("/hostrules/thousand", test_thousand);
	g_test_add_func("/hostrules/example", test_example);
	g_test_add_func("/hostrules/confirmed-name", test_confirmed_name);
	return g_test_run();
}
