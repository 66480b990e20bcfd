/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Configuration: loading and validation, the dump, the sample file and the man page section,
 * all driven by the schema of config-schema.c. */
#include "config-schema.h"

#include <stddef.h>
#include <stdarg.h>
#include <string.h>

#include "mailbox-mbox.h"
#include "mpopd-build.h"
#include "util.h"

/* A configuration file is small; a huge one is a mistake, not a configuration. */
#define CONFIG_MAX_SIZE (1024 * 1024)
#define EXCERPT_MAX 80
#define WRAP_COLUMNS 78

#define USER_AUTH_GROUP "user_auth"
#define USER_AUTH_HELP                                                                             \
	"Per-user backends: each key is a login name exactly as the client sends it, each "        \
	"value a chain of backends as for [auth] default. Perl mpopd: %user_auth."
#define USER_AUTH_EXAMPLE "alice=pam;userlist"

#define HOST_EXAMPLE                                                                               \
	"# [host:example.org]\n"                                                                   \
	"# addresses=192.0.2.10;2001:db8::10\n"                                                    \
	"# names=mail.example.org;example.net\n"                                                   \
	"# userlist=" MPOPD_SYSCONFDIR "/example.org.users\n"                                      \
	"# location=/srv/mail/%d/%n\n"

#define FIELD(cfg, k, type) ((type *)(void *)((char *)(cfg) + (k)->offset))

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
value_error(GError **error, const char *file, const char *group, const Key *k, const char *value,
	    const char *why)
{
	g_autofree char *v = mpop_escape_excerpt(value, strlen(value), EXCERPT_MAX);
	return key_error(error, file, group, k->key, "value \"%s\" %s", v, why);
}

/* Keys are read from group (k->group, or a [host:NAME] group for the host keys) into the
 * struct at base (an MpopConfig, or an MpopHostConfig for the host keys). */
static gboolean
parse_list(const Key *k, GKeyFile *kf, const char *group, void *base, const char *file,
	   GError **error)
{
	g_autoptr(GError) e = NULL;
	gsize n = 0;
	g_auto(GStrv) items = g_key_file_get_string_list(kf, group, k->key, &n, &e);
	guint bits = 0;

	if (!items || e)
		return key_error(error, file, group, k->key, "invalid escape or encoding");
	if (n == 0 && (k->flags & F_NONEMPTY))
		return key_error(error, file, group, k->key, "the list must not be empty");
	for (gsize i = 0; i < n; i++) {
		g_autofree char *why = mpop_config_why_not(k, items[i], TRUE);
		if (why)
			return value_error(error, file, group, k, items[i], why);
		for (gsize j = 0; j < i && (k->flags & F_NODUP); j++)
			if (strcmp(items[i], items[j]) == 0)
				return value_error(error, file, group, k, items[i],
						   "is listed twice");
		if (k->type == KT_FLAGS)
			bits |= (guint)mpop_config_choice_value(k->choices, items[i]);
	}
	if (k->type == KT_FLAGS)
		*FIELD(base, k, guint) = bits;
	else
		*FIELD(base, k, char **) = g_steal_pointer(&items);
	return TRUE;
}

static gboolean
parse_scalar(const Key *k, const char *raw, const char *group, void *base, const char *file,
	     GError **error)
{
	guint64 v;

	switch (k->type) {
	case KT_UINT:
		if (!g_ascii_string_to_unsigned(raw, 10, 0, G_MAXUINT64, &v, NULL))
			return value_error(error, file, group, k, raw, "is not a number");
		if (v < k->min || v > k->max) {
			g_autofree char *why =
				g_strdup_printf("is out of range (%u to %u)", k->min, k->max);
			return value_error(error, file, group, k, raw, why);
		}
		*FIELD(base, k, guint) = (guint)v;
		return TRUE;
	case KT_BOOL:
		if (strcmp(raw, "true") != 0 && strcmp(raw, "false") != 0)
			return value_error(error, file, group, k, raw, "is not true or false");
		*FIELD(base, k, gboolean) = raw[0] == 't';
		return TRUE;
	case KT_ENUM: {
		g_autofree char *why = mpop_config_why_not(k, raw, FALSE);
		if (why)
			return value_error(error, file, group, k, raw, why);
		*FIELD(base, k, int) = mpop_config_choice_value(k->choices, raw);
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
parse_key(const Key *k, GKeyFile *kf, const char *group, void *base, const char *file,
	  GError **error)
{
	g_autoptr(GError) e = NULL;
	g_autofree char *s = NULL;
	g_autofree char *why = NULL;

	if (k->type == KT_LIST || k->type == KT_FLAGS)
		return parse_list(k, kf, group, base, file, error);
	/* g_key_file_get_string() unescapes \s \\ ...; numbers and names are plain text. */
	s = g_key_file_get_string(kf, group, k->key, &e);
	if (!s || e) /* GLib returns a value and sets an error on a bad escape */
		return key_error(error, file, group, k->key, "invalid escape or encoding");
	if (k->type != KT_STRING)
		return parse_scalar(k, s, group, base, file, error);
	why = mpop_config_why_not(k, s, FALSE);
	if (why)
		return value_error(error, file, group, k, s, why);
	*FIELD(base, k, char *) = g_steal_pointer(&s);
	return TRUE;
}

static const Key *
find_key(const char *group, const char *key)
{
	for (size_t i = 0; i < mpop_config_n_keys; i++)
		if (strcmp(mpop_config_keys[i].group, group) == 0 &&
		    (!key || strcmp(mpop_config_keys[i].key, key) == 0))
			return &mpop_config_keys[i];
	return NULL;
}

static gboolean
load_user_auth(GKeyFile *kf, MpopConfig *cfg, const char *file, GError **error)
{
	g_auto(GStrv) users = g_key_file_get_keys(kf, USER_AUTH_GROUP, NULL, NULL);
	g_autofree char *names = mpop_config_choice_names(mpop_config_auth_backends);

	for (char **u = users; u && *u; u++) {
		g_autoptr(GError) e = NULL;
		gsize n = 0;
		g_auto(GStrv) chain = g_key_file_get_string_list(kf, USER_AUTH_GROUP, *u, &n, &e);

		if (mpop_config_check_user(*u) || mpop_config_has_control(*u))
			return key_error(error, file, USER_AUTH_GROUP, *u, "not a valid user name");
		if (!chain || e)
			return key_error(error, file, USER_AUTH_GROUP, *u,
					 "invalid escape or encoding");
		if (n == 0)
			return key_error(error, file, USER_AUTH_GROUP, *u,
					 "the list must not be empty");
		for (gsize i = 0; i < n; i++) {
			g_autofree char *v = NULL;
			if (!mpop_config_find_choice(mpop_config_auth_backends, chain[i])) {
				v = mpop_escape_excerpt(chain[i], strlen(chain[i]), EXCERPT_MAX);
				return key_error(error, file, USER_AUTH_GROUP, *u,
						 "value \"%s\" is not one of %s", v, names);
			}
			for (gsize j = 0; j < i; j++)
				if (strcmp(chain[i], chain[j]) == 0)
					return key_error(error, file, USER_AUTH_GROUP, *u,
							 "backend %s is listed twice", chain[i]);
		}
		g_hash_table_replace(cfg->user_auth, g_strdup(*u), g_steal_pointer(&chain));
	}
	return TRUE;
}

/* ---- [host:NAME] groups ---- */

static const Key *
find_host_key(const char *key)
{
	for (size_t i = 0; i < mpop_config_n_host_keys; i++)
		if (strcmp(mpop_config_host_keys[i].key, key) == 0)
			return &mpop_config_host_keys[i];
	return NULL;
}

static void
host_clear(MpopHostConfig *h)
{
	for (size_t i = 0; i < mpop_config_n_host_keys; i++) {
		const Key *k = &mpop_config_host_keys[i];
		if (k->type == KT_STRING)
			g_free(*FIELD(h, k, char *));
		else if (k->type == KT_LIST)
			g_strfreev(*FIELD(h, k, char **));
	}
	g_free(h->name);
}

/* NAME is lowercase so that it is written one way only: GKeyFile group names are
 * case-sensitive, and [host:A] next to [host:a] would be two groups for one name. */
static gboolean
load_host(GKeyFile *kf, const char *group, MpopHostConfig *h, const char *file, GError **error)
{
	const char *name = group + strlen(MPOP_CONFIG_HOST_PREFIX);
	g_auto(GStrv) keys = g_key_file_get_keys(kf, group, NULL, NULL);

	for (const char *p = name; *p; p++)
		if (g_ascii_isupper(*p))
			return key_error(error, file, group, NULL, "NAME is not lowercase");
	if (mpop_config_check_host_name(name))
		return key_error(error, file, group, NULL,
				 "NAME is not a DNS name (letters, digits, '-' and '.')");
	h->name = g_strdup(name);
	for (char **k = keys; k && *k; k++)
		if (!find_host_key(*k))
			return key_error(error, file, group, *k, "unknown key");
	for (size_t i = 0; i < mpop_config_n_host_keys; i++) {
		const Key *k = &mpop_config_host_keys[i];
		if (g_key_file_has_key(kf, group, k->key, NULL)) {
			if (!parse_key(k, kf, group, h, file, error))
				return FALSE;
		} else if (k->flags & F_REQUIRED) {
			return key_error(error, file, group, k->key, "is required");
		} else {
			g_assert(k->type == KT_LIST && !*k->def);
			*FIELD(h, k, char **) = g_new0(char *, 1);
		}
	}
	for (char **n = h->names; *n; n++)
		for (char *c = *n; *c; c++)
			*c = g_ascii_tolower(*c);
	return TRUE;
}

/* One host per name and per address, or the selection would depend on the file's order. */
static gboolean
claim(GHashTable *owners, gpointer key, const MpopHostConfig *h, const char *what,
      const char *value, const char *file, GError **error)
{
	g_autofree char *group = g_strconcat(MPOP_CONFIG_HOST_PREFIX, h->name, NULL);
	const MpopHostConfig *other = g_hash_table_lookup(owners, key);

	if (other == h)
		return key_error(error, file, group, what, "value \"%s\" is listed twice", value);
	if (other)
		return key_error(error, file, group, what,
				 "value \"%s\" also belongs to [" MPOP_CONFIG_HOST_PREFIX "%s]",
				 value, other->name);
	g_hash_table_insert(owners, key, (gpointer)h);
	return TRUE;
}

static gboolean
check_hosts_unique(const MpopConfig *cfg, const char *file, GError **error)
{
	g_autoptr(GHashTable) names = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GHashTable) addrs = g_hash_table_new_full(g_bytes_hash, g_bytes_equal,
							    (GDestroyNotify)g_bytes_unref, NULL);

	for (guint i = 0; i < cfg->n_hosts; i++) {
		const MpopHostConfig *h = &cfg->hosts[i];
		if (!claim(names, h->name, h, "names", h->name, file, error))
			return FALSE;
		for (char **n = h->names; *n; n++)
			if (!claim(names, *n, h, "names", *n, file, error))
				return FALSE;
		for (char **a = h->addresses; *a; a++) {
			guint8 bin[16];
			g_assert(mpop_addr_parse(*a, bin)); /* the schema's check passed */
			if (!claim(addrs, g_bytes_new(bin, sizeof bin), h, "addresses", *a, file,
				   error))
				return FALSE;
		}
	}
	return TRUE;
}

static gboolean
load_hosts(GKeyFile *kf, MpopConfig *cfg, const char *file, GError **error)
{
	g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);
	guint n = 0;

	for (char **g = groups; *g; g++)
		n += g_str_has_prefix(*g, MPOP_CONFIG_HOST_PREFIX);
	cfg->hosts = g_new0(MpopHostConfig, n);
	for (char **g = groups; *g; g++) {
		if (!g_str_has_prefix(*g, MPOP_CONFIG_HOST_PREFIX))
			continue;
		/* counted before loading, so that a failure frees a partly filled host */
		if (!load_host(kf, *g, &cfg->hosts[cfg->n_hosts++], file, error))
			return FALSE;
	}
	return check_hosts_unique(cfg, file, error);
}

/* Every group and key in the file must be known: a typo must not silently keep a default. */
static gboolean
check_known(GKeyFile *kf, const char *file, GError **error)
{
	g_auto(GStrv) groups = g_key_file_get_groups(kf, NULL);

	for (char **g = groups; *g; g++) {
		g_auto(GStrv) keys = NULL;
		if (strcmp(*g, USER_AUTH_GROUP) == 0 ||
		    g_str_has_prefix(*g, MPOP_CONFIG_HOST_PREFIX)) /* load_hosts() checks them */
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

/* Whether some listener expects a PROXY header: [server] proxy_protocol or a listen entry's. */
static gboolean
proxy_anywhere(const MpopConfig *cfg)
{
	char **lists[] = {cfg->listen, cfg->listen_tls};

	if (cfg->proxy_protocol)
		return TRUE;
	for (guint k = 0; k < G_N_ELEMENTS(lists); k++) {
		for (char **it = lists[k]; it && *it; it++) {
			int px = -1;
			g_free(mpop_config_listen_split(*it, &px));
			if (px > 0)
				return TRUE;
		}
	}
	return FALSE;
}

/* Keys that are valid alone but not together. */
static gboolean
check_combinations(const MpopConfig *cfg, const char *file, GError **error)
{
	if (!mpop_config_has_tls(cfg) && cfg->plaintext_auth == MPOP_PLAINTEXT_TLS_ONLY)
		return key_error(error, file, "auth", "plaintext_auth",
				 "is tls-only but [tls] certificate is not set: nobody could log "
				 "in");
	if (!mpop_config_has_tls(cfg) && cfg->listen_tls && cfg->listen_tls[0])
		return key_error(error, file, "server", "listen_tls", "needs [tls] certificate");
	if (proxy_anywhere(cfg) && !(cfg->proxy_trusted_networks && cfg->proxy_trusted_networks[0]))
		return key_error(error, file, "server", "proxy_trusted_networks",
				 "is empty but proxy_protocol (or a listen entry's proxy=) is on: "
				 "every connection to it would be refused");
	if (!mpop_config_has_tls(cfg) && *cfg->tls_key)
		return key_error(error, file, "tls", "key", "is set but certificate is not");
	return TRUE;
}

/* The mbox rules compile (each alone, so that the error names its key). */
static gboolean
check_mbox_rules(const MpopConfig *cfg, const char *file, GError **error)
{
	const char *keys[] = {"message_start", "message_end"};
	const char *values[] = {cfg->message_start, cfg->message_end};

	for (guint i = 0; i < G_N_ELEMENTS(keys); i++) {
		g_autoptr(GError) e = NULL;
		g_autoptr(MpopMboxParser) p = mpop_mbox_parser_new(i == 0 ? values[0] : NULL,
								   i == 1 ? values[1] : NULL, &e);
		if (p == NULL) {
			g_autofree char *v =
				mpop_escape_excerpt(values[i], strlen(values[i]), EXCERPT_MAX);
			/* e names the key and quotes the value already: keep GLib's reason. */
			const char *why = strstr(e->message, ": ");
			return key_error(error, file, "mailbox", keys[i],
					 "value \"%s\" is not a valid regular expression%s", v,
					 why != NULL ? why : "");
		}
	}
	return TRUE;
}

static void warn(MpopConfig *cfg, const char *file, const char *group, const char *key,
		 const char *fmt, ...) G_GNUC_PRINTF(5, 6);

static void
warn(MpopConfig *cfg, const char *file, const char *group, const char *key, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	if (cfg->warnings == NULL)
		cfg->warnings = g_ptr_array_new_with_free_func(g_free);
	g_ptr_array_add(cfg->warnings, g_strdup_printf("%s: [%s] %s: %s", file, group, key, msg));
}

/* Valid settings that probably do not mean what they say (--check-config prints them). */
static void
collect_warnings(GKeyFile *kf, MpopConfig *cfg, const char *file)
{
	const char *note = mpop_mbox_end_rule_note(cfg->message_end);
	g_autofree char *raw = g_key_file_get_value(kf, "mailbox", "message_end", NULL);

	if (note != NULL) {
		g_autofree char *v = mpop_escape_excerpt(cfg->message_end, strlen(cfg->message_end),
							 EXCERPT_MAX);
		warn(cfg, file, "mailbox", "message_end", "\"%s\" %s", v, note);
	}
	/* Pasted from a Perl config, ^\s*$ would read as ^ *$ (spaces only): GKeyFile takes \s
	 * for a space before the expression is compiled. */
	for (const char *q = raw; q != NULL && (q = strchr(q, '\\')) != NULL; q += 2) {
		if (q[1] == 's') {
			warn(cfg, file, "mailbox", "message_end",
			     "\\s in the file is a space, not the expression's white space "
			     "class: write \\\\s for that");
			break;
		}
		if (q[1] == '\0')
			break;
	}
}

gboolean
mpop_config_has_tls(const MpopConfig *cfg)
{
	return cfg->tls_certificate && *cfg->tls_certificate;
}

MpopPlaintextAuth
mpop_config_plaintext_auth(const MpopConfig *cfg)
{
	if (cfg->plaintext_auth != MPOP_PLAINTEXT_AUTO)
		return cfg->plaintext_auth;
	return mpop_config_has_tls(cfg) ? MPOP_PLAINTEXT_TLS_ONLY : MPOP_PLAINTEXT_ALWAYS;
}

static MpopConfig *
load_keyfile(GKeyFile *kf, const char *file, GError **error)
{
	g_autoptr(MpopConfig) cfg = g_new0(MpopConfig, 1);
	g_autoptr(GKeyFile) defaults = g_key_file_new();

	cfg->path = g_strdup(file);
	cfg->user_auth =
		g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)g_strfreev);
	if (!check_known(kf, file, error))
		return NULL;
	for (size_t i = 0; i < mpop_config_n_keys; i++) {
		const Key *k = &mpop_config_keys[i];
		GKeyFile *src = kf;
		/* A key not set is parsed from its default, through the same checks. */
		if (!g_key_file_has_key(kf, k->group, k->key, NULL)) {
			g_key_file_set_value(defaults, k->group, k->key, k->def);
			src = defaults;
		}
		if (!parse_key(k, src, k->group, cfg, file, error))
			return NULL;
	}
	if (g_key_file_has_group(kf, USER_AUTH_GROUP) && !load_user_auth(kf, cfg, file, error))
		return NULL;
	if (!load_hosts(kf, cfg, file, error))
		return NULL;
	if (!check_combinations(cfg, file, error) || !check_mbox_rules(cfg, file, error))
		return NULL;
	collect_warnings(kf, cfg, file);
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
	for (size_t i = 0; i < mpop_config_n_keys; i++) {
		if (mpop_config_keys[i].type == KT_STRING)
			g_free(*FIELD(cfg, &mpop_config_keys[i], char *));
		else if (mpop_config_keys[i].type == KT_LIST)
			g_strfreev(*FIELD(cfg, &mpop_config_keys[i], char **));
	}
	if (cfg->user_auth)
		g_hash_table_unref(cfg->user_auth);
	for (guint i = 0; i < cfg->n_hosts; i++)
		host_clear(&cfg->hosts[i]);
	g_free(cfg->hosts);
	if (cfg->warnings != NULL)
		g_ptr_array_unref(cfg->warnings);
	g_free(cfg->path);
	g_free(cfg);
}

const char *const *
mpop_config_auth_for_user(const MpopConfig *cfg, const char *user)
{
	/* user_auth may be NULL in a hand-built MpopConfig (tests of other modules). */
	char **b = user && cfg->user_auth ? g_hash_table_lookup(cfg->user_auth, user) : NULL;
	return (const char *const *)(b ? b : cfg->auth_default);
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
append_value(GString *out, const Key *k, const void *base)
{
	switch (k->type) {
	case KT_STRING:
		append_escaped(out, *FIELD(base, k, char *), FALSE);
		break;
	case KT_UINT:
		g_string_append_printf(out, "%u", *FIELD(base, k, guint));
		break;
	case KT_BOOL:
		g_string_append(out, *FIELD(base, k, gboolean) ? "true" : "false");
		break;
	case KT_ENUM:
		g_string_append(out, choice_name(k->choices, *FIELD(base, k, int)));
		break;
	case KT_LIST:
		for (char **i = *FIELD(base, k, char **); i && *i; i++) {
			if (i != *FIELD(base, k, char **))
				g_string_append_c(out, ';');
			append_escaped(out, *i, TRUE);
		}
		break;
	case KT_FLAGS: {
		gboolean first = TRUE;
		for (const Choice *c = k->choices; c->name; c++) {
			if (!(*FIELD(base, k, guint) & (guint)c->value))
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
	for (size_t i = 0; i < mpop_config_n_keys; i++) {
		const Key *k = &mpop_config_keys[i];
		if (i == 0 || strcmp(k->group, mpop_config_keys[i - 1].group) != 0)
			g_string_append_printf(out, "\n[%s]\n", k->group);
		g_string_append_printf(out, "%s=", k->key);
		append_value(out, k, cfg);
		g_string_append_c(out, '\n');
	}
	g_string_append_printf(out, "\n[%s]\n", USER_AUTH_GROUP);
	/* Key names are literal in a key file: no escapes (check_user keeps them plain). */
	for (GList *l = users; l; l = l->next) {
		g_autofree char *chain =
			g_strjoinv(";", g_hash_table_lookup(cfg->user_auth, l->data));
		g_string_append_printf(out, "%s=%s\n", (char *)l->data, chain);
	}
	for (guint i = 0; i < cfg->n_hosts; i++) {
		g_string_append_printf(out, "\n[" MPOP_CONFIG_HOST_PREFIX "%s]\n",
				       cfg->hosts[i].name);
		for (size_t j = 0; j < mpop_config_n_host_keys; j++) {
			g_string_append_printf(out, "%s=", mpop_config_host_keys[j].key);
			append_value(out, &mpop_config_host_keys[j], &cfg->hosts[i]);
			g_string_append_c(out, '\n');
		}
	}
	return g_string_free(out, FALSE);
}

static char *
type_text(const Key *k)
{
	g_autofree char *names = k->choices ? mpop_config_choice_names(k->choices) : NULL;

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

/* A [host:NAME] group does not exist by default, so the sample shows one as comments
 * ("# key=value", which uncommenting the defaults leaves alone). */
static void
append_host_sample(GString *out)
{
	g_string_append(out, "\n# [" MPOP_CONFIG_HOST_PREFIX "NAME]\n#\n");
	append_wrapped_comment(out, mpop_config_host_help);
	for (size_t i = 0; i < mpop_config_n_host_keys; i++) {
		const Key *k = &mpop_config_host_keys[i];
		g_autofree char *type = type_text(k);
		g_autofree char *text =
			g_strdup_printf("%s: %s Type: %s%s.", k->key, k->help, type,
					(k->flags & F_REQUIRED) ? "; required" : "");
		g_string_append(out, "#\n");
		append_wrapped_comment(out, text);
	}
	g_string_append(out, "#\n# For example:\n" HOST_EXAMPLE);
}

#define SAMPLE_HEADER                                                                              \
	"# mpopd.conf: configuration of mpopd(8), see mpopd.conf(5).\n"                            \
	"#\n"                                                                                      \
	"# Generated from the schema in src/config-schema.c. Every key is listed with its help,\n" \
	"# its type and its default value as a commented-out assignment: remove the '#'\n"         \
	"# and change the value to override a default. Values use GKeyFile escapes\n"              \
	"# (\\s a space, \\\\ a backslash, \\; a ';' inside a list).\n"

char *
mpop_config_sample(void)
{
	GString *out = g_string_new(SAMPLE_HEADER);

	for (size_t i = 0; i < mpop_config_n_keys; i++) {
		const Key *k = &mpop_config_keys[i];
		g_autofree char *type = type_text(k);
		g_autofree char *typeline = g_strdup_printf("Type: %s.", type);
		if (i == 0 || strcmp(k->group, mpop_config_keys[i - 1].group) != 0)
			g_string_append_printf(out, "\n[%s]\n", k->group);
		g_string_append_c(out, '\n');
		append_wrapped_comment(out, k->help);
		append_wrapped_comment(out, typeline);
		g_string_append_printf(out, "#%s=%s\n", k->key, k->def);
	}
	g_string_append_printf(out, "\n[%s]\n\n", USER_AUTH_GROUP);
	append_wrapped_comment(out, USER_AUTH_HELP);
	g_string_append_printf(out, "#%s\n", USER_AUTH_EXAMPLE);
	append_host_sample(out);
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

static void
append_man_key(GString *out, const Key *k)
{
	g_autofree char *type = type_text(k);

	g_string_append(out, ".TP\n\\fB");
	append_roff(out, k->key);
	g_string_append(out, "=\\fR\\fI");
	append_roff(out, k->def);
	g_string_append(out, "\\fR\n");
	append_roff(out, k->help);
	g_string_append(out, "\n.br\nType: ");
	append_roff(out, type);
	g_string_append(out, (k->flags & F_REQUIRED) ? "; required.\n"
			     : *k->def		     ? ".\n"
						     : "; empty by default.\n");
}

char *
mpop_config_man_section(void)
{
	GString *out = g_string_new(NULL);

	for (size_t i = 0; i < mpop_config_n_keys; i++) {
		const Key *k = &mpop_config_keys[i];
		if (i == 0 || strcmp(k->group, mpop_config_keys[i - 1].group) != 0)
			g_string_append_printf(out, ".SS [%s]\n", k->group);
		append_man_key(out, k);
	}
	g_string_append_printf(out, ".SS [%s]\n.TP\n\\fIuser\\fB=\\fR\\fIbackend\\fR\n",
			       USER_AUTH_GROUP);
	append_roff(out, USER_AUTH_HELP);
	g_string_append(out, "\n.SS [" MPOP_CONFIG_HOST_PREFIX "NAME]\n");
	append_roff(out, mpop_config_host_help);
	g_string_append_c(out, '\n');
	for (size_t i = 0; i < mpop_config_n_host_keys; i++)
		append_man_key(out, &mpop_config_host_keys[i]);
	return g_string_free(out, FALSE);
}
