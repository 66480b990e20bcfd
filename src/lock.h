/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mbox locking that cooperates with delivery agents: NFS-safe dotlock, fcntl, flock. */
#pragma once

#include <glib.h>
#include <sys/types.h>

typedef struct {
	guint kinds;	 /* MPOP_LOCK_* bits (config.h) */
	guint retries;	 /* extra attempts after the first */
	guint wait_ms;	 /* pause between attempts */
	guint stale_age; /* seconds after which a dotlock is taken over; 0 = never */
} MpopLockOpts;

typedef struct MpopLock MpopLock;

/* Take the locks on the mbox at path, in the order delivery agents use (dotlock, then fcntl,
 * then flock on fd, an O_RDWR fd of path). Errors: MPOP_ERROR_IN_USE when still held by
 * someone else after all attempts, MPOP_ERROR_PERM / MPOP_ERROR_TEMP otherwise. */
MpopLock *mpop_lock_acquire(const char *path, int fd, const MpopLockOpts *opts, GError **error);

/* Refresh the dotlock's mtime so that agents do not take it over as stale. */
void mpop_lock_touch(MpopLock *lk);

/* Release every lock taken (the fd itself stays open). NULL is accepted. */
void mpop_lock_release(MpopLock *lk);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopLock, mpop_lock_release)

/* One attempt at the dotlock lockpath: a unique file in the same directory, link()ed to
 * lockpath, success judged by the link count (NFS-safe). A stale lock (older than
 * stale_age seconds, or ours from a dead process on this host) is taken over first.
 * Returns an fd of the lock file (keep it to touch/release), -EEXIST when held, or -errno. */
int mpop_dotlock_try(const char *lockpath, guint stale_age);

/* Remove lockpath if it is still the lock whose fd is given. Returns 0 or -errno. */
int mpop_dotlock_remove(const char *lockpath, int lock_fd);
