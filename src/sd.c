/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The three systemd protocols the server speaks (readiness notification, socket passing, the
 * journal's native protocol), written from their documentation so mpopd needs no libsystemd:
 * linking it cost every inetd session ~130 KB of private memory and ~0.8 M instructions of
 * relocations for it and the compression and crypto libraries it pulls in. */
#include "sd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Big enough for any record mpopd writes in one datagram; a bigger one goes in a memfd. */
#define SNDBUF_SIZE (8 * 1024 * 1024)

static void
grow_sndbuf(int fd)
{
	int v = SNDBUF_SIZE;
	int cur = 0;
	socklen_t l = sizeof(cur);

	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &l) == 0 && cur >= SNDBUF_SIZE)
		return;
	/* SO_SNDBUF is capped by net.core.wmem_max; root may go past it. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

/* A socket address for path, or for the abstract name after a leading '@'. */
static int
unix_address(const char *path, struct sockaddr_un *sa, socklen_t *out_len)
{
	size_t n = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (path[0] == '@') {
		/* sd_notify(3): the abstract namespace, no trailing NUL in the length. */
		if (n > sizeof(sa->sun_path) || n < 2)
			return -EINVAL;
		memcpy(sa->sun_path + 1, path + 1, n - 1);
		*out_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return 0;
	}
	if (path[0] != '/')
		return -EAFNOSUPPORT;
	if (n >= sizeof(sa->sun_path))
		return -EINVAL;
	memcpy(sa->sun_path, path, n);
	*out_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	return 0;
}

int
mpop_sd_notify(const char *state)
{
	const char *e = g_getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t sa_len;
	struct iovec iov;
	struct msghdr mh = {0};
	mpop_autofd fd = -1;
	int r;

	if (!state)
		return -EINVAL;
	if (!e)
		return 0;
	r = unix_address(e, &sa, &sa_len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	grow_sndbuf(fd);
	iov.iov_base = (void *)state;
	iov.iov_len = strlen(state);
	mh.msg_name = &sa;
	mh.msg_namelen = sa_len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	/* MSG_NOSIGNAL: a manager gone away must not kill us with SIGPIPE. */
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	return 1;
}

int
mpop_sd_notifyf(const char *fmt, ...)
{
	g_autofree char *state = NULL;
	va_list ap;

	va_start(ap, fmt);
	state = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	return mpop_sd_notify(state);
}

static void
unset_listen_env(gboolean unset)
{
	if (!unset)
		return;
	g_unsetenv("LISTEN_PID");
	g_unsetenv("LISTEN_FDS");
	g_unsetenv("LISTEN_FDNAMES");
}

/* A decimal int in [min, INT_MAX - 3] (fd numbers from 3 on must not overflow). */
static int
parse_count(const char *s, guint64 min, int *out)
{
	guint64 v;

	if (!g_ascii_string_to_unsigned(s, 10, min, G_MAXINT - MPOP_SD_LISTEN_FDS_START, &v, NULL))
		return -EINVAL;
	*out = (int)v;
	return 0;
}

/* sd_listen_fds(3): LISTEN_PID names the process the sockets are for (a forked child that
 * inherited the variables must not take them), LISTEN_FDS how many follow fd 3. */
static int
listen_fds(void)
{
	const char *e = g_getenv("LISTEN_PID");
	int pid, n;

	if (!e)
		return 0;
	if (parse_count(e, 1, &pid) < 0)
		return -EINVAL;
	if (pid != (int)getpid())
		return 0;
	e = g_getenv("LISTEN_FDS");
	if (!e)
		return 0;
	if (parse_count(e, 1, &n) < 0)
		return -EINVAL;
	/* Passed fds must not leak into programs we run. */
	for (int fd = MPOP_SD_LISTEN_FDS_START; fd < MPOP_SD_LISTEN_FDS_START + n; fd++) {
		int flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
			return -errno;
	}
	return n;
}

int
mpop_sd_listen_fds_with_names(gboolean unset, char ***out_names)
{
	const char *e = g_getenv("LISTEN_FDNAMES");
	g_auto(GStrv) names = NULL;
	int n;

	/* LISTEN_FDNAMES: colon-separated, empty names kept. */
	if (out_names && e)
		names = g_strsplit(e, ":", -1);
	n = listen_fds();
	unset_listen_env(unset);
	if (n <= 0 || !out_names)
		return n;
	if (names) {
		if (g_strv_length(names) != (guint)n)
			return -EINVAL;
	} else {
		names = g_new0(char *, (gsize)n + 1);
		for (int i = 0; i < n; i++)
			names[i] = g_strdup("unknown");
	}
	*out_names = g_steal_pointer(&names);
	return n;
}

int
mpop_sd_is_socket(int fd, int family, int type, int listening)
{
	struct stat st;
	int v;
	socklen_t l;

	if (fd < 0)
		return -EBADF;
	if (family < 0)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return 0;
	if (type != 0) {
		l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) < 0)
			return -errno;
		if (l != sizeof(v))
			return -EINVAL;
		if (v != type)
			return 0;
	}
	if (listening >= 0) {
		l = sizeof(v);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) < 0)
			return -errno;
		if (l != sizeof(v))
			return -EINVAL;
		if (!v != !listening)
			return 0;
	}
	if (family > 0) {
		struct sockaddr_storage ss;
		l = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &l) < 0)
			return -errno;
		if (l < sizeof(sa_family_t))
			return -EINVAL;
		return ss.ss_family == family;
	}
	return 1;
}

/* journald's rule for the names of fields a program may set: 1-64 of A-Z, 0-9 and '_', not
 * starting with a digit or (trusted fields) with '_'. journald drops what breaks it. */
static gboolean
field_name_valid(const char *p, size_t n)
{
	if (n == 0 || n > 64 || p[0] == '_' || g_ascii_isdigit(p[0]))
		return FALSE;
	for (size_t i = 0; i < n; i++) {
		if (!(g_ascii_isupper(p[i]) || g_ascii_isdigit(p[i]) || p[i] == '_'))
			return FALSE;
	}
	return TRUE;
}

/* One datagram-sending socket for the process, as libsystemd keeps one. */
static int journal_fd = -1;

static int
journal_socket(void)
{
	if (journal_fd < 0) {
		journal_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (journal_fd < 0)
			return -errno;
		grow_sndbuf(journal_fd);
	}
	return journal_fd;
}

/* JOURNAL_NATIVE_PROTOCOL: a record too big for a datagram goes in a sealed memfd (journald
 * trusts its contents only once nobody can change them), sent alone with an empty payload. */
static int
send_memfd(int fd, struct msghdr *mh)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} control;
	struct cmsghdr *cmsg;
	mpop_autofd mfd = memfd_create("mpopd-journal", MFD_ALLOW_SEALING | MFD_CLOEXEC);

	if (mfd < 0)
		return -errno;
	for (size_t i = 0; i < mh->msg_iovlen; i++) {
		const char *p = mh->msg_iov[i].iov_base;
		size_t left = mh->msg_iov[i].iov_len;
		while (left > 0) {
			ssize_t k = write(mfd, p, left);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				return -errno;
			p += k;
			left -= (size_t)k;
		}
	}
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		return -errno;
	memset(&control, 0, sizeof(control));
	mh->msg_iov = NULL;
	mh->msg_iovlen = 0;
	mh->msg_control = &control;
	mh->msg_controllen = sizeof(control);
	cmsg = CMSG_FIRSTHDR(mh);
	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &mfd, sizeof(int));
	if (sendmsg(fd, mh, MSG_NOSIGNAL) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int
mpop_sd_journal_sendv_to(const char *path, const struct iovec *iov, int n)
{
	static const char nl = '\n';
	g_autofree struct iovec *w = NULL;
	g_autofree guint64 *lens = NULL;
	struct sockaddr_un sa;
	socklen_t sa_len;
	struct msghdr mh = {0};
	size_t j = 0;
	int fd, r;

	if (!iov || n <= 0)
		return -EINVAL;
	/* Each item becomes at most five pieces: name, '\n', length, value, '\n'. */
	w = g_new(struct iovec, (gsize)n * 5);
	lens = g_new(guint64, (gsize)n);
	for (int i = 0; i < n; i++) {
		const char *p = iov[i].iov_base;
		const char *eq = memchr(p, '=', iov[i].iov_len);
		const char *lf = memchr(p, '\n', iov[i].iov_len);
		size_t name_len, value_len;

		if (!eq || !field_name_valid(p, (size_t)(eq - p)))
			return -EINVAL;
		if (!lf) {
			/* "NAME=value\n" */
			w[j++] = iov[i];
			w[j++] = (struct iovec){(void *)&nl, 1};
			continue;
		}
		/* A value with a newline: "NAME\n", its length as little-endian u64, the value,
		 * "\n". */
		name_len = (size_t)(eq - p);
		value_len = iov[i].iov_len - name_len - 1;
		lens[i] = GUINT64_TO_LE((guint64)value_len);
		w[j++] = (struct iovec){(void *)p, name_len};
		w[j++] = (struct iovec){(void *)&nl, 1};
		w[j++] = (struct iovec){&lens[i], sizeof(lens[i])};
		w[j++] = (struct iovec){(void *)(eq + 1), value_len};
		w[j++] = (struct iovec){(void *)&nl, 1};
	}
	r = unix_address(path, &sa, &sa_len);
	if (r < 0)
		return r;
	fd = journal_socket();
	if (fd < 0)
		return fd;
	mh.msg_name = &sa;
	mh.msg_namelen = sa_len;
	mh.msg_iov = w;
	mh.msg_iovlen = j;
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) >= 0)
		return 0;
	/* No journal here (a container without journald, a chroot): not an error, as in
	 * libsystemd, so the caller's fallback is the same as before. */
	if (errno == ENOENT)
		return 0;
	if (errno != EMSGSIZE && errno != ENOBUFS && errno != EAGAIN)
		return -errno;
	return send_memfd(fd, &mh);
}

int
mpop_sd_journal_sendv(const struct iovec *iov, int n)
{
	return mpop_sd_journal_sendv_to(MPOP_SD_JOURNAL_SOCKET, iov, n);
}
