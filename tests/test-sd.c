/* SPDX-License-Identifier: GPL-2.0-or-later */
/* sd.c: sd_notify datagrams (path and abstract socket), socket passing through LISTEN_PID,
 * LISTEN_FDS and LISTEN_FDNAMES, sd_is_socket, and the journal's native protocol decoded as
 * systemd.io/JOURNAL_NATIVE_PROTOCOL describes it. */
#include "sd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* A datagram socket bound to path ("@name": abstract). */
static int
bind_dgram(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpuint(strlen(path), <, sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	else
		len++;
	g_assert_cmpint(bind(fd, (struct sockaddr *)&sa, len), ==, 0);
	return fd;
}

/* The next datagram's payload, and the fd it carried (-1: none). */
static GBytes *
recv_dgram(int fd, int *out_fd)
{
	static char buf[256 * 1024];
	union {
		struct cmsghdr h;
		char c[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {buf, sizeof(buf)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = &control,
			    .msg_controllen = sizeof(control)};
	ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	g_assert_cmpint(n, >=, 0);
	g_assert_false(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC));
	*out_fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		g_assert_cmpint(c->cmsg_type, ==, SCM_RIGHTS);
		g_assert_cmpuint(c->cmsg_len, ==, CMSG_LEN(sizeof(int)));
		memcpy(out_fd, CMSG_DATA(c), sizeof(int));
	}
	return g_bytes_new(buf, (gsize)n);
}

static void
assert_no_dgram(int fd)
{
	char c;
	g_assert_cmpint(recv(fd, &c, 1, MSG_DONTWAIT), ==, -1);
	g_assert_cmpint(errno, ==, EAGAIN);
}

static void
assert_notify(int fd, const char *want)
{
	int passed;
	g_autoptr(GBytes) b = recv_dgram(fd, &passed);
	gsize n;
	const char *p = g_bytes_get_data(b, &n);

	g_assert_cmpint(passed, ==, -1);
	g_assert_cmpmem(p, n, want, strlen(want));
}

static void
test_notify(void)
{
	g_autofree char *dir = g_dir_make_tmp("test-sd-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "notify", NULL);
	g_autofree char *abstract = g_strdup_printf("@mpopd-test-sd-%d", (int)getpid());
	mpop_autofd pfd = bind_dgram(path);
	mpop_autofd afd = bind_dgram(abstract);

	g_unsetenv("NOTIFY_SOCKET");
	g_assert_cmpint(mpop_sd_notify("READY=1"), ==, 0);
	g_assert_cmpint(mpop_sd_notifyf("STATUS=%d", 1), ==, 0);
	g_assert_cmpint(mpop_sd_notify(NULL), ==, -EINVAL);

	g_setenv("NOTIFY_SOCKET", path, TRUE);
	g_assert_cmpint(mpop_sd_notify("READY=1"), >, 0);
	assert_notify(pfd, "READY=1");
	g_assert_cmpint(mpop_sd_notifyf("RELOADING=1\nMONOTONIC_USEC=%u", 12345u), >, 0);
	assert_notify(pfd, "RELOADING=1\nMONOTONIC_USEC=12345");
	g_assert_cmpint(mpop_sd_notifyf("STATUS=Serving %u session(s)", 7u), >, 0);
	assert_notify(pfd, "STATUS=Serving 7 session(s)");
	assert_no_dgram(pfd);

	g_setenv("NOTIFY_SOCKET", abstract, TRUE);
	g_assert_cmpint(mpop_sd_notify("STOPPING=1"), >, 0);
	assert_notify(afd, "STOPPING=1");
	assert_no_dgram(afd);
	assert_no_dgram(pfd);

	/* No one listening, not a socket address, too long */
	g_autofree char *gone = g_build_filename(dir, "gone", NULL);
	g_setenv("NOTIFY_SOCKET", gone, TRUE);
	g_assert_cmpint(mpop_sd_notify("READY=1"), ==, -ENOENT);
	g_setenv("NOTIFY_SOCKET", "relative/path", TRUE);
	g_assert_cmpint(mpop_sd_notify("READY=1"), ==, -EAFNOSUPPORT);
	g_autofree char *longp = g_strnfill(200, 'a');
	longp[0] = '/';
	g_setenv("NOTIFY_SOCKET", longp, TRUE);
	g_assert_cmpint(mpop_sd_notify("READY=1"), ==, -EINVAL);
	g_unsetenv("NOTIFY_SOCKET");
	g_unlink(path);
	g_rmdir(dir);
}

static gboolean
cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);
	g_assert_cmpint(flags, >=, 0);
	return (flags & FD_CLOEXEC) != 0;
}

/* Sets the environment for the sockets on fds 3 and 4 (FD_CLOEXEC cleared). pid: "self" for
 * this process. NULL leaves a variable unset. */
static void
set_listen_env(const char *pid, const char *fds, const char *names)
{
	g_autofree char *self = g_strdup_printf("%d", (int)getpid());

	g_unsetenv("LISTEN_PID");
	g_unsetenv("LISTEN_FDS");
	g_unsetenv("LISTEN_FDNAMES");
	if (pid)
		g_setenv("LISTEN_PID", g_strcmp0(pid, "self") == 0 ? self : pid, TRUE);
	if (fds)
		g_setenv("LISTEN_FDS", fds, TRUE);
	if (names)
		g_setenv("LISTEN_FDNAMES", names, TRUE);
	for (int fd = 3; fd <= 4; fd++)
		g_assert_cmpint(fcntl(fd, F_SETFD, 0), ==, 0);
}

static gboolean
listen_env_gone(void)
{
	return !g_getenv("LISTEN_PID") && !g_getenv("LISTEN_FDS") && !g_getenv("LISTEN_FDNAMES");
}

/* Runs in a child: fds 3 and 4 are overwritten there. */
static void
listen_fds_child(void)
{
	char **names = NULL;
	int sv[2];

	g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
	g_assert_cmpint(dup2(sv[0], 3), ==, 3);
	g_assert_cmpint(dup2(sv[1], 4), ==, 4);

	/* Not for us: no variables, another process's, or not asked for */
	set_listen_env(NULL, "2", "a:b");
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, 0);
	g_assert_null(names);
	g_assert_true(listen_env_gone());
	set_listen_env("1", "2", "a:b");
	g_assert_cmpint(mpop_sd_listen_fds_with_names(FALSE, &names), ==, 0);
	g_assert_null(names);
	g_assert_cmpstr(g_getenv("LISTEN_PID"), ==, "1");
	g_assert_cmpstr(g_getenv("LISTEN_FDNAMES"), ==, "a:b");
	g_assert_false(cloexec(3));
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, 0);
	g_assert_true(listen_env_gone());
	set_listen_env("self", NULL, NULL);
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, 0);
	g_assert_null(names);

	/* For us, with names: FD_CLOEXEC set on each, variables gone when asked */
	set_listen_env("self", "2", "pop3:pop3s-proxy");
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, 2);
	g_assert_cmpuint(g_strv_length(names), ==, 2);
	g_assert_cmpstr(names[0], ==, "pop3");
	g_assert_cmpstr(names[1], ==, "pop3s-proxy");
	g_clear_pointer(&names, g_strfreev);
	g_assert_true(cloexec(3));
	g_assert_true(cloexec(4));
	g_assert_true(listen_env_gone());

	/* Kept when not asked to unset; empty names kept; no names: "unknown" */
	set_listen_env("self", "2", ":x");
	g_assert_cmpint(mpop_sd_listen_fds_with_names(FALSE, &names), ==, 2);
	g_assert_cmpstr(names[0], ==, "");
	g_assert_cmpstr(names[1], ==, "x");
	g_assert_null(names[2]);
	g_clear_pointer(&names, g_strfreev);
	g_assert_cmpstr(g_getenv("LISTEN_FDS"), ==, "2");
	set_listen_env("self", "1", NULL);
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, 1);
	g_assert_cmpstr(names[0], ==, "unknown");
	g_assert_null(names[1]);
	g_clear_pointer(&names, g_strfreev);
	g_assert_true(cloexec(3));
	g_assert_false(cloexec(4));
	set_listen_env("self", "2", NULL);
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, NULL), ==, 2);
	g_assert_true(cloexec(4));

	/* Malformed: errors, and the variables still go */
	static const char *const bad[][3] = {
		{"self", "2", "only-one"}, {"self", "2", "a:b:c"}, {"self", "0", NULL},
		{"self", "-1", NULL},	   {"self", "x", NULL},	   {"abc", "1", NULL},
		{"0", "1", NULL},	   {"self", "", NULL},
	};
	for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
		set_listen_env(bad[i][0], bad[i][1], bad[i][2]);
		g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, -EINVAL);
		g_assert_null(names);
		g_assert_true(listen_env_gone());
	}
	/* A passed fd that is not open */
	set_listen_env("self", "2", NULL);
	close(4);
	g_assert_cmpint(mpop_sd_listen_fds_with_names(TRUE, &names), ==, -EBADF);
	g_assert_null(names);
}

static void
test_listen_fds(void)
{
	int status;
	pid_t pid = fork();

	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		listen_fds_child();
		_exit(0);
	}
	g_assert_cmpint(waitpid(pid, &status, 0), ==, pid);
	g_assert_true(WIFEXITED(status));
	g_assert_cmpint(WEXITSTATUS(status), ==, 0);
}

static void
test_is_socket(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	mpop_autofd lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mpop_autofd cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	mpop_autofd afd = -1;
	mpop_autofd ufd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int p[2];

	g_assert_cmpint(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	g_assert_cmpint(listen(lfd, 4), ==, 0);
	g_assert_cmpint(getsockname(lfd, (struct sockaddr *)&sa, &len), ==, 0);
	g_assert_cmpint(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
	afd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	g_assert_cmpint(afd, >=, 0);

	/* Listening TCP: what the Accept=no check asks, and every mismatch */
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_UNSPEC, SOCK_STREAM, 1), ==, 1);
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_UNSPEC, SOCK_STREAM, 0), ==, 0);
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_UNSPEC, 0, -1), ==, 1);
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_INET, SOCK_STREAM, 1), ==, 1);
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_INET6, SOCK_STREAM, 1), ==, 0);
	g_assert_cmpint(mpop_sd_is_socket(lfd, AF_UNSPEC, SOCK_DGRAM, 1), ==, 0);
	/* Connected: what the Accept=yes and inetd checks ask */
	for (int i = 0; i < 2; i++) {
		int fd = i ? afd : cfd;
		g_assert_cmpint(mpop_sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 0), ==, 1);
		g_assert_cmpint(mpop_sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1), ==, 0);
		g_assert_cmpint(mpop_sd_is_socket(fd, AF_INET, 0, -1), ==, 1);
		g_assert_cmpint(mpop_sd_is_socket(fd, AF_UNIX, 0, -1), ==, 0);
	}
	g_assert_cmpint(mpop_sd_is_socket(ufd, AF_UNIX, SOCK_DGRAM, -1), ==, 1);
	g_assert_cmpint(mpop_sd_is_socket(ufd, AF_UNSPEC, SOCK_STREAM, 0), ==, 0);
	/* Not sockets, not fds */
	g_assert_cmpint(pipe2(p, O_CLOEXEC), ==, 0);
	g_assert_cmpint(mpop_sd_is_socket(p[0], AF_UNSPEC, SOCK_STREAM, 0), ==, 0);
	g_assert_cmpint(mpop_sd_is_socket(p[1], AF_UNSPEC, 0, -1), ==, 0);
	close(p[0]);
	close(p[1]);
	g_assert_cmpint(mpop_sd_is_socket(p[0], AF_UNSPEC, SOCK_STREAM, 0), ==, -EBADF);
	g_assert_cmpint(mpop_sd_is_socket(-1, AF_UNSPEC, SOCK_STREAM, 0), ==, -EBADF);
	g_assert_cmpint(mpop_sd_is_socket(lfd, -1, SOCK_STREAM, 0), ==, -EINVAL);
}

/* A journal entry decoded per JOURNAL_NATIVE_PROTOCOL: "NAME=value\n", or "NAME\n", a
 * little-endian 64-bit length, the value and "\n". Returns "NAME=value" strings. */
static GPtrArray *
decode_entry(const char *p, gsize n)
{
	GPtrArray *out = g_ptr_array_new_with_free_func(g_free);
	const char *end = p + n;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *eq = memchr(p, '=', (size_t)(end - p));
		g_assert_nonnull(lf);
		if (eq && eq < lf) {
			g_ptr_array_add(out, g_strndup(p, (gsize)(lf - p)));
			p = lf + 1;
			continue;
		}
		guint64 le, len;
		g_assert_cmpint(end - (lf + 1), >=, 8);
		memcpy(&le, lf + 1, 8);
		len = GUINT64_FROM_LE(le);
		const char *v = lf + 1 + 8;
		g_assert_cmpuint(len + 1, <=, (guint64)(end - v));
		g_assert_cmpint(v[len], ==, '\n');
		GString *s = g_string_new_len(p, lf - p);
		g_string_append_c(s, '=');
		g_string_append_len(s, v, (gssize)len);
		g_ptr_array_add(out, g_string_free(s, FALSE));
		p = v + len + 1;
	}
	return out;
}

/* Sends items as one record to a socket of our own and checks what arrives. sealed: the
 * record must come as a sealed memfd with an empty datagram. */
static void
journal_roundtrip(const char *path, int sfd, const char *const *items, gboolean memfd)
{
	guint n = g_strv_length((char **)items);
	g_autofree struct iovec *iov = g_new(struct iovec, n);
	g_autoptr(GBytes) b = NULL;
	g_autoptr(GPtrArray) got = NULL;
	g_autofree char *data = NULL;
	gsize len;
	int fd;

	for (guint i = 0; i < n; i++)
		iov[i] = (struct iovec){(void *)items[i], strlen(items[i])};
	g_assert_cmpint(mpop_sd_journal_sendv_to(path, iov, (int)n), ==, 0);
	b = recv_dgram(sfd, &fd);
	if (!memfd) {
		g_assert_cmpint(fd, ==, -1);
		got = decode_entry(g_bytes_get_data(b, NULL), g_bytes_get_size(b));
	} else {
		mpop_autofd mfd = fd;
		g_assert_cmpint(mfd, >=, 0);
		g_assert_cmpuint(g_bytes_get_size(b), ==, 0);
		g_assert_cmpint(fcntl(mfd, F_GET_SEALS), ==,
				F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
		g_autofree char *proc = g_strdup_printf("/proc/self/fd/%d", mfd);
		g_assert_true(g_file_get_contents(proc, &data, &len, NULL));
		got = decode_entry(data, len);
	}
	g_assert_cmpuint(got->len, ==, n);
	for (guint i = 0; i < n; i++)
		g_assert_true(strcmp(g_ptr_array_index(got, i), items[i]) == 0);
	assert_no_dgram(sfd);
}

static void
test_journal(void)
{
	g_autofree char *dir = g_dir_make_tmp("test-sd-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "journal", NULL);
	g_autofree char *gone = g_build_filename(dir, "gone", NULL);
	mpop_autofd sfd = bind_dgram(path);
	/* Bigger than the sending socket's buffer may ever be (8 MiB): only a memfd carries it */
	g_autofree char *big = g_strnfill(9 * 1024 * 1024, 'x');
	const char *simple[] = {"MESSAGE=login ok",
				"PRIORITY=6",
				"SYSLOG_IDENTIFIER=mpopd",
				"MPOPD_SESSION=abc123",
				"MPOPD_EVENT=login",
				"MPOPD_EMPTY=",
				"MPOPD_EQ=a=b",
				NULL};
	const char *newline[] = {"MESSAGE=two\nlines", "MPOPD_USER=alice", "MPOPD_NL=\n",
				 "MPOPD_X=\n\n=\n", NULL};

	journal_roundtrip(path, sfd, simple, FALSE);
	journal_roundtrip(path, sfd, newline, FALSE);
	memcpy(big, "MPOPD_BIG=", 10);
	big[4 * 1024 * 1024] = '\n';
	const char *large[] = {"MESSAGE=big", big, "MPOPD_TAIL=end", NULL};
	journal_roundtrip(path, sfd, large, TRUE);
	big[4 * 1024 * 1024] = 'x';
	journal_roundtrip(path, sfd, large, TRUE);

	/* Names journald refuses: the whole record is refused, nothing sent */
	static const char *const bad[] = {"lower=x", "_PID=1", "NOEQUALS",   "1ABC=x",
					  "=x",	     "A-B=x",  "NL\nNAME=x", NULL};
	for (const char *const *b = bad; *b; b++) {
		struct iovec iov[2] = {{(void *)"MESSAGE=m", 9}, {(void *)*b, strlen(*b)}};
		g_assert_cmpint(mpop_sd_journal_sendv_to(path, iov, 2), ==, -EINVAL);
	}
	{
		g_autofree char *a65 = g_strnfill(65, 'A');
		g_autofree char *name = g_strdup_printf("%s=x", a65);
		struct iovec iov = {name, strlen(name)};
		g_assert_cmpint(mpop_sd_journal_sendv_to(path, &iov, 1), ==, -EINVAL);
		name[64] = '=';
		iov.iov_len = 66;
		g_assert_cmpint(mpop_sd_journal_sendv_to(path, &iov, 1), ==, 0);
		g_autoptr(GBytes) b = NULL;
		int fd;
		b = recv_dgram(sfd, &fd);
		g_assert_cmpuint(g_bytes_get_size(b), ==, 67);
	}
	assert_no_dgram(sfd);
	g_assert_cmpint(mpop_sd_journal_sendv_to(path, NULL, 1), ==, -EINVAL);
	/* No journal socket: nothing sent, and not an error (libsystemd's rule: log.c then
	 * falls back exactly as before) */
	{
		struct iovec iov = {(void *)"MESSAGE=m", 9};
		g_assert_cmpint(mpop_sd_journal_sendv_to(gone, &iov, 1), ==, 0);
		/* a socket nobody reads: an error */
		close(bind_dgram(gone));
		g_assert_cmpint(mpop_sd_journal_sendv_to(gone, &iov, 1), ==, -ECONNREFUSED);
	}
	g_assert_cmpstr(MPOP_SD_JOURNAL_SOCKET, ==, "/run/systemd/journal/socket");
	g_unlink(gone);
	g_unlink(path);
	g_rmdir(dir);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);
	g_test_add_func("/sd/notify", test_notify);
	g_test_add_func("/sd/listen-fds", test_listen_fds);
	g_test_add_func("/sd/is-socket", test_is_socket);
	g_test_add_func("/sd/journal", test_journal);
	return g_test_run();
}
