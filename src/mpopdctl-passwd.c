/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl passwd: read a password (twice, unechoed, from a terminal; one line otherwise) and
 * print its crypt(5) hash for a user list. */
#include "auth.h"
#include "mpopdctl.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 1024

static struct termios saved_tty;
static volatile sig_atomic_t tty_saved;

static void
restore_tty_and_die(int sig)
{
	if (tty_saved)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from stdin into buf without its newline. Returns FALSE at EOF or when the
 * line does not fit. */
static gboolean
read_line(char *buf, size_t size)
{
	size_t n;

	if (!fgets(buf, (int)size, stdin))
		return FALSE;
	n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (n == size - 1)
		return FALSE;
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return TRUE;
}

static gboolean
read_hidden(const char *prompt, char *buf, size_t size)
{
	struct termios quiet;
	gboolean ok;

	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return FALSE;
	tty_saved = 1;
	signal(SIGINT, restore_tty_and_die);
	signal(SIGTERM, restore_tty_and_die);
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	fputs(prompt, stderr);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	ok = read_line(buf, size);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	tty_saved = 0;
	fputc('\n', stderr);
	return ok;
}

static const char *
scheme_prefix(const char *scheme)
{
	static const char *const map[][2] = {
		{"yescrypt", "$y$"}, {"sha512", "$6$"}, {"bcrypt", "$2b$"}};

	if (!scheme)
		return "$y$";
	for (size_t i = 0; i < G_N_ELEMENTS(map); i++)
		if (g_ascii_strcasecmp(scheme, map[i][0]) == 0)
			return map[i][1];
	return NULL;
}

int
mpop_ctl_passwd(const char *scheme)
{
	const char *prefix = scheme_prefix(scheme);
	char pw[PASSWORD_MAX], again[PASSWORD_MAX];
	g_autoptr(GError) error = NULL;
	g_autofree char *hash = NULL;
	gboolean ok;

	if (!prefix) {
		fprintf(stderr, "mpopdctl: unknown scheme \"%s\" (yescrypt, sha512, bcrypt)%s\n",
			scheme,
			g_ascii_strcasecmp(scheme, "md5") == 0
				? "; md5crypt is too cheap to guess and is no longer offered"
				: "");
		return 2;
	}
	if (isatty(STDIN_FILENO))
		ok = read_hidden("Password: ", pw, sizeof pw) &&
		     read_hidden("Retype password: ", again, sizeof again) &&
		     strcmp(pw, again) == 0;
	else
		ok = read_line(pw, sizeof pw);
	explicit_bzero(again, sizeof again);
	if (ok && !*pw) {
		fprintf(stderr, "mpopdctl: empty password refused\n");
		explicit_bzero(pw, sizeof pw);
		return 1;
	}
	if (ok)
		hash = mpop_auth_make_hash(pw, prefix, &error);
	explicit_bzero(pw, sizeof pw);
	if (!ok) {
		fprintf(stderr, "mpopdctl: no password read (passwords differ, too long or "
				"end of input)\n");
		return 1;
	}
	if (!hash) {
		fprintf(stderr, "mpopdctl: %s\n", error->message);
		return 1;
	}
	printf("%s\n", hash);
	return 0;
}
