/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The three systemd protocols the server speaks (readiness notification, socket passing, the
 * journal's native protocol), written from their documentation so mpopd needs no libsystemd. */
#pragma once

#include <glib.h>
#include <sys/uio.h>

/* sd_listen_fds(3): passed sockets start at fd 3. */
#define MPOP_SD_LISTEN_FDS_START 3
#define MPOP_SD_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* sd_notify(3): send state ("READY=1", ...) to $NOTIFY_SOCKET (a path, or "@" for the
 * abstract namespace). Returns > 0 when sent, 0 when $NOTIFY_SOCKET is unset, else -errno. */
int mpop_sd_notify(const char *state);
/* mpop_sd_notify with a printf format. */
int mpop_sd_notifyf(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

/* sd_listen_fds_with_names(3): the number of sockets passed from fd 3 on when $LISTEN_PID is
 * this process (sets FD_CLOEXEC on each), 0 when none are for us, -errno when the variables
 * are malformed. out_names (optional; g_strfreev) gets one name per fd ("unknown" without
 * $LISTEN_FDNAMES), only when the result is > 0. unset: remove LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES from the environment whatever the result. */
int mpop_sd_listen_fds_with_names(gboolean unset, char ***out_names);

/* sd_is_socket(3): 1 if fd is a socket of family (AF_UNSPEC: any), type (0: any) and
 * listening state (-1: either), 0 if not, -errno on error. */
int mpop_sd_is_socket(int fd, int family, int type, int listening);

/* sd_journal_sendv(3): one journal record of "FIELD=value" items to MPOP_SD_JOURNAL_SOCKET.
 * Returns 0 when sent or when no journal socket exists (as libsystemd), else -errno
 * (-EINVAL: a field name journald would refuse). */
int mpop_sd_journal_sendv(const struct iovec *iov, int n);
/* The same to another socket path (for the unit test). */
int mpop_sd_journal_sendv_to(const char *path, const struct iovec *iov, int n);
