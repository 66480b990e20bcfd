/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The pure POP3 protocol engine: (state, line) -> (reply, action). No syscalls. */
#pragma once

#include <glib.h>
#include "auth.h"
#include "linebuf.h"
#include "mailbox.h"

typedef enum {
	MPOP_STATE_AUTHORIZATION,
	MPOP_STATE_TRANSACTION,
	MPOP_STATE_CLOSED,
} MpopState;

typedef enum {
	MPOP_ACT_REPLY,	  /* send the reply, read the next line */
	MPOP_ACT_CLOSE,	  /* send the reply, close without UPDATE */
	MPOP_ACT_AUTH,	  /* authenticate p->auth_user / p->auth_pass, then
			   * mpop_pop3_auth_done(); the reply is empty */
	MPOP_ACT_STREAM,  /* reply is the +OK line; stream message p->act_msg with
			   * p->act_top_lines (< 0: all) via mpop_mailbox_stream() */
	MPOP_ACT_UPDATE,  /* QUIT in TRANSACTION: commit, then mpop_pop3_update_done();
			   * the reply is empty */
	MPOP_ACT_STLS,	  /* send the reply, discard pending input, start TLS */
	MPOP_ACT_LISTING, /* reply is the +OK line; call mpop_pop3_listing_step() until it
			   * returns TRUE (LIST or UIDL of the whole maildrop, in pieces) */
} MpopAction;

typedef struct {
	const char *greeting;	  /* text after "+OK " */
	guint max_bad_commands;	  /* -ERR and close after this many */
	gboolean tls_available;	  /* STLS may be offered */
	gboolean tls_active;	  /* the connection is already encrypted */
	gboolean allow_plaintext; /* USER/PASS and AUTH PLAIN without TLS */
} MpopPop3Params;

typedef struct {
	MpopState state;
	MpopPop3Params params;
	MpopMailbox *mb; /* TRANSACTION only; not owned */
	char *user;	 /* from USER, or the authenticated user */
	gboolean user_given;
	gboolean sasl_wait; /* AUTH PLAIN sent "+ ", waiting for the response line */
	guint bad_commands;
	guint capa_count; /* CAPA commands so far */
	guint auth_lists; /* AUTH without arguments so far */
	/* for MPOP_ACT_AUTH (owned; the password is wiped by mpop_pop3_auth_done) */
	char *auth_user;
	char *auth_pass;
	/* for MPOP_ACT_LISTING */
	gboolean list_uidl;
	guint list_next;
	/* for MPOP_ACT_STREAM */
	guint act_msg;
	gint64 act_top_lines;
	/* statistics for the logout record */
	guint retr_count;
	guint64 retr_octets;
	guint top_count;
	guint64 top_octets;
} MpopPop3;

void mpop_pop3_init(MpopPop3 *p, const MpopPop3Params *params);
/* Free owned strings (wiping secrets). */
void mpop_pop3_clear(MpopPop3 *p);

/* The greeting line, CRLF-terminated, appended to reply. */
void mpop_pop3_greeting(MpopPop3 *p, GString *reply);

/* One command line (without its line end; untrusted). Appends the reply (CRLF-terminated
 * lines) to reply and returns what the caller must do next. */
MpopAction mpop_pop3_feed(MpopPop3 *p, const char *line, size_t len, GString *reply);

/* Append up to max_lines more lines of the pending listing; TRUE once it is complete
 * (the terminating "." included). */
gboolean mpop_pop3_listing_step(MpopPop3 *p, GString *reply, guint max_lines);

/* The line reader discarded a line (too long or containing NUL): one -ERR, counted as a
 * bad command. */
MpopAction mpop_pop3_line_error(MpopPop3 *p, MpopLineStatus status, GString *reply);

/* Result of MPOP_ACT_AUTH. For OK the caller then opens the maildrop and calls
 * mpop_pop3_enter_transaction() or mpop_pop3_open_failed(). */
MpopAction mpop_pop3_auth_done(MpopPop3 *p, MpopAuthResult result, GString *reply);

/* Enter TRANSACTION with mb (not owned) for user; appends the +OK for the login. */
void mpop_pop3_enter_transaction(MpopPop3 *p, MpopMailbox *mb, const char *user, GString *reply);

/* The maildrop could not be opened (error->code MPOP_ERROR_IN_USE / TEMP / PERM):
 * appends the -ERR with its response code; returns MPOP_ACT_CLOSE. */
MpopAction mpop_pop3_open_failed(MpopPop3 *p, const GError *error, GString *reply);

/* A message could not be streamed before anything was sent. */
void mpop_pop3_stream_failed(MpopPop3 *p, const GError *error, GString *reply);

/* Result of MPOP_ACT_UPDATE. Appends the final reply; returns MPOP_ACT_CLOSE. */
MpopAction mpop_pop3_update_done(MpopPop3 *p, gboolean ok, const GError *error, GString *reply);

/* Parse a message-number argument strictly: 1..n digits only, no sign, no spaces, no
 * overflow. Returns TRUE and the value. */
gboolean mpop_pop3_parse_number(const char *s, guint64 max, guint64 *out_value);
