/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A generated rules file of n rules (every form, v4 and v6) and DENY ALL, for the unit test
 * and the benchmark. With comments, one comment line before every tenth rule. */
#pragma once

#include <glib.h>

static inline GString *
mpop_test_rules(guint n, gboolean comments)
{
	GString *s = g_string_new("# generated rules\n");

	for (guint i = 0; i < n; i++) {
		if (comments && i % 10 == 0)
			g_string_append_printf(s, "# block %u\n", i / 10);
		switch (i % 4) {
		case 0:
			g_string_append_printf(s, "DENY 10.%u.%u.0/24\n", i / 256, i % 256);
			break;
		case 1:
			g_string_append_printf(s, "WARN 2001:db8:%x::/48\n", i);
			break;
		case 2:
			g_string_append_printf(s, "DENY 172.16.%u.%u\n", i / 256, i % 256);
			break;
		default:
			g_string_append_printf(s, "ALLOW 192.%u.%u.\n", i / 256, i % 256);
			break;
		}
	}
	g_string_append(s, "DENY ALL\n");
	return s;
}
