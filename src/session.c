/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One client connection: buffers, idle timeouts, privilege separation, streaming. */
#include "session.h"
#include "auth.h"
#include "linebuf.h"
#include "log.h"
#include "mailbox.h"
#include "pop3.h"
#include "privsep.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Flush queued replies once they reach this size even while more commands are queued. */
#define OUT_FLUSH_AT (64 * 1024)
/* A failed login costs the client this long (brute force), same for every failure kind. */
#define AUTH_FAIL_DELAY_USEC (1000 * 1000)

typedef struct MpopSession MpopSession;

typedef enum {
	AUTHZ_CONTINUE, /* stay in the loop: the engine state says where we are */
	AUTHZ_HANDOFF,	/* privsep child: the parent takes over, exit quietly */
	AUTHZ_CLOSE,	/* end the session */
} MpopAuthzOutcome;

struct MpopSession {
	const MpopConfig *cfg;
	MpopConnection *conn;
	MpopLinebuf lb;
	MpopPop3 p;
	GString *out;
	MpopMailbox *mb;
	/* privsep child: the channel to the privileged parent; -1 otherwise */
	int channel;
	gboolean quit_seen;
	gboolean broken;
	gboolean corked; /* TCP_CORK set while pipelined commands are answered */
};

static void
session_init(MpopSession *s, const MpopConfig *cfg, MpopConnection *conn)
{
	MpopPop3Params params = {
		.greeting = cfg->greeting,
		.max_bad_commands = cfg->max_bad_commands,
		.allow_plaintext = TRUE,
	};

	memset(s, 0, sizeof(*s));
	s->cfg = cfg;
	s->conn = conn;
	s->channel = -1;
	mpop_linebuf_init(&s->lb, MPOP_LINE_MAX);
	mpop_pop3_init(&s->p, &params);
	s->out = g_string_sized_new(1024);
}

static void
session_clear(MpopSession *s)
{
	mpop_pop3_clear(&s->p);
	g_clear_pointer(&s->mb, mpop_mailbox_close);
	if (s->out)
		g_string_free(s->out, TRUE);
	s->out = NULL;
}

static gboolean flush_out(MpopSession *s);

static void
set_cork(MpopSession *s, gboolean on)
{
	int v = on;

	if (s->corked == on)
		return;
	/* Fails harmlessly on pipes and non-TCP sockets (inetd over a pipe, tests). */
	(void)setsockopt(s->conn->fd_out, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
	s->corked = on;
}

static int
write_fn(gpointer ctx, const void *data, size_t len)
{
	MpopSession *s = ctx;

	/* While pipelined commands are answered, small messages share one write; anything
	 * that would not fit is written as it is, without a copy. */
	if (s->corked && s->out->len + len <= OUT_FLUSH_AT) {
		g_string_append_len(s->out, data, (gssize)len);
		return 0;
	}
	if (!flush_out(s))
		return -EIO;
	return mpop_write_all(s->conn->fd_out, data, len);
}

static gboolean
flush_out(MpopSession *s)
{
	int r;

	if (s->out->len == 0 || s->broken)
		return !s->broken;
	r = mpop_write_all(s->conn->fd_out, s->out->str, s->out->len);
	g_string_truncate(s->out, 0);
	/* A big reply leaves no big buffer behind: memory stays flat for the session. */
	if (s->out->allocated_len > 4 * OUT_FLUSH_AT) {
		g_string_free(s->out, TRUE);
		s->out = g_string_sized_new(1024);
	}
	if (r < 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "write failed: %s",
			       g_strerror(-r));
		s->broken = TRUE;
		return FALSE;
	}
	return TRUE;
}

/* Read more input. Returns 1 on data, 0 on EOF or idle timeout, -1 on error. */
static int
read_more(MpopSession *s)
{
	struct pollfd pfd = {.fd = s->conn->fd_in, .events = POLLIN};
	size_t space;
	char *buf = mpop_linebuf_space(&s->lb, &space);
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, (int)MIN(s->cfg->idle_timeout, G_MAXINT / 1000) * 1000);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		/* RFC 1939 §3: the autologout timer closes without UPDATE and without reply. */
		mpop_log_event(MPOP_LOG_INFO, "timeout", NULL, "idle for %u s, closing",
			       s->cfg->idle_timeout);
		return 0;
	}
	if (r < 0)
		return -1;
	n = mpop_read_some(s->conn->fd_in, buf, space);
	if (n < 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "read failed: %s",
			       g_strerror((int)-n));
		return -1;
	}
	if (n == 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "client closed the connection");
		return 0;
	}
	mpop_linebuf_commit(&s->lb, (size_t)n);
	return 1;
}

static char *
maildrop_path(const MpopConfig *cfg, const MpopAuthIdentity *id, GError **error)
{
	g_autoptr(GString) pattern = g_string_new(NULL);
	const char *loc = cfg->location;

	if (id->mailbox)
		return g_strdup(id->mailbox);
	if (!loc || !*loc)
		loc = cfg->format == MPOP_FORMAT_MAILDIR ? "%h/Maildir" : "%s/%u";
	/* %s is the spool directory; everything else is mpop_expand_pattern's. */
	for (const char *c = loc; *c; c++) {
		if (c[0] == '%' && c[1] == 's') {
			g_string_append(pattern, cfg->mail_spool_dir);
			c++;
		} else if (c[0] == '%' && c[1] == '%') {
			g_string_append(pattern, "%%");
			c++;
		} else {
			g_string_append_c(pattern, *c);
		}
	}
	return mpop_expand_pattern(pattern->str, id->user, id->home, error);
}

/* The group kept aside for dotlocks in a group-writable spool, (gid_t)-1 for none. */
static gid_t
privileged_gid(const MpopConfig *cfg)
{
	struct group *gr;

	if (cfg->format != MPOP_FORMAT_MBOX || !cfg->mail_privileged_group ||
	    !*cfg->mail_privileged_group)
		return (gid_t)-1;
	gr = getgrnam(cfg->mail_privileged_group);
	if (!gr) {
		mpop_log_warning("mail_privileged_group %s does not exist, ignored",
				 cfg->mail_privileged_group);
		return (gid_t)-1;
	}
	return gr->gr_gid;
}

/* The session proper runs in a fresh process: the memory the password hash took (yescrypt
 * uses 16 MiB by design) is no part of its footprint, which then depends only on the
 * maildrop. The parent waits and passes on the exit status; the child dies with it. */
static gboolean
fork_session_process(MpopSession *s)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		mpop_log_err("fork: %s", g_strerror(errno));
		g_string_append(s->out, "-ERR [SYS/TEMP] Cannot start the session, try later.\r\n");
		return FALSE;
	}
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
			_exit(1);
		/* Big tables (the message index) live in their own mappings: they grow by
		 * mremap() without a second copy and go back to the system when freed. */
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
		return TRUE;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* After a successful authentication: become the mailbox owner, open the maildrop and enter
 * TRANSACTION. Runs in the (privileged) session process. */
static MpopAuthzOutcome
login_finish(MpopSession *s, const MpopAuthIdentity *id)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = NULL;
	int r;

	if (!fork_session_process(s))
		return AUTHZ_CLOSE;
	r = mpop_privsep_become(id->uid, id->gid, id->user, privileged_gid(s->cfg));
	if (r < 0) {
		mpop_log_event(MPOP_LOG_ERR, "login-failed", NULL,
			       "cannot switch to uid %u gid %u: %s", (unsigned)id->uid,
			       (unsigned)id->gid, g_strerror(-r));
		g_string_append(s->out, "-ERR [SYS/PERM] Cannot switch to the mailbox owner.\r\n");
		return AUTHZ_CLOSE;
	}
	path = maildrop_path(s->cfg, id, &error);
	if (path)
		s->mb = mpop_mailbox_open(mpop_mailbox_ops_for(s->cfg->format), s->cfg, id->user,
					  path, &error);
	if (!s->mb) {
		mpop_log_event(error->code == MPOP_ERROR_IN_USE ? MPOP_LOG_NOTICE : MPOP_LOG_ERR,
			       "open-failed", NULL, "cannot open maildrop: %s", error->message);
		mpop_pop3_open_failed(&s->p, error, s->out);
		return AUTHZ_CLOSE;
	}
	mpop_pop3_enter_transaction(&s->p, s->mb, id->user, s->out);
	{
		guint n;
		guint64 octets;
		g_autofree char *f1 = NULL, *f2 = NULL;
		mpop_mailbox_stat(s->mb, &n, &octets);
		f1 = g_strdup_printf("MESSAGES=%u", n);
		f2 = g_strdup_printf("OCTETS=%" G_GUINT64_FORMAT, octets);
		const char *fields[] = {f1, f2, NULL};
		mpop_log_event(MPOP_LOG_INFO, "login", fields,
			       "logged in, %u messages, %" G_GUINT64_FORMAT " octets", n, octets);
	}
	return AUTHZ_CONTINUE;
}

static void
log_auth_result(MpopAuthResult res, const char *user, const char *reason)
{
	mpop_log_set_user(user);
	if (res == MPOP_AUTH_OK)
		mpop_log_event(MPOP_LOG_DEBUG, "auth", NULL, "authenticated");
	else
		mpop_log_event(MPOP_LOG_NOTICE, "login-failed", NULL, "%s: %s",
			       res == MPOP_AUTH_DENIED ? "authentication failed"
						       : "temporary authentication failure",
			       reason ? reason : "no reason given");
}

/* Without privilege separation: authenticate here, then finish the login. */
static MpopAuthzOutcome
authorize_direct(MpopSession *s)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	MpopAuthResult res;

	res = mpop_auth_check(s->cfg, s->p.auth_user, s->p.auth_pass, s->conn->peer, &id, &reason);
	log_auth_result(res, s->p.auth_user, reason);
	if (res != MPOP_AUTH_OK)
		g_usleep(AUTH_FAIL_DELAY_USEC);
	if (mpop_pop3_auth_done(&s->p, res, s->out) == MPOP_ACT_CLOSE)
		return AUTHZ_CLOSE;
	if (res != MPOP_AUTH_OK)
		return AUTHZ_CONTINUE;
	mpop_log_set_user_detail(mpop_config_user_logged(s->cfg, id->user));
	return login_finish(s, id);
}

/* Privsep child: hand {user, password, pipelined bytes} to the parent, wait for the
 * verdict. */
static MpopAuthzOutcome
authorize_ipc(MpopSession *s)
{
	MpopAuthRequest req = {0};
	g_autoptr(GBytes) rec = NULL;
	const char *pending;
	size_t pending_len;
	guint8 verdict;
	ssize_t n;

	pending = mpop_linebuf_pending(&s->lb, &pending_len);
	req.user = s->p.auth_user;
	req.pass = s->p.auth_pass;
	req.pending = (char *)pending;
	req.pending_len = pending_len;
	rec = mpop_privsep_encode(&req);
	if (send(s->channel, g_bytes_get_data(rec, NULL), g_bytes_get_size(rec), MSG_NOSIGNAL) < 0)
		return AUTHZ_CLOSE;
	explicit_bzero((void *)g_bytes_get_data(rec, NULL), g_bytes_get_size(rec));
	do
		n = recv(s->channel, &verdict, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return AUTHZ_CLOSE;
	if (verdict == MPOP_AUTH_OK) {
		mpop_pop3_auth_done(&s->p, MPOP_AUTH_OK, s->out);
		return AUTHZ_HANDOFF;
	}
	if (verdict != MPOP_AUTH_DENIED && verdict != MPOP_AUTH_TEMPFAIL)
		return AUTHZ_CLOSE;
	if (mpop_pop3_auth_done(&s->p, (MpopAuthResult)verdict, s->out) == MPOP_ACT_CLOSE)
		return AUTHZ_CLOSE;
	return AUTHZ_CONTINUE;
}

static void
log_command(MpopSession *s, const char *line, size_t len)
{
	g_autofree char *ex = NULL;
	size_t kw = 0;

	if (mpop_log_get_level() < MPOP_LOG_DEBUG && !s->p.user)
		return;
	/* Only the keyword of commands that carry secrets; never the password. */
	while (kw < len && line[kw] != ' ')
		kw++;
	if (s->p.sasl_wait || (kw == 4 && (g_ascii_strncasecmp(line, "PASS", 4) == 0 ||
					   g_ascii_strncasecmp(line, "AUTH", 4) == 0)))
		len = kw;
	ex = mpop_escape_excerpt(line, len, 64);
	mpop_log_event(MPOP_LOG_DEBUG, "command", NULL, "C: %s", ex);
}

static MpopAction
do_stream(MpopSession *s, size_t pre_len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *prefix = NULL;
	gboolean broken = FALSE;

	/* Keep the prefix small so it fits the stream buffer with the message start. */
	if (pre_len > 0 && s->out->len > 16 * 1024) {
		g_autofree char *okline = g_strdup(s->out->str + pre_len);
		g_string_truncate(s->out, pre_len);
		if (!flush_out(s))
			return MPOP_ACT_CLOSE;
		g_string_assign(s->out, okline);
		pre_len = 0;
	}
	/* The queued replies and the +OK line lead the message; write_fn may append to out. */
	prefix = g_strndup(s->out->str, s->out->len);
	g_string_truncate(s->out, 0);
	if (mpop_mailbox_stream(s->mb, s->p.act_msg, s->p.act_top_lines, prefix, write_fn, s,
				&broken, &error))
		return MPOP_ACT_REPLY;
	if (broken) {
		mpop_log_event(MPOP_LOG_ERR, "disconnect", NULL, "sending message %u failed: %s",
			       s->p.act_msg + 1, error ? error->message : "write error");
		s->broken = TRUE;
		return MPOP_ACT_CLOSE;
	}
	mpop_log_event(MPOP_LOG_ERR, "read-failed", NULL, "message %u: %s", s->p.act_msg + 1,
		       error ? error->message : "unknown error");
	/* Nothing of this reply was written: the queued replies, then -ERR. */
	g_string_append_len(s->out, prefix, (gssize)pre_len);
	mpop_pop3_stream_failed(&s->p, error, s->out);
	return MPOP_ACT_REPLY;
}

static MpopAction
do_update(MpopSession *s)
{
	g_autoptr(GError) error = NULL;
	guint64 del_octets = 0;
	guint deleted = mpop_mailbox_deleted_count(s->mb, &del_octets);
	gboolean ok = mpop_mailbox_commit(s->mb, &error);
	g_autofree char *f1 =
		g_strdup_printf("RETR=%u/%" G_GUINT64_FORMAT, s->p.retr_count, s->p.retr_octets);
	g_autofree char *f2 = g_strdup_printf("TOP=%u", s->p.top_count);
	g_autofree char *f3 = g_strdup_printf("DELE=%u/%" G_GUINT64_FORMAT, deleted, del_octets);
	const char *fields[] = {f1, f2, f3, NULL};

	s->quit_seen = TRUE;
	if (!ok)
		mpop_log_event(MPOP_LOG_ERR, "update-failed", NULL, "UPDATE failed: %s",
			       error->message);
	mpop_log_event(MPOP_LOG_INFO, "logout", fields,
		       "logout, retrieved %u (%" G_GUINT64_FORMAT " octets), deleted %u%s",
		       s->p.retr_count, s->p.retr_octets, ok ? deleted : 0,
		       ok ? "" : " (UPDATE failed)");
	return mpop_pop3_update_done(&s->p, ok, error, s->out);
}

/* The command loop, shared by every state and process. */
static MpopAuthzOutcome
session_loop(MpopSession *s)
{
	for (;;) {
		const char *line;
		size_t len, pre_len = s->out->len;
		MpopLineStatus st = mpop_linebuf_next(&s->lb, &line, &len);
		MpopAction act;
		int r;

		if (st == MPOP_LINE_NONE) {
			/* RFC 2449 §6.6: answer queued commands in order, flush when idle. */
			if (!flush_out(s))
				return AUTHZ_CLOSE;
			set_cork(s, FALSE);
			r = read_more(s);
			if (r <= 0)
				return AUTHZ_CLOSE;
			continue;
		}
		/* More commands already queued (PIPELINING): let their replies fill whole
		 * segments instead of one push per reply; uncorked before we wait. */
		if (!s->corked) {
			size_t more;
			mpop_linebuf_pending(&s->lb, &more);
			if (more > 0)
				set_cork(s, TRUE);
		}
		if (st == MPOP_LINE_OK) {
			log_command(s, line, len);
			act = mpop_pop3_feed(&s->p, line, len, s->out);
		} else {
			act = mpop_pop3_line_error(&s->p, st, s->out);
		}
		switch (act) {
		case MPOP_ACT_REPLY:
			break;
		case MPOP_ACT_CLOSE:
			flush_out(s);
			return AUTHZ_CLOSE;
		case MPOP_ACT_AUTH: {
			MpopAuthzOutcome o;
			/* Earlier replies leave first: the answer to PASS may come from the
			 * privileged parent. */
			if (!flush_out(s))
				return AUTHZ_CLOSE;
			/* The next reply may come from another process: nothing stays corked. */
			set_cork(s, FALSE);
			o = s->channel >= 0 ? authorize_ipc(s) : authorize_direct(s);
			if (o != AUTHZ_CONTINUE) {
				if (o == AUTHZ_CLOSE)
					flush_out(s);
				return o;
			}
			break;
		}
		case MPOP_ACT_STREAM:
			if (do_stream(s, pre_len) == MPOP_ACT_CLOSE)
				return AUTHZ_CLOSE;
			break;
		case MPOP_ACT_UPDATE:
			do_update(s);
			flush_out(s);
			return AUTHZ_CLOSE;
		case MPOP_ACT_LISTING:
			while (!mpop_pop3_listing_step(&s->p, s->out, 1024))
				if (s->out->len >= OUT_FLUSH_AT && !flush_out(s))
					return AUTHZ_CLOSE;
			break;
		case MPOP_ACT_STLS:
			/* Not offered without TLS configured; the engine never asks. */
			return AUTHZ_CLOSE;
		}
		if (s->out->len >= OUT_FLUSH_AT && !flush_out(s))
			return AUTHZ_CLOSE;
	}
}

static void
setup_socket(int fd, guint timeout)
{
	struct timeval tv = {.tv_sec = timeout};
	int one = 1;

	/* Our own buffering decides segment sizes; Nagle would only add delayed-ACK stalls. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A client that stops reading cannot hold the session (and its lock) forever. */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Privileged parent: authenticate the child's requests until one succeeds or the child
 * goes away. Returns the identity (and the pipelined bytes) or NULL. */
static MpopAuthIdentity *
parent_auth_loop(MpopSession *s, int chan, pid_t child, MpopAuthRequest *out_req)
{
	guint8 buf[MPOP_PRIVSEP_MAX_USER + MPOP_PRIVSEP_MAX_PASS + MPOP_PRIVSEP_MAX_PENDING + 64];

	for (;;) {
		MpopAuthRequest req = {0};
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL;
		MpopAuthResult res;
		guint8 verdict;
		ssize_t n;

		do
			n = recv(chan, buf, sizeof(buf), 0);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return NULL;
		/* The record is untrusted: the child talked to the network. */
		if (mpop_privsep_decode(buf, (gsize)n, &req) < 0) {
			explicit_bzero(buf, sizeof(buf));
			mpop_log_err("malformed record from the pre-login process, ending session");
			kill(child, SIGKILL);
			return NULL;
		}
		explicit_bzero(buf, (size_t)n);
		res = mpop_auth_check(s->cfg, req.user, req.pass, s->conn->peer, &id, &reason);
		log_auth_result(res, req.user, reason);
		if (res != MPOP_AUTH_OK)
			g_usleep(AUTH_FAIL_DELAY_USEC);
		verdict = (guint8)res;
		if (send(chan, &verdict, 1, MSG_NOSIGNAL) != 1) {
			mpop_auth_request_clear(&req);
			return NULL;
		}
		if (res == MPOP_AUTH_OK) {
			*out_req = req;
			return g_steal_pointer(&id);
		}
		mpop_auth_request_clear(&req);
	}
}

static int
run_privsep(MpopSession *s)
{
	int sv[2];
	pid_t child;
	MpopAuthRequest req = {0};
	g_autoptr(MpopAuthIdentity) id = NULL;
	MpopPop3Params params;
	int status;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		mpop_log_err("socketpair: %s", g_strerror(errno));
		return 1;
	}
	child = fork();
	if (child < 0) {
		mpop_log_err("fork: %s", g_strerror(errno));
		return 1;
	}
	if (child == 0) {
		int r;
		close(sv[0]);
		s->channel = sv[1];
		r = mpop_privsep_drop_login(s->cfg->login_user, s->cfg->login_chroot);
		if (r < 0) {
			mpop_log_err("cannot drop privileges to %s: %s", s->cfg->login_user,
				     g_strerror(-r));
			_exit(1);
		}
		mpop_pop3_greeting(&s->p, s->out);
		session_loop(s);
		_exit(0);
	}
	close(sv[1]);
	id = parent_auth_loop(s, sv[0], child, &req);
	close(sv[0]);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (!id)
		return 0;
	params = s->p.params;
	mpop_linebuf_push(&s->lb, req.pending, req.pending_len);
	mpop_pop3_clear(&s->p);
	mpop_pop3_init(&s->p, &params);
	mpop_auth_request_clear(&req);
	mpop_log_set_user_detail(mpop_config_user_logged(s->cfg, id->user));
	if (login_finish(s, id) == AUTHZ_CONTINUE)
		session_loop(s);
	flush_out(s);
	return 0;
}

int
mpop_session_run(const MpopConfig *cfg, MpopConnection *conn)
{
	MpopSession s;
	int ret = 0;

	signal(SIGPIPE, SIG_IGN);
	mpop_log_set_session(conn->session_id, conn->peer);
	mpop_log_event(MPOP_LOG_INFO, "connect", NULL, "connection from %s", conn->peer);
	setup_socket(conn->fd_out, cfg->idle_timeout);
	session_init(&s, cfg, conn);
	if (geteuid() == 0 && cfg->privsep) {
		ret = run_privsep(&s);
	} else {
		mpop_pop3_greeting(&s.p, s.out);
		session_loop(&s);
	}
	if (s.mb && !s.quit_seen)
		mpop_log_event(MPOP_LOG_INFO, "logout", NULL,
			       "session ended without QUIT: nothing deleted");
	session_clear(&s);
	return ret;
}
