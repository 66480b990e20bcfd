/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the mbox backend: boundaries, sizes, UIDLs, modes, safe UPDATE, crashes, ENOSPC. */
#include "mailbox-mbox.h"
#include "stream-writer.h"
#include "lock.h"
#include "privsep.h"
#include "util.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- fixtures ---- */

typedef struct {
	char *dir;
	char *path;
	char *lockpath;
	MpopConfig *cfg;
} Fixture;

static char src_x_uidl[] = "x-uidl", src_msgid[] = "message-id", src_digest[] = "digest";
static char *default_uidl_source[] = {src_x_uidl, src_msgid, src_digest, NULL};

/* The documented defaults of the [mailbox] keys, set by hand so that these tests do not
 * depend on config.c. */
static MpopConfig *
test_config(const char *spool)
{
	MpopConfig *cfg = g_new0(MpopConfig, 1);

	cfg->format = MPOP_FORMAT_MBOX;
	cfg->message_start = g_strdup("^From ");
	cfg->message_end = g_strdup("^\\s*$");
	cfg->from_quoting = MPOP_FROM_MBOXRD;
	cfg->mbox_locks = MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL;
	cfg->lock_retries = 2;
	cfg->lock_wait_ms = 20;
	cfg->lock_stale_age = 300;
	cfg->mbox_mode = MPOP_MBOX_SNAPSHOT;
	cfg->spool_dir = g_strdup(spool);
	cfg->uidl_source = default_uidl_source;
	cfg->mbox_index = TRUE;
	return cfg;
}

static void
config_free(MpopConfig *cfg)
{
	g_free(cfg->message_start);
	g_free(cfg->message_end);
	g_free(cfg->spool_dir);
	g_free(cfg);
}

static void
rm_rf(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);
	const char *n;

	while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(path, n, NULL);
		if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
			rm_rf(p);
		else
			unlink(p);
	}
	if (d != NULL)
		g_dir_close(d);
	rmdir(path);
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *spool = NULL;

	f->dir = g_dir_make_tmp("mpop-mbox-XXXXXX", &error);
	g_assert_no_error(error);
	f->path = g_build_filename(f->dir, "user", NULL);
	f->lockpath = g_strconcat(f->path, ".lock", NULL);
	spool = g_build_filename(f->dir, "spool", NULL);
	f->cfg = test_config(spool);
	g_free(f->cfg->spool_dir);
	f->cfg->spool_dir = g_build_filename(f->dir, "spool-%u", NULL);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	rm_rf(f->dir);
	g_free(f->dir);
	g_free(f->path);
	g_free(f->lockpath);
	config_free(f->cfg);
}

static void
put(const char *path, const char *data, gssize len)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, data, len, &error);
	g_assert_no_error(error);
}

static GBytes *
slurp(const char *path)
{
	g_autofree char *data = NULL;
	gsize len = 0;

	g_assert_true(g_file_get_contents(path, &data, &len, NULL));
	return g_bytes_new_take(g_steal_pointer(&data), len);
}

static void
append(const char *path, const char *data)
{
	mpop_autofd fd = open(path, O_WRONLY | O_APPEND);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(mpop_write_all(fd, data, strlen(data)), ==, 0);
}

static MpopMailbox *
open_ok(Fixture *f)
{
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb =
		mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", f->path, &error);

	g_assert_no_error(error);
	g_assert_nonnull(mb);
	return mb;
}

static int
collect(gpointer ctx, const void *data, size_t len)
{
	g_string_append_len(ctx, data, (gssize)len);
	return 0;
}

/* RETR of message idx as the client receives it, with the stuffing undone and without the
 * terminator: its length must be the announced size (RFC 1939 §5). */
static GString *
retr(MpopMailbox *mb, guint idx, GError **error)
{
	g_autoptr(GString) wire = g_string_new(NULL);
	GString *out = g_string_new(NULL);
	gboolean broken = FALSE;
	const char *p;

	if (!test_stream_message(mb, idx, -1, "", collect, wire, &broken, error)) {
		g_string_free(out, TRUE);
		return NULL;
	}
	g_assert_cmpuint(wire->len, >=, 3);
	g_assert_cmpmem(wire->str + wire->len - 3, 3, ".\r\n", 3);
	g_string_truncate(wire, wire->len - 3);
	for (p = wire->str; p < wire->str + wire->len;) {
		const char *lf = memchr(p, '\n', (size_t)(wire->str + wire->len - p));
		const char *e = lf != NULL ? lf + 1 : wire->str + wire->len;
		if (*p == '.')
			p++;
		g_string_append_len(out, p, e - p);
		p = e;
	}
	return out;
}

static void
assert_retr(MpopMailbox *mb, guint idx, const char *expect)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) got = retr(mb, idx, &error);

	g_assert_no_error(error);
	g_assert_cmpstr(got->str, ==, expect);
	g_assert_cmpuint(got->len, ==, mb->msgs[idx].size);
}

/* ---- the scanner, table driven ---- */

typedef struct {
	const char *name;
	const char *data;
	gsize len; /* 0: strlen */
	gsize prefix;
	const char *contents[4];
	gsize lens[4]; /* 0: strlen */
} ScanCase;

static const ScanCase scan_cases[] = {
	{"empty", "", 0, 0, {NULL}, {0}},
	{"one", "From a\nH: 1\n\nbody\n\n", 0, 0, {"H: 1\n\nbody\n"}, {0}},
	{"from-in-body", "From a\n\nline\nFrom me to you\n\n", 0, 0, {"\nline\nFrom me to you\n"}},
	{"quoted", "From a\n\n>From x\n>>From y\n\n", 0, 0, {"\n>From x\n>>From y\n"}},
	{"no-final-newline", "From a\n\nbody", 0, 0, {"\nbody"}},
	{"crlf",
	 "From a\r\nH: 1\r\n\r\nb\r\n\r\nFrom b\r\nH: 2\r\n\r\nc\r\n",
	 0,
	 0,
	 {"H: 1\r\n\r\nb\r\n", "H: 2\r\n\r\nc\r\n"}},
	{"nul", "From a\n\nx\0y\n\nFrom b\n\n\0\n", 23, 0, {"\nx\0y\n", "\n\0\n"}, {5, 3}},
	{"8bit", "From a\n\n\xe4\xf6\xff\n\n", 0, 0, {"\n\xe4\xf6\xff\n"}},
	{"garbage-first", "garbage\nFrom x\n\nFrom a\n\nb\n", 0, 16, {"\nb\n"}},
	{"no-separator", "From a\n\nb\nFrom c\n\nd\n", 0, 0, {"\nb\nFrom c\n\nd\n"}},
	{"ws-separator", "From a\n\nb\n \t\nFrom c\n\nd\n", 0, 0, {"\nb\n", "\nd\n"}},
	{"from-only", "From a", 0, 0, {""}},
	{"from-only-lf", "From a\n", 0, 0, {""}},
	{"blank-lines", "From a\n\nb\n\n\n\nFrom c\nX\n", 0, 0, {"\nb\n\n\n", "X\n"}},
	{"empty-message", "From a\n\nFrom b\nx\n", 0, 0, {"", "x\n"}},
	{"from-after-from", "From a\nFrom b\n\nc\n", 0, 0, {"From b\n\nc\n"}},
	{"no-message", "just text\n\nno From here\n", 0, 0, {NULL}},
};

/* Whatever the input and wherever it is cut, spans are ordered and inside the data. */
static void
check_invariants(const MpopMboxParser *p, const char *data, size_t len)
{
	guint64 from = mpop_mbox_first(p, data, len);

	g_assert_cmpuint(from, <=, len);
	while (from < len) {
		MpopMboxSpan sp;
		mpop_mbox_message(p, data, len, from, &sp);
		g_assert_cmpuint(sp.from_offset, ==, from);
		g_assert_cmpuint(sp.offset, >, from);
		g_assert_cmpuint(sp.offset + sp.length, <=, sp.end);
		g_assert_cmpuint(sp.header_end, >=, sp.offset);
		g_assert_cmpuint(sp.header_end, <=, sp.offset + sp.length);
		g_assert_cmpuint(sp.end, <=, len);
		g_assert_cmpuint(sp.end, >, from);
		from = sp.end;
	}
}

static void
run_scan_case(const MpopMboxParser *p, const ScanCase *c)
{
	size_t len = c->len ? c->len : strlen(c->data);
	guint64 from = mpop_mbox_first(p, c->data, len);
	guint n = 0;

	g_test_message("case %s", c->name);
	g_assert_cmpuint(from, ==, c->prefix ? c->prefix : (c->contents[0] ? 0 : len));
	for (; from < len; n++) {
		MpopMboxSpan sp;
		size_t want_len;
		g_assert_nonnull(c->contents[n]);
		want_len = c->lens[n] ? c->lens[n] : strlen(c->contents[n]);
		mpop_mbox_message(p, c->data, len, from, &sp);
		g_assert_cmpmem(c->data + sp.offset, sp.length, c->contents[n], want_len);
		g_assert_true(g_str_has_prefix(c->data + sp.from_offset, "From "));
		from = sp.end;
	}
	g_assert_null(c->contents[n]);
	/* Every prefix of the data (a file caught mid-delivery) parses sanely. */
	for (size_t k = 0; k <= len; k++)
		check_invariants(p, c->data, k);
}

static void
test_scan_table(void)
{
	/* The literal fast path and the regex path must agree. */
	static const char *const rules[][2] = {
		{"^From ", "^\\s*$"},
		{"From ", NULL},
		{"^From\\s", "^[ \\t]*$"},
	};

	for (guint r = 0; r < G_N_ELEMENTS(rules); r++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopMboxParser) p =
			mpop_mbox_parser_new(rules[r][0], rules[r][1], &error);
		g_assert_no_error(error);
		for (guint i = 0; i < G_N_ELEMENTS(scan_cases); i++)
			run_scan_case(p, &scan_cases[i]);
	}
}

static void
test_scan_bad_regex(void)
{
	g_autoptr(GError) error = NULL;

	g_assert_null(mpop_mbox_parser_new("^From (", NULL, &error));
	g_assert_nonnull(error);
}

/* ---- UIDLs ---- */

static void
test_uidl_table(void)
{
	static const struct {
		const char *header;
		const char *sources[4];
		const char *expect; /* NULL: the digest of the header */
	} cases[] = {
		{"X-UIDL: abc123\nMessage-ID: <m@x>\n", {NULL}, "abc123"},
		{"X-UIDL: mpopbob17957341011\n", {NULL}, "bob17957341011"},
		{"x-uidl:   spaced  \n", {NULL}, "spaced"},
		{"X-UIDL: has space\nMessage-ID: <m@x>\n", {NULL}, "<m@x>"},
		{"Message-Id: <m@x>\n", {NULL}, "<m@x>"},
		{"message-id:\n <folded@x>\n", {NULL}, "<folded@x>"},
		{"Message-ID: <m@x>\r\n", {NULL}, "<m@x>"},
		{"Message-ID: <a b@x>\n", {NULL}, NULL},
		{"Message-ID: \n", {NULL}, NULL},
		{"Message-ID: "
		 "<0123456789012345678901234567890123456789012345678901234567890123@x.org>\n",
		 {NULL},
		 NULL},
		{"X-UIDL: abc\nMessage-ID: <m@x>\n", {"message-id", "x-uidl", NULL}, "<m@x>"},
		{"X-UIDL: abc\nMessage-ID: <m@x>\n", {"digest", NULL}, NULL},
		{"Subject: x\n", {"x-uidl", NULL}, NULL},
		{"X-UIDL-Not: abc\nMessage-IDx: <m@x>\n", {NULL}, NULL},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		const char *h = cases[i].header;
		char u[MPOP_UIDL_MAX + 1];
		size_t n = mpop_mbox_uidl(h, strlen(h),
					  cases[i].sources[0] ? cases[i].sources : NULL, u);
		g_autofree char *d = mpop_uidl_digest(h, strlen(h));
		g_test_message("case %u", i);
		g_assert_cmpuint(n, ==, strlen(u));
		g_assert_true(mpop_uidl_valid(u, n));
		g_assert_cmpstr(u, ==, cases[i].expect ? cases[i].expect : d);
		/* the fields read in pieces of 1-7 bytes (as the index reads a long header): the
		 * same UIDL, digests included */
		for (size_t step = 1; step <= 7; step += 3) {
			MpopUidlPlan plan;
			MpopUidlFields fs;
			char u2[MPOP_UIDL_MAX + 1];
			size_t len = strlen(h), k;
			mpop_mbox_uidl_plan(cases[i].sources[0] ? cases[i].sources : NULL, &plan);
			mpop_mbox_uidl_fields_init(&fs, &plan);
			for (size_t a = 0; a < len; a = k) {
				k = mpop_mbox_uidl_fields(&fs, h, len, a, a + step);
				g_assert_cmpuint(k, >, a);
			}
			if (mpop_mbox_uidl_pick(&fs, &plan, h, len, u2) == 0)
				g_assert_cmpstr(u, ==, d);
			else
				g_assert_cmpstr(u2, ==, u);
		}
	}
}

/* ---- the backend ---- */

static const char *const perl_contents[] = {
	"Return-Path: <user@example.com>\r\n"
	"Received: (from user@localhost)\r\n"
	"        by host.example.com (8.11.2/8.11.2) id fADNc4727035\r\n"
	"        for user; Tue, 13 Nov 2001 23:38:04 GMT\r\n"
	"Date: Tue, 13 Nov 2001 23:38:04 GMT\r\n"
	"From: User <user@example.com>\r\n"
	"Message-Id: <200111132338.fADNc4727035@example.com>\r\n"
	"To: user@host.example.com\r\n"
	"Subject: test\r\n",
	NULL,
	"Return-Path: <user@example.com>\r\n"
	"Received: (from user@localhost)\r\n"
	"        by host.example.com (8.11.2/8.11.2) id fADNcna27048\r\n"
	"        for user; Tue, 13 Nov 2001 23:38:49 GMT\r\n"
	"Date: Tue, 13 Nov 2001 23:38:49 GMT\r\n"
	"From: User <user@example.com>\r\n"
	"Message-Id: <200111132338.fADNcna27048@example.com>\r\n"
	"To: user@host.example.com\r\n"
	"Subject: test3\r\n"
	"\r\n"
	"it's got a\r\n"
	"longer\r\n"
	"body\r\n",
};

/* The Perl mpopd's t/testcommon.pl fixture (mpopd-original.md §9.1). */
static void
test_perl_fixture(Fixture *f, gconstpointer data)
{
	g_autofree char *src =
		g_test_build_filename(G_TEST_DIST, "data", "mbox", "perl-fixture.mbox", NULL);
	g_autoptr(GBytes) orig = slurp(src);
	g_autoptr(GBytes) after = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopMailbox) mb = NULL;
	static const guint64 sizes[] = {339, 340, 368};
	guint count;
	guint64 octets;
	gsize len;
	const char *raw = g_bytes_get_data(orig, &len);
	g_autoptr(GString) expect = g_string_new(NULL);

	g_assert_cmpuint(len, ==, 1127);
	put(f->path, raw, (gssize)len);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 3);
	/* The Perl original counted the separator line too: 341, 342, 370 = ours + 2. */
	for (guint i = 0; i < 3; i++)
		g_assert_cmpuint(mb->msgs[i].size, ==, sizes[i]);
	mpop_mailbox_stat(mb, &count, &octets);
	g_assert_cmpuint(octets + 2 * 3, ==, 1053);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "<200111132338.fADNc4727035@example.com>");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<200111132338.fADNcNg27040@example.com>");
	g_assert_cmpstr(mb->msgs[2].uidl, ==, "<200111132338.fADNcna27048@example.com>");
	assert_retr(mb, 0, perl_contents[0]);
	assert_retr(mb, 2, perl_contents[2]);
	/* t/mailfolder.t #12: DELE 2 + UPDATE leaves exactly msg1 . msg3, From lines kept. */
	mb->msgs[1].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	after = slurp(f->path);
	g_string_append_len(expect, raw, strstr(raw, "From user  Tue Nov 13 23:38:23") - raw);
	g_string_append(expect, strstr(raw, "From user  Tue Nov 13 23:38:49"));
	g_assert_cmpmem(g_bytes_get_data(after, NULL), g_bytes_get_size(after), expect->str,
			expect->len);
}

/* Sizes equal what RETR sends, for every fixture, quoting mode and header rule. */
static void
test_sizes_match(Fixture *f, gconstpointer data)
{
	static const char *const files[] = {"perl-fixture.mbox", "mixed.mbox", "prefix.mbox"};
	static char status_name[] = "status";
	static char *show_status[] = {status_name, NULL};

	for (guint i = 0; i < G_N_ELEMENTS(files); i++) {
		g_autofree char *src =
			g_test_build_filename(G_TEST_DIST, "data", "mbox", files[i], NULL);
		g_autoptr(GBytes) orig = slurp(src);
		put(f->path, g_bytes_get_data(orig, NULL), (gssize)g_bytes_get_size(orig));
		for (guint mode = 0; mode < 4; mode++) {
			g_autoptr(MpopMailbox) mb = NULL;
			f->cfg->from_quoting = mode & 1 ? MPOP_FROM_RAW : MPOP_FROM_MBOXRD;
			f->cfg->show_headers = mode & 2 ? show_status : NULL;
			mb = open_ok(f);
			g_assert_cmpuint(mb->n_msgs, >, 0);
			for (guint k = 0; k < mb->n_msgs; k++) {
				g_autoptr(GError) error = NULL;
				g_autoptr(GString) got = retr(mb, k, &error);
				g_assert_no_error(error);
				g_assert_cmpuint(got->len, ==, mb->msgs[k].size);
				g_assert_true(mpop_uidl_valid(mb->msgs[k].uidl,
							      strlen(mb->msgs[k].uidl)));
			}
		}
	}
	f->cfg->show_headers = NULL;
}

/* mixed.mbox: what each message must look like on the wire. */
static void
test_mixed_content(Fixture *f, gconstpointer data)
{
	g_autofree char *src =
		g_test_build_filename(G_TEST_DIST, "data", "mbox", "mixed.mbox", NULL);
	g_autoptr(GBytes) orig = slurp(src);
	g_autoptr(MpopMailbox) mb = NULL;

	put(f->path, g_bytes_get_data(orig, NULL), (gssize)g_bytes_get_size(orig));
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 5);
	/* Status/X-Status/Content-Length hidden, ">From " unquoted once, From in a body. */
	assert_retr(mb, 0,
		    "Subject: one\r\nMessage-ID: <one@x>\r\n\r\ntext\r\n"
		    "From the body, not a separator\r\nFrom quoted\r\n>From twice\r\n"
		    ".dot\r\n");
	assert_retr(mb, 1, "Subject: crlf\r\nX-UIDL: crlf-uidl\r\n\r\nstored with CRLF\r\n");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "crlf-uidl");
	assert_retr(mb, 3, "Subject: latin\r\nMessage-ID: <dup@x>\r\n\r\nGr\xfc\xdf\x65\r\n");
	/* No final newline: the client still gets a CRLF-terminated last line. */
	assert_retr(mb, 4, "Subject: last\r\nMessage-ID: <dup@x>\r\n\r\nno newline at the end\r\n");
	{
		g_autoptr(GError) error = NULL;
		g_autoptr(GString) got = retr(mb, 2, &error);
		g_assert_no_error(error);
		g_assert_cmpmem(got->str, got->len, "Subject: nul\r\n\r\na\0b\r\n", 21);
	}
	/* Duplicate Message-IDs are made unique, deterministically. */
	g_assert_cmpstr(mb->msgs[3].uidl, !=, mb->msgs[4].uidl);
}

static void
test_absent_and_empty(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopMailbox) mb = open_ok(f);
	g_autoptr(MpopMailbox) mb2 = NULL;
	g_autoptr(MpopMailbox) mb3 = NULL;

	g_assert_cmpuint(mb->n_msgs, ==, 0);
	put(f->path, "", 0);
	mb2 = open_ok(f);
	g_assert_cmpuint(mb2->n_msgs, ==, 0);
	put(f->path, "text only, no message\n", -1);
	mb3 = open_ok(f);
	g_assert_cmpuint(mb3->n_msgs, ==, 0);
	/* The lock was released at open (snapshot): nothing left behind. */
	g_assert_false(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
}

static void
test_prefix_kept(Fixture *f, gconstpointer data)
{
	const char *box = "garbage line\nmore\n\nFrom a\n\none\n\nFrom b\n\ntwo\n\n";
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GBytes) after = NULL;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	mb->msgs[0].deleted = mb->msgs[1].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	after = slurp(f->path);
	g_assert_cmpmem(g_bytes_get_data(after, NULL), g_bytes_get_size(after),
			"garbage line\nmore\n\n", 19);
}

static void
test_symlink_refused(Fixture *f, gconstpointer data)
{
	g_autofree char *real = g_build_filename(f->dir, "real", NULL);
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb;

	put(real, "From a\n\nx\n", -1);
	g_assert_cmpint(symlink(real, f->path), ==, 0);
	mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", f->path, &error);
	g_assert_null(mb);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
}

static GString *
make_messages(guint n, const char *tag, gsize body)
{
	GString *s = g_string_new(NULL);

	for (guint i = 0; i < n; i++) {
		g_string_append_printf(s,
				       "From sender@example.org Mon Jan  1 00:00:00 2024\n"
				       "Message-ID: <%s-%u@example.org>\nSubject: %u\n\n",
				       tag, i, i);
		for (gsize k = 0; k < body; k += 64)
			g_string_append(
				s, "0123456789 abcdefghijklmnopqrstuvwxyz 0123456789 ABCDEFGH.\n");
		g_string_append_c(s, '\n');
	}
	return s;
}

static void
test_big_message(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(1, "big", (1 << 20) + (1 << 17));
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(GString) got = NULL;
	g_autoptr(GError) error = NULL;

	g_string_append(s, "From x\n\nsmall\n\n");
	put(f->path, s->str, (gssize)s->len);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	got = retr(mb, 0, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(got->len, ==, mb->msgs[0].size);
	g_assert_cmpuint(mb->msgs[0].size, >, 1 << 20);
}

/* VmHWM of this process in KiB. */
static long
vm_hwm_kb(void)
{
	g_autofree char *st = NULL;
	const char *l;

	if (!g_file_get_contents("/proc/self/status", &st, NULL, NULL) ||
	    (l = strstr(st, "VmHWM:")) == NULL)
		return -1;
	return strtol(l + 6, NULL, 10);
}

/* Open the mailbox in a fresh child: VmHWM before and after (KiB), and whether it holds three
 * messages with a second one over 48 MB. */
static void
open_in_child(Fixture *f, long v[3])
{
	int fds[2];
	pid_t pid;

	g_assert_cmpint(pipe(fds), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		MpopMailbox *mb;
		v[0] = vm_hwm_kb();
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", f->path, NULL);
		v[1] = vm_hwm_kb();
		v[2] = mb != NULL && mb->n_msgs == 3 && mb->msgs[1].size > 48 * 1000 * 1000;
		g_assert_true(write(fds[1], v, 3 * sizeof(long)) == 3 * sizeof(long));
		_exit(0);
	}
	close(fds[1]);
	g_assert_cmpint(read(fds[0], v, 3 * sizeof(long)), ==, 3 * sizeof(long));
	close(fds[0]);
	g_assert_cmpint(waitpid(pid, NULL, 0), ==, pid);
}

#ifdef MPOP_HAVE_ASAN
#define HUGE_MESSAGE_HWM_KB (16 * 1024)
#else
#define HUGE_MESSAGE_HWM_KB 4096
#endif

/* A 48 MB message between small ones, as an attachment (a body) and as a header without end:
 * every pass over it gives the mapped pages behind it back, so the session's peak memory does
 * not grow with the message. Measured in a fresh child, whose VmHWM starts from the test's
 * resident set. */
static void
test_huge_message_memory(Fixture *f, gconstpointer data)
{
	g_autofree char *line = g_strnfill(76, 'Q');

	for (int all_header = 0; all_header < 2; all_header++) {
		FILE *out = fopen(f->path, "w");
		long v[3] = {0};

		g_assert_nonnull(out);
		fputs("From a\nSubject: small\n\n>From quoted\n\n", out);
		fputs(all_header ? "From b\nSubject: huge\n" : "From b\nSubject: huge\n\n", out);
		for (int i = 0; i < 48 * 1000 * 1000 / 77; i++)
			fprintf(out, all_header ? "X-%s\n" : "%s\n", line);
		fputs("\nFrom c\nSubject: small\n\nbye\n", out);
		g_assert_cmpint(fclose(out), ==, 0);
		open_in_child(f, v);
		g_test_message("%s: VmHWM %ld KiB before the open, %ld KiB after",
			       all_header ? "a header of 48 MB" : "a body of 48 MB", v[0], v[1]);
		g_assert_cmpint(v[2], ==, 1);
		/* a few bands of 128 KiB may be mapped at a time (ASan's allocator and shadow
		 * add a few MB of their own; 48 MB would still show) */
		g_assert_cmpint(v[1] - v[0], <, HUGE_MESSAGE_HWM_KB);
	}
}

static void
test_many(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(50000, "m", 0);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(MpopMailbox) mb2 = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func(g_free);

	put(f->path, s->str, (gssize)s->len);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 50000);
	for (guint i = 0; i < mb->n_msgs; i++) {
		mb->msgs[i].deleted = i % 3 == 0;
		if (!mb->msgs[i].deleted)
			g_ptr_array_add(kept, g_strdup(mb->msgs[i].uidl));
	}
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	/* UIDLs of the survivors are the same after UPDATE (RFC 1939 §7). */
	mb2 = open_ok(f);
	g_assert_cmpuint(mb2->n_msgs, ==, kept->len);
	for (guint i = 0; i < kept->len; i++)
		g_assert_cmpstr(mb2->msgs[i].uidl, ==, kept->pdata[i]);
}

static void
test_append_during_session(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(3, "a", 100);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(MpopMailbox) mb2 = NULL;
	g_autoptr(GError) error = NULL;

	put(f->path, s->str, (gssize)s->len);
	mb = open_ok(f);
	append(f->path, "From new\nMessage-ID: <new@x>\n\narrived later\n\n");
	g_assert_nonnull(retr(mb, 2, &error));
	g_assert_no_error(error);
	mb->msgs[1].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	mb2 = open_ok(f);
	g_assert_cmpuint(mb2->n_msgs, ==, 3);
	g_assert_cmpstr(mb2->msgs[0].uidl, ==, "<a-0@example.org>");
	g_assert_cmpstr(mb2->msgs[1].uidl, ==, "<a-2@example.org>");
	g_assert_cmpstr(mb2->msgs[2].uidl, ==, "<new@x>");
	assert_retr(mb2, 2, "Message-ID: <new@x>\r\n\r\narrived later\r\n");
}

/* Another program rewrote the mailbox (in place, or by rename): reads and UPDATE refuse. */
static void
test_rewrite_detected(Fixture *f, gconstpointer data)
{
	for (guint how = 0; how < 3; how++) {
		g_autoptr(GString) s = make_messages(3, "r", 100);
		g_autoptr(GString) t = make_messages(3, "r", 100);
		g_autoptr(MpopMailbox) mb = NULL;
		g_autoptr(GError) error = NULL;
		g_autoptr(GBytes) after = NULL;
		g_autofree char *other = g_build_filename(f->dir, "other", NULL);
		char *status;

		put(f->path, s->str, (gssize)s->len);
		mb = open_ok(f);
		/* mutt marking message 1 read: one header longer, all later From lines move. */
		status = strstr(t->str, "Subject: 1\n");
		g_string_insert(t, status - t->str, "Status: RO\n");
		if (how == 0) {
			mpop_autofd fd = open(f->path, O_WRONLY | O_TRUNC);
			g_assert_cmpint(mpop_write_all(fd, t->str, t->len), ==, 0);
		} else if (how == 1) {
			put(other, t->str, (gssize)t->len);
			g_assert_cmpint(rename(other, f->path), ==, 0);
		} else {
			/* Truncated below what was indexed. */
			g_assert_cmpint(truncate(f->path, (off_t)s->len - 10), ==, 0);
			g_string_truncate(t, 0);
			g_string_append_len(t, s->str, (gssize)s->len - 10);
		}
		g_assert_null(retr(mb, 2, &error));
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
		g_clear_error(&error);
		mb->msgs[0].deleted = TRUE;
		g_assert_false(mpop_mailbox_commit(mb, &error));
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
		after = slurp(f->path);
		g_assert_cmpmem(g_bytes_get_data(after, NULL), g_bytes_get_size(after), t->str,
				t->len);
	}
}

static void
test_owner_mode_kept(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(3, "o", 10);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(GError) error = NULL;
	struct stat sb;
	guint n = 0;

	put(f->path, s->str, (gssize)s->len);
	g_assert_cmpint(chmod(f->path, 0640), ==, 0);
	if (geteuid() == 0)
		g_assert_cmpint(chown(f->path, 0, 8 /* mail on Debian */), ==, 0);
	mb = open_ok(f);
	mb->msgs[0].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	g_assert_cmpint(stat(f->path, &sb), ==, 0);
	g_assert_cmpuint(sb.st_mode & 07777, ==, 0640);
	if (geteuid() == 0)
		g_assert_cmpuint(sb.st_gid, ==, 8);
	/* No temporary file or lock left next to it (the index is there by design). */
	{
		GDir *d = g_dir_open(f->dir, 0, NULL);
		for (const char *name; (name = g_dir_read_name(d)) != NULL;)
			n += strcmp(name, ".user.mpopd-index") != 0;
		g_dir_close(d);
	}
	g_assert_cmpuint(n, ==, 1);
}

/* The session's UPDATE under a seccomp filter as strict as the units' about ownership:
 * chown(), lchown() and fchownat() kill the process, and so does fchown() where the new
 * file must already have the mailbox's owner and group. The session is uid 4242 gid 4243
 * with group 8 (mail) kept aside, as login.c leaves it for mail_privileged_group. */
typedef struct {
	const char *what;
	uid_t dir_uid;
	gid_t dir_gid;
	mode_t dir_mode;
	gid_t box_gid;
	mode_t box_mode;
	gboolean fchown_kills;
} OwnerCase;

static const OwnerCase owner_cases[] = {
	/* a home directory: the group must not be taken, nothing to chown */
	{"home", 4242, 4243, 0700, 4243, 0600, TRUE},
	/* Debian's root:mail 2775 spool: the group taken, the new file gets mail from the
	 * directory */
	{"setgid-spool", 0, 8, 02775, 8, 0660, TRUE},
	/* a root:mail 0775 spool without the setgid bit and a user:user mbox: the group taken
	 * for the new file, fchown() back to the user's group */
	{"plain-spool", 0, 8, 0775, 4243, 0600, FALSE},
	/* the user's own setgid directory of group mail: group mail from the directory,
	 * fchown() back to the user's group */
	{"own-setgid", 4242, 8, 02770, 4243, 0600, FALSE},
};

static void
kill_chown(gboolean fchown_too)
{
#if defined(__x86_64__)
	struct sock_filter prog[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_chown, 4, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_lchown, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_fchownat, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, fchown_too ? __NR_fchown : __NR_chown, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
	};
	struct sock_fprog fprog = {.len = G_N_ELEMENTS(prog), .filter = prog};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog) < 0)
		_exit(30);
#else
	(void)fchown_too;
#endif
}

static void
test_owner_under_seccomp(Fixture *f, gconstpointer data)
{
	const OwnerCase *c = data;
	g_autoptr(GString) s = make_messages(3, "s", 10);
	g_autofree char *dir = g_build_filename(f->dir, c->what, NULL);
	g_autofree char *box = g_build_filename(dir, "mbox", NULL);
	struct stat sb;
	int status, n = 0;
	GDir *d;
	pid_t pid;

	if (geteuid() != 0) {
		g_test_skip("needs root (other users and groups)");
		return;
	}
	g_assert_cmpint(chmod(f->dir, 0755), ==, 0);
	g_assert_cmpint(mkdir(dir, 0700), ==, 0);
	g_assert_cmpint(chown(dir, c->dir_uid, c->dir_gid), ==, 0);
	g_assert_cmpint(chmod(dir, c->dir_mode), ==, 0);
	put(box, s->str, (gssize)s->len);
	g_assert_cmpint(chown(box, 4242, c->box_gid), ==, 0);
	g_assert_cmpint(chmod(box, c->box_mode), ==, 0);
	g_free(f->path);
	f->path = g_strdup(box);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		g_autoptr(MpopMailbox) mb = NULL;
		if (mpop_privsep_become(4242, 4243, NULL, 8) != 0)
			_exit(31);
		kill_chown(c->fchown_kills);
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", box, NULL);
		if (mb == NULL || mb->n_msgs != 3)
			_exit(32);
		mb->msgs[1].deleted = TRUE;
		if (!mpop_mailbox_commit(mb, NULL))
			_exit(33);
		_exit(0);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_false(WIFSIGNALED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	g_assert_cmpint(stat(box, &sb), ==, 0);
	g_assert_cmpuint(sb.st_uid, ==, 4242);
	g_assert_cmpuint(sb.st_gid, ==, c->box_gid);
	g_assert_cmpuint(sb.st_mode & 07777, ==, c->box_mode);
	g_assert_cmpuint((guint64)sb.st_size, <, s->len);
	/* no dotlock, no temporary file left next to it; the index, the user's own */
	d = g_dir_open(dir, 0, NULL);
	for (const char *name; (name = g_dir_read_name(d)) != NULL;)
		n += strcmp(name, ".mbox.mpopd-index") != 0;
	g_dir_close(d);
	g_assert_cmpint(n, ==, 1);
	{
		g_autofree char *ipath = g_build_filename(dir, ".mbox.mpopd-index", NULL);
		g_assert_cmpint(lstat(ipath, &sb), ==, 0);
		g_assert_cmpuint(sb.st_uid, ==, 4242);
		g_assert_cmpuint(sb.st_mode & 07777, ==, 0600);
	}
}

static void
test_session_lock(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(2, "s", 10);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb2;

	put(f->path, s->str, (gssize)s->len);
	f->cfg->mbox_mode = MPOP_MBOX_SESSION_LOCK;
	mb = open_ok(f);
	g_assert_true(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
	mb2 = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", f->path, &error);
	g_assert_null(mb2);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_clear_error(&error);
	/* A snapshot session waits for the same locks. */
	f->cfg->mbox_mode = MPOP_MBOX_SNAPSHOT;
	mb2 = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", f->path, &error);
	g_assert_null(mb2);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_clear_error(&error);
	mb->msgs[1].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_clear_pointer(&mb, mpop_mailbox_close);
	g_assert_false(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 1);
}

static void
test_spool_mode(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(3, "p", 100);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(MpopMailbox) mb2 = NULL;
	g_autoptr(GError) error = NULL;
	g_autofree char *spool = g_build_filename(f->dir, "spool-user", NULL);
	struct stat sb;

	put(f->path, s->str, (gssize)s->len);
	f->cfg->mbox_mode = MPOP_MBOX_SPOOL;
	mb = open_ok(f);
	/* The lock is gone at once and the private copy has no name at all. */
	g_assert_false(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
	g_assert_cmpint(stat(spool, &sb), ==, 0);
	g_assert_cmpuint(sb.st_mode & 0777, ==, 0700);
	g_assert_cmpuint(sb.st_nlink, ==, 2);
	/* Delivery meanwhile does not disturb the session. */
	append(f->path, "From late\nMessage-ID: <late@x>\n\nlate\n\n");
	mb->msgs[0].deleted = TRUE;
	g_assert_nonnull(retr(mb, 1, &error));
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	mb2 = open_ok(f);
	g_assert_cmpuint(mb2->n_msgs, ==, 3);
	g_assert_cmpstr(mb2->msgs[2].uidl, ==, "<late@x>");
	/* A rewrite by someone else: the copy still reads, UPDATE refuses. */
	g_clear_pointer(&mb2, mpop_mailbox_close);
	g_clear_pointer(&mb, mpop_mailbox_close);
	mb = open_ok(f);
	put(f->path, "From z\n\nreplaced\n", -1);
	g_assert_nonnull(retr(mb, 0, &error));
	g_assert_no_error(error);
	mb->msgs[0].deleted = TRUE;
	g_assert_false(mpop_mailbox_commit(mb, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
}

/* UIDLs are stable across sessions and across UPDATEs that delete other messages. */
static void
test_uidl_stable(Fixture *f, gconstpointer data)
{
	const char *box = "From a\nSubject: same\n\nx\n\nFrom b\nSubject: same\n\nx\n\n"
			  "From c\nX-UIDL: keep\n\ny\n\nFrom d\nMessage-ID: <d@x>\n\nz\n\n";
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(MpopMailbox) mb2 = NULL;
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) first = g_new0(char *, 5);
	g_autoptr(GBytes) after = NULL;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	for (guint i = 0; i < 4; i++)
		first[i] = g_strdup(mb->msgs[i].uidl);
	g_assert_cmpstr(first[0], !=, first[1]); /* identical headers, unique UIDLs */
	g_assert_true(g_str_has_prefix(first[1], first[0]));
	g_assert_cmpstr(first[2], ==, "keep");
	g_clear_pointer(&mb, mpop_mailbox_close);
	mb = open_ok(f);
	for (guint i = 0; i < 4; i++)
		g_assert_cmpstr(mb->msgs[i].uidl, ==, first[i]);
	mb->msgs[2].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, &error));
	mb2 = open_ok(f);
	g_assert_cmpuint(mb2->n_msgs, ==, 3);
	g_assert_cmpstr(mb2->msgs[0].uidl, ==, first[0]);
	g_assert_cmpstr(mb2->msgs[1].uidl, ==, first[1]);
	g_assert_cmpstr(mb2->msgs[2].uidl, ==, first[3]);
	/* Never written into the mailbox. */
	after = slurp(f->path);
	g_assert_null(strstr(g_bytes_get_data(after, NULL), first[0]));
}

/* ---- ENOSPC on a real small tmpfs, in a private mount namespace ---- */

static int
enospc_child(void)
{
	g_autofree char *dir = g_dir_make_tmp("mpop-enospc-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "user", NULL);
	g_autoptr(GString) s = make_messages(3, "e", 60 * 1024);
	g_autoptr(GBytes) after = NULL;
	g_autoptr(GError) error = NULL;
	MpopConfig *cfg = test_config(dir);
	MpopMailbox *mb;
	GDir *d;
	guint n = 0;

	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=256k") < 0)
		return 77;
	put(path, s->str, (gssize)s->len);
	mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, cfg, "user", path, &error);
	g_assert_no_error(error);
	mb->msgs[0].deleted = TRUE;
	g_assert_false(mpop_mailbox_commit(mb, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_TEMP);
	g_assert_nonnull(strstr(error->message, "No space left"));
	mpop_mailbox_close(mb);
	after = slurp(path);
	g_assert_cmpmem(g_bytes_get_data(after, NULL), g_bytes_get_size(after), s->str, s->len);
	d = g_dir_open(dir, 0, NULL);
	for (const char *name; (name = g_dir_read_name(d)) != NULL;)
		n += strcmp(name, ".user.mpopd-index") != 0;
	g_dir_close(d);
	g_assert_cmpuint(n, ==, 1); /* no temporary file, no lock left */
	umount(dir);
	rmdir(dir);
	config_free(cfg);
	return 0;
}

static void
test_enospc(void)
{
	int st;
	pid_t pid = fork();

	if (pid == 0)
		_exit(enospc_child());
	g_assert_cmpint(waitpid(pid, &st, 0), ==, pid);
	g_assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77) {
		g_test_skip("cannot mount a tmpfs in a private mount namespace here");
		return;
	}
	g_assert_cmpint(WEXITSTATUS(st), ==, 0);
}

/* ---- crash injection: SIGKILL during UPDATE while a delivery agent appends ---- */

/* What procmail does: the dotlock first, then open, then a blocking fcntl lock. */
static void
deliver(const char *path, const char *msg)
{
	g_autofree char *lockpath = g_strconcat(path, ".lock", NULL);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	int lfd, fd;

	while ((lfd = mpop_dotlock_try(lockpath, 300)) < 0)
		g_usleep(500);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fcntl(fd, F_SETLKW, &fl), ==, 0);
	g_assert_cmpint(mpop_write_all(fd, msg, strlen(msg)), ==, 0);
	close(fd);
	mpop_dotlock_remove(lockpath, lfd);
	close(lfd);
}

static GHashTable *
uidl_set(Fixture *f, gboolean *out_dup)
{
	g_autoptr(MpopMailbox) mb = open_ok(f);
	GHashTable *set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

	*out_dup = FALSE;
	for (guint i = 0; i < mb->n_msgs; i++)
		*out_dup |= !g_hash_table_add(set, g_strdup(mb->msgs[i].uidl));
	return set;
}

static gboolean
set_is(GHashTable *got, GPtrArray *want)
{
	if (g_hash_table_size(got) != want->len)
		return FALSE;
	for (guint i = 0; i < want->len; i++)
		if (!g_hash_table_contains(got, want->pdata[i]))
			return FALSE;
	return TRUE;
}

/* Temporary files of killed UPDATEs; each UPDATE removes older ones. */
static guint
count_debris(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;
	guint count = 0;

	while ((n = g_dir_read_name(d)) != NULL) {
		count += g_str_has_prefix(n, "user.mpopd-");
		g_assert_false(g_str_has_prefix(n, "user.lock.stale"));
	}
	g_dir_close(d);
	g_assert_cmpuint(count, <=, 1);
	return count;
}

static void
test_crash_injection(Fixture *f, gconstpointer data)
{
	guint rounds = 0, committed = 0, old = 0, debris = 0;
	guint64 t_end = mpop_now_usec() + 60 * G_USEC_PER_SEC;
	GRand *rand = g_rand_new_with_seed(g_test_rand_int());

	for (; rounds < 200 && mpop_now_usec() < t_end; rounds++) {
		g_autofree char *tag = g_strdup_printf("r%u", rounds);
		g_autoptr(GString) s = make_messages(40, tag, 2000);
		g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(g_free);
		g_autoptr(GPtrArray) kept = g_ptr_array_new_with_free_func(g_free);
		g_autoptr(GHashTable) got = NULL;
		pid_t committer, deliverer;
		gboolean dup;
		int st, cst;
		g_autofree char *dump = NULL;
		gsize dump_len = 0;

		put(f->path, s->str, (gssize)s->len);
		for (guint i = 0; i < 40; i++) {
			char *u = g_strdup_printf("<%s-%u@example.org>", tag, i);
			g_ptr_array_add(all, g_strdup(u));
			if (i % 4 != 1)
				g_ptr_array_add(kept, g_strdup(u));
			g_free(u);
		}
		for (guint d = 0; d < 5; d++) {
			char *u = g_strdup_printf("<%s-d%u@x>", tag, d);
			g_ptr_array_add(all, g_strdup(u));
			g_ptr_array_add(kept, u);
		}
		committer = fork();
		if (committer == 0) {
			MpopMailbox *mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user",
							    f->path, NULL);
			if (mb == NULL)
				_exit(3);
			/* By UIDL: deliveries may already be in the index. */
			for (guint i = 0; i < mb->n_msgs; i++)
				for (guint k = 1; k < 40; k += 4)
					mb->msgs[i].deleted |=
						strcmp(mb->msgs[i].uidl, all->pdata[k]) == 0;
			_exit(mpop_mailbox_commit(mb, NULL) ? 0 : 4);
		}
		deliverer = fork();
		if (deliverer == 0) {
			for (guint d = 0; d < 5; d++) {
				g_autofree char *m = g_strdup_printf(
					"From mda\nMessage-ID: <%s-d%u@x>\n\ndelivered\n\n", tag,
					d);
				deliver(f->path, m);
				g_usleep(g_random_int_range(0, 1500));
			}
			_exit(0);
		}
		g_usleep(g_rand_int_range(rand, 0, 6000));
		kill(committer, SIGKILL);
		g_assert_cmpint(waitpid(committer, &cst, 0), ==, committer);
		g_assert_cmpint(waitpid(deliverer, &st, 0), ==, deliverer);
		g_assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		/* Old content + deliveries, or new content + deliveries; nothing else. */
		got = uidl_set(f, &dup);
		g_assert_false(dup);
		if (set_is(got, kept))
			committed++;
		else if (set_is(got, all))
			old++;
		else {
			GHashTableIter it;
			gpointer k;
			g_hash_table_iter_init(&it, got);
			while (g_hash_table_iter_next(&it, &k, NULL))
				g_printerr("# got %s\n", (char *)k);
			g_printerr("# round %u: %u messages, committer status %d\n", rounds,
				   g_hash_table_size(got), cst);
			g_assert_true(g_file_get_contents(f->path, &dump, &dump_len, NULL));
			g_file_set_contents("/tmp/mbox-fail.mbox", dump, (gssize)dump_len, NULL);
			g_assert_not_reached();
		}
		debris += count_debris(f->dir);
	}
	g_printerr("# crash injection: %u rounds, %u committed, %u old content, %u rounds "
		   "with a temporary file left (removed by the next UPDATE)\n",
		   rounds, committed, old, debris);
	g_assert_cmpuint(rounds, >=, 20);
	g_rand_free(rand);
}

/* ---- indexing from a message start ---- */

/* A random mbox: boundaries with and without separators, From lines in bodies, quoted ones,
 * CRLF, headers the UIDLs come from (some duplicated), text before the first message. */
static GString *
random_mbox(GRand *rand)
{
	static const char *const pieces[] = {
		"From a@b Mon Jan  1 00:00:00 2024\n",
		"\nFrom c@d Tue Jan  2 00:00:00 2024\n",
		"\n",
		"line of text\n",
		"From in a body\n",
		">From quoted\n",
		"Message-ID: <same@x>\n",
		"X-UIDL: u1\n",
		"Status: RO\n",
		"\r\n",
		"  \n",
		"F",
		"Subject: s\n\nbody\n",
		"From ",
	};
	GString *m = g_string_new(NULL);
	guint n = (guint)g_rand_int_range(rand, 0, 400);

	for (guint k = 0; k < n; k++)
		g_string_append(m, pieces[g_rand_int_range(rand, 0, G_N_ELEMENTS(pieces))]);
	return m;
}

static char *
map_file(const char *path, const GString *content)
{
	mpop_autofd fd = -1;
	char *map;

	g_assert(g_file_set_contents(path, content->str, (gssize)content->len, NULL));
	fd = open(path, O_RDONLY);
	g_assert_cmpint(fd, >=, 0);
	map = mmap(NULL, content->len, PROT_READ, MAP_SHARED, fd, 0);
	g_assert(map != MAP_FAILED);
	return map;
}

/* What an append scan does: indexed from message k's From line on, the index is exactly
 * the one of a pass from the start for those messages (boundaries, sizes, UIDLs, hashes),
 * under both kinds of rules, whatever the window the pass reads through. */
static void
test_index_from(Fixture *f, gconstpointer data)
{
	g_autoptr(GRand) rand = g_rand_new_with_seed(1725);
	g_autoptr(MpopMboxParser) lit = mpop_mbox_parser_new("^From ", "^\\s*$", NULL);
	g_autoptr(MpopMboxParser) re = mpop_mbox_parser_new("^From\\s", "^[ \\t]*$", NULL);
	const char *hide[] = {"Status", NULL};
	MpopStuffOpts stuff = {TRUE, hide};
	guint rounds = g_test_slow() ? 3000 : 600, tried = 0;

	for (guint r = 0; r < rounds; r++) {
		g_autoptr(GString) content = random_mbox(rand);
		g_autoptr(GStringChunk) s1 = g_string_chunk_new(1024);
		g_autoptr(GStringChunk) s2 = g_string_chunk_new(1024);
		MpopMboxIndexOpts o = {r % 2 ? re : lit, &stuff, NULL, 0, 0};
		MpopMboxIndex a, b;
		guint k;
		char *map;

		if (content->len == 0)
			continue;
		map = map_file(f->path, content);
		g_assert(mpop_mbox_index(&o, map, content->len, s1, &a, NULL));
		if (a.n_msgs == 0) {
			g_assert_cmpuint(a.first_from, ==, content->len);
			goto next;
		}
		k = (guint)g_rand_int_range(rand, 0, (gint32)a.n_msgs);
		o.from = a.msgs[k].offset - a.msgs[k].from_len;
		o.prev_end = k > 0 ? a.msgs[k - 1].offset + a.msgs[k - 1].length : a.first_from;
		o.first_from = a.first_from;
		/* (from 0 is the whole file again) read through a window of a few bytes: every
		 * message crosses several */
		o.window = 1 + r % 13;
		g_assert(mpop_mbox_index(&o, map, content->len, s2, &b, NULL));
		tried++;
		g_assert_cmpuint(b.n_msgs, ==, a.n_msgs - k);
		g_assert_cmpuint(a.tail_hash, ==, b.tail_hash);
		for (guint i = 0; i < b.n_msgs; i++) {
			const MpopMessage *x = &a.msgs[k + i], *y = &b.msgs[i];
			g_assert_cmpuint(x->offset, ==, y->offset);
			g_assert_cmpuint(x->length, ==, y->length);
			g_assert_cmpuint(x->from_len, ==, y->from_len);
			g_assert_cmpuint(x->size, ==, y->size);
			g_assert_cmpstr(x->uidl, ==, y->uidl);
			g_assert_cmpuint(a.span_hash[k + i], ==, b.span_hash[i]);
			g_assert_cmpuint(a.fingerprint[k + i], ==, b.fingerprint[i]);
			/* and the sizes are the stuffer's own count */
			g_assert_cmpuint(y->size, ==,
					 mpop_stuffer_measure(&stuff, map + y->offset, y->length));
		}
		mpop_mbox_index_clear(&b);
	next:
		munmap(map, content->len);
		mpop_mbox_index_clear(&a);
	}
	g_assert_cmpuint(tried, >, rounds / 2);
}

/* ---- the persisted index ---- */

static char *
index_path(Fixture *f)
{
	return g_build_filename(f->dir, ".user.mpopd-index", NULL);
}

/* The messages of a scan without any index, for comparison: of a copy, as the mailbox
 * itself may be open. */
static MpopMailbox *
fresh_scan(Fixture *f)
{
	g_autofree char *copy = g_build_filename(f->dir, "fresh", NULL);
	g_autoptr(GBytes) now = slurp(f->path);
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb;

	put(copy, g_bytes_get_data(now, NULL), (gssize)g_bytes_get_size(now));
	f->cfg->mbox_index = FALSE;
	mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, f->cfg, "user", copy, &error);
	f->cfg->mbox_index = TRUE;
	g_assert_no_error(error);
	unlink(copy);
	return mb;
}

/* mb holds exactly the messages a fresh scan finds: boundaries and sizes; and each sends
 * what LIST says. */
static void
assert_as_fresh(Fixture *f, MpopMailbox *mb)
{
	g_autoptr(MpopMailbox) fresh = fresh_scan(f);

	g_assert_cmpuint(mb->n_msgs, ==, fresh->n_msgs);
	for (guint i = 0; i < mb->n_msgs; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GString) got = NULL;
		g_assert_cmpuint(mb->msgs[i].offset, ==, fresh->msgs[i].offset);
		g_assert_cmpuint(mb->msgs[i].length, ==, fresh->msgs[i].length);
		g_assert_cmpuint(mb->msgs[i].from_len, ==, fresh->msgs[i].from_len);
		g_assert_cmpuint(mb->msgs[i].size, ==, fresh->msgs[i].size);
		got = retr(mb, i, &error);
		g_assert_no_error(error);
		g_assert_cmpuint(got->len, ==, mb->msgs[i].size);
	}
}

static gboolean
uidls_unique(MpopMailbox *mb)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);

	for (guint i = 0; i < mb->n_msgs; i++)
		if (!g_hash_table_add(seen, mb->msgs[i].uidl) ||
		    !mpop_uidl_valid(mb->msgs[i].uidl, strlen(mb->msgs[i].uidl)))
			return FALSE;
	return TRUE;
}

static void
dele_commit(Fixture *f, guint idx)
{
	g_autoptr(MpopMailbox) mb = open_ok(f);
	g_autoptr(GError) error = NULL;

	g_assert_true(mpop_mailbox_dele(mb, idx));
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
}

/* A second login takes everything from the index and writes nothing. */
static void
test_index_reused(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(20, "i", 300);
	g_autofree char *ipath = index_path(f);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(MpopMailbox) mb2 = NULL;
	struct stat a, b;

	put(f->path, s->str, (gssize)s->len);
	mb = open_ok(f);
	g_assert_cmpint(lstat(ipath, &a), ==, 0);
	g_assert_true(S_ISREG(a.st_mode));
	g_assert_cmpuint(a.st_mode & 0777, ==, 0600);
	g_assert_cmpuint(a.st_uid, ==, geteuid());
	{
		g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);
		for (guint i = 0; i < mb->n_msgs; i++)
			g_ptr_array_add(ids, g_strdup(mb->msgs[i].uidl));
		g_clear_pointer(&mb, mpop_mailbox_close);
		mb2 = open_ok(f);
		g_assert_cmpuint(mb2->n_msgs, ==, ids->len);
		for (guint i = 0; i < ids->len; i++)
			g_assert_cmpstr(mb2->msgs[i].uidl, ==, ids->pdata[i]);
	}
	g_assert_cmpint(lstat(ipath, &b), ==, 0);
	g_assert_cmpuint(a.st_ino, ==, b.st_ino); /* not written again */
	assert_as_fresh(f, mb2);
}

/* Two messages share a Message-ID (different bodies), then a third: after DELE 1 + QUIT the
 * survivor keeps "<same@example.org>-2" (RFC 1939 §7: a UIDL stays with its message). */
static void
test_index_dup_message_id(Fixture *f, gconstpointer data)
{
	const char *box = "From a@x Mon Jan  1 00:00:00 2024\nMessage-ID: <same@example.org>\n\n"
			  "first body\n\n"
			  "From b@x Mon Jan  1 00:00:01 2024\nMessage-ID: <same@example.org>\n\n"
			  "second, another body\n\n"
			  "From c@x Mon Jan  1 00:00:02 2024\nMessage-ID: <third@example.org>\n\n"
			  "third\n\n";
	g_autofree char *ipath = index_path(f);
	g_autoptr(MpopMailbox) mb = NULL;
	struct stat a, b;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "<same@example.org>");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<same@example.org>-2");
	g_clear_pointer(&mb, mpop_mailbox_close);
	dele_commit(f, 0);
	/* UPDATE wrote the index of the new file, and the next login takes it as it is */
	g_assert_cmpint(lstat(ipath, &a), ==, 0);
	mb = open_ok(f);
	g_assert_cmpint(lstat(ipath, &b), ==, 0);
	g_assert_cmpuint(a.st_ino, ==, b.st_ino);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "<same@example.org>-2");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<third@example.org>");
	assert_retr(mb, 0, "Message-ID: <same@example.org>\r\n\r\nsecond, another body\r\n");
	assert_as_fresh(f, mb);
}

/* The same with two identical messages (no Message-ID: the header digest). */
static void
test_index_identical(Fixture *f, gconstpointer data)
{
	const char *msg = "From a@x Mon Jan  1 00:00:00 2024\nSubject: same\n\nbody\n\n";
	g_autofree char *box = g_strconcat(msg, msg, msg, NULL);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autofree char *second = NULL, *third = NULL;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_true(uidls_unique(mb));
	second = g_strdup(mb->msgs[1].uidl);
	third = g_strdup(mb->msgs[2].uidl);
	g_clear_pointer(&mb, mpop_mailbox_close);
	dele_commit(f, 0);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, second);
	g_assert_cmpstr(mb->msgs[1].uidl, ==, third);
}

/* A message deleted and delivered again with the same content gets a new UIDL: a client
 * that remembers the old one would never fetch the new copy. */
static void
test_index_redelivered(Fixture *f, gconstpointer data)
{
	const char *keep = "From k@x Mon Jan  1 00:00:00 2024\nMessage-ID: <keep@x>\n\nk\n\n";
	const char *msg = "From a@x Mon Jan  1 00:00:00 2024\nMessage-ID: <again@x>\n\nbody\n\n";
	g_autofree char *box = g_strconcat(keep, msg, NULL);
	g_autoptr(MpopMailbox) mb = NULL;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<again@x>");
	g_clear_pointer(&mb, mpop_mailbox_close);
	dele_commit(f, 1);
	append(f->path, msg);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "<keep@x>");
	g_assert_cmpstr(mb->msgs[1].uidl, !=, "<again@x>");
	g_assert_true(g_str_has_prefix(mb->msgs[1].uidl, "<again@x>-"));
	assert_as_fresh(f, mb);
	/* and it keeps that new one */
	{
		g_autofree char *id = g_strdup(mb->msgs[1].uidl);
		g_autoptr(MpopMailbox) mb2 = NULL;
		g_clear_pointer(&mb, mpop_mailbox_close);
		mb2 = open_ok(f);
		g_assert_cmpstr(mb2->msgs[1].uidl, ==, id);
	}
}

/* Duplicates delivered between sessions get fresh UIDLs; every UIDL stays with its message
 * through appends and deletions, and none comes back. */
static void
test_index_dup_appended(Fixture *f, gconstpointer data)
{
	g_autoptr(GHashTable) ever = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func(g_free);

	put(f->path, "From a@x Mon Jan  1 00:00:00 2024\nMessage-ID: <d@x>\n\nA\n\n", -1);
	for (guint round = 0; round < 6; round++) {
		g_autoptr(MpopMailbox) mb = open_ok(f);
		g_autofree char *m = NULL;
		g_assert_true(uidls_unique(mb));
		/* the messages seen before keep their UIDLs, in order */
		g_assert_cmpuint(mb->n_msgs, ==, ids->len + 1);
		for (guint i = 0; i < ids->len; i++)
			g_assert_cmpstr(mb->msgs[i].uidl, ==, ids->pdata[i]);
		for (guint i = ids->len; i < mb->n_msgs; i++) {
			g_assert_true(g_hash_table_add(ever, g_strdup(mb->msgs[i].uidl)));
			g_ptr_array_add(ids, g_strdup(mb->msgs[i].uidl));
		}
		assert_as_fresh(f, mb);
		/* every other round the first message goes */
		if (round % 2 == 1) {
			g_autoptr(GError) error = NULL;
			g_assert_true(mpop_mailbox_dele(mb, 0));
			g_assert_true(mpop_mailbox_commit(mb, &error));
			g_assert_no_error(error);
			g_ptr_array_remove_index(ids, 0);
		}
		g_clear_pointer(&mb, mpop_mailbox_close);
		m = g_strdup_printf("From b@x Mon Jan  1 00:00:%02u 2024\nMessage-ID: <d@x>\n\n"
				    "copy %u\n\n",
				    round + 1, round);
		append(f->path, m);
	}
	g_assert_cmpstr(ids->pdata[0], !=, "<d@x>");
}

/* ---- a missing, stale, truncated or hostile index is treated as absent ---- */

static GBytes *
index_bytes(Fixture *f)
{
	g_autofree char *ipath = index_path(f);

	return slurp(ipath);
}

static void
put_index(Fixture *f, const void *data, gsize len)
{
	g_autofree char *ipath = index_path(f);

	unlink(ipath);
	put(ipath, data, (gssize)len);
	g_assert_cmpint(chmod(ipath, 0600), ==, 0);
}

static void
test_index_hostile(Fixture *f, gconstpointer data)
{
	static const char *const cases[] = {
		"missing",	  "garbage",  "truncated", "oversized", "symlink", "other-owner",
		"group-readable", "hardlink", "checksum",  "stale",	"fifo",	   "directory",
	};
	g_autoptr(GString) s = make_messages(30, "h", 500);
	g_autofree char *ipath = index_path(f);
	g_autofree char *other = g_build_filename(f->dir, "other-index", NULL);

	for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
		g_autoptr(GBytes) good = NULL;
		g_autoptr(MpopMailbox) mb = NULL;
		g_autoptr(MpopMailbox) fresh = NULL;
		const char *what = cases[c];
		gsize len;
		const guint8 *d;

		g_test_message("case %s", what);
		put(f->path, s->str, (gssize)s->len);
		g_clear_pointer(&mb, mpop_mailbox_close);
		mb = open_ok(f); /* writes a good index */
		g_clear_pointer(&mb, mpop_mailbox_close);
		good = index_bytes(f);
		d = g_bytes_get_data(good, &len);
		unlink(other);
		if (strcmp(what, "missing") == 0) {
			unlink(ipath);
		} else if (strcmp(what, "garbage") == 0) {
			put_index(f, "mpopdidx garbage that is not an index at all", 44);
		} else if (strcmp(what, "truncated") == 0) {
			put_index(f, d, len - 9);
		} else if (strcmp(what, "oversized") == 0) {
			g_autofree char *big = g_malloc0(MPOP_MBOX_STORE_MAX + 1);
			memcpy(big, d, len);
			put_index(f, big, MPOP_MBOX_STORE_MAX + 1);
		} else if (strcmp(what, "symlink") == 0) {
			put(other, (const char *)d, (gssize)len);
			chmod(other, 0600);
			unlink(ipath);
			g_assert_cmpint(symlink(other, ipath), ==, 0);
		} else if (strcmp(what, "other-owner") == 0) {
			g_assert_cmpint(chown(ipath, geteuid() + 1, getegid()), ==, 0);
		} else if (strcmp(what, "group-readable") == 0) {
			g_assert_cmpint(chmod(ipath, 0640), ==, 0);
		} else if (strcmp(what, "hardlink") == 0) {
			g_assert_cmpint(link(ipath, other), ==, 0);
		} else if (strcmp(what, "checksum") == 0) {
			g_autofree guint8 *bad = g_memdup2(d, len);
			bad[len / 2] ^= 0x20;
			put_index(f, bad, len);
		} else if (strcmp(what, "stale") == 0) {
			/* a good index of another file at the same path */
			g_autoptr(GString) t = make_messages(31, "h", 400);
			put(f->path, t->str, (gssize)t->len);
			mb = open_ok(f);
			g_clear_pointer(&mb, mpop_mailbox_close);
			g_clear_pointer(&good, g_bytes_unref);
			good = index_bytes(f);
			put(f->path, s->str, (gssize)s->len);
			put_index(f, g_bytes_get_data(good, NULL), g_bytes_get_size(good));
		} else if (strcmp(what, "fifo") == 0) {
			unlink(ipath);
			g_assert_cmpint(mkfifo(ipath, 0600), ==, 0);
		} else if (strcmp(what, "directory") == 0) {
			unlink(ipath);
			g_assert_cmpint(mkdir(ipath, 0700), ==, 0);
		}
		mb = open_ok(f);
		fresh = fresh_scan(f);
		assert_as_fresh(f, mb);
		/* UIDLs are those of a scan without an index; a stale index of ours is still
		 * memory of UIDLs given out: its messages are gone, so the new ones with the
		 * same Message-IDs get fresh UIDLs (never reused) */
		g_assert_true(uidls_unique(mb));
		for (guint i = 0; i < mb->n_msgs; i++) {
			if (strcmp(what, "stale") == 0)
				g_assert_true(
					g_str_has_prefix(mb->msgs[i].uidl, fresh->msgs[i].uidl));
			else
				g_assert_cmpstr(mb->msgs[i].uidl, ==, fresh->msgs[i].uidl);
		}
		/* the symlink's target was never written through */
		if (strcmp(what, "symlink") == 0) {
			g_autoptr(GBytes) t = slurp(other);
			g_assert_true(g_bytes_equal(t, good));
		}
		if (strcmp(what, "directory") == 0)
			rmdir(ipath);
		unlink(other);
	}
}

/* The mbox changed between sessions: appended, truncated, rewritten, replaced with the same
 * size and mtime (by rename, and in place). Each time exactly what a fresh scan finds, and
 * UIDLs of messages still there are kept. */
static void
test_index_changes(Fixture *f, gconstpointer data)
{
	static const char *const cases[] = {"appended",	 "appended-to-last",  "truncated",
					    "rewritten", "same-size-renamed", "same-size-in-place",
					    "emptied"};

	for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
		const char *what = cases[c];
		g_autoptr(GString) s = make_messages(10, "c", 700);
		g_autoptr(MpopMailbox) mb = NULL;
		g_autoptr(GPtrArray) before = g_ptr_array_new_with_free_func(g_free);
		struct stat sb;

		g_test_message("case %s", what);
		put(f->path, s->str, (gssize)s->len);
		mb = open_ok(f);
		for (guint i = 0; i < mb->n_msgs; i++)
			g_ptr_array_add(before, g_strdup(mb->msgs[i].uidl));
		g_clear_pointer(&mb, mpop_mailbox_close);
		g_assert_cmpint(stat(f->path, &sb), ==, 0);
		if (strcmp(what, "appended") == 0) {
			append(f->path,
			       "From new@x Mon Jan  1 00:00:00 2024\nMessage-ID: <n@x>\n\nn\n");
		} else if (strcmp(what, "appended-to-last") == 0) {
			/* no separator before it: the last message grows */
			g_autoptr(GString) t = make_messages(10, "c", 700);
			g_string_truncate(t, t->len - 1);
			put(f->path, t->str, (gssize)t->len);
			mb = open_ok(f);
			g_clear_pointer(&mb, mpop_mailbox_close);
			append(f->path, "From not-a-start\nmore of the last message\n");
		} else if (strcmp(what, "truncated") == 0) {
			g_assert_cmpint(truncate(f->path, (off_t)(s->len / 2)), ==, 0);
		} else if (strcmp(what, "rewritten") == 0) {
			g_autoptr(GString) t = make_messages(12, "c", 500);
			mpop_autofd fd = open(f->path, O_WRONLY | O_TRUNC);
			g_assert_cmpint(mpop_write_all(fd, t->str, t->len), ==, 0);
		} else {
			/* the same size and mtime, other Message-IDs (same length): only the
			 * inode or the ctime shows it */
			g_autofree char *t = g_strdup(s->str);
			g_autofree char *tmp = g_build_filename(f->dir, "replacement", NULL);
			struct timespec times[2] = {sb.st_atim, sb.st_mtim};
			for (char *q = t; (q = strstr(q, "<c-")) != NULL; q++)
				q[1] = 'x';
			if (strcmp(what, "emptied") == 0) {
				put(f->path, "", 0);
			} else if (strcmp(what, "same-size-renamed") == 0) {
				put(tmp, t, (gssize)s->len);
				g_assert_cmpint(utimensat(AT_FDCWD, tmp, times, 0), ==, 0);
				g_assert_cmpint(rename(tmp, f->path), ==, 0);
			} else {
				mpop_autofd fd = open(f->path, O_WRONLY);
				g_assert_cmpint(mpop_write_all(fd, t, s->len), ==, 0);
				g_assert_cmpint(futimens(fd, times), ==, 0);
			}
		}
		mb = open_ok(f);
		assert_as_fresh(f, mb);
		g_assert_true(uidls_unique(mb));
		if (strcmp(what, "appended") == 0 || strcmp(what, "truncated") == 0) {
			for (guint i = 0; i + 1 < mb->n_msgs && i < before->len; i++)
				g_assert_cmpstr(mb->msgs[i].uidl, ==, before->pdata[i]);
		}
		if (g_str_has_prefix(what, "same-size")) {
			for (guint i = 0; i < mb->n_msgs; i++)
				g_assert_true(g_str_has_prefix(mb->msgs[i].uidl, "<x-"));
		}
		g_clear_pointer(&mb, mpop_mailbox_close);
	}
}

/* An index of ours that is well-formed but claims a wrong size: LIST believes it, RETR
 * refuses rather than send other octets (a small message counted before it is sent, a big
 * one as it streams: no terminator), and the index is dropped. data: body bytes. */
static void
test_index_lying_size(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) s = make_messages(3, "l", GPOINTER_TO_SIZE(data));
	g_autoptr(GStringChunk) strings = g_string_chunk_new(256);
	g_autofree char *ipath = index_path(f);
	g_autoptr(MpopMailbox) mb = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GByteArray) b = NULL;
	g_autoptr(GBytes) good = NULL;
	MpopMboxStore st;
	const char *why = NULL;

	put(f->path, s->str, (gssize)s->len);
	mb = open_ok(f);
	g_clear_pointer(&mb, mpop_mailbox_close);
	good = index_bytes(f);
	g_assert_true(mpop_mbox_store_parse(g_bytes_get_data(good, NULL), g_bytes_get_size(good),
					    strings, &st, &why));
	st.msgs[1].size -= 1;
	b = mpop_mbox_store_format(&st);
	put_index(f, b->data, b->len);
	mpop_mbox_store_clear(&st);
	mb = open_ok(f);
	g_assert_cmpuint(mb->msgs[1].size, ==, mb->msgs[0].size - 1); /* believed for LIST */
	g_assert_null(retr(mb, 1, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
	g_assert_false(g_file_test(ipath, G_FILE_TEST_EXISTS));
	g_clear_pointer(&mb, mpop_mailbox_close);
	mb = open_ok(f);
	assert_as_fresh(f, mb);
}

/* Another program rewrote the mbox (deleting a message, as a mail reader does): the
 * messages still there keep their UIDLs, duplicates included. */
static void
test_index_rewritten_elsewhere(Fixture *f, gconstpointer data)
{
	const char *a = "From a@x Mon Jan  1 00:00:00 2024\nMessage-ID: <s@x>\n\none\n\n";
	const char *b = "From b@x Mon Jan  1 00:00:01 2024\nMessage-ID: <s@x>\n\ntwo two\n\n";
	const char *c = "From c@x Mon Jan  1 00:00:02 2024\nMessage-ID: <c@x>\n\nthree\n\n";
	g_autofree char *box = g_strconcat(a, b, c, NULL);
	g_autofree char *after = g_strconcat(b, c, NULL);
	g_autofree char *tmp = g_build_filename(f->dir, "rewrite", NULL);
	g_autoptr(MpopMailbox) mb = NULL;

	put(f->path, box, -1);
	mb = open_ok(f);
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<s@x>-2");
	g_clear_pointer(&mb, mpop_mailbox_close);
	put(tmp, after, -1);
	g_assert_cmpint(rename(tmp, f->path), ==, 0);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "<s@x>-2");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "<c@x>");
	g_clear_pointer(&mb, mpop_mailbox_close);
	/* and "<s@x>" (gone) is not handed to a new copy */
	append(f->path, a);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, 3);
	g_assert_cmpstr(mb->msgs[2].uidl, !=, "<s@x>");
	g_assert_true(uidls_unique(mb));
}

/* The parser: a round trip, and every cut, every flipped byte and random bytes refused. */
static void
test_store_parse(void)
{
	g_autoptr(GStringChunk) strings = g_string_chunk_new(256);
	MpopMessage msgs[2] = {
		{.uidl = (char *)"<a@x>", .size = 12, .offset = 10, .length = 10, .from_len = 7},
		{.uidl = (char *)"b", .size = 5, .offset = 30, .length = 4, .from_len = 9}};
	guint32 span[2] = {1, 2};
	guint64 fp[2] = {3, 4}, retired[3] = {5, 6, 7};
	MpopMboxStore st = {.rules = 9,
			    .size = 40,
			    .first_from = 3,
			    .counter = 12,
			    .n_msgs = 2,
			    .msgs = msgs,
			    .span_hash = span,
			    .fingerprint = fp,
			    .n_retired = 3,
			    .retired = retired};
	g_autoptr(GByteArray) b = mpop_mbox_store_format(&st);
	g_autoptr(GRand) rand = g_rand_new_with_seed(7);
	MpopMboxStore got;
	const char *why = NULL;

	g_assert_true(mpop_mbox_store_parse((char *)b->data, b->len, strings, &got, &why));
	g_assert_cmpuint(got.n_msgs, ==, 2);
	g_assert_cmpstr(got.msgs[0].uidl, ==, "<a@x>");
	g_assert_cmpuint(got.msgs[1].offset, ==, 30);
	g_assert_cmpuint(got.retired[2], ==, 7);
	g_assert_cmpuint(got.counter, ==, 12);
	mpop_mbox_store_clear(&got);
	for (guint n = 0; n < b->len; n++)
		g_assert_false(mpop_mbox_store_parse((char *)b->data, n, strings, &got, &why));
	for (guint i = 0; i < b->len; i++) {
		b->data[i] ^= 1;
		g_assert_false(mpop_mbox_store_parse((char *)b->data, b->len, strings, &got, &why));
		b->data[i] ^= 1;
	}
	for (guint r = 0; r < 1000; r++) {
		guint8 junk[300];
		for (guint i = 0; i < sizeof(junk); i++)
			junk[i] = (guint8)g_rand_int(rand);
		memcpy(junk, "mpopdidx\1\0\0\0", 12);
		g_assert_false(
			mpop_mbox_store_parse((char *)junk, sizeof(junk), strings, &got, &why));
	}
	/* Well-formed but overlapping messages, or a duplicate UIDL: refused all the same. */
	msgs[1].offset = 15;
	g_byte_array_unref(b);
	b = mpop_mbox_store_format(&st);
	g_assert_false(mpop_mbox_store_parse((char *)b->data, b->len, strings, &got, &why));
	msgs[1].offset = 30;
	msgs[1].uidl = (char *)"<a@x>";
	g_byte_array_unref(b);
	b = mpop_mbox_store_format(&st);
	g_assert_false(mpop_mbox_store_parse((char *)b->data, b->len, strings, &got, &why));
	g_assert_cmpstr(why, ==, "duplicate UIDL");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/mbox/scan/table", test_scan_table);
	g_test_add_func("/mbox/scan/bad-regex", test_scan_bad_regex);
	g_test_add_func("/mbox/uidl/table", test_uidl_table);
#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD("/mbox/perl-fixture", test_perl_fixture);
	ADD("/mbox/sizes-match", test_sizes_match);
	ADD("/mbox/mixed-content", test_mixed_content);
	ADD("/mbox/absent-and-empty", test_absent_and_empty);
	ADD("/mbox/prefix-kept", test_prefix_kept);
	ADD("/mbox/symlink-refused", test_symlink_refused);
	ADD("/mbox/big-message", test_big_message);
	ADD("/mbox/many", test_many);
	ADD("/mbox/huge-message-memory", test_huge_message_memory);
	ADD("/mbox/index-from", test_index_from);
	ADD("/mbox/index/reused", test_index_reused);
	ADD("/mbox/index/dup-message-id", test_index_dup_message_id);
	ADD("/mbox/index/identical", test_index_identical);
	ADD("/mbox/index/redelivered", test_index_redelivered);
	ADD("/mbox/index/dup-appended", test_index_dup_appended);
	ADD("/mbox/index/hostile", test_index_hostile);
	ADD("/mbox/index/changes", test_index_changes);
	g_test_add("/mbox/index/lying-size", Fixture, GSIZE_TO_POINTER(200), fixture_setup,
		   test_index_lying_size, fixture_teardown);
	g_test_add("/mbox/index/lying-size-big", Fixture, GSIZE_TO_POINTER(300000), fixture_setup,
		   test_index_lying_size, fixture_teardown);
	ADD("/mbox/index/rewritten-elsewhere", test_index_rewritten_elsewhere);
	g_test_add_func("/mbox/store/parse", test_store_parse);
	ADD("/mbox/append-during-session", test_append_during_session);
	ADD("/mbox/rewrite-detected", test_rewrite_detected);
	ADD("/mbox/owner-mode-kept", test_owner_mode_kept);
	for (gsize i = 0; i < G_N_ELEMENTS(owner_cases); i++) {
		g_autofree char *name =
			g_strdup_printf("/mbox/owner-under-seccomp/%s", owner_cases[i].what);
		g_test_add(name, Fixture, &owner_cases[i], fixture_setup, test_owner_under_seccomp,
			   fixture_teardown);
	}
	ADD("/mbox/session-lock", test_session_lock);
	ADD("/mbox/spool-mode", test_spool_mode);
	ADD("/mbox/uidl-stable", test_uidl_stable);
	ADD("/mbox/crash-injection", test_crash_injection);
	g_test_add_func("/mbox/enospc", test_enospc);
	return g_test_run();
}
