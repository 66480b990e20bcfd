/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Running the plugin backend's program: fork, a fixed fd layout, execve, a deadline, bounded
 * output, and no process left behind. */
#include "auth-plugin.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* In the child between fork() and execve(): only async-signal-safe calls. Returns 0 or
 * the failed step (errno set). fds are stdin, stdout, stderr and fd 3 to be. */
static int
child_setup(const MpopPluginExec *x, int fds[4], int *report_fd)
{
	sigset_t none;

	if (setsid() < 0)
		return 1;
	/* Out of the way of 0..3 first, then into place (dup2 clears close-on-exec). */
	for (int i = 0; i < 4; i++)
		if ((fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
			return 2;
	if ((*report_fd = fcntl(*report_fd, F_DUPFD_CLOEXEC, 10)) < 0)
		return 2;
	for (int i = 0; i < 4; i++)
		if (dup2(fds[i], i) < 0)
			return 2;
	/* Everything else closes at execve (the report pipe must stay open until then). */
	if (close_range(4, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
		for (int fd = 4; fd < 65536; fd++)
			if (fd != *report_fd)
				close(fd);
	umask(077);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (x->drop &&
	    (setgroups((size_t)x->n_groups, x->groups) < 0 ||
	     setresgid(x->gid, x->gid, x->gid) < 0 || setresuid(x->uid, x->uid, x->uid) < 0))
		return 3;
	/* After the drop, which would clear it: the program does not outlive mpopd. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return 0;
}

/* A failure before the program runs goes to the parent as {step, errno} on report_fd
 * (close-on-exec: a successful execve closes it without a word). */
G_GNUC_NORETURN static void
child_run(const MpopPluginExec *x, int fds[4], int report_fd)
{
	int err[2];

	err[0] = child_setup(x, fds, &report_fd);
	if (err[0] == 0) {
		execve(x->argv[0], x->argv, x->envp);
		err[0] = 4;
	}
	err[1] = errno;
	if (write(report_fd, err, sizeof err) != (ssize_t)sizeof err)
		_exit(126);
	_exit(127);
}

/* The parent's side of one run. */
typedef struct {
	pid_t pid;
	int pidfd; /* -1 without pidfd_open(): then the child is looked at every 10 ms */
	int out_fd, err_fd, report_fd;
	int report[2]; /* {step, errno} from a child that could not start the program */
	size_t report_len;
	int lost; /* errno of a failed waitid(): someone else reaped the program */
	MpopPluginOutcome *o;
} PluginRun;

/* A pipe whose read end (ours) does not block; the program's end stays blocking, as
 * programs expect of their stdout. */
static int
nonblock_pipe(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = -errno;
		mpop_close_fdp(&p[0]);
		mpop_close_fdp(&p[1]);
		return r;
	}
	return 0;
}

/* Read what is there, keeping the first keep bytes and dropping the rest; at most 64 KiB
 * per call, so a program that writes without end cannot hold us past the deadline. The fd
 * is closed at EOF or error. */
static void
drain(int *fd, GString *into, size_t keep)
{
	char buf[4096];

	for (int i = 0; i < 16; i++) {
		ssize_t n = read(*fd, buf, sizeof buf);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			mpop_close_fdp(fd);
			return;
		}
		if (into->len < keep)
			g_string_append_len(into, buf, (gssize)MIN((size_t)n, keep - into->len));
	}
}

static gboolean
child_exited(PluginRun *run)
{
	siginfo_t si = {0};

	if (waitid(P_PID, (id_t)run->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		/* Reaped behind our back (SIGCHLD ignored?): its status is gone. */
		run->lost = errno;
		return TRUE;
	}
	return si.si_pid == run->pid;
}

static void
read_report(PluginRun *run)
{
	char *dst = (char *)run->report + run->report_len;
	ssize_t n = read(run->report_fd, dst, sizeof run->report - run->report_len);

	if (n > 0)
		run->report_len += (size_t)n;
	else if (n == 0 || errno != EAGAIN)
		mpop_close_fdp(&run->report_fd);
}

static void
collect(PluginRun *run)
{
	if (run->out_fd >= 0)
		drain(&run->out_fd, run->o->out, MPOP_PLUGIN_ANSWER_MAX + 1);
	if (run->err_fd >= 0)
		drain(&run->err_fd, run->o->err, MPOP_PLUGIN_STDERR_KEEP);
	if (run->report_fd >= 0)
		read_report(run);
}

/* Wait for the program to exit, collecting stdout and stderr, until the deadline. */
static void
watch(PluginRun *run, guint64 deadline)
{
	for (;;) {
		struct pollfd p[4];
		int n = 0, ms;
		guint64 now = mpop_now_usec();

		if (run->o->out->len > MPOP_PLUGIN_ANSWER_MAX) {
			run->o->end = MPOP_PLUGIN_TOO_MUCH;
			return;
		}
		if (child_exited(run)) {
			collect(run);
			run->o->end = run->o->out->len > MPOP_PLUGIN_ANSWER_MAX
					      ? MPOP_PLUGIN_TOO_MUCH
					      : MPOP_PLUGIN_EXITED;
			return;
		}
		if (now >= deadline) {
			run->o->end = MPOP_PLUGIN_TIMEOUT;
			return;
		}
		ms = (int)MIN((deadline - now + 999) / 1000, 60000u);
		if (run->pidfd < 0)
			ms = MIN(ms, 10); /* no pidfd: look at the child every 10 ms */
		if (run->out_fd >= 0)
			p[n++] = (struct pollfd){.fd = run->out_fd, .events = POLLIN};
		if (run->err_fd >= 0)
			p[n++] = (struct pollfd){.fd = run->err_fd, .events = POLLIN};
		if (run->report_fd >= 0)
			p[n++] = (struct pollfd){.fd = run->report_fd, .events = POLLIN};
		if (run->pidfd >= 0)
			p[n++] = (struct pollfd){.fd = run->pidfd, .events = POLLIN};
		if (poll(p, (nfds_t)n, ms) < 0 && errno != EINTR) {
			mpop_log_warning("plugin: poll: %s", g_strerror(errno));
			run->o->end = MPOP_PLUGIN_TIMEOUT;
			return;
		}
		collect(run);
	}
}

/* The credentials on fd 3: user\0password\0timestamp\0, at most PIPE_BUF bytes, so one
 * write into the empty pipe completes at once. SIGPIPE (the program closed fd 3 unread)
 * is blocked and consumed rather than left to kill mpopd; the exit status tells the rest. */
static void
send_credentials(int fd, const char *user, const char *password)
{
	char stamp[24], buf[PIPE_BUF];
	const char *parts[] = {user, password, stamp};
	sigset_t pipe_set, old, pending;
	struct timespec zero = {0, 0};
	gboolean was_pending;
	size_t len = 0;

	g_snprintf(stamp, sizeof stamp, "%lld", (long long)time(NULL));
	for (size_t i = 0; i < G_N_ELEMENTS(parts); i++) {
		size_t n = strlen(parts[i]) + 1;

		if (len + n > sizeof buf) {
			/* Longer than any login privsep passes: the program reads EOF. */
			explicit_bzero(buf, len);
			return;
		}
		memcpy(buf + len, parts[i], n);
		len += n;
	}
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	if (write(fd, buf, len) < 0 && errno == EPIPE && !was_pending)
		sigtimedwait(&pipe_set, NULL, &zero);
	sigprocmask(SIG_SETMASK, &old, NULL);
	explicit_bzero(buf, sizeof buf);
}

/* Fork and exec; the parent keeps stdout, stderr and the exec report. Returns 0 or -errno. */
static int
start(const MpopPluginExec *x, const char *user, const char *password, PluginRun *run)
{
	int cred[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, rep[2] = {-1, -1};
	mpop_autofd null_fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int r = 0;

	if (null_fd < 0)
		return -errno;
	if (pipe2(cred, O_CLOEXEC) < 0)
		r = -errno;
	if (r == 0)
		r = nonblock_pipe(out);
	if (r == 0)
		r = nonblock_pipe(err);
	if (r == 0)
		r = nonblock_pipe(rep);
	if (r == 0) {
		run->pid = fork();
		if (run->pid < 0)
			r = -errno;
	}
	if (r == 0 && run->pid == 0) {
		int fds[4] = {null_fd, out[1], err[1], cred[0]};
		child_run(x, fds, rep[1]);
	}
	mpop_close_fdp(&cred[0]);
	mpop_close_fdp(&out[1]);
	mpop_close_fdp(&err[1]);
	mpop_close_fdp(&rep[1]);
	if (r == 0) {
		send_credentials(cred[1], user, password);
		run->pidfd = (int)syscall(SYS_pidfd_open, run->pid, 0);
		run->out_fd = out[0];
		run->err_fd = err[0];
		run->report_fd = rep[0];
		out[0] = err[0] = rep[0] = -1;
	}
	mpop_close_fdp(&cred[1]);
	mpop_close_fdp(&out[0]);
	mpop_close_fdp(&err[0]);
	mpop_close_fdp(&rep[0]);
	return r;
}

/* Kill whatever is left of the program's process group and reap the program. The group
 * id cannot be reused while the unreaped program holds it. kill(pid) as well: before its
 * setsid() the child is still in our group. */
static void
finish(PluginRun *run)
{
	int status = 0, r = 0;

	if (!run->lost) {
		kill(-run->pid, SIGKILL);
		kill(run->pid, SIGKILL);
		while ((r = waitpid(run->pid, &status, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			run->lost = errno;
	}
	if (run->lost) {
		run->o->end = MPOP_PLUGIN_LOST;
		run->o->error = g_strdup_printf("waiting for it: %s", g_strerror(run->lost));
	} else if (run->o->end == MPOP_PLUGIN_EXITED && WIFSIGNALED(status)) {
		run->o->end = MPOP_PLUGIN_SIGNALED;
	}
	run->o->status = WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status);
	mpop_close_fdp(&run->pidfd);
	mpop_close_fdp(&run->out_fd);
	mpop_close_fdp(&run->err_fd);
	mpop_close_fdp(&run->report_fd);
}

static void
take_report(PluginRun *run)
{
	static const char *const steps[] = {"?", "setsid", "dup2", "changing user", "execve"};
	int step = run->report[0] >= 1 && run->report[0] <= 4 ? run->report[0] : 0;

	g_free(run->o->error);
	run->o->end = MPOP_PLUGIN_NOT_STARTED;
	run->o->error = g_strdup_printf("%s: %s", steps[step], g_strerror(run->report[1]));
}

void
mpop_plugin_run(const MpopPluginExec *x, const char *user, const char *password,
		MpopPluginOutcome *out)
{
	PluginRun run = {.pidfd = -1, .out_fd = -1, .err_fd = -1, .report_fd = -1, .o = out};
	guint64 deadline = mpop_now_usec() + (guint64)x->timeout * G_USEC_PER_SEC;
	int r;

	memset(out, 0, sizeof *out);
	out->out = g_string_sized_new(256);
	out->err = g_string_new(NULL);
	r = start(x, user, password, &run);
	if (r < 0) {
		out->end = MPOP_PLUGIN_NOT_STARTED;
		out->error = g_strdup(g_strerror(-r));
		return;
	}
	watch(&run, deadline);
	finish(&run);
	if (run.report_len == sizeof run.report)
		take_report(&run);
}

void
mpop_plugin_outcome_clear(MpopPluginOutcome *o)
{
	if (!o)
		return;
	if (o->out)
		g_string_free(o->out, TRUE);
	if (o->err)
		g_string_free(o->err, TRUE);
	g_free(o->error);
	memset(o, 0, sizeof *o);
}
