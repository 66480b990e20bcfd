/* SPDX-License-Identifier: GPL-2.0-or-later */
/* TLS for the core: the server context from [tls], TLS streams, the post-login relay. The
 * OpenSSL code is a module (mpopd-tls.so, tls-openssl.c) loaded only when [tls] is set. */
#pragma once

#include <glib.h>
#include "config.h"
#include "stream.h"
#include "tls-state.h"

/* A server context (OpenSSL's SSL_CTX inside the module); opaque here. */
typedef struct MpopTlsContext MpopTlsContext;

/* A server context from cfg's [tls] group: certificate chain and key (checked to match),
 * minimum protocol, cipher lists, security level 2, no session tickets or renegotiation.
 * Loads the TLS module first if this process has not yet (once; never unloaded), and reads
 * the files now (call as root, before forking sessions). Errors name the module or file. */
MpopTlsContext *mpop_tls_context_new(const MpopConfig *cfg, GError **error);
/* Frees a context; NULL is accepted. */
void mpop_tls_context_free(MpopTlsContext *ctx);

/* Run the server handshake on st's descriptors and switch st to TLS. Nothing queued on st
 * is sent in clear. On failure st is unusable; error says why (for one log record). ctx
 * comes from mpop_tls_context_new() in this process or a parent. */
gboolean mpop_tls_start(MpopStream *st, MpopTlsContext *ctx, int timeout_ms, GError **error);

/* Forward between the TLS stream st (the client) and plain_fd (the session) until either
 * side ends or nothing moves for timeout_ms; then close the TLS connection cleanly. st was
 * switched to TLS by mpop_tls_start(). */
void mpop_tls_relay(MpopStream *st, int plain_fd, int timeout_ms);

/* After a login over TLS 1.3 with an AEAD suite the session can protect (not the CCM ones):
 * take the connection's record state out of st, with what OpenSSL decrypted and nothing
 * read yet. st sends nothing more after this, not even close_notify. FALSE (st unchanged)
 * when the connection stays with OpenSSL and mpop_tls_relay(). */
gboolean mpop_tls_export(MpopStream *st, MpopTlsState *out);

/* Switch the plain stream st (the client's descriptors) to TLS 1.3 records protected with
 * state's keys from its sequence numbers on (RFC 8446 5.2-5.3, KeyUpdate 4.6.3). The
 * pending bytes are read first. FALSE with error when the state cannot be used. */
gboolean mpop_tls_resume(MpopStream *st, const MpopTlsState *state, GError **error);
