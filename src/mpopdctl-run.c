/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl: running mpopd, systemctl and the editor (fork + execv, never a shell). */
#include "mpopdctl.h"
#include "mpopd-build.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
pid_t
mpop_ctl_spawn(char **argv, int flags)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "mpopdctl: fork: %s\n", g_strerror(errno));
		return -1;
	}
	if (pid == 0) {
		if (flags & MPOP_CTL_SPAWN_NULL_STDIN)
			redirect_null(STDIN_FILENO, O_RDONLY);
		if (flags & MPOP_CTL_SPAWN_NULL_STDOUT)
			redirect_null(STDOUT_FILENO, O_WRONLY);
		if (flags & MPOP_CTL_SPAWN_NULL_STDERR)
			redirect_null(STDERR_FILENO, O_WRONLY);
		if (flags & MPOP_CTL_SPAWN_PATH)
			execvp(argv[0], argv);
		else
			execv(argv[0], argv);
		fprintf(stderr, "mpopdctl: cannot run %s: %s\n", argv[0], g_strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Run argv to completion. Returns its exit status, or 127/128+signal like a shell. */
int
mpop_ctl_run(char **argv, int flags)
{
	pid_t pid = mpop_ctl_spawn(argv, flags);
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
GStrv
mpop_ctl_mpopd_argv(const MpopCtl *ctl, const char *arg1, const char *arg2)
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

const char *
mpop_ctl_config_path(const MpopCtl *ctl)
{
	return ctl->config ? ctl->config : MPOPD_DEFAULT_CONFIG;
}

/* mpopd --check-config [--quiet]: everything mpopd checks at start (the file, the auth
 * backends, the host rules, the certificate). Its message (file, group and key) goes to our
 * stderr. Returns MPOP_CTL_OK, MPOP_CTL_CONFIG or MPOP_CTL_FAILED (mpopd did not run). */
int
mpop_ctl_check_config(const MpopCtl *ctl, gboolean quiet)
{
	g_auto(GStrv) argv = mpop_ctl_mpopd_argv(ctl, "--check-config", quiet ? "--quiet" : NULL);
	int r = mpop_ctl_run(argv, 0);

	if (r == 0)
		return MPOP_CTL_OK;
	if (r == 1)
		return MPOP_CTL_CONFIG;
	fprintf(stderr, "mpopdctl: %s --check-config failed (status %d)\n", argv[0], r);
	return MPOP_CTL_FAILED;
}

/* A configuration file we may not read is a permission problem, not an invalid file. */
int
mpop_ctl_config_readable(const MpopCtl *ctl)
{
	const char *path = mpop_ctl_config_path(ctl);

	if (access(path, R_OK) < 0 && errno == EACCES) {
		fprintf(stderr, "mpopdctl: permission denied: cannot read %s\n", path);
		return MPOP_CTL_PERMISSION;
	}
	return MPOP_CTL_OK;
}
