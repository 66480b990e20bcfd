/* SPDX-License-Identifier: GPL-2.0-or-later */
/* [server] login_reuse > 1 in the daemon: a pre-login process serves connections one after
 * the other. The root connection process hands it each connection over the process's control
 * socket: a record of how the connection arrived, with the client's socket and the two socket
 * pairs the connection process would have shared with a child of its own (SCM_RIGHTS). */
#pragma once

#include <glib.h>
#include "session.h"

/* The record: "MPOPC", a flags byte, six u32-length-prefixed strings (0xffffffff: NULL) and
 * the two addresses as u32-length-prefixed bytes. */
#define MPOP_POOL_MAX_STRING 512
#define MPOP_POOL_MAX_RECORD (8 + 6 * (4 + MPOP_POOL_MAX_STRING) + 2 * (4 + 128))

/* What a pre-login process says on its control socket when it is done with a connection
 * and ready for the next. Anything else from it ends it. */
#define MPOP_POOL_IDLE 'I'

GBytes *mpop_pool_encode(const MpopConnection *conn);
/* Fills the strings, addresses and flags of *out (fds, tls and penalty untouched). Returns 0
 * or -EINVAL; free the strings with mpop_pool_connection_clear(). */
int mpop_pool_decode(const guint8 *data, gsize len, MpopConnection *out);
void mpop_pool_connection_clear(MpopConnection *conn);

/* Send conn with the client socket, chan and data (-1: none) over ctl. Returns 0 or -errno. */
int mpop_pool_send(int ctl, const MpopConnection *conn, int client, int chan, int data);
/* Tell the process that the connection it was kept for will not come (refused before the
 * login). Returns 0 or -errno. */
int mpop_pool_send_skip(int ctl);
/* Receive one; *out as from mpop_pool_decode, with fd_in = fd_out = the client socket.
 * Returns 1, 2 for a skip, 0 at the end (the daemon closed ctl), -errno. */
int mpop_pool_receive(int ctl, MpopConnection *out, int *chan, int *data);
