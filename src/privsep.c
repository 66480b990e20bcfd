/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Privilege separation: the bounded auth-request record, dropping privileges. */
#include "privsep.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MPOP1"
#define MAGIC_LOG "MPOPL"
#define MAGIC_LEN 5

void
mpop_auth_request_clear(MpopAuthRequest *r)
{
	if (r->pass) {
		explicit_bzero(r->pass, strlen(r->pass));
		g_clear_pointer(&r->pass, g_free);
	}
	g_clear_pointer(&r->user, g_free);
	if (r->pending)
		explicit_bzero(r->pending, r->pending_len);
	g_clear_pointer(&r->pending, g_free);
	r->pending_len = 0;
	g_clear_pointer(&r->tls, g_free);
	g_clear_pointer(&r->sni, g_free);
}

static void
put_field(GByteArray *b, const void *data, guint32 len)
{
	guint32 be = GUINT32_TO_BE(len);

	g_byte_array_append(b, (const guint8 *)&be, 4);
	if (len)
		g_byte_array_append(b, data, len);
}

GBytes *
mpop_privsep_encode(const MpopAuthRequest *r)
{
	GByteArray *b = g_byte_array_new();

	g_byte_array_append(b, (const guint8 *)MAGIC, MAGIC_LEN);
	put_field(b, r->user, (guint32)strlen(r->user));
	put_field(b, r->pass, (guint32)strlen(r->pass));
	put_field(b, r->pending, (guint32)r->pending_len);
	put_field(b, r->tls ? r->tls : "", r->tls ? (guint32)strlen(r->tls) : 0);
	put_field(b, r->sni ? r->sni : "", r->sni ? (guint32)strlen(r->sni) : 0);
	return g_byte_array_free_to_bytes(b);
}

/* One length-prefixed field; text fields must not contain NUL. */
static int
get_field(const guint8 **p, const guint8 *end, guint32 max, gboolean text, char **out,
	  gsize *out_len)
{
	guint32 len;

	if (end - *p < 4)
		return -EINVAL;
	memcpy(&len, *p, 4);
	len = GUINT32_FROM_BE(len);
	*p += 4;
	if (len > max)
		return -E2BIG;
	if ((guint64)(end - *p) < len)
		return -EINVAL;
	if (text && memchr(*p, '\0', len))
		return -EINVAL;
	*out = g_malloc(len + 1);
	memcpy(*out, *p, len);
	(*out)[len] = '\0';
	if (out_len)
		*out_len = len;
	*p += len;
	return 0;
}

int
mpop_privsep_decode(const guint8 *data, gsize len, MpopAuthRequest *out)
{
	const guint8 *p = data, *end = data + len;
	MpopAuthRequest r = {0};
	int ret;

	if (len < MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0)
		return -EINVAL;
	p += MAGIC_LEN;
	ret = get_field(&p, end, MPOP_PRIVSEP_MAX_USER, TRUE, &r.user, NULL);
	if (ret == 0)
		ret = get_field(&p, end, MPOP_PRIVSEP_MAX_PASS, TRUE, &r.pass, NULL);
	if (ret == 0)
		ret = get_field(&p, end, MPOP_PRIVSEP_MAX_PENDING, FALSE, &r.pending,
				&r.pending_len);
	if (ret == 0)
		ret = get_field(&p, end, MPOP_PRIVSEP_MAX_TLS, TRUE, &r.tls, NULL);
	if (ret == 0)
		ret = get_field(&p, end, MPOP_PRIVSEP_MAX_SNI, TRUE, &r.sni, NULL);
	if (ret == 0 && p != end)
		ret = -EINVAL;
	if (ret == 0 && r.user[0] == '\0')
		ret = -EINVAL;
	if (ret == 0 && !mpop_dns_name_valid(r.sni, TRUE))
		ret = -EINVAL;
	if (ret < 0) {
		mpop_auth_request_clear(&r);
		return ret;
	}
	*out = r;
	return 0;
}

GBytes *
mpop_privsep_encode_log(MpopLogLevel level, const char *event, const char *message)
{
	GByteArray *b = g_byte_array_new();
	guint8 lv = (guint8)level;
	size_t elen = event ? MIN(strlen(event), MPOP_PRIVSEP_MAX_EVENT) : 0;

	g_byte_array_append(b, (const guint8 *)MAGIC_LOG, MAGIC_LEN);
	g_byte_array_append(b, &lv, 1);
	put_field(b, event ? event : "", (guint32)elen);
	put_field(b, message, (guint32)MIN(strlen(message), MPOP_PRIVSEP_MAX_MESSAGE));
	return g_byte_array_free_to_bytes(b);
}

void
mpop_privsep_log_clear(MpopLogRecord *r)
{
	g_clear_pointer(&r->event, g_free);
	g_clear_pointer(&r->message, g_free);
}

int
mpop_privsep_decode_log(const guint8 *data, gsize len, MpopLogRecord *out)
{
	const guint8 *p = data + MAGIC_LEN + 1, *end = data + len;
	MpopLogRecord r = {0};
	g_autofree char *msg = NULL;
	gsize msg_len = 0;
	int ret;

	if (len < MAGIC_LEN + 1 || memcmp(data, MAGIC_LOG, MAGIC_LEN) != 0)
		return -EINVAL;
	if (data[MAGIC_LEN] < MPOP_LOG_ERR || data[MAGIC_LEN] > MPOP_LOG_DEBUG)
		return -EINVAL;
	r.level = (MpopLogLevel)data[MAGIC_LEN];
	ret = get_field(&p, end, MPOP_PRIVSEP_MAX_EVENT, TRUE, &r.event, NULL);
	if (ret == 0)
		ret = get_field(&p, end, MPOP_PRIVSEP_MAX_MESSAGE, FALSE, &msg, &msg_len);
	if (ret == 0 && p != end)
		ret = -EINVAL;
	for (const char *c = r.event; ret == 0 && *c; c++)
		if (!g_ascii_islower(*c) && *c != '-')
			ret = -EINVAL;
	if (ret < 0) {
		mpop_privsep_log_clear(&r);
		return ret;
	}
	r.message = mpop_escape_excerpt(msg, msg_len, MPOP_PRIVSEP_MAX_MESSAGE);
	*out = r;
	return 0;
}

int
mpop_privsep_become(uid_t uid, gid_t gid, const char *groups_of, gid_t priv_gid)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (uid == 0 || gid == 0)
		return -EPERM;
	if (geteuid() != 0) {
		/* Not root: we can only serve our own mail. */
		return (uid == geteuid()) ? 0 : -EPERM;
	}
	/* Supplementary groups: a system account's own, else none. */
	if (groups_of) {
		if (initgroups(groups_of, gid) < 0)
			return -errno;
	} else if (setgroups(1, &gid) < 0) {
		return -errno;
	}
	if (priv_gid == (gid_t)-1)
		priv_gid = gid;
	if (setresgid(gid, gid, priv_gid) < 0)
		return -errno;
	if (setresuid(uid, uid, uid) < 0)
		return -errno;
	/* Verify the drop is permanent: no id may be 0 and root must not come back. */
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		return -errno;
	if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid ||
	    sgid != priv_gid)
		return -EPERM;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return -EPERM;
	/* Nothing of the starting directory stays reachable by a relative path. */
	if (chdir("/") < 0)
		return -errno;
	return 0;
}

/* The login user's ids, looked up once per process: the daemon does it before it forks
 * (and again at a reload), so a connection pays no NSS lookup for them. */
static struct {
	char *name;
	uid_t uid;
	gid_t gid;
	int error; /* 0, or -ENOENT when there is no such user */
} login_ids;

int
mpop_privsep_resolve_login(const char *login_user)
{
	struct passwd *pw;

	g_free(login_ids.name);
	login_ids.name = g_strdup(login_user);
	pw = getpwnam(login_user);
	login_ids.error = pw ? 0 : -ENOENT;
	login_ids.uid = pw ? pw->pw_uid : (uid_t)-1;
	login_ids.gid = pw ? pw->pw_gid : (gid_t)-1;
	return login_ids.error;
}

int
mpop_privsep_drop_login(const char *login_user, const char *chroot_dir)
{
	uid_t uid;
	gid_t gid;
	struct stat st;

	if (geteuid() != 0)
		return 0;
	if (!login_ids.name || strcmp(login_ids.name, login_user) != 0)
		mpop_privsep_resolve_login(login_user);
	if (login_ids.error < 0)
		return login_ids.error;
	uid = login_ids.uid;
	gid = login_ids.gid;
	if (uid == 0)
		return -EPERM;
	/* An empty, root-owned directory keeps a compromised pre-auth child away from the
	 * file system. Created when missing; never used when others could write into it. */
	if (chroot_dir && *chroot_dir) {
		if (stat(chroot_dir, &st) < 0 && errno == ENOENT &&
		    g_mkdir_with_parents(chroot_dir, 0755) < 0)
			return -errno;
		if (stat(chroot_dir, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
			return -EPERM;
		if (chroot(chroot_dir) < 0 || chdir("/") < 0)
			return -errno;
	}
	if (setgroups(1, &gid) < 0)
		return -errno;
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (setuid(0) == 0)
		return -EPERM;
	return 0;
}

gboolean
mpop_privsep_mail_group_enter(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);
	struct stat st;
	gid_t r, e, s;

	if (getresgid(&r, &e, &s) < 0 || s == r || e != r)
		return FALSE;
	/* Only where that group is what lets us create and remove names in the directory:
	 * elsewhere (an mbox in the user's home) the new file would get the group, which then
	 * needs an fchown() back to the mailbox's own. access() checks the real ids, which are
	 * the effective ones here (e == r). */
	if (stat(dir, &st) < 0 || st.st_gid != s || (st.st_mode & S_IWGRP) == 0 ||
	    access(dir, W_OK | X_OK) == 0)
		return FALSE;
	return setegid(s) == 0;
}

void
mpop_privsep_mail_group_leave(gboolean entered)
{
	gid_t r, e, s;

	if (entered && getresgid(&r, &e, &s) == 0 && setegid(r) < 0)
		g_error("cannot give up the privileged group: %s", g_strerror(errno));
}
