/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the auth registry, crypt hashing, the user list backend and mpopdctl. */
#include "auth.h"
#include "config-schema.h"
#include "config.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- mpop_userlist_parse_line */

typedef struct {
	const char *line;
	int rc;
	const char *name;
	const char *hash;
	guint32 uid;
	guint32 gid;
	const char *mailbox;
} ParseCase;

static const ParseCase parse_cases[] = {
	{"bob:$y$j9T$salt$hash:1000", 0, "bob", "$y$j9T$salt$hash", 1000, (guint32)-1, NULL},
	{"bob:HASH:1000:100", 0, "bob", "HASH", 1000, 100, NULL},
	{"bob:HASH:1000:100:/srv/mail/bob", 0, "bob", "HASH", 1000, 100, "/srv/mail/bob"},
	{"bob:HASH:1000::/srv/mail/bob", 0, "bob", "HASH", 1000, (guint32)-1, "/srv/mail/bob"},
	{"bob:HASH:1000:100:", 0, "bob", "HASH", 1000, 100, NULL},
	{"bob:HASH:1000\n", 0, "bob", "HASH", 1000, (guint32)-1, NULL},
	{"bob:HASH:1000:7\r\n", 0, "bob", "HASH", 1000, 7, NULL},
	{"b.b@example.org:HASH:4294967294", 0, "b.b@example.org", "HASH", 4294967294u, (guint32)-1,
	 NULL},
	{"# a comment", 1},
	{"   # indented comment:x:1", 1},
	{"", 1},
	{"\n", 1},
	{"\r\n", 1},
	{" \t ", 1},
	{"bob:HASH:12a", -EINVAL},
	{"bob:HASH:-1", -EINVAL},
	{"bob:HASH:+1", -EINVAL},
	{"bob:HASH: 1", -EINVAL},
	{"bob:HASH:4294967296", -EINVAL},
	{"bob:HASH:4294967295", -EINVAL},
	{"bob:HASH:99999999999999999999999", -EINVAL},
	{"bob:HASH:", -EINVAL},
	{"bob:HASH:1:12a", -EINVAL},
	{"bob:HASH:1:4294967296", -EINVAL},
	{":HASH:1000", -EINVAL},
	{"bob::1000", -EINVAL},
	{"bob:HASH:1000:100:relative/mbox", -EINVAL},
	{"bob:HASH:1000:100:/srv/mail/bob:extra", -EINVAL},
	{"bob:HASH:1:2:/a:b:c:d", -EINVAL},
	{"bob", -EINVAL},
	{"bob:HASH", -EINVAL},
	{"b\tb:HASH:1000", -EINVAL},
	{"b\x7f"
	 "b:HASH:1000",
	 -EINVAL},
	{"bob:HA\x01SH:1000", -EINVAL},
	{"bob:HASH:1000\n\n", -EINVAL},
	{"bob:HASH:1000\rx", -EINVAL},
};

static void
check_parse_case(const ParseCase *c)
{
	MpopUserlistEntry e = {0};
	int rc = mpop_userlist_parse_line(c->line, strlen(c->line), &e);

	g_test_message("line \"%s\"", c->line);
	g_assert_cmpint(rc, ==, c->rc);
	if (rc != 0) {
		g_assert_null(e.name);
		g_assert_null(e.hash);
		return;
	}
	g_assert_cmpstr(e.name, ==, c->name);
	g_assert_cmpstr(e.hash, ==, c->hash);
	g_assert_cmpuint(e.uid, ==, c->uid);
	g_assert_cmpuint(e.gid, ==, c->gid);
	g_assert_cmpstr(e.mailbox, ==, c->mailbox);
	mpop_userlist_entry_clear(&e);
	g_assert_null(e.name);
}

static void
test_parse_table(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(parse_cases); i++)
		check_parse_case(&parse_cases[i]);
}

/* Every prefix of every case, in a buffer of exactly that size (ASan catches overreads). */
static void
test_parse_prefixes(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(parse_cases); i++) {
		size_t len = strlen(parse_cases[i].line);
		for (size_t n = 0; n <= len; n++) {
			g_autofree char *buf = g_memdup2(parse_cases[i].line, n);
			MpopUserlistEntry e = {0};
			int rc = mpop_userlist_parse_line(buf, n, &e);
			g_assert_true(rc == 0 || rc == 1 || rc == -EINVAL);
			mpop_userlist_entry_clear(&e);
		}
	}
}

static void
test_parse_embedded_nul(void)
{
	static const char line[] = "bob:HASH:1000\0:0";
	MpopUserlistEntry e = {0};

	g_assert_cmpint(mpop_userlist_parse_line(line, sizeof line - 1, &e), ==, -EINVAL);
	g_assert_cmpint(mpop_userlist_parse_line(NULL, 0, &e), ==, -EINVAL);
}

/* ---- hashing */

static void
test_hash_scheme(gconstpointer data)
{
	const char *prefix = data;
	g_autoptr(GError) error = NULL;
	g_autofree char *hash = mpop_auth_make_hash("correct horse", prefix, &error);
	g_autofree char *hash2 = NULL;
	guint64 before;

	g_assert_no_error(error);
	g_assert_nonnull(hash);
	g_assert_true(g_str_has_prefix(hash, prefix ? prefix : "$y$"));
	g_assert_true(mpop_auth_verify_hash("correct horse", hash));
	g_assert_false(mpop_auth_verify_hash("correct horse ", hash));
	g_assert_false(mpop_auth_verify_hash("Correct horse", hash));
	g_assert_false(mpop_auth_verify_hash("", hash));
	/* A fresh salt every time. */
	hash2 = mpop_auth_make_hash("correct horse", prefix, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(hash, !=, hash2);
	g_assert_true(mpop_auth_verify_hash("correct horse", hash2));

	before = mpop_auth_hash_count();
	g_assert_false(mpop_auth_verify_hash("wrong", hash));
	g_assert_cmpuint(mpop_auth_hash_count(), ==, before + 1);
}

static void
test_hash_bad_prefix(void)
{
	static const char *const bad[] = {"$5$", "$x$", "", "$y", "y", "$2a$", "$7$", "$1$"};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(GError) error = NULL;
		g_autofree char *hash = mpop_auth_make_hash("pw", bad[i], &error);
		g_assert_null(hash);
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_FAILED);
	}
}

/* mpopd makes hashes only at a cost that makes guessing expensive; an md5crypt hash in an
 * old user list is still checked. */
static void
test_hash_cost(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *sha = mpop_auth_make_hash("pw", "$6$", &error);
	g_autofree char *bf = mpop_auth_make_hash("pw", "$2b$", &error);
	struct crypt_data *cd = g_new0(struct crypt_data, 1);
	g_autofree char *md5 = NULL;

	g_assert_no_error(error);
	g_assert_true(g_str_has_prefix(sha, "$6$rounds=100000$"));
	g_assert_true(g_str_has_prefix(bf, "$2b$10$"));
	md5 = g_strdup(crypt_rn("old pw", "$1$saltsalt$", cd, (int)sizeof *cd));
	g_free(cd);
	g_assert_true(g_str_has_prefix(md5, "$1$saltsalt$"));
	g_assert_true(mpop_auth_verify_hash("old pw", md5));
	g_assert_false(mpop_auth_verify_hash("old pw2", md5));
}

/* Locked, disabled or unusable hashes never match, and still cost one hash. */
static void
test_hash_disabled(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *hash = mpop_auth_make_hash("secret", NULL, &error);
	g_autofree char *locked = g_strconcat("!", hash, NULL);
	g_autofree char *star = g_strconcat("*", hash, NULL);
	const char *const unusable[] = {locked, star,	    "*", "!",
					"",	"$1$short", "x", "$9$0123456789abcdef"};

	g_assert_no_error(error);
	for (size_t i = 0; i < G_N_ELEMENTS(unusable); i++) {
		guint64 before = mpop_auth_hash_count();
		g_assert_false(mpop_auth_verify_hash("secret", unusable[i]));
		g_assert_cmpuint(mpop_auth_hash_count(), >=, before + 1);
	}
	g_assert_false(mpop_auth_verify_hash("secret", NULL));
	g_assert_false(mpop_auth_verify_hash(NULL, hash));
	g_assert_true(mpop_auth_verify_hash("secret", hash));
}

static void
test_dummy_hash(void)
{
	guint64 before = mpop_auth_hash_count();
	guint64 t0 = mpop_now_usec();

	mpop_auth_dummy_hash("whatever");
	mpop_auth_dummy_hash(NULL);
	g_assert_cmpuint(mpop_auth_hash_count(), ==, before + 2);
	g_assert_cmpuint(mpop_now_usec() - t0, >, 0);
}

/* ---- the userlist backend */

typedef struct {
	char *dir;
	char *path;
	char *bob_hash;
	MpopConfig cfg;
} Fixture;

static const char *const userlist_chain[] = {"userlist", NULL};

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *nobody_hash = NULL, *root_hash = NULL, *text = NULL;

	f->dir = g_dir_make_tmp("test-auth-XXXXXX", &error);
	g_assert_no_error(error);
	f->path = g_build_filename(f->dir, "userlist", NULL);
	f->bob_hash = mpop_auth_make_hash("bobpw", NULL, &error);
	g_assert_no_error(error);
	nobody_hash = mpop_auth_make_hash("nobodypw", "$6$", &error);
	g_assert_no_error(error);
	root_hash = mpop_auth_make_hash("rootpw", "$2b$", &error);
	g_assert_no_error(error);
	text = g_strdup_printf("# mpopd users\n"
			       "\n"
			       "bob:%s:1000:100:/srv/mail/bob\r\n"
			       "this line is malformed\n"
			       "nobody2:%s:65534\n"
			       "root0:%s:0\n"
			       "locked:!%s:1001\n"
			       "ghost:%s:54321\n"
			       "nobody3:%s:65534:65534\n",
			       f->bob_hash, nobody_hash, root_hash, f->bob_hash, f->bob_hash,
			       nobody_hash);
	g_file_set_contents(f->path, text, -1, &error);
	g_assert_no_error(error);
	f->cfg.path = (char *)"(test)";
	f->cfg.auth_default = (char **)userlist_chain;
	f->cfg.userlist = f->path;
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	unlink(f->path);
	rmdir(f->dir);
	g_free(f->path);
	g_free(f->dir);
	g_free(f->bob_hash);
}

static MpopAuthResult
check(const MpopConfig *cfg, const char *user, const char *pw, MpopAuthIdentity **out_id,
      char **out_reason)
{
	const MpopAuthQuery q = {.user = user, .password = pw, .peer = "192.0.2.1"};
	return mpop_auth_check(cfg, &q, out_id, out_reason);
}

/* Run the backend with stderr captured, so the log lines can be checked too. */
static MpopAuthResult
userlist_auth(Fixture *f, const char *user, const char *pw, MpopAuthIdentity **out_id,
	      char **out_reason, char **out_log)
{
	g_autofree char *logpath = g_build_filename(f->dir, "log", NULL);
	int saved = dup(STDERR_FILENO);
	int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	MpopAuthResult r;

	g_assert_cmpint(fd, >=, 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
	r = check(&f->cfg, user, pw, out_id, out_reason);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	g_assert_true(g_file_get_contents(logpath, out_log, NULL, NULL));
	unlink(logpath);
	return r;
}

static void
test_userlist_ok(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL, *log = NULL;

	g_assert_cmpint(userlist_auth(f, "bob", "bobpw", &id, &reason, &log), ==, MPOP_AUTH_OK);
	g_assert_nonnull(id);
	g_assert_cmpstr(id->user, ==, "bob");
	g_assert_cmpuint(id->uid, ==, 1000);
	g_assert_cmpuint(id->gid, ==, 100);
	g_assert_cmpstr(id->mailbox, ==, "/srv/mail/bob");
	/* gid and mailbox given: nothing to ask NSS for, so no home. */
	g_assert_null(id->home);
	/* A virtual user: the session gets no supplementary groups, whatever uid it has. */
	g_assert_false(id->system_account);
	/* The malformed line is reported with file and line number, never with a hash. */
	g_assert_nonnull(strstr(log, f->path));
	g_assert_nonnull(strstr(log, ":4:"));
	g_assert_null(strstr(log, "$y$"));
	g_assert_null(strstr(log, "bobpw"));
}

/* No gid field: the passwd primary group when the uid exists, else gid = uid. */
static void
test_userlist_gid_default(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL, *log = NULL;
	const struct passwd *pw = getpwuid(65534);

	g_assert_cmpint(userlist_auth(f, "nobody2", "nobodypw", &id, &reason, &log), ==,
			MPOP_AUTH_OK);
	g_assert_cmpuint(id->uid, ==, 65534);
	g_assert_cmpuint(id->gid, ==, pw ? pw->pw_gid : 65534);
	g_assert_cmpstr(id->home, ==, pw ? pw->pw_dir : NULL);
	g_assert_null(id->mailbox);
	g_clear_pointer(&id, mpop_auth_identity_free);
	g_clear_pointer(&reason, g_free);
	g_clear_pointer(&log, g_free);

	/* A uid without a passwd entry: gid = uid, no home. */
	if (getpwuid(54321))
		return;
	g_assert_cmpint(userlist_auth(f, "ghost", "bobpw", &id, &reason, &log), ==, MPOP_AUTH_OK);
	g_assert_cmpuint(id->uid, ==, 54321);
	g_assert_cmpuint(id->gid, ==, 54321);
	g_assert_null(id->home);
}

/* gid given, no mailbox: the passwd entry is asked for the home only when the location
 * pattern that names the mailbox has %h (the Maildir default "%h/Maildir" has). */
static void
test_userlist_home_when_needed(Fixture *f, gconstpointer data)
{
	static const struct {
		const char *location;
		gboolean want_home;
	} cases[] = {
		{NULL, TRUE},
		{"%h/Mail", TRUE},
		{"/srv/mail/%u", FALSE},
		{"/srv/%%h/%u", FALSE},
	};
	const struct passwd *pw = getpwuid(65534);

	if (!pw || !pw->pw_dir || pw->pw_dir[0] != '/')
		g_test_skip("uid 65534 has no passwd entry with a home here");
	for (size_t i = 0; pw && i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL, *log = NULL;

		f->cfg.format = MPOP_FORMAT_MAILDIR;
		f->cfg.location = (char *)cases[i].location;
		g_assert_cmpint(userlist_auth(f, "nobody3", "nobodypw", &id, &reason, &log), ==,
				MPOP_AUTH_OK);
		g_assert_cmpuint(id->gid, ==, 65534);
		g_assert_null(id->mailbox);
		if (cases[i].want_home)
			g_assert_cmpstr(id->home, ==, pw->pw_dir);
		else
			g_assert_null(id->home);
	}
	f->cfg.location = NULL;
}

typedef struct {
	const char *user;
	const char *password;
	const char *reason;
} DeniedCase;

static void
test_userlist_denied(Fixture *f, gconstpointer data)
{
	static const DeniedCase cases[] = {
		{"bob", "wrong", "wrong password"},
		{"bob", "", "wrong password"},
		{"bob", "bobpw ", "wrong password"},
		{"b.b", "bobpw", "unknown user (userlist)"}, /* the original's regex match */
		{"bo", "bobpw", "unknown user (userlist)"},
		{"b.*", "bobpw", "unknown user (userlist)"},
		{"Bob", "bobpw", "unknown user (userlist)"},
		{"bob ", "bobpw", "unknown user (userlist)"},
		{"alice", "bobpw", "unknown user (userlist)"},
		{"root0", "rootpw", "refusing uid 0"},
		{"locked", "bobpw", "wrong password"},
		{"# mpopd users", "x", "unknown user (userlist)"},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL, *log = NULL;
		guint64 before = mpop_auth_hash_count();

		g_test_message("user \"%s\"", cases[i].user);
		g_assert_cmpint(
			userlist_auth(f, cases[i].user, cases[i].password, &id, &reason, &log), ==,
			MPOP_AUTH_DENIED);
		g_assert_null(id);
		g_assert_cmpstr(reason, ==, cases[i].reason);
		/* Unknown users pay for a hash exactly like a wrong password does. */
		g_assert_cmpuint(mpop_auth_hash_count(), >=, before + 1);
		if (*cases[i].password)
			g_assert_null(strstr(log, cases[i].password));
	}
}

static void
test_userlist_tempfail(Fixture *f, gconstpointer data)
{
	g_autofree char *missing = g_build_filename(f->dir, "no-such-file", NULL);
	const char *const paths[] = {missing, f->dir, ""};

	for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL, *log = NULL;
		guint64 before = mpop_auth_hash_count();

		f->cfg.userlist = (char *)paths[i];
		g_assert_cmpint(userlist_auth(f, "bob", "bobpw", &id, &reason, &log), ==,
				MPOP_AUTH_TEMPFAIL);
		g_assert_null(id);
		g_assert_nonnull(reason);
		if (*paths[i])
			g_assert_nonnull(strstr(reason, paths[i]));
		g_assert_cmpuint(mpop_auth_hash_count(), >=, before + 1);
	}
	f->cfg.userlist = f->path;
}

/* ---- mpop_auth_check: name checks and the registry */

static void
test_check_registry(Fixture *f, gconstpointer data)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	g_autoptr(GHashTable) per_user = g_hash_table_new(g_str_hash, g_str_equal);
	static const char *const nosuch[] = {"nosuch", NULL};
	g_autofree char *names = mpop_config_choice_names(mpop_config_auth_backends);

	g_assert_true(mpop_auth_lookup("userlist") == &mpop_auth_userlist_ops);
	g_assert_null(mpop_auth_lookup("no-such-backend"));
	g_assert_null(mpop_auth_lookup(NULL));
	/* The names the configuration accepts are exactly the backends built in. */
	for (const Choice *c = mpop_config_auth_backends; c->name; c++)
		g_assert_nonnull(mpop_auth_lookup(c->name));
	g_test_message("backends: %s", names);

	g_assert_cmpint(check(&f->cfg, "bob", "bobpw", &id, &reason), ==, MPOP_AUTH_OK);
	g_assert_cmpuint(id->uid, ==, 1000);
	g_assert_true(id->ops == &mpop_auth_userlist_ops);
	g_clear_pointer(&reason, g_free);

	/* A hand-made configuration naming a backend this build does not have: try later,
	 * not "wrong password" (the configuration check refuses it before). */
	g_hash_table_insert(per_user, (char *)"bob", (char **)nosuch);
	f->cfg.user_auth = per_user;
	g_assert_cmpint(check(&f->cfg, "bob", "bobpw", NULL, &reason), ==, MPOP_AUTH_TEMPFAIL);
	g_assert_cmpstr(reason, ==, "auth backend nosuch not built in");
	f->cfg.user_auth = NULL;
}

/* The chain asks the next backend only when one does not know the user. */
static void
test_check_chain(Fixture *f, gconstpointer data)
{
	static const char *const userlist_system[] = {"userlist", "system", NULL};
	static const char *const system_only[] = {"system", NULL};
	g_autoptr(GHashTable) per_user = g_hash_table_new(g_str_hash, g_str_equal);
	g_autofree char *unknown = g_strdup_printf("nouser-%d", (int)getpid());
	g_autofree char *reason = NULL;
	guint64 before;

	f->cfg.auth_default = (char **)userlist_system;
	f->cfg.system_min_uid = 1000;
	/* In the list: the list decides, a wrong password ends the chain. */
	g_assert_cmpint(check(&f->cfg, "bob", "wrong", NULL, &reason), ==, MPOP_AUTH_DENIED);
	g_assert_cmpstr(reason, ==, "wrong password");
	g_clear_pointer(&reason, g_free);
	g_assert_cmpint(check(&f->cfg, "bob", "bobpw", NULL, &reason), ==, MPOP_AUTH_OK);
	g_clear_pointer(&reason, g_free);
	/* Not in the list, a system account: the system backend answers (root never logs
	 * in, whatever the password). */
	g_assert_cmpint(check(&f->cfg, "root", "x", NULL, &reason), ==, MPOP_AUTH_DENIED);
	g_assert_true(g_str_has_prefix(reason, "system: "));
	g_clear_pointer(&reason, g_free);
	/* Known to nobody: one hash in all, the same text. */
	before = mpop_auth_hash_count();
	g_assert_cmpint(check(&f->cfg, unknown, "x", NULL, &reason), ==, MPOP_AUTH_DENIED);
	g_assert_cmpstr(reason, ==, "unknown user (userlist, system)");
	g_assert_cmpuint(mpop_auth_hash_count(), ==, before + 1);
	g_clear_pointer(&reason, g_free);
	/* [user_auth]: bob's chain is the system accounts only, where there is no bob. */
	g_hash_table_insert(per_user, (char *)"bob", (char **)system_only);
	f->cfg.user_auth = per_user;
	if (!getpwnam("bob")) {
		g_assert_cmpint(check(&f->cfg, "bob", "bobpw", NULL, &reason), ==,
				MPOP_AUTH_DENIED);
		g_assert_cmpstr(reason, ==, "unknown user (system)");
	}
	f->cfg.user_auth = NULL;
	f->cfg.auth_default = (char **)userlist_chain;
}

static void
test_check_bad_names(Fixture *f, gconstpointer data)
{
	g_autofree char *long_name = g_strnfill(256, 'a');
	g_autofree char *max_name = g_strnfill(255, 'a');
	const char *const bad[] = {"",
				   long_name,
				   "bob\r",
				   "b\x1b"
				   "ob",
				   "../bob",
				   "bob:1000",
				   "a/b",
				   NULL};

	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL;
		guint64 before = mpop_auth_hash_count();

		g_assert_cmpint(check(&f->cfg, bad[i], "bobpw", &id, &reason), ==,
				MPOP_AUTH_DENIED);
		g_assert_null(id);
		g_assert_cmpuint(mpop_auth_hash_count(), ==, before + 1);
	}
	/* 255 bytes is still a name (just not a listed one). */
	g_autofree char *reason = NULL;
	g_assert_cmpint(check(&f->cfg, max_name, "x", NULL, &reason), ==, MPOP_AUTH_DENIED);
	g_assert_cmpstr(reason, ==, "unknown user (userlist)");
}

/* ---- mpopdctl */

static char *
mpopdctl_path(void)
{
	return g_test_build_filename(G_TEST_BUILT, "..", "src", "mpopdctl", NULL);
}

/* Run mpopdctl with args; stdin from the given text (NULL: /dev/null). err NULL: stderr
 * goes to /dev/null (a daemon started by mpopdctl inherits it and would hold a pipe). */
static int
run_ctl(const char *stdin_text, const char *const *args, char **out, char **err)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func(g_free);
	g_autofree char *in_path = NULL;
	int in_fd = -1, status = -1;

	g_ptr_array_add(argv, mpopdctl_path());
	for (; *args; args++)
		g_ptr_array_add(argv, g_strdup(*args));
	g_ptr_array_add(argv, NULL);
	if (stdin_text) {
		in_fd = g_file_open_tmp("mpopdctl-stdin-XXXXXX", &in_path, &error);
		g_assert_no_error(error);
		g_assert_cmpint(mpop_write_all(in_fd, stdin_text, strlen(stdin_text)), ==, 0);
		g_assert_cmpint(lseek(in_fd, 0, SEEK_SET), ==, 0);
	}
	{
		/* g_spawn_sync has no stdin argument: hand the file over as the child's fd 0. */
		int saved = dup(STDIN_FILENO);
		int fd = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
		dup2(fd, STDIN_FILENO);
		g_spawn_sync(NULL, (char **)argv->pdata, NULL,
			     G_SPAWN_CHILD_INHERITS_STDIN | (err ? 0 : G_SPAWN_STDERR_TO_DEV_NULL),
			     NULL, NULL, out, err, &status, &error);
		dup2(saved, STDIN_FILENO);
		close(saved);
		close(fd);
	}
	g_assert_no_error(error);
	if (in_path)
		unlink(in_path);
	g_assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_ctl_help(void)
{
	const char *const h[] = {"-h", NULL}, *const help[] = {"--help", NULL};
	g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;

	g_assert_cmpint(run_ctl(NULL, h, &out, &err), ==, 0);
	g_assert_true(g_str_has_prefix(out, "Usage: mpopdctl"));
	for (const char *v = "start stop restart refresh reload status config passwd check"; *v;) {
		const char *sp = strchr(v, ' ');
		g_autofree char *word = sp ? g_strndup(v, (gsize)(sp - v)) : g_strdup(v);
		g_assert_nonnull(strstr(out, word));
		v = sp ? sp + 1 : v + strlen(v);
	}
	g_assert_cmpstr(err, ==, "");
	g_assert_cmpint(run_ctl(NULL, help, &out2, &err2), ==, 0);
	g_assert_cmpstr(out, ==, out2);
}

static void
test_ctl_usage_errors(void)
{
	const char *const cases[][4] = {
		{"frobnicate", NULL},	  {NULL},
		{"start", "stop", NULL},  {"-p", "http", "start", NULL},
		{"-e", "passwd", NULL},	  {"--scheme", "md5", "status", NULL},
		{"--bogus-option", NULL}, {"-p", "110", "passwd", NULL},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *out = NULL, *err = NULL;
		g_assert_cmpint(run_ctl(NULL, cases[i], &out, &err), ==, 2);
		g_assert_cmpstr(out, ==, "");
		g_assert_nonnull(strstr(err, "mpopdctl"));
		/* A wrong verb shows the usage; a bad option value just says what is wrong. */
		if (i < 3)
			g_assert_nonnull(strstr(err, "Usage: mpopdctl"));
	}
}

static void
test_ctl_passwd(gconstpointer data)
{
	const char *const *c = data; /* scheme (or NULL), expected prefix */
	const char *const args_default[] = {"passwd", NULL};
	const char *const args_scheme[] = {"passwd", "--scheme", c[0], NULL};
	g_autofree char *out = NULL, *err = NULL;

	g_assert_cmpint(run_ctl("s3cret pass\n", c[0] ? args_scheme : args_default, &out, &err), ==,
			0);
	g_assert_true(g_str_has_prefix(out, c[1]));
	g_assert_true(g_str_has_suffix(out, "\n"));
	g_assert_null(strstr(out, "s3cret"));
	g_assert_null(strstr(err, "s3cret"));
	g_strchomp(out);
	g_assert_null(strchr(out, '\n'));
	g_assert_true(mpop_auth_verify_hash("s3cret pass", out));
	g_assert_false(mpop_auth_verify_hash("s3cret pass\n", out));
}

static void
test_ctl_passwd_errors(void)
{
	const char *const args[] = {"passwd", NULL};
	const char *const bad_scheme[] = {"passwd", "--scheme", "des", NULL};
	const char *const md5_scheme[] = {"passwd", "--scheme", "md5", NULL};
	g_autofree char *out4 = NULL, *err4 = NULL;
	g_autofree char *out = NULL, *err = NULL, *out2 = NULL, *err2 = NULL;
	g_autofree char *out3 = NULL, *err3 = NULL;

	g_assert_cmpint(run_ctl("\n", args, &out, &err), ==, 1);
	g_assert_cmpstr(out, ==, "");
	g_assert_cmpint(run_ctl("", args, &out2, &err2), ==, 1);
	g_assert_cmpstr(out2, ==, "");
	g_assert_cmpint(run_ctl("pw\n", bad_scheme, &out3, &err3), ==, 2);
	g_assert_cmpstr(out3, ==, "");
	g_assert_cmpint(run_ctl("pw\n", md5_scheme, &out4, &err4), ==, 2);
	g_assert_cmpstr(out4, ==, "");
	g_assert_nonnull(strstr(err4, "no longer offered"));
}

/* The pid-file verbs never signal a pid that is not mpopd (here: the test itself). */
static void
test_ctl_pidfile(Fixture *f, gconstpointer data)
{
	g_autofree char *pidfile = g_build_filename(f->dir, "mpopd.pid", NULL);
	g_autofree char *conf = g_build_filename(f->dir, "mpopd.conf", NULL);
	g_autofree char *conf_text = g_strdup_printf("[server]\npid_file=%s\n", pidfile);
	g_autofree char *ours = g_strdup_printf("%d\n110\n", (int)getpid());
	const char *const stop[] = {"-c", conf, "stop", NULL};
	const char *const status[] = {"-c", conf, "status", NULL};
	const char *const refresh[] = {"-c", conf, "refresh", NULL};
	const char *const start[] = {"-c", conf, "start", NULL};

	g_assert_true(g_setenv("MPOPDCTL_NO_SYSTEMD", "1", TRUE));
	g_assert_true(g_file_set_contents(conf, conf_text, -1, NULL));
	for (int round = 0; round < 2; round++) {
		g_autofree char *o1 = NULL, *e1 = NULL, *o2 = NULL, *e2 = NULL;
		g_autofree char *o3 = NULL, *e3 = NULL, *o4 = NULL, *e4 = NULL;

		/* Round 0: no pid file. Round 1: a pid file naming a live process that is not
		 * mpopd, which must be treated as stale. */
		if (round == 1)
			g_assert_true(g_file_set_contents(pidfile, ours, -1, NULL));
		/* Exit 3: not running; status as the LSB says, 1 for a stale pid file. */
		g_assert_cmpint(run_ctl(NULL, stop, &o1, &e1), ==, 3);
		g_assert_nonnull(strstr(e1, "not running"));
		if (round == 0) {
			g_assert_cmpint(run_ctl(NULL, status, &o2, &e2), ==, 3);
			g_assert_cmpstr(o2, ==, "mpopd is not running\n");
		} else {
			g_assert_cmpint(run_ctl(NULL, status, &o2, &e2), ==, 1);
			g_assert_nonnull(strstr(o2, "stale"));
		}
		g_assert_cmpint(run_ctl(NULL, refresh, &o3, &e3), ==, 3);
		if (round == 1) {
			/* start refuses the stale file without -f (exit 7) and leaves it alone. */
			g_assert_cmpint(run_ctl(NULL, start, &o4, &e4), ==, 7);
			g_assert_nonnull(strstr(e4, "-f"));
			g_assert_true(g_file_test(pidfile, G_FILE_TEST_EXISTS));
		}
	}
	unlink(pidfile);
	unlink(conf);
	g_unsetenv("MPOPDCTL_NO_SYSTEMD");
}

static guint
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	g_assert_cmpint(bind(fd, (struct sockaddr *)&sin, sizeof sin), ==, 0);
	g_assert_cmpint(getsockname(fd, (struct sockaddr *)&sin, &len), ==, 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static pid_t
pid_from(const char *out)
{
	const char *p = strstr(out, "pid ");
	return p ? (pid_t)atoi(p + 4) : 0;
}

/* start, status, refresh, restart (new pid, same port), stop with the real daemon. */
static void
test_ctl_daemon(Fixture *f, gconstpointer data)
{
	g_autofree char *pidfile = g_build_filename(f->dir, "mpopd.pid", NULL);
	g_autofree char *conf = g_build_filename(f->dir, "mpopd.conf", NULL);
	g_autofree char *port = g_strdup_printf("%u", free_port());
	g_autofree char *text = g_strdup_printf("[server]\npid_file=%s\nlisten=127.0.0.1:%s\n"
						"[auth]\nuserlist=%s\n",
						pidfile, port, f->path);
	const char *const check[] = {"-c", conf, "check", NULL};
	const char *const start[] = {"-c", conf, "-p", port, "start", NULL};
	const char *const status[] = {"-c", conf, "status", NULL};
	const char *const refresh[] = {"-c", conf, "refresh", NULL};
	const char *const restart[] = {"-c", conf, "restart", NULL};
	const char *const stop[] = {"-c", conf, "stop", NULL};
	g_autofree char *o0 = NULL, *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *o5 = NULL;
	g_autofree char *o6 = NULL, *o7 = NULL, *o8 = NULL;
	pid_t first, second;

	g_assert_true(g_file_set_contents(conf, text, -1, NULL));
	g_assert_true(g_setenv("MPOPDCTL_NO_SYSTEMD", "1", TRUE));
	if (run_ctl(NULL, check, &o0, NULL) != 0) {
		g_test_skip("mpopd --check-config does not accept a minimal configuration yet");
		return;
	}
	g_assert_cmpint(run_ctl(NULL, start, &o1, NULL), ==, 0);
	first = pid_from(o1);
	g_assert_cmpint(first, >, 1);
	g_assert_nonnull(strstr(o1, port));
	g_assert_cmpint(run_ctl(NULL, start, &o2, NULL), ==, 5); /* already running */
	g_assert_cmpint(run_ctl(NULL, status, &o3, NULL), ==, 0);
	g_assert_cmpint(pid_from(o3), ==, first);
	g_assert_cmpint(run_ctl(NULL, refresh, &o4, NULL), ==, 0);
	g_usleep(200 * 1000);
	g_assert_cmpint(kill(first, 0), ==, 0); /* SIGHUP ends sessions, not the daemon */
	g_assert_cmpint(run_ctl(NULL, restart, &o5, NULL), ==, 0);
	g_assert_nonnull(strstr(o5, "started"));
	second = pid_from(strstr(o5, "started"));
	g_assert_cmpint(second, >, 1);
	g_assert_cmpint(second, !=, first);
	g_assert_nonnull(strstr(o5, port)); /* the configuration's port (-p is not kept) */
	g_assert_cmpint(run_ctl(NULL, stop, &o6, NULL), ==, 0);
	g_assert_false(g_file_test(pidfile, G_FILE_TEST_EXISTS));
	g_assert_cmpint(run_ctl(NULL, status, &o7, NULL), ==, 3);
	g_assert_cmpint(run_ctl(NULL, stop, &o8, NULL), ==, 3);
	unlink(conf);
	g_unsetenv("MPOPDCTL_NO_SYSTEMD");
}

int
main(int argc, char **argv)
{
	static const char *const schemes[][2] = {
		{NULL, "$y$"},
		{"yescrypt", "$y$"},
		{"sha512", "$6$"},
		{"bcrypt", "$2b$10$"},
	};

	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/auth/userlist/parse-table", test_parse_table);
	g_test_add_func("/auth/userlist/parse-prefixes", test_parse_prefixes);
	g_test_add_func("/auth/userlist/parse-nul", test_parse_embedded_nul);
	g_test_add_data_func("/auth/hash/default", NULL, test_hash_scheme);
	g_test_add_data_func("/auth/hash/yescrypt", "$y$", test_hash_scheme);
	g_test_add_data_func("/auth/hash/sha512", "$6$", test_hash_scheme);
	g_test_add_data_func("/auth/hash/bcrypt", "$2b$", test_hash_scheme);
	g_test_add_func("/auth/hash/cost", test_hash_cost);
	g_test_add_func("/auth/hash/bad-prefix", test_hash_bad_prefix);
	g_test_add_func("/auth/hash/disabled", test_hash_disabled);
	g_test_add_func("/auth/hash/dummy", test_dummy_hash);
#define ADD_F(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD_F("/auth/userlist/ok", test_userlist_ok);
	ADD_F("/auth/userlist/gid-default", test_userlist_gid_default);
	ADD_F("/auth/userlist/home-when-needed", test_userlist_home_when_needed);
	ADD_F("/auth/userlist/denied", test_userlist_denied);
	ADD_F("/auth/userlist/tempfail", test_userlist_tempfail);
	ADD_F("/auth/check/registry", test_check_registry);
	ADD_F("/auth/check/chain", test_check_chain);
	ADD_F("/auth/check/bad-names", test_check_bad_names);
	ADD_F("/auth/mpopdctl/pidfile", test_ctl_pidfile);
	ADD_F("/auth/mpopdctl/daemon", test_ctl_daemon);
	g_test_add_func("/auth/mpopdctl/help", test_ctl_help);
	g_test_add_func("/auth/mpopdctl/usage-errors", test_ctl_usage_errors);
	for (size_t i = 0; i < G_N_ELEMENTS(schemes); i++) {
		g_autofree char *path = g_strdup_printf("/auth/mpopdctl/passwd/%s",
							schemes[i][0] ? schemes[i][0] : "default");
		g_test_add_data_func(path, schemes[i], test_ctl_passwd);
	}
	g_test_add_func("/auth/mpopdctl/passwd-errors", test_ctl_passwd_errors);
	return g_test_run();
}
