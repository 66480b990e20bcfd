/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Configuration: one schema table drives loading, validation, the dump, the sample and the man
 * page. */
#include "config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdarg.h>
#include <string.h>

#include "mpopd-build.h"
#include "util.h"

/* A configuration file is small; a huge one is a mistake, not a configuration. */
#define CONFIG_MAX_SIZE (1024 * 1024)
#define EXCERPT_MAX 80
#define WRAP_COLUMNS 78

typedef enum {
	KT_STRING, /* a string; with choices: one of them, stored as the string */
	KT_UINT,   /* guint in min..max */
	KT_BOOL,
	KT_LIST,  /* char **, ';'-separated; with choices: each one of them */
	KT_ENUM,  /* int, one of choices */
	KT_FLAGS, /* guint bit set, a ';'-separated list of choices */
} KeyType;

enum {
	F_NONEMPTY = 1 << 0, /* a string or list that must not be empty */
	F_NODUP = 1 << 1,    /* a list in which no item may appear twice */
	F_PATH = 1 << 2,     /* an absolute path when not empty */
};

typedef struct {
	const char *name;
	int value;
} Choice;

/* Returns NULL when s is acceptable, else why not ("is not ..."). */
typedef const char *(*CheckFn)(const char *s);

typedef struct {
	const char *group;
	const char *key;
	KeyType type;
	const char *def; /* the default as key-file text, in canonical (dump) form */
	guint min, max;
	const Choice *choices; /* NULL-name terminated */
	CheckFn check;
	guint flags;
	size_t offset;
	const char *help;
} Key;

G_STATIC_ASSERT(sizeof(MpopMailboxFormat) == sizeof(int));
G_STATIC_ASSERT(sizeof(MpopLogLevel) == sizeof(int));

/* The backend names [auth] default and [user_auth] accept. Later work implements them; until
 * then auth.c answers an unbuilt one with TEMPFAIL, never DENIED. */
static const Choice auth_backends[] = {
	{"userlist"}, {"pam"},	   {"passwd"}, {"shadow"}, {"hostname"},
	{"email"},    {"central"}, {"plugin"}, {NULL},
};
static const Choice formats[] = {
	{"maildir", MPOP_FORMAT_MAILDIR}, {"mbox", MPOP_FORMAT_MBOX}, {NULL}};
static const Choice quotings[] = {{"mboxrd", MPOP_FROM_MBOXRD}, {"raw", MPOP_FROM_RAW}, {NULL}};
static const Choice locks[] = {{"dotlock", MPOP_LOCK_DOTLOCK},
			       {"fcntl", MPOP_LOCK_FCNTL},
			       {"flock", MPOP_LOCK_FLOCK},
			       {NULL}};
static const Choice mbox_modes[] = {{"snapshot", MPOP_MBOX_SNAPSHOT},
				    {"session-lock", MPOP_MBOX_SESSION_LOCK},
				    {"spool", MPOP_MBOX_SPOOL},
				    {NULL}};
static const Choice uidl_sources[] = {{"x-uidl"}, {"message-id"}, {"digest"}, {NULL}};
static const Choice log_levels[] = {{"err", MPOP_LOG_ERR},	 {"warning", MPOP_LOG_WARNING},
				    {"notice", MPOP_LOG_NOTICE}, {"info", MPOP_LOG_INFO},
				    {"debug", MPOP_LOG_DEBUG},	 {NULL}};

static const char *check_greeting(const char *s);
static const char *check_name(const char *s);
static const char *check_user(const char *s);
static const char *check_listen(const char *s);
static const char *check_pattern(const char *s);
static const char *check_line(const char *s);
static const char *check_header(const char *s);

#define OFF(field) offsetof(MpopConfig, field)

static const Key schema[] = {
	{"server", "greeting", KT_STRING, "mpopd ready.", .check = check_greeting,
	 .flags = F_NONEMPTY, .offset = OFF(greeting),
	 .help = "Text sent after \"+OK \" in the greeting (RFC 1939 section 4): printable ASCII, "
		 "at most 200 characters. Perl mpopd: $greeting."},
	{"server", "idle_timeout", KT_UINT, "600", 10, 86400, .offset = OFF(idle_timeout),
	 .help = "Seconds a client may stay silent before the session is closed without UPDATE "
		 "(nothing is deleted). RFC 1939 section 3 asks for at least 600; shorter timeouts "
		 "cut off slow clients. Perl mpopd: $timeout (10 there)."},
	{"server", "max_bad_commands", KT_UINT, "10", 1, 1000, .offset = OFF(max_bad_commands),
	 .help = "Unknown or malformed commands tolerated in one session; the next one is "
		 "answered with -ERR and the connection is closed."},
	{"server", "login_user", KT_STRING, "nobody", .check = check_name, .flags = F_NONEMPTY,
	 .offset = OFF(login_user),
	 .help = "Unprivileged user that runs the dialogue before authentication when privsep "
		 "is on and mpopd starts as root."},
	{"server", "login_chroot", KT_STRING, "/var/empty", .flags = F_PATH,
	 .offset = OFF(login_chroot),
	 .help = "Empty directory the pre-authentication process chroots into; empty: no "
		 "chroot."},
	{"server", "listen", KT_LIST, "0.0.0.0:110", .check = check_listen, .flags = F_NODUP,
	 .offset = OFF(listen),
	 .help = "Addresses the legacy daemon binds itself: numeric IPv4 host:port, "
		 "[IPv6]:port, or :port for every address; mpopd PORT replaces the port. Not "
		 "used when systemd or inetd passes the sockets. Perl mpopd: $port."},
	{"server", "pid_file", KT_STRING, "/run/mpopd.pid", .flags = F_PATH,
	 .offset = OFF(pid_file),
	 .help = "Where the legacy daemon writes its process id (mpopdctl reads it); empty: none. "
		 "Perl mpopd: $mpopd_pid_file."},
	{"server", "max_sessions", KT_UINT, "100", 1, 100000, .offset = OFF(max_sessions),
	 .help = "Concurrent sessions the daemon serves when it accepts connections itself; "
		 "further connections are closed at once. Perl mpopd: $max_servers."},
	{"server", "max_sessions_per_source", KT_UINT, "10", 1, 100000,
	 .offset = OFF(max_sessions_per_source),
	 .help = "Concurrent sessions from one client address."},
	{"server", "privsep", KT_BOOL, "true", .offset = OFF(privsep),
	 .help = "Run the pre-authentication dialogue in a child process that has dropped to "
		 "login_user. Turn it off only to debug."},

	{"mailbox", "format", KT_ENUM, "maildir", .choices = formats, .offset = OFF(format),
	 .help = "Mailbox format. Perl mpopd: $use_maildir."},
	{"mailbox", "location", KT_STRING, "", .check = check_pattern, .offset = OFF(location),
	 .help = "Where a user's mailbox is, as a pattern: %u the login name, %n its local part "
		 "(before '@'), %d its domain, %h the home directory, %s mail_spool_dir, %% a "
		 "percent sign. Empty: %h/Maildir for maildir, %s/%u for mbox. A mailbox given in "
		 "the user list wins. Perl mpopd: $mail_spool_dir, $path_to_homedir."},
	{"mailbox", "mail_spool_dir", KT_STRING, "/var/mail", .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(mail_spool_dir),
	 .help = "The mail spool directory, %s in location. Perl mpopd: $mail_spool_dir."},
	{"mailbox", "message_start", KT_STRING, "From\\s", .check = check_line, .flags = F_NONEMPTY,
	 .offset = OFF(message_start),
	 .help = "mbox: the line prefix that starts a message, a literal (not a regular "
		 "expression); \\s is a space. Perl mpopd: $message_start."},
	{"mailbox", "message_end", KT_STRING, "", .check = check_line, .offset = OFF(message_end),
	 .help = "mbox: empty means a message ends with the blank line before the next start "
		 "line; otherwise the literal line that ends each message. Perl mpopd: "
		 "$message_end."},
	{"mailbox", "from_quoting", KT_ENUM, "mboxrd", .choices = quotings,
	 .offset = OFF(from_quoting),
	 .help = "mbox: mboxrd removes one '>' from \">From \" lines (with any number of '>') "
		 "when sending; raw sends lines as stored."},
	{"mailbox", "mbox_locks", KT_FLAGS, "dotlock;fcntl", .choices = locks,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(mbox_locks),
	 .help = "mbox: the locks to take, always in the order dotlock (NFS-safe, link()-based), "
		 "fcntl, flock. Use the ones your delivery agent uses. Perl mpopd: the "
		 "<user>.lock dotlock."},
	{"mailbox", "lock_retries", KT_UINT, "10", 0, 1000, .offset = OFF(lock_retries),
	 .help = "mbox: extra attempts after the first while the mailbox is locked; then the "
		 "client gets -ERR [IN-USE]. Perl mpopd: $retry_on_lock."},
	{"mailbox", "lock_wait_ms", KT_UINT, "1000", 0, 60000, .offset = OFF(lock_wait_ms),
	 .help = "mbox: milliseconds between lock attempts."},
	{"mailbox", "lock_stale_age", KT_UINT, "300", 0, 86400, .offset = OFF(lock_stale_age),
	 .help = "mbox: seconds after which a dotlock counts as stale and is taken over; 0: "
		 "never."},
	{"mailbox", "mbox_mode", KT_ENUM, "snapshot", .choices = mbox_modes,
	 .offset = OFF(mbox_mode),
	 .help = "mbox: snapshot locks, indexes and unlocks, then verifies the file before "
		 "every read and at QUIT; session-lock holds the locks for the whole session; "
		 "spool copies the mailbox to spool_dir at login. Perl mpopd: $parse_to_disk."},
	{"mailbox", "spool_dir", KT_STRING, "/var/spool/mpopd", .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(spool_dir),
	 .help = "mbox_mode=spool: the directory for private copies. Perl mpopd: $mpopd_spool."},
	{"mailbox", "mail_privileged_group", KT_STRING, "mail", .check = check_name,
	 .offset = OFF(mail_privileged_group),
	 .help = "Group the session takes on only while it creates or removes a dotlock and "
		 "while UPDATE replaces an mbox, for spools such as Debian's root:mail 2775 "
		 "/var/mail (Dovecot's mail_privileged_group); the rest of the session runs "
		 "without it. Empty: none. Perl mpopd: $mailgroup."},
	{"mailbox", "uidl_source", KT_LIST, "x-uidl;message-id;digest", .choices = uidl_sources,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(uidl_source),
	 .help = "mbox: where a message's UIDL comes from, the first usable one wins: the "
		 "X-UIDL header, the Message-ID header, or a digest of the message. Perl "
		 "mpopd: the X-UIDL header it wrote, or an MD5 digest."},
	{"mailbox", "show_headers", KT_LIST, "", .check = check_header, .flags = F_NODUP,
	 .offset = OFF(show_headers),
	 .help = "Bookkeeping header fields (such as Status or X-UIDL) that are normally hidden "
		 "but should be sent to clients."},

	{"auth", "default", KT_STRING, "userlist", .choices = auth_backends,
	 .offset = OFF(auth_default),
	 .help = "Authentication backend for users without a [user_auth] entry. A backend this "
		 "build lacks answers -ERR [SYS/TEMP]. Perl mpopd: $auth_type."},
	{"auth", "userlist", KT_STRING, "/etc/mpopd/users", .flags = F_PATH,
	 .offset = OFF(userlist),
	 .help = "The user list of the userlist backend, lines of "
		 "name:crypt-hash:uid[:gid[:mailbox]]; mpopdctl passwd makes a hash. Perl mpopd: "
		 "$userlist."},
	{"auth", "pam_service", KT_STRING, "mpopd", .check = check_name, .flags = F_NONEMPTY,
	 .offset = OFF(pam_service),
	 .help = "PAM service name of the pam backend. Perl mpopd: $mpopd_pam_service."},

	{"log", "level", KT_ENUM, "info", .choices = log_levels, .offset = OFF(log_level),
	 .help = "Log records up to this priority. Perl mpopd: $debug."},
	{"log", "users", KT_LIST, "", .check = check_user, .flags = F_NODUP,
	 .offset = OFF(log_users),
	 .help = "Users whose sessions are logged at debug detail whatever the level. Perl mpopd: "
		 "%user_log."},
};

#define USER_AUTH_GROUP "user_auth"
#define USER_AUTH_HELP                                                                             \
	"Per-user backends: each key is a login name exactly as the client sends it, each "        \
	"value a backend name as for [auth] default. Perl mpopd: %user_auth."
#define USER_AUTH_EXAMPLE "alice=pam"

#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))

/* ---- value checks ---- */

static gboolean
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return TRUE;
	return FALSE;
}

static const char *
check_greeting(const char *s)
{
	if (strlen(s) > 200)
		return "is longer than 200 characters";
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return "is not printable ASCII";
	return NULL;
}

/* System user names and PAM service names: portable characters only. */
static const char *
check_name(const char *s)
{
	if (strlen(s) > 64 || s[0] == '-')
		return "is not a valid name";
	for (; *s; s++)
		if (!g_ascii_isalnum(*s) && !strchr("._-", *s))
			return "is not a valid name";
	return NULL;
}

static const char *
check_user(const char *s)
{
	if (!*s || strlen(s) > 255)
		return "is not a valid user name";
	for (; *s; s++)
		if (*s == ' ')
			return "is not a valid user name";
	return NULL;
}

static gboolean
valid_port(const char *s)
{
	guint64 v;
	return g_ascii_string_to_unsigned(s, 10, 1, 65535, &v, NULL);
}

static const char *
check_listen(const char *s)
{
	static const char why[] = "is not host:port, [IPv6]:port or :port with a numeric address";
	const char *colon = strrchr(s, ':');
	g_autofree char *host = NULL;
	unsigned char addr[16];

	if (!colon || !valid_port(colon + 1))
		return why;
	host = g_strndup(s, (gsize)(colon - s));
	if (!*host)
		return NULL;
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			return why;
		host[n - 1] = '\0';
		return inet_pton(AF_INET6, host + 1, addr) == 1 ? NULL : why;
	}
	return inet_pton(AF_INET, host, addr) == 1 ? NULL : why;
}

static const char *
check_pattern(const char *s)
{
	for (; *s; s++) {
		if (*s != '%')
			continue;
		s++;
		if (!*s || !strchr("unhds%", *s))
			return "has an unknown %-escape (known: %u %n %d %h %s %%)";
	}
	return NULL;
}

static const char *
check_line(const char *s)
{
	return strlen(s) > 200 ? "is longer than 200 characters" : NULL;
}

/* RFC 5322 section 3.6.8: field-name = 1*ftext, printable ASCII except ':'. */
static const char *
check_header(const char *s)
{
	if (!*s || strlen(s) > 200)
		return "is not a header field name";
	for (; *s; s++)
		if ((unsigned char)*s < 33 || (unsigned char)*s > 126 || *s == ':')
			return "is not a header field name";
	return NULL;
}

static const Choice *
find_choice(const Choice *choices, const char *name)
{
	for (const Choice *c = choices; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* The value of a name why_not() has already accepted. */
static int
choice_value(const Choice *choices, const char *name)
{
	const Choice *c = find_choice(choices, name);
	return c ? c->value : 0;
}

static char *
choice_names(const Choice *choices)
{
	GString *s = g_string_new(NULL);
	for (const Choice *c = choices; c->name; c++)
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", c->name);
	return g_string_free(s, FALSE);
}

/* Why a string (or a list item) is unacceptable for k, or NULL. */
static char *
why_not(const Key *k, const char *s, gboolean item)
{
	const char *why = NULL;

	if (has_control(s))
		why = "contains a control character";
	else if (!*s && (item || (k->flags & F_NONEMPTY)))
		why = "must not be empty";
	else if (*s && (k->flags & F_PATH) && s[0] != '/')
		why = "is not an absolute path";
	else if (k->choices && !find_choice(k->choices, s)) {
		g_autofree char *names = choice_names(k->choices);
		return g_strdup_printf("is not one of %s", names);
	} else if (k->check)
		why = k->check(s);
	return g_strdup(why);
}

/* ---- loading ---- */

/* GLib's parse errors quote the offending line: keep UTF-8 readable, drop control bytes. */
static char *
printable(const char *s)
{
	char *out = g_utf8_make_valid(s, -1);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return out;
}

static gboolean key_error(GError **error, const char *file, const char *group, const char *key,
			  const char *fmt, ...) G_GNUC_PRINTF(5, 6);

static gboolean
key_error(GError **error, const char *file, const char *group, const char *key, const char *fmt,
	  ...)
{
	g_autofree char *g = mpop_escape_excerpt(group, strlen(group), EXCERPT_MAX);
	g_autofree char *k = key ? mpop_escape_excerpt(key, strlen(key), EXCERPT_MAX) : NULL;
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: [%s]%s%s: %s", file, g, k ? " " : "",
		    k ? k : "", msg);
	return FALSE;
}

static gboolean
value_error(GError **error, const char *file, const Key *k, const char *value, const char *why)
{
	g_autofree char *v = mpop_escape_excerpt(value, strlen(value), EXCERPT_MAX);
	return key_error(error, file, k->group, k->key, "value \"%s\" %s", v, why);
}

static gboolean
parse_list(const Key *k, GKeyFile *kf, MpopConfig *cfg, const char *file, GError **error)
{
	g_autoptr(GError) e = NULL;
	gsize n = 0;
	g_auto(GStrv) items = g_key_file_get_string_list(kf, k->group, k->key, &n, &e);
	guint bits = 0;

	if (!items || e)
		return key_error(error, file, k->group, k->key, "invalid escape or encoding");
	if (n == 0 && (k->flags & F_NONEMPTY))
		return key_error(error, file, k->group, k->key, "the list must not be empty");
	for (gsize i = 0; i < n; i++) {
		g_autofree char *why = why_not(k, items[i], TRUE);
		if (why)
			return value_error(error, file, k, items[i], why);
		for (gsize j = 0; j < i && (k->flags & F_NODUP); j++)
			if (strcmp(items[i], items[j]) == 0)
				return value_error(error, file, k, items[i], "is listed twice");
		if (k->type == KT_FLAGS)
			bits |= (guint)choice_value(k->choices, items[i]);
	}
	if (k->type == KT_FLAGS)
		*FIELD(cfg, k, guint) = bits;
	else
		*FIELD(cfg, k, char **) = g_steal_pointer(&items);
	return TRUE;
}

static gboolean
parse_scalar(const Key *k, const char *raw, MpopConfig *cfg, const char *file, GError **error)
{
	guint64 v;

	switch (k->type) {
	case KT_UINT:
		if (!g_ascii_string_to_unsigned(raw, 10, 0, G_MAXUINT64, &v, NULL))
			return value_error(error, file, k, raw, "is not a number");
		if (v < k->min || v > k->max) {
			g_autofree char *why =
				g_strdup_printf("is out of range (%u to %u)", k->min, k->max);
			return value_error(error, file, k, raw, why);
		}
		*FIELD(cfg, k, guint) = (guint)v;
		return TRUE;
	case KT_BOOL:
		if (strcmp(raw, "true") != 0 && strcmp(raw, "false") != 0)
			return value_error(error, file, k, raw, "is not true or false");
		*FIELD(cfg, k, gboolean) = raw[0] == 't';
		return TRUE;
	case KT_ENUM: {
		g_autofree char *why = why_not(k, raw, FALSE);
		if (why)
			return value_error(error, file, k, raw, why);
		*FIELD(cfg, k, int) = choice_value(k->choices, raw);
		return TRUE;
	}
	case KT_STRING:
	case KT_LIST:
	case KT_FLAGS:
		break;
	}
	g_assert_not_reached();
}

static gboolean
parse_key(const Key *k, GKeyFile *kf, MpopConfig *cfg, const char *file, GError **error)
{
	g_autoptr(GError) e = NULL;
	g_autofree char *s = NULL;
	g_autofree char *why = NULL;

	if (k->type == KT_LIST || k->type == KT_FLAGS)
		return parse_list(k, kf, cfg, file, error);
	/* g_key_file_get_string() unescapes \s \\ ...; numbers and names are plain text. */
	s = g_key_file_get_string(kf, k->group, k->key, &e);
	if (!s || e) /* GLib returns a value and sets an error on a bad escape */
		return key_error(error, file, k->group, k->key, "invalid escape or encoding");
	if (k->type != KT_STRING)
		return parse_scalar(k, s, cfg, file, error);
	why = why_not(k, s, FALSE);
	if (why)
		return value_error(error, file, k, s, why);
	*FIELD(cfg, k, char *) = g_steal_pointer(&s);
	return TRUE;
}

static const Key *
find_key(const char *group, const char *key)
{
	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++)
		if (strcmp(schema[i].group, group) == 0 &&
		    (!key || strcmp(schema[i].key, key) == 0))
			return &schema[i];
	return NULL;
}

static gboolean
load_user_auth(GKeyFile *kf, MpopConfig *cfg, const char *file, GError **error)
{
	g_auto(GStrv) users = g_key_file_get_keys(kf, USER_AUTH_GROUP, NULL, NULL);

	for (char **u = users; u && *u; u++) {
		g_autofree char *backend = g_key_file_get_value(kf, USER_AUTH_GROUP, *u, NULL);
		g_autofree char *names = choice_names(auth_backends);
		g_autofree char *v = NULL;

		if (check_user(*u) || has_control(*u))
			return key_error(error, file, USER_AUTH_GROUP, *u, "not a valid user name");
		if (backend && find_choice(auth_backends, backend)) {
			g_hash_table_replace(cfg->user_auth, g_strdup(*u),
					     g_steal_pointer(&backend));
			continue;
		}
		v = backend ? mpop_escape_excerpt(backend, strlen(backend), EXCERPT_MAX) : NULL;
		return key_error(error, file, USER_AUTH_GROUP, *u, "value \"%s\" is not one of %s",
				 v ? v : "", names);
	}
	return TRUE;
}

/* Every group and key in the file must be known: a typo must not silently keep a default. */
static gboolean
check_known(GKeyFile *kf, const char *file, GError **error)
{
	g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

	for (char **g = groups; *g; g++) {
		g_auto(GStrv) keys = NULL;
		if (strcmp(*g, USER_AUTH_GROUP) == 0)
			continue;
		if (!find_key(*g, NULL))
			return key_error(error, file, *g, NULL, "unknown group");
		keys = g_key_file_get_keys(kf, *g, NULL, NULL);
		for (char **k = keys; k && *k; k++)
			if (!find_key(*g, *k))
				return key_error(error, file, *g, *k, "unknown key");
	}
	return TRUE;
}

/* GKeyFile hides localized keys ("greeting[de]=") from g_key_file_get_keys(); they would be
 * ignored silently, so refuse them. */
static gboolean
check_no_locale_keys(const char *data, const char *file, GError **error)
{
	g_auto(GStrv) lines = g_strsplit(data, "\n", -1);
	const char *group = "";

	for (char **l = lines; *l; l++) {
		const char *p = *l, *eq;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[') {
			group = p;
			continue;
		}
		eq = strchr(p, '=');
		if (*p == '#' || !eq || !memchr(p, '[', (size_t)(eq - p)))
			continue;
		g_autofree char *key = g_strstrip(g_strndup(p, (gsize)(eq - p)));
		g_autofree char *grp =
			g_strndup(group + (*group == '['), strcspn(group + (*group == '['), "]"));
		return key_error(error, file, grp, key, "localized keys are not supported");
	}
	return TRUE;
}

static MpopConfig *
load_keyfile(GKeyFile *kf, const char *file, GError **error)
{
	g_autoptr(MpopConfig) cfg = g_new0(MpopConfig, 1);
	g_autoptr(GKeyFile) defaults = g_key_file_new();

	cfg->path = g_strdup(file);
	cfg->user_auth = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	if (!check_known(kf, file, error))
		return NULL;
	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++)
		g_key_file_set_value(defaults, schema[i].group, schema[i].key, schema[i].def);
	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++) {
		const Key *k = &schema[i];
		GKeyFile *src = g_key_file_has_key(kf, k->group, k->key, NULL) ? kf : defaults;
		if (!parse_key(k, src, cfg, file, error))
			return NULL;
	}
	if (g_key_file_has_group(kf, USER_AUTH_GROUP) && !load_user_auth(kf, cfg, file, error))
		return NULL;
	return g_steal_pointer(&cfg);
}

MpopConfig *
mpop_config_load_data(const char *data, gsize len, const char *name, GError **error)
{
	g_autoptr(GKeyFile) kf = g_key_file_new();
	g_autoptr(GError) e = NULL;
	g_autofree char *text = NULL;

	if (len > CONFIG_MAX_SIZE || memchr(data, '\0', len)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: %s", name,
			    len > CONFIG_MAX_SIZE ? "file too large" : "file contains a NUL byte");
		return NULL;
	}
	text = g_strndup(data, len);
	if (!g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, &e)) {
		g_autofree char *msg = printable(e->message);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: %s", name, msg);
		return NULL;
	}
	if (!check_no_locale_keys(text, name, error))
		return NULL;
	return load_keyfile(kf, name, error);
}

MpopConfig *
mpop_config_new_default(void)
{
	MpopConfig *cfg = mpop_config_load_data("", 0, "(defaults)", NULL);
	g_assert(cfg);
	return cfg;
}

MpopConfig *
mpop_config_load(const char *path, gboolean must_exist, GError **error)
{
	g_autoptr(GError) e = NULL;
	g_autofree char *data = NULL;
	gsize len = 0;

	if (!path)
		path = MPOPD_DEFAULT_CONFIG;
	if (!g_file_get_contents(path, &data, &len, &e)) {
		if (!must_exist && g_error_matches(e, G_FILE_ERROR, G_FILE_ERROR_NOENT))
			return mpop_config_new_default();
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: %s", path, e->message);
		return NULL;
	}
	return mpop_config_load_data(data, len, path, error);
}

void
mpop_config_free(MpopConfig *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++) {
		if (schema[i].type == KT_STRING)
			g_free(*FIELD(cfg, &schema[i], char *));
		else if (schema[i].type == KT_LIST)
			g_strfreev(*FIELD(cfg, &schema[i], char **));
	}
	if (cfg->user_auth)
		g_hash_table_unref(cfg->user_auth);
	g_free(cfg->path);
	g_free(cfg);
}

const char *
mpop_config_auth_for_user(const MpopConfig *cfg, const char *user)
{
	/* user_auth may be NULL in a hand-built MpopConfig (tests of other modules). */
	const char *b = user && cfg->user_auth ? g_hash_table_lookup(cfg->user_auth, user) : NULL;
	return b ? b : cfg->auth_default;
}

gboolean
mpop_config_user_logged(const MpopConfig *cfg, const char *user)
{
	return user && cfg->log_users && g_strv_contains((const char *const *)cfg->log_users, user);
}

/* ---- output: dump, sample, man page ---- */

/* Key-file escaping that g_key_file_get_string() undoes; spaces at either end become \s
 * so that editors that strip trailing blanks cannot change a value. */
static void
append_escaped(GString *out, const char *s, gboolean in_list)
{
	size_t n = strlen(s), lead = strspn(s, " "), trail = 0;

	while (trail < n - lead && s[n - 1 - trail] == ' ')
		trail++;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' && (i < lead || i >= n - trail))
			g_string_append(out, "\\s");
		else if (c == '\\' || (c == ';' && in_list))
			g_string_append_printf(out, "\\%c", c);
		else if (c == '\n' || c == '\r' || c == '\t')
			g_string_append_printf(out, "\\%c",
					       c == '\n'   ? 'n'
					       : c == '\r' ? 'r'
							   : 't');
		else
			g_string_append_c(out, c);
	}
}

static const char *
choice_name(const Choice *choices, int value)
{
	for (const Choice *c = choices; c->name; c++)
		if (c->value == value)
			return c->name;
	return "?";
}

static void
append_value(GString *out, const Key *k, const MpopConfig *cfg)
{
	switch (k->type) {
	case KT_STRING:
		append_escaped(out, *FIELD(cfg, k, char *), FALSE);
		break;
	case KT_UINT:
		g_string_append_printf(out, "%u", *FIELD(cfg, k, guint));
		break;
	case KT_BOOL:
		g_string_append(out, *FIELD(cfg, k, gboolean) ? "true" : "false");
		break;
	case KT_ENUM:
		g_string_append(out, choice_name(k->choices, *FIELD(cfg, k, int)));
		break;
	case KT_LIST:
		for (char **i = *FIELD(cfg, k, char **); i && *i; i++) {
			if (i != *FIELD(cfg, k, char **))
				g_string_append_c(out, ';');
			append_escaped(out, *i, TRUE);
		}
		break;
	case KT_FLAGS: {
		gboolean first = TRUE;
		for (const Choice *c = k->choices; c->name; c++) {
			if (!(*FIELD(cfg, k, guint) & (guint)c->value))
				continue;
			g_string_append_printf(out, "%s%s", first ? "" : ";", c->name);
			first = FALSE;
		}
		break;
	}
	}
}

char *
mpop_config_dump(const MpopConfig *cfg)
{
	GString *out = g_string_new(NULL);
	g_autofree char *path = printable(cfg->path);
	g_autoptr(GList) users = NULL;

	if (cfg->user_auth)
		users = g_list_sort(g_hash_table_get_keys(cfg->user_auth), (GCompareFunc)strcmp);
	g_string_append_printf(out, "# mpopd effective configuration from %s\n", path);
	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++) {
		const Key *k = &schema[i];
		if (i == 0 || strcmp(k->group, schema[i - 1].group) != 0)
			g_string_append_printf(out, "\n[%s]\n", k->group);
		g_string_append_printf(out, "%s=", k->key);
		append_value(out, k, cfg);
		g_string_append_c(out, '\n');
	}
	g_string_append_printf(out, "\n[%s]\n", USER_AUTH_GROUP);
	/* Key names are literal in a key file: no escapes (check_user keeps them plain). */
	for (GList *l = users; l; l = l->next)
		g_string_append_printf(out, "%s=%s\n", (char *)l->data,
				       (char *)g_hash_table_lookup(cfg->user_auth, l->data));
	return g_string_free(out, FALSE);
}

static char *
type_text(const Key *k)
{
	g_autofree char *names = k->choices ? choice_names(k->choices) : NULL;

	switch (k->type) {
	case KT_STRING:
		return names ? g_strdup_printf("one of %s", names)
			     : g_strdup((k->flags & F_PATH) ? "an absolute path" : "a string");
	case KT_UINT:
		return g_strdup_printf("an integer from %u to %u", k->min, k->max);
	case KT_BOOL:
		return g_strdup("true or false");
	case KT_ENUM:
		return g_strdup_printf("one of %s", names);
	case KT_LIST:
		return names ? g_strdup_printf("a list of %s, separated by ';'", names)
			     : g_strdup("a list separated by ';'");
	case KT_FLAGS:
		return g_strdup_printf("a list of %s, separated by ';'", names);
	}
	g_assert_not_reached();
}

static void
append_wrapped_comment(GString *out, const char *text)
{
	g_auto(GStrv) words = g_strsplit(text, " ", -1);
	size_t col = 0;

	for (char **w = words; *w; w++) {
		if (col > 0 && col + 1 + strlen(*w) > WRAP_COLUMNS) {
			g_string_append_c(out, '\n');
			col = 0;
		}
		if (col == 0) {
			g_string_append(out, "# ");
			col = 2;
		} else {
			g_string_append_c(out, ' ');
			col++;
		}
		g_string_append(out, *w);
		col += strlen(*w);
	}
	g_string_append_c(out, '\n');
}

#define SAMPLE_HEADER                                                                              \
	"# mpopd.conf: configuration of mpopd(8), see mpopd.conf(5).\n"                            \
	"#\n"                                                                                      \
	"# Generated from the schema in src/config.c. Every key is listed with its help,\n"        \
	"# its type and its default value as a commented-out assignment: remove the '#'\n"         \
	"# and change the value to override a default. Values use GKeyFile escapes\n"              \
	"# (\\s a space, \\\\ a backslash, \\; a ';' inside a list).\n"

char *
mpop_config_sample(void)
{
	GString *out = g_string_new(SAMPLE_HEADER);

	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++) {
		const Key *k = &schema[i];
		g_autofree char *type = type_text(k);
		g_autofree char *typeline = g_strdup_printf("Type: %s.", type);
		if (i == 0 || strcmp(k->group, schema[i - 1].group) != 0)
			g_string_append_printf(out, "\n[%s]\n", k->group);
		g_string_append_c(out, '\n');
		append_wrapped_comment(out, k->help);
		append_wrapped_comment(out, typeline);
		g_string_append_printf(out, "#%s=%s\n", k->key, k->def);
	}
	g_string_append_printf(out, "\n[%s]\n\n", USER_AUTH_GROUP);
	append_wrapped_comment(out, USER_AUTH_HELP);
	g_string_append_printf(out, "#%s\n", USER_AUTH_EXAMPLE);
	return g_string_free(out, FALSE);
}

/* roff: a backslash is \e, a minus \-; a line must not start with a control character. */
static void
append_roff(GString *out, const char *s)
{
	if (*s == '.' || *s == '\'')
		g_string_append(out, "\\&");
	for (; *s; s++) {
		if (*s == '\\')
			g_string_append(out, "\\e");
		else if (*s == '-')
			g_string_append(out, "\\-");
		else
			g_string_append_c(out, *s);
	}
}

char *
mpop_config_man_section(void)
{
	GString *out = g_string_new(NULL);

	for (size_t i = 0; i < G_N_ELEMENTS(schema); i++) {
		const Key *k = &schema[i];
		g_autofree char *type = type_text(k);
		if (i == 0 || strcmp(k->group, schema[i - 1].group) != 0)
			g_string_append_printf(out, ".SS [%s]\n", k->group);
		g_string_append(out, ".TP\n\\fB");
		append_roff(out, k->key);
		g_string_append(out, "=\\fR\\fI");
		append_roff(out, k->def);
		g_string_append(out, "\\fR\n");
		append_roff(out, k->help);
		g_string_append(out, "\n.br\nType: ");
		append_roff(out, type);
		g_string_append(out, *k->def ? ".\n" : "; empty by default.\n");
	}
	g_string_append_printf(out, ".SS [%s]\n.TP\n\\fIuser\\fB=\\fR\\fIbackend\\fR\n",
			       USER_AUTH_GROUP);
	append_roff(out, USER_AUTH_HELP);
	g_string_append(out, "\n");
	return g_string_free(out, FALSE);
}
