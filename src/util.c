/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by every module. */
#include "util.h"

#include <errno.h>
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

char *
mpop_expand_pattern(const char *pattern, const char *user, const char *home, GError **error)
{
	g_autoptr(GString) out = g_string_new(NULL);
	const char *at = user ? strchr(user, '@') : NULL;

	/* A user name becomes part of a path: it must not climb out of its directory. */
	if (user && (user[0] == '\0' || user[0] == '.' || strchr(user, '/'))) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
			    "user name is not usable in a path");
		return NULL;
	}
	for (const char *p = pattern; *p; p++) {
		if (*p != '%') {
			g_string_append_c(out, *p);
			continue;
		}
		p++;
		switch (*p) {
		case 'u':
			g_string_append(out, user ? user : "");
			break;
		case 'n':
			if (user)
				g_string_append_len(out, user,
						    at ? at - user : (gssize)strlen(user));
			break;
		case 'd':
			if (at)
				g_string_append(out, at + 1);
			break;
		case 'h':
			if (!home || !*home) {
				g_set_error(
					error, MPOP_ERROR, MPOP_ERROR_PERM,
					"pattern \"%s\" needs a home directory (%%h) and the user "
					"has none",
					pattern);
				return NULL;
			}
			g_string_append(out, home);
			break;
		case '%':
			g_string_append_c(out, '%');
			break;
		default:
			g_set_error(
				error, MPOP_ERROR, MPOP_ERROR_CONFIG,
				"unknown escape \"%%%c\" in pattern \"%s\" (known: %%u %%n %%d %%h "
				"%%%%)",
				*p ? *p : '?', pattern);
			return NULL;
		}
		if (!*p)
			break;
	}
	return g_string_free(g_steal_pointer(&out), FALSE);
}

guint64
mpop_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (guint64)ts.tv_sec * G_USEC_PER_SEC + (guint64)ts.tv_nsec / 1000;
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
