/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Privilege separation: the auth-request record is parsed as untrusted input. */
#include "privsep.h"
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static GBytes *
encode(const char *user, const char *pass, const char *pending, gsize pending_len)
{
	MpopAuthRequest r = {.user = (char *)user,
			     .pass = (char *)pass,
			     .pending = (char *)pending,
			     .pending_len = pending_len};
	return mpop_privsep_encode(&r);
}

static void
test_roundtrip(void)
{
	static const char pending[] = "STAT\r\nLIST\r\n\0binary";
	g_autoptr(GBytes) b = encode("alice", "pass word", pending, sizeof(pending));
	MpopAuthRequest r = {0};

	g_assert_cmpint(mpop_privsep_decode(g_bytes_get_data(b, NULL), g_bytes_get_size(b), &r), ==,
			0);
	g_assert_cmpstr(r.user, ==, "alice");
	g_assert_cmpstr(r.pass, ==, "pass word");
	g_assert_cmpuint(r.pending_len, ==, sizeof(pending));
	g_assert_cmpmem(r.pending, r.pending_len, pending, sizeof(pending));
	mpop_auth_request_clear(&r);
	g_assert_null(r.pass);
	g_assert_null(r.user);
}

/* The TLS server name crosses as data: kept when it is a plain DNS name, the record
 * refused otherwise. */
static void
test_sni(void)
{
	static const struct {
		const char *sni;
		gboolean ok;
	} cases[] = {
		{"", TRUE},
		{"mail.example.org", TRUE},
		{"a-b.c0", TRUE},
		{"Mail.example.org", FALSE}, /* the pre-login process lowercases it */
		{"mail..example.org", FALSE},
		{".example.org", FALSE},
		{"example.org.", FALSE},
		{"-a.example.org", FALSE},
		{"a-.example.org", FALSE},
		{"a/b", FALSE},
		{"a b", FALSE},
		{"x@y", FALSE},
		{"..", FALSE},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		MpopAuthRequest in = {.user = (char *)"bob",
				      .pass = (char *)"x",
				      .tls = (char *)"TLSv1.3 X",
				      .sni = (char *)cases[i].sni};
		g_autoptr(GBytes) b = mpop_privsep_encode(&in);
		MpopAuthRequest r = {0};
		int ret = mpop_privsep_decode(g_bytes_get_data(b, NULL), g_bytes_get_size(b), &r);

		g_test_message("sni \"%s\"", cases[i].sni);
		if (!cases[i].ok) {
			g_assert_cmpint(ret, <, 0);
			continue;
		}
		g_assert_cmpint(ret, ==, 0);
		g_assert_cmpstr(r.sni, ==, cases[i].sni);
		g_assert_cmpstr(r.tls, ==, "TLSv1.3 X");
		mpop_auth_request_clear(&r);
	}
	{
		g_autofree char *label63 = g_strnfill(63, 'a');
		g_autofree char *label64 = g_strnfill(64, 'a');
		g_autofree char *long254 =
			g_strdup_printf("%s.%s.%s.%s", label63, label63, label63, label63);
		g_assert_true(mpop_dns_name_valid(label63, FALSE));
		g_assert_false(mpop_dns_name_valid(label64, FALSE));
		g_assert_cmpuint(strlen(long254), ==, 255);
		g_assert_false(mpop_dns_name_valid(long254, FALSE));
		g_assert_false(mpop_dns_name_valid("", FALSE));
		g_assert_false(mpop_dns_name_valid(NULL, TRUE));
	}
}

/* Every strict prefix of a valid record is rejected, one byte at a time. */
static void
test_truncated(void)
{
	g_autoptr(GBytes) b = encode("bob", "x", "QUIT\r\n", 6);
	gsize len;
	const guint8 *d = g_bytes_get_data(b, &len);

	for (gsize i = 0; i < len; i++) {
		MpopAuthRequest r = {0};
		g_assert_cmpint(mpop_privsep_decode(d, i, &r), <, 0);
		g_assert_null(r.user);
	}
}

static void
test_malformed(void)
{
	MpopAuthRequest r = {0};
	g_autoptr(GBytes) ok = encode("bob", "x", "", 0);
	g_autofree guint8 *extra = NULL;
	gsize len;
	const guint8 *d = g_bytes_get_data(ok, &len);
	static const guint8 huge[] = {'M', 'P', 'O', 'P', '1', 0xff, 0xff, 0xff, 0xff};
	static const guint8 nul_user[] = {'M', 'P', 'O', 'P', '1', 0, 0, 0, 3, 'a',
					  0,   'b', 0,	 0,   0,   0, 0, 0, 0, 0};
	static const guint8 empty_user[] = {'M', 'P', 'O', 'P', '1', 0, 0, 0, 0,
					    0,	 0,   0,   0,	0,   0, 0, 0};
	static const guint8 bad_magic[] = {'M', 'P', 'O', 'P', '2', 0, 0, 0, 0};

	/* trailing garbage */
	extra = g_malloc(len + 1);
	memcpy(extra, d, len);
	extra[len] = 'X';
	g_assert_cmpint(mpop_privsep_decode(extra, len + 1, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_privsep_decode(huge, sizeof(huge), &r), ==, -E2BIG);
	g_assert_cmpint(mpop_privsep_decode(nul_user, sizeof(nul_user), &r), ==, -EINVAL);
	g_assert_cmpint(mpop_privsep_decode(empty_user, sizeof(empty_user), &r), ==, -EINVAL);
	g_assert_cmpint(mpop_privsep_decode(bad_magic, sizeof(bad_magic), &r), ==, -EINVAL);
	g_assert_null(r.user);
}

static void
test_limits(void)
{
	g_autofree char *long_user = g_strnfill(MPOP_PRIVSEP_MAX_USER + 1, 'u');
	g_autofree char *max_user = g_strnfill(MPOP_PRIVSEP_MAX_USER, 'u');
	g_autoptr(GBytes) too_long = encode(long_user, "x", "", 0);
	g_autoptr(GBytes) at_limit = encode(max_user, "x", "", 0);
	MpopAuthRequest r = {0};

	g_assert_cmpint(mpop_privsep_decode(g_bytes_get_data(too_long, NULL),
					    g_bytes_get_size(too_long), &r),
			==, -E2BIG);
	g_assert_cmpint(mpop_privsep_decode(g_bytes_get_data(at_limit, NULL),
					    g_bytes_get_size(at_limit), &r),
			==, 0);
	mpop_auth_request_clear(&r);
}

/* uid 0 is refused always; as non-root only our own uid is accepted. As root, the drop
 * is verified in a child: afterwards root cannot be regained, and the privileged group is
 * taken on only for a directory that needs it. */
static void
test_become(void)
{
	g_autofree char *top = NULL, *spool = NULL, *home = NULL, *own = NULL;
	g_autofree char *spool_box = NULL, *home_box = NULL, *own_box = NULL;
	pid_t pid;
	int status;

	g_assert_cmpint(mpop_privsep_become(0, 0, "root", (gid_t)-1), ==, -EPERM);
	if (geteuid() != 0) {
		g_assert_cmpint(mpop_privsep_become(geteuid(), getegid(), NULL, (gid_t)-1), ==, 0);
		g_assert_cmpint(mpop_privsep_become(geteuid() + 1, getegid(), NULL, (gid_t)-1), ==,
				-EPERM);
		return;
	}
	/* A root:8 2775 spool, a 4242:4243 0700 home and a 4242:8 0770 directory. */
	top = g_dir_make_tmp("privsep-XXXXXX", NULL);
	g_assert_nonnull(top);
	g_assert_cmpint(chmod(top, 0755), ==, 0);
	spool = g_build_filename(top, "spool", NULL);
	home = g_build_filename(top, "home", NULL);
	own = g_build_filename(top, "own", NULL);
	g_assert_cmpint(mkdir(spool, 0755), ==, 0);
	g_assert_cmpint(chown(spool, 0, 8), ==, 0);
	g_assert_cmpint(chmod(spool, 02775), ==, 0);
	g_assert_cmpint(mkdir(home, 0700), ==, 0);
	g_assert_cmpint(chown(home, 4242, 4243), ==, 0);
	g_assert_cmpint(mkdir(own, 0770), ==, 0);
	g_assert_cmpint(chown(own, 4242, 8), ==, 0);
	spool_box = g_build_filename(spool, "alice", NULL);
	home_box = g_build_filename(home, "mbox", NULL);
	own_box = g_build_filename(own, "mbox", NULL);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		gid_t r, e, sg;
		gboolean entered;
		char cwd[64];
		/* neither uid 0 nor gid 0, and nothing changed by the refusal */
		if (mpop_privsep_become(4242, 0, "no-such-user-here", 8) != -EPERM ||
		    mpop_privsep_become(0, 4243, "no-such-user-here", 8) != -EPERM ||
		    geteuid() != 0)
			_exit(17);
		if (chdir("/tmp") < 0)
			_exit(18);
		if (mpop_privsep_become(4242, 4243, "no-such-user-here", 8) != 0)
			_exit(10);
		/* the starting directory is left */
		if (!getcwd(cwd, sizeof(cwd)) || strcmp(cwd, "/") != 0)
			_exit(19);
		if (getuid() != 4242 || geteuid() != 4242 || getgid() != 4243 || getegid() != 4243)
			_exit(11);
		/* the privileged group is only saved, taken on and given up on request */
		if (getresgid(&r, &e, &sg) < 0 || sg != 8)
			_exit(14);
		entered = mpop_privsep_mail_group_enter(spool_box);
		if (!entered || getegid() != 8)
			_exit(15);
		mpop_privsep_mail_group_leave(entered);
		if (getegid() != 4243)
			_exit(16);
		/* not where the user may write itself, or the group could not write anyway */
		if (mpop_privsep_mail_group_enter(home_box) ||
		    mpop_privsep_mail_group_enter(own_box) || getegid() != 4243)
			_exit(20);
		if (setuid(0) == 0)
			_exit(12);
		if (getgroups(0, NULL) != 1)
			_exit(13);
		_exit(0);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	g_assert_cmpint(rmdir(spool), ==, 0);
	g_assert_cmpint(rmdir(home), ==, 0);
	g_assert_cmpint(rmdir(own), ==, 0);
	g_assert_cmpint(rmdir(top), ==, 0);
}

/* In a child with a private /etc/group: the groups become() gives. */
static int
groups_after_become(const char *group_file, const char *groups_of, gid_t *list, int max)
{
	int p[2], n = -1;
	pid_t pid;
	int status;

	g_assert_cmpint(pipe(p), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		gid_t got[16];
		int k;
		close(p[0]);
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(group_file, "/etc/group", NULL, MS_BIND, NULL) < 0)
			_exit(2);
		if (mpop_privsep_become(4242, 4243, groups_of, (gid_t)-1) != 0)
			_exit(3);
		k = getgroups(16, got);
		if (k < 0 ||
		    write(p[1], got, (size_t)k * sizeof(gid_t)) != (ssize_t)(k * sizeof(gid_t)))
			_exit(4);
		_exit(0);
	}
	close(p[1]);
	n = (int)read(p[0], list, (size_t)max * sizeof(gid_t));
	close(p[0]);
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	return n < 0 ? n : n / (int)sizeof(gid_t);
}

/* A system account's session gets the account's supplementary groups (initgroups); a
 * virtual user's (groups_of NULL) none but its own gid, even when a passwd entry of the
 * same name exists. */
static void
test_become_groups(void)
{
	g_autofree char *dir = NULL, *file = NULL;
	gid_t list[16];
	int n;

	if (geteuid() != 0) {
		g_test_skip("needs root");
		return;
	}
	dir = g_dir_make_tmp("privsep-groups-XXXXXX", NULL);
	file = g_build_filename(dir, "group", NULL);
	g_assert_true(
		g_file_set_contents(file,
				    "root:x:0:\nmpopt-grp:x:4243:\nmpopt-extra:x:4250:mpopt-user\n"
				    "mpopt-other:x:4251:someone\n",
				    -1, NULL));
	n = groups_after_become(file, "mpopt-user", list, 16);
	g_assert_cmpint(n, ==, 2);
	g_assert_true((list[0] == 4243 && list[1] == 4250) || (list[0] == 4250 && list[1] == 4243));
	n = groups_after_become(file, NULL, list, 16);
	g_assert_cmpint(n, ==, 1);
	g_assert_cmpuint(list[0], ==, 4243);
	g_assert_cmpint(unlink(file), ==, 0);
	g_assert_cmpint(rmdir(dir), ==, 0);
}

/* Log records of the pre-login process: a round trip, the checks on every field, and
 * control characters escaped before anything is logged. */
static void
test_log_record(void)
{
	g_autoptr(GBytes) b = mpop_privsep_encode_log(MPOP_LOG_DEBUG, "command", "C: CAPA");
	g_autoptr(GBytes) esc =
		mpop_privsep_encode_log(MPOP_LOG_INFO, NULL, "a\r\nfake=record\x1b");
	MpopLogRecord r = {0};
	gsize len;
	const guint8 *d = g_bytes_get_data(b, &len);
	g_autofree guint8 *bad = g_memdup2(d, len);

	g_assert_cmpint(mpop_privsep_decode_log(d, len, &r), ==, 0);
	g_assert_cmpint(r.level, ==, MPOP_LOG_DEBUG);
	g_assert_cmpstr(r.event, ==, "command");
	g_assert_cmpstr(r.message, ==, "C: CAPA");
	mpop_privsep_log_clear(&r);
	for (gsize i = 0; i < len; i++)
		g_assert_cmpint(mpop_privsep_decode_log(d, i, &r), <, 0);
	d = g_bytes_get_data(esc, &len);
	g_assert_cmpint(mpop_privsep_decode_log(d, len, &r), ==, 0);
	g_assert_cmpstr(r.event, ==, "");
	g_assert_cmpstr(r.message, ==, "a\\x0d\\x0afake=record\\x1b");
	mpop_privsep_log_clear(&r);
	/* a level outside err..debug, an event that is not [a-z-], an auth record */
	d = g_bytes_get_data(b, &len);
	bad[5] = 2;
	g_assert_cmpint(mpop_privsep_decode_log(bad, len, &r), ==, -EINVAL);
	bad[5] = 7;
	bad[10] = 'C';
	g_assert_cmpint(mpop_privsep_decode_log(bad, len, &r), ==, -EINVAL);
	{
		g_autoptr(GBytes) a = encode("bob", "x", "", 0);
		g_assert_cmpint(
			mpop_privsep_decode_log(g_bytes_get_data(a, NULL), g_bytes_get_size(a), &r),
			==, -EINVAL);
	}
	g_assert_null(r.event);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/privsep/roundtrip", test_roundtrip);
	g_test_add_func("/privsep/truncated", test_truncated);
	g_test_add_func("/privsep/sni", test_sni);
	g_test_add_func("/privsep/log-record", test_log_record);
	g_test_add_func("/privsep/malformed", test_malformed);
	g_test_add_func("/privsep/limits", test_limits);
	g_test_add_func("/privsep/become", test_become);
	g_test_add_func("/privsep/become-groups", test_become_groups);
	return g_test_run();
}
