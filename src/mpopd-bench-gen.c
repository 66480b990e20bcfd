/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench generate: a deterministic mailbox for benchmarks and tests. The same seed and
 * count give the same messages byte for byte, as a Maildir or as an mbox (mboxrd). */
#include "mpopd-bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* splitmix64: small, fast, and the same on every platform (GRand's sequence is GLib's). */
typedef struct {
	guint64 s;
} Rng;

static guint64
rng_next(Rng *r)
{
	guint64 z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* lo..hi inclusive */
static guint64
rng_range(Rng *r, guint64 lo, guint64 hi)
{
	return lo + rng_next(r) % (hi - lo + 1);
}

/* What a mailbox holds: mostly short text, a tail of attachments that carries most of
 * the bytes (about 70 KB a message on average). */
static const struct {
	int weight;
	guint32 lo, hi;
	gboolean attachment;
} size_classes[] = {
	{46, 1000, 6000, FALSE},   {25, 6000, 30000, FALSE},   {19, 30000, 150000, TRUE},
	{9, 150000, 600000, TRUE}, {1, 600000, 2500000, TRUE},
};

static const char *const words[] = {
	"the",	   "mail",     "server",  "message", "report", "meeting", "tomorrow", "please",
	"review",  "attached", "numbers", "quarter", "budget", "project", "status",   "update",
	"thanks",  "regards",  "about",	  "with",    "from",   "for",	  "and",      "that",
	"this",	   "will",     "have",	  "been",    "would",  "could",	  "should",   "next",
	"week",	   "office",   "team",	  "plan",    "draft",  "final",	  "version",  "change",
	"request", "Grüße",    "café",	  "naïve",   "déjà",   "vu",	  "over",     "under",
	"between", "before",   "after",	  "again",   "every",  "other",	  "some",     "many",
};

static const char *const names[] = {
	"Alice Martin", "Bob Schmidt",	  "Carol Dubois", "Dave Rossi",	 "Erin Novak",
	"Frank Olsen",	"Grace Kowalski", "Heidi Berg",	  "Ivan Petrov", "Judy Santos",
};

/* Lines that test a server's framing: RFC 1939 §3 byte-stuffing and mbox "From " lines. */
static const char *const tricky_lines[] = {
	".",
	"..",
	".leading dot on a line",
	"..two leading dots",
	"From the desk of the editor:",
	">From a line quoted once",
	">>From a line quoted twice",
	"From",
};

typedef struct {
	guint64 messages, bytes, largest, smallest, attachments, tricky;
} GenStats;

static const char *
pick(Rng *r, const char *const *list, size_t n)
{
	return list[rng_next(r) % n];
}

#define PICK(r, list) pick(r, list, G_N_ELEMENTS(list))

static void
append_words(GString *m, Rng *r, size_t len)
{
	size_t start = m->len;

	while (m->len - start < len) {
		if (m->len > start)
			g_string_append_c(m, ' ');
		g_string_append(m, PICK(r, words));
	}
}

/* Paragraphs of wrapped text up to about target bytes; all_tricky puts every framing case
 * into the first paragraph, otherwise one paragraph in six gets one of them. */
static void
append_text(GString *m, Rng *r, size_t target, gboolean all_tricky, GenStats *st)
{
	size_t start = m->len;
	gboolean first = TRUE;

	while (m->len - start < target) {
		int lines = (int)rng_range(r, 2, 8);

		if (first && all_tricky) {
			for (size_t i = 0; i < G_N_ELEMENTS(tricky_lines); i++)
				g_string_append_printf(m, "%s\n", tricky_lines[i]);
			st->tricky += G_N_ELEMENTS(tricky_lines);
		} else if (rng_next(r) % 6 == 0) {
			g_string_append_printf(m, "%s\n", PICK(r, tricky_lines));
			st->tricky++;
		}
		first = FALSE;
		for (int i = 0; i < lines; i++) {
			append_words(m, r, rng_range(r, 30, 70));
			g_string_append_c(m, '\n');
		}
		g_string_append_c(m, '\n');
	}
}

/* RFC 2045 §6.8: base64 in lines of 76 characters. */
static void
append_base64(GString *m, Rng *r, size_t raw)
{
	g_autofree guchar *bin = g_malloc(raw + 8);
	g_autofree char *b64 = NULL;
	size_t len;

	for (size_t i = 0; i < raw; i += 8) {
		guint64 v = rng_next(r);
		memcpy(bin + i, &v, 8);
	}
	b64 = g_base64_encode(bin, raw);
	len = strlen(b64);
	for (size_t i = 0; i < len; i += 76) {
		g_string_append_len(m, b64 + i, (gssize)MIN(76, len - i));
		g_string_append_c(m, '\n');
	}
}

static void
rfc5322_date(time_t t, char *buf, size_t size)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Message number i (from 1) of the mailbox; t is its delivery time. */
static GString *
make_message(Rng *r, guint64 i, time_t t, GenStats *st)
{
	GString *m = g_string_new(NULL);
	int total = 0, w, k = 0;
	guint64 target;
	const char *from = PICK(r, names);
	g_autofree char *addr = g_ascii_strdown(from, -1);
	char date[64];

	*strchr(addr, ' ') = '.';
	for (size_t c = 0; c < G_N_ELEMENTS(size_classes); c++)
		total += size_classes[c].weight;
	for (w = (int)(rng_next(r) % (guint64)total); w >= size_classes[k].weight; k++)
		w -= size_classes[k].weight;
	target = rng_range(r, size_classes[k].lo, size_classes[k].hi);
	rfc5322_date(t, date, sizeof date);
	g_string_append_printf(
		m,
		"Return-Path: <%s@example.net>\n"
		"Received: from mx%u.example.net (mx%u.example.net [192.0.2.%u])\n"
		"\tby mail.example.org (Postfix) with ESMTPS id %08X\n"
		"\tfor <user@example.org>; %s\n"
		"Date: %s\nFrom: %s <%s@example.net>\nTo: Bench User <user@example.org>\n"
		"Subject: ",
		addr, (unsigned)(i % 4), (unsigned)(i % 4), (unsigned)(i % 200 + 1),
		(unsigned)rng_next(r), date, date, from, addr);
	append_words(m, r, rng_range(r, 10, 60));
	g_string_append_printf(m,
			       "\nMessage-ID: <%016" G_GINT64_MODIFIER "x.%" G_GUINT64_FORMAT
			       "@example.net>\nMIME-Version: 1.0\n",
			       rng_next(r), i);
	if (!size_classes[k].attachment) {
		g_string_append(m, "Content-Type: text/plain; charset=utf-8\n"
				   "Content-Transfer-Encoding: 8bit\n\n");
		append_text(m, r, target > m->len ? target - m->len : 1, i % 10 == 3, st);
	} else {
		g_string_append_printf(
			m,
			"Content-Type: multipart/mixed; boundary=\"=_bench_%" G_GUINT64_FORMAT
			"\"\n\nThis is a multi-part message in MIME format.\n\n"
			"--=_bench_%" G_GUINT64_FORMAT "\n"
			"Content-Type: text/plain; charset=utf-8\n"
			"Content-Transfer-Encoding: 8bit\n\n",
			i, i);
		append_text(m, r, rng_range(r, 300, 3000), i % 10 == 3, st);
		g_string_append_printf(
			m,
			"--=_bench_%" G_GUINT64_FORMAT "\n"
			"Content-Type: application/pdf; name=\"report-%" G_GUINT64_FORMAT
			".pdf\"\nContent-Transfer-Encoding: base64\n"
			"Content-Disposition: attachment; filename=\"report-%" G_GUINT64_FORMAT
			".pdf\"\n\n",
			i, i, i);
		append_base64(m, r, target > m->len ? (target - m->len) * 3 / 4 : 57);
		g_string_append_printf(m, "--=_bench_%" G_GUINT64_FORMAT "--\n", i);
		st->attachments++;
	}
	st->messages++;
	st->bytes += m->len;
	st->largest = MAX(st->largest, m->len);
	st->smallest = st->smallest == 0 ? m->len : MIN(st->smallest, m->len);
	return m;
}

static gboolean
write_file(const char *path, const char *data, size_t len)
{
	g_autoptr(GError) err = NULL;

	if (!g_file_set_contents_full(path, data, (gssize)len, G_FILE_SET_CONTENTS_NONE, 0600,
				      &err)) {
		fprintf(stderr, "mpopd-bench: %s\n", err->message);
		return FALSE;
	}
	return TRUE;
}

static guint64
count_lf(const GString *m)
{
	guint64 n = 0;

	for (const char *p = m->str; (p = memchr(p, '\n', m->len - (size_t)(p - m->str))); p++)
		n++;
	return n;
}

/* Delivered the way a delivery agent does it: written in tmp/, renamed into new/ (the
 * newest tenth) or cur/ with the seen flag. */
static gboolean
maildir_add(const BenchOptions *o, const GString *m, guint64 i, time_t t)
{
	gboolean is_new = i > (guint64)o->messages - (guint64)o->messages / 10;
	g_autofree char *base =
		g_strdup_printf("%lld.M%06" G_GUINT64_FORMAT "P%u.bench.example.org", (long long)t,
				i, (unsigned)(1000 + i % 30000));
	g_autofree char *name = NULL, *tmp = NULL, *dest = NULL;

	if (o->name_sizes)
		name = g_strdup_printf("%s,S=%zu,W=%" G_GUINT64_FORMAT, base, m->len,
				       (guint64)m->len + count_lf(m));
	else
		name = g_strdup(base);
	tmp = g_build_filename(o->maildir, "tmp", name, NULL);
	dest = g_strdup_printf("%s/%s/%s%s", o->maildir, is_new ? "new" : "cur", name,
			       is_new ? "" : ":2,S");
	if (!write_file(tmp, m->str, m->len))
		return FALSE;
	if (rename(tmp, dest) < 0) {
		fprintf(stderr, "mpopd-bench: rename %s: %s\n", dest, g_strerror(errno));
		return FALSE;
	}
	return TRUE;
}

/* mboxrd: a From_ line, the message with every line matching ^>*From quoted with one more
 * '>', and an empty line after it. */
static void
mbox_add(GString *out, const GString *m, time_t t)
{
	struct tm tm;
	char date[64];
	const char *p = m->str, *end = m->str + m->len;

	gmtime_r(&t, &tm);
	strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm);
	g_string_append_printf(out, "From sender@example.net %s\n", date);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *q = p;
		size_t len = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		while (q < p + len && *q == '>')
			q++;
		if ((size_t)(p + len - q) >= 5 && memcmp(q, "From ", 5) == 0)
			g_string_append_c(out, '>');
		g_string_append_len(out, p, (gssize)len);
		p += len;
	}
	g_string_append_c(out, '\n');
}

static gboolean
prepare(const BenchOptions *o)
{
	struct stat st;

	if (o->mbox != NULL) {
		if (stat(o->mbox, &st) == 0 && st.st_size > 0) {
			fprintf(stderr, "mpopd-bench: %s exists and is not empty\n", o->mbox);
			return FALSE;
		}
		return TRUE;
	}
	for (const char *const *sub = (const char *const[]){"cur", "new", "tmp", NULL}; *sub;
	     sub++) {
		g_autofree char *d = g_build_filename(o->maildir, *sub, NULL);
		g_autoptr(GDir) dir = NULL;

		if (g_mkdir_with_parents(d, 0700) < 0) {
			fprintf(stderr, "mpopd-bench: %s: %s\n", d, g_strerror(errno));
			return FALSE;
		}
		dir = g_dir_open(d, 0, NULL);
		if (dir != NULL && g_dir_read_name(dir) != NULL) {
			fprintf(stderr, "mpopd-bench: %s is not empty\n", d);
			return FALSE;
		}
	}
	return TRUE;
}

static FILE *
mbox_open(const char *path)
{
	FILE *f = fopen(path, "we");

	if (f == NULL)
		fprintf(stderr, "mpopd-bench: %s: %s\n", path, g_strerror(errno));
	else
		fchmod(fileno(f), 0600);
	return f;
}

static gboolean
mbox_finish(FILE *f, const char *path)
{
	if (ferror(f) || fclose(f) != 0) {
		fprintf(stderr, "mpopd-bench: writing %s failed\n", path);
		return FALSE;
	}
	return TRUE;
}

static void
report(const BenchOptions *o, const GenStats *st)
{
	BenchReport *rep = bench_report_new("generate", &(BenchOptions){.json = o->json});
	double n = (double)st->messages;

	bench_report_text(rep, "path", o->mbox ? "mbox" : "Maildir",
			  o->mbox ? o->mbox : o->maildir);
	bench_report_num(rep, "seed", "seed", (double)o->seed, 0, NULL);
	bench_report_num(rep, "messages", "messages", n, 0, NULL);
	bench_report_num(rep, "bytes", "bytes (messages as stored)", (double)st->bytes, 0, NULL);
	bench_report_num(rep, "mean_bytes", "mean size", n > 0 ? (double)st->bytes / n : 0, 0,
			 "bytes");
	bench_report_num(rep, "smallest_bytes", "smallest", (double)st->smallest, 0, "bytes");
	bench_report_num(rep, "largest_bytes", "largest", (double)st->largest, 0, "bytes");
	bench_report_num(rep, "attachments", "with a base64 attachment", (double)st->attachments, 0,
			 NULL);
	bench_report_num(rep, "tricky_lines", "dot and From lines", (double)st->tricky, 0, NULL);
	bench_report_print(rep, o);
}

int
bench_generate(const BenchOptions *o)
{
	Rng r = {o->seed};
	GenStats st = {0};
	g_autoptr(GString) entry = g_string_new(NULL);
	FILE *mbox = NULL;

	if (!prepare(o) || (o->mbox != NULL && (mbox = mbox_open(o->mbox)) == NULL))
		return 1;
	for (guint64 i = 1; i <= (guint64)o->messages; i++) {
		/* one message an hour or so from 2023-11-14 on */
		time_t t = (time_t)(1700000000 + i * 3600 + rng_range(&r, 0, 3599));
		g_autoptr(GString) m = make_message(&r, i, t, &st);

		if (mbox != NULL) {
			g_string_truncate(entry, 0);
			mbox_add(entry, m, t);
			fwrite(entry->str, 1, entry->len, mbox);
		} else if (!maildir_add(o, m, i, t)) {
			return 1;
		}
		if (i % 1000 == 0)
			bench_progress(o, "generate: %" G_GUINT64_FORMAT " of %ld messages", i,
				       o->messages);
	}
	if (mbox != NULL && !mbox_finish(mbox, o->mbox))
		return 1;
	report(o, &st);
	return 0;
}
