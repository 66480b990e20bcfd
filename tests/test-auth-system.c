/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the passwd/shadow auth backend, each case in a child with its own mount
 * namespace where test-made files are bind-mounted over /etc/passwd, /etc/shadow and
 * /etc/group (the host's /etc is never changed). */
#include "auth.h"
#include "config.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Account names start with "mpopdt-", which nss_systemd does not know, so the files
 * module answers for all of them. */
typedef struct {
	const char *path;
	const char *backend; /* "passwd" or "shadow": the same code under both names */
	const char *user;
	const char *password;
	guint min_uid;
	const char *group;
	const char *expect; /* the child's stdout, a glob pattern */
} Case;

static const Case cases[] = {
	{"ok-yescrypt", "shadow", "mpopdt-alice", "alicepw", 1000, NULL,
	 "OK mpopdt-alice 1001 1001 /home/alice hashes=1\n"},
	{"ok-sha512crypt", "passwd", "mpopdt-bob", "bobpw", 1000, NULL,
	 "OK mpopdt-bob 1002 1002 /home/bob hashes=1\n"},
	{"ok-passwd-field", "passwd", "mpopdt-carol", "carolpw", 1000, NULL,
	 "OK mpopdt-carol 1003 2000 (none) hashes=1\n"},
	{"ok-expires-later", "shadow", "mpopdt-future", "futurepw", 1000, NULL,
	 "OK mpopdt-future 1014 1014 (none) hashes=1\n"},
	{"wrong-password", "shadow", "mpopdt-alice", "bobpw", 1000, NULL,
	 "DENIED system: wrong password hashes=1\n"},
	{"empty-password", "shadow", "mpopdt-alice", "", 1000, NULL,
	 "DENIED system: wrong password hashes=1\n"},
	{"unknown-user", "shadow", "mpopdt-nobody-here", "alicepw", 1000, NULL,
	 "DENIED unknown user (shadow) hashes=1\n"},
	{"unknown-user-system", "system", "mpopdt-nobody-here", "alicepw", 1000, NULL,
	 "DENIED unknown user (system) hashes=1\n"},
	/* A server once accepted the literal password "x" against an "x" passwd field. */
	{"x-field-password-x", "passwd", "mpopdt-xonly", "x", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"star", "shadow", "mpopdt-star", "*", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"bang", "shadow", "mpopdt-bang", "!", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"bangbang", "shadow", "mpopdt-bangbang", "!!", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"locked-right-password", "passwd", "mpopdt-locked", "lockedpw", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	/* The passwd field holds a usable hash of "otherpw": the shadow entry wins. */
	{"locked-passwd-field-hash", "passwd", "mpopdt-locked", "otherpw", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"empty-field", "shadow", "mpopdt-empty", "", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"empty-field-any-password", "shadow", "mpopdt-empty", "anything", 1000, NULL,
	 "DENIED system: account locked or without a password hashes=1\n"},
	{"expired", "shadow", "mpopdt-expired", "expiredpw", 1000, NULL,
	 "DENIED system: account expired hashes=1\n"},
	{"must-change", "shadow", "mpopdt-mustchange", "changepw", 1000, NULL,
	 "DENIED system: password must be changed hashes=1\n"},
	{"password-aged", "shadow", "mpopdt-aged", "agedpw", 1000, NULL,
	 "DENIED system: password expired hashes=1\n"},
	{"below-min-uid", "shadow", "mpopdt-low", "lowpw", 1000, NULL,
	 "DENIED system: uid 500 is below system_min_uid 1000 hashes=1\n"},
	{"min-uid-lowered", "shadow", "mpopdt-low", "lowpw", 500, NULL,
	 "OK mpopdt-low 500 500 (none) hashes=1\n"},
	{"uid-0", "shadow", "mpopdt-toor", "toorpw", 0, NULL,
	 "DENIED system: refusing uid 0 hashes=1\n"},
	{"group-not-member", "shadow", "mpopdt-alice", "alicepw", 1000, "mpopdt-mail",
	 "DENIED system: not in group mpopdt-mail hashes=1\n"},
	{"group-supplementary", "shadow", "mpopdt-bob", "bobpw", 1000, "mpopdt-mail",
	 "OK mpopdt-bob 1002 1002 /home/bob hashes=1\n"},
	{"group-primary", "shadow", "mpopdt-carol", "carolpw", 1000, "mpopdt-mail",
	 "OK mpopdt-carol 1003 2000 (none) hashes=1\n"},
	{"group-missing", "shadow", "mpopdt-bob", "bobpw", 1000, "mpopdt-no-such-group",
	 "DENIED system: not in group mpopdt-no-such-group hashes=1\n"},
};

static char *
hash(const char *password, const char *prefix)
{
	g_autoptr(GError) error = NULL;
	char *h = mpop_auth_make_hash(password, prefix, &error);

	g_assert_no_error(error);
	return h;
}

/* The account database, with hashes made now (salts are random). */
static void
write_files(const char *dir, char **out_passwd, char **out_shadow, char **out_group)
{
	g_autofree char *alice = hash("alicepw", "$y$"), *bob = hash("bobpw", "$6$");
	g_autofree char *carol = hash("carolpw", "$y$"), *other = hash("otherpw", "$6$");
	g_autofree char *locked = hash("lockedpw", "$6$"), *low = hash("lowpw", "$6$");
	g_autofree char *toor = hash("toorpw", "$6$"), *expired = hash("expiredpw", "$6$");
	g_autofree char *change = hash("changepw", "$6$"), *aged = hash("agedpw", "$6$");
	g_autofree char *future = hash("futurepw", "$6$");
	long today = (long)(time(NULL) / 86400);
	g_autofree char *passwd = g_strdup_printf("root:x:0:0:root:/root:/bin/sh\n"
						  "mpopdt-alice:x:1001:1001::/home/alice:/bin/sh\n"
						  "mpopdt-bob:x:1002:1002::/home/bob:/bin/sh\n"
						  "mpopdt-carol:%s:1003:2000:::/bin/sh\n"
						  "mpopdt-xonly:x:1004:1004:::/bin/sh\n"
						  "mpopdt-star:x:1005:1005:::/bin/sh\n"
						  "mpopdt-bang:x:1006:1006:::/bin/sh\n"
						  "mpopdt-bangbang:x:1007:1007:::/bin/sh\n"
						  "mpopdt-locked:%s:1008:1008:::/bin/sh\n"
						  "mpopdt-empty:x:1009:1009:::/bin/sh\n"
						  "mpopdt-expired:x:1010:1010:::/bin/sh\n"
						  "mpopdt-mustchange:x:1011:1011:::/bin/sh\n"
						  "mpopdt-aged:x:1012:1012:::/bin/sh\n"
						  "mpopdt-low:x:500:500:::/bin/sh\n"
						  "mpopdt-future:x:1014:1014:::/bin/sh\n"
						  "mpopdt-toor:x:0:0::/root:/bin/sh\n",
						  carol, other);
	g_autofree char *shadow =
		g_strdup_printf("root:*:19000:0:99999:7:::\n"
				"mpopdt-alice:%s:%ld:0:99999:7:::\n"
				"mpopdt-bob:%s:%ld:0:::::\n"
				"mpopdt-star:*:19000:0:99999:7:::\n"
				"mpopdt-bang:!:19000:0:99999:7:::\n"
				"mpopdt-bangbang:!!:19000:0:99999:7:::\n"
				"mpopdt-locked:!%s:19000:0:99999:7:::\n"
				"mpopdt-empty::19000:0:99999:7:::\n"
				"mpopdt-expired:%s:19000:0:99999:7::1:\n"
				"mpopdt-mustchange:%s:0:0:99999:7:::\n"
				"mpopdt-aged:%s:%ld:0:30:7:::\n"
				"mpopdt-low:%s:19000:0:99999:7:::\n"
				"mpopdt-future:%s:19000:0:99999:7::%ld:\n"
				"mpopdt-toor:%s:19000:0:99999:7:::\n",
				alice, today - 1, bob, today, locked, expired, change, aged,
				today - 31, low, future, today + 1000, toor);
	const char *group = "root:x:0:\n"
			    "mpopdt-alice:x:1001:\n"
			    "mpopdt-mail:x:2000:mpopdt-bob\n";
	g_autoptr(GError) error = NULL;

	*out_passwd = g_build_filename(dir, "passwd", NULL);
	*out_shadow = g_build_filename(dir, "shadow", NULL);
	*out_group = g_build_filename(dir, "group", NULL);
	g_assert_true(g_file_set_contents(*out_passwd, passwd, -1, &error));
	g_assert_true(g_file_set_contents(*out_shadow, shadow, -1, &error));
	g_assert_true(g_file_set_contents(*out_group, group, -1, &error));
	g_assert_no_error(error);
}

/* The child: a private mount namespace with the test files over the host's. The parent
 * asked can_unshare() before it started this child. */
static void
enter_namespace(const char *passwd, const char *shadow, const char *group)
{
	g_assert_cmpint(unshare(CLONE_NEWNS), ==, 0);
	g_assert_cmpint(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), ==, 0);
	g_assert_cmpint(mount(passwd, "/etc/passwd", NULL, MS_BIND, NULL), ==, 0);
	g_assert_cmpint(mount(shadow, "/etc/shadow", NULL, MS_BIND, NULL), ==, 0);
	g_assert_cmpint(mount(group, "/etc/group", NULL, MS_BIND, NULL), ==, 0);
}

/* One login through the registry, as the server makes it; prints what came back. */
static void
print_result(const Case *c)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	g_autofree char *reason = NULL;
	MpopConfig cfg = {0};
	guint64 before = mpop_auth_hash_count();
	MpopAuthResult r;

	const char *chain[] = {c->backend, NULL};
	const MpopAuthQuery q = {.user = c->user, .password = c->password, .peer = "192.0.2.7"};

	cfg.auth_default = (char **)chain;
	cfg.system_min_uid = c->min_uid;
	cfg.system_group = (char *)(c->group ? c->group : "");
	r = mpop_auth_check(&cfg, &q, &id, &reason);
	if (r == MPOP_AUTH_OK) {
		g_assert_null(id->mailbox);
		g_assert_true(id->system_account); /* the session gets its groups */
		printf("OK %s %u %u %s", id->user, (unsigned)id->uid, (unsigned)id->gid,
		       id->home ? id->home : "(none)");
	} else {
		g_assert_nonnull(reason);
		if (*c->password)
			g_assert_null(strstr(reason, c->password));
		printf("%s %s", r == MPOP_AUTH_DENIED ? "DENIED" : "TEMPFAIL", reason);
	}
	printf(" hashes=%" G_GUINT64_FORMAT "\n", mpop_auth_hash_count() - before);
}

static void
run_case(const Case *c)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp("test-auth-system-XXXXXX", &error);
	g_autofree char *passwd = NULL, *shadow = NULL, *group = NULL;

	g_assert_no_error(error);
	write_files(dir, &passwd, &shadow, &group);
	enter_namespace(passwd, shadow, group);
	print_result(c);
	/* The bind mounts vanish with this process; the files go now. */
	g_assert_cmpint(unlink(passwd), ==, 0);
	g_assert_cmpint(unlink(shadow), ==, 0);
	g_assert_cmpint(unlink(group), ==, 0);
	g_assert_cmpint(rmdir(dir), ==, 0);
	fflush(stdout);
}

/* Whether a child may make a mount namespace (root with CAP_SYS_ADMIN); asked once, in
 * a forked process so this one stays in the host's namespace. */
static gboolean
can_unshare(void)
{
	static int answer = -1;
	int status = 0;
	pid_t pid;

	if (answer >= 0)
		return answer;
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0)
		_exit(unshare(CLONE_NEWNS) == 0 ? 0 : 1);
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	answer = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	return answer;
}

static void
test_case(gconstpointer data)
{
	const Case *c = data;

	if (g_test_subprocess()) {
		run_case(c);
		return;
	}
	if (!can_unshare()) {
		g_test_skip("cannot make a mount namespace here (needs root and CAP_SYS_ADMIN)");
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	g_test_trap_assert_stdout(c->expect);
}

/* Both names are registered and share one implementation. */
static void
test_registry(void)
{
	g_assert_true(mpop_auth_lookup("passwd") == &mpop_auth_passwd_ops);
	g_assert_true(mpop_auth_lookup("shadow") == &mpop_auth_shadow_ops);
	g_assert_true(mpop_auth_passwd_ops.authenticate == mpop_auth_shadow_ops.authenticate);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/auth-system/registry", test_registry);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *path = g_strdup_printf("/auth-system/%s", cases[i].path);
		g_test_add_data_func(path, &cases[i], test_case);
	}
	return g_test_run();
}
