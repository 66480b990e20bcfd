/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside the TLS module: the session's own TLS 1.3 record layer (tls-record.c), which
 * tls-openssl.c puts in the module's table. */
#pragma once

#include "tls-module.h"

/* The core's logger, for the records' protocol errors. */
void mpop_tls_record_set_host(const MpopTlsHost *host);

/* See mpop_tls_resume() in tls.h. */
gboolean mpop_tls_record_resume(MpopStream *st, const MpopTlsState *state, GError **error);
