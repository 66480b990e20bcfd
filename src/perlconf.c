/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The Perl mpopd's configuration read as data: a parser of the assignments, lists, hashes and
 * code references of its Perl (tokens from perlconf-lex.c) that never executes anything. */
#include "perlconf.h"
#include "perlconf-lex.h"
#include "util.h"

#include <string.h>

#define MAX_DEPTH 32
#define CODE_EXCERPT 160

/* ---- values ---- */

static void
value_free(MpopPerlValue *v)
{
	if (!v)
		return;
	g_free(v->str);
	if (v->index)
		g_hash_table_unref(v->index);
	if (v->keys)
		g_ptr_array_unref(v->keys);
	if (v->items)
		g_ptr_array_unref(v->items);
	g_free(v);
}

static MpopPerlValue *
value_new(MpopPerlType type, guint line)
{
	MpopPerlValue *v = g_new0(MpopPerlValue, 1);

	v->type = type;
	v->line = line;
	if (type == MPOP_PERL_LIST || type == MPOP_PERL_HASH)
		v->items = g_ptr_array_new_with_free_func((GDestroyNotify)value_free);
	if (type == MPOP_PERL_HASH) {
		v->keys = g_ptr_array_new_with_free_func(g_free);
		v->index = g_hash_table_new(g_str_hash, g_str_equal); /* keys owned by ->keys */
	}
	return v;
}

static MpopPerlValue *
value_string(const char *s, guint line)
{
	MpopPerlValue *v = value_new(MPOP_PERL_STRING, line);
	v->str = g_strdup(s);
	return v;
}

static MpopPerlValue *
value_copy(const MpopPerlValue *v)
{
	MpopPerlValue *c = value_new(v->type, v->line);

	c->number = v->number;
	c->str = g_strdup(v->str);
	for (guint i = 0; v->items && i < v->items->len; i++)
		g_ptr_array_add(c->items, value_copy(g_ptr_array_index(v->items, i)));
	for (guint i = 0; v->keys && i < v->keys->len; i++) {
		char *k = g_strdup(g_ptr_array_index(v->keys, i));
		g_ptr_array_add(c->keys, k);
		g_hash_table_insert(c->index, k, GUINT_TO_POINTER(i + 1));
	}
	return c;
}

/* Perl: a repeated key keeps its first place and takes the last value. */
static void
hash_set(MpopPerlValue *h, const char *key, MpopPerlValue *v)
{
	guint at = GPOINTER_TO_UINT(g_hash_table_lookup(h->index, key));
	char *k;

	if (at) {
		value_free(g_ptr_array_index(h->items, at - 1));
		g_ptr_array_index(h->items, at - 1) = v;
		return;
	}
	k = g_strdup(key);
	g_ptr_array_add(h->keys, k);
	g_ptr_array_add(h->items, v);
	g_hash_table_insert(h->index, k, GUINT_TO_POINTER(h->keys->len));
}

const MpopPerlValue *
mpop_perl_hash_get(const MpopPerlValue *hash, const char *key)
{
	guint at;

	if (!hash || hash->type != MPOP_PERL_HASH)
		return NULL;
	at = GPOINTER_TO_UINT(g_hash_table_lookup(hash->index, key));
	return at ? g_ptr_array_index(hash->items, at - 1) : NULL;
}

/* ---- the parser ---- */

typedef struct {
	GArray *toks;
	guint pos;
	const char *text;
	const char *name;
	MpopPerlConf *conf;
	GHashTable *scalars; /* 2.x: name -> char *, for "$name" in strings and terms */
	guint depth;
	char *why; /* why the last parse failed */
} Parser;

static const Tok *
peek_at(const Parser *p, guint ahead)
{
	guint i = MIN(p->pos + ahead, p->toks->len - 1);
	return &g_array_index(p->toks, Tok, i);
}

static const Tok *
peek(const Parser *p)
{
	return peek_at(p, 0);
}

static const Tok *
next(Parser *p)
{
	const Tok *t = peek(p);
	if (t->type != TK_EOF)
		p->pos++;
	return t;
}

static gboolean
is_punct(const Tok *t, const char *s)
{
	return t->type == TK_PUNCT && strcmp(t->text, s) == 0;
}

static gboolean
is_word(const Tok *t, const char *s)
{
	return t->type == TK_WORD && strcmp(t->text, s) == 0;
}

static MpopPerlValue *
parse_fail(Parser *p, const Tok *t, const char *fmt, ...)
{
	va_list ap;

	if (p->why)
		return NULL; /* keep the innermost reason */
	va_start(ap, fmt);
	p->why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return NULL;
}

static char *
excerpt(const Parser *p, gsize start, gsize end, gsize max)
{
	g_autoptr(GString) s = g_string_new(NULL);
	gboolean space = FALSE;

	for (gsize i = start; i < end; i++) {
		char c = p->text[i];
		if (g_ascii_isspace(c)) {
			space = s->len > 0;
			continue;
		}
		if (space)
			g_string_append_c(s, ' ');
		space = FALSE;
		g_string_append_c(s, c);
	}
	return mpop_escape_excerpt(s->str, s->len, max);
}

static void
problem(Parser *p, guint line, const char *what, const char *message)
{
	MpopPerlProblem *pr = g_new0(MpopPerlProblem, 1);

	pr->line = line;
	pr->what = g_strdup(what ? what : "");
	pr->message = g_strdup(message);
	g_ptr_array_add(p->conf->problems, pr);
}

/* Report the last failure (or "not an assignment") with the source text, at the line where
 * the statement or the hash entry starts. */
static void
problem_from_failure(Parser *p, const char *what, gsize start, gsize end, guint line)
{
	g_autofree char *src = excerpt(p, start, end, 80);
	g_autofree char *msg =
		g_strdup_printf("%s: %s", p->why ? p->why : "not an assignment", src);

	problem(p, line, what, msg);
	g_clear_pointer(&p->why, g_free);
}

static gboolean
is_open(const Tok *t)
{
	return is_punct(t, "(") || is_punct(t, "[") || is_punct(t, "{");
}

static gboolean
is_close(const Tok *t)
{
	return is_punct(t, ")") || is_punct(t, "]") || is_punct(t, "}");
}

/* Skip to a stop token (";" or ",") at this nesting level, or to the closing bracket of the
 * enclosing one (not consumed). */
static void
skip_to(Parser *p, gboolean comma_stops)
{
	guint depth = 0;

	for (const Tok *t; (t = peek(p))->type != TK_EOF; next(p)) {
		if (depth == 0 && (is_punct(t, ";") || (comma_stops && is_punct(t, ","))))
			return;
		if (is_open(t))
			depth++;
		else if (is_close(t)) {
			if (depth == 0)
				return;
			depth--;
		}
	}
}

/* Back to token from, then to the ";" that ends the statement: the first one outside braces
 * (a sub's block holds statements of its own). */
static void
skip_statement(Parser *p, guint from)
{
	guint braces = 0;

	p->pos = from;
	for (const Tok *t; (t = peek(p))->type != TK_EOF; next(p)) {
		if (is_punct(t, "{"))
			braces++;
		else if (is_punct(t, "}") && braces > 0)
			braces--;
		else if (is_punct(t, ";") && braces == 0)
			return;
	}
}

static MpopPerlValue *parse_expr(Parser *p, gboolean *out_flat);

static const char *
scalar_lookup(Parser *p, const char *name)
{
	return p->scalars ? g_hash_table_lookup(p->scalars, name) : NULL;
}

static gboolean
dq_escape(Parser *p, const Tok *t, const char **pp, GString *out)
{
	const char *s = *pp + 1; /* after the backslash */
	static const char simple[] = "n\nt\tr\rf\fa\ab\be\033";

	if (*s == '\0')
		return parse_fail(p, t, "a string ends in a backslash") != NULL;
	for (const char *q = simple; *q; q += 2)
		if (*s == q[0]) {
			g_string_append_c(out, q[1]);
			*pp = s;
			return TRUE;
		}
	if (*s == 'x') {
		gunichar u = 0;
		const char *d = s + 1;
		gboolean brace = *d == '{';
		int n = 0;
		if (brace)
			d++;
		for (; g_ascii_isxdigit(*d) && (brace ? n < 6 : n < 2); d++, n++)
			u = u * 16 + (gunichar)g_ascii_xdigit_value(*d);
		if (brace && *d++ != '}')
			return parse_fail(p, t, "a \\x{...} escape never ends") != NULL;
		if (u == 0 || !g_unichar_validate(u))
			return parse_fail(p, t, "a \\x escape gives a NUL or no character") != NULL;
		g_string_append_unichar(out, u);
		*pp = d - 1;
		return TRUE;
	}
	if (g_ascii_isdigit(*s) || strchr("ulULQEcNp", *s))
		return parse_fail(p, t, "the escape \\%c is not read", *s) != NULL;
	g_string_append_c(out, *s); /* \\ \" \$ \@ and any other punctuation */
	*pp = s;
	return TRUE;
}

static gboolean
dq_variable(Parser *p, const Tok *t, const char **pp, GString *out)
{
	const char *s = *pp + 1, *from, *to, *value;
	g_autofree char *name = NULL;

	if (*s == '{') {
		from = s + 1;
		to = strchr(from, '}');
		if (!to)
			return parse_fail(p, t, "a ${name} never ends") != NULL;
		*pp = to;
	} else {
		from = s;
		for (to = s; mpop_perl_ident(*to) || (to[0] == ':' && to[1] == ':');
		     to += to[0] == ':' ? 2 : 1)
			;
		*pp = to - 1;
	}
	name = g_strndup(from, (gsize)(to - from));
	if (*s != '{' && (*to == '[' || *to == '{' || (to[0] == '-' && to[1] == '>')))
		return parse_fail(p, t, "interpolates an element of $%s", name) != NULL;
	if (!(value = scalar_lookup(p, name)))
		return parse_fail(p, t, "interpolates $%s, which is not set before it", name) !=
		       NULL;
	g_string_append(out, value);
	return TRUE;
}

/* A double-quoted string: its escapes, and $name / ${name} replaced by the values set
 * before it (what Perl would do); anything else that interpolates is not understood. */
static MpopPerlValue *
interpolate(Parser *p, const Tok *t)
{
	g_autoptr(GString) out = g_string_new(NULL);

	for (const char *s = t->text; *s; s++) {
		if (*s == '\\') {
			if (!dq_escape(p, t, &s, out))
				return NULL;
		} else if (*s == '$' &&
			   (mpop_perl_ident_start(s[1]) || s[1] == '{' || s[1] == ':')) {
			if (!dq_variable(p, t, &s, out))
				return NULL;
		} else if (*s == '$' && s[1] && !g_ascii_isspace(s[1])) {
			return parse_fail(p, t, "interpolates the variable $%c", s[1]);
		} else if (*s == '@' && (mpop_perl_ident_start(s[1]) || s[1] == '{' ||
					 s[1] == '$' || s[1] == ':')) {
			return parse_fail(
				p, t, "interpolates an array (@%c...): write \\@ for an @", s[1]);
		} else {
			g_string_append_c(out, *s);
		}
	}
	return value_string(out->str, t->line);
}

static MpopPerlValue *
parse_code(Parser *p)
{
	const Tok *sub = next(p), *t = sub;
	guint depth = 0;
	MpopPerlValue *v;

	if (!is_punct(peek(p), "{"))
		return parse_fail(p, sub, "a named sub or a sub without a block");
	do {
		t = next(p);
		if (t->type == TK_EOF)
			return parse_fail(p, sub, "a code block never ends");
		if (is_punct(t, "{"))
			depth++;
		else if (is_punct(t, "}"))
			depth--;
	} while (depth > 0);
	v = value_new(MPOP_PERL_CODE, sub->line);
	v->str = excerpt(p, sub->start, t->end, CODE_EXCERPT);
	return v;
}

/* Items up to close; lists from ( ) and qw() flatten into it as Perl flattens them. */
static MpopPerlValue *
parse_list(Parser *p, const char *close, guint line)
{
	g_autoptr(GPtrArray) items = g_ptr_array_new_with_free_func((GDestroyNotify)value_free);
	MpopPerlValue *list;

	while (!is_punct(peek(p), close)) {
		const Tok *t = peek(p);
		gboolean flat = FALSE;
		MpopPerlValue *v;

		if (t->type == TK_WORD && is_punct(peek_at(p, 1), "=>")) {
			v = value_string(t->text, t->line);
			next(p);
		} else if (is_punct(t, "-") && peek_at(p, 1)->type == TK_WORD &&
			   is_punct(peek_at(p, 2), "=>")) {
			next(p);
			v = value_string(NULL, t->line);
			v->str = g_strconcat("-", next(p)->text, NULL);
		} else if (!(v = parse_expr(p, &flat))) {
			return NULL;
		}
		if (flat) {
			for (guint i = 0; i < v->items->len; i++)
				g_ptr_array_add(items, value_copy(g_ptr_array_index(v->items, i)));
			value_free(v);
		} else {
			g_ptr_array_add(items, v);
		}
		t = peek(p);
		if (is_punct(t, ",") || is_punct(t, "=>"))
			next(p);
		else if (!is_punct(t, close))
			return parse_fail(p, t, "expected \",\" or \"%s\", found \"%s\"", close,
					  t->text ? t->text : "the end");
	}
	next(p);
	list = value_new(MPOP_PERL_LIST, line);
	g_ptr_array_extend_and_steal(list->items, g_steal_pointer(&items));
	return list;
}

static MpopPerlValue *
list_to_hash(Parser *p, MpopPerlValue *list, const Tok *at)
{
	MpopPerlValue *h;

	if (list->items->len % 2) {
		value_free(list);
		return parse_fail(p, at, "a hash with an odd number of elements");
	}
	h = value_new(MPOP_PERL_HASH, list->line);
	for (guint i = 0; i < list->items->len; i += 2) {
		MpopPerlValue *k = g_ptr_array_index(list->items, i);
		if (k->type != MPOP_PERL_STRING) {
			value_free(h);
			value_free(list);
			return parse_fail(p, at, "a hash key that is not a string");
		}
		hash_set(h, k->str, g_steal_pointer(&g_ptr_array_index(list->items, i + 1)));
	}
	value_free(list);
	return h;
}

static MpopPerlValue *
parse_bracket(Parser *p, gboolean *out_flat)
{
	const Tok *open = next(p);
	MpopPerlValue *v;

	if (++p->depth > MAX_DEPTH)
		return parse_fail(p, open, "nested deeper than %d levels", MAX_DEPTH);
	if (is_punct(open, "[")) {
		v = parse_list(p, "]", open->line);
	} else if (is_punct(open, "(")) {
		v = parse_list(p, ")", open->line);
		*out_flat = v != NULL;
	} else {
		v = parse_list(p, "}", open->line);
		v = v ? list_to_hash(p, v, open) : NULL;
	}
	p->depth--;
	return v;
}

static MpopPerlValue *
parse_variable_term(Parser *p)
{
	const Tok *t = next(p);
	const char *value;

	if (t->sigil != '$')
		return parse_fail(p, t, "uses %c%s", t->sigil, t->text);
	if (is_punct(peek(p), "{") || is_punct(peek(p), "[") || is_punct(peek(p), "->"))
		return parse_fail(p, t, "uses an element of $%s", t->text);
	if (!(value = scalar_lookup(p, t->text)))
		return parse_fail(p, t, "uses $%s, which is not set before it", t->text);
	return value_string(value, t->line);
}

static MpopPerlValue *
parse_term(Parser *p, gboolean *out_flat)
{
	const Tok *t = peek(p);
	MpopPerlValue *v;

	*out_flat = FALSE;
	switch (t->type) {
	case TK_STR:
		next(p);
		return t->dq ? interpolate(p, t) : value_string(t->text, t->line);
	case TK_NUM:
		next(p);
		v = value_string(t->text, t->line);
		v->number = TRUE;
		return v;
	case TK_QW:
		next(p);
		v = value_new(MPOP_PERL_LIST, t->line);
		for (char **w = t->words; *w; w++)
			g_ptr_array_add(v->items, value_string(*w, t->line));
		*out_flat = TRUE;
		return v;
	case TK_VAR:
		return parse_variable_term(p);
	case TK_WORD:
		if (strcmp(t->text, "undef") == 0) {
			next(p);
			if (is_punct(peek(p), "(") && is_punct(peek_at(p, 1), ")"))
				p->pos += 2;
			return value_new(MPOP_PERL_UNDEF, t->line);
		}
		if (strcmp(t->text, "sub") == 0)
			return parse_code(p);
		return parse_fail(p, t, "calls or names %s", t->text);
	case TK_PUNCT:
		if (is_open(t))
			return parse_bracket(p, out_flat);
		if (is_punct(t, "-") && peek_at(p, 1)->type == TK_NUM) {
			next(p);
			v = value_string(NULL, t->line);
			v->str = g_strconcat("-", next(p)->text, NULL);
			v->number = TRUE;
			return v;
		}
		if (is_punct(t, "+") && is_punct(peek_at(p, 1), "{")) {
			next(p);
			return parse_bracket(p, out_flat);
		}
		return parse_fail(p, t, "unexpected \"%s\"", t->text);
	case TK_OTHER:
		return parse_fail(p, t, "a regular expression or a command");
	case TK_EOF:
		return parse_fail(p, t, "the file ends inside a value");
	}
	g_assert_not_reached();
}

/* A term, or strings joined with ".". */
static MpopPerlValue *
parse_expr(Parser *p, gboolean *out_flat)
{
	MpopPerlValue *v = parse_term(p, out_flat);

	while (v && is_punct(peek(p), ".")) {
		const Tok *dot = next(p);
		gboolean flat;
		MpopPerlValue *w = parse_term(p, &flat);
		char *joined;

		if (!w || v->type != MPOP_PERL_STRING || w->type != MPOP_PERL_STRING) {
			value_free(v);
			value_free(w);
			return w ? parse_fail(p, dot, "\".\" joins something that is not a string")
				 : NULL;
		}
		joined = g_strconcat(v->str, w->str, NULL);
		g_free(v->str);
		v->str = joined;
		v->number = FALSE;
		value_free(w);
	}
	if (v && !is_punct(peek(p), ",") && !is_punct(peek(p), "=>") && !is_punct(peek(p), ";") &&
	    !is_close(peek(p)) && peek(p)->type != TK_EOF) {
		const Tok *t = peek(p);
		value_free(v);
		return parse_fail(p, t, "an expression (\"%s\") where a value ends",
				  t->text ? t->text : "?");
	}
	return v;
}

/* ---- settings ---- */

static void
setting_free(MpopPerlSetting *s)
{
	g_free(s->name);
	value_free(s->value);
	g_free(s);
}

static MpopPerlSetting *
find_setting(const MpopPerlConf *conf, const char *name)
{
	return g_hash_table_lookup(conf->index, name);
}

const MpopPerlSetting *
mpop_perlconf_get(const MpopPerlConf *conf, const char *name)
{
	return find_setting(conf, name);
}

static void
set(Parser *p, const char *name, MpopPerlValue *v, guint line)
{
	MpopPerlSetting *s = find_setting(p->conf, name);

	if (p->scalars && name[0] == '$') {
		if (v->type == MPOP_PERL_STRING)
			g_hash_table_replace(p->scalars, g_strdup(name + 1), g_strdup(v->str));
		else
			g_hash_table_remove(p->scalars, name + 1);
	}
	if (!s) {
		s = g_new0(MpopPerlSetting, 1);
		s->name = g_strdup(name);
		g_ptr_array_add(p->conf->settings, s);
		g_hash_table_insert(p->conf->index, s->name, s);
	}
	value_free(s->value);
	s->value = v;
	s->line = line;
}

/* $name{key} = value: an element of %name. */
static MpopPerlValue *
parse_element_assignment(Parser *p, const Tok *var, char **out_name)
{
	const Tok *k;
	g_autofree char *key = NULL;
	MpopPerlValue *v;
	MpopPerlSetting *s;
	gboolean flat;

	next(p); /* { */
	k = next(p);
	if (k->type == TK_WORD || k->type == TK_NUM || (k->type == TK_STR && !k->dq))
		key = g_strdup(k->text);
	else if (k->type == TK_STR) {
		MpopPerlValue *kv = interpolate(p, k);
		if (!kv)
			return NULL;
		key = g_strdup(kv->str);
		value_free(kv);
	} else
		return parse_fail(p, k, "a hash element whose key is not a word or a string");
	if (!is_punct(next(p), "}") || !is_punct(next(p), "="))
		return parse_fail(p, k, "not an assignment to an element of %%%s", var->text);
	if (!(v = parse_expr(p, &flat)))
		return NULL;
	*out_name = g_strconcat("%", var->text, NULL);
	s = find_setting(p->conf, *out_name);
	if (!s || s->value->type != MPOP_PERL_HASH) {
		set(p, *out_name, value_new(MPOP_PERL_HASH, var->line), var->line);
		s = find_setting(p->conf, *out_name);
		g_assert(s != NULL);
	}
	hash_set(s->value, key, v);
	return s->value;
}

static MpopPerlValue *
coerce(Parser *p, char sigil, MpopPerlValue *v, gboolean flat, const Tok *at)
{
	if (sigil == '%') {
		if (v->type != MPOP_PERL_LIST || !flat) {
			value_free(v);
			return parse_fail(p, at,
					  "a hash assigned something other than a ( ... ) list");
		}
		return list_to_hash(p, v, at);
	}
	if (sigil == '@' && !(v->type == MPOP_PERL_LIST && flat)) {
		MpopPerlValue *l = value_new(MPOP_PERL_LIST, v->line);
		g_ptr_array_add(l->items, v);
		return l;
	}
	if (sigil == '$' && flat) {
		/* $x = (v): the value in parentheses; a longer list is not read */
		MpopPerlValue *one = v->items->len == 1
					     ? g_steal_pointer(&g_ptr_array_index(v->items, 0))
					     : NULL;
		value_free(v);
		return one ? one : parse_fail(p, at, "a scalar assigned a list");
	}
	return v;
}

/* One 2.x statement: [my|our|local] $x = v; %h = (...); @a = (...); $h{k} = v. */
static void
parse_statement(Parser *p)
{
	const Tok *first = peek(p), *var, *t;
	g_autofree char *name = NULL;
	MpopPerlValue *v = NULL;
	gboolean flat = FALSE;
	guint from = p->pos;

	if (is_word(first, "my") || is_word(first, "our") || is_word(first, "local"))
		next(p);
	var = peek(p);
	if (var->type == TK_VAR && var->sigil == '$' && is_punct(peek_at(p, 1), "{")) {
		next(p);
		if (parse_element_assignment(p, var, &name) &&
		    (is_punct(peek(p), ";") || peek(p)->type == TK_EOF)) {
			next(p);
			return;
		}
	} else if (var->type == TK_VAR && strchr("$%@", var->sigil) &&
		   is_punct(peek_at(p, 1), "=")) {
		name = g_strdup_printf("%c%s", var->sigil, var->text);
		p->pos += 2;
		v = parse_expr(p, &flat);
		if (v)
			v = coerce(p, var->sigil, v, flat, var);
		t = peek(p);
		if (v && (is_punct(t, ";") || t->type == TK_EOF)) {
			set(p, name, v, var->line);
			next(p);
			return;
		}
		if (v) {
			value_free(v);
			parse_fail(p, t, "expected \";\"");
		}
	}
	skip_statement(p, from);
	problem_from_failure(p, name, first->start, peek(p)->start, first->line);
	next(p);
}

/* use, no, package: declarations, skipped; require and BEGIN would run code. */
static gboolean
parse_declaration(Parser *p)
{
	const Tok *t = peek(p);

	if (is_word(t, "use") || is_word(t, "no") || is_word(t, "package")) {
		skip_statement(p, p->pos);
		next(p);
		return TRUE;
	}
	/* "1;" (the true value a required file returns) */
	if (t->type == TK_NUM && (is_punct(peek_at(p, 1), ";") || peek_at(p, 1)->type == TK_EOF)) {
		next(p);
		next(p);
		return TRUE;
	}
	return FALSE;
}

/* 3.x: the entries of the top-level hash, each recovered from on its own. */
static void
parse_top_hash(Parser *p)
{
	const Tok *open = next(p);

	p->conf->form = MPOP_PERLCONF_FORM_3;
	while (!is_punct(peek(p), "}") && peek(p)->type != TK_EOF) {
		const Tok *k = peek(p);
		g_autofree char *key = NULL;
		MpopPerlValue *v = NULL;
		gboolean flat = FALSE;
		guint from = p->pos;

		if (k->type == TK_WORD || k->type == TK_NUM || (k->type == TK_STR && !k->dq))
			key = g_strdup(k->text);
		if (key && (is_punct(peek_at(p, 1), "=>") || is_punct(peek_at(p, 1), ","))) {
			p->pos += 2;
			v = parse_expr(p, &flat);
			if (v && flat)
				v = coerce(p, '$', v, flat, k);
		} else {
			parse_fail(p, k, "not a key => value pair");
		}
		if (v &&
		    (is_punct(peek(p), ",") || is_punct(peek(p), "=>") || is_punct(peek(p), "}"))) {
			set(p, key, v, k->line);
		} else {
			value_free(v);
			p->pos = from;
			skip_to(p, TRUE);
			problem_from_failure(p, key, k->start, peek(p)->start, k->line);
		}
		if (is_punct(peek(p), ",") || is_punct(peek(p), "=>") || is_punct(peek(p), ";"))
			next(p);
		else if (is_close(peek(p)) && !is_punct(peek(p), "}"))
			next(p);
	}
	if (!is_punct(next(p), "}"))
		problem(p, open->line, "", "the hash never ends");
	while (is_punct(peek(p), ";"))
		next(p);
	while (peek(p)->type != TK_EOF) {
		const Tok *t = peek(p);
		if (!parse_declaration(p)) {
			skip_statement(p, p->pos);
			problem_from_failure(p, NULL, t->start, peek(p)->start, t->line);
			next(p);
		}
	}
}

/* 3.x files are one hash: "{ ... }", "+{ ... }", "return { ... }" or "$config = { ... }". */
static gboolean
starts_hash(Parser *p)
{
	guint i = 0;

	while (is_word(peek_at(p, i), "my") || is_word(peek_at(p, i), "our"))
		i++;
	if (is_word(peek_at(p, i), "return") || is_punct(peek_at(p, i), "+"))
		i++;
	else if (peek_at(p, i)->type == TK_VAR && peek_at(p, i)->sigil == '$' &&
		 is_punct(peek_at(p, i + 1), "="))
		i += 2;
	if (!is_punct(peek_at(p, i), "{"))
		return FALSE;
	p->pos += i;
	return TRUE;
}

static void
parse_file(Parser *p)
{
	while (peek(p)->type != TK_EOF) {
		if (is_punct(peek(p), ";")) {
			next(p);
			continue;
		}
		if (parse_declaration(p))
			continue;
		if (p->conf->settings->len == 0 && p->conf->problems->len == 0 && starts_hash(p)) {
			g_clear_pointer(&p->scalars, g_hash_table_unref);
			parse_top_hash(p);
			return;
		}
		parse_statement(p);
	}
}

MpopPerlConf *
mpop_perlconf_parse(const char *text, gsize len, const char *name, GError **error)
{
	g_autoptr(MpopPerlConf) conf = NULL;
	GArray *toks;
	Parser p = {0};

	if (len > MPOP_PERLCONF_MAX_SIZE) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "%s: larger than %d bytes: not an mpopd configuration", name,
			    MPOP_PERLCONF_MAX_SIZE);
		return NULL;
	}
	if (!(toks = mpop_perlconf_tokenize(text, len, name, error)))
		return NULL;
	conf = g_new0(MpopPerlConf, 1);
	conf->form = MPOP_PERLCONF_FORM_2;
	conf->settings = g_ptr_array_new_with_free_func((GDestroyNotify)setting_free);
	conf->problems = g_ptr_array_new();
	conf->index = g_hash_table_new(g_str_hash, g_str_equal); /* names owned by settings */
	p = (Parser){.toks = toks, .text = text, .name = name, .conf = conf};
	p.scalars = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	parse_file(&p);
	g_clear_pointer(&p.scalars, g_hash_table_unref);
	g_free(p.why);
	mpop_perlconf_toks_free(toks);
	if (conf->settings->len == 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "%s: no $name = value; assignments and no { key => value } hash: not "
			    "a Perl mpopd configuration",
			    name);
		return NULL;
	}
	return g_steal_pointer(&conf);
}

void
mpop_perlconf_free(MpopPerlConf *conf)
{
	if (!conf)
		return;
	if (conf->index)
		g_hash_table_unref(conf->index);
	if (conf->settings)
		g_ptr_array_unref(conf->settings);
	for (guint i = 0; conf->problems && i < conf->problems->len; i++) {
		MpopPerlProblem *pr = g_ptr_array_index(conf->problems, i);
		g_free(pr->what);
		g_free(pr->message);
		g_free(pr);
	}
	if (conf->problems)
		g_ptr_array_unref(conf->problems);
	g_free(conf);
}
