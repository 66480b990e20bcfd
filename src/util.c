/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by every module. */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

G_DEFINE_QUARK(mpop - error - quark, mpop_error)

void
mpop_close_fdp(int *fdp)
{
	if (fdp && *fdp >= 0) {
		int saved = errno;
		close(*fdp);
		*fdp = -1;
		errno = saved;
	}
}

int
mpop_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t
mpop_read_some(int fd, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n >= 0)
			return n;
		if (errno != EINTR)
			return -errno;
	}
}

int
mpop_read_exact(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = mpop_read_some(fd, p, len);
		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

char *
mpop_escape_excerpt(const char *data, size_t len, size_t max_chars)
{
	GString *s = g_string_sized_new(MIN(len, max_chars) + 8);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (s->len >= max_chars) {
			g_string_append(s, "...");
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '\\')
			g_string_append_c(s, (char)c);
		else
			g_string_append_printf(s, "\\x%02x", c);
	}
	return g_string_free(s, FALSE);
}

const char *
mpop_pattern_check(const char *pattern)
{
	for (const char *p = pattern; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (!*p || !strchr("unhds%", *p))
			return "has an unknown %-escape (known: %u %n %d %h %s %%)";
	}
	/* %h and %s are absolute (checked at login, F_PATH in the config); anything else would
	 * be relative to whatever directory the session process happens to be in. */
	if (pattern[0] != '/' && !g_str_has_prefix(pattern, "%h") &&
	    !g_str_has_prefix(pattern, "%s"))
		return "is not an absolute path (start it with /, %h or %s)";
	return NULL;
}

/* Why s (len bytes of an untrusted user name) is not one path component, or NULL. A leading
 * dot refuses "." and ".." and also hidden names (Maildir++ folders, dotlocks, dotfiles). */
static const char *
component_problem(const char *s, size_t len)
{
	if (len == 0)
		return "is empty";
	if (s[0] == '.')
		return "starts with a dot";
	if (memchr(s, '/', len) != NULL)
		return "contains a slash";
	return NULL;
}

/* A home directory is a path: absolute, and no segment may be "." or "..". */
static gboolean
home_usable(const char *home)
{
	if (home[0] != '/')
		return FALSE;
	for (const char *seg = home; *seg;) {
		size_t n;
		seg += strspn(seg, "/");
		n = strcspn(seg, "/");
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return FALSE;
		seg += n;
	}
	return TRUE;
}

/* Append %u, %n or %d (esc) of user, checked as one path component. */
static gboolean
append_user_part(GString *out, char esc, const char *user, GError **error)
{
	const char *at = strchr(user, '@');
	const char *val = user, *what = "the name (%u)";
	size_t len = strlen(user);
	const char *why;

	if (esc == 'n') {
		len = at ? (size_t)(at - user) : len;
		what = "its local part (%n)";
	} else if (esc == 'd') {
		val = at ? at + 1 : "";
		len = strlen(val);
		what = "its domain (%d)";
	}
	why = component_problem(val, len);
	if (why != NULL) {
		g_autofree char *u = mpop_escape_excerpt(user, strlen(user), 64);
		g_autofree char *v = mpop_escape_excerpt(val, len, 64);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
			    "user name \"%s\" is not usable in a path: %s \"%s\" %s", u, what, v,
			    why);
		return FALSE;
	}
	g_string_append_len(out, val, (gssize)len);
	return TRUE;
}

gboolean
mpop_pattern_uses_home(const char *pattern)
{
	for (const char *p = pattern; p && *p; p++) {
		if (*p != '%')
			continue;
		if (*++p == 'h')
			return TRUE;
		if (!*p)
			break;
	}
	return FALSE;
}

char *
mpop_pattern_expand(const char *pattern, const char *user, const char *home, const char *spool,
		    GError **error)
{
	g_autoptr(GString) out = g_string_new(NULL);
	const char *why = mpop_pattern_check(pattern);

	if (why != NULL) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "pattern \"%s\" %s", pattern,
			    why);
		return NULL;
	}
	for (const char *p = pattern; *p; p++) {
		if (*p != '%') {
			g_string_append_c(out, *p);
			continue;
		}
		switch (*++p) {
		case 'u':
		case 'n':
		case 'd':
			if (!append_user_part(out, *p, user ? user : "", error))
				return NULL;
			break;
		case 'h':
			if (!home || !*home) {
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
					    "pattern \"%s\" needs a home directory (%%h) and the "
					    "user has none",
					    pattern);
				return NULL;
			}
			if (!home_usable(home)) {
				g_autofree char *h = mpop_escape_excerpt(home, strlen(home), 128);
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
					    "home directory (%%h) \"%s\" is not an absolute path "
					    "without \".\" or \"..\" segments",
					    h);
				return NULL;
			}
			g_string_append(out, home);
			break;
		case 's':
			if (!spool) {
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG,
					    "pattern \"%s\": %%s (the spool directory) is not "
					    "available here",
					    pattern);
				return NULL;
			}
			g_string_append(out, spool);
			break;
		case '%':
			g_string_append_c(out, '%');
			break;
		default:
			g_assert_not_reached(); /* mpop_pattern_check() allowed nothing else */
		}
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

static void
addr_v4_mapped(const void *in4, guint8 out[16])
{
	memset(out, 0, 10);
	out[10] = out[11] = 0xff;
	memcpy(out + 12, in4, 4);
}

gboolean
mpop_addr_parse(const char *text, guint8 out[16])
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!text)
		return FALSE;
	if (inet_pton(AF_INET, text, &a4) == 1) {
		addr_v4_mapped(&a4, out);
		return TRUE;
	}
	if (inet_pton(AF_INET6, text, &a6) == 1) {
		memcpy(out, &a6, 16);
		return TRUE;
	}
	return FALSE;
}

gboolean
mpop_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, guint8 out[16])
{
	if (!sa)
		return FALSE;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		addr_v4_mapped(&in->sin_addr, out);
		return TRUE;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(out, &in6->sin6_addr, 16);
		return TRUE;
	}
	return FALSE;
}

guint64
mpop_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (guint64)ts.tv_sec * G_USEC_PER_SEC + (guint64)ts.tv_nsec / 1000;
}

guint64
mpop_deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? 0 : mpop_now_usec() + (guint64)timeout_ms * 1000 + 1;
}

int
mpop_wait_fd(int fd, short events, guint64 deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	int r, ms = -1;

	do {
		if (deadline) {
			guint64 now = mpop_now_usec();
			ms = now >= deadline ? 0
					     : (int)MIN((deadline - now + 999) / 1000, G_MAXINT);
		}
		r = poll(&pfd, 1, ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

void
mpop_set_nonblocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

gboolean
mpop_streq_consttime(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	size_t n = MAX(la, lb);

	for (size_t i = 0; i < n; i++) {
		unsigned char ca = i < la ? (unsigned char)a[i] : 0;
		unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
		diff |= ca ^ cb;
	}
	return diff == 0;
}

gboolean
mpop_dns_name_valid(const char *name, gboolean allow_empty)
{
	size_t len, label = 0;

	if (!name)
		return FALSE;
	len = strlen(name);
	if (len == 0)
		return allow_empty;
	if (len > 253 || name[0] == '.' || name[len - 1] == '.')
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return FALSE;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return FALSE;
		if (label == 0 && c == '-')
			return FALSE;
		if (++label > 63)
			return FALSE;
	}
	return name[len - 1] != '-';
}
