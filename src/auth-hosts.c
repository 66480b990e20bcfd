/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "hostname", "email" and "central" auth backends: virtual hosts ([host:NAME]) with a user
 * list and mailboxes each, chosen by the TLS server name or the local address, or by the domain
 * of an e-mail address used as login name; and one user list with one spool directory. */
#include "auth.h"
#include "mailbox.h"
#include "util.h"

#include <string.h>

static gboolean
host_has_name(const MpopHostConfig *h, const char *name)
{
	if (g_ascii_strcasecmp(h->name, name) == 0)
		return TRUE;
	for (char **n = h->names; n && *n; n++)
		if (g_ascii_strcasecmp(*n, name) == 0)
			return TRUE;
	return FALSE;
}

const MpopHostConfig *
mpop_auth_host_for_domain(const MpopConfig *cfg, const char *domain)
{
	if (!domain || !*domain)
		return NULL;
	for (guint i = 0; i < cfg->n_hosts; i++)
		if (host_has_name(&cfg->hosts[i], domain))
			return &cfg->hosts[i];
	return NULL;
}

static const MpopHostConfig *
host_for_address(const MpopConfig *cfg, const guint8 local[16])
{
	for (guint i = 0; i < cfg->n_hosts; i++) {
		for (char **a = cfg->hosts[i].addresses; a && *a; a++) {
			guint8 bin[16];
			if (mpop_addr_parse(*a, bin) && memcmp(bin, local, sizeof bin) == 0)
				return &cfg->hosts[i];
		}
	}
	return NULL;
}

/* Only what the client cannot forge selects a host: the name it asked the TLS layer for
 * (the certificate it was shown is the one for that name) and the address it reached. The
 * client's own address and its reverse DNS are the client's to choose. */
const MpopHostConfig *
mpop_auth_host_select(const MpopConfig *cfg, const MpopAuthQuery *q)
{
	const MpopHostConfig *h = NULL;
	guint8 local[16];

	if (q->sni && *q->sni)
		h = mpop_auth_host_for_domain(cfg, q->sni);
	if (!h && (mpop_addr_from_sockaddr(q->local_addr, q->local_len, local) ||
		   mpop_addr_parse(q->local, local)))
		h = host_for_address(cfg, local);
	return h;
}

/* A local part becomes a path component (%n, and %u as local@NAME) and the part of the
 * canonical name before its one '@'. */
static gboolean
local_part_usable(const char *s, size_t len)
{
	return len > 0 && s[0] != '.' && !memchr(s, '/', len) && !memchr(s, '@', len);
}

/* A user of host h: list h->userlist, name local@NAME, mailbox h->location unless the list
 * names one. */
static MpopAuthResult
host_login(const MpopConfig *cfg, const MpopHostConfig *h, const char *local, const char *password,
	   MpopAuthIdentity **out_id, char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autoptr(GError) error = NULL;
	MpopAuthResult r;

	if (!local_part_usable(local, strlen(local))) {
		*out_reason = g_strdup_printf("local part not usable for host %s", h->name);
		return MPOP_AUTH_UNKNOWN;
	}
	r = mpop_userlist_check(h->userlist, local, password, mpop_pattern_uses_home(h->location),
				&id, out_reason);
	if (r != MPOP_AUTH_OK)
		return r;
	g_free(id->user);
	id->user = g_strconcat(local, "@", h->name, NULL);
	if (!id->mailbox) {
		id->mailbox = mpop_pattern_expand(h->location, id->user, id->home,
						  cfg->mail_spool_dir, &error);
		if (!id->mailbox) {
			*out_reason =
				g_strdup_printf("host %s: location: %s", h->name, error->message);
			return MPOP_AUTH_TEMPFAIL;
		}
	}
	*out_id = g_steal_pointer(&id);
	return MPOP_AUTH_OK;
}

/* No host selected: the [auth] userlist, the name as sent, the [mailbox] location. */
static MpopAuthResult
default_login(const MpopConfig *cfg, const char *user, const char *password,
	      MpopAuthIdentity **out_id, char **out_reason)
{
	if (!cfg->userlist || !*cfg->userlist) {
		*out_reason = g_strdup("no host selected and no [auth] userlist");
		return MPOP_AUTH_UNKNOWN;
	}
	return mpop_userlist_check(cfg->userlist, user, password,
				   mpop_pattern_uses_home(mpop_mailbox_location_pattern(cfg)),
				   out_id, out_reason);
}

static MpopAuthResult
hostname_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		      char **out_reason)
{
	const MpopHostConfig *h = mpop_auth_host_select(cfg, q);

	if (h)
		return host_login(cfg, h, q->user, q->password, out_id, out_reason);
	return default_login(cfg, q->user, q->password, out_id, out_reason);
}

/* The last separator splits, so a local part may hold an earlier one ("a%b@example.org"). */
static const char *
last_separator(const char *user, const char *separators)
{
	const char *last = NULL;

	for (const char *p = user; *p; p++)
		if (strchr(separators, *p))
			last = p;
	return last;
}

/* Domains compare without regard to case (RFC 1035 section 2.3.3, RFC 5321 section 2.4);
 * local parts exactly, as the host's user list spells them. */
static MpopAuthResult
email_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		   char **out_reason)
{
	const char *seps =
		cfg->domain_separators && *cfg->domain_separators ? cfg->domain_separators : "@";
	const char *sep = last_separator(q->user, seps);
	g_autofree char *local = NULL;
	const MpopHostConfig *h;

	if (!sep)
		return hostname_authenticate(cfg, q, out_id, out_reason);
	h = mpop_auth_host_for_domain(cfg, sep + 1);
	if (!h) {
		*out_reason = g_strdup("unknown domain");
		return MPOP_AUTH_UNKNOWN;
	}
	local = g_strndup(q->user, (gsize)(sep - q->user));
	return host_login(cfg, h, local, q->password, out_id, out_reason);
}

static MpopAuthResult
central_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		     char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	MpopAuthResult r;

	if (!cfg->central_userlist || !*cfg->central_userlist || !cfg->central_spool ||
	    !*cfg->central_spool) {
		mpop_auth_dummy_hash(q->password);
		*out_reason = g_strdup("[auth] central_userlist or central_spool not set");
		return MPOP_AUTH_TEMPFAIL;
	}
	/* The name is the mailbox's file name in the spool: one component, not hidden. */
	if (!*q->user || q->user[0] == '.' || strchr(q->user, '/')) {
		*out_reason = g_strdup("name not usable in the central spool");
		return MPOP_AUTH_UNKNOWN;
	}
	r = mpop_userlist_check(cfg->central_userlist, q->user, q->password, FALSE, &id,
				out_reason);
	if (r != MPOP_AUTH_OK)
		return r;
	if (!id->mailbox)
		id->mailbox = g_build_filename(cfg->central_spool, q->user, NULL);
	*out_id = g_steal_pointer(&id);
	return MPOP_AUTH_OK;
}

static gboolean
hosts_check_config(const MpopConfig *cfg, GError **error)
{
	if (cfg->n_hosts == 0 && (!cfg->userlist || !*cfg->userlist)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "%s: [auth] userlist: the hostname and email backends are used but "
			    "there is neither a user list nor a [host:NAME] group",
			    cfg->path ? cfg->path : "configuration");
		return FALSE;
	}
	return TRUE;
}

static gboolean
central_check_config(const MpopConfig *cfg, GError **error)
{
	if (!cfg->central_userlist || !*cfg->central_userlist || !cfg->central_spool ||
	    !*cfg->central_spool) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "%s: [auth] central_userlist: the central backend is used but "
			    "central_userlist or central_spool is not set",
			    cfg->path ? cfg->path : "configuration");
		return FALSE;
	}
	return TRUE;
}

const MpopAuthOps mpop_auth_hostname_ops = {
	.name = "hostname",
	.authenticate = hostname_authenticate,
	.check_config = hosts_check_config,
};

const MpopAuthOps mpop_auth_email_ops = {
	.name = "email",
	.authenticate = email_authenticate,
	.check_config = hosts_check_config,
};

const MpopAuthOps mpop_auth_central_ops = {
	.name = "central",
	.authenticate = central_authenticate,
	.check_config = central_check_config,
};
