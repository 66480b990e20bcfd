/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl: start, stop and reload mpopd (systemd or pid file), check config, make hashes. */
#include "config.h"
#include "log.h"
#include "mpopdctl.h"
#include "mpopd-build.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#define WAIT_STEP_US (100 * 1000)
#define WAIT_STEPS 100 /* 10 s */

typedef struct {
	gboolean force;
	gboolean edit;
	const char *port;
	const char *config;
	const char *scheme;
	const char *verb;
} Ctl;

typedef struct {
	const char *verb;
	int (*handler)(Ctl *ctl); /* the pid-file way for service verbs */
	gboolean service;	  /* goes to systemctl on a systemd host */
	const char *help;
} Verb;

/* ---- running other programs: fork + execv, never a shell (the original used system()) */

static char *
mpopd_path(void)
{
	g_autofree char *self = g_file_read_link("/proc/self/exe", NULL);
	g_autofree char *dir = self ? g_path_get_dirname(self) : NULL;
	g_autofree char *next = dir ? g_build_filename(dir, "mpopd", NULL) : NULL;

	/* Next to us first, so a build tree or a relocated install uses its own daemon. */
	if (next && g_file_test(next, G_FILE_TEST_IS_EXECUTABLE))
		return g_steal_pointer(&next);
	return g_build_filename(MPOPD_SBINDIR, "mpopd", NULL);
}

enum {
	SPAWN_PATH = 1 << 0,	   /* search PATH (the editor) */
	SPAWN_NULL_STDIN = 1 << 1, /* a daemon must not inherit our terminal or a socket */
	SPAWN_NULL_STDOUT = 1 << 2,
};

static void
redirect_null(int target, int flags)
{
	int fd = open("/dev/null", flags);

	if (fd >= 0 && fd != target) {
		dup2(fd, target);
		close(fd);
	}
}

/* Start argv (SPAWN_* flags). Returns the pid or -1. */
static pid_t
spawn(char **argv, int flags)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mpopdctl: fork: %s\n", g_strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (flags & SPAWN_NULL_STDIN)
			redirect_null(STDIN_FILENO, O_RDONLY);
		if (flags & SPAWN_NULL_STDOUT)
			redirect_null(STDOUT_FILENO, O_WRONLY);
		if (flags & SPAWN_PATH)
			execvp(argv[0], argv);
		else
			execv(argv[0], argv);
		fprintf(stderr, "mpopdctl: cannot run %s: %s\n", argv[0], g_strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Run argv to completion. Returns its exit status, or 127/128+signal like a shell. */
static int
run(char **argv, int flags)
{
	pid_t pid = spawn(argv, flags);
	int status;

	if (pid < 0)
		return 127;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* argv for "mpopd [-c config] [arg1] [arg2]" (NULL args are left out). */
static GStrv
mpopd_argv(const Ctl *ctl, const char *arg1, const char *arg2)
{
	GPtrArray *a = g_ptr_array_new();

	g_ptr_array_add(a, mpopd_path());
	if (ctl->config) {
		g_ptr_array_add(a, g_strdup("-c"));
		g_ptr_array_add(a, g_strdup(ctl->config));
	}
	if (arg1)
		g_ptr_array_add(a, g_strdup(arg1));
	if (arg2)
		g_ptr_array_add(a, g_strdup(arg2));
	g_ptr_array_add(a, NULL);
	return (GStrv)g_ptr_array_free(a, FALSE);
}

static int
check_config(const Ctl *ctl)
{
	g_auto(GStrv) argv = mpopd_argv(ctl, "--check-config", NULL);

	return run(argv, SPAWN_NULL_STDOUT);
}

/* ---- systemd: mpopd.socket with Accept=yes is the default install */

static char *
systemctl_path(void)
{
	if (g_getenv("MPOPDCTL_NO_SYSTEMD") || sd_booted() <= 0)
		return NULL;
	return g_find_program_in_path("systemctl");
}

/* systemctl with up to four arguments; NULL ones are left out. */
static int
systemctl4(const char *systemctl_bin, const char *a1, const char *a2, const char *a3,
	   const char *a4)
{
	const char *args[] = {a1, a2, a3, a4};
	char *argv[G_N_ELEMENTS(args) + 2] = {(char *)systemctl_bin};
	guint n = 1;

	for (guint i = 0; i < G_N_ELEMENTS(args); i++)
		if (args[i])
			argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return run(argv, 0);
}

static int
systemctl(const char *systemctl_bin, const char *a1, const char *a2, const char *a3)
{
	return systemctl4(systemctl_bin, a1, a2, a3, NULL);
}

/* Two installs: mpopd.socket (Accept=yes, one instance per connection, the default) or
 * mpopd-daemon.socket feeding the long-running mpopd.service (Accept=no). Each has a
 * port 995 sibling for implicit TLS (mpopd-tls.socket, mpopd-daemon-tls.socket) that
 * follows it where the admin enabled it. */
static int
systemd_verb(const Ctl *ctl, const char *sc)
{
	const char *v = ctl->verb;
	gboolean daemon = systemctl(sc, "is-active", "--quiet", "mpopd-daemon.socket") == 0 ||
			  systemctl(sc, "is-enabled", "--quiet", "mpopd-daemon.socket") == 0;
	const char *sock = daemon ? "mpopd-daemon.socket" : "mpopd.socket";
	const char *tls_sock = daemon ? "mpopd-daemon-tls.socket" : "mpopd-tls.socket";
	gboolean tls = systemctl(sc, "is-active", "--quiet", tls_sock) == 0 ||
		       systemctl(sc, "is-enabled", "--quiet", tls_sock) == 0;

	if (ctl->port) {
		fprintf(stderr,
			"mpopdctl: -p does not apply under systemd: the port is set in %s "
			"(systemctl edit %s)\n",
			sock, sock);
		return 1;
	}
	if (strcmp(v, "refresh") == 0 || strcmp(v, "reload") == 0 || strcmp(v, "config") == 0) {
		if (systemctl(sc, "is-active", "--quiet", "mpopd.service") == 0)
			return systemctl(sc, "reload", "mpopd.service", NULL) ? 1 : 0;
		printf("nothing to reload: with socket activation every connection reads the "
		       "configuration fresh\n");
		return 0;
	}
	if (strcmp(v, "status") == 0)
		return systemctl4(sc, "status", sock, tls ? tls_sock : NULL,
				  daemon ? "mpopd.service" : NULL);
	if (strcmp(v, "stop") == 0)
		return systemctl4(sc, "stop", sock, tls ? tls_sock : NULL,
				  daemon ? "mpopd.service" : NULL)
			       ? 1
			       : 0;
	/* A socket cannot be restarted under its running service: restart the service. */
	if (strcmp(v, "restart") == 0 && daemon)
		return systemctl(sc, "restart", "mpopd.service", NULL) ? 1 : 0;
	return systemctl(sc, v, sock, tls ? tls_sock : NULL) ? 1 : 0;
}

/* ---- the pid file of a legacy daemon: "pid\nport\n", written by mpopd itself */

static char *
pid_file_path(const Ctl *ctl)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = mpop_config_load(ctl->config, ctl->config != NULL, &error);

	if (!cfg) {
		fprintf(stderr, "mpopdctl: %s\n", error->message);
		return NULL;
	}
	if (!cfg->pid_file || !*cfg->pid_file) {
		fprintf(stderr, "mpopdctl: no pid file configured ([server] pid_file in %s)\n",
			cfg->path);
		return NULL;
	}
	return g_strdup(cfg->pid_file);
}

/* Returns 0, -ENOENT when there is no pid file, -EINVAL when it is malformed. The port
 * (may be NULL) is the second line when it is a valid port number, else NULL. */
static int
read_pid_file(const char *path, pid_t *out_pid, char **out_port)
{
	char buf[128];
	mpop_autofd fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	g_auto(GStrv) lines = NULL;
	guint64 pid, port;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -EINVAL;
	n = mpop_read_some(fd, buf, sizeof buf - 1);
	if (n < 0)
		return -EINVAL;
	buf[n] = '\0';
	lines = g_strsplit(buf, "\n", 3);
	if (!lines[0] || !g_ascii_string_to_unsigned(lines[0], 10, 2, G_MAXINT32, &pid, NULL))
		return -EINVAL;
	*out_pid = (pid_t)pid;
	if (out_port)
		*out_port =
			lines[1] && g_ascii_string_to_unsigned(lines[1], 10, 1, 65535, &port, NULL)
				? g_strdup(lines[1])
				: NULL;
	return 0;
}

/* Alive and really mpopd: a recycled pid must not be signalled (the original had no
 * liveness check at all). */
static gboolean
pid_is_mpopd(pid_t pid)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/comm", (int)pid);
	g_autofree char *comm = NULL;

	if (kill(pid, 0) < 0 && errno != EPERM)
		return FALSE;
	if (!g_file_get_contents(path, &comm, NULL, NULL))
		/* No procfs at all: kill() is all we have. */
		return !g_file_test("/proc/self/comm", G_FILE_TEST_EXISTS);
	g_strchomp(comm);
	return strcmp(comm, "mpopd") == 0;
}

static gboolean
wait_gone(pid_t pid)
{
	for (int i = 0; i < WAIT_STEPS; i++) {
		if (!pid_is_mpopd(pid))
			return TRUE;
		g_usleep(WAIT_STEP_US);
	}
	return !pid_is_mpopd(pid);
}

/* The running daemon's pid, or 0 with a message on stderr. */
static pid_t
running_pid(const char *path, char **out_port)
{
	pid_t pid = 0;
	int r = read_pid_file(path, &pid, out_port);

	if (r == -ENOENT)
		fprintf(stderr, "mpopdctl: mpopd is not running (no pid file %s)\n", path);
	else if (r < 0)
		fprintf(stderr, "mpopdctl: pid file %s is unreadable or malformed\n", path);
	else if (!pid_is_mpopd(pid))
		fprintf(stderr, "mpopdctl: mpopd is not running (stale pid file %s names pid %d)\n",
			path, (int)pid);
	else
		return pid;
	return 0;
}

static int
start_daemon(const Ctl *ctl, const char *path, const char *port)
{
	g_auto(GStrv) argv = mpopd_argv(ctl, port, NULL);
	g_autofree char *got_port = NULL;
	pid_t child = spawn(argv, SPAWN_NULL_STDIN | SPAWN_NULL_STDOUT), pid;
	int status;

	if (child < 0)
		return 1;
	for (int i = 0; i < WAIT_STEPS; i++) {
		/* The direct child exits 0 once it has bound and forked into the background. */
		if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
			child = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "mpopdctl: mpopd could not be started (see its "
						"log)\n");
				return 1;
			}
		}
		g_clear_pointer(&got_port, g_free);
		if (read_pid_file(path, &pid, &got_port) == 0 && pid_is_mpopd(pid)) {
			printf("mpopd started as pid %d%s%s\n", (int)pid,
			       got_port ? " on port " : "", got_port ? got_port : "");
			return 0;
		}
		g_usleep(WAIT_STEP_US);
	}
	fprintf(stderr, "mpopdctl: mpopd did not write its pid file %s within 10 s\n", path);
	return 1;
}

static int
verb_start(Ctl *ctl)
{
	g_autofree char *path = pid_file_path(ctl);
	pid_t pid;
	int r;

	if (!path)
		return 1;
	r = read_pid_file(path, &pid, NULL);
	if (r == 0 && pid_is_mpopd(pid)) {
		fprintf(stderr, "mpopdctl: mpopd is already running as pid %d\n", (int)pid);
		return 1;
	}
	if (r != -ENOENT) {
		if (!ctl->force) {
			fprintf(stderr, "mpopdctl: stale pid file %s; use -f to remove it\n", path);
			return 1;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			fprintf(stderr, "mpopdctl: cannot remove %s: %s\n", path,
				g_strerror(errno));
			return 1;
		}
	}
	return start_daemon(ctl, path, ctl->port);
}

static int
stop_pid(pid_t pid)
{
	if (kill(pid, SIGTERM) < 0) {
		fprintf(stderr, "mpopdctl: cannot signal pid %d: %s\n", (int)pid,
			g_strerror(errno));
		return 1;
	}
	if (!wait_gone(pid)) {
		fprintf(stderr, "mpopdctl: mpopd (pid %d) did not stop within 10 s\n", (int)pid);
		return 1;
	}
	printf("mpopd (pid %d) stopped\n", (int)pid);
	return 0;
}

static int
verb_stop(Ctl *ctl)
{
	g_autofree char *path = pid_file_path(ctl);
	pid_t pid = path ? running_pid(path, NULL) : 0;

	return pid ? stop_pid(pid) : 1;
}

static int
verb_restart(Ctl *ctl)
{
	g_autofree char *path = pid_file_path(ctl);
	g_autofree char *old_port = NULL;
	Ctl again = *ctl;
	pid_t pid;

	if (!path)
		return 1;
	pid = running_pid(path, &old_port);
	if (!again.port)
		again.port = old_port;
	if (!pid)
		return verb_start(&again); /* refuses a stale pid file without -f */
	/* Wait for the old daemon to be gone so the new one can bind the port (the original
	 * started the new one at once and raced the old one's listener). */
	if (stop_pid(pid) != 0)
		return 1;
	return start_daemon(ctl, path, again.port);
}

static int
verb_refresh(Ctl *ctl)
{
	g_autofree char *path = pid_file_path(ctl);
	pid_t pid = path ? running_pid(path, NULL) : 0;

	if (!pid)
		return 1;
	if (kill(pid, SIGHUP) < 0) {
		fprintf(stderr, "mpopdctl: cannot signal pid %d: %s\n", (int)pid,
			g_strerror(errno));
		return 1;
	}
	printf("mpopd (pid %d) signalled to re-read its configuration\n", (int)pid);
	return 0;
}

static int
verb_status(Ctl *ctl)
{
	g_autofree char *path = pid_file_path(ctl);
	g_autofree char *port = NULL;
	pid_t pid;

	if (!path)
		return 1;
	if (read_pid_file(path, &pid, &port) == 0 && pid_is_mpopd(pid)) {
		printf("mpopd is running as pid %d%s%s\n", (int)pid, port ? " on port " : "",
		       port ? port : "");
		return 0;
	}
	printf("mpopd is not running\n");
	return 3; /* LSB: program is not running */
}

static gboolean
ask_yes(const char *question)
{
	char answer[32];

	printf("%s [y/N]? ", question);
	fflush(stdout);
	if (!fgets(answer, sizeof answer, stdin))
		return FALSE;
	g_strstrip(answer);
	return g_ascii_strcasecmp(answer, "y") == 0 || g_ascii_strcasecmp(answer, "yes") == 0;
}

static int
edit_config(Ctl *ctl)
{
	const char *editor = g_getenv("EDITOR");
	const char *path = ctl->config ? ctl->config : MPOPD_DEFAULT_CONFIG;
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) argv = NULL;
	int argc, r;

	/* EDITOR may carry options ("emacs -nw"): split it like a shell would, run no shell. */
	if (!editor || !*editor)
		editor = "vi";
	if (!g_shell_parse_argv(editor, &argc, &argv, &error)) {
		fprintf(stderr, "mpopdctl: EDITOR: %s\n", error->message);
		return 1;
	}
	argv = g_realloc_n(argv, (size_t)argc + 2, sizeof *argv);
	argv[argc] = g_strdup(path);
	argv[argc + 1] = NULL;
	if ((r = run(argv, SPAWN_PATH)) != 0) {
		fprintf(stderr, "mpopdctl: %s exited with status %d\n", argv[0], r);
		return 1;
	}
	if (check_config(ctl) != 0) {
		fprintf(stderr, "mpopdctl: %s has errors; mpopd was not signalled\n", path);
		return 1;
	}
	if (!ask_yes("Signal mpopd to re-read its configuration")) {
		printf("mpopd was not signalled\n");
		return 0;
	}
	return -1; /* go on and reload */
}

static int
verb_check(Ctl *ctl)
{
	g_auto(GStrv) argv = mpopd_argv(ctl, "--check-config", NULL);

	execv(argv[0], argv);
	fprintf(stderr, "mpopdctl: cannot run %s: %s\n", argv[0], g_strerror(errno));
	return 1;
}

static int
verb_config(Ctl *ctl)
{
	g_autofree char *sysctl = NULL;
	int r;

	if (!ctl->edit)
		return verb_check(ctl);
	if ((r = edit_config(ctl)) >= 0)
		return r;
	sysctl = systemctl_path();
	return sysctl ? systemd_verb(ctl, sysctl) : verb_refresh(ctl);
}

static int
verb_passwd(Ctl *ctl)
{
	return mpop_ctl_passwd(ctl->scheme);
}

/* Reached through the table only without options of its own: main hands "stats ..." over
 * whole. */
static int
verb_stats(Ctl *ctl)
{
	char *argv[] = {(char *)ctl->verb, NULL};

	return mpop_ctl_stats(1, argv);
}

/* ---- the verb table */

static const Verb verbs[] = {
	{"start", verb_start, TRUE, "start mpopd (systemd: mpopd.socket)"},
	{"stop", verb_stop, TRUE, "stop mpopd and wait until it has exited"},
	{"restart", verb_restart, TRUE, "stop, wait, start again on the same port"},
	{"refresh", verb_refresh, TRUE, "make mpopd re-read its configuration (SIGHUP)"},
	{"reload", verb_refresh, TRUE, "the same as refresh"},
	{"status", verb_status, TRUE, "tell whether mpopd is running"},
	{"config", verb_config, FALSE, "print the effective configuration; -e: edit it"},
	{"passwd", verb_passwd, FALSE, "read a password, print its crypt(5) hash"},
	{"check", verb_check, FALSE, "validate the configuration (mpopd --check-config)"},
	{"stats", verb_stats, FALSE, "per-user statistics from the journal or syslog (stats -h)"},
};

static const Verb *
find_verb(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (strcmp(verbs[i].verb, name) == 0)
			return &verbs[i];
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage: mpopdctl [-f] [-p port] [-c config] start | stop | restart | refresh |\n"
		   "                reload | status | [-e] config |\n"
		   "                passwd [--scheme yescrypt|sha512|bcrypt] | check | -h\n\n");
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		fprintf(f, "  %-8s %s\n", verbs[i].verb, verbs[i].help);
	fprintf(f,
		"\n  -f  force: start/restart remove a stale pid file\n"
		"  -p  port for start (legacy daemon only)\n"
		"  -c  configuration file (default %s)\n"
		"  -e  with config: edit the file, validate it, then offer to reload\n",
		MPOPD_DEFAULT_CONFIG);
}

/* Options that make no sense with the verb are errors, not silently ignored. */
static gboolean
options_fit(const Ctl *ctl)
{
	const char *v = ctl->verb;

	if (ctl->scheme && strcmp(v, "passwd") != 0)
		return FALSE;
	if (ctl->edit && strcmp(v, "config") != 0)
		return FALSE;
	if (ctl->port && strcmp(v, "start") != 0 && strcmp(v, "restart") != 0)
		return FALSE;
	return TRUE;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"force", no_argument, NULL, 'f'},
		{"port", required_argument, NULL, 'p'},
		{"config", required_argument, NULL, 'c'},
		{"edit", no_argument, NULL, 'e'},
		{"scheme", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	g_autofree char *sysctl = NULL;
	Ctl ctl = {0};
	const Verb *verb;
	guint64 port;
	int c;

	mpop_log_init("mpopdctl", MPOP_LOG_WARNING);
	/* stats has options of its own (mpopdctl-stats.c). */
	if (argc > 1 && strcmp(argv[1], "stats") == 0)
		return mpop_ctl_stats(argc - 1, argv + 1);
	while ((c = getopt_long(argc, argv, "fp:c:eh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			ctl.force = TRUE;
			break;
		case 'p':
			if (!g_ascii_string_to_unsigned(optarg, 10, 1, 65535, &port, NULL)) {
				fprintf(stderr, "mpopdctl: \"%s\" is not a port number (1-65535)\n",
					optarg);
				return 2;
			}
			ctl.port = optarg;
			break;
		case 'c':
			ctl.config = optarg;
			break;
		case 'e':
			ctl.edit = TRUE;
			break;
		case 's':
			ctl.scheme = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind + 1 != argc || !(verb = find_verb(argv[optind]))) {
		if (optind < argc && optind + 1 == argc) {
			g_autofree char *v =
				mpop_escape_excerpt(argv[optind], strlen(argv[optind]), 40);
			fprintf(stderr, "mpopdctl: unknown verb \"%s\"\n", v);
		} else if (optind + 1 < argc) {
			fprintf(stderr, "mpopdctl: one verb at a time\n");
		}
		usage(stderr);
		return 2;
	}
	ctl.verb = verb->verb;
	if (!options_fit(&ctl)) {
		fprintf(stderr, "mpopdctl: an option given does not apply to \"%s\"\n", ctl.verb);
		usage(stderr);
		return 2;
	}
	if (verb->service && (sysctl = systemctl_path()))
		return systemd_verb(&ctl, sysctl);
	return verb->handler(&ctl);
}
