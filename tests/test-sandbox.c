/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The pre-login sandbox: what a confined child can and cannot do, TLS handshakes included. */
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(SSL_CTX, SSL_CTX_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SSL, SSL_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EVP_PKEY, EVP_PKEY_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(X509, X509_free)

/* nobody on Debian: the id the confined child runs as when the test runs as root. */
#define UNPRIVILEGED_ID 65534

/* The child runs confined and writes "name=result" lines to report; the parent end of sock
 * (a connected AF_UNIX stream pair) goes to the parent function, which runs meanwhile. */
typedef void (*ChildFn)(int sock, int report, gpointer data);
typedef void (*ParentFn)(int sock, pid_t child, gpointer data);

static void say(int report, const char *name, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
say(int report, const char *name, const char *fmt, ...)
{
	g_autofree char *value = NULL;
	g_autofree char *line = NULL;
	va_list ap;

	va_start(ap, fmt);
	value = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	line = g_strdup_printf("%s=%s\n", name, value);
	if (mpop_write_all(report, line, strlen(line)) < 0)
		_exit(99);
}

/* "ok" or the errno's name: reports read like the expectations. */
static const char *
result_name(long r)
{
	return r >= 0 ? "ok" : strerrorname_np((int)-r);
}

static long
sys_result(long r)
{
	return r < 0 ? -errno : r;
}

static void
become_unprivileged(void)
{
	/* Root is not needed (no-new-privs lets anyone install a filter), but the pre-login
	 * process is unprivileged, so the child is too when it can be. */
	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) < 0 ||
	    setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) < 0 ||
	    setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) < 0)
		_exit(98);
	/* Changing ids cleared the dumpable flag: set it again, so that /sandbox/limits sees the
	 * sandbox clear it. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		_exit(98);
}

/* Forks a child that confines itself and runs child_fn, runs parent_fn meanwhile, and returns
 * the child's report (with its stderr if capture_stderr); *out_status is its wait status. */
static char *
run_confined_full(ChildFn child_fn, ParentFn parent_fn, gpointer data, gboolean capture_stderr,
		  int *out_status)
{
	GString *report = g_string_new(NULL);
	int sv[2], rep[2];
	char buf[4096];
	ssize_t n;
	pid_t pid;

	g_assert_no_errno(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	g_assert_no_errno(pipe2(rep, O_CLOEXEC));
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		int r;

		close(sv[0]);
		close(rep[0]);
		if (capture_stderr && dup2(rep[1], STDERR_FILENO) < 0)
			_exit(96);
		become_unprivileged();
		r = mpop_sandbox_prelogin();
		say(rep[1], "sandbox", "%s", result_name(r));
		if (r == 0)
			child_fn(sv[1], rep[1], data);
		_exit(0);
	}
	close(sv[1]);
	close(rep[1]);
	if (parent_fn)
		parent_fn(sv[0], pid, data);
	close(sv[0]);
	while ((n = mpop_read_some(rep[0], buf, sizeof(buf))) > 0)
		g_string_append_len(report, buf, n);
	close(rep[0]);
	g_assert_cmpint(waitpid(pid, out_status, 0), ==, pid);
	return g_string_free(report, FALSE);
}

static char *
run_confined(ChildFn child_fn, ParentFn parent_fn, gpointer data, int *out_status)
{
	return run_confined_full(child_fn, parent_fn, data, FALSE, out_status);
}

typedef struct {
	const char *name;
	long (*probe)(int sock);
	const char *expect;
} Probe;

typedef struct {
	const Probe *probes;
	gsize n;
} ProbeTable;

static void
child_probes(int sock, int report, gpointer data)
{
	const ProbeTable *t = data;

	for (gsize i = 0; i < t->n; i++)
		say(report, t->probes[i].name, "%s", result_name(t->probes[i].probe(sock)));
}

/* Echoes whatever the child sends until it closes its end. */
static void
parent_echo(int sock, pid_t child, gpointer data)
{
	char buf[4096];
	ssize_t n;

	while ((n = mpop_read_some(sock, buf, sizeof(buf))) > 0)
		g_assert_cmpint(mpop_write_all(sock, buf, (size_t)n), ==, 0);
}

static void
run_probes(const Probe *probes, gsize n)
{
	ProbeTable t = {probes, n};
	g_autoptr(GString) expect = g_string_new("sandbox=ok\n");
	g_autofree char *report = NULL;
	int status;

	for (gsize i = 0; i < n; i++)
		g_string_append_printf(expect, "%s=%s\n", probes[i].name, probes[i].expect);
	report = run_confined(child_probes, parent_echo, &t, &status);
	g_assert_cmpstr(report, ==, expect->str);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

/* Refused calls. Where the kernel itself would also fail, the probe is built so that it would
 * fail differently (ENOENT, ESRCH, EINVAL, EMFILE): EPERM then shows the filter said no. */

#ifdef SYS_open
static long
probe_open(int sock)
{
	return sys_result(syscall(SYS_open, "/etc/passwd", O_RDONLY | O_CLOEXEC));
}
#endif

static long
probe_openat(int sock)
{
	return sys_result(openat(AT_FDCWD, "/etc/passwd", O_RDONLY | O_CLOEXEC));
}

static long
probe_socket(int sock)
{
	return sys_result(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
}

static long
probe_socketpair(int sock)
{
	int sv[2];

	return sys_result(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
}

static long
probe_pipe(int sock)
{
	int p[2];

	return sys_result(pipe2(p, O_CLOEXEC));
}

static long
probe_dup(int sock)
{
	return sys_result(dup(sock));
}

static long
probe_fcntl_dupfd(int sock)
{
	return sys_result(fcntl(sock, F_DUPFD_CLOEXEC, 0));
}

static long
probe_fcntl_setfd(int sock)
{
	return sys_result(fcntl(sock, F_SETFD, 0));
}

static long
probe_fork(int sock)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return sys_result(pid);
}

static long
probe_clone3(int sock)
{
	/* The kernel refuses a NULL argument with EINVAL. */
	return sys_result(syscall(SYS_clone3, NULL, 0));
}

static long
probe_execve(int sock)
{
	char *const argv[] = {NULL};

	/* The kernel would answer ENOENT. */
	return sys_result(execve("/nonexistent/mpopd-sandbox", argv, argv));
}

static long
probe_kill(int sock)
{
	return sys_result(kill(getpid(), 0));
}

static long
probe_tgkill_signal(int sock)
{
	/* Signal 0 to itself: allowed by the kernel, not by the filter (only SIGABRT). */
	return sys_result(syscall(SYS_tgkill, getpid(), gettid(), 0));
}

static long
probe_tgkill_other(int sock)
{
	/* No such process: the kernel would answer ESRCH. */
	return sys_result(syscall(SYS_tgkill, INT_MAX, INT_MAX, SIGABRT));
}

static long
probe_ptrace(int sock)
{
	/* The kernel would answer ESRCH. */
	return sys_result(ptrace(PTRACE_PEEKDATA, (pid_t)INT_MAX, NULL, NULL));
}

static long
probe_prctl(int sock)
{
	return sys_result(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
}

static long
probe_setrlimit(int sock)
{
	const struct rlimit rl = {64, 64};

	return sys_result(setrlimit(RLIMIT_NOFILE, &rl));
}

static long
probe_mmap_exec(int sock)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p, 4096);
	return 0;
}

static long
probe_mprotect_exec(int sock)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	long r;

	if (p == MAP_FAILED)
		return -errno;
	r = sys_result(mprotect(p, 4096, PROT_READ | PROT_EXEC));
	munmap(p, 4096);
	return r;
}

static long
probe_setsockopt_other(int sock)
{
	int v = 65536;

	return sys_result(setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)));
}

static long
probe_ioctl(int sock)
{
	int n;

	return sys_result(ioctl(sock, FIONREAD, &n));
}

static long
probe_fstat(int sock)
{
	struct stat st;

	return sys_result(fstat(sock, &st));
}

static void
test_denied(void)
{
	static const Probe probes[] = {
#ifdef SYS_open
		{"open", probe_open, "EPERM"},
#endif
		{"openat", probe_openat, "EPERM"},
		{"socket", probe_socket, "EPERM"},
		{"socketpair", probe_socketpair, "EPERM"},
		{"pipe", probe_pipe, "EPERM"},
		{"dup", probe_dup, "EPERM"},
		{"fcntl-dupfd", probe_fcntl_dupfd, "EPERM"},
		{"fcntl-setfd", probe_fcntl_setfd, "EPERM"},
		{"fork", probe_fork, "EPERM"},
		{"clone3", probe_clone3, "EPERM"},
		{"execve", probe_execve, "EPERM"},
		{"kill", probe_kill, "EPERM"},
		{"tgkill-signal", probe_tgkill_signal, "EPERM"},
		{"tgkill-other", probe_tgkill_other, "EPERM"},
		{"ptrace", probe_ptrace, "EPERM"},
		{"prctl", probe_prctl, "EPERM"},
		{"setrlimit", probe_setrlimit, "EPERM"},
		{"mmap-exec", probe_mmap_exec, "EPERM"},
		{"mprotect-exec", probe_mprotect_exec, "EPERM"},
		{"setsockopt-other", probe_setsockopt_other, "EPERM"},
		{"ioctl", probe_ioctl, "EPERM"},
		{"fstat", probe_fstat, "EPERM"},
	};

	run_probes(probes, G_N_ELEMENTS(probes));
}

/* Allowed calls, against parent_echo on the other end of sock. */

static long
expect_echo(int sock, const char *sent)
{
	char buf[64] = "";
	size_t len = strlen(sent);

	if (mpop_read_exact(sock, buf, len) < 0)
		return -EIO;
	return memcmp(buf, sent, len) == 0 ? 0 : -EBADMSG;
}

static long
probe_write_read(int sock)
{
	if (write(sock, "write", 5) != 5)
		return -errno;
	return expect_echo(sock, "write");
}

static long
probe_send_recv(int sock)
{
	char buf[4];

	if (send(sock, "send", 4, MSG_NOSIGNAL) != 4)
		return -errno;
	if (recv(sock, buf, 4, MSG_WAITALL) != 4)
		return -errno;
	return memcmp(buf, "send", 4) == 0 ? 0 : -EBADMSG;
}

static long
probe_writev_readv(int sock)
{
	char got[6];
	struct iovec out[] = {{(void *)"wri", 3}, {(void *)"tev", 3}};
	struct iovec in[] = {{got, 3}, {got + 3, 3}};
	ssize_t n;

	if (writev(sock, out, 2) != 6)
		return -errno;
	n = readv(sock, in, 2);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	if (n < 6 && mpop_read_exact(sock, got + n, (size_t)(6 - n)) < 0)
		return -EIO;
	return memcmp(got, "writev", 6) == 0 ? 0 : -EBADMSG;
}

static long
probe_sendmsg_recvmsg(int sock)
{
	char buf[7];
	struct iovec out = {(void *)"sendmsg", 7}, in = {buf, 7};
	struct msghdr mout = {.msg_iov = &out, .msg_iovlen = 1};
	struct msghdr min = {.msg_iov = &in, .msg_iovlen = 1};

	if (sendmsg(sock, &mout, MSG_NOSIGNAL) != 7)
		return -errno;
	if (recvmsg(sock, &min, MSG_WAITALL) != 7)
		return -errno;
	return memcmp(buf, "sendmsg", 7) == 0 ? 0 : -EBADMSG;
}

static long
probe_poll_n(int sock, nfds_t n)
{
	struct pollfd pfd[3] = {{sock, POLLOUT, 0}, {sock, POLLOUT, 0}, {sock, POLLOUT, 0}};

	g_assert(n <= G_N_ELEMENTS(pfd));
	return sys_result(poll(pfd, n, 5000));
}

static long
probe_poll(int sock)
{
	return probe_poll_n(sock, 1);
}

static long
probe_poll_max(int sock)
{
	return probe_poll_n(sock, MPOP_SANDBOX_POLL_FDS);
}

static long
probe_poll_too_many(int sock)
{
	/* nfds above RLIMIT_NOFILE: the kernel says EINVAL. */
	return probe_poll_n(sock, MPOP_SANDBOX_POLL_FDS + 1);
}

static long
probe_ppoll(int sock)
{
	struct pollfd pfd = {sock, POLLOUT, 0};
	const struct timespec ts = {5, 0};

	return sys_result(ppoll(&pfd, 1, &ts, NULL));
}

static long
probe_nonblock(int sock)
{
	int flags = fcntl(sock, F_GETFL);
	char c;
	long r;

	if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	/* Nothing is pending: EAGAIN instead of blocking. */
	r = sys_result(read(sock, &c, 1));
	if (fcntl(sock, F_SETFL, flags) < 0)
		return -errno;
	return r == -EAGAIN ? 0 : -EBADMSG;
}

static long
probe_fcntl_getfd(int sock)
{
	return sys_result(fcntl(sock, F_GETFD));
}

static long
probe_tcp_cork(int sock)
{
	int on = 1;

	/* Let through to the kernel, which has no TCP_CORK on an AF_UNIX socket. */
	return sys_result(setsockopt(sock, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)));
}

static long
probe_getrandom(int sock)
{
	guint8 buf[64];

	return getrandom(buf, sizeof(buf), 0) == (ssize_t)sizeof(buf) ? 0 : -errno;
}

static long
probe_malloc_64m(int sock)
{
	const gsize size = 64u << 20;
	guint8 *p = g_malloc(size);

	memset(p, 0xa5, size);
	p = g_realloc(p, 2 * size);
	memset(p + size, 0x5a, size);
	g_free(p);
	return 0;
}

static long
probe_gstring(int sock)
{
	g_autoptr(GString) s = g_string_new(NULL);
	g_autoptr(GPtrArray) a = g_ptr_array_new_with_free_func(g_free);

	for (int i = 0; i < 100000; i++) {
		g_string_append_printf(s, "+OK %d octets\r\n", i);
		if (i % 10 == 0)
			g_ptr_array_add(a, g_strdup_printf("%d", i));
	}
	return s->len > 1000000 && a->len == 10000 ? 0 : -EBADMSG;
}

static long
probe_clocks(int sock)
{
	struct timespec ts;

	/* The CPU-time clock is not answered by the vDSO: a real clock_gettime call. */
	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0 ||
	    clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return -errno;
	return mpop_now_usec() > 0 ? 0 : -EBADMSG;
}

static long
probe_sleep(int sock)
{
	const struct timespec ts = {0, 1000000};

	g_usleep(1000);
	if (nanosleep(&ts, NULL) < 0)
		return -errno;
	return -clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
}

static long
probe_getpid(int sock)
{
	return syscall(SYS_getpid) == getpid() && syscall(SYS_gettid) == gettid() ? 0 : -EBADMSG;
}

static long
probe_mmap_rw(int sock)
{
	guint8 *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -errno;
	p[4096] = 1;
	if (mprotect(p, 1 << 20, PROT_READ) < 0 || madvise(p, 1 << 20, MADV_DONTNEED) < 0)
		return -errno;
	p = mremap(p, 1 << 20, 2 << 20, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return -errno;
	return sys_result(munmap(p, 2 << 20));
}

static long
probe_shutdown(int sock)
{
	char c;

	/* The half-close reaches parent_echo, which ends: its end of file reaches us. */
	if (shutdown(sock, SHUT_WR) < 0)
		return -errno;
	return read(sock, &c, 1) == 0 ? 0 : -EBADMSG;
}

static long
probe_close(int sock)
{
	return sys_result(close(sock));
}

static void
test_allowed(void)
{
	static const Probe probes[] = {
		{"write-read", probe_write_read, "ok"},
		{"send-recv", probe_send_recv, "ok"},
		{"writev-readv", probe_writev_readv, "ok"},
		{"sendmsg-recvmsg", probe_sendmsg_recvmsg, "ok"},
		{"poll", probe_poll, "ok"},
		{"poll-max", probe_poll_max, "ok"},
		{"poll-too-many", probe_poll_too_many, "EINVAL"},
		{"ppoll", probe_ppoll, "ok"},
		{"nonblock", probe_nonblock, "ok"},
		{"fcntl-getfd", probe_fcntl_getfd, "ok"},
		{"tcp-cork", probe_tcp_cork, "EOPNOTSUPP"},
		{"getrandom", probe_getrandom, "ok"},
		{"malloc-64m", probe_malloc_64m, "ok"},
		{"gstring", probe_gstring, "ok"},
		{"clocks", probe_clocks, "ok"},
		{"sleep", probe_sleep, "ok"},
		{"getpid", probe_getpid, "ok"},
		{"mmap-rw", probe_mmap_rw, "ok"},
		{"shutdown", probe_shutdown, "ok"}, /* last two: they end parent_echo */
		{"close", probe_close, "ok"},
	};

	run_probes(probes, G_N_ELEMENTS(probes));
}

static void
child_file_write(int sock, int report, gpointer data)
{
	const int *fd = data;

	say(report, "file-write", "%s", result_name(sys_result(write(*fd, "x", 1))));
}

static void
test_file_write(void)
{
	g_autofree char *report = NULL;
	g_autofree char *path = NULL;
	mpop_autofd fd = g_file_open_tmp("sandbox-XXXXXX", &path, NULL);
	int status;

	/* RLIMIT_FSIZE 0 with SIGXFSZ ignored: a log line written to a file fails, the process
	 * lives on. */
	g_assert_cmpint(fd, >=, 0);
	report = run_confined(child_file_write, NULL, &fd, &status);
	g_assert_cmpstr(report, ==, "sandbox=ok\nfile-write=EFBIG\n");
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	g_unlink(path);
}

/* The child announces it is confined, then waits for the parent to look at it from outside. */
static void
child_wait(int sock, int report, gpointer data)
{
	char c;

	if (write(sock, "!", 1) != 1)
		_exit(97);
	while (read(sock, &c, 1) > 0)
		;
}

static char *
proc_field(const char *text, const char *pattern)
{
	g_autoptr(GRegex) re = g_regex_new(pattern, G_REGEX_MULTILINE, 0, NULL);
	g_autoptr(GMatchInfo) m = NULL;

	g_assert_nonnull(re);
	if (!g_regex_match(re, text, 0, &m))
		return g_strdup("(missing)");
	if (g_match_info_get_match_count(m) == 3) {
		g_autofree char *soft = g_match_info_fetch(m, 1);
		g_autofree char *hard = g_match_info_fetch(m, 2);
		return g_strdup_printf("%s %s", soft, hard);
	}
	return g_match_info_fetch(m, 1);
}

static void
parent_inspect(int sock, pid_t child, gpointer data)
{
	g_autofree char *path = g_strdup_printf("/proc/%d", (int)child);
	g_autofree char *limits_path = g_build_filename(path, "limits", NULL);
	g_autofree char *status_path = g_build_filename(path, "status", NULL);
	g_autofree char *limits = NULL, *status = NULL;
	static const struct {
		const char *file, *pattern, *expect;
	} fields[] = {
		{"limits", "^Max processes +(\\S+) +(\\S+)", "0 0"},
		{"limits", "^Max file size +(\\S+) +(\\S+)", "0 0"},
		{"limits", "^Max open files +(\\S+) +(\\S+)",
		 G_STRINGIFY(MPOP_SANDBOX_POLL_FDS) " " G_STRINGIFY(MPOP_SANDBOX_POLL_FDS)},
		{"status", "^NoNewPrivs:\\s+(\\S+)", "1"},
		{"status", "^Seccomp:\\s+(\\S+)", "2"},
		{"status", "^Seccomp_filters:\\s+(\\S+)", "1"},
	};
	struct stat st;
	char c;

	g_assert_cmpint(read(sock, &c, 1), ==, 1);
	g_assert_true(g_file_get_contents(limits_path, &limits, NULL, NULL));
	g_assert_true(g_file_get_contents(status_path, &status, NULL, NULL));
	for (gsize i = 0; i < G_N_ELEMENTS(fields); i++) {
		const char *text = g_str_equal(fields[i].file, "limits") ? limits : status;
		g_autofree char *value = proc_field(text, fields[i].pattern);
		g_autofree char *got = g_strdup_printf("%s: %s", fields[i].pattern, value);
		g_autofree char *want =
			g_strdup_printf("%s: %s", fields[i].pattern, fields[i].expect);
		g_assert_cmpstr(got, ==, want);
	}
	/* The files (not the directory) of a process that is not dumpable are owned by root. */
	g_assert_no_errno(stat(status_path, &st));
	g_assert_cmpuint(st.st_uid, ==, 0);
	if (geteuid() == 0) {
		g_autofree char *uid = proc_field(status, "^Uid:\\s+(\\S+)");
		g_assert_cmpstr(uid, ==, G_STRINGIFY(UNPRIVILEGED_ID));
	}
}

static void
test_limits(void)
{
	g_autofree char *report = NULL;
	int status;

	report = run_confined(child_wait, parent_inspect, NULL, &status);
	g_assert_cmpstr(report, ==, "sandbox=ok\n");
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

/* Signals: a handler installed before the sandbox runs and returns (rt_sigreturn), and a
 * poll() stopped and continued resumes (restart_syscall). */
static volatile sig_atomic_t usr1_seen;

static void
on_usr1(int sig)
{
	usr1_seen = 1;
}

static void
child_signals(int sock, int report, gpointer data)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	char c;
	int r;

	/* Stopped and continued in poll: resumed, then woken by the byte the parent sends. */
	if (write(sock, "1", 1) != 1)
		_exit(97);
	r = poll(&pfd, 1, 10000);
	say(report, "poll-stop-cont", "%s", result_name(r < 0 ? -errno : r == 1 ? 0 : -ETIMEDOUT));
	if (read(sock, &c, 1) != 1)
		_exit(97);
	/* Interrupted by a handled signal: EINTR, and the handler ran. */
	if (write(sock, "2", 1) != 1)
		_exit(97);
	r = poll(&pfd, 1, 10000);
	say(report, "poll-usr1", "%s%s",
	    result_name(r < 0	 ? -errno
			: r == 1 ? 0
				 : -ETIMEDOUT),
	    usr1_seen ? " handled" : "");
	if (write(sock, "3", 1) != 1)
		_exit(97);
}

/* Waits until the child sleeps in the kernel, so that the signal finds it inside poll(). */
static void
wait_sleeping(pid_t child)
{
	g_autofree char *path = g_strdup_printf("/proc/%d/stat", (int)child);

	for (int i = 0; i < 1000; i++) {
		g_autofree char *stat = NULL;
		const char *end;

		g_assert_true(g_file_get_contents(path, &stat, NULL, NULL));
		end = strrchr(stat, ')');
		g_assert_nonnull(end);
		if (end[1] == ' ' && end[2] == 'S')
			return;
		g_usleep(1000);
	}
	g_assert_not_reached();
}

static void
parent_signals(int sock, pid_t child, gpointer data)
{
	int status;
	char c;

	g_assert_cmpint(read(sock, &c, 1), ==, 1);
	wait_sleeping(child);
	g_assert_no_errno(kill(child, SIGSTOP));
	g_assert_cmpint(waitpid(child, &status, WUNTRACED), ==, child);
	g_assert_true(WIFSTOPPED(status));
	g_assert_no_errno(kill(child, SIGCONT));
	g_assert_cmpint(write(sock, "x", 1), ==, 1);
	g_assert_cmpint(read(sock, &c, 1), ==, 1);
	wait_sleeping(child);
	g_assert_no_errno(kill(child, SIGUSR1));
	/* Keep sock open (its end would wake poll() too) until the child is done. */
	g_assert_cmpint(read(sock, &c, 1), ==, 1);
}

static void
test_signals(void)
{
	struct sigaction sa = {.sa_handler = on_usr1}, old;
	g_autofree char *report = NULL;
	int status;

	/* The child inherits the handler: it can no longer install one itself. */
	g_assert_no_errno(sigaction(SIGUSR1, &sa, &old));
	report = run_confined(child_signals, parent_signals, NULL, &status);
	g_assert_no_errno(sigaction(SIGUSR1, &old, NULL));
	g_assert_cmpstr(report, ==, "sandbox=ok\npoll-stop-cont=ok\npoll-usr1=EINTR handled\n");
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

static void
child_abort(int sock, int report, gpointer data)
{
	abort();
}

static void
test_abort(void)
{
	g_autofree char *report = NULL;
	int status;

	/* A failed assertion still ends the process with SIGABRT, not some later signal. */
	report = run_confined(child_abort, NULL, NULL, &status);
	g_assert_cmpstr(report, ==, "sandbox=ok\n");
	g_assert_true(WIFSIGNALED(status));
	g_assert_cmpint(WTERMSIG(status), ==, SIGABRT);
}

#ifdef __x86_64__
static void
child_x32(int sock, int report, gpointer data)
{
	say(report, "x32-getpid", "%s",
	    result_name(sys_result(syscall(__X32_SYSCALL_BIT | SYS_getpid))));
}

static void
test_x32(void)
{
	g_autofree char *report = NULL;
	int status;

	/* An x32 call is the same architecture to seccomp but other numbers: killed. */
	report = run_confined(child_x32, NULL, NULL, &status);
	g_assert_cmpstr(report, ==, "sandbox=ok\n");
	g_assert_true(WIFSIGNALED(status));
	g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
}

static long
i386_getpid(void)
{
	long ret;

	/* The i386 entry point: getpid is 20 there (39 on x86_64). */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return ret;
}

static void
child_i386(int sock, int report, gpointer data)
{
	say(report, "i386-getpid", "%ld", i386_getpid());
}

/* Without the ia32 emulation the int 0x80 entry point itself faults: the filter's i386 check
 * cannot be reached there, and the case is not registered (the x32 case still covers a
 * foreign system call table). */
static gboolean
i386_available(void)
{
	int status;
	pid_t pid = fork();

	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		/* A fault is the expected answer here, not something for a sanitizer to report. */
		const struct sigaction dfl = {.sa_handler = SIG_DFL};
		sigaction(SIGSEGV, &dfl, NULL);
		_exit(i386_getpid() == getpid() ? 0 : 1);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void
test_i386(void)
{
	g_autofree char *report = NULL;
	int status;

	report = run_confined(child_i386, NULL, NULL, &status);
	g_assert_cmpstr(report, ==, "sandbox=ok\n");
	g_assert_true(WIFSIGNALED(status));
	g_assert_cmpint(WTERMSIG(status), ==, SIGSYS);
}
#endif

#ifdef MPOP_HAVE_ASAN
static void
child_overflow(int sock, int report, gpointer data)
{
	/* Through a pointer, so that neither the compiler nor UBSan's object-size check knows the
	 * size: the overflow is AddressSanitizer's to find. */
	gpointer (*volatile alloc)(gsize) = g_malloc;
	char *p = alloc(16);

	p[sock + 16 - sock] = 'x';
	g_free(p);
}

static void
test_asan_report(void)
{
	g_autofree char *report = NULL;
	int status;

	/* AddressSanitizer still finds, reports (on stderr) and exits inside the sandbox. */
	report = run_confined_full(child_overflow, NULL, NULL, TRUE, &status);
	g_test_message("%s", report);
	g_assert_true(g_str_has_prefix(report, "sandbox=ok\n"));
	g_assert_nonnull(strstr(report, "ERROR: AddressSanitizer: heap-buffer-overflow"));
	g_assert_nonnull(strstr(report, "SUMMARY: AddressSanitizer"));
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), !=, 0);
}
#endif

/* TLS: the server context is made before the child confines itself, as mpopd does; the
 * connection, handshake and records happen confined. The client is the parent. */

#define TLS_BULK (70 * 1024)

typedef struct {
	SSL_CTX *server;
	SSL_CTX *client;
	int version;
} TlsCase;

static void
make_identity(EVP_PKEY **out_key, X509 **out_cert)
{
	g_autoptr(EVP_PKEY) key = EVP_EC_gen("P-256");
	g_autoptr(X509) cert = X509_new();
	X509_NAME *name;

	g_assert_nonnull(key);
	g_assert_nonnull(cert);
	g_assert_cmpint(X509_set_version(cert, X509_VERSION_3), ==, 1);
	g_assert_cmpint(ASN1_INTEGER_set(X509_get_serialNumber(cert), 1), ==, 1);
	g_assert_nonnull(X509_gmtime_adj(X509_getm_notBefore(cert), -60));
	g_assert_nonnull(X509_gmtime_adj(X509_getm_notAfter(cert), 3600));
	name = X509_get_subject_name(cert);
	g_assert_cmpint(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
						   (const unsigned char *)"localhost", -1, -1, 0),
			==, 1);
	g_assert_cmpint(X509_set_issuer_name(cert, name), ==, 1);
	g_assert_cmpint(X509_set_pubkey(cert, key), ==, 1);
	g_assert_cmpint(X509_sign(cert, key, EVP_sha256()), >, 0);
	*out_key = g_steal_pointer(&key);
	*out_cert = g_steal_pointer(&cert);
}

static void
tls_case_init(TlsCase *tc, int version)
{
	g_autoptr(EVP_PKEY) key = NULL;
	g_autoptr(X509) cert = NULL;

	make_identity(&key, &cert);
	tc->version = version;
	tc->server = SSL_CTX_new(TLS_server_method());
	g_assert_nonnull(tc->server);
	SSL_CTX_set_security_level(tc->server, 2);
	g_assert_cmpint(SSL_CTX_set_min_proto_version(tc->server, TLS1_2_VERSION), ==, 1);
	g_assert_cmpint(SSL_CTX_use_certificate(tc->server, cert), ==, 1);
	g_assert_cmpint(SSL_CTX_use_PrivateKey(tc->server, key), ==, 1);
	g_assert_cmpint(SSL_CTX_check_private_key(tc->server), ==, 1);

	tc->client = SSL_CTX_new(TLS_client_method());
	g_assert_nonnull(tc->client);
	g_assert_cmpint(SSL_CTX_set_max_proto_version(tc->client, version), ==, 1);
	g_assert_cmpint(X509_STORE_add_cert(SSL_CTX_get_cert_store(tc->client), cert), ==, 1);
	SSL_CTX_set_verify(tc->client, SSL_VERIFY_PEER, NULL);
}

static void
tls_case_clear(TlsCase *tc)
{
	SSL_CTX_free(tc->server);
	SSL_CTX_free(tc->client);
}

static const char *
tls_error(void)
{
	static char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	return buf;
}

static gboolean
tls_read_all(SSL *ssl, guint8 *buf, size_t len)
{
	size_t got = 0, n;

	while (got < len) {
		if (SSL_read_ex(ssl, buf + got, len - got, &n) != 1)
			return FALSE;
		got += n;
	}
	return TRUE;
}

static void
child_tls_server(int sock, int report, gpointer data)
{
	const TlsCase *tc = data;
	g_autoptr(SSL) ssl = SSL_new(tc->server);
	g_autofree guint8 *buf = g_malloc(TLS_BULK);
	size_t n;

	if (!ssl || SSL_set_fd(ssl, sock) != 1) {
		say(report, "ssl-new", "%s", tls_error());
		return;
	}
	if (SSL_accept(ssl) != 1) {
		say(report, "accept", "%s", tls_error());
		return;
	}
	say(report, "accept", "%s %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	/* One short line, then a bulk block of several records, both echoed back. */
	if (!tls_read_all(ssl, buf, 6) || SSL_write_ex(ssl, buf, 6, &n) != 1 ||
	    !tls_read_all(ssl, buf, TLS_BULK) || SSL_write_ex(ssl, buf, TLS_BULK, &n) != 1) {
		say(report, "echo", "%s", tls_error());
		return;
	}
	say(report, "echo", "ok");
	say(report, "shutdown", "%s", SSL_shutdown(ssl) >= 0 ? "ok" : tls_error());
}

static void
parent_tls_client(int sock, pid_t child, gpointer data)
{
	const TlsCase *tc = data;
	g_autoptr(SSL) ssl = SSL_new(tc->client);
	g_autofree guint8 *bulk = g_malloc(TLS_BULK);
	g_autofree guint8 *back = g_malloc(TLS_BULK);
	guint8 line[6];
	size_t n;

	for (size_t i = 0; i < TLS_BULK; i++)
		bulk[i] = (guint8)(i * 7 + 3);
	g_assert_nonnull(ssl);
	g_assert_cmpint(SSL_set_fd(ssl, sock), ==, 1);
	g_assert_cmpint(SSL_set1_host(ssl, "localhost"), ==, 1);
	if (SSL_connect(ssl) != 1) {
		/* The child's report says why; it is printed by the caller's assertion. */
		g_test_message("client: %s", tls_error());
		return;
	}
	g_assert_cmpint(SSL_version(ssl), ==, tc->version);
	g_assert_cmpint(SSL_get_verify_result(ssl), ==, X509_V_OK);
	g_assert_cmpint(SSL_write_ex(ssl, "HELLO\n", 6, &n), ==, 1);
	g_assert_true(tls_read_all(ssl, line, sizeof(line)));
	g_assert_cmpmem(line, sizeof(line), "HELLO\n", 6);
	g_assert_cmpint(SSL_write_ex(ssl, bulk, TLS_BULK, &n), ==, 1);
	g_assert_true(tls_read_all(ssl, back, TLS_BULK));
	g_assert_cmpmem(back, TLS_BULK, bulk, TLS_BULK);
	/* The server's close_notify ends the stream cleanly. */
	g_assert_cmpint(SSL_read_ex(ssl, line, 1, &n), ==, 0);
	g_assert_cmpint(SSL_get_error(ssl, 0), ==, SSL_ERROR_ZERO_RETURN);
}

static void
run_tls(int version, const char *expect_accept)
{
	TlsCase tc;
	g_autofree char *report = NULL;
	g_autofree char *expect = NULL;
	int status;

	tls_case_init(&tc, version);
	report = run_confined(child_tls_server, parent_tls_client, &tc, &status);
	expect = g_strdup_printf("sandbox=ok\naccept=%s\necho=ok\nshutdown=ok\n", expect_accept);
	g_assert_cmpstr(report, ==, expect);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
	tls_case_clear(&tc);
}

static void
test_tls13(void)
{
	run_tls(TLS1_3_VERSION, "TLSv1.3 TLS_AES_256_GCM_SHA384");
}

static void
test_tls12(void)
{
	run_tls(TLS1_2_VERSION, "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384");
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/sandbox/denied", test_denied);
	g_test_add_func("/sandbox/allowed", test_allowed);
	g_test_add_func("/sandbox/limits", test_limits);
	g_test_add_func("/sandbox/file-write", test_file_write);
	g_test_add_func("/sandbox/signals", test_signals);
	g_test_add_func("/sandbox/abort", test_abort);
#ifdef __x86_64__
	g_test_add_func("/sandbox/x32", test_x32);
	if (i386_available())
		g_test_add_func("/sandbox/i386", test_i386);
	else
		g_test_message("no i386 system calls on this kernel: /sandbox/i386 not run");
#endif
#ifdef MPOP_HAVE_ASAN
	g_test_add_func("/sandbox/asan-report", test_asan_report);
#endif
	g_test_add_func("/sandbox/tls13", test_tls13);
	g_test_add_func("/sandbox/tls12", test_tls12);
	return g_test_run();
}
