/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "pam" auth backend: Linux-PAM authentication and account checks, identity from NSS. */
#include "auth.h"

#include <errno.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>

/* This backend runs pam_authenticate and pam_acct_mgmt only, in the root connection
 * process, and ends the handle before it returns. pam_setcred and pam_open_session /
 * pam_close_session need a handle that lives as long as the session: they come with the
 * session hooks that MpopAuthOps gains for them. */

/* What the conversation function may answer with. */
typedef struct {
	const char *password;
} PamConvData;

static void
free_responses(struct pam_response *resp, int n)
{
	for (int i = 0; i < n; i++) {
		if (resp[i].resp) {
			explicit_bzero(resp[i].resp, strlen(resp[i].resp));
			free(resp[i].resp);
		}
	}
	free(resp);
}

/* Answers only the password prompt (PAM_PROMPT_ECHO_OFF). Anything else, a text message
 * included, fails the conversation: a POP3 client cannot see it or answer it. PAM frees
 * the responses with free(), so they come from malloc (strdup), not from GLib. */
static int
pam_conv_password(int num_msg, const struct pam_message **msg, struct pam_response **resp,
		  void *appdata)
{
	const PamConvData *data = appdata;
	struct pam_response *r;

	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || !msg || !resp)
		return PAM_CONV_ERR;
	r = calloc((size_t)num_msg, sizeof *r);
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		if (!msg[i] || msg[i]->msg_style != PAM_PROMPT_ECHO_OFF) {
			free_responses(r, num_msg);
			return PAM_CONV_ERR;
		}
		r[i].resp = strdup(data->password);
		if (!r[i].resp) {
			free_responses(r, num_msg);
			return PAM_BUF_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

/* Failures that say nothing about the user (a module or its backend is unavailable) are
 * TEMPFAIL: the password may be right. Everything else refuses the login. */
static MpopAuthResult
result_for(int pam_rc)
{
	switch (pam_rc) {
	case PAM_SUCCESS:
		return MPOP_AUTH_OK;
	case PAM_AUTHINFO_UNAVAIL:
	case PAM_SYSTEM_ERR:
	case PAM_BUF_ERR:
	case PAM_ABORT:
	case PAM_SERVICE_ERR:
	case PAM_OPEN_ERR:
	case PAM_SYMBOL_ERR:
	case PAM_CRED_UNAVAIL:
	case PAM_TRY_AGAIN:
		return MPOP_AUTH_TEMPFAIL;
	case PAM_USER_UNKNOWN:
		return MPOP_AUTH_UNKNOWN;
	default:
		/* PAM_AUTH_ERR, PAM_MAXTRIES, PAM_ACCT_EXPIRED,
		 * PAM_NEW_AUTHTOK_REQD, PAM_PERM_DENIED, PAM_CONV_ERR, ... */
		return MPOP_AUTH_DENIED;
	}
}

/* "addr:port", "[v6addr]:port" or a bare name such as "local": the address alone for
 * PAM_RHOST, or NULL when there is none. */
static char *
peer_host(const char *peer)
{
	const char *colon;

	if (!peer || !*peer || strcmp(peer, "local") == 0)
		return NULL;
	if (peer[0] == '[') {
		const char *end = strchr(peer, ']');
		return end ? g_strndup(peer + 1, (gsize)(end - peer - 1)) : NULL;
	}
	colon = strrchr(peer, ':');
	if (colon && colon == strchr(peer, ':'))
		return g_strndup(peer, (gsize)(colon - peer));
	return g_strdup(peer);
}

/* The NSS entry for the PAM user: uid, gid and home. FALSE when there is none. */
static gboolean
identity_from_passwd(const char *name, MpopAuthIdentity **out_id)
{
	size_t size = 16384;

	for (;;) {
		g_autofree char *buf = g_malloc(size);
		struct passwd pwd, *pw = NULL;
		MpopAuthIdentity *id;
		int r = getpwnam_r(name, &pwd, buf, size, &pw);

		if (r == ERANGE && size < 1024 * 1024) {
			size *= 2;
			continue;
		}
		if (r != 0 || !pw)
			return FALSE;
		id = g_new0(MpopAuthIdentity, 1);
		id->user = g_strdup(pw->pw_name);
		id->uid = pw->pw_uid;
		id->gid = pw->pw_gid;
		id->home = pw->pw_dir && *pw->pw_dir ? g_strdup(pw->pw_dir) : NULL;
		*out_id = id;
		return TRUE;
	}
}

/* The name PAM settled on (a module may map the login name to another): the canonical
 * name of the account, looked up in NSS. */
static MpopAuthResult
pam_identity(pam_handle_t *pamh, MpopAuthIdentity **out_id, char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	const void *item = NULL;
	const char *name;

	if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || !item || !*(const char *)item) {
		*out_reason = g_strdup("pam: no PAM_USER after authentication");
		return MPOP_AUTH_DENIED;
	}
	name = item;
	if (!identity_from_passwd(name, &id)) {
		*out_reason = g_strdup("pam: the PAM user has no passwd entry");
		return MPOP_AUTH_DENIED;
	}
	if (id->uid == 0) {
		*out_reason = g_strdup("pam: refusing uid 0");
		return MPOP_AUTH_DENIED;
	}
	*out_id = g_steal_pointer(&id);
	return MPOP_AUTH_OK;
}

static MpopAuthResult
pam_run(pam_handle_t *pamh, const char *peer, MpopAuthIdentity **out_id, char **out_reason)
{
	g_autofree char *rhost = peer_host(peer);
	int rc;

	if (rhost) {
		rc = pam_set_item(pamh, PAM_RHOST, rhost);
		if (rc != PAM_SUCCESS) {
			*out_reason = g_strdup_printf("pam: cannot set PAM_RHOST: %s",
						      pam_strerror(pamh, rc));
			return MPOP_AUTH_TEMPFAIL;
		}
	}
	/* An empty password never logs in, whatever a module's nullok says. */
	rc = pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc != PAM_SUCCESS) {
		*out_reason =
			g_strdup_printf("pam: authentication failed: %s", pam_strerror(pamh, rc));
		return result_for(rc);
	}
	/* Expired, locked or otherwise refused accounts (PAM_ACCT_EXPIRED, PAM_PERM_DENIED,
	 * PAM_NEW_AUTHTOK_REQD: POP3 cannot change a password) do not log in. */
	rc = pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc != PAM_SUCCESS) {
		*out_reason = g_strdup_printf("pam: account refused: %s", pam_strerror(pamh, rc));
		return result_for(rc);
	}
	return pam_identity(pamh, out_id, out_reason);
}

/* One PAM transaction, started and ended here. */
static MpopAuthResult
pam_transaction(const char *service, const char *user, const char *password, const char *peer,
		MpopAuthIdentity **out_id, char **out_reason)
{
	PamConvData data = {.password = password};
	const struct pam_conv conv = {.conv = pam_conv_password, .appdata_ptr = &data};
	pam_handle_t *pamh = NULL;
	MpopAuthResult r;
	int rc;

	rc = pam_start(service, user, &conv, &pamh);
	if (rc != PAM_SUCCESS) {
		/* A missing or unreadable service file, a module that cannot be loaded. libpam
		 * has freed the handle itself: no pam_end. */
		*out_reason = g_strdup_printf("pam: cannot start service %s: %s", service,
					      pam_strerror(NULL, rc));
		return MPOP_AUTH_TEMPFAIL;
	}
	r = pam_run(pamh, peer, out_id, out_reason);
	/* libpam wipes its PAM_AUTHTOK copy of the password here. */
	pam_end(pamh, r == MPOP_AUTH_OK ? PAM_SUCCESS : PAM_AUTH_ERR);
	return r;
}

static MpopAuthResult
pam_backend_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
			 char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	const char *service = cfg->pam_service && *cfg->pam_service ? cfg->pam_service : "mpopd";
	MpopAuthResult r;

	r = pam_transaction(service, q->user, q->password, q->peer, &id, &reason);
	if (r == MPOP_AUTH_OK && out_id)
		*out_id = g_steal_pointer(&id);
	if (out_reason)
		*out_reason = g_steal_pointer(&reason);
	return r;
}

const MpopAuthOps mpop_auth_pam_ops = {
	.name = "pam",
	.authenticate = pam_backend_authenticate,
};
