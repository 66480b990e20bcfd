/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "passwd" and "shadow" auth backends: system accounts from NSS, hashes from libxcrypt. */
#include "auth.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <shadow.h>
#include <string.h>
#include <time.h>

/* Both names run the same code: the shadow entry is used whenever NSS has one, the passwd
 * field only when it has none, so "passwd" cannot be used to bypass shadow's locks. */

/* NSS buffers start here and double on ERANGE up to the limit. */
#define NSS_BUF_START 16384
#define NSS_BUF_MAX (1024 * 1024)

typedef struct {
	char *name;
	char *hash; /* the shadow field when there is an entry, else the passwd field */
	uid_t uid;
	gid_t gid;
	char *home;
	gboolean has_shadow;
	long lstchg, max, expire; /* days since the epoch; -1: not set */
} SystemAccount;

static void
account_clear(SystemAccount *a)
{
	g_free(a->name);
	if (a->hash) {
		explicit_bzero(a->hash, strlen(a->hash));
		g_free(a->hash);
	}
	g_free(a->home);
}

/* glibc answers "no such entry" with 0 and a NULL result; other NSS modules may say it
 * with ENOENT or ESRCH. */
static gboolean
nss_not_found(int r)
{
	return r == 0 || r == ENOENT || r == ESRCH;
}

/* 0 when found, -ENOENT when there is no such user, else -errno (NSS unavailable). */
static int
account_passwd(const char *user, SystemAccount *a)
{
	MpopPasswd pw = {0};
	int r = mpop_auth_getpw(user, 0, &pw);

	if (r < 0)
		return r;
	a->name = g_steal_pointer(&pw.name);
	a->hash = g_steal_pointer(&pw.passwd);
	a->uid = pw.uid;
	a->gid = pw.gid;
	a->home = g_steal_pointer(&pw.home);
	mpop_passwd_clear(&pw);
	return 0;
}

/* Replaces the passwd field with the shadow entry when there is one. 0 or -errno. */
static int
account_shadow(SystemAccount *a)
{
	for (size_t size = NSS_BUF_START;; size *= 2) {
		g_autofree char *buf = g_malloc(size);
		struct spwd sp, *spp = NULL;
		int r = getspnam_r(a->name, &sp, buf, size, &spp);

		if (r == ERANGE && size < NSS_BUF_MAX)
			continue;
		if (!spp) {
			explicit_bzero(buf, size);
			return nss_not_found(r) ? 0 : -(r ? r : EIO);
		}
		explicit_bzero(a->hash, strlen(a->hash));
		g_free(a->hash);
		a->hash = g_strdup(spp->sp_pwdp ? spp->sp_pwdp : "");
		a->has_shadow = TRUE;
		a->lstchg = spp->sp_lstchg;
		a->max = spp->sp_max;
		a->expire = spp->sp_expire;
		explicit_bzero(buf, size);
		return 0;
	}
}

/* shadow(5) as pam_unix's account step reads it: an account that expired, or a password
 * that must be changed first (POP3 cannot change one) does not log in. */
static const char *
shadow_refusal(const SystemAccount *a)
{
	long today = (long)(time(NULL) / 86400);

	if (!a->has_shadow)
		return NULL;
	if (a->expire >= 0 && today >= a->expire)
		return "system: account expired";
	if (a->lstchg == 0)
		return "system: password must be changed";
	if (a->lstchg > 0 && a->max >= 0 && today - a->lstchg > a->max)
		return "system: password expired";
	return NULL;
}

/* A field that can never match: "x" (the hash is elsewhere), "*", "!", "!!", a locked
 * hash ("!$6$...") and the empty field, which would otherwise accept any password. */
static gboolean
hash_refused(const char *hash)
{
	return !*hash || strcmp(hash, "x") == 0 || hash[0] == '!' || hash[0] == '*';
}

/* Whether the account is a member of the allow-list group, primary or supplementary.
 * Returns 1 member, 0 not, -errno when NSS cannot tell. */
static int
in_group(const SystemAccount *a, const char *group)
{
	g_autofree gid_t *groups = NULL;
	gid_t want;
	int n = 32;

	for (size_t size = NSS_BUF_START;; size *= 2) {
		g_autofree char *buf = g_malloc(size);
		struct group grp, *gr = NULL;
		int r = getgrnam_r(group, &grp, buf, size, &gr);

		if (r == ERANGE && size < NSS_BUF_MAX)
			continue;
		if (!gr)
			return nss_not_found(r) ? 0 : -(r ? r : EIO);
		want = gr->gr_gid;
		break;
	}
	for (;;) {
		int have = n;

		groups = g_renew(gid_t, groups, (gsize)n);
		if (getgrouplist(a->name, a->gid, groups, &have) >= 0) {
			for (int i = 0; i < have; i++)
				if (groups[i] == want)
					return 1;
			return 0;
		}
		if (have <= n || have > 65536)
			return -EIO;
		n = have;
	}
}

/* The account rules, before any password is looked at. DENIED or TEMPFAIL with a reason,
 * or OK: the password decides. */
static MpopAuthResult
account_check(const MpopConfig *cfg, const SystemAccount *a, char **out_reason)
{
	const char *why = shadow_refusal(a);
	int r;

	if (why) {
		*out_reason = g_strdup(why);
		return MPOP_AUTH_DENIED;
	}
	if (hash_refused(a->hash)) {
		*out_reason = g_strdup("system: account locked or without a password");
		return MPOP_AUTH_DENIED;
	}
	if (a->uid == 0) {
		*out_reason = g_strdup("system: refusing uid 0");
		return MPOP_AUTH_DENIED;
	}
	if (a->uid < cfg->system_min_uid) {
		*out_reason = g_strdup_printf("system: uid %u is below system_min_uid %u",
					      (unsigned)a->uid, cfg->system_min_uid);
		return MPOP_AUTH_DENIED;
	}
	if (!cfg->system_group || !*cfg->system_group)
		return MPOP_AUTH_OK;
	r = in_group(a, cfg->system_group);
	if (r < 0) {
		*out_reason = g_strdup_printf("system: cannot read group %s: %s", cfg->system_group,
					      g_strerror(-r));
		return MPOP_AUTH_TEMPFAIL;
	}
	if (r == 0) {
		*out_reason = g_strdup_printf("system: not in group %s", cfg->system_group);
		return MPOP_AUTH_DENIED;
	}
	return MPOP_AUTH_OK;
}

/* Everything but the hash: NSS lookups and the account rules. */
static MpopAuthResult
account_lookup(const MpopConfig *cfg, const char *user, SystemAccount *a, char **out_reason)
{
	int r = account_passwd(user, a);

	if (r == -ENOENT) {
		*out_reason = g_strdup("system: no such user");
		return MPOP_AUTH_UNKNOWN;
	}
	if (r == 0)
		r = account_shadow(a);
	if (r < 0) {
		*out_reason = g_strdup_printf("system: NSS lookup failed: %s", g_strerror(-r));
		return MPOP_AUTH_TEMPFAIL;
	}
	return account_check(cfg, a, out_reason);
}

static MpopAuthResult
system_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		    char **out_reason)
{
	SystemAccount a = {.lstchg = -1, .max = -1, .expire = -1};
	g_autofree char *reason = NULL;
	const char *password = q->password;
	MpopAuthIdentity *id;
	MpopAuthResult r;

	r = account_lookup(cfg, q->user, &a, &reason);
	if (r == MPOP_AUTH_DENIED || r == MPOP_AUTH_TEMPFAIL) {
		/* Refused before the password was looked at: the same one hash of time. (An
		 * unknown user pays at the end of the chain.) */
		mpop_auth_dummy_hash(password);
	} else if (r == MPOP_AUTH_UNKNOWN) {
		/* The chain goes on. */
	} else if (!mpop_auth_verify_hash(password, a.hash)) {
		reason = g_strdup("system: wrong password");
		r = MPOP_AUTH_DENIED;
	} else {
		id = g_new0(MpopAuthIdentity, 1);
		id->user = g_steal_pointer(&a.name);
		id->uid = a.uid;
		id->gid = a.gid;
		id->home = g_steal_pointer(&a.home);
		id->system_account = TRUE;
		if (out_id)
			*out_id = id;
		else
			mpop_auth_identity_free(id);
	}
	account_clear(&a);
	if (out_reason)
		*out_reason = g_steal_pointer(&reason);
	return r;
}

const MpopAuthOps mpop_auth_system_ops = {
	.name = "system",
	.authenticate = system_authenticate,
};

const MpopAuthOps mpop_auth_passwd_ops = {
	.name = "passwd",
	.authenticate = system_authenticate,
};

const MpopAuthOps mpop_auth_shadow_ops = {
	.name = "shadow",
	.authenticate = system_authenticate,
};
