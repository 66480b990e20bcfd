/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the privileged parent's parser of the pre-login child's record. */
#include "privsep.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopAuthRequest r = {0};
	MpopLogRecord l = {0};

	if (mpop_privsep_decode(data, size, &r) == 0) {
		g_assert(r.user && r.pass && r.tls);
		g_assert(r.pending_len <= MPOP_PRIVSEP_MAX_PENDING);
		g_assert(strlen(r.tls) <= MPOP_PRIVSEP_MAX_TLS);
		mpop_auth_request_clear(&r);
	}
	/* The pre-login process's log records: what reaches the journal is printable. */
	if (mpop_privsep_decode_log(data, size, &l) == 0) {
		g_assert(l.level >= MPOP_LOG_ERR && l.level <= MPOP_LOG_DEBUG);
		g_assert(strlen(l.event) <= MPOP_PRIVSEP_MAX_EVENT);
		for (const char *c = l.message; *c; c++)
			g_assert(*c >= 0x20 && *c < 0x7f);
		mpop_privsep_log_clear(&l);
	}
	return 0;
}
