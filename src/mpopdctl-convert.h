/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The pieces of mpopdctl convert-config (private to mpopdctl-convert*.c): the conversion's
 * state, the report, the Perl settings it reads and the keys it writes. */
#pragma once

#include "perlconf.h"

#include <glib.h>

typedef enum {
	MPOP_CONVERT_NOTE,    /* converted, with a difference worth knowing */
	MPOP_CONVERT_DROPPED, /* no equivalent, on purpose */
	MPOP_CONVERT_MANUAL,  /* not converted: the admin has to decide (exit status 3) */
} MpopConvertKind;

typedef struct {
	const char *old_path;
	const char *root; /* prefix for the files the old configuration names; "" none */
	const char *hosts_out;
	MpopPerlConf *pc;
	GHashTable *used;  /* settings consumed */
	GPtrArray *report; /* RepItem * */
	GPtrArray *groups; /* OutGroup * */
	GString *hosts;	   /* the converted rules file, when --hosts */
} MpopConvert;

/* Add a line to the report: what (an option, or a file and line) at line of the old file. */
void mpop_convert_report(MpopConvert *c, guint line, const char *what, MpopConvertKind kind,
			 const char *fmt, ...) G_GNUC_PRINTF(5, 6);

/* The setting for an option: in the 2.x form "$name" (kind '$') or "%name" (kind '%', also a
 * hash reference in $name); in the 3.x form the key name. Marks it used; NULL when not set. */
const MpopPerlSetting *mpop_convert_opt(MpopConvert *c, const char *name, char kind);

/* A scalar setting's text; NULL when s is NULL or undef, or not a scalar (reported). */
const char *mpop_convert_str(MpopConvert *c, const MpopPerlSetting *s);

/* Perl truth: undef, "", "0" and numbers equal to 0 are false. */
gboolean mpop_convert_true(const MpopPerlValue *v);

/* A decimal number up to G_MAXUINT32 (s may be NULL). */
gboolean mpop_convert_uint(const char *s, guint64 *out);

/* Write [grp] key (a list when list, else items[0]) under a comment naming from (or source);
 * a value the schema refuses is reported instead. Returns whether it was written. */
gboolean mpop_convert_emit(MpopConvert *c, const char *grp, const char *key,
			   const char *const *items, gboolean list, const MpopPerlSetting *from,
			   const char *source);
gboolean mpop_convert_emit_str(MpopConvert *c, const char *grp, const char *key, const char *value,
			       const MpopPerlSetting *from, const char *source);

/* The text of group name, created (in its place in the output) when new. */
GString *mpop_convert_group(MpopConvert *c, const char *name);

/* [access]: the rules file (to c->hosts with --hosts), trusted networks, allow_non_fqdn. */
void mpop_convert_access(MpopConvert *c);

/* [auth], [user_auth] and the [host:NAME] groups of the virtual domains. */
void mpop_convert_auth(MpopConvert *c);
