/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Authentication registry and crypt(5) hashing: backends behind an ops table. */
#include "auth.h"
#include "util.h"

#include <crypt.h>
#include <errno.h>
#include <pwd.h>
#include <string.h>

/* Backends in this build: exactly the names config-schema.c accepts (test-auth checks). */
static const MpopAuthOps *const auth_backends[] = {
	&mpop_auth_userlist_ops, &mpop_auth_pam_ops,	&mpop_auth_system_ops,
	&mpop_auth_passwd_ops,	 &mpop_auth_shadow_ops, &mpop_auth_plugin_ops,
	&mpop_auth_hostname_ops, &mpop_auth_email_ops,	&mpop_auth_central_ops,
};

/* The longest login name we pass to a backend (the POP3 USER argument is untrusted). */
#define MPOP_AUTH_USER_MAX 255

static guint64 hash_count;

guint64
mpop_auth_hash_count(void)
{
	return hash_count;
}

const MpopAuthOps *
mpop_auth_lookup(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < G_N_ELEMENTS(auth_backends); i++)
		if (strcmp(auth_backends[i]->name, name) == 0)
			return auth_backends[i];
	return NULL;
}

void
mpop_auth_identity_free(MpopAuthIdentity *id)
{
	if (!id)
		return;
	g_free(id->user);
	g_free(id->home);
	g_free(id->mailbox);
	if (id->backend_data && id->backend_data_free)
		id->backend_data_free(id->backend_data);
	g_free(id);
}

/* One crypt_rn() call. struct crypt_data is ~32 KiB, so it lives on the heap, and it holds
 * the password's derived state, so it is wiped before it is freed. Returns the hash
 * (caller frees) or NULL when the setting is unusable. */
static char *
hash_once(const char *password, const char *setting)
{
	struct crypt_data *cd = g_new0(struct crypt_data, 1);
	char *out = NULL;
	const char *r;

	r = crypt_rn(password, setting, cd, (int)sizeof *cd);
	hash_count++;
	/* libxcrypt signals failure with NULL or a string starting with '*'. */
	if (r && r[0] != '*')
		out = g_strdup(r);
	explicit_bzero(cd, sizeof *cd);
	g_free(cd);
	return out;
}

/* A yescrypt setting made once per process, so every dummy hash costs what a real one
 * with the default scheme costs: whether a user exists must not show in the timing. */
static const char *
dummy_setting(void)
{
	static char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	static gsize done;

	if (g_once_init_enter(&done)) {
		if (!crypt_gensalt_rn("$y$", 0, NULL, 0, setting, sizeof setting) ||
		    setting[0] == '*')
			g_strlcpy(setting, "$y$j9T$mpopd.dummy.salt.", sizeof setting);
		g_once_init_leave(&done, 1);
	}
	return setting;
}

void
mpop_auth_dummy_hash(const char *password)
{
	g_free(hash_once(password ? password : "", dummy_setting()));
}

/* A hash that can never match: locked ("!..."), disabled ("*..."), empty or too short to
 * be any crypt(5) format (the shortest, traditional DES, has 13 characters). */
static gboolean
hash_usable(const char *hash)
{
	return hash && strlen(hash) >= 13 && hash[0] != '*' && hash[0] != '!';
}

gboolean
mpop_auth_verify_hash(const char *password, const char *hash)
{
	g_autofree char *computed = NULL;
	gboolean ok;

	if (!password)
		password = "";
	if (!hash_usable(hash)) {
		mpop_auth_dummy_hash(password);
		return FALSE;
	}
	computed = hash_once(password, hash);
	if (!computed) {
		/* An unsupported scheme fails fast inside libxcrypt: pay the time anyway. */
		mpop_auth_dummy_hash(password);
		return FALSE;
	}
	ok = mpop_streq_consttime(computed, hash);
	explicit_bzero(computed, strlen(computed));
	return ok;
}

/* The schemes mpopd makes hashes with, each at a cost that makes guessing expensive:
 * yescrypt at libxcrypt's default, sha512crypt at 100 000 rounds (5 000, its default, is
 * fifty times cheaper to guess), bcrypt at cost 10. md5crypt and DES are still checked in
 * old lists, never made. */
static const struct {
	const char *prefix;
	unsigned long count;
} make_schemes[] = {{"$y$", 0}, {"$6$", 100000}, {"$2b$", 10}};

char *
mpop_auth_make_hash(const char *password, const char *prefix, GError **error)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	unsigned long count = 0;
	gboolean known = FALSE;
	char *hash;

	if (!prefix)
		prefix = "$y$";
	for (size_t i = 0; i < G_N_ELEMENTS(make_schemes); i++)
		if (strcmp(prefix, make_schemes[i].prefix) == 0) {
			known = TRUE;
			count = make_schemes[i].count;
		}
	if (!known) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
			    "unknown hash scheme prefix \"%s\" (use $y$, $6$ or $2b$)", prefix);
		return NULL;
	}
	if (!password) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "no password given");
		return NULL;
	}
	/* NULL rbytes: libxcrypt reads the kernel's random source itself. */
	if (!crypt_gensalt_rn(prefix, count, NULL, 0, setting, sizeof setting) ||
	    setting[0] == '*') {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
			    "cannot make a salt for scheme %s: %s", prefix, g_strerror(errno));
		return NULL;
	}
	hash = hash_once(password, setting);
	if (!hash)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
			    "libxcrypt cannot hash with scheme %s", prefix);
	return hash;
}

gboolean
mpop_auth_parse_id(const char *s, guint32 *out)
{
	guint64 v;

	if (!s || !g_ascii_string_to_unsigned(s, 10, 0, G_MAXUINT32 - 1, &v, NULL))
		return FALSE;
	*out = (guint32)v;
	return TRUE;
}

void
mpop_passwd_clear(MpopPasswd *pw)
{
	g_free(pw->name);
	if (pw->passwd) {
		explicit_bzero(pw->passwd, strlen(pw->passwd));
		g_free(pw->passwd);
	}
	g_free(pw->home);
	memset(pw, 0, sizeof *pw);
}

int
mpop_auth_getpw(const char *name, uid_t uid, MpopPasswd *out)
{
	for (size_t size = 16384;; size *= 2) {
		g_autofree char *buf = g_malloc(size);
		struct passwd pwd, *pw = NULL;
		int r = name ? getpwnam_r(name, &pwd, buf, size, &pw)
			     : getpwuid_r(uid, &pwd, buf, size, &pw);

		if (r == ERANGE && size < 1024 * 1024)
			continue;
		if (!pw) {
			explicit_bzero(buf, size);
			/* glibc says "no such entry" with 0 and a NULL result; other NSS
			 * modules with ENOENT or ESRCH. */
			return r == 0 || r == ENOENT || r == ESRCH ? -ENOENT : -(r ? r : EIO);
		}
		out->name = g_strdup(pw->pw_name);
		out->passwd = g_strdup(pw->pw_passwd ? pw->pw_passwd : "");
		out->uid = pw->pw_uid;
		out->gid = pw->pw_gid;
		out->home = pw->pw_dir && *pw->pw_dir ? g_strdup(pw->pw_dir) : NULL;
		explicit_bzero(buf, size);
		return 0;
	}
}

/* A name we will not even show a backend: it could not be a mailbox owner anyway and may
 * be an attempt to reach a path or a second record (':' is the user list separator). */
gboolean
mpop_auth_user_name_acceptable(const char *user)
{
	size_t len;

	if (!user || !*user)
		return FALSE;
	len = strlen(user);
	if (len > MPOP_AUTH_USER_MAX)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];
		if (c < 0x20 || c == 0x7f || c == '/' || c == ':')
			return FALSE;
	}
	return TRUE;
}

static void
set_reason(char **out_reason, char *reason)
{
	if (out_reason)
		*out_reason = reason;
	else
		g_free(reason);
}

MpopAuthResult
mpop_auth_check(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		char **out_reason)
{
	g_autoptr(MpopAuthIdentity) id = NULL;
	const char *const *chain;
	const char *password = q->password ? q->password : "";
	MpopAuthQuery query = *q;
	GString *unknown = NULL;
	char *reason = NULL;
	MpopAuthResult r = MPOP_AUTH_UNKNOWN;

	if (out_reason)
		*out_reason = NULL;
	query.password = password;
	if (!mpop_auth_user_name_acceptable(q->user)) {
		mpop_auth_dummy_hash(password);
		set_reason(out_reason, g_strdup("invalid user name"));
		return MPOP_AUTH_DENIED;
	}
	chain = mpop_config_auth_for_user(cfg, q->user);
	for (gsize i = 0; chain && chain[i] && r == MPOP_AUTH_UNKNOWN; i++) {
		const MpopAuthOps *ops = mpop_auth_lookup(chain[i]);

		g_clear_pointer(&reason, g_free);
		if (!ops) {
			/* The configuration check refuses this; a hand-made one may not. */
			reason = g_strdup_printf("auth backend %s not built in", chain[i]);
			r = MPOP_AUTH_TEMPFAIL;
			break;
		}
		r = ops->authenticate(cfg, &query, &id, &reason);
		if (r == MPOP_AUTH_OK && !id) {
			/* A backend bug must not turn into a login without an identity. */
			g_free(reason);
			reason = g_strdup_printf("auth backend %s returned no identity", ops->name);
			r = MPOP_AUTH_TEMPFAIL;
		} else if (r == MPOP_AUTH_OK) {
			id->ops = ops;
		} else if (r == MPOP_AUTH_UNKNOWN) {
			if (!unknown)
				unknown = g_string_new("unknown user (");
			else
				g_string_append(unknown, ", ");
			g_string_append(unknown, ops->name);
		}
		if (r != MPOP_AUTH_OK)
			g_clear_pointer(&id, mpop_auth_identity_free);
	}
	if (r == MPOP_AUTH_UNKNOWN) {
		/* Nobody knew the user: the one hash an existing user would have cost. */
		mpop_auth_dummy_hash(password);
		g_free(reason);
		if (unknown) {
			g_string_append_c(unknown, ')');
			reason = g_string_free(g_steal_pointer(&unknown), FALSE);
		} else {
			reason = g_strdup("unknown user (no backend)");
		}
		r = MPOP_AUTH_DENIED;
	}
	if (unknown)
		g_string_free(unknown, TRUE);
	set_reason(out_reason, reason);
	if (r == MPOP_AUTH_OK && out_id)
		*out_id = g_steal_pointer(&id);
	return r;
}

gboolean
mpop_auth_check_config(const MpopConfig *cfg, GError **error)
{
	g_autoptr(GPtrArray) chains = g_ptr_array_new();
	GHashTableIter it;
	gpointer chain;

	g_ptr_array_add(chains, cfg->auth_default);
	if (cfg->user_auth) {
		g_hash_table_iter_init(&it, cfg->user_auth);
		while (g_hash_table_iter_next(&it, NULL, &chain))
			g_ptr_array_add(chains, chain);
	}
	for (size_t i = 0; i < G_N_ELEMENTS(auth_backends); i++) {
		const MpopAuthOps *ops = auth_backends[i];
		gboolean used = FALSE;

		for (guint c = 0; c < chains->len && !used; c++) {
			const char *const *names = g_ptr_array_index(chains, c);
			used = names && g_strv_contains(names, ops->name);
		}
		if (used && ops->check_config && !ops->check_config(cfg, error))
			return FALSE;
	}
	for (guint c = 0; c < chains->len; c++) {
		char **names = g_ptr_array_index(chains, c);
		for (gsize n = 0; names && names[n]; n++)
			if (!mpop_auth_lookup(names[n])) {
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
					    "%s: auth backend %s is not built into this mpopd",
					    cfg->path ? cfg->path : "configuration", names[n]);
				return FALSE;
			}
	}
	return TRUE;
}
