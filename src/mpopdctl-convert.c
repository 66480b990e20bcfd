/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl convert-config: the Perl mpopd's mpopd.conf (read as data by perlconf.c) and its
 * allow/deny file turned into mpopd.conf and a host rules file, with a report of every
 * option that has no equivalent and why. */
#include "mpopdctl-convert.h"
#include "mpopdctl.h"
#include "auth.h"
#include "config-schema.h"
#include "config.h"
#include "hostrules.h"
#include "mailbox-mbox.h"
#include "perlconf.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

typedef struct {
	guint line;
	char *what;
	MpopConvertKind kind;
	char *why;
} RepItem;

typedef struct {
	char *name;
	GString *body;
} OutGroup;

static const char *const group_order[] = {"server",    "access", "mailbox", "auth",
					  "user_auth", "log",	 NULL};

/* ---- the report ---- */

void
mpop_convert_report(MpopConvert *c, guint line, const char *what, MpopConvertKind kind,
		    const char *fmt, ...)
{
	RepItem *r = g_new0(RepItem, 1);
	va_list ap;

	r->line = line;
	r->what = g_strdup(what);
	r->kind = kind;
	va_start(ap, fmt);
	r->why = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_ptr_array_add(c->report, r);
}

static void
rep_item_free(RepItem *r)
{
	g_free(r->what);
	g_free(r->why);
	g_free(r);
}

static gint
rep_cmp(gconstpointer a, gconstpointer b)
{
	const RepItem *x = *(RepItem *const *)a, *y = *(RepItem *const *)b;
	return x->line < y->line ? -1 : x->line > y->line;
}

static char *
report_text(MpopConvert *c)
{
	static const char *const kinds[] = {"note", "dropped", "not converted"};
	GString *s = g_string_new(NULL);

	g_ptr_array_sort(c->report, rep_cmp); /* stable: file order, then the order found */
	for (guint i = 0; i < c->report->len; i++) {
		const RepItem *r = g_ptr_array_index(c->report, i);
		g_autofree char *at = r->line ? g_strdup_printf(":%u", r->line) : g_strdup("");
		g_string_append_printf(s, "%s%s: %s%s%s: %s\n", c->old_path, at, r->what,
				       *r->what ? ": " : "", kinds[r->kind], r->why);
	}
	return g_string_free(s, FALSE);
}

/* ---- the settings ---- */

/* The setting for an option: in the 2.x form "$name" (kind '$') or "%name" (kind '%', also a
 * hash reference in $name); in the 3.x form the key name. Marks it used. */
const MpopPerlSetting *
mpop_convert_opt(MpopConvert *c, const char *name, char kind)
{
	const MpopPerlSetting *s;

	if (c->pc->form == MPOP_PERLCONF_FORM_3) {
		s = mpop_perlconf_get(c->pc, name);
	} else {
		g_autofree char *full = g_strdup_printf("%c%s", kind, name);
		s = mpop_perlconf_get(c->pc, full);
		if (!s && kind == '%') {
			g_autofree char *ref = g_strconcat("$", name, NULL);
			s = mpop_perlconf_get(c->pc, ref);
			if (s && s->value->type != MPOP_PERL_HASH)
				s = NULL;
		}
	}
	if (s)
		g_hash_table_add(c->used, s->name);
	return s;
}

/* A scalar's text, or NULL (undef, or not a scalar: reported). */
const char *
mpop_convert_str(MpopConvert *c, const MpopPerlSetting *s)
{
	if (!s || s->value->type == MPOP_PERL_UNDEF)
		return NULL;
	if (s->value->type != MPOP_PERL_STRING) {
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
				    "expected a string or a number");
		return NULL;
	}
	return s->value->str;
}

/* Perl truth: undef, "" and "0" are false (and numbers equal to 0). */
gboolean
mpop_convert_true(const MpopPerlValue *v)
{
	if (!v || v->type == MPOP_PERL_UNDEF)
		return FALSE;
	if (v->type != MPOP_PERL_STRING)
		return TRUE;
	if (v->number)
		return g_ascii_strtod(v->str, NULL) != 0;
	return v->str[0] != '\0' && strcmp(v->str, "0") != 0;
}

gboolean
mpop_convert_uint(const char *s, guint64 *out)
{
	return s && g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT32, out, NULL);
}

/* ---- the output ---- */

static OutGroup *group(MpopConvert *c, const char *name);

GString *
mpop_convert_group(MpopConvert *c, const char *name)
{
	return group(c, name)->body;
}

static OutGroup *
group(MpopConvert *c, const char *name)
{
	OutGroup *g;

	for (guint i = 0; i < c->groups->len; i++) {
		g = g_ptr_array_index(c->groups, i);
		if (strcmp(g->name, name) == 0)
			return g;
	}
	g = g_new0(OutGroup, 1);
	g->name = g_strdup(name);
	g->body = g_string_new(NULL);
	g_ptr_array_add(c->groups, g);
	return g;
}

static void
out_group_free(OutGroup *g)
{
	g_free(g->name);
	g_string_free(g->body, TRUE);
	g_free(g);
}

/* Key file escapes: \\ \n \t \r, \s for a space at either end (editors strip trailing
 * ones), \; inside a list item. */
static void
append_escaped(GString *out, const char *s, gboolean item)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == ' ' && (i == 0 || i == n - 1))
			g_string_append(out, "\\s");
		else if (ch == '\\')
			g_string_append(out, "\\\\");
		else if (ch == '\n')
			g_string_append(out, "\\n");
		else if (ch == '\t')
			g_string_append(out, "\\t");
		else if (ch == '\r')
			g_string_append(out, "\\r");
		else if (ch == ';' && item)
			g_string_append(out, "\\;");
		else
			g_string_append_c(out, ch);
	}
}

static const Key *
schema_key(const char *grp, const char *key)
{
	gboolean host = g_str_has_prefix(grp, MPOP_CONFIG_HOST_PREFIX);
	const Key *keys = host ? mpop_config_host_keys : mpop_config_keys;
	size_t n = host ? mpop_config_n_host_keys : mpop_config_n_keys;

	for (size_t i = 0; i < n; i++)
		if ((host || strcmp(keys[i].group, grp) == 0) && strcmp(keys[i].key, key) == 0)
			return &keys[i];
	g_assert_not_reached();
}

/* Why value is not acceptable for k (the schema's own checks), or NULL. */
static char *
why_not(const Key *k, const char *const *items)
{
	guint64 v;

	switch (k->type) {
	case KT_UINT:
		if (!g_ascii_string_to_unsigned(items[0], 10, 0, G_MAXUINT64, &v, NULL))
			return g_strdup("is not a number");
		if (v < k->min || v > k->max)
			return g_strdup_printf("is out of range (%u to %u)", k->min, k->max);
		return NULL;
	case KT_BOOL:
		return NULL; /* only ever written as true or false */
	case KT_STRING:
	case KT_ENUM:
		return mpop_config_why_not(k, items[0], FALSE);
	case KT_LIST:
	case KT_FLAGS:
		if (!items[0] && (k->flags & F_NONEMPTY))
			return g_strdup("must not be empty");
		for (guint i = 0; items[i]; i++) {
			char *why = mpop_config_why_not(k, items[i], TRUE);
			if (why)
				return why;
			for (guint j = 0; j < i; j++)
				if (strcmp(items[i], items[j]) == 0)
					return g_strdup("is listed twice");
		}
		return NULL;
	}
	return NULL;
}

static void
comment_line(GString *body, const char *text)
{
	g_autofree char *safe = mpop_escape_excerpt(text, strlen(text), 200);
	g_string_append_printf(body, "# %s\n", safe);
}

/* Write grp's key (a list when list, else items[0]) after a comment naming its source; a
 * value the schema refuses is reported instead. */
gboolean
mpop_convert_emit(MpopConvert *c, const char *grp, const char *key, const char *const *items,
		  gboolean list, const MpopPerlSetting *from, const char *source)
{
	const Key *k = schema_key(grp, key);
	g_autofree char *why = why_not(k, items);
	OutGroup *g;

	if (why) {
		g_autofree char *v = list ? g_strjoinv(";", (char **)items) : g_strdup(items[0]);
		g_autofree char *vv = mpop_escape_excerpt(v, strlen(v), 80);
		mpop_convert_report(c, from ? from->line : 0, from ? from->name : key,
				    MPOP_CONVERT_MANUAL, "[%s] %s=\"%s\" %s", grp, key, vv, why);
		return FALSE;
	}
	g = group(c, grp);
	if (from) {
		g_autofree char *src =
			g_strdup_printf("from %s (line %u)%s%s", from->name, from->line,
					source ? ": " : "", source ? source : "");
		comment_line(g->body, src);
	} else if (source) {
		comment_line(g->body, source);
	}
	g_string_append_printf(g->body, "%s=", key);
	for (guint i = 0; items[i] && (list || i == 0); i++) {
		append_escaped(g->body, items[i], list);
		if (list && items[i + 1])
			g_string_append_c(g->body, ';');
	}
	g_string_append_c(g->body, '\n');
	return TRUE;
}

gboolean
mpop_convert_emit_str(MpopConvert *c, const char *grp, const char *key, const char *value,
		      const MpopPerlSetting *from, const char *source)
{
	const char *items[] = {value, NULL};
	return mpop_convert_emit(c, grp, key, items, FALSE, from, source);
}

static char *
output_text(MpopConvert *c)
{
	GString *s = g_string_new(NULL);

	g_string_append_printf(s,
			       "# mpopd.conf converted by mpopdctl convert-config from %s\n"
			       "# (Perl mpopd %s form). Options without an equivalent are in the "
			       "report, not here.\n",
			       c->old_path, c->pc->form == MPOP_PERLCONF_FORM_3 ? "3.x" : "2.x");
	for (const char *const *o = group_order; *o; o++)
		for (guint i = 0; i < c->groups->len; i++) {
			OutGroup *g = g_ptr_array_index(c->groups, i);
			if (strcmp(g->name, *o) == 0)
				g_string_append_printf(s, "\n[%s]\n%s", g->name, g->body->str);
		}
	for (guint i = 0; i < c->groups->len; i++) {
		OutGroup *g = g_ptr_array_index(c->groups, i);
		if (g_str_has_prefix(g->name, MPOP_CONFIG_HOST_PREFIX))
			g_string_append_printf(s, "\n[%s]\n%s", g->name, g->body->str);
	}
	return g_string_free(s, FALSE);
}

/* ---- [server] and [access] ---- */

static void
convert_server(MpopConvert *c)
{
	const MpopPerlSetting *s;
	const char *v;
	guint64 n;

	s = mpop_convert_opt(c, "port", '$');
	if ((v = mpop_convert_str(c, s))) {
		g_autofree char *listen = NULL;
		if (!mpop_convert_uint(v, &n) || n < 1 || n > 65535) {
			mpop_convert_report(
				c, s->line, s->name, MPOP_CONVERT_NOTE,
				"\"%s\" is not a port: the Perl mpopd used 110, as mpopd does", v);
		} else {
			listen = g_strdup_printf("0.0.0.0:%u", (guint)n);
			if (c->pc->form == MPOP_PERLCONF_FORM_2 && n != 110)
				mpop_convert_report(
					c, s->line, s->name, MPOP_CONVERT_NOTE,
					"2.x listened on 110 (or the port on its command "
					"line) whatever $port said; mpopd listens on %u",
					(guint)n);
			mpop_convert_emit_str(
				c, "server", "listen", listen, s,
				c->pc->form == MPOP_PERLCONF_FORM_2
					? "2.x ignored $port (110 or the command line port)"
					: NULL);
		}
	}
	s = mpop_convert_opt(c, "max_servers", '$');
	if ((v = mpop_convert_str(c, s)))
		mpop_convert_emit_str(c, "server", "max_sessions", v, s, NULL);
	s = mpop_convert_opt(c, "mpopd_pid_file", '$');
	if ((v = mpop_convert_str(c, s)))
		mpop_convert_emit_str(c, "server", "pid_file", v, s, NULL);
	s = mpop_convert_opt(c, "timeout", '$');
	if ((v = mpop_convert_str(c, s))) {
		/* make_sane: 10 when not digits */
		g_autofree char *t = g_strdup_printf(
			"%u", (guint)CLAMP(mpop_convert_uint(v, &n) ? n : 10, 10, 86400));
		if (strcmp(t, v) != 0)
			mpop_convert_report(
				c, s->line, s->name, MPOP_CONVERT_NOTE,
				"\"%s\" became %s seconds (mpopd's range is 10 to 86400)", v, t);
		mpop_convert_emit_str(c, "server", "idle_timeout", t, s,
				      "was per byte; per command now (RFC 1939 asks for 600)");
	}
	s = mpop_convert_opt(c, "greeting", '$');
	if ((v = mpop_convert_str(c, s)))
		mpop_convert_emit_str(c, "server", "greeting", v, s, NULL);
}

/* ---- [mailbox] ---- */

/* make_sane: 2.x forced "From " unless the start was one word, and matched /^START/; 3.x
 * forced "^From " unless it had no white space and matched /START/ anywhere in a line. */
static void
convert_start(MpopConvert *c, const MpopPerlSetting *s, gboolean two)
{
	const char *v = mpop_convert_str(c, s);
	gboolean word;
	const char *sane;
	g_autofree char *re = NULL;

	if (!v)
		return;
	word = g_regex_match_simple(two ? "^\\w+$" : "^\\S+$", v, G_REGEX_RAW, 0);
	sane = word ? v : two ? "From " : "^From ";
	if (strcmp(v, sane) != 0)
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_NOTE,
				    "\"%s\" was replaced by \"%s\" at start (make_sane)", v, sane);
	/* mpopd matches the start from the first character of a line */
	if (two || sane[0] == '^')
		re = two ? g_strconcat("^", sane, NULL) : g_strdup(sane);
	else
		re = g_strdup_printf("^.*(?:%s)", sane);
	if (!two && sane[0] != '^')
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_NOTE,
				    "3.x matched \"%s\" anywhere in a line: written as %s", sane,
				    re);
	mpop_convert_emit_str(c, "mailbox", "message_start", re, s,
			      two ? "2.x matched it at the start of a line" : NULL);
}

/* make_sane forced the end pattern (2.x "^\s+$", 3.x "^\s*$") unless it had no white space;
 * both matched it anywhere in a line, mpopd against the whole line. */
static void
convert_end(MpopConvert *c, const MpopPerlSetting *e, gboolean two)
{
	const char *v = mpop_convert_str(c, e);
	const char *sane;
	g_autofree char *re = NULL;

	if (!v)
		return;
	sane = g_regex_match_simple("^\\S+$", v, G_REGEX_RAW, 0) ? v : two ? "^\\s+$" : "^\\s*$";
	if (strcmp(v, sane) != 0)
		mpop_convert_report(c, e->line, e->name, MPOP_CONVERT_NOTE,
				    "\"%s\" was replaced by \"%s\" at start (make_sane)", v, sane);
	/* 2.x matched with the newline still on the line: ^\s+$ is a blank line, as ^\s*$ */
	if (strcmp(sane, "^\\s+$") == 0 || strcmp(sane, "^\\s*$") == 0) {
		re = g_strdup("^\\s*$");
	} else if (mpop_mbox_end_rule_note(sane) == NULL) {
		re = g_strdup(sane);
	} else {
		re = g_strdup_printf("^.*(?:%s).*$", sane);
		mpop_convert_report(
			c, e->line, e->name, MPOP_CONVERT_NOTE,
			"the Perl mpopd matched \"%s\" anywhere in a line: written as %s "
			"(mpopd matches the whole line)",
			sane, re);
	}
	mpop_convert_emit_str(c, "mailbox", "message_end", re, e,
			      strcmp(re, sane) != 0 && two && sane[0] == '^'
				      ? "2.x matched the line with its newline"
				      : NULL);
}

static void
convert_format(MpopConvert *c)
{
	const MpopPerlSetting *s;

	if (c->pc->form == MPOP_PERLCONF_FORM_2) {
		s = mpop_convert_opt(c, "use_maildir", '$');
		if (s)
			mpop_convert_emit_str(c, "mailbox", "format",
					      mpop_convert_true(s->value) ? "maildir" : "mbox", s,
					      NULL);
		else
			mpop_convert_emit_str(
				c, "mailbox", "format", "mbox", NULL,
				"$use_maildir not set: the Perl mpopd served mbox files");
		return;
	}
	s = mpop_convert_opt(c, "mailbox_class", '$');
	if (s && s->value->type == MPOP_PERL_STRING) {
		const char *v = s->value->str;
		if (strcmp(v, "Mail::POP3::Folder::maildir") == 0)
			mpop_convert_emit_str(c, "mailbox", "format", "maildir", s, NULL);
		else if (g_str_has_prefix(v, "Mail::POP3::Folder::mbox"))
			mpop_convert_emit_str(c, "mailbox", "format", "mbox", s, NULL);
		else
			mpop_convert_report(
				c, s->line, s->name, MPOP_CONVERT_MANUAL,
				"the mailbox class %s has no equivalent (mpopd serves Maildir and "
				"mbox)",
				v);
	} else {
		mpop_convert_emit_str(c, "mailbox", "format", "mbox", NULL,
				      "mailbox_class not set: mbox, the class of the Perl samples");
	}
}

/* The Perl mpopd took a gid; mpopd names the group, and a gid's name differs between
 * systems (12 was mail on Red Hat, is man on Debian), so a number is left to the admin. */
static void
convert_mailgroup(MpopConvert *c)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "mailgroup", '$');
	const char *v = mpop_convert_str(c, s);
	guint64 gid;

	if (!v)
		return;
	if (mpop_convert_uint(v, &gid))
		mpop_convert_report(
			c, s->line, s->name, MPOP_CONVERT_MANUAL,
			"gid %s: set [mailbox] mail_privileged_group to the name of the group "
			"that owns the mail spool (mpopd's default: mail)",
			v);
	else
		mpop_convert_emit_str(c, "mailbox", "mail_privileged_group", v, s, NULL);
}

static void
convert_mailbox(MpopConvert *c)
{
	const MpopPerlSetting *s;
	const char *v;
	guint64 n;

	convert_format(c);
	s = mpop_convert_opt(c, "mail_spool_dir", '$');
	if ((v = mpop_convert_str(c, s)))
		mpop_convert_emit_str(c, "mailbox", "mail_spool_dir", v, s, NULL);
	convert_start(c, mpop_convert_opt(c, "message_start", '$'),
		      c->pc->form == MPOP_PERLCONF_FORM_2);
	convert_end(c, mpop_convert_opt(c, "message_end", '$'),
		    c->pc->form == MPOP_PERLCONF_FORM_2);
	s = mpop_convert_opt(c, "retry_on_lock", '$');
	if ((v = mpop_convert_str(c, s))) {
		/* 2.x tried until the counter reached the value: n - 1 retries; 3.x n */
		if (!mpop_convert_uint(v, &n)) {
			mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
					    "\"%s\" is not a number", v);
		} else {
			g_autofree char *t = g_strdup_printf(
				"%u",
				(guint)MIN(c->pc->form == MPOP_PERLCONF_FORM_2 && n ? n - 1 : n,
					   1000));
			mpop_convert_emit_str(
				c, "mailbox", "lock_retries", t, s,
				c->pc->form == MPOP_PERLCONF_FORM_2
					? "2.x gave up after value - 1 retries, 1 s apart"
					: NULL);
		}
	}
	convert_mailgroup(c);
}

/* ---- [log] ---- */

static void
convert_log(MpopConvert *c)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "debug", '$');
	g_autoptr(GPtrArray) users = g_ptr_array_new();
	guint64 level;

	if (s)
		mpop_convert_emit_str(
			c, "log", "level", mpop_convert_true(s->value) ? "info" : "notice", s,
			mpop_convert_true(s->value) ? "connections are logged at info" : NULL);
	s = mpop_convert_opt(c, "user_log", '%');
	if (s && s->value->type != MPOP_PERL_HASH) {
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL, "expected a hash");
	} else if (s) {
		for (guint i = 0; i < s->value->keys->len; i++) {
			const char *user = g_ptr_array_index(s->value->keys, i);
			const MpopPerlValue *v = g_ptr_array_index(s->value->items, i);
			g_autofree char *what = g_strdup_printf("%s{%s}", s->name, user);

			if (v->type != MPOP_PERL_STRING || !mpop_convert_uint(v->str, &level) ||
			    level > 2)
				mpop_convert_report(c, v->line, what, MPOP_CONVERT_MANUAL,
						    "not a log level 0 to 2");
			else if (level == 0 || (level == 1 && c->pc->form == MPOP_PERLCONF_FORM_3))
				mpop_convert_report(c, v->line, what, MPOP_CONVERT_DROPPED,
						    "level %u logged nothing in the Perl mpopd %s",
						    (guint)level,
						    c->pc->form == MPOP_PERLCONF_FORM_3 ? "3.x"
											: "2.x");
			else
				g_ptr_array_add(users, (gpointer)user);
		}
		g_ptr_array_add(users, NULL);
		if (users->len > 1)
			mpop_convert_emit(c, "log", "users", (const char *const *)users->pdata,
					  TRUE, s, "logged at debug detail, to the journal");
	}
}

/* ---- options without an equivalent ---- */

typedef struct {
	const char *name;
	char kind;
	guint forms; /* FORM_2, FORM_3: the forms it is read from */
	const char *why;
} Drop;

#define FORM_2 (1u << MPOP_PERLCONF_FORM_2)
#define FORM_3 (1u << MPOP_PERLCONF_FORM_3)
#define BOTH (FORM_2 | FORM_3)
#define IGNORED_BY_3 "3.x ignored it"

static const Drop drops[] = {
	{"mpopd_conf_version", '$', BOTH, "the version tag of the Perl file"},
	{"fork_alert", '$', BOTH, "a failed fork is logged to the journal"},
	{"parse_to_disk", '$', FORM_3, IGNORED_BY_3 " (mailbox_class decided)"},
	{"parse_to_disk", '$', FORM_2,
	 "both its modes held the mailbox locked for the whole session; mpopd's default "
	 "mbox_mode=snapshot does not (session-lock keeps the lock as RAM mode did, spool copies "
	 "the mailbox as disk mode did)"},
	{"mpopd_spool", '$', BOTH,
	 "the temporary files of parse_to_disk (spool_dir with mbox_mode=spool)"},
	{"status", '$', BOTH, "mpopd never writes Status: headers into the mail"},
	{"path_to_homedir", '$', BOTH,
	 "2.x used /home whatever it said; mpopd takes the home directory from the passwd entry "
	 "(%h)"},
	{"path_to_maildir", '$', BOTH, "never used by the Perl mpopd"},
	{"mpopd_failed_mail", '$', FORM_3, IGNORED_BY_3},
	{"mpopd_failed_mail", '$', FORM_2,
	 "UPDATE replaces the mbox atomically and never needs a backup directory"},
	{"reject_bogus_user", '$', BOTH,
	 "an unknown user is answered like a wrong password, after the same delay"},
	{"passsecret", '$', BOTH, "mpopd never logs a password"},
	{"debug_log", '$', BOTH, "records go to the journal or syslog ([log] target)"},
	{"user_log_dir", '$', BOTH, "records go to the journal or syslog ([log] target)"},
	{"debug", '%', FORM_2, "mpopd keeps no temporary files and always applies DELE at QUIT"},
	{"user_debug", '$', BOTH, "mpopd keeps no temporary files and always applies DELE at QUIT"},
	{"forwardto", '%', FORM_2, "mpopd does not add a Received header"},
	{"addreceived", '$', BOTH, "mpopd does not add a Received header"},
	{"receivedfrom", '$', BOTH, "mpopd does not add a Received header"},
	{"timezone", '$', BOTH, "mpopd does not add a Received header"},
	{"connection_class", '$', BOTH, "the host checks are built in ([access])"},
	{"use_maildir", '$', FORM_3, IGNORED_BY_3 " (mailbox_class decided)"},
	{"forwardto", '$', FORM_3, IGNORED_BY_3 " (addreceived decided)"},
};

static void
convert_drops(MpopConvert *c)
{
	for (size_t i = 0; i < G_N_ELEMENTS(drops); i++) {
		const MpopPerlSetting *s;

		/* 3.x keys have no sigil: %debug is user_debug there */
		if (!(drops[i].forms & (1u << (unsigned)c->pc->form)))
			continue;
		if (!(s = mpop_convert_opt(c, drops[i].name, drops[i].kind)))
			continue;
		if (strcmp(drops[i].name, "connection_class") == 0 &&
		    (s->value->type != MPOP_PERL_STRING ||
		     strcmp(s->value->str, "Mail::POP3::Security::Connection") != 0))
			mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
					    "a connection class of its own: Perl code");
		else
			mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_DROPPED, "%s",
					    drops[i].why);
	}
}

/* Everything not read yet: code references, anything else unknown, and what the reader did
 * not understand. */
static void
convert_rest(MpopConvert *c)
{
	for (guint i = 0; i < c->pc->settings->len; i++) {
		const MpopPerlSetting *s = g_ptr_array_index(c->pc->settings, i);
		if (g_hash_table_contains(c->used, s->name))
			continue;
		if (s->value->type == MPOP_PERL_CODE)
			mpop_convert_report(
				c, s->line, s->name, MPOP_CONVERT_MANUAL, "a code reference%s: %s",
				strcmp(s->name, "user_check") == 0 ||
						strcmp(s->name, "password_check") == 0
					? " (choose [auth] default: check_*_system is the system "
					  "backend, check_password_pam pam, check_*_vdomain "
					  "hostname)"
					: "",
				s->value->str);
		else
			mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
					    "not an option of the Perl mpopd");
	}
	for (guint i = 0; i < c->pc->problems->len; i++) {
		const MpopPerlProblem *p = g_ptr_array_index(c->pc->problems, i);
		mpop_convert_report(c, p->line, p->what, MPOP_CONVERT_MANUAL, "%s", p->message);
	}
	/* a code reference in an option that was read is reported where it was read */
}

/* ---- the verb ---- */

static gboolean
validate(MpopConvert *c, const char *text, const char *name, GError **error)
{
	g_autoptr(MpopConfig) cfg = mpop_config_load_data(text, strlen(text), name, error);

	if (!cfg || !mpop_auth_check_config(cfg, error))
		return FALSE;
	/* what --check-config would warn about */
	for (guint i = 0; cfg->warnings && i < cfg->warnings->len; i++)
		mpop_convert_report(c, 0, "", MPOP_CONVERT_NOTE, "mpopd --check-config warns: %s",
				    (const char *)g_ptr_array_index(cfg->warnings, i));
	if (c->hosts) {
		g_autoptr(MpopHostRules) r =
			mpop_hostrules_parse(c->hosts->str, c->hosts->len, c->hosts_out, error);
		if (!r)
			return FALSE;
	}
	return TRUE;
}

static gboolean
write_out(const char *path, const char *text, GError **error)
{
	if (!path || strcmp(path, "-") == 0) {
		fputs(text, stdout);
		return fflush(stdout) == 0 ||
		       (g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
				    "cannot write standard output: %s", g_strerror(errno)),
			FALSE);
	}
	return g_file_set_contents_full(path, text, -1, G_FILE_SET_CONTENTS_CONSISTENT, 0644,
					error);
}

static void
conv_clear(MpopConvert *c)
{
	g_clear_pointer(&c->used, g_hash_table_unref);
	g_clear_pointer(&c->report, g_ptr_array_unref);
	g_clear_pointer(&c->groups, g_ptr_array_unref);
	if (c->hosts)
		g_string_free(c->hosts, TRUE);
}

static void
convert_usage(FILE *f)
{
	fprintf(f,
		"Usage: mpopdctl convert-config [-o OUT] [--report FILE] [--hosts FILE]\n"
		"                               [--root DIR] OLD.conf\n"
		"Reads the Perl mpopd's configuration (2.x or 3.x) as data and writes the\n"
		"equivalent mpopd.conf (standard output without -o); every option without an\n"
		"equivalent is listed on standard error (or in --report FILE). --hosts FILE\n"
		"also converts the $hosts_allow_deny file; --root DIR reads the files the old\n"
		"configuration names below DIR. Exit 0: converted; 3: converted, but the report\n"
		"lists options that need you; 1: not converted; 2: usage.\n");
}

int
mpop_ctl_convert_config(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'}, {"report", required_argument, NULL, 'r'},
		{"hosts", required_argument, NULL, 'H'},  {"root", required_argument, NULL, 'R'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	const char *out = NULL, *rep = NULL;
	g_autoptr(GError) e = NULL;
	g_autofree char *text = NULL, *conf = NULL, *reptext = NULL;
	g_autoptr(MpopPerlConf) pc = NULL;
	MpopConvert c = {.root = ""};
	gsize len;
	int opt_c, status = 0;

	optind = 0; /* glibc: 0 starts a new scan (mpopdctl's own stopped at the verb) */
	while ((opt_c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (opt_c) {
		case 'o':
			out = optarg;
			break;
		case 'r':
			rep = optarg;
			break;
		case 'H':
			c.hosts_out = optarg;
			break;
		case 'R':
			c.root = optarg;
			break;
		case 'h':
			convert_usage(stdout);
			return 0;
		default:
			convert_usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc) {
		convert_usage(stderr);
		return 2;
	}
	c.old_path = argv[optind];
	if (!g_file_get_contents(c.old_path, &text, &len, &e) ||
	    !(pc = mpop_perlconf_parse(text, len, c.old_path, &e))) {
		fprintf(stderr, "mpopdctl: %s\n", e->message);
		return 1;
	}
	c.pc = pc;
	c.used = g_hash_table_new(g_str_hash, g_str_equal);
	c.report = g_ptr_array_new_with_free_func((GDestroyNotify)rep_item_free);
	c.groups = g_ptr_array_new_with_free_func((GDestroyNotify)out_group_free);
	convert_server(&c);
	mpop_convert_access(&c);
	convert_mailbox(&c);
	mpop_convert_auth(&c);
	convert_log(&c);
	convert_drops(&c);
	convert_rest(&c);
	conf = output_text(&c);
	if (validate(&c, conf, out ? out : "converted configuration", &e))
		reptext = report_text(&c);
	for (guint i = 0; i < c.report->len; i++)
		if (((RepItem *)g_ptr_array_index(c.report, i))->kind == MPOP_CONVERT_MANUAL)
			status = 3;
	if (!reptext || (c.hosts && !write_out(c.hosts_out, c.hosts->str, &e)) ||
	    !write_out(out, conf, &e) || (rep && !write_out(rep, reptext, &e))) {
		fprintf(stderr, "mpopdctl: %s\n", e->message);
		conv_clear(&c);
		return 1;
	}
	if (!rep)
		fputs(reptext, stderr);
	conv_clear(&c);
	return status;
}
