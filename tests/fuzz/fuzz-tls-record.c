/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the session's TLS 1.3 record reader (src/tls-record.c) with what a client can send:
 * records sealed with the right keys (any type, content and padding, KeyUpdates) mixed with
 * raw bytes. What comes out must be a prefix of the application data sealed in. */
#include "stream.h"
#include "../tls-seal.h"
#include "tls-state.h"
#include "tls-record.h"

#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT 32768
#define MAX_RECORDS 256

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const guint16 suites[] = {MPOP_TLS_AES_128_GCM_SHA256, MPOP_TLS_AES_256_GCM_SHA384,
					 MPOP_TLS_CHACHA20_POLY1305_SHA256};
	MpopTlsState s = {0};
	g_autoptr(GByteArray) wire = g_byte_array_new();
	g_autoptr(GString) want = g_string_new(NULL), got = g_string_new(NULL);
	SealKey client;
	MpopStream *st;
	gsize i = 1;
	int fds[2], records = 0;
	char buf[4096];
	ssize_t n;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	s.suite = suites[data[0] % 3];
	s.secret_len = s.suite == MPOP_TLS_AES_256_GCM_SHA384 ? 48 : 32;
	memset(s.read_secret, 0x11, sizeof(s.read_secret));
	memset(s.write_secret, 0x22, sizeof(s.write_secret));
	s.read_seq = data[0];
	seal_key_set(&client, s.suite, s.read_secret);
	client.seq = s.read_seq;
	while (i + 3 <= size && records < MAX_RECORDS) {
		guint8 op = data[i];
		gsize len = MIN((gsize)(data[i + 1] << 8 | data[i + 2]), size - i - 3);
		const guint8 *d = data + i + 3;

		i += 3 + len;
		records++;
		switch (op & 3) {
		case 0: /* application data, padded */
			len = MIN(len, MPOP_TLS_MAX_PLAINTEXT);
			seal_record(wire, &client, 23, d, len, op >> 2);
			g_string_append_len(want, (const char *)d, (gssize)len);
			break;
		case 1: /* any content type and content */
			if (len == 0)
				break;
			len = MIN(len, MPOP_TLS_MAX_PLAINTEXT + 1);
			seal_record(wire, &client, d[0], d + 1, len - 1, op >> 2);
			if (d[0] == 23) {
				g_string_append_len(want, (const char *)d + 1, (gssize)len - 1);
			} else if (d[0] == 0) {
				/* no type byte: the last non-zero byte of the content is taken for
				 * it (RFC 8446 5.4) */
				gsize k = len - 1;
				while (k > 0 && d[k] == 0)
					k--;
				if (k > 0 && d[k] == 23)
					g_string_append_len(want, (const char *)d + 1,
							    (gssize)k - 1);
			}
			break;
		case 2: /* raw bytes */
			g_byte_array_append(wire, d, (guint)len);
			break;
		default: { /* a KeyUpdate, the key changes after it */
			guint8 ku[5] = {24, 0, 0, 1, (guint8)((op >> 2) & 1)};
			seal_record(wire, &client, 22, ku, sizeof(ku), 0);
			seal_key_update(&client, s.suite);
			break;
		}
		}
	}
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), ==, 0);
	{
		int sz = 1 << 20;
		(void)setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	}
	st = mpop_stream_new(fds[0], fds[0], 1);
	g_assert_true(mpop_tls_record_resume(st, &s, NULL));
	for (gsize off = 0; off < wire->len;) {
		n = write(fds[1], wire->data + off, wire->len - off);
		if (n <= 0)
			break;
		off += (gsize)n;
		/* read while writing: the stream sees records in pieces */
		while ((n = mpop_stream_read(st, buf, sizeof(buf), 0)) > 0)
			g_string_append_len(got, buf, n);
		if (n != -ETIMEDOUT)
			break;
	}
	shutdown(fds[1], SHUT_WR);
	while ((n = mpop_stream_read(st, buf, sizeof(buf), 0)) > 0)
		g_string_append_len(got, buf, n);
	g_assert_cmpint(n, <=, 0);
	g_assert_cmpuint(got->len, <=, want->len);
	g_assert_true(memcmp(got->str, want->str, got->len) == 0);
	/* a reply, with the KeyUpdate the client may have asked for */
	g_string_append(st->out, "+OK\r\n");
	(void)mpop_stream_flush(st);
	mpop_stream_free(st);
	close(fds[0]);
	close(fds[1]);
	return 0;
}
