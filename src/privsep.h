/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Privilege separation: the bounded auth-request record, dropping privileges. */
#pragma once

#include <glib.h>
#include <sys/types.h>
#include "auth.h"
#include "log.h"

/* Limits for the record the unprivileged child sends: the parent parses it as untrusted. */
#define MPOP_PRIVSEP_MAX_USER 256
#define MPOP_PRIVSEP_MAX_PASS 1024
#define MPOP_PRIVSEP_MAX_PENDING 4096
#define MPOP_PRIVSEP_MAX_TLS 128
#define MPOP_PRIVSEP_MAX_SNI 253
#define MPOP_PRIVSEP_MAX_EVENT 32
#define MPOP_PRIVSEP_MAX_MESSAGE 1024
/* No record is longer than this. */
#define MPOP_PRIVSEP_MAX_RECORD                                                                    \
	(MPOP_PRIVSEP_MAX_USER + MPOP_PRIVSEP_MAX_PASS + MPOP_PRIVSEP_MAX_PENDING +                \
	 MPOP_PRIVSEP_MAX_TLS + MPOP_PRIVSEP_MAX_SNI + 64)

typedef struct {
	char *user;
	char *pass;
	char *pending; /* pipelined bytes after the auth command */
	gsize pending_len;
	char *tls; /* "protocol cipher" of the client's TLS connection, "" without TLS */
	char *sni; /* the TLS server name the client asked for: lowercase letters, digits, '-'
		    * and '.', or "" */
} MpopAuthRequest;

void mpop_auth_request_clear(MpopAuthRequest *r); /* wipes the password */

/* Serialise a request: "MPOP1" then four u32-length-prefixed fields. */
GBytes *mpop_privsep_encode(const MpopAuthRequest *r);
/* Parse an untrusted record. Returns 0 or -EINVAL / -E2BIG. */
int mpop_privsep_decode(const guint8 *data, gsize len, MpopAuthRequest *out);

/* A log record of the pre-login process, which cannot reach the journal from its chroot:
 * "MPOPL", the level byte, then event and message as u32-length-prefixed fields. */
typedef struct {
	MpopLogLevel level;
	char *event;   /* "" for none; [a-z-] only */
	char *message; /* printable: anything else was escaped by the decoder */
} MpopLogRecord;

GBytes *mpop_privsep_encode_log(MpopLogLevel level, const char *event, const char *message);
/* Parse an untrusted log record. Returns 0 or -EINVAL / -E2BIG; clear with _log_clear. */
int mpop_privsep_decode_log(const guint8 *data, gsize len, MpopLogRecord *out);
void mpop_privsep_log_clear(MpopLogRecord *r);

/* Drop to uid/gid for good: setgroups, setresgid, setresuid, then verify that root cannot
 * be regained, and chdir("/"). Refuses uid 0 and gid 0. priv_gid ((gid_t)-1: none) is kept as the
 * saved set-group-ID only, for mpop_privsep_mail_group_enter(). The supplementary groups are
 * those of the system account groups_of (initgroups), or none but gid when NULL. Returns 0 or
 * -errno. When not root, succeeds only if uid is already ours. */
int mpop_privsep_become(uid_t uid, gid_t gid, const char *groups_of, gid_t priv_gid);

/* Take on the saved privileged group as effective gid to create or remove path (a dotlock,
 * an mbox's replacement), only when path's directory is writable by that group and not by
 * us (a root:mail 2775 spool). Returns TRUE if it switched; pass that to _leave(). */
gboolean mpop_privsep_mail_group_enter(const char *path);
void mpop_privsep_mail_group_leave(gboolean entered);

/* Look up the login user's uid and gid now and keep them for this process and the ones it
 * forks (the daemon at start and reload). Returns 0 or -ENOENT. */
int mpop_privsep_resolve_login(const char *login_user);
/* Drop to the unprivileged login user, chroot to dir when root and dir exists. */
int mpop_privsep_drop_login(const char *login_user, const char *chroot_dir);
