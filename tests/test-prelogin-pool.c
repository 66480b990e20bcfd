/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The connection record a reusable pre-login process receives: encode, decode, malformed
 * records, and the descriptors passed with it over a socket pair. */
#include "prelogin-pool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static MpopConnection
sample(void)
{
	MpopConnection c = {0};
	struct sockaddr_in *in = (struct sockaddr_in *)&c.peer_addr;

	c.peer = (char *)"192.0.2.7:40000";
	c.local = (char *)"198.51.100.1:110";
	c.peer_host = (char *)"192.0.2.7";
	c.local_host = (char *)"198.51.100.1";
	c.proxy = NULL;
	c.session_id = (char *)"0123456789abcdef";
	c.implicit_tls = TRUE;
	c.trusted = TRUE;
	in->sin_family = AF_INET;
	in->sin_port = htons(40000);
	inet_pton(AF_INET, "192.0.2.7", &in->sin_addr);
	c.peer_len = sizeof(*in);
	return c;
}

static void
check_same(const MpopConnection *a, const MpopConnection *b)
{
	g_assert_cmpstr(a->peer, ==, b->peer);
	g_assert_cmpstr(a->local, ==, b->local);
	g_assert_cmpstr(a->peer_host, ==, b->peer_host);
	g_assert_cmpstr(a->local_host, ==, b->local_host);
	g_assert_cmpstr(a->proxy, ==, b->proxy);
	g_assert_cmpstr(a->session_id, ==, b->session_id);
	g_assert_cmpint(a->implicit_tls, ==, b->implicit_tls);
	g_assert_cmpint(a->loopback, ==, b->loopback);
	g_assert_cmpint(a->trusted, ==, b->trusted);
	g_assert_cmpuint(a->peer_len, ==, b->peer_len);
	g_assert_cmpmem(&a->peer_addr, a->peer_len, &b->peer_addr, b->peer_len);
	g_assert_cmpuint(a->local_len, ==, b->local_len);
}

static void
test_roundtrip(void)
{
	MpopConnection in = sample(), out = {0};
	g_autoptr(GBytes) rec = mpop_pool_encode(&in);
	gsize len;
	const guint8 *data = g_bytes_get_data(rec, &len);

	g_assert_cmpint(mpop_pool_decode(data, len, &out), ==, 0);
	check_same(&in, &out);
	mpop_pool_connection_clear(&out);
	/* every truncation and one byte more are refused, and leave nothing allocated */
	for (gsize n = 0; n < len; n++) {
		MpopConnection bad = {0};
		g_assert_cmpint(mpop_pool_decode(data, n, &bad), ==, -EINVAL);
		g_assert_null(bad.peer);
		g_assert_null(bad.session_id);
	}
	{
		g_autofree guint8 *more = g_malloc(len + 1);
		MpopConnection bad = {0};

		memcpy(more, data, len);
		more[len] = 0;
		g_assert_cmpint(mpop_pool_decode(more, len + 1, &bad), ==, -EINVAL);
	}
}

static void
test_malformed(void)
{
	MpopConnection in = sample(), out = {0};
	g_autoptr(GBytes) rec = mpop_pool_encode(&in);
	gsize len = g_bytes_get_size(rec);
	g_autofree guint8 *copy = g_memdup2(g_bytes_get_data(rec, NULL), len);

	copy[0] = 'X'; /* magic */
	g_assert_cmpint(mpop_pool_decode(copy, len, &out), ==, -EINVAL);
	copy[0] = 'M';
	copy[5] = 0x80; /* an unknown flag */
	g_assert_cmpint(mpop_pool_decode(copy, len, &out), ==, -EINVAL);
	copy[5] = 0;
	copy[6 + 3] = 0xff; /* the peer's length past the end */
	g_assert_cmpint(mpop_pool_decode(copy, len, &out), ==, -EINVAL);
	/* no peer or no session id: not a connection */
	in.session_id = NULL;
	{
		g_autoptr(GBytes) r2 = mpop_pool_encode(&in);
		g_assert_cmpint(
			mpop_pool_decode(g_bytes_get_data(r2, NULL), g_bytes_get_size(r2), &out),
			==, -EINVAL);
	}
	g_assert_null(out.peer);
}

static void
test_pass_fds(void)
{
	MpopConnection in = sample(), out = {0};
	int ctl[2], pipefd[2], chan[2], chan_in = -1, data = -1;
	char c = 0;

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl), ==, 0);
	g_assert_cmpint(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, chan), ==, 0);
	g_assert_cmpint(pipe2(pipefd, O_CLOEXEC), ==, 0);
	/* the "client" is a pipe's write end: what the receiver writes, we read */
	g_assert_cmpint(mpop_pool_send(ctl[0], &in, pipefd[1], chan[1], -1), ==, 0);
	g_assert_cmpint(mpop_pool_receive(ctl[1], &out, &chan_in, &data), ==, 1);
	check_same(&in, &out);
	g_assert_cmpint(out.fd_in, ==, out.fd_out);
	g_assert_cmpint(data, ==, -1);
	g_assert_cmpint(fcntl(out.fd_in, F_GETFD), ==, FD_CLOEXEC);
	g_assert_cmpint(write(out.fd_in, "x", 1), ==, 1);
	g_assert_cmpint(read(pipefd[0], &c, 1), ==, 1);
	g_assert_cmpint(c, ==, 'x');
	g_assert_cmpint(send(chan_in, "y", 1, 0), ==, 1);
	g_assert_cmpint(recv(chan[0], &c, 1, 0), ==, 1);
	g_assert_cmpint(c, ==, 'y');
	close(out.fd_in);
	close(chan_in);
	mpop_pool_connection_clear(&out);
	/* with a third descriptor */
	g_assert_cmpint(mpop_pool_send(ctl[0], &in, pipefd[1], chan[1], pipefd[0]), ==, 0);
	g_assert_cmpint(mpop_pool_receive(ctl[1], &out, &chan_in, &data), ==, 1);
	g_assert_cmpint(data, >=, 0);
	close(data);
	close(out.fd_in);
	close(chan_in);
	mpop_pool_connection_clear(&out);
	/* a skip, a record without descriptors (refused), the end */
	g_assert_cmpint(mpop_pool_send_skip(ctl[0]), ==, 0);
	g_assert_cmpint(mpop_pool_receive(ctl[1], &out, &chan_in, &data), ==, 2);
	{
		g_autoptr(GBytes) rec = mpop_pool_encode(&in);
		g_assert_cmpint(send(ctl[0], g_bytes_get_data(rec, NULL), g_bytes_get_size(rec), 0),
				==, (ssize_t)g_bytes_get_size(rec));
		g_assert_cmpint(mpop_pool_receive(ctl[1], &out, &chan_in, &data), ==, -EINVAL);
	}
	close(ctl[0]);
	g_assert_cmpint(mpop_pool_receive(ctl[1], &out, &chan_in, &data), ==, 0);
	close(ctl[1]);
	close(chan[0]);
	close(chan[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/prelogin-pool/roundtrip", test_roundtrip);
	g_test_add_func("/prelogin-pool/malformed", test_malformed);
	g_test_add_func("/prelogin-pool/pass-fds", test_pass_fds);
	return g_test_run();
}
