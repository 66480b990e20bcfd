/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by every module: fd cleanup, safe I/O loops, printable excerpts, the
 * path pattern grammar. */
#pragma once

#include <glib.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* MPOP_HAVE_ASAN: built with AddressSanitizer (gcc's or clang's way of saying so). */
#if defined(__SANITIZE_ADDRESS__)
#define MPOP_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPOP_HAVE_ASAN 1
#endif
#endif

/* GLib 2.74 has no g_autofd: close an owned fd at scope exit (fd < 0 is ignored). */
void mpop_close_fdp(int *fdp);
#define mpop_autofd __attribute__((cleanup(mpop_close_fdp))) int

/* Write all of buf, retrying EINTR and short writes. Returns 0 or -errno. */
int mpop_write_all(int fd, const void *buf, size_t len);

/* Read up to len bytes, retrying EINTR. Returns bytes read (0 at EOF) or -errno. */
ssize_t mpop_read_some(int fd, void *buf, size_t len);

/* Read exactly len bytes. Returns 0, -EIO on early EOF, or -errno. */
int mpop_read_exact(int fd, void *buf, size_t len);

/* A short, printable excerpt of untrusted bytes for logs and replies: at most max_chars
 * characters, non-printable bytes as \xNN, "..." appended when cut. Never NULL. */
char *mpop_escape_excerpt(const char *data, size_t len, size_t max_chars);

/* The path pattern grammar (mailbox location, spool_dir): %u the user name, %n its local part
 * (before the first '@'; all of it without one), %d its domain (after it), %h the home
 * directory, %s the spool directory, %% a percent sign. A pattern starts with '/', %h or %s,
 * so that it names an absolute path. */

/* NULL when pattern follows the grammar, else why not (a static string). */
const char *mpop_pattern_check(const char *pattern);

/* Expand pattern. user is untrusted: each of %u %n %d must be one safe path component (not
 * empty, no leading '.', no '/'), else MPOP_ERROR_PERM naming it. home must be absolute without
 * "." or ".." segments (MPOP_ERROR_PERM); spool comes from the config and is used as is. An
 * argument the pattern needs that is NULL is an error; a bad pattern is MPOP_ERROR_CONFIG. */
char *mpop_pattern_expand(const char *pattern, const char *user, const char *home,
			  const char *spool, GError **error);

/* Whether a pattern that follows the grammar uses the home directory (%h). */
gboolean mpop_pattern_uses_home(const char *pattern);

/* A DNS name as a TLS server name or a host name in the configuration: lowercase letters,
 * digits, '-' and '.', labels of 1-63 characters, at most 253 in all; "" too when
 * allow_empty. */
gboolean mpop_dns_name_valid(const char *name, gboolean allow_empty);

/* A numeric IPv4 or IPv6 address (no port, brackets or scope) as 16 bytes, IPv4 as
 * ::ffff:a.b.c.d so that it equals the same client on an IPv6 socket. FALSE when text is not
 * one. */
gboolean mpop_addr_parse(const char *text, guint8 out[16]);

/* The same 16 bytes for an AF_INET or AF_INET6 socket address; FALSE for anything else. */
gboolean mpop_addr_from_sockaddr(const struct sockaddr *sa, socklen_t len, guint8 out[16]);

/* CLOCK_MONOTONIC in microseconds. */
guint64 mpop_now_usec(void);
/* The deadline timeout_ms from now (< 0: none, 0). */
guint64 mpop_deadline_in(int timeout_ms);
/* Wait until fd is ready for events or the deadline (mpop_now_usec(), 0: none) passes.
 * Returns 0, -ETIMEDOUT or -errno. */
int mpop_wait_fd(int fd, short events, guint64 deadline);
/* Set O_NONBLOCK on fd (its open file description) if it is not set. */
void mpop_set_nonblocking(int fd);

/* Constant-time comparison of two NUL-terminated strings (length leaks only as a
 * mismatch). Returns TRUE when equal. */
gboolean mpop_streq_consttime(const char *a, const char *b);

#define MPOP_ERROR (mpop_error_quark())
GQuark mpop_error_quark(void);

typedef enum {
	MPOP_ERROR_FAILED,
	MPOP_ERROR_CONFIG,
	MPOP_ERROR_TEMP, /* retry later: [SYS/TEMP] */
	MPOP_ERROR_PERM, /* [SYS/PERM] */
	MPOP_ERROR_IN_USE,
	MPOP_ERROR_CHANGED, /* the mailbox was rewritten by someone else */
} MpopError;
