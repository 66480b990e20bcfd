/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The connection record a reusable pre-login process receives (prelogin-pool.h). */
#include "prelogin-pool.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAGIC "MPOPC"
#define SKIP "MPOPN"
#define MAGIC_LEN 5
#define NO_STRING 0xffffffffu

enum { F_IMPLICIT_TLS = 1, F_LOOPBACK = 2, F_TRUSTED = 4 };

static void
put_u32(GByteArray *b, guint32 v)
{
	guint32 be = GUINT32_TO_BE(v);

	g_byte_array_append(b, (const guint8 *)&be, 4);
}

static void
put_string(GByteArray *b, const char *s)
{
	gsize len = s ? MIN(strlen(s), MPOP_POOL_MAX_STRING) : 0;

	put_u32(b, s ? (guint32)len : NO_STRING);
	if (len)
		g_byte_array_append(b, (const guint8 *)s, (guint)len);
}

static void
put_addr(GByteArray *b, const struct sockaddr_storage *ss, socklen_t len)
{
	len = MIN(len, (socklen_t)sizeof(*ss));
	put_u32(b, (guint32)len);
	g_byte_array_append(b, (const guint8 *)ss, (guint)len);
}

GBytes *
mpop_pool_encode(const MpopConnection *conn)
{
	GByteArray *b = g_byte_array_sized_new(256);
	guint8 flags = (conn->implicit_tls ? F_IMPLICIT_TLS : 0) |
		       (conn->loopback ? F_LOOPBACK : 0) | (conn->trusted ? F_TRUSTED : 0);

	g_byte_array_append(b, (const guint8 *)MAGIC, MAGIC_LEN);
	g_byte_array_append(b, &flags, 1);
	put_string(b, conn->peer);
	put_string(b, conn->local);
	put_string(b, conn->peer_host);
	put_string(b, conn->local_host);
	put_string(b, conn->proxy);
	put_string(b, conn->session_id);
	put_addr(b, &conn->peer_addr, conn->peer_len);
	put_addr(b, &conn->local_addr, conn->local_len);
	return g_byte_array_free_to_bytes(b);
}

typedef struct {
	const guint8 *p, *end;
} Reader;

static gboolean
get_u32(Reader *r, guint32 *out)
{
	guint32 be;

	if (r->end - r->p < 4)
		return FALSE;
	memcpy(&be, r->p, 4);
	r->p += 4;
	*out = GUINT32_FROM_BE(be);
	return TRUE;
}

static gboolean
get_string(Reader *r, char **out)
{
	guint32 len;

	if (!get_u32(r, &len))
		return FALSE;
	if (len == NO_STRING)
		return TRUE;
	if (len > MPOP_POOL_MAX_STRING || (gsize)(r->end - r->p) < len || memchr(r->p, 0, len))
		return FALSE;
	*out = g_strndup((const char *)r->p, len);
	r->p += len;
	return TRUE;
}

static gboolean
get_addr(Reader *r, struct sockaddr_storage *ss, socklen_t *out_len)
{
	guint32 len;

	if (!get_u32(r, &len) || len > sizeof(*ss) || (gsize)(r->end - r->p) < len)
		return FALSE;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, r->p, len);
	r->p += len;
	*out_len = (socklen_t)len;
	return TRUE;
}

void
mpop_pool_connection_clear(MpopConnection *conn)
{
	g_clear_pointer(&conn->peer, g_free);
	g_clear_pointer(&conn->local, g_free);
	g_clear_pointer(&conn->peer_host, g_free);
	g_clear_pointer(&conn->local_host, g_free);
	g_clear_pointer(&conn->proxy, g_free);
	g_clear_pointer(&conn->session_id, g_free);
	g_clear_pointer(&conn->tls_info, g_free);
}

int
mpop_pool_decode(const guint8 *data, gsize len, MpopConnection *out)
{
	Reader r = {data, data + len};
	guint8 flags;

	if (len < MAGIC_LEN + 1 || memcmp(data, MAGIC, MAGIC_LEN) != 0)
		return -EINVAL;
	flags = data[MAGIC_LEN];
	r.p += MAGIC_LEN + 1;
	if ((flags & ~(F_IMPLICIT_TLS | F_LOOPBACK | F_TRUSTED)) || !get_string(&r, &out->peer) ||
	    !get_string(&r, &out->local) || !get_string(&r, &out->peer_host) ||
	    !get_string(&r, &out->local_host) || !get_string(&r, &out->proxy) ||
	    !get_string(&r, &out->session_id) || !get_addr(&r, &out->peer_addr, &out->peer_len) ||
	    !get_addr(&r, &out->local_addr, &out->local_len) || r.p != r.end || !out->peer ||
	    !out->session_id) {
		mpop_pool_connection_clear(out);
		return -EINVAL;
	}
	out->implicit_tls = (flags & F_IMPLICIT_TLS) != 0;
	out->loopback = (flags & F_LOOPBACK) != 0;
	out->trusted = (flags & F_TRUSTED) != 0;
	return 0;
}

int
mpop_pool_send(int ctl, const MpopConnection *conn, int client, int chan, int data)
{
	g_autoptr(GBytes) rec = mpop_pool_encode(conn);
	int fds[3] = {client, chan, data};
	guint n = data >= 0 ? 3 : 2;
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = (void *)g_bytes_get_data(rec, NULL),
			    .iov_len = g_bytes_get_size(rec)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(n * sizeof(int))};
	struct cmsghdr *cm;

	memset(&u, 0, sizeof(u));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	if (sendmsg(ctl, &msg, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int
mpop_pool_send_skip(int ctl)
{
	return send(ctl, SKIP, MAGIC_LEN, MSG_NOSIGNAL) == MAGIC_LEN ? 0 : -errno;
}

int
mpop_pool_receive(int ctl, MpopConnection *out, int *chan, int *data)
{
	guint8 buf[MPOP_POOL_MAX_RECORD];
	int fds[3] = {-1, -1, -1};
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *cm;
	guint nfds = 0;
	ssize_t n;

	do
		n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			nfds = (guint)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			nfds = MIN(nfds, 3);
			memcpy(fds, CMSG_DATA(cm), nfds * sizeof(int));
		}
	}
	if (n == 0 && nfds == 0)
		return 0;
	if (n == MAGIC_LEN && nfds == 0 && memcmp(buf, SKIP, MAGIC_LEN) == 0)
		return 2;
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || nfds < 2 ||
	    mpop_pool_decode(buf, (gsize)n, out) < 0) {
		for (guint i = 0; i < nfds; i++)
			close(fds[i]);
		return -EINVAL;
	}
	out->fd_in = out->fd_out = fds[0];
	*chan = fds[1];
	*data = nfds > 2 ? fds[2] : -1;
	return 1;
}
