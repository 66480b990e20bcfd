/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tokenizer of the Perl mpopd's configuration files: comments, POD, quotes and quote-like
 * operators, numbers, variables, words and punctuation; regexes and commands become tokens
 * that are never data. */
#include "perlconf-lex.h"
#include "util.h"

#include <string.h>

typedef struct {
	const char *s;
	gsize len, pos;
	guint line;
	const char *name;
	GArray *toks;
	/* here-documents of the current line: at its newline (hd_at) reading jumps over their
	 * bodies to hd_to, hd_lines lines further */
	gsize hd_at, hd_to;
	guint hd_lines;
} Lexer;

static gboolean
lex_fail(Lexer *lx, guint line, GError **error, const char *msg)
{
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s:%u: %s", lx->name, line, msg);
	return FALSE;
}

static int
peekc(const Lexer *lx, gsize ahead)
{
	return lx->pos + ahead < lx->len ? (unsigned char)lx->s[lx->pos + ahead] : -1;
}

static void
advance(Lexer *lx)
{
	if (lx->s[lx->pos] == '\n') {
		lx->line++;
		if (lx->hd_to && lx->pos == lx->hd_at) {
			lx->pos = lx->hd_to;
			lx->line += lx->hd_lines;
			lx->hd_to = lx->hd_lines = 0;
			return;
		}
	}
	lx->pos++;
}

static char
closing(char open)
{
	switch (open) {
	case '(':
		return ')';
	case '[':
		return ']';
	case '{':
		return '}';
	case '<':
		return '>';
	default:
		return open;
	}
}

/* The body of a quoted construct up to its unescaped closing delimiter (bracket pairs nest);
 * backslashes are kept for the caller to interpret. */
static gboolean
lex_delimited(Lexer *lx, char open, GString *out, GError **error)
{
	char close = closing(open);
	guint line = lx->line, depth = 0;

	for (;;) {
		int c = peekc(lx, 0);
		if (c < 0)
			return lex_fail(lx, line, error,
					"a string or quote-like operator never ends");
		advance(lx);
		if (c == '\\' && peekc(lx, 0) >= 0) {
			g_string_append_c(out, '\\');
			g_string_append_c(out, lx->s[lx->pos]);
			advance(lx);
			continue;
		}
		if (c == close && depth == 0)
			return TRUE;
		if (open != close && c == open)
			depth++;
		else if (open != close && c == close)
			depth--;
		g_string_append_c(out, (char)c);
	}
}

/* Single-quote rules: only \\ and \<delimiter> are escapes. */
static char *
sq_unescape(const char *raw, char delim)
{
	GString *out = g_string_new(NULL);

	for (const char *p = raw; *p; p++) {
		if (p[0] == '\\' && (p[1] == '\\' || p[1] == delim || p[1] == closing(delim)))
			p++;
		g_string_append_c(out, *p);
	}
	return g_string_free(out, FALSE);
}

static void
push(Lexer *lx, Tok *t, gsize start, guint line)
{
	t->start = start;
	t->end = lx->pos;
	t->line = line;
	g_array_append_val(lx->toks, *t);
}

static void
skip_space_and_comments(Lexer *lx)
{
	for (;;) {
		int c = peekc(lx, 0);
		gboolean line_start = lx->pos == 0 || lx->s[lx->pos - 1] == '\n';

		if (c == '=' && line_start && mpop_perl_ident_start(peekc(lx, 1))) {
			/* POD: up to and including the line that starts with =cut */
			while (lx->pos < lx->len) {
				gboolean cut = (lx->pos == 0 || lx->s[lx->pos - 1] == '\n') &&
					       lx->len - lx->pos >= 4 &&
					       memcmp(lx->s + lx->pos, "=cut", 4) == 0;
				while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
					advance(lx);
				if (lx->pos < lx->len)
					advance(lx);
				if (cut)
					break;
			}
		} else if (c == '#') {
			while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
				advance(lx);
		} else if (c >= 0 && g_ascii_isspace(c)) {
			advance(lx);
		} else {
			return;
		}
	}
}

/* Whether a quote-like word (q, qq, qw, ...) is followed by its delimiter, not used as a
 * bareword (q => 1, a hash key). */
static gboolean
quote_delimiter_follows(Lexer *lx, gsize *out_at)
{
	gsize at = lx->pos;
	gboolean space = FALSE;
	int c;

	while (at < lx->len && g_ascii_isspace(lx->s[at])) {
		at++;
		space = TRUE;
	}
	if (at >= lx->len)
		return FALSE;
	c = (unsigned char)lx->s[at];
	if (c == '=' && at + 1 < lx->len && lx->s[at + 1] == '>')
		return FALSE;
	if (g_ascii_isalnum(c) || c == '_' || strchr(",;)=}", c) || c < 0x21 || c > 0x7e)
		return FALSE;
	if (space && c == '#')
		return FALSE;
	*out_at = at;
	return TRUE;
}

static gboolean
lex_quote_like(Lexer *lx, const char *word, gsize start, guint line, GError **error)
{
	Tok t = {0};
	int parts =
		strcmp(word, "s") == 0 || strcmp(word, "tr") == 0 || strcmp(word, "y") == 0 ? 2 : 1;
	char open = lx->s[lx->pos];
	g_autoptr(GString) body = g_string_new(NULL);

	advance(lx);
	if (!lex_delimited(lx, open, body, error))
		return FALSE;
	if (parts == 2) {
		char open2 = open;
		if (closing(open) != open) {
			skip_space_and_comments(lx);
			if (peekc(lx, 0) < 0)
				return lex_fail(lx, line, error, "a substitution never ends");
			open2 = lx->s[lx->pos];
			advance(lx);
		}
		g_string_truncate(body, 0);
		if (!lex_delimited(lx, open2, body, error))
			return FALSE;
	}
	while (mpop_perl_ident(peekc(lx, 0)))
		advance(lx); /* modifiers */
	if (strcmp(word, "q") == 0) {
		t.type = TK_STR;
		t.text = sq_unescape(body->str, open);
	} else if (strcmp(word, "qq") == 0) {
		t.type = TK_STR;
		t.dq = TRUE;
		t.text = g_strdup(body->str);
	} else if (strcmp(word, "qw") == 0) {
		g_autofree char *plain = sq_unescape(body->str, open);
		g_auto(GStrv) all = g_strsplit_set(plain, " \t\n\r\f", -1);
		GPtrArray *words = g_ptr_array_new();

		for (char **w = all; *w; w++)
			if (**w)
				g_ptr_array_add(words, g_strdup(*w));
		g_ptr_array_add(words, NULL);
		t.type = TK_QW;
		t.words = (char **)g_ptr_array_free(words, FALSE);
	} else {
		t.type = TK_OTHER;
		t.text = g_strdup(word);
	}
	push(lx, &t, start, line);
	return TRUE;
}

static void
lex_number(Lexer *lx, gsize start, guint line)
{
	Tok t = {.type = TK_NUM};
	GString *digits = g_string_new(NULL);
	guint base = 10;
	gboolean fraction = FALSE;

	if (peekc(lx, 0) == '0' && (peekc(lx, 1) == 'x' || peekc(lx, 1) == 'X')) {
		base = 16;
		advance(lx);
		advance(lx);
	} else if (peekc(lx, 0) == '0' && (peekc(lx, 1) == 'b' || peekc(lx, 1) == 'B')) {
		base = 2;
		advance(lx);
		advance(lx);
	} else if (peekc(lx, 0) == '0' && g_ascii_isdigit(peekc(lx, 1))) {
		base = 8; /* Perl: a leading 0 is octal */
	}
	for (int c; (c = peekc(lx, 0)) >= 0; advance(lx)) {
		if (c == '_')
			continue;
		if (base == 10 && c == '.' && !fraction && g_ascii_isdigit(peekc(lx, 1)))
			fraction = TRUE;
		else if (base == 10 && (c == 'e' || c == 'E') &&
			 (g_ascii_isdigit(peekc(lx, 1)) ||
			  ((peekc(lx, 1) == '-' || peekc(lx, 1) == '+') &&
			   g_ascii_isdigit(peekc(lx, 2))))) {
			fraction = TRUE;
			g_string_append_c(digits, (char)c);
			advance(lx);
			c = peekc(lx, 0);
		} else if (!g_ascii_isxdigit(c) || g_ascii_xdigit_value(c) >= (int)base)
			break;
		g_string_append_c(digits, (char)c);
	}
	if (fraction) {
		t.text = g_string_free(digits, FALSE);
	} else {
		guint64 v;
		if (g_ascii_string_to_unsigned(digits->len ? digits->str : "0", base, 0,
					       G_MAXUINT64, &v, NULL))
			t.text = g_strdup_printf("%" G_GUINT64_FORMAT, v);
		else
			t.text = g_strdup(digits->str); /* too large: kept, a check refuses it */
		g_string_free(digits, TRUE);
	}
	push(lx, &t, start, line);
}

static const char *const punct2[] = {"=>", "=~", "!~", "->", "::", "==", "!=", "<=", ">=", "&&",
				     "||", "//", "..", "**", "<<", ">>", "+=", "-=", ".=", NULL};

static void
lex_punct(Lexer *lx, gsize start, guint line)
{
	Tok t = {.type = TK_PUNCT};

	for (const char *const *p = punct2; *p; p++)
		if (lx->len - lx->pos >= 2 && memcmp(lx->s + lx->pos, *p, 2) == 0) {
			t.text = g_strdup(*p);
			advance(lx);
			advance(lx);
			push(lx, &t, start, line);
			return;
		}
	t.text = g_strndup(lx->s + lx->pos, 1);
	advance(lx);
	push(lx, &t, start, line);
}

static gboolean
last_is(const Lexer *lx, TokType type, const char *text)
{
	const Tok *t;

	if (lx->toks->len == 0)
		return FALSE;
	t = &g_array_index(lx->toks, Tok, lx->toks->len - 1);
	return t->type == type && (!text || (t->text && strcmp(t->text, text) == 0));
}

static gboolean
lex_variable(Lexer *lx, gsize start, guint line, GError **error)
{
	Tok t = {.type = TK_VAR, .sigil = lx->s[lx->pos]};
	gsize from;

	advance(lx);
	if (t.sigil == '$' && peekc(lx, 0) == '{' && mpop_perl_ident_start(peekc(lx, 1))) {
		advance(lx);
		from = lx->pos;
		while (mpop_perl_ident(peekc(lx, 0)) || peekc(lx, 0) == ':')
			advance(lx);
		if (peekc(lx, 0) != '}')
			return lex_fail(lx, line, error, "a ${name} never ends");
		t.text = g_strndup(lx->s + from, lx->pos - from);
		advance(lx);
	} else {
		from = lx->pos;
		if (mpop_perl_ident_start(peekc(lx, 0)) || peekc(lx, 0) == ':') {
			while (mpop_perl_ident(peekc(lx, 0)) || peekc(lx, 0) == ':')
				advance(lx);
		} else if (t.sigil == '$' && peekc(lx, 0) >= 0) {
			advance(lx); /* a punctuation variable: $$, $0, $_ ... */
		}
		t.text = g_strndup(lx->s + from, lx->pos - from);
	}
	push(lx, &t, start, line);
	return TRUE;
}

static gboolean
lex_word(Lexer *lx, gsize start, guint line, gboolean *out_end, GError **error)
{
	gsize from = lx->pos, at;
	g_autofree char *word = NULL;
	Tok t = {.type = TK_WORD};

	while (mpop_perl_ident(peekc(lx, 0)) || (peekc(lx, 0) == ':' && peekc(lx, 1) == ':' &&
						 mpop_perl_ident_start(peekc(lx, 2)))) {
		if (peekc(lx, 0) == ':')
			advance(lx);
		advance(lx);
	}
	word = g_strndup(lx->s + from, lx->pos - from);
	if (strcmp(word, "__END__") == 0 || strcmp(word, "__DATA__") == 0) {
		*out_end = TRUE;
		return TRUE;
	}
	if ((strcmp(word, "q") == 0 || strcmp(word, "qq") == 0 || strcmp(word, "qw") == 0 ||
	     strcmp(word, "qr") == 0 || strcmp(word, "m") == 0 || strcmp(word, "s") == 0 ||
	     strcmp(word, "tr") == 0 || strcmp(word, "y") == 0) &&
	    quote_delimiter_follows(lx, &at)) {
		while (lx->pos < at)
			advance(lx);
		return lex_quote_like(lx, word, start, line, error);
	}
	t.text = g_steal_pointer(&word);
	push(lx, &t, start, line);
	return TRUE;
}

static gboolean
lex_string(Lexer *lx, gsize start, guint line, GError **error)
{
	char q = lx->s[lx->pos];
	g_autoptr(GString) body = g_string_new(NULL);
	Tok t = {0};

	advance(lx);
	if (!lex_delimited(lx, q, body, error))
		return FALSE;
	if (q == '`') {
		t.type = TK_OTHER;
		t.text = g_strdup("`");
	} else {
		t.type = TK_STR;
		t.dq = q == '"';
		t.text = t.dq ? g_strdup(body->str) : sq_unescape(body->str, '\'');
	}
	push(lx, &t, start, line);
	return TRUE;
}

/* <<TAG, <<"TAG", <<'TAG' and <<~TAG: the body is the lines after the current one (after the
 * bodies of earlier here-documents on it) up to the line that is TAG. */
static gboolean
lex_heredoc(Lexer *lx, gsize start, guint line, GError **error)
{
	Tok t = {.type = TK_STR, .dq = TRUE};
	gboolean indent = FALSE;
	gsize from, body, at;
	g_autofree char *tag = NULL;
	const char *nl;

	advance(lx);
	advance(lx);
	if (peekc(lx, 0) == '~') {
		indent = TRUE;
		advance(lx);
	}
	if (peekc(lx, 0) == '"' || peekc(lx, 0) == '\'') {
		char q = lx->s[lx->pos];
		t.dq = q == '"';
		advance(lx);
		from = lx->pos;
		while (peekc(lx, 0) >= 0 && peekc(lx, 0) != q && peekc(lx, 0) != '\n')
			advance(lx);
		if (peekc(lx, 0) != q)
			return lex_fail(lx, line, error, "a here-document's tag never ends");
		tag = g_strndup(lx->s + from, lx->pos - from);
		advance(lx);
	} else {
		from = lx->pos;
		while (mpop_perl_ident(peekc(lx, 0)))
			advance(lx);
		tag = g_strndup(lx->s + from, lx->pos - from);
	}
	nl = memchr(lx->s + lx->pos, '\n', lx->len - lx->pos);
	if (!*tag || !nl)
		return lex_fail(lx, line, error, "a here-document without a tag or a body");
	body = lx->hd_to ? lx->hd_to : (gsize)(nl - lx->s) + 1;
	for (at = body; at < lx->len;) {
		const char *end = memchr(lx->s + at, '\n', lx->len - at);
		gsize le = end ? (gsize)(end - lx->s) : lx->len, ls = at;

		while (indent && ls < le && (lx->s[ls] == ' ' || lx->s[ls] == '\t'))
			ls++;
		if (le - ls == strlen(tag) && memcmp(lx->s + ls, tag, le - ls) == 0) {
			t.text = g_strndup(lx->s + body, at - body);
			if (!lx->hd_to)
				lx->hd_at = (gsize)(nl - lx->s);
			lx->hd_to = end ? le + 1 : le;
			for (gsize i = body; i < lx->hd_to; i++)
				lx->hd_lines += lx->s[i] == '\n';
			push(lx, &t, start, line);
			return TRUE;
		}
		at = end ? le + 1 : lx->len;
	}
	return lex_fail(lx, line, error, "a here-document never ends");
}

static gboolean
lex_one(Lexer *lx, gboolean *out_end, GError **error)
{
	gsize start = lx->pos;
	guint line = lx->line;
	int c = peekc(lx, 0), c1 = peekc(lx, 1);

	if (c == 0)
		return lex_fail(lx, line, error, "a NUL byte (not a Perl configuration file)");
	if (c == '\'' || c == '"' || c == '`')
		return lex_string(lx, start, line, error);
	if ((c == '$' && c1 >= 0 && !g_ascii_isspace(c1)) ||
	    ((c == '%' || c == '@' || c == '&') && (mpop_perl_ident_start(c1) || c1 == ':')))
		return lex_variable(lx, start, line, error);
	if (g_ascii_isdigit(c)) {
		lex_number(lx, start, line);
		return TRUE;
	}
	if (mpop_perl_ident_start(c))
		return lex_word(lx, start, line, out_end, error);
	if (c == '<' && c1 == '<' &&
	    (peekc(lx, 2) == '"' || peekc(lx, 2) == '\'' || peekc(lx, 2) == '~' ||
	     mpop_perl_ident_start(peekc(lx, 2))))
		return lex_heredoc(lx, start, line, error);
	if (c == '/' && (last_is(lx, TK_PUNCT, "=~") || last_is(lx, TK_PUNCT, "!~") ||
			 last_is(lx, TK_PUNCT, "(") || last_is(lx, TK_WORD, "split"))) {
		g_autoptr(GString) body = g_string_new(NULL);
		Tok t = {.type = TK_OTHER, .text = g_strdup("/")};
		advance(lx);
		if (!lex_delimited(lx, '/', body, error)) {
			g_free(t.text);
			return FALSE;
		}
		while (mpop_perl_ident(peekc(lx, 0)))
			advance(lx);
		push(lx, &t, start, line);
		return TRUE;
	}
	lex_punct(lx, start, line);
	return TRUE;
}

void
mpop_perlconf_toks_free(GArray *toks)
{
	for (guint i = 0; i < toks->len; i++) {
		Tok *t = &g_array_index(toks, Tok, i);
		g_free(t->text);
		g_strfreev(t->words);
	}
	g_array_free(toks, TRUE);
}

GArray *
mpop_perlconf_tokenize(const char *text, gsize len, const char *name, GError **error)
{
	Lexer lx = {.s = text, .len = len, .line = 1, .name = name};
	gboolean end = FALSE;
	Tok eof = {.type = TK_EOF};

	lx.toks = g_array_new(FALSE, TRUE, sizeof(Tok));
	for (;;) {
		skip_space_and_comments(&lx);
		if (lx.pos >= lx.len || end)
			break;
		if (!lex_one(&lx, &end, error)) {
			mpop_perlconf_toks_free(lx.toks);
			return NULL;
		}
	}
	push(&lx, &eof, lx.pos, lx.line);
	return lx.toks;
}
