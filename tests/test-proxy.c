/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the PROXY protocol parser and header read: v1, v2, TLVs, limits. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIG "\r\n\r\n\0\r\nQUIT\n"
#define ANY (MPOP_PROXY_V1 | MPOP_PROXY_V2)

typedef struct {
	const char *name;
	const char *in;	       /* may contain NUL: in_len counts */
	size_t in_len;	       /* 0: strlen(in) */
	guint versions;	       /* 0: ANY */
	int expect;	       /* > 0: the header's length; else the error */
	const char *src, *dst; /* "addr:port", or "local" for no addresses */
} Case;

static const Case cases[] = {
	/* v1 */
	{"v1-tcp4", "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\n", 0, 0, 45, "192.0.2.7:56324",
	 "198.51.100.1:110"},
	{"v1-tcp4-then-pop3", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\r\nUSER a\r\n", 0, 0, 41,
	 "192.0.2.7:1", "198.51.100.1:110"},
	{"v1-tcp6", "PROXY TCP6 2001:db8::7 2001:db8::1 65535 995\r\n", 0, 0, 46,
	 "[2001:db8::7]:65535", "[2001:db8::1]:995"},
	{"v1-tcp6-longest",
	 "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	 "65535 65535\r\n",
	 0, 0, 104, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	 "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"},
	{"v1-unknown-short", "PROXY UNKNOWN\r\n", 0, 0, 15, "local", "local"},
	{"v1-unknown-long",
	 "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
	 "ffff 65535 65535\r\n",
	 0, 0, 107, "local", "local"},
	{"v1-unknown-junk", "PROXY UNKNOWN  x  y\r\n", 0, 0, 21, "local", "local"},
	{"v1-unknownx", "PROXY UNKNOWNX\r\n", 0, 0, -EINVAL},
	{"v1-too-long",
	 "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
	 "ffff 65535 655350\r\n",
	 0, 0, -EMSGSIZE},
	{"v1-lone-lf", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\n", 0, 0, -EINVAL},
	{"v1-lone-cr", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\rX\r\n", 0, 0, -EINVAL},
	{"v1-nul", "PROXY TCP4 192.0.2.7\0 198.51.100.1 1 110\r\n", 42, 0, -EINVAL},
	{"v1-two-spaces", "PROXY TCP4 192.0.2.7  198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-trailing-space", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110 \r\n", 0, 0, -EINVAL},
	{"v1-missing-port", "PROXY TCP4 192.0.2.7 198.51.100.1 110\r\n", 0, 0, -EINVAL},
	{"v1-extra-field", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110 7\r\n", 0, 0, -EINVAL},
	{"v1-leading-zero-addr", "PROXY TCP4 192.0.2.07 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-leading-zero-port", "PROXY TCP4 192.0.2.7 198.51.100.1 01 110\r\n", 0, 0, -EINVAL},
	{"v1-port-range", "PROXY TCP4 192.0.2.7 198.51.100.1 65536 110\r\n", 0, 0, -EINVAL},
	{"v1-port-sign", "PROXY TCP4 192.0.2.7 198.51.100.1 +1 110\r\n", 0, 0, -EINVAL},
	{"v1-family-mismatch", "PROXY TCP4 2001:db8::7 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-tcp6-with-v4", "PROXY TCP6 192.0.2.7 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-lowercase", "PROXY tcp4 192.0.2.7 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-udp", "PROXY UDP4 192.0.2.7 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"v1-empty", "PROXY \r\n", 0, 0, -EINVAL},
	{"v1-not-accepted", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\r\n", 0, MPOP_PROXY_V2,
	 -EPROTONOSUPPORT},
	{"v1-only", "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\r\n", 0, MPOP_PROXY_V1, 41,
	 "192.0.2.7:1", "198.51.100.1:110"},
	/* not a header at all */
	{"pop3", "USER alice\r\n", 0, 0, -EINVAL},
	{"proxy-lowercase", "proxy TCP4 192.0.2.7 198.51.100.1 1 110\r\n", 0, 0, -EINVAL},
	{"tls-hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 0, 0, -EINVAL},
	{"http", "GET / HTTP/1.0\r\n\r\n", 0, 0, -EINVAL},
	/* v2: TCP over IPv4, 192.0.2.7:56324 -> 198.51.100.1:110 */
	{"v2-tcp4", SIG "\x21\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e", 28, 0,
	 28, "192.0.2.7:56324", "198.51.100.1:110"},
	{"v2-tcp4-then-pop3",
	 SIG "\x21\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6eUSER a\r\n", 36, 0,
	 28, "192.0.2.7:56324", "198.51.100.1:110"},
	{"v2-tcp6",
	 SIG "\x21\x21\x00\x24"
	     "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	     "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01"
	     "\x00\x50\x03\xe3",
	 52, 0, 52, "[2001:db8::7]:80", "[2001:db8::1]:995"},
	{"v2-tcp4-tlvs",
	 SIG "\x21\x11\x00\x1e\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e"
	     "\x05\x00\x04uid1"		 /* UNIQUE_ID */
	     "\x04\x00\x00"		 /* NOOP, empty */
	     "\x20\x00\x05\x01\0\0\0\0", /* SSL, client bit, verify 0, no sub-TLVs */
	 46, 0, 46, "192.0.2.7:56324", "198.51.100.1:110"},
	{"v2-tlv-overruns",
	 SIG "\x21\x11\x00\x12\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e"
	     "\x05\x00\x04uid",
	 34, 0, -EINVAL},
	{"v2-tlv-short-header",
	 SIG "\x21\x11\x00\x0e\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e\x05\x00", 30, 0,
	 -EINVAL},
	{"v2-local", SIG "\x20\x00\x00\x00", 16, 0, 16, "local", "local"},
	{"v2-local-with-addresses",
	 SIG "\x20\x11\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e", 28, 0, 28, "local",
	 "local"},
	{"v2-unspec", SIG "\x21\x00\x00\x00", 16, 0, 16, "local", "local"},
	{"v2-udp4-not-used", SIG "\x21\x12\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e",
	 28, 0, 28, "local", "local"},
	{"v2-unix-skipped", SIG "\x21\x31\x00\x04xxxx", 20, 0, 20, "local", "local"},
	{"v2-short-addresses", SIG "\x21\x11\x00\x08\xc0\x00\x02\x07\xc6\x33\x64\x01", 24, 0,
	 -EINVAL},
	{"v2-short-v6", SIG "\x21\x21\x00\x0c\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00\x6e", 28,
	 0, -EINVAL},
	{"v2-version-1", SIG "\x11\x11\x00\x00", 16, 0, -EINVAL},
	{"v2-version-3", SIG "\x31\x11\x00\x00", 16, 0, -EINVAL},
	{"v2-command-2", SIG "\x22\x11\x00\x00", 16, 0, -EINVAL},
	{"v2-family-4", SIG "\x21\x41\x00\x00", 16, 0, -EINVAL},
	{"v2-protocol-3", SIG "\x21\x13\x00\x00", 16, 0, -EINVAL},
	{"v2-oversized", SIG "\x21\x11\x08\x01", 16, 0, -EMSGSIZE},
	{"v2-huge", SIG "\x21\x11\xff\xff", 16, 0, -EMSGSIZE},
	{"v2-wrong-signature", "\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x00", 16, 0, -EINVAL},
	{"v2-signature-nul-moved", "\r\n\r\n\r\0\nQUIT\n\x21\x11\x00\x00", 16, 0, -EINVAL},
	{"v2-not-accepted", SIG "\x21\x11\x00\x00", 16, MPOP_PROXY_V1, -EPROTONOSUPPORT},
};

static char *
addr_text(const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		return g_strdup_printf("%s:%u", host, ntohs(in->sin_port));
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		return g_strdup_printf("[%s]:%u", host, ntohs(in6->sin6_port));
	}
	return g_strdup("?");
}

static void
check_header(const Case *c, const MpopProxyHeader *h)
{
	if (g_strcmp0(c->src, "local") == 0) {
		g_assert_true(h->local);
		return;
	}
	g_autofree char *src = addr_text(&h->src);
	g_autofree char *dst = addr_text(&h->dst);
	g_assert_false(h->local);
	g_assert_cmpstr(src, ==, c->src);
	g_assert_cmpstr(dst, ==, c->dst);
	g_assert_cmpuint(h->src_len, ==,
			 h->src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
						     : sizeof(struct sockaddr_in6));
}

/* Whole, and every prefix: a prefix of a valid header is "read more", never an answer. */
static void
test_cases(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		const Case *c = &cases[i];
		size_t len = c->in_len ? c->in_len : strlen(c->in);
		guint versions = c->versions ? c->versions : ANY;
		MpopProxyHeader h;
		int r;

		g_test_message("case %s", c->name);
		memset(&h, 0xAA, sizeof(h));
		r = mpop_proxy_parse(c->in, len, versions, &h);
		g_assert_cmpint(r, ==, c->expect);
		if (r > 0) {
			g_assert_cmpuint(h.version, ==, c->in[0] == 'P' ? 1 : 2);
			check_header(c, &h);
			for (size_t p = 0; p < (size_t)r; p++)
				g_assert_cmpint(mpop_proxy_parse(c->in, p, versions, &h), ==, 0);
		} else {
			/* An error may show before the end; it never turns into success. */
			for (size_t p = 0; p < len; p++) {
				int rp = mpop_proxy_parse(c->in, p, versions, &h);
				g_assert_true(rp == 0 || rp == c->expect);
			}
		}
	}
}

/* Every input shorter than the bounds and not a header prefix is refused, and nothing
 * longer than MPOP_PROXY_MAX is ever "read more". */
static void
test_random(void)
{
	guint8 buf[MPOP_PROXY_MAX + 64];
	MpopProxyHeader h;

	for (guint round = 0; round < 20000; round++) {
		size_t len = (size_t)g_test_rand_int_range(0, sizeof(buf));
		for (size_t i = 0; i < len; i++)
			buf[i] = (guint8)g_test_rand_int_range(0, 256);
		if (round % 3 == 0 && len >= 16) {
			memcpy(buf, SIG, 12);
			buf[12] = 0x21;
			buf[13] = round % 2 ? 0x11 : 0x21;
		} else if (round % 3 == 1 && len >= 6) {
			memcpy(buf, "PROXY ", 6);
		}
		int r = mpop_proxy_parse(buf, len, ANY, &h);
		g_assert_true(r <= (int)len);
		if (len >= MPOP_PROXY_MAX)
			g_assert_cmpint(r, !=, 0);
		if (len >= MPOP_PROXY_V1_MAX && buf[0] == 'P')
			g_assert_cmpint(r, !=, 0);
	}
}

/* The read takes exactly the header (the POP3 bytes after it stay), however it trickles. */
static void
read_case(const char *data, size_t len, size_t header_len, guint chunk)
{
	int sv[2];
	pid_t pid;
	MpopProxyHeader h;
	char rest[64];
	ssize_t n;

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		close(sv[0]);
		for (size_t i = 0; i < len; i += chunk) {
			if (write(sv[1], data + i, MIN(chunk, len - i)) < 0)
				_exit(1);
			g_usleep(2000);
		}
		_exit(0);
	}
	close(sv[1]);
	g_assert_cmpint(mpop_proxy_read(sv[0], ANY, 5000, &h), ==, 0);
	g_assert_false(h.local);
	n = recv(sv[0], rest, sizeof(rest), MSG_WAITALL);
	g_assert_cmpint(n, ==, (ssize_t)(len - header_len));
	g_assert_cmpmem(rest, (size_t)n, data + header_len, len - header_len);
	close(sv[0]);
	waitpid(pid, NULL, 0);
}

static void
test_read_exact(void)
{
	static const char v1[] = "PROXY TCP4 192.0.2.7 198.51.100.1 1 110\r\nUSER a\r\nPASS b\r\n";
	static const char v2[] = SIG "\x21\x11\x00\x11\xc0\x00\x02\x07\xc6\x33\x64\x01\xdc\x04\x00"
				     "\x6e\x04\x00\x02xxCAPA\r\n";

	for (guint chunk = 1; chunk <= 64; chunk *= 4) {
		read_case(v1, sizeof(v1) - 1, 41, chunk);
		read_case(v2, sizeof(v2) - 1, 33, chunk);
	}
}

static int
read_from(const char *data, size_t len, gboolean close_after, guint timeout_ms)
{
	int sv[2], r;
	MpopProxyHeader h;

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
	g_assert_cmpint(write(sv[1], data, len), ==, (ssize_t)len);
	if (close_after)
		close(sv[1]);
	r = mpop_proxy_read(sv[0], ANY, timeout_ms, &h);
	close(sv[0]);
	if (!close_after)
		close(sv[1]);
	return r;
}

static void
test_read_errors(void)
{
	gint64 t0 = g_get_monotonic_time();

	/* half a header, then silence: the timeout */
	g_assert_cmpint(read_from("PROXY TCP4 192.0.2.7", 20, FALSE, 300), ==, -ETIMEDOUT);
	g_assert_cmpint(g_get_monotonic_time() - t0, >=, 290000);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 3000000);
	g_assert_cmpint(read_from("", 0, FALSE, 100), ==, -ETIMEDOUT);
	/* truncated: the peer closes */
	g_assert_cmpint(read_from(SIG "\x21\x11\x00\x0c\xc0", 17, TRUE, 2000), ==, -ENODATA);
	g_assert_cmpint(read_from("", 0, TRUE, 2000), ==, -ENODATA);
	/* garbage is refused at once, before the timeout */
	t0 = g_get_monotonic_time();
	g_assert_cmpint(read_from("USER alice\r\n", 12, FALSE, 5000), ==, -EINVAL);
	g_assert_cmpint(g_get_monotonic_time() - t0, <, 1000000);
	g_assert_cmpint(read_from(SIG "\x21\x11\xff\xff", 16, FALSE, 5000), ==, -EMSGSIZE);
	/* not a socket */
	g_assert_cmpint(mpop_proxy_read(-1, ANY, 100, &(MpopProxyHeader){0}), <, 0);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/proxy/cases", test_cases);
	g_test_add_func("/proxy/random", test_random);
	g_test_add_func("/proxy/read-exact", test_read_exact);
	g_test_add_func("/proxy/read-errors", test_read_errors);
	return g_test_run();
}
