/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the reusable pre-login process's parser of the connection record. */
#include "prelogin-pool.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopConnection c = {0};

	if (mpop_pool_decode(data, size, &c) == 0) {
		g_assert(c.peer && c.session_id);
		g_assert(strlen(c.peer) <= MPOP_POOL_MAX_STRING);
		g_assert(c.peer_len <= sizeof(c.peer_addr) && c.local_len <= sizeof(c.local_addr));
		mpop_pool_connection_clear(&c);
	}
	g_assert(c.peer == NULL && c.session_id == NULL);
	return 0;
}
