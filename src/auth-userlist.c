/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "userlist" auth backend: a file of name:crypt-hash:uid[:gid[:mailbox]] lines. */
#include "auth.h"
#include "log.h"
#include "mailbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file is read afresh for every login; anything this big is not a user list. */
#define USERLIST_MAX_BYTES (16u * 1024 * 1024)
#define USERLIST_MAX_FIELDS 5

void
mpop_userlist_entry_clear(MpopUserlistEntry *e)
{
	if (!e)
		return;
	g_free(e->name);
	if (e->hash) {
		explicit_bzero(e->hash, strlen(e->hash));
		g_free(e->hash);
	}
	g_free(e->mailbox);
	memset(e, 0, sizeof *e);
}

static gboolean
has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return TRUE;
	return FALSE;
}

static gboolean
line_is_blank_or_comment(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0' || *s == '#';
}

/* Fields: name, hash and uid are required. An empty gid or mailbox field means "absent",
 * so "bob:HASH:1000::/srv/mail/bob" sets a mailbox without a gid. */
static int
parse_fields(char **f, guint n, MpopUserlistEntry *out)
{
	guint32 uid, gid = (guint32)-1;

	if (n < 3 || n > USERLIST_MAX_FIELDS)
		return -EINVAL;
	if (!*f[0] || has_control_chars(f[0]) || !*f[1] || has_control_chars(f[1]))
		return -EINVAL;
	if (!mpop_auth_parse_id(f[2], &uid))
		return -EINVAL;
	if (n >= 4 && *f[3] && !mpop_auth_parse_id(f[3], &gid))
		return -EINVAL;
	if (n == 5 && *f[4] && (f[4][0] != '/' || has_control_chars(f[4])))
		return -EINVAL;
	out->name = g_strdup(f[0]);
	out->hash = g_strdup(f[1]);
	out->uid = (uid_t)uid;
	out->gid = (gid_t)gid;
	out->mailbox = n == 5 && *f[4] ? g_strdup(f[4]) : NULL;
	return 0;
}

int
mpop_userlist_parse_line(const char *line, size_t len, MpopUserlistEntry *out)
{
	g_autofree char *copy = NULL;
	g_auto(GStrv) fields = NULL;
	int r;

	if (!line)
		return -EINVAL;
	/* One line, LF or CRLF terminated or not at all. */
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len) || memchr(line, '\n', len))
		return -EINVAL;
	copy = g_strndup(line, len);
	if (line_is_blank_or_comment(copy)) {
		explicit_bzero(copy, len);
		return 1;
	}
	fields = g_strsplit(copy, ":", USERLIST_MAX_FIELDS + 1);
	r = parse_fields(fields, g_strv_length(fields), out);
	/* The copies hold a password hash: do not leave it in freed memory. */
	explicit_bzero(copy, len);
	for (char **p = fields; *p; p++)
		explicit_bzero(*p, strlen(*p));
	return r;
}

/* Read the whole list. Returns 0, or -errno (the file is missing, unreadable or not a
 * regular file) with *out_what naming the failure. */
static int
read_list(const char *path, char **out_data, size_t *out_len, const char **out_what)
{
	mpop_autofd fd = -1;
	struct stat st;
	g_autofree char *buf = NULL;
	int r;

	*out_what = "cannot open";
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	*out_what = "cannot read";
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((guint64)st.st_size > USERLIST_MAX_BYTES)
		return -EFBIG;
	buf = g_malloc((size_t)st.st_size + 1);
	r = mpop_read_exact(fd, buf, (size_t)st.st_size);
	if (r < 0)
		return r;
	buf[st.st_size] = '\0';
	*out_data = g_steal_pointer(&buf);
	*out_len = (size_t)st.st_size;
	return 0;
}

/* Scan every line (not just up to the match) so the work done, and the warnings logged,
 * do not depend on where or whether the user is listed. Names compare exactly: the
 * original matched /^$user:/ and so let "USER b.b" log in as bob. */
static gboolean
find_user(const char *path, const char *data, size_t len, const char *user, MpopUserlistEntry *out)
{
	gboolean found = FALSE;
	size_t pos = 0;
	guint lineno = 0;

	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) + 1 : len;
		MpopUserlistEntry e = {0};
		int r;

		lineno++;
		r = mpop_userlist_parse_line(data + pos, end - pos, &e);
		pos = end;
		if (r < 0) {
			mpop_log_warning("%s:%u: malformed user list entry skipped", path, lineno);
			continue;
		}
		if (r == 0 && !found && strcmp(e.name, user) == 0) {
			*out = e;
			found = TRUE;
			continue;
		}
		mpop_userlist_entry_clear(&e);
	}
	return found;
}

gboolean
mpop_auth_passwd_for_uid(uid_t uid, gid_t *out_gid, char **out_home)
{
	MpopPasswd pw = {0};

	if (mpop_auth_getpw(NULL, uid, &pw) < 0)
		return FALSE;
	*out_gid = pw.gid;
	*out_home = g_steal_pointer(&pw.home);
	mpop_passwd_clear(&pw);
	return TRUE;
}

/* The passwd entry of the uid is asked only for what the line leaves out: the gid, and the
 * home when the line names no mailbox and the location pattern that takes its place needs
 * one (want_home: it has %h). A line that gives the gid costs no NSS lookup otherwise (for a
 * uid NSS's files do not know, glibc would load and ask each further module, such as
 * libnss_systemd and its userdb directories, at every login). */
static MpopAuthIdentity *
make_identity(const MpopUserlistEntry *e, gboolean want_home)
{
	MpopAuthIdentity *id = g_new0(MpopAuthIdentity, 1);
	gid_t pw_gid = 0;
	gboolean have_pw = (e->gid == (gid_t)-1 || (!e->mailbox && want_home)) &&
			   mpop_auth_passwd_for_uid(e->uid, &pw_gid, &id->home);

	id->user = g_strdup(e->name);
	id->uid = e->uid;
	if (e->gid != (gid_t)-1)
		id->gid = e->gid;
	else
		id->gid = have_pw ? pw_gid : (gid_t)e->uid;
	id->mailbox = g_strdup(e->mailbox);
	return id;
}

MpopAuthResult
mpop_userlist_lookup(const char *path, const char *user, MpopUserlistEntry *out, char **out_reason)
{
	g_autofree char *data = NULL;
	MpopUserlistEntry e = {0};
	const char *what = NULL;
	size_t len = 0;
	gboolean ok;
	int r;

	r = read_list(path, &data, &len, &what);
	if (r < 0) {
		*out_reason = g_strdup_printf("user list %s: %s: %s", path, what,
					      r == -EINVAL ? "not a regular file" : g_strerror(-r));
		return MPOP_AUTH_TEMPFAIL;
	}
	ok = find_user(path, data, len, user, &e);
	explicit_bzero(data, len);
	if (!ok) {
		*out_reason = g_strdup_printf("unknown user (not in %s)", path);
		return MPOP_AUTH_UNKNOWN;
	}
	*out = e;
	return MPOP_AUTH_OK;
}

/* One hash computation whatever the entry holds; uid 0 is refused after it. */
static MpopAuthResult
verify_entry(const MpopUserlistEntry *e, const char *password, gboolean want_home,
	     MpopAuthIdentity **out_id, char **out_reason)
{
	gboolean ok = mpop_auth_verify_hash(password, e->hash);

	if (e->uid == 0) {
		*out_reason = g_strdup("refusing uid 0");
		return MPOP_AUTH_DENIED;
	}
	if (!ok) {
		*out_reason = g_strdup("wrong password");
		return MPOP_AUTH_DENIED;
	}
	*out_id = make_identity(e, want_home);
	return MPOP_AUTH_OK;
}

MpopAuthResult
mpop_userlist_check(const char *path, const char *user, const char *password, gboolean want_home,
		    MpopAuthIdentity **out_id, char **out_reason)
{
	MpopUserlistEntry e = {0};
	MpopAuthResult r = mpop_userlist_lookup(path, user, &e, out_reason);

	if (r == MPOP_AUTH_TEMPFAIL)
		mpop_auth_dummy_hash(password);
	if (r != MPOP_AUTH_OK)
		return r;
	r = verify_entry(&e, password, want_home, out_id, out_reason);
	mpop_userlist_entry_clear(&e);
	return r;
}

static MpopAuthResult
userlist_check(const MpopConfig *cfg, const char *user, const char *password,
	       MpopAuthIdentity **out_id, char **out_reason)
{
	if (!cfg->userlist || !*cfg->userlist) {
		mpop_auth_dummy_hash(password);
		*out_reason = g_strdup("no user list configured ([auth] userlist)");
		return MPOP_AUTH_TEMPFAIL;
	}
	return mpop_userlist_check(cfg->userlist, user, password,
				   mpop_pattern_uses_home(mpop_mailbox_location_pattern(cfg)),
				   out_id, out_reason);
}

static MpopAuthResult
userlist_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		      char **out_reason)
{
	g_autofree char *reason = NULL;
	MpopAuthResult r = userlist_check(cfg, q->user, q->password, out_id, &reason);

	if (out_reason)
		*out_reason = g_steal_pointer(&reason);
	return r;
}

static gboolean
userlist_check_config(const MpopConfig *cfg, GError **error)
{
	if (cfg->userlist && *cfg->userlist)
		return TRUE;
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
		    "%s: [auth] userlist: the userlist backend is used but no user list is set",
		    cfg->path ? cfg->path : "configuration");
	return FALSE;
}

const MpopAuthOps mpop_auth_userlist_ops = {
	.name = "userlist",
	.authenticate = userlist_authenticate,
	.check_config = userlist_check_config,
};
