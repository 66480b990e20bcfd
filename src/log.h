/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Structured logging: journald records with per-session fields, stderr otherwise. */
#pragma once

#include <glib.h>

typedef enum {
	MPOP_LOG_ERR = 3,
	MPOP_LOG_WARNING = 4,
	MPOP_LOG_NOTICE = 5,
	MPOP_LOG_INFO = 6,
	MPOP_LOG_DEBUG = 7,
} MpopLogLevel;

/* Initialise: picks journald when stderr is connected to the journal (JOURNAL_STREAM)
 * or force_journal is set, stderr otherwise. max_level filters records. */
void mpop_log_init(const char *ident, MpopLogLevel max_level, gboolean force_journal);
void mpop_log_set_level(MpopLogLevel max_level);
MpopLogLevel mpop_log_get_level(void);

/* Per-session fields added to every record from now on (NULL clears one).
 * Values are untrusted: they are escaped and capped before use. */
void mpop_log_set_session(const char *session_id, const char *peer);
void mpop_log_set_user(const char *user);
/* Log this session's user at debug detail regardless of the global level. */
void mpop_log_set_user_detail(gboolean detail);

/* A record with MPOPD_EVENT=event (may be NULL) and extra "KEY=value" fields
 * (NULL-terminated list after the format's arguments is not used: pass extra fields
 * in the fields array, may be NULL). Never pass a password. */
void mpop_log_event(MpopLogLevel level, const char *event, const char *const *fields,
		    const char *fmt, ...) G_GNUC_PRINTF(4, 5);

#define mpop_log(level, ...) mpop_log_event((level), NULL, NULL, __VA_ARGS__)
#define mpop_log_err(...) mpop_log(MPOP_LOG_ERR, __VA_ARGS__)
#define mpop_log_warning(...) mpop_log(MPOP_LOG_WARNING, __VA_ARGS__)
#define mpop_log_notice(...) mpop_log(MPOP_LOG_NOTICE, __VA_ARGS__)
#define mpop_log_info(...) mpop_log(MPOP_LOG_INFO, __VA_ARGS__)
#define mpop_log_debug(...) mpop_log(MPOP_LOG_DEBUG, __VA_ARGS__)

/* Hand every record that passes the level filter to fn instead of writing it (the pre-login
 * process forwards its records to the privileged parent). fn NULL: write again. Extra
 * fields are not forwarded. */
typedef void (*MpopLogForwardFn)(MpopLogLevel level, const char *event, const char *msg,
				 gpointer ctx);
void mpop_log_set_forward(MpopLogForwardFn fn, gpointer ctx);

/* Parse "err", "warning", "notice", "info", "debug". Returns FALSE on anything else. */
gboolean mpop_log_level_from_string(const char *s, MpopLogLevel *out_level);
