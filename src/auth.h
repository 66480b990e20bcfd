/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Authentication registry: backends behind an ops table, results OK / DENIED / TEMPFAIL. */
#pragma once

#include <glib.h>
#include <sys/types.h>
#include "config.h"

typedef enum {
	MPOP_AUTH_OK,
	MPOP_AUTH_DENIED,   /* bad user or password: -ERR [AUTH] */
	MPOP_AUTH_TEMPFAIL, /* backend unavailable: -ERR [SYS/TEMP] */
} MpopAuthResult;

/* Who the session becomes after a successful login. */
typedef struct {
	char *user; /* login name as the backend knows it */
	uid_t uid;
	gid_t gid;
	char *home;    /* may be NULL */
	char *mailbox; /* explicit maildrop path from the backend, or NULL: config location */
} MpopAuthIdentity;

void mpop_auth_identity_free(MpopAuthIdentity *id);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopAuthIdentity, mpop_auth_identity_free)

typedef struct {
	const char *name;
	/* user and password are untrusted. On OK fills *out_id. *out_reason (may be NULL) is a
	 * short text for the log that never contains the password. */
	MpopAuthResult (*authenticate)(const MpopConfig *cfg, const char *user,
				       const char *password, const char *peer,
				       MpopAuthIdentity **out_id, char **out_reason);
} MpopAuthOps;

/* Look up a backend by name ("userlist", "pam", "passwd", ...); NULL if unknown. */
const MpopAuthOps *mpop_auth_lookup(const char *name);

/* Authenticate with the backend configured for this user. */
MpopAuthResult mpop_auth_check(const MpopConfig *cfg, const char *user, const char *password,
			       const char *peer, MpopAuthIdentity **out_id, char **out_reason);

/* Verify password against a crypt(5) hash with libxcrypt, comparing in constant time.
 * A NULL or unusable hash still costs one hash computation and returns FALSE. */
gboolean mpop_auth_verify_hash(const char *password, const char *hash);

/* Spend the time of one hash (unknown users, so timing tells nothing). */
void mpop_auth_dummy_hash(const char *password);

/* How many hash computations this process has made (tests check that unknown users and
 * disabled accounts still pay for one). */
guint64 mpop_auth_hash_count(void);

/* A new hash for password: prefix "$y$" (yescrypt) by default, or "$6$", "$2b$", "$1$". */
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

extern const MpopAuthOps mpop_auth_userlist_ops;
extern const MpopAuthOps mpop_auth_pam_ops;
/* System accounts (auth-system.c): one backend under both names. */
extern const MpopAuthOps mpop_auth_passwd_ops;
extern const MpopAuthOps mpop_auth_shadow_ops;
