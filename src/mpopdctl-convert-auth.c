/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl convert-config, [auth]: the Perl mpopd's auth types as backend chains ([auth] default,
 * [user_auth]) and its virtual domains as [host:NAME] groups. */
#include "mpopdctl-convert.h"
#include "config-schema.h"
#include "util.h"

#include <string.h>

/* ---- [auth], [user_auth] and [host:NAME] ---- */

typedef struct {
	gboolean hosts;	     /* a chain uses hostname or email */
	gboolean needs_rdns; /* types 2 and 4: hosts chosen by the client's name */
	gboolean plugins;    /* types 6 and 7 */
} AuthUse;

/* The chain for a Perl auth type (NULL for 6 and 7, which ran Perl code). */
static char **
chain_for_type(guint64 type, gboolean pam, AuthUse *use)
{
	const char *sys = pam ? "pam" : "system";
	const char *vhost = type == 2 || type == 4 ? "hostname" : "email";
	const char *chain[3] = {NULL};

	switch (type) {
	case 1:
		chain[0] = sys;
		break;
	case 2:
	case 3:
		chain[0] = sys;
		chain[1] = vhost;
		break;
	case 4:
	case 5:
		chain[0] = vhost;
		break;
	default:
		use->plugins = TRUE;
		return NULL;
	}
	if (type > 1) {
		use->hosts = TRUE;
		use->needs_rdns |= type == 2 || type == 4;
	}
	return g_strdupv((char **)chain);
}

static const char *
type_why(guint64 type)
{
	return type == 6 ? "auth type 6 read its user list from a path made of the client's "
			   "reverse DNS and checked passwords with Perl code ($password_plugin): "
			   "set [auth] central_userlist and central_spool and use the central "
			   "backend"
			 : "auth type 7 ran Perl code ($username_plugin): write a checkpassword "
			   "program and use the plugin backend ([auth] plugin)";
}

static void
convert_user_auth(MpopConvert *c, gboolean pam, AuthUse *use)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "user_auth", '%');

	if (!s)
		return;
	if (s->value->type != MPOP_PERL_HASH) {
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL, "expected a hash");
		return;
	}
	for (guint i = 0; i < s->value->keys->len; i++) {
		const char *user = g_ptr_array_index(s->value->keys, i);
		const MpopPerlValue *v = g_ptr_array_index(s->value->items, i);
		g_autofree char *what = g_strdup_printf("%s{%s}", s->name, user);
		g_auto(GStrv) chain = NULL;
		guint64 type;
		GString *g;

		if (v->type != MPOP_PERL_STRING || !mpop_convert_uint(v->str, &type) || type > 7) {
			mpop_convert_report(c, v->line, what, MPOP_CONVERT_MANUAL,
					    "not an auth type 1 to 7");
			continue;
		}
		if (type == 0) {
			mpop_convert_report(c, v->line, what, MPOP_CONVERT_DROPPED,
					    "0 meant $auth_type");
			continue;
		}
		if (!(chain = chain_for_type(type, pam, use))) {
			mpop_convert_report(c, v->line, what, MPOP_CONVERT_MANUAL,
					    "%s; %s uses [auth] default now", type_why(type), user);
			continue;
		}
		if (mpop_config_check_user(user) || mpop_config_has_control(user) ||
		    strpbrk(user, "=[]#") || user[0] == '#') {
			mpop_convert_report(c, v->line, what, MPOP_CONVERT_MANUAL,
					    "not a user name a [user_auth] key can hold");
			continue;
		}
		g = mpop_convert_group(c, "user_auth");
		g_string_append_printf(g, "# from %s (line %u): auth type %u\n", what, v->line,
				       (guint)type);
		g_string_append_printf(g, "%s=", user);
		for (char **b = chain; *b; b++)
			g_string_append_printf(g, "%s%s", *b, b[1] ? ";" : "");
		g_string_append_c(g, '\n');
	}
}

static gint
str_cmp(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted subdirectory names of dir (under the root), or NULL. */
static GPtrArray *
list_dirs(MpopConvert *c, const char *dir)
{
	g_autofree char *full = g_strconcat(c->root, dir, NULL);
	GDir *d = g_dir_open(full, 0, NULL);
	GPtrArray *out;
	const char *n;

	if (!d)
		return NULL;
	out = g_ptr_array_new_with_free_func(g_free);
	while ((n = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(full, n, NULL);
		if (n[0] != '.' && g_file_test(p, G_FILE_TEST_IS_DIR))
			g_ptr_array_add(out, g_strdup(n));
	}
	g_dir_close(d);
	g_ptr_array_sort(out, str_cmp);
	return out;
}

static char *
pattern_escape(const char *path)
{
	g_auto(GStrv) parts = g_strsplit(path, "%", -1);
	return g_strjoinv("%%", parts);
}

/* One [host:DOMAIN] for each <host_mail_path>/<initial>/<domain>/<userlist>. */
static void
convert_hosts(MpopConvert *c)
{
	const MpopPerlSetting *hs = mpop_convert_opt(c, "host_mail_path", '$');
	const MpopPerlSetting *us = mpop_convert_opt(c, "userlist", '$');
	const MpopPerlSetting *sw = mpop_convert_opt(c, "switch", '$');
	const char *hmp = mpop_convert_str(c, hs), *ul = mpop_convert_str(c, us);
	g_autoptr(GPtrArray) initials = NULL;
	g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	guint found = 0;

	if (!hmp || !ul || !*ul || strchr(ul, '/')) {
		mpop_convert_report(
			c, hs ? hs->line : 0, "$host_mail_path", MPOP_CONVERT_MANUAL,
			"virtual domains are used but $host_mail_path or $userlist is not set: "
			"add [host:NAME] groups by hand");
		return;
	}
	initials = list_dirs(c, hmp);
	for (guint i = 0; initials && i < initials->len; i++) {
		g_autofree char *idir = g_build_filename(hmp, initials->pdata[i], NULL);
		g_autoptr(GPtrArray) domains = list_dirs(c, idir);

		for (guint j = 0; domains && j < domains->len; j++) {
			const char *dom = domains->pdata[j];
			g_autofree char *ddir = g_build_filename(idir, dom, NULL);
			g_autofree char *list = g_build_filename(ddir, ul, NULL);
			g_autofree char *full = g_strconcat(c->root, list, NULL);
			g_autofree char *name = g_ascii_strdown(dom, -1);
			g_autofree char *grp = NULL, *loc = NULL, *esc = NULL, *src = NULL;

			if (!g_file_test(full, G_FILE_TEST_IS_REGULAR))
				continue;
			if (mpop_config_check_host_name(name) ||
			    g_hash_table_contains(seen, name)) {
				mpop_convert_report(c, hs->line, list, MPOP_CONVERT_MANUAL,
						    "\"%s\" is not a DNS name or is there twice: "
						    "no [host:NAME]",
						    dom);
				continue;
			}
			g_hash_table_add(seen, g_strdup(name));
			grp = g_strconcat(MPOP_CONFIG_HOST_PREFIX, name, NULL);
			esc = pattern_escape(ddir);
			if (sw && mpop_convert_true(sw->value))
				loc = g_strdup("%s/%n");
			else
				loc = g_strconcat(esc, "/%n", NULL);
			src = g_strdup_printf("the virtual domain %s", ddir);
			if (mpop_convert_emit_str(c, grp, "userlist", list, hs, src) &&
			    !mpop_convert_emit_str(
				    c, grp, "location", loc,
				    sw && mpop_convert_true(sw->value) ? sw : hs,
				    sw && mpop_convert_true(sw->value)
					    ? "the mailboxes are in $mail_spool_dir (%s)"
					    : NULL))
				mpop_convert_report(c, hs->line, list, MPOP_CONVERT_MANUAL,
						    "no location for %s", dom);
			found++;
		}
	}
	if (!found)
		mpop_convert_report(c, hs->line, hs->name, MPOP_CONVERT_MANUAL,
				    "no %s/?/DOMAIN/%s found%s%s: add [host:NAME] groups by hand",
				    hmp, ul, *c->root ? " under " : "", c->root);
}

static gboolean
chain_has(char **chain, const char *name)
{
	return chain && g_strv_contains((const char *const *)chain, name);
}

static void
convert_auth_2(MpopConvert *c)
{
	const MpopPerlSetting *at = mpop_convert_opt(c, "auth_type", '$');
	const MpopPerlSetting *pam = mpop_convert_opt(c, "use_pam", '$');
	const MpopPerlSetting *md5 = mpop_convert_opt(c, "md5_no_pam", '$');
	const MpopPerlSetting *shadow = mpop_convert_opt(c, "shadow", '$');
	gboolean use_pam = pam && mpop_convert_true(pam->value);
	const char *v = mpop_convert_str(c, at), *sh;
	g_auto(GStrv) chain = NULL;
	AuthUse use = {0};
	guint64 type = 1;

	if (md5 && mpop_convert_true(md5->value)) {
		mpop_convert_report(
			c, md5->line, md5->name, MPOP_CONVERT_DROPPED,
			"libxcrypt checks $1$ (MD5) hashes itself%s",
			use_pam ? "; $md5_no_pam came before $use_pam, which was not used" : "");
		use_pam = FALSE;
	} else if (md5) {
		mpop_convert_report(c, md5->line, md5->name, MPOP_CONVERT_DROPPED, "off");
	}
	/* 2.x: any other value refused every user without a %user_auth entry */
	if (!v) {
		if (!at || at->value->type == MPOP_PERL_UNDEF)
			mpop_convert_report(c, at ? at->line : 0, "$auth_type", MPOP_CONVERT_MANUAL,
					    "not set: the Perl mpopd refused every user without a "
					    "%%user_auth entry; [auth] default is left at mpopd's "
					    "default");
		type = 0;
	} else if (!mpop_convert_uint(v, &type) || type < 1 || type > 7) {
		mpop_convert_report(
			c, at->line, at->name, MPOP_CONVERT_MANUAL,
			"\"%s\" is not an auth type 1 to 7: the Perl mpopd refused every "
			"user without a %%user_auth entry",
			v);
		type = 0;
	}
	if (type && !(chain = chain_for_type(type, use_pam, &use)))
		mpop_convert_report(c, at->line, at->name, MPOP_CONVERT_MANUAL,
				    "%s; [auth] default is left at mpopd's default",
				    type_why(type));
	if (chain) {
		mpop_convert_emit(c, "auth", "default", (const char *const *)chain, TRUE, at, NULL);
		if (use_pam && type > 1)
			mpop_convert_report(
				c, pam->line, pam->name, MPOP_CONVERT_NOTE,
				"the Perl mpopd checked virtual users' passwords with PAM too; "
				"mpopd checks the user list's hash");
	}
	convert_user_auth(c, use_pam, &use);
	if (pam && !use_pam && !(md5 && mpop_convert_true(md5->value)))
		mpop_convert_report(c, pam->line, pam->name, MPOP_CONVERT_DROPPED, "off");
	else if (pam && use_pam && !chain_has(chain, "pam"))
		mpop_convert_report(c, pam->line, pam->name, MPOP_CONVERT_NOTE,
				    "PAM is used in [user_auth] chains only");
	if ((sh = mpop_convert_str(c, shadow))) {
		if (strcmp(sh, "/etc/shadow") == 0)
			mpop_convert_report(c, shadow->line, shadow->name, MPOP_CONVERT_DROPPED,
					    "the system backend reads /etc/shadow through NSS");
		else
			mpop_convert_report(c, shadow->line, shadow->name, MPOP_CONVERT_MANUAL,
					    "%s is not /etc/shadow: make it a user list "
					    "(name:hash:uid) for the "
					    "userlist backend",
					    sh);
	}
	if (use.hosts)
		convert_hosts(c);
	else {
		const char *const unused[] = {"host_mail_path", "userlist", "switch", NULL};
		for (const char *const *u = unused; *u; u++) {
			const MpopPerlSetting *s = mpop_convert_opt(c, *u, '$');
			if (s)
				mpop_convert_report(
					c, s->line, s->name, MPOP_CONVERT_DROPPED,
					"used only by auth types 2 to 6 (virtual domains)");
		}
	}
	if (use.needs_rdns)
		mpop_convert_report(
			c, at ? at->line : 0, "$auth_type", MPOP_CONVERT_NOTE,
			"types 2 and 4 chose the virtual domain by the client's reverse DNS (a "
			"lookup that never found one in 2.x); mpopd chooses the [host:NAME] by "
			"the TLS server name or by its addresses= (the local address)");
	for (const char *const *p =
		     (const char *const[]){"username_plugin", "password_plugin", NULL};
	     *p; p++) {
		const MpopPerlSetting *s = mpop_convert_opt(c, *p, '$');
		if (s)
			mpop_convert_report(
				c, s->line, s->name,
				use.plugins ? MPOP_CONVERT_MANUAL : MPOP_CONVERT_DROPPED,
				use.plugins ? "Perl code: mpopd runs a checkpassword program "
					      "instead ([auth] plugin)"
					    : "used only by auth types 6 and 7");
	}
}

void
mpop_convert_auth(MpopConvert *c)
{
	const MpopPerlSetting *s;
	const char *v;

	if (c->pc->form == MPOP_PERLCONF_FORM_2) {
		convert_auth_2(c);
	} else {
		static const char *const unread[] = {"auth_type", "use_pam", "md5_no_pam",
						     "user_auth", "switch",  NULL};
		for (const char *const *u = unread; *u; u++)
			if ((s = mpop_convert_opt(c, *u, strcmp(*u, "user_auth") == 0 ? '%' : '$')))
				mpop_convert_report(
					c, s->line, s->name, MPOP_CONVERT_DROPPED,
					"3.x did not read it (user_check and password_check "
					"decided)");
		for (const char *const *u =
			     (const char *const[]){"shadow", "userlist", "host_mail_path", NULL};
		     *u; u++)
			if ((s = mpop_convert_opt(c, *u, '$')))
				mpop_convert_report(
					c, s->line, s->name, MPOP_CONVERT_DROPPED,
					"read only by the helpers user_check and password_check "
					"called");
	}
	s = mpop_convert_opt(c, "mpopd_pam_service", '$');
	if ((v = mpop_convert_str(c, s)))
		mpop_convert_emit_str(c, "auth", "pam_service", v, s, NULL);
}
