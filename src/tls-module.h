/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The interface between the core (tls.c) and the TLS module mpopd-tls.so (tls-openssl.c,
 * tls-record.c): one exported table, checked by tls.c before any of its functions is called. */
#pragma once

#include <glib.h>
#include "config.h"
#include "stream.h"
#include "tls.h"

/* Raise on any change to MpopTlsModule, MpopTlsHost, MpopTlsState or to how the module uses
 * MpopConfig or MpopStream. */
#define MPOP_TLS_MODULE_ABI 1
#define MPOP_TLS_MODULE_FILE "mpopd-tls.so"
#define MPOP_TLS_MODULE_SYMBOL "mpop_tls_module"

/* What the module may call in the core (it has no log of its own). */
typedef struct {
	/* One informational record with the event name (e.g. "tls") and the message. */
	void (*log_info)(const char *event, const char *message);
} MpopTlsHost;

/* The first four fields stay where they are in every ABI, so a mismatch can be reported. */
typedef struct {
	guint abi;	     /* MPOP_TLS_MODULE_ABI of the module's build */
	gsize config_size;   /* sizeof(MpopConfig) and sizeof(MpopStream) there: a module */
	gsize stream_size;   /* from another tree with the same ABI number is still refused */
	const char *version; /* the build's MPOPD_VERSION, for the error message */
	gsize state_size;    /* sizeof(MpopTlsState) */
	/* Called once, right after loading; host stays valid for ever. */
	void (*set_host)(const MpopTlsHost *host);
	/* See tls.h. *out_warning (set only on success, may stay NULL) is for the log, e.g.
	 * an expired certificate; the module does not log. */
	MpopTlsContext *(*context_new)(const MpopConfig *cfg, char **out_warning, GError **error);
	void (*context_free)(MpopTlsContext *ctx);
	gboolean (*start)(MpopStream *st, MpopTlsContext *ctx, int timeout_ms, GError **error);
	void (*relay)(MpopStream *st, int plain_fd, int timeout_ms);
	gboolean (*export)(MpopStream *st, MpopTlsState *out);
	gboolean (*resume)(MpopStream *st, const MpopTlsState *state, GError **error);
} MpopTlsModule;

/* Defined by the module (its one exported symbol). */
extern const MpopTlsModule mpop_tls_module;
