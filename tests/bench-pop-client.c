/* SPDX-License-Identifier: GPL-2.0-or-later */
/* POP3 benchmark client for tests/bench-tls.py: RETR of every message and concurrent logins,
 * in plaintext or over implicit TLS, against any server on 127.0.0.1. Not a test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* How many RETR commands a pipelining client keeps in flight (RFC 2449 §6.6). */
#define PIPELINE_WINDOW 64

typedef struct {
	int fd;
	SSL *ssl; /* NULL in plaintext */
	char buf[256 << 10];
	size_t off, len;
} Conn;

static SSL_CTX *ctx; /* NULL in plaintext */

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* A new connection, TLS handshake included; a full handshake each time (no resumption), as
 * a client process that starts fresh does it. Returns 0 on failure. */
static int
conn_open(Conn *c, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int one = 1;

	c->off = c->len = 0;
	c->ssl = NULL;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return 0;
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(c->fd);
		return 0;
	}
	if (ctx == NULL)
		return 1;
	c->ssl = SSL_new(ctx);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1) {
		SSL_free(c->ssl);
		close(c->fd);
		return 0;
	}
	return 1;
}

static void
conn_close(Conn *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl); /* send close_notify, do not wait for the peer's */
		SSL_free(c->ssl);
	}
	close(c->fd);
}

static int
conn_write(Conn *c, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w;

		if (c->ssl != NULL) {
			size_t done = 0;
			w = SSL_write_ex(c->ssl, p, n, &done) == 1 ? (ssize_t)done : -1;
		} else {
			w = write(c->fd, p, n);
			if (w < 0 && errno == EINTR)
				continue;
		}
		if (w <= 0)
			return 0;
		p += w;
		n -= (size_t)w;
	}
	return 1;
}

/* Appends what the peer sends next to the unread bytes (moved to the front of the buffer);
 * returns the bytes read, 0 at EOF or on error. */
static size_t
conn_fill(Conn *c)
{
	size_t keep = c->len - c->off, n = 0;

	memmove(c->buf, c->buf + c->off, keep);
	c->off = 0;
	c->len = keep;
	if (c->ssl != NULL) {
		if (SSL_read_ex(c->ssl, c->buf + keep, sizeof c->buf - keep, &n) != 1)
			n = 0;
	} else {
		ssize_t r;
		do
			r = read(c->fd, c->buf + keep, sizeof c->buf - keep);
		while (r < 0 && errno == EINTR);
		n = r > 0 ? (size_t)r : 0;
	}
	c->len += n;
	return n;
}

/* One status line into line (cut to size - 1 bytes); returns 1 if it starts with "+OK". */
static int
read_status(Conn *c, char *line, size_t size, long long *bytes)
{
	size_t k = 0;

	line[0] = '\0';
	for (;;) {
		char *nl;
		size_t take;

		if (c->off == c->len && conn_fill(c) == 0)
			return 0;
		nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		take = nl != NULL ? (size_t)(nl - (c->buf + c->off)) + 1 : c->len - c->off;
		for (size_t i = 0; i < take && k + 1 < size; i++)
			line[k++] = c->buf[c->off + i];
		c->off += take;
		*bytes += (long long)take;
		if (nl != NULL)
			break;
	}
	line[k] = '\0';
	return strncmp(line, "+OK", 3) == 0;
}

/* The rest of a multi-line answer, up to and including ".\r\n" (RFC 1939 §3). */
static int
read_body(Conn *c, long long *bytes)
{
	int at_line_start = 1;

	for (;;) {
		char *p, *end, *nl;

		if (c->off == c->len && conn_fill(c) == 0)
			return 0;
		p = c->buf + c->off;
		end = c->buf + c->len;
		if (at_line_start && *p == '.') {
			/* The whole line tells the terminator from a stuffed dot. */
			if (end - p < 3) {
				if (conn_fill(c) == 0)
					return 0;
				continue;
			}
			if (p[1] == '\r' && p[2] == '\n') {
				c->off += 3;
				*bytes += 3;
				return 1;
			}
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			*bytes += end - p;
			c->off = c->len;
			at_line_start = 0;
			continue;
		}
		*bytes += nl + 1 - p;
		c->off += (size_t)(nl + 1 - p);
		at_line_start = 1;
	}
}

static int
command(Conn *c, const char *cmd, char *line, size_t size, long long *bytes)
{
	return conn_write(c, cmd, strlen(cmd)) && read_status(c, line, size, bytes);
}

static int
login(Conn *c, const char *user, const char *pass, long long *bytes)
{
	char cmd[512], line[512];

	if (!read_status(c, line, sizeof line, bytes))
		return 0;
	snprintf(cmd, sizeof cmd, "USER %s\r\n", user);
	if (!command(c, cmd, line, sizeof line, bytes))
		return 0;
	snprintf(cmd, sizeof cmd, "PASS %s\r\n", pass);
	return command(c, cmd, line, sizeof line, bytes);
}

/* retr PORT USER PASS N serial|pipelined: prints one line of key=value figures. */
static int
run_retr(int argc, char **argv)
{
	int port, n, window;
	long long bytes = 0, login_bytes = 0;
	char line[512];
	int sent = 0, done = 0;
	double t0, t_login, t_retr;
	static Conn c;

	if (argc != 5)
		die("usage: retr PORT USER PASS N serial|pipelined");
	port = atoi(argv[0]);
	n = atoi(argv[3]);
	window = strcmp(argv[4], "pipelined") == 0 ? PIPELINE_WINDOW : 1;
	t0 = now();
	if (!conn_open(&c, port))
		die("connect/handshake to port %d failed", port);
	if (!login(&c, argv[1], argv[2], &login_bytes))
		die("login failed");
	t_login = now();
	while (done < n) {
		/* serial: one command, its answer, the next; pipelined: refill the window when
		 * half of it has been answered */
		if (sent < n && sent - done <= window / 2) {
			char batch[PIPELINE_WINDOW * 24];
			size_t len = 0;

			while (sent < n && sent - done < window)
				len += (size_t)snprintf(batch + len, sizeof batch - len,
							"RETR %d\r\n", ++sent);
			if (!conn_write(&c, batch, len))
				die("write failed after %d answers", done);
		}
		if (!read_status(&c, line, sizeof line, &bytes))
			die("RETR %d: %s", done + 1, line);
		if (!read_body(&c, &bytes))
			die("RETR %d: connection lost", done + 1);
		done++;
	}
	t_retr = now();
	if (!command(&c, "QUIT\r\n", line, sizeof line, &bytes))
		die("QUIT: %s", line);
	printf("login_ms=%.1f bytes=%lld retr_s=%.4f mbps=%.1f total_s=%.4f", (t_login - t0) * 1e3,
	       bytes, t_retr - t_login, (double)bytes / (t_retr - t_login) / 1e6, now() - t0);
	if (c.ssl != NULL)
		printf(" tls=%s/%s", SSL_get_version(c.ssl), SSL_get_cipher_name(c.ssl));
	printf("\n");
	conn_close(&c);
	return 0;
}

/* One session as a mail client does it to look for new mail. */
static int
one_session(Conn *c, int port, const char *user, const char *pass)
{
	long long bytes = 0;
	char line[512];
	int ok;

	if (!conn_open(c, port))
		return 0;
	ok = login(c, user, pass, &bytes) && command(c, "STAT\r\n", line, sizeof line, &bytes) &&
	     command(c, "QUIT\r\n", line, sizeof line, &bytes);
	conn_close(c);
	return ok;
}

/* sessions PORT USER_PREFIX PASS CLIENTS MAX_SESSIONS MAX_SECONDS: client i logs in as
 * USER_PREFIX<i>; stops at MAX_SESSIONS in all or MAX_SECONDS, whichever comes first. */
static int
run_sessions(int argc, char **argv)
{
	int port, clients, max_sessions, fds[2];
	long long ok = 0, failed = 0;
	double max_seconds, t0, lat_sum = 0, lat_max = 0;

	if (argc != 6)
		die("usage: sessions PORT USER_PREFIX PASS CLIENTS MAX_SESSIONS MAX_SECONDS");
	port = atoi(argv[0]);
	clients = atoi(argv[3]);
	max_sessions = atoi(argv[4]);
	max_seconds = atof(argv[5]);
	if (clients < 1 || clients > 256 || pipe(fds) < 0)
		die("bad client count");
	t0 = now();
	for (int i = 0; i < clients; i++) {
		pid_t pid = fork();

		if (pid < 0)
			die("fork");
		if (pid == 0) {
			static Conn c;
			char user[256];
			double r[4] = {0, 0, 0, 0}; /* ok, failed, latency sum, latency max */
			int quota = max_sessions / clients + (i < max_sessions % clients);

			close(fds[0]);
			snprintf(user, sizeof user, "%s%d", argv[1], i);
			while (r[0] + r[1] < quota && now() - t0 < max_seconds) {
				double s = now();
				int good = one_session(&c, port, user, argv[2]);
				double lat = now() - s;

				r[good ? 0 : 1]++;
				if (good) {
					r[2] += lat;
					r[3] = lat > r[3] ? lat : r[3];
				} else if (r[1] > 20) {
					break; /* not a rate any more */
				}
			}
			if (write(fds[1], r, sizeof r) != sizeof r)
				_exit(1);
			_exit(0);
		}
	}
	close(fds[1]);
	for (int i = 0; i < clients; i++) {
		double r[4];

		if (read(fds[0], r, sizeof r) != sizeof r)
			die("a client died");
		ok += (long long)r[0];
		failed += (long long)r[1];
		lat_sum += r[2];
		lat_max = r[3] > lat_max ? r[3] : lat_max;
	}
	while (wait(NULL) > 0)
		;
	double dt = now() - t0;
	printf("sessions=%lld failed=%lld seconds=%.3f rate=%.1f mean_ms=%.1f max_ms=%.1f\n", ok,
	       failed, dt, (double)ok / dt, ok > 0 ? lat_sum / (double)ok * 1e3 : 0, lat_max * 1e3);
	return failed > 0 && ok == 0;
}

int
main(int argc, char **argv)
{
	if (argc < 3)
		die("usage: bench-pop-client retr|sessions tls|plain ARGS...");
	signal(SIGPIPE, SIG_IGN);
	if (strcmp(argv[2], "tls") == 0) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL)
			die("SSL_CTX_new");
		/* A benchmark against a self-signed certificate on loopback: no verification.
		 * No session cache, so every connection pays a full handshake. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else if (strcmp(argv[2], "plain") != 0) {
		die("transport must be tls or plain");
	}
	if (strcmp(argv[1], "retr") == 0)
		return run_retr(argc - 3, argv + 3);
	if (strcmp(argv[1], "sessions") == 0)
		return run_sessions(argc - 3, argv + 3);
	die("unknown mode %s", argv[1]);
}
