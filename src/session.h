/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One client's command loop: read lines, feed the engine, queue replies, stream messages. */
#pragma once

#include <glib.h>
#include <sys/socket.h>
#include "auth.h"
#include "config.h"
#include "linebuf.h"
#include "mailbox.h"
#include "penalty.h"
#include "pop3.h"
#include "stream.h"
#include "tls.h"

/* How a connection arrived (filled by the listener). */
typedef struct {
	int fd_in;
	int fd_out;
	char *peer;	  /* "addr:port" or "local" */
	char *local;	  /* local "addr:port" or NULL */
	char *peer_host;  /* the peer's address without port, or "local" */
	char *local_host; /* the local address without port, or NULL */
	struct sockaddr_storage peer_addr, local_addr; /* parsed; lengths 0 when unknown */
	socklen_t peer_len, local_len;
	char *proxy; /* the load balancer's address when a PROXY header named the peer, else NULL */
	char *session_id;
	gboolean loopback;     /* the peer is a loopback address (or a local pipe) */
	gboolean implicit_tls; /* RFC 8314: the connection starts with a TLS handshake */
	MpopTlsContext *tls;   /* TLS configured for this connection, else NULL; not owned */
	char *tls_info;	       /* TLS held by the pre-login process: "protocol cipher" */
	MpopPenalty *penalty;  /* the failure penalty table, NULL: none; not owned */
	gboolean trusted;      /* the peer is in [access] trusted_networks: no failure penalty */
} MpopConnection;

typedef struct {
	const MpopConfig *cfg;
	MpopConnection *conn;
	MpopStream *st; /* owned */
	MpopLinebuf lb;
	MpopPop3 p;
	MpopMailbox *mb;
	guint64 login_deadline; /* monotonic usec; 0 once logged in */
	gboolean quit_seen;
} MpopSession;

typedef enum {
	MPOP_SESSION_END,  /* the session is over (replies flushed) */
	MPOP_SESSION_AUTH, /* p.auth_user / p.auth_pass need a verdict: mpop_session_auth_done() */
} MpopSessionStep;

/* A session on st (taken over) for conn. login_deadline_s from now (0: none). */
MpopSession *mpop_session_new(const MpopConfig *cfg, MpopConnection *conn, MpopStream *st,
			      guint login_deadline_s);
/* Logs a session that ends without QUIT, closes the mailbox (no UPDATE), frees the stream. */
void mpop_session_free(MpopSession *s);

/* The implicit TLS handshake where the connection needs one, then the greeting. FALSE: the
 * connection is to be closed (logged). */
gboolean mpop_session_start(MpopSession *s);

/* Read and answer commands until the session ends or a login needs a verdict. */
MpopSessionStep mpop_session_loop(MpopSession *s);

/* The verdict on p.auth_user / p.auth_pass; queues the answer unless OK (the login is
 * answered by mpop_session_transaction()). FALSE when the session must end. */
gboolean mpop_session_auth_done(MpopSession *s, MpopAuthResult result);

/* After a successful login, running as the mailbox owner: open the maildrop and enter
 * TRANSACTION (queues +OK, or -ERR and FALSE when it cannot be opened). */
gboolean mpop_session_transaction(MpopSession *s, const MpopAuthIdentity *id);
