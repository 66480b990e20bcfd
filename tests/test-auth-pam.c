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
	const MpopAuthQuery q = {.user = user, .password = password, .peer = "192.0.2.7"};

	r = ops->authenticate(&cfg, &q, &id, &reason);
	switch (r) {
	case MPOP_AUTH_OK:
		printf("OK %s %u %u\n", id->user, (unsigned)id->uid, (unsigned)id->gid);
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
} Fixture;

/* pam_wrapper's library and pam_matrix, found by meson through pkg-config. */
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

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *service = NULL, *path = NULL;

	f->dir = g_dir_make_tmp("test-auth-pam-XXXXXX", &error);
	g_assert_no_error(error);
	f->service_dir = g_build_filename(f->dir, "pam.d", NULL);
	g_assert_cmpint(mkdir(f->service_dir, 0700), ==, 0);
	f->passdb = g_build_filename(f->dir, "passdb", NULL);
	/* nobody: accepted; daemon: only for another service, so the account step refuses
	 * it; root: uid 0; the last one passes PAM but has no passwd entry. */
	g_assert_true(g_file_set_contents(f->passdb,
					  "nobody:nobodypw:mpopd\n"
					  "daemon:daemonpw:otherservice\n"
					  "root:rootpw:mpopd\n"
					  "mpopd-test-no-such-account:ghostpw:mpopd\n",
					  -1, &error));
	g_assert_no_error(error);
	if (!find_pam_wrapper(f)) {
		g_clear_pointer(&f->lib, g_free);
		return;
	}
	service = g_strdup_printf("auth required %s passdb=%s\n"
				  "account required %s passdb=%s\n",
				  f->module, f->passdb, f->module, f->passdb);
	path = g_build_filename(f->service_dir, "mpopd", NULL);
	g_assert_true(g_file_set_contents(path, service, -1, &error));
	g_assert_no_error(error);
	/* "echo": pam_matrix asks with PAM_PROMPT_ECHO_ON, which mpopd does not answer. */
	g_clear_pointer(&service, g_free);
	g_clear_pointer(&path, g_free);
	service = g_strdup_printf("auth required %s passdb=%s echo\n"
				  "account required %s passdb=%s\n",
				  f->module, f->passdb, f->module, f->passdb);
	path = g_build_filename(f->service_dir, "mpopd-echo", NULL);
	g_assert_true(g_file_set_contents(path, service, -1, &error));
	g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	g_autofree char *service = g_build_filename(f->service_dir, "mpopd", NULL);
	g_autofree char *echo = g_build_filename(f->service_dir, "mpopd-echo", NULL);

	unlink(service);
	unlink(echo);
	rmdir(f->service_dir);
	unlink(f->passdb);
	rmdir(f->dir);
	g_free(f->dir);
	g_free(f->service_dir);
	g_free(f->passdb);
	g_free(f->lib);
	g_free(f->module);
}

/* Run the backend in a child with pam_wrapper preloaded; returns its output line. */
static char *
run_child(Fixture *f, const char *service, const char *user, const char *password)
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
	/* libpam 1.5.2 leaks 96 bytes when pam_start fails on a missing service file. */
	service_path = g_build_filename(f->service_dir, service, NULL);
	asan = g_strconcat(asan_env ? asan_env : "", ":verify_asan_link_order=0",
			   g_file_test(service_path, G_FILE_TEST_EXISTS) ? "" : ":detect_leaks=0",
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
	g_spawn_sync(NULL, (char **)argv, env, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
		     &error);
	g_assert_no_error(error);
	g_test_message("child (%s, %s): %s%s", service, user, out, err);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	return g_strchomp(g_steal_pointer(&out));
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
	out = run_child(f, "mpopd", "mpopd-test-no-such-account", "ghostpw");
	g_assert_cmpstr(out, ==, "DENIED pam: the PAM user has no passwd entry");
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
	return g_test_run();
}
