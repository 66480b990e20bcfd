/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for mbox locking: dotlock atomicity, contention, stale takeover, fcntl/flock, spools. */
#include "lock.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
	char *dir;
	char *mbox;
	char *lockpath;
} Fixture;

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	g_autoptr(GError) error = NULL;

	f->dir = g_dir_make_tmp("mpop-lock-XXXXXX", &error);
	g_assert_no_error(error);
	f->mbox = g_build_filename(f->dir, "user", NULL);
	f->lockpath = g_strconcat(f->mbox, ".lock", NULL);
	g_file_set_contents(f->mbox, "From a\n\nbody\n", -1, &error);
	g_assert_no_error(error);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	GDir *d = g_dir_open(f->dir, 0, NULL);
	const char *n;

	while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = g_build_filename(f->dir, n, NULL);
		unlink(p);
	}
	if (d != NULL)
		g_dir_close(d);
	rmdir(f->dir);
	g_free(f->dir);
	g_free(f->mbox);
	g_free(f->lockpath);
}

/* Only the lock itself may be left in the directory: no temporary names. */
static guint
dir_entries(const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	guint n = 0;

	while (g_dir_read_name(d) != NULL)
		n++;
	g_dir_close(d);
	return n;
}

static void
test_dotlock_basic(Fixture *f, gconstpointer data)
{
	struct stat sb;
	int fd = mpop_dotlock_try(f->lockpath, 60);
	g_autofree char *content = NULL;
	g_autofree char *pid_prefix = g_strdup_printf("%d:", (int)getpid());

	g_assert_cmpint(fd, >=, 0);
	g_assert_cmpint(lstat(f->lockpath, &sb), ==, 0);
	g_assert_true(S_ISREG(sb.st_mode));
	g_assert_cmpuint(sb.st_nlink, ==, 1); /* the temporary link is gone */
	g_assert_cmpuint(dir_entries(f->dir), ==, 2);
	g_assert_true(g_file_get_contents(f->lockpath, &content, NULL, NULL));
	g_assert_true(g_str_has_prefix(content, pid_prefix));
	/* Held: a second attempt (even by us) fails, and leaves no debris. */
	g_assert_cmpint(mpop_dotlock_try(f->lockpath, 60), ==, -EEXIST);
	g_assert_cmpuint(dir_entries(f->dir), ==, 2);
	g_assert_cmpint(mpop_dotlock_remove(f->lockpath, fd), ==, 0);
	g_assert_cmpint(lstat(f->lockpath, &sb), ==, -1);
	close(fd);
}

static MpopLockOpts
opts(guint kinds, guint retries, guint wait_ms, guint stale)
{
	MpopLockOpts o = {kinds, retries, wait_ms, stale};
	return o;
}

/* A child holding the dotlock (like procmail during a delivery) for hold_ms. */
static pid_t
hold_dotlock(const char *lockpath, guint hold_ms)
{
	int p[2];
	char c;
	pid_t pid;

	g_assert_cmpint(pipe(p), ==, 0);
	pid = fork();
	g_assert_cmpint(pid, >=, 0);
	if (pid == 0) {
		int fd = mpop_dotlock_try(lockpath, 0);
		if (write(p[1], fd >= 0 ? "y" : "n", 1) != 1)
			_exit(2);
		g_usleep(hold_ms * 1000);
		mpop_dotlock_remove(lockpath, fd);
		_exit(0);
	}
	close(p[1]);
	g_assert_cmpint(read(p[0], &c, 1), ==, 1);
	g_assert_cmpint(c, ==, 'y');
	close(p[0]);
	return pid;
}

static void
reap(pid_t pid)
{
	int st;

	g_assert_cmpint(waitpid(pid, &st, 0), ==, pid);
}

static void
test_contention(Fixture *f, gconstpointer data)
{
	mpop_autofd fd = open(f->mbox, O_RDWR);
	g_autoptr(GError) error = NULL;
	MpopLockOpts o = opts(MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL, 2, 50, 300);
	pid_t pid = hold_dotlock(f->lockpath, 2000);
	guint64 t0 = mpop_now_usec();
	MpopLock *lk = mpop_lock_acquire(f->mbox, fd, &o, &error);

	/* Gives up after the retries: 2 x 50 ms. */
	g_assert_null(lk);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_assert_cmpuint(mpop_now_usec() - t0, >=, 100000);
	g_assert_cmpuint(mpop_now_usec() - t0, <, 1500000);
	kill(pid, SIGTERM);
	reap(pid);
	unlink(f->lockpath);
	g_clear_error(&error);

	/* A short delivery: the retries wait it out. */
	pid = hold_dotlock(f->lockpath, 200);
	o = opts(MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL, 40, 50, 300);
	lk = mpop_lock_acquire(f->mbox, fd, &o, &error);
	g_assert_no_error(error);
	g_assert_nonnull(lk);
	reap(pid);
	mpop_lock_release(lk);
	g_assert_false(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
	g_assert_cmpuint(dir_entries(f->dir), ==, 1);
}

static void
set_mtime(const char *path, time_t age)
{
	struct timespec ts[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};

	g_assert_cmpint(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), ==, 0);
}

static void
test_stale(Fixture *f, gconstpointer data)
{
	mpop_autofd fd = open(f->mbox, O_RDWR);
	g_autoptr(GError) error = NULL;
	MpopLockOpts o = opts(MPOP_LOCK_DOTLOCK, 0, 10, 60);
	MpopLock *lk;

	/* Another program's lock (procmail writes "0"): only age counts. */
	g_assert_true(g_file_set_contents(f->lockpath, "0", -1, NULL));
	set_mtime(f->lockpath, 30);
	lk = mpop_lock_acquire(f->mbox, fd, &o, &error);
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_clear_error(&error);
	set_mtime(f->lockpath, 61);
	o.stale_age = 0; /* 0: never take over */
	g_assert_null(mpop_lock_acquire(f->mbox, fd, &o, &error));
	g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
	g_clear_error(&error);
	o.stale_age = 60;
	lk = mpop_lock_acquire(f->mbox, fd, &o, &error);
	g_assert_no_error(error);
	g_assert_nonnull(lk);
	mpop_lock_release(lk);
	g_assert_cmpuint(dir_entries(f->dir), ==, 1);
}

static void
test_dead_owner(Fixture *f, gconstpointer data)
{
	char host[256] = "";
	g_autofree char *dead = NULL, *other = NULL;
	pid_t pid = fork();
	int fd;

	/* A pid that surely no longer exists: a reaped child's. */
	if (pid == 0)
		_exit(0);
	reap(pid);
	gethostname(host, sizeof(host) - 1);
	other = g_strdup_printf("%d:not-%s\n", (int)pid, host);
	g_assert_true(g_file_set_contents(f->lockpath, other, -1, NULL));
	g_assert_cmpint(mpop_dotlock_try(f->lockpath, 300), ==, -EEXIST);
	dead = g_strdup_printf("%d:%s\n", (int)pid, host);
	g_assert_true(g_file_set_contents(f->lockpath, dead, -1, NULL));
	fd = mpop_dotlock_try(f->lockpath, 300);
	g_assert_cmpint(fd, >=, 0);
	/* Our own live lock is never "dead". */
	g_assert_cmpint(mpop_dotlock_try(f->lockpath, 300), ==, -EEXIST);
	g_assert_cmpint(mpop_dotlock_remove(f->lockpath, fd), ==, 0);
	close(fd);
}

static void
test_symlink(Fixture *f, gconstpointer data)
{
	g_autofree char *target = g_build_filename(f->dir, "victim", NULL);
	g_autofree char *content = NULL;
	int fd;

	g_assert_true(g_file_set_contents(target, "precious", -1, NULL));
	g_assert_cmpint(symlink(target, f->lockpath), ==, 0);
	/* A planted symlink is an existing lock, never followed. */
	g_assert_cmpint(mpop_dotlock_try(f->lockpath, 60), ==, -EEXIST);
	set_mtime(f->lockpath, 3600);
	fd = mpop_dotlock_try(f->lockpath, 60);
	g_assert_cmpint(fd, >=, 0);
	g_assert_true(g_file_get_contents(target, &content, NULL, NULL));
	g_assert_cmpstr(content, ==, "precious");
	g_assert_false(g_file_test(f->lockpath, G_FILE_TEST_IS_SYMLINK));
	g_assert_cmpint(mpop_dotlock_remove(f->lockpath, fd), ==, 0);
	close(fd);
	/* A dangling symlink does not make us create its target either. */
	g_assert_cmpint(symlink("/nonexistent-mpop-target", f->lockpath), ==, 0);
	g_assert_cmpint(mpop_dotlock_try(f->lockpath, 60), ==, -EEXIST);
	g_assert_false(g_file_test("/nonexistent-mpop-target", G_FILE_TEST_EXISTS));
}

/* The release never removes a lock that is no longer ours. */
static void
test_remove_not_ours(Fixture *f, gconstpointer data)
{
	int fd = mpop_dotlock_try(f->lockpath, 60);

	g_assert_cmpint(fd, >=, 0);
	unlink(f->lockpath);
	g_assert_true(g_file_set_contents(f->lockpath, "theirs", -1, NULL));
	g_assert_cmpint(mpop_dotlock_remove(f->lockpath, fd), ==, -ESTALE);
	g_assert_true(g_file_test(f->lockpath, G_FILE_TEST_EXISTS));
	close(fd);
}

/* A delivery agent holding a classic POSIX (procmail, Postfix) or BSD lock. */
static void
test_kernel_locks(Fixture *f, gconstpointer data)
{
	static const guint kinds[] = {MPOP_LOCK_FCNTL, MPOP_LOCK_FLOCK};

	for (guint k = 0; k < G_N_ELEMENTS(kinds); k++) {
		int p[2];
		char c;
		pid_t pid;
		mpop_autofd fd = open(f->mbox, O_RDWR);
		g_autoptr(GError) error = NULL;
		MpopLockOpts o = opts(kinds[k], 1, 20, 60);
		MpopLock *lk;

		g_assert_cmpint(pipe(p), ==, 0);
		pid = fork();
		if (pid == 0) {
			int cfd = open(f->mbox, O_RDWR);
			struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
			if (kinds[k] == MPOP_LOCK_FCNTL ? fcntl(cfd, F_SETLK, &fl)
							: flock(cfd, LOCK_EX))
				_exit(1);
			if (write(p[1], "y", 1) != 1)
				_exit(1);
			pause();
			_exit(0);
		}
		close(p[1]);
		g_assert_cmpint(read(p[0], &c, 1), ==, 1);
		close(p[0]);
		lk = mpop_lock_acquire(f->mbox, fd, &o, &error);
		g_assert_null(lk);
		g_assert_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE);
		g_clear_error(&error);
		kill(pid, SIGKILL); /* the kernel drops its lock with it */
		reap(pid);
		lk = mpop_lock_acquire(f->mbox, fd, &o, &error);
		g_assert_no_error(error);
		mpop_lock_release(lk);
	}
}

static void
test_touch(Fixture *f, gconstpointer data)
{
	mpop_autofd fd = open(f->mbox, O_RDWR);
	MpopLockOpts o = opts(MPOP_LOCK_DOTLOCK, 0, 10, 60);
	MpopLock *lk = mpop_lock_acquire(f->mbox, fd, &o, NULL);
	struct stat sb;

	g_assert_nonnull(lk);
	set_mtime(f->lockpath, 1000);
	mpop_lock_touch(lk);
	g_assert_cmpint(stat(f->lockpath, &sb), ==, 0);
	g_assert_cmpint(time(NULL) - sb.st_mtime, <, 10);
	mpop_lock_release(lk);
}

/* Debian's spool is 2775 root:mail; others use 1777. The session runs as the user with
 * group mail as a supplementary group: that is all the dotlock needs. */
static void
test_spool_permissions(void)
{
	static const struct {
		mode_t mode;
		gboolean with_mail;
		int expect; /* 0 ok, else the MpopError code */
	} cases[] = {
		{02775, TRUE, 0},
		{02775, FALSE, MPOP_ERROR_PERM},
		{01777, FALSE, 0},
		{0755, TRUE, MPOP_ERROR_PERM},
	};
	struct passwd *nobody = getpwnam("nobody");
	struct group *mail = getgrnam("mail");

	if (geteuid() != 0 || nobody == NULL || mail == NULL) {
		g_test_skip("needs root, user nobody and group mail");
		return;
	}
	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree char *dir = g_dir_make_tmp("mpop-spool-XXXXXX", NULL);
		g_autofree char *mbox = g_build_filename(dir, "nobody", NULL);
		g_autofree char *lockpath = g_strconcat(mbox, ".lock", NULL);
		pid_t pid;
		int st;

		g_assert_cmpint(chown(dir, 0, mail->gr_gid), ==, 0);
		g_assert_cmpint(chmod(dir, cases[i].mode), ==, 0);
		g_assert_true(g_file_set_contents(mbox, "From a\n\nx\n", -1, NULL));
		g_assert_cmpint(chown(mbox, nobody->pw_uid, mail->gr_gid), ==, 0);
		g_assert_cmpint(chmod(mbox, 0660), ==, 0);
		pid = fork();
		if (pid == 0) {
			gid_t groups[1] = {mail->gr_gid};
			int fd;
			MpopLockOpts o = opts(MPOP_LOCK_DOTLOCK | MPOP_LOCK_FCNTL, 0, 10, 60);
			GError *error = NULL;
			MpopLock *lk;
			if (setgroups(cases[i].with_mail ? 1 : 0, groups) < 0 ||
			    setresgid(nobody->pw_gid, nobody->pw_gid, nobody->pw_gid) < 0 ||
			    setresuid(nobody->pw_uid, nobody->pw_uid, nobody->pw_uid) < 0)
				_exit(90);
			fd = open(mbox, O_RDWR);
			if (fd < 0)
				_exit(91);
			lk = mpop_lock_acquire(mbox, fd, &o, &error);
			if (lk == NULL)
				_exit(error->code);
			if (!g_file_test(lockpath, G_FILE_TEST_EXISTS))
				_exit(92);
			mpop_lock_release(lk);
			_exit(g_file_test(lockpath, G_FILE_TEST_EXISTS) ? 93 : 0);
		}
		g_assert_cmpint(waitpid(pid, &st, 0), ==, pid);
		g_assert_true(WIFEXITED(st));
		if (WEXITSTATUS(st) == 91) {
			g_test_skip("the temporary directory is not reachable by nobody");
		} else {
			g_test_message("mode %o mail %d", cases[i].mode, cases[i].with_mail);
			g_assert_cmpint(WEXITSTATUS(st), ==, cases[i].expect);
		}
		unlink(mbox);
		unlink(lockpath);
		rmdir(dir);
	}
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)
	ADD("/lock/dotlock/basic", test_dotlock_basic);
	ADD("/lock/dotlock/contention", test_contention);
	ADD("/lock/dotlock/stale", test_stale);
	ADD("/lock/dotlock/dead-owner", test_dead_owner);
	ADD("/lock/dotlock/symlink", test_symlink);
	ADD("/lock/dotlock/remove-not-ours", test_remove_not_ours);
	ADD("/lock/dotlock/touch", test_touch);
	ADD("/lock/kernel", test_kernel_locks);
	g_test_add_func("/lock/spool-permissions", test_spool_permissions);
	return g_test_run();
}
