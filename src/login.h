/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Everything between accept and the drop to the mailbox owner: the pre-login process, the
 * privileged authentication loop, the drop. */
#pragma once

#include "config.h"
#include "session.h"

/* Serve one connection to its end. Runs as root (then separates privileges) or as an
 * ordinary user (then serves that user's own mail). Returns the process exit status. */
int mpop_login_run(const MpopConfig *cfg, MpopConnection *conn);
