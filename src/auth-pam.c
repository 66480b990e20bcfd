/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "pam" auth backend: Linux-PAM authentication and account checks, identity from NSS. */
#include "auth.h"
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <pwd.h>
#include <security/pam_appl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every PAM call runs in the root connection process, never in the pre-login process.
 * pam_authenticate and pam_acct_mgmt always; with [auth] pam_session also pam_setcred and
 * pam_open_session after the login, and pam_close_session and pam_setcred(DELETE) after
 * the session. Then the handle stays in the identity (backend_data) and the same root
 * process, which login.c keeps for the session's lifetime, closes it: modules find their
 * pam_set_data() state again at close (pam_systemd, pam_mount, pam_krb5 need it), and the
 * close needs root, which the session process (the mailbox owner) no longer has. Without
 * pam_session the handle ends before authenticate returns and no root process stays. */

/* libpam is loaded by the first configuration that names this backend (pam_load() from
 * check_config, as root, at start and at each reload), not linked: a server without PAM maps
 * none of libpam, libaudit and libcap-ng, and runs none of their constructors, in each
 * process an inetd or Accept=yes socket execs. The symbols are looked up in the global scope,
 * so that a preloaded wrapper (libpam_wrapper in the tests) comes first, as it would for a
 * linked libpam. */
static struct {
	gboolean loaded;
	int (*start)(const char *, const char *, const struct pam_conv *, pam_handle_t **);
	int (*end)(pam_handle_t *, int);
	int (*authenticate)(pam_handle_t *, int);
	int (*acct_mgmt)(pam_handle_t *, int);
	int (*setcred)(pam_handle_t *, int);
	int (*open_session)(pam_handle_t *, int);
	int (*close_session)(pam_handle_t *, int);
	int (*get_item)(const pam_handle_t *, int, const void **);
	int (*set_item)(pam_handle_t *, int, const void *);
	const char *(*strerror)(pam_handle_t *, int);
} lib;

#define PAM_LIBRARY "libpam.so.0"

static gboolean
pam_load(GError **error)
{
	static const struct {
		const char *name;
		size_t offset;
	} syms[] = {
#define SYM(f) {"pam_" #f, G_STRUCT_OFFSET(__typeof__(lib), f)}
		SYM(start),    SYM(end),	  SYM(authenticate),  SYM(acct_mgmt),
		SYM(setcred),  SYM(open_session), SYM(close_session), SYM(get_item),
		SYM(set_item), SYM(strerror),
#undef SYM
	};
	__typeof__(lib) next = {.loaded = TRUE};

	if (lib.loaded)
		return TRUE;
	if (!dlopen(PAM_LIBRARY, RTLD_NOW | RTLD_GLOBAL)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "the pam auth backend needs %s: %s", PAM_LIBRARY, dlerror());
		return FALSE;
	}
	for (size_t i = 0; i < G_N_ELEMENTS(syms); i++) {
		void *f = dlsym(RTLD_DEFAULT, syms[i].name);

		if (!f) {
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
				    "the pam auth backend: %s has no %s", PAM_LIBRARY,
				    syms[i].name);
			return FALSE;
		}
		memcpy((char *)&next + syms[i].offset, &f, sizeof f);
	}
	lib = next;
	return TRUE;
}

static gboolean
pam_check_config(const MpopConfig *cfg, GError **error)
{
	(void)cfg;
	return pam_load(error);
}

/* What the conversation function may answer with, and what the modules told us. */
typedef struct {
	const char *password; /* NULL once authentication is over: prompts then fail */
	GString *texts;	      /* PAM_TEXT_INFO and PAM_ERROR_MSG texts, escaped, for the log */
} PamConvData;

/* The texts kept for the log line of a failure, at most this many characters. */
#define MAX_TEXTS 200

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

static void
note_text(PamConvData *data, const char *text)
{
	g_autofree char *esc = NULL;

	if (!text || data->texts->len >= MAX_TEXTS)
		return;
	esc = mpop_escape_excerpt(text, strlen(text), MAX_TEXTS - data->texts->len);
	g_string_append_printf(data->texts, "%s%s", data->texts->len ? "; " : "", esc);
}

/* Answers the password prompt (PAM_PROMPT_ECHO_OFF) and nothing else: a prompt that echoes
 * asks for something other than the password (a user name, a one-time code), which a
 * POP3 client cannot give, so it fails the conversation. PAM_TEXT_INFO and PAM_ERROR_MSG
 * expect no answer (pam_conv(3)), so they get none and succeed: the module's own result
 * decides (pam_unix, pam_faillock and pam_echo ignore a failed message anyway), and the
 * texts ("account locked", "password expired") go into the failure's log line, where the
 * admin sees them; the client never does. PAM frees the responses with free(), so they
 * come from malloc (strdup). */
static int
pam_conv_password(int num_msg, const struct pam_message **msg, struct pam_response **resp,
		  void *appdata)
{
	PamConvData *data = appdata;
	struct pam_response *r;

	if (num_msg <= 0 || num_msg > PAM_MAX_NUM_MSG || !msg || !resp)
		return PAM_CONV_ERR;
	r = calloc((size_t)num_msg, sizeof *r);
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < num_msg; i++) {
		int style = msg[i] ? msg[i]->msg_style : -1;

		if (style == PAM_TEXT_INFO || style == PAM_ERROR_MSG) {
			note_text(data, msg[i]->msg);
			continue;
		}
		if (style != PAM_PROMPT_ECHO_OFF || !data->password) {
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

/* The NSS entry for the PAM user: uid, gid and home. FALSE when there is none. */
static gboolean
identity_from_passwd(const char *name, MpopAuthIdentity **out_id)
{
	MpopPasswd pw = {0};
	MpopAuthIdentity *id;

	if (mpop_auth_getpw(name, 0, &pw) < 0)
		return FALSE;
	id = g_new0(MpopAuthIdentity, 1);
	id->user = g_steal_pointer(&pw.name);
	id->uid = pw.uid;
	id->gid = pw.gid;
	id->home = g_steal_pointer(&pw.home);
	id->system_account = TRUE;
	mpop_passwd_clear(&pw);
	*out_id = id;
	return TRUE;
}

/* The name PAM settled on (a module may map the login name to another): the canonical
 * name of the account, looked up in NSS. */
static MpopAuthResult
pam_identity(pam_handle_t *pamh, MpopAuthIdentity **out_id, char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	const void *item = NULL;
	const char *name;

	if (lib.get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || !item || !*(const char *)item) {
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
	int rc;

	/* The client address for modules that log it or decide by it (pam_access). */
	if (peer && *peer && strcmp(peer, "local") != 0) {
		rc = lib.set_item(pamh, PAM_RHOST, peer);
		if (rc != PAM_SUCCESS) {
			*out_reason = g_strdup_printf("pam: cannot set PAM_RHOST: %s",
						      lib.strerror(pamh, rc));
			return MPOP_AUTH_TEMPFAIL;
		}
	}
	/* An empty password never logs in, whatever a module's nullok says. */
	rc = lib.authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc != PAM_SUCCESS) {
		*out_reason =
			g_strdup_printf("pam: authentication failed: %s", lib.strerror(pamh, rc));
		return result_for(rc);
	}
	/* Expired, locked or otherwise refused accounts (PAM_ACCT_EXPIRED, PAM_PERM_DENIED,
	 * PAM_NEW_AUTHTOK_REQD: POP3 cannot change a password) do not log in. */
	rc = lib.acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK);
	if (rc != PAM_SUCCESS) {
		*out_reason = g_strdup_printf("pam: account refused: %s", lib.strerror(pamh, rc));
		return result_for(rc);
	}
	return pam_identity(pamh, out_id, out_reason);
}

/* A PAM transaction: the handle, and the conversation data it points to, which must live
 * as long as the handle does. */
typedef struct {
	pam_handle_t *pamh;
	PamConvData conv_data;
	int last_rc;	  /* for pam_end */
	gboolean cred;	  /* lib.setcred(PAM_ESTABLISH_CRED) succeeded */
	gboolean session; /* pam_open_session succeeded */
	pid_t owner;	  /* the process that started it */
} PamTransaction;

/* The modules' texts, for a failure's log line. */
static void
append_texts(PamTransaction *t, char **reason)
{
	char *longer;

	if (!*reason || !t->conv_data.texts->len)
		return;
	longer = g_strdup_printf("%s (PAM said: %s)", *reason, t->conv_data.texts->str);
	g_free(*reason);
	*reason = longer;
}

/* Undo what the session hooks did, in reverse order, and end the transaction. Only the
 * process that started it does so: a forked session child that frees its copy ends it
 * with PAM_DATA_SILENT, which tells the modules' cleanup functions to change nothing
 * outside the process (Linux-PAM's rule for a child that inherited a handle). */
static void
pam_transaction_free(gpointer data)
{
	PamTransaction *t = data;

	if (!t)
		return;
	if (t->pamh && t->owner != getpid()) {
		lib.end(t->pamh, t->last_rc | PAM_DATA_SILENT);
	} else if (t->pamh) {
		if (t->session)
			t->last_rc = lib.close_session(t->pamh, PAM_SILENT);
		if (t->cred)
			t->last_rc = lib.setcred(t->pamh, PAM_DELETE_CRED | PAM_SILENT);
		/* libpam wipes its PAM_AUTHTOK copy of the password here. */
		lib.end(t->pamh, t->last_rc);
	}
	g_string_free(t->conv_data.texts, TRUE);
	g_free(t);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(PamTransaction, pam_transaction_free)

/* Start a transaction for user. NULL with *out_reason when the service cannot start. */
static PamTransaction *
pam_transaction_start(const char *service, const char *user, const char *password,
		      char **out_reason)
{
	g_autoptr(PamTransaction) t = NULL;
	g_autoptr(GError) error = NULL;
	struct pam_conv conv = {.conv = pam_conv_password};
	int rc;

	/* Loaded already by the configuration check, except for a caller that skipped it. */
	if (!pam_load(&error)) {
		*out_reason = g_strdup_printf("pam: %s", error->message);
		return NULL;
	}
	t = g_new0(PamTransaction, 1);
	t->conv_data.password = password;
	t->conv_data.texts = g_string_new(NULL);
	t->owner = getpid();
	conv.appdata_ptr = &t->conv_data;
	/* pam_start copies conv; the data it points to is t's. */
	rc = lib.start(service, user, &conv, &t->pamh);
	if (rc != PAM_SUCCESS) {
		/* A missing or unreadable service file, a module that cannot be loaded. libpam
		 * has freed the handle itself: no pam_end. */
		t->pamh = NULL;
		*out_reason = g_strdup_printf("pam: cannot start service %s: %s", service,
					      lib.strerror(NULL, rc));
		return NULL;
	}
	return g_steal_pointer(&t);
}

/* Does NSS know the name? 1 yes, 0 no, -errno when it cannot tell. */
static int
nss_knows(const char *name)
{
	MpopPasswd pw = {0};
	int r = mpop_auth_getpw(name, 0, &pw);

	mpop_passwd_clear(&pw);
	return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

static MpopAuthResult
pam_backend_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
			 char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autoptr(PamTransaction) t = NULL;
	g_autofree char *reason = NULL;
	const char *service = cfg->pam_service && *cfg->pam_service ? cfg->pam_service : "mpopd";
	MpopAuthResult r;
	int known = nss_knows(q->user);

	/* The session's uid comes from NSS, so a name NSS does not know can never log in
	 * here: the chain asks its next backend. PAM itself cannot tell (Debian's common-auth
	 * answers an unknown user with a plain authentication error). */
	if (known <= 0) {
		if (out_reason)
			*out_reason = known == 0 ? g_strdup("pam: no such user")
						 : g_strdup_printf("pam: NSS lookup failed: %s",
								   g_strerror(-known));
		return known == 0 ? MPOP_AUTH_UNKNOWN : MPOP_AUTH_TEMPFAIL;
	}
	t = pam_transaction_start(service, q->user, q->password, &reason);
	if (!t) {
		r = MPOP_AUTH_TEMPFAIL;
	} else {
		r = pam_run(t->pamh, q->peer, &id, &reason);
		/* The caller wipes the password when we return: no prompt may see it later. */
		t->conv_data.password = NULL;
		t->last_rc = r == MPOP_AUTH_OK ? PAM_SUCCESS : PAM_AUTH_ERR;
		append_texts(t, &reason);
		g_string_truncate(t->conv_data.texts, 0);
	}
	if (r == MPOP_AUTH_OK && cfg->pam_session) {
		/* The handle lives on in the identity for the session hooks. */
		id->backend_data = g_steal_pointer(&t);
		id->backend_data_free = pam_transaction_free;
	}
	if (r == MPOP_AUTH_OK && out_id)
		*out_id = g_steal_pointer(&id);
	if (out_reason)
		*out_reason = g_steal_pointer(&reason);
	return r;
}

/* As root, before the drop to the mailbox owner: credentials, then the session (the order
 * of login(1) and sshd). FALSE with a reason when either fails: no session without them. */
static gboolean
pam_session_open(const MpopConfig *cfg, MpopAuthIdentity *id, char **out_reason)
{
	PamTransaction *t = id->backend_data;
	int rc;

	if (!t || !t->pamh)
		return TRUE; /* [auth] pam_session is off */
	rc = lib.setcred(t->pamh, PAM_ESTABLISH_CRED | PAM_SILENT);
	if (rc != PAM_SUCCESS) {
		*out_reason = g_strdup_printf("pam: pam_setcred: %s", lib.strerror(t->pamh, rc));
		t->last_rc = rc;
		append_texts(t, out_reason);
		return FALSE;
	}
	t->cred = TRUE;
	rc = lib.open_session(t->pamh, PAM_SILENT);
	if (rc != PAM_SUCCESS) {
		*out_reason =
			g_strdup_printf("pam: pam_open_session: %s", lib.strerror(t->pamh, rc));
		t->last_rc = rc;
		append_texts(t, out_reason);
		return FALSE;
	}
	t->session = TRUE;
	/* libpam keeps its PAM_AUTHTOK copy of the password until pam_end (only modules may
	 * change it): here, in a non-dumpable root process, for the session's lifetime; the
	 * session child ends its inherited copy of the handle at once (login.c). */
	return TRUE;
}

/* After the session, in the process that opened it: close, delete the credentials, end. */
static void
pam_session_close(const MpopConfig *cfg, MpopAuthIdentity *id)
{
	PamTransaction *t = id->backend_data;

	if (!t)
		return;
	id->backend_data = NULL;
	pam_transaction_free(t);
}

const MpopAuthOps mpop_auth_pam_ops = {
	.name = "pam",
	.authenticate = pam_backend_authenticate,
	.session_open = pam_session_open,
	.session_close = pam_session_close,
	.check_config = pam_check_config,
};
