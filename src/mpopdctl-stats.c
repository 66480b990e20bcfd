/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl stats: per-user sessions, retrievals, deletions and failed logins, and the hosts
 * the host rules denied, counted from the journal or from a syslog file of mpopd records. */
#include "mpopdctl.h"
#include "stats-line.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

/* The events counted; every other record is skipped. */
static const char *const counted_events[] = {"login", "logout", "login-failed", "denied"};

typedef struct {
	guint64 sessions, retrieved, retrieved_octets, top, deleted, deleted_octets, failed;
	gint64 first, last;
} UserCounts;

typedef struct {
	guint64 connections;
	gint64 first, last;
} HostCounts;

typedef struct {
	/* options */
	gint64 since, until; /* inclusive bounds, microseconds since the epoch */
	const char *user;    /* NULL: everyone */
	GPtrArray *files;    /* --file (NULL-terminated) */
	const char *directory;
	GPtrArray *syslogs; /* --syslog */
	gboolean json;
	/* figures */
	GHashTable *users;			  /* name -> UserCounts */
	GHashTable *hosts;			  /* address -> HostCounts */
	guint64 entries;			  /* journal entries or syslog records counted */
	guint64 lines, records, other, malformed; /* syslog input */
} Stats;

static void
seen(gint64 *first, gint64 *last, gint64 usec)
{
	if (*first < 0 || usec < *first)
		*first = usec;
	if (*last < 0 || usec > *last)
		*last = usec;
}

/* The address without the port: "192.0.2.1:110" and "[2001:db8::1]:110" as the listener
 * writes MPOPD_PEER; anything else as it is. */
static char *
host_of(const char *peer)
{
	const char *colon = strrchr(peer, ':');

	if (peer[0] == '[') {
		const char *close = strchr(peer, ']');
		if (close)
			return g_strndup(peer + 1, (gsize)(close - peer - 1));
	}
	if (colon && colon == strchr(peer, ':'))
		return g_strndup(peer, (gsize)(colon - peer));
	return g_strdup(peer);
}

static void
add_count(const char *value, guint64 *count, guint64 *octets)
{
	guint64 n, o;

	/* A logout record from an older mpopd, or a broken value: nothing to add. */
	if (value && mpop_stats_parse_count(value, &n, &o)) {
		*count += n;
		if (octets)
			*octets += o;
	}
}

static gboolean
is_counted(const char *event)
{
	for (size_t i = 0; i < G_N_ELEMENTS(counted_events); i++)
		if (strcmp(event, counted_events[i]) == 0)
			return TRUE;
	return FALSE;
}

/* One record, from whichever source. The filters apply here for both sources (the journal
 * matches only narrow what is read). */
static void
stats_add(Stats *st, gint64 usec, const MpopStatsLine *r)
{
	UserCounts *u;

	/* Times before 1970 only come from a broken or forged line (-1 means "never" here). */
	if (!r->event || !is_counted(r->event) || usec < 0 || usec < st->since || usec > st->until)
		return;
	if (strcmp(r->event, "denied") == 0) {
		g_autofree char *host = host_of(r->peer ? r->peer : "");
		HostCounts *h;

		/* A denied connection never reached a login: it belongs to no user. */
		if (st->user)
			return;
		if (!(h = g_hash_table_lookup(st->hosts, host))) {
			h = g_new0(HostCounts, 1);
			h->first = h->last = -1;
			g_hash_table_insert(st->hosts, g_steal_pointer(&host), h);
		}
		h->connections++;
		seen(&h->first, &h->last, usec);
		st->entries++;
		return;
	}
	if (st->user && g_strcmp0(r->user, st->user) != 0)
		return;
	if (!(u = g_hash_table_lookup(st->users, r->user ? r->user : ""))) {
		u = g_new0(UserCounts, 1);
		u->first = u->last = -1;
		g_hash_table_insert(st->users, g_strdup(r->user ? r->user : ""), u);
	}
	if (strcmp(r->event, "login") == 0)
		u->sessions++;
	else if (strcmp(r->event, "login-failed") == 0)
		u->failed++;
	else {
		add_count(r->retr, &u->retrieved, &u->retrieved_octets);
		add_count(r->top, &u->top, NULL);
		add_count(r->dele, &u->deleted, &u->deleted_octets);
	}
	seen(&u->first, &u->last, usec);
	st->entries++;
}

/* ---- the journal */

static char *
journal_field(sd_journal *j, const char *name)
{
	size_t nlen = strlen(name), len;
	const void *data;

	if (sd_journal_get_data(j, name, &data, &len) < 0 || len <= nlen)
		return NULL;
	return g_strndup((const char *)data + nlen + 1, len - nlen - 1);
}

static int
journal_open(const Stats *st, sd_journal **out)
{
	if (st->files->len > 1)
		return sd_journal_open_files(out, (const char **)st->files->pdata, 0);
	if (st->directory)
		return sd_journal_open_directory(out, st->directory, 0);
	return sd_journal_open(out, SD_JOURNAL_LOCAL_ONLY);
}

/* (MPOPD_EVENT=e1 OR ...) AND _COMM=mpopd [AND MPOPD_USER=user]: the journal itself sets
 * _COMM from the sending process, so a program that is not mpopd cannot add records. */
static int
journal_match(sd_journal *j, const Stats *st)
{
	int r = 0;

	for (size_t i = 0; i < G_N_ELEMENTS(counted_events) && r >= 0; i++) {
		g_autofree char *m = g_strdup_printf("MPOPD_EVENT=%s", counted_events[i]);
		r = sd_journal_add_match(j, m, 0);
	}
	if (r >= 0)
		r = sd_journal_add_match(j, "_COMM=mpopd", 0);
	if (r >= 0 && st->user) {
		g_autofree char *m = g_strdup_printf("MPOPD_USER=%s", st->user);
		r = sd_journal_add_match(j, m, 0);
	}
	return r;
}

static int
read_journal(Stats *st)
{
	sd_journal *j = NULL;
	int r;

	if ((r = journal_open(st, &j)) < 0) {
		g_autofree char *what =
			st->files->len > 1
				? g_strjoinv(", ", (char **)st->files->pdata)
				: g_strdup(st->directory ? st->directory : "the journal");

		fprintf(stderr, "mpopdctl: cannot open %s: %s\n", what, g_strerror(-r));
		/* journalctl -o export output is a stream, not a journal file. */
		if (r == -EBADMSG && st->files->len > 1)
			fprintf(stderr,
				"mpopdctl: to read journal export format, convert it first: "
				"/lib/systemd/systemd-journal-remote -o NAME.journal FILE\n");
		return 1;
	}
	r = journal_match(j, st);
	if (r >= 0)
		r = st->since > G_MININT64 ? sd_journal_seek_realtime_usec(j, (guint64)st->since)
					   : sd_journal_seek_head(j);
	while (r >= 0 && (r = sd_journal_next(j)) > 0) {
		MpopStatsLine rec = {0};
		guint64 usec;

		if (sd_journal_get_realtime_usec(j, &usec) < 0 || usec > G_MAXINT64)
			continue;
		rec.event = journal_field(j, "MPOPD_EVENT");
		rec.user = journal_field(j, "MPOPD_USER");
		rec.peer = journal_field(j, "MPOPD_PEER");
		rec.retr = journal_field(j, "MPOPD_RETR");
		rec.top = journal_field(j, "MPOPD_TOP");
		rec.dele = journal_field(j, "MPOPD_DELE");
		stats_add(st, (gint64)usec, &rec);
		mpop_stats_line_clear(&rec);
	}
	sd_journal_close(j);
	if (r < 0) {
		fprintf(stderr, "mpopdctl: reading the journal: %s\n", g_strerror(-r));
		return 1;
	}
	if (st->entries == 0 && st->files->len == 1 && !st->directory && geteuid() != 0)
		fprintf(stderr, "mpopdctl: no mpopd records found; reading the system journal "
				"needs root or the systemd-journal (or adm) group\n");
	return 0;
}

/* ---- a syslog file */

static int
read_syslog(Stats *st, const char *path)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	gint64 now = g_get_real_time();
	g_autofree char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	if (!f) {
		fprintf(stderr, "mpopdctl: cannot open %s: %s\n", path, g_strerror(errno));
		return 1;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		MpopStatsLine rec;
		int r;

		if (n > 0 && line[n - 1] == '\n')
			n--;
		st->lines++;
		r = mpop_stats_line_parse(line, (gsize)n, NULL, now, &rec);
		if (r == -ENOMSG) {
			st->other++;
			continue;
		}
		if (r < 0) {
			st->malformed++;
			continue;
		}
		st->records++;
		stats_add(st, rec.usec, &rec);
		mpop_stats_line_clear(&rec);
	}
	if (ferror(f)) {
		fprintf(stderr, "mpopdctl: reading %s: %s\n", path, g_strerror(errno));
		if (f != stdin)
			fclose(f);
		return 1;
	}
	if (f != stdin)
		fclose(f);
	return 0;
}

/* ---- output */

static int
compare_keys(gconstpointer a, gconstpointer b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of a table, sorted; free the array only (the keys stay the table's). */
static const char **
sorted_keys(GHashTable *t, guint *out_n)
{
	const char **keys = (const char **)g_hash_table_get_keys_as_array(t, out_n);

	qsort(keys, *out_n, sizeof *keys, compare_keys);
	return keys;
}

static char *
format_time(gint64 usec, gboolean json)
{
	g_autoptr(GDateTime) dt = NULL;

	if (usec < 0)
		return g_strdup(json ? "null" : "-");
	dt = json ? g_date_time_new_from_unix_utc(usec / G_USEC_PER_SEC)
		  : g_date_time_new_from_unix_local(usec / G_USEC_PER_SEC);
	if (!dt)
		return g_strdup(json ? "null" : "-");
	return g_date_time_format(dt, json ? "\"%Y-%m-%dT%H:%M:%SZ\"" : "%Y-%m-%d %H:%M:%S");
}

static void
total_of(Stats *st, UserCounts *t)
{
	GHashTableIter it;
	gpointer v;

	*t = (UserCounts){.first = -1, .last = -1};
	g_hash_table_iter_init(&it, st->users);
	while (g_hash_table_iter_next(&it, NULL, &v)) {
		const UserCounts *u = v;
		t->sessions += u->sessions;
		t->retrieved += u->retrieved;
		t->retrieved_octets += u->retrieved_octets;
		t->top += u->top;
		t->deleted += u->deleted;
		t->deleted_octets += u->deleted_octets;
		t->failed += u->failed;
		if (u->first >= 0)
			seen(&t->first, &t->last, u->first);
		if (u->last >= 0)
			seen(&t->first, &t->last, u->last);
	}
}

/* ASCII only: a name the journal holds may be any bytes. */
static void
json_string(GString *out, const char *s)
{
	g_string_append_c(out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			g_string_append_printf(out, "\\%c", *p);
		else if (*p < 0x20 || *p > 0x7e)
			g_string_append_printf(out, "\\u%04x", *p);
		else
			g_string_append_c(out, (char)*p);
	}
	g_string_append_c(out, '"');
}

static void
json_counts(GString *out, const UserCounts *u)
{
	g_autofree char *first = format_time(u->first, TRUE);
	g_autofree char *last = format_time(u->last, TRUE);

	g_string_append_printf(
		out,
		"\"sessions\": %" G_GUINT64_FORMAT ", \"retrieved\": %" G_GUINT64_FORMAT
		", \"retrieved_octets\": %" G_GUINT64_FORMAT ", \"top\": %" G_GUINT64_FORMAT
		", \"deleted\": %" G_GUINT64_FORMAT ", \"deleted_octets\": %" G_GUINT64_FORMAT
		", \"failed_logins\": %" G_GUINT64_FORMAT ", \"first_seen\": %s, \"last_seen\": %s",
		u->sessions, u->retrieved, u->retrieved_octets, u->top, u->deleted,
		u->deleted_octets, u->failed, first, last);
}

static void
print_json(Stats *st)
{
	g_autoptr(GString) out = g_string_new("{\n  \"users\": [");
	guint n_users, n_hosts;
	g_autofree const char **users = sorted_keys(st->users, &n_users);
	g_autofree const char **hosts = sorted_keys(st->hosts, &n_hosts);
	guint64 denied = 0;
	gint64 dfirst = -1, dlast = -1;
	UserCounts t;

	for (guint i = 0; i < n_users; i++) {
		g_string_append(out, i ? ",\n    {\"user\": " : "\n    {\"user\": ");
		json_string(out, users[i]);
		g_string_append(out, ", ");
		json_counts(out, g_hash_table_lookup(st->users, users[i]));
		g_string_append_c(out, '}');
	}
	g_string_append(out,
			n_users ? "\n  ],\n  \"denied_hosts\": [" : "],\n  \"denied_hosts\": [");
	for (guint i = 0; i < n_hosts; i++) {
		const HostCounts *h = g_hash_table_lookup(st->hosts, hosts[i]);
		g_autofree char *first = format_time(h->first, TRUE);
		g_autofree char *last = format_time(h->last, TRUE);

		g_string_append(out, i ? ",\n    {\"host\": " : "\n    {\"host\": ");
		json_string(out, hosts[i]);
		g_string_append_printf(out,
				       ", \"connections\": %" G_GUINT64_FORMAT
				       ", \"first_seen\": %s, \"last_seen\": %s}",
				       h->connections, first, last);
		denied += h->connections;
		seen(&dfirst, &dlast, h->first);
		seen(&dfirst, &dlast, h->last);
	}
	total_of(st, &t);
	if (dfirst >= 0) {
		seen(&t.first, &t.last, dfirst);
		seen(&t.first, &t.last, dlast);
	}
	g_string_append(out, n_hosts ? "\n  ],\n  \"totals\": {" : "],\n  \"totals\": {");
	g_string_append_printf(out, "\"users\": %u, ", n_users);
	json_counts(out, &t);
	g_string_append_printf(
		out, ", \"denied_connections\": %" G_GUINT64_FORMAT ", \"denied_hosts\": %u},\n",
		denied, n_hosts);
	if (st->syslogs->len)
		g_string_append_printf(
			out,
			"  \"input\": {\"source\": \"syslog\", \"lines\": %" G_GUINT64_FORMAT
			", \"records\": %" G_GUINT64_FORMAT ", \"other\": %" G_GUINT64_FORMAT
			", \"malformed\": %" G_GUINT64_FORMAT ", \"counted\": %" G_GUINT64_FORMAT
			"}\n}\n",
			st->lines, st->records, st->other, st->malformed, st->entries);
	else
		g_string_append_printf(
			out,
			"  \"input\": {\"source\": \"journal\", \"counted\": %" G_GUINT64_FORMAT
			"}\n}\n",
			st->entries);
	fputs(out->str, stdout);
}

/* Rows of cells, columns padded to their widest cell; numbers right-aligned. */
static void
print_table(GPtrArray *rows, guint ncols, const gboolean *right)
{
	g_autofree gsize *width = g_new0(gsize, ncols);

	for (guint r = 0; r < rows->len; r++) {
		char **cells = g_ptr_array_index(rows, r);
		for (guint c = 0; c < ncols; c++)
			width[c] = MAX(width[c], strlen(cells[c]));
	}
	for (guint r = 0; r < rows->len; r++) {
		char **cells = g_ptr_array_index(rows, r);
		g_autoptr(GString) line = g_string_new(NULL);

		for (guint c = 0; c < ncols; c++) {
			gsize pad = width[c] - strlen(cells[c]);

			if (c)
				g_string_append(line, "  ");
			if (right[c])
				g_string_append_printf(line, "%*s", (int)pad, "");
			g_string_append(line, cells[c]);
			if (!right[c] && c + 1 < ncols)
				g_string_append_printf(line, "%*s", (int)pad, "");
		}
		puts(line->str);
	}
}

static char *
num(guint64 v)
{
	return g_strdup_printf("%" G_GUINT64_FORMAT, v);
}

static GStrv
user_row(const char *name, const UserCounts *u)
{
	GStrv row = g_new0(char *, 9);

	row[0] = g_strdup(name);
	row[1] = num(u->sessions);
	row[2] = num(u->retrieved);
	row[3] = num(u->retrieved_octets);
	row[4] = num(u->deleted);
	row[5] = num(u->failed);
	row[6] = format_time(u->first, FALSE);
	row[7] = format_time(u->last, FALSE);
	return row;
}

static void
print_users(Stats *st)
{
	static const char *const head[] = {"USER",   "SESSIONS",   "RETRIEVED", "OCTETS", "DELETED",
					   "FAILED", "FIRST SEEN", "LAST SEEN", NULL};
	static const gboolean right[] = {FALSE, TRUE, TRUE, TRUE, TRUE, TRUE, FALSE, FALSE};
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	guint n;
	g_autofree const char **users = sorted_keys(st->users, &n);
	g_autofree char *label = NULL;
	UserCounts t;

	g_ptr_array_add(rows, g_strdupv((char **)head));
	for (guint i = 0; i < n; i++) {
		/* Names are shown escaped: the journal may hold any bytes. */
		g_autofree char *name =
			*users[i] ? mpop_escape_excerpt(users[i], strlen(users[i]), 128)
				  : g_strdup("-");
		g_ptr_array_add(rows, user_row(name, g_hash_table_lookup(st->users, users[i])));
	}
	total_of(st, &t);
	label = g_strdup_printf("total (%u user%s)", n, n == 1 ? "" : "s");
	g_ptr_array_add(rows, user_row(label, &t));
	print_table(rows, G_N_ELEMENTS(right), right);
}

static void
print_hosts(Stats *st)
{
	static const char *const head[] = {"DENIED HOST", "CONNECTIONS", "FIRST SEEN", "LAST SEEN",
					   NULL};
	static const gboolean right[] = {FALSE, TRUE, FALSE, FALSE};
	g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func((GDestroyNotify)g_strfreev);
	guint n;
	g_autofree const char **hosts = sorted_keys(st->hosts, &n);
	guint64 total = 0;
	gint64 first = -1, last = -1;

	g_ptr_array_add(rows, g_strdupv((char **)head));
	for (guint i = 0; i < n; i++) {
		const HostCounts *h = g_hash_table_lookup(st->hosts, hosts[i]);
		GStrv row = g_new0(char *, 5);

		row[0] = *hosts[i] ? mpop_escape_excerpt(hosts[i], strlen(hosts[i]), 128)
				   : g_strdup("-");
		row[1] = num(h->connections);
		row[2] = format_time(h->first, FALSE);
		row[3] = format_time(h->last, FALSE);
		g_ptr_array_add(rows, row);
		total += h->connections;
		seen(&first, &last, h->first);
		seen(&first, &last, h->last);
	}
	{
		GStrv row = g_new0(char *, 5);
		row[0] = g_strdup_printf("total (%u host%s)", n, n == 1 ? "" : "s");
		row[1] = num(total);
		row[2] = format_time(first, FALSE);
		row[3] = format_time(last, FALSE);
		g_ptr_array_add(rows, row);
	}
	print_table(rows, G_N_ELEMENTS(right), right);
}

static void
print_text(Stats *st)
{
	print_users(st);
	/* Denied connections never reached a login, so they are left out for one user. */
	if (!st->user) {
		putchar('\n');
		print_hosts(st);
	}
	if (st->syslogs->len)
		printf("\n%" G_GUINT64_FORMAT " lines read: %" G_GUINT64_FORMAT
		       " mpopd records (%" G_GUINT64_FORMAT " counted), %" G_GUINT64_FORMAT
		       " lines of other programs, %" G_GUINT64_FORMAT " malformed lines ignored\n",
		       st->lines, st->records, st->entries, st->other, st->malformed);
}

/* ---- options */

/* "@SECONDS", "now", "today", "yesterday", "YYYY-MM-DD" (midnight), "YYYY-MM-DD HH:MM[:SS]"
 * or ISO 8601 with "T" and an optional zone; local time unless the value names a zone. */
static gboolean
parse_when(const char *s, gint64 *out_usec)
{
	g_autoptr(GTimeZone) tz = g_time_zone_new_local();
	g_autoptr(GDateTime) now = g_date_time_new_now(tz);
	g_autoptr(GDateTime) dt = NULL;
	guint64 secs;

	if (s[0] == '@') {
		if (!g_ascii_string_to_unsigned(s + 1, 10, 0, G_MAXINT64 / G_USEC_PER_SEC, &secs,
						NULL))
			return FALSE;
		*out_usec = (gint64)secs * G_USEC_PER_SEC;
		return TRUE;
	}
	if (strcmp(s, "now") == 0) {
		dt = g_date_time_ref(now);
	} else if (strcmp(s, "today") == 0 || strcmp(s, "yesterday") == 0) {
		g_autoptr(GDateTime) midnight =
			g_date_time_new(tz, g_date_time_get_year(now), g_date_time_get_month(now),
					g_date_time_get_day_of_month(now), 0, 0, 0);
		dt = midnight ? g_date_time_add_days(midnight, s[0] == 'y' ? -1 : 0) : NULL;
	} else {
		g_autoptr(GString) iso = g_string_new(s);

		if (iso->len == 10)
			g_string_append(iso, "T00:00:00");
		else if (iso->len > 10 && iso->str[10] == ' ')
			iso->str[10] = 'T';
		if (iso->len == 16)
			g_string_append(iso, ":00");
		dt = g_date_time_new_from_iso8601(iso->str, tz);
	}
	if (!dt)
		return FALSE;
	*out_usec = g_date_time_to_unix(dt) * G_USEC_PER_SEC + g_date_time_get_microsecond(dt);
	return TRUE;
}

static void
stats_usage(FILE *f)
{
	fprintf(f,
		"Usage: mpopdctl stats [--since TIME] [--until TIME] [--user NAME] [--json]\n"
		"                      [--file JOURNAL]... | [--directory DIR] | [--syslog "
		"FILE]...\n\n"
		"Sessions, messages and octets retrieved, messages deleted and failed logins per\n"
		"user, and the hosts the host rules denied, from the journal (default: this "
		"host's)\n"
		"or from syslog files of mpopd records ([log] target=syslog; \"-\" is stdin).\n"
		"TIME: YYYY-MM-DD [HH:MM[:SS]], ISO 8601, @SECONDS, now, today, yesterday.\n");
}

static gboolean
stats_options(Stats *st, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"since", required_argument, NULL, 'S'},
		{"until", required_argument, NULL, 'U'},
		{"user", required_argument, NULL, 'u'},
		{"file", required_argument, NULL, 'F'},
		{"directory", required_argument, NULL, 'D'},
		{"syslog", required_argument, NULL, 'L'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;

	optind = 0; /* glibc: 0 starts a new scan (mpopdctl's own stopped at the verb) */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
		case 'U':
			if (!parse_when(optarg, c == 'S' ? &st->since : &st->until)) {
				fprintf(stderr, "mpopdctl: stats: \"%s\" is not a time\n", optarg);
				return FALSE;
			}
			break;
		case 'u':
			st->user = optarg;
			break;
		case 'F':
			g_ptr_array_insert(st->files, (gint)st->files->len - 1, optarg);
			break;
		case 'D':
			st->directory = optarg;
			break;
		case 'L':
			g_ptr_array_add(st->syslogs, optarg);
			break;
		case 'j':
			st->json = TRUE;
			break;
		case 'h':
			stats_usage(stdout);
			exit(0);
		default:
			return FALSE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mpopdctl: stats: unexpected argument \"%s\"\n", argv[optind]);
		return FALSE;
	}
	if ((st->files->len > 1) + (st->directory != NULL) + (st->syslogs->len > 0) > 1) {
		fprintf(stderr, "mpopdctl: stats: --file, --directory and --syslog exclude each "
				"other\n");
		return FALSE;
	}
	return TRUE;
}

int
mpop_ctl_stats(int argc, char **argv)
{
	Stats st = {.since = G_MININT64, .until = G_MAXINT64};
	g_autoptr(GPtrArray) files = g_ptr_array_new();
	g_autoptr(GPtrArray) syslogs = g_ptr_array_new();
	g_autoptr(GHashTable) users =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	g_autoptr(GHashTable) hosts =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	int r = 0;

	g_ptr_array_add(files, NULL);
	st.files = files;
	st.syslogs = syslogs;
	st.users = users;
	st.hosts = hosts;
	if (!stats_options(&st, argc, argv)) {
		stats_usage(stderr);
		return 2;
	}
	if (st.syslogs->len == 0)
		r = read_journal(&st);
	for (guint i = 0; i < st.syslogs->len && r == 0; i++)
		r = read_syslog(&st, g_ptr_array_index(st.syslogs, i));
	if (r != 0)
		return r;
	if (st.json)
		print_json(&st);
	else
		print_text(&st);
	return fflush(stdout) == 0 ? 0 : 1;
}
