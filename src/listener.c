/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The ways a connection arrives: systemd Accept=yes, Accept=no, inetd, legacy daemon. */
#include "listener.h"
#include "auth.h"
#include "hostrules.h"
#include "log.h"
#include "mpopd-build.h"
#include "login.h"
#include "penalty.h"
#include "prelogin-pool.h"
#include "privsep.h"
#include "proxy.h"
#include "sd.h"
#include "session.h"
#include "tls.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_LISTEN 16

typedef struct {
	MpopConfig *cfg;
	MpopTlsContext *tls; /* from cfg's [tls], NULL without */
	const MpopListenOptions *opts;
	int fds[MAX_LISTEN];
	gboolean implicit_tls[MAX_LISTEN]; /* fds[i] is a port 995 style listener */
	int proxy[MAX_LISTEN];		   /* its entry's proxy= (MPOP_PROXY_* bits), -1: none */
	guint n_fds;
	gboolean from_systemd; /* Accept=no sockets: never rebind them */
	int sigfd;
	GHashTable *children; /* pid -> peer address (without port) */
	int pidfile_fd;
	char *pidfile;
	gboolean stopping;
	int exit_status;      /* of the accept loop */
	MpopPenalty *penalty; /* the failure penalty table; NULL: none */
	MpopHostRules *rules; /* [access] hosts_allow_deny, NULL: none */
	guint status_sent;    /* the session count the service manager was last told */
	guint64 status_at;    /* when (monotonic µs) */
	GArray *pool;	      /* PoolProc: reusable pre-login processes ([server] login_reuse) */
	guint generation;     /* of the configuration, raised at each reload */
} MpopListener;

/* A reusable pre-login process, forked by the daemon with the configuration in force. */
typedef struct {
	pid_t pid;
	int ctl;	  /* the daemon's end of its control socket */
	pid_t conn;	  /* the connection process it is serving, 0: idle */
	guint served;	  /* connections given to it */
	guint generation; /* of the configuration it was forked with */
} PoolProc;

/* Idle reusable pre-login processes kept beyond this are ended. */
#define POOL_IDLE_MAX 16

static char *
sockaddr_name(const struct sockaddr_storage *ss, gboolean with_port)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
		return with_port ? g_strdup_printf("%s:%u", host, port) : g_strdup(host);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; log them as IPv4 so
		 * per-source limits and log searches see one address form. */
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof(host));
			port = ntohs(in6->sin6_port);
			return with_port ? g_strdup_printf("%s:%u", host, port) : g_strdup(host);
		}
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
		return with_port ? g_strdup_printf("[%s]:%u", host, port) : g_strdup(host);
	}
	if (ss->ss_family == AF_UNIX)
		return g_strdup("local");
	return NULL;
}

static gboolean
addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return ss->ss_family == AF_UNIX;
}

static char *
new_session_id(void)
{
	guint8 b[8];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		memset(b, 0, sizeof(b));
	return g_strdup_printf("%02x%02x%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4],
			       b[5], b[6], b[7]);
}

/* [access]: trusted_networks, allow_non_fqdn and the host rules, before the greeting.
 * Sets conn->trusted. FALSE: the client was refused (told and logged). */
static gboolean
admit(const MpopConfig *cfg, const MpopHostRules *rules, MpopConnection *conn)
{
	static const char denied[] = "-ERR [SYS/PERM] Access denied.\r\n";
	g_autofree char *name = NULL;
	g_autofree char *who = NULL;
	MpopHostVerdict v = {0};
	guint8 addr[16];

	if (!mpop_addr_from_sockaddr((const struct sockaddr *)&conn->peer_addr, conn->peer_len,
				     addr))
		return TRUE; /* a pipe (a local test or admin): no address a rule could name */
	conn->trusted = mpop_net_list_contains((const char *const *)cfg->trusted_networks, addr);
	if (!rules && (cfg->allow_non_fqdn || conn->trusted))
		return TRUE;
	mpop_log_set_session(conn->session_id, conn->peer);
	if (mpop_hostrules_need_name(rules) || (!cfg->allow_non_fqdn && !conn->trusted))
		name = mpop_hostrules_confirmed_name((const struct sockaddr *)&conn->peer_addr,
						     conn->peer_len, cfg->resolver_timeout * 1000);
	mpop_hostrules_check(rules, addr, name, &v);
	who = name ? g_strdup_printf("%s (%s)", conn->peer, name) : g_strdup(conn->peer);
	if (v.warn_line)
		mpop_log_event(MPOP_LOG_NOTICE, "warned", NULL,
			       "connection from %s matches WARN at %s:%u", who,
			       cfg->hosts_allow_deny, v.warn_line);
	if (!cfg->allow_non_fqdn && !conn->trusted && !name)
		mpop_log_event(MPOP_LOG_NOTICE, "denied", NULL,
			       "connection from %s denied: no forward-confirmed reverse DNS name "
			       "(allow_non_fqdn is false)",
			       who);
	else if (v.denied)
		mpop_log_event(MPOP_LOG_NOTICE, "denied", NULL,
			       "connection from %s denied by %s:%u", who, cfg->hosts_allow_deny,
			       v.line);
	else
		return TRUE;
	/* On an implicit TLS port a line in clear would only be a broken TLS record. */
	if (!conn->implicit_tls && mpop_write_all(conn->fd_out, denied, sizeof(denied) - 1) < 0)
		mpop_log_debug("refusal not sent: %s", g_strerror(errno));
	return FALSE;
}

static gboolean
in_networks(char **nets, const struct sockaddr_storage *ss, socklen_t len)
{
	guint8 addr[16];

	return mpop_addr_from_sockaddr((const struct sockaddr *)ss, len, addr) &&
	       mpop_net_list_contains((const char *const *)nets, addr);
}

static const char *
proxy_error(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return "it did not arrive in time";
	case -ENODATA:
		return "the connection closed before its end";
	case -EINVAL:
		return "it is not a valid PROXY header";
	case -EPROTONOSUPPORT:
		return "proxy_protocol does not accept its version";
	case -EMSGSIZE:
		return "it is longer than the protocol allows";
	default:
		return g_strerror(-r);
	}
}

/* [server] proxy_protocol: only a trusted balancer may connect, and it speaks first: its
 * header is read before the greeting or a TLS handshake. The client it names then stands
 * for the connection everywhere; the balancer is kept as conn->proxy. FALSE: close. */
static gboolean
proxy_header(const MpopConfig *cfg, MpopConnection *conn, guint versions)
{
	MpopProxyHeader h;
	int r;

	mpop_log_set_session(conn->session_id, conn->peer);
	if (!in_networks(cfg->proxy_trusted_networks, &conn->peer_addr, conn->peer_len)) {
		mpop_log_event(MPOP_LOG_WARNING, "proxy-refused", NULL,
			       "connection from %s refused: proxy_protocol is on and it is not "
			       "in proxy_trusted_networks",
			       conn->peer);
		return FALSE;
	}
	r = mpop_proxy_read(conn->fd_in, versions, cfg->proxy_header_timeout * 1000, &h);
	if (r < 0) {
		mpop_log_event(r == -ETIMEDOUT ? MPOP_LOG_INFO : MPOP_LOG_WARNING,
			       r == -ETIMEDOUT ? "proxy-timeout" : "proxy-invalid", NULL,
			       "connection from %s closed: PROXY header: %s", conn->peer,
			       proxy_error(r));
		return FALSE;
	}
	if (h.local)
		return TRUE;
	conn->proxy = g_steal_pointer(&conn->peer_host);
	g_free(conn->peer);
	g_free(conn->local);
	g_free(conn->local_host);
	conn->peer_addr = h.src;
	conn->peer_len = h.src_len;
	conn->peer = sockaddr_name(&h.src, TRUE);
	conn->peer_host = sockaddr_name(&h.src, FALSE);
	conn->loopback = addr_is_loopback(&h.src);
	conn->local_addr = h.dst;
	conn->local_len = h.dst_len;
	conn->local = sockaddr_name(&h.dst, TRUE);
	conn->local_host = sockaddr_name(&h.dst, FALSE);
	mpop_log_set_session(conn->session_id, conn->peer);
	mpop_log_set_proxy(conn->proxy);
	return TRUE;
}

/* proxy: the PROXY header versions the connection starts with (MPOP_PROXY_* bits), 0: none. */
static int
serve_one(const MpopConfig *cfg, MpopTlsContext *tls, MpopPenalty *penalty,
	  const MpopHostRules *rules, int fd_in, int fd_out, gboolean implicit_tls, guint proxy)
{
	MpopConnection conn = {.fd_in = fd_in, .fd_out = fd_out, .tls = tls, .penalty = penalty};
	int ret;

	conn.peer_len = sizeof conn.peer_addr;
	if (getpeername(fd_in, (struct sockaddr *)&conn.peer_addr, &conn.peer_len) < 0) {
		/* Loopback peers and pipes (no peer: a local test or admin) count as local for
		 * plaintext_auth; a socket whose peer cannot be told does not. */
		conn.loopback = errno == ENOTSOCK;
		conn.peer_len = 0;
	} else {
		conn.loopback = addr_is_loopback(&conn.peer_addr);
	}
	conn.local_len = sizeof conn.local_addr;
	if (getsockname(fd_in, (struct sockaddr *)&conn.local_addr, &conn.local_len) < 0)
		conn.local_len = 0;
	conn.peer = conn.peer_len ? sockaddr_name(&conn.peer_addr, TRUE) : NULL;
	if (!conn.peer)
		conn.peer = g_strdup("local");
	conn.local = conn.local_len ? sockaddr_name(&conn.local_addr, TRUE) : NULL;
	conn.peer_host = conn.peer_len ? sockaddr_name(&conn.peer_addr, FALSE) : NULL;
	if (!conn.peer_host)
		conn.peer_host = g_strdup("local");
	conn.local_host = conn.local_len ? sockaddr_name(&conn.local_addr, FALSE) : NULL;
	conn.implicit_tls = implicit_tls;
	conn.session_id = new_session_id();
	if (proxy && !proxy_header(cfg, &conn, proxy))
		ret = 0;
	else
		ret = admit(cfg, rules, &conn) ? mpop_login_run(cfg, &conn) : 1;
	g_free(conn.proxy);
	g_free(conn.peer);
	g_free(conn.local);
	g_free(conn.peer_host);
	g_free(conn.local_host);
	g_free(conn.session_id);
	g_free(conn.tls_info);
	return ret;
}

/* "host:port" or "[v6]:port"; port_override replaces the port (legacy "mpopd PORT"). */
static int
bind_one(const char *spec, const char *port_override, GError **error)
{
	g_autofree char *host = NULL;
	const char *port, *colon = strrchr(spec, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	int fd, one = 1, r;

	if (!colon) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "listen \"%s\": no port", spec);
		return -1;
	}
	host = g_strndup(spec, (gsize)(colon - spec));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	port = port_override ? port_override : colon + 1;
	r = getaddrinfo(*host ? host : NULL, port, &hints, &ai);
	if (r != 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "listen \"%s\": %s", spec,
			    gai_strerror(r));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
			r = errno;
			close(fd);
			fd = -1;
			errno = r;
		}
	}
	if (fd < 0)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "cannot listen on %s%s%s: %s",
			    spec, port_override ? " port " : "", port_override ? port_override : "",
			    g_strerror(errno));
	freeaddrinfo(ai);
	return fd;
}

static gboolean
bind_all(MpopListener *l, const MpopConfig *cfg, int *fds, gboolean *tls, int *proxy, guint *n,
	 GError **error)
{
	char **lists[] = {cfg->listen, cfg->listen_tls};

	*n = 0;
	for (guint k = 0; k < G_N_ELEMENTS(lists); k++) {
		for (char **spec = lists[k]; spec && *spec && *n < MAX_LISTEN; spec++) {
			/* "mpopd PORT" replaces the plain port only */
			g_autofree char *addr = mpop_config_listen_split(*spec, &proxy[*n]);
			int fd = addr ? bind_one(addr, k == 0 ? l->opts->port : NULL, error) : -1;
			if (!addr)
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
					    "listen \"%s\": bad proxy=", *spec);
			if (fd < 0) {
				for (guint i = 0; i < *n; i++)
					close(fds[i]);
				*n = 0;
				return FALSE;
			}
			tls[*n] = k == 1;
			fds[(*n)++] = fd;
		}
	}
	if (*n == 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "no listen address configured");
		return FALSE;
	}
	return TRUE;
}

/* [access] trusted_networks are exempt from max_sessions_per_source. */
static guint
count_from(MpopListener *l, const char *source)
{
	GHashTableIter it;
	gpointer v;
	guint n = 0;

	g_hash_table_iter_init(&it, l->children);
	while (g_hash_table_iter_next(&it, NULL, &v))
		n += g_strcmp0(v, source) == 0;
	return n;
}

/* STATUS= for the service manager: the session count, at most once per STATUS_INTERVAL_USEC
 * (PID 1 parses every notification and publishes it as a D-Bus property change; two a login
 * would be work for the host at high login rates). The latest count is always sent, at the
 * latest that long after it changed. Returns the poll() timeout until it is due, -1: none. */
#define STATUS_INTERVAL_USEC G_USEC_PER_SEC

static int
update_status(MpopListener *l)
{
	guint n = g_hash_table_size(l->children);
	guint64 now;

	if (!l->from_systemd || n == l->status_sent)
		return -1;
	now = mpop_now_usec();
	if (now < l->status_at + STATUS_INTERVAL_USEC)
		return (int)((l->status_at + STATUS_INTERVAL_USEC - now + 999) / 1000);
	mpop_sd_notifyf("STATUS=Serving %u session(s)", n);
	l->status_sent = n;
	l->status_at = now;
	return -1;
}

static gboolean
pool_wanted(const MpopListener *l)
{
	return l->cfg->login_reuse > 1 && l->cfg->privsep && geteuid() == 0;
}

/* End pool entry i: without its control socket it exits once it is done (reaped as any
 * child). */
static void
pool_retire(MpopListener *l, guint i)
{
	PoolProc *p = &g_array_index(l->pool, PoolProc, i);

	close(p->ctl);
	g_array_remove_index_fast(l->pool, i);
}

static guint
pool_idle_count(const MpopListener *l)
{
	guint n = 0;

	for (guint i = 0; i < l->pool->len; i++)
		n += g_array_index(l->pool, PoolProc, i).conn == 0;
	return n;
}

/* Close, in a child, the daemon's descriptors it must not keep: the listening sockets, the
 * signal fd, the pid file, and the pool's control sockets but keep's. */
static void
close_daemon_fds(MpopListener *l, int keep)
{
	for (guint j = 0; j < l->n_fds; j++)
		close(l->fds[j]);
	close(l->sigfd);
	if (l->pidfile_fd >= 0)
		close(l->pidfile_fd);
	for (guint j = 0; l->pool && j < l->pool->len; j++) {
		int ctl = g_array_index(l->pool, PoolProc, j).ctl;
		if (ctl != keep)
			close(ctl);
	}
}

/* client: the connection just accepted, which the new process must not hold. */
static gint
pool_spawn(MpopListener *l, int client)
{
	int sv[2];
	pid_t daemon = getpid(), pid;
	PoolProc p = {0};

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t all;

		close(sv[0]);
		close(client);
		close_daemon_fds(l, -1);
		/* The table is the connection processes': the network-facing one never sees it. */
		mpop_penalty_close(l->penalty);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGTERM, SIG_DFL);
		mpop_login_pool_main(l->cfg, l->tls, sv[1], daemon);
	}
	close(sv[1]);
	p.pid = pid;
	p.ctl = sv[0];
	p.generation = l->generation;
	g_array_append_val(l->pool, p);
	return (gint)l->pool->len - 1;
}

/* An idle reusable pre-login process for the connection just accepted on client (one is
 * forked when none is idle); -1: none (the connection process forks its own). */
static gint
pool_take(MpopListener *l, int client)
{
	gint i;

	for (i = 0; i < (gint)l->pool->len; i++)
		if (g_array_index(l->pool, PoolProc, i).conn == 0)
			break;
	if (i == (gint)l->pool->len)
		i = pool_spawn(l, client);
	return i;
}

/* A message on pool entry i's control socket: it is idle again (MPOP_POOL_IDLE), or gone. */
static void
pool_event(MpopListener *l, guint i)
{
	PoolProc *p = &g_array_index(l->pool, PoolProc, i);
	char c = 0;
	ssize_t n = recv(p->ctl, &c, 1, MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n != 1 || c != MPOP_POOL_IDLE) {
		/* Ended, or saying what it may not: it is no pre-login process of ours any more. */
		if (n > 0)
			kill(p->pid, SIGKILL);
		pool_retire(l, i);
		return;
	}
	p->conn = 0;
	if (p->served >= l->cfg->login_reuse || p->generation != l->generation || !pool_wanted(l) ||
	    pool_idle_count(l) > POOL_IDLE_MAX)
		pool_retire(l, i);
}

/* A child ended: a pre-login process leaves the pool; one that was serving a connection
 * process that has ended without it saying it is idle again (a connection refused before
 * the login, a crash) is ended too. */
static void
pool_reaped(MpopListener *l, pid_t pid, int status)
{
	for (guint i = 0; i < l->pool->len; i++) {
		PoolProc *p = &g_array_index(l->pool, PoolProc, i);
		if (p->pid != pid && p->conn != pid)
			continue;
		/* Still in the pool, so not retired: a crash, or a system call the sandbox
		 * refused. (SIGKILL: a connection process ended it and said why.) */
		if (p->pid == pid && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			mpop_log_event(MPOP_LOG_ERR, "prelogin-died", NULL,
				       "pre-login process %d killed by signal %d (%s)", (int)pid,
				       WTERMSIG(status), g_strsignal(WTERMSIG(status)));
		pool_retire(l, i);
		return;
	}
}

static void
accept_one(MpopListener *l, guint i)
{
	int lfd = l->fds[i];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	g_autofree char *source = NULL;
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	gboolean balancer;
	guint proxy = (guint)(l->proxy[i] >= 0 ? l->proxy[i] : l->cfg->proxy_protocol);
	pid_t pid;
	gint pre;

	if (fd < 0)
		return;
	source = sockaddr_name(&ss, FALSE);
	/* Behind a balancer every connection comes from it: the clients' own addresses are
	 * known only once the header is read, in the session process. */
	balancer = proxy && in_networks(l->cfg->proxy_trusted_networks, &ss, len);
	if (g_hash_table_size(l->children) >= l->cfg->max_sessions ||
	    (source && !balancer && !in_networks(l->cfg->trusted_networks, &ss, len) &&
	     count_from(l, source) >= l->cfg->max_sessions_per_source)) {
		static const char busy[] = "-ERR [SYS/TEMP] Too many connections, try later.\r\n";
		mpop_log_event(MPOP_LOG_WARNING, "refused", NULL,
			       "connection from %s refused: session limit reached",
			       source ? source : "?");
		/* On an implicit TLS port a line in clear would only be a broken TLS record to
		 * the client (and a handshake is the work the limit saves): just close. The
		 * line is best effort; the socket is new and its buffer empty. */
		if (!l->implicit_tls[i] && send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT) < 0)
			mpop_log_debug("refusal not sent: %s", g_strerror(errno));
		close(fd);
		return;
	}
	pre = pool_wanted(l) ? pool_take(l, fd) : -1;
	pid = fork();
	if (pid < 0) {
		mpop_log_err("fork failed: %s", g_strerror(errno));
		close(fd);
		return;
	}
	if (pid == 0) {
		sigset_t all;
		int ret;

		close_daemon_fds(l, pre >= 0 ? g_array_index(l->pool, PoolProc, pre).ctl : -1);
		if (pre >= 0)
			mpop_login_use_pool(g_array_index(l->pool, PoolProc, pre).pid,
					    g_array_index(l->pool, PoolProc, pre).ctl);
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		signal(SIGTERM, SIG_DFL);
		ret = serve_one(l->cfg, l->tls, l->penalty, l->rules, fd, fd, l->implicit_tls[i],
				proxy);
		mpop_login_release_pool();
		_exit(ret);
	}
	if (pre >= 0) {
		g_array_index(l->pool, PoolProc, pre).conn = pid;
		g_array_index(l->pool, PoolProc, pre).served++;
	}
	close(fd);
	g_hash_table_insert(l->children, GINT_TO_POINTER(pid), g_steal_pointer(&source));
}

static void
reap(MpopListener *l)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		g_hash_table_remove(l->children, GINT_TO_POINTER(pid));
		pool_reaped(l, pid, status);
	}
}

/* Implicit TLS sockets (systemd's pop3s, listen_tls) need a certificate. */
static gboolean
check_tls_needed(const MpopListener *l, const MpopConfig *cfg, GError **error)
{
	for (guint i = 0; i < l->n_fds; i++) {
		if (l->implicit_tls[i] && !mpop_config_has_tls(cfg)) {
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
				    "%s: an implicit TLS socket (pop3s) is open but [tls] "
				    "certificate is not set",
				    cfg->path);
			return FALSE;
		}
	}
	return TRUE;
}

/* [access] hosts_allow_deny, parsed; *out NULL when none is configured. */
static gboolean
load_rules(const MpopConfig *cfg, MpopHostRules **out, GError **error)
{
	*out = NULL;
	if (!*cfg->hosts_allow_deny)
		return TRUE;
	*out = mpop_hostrules_load(cfg->hosts_allow_deny, error);
	return *out != NULL;
}

/* A configuration read for a reload or refresh, validated, not yet in force. */
typedef struct {
	MpopConfig *cfg;
	MpopTlsContext *tls;
	MpopHostRules *rules;
} MpopNextConfig;

static void
next_clear(MpopNextConfig *n)
{
	g_clear_pointer(&n->cfg, mpop_config_free);
	g_clear_pointer(&n->tls, mpop_tls_context_free);
	g_clear_pointer(&n->rules, mpop_hostrules_free);
}

/* Read and check the configuration file again: the file, the backends, the host rules, the
 * certificate and key. FALSE: *n is empty and the old configuration stays. */
static gboolean
next_load(MpopListener *l, MpopNextConfig *n, GError **error)
{
	*n = (MpopNextConfig){0};
	n->cfg = mpop_config_load(l->opts->config_path, FALSE, error);
	if (n->cfg && mpop_auth_check_config(n->cfg, error) &&
	    load_rules(n->cfg, &n->rules, error) &&
	    (!mpop_config_has_tls(n->cfg) || (n->tls = mpop_tls_context_new(n->cfg, error))) &&
	    check_tls_needed(l, n->cfg, error))
		return TRUE;
	next_clear(n);
	return FALSE;
}

/* Put a loaded configuration in force for new sessions; running ones keep theirs. */
static void
next_adopt(MpopListener *l, MpopNextConfig *n)
{
	mpop_config_free(l->cfg);
	l->cfg = g_steal_pointer(&n->cfg);
	g_clear_pointer(&l->tls, mpop_tls_context_free);
	l->tls = g_steal_pointer(&n->tls);
	mpop_hostrules_free(l->rules);
	l->rules = g_steal_pointer(&n->rules);
	mpop_log_set_level(l->cfg->log_level);
	mpop_log_open(l->cfg->log_target, l->opts->foreground, l->cfg->log_syslog_socket);
	(void)mpop_privsep_resolve_login(l->cfg->login_user);
	/* Pre-login processes forked with the old configuration serve no new connection. */
	l->generation++;
	for (guint i = l->pool ? l->pool->len : 0; i-- > 0;)
		if (g_array_index(l->pool, PoolProc, i).conn == 0)
			pool_retire(l, i);
}

static void
close_listeners(MpopListener *l)
{
	for (guint i = 0; i < l->n_fds; i++)
		close(l->fds[i]);
	l->n_fds = 0;
}

/* Bind cfg's addresses and take them instead of the current sockets, which are closed
 * first when close_first (a refresh binds the same ports again), else only once the new
 * ones are bound. FALSE: the current sockets are untouched (close_first: gone). */
static gboolean
rebind(MpopListener *l, const MpopConfig *cfg, gboolean close_first, GError **error)
{
	int fds[MAX_LISTEN], proxy[MAX_LISTEN];
	gboolean tls[MAX_LISTEN];
	guint n = 0;

	if (close_first)
		close_listeners(l);
	if (!bind_all(l, cfg, fds, tls, proxy, &n, error))
		return FALSE;
	close_listeners(l);
	memcpy(l->fds, fds, sizeof(int) * n);
	memcpy(l->implicit_tls, tls, sizeof(gboolean) * n);
	memcpy(l->proxy, proxy, sizeof(int) * n);
	l->n_fds = n;
	return TRUE;
}

static gboolean pidfile_write(MpopListener *l, GError **error);

/* The pid file names the port now bound; a failure to say so is logged, not fatal. */
static void
pidfile_update(MpopListener *l)
{
	g_autoptr(GError) error = NULL;

	if (!pidfile_write(l, &error))
		mpop_log_err("%s", error->message);
}

/* SIGUSR1 (and systemctl reload): re-read the configuration for new sessions; running
 * sessions keep the one they started with. A changed listen is bound anew (the legacy
 * daemon; systemd owns its sockets). A bad file keeps the old configuration. */
static void
reload(MpopListener *l)
{
	g_autoptr(GError) error = NULL;
	MpopNextConfig n;

	if (l->from_systemd)
		mpop_sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%" G_GUINT64_FORMAT, mpop_now_usec());
	if (next_load(l, &n, &error) && !l->from_systemd &&
	    (!g_strv_equal((const char *const *)n.cfg->listen,
			   (const char *const *)l->cfg->listen) ||
	     !g_strv_equal((const char *const *)n.cfg->listen_tls,
			   (const char *const *)l->cfg->listen_tls))) {
		if (rebind(l, n.cfg, FALSE, &error))
			pidfile_update(l);
		else
			next_clear(&n);
	}
	if (n.cfg) {
		next_adopt(l, &n);
		mpop_log_event(MPOP_LOG_NOTICE, "reload", NULL, "configuration reloaded from %s",
			       l->cfg->path);
	} else {
		mpop_log_event(MPOP_LOG_ERR, "reload-failed", NULL,
			       "reload failed, keeping the old configuration: %s", error->message);
	}
	if (l->from_systemd)
		mpop_sd_notify("READY=1");
}

/* SIGHUP (mpopdctl refresh): end every running session without UPDATE (SIGTERM, which a
 * session does not catch: the client sees the connection close, nothing is deleted), close
 * the listening sockets, re-read the configuration and bind its addresses again. A bad file
 * refuses the whole refresh, so that sessions are never ended for nothing. */
static void
refresh(MpopListener *l)
{
	g_autoptr(GError) error = NULL;
	MpopNextConfig n;
	GHashTableIter it;
	gpointer pid;

	if (l->from_systemd)
		mpop_sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%" G_GUINT64_FORMAT, mpop_now_usec());
	if (!next_load(l, &n, &error)) {
		mpop_log_event(MPOP_LOG_ERR, "reload-failed", NULL,
			       "refresh refused, sessions and configuration unchanged: %s",
			       error->message);
		goto out;
	}
	mpop_log_event(MPOP_LOG_NOTICE, "refresh", NULL,
		       "refresh: ending %u session(s) without UPDATE",
		       g_hash_table_size(l->children));
	g_hash_table_iter_init(&it, l->children);
	while (g_hash_table_iter_next(&it, &pid, NULL))
		kill(GPOINTER_TO_INT(pid), SIGTERM);
	/* The port may be busy for a moment (another program took it): then the old
	 * configuration's addresses, and with neither there is nothing left to serve. */
	if (!l->from_systemd && !rebind(l, n.cfg, TRUE, &error)) {
		g_autoptr(GError) again = NULL;
		mpop_log_event(MPOP_LOG_ERR, "reload-failed", NULL,
			       "refresh: %s; keeping the old configuration", error->message);
		next_clear(&n);
		if (!rebind(l, l->cfg, TRUE, &again)) {
			mpop_log_err("refresh: %s; stopping", again->message);
			l->stopping = TRUE;
			l->exit_status = 1;
		}
	}
	if (n.cfg) {
		next_adopt(l, &n);
		mpop_log_event(MPOP_LOG_NOTICE, "reload", NULL, "configuration reloaded from %s",
			       l->cfg->path);
	}
	if (!l->from_systemd && !l->stopping)
		pidfile_update(l);
out:
	if (l->from_systemd)
		mpop_sd_notify("READY=1");
}

static void
handle_signal(MpopListener *l)
{
	struct signalfd_siginfo si;

	while (read(l->sigfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(l);
			break;
		case SIGHUP:
			refresh(l);
			break;
		case SIGUSR1:
			reload(l);
			break;
		case SIGTERM:
		case SIGINT:
			l->stopping = TRUE;
			break;
		default:
			break;
		}
	}
}

/* The failure penalty table: one per machine where each connection is its own process
 * (path: a file that outlives them), one in memory that the daemon's children inherit (path
 * NULL). Without it (mpopd not root: no /run/mpopd) logins are still capped per
 * connection. */
static MpopPenalty *
open_penalty(const char *path)
{
	g_autoptr(GError) error = NULL;
	MpopPenalty *pen = mpop_penalty_open(path, &error);

	if (!pen)
		mpop_log_warning("running without the failure penalty: %s", error->message);
	return pen;
}

static int
accept_loop(MpopListener *l)
{
	sigset_t mask;
	GHashTableIter it;
	gpointer pid;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	l->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	l->children = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	l->pool = g_array_new(FALSE, FALSE, sizeof(PoolProc));
	l->penalty = open_penalty(NULL);
	if (l->from_systemd)
		mpop_sd_notify("READY=1\nSTATUS=Serving 0 session(s)");
	mpop_log_event(MPOP_LOG_NOTICE, "start", NULL, "mpopd %s accepting connections",
		       MPOPD_VERSION);
	while (!l->stopping) {
		guint n = l->n_fds, np = l->pool->len;
		g_autofree struct pollfd *pfd = g_new(struct pollfd, n + 1 + np);

		for (guint i = 0; i < n; i++)
			pfd[i] = (struct pollfd){.fd = l->fds[i], .events = POLLIN};
		pfd[n] = (struct pollfd){.fd = l->sigfd, .events = POLLIN};
		for (guint i = 0; i < np; i++)
			pfd[n + 1 + i] = (struct pollfd){
				.fd = g_array_index(l->pool, PoolProc, i).ctl, .events = POLLIN};
		if (poll(pfd, n + 1 + np, update_status(l)) < 0 && errno != EINTR)
			break;
		/* Pre-login processes first: one that is idle again says so before its connection
		 * process can have ended (a reaped connection process retires a busy one). From
		 * the end: a retired entry is replaced by the last, which was handled already. */
		for (guint i = np; i-- > 0;)
			if (pfd[n + 1 + i].revents)
				pool_event(l, i);
		if (pfd[n].revents) {
			handle_signal(l);
			/* A reload or refresh may have replaced the sockets just polled. */
			continue;
		}
		for (guint i = 0; i < n && !l->stopping && i < l->n_fds; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(l, i);
	}
	if (l->from_systemd)
		mpop_sd_notify("STOPPING=1");
	mpop_log_event(MPOP_LOG_NOTICE, "stop", NULL, "stopping, ending %u session(s)",
		       g_hash_table_size(l->children));
	/* A pre-login process waits for its client, not for its connection process: end it
	 * (nothing of a login in progress is worth keeping), or the stop would wait for the
	 * slowest client up to login_timeout. */
	while (l->pool->len) {
		kill(g_array_index(l->pool, PoolProc, l->pool->len - 1).pid, SIGKILL);
		pool_retire(l, l->pool->len - 1);
	}
	/* Sessions end without UPDATE: nothing is deleted, nothing is lost. */
	g_hash_table_iter_init(&it, l->children);
	while (g_hash_table_iter_next(&it, &pid, NULL))
		kill(GPOINTER_TO_INT(pid), SIGTERM);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;
	g_hash_table_destroy(l->children);
	g_array_free(l->pool, TRUE);
	return l->exit_status;
}

/* The pid file is flock()ed for the daemon's lifetime: a second daemon sees it busy, and
 * a stale file (no lock held) is simply taken over. The lock belongs to the open file, so it
 * stays with the daemon when the process that took it exits after the fork. */
static gboolean
pidfile_lock(MpopListener *l, GError **error)
{
	const char *path = l->cfg->pid_file;

	l->pidfile_fd = -1;
	if (!path || !*path || l->opts->no_pidfile)
		return TRUE;
	l->pidfile_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (l->pidfile_fd < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "pid file %s: %s", path,
			    g_strerror(errno));
		return FALSE;
	}
	if (flock(l->pidfile_fd, LOCK_EX | LOCK_NB) < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE,
			    "pid file %s is locked: mpopd is already running", path);
		close(l->pidfile_fd);
		l->pidfile_fd = -1;
		return FALSE;
	}
	l->pidfile = g_strdup(path);
	return TRUE;
}

/* The port of the first plain listening socket (else of the first one): what the pid file
 * names. "" when none is bound. */
static char *
bound_port(const MpopListener *l)
{
	for (int tls = 0; tls < 2; tls++) {
		for (guint i = 0; i < l->n_fds; i++) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof ss;
			if (l->implicit_tls[i] != tls ||
			    getsockname(l->fds[i], (struct sockaddr *)&ss, &len) < 0)
				continue;
			if (ss.ss_family == AF_INET)
				return g_strdup_printf(
					"%u", ntohs(((struct sockaddr_in *)&ss)->sin_port));
			if (ss.ss_family == AF_INET6)
				return g_strdup_printf(
					"%u", ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
		}
	}
	return g_strdup("");
}

/* Content: "pid\nport\n", written by the process that serves, with the port it has bound
 * (again after a reload or refresh that bound others). Written over the old content and then
 * cut to length, so that a reader never finds the file empty. */
static gboolean
pidfile_write(MpopListener *l, GError **error)
{
	g_autofree char *port = NULL, *text = NULL;
	size_t len;

	if (l->pidfile_fd < 0)
		return TRUE;
	port = bound_port(l);
	text = g_strdup_printf("%d\n%s\n", (int)getpid(), port);
	len = strlen(text);
	if (pwrite(l->pidfile_fd, text, len, 0) != (ssize_t)len ||
	    ftruncate(l->pidfile_fd, (off_t)len) < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "pid file %s: %s", l->pidfile,
			    g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

static void
daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		mpop_log_err("fork: %s", g_strerror(errno));
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	pid = fork();
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		_exit(1);
	umask(022);
	/* Let go of the starter's terminal, pipe or file (mpopdctl start | tee must not wait
	 * for the daemon; a deleted file must not grow): the log goes to journald or syslog. */
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

static int
run_daemon(MpopListener *l)
{
	g_autoptr(GError) error = NULL;
	int ret;

	if (!bind_all(l, l->cfg, l->fds, l->implicit_tls, l->proxy, &l->n_fds, &error)) {
		mpop_log_err("%s", error->message);
		return 1;
	}
	/* Locked before detaching, so that "already running" reaches whoever started it. */
	if (!pidfile_lock(l, &error)) {
		mpop_log_err("%s", error->message);
		return 1;
	}
	if (!l->opts->foreground) {
		daemonize();
		mpop_log_open(l->cfg->log_target, FALSE, l->cfg->log_syslog_socket);
	}
	if (pidfile_write(l, &error)) {
		ret = accept_loop(l);
	} else {
		mpop_log_err("%s", error->message);
		ret = 1;
	}
	if (l->pidfile) {
		unlink(l->pidfile);
		g_free(l->pidfile);
	}
	return ret;
}

/* Whether this is the legacy daemon that goes into the background (the way the dispatch in
 * mpop_listener_run ends up in run_daemon without -F). */
static gboolean
detaches(const MpopListenOptions *opts, int n_listen)
{
	if (opts->foreground || opts->mode == MPOP_MODE_INETD)
		return FALSE;
	return opts->mode == MPOP_MODE_DAEMON ||
	       (n_listen == 0 && mpop_sd_is_socket(STDIN_FILENO, AF_UNSPEC, SOCK_STREAM, 0) <= 0);
}

/* Keep only the descriptors mpopd was handed (0-2 and, under systemd, the LISTEN_FDS):
 * anything else its starter leaked must not reach a session. */
static void
close_inherited(int n_listen)
{
	unsigned first = MPOP_SD_LISTEN_FDS_START + (unsigned)MAX(n_listen, 0);

	if (close_range(first, ~0U, 0) < 0) {
		for (int fd = (int)first; fd < 1024; fd++)
			close(fd);
	}
}

/* The PROXY versions of a connection handed over (inetd, Accept=yes): --proxy-protocol,
 * else [server] proxy_protocol. */
static guint
conn_proxy(const MpopConfig *cfg, const MpopListenOptions *opts)
{
	return opts->proxy >= 0 ? (guint)opts->proxy : (guint)cfg->proxy_protocol;
}

/* A systemd socket named FileDescriptorName=pop3-proxy or pop3s-proxy carries a balancer's
 * connections: [server] proxy_protocol's versions, or any version when that is off. */
static guint
socket_proxy(const MpopConfig *cfg)
{
	return cfg->proxy_protocol ? (guint)cfg->proxy_protocol
				   : (guint)(MPOP_PROXY_V1 | MPOP_PROXY_V2);
}

static gboolean
is_proxy_name(const char *name)
{
	return g_strcmp0(name, "pop3-proxy") == 0 || g_strcmp0(name, "pop3s-proxy") == 0;
}

/* name is kind, or kind-proxy ("pop3s" matches "pop3s" and "pop3s-proxy"). */
static gboolean
name_is(const char *name, const char *kind)
{
	size_t n = strlen(kind);

	return name && strncmp(name, kind, n) == 0 && (!name[n] || strcmp(name + n, "-proxy") == 0);
}

/* A process that served its one connection (inetd, Accept=yes) ends as the daemon's
 * connection processes do: nothing it holds needs freeing, and libraries' destructors
 * (GLib's, libc's) would only touch pages to tear down what the exit frees anyway. */
static G_NORETURN void
connection_done(int ret)
{
	fflush(NULL);
	_exit(ret);
}

int
mpop_listener_run(MpopConfig *cfg, const MpopListenOptions *opts)
{
	MpopListener l = {.cfg = cfg, .opts = opts, .pidfile_fd = -1, .sigfd = -1};
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) names = NULL;
	int n = 0, ret;

	if (opts->mode == MPOP_MODE_AUTO) {
		n = mpop_sd_listen_fds_with_names(TRUE, &names);
		if (n < 0) {
			mpop_log_err("sd_listen_fds: %s", g_strerror(-n));
			return 1;
		}
	}
	close_inherited(n);
	/* The detached daemon chooses once it has let go of the starter's stderr. */
	if (!detaches(opts, n))
		mpop_log_open(cfg->log_target, opts->foreground, cfg->log_syslog_socket);
	if (mpop_config_has_tls(cfg)) {
		/* Read now, as root: the pre-login process could not read the key itself. */
		l.tls = mpop_tls_context_new(cfg, &error);
		if (!l.tls) {
			mpop_log_err("%s", error->message);
			ret = 1;
			goto out;
		}
	} else if (opts->tls) {
		mpop_log_err("%s: --tls needs [tls] certificate", cfg->path);
		ret = 1;
		goto out;
	}
	if (!load_rules(cfg, &l.rules, &error)) {
		mpop_log_err("%s", error->message);
		ret = 1;
		goto out;
	}
	/* Once here, not in every connection's pre-login process. */
	if (geteuid() == 0 && cfg->privsep)
		(void)mpop_privsep_resolve_login(cfg->login_user);
	if (opts->mode == MPOP_MODE_INETD) {
		l.penalty = open_penalty(cfg->penalty_state);
		ret = serve_one(cfg, l.tls, l.penalty, l.rules, STDIN_FILENO, STDOUT_FILENO,
				opts->tls, conn_proxy(cfg, opts));
		connection_done(ret);
	}
	if (opts->mode == MPOP_MODE_AUTO) {
		/* Accept=yes: exactly one connected socket (named "connection" by systemd). */
		if (n == 1 &&
		    mpop_sd_is_socket(MPOP_SD_LISTEN_FDS_START, AF_UNSPEC, SOCK_STREAM, 0) > 0) {
			l.penalty = open_penalty(cfg->penalty_state);
			ret = serve_one(cfg, l.tls, l.penalty, l.rules, MPOP_SD_LISTEN_FDS_START,
					MPOP_SD_LISTEN_FDS_START,
					opts->tls || (names && name_is(names[0], "pop3s")),
					names && is_proxy_name(names[0]) ? socket_proxy(cfg)
									 : conn_proxy(cfg, opts));
			connection_done(ret);
		}
		if (n > 0) {
			/* Accept=no: listening sockets; we accept and fork per session. A socket
			 * named pop3s (FileDescriptorName=) is implicit TLS. */
			for (int i = 0; i < n && l.n_fds < MAX_LISTEN; i++) {
				int fd = MPOP_SD_LISTEN_FDS_START + i;
				if (mpop_sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
					mpop_log_err("inherited fd %d is not a listening stream "
						     "socket",
						     fd);
					ret = 1;
					goto out;
				}
				fcntl(fd, F_SETFD, FD_CLOEXEC);
				l.implicit_tls[l.n_fds] = names && name_is(names[i], "pop3s");
				l.proxy[l.n_fds] = names && is_proxy_name(names[i])
							   ? (int)socket_proxy(cfg)
							   : -1;
				l.fds[l.n_fds++] = fd;
			}
			if (!check_tls_needed(&l, cfg, &error)) {
				mpop_log_err("%s", error->message);
				ret = 1;
				goto out;
			}
			l.from_systemd = TRUE;
			ret = accept_loop(&l);
			goto out;
		}
		/* inetd style (also systemd StandardInput=socket): stdin is the connection. */
		if (mpop_sd_is_socket(STDIN_FILENO, AF_UNSPEC, SOCK_STREAM, 0) > 0) {
			l.penalty = open_penalty(cfg->penalty_state);
			ret = serve_one(cfg, l.tls, l.penalty, l.rules, STDIN_FILENO, STDOUT_FILENO,
					opts->tls, conn_proxy(cfg, opts));
			connection_done(ret);
		}
	}
	ret = run_daemon(&l);
out:
	g_clear_pointer(&l.rules, mpop_hostrules_free);
	g_clear_pointer(&l.penalty, mpop_penalty_free);
	g_clear_pointer(&l.tls, mpop_tls_context_free);
	mpop_config_free(l.cfg);
	return ret;
}
