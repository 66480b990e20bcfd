/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The ways a connection arrives: systemd Accept=yes, Accept=no, inetd, legacy daemon. */
#pragma once

#include <glib.h>
#include "config.h"

typedef enum {
	MPOP_MODE_AUTO,	  /* decide from LISTEN_FDS and stdin */
	MPOP_MODE_INETD,  /* stdin/stdout is the connection */
	MPOP_MODE_DAEMON, /* bind and accept ourselves (legacy) */
} MpopRunMode;

typedef struct {
	MpopRunMode mode;
	const char *config_path;
	char *port; /* legacy "mpopd PORT" override, NULL otherwise */
	gboolean foreground;
	gboolean no_pidfile;
	gboolean tls; /* --tls: the connection (inetd, Accept=yes) starts with TLS */
	int proxy; /* --proxy-protocol: MPOP_PROXY_* bits for that connection, -1: the config's */
} MpopListenOptions;

/* Run mpopd the way it was started; takes ownership of cfg (a reload replaces it).
 * Returns the exit status. */
int mpop_listener_run(MpopConfig *cfg, const MpopListenOptions *opts);
