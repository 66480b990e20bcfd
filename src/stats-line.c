/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One line of a syslog file holding mpopd's key=value records, parsed as untrusted input. */
#include "stats-line.h"

#include <errno.h>
#include <string.h>

/* A bounded cursor over the line: nothing here reads past end or needs a NUL. */
typedef struct {
	const char *p;
	const char *end;
} Cursor;

static gboolean
at(const Cursor *c, char ch)
{
	return c->p < c->end && *c->p == ch;
}

static gboolean
digits(Cursor *c, guint n_min, guint n_max, guint *out)
{
	guint v = 0, n = 0;

	while (n < n_max && c->p < c->end && g_ascii_isdigit(*c->p)) {
		v = v * 10 + (guint)(*c->p - '0');
		c->p++;
		n++;
	}
	if (n < n_min)
		return FALSE;
	*out = v;
	return TRUE;
}

/* RFC 3164 §4.1.2: "Mmm dd hh:mm:ss" (the day space-padded), local time, no year. The
 * year is the one that puts the stamp no more than a week after now: a file read in
 * January still holds December's lines. */
static gboolean
parse_bsd_stamp(Cursor *c, GTimeZone *tz, gint64 now_usec, gint64 *out_usec)
{
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	g_autoptr(GDateTime) utc = NULL;
	g_autoptr(GDateTime) now = NULL;
	g_autoptr(GDateTime) dt = NULL;
	guint mon = 12, day, h, m, s;

	if (c->end - c->p < 4)
		return FALSE;
	for (guint i = 0; i < 12; i++)
		if (memcmp(c->p, months[i], 3) == 0)
			mon = i;
	if (mon == 12 || c->p[3] != ' ')
		return FALSE;
	c->p += 4;
	if (at(c, ' '))
		c->p++;
	if (!digits(c, 1, 2, &day) || !at(c, ' '))
		return FALSE;
	c->p++;
	if (!digits(c, 2, 2, &h) || !at(c, ':') || (c->p++, !digits(c, 2, 2, &m)) || !at(c, ':') ||
	    (c->p++, !digits(c, 2, 2, &s)))
		return FALSE;
	utc = g_date_time_new_from_unix_utc(now_usec / G_USEC_PER_SEC);
	now = utc ? g_date_time_to_timezone(utc, tz) : NULL;
	if (!now)
		return FALSE;
	for (int back = 0; back < 2 && !dt; back++) {
		gint year = g_date_time_get_year(now) - back;

		dt = g_date_time_new(tz, year, (gint)mon + 1, (gint)day, (gint)h, (gint)m, s);
		if (dt && g_date_time_to_unix(dt) > now_usec / G_USEC_PER_SEC + 7 * 86400)
			g_clear_pointer(&dt, g_date_time_unref);
	}
	if (!dt)
		return FALSE;
	*out_usec = g_date_time_to_unix(dt) * G_USEC_PER_SEC;
	return TRUE;
}

/* RFC 3339 (rsyslog's default file format since Debian 12): "2026-12-02T00:42:47.123+01:00". */
static gboolean
parse_iso_stamp(Cursor *c, GTimeZone *tz, gint64 *out_usec)
{
	const char *sp = memchr(c->p, ' ', (size_t)(c->end - c->p));
	g_autofree char *tok = NULL;
	g_autoptr(GDateTime) dt = NULL;

	if (!sp || sp - c->p < 19 || sp - c->p > 40)
		return FALSE;
	tok = g_strndup(c->p, (gsize)(sp - c->p));
	if (strlen(tok) != (size_t)(sp - c->p) || tok[4] != '-' || tok[10] != 'T')
		return FALSE;
	dt = g_date_time_new_from_iso8601(tok, tz);
	if (!dt)
		return FALSE;
	*out_usec = g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
	c->p = sp;
	return TRUE;
}

/* The next space-separated token; FALSE at the end of the line. */
static gboolean
token(Cursor *c, const char **out_start, gsize *out_len)
{
	const char *start = c->p;

	while (c->p < c->end && *c->p != ' ')
		c->p++;
	if (c->p == start)
		return FALSE;
	*out_start = start;
	*out_len = (gsize)(c->p - start);
	return TRUE;
}

/* "mpopd:" or "mpopd[PID]:" */
static gboolean
is_mpopd_tag(const char *t, gsize len)
{
	guint64 pid;

	if (len < 6 || t[len - 1] != ':' || memcmp(t, "mpopd", 5) != 0)
		return FALSE;
	if (len == 6)
		return TRUE;
	if (t[5] != '[' || t[len - 2] != ']' || len < 9 || len > 20)
		return FALSE;
	{
		g_autofree char *num = g_strndup(t + 6, len - 8);
		return g_ascii_string_to_unsigned(num, 10, 1, G_MAXINT32, &pid, NULL);
	}
}

/* After the time stamp: " [HOST ]TAG: ". Returns 0 with c at the pairs, -ENOMSG for another
 * program's tag, -EINVAL for no tag at all. */
static int
parse_tag(Cursor *c)
{
	const char *t;
	gsize len;

	for (int i = 0; i < 2; i++) {
		if (!at(c, ' '))
			return -EINVAL;
		c->p++;
		if (!token(c, &t, &len))
			return -EINVAL;
		if (t[len - 1] != ':')
			continue; /* the host name */
		if (!is_mpopd_tag(t, len))
			return -ENOMSG;
		if (!at(c, ' '))
			return -EINVAL;
		c->p++;
		return 0;
	}
	return -EINVAL;
}

static int
hex_digit(char ch)
{
	if (g_ascii_isdigit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* A quoted value with the escapes of mpop_log_append_kv; c starts after the quote. */
static gboolean
parse_quoted(Cursor *c, GString *v)
{
	while (c->p < c->end) {
		unsigned char ch = (unsigned char)*c->p++;
		int hi, lo;

		if (ch == '"')
			return TRUE;
		if (ch < 0x20 || ch > 0x7e)
			return FALSE;
		if (ch != '\\') {
			g_string_append_c(v, (char)ch);
			continue;
		}
		if (c->p >= c->end)
			return FALSE;
		switch (*c->p++) {
		case '\\':
			g_string_append_c(v, '\\');
			break;
		case '"':
			g_string_append_c(v, '"');
			break;
		case 'r':
			g_string_append_c(v, '\r');
			break;
		case 'n':
			g_string_append_c(v, '\n');
			break;
		case 't':
			g_string_append_c(v, '\t');
			break;
		case 'x':
			if (c->end - c->p < 2 || (hi = hex_digit(c->p[0])) < 0 ||
			    (lo = hex_digit(c->p[1])) < 0 || (hi == 0 && lo == 0))
				return FALSE; /* a NUL would cut the value short */
			g_string_append_c(v, (char)(hi * 16 + lo));
			c->p += 2;
			break;
		default:
			return FALSE;
		}
	}
	return FALSE;
}

static gboolean
parse_value(Cursor *c, GString *v)
{
	const char *start = c->p;

	if (at(c, '"')) {
		c->p++;
		return parse_quoted(c, v);
	}
	while (c->p<c->end && * c->p> 0x20 && *c->p < 0x7f && *c->p != '"' && *c->p != '\\')
		c->p++;
	if (c->p == start)
		return FALSE;
	g_string_append_len(v, start, c->p - start);
	return TRUE;
}

static char **
field_slot(MpopStatsLine *l, const char *key, gsize len)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{"session", G_STRUCT_OFFSET(MpopStatsLine, session)},
		{"peer", G_STRUCT_OFFSET(MpopStatsLine, peer)},
		{"user", G_STRUCT_OFFSET(MpopStatsLine, user)},
		{"event", G_STRUCT_OFFSET(MpopStatsLine, event)},
		{"retr", G_STRUCT_OFFSET(MpopStatsLine, retr)},
		{"top", G_STRUCT_OFFSET(MpopStatsLine, top)},
		{"dele", G_STRUCT_OFFSET(MpopStatsLine, dele)},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
		if (strlen(keys[i].key) == len && memcmp(keys[i].key, key, len) == 0)
			return (char **)((char *)l + keys[i].off);
	return NULL;
}

/* key=value pairs separated by one space, to the end of the line. Keys other than the
 * ones kept are checked and skipped; only the kept ones are checked for repeats (a
 * second user= could only be forged). */
static gboolean
parse_pairs(Cursor *c, MpopStatsLine *l)
{
	g_autoptr(GString) v = g_string_new(NULL);

	while (c->p < c->end) {
		const char *key = c->p;
		gsize klen;
		char **slot;

		while (c->p < c->end &&
		       (g_ascii_islower(*c->p) || g_ascii_isdigit(*c->p) || *c->p == '_'))
			c->p++;
		klen = (gsize)(c->p - key);
		if (klen == 0 || !at(c, '='))
			return FALSE;
		c->p++;
		g_string_truncate(v, 0);
		if (!parse_value(c, v))
			return FALSE;
		slot = field_slot(l, key, klen);
		if (slot && *slot)
			return FALSE;
		if (slot)
			*slot = g_strndup(v->str, v->len);
		if (c->p < c->end && (!at(c, ' ') || c->p + 1 == c->end))
			return FALSE;
		if (c->p < c->end)
			c->p++;
	}
	return TRUE;
}

int
mpop_stats_line_parse(const char *line, gsize len, GTimeZone *tz, gint64 now_usec,
		      MpopStatsLine *out)
{
	g_autoptr(GTimeZone) local = tz ? g_time_zone_ref(tz) : g_time_zone_new_local();
	MpopStatsLine l = {0};
	Cursor c = {line, line + len};
	guint pri;
	int r;

	if (len > MPOP_STATS_LINE_MAX)
		return -EINVAL;
	/* The datagram as mpopd sends it starts with its priority (RFC 3164 §4.1.1). */
	if (at(&c, '<')) {
		c.p++;
		if (!digits(&c, 1, 3, &pri) || pri > 191 || !at(&c, '>'))
			return -EINVAL;
		c.p++;
	}
	if (c.p < c.end && g_ascii_isdigit(*c.p) ? !parse_iso_stamp(&c, local, &l.usec)
						 : !parse_bsd_stamp(&c, local, now_usec, &l.usec))
		return -EINVAL;
	if ((r = parse_tag(&c)) < 0)
		return r;
	if (!parse_pairs(&c, &l)) {
		mpop_stats_line_clear(&l);
		return -EINVAL;
	}
	*out = l;
	return 0;
}

void
mpop_stats_line_clear(MpopStatsLine *l)
{
	g_free(l->session);
	g_free(l->peer);
	g_free(l->user);
	g_free(l->event);
	g_free(l->retr);
	g_free(l->top);
	g_free(l->dele);
	memset(l, 0, sizeof *l);
}

gboolean
mpop_stats_parse_count(const char *s, guint64 *out_count, guint64 *out_octets)
{
	const char *slash = strchr(s, '/');
	g_autofree char *count = g_strndup(s, slash ? (gsize)(slash - s) : strlen(s));
	guint64 n, octets = 0;

	if (!g_ascii_string_to_unsigned(count, 10, 0, G_MAXUINT64, &n, NULL))
		return FALSE;
	if (slash && !g_ascii_string_to_unsigned(slash + 1, 10, 0, G_MAXUINT64, &octets, NULL))
		return FALSE;
	*out_count = n;
	*out_octets = octets;
	return TRUE;
}
