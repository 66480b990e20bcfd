/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The session's TLS 1.3 record layer against records sealed independently (tls-seal.h), and
 * the state record the pre-login process hands over, parsed as untrusted input. */
#include "stream.h"
#include "tls-seal.h"
#include "tls-state.h"
#include "tls-record.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

static const guint16 suites[] = {MPOP_TLS_AES_128_GCM_SHA256, MPOP_TLS_AES_256_GCM_SHA384,
				 MPOP_TLS_CHACHA20_POLY1305_SHA256};

typedef struct {
	int fds[2]; /* [0] the session's end, [1] the client's */
	MpopStream *st;
	guint16 suite;
	SealKey client, server; /* the client's write key, the server's write key */
} Conn;

static void
conn_open(Conn *c, guint16 suite, guint64 read_seq, guint64 write_seq, const char *pending)
{
	MpopTlsState s = {.suite = suite, .read_seq = read_seq, .write_seq = write_seq};
	g_autoptr(GError) error = NULL;

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fds), ==, 0);
	c->suite = suite;
	s.secret_len = suite == MPOP_TLS_AES_256_GCM_SHA384 ? 48 : 32;
	for (int i = 0; i < MPOP_TLS_MAX_SECRET; i++) {
		s.read_secret[i] = (guint8)g_random_int();
		s.write_secret[i] = (guint8)g_random_int();
	}
	if (pending) {
		s.pending = (guint8 *)g_strdup(pending);
		s.pending_len = strlen(pending);
	}
	seal_key_set(&c->client, suite, s.read_secret);
	seal_key_set(&c->server, suite, s.write_secret);
	c->client.seq = read_seq;
	c->server.seq = write_seq;
	c->st = mpop_stream_new(c->fds[0], c->fds[0], 5);
	g_assert_true(mpop_tls_record_resume(c->st, &s, &error));
	g_assert_no_error(error);
	mpop_tls_state_clear(&s);
}

static void
conn_close(Conn *c)
{
	mpop_stream_free(c->st);
	close(c->fds[0]);
	close(c->fds[1]);
}

static void
client_send(Conn *c, GByteArray *b)
{
	g_assert_cmpint(write(c->fds[1], b->data, b->len), ==, (ssize_t)b->len);
	g_byte_array_set_size(b, 0);
}

/* Everything the session has sent so far (the client's end is drained without waiting). */
static GByteArray *
client_received(Conn *c)
{
	GByteArray *b = g_byte_array_new();
	guint8 buf[65536];
	ssize_t n;

	while ((n = recv(c->fds[1], buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		g_byte_array_append(b, buf, (guint)n);
	return b;
}

/* Read from the session's stream until it ends or fails: the bytes, and the last result. */
static GString *
read_all(Conn *c, ssize_t *last)
{
	GString *s = g_string_new(NULL);
	char buf[7]; /* small: the stream hands out a record's plaintext in pieces */

	while ((*last = mpop_stream_read(c->st, buf, sizeof(buf), 200)) > 0)
		g_string_append_len(s, buf, *last);
	return s;
}

static void
test_state_record(void)
{
	MpopTlsState s = {.suite = MPOP_TLS_AES_256_GCM_SHA384,
			  .secret_len = 48,
			  .read_seq = 3,
			  .write_seq = G_MAXUINT64 - 1,
			  .pending = (guint8 *)"STAT\r\n\0x",
			  .pending_len = 8};
	MpopTlsState d = {0};
	g_autoptr(GBytes) b = NULL, r = mpop_tls_state_encode(NULL);
	const guint8 *p;
	gsize len;

	memset(s.read_secret, 0xa5, sizeof(s.read_secret));
	memset(s.write_secret, 0x5a, sizeof(s.write_secret));
	b = mpop_tls_state_encode(&s);
	p = g_bytes_get_data(b, &len);
	g_assert_cmpint(mpop_tls_state_decode(p, len, &d), ==, 1);
	g_assert_cmpuint(d.suite, ==, s.suite);
	g_assert_cmpuint(d.secret_len, ==, 48);
	g_assert_cmpmem(d.read_secret, 48, s.read_secret, 48);
	g_assert_cmpmem(d.write_secret, 48, s.write_secret, 48);
	g_assert_cmpuint(d.read_seq, ==, 3);
	g_assert_cmpuint(d.write_seq, ==, G_MAXUINT64 - 1);
	g_assert_cmpmem(d.pending, d.pending_len, s.pending, 8);
	mpop_tls_state_clear(&d);
	g_assert_null(d.pending);
	/* every truncation and one byte more are refused */
	for (gsize i = 0; i < len; i++)
		g_assert_cmpint(mpop_tls_state_decode(p, i, &d), ==, -EINVAL);
	{
		g_autofree guint8 *more = g_malloc0(len + 1);
		memcpy(more, p, len);
		g_assert_cmpint(mpop_tls_state_decode(more, len + 1, &d), ==, -EINVAL);
	}
	/* the relay record */
	p = g_bytes_get_data(r, &len);
	g_assert_cmpint(mpop_tls_state_decode(p, len, &d), ==, 0);
	g_assert_cmpint(mpop_tls_state_decode((const guint8 *)"MPOPTR!", 7, &d), ==, -EINVAL);
	g_assert_cmpint(mpop_tls_state_decode((const guint8 *)"MPOPXR", 6, &d), ==, -EINVAL);
	/* a suite the session cannot run (CCM), a secret length not the suite's, too much
	 * pending */
	for (int v = 0; v < 4; v++) {
		MpopTlsState bad = s;
		g_autoptr(GBytes) bb = NULL;
		g_autofree guint8 *big = NULL;

		if (v == 0)
			bad.suite = 0x1304;
		else if (v == 1)
			bad.secret_len = 32;
		else if (v == 2)
			bad.suite = MPOP_TLS_AES_128_GCM_SHA256;
		else {
			big = g_malloc0(MPOP_TLS_STATE_MAX_PENDING + 1);
			bad.pending = big;
			bad.pending_len = MPOP_TLS_STATE_MAX_PENDING + 1;
		}
		bb = mpop_tls_state_encode(&bad);
		g_assert_cmpint(
			mpop_tls_state_decode(g_bytes_get_data(bb, NULL), g_bytes_get_size(bb), &d),
			==, -EINVAL);
	}
}

/* Application data in records of every shape, a KeyUpdate from the client, close_notify. */
static void
test_read(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(suites); i++) {
		g_autoptr(GByteArray) b = g_byte_array_new();
		g_autoptr(GString) got = NULL;
		g_autofree char *full = g_malloc(MPOP_TLS_MAX_PLAINTEXT);
		static const guint8 ku[] = {24, 0, 0, 1, 0};
		ssize_t last;
		Conn c;

		memset(full, 'f', MPOP_TLS_MAX_PLAINTEXT);
		conn_open(&c, suites[i], 5, 7, "PENDING ");
		seal_record(b, &c.client, 23, "hello ", 6, 0);
		seal_record(b, &c.client, 23, "", 0, 0);	 /* empty application data */
		seal_record(b, &c.client, 23, "world ", 6, 200); /* padded */
		seal_record(b, &c.client, 22, ku, sizeof(ku), 0);
		seal_key_update(&c.client, c.suite);
		seal_record(b, &c.client, 23, "new key ", 8, 0);
		seal_record(b, &c.client, 23, full, MPOP_TLS_MAX_PLAINTEXT, 0); /* the largest */
		seal_record(b, &c.client, 21, "\x01\x5a", 2, 0);		/* user_canceled */
		seal_record(b, &c.client, 21, "\x01\x00", 2, 0);		/* close_notify */
		client_send(&c, b);
		got = read_all(&c, &last);
		g_assert_cmpint(last, ==, 0);
		g_assert_cmpuint(got->len, ==, 8 + 6 + 6 + 8 + MPOP_TLS_MAX_PLAINTEXT);
		g_assert_true(g_str_has_prefix(got->str, "PENDING hello world new key fff"));
		/* nothing was sent back: a KeyUpdate that asks for none gets none */
		{
			g_autoptr(GByteArray) back = client_received(&c);
			g_assert_cmpuint(back->len, ==, 0);
		}
		conn_close(&c);
	}
}

/* Replies in records of at most 2^14 bytes from the handed-over sequence number; a KeyUpdate
 * that asks for one is answered before the next data, then the key changes; close_notify. */
static void
test_write(void)
{
	for (gsize i = 0; i < G_N_ELEMENTS(suites); i++) {
		g_autoptr(GByteArray) b = g_byte_array_new();
		g_autoptr(GByteArray) plain = g_byte_array_new();
		g_autoptr(GByteArray) back = NULL;
		g_autofree char *big = g_malloc(40000);
		static const guint8 ku[] = {24, 0, 0, 1, 1};
		const guint8 *p;
		gsize left;
		char buf[16];
		Conn c;

		for (int j = 0; j < 40000; j++)
			big[j] = (char)('a' + j % 26);
		conn_open(&c, suites[i], 0, 1000, NULL);
		g_string_append_len(c.st->out, big, 40000);
		g_assert_true(mpop_stream_flush(c.st));
		seal_record(b, &c.client, 22, ku, sizeof(ku), 0);
		seal_key_update(&c.client, c.suite);
		seal_record(b, &c.client, 23, "x", 1, 0);
		client_send(&c, b);
		g_assert_cmpint(mpop_stream_read(c.st, buf, sizeof(buf), 1000), ==, 1);
		g_string_append(c.st->out, "reply");
		g_assert_true(mpop_stream_flush(c.st));
		mpop_stream_free(c.st); /* close_notify */
		c.st = NULL;
		back = client_received(&c);
		p = back->data;
		left = back->len;
		for (int r = 0; r < 3; r++) {
			gsize before = plain->len;
			g_assert_cmpint(seal_open(&p, &left, &c.server, plain), ==, 23);
			g_assert_cmpuint(plain->len - before, <=, MPOP_TLS_MAX_PLAINTEXT);
		}
		g_assert_cmpmem(plain->data, plain->len, big, 40000);
		g_byte_array_set_size(plain, 0);
		g_assert_cmpint(seal_open(&p, &left, &c.server, plain), ==, 22);
		g_assert_cmpmem(plain->data, plain->len, "\x18\x00\x00\x01\x00", 5);
		seal_key_update(&c.server, c.suite);
		g_byte_array_set_size(plain, 0);
		g_assert_cmpint(seal_open(&p, &left, &c.server, plain), ==, 23);
		g_assert_cmpmem(plain->data, plain->len, "reply", 5);
		g_byte_array_set_size(plain, 0);
		g_assert_cmpint(seal_open(&p, &left, &c.server, plain), ==, 21);
		g_assert_cmpmem(plain->data, plain->len, "\x01\x00", 2);
		g_assert_cmpuint(left, ==, 0);
		close(c.fds[0]);
		close(c.fds[1]);
	}
}

/* A record that arrives in pieces is waited for; nothing at all is a timeout. */
static void
test_partial(void)
{
	g_autoptr(GByteArray) b = g_byte_array_new();
	char buf[64];
	Conn c;

	conn_open(&c, MPOP_TLS_AES_128_GCM_SHA256, 0, 0, NULL);
	g_assert_cmpint(mpop_stream_read(c.st, buf, sizeof(buf), 50), ==, -ETIMEDOUT);
	seal_record(b, &c.client, 23, "split", 5, 0);
	for (guint i = 0; i < b->len; i++) {
		g_assert_cmpint(write(c.fds[1], b->data + i, 1), ==, 1);
		if (i + 1 < b->len)
			g_assert_cmpint(mpop_stream_read(c.st, buf, sizeof(buf), 10), ==,
					-ETIMEDOUT);
	}
	g_assert_cmpint(mpop_stream_read(c.st, buf, sizeof(buf), 10), ==, 5);
	g_assert_cmpmem(buf, 5, "split", 5);
	/* the client hangs up without close_notify: the end of the stream all the same */
	shutdown(c.fds[1], SHUT_WR);
	g_assert_cmpint(mpop_stream_read(c.st, buf, sizeof(buf), 10), ==, 0);
	conn_close(&c);
}

/* What ends the connection, and the alert the session sends for it (0: none). */
static void
test_errors(void)
{
	enum {
		TAMPER,
		UNPROTECTED,
		TOO_LONG_HEADER,
		NO_TYPE,
		OVERFLOW,
		SHORT,
		OTHER_HANDSHAKE,
		BAD_KEY_UPDATE,
		CLIENT_ALERT,
		BAD_ALERT,
		ZERO_SEQ,
		N_CASES
	};
	static const guint8 want_alert[N_CASES] = {20, 10, 22, 10, 22, 50, 10, 10, 0, 50, 20};

	for (int k = 0; k < N_CASES; k++) {
		g_autoptr(GByteArray) b = g_byte_array_new();
		g_autoptr(GByteArray) back = NULL, plain = g_byte_array_new();
		g_autoptr(GString) got = NULL;
		g_autofree char *over = g_malloc0(MPOP_TLS_MAX_PLAINTEXT + 1);
		const guint8 *p;
		gsize left;
		ssize_t last;
		Conn c;

		conn_open(&c, MPOP_TLS_AES_128_GCM_SHA256, 9, 0, NULL);
		seal_record(b, &c.client, 23, "ok", 2, 0);
		switch (k) {
		case TAMPER:
			seal_record(b, &c.client, 23, "no", 2, 0);
			b->data[b->len - 3] ^= 1;
			break;
		case UNPROTECTED:
			g_byte_array_append(b, (const guint8 *)"\x16\x03\x03\x00\x01\x01", 6);
			break;
		case TOO_LONG_HEADER:
			g_byte_array_append(b, (const guint8 *)"\x17\x03\x03\x41\x01", 5);
			break;
		case NO_TYPE:
			seal_record(b, &c.client, 0, "", 0, 10); /* only zeros inside */
			break;
		case OVERFLOW:
			seal_record(b, &c.client, 23, over, MPOP_TLS_MAX_PLAINTEXT + 1, 0);
			break;
		case SHORT:
			g_byte_array_append(b, (const guint8 *)"\x17\x03\x03\x00\x10", 5);
			g_byte_array_append(b, (const guint8 *)over, 16);
			break;
		case OTHER_HANDSHAKE:
			seal_record(b, &c.client, 22, "\x04\x00\x00\x01\x00", 5, 0);
			break;
		case BAD_KEY_UPDATE:
			seal_record(b, &c.client, 22, "\x18\x00\x00\x01\x02", 5, 0);
			break;
		case CLIENT_ALERT:
			seal_record(b, &c.client, 21, "\x02\x28", 2, 0);
			break;
		case BAD_ALERT:
			seal_record(b, &c.client, 21, "\x02\x28\x00", 3, 0);
			break;
		case ZERO_SEQ:
			/* a record sealed with the right key and a wrong sequence number */
			c.client.seq = 0;
			seal_record(b, &c.client, 23, "no", 2, 0);
			break;
		}
		client_send(&c, b);
		got = read_all(&c, &last);
		g_assert_cmpstr(got->str, ==, "ok");
		g_assert_cmpint(last, ==, -EPROTO);
		/* the stream is finished: reads and writes fail, no close_notify follows */
		g_assert_cmpint(mpop_stream_read(c.st, over, 8, 10), ==, -EPROTO);
		g_string_append(c.st->out, "late");
		g_assert_false(mpop_stream_flush(c.st));
		mpop_stream_free(c.st);
		c.st = NULL;
		back = client_received(&c);
		p = back->data;
		left = back->len;
		if (want_alert[k]) {
			g_assert_cmpint(seal_open(&p, &left, &c.server, plain), ==, 21);
			g_assert_cmpuint(plain->len, ==, 2);
			g_assert_cmpuint(plain->data[0], ==, 2);
			g_assert_cmpuint(plain->data[1], ==, want_alert[k]);
		}
		g_assert_cmpuint(left, ==, 0);
		close(c.fds[0]);
		close(c.fds[1]);
	}
}

/* A session that hands the connection on (the root process of a PAM session after its
 * fork) sends nothing when its stream goes. */
static void
test_broken_sends_nothing(void)
{
	g_autoptr(GByteArray) back = NULL;
	Conn c;

	conn_open(&c, MPOP_TLS_CHACHA20_POLY1305_SHA256, 0, 0, NULL);
	c.st->broken = TRUE;
	mpop_stream_free(c.st);
	c.st = NULL;
	back = client_received(&c);
	g_assert_cmpuint(back->len, ==, 0);
	close(c.fds[0]);
	close(c.fds[1]);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/tls-record/state-record", test_state_record);
	g_test_add_func("/tls-record/read", test_read);
	g_test_add_func("/tls-record/write", test_write);
	g_test_add_func("/tls-record/partial", test_partial);
	g_test_add_func("/tls-record/errors", test_errors);
	g_test_add_func("/tls-record/broken-sends-nothing", test_broken_sends_nothing);
	return g_test_run();
}
