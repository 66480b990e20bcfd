/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Authentication registry: backends behind an ops table, results OK / DENIED / TEMPFAIL. */
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "config.h"

typedef enum {
	MPOP_AUTH_OK,
	MPOP_AUTH_DENIED,   /* bad password or refused account: -ERR [AUTH] */
	MPOP_AUTH_TEMPFAIL, /* backend unavailable: -ERR [SYS/TEMP] */
	/* The backend does not know the user: the chain asks the next backend. A backend
	 * returns it without paying a hash; mpop_auth_check() pays one when the whole chain
	 * answered it, and never returns it (the client sees DENIED). */
	MPOP_AUTH_UNKNOWN,
} MpopAuthResult;

/* One login attempt as the backends see it. */
typedef struct {
	const char *user;     /* untrusted, but passed mpop_auth_user_name_acceptable() */
	const char *password; /* never NULL, never logged */
	const char *peer;     /* client address without port ("192.0.2.1", "2001:db8::1"), or
				 "local" for a pipe */
	const struct sockaddr *peer_addr; /* NULL for a pipe */
	socklen_t peer_len;
	const char *local; /* local address the client connected to, without port, or NULL */
	const struct sockaddr *local_addr;
	socklen_t local_len;
	const char *sni;	/* TLS server name the client sent (lowercase), or NULL */
	const char *session_id; /* for the log and a plug-in's environment */
} MpopAuthQuery;

typedef struct MpopAuthOps MpopAuthOps;

/* Who the session becomes after a successful login. */
typedef struct {
	char *user; /* login name as the backend knows it */
	uid_t uid;
	gid_t gid;
	char *home;    /* may be NULL */
	char *mailbox; /* explicit maildrop path from the backend, or NULL: config location */
	gboolean system_account; /* user is a passwd entry (system, pam): the session gets its
				    supplementary groups; a virtual user gets none */
	const MpopAuthOps *ops;	 /* the backend that said yes (set by mpop_auth_check) */
	gpointer backend_data;	 /* backend state kept for its session hooks */
	GDestroyNotify backend_data_free;
} MpopAuthIdentity;

void mpop_auth_identity_free(MpopAuthIdentity *id);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopAuthIdentity, mpop_auth_identity_free)

struct MpopAuthOps {
	const char *name;
	/* On OK fills *out_id. *out_reason (may be NULL) is a short text for the log that
	 * never contains the password. */
	MpopAuthResult (*authenticate)(const MpopConfig *cfg, const MpopAuthQuery *q,
				       MpopAuthIdentity **out_id, char **out_reason);
	/* Optional, after OK: called as root before the drop to the mailbox owner. FALSE
	 * refuses the login ([SYS/TEMP]) with *out_reason for the log. */
	gboolean (*session_open)(const MpopConfig *cfg, MpopAuthIdentity *id, char **out_reason);
	/* Optional: called as root in the process that called session_open, after the session
	 * (running in a child as the mailbox owner) has ended. When set and the identity
	 * carries backend_data, login.c keeps that root process for the session's lifetime
	 * (the child frees its copy of backend_data first thing); otherwise it is not
	 * called. */
	void (*session_close)(const MpopConfig *cfg, MpopAuthIdentity *id);
	/* Optional: is the configuration usable for this backend (--check-config, start,
	 * reload)? Called only for backends some chain uses. */
	gboolean (*check_config)(const MpopConfig *cfg, GError **error);
};

/* Look up a backend by name ("userlist", "pam", "system", ...); NULL if unknown. */
const MpopAuthOps *mpop_auth_lookup(const char *name);

/* Authenticate with the chain configured for this user ([user_auth], else [auth] default):
 * each backend in order until one knows the user. Returns OK, DENIED or TEMPFAIL (never
 * UNKNOWN); on OK *out_id->ops is the backend that said yes. */
MpopAuthResult mpop_auth_check(const MpopConfig *cfg, const MpopAuthQuery *q,
			       MpopAuthIdentity **out_id, char **out_reason);

/* The backends every chain uses are built in and accept the configuration. */
gboolean mpop_auth_check_config(const MpopConfig *cfg, GError **error);

/* A login name a backend may be shown: 1-255 bytes, no control characters, '/' or ':'. */
gboolean mpop_auth_user_name_acceptable(const char *user);

/* Verify password against a crypt(5) hash with libxcrypt, comparing in constant time.
 * A NULL or unusable hash still costs one hash computation and returns FALSE. */
gboolean mpop_auth_verify_hash(const char *password, const char *hash);

/* Spend the time of one hash (unknown users, so timing tells nothing). */
void mpop_auth_dummy_hash(const char *password);

/* How many hash computations this process has made (tests check that unknown users and
 * disabled accounts still pay for one). */
guint64 mpop_auth_hash_count(void);

/* A new hash for password: prefix "$y$" (yescrypt) by default, or "$6$" (100 000 rounds),
 * "$2b$" (cost 10). */
char *mpop_auth_make_hash(const char *password, const char *prefix, GError **error);

/* The user list: name:crypt-hash:uid[:gid[:mailbox]]. Parse one line (untrusted file
 * content). Returns 0 and fills the out fields (caller frees strings), -EINVAL if the
 * line is malformed, 1 if it is a comment or blank. */
typedef struct {
	char *name;
	char *hash;
	uid_t uid;
	gid_t gid;     /* (gid_t)-1 when absent */
	char *mailbox; /* NULL when absent */
} MpopUserlistEntry;
int mpop_userlist_parse_line(const char *line, size_t len, MpopUserlistEntry *out);
void mpop_userlist_entry_clear(MpopUserlistEntry *e);

/* The passwd entry for uid: its primary group and home (caller frees; NULL when empty), for
 * backends whose answer names a uid but maybe no gid. FALSE when there is no entry. */
gboolean mpop_auth_passwd_for_uid(uid_t uid, gid_t *out_gid, char **out_home);

/* The passwd entry fields mpopd uses, copied out of NSS's buffer. */
typedef struct {
	char *name;
	char *passwd; /* wiped by mpop_passwd_clear() */
	uid_t uid;
	gid_t gid;
	char *home; /* NULL when empty */
} MpopPasswd;

/* The passwd entry of name (or, with name NULL, of uid). 0, -ENOENT when NSS has no such
 * entry, or -errno when it cannot tell. */
int mpop_auth_getpw(const char *name, uid_t uid, MpopPasswd *out);
void mpop_passwd_clear(MpopPasswd *pw);

/* A uid or gid in text: decimal only (no sign, space or empty string) and never (id_t)-1,
 * which the set*id() calls read as "leave unchanged". */
gboolean mpop_auth_parse_id(const char *s, guint32 *out);

extern const MpopAuthOps mpop_auth_userlist_ops;
/* An external checkpassword program (auth-plugin.c). */
extern const MpopAuthOps mpop_auth_plugin_ops;

/* Find user (compared exactly) in the user list at path; every line is read whether or not it
 * matches. OK with *out filled (clear it with mpop_userlist_entry_clear()), UNKNOWN when the
 * list does not have the user, TEMPFAIL when it cannot be read; *out_reason says why. Pays no
 * hash. */
MpopAuthResult mpop_userlist_lookup(const char *path, const char *user, MpopUserlistEntry *out,
				    char **out_reason);

/* mpop_userlist_lookup(), then the password against the entry's hash (one hash computation
 * whatever the entry holds): OK with *out_id (user the listed name, uid, gid, mailbox from the
 * list; home from the passwd entry of the uid when want_home and the list names no mailbox),
 * UNKNOWN without a hash, DENIED after a wrong password or for uid 0, TEMPFAIL (one hash paid)
 * when the list cannot be read. want_home: the location pattern used for an entry without a
 * mailbox has %h. */
MpopAuthResult mpop_userlist_check(const char *path, const char *user, const char *password,
				   gboolean want_home, MpopAuthIdentity **out_id,
				   char **out_reason);

/* Virtual hosts (auth-hosts.c). The host a connection selects: the [host:NAME] whose names
 * hold the TLS server name, else the one whose addresses hold the local address, else NULL
 * (the default host: [auth] userlist and [mailbox] location). Never the client's address. */
const MpopHostConfig *mpop_auth_host_select(const MpopConfig *cfg, const MpopAuthQuery *q);

/* The host whose names hold domain (ASCII case-insensitive), or NULL. */
const MpopHostConfig *mpop_auth_host_for_domain(const MpopConfig *cfg, const char *domain);

extern const MpopAuthOps mpop_auth_hostname_ops;
extern const MpopAuthOps mpop_auth_email_ops;
extern const MpopAuthOps mpop_auth_central_ops;
extern const MpopAuthOps mpop_auth_pam_ops;
/* System accounts (auth-system.c): one backend under three names. */
extern const MpopAuthOps mpop_auth_system_ops;
extern const MpopAuthOps mpop_auth_passwd_ops;
extern const MpopAuthOps mpop_auth_shadow_ops;
