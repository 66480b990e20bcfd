/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench: the client connection, the checking reader of multi-line answers, and the
 * report printer shared by every mode. */
#include "mpopd-bench.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

char bench_errmsg[512];

void
bench_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	g_vsnprintf(bench_errmsg, sizeof bench_errmsg, fmt, ap);
	va_end(ap);
}

double
bench_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static SSL_CTX *
tls_context(void)
{
	static SSL_CTX *ctx;

	if (ctx == NULL) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL)
			return NULL;
		/* A benchmark against a test certificate: no verification. No session cache,
		 * so every connection pays a full handshake as a fresh client process does. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		/* With read-ahead (below), room for several records per read. */
		SSL_CTX_set_default_read_buffer_len(ctx, 128 * 1024);
	}
	return ctx;
}

static int
connect_to(const BenchOptions *o)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {
		.tv_sec = (time_t)o->timeout,
		.tv_usec = (suseconds_t)((o->timeout - (double)(time_t)o->timeout) * 1e6)};
	int fd = -1, one = 1, rc;

	rc = getaddrinfo(o->host, o->port, &hints, &res);
	if (rc != 0) {
		bench_fail("%s port %s: %s", o->host, o->port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		/* a server that stops answering ends the run instead of hanging it */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		bench_fail("connect to %s port %s: %s", o->host, o->port, g_strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

gboolean
bench_conn_open(BenchConn *c, const BenchOptions *o)
{
	if (c->buf == NULL) {
		c->cap = 256 << 10;
		c->buf = g_malloc(c->cap);
	}
	c->off = c->len = 0;
	c->ssl = NULL;
	c->fd = connect_to(o);
	if (c->fd < 0)
		return FALSE;
	if (!o->tls)
		return TRUE;
	if (tls_context() == NULL || (c->ssl = SSL_new(tls_context())) == NULL) {
		bench_fail("TLS: %s", ERR_reason_error_string(ERR_get_error()));
		close(c->fd);
		return FALSE;
	}
	SSL_set_fd(c->ssl, c->fd);
	/* Whatever the socket has in one read, as a client that cares about speed does; without
	 * it every record costs two reads and the client, not the server, is measured. */
	SSL_set_read_ahead(c->ssl, 1);
	if (SSL_connect(c->ssl) != 1) {
		bench_fail("TLS handshake: %s", ERR_reason_error_string(ERR_get_error()));
		SSL_free(c->ssl);
		c->ssl = NULL;
		close(c->fd);
		return FALSE;
	}
	return TRUE;
}

void
bench_conn_close(BenchConn *c)
{
	if (c->fd < 0)
		return;
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl); /* close_notify; the peer's is not awaited */
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	close(c->fd);
	c->fd = -1;
}

gboolean
bench_conn_write(BenchConn *c, const char *p, size_t n)
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
		if (w <= 0) {
			bench_fail("write: %s", w < 0 ? g_strerror(errno) : "connection closed");
			return FALSE;
		}
		p += w;
		n -= (size_t)w;
	}
	return TRUE;
}

/* Moves the unread bytes to the front and appends what the peer sends next; returns the
 * bytes read, 0 at EOF, on error or timeout. */
static size_t
conn_fill(BenchConn *c)
{
	size_t keep = c->len - c->off, n = 0;

	memmove(c->buf, c->buf + c->off, keep);
	c->off = 0;
	c->len = keep;
	if (c->ssl != NULL) {
		if (SSL_read_ex(c->ssl, c->buf + keep, c->cap - keep, &n) != 1) {
			n = 0;
			bench_fail("TLS connection closed or failed");
		}
	} else {
		ssize_t r;
		do
			r = read(c->fd, c->buf + keep, c->cap - keep);
		while (r < 0 && errno == EINTR);
		n = r > 0 ? (size_t)r : 0;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			bench_fail("no answer within the timeout");
		else if (r <= 0)
			bench_fail("connection closed by the server");
	}
	c->len += n;
	c->wire += n;
	return n;
}

int
bench_conn_status(BenchConn *c, char *line, size_t size)
{
	size_t k = 0;

	line[0] = '\0';
	for (;;) {
		char *nl;
		size_t take;

		if (c->off == c->len && conn_fill(c) == 0)
			return -1;
		nl = memchr(c->buf + c->off, '\n', c->len - c->off);
		take = nl != NULL ? (size_t)(nl - (c->buf + c->off)) + 1 : c->len - c->off;
		for (size_t i = 0; i < take && k + 1 < size; i++)
			line[k++] = c->buf[c->off + i];
		c->off += take;
		if (nl != NULL)
			break;
	}
	while (k > 0 && (line[k - 1] == '\n' || line[k - 1] == '\r'))
		k--;
	line[k] = '\0';
	return strncmp(line, "+OK", 3) == 0;
}

int
bench_conn_command(BenchConn *c, const char *cmd, char *line, size_t size)
{
	g_autofree char *wire = g_strconcat(cmd, "\r\n", NULL);

	if (!bench_conn_write(c, wire, strlen(wire)))
		return -1;
	return bench_conn_status(c, line, size);
}

gboolean
bench_conn_body(BenchConn *c, BenchBody *out, GString *keep)
{
	gboolean done = FALSE;

	bench_body_init(out);
	while (!done) {
		if (c->off == c->len && conn_fill(c) == 0)
			return FALSE;
		c->off += bench_body_feed(out, c->buf + c->off, c->len - c->off, keep, &done);
	}
	return TRUE;
}

gboolean
bench_login(BenchConn *c, const char *user, const char *pass)
{
	char line[512];
	g_autofree char *ucmd = g_strdup_printf("USER %s", user);
	g_autofree char *pcmd = g_strdup_printf("PASS %s", pass);
	int rc;

	rc = bench_conn_status(c, line, sizeof line);
	if (rc <= 0) {
		if (rc == 0)
			bench_fail("greeting: %s", line);
		return FALSE;
	}
	rc = bench_conn_command(c, ucmd, line, sizeof line);
	if (rc > 0)
		rc = bench_conn_command(c, pcmd, line, sizeof line);
	if (rc == 0)
		bench_fail("login as %s: %s", user, line);
	return rc > 0;
}

void
bench_user(const BenchOptions *o, int i, char **out_user, const char **out_pass)
{
	const char *d;

	if (o->users != NULL) {
		guint k = (guint)i % (o->users->len / 2) * 2;
		*out_user = g_strdup(g_ptr_array_index(o->users, k));
		*out_pass = g_ptr_array_index(o->users, k + 1);
		return;
	}
	*out_pass = o->pass;
	d = strstr(o->user, "%d");
	if (d == NULL)
		*out_user = g_strdup(o->user);
	else
		*out_user = g_strdup_printf("%.*s%d%s", (int)(d - o->user), o->user, i, d + 2);
}

double
bench_percentile(const double *sorted, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	rank = rank < 1 ? 1 : rank > n ? n : rank;
	return sorted[rank - 1];
}

void
bench_vwarn(const char *fmt, va_list ap)
{
	fputs("mpopd-bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
bench_progress(const BenchOptions *o, const char *fmt, ...)
{
	va_list ap;

	if (o->quiet)
		return;
	va_start(ap, fmt);
	bench_vwarn(fmt, ap);
	va_end(ap);
}

typedef struct {
	char *key, *label, *value, *unit;
	gboolean numeric;
} BenchField;

struct BenchReport {
	char *mode;
	GArray *fields;
};

static void
field_clear(gpointer p)
{
	BenchField *f = p;

	g_free(f->key);
	g_free(f->label);
	g_free(f->value);
	g_free(f->unit);
}

BenchReport *
bench_report_new(const char *mode, const BenchOptions *o)
{
	BenchReport *r = g_new0(BenchReport, 1);
	g_autofree char *server = NULL;

	r->mode = g_strdup(mode);
	r->fields = g_array_new(FALSE, TRUE, sizeof(BenchField));
	g_array_set_clear_func(r->fields, field_clear);
	if (o->host != NULL) {
		server = g_strdup_printf(strchr(o->host, ':') ? "[%s]:%s%s" : "%s:%s%s", o->host,
					 o->port, o->tls ? " (TLS)" : "");
		bench_report_text(r, "server", "server", server);
	}
	return r;
}

void
bench_report_num(BenchReport *r, const char *key, const char *label, double v, int decimals,
		 const char *unit)
{
	BenchField f = {g_strdup(key), g_strdup(label), g_strdup_printf("%.*f", decimals, v),
			g_strdup(unit ? unit : ""), TRUE};

	g_array_append_val(r->fields, f);
}

void
bench_report_text(BenchReport *r, const char *key, const char *label, const char *text)
{
	BenchField f = {g_strdup(key), g_strdup(label), g_strdup(text), g_strdup(""), FALSE};

	g_array_append_val(r->fields, f);
}

static void
json_string(GString *s, const char *text)
{
	g_string_append_c(s, '"');
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(s, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			g_string_append_printf(s, "\\u%04x", *p);
		else
			g_string_append_c(s, (char)*p);
	}
	g_string_append_c(s, '"');
}

void
bench_report_print(BenchReport *r, const BenchOptions *o)
{
	g_autoptr(GString) s = g_string_new(NULL);
	int wl = 0, wv = 0;

	if (o->json) {
		g_string_append(s, "{\"mode\": ");
		json_string(s, r->mode);
		for (guint i = 0; i < r->fields->len; i++) {
			BenchField *f = &g_array_index(r->fields, BenchField, i);

			g_string_append(s, ", ");
			json_string(s, f->key);
			g_string_append(s, ": ");
			if (f->numeric)
				g_string_append(s, f->value);
			else
				json_string(s, f->value);
		}
		g_string_append(s, "}\n");
	} else {
		for (guint i = 0; i < r->fields->len; i++) {
			BenchField *f = &g_array_index(r->fields, BenchField, i);

			wl = MAX(wl, (int)strlen(f->label));
			if (f->numeric)
				wv = MAX(wv, (int)strlen(f->value));
		}
		g_string_append_printf(s, "%s\n", r->mode);
		for (guint i = 0; i < r->fields->len; i++) {
			BenchField *f = &g_array_index(r->fields, BenchField, i);

			if (f->numeric)
				g_string_append_printf(s, "  %-*s  %*s%s%s\n", wl, f->label, wv,
						       f->value, *f->unit ? " " : "", f->unit);
			else
				g_string_append_printf(s, "  %-*s  %s\n", wl, f->label, f->value);
		}
	}
	fputs(s->str, stdout);
	fflush(stdout);
	g_array_unref(r->fields);
	g_free(r->mode);
	g_free(r);
}
