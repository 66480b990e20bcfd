/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Structured logging: journald records with per-session fields, stderr otherwise. */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

/* Untrusted values (peer names, user names) are escaped and capped at this length. */
#define FIELD_CAP 128

static struct {
	char *ident;
	MpopLogLevel level;
	gboolean journal;
	gboolean user_detail;
	char *session;
	char *peer;
	char *user;
	MpopLogForwardFn forward;
	gpointer forward_ctx;
} log_state = {.level = MPOP_LOG_INFO};

static gboolean
stderr_is_journal(void)
{
	const char *js = g_getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd.exec(5): JOURNAL_STREAM is "dev:ino" of the stream stderr is connected to. */
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return FALSE;
	if (fstat(STDERR_FILENO, &st) < 0)
		return FALSE;
	return st.st_dev == dev && st.st_ino == ino;
}

void
mpop_log_init(const char *ident, MpopLogLevel max_level, gboolean force_journal)
{
	g_free(log_state.ident);
	log_state.ident = g_strdup(ident);
	log_state.level = max_level;
	log_state.journal = force_journal || stderr_is_journal();
}

void
mpop_log_set_level(MpopLogLevel max_level)
{
	log_state.level = max_level;
}

MpopLogLevel
mpop_log_get_level(void)
{
	return log_state.level;
}

static void
set_field(char **slot, const char *value)
{
	g_free(*slot);
	*slot = value ? mpop_escape_excerpt(value, strlen(value), FIELD_CAP) : NULL;
}

void
mpop_log_set_session(const char *session_id, const char *peer)
{
	set_field(&log_state.session, session_id);
	set_field(&log_state.peer, peer);
}

void
mpop_log_set_user(const char *user)
{
	set_field(&log_state.user, user);
}

void
mpop_log_set_forward(MpopLogForwardFn fn, gpointer ctx)
{
	log_state.forward = fn;
	log_state.forward_ctx = ctx;
}

void
mpop_log_set_user_detail(gboolean detail)
{
	log_state.user_detail = detail;
}

static void
log_stderr(MpopLogLevel level, const char *event, const char *const *fields, const char *msg)
{
	g_autoptr(GString) line = g_string_new(NULL);
	static const char *const names[] = {"emerg",   "alert",	 "crit", "error",
					    "warning", "notice", "info", "debug"};

	g_string_append_printf(line, "%s[%d]: %s: ", log_state.ident ? log_state.ident : "mpopd",
			       (int)getpid(), names[level & 7]);
	if (log_state.session)
		g_string_append_printf(line, "session=%s ", log_state.session);
	if (log_state.peer)
		g_string_append_printf(line, "peer=%s ", log_state.peer);
	if (log_state.user)
		g_string_append_printf(line, "user=<%s> ", log_state.user);
	if (event)
		g_string_append_printf(line, "event=%s ", event);
	g_string_append(line, msg);
	for (const char *const *f = fields; f && *f; f++)
		g_string_append_printf(line, " %s", *f);
	g_string_append_c(line, '\n');
	(void)mpop_write_all(STDERR_FILENO, line->str, line->len);
}

static void
log_journal(MpopLogLevel level, const char *event, const char *const *fields, const char *msg)
{
	g_autoptr(GPtrArray) strs = g_ptr_array_new_with_free_func(g_free);
	g_autofree struct iovec *iov = NULL;

	g_ptr_array_add(strs, g_strdup_printf("MESSAGE=%s", msg));
	g_ptr_array_add(strs, g_strdup_printf("PRIORITY=%d", (int)level));
	g_ptr_array_add(strs, g_strdup_printf("SYSLOG_IDENTIFIER=%s",
					      log_state.ident ? log_state.ident : "mpopd"));
	if (log_state.session)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_SESSION=%s", log_state.session));
	if (log_state.peer)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_PEER=%s", log_state.peer));
	if (log_state.user)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_USER=%s", log_state.user));
	if (event)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_EVENT=%s", event));
	for (const char *const *f = fields; f && *f; f++)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_%s", *f));
	iov = g_new0(struct iovec, strs->len);
	for (guint i = 0; i < strs->len; i++) {
		iov[i].iov_base = g_ptr_array_index(strs, i);
		iov[i].iov_len = strlen(g_ptr_array_index(strs, i));
	}
	if (sd_journal_sendv(iov, (int)strs->len) < 0)
		log_stderr(level, event, fields, msg);
}

void
mpop_log_event(MpopLogLevel level, const char *event, const char *const *fields, const char *fmt,
	       ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	if (level > log_state.level && !(log_state.user_detail && level == MPOP_LOG_DEBUG))
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (log_state.forward)
		log_state.forward(level, event, msg, log_state.forward_ctx);
	else if (log_state.journal)
		log_journal(level, event, fields, msg);
	else
		log_stderr(level, event, fields, msg);
}

gboolean
mpop_log_level_from_string(const char *s, MpopLogLevel *out_level)
{
	static const struct {
		const char *name;
		MpopLogLevel level;
	} levels[] = {
		{"err", MPOP_LOG_ERR},	     {"error", MPOP_LOG_ERR}, {"warning", MPOP_LOG_WARNING},
		{"notice", MPOP_LOG_NOTICE}, {"info", MPOP_LOG_INFO}, {"debug", MPOP_LOG_DEBUG},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(levels); i++) {
		if (g_ascii_strcasecmp(s, levels[i].name) == 0) {
			*out_level = levels[i].level;
			return TRUE;
		}
	}
	return FALSE;
}
