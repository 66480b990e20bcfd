/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for [mailbox] message_start and message_end: the rules as mpopd.conf(5) states them,
 * through the scanner and through the backend (LIST, RETR, UPDATE). */
#include "mailbox-mbox.h"
#include "stream-writer.h"
#include "util.h"

#include <string.h>
#include <unistd.h>

/* ---- the rules, line by line ---- */

typedef struct {
	const char *start, *end; /* as the config holds them (key-file escapes undone) */
	const char *line;
	gboolean starts; /* at the top of the file, or after an end line */
	gboolean ends;	 /* the line may precede a start */
} RuleCase;

static const RuleCase rule_cases[] = {
	/* The defaults: "From " at the beginning of a line, a blank line before it. */
	{"From ", "", "From a@b Mon Jan  1 00:00:00 2024", TRUE, FALSE},
	{"From ", "", "Hello From me", FALSE, FALSE},
	{"From ", "", "", FALSE, TRUE},
	{"From ", "", " \t", FALSE, TRUE},
	{"From ", "", "x", FALSE, FALSE},
	/* Perl mpopd's own patterns. */
	{"^From ", "^\\s*$", "From a", TRUE, FALSE},
	{"^From ", "^\\s*$", "\t", FALSE, TRUE},
	{"^From ", "^\\s+$", "", FALSE, TRUE}, /* 2.x matched it with the newline on the line */
	/* A regex start is anchored at the beginning of the line... */
	{"From\\s", "", "From a", TRUE, FALSE},
	{"From\\s", "", "Hello From me", FALSE, FALSE},
	{"BEGIN\\s+\\d+", "", "BEGIN 12", TRUE, FALSE},
	{"BEGIN\\s+\\d+", "", "xx BEGIN 12", FALSE, FALSE},
	/* ... and a regex end matches the whole line only. */
	{"BEGIN ", "END", "END", FALSE, TRUE},
	{"BEGIN ", "END", "this is not the END, really", FALSE, FALSE},
	{"BEGIN ", "END", "END ", FALSE, FALSE},
	{"BEGIN ", "END", "END\r", FALSE, TRUE}, /* the CR before the LF is not part of it */
	{"BEGIN ", "END|STOP", "STOP", FALSE, TRUE},
	{"BEGIN ", "END|STOP", "ENDSTOP", FALSE, FALSE},
	{"BEGIN ", ".*END.*", "this is not the END, really", FALSE, TRUE},
	{"BEGIN ", "^END$", "END", FALSE, TRUE},
	{"BEGIN ", "-- *", "--   ", FALSE, TRUE},
	{"BEGIN ", "-- *", "-- x", FALSE, FALSE},
};

/* "X\n" + line + "\nBEGIN 1\n": is the start found right after line? And line at the top. */
static void
test_rules(void)
{
	for (guint i = 0; i < G_N_ELEMENTS(rule_cases); i++) {
		const RuleCase *c = &rule_cases[i];
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopMboxParser) p = mpop_mbox_parser_new(c->start, c->end, &error);
		g_autofree char *start_line = NULL;
		g_autofree char *top = NULL;
		g_autofree char *after = NULL;

		g_test_message("case %u: start '%s' end '%s' line '%s'", i, c->start, c->end,
			       c->line);
		g_assert_no_error(error);
		/* At the top of the file the line starts a message or is text before the first. */
		top = g_strconcat(c->line, "\n", NULL);
		g_assert_cmpuint(mpop_mbox_first(p, top, strlen(top)), ==,
				 c->starts ? 0 : strlen(top));
		/* After a line, a start line of the rule's own kind begins a message only if the
		 * line is an end line. */
		start_line = g_str_has_prefix(c->start, "BEGIN") ? g_strdup("BEGIN 7")
								 : g_strdup("From z");
		after = g_strconcat(start_line, "\nH: 1\n\nbody\n", c->line, "\n", start_line,
				    "\nH: 2\n", NULL);
		{
			MpopMboxSpan sp;
			const char *second = g_strrstr(after, start_line);
			gsize len = strlen(after);

			g_assert_cmpuint(mpop_mbox_first(p, after, len), ==, 0);
			mpop_mbox_message(p, after, len, 0, &sp);
			if (c->ends) {
				g_assert_cmpuint(sp.end, ==, (guint64)(second - after));
				/* The end line is not part of the message. */
				g_assert_cmpmem(after + sp.offset, sp.length, "H: 1\n\nbody\n", 11);
			} else {
				g_assert_cmpuint(sp.end, ==, len);
			}
		}
	}
}

static void
test_bad_rules(void)
{
	static const char *const bad[][2] = {
		{"^From (", NULL},
		{"From ", "END("},
		{"From ", "a)(b"}, /* valid only once wrapped: still refused */
	};

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_assert_null(mpop_mbox_parser_new(bad[i][0], bad[i][1], &error));
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
		g_assert_nonnull(strstr(error->message,
					bad[i][1] != NULL ? "message_end" : "message_start"));
	}
}

static void
test_end_note(void)
{
	g_assert_null(mpop_mbox_end_rule_note(NULL));
	g_assert_null(mpop_mbox_end_rule_note(""));
	g_assert_null(mpop_mbox_end_rule_note("^\\s*$"));
	g_assert_null(mpop_mbox_end_rule_note("^\\s+$"));
	g_assert_null(mpop_mbox_end_rule_note("^END$"));
	g_assert_nonnull(mpop_mbox_end_rule_note("END"));
	g_assert_nonnull(mpop_mbox_end_rule_note("^END"));
	g_assert_nonnull(mpop_mbox_end_rule_note("END$"));
	g_assert_nonnull(mpop_mbox_end_rule_note("^END\\$"));
}

/* ---- whole mailboxes through the backend ---- */

typedef struct {
	char *dir;
	char *path;
	MpopConfig *cfg;
} Fixture;

static char src_x_uidl[] = "x-uidl", src_msgid[] = "message-id", src_digest[] = "digest";
static char *default_uidl_source[] = {src_x_uidl, src_msgid, src_digest, NULL};

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	f->dir = g_dir_make_tmp("mpop-markers-XXXXXX", &error);
	g_assert_no_error(error);
	f->path = g_build_filename(f->dir, "user", NULL);
	f->cfg = g_new0(MpopConfig, 1);
	f->cfg->format = MPOP_FORMAT_MBOX;
	f->cfg->message_start = g_strdup(data); /* a prefix (the fast path) or a regex */
	f->cfg->message_end = g_strdup("END");
	f->cfg->from_quoting = MPOP_FROM_MBOXRD;
	f->cfg->mbox_locks = MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL;
	f->cfg->lock_retries = 2;
	f->cfg->lock_wait_ms = 20;
	f->cfg->lock_stale_age = 300;
	f->cfg->mbox_mode = MPOP_MBOX_SNAPSHOT;
	f->cfg->spool_dir = g_build_filename(f->dir, "spool", NULL);
	f->cfg->uidl_source = default_uidl_source;
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	g_autofree char *lock = g_strconcat(f->path, ".lock", NULL);

	unlink(f->path);
	unlink(lock);
	g_assert_cmpint(rmdir(f->dir), ==, 0);
	g_free(f->dir);
	g_free(f->path);
	g_free(f->cfg->message_start);
	g_free(f->cfg->message_end);
	g_free(f->cfg->spool_dir);
	g_free(f->cfg);
}

static void
put(const char *path, const char *data)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, data, -1, &error);
	g_assert_no_error(error);
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

/* RETR of message idx as stored: CRLF back to LF, the stuffing and the terminator removed.
 * The wire length must be the size LIST announced. */
static char *
retr(MpopMailbox *mb, guint idx)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) wire = g_string_new(NULL);
	GString *out = g_string_new(NULL);
	gboolean broken = FALSE;

	g_assert_true(test_stream_message(mb, idx, -1, "", collect, wire, &broken, &error));
	g_assert_no_error(error);
	g_assert_true(g_str_has_suffix(wire->str, ".\r\n"));
	g_string_truncate(wire, wire->len - 3);
	g_assert_cmpuint(wire->len, ==, mb->msgs[idx].size);
	for (const char *p = wire->str; *p != '\0';) {
		const char *e = strstr(p, "\r\n");
		g_assert_nonnull(e);
		g_string_append_len(out, p[0] == '.' ? p + 1 : p, e - (p[0] == '.' ? p + 1 : p));
		g_string_append_c(out, '\n');
		p = e + 2;
	}
	return g_string_free(out, FALSE);
}

static char *
slurp(const char *path)
{
	char *data = NULL;

	g_assert_true(g_file_get_contents(path, &data, NULL, NULL));
	return data;
}

/* The mailbox of the report: message_start=BEGIN\s, message_end=END, and a message whose last
 * body line mentions the END. No such line is a boundary, so nothing is lost and no message
 * is empty. */
static void
test_reported_case(Fixture *f, gconstpointer data)
{
	static const char box[] = "BEGIN 1\n"
				  "Subject: one\n"
				  "\n"
				  "this is not the END, really\n"
				  "BEGIN 2\n"
				  "Subject: two\n"
				  "\n"
				  "The END\n";
	g_autoptr(MpopMailbox) mb = NULL;
	g_autofree char *got = NULL;

	put(f->path, box);
	mb = open_ok(f);
	/* BEGIN 2 does not follow an END line: it is text of message 1. */
	g_assert_cmpuint(mb->n_msgs, ==, 1);
	got = retr(mb, 0);
	g_assert_cmpstr(got, ==, box + strlen("BEGIN 1\n"));
}

/* Markers inside body lines, as the last body line, and real END lines between messages.
 * Text before the first message belongs to no message; a start needs an END line before it
 * there too. */
static const char marked_box[] = "text before the first message, which ends in an END line\n"
				 "END\n"
				 "BEGIN 1\n"
				 "Subject: one\n"
				 "\n"
				 "BEGIN inside the body, not after an END line\n"
				 "a line with END in it\n"
				 "END\n"
				 "still message 1: END was not followed by a start\n"
				 "this is not the END, really\n"
				 "END\n"
				 "BEGIN 2\n"
				 "Subject: two\n"
				 "\n"
				 "the END\n"
				 "END\n"
				 "BEGIN 3\n"
				 "Subject: three\n"
				 "\n"
				 "last line: END of story\n"
				 "END\n";
static const char *const marked_msgs[] = {
	"Subject: one\n\nBEGIN inside the body, not after an END line\na line with END in it\n"
	"END\nstill message 1: END was not followed by a start\nthis is not the END, really\n",
	"Subject: two\n\nthe END\n",
	"Subject: three\n\nlast line: END of story\n",
};

static void
test_markers_in_bodies(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopMailbox) mb = NULL;

	put(f->path, marked_box);
	mb = open_ok(f);
	g_assert_cmpuint(mb->n_msgs, ==, G_N_ELEMENTS(marked_msgs));
	for (guint i = 0; i < mb->n_msgs; i++) {
		g_autofree char *got = retr(mb, i);
		g_assert_cmpstr(got, ==, marked_msgs[i]);
		g_assert_cmpuint(mb->msgs[i].size, >, 0);
	}
}

/* Every byte of the file is the text before the first message, a start line, a message's
 * content (what RETR sends) or one whole end line after it: nothing else is skipped. */
static void
test_partition(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopMboxParser) p = mpop_mbox_parser_new("BEGIN ", "END", &error);
	g_autoptr(GRegex) end_line = g_regex_new("\\AEND\n\\z", G_REGEX_RAW, 0, NULL);
	size_t len = strlen(marked_box);
	guint64 pos = mpop_mbox_first(p, marked_box, len);
	guint n = 0;

	g_assert_no_error(error);
	g_assert_cmpuint(pos, ==, strstr(marked_box, "BEGIN 1") - marked_box);
	while (pos < len) {
		MpopMboxSpan sp;
		g_autofree char *sep = NULL;

		mpop_mbox_message(p, marked_box, len, pos, &sp);
		g_assert_cmpuint(sp.from_offset, ==, pos);
		g_assert_true(g_str_has_prefix(marked_box + pos, "BEGIN "));
		g_assert_cmpuint(sp.offset, ==,
				 (const char *)memchr(marked_box + pos, '\n', len) - marked_box +
					 1);
		g_assert_cmpmem(marked_box + sp.offset, sp.length, marked_msgs[n],
				strlen(marked_msgs[n]));
		sep = g_strndup(marked_box + sp.offset + sp.length, sp.end - sp.offset - sp.length);
		g_assert_true(g_regex_match(end_line, sep, 0, NULL));
		pos = sp.end;
		n++;
	}
	g_assert_cmpuint(n, ==, G_N_ELEMENTS(marked_msgs));
}

/* UPDATE: a deleted message goes with its start line and its end line; the text before the
 * first message and every other byte stay. */
static void
test_update_keeps_the_rest(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *after = NULL;
	g_autofree char *expect = NULL;
	g_autofree char *head = NULL;

	for (guint del = 0; del < G_N_ELEMENTS(marked_msgs); del++) {
		g_autoptr(MpopMailbox) mb = NULL;
		const char *from, *to;

		put(f->path, marked_box);
		mb = open_ok(f);
		mb->msgs[del].deleted = TRUE;
		g_assert_true(mpop_mailbox_commit(mb, &error));
		g_assert_no_error(error);
		g_clear_pointer(&after, g_free);
		g_clear_pointer(&expect, g_free);
		after = slurp(f->path);
		/* From "BEGIN n" to the next "BEGIN " (or the end) is removed. */
		from = strstr(marked_box, del == 0 ? "BEGIN 1" : del == 1 ? "BEGIN 2" : "BEGIN 3");
		to = del == 2 ? marked_box + strlen(marked_box)
			      : strstr(marked_box, del == 0 ? "BEGIN 2" : "BEGIN 3");
		g_free(head);
		head = g_strndup(marked_box, (gsize)(from - marked_box));
		expect = g_strconcat(head, to, NULL);
		g_assert_cmpstr(after, ==, expect);
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/mbox-markers/rules", test_rules);
	g_test_add_func("/mbox-markers/bad-rules", test_bad_rules);
	g_test_add_func("/mbox-markers/end-note", test_end_note);
	g_test_add_func("/mbox-markers/partition", test_partition);
	/* The backend with a plain prefix (the fast path) and a regex start alike. */
	for (guint i = 0; i < 2; i++) {
		static const char *const starts[] = {"BEGIN ", "^BEGIN\\s"};
		static const struct {
			const char *name;
			void (*fn)(Fixture *, gconstpointer);
		} cases[] = {
			{"reported-case", test_reported_case},
			{"markers-in-bodies", test_markers_in_bodies},
			{"update-keeps-the-rest", test_update_keeps_the_rest},
		};
		for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
			g_autofree char *name = g_strdup_printf(
				"/mbox-markers/%s/%s", cases[c].name, i == 0 ? "prefix" : "regex");
			g_test_add(name, Fixture, starts[i], fixture_setup, cases[c].fn,
				   fixture_teardown);
		}
	}
	return g_test_run();
}
