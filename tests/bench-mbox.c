/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mbox index time vs a plain read + line scan, RETR throughput and peak RSS (prints figures). */
#include "mailbox.h"
#include "stream-writer.h"
#include "util.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_MSGS 50000
#define RUNS 7

/* ~2 KB messages written in small pieces, so generating costs no memory. */
static guint64
generate(const char *path, guint n_msgs, int lines)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog while mail "
				    "servers count octets and stuff dots at the start of lines ";
	FILE *f = fopen(path, "w");
	GRand *rand = g_rand_new_with_seed(7);
	guint64 total;

	g_assert(f != NULL);
	for (guint i = 0; i < n_msgs; i++) {
		fprintf(f,
			"From sender%u@example.org Mon Jan  1 00:00:%02u 2024\n"
			"Return-Path: <sender%u@example.org>\nMessage-ID: <%u.%u@example.org>\n"
			"Subject: message %u\nStatus: RO\n\n",
			i, i % 60, i, i, g_rand_int(rand), i);
		for (int line = 0; line < lines; line++) {
			int n = g_rand_int_range(rand, 40, 77);
			int off = g_rand_int_range(rand, 0, (int)sizeof(words) - 78);
			if (g_rand_int_range(rand, 0, 100) == 0)
				fputs(">From ", f);
			fprintf(f, "%.*s\n", n, words + off);
		}
		fputc('\n', f);
	}
	total = (guint64)ftell(f);
	fclose(f);
	g_rand_free(rand);
	return total;
}

/* The reference: read the file and find every line end. */
static double
baseline(const char *path, guint64 *out_lines)
{
	g_autofree char *buf = g_malloc(1 << 20);
	mpop_autofd fd = open(path, O_RDONLY);
	guint64 t0 = mpop_now_usec(), lines = 0;
	ssize_t n;

	while ((n = read(fd, buf, 1 << 20)) > 0)
		for (const char *p = buf, *e = buf + n;
		     (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
			lines++;
	*out_lines = lines;
	return (double)(mpop_now_usec() - t0) / 1e6;
}

static int
discard(gpointer ctx, const void *data, size_t len)
{
	*(guint64 *)ctx += len;
	return 0;
}

/* The resident set now, from /proc/self/statm (pages). */
static long
rss_now_kb(void)
{
	g_autofree char *statm = NULL;
	long pages = 0, rss = 0;

	if (g_file_get_contents("/proc/self/statm", &statm, NULL, NULL))
		sscanf(statm, "%ld %ld", &pages, &rss);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One "Name: N kB" line of /proc/self/status. */
static long
status_kb(const char *name)
{
	g_autofree char *st = NULL;
	const char *l;

	if (!g_file_get_contents("/proc/self/status", &st, NULL, NULL) ||
	    (l = strstr(st, name)) == NULL)
		return -1;
	return strtol(l + strlen(name) + 1, NULL, 10);
}

/* The session process as the server runs it: a fresh process (forked after login) with
 * the same malloc setting, so VmHWM after open is the index's peak plus the baseline. */
static void
session_like(const MpopConfig *cfg, const char *path, const char *what)
{
	long v[5] = {0};
	int fds[2];
	pid_t pid;

	g_assert(pipe(fds) == 0);
	pid = fork();
	g_assert(pid >= 0);
	if (pid == 0) {
		MpopMailbox *mb;
		guint count;
		guint64 octets;
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
		v[0] = status_kb("VmRSS");
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, cfg, "user", path, NULL);
		mpop_mailbox_stat(mb, &count, &octets); /* STAT */
		v[1] = status_kb("VmHWM");
		v[2] = status_kb("VmRSS");
		v[3] = status_kb("RssAnon");
		v[4] = count;
		g_assert(write(fds[1], v, sizeof(v)) == sizeof(v));
		_exit(0);
	}
	close(fds[1]);
	g_assert(read(fds[0], v, sizeof(v)) == sizeof(v));
	close(fds[0]);
	waitpid(pid, NULL, 0);
	printf("session-like process (fork, M_MMAP_THRESHOLD 128 KiB), %ld messages, %s: VmRSS %ld "
	       "KiB before open; after open + STAT VmHWM %ld KiB (+%ld), VmRSS %ld KiB, RssAnon "
	       "%ld "
	       "KiB\n",
	       v[4], what, v[0], v[1], v[1] - v[0], v[2], v[3]);
}

/* --index PATH: a first login's open of an mbox (no persisted index) in a fresh process, as
 * session_like(); prints seconds, the VmHWM it added and the messages found. */
static void
index_only(const MpopConfig *cfg, const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *base = g_path_get_basename(path);
	g_autofree char *index = g_strdup_printf("%s/.%s.mpopd-index", dir, base);
	long v[3] = {0};
	double t = 0;
	int fds[2];
	pid_t pid;

	unlink(index);
	g_assert(pipe(fds) == 0);
	pid = fork();
	g_assert(pid >= 0);
	if (pid == 0) {
		guint64 t0;
		MpopMailbox *mb;
		mallopt(M_MMAP_THRESHOLD, 128 * 1024);
		v[0] = status_kb("VmHWM");
		t0 = mpop_now_usec();
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, cfg, base, path, NULL);
		t = (double)(mpop_now_usec() - t0) / 1e6;
		v[1] = status_kb("VmHWM");
		v[2] = mb != NULL ? (long)mb->n_msgs : -1;
		g_assert(write(fds[1], v, sizeof(v)) == sizeof(v));
		g_assert(write(fds[1], &t, sizeof(t)) == sizeof(t));
		_exit(0);
	}
	close(fds[1]);
	g_assert(read(fds[0], v, sizeof(v)) == sizeof(v));
	g_assert(read(fds[0], &t, sizeof(t)) == sizeof(t));
	close(fds[0]);
	waitpid(pid, NULL, 0);
	unlink(index);
	printf("index %s: %.3f s, VmHWM +%ld KiB (%ld KiB), %ld messages\n", path, t, v[1] - v[0],
	       v[1], v[2]);
}

static long
maxrss_kb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

int
main(int argc, char **argv)
{
	/* For tests/bench-login.py: the same mailbox (N_MSGS messages of 28 body lines unless
	 * given), and the reference (best of RUNS, default 7) on its own. */
	if (argc >= 3 && argc <= 5 && strcmp(argv[1], "--generate") == 0) {
		guint n = argc >= 4 ? (guint)atoi(argv[3]) : N_MSGS;
		int lines = argc == 5 ? atoi(argv[4]) : 28;
		printf("%" G_GUINT64_FORMAT "\n", generate(argv[2], n, lines));
		return 0;
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "--baseline") == 0) {
		int runs = argc == 4 ? atoi(argv[3]) : RUNS;
		guint64 lines = 0;
		double best = 1e9;
		for (int r = 0; r < MAX(runs, 1); r++)
			best = MIN(best, baseline(argv[2], &lines));
		printf("%.6f %" G_GUINT64_FORMAT "\n", best, lines);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--index") == 0) {
		g_autoptr(MpopConfig) c = mpop_config_new_default();
		c->format = MPOP_FORMAT_MBOX;
		index_only(c, argv[2]);
		return 0;
	}
	g_autofree char *dir = g_dir_make_tmp("mpop-bench-XXXXXX", NULL);
	g_autofree char *path = g_build_filename(dir, "user", NULL);
	g_autofree char *index = g_build_filename(dir, ".user.mpopd-index", NULL);
	g_autoptr(MpopConfig) cfg = mpop_config_new_default();
	double best_base = 1e9, best_open = 1e9, best_retr = 1e9, best_warm = 1e9;
	guint64 size, lines = 0, sent = 0;
	long rss_before, rss_open = 0, max_open = 0;

	cfg->format = MPOP_FORMAT_MBOX;
	size = generate(path, N_MSGS, 28);
	rss_before = maxrss_kb();
	for (int r = 0; r < RUNS; r++) {
		guint64 t0;
		MpopMailbox *mb;
		best_base = MIN(best_base, baseline(path, &lines));
		/* The second open reuses the persisted index the first one wrote. */
		unlink(index);
		t0 = mpop_now_usec();
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, cfg, "user", path, NULL);
		g_assert(mb != NULL && mb->n_msgs == N_MSGS);
		best_open = MIN(best_open, (double)(mpop_now_usec() - t0) / 1e6);
		mpop_mailbox_close(mb);
		t0 = mpop_now_usec();
		mb = mpop_mailbox_open(&mpop_mailbox_mbox_ops, cfg, "user", path, NULL);
		g_assert(mb != NULL && mb->n_msgs == N_MSGS);
		best_warm = MIN(best_warm, (double)(mpop_now_usec() - t0) / 1e6);
		if (r == 0) {
			rss_open = rss_now_kb();
			max_open = maxrss_kb();
			/* RETR of every message, through the same streaming path as the server. */
			t0 = mpop_now_usec();
			for (guint i = 0; i < mb->n_msgs; i++)
				g_assert(test_stream_message(mb, i, -1, "+OK\r\n", discard, &sent,
							     NULL, NULL));
			best_retr = (double)(mpop_now_usec() - t0) / 1e6;
		}
		mpop_mailbox_close(mb);
	}
	printf("mbox: %u messages, %.1f MB, %" G_GUINT64_FORMAT " lines\n", N_MSGS, size / 1e6,
	       lines);
	printf("read + memchr line scan: %.3f s (%.0f MB/s)\n", best_base, size / 1e6 / best_base);
	printf("open without an index (lock + scan + UIDLs + sizes + index written): %.3f s (%.2fx "
	       "the line scan)\n",
	       best_open, best_open / best_base);
	printf("open with the persisted index: %.4f s\n", best_warm);
	printf("RETR of every message in-process: %.3f s, %.0f MB/s sent\n", best_retr,
	       sent / 1e6 / best_retr);
	printf("RSS: %ld KiB peak before opening; with the open index %ld KiB (peak %ld KiB); peak "
	       "after RETR of everything %ld KiB\n",
	       rss_before, rss_open, max_open, maxrss_kb());
	unlink(index);
	session_like(cfg, path, "no index");
	session_like(cfg, path, "with the index");
	unlink(index);
	unlink(path);
	rmdir(dir);
	return 0;
}
