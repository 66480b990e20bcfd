/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the line reader + protocol engine with arbitrary client bytes, in both states. */
#include "linebuf.h"
#include "pop3.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char ua[] = "a", ub[] = "b";
	static MpopMessage msgs[2] = {{.uidl = ua, .size = 10}, {.uidl = ub, .size = 20}};
	MpopMailbox mb = {.msgs = msgs, .n_msgs = 2};
	MpopPop3Params params = {.greeting = "fuzz",
				 .max_bad_commands = 1000,
				 .allow_plaintext = TRUE,
				 .tls_available = TRUE};
	MpopLinebuf lb;
	MpopPop3 p;
	GString *reply = g_string_new(NULL);
	const char *line;
	size_t len, off = 0;

	msgs[0].deleted = msgs[1].deleted = FALSE;
	mpop_linebuf_init(&lb, MPOP_LINE_MAX);
	mpop_pop3_init(&p, &params);
	while (off < size) {
		size_t space, n;
		char *buf = mpop_linebuf_space(&lb, &space);
		MpopLineStatus st;
		n = MIN(space, size - off);
		n = MIN(n, 97); /* odd chunking exercises line splitting */
		memcpy(buf, data + off, n);
		mpop_linebuf_commit(&lb, n);
		off += n;
		while ((st = mpop_linebuf_next(&lb, &line, &len)) != MPOP_LINE_NONE) {
			MpopAction act = st == MPOP_LINE_OK ? mpop_pop3_feed(&p, line, len, reply)
							    : mpop_pop3_line_error(&p, st, reply);
			if (act == MPOP_ACT_AUTH) {
				/* alternate outcomes so both states are explored */
				if (p.auth_pass && p.auth_pass[0] == 'o') {
					mpop_pop3_auth_done(&p, MPOP_AUTH_OK, reply);
					mpop_pop3_enter_transaction(&p, &mb, p.auth_user, reply);
				} else {
					mpop_pop3_auth_done(&p, MPOP_AUTH_DENIED, reply);
				}
			} else if (act == MPOP_ACT_LISTING) {
				while (!mpop_pop3_listing_step(&p, reply, 1))
					;
			} else if (act == MPOP_ACT_UPDATE) {
				mpop_pop3_update_done(&p, TRUE, NULL, reply);
			}
			/* replies are bounded lines: RFC 1939 §3 512 octets each */
			g_string_truncate(reply, 0);
		}
	}
	mpop_pop3_clear(&p);
	g_string_free(reply, TRUE);
	return 0;
}
