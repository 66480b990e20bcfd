/* SPDX-License-Identifier: GPL-2.0-or-later */
/* tools/compare's floor: a POP3 responder that does nothing. It greets, answers every line
 * with +OK (STAT with an empty maildrop) and ends at QUIT. On stdin/stdout (exec'd per
 * connection, the inetd limit) or, with -l PORT, listening on 127.0.0.1 and forking per
 * connection (the daemon limit). No mailbox, no password check, no log. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void
serve(int in, int out)
{
	char buf[4096];
	size_t have = 0;
	ssize_t n;

	if (write(out, "+OK\r\n", 5) != 5)
		return;
	while ((n = read(in, buf + have, sizeof(buf) - have)) > 0) {
		char *line = buf, *nl;
		have += (size_t)n;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
			int quit = strncmp(line, "QUIT", 4) == 0;
			const char *ans = strncmp(line, "STAT", 4) == 0 ? "+OK 0 0\r\n" : "+OK\r\n";
			if (write(out, ans, strlen(ans)) < 0 || quit)
				return;
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
		if (have == sizeof(buf))
			have = 0;
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd;

	if (argc < 3 || strcmp(argv[1], "-l") != 0) {
		serve(0, 1);
		return 0;
	}
	sa.sin_port = htons((unsigned short)atoi(argv[2]));
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
		perror("noop-pop3");
		return 1;
	}
	for (;;) {
		int c = accept(fd, NULL, NULL);

		/* Reaped here, not by the kernel (SIGCHLD ignored): a reaped child's CPU time is
		 * its parent's cutime, which tools/compare reads. */
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (c < 0)
			continue;
		if (fork() == 0) {
			close(fd);
			serve(c, c);
			_exit(0);
		}
		close(c);
	}
}
