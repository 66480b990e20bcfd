/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the pam auth backend, run against pam_wrapper + pam_matrix in a child process. */
#include "auth.h"
#include "config.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child mode: this executable re-run with pam_wrapper preloaded. It authenticates
 * once and prints "OK name uid gid" or "DENIED reason" / "TEMPFAIL reason". */
#define CHILD_ENV "MPOPD_TEST_PAM_CHILD"

/* With MPOPD_TEST_PAM_SESSION, after OK what login.c does with [auth] pam_session: open
 * the session, fork the session (whose process frees its copy of the identity first and
 * appends "session" to MPOPD_TEST_PAM_RECORD), wait, close: "OPEN 1" and "CLOSED" lines
 * follow, or "OPEN 0 reason". */
static void
child_session(const MpopAuthOps *ops, const MpopConfig *cfg, MpopAuthIdentity *id)
{
	g_autofree char *reason = NULL;
	pid_t pid;

	printf("DATA %d\n", id->backend_data != NULL);
	if (!ops->session_open(cfg, id, &reason)) {
		printf("OPEN 0 %s\n", reason ? reason : "");
		return;
	}
	printf("OPEN 1\n");
	fflush(stdout);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		FILE *rec = fopen(g_getenv("MPOPD_TEST_PAM_RECORD"), "a");

		mpop_auth_identity_free(id);
		if (rec) {
			fputs("session\n", rec);
			fclose(rec);
		}
		_exit(0);
	}
	while (waitpid(pid, NULL, 0) < 0)
		;
	ops->session_close(cfg, id);
	printf("CLOSED\n");
}

static int
child_main(void)
{
	const char *user = g_getenv("MPOPD_TEST_PAM_USER");
	const char *password = g_getenv("MPOPD_TEST_PAM_PASSWORD");
	const MpopAuthOps *ops = mpop_auth_lookup("pam");
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	MpopConfig cfg = {0};
	MpopAuthResult r;

	if (!ops || !user || !password)
		return 2;
	cfg.pam_service = (char *)g_getenv("MPOPD_TEST_PAM_SERVICE");
	cfg.pam_session = g_getenv("MPOPD_TEST_PAM_SESSION") != NULL;
	const MpopAuthQuery q = {.user = user, .password = password, .peer = "192.0.2.7"};

	r = ops->authenticate(&cfg, &q, &id, &reason);
	switch (r) {
	case MPOP_AUTH_OK:
		g_assert_true(id->system_account);
		printf("OK %s %u %u\n", id->user, (unsigned)id->uid, (unsigned)id->gid);
		if (g_getenv("MPOPD_TEST_PAM_SESSION_HOOKS"))
			child_session(ops, &cfg, id);
		break;
	case MPOP_AUTH_DENIED:
		printf("DENIED %s\n", reason ? reason : "");
		break;
	case MPOP_AUTH_TEMPFAIL:
		printf("TEMPFAIL %s\n", reason ? reason : "");
		break;
	case MPOP_AUTH_UNKNOWN:
		printf("UNKNOWN %s\n", reason ? reason : "");
		break;
	}
	if (reason && *password && strstr(reason, password))
		return 3; /* the password must never reach the log */
	return 0;
}

typedef struct {
	char *dir;
	char *service_dir;
	char *passdb;
	char *lib;
	char *module;
	char *record; /* what pam_exec's script writes: one PAM_TYPE a line */
} Fixture;

/* pam_wrapper's library and pam_matrix, found by meson through pkg-config; the system's
 * modules (pam_exec, pam_deny) next to pam_wrapper's directory. */
static gboolean
find_pam_wrapper(Fixture *f)
{
	const char *lib = g_getenv("PAM_WRAPPER_LIB");
	const char *modules = g_getenv("PAM_WRAPPER_MODULES");

	if (!lib || !*lib || !modules || !*modules)
		return FALSE;
	f->lib = g_strdup(lib);
	f->module = g_build_filename(modules, "pam_matrix.so", NULL);
	return g_file_test(f->lib, G_FILE_TEST_EXISTS) &&
	       g_file_test(f->module, G_FILE_TEST_EXISTS);
}

static char *
system_module(const char *name)
{
	g_autofree char *parent = g_path_get_dirname(g_getenv("PAM_WRAPPER_MODULES"));

	return g_build_filename(parent, "security", name, NULL);
}

static void
write_file(const char *dir, const char *name, const char *text, int mode)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *path = g_build_filename(dir, name, NULL);

	g_assert_true(g_file_set_contents(path, text, -1, &error));
	g_assert_no_error(error);
	g_assert_cmpint(chmod(path, (mode_t)mode), ==, 0);
}

/* A service: pam_matrix's auth and account, and extra lines before (auth) or after. The
 * services other than "mpopd" have their own pam_matrix passdb in the service directory,
 * with nobody (pam_matrix checks the service name). */
static void
write_service(Fixture *f, const char *name, const char *auth_before, const char *auth_opt,
	      const char *after)
{
	g_autofree char *passdb = NULL, *text = NULL, *db_name = NULL, *db_text = NULL;

	if (strcmp(name, "mpopd") == 0) {
		passdb = g_strdup(f->passdb);
	} else {
		db_name = g_strconcat(name, ".passdb", NULL);
		db_text = g_strdup_printf("nobody:nobodypw:%s\n", name);
		write_file(f->service_dir, db_name, db_text, 0600);
		passdb = g_build_filename(f->service_dir, db_name, NULL);
	}
	text = g_strdup_printf("%sauth required %s passdb=%s%s\n"
			       "account required %s passdb=%s\n%s",
			       auth_before, f->module, passdb, auth_opt, f->module, passdb, after);
	write_file(f->service_dir, name, text, 0600);
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *script = NULL, *script_path = NULL, *exec = NULL, *deny = NULL;
	g_autofree char *chatty = NULL, *session = NULL, *session_deny = NULL;

	f->dir = g_dir_make_tmp("test-auth-pam-XXXXXX", &error);
	g_assert_no_error(error);
	f->service_dir = g_build_filename(f->dir, "pam.d", NULL);
	g_assert_cmpint(mkdir(f->service_dir, 0700), ==, 0);
	f->passdb = g_build_filename(f->dir, "passdb", NULL);
	f->record = g_build_filename(f->dir, "record", NULL);
	/* nobody: accepted; daemon: only for another service, so the account step refuses
	 * it; root: uid 0; the last one passes PAM but has no passwd entry. */
	write_file(f->dir, "passdb",
		   "nobody:nobodypw:mpopd\n"
		   "daemon:daemonpw:otherservice\n"
		   "root:rootpw:mpopd\n"
		   "mpopd-test-no-such-account:ghostpw:mpopd\n",
		   0600);
	if (!find_pam_wrapper(f)) {
		g_clear_pointer(&f->lib, g_free);
		return;
	}
	write_service(f, "mpopd", "", "", "");
	/* "echo": pam_matrix asks with PAM_PROMPT_ECHO_ON, which mpopd does not answer. */
	write_service(f, "mpopd-echo", "", " echo", "");
	/* pam_chatty sends a PAM_TEXT_INFO and a PAM_ERROR_MSG first. */
	chatty = g_strdup_printf("auth required %s/pam_chatty.so info error\n",
				 g_getenv("PAM_WRAPPER_MODULES"));
	write_service(f, "mpopd-chatty", chatty, "", "");
	/* pam_exec runs the script at pam_open_session and at pam_close_session. */
	script = g_strdup_printf("#!/bin/sh\necho \"$PAM_TYPE $PAM_USER $PAM_RHOST\" >> %s\n",
				 f->record);
	write_file(f->dir, "record.sh", script, 0700);
	script_path = g_build_filename(f->dir, "record.sh", NULL);
	exec = system_module("pam_exec.so");
	session = g_strdup_printf("session required %s %s\n", exec, script_path);
	write_service(f, "mpopd-session", "", "", session);
	deny = system_module("pam_deny.so");
	session_deny = g_strdup_printf("session required %s %s\nsession required %s\n", exec,
				       script_path, deny);
	write_service(f, "mpopd-session-deny", "", "", session_deny);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	g_autoptr(GDir) dir = g_dir_open(f->service_dir, 0, NULL);
	const char *name;

	while (dir && (name = g_dir_read_name(dir))) {
		g_autofree char *path = g_build_filename(f->service_dir, name, NULL);
		unlink(path);
	}
	rmdir(f->service_dir);
	unlink(f->passdb);
	unlink(f->record);
	{
		g_autofree char *script = g_build_filename(f->dir, "record.sh", NULL);
		unlink(script);
	}
	rmdir(f->dir);
	g_free(f->dir);
	g_free(f->service_dir);
	g_free(f->passdb);
	g_free(f->record);
	g_free(f->lib);
	g_free(f->module);
}

/* Run the backend in a child with pam_wrapper preloaded; returns its output (chomped).
 * extra: more NAME, VALUE pairs for its environment, NULL-terminated. */
static char *
run_child_env(Fixture *f, const char *service, const char *user, const char *password,
	      const char *const *extra)
{
	g_auto(GStrv) env = g_get_environ();
	g_autoptr(GError) error = NULL;
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	g_autofree char *out = NULL, *err = NULL;
	g_autofree char *asan = NULL, *service_path = NULL;
	const char *asan_env = g_environ_getenv(env, "ASAN_OPTIONS");
	const char *argv[] = {self, NULL};
	int status = 0;

	g_assert_nonnull(self);
	/* ASan wants its runtime first in the library list; pam_wrapper comes first here. */
	/* libpam 1.5.2 leaks 96 bytes when pam_start fails on a missing service file, and
	 * pam_chatty (pam_wrapper 1.1.4) never frees the responses to its messages. */
	service_path = g_build_filename(f->service_dir, service, NULL);
	asan = g_strconcat(asan_env ? asan_env : "", ":verify_asan_link_order=0",
			   g_file_test(service_path, G_FILE_TEST_EXISTS) &&
					   strcmp(service, "mpopd-chatty") != 0
				   ? ""
				   : ":detect_leaks=0",
			   NULL);
	env = g_environ_setenv(env, "ASAN_OPTIONS", asan, TRUE);
	/* pam_wrapper dlopen()s libpam with RTLD_DEEPBIND, which ASan refuses; version
	 * 1.1.4 reads this (misnamed) variable to turn it off. */
	env = g_environ_setenv(env, "UID_WRAPPER_DISABLE_DEEPBIND", "1", TRUE);
	env = g_environ_setenv(env, "LD_PRELOAD", f->lib, TRUE);
	env = g_environ_setenv(env, "PAM_WRAPPER", "1", TRUE);
	env = g_environ_setenv(env, "PAM_WRAPPER_SERVICE_DIR", f->service_dir, TRUE);
	env = g_environ_setenv(env, CHILD_ENV, "1", TRUE);
	env = g_environ_setenv(env, "MPOPD_TEST_PAM_SERVICE", service, TRUE);
	env = g_environ_setenv(env, "MPOPD_TEST_PAM_USER", user, TRUE);
	env = g_environ_setenv(env, "MPOPD_TEST_PAM_PASSWORD", password, TRUE);
	for (; extra && extra[0]; extra += 2)
		env = g_environ_setenv(env, extra[0], extra[1], TRUE);
	g_spawn_sync(NULL, (char **)argv, env, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
		     &error);
	g_assert_no_error(error);
	g_test_message("child (%s, %s): %s%s", service, user, out, err);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	return g_strchomp(g_steal_pointer(&out));
}

static char *
run_child(Fixture *f, const char *service, const char *user, const char *password)
{
	return run_child_env(f, service, user, password, NULL);
}

/* The child runs the session hooks as login.c does, [auth] pam_session on or off. */
static char *
run_child_session(Fixture *f, const char *service, gboolean pam_session)
{
	const char *const on[] = {"MPOPD_TEST_PAM_SESSION_HOOKS",
				  "1",
				  "MPOPD_TEST_PAM_RECORD",
				  f->record,
				  "MPOPD_TEST_PAM_SESSION",
				  "1",
				  NULL};
	const char *const off[] = {"MPOPD_TEST_PAM_SESSION_HOOKS", "1", "MPOPD_TEST_PAM_RECORD",
				   f->record, NULL};

	return run_child_env(f, service, "nobody", "nobodypw", pam_session ? on : off);
}

static char *
read_record(Fixture *f)
{
	char *text = NULL;

	if (!g_file_get_contents(f->record, &text, NULL, NULL))
		return g_strdup("");
	return text;
}

#define REQUIRE_PAM_WRAPPER(f)                                                                     \
	do {                                                                                       \
		if (!(f)->lib) {                                                                   \
			g_test_skip("pam_wrapper not found (Debian: libpam-wrapper)");             \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static void
test_pam_ok(Fixture *f, gconstpointer data)
{
	struct passwd *pw = getpwnam("nobody");
	g_autofree char *out = NULL, *want = NULL;

	REQUIRE_PAM_WRAPPER(f);
	g_assert_nonnull(pw);
	want = g_strdup_printf("OK nobody %u %u", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid);
	out = run_child(f, "mpopd", "nobody", "nobodypw");
	g_assert_cmpstr(out, ==, want);
}

static void
test_pam_wrong_password(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd", "nobody", "wrongpw");
	g_assert_true(g_str_has_prefix(out, "DENIED pam: authentication failed"));
	g_clear_pointer(&out, g_free);
	/* An empty password is refused too (PAM_DISALLOW_NULL_AUTHTOK). */
	out = run_child(f, "mpopd", "nobody", "");
	g_assert_true(g_str_has_prefix(out, "DENIED "));
}

static void
test_pam_unknown_user(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd", "bin", "nobodypw");
	g_assert_true(g_str_has_prefix(out, "DENIED pam: authentication failed"));
}

static void
test_pam_no_service(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd-no-such-service", "nobody", "nobodypw");
	g_assert_true(g_str_has_prefix(out, "TEMPFAIL "));
}

static void
test_pam_account_refused(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd", "daemon", "daemonpw");
	g_assert_true(g_str_has_prefix(out, "DENIED pam: account refused"));
}

static void
test_pam_no_passwd_entry(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	g_assert_null(getpwnam("mpopd-test-no-such-account"));
	/* pam_matrix knows it, NSS does not: no uid to run as, so the chain's next backend
	 * is asked (and PAM is not started). */
	out = run_child(f, "mpopd", "mpopd-test-no-such-account", "ghostpw");
	g_assert_cmpstr(out, ==, "UNKNOWN pam: no such user");
}

static void
test_pam_root(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd", "root", "rootpw");
	g_assert_cmpstr(out, ==, "DENIED pam: refusing uid 0");
}

/* The conversation answers the password prompt only; a prompt that would echo is not it. */
static void
test_pam_conversation(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd-echo", "nobody", "nobodypw");
	/* pam_matrix reports a failed conversation as PAM_AUTHINFO_UNAVAIL (TEMPFAIL); what
	 * matters is that the right password did not get in. */
	g_assert_false(g_str_has_prefix(out, "OK"));
	g_assert_nonnull(strstr(out, "pam: authentication failed"));
}

/* PAM_TEXT_INFO and PAM_ERROR_MSG need no answer: the login goes on, and a failure's log
 * line carries their texts. */
static void
test_pam_conversation_texts(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child(f, "mpopd-chatty", "nobody", "nobodypw");
	g_assert_true(g_str_has_prefix(out, "OK nobody "));
	g_clear_pointer(&out, g_free);
	out = run_child(f, "mpopd-chatty", "nobody", "wrongpw");
	g_assert_true(g_str_has_prefix(out, "DENIED pam: authentication failed"));
	g_assert_nonnull(strstr(out, " (PAM said: Authentication succeeded; "));
	g_assert_true(g_str_has_suffix(out, "; Authentication generated an error)"));
}

/* [auth] pam_session: open_session once after the login, close_session once after the
 * session process ended, in that order, both in the process that authenticated (the
 * session process's copy of the handle ends silently: no second close_session). */
static void
test_pam_session(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL, *record = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child_session(f, "mpopd-session", TRUE);
	g_assert_true(g_str_has_prefix(out, "OK nobody "));
	g_assert_nonnull(strstr(out, "\nDATA 1\nOPEN 1\nCLOSED"));
	record = read_record(f);
	g_assert_cmpstr(record, ==,
			"open_session nobody 192.0.2.7\nsession\nclose_session nobody 192.0.2.7\n");
}

/* pam_session off (the default): the hooks do nothing, no state is kept (login.c keeps no
 * root process), the session stack never runs. */
static void
test_pam_session_off(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL, *record = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child_session(f, "mpopd-session", FALSE);
	g_assert_true(g_str_has_prefix(out, "OK nobody "));
	g_assert_nonnull(strstr(out, "\nDATA 0\nOPEN 1\nCLOSED"));
	record = read_record(f);
	g_assert_cmpstr(record, ==, "session\n");
}

/* A session stack that refuses: no login (login.c answers [SYS/TEMP]), and what was opened
 * is undone when the identity is freed. */
static void
test_pam_session_refused(Fixture *f, gconstpointer data)
{
	g_autofree char *out = NULL, *record = NULL;

	REQUIRE_PAM_WRAPPER(f);
	out = run_child_session(f, "mpopd-session-deny", TRUE);
	g_assert_nonnull(strstr(out, "\nOPEN 0 pam: pam_open_session: "));
	record = read_record(f);
	/* pam_exec ran before pam_deny refused; the session never opened, so no close. */
	g_assert_cmpstr(record, ==, "open_session nobody 192.0.2.7\n");
}

static void
test_pam_registered(void)
{
	g_assert_true(mpop_auth_lookup("pam") == &mpop_auth_pam_ops);
}

int
main(int argc, char **argv)
{
	if (g_getenv(CHILD_ENV))
		return child_main();
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/auth-pam/registered", test_pam_registered);
#define ADD_F(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD_F("/auth-pam/ok", test_pam_ok);
	ADD_F("/auth-pam/wrong-password", test_pam_wrong_password);
	ADD_F("/auth-pam/unknown-user", test_pam_unknown_user);
	ADD_F("/auth-pam/no-service-file", test_pam_no_service);
	ADD_F("/auth-pam/account-refused", test_pam_account_refused);
	ADD_F("/auth-pam/no-passwd-entry", test_pam_no_passwd_entry);
	ADD_F("/auth-pam/uid-0", test_pam_root);
	ADD_F("/auth-pam/conversation-echo-on", test_pam_conversation);
	ADD_F("/auth-pam/conversation-texts", test_pam_conversation_texts);
	ADD_F("/auth-pam/session", test_pam_session);
	ADD_F("/auth-pam/session-off", test_pam_session_off);
	ADD_F("/auth-pam/session-refused", test_pam_session_refused);
	return g_test_run();
}
