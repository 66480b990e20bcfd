/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the message table (mailbox.c) and the maildir backend. */
#include "mailbox.h"
#include "stream-writer.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- fixtures ---- */

static void
rm_rf(const char *path)
{
	GDir *d = g_dir_open(path, 0, NULL);

	if (d != NULL) {
		const char *n;
		while ((n = g_dir_read_name(d)) != NULL) {
			g_autofree char *p = g_build_filename(path, n, NULL);
			if (g_file_test(p, G_FILE_TEST_IS_DIR) &&
			    !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
				rm_rf(p);
			else
				unlink(p);
		}
		g_dir_close(d);
	}
	rmdir(path);
}

static char *
make_maildir(void)
{
	g_autoptr(GError) error = NULL;
	char *dir = g_dir_make_tmp("mpop-maildir-XXXXXX", &error);

	g_assert_no_error(error);
	for (guint i = 0; i < 3; i++) {
		static const char *const subs[] = {"cur", "new", "tmp"};
		g_autofree char *p = g_build_filename(dir, subs[i], NULL);
		g_assert_cmpint(mkdir(p, 0700), ==, 0);
	}
	return dir;
}

static void
put_len(const char *dir, const char *rel, const char *data, gssize len)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *p = g_build_filename(dir, rel, NULL);

	g_file_set_contents(p, data, len, &error);
	g_assert_no_error(error);
}

static void
put(const char *dir, const char *rel, const char *data)
{
	put_len(dir, rel, data, -1);
}

static gboolean
exists(const char *dir, const char *rel)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	struct stat sb;

	return lstat(p, &sb) == 0;
}

static void
mv(const char *dir, const char *from, const char *to)
{
	g_autofree char *a = g_build_filename(dir, from, NULL);
	g_autofree char *b = g_build_filename(dir, to, NULL);

	g_assert_cmpint(rename(a, b), ==, 0);
}

static void
rm(const char *dir, const char *rel)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);

	g_assert_cmpint(remove(p), ==, 0);
}

static gint
cmp_names(gconstpointer a, gconstpointer b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in the Maildir root, sorted, space-separated. */
static char *
root_names(const char *dir)
{
	g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;
	GString *s = g_string_new(NULL);

	g_assert_nonnull(d);
	while ((n = g_dir_read_name(d)) != NULL)
		g_ptr_array_add(names, g_strdup(n));
	g_dir_close(d);
	g_ptr_array_sort(names, cmp_names);
	for (guint i = 0; i < names->len; i++)
		g_string_append_printf(s, "%s%s", i ? " " : "", (char *)names->pdata[i]);
	return g_string_free(s, FALSE);
}

#define g_assert_cmpstr_free(a, op, b)                                                             \
	do {                                                                                       \
		g_autofree char *got_ = (a);                                                       \
		g_assert_cmpstr(got_, op, b);                                                      \
	} while (0)

static MpopMailbox *
open_ok(const char *dir)
{
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb = mpop_mailbox_open(&mpop_mailbox_maildir_ops, NULL, "user", dir, &error);

	g_assert_no_error(error);
	g_assert_nonnull(mb);
	return mb;
}

/* ---- write recorder ---- */

typedef struct {
	GPtrArray *writes; /* GBytes, one per call; NULL: only count */
	guint calls;
	size_t max_len;
	size_t total;
	GChecksum *sum;
	int fail_at; /* fail the n-th call (1-based) with -EPIPE; 0: never */
} Rec;

static int
rec_write(gpointer ctx, const void *data, size_t len)
{
	Rec *r = ctx;

	r->calls++;
	if (r->fail_at > 0 && r->calls == (guint)r->fail_at)
		return -EPIPE;
	r->max_len = MAX(r->max_len, len);
	r->total += len;
	if (r->writes != NULL)
		g_ptr_array_add(r->writes, g_bytes_new(data, len));
	if (r->sum != NULL)
		g_checksum_update(r->sum, data, (gssize)len);
	return 0;
}

static void
rec_init(Rec *r)
{
	memset(r, 0, sizeof(*r));
	r->writes = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
}

static void
rec_clear(Rec *r)
{
	g_clear_pointer(&r->writes, g_ptr_array_unref);
	g_clear_pointer(&r->sum, g_checksum_free);
}

/* ---- UIDL helpers ---- */

static void
test_uidl_valid(void)
{
	static const struct {
		const char *s;
		gboolean ok;
	} cases[] = {
		{"a", TRUE},	  {"!~", TRUE},		  {"", FALSE},		{"a b", FALSE},
		{"a\x7f", FALSE}, {"caf\xc3\xa9", FALSE}, {"tab\there", FALSE},
	};
	char buf[72];

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpint(mpop_uidl_valid(cases[i].s, strlen(cases[i].s)), ==, cases[i].ok);
	memset(buf, 'x', sizeof(buf));
	g_assert_true(mpop_uidl_valid(buf, 70));
	g_assert_false(mpop_uidl_valid(buf, 71));
	g_assert_false(mpop_uidl_valid(NULL, 0));
	g_assert_false(mpop_uidl_valid("a\0b", 3));
}

static void
test_uidl_digest(void)
{
	g_autofree char *d = mpop_uidl_digest("abc", 3);
	g_autofree char *e = mpop_uidl_digest("abd", 3);

	/* SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad */
	g_assert_cmpstr(d, ==, "ba7816bf8f01cfea414140de5dae2223b00361a3");
	g_assert_cmpstr(d, !=, e);
	g_assert_true(mpop_uidl_valid(e, strlen(e)));
}

/* A bare table as the backends leave it before making UIDLs unique. */
static MpopMailbox *
table_new(const char *const *in, guint n)
{
	MpopMailbox *mb = g_new0(MpopMailbox, 1);

	mb->strings = g_string_chunk_new(64);
	mb->msgs = g_new0(MpopMessage, MAX(n, 1));
	mb->n_msgs = n;
	for (guint i = 0; i < n; i++)
		mb->msgs[i].uidl = in[i] != NULL ? mpop_mailbox_intern(mb, in[i]) : NULL;
	return mb;
}

static void
check_unique(const char *const *in, const char *const *want, guint n)
{
	g_autoptr(MpopMailbox) mb = table_new(in, n);

	mpop_uidl_make_unique(mb);
	for (guint i = 0; i < n; i++) {
		g_assert_cmpstr(mb->msgs[i].uidl, ==, want[i]);
		g_assert_true(mpop_uidl_valid(mb->msgs[i].uidl, strlen(mb->msgs[i].uidl)));
	}
}

/* The table stays 32 bytes a message (issue 3: 50 000 messages in a few MB). */
static void
test_message_size(void)
{
	MpopMessage m = {0};

	g_assert_cmpuint(sizeof(MpopMessage), <=, 32);
	/* DELE/RSET assign booleans to the one-bit field. */
	m.deleted = TRUE;
	m.from_len = (G_MAXUINT32 >> 1);
	g_assert_true(m.deleted);
	g_assert_cmpuint(m.from_len, ==, G_MAXUINT32 >> 1);
	m.deleted = FALSE;
	g_assert_false(m.deleted);
	g_assert_cmpuint(m.from_len, ==, G_MAXUINT32 >> 1);
}

/* DELE marks once and only an existing message; RSET unmarks all; STAT and the UPDATE
 * count follow the marks. */
static void
test_dele_rset(void)
{
	static const char *const uidls[] = {"a", "b", "c"};
	g_autoptr(MpopMailbox) mb = table_new(uidls, 3);
	guint count;
	guint64 octets;

	for (guint i = 0; i < 3; i++)
		mb->msgs[i].size = 10u << i;
	g_assert_true(mpop_mailbox_dele(mb, 1));
	g_assert_false(mpop_mailbox_dele(mb, 1)); /* already marked */
	g_assert_false(mpop_mailbox_dele(mb, 3)); /* no such message */
	g_assert_false(mpop_mailbox_dele(mb, G_MAXUINT));
	g_assert_true(mb->msgs[1].deleted);
	g_assert_false(mb->msgs[0].deleted || mb->msgs[2].deleted);
	mpop_mailbox_stat(mb, &count, &octets);
	g_assert_cmpuint(count, ==, 2);
	g_assert_cmpuint(octets, ==, 10 + 40);
	g_assert_true(mpop_mailbox_dele(mb, 0));
	g_assert_cmpuint(mpop_mailbox_deleted_count(mb, &octets), ==, 2);
	g_assert_cmpuint(octets, ==, 10 + 20);

	mpop_mailbox_rset(mb);
	for (guint i = 0; i < 3; i++)
		g_assert_false(mb->msgs[i].deleted);
	g_assert_cmpuint(mpop_mailbox_deleted_count(mb, NULL), ==, 0);
	mpop_mailbox_stat(mb, &count, &octets);
	g_assert_cmpuint(count, ==, 3);
	g_assert_cmpuint(octets, ==, 70);
	g_assert_true(mpop_mailbox_dele(mb, 1)); /* markable again after RSET */
	mpop_mailbox_rset(mb);
	mpop_mailbox_rset(mb); /* twice is harmless */
	g_assert_cmpuint(mpop_mailbox_deleted_count(mb, NULL), ==, 0);

	/* An empty maildrop: nothing to mark, RSET does nothing. */
	g_autoptr(MpopMailbox) empty = table_new(NULL, 0);
	g_assert_false(mpop_mailbox_dele(empty, 0));
	mpop_mailbox_rset(empty);
}

/* The maildrop path: the user list's mailbox wins, then location, then the format's default;
 * what comes from the user name is checked (the grammar itself is tested in test-util). */
static void
test_location(void)
{
	g_autoptr(MpopConfig) cfg = mpop_config_new_default();
	g_autoptr(GError) error = NULL;
	char *s;

	g_free(cfg->mail_spool_dir);
	cfg->mail_spool_dir = g_strdup("/var/spool/mail");

	cfg->format = MPOP_FORMAT_MAILDIR;
	s = mpop_mailbox_location(cfg, "bob", "/home/bob", NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(s, ==, "/home/bob/Maildir");
	g_free(s);
	s = mpop_mailbox_location(cfg, "bob", NULL, NULL, &error);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	g_assert_null(s);
	g_clear_error(&error);

	cfg->format = MPOP_FORMAT_MBOX;
	s = mpop_mailbox_location(cfg, "bob", NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(s, ==, "/var/spool/mail/bob");
	g_free(s);
	s = mpop_mailbox_location(cfg, "../bob", NULL, NULL, &error);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	g_assert_null(s);
	g_clear_error(&error);

	g_free(cfg->location);
	cfg->location = g_strdup("/var/vmail/%d/%n/Maildir");
	s = mpop_mailbox_location(cfg, "bob@example.org", "/home/bob", NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(s, ==, "/var/vmail/example.org/bob/Maildir");
	g_free(s);
	/* would be /var/vmail/../x/Maildir */
	s = mpop_mailbox_location(cfg, "x@..", NULL, NULL, &error);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	g_assert_nonnull(strstr(error->message, "(%d) \"..\""));
	g_assert_null(s);
	g_clear_error(&error);
	s = mpop_mailbox_location(cfg, "@example.org", NULL, NULL, &error);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	g_assert_null(s);
	g_clear_error(&error);

	g_free(cfg->location);
	cfg->location = g_strdup("%s/%%%u");
	s = mpop_mailbox_location(cfg, "bob", NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(s, ==, "/var/spool/mail/%bob");
	g_free(s);

	/* The user list's mailbox (checked absolute when the list is read) is used as is. */
	s = mpop_mailbox_location(cfg, "x@..", NULL, "/srv/mail/x", &error);
	g_assert_no_error(error);
	g_assert_cmpstr(s, ==, "/srv/mail/x");
	g_free(s);
}

/* Many UIDLs, some prefixes of others ("u1", "u1-2", "u10"), in an order unlike the sorted
 * one; with dup set, the last one repeats the first. */
static MpopMailbox *
many_uidls(guint n, gboolean dup)
{
	g_autoptr(GPtrArray) in = g_ptr_array_new_with_free_func(g_free);
	MpopMailbox *mb;

	for (guint i = 0; i < n; i++)
		g_ptr_array_add(in, g_strdup_printf(i % 3 == 0 ? "u%u-2" : "u%u", (i * 7919u) % n));
	if (dup)
		g_ptr_array_add(in, g_strdup(in->pdata[0]));
	mb = table_new((const char *const *)in->pdata, in->len);
	return mb;
}

static void
test_uidl_unique_paths(void)
{
	const guint n = 5000;
	g_autoptr(MpopMailbox) mb = many_uidls(n, FALSE);
	g_autoptr(MpopMailbox) dup = many_uidls(n, TRUE);
	g_autofree char **before = g_new(char *, n + 1);
	g_autofree char *want = NULL;

	/* Fast path: nothing equal, so every UIDL is left as it was (the same string). */
	for (guint i = 0; i < n; i++)
		before[i] = mb->msgs[i].uidl;
	mpop_uidl_make_unique(mb);
	for (guint i = 0; i < n; i++)
		g_assert_true(mb->msgs[i].uidl == before[i]);
	/* Slow path: only the later duplicate changes, to the first free "-N". */
	for (guint i = 0; i <= n; i++)
		before[i] = dup->msgs[i].uidl;
	mpop_uidl_make_unique(dup);
	for (guint i = 0; i < n; i++)
		g_assert_true(dup->msgs[i].uidl == before[i]);
	g_assert_cmpstr(dup->msgs[n].uidl, !=, before[n]);
	/* "u0-2" itself is message 0's UIDL, so its duplicate becomes "u0-2-2". */
	want = g_strconcat(before[n], "-2", NULL);
	g_assert_cmpstr(dup->msgs[n].uidl, ==, want);
	/* A NULL UIDL is made valid as well. */
	{
		const char *in[] = {NULL, "a"};
		g_autoptr(MpopMailbox) z = table_new(in, 2);
		g_autofree char *d = mpop_uidl_digest("", 0);
		mpop_uidl_make_unique(z);
		g_assert_cmpstr(z->msgs[0].uidl, ==, d);
		g_assert_cmpstr(z->msgs[1].uidl, ==, "a");
	}
}

static void
test_uidl_unique(void)
{
	char b70[71], b68s2[71], b68s3[71];

	{
		const char *in[] = {"x", "y", "x", "x"};
		const char *want[] = {"x", "y", "x-2", "x-3"};
		check_unique(in, want, 4);
	}
	{
		/* A later message's own UIDL "x-2" is reserved: the duplicate skips it. */
		const char *in[] = {"x", "x", "x-2"};
		const char *want[] = {"x", "x-3", "x-2"};
		check_unique(in, want, 3);
	}
	memset(b70, 'b', 70);
	b70[70] = '\0';
	memset(b68s2, 'b', 68);
	memcpy(b68s2 + 68, "-2", 3);
	memset(b68s3, 'b', 68);
	memcpy(b68s3 + 68, "-3", 3);
	{
		const char *in[] = {b70, b70, b70};
		const char *want[] = {b70, b68s2, b68s3};
		check_unique(in, want, 3);
	}
	{
		g_autofree char *d = mpop_uidl_digest("a b", 3);
		g_autofree char *d2 = g_strconcat(d, "-2", NULL);
		const char *in[] = {"a b", "a b"};
		const char *want[] = {d, d2};
		check_unique(in, want, 2);
	}
}

/* ---- indexing ---- */

static void
test_order_and_move(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *target = g_build_filename(dir, "tmp", "0001.X", NULL);
	g_autofree char *link = g_build_filename(dir, "cur", "0002.L:2,", NULL);
	g_autofree char *sub = g_build_filename(dir, "cur", "0003.D", NULL);
	MpopMailbox *mb;
	static const char *const want[] = {"cur/0999.B:2,", "cur/1000.A:2,S", "cur/1001.C:2,",
					   "cur/1002.D:2,"};

	put(dir, "cur/1000.A:2,S", "A\n");
	put(dir, "new/0999.B", "B\n");
	put(dir, "cur/1001.C:2,", "C\n");
	put(dir, "new/1002.D", "D\n");
	put(dir, "tmp/0001.X", "X\n");
	put(dir, "cur/.0000.hidden", "H\n");
	put(dir, "new/.0000.hidden", "H\n");
	g_assert_cmpint(symlink(target, link), ==, 0);
	g_assert_cmpint(mkdir(sub, 0700), ==, 0);

	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	for (guint i = 0; i < 4; i++)
		g_assert_cmpstr(mb->msgs[i].name, ==, want[i]);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "0999.B");
	g_assert_cmpstr(mb->msgs[3].uidl, ==, "1002.D");
	g_assert_true(exists(dir, "cur/0999.B:2,"));
	g_assert_false(exists(dir, "new/0999.B"));
	g_assert_false(exists(dir, "new/1002.D"));
	g_assert_true(exists(dir, "tmp/0001.X"));
	g_assert_true(exists(dir, "new/.0000.hidden"));
	mpop_mailbox_close(mb);

	/* Moved messages keep their UIDL and position in the next session. */
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "0999.B");
	g_assert_cmpstr(mb->msgs[3].uidl, ==, "1002.D");
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_uidls(void)
{
	g_autofree char *dir = make_maildir();
	char n70[71], n71[71 + 4];
	g_autofree char *c70 = NULL, *c71 = NULL, *d71 = NULL, *dsp = NULL, *dhi = NULL;
	g_autoptr(GPtrArray) first = g_ptr_array_new_with_free_func(g_free);
	MpopMailbox *mb;

	memset(n70, '2', 70);
	n70[70] = '\0';
	memset(n71, '3', 71);
	n71[71] = '\0';
	c70 = g_strconcat("cur/", n70, ":2,S", NULL);
	c71 = g_strconcat("new/", n71, NULL);
	put(dir, c70, "x\n");
	put(dir, c71, "x\n");
	put(dir, "cur/1.a b:2,", "x\n");
	put(dir, "new/4.caf\xc3\xa9", "x\n");
	put(dir, "cur/0.ok:2,", "x\n");
	d71 = mpop_uidl_digest(n71, 71);
	dsp = mpop_uidl_digest("1.a b", 5);
	dhi = mpop_uidl_digest("4.caf\xc3\xa9", 7);

	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 5);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "0.ok");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, dsp);
	g_assert_cmpstr(mb->msgs[2].uidl, ==, n70);
	g_assert_cmpstr(mb->msgs[3].uidl, ==, d71);
	g_assert_cmpstr(mb->msgs[4].uidl, ==, dhi);
	for (guint i = 0; i < mb->n_msgs; i++)
		g_ptr_array_add(first, g_strdup(mb->msgs[i].uidl));
	mpop_mailbox_close(mb);

	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, first->len);
	for (guint i = 0; i < mb->n_msgs; i++)
		g_assert_cmpstr(mb->msgs[i].uidl, ==, first->pdata[i]);
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_uidl_duplicates(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *d = mpop_uidl_digest("5.a b", 5);
	g_autoptr(GPtrArray) first = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(GPtrArray) want = g_ptr_array_new_with_free_func(g_free);
	MpopMailbox *mb;

	/* Duplicate unique names (a broken delivery agent): cur/ and new/ copies. */
	put(dir, "cur/DUP:2,S", "1\n");
	put(dir, "new/DUP", "22\n");
	/* Two invalid names with the same base digest to the same value. */
	put(dir, "cur/5.a b:2,S", "333\n");
	put(dir, "new/5.a b", "4444\n");

	/* "uidl size" pairs: sizes differ, so each UIDL must stay with its message. */
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	for (guint i = 0; i < mb->n_msgs; i++) {
		g_ptr_array_add(first, g_strdup_printf("%s %" G_GUINT64_FORMAT, mb->msgs[i].uidl,
						       mb->msgs[i].size));
	}
	mpop_mailbox_close(mb);
	/* Which copy is first depends on inode numbers; the set of UIDLs does not. */
	g_ptr_array_add(want, g_strdup(d));
	g_ptr_array_add(want, g_strconcat(d, "-2", NULL));
	g_ptr_array_add(want, g_strdup("DUP"));
	g_ptr_array_add(want, g_strdup("DUP-2"));
	for (guint i = 0; i < want->len; i++) {
		const char *f = first->pdata[i];
		g_autofree char *uidl = g_strndup(f, strcspn(f, " "));
		g_assert_cmpstr(uidl, ==, want->pdata[i]);
	}

	/* Stable after the new/ copies moved to cur/ (ties are broken by inode, not name). */
	g_assert_true(exists(dir, "cur/DUP:2,"));
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	for (guint i = 0; i < mb->n_msgs; i++) {
		g_autofree char *pair = g_strdup_printf("%s %" G_GUINT64_FORMAT, mb->msgs[i].uidl,
							mb->msgs[i].size);
		g_assert_cmpstr(pair, ==, first->pdata[i]);
	}
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_sizes(void)
{
	static const struct {
		const char *data;
		guint64 size;
	} cases[] = {
		{"a\nb\n", 6}, {"a\r\nb\r\n", 6},
		{"a\nb", 6},   {"Subject: x\n\n.dot\n..two\n", 12 + 2 + 6 + 7},
		{"", 0},       {"\n", 2},
		{"a\rb\n", 5}, {"a\n\r\n\nb", 3 + 2 + 2 + 3},
	};
	g_autofree char *dir = make_maildir();
	MpopMailbox *mb;
	guint count;
	guint64 octets, total = 0;

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *rel = g_strdup_printf("%s/%u.m", i % 2 ? "new" : "cur", 100 + i);
		put(dir, rel, cases[i].data);
		total += cases[i].size;
	}
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, G_N_ELEMENTS(cases));
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++)
		g_assert_cmpuint(mb->msgs[i].size, ==, cases[i].size);

	mpop_mailbox_stat(mb, &count, &octets);
	g_assert_cmpuint(count, ==, G_N_ELEMENTS(cases));
	g_assert_cmpuint(octets, ==, total);
	g_assert_cmpuint(mpop_mailbox_deleted_count(mb, NULL), ==, 0);
	mb->msgs[0].deleted = TRUE;
	mb->msgs[3].deleted = TRUE;
	mpop_mailbox_stat(mb, &count, &octets);
	g_assert_cmpuint(count, ==, G_N_ELEMENTS(cases) - 2);
	g_assert_cmpuint(octets, ==, total - cases[0].size - cases[3].size);
	g_assert_cmpuint(mpop_mailbox_deleted_count(mb, &octets), ==, 2);
	g_assert_cmpuint(octets, ==, cases[0].size + cases[3].size);
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_missing_and_bad(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *missing = g_build_filename(dir, "nope", NULL);
	g_autofree char *file = g_build_filename(dir, "file", NULL);
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb;
	guint count = 99;

	/* Never delivered to: an empty maildrop, and nothing is created. */
	mb = open_ok(missing);
	g_assert_cmpuint(mb->n_msgs, ==, 0);
	mpop_mailbox_stat(mb, &count, NULL);
	g_assert_cmpuint(count, ==, 0);
	g_assert_true(mpop_mailbox_commit(mb, NULL));
	mpop_mailbox_close(mb);
	g_assert_false(exists(dir, "nope"));

	/* An existing maildir without cur/ or new/ is empty too. */
	rm(dir, "cur");
	rm(dir, "new");
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 0);
	mpop_mailbox_close(mb);

	put(dir, "file", "x");
	mb = mpop_mailbox_open(&mpop_mailbox_maildir_ops, NULL, "u", file, &error);
	g_assert_null(mb);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	rm_rf(dir);
}

/* ---- UPDATE ---- */

static void
test_commit(void)
{
	g_autofree char *dir = make_maildir();
	MpopMailbox *mb;
	g_autoptr(GError) error = NULL;

	put(dir, "cur/1.a:2,S", "1\n");
	put(dir, "cur/2.b:2,", "2\n");
	put(dir, "new/3.c", "3\n");
	put(dir, "cur/4.d:2,", "4\n");

	/* Without UPDATE nothing is removed, even with deletions marked. */
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 4);
	mb->msgs[0].deleted = mb->msgs[1].deleted = TRUE;
	mpop_mailbox_close(mb);
	g_assert_true(exists(dir, "cur/1.a:2,S"));
	g_assert_true(exists(dir, "cur/2.b:2,"));

	mb = open_ok(dir);
	mb->msgs[0].deleted = TRUE;
	mb->msgs[2].deleted = TRUE;
	/* Delivered after open: not in the table, must survive. */
	put(dir, "new/5.e", "5\n");
	put(dir, "new/0.early", "0\n");
	/* Another client changes the flags of a message we will delete. */
	mv(dir, "cur/3.c:2,", "cur/3.c:2,ST");
	/* ... and removes one (not marked by us). */
	rm(dir, "cur/4.d:2,");
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	mpop_mailbox_close(mb);

	g_assert_false(exists(dir, "cur/1.a:2,S"));
	g_assert_true(exists(dir, "cur/2.b:2,"));
	g_assert_false(exists(dir, "cur/3.c:2,ST"));
	g_assert_true(exists(dir, "new/5.e"));
	g_assert_true(exists(dir, "new/0.early"));

	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 3);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "0.early");
	g_assert_cmpstr(mb->msgs[1].uidl, ==, "2.b");
	g_assert_cmpstr(mb->msgs[2].uidl, ==, "5.e");
	/* A deleted message that someone else already removed is not an error. */
	mb->msgs[1].deleted = TRUE;
	rm(dir, "cur/2.b:2,");
	g_assert_true(mpop_mailbox_commit(mb, &error));
	g_assert_no_error(error);
	mpop_mailbox_close(mb);
	g_assert_true(exists(dir, "cur/0.early:2,"));
	g_assert_true(exists(dir, "cur/5.e:2,"));
	rm_rf(dir);
}

/* ---- locking ---- */

/* In a child process: open dir and report the result as the exit code. */
static int
child_try_open(const char *dir)
{
	pid_t pid = fork();
	int status;

	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		GError *error = NULL;
		MpopMailbox *mb =
			mpop_mailbox_open(&mpop_mailbox_maildir_ops, NULL, "u", dir, &error);
		if (mb != NULL)
			_exit(0);
		_exit(g_error_matches(error, MPOP_ERROR, MPOP_ERROR_IN_USE) ? 10 : 20);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_lock(void)
{
	g_autofree char *dir = make_maildir();
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb, *mb2;
	struct stat sb;
	g_autofree char *lock = g_build_filename(dir, "mpopd.lock", NULL);
	int pfd[2];
	pid_t holder;
	char c;
	int status;

	put(dir, "new/1.a,S=2,W=3", "1\n");
	mb = open_ok(dir);
	/* A flock() on the Maildir itself: no lock file; the size cache is all there is. */
	g_assert_cmpint(lstat(lock, &sb), ==, -1);
	g_assert_cmpstr_free(root_names(dir), ==, "cur mpopd-sizes new tmp");
	g_assert_cmpint(child_try_open(dir), ==, 10);
	/* OFD locks also exclude a second session within the same process. */
	mb2 = mpop_mailbox_open(&mpop_mailbox_maildir_ops, NULL, "u", dir, &error);
	g_assert_null(mb2);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_assert_cmpstr(error->message, ==, "maildrop is locked by another session");
	g_clear_error(&error);
	mpop_mailbox_close(mb);
	g_assert_cmpint(child_try_open(dir), ==, 0);

	/* A holder killed with SIGKILL leaves no stale lock behind. */
	g_assert_cmpint(pipe(pfd), ==, 0);
	holder = fork();
	g_assert_cmpint(holder, >=, 0);
	if (holder == 0) {
		MpopMailbox *h = mpop_mailbox_open(&mpop_mailbox_maildir_ops, NULL, "u", dir, NULL);
		if (write(pfd[1], h != NULL ? "y" : "n", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pfd[1]);
	g_assert_cmpint(read(pfd[0], &c, 1), ==, 1);
	close(pfd[0]);
	g_assert_cmpint(c, ==, 'y');
	g_assert_cmpint(child_try_open(dir), ==, 10);
	kill(holder, SIGKILL);
	g_assert_cmpint(waitpid(holder, &status, 0), ==, holder);
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 1);
	mpop_mailbox_close(mb);
	g_assert_cmpstr_free(root_names(dir), ==, "cur mpopd-sizes new tmp");
	rm_rf(dir);
}

/* ---- streaming ---- */

static GBytes *
stream_one(MpopMailbox *mb, guint idx, gint64 top, const char *prefix)
{
	Rec r;
	gboolean broken = TRUE;
	g_autoptr(GError) error = NULL;
	GBytes *out;

	rec_init(&r);
	g_assert_true(test_stream_message(mb, idx, top, prefix, rec_write, &r, &broken, &error));
	g_assert_no_error(error);
	g_assert_false(broken);
	/* A small message leaves in exactly one write: prefix, body and terminator. */
	g_assert_cmpuint(r.writes->len, ==, 1);
	out = g_bytes_ref(r.writes->pdata[0]);
	rec_clear(&r);
	return out;
}

static void
assert_bytes(GBytes *b, const char *want)
{
	gsize len;
	const char *data = g_bytes_get_data(b, &len);
	g_autofree char *got = g_strndup(data, len);

	g_assert_cmpstr(got, ==, want);
	g_assert_cmpuint(len, ==, strlen(want));
}

static void
test_stream_small(void)
{
	static const struct {
		const char *data;
		gint64 top;
		const char *want;
	} cases[] = {
		{"Subject: x\n\n.dot\nline\n", -1,
		 "+P\r\nSubject: x\r\n\r\n..dot\r\nline\r\n.\r\n"},
		{"A: 1\r\n\r\nb1\r\nb2\r\nb3", -1, "+P\r\nA: 1\r\n\r\nb1\r\nb2\r\nb3\r\n.\r\n"},
		{"A: 1\n.H: 2\n\nb1\nb2\nb3\n", 0, "+P\r\nA: 1\r\n..H: 2\r\n\r\n.\r\n"},
		{"A: 1\n\nb1\n.b2\nb3\n", 2, "+P\r\nA: 1\r\n\r\nb1\r\n..b2\r\n.\r\n"},
		{"A: 1\n\nb1\n", 100, "+P\r\nA: 1\r\n\r\nb1\r\n.\r\n"},
		{"", -1, "+P\r\n.\r\n"},
		{".\n", -1, "+P\r\n..\r\n.\r\n"},
	};
	g_autofree char *dir = make_maildir();
	MpopMailbox *mb;

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *rel = g_strdup_printf("new/%u.m", 100 + i);
		put(dir, rel, cases[i].data);
	}
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, G_N_ELEMENTS(cases));
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GBytes) out = stream_one(mb, i, cases[i].top, "+P\r\n");
		assert_bytes(out, cases[i].want);
	}
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_stream_errors(void)
{
	g_autofree char *dir = make_maildir();
	g_autoptr(GError) error = NULL;
	MpopMailbox *mb;
	gboolean broken = TRUE;
	Rec r;

	put(dir, "cur/1.a:2,", "hello\n");
	put(dir, "cur/2.b:2,", "hello\n");
	put(dir, "cur/3.c:2,", "moved\n");
	mb = open_ok(dir);

	/* Removed by another client: nothing written, the caller can send -ERR. */
	rm(dir, "cur/1.a:2,");
	rec_init(&r);
	g_assert_false(test_stream_message(mb, 0, -1, "+OK\r\n", rec_write, &r, &broken, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
	g_assert_false(broken);
	g_assert_cmpuint(r.calls, ==, 0);
	g_clear_error(&error);

	/* Out of range: nothing written. */
	broken = TRUE;
	g_assert_false(test_stream_message(mb, 7, -1, "+OK\r\n", rec_write, &r, &broken, &error));
	g_assert_false(broken);
	g_assert_cmpuint(r.calls, ==, 0);
	g_clear_error(&error);

	/* The client went away during the write: the connection is broken. */
	r.fail_at = 1;
	g_assert_false(test_stream_message(mb, 1, -1, "+OK\r\n", rec_write, &r, &broken, &error));
	g_assert_nonnull(error);
	g_assert_true(broken);
	g_clear_error(&error);
	rec_clear(&r);

	/* Renamed by another client (flags changed): still found by its unique name. */
	mv(dir, "cur/3.c:2,", "cur/3.c:2,S");
	{
		g_autoptr(GBytes) out = stream_one(mb, 2, -1, "+OK\r\n");
		assert_bytes(out, "+OK\r\nmoved\r\n.\r\n");
	}
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
test_stream_big(void)
{
	g_autofree char *dir = make_maildir();
	GString *msg = g_string_new("Subject: big\n\n");
	GString *want = g_string_new("+OK big\r\nSubject: big\r\n\r\n");
	g_autoptr(GChecksum) want_sum = g_checksum_new(G_CHECKSUM_SHA256);
	MpopMailbox *mb;
	gboolean broken = TRUE;
	g_autoptr(GError) error = NULL;
	Rec r;

	for (guint i = 0; msg->len < 5 * 1024 * 1024; i++) {
		if (i % 7 == 0) {
			g_string_append_printf(msg, ".line %u with a dot\n", i);
			g_string_append_printf(want, "..line %u with a dot\r\n", i);
		} else {
			g_string_append_printf(msg, "line %u of the big message\n", i);
			g_string_append_printf(want, "line %u of the big message\r\n", i);
		}
	}
	g_string_append(want, ".\r\n");
	g_checksum_update(want_sum, (const guchar *)want->str, (gssize)want->len);
	put_len(dir, "new/1.big", msg->str, (gssize)msg->len);
	g_string_free(msg, TRUE);

	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 1);
	rec_init(&r);
	g_clear_pointer(&r.writes, g_ptr_array_unref);
	r.sum = g_checksum_new(G_CHECKSUM_SHA256);
	g_assert_true(
		test_stream_message(mb, 0, -1, "+OK big\r\n", rec_write, &r, &broken, &error));
	g_assert_no_error(error);
	g_assert_false(broken);
	g_assert_cmpuint(r.total, ==, want->len);
	g_assert_cmpstr(g_checksum_get_string(r.sum), ==, g_checksum_get_string(want_sum));
	/* Memory is bounded by the 128 KiB buffer, and the buffer is used well. */
	g_assert_cmpuint(r.max_len, <=, 128 * 1024);
	g_assert_cmpuint(r.calls, >=, want->len / (128 * 1024));
	g_assert_cmpuint(r.calls, <=, want->len / (32 * 1024) + 1);
	rec_clear(&r);

	/* TOP on the big message stops early and goes out in one write. */
	{
		g_autoptr(GBytes) out = stream_one(mb, 0, 2, "+OK\r\n");
		assert_bytes(out, "+OK\r\nSubject: big\r\n\r\n..line 0 with a dot\r\n"
				  "line 1 of the big message\r\n.\r\n");
	}
	mpop_mailbox_close(mb);
	g_string_free(want, TRUE);
	rm_rf(dir);
}

static void
test_move_collision(void)
{
	g_autofree char *dir = make_maildir();
	MpopMailbox *mb;

	/* The cur/ name a move would use already exists: never overwrite, serve from new/. */
	put(dir, "cur/7.y:2,", "old\n");
	put(dir, "new/7.y", "newer\n");
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_true(exists(dir, "new/7.y"));
	g_assert_true(exists(dir, "cur/7.y:2,"));
	for (guint i = 0; i < 2; i++) {
		const char *want = g_str_equal(mb->msgs[i].name, "new/7.y") ? "+\r\nnewer\r\n.\r\n"
									    : "+\r\nold\r\n.\r\n";
		g_autoptr(GBytes) out = stream_one(mb, i, -1, "+\r\n");
		assert_bytes(out, want);
	}
	/* Deleting the one served from new/ removes exactly that file. */
	for (guint i = 0; i < 2; i++)
		mb->msgs[i].deleted = g_str_equal(mb->msgs[i].name, "new/7.y");
	g_assert_true(mpop_mailbox_commit(mb, NULL));
	mpop_mailbox_close(mb);
	g_assert_false(exists(dir, "new/7.y"));
	g_assert_true(exists(dir, "cur/7.y:2,"));
	rm_rf(dir);
}

/* ---- sizes without reading the messages ---- */

/* RETR of message idx through the session's path: TRUE with what was written in *out. */
static gboolean
retr(MpopMailbox *mb, guint idx, GString *out, gboolean *out_broken, GError **error)
{
	Rec r;
	gboolean ok;

	rec_init(&r);
	ok = test_stream_message(mb, idx, -1, "+OK\r\n", rec_write, &r, out_broken, error);
	for (guint i = 0; i < r.writes->len; i++) {
		gsize len;
		const char *d = g_bytes_get_data(r.writes->pdata[i], &len);
		g_string_append_len(out, d, (gssize)len);
	}
	rec_clear(&r);
	return ok;
}

/* RETR must give the listed size: the body between "+OK\r\n" and ".\r\n", unstuffed. */
static void
assert_retr_matches_list(MpopMailbox *mb, guint idx)
{
	g_autoptr(GString) out = g_string_new(NULL);
	g_autoptr(GError) error = NULL;
	gboolean broken = TRUE;
	guint64 octets = 0;

	g_assert_true(retr(mb, idx, out, &broken, &error));
	g_assert_no_error(error);
	g_assert_true(g_str_has_suffix(out->str, "\r\n.\r\n") ||
		      strcmp(out->str, "+OK\r\n.\r\n") == 0);
	/* Sizes count each line once, dot-stuffing excluded. */
	for (const char *p = out->str + 5, *end = out->str + out->len - 3; p < end;) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(lf - p) + 1;
		octets += n - (*p == '.');
		p += n;
	}
	g_assert_cmpuint(octets, ==, mb->msgs[idx].size);
}

/* RETR of message idx fails as the session sees it: -ERR possible (nothing written), the
 * mailbox "changed". */
static void
assert_retr_refused(MpopMailbox *mb, guint idx)
{
	g_autoptr(GString) out = g_string_new(NULL);
	g_autoptr(GError) error = NULL;
	gboolean broken = TRUE;

	g_assert_false(retr(mb, idx, out, &broken, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
	g_assert_false(broken);
	g_assert_cmpuint(out->len, ==, 0);
}

static char *
cache_text(const char *dir)
{
	g_autofree char *p = g_build_filename(dir, "mpopd-sizes", NULL);
	char *data = NULL;

	if (!g_file_get_contents(p, &data, NULL, NULL))
		return NULL;
	return data;
}

static void
put_cache(const char *dir, const char *text)
{
	put(dir, "mpopd-sizes", text);
}

static guint64
size_of(const char *dir, const char *name)
{
	MpopMailbox *mb = open_ok(dir);
	guint64 size = G_MAXUINT64;

	for (guint i = 0; i < mb->n_msgs; i++)
		if (strcmp(mb->msgs[i].uidl, name) == 0)
			size = mb->msgs[i].size;
	mpop_mailbox_close(mb);
	return size;
}

/* The cache line for one message as the backend writes it, with the size claimed. */
static char *
cache_line(const char *dir, const char *rel, guint64 claim)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	const char *base = strchr(rel, '/') + 1;
	struct stat sb;

	g_assert_cmpint(stat(p, &sb), ==, 0);
	return g_strdup_printf("%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %.*s\n", claim,
			       (guint64)sb.st_ino, (int)strcspn(base, ":"), base);
}

static void
test_size_cache(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *line = NULL, *text = NULL;
	MpopMailbox *mb;

	put(dir, "cur/1.a:2,S", "a\nb\n"); /* 6 octets as sent */
	put(dir, "new/2.b", "x\r\ny\n");   /* 6 */
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, 6);
	g_assert_cmpuint(mb->msgs[1].size, ==, 6);
	mpop_mailbox_close(mb);
	/* Measured once, written as the listing found them (new/ moved to cur/ first). */
	text = cache_text(dir);
	g_assert_nonnull(text);
	line = cache_line(dir, "cur/1.a:2,S", 6);
	g_assert_true(g_str_has_prefix(text, "mpopd-sizes 2\n"));
	g_assert_nonnull(strstr(text, line));
	{
		g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
		g_assert_cmpuint(g_strv_length(lines), ==, 4); /* header, two records, "" */
	}
	g_assert_cmpstr_free(root_names(dir), ==, "cur mpopd-sizes new tmp");

	/* A wrong claim for the same name and inode is listed; RETR never sends a different
	 * count: it fails, and the cache is corrected for the next session. */
	g_clear_pointer(&line, g_free);
	line = cache_line(dir, "cur/1.a:2,S", 7);
	{
		g_autofree char *c = g_strconcat("mpopd-sizes 2\n", line, NULL);
		put_cache(dir, c);
	}
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, 7);
	g_assert_cmpuint(mb->msgs[1].size, ==, 6);
	assert_retr_refused(mb, 0);
	assert_retr_matches_list(mb, 1);
	mpop_mailbox_close(mb);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	mb = open_ok(dir);
	assert_retr_matches_list(mb, 0);
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

static void
set_mtime(const char *dir, const char *rel, const struct timespec *t)
{
	g_autofree char *p = g_build_filename(dir, rel, NULL);
	struct timespec ts[2] = {*t, *t};

	g_assert_cmpint(utimensat(AT_FDCWD, p, ts, 0), ==, 0);
}

static ino_t
cache_ino(const char *dir)
{
	g_autofree char *p = g_build_filename(dir, "mpopd-sizes", NULL);
	struct stat sb;

	return lstat(p, &sb) == 0 ? sb.st_ino : 0;
}

/* The cache is rewritten when something was measured that it can hold, or when much of it
 * is stale; a message it cannot hold (an odd name) is measured at each login without
 * rewriting it each time. */
static void
test_size_cache_rewrites(void)
{
	g_autofree char *dir = make_maildir();
	ino_t ino;

	put(dir, "cur/1.a:2,", "one\n");
	put(dir, "cur/2 odd:2,", "two\n");
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 5);
	ino = cache_ino(dir);
	g_assert_cmpuint(ino, !=, 0);
	{
		MpopMailbox *mb = open_ok(dir);
		g_assert_cmpuint(mb->n_msgs, ==, 2);
		g_assert_cmpuint(mb->msgs[1].size, ==, 5); /* "2 odd": its UIDL is a digest */
		mpop_mailbox_close(mb);
	}
	g_assert_cmpuint(cache_ino(dir), ==, ino);
	{
		g_autofree char *text = cache_text(dir);
		g_assert_nonnull(strstr(text, " 1.a\n"));
		g_assert_null(strstr(text, "odd"));
	}
	/* A new message is measured once and the cache rewritten. */
	put(dir, "new/4.d", "four\n");
	g_assert_cmpuint(size_of(dir, "4.d"), ==, 6);
	g_assert_cmpuint(cache_ino(dir), !=, ino);
	ino = cache_ino(dir);
	g_assert_cmpuint(size_of(dir, "4.d"), ==, 6);
	g_assert_cmpuint(cache_ino(dir), ==, ino);
	/* A few messages gone: left in the cache; most of them gone: rewritten. */
	rm(dir, "cur/1.a:2,");
	g_assert_cmpuint(size_of(dir, "4.d"), ==, 6);
	g_assert_cmpuint(cache_ino(dir), ==, ino);
	for (guint i = 0; i < 80; i++) {
		g_autofree char *rel = g_strdup_printf("new/5.%03u", i);
		put(dir, rel, "x\n");
	}
	g_assert_cmpuint(size_of(dir, "5.000"), ==, 3);
	ino = cache_ino(dir);
	for (guint i = 0; i < 80; i++) {
		g_autofree char *rel = g_strdup_printf("cur/5.%03u:2,", i);
		rm(dir, rel);
	}
	g_assert_cmpuint(size_of(dir, "4.d"), ==, 6);
	g_assert_cmpuint(cache_ino(dir), !=, ino);
	{
		g_autofree char *text = cache_text(dir);
		g_assert_null(strstr(text, " 5.0"));
	}
	rm_rf(dir);
}

/* Damaged, foreign, oversized or linked caches claiming a wrong size are not used. */
static void
test_size_cache_ignored(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *claim = NULL, *other = g_build_filename(dir, "other", NULL);
	g_autofree char *cache = g_build_filename(dir, "mpopd-sizes", NULL);
	GString *big;

	put(dir, "cur/1.a:2,", "a\nb\n");
	{
		g_autofree char *l = cache_line(dir, "cur/1.a:2,", 8);
		claim = g_strconcat("mpopd-sizes 2\n", l, NULL);
	}
	put_cache(dir, claim);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 8); /* believed while intact */

	/* Another inode under the name: another file. */
	{
		g_autofree char *p = g_build_filename(dir, "cur/1.a:2,", NULL);
		struct stat sb;
		g_autofree char *c = NULL;
		g_assert_cmpint(stat(p, &sb), ==, 0);
		c = g_strdup_printf("mpopd-sizes 2\n8 %" G_GUINT64_FORMAT " 1.a\n",
				    (guint64)sb.st_ino + 1);
		put_cache(dir, c);
		g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	}
	/* The first format, with a file size and mtime in each record: rebuilt. */
	{
		g_autofree char *p = g_build_filename(dir, "cur/1.a:2,", NULL);
		struct stat sb;
		g_autofree char *c = NULL;
		g_assert_cmpint(stat(p, &sb), ==, 0);
		c = g_strdup_printf(
			"mpopd-sizes 1\n8 4 %" G_GUINT64_FORMAT " %" G_GINT64_FORMAT ".%09ld 1.a\n",
			(guint64)sb.st_ino, (gint64)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
		put_cache(dir, c);
		g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
		g_free(c);
		c = cache_text(dir);
		g_assert_true(g_str_has_prefix(c, "mpopd-sizes 2\n"));
	}
	/* Truncated inside its last line, garbage after a valid line, NULs. */
	put_len(dir, "mpopd-sizes", claim, (gssize)strlen(claim) - 1);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	{
		g_autofree char *c = g_strconcat(claim, "garbage\n", NULL);
		put_cache(dir, c);
		g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
		put_len(dir, "mpopd-sizes", c, (gssize)strlen(c) + 1);
		g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	}
	/* Larger than a Maildir of one message can need, though every line is valid. */
	big = g_string_new(claim);
	for (guint i = 0; big->len < 600 * 1024; i++)
		g_string_append_printf(big, "4 %u zz%08u\n", i, i);
	put_len(dir, "mpopd-sizes", big->str, (gssize)big->len);
	g_string_free(big, TRUE);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	/* A symlink to a valid claim: not followed, and replaced, not written through. */
	put(dir, "other", claim);
	unlink(cache);
	g_assert_cmpint(symlink("other", cache), ==, 0);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	g_assert_false(g_file_test(cache, G_FILE_TEST_IS_SYMLINK));
	{
		g_autofree char *o = NULL;
		g_file_get_contents(other, &o, NULL, NULL);
		g_assert_cmpstr(o, ==, claim);
	}
	/* Another owner's cache (needs root to make one). */
	if (geteuid() == 0) {
		put_cache(dir, claim);
		g_assert_cmpint(chown(cache, 12345, 12345), ==, 0);
		g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
		g_assert_cmpint(lstat(cache, &(struct stat){0}), ==, 0);
	}
	/* A FIFO in its place does not block the login. */
	unlink(cache);
	g_assert_cmpint(mkfifo(cache, 0600), ==, 0);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 6);
	rm_rf(dir);
}

/* Dovecot's ",S=<file size>,W=<size with CRLF>": believed when ,S= is the file's size, and
 * RETR checks ,W= when it sends. */
static void
test_size_names(void)
{
	g_autofree char *dir = make_maildir();
	MpopMailbox *mb;

	put(dir, "cur/1.h,S=4,W=6:2,S", "a\nb\n"); /* right */
	put(dir, "cur/2.h,S=4,W=7:2,S", "a\nb\n"); /* ,W= wrong but possible */
	put(dir, "cur/3.h,S=3,W=4:2,", "a\nb");	   /* Dovecot's count: no CRLF added at the end */
	put(dir, "cur/4.h,S=5,W=6:2,", "a\nb\n");  /* ,S= is not the file's size */
	put(dir, "cur/5.h,S=4,W=11:2,", "a\nb\n"); /* impossible ,W= */
	put(dir, "cur/6.h,W=7:2,", "a\nb\n");	   /* ,W= alone */
	put(dir, "new/7.h,S=8,W=12", "x\n\n.y\nz\n"); /* right, in new/ */
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 7);
	g_assert_cmpuint(mb->msgs[0].size, ==, 6);
	g_assert_cmpuint(mb->msgs[1].size, ==, 7);
	g_assert_cmpuint(mb->msgs[2].size, ==, 4);
	for (guint i = 3; i < 6; i++)
		g_assert_cmpuint(mb->msgs[i].size, ==, 6);
	g_assert_cmpuint(mb->msgs[6].size, ==, 12);
	assert_retr_matches_list(mb, 0);
	assert_retr_refused(mb, 1);
	assert_retr_refused(mb, 2);
	for (guint i = 3; i < 7; i++)
		assert_retr_matches_list(mb, i);
	mpop_mailbox_close(mb);
	/* The corrections win over the names from now on. */
	mb = open_ok(dir);
	for (guint i = 0; i < 7; i++) {
		g_assert_cmpuint(mb->msgs[i].size, ==, i == 6 ? 12 : 6);
		assert_retr_matches_list(mb, i);
	}
	mpop_mailbox_close(mb);
	rm_rf(dir);

	/* Only right names: nothing measured, and the names' sizes go into the cache (keyed by
	 * name and inode like any other), so later logins need no stat to check ,S=. */
	g_free(dir);
	dir = make_maildir();
	put(dir, "new/1.h,S=4,W=6", "a\nb\n");
	mb = open_ok(dir);
	assert_retr_matches_list(mb, 0);
	mpop_mailbox_close(mb);
	{
		g_autofree char *cur = g_build_filename(dir, "cur", "1.h,S=4,W=6:2,", NULL);
		g_autofree char *cache = g_build_filename(dir, "mpopd-sizes", NULL);
		g_autofree char *text = NULL;
		g_autofree char *want = NULL;
		struct stat sb;

		g_assert_cmpint(stat(cur, &sb), ==, 0);
		g_assert_true(g_file_get_contents(cache, &text, NULL, NULL));
		want = g_strdup_printf("mpopd-sizes 2\n6 %" G_GUINT64_FORMAT " 1.h,S=4,W=6\n",
				       (guint64)sb.st_ino);
		g_assert_cmpstr(text, ==, want);
	}
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, 6);
	assert_retr_matches_list(mb, 0);
	mpop_mailbox_close(mb);
	rm_rf(dir);
}

/* A wrong size found while a message larger than the output buffer is sent: part of it has
 * left, so the connection must end (no terminator, never a complete-looking reply). */
static void
test_size_wrong_big(void)
{
	g_autofree char *dir = make_maildir();
	g_autoptr(GString) out = g_string_new(NULL);
	g_autoptr(GError) error = NULL;
	GString *msg = g_string_new(NULL);
	g_autofree char *rel = NULL;
	gboolean broken = FALSE;
	MpopMailbox *mb;

	while (msg->len < 1024 * 1024)
		g_string_append(msg, "a line of the message\n");
	rel = g_strdup_printf("cur/1.h,S=%zu,W=%zu", msg->len, msg->len + msg->len / 22 + 1);
	put_len(dir, rel, msg->str, (gssize)msg->len);
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, msg->len + msg->len / 22 + 1);
	g_assert_false(retr(mb, 0, out, &broken, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED);
	g_assert_true(broken);
	g_assert_cmpuint(out->len, >, 0);
	g_assert_false(g_str_has_suffix(out->str, "\r\n.\r\n"));
	mpop_mailbox_close(mb);
	g_assert_cmpuint(size_of(dir, rel + 4), ==, msg->len + msg->len / 22);
	g_string_free(msg, TRUE);
	rm_rf(dir);
}

/* Mail delivered during a session is listed by the next one, measured once. */
static void
test_size_concurrent_delivery(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *text = NULL;
	MpopMailbox *mb;

	put(dir, "cur/1.a:2,", "one\n");
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 1);
	put(dir, "new/2.b", "two\n\n");
	put(dir, "new/3.c,S=6,W=7", "three\n");
	mb->msgs[0].deleted = TRUE;
	g_assert_true(mpop_mailbox_commit(mb, NULL));
	mpop_mailbox_close(mb);
	mb = open_ok(dir);
	g_assert_cmpuint(mb->n_msgs, ==, 2);
	g_assert_cmpstr(mb->msgs[0].uidl, ==, "2.b");
	g_assert_cmpuint(mb->msgs[0].size, ==, 7);
	g_assert_cmpuint(mb->msgs[1].size, ==, 7);
	assert_retr_matches_list(mb, 0);
	assert_retr_matches_list(mb, 1);
	mpop_mailbox_close(mb);
	/* The cache holds the sizes of what is still there, measured or from a name. */
	text = cache_text(dir);
	g_assert_nonnull(strstr(text, " 2.b\n"));
	g_assert_null(strstr(text, " 1.a\n"));
	g_assert_nonnull(strstr(text, "\n7 "));
	g_assert_nonnull(strstr(text, " 3.c,S=6,W=7\n"));
	rm_rf(dir);
}

/* A message replaced under the same name, with the same size and mtime. */
static void
test_size_replaced(void)
{
	g_autofree char *dir = make_maildir();
	g_autofree char *p = g_build_filename(dir, "cur/1.a:2,", NULL);
	struct stat sb;
	MpopMailbox *mb;
	int fd;

	put(dir, "cur/1.a:2,", "abc\n"); /* 5 */
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 5);
	g_assert_cmpint(stat(p, &sb), ==, 0);

	/* A new file renamed over it: another inode, measured again. */
	put(dir, "tmp/x", "a\n\n\n"); /* 7 */
	set_mtime(dir, "tmp/x", &sb.st_mtim);
	mv(dir, "tmp/x", "cur/1.a:2,");
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 7);

	/* Rewritten in place, another length and mtime: the name and inode are the cache's key
	 * (the file is not looked at), so it is listed with the cached size; RETR refuses it
	 * with nothing sent, and the next session lists and sends the right size. */
	fd = open(p, O_WRONLY | O_TRUNC);
	g_assert_cmpint(write(fd, "abcdefghij\n", 11), ==, 11);
	close(fd);
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, 7);
	assert_retr_refused(mb, 0);
	mpop_mailbox_close(mb);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 12);
	mb = open_ok(dir);
	assert_retr_matches_list(mb, 0);
	mpop_mailbox_close(mb);
	fd = open(p, O_WRONLY | O_TRUNC);
	g_assert_cmpint(write(fd, "abc\n", 4), ==, 4);
	close(fd);
	mb = open_ok(dir);
	g_assert_cmpuint(mb->msgs[0].size, ==, 12);
	assert_retr_refused(mb, 0);
	mpop_mailbox_close(mb);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 5);

	/* Replaced during the session: never sent under the old size. */
	mb = open_ok(dir);
	put(dir, "tmp/y", "abcdefgh\n");
	mv(dir, "tmp/y", "cur/1.a:2,");
	assert_retr_refused(mb, 0);
	mpop_mailbox_close(mb);
	g_assert_cmpuint(size_of(dir, "1.a"), ==, 10);
	rm_rf(dir);
}

/* A Maildir whose root the owner cannot write is served: no lock file, no cache needed. */
static void
test_readonly_root(void)
{
	g_autofree char *dir = make_maildir();
	pid_t pid;
	int status;

	put(dir, "new/1.a", "one\n");
	put(dir, "cur/2.b:2,S", "two\n");
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		MpopMailbox *mb;
		g_autofree char *cmd = g_strdup_printf("chown -R 65534:65534 '%s'", dir);
		if (geteuid() == 0 && (system(cmd) != 0 || setresgid(65534, 65534, 65534) < 0 ||
				       setresuid(65534, 65534, 65534) < 0))
			_exit(2);
		if (chmod(dir, 0555) < 0 || access(dir, W_OK) == 0)
			_exit(3);
		mb = open_ok(dir);
		g_assert_cmpuint(mb->n_msgs, ==, 2);
		g_assert_cmpuint(mb->msgs[0].size, ==, 5);
		assert_retr_matches_list(mb, 0);
		assert_retr_matches_list(mb, 1);
		mb->msgs[1].deleted = TRUE;
		g_assert_true(mpop_mailbox_commit(mb, NULL));
		mpop_mailbox_close(mb);
		_exit(0);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	g_assert_cmpstr_free(root_names(dir), ==, "cur new tmp");
	g_assert_true(exists(dir, "cur/1.a:2,"));
	g_assert_false(exists(dir, "cur/2.b:2,S"));
	g_assert_cmpint(chmod(dir, 0700), ==, 0);
	rm_rf(dir);
}

static void
test_ops_for(void)
{
	g_assert_true(mpop_mailbox_ops_for(MPOP_FORMAT_MAILDIR) == &mpop_mailbox_maildir_ops);
	g_assert_true(mpop_mailbox_ops_for(MPOP_FORMAT_MBOX) == &mpop_mailbox_mbox_ops);
	g_assert_cmpstr(mpop_mailbox_ops_for(MPOP_FORMAT_MAILDIR)->name, ==, "maildir");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/mailbox/ops-for", test_ops_for);
	g_test_add_func("/mailbox/uidl-valid", test_uidl_valid);
	g_test_add_func("/mailbox/uidl-digest", test_uidl_digest);
	g_test_add_func("/mailbox/uidl-unique", test_uidl_unique);
	g_test_add_func("/mailbox/uidl-unique-paths", test_uidl_unique_paths);
	g_test_add_func("/mailbox/message-size", test_message_size);
	g_test_add_func("/mailbox/dele-rset", test_dele_rset);
	g_test_add_func("/mailbox/location", test_location);
	g_test_add_func("/maildir/order-and-move", test_order_and_move);
	g_test_add_func("/maildir/uidls", test_uidls);
	g_test_add_func("/maildir/uidl-duplicates", test_uidl_duplicates);
	g_test_add_func("/maildir/sizes-and-stat", test_sizes);
	g_test_add_func("/maildir/missing-and-bad", test_missing_and_bad);
	g_test_add_func("/maildir/commit", test_commit);
	g_test_add_func("/maildir/lock", test_lock);
	g_test_add_func("/maildir/stream-small", test_stream_small);
	g_test_add_func("/maildir/stream-errors", test_stream_errors);
	g_test_add_func("/maildir/stream-big", test_stream_big);
	g_test_add_func("/maildir/move-collision", test_move_collision);
	g_test_add_func("/maildir/size-cache", test_size_cache);
	g_test_add_func("/maildir/size-cache-ignored", test_size_cache_ignored);
	g_test_add_func("/maildir/size-cache-rewrites", test_size_cache_rewrites);
	g_test_add_func("/maildir/size-names", test_size_names);
	g_test_add_func("/maildir/size-wrong-big", test_size_wrong_big);
	g_test_add_func("/maildir/size-concurrent-delivery", test_size_concurrent_delivery);
	g_test_add_func("/maildir/size-replaced", test_size_replaced);
	g_test_add_func("/maildir/readonly-root", test_readonly_root);
	return g_test_run();
}
