/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The HAProxy PROXY protocol (v1 text, v2 binary): a bounded parser, the header read, trust. */
#pragma once

#include <glib.h>
#include <sys/socket.h>

/* Which versions a listener accepts, a bit set ([server] proxy_protocol). */
enum {
	MPOP_PROXY_V1 = 1 << 0,
	MPOP_PROXY_V2 = 1 << 1,
};

/* The longest v1 line with its CRLF (proxy-protocol.txt §2.1) and the largest v2 address and
 * TLV block mpopd reads (the 16-byte fixed part comes on top). */
#define MPOP_PROXY_V1_MAX 107
#define MPOP_PROXY_V2_MAX_LEN 2048
#define MPOP_PROXY_MAX (16 + MPOP_PROXY_V2_MAX_LEN)

typedef struct {
	guint version; /* 1 or 2 */
	/* TRUE: the header carries no addresses to use (v1 UNKNOWN, v2 LOCAL, v2 with an
	 * unspecified or AF_UNIX family): the connection's own endpoints stand. */
	gboolean local;
	struct sockaddr_storage src, dst; /* the client and the address it reached */
	socklen_t src_len, dst_len;
} MpopProxyHeader;

/* Parse the untrusted bytes a connection starts with. versions: MPOP_PROXY_* bits accepted.
 * Returns the header's length (> 0) and fills *out when buf starts with a complete, valid
 * header; 0 when buf is a valid but incomplete start of one (read more; never for len >=
 * MPOP_PROXY_MAX); -EINVAL when it is not a header or is malformed, -EPROTONOSUPPORT for a
 * version not in versions, -EMSGSIZE when it is longer than the bounds above. */
int mpop_proxy_parse(const void *buf, size_t len, guint versions, MpopProxyHeader *out);

/* Read exactly one header from the socket fd (peeking, so no byte after it is consumed)
 * within timeout_ms. Returns 0 and fills *out, or a mpop_proxy_parse() error, -ETIMEDOUT,
 * -ENODATA (the peer closed before a complete header) or another -errno. */
int mpop_proxy_read(int fd, guint versions, guint timeout_ms, MpopProxyHeader *out);

/* "off", "v1", "v2" or "any" as MPOP_PROXY_* bits (0 for off); -1 for anything else. */
int mpop_proxy_versions_from_name(const char *name);
