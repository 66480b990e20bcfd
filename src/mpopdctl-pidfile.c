/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl for a legacy daemon: its pid file ("pid\nport\n", written by mpopd) and signals. */
#include "mpopdctl.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_STEP_US (100 * 1000)
#define WAIT_STEPS 100 /* 10 s */

/* The configured pid file, or NULL with the reason on stderr and *out_status set. */
static char *
pid_file_path(const MpopCtl *ctl, int *out_status)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(MpopConfig) cfg = NULL;

	if ((*out_status = mpop_ctl_config_readable(ctl)) != MPOP_CTL_OK)
		return NULL;
	cfg = mpop_config_load(ctl->config, ctl->config != NULL, &error);
	if (!cfg) {
		fprintf(stderr, "mpopdctl: %s\n", error->message);
		*out_status = MPOP_CTL_CONFIG;
		return NULL;
	}
	if (!cfg->pid_file || !*cfg->pid_file) {
		fprintf(stderr, "mpopdctl: no pid file configured ([server] pid_file in %s)\n",
			cfg->path);
		*out_status = MPOP_CTL_CONFIG;
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

/* What the pid file says: MPOP_CTL_OK with the pid of the running daemon (and its port),
 * MPOP_CTL_NOT_RUNNING without a pid file, MPOP_CTL_STALE when it names no running mpopd or is
 * malformed, MPOP_CTL_PERMISSION when it cannot be read. Nothing printed. */
static int
pid_file_state(const char *path, pid_t *out_pid, char **out_port)
{
	int r = read_pid_file(path, out_pid, out_port);

	if (r == -ENOENT)
		return MPOP_CTL_NOT_RUNNING;
	if (r == -EACCES)
		return MPOP_CTL_PERMISSION;
	if (r < 0) {
		*out_pid = 0;
		return MPOP_CTL_STALE;
	}
	return pid_is_mpopd(*out_pid) ? MPOP_CTL_OK : MPOP_CTL_STALE;
}

/* The running daemon's pid, or 0 with the message on stderr and *out_status set:
 * not running (also for a stale pid file) or permission denied. */
static pid_t
running_pid(const MpopCtl *ctl, int *out_status)
{
	g_autofree char *path = pid_file_path(ctl, out_status);
	pid_t pid = 0;

	if (!path)
		return 0;
	switch (pid_file_state(path, &pid, NULL)) {
	case MPOP_CTL_OK:
		if (kill(pid, 0) < 0 && errno == EPERM) {
			fprintf(stderr,
				"mpopdctl: permission denied: mpopd (pid %d) runs as "
				"another user\n",
				(int)pid);
			*out_status = MPOP_CTL_PERMISSION;
			return 0;
		}
		*out_status = MPOP_CTL_OK;
		return pid;
	case MPOP_CTL_PERMISSION:
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		*out_status = MPOP_CTL_PERMISSION;
		return 0;
	case MPOP_CTL_STALE:
		fprintf(stderr,
			"mpopdctl: mpopd is not running (stale pid file %s names no running "
			"mpopd)\n",
			path);
		break;
	default:
		fprintf(stderr, "mpopdctl: mpopd is not running (no pid file %s)\n", path);
		break;
	}
	*out_status = MPOP_CTL_NOT_RUNNING;
	return 0;
}

static int
signal_pid(pid_t pid, int sig)
{
	if (kill(pid, sig) == 0)
		return MPOP_CTL_OK;
	fprintf(stderr, "mpopdctl: cannot signal mpopd (pid %d): %s\n", (int)pid,
		g_strerror(errno));
	return errno == EPERM ? MPOP_CTL_PERMISSION : MPOP_CTL_FAILED;
}

/* Whether we may create or replace the pid file: checked before mpopd starts, so that the
 * answer is "permission denied" rather than mpopd's failure. */
static int
pid_file_writable(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);

	if (access(path, W_OK) == 0 || (errno == ENOENT && access(dir, W_OK | X_OK) == 0))
		return MPOP_CTL_OK;
	if (errno != EACCES && errno != EPERM && errno != EROFS)
		return MPOP_CTL_OK; /* let mpopd say what is wrong */
	fprintf(stderr, "mpopdctl: permission denied: cannot write the pid file %s: %s\n", path,
		g_strerror(errno));
	return MPOP_CTL_PERMISSION;
}

static int
start_daemon(const MpopCtl *ctl, const char *path)
{
	g_auto(GStrv) argv = mpop_ctl_mpopd_argv(ctl, ctl->port, NULL);
	g_autofree char *got_port = NULL;
	pid_t child = mpop_ctl_spawn(argv, MPOP_CTL_SPAWN_NULL_STDIN | MPOP_CTL_SPAWN_NULL_STDOUT),
	      pid;
	int status;

	if (child < 0)
		return MPOP_CTL_FAILED;
	for (int i = 0; i < WAIT_STEPS; i++) {
		/* The direct child exits 0 once it has bound and forked into the background;
		 * its errors (a port in use, a locked pid file) reach our stderr. */
		if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
			child = 0;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				fprintf(stderr, "mpopdctl: mpopd could not be started\n");
				return MPOP_CTL_FAILED;
			}
		}
		g_clear_pointer(&got_port, g_free);
		if (read_pid_file(path, &pid, &got_port) == 0 && pid_is_mpopd(pid)) {
			printf("mpopd started as pid %d%s%s\n", (int)pid,
			       got_port ? " on port " : "", got_port ? got_port : "");
			return MPOP_CTL_OK;
		}
		g_usleep(WAIT_STEP_US);
	}
	fprintf(stderr, "mpopdctl: mpopd did not write its pid file %s within 10 s\n", path);
	return MPOP_CTL_FAILED;
}

int
mpop_ctl_start(MpopCtl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	pid_t pid;

	if (!path)
		return r;
	r = pid_file_state(path, &pid, NULL);
	if (r == MPOP_CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd is already running as pid %d (pid file %s)\n",
			(int)pid, path);
		return MPOP_CTL_RUNNING;
	}
	if (r == MPOP_CTL_PERMISSION) {
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		return r;
	}
	if (r == MPOP_CTL_STALE) {
		if (!ctl->force) {
			fprintf(stderr,
				"mpopdctl: stale pid file %s (it names no running mpopd); -f "
				"removes it\n",
				path);
			return MPOP_CTL_STALE;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			fprintf(stderr, "mpopdctl: cannot remove %s: %s\n", path,
				g_strerror(errno));
			return errno == EACCES || errno == EPERM ? MPOP_CTL_PERMISSION
								 : MPOP_CTL_FAILED;
		}
	}
	if ((r = pid_file_writable(path)) != MPOP_CTL_OK ||
	    (r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK)
		return r;
	return start_daemon(ctl, path);
}

static int
stop_pid(pid_t pid)
{
	int r = signal_pid(pid, SIGTERM);

	if (r != MPOP_CTL_OK)
		return r;
	if (!wait_gone(pid)) {
		fprintf(stderr, "mpopdctl: mpopd (pid %d) did not stop within 10 s\n", (int)pid);
		return MPOP_CTL_FAILED;
	}
	printf("mpopd (pid %d) stopped\n", (int)pid);
	return MPOP_CTL_OK;
}

int
mpop_ctl_stop(MpopCtl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	return pid ? stop_pid(pid) : r;
}

/* Stop, wait, start again: with -p on that port, else on the configuration's (a port the
 * pid file names is never pinned on the new command line). */
int
mpop_ctl_restart(MpopCtl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	pid_t pid;

	if (!path)
		return r;
	if (pid_file_state(path, &pid, NULL) != MPOP_CTL_OK)
		return mpop_ctl_start(ctl); /* refuses a stale pid file without -f */
	/* The configuration must be valid before the running daemon goes away. */
	if ((r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK)
		return r;
	/* Wait for the old daemon to be gone so the new one can bind the port (the original
	 * started the new one at once and raced the old one's listener). */
	if ((r = stop_pid(pid)) != MPOP_CTL_OK)
		return r;
	return start_daemon(ctl, path);
}

/* SIGHUP: mpopd ends every session without UPDATE, re-reads the file and binds again. */
int
mpop_ctl_refresh(MpopCtl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	if (!pid)
		return r;
	if ((r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd was not refreshed\n");
		return r;
	}
	if ((r = signal_pid(pid, SIGHUP)) != MPOP_CTL_OK)
		return r;
	printf("mpopd (pid %d) refreshed: sessions end without UPDATE, the configured ports "
	       "are bound again\n",
	       (int)pid);
	return MPOP_CTL_OK;
}

/* SIGUSR1: mpopd re-reads the file for new sessions. */
int
mpop_ctl_reload(MpopCtl *ctl)
{
	int r;
	pid_t pid = running_pid(ctl, &r);

	if (!pid)
		return r;
	if ((r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK) {
		fprintf(stderr, "mpopdctl: mpopd was not signalled\n");
		return r;
	}
	if ((r = signal_pid(pid, SIGUSR1)) != MPOP_CTL_OK)
		return r;
	printf("mpopd (pid %d) signalled to re-read its configuration for new sessions\n",
	       (int)pid);
	return MPOP_CTL_OK;
}

int
mpop_ctl_status(MpopCtl *ctl)
{
	int r;
	g_autofree char *path = pid_file_path(ctl, &r);
	g_autofree char *port = NULL;
	pid_t pid;

	if (!path)
		return 4; /* LSB: program or service status is unknown */
	switch (pid_file_state(path, &pid, &port)) {
	case MPOP_CTL_OK:
		printf("mpopd is running as pid %d%s%s\n", (int)pid, port ? " on port " : "",
		       port ? port : "");
		return 0;
	case MPOP_CTL_STALE:
		printf("mpopd is not running, but its pid file %s remains (stale)\n", path);
		return 1; /* LSB: program is dead and the pid file exists */
	case MPOP_CTL_PERMISSION:
		fprintf(stderr, "mpopdctl: permission denied: cannot read the pid file %s\n", path);
		return 4;
	default:
		printf("mpopd is not running\n");
		return 3; /* LSB: program is not running */
	}
}
