/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl convert-config, [access]: the Perl mpopd's allow/deny and trusted files as host rules
 * and trusted_networks, and $allow_non_fqdn. */
#include "mpopdctl-convert.h"
#include "hostrules.h"
#include "util.h"

#include <string.h>

/* ---- files the old configuration names ---- */

static char *
read_old_file(MpopConvert *c, const char *path, GError **error)
{
	g_autofree char *full = g_strconcat(c->root, path, NULL);
	char *text = NULL;
	gsize len;

	if (!g_file_get_contents(full, &text, &len, error))
		return NULL;
	if (memchr(text, '\0', len)) {
		g_free(text);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: contains a NUL byte", full);
		return NULL;
	}
	return text;
}

/* The Perl rule text (whitespace and '*' removed) as an mpopd peer, or NULL. *out_ipv4 tells
 * an address rule (see ipv4_note()); *out_note how a name rule's meaning changed. The Perl
 * mpopd matched a name rule as /^RULE$/i. */
static char *
convert_peer(const char *peer, gboolean *out_ipv4, char **out_note)
{
	*out_note = NULL;
	*out_ipv4 = FALSE;
	if (*peer && peer[strspn(peer, "0123456789.")] == '\0') {
		g_auto(GStrv) parts = g_strsplit(peer, ".", -1);
		guint n = g_strv_length(parts), full = n;
		gboolean dot = g_str_has_suffix(peer, ".");
		guint64 octet;
		MpopNet net;
		char *out;

		if (dot)
			full = n - 1;
		if (full == 0 || full > 4 || (dot && full == 4))
			return NULL;
		for (guint i = 0; i < full; i++)
			if (!g_ascii_string_to_unsigned(parts[i], 10, 0, 255, &octet, NULL))
				return NULL;
		/* "10.1" meant the prefix 10.1. (it matched 10.1.x.x and more) */
		out = full == 4 || dot ? g_strdup(peer) : g_strconcat(peer, ".", NULL);
		if (mpop_net_parse(out, &net) != NULL) {
			g_free(out);
			return NULL;
		}
		*out_ipv4 = TRUE;
		return out;
	}
	{
		g_autofree char *lower = g_ascii_strdown(peer, -1);
		const char *name = lower[0] == '.' ? lower + 1 : lower;

		if (!mpop_dns_name_valid(name, FALSE))
			return NULL;
		if (lower[0] == '.')
			*out_note = g_strdup_printf("\"%s\": the Perl mpopd read it as /^%s$/ (one "
						    "character, then the name); mpopd matches "
						    "every name below %s",
						    peer, peer, name);
		return g_steal_pointer(&lower);
	}
}

/* The Perl mpopd matched an address rule as an unanchored regular expression on the dotted
 * address, '.' being any character: 10.0.0.1 also matched 10.0.0.15, 10.8. also 10.80.0.1. */
static void
ipv4_note(MpopConvert *c, const MpopPerlSetting *s, const char *path, const GString *lines)
{
	if (lines->len)
		mpop_convert_report(
			c, s->line, path, MPOP_CONVERT_NOTE,
			"lines %s: the Perl mpopd matched an address or prefix as a regular "
			"expression on the start of the dotted address ('.' any character: "
			"10.0.0.1 also matched 10.0.0.15, 10.8. also 10.80.0.1); mpopd matches "
			"whole numbers",
			lines->str);
}

static void
add_line_number(GString *lines, guint n)
{
	g_string_append_printf(lines, "%s%u", lines->len ? ", " : "", n);
}

static char *
strip_peer(const char *s)
{
	GString *out = g_string_new(NULL);

	for (; *s; s++)
		if (!g_ascii_isspace(*s) && *s != '*')
			g_string_append_c(out, *s);
	return g_string_free(out, FALSE);
}

/* One line of the allow/deny file; appends the mpopd line (or a comment) to out, and its
 * number to ipv4_lines for an address rule. */
static void
convert_rule_line(MpopConvert *c, const MpopPerlSetting *from, const char *file, guint n,
		  const char *raw, GString *out, GString *ipv4_lines)
{
	gboolean ipv4;
	g_autofree char *line = g_strstrip(g_strdup(raw));
	g_autofree char *action = NULL, *peer = NULL, *conv = NULL, *note = NULL, *what = NULL;
	const char *sp;

	what = g_strdup_printf("%s line %u", file, n);
	if (!*line || line[0] == '#') {
		g_string_append_printf(out, "%s\n", line);
		return;
	}
	sp = line + strcspn(line, " \t");
	action = g_ascii_strup(line, (gssize)(sp - line));
	peer = strip_peer(sp);
	if (strcmp(action, "ALLOW") != 0 && strcmp(action, "DENY") != 0 &&
	    strcmp(action, "WARN") != 0) {
		mpop_convert_report(c, from->line, what, MPOP_CONVERT_DROPPED,
				    "not ALLOW, DENY or WARN: the Perl mpopd ignored it");
		g_string_append_printf(out, "# not a rule: %s\n", line);
		return;
	}
	if (g_ascii_strcasecmp(peer, "ALL") == 0) {
		if (strcmp(action, "DENY") == 0) {
			g_string_append(out, "DENY ALL\n");
		} else {
			mpop_convert_report(
				c, from->line, what, MPOP_CONVERT_DROPPED,
				"%s ALL matched no client in the Perl mpopd (only DENY ALL is "
				"special), in mpopd it would match every client",
				action);
			g_string_append_printf(out, "# matched no client: %s\n", line);
		}
		return;
	}
	conv = convert_peer(peer, &ipv4, &note);
	if (conv) {
		g_autofree char *rule = g_strdup_printf("%s %s\n", action, conv);
		g_autoptr(GError) e = NULL;
		g_autoptr(MpopHostRules) r = mpop_hostrules_parse(rule, strlen(rule), "rule", &e);
		if (r) {
			g_string_append(out, rule);
			if (note)
				mpop_convert_report(c, from->line, what, MPOP_CONVERT_NOTE, "%s",
						    note);
			if (ipv4)
				add_line_number(ipv4_lines, n);
			return;
		}
	}
	mpop_convert_report(c, from->line, what, MPOP_CONVERT_MANUAL,
			    "\"%s\" is not an address, a dotted prefix or a host name%s", line,
			    strcmp(action, "DENY") == 0
				    ? " (a DENY rule: the clients it refused are now "
				      "admitted)"
				    : "");
	g_string_append_printf(out, "# not converted: %s\n", line);
}

/* The rules file: converted to --hosts FILE, or named as it is when mpopd reads it. */
static void
convert_hosts_allow_deny(MpopConvert *c)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "hosts_allow_deny", '$');
	const char *path = mpop_convert_str(c, s);
	g_autoptr(GError) e = NULL;
	g_autofree char *text = NULL, *abs = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GString) ipv4 = g_string_new(NULL);
	g_autoptr(GString) rules = g_string_new(NULL);
	g_autoptr(MpopHostRules) parsed = NULL;

	if (!path || !*path) {
		if (c->hosts_out)
			mpop_convert_report(c, 0, "--hosts", MPOP_CONVERT_NOTE,
					    "$hosts_allow_deny is not set: no rules file written");
		return;
	}
	if (!(text = read_old_file(c, path, &e))) {
		mpop_convert_report(
			c, s->line, s->name, MPOP_CONVERT_MANUAL,
			"cannot read the rules file: %s (convert it with --hosts, and --root for "
			"a copy)",
			e->message);
		return;
	}
	if (!c->hosts_out && !(parsed = mpop_hostrules_parse(text, strlen(text), path, &e))) {
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
				    "%s: convert the file with --hosts FILE", e->message);
		return;
	}
	g_string_append_printf(rules, "# Host rules converted by mpopdctl convert-config from %s\n",
			       path);
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i] && (lines[i + 1] || *lines[i]); i++) {
		if (parsed) {
			/* only the address lines, for the note */
			g_autofree char *line = g_strstrip(g_strdup(lines[i]));
			g_autofree char *peer = strip_peer(line + strcspn(line, " \t"));
			if (*line != '#' && *peer && peer[strspn(peer, "0123456789.")] == '\0')
				add_line_number(ipv4, i + 1);
		} else {
			convert_rule_line(c, s, path, i + 1, lines[i], rules, ipv4);
		}
	}
	ipv4_note(c, s, path, ipv4);
	if (parsed) {
		mpop_convert_emit_str(c, "access", "hosts_allow_deny", path, s,
				      "the same file (--hosts FILE writes a converted copy)");
		return;
	}
	c->hosts = g_steal_pointer(&rules);
	abs = g_canonicalize_filename(c->hosts_out, NULL);
	mpop_convert_emit_str(c, "access", "hosts_allow_deny", abs, s, "converted by --hosts");
}

static void
convert_trusted(MpopConvert *c)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "trusted_networks", '$');
	const char *path = mpop_convert_str(c, s);
	g_autoptr(GError) e = NULL;
	g_autofree char *text = NULL;
	g_auto(GStrv) lines = NULL;
	g_autoptr(GPtrArray) nets = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GString) ipv4_lines = g_string_new(NULL);

	if (!path || !*path)
		return;
	if (!(text = read_old_file(c, path, &e))) {
		mpop_convert_report(c, s->line, s->name, MPOP_CONVERT_MANUAL,
				    "cannot read the file: %s (list its networks in [access] "
				    "trusted_networks)",
				    e->message);
		return;
	}
	lines = g_strsplit(text, "\n", -1);
	for (guint i = 0; lines[i]; i++) {
		g_autofree char *line = g_strstrip(g_strdup(lines[i]));
		g_autofree char *peer = NULL, *conv = NULL, *note = NULL, *what = NULL;
		gboolean ipv4;

		if (!*line || line[0] == '#')
			continue;
		what = g_strdup_printf("%s line %u", path, i + 1);
		peer = strip_peer(line);
		conv = convert_peer(peer, &ipv4, &note);
		if (conv && !ipv4) {
			mpop_convert_report(
				c, s->line, what, MPOP_CONVERT_MANUAL,
				"\"%s\": trusted_networks takes addresses and networks, not host "
				"names",
				line);
		} else if (!conv) {
			mpop_convert_report(c, s->line, what, MPOP_CONVERT_MANUAL,
					    "\"%s\" is not an address or a dotted prefix", line);
		} else {
			add_line_number(ipv4_lines, i + 1);
			if (!g_ptr_array_find_with_equal_func(nets, conv, g_str_equal, NULL))
				g_ptr_array_add(nets, g_steal_pointer(&conv));
		}
	}
	ipv4_note(c, s, path, ipv4_lines);
	g_ptr_array_add(nets, NULL);
	mpop_convert_emit(c, "access", "trusted_networks", (const char *const *)nets->pdata, TRUE,
			  s, "the networks listed in the file");
}

void
mpop_convert_access(MpopConvert *c)
{
	const MpopPerlSetting *s = mpop_convert_opt(c, "allow_non_fqdn", '$');

	convert_hosts_allow_deny(c);
	convert_trusted(c);
	if (s)
		mpop_convert_emit_str(c, "access", "allow_non_fqdn",
				      mpop_convert_true(s->value) ? "true" : "false", s, NULL);
	else
		mpop_convert_report(
			c, 0, "$allow_non_fqdn", MPOP_CONVERT_NOTE,
			"not set: the Perl mpopd then refused clients without forward-confirmed "
			"reverse DNS; mpopd admits them (allow_non_fqdn=true)");
}
