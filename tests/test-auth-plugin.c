/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the plugin auth backend: the answer parser, the program file checks and the
 * checkpassword protocol against tests/plugin-test.c, whose behaviour the user name picks. */
#include "auth-plugin.h"
#include "auth.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- mpop_plugin_parse_answer */

typedef struct {
	const char *text;
	int rc;
	guint32 uid, gid;
	const char *mailbox, *home, *user;
} AnswerCase;

static const AnswerCase answer_cases[] = {
	{"uid=1000\n", 0, 1000, (guint32)-1},
	{"uid=1000", 0, 1000, (guint32)-1},
	{"uid=1000\ngid=100\n", 0, 1000, 100},
	{"gid=0\nuid=4294967294\n", 0, 4294967294u, 0},
	{"uid=5\nmailbox=/srv/mail/bob\nhome=/home/bob\nuser=bob@example.org\n", 0, 5, (guint32)-1,
	 "/srv/mail/bob", "/home/bob", "bob@example.org"},
	{"mailbox=/a/b.c/..x/...\nuid=5", 0, 5, (guint32)-1, "/a/b.c/..x/..."},
	{"uid=0\n", -EPERM},
	{"uid=00\n", -EPERM},
	{"", -EINVAL},
	{"\n", -EINVAL},
	{"uid=1000\n\n", -EINVAL},
	{"gid=100\n", -EINVAL},
	{"uid=4294967295\n", -EINVAL},
	{"uid=4294967296\n", -EINVAL},
	{"uid=-1\n", -EINVAL},
	{"uid=+1\n", -EINVAL},
	{"uid= 1\n", -EINVAL},
	{"uid=1 \n", -EINVAL},
	{"uid=0x10\n", -EINVAL},
	{"uid=\n", -EINVAL},
	{"uid\n", -EINVAL},
	{"=1\n", -EINVAL},
	{"UID=1\n", -EINVAL},
	{" uid=1\n", -EINVAL},
	{"uid=1\r\n", -EINVAL},
	{"uid=1\nuid=2\n", -EINVAL},
	{"uid=1\ngid=2\ngid=2\n", -EINVAL},
	{"uid=1\nshell=/bin/sh\n", -EINVAL},
	{"uid=1\ngid=4294967295\n", -EINVAL},
	{"uid=1\nmailbox=relative\n", -EINVAL},
	{"uid=1\nmailbox=/srv/../etc\n", -EINVAL},
	{"uid=1\nmailbox=/srv/..\n", -EINVAL},
	{"uid=1\nhome=/..\n", -EINVAL},
	{"uid=1\nhome=/home/a\tb\n", -EINVAL},
	{"uid=1\nhome=/home/a\x7f\n", -EINVAL},
	{"uid=1\nuser=a/b\n", -EINVAL},
	{"uid=1\nuser=a:b\n", -EINVAL},
	{"uid=1\nuser=\n", -EINVAL},
	{"hello world\n", -EINVAL},
};

static void
test_answer_table(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(answer_cases); i++) {
		const AnswerCase *c = &answer_cases[i];
		MpopPluginAnswer a = {0};
		const char *why = NULL;
		int rc = mpop_plugin_parse_answer(c->text, strlen(c->text), &a, &why);

		g_test_message("answer \"%s\"", c->text);
		g_assert_cmpint(rc, ==, c->rc);
		if (rc != 0) {
			g_assert_nonnull(why);
			g_assert_null(a.mailbox);
			g_assert_null(a.user);
			continue;
		}
		g_assert_cmpuint(a.uid, ==, c->uid);
		g_assert_cmpuint(a.gid, ==, c->gid);
		g_assert_cmpstr(a.mailbox, ==, c->mailbox);
		g_assert_cmpstr(a.home, ==, c->home);
		g_assert_cmpstr(a.user, ==, c->user);
		mpop_plugin_answer_clear(&a);
	}
}

static void
test_answer_limits(void)
{
	GString *s = g_string_new("uid=1\nhome=/");
	MpopPluginAnswer a = {0};
	const char *why = NULL;

	/* NUL inside, and a name too long for a login. */
	g_assert_cmpint(mpop_plugin_parse_answer("uid=1\0\n", 7, &a, &why), ==, -EINVAL);
	g_assert_cmpint(mpop_plugin_parse_answer("uid=1\nuser=", 11, &a, NULL), ==, -EINVAL);
	while (s->len < MPOP_PLUGIN_ANSWER_MAX)
		g_string_append_c(s, 'h');
	g_assert_cmpint(mpop_plugin_parse_answer(s->str, s->len, &a, NULL), ==, 0);
	g_assert_cmpuint(strlen(a.home), ==, MPOP_PLUGIN_ANSWER_MAX - strlen("uid=1\nhome="));
	mpop_plugin_answer_clear(&a);
	g_string_append_c(s, 'h');
	g_assert_cmpint(mpop_plugin_parse_answer(s->str, s->len, &a, &why), ==, -EINVAL);
	g_assert_cmpstr(why, ==, "more than 4096 bytes");
	g_string_free(s, TRUE);
}

/* ---- running the program */

typedef struct {
	char *dir;     /* private, under the build dir: /tmp would fail the directory check */
	char *report;  /* the program's report file (argv[1]) */
	char *pidfile; /* hang-child writes its child's pid here (argv[2]) */
	char *program;
} Fixture;

static void
fixture_set_up(Fixture *f, gconstpointer data)
{
	g_autofree char *tmpl =
		g_build_filename(g_getenv("G_TEST_BUILDDIR"), "plugin-XXXXXX", NULL);

	(void)data;
	f->dir = g_mkdtemp_full(g_steal_pointer(&tmpl), 0711);
	g_assert_nonnull(f->dir);
	f->report = g_build_filename(f->dir, "report", NULL);
	f->pidfile = g_build_filename(f->dir, "pid", NULL);
	f->program = g_build_filename(g_getenv("G_TEST_BUILDDIR"), "plugin-test", NULL);
}

static void
remove_tree(const char *path)
{
	g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
	const char *name;

	while (d && (name = g_dir_read_name(d))) {
		g_autofree char *p = g_build_filename(path, name, NULL);

		if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
			remove_tree(p);
		else
			g_unlink(p);
	}
	g_rmdir(path);
}

static void
fixture_tear_down(Fixture *f, gconstpointer data)
{
	(void)data;
	remove_tree(f->dir);
	g_free(f->dir);
	g_free(f->report);
	g_free(f->pidfile);
	g_free(f->program);
}

static MpopConfig *
load(const Fixture *f, const char *extra)
{
	g_autofree char *text =
		g_strdup_printf("[auth]\ndefault=plugin\nplugin=%s\n"
				"plugin_args=%s;%s\nfailure_delay=0\n%s",
				f->program, f->report, f->pidfile, extra ? extra : "");
	g_autoptr(GError) error = NULL;
	MpopConfig *cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);

	g_assert_no_error(error);
	return cfg;
}

static MpopAuthResult
run(const MpopConfig *cfg, const char *user, const char *password, MpopAuthIdentity **out_id,
    char **out_reason)
{
	MpopAuthQuery q = {.user = user,
			   .password = password,
			   .peer = "192.0.2.7",
			   .local = "198.51.100.1",
			   .session_id = "sess-42"};

	return mpop_auth_plugin_ops.authenticate(cfg, &q, out_id, out_reason);
}

static char *
identity_text(const MpopAuthIdentity *id)
{
	return g_strdup_printf("%s %u %u %s %s", id->user, (unsigned)id->uid, (unsigned)id->gid,
			       id->home ? id->home : "-", id->mailbox ? id->mailbox : "-");
}

typedef struct {
	const char *user, *password;
	MpopAuthResult result;
	const char *expect; /* the identity text on OK, else the reason, a glob pattern */
} RunCase;

static const RunCase run_cases[] = {
	{"accept", "good", MPOP_AUTH_OK, "accept 4242 4243 - /srv/mail/accept"},
	{"canon", "x", MPOP_AUTH_OK, "Canonical 4244 4244 /home/canon -"},
	{"accept", "bad", MPOP_AUTH_DENIED, "plugin: rejected"},
	{"reject", "good", MPOP_AUTH_DENIED, "plugin: rejected"},
	{"unknown", "good", MPOP_AUTH_UNKNOWN, "plugin: unknown user"},
	{"temp", "good", MPOP_AUTH_TEMPFAIL, "plugin: temporary failure"},
	{"status7", "good", MPOP_AUTH_TEMPFAIL, "plugin: exit status 7"},
	{"signal", "good", MPOP_AUTH_TEMPFAIL, "plugin: killed by signal Terminated"},
	{"garbage", "good", MPOP_AUTH_TEMPFAIL, "plugin answered garbage: a line that is not*"},
	{"uid0", "good", MPOP_AUTH_TEMPFAIL, "plugin: answer names uid 0: never as root"},
	{"dotdot", "good", MPOP_AUTH_TEMPFAIL, "plugin answered garbage: mailbox or home*"},
	{"huge", "good", MPOP_AUTH_TEMPFAIL, "plugin answered garbage: more than 4096 bytes*"},
	{"nobody-knows", "good", MPOP_AUTH_UNKNOWN, "plugin: unknown user"},
};

static void
test_run_case(Fixture *f, gconstpointer data)
{
	const RunCase *c = data;
	g_autoptr(MpopConfig) cfg = load(f, NULL);
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	g_autofree char *got = NULL;
	MpopAuthResult r = run(cfg, c->user, c->password, &id, &reason);

	g_test_message("reason: %s", reason ? reason : "(none)");
	g_assert_cmpint(r, ==, c->result);
	got = r == MPOP_AUTH_OK ? identity_text(id) : g_strdup(reason);
	if (!g_pattern_match_simple(c->expect, got))
		g_error("got \"%s\", want \"%s\"", got, c->expect);
	if (r != MPOP_AUTH_OK)
		g_assert_null(id);
}

/* What the program saw: exactly the credentials, the documented environment and nothing
 * else, fds 0-3 only, umask 077, a session of its own without a terminal. */
static void
test_run_environment(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopConfig) cfg = load(f, NULL);
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *more = g_strconcat(f->report, ".more", NULL);
	g_autofree char *fds = NULL, *seen = NULL, *expect = NULL, *cred = NULL;
	g_auto(GStrv) lines = NULL;
	gint64 before = g_get_real_time() / G_USEC_PER_SEC, stamp;
	const char *ts;

	(void)data;
	g_assert_cmpint(run(cfg, "accept", "good", &id, NULL), ==, MPOP_AUTH_OK);
	g_assert_true(g_file_get_contents(f->report, &fds, NULL, NULL));
	g_assert_cmpstr(fds, ==, "fds=0 1 2 3 \n");
	g_assert_true(g_file_get_contents(more, &seen, NULL, NULL));
	lines = g_strsplit(seen, "\n", 2);
	/* fd3=accept\x00good\x00<seconds>\x00 */
	g_assert_true(g_str_has_prefix(lines[0], "fd3=accept\\x00good\\x00"));
	ts = lines[0] + strlen("fd3=accept\\x00good\\x00");
	g_assert_true(g_str_has_suffix(ts, "\\x00"));
	cred = g_strndup(ts, strlen(ts) - 4);
	stamp = g_ascii_strtoll(cred, NULL, 10);
	g_assert_cmpint(stamp, >=, before);
	g_assert_cmpint(stamp, <=, before + 5);
	expect = g_strdup_printf("argv0=%s\nargv1=%s\nargv2=%s\n"
				 "env=PATH=/usr/bin:/bin\nenv=MPOPD_PEER=192.0.2.7\n"
				 "env=MPOPD_LOCAL=198.51.100.1\nenv=MPOPD_SESSION=sess-42\n"
				 "umask=077\nuid=%u\ngid=%u\nown_session=1\nstdin_devnull=1\n"
				 "stdout_blocking=1\ntty=0\n",
				 f->program, f->report, f->pidfile, (unsigned)geteuid(),
				 (unsigned)getegid());
	g_assert_cmpstr(lines[1], ==, expect);
}

/* A program that never answers is killed after plugin_timeout, with its children. */
static void
test_run_timeout(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopConfig) cfg = load(f, "plugin_timeout=1\n");
	g_autofree char *reason = NULL, *pidtext = NULL;
	MpopAuthIdentity *id = NULL;
	gint64 start = g_get_monotonic_time(), took;
	pid_t child;

	(void)data;
	g_assert_cmpint(run(cfg, "hang-child", "good", &id, &reason), ==, MPOP_AUTH_TEMPFAIL);
	took = g_get_monotonic_time() - start;
	g_assert_cmpstr(reason, ==, "plugin: no answer in time (killed)");
	g_assert_null(id);
	g_assert_cmpint(took, >=, 900 * 1000);
	g_assert_cmpint(took, <, 5 * G_USEC_PER_SEC);
	/* The program's own child, in its process group, is gone too (or a zombie until
	 * whoever adopted it reaps it). */
	g_assert_true(g_file_get_contents(f->pidfile, &pidtext, NULL, NULL));
	child = (pid_t)g_ascii_strtoll(pidtext, NULL, 10);
	g_assert_cmpint(child, >, 1);
	for (int i = 0; i < 200; i++) {
		g_autofree char *stat_path = g_strdup_printf("/proc/%d/stat", (int)child);
		g_autofree char *st = NULL;

		if (!g_file_get_contents(stat_path, &st, NULL, NULL))
			return;
		if (strstr(st, ") Z "))
			return;
		g_usleep(10000);
	}
	g_error("the plugin's child %d still runs", (int)child);
}

/* The program's stderr reaches the log, escaped. */
static GString *logged;

static void
capture_log(MpopLogLevel level, const char *event, const char *msg, gpointer ctx)
{
	(void)level;
	(void)event;
	(void)ctx;
	g_string_append_printf(logged, "%s\n", msg);
}

static void
test_run_stderr(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopConfig) cfg = load(f, NULL);
	g_autofree char *reason = NULL;
	MpopAuthIdentity *id = NULL;

	(void)data;
	logged = g_string_new(NULL);
	mpop_log_set_forward(capture_log, NULL);
	g_assert_cmpint(run(cfg, "stderr", "good", &id, &reason), ==, MPOP_AUTH_DENIED);
	mpop_log_set_forward(NULL, NULL);
	g_assert_cmpstr(logged->str, ==, "plugin stderr: bad\\x01thing\\x0a\n");
	g_string_free(logged, TRUE);
}

/* plugin_user: the program runs as that user; only root can switch to another one. */
static void
test_run_plugin_user(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopConfig) cfg = NULL;
	g_autofree char *more = g_strconcat(f->report, ".more", NULL);
	g_autofree char *seen = NULL, *reason = NULL, *want = NULL;
	g_autoptr(MpopAuthIdentity) id = NULL;
	struct passwd *pw = getpwnam("nobody");

	(void)data;
	if (geteuid() != 0) {
		cfg = load(f, "plugin_user=root\n");
		g_assert_cmpint(run(cfg, "accept", "good", &id, &reason), ==, MPOP_AUTH_TEMPFAIL);
		g_assert_cmpstr(reason, ==, "plugin: plugin_user root: mpopd is not root");
		return;
	}
	cfg = load(f, "plugin_user=nobody\n");
	g_assert_nonnull(pw);
	/* nobody writes its reports into files made for it. */
	g_assert_true(g_file_set_contents(f->report, "", 0, NULL));
	g_assert_true(g_file_set_contents(more, "", 0, NULL));
	g_assert_cmpint(chmod(f->report, 0666), ==, 0);
	g_assert_cmpint(chmod(more, 0666), ==, 0);
	g_assert_cmpint(run(cfg, "accept", "good", &id, &reason), ==, MPOP_AUTH_OK);
	g_assert_true(g_file_get_contents(more, &seen, NULL, NULL));
	want = g_strdup_printf("\nuid=%u\ngid=%u\n", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	g_assert_nonnull(strstr(seen, want));
}

/* A file that passes the checks but is no program: execve's error reaches the log. */
static void
test_run_exec_error(Fixture *f, gconstpointer data)
{
	g_autofree char *prog = g_build_filename(f->dir, "not-a-program", NULL);
	g_autofree char *text = NULL, *reason = NULL;
	g_autoptr(MpopConfig) cfg = NULL;
	MpopAuthIdentity *id = NULL;
	MpopAuthQuery q = {.user = "accept", .password = "good", .peer = "local"};
	g_autoptr(GError) error = NULL;

	(void)data;
	g_assert_true(g_file_set_contents(prog, "no interpreter line\n", -1, NULL));
	g_assert_cmpint(chmod(prog, 0755), ==, 0);
	text = g_strdup_printf("[auth]\ndefault=plugin\nplugin=%s\n", prog);
	cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);
	g_assert_no_error(error);
	g_assert_true(mpop_auth_check_config(cfg, &error));
	g_assert_cmpint(mpop_auth_plugin_ops.authenticate(cfg, &q, &id, &reason), ==,
			MPOP_AUTH_TEMPFAIL);
	g_assert_null(id);
	g_assert_cmpstr(reason, ==, "plugin: cannot start: execve: Exec format error");
}

/* With SIGCHLD ignored the kernel reaps the program itself: its exit status is lost, and a
 * lost status never counts as an accept. */
static void
test_run_status_lost(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopConfig) cfg = load(f, NULL);
	g_autofree char *reason = NULL;
	MpopAuthIdentity *id = NULL;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;

	(void)data;
	g_assert_cmpint(sigaction(SIGCHLD, &ign, &old), ==, 0);
	g_assert_cmpint(run(cfg, "accept", "good", &id, &reason), ==, MPOP_AUTH_TEMPFAIL);
	g_assert_cmpint(sigaction(SIGCHLD, &old, NULL), ==, 0);
	g_assert_null(id);
	g_assert_cmpstr(reason, ==, "plugin: waiting for it: No child processes");
}

/* ---- the program file, at --check-config and at every login */

static void
expect_config_error(const MpopConfig *cfg, const char *pattern)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *reason = NULL;
	MpopAuthIdentity *id = NULL;
	MpopAuthQuery q = {.user = "accept", .password = "good", .peer = "local"};

	g_assert_false(mpop_auth_check_config(cfg, &error));
	g_assert_nonnull(error);
	g_test_message("error: %s", error->message);
	if (!g_pattern_match_simple(pattern, error->message))
		g_error("got \"%s\", want \"%s\"", error->message, pattern);
	g_assert_cmpint(mpop_auth_plugin_ops.authenticate(cfg, &q, &id, &reason), ==,
			MPOP_AUTH_TEMPFAIL);
	g_assert_null(id);
	g_assert_true(g_str_has_prefix(reason, "plugin: "));
}

static char *
copy_program(const Fixture *f, const char *dir, const char *name, int mode)
{
	g_autofree char *data = NULL;
	gsize len;
	char *path = g_build_filename(dir, name, NULL);

	g_assert_true(g_file_get_contents(f->program, &data, &len, NULL));
	g_assert_true(g_file_set_contents(path, data, (gssize)len, NULL));
	g_assert_cmpint(chmod(path, (mode_t)mode), ==, 0);
	return path;
}

static MpopConfig *
load_program(const char *path, const char *extra)
{
	g_autofree char *text = g_strdup_printf("[auth]\ndefault=userlist;plugin\nplugin=%s\n%s",
						path, extra ? extra : "");
	g_autoptr(GError) error = NULL;
	MpopConfig *cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);

	g_assert_no_error(error);
	return cfg;
}

static void
test_check_config(Fixture *f, gconstpointer data)
{
	g_autofree char *sub = g_build_filename(f->dir, "open", NULL);
	g_autofree char *good = copy_program(f, f->dir, "good", 0755);
	g_autofree char *noexec = copy_program(f, f->dir, "noexec", 0644);
	g_autofree char *gw = copy_program(f, f->dir, "gw", 0775);
	g_autofree char *ow = copy_program(f, f->dir, "ow", 0757);
	g_autofree char *link = g_build_filename(f->dir, "link", NULL);
	g_autofree char *in_open = NULL, *missing = g_build_filename(f->dir, "missing", NULL);
	g_autoptr(GError) error = NULL;
	MpopConfig *cfg;

	(void)data;
	g_assert_cmpint(symlink(good, link), ==, 0);
	g_assert_cmpint(mkdir(sub, 0755), ==, 0);
	in_open = copy_program(f, sub, "prog", 0755);
	g_assert_cmpint(chmod(sub, 0777), ==, 0);

	cfg = load_program(good, NULL);
	g_assert_true(mpop_auth_check_config(cfg, &error));
	g_assert_no_error(error);
	mpop_config_free(cfg);
	cfg = load_program(link, NULL);
	g_assert_true(mpop_auth_check_config(cfg, &error));
	g_assert_no_error(error);
	mpop_config_free(cfg);

	/* Not used by any chain: not checked. */
	{
		g_autofree char *text = g_strdup_printf("[auth]\nplugin=%s\n", missing);
		cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);
		g_assert_no_error(error);
		g_assert_true(mpop_auth_check_config(cfg, &error));
		g_assert_no_error(error);
		mpop_config_free(cfg);
	}

	cfg = load_program("", NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: the plugin backend is used but no "
				 "program is set");
	mpop_config_free(cfg);
	cfg = load_program(missing, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: */missing: No such file or directory");
	mpop_config_free(cfg);
	cfg = load_program(f->dir, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: * is not a regular file");
	mpop_config_free(cfg);
	cfg = load_program(noexec, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: */noexec is not executable");
	mpop_config_free(cfg);
	cfg = load_program(gw, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: */gw is writable by group or others");
	mpop_config_free(cfg);
	cfg = load_program(ow, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: */ow is writable by group or others");
	mpop_config_free(cfg);
	cfg = load_program(in_open, NULL);
	expect_config_error(cfg, "test.conf: [auth] plugin: */open is writable by group or others");
	mpop_config_free(cfg);
	cfg = load_program(good, "plugin_user=mpopd-no-such-user\n");
	expect_config_error(cfg, "test.conf: [auth] plugin_user mpopd-no-such-user: no such user");
	mpop_config_free(cfg);
	/* A relative path is refused when the file is loaded. */
	{
		const char *text = "[auth]\ndefault=plugin\nplugin=bin/check\n";
		cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);
		g_assert_null(cfg);
		g_assert_nonnull(error);
		g_assert_nonnull(strstr(error->message, "plugin"));
	}
}

/* Only root can make a file another user owns. */
static void
test_check_config_owner(Fixture *f, gconstpointer data)
{
	g_autofree char *prog = copy_program(f, f->dir, "owned", 0755);
	g_autofree char *pattern = NULL;
	MpopConfig *cfg;

	(void)data;
	g_assert_cmpint(chown(prog, 4242, 0), ==, 0);
	cfg = load_program(prog, NULL);
	pattern = g_strdup_printf("test.conf: [auth] plugin: %s is owned by uid 4242, not root",
				  prog);
	expect_config_error(cfg, pattern);
	mpop_config_free(cfg);
}

/* ---- in a chain: exit 2 asks the next backend, exit 1 does not */

static void
test_chain(Fixture *f, gconstpointer data)
{
	g_autofree char *users = g_build_filename(f->dir, "users", NULL);
	g_autofree char *hash = mpop_auth_make_hash("listpw", "$6$", NULL);
	g_autofree char *list = g_strdup_printf("unknown:%s:5001\nreject:%s:5002\n", hash, hash);
	g_autofree char *extra = g_strdup_printf("userlist=%s\n", users);
	g_autofree char *text = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;
	struct {
		const char *user, *password;
		MpopAuthResult result;
		guint uid;
	} cases[] = {
		{"unknown", "listpw", MPOP_AUTH_OK, 5001}, {"unknown", "wrong", MPOP_AUTH_DENIED},
		{"reject", "listpw", MPOP_AUTH_DENIED},	   {"accept", "good", MPOP_AUTH_OK, 4242},
		{"temp", "listpw", MPOP_AUTH_TEMPFAIL},
	};

	(void)data;
	g_assert_true(g_file_set_contents(users, list, -1, NULL));
	text = g_strdup_printf("[auth]\ndefault=plugin;userlist\nplugin=%s\nplugin_args=%s\n"
			       "failure_delay=0\n%s",
			       f->program, f->report, extra);
	cfg = mpop_config_load_data(text, strlen(text), "test.conf", &error);
	g_assert_no_error(error);
	g_assert_true(mpop_auth_check_config(cfg, &error));
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		MpopAuthQuery q = {
			.user = cases[i].user, .password = cases[i].password, .peer = "192.0.2.7"};
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL;
		MpopAuthResult r = mpop_auth_check(cfg, &q, &id, &reason);

		g_test_message("%s/%s: %s", cases[i].user, cases[i].password,
			       reason ? reason : "(none)");
		g_assert_cmpint(r, ==, cases[i].result);
		if (r == MPOP_AUTH_OK) {
			g_assert_cmpuint(id->uid, ==, cases[i].uid);
		}
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/auth-plugin/answer/table", test_answer_table);
	g_test_add_func("/auth-plugin/answer/limits", test_answer_limits);
	for (size_t i = 0; i < G_N_ELEMENTS(run_cases); i++) {
		g_autofree char *name = g_strdup_printf("/auth-plugin/run/%s-%s", run_cases[i].user,
							run_cases[i].password);
		g_test_add(name, Fixture, &run_cases[i], fixture_set_up, test_run_case,
			   fixture_tear_down);
	}
	g_test_add("/auth-plugin/run/environment", Fixture, NULL, fixture_set_up,
		   test_run_environment, fixture_tear_down);
	g_test_add("/auth-plugin/run/timeout", Fixture, NULL, fixture_set_up, test_run_timeout,
		   fixture_tear_down);
	g_test_add("/auth-plugin/run/stderr", Fixture, NULL, fixture_set_up, test_run_stderr,
		   fixture_tear_down);
	g_test_add("/auth-plugin/run/plugin-user", Fixture, NULL, fixture_set_up,
		   test_run_plugin_user, fixture_tear_down);
	g_test_add("/auth-plugin/run/exec-error", Fixture, NULL, fixture_set_up,
		   test_run_exec_error, fixture_tear_down);
	g_test_add("/auth-plugin/run/status-lost", Fixture, NULL, fixture_set_up,
		   test_run_status_lost, fixture_tear_down);
	g_test_add("/auth-plugin/check-config/file", Fixture, NULL, fixture_set_up,
		   test_check_config, fixture_tear_down);
	if (geteuid() == 0)
		g_test_add("/auth-plugin/check-config/owner", Fixture, NULL, fixture_set_up,
			   test_check_config_owner, fixture_tear_down);
	g_test_add("/auth-plugin/chain", Fixture, NULL, fixture_set_up, test_chain,
		   fixture_tear_down);
	return g_test_run();
}
