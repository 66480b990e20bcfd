/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The pure POP3 protocol engine: (state, line) -> (reply, action). No syscalls. */
#include "pop3.h"
#include "util.h"

#include <string.h>

#define MAX_ARGS 3

typedef struct {
	const char *args[MAX_ARGS]; /* pointers into a private copy of the line */
	guint n_args;
	gboolean bad_syntax; /* empty argument (double space) */
	const char *rest;    /* everything after "CMD " (PASS keeps spaces) */
} MpopArgs;

typedef MpopAction (*MpopCmdFn)(MpopPop3 *p, const MpopArgs *a, GString *reply);

typedef struct {
	const char *name;
	MpopCmdFn fn;
	guint auth : 1;	 /* valid in AUTHORIZATION */
	guint trans : 1; /* valid in TRANSACTION */
} MpopCommand;

static void
reply_line(GString *reply, const char *text)
{
	g_string_append(reply, text);
	g_string_append(reply, "\r\n");
}

static void
wipe_free(char **s)
{
	if (*s) {
		explicit_bzero(*s, strlen(*s));
		g_clear_pointer(s, g_free);
	}
}

void
mpop_pop3_init(MpopPop3 *p, const MpopPop3Params *params)
{
	memset(p, 0, sizeof(*p));
	p->params = *params;
	p->state = MPOP_STATE_AUTHORIZATION;
}

void
mpop_pop3_clear(MpopPop3 *p)
{
	g_clear_pointer(&p->user, g_free);
	g_clear_pointer(&p->auth_user, g_free);
	wipe_free(&p->auth_pass);
}

void
mpop_pop3_greeting(MpopPop3 *p, GString *reply)
{
	g_string_append_printf(reply, "+OK %s\r\n", p->params.greeting);
}

gboolean
mpop_pop3_parse_number(const char *s, guint64 max, guint64 *out_value)
{
	guint64 v = 0;

	if (!s || !*s)
		return FALSE;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return FALSE;
		guint64 d = (guint64)(*c - '0');
		if (v > (G_MAXUINT64 - d) / 10)
			return FALSE;
		v = v * 10 + d;
	}
	if (v > max)
		return FALSE;
	*out_value = v;
	return TRUE;
}

/* Count a bad command; past the limit the session ends with a single -ERR. */
static MpopAction
bad_command(MpopPop3 *p, const char *text, GString *reply)
{
	p->bad_commands++;
	if (p->params.max_bad_commands && p->bad_commands >= p->params.max_bad_commands) {
		reply_line(reply, "-ERR Too many bad commands, closing connection.");
		p->state = MPOP_STATE_CLOSED;
		return MPOP_ACT_CLOSE;
	}
	reply_line(reply, text);
	return MPOP_ACT_REPLY;
}

/* RFC 3206 [AUTH]: the client should prompt for TLS rather than retry the password. */
static const char no_plaintext[] =
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections.";

static gboolean
plaintext_ok(const MpopPop3 *p)
{
	return p->params.allow_plaintext || p->params.tls_active;
}

/* Before a login, commands that get the client no closer to one (CAPA and the mechanism
 * list beyond what a client needs, USER after USER) count toward the bad-command limit: a
 * connection cannot idle along on them. TRUE when the limit is reached (the -ERR is queued). */
static gboolean
no_progress(MpopPop3 *p, gboolean free_probe, GString *reply)
{
	if (p->state != MPOP_STATE_AUTHORIZATION || free_probe)
		return FALSE;
	p->bad_commands++;
	if (!p->params.max_bad_commands || p->bad_commands < p->params.max_bad_commands)
		return FALSE;
	reply_line(reply, "-ERR Too many commands without a login, closing connection.");
	p->state = MPOP_STATE_CLOSED;
	return TRUE;
}

/* CAPA before and after STLS (RFC 2595 §4), and one AUTH list, are what a client needs. */
#define FREE_CAPA 2
#define FREE_AUTH_LISTS 1

/* RFC 2449 §5: capabilities valid in AUTHORIZATION are announced in both states. */
static MpopAction
cmd_capa(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (no_progress(p, ++p->capa_count <= FREE_CAPA, reply))
		return MPOP_ACT_CLOSE;
	reply_line(reply, "+OK Capability list follows");
	reply_line(reply, "TOP");
	reply_line(reply, "UIDL");
	reply_line(reply, "RESP-CODES");
	reply_line(reply, "AUTH-RESP-CODE");
	reply_line(reply, "PIPELINING");
	reply_line(reply, "EXPIRE NEVER");
	if (plaintext_ok(p)) {
		reply_line(reply, "USER");
		reply_line(reply, "SASL PLAIN");
	}
	if (p->params.tls_available && !p->params.tls_active &&
	    p->state == MPOP_STATE_AUTHORIZATION)
		reply_line(reply, "STLS");
	reply_line(reply, "IMPLEMENTATION mpopd");
	reply_line(reply, ".");
	return MPOP_ACT_REPLY;
}

static MpopAction
cmd_user(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (!plaintext_ok(p))
		return bad_command(p, no_plaintext, reply);
	if (a->n_args != 1 || a->bad_syntax)
		return bad_command(p, "-ERR USER needs exactly one argument: a user name.", reply);
	if (no_progress(p, !p->user_given, reply))
		return MPOP_ACT_CLOSE;
	g_free(p->user);
	p->user = g_strdup(a->args[0]);
	p->user_given = TRUE;
	/* Same answer for every name: nothing to enumerate (original bug S9). */
	reply_line(reply, "+OK Send your password.");
	return MPOP_ACT_REPLY;
}

static MpopAction
start_auth(MpopPop3 *p, const char *user, const char *pass)
{
	g_free(p->auth_user);
	p->auth_user = g_strdup(user);
	wipe_free(&p->auth_pass);
	p->auth_pass = g_strdup(pass);
	return MPOP_ACT_AUTH;
}

static MpopAction
cmd_pass(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (!plaintext_ok(p))
		return bad_command(p, no_plaintext, reply);
	if (!p->user_given)
		return bad_command(p, "-ERR Send USER first.", reply);
	if (!a->rest || !*a->rest)
		return bad_command(p, "-ERR PASS needs an argument.", reply);
	p->user_given = FALSE;
	return start_auth(p, p->user, a->rest);
}

/* RFC 4616: message = [authzid] NUL authcid NUL passwd. */
static MpopAction
sasl_plain_response(MpopPop3 *p, const char *b64, GString *reply)
{
	g_autofree guchar *raw = NULL;
	gsize len = 0;
	const char *authz, *authc, *pass;
	const char *end;
	MpopAction act;

	p->sasl_wait = FALSE;
	if (strcmp(b64, "*") == 0) {
		reply_line(reply, "-ERR Authentication cancelled.");
		return MPOP_ACT_REPLY;
	}
	if (strcmp(b64, "=") == 0 || !*b64) {
		return bad_command(p, "-ERR [AUTH] Invalid SASL PLAIN response.", reply);
	}
	for (const char *c = b64; *c; c++) {
		if (!g_ascii_isalnum(*c) && *c != '+' && *c != '/' && *c != '=')
			return bad_command(p, "-ERR [AUTH] Invalid base64 data.", reply);
	}
	raw = g_base64_decode(b64, &len);
	if (!raw || len < 2)
		return bad_command(p, "-ERR [AUTH] Invalid SASL PLAIN response.", reply);
	end = (const char *)raw + len;
	authz = (const char *)raw;
	authc = memchr(authz, '\0', len);
	pass = authc ? memchr(authc + 1, '\0', (size_t)(end - authc - 1)) : NULL;
	if (!authc || !pass || memchr(pass + 1, '\0', (size_t)(end - pass - 1))) {
		explicit_bzero(raw, len);
		return bad_command(p, "-ERR [AUTH] Invalid SASL PLAIN response.", reply);
	}
	authc++;
	{
		g_autofree char *pw = g_strndup(pass + 1, (gsize)(end - pass - 1));
		if (*authz && strcmp(authz, authc) != 0) {
			explicit_bzero(pw, strlen(pw));
			explicit_bzero(raw, len);
			reply_line(reply, "-ERR [AUTH] Authorization identity not permitted.");
			return MPOP_ACT_REPLY;
		}
		g_free(p->user);
		p->user = g_strdup(authc);
		act = start_auth(p, authc, pw);
		explicit_bzero(pw, strlen(pw));
	}
	explicit_bzero(raw, len);
	return act;
}

/* RFC 5034 §4: AUTH mechanism [initial-response]. */
static MpopAction
cmd_auth(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (a->n_args == 0) {
		if (no_progress(p, ++p->auth_lists <= FREE_AUTH_LISTS, reply))
			return MPOP_ACT_CLOSE;
		reply_line(reply, "+OK Supported mechanisms follow");
		if (plaintext_ok(p))
			reply_line(reply, "PLAIN");
		reply_line(reply, ".");
		return MPOP_ACT_REPLY;
	}
	if (a->bad_syntax || a->n_args > 2)
		return bad_command(p, "-ERR Invalid AUTH arguments.", reply);
	if (g_ascii_strcasecmp(a->args[0], "PLAIN") != 0)
		return bad_command(p, "-ERR Unsupported authentication mechanism.", reply);
	if (!plaintext_ok(p))
		return bad_command(p, no_plaintext, reply);
	p->user_given = FALSE;
	if (a->n_args == 2)
		return sasl_plain_response(p, a->args[1], reply);
	p->sasl_wait = TRUE;
	reply_line(reply, "+ ");
	return MPOP_ACT_REPLY;
}

static MpopAction
cmd_stls(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (p->params.tls_active)
		return bad_command(p, "-ERR TLS is already active.", reply);
	if (!p->params.tls_available)
		return bad_command(p, "-ERR STLS is not available.", reply);
	if (a->n_args)
		return bad_command(p, "-ERR STLS takes no arguments.", reply);
	reply_line(reply, "+OK Begin TLS negotiation now.");
	p->user_given = FALSE;
	return MPOP_ACT_STLS;
}

static MpopAction
cmd_quit(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (p->state == MPOP_STATE_TRANSACTION)
		return MPOP_ACT_UPDATE; /* RFC 1939 §6: UPDATE only after QUIT here */
	reply_line(reply, "+OK mpopd signing off.");
	p->state = MPOP_STATE_CLOSED;
	return MPOP_ACT_CLOSE;
}

static MpopAction
cmd_noop(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	if (a->n_args)
		return bad_command(p, "-ERR NOOP takes no arguments.", reply);
	reply_line(reply, "+OK");
	return MPOP_ACT_REPLY;
}

static MpopAction
cmd_stat(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	guint n;
	guint64 octets;

	if (a->n_args)
		return bad_command(p, "-ERR STAT takes no arguments.", reply);
	mpop_mailbox_stat(p->mb, &n, &octets);
	g_string_append_printf(reply, "+OK %u %" G_GUINT64_FORMAT "\r\n", n, octets);
	return MPOP_ACT_REPLY;
}

/* Resolve a message-number argument: RFC 1939 numbers start at 1 and deleted messages
 * may not be referenced (§5 DELE). Returns the 0-based index or -1 with the reply set. */
static gint64
message_arg(MpopPop3 *p, const char *arg, GString *reply)
{
	guint64 n;

	if (!mpop_pop3_parse_number(arg, G_MAXUINT64, &n) || n == 0) {
		p->bad_commands++;
		reply_line(reply, "-ERR Invalid message number.");
		return -1;
	}
	if (n > p->mb->n_msgs) {
		reply_line(reply, "-ERR No such message.");
		return -1;
	}
	if (p->mb->msgs[n - 1].deleted) {
		reply_line(reply, "-ERR Message is deleted.");
		return -1;
	}
	return (gint64)(n - 1);
}

/* Past the bad-command limit after an invalid number argument. */
static MpopAction
after_number_error(MpopPop3 *p, GString *reply)
{
	if (p->params.max_bad_commands && p->bad_commands >= p->params.max_bad_commands) {
		reply_line(reply, "-ERR Too many bad commands, closing connection.");
		p->state = MPOP_STATE_CLOSED;
		return MPOP_ACT_CLOSE;
	}
	return MPOP_ACT_REPLY;
}

typedef enum { LISTING_SIZE, LISTING_UIDL } MpopListing;

static MpopAction
listing(MpopPop3 *p, const MpopArgs *a, GString *reply, MpopListing kind)
{
	MpopMailbox *mb = p->mb;
	gint64 i;

	if (a->n_args > 1 || a->bad_syntax)
		return bad_command(p, "-ERR Too many arguments.", reply);
	if (a->n_args == 1) {
		i = message_arg(p, a->args[0], reply);
		if (i < 0)
			return after_number_error(p, reply);
		if (kind == LISTING_SIZE)
			g_string_append_printf(reply,
					       "+OK %" G_GINT64_FORMAT " %" G_GUINT64_FORMAT "\r\n",
					       i + 1, mb->msgs[i].size);
		else
			g_string_append_printf(reply, "+OK %" G_GINT64_FORMAT " %s\r\n", i + 1,
					       mb->msgs[i].uidl);
		return MPOP_ACT_REPLY;
	}
	if (kind == LISTING_SIZE) {
		guint n;
		guint64 octets;
		mpop_mailbox_stat(mb, &n, &octets);
		g_string_append_printf(reply, "+OK %u messages (%" G_GUINT64_FORMAT " octets)\r\n",
				       n, octets);
	} else {
		reply_line(reply, "+OK Unique-ID listing follows");
	}
	/* A maildrop of any size is listed in bounded pieces by mpop_pop3_listing_step(). */
	p->list_uidl = kind == LISTING_UIDL;
	p->list_next = 0;
	return MPOP_ACT_LISTING;
}

gboolean
mpop_pop3_listing_step(MpopPop3 *p, GString *reply, guint max_lines)
{
	MpopMailbox *mb = p->mb;
	guint lines = 0;

	for (; p->list_next < mb->n_msgs && lines < max_lines; p->list_next++) {
		const MpopMessage *m = &mb->msgs[p->list_next];
		if (m->deleted)
			continue;
		if (p->list_uidl)
			g_string_append_printf(reply, "%u %s\r\n", p->list_next + 1, m->uidl);
		else
			g_string_append_printf(reply, "%u %" G_GUINT64_FORMAT "\r\n",
					       p->list_next + 1, m->size);
		lines++;
	}
	if (p->list_next < mb->n_msgs)
		return FALSE;
	reply_line(reply, ".");
	return TRUE;
}

static MpopAction
cmd_list(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	return listing(p, a, reply, LISTING_SIZE);
}

static MpopAction
cmd_uidl(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	return listing(p, a, reply, LISTING_UIDL);
}

static MpopAction
cmd_retr(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	gint64 i;

	if (a->n_args != 1 || a->bad_syntax)
		return bad_command(p, "-ERR RETR needs exactly one message number.", reply);
	i = message_arg(p, a->args[0], reply);
	if (i < 0)
		return after_number_error(p, reply);
	p->act_msg = (guint)i;
	p->act_top_lines = -1;
	p->retr_count++;
	p->retr_octets += p->mb->msgs[i].size;
	g_string_append_printf(reply, "+OK %" G_GUINT64_FORMAT " octets\r\n", p->mb->msgs[i].size);
	return MPOP_ACT_STREAM;
}

static MpopAction
cmd_top(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	guint64 lines;
	gint64 i;

	/* RFC 1939 §7: both arguments are required; the line count is non-negative. */
	if (a->n_args != 2 || a->bad_syntax)
		return bad_command(p, "-ERR TOP needs a message number and a line count.", reply);
	if (!mpop_pop3_parse_number(a->args[1], G_MAXINT64, &lines))
		return bad_command(p, "-ERR Invalid line count.", reply);
	i = message_arg(p, a->args[0], reply);
	if (i < 0)
		return after_number_error(p, reply);
	p->act_msg = (guint)i;
	p->act_top_lines = (gint64)lines;
	p->top_count++;
	reply_line(reply, "+OK Top of message follows");
	return MPOP_ACT_STREAM;
}

static MpopAction
cmd_dele(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	gint64 i;

	if (a->n_args != 1 || a->bad_syntax)
		return bad_command(p, "-ERR DELE needs exactly one message number.", reply);
	i = message_arg(p, a->args[0], reply);
	if (i < 0)
		return after_number_error(p, reply);
	if (!mpop_mailbox_dele(p->mb, (guint)i)) {
		reply_line(reply, "-ERR Message is deleted.");
		return MPOP_ACT_REPLY;
	}
	g_string_append_printf(reply, "+OK Message %" G_GINT64_FORMAT " deleted.\r\n", i + 1);
	return MPOP_ACT_REPLY;
}

static MpopAction
cmd_rset(MpopPop3 *p, const MpopArgs *a, GString *reply)
{
	guint n;
	guint64 octets;

	if (a->n_args)
		return bad_command(p, "-ERR RSET takes no arguments.", reply);
	mpop_mailbox_rset(p->mb);
	mpop_mailbox_stat(p->mb, &n, &octets);
	g_string_append_printf(reply, "+OK %u messages (%" G_GUINT64_FORMAT " octets)\r\n", n,
			       octets);
	return MPOP_ACT_REPLY;
}

static const MpopCommand commands[] = {
	{"CAPA", cmd_capa, 1, 1}, {"USER", cmd_user, 1, 0}, {"PASS", cmd_pass, 1, 0},
	{"AUTH", cmd_auth, 1, 0}, {"STLS", cmd_stls, 1, 0}, {"QUIT", cmd_quit, 1, 1},
	{"NOOP", cmd_noop, 0, 1}, {"STAT", cmd_stat, 0, 1}, {"LIST", cmd_list, 0, 1},
	{"UIDL", cmd_uidl, 0, 1}, {"RETR", cmd_retr, 0, 1}, {"TOP", cmd_top, 0, 1},
	{"DELE", cmd_dele, 0, 1}, {"RSET", cmd_rset, 0, 1},
};

/* RFC 1939 §3: keyword and arguments separated by single spaces. Trailing blanks are
 * tolerated (some clients send them); an empty argument in between is a syntax error. */
static void
split_args(char *args, MpopArgs *out)
{
	size_t len = strlen(args);

	while (len > 0 && (args[len - 1] == ' ' || args[len - 1] == '\t'))
		args[--len] = '\0';
	if (len == 0)
		return;
	for (char *tok = args;;) {
		char *sp = strchr(tok, ' ');
		if (sp)
			*sp = '\0';
		if (*tok == '\0')
			out->bad_syntax = TRUE;
		if (out->n_args < MAX_ARGS)
			out->args[out->n_args++] = tok;
		else
			out->bad_syntax = TRUE;
		if (!sp)
			break;
		tok = sp + 1;
	}
}

MpopAction
mpop_pop3_feed(MpopPop3 *p, const char *line, size_t len, GString *reply)
{
	g_autofree char *copy = NULL;
	g_autofree char *rest = NULL;
	MpopArgs a = {0};
	char *sp;
	MpopAction act;

	if (p->state == MPOP_STATE_CLOSED) {
		reply_line(reply, "-ERR Session is closed.");
		return MPOP_ACT_CLOSE;
	}
	copy = g_strndup(line, len);
	if (p->sasl_wait) {
		act = sasl_plain_response(p, copy, reply);
		explicit_bzero(copy, len);
		return act;
	}
	sp = strchr(copy, ' ');
	if (sp) {
		*sp = '\0';
		rest = g_strdup(sp + 1);
		a.rest = rest;
		split_args(sp + 1, &a);
	}
	act = MPOP_ACT_REPLY;
	for (size_t i = 0; i < G_N_ELEMENTS(commands); i++) {
		const MpopCommand *c = &commands[i];
		if (g_ascii_strcasecmp(copy, c->name) != 0)
			continue;
		if ((p->state == MPOP_STATE_AUTHORIZATION && !c->auth) ||
		    (p->state == MPOP_STATE_TRANSACTION && !c->trans))
			act = bad_command(p, "-ERR Command not valid in this state.", reply);
		else
			act = c->fn(p, &a, reply);
		goto out;
	}
	act = bad_command(p, "-ERR Unknown command.", reply);
out:
	if (rest)
		explicit_bzero(rest, strlen(rest));
	explicit_bzero(copy, len);
	return act;
}

MpopAction
mpop_pop3_line_error(MpopPop3 *p, MpopLineStatus status, GString *reply)
{
	p->sasl_wait = FALSE;
	if (status == MPOP_LINE_TOOLONG)
		return bad_command(p, "-ERR Line too long.", reply);
	return bad_command(p, "-ERR Invalid command (NUL byte).", reply);
}

MpopAction
mpop_pop3_auth_done(MpopPop3 *p, MpopAuthResult result, GString *reply)
{
	wipe_free(&p->auth_pass);
	switch (result) {
	case MPOP_AUTH_OK:
		return MPOP_ACT_REPLY;
	case MPOP_AUTH_TEMPFAIL:
		reply_line(reply, "-ERR [SYS/TEMP] Temporary authentication failure, try again "
				  "later.");
		return MPOP_ACT_REPLY;
	case MPOP_AUTH_DENIED:
	case MPOP_AUTH_UNKNOWN:
		break;
	}
	/* RFC 3206 [AUTH]: the same text for unknown users and wrong passwords. */
	return bad_command(p, "-ERR [AUTH] Authentication failed.", reply);
}

void
mpop_pop3_enter_transaction(MpopPop3 *p, MpopMailbox *mb, const char *user, GString *reply)
{
	guint n;
	guint64 octets;

	p->mb = mb;
	p->state = MPOP_STATE_TRANSACTION;
	p->bad_commands = 0;
	g_free(p->user);
	p->user = g_strdup(user);
	mpop_mailbox_stat(mb, &n, &octets);
	g_string_append_printf(
		reply, "+OK Logged in, %u messages (%" G_GUINT64_FORMAT " octets).\r\n", n, octets);
}

MpopAction
mpop_pop3_open_failed(MpopPop3 *p, const GError *error, GString *reply)
{
	if (error && error->code == MPOP_ERROR_IN_USE)
		reply_line(reply, "-ERR [IN-USE] Mailbox is locked by another session.");
	else if (error && error->code == MPOP_ERROR_PERM)
		reply_line(reply, "-ERR [SYS/PERM] Cannot open the mailbox.");
	else
		reply_line(reply, "-ERR [SYS/TEMP] Cannot open the mailbox, try again later.");
	p->state = MPOP_STATE_CLOSED;
	return MPOP_ACT_CLOSE;
}

void
mpop_pop3_stream_failed(MpopPop3 *p, const GError *error, GString *reply)
{
	if (error && error->code == MPOP_ERROR_CHANGED)
		reply_line(reply, "-ERR [SYS/TEMP] Mailbox was changed by another program.");
	else
		reply_line(reply, "-ERR [SYS/TEMP] Cannot read the message.");
}

MpopAction
mpop_pop3_update_done(MpopPop3 *p, gboolean ok, const GError *error, GString *reply)
{
	guint64 octets;
	guint deleted = p->mb ? mpop_mailbox_deleted_count(p->mb, &octets) : 0;

	if (ok)
		g_string_append_printf(reply, "+OK mpopd signing off (%u messages deleted).\r\n",
				       deleted);
	else
		reply_line(reply, "-ERR [SYS/TEMP] Some deleted messages were not removed.");
	p->state = MPOP_STATE_CLOSED;
	return MPOP_ACT_CLOSE;
}
