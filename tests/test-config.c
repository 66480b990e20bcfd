/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Config: defaults, every error class, round trips, and the sample file and man page in sync. */
#include "config.h"

#include <glib/gstdio.h>
#include <string.h>

#include "mpopd-build.h"
#include "util.h"

#define MAN_BEGIN ".\\\" BEGIN GENERATED KEYS (test-config --write-docs)\n"
#define MAN_END ".\\\" END GENERATED KEYS\n"

static MpopConfig *
load_text(const char *text, GError **error)
{
	return mpop_config_load_data(text, strlen(text), "t.conf", error);
}

/* TRUE when text has line as one whole line. */
static gboolean
has_line(const char *text, const char *line)
{
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
	return g_strv_contains((const char *const *)lines, line);
}

static void
test_defaults(void)
{
	g_autoptr(MpopConfig) cfg = mpop_config_new_default();

	g_assert_cmpstr(cfg->path, ==, "(defaults)");
	g_assert_cmpstr(cfg->greeting, ==, "mpopd ready.");
	g_assert_cmpuint(cfg->idle_timeout, ==, 600);
	g_assert_cmpuint(cfg->max_bad_commands, ==, 10);
	g_assert_cmpstr(cfg->login_user, ==, "mpopd-login");
	g_assert_cmpstr(cfg->login_chroot, ==, "/var/empty");
	g_assert_cmpuint(g_strv_length(cfg->listen), ==, 1);
	g_assert_cmpstr(cfg->listen[0], ==, "0.0.0.0:110");
	g_assert_cmpstr(cfg->pid_file, ==, "/run/mpopd.pid");
	g_assert_cmpuint(cfg->max_sessions, ==, 100);
	g_assert_cmpuint(cfg->max_sessions_per_source, ==, 10);
	g_assert_true(cfg->privsep);
	g_assert_cmpint(cfg->format, ==, MPOP_FORMAT_MAILDIR);
	g_assert_cmpstr(cfg->location, ==, "");
	g_assert_cmpstr(cfg->mail_spool_dir, ==, "/var/mail");
	g_assert_cmpstr(cfg->message_start, ==, "From ");
	g_assert_cmpstr(cfg->message_end, ==, "");
	g_assert_cmpint(cfg->from_quoting, ==, MPOP_FROM_MBOXRD);
	g_assert_cmpuint(cfg->mbox_locks, ==, MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL);
	g_assert_cmpuint(cfg->lock_retries, ==, 10);
	g_assert_cmpuint(cfg->lock_wait_ms, ==, 1000);
	g_assert_cmpuint(cfg->lock_stale_age, ==, 300);
	g_assert_cmpint(cfg->mbox_mode, ==, MPOP_MBOX_SNAPSHOT);
	g_assert_cmpstr(cfg->spool_dir, ==, "/var/spool/mpopd");
	g_assert_cmpuint(g_strv_length(cfg->uidl_source), ==, 3);
	g_assert_cmpstr(cfg->uidl_source[0], ==, "x-uidl");
	g_assert_cmpstr(cfg->uidl_source[1], ==, "message-id");
	g_assert_cmpstr(cfg->uidl_source[2], ==, "digest");
	g_assert_cmpuint(g_strv_length(cfg->show_headers), ==, 0);
	g_assert_cmpuint(g_strv_length(cfg->auth_default), ==, 1);
	g_assert_cmpstr(cfg->auth_default[0], ==, "userlist");
	g_assert_cmpstr(cfg->userlist, ==, MPOPD_SYSCONFDIR "/users");
	g_assert_cmpstr(cfg->pam_service, ==, "mpopd");
	g_assert_cmpuint(g_hash_table_size(cfg->user_auth), ==, 0);
	g_assert_false(cfg->reject_unknown_user_early);
	g_assert_cmpint(cfg->log_level, ==, MPOP_LOG_INFO);
	g_assert_cmpuint(g_strv_length(cfg->log_users), ==, 0);
}

static void
test_fields(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = load_text("[server]\n"
					      "idle_timeout = 700\n"
					      "privsep=false\n"
					      "listen=[::1]:110;127.0.0.1:995\n"
					      "[mailbox]\n"
					      "format=mbox\n"
					      "message_start=From \n"
					      "mbox_locks=flock;dotlock\n"
					      "mbox_mode=session-lock\n"
					      "from_quoting=raw\n"
					      "uidl_source=digest\n"
					      "[log]\n"
					      "level=debug\n"
					      "users=bob;alice@example.org\n",
					      &error);

	g_assert_no_error(error);
	g_assert_cmpstr(cfg->path, ==, "t.conf");
	g_assert_cmpuint(cfg->idle_timeout, ==, 700);
	g_assert_false(cfg->privsep);
	g_assert_cmpstr(cfg->listen[0], ==, "[::1]:110");
	g_assert_cmpstr(cfg->listen[1], ==, "127.0.0.1:995");
	g_assert_null(cfg->listen[2]);
	g_assert_cmpint(cfg->format, ==, MPOP_FORMAT_MBOX);
	g_assert_cmpstr(cfg->message_start, ==, "From ");
	g_assert_cmpuint(cfg->mbox_locks, ==, MPOP_LOCK_FLOCK | MPOP_LOCK_DOTLOCK);
	g_assert_cmpint(cfg->mbox_mode, ==, MPOP_MBOX_SESSION_LOCK);
	g_assert_cmpint(cfg->from_quoting, ==, MPOP_FROM_RAW);
	g_assert_cmpstr(cfg->uidl_source[0], ==, "digest");
	g_assert_null(cfg->uidl_source[1]);
	g_assert_cmpint(cfg->log_level, ==, MPOP_LOG_DEBUG);
	/* untouched keys keep their defaults */
	g_assert_cmpstr(cfg->greeting, ==, "mpopd ready.");
	g_assert_cmpuint(cfg->lock_retries, ==, 10);
}

/* Accepted values and how the dump writes them back (canonical form). */
static const struct {
	const char *text, *line;
} valid_cases[] = {
	{"[server]\nidle_timeout=10\n", "idle_timeout=10"},
	{"[server]\nidle_timeout=86400\n", "idle_timeout=86400"},
	{"[server]\nmax_bad_commands=1\n", "max_bad_commands=1"},
	{"[server]\nprivsep=false\n", "privsep=false"},
	{"[server]\ngreeting=\\shello\\\\ world \n", "greeting=\\shello\\\\ world\\s"},
	{"[server]\nlogin_chroot=\n", "login_chroot="},
	{"[server]\npid_file=\n", "pid_file="},
	{"[server]\nlisten=[::1]:110;127.0.0.1:995;:110\n", "listen=[::1]:110;127.0.0.1:995;:110"},
	{"[server]\nlisten=\n", "listen="},
	{"[server]\nlisten=127.0.0.1:110;10.0.0.5:1110 "
	 "proxy=v2\nproxy_trusted_networks=10.0.0.0/24\n",
	 "listen=127.0.0.1:110;10.0.0.5:1110 proxy=v2"},
	{"[server]\nproxy_protocol=any\nproxy_trusted_networks=10.0.0.1;2001:db8::/32\n",
	 "proxy_trusted_networks=10.0.0.1;2001:db8::/32"},
	{"[server]\nmax_sessions=100000\n", "max_sessions=100000"},
	{"[mailbox]\nformat=mbox\n", "format=mbox"},
	{"[mailbox]\nlocation=%s/%u%%\n", "location=%s/%u%%"},
	{"[mailbox]\nlocation=/srv/%d/%n/Maildir\n", "location=/srv/%d/%n/Maildir"},
	{"[mailbox]\nlocation=%h/Maildir\n", "location=%h/Maildir"},
	{"[mailbox]\nmessage_start=From\\s\n", "message_start=From\\s"},
	{"[mailbox]\nmessage_end=--END--\n", "message_end=--END--"},
	{"[mailbox]\nmbox_locks=flock;dotlock\n", "mbox_locks=dotlock;flock"},
	{"[mailbox]\nmbox_locks=fcntl\n", "mbox_locks=fcntl"},
	{"[mailbox]\nlock_retries=0\n", "lock_retries=0"},
	{"[mailbox]\nlock_stale_age=0\n", "lock_stale_age=0"},
	{"[mailbox]\nmbox_mode=spool\n", "mbox_mode=spool"},
	{"[mailbox]\nuidl_source=message-id;x-uidl\n", "uidl_source=message-id;x-uidl"},
	{"[mailbox]\nshow_headers=status;X-Keywords\n", "show_headers=status;X-Keywords"},
	{"[mailbox]\nmessage_start=^BEGIN\\\\s+\\\\d\nmessage_end=^(END|STOP)$\n",
	 "message_start=^BEGIN\\\\s+\\\\d"},
	{"[auth]\ndefault=pam\n", "default=pam"},
	{"[auth]\nuserlist=\n", "userlist="},
	{"[log]\nlevel=err\n", "level=err"},
	{"[log]\nusers=bob;carol@example.org\n", "users=bob;carol@example.org"},
	{"[user_auth]\nbob=pam\nalice=passwd\n", "alice=passwd"},
	{"# comment\n\n[server]\n# another\nidle_timeout=601\n", "idle_timeout=601"},
	/* a repeated group merges; a repeated key: the last one wins */
	{"[log]\nlevel=err\n[server]\n[log]\nlevel=notice\n", "level=notice"},
};

static void
test_valid_values(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(valid_cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = load_text(valid_cases[i].text, &error);
		g_autofree char *dump = NULL;

		g_test_message("case %zu: %s", i, valid_cases[i].text);
		g_assert_no_error(error);
		dump = mpop_config_dump(cfg);
		g_assert_true(has_line(dump, valid_cases[i].line));
	}
}

/* Every error class. A message ending in '*' is a prefix (GLib's own parse errors). */
static const struct {
	const char *text, *msg;
} error_cases[] = {
	{"[server]\nidle_timeout=abc\n",
	 "t.conf: [server] idle_timeout: value \"abc\" is not a number"},
	{"[server]\nidle_tmeout=5\n", "t.conf: [server] idle_tmeout: unknown key"},
	{"[srv]\nidle_timeout=5\n", "t.conf: [srv]: unknown group"},
	{"[server]\nidle_timeout=5\n",
	 "t.conf: [server] idle_timeout: value \"5\" is out of range (10 to 86400)"},
	{"[server]\nidle_timeout=86401\n",
	 "t.conf: [server] idle_timeout: value \"86401\" is out of range (10 to 86400)"},
	{"[server]\nidle_timeout=-1\n",
	 "t.conf: [server] idle_timeout: value \"-1\" is not a number"},
	{"[server]\nidle_timeout=+600\n",
	 "t.conf: [server] idle_timeout: value \"+600\" is not a number"},
	{"[server]\nidle_timeout=600 \n",
	 "t.conf: [server] idle_timeout: value \"600 \" is not a number"},
	{"[server]\nidle_timeout=0x10\n",
	 "t.conf: [server] idle_timeout: value \"0x10\" is not a number"},
	{"[server]\nidle_timeout=\n", "t.conf: [server] idle_timeout: value \"\" is not a number"},
	{"[server]\nidle_timeout=99999999999999999999999\n",
	 "t.conf: [server] idle_timeout: value \"99999999999999999999999\" is not a number"},
	{"[server]\nmax_bad_commands=0\n",
	 "t.conf: [server] max_bad_commands: value \"0\" is out of range (1 to 1000)"},
	{"[server]\nprivsep=yes\n", "t.conf: [server] privsep: value \"yes\" is not true or false"},
	{"[server]\ngreeting=caf\xc3\xa9\n",
	 "t.conf: [server] greeting: value \"caf\\xc3\\xa9\" is not printable ASCII"},
	{"[server]\ngreeting=\n", "t.conf: [server] greeting: value \"\" must not be empty"},
	{"[server]\ngreeting=a\\nb\n",
	 "t.conf: [server] greeting: value \"a\\x0ab\" contains a control character"},
	{"[server]\ngreeting=a\\qb\n", "t.conf: [server] greeting: invalid escape or encoding"},
	{"[server]\nlogin_user=root:x\n",
	 "t.conf: [server] login_user: value \"root:x\" is not a valid name"},
	{"[server]\nlogin_chroot=var/empty\n",
	 "t.conf: [server] login_chroot: value \"var/empty\" is not an absolute path"},
	{"[server]\nlisten=localhost:110\n",
	 "t.conf: [server] listen: value \"localhost:110\" is not host:port, [IPv6]:port or :port "
	 "with a numeric address, optionally followed by \" proxy=off|v1|v2|any\""},
	{"[server]\nlisten=1.2.3.4:110 proxy=v3\n",
	 "t.conf: [server] listen: value \"1.2.3.4:110 proxy=v3\" is not*"},
	{"[server]\nlisten=1.2.3.4:110 v2\n",
	 "t.conf: [server] listen: value \"1.2.3.4:110 v2\" is not*"},
	{"[server]\nlisten=1.2.3.4:110  proxy=v2\n", "t.conf: [server] listen: value*"},
	{"[server]\nlisten=1.2.3.4:110 proxy=v2\n",
	 "t.conf: [server] proxy_trusted_networks: is empty but proxy_protocol (or a listen "
	 "entry's "
	 "proxy=) is on: every connection to it would be refused"},
	{"[server]\nproxy_protocol=v2\n", "t.conf: [server] proxy_trusted_networks: is empty*"},
	{"[server]\nproxy_protocol=v4\nproxy_trusted_networks=10.0.0.1\n",
	 "t.conf: [server] proxy_protocol: value \"v4\" is not one of off, v1, v2, any"},
	{"[server]\nproxy_trusted_networks=10.0.0.0/33\n",
	 "t.conf: [server] proxy_trusted_networks: value \"10.0.0.0/33\"*"},
	{"[server]\nproxy_header_timeout=0\n", "t.conf: [server] proxy_header_timeout: value*"},
	{"[server]\nlisten=1.2.3.4\n", "t.conf: [server] listen: value \"1.2.3.4\" is not*"},
	{"[server]\nlisten=1.2.3.4:0\n", "t.conf: [server] listen: value \"1.2.3.4:0\" is not*"},
	{"[server]\nlisten=1.2.3.4:65536\n",
	 "t.conf: [server] listen: value \"1.2.3.4:65536\" is not*"},
	{"[server]\nlisten=::1:110\n", "t.conf: [server] listen: value \"::1:110\" is not*"},
	{"[server]\nlisten=[::1:110\n", "t.conf: [server] listen: value \"[::1:110\" is not*"},
	{"[server]\nlisten=[1.2.3.4]:110\n",
	 "t.conf: [server] listen: value \"[1.2.3.4]:110\" is not*"},
	{"[server]\nlisten=:110;:110\n", "t.conf: [server] listen: value \":110\" is listed twice"},
	{"[server]\nlisten=:110;;:995\n", "t.conf: [server] listen: value \"\" must not be empty"},
	{"[mailbox]\nformat=mdir\n",
	 "t.conf: [mailbox] format: value \"mdir\" is not one of maildir, mbox"},
	{"[mailbox]\nformat=\n",
	 "t.conf: [mailbox] format: value \"\" is not one of maildir, mbox"},
	{"[mailbox]\nlocation=%x/foo\n",
	 "t.conf: [mailbox] location: value \"%x/foo\" has an unknown %-escape (known: %u %n %d %h "
	 "%s %%)"},
	{"[mailbox]\nlocation=/var/mail/%\n",
	 "t.conf: [mailbox] location: value \"/var/mail/%\" has an unknown*"},
	{"[mailbox]\nlocation=Maildir/%u\n",
	 "t.conf: [mailbox] location: value \"Maildir/%u\" is not an absolute path (start it with "
	 "/, %h or %s)"},
	{"[mailbox]\nlocation=%u/Maildir\n",
	 "t.conf: [mailbox] location: value \"%u/Maildir\" is not an absolute path*"},
	{"[mailbox]\nmail_spool_dir=\n",
	 "t.conf: [mailbox] mail_spool_dir: value \"\" must not be empty"},
	{"[mailbox]\nmessage_start=\n",
	 "t.conf: [mailbox] message_start: value \"\" must not be empty"},
	{"[mailbox]\nmbox_locks=\n", "t.conf: [mailbox] mbox_locks: the list must not be empty"},
	{"[mailbox]\nmbox_locks=dotlock;dotlock\n",
	 "t.conf: [mailbox] mbox_locks: value \"dotlock\" is listed twice"},
	{"[mailbox]\nmbox_locks=lockf\n",
	 "t.conf: [mailbox] mbox_locks: value \"lockf\" is not one of dotlock, fcntl, flock"},
	{"[mailbox]\nlock_wait_ms=60001\n",
	 "t.conf: [mailbox] lock_wait_ms: value \"60001\" is out of range (0 to 60000)"},
	{"[mailbox]\nmbox_mode=lock\n",
	 "t.conf: [mailbox] mbox_mode: value \"lock\" is not one of snapshot, session-lock, spool"},
	{"[mailbox]\nfrom_quoting=mboxo\n",
	 "t.conf: [mailbox] from_quoting: value \"mboxo\" is not one of mboxrd, raw"},
	{"[mailbox]\nuidl_source=\n", "t.conf: [mailbox] uidl_source: the list must not be empty"},
	{"[mailbox]\nuidl_source=digest;digest\n",
	 "t.conf: [mailbox] uidl_source: value \"digest\" is listed twice"},
	{"[mailbox]\nuidl_source=md5\n", "t.conf: [mailbox] uidl_source: value \"md5\" is not one "
					 "of x-uidl, message-id, dovecot, popa3d, digest"},
	{"[mailbox]\nshow_headers=X-A:B\n",
	 "t.conf: [mailbox] show_headers: value \"X-A:B\" is not one of the hidden fields*"},
	{"[mailbox]\nshow_headers=X-UIDL\n",
	 "t.conf: [mailbox] show_headers: value \"X-UIDL\" is not one of the hidden fields Status, "
	 "X-Status, X-UID, X-IMAP, X-IMAPbase, X-Keywords and Content-Length (every other field "
	 "is sent anyway)"},
	{"[mailbox]\nmessage_start=^From (\n",
	 "t.conf: [mailbox] message_start: value \"^From (\" is not a valid regular expression: *"},
	{"[mailbox]\nmessage_end=a)(b\n",
	 "t.conf: [mailbox] message_end: value \"a)(b\" is not a valid regular expression: *"},
	{"[mailbox]\nspool_dir=spool\n",
	 "t.conf: [mailbox] spool_dir: value \"spool\" is not an absolute path"},
	{"[auth]\ndefault=ldap\n",
	 "t.conf: [auth] default: value \"ldap\" is not one of userlist, pam, system, passwd, "
	 "shadow*"},
	{"[auth]\npam_service=-x\n",
	 "t.conf: [auth] pam_service: value \"-x\" is not a valid name"},
	{"[user_auth]\nalice=ldap\n", "t.conf: [user_auth] alice: value \"ldap\" is not one of*"},
	{"[user_auth]\nalice=pam;ldap\n",
	 "t.conf: [user_auth] alice: value \"ldap\" is not one of*"},
	{"[user_auth]\nalice=pam;pam\n", "t.conf: [user_auth] alice: backend pam is listed twice"},
	{"[user_auth]\nalice=\n", "t.conf: [user_auth] alice: the list must not be empty"},
	{"[auth]\ndefault=system;nosuch\n", "t.conf: [auth] default: value \"nosuch\" is not one*"},
	{"[auth]\ndefault=\n", "t.conf: [auth] default: the list must not be empty"},
	{"[user_auth]\na b=pam\n", "t.conf: [user_auth] a b: not a valid user name"},
	{"[log]\nlevel=verbose\n",
	 "t.conf: [log] level: value \"verbose\" is not one of err, warning, notice, info, debug"},
	{"[log]\nusers=bob;bob\n", "t.conf: [log] users: value \"bob\" is listed twice"},
	{"[server]\ngreeting[de]=Hallo\n",
	 "t.conf: [server] greeting[de]: localized keys are not supported"},
	{"[server\n", "t.conf: *"},
	{"[server]\ngarbage\n", "t.conf: *"},
	{"idle_timeout=600\n", "t.conf: *"},
};

/* Valid settings that --check-config warns about. */
static void
test_warnings(void)
{
	static const struct {
		const char *text;
		const char *warning; /* NULL: none */
	} cases[] = {
		{"", NULL},
		{"[mailbox]\nmessage_end=^END$\n", NULL},
		{"[mailbox]\nmessage_end=^\\\\s*$\n", NULL},
		{"[mailbox]\nmessage_end=^\\\\s+$\n", NULL},
		{"[mailbox]\nmessage_end=END\n",
		 "t.conf: [mailbox] message_end: \"END\" is matched against whole lines (as "
		 "^(?:...)$), where Perl mpopd matched it anywhere in a line; write it with ^ and "
		 "$ "
		 "to say so, or .*RULE.* for a line that contains RULE"},
		{"[mailbox]\nmessage_end=^END\n", "t.conf: [mailbox] message_end: \"^END\" is*"},
		/* Pasted from Perl: GKeyFile reads ^ *$, a line of spaces only. */
		{"[mailbox]\nmessage_end=^\\s*$\n",
		 "t.conf: [mailbox] message_end: \\s in the file is a space, not the expression's "
		 "white space class: write \\\\s for that"},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = load_text(cases[i].text, &error);

		g_test_message("case %s", cases[i].text);
		g_assert_no_error(error);
		if (cases[i].warning == NULL) {
			g_assert_null(cfg->warnings);
			continue;
		}
		g_assert_nonnull(cfg->warnings);
		g_assert_cmpuint(cfg->warnings->len, ==, 1);
		g_assert_true(g_pattern_match_simple(cases[i].warning,
						     g_ptr_array_index(cfg->warnings, 0)));
	}
}

static void
check_error(const GError *error, const char *expected)
{
	size_t n = strlen(expected);

	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
	if (expected[n - 1] == '*')
		g_assert_true(strncmp(error->message, expected, n - 1) == 0);
	else
		g_assert_cmpstr(error->message, ==, expected);
}

static void
test_errors(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(error_cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = load_text(error_cases[i].text, &error);

		g_test_message("case %zu: %s", i, error_cases[i].text);
		g_assert_null(cfg);
		check_error(error, error_cases[i].msg);
	}
}

static void
test_error_limits(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = mpop_config_load_data("[server]\0x", 10, "t.conf", &error);
	g_autofree char *big = NULL;
	g_autofree char *long_greeting = g_strnfill(201, 'a');
	g_autofree char *text = g_strdup_printf("[server]\ngreeting=%s\n", long_greeting);

	g_assert_null(cfg);
	check_error(error, "t.conf: file contains a NUL byte");
	g_clear_error(&error);

	big = g_strnfill(2 * 1024 * 1024, '#');
	cfg = mpop_config_load_data(big, strlen(big), "t.conf", &error);
	g_assert_null(cfg);
	check_error(error, "t.conf: file too large");
	g_clear_error(&error);

	cfg = load_text(text, &error);
	g_assert_null(cfg);
	/* the value in the message is cut, the reason is not */
	check_error(error, "t.conf: [server] greeting: value \"aaaa*");
	g_assert_true(g_str_has_suffix(error->message, "...\" is longer than 200 characters"));
	g_clear_error(&error);

	long_greeting[200] = '\0';
	g_free(text);
	text = g_strdup_printf("[server]\ngreeting=%s\n", long_greeting);
	cfg = load_text(text, &error);
	g_assert_no_error(error);
	g_assert_cmpuint(strlen(cfg->greeting), ==, 200);
}

static void
assert_round_trip(const MpopConfig *cfg)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *d1 = mpop_config_dump(cfg);
	g_autoptr(MpopConfig) again = mpop_config_load_data(d1, strlen(d1), cfg->path, &error);
	g_autofree char *d2 = NULL;

	g_assert_no_error(error);
	d2 = mpop_config_dump(again);
	g_assert_cmpstr(d1, ==, d2);
}

static void
test_round_trip(void)
{
	g_autoptr(MpopConfig) def = mpop_config_new_default();
	g_autofree char *d = mpop_config_dump(def);

	assert_round_trip(def);
	/* every key appears in the dump */
	g_assert_true(has_line(d, "greeting=mpopd ready."));
	g_assert_true(has_line(d, "message_start=From\\s"));
	g_assert_true(has_line(d, "mbox_locks=dotlock;fcntl"));
	g_assert_true(has_line(d, "[user_auth]"));
	for (size_t i = 0; i < G_N_ELEMENTS(valid_cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = load_text(valid_cases[i].text, &error);
		g_assert_no_error(error);
		assert_round_trip(cfg);
	}
}

static void
test_user_auth(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = load_text("[auth]\ndefault=passwd\n"
					      "[user_auth]\nbob=pam\njoe@example.org=userlist\n"
					      "eve=system;pam\n"
					      "[log]\nusers=carol;bob\n",
					      &error);
	g_autoptr(MpopConfig) def = mpop_config_new_default();

	g_assert_no_error(error);
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "bob")[0], ==, "pam");
	g_assert_null(mpop_config_auth_for_user(cfg, "bob")[1]);
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "joe@example.org")[0], ==, "userlist");
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "eve")[0], ==, "system");
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "eve")[1], ==, "pam");
	g_assert_null(mpop_config_auth_for_user(cfg, "eve")[2]);
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "BOB")[0], ==, "passwd");
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, "alice")[0], ==, "passwd");
	g_assert_cmpstr(mpop_config_auth_for_user(cfg, NULL)[0], ==, "passwd");
	g_assert_cmpstr(mpop_config_auth_for_user(def, "bob")[0], ==, "userlist");
	g_assert_true(mpop_config_user_logged(cfg, "carol"));
	g_assert_true(mpop_config_user_logged(cfg, "bob"));
	g_assert_false(mpop_config_user_logged(cfg, "bo"));
	g_assert_false(mpop_config_user_logged(cfg, "alice"));
	g_assert_false(mpop_config_user_logged(cfg, NULL));
	g_assert_false(mpop_config_user_logged(def, "bob"));
}

static void
test_load_file(void)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *dir = g_dir_make_tmp("test-config-XXXXXX", &error);
	g_autofree char *path = g_build_filename(dir, "mpopd.conf", NULL);
	g_autofree char *missing = g_build_filename(dir, "missing.conf", NULL);
	g_autofree char *bad = g_build_filename(dir, "bad.conf", NULL);
	g_autofree char *expected = NULL;
	MpopConfig *cfg;

	g_assert_no_error(error);
	g_assert_true(g_file_set_contents(path, "[server]\nmax_sessions=7\n", -1, NULL));
	g_assert_true(g_file_set_contents(bad, "[server]\nmax_sessions=x\n", -1, NULL));

	cfg = mpop_config_load(path, TRUE, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(cfg->path, ==, path);
	g_assert_cmpuint(cfg->max_sessions, ==, 7);
	mpop_config_free(cfg);

	cfg = mpop_config_load(missing, FALSE, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(cfg->path, ==, "(defaults)");
	g_assert_cmpuint(cfg->max_sessions, ==, 100);
	mpop_config_free(cfg);

	cfg = mpop_config_load(missing, TRUE, &error);
	g_assert_null(cfg);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
	g_assert_true(g_str_has_prefix(error->message, missing));
	g_clear_error(&error);

	/* a directory is not a missing file: an error even when the file is optional */
	cfg = mpop_config_load(dir, FALSE, &error);
	g_assert_null(cfg);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
	g_clear_error(&error);

	cfg = mpop_config_load(bad, FALSE, &error);
	g_assert_null(cfg);
	expected = g_strdup_printf("%s: [server] max_sessions: value \"x\" is not a number", bad);
	check_error(error, expected);
	g_clear_error(&error);

	g_assert_cmpint(g_unlink(path), ==, 0);
	g_assert_cmpint(g_unlink(bad), ==, 0);
	g_assert_cmpint(g_rmdir(dir), ==, 0);
}

static void
test_load_default_path(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;

	if (g_file_test(MPOPD_DEFAULT_CONFIG, G_FILE_TEST_EXISTS)) {
		g_test_skip(MPOPD_DEFAULT_CONFIG " exists on this system");
		return;
	}
	cfg = mpop_config_load(NULL, FALSE, &error);
	g_assert_no_error(error);
	g_assert_cmpstr(cfg->path, ==, "(defaults)");
	g_clear_pointer(&cfg, mpop_config_free);
	cfg = mpop_config_load(NULL, TRUE, &error);
	g_assert_null(cfg);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
	g_assert_true(g_str_has_prefix(error->message, MPOPD_DEFAULT_CONFIG ": "));
}

/* Every prefix of a valid file (a file cut anywhere, one byte more each time) loads or fails
 * cleanly with a config error. */
static void
test_prefixes(void)
{
	const char *text = "# c\n[server]\ngreeting=\\shi\nlisten=[::1]:110;:995\n"
			   "[mailbox]\nmbox_locks=flock;fcntl\nlocation=%h/%%x\n"
			   "[user_auth]\nbob=pam\n[log]\nlevel=debug\n";
	size_t len = strlen(text);

	for (size_t n = 0; n <= len; n++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = mpop_config_load_data(text, n, "t.conf", &error);
		if (cfg) {
			g_assert_no_error(error);
			assert_round_trip(cfg);
		} else {
			g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
			g_assert_true(g_str_has_prefix(error->message, "t.conf: "));
		}
	}
}

/* The sample loads to the defaults, and so does the sample with every key uncommented:
 * the defaults it shows are the real ones. */
static void
test_sample_is_defaults(void)
{
	g_autofree char *sample = mpop_config_sample();
	g_autoptr(MpopConfig) def = mpop_config_new_default();
	g_autofree char *want = mpop_config_dump(def);
	g_auto(GStrv) lines = g_strsplit(sample, "\n", -1);
	g_auto(GStrv) dump_lines = g_strsplit(want, "\n", -1);
	g_autoptr(GString) active = g_string_new(NULL);
	guint uncommented = 0, keys = 0;

	for (char **l = lines; *l; l++) {
		/* "#key=value": a key name has no space; help comments start with "# " */
		if ((*l)[0] == '#' && (*l)[1] != ' ' && (*l)[1] && strchr(*l, '=') &&
		    !g_str_has_prefix(*l, "#alice=")) {
			g_string_append_printf(active, "%s\n", *l + 1);
			uncommented++;
		} else {
			g_string_append_printf(active, "%s\n", *l);
		}
	}
	for (char **l = dump_lines; *l; l++) {
		g_autofree char *commented = g_strdup_printf("#%s", *l);
		if (!strchr(*l, '=') || (*l)[0] == '#')
			continue;
		keys++;
		g_assert_true(g_strv_contains((const char *const *)lines, commented));
	}
	g_assert_cmpuint(uncommented, ==, keys);
	g_assert_cmpuint(keys, >=, 29);

	for (int pass = 0; pass < 2; pass++) {
		g_autoptr(GError) error = NULL;
		const char *text = pass ? active->str : sample;
		g_autoptr(MpopConfig) cfg =
			mpop_config_load_data(text, strlen(text), "(defaults)", &error);
		g_autofree char *got = NULL;
		g_assert_no_error(error);
		got = mpop_config_dump(cfg);
		g_assert_cmpstr(got, ==, want);
	}
}

static char *
read_dist_file(const char *dir, const char *name)
{
	g_autofree char *path = g_test_build_filename(G_TEST_DIST, "..", dir, name, NULL);
	g_autoptr(GError) error = NULL;
	char *text = NULL;

	g_file_get_contents(path, &text, NULL, &error);
	g_assert_no_error(error);
	return text;
}

/* The files in the tree name the Debian layout (/etc/mpopd); meson writes the configured
 * directory into the installed copies (the path_subst of meson.build), which is what this
 * build's library prints. */
static char *
canonical(char *text)
{
	g_auto(GStrv) parts = g_strsplit(text, MPOPD_SYSCONFDIR "/", -1);

	g_free(text);
	return g_strjoinv("/etc/mpopd/", parts);
}

static void
test_sample_sync(void)
{
	g_autofree char *file = read_dist_file("conf", "mpopd.conf");
	g_autofree char *sample = canonical(mpop_config_sample());

	if (strcmp(file, sample) != 0)
		g_test_message("conf/mpopd.conf is stale: run test-config --write-docs SRCDIR");
	g_assert_cmpstr(file, ==, sample);
}

static void
test_man_sync(void)
{
	g_autofree char *man = read_dist_file("man", "mpopd.conf.5");
	g_autofree char *section = canonical(mpop_config_man_section());
	const char *begin = strstr(man, MAN_BEGIN), *end = strstr(man, MAN_END);
	g_autofree char *between = NULL;

	g_assert_nonnull(begin);
	g_assert_nonnull(end);
	begin += strlen(MAN_BEGIN);
	g_assert_true(begin <= end);
	between = g_strndup(begin, (gsize)(end - begin));
	if (strcmp(between, section) != 0)
		g_test_message("man/mpopd.conf.5 is stale: run test-config --write-docs SRCDIR");
	g_assert_cmpstr(between, ==, section);
	/* every key of the dump has an entry */
	g_autoptr(MpopConfig) def = mpop_config_new_default();
	g_autofree char *dump = mpop_config_dump(def);
	g_auto(GStrv) lines = g_strsplit(dump, "\n", -1);
	for (char **l = lines; *l; l++) {
		g_autofree char *key = NULL, *entry = NULL;
		if (!strchr(*l, '=') || (*l)[0] == '#')
			continue;
		key = g_strndup(*l, strcspn(*l, "="));
		entry = g_strdup_printf(".TP\n\\fB%s=", key);
		g_assert_nonnull(strstr(section, entry));
	}
}

/* Developer mode: rewrite conf/mpopd.conf and the generated part of man/mpopd.conf.5. */
static int
write_docs(const char *srcdir)
{
	g_autofree char *conf = g_build_filename(srcdir, "conf", "mpopd.conf", NULL);
	g_autofree char *manp = g_build_filename(srcdir, "man", "mpopd.conf.5", NULL);
	g_autofree char *sample = canonical(mpop_config_sample());
	g_autofree char *section = canonical(mpop_config_man_section());
	g_autofree char *man = NULL;
	g_autoptr(GError) error = NULL;
	const char *begin, *end;
	g_autofree char *head = NULL, *out = NULL;

	if (!g_file_set_contents(conf, sample, -1, &error) ||
	    !g_file_get_contents(manp, &man, NULL, &error)) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	begin = strstr(man, MAN_BEGIN);
	end = begin ? strstr(begin, MAN_END) : NULL;
	if (!end) {
		g_printerr("%s: no generated-keys markers\n", manp);
		return 1;
	}
	head = g_strndup(man, (gsize)(begin - man) + strlen(MAN_BEGIN));
	out = g_strconcat(head, section, end, NULL);
	if (!g_file_set_contents(manp, out, -1, &error)) {
		g_printerr("%s\n", error->message);
		return 1;
	}
	g_print("wrote %s and %s\n", conf, manp);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--write-docs") == 0)
		return write_docs(argv[2]);
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/config/defaults", test_defaults);
	g_test_add_func("/config/fields", test_fields);
	g_test_add_func("/config/valid-values", test_valid_values);
	g_test_add_func("/config/errors", test_errors);
	g_test_add_func("/config/warnings", test_warnings);
	g_test_add_func("/config/error-limits", test_error_limits);
	g_test_add_func("/config/round-trip", test_round_trip);
	g_test_add_func("/config/user-auth", test_user_auth);
	g_test_add_func("/config/load-file", test_load_file);
	g_test_add_func("/config/load-default-path", test_load_default_path);
	g_test_add_func("/config/prefixes", test_prefixes);
	g_test_add_func("/config/sample-is-defaults", test_sample_is_defaults);
	g_test_add_func("/config/sample-sync", test_sample_sync);
	g_test_add_func("/config/man-sync", test_man_sync);
	return g_test_run();
}
