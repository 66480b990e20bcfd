/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for perlconf.c: the Perl mpopd's configuration read as data. */
#include "perlconf.h"
#include "util.h"

#include <string.h>

static MpopPerlConf *
parse_ok(const char *text)
{
	g_autoptr(GError) e = NULL;
	MpopPerlConf *c = mpop_perlconf_parse(text, strlen(text), "t.conf", &e);

	g_assert_no_error(e);
	g_assert_nonnull(c);
	return c;
}

static char *
parse_error(const char *text)
{
	g_autoptr(GError) e = NULL;
	MpopPerlConf *c = mpop_perlconf_parse(text, strlen(text), "t.conf", &e);

	g_assert_null(c);
	g_assert_error(e, MPOP_ERROR, MPOP_ERROR_CONFIG);
	g_assert_true(g_str_has_prefix(e->message, "t.conf"));
	return g_strdup(e->message);
}

static const char *
str(const MpopPerlConf *c, const char *name)
{
	const MpopPerlSetting *s = mpop_perlconf_get(c, name);

	g_assert_nonnull(s);
	g_assert_cmpint(s->value->type, ==, MPOP_PERL_STRING);
	return s->value->str;
}

static const MpopPerlValue *
val(const MpopPerlConf *c, const char *name, MpopPerlType type)
{
	const MpopPerlSetting *s = mpop_perlconf_get(c, name);

	g_assert_nonnull(s);
	g_assert_cmpint(s->value->type, ==, type);
	return s->value;
}

static const char *
hstr(const MpopPerlValue *h, const char *key)
{
	const MpopPerlValue *v = mpop_perl_hash_get(h, key);

	g_assert_nonnull(v);
	g_assert_cmpint(v->type, ==, MPOP_PERL_STRING);
	return v->str;
}

static void
test_scalars(void)
{
	g_autoptr(MpopPerlConf) c = parse_ok(
		"#!/usr/bin/perl\n"
		"use vars qw($a $b);\n"
		"use strict;\n"
		"$version = \"2.22\";   # a comment\n"
		"$sq = 'it\\'s a \\\\ and a \\n';\n"
		"$dq = \"tab\\there\\n\\$x \\@y \\\"q\\\" \\x41\\x{263A}\";\n"
		"$greeting = \"Welcome to mpopd V$version.... :)\";\n"
		"$braced = \"${version}x\";\n"
		"my $joined = 'a' . \"b\" . $version;\n"
		"our $end = \"^\\\\s+\\$\";\n"
		"$num = 10; $oct = 012; $hex = 0x1F; $under = 1_000; $neg = -5; $f = 2.5;\n"
		"$u = undef;\n"
		"$q = q(a (nested) one); $qq = qq{v$version};\n"
		"$dollar = \"cost: 5$\";\n"
		"1;\n");

	g_assert_cmpint(c->form, ==, MPOP_PERLCONF_FORM_2);
	g_assert_cmpuint(c->problems->len, ==, 0);
	g_assert_cmpstr(str(c, "$version"), ==, "2.22");
	g_assert_cmpstr(str(c, "$sq"), ==, "it's a \\ and a \\n");
	g_assert_cmpstr(str(c, "$dq"), ==, "tab\there\n$x @y \"q\" A\xe2\x98\xba");
	g_assert_cmpstr(str(c, "$greeting"), ==, "Welcome to mpopd V2.22.... :)");
	g_assert_cmpstr(str(c, "$braced"), ==, "2.22x");
	g_assert_cmpstr(str(c, "$joined"), ==, "ab2.22");
	g_assert_cmpstr(str(c, "$end"), ==, "^\\s+$");
	g_assert_cmpstr(str(c, "$num"), ==, "10");
	g_assert_true(mpop_perlconf_get(c, "$num")->value->number);
	g_assert_cmpstr(str(c, "$oct"), ==, "10");
	g_assert_cmpstr(str(c, "$hex"), ==, "31");
	g_assert_cmpstr(str(c, "$under"), ==, "1000");
	g_assert_cmpstr(str(c, "$neg"), ==, "-5");
	g_assert_cmpstr(str(c, "$f"), ==, "2.5");
	val(c, "$u", MPOP_PERL_UNDEF);
	g_assert_cmpstr(str(c, "$q"), ==, "a (nested) one");
	g_assert_cmpstr(str(c, "$qq"), ==, "v2.22");
	g_assert_cmpstr(str(c, "$dollar"), ==, "cost: 5$");
	g_assert_cmpuint(mpop_perlconf_get(c, "$greeting")->line, ==, 7);
}

static void
test_heredocs(void)
{
	g_autoptr(MpopPerlConf) c = parse_ok("$v = '3';\n"
					     "$h1 = <<EOF;\n"
					     "Welcome V$v\n"
					     "EOF\n"
					     "$h2 = <<'RAW'; # a comment\n"
					     "no $interp \\n\n"
					     "RAW\n"
					     "$h3 = <<~IND;\n"
					     "    indented\n"
					     "    IND\n"
					     "@two = (<<A, <<\"B\");\n"
					     "a\n"
					     "A\n"
					     "b$v\n"
					     "B\n"
					     "$after = 1;\n"
					     "$code = sub { my $x = <<EOT; };\n"
					     "  } not the end\n"
					     "EOT\n");
	const MpopPerlValue *two = val(c, "@two", MPOP_PERL_LIST);

	g_assert_cmpuint(c->problems->len, ==, 0);
	g_assert_cmpstr(str(c, "$h1"), ==, "Welcome V3\n");
	g_assert_cmpstr(str(c, "$h2"), ==, "no $interp \\n\n");
	g_assert_cmpstr(str(c, "$h3"), ==, "    indented\n");
	g_assert_cmpuint(two->items->len, ==, 2);
	g_assert_cmpstr(((MpopPerlValue *)g_ptr_array_index(two->items, 0))->str, ==, "a\n");
	g_assert_cmpstr(((MpopPerlValue *)g_ptr_array_index(two->items, 1))->str, ==, "b3\n");
	g_assert_cmpuint(mpop_perlconf_get(c, "$after")->line, ==, 16);
	g_assert_cmpuint(mpop_perlconf_get(c, "$code")->line, ==, 17);
	val(c, "$code", MPOP_PERL_CODE);
}

static void
test_lists_and_hashes(void)
{
	g_autoptr(MpopPerlConf) c = parse_ok("%user_auth = (\n"
					     "  'jbloggs' => 1,  # a comment\n"
					     "  \"fred\", 3,\n"
					     "  plugin => 7,\n"
					     ");\n"
					     "$user_auth{'mary'} = 2;\n"
					     "$user_auth{fred} = 5;\n"
					     "$debug{jbloggs} = 1;\n"
					     "@list = (qw(a b), 'c', (d => 'e'));\n"
					     "$ref = [1, [2, 3], { k => 'v' }];\n"
					     "$href = { -opt => 1, s => 2, q => 3, y => 4 };\n"
					     "%empty = ();\n");
	const MpopPerlValue *h = val(c, "%user_auth", MPOP_PERL_HASH);
	const MpopPerlValue *l = val(c, "@list", MPOP_PERL_LIST);
	const MpopPerlValue *r = val(c, "$ref", MPOP_PERL_LIST), *inner;

	g_assert_cmpuint(c->problems->len, ==, 0);
	g_assert_cmpuint(h->keys->len, ==, 4);
	g_assert_cmpstr(g_ptr_array_index(h->keys, 0), ==, "jbloggs");
	g_assert_cmpstr(g_ptr_array_index(h->keys, 1), ==, "fred");
	g_assert_cmpstr(g_ptr_array_index(h->keys, 3), ==, "mary");
	g_assert_cmpstr(hstr(h, "fred"), ==, "5"); /* the later one wins, in its first place */
	g_assert_cmpstr(hstr(h, "plugin"), ==, "7");
	g_assert_cmpuint(mpop_perl_hash_get(h, "mary")->line, ==, 6);
	g_assert_cmpstr(hstr(val(c, "%debug", MPOP_PERL_HASH), "jbloggs"), ==, "1");
	g_assert_cmpuint(l->items->len, ==, 5); /* flattened */
	g_assert_cmpstr(((MpopPerlValue *)g_ptr_array_index(l->items, 4))->str, ==, "e");
	g_assert_cmpuint(r->items->len, ==, 3); /* [ ] is a reference: not flattened */
	inner = g_ptr_array_index(r->items, 1);
	g_assert_cmpint(inner->type, ==, MPOP_PERL_LIST);
	g_assert_cmpuint(inner->items->len, ==, 2);
	inner = g_ptr_array_index(r->items, 2);
	g_assert_cmpstr(hstr(inner, "k"), ==, "v");
	h = val(c, "$href", MPOP_PERL_HASH);
	g_assert_cmpstr(hstr(h, "-opt"), ==, "1");
	g_assert_cmpstr(hstr(h, "s"), ==, "2");
	g_assert_cmpstr(hstr(h, "q"), ==, "3");
	g_assert_cmpstr(hstr(h, "y"), ==, "4");
	g_assert_cmpuint(val(c, "%empty", MPOP_PERL_HASH)->keys->len, ==, 0);
}

static void
test_hash_form(void)
{
	static const char *const starts[] = {"", "+", "return ", "$config = ", "my $c = "};

	for (size_t i = 0; i < G_N_ELEMENTS(starts); i++) {
		g_autofree char *text =
			g_strdup_printf("# 3.x\nuse strict;\n%s{\n"
					"  'port' => '110',\n"
					"  timeout => 10,\n"
					"  message_end => '^\\s*$',\n"
					"  user_check => sub {\n"
					"    my ($self, $user) = @_; # '}' in a comment\n"
					"    return $user =~ /^[a-z}]+$/ && \"}\" ne '{';\n"
					"  },\n"
					"  user_log => { markjt => 2, },\n"
					"  list => [ qw(a b) ],\n"
					"}%s\n",
					starts[i], i % 2 ? ";" : "");
		g_autoptr(MpopPerlConf) c = parse_ok(text);
		const MpopPerlValue *code;

		g_assert_cmpint(c->form, ==, MPOP_PERLCONF_FORM_3);
		g_assert_cmpuint(c->problems->len, ==, 0);
		g_assert_cmpuint(c->settings->len, ==, 6);
		g_assert_cmpstr(str(c, "port"), ==, "110");
		g_assert_cmpstr(str(c, "message_end"), ==, "^\\s*$");
		g_assert_cmpuint(mpop_perlconf_get(c, "timeout")->line, ==, 5);
		code = val(c, "user_check", MPOP_PERL_CODE);
		g_assert_true(g_str_has_prefix(code->str, "sub { my ($self, $user) = @_;"));
		g_assert_true(g_str_has_suffix(code->str, "}"));
		g_assert_cmpstr(hstr(val(c, "user_log", MPOP_PERL_HASH), "markjt"), ==, "2");
		g_assert_cmpuint(val(c, "list", MPOP_PERL_LIST)->items->len, ==, 2);
	}
}

/* What is not understood becomes a problem naming the setting and its line; the rest of the
 * file is still read. */
static void
test_problems(void)
{
	static const struct {
		const char *line;
		const char *what;
		const char *why;
	} cases[] = {
		{"$a = lc($host);", "$a", "calls or names lc"},
		{"$a = \"user@example.org\";", "$a", "interpolates an array"},
		{"$a = $unset;", "$a", "uses $unset, which is not set before it"},
		{"$a = \"x$unset\";", "$a", "interpolates $unset"},
		{"$a = \"$h{x}\";", "$a", "interpolates an element of $h"},
		{"$a = $h{x};", "$a", "uses an element of $h"},
		{"$a = \\&check;", "$a", "unexpected"},
		{"$a =~ s/x/y/;", "", "not an assignment"},
		{"print 'x';", "", "not an assignment"},
		{"%h = (1, 2, 3);", "%h", "odd number"},
		{"%h = 'x';", "%h", "a hash assigned"},
		{"$a = 'x' x 3;", "$a", "where a value ends"},
		{"$a = `id`;", "$a", "a regular expression or a command"},
		{"$a = \"\\Uup\";", "$a", "the escape \\U is not read"},
		{"$a = sub x { 1 };", "$a", "a named sub"},
		{"$a = 1 + 2;", "$a", "where a value ends"},
		{"$a = [1, 2;", "$a", "expected \",\" or \"]\""},
		{"$a = 'x'", "$a", "where a value ends"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *text =
			g_strdup_printf("$before = 1;\n%s\n$after = 2;\n", cases[i].line);
		g_autoptr(MpopPerlConf) c = parse_ok(text);
		const MpopPerlProblem *p;

		g_test_message("%s", cases[i].line);
		g_assert_cmpuint(c->problems->len, ==, 1);
		p = g_ptr_array_index(c->problems, 0);
		g_assert_cmpuint(p->line, ==, 2);
		g_assert_cmpstr(p->what, ==, cases[i].what);
		g_assert_nonnull(strstr(p->message, cases[i].why));
		g_assert_cmpstr(str(c, "$before"), ==, "1");
		if (!strstr(cases[i].line, "'x'\n") && !g_str_has_suffix(cases[i].line, "'x'"))
			g_assert_cmpstr(str(c, "$after"), ==, "2");
		g_assert_null(mpop_perlconf_get(c, "$a"));
	}
}

static void
test_hash_form_problems(void)
{
	g_autoptr(MpopPerlConf) c =
		parse_ok("{\n a => 1,\n b => lc('X'),\n c => [1, foo()],\n d => 4,\n 'e' 5,\n"
			 " f => 6\n};\nprint 'x';\n");
	const MpopPerlProblem *p;

	g_assert_cmpint(c->form, ==, MPOP_PERLCONF_FORM_3);
	g_assert_cmpstr(str(c, "a"), ==, "1");
	g_assert_cmpstr(str(c, "d"), ==, "4");
	g_assert_cmpstr(str(c, "f"), ==, "6");
	g_assert_null(mpop_perlconf_get(c, "b"));
	g_assert_null(mpop_perlconf_get(c, "c"));
	g_assert_cmpuint(c->problems->len, ==, 4);
	p = g_ptr_array_index(c->problems, 0);
	g_assert_cmpstr(p->what, ==, "b");
	g_assert_cmpuint(p->line, ==, 3);
	p = g_ptr_array_index(c->problems, 1);
	g_assert_cmpstr(p->what, ==, "c");
	p = g_ptr_array_index(c->problems, 2);
	g_assert_cmpuint(p->line, ==, 6);
	p = g_ptr_array_index(c->problems, 3);
	g_assert_cmpuint(p->line, ==, 9);
}

static void
test_pod_and_end(void)
{
	g_autoptr(MpopPerlConf) c = parse_ok("$a = 1;\n"
					     "=pod\n\n$b = 2;\n\n=cut\n"
					     "$c = 3;\n"
					     "__END__\n$d = 4; 'never ends\n");

	g_assert_nonnull(mpop_perlconf_get(c, "$a"));
	g_assert_null(mpop_perlconf_get(c, "$b"));
	g_assert_cmpuint(mpop_perlconf_get(c, "$c")->line, ==, 7);
	g_assert_null(mpop_perlconf_get(c, "$d"));
}

static void
test_errors(void)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{"$a = 'never ends;\n", "t.conf:1: a string or quote-like operator never ends"},
		{"$a = 1;\n$b = <<EOF;\nx\nEOFX\n", "t.conf:2: a here-document never ends"},
		{"$b = <<\"\";\n\n", "t.conf:1: a here-document without a tag"},
		{"$b = <<\"EOF;\nx\nEOF\n", "t.conf:1: a here-document's tag never ends"},
		{"", "no $name = value"},
		{"# only a comment\n1;\n", "no $name = value"},
		{"print 'hello';\n", "no $name = value"},
		{"$a = q{ {nested} never;\n", "never ends"},
		{"$a = ${name;\n", "never ends"},
	};
	g_autoptr(GString) deep = g_string_new("$a = ");
	g_autofree char *msg = NULL;
	g_autoptr(GError) e = NULL;
	g_autoptr(MpopPerlConf) c = NULL;
	g_autofree char *big = NULL;

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *m = parse_error(cases[i].text);
		g_test_message("%s -> %s", cases[i].text, m);
		g_assert_nonnull(strstr(m, cases[i].why));
	}
	/* a NUL byte */
	c = mpop_perlconf_parse("$a = 1;\0$b = 2;", 15, "t.conf", &e);
	g_assert_null(c);
	g_assert_error(e, MPOP_ERROR, MPOP_ERROR_CONFIG);
	g_clear_error(&e);
	/* nesting: 32 levels are read, 33 are a problem */
	for (int i = 0; i < 33; i++)
		g_string_append_c(deep, '[');
	for (int i = 0; i < 33; i++)
		g_string_append_c(deep, ']');
	g_string_append(deep, ";\n$b = [[[]]];\n");
	c = parse_ok(deep->str);
	g_assert_cmpuint(c->problems->len, ==, 1);
	g_assert_nonnull(strstr(((MpopPerlProblem *)g_ptr_array_index(c->problems, 0))->message,
				"nested deeper"));
	val(c, "$b", MPOP_PERL_LIST);
	g_clear_pointer(&c, mpop_perlconf_free);
	/* too large */
	big = g_malloc0(MPOP_PERLCONF_MAX_SIZE + 2);
	memset(big, ' ', MPOP_PERLCONF_MAX_SIZE + 1);
	c = mpop_perlconf_parse(big, MPOP_PERLCONF_MAX_SIZE + 1, "t.conf", &e);
	g_assert_null(c);
	g_assert_error(e, MPOP_ERROR, MPOP_ERROR_CONFIG);
	msg = g_strdup(e->message);
	g_assert_nonnull(strstr(msg, "larger than"));
}

/* Every prefix of the fixtures parses or fails cleanly: the reader never runs past its input
 * (each prefix is a fresh allocation of exactly its length, for ASan). */
static void
test_prefixes(void)
{
	static const char *const files[] = {"mpopd-2.22.conf", "mpopd-3.x.conf",
					    "vdomains-2.x.conf"};

	for (size_t f = 0; f < G_N_ELEMENTS(files); f++) {
		g_autofree char *path =
			g_test_build_filename(G_TEST_DIST, "data", "convert", files[f], NULL);
		g_autofree char *text = NULL;
		gsize len;

		g_assert_true(g_file_get_contents(path, &text, &len, NULL));
		for (gsize n = 0; n <= len; n++) {
			char *copy = g_memdup2(text, n);
			GError *e = NULL;
			MpopPerlConf *c = mpop_perlconf_parse(copy, n, "p", &e);
			g_assert_true((c == NULL) != (e == NULL));
			mpop_perlconf_free(c);
			g_clear_error(&e);
			g_free(copy);
		}
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/perlconf/scalars", test_scalars);
	g_test_add_func("/perlconf/heredocs", test_heredocs);
	g_test_add_func("/perlconf/lists-and-hashes", test_lists_and_hashes);
	g_test_add_func("/perlconf/hash-form", test_hash_form);
	g_test_add_func("/perlconf/problems", test_problems);
	g_test_add_func("/perlconf/hash-form-problems", test_hash_form_problems);
	g_test_add_func("/perlconf/pod-and-end", test_pod_and_end);
	g_test_add_func("/perlconf/errors", test_errors);
	g_test_add_func("/perlconf/prefixes", test_prefixes);
	return g_test_run();
}
