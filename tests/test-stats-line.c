/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The syslog line parser of mpopdctl stats: time stamps, tags, key=value pairs. */
#include "stats-line.h"
#include "log.h"

#include <errno.h>
#include <string.h>

static GTimeZone *utc;

/* 2026-12-02T01:00:00Z */
#define NOW_USEC (G_GINT64_CONSTANT(1796173200) * G_USEC_PER_SEC)

static gint64
usec_of(const char *iso)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(iso, utc);

	g_assert_nonnull(dt);
	return g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
}

static int
parse(const char *line, gint64 now, MpopStatsLine *out)
{
	return mpop_stats_line_parse(line, strlen(line), utc, now, out);
}

static void
test_formats(void)
{
	static const struct {
		const char *line;
		const char *stamp;
	} cases[] = {
		/* the datagram as mpopd sends it */
		{"<22>Dec  2 00:42:47 mpopd[123]: session=a1 event=login user=alice",
		 "2026-12-02T00:42:47Z"},
		/* rsyslog's traditional file format: a host name */
		{"Dec  2 00:42:47 mail mpopd[9]: session=a1 event=login user=alice",
		 "2026-12-02T00:42:47Z"},
		{"Dec 12 00:42:47 mail mpopd: event=login user=alice", "2025-12-12T00:42:47Z"},
		/* RFC 3339 (rsyslog's default on Debian 12) */
		{"2026-12-02T01:42:47.250000+01:00 mail mpopd[9]: event=login user=alice",
		 "2026-12-02T00:42:47.25Z"},
		{"2026-12-02T00:42:47Z mpopd[9]: event=login user=alice", "2026-12-02T00:42:47Z"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		MpopStatsLine l;

		g_test_message("%s", cases[i].line);
		g_assert_cmpint(parse(cases[i].line, NOW_USEC, &l), ==, 0);
		g_assert_cmpint(l.usec, ==, usec_of(cases[i].stamp));
		g_assert_cmpstr(l.event, ==, "login");
		g_assert_cmpstr(l.user, ==, "alice");
		mpop_stats_line_clear(&l);
	}
}

/* RFC 3164 has no year: the one that puts the line at most a week after now. */
static void
test_year(void)
{
	gint64 new_year = usec_of("2027-01-01T00:10:00Z");
	MpopStatsLine l;

	g_assert_cmpint(parse("Dec 31 23:59:59 mpopd: event=login", new_year, &l), ==, 0);
	g_assert_cmpint(l.usec, ==, usec_of("2026-12-31T23:59:59Z"));
	mpop_stats_line_clear(&l);
	g_assert_cmpint(parse("Jan  1 00:05:00 mpopd: event=login", new_year, &l), ==, 0);
	g_assert_cmpint(l.usec, ==, usec_of("2027-01-01T00:05:00Z"));
	mpop_stats_line_clear(&l);
	/* Feb 29 exists in 2024 only */
	g_assert_cmpint(parse("Feb 29 12:00:00 mpopd: event=login", NOW_USEC, &l), ==, -EINVAL);
	g_assert_cmpint(
		parse("Feb 29 12:00:00 mpopd: event=login", usec_of("2024-03-01T00:00:00Z"), &l),
		==, 0);
	g_assert_cmpint(l.usec, ==, usec_of("2024-02-29T12:00:00Z"));
	mpop_stats_line_clear(&l);
}

static void
test_fields(void)
{
	MpopStatsLine l;
	const char *line = "<22>Dec  2 00:42:47 mpopd[1]: session=s1 peer=[::1]:40000 user=bob "
			   "event=logout msg=\"logout, retrieved 2\" retr=2/300 top=1 dele=1/100 "
			   "unknown_key=\"anything \\\"quoted\\\"\"";

	g_assert_cmpint(parse(line, NOW_USEC, &l), ==, 0);
	g_assert_cmpstr(l.session, ==, "s1");
	g_assert_cmpstr(l.peer, ==, "[::1]:40000");
	g_assert_cmpstr(l.user, ==, "bob");
	g_assert_cmpstr(l.event, ==, "logout");
	g_assert_cmpstr(l.retr, ==, "2/300");
	g_assert_cmpstr(l.top, ==, "1");
	g_assert_cmpstr(l.dele, ==, "1/100");
	mpop_stats_line_clear(&l);
	/* an mpopd record without an event, and one with nothing after the tag */
	g_assert_cmpint(
		parse("Dec  2 00:42:47 mpopd[1]: msg=\"accepting connections\"", NOW_USEC, &l), ==,
		0);
	g_assert_null(l.event);
	mpop_stats_line_clear(&l);
	g_assert_cmpint(parse("Dec  2 00:42:47 mpopd[1]: ", NOW_USEC, &l), ==, 0);
	mpop_stats_line_clear(&l);
}

/* What mpop_log_append_kv writes comes back unchanged, whatever the bytes. */
static void
test_round_trip(void)
{
	static const char *const values[] = {
		"alice",	"two words", "say \"hi\"",  "back\\slash",
		"line\r\nnext", "tab\there", "caf\xc3\xa9", "bell\a del\x7f",
		"event=forged", "",	     "a\\x41",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(values); i++) {
		g_autoptr(GString) line = g_string_new("<22>Dec  2 00:42:47 mpopd[1]: ");
		g_autoptr(GString) body = g_string_new(NULL);
		MpopStatsLine l;

		mpop_log_append_kv(body, "event", "login-failed");
		mpop_log_append_kv(body, "user", values[i]);
		mpop_log_append_kv(body, "msg", values[i]);
		g_string_append(line, body->str);
		g_assert_cmpint(parse(line->str, NOW_USEC, &l), ==, 0);
		g_assert_cmpstr(l.user, ==, values[i]);
		g_assert_cmpstr(l.event, ==, "login-failed");
		mpop_stats_line_clear(&l);
	}
}

static void
test_other_programs(void)
{
	static const char *const lines[] = {
		"Dec  2 00:42:47 mail sshd[77]: Accepted publickey for root",
		"Dec  2 00:42:47 mail mpopdctl[1]: event=login user=alice",
		"Dec  2 00:42:47 mail xmpopd[1]: event=login user=alice",
		"2026-12-02T00:42:47+00:00 mail postfix/smtpd[1]: connect from x",
		"<22>Dec  2 00:42:47 mpopd[x]: event=login user=alice",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
		MpopStatsLine l;
		g_test_message("%s", lines[i]);
		g_assert_cmpint(parse(lines[i], NOW_USEC, &l), ==, -ENOMSG);
	}
}

static void
test_malformed(void)
{
	static const char *const lines[] = {
		"",
		"garbage",
		"Dec",
		"Dec  2",
		"Dec  2 00:42:47",
		"Dec  2 00:42:47 mpopd[1]:",
		"Dec  2 00:42:47 mpopd[1]:event=login",
		"Dec 32 00:42:47 mpopd[1]: event=login",
		"Dex  2 00:42:47 mpopd[1]: event=login",
		"Dec  2 24:42:47 mpopd[1]: event=login",
		"Dec  2 0:42:47 mpopd[1]: event=login",
		"2026-13-02T00:42:47Z mpopd[1]: event=login",
		"2026-12-02 00:42:47 mpopd[1]: event=login",
		"<999>Dec  2 00:42:47 mpopd[1]: event=login",
		"<22 Dec  2 00:42:47 mpopd[1]: event=login",
		"Dec  2 00:42:47 a b mpopd[1]: event=login",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"alice",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"a\\qb\"",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"a\\x0\"",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"a\\x00b\"",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"a\tb\"",
		"Dec  2 00:42:47 mpopd[1]: event=login user=\"caf\xc3\xa9\"",
		"Dec  2 00:42:47 mpopd[1]: event=login user=alice user=mallory",
		"Dec  2 00:42:47 mpopd[1]: event=login event=logout",
		"Dec  2 00:42:47 mpopd[1]: event=login ",
		"Dec  2 00:42:47 mpopd[1]: event=login  user=alice",
		"Dec  2 00:42:47 mpopd[1]: Event=login",
		"Dec  2 00:42:47 mpopd[1]: event=",
		"Dec  2 00:42:47 mpopd[1]: =login",
		"Dec  2 00:42:47 mpopd[1]: event=log\"in",
		"Dec  2 00:42:47 mpopd[1]: event=\"login\"x",
		"Dec  2 00:42:47 mpopd[1]: logged in",
	};

	for (size_t i = 0; i < G_N_ELEMENTS(lines); i++) {
		MpopStatsLine l;
		g_test_message("%s", lines[i]);
		g_assert_cmpint(parse(lines[i], NOW_USEC, &l), ==, -EINVAL);
	}
}

/* Bounds: a NUL inside the line, every prefix of a valid line, an overlong line. */
static void
test_bounds(void)
{
	static const char good[] = "<22>Dec  2 00:42:47 mpopd[1]: event=login user=\"a b\"";
	g_autofree char *big = g_malloc(MPOP_STATS_LINE_MAX + 2);
	static const char nul[] = "Dec  2 00:42:47 mpopd[1]: event=login\0 user=alice";
	MpopStatsLine l;

	for (gsize n = 0; n < sizeof good - 1; n++) {
		g_autofree char *prefix = g_memdup2(good, n); /* not NUL-terminated */
		int r = mpop_stats_line_parse(prefix, n, utc, NOW_USEC, &l);

		g_assert_true(r == 0 || r == -EINVAL || r == -ENOMSG);
		if (r == 0)
			mpop_stats_line_clear(&l);
	}
	g_assert_cmpint(mpop_stats_line_parse(nul, sizeof nul - 1, utc, NOW_USEC, &l), ==, -EINVAL);
	memset(big, 'a', MPOP_STATS_LINE_MAX + 1);
	memcpy(big, "Dec  2 00:42:47 mpopd[1]: msg=", 30);
	g_assert_cmpint(mpop_stats_line_parse(big, MPOP_STATS_LINE_MAX, utc, NOW_USEC, &l), ==, 0);
	mpop_stats_line_clear(&l);
	g_assert_cmpint(mpop_stats_line_parse(big, MPOP_STATS_LINE_MAX + 1, utc, NOW_USEC, &l), ==,
			-EINVAL);
}

static void
test_count(void)
{
	static const struct {
		const char *s;
		gboolean ok;
		guint64 count, octets;
	} cases[] = {
		{"3/1234567", TRUE, 3, 1234567},
		{"0/0", TRUE, 0, 0},
		{"7", TRUE, 7, 0},
		{"18446744073709551615/18446744073709551615", TRUE, G_MAXUINT64, G_MAXUINT64},
		{"18446744073709551616", FALSE, 0, 0},
		{"", FALSE, 0, 0},
		{"/5", FALSE, 0, 0},
		{"5/", FALSE, 0, 0},
		{"-1/5", FALSE, 0, 0},
		{"+1/5", FALSE, 0, 0},
		{"1/2/3", FALSE, 0, 0},
		{" 1/2", FALSE, 0, 0},
		{"1,234", FALSE, 0, 0},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint64 n = 99, o = 99;

		g_assert_cmpint(mpop_stats_parse_count(cases[i].s, &n, &o), ==, cases[i].ok);
		if (cases[i].ok) {
			g_assert_cmpuint(n, ==, cases[i].count);
			g_assert_cmpuint(o, ==, cases[i].octets);
		} else {
			g_assert_cmpuint(n, ==, 99);
		}
	}
}

int
main(int argc, char **argv)
{
	int r;

	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	utc = g_time_zone_new_utc();
	g_test_add_func("/stats-line/formats", test_formats);
	g_test_add_func("/stats-line/year", test_year);
	g_test_add_func("/stats-line/fields", test_fields);
	g_test_add_func("/stats-line/round-trip", test_round_trip);
	g_test_add_func("/stats-line/other-programs", test_other_programs);
	g_test_add_func("/stats-line/malformed", test_malformed);
	g_test_add_func("/stats-line/bounds", test_bounds);
	g_test_add_func("/stats-line/count", test_count);
	r = g_test_run();
	g_time_zone_unref(utc);
	return r;
}
