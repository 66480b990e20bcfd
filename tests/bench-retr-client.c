/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Loopback RETR reader for tests/bench-retr.py: login, pipeline RETR 1..N + QUIT, read to EOF. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
/* usage: bench-retr-client PORT N USER PASS; prints MB/s */
static double now(void);
static double
now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}
int
main(int argc, char **argv)
{
	int port = atoi(argv[1]), n = atoi(argv[2]);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (void *)&a, sizeof a) < 0) {
		perror("connect");
		return 1;
	}
	static char buf[4 << 20];
	char cmd[256];
	int k;
	snprintf(cmd, sizeof cmd, "USER %s\r\nPASS %s\r\n", argv[3], argv[4]);
	write(fd, cmd, strlen(cmd));
	/* wait for login reply (3 lines) */
	int lines = 0;
	while (lines < 3) {
		k = read(fd, buf, sizeof buf);
		if (k <= 0)
			return 1;
		for (int i = 0; i < k; i++)
			if (buf[i] == '\n')
				lines++;
	}
	size_t cap = (size_t)n * 16 + 16;
	char *all = malloc(cap);
	size_t len = 0;
	for (int i = 1; i <= n; i++)
		len += sprintf(all + len, "RETR %d\r\n", i);
	len += sprintf(all + len, "QUIT\r\n");
	double t0 = now();
	size_t off = 0;
	long long got = 0;
	/* interleave writes and reads to avoid deadlock */
	while (1) {
		if (off < len) {
			ssize_t w = send(fd, all + off, len - off, MSG_DONTWAIT);
			if (w > 0)
				off += w;
		}
		k = recv(fd, buf, sizeof buf, off < len ? MSG_DONTWAIT : 0);
		if (k == 0)
			break;
		if (k > 0)
			got += k;
	}
	double dt = now() - t0;
	printf("%.1f MB in %.3f s = %.0f MB/s\n", got / 1e6, dt, got / dt / 1e6);
	return 0;
}
