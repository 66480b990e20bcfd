/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mbox locking that cooperates with delivery agents: NFS-safe dotlock, fcntl, flock. */
#include "lock.h"
#include "privsep.h"
#include "config.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct MpopLock {
	char *lockpath;
	int dot_fd; /* our dotlock's inode, >= 0 while held */
	int fd;	    /* the mbox fd the fcntl/flock locks are on (not owned) */
	gboolean fcntl_held;
	gboolean flock_held;
};

/* A name nobody else can guess or collide with, next to lockpath (same directory, so link()
 * and rename() stay within one filesystem). */
static char *
unique_name(const char *lockpath, const char *tag)
{
	return g_strdup_printf("%s.%s%d.%08x%08x", lockpath, tag, (int)getpid(), g_random_int(),
			       g_random_int());
}

/* Our own lock format "pid:host": a lock left by a process of this host that no longer
 * exists is stale whatever its age (a killed session must not lock the user out for
 * stale_age seconds). Locks of other programs never match and only age out. */
static gboolean
owner_dead(const char *lockpath, const struct stat *seen)
{
	char buf[300], host[HOST_NAME_MAX + 1] = "";
	mpop_autofd fd = open(lockpath, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	struct stat sb;
	char *colon, *nl;
	ssize_t n;
	guint64 pid;

	if (fd < 0 || fstat(fd, &sb) < 0 || sb.st_ino != seen->st_ino || sb.st_dev != seen->st_dev)
		return FALSE;
	n = mpop_read_some(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return FALSE;
	buf[n] = '\0';
	colon = strchr(buf, ':');
	nl = strchr(buf, '\n');
	if (colon == NULL || nl == NULL || nl < colon)
		return FALSE;
	*colon = *nl = '\0';
	if (!g_ascii_string_to_unsigned(buf, 10, 1, INT_MAX, &pid, NULL))
		return FALSE;
	if (gethostname(host, sizeof(host) - 1) < 0 || strcmp(host, colon + 1) != 0)
		return FALSE;
	return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

static gboolean
is_stale(const char *lockpath, const struct stat *sb, guint stale_age)
{
	if (stale_age == 0)
		return FALSE;
	if (time(NULL) - sb->st_mtime > (time_t)stale_age)
		return TRUE;
	return owner_dead(lockpath, sb);
}

/* Remove a stale lock without ever removing a fresh one that replaced it meanwhile: move it
 * aside, check it is the inode judged stale, else put it back. */
static int
take_over(const char *lockpath, const struct stat *seen)
{
	g_autofree char *aside = unique_name(lockpath, "stale");
	struct stat sb;

	if (rename(lockpath, aside) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (lstat(aside, &sb) == 0 && (sb.st_ino != seen->st_ino || sb.st_dev != seen->st_dev))
		(void)link(aside, lockpath);
	(void)unlink(aside);
	return 0;
}

/* Create lockpath through a unique file and link(): O_EXCL is not atomic on old NFS, and
 * link() may report failure after succeeding there, so the link count decides. */
static int
dotlock_create(const char *lockpath)
{
	g_autofree char *tmp = unique_name(lockpath, "lk");
	char content[HOST_NAME_MAX + 32], host[HOST_NAME_MAX + 1] = "";
	mpop_autofd fd = open(tmp, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
	struct stat sb;
	int lrc, len;

	if (fd < 0)
		return -errno;
	(void)gethostname(host, sizeof(host) - 1);
	len = g_snprintf(content, sizeof(content), "%d:%s\n", (int)getpid(), host);
	(void)mpop_write_all(fd, content, (size_t)len); /* an empty lock still locks */
	lrc = link(tmp, lockpath) < 0 ? -errno : 0;
	if (fstat(fd, &sb) == 0 && sb.st_nlink == 2) {
		(void)unlink(tmp);
		return g_steal_fd(&fd);
	}
	(void)unlink(tmp);
	if (lrc == -EPERM || lrc == -EOPNOTSUPP) {
		/* No hard links on this filesystem: O_EXCL is atomic on local ones. */
		int fd2 = open(lockpath, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd2 < 0)
			return -errno;
		(void)mpop_write_all(fd2, content, (size_t)len);
		return fd2;
	}
	return lrc == 0 ? -EEXIST : lrc;
}

static int
dotlock_try(const char *lockpath, guint stale_age)
{
	for (int round = 0; round < 3; round++) {
		struct stat sb;
		int rc = dotlock_create(lockpath);

		if (rc != -EEXIST)
			return rc;
		/* Never follow what is there: a symlink is just an (odd) existing lock. */
		if (lstat(lockpath, &sb) < 0) {
			if (errno == ENOENT)
				continue; /* released meanwhile */
			return -errno;
		}
		if (!is_stale(lockpath, &sb, stale_age) || take_over(lockpath, &sb) < 0)
			return -EEXIST;
	}
	return -EEXIST;
}

/* Spools like Debian's root:mail 2775 /var/mail let only group mail create files: there the
 * session takes that group on just for the dotlock (mail_privileged_group). */
int
mpop_dotlock_try(const char *lockpath, guint stale_age)
{
	gboolean group = mpop_privsep_mail_group_enter(lockpath);
	int rc = dotlock_try(lockpath, stale_age);

	mpop_privsep_mail_group_leave(group);
	return rc;
}

static int
dotlock_remove(const char *lockpath, int lock_fd)
{
	struct stat mine, now;

	if (fstat(lock_fd, &mine) < 0)
		return -errno;
	if (lstat(lockpath, &now) < 0)
		return -errno;
	/* Taken over by someone else (we were too slow): theirs now, leave it. */
	if (now.st_ino != mine.st_ino || now.st_dev != mine.st_dev)
		return -ESTALE;
	return unlink(lockpath) < 0 ? -errno : 0;
}

int
mpop_dotlock_remove(const char *lockpath, int lock_fd)
{
	gboolean group = mpop_privsep_mail_group_enter(lockpath);
	int rc = dotlock_remove(lockpath, lock_fd);

	mpop_privsep_mail_group_leave(group);
	return rc;
}

static void
unlock_all(MpopLock *lk)
{
	if (lk->flock_held)
		(void)flock(lk->fd, LOCK_UN);
	if (lk->fcntl_held) {
		struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
		(void)fcntl(lk->fd, F_OFD_SETLK, &fl);
	}
	if (lk->dot_fd >= 0) {
		(void)mpop_dotlock_remove(lk->lockpath, lk->dot_fd);
		mpop_close_fdp(&lk->dot_fd);
	}
	lk->flock_held = lk->fcntl_held = FALSE;
}

/* One attempt at every configured lock; -EAGAIN when one is busy (nothing is kept then). */
static int
lock_once(MpopLock *lk, const MpopLockOpts *o)
{
	if (o->kinds & MPOP_LOCK_DOTLOCK) {
		int rc = mpop_dotlock_try(lk->lockpath, o->stale_age);
		if (rc == -EEXIST)
			return -EAGAIN;
		if (rc < 0)
			return rc;
		lk->dot_fd = rc;
	}
	if (o->kinds & MPOP_LOCK_FCNTL) {
		/* An OFD lock conflicts with the classic POSIX locks of procmail, Postfix and
		 * Exim, but is not dropped when this process closes another fd of the file. */
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
		if (fcntl(lk->fd, F_OFD_SETLK, &fl) < 0) {
			int err = errno;
			unlock_all(lk);
			return err == EAGAIN || err == EACCES ? -EAGAIN : -err;
		}
		lk->fcntl_held = TRUE;
	}
	if (o->kinds & MPOP_LOCK_FLOCK) {
		if (flock(lk->fd, LOCK_EX | LOCK_NB) < 0) {
			int err = errno;
			unlock_all(lk);
			return err == EWOULDBLOCK ? -EAGAIN : -err;
		}
		lk->flock_held = TRUE;
	}
	return 0;
}

MpopLock *
mpop_lock_acquire(const char *path, int fd, const MpopLockOpts *opts, GError **error)
{
	g_autoptr(MpopLock) lk = g_new0(MpopLock, 1);
	int rc;

	lk->dot_fd = -1;
	lk->fd = fd;
	lk->lockpath = g_strconcat(path, ".lock", NULL);
	for (guint attempt = 0;; attempt++) {
		rc = lock_once(lk, opts);
		if (rc != -EAGAIN || attempt >= opts->retries)
			break;
		g_usleep((gulong)opts->wait_ms * 1000);
	}
	if (rc == 0)
		return g_steal_pointer(&lk);
	if (rc == -EAGAIN)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE,
			    "mailbox is locked by another program");
	else if (rc == -EACCES || rc == -EPERM || rc == -EROFS)
		/* The dotlock needs write access to the spool directory: the session must have
		 * the spool's group (mail) when the directory is 2775 root:mail. */
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM, "cannot lock mailbox: %s",
			    g_strerror(-rc));
	else
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "cannot lock mailbox: %s",
			    g_strerror(-rc));
	return NULL;
}

void
mpop_lock_touch(MpopLock *lk)
{
	/* Agents take over dotlocks by age (procmail after 1024 s, Postfix after 500 s). */
	if (lk != NULL && lk->dot_fd >= 0)
		(void)futimens(lk->dot_fd, NULL);
}

void
mpop_lock_release(MpopLock *lk)
{
	if (lk == NULL)
		return;
	unlock_all(lk);
	g_free(lk->lockpath);
	g_free(lk);
}
