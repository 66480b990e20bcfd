/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the privileged parent's parser of the pre-login child's record. */
#include "privsep.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopAuthRequest r = {0};

	if (mpop_privsep_decode(data, size, &r) == 0) {
		g_assert(r.user && r.pass);
		g_assert(r.pending_len <= MPOP_PRIVSEP_MAX_PENDING);
		mpop_auth_request_clear(&r);
	}
	return 0;
}
