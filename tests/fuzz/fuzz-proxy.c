/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the PROXY header parser stays in bounds, and a header it accepts is
 * "read more" at every shorter prefix (so the reader never takes a byte past it). */
#include "proxy.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopProxyHeader h, hp;
	guint versions;
	int r;

	if (size < 1)
		return 0;
	versions = data[0] % 3 + 1; /* v1, v2 or both */
	data++;
	size--;
	r = mpop_proxy_parse(data, size, versions, &h);
	if (r > (int)size || r > MPOP_PROXY_MAX)
		abort();
	if (r == 0 && size >= MPOP_PROXY_MAX)
		abort();
	if (r < 0 && r != -EINVAL && r != -EPROTONOSUPPORT && r != -EMSGSIZE)
		abort();
	if (r > 0) {
		if (h.version != 1 && h.version != 2)
			abort();
		if (!h.local && (h.src.ss_family != h.dst.ss_family ||
				 (h.src.ss_family != AF_INET && h.src.ss_family != AF_INET6)))
			abort();
		for (size_t p = 0; p < (size_t)r; p++)
			if (mpop_proxy_parse(data, p, versions, &hp) != 0)
				abort();
		/* What follows the header does not change it. */
		if (mpop_proxy_parse(data, (size_t)r, versions, &hp) != r)
			abort();
	}
	return 0;
}
