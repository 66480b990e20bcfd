/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the syslog line parser of mpopdctl stats stays in bounds, answers one of
 * its three results, and a record it accepts, written again by mpop_log_append_kv, parses to
 * the same fields. */
#include "log.h"
#include "stats-line.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static GTimeZone *utc;

static void
same(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {"session", "peer", "user", "event",
					   "retr",    "top",  "dele"};
	g_autoptr(GString) again = g_string_new("<22>Dec  2 00:42:47 mpopd[1]: ");
	g_autoptr(GString) body = g_string_new(NULL);
	MpopStatsLine l, m;
	int r;

	if (!utc)
		utc = g_time_zone_new_utc();
	r = mpop_stats_line_parse((const char *)data, size, utc,
				  G_GINT64_CONSTANT(1796173200000000), &l);
	if (r == -EINVAL || r == -ENOMSG)
		return 0;
	if (r != 0)
		abort();
	{
		const char *values[] = {l.session, l.peer, l.user, l.event, l.retr, l.top, l.dele};

		for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
			if (values[i])
				mpop_log_append_kv(body, keys[i], values[i]);
	}
	g_string_append(again, body->str);
	if (mpop_stats_line_parse(again->str, again->len, utc, G_GINT64_CONSTANT(1796173200000000),
				  &m) != 0)
		abort();
	same(l.session, m.session);
	same(l.peer, m.peer);
	same(l.user, m.user);
	same(l.event, m.event);
	same(l.retr, m.retr);
	same(l.top, m.top);
	same(l.dele, m.dele);
	mpop_stats_line_clear(&l);
	mpop_stats_line_clear(&m);
	return 0;
}
