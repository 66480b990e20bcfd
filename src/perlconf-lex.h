/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The tokenizer of perlconf.c (private to it): the Perl of the Perl mpopd's configuration
 * files as tokens, with comments, POD and quoting taken care of. */
#pragma once

#include <glib.h>

typedef enum {
	TK_EOF,
	TK_VAR,	  /* $name %name @name &name; sigil in .sigil, name in .text */
	TK_STR,	  /* '...', q(), "..." and qq() (raw, .dq: escapes and interpolation pending) */
	TK_NUM,	  /* .text: the decimal value */
	TK_WORD,  /* barewords and keywords */
	TK_QW,	  /* qw(): .words */
	TK_PUNCT, /* .text: "=>", "=", ",", "(", ... */
	TK_OTHER, /* regexes, substitutions, backticks: never data */
} TokType;

typedef struct {
	TokType type;
	char sigil;
	gboolean dq;
	char *text;
	char **words;
	guint line;
	gsize start, end; /* byte offsets in the input */
} Tok;

/* The tokens of text (untrusted, any bytes), ending in one TK_EOF; free with
 * mpop_perlconf_toks_free(). An unterminated string, quote-like operator or here-document, or a
 * NUL byte is an MPOP_ERROR_CONFIG "name:LINE: ..." error. */
/* Perl identifiers; c is a byte (0-255) or -1 at the end of the input. */
static inline gboolean
mpop_perl_ident_start(int c)
{
	return c >= 0 && (g_ascii_isalpha(c) || c == '_');
}

static inline gboolean
mpop_perl_ident(int c)
{
	return c >= 0 && (g_ascii_isalnum(c) || c == '_');
}

GArray *mpop_perlconf_tokenize(const char *text, gsize len, const char *name, GError **error);

void mpop_perlconf_toks_free(GArray *toks);
