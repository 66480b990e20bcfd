/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Logging: the target rule, key=value escaping, syslog datagrams, escaped stderr lines. */
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void
test_kv(void)
{
	static const struct {
		const char *value, *want;
	} cases[] = {
		{"alice", "k=alice"},
		{"127.0.0.1:110", "k=127.0.0.1:110"},
		{"a=b", "k=a=b"},
		{"", "k=\"\""},
		{"two words", "k=\"two words\""},
		{"say \"hi\"", "k=\"say \\\"hi\\\"\""},
		{"back\\slash", "k=\"back\\\\slash\""},
		{"line\r\nnext", "k=\"line\\r\\nnext\""},
		{"tab\there", "k=\"tab\\there\""},
		{"bell\a del\x7f", "k=\"bell\\x07 del\\x7f\""},
		{"caf\xc3\xa9", "k=\"caf\\xc3\\xa9\""},
		{"session=x event=forged", "k=\"session=x event=forged\""},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GString) line = g_string_new(NULL);
		mpop_log_append_kv(line, "k", cases[i].value);
		g_assert_cmpstr(line->str, ==, cases[i].want);
		for (const char *p = line->str; *p; p++)
			g_assert_true(*p >= 0x20 && *p < 0x7f);
	}
	{
		g_autoptr(GString) line = g_string_new(NULL);
		mpop_log_append_kv(line, "a", "1");
		mpop_log_append_kv(line, "b", "x y");
		g_assert_cmpstr(line->str, ==, "a=1 b=\"x y\"");
	}
}

static void
test_pick(void)
{
	enum {
		A = MPOP_LOG_TARGET_AUTO,
		J = MPOP_LOG_TARGET_JOURNAL,
		S = MPOP_LOG_TARGET_SYSLOG,
		E = MPOP_LOG_TARGET_STDERR
	};
	static const struct {
		int want;
		gboolean interactive, stderr_journal, stderr_usable, journal_socket;
		int got;
	} cases[] = {
		/* auto: the journal stream wins, in the foreground too */
		{A, FALSE, TRUE, TRUE, TRUE, J},
		{A, TRUE, TRUE, TRUE, TRUE, J},
		/* a daemon or inetd: journald if it runs, else syslog */
		{A, FALSE, FALSE, TRUE, TRUE, J},
		{A, FALSE, FALSE, TRUE, FALSE, S},
		{A, FALSE, FALSE, FALSE, FALSE, S},
		/* the foreground and --check-config: stderr */
		{A, TRUE, FALSE, TRUE, TRUE, E},
		{A, TRUE, FALSE, TRUE, FALSE, E},
		/* ... unless stderr is the client */
		{A, TRUE, FALSE, FALSE, FALSE, S},
		{A, TRUE, FALSE, FALSE, TRUE, J},
		/* explicit targets */
		{J, TRUE, FALSE, TRUE, FALSE, J},
		{S, TRUE, TRUE, TRUE, TRUE, S},
		{E, FALSE, FALSE, TRUE, TRUE, E},
		{E, FALSE, TRUE, TRUE, TRUE, E},
		/* stderr asked for but it is the connection (inetd): never there */
		{E, FALSE, FALSE, FALSE, FALSE, S},
		{E, TRUE, FALSE, FALSE, TRUE, J},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_test_message("case %zu", i);
		g_assert_cmpint(mpop_log_pick((MpopLogTarget)cases[i].want, cases[i].interactive,
					      cases[i].stderr_journal, cases[i].stderr_usable,
					      cases[i].journal_socket),
				==, cases[i].got);
	}
}

static int
listen_dgram(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpuint(strlen(path), <, sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	unlink(path);
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	g_assert_cmpint(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), ==, 0);
	return fd;
}

static char *
recv_record(int fd)
{
	char buf[16384];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

	g_assert_cmpint(n, >, 0);
	buf[n] = '\0';
	return g_strdup(buf);
}

/* Nothing waiting on fd. */
static void
assert_no_record(int fd)
{
	char buf[64];

	g_assert_cmpint(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), <, 0);
	g_assert_cmpint(errno, ==, EAGAIN);
}

static void
assert_record(const char *rec, int pri, const char *body)
{
	g_autofree char *prefix = g_strdup_printf("<%d>", pri);
	g_autofree char *tag = g_strdup_printf(" mpopd[%d]: ", (int)getpid());
	g_autofree char *stamp = NULL;
	const char *t;

	g_test_message("record: %s", rec);
	g_assert_true(g_str_has_prefix(rec, prefix));
	t = rec + strlen(prefix);
	stamp = g_strndup(t, 15);
	/* RFC 3164 TIMESTAMP: "Mmm dd hh:mm:ss", the day padded with a space */
	g_assert_true(g_regex_match_simple("^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
					   "[ 123][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9]$",
					   stamp, 0, 0));
	g_assert_true(g_str_has_prefix(t + 15, tag));
	g_assert_cmpstr(t + 15 + strlen(tag), ==, body);
	g_assert_null(strpbrk(rec, "\r\n"));
}

static void
test_syslog(void)
{
	g_autofree char *dir = g_dir_make_tmp("mpopd-log-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "log", NULL);
	g_autofree char *rec = NULL;
	const char *fields[] = {"TLS=TLSv1.3 TLS_AES_256_GCM_SHA384", "RETR=1/2", NULL};
	int fd = listen_dgram(path);

	mpop_log_init("mpopd", MPOP_LOG_INFO);
	mpop_log_open(MPOP_LOG_TARGET_SYSLOG, TRUE, path);
	g_assert_cmpint(mpop_log_get_target(), ==, MPOP_LOG_TARGET_SYSLOG);
	mpop_log_set_session("0123abcd", "127.0.0.1:4711");
	/* user names are escaped twice: once as fields (\xHH), once as values (quotes) */
	mpop_log_set_user("al ice\"\n");
	mpop_log_event(MPOP_LOG_INFO, "login", fields, "logged in,\r\nforged=1");
	rec = recv_record(fd);
	/* LOG_MAIL (2 << 3) | LOG_INFO */
	assert_record(rec, 22,
		      "session=0123abcd peer=127.0.0.1:4711 user=\"al ice\\\"\\\\x0a\" event=login "
		      "msg=\"logged in,\\r\\nforged=1\" tls=\"TLSv1.3 TLS_AES_256_GCM_SHA384\" "
		      "retr=1/2");
	g_clear_pointer(&rec, g_free);

	/* the level filters; [log] users lets debug records of a listed user through */
	mpop_log_set_user("alice");
	mpop_log_debug("C: STAT");
	assert_no_record(fd);
	mpop_log_set_user_detail(TRUE);
	mpop_log_event(MPOP_LOG_DEBUG, "command", NULL, "C: STAT");
	rec = recv_record(fd);
	assert_record(rec, 23,
		      "session=0123abcd peer=127.0.0.1:4711 user=alice event=command msg=\"C: "
		      "STAT\"");
	g_clear_pointer(&rec, g_free);
	mpop_log_set_user_detail(FALSE);

	/* behind a balancer: the client's address as peer, the balancer's as proxy */
	mpop_log_set_proxy("10.0.0.5:40000");
	mpop_log_notice("proxied");
	rec = recv_record(fd);
	assert_record(rec, 21,
		      "session=0123abcd peer=127.0.0.1:4711 proxy=10.0.0.5:40000 user=alice "
		      "msg=proxied");
	g_clear_pointer(&rec, g_free);
	mpop_log_set_proxy(NULL);

	/* syslog restarted: a new socket at the same path; the next record reconnects */
	close(fd);
	fd = listen_dgram(path);
	mpop_log_set_session(NULL, NULL);
	mpop_log_set_user(NULL);
	mpop_log_notice("after restart");
	rec = recv_record(fd);
	assert_record(rec, 21, "msg=\"after restart\"");
	g_clear_pointer(&rec, g_free);

	/* an overlong message is cut, the record stays one line */
	{
		g_autofree char *big = g_strnfill(100000, 'x');
		mpop_log_err("%s", big);
		rec = recv_record(fd);
		g_assert_cmpuint(strlen(rec), <, 2200);
		g_assert_true(g_str_has_suffix(rec, "xxx"));
		g_clear_pointer(&rec, g_free);
	}
	close(fd);
	unlink(path);
	rmdir(dir);
	mpop_log_init("mpopd", MPOP_LOG_INFO);
}

/* stderr lines keep their form; a control character in a message is escaped. */
static void
test_stderr(void)
{
	if (g_test_subprocess()) {
		mpop_log_init("mpopd", MPOP_LOG_INFO);
		mpop_log_open(MPOP_LOG_TARGET_STDERR, FALSE, NULL);
		mpop_log_set_session("s1", "127.0.0.1:1");
		mpop_log_set_user("alice");
		mpop_log_event(MPOP_LOG_INFO, "logout", NULL, "bye\r\nmpopd[1]: forged");
		return;
	}
	g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
	g_test_trap_assert_passed();
	/* a glob: only * is special */
	g_test_trap_assert_stderr("mpopd[*]: info: session=s1 peer=127.0.0.1:1 user=<alice> "
				  "event=logout bye\\r\\nmpopd[1]: forged\n");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/log/kv", test_kv);
	g_test_add_func("/log/pick", test_pick);
	g_test_add_func("/log/syslog", test_syslog);
	g_test_add_func("/log/stderr", test_stderr);
	return g_test_run();
}
