/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Everything between accept and the drop to the mailbox owner: the pre-login process, the
 * privileged authentication loop, the drop. */
#pragma once

#include "config.h"
#include "session.h"

/* Serve one connection to its end. Runs as root (then separates privileges) or as an
 * ordinary user (then serves that user's own mail). Returns the process exit status. */
int mpop_login_run(const MpopConfig *cfg, MpopConnection *conn);

/* [server] login_reuse > 1 (the daemon). The daemon forks a pre-login process into this: it
 * drops privileges, confines itself and serves the connections handed to it over ctl in turn
 * (prelogin-pool.h) until the daemon closes ctl. */
G_GNUC_NORETURN void mpop_login_pool_main(const MpopConfig *cfg, MpopTlsContext *tls, int ctl,
					  pid_t daemon);
/* In a connection process the daemon forked: hand the connection to the pre-login process
 * pid (its control socket ctl) instead of forking one. */
void mpop_login_use_pool(pid_t pid, int ctl);
/* After mpop_login_run(): a pre-login process given but not used (the connection was
 * refused before the login) is told so, and can serve the next one. */
void mpop_login_release_pool(void);
