/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench: one mailbox read through one session. "retrieve" and "top" fetch every
 * message and check each answer against LIST; "bigbox" times the first answers of logins. */
#include "mpopd-bench.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Errors printed one by one before only the count goes on. */
#define MAX_ERRORS_SHOWN 10

typedef struct {
	const BenchOptions *o;
	BenchConn c;
	char *user;
	const char *pass;
	int n;		/* messages, from STAT */
	guint64 *sizes; /* [1..n] from LIST */
	guint64 octets; /* sum of the sizes */
	double login_s; /* connect to the PASS answer */
	long errors;
} Box;

static void box_error(Box *b, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void
box_error(Box *b, const char *fmt, ...)
{
	va_list ap;

	if (b->errors++ >= MAX_ERRORS_SHOWN)
		return;
	va_start(ap, fmt);
	bench_vwarn(fmt, ap);
	va_end(ap);
}

static void
box_clear(Box *b)
{
	bench_conn_close(&b->c);
	g_free(b->c.buf);
	g_free(b->user);
	g_free(b->sizes);
}

/* Parses "+OK nn mm" (RFC 1939 §5 STAT); -1 if the answer is not that. */
static int
stat_count(const char *line, guint64 *out_octets)
{
	char **f = g_strsplit(line, " ", 4);
	guint64 n = 0, o = 0;
	int rc = -1;

	if (g_strv_length(f) >= 3 && g_ascii_string_to_unsigned(f[1], 10, 0, G_MAXINT, &n, NULL) &&
	    g_ascii_string_to_unsigned(f[2], 10, 0, G_MAXUINT64, &o, NULL)) {
		rc = (int)n;
		*out_octets = o;
	}
	g_strfreev(f);
	return rc;
}

/* LIST's scan listings, one per message in order (RFC 1939 §5). */
static gboolean
read_list(Box *b)
{
	g_autoptr(GString) keep = g_string_new(NULL);
	char line[512], **rows;
	BenchBody body;
	int i = 0;

	if (bench_conn_command(&b->c, "LIST", line, sizeof line) <= 0 ||
	    !bench_conn_body(&b->c, &body, keep)) {
		box_error(b, "LIST: %s", *line ? line : bench_errmsg);
		return FALSE;
	}
	b->sizes = g_new0(guint64, (size_t)b->n + 1);
	rows = g_strsplit(keep->str, "\n", -1);
	for (char **p = rows; *p != NULL && **p != '\0'; p++) {
		guint64 num = 0, size = 0;
		char *sp = strchr(*p, ' ');

		g_strchomp(*p);
		if (sp != NULL)
			*sp++ = '\0';
		if (sp == NULL || !g_ascii_string_to_unsigned(*p, 10, 1, G_MAXINT, &num, NULL) ||
		    !g_ascii_string_to_unsigned(sp, 10, 0, G_MAXUINT64, &size, NULL) ||
		    (int)num != i + 1 || i >= b->n) {
			box_error(b, "LIST line %d is not \"%d SIZE\" for a mailbox of %d", i + 1,
				  i + 1, b->n);
			g_strfreev(rows);
			return FALSE;
		}
		b->sizes[++i] = size;
		b->octets += size;
	}
	g_strfreev(rows);
	if (i != b->n)
		box_error(b, "LIST has %d messages, STAT said %d", i, b->n);
	return i == b->n;
}

/* Connects, logs in as client 0's user, STAT, and LIST if want_list. */
static gboolean
box_open(Box *b, const BenchOptions *o, gboolean want_list)
{
	char line[512];
	guint64 stat_octets = 0;
	double t0 = bench_now();

	b->o = o;
	b->c.fd = -1;
	bench_user(o, 0, &b->user, &b->pass);
	if (!bench_conn_open(&b->c, o) || !bench_login(&b->c, b->user, b->pass)) {
		box_error(b, "%s", bench_errmsg);
		return FALSE;
	}
	b->login_s = bench_now() - t0;
	if (bench_conn_command(&b->c, "STAT", line, sizeof line) <= 0 ||
	    (b->n = stat_count(line, &stat_octets)) < 0) {
		box_error(b, "STAT: %s", *line ? line : bench_errmsg);
		return FALSE;
	}
	if (!want_list)
		return TRUE;
	if (!read_list(b))
		return FALSE;
	if (stat_octets != b->octets)
		box_error(b,
			  "STAT says %" G_GUINT64_FORMAT
			  " octets, LIST adds up to %" G_GUINT64_FORMAT,
			  stat_octets, b->octets);
	return TRUE;
}

/* Checks one RETR or TOP answer against the message's LIST size. */
static gboolean
check_answer(Box *b, const char *verb, int i, const char *line, const BenchBody *body)
{
	guint64 said = 0;
	const char *sp = strchr(line, ' ');

	if (body->defect != NULL)
		box_error(b, "%s %d: %s", verb, i, body->defect);
	if (strcmp(verb, "RETR") == 0) {
		/* "+OK 1234 octets" is a common courtesy; where given it must be true */
		if (sp != NULL && g_str_has_suffix(line, " octets") &&
		    sscanf(sp, " %" G_GUINT64_FORMAT " octets", &said) == 1 && said != body->octets)
			box_error(b,
				  "RETR %d: status line says %" G_GUINT64_FORMAT
				  " octets, %" G_GUINT64_FORMAT " sent",
				  i, said, body->octets);
		if (body->octets != b->sizes[i])
			box_error(b,
				  "RETR %d: %" G_GUINT64_FORMAT
				  " octets sent, LIST said %" G_GUINT64_FORMAT,
				  i, body->octets, b->sizes[i]);
	} else if (body->octets > b->sizes[i]) {
		box_error(b,
			  "TOP %d: %" G_GUINT64_FORMAT
			  " octets, more than the message's %" G_GUINT64_FORMAT,
			  i, body->octets, b->sizes[i]);
	}
	return body->defect == NULL;
}

/* Sends "VERB i[ extra]" for every message, up to o->pipeline commands in flight (RFC 2449
 * §6.6 PIPELINING; 1 = one by one), and checks every answer. Returns the seconds taken, or
 * a negative value if the session broke. */
static double
fetch_all(Box *b, const char *verb, const char *extra)
{
	int sent = 0, done = 0, window = MAX(1, b->o->pipeline);
	double t0 = bench_now(), last = t0;
	char line[512];

	while (done < b->n) {
		if (sent < b->n && sent - done <= window / 2) {
			g_autoptr(GString) batch = g_string_new(NULL);

			while (sent < b->n && sent - done < window)
				g_string_append_printf(batch, "%s %d%s\r\n", verb, ++sent, extra);
			if (!bench_conn_write(&b->c, batch->str, batch->len)) {
				box_error(b, "%s: %s", verb, bench_errmsg);
				return -1;
			}
		}
		BenchBody body;
		int rc = bench_conn_status(&b->c, line, sizeof line);

		done++;
		if (rc <= 0 || !bench_conn_body(&b->c, &body, NULL)) {
			/* after a missing answer the stream cannot be framed any more */
			box_error(b, "%s %d: %s", verb, done, rc == 0 ? line : bench_errmsg);
			return -1;
		}
		check_answer(b, verb, done, line, &body);
		if (bench_now() - last >= 1.0) {
			last = bench_now();
			bench_progress(b->o, "%s: %d of %d messages", verb, done, b->n);
		}
	}
	return bench_now() - t0;
}

static void
box_quit(Box *b)
{
	char line[512];

	if (bench_conn_command(&b->c, "QUIT", line, sizeof line) <= 0)
		box_error(b, "QUIT: %s", *line ? line : bench_errmsg);
}

static int
fetch_mode(const BenchOptions *o, const char *mode, const char *verb, const char *extra)
{
	Box b = {0};
	BenchReport *r;
	double secs;
	guint64 wire0;

	if (!box_open(&b, o, TRUE)) {
		box_clear(&b);
		return 1;
	}
	bench_progress(o, "%s: %d messages, %" G_GUINT64_FORMAT " octets", mode, b.n, b.octets);
	wire0 = b.c.wire;
	secs = fetch_all(&b, verb, extra);
	guint64 wire = b.c.wire - wire0;
	if (secs >= 0)
		box_quit(&b);
	r = bench_report_new(mode, o);
	bench_report_text(r, "user", "user", b.user);
	bench_report_num(r, "messages", "messages", b.n, 0, NULL);
	bench_report_num(r, "octets", "octets (LIST)", (double)b.octets, 0, NULL);
	bench_report_num(r, "wire_bytes", "bytes received", (double)wire, 0, NULL);
	bench_report_num(r, "pipeline", "commands in flight", MAX(1, o->pipeline), 0, NULL);
	bench_report_num(r, "login_ms", "connect to logged in", b.login_s * 1e3, 2, "ms");
	bench_report_num(r, "seconds", "time", secs, 4, "s");
	bench_report_num(r, "mb_per_s", "throughput", secs > 0 ? (double)wire / secs / 1e6 : 0, 1,
			 "MB/s");
	bench_report_num(r, "messages_per_s", "rate", secs > 0 ? b.n / secs : 0, 1, "messages/s");
	bench_report_num(r, "errors", "errors", (double)b.errors, 0, NULL);
	if (b.c.ssl != NULL) {
		g_autofree char *tls = g_strdup_printf("%s %s", SSL_get_version(b.c.ssl),
						       SSL_get_cipher_name(b.c.ssl));
		bench_report_text(r, "tls", "TLS", tls);
	}
	bench_report_print(r, o);
	box_clear(&b);
	return b.errors > 0 || secs < 0;
}

int
bench_retrieve(const BenchOptions *o)
{
	return fetch_mode(o, "retrieve", "RETR", "");
}

int
bench_top(const BenchOptions *o)
{
	g_autofree char *extra = g_strdup_printf(" %d", o->lines);

	return fetch_mode(o, "top", "TOP", extra);
}

/* One login of bigbox: connect to the STAT answer, then UIDL and LIST whole. */
static gboolean
bigbox_once(const BenchOptions *o, double out[3], int *out_n)
{
	Box b = {0};
	BenchBody body;
	char line[512];
	double t0 = bench_now(), t;
	gboolean ok = FALSE;

	if (!box_open(&b, o, FALSE))
		goto out;
	out[0] = bench_now() - t0;
	t = bench_now();
	if (bench_conn_command(&b.c, "UIDL", line, sizeof line) <= 0 ||
	    !bench_conn_body(&b.c, &body, NULL) || (int)body.lines != b.n) {
		box_error(&b, "UIDL: %s (%d messages)", *line ? line : bench_errmsg, b.n);
		goto out;
	}
	out[1] = bench_now() - t;
	t = bench_now();
	if (bench_conn_command(&b.c, "LIST", line, sizeof line) <= 0 ||
	    !bench_conn_body(&b.c, &body, NULL) || (int)body.lines != b.n) {
		box_error(&b, "LIST: %s (%d messages)", *line ? line : bench_errmsg, b.n);
		goto out;
	}
	out[2] = bench_now() - t;
	box_quit(&b);
	*out_n = b.n;
	ok = b.errors == 0;
out:
	box_clear(&b);
	return ok;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
bench_bigbox(const BenchOptions *o)
{
	static const char *const what[3] = {"stat", "uidl", "list"};
	static const char *const label[3] = {"connect to STAT answer", "UIDL", "LIST"};
	int runs = MAX(1, o->repeat), n = 0;
	g_autofree double *v = g_new0(double, (size_t)runs * 3);
	BenchReport *r;

	for (int i = 0; i < runs; i++) {
		if (!bigbox_once(o, v + i * 3, &n))
			return 1;
		bench_progress(o, "bigbox: login %d of %d: STAT after %.1f ms", i + 1, runs,
			       v[i * 3] * 1e3);
	}
	r = bench_report_new("bigbox", o);
	bench_report_num(r, "messages", "messages", n, 0, NULL);
	bench_report_num(r, "logins", "logins", runs, 0, NULL);
	for (int k = 0; k < 3; k++) {
		g_autofree char *key = g_strdup_printf("first_%s_ms", what[k]);
		g_autofree char *lab = g_strdup_printf("%s, first login", label[k]);

		bench_report_num(r, key, lab, v[k] * 1e3, 2, "ms");
	}
	for (int k = 0; k < 3 && runs > 1; k++) {
		g_autofree double *rest = g_new(double, (size_t)runs - 1);
		g_autofree char *key = g_strdup_printf("again_%s_ms", what[k]);
		g_autofree char *lab = g_strdup_printf("%s, median of the others", label[k]);

		for (int i = 1; i < runs; i++)
			rest[i - 1] = v[i * 3 + k];
		qsort(rest, (size_t)runs - 1, sizeof(double), cmp_double);
		bench_report_num(r, key, lab, bench_percentile(rest, (size_t)runs - 1, 50) * 1e3, 2,
				 "ms");
	}
	bench_report_print(r, o);
	return 0;
}
