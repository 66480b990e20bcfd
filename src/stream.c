/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The connection as a byte stream (plain socket or TLS) and the session's one output buffer. */
#include "stream.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

static ssize_t
plain_read(MpopStream *st, void *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd = {.fd = st->fd_in, .events = POLLIN};
	int r;

	do
		r = poll(&pfd, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	return mpop_read_some(st->fd_in, buf, len);
}

static int
plain_write(MpopStream *st, const void *buf, size_t len)
{
	int r = mpop_write_all(st->fd_out, buf, len);

	/* SO_SNDTIMEO expired: the client stopped reading. */
	return r == -EAGAIN ? -ETIMEDOUT : r;
}

static const MpopStreamOps plain_ops = {
	.read = plain_read,
	.write = plain_write,
};

MpopStream *
mpop_stream_new_with_ops(const MpopStreamOps *ops, gpointer impl, int fd_in, int fd_out,
			 guint write_timeout_s)
{
	MpopStream *st = g_new0(MpopStream, 1);

	st->ops = ops ? ops : &plain_ops;
	st->impl = impl;
	st->fd_in = fd_in;
	st->fd_out = fd_out;
	st->write_timeout_ms = (int)MIN(write_timeout_s, G_MAXINT / 1000) * 1000;
	st->out = g_string_sized_new(1024);
	return st;
}

void
mpop_stream_socket_options(int fd_out, guint write_timeout_s)
{
	struct timeval tv = {.tv_sec = write_timeout_s};
	int one = 1;

	/* Our own buffering decides segment sizes; Nagle would only add delayed-ACK stalls.
	 * Both fail harmlessly on pipes and non-TCP sockets. */
	(void)setsockopt(fd_out, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A client that stops reading cannot hold the session (and its lock) forever. */
	(void)setsockopt(fd_out, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

MpopStream *
mpop_stream_new(int fd_in, int fd_out, guint write_timeout_s)
{
	mpop_stream_socket_options(fd_out, write_timeout_s);
	return mpop_stream_new_with_ops(&plain_ops, NULL, fd_in, fd_out, write_timeout_s);
}

void
mpop_stream_free(MpopStream *st)
{
	if (!st)
		return;
	if (st->ops->free)
		st->ops->free(st);
	g_string_free(st->out, TRUE);
	g_free(st->tls_info);
	g_free(st->tls_sni);
	g_free(st);
}

ssize_t
mpop_stream_read(MpopStream *st, void *buf, size_t len, int timeout_ms)
{
	return st->ops->read(st, buf, len, timeout_ms);
}

gboolean
mpop_stream_flush(MpopStream *st)
{
	int r;

	if (st->broken)
		return FALSE;
	if (st->out->len == 0)
		return TRUE;
	r = st->ops->write(st, st->out->str, st->out->len);
	st->written += st->out->len;
	g_string_truncate(st->out, 0);
	/* A big reply leaves no big buffer behind: memory stays flat for the session. */
	if (st->out->allocated_len > 2 * MPOP_STREAM_OUT_CAP) {
		g_string_free(st->out, TRUE);
		st->out = g_string_sized_new(1024);
	}
	if (r < 0) {
		mpop_log_event(MPOP_LOG_INFO, "disconnect", NULL, "write failed: %s",
			       g_strerror(-r));
		st->broken = TRUE;
		return FALSE;
	}
	return TRUE;
}

gboolean
mpop_stream_flush_if_full(MpopStream *st)
{
	return st->out->len < MPOP_STREAM_FLUSH_AT || mpop_stream_flush(st);
}

void
mpop_stream_set_cork(MpopStream *st, gboolean on)
{
	int v = on;

	if (st->corked == on)
		return;
	/* Fails harmlessly on pipes and non-TCP sockets (inetd over a pipe, tests). */
	(void)setsockopt(st->fd_out, IPPROTO_TCP, TCP_CORK, &v, sizeof(v));
	st->corked = on;
}

char *
mpop_stream_reserve(MpopStream *st, size_t n)
{
	gsize len;

	if (st->out->len > 0 && st->out->len + n > MPOP_STREAM_OUT_CAP && !mpop_stream_flush(st))
		return NULL;
	len = st->out->len;
	/* Grow the allocation without changing the contents or the length. */
	if (st->out->allocated_len <= len + n) {
		g_string_set_size(st->out, len + n);
		g_string_truncate(st->out, len);
	}
	return st->out->str + len;
}

void
mpop_stream_commit(MpopStream *st, size_t n)
{
	g_assert(st->out->len + n < st->out->allocated_len);
	st->out->len += n;
	st->out->str[st->out->len] = '\0';
}

size_t
mpop_stream_room(const MpopStream *st)
{
	return st->out->len < MPOP_STREAM_OUT_CAP ? MPOP_STREAM_OUT_CAP - st->out->len : 0;
}
