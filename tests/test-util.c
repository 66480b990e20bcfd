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
		const char *pattern, *user, *home, *spool, *out;
	} ok[] = {
		{"%h/Maildir", "bob", "/home/bob", NULL, "/home/bob/Maildir"},
		{"%h/Maildir", "bob", "/", NULL, "//Maildir"},
		{"%h", "bob", "/home//bob/", NULL, "/home//bob/"},
		{"%h/Maildir", "bob", "/home/bob..x/.y", NULL, "/home/bob..x/.y/Maildir"},
		{"/var/mail/%u", "bob", NULL, NULL, "/var/mail/bob"},
		{"/srv/%d/%n/Maildir", "bob@example.org", NULL, NULL,
		 "/srv/example.org/bob/Maildir"},
		{"/srv/%u", "bob@example.org", NULL, NULL, "/srv/bob@example.org"},
		{"/srv/%n", "bob", NULL, NULL, "/srv/bob"},
		{"/srv/%d/%n", "a@b@c", NULL, NULL, "/srv/b@c/a"},
		{"/srv/%n.x", "b.o.b", NULL, NULL, "/srv/b.o.b.x"},
		{"/100%%/%u%%", "bob", NULL, NULL, "/100%/bob%"},
		{"%s/%u", "bob", NULL, "/var/mail", "/var/mail/bob"},
		/* %s is the config's and used as is, a '%' in it included */
		{"%s/%u", "bob", NULL, "/var/50%u", "/var/50%u/bob"},
		{"/fixed", "../x", NULL, NULL, "/fixed"}, /* what is not expanded is not checked */
	};
	static const struct {
		const char *pattern, *user, *home, *spool;
		gint code;
		const char *message; /* a glob */
	} bad[] = {
		/* the %d of "x@.." would climb out of /var/vmail */
		{"/var/vmail/%d/%n/Maildir", "x@..", NULL, NULL, MPOP_ERROR_PERM,
		 "user name \"x@..\" *its domain (%d) \"..\" starts with a dot"},
		{"/var/vmail/%d/%n/Maildir", "..@dom", NULL, NULL, MPOP_ERROR_PERM,
		 "*its local part (%n) \"..\"*"},
		{"/var/vmail/%d/%n/Maildir", "@dom", NULL, NULL, MPOP_ERROR_PERM,
		 "*its local part (%n) \"\" is empty"},
		{"/var/vmail/%d/%n/Maildir", "bob@", NULL, NULL, MPOP_ERROR_PERM,
		 "*its domain (%d) \"\" is empty"},
		{"/var/vmail/%d/%n/Maildir", "bob", NULL, NULL, MPOP_ERROR_PERM,
		 "*its domain (%d) \"\" is empty"},
		{"/var/vmail/%d/%n/Maildir", "a/b@dom", NULL, NULL, MPOP_ERROR_PERM,
		 "*local part (%n) \"a/b\" contains a slash"},
		{"/var/vmail/%d/%n/Maildir", "a@b/c", NULL, NULL, MPOP_ERROR_PERM,
		 "*domain (%d) \"b/c\" contains a slash"},
		{"/var/mail/%u", "../x", NULL, NULL, MPOP_ERROR_PERM, "*starts with a dot"},
		{"/var/mail/%u", "a/b", NULL, NULL, MPOP_ERROR_PERM, "*contains a slash"},
		{"/var/mail/%u", ".", NULL, NULL, MPOP_ERROR_PERM, "*starts with a dot"},
		{"/var/mail/%u", "..", NULL, NULL, MPOP_ERROR_PERM, "*starts with a dot"},
		{"/var/mail/%u", ".bob", NULL, NULL, MPOP_ERROR_PERM, "*starts with a dot"},
		{"/var/mail/%u", "", NULL, NULL, MPOP_ERROR_PERM, "*is empty"},
		{"/var/mail/%u", NULL, NULL, NULL, MPOP_ERROR_PERM, "*is empty"},
		/* untrusted bytes are escaped in the message */
		{"/var/mail/%u", "a\n/b", NULL, NULL, MPOP_ERROR_PERM, "user name \"a\\x0a/b\"*"},
		{"%h/Maildir", "bob", NULL, NULL, MPOP_ERROR_PERM, "*needs a home directory*"},
		{"%h/Maildir", "bob", "", NULL, MPOP_ERROR_PERM, "*needs a home directory*"},
		{"%h/Maildir", "bob", "home/bob", NULL, MPOP_ERROR_PERM,
		 "home directory (%h) \"home/bob\" is not an absolute path*"},
		{"%h/Maildir", "bob", "/home/../etc", NULL, MPOP_ERROR_PERM, "home directory*"},
		{"%h/Maildir", "bob", "/home/bob/..", NULL, MPOP_ERROR_PERM, "home directory*"},
		{"%h/Maildir", "bob", "/home/./bob", NULL, MPOP_ERROR_PERM, "home directory*"},
		{"%h/Maildir", "bob", "/.", NULL, MPOP_ERROR_PERM, "home directory*"},
		{"%s/%u", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*%s (the spool directory)*"},
		{"/var/mail/%q", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*unknown %-escape*"},
		{"/var/mail/%", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*unknown %-escape*"},
		{"%", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*unknown %-escape*"},
		{"var/mail/%u", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*not an absolute path*"},
		{"%u/Maildir", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*not an absolute path*"},
		{"%%/x", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*not an absolute path*"},
		{"", "bob", NULL, NULL, MPOP_ERROR_CONFIG, "*not an absolute path*"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(ok); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *s = mpop_pattern_expand(ok[i].pattern, ok[i].user, ok[i].home,
							 ok[i].spool, &error);
		g_assert_no_error(error);
		g_assert_cmpstr(s, ==, ok[i].out);
		g_assert_null(mpop_pattern_check(ok[i].pattern));
		/* mpop_pattern_uses_home() is exactly "cannot expand without a home" */
		g_autoptr(GError) no_home_error = NULL;
		g_autofree char *no_home = mpop_pattern_expand(ok[i].pattern, ok[i].user, NULL,
							       ok[i].spool, &no_home_error);
		g_assert_cmpint(mpop_pattern_uses_home(ok[i].pattern), ==, no_home == NULL);
	}
	g_assert_false(mpop_pattern_uses_home("/srv/%%h/%u"));
	g_assert_true(mpop_pattern_uses_home("/x/%%%h"));
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *s = mpop_pattern_expand(bad[i].pattern, bad[i].user, bad[i].home,
							 bad[i].spool, &error);
		g_assert_null(s);
		g_assert_error(error, MPOP_ERROR, bad[i].code);
		if (!g_pattern_match_simple(bad[i].message, error->message))
			g_error("case %zu: \"%s\" does not match \"%s\"", i, error->message,
				bad[i].message);
		/* a config check refuses exactly the patterns that can never expand */
		g_assert_cmpint(mpop_pattern_check(bad[i].pattern) != NULL, ==,
				bad[i].code == MPOP_ERROR_CONFIG && bad[i].spool == NULL &&
					!g_str_has_prefix(bad[i].pattern, "%s"));
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
