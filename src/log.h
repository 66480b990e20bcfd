/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Structured logging with per-session fields: journald records, syslog lines of key=value
 * pairs, or stderr lines; never on the client's connection. */
#pragma once

#include <glib.h>

typedef enum {
	MPOP_LOG_ERR = 3,
	MPOP_LOG_WARNING = 4,
	MPOP_LOG_NOTICE = 5,
	MPOP_LOG_INFO = 6,
	MPOP_LOG_DEBUG = 7,
} MpopLogLevel;

typedef enum {
	MPOP_LOG_TARGET_AUTO,
	MPOP_LOG_TARGET_JOURNAL,
	MPOP_LOG_TARGET_SYSLOG,
	MPOP_LOG_TARGET_STDERR,
} MpopLogTarget;

#define MPOP_LOG_SYSLOG_SOCKET "/dev/log"
#define MPOP_LOG_JOURNAL_SOCKET "/run/systemd/journal/socket"

/* Initialise as ident with max_level filtering records, for a person watching: the same as
 * mpop_log_open(MPOP_LOG_TARGET_AUTO, TRUE, NULL). */
void mpop_log_init(const char *ident, MpopLogLevel max_level);

/* Choose where records go (mpop_log_pick with what stderr is now). interactive: a person
 * watches stderr (-F, --check-config). syslog_socket: the AF_UNIX datagram socket of syslog
 * (NULL: MPOP_LOG_SYSLOG_SOCKET), connected at the first record. */
void mpop_log_open(MpopLogTarget target, gboolean interactive, const char *syslog_socket);
/* The target records go to now: JOURNAL, SYSLOG or STDERR. */
MpopLogTarget mpop_log_get_target(void);

/* The rule, without side effects. stderr_journal: stderr is the journal stream
 * ($JOURNAL_STREAM); stderr_usable: stderr may carry text (it is open, not /dev/null, not the
 * client's connection nor another socket); journal_socket: journald listens. stderr is
 * chosen only when usable: mpopd writes nothing but POP3 to a client. */
MpopLogTarget mpop_log_pick(MpopLogTarget want, gboolean interactive, gboolean stderr_journal,
			    gboolean stderr_usable, gboolean journal_socket);

/* Append " key=value" (no space when line is empty): value bare when it is printable ASCII
 * without spaces, quotes or backslashes, else in double quotes with \\, \", \r, \n,
 * \t and \xHH escapes; never a raw control character or a byte above 0x7e. */
void mpop_log_append_kv(GString *line, const char *key, const char *value);

void mpop_log_set_level(MpopLogLevel max_level);
MpopLogLevel mpop_log_get_level(void);

/* Per-session fields added to every record from now on (NULL clears one).
 * Values are untrusted: they are escaped and capped before use. */
void mpop_log_set_session(const char *session_id, const char *peer);
void mpop_log_set_user(const char *user);
/* The load balancer a PROXY header came through (MPOPD_PROXY), NULL: none. */
void mpop_log_set_proxy(const char *proxy);
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
 * process forwards its records to the privileged parent; it also lets go of the syslog
 * socket). fn NULL: write again. Extra fields are not forwarded. */
typedef void (*MpopLogForwardFn)(MpopLogLevel level, const char *event, const char *msg,
				 gpointer ctx);
void mpop_log_set_forward(MpopLogForwardFn fn, gpointer ctx);

/* Parse "err", "warning", "notice", "info", "debug". Returns FALSE on anything else. */
gboolean mpop_log_level_from_string(const char *s, MpopLogLevel *out_level);
