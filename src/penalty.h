/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The brute-force penalty: recent failed logins per source address and per user name, kept
 * in a bounded table that every connection process shares through one descriptor. */
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include "config.h"

/* Slots in the table (a fixed-size file of 32 + 32 * slots bytes). */
#define MPOP_PENALTY_SLOTS 8192

typedef struct MpopPenalty MpopPenalty;

typedef struct {
	gboolean blocked;      /* refuse without checking the password ([SYS/TEMP]) */
	guint64 delay_usec;    /* answer a failure this much later than failure_delay */
	guint source_failures; /* recent failures from the client's address (IPv6: its /64) */
	guint user_failures;   /* recent failures for the user name */
} MpopPenaltyVerdict;

/* Open the table: the file at path (created 0600, its directory 0700 when missing), or with
 * path NULL an anonymous memory file that forked processes share. A file whose header does
 * not match (foreign, truncated, another version) is reinitialised. */
MpopPenalty *mpop_penalty_open(const char *path, GError **error);

/* The descriptor that holds the table, -1 after mpop_penalty_close(). */
int mpop_penalty_fd(const MpopPenalty *pen);

/* Let go of the table in this process (a process that must not touch it: the pre-login
 * process, the session); the handle stays valid and answers "no penalty". */
void mpop_penalty_close(MpopPenalty *pen);

void mpop_penalty_free(MpopPenalty *pen);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopPenalty, mpop_penalty_free)

/* The verdict for a login by user (untrusted; NULL or "" for none) from peer (NULL or a
 * non-IP address: no source record) at now (CLOCK_REALTIME seconds). Returns 0, or -errno
 * when the table cannot be read (then *out says no penalty). */
int mpop_penalty_query(MpopPenalty *pen, const MpopConfig *cfg, const struct sockaddr *peer,
		       socklen_t peer_len, const char *user, gint64 now, MpopPenaltyVerdict *out);

/* Count a failed login (success FALSE) for the source and the user, or forget both records
 * after a successful one. Returns 0 or -errno. */
int mpop_penalty_record(MpopPenalty *pen, const MpopConfig *cfg, const struct sockaddr *peer,
			socklen_t peer_len, const char *user, gboolean success, gint64 now);

/* The penalty delay (beyond failure_delay) for the attempt after failures recent failures. */
guint64 mpop_penalty_delay_usec(const MpopConfig *cfg, guint failures);
