/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One line of a syslog file holding mpopd's key=value records, parsed as untrusted input. */
#pragma once

#include <glib.h>

/* Longer lines are malformed: mpopd's own records stay far below. */
#define MPOP_STATS_LINE_MAX 65536

/* The fields of a record that statistics use; NULL when absent. */
typedef struct {
	gint64 usec; /* the line's time stamp, microseconds since the epoch */
	char *session;
	char *peer;
	char *user;
	char *event;
	char *retr; /* "COUNT/OCTETS" of the logout record */
	char *top;  /* "COUNT" */
	char *dele; /* "COUNT/OCTETS" */
} MpopStatsLine;

/* Parse line (len bytes, no line end): an optional "<PRI>", an RFC 3339 or RFC 3164 time
 * stamp (the latter is in tz, NULL: local time, of the year that puts it at most a week
 * after now_usec), an optional host name, the tag "mpopd[PID]:" or "mpopd:", then
 * key=value pairs as mpop_log_append_kv() writes them. Returns 0 with *out filled (clear
 * it with mpop_stats_line_clear), -ENOMSG for a well-formed line of another program, or
 * -EINVAL for anything else (bad time stamp, broken pairs, a repeated key, a value with a
 * NUL). */
int mpop_stats_line_parse(const char *line, gsize len, GTimeZone *tz, gint64 now_usec,
			  MpopStatsLine *out);
void mpop_stats_line_clear(MpopStatsLine *l);

/* "COUNT" or "COUNT/OCTETS" (the retr=, top= and dele= values) into its numbers; octets 0
 * when absent. Returns FALSE when s is anything else. */
gboolean mpop_stats_parse_count(const char *s, guint64 *out_count, guint64 *out_octets);
