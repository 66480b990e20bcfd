/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A checkpassword program for the plugin backend's tests: what it does depends on the user
 * name read from fd 3. With a file name in argv[1] it writes there the fds it was given and
 * to argv[1].more what else it was given (fd 3, argv, environment, umask, ids, session), one
 * "key=value" line each; argv[2] is where hang-child notes its child's pid; argv[3] a
 * directory of answers per user. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

extern char **environ;

/* fd 3 as text: printable bytes as they are, others as \xNN. */
static void
put_escaped(FILE *f, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			fputc(c, f);
		else
			fprintf(f, "\\x%02x", c);
	}
}

static void
put_fds(FILE *f)
{
	int mine = fileno(f);
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int own = d ? dirfd(d) : -1;

	fputs("fds=", f);
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == own || atoi(e->d_name) == mine)
			continue;
		fprintf(f, "%s ", e->d_name);
	}
	fputc('\n', f);
	if (d)
		closedir(d);
}

static void
report(const char *path, int argc, char **argv, const char *cred, size_t len)
{
	FILE *f = fopen(path, "w");
	struct stat st;
	mode_t mask = umask(0);

	if (!f)
		exit(99);
	/* Before anything here opens a file: which fds the program was given. */
	fputs("fd3=", f);
	put_escaped(f, cred, len);
	fputc('\n', f);
	for (int i = 0; i < argc; i++)
		fprintf(f, "argv%d=%s\n", i, argv[i]);
	for (char **e = environ; *e; e++)
		fprintf(f, "env=%s\n", *e);
	fprintf(f, "umask=%03o\n", (unsigned)mask);
	fprintf(f, "uid=%u\ngid=%u\n", (unsigned)getuid(), (unsigned)getgid());
	fprintf(f, "own_session=%d\n", getsid(0) == getpid() && getpgrp() == getpid());
	fprintf(f, "stdin_devnull=%d\n",
		fstat(0, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	fprintf(f, "stdout_blocking=%d\n", !(fcntl(1, F_GETFL) & O_NONBLOCK));
	fprintf(f, "tty=%d\n", open("/dev/tty", O_RDONLY) >= 0);
	fclose(f);
}

int
main(int argc, char **argv)
{
	char cred[1024];
	size_t len = 0;
	ssize_t n;
	const char *user, *password;

	/* Every open fd the program sees, noted before it opens any of its own. */
	if (argc > 1) {
		FILE *f = fopen(argv[1], "w");
		if (f) {
			put_fds(f);
			fclose(f);
		}
	}
	while (len < sizeof cred - 1 && (n = read(3, cred + len, sizeof cred - 1 - len)) > 0)
		len += (size_t)n;
	cred[len] = '\0';
	if (argc > 1) {
		char path[4096];
		snprintf(path, sizeof path, "%s.more", argv[1]);
		report(path, argc, argv, cred, len);
	}
	user = cred;
	password = cred + strlen(cred) + 1;
	/* argv[3], a directory: a file named after the user holds its password on the first
	 * line and the answer after it. */
	if (argc > 3 && !strchr(user, '/') && user[0] != '.') {
		char path[4096], data[4096];
		FILE *f;
		size_t got;
		char *nl;

		snprintf(path, sizeof path, "%s/%s", argv[3], user);
		f = fopen(path, "r");
		if (f) {
			got = fread(data, 1, sizeof data - 1, f);
			fclose(f);
			data[got] = '\0';
			nl = strchr(data, '\n');
			if (!nl)
				return 111;
			*nl = '\0';
			if (strcmp(password, data) != 0)
				return 1;
			fputs(nl + 1, stdout);
			return 0;
		}
	}
	if (strcmp(user, "accept") == 0) {
		if (strcmp(password, "good") != 0)
			return 1;
		fputs("uid=4242\ngid=4243\nmailbox=/srv/mail/accept\n", stdout);
		return 0;
	}
	if (strcmp(user, "canon") == 0) {
		/* No gid: 4244 has no passwd entry, so the gid is the uid. */
		fputs("user=Canonical\nuid=4244\nhome=/home/canon", stdout);
		return 0;
	}
	if (strcmp(user, "reject") == 0)
		return 1;
	if (strcmp(user, "temp") == 0)
		return 111;
	if (strcmp(user, "status7") == 0)
		return 7;
	if (strcmp(user, "signal") == 0)
		kill(getpid(), SIGTERM);
	if (strcmp(user, "garbage") == 0) {
		fputs("hello world\n", stdout);
		return 0;
	}
	if (strcmp(user, "uid0") == 0) {
		fputs("uid=0\n", stdout);
		return 0;
	}
	if (strcmp(user, "dotdot") == 0) {
		fputs("uid=4242\nmailbox=/srv/mail/../../etc/shadow\n", stdout);
		return 0;
	}
	if (strcmp(user, "huge") == 0) {
		static char big[1 << 20];
		memset(big, 'x', sizeof big);
		fwrite(big, 1, sizeof big, stdout);
		return 0;
	}
	if (strcmp(user, "stderr") == 0) {
		fputs("bad\x01thing\n", stderr);
		return 1;
	}
	if (strcmp(user, "hang") == 0 || strcmp(user, "hang-child") == 0) {
		/* hang-child: a child of the program that would outlive it, writing its pid to
		 * argv[2]; both must be killed. */
		if (user[4] == '-' && argc > 2) {
			pid_t pid = fork();
			if (pid == 0) {
				for (;;)
					pause();
			}
			FILE *f = fopen(argv[2], "w");
			if (f) {
				fprintf(f, "%d\n", (int)pid);
				fclose(f);
			}
		}
		for (;;)
			pause();
	}
	/* Anyone else is unknown to this program: the chain asks the next backend. */
	return 2;
}
