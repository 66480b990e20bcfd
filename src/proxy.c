/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The HAProxy PROXY protocol (v1 text, v2 binary): a bounded parser, the header read, trust. */
#include "proxy.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>

static const guint8 v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				  0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

static void
set_in(struct sockaddr_storage *ss, socklen_t *len, const void *addr, guint16 port_be)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	memcpy(&in->sin_addr, addr, 4);
	in->sin_port = port_be;
	*len = sizeof(*in);
}

static void
set_in6(struct sockaddr_storage *ss, socklen_t *len, const void *addr, guint16 port_be)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	in6->sin6_family = AF_INET6;
	memcpy(&in6->sin6_addr, addr, 16);
	in6->sin6_port = port_be;
	*len = sizeof(*in6);
}

/* §2.1: decimal 0..65535 without leading zeroes. */
static gboolean
v1_port(const char *s, guint16 *out_be)
{
	guint v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return FALSE;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (guint)(s[i] - '0');
	}
	if (v > 65535)
		return FALSE;
	*out_be = htons((guint16)v);
	return TRUE;
}

/* One address of the family the line announced; inet_pton() rejects IPv4 leading zeroes
 * and anything that is not exactly 32 or 128 bits. */
static gboolean
v1_addr(int family, const char *s, const char *port, struct sockaddr_storage *ss, socklen_t *len)
{
	guint8 a[16];
	guint16 p;

	if (inet_pton(family, s, a) != 1 || !v1_port(port, &p))
		return FALSE;
	if (family == AF_INET)
		set_in(ss, len, a, p);
	else
		set_in6(ss, len, a, p);
	return TRUE;
}

static int
parse_v1(const char *buf, size_t len, MpopProxyHeader *out)
{
	char line[MPOP_PROXY_V1_MAX + 1];
	const char *lf = memchr(buf, '\n', MIN(len, (size_t)MPOP_PROXY_V1_MAX));
	char *tok[7];
	guint n = 0;
	size_t l;
	int family;

	if (!lf)
		return len >= MPOP_PROXY_V1_MAX ? -EMSGSIZE : 0;
	/* A lone LF (or CR) does not end the line, and a NUL has no business in it. */
	l = (size_t)(lf - buf);
	if (l < sizeof(v1_sig) || buf[l - 1] != '\r' || memchr(buf, '\0', l))
		return -EINVAL;
	memcpy(line, buf, l - 1);
	line[l - 1] = '\0';
	/* UNKNOWN: whatever follows it before the CRLF is to be ignored. */
	if (strncmp(line + 6, "UNKNOWN", 7) == 0 && (line[13] == '\0' || line[13] == ' ')) {
		*out = (MpopProxyHeader){.version = 1, .local = TRUE};
		return (int)l + 1;
	}
	/* Fields are separated by exactly one space: an empty field is an error. */
	for (char *p = line, *sp;; p = sp + 1) {
		if (n == G_N_ELEMENTS(tok))
			return -EINVAL;
		tok[n++] = p;
		sp = strchr(p, ' ');
		if (!sp)
			break;
		*sp = '\0';
	}
	for (guint i = 0; i < n; i++)
		if (!*tok[i])
			return -EINVAL;
	if (n != 6)
		return -EINVAL;
	if (strcmp(tok[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(tok[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return -EINVAL;
	*out = (MpopProxyHeader){.version = 1};
	if (!v1_addr(family, tok[2], tok[4], &out->src, &out->src_len) ||
	    !v1_addr(family, tok[3], tok[5], &out->dst, &out->dst_len))
		return -EINVAL;
	return (int)l + 1;
}

/* The TLVs fill the rest of the block exactly (§2.2); their contents are not used. */
static gboolean
tlvs_valid(const guint8 *p, size_t len)
{
	while (len > 0) {
		size_t vlen;
		if (len < 3)
			return FALSE;
		vlen = (size_t)p[1] << 8 | p[2];
		if (vlen > len - 3)
			return FALSE;
		p += 3 + vlen;
		len -= 3 + vlen;
	}
	return TRUE;
}

static int
parse_v2(const guint8 *buf, size_t len, MpopProxyHeader *out)
{
	size_t hlen, alen;
	guint cmd, fam, proto;
	guint16 ports[2]; /* network order, as sin_port wants them */
	const guint8 *a = buf + 16;

	if (len < 16)
		return 0;
	if ((buf[12] >> 4) != 2)
		return -EINVAL;
	cmd = buf[12] & 0x0F;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0F;
	/* Unassigned commands, families and protocols must be rejected. */
	if (cmd > 1 || fam > 3 || proto > 2)
		return -EINVAL;
	hlen = (size_t)buf[14] << 8 | buf[15];
	if (hlen > MPOP_PROXY_V2_MAX_LEN)
		return -EMSGSIZE;
	if (len < 16 + hlen)
		return 0;
	*out = (MpopProxyHeader){.version = 2, .local = TRUE};
	/* LOCAL: a connection of the balancer's own (a health check); the block is skipped
	 * whatever it holds. Unspecified, AF_UNIX and datagram addresses are not used. */
	if (cmd == 0 || fam == 0 || fam == 3 || proto != 1)
		return (int)(16 + hlen);
	alen = fam == 1 ? 12 : 36;
	if (hlen < alen || !tlvs_valid(a + alen, hlen - alen))
		return -EINVAL;
	out->local = FALSE;
	if (fam == 1) {
		memcpy(ports, a + 8, 4);
		set_in(&out->src, &out->src_len, a, ports[0]);
		set_in(&out->dst, &out->dst_len, a + 4, ports[1]);
	} else {
		memcpy(ports, a + 32, 4);
		set_in6(&out->src, &out->src_len, a, ports[0]);
		set_in6(&out->dst, &out->dst_len, a + 16, ports[1]);
	}
	return (int)(16 + hlen);
}

int
mpop_proxy_parse(const void *buf, size_t len, guint versions, MpopProxyHeader *out)
{
	const guint8 *b = buf;
	size_t n = MIN(len, sizeof(v2_sig));

	if (len == 0)
		return 0;
	/* §2.2: the first byte tells the versions apart ('P' or CR). */
	if (memcmp(b, v2_sig, n) == 0) {
		if (!(versions & MPOP_PROXY_V2))
			return -EPROTONOSUPPORT;
		return parse_v2(b, len, out);
	}
	n = MIN(len, sizeof(v1_sig) - 1);
	if (memcmp(b, v1_sig, n) == 0) {
		if (!(versions & MPOP_PROXY_V1))
			return -EPROTONOSUPPORT;
		return parse_v1(buf, len, out);
	}
	return -EINVAL;
}

/* Peek at what has arrived and take exactly the header's bytes: while the header is
 * incomplete every byte seen belongs to it, so those are consumed and the wait is for more;
 * a POP3 command the client sends early stays in the socket for the session. */
int
mpop_proxy_read(int fd, guint versions, guint timeout_ms, MpopProxyHeader *out)
{
	guint8 buf[MPOP_PROXY_MAX];
	size_t have = 0;
	guint64 deadline = mpop_now_usec() + (guint64)timeout_ms * 1000;
	MpopProxyHeader h;

	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		guint64 now = mpop_now_usec();
		ssize_t n;
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)MAX((deadline - now + 999) / 1000, 1));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + have, sizeof(buf) - have, MSG_PEEK);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		r = mpop_proxy_parse(buf, have + (size_t)n, versions, &h);
		if (r < 0)
			return r;
		/* r > 0: the header ends within what was peeked; else take all of it. */
		n = r > 0 ? (ssize_t)((size_t)r - have) : n;
		if (recv(fd, buf + have, (size_t)n, MSG_WAITALL) != n)
			return -EIO;
		have += (size_t)n;
		if (r > 0) {
			*out = h;
			return 0;
		}
	}
}

int
mpop_proxy_versions_from_name(const char *name)
{
	static const struct {
		const char *name;
		int bits;
	} names[] = {{"off", 0},
		     {"v1", MPOP_PROXY_V1},
		     {"v2", MPOP_PROXY_V2},
		     {"any", MPOP_PROXY_V1 | MPOP_PROXY_V2}};

	for (size_t i = 0; name && i < G_N_ELEMENTS(names); i++)
		if (strcmp(name, names[i].name) == 0)
			return names[i].bits;
	return -1;
}
