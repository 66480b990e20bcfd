/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The TLS module mpopd-tls.so: OpenSSL 3 server contexts from [tls], TLS streams, the
 * post-login relay and the hand-over of a TLS 1.3 connection. Loaded by tls.c only when
 * [tls] is configured; exports one table (with tls-record.c's half). */
#include "tls-module.h"
#include "mpopd-build.h"
#include "tls-record.h"
#include "util.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Relay buffers: one TLS record's worth towards the session; towards the client as much as
 * the session writes at once (MPOP_STREAM_OUT_CAP), so a message crosses in one read. */
#define RELAY_UP 16384
#define RELAY_DOWN (2 * MPOP_STREAM_OUT_CAP)
/* Records are collected and written to the client together: one write and one wakeup of the
 * client for several 16 KiB records, instead of one each. */
/* OpenSSL's three TLS 1.3 suites, AES-128-GCM first as Mozilla's server guidelines order
 * them: no weaker in practice than AES-256, and a third less CPU per byte at both ends. A
 * client that lists ChaCha20 first (no AES instructions) gets it (SSL_OP_PRIORITIZE_CHACHA). */
#define DEFAULT_CIPHERSUITES                                                                       \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define WRITE_BUFFER (MPOP_STREAM_OUT_CAP + 8192)

typedef struct {
	SSL *ssl;
	gboolean fatal; /* a fatal TLS or socket error: no close_notify may follow */
	/* For the hand-over of a TLS 1.3 connection to the session (mpop_tls_export): the
	 * application traffic secrets from the key log, and the records protected with them. */
	gboolean established;	 /* the handshake is done: records are counted from here */
	gboolean post_handshake; /* anything but application data since: no hand-over */
	guint8 secret_len;
	gboolean have_read, have_write;
	guint8 read_secret[MPOP_TLS_MAX_SECRET], write_secret[MPOP_TLS_MAX_SECRET];
	guint64 read_records, write_records;
} MpopTls;

/* The last OpenSSL error as text (never NULL). */
static const char *
ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	return r ? r : "unknown error";
}

/* Encrypted keys would make OpenSSL prompt on the terminal: refuse them instead. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static gboolean
load_files(SSL_CTX *ctx, const MpopConfig *cfg, char **out_warning, GError **error)
{
	const char *key = *cfg->tls_key ? cfg->tls_key : cfg->tls_certificate;
	X509 *cert;

	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_certificate) != 1) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "[tls] certificate %s: cannot load: %s", cfg->tls_certificate,
			    ssl_reason());
		return FALSE;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "[tls] %s %s: cannot load: %s",
			    *cfg->tls_key ? "key" : "certificate (no key set)", key, ssl_reason());
		return FALSE;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
			    "[tls] key %s does not match the certificate %s", key,
			    cfg->tls_certificate);
		return FALSE;
	}
	/* Clients will refuse an expired certificate: say so now, not at every login. */
	cert = SSL_CTX_get0_certificate(ctx);
	if (cert && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
		*out_warning =
			g_strdup_printf("[tls] certificate %s has expired", cfg->tls_certificate);
	return TRUE;
}

/* The key log line of an application traffic secret: "<LABEL> <client random> <secret>", in
 * hex. Copied into the connection's own state, never written anywhere. */
static void
keep_secret(const SSL *ssl, const char *line)
{
	MpopTls *t = SSL_get_app_data(ssl);
	gboolean client = g_str_has_prefix(line, "CLIENT_TRAFFIC_SECRET_0 ");
	const char *hex;
	guint8 *dst;
	size_t n = 0;

	if (!t || (!client && !g_str_has_prefix(line, "SERVER_TRAFFIC_SECRET_0 ")))
		return;
	hex = strrchr(line, ' ') + 1;
	dst = client ? t->read_secret : t->write_secret;
	while (n < MPOP_TLS_MAX_SECRET && g_ascii_isxdigit(hex[2 * n]) &&
	       g_ascii_isxdigit(hex[2 * n + 1])) {
		dst[n] = (guint8)(g_ascii_xdigit_value(hex[2 * n]) << 4 |
				  g_ascii_xdigit_value(hex[2 * n + 1]));
		n++;
	}
	if (hex[2 * n] != '\0' || (n != 32 && n != 48) || (t->secret_len && t->secret_len != n)) {
		t->post_handshake = TRUE; /* not what was expected: keep the relay */
		return;
	}
	t->secret_len = (guint8)n;
	if (client)
		t->have_read = TRUE;
	else
		t->have_write = TRUE;
}

/* Count the records after the handshake (their sequence numbers), and note anything that is
 * not application data (a KeyUpdate, an alert): the state then stays with OpenSSL. */
static void
count_record(int write_p, int version, int content_type, const void *buf, size_t len, SSL *ssl,
	     void *arg)
{
	MpopTls *t = SSL_get_app_data(ssl);

	if (!t || !t->established)
		return;
	if (content_type == SSL3_RT_HEADER) {
		if (write_p)
			t->write_records++;
		else
			t->read_records++;
	} else if (content_type == SSL3_RT_INNER_CONTENT_TYPE) {
		if (len != 1 || *(const guint8 *)buf != SSL3_RT_APPLICATION_DATA)
			t->post_handshake = TRUE;
	}
}

static MpopTlsContext *
context_new(const MpopConfig *cfg, char **out_warning, GError **error)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "cannot create a TLS context: %s",
			    ssl_reason());
		return NULL;
	}
	ERR_clear_error();
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	SSL_CTX_set_security_level(ctx, 2);
	SSL_CTX_set_min_proto_version(ctx, cfg->tls_min_protocol == MPOP_TLS_1_3 ? TLS1_3_VERSION
										 : TLS1_2_VERSION);
	/* Every connection is a new process: a session cache or tickets would only be state
	 * to protect. Renegotiation is a way to make the server work for free. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
					 SSL_OP_CIPHER_SERVER_PREFERENCE |
					 SSL_OP_PRIORITIZE_CHACHA | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* No TLS 1.3 tickets either: no cache would ever take one back. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_keylog_callback(ctx, keep_secret);
	SSL_CTX_set_msg_callback(ctx, count_record);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (*cfg->tls_ciphers && SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: [tls] ciphers: %s",
			    cfg->path, ssl_reason());
		goto fail;
	}
	if (SSL_CTX_set_ciphersuites(ctx, *cfg->tls_ciphersuites ? cfg->tls_ciphersuites
								 : DEFAULT_CIPHERSUITES) != 1) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: [tls] ciphersuites: %s",
			    cfg->path, ssl_reason());
		goto fail;
	}
	if (!load_files(ctx, cfg, out_warning, error))
		goto fail;
	ERR_clear_error();
	return (MpopTlsContext *)ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* What to do after an SSL call returned r <= 0: wait (0), end of stream (1), or -errno. */
static int
after_call(MpopStream *st, int r, guint64 deadline)
{
	MpopTls *t = st->impl;
	int err = SSL_get_error(t->ssl, r);

	switch (err) {
	case SSL_ERROR_WANT_READ:
		return mpop_wait_fd(st->fd_in, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return mpop_wait_fd(st->fd_out, POLLOUT, deadline);
	case SSL_ERROR_ZERO_RETURN:
		return 1;
	case SSL_ERROR_SYSCALL:
		t->fatal = TRUE;
		/* EOF without close_notify: for POP3 simply the end of the connection. */
		return errno && ERR_peek_error() == 0 && r < 0 ? -errno : 1;
	default:
		t->fatal = TRUE;
		return -EPROTO;
	}
}

/* Write the records collected in the write buffer: 1 done, 0 wait for POLLOUT, -errno. */
static int
flush_records(MpopTls *t)
{
	BIO *wbio = SSL_get_wbio(t->ssl);

	if (BIO_wpending(wbio) == 0)
		return 1;
	errno = 0;
	if (BIO_flush(wbio) > 0)
		return 1;
	if (BIO_should_retry(wbio))
		return 0;
	t->fatal = TRUE;
	return errno ? -errno : -EPIPE;
}

/* Flush until done or the deadline: 0 or -errno. */
static int
flush_wait(MpopStream *st, guint64 deadline)
{
	for (;;) {
		int r = flush_records(st->impl);
		if (r != 0)
			return r > 0 ? 0 : r;
		r = mpop_wait_fd(st->fd_out, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
}

static ssize_t
tls_read(MpopStream *st, void *buf, size_t len, int timeout_ms)
{
	MpopTls *t = st->impl;
	guint64 deadline = mpop_deadline_in(timeout_ms);

	for (;;) {
		int n, r;

		ERR_clear_error();
		errno = 0;
		n = SSL_read(t->ssl, buf, (int)MIN(len, G_MAXINT));
		if (n > 0)
			return n;
		r = after_call(st, n, deadline);
		if (r != 0)
			return r > 0 ? 0 : r;
	}
}

static int
tls_write(MpopStream *st, const void *buf, size_t len)
{
	MpopTls *t = st->impl;
	const char *p = buf;

	while (len > 0) {
		guint64 deadline = mpop_deadline_in(st->write_timeout_ms);
		int n, r;

		ERR_clear_error();
		errno = 0;
		n = SSL_write(t->ssl, p, (int)MIN(len, G_MAXINT));
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		r = after_call(st, n, deadline);
		if (r != 0)
			return r > 0 ? -EPIPE : r;
	}
	return flush_wait(st, mpop_deadline_in(st->write_timeout_ms));
}

static void
tls_free(MpopStream *st)
{
	MpopTls *t = st->impl;

	if (!t)
		return;
	/* close_notify, best effort: the descriptor is non-blocking, this never waits. */
	if (!t->fatal && SSL_is_init_finished(t->ssl)) {
		(void)SSL_shutdown(t->ssl);
		(void)flush_records(t);
	}
	SSL_free(t->ssl);
	explicit_bzero(t, sizeof(*t));
	g_free(t);
	st->impl = NULL;
}

static const MpopStreamOps tls_ops = {
	.read = tls_read,
	.write = tls_write,
	.free = tls_free,
};

/* Reads straight from the socket (OpenSSL reads whole records itself); writes through a
 * buffer that flush_records() empties. OpenSSL flushes it after each handshake flight. */
static gboolean
set_bios(SSL *ssl, int fd_in, int fd_out)
{
	BIO *rbio = BIO_new_socket(fd_in, BIO_NOCLOSE);
	BIO *sock = BIO_new_socket(fd_out, BIO_NOCLOSE);
	BIO *wbio = BIO_new(BIO_f_buffer());

	if (!rbio || !sock || !wbio || BIO_set_write_buffer_size(wbio, WRITE_BUFFER) <= 0) {
		BIO_free(rbio);
		BIO_free(sock);
		BIO_free(wbio);
		return FALSE;
	}
	BIO_push(wbio, sock);
	SSL_set_bio(ssl, rbio, wbio); /* the SSL object owns them from here */
	/* One record at a time until the login: OpenSSL then holds no bytes of the client's
	 * that are not decrypted yet, and the session can take the connection over. */
	SSL_set_read_ahead(ssl, 0);
	return TRUE;
}

static void
context_free(MpopTlsContext *ctx)
{
	SSL_CTX_free((SSL_CTX *)ctx);
}

static gboolean
start(MpopStream *st, MpopTlsContext *ctx, int timeout_ms, GError **error)
{
	guint64 deadline = mpop_deadline_in(timeout_ms);
	const char *sni;
	MpopTls *t;

	g_return_val_if_fail(st->out->len == 0 && st->impl == NULL, FALSE);
	t = g_new0(MpopTls, 1);
	t->ssl = SSL_new((SSL_CTX *)ctx);
	if (!t->ssl || !set_bios(t->ssl, st->fd_in, st->fd_out)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "cannot set up TLS: %s",
			    ssl_reason());
		SSL_free(t->ssl);
		g_free(t);
		return FALSE;
	}
	SSL_set_app_data(t->ssl, t);
	mpop_set_nonblocking(st->fd_in);
	mpop_set_nonblocking(st->fd_out);
	/* From here on the stream is TLS, also on failure: nothing more goes out in clear. */
	st->ops = &tls_ops;
	st->impl = t;
	for (;;) {
		int r;

		ERR_clear_error();
		errno = 0;
		r = SSL_accept(t->ssl);
		if (r == 1) {
			t->established = TRUE;
			break;
		}
		r = after_call(st, r, deadline);
		if (r == 0)
			continue;
		t->fatal = TRUE;
		st->broken = TRUE;
		if (r == -ETIMEDOUT)
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
				    "TLS handshake timed out");
		else if (r == -EPROTO)
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
				    "TLS handshake failed: %s", ssl_reason());
		else
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
				    "TLS handshake failed: %s",
				    r > 0 ? "connection closed" : g_strerror(-r));
		ERR_clear_error();
		return FALSE;
	}
	st->tls_info =
		g_strdup_printf("%s %s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl));
	sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
	if (sni) {
		/* Untrusted: kept only when it is a plain DNS name. */
		g_autofree char *lower = g_ascii_strdown(sni, -1);
		if (mpop_dns_name_valid(lower, FALSE))
			st->tls_sni = g_steal_pointer(&lower);
	}
	return TRUE;
}

/* One direction of the relay: a buffer and how much of it is still to be sent. */
typedef struct {
	char *buf;
	size_t len, off;
	gboolean eof;
	gboolean off_shut; /* the receiving side was told about eof */
	gboolean blocked;  /* the source had nothing: wait for poll before reading again */
} Pipe;

/* Move what can move without waiting. Returns TRUE when something moved; sets the events
 * each descriptor must wait for in *ev_client and *ev_plain; *done when the relay ends. */
static gboolean
relay_step(MpopStream *st, int plain_fd, Pipe *up, Pipe *down, short *ev_client, short *ev_plain,
	   gboolean *done)
{
	MpopTls *t = st->impl;
	gboolean moved = FALSE;
	ssize_t n;
	int r;

	*ev_client = *ev_plain = 0;
	/* client -> session */
	if (up->len == 0 && !up->eof && !up->blocked) {
		ERR_clear_error();
		errno = 0;
		r = SSL_read(t->ssl, up->buf, RELAY_UP);
		if (r > 0) {
			up->len = (size_t)r;
			up->off = 0;
			moved = TRUE;
			/* Nothing more decrypted or buffered: poll before reading again (the
			 * poll is due anyway; a read now would only say EAGAIN). */
			up->blocked = !SSL_has_pending(t->ssl);
		} else {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				up->blocked = TRUE;
			else if (e == SSL_ERROR_WANT_WRITE)
				*ev_client |= POLLOUT;
			else {
				if (e != SSL_ERROR_ZERO_RETURN)
					t->fatal = TRUE;
				up->eof = TRUE;
				moved = TRUE;
			}
		}
	}
	if (up->len > 0) {
		n = send(plain_fd, up->buf + up->off, up->len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			up->off += (size_t)n;
			up->len -= (size_t)n;
			moved = TRUE;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			*ev_plain |= POLLOUT;
		} else {
			*done = TRUE; /* the session is gone */
		}
	}
	if (up->blocked)
		*ev_client |= POLLIN;
	if (up->eof && up->len == 0) {
		/* The client has finished sending (QUIT, then close_notify, may come before it
		 * reads the answer): the session sees the end of its input; answers still go
		 * out unless the connection itself failed. */
		if (t->fatal) {
			*done = TRUE;
			return moved;
		}
		if (!up->off_shut) {
			shutdown(plain_fd, SHUT_WR);
			up->off_shut = TRUE;
		}
	}
	/* session -> client */
	if (down->len == 0 && !down->eof && !down->blocked) {
		n = recv(plain_fd, down->buf, RELAY_DOWN, MSG_DONTWAIT);
		if (n > 0) {
			down->len = (size_t)n;
			down->off = 0;
			moved = TRUE;
			down->blocked = (size_t)n < RELAY_DOWN; /* drained: poll first */
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			down->blocked = TRUE;
		} else {
			down->eof = TRUE;
			moved = TRUE;
		}
	}
	if (down->len > 0) {
		ERR_clear_error();
		errno = 0;
		r = SSL_write(t->ssl, down->buf + down->off, (int)down->len);
		if (r > 0) {
			down->off += (size_t)r;
			down->len -= (size_t)r;
			moved = TRUE;
		} else {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_WRITE)
				*ev_client |= POLLOUT;
			else if (e == SSL_ERROR_WANT_READ)
				*ev_client |= POLLIN;
			else {
				t->fatal = TRUE;
				*done = TRUE;
			}
		}
	}
	if (down->blocked)
		*ev_plain |= POLLIN;
	/* Everything the session sent so far is encrypted: let the records go. */
	if (down->len == 0 && !*done) {
		r = flush_records(t);
		if (r == 0)
			*ev_client |= POLLOUT;
		else if (r < 0)
			*done = TRUE;
		else if (down->eof)
			*done = TRUE;
	}
	return moved;
}

static void
relay(MpopStream *st, int plain_fd, int timeout_ms)
{
	g_autofree char *ubuf = g_malloc(RELAY_UP);
	g_autofree char *dbuf = g_malloc(RELAY_DOWN);
	Pipe up = {.buf = ubuf}, down = {.buf = dbuf};
	gboolean done = FALSE;

	/* Read what the socket has, not a record header and then its body: half the reads. */
	SSL_set_read_ahead(((MpopTls *)st->impl)->ssl, 1);
	while (!done) {
		struct pollfd pfd[2];
		short ev_client, ev_plain;
		int r;

		if (relay_step(st, plain_fd, &up, &down, &ev_client, &ev_plain, &done) || done)
			continue;
		/* A descriptor nobody waits for is left out, so a hung-up one cannot spin. */
		pfd[0] = (struct pollfd){.fd = ev_client ? st->fd_in : -1, .events = ev_client};
		pfd[1] = (struct pollfd){.fd = ev_plain ? plain_fd : -1, .events = ev_plain};
		if (st->fd_out != st->fd_in && (ev_client & POLLOUT))
			pfd[0] = (struct pollfd){.fd = st->fd_out, .events = POLLOUT}; /* pipes */
		do
			r = poll(pfd, 2, timeout_ms);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			break; /* nothing moved for timeout_ms: the client stopped reading */
		if (pfd[0].fd == st->fd_in && pfd[0].revents)
			up.blocked = FALSE;
		if (pfd[1].revents)
			down.blocked = FALSE;
	}
	/* Whatever ended the relay, the session's side is finished with. */
	shutdown(plain_fd, SHUT_RDWR);
}

static gboolean
export_state(MpopStream *st, MpopTlsState *out)
{
	MpopTls *t = st->impl;
	guint16 suite;
	int want, n;

	if (st->ops != &tls_ops || !t || t->fatal || !t->established || t->post_handshake ||
	    !t->have_read || !t->have_write || SSL_version(t->ssl) != TLS1_3_VERSION)
		return FALSE;
	suite = SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(t->ssl));
	want = mpop_tls_suite_secret_len(suite);
	if (!want)
		return FALSE; /* the CCM suites: the relay */
	/* Bytes read from the socket and not yet decrypted cannot be handed over (there are
	 * none without read-ahead); decrypted ones can. */
	if (t->secret_len != want || (SSL_pending(t->ssl) == 0 && SSL_has_pending(t->ssl)))
		return FALSE;
	*out = (MpopTlsState){.suite = suite, .secret_len = t->secret_len};
	n = SSL_pending(t->ssl);
	if (n > 0) {
		out->pending = g_malloc(MPOP_TLS_STATE_MAX_PENDING);
		while (SSL_pending(t->ssl) > 0 && out->pending_len < MPOP_TLS_STATE_MAX_PENDING) {
			n = SSL_read(t->ssl, out->pending + out->pending_len,
				     MPOP_TLS_STATE_MAX_PENDING - (int)out->pending_len);
			if (n <= 0)
				break;
			out->pending_len += (gsize)n;
		}
	}
	memcpy(out->read_secret, t->read_secret, MPOP_TLS_MAX_SECRET);
	memcpy(out->write_secret, t->write_secret, MPOP_TLS_MAX_SECRET);
	out->read_seq = t->read_records;
	out->write_seq = t->write_records;
	/* Not one more record from this process: the session's next one has write_seq. */
	t->fatal = TRUE;
	st->broken = TRUE;
	return TRUE;
}

/* The module's one exported symbol (tls-module.map hides everything else). */
const MpopTlsModule mpop_tls_module = {
	.abi = MPOP_TLS_MODULE_ABI,
	.config_size = sizeof(MpopConfig),
	.stream_size = sizeof(MpopStream),
	.version = MPOPD_VERSION,
	.state_size = sizeof(MpopTlsState),
	.set_host = mpop_tls_record_set_host,
	.context_new = context_new,
	.context_free = context_free,
	.start = start,
	.relay = relay,
	.export = export_state,
	.resume = mpop_tls_record_resume,
};
