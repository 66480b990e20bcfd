/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One client's command loop: read lines, feed the engine, queue replies, stream messages. */
#include "session.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <malloc.h>
#include <string.h>

/* The TLS handshake has this long, whatever the idle timeout. */
#define TLS_HANDSHAKE_MS (30 * 1000)

static MpopPop3Params
engine_params(const MpopConfig *cfg, const MpopConnection *conn)
{
	MpopPlaintextAuth pa = mpop_config_plaintext_auth(cfg);

	return (MpopPop3Params){
		.greeting = cfg->greeting,
		.max_bad_commands = cfg->max_bad_commands,
		.tls_available = conn->tls != NULL,
		.tls_active = FALSE,
		.allow_plaintext = pa == MPOP_PLAINTEXT_ALWAYS ||
				   (pa == MPOP_PLAINTEXT_LOOPBACK && conn->loopback),
	};
}

/* The logout record: what the session retrieved (RETR=count/octets, TOP=count) and what
 * UPDATE really deleted (DELE=count/octets, 0/0 without QUIT or when UPDATE failed), read
 * by mpopdctl stats. */
static void
log_logout(const MpopSession *s, guint deleted, guint64 del_octets, const char *msg)
{
	g_autofree char *f1 =
		g_strdup_printf("RETR=%u/%" G_GUINT64_FORMAT, s->p.retr_count, s->p.retr_octets);
	g_autofree char *f2 = g_strdup_printf("TOP=%u", s->p.top_count);
	g_autofree char *f3 = g_strdup_printf("DELE=%u/%" G_GUINT64_FORMAT, deleted, del_octets);
	const char *fields[] = {f1, f2, f3, NULL};

	mpop_log_event(MPOP_LOG_INFO, "logout", fields, "%s", msg);
}

MpopSession *
mpop_session_new(const MpopConfig *cfg, MpopConnection *conn, MpopStream *st,
		 guint login_deadline_s)
{
	MpopSession *s = g_new0(MpopSession, 1);
	MpopPop3Params params = engine_params(cfg, conn);

	s->cfg = cfg;
	s->conn = conn;
	s->st = st;
	if (login_deadline_s)
		s->login_deadline = mpop_now_usec() + (guint64)login_deadline_s * G_USEC_PER_SEC;
	mpop_linebuf_init(&s->lb, MPOP_LINE_MAX);
	mpop_pop3_init(&s->p, &params);
	return s;
}

void
mpop_session_free(MpopSession *s)
{
	if (!s)
		return;
	if (s->mb && !s->quit_seen)
		log_logout(s, 0, 0, "session ended without QUIT: nothing deleted");
	mpop_pop3_clear(&s->p);
	g_clear_pointer(&s->mb, mpop_mailbox_close);
	mpop_stream_free(s->st);
	g_free(s);
}

/* Switch the connection to TLS: implicit (port 995) or after +OK to STLS. */
static gboolean
start_tls(MpopSession *s)
{
	g_autoptr(GError) error = NULL;
	int ms = TLS_HANDSHAKE_MS;

	/* A handshake trickled byte by byte is still bound by the login grace time. */
	if (s->login_deadline) {
		guint64 now = mpop_now_usec();
		guint64 left = now >= s->login_deadline ? 0 : (s->login_deadline - now) / 1000;
		ms = (int)MIN((guint64)ms, left);
	}
	if (!mpop_tls_start(s->st, s->conn->tls, ms, &error)) {
		mpop_log_event(MPOP_LOG_NOTICE, "tls-failed", NULL, "%s", error->message);
		return FALSE;
	}
	s->p.params.tls_active = TRUE;
	mpop_log_event(MPOP_LOG_DEBUG, "tls", NULL, "TLS established: %s", s->st->tls_info);
	return TRUE;
}

gboolean
mpop_session_start(MpopSession *s)
{
	if (s->conn->implicit_tls && !start_tls(s))
		return FALSE;
	mpop_pop3_greeting(&s->p, s->st->out);
	return TRUE;
}

/* Read more input. Returns 1 on data, 0 when the session is to end (EOF, idle timeout,
 * login grace time over, error; logged). */
static int
read_more(MpopSession *s)
{
	size_t space;
	char *buf = mpop_linebuf_space(&s->lb, &space);
	gint64 ms = (gint64)s->cfg->idle_timeout * 1000;
	gboolean grace = FALSE;
	ssize_t n;

	if (s->login_deadline) {
		guint64 now = mpop_now_usec();
		gint64 left =
			now >= s->login_deadline ? 0 : (gint64)(s->login_deadline - now) / 1000;
		if (left < ms) {
			ms = left;
			grace = TRUE;
		}
	}
	n = mpop_stream_read(s->st, buf, space, (int)MIN(ms, G_MAXINT));
	if (n == -ETIMEDOUT && grace) {
		mpop_log_event(MPOP_LOG_INFO, "timeout", NULL, "no login within %u s, closing",
			       s->cfg->login_timeout);
		return 0;
	}
	if (n == -ETIMEDOUT) {
		/* RFC 1939 §3: the autologout timer closes without UPDATE and without reply. */
		mpop_log_event(MPOP_LOG_INFO, "timeout", NULL, "idle for %u s, closing",
			       s->cfg->idle_timeout);
		return 0;
	}
	if (n < 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "read failed: %s",
			       g_strerror((int)-n));
		return 0;
	}
	if (n == 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "client closed the connection");
		return 0;
	}
	mpop_linebuf_commit(&s->lb, (size_t)n);
	return 1;
}

static void
log_command(MpopSession *s, const char *line, size_t len)
{
	g_autofree char *ex = NULL;
	size_t kw = 0;

	if (mpop_log_get_level() < MPOP_LOG_DEBUG && !s->p.user)
		return;
	/* A SASL response is all secret (base64 of the password): nothing of it is logged. */
	if (s->p.sasl_wait) {
		mpop_log_event(MPOP_LOG_DEBUG, "command", NULL, "C: (SASL response)");
		return;
	}
	/* Only the keyword of commands that carry secrets. */
	while (kw < len && line[kw] != ' ')
		kw++;
	if (kw == 4 && (g_ascii_strncasecmp(line, "PASS", 4) == 0 ||
			g_ascii_strncasecmp(line, "AUTH", 4) == 0))
		len = kw;
	ex = mpop_escape_excerpt(line, len, 64);
	mpop_log_event(MPOP_LOG_DEBUG, "command", NULL, "C: %s", ex);
}

/* RETR / TOP: the +OK line is queued; the message follows it in the same queue. */
static MpopAction
do_stream(MpopSession *s, size_t pre_len)
{
	g_autoptr(GError) error = NULL;
	gboolean broken = FALSE;

	if (mpop_mailbox_stream(s->mb, s->p.act_msg, s->p.act_top_lines, s->st, &broken, &error))
		return MPOP_ACT_REPLY;
	if (broken) {
		mpop_log_event(MPOP_LOG_ERR, "disconnect", NULL, "sending message %u failed: %s",
			       s->p.act_msg + 1, error ? error->message : "write error");
		s->st->broken = TRUE;
		return MPOP_ACT_CLOSE;
	}
	mpop_log_event(MPOP_LOG_ERR, "read-failed", NULL, "message %u: %s", s->p.act_msg + 1,
		       error ? error->message : "unknown error");
	/* Nothing of this reply was written: -ERR instead of the +OK. */
	g_string_truncate(s->st->out, pre_len);
	mpop_pop3_stream_failed(&s->p, error, s->st->out);
	return MPOP_ACT_REPLY;
}

static void
do_update(MpopSession *s)
{
	g_autoptr(GError) error = NULL;
	guint64 del_octets = 0;
	guint deleted = mpop_mailbox_deleted_count(s->mb, &del_octets);
	g_autofree char *msg = NULL;
	sigset_t stop, old;
	gboolean ok;

	/* Once the client said QUIT, UPDATE runs to its end: a stop or a refresh (SIGTERM),
	 * a hangup or ^C arriving meanwhile takes effect after it, never halfway through. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, &old);
	ok = mpop_mailbox_commit(s->mb, &error);
	sigprocmask(SIG_SETMASK, &old, NULL);

	s->quit_seen = TRUE;
	if (!ok)
		mpop_log_event(MPOP_LOG_ERR, "update-failed", NULL, "UPDATE failed: %s",
			       error->message);
	msg = g_strdup_printf("logout, retrieved %u (%" G_GUINT64_FORMAT " octets), deleted %u%s",
			      s->p.retr_count, s->p.retr_octets, ok ? deleted : 0,
			      ok ? "" : " (UPDATE failed)");
	log_logout(s, ok ? deleted : 0, ok ? del_octets : 0, msg);
	mpop_pop3_update_done(&s->p, ok, error, s->st->out);
}

/* RFC 2595 §4: the +OK goes out in clear, then the handshake. Anything the client sent
 * after STLS was sent before TLS and is discarded, never run inside it. */
static gboolean
do_stls(MpopSession *s)
{
	size_t pending;

	if (!mpop_stream_flush(s->st))
		return FALSE;
	mpop_stream_set_cork(s->st, FALSE);
	mpop_linebuf_pending(&s->lb, &pending);
	if (pending > 0)
		mpop_log_event(MPOP_LOG_NOTICE, "stls-injection", NULL,
			       "discarded %zu bytes sent after STLS before the handshake", pending);
	mpop_linebuf_clear(&s->lb);
	return start_tls(s);
}

MpopSessionStep
mpop_session_loop(MpopSession *s)
{
	MpopStream *st = s->st;

	for (;;) {
		const char *line;
		size_t len, pre_len = st->out->len;
		MpopLineStatus ls = mpop_linebuf_next(&s->lb, &line, &len);
		MpopAction act;

		if (ls == MPOP_LINE_NONE) {
			/* RFC 2449 §6.6: answer queued commands in order, flush when idle. */
			if (!mpop_stream_flush(st))
				return MPOP_SESSION_END;
			mpop_stream_set_cork(st, FALSE);
			if (read_more(s) <= 0)
				return MPOP_SESSION_END;
			continue;
		}
		/* More commands already queued (PIPELINING): let their replies fill whole
		 * segments instead of one push per reply; uncorked before we wait. */
		if (!st->corked) {
			size_t more;
			mpop_linebuf_pending(&s->lb, &more);
			if (more > 0)
				mpop_stream_set_cork(st, TRUE);
		}
		if (ls == MPOP_LINE_OK) {
			log_command(s, line, len);
			act = mpop_pop3_feed(&s->p, line, len, st->out);
		} else {
			act = mpop_pop3_line_error(&s->p, ls, st->out);
		}
		switch (act) {
		case MPOP_ACT_REPLY:
			break;
		case MPOP_ACT_CLOSE:
			mpop_stream_flush(st);
			return MPOP_SESSION_END;
		case MPOP_ACT_AUTH:
			/* Earlier replies leave first; the verdict may take a while. */
			if (!mpop_stream_flush(st))
				return MPOP_SESSION_END;
			mpop_stream_set_cork(st, FALSE);
			return MPOP_SESSION_AUTH;
		case MPOP_ACT_STREAM:
			if (do_stream(s, pre_len) == MPOP_ACT_CLOSE)
				return MPOP_SESSION_END;
			break;
		case MPOP_ACT_UPDATE:
			do_update(s);
			/* The maildrop's lock goes before the answer: a client that logs in again
			 * the moment it reads the +OK (a fetcher's next poll, a second device)
			 * must find it free, not [IN-USE] until this process has ended. */
			s->p.mb = NULL;
			g_clear_pointer(&s->mb, mpop_mailbox_close);
			mpop_stream_flush(st);
			return MPOP_SESSION_END;
		case MPOP_ACT_LISTING:
			while (!mpop_pop3_listing_step(&s->p, st->out, 1024))
				if (!mpop_stream_flush_if_full(st))
					return MPOP_SESSION_END;
			break;
		case MPOP_ACT_STLS:
			if (!do_stls(s))
				return MPOP_SESSION_END;
			break;
		}
		if (!mpop_stream_flush_if_full(st))
			return MPOP_SESSION_END;
	}
}

gboolean
mpop_session_auth_done(MpopSession *s, MpopAuthResult result)
{
	return mpop_pop3_auth_done(&s->p, result, s->st->out) != MPOP_ACT_CLOSE;
}

gboolean
mpop_session_transaction(MpopSession *s, const MpopAuthIdentity *id)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;
	g_autofree char *f1 = NULL, *f2 = NULL, *f3 = NULL;
	const char *fields[4] = {NULL};
	guint n;
	guint64 octets;

	s->login_deadline = 0;
	/* Big tables (the message index) live in their own mappings: they grow by mremap()
	 * without a second copy and go back to the system when freed. */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	path = mpop_mailbox_location(s->cfg, id->user, id->home, id->mailbox, &error);
	if (path)
		s->mb = mpop_mailbox_open(mpop_mailbox_ops_for(s->cfg->format), s->cfg, id->user,
					  path, &error);
	if (!s->mb) {
		mpop_log_event(error->code == MPOP_ERROR_IN_USE ? MPOP_LOG_NOTICE : MPOP_LOG_ERR,
			       "open-failed", NULL, "cannot open maildrop: %s", error->message);
		mpop_pop3_open_failed(&s->p, error, s->st->out);
		return FALSE;
	}
	mpop_pop3_enter_transaction(&s->p, s->mb, id->user, s->st->out);
	mpop_mailbox_stat(s->mb, &n, &octets);
	fields[0] = f1 = g_strdup_printf("MESSAGES=%u", n);
	fields[1] = f2 = g_strdup_printf("OCTETS=%" G_GUINT64_FORMAT, octets);
	if (s->st->tls_info || s->conn->tls_info)
		fields[2] = f3 = g_strdup_printf("TLS=%s", s->st->tls_info ? s->st->tls_info
									   : s->conn->tls_info);
	mpop_log_event(MPOP_LOG_INFO, "login", fields,
		       "logged in, %u messages, %" G_GUINT64_FORMAT " octets", n, octets);
	/* What opening the mailbox allocated and freed (a Maildir's listing and size cache:
	 * ~90 KiB of heap below live data) goes back to the system before the session waits
	 * for the client: an idle session keeps only what it uses. */
	malloc_trim(0);
	return TRUE;
}
