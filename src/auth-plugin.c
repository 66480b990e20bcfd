/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "plugin" auth backend: an external program with qmail's checkpassword interface. */
#include "auth-plugin.h"
#include "auth.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* checkpassword exit codes (qmail's, plus 2, which is mpopd's). */
#define PLUGIN_EXIT_OK 0
#define PLUGIN_EXIT_REJECT 1
#define PLUGIN_EXIT_UNKNOWN 2
#define PLUGIN_EXIT_TEMP 111

/* What the plugin writes to stderr reaches the log, capped and escaped. */
#define PLUGIN_STDERR_LOG_CHARS 300

/* ---- the answer ---- */

void
mpop_plugin_answer_clear(MpopPluginAnswer *a)
{
	if (!a)
		return;
	g_free(a->mailbox);
	g_free(a->home);
	g_free(a->user);
	memset(a, 0, sizeof *a);
	a->gid = (gid_t)-1;
}

/* Absolute, no control characters, no ".." component (the path is used as root). */
static gboolean
path_acceptable(const char *s)
{
	g_auto(GStrv) parts = NULL;

	if (s[0] != '/')
		return FALSE;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return FALSE;
	parts = g_strsplit(s, "/", -1);
	for (char **p = parts; *p; p++)
		if (strcmp(*p, "..") == 0)
			return FALSE;
	return TRUE;
}

/* One "key=value" line. Returns 0, -EPERM (uid 0) or -EINVAL with *why set. */
static int
parse_pair(const char *key, const char *value, MpopPluginAnswer *a, guint *seen, const char **why)
{
	static const char *const keys[] = {"uid", "gid", "mailbox", "home", "user"};
	guint32 id;
	guint k;

	for (k = 0; k < G_N_ELEMENTS(keys); k++)
		if (strcmp(key, keys[k]) == 0)
			break;
	if (k == G_N_ELEMENTS(keys))
		return *why = "unknown key", -EINVAL;
	if (*seen & (1u << k))
		return *why = "repeated key", -EINVAL;
	*seen |= 1u << k;
	switch (k) {
	case 0:
	case 1:
		if (!mpop_auth_parse_id(value, &id))
			return *why = "uid or gid is not a decimal id", -EINVAL;
		if (k == 0 && id == 0)
			return *why = "uid 0: never as root", -EPERM;
		if (k == 0)
			a->uid = (uid_t)id;
		else
			a->gid = (gid_t)id;
		return 0;
	case 2:
	case 3:
		if (!path_acceptable(value))
			return *why = "mailbox or home is not an acceptable absolute path", -EINVAL;
		*(k == 2 ? &a->mailbox : &a->home) = g_strdup(value);
		return 0;
	default:
		if (!mpop_auth_user_name_acceptable(value))
			return *why = "user is not an acceptable login name", -EINVAL;
		a->user = g_strdup(value);
		return 0;
	}
}

int
mpop_plugin_parse_answer(const char *data, size_t len, MpopPluginAnswer *out, const char **out_why)
{
	MpopPluginAnswer a = {.gid = (gid_t)-1};
	const char *why = NULL;
	size_t pos = 0;
	guint seen = 0;
	int r = 0;

	if (!data || len > MPOP_PLUGIN_ANSWER_MAX)
		why = "more than 4096 bytes", r = -EINVAL;
	else if (memchr(data, '\0', len))
		why = "a NUL byte", r = -EINVAL;
	while (r == 0 && pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len;
		g_autofree char *line = g_strndup(data + pos, end - pos);
		char *eq = strchr(line, '=');

		pos = end + 1;
		if (!eq || eq == line || !eq[1]) {
			why = "a line that is not key=value";
			r = -EINVAL;
			break;
		}
		*eq = '\0';
		r = parse_pair(line, eq + 1, &a, &seen, &why);
	}
	if (r == 0 && !(seen & 1u)) {
		why = "no uid";
		r = -EINVAL;
	}
	if (r < 0) {
		mpop_plugin_answer_clear(&a);
		if (out_why)
			*out_why = why;
		return r;
	}
	*out = a;
	return 0;
}

/* ---- the program file ---- */

static void
plugin_exec_clear(MpopPluginExec *x)
{
	g_strfreev(x->argv);
	g_strfreev(x->envp);
}

/* plugin_user's ids and groups, looked up in the parent: the child after fork() calls no
 * NSS functions. FALSE with *why when there is no such user. */
static gboolean
resolve_user(const char *name, MpopPluginExec *x, char **why)
{
	MpopPasswd pw = {0};
	int r = mpop_auth_getpw(name, 0, &pw);
	gboolean ok = FALSE;

	if (r < 0) {
		*why = g_strdup_printf("plugin_user %s: %s", name,
				       r == -ENOENT ? "no such user" : g_strerror(-r));
		return FALSE;
	}
	x->uid = pw.uid;
	x->gid = pw.gid;
	x->n_groups = MPOP_PLUGIN_GROUPS_MAX;
	if (getgrouplist(pw.name, pw.gid, x->groups, &x->n_groups) < 0) {
		*why = g_strdup_printf("plugin_user %s is in more than %d groups", name,
				       MPOP_PLUGIN_GROUPS_MAX);
	} else {
		/* Only root can switch users; anyone else can run the program as itself. */
		x->drop = geteuid() == 0;
		ok = TRUE;
	}
	mpop_passwd_clear(&pw);
	return ok;
}

/* Like sshd's AuthorizedKeysCommand check: whoever may replace the program or a directory
 * above it could answer for every user, so all of them must belong to root (or to the user
 * mpopd runs as, who could change mpopd itself) and be writable by nobody else. Returns
 * NULL or why not (caller frees). */
static char *
unsafe_owner_or_mode(const char *path, const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return g_strdup_printf("%s is owned by uid %u, not root", path,
				       (unsigned)st->st_uid);
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return g_strdup_printf("%s is writable by group or others", path);
	return NULL;
}

/* NULL when path names a program we may run, else why not, naming the path (caller frees). */
static char *
plugin_file_problem(const char *path)
{
	g_autofree char *real = NULL;
	struct stat st;
	char *why;

	if (!path || !*path)
		return g_strdup("the plugin backend is used but no program is set");
	if (path[0] != '/')
		return g_strdup_printf("%s is not an absolute path", path);
	real = realpath(path, NULL);
	if (!real || stat(real, &st) < 0)
		return g_strdup_printf("%s: %s", path, g_strerror(errno));
	if (!S_ISREG(st.st_mode))
		return g_strdup_printf("%s is not a regular file", path);
	if (!(st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		return g_strdup_printf("%s is not executable", path);
	why = unsafe_owner_or_mode(real, &st);
	while (!why && strcmp(real, "/") != 0) {
		char *slash = strrchr(real, '/');

		slash[slash == real ? 1 : 0] = '\0';
		if (stat(real, &st) < 0)
			return g_strdup_printf("%s: %s", real, g_strerror(errno));
		why = unsafe_owner_or_mode(real, &st);
	}
	return why;
}

static gboolean
plugin_check_config(const MpopConfig *cfg, GError **error)
{
	const char *file = cfg->path ? cfg->path : "configuration";
	g_autofree char *why = plugin_file_problem(cfg->plugin);
	MpopPluginExec x = {0};

	if (why) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: [auth] plugin: %s", file,
			    why);
		return FALSE;
	}
	if (cfg->plugin_user && *cfg->plugin_user && !resolve_user(cfg->plugin_user, &x, &why)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: [auth] %s", file, why);
		return FALSE;
	}
	return TRUE;
}

/* ---- asking it ---- */

static void
build_exec(const MpopConfig *cfg, const char *peer, const char *local, const char *session,
	   MpopPluginExec *x)
{
	GPtrArray *argv = g_ptr_array_new();
	GPtrArray *envp = g_ptr_array_new();

	g_ptr_array_add(argv, g_strdup(cfg->plugin));
	for (char **a = cfg->plugin_args; a && *a; a++)
		g_ptr_array_add(argv, g_strdup(*a));
	g_ptr_array_add(argv, NULL);
	g_ptr_array_add(envp, g_strdup("PATH=/usr/bin:/bin"));
	g_ptr_array_add(envp, g_strdup_printf("MPOPD_PEER=%s", peer ? peer : "local"));
	if (local)
		g_ptr_array_add(envp, g_strdup_printf("MPOPD_LOCAL=%s", local));
	if (session)
		g_ptr_array_add(envp, g_strdup_printf("MPOPD_SESSION=%s", session));
	g_ptr_array_add(envp, NULL);
	x->argv = (char **)g_ptr_array_free(argv, FALSE);
	x->envp = (char **)g_ptr_array_free(envp, FALSE);
}

static void
log_stderr(const GString *err)
{
	g_autofree char *text = NULL;

	if (!err->len)
		return;
	text = mpop_escape_excerpt(err->str, err->len, PLUGIN_STDERR_LOG_CHARS);
	mpop_log_notice("plugin stderr: %s", text);
}

/* The passwd entry of uid gives the gid and home the answer leaves out. */
static MpopAuthIdentity *
make_identity(const char *login, MpopPluginAnswer *a)
{
	MpopAuthIdentity *id = g_new0(MpopAuthIdentity, 1);
	g_autofree char *pw_home = NULL;
	gid_t pw_gid = 0;
	gboolean have_pw = mpop_auth_passwd_for_uid(a->uid, &pw_gid, &pw_home);

	id->user = a->user ? g_steal_pointer(&a->user) : g_strdup(login);
	id->uid = a->uid;
	if (a->gid != (gid_t)-1)
		id->gid = a->gid;
	else
		id->gid = have_pw ? pw_gid : (gid_t)a->uid;
	id->home = a->home ? g_steal_pointer(&a->home) : g_steal_pointer(&pw_home);
	id->mailbox = g_steal_pointer(&a->mailbox);
	return id;
}

static MpopAuthResult
interpret(const char *login, MpopPluginOutcome *o, MpopAuthIdentity **out_id, char **out_reason)
{
	MpopPluginAnswer a = {0};
	const char *why = NULL;
	int r;

	switch (o->end) {
	case MPOP_PLUGIN_NOT_STARTED:
		*out_reason = g_strdup_printf("plugin: cannot start: %s", o->error);
		return MPOP_AUTH_TEMPFAIL;
	case MPOP_PLUGIN_LOST:
		*out_reason = g_strdup_printf("plugin: %s", o->error);
		return MPOP_AUTH_TEMPFAIL;
	case MPOP_PLUGIN_TIMEOUT:
		*out_reason = g_strdup("plugin: no answer in time (killed)");
		return MPOP_AUTH_TEMPFAIL;
	case MPOP_PLUGIN_TOO_MUCH:
		*out_reason = g_strdup("plugin answered garbage: more than 4096 bytes (killed)");
		return MPOP_AUTH_TEMPFAIL;
	case MPOP_PLUGIN_SIGNALED:
		*out_reason =
			g_strdup_printf("plugin: killed by signal %s", g_strsignal(o->status));
		return MPOP_AUTH_TEMPFAIL;
	case MPOP_PLUGIN_EXITED:
		break;
	}
	switch (o->status) {
	case PLUGIN_EXIT_OK:
		break;
	case PLUGIN_EXIT_REJECT:
		*out_reason = g_strdup("plugin: rejected");
		return MPOP_AUTH_DENIED;
	case PLUGIN_EXIT_UNKNOWN:
		*out_reason = g_strdup("plugin: unknown user");
		return MPOP_AUTH_UNKNOWN;
	case PLUGIN_EXIT_TEMP:
		*out_reason = g_strdup("plugin: temporary failure");
		return MPOP_AUTH_TEMPFAIL;
	default:
		*out_reason = g_strdup_printf("plugin: exit status %d", o->status);
		return MPOP_AUTH_TEMPFAIL;
	}
	r = mpop_plugin_parse_answer(o->out->str, o->out->len, &a, &why);
	if (r == -EPERM) {
		*out_reason = g_strdup("plugin: answer names uid 0: never as root");
		return MPOP_AUTH_TEMPFAIL;
	}
	if (r < 0) {
		*out_reason = g_strdup_printf("plugin answered garbage: %s", why);
		return MPOP_AUTH_TEMPFAIL;
	}
	*out_id = make_identity(login, &a);
	mpop_plugin_answer_clear(&a);
	return MPOP_AUTH_OK;
}

static MpopAuthResult
plugin_ask(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
	   char **out_reason)
{
	MpopPluginExec x = {.timeout = cfg->plugin_timeout};
	MpopPluginOutcome o;
	g_autofree char *why = NULL;
	MpopAuthResult r;

	if (cfg->plugin_user && *cfg->plugin_user && !resolve_user(cfg->plugin_user, &x, &why)) {
		*out_reason = g_strdup_printf("plugin: %s", why);
		return MPOP_AUTH_TEMPFAIL;
	}
	if (cfg->plugin_user && *cfg->plugin_user && !x.drop && x.uid != geteuid()) {
		*out_reason = g_strdup_printf("plugin: plugin_user %s: mpopd is not root",
					      cfg->plugin_user);
		return MPOP_AUTH_TEMPFAIL;
	}
	build_exec(cfg, q->peer, q->local, q->session_id, &x);
	mpop_plugin_run(&x, q->user, q->password, &o);
	plugin_exec_clear(&x);
	log_stderr(o.err);
	r = interpret(q->user, &o, out_id, out_reason);
	mpop_plugin_outcome_clear(&o);
	return r;
}

static MpopAuthResult
plugin_authenticate(const MpopConfig *cfg, const MpopAuthQuery *q, MpopAuthIdentity **out_id,
		    char **out_reason)
{
	/* Checked again at every login: the file may have changed since the start. */
	g_autofree char *why = plugin_file_problem(cfg->plugin);
	g_autofree char *reason = NULL;
	MpopAuthResult r = MPOP_AUTH_TEMPFAIL;

	if (why)
		reason = g_strdup_printf("plugin: %s", why);
	else
		r = plugin_ask(cfg, q, out_id, &reason);
	if (out_reason)
		*out_reason = g_steal_pointer(&reason);
	return r;
}

const MpopAuthOps mpop_auth_plugin_ops = {
	.name = "plugin",
	.authenticate = plugin_authenticate,
	.check_config = plugin_check_config,
};
