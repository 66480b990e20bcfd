/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared helpers: excerpts of untrusted bytes, path patterns, constant-time compare. */
#include "util.h"

#include <string.h>

static void
test_excerpt(void)
{
	static const struct {
		const char *in;
		size_t len, max;
		const char *out;
	} cases[] = {
		{"hello", 5, 64, "hello"},
		{"a\r\nb", 4, 64, "a\\x0d\\x0ab"},
		{"a\0b", 3, 64, "a\\x00b"},
		{"back\\slash", 10, 64, "back\\x5cslash"},
		{"\xff\x80", 2, 64, "\\xff\\x80"},
		{"abcdefgh", 8, 4, "abcd..."},
		{"", 0, 4, ""},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *s = mpop_escape_excerpt(cases[i].in, cases[i].len, cases[i].max);
		g_assert_cmpstr(s, ==, cases[i].out);
	}
}

static void
test_pattern(void)
{
	static const struct {
		const char *pattern, *user, *home, *out;
	} ok[] = {
		{"%h/Maildir", "bob", "/home/bob", "/home/bob/Maildir"},
		{"/var/mail/%u", "bob", NULL, "/var/mail/bob"},
		{"/srv/%d/%n/Maildir", "bob@example.org", NULL, "/srv/example.org/bob/Maildir"},
		{"/x/%d/%n", "bob", NULL, "/x//bob"},
		{"100%%/%u", "bob", NULL, "100%/bob"},
	};
	static const struct {
		const char *pattern, *user, *home;
	} bad[] = {
		{"%h/Maildir", "bob", NULL}, /* no home */
		{"/var/mail/%q", "bob", NULL}, {"/var/mail/%u", "../etc", NULL},
		{"/var/mail/%u", "a/b", NULL}, {"/var/mail/%u", "", NULL},
		{"/var/mail/%", "bob", NULL},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *s =
			mpop_expand_pattern(ok[i].pattern, ok[i].user, ok[i].home, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(s, ==, ok[i].out);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *s =
			mpop_expand_pattern(bad[i].pattern, bad[i].user, bad[i].home, &error);
		g_assert_null(s);
		g_assert_nonnull(error);
	}
}

static void
test_streq(void)
{
	g_assert_true(mpop_streq_consttime("", ""));
	g_assert_true(mpop_streq_consttime("abc", "abc"));
	g_assert_false(mpop_streq_consttime("abc", "abd"));
	g_assert_false(mpop_streq_consttime("abc", "ab"));
	g_assert_false(mpop_streq_consttime("ab", "abc"));
	g_assert_false(mpop_streq_consttime("", "a"));
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/util/excerpt", test_excerpt);
	g_test_add_func("/util/pattern", test_pattern);
	g_test_add_func("/util/streq", test_streq);
	return g_test_run();
}
