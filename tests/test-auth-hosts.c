/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the hostname, email and central auth backends and the [host:NAME] groups: the host
 * chosen by TLS server name, local address or neither; e-mail login names and their case
 * rules; one host's password never opening another's account; the central spool; hostile
 * names, with every file the backends open recorded. */
#include "auth.h"
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- every open() the code under test makes (the backends read user lists with open()) */

static GPtrArray *opened;

typedef int (*OpenFn)(const char *, int, ...);

static int
traced_open(const char *sym, const char *path, int flags, va_list ap)
{
	OpenFn real = (OpenFn)dlsym(RTLD_NEXT, sym);
	unsigned mode = (flags & (0100 /* O_CREAT */ | 020000000 /* O_TMPFILE */))
				? va_arg(ap, unsigned)
				: 0;

	if (opened && path)
		g_ptr_array_add(opened, g_strdup(path));
	return real(path, flags, mode);
}

/* This file does not include <fcntl.h>, so both names can be defined here: which one the
 * library calls depends on _FILE_OFFSET_BITS. */
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);

int
open(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = traced_open("open", path, flags, ap);
	va_end(ap);
	return r;
}

int
open64(const char *path, int flags, ...)
{
	va_list ap;
	int r;

	va_start(ap, flags);
	r = traced_open("open64", path, flags, ap);
	va_end(ap);
	return r;
}

/* ---- fixture: two hosts, a default list, a central list, a decoy outside them all */

#define UID_A 2000
#define UID_B 3000
#define UID_D 4000
#define UID_C 5000

typedef struct {
	char *dir;
	char *conf_text;
	MpopConfig *cfg;
	char *a_list, *b_list, *d_list, *c_list;
} Fixture;

static char *hash_apw, *hash_bpw, *hash_other;

static void
write_file(const char *path, const char *text)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, text, -1, &error);
	g_assert_no_error(error);
}

/* Hostile names that a careless backend would turn into paths or list lookups elsewhere. */
static const char *const hostile[] = {
	"../../etc/passwd",
	"../decoy/users",
	"a/b",
	"",
	"*",
	"%",
	"x@..",
	"x@.",
	"@a.example",
	"x@",
	"bob@..",
	"bob@../decoy",
	"bob@a.example/../decoy",
	"bob@.a.example",
	".bob",
	"..",
	".",
	"bob\r",
	"bob\n",
	"bob@a.example\r",
	"%a.example",
	"bob@",
	"bob%",
	"bob@a.example@",
	"bob@decoy",
	"bob@DECOY",
};

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *a = NULL, *b = NULL, *d = NULL, *c = NULL, *decoy = NULL,
			*decoy_dir = NULL;
	GString *dl = g_string_new("");

	f->dir = g_dir_make_tmp("test-auth-hosts-XXXXXX", &error);
	g_assert_no_error(error);
	f->a_list = g_build_filename(f->dir, "a.users", NULL);
	f->b_list = g_build_filename(f->dir, "b.users", NULL);
	f->d_list = g_build_filename(f->dir, "default.users", NULL);
	f->c_list = g_build_filename(f->dir, "central.users", NULL);
	a = g_strdup_printf("bob:%s:%u\nAlice:%s:%u\nroot0:%s:0\ncarol:%s:%u::/custom/carol\n"
			    ".hidden:%s:%u\n",
			    hash_apw, UID_A, hash_apw, UID_A + 1, hash_apw, hash_apw, UID_A + 2,
			    hash_apw, UID_A + 3);
	b = g_strdup_printf("bob:%s:%u\n", hash_bpw, UID_B);
	d = g_strdup_printf("dave:%s:%u\nbob:%s:%u\n", hash_other, UID_D, hash_other, UID_D + 1);
	c = g_strdup_printf("erin:%s:%u\nroot:%s:0\nfrank:%s:%u:77:/custom/frank\n"
			    "bob@a.example:%s:%u\n",
			    hash_other, UID_C, hash_other, hash_other, UID_C + 1, hash_other,
			    UID_C + 2);
	write_file(f->a_list, a);
	write_file(f->b_list, b);
	write_file(f->d_list, d);
	write_file(f->c_list, c);
	/* The decoy: every hostile name, with the password the tests send. If any backend ever
	 * read it, a hostile login would succeed. */
	decoy_dir = g_build_filename(f->dir, "decoy", NULL);
	g_assert_cmpint(g_mkdir(decoy_dir, 0700), ==, 0);
	for (size_t i = 0; i < G_N_ELEMENTS(hostile); i++)
		if (*hostile[i] && !strpbrk(hostile[i], "\r\n:"))
			g_string_append_printf(dl, "%s:%s:%u\n", hostile[i], hash_apw,
					       6000 + (guint)i);
	decoy = g_build_filename(decoy_dir, "users", NULL);
	write_file(decoy, dl->str);
	g_string_free(dl, TRUE);

	f->conf_text = g_strdup_printf("[auth]\n"
				       "userlist=%s\n"
				       "central_userlist=%s\n"
				       "central_spool=%s/spool\n"
				       "[mailbox]\n"
				       "location=%s/default-mail/%%u\n"
				       "[host:a.example]\n"
				       "addresses=127.0.0.2;2001:db8::a\n"
				       "names=mail.a.example;Alias.A.Example\n"
				       "userlist=%s\n"
				       "location=%s/mail/%%d/%%n\n"
				       "[host:b.example]\n"
				       "addresses=127.0.0.3\n"
				       "userlist=%s\n"
				       "location=%s/mail/%%d/%%u/Maildir\n",
				       f->d_list, f->c_list, f->dir, f->dir, f->a_list, f->dir,
				       f->b_list, f->dir);
	f->cfg = mpop_config_load_data(f->conf_text, strlen(f->conf_text), "t.conf", &error);
	g_assert_no_error(error);
	opened = g_ptr_array_new_with_free_func(g_free);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	g_autofree char *rm = g_strdup_printf("rm -rf '%s'", f->dir);

	g_clear_pointer(&opened, g_ptr_array_unref);
	g_assert_cmpint(system(rm), ==, 0);
	mpop_config_free(f->cfg);
	g_free(f->conf_text);
	g_free(f->a_list);
	g_free(f->b_list);
	g_free(f->d_list);
	g_free(f->c_list);
	g_free(f->dir);
}

/* ---- queries */

typedef struct {
	struct sockaddr_storage local;
	socklen_t local_len;
	MpopAuthQuery q;
} Query;

/* local: a numeric address or NULL (a pipe); sni: the TLS server name or NULL. */
static void
query_init(Query *qq, const char *user, const char *password, const char *local, const char *sni)
{
	memset(qq, 0, sizeof *qq);
	qq->q.user = user;
	qq->q.password = password;
	qq->q.peer = local ? "192.0.2.99" : "local";
	qq->q.sni = sni;
	qq->q.session_id = "test";
	if (!local)
		return;
	qq->q.local = local;
	if (strchr(local, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&qq->local;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(110);
		g_assert_cmpint(inet_pton(AF_INET6, local, &in6->sin6_addr), ==, 1);
		qq->local_len = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&qq->local;
		in->sin_family = AF_INET;
		in->sin_port = htons(110);
		g_assert_cmpint(inet_pton(AF_INET, local, &in->sin_addr), ==, 1);
		qq->local_len = sizeof *in;
	}
	qq->q.local_addr = (const struct sockaddr *)&qq->local;
	qq->q.local_len = qq->local_len;
}

typedef struct {
	MpopAuthResult r;
	MpopAuthIdentity *id;
	char *reason;
	guint64 hashes;
} Outcome;

static void
outcome_clear(Outcome *o)
{
	mpop_auth_identity_free(o->id);
	g_free(o->reason);
	memset(o, 0, sizeof *o);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Outcome, outcome_clear)

static void
run(const MpopAuthOps *ops, const MpopConfig *cfg, const char *user, const char *password,
    const char *local, const char *sni, Outcome *o)
{
	Query qq;
	guint64 before = mpop_auth_hash_count();

	query_init(&qq, user, password, local, sni);
	memset(o, 0, sizeof *o);
	o->r = ops->authenticate(cfg, &qq.q, &o->id, &o->reason);
	o->hashes = mpop_auth_hash_count() - before;
	g_test_message("%s(%s, local %s, sni %s): %d %s", ops->name, user, local ? local : "-",
		       sni ? sni : "-", o->r, o->reason ? o->reason : "");
	if (o->r != MPOP_AUTH_OK)
		g_assert_null(o->id);
	else
		g_assert_nonnull(o->id);
}

static void
assert_ok(const Outcome *o, const char *user, uid_t uid, const char *mailbox)
{
	g_assert_cmpint(o->r, ==, MPOP_AUTH_OK);
	g_assert_cmpstr(o->id->user, ==, user);
	g_assert_cmpuint(o->id->uid, ==, uid);
	g_assert_cmpstr(o->id->mailbox, ==, mailbox);
	g_assert_cmpuint(o->hashes, ==, 1);
}

static void
assert_unknown(const Outcome *o)
{
	g_assert_cmpint(o->r, ==, MPOP_AUTH_UNKNOWN);
	g_assert_cmpuint(o->hashes, ==, 0);
}

static void
assert_denied(const Outcome *o)
{
	g_assert_cmpint(o->r, ==, MPOP_AUTH_DENIED);
	g_assert_cmpuint(o->hashes, ==, 1);
}

static char *
box(const Fixture *f, const char *rel)
{
	return g_build_filename(f->dir, rel, NULL);
}

/* ---- host selection */

static void
test_select(Fixture *f, gconstpointer data)
{
	static const struct {
		const char *local, *sni, *host;
	} cases[] = {
		{"127.0.0.2", NULL, "a.example"},
		{"127.0.0.3", NULL, "b.example"},
		{"127.0.0.1", NULL, NULL},
		{NULL, NULL, NULL},
		{"2001:db8::a", NULL, "a.example"},
		{"::ffff:127.0.0.2", NULL, "a.example"}, /* an IPv4 client on an IPv6 socket */
		{"2001:db8::b", NULL, NULL},
		/* the TLS server name wins over the address, in any case */
		{"127.0.0.3", "a.example", "a.example"},
		{"127.0.0.3", "mail.a.example", "a.example"},
		{"127.0.0.3", "MAIL.A.Example", "a.example"},
		{"127.0.0.1", "alias.a.example", "a.example"},
		{NULL, "b.example", "b.example"},
		/* a name no host has: the address decides */
		{"127.0.0.3", "c.example", "b.example"},
		{"127.0.0.1", "c.example", NULL},
		{"127.0.0.3", "", "b.example"},
		{NULL, "a.example.", NULL},
		{NULL, "x.a.example", NULL},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		Query qq;
		const MpopHostConfig *h;

		query_init(&qq, "bob", "pw", cases[i].local, cases[i].sni);
		h = mpop_auth_host_select(f->cfg, &qq.q);
		g_test_message("local %s sni %s", cases[i].local, cases[i].sni);
		g_assert_cmpstr(h ? h->name : NULL, ==, cases[i].host);
		/* the text alone (no socket address) selects the same host */
		qq.q.local_addr = NULL;
		qq.q.local_len = 0;
		h = mpop_auth_host_select(f->cfg, &qq.q);
		g_assert_cmpstr(h ? h->name : NULL, ==, cases[i].host);
	}
	/* the client's own address never selects a host */
	{
		Query qq;
		query_init(&qq, "bob", "pw", "127.0.0.1", NULL);
		qq.q.peer = "127.0.0.2";
		g_assert_null(mpop_auth_host_select(f->cfg, &qq.q));
	}
}

/* ---- hostname */

static void
test_hostname(Fixture *f, gconstpointer data)
{
	g_autofree char *a_bob = box(f, "mail/a.example/bob");
	g_autofree char *b_bob = box(f, "mail/b.example/bob@b.example/Maildir");
	g_autofree char *a_alice = box(f, "mail/a.example/Alice");
	g_auto(Outcome) o = {0};

	/* by local address */
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "apw", "127.0.0.2", NULL, &o);
	assert_ok(&o, "bob@a.example", UID_A, a_bob);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "bpw", "127.0.0.3", NULL, &o);
	assert_ok(&o, "bob@b.example", UID_B, b_bob);
	outcome_clear(&o);
	/* by TLS server name, whatever the address */
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "apw", "127.0.0.3", "Mail.A.Example", &o);
	assert_ok(&o, "bob@a.example", UID_A, a_bob);
	outcome_clear(&o);
	/* host A's bob with host B's password, and the other way round */
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "bpw", "127.0.0.2", NULL, &o);
	assert_denied(&o);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "apw", "127.0.0.3", NULL, &o);
	assert_denied(&o);
	outcome_clear(&o);
	/* the default host: [auth] userlist, the name as sent, [mailbox] location at login */
	run(&mpop_auth_hostname_ops, f->cfg, "dave", "other", "127.0.0.1", NULL, &o);
	assert_ok(&o, "dave", UID_D, NULL);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "bob", "apw", "127.0.0.1", NULL, &o);
	assert_denied(&o); /* the default list's bob has another password */
	outcome_clear(&o);
	/* a host's users are not the default host's and not another host's */
	run(&mpop_auth_hostname_ops, f->cfg, "dave", "other", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "Alice", "apw", "127.0.0.3", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	/* local parts exactly as listed */
	run(&mpop_auth_hostname_ops, f->cfg, "Alice", "apw", "127.0.0.2", NULL, &o);
	assert_ok(&o, "Alice@a.example", UID_A + 1, a_alice);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "alice", "apw", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, f->cfg, "BOB", "apw", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	/* uid 0 never logs in, and pays its hash */
	run(&mpop_auth_hostname_ops, f->cfg, "root0", "apw", "127.0.0.2", NULL, &o);
	assert_denied(&o);
	outcome_clear(&o);
	/* a mailbox in the list wins over the host's location */
	run(&mpop_auth_hostname_ops, f->cfg, "carol", "apw", "127.0.0.2", NULL, &o);
	assert_ok(&o, "carol@a.example", UID_A + 2, "/custom/carol");
	outcome_clear(&o);
	/* a listed name that is not a safe path component never becomes %n */
	run(&mpop_auth_hostname_ops, f->cfg, ".hidden", "apw", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
}

/* %h is the home of the list entry's uid; without one the login cannot go on: TEMPFAIL (a
 * configuration problem), never DENIED. */
static void
test_hostname_home(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) t = g_string_new(f->conf_text);
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;
	g_autofree char *list = box(f, "h.users");
	g_autofree char *text = NULL;
	const struct passwd *pw = getpwnam("nobody"); /* not uid 0, which never logs in */
	g_auto(Outcome) o = {0};

	g_assert_nonnull(pw);
	g_assert_null(getpwuid(54321));
	text = g_strdup_printf("me:%s:%u\nghost:%s:54321\n", hash_apw, (guint)pw->pw_uid, hash_apw);
	write_file(list, text);
	g_string_append_printf(t,
			       "[host:h.example]\naddresses=127.0.0.4\nuserlist=%s\n"
			       "location=%%h/mail/%%d/%%n\n",
			       list);
	cfg = mpop_config_load_data(t->str, t->len, "t.conf", &error);
	g_assert_no_error(error);
	run(&mpop_auth_hostname_ops, cfg, "me", "apw", "127.0.0.4", NULL, &o);
	g_assert_cmpint(o.r, ==, MPOP_AUTH_OK);
	g_assert_cmpstr(o.id->home, ==, pw->pw_dir);
	g_autofree char *want = g_strconcat(pw->pw_dir, "/mail/h.example/me", NULL);
	g_assert_cmpstr(o.id->mailbox, ==, want);
	outcome_clear(&o);
	run(&mpop_auth_hostname_ops, cfg, "ghost", "apw", "127.0.0.4", NULL, &o);
	g_assert_cmpint(o.r, ==, MPOP_AUTH_TEMPFAIL);
	g_assert_nonnull(strstr(o.reason, "home"));
}

/* ---- email */

static void
test_email(Fixture *f, gconstpointer data)
{
	static const struct {
		const char *user, *password, *local;
		MpopAuthResult r;
		const char *canonical;
		guint uid;
		const char *mailbox; /* relative to the fixture dir */
	} cases[] = {
		{"bob@a.example", "apw", NULL, MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		{"bob%a.example", "apw", NULL, MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		/* domains in any case, and any of the host's names */
		{"bob@A.EXAMPLE", "apw", NULL, MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		{"bob@Mail.A.example", "apw", NULL, MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		{"bob%alias.a.example", "apw", NULL, MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		{"bob@b.example", "bpw", NULL, MPOP_AUTH_OK, "bob@b.example", UID_B,
		 "mail/b.example/bob@b.example/Maildir"},
		/* the domain picks the host, not the address the client reached */
		{"bob@b.example", "bpw", "127.0.0.2", MPOP_AUTH_OK, "bob@b.example", UID_B,
		 "mail/b.example/bob@b.example/Maildir"},
		/* local parts exactly as the list has them */
		{"Alice@a.example", "apw", NULL, MPOP_AUTH_OK, "Alice@a.example", UID_A + 1,
		 "mail/a.example/Alice"},
		{"alice@a.example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		{"BOB@a.example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		/* one host's password never opens another host's account */
		{"bob@b.example", "apw", NULL, MPOP_AUTH_DENIED},
		{"bob@a.example", "bpw", NULL, MPOP_AUTH_DENIED},
		{"bob@a.example", "wrong", NULL, MPOP_AUTH_DENIED},
		{"dave@a.example", "other", NULL, MPOP_AUTH_UNKNOWN},
		/* a domain no host has */
		{"bob@c.example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		{"bob@example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		/* the last separator splits: "a%b" is the local part, not in the list */
		{"bob%x@a.example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		{"bob@x%a.example", "apw", NULL, MPOP_AUTH_UNKNOWN},
		/* a bare name: as hostname, by address or the default host */
		{"dave", "other", NULL, MPOP_AUTH_OK, "dave", UID_D, NULL},
		{"bob", "apw", "127.0.0.2", MPOP_AUTH_OK, "bob@a.example", UID_A,
		 "mail/a.example/bob"},
		{"bob", "bpw", "127.0.0.3", MPOP_AUTH_OK, "bob@b.example", UID_B,
		 "mail/b.example/bob@b.example/Maildir"},
		{"dave", "other", "127.0.0.2", MPOP_AUTH_UNKNOWN},
		{"root0@a.example", "apw", NULL, MPOP_AUTH_DENIED},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_auto(Outcome) o = {0};
		g_autofree char *mb = NULL;

		run(&mpop_auth_email_ops, f->cfg, cases[i].user, cases[i].password,
		    cases[i].local ? cases[i].local : "127.0.0.1", NULL, &o);
		g_assert_cmpint(o.r, ==, cases[i].r);
		if (o.r == MPOP_AUTH_UNKNOWN)
			assert_unknown(&o);
		else if (o.r == MPOP_AUTH_DENIED)
			assert_denied(&o);
		if (o.r != MPOP_AUTH_OK)
			continue;
		mb = cases[i].mailbox ? box(f, cases[i].mailbox) : NULL;
		assert_ok(&o, cases[i].canonical, cases[i].uid, mb);
	}
}

/* [auth] domain_separators: only the listed characters split. */
static void
test_email_separators(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;
	g_autoptr(GString) t = g_string_new(f->conf_text);
	g_auto(Outcome) o = {0};

	/* the [auth] group is the first: add the key to it */
	g_string_replace(t, "[auth]\n", "[auth]\ndomain_separators=+\n", 1);
	cfg = mpop_config_load_data(t->str, t->len, "t.conf", &error);
	g_assert_no_error(error);
	run(&mpop_auth_email_ops, cfg, "bob+a.example", "apw", "127.0.0.1", NULL, &o);
	g_assert_cmpint(o.r, ==, MPOP_AUTH_OK);
	g_assert_cmpstr(o.id->user, ==, "bob@a.example");
	outcome_clear(&o);
	/* '@' is no separator now: a bare name for the default host, which lacks it */
	run(&mpop_auth_email_ops, cfg, "bob@a.example", "apw", "127.0.0.1", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	/* ... and on host A's address, a local part with '@' is never one of its users */
	run(&mpop_auth_email_ops, cfg, "bob@a.example", "apw", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
}

/* ---- central */

static void
test_central(Fixture *f, gconstpointer data)
{
	g_autofree char *erin = box(f, "spool/erin");
	g_auto(Outcome) o = {0};

	run(&mpop_auth_central_ops, f->cfg, "erin", "other", "127.0.0.2", "a.example", &o);
	assert_ok(&o, "erin", UID_C, erin);
	outcome_clear(&o);
	run(&mpop_auth_central_ops, f->cfg, "erin", "apw", NULL, NULL, &o);
	assert_denied(&o);
	outcome_clear(&o);
	run(&mpop_auth_central_ops, f->cfg, "root", "other", NULL, NULL, &o);
	assert_denied(&o);
	outcome_clear(&o);
	run(&mpop_auth_central_ops, f->cfg, "Erin", "other", NULL, NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	run(&mpop_auth_central_ops, f->cfg, "bob", "apw", "127.0.0.2", NULL, &o);
	assert_unknown(&o);
	outcome_clear(&o);
	run(&mpop_auth_central_ops, f->cfg, "frank", "other", NULL, NULL, &o);
	assert_ok(&o, "frank", UID_C + 1, "/custom/frank");
	g_assert_cmpuint(o.id->gid, ==, 77);
}

/* ---- in a chain */

/* mpop_auth_check() with [auth] default=email;central: central is asked only when email does
 * not know the user, never after a wrong password. */
static void
test_chain(Fixture *f, gconstpointer data)
{
	g_autoptr(GString) t = g_string_new(f->conf_text);
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;
	static const struct {
		const char *user, *password;
		MpopAuthResult r;
		const char *backend, *reason;
	} cases[] = {
		{"bob@a.example", "apw", MPOP_AUTH_OK, "email"},
		{"erin", "other", MPOP_AUTH_OK, "central"},
		/* central's bob@a.example has this password, but email knows the user first */
		{"bob@a.example", "other", MPOP_AUTH_DENIED, NULL, "wrong password"},
		{"nobody@c.example", "other", MPOP_AUTH_DENIED, NULL,
		 "unknown user (email, central)"},
		{"x@..", "other", MPOP_AUTH_DENIED, NULL, "unknown user (email, central)"},
		{"../../etc/passwd", "apw", MPOP_AUTH_DENIED, NULL, "invalid user name"},
	};

	g_string_replace(t, "[auth]\n", "[auth]\ndefault=email;central\n", 1);
	cfg = mpop_config_load_data(t->str, t->len, "t.conf", &error);
	g_assert_no_error(error);
	g_assert_true(mpop_auth_check_config(cfg, &error));
	g_assert_no_error(error);
	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(MpopAuthIdentity) id = NULL;
		g_autofree char *reason = NULL;
		guint64 before = mpop_auth_hash_count();
		Query qq;

		query_init(&qq, cases[i].user, cases[i].password, "127.0.0.1", NULL);
		g_assert_cmpint(mpop_auth_check(cfg, &qq.q, &id, &reason), ==, cases[i].r);
		/* one hash, whoever answered */
		g_assert_cmpuint(mpop_auth_hash_count() - before, ==, 1);
		if (cases[i].r == MPOP_AUTH_OK)
			g_assert_cmpstr(id->ops->name, ==, cases[i].backend);
		else
			g_assert_cmpstr(reason, ==, cases[i].reason);
	}
}

/* ---- hostile names */

/* Everything opened since the fixture was built is one of the configured lists. */
static void
assert_only_lists_opened(const Fixture *f)
{
	for (guint i = 0; i < opened->len; i++) {
		const char *p = opened->pdata[i];
		g_test_message("opened %s", p);
		/* libnss_systemd (getpwuid_r for the home directory) opens "/" with O_PATH to
		 * resolve paths from: it reads nothing there */
		if (strcmp(p, "/") == 0)
			continue;
		g_assert_true(strcmp(p, f->a_list) == 0 || strcmp(p, f->b_list) == 0 ||
			      strcmp(p, f->d_list) == 0 || strcmp(p, f->c_list) == 0);
	}
}

static void
test_hostile(Fixture *f, gconstpointer data)
{
	const MpopAuthOps *const ops[] = {&mpop_auth_hostname_ops, &mpop_auth_email_ops,
					  &mpop_auth_central_ops};
	const char *const locals[] = {NULL, "127.0.0.1", "127.0.0.2"};
	g_autofree char *longname = g_strnfill(300, 'a');
	g_autofree char *longmail = g_strconcat(longname, "@a.example", NULL);
	g_autofree char *longdomain = g_strconcat("bob@", longname, ".example", NULL);
	g_autoptr(GPtrArray) names = g_ptr_array_new();

	for (size_t i = 0; i < G_N_ELEMENTS(hostile); i++)
		g_ptr_array_add(names, (gpointer)hostile[i]);
	g_ptr_array_add(names, longname);
	g_ptr_array_add(names, longmail);
	g_ptr_array_add(names, longdomain);

	for (size_t b = 0; b < G_N_ELEMENTS(ops); b++) {
		for (size_t l = 0; l < G_N_ELEMENTS(locals); l++) {
			for (guint i = 0; i < names->len; i++) {
				g_auto(Outcome) o = {0};
				/* the decoy's password, and host A's */
				run(ops[b], f->cfg, names->pdata[i], "apw", locals[l], NULL, &o);
				assert_unknown(&o);
			}
		}
	}
	assert_only_lists_opened(f);
	g_assert_cmpuint(opened->len, >, 0);
	/* mpop_auth_check() does not even show these to a backend */
	g_assert_false(mpop_auth_user_name_acceptable(""));
	g_assert_false(mpop_auth_user_name_acceptable("a/b"));
	g_assert_false(mpop_auth_user_name_acceptable("../../etc/passwd"));
	g_assert_false(mpop_auth_user_name_acceptable("bob\r"));
	g_assert_false(mpop_auth_user_name_acceptable(longname));
}

/* Names that pass as logins but whose mailbox would leave the host's root are refused at
 * login, before a list is read for them. */
static void
test_hostile_mailboxes(Fixture *f, gconstpointer data)
{
	g_autofree char *root = box(f, "mail/");

	/* Every successful login of this fixture lands under the host's root. */
	static const char *const ok_names[] = {"bob@a.example", "bob%A.example", "Alice@a.example",
					       "bob@b.example"};
	for (size_t i = 0; i < G_N_ELEMENTS(ok_names); i++) {
		g_auto(Outcome) o = {0};
		run(&mpop_auth_email_ops, f->cfg, ok_names[i], i == 3 ? "bpw" : "apw", NULL, NULL,
		    &o);
		g_assert_cmpint(o.r, ==, MPOP_AUTH_OK);
		g_assert_true(g_str_has_prefix(o.id->mailbox, root));
		g_assert_null(strstr(o.id->mailbox, "/."));
	}
	assert_only_lists_opened(f);
}

/* ---- config */

static void
test_config_hosts(Fixture *f, gconstpointer data)
{
	const MpopHostConfig *a = &f->cfg->hosts[0];
	g_autofree char *dump = mpop_config_dump(f->cfg);
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) again = NULL;
	g_autofree char *dump2 = NULL;

	g_assert_cmpuint(f->cfg->n_hosts, ==, 2);
	g_assert_cmpstr(a->name, ==, "a.example");
	g_assert_cmpuint(g_strv_length(a->names), ==, 2);
	/* names are kept lowercase */
	g_assert_cmpstr(a->names[1], ==, "alias.a.example");
	g_assert_cmpstr(a->addresses[1], ==, "2001:db8::a");
	g_assert_cmpstr(f->cfg->hosts[1].name, ==, "b.example");
	g_assert_cmpstr(f->cfg->domain_separators, ==, "@%");
	/* the dump reads back to the same configuration */
	g_assert_nonnull(strstr(dump, "\n[host:a.example]\naddresses=127.0.0.2;2001:db8::a\n"));
	again = mpop_config_load_data(dump, strlen(dump), "dump", &error);
	g_assert_no_error(error);
	dump2 = mpop_config_dump(again);
	/* the first line names the file it came from */
	g_assert_cmpstr(strchr(dump2, '\n'), ==, strchr(dump, '\n'));
}

static const struct {
	const char *text;
	const char *error; /* a glob */
} config_errors[] = {
	{"[host:x.example]\nuserlist=/u\nlocation=/m/%n\nuser_list=/v\n",
	 "t.conf: [host:x.example] user_list: unknown key"},
	{"[host:x.example]\nlocation=/m/%n\n", "t.conf: [host:x.example] userlist: is required"},
	{"[host:x.example]\nuserlist=/u\n", "t.conf: [host:x.example] location: is required"},
	{"[host:x.example]\nuserlist=u\nlocation=/m/%n\n",
	 "t.conf: [host:x.example] userlist: value \"u\" is not an absolute path"},
	{"[host:x.example]\nuserlist=/u\nlocation=m/%n\n",
	 "t.conf: [host:x.example] location: value \"m/%n\" is not an absolute path*"},
	{"[host:x.example]\nuserlist=/u\nlocation=/m/%x\n",
	 "t.conf: [host:x.example] location: value \"/m/%x\" has an unknown %-escape*"},
	{"[host:X.example]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:X.example]: NAME is not lowercase"},
	{"[host:]\nuserlist=/u\nlocation=/m/%n\n", "t.conf: [host:]: NAME is not a DNS name*"},
	{"[host:a..b]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:a..b]: NAME is not a DNS name*"},
	{"[host:-a.example]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:-a.example]: NAME is not a DNS name*"},
	{"[host:a_b]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:a_b]: NAME is not a DNS name*"},
	{"[host:a/b]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:a/b]: NAME is not a DNS name*"},
	{"[host:a.example.]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:a.example.]: NAME is not a DNS name*"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\nnames=a..b\n",
	 "t.conf: [host:x] names: value \"a..b\" is not a DNS name*"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\nnames=*.example\n",
	 "t.conf: [host:x] names: value \"*.example\" is not a DNS name*"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=127.0.0.256\n",
	 "t.conf: [host:x] addresses: value \"127.0.0.256\" is not a numeric IPv4 or IPv6 address"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=fe80::1%lo\n",
	 "t.conf: [host:x] addresses: value \"fe80::1%lo\" is not a numeric*"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=localhost\n",
	 "t.conf: [host:x] addresses: value \"localhost\" is not a numeric*"},
	/* an address or a name claimed twice */
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=127.0.0.2\n"
	 "[host:y]\nuserlist=/u\nlocation=/m/%n\naddresses=127.0.0.2\n",
	 "t.conf: [host:y] addresses: value \"127.0.0.2\" also belongs to [host:x]"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=127.0.0.2\n"
	 "[host:y]\nuserlist=/u\nlocation=/m/%n\naddresses=::ffff:127.0.0.2\n",
	 "t.conf: [host:y] addresses: value \"::ffff:127.0.0.2\" also belongs to [host:x]"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\naddresses=2001:db8::1;2001:DB8:0::1\n",
	 "t.conf: [host:x] addresses: value \"2001:DB8:0::1\" is listed twice"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\n"
	 "[host:y]\nuserlist=/u\nlocation=/m/%n\nnames=X\n",
	 "t.conf: [host:y] names: value \"x\" also belongs to [host:x]"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\nnames=mail.example\n"
	 "[host:mail.example]\nuserlist=/u\nlocation=/m/%n\n",
	 "t.conf: [host:mail.example] names: value \"mail.example\" also belongs to [host:x]"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\nnames=a.example;A.Example\n",
	 "t.conf: [host:x] names: value \"a.example\" is listed twice"},
	{"[host:x]\nuserlist=/u\nlocation=/m/%n\nnames=x\n",
	 "t.conf: [host:x] names: value \"x\" is listed twice"},
	{"[hosts:x]\nuserlist=/u\n", "t.conf: [hosts:x]: unknown group"},
	{"[auth]\ndomain_separators=\n",
	 "t.conf: [auth] domain_separators: value \"\" must not be*"},
	{"[auth]\ndomain_separators=@.\n",
	 "t.conf: [auth] domain_separators: value \"@.\" is not punctuation*"},
	{"[auth]\ndomain_separators=@a\n",
	 "t.conf: [auth] domain_separators: value \"@a\" is not punctuation*"},
	{"[auth]\ndomain_separators=@%@\n",
	 "t.conf: [auth] domain_separators: value \"@%@\" lists a character twice"},
	{"[auth]\ncentral_spool=spool\n",
	 "t.conf: [auth] central_spool: value \"spool\" is not an absolute path"},
	{"[auth]\ncentral_userlist=users\n",
	 "t.conf: [auth] central_userlist: value \"users\" is not an absolute path"},
};

static void
test_config_errors(void)
{
	for (size_t i = 0; i < G_N_ELEMENTS(config_errors); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = mpop_config_load_data(
			config_errors[i].text, strlen(config_errors[i].text), "t.conf", &error);
		g_test_message("%s", config_errors[i].text);
		g_assert_null(cfg);
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
		g_test_message("-> %s", error->message);
		g_assert_true(g_pattern_match_simple(config_errors[i].error, error->message));
	}
}

static void
test_check_config(void)
{
	static const struct {
		const char *text;
		gboolean hosts_ok, central_ok;
	} cases[] = {
		{"", TRUE, FALSE},
		{"[auth]\nuserlist=\n", FALSE, FALSE},
		{"[auth]\nuserlist=\n[host:x]\nuserlist=/u\nlocation=/m/%n\n", TRUE, FALSE},
		{"[auth]\ncentral_userlist=/c\n", TRUE, FALSE},
		{"[auth]\ncentral_userlist=/c\ncentral_spool=/s\n", TRUE, TRUE},
	};

	for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(MpopConfig) cfg = mpop_config_load_data(
			cases[i].text, strlen(cases[i].text), "t.conf", &error);
		g_assert_no_error(error);
		g_assert_cmpint(mpop_auth_hostname_ops.check_config(cfg, NULL), ==,
				cases[i].hosts_ok);
		g_assert_cmpint(mpop_auth_email_ops.check_config(cfg, NULL), ==, cases[i].hosts_ok);
		g_assert_cmpint(mpop_auth_central_ops.check_config(cfg, &error), ==,
				cases[i].central_ok);
		if (!cases[i].central_ok)
			g_assert_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG);
	}
}

int
main(int argc, char **argv)
{
	g_autoptr(GError) error = NULL;
	int r;

	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	/* sha512crypt: quicker than the default, and the backends do not care */
	hash_apw = mpop_auth_make_hash("apw", "$6$", &error);
	g_assert_no_error(error);
	hash_bpw = mpop_auth_make_hash("bpw", "$6$", &error);
	g_assert_no_error(error);
	hash_other = mpop_auth_make_hash("other", "$6$", &error);
	g_assert_no_error(error);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD("/auth-hosts/select", test_select);
	ADD("/auth-hosts/hostname", test_hostname);
	ADD("/auth-hosts/hostname-home", test_hostname_home);
	ADD("/auth-hosts/email", test_email);
	ADD("/auth-hosts/email-separators", test_email_separators);
	ADD("/auth-hosts/central", test_central);
	ADD("/auth-hosts/chain", test_chain);
	ADD("/auth-hosts/hostile", test_hostile);
	ADD("/auth-hosts/hostile-mailboxes", test_hostile_mailboxes);
	ADD("/auth-hosts/config", test_config_hosts);
	g_test_add_func("/auth-hosts/config-errors", test_config_errors);
	g_test_add_func("/auth-hosts/check-config", test_check_config);
	r = g_test_run();
	g_free(hash_apw);
	g_free(hash_bpw);
	g_free(hash_other);
	return r;
}
