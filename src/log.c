/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Structured logging with per-session fields: journald records, syslog lines of key=value
 * pairs, or stderr lines; never on the client's connection. */
#include "log.h"
#include "sd.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Untrusted values (peer names, user names) are escaped and capped at this length. */
#define FIELD_CAP 128
/* A syslog message text is cut here, before escaping: one record stays one datagram. */
#define SYSLOG_MSG_CAP 2048

static struct {
	char *ident;
	MpopLogLevel level;
	MpopLogTarget target; /* JOURNAL, SYSLOG or STDERR */
	gboolean stderr_ok;   /* stderr may carry text: the fallback when a target fails */
	char *syslog_path;
	int syslog_fd; /* connected at the first syslog record; -1: not yet, or lost */
	gboolean user_detail;
	char *session;
	char *peer;
	char *proxy;
	char *user;
	MpopLogForwardFn forward;
	gpointer forward_ctx;
} log_state = {.level = MPOP_LOG_INFO,
	       .target = MPOP_LOG_TARGET_STDERR,
	       .stderr_ok = TRUE,
	       .syslog_fd = -1};

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

/* Classic inetd, xinetd and tcpd hand the connection over on fds 0, 1 and 2: a socket on
 * stderr is the client (or another program's socket) unless it is the journal stream, and
 * so is a pipe or FIFO that stdin also is. /dev/null (the detached daemon) takes nothing. */
static gboolean
probe_stderr(gboolean journal_stream)
{
	struct stat st, in;

	if (fstat(STDERR_FILENO, &st) < 0)
		return FALSE;
	if (S_ISCHR(st.st_mode))
		return st.st_rdev != makedev(1, 3);
	if (S_ISSOCK(st.st_mode))
		return journal_stream;
	return fstat(STDIN_FILENO, &in) < 0 || in.st_dev != st.st_dev || in.st_ino != st.st_ino;
}

MpopLogTarget
mpop_log_pick(MpopLogTarget want, gboolean interactive, gboolean stderr_journal,
	      gboolean stderr_usable, gboolean journal_socket)
{
	switch (want) {
	case MPOP_LOG_TARGET_JOURNAL:
	case MPOP_LOG_TARGET_SYSLOG:
		return want;
	case MPOP_LOG_TARGET_STDERR:
		if (stderr_usable)
			return want;
		/* stderr is the client (or /dev/null): log where a daemon would. */
		interactive = FALSE;
		break;
	case MPOP_LOG_TARGET_AUTO:
		break;
	}
	if (stderr_journal)
		return MPOP_LOG_TARGET_JOURNAL;
	if (interactive && stderr_usable)
		return MPOP_LOG_TARGET_STDERR;
	return journal_socket ? MPOP_LOG_TARGET_JOURNAL : MPOP_LOG_TARGET_SYSLOG;
}

static void
syslog_close(void)
{
	if (log_state.syslog_fd >= 0)
		close(log_state.syslog_fd);
	log_state.syslog_fd = -1;
}

void
mpop_log_open(MpopLogTarget target, gboolean interactive, const char *syslog_socket)
{
	gboolean journal_stream = stderr_is_journal();
	const char *path = syslog_socket && *syslog_socket ? syslog_socket : MPOP_LOG_SYSLOG_SOCKET;

	log_state.stderr_ok = probe_stderr(journal_stream);
	log_state.target = mpop_log_pick(target, interactive, journal_stream, log_state.stderr_ok,
					 access(MPOP_LOG_JOURNAL_SOCKET, F_OK) == 0);
	if (log_state.target != MPOP_LOG_TARGET_SYSLOG || g_strcmp0(path, log_state.syslog_path))
		syslog_close();
	if (g_strcmp0(path, log_state.syslog_path) != 0) {
		g_free(log_state.syslog_path);
		log_state.syslog_path = g_strdup(path);
	}
}

void
mpop_log_init(const char *ident, MpopLogLevel max_level)
{
	g_free(log_state.ident);
	log_state.ident = g_strdup(ident);
	log_state.level = max_level;
	mpop_log_open(MPOP_LOG_TARGET_AUTO, TRUE, NULL);
}

MpopLogTarget
mpop_log_get_target(void)
{
	return log_state.target;
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
mpop_log_set_proxy(const char *proxy)
{
	set_field(&log_state.proxy, proxy);
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
	/* The process that forwards (the network-facing one) keeps no way to write to syslog. */
	if (fn)
		syslog_close();
}

void
mpop_log_set_user_detail(gboolean detail)
{
	log_state.user_detail = detail;
}

/* Bytes a reader could take for a line end, a field separator or a terminal control. */
static void
append_escaped(GString *out, const char *s, gboolean quoted)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '\r')
			g_string_append(out, "\\r");
		else if (*p == '\n')
			g_string_append(out, "\\n");
		else if (*p == '\t')
			g_string_append(out, "\\t");
		else if (*p < 0x20 || *p > 0x7e)
			g_string_append_printf(out, "\\x%02x", *p);
		else if (quoted && (*p == '"' || *p == '\\')) {
			g_string_append_c(out, '\\');
			g_string_append_c(out, (char)*p);
		} else
			g_string_append_c(out, (char)*p);
	}
}

void
mpop_log_append_kv(GString *line, const char *key, const char *value)
{
	gboolean bare = *value != '\0';

	for (const unsigned char *p = (const unsigned char *)value; *p && bare; p++)
		bare = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
	if (line->len)
		g_string_append_c(line, ' ');
	g_string_append_printf(line, "%s=", key);
	if (bare) {
		g_string_append(line, value);
		return;
	}
	g_string_append_c(line, '"');
	append_escaped(line, value, TRUE);
	g_string_append_c(line, '"');
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
	if (log_state.proxy)
		g_string_append_printf(line, "proxy=%s ", log_state.proxy);
	if (log_state.user)
		g_string_append_printf(line, "user=<%s> ", log_state.user);
	if (event)
		g_string_append_printf(line, "event=%s ", event);
	append_escaped(line, msg, FALSE);
	for (const char *const *f = fields; f && *f; f++) {
		g_string_append_c(line, ' ');
		append_escaped(line, *f, FALSE);
	}
	g_string_append_c(line, '\n');
	if (mpop_write_all(STDERR_FILENO, line->str, line->len) < 0)
		return; /* nowhere left to say it */
}

static int
syslog_connect(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(log_state.syslog_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, log_state.syslog_path, strlen(log_state.syslog_path) + 1);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	log_state.syslog_fd = fd;
	return 0;
}

/* One datagram; a syslog daemon that restarted has a new socket: connect again once. */
static gboolean
syslog_send(const GString *rec)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		ssize_t n;

		if (log_state.syslog_fd < 0 && syslog_connect() < 0)
			return FALSE;
		do
			n = send(log_state.syslog_fd, rec->str, rec->len, MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n >= 0)
			return TRUE;
		syslog_close();
	}
	return FALSE;
}

/* RFC 3164 §4.1: "<PRI>Mmm dd hh:mm:ss TAG[pid]: MSG", local time, English month names;
 * then the record as key=value pairs. */
static gboolean
log_syslog(MpopLogLevel level, const char *event, const char *const *fields, const char *msg)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	g_autoptr(GString) rec = g_string_new(NULL);
	g_autoptr(GString) body = g_string_new(NULL);
	g_autofree char *text = g_strndup(msg, SYSLOG_MSG_CAP);
	time_t now = time(NULL);
	struct tm tm;

	if (!localtime_r(&now, &tm))
		memset(&tm, 0, sizeof(tm));
	g_string_append_printf(rec, "<%d>%s %2d %02d:%02d:%02d %s[%d]: ", LOG_MAIL | (int)level,
			       months[tm.tm_mon % 12], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			       log_state.ident ? log_state.ident : "mpopd", (int)getpid());
	if (log_state.session)
		mpop_log_append_kv(body, "session", log_state.session);
	if (log_state.peer)
		mpop_log_append_kv(body, "peer", log_state.peer);
	if (log_state.proxy)
		mpop_log_append_kv(body, "proxy", log_state.proxy);
	if (log_state.user)
		mpop_log_append_kv(body, "user", log_state.user);
	if (event)
		mpop_log_append_kv(body, "event", event);
	mpop_log_append_kv(body, "msg", text);
	for (const char *const *f = fields; f && *f; f++) {
		const char *eq = strchr(*f, '=');
		g_autofree char *key = g_ascii_strdown(*f, eq ? eq - *f : -1);
		mpop_log_append_kv(body, key, eq ? eq + 1 : "");
	}
	g_string_append_len(rec, body->str, (gssize)body->len);
	return syslog_send(rec);
}

static gboolean
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
	if (log_state.proxy)
		g_ptr_array_add(strs, g_strdup_printf("MPOPD_PROXY=%s", log_state.proxy));
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
	return mpop_sd_journal_sendv(iov, (int)strs->len) >= 0;
}

void
mpop_log_event(MpopLogLevel level, const char *event, const char *const *fields, const char *fmt,
	       ...)
{
	g_autofree char *msg = NULL;
	gboolean ok = FALSE;
	va_list ap;

	if (level > log_state.level && !(log_state.user_detail && level == MPOP_LOG_DEBUG))
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (log_state.forward) {
		log_state.forward(level, event, msg, log_state.forward_ctx);
		return;
	}
	switch (log_state.target) {
	case MPOP_LOG_TARGET_JOURNAL:
		ok = log_journal(level, event, fields, msg);
		break;
	case MPOP_LOG_TARGET_SYSLOG:
		ok = log_syslog(level, event, fields, msg);
		break;
	case MPOP_LOG_TARGET_AUTO:
	case MPOP_LOG_TARGET_STDERR:
		log_stderr(level, event, fields, msg);
		return;
	}
	/* A journal or syslog that is not there: stderr, when it is not the client. */
	if (!ok && log_state.stderr_ok)
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
