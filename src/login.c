/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Everything between accept and the drop to the mailbox owner: the pre-login process, the
 * privileged authentication loop, the drop.
 *
 * What runs as root, and what each process can see (mpopd started as root, privsep on):
 *
 * 1. The connection process: root, one per connection (started by systemd or inetd, or
 *    forked by the daemon). It logs the connection, makes two socket pairs (bounded records
 *    to and from the pre-login process; with TLS configured, a plaintext channel for the
 *    session) and forks the pre-login process. Until a login succeeds it only
 *      - reads records from the pre-login process, parsed as untrusted input: log records,
 *        and login requests {user, password, pipelined bytes, TLS parameters};
 *      - checks a login with the auth backends (user list, crypt hash) and answers one
 *        verdict byte; it counts failed logins and enforces login_timeout itself, killing
 *        the pre-login process when either runs out.
 *    It never reads a byte from the client, TLS or POP3. After a successful login it drops
 *    to the mailbox owner for good (setgroups, setresgid, setresuid, verified; uid 0 and
 *    gid 0 refused; chdir("/"); environment cleared) and only then opens the maildrop and
 *    serves TRANSACTION: from there on it is the session, not root.
 * 2. The pre-login process: chroot(login_chroot), uid and gid of login_user, no
 *    supplementary groups, not dumpable, no new privileges, resource limits of zero and a
 *    seccomp allow-list (sandbox.c). It sees the client socket, its record channel and the
 *    plaintext channel, nothing else. It runs the TLS handshake (the key is in memory,
 *    inherited; the key file stays unreadable to it) and the AUTHORIZATION dialogue, and
 *    its log records go to the connection process (the journal is not reachable from the
 *    chroot). Without TLS it exits at the login and the session talks to the client
 *    socket itself. With TLS it stays as the relay between the client (TLS) and the
 *    session (plaintext channel): the session never parses TLS, and the process that
 *    parses TLS never sees a mailbox.
 * 3. Started as an ordinary user, or with privsep off: one process does all of this with
 *    the rights it was started with, and serves only its own uid's mail.
 */
#include "login.h"
#include "log.h"
#include "prelogin-pool.h"
#include "privsep.h"
#include "sandbox.h"
#include "session.h"
#include "tls-state.h"
#include "tls.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The connection process gives the pre-login process this much beyond login_timeout to end
 * by itself (with its own log record) before it is killed. */
#define GRACE_MARGIN_USEC (5 * G_USEC_PER_SEC)
/* The relay gives up on a connection where nothing moves a minute after the session's own
 * idle timeout would have ended it (and logged why). */
#define RELAY_TIMEOUT_MS(cfg) ((int)(MIN((cfg)->idle_timeout, 86400) + 60) * 1000)
/* Log records accepted from one pre-login process; a flood beyond is dropped. */
#define MAX_FORWARDED_RECORDS 500

/* A failure's message starts with the client address (no port), before anything the
 * client chose (the user name is in MPOPD_USER only): conf/fail2ban/filter.d/mpopd.conf
 * reads it from there, and no login name can put another address in its place. */
static void
log_auth_result(MpopAuthResult res, const char *user, const char *peer, const char *reason)
{
	mpop_log_set_user(user);
	if (res == MPOP_AUTH_OK)
		mpop_log_event(MPOP_LOG_DEBUG, "auth", NULL, "authenticated");
	else
		mpop_log_event(MPOP_LOG_NOTICE, "login-failed", NULL, "%s from %s: %s",
			       res == MPOP_AUTH_DENIED ? "authentication failed"
						       : "temporary authentication failure",
			       peer, reason ? reason : "no reason given");
}

/* Sleep until the monotonic time until (usec). */
static void
sleep_until(guint64 until)
{
	for (guint64 now = mpop_now_usec(); now < until; now = mpop_now_usec())
		g_usleep(until - now);
}

/* The penalty table could not be read or written: said once per process, then the login
 * goes on without it (the per-connection cap still holds). */
static void
penalty_trouble(int r)
{
	static gboolean said;

	if (r < 0 && !said) {
		said = TRUE;
		mpop_log_warning("failure penalty table: %s", g_strerror(-r));
	}
}

/* Refused without asking the backends: the address or the user name failed too often. */
static void
log_blocked(const char *user, const MpopPenaltyVerdict *pv)
{
	mpop_log_set_user(user);
	mpop_log_event(MPOP_LOG_NOTICE, "login-failed", NULL,
		       "blocked by the failure penalty: %u recent failures from this address, %u "
		       "for this user name",
		       pv->source_failures, pv->user_failures);
}

/* Check one login with the user's chain and, after a yes, open the backend's session
 * (PAM). Every failure, whatever its reason, is answered failure_delay after the attempt
 * began, so the time tells nothing about the user or the password, plus the penalty delay
 * that recent failures from the address or for the name earned. A blocked address or name
 * is refused without a check. A wrong password is counted before the wait, so closing the
 * connection early saves the client nothing; a temporary failure (a backend down) is not a
 * guess and is not counted. */
static MpopAuthResult
check_login(const MpopConfig *cfg, const MpopConnection *conn, const char *user, const char *pass,
	    const char *sni, MpopAuthIdentity **out_id)
{
	guint64 start = mpop_now_usec(), delay;
	const MpopAuthQuery q = {
		.user = user,
		.password = pass ? pass : "",
		.peer = conn->peer_host ? conn->peer_host : conn->peer,
		.peer_addr = conn->peer_len ? (const struct sockaddr *)&conn->peer_addr : NULL,
		.peer_len = conn->peer_len,
		.local = conn->local_host,
		.local_addr = conn->local_len ? (const struct sockaddr *)&conn->local_addr : NULL,
		.local_len = conn->local_len,
		.sni = sni && *sni ? sni : NULL,
		.session_id = conn->session_id,
	};
	const gint64 wall = g_get_real_time() / G_USEC_PER_SEC; /* the table outlives boots */
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	MpopPenaltyVerdict pv = {0};
	MpopAuthResult res;

	/* [access] trusted_networks are exempt from the penalty: neither asked nor counted. */
	if (!conn->trusted)
		penalty_trouble(mpop_penalty_query(conn->penalty, cfg, q.peer_addr, q.peer_len,
						   user, wall, &pv));
	delay = (guint64)cfg->failure_delay * 1000 + pv.delay_usec;
	if (pv.blocked) {
		log_blocked(user, &pv);
		sleep_until(start + delay);
		return MPOP_AUTH_TEMPFAIL;
	}
	res = mpop_auth_check(cfg, &q, &id, &reason);
	if (res != MPOP_AUTH_TEMPFAIL && !conn->trusted)
		penalty_trouble(mpop_penalty_record(conn->penalty, cfg, q.peer_addr, q.peer_len,
						    user, res == MPOP_AUTH_OK, wall));
	if (res == MPOP_AUTH_OK && id->ops->session_open &&
	    !id->ops->session_open(cfg, id, &reason)) {
		res = MPOP_AUTH_TEMPFAIL;
		g_clear_pointer(&id, mpop_auth_identity_free);
		if (!reason)
			reason = g_strdup("cannot open the backend's session");
	}
	log_auth_result(res, user, q.peer, reason);
	if (res == MPOP_AUTH_OK && strcmp(id->user, user) != 0) {
		/* From here on the records name the account, not what the client typed. */
		mpop_log_event(MPOP_LOG_INFO, "auth", NULL, "%s is %s (%s backend)", user, id->user,
			       id->ops->name);
		mpop_log_set_user(id->user);
	}
	if (res != MPOP_AUTH_OK)
		sleep_until(start + delay);
	else if (out_id)
		*out_id = g_steal_pointer(&id);
	return res;
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

/* The session needs nothing of the environment it was started with but the time zone. */
static void
clean_environment(void)
{
	g_autofree char *tz = g_strdup(g_getenv("TZ"));

	clearenv();
	if (tz)
		g_setenv("TZ", tz, TRUE);
}

/* Drop to the mailbox owner for good. FALSE with the -ERR queued. */
static gboolean
become_owner(MpopSession *s, const MpopAuthIdentity *id)
{
	int r;

	/* The session, run by the mailbox owner, has no business with the penalty table. */
	mpop_penalty_close(s->conn->penalty);
	r = mpop_privsep_become(id->uid, id->gid, id->system_account ? id->user : NULL,
				privileged_gid(s->cfg));
	if (r < 0) {
		mpop_log_event(MPOP_LOG_ERR, "login-failed", NULL,
			       "cannot switch to uid %u gid %u: %s", (unsigned)id->uid,
			       (unsigned)id->gid, g_strerror(-r));
		g_string_append(s->st->out,
				"-ERR [SYS/PERM] Cannot switch to the mailbox owner.\r\n");
		return FALSE;
	}
	clean_environment();
	mpop_log_set_user_detail(mpop_config_user_logged(s->cfg, id->user));
	return TRUE;
}

static void let_go_of(MpopConnection *conn);

/* The session child while the root process waits for it: a SIGTERM (systemctl stop, the
 * daemon ending its sessions, RuntimeMaxSec=) or SIGHUP/SIGINT for the root process is
 * passed on, so the session ends and the root process still closes the backend's
 * session. */
static volatile sig_atomic_t session_child;

static void
forward_signal(int sig)
{
	if (session_child > 0)
		kill((pid_t)session_child, sig);
}

/* Called with SIGTERM, SIGHUP and SIGINT blocked since before the fork (old: the mask to
 * go back to), so none of them ends this process before it can pass it on. */
static void
wait_session(pid_t pid, const sigset_t *old)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	int status;

	session_child = pid;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigprocmask(SIG_SETMASK, old, NULL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	session_child = 0;
}

/* The session after a login: as the mailbox owner from here on. A backend with a session
 * to close (PAM with [auth] pam_session: the identity carries its state) needs root at the
 * end: then this root process forks the session, lets go of the client, waits and closes
 * the backend's session itself. */
static void
run_owner_session(MpopSession *s, MpopAuthIdentity *id, int *data_fd)
{
	sigset_t stop, old;
	pid_t pid;

	if (!id->ops || !id->ops->session_close || !id->backend_data) {
		if (become_owner(s, id) && mpop_session_transaction(s, id))
			mpop_session_loop(s);
		return;
	}
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid = fork();
	if (pid <= 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		mpop_log_err("fork: %s", g_strerror(errno));
		g_string_append(s->st->out, "-ERR [SYS/TEMP] Cannot start the session.\r\n");
	} else if (pid == 0) {
		/* The backend's state is the root process's to close; this copy ends here,
		 * before the drop (a PAM handle holds the password until it ends). */
		if (id->backend_data_free)
			id->backend_data_free(g_steal_pointer(&id->backend_data));
		if (become_owner(s, id) && mpop_session_transaction(s, id))
			mpop_session_loop(s);
		mpop_stream_flush(s->st);
		_exit(0);
	} else {
		/* The client (or the relay) must see the end when the session ends. */
		s->st->out->len = 0;
		s->st->broken = TRUE;
		let_go_of(s->conn);
		if (data_fd && *data_fd >= 0) {
			close(*data_fd);
			*data_fd = -1;
		}
		wait_session(pid, &old);
	}
	id->ops->session_close(s->cfg, id);
}

/* One process does everything (not root, or privsep off). */
static int
run_direct(const MpopConfig *cfg, MpopConnection *conn)
{
	MpopStream *st = mpop_stream_new(conn->fd_in, conn->fd_out, cfg->idle_timeout);
	MpopSession *s = mpop_session_new(cfg, conn, st, cfg->login_timeout);

	if (mpop_session_start(s)) {
		while (mpop_session_loop(s) == MPOP_SESSION_AUTH) {
			g_autoptr(MpopAuthIdentity) id = NULL;
			MpopAuthResult res = check_login(cfg, conn, s->p.auth_user, s->p.auth_pass,
							 s->st->tls_sni, &id);
			if (!mpop_session_auth_done(s, res))
				break;
			if (res == MPOP_AUTH_OK) {
				run_owner_session(s, id, NULL);
				break;
			}
		}
	}
	mpop_stream_flush(s->st);
	mpop_session_free(s);
	return 0;
}

/* ---- the pre-login process ---- */

static void
forward_log(MpopLogLevel level, const char *event, const char *msg, gpointer ctx)
{
	g_autoptr(GBytes) rec = mpop_privsep_encode_log(level, event, msg);

	/* Nothing to do on failure: the connection process is gone and we end soon. */
	(void)!send(GPOINTER_TO_INT(ctx), g_bytes_get_data(rec, NULL), g_bytes_get_size(rec),
		    MSG_NOSIGNAL);
}

/* Hand {user, password, pipelined bytes, TLS} to the connection process; wait for the
 * verdict. FALSE when there is none (the connection process ended us). */
static gboolean
ask_verdict(MpopSession *s, int chan, MpopAuthResult *out)
{
	MpopAuthRequest req = {
		.user = s->p.auth_user,
		.pass = s->p.auth_pass,
		.tls = s->st->tls_info,
		.sni = s->st->tls_sni,
	};
	g_autoptr(GBytes) rec = NULL;
	guint8 verdict;
	ssize_t n;

	req.pending = (char *)mpop_linebuf_pending(&s->lb, &req.pending_len);
	rec = mpop_privsep_encode(&req);
	n = send(chan, g_bytes_get_data(rec, NULL), g_bytes_get_size(rec), MSG_NOSIGNAL);
	explicit_bzero((void *)g_bytes_get_data(rec, NULL), g_bytes_get_size(rec));
	if (n < 0)
		return FALSE;
	do
		n = recv(chan, &verdict, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n != 1 || verdict > MPOP_AUTH_TEMPFAIL)
		return FALSE;
	*out = (MpopAuthResult)verdict;
	return TRUE;
}

typedef enum {
	HANDOVER_FAILED,
	HANDOVER_DONE, /* the state went to the connection process: not one more byte from us */
	HANDOVER_RELAY,
} Handover;

/* After a login over TLS: send the connection's record state to the connection process, and
 * write nothing more to the client (TLS 1.3), or say that we relay. */
static Handover
hand_over_tls(MpopStream *st, int chan)
{
	MpopTlsState ts = {0};
	gboolean handed;
	g_autoptr(GBytes) rec = NULL;
	ssize_t n;

	/* Replies still queued go first, under the keys and numbers we hand over after. */
	if (!mpop_stream_flush(st))
		return HANDOVER_FAILED;
	handed = mpop_tls_export(st, &ts);
	rec = mpop_tls_state_encode(handed ? &ts : NULL);
	n = send(chan, g_bytes_get_data(rec, NULL), g_bytes_get_size(rec), MSG_NOSIGNAL);

	explicit_bzero((void *)g_bytes_get_data(rec, NULL), g_bytes_get_size(rec));
	mpop_tls_state_clear(&ts);
	if (n < 0)
		return HANDOVER_FAILED;
	return handed ? HANDOVER_DONE : HANDOVER_RELAY;
}

/* One connection's dialogue, in a confined process: until a login, then the hand-over or the
 * relay. Returns what the process should exit with (0: done). */
static int
prelogin_serve(const MpopConfig *cfg, MpopConnection *conn, MpopStream *st, int chan, int data)
{
	MpopSession *s = mpop_session_new(cfg, conn, st, cfg->login_timeout);
	MpopAuthResult res;
	int ret = 0;

	if (!mpop_session_start(s))
		goto out;
	while (mpop_session_loop(s) == MPOP_SESSION_AUTH && ask_verdict(s, chan, &res)) {
		if (res == MPOP_AUTH_OK) {
			/* The session now answers: directly, with the TLS state we hand over,
			 * or through us when OpenSSL must keep the connection. */
			if (s->st->tls_info) {
				Handover h = hand_over_tls(s->st, chan);

				if (h == HANDOVER_RELAY)
					mpop_tls_relay(s->st, data, RELAY_TIMEOUT_MS(cfg));
				else if (h == HANDOVER_FAILED)
					ret = 1;
			}
			break;
		}
		if (!mpop_session_auth_done(s, res))
			break;
	}
	/* Nothing is queued after a hand-over (the stream is marked broken then: no write, no
	 * close_notify under keys that are the session's now). */
	mpop_stream_flush(s->st);
out:
	mpop_session_free(s); /* sends close_notify, unless handed over */
	return ret;
}

/* Drop to the login user, die with parent, confine; any failure ends the process. */
static void
confine(const MpopConfig *cfg, pid_t parent, gboolean reusable)
{
	int r = mpop_privsep_drop_login(cfg->login_user, cfg->login_chroot);

	if (r < 0) {
		mpop_log_err("cannot drop privileges to %s: %s", cfg->login_user, g_strerror(-r));
		_exit(1);
	}
	/* Set after the drop (which clears it); the check closes the race with the parent's
	 * death. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(1);
	r = reusable ? mpop_sandbox_prelogin_reusable() : mpop_sandbox_prelogin();
	if (r < 0) {
		mpop_log_err("cannot confine the pre-login process: %s", g_strerror(-r));
		_exit(1);
	}
}

static G_GNUC_NORETURN void
prelogin_main(const MpopConfig *cfg, MpopConnection *conn, int chan, int data, pid_t parent)
{
	MpopStream *st = mpop_stream_new(conn->fd_in, conn->fd_out, cfg->idle_timeout);

	mpop_log_set_forward(forward_log, GINT_TO_POINTER(chan));
	/* The table is the connection process's: the network-facing process never sees it. */
	mpop_penalty_close(conn->penalty);
	confine(cfg, parent, FALSE);
	_exit(prelogin_serve(cfg, conn, st, chan, data));
}

/* ---- a pre-login process that serves connections in turn ([server] login_reuse) ---- */

/* The daemon's child, confined like a per-connection one; the connection processes hand it
 * their connections over ctl. It tells the daemon MPOP_POOL_IDLE after each, before it lets
 * go of the connection's channel (so the daemon has heard it by the time the connection
 * process can end), and ends when the daemon closes ctl. */
G_GNUC_NORETURN void
mpop_login_pool_main(const MpopConfig *cfg, MpopTlsContext *tls, int ctl, pid_t daemon)
{
	const char idle = MPOP_POOL_IDLE;
	int r;

	/* A client gone before we answer must not end the process (the daemon does not ignore
	 * SIGPIPE; a connection process does, before it forks its own). */
	signal(SIGPIPE, SIG_IGN);
	confine(cfg, daemon, TRUE);
	for (;;) {
		MpopConnection conn = {0};
		int chan = -1, data = -1;

		/* Nothing is logged between connections: no record could reach anyone. */
		mpop_log_set_forward(forward_log, GINT_TO_POINTER(-1));
		r = mpop_pool_receive(ctl, &conn, &chan, &data);
		if (r == 0 || r == -EINVAL)
			_exit(r < 0);
		if (r < 0)
			_exit(1);
		if (r == 2) { /* a connection process that did not need us after all */
			if (send(ctl, &idle, 1, MSG_NOSIGNAL) != 1)
				_exit(0);
			continue;
		}
		conn.tls = tls;
		mpop_log_set_forward(forward_log, GINT_TO_POINTER(chan));
		mpop_log_set_session(conn.session_id, conn.peer);
		mpop_log_set_proxy(conn.proxy);
		/* The connection process set the socket's options: setsockopt is not ours now. */
		r = prelogin_serve(cfg, &conn,
				   mpop_stream_new_with_ops(NULL, NULL, conn.fd_in, conn.fd_out,
							    cfg->idle_timeout),
				   chan, data);
		close(conn.fd_in);
		if (data >= 0)
			close(data);
		mpop_pool_connection_clear(&conn);
		if (r != 0 || send(ctl, &idle, 1, MSG_NOSIGNAL) != 1)
			_exit(r);
		close(chan);
	}
}

/* ---- the connection process ---- */

/* Events only this process (or the listener before it) writes: log readers act on them
 * (fail2ban bans the address in a login-failed record, mpopdctl stats counts them), so the
 * pre-login process, which talks to the network, may not forge them. */
static gboolean
prelogin_may_log(const char *event)
{
	static const char *const own[] = {"connect",	  "auth",   "login",
					  "login-failed", "logout", "denied"};

	for (size_t i = 0; i < G_N_ELEMENTS(own); i++) {
		if (strcmp(event, own[i]) == 0)
			return FALSE;
	}
	return TRUE;
}

/* A log record of the pre-login process, logged as ours (the session fields are ours). */
static gboolean
relay_log_record(const guint8 *buf, gsize len, guint *count)
{
	MpopLogRecord rec = {0};

	if (mpop_privsep_decode_log(buf, len, &rec) < 0)
		return FALSE;
	++*count;
	if (*count <= MAX_FORWARDED_RECORDS && *rec.event && !prelogin_may_log(rec.event))
		mpop_log_warning("pre-login process sent a record with event %s, dropped",
				 rec.event);
	else if (*count <= MAX_FORWARDED_RECORDS)
		mpop_log_event(rec.level, *rec.event ? rec.event : NULL, NULL, "%s", rec.message);
	else if (*count == MAX_FORWARDED_RECORDS + 1)
		mpop_log_warning("pre-login process logs too much, dropping its records");
	mpop_privsep_log_clear(&rec);
	return TRUE;
}

/* Wait for the next record until deadline. Returns its length, 0 when the pre-login
 * process ended, -ETIMEDOUT, or -EMSGSIZE for a record over the limit. */
static gssize
next_record(int chan, guint8 *buf, gsize size, guint64 deadline)
{
	struct pollfd pfd = {.fd = chan, .events = POLLIN};
	guint64 now = mpop_now_usec();
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, now >= deadline ? 0 : (int)((deadline - now) / 1000 + 1));
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	do
		n = recv(chan, buf, size, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return 0;
	return (gsize)n > size ? -EMSGSIZE : n;
}

/* Authenticate the pre-login process's requests until one succeeds, the process ends, or a
 * limit is reached. Returns the identity (and the request, for its pipelined bytes) or
 * NULL. */
static MpopAuthIdentity *
parent_auth_loop(const MpopConfig *cfg, MpopConnection *conn, int chan, pid_t child,
		 MpopAuthRequest *out_req, gboolean *out_killed)
{
	guint64 deadline =
		mpop_now_usec() + cfg->login_timeout * G_USEC_PER_SEC + GRACE_MARGIN_USEC;
	g_autofree guint8 *buf = g_malloc(MPOP_PRIVSEP_MAX_RECORD);
	guint failures = 0, records = 0;

	for (;;) {
		MpopAuthRequest req = {0};
		g_autoptr(MpopAuthIdentity) id = NULL;
		MpopAuthResult res;
		guint8 verdict;
		gssize n = next_record(chan, buf, MPOP_PRIVSEP_MAX_RECORD, deadline);

		if (n == -ETIMEDOUT) {
			mpop_log_event(MPOP_LOG_INFO, "timeout", NULL,
				       "no login within %u s, closing", cfg->login_timeout);
			goto kill;
		}
		if (n == 0)
			return NULL;
		/* The records are untrusted: the child talked to the network. */
		if (n > 0 && relay_log_record(buf, (gsize)n, &records))
			continue;
		if (n < 0 || mpop_privsep_decode(buf, (gsize)n, &req) < 0) {
			explicit_bzero(buf, MPOP_PRIVSEP_MAX_RECORD);
			mpop_log_err("malformed record from the pre-login process, ending session");
			goto kill;
		}
		explicit_bzero(buf, (size_t)n);
		res = check_login(cfg, conn, req.user, req.pass, req.sni, &id);
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
		/* Counted here too: the pre-login process's own count is not to be trusted. */
		if (++failures >= cfg->max_bad_commands) {
			mpop_log_event(MPOP_LOG_NOTICE, "disconnect", NULL,
				       "%u failed logins, closing", failures);
			goto kill;
		}
	}
kill:
	kill(child, SIGKILL);
	*out_killed = TRUE;
	return NULL;
}

/* After a login over TLS, the pre-login process's next record (its log records aside):
 * 1 with *out filled when it handed the connection over, 0 when it relays, -1 when it sent
 * nothing usable in time. */
static int
receive_tls_state(int chan, MpopTlsState *out)
{
	guint64 deadline = mpop_now_usec() + GRACE_MARGIN_USEC + G_USEC_PER_SEC;
	guint8 buf[MAX(MPOP_PRIVSEP_MAX_RECORD, MPOP_TLS_STATE_MAX_RECORD)];
	guint records = 0;

	for (;;) {
		gssize n = next_record(chan, buf, sizeof(buf), deadline);
		int r;

		if (n > 0 && relay_log_record(buf, (gsize)n, &records))
			continue;
		r = n > 0 ? mpop_tls_state_decode(buf, (gsize)n, out) : -EINVAL;
		explicit_bzero(buf, sizeof(buf));
		if (r < 0)
			mpop_log_err("no TLS state from the pre-login process, ending session");
		return r < 0 ? -1 : r;
	}
}

/* The client socket is the pre-login process's from now on: keep the descriptor numbers
 * taken (0 and 1 under inetd) but pointing nowhere. */
static void
let_go_of(MpopConnection *conn)
{
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (nul < 0)
		return;
	dup3(nul, conn->fd_in, O_CLOEXEC);
	if (conn->fd_out != conn->fd_in)
		dup3(nul, conn->fd_out, O_CLOEXEC);
	close(nul);
}

/* Reap the pre-login process. A death we did not cause (a crash, a system call its sandbox
 * or the unit's filter refused) is logged: the client only saw the connection close. */
static gboolean
wait_child(pid_t child, gboolean killed_by_us)
{
	int status = 0;

	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status) && !killed_by_us) {
		mpop_log_event(MPOP_LOG_ERR, "prelogin-died", NULL,
			       "pre-login process killed by signal %d (%s)", WTERMSIG(status),
			       g_strsignal(WTERMSIG(status)));
		return FALSE;
	}
	return TRUE;
}

/* The reusable pre-login process the daemon gave this connection process, if any. */
static pid_t pool_pid;
static int pool_ctl = -1;

void
mpop_login_use_pool(pid_t pid, int ctl)
{
	pool_pid = pid;
	pool_ctl = ctl;
}

void
mpop_login_release_pool(void)
{
	if (pool_ctl < 0)
		return;
	(void)mpop_pool_send_skip(pool_ctl);
	mpop_close_fdp(&pool_ctl);
}

/* A reusable pre-login process lets go of the connection (closes its end of the channel)
 * once it is done with it: wait for that before the session writes to the client. One that
 * does not in time is ended. */
static void
await_release(int chan, pid_t child)
{
	guint64 deadline = mpop_now_usec() + GRACE_MARGIN_USEC;
	guint8 buf[MPOP_PRIVSEP_MAX_RECORD];
	guint records = 0;

	for (;;) {
		gssize n = next_record(chan, buf, sizeof(buf), deadline);

		if (n > 0 && relay_log_record(buf, (gsize)n, &records))
			continue;
		if (n != 0) {
			mpop_log_err("the pre-login process did not let go of the connection, "
				     "ending it");
			kill(child, SIGKILL);
		}
		return;
	}
}

/* The pre-login process is done with the connection: reap our own child, or, a reusable one
 * (pooled), wait until it lets go of the connection on chan (-1: nothing to wait for). */
static gboolean
prelogin_finished(gboolean pooled, int chan, pid_t child, gboolean killed_by_us)
{
	if (!pooled)
		return wait_child(child, killed_by_us);
	if (chan >= 0)
		await_release(chan, child);
	return TRUE;
}

static int
run_privsep(const MpopConfig *cfg, MpopConnection *conn)
{
	int chan[2], data[2] = {-1, -1};
	MpopAuthRequest req = {0};
	MpopTlsState ts = {0};
	g_autoptr(MpopAuthIdentity) id = NULL;
	gboolean tls, killed = FALSE, pooled = FALSE;
	int handed = 0;
	MpopSession *s;
	pid_t parent = getpid(), child = -1;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan) < 0 ||
	    (conn->tls && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, data) < 0)) {
		mpop_log_err("socketpair: %s", g_strerror(errno));
		return 1;
	}
	if (pool_ctl >= 0) {
		/* Set here: a confined process may not. */
		mpop_stream_socket_options(conn->fd_out, cfg->idle_timeout);
		pooled = mpop_pool_send(pool_ctl, conn, conn->fd_in, chan[1], data[1]) == 0;
		mpop_close_fdp(&pool_ctl);
		if (pooled)
			child = pool_pid;
		else
			mpop_log_debug("the daemon's pre-login process is gone, forking one");
	}
	if (!pooled)
		child = fork();
	if (child < 0) {
		mpop_log_err("fork: %s", g_strerror(errno));
		return 1;
	}
	if (child == 0) {
		close(chan[0]);
		if (data[0] >= 0)
			close(data[0]);
		prelogin_main(cfg, conn, chan[1], data[1], parent);
	}
	close(chan[1]);
	if (data[1] >= 0)
		close(data[1]);
	id = parent_auth_loop(cfg, conn, chan[0], child, &req, &killed);
	tls = id && req.tls && *req.tls;
	if (tls) {
		/* The pre-login process hands the connection over or keeps it and relays. */
		handed = receive_tls_state(chan[0], &ts);
		if (handed < 0) {
			kill(child, SIGKILL);
			close(chan[0]);
			mpop_auth_request_clear(&req);
			if (data[0] >= 0)
				close(data[0]);
			prelogin_finished(pooled, -1, child, TRUE);
			return 1;
		}
	}
	if (handed > 0) {
		/* It has ended by itself: the client's socket is ours again. */
		if (data[0] >= 0)
			close(data[0]);
		data[0] = -1;
		tls = FALSE;
		if (!prelogin_finished(pooled, chan[0], child, FALSE)) {
			close(chan[0]);
			mpop_tls_state_clear(&ts);
			mpop_auth_request_clear(&req);
			return 1;
		}
	} else if (!tls) {
		/* Without TLS the pre-login process has no part in the session (a reusable
		 * one has let go of it already). */
		if (id && !pooled) {
			kill(child, SIGKILL);
			killed = TRUE;
		}
		if (data[0] >= 0)
			close(data[0]);
		data[0] = -1;
		if (!prelogin_finished(pooled, chan[0], child, killed)) {
			close(chan[0]);
			return 1;
		}
	}
	/* A reusable pre-login process that relays keeps the channel until the relay ends. */
	if (!(pooled && tls))
		mpop_close_fdp(&chan[0]);
	if (!id)
		return 0;
	if (tls) {
		conn->tls_info = g_strdup(req.tls);
		let_go_of(conn);
		s = mpop_session_new(cfg, conn,
				     mpop_stream_new(data[0], data[0], cfg->idle_timeout), 0);
		s->p.params.tls_active = TRUE;
	} else {
		s = mpop_session_new(cfg, conn,
				     mpop_stream_new(conn->fd_in, conn->fd_out, cfg->idle_timeout),
				     0);
	}
	if (handed > 0) {
		g_autoptr(GError) error = NULL;
		gboolean ok = mpop_tls_resume(s->st, &ts, &error);

		mpop_tls_state_clear(&ts);
		if (!ok) {
			mpop_log_err("%s", error->message);
			s->st->broken = TRUE;
			mpop_session_free(s);
			mpop_auth_request_clear(&req);
			return 1;
		}
		conn->tls_info = g_strdup(req.tls);
		s->p.params.tls_active = TRUE;
	}
	mpop_linebuf_push(&s->lb, req.pending, req.pending_len);
	mpop_auth_request_clear(&req);
	mpop_log_set_user_detail(mpop_config_user_logged(cfg, id->user));
	run_owner_session(s, id, tls ? &data[0] : NULL);
	mpop_stream_flush(s->st);
	mpop_session_free(s);
	if (tls) {
		/* The relay sends what is left and the close_notify, then ends. */
		if (data[0] >= 0) {
			shutdown(data[0], SHUT_WR);
			close(data[0]);
		}
		gboolean ok = prelogin_finished(pooled, chan[0], child, FALSE);

		mpop_close_fdp(&chan[0]);
		return ok ? 0 : 1;
	}
	return 0;
}

int
mpop_login_run(const MpopConfig *cfg, MpopConnection *conn)
{
	signal(SIGPIPE, SIG_IGN);
	/* This process will hold passwords: no core dumps, no ptrace by the same uid. (The
	 * drop to the mailbox owner keeps it so: the kernel clears the flag on a uid change
	 * only to make it stricter.) */
	(void)prctl(PR_SET_DUMPABLE, 0);
	mpop_log_set_session(conn->session_id, conn->peer);
	mpop_log_set_proxy(conn->proxy);
	mpop_log_event(MPOP_LOG_INFO, "connect", NULL, "connection from %s%s%s%s", conn->peer,
		       conn->proxy ? " through " : "", conn->proxy ? conn->proxy : "",
		       conn->implicit_tls ? " (TLS)" : "");
	if (geteuid() == 0 && cfg->privsep)
		return run_privsep(cfg, conn);
	return run_direct(cfg, conn);
}
