/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One client connection: buffers, idle timeouts, privilege separation, streaming. */
#pragma once

#include <glib.h>
#include "config.h"

typedef struct {
	int fd_in;
	int fd_out;
	char *peer;  /* "addr:port" or "local" */
	char *local; /* local "addr:port" or NULL */
	char *session_id;
} MpopConnection;

/* Serve one POP3 session on conn to its end. Returns the process exit status. Runs as root
 * (then separates privileges) or as an ordinary user (then serves that user's own mail). */
int mpop_session_run(const MpopConfig *cfg, MpopConnection *conn);
