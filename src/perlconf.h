/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The Perl mpopd's configuration file read as data: the subset of Perl its 2.x ($var = value;)
 * and 3.x ({ key => value }) files are written in, never executed. */
#pragma once

#include <glib.h>

/* Files larger than this are refused (the Perl samples are under 20 KiB). */
#define MPOP_PERLCONF_MAX_SIZE (1024 * 1024)

typedef enum {
	MPOP_PERL_UNDEF,
	MPOP_PERL_STRING, /* strings and numbers (numbers as their decimal text) */
	MPOP_PERL_LIST,	  /* ( ... ), [ ... ] and qw() */
	MPOP_PERL_HASH,	  /* { k => v } and %h = ( ... ) */
	MPOP_PERL_CODE,	  /* sub { ... }: kept as source text, never run */
} MpopPerlType;

typedef struct MpopPerlValue MpopPerlValue;
struct MpopPerlValue {
	MpopPerlType type;
	guint line;
	gboolean number;   /* STRING written as a number */
	char *str;	   /* STRING: the value; CODE: its source, whitespace collapsed */
	GPtrArray *keys;   /* HASH: char *, in file order (a repeated key keeps its first place) */
	GPtrArray *items;  /* LIST: MpopPerlValue *; HASH: the value of each key */
	GHashTable *index; /* HASH (private): key -> its position + 1 */
};

/* One assignment (2.x: "$timeout", "%user_auth", "@list", with the sigil) or one key of the
 * top-level hash (3.x: "timeout"). A later assignment to the same name replaces the value. */
typedef struct {
	char *name;
	MpopPerlValue *value;
	guint line;
} MpopPerlSetting;

/* Something the reader did not understand (it was skipped, never guessed). */
typedef struct {
	guint line;
	char *what; /* the setting's name, or "" when unknown */
	char *message;
} MpopPerlProblem;

typedef enum {
	MPOP_PERLCONF_FORM_2 = 2, /* Mail-POP3Server 2.x: Perl statements */
	MPOP_PERLCONF_FORM_3 = 3, /* Mail::POP3 3.x: one hash reference */
} MpopPerlConfForm;

typedef struct {
	MpopPerlConfForm form;
	GPtrArray *settings; /* MpopPerlSetting *, in order of first assignment */
	GPtrArray *problems; /* MpopPerlProblem *, in file order */
	GHashTable *index;   /* (private) name -> MpopPerlSetting * */
} MpopPerlConf;

/* Read text (untrusted: any bytes, at most MPOP_PERLCONF_MAX_SIZE). Statements and values it
 * does not understand become problems; an unterminated string, a file that is neither form or
 * nesting deeper than 32 levels is an MPOP_ERROR_CONFIG "name:LINE: ..." error. */
MpopPerlConf *mpop_perlconf_parse(const char *text, gsize len, const char *name, GError **error);

void mpop_perlconf_free(MpopPerlConf *conf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopPerlConf, mpop_perlconf_free)

/* The setting called name (with its sigil in the 2.x form), or NULL. */
const MpopPerlSetting *mpop_perlconf_get(const MpopPerlConf *conf, const char *name);

/* The value of key in a HASH value, or NULL. */
const MpopPerlValue *mpop_perl_hash_get(const MpopPerlValue *hash, const char *key);
