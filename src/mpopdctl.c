/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl: start, stop, refresh and reload mpopd (systemd or pid file), check config, make
 * hashes. */
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

/* Exit statuses (mpopdctl(8) EXIT STATUS). status follows the LSB instead: 0 running,
 * 1 stale pid file, 3 not running. */
enum {
	CTL_OK = 0,
	CTL_FAILED = 1,
	CTL_USAGE = 2,
	CTL_NOT_RUNNING = 3,
	CTL_PERMISSION = 4,
	CTL_RUNNING = 5,
	CTL_CONFIG = 6,
	CTL_STALE = 7,
};

typedef struct {
	gboolean force;
	gboolean edit;
	const char *port;
	const char *config;
	const char *scheme;
	const char *verb;
	int argc;    /* the words after the verb, argv[0] the verb itself (CTL_OPT_ARGS verbs) */
	char **argv; /* (the other verbs have had their options parsed from these) */
} Ctl;

/* Which options a verb takes; -c applies to every verb. */
enum {
	CTL_OPT_FORCE = 1 << 0,
	CTL_OPT_PORT = 1 << 1,
	CTL_OPT_EDIT = 1 << 2,
	CTL_OPT_SCHEME = 1 << 3,
	CTL_OPT_ARGS = 1 << 4, /* parses ctl->argc/argv itself: main leaves them alone */
};

typedef struct {
	const char *verb;
	int (*handler)(Ctl *ctl); /* the pid-file way for service verbs */
	gboolean service;	  /* goes to systemd_verb() on a systemd host */
	const char *help;
	guint options;	      /* CTL_OPT_* */
	const char *synopsis; /* its options for --help, e.g. "[-f] [-p port]" */
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

static const char *
config_path(const Ctl *ctl)
{
	return ctl->config ? ctl->config : MPOPD_DEFAULT_CONFIG;
}

/* mpopd --check-config [--quiet]: everything mpopd checks at start (the file, the auth
 * backends, the host rules, the certificate). Its message (file, group and key) goes to our
 * stderr. Returns CTL_OK, CTL_CONFIG or CTL_FAILED (mpopd did not run). */
static int
check_config(const Ctl *ctl, gboolean quiet)
{
	g_auto(GStrv) argv = mpopd_argv(ctl, "--check-config", quiet ? "--quiet" : NULL);
	int r = run(argv, 0);

	if (r == 0)
		return CTL_OK;
	if (r == 1)
		return CTL_CONFIG;
	fprintf(stderr, "mpopdctl: %s --check-config failed (status %d)\n", argv[0], r);
	return CTL_FAILED;
}

/* A configuration file we may not read is a permission problem, not an invalid file. */
static int
config_readable(const Ctl *ctl)
{
	const char *path = config_path(ctl);

	if (access(path, R_OK) < 0 && errno == EACCES) {
		fprintf(stderr, "mpopdctl: permission denied: cannot read %s\n", path);
		return CTL_PERMISSION;
	}
	return CTL_OK;
}

/* ---- systemd: mpopd.socket with Accept=yes is the default install */

static char *
systemctl_path(void)
{
	if (g_getenv("MPOPDCTL_NO_SYSTEMD") || sd_booted() <= 0)
		return NULL;
	return g_find_program_in_path("systemctl");
}

/* systemctl with up to six arguments; NULL ones are left out. */
static int
systemctl6(const char *systemctl_bin, const char *a1, const char *a2, const char *a3,
	   const char *a4, const char *a5, const char *a6)
{
	const char *args[] = {a1, a2, a3, a4, a5, a6};
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
	return systemctl6(systemctl_bin, a1, a2, a3, NULL, NULL, NULL);
}

static gboolean
unit_in_use(const char *sc, const char *unit)
{
	return systemctl(sc, "is-active", "--quiet", unit) == 0 ||
	       systemctl(sc, "is-enabled", "--quiet", unit) == 0;
}

/* Two installs: mpopd.socket (Accept=yes, one mpopd@ instance per connection, the
 * default) or mpopd-daemon.socket feeding the long-running mpopd.service (Accept=no). Each
 * has a port 995 sibling for implicit TLS (mpopd-tls.socket, mpopd-daemon-tls.socket) that
 * follows it where the admin enabled it. */
typedef struct {
	const char *sc; /* systemctl */
	gboolean daemon;
	const char *sock, *tls_sock;	       /* tls_sock NULL when not in use */
	const char *instances, *tls_instances; /* the Accept=yes sessions */
} Units;

static Units
find_units(const char *sc)
{
	Units u = {.sc = sc, .daemon = unit_in_use(sc, "mpopd-daemon.socket")};

	u.sock = u.daemon ? "mpopd-daemon.socket" : "mpopd.socket";
	u.tls_sock = u.daemon ? "mpopd-daemon-tls.socket" : "mpopd-tls.socket";
	if (!unit_in_use(sc, u.tls_sock))
		u.tls_sock = NULL;
	if (!u.daemon) {
		u.instances = "mpopd@*.service";
		u.tls_instances = u.tls_sock ? "mpopd-tls@*.service" : NULL;
	}
	return u;
}

static gboolean
is_active(const Units *u, const char *unit)
{
	return systemctl(u->sc, "is-active", "--quiet", unit) == 0;
}

static int
sd_result(int r)
{
	return r == 0 ? CTL_OK : CTL_FAILED;
}

/* config / reload: the daemon re-reads its file; socket-activated instances already do at
 * every connection. */
static int
sd_reload(const Units *u)
{
	if (u->daemon && is_active(u, "mpopd.service"))
		return sd_result(systemctl(u->sc, "reload", "mpopd.service", NULL));
	if (!is_active(u, u->sock)) {
		fprintf(stderr, "mpopdctl: mpopd is not running (%s is not active)\n", u->sock);
		return CTL_NOT_RUNNING;
	}
	printf("nothing to reload: socket-activated instances read the configuration at every "
	       "connection\n");
	return CTL_OK;
}

/* refresh: end the sessions without UPDATE (SIGTERM: systemctl stop), then restart the
 * sockets, so that they bind what their units say now. */
static int
sd_refresh(const Units *u)
{
	gboolean service = u->daemon && is_active(u, "mpopd.service");
	int r;

	if (!is_active(u, u->sock)) {
		fprintf(stderr, "mpopdctl: mpopd is not running (%s is not active)\n", u->sock);
		return CTL_NOT_RUNNING;
	}
	if (u->daemon)
		r = systemctl6(u->sc, "stop", "mpopd.service", u->sock, u->tls_sock, NULL, NULL);
	else
		r = systemctl6(u->sc, "stop", u->sock, u->tls_sock, u->instances, u->tls_instances,
			       NULL);
	if (r != 0)
		return CTL_FAILED;
	r = systemctl6(u->sc, "start", u->sock, u->tls_sock, service ? "mpopd.service" : NULL, NULL,
		       NULL);
	if (r != 0)
		return CTL_FAILED;
	printf("mpopd refreshed: sessions ended without UPDATE, %s%s%s restarted\n", u->sock,
	       u->tls_sock ? " and " : "", u->tls_sock ? u->tls_sock : "");
	return CTL_OK;
}

/* -c names the file the units read, or it is refused: the units run mpopd without -c. */
static gboolean
config_fits_units(const Ctl *ctl)
{
	g_autofree char *want = NULL, *have = NULL;

	if (!ctl->config)
		return TRUE;
	want = realpath(ctl->config, NULL);
	have = realpath(MPOPD_DEFAULT_CONFIG, NULL);
	if (want && have && strcmp(want, have) == 0)
		return TRUE;
	fprintf(stderr,
		"mpopdctl: -c %s does not apply under systemd: the units read %s (give mpopd "
		"-c FILE in ExecStart= with systemctl edit, and the same -c to mpopdctl check); "
		"MPOPDCTL_NO_SYSTEMD=1 manages a legacy daemon instead\n",
		ctl->config, MPOPD_DEFAULT_CONFIG);
	return FALSE;
}

static int
systemd_verb(const Ctl *ctl, const char *sc)
{
	const char *v = ctl->verb;
	Units u;
	int r;

	if (ctl->port) {
		u = find_units(sc);
		fprintf(stderr,
			"mpopdctl: -p does not apply under systemd: the port is set in %s "
			"(systemctl edit %s)\n",
			u.sock, u.sock);
		return CTL_USAGE;
	}
	if (!config_fits_units(ctl))
		return CTL_USAGE;
	u = find_units(sc);
	if (strcmp(v, "status") == 0)
		return systemctl6(sc, "status", u.sock, u.tls_sock,
				  u.daemon ? "mpopd.service" : NULL, NULL, NULL);
	if (strcmp(v, "stop") == 0)
		return sd_result(systemctl6(sc, "stop", u.sock, u.tls_sock,
					    u.daemon ? "mpopd.service" : NULL, NULL, NULL));
	/* Everything else starts or changes what serves: the file must be valid. */
	if ((r = check_config(ctl, TRUE)) != CTL_OK)
		return r;
	if (strcmp(v, "config") == 0 || strcmp(v, "reload") == 0)
		return sd_reload(&u);
	if (strcmp(v, "refresh") == 0)
		return sd_refresh(&u);
	/* A socket cannot be restarted under its running service: restart the service. */
	if (strcmp(v, "restart") == 0 && u.daemon)
		return sd_result(systemctl(sc, "restart", "mpopd.service", NULL));
	return sd_result(systemctl(sc, v, u.sock, u.tls_sock));
}

/* ---- the pid file of a legacy daemon: "pid\nport\n", written by mpopd itself */

/* The configured pid file, or NULL with the reason on stderr and *out_status set. */
static char *
pid_file_path(const Ctl *ctl, int *out_status)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;

	if ((*out_status = config_readable(ctl)) != CTL_OK)
		return NULL;
	cfg = mpop_config_load(ctl->config, ctl->config != NULL, &error);
	if (!cfg) {
		fprintf(stderr, "mpopdctl: %s\n", error->message);
		*out_status = CTL_CONFIG;
		return NULL;
	}
	if (!cfg->pid_file || !*cfg->pid_file) {
		fprintf(stderr, "mpopdctl: no pid file configured ([server] pid_file in %s)\n",
			cfg->path);
		*out_status = CTL_CONFIG;
		return NULL;
	}
	return g_strdup(cfg->pid_file);
}

/* Returns 0, -ENOENT when there is no pid file, -EACCES when we may not read it, -EINVAL
 * when it is malformed. The port (may be NULL) is the second line when it is a valid port
 * number, else NULL. */
static int
read_pid_file(const char *path, pid_t *out_pid, char **out_port)
{
	char buf[128];
	mpop_autofd fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	g_auto(GStrv) lines = NULL;
	guint64 pid, port;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT || errno == EACCES ? -errno : -EINVAL;
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

/* What the pid file says: CTL_OK with the pid of the running daemon (and its port),
 * CTL_NOT_RUNNING without a pid file, CTL_STALE when it names no running mpopd or is
 * malformed, CTL_PERMISSION when it cannot be read. Nothing printed. */
static int
pid_file_state(const char *path, pid_t *out_pid, char **out_port)
{
	int r = read_pid_file(path, out_pid, out_port);

	if (r == -ENOENT)
		return CTL_NOT_RUNNING;
	if (r == -EACCES)
		return CTL_PERMISSION;
	if (r < 0) {
		*out_pid = 0;
		return CTL_STALE;
	}
	return pid_is_mpopd(*out_pid) ? CTL_OK : CTL_STALE;
}

/* The running daemon's pid, or 0 with the message on stderr and *out_status set:
 * not running (also for a stale pid file) or permission denied. */
static pid_t
running_pid(const Ctl *ctl, int *out_status)
{
	g_autofree char *path = pid_file_path(ctl, out_status);
	pid_t pid = 0;

	if (!path)
		return 0;
	switch (pid_file_state(path, &pid, NULL)) {
	case CTL_OK:
		if (kill(pid, 0) < 0 && errno == EPERM) {
			fprintf(stderr,
				"mpopdctl: permission denied: mpopd (pid %d) runs as "
				"another user\n",
				(int)pid);
			*out_status = CTL_PERMISSION;
			return 0;
		}
		*out_status = CTL_OK;
		return pid;
	case CTL_PERMISSION:
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		*out_status = CTL_PERMISSION;
		return 0;
	case CTL_STALE:
		fprintf(stderr,
			"mpopdctl: mpopd is not running (stale pid file %s names no running "
			"mpopd)\n",
			path);
		break;
	default:
		fprintf(stderr, "mpopdctl: mpopd is not running (no pid file %s)\n", path);
		break;
	}
	*out_status = CTL_NOT_RUNNING;
	return 0;
}

static int
signal_pid(pid_t pid, int sig)
{
	if (kill(pid, sig) == 0)
		return CTL_OK;
	fprintf(stderr, "mpopdctl: cannot signal mpopd (pid %d): %s\n", (int)pid,
		g_strerror(errno));
	return errno == EPERM ? CTL_PERMISSION : CTL_FAILED;
}

/* Whether we may create or replace the pid file: checked before mpopd starts, so that the
 * answer is "permission denied" rather than mpopd's failure. */
static int
pid_file_writable(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);

	if (access(path, W_OK) == 0 || (errno == ENOENT && access(dir, W_OK | X_OK) == 0))
		return CTL_OK;
	if (errno != EACCES && errno != EPERM && errno != EROFS)
		return CTL_OK; /* let mpopd say what is wrong */
	fprintf(stderr, "mpopdctl: permission denied: cannot write the pid file %s: %s\n", path,
		g_strerror(errno));
	return CTL_PERMISSION;
}

static int
start_daemon(const Ctl *ctl, const char *path)
{
	g_auto(GStrv) argv = mpopd_argv(ctl, ctl->port, NULL);
	g_autofree char *got_port = NULL;
	pid_t child = spawn(argv, SPAWN_NULL_STDIN | SPAWN_NULL_STDOUT), pid;
	int status;

	if (child < 0)
		return CTL_FAILED;
	for (int i = 0; i < WAIT_STEPS; i++) {
		/* The direct child exits 0 once it has bound and forked into the background;
		 * its errors (a port in use, a locked pid file) reach our stderr. */
		if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
			child = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "mpopdctl: mpopd could not be started\n");
				return CTL_FAILED;
			}
		}
		g_clear_pointer(&got_port, g_free);
		if (read_pid_file(path, &pid, &got_port) == 0 && pid_is_mpopd(pid)) {
			printf("mpopd started as pid %d%s%s\n", (int)pid,
			       got_port ? " on port " : "", got_port ? got_port : "");
			return CTL_OK;
		}
		g_usleep(WAIT_STEP_US);
	}
	fprintf(stderr, "mpopdctl: mpopd did not write its pid file %s within 10 s\n", path);
	return CTL_FAILED;
}

static int
verb_start(Ctl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	pid_t pid;

	if (!path)
		return r;
	r = pid_file_state(path, &pid, NULL);
	if (r == CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd is already running as pid %d (pid file %s)\n",
			(int)pid, path);
		return CTL_RUNNING;
	}
	if (r == CTL_PERMISSION) {
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		return r;
	}
	if (r == CTL_STALE) {
		if (!ctl->force) {
			fprintf(stderr,
				"mpopdctl: stale pid file %s (it names no running mpopd); -f "
				"removes it\n",
				path);
			return CTL_STALE;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			fprintf(stderr, "mpopdctl: cannot remove %s: %s\n", path,
				g_strerror(errno));
			return errno == EACCES || errno == EPERM ? CTL_PERMISSION : CTL_FAILED;
		}
	}
	if ((r = pid_file_writable(path)) != CTL_OK || (r = check_config(ctl, TRUE)) != CTL_OK)
		return r;
	return start_daemon(ctl, path);
}

static int
stop_pid(pid_t pid)
{
	int r = signal_pid(pid, SIGTERM);

	if (r != CTL_OK)
		return r;
	if (!wait_gone(pid)) {
		fprintf(stderr, "mpopdctl: mpopd (pid %d) did not stop within 10 s\n", (int)pid);
		return CTL_FAILED;
	}
	printf("mpopd (pid %d) stopped\n", (int)pid);
	return CTL_OK;
}

static int
verb_stop(Ctl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	return pid ? stop_pid(pid) : r;
}

/* Stop, wait, start again: with -p on that port, else on the configuration's (a port the
 * pid file names is never pinned on the new command line). */
static int
verb_restart(Ctl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	pid_t pid;

	if (!path)
		return r;
	if (pid_file_state(path, &pid, NULL) != CTL_OK)
		return verb_start(ctl); /* refuses a stale pid file without -f */
	/* The configuration must be valid before the running daemon goes away. */
	if ((r = check_config(ctl, TRUE)) != CTL_OK)
		return r;
	/* Wait for the old daemon to be gone so the new one can bind the port (the original
	 * started the new one at once and raced the old one's listener). */
	if ((r = stop_pid(pid)) != CTL_OK)
		return r;
	return start_daemon(ctl, path);
}

/* SIGHUP: mpopd ends every session without UPDATE, re-reads the file and binds again. */
static int
verb_refresh(Ctl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	if (!pid)
		return r;
	if ((r = check_config(ctl, TRUE)) != CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd was not refreshed\n");
		return r;
	}
	if ((r = signal_pid(pid, SIGHUP)) != CTL_OK)
		return r;
	printf("mpopd (pid %d) refreshed: sessions end without UPDATE, the configured ports "
	       "are bound again\n",
	       (int)pid);
	return CTL_OK;
}

/* SIGUSR1: mpopd re-reads the file for new sessions. */
static int
reload_legacy(Ctl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	if (!pid)
		return r;
	if ((r = check_config(ctl, TRUE)) != CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd was not signalled\n");
		return r;
	}
	if ((r = signal_pid(pid, SIGUSR1)) != CTL_OK)
		return r;
	printf("mpopd (pid %d) signalled to re-read its configuration for new sessions\n",
	       (int)pid);
	return CTL_OK;
}

static int
verb_status(Ctl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	g_autofree char *port = NULL;
	pid_t pid;

	if (!path)
		return 4; /* LSB: program or service status is unknown */
	switch (pid_file_state(path, &pid, &port)) {
	case CTL_OK:
		printf("mpopd is running as pid %d%s%s\n", (int)pid, port ? " on port " : "",
		       port ? port : "");
		return 0;
	case CTL_STALE:
		printf("mpopd is not running, but its pid file %s remains (stale)\n", path);
		return 1; /* LSB: program is dead and the pid file exists */
	case CTL_PERMISSION:
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		return 4;
	default:
		printf("mpopd is not running\n");
		return 3; /* LSB: program is not running */
	}
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

/* config -e: $VISUAL, else $EDITOR, else vi on the file, then check it and ask. Returns
 * -1 to go on and reload, else the exit status. */
static int
edit_config(Ctl *ctl)
{
	const char *editor = g_getenv("VISUAL");
	const char *path = config_path(ctl);
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) argv = NULL;
	int argc, r;

	if (!editor || !*editor)
		editor = g_getenv("EDITOR");
	/* The editor may carry options ("emacs -nw"): split it like a shell would, run no
	 * shell. */
	if (!editor || !*editor)
		editor = "vi";
	if (!g_shell_parse_argv(editor, &argc, &argv, &error)) {
		fprintf(stderr, "mpopdctl: editor \"%s\": %s\n", editor, error->message);
		return CTL_USAGE;
	}
	argv = g_realloc_n(argv, (size_t)argc + 2, sizeof *argv);
	argv[argc] = g_strdup(path);
	argv[argc + 1] = NULL;
	if ((r = run(argv, SPAWN_PATH)) != 0) {
		fprintf(stderr, "mpopdctl: %s exited with status %d; mpopd was not signalled\n",
			argv[0], r);
		return CTL_FAILED;
	}
	if ((r = check_config(ctl, TRUE)) != CTL_OK) {
		fprintf(stderr, "mpopdctl: %s is not valid; mpopd was not signalled\n", path);
		return r;
	}
	if (!ask_yes("Signal mpopd to re-read its configuration")) {
		printf("mpopd did not re-read its configuration\n");
		return CTL_OK;
	}
	return -1;
}

/* config (reload): mpopd re-reads its file for new sessions; -e edits it first. */
static int
verb_config(Ctl *ctl)
{
	g_autofree char *sysctl = systemctl_path();
	int r;

	if (sysctl && !config_fits_units(ctl))
		return CTL_USAGE;
	if (ctl->edit && (r = edit_config(ctl)) >= 0)
		return r;
	return sysctl ? systemd_verb(ctl, sysctl) : reload_legacy(ctl);
}

static int
verb_show_config(Ctl *ctl)
{
	return check_config(ctl, FALSE);
}

static int
verb_check(Ctl *ctl)
{
	int r = check_config(ctl, TRUE);

	if (r == CTL_OK)
		printf("%s is valid\n", config_path(ctl));
	return r;
}

static int
verb_passwd(Ctl *ctl)
{
	return mpop_ctl_passwd(ctl->scheme);
}

static int
verb_stats(Ctl *ctl)
{
	return mpop_ctl_stats(ctl->argc, ctl->argv);
}

/* ---- the verb table. A verb with arguments of its own sets CTL_OPT_ARGS and reads
 * ctl->argc/argv (argv[0] is the verb) with its own getopt_long; -c before the verb is in
 * ctl->config. */

static const Verb verbs[] = {
	{"start", verb_start, TRUE, "start mpopd (systemd: the socket unit)",
	 CTL_OPT_FORCE | CTL_OPT_PORT, "[-f] [-p port]"},
	{"stop", verb_stop, TRUE, "stop mpopd; sessions end without UPDATE", 0, NULL},
	{"restart", verb_restart, TRUE, "stop, wait, start again (-p: on that port)",
	 CTL_OPT_FORCE | CTL_OPT_PORT, "[-f] [-p port]"},
	{"refresh", verb_refresh, TRUE, "end sessions without UPDATE, bind the ports again", 0,
	 NULL},
	{"config", verb_config, FALSE, "re-read the configuration for new sessions (-e: edit)",
	 CTL_OPT_EDIT, "[-e]"},
	{"reload", verb_config, TRUE, "the same as config", 0, NULL},
	{"status", verb_status, TRUE, "tell whether mpopd is running", 0, NULL},
	{"show-config", verb_show_config, FALSE, "print the effective configuration", 0, NULL},
	{"check", verb_check, FALSE, "validate the configuration", 0, NULL},
	{"passwd", verb_passwd, FALSE, "read a password, print its crypt(5) hash", CTL_OPT_SCHEME,
	 "[--scheme yescrypt|sha512|bcrypt]"},
	{"stats", verb_stats, FALSE, "per-user statistics from the journal or syslog", CTL_OPT_ARGS,
	 "[--since TIME] [--until TIME] [--user NAME] [--json] [--file JOURNAL]... | "
	 "[--directory DIR] | [--syslog FILE]..."},
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
	fprintf(f, "Usage: mpopdctl [-c config] VERB [options]\n"
		   "       mpopdctl [-f] [-p port] start | stop | restart | refresh | [-e] config\n"
		   "\nVerbs:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
		g_autofree char *head =
			g_strdup_printf("%s%s%s", verbs[i].verb, verbs[i].synopsis ? " " : "",
					verbs[i].synopsis ? verbs[i].synopsis : "");
		if (strlen(head) > 22)
			fprintf(f, "  %s\n  %-22s %s\n", head, "", verbs[i].help);
		else
			fprintf(f, "  %-22s %s\n", head, verbs[i].help);
	}
	fprintf(f,
		"\nOptions (before or after the verb):\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -f, --force        start, restart: remove a stale pid file\n"
		"  -p, --port PORT    start, restart: the port (legacy daemon only)\n"
		"  -e, --edit         config: edit the file ($VISUAL, $EDITOR, vi), then ask\n"
		"      --scheme NAME  passwd: the hash scheme (default yescrypt)\n"
		"  -h, --help         print this help\n"
		"\nService verbs use systemctl on a systemd host, else the pid file\n"
		"([server] pid_file; MPOPDCTL_NO_SYSTEMD=1 forces that). Exit status: 0 ok,\n"
		"1 failed, 2 usage, 3 not running, 4 permission denied, 5 already running,\n"
		"6 invalid configuration, 7 stale pid file (status: 0, 1 stale, 3 not running).\n",
		MPOPD_DEFAULT_CONFIG);
}

static const struct option longopts[] = {
	{"force", no_argument, NULL, 'f'},
	{"port", required_argument, NULL, 'p'},
	{"config", required_argument, NULL, 'c'},
	{"edit", no_argument, NULL, 'e'},
	{"scheme", required_argument, NULL, 's'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* One run of getopt over argv; "+" stops at the first word that is not an option (the verb).
 * Returns -1 when done, else an exit status (help printed, or a usage error). */
static int
parse_options(Ctl *ctl, int argc, char **argv, const char *optstring)
{
	guint64 port;
	int c;

	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			ctl->force = TRUE;
			break;
		case 'p':
			if (!g_ascii_string_to_unsigned(optarg, 10, 1, 65535, &port, NULL)) {
				fprintf(stderr, "mpopdctl: \"%s\" is not a port number (1-65535)\n",
					optarg);
				return CTL_USAGE;
			}
			ctl->port = optarg;
			break;
		case 'c':
			ctl->config = optarg;
			break;
		case 'e':
			ctl->edit = TRUE;
			break;
		case 's':
			ctl->scheme = optarg;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	return -1;
}

/* Options that make no sense with the verb are errors, not silently ignored. */
static gboolean
options_fit(const Ctl *ctl, const Verb *verb)
{
	return (!ctl->force || (verb->options & CTL_OPT_FORCE)) &&
	       (!ctl->port || (verb->options & CTL_OPT_PORT)) &&
	       (!ctl->edit || (verb->options & CTL_OPT_EDIT)) &&
	       (!ctl->scheme || (verb->options & CTL_OPT_SCHEME));
}

int
main(int argc, char **argv)
{
	g_autofree char *sysctl = NULL;
	Ctl ctl = {0};
	const Verb *verb;
	int r;

	mpop_log_init("mpopdctl", MPOP_LOG_WARNING);
	if ((r = parse_options(&ctl, argc, argv, "+fp:c:eh")) >= 0)
		return r;
	if (optind >= argc) {
		fprintf(stderr, "mpopdctl: no verb given\n");
		usage(stderr);
		return CTL_USAGE;
	}
	if (!(verb = find_verb(argv[optind]))) {
		g_autofree char *v = mpop_escape_excerpt(argv[optind], strlen(argv[optind]), 40);
		fprintf(stderr, "mpopdctl: unknown verb \"%s\"\n", v);
		usage(stderr);
		return CTL_USAGE;
	}
	ctl.verb = verb->verb;
	ctl.argc = argc - optind;
	ctl.argv = argv + optind;
	if (!(verb->options & CTL_OPT_ARGS)) {
		/* The original took options before the verb; after it is accepted as well. */
		optind = 0; /* glibc: 0 starts a new scan, "+" included */
		if ((r = parse_options(&ctl, ctl.argc, ctl.argv, "+fp:c:eh")) >= 0)
			return r;
		if (optind < ctl.argc) {
			fprintf(stderr, "mpopdctl: one verb at a time (\"%s\" is extra)\n",
				ctl.argv[optind]);
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (!options_fit(&ctl, verb)) {
		fprintf(stderr, "mpopdctl: an option given does not apply to \"%s\"\n", ctl.verb);
		usage(stderr);
		return CTL_USAGE;
	}
	if (verb->service && (sysctl = systemctl_path()))
		return systemd_verb(&ctl, sysctl);
	return verb->handler(&ctl);
}
