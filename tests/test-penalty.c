/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for the failure penalty table: delays, blocks, keys, expiry, corrupt files, floods
 * and sharing between processes. */
#include "penalty.h"
#include "config.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T0 1800000000 /* an arbitrary CLOCK_REALTIME second */
#define FILE_SIZE (32 + 32 * MPOP_PENALTY_SLOTS)

typedef struct {
	char *dir;
	char *path;
	MpopConfig *cfg;
	MpopPenalty *pen;
} Fixture;

static void
setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	f->dir = g_dir_make_tmp("mpop-penalty-XXXXXX", &error);
	g_assert_no_error(error);
	f->path = g_build_filename(f->dir, "state", "penalty", NULL);
	f->cfg = mpop_config_new_default();
	/* data: NULL for the memory table, else the file */
	f->pen = mpop_penalty_open(data ? f->path : NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(f->pen);
}

static void
teardown(Fixture *f, gconstpointer data)
{
	g_autofree char *sub = g_path_get_dirname(f->path);

	mpop_penalty_free(f->pen);
	mpop_config_free(f->cfg);
	unlink(f->path);
	rmdir(sub);
	rmdir(f->dir);
	g_free(f->path);
	g_free(f->dir);
}

typedef struct {
	struct sockaddr_storage ss;
	socklen_t len;
} Addr;

static Addr
addr(const char *text)
{
	Addr a = {0};

	if (strchr(text, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(40000);
		g_assert_cmpint(inet_pton(AF_INET6, text, &in6->sin6_addr), ==, 1);
		a.len = sizeof(*in6);
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(40000);
		g_assert_cmpint(inet_pton(AF_INET, text, &in->sin_addr), ==, 1);
		a.len = sizeof(*in);
	}
	return a;
}

static void
fail(Fixture *f, const char *peer, const char *user, gint64 now)
{
	Addr a = addr(peer);

	g_assert_cmpint(mpop_penalty_record(f->pen, f->cfg, (struct sockaddr *)&a.ss, a.len, user,
					    FALSE, now),
			==, 0);
}

static void
succeed(Fixture *f, const char *peer, const char *user, gint64 now)
{
	Addr a = addr(peer);

	g_assert_cmpint(mpop_penalty_record(f->pen, f->cfg, (struct sockaddr *)&a.ss, a.len, user,
					    TRUE, now),
			==, 0);
}

static MpopPenaltyVerdict
query(Fixture *f, const char *peer, const char *user, gint64 now)
{
	MpopPenaltyVerdict v;
	Addr a = addr(peer);

	g_assert_cmpint(
		mpop_penalty_query(f->pen, f->cfg, (struct sockaddr *)&a.ss, a.len, user, now, &v),
		==, 0);
	return v;
}

/* Defaults: 1 s, the first 3 failures at that, then 2, 4, 8 s, capped at 15 s. */
static void
test_delay_curve(void)
{
	g_autoptr(MpopConfig) cfg = mpop_config_new_default();
	const guint64 s = G_USEC_PER_SEC;

	g_assert_cmpuint(cfg->failure_delay, ==, 1000);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 0), ==, 0);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 2), ==, 0);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 3), ==, 1 * s);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 4), ==, 3 * s);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 5), ==, 7 * s);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 6), ==, 14 * s);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 1000), ==, 14 * s);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, G_MAXUINT32 - 1), ==, 14 * s);
	cfg->failure_delay = 0;
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 50), ==, 0);
	cfg->failure_delay = 100;
	cfg->penalty_delay_after = 0;
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 0), ==, 100000);
	g_assert_cmpuint(mpop_penalty_delay_usec(cfg, 1), ==, 300000);
}

static void
test_delays_grow(Fixture *f, gconstpointer data)
{
	guint64 prev = 0;

	for (guint i = 0; i < 8; i++) {
		MpopPenaltyVerdict v = query(f, "192.0.2.1", "alice", T0 + i);
		g_assert_cmpuint(v.source_failures, ==, i);
		g_assert_cmpuint(v.user_failures, ==, i);
		g_assert_false(v.blocked);
		g_assert_cmpuint(v.delay_usec, ==, mpop_penalty_delay_usec(f->cfg, i));
		g_assert_cmpuint(v.delay_usec, >=, prev);
		if (i >= 3)
			g_assert_cmpuint(v.delay_usec, >, 0);
		prev = v.delay_usec;
		fail(f, "192.0.2.1", "alice", T0 + i);
	}
}

static void
test_block_source(Fixture *f, gconstpointer data)
{
	MpopPenaltyVerdict v;
	char user[16];

	/* A different name each time: only the address adds up. */
	for (guint i = 0; i < 9; i++) {
		g_snprintf(user, sizeof(user), "user%u", i);
		fail(f, "192.0.2.1", user, T0);
	}
	v = query(f, "192.0.2.1", "someone", T0);
	g_assert_false(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 9);
	g_assert_cmpuint(v.user_failures, ==, 0);
	fail(f, "192.0.2.1", "user9", T0);
	v = query(f, "192.0.2.1", "someone", T0);
	g_assert_true(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 10);
	/* Another address is not affected, not even for the same names. */
	v = query(f, "192.0.2.2", "user1", T0);
	g_assert_false(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 0);
	g_assert_cmpuint(v.user_failures, ==, 1);
	g_assert_cmpuint(v.delay_usec, ==, 0);
	/* Nor is an IPv6 address that ends in the same bytes. */
	v = query(f, "::c000:201", "x", T0);
	g_assert_cmpuint(v.source_failures, ==, 0);
	/* 0 turns blocking off. */
	f->cfg->penalty_block_after = 0;
	g_assert_false(query(f, "192.0.2.1", "someone", T0).blocked);
}

static void
test_block_user(Fixture *f, gconstpointer data)
{
	MpopPenaltyVerdict v;
	char peer[32];

	for (guint i = 0; i < 30; i++) {
		g_snprintf(peer, sizeof(peer), "198.51.100.%u", i + 1);
		/* case variants are one name */
		fail(f, peer, i % 2 ? "Bob" : "bOB", T0);
	}
	v = query(f, "203.0.113.9", "BOB", T0);
	g_assert_true(v.blocked);
	g_assert_cmpuint(v.user_failures, ==, 30);
	g_assert_cmpuint(v.source_failures, ==, 0);
	g_assert_false(query(f, "203.0.113.9", "carol", T0).blocked);
	f->cfg->penalty_user_block_after = 31;
	g_assert_false(query(f, "203.0.113.9", "bob", T0).blocked);
}

/* An e-mail login is one name whichever domain separator it uses; a local part with the
 * separator in it is not folded beyond the last one. */
static void
test_user_separators(Fixture *f, gconstpointer data)
{
	fail(f, "198.51.100.1", "erin@example.org", T0);
	fail(f, "198.51.100.2", "erin%EXAMPLE.org", T0);
	g_assert_cmpuint(query(f, "203.0.113.9", "Erin@Example.Org", T0).user_failures, ==, 2);
	g_assert_cmpuint(query(f, "203.0.113.9", "erin", T0).user_failures, ==, 0);
	fail(f, "198.51.100.3", "a%b@example.org", T0);
	g_assert_cmpuint(query(f, "203.0.113.9", "a%b%example.org", T0).user_failures, ==, 1);
	g_assert_cmpuint(query(f, "203.0.113.9", "a@b@example.org", T0).user_failures, ==, 0);
}

static void
test_ipv6_grouping(Fixture *f, gconstpointer data)
{
	fail(f, "2001:db8:1:2::1", "a", T0);
	fail(f, "2001:db8:1:2:ffff:ffff:ffff:fffe", "b", T0);
	g_assert_cmpuint(query(f, "2001:db8:1:2:1234::9", "c", T0).source_failures, ==, 2);
	g_assert_cmpuint(query(f, "2001:db8:1:3::1", "c", T0).source_failures, ==, 0);
	g_assert_cmpuint(query(f, "2001:db8:1::1", "c", T0).source_failures, ==, 0);
	/* An IPv4 client on a dual-stack socket is the same client as on an IPv4 one. */
	fail(f, "::ffff:192.0.2.7", "a", T0);
	fail(f, "192.0.2.7", "a", T0);
	g_assert_cmpuint(query(f, "::ffff:192.0.2.7", "z", T0).source_failures, ==, 2);
	g_assert_cmpuint(query(f, "192.0.2.7", "z", T0).source_failures, ==, 2);
	g_assert_cmpuint(query(f, "192.0.2.8", "z", T0).source_failures, ==, 0);
}

static void
test_success_resets(Fixture *f, gconstpointer data)
{
	MpopPenaltyVerdict v;

	for (guint i = 0; i < 9; i++)
		fail(f, "192.0.2.1", "alice", T0);
	fail(f, "192.0.2.5", "alice", T0);
	g_assert_cmpuint(query(f, "192.0.2.1", "alice", T0).delay_usec, >, 0);
	succeed(f, "192.0.2.1", "alice", T0 + 1);
	v = query(f, "192.0.2.1", "alice", T0 + 1);
	g_assert_cmpuint(v.source_failures, ==, 0);
	g_assert_cmpuint(v.user_failures, ==, 0);
	g_assert_cmpuint(v.delay_usec, ==, 0);
	/* The other address's failures stay. */
	g_assert_cmpuint(query(f, "192.0.2.5", "x", T0 + 1).source_failures, ==, 1);
	/* A success with no record is harmless; no peer and no user are skipped. */
	succeed(f, "192.0.2.9", "nobody", T0 + 1);
	g_assert_cmpint(mpop_penalty_record(f->pen, f->cfg, NULL, 0, NULL, FALSE, T0), ==, 0);
	g_assert_cmpint(mpop_penalty_record(f->pen, f->cfg, NULL, 0, "", FALSE, T0), ==, 0);
}

static void
test_period_forgets(Fixture *f, gconstpointer data)
{
	const gint64 p = f->cfg->penalty_period;
	MpopPenaltyVerdict v;

	g_assert_cmpint(p, ==, 900);
	for (guint i = 0; i < 10; i++)
		fail(f, "192.0.2.1", "alice", T0 + i);
	/* The block lasts penalty_period from the last failure. */
	g_assert_true(query(f, "192.0.2.1", "x", T0 + 9 + p - 1).blocked);
	v = query(f, "192.0.2.1", "alice", T0 + 9 + p);
	g_assert_false(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 0);
	g_assert_cmpuint(v.user_failures, ==, 0);
	/* A failure after the quiet period starts a new count. */
	fail(f, "192.0.2.1", "alice", T0 + 9 + p);
	g_assert_cmpuint(query(f, "192.0.2.1", "x", T0 + 9 + p).source_failures, ==, 1);
	/* A record dated far in the future (the clock was set back) does not count. */
	fail(f, "192.0.2.3", "x", T0 + 100000);
	g_assert_cmpuint(query(f, "192.0.2.3", "y", T0).source_failures, ==, 0);
}

static gboolean
header_ok(const char *path)
{
	char buf[8] = {0};
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	gboolean ok = fd >= 0 && pread(fd, buf, sizeof(buf), 0) == sizeof(buf) &&
		      memcmp(buf, "MPOPPEN", 8) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void
assert_file_size(const char *path)
{
	struct stat st;

	g_assert_cmpint(stat(path, &st), ==, 0);
	g_assert_cmpint(st.st_size, ==, FILE_SIZE);
}

static void
test_file_created(Fixture *f, gconstpointer data)
{
	g_autofree char *dir = g_path_get_dirname(f->path);
	struct stat st;

	g_assert_cmpint(stat(dir, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0700);
	g_assert_cmpint(stat(f->path, &st), ==, 0);
	g_assert_cmpint(st.st_mode & 07777, ==, 0600);
	assert_file_size(f->path);
	g_assert_true(header_ok(f->path));
	/* The state survives closing and reopening (a restart). */
	fail(f, "192.0.2.1", "alice", T0);
	mpop_penalty_free(f->pen);
	f->pen = mpop_penalty_open(f->path, NULL);
	g_assert_nonnull(f->pen);
	g_assert_cmpuint(query(f, "192.0.2.1", "alice", T0).source_failures, ==, 1);
}

/* A file that is not a table of ours is started afresh, never trusted. */
static void
test_corrupt_reinit(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	g_autofree char *junk = g_malloc(FILE_SIZE);
	const char *cases[] = {"short", "garbage", "version", "truncated-open"};

	for (guint c = 0; c < G_N_ELEMENTS(cases); c++) {
		int fd;
		g_test_message("case %s", cases[c]);
		fail(f, "192.0.2.1", "alice", T0);
		g_assert_cmpuint(query(f, "192.0.2.1", "x", T0).source_failures, >, 0);
		mpop_penalty_free(f->pen);
		f->pen = NULL;
		fd = open(f->path, O_RDWR | O_CLOEXEC);
		g_assert_cmpint(fd, >=, 0);
		if (c == 0) {
			g_assert_cmpint(ftruncate(fd, 100), ==, 0);
		} else if (c == 1) {
			memset(junk, 0xa5, FILE_SIZE);
			g_assert_cmpint(pwrite(fd, junk, FILE_SIZE, 0), ==, FILE_SIZE);
		} else if (c == 2) {
			guint32 v = 99;
			g_assert_cmpint(pwrite(fd, &v, 4, 8), ==, 4);
		}
		if (c == 3) {
			/* cut while a process holds it open: the next operation notices */
			f->pen = mpop_penalty_open(f->path, &error);
			g_assert_no_error(error);
			g_assert_cmpint(ftruncate(fd, 0), ==, 0);
		} else {
			f->pen = mpop_penalty_open(f->path, &error);
			g_assert_no_error(error);
		}
		close(fd);
		g_assert_cmpuint(query(f, "192.0.2.1", "x", T0).source_failures, ==, 0);
		assert_file_size(f->path);
		g_assert_true(header_ok(f->path));
		fail(f, "192.0.2.1", "alice", T0);
		g_assert_cmpuint(query(f, "192.0.2.1", "x", T0).source_failures, ==, 1);
	}
}

/* Files anyone else could have written are refused, and so are symbolic links. */
static void
test_file_refused(Fixture *f, gconstpointer data)
{
	g_autofree char *other = g_build_filename(f->dir, "other", NULL);
	g_autoptr(GError) error = NULL;
	MpopPenalty *pen;

	g_assert_cmpint(chmod(f->path, 0644), ==, 0);
	pen = mpop_penalty_open(f->path, &error);
	g_assert_null(pen);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_PERM);
	g_clear_error(&error);
	g_assert_cmpint(chmod(f->path, 0600), ==, 0);
	g_assert_cmpint(symlink(f->path, other), ==, 0);
	pen = mpop_penalty_open(other, &error);
	g_assert_null(pen);
	g_assert_nonnull(error);
	g_clear_error(&error);
	unlink(other);
	g_assert_cmpint(mkdir(other, 0700), ==, 0);
	pen = mpop_penalty_open(other, &error);
	g_assert_null(pen);
	g_assert_nonnull(error);
	rmdir(other);
}

/* 100000 addresses, one failure each, all guessing one user's password: the file keeps its
 * size, the user's count is exact and blocks, and an address with many failures keeps its
 * record while the one-failure records of the flood evict each other. */
static void
test_flood(Fixture *f, gconstpointer data)
{
	char peer[64];
	MpopPenaltyVerdict v;

	for (guint i = 0; i < 10; i++)
		fail(f, "192.0.2.1", "alice", T0);
	for (guint i = 0; i < 100000; i++) {
		g_snprintf(peer, sizeof(peer), "2001:db8:%x:%x::1", i >> 16, i & 0xffff);
		fail(f, peer, "victim", T0 + 1);
	}
	if (data)
		assert_file_size(f->path);
	v = query(f, "203.0.113.1", "victim", T0 + 2);
	g_assert_cmpuint(v.user_failures, ==, 100000);
	g_assert_true(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 0);
	v = query(f, "192.0.2.1", "nobody", T0 + 2);
	g_assert_cmpuint(v.source_failures, ==, 10);
	g_assert_true(v.blocked);
	/* the user's record still counts and resets */
	fail(f, "203.0.113.1", "victim", T0 + 3);
	g_assert_cmpuint(query(f, "203.0.113.1", "victim", T0 + 3).user_failures, ==, 100001);
	succeed(f, "203.0.113.1", "victim", T0 + 4);
	g_assert_cmpuint(query(f, "203.0.113.1", "victim", T0 + 4).user_failures, ==, 0);
}

/* Two processes adding failures at once lose none: the memory table is inherited over
 * fork (one open file description), the file is opened by each process itself. */
static void
test_processes_share(Fixture *f, gconstpointer data)
{
	const guint per_child = 2000;
	pid_t pids[2];

	for (guint c = 0; c < G_N_ELEMENTS(pids); c++) {
		pids[c] = fork();
		g_assert_cmpint(pids[c], >=, 0);
		if (pids[c] == 0) {
			char peer[32];
			MpopPenalty *pen = f->pen;
			if (data)
				pen = mpop_penalty_open(f->path, NULL);
			g_snprintf(peer, sizeof(peer), "192.0.2.%u", c + 1);
			for (guint i = 0; i < per_child; i++) {
				Addr a = addr(peer);
				if (mpop_penalty_record(pen, f->cfg, (struct sockaddr *)&a.ss,
							a.len, "shared", FALSE, T0) < 0)
					_exit(1);
			}
			_exit(0);
		}
	}
	for (guint c = 0; c < G_N_ELEMENTS(pids); c++) {
		int status = -1;
		g_assert_cmpint(waitpid(pids[c], &status, 0), ==, pids[c]);
		g_assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	g_assert_cmpuint(query(f, "192.0.2.9", "shared", T0).user_failures, ==, 2 * per_child);
	g_assert_cmpuint(query(f, "192.0.2.1", "x", T0).source_failures, ==, per_child);
	g_assert_cmpuint(query(f, "192.0.2.2", "x", T0).source_failures, ==, per_child);
}

/* After mpop_penalty_close() the process holds no descriptor and sees no penalty. */
static void
test_close(Fixture *f, gconstpointer data)
{
	MpopPenaltyVerdict v;
	int fd = mpop_penalty_fd(f->pen);

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(fcntl(fd, F_GETFD), ==, FD_CLOEXEC);
	for (guint i = 0; i < 12; i++)
		fail(f, "192.0.2.1", "alice", T0);
	mpop_penalty_close(f->pen);
	g_assert_cmpint(mpop_penalty_fd(f->pen), ==, -1);
	g_assert_cmpint(fcntl(fd, F_GETFD), ==, -1);
	g_assert_cmpint(errno, ==, EBADF);
	v = query(f, "192.0.2.1", "alice", T0);
	g_assert_false(v.blocked);
	g_assert_cmpuint(v.source_failures, ==, 0);
	fail(f, "192.0.2.1", "alice", T0);
	mpop_penalty_close(f->pen);
	g_assert_cmpint(mpop_penalty_query(NULL, f->cfg, NULL, 0, "a", T0, &v), ==, 0);
	g_assert_false(v.blocked);
}

/* The memory table cannot be grown or shrunk by anyone holding it. */
static void
test_memory_sealed(Fixture *f, gconstpointer data)
{
	int fd = mpop_penalty_fd(f->pen);
	struct stat st;

	g_assert_cmpint(fstat(fd, &st), ==, 0);
	g_assert_cmpint(st.st_size, ==, FILE_SIZE);
	g_assert_cmpint(ftruncate(fd, FILE_SIZE * 2), ==, -1);
	g_assert_cmpint(ftruncate(fd, 0), ==, -1);
	g_assert_cmpint(errno, ==, EPERM);
}

static void
add(const char *name, void (*fn)(Fixture *, gconstpointer), gboolean both)
{
	g_autofree char *mem = g_strdup_printf("/penalty/memory/%s", name);
	g_autofree char *file = g_strdup_printf("/penalty/file/%s", name);

	if (both)
		g_test_add(mem, Fixture, NULL, setup, fn, teardown);
	g_test_add(file, Fixture, "file", setup, fn, teardown);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/penalty/delay-curve", test_delay_curve);
	add("delays-grow", test_delays_grow, TRUE);
	add("block-source", test_block_source, TRUE);
	add("block-user", test_block_user, TRUE);
	add("user-separators", test_user_separators, TRUE);
	add("ipv6-grouping", test_ipv6_grouping, TRUE);
	add("success-resets", test_success_resets, TRUE);
	add("period-forgets", test_period_forgets, TRUE);
	add("flood", test_flood, TRUE);
	add("processes-share", test_processes_share, TRUE);
	add("close", test_close, TRUE);
	add("created", test_file_created, FALSE);
	add("corrupt-reinit", test_corrupt_reinit, FALSE);
	add("refused", test_file_refused, FALSE);
	g_test_add("/penalty/memory/sealed", Fixture, NULL, setup, test_memory_sealed, teardown);
	return g_test_run();
}
