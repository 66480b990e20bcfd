/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Protocol engine: request/reply conversation tables over a fake maildrop. */
#include "pop3.h"
#include "util.h"

#include <string.h>

/* One exchange: the client line (NULL ends the table) and the exact reply, with the
 * engine's actions rendered as markers: <AUTH user>, <STREAM n top>, <UPDATE>, <CLOSE>. */
typedef struct {
	const char *send;
	const char *expect;
} Exchange;

typedef struct {
	MpopMailbox mb;
	MpopMessage msgs[3];
} FakeBox;

static void
fake_box_init(FakeBox *f)
{
	static const char *const uidls[] = {"uid-one", "uid-two", "uid-three"};
	static const guint64 sizes[] = {100, 200, 300};

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 3; i++) {
		f->msgs[i].uidl = (char *)uidls[i];
		f->msgs[i].size = sizes[i];
	}
	f->mb.msgs = f->msgs;
	f->mb.n_msgs = 3;
}

static const MpopPop3Params default_params = {
	.greeting = "test ready.",
	.max_bad_commands = 5,
	.allow_plaintext = TRUE,
};

/* Pretend authentication: alice/secret works, "temp" is a backend failure. */
static MpopAuthResult
fake_auth(const char *user, const char *pass)
{
	if (strcmp(user, "temp") == 0)
		return MPOP_AUTH_TEMPFAIL;
	if (strcmp(user, "alice") == 0 && strcmp(pass, "secret") == 0)
		return MPOP_AUTH_OK;
	return MPOP_AUTH_DENIED;
}

static void
run_action(MpopPop3 *p, FakeBox *box, MpopAction act, GString *reply)
{
	MpopAuthResult r;

	switch (act) {
	case MPOP_ACT_REPLY:
		break;
	case MPOP_ACT_CLOSE:
		g_string_append(reply, "<CLOSE>");
		break;
	case MPOP_ACT_AUTH:
		g_string_append_printf(reply, "<AUTH %s>", p->auth_user);
		r = fake_auth(p->auth_user, p->auth_pass);
		if (mpop_pop3_auth_done(p, r, reply) == MPOP_ACT_CLOSE)
			g_string_append(reply, "<CLOSE>");
		else if (r == MPOP_AUTH_OK)
			mpop_pop3_enter_transaction(p, &box->mb, p->auth_user, reply);
		g_assert_null(p->auth_pass);
		break;
	case MPOP_ACT_STREAM:
		g_string_append_printf(reply, "<STREAM %u %" G_GINT64_FORMAT ">", p->act_msg,
				       p->act_top_lines);
		break;
	case MPOP_ACT_UPDATE:
		g_string_append(reply, "<UPDATE>");
		g_assert_cmpint(mpop_pop3_update_done(p, TRUE, NULL, reply), ==, MPOP_ACT_CLOSE);
		break;
	case MPOP_ACT_STLS:
		g_string_append(reply, "<STLS>");
		break;
	case MPOP_ACT_LISTING:
		/* one line per step: the pieces must join into the same listing */
		while (!mpop_pop3_listing_step(p, reply, 1))
			;
		break;
	}
}

static void
run_conversation(const Exchange *ex, const MpopPop3Params *params, FakeBox *box)
{
	MpopPop3 p;
	g_autoptr(GString) reply = g_string_new(NULL);

	mpop_pop3_init(&p, params ? params : &default_params);
	mpop_pop3_greeting(&p, reply);
	g_assert_cmpstr(reply->str, ==, "+OK test ready.\r\n");
	for (; ex->send; ex++) {
		MpopAction act;
		g_string_truncate(reply, 0);
		act = mpop_pop3_feed(&p, ex->send, strlen(ex->send), reply);
		run_action(&p, box, act, reply);
		if (g_strcmp0(reply->str, ex->expect) != 0)
			g_error("after \"%s\": expected \"%s\", got \"%s\"", ex->send, ex->expect,
				reply->str);
	}
	mpop_pop3_clear(&p);
}

#define LOGIN                                                                                      \
	{"USER alice", "+OK Send your password.\r\n"},                                             \
	{                                                                                          \
		"PASS secret", "<AUTH alice>+OK Logged in, 3 messages (600 octets).\r\n"           \
	}

static void
test_login_and_stat(void)
{
	FakeBox box;
	static const Exchange ex[] = {
		{"STAT", "-ERR Command not valid in this state.\r\n"},
		{"PASS x", "-ERR Send USER first.\r\n"},
		LOGIN,
		{"STAT", "+OK 3 600\r\n"},
		{"stat", "+OK 3 600\r\n"},
		{"STAT x", "-ERR STAT takes no arguments.\r\n"},
		{"USER bob", "-ERR Command not valid in this state.\r\n"},
		{"PASS secret", "-ERR Command not valid in this state.\r\n"},
		{"NOOP", "+OK\r\n"},
		{"QUIT", "<UPDATE>+OK mpopd signing off (0 messages deleted).\r\n"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

static void
test_auth_failures(void)
{
	FakeBox box;
	static const Exchange ex[] = {
		{"USER alice", "+OK Send your password.\r\n"},
		{"PASS wrong", "<AUTH alice>-ERR [AUTH] Authentication failed.\r\n"},
		{"USER nosuchuser", "+OK Send your password.\r\n"},
		{"PASS wrong", "<AUTH nosuchuser>-ERR [AUTH] Authentication failed.\r\n"},
		{"USER temp", "+OK Send your password.\r\n"},
		{"PASS x", "<AUTH temp>-ERR [SYS/TEMP] Temporary authentication failure, try "
			   "again later.\r\n"},
		{"PASS secret", "-ERR Send USER first.\r\n"},
		{"USER", "-ERR USER needs exactly one argument: a user name.\r\n"},
		{"QUIT", "+OK mpopd signing off.\r\n<CLOSE>"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

static void
test_password_with_spaces(void)
{
	MpopPop3 p;
	g_autoptr(GString) reply = g_string_new(NULL);

	mpop_pop3_init(&p, &default_params);
	mpop_pop3_feed(&p, "USER alice", 10, reply);
	g_assert_cmpint(mpop_pop3_feed(&p, "PASS  two words ", 16, reply), ==, MPOP_ACT_AUTH);
	g_assert_cmpstr(p.auth_pass, ==, " two words ");
	g_assert_cmpstr(p.auth_user, ==, "alice");
	mpop_pop3_clear(&p);
}

static void
test_list_uidl(void)
{
	FakeBox box;
	static const Exchange ex[] = {
		LOGIN,
		{"LIST", "+OK 3 messages (600 octets)\r\n1 100\r\n2 200\r\n3 300\r\n.\r\n"},
		{"LIST 2", "+OK 2 200\r\n"},
		{"UIDL", "+OK Unique-ID listing follows\r\n1 uid-one\r\n2 uid-two\r\n3 "
			 "uid-three\r\n.\r\n"},
		{"UIDL 3", "+OK 3 uid-three\r\n"},
		{"DELE 2", "+OK Message 2 deleted.\r\n"},
		{"LIST", "+OK 2 messages (400 octets)\r\n1 100\r\n3 300\r\n.\r\n"},
		{"UIDL", "+OK Unique-ID listing follows\r\n1 uid-one\r\n3 uid-three\r\n.\r\n"},
		{"LIST 2", "-ERR Message is deleted.\r\n"},
		{"UIDL 2", "-ERR Message is deleted.\r\n"},
		{"RETR 2", "-ERR Message is deleted.\r\n"},
		{"DELE 2", "-ERR Message is deleted.\r\n"},
		{"STAT", "+OK 2 400\r\n"},
		{"RSET", "+OK 3 messages (600 octets)\r\n"},
		{"STAT", "+OK 3 600\r\n"},
		{"LIST 1 2", "-ERR Too many arguments.\r\n"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

/* RFC 1939 message numbers: 1..n, digits only; no wrap-around (L10). */
static void
test_strict_numbers(void)
{
	FakeBox box;
	MpopPop3Params params = default_params;
	static const Exchange ex[] = {
		LOGIN,
		{"LIST 0", "-ERR Invalid message number.\r\n"},
		{"LIST 4", "-ERR No such message.\r\n"},
		{"LIST 4294967297", "-ERR No such message.\r\n"},
		{"LIST 18446744073709551617", "-ERR Invalid message number.\r\n"},
		{"LIST -1", "-ERR Invalid message number.\r\n"},
		{"LIST +1", "-ERR Invalid message number.\r\n"},
		{"LIST 1x", "-ERR Invalid message number.\r\n"},
		{"LIST  1", "-ERR Too many arguments.\r\n"},
		{"RETR 1 2", "-ERR RETR needs exactly one message number.\r\n"},
		{"RETR", "-ERR RETR needs exactly one message number.\r\n"},
		{"DELE 1.0", "-ERR Invalid message number.\r\n"},
		{"LIST 1 ", "+OK 1 100\r\n"},
		{"LIST 01", "+OK 1 100\r\n"},
		{NULL, NULL},
	};

	params.max_bad_commands = 100;
	fake_box_init(&box);
	run_conversation(ex, &params, &box);
}

static void
test_retr_top(void)
{
	FakeBox box;
	static const Exchange ex[] = {
		LOGIN,
		{"RETR 1", "+OK 100 octets\r\n<STREAM 0 -1>"},
		{"retr 3", "+OK 300 octets\r\n<STREAM 2 -1>"},
		{"TOP 2 0", "+OK Top of message follows\r\n<STREAM 1 0>"},
		{"TOP 2 10", "+OK Top of message follows\r\n<STREAM 1 10>"},
		{"TOP 2", "-ERR TOP needs a message number and a line count.\r\n"},
		{"TOP 2 -1", "-ERR Invalid line count.\r\n"},
		{"TOP 9 1", "-ERR No such message.\r\n"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

static void
test_capa(void)
{
	FakeBox box;
	static const Exchange ex[] = {
		{"CAPA", "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			 "AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nUSER\r\nSASL "
			 "PLAIN\r\nIMPLEMENTATION mpopd\r\n.\r\n"},
		LOGIN,
		{"CAPA", "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			 "AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nUSER\r\nSASL "
			 "PLAIN\r\nIMPLEMENTATION mpopd\r\n.\r\n"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

static void
test_no_plaintext_without_tls(void)
{
	FakeBox box;
	MpopPop3Params params = default_params;
	static const Exchange ex[] = {
		{"CAPA", "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
			 "AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nSTLS\r\n"
			 "IMPLEMENTATION mpopd\r\n.\r\n"},
		{"USER alice", "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
			       "connections.\r\n"},
		{"STLS", "+OK Begin TLS negotiation now.\r\n<STLS>"},
		{NULL, NULL},
	};

	params.allow_plaintext = FALSE;
	params.tls_available = TRUE;
	fake_box_init(&box);
	run_conversation(ex, &params, &box);
}

static void
test_unknown_and_bad_limit(void)
{
	FakeBox box;
	MpopPop3Params params = default_params;
	static const Exchange ex[] = {
		{"FOO", "-ERR Unknown command.\r\n"},
		{"", "-ERR Unknown command.\r\n"},
		{"APOP alice 0123456789abcdef", "-ERR Unknown command.\r\n"},
		{"LAST", "-ERR Too many bad commands, closing connection.\r\n<CLOSE>"},
		{"NOOP", "-ERR Session is closed.\r\n<CLOSE>"},
		{NULL, NULL},
	};

	params.max_bad_commands = 4;
	fake_box_init(&box);
	run_conversation(ex, &params, &box);
}

/* Before a login, CAPA beyond two, AUTH lists beyond one and USER after USER count as bad
 * commands: trickling them keeps no connection open. After the login CAPA is free again. */
static void
test_no_progress_limit(void)
{
	FakeBox box;
	MpopPop3Params params = default_params;
	static const char capa[] = "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
				   "AUTH-RESP-CODE\r\nPIPELINING\r\nEXPIRE NEVER\r\nUSER\r\n"
				   "SASL PLAIN\r\nIMPLEMENTATION mpopd\r\n.\r\n";
	static const char list[] = "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n";
	static const char user[] = "+OK Send your password.\r\n";
	const Exchange ex[] = {
		{"CAPA", capa},
		{"AUTH", list},
		{"CAPA", capa},
		{"CAPA", capa}, /* 1 */
		{"USER a", user},
		{"USER b", user}, /* 2 */
		{"AUTH", list},	  /* 3 */
		{"CAPA", "-ERR Too many commands without a login, closing connection.\r\n<CLOSE>"},
		{NULL, NULL},
	};
	const Exchange ok[] = {
		{"CAPA", capa},
		{"CAPA", capa},
		{"CAPA", capa},
		{"CAPA", capa}, /* 1 */
		{"USER alice", user},
		{"PASS secret", "<AUTH alice>+OK Logged in, 3 messages (600 octets).\r\n"},
		{"CAPA", capa},
		{"CAPA", capa},
		{"CAPA", capa},
		{"CAPA", capa},
		{"CAPA", capa},
		{NULL, NULL},
	};

	params.max_bad_commands = 4;
	fake_box_init(&box);
	run_conversation(ex, &params, &box);
	fake_box_init(&box);
	run_conversation(ok, &params, &box);
}

static void
test_sasl_plain(void)
{
	FakeBox box;
	/* base64("\0alice\0secret"), base64("alice\0alice\0secret"), base64("bob\0alice\0secret")
	 */
	static const Exchange ex[] = {
		{"AUTH", "+OK Supported mechanisms follow\r\nPLAIN\r\n.\r\n"},
		{"AUTH CRAM-MD5", "-ERR Unsupported authentication mechanism.\r\n"},
		{"AUTH PLAIN", "+ \r\n"},
		{"*", "-ERR Authentication cancelled.\r\n"},
		{"AUTH PLAIN", "+ \r\n"},
		{"!!!", "-ERR [AUTH] Invalid base64 data.\r\n"},
		{"AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==",
		 "-ERR [AUTH] Authorization identity not permitted.\r\n"},
		{"AUTH PLAIN AGFsaWNlAHdyb25n",
		 "<AUTH alice>-ERR [AUTH] Authentication failed.\r\n"},
		{"AUTH PLAIN", "+ \r\n"},
		{"YWxpY2UAYWxpY2UAc2VjcmV0",
		 "<AUTH alice>+OK Logged in, 3 messages (600 octets).\r\n"},
		{"AUTH PLAIN AGFsaWNlAHNlY3JldA==", "-ERR Command not valid in this state.\r\n"},
		{NULL, NULL},
	};

	fake_box_init(&box);
	run_conversation(ex, NULL, &box);
}

static void
test_line_errors(void)
{
	MpopPop3 p;
	MpopPop3Params params = default_params;
	g_autoptr(GString) reply = g_string_new(NULL);

	params.max_bad_commands = 2;
	mpop_pop3_init(&p, &params);
	g_assert_cmpint(mpop_pop3_line_error(&p, MPOP_LINE_TOOLONG, reply), ==, MPOP_ACT_REPLY);
	g_assert_cmpstr(reply->str, ==, "-ERR Line too long.\r\n");
	g_string_truncate(reply, 0);
	g_assert_cmpint(mpop_pop3_line_error(&p, MPOP_LINE_INVALID, reply), ==, MPOP_ACT_CLOSE);
	g_assert_cmpstr(reply->str, ==, "-ERR Too many bad commands, closing connection.\r\n");
	mpop_pop3_clear(&p);
}

/* Replies never echo client bytes: a hostile argument leaves no trace in the reply. */
static void
test_no_echo(void)
{
	FakeBox box;
	MpopPop3 p;
	g_autoptr(GString) reply = g_string_new(NULL);
	static const char *const evil[] = {"XYZZY \x1b[31mEVIL", "LIST EVIL", "RETR EVIL",
					   "TOP 1 EVIL",	 "USER EVIL", "PASS EVIL",
					   "AUTH EVIL"};

	fake_box_init(&box);
	mpop_pop3_init(&p, &default_params);
	for (size_t i = 0; i < G_N_ELEMENTS(evil); i++)
		mpop_pop3_feed(&p, evil[i], strlen(evil[i]), reply);
	g_assert_null(strstr(reply->str, "EVIL"));
	g_assert_null(strchr(reply->str, '\x1b'));
	mpop_pop3_clear(&p);
}

static void
test_parse_number(void)
{
	static const struct {
		const char *s;
		gboolean ok;
		guint64 v;
	} cases[] = {
		{"1", TRUE, 1},
		{"0", TRUE, 0},
		{"18446744073709551615", TRUE, G_MAXUINT64},
		{"18446744073709551616", FALSE, 0},
		{"", FALSE, 0},
		{" 1", FALSE, 0},
		{"1 ", FALSE, 0},
		{"+1", FALSE, 0},
		{"-1", FALSE, 0},
		{"0x10", FALSE, 0},
		{"1e3", FALSE, 0},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint64 v = 777;
		gboolean ok = mpop_pop3_parse_number(cases[i].s, G_MAXUINT64, &v);
		g_assert_cmpint(ok, ==, cases[i].ok);
		if (ok)
			g_assert_cmpuint(v, ==, cases[i].v);
		else
			g_assert_cmpuint(v, ==, 777);
	}
	{
		guint64 v;
		g_assert_false(mpop_pop3_parse_number("11", 10, &v));
		g_assert_true(mpop_pop3_parse_number("10", 10, &v));
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/pop3/login-stat", test_login_and_stat);
	g_test_add_func("/pop3/auth-failures", test_auth_failures);
	g_test_add_func("/pop3/password-spaces", test_password_with_spaces);
	g_test_add_func("/pop3/list-uidl", test_list_uidl);
	g_test_add_func("/pop3/strict-numbers", test_strict_numbers);
	g_test_add_func("/pop3/retr-top", test_retr_top);
	g_test_add_func("/pop3/capa", test_capa);
	g_test_add_func("/pop3/no-plaintext", test_no_plaintext_without_tls);
	g_test_add_func("/pop3/bad-limit", test_unknown_and_bad_limit);
	g_test_add_func("/pop3/no-progress-limit", test_no_progress_limit);
	g_test_add_func("/pop3/sasl-plain", test_sasl_plain);
	g_test_add_func("/pop3/line-errors", test_line_errors);
	g_test_add_func("/pop3/no-echo", test_no_echo);
	g_test_add_func("/pop3/parse-number", test_parse_number);
	return g_test_run();
}
