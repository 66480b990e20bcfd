/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench: many sessions at once. "sessions" forks one process per client, each doing
 * connect, USER, PASS, STAT, QUIT in a loop; "memory" holds sessions logged in and idle. */
#include "mpopd-bench.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* One finished session, from a client process to the parent. Smaller than PIPE_BUF, so
 * the clients' writes to the shared pipe never interleave. */
typedef struct {
	float seconds;
	guint32 ok;
} SessionRecord;

/* Stop a client after this many failures in a row: the figure is no rate any more. */
#define MAX_FAILURES_IN_A_ROW 20

/* A mail client looking for new mail: connect, log in, STAT, QUIT. */
static gboolean
one_session(BenchConn *c, const BenchOptions *o, const char *user, const char *pass)
{
	char line[512];
	gboolean ok = FALSE;
	int rc;

	if (!bench_conn_open(c, o))
		return FALSE;
	if (bench_login(c, user, pass)) {
		rc = bench_conn_command(c, "STAT", line, sizeof line);
		if (rc > 0)
			rc = bench_conn_command(c, "QUIT", line, sizeof line);
		if (rc == 0)
			bench_fail("%s", line);
		ok = rc > 0;
	}
	bench_conn_close(c);
	return ok;
}

static void G_GNUC_NORETURN
session_client(const BenchOptions *o, int i, int wfd, double t0)
{
	BenchConn c = {.fd = -1};
	g_autofree char *user = NULL;
	const char *pass;
	long quota = o->sessions / o->clients + (i < o->sessions % o->clients);
	long done = 0;
	int in_a_row = 0;
	gboolean told = FALSE;

	bench_user(o, i, &user, &pass);
	while ((o->sessions == 0 || done < quota) &&
	       (o->seconds <= 0 || bench_now() - t0 < o->seconds)) {
		double s = bench_now();
		gboolean ok = one_session(&c, o, user, pass);
		SessionRecord r = {(float)(bench_now() - s), ok};

		if (write(wfd, &r, sizeof r) != sizeof r)
			_exit(1);
		done++;
		if (ok) {
			in_a_row = 0;
			continue;
		}
		if (!told)
			fprintf(stderr, "mpopd-bench: client %d (%s): %s\n", i, user, bench_errmsg);
		told = TRUE;
		if (++in_a_row >= MAX_FAILURES_IN_A_ROW)
			break;
	}
	_exit(0);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Reads the clients' records until every client has closed the pipe. */
static void
collect(const BenchOptions *o, int rfd, GArray *lat, long *failed, double *t_end)
{
	double t0 = bench_now(), last = t0;

	for (;;) {
		struct pollfd p = {.fd = rfd, .events = POLLIN};
		SessionRecord r[256];
		ssize_t n;

		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			break;
		if (bench_now() - last >= 1.0) {
			last = bench_now();
			bench_progress(o, "sessions: %u done, %ld failed, %.0f s", lat->len,
				       *failed, last - t0);
		}
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		n = read(rfd, r, sizeof r);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*t_end = bench_now();
		for (size_t i = 0; i < (size_t)n / sizeof r[0]; i++) {
			double s = r[i].seconds;

			if (r[i].ok)
				g_array_append_val(lat, s);
			else
				(*failed)++;
		}
	}
}

int
bench_sessions(const BenchOptions *o)
{
	g_autoptr(GArray) lat = g_array_new(FALSE, FALSE, sizeof(double));
	BenchReport *r;
	long failed = 0;
	double t0, t_end, dt;
	int fds[2];

	if (pipe2(fds, O_CLOEXEC) < 0) {
		fprintf(stderr, "mpopd-bench: pipe: %s\n", g_strerror(errno));
		return 1;
	}
	fflush(NULL);
	t0 = t_end = bench_now();
	for (int i = 0; i < o->clients; i++) {
		pid_t pid = fork();

		if (pid < 0) {
			fprintf(stderr, "mpopd-bench: fork: %s\n", g_strerror(errno));
			return 1;
		}
		if (pid == 0) {
			close(fds[0]);
			session_client(o, i, fds[1], t0);
		}
	}
	close(fds[1]);
	collect(o, fds[0], lat, &failed, &t_end);
	close(fds[0]);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	dt = t_end - t0;
	qsort(lat->data, lat->len, sizeof(double), cmp_double);
	double *v = (double *)(void *)lat->data, sum = 0;
	for (guint i = 0; i < lat->len; i++)
		sum += v[i];
	r = bench_report_new("sessions", o);
	bench_report_num(r, "clients", "clients", o->clients, 0, NULL);
	bench_report_num(r, "sessions", "sessions", lat->len, 0, NULL);
	bench_report_num(r, "failed", "failed", (double)failed, 0, NULL);
	bench_report_num(r, "seconds", "time", dt, 3, "s");
	bench_report_num(r, "sessions_per_s", "rate", dt > 0 ? lat->len / dt : 0, 1, "sessions/s");
	bench_report_num(r, "mean_ms", "latency mean", lat->len ? sum / lat->len * 1e3 : 0, 2,
			 "ms");
	bench_report_num(r, "p50_ms", "latency p50", bench_percentile(v, lat->len, 50) * 1e3, 2,
			 "ms");
	bench_report_num(r, "p99_ms", "latency p99", bench_percentile(v, lat->len, 99) * 1e3, 2,
			 "ms");
	bench_report_num(r, "max_ms", "latency max", lat->len ? v[lat->len - 1] * 1e3 : 0, 2, "ms");
	bench_report_print(r, o);
	return failed > 0 || lat->len == 0;
}

/* Waits for the hold time, or less if stdin (a pipe or a terminal) gives a line or ends. */
static void
hold(const BenchOptions *o)
{
	struct stat st;
	gboolean use_stdin = fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || isatty(0));
	double end = bench_now() + o->seconds;

	while (bench_now() < end) {
		struct pollfd p = {.fd = 0, .events = POLLIN};
		double left = end - bench_now();
		char b[256];

		if (poll(&p, use_stdin ? 1 : 0, (int)(left * 1000) + 1) < 0 && errno != EINTR)
			return;
		if (p.revents != 0 && read(0, b, sizeof b) >= 0)
			return;
	}
}

int
bench_memory(const BenchOptions *o)
{
	BenchConn *c = g_new0(BenchConn, (size_t)o->clients);
	BenchReport *r;
	int ok = 0, failed = 0, alive = 0;
	double t0 = bench_now();
	char line[512];

	for (int i = 0; i < o->clients; i++) {
		g_autofree char *user = NULL;
		const char *pass;

		c[i].fd = -1;
		bench_user(o, i, &user, &pass);
		if (bench_conn_open(&c[i], o) && bench_login(&c[i], user, pass) &&
		    bench_conn_command(&c[i], "STAT", line, sizeof line) > 0) {
			ok++;
		} else {
			fprintf(stderr, "mpopd-bench: session %d (%s): %s\n", i, user,
				bench_errmsg);
			bench_conn_close(&c[i]);
			failed++;
		}
		if ((i + 1) % 25 == 0)
			bench_progress(o, "memory: %d of %d sessions logged in", ok, o->clients);
	}
	r = bench_report_new("memory", o);
	bench_report_num(r, "sessions", "sessions logged in", ok, 0, NULL);
	bench_report_num(r, "failed", "failed", failed, 0, NULL);
	bench_report_num(r, "login_seconds", "time to log in all", bench_now() - t0, 3, "s");
	bench_report_num(r, "hold_seconds", "hold at most", o->seconds, 1, "s");
	bench_report_print(r, o);
	bench_progress(o, "memory: %d sessions idle; holding for %g s or until stdin ends", ok,
		       o->seconds);
	hold(o);
	for (int i = 0; i < o->clients; i++) {
		if (c[i].fd < 0)
			continue;
		if (bench_conn_command(&c[i], "NOOP", line, sizeof line) > 0) {
			alive++;
			bench_conn_command(&c[i], "QUIT", line, sizeof line);
		}
		bench_conn_close(&c[i]);
		g_free(c[i].buf);
	}
	g_free(c);
	bench_progress(o, "memory: %d of %d sessions answered NOOP after the hold", alive, ok);
	return failed > 0 || alive < ok;
}
