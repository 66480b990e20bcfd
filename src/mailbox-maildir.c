/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Maildir backend: lock, index of cur/ and new/ with sizes from names or the size cache,
 * new -> cur moves, unlink at UPDATE. */
#include "mailbox.h"
#include "log.h"
#include "maildir-sizes.h"
#include "uidl-compat.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define LOCK_NAME "mpopd.lock"
#define UIDLIST_NAME "dovecot-uidlist"
#define UIDLIST_MAX (64 * 1024 * 1024) /* some 400 000 messages */
#define MEASURE_CHUNK (64 * 1024)

typedef struct {
	int dir_fd;	     /* the maildir; -1 when it does not exist (empty maildrop) */
	int lock_fd;	     /* network filesystems only: holds the OFD write lock on LOCK_NAME */
	int msg_fd;	     /* the message being streamed */
	guint64 msg_left;    /* its bytes not read yet, from fstat() at the open */
	ino_t *inos;	     /* per message: the inode, which survives renames by other clients */
	gboolean listed_ino; /* readdir()'s d_ino is the inode stat() gives */
} MaildirPriv;

/* Where a message's size came from. Only measured and cached sizes go into the cache: a
 * name's size is read from the name again. */
typedef enum { SIZE_NONE, SIZE_NAME, SIZE_CACHED, SIZE_MEASURED } SizeSource;

typedef struct {
	char *name;	  /* "cur/..." or "new/..." in mb->strings: the unique name follows */
	guint64 ino;	  /* from the listing (d_ino), from stat() once the file was looked at */
	guint64 size;	  /* octets as sent */
	guint64 key[2];	  /* the unique name's first 16 bytes, for sorting (entry_cmp) */
	guint16 base_len; /* the unique name's length: the file name up to the first ':' */
	guint8 in_new;
	guint8 listed; /* a regular file in cur/ whose listed inode can be believed */
	guint8 src;    /* SizeSource */
} Entry;
/* Listing entries live only while the table is built, beside it: keep them small. */
G_STATIC_ASSERT(sizeof(Entry) <= 48);

static const char *
entry_base(const Entry *e)
{
	return e->name + 4;
}

static MaildirPriv *
priv_of(MpopMailbox *mb)
{
	return mb->priv;
}

/* Map an errno from the maildrop to the error class RFC 3206 replies need. */
static int
errno_class(int err)
{
	return err == EACCES || err == EPERM || err == ENOTDIR || err == ELOOP ? MPOP_ERROR_PERM
									       : MPOP_ERROR_TEMP;
}

static gboolean
lock_failed(int err, GError **error)
{
	if (err == EAGAIN || err == EACCES || err == EWOULDBLOCK)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE,
			    "maildrop is locked by another session");
	else
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "cannot lock maildrop: %s",
			    g_strerror(err));
	return FALSE;
}

/* Local filesystems, by fstatfs(): there a flock() on a directory is seen by every process
 * that can open the Maildir. On a network filesystem (NFS) it stays on one machine, so there
 * the lock is a byte-range lock on a file, which the NFS client passes to the server. */
static gboolean
fs_is_local(unsigned long type)
{
	static const unsigned long local[] = {
		EXT4_SUPER_MAGIC,
		XFS_SUPER_MAGIC,
		BTRFS_SUPER_MAGIC,
		TMPFS_MAGIC,
		RAMFS_MAGIC,
		F2FS_SUPER_MAGIC,
		OVERLAYFS_SUPER_MAGIC,
		REISERFS_SUPER_MAGIC,
		0x3153464aUL /* JFS */,
		0x2fc12fc1UL /* ZFS */,
		0xca451a4eUL /* bcachefs */,
	};

	for (guint i = 0; i < G_N_ELEMENTS(local); i++)
		if (type == local[i])
			return TRUE;
	return FALSE;
}

/* RFC 1939 §4: one session per maildrop. On local filesystems a flock() on the Maildir's own
 * descriptor: it leaves nothing behind, needs no write access to the Maildir root, excludes
 * other sessions in this process too (it belongs to the open file description) and is
 * released by the kernel when the holder dies. Only mpopd processes need to see it. */
static gboolean
maildir_lock(MaildirPriv *p, gboolean local, GError **error)
{
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

	if (local) {
		if (flock(p->dir_fd, LOCK_EX | LOCK_NB) < 0)
			return lock_failed(errno, error);
		return TRUE;
	}
	p->lock_fd = openat(p->dir_fd, LOCK_NAME, O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (p->lock_fd < 0) {
		int err = errno;
		g_set_error(error, MPOP_ERROR, errno_class(err), "cannot open lock file: %s",
			    g_strerror(err));
		return FALSE;
	}
	/* An open file description lock, exclusive across processes and machines. */
	if (fcntl(p->lock_fd, F_OFD_SETLK, &fl) < 0)
		return lock_failed(errno, error);
	return TRUE;
}

/* The first 16 bytes of a unique name (zero-padded) as two big-endian numbers: compared as
 * numbers they order names as memcmp() does. They hold the delivery time and more of a
 * standard unique name, so that sorting rarely reads the names themselves, which lie all over
 * memory. */
static void
sort_key(const char *base, size_t len, guint64 out[2])
{
	guint8 k[16] = {0};

	memcpy(k, base, MIN(len, sizeof(k)));
	memcpy(out, k, sizeof(k));
	out[0] = GUINT64_FROM_BE(out[0]);
	out[1] = GUINT64_FROM_BE(out[1]);
}

/* Add the non-dot files of sub ("cur" or "new") that can be regular files to entries, without
 * a system call per file: a message is looked at only if its size is not in the cache. Their
 * names go to the mailbox's string block, where the message table keeps them: one block, not
 * one allocation per message. A missing subdirectory is simply empty. */
static gboolean
list_sub(MpopMailbox *mb, const char *sub, GArray *entries, GError **error)
{
	MaildirPriv *p = priv_of(mb);
	int fd = openat(p->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	gboolean in_new = strcmp(sub, "new") == 0;
	DIR *d;
	struct dirent *de;

	if (fd < 0) {
		int err = errno;
		if (err == ENOENT)
			return TRUE;
		g_set_error(error, MPOP_ERROR, errno_class(err), "cannot open %s/: %s", sub,
			    g_strerror(err));
		return FALSE;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "cannot read %s/", sub);
		return FALSE;
	}
	while ((errno = 0, de = readdir(d)) != NULL) {
		char name[4 + NAME_MAX + 1];
		size_t len;
		Entry e;

		/* Symlinks and directories are not messages; a filesystem that does not say
		 * (DT_UNKNOWN) has each file looked at. */
		if (de->d_name[0] == '.' || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		len = strlen(de->d_name);
		memcpy(name, sub, 3);
		name[3] = '/';
		memcpy(name + 4, de->d_name, len);
		e.name = g_string_chunk_insert_len(mb->strings, name, (gssize)len + 4);
		e.base_len = (guint16)strcspn(de->d_name, ":");
		sort_key(de->d_name, e.base_len, e.key);
		e.ino = de->d_ino;
		e.size = 0;
		e.in_new = in_new;
		e.listed = p->listed_ino && !in_new && de->d_type == DT_REG;
		e.src = SIZE_NONE;
		g_array_append_val(entries, e);
	}
	if (errno != 0) {
		int err = errno;
		closedir(d);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "cannot read %s/: %s", sub,
			    g_strerror(err));
		return FALSE;
	}
	closedir(d);
	return TRUE;
}

/* Delivery order for standard unique names; the inode breaks ties between duplicate base
 * names and, unlike the flags, does not change when a message is renamed. The size cache is in
 * the same order (mpop_sizes_cmp()): names hold no NUL, so a shorter name's zero padding sorts
 * it first there too. */
static gint
entry_cmp(gconstpointer a, gconstpointer b)
{
	const Entry *x = a, *y = b;

	if (x->key[0] != y->key[0])
		return x->key[0] < y->key[0] ? -1 : 1;
	if (x->key[1] != y->key[1])
		return x->key[1] < y->key[1] ? -1 : 1;
	return mpop_sizes_cmp(entry_base(x), x->base_len, x->ino, entry_base(y), y->base_len,
			      y->ino);
}

/* Maildir: a message seen by a client moves from new/ to cur/ with ":2," info. Never
 * overwrite an existing file; on any failure the message is served from new/. */
static void
move_to_cur(MpopMailbox *mb, Entry *e)
{
	MaildirPriv *p = priv_of(mb);
	const char *file = e->name + 4;
	char dst[4 + NAME_MAX + 3 + 1];

	g_snprintf(dst, sizeof(dst), "cur/%s%s", file, strchr(file, ':') != NULL ? "" : ":2,");
	if (renameat2(p->dir_fd, e->name, p->dir_fd, dst, RENAME_NOREPLACE) < 0) {
		if (errno != EINVAL && errno != ENOSYS)
			return;
		/* Filesystems without RENAME_NOREPLACE: link + unlink also never overwrites. */
		if (linkat(p->dir_fd, e->name, p->dir_fd, dst, 0) < 0)
			return;
		if (unlinkat(p->dir_fd, e->name, 0) < 0 && errno != ENOENT) {
			unlinkat(p->dir_fd, dst, 0);
			return;
		}
	}
	e->name = g_string_chunk_insert(mb->strings, dst);
	e->in_new = FALSE;
}

/* Exact size as sent (RFC 1939 §5): CRLF line ends, before stuffing. Returns 0 / -errno. */
static int
measure(MpopMailbox *mb, Entry *e)
{
	mpop_autofd fd = openat(priv_of(mb)->dir_fd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	g_autofree char *buf = NULL;
	MpopStuffer st;
	struct stat sb;
	ssize_t n;

	if (fd < 0)
		return -errno;
	/* The name may have been reused by a different file since listing. */
	if (fstat(fd, &sb) < 0 || sb.st_ino != e->ino || !S_ISREG(sb.st_mode))
		return -ENOENT;
	buf = g_malloc(MEASURE_CHUNK);
	mpop_stuffer_init(&st, &mb->stuff_opts, -1);
	while ((n = mpop_read_some(fd, buf, MEASURE_CHUNK)) > 0)
		mpop_stuffer_feed(&st, buf, (size_t)n, NULL);
	if (n < 0)
		return (int)n;
	mpop_stuffer_finish(&st, NULL);
	e->size = st.size;
	e->src = SIZE_MEASURED;
	return 0;
}

/* maildir_uidl_source=dovecot: the UIDLs Dovecot answered, from its dovecot-uidlist, read
 * as the mailbox owner and never written. NULL when not asked for, absent or not
 * understood (then the file names serve, as for mail Dovecot never saw). */
static GHashTable *
dovecot_uidls(MpopMailbox *mb)
{
	char **src = mb->cfg != NULL ? mb->cfg->maildir_uidl_source : NULL;
	mpop_autofd fd = -1;
	g_autofree char *buf = NULL;
	GHashTable *t;
	struct stat sb;

	if (src == NULL || src[0] == NULL || strcmp(src[0], "dovecot") != 0)
		return NULL;
	fd = openat(priv_of(mb)->dir_fd, UIDLIST_NAME, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_size > UIDLIST_MAX) {
		if (fd >= 0 || errno != ENOENT)
			mpop_log_warning("maildir: cannot use %s, answering file names",
					 UIDLIST_NAME);
		return NULL;
	}
	buf = g_malloc((gsize)sb.st_size + 1);
	/* Dovecot replaces the file by rename() or appends whole lines: what was there at
	 * fstat() is enough, and a partial last line is ignored. */
	size_t got = 0;
	ssize_t n = 1;
	while (got < (size_t)sb.st_size &&
	       (n = mpop_read_some(fd, buf + got, (size_t)sb.st_size - got)) > 0)
		got += (size_t)n;
	t = n >= 0 ? mpop_uidl_dovecot_uidlist(buf, got) : NULL;
	if (t == NULL)
		mpop_log_warning("maildir: %s not understood, answering file names", UIDLIST_NAME);
	return t;
}

/* The size cache read beside the sorted entries: both are in mpop_sizes_cmp() order, so one
 * pass over each finds every match with no table in memory. */
typedef struct {
	MpopSizesReader *reader; /* NULL: no usable cache */
	MpopSizeRecord rec;
	gboolean have;
	guint stale; /* records of messages that are gone or changed */
} CacheWalk;

static void
walk_next(CacheWalk *w)
{
	w->have = w->reader != NULL && mpop_sizes_reader_next(w->reader, &w->rec);
}

/* A cached size for e: only for the same unique name and inode. A Maildir message does not
 * change once delivered, and a message replaced under its name is another inode; one
 * rewritten in place is listed with its old size and refused by RETR (mailbox.c), which
 * corrects the cache. Dovecot trusts its index the same way. */
static gboolean
cache_lookup(CacheWalk *w, Entry *e)
{
	for (; w->have; walk_next(w)) {
		int c = mpop_sizes_cmp(w->rec.base, w->rec.base_len, w->rec.ino, entry_base(e),
				       e->base_len, e->ino);
		if (c > 0)
			return FALSE;
		if (c == 0) {
			e->size = w->rec.size;
			e->src = SIZE_CACHED;
			walk_next(w);
			return TRUE;
		}
		w->stale++;
	}
	return FALSE;
}

/* The size of e, from the cache without a system call when its listed inode can be believed;
 * otherwise after a stat (which also moves a message in new/ to cur/): from the cache, the
 * name, or reading it. Sizes from names and the cache are claims the stream checks when it
 * sends (mailbox.c). Returns 0, -ENOENT (gone, or not a regular file) or -errno. */
static int
entry_size(MpopMailbox *mb, CacheWalk *w, gboolean use_sizes, Entry *e)
{
	MaildirPriv *p = priv_of(mb);
	struct stat sb;

	if (use_sizes && e->listed && cache_lookup(w, e))
		return 0;
	if (fstatat(p->dir_fd, e->name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -ENOENT;
	e->ino = sb.st_ino;
	if (e->in_new)
		move_to_cur(mb, e);
	if (use_sizes && cache_lookup(w, e))
		return 0;
	if (use_sizes &&
	    mpop_sizes_from_name(entry_base(e), e->base_len, (guint64)sb.st_size, &e->size)) {
		e->src = SIZE_NAME;
		return 0;
	}
	return measure(mb, e);
}

static MpopSizeRecord
entry_record(const Entry *e)
{
	return (MpopSizeRecord){
		.base = entry_base(e),
		.base_len = e->base_len,
		.ino = e->ino,
		.size = e->size,
	};
}

/* Turn the sorted entries into the message table, skipping what cannot be read. Counts the
 * sizes measured or taken from a name (which needed a stat) that the cache can hold (an odd name
 * cannot: such a message is measured at every login without rewriting the cache each time) and the
 * stale cache records. */
static void
build_table(MpopMailbox *mb, GArray *entries, gboolean use_sizes, guint *out_measured,
	    guint *out_stale)
{
	MaildirPriv *p = priv_of(mb);
	g_autoptr(GHashTable) dovecot = dovecot_uidls(mb);
	CacheWalk w = {0};
	guint measured = 0;

	if (use_sizes)
		w.reader = mpop_sizes_reader_open(p->dir_fd, mpop_sizes_max_bytes(entries->len));
	walk_next(&w);
	mb->msgs = g_new0(MpopMessage, MAX(entries->len, 1));
	p->inos = g_new0(ino_t, MAX(entries->len, 1));
	for (guint i = 0; i < entries->len; i++) {
		Entry *e = &g_array_index(entries, Entry, i);
		MpopMessage *m = &mb->msgs[mb->n_msgs];
		const char *uidl = NULL;
		int rc;

		rc = entry_size(mb, &w, use_sizes, e);
		if (rc < 0) {
			/* Vanished: another client removed it. Unreadable: skipped (and so never
			 * deleted) rather than blocking the whole maildrop; the admin is told. */
			if (rc != -ENOENT) {
				g_autofree char *esc =
					mpop_escape_excerpt(e->name, strlen(e->name), 80);
				mpop_log_warning("maildir: skipping unreadable message %s: %s", esc,
						 g_strerror(-rc));
			}
			continue;
		}
		if (e->src == SIZE_MEASURED || e->src == SIZE_NAME) {
			MpopSizeRecord rec = entry_record(e);
			measured += mpop_sizes_storable(&rec);
		}
		if (dovecot != NULL) {
			char base[NAME_MAX + 1]; /* a file name from readdir() */
			memcpy(base, entry_base(e), e->base_len);
			base[e->base_len] = '\0';
			uidl = g_hash_table_lookup(dovecot, base);
		}
		/* RFC 1939 §7: the unique name is a stable UIDL when it is a valid one. */
		m->uidl = uidl != NULL ? mpop_mailbox_intern(mb, uidl)
				       : g_string_chunk_insert_len(mb->strings, entry_base(e),
								   e->base_len);
		m->name = e->name;
		m->size = e->size;
		p->inos[mb->n_msgs] = e->ino;
		mb->n_msgs++;
	}
	for (; w.have; walk_next(&w))
		w.stale++;
	mpop_sizes_reader_free(w.reader);
	/* An invalid name becomes a digest of itself there. */
	mpop_uidl_make_unique(mb);
	*out_measured = measured;
	*out_stale = w.stale;
}

/* Replace the size cache with every size of this listing: measured, cached, or taken from a
 * ,S=,W= name (checked against the file's size once; from then on the name and the listed
 * inode find it without a stat, as for any cached size). A Maildir whose
 * root cannot be written is served all the same, measuring at every login. */
static void
save_sizes(MaildirPriv *p, GArray *entries)
{
	g_autoptr(MpopSizesWriter) w = NULL;
	int rc = 0;

	w = mpop_sizes_writer_new(p->dir_fd, &rc);
	if (w != NULL) {
		for (guint i = 0; i < entries->len; i++) {
			const Entry *e = &g_array_index(entries, Entry, i);
			MpopSizeRecord rec = entry_record(e);
			if (e->src != SIZE_NONE)
				mpop_sizes_writer_add(w, &rec);
		}
		rc = mpop_sizes_writer_commit(g_steal_pointer(&w));
	}
	if (rc < 0)
		mpop_log(rc == -EACCES || rc == -EPERM || rc == -EROFS ? MPOP_LOG_DEBUG
								       : MPOP_LOG_NOTICE,
			 "maildir: size cache not written: %s", g_strerror(-rc));
}

static gboolean
maildir_open(MpopMailbox *mb, GError **error)
{
	MaildirPriv *p = g_new0(MaildirPriv, 1);
	g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(Entry));
	/* Names and the cache give sizes of messages sent unchanged (nothing hidden). */
	gboolean use_sizes = mb->stuff_opts.hide_headers == NULL && !mb->stuff_opts.unquote_from;
	guint measured = 0, stale = 0;

	struct statfs sf;
	unsigned long fs;

	p->lock_fd = p->msg_fd = -1;
	mb->priv = p;
	p->dir_fd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dir_fd < 0) {
		int err = errno;
		/* No maildir yet (nothing ever delivered): an empty maildrop, nothing to lock. */
		if (err == ENOENT)
			return TRUE;
		g_set_error(error, MPOP_ERROR, errno_class(err), "cannot open maildir: %s",
			    g_strerror(err));
		return FALSE;
	}
	fs = fstatfs(p->dir_fd, &sf) == 0 ? (unsigned long)sf.f_type : 0;
	if (!maildir_lock(p, fs_is_local(fs), error))
		return FALSE;
	/* readdir()'s d_ino is the inode stat() gives on local filesystems; on overlayfs only in
	 * some configurations (the kernel's overlayfs.rst), and elsewhere each file is stat()ed. */
	p->listed_ino = fs_is_local(fs) && fs != OVERLAYFS_SUPER_MAGIC;
	if (!list_sub(mb, "cur", entries, error) || !list_sub(mb, "new", entries, error))
		return FALSE;
	g_array_sort(entries, entry_cmp);
	build_table(mb, entries, use_sizes, &measured, &stale);
	/* Rewritten when something was measured, and when enough of it describes messages that
	 * are gone, so that it holds about what the Maildir holds. */
	if (use_sizes && (measured > 0 || stale > 64 + mb->n_msgs / 8))
		save_sizes(p, entries);
	return TRUE;
}

/* Another client (an IMAP server, a MUA) may rename a message to change its flags. Find it
 * again by its unique name and inode; updates m->name. Returns 0 or -ENOENT. */
static int
relocate(MpopMailbox *mb, guint idx)
{
	MaildirPriv *p = priv_of(mb);
	MpopMessage *m = &mb->msgs[idx];
	const char *file = m->name + 4;
	size_t blen = strcspn(file, ":");
	static const char *const subs[] = {"cur", "new"};

	for (guint s = 0; s < G_N_ELEMENTS(subs); s++) {
		int fd = openat(p->dir_fd, subs[s], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;

		if (d == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			char name[4 + NAME_MAX + 1];
			struct stat sb;
			if (strncmp(de->d_name, file, blen) != 0 ||
			    (de->d_name[blen] != '\0' && de->d_name[blen] != ':'))
				continue;
			if (fstatat(fd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
			    sb.st_ino != p->inos[idx] || !S_ISREG(sb.st_mode))
				continue;
			/* The old name stays in the string block until the session ends: a
			 * rename by another client costs one name. */
			g_snprintf(name, sizeof(name), "%s/%s", subs[s], de->d_name);
			m->name = g_string_chunk_insert(mb->strings, name);
			closedir(d);
			return 0;
		}
		closedir(d);
	}
	return -ENOENT;
}

/* Open message idx, following a rename by another client. Returns an fd or -errno, and its
 * size in *out_size (G_MAXUINT64 when not known). */
static int
open_message(MpopMailbox *mb, guint idx, guint64 *out_size)
{
	MaildirPriv *p = priv_of(mb);
	int fd = openat(p->dir_fd, mb->msgs[idx].name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat sb;

	*out_size = G_MAXUINT64;
	if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_ino == p->inos[idx]) {
		*out_size = (guint64)sb.st_size;
		return fd;
	}
	if (fd >= 0)
		close(fd);
	else if (errno != ENOENT)
		return -errno;
	if (relocate(mb, idx) < 0)
		return -ENOENT;
	fd = openat(p->dir_fd, mb->msgs[idx].name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

static gboolean
maildir_msg_begin(MpopMailbox *mb, guint idx, GError **error)
{
	MaildirPriv *p = priv_of(mb);
	int fd;

	g_return_val_if_fail(p->dir_fd >= 0 && idx < mb->n_msgs, FALSE);
	mpop_close_fdp(&p->msg_fd);
	fd = open_message(mb, idx, &p->msg_left);
	if (fd == -ENOENT) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED,
			    "message was removed by another client");
		return FALSE;
	}
	if (fd < 0) {
		g_set_error(error, MPOP_ERROR, errno_class(-fd), "cannot open message: %s",
			    g_strerror(-fd));
		return FALSE;
	}
	p->msg_fd = fd;
	return TRUE;
}

/* A delivered Maildir message does not change: its end is the size fstat() gave at the open,
 * which saves the read() that would find it. A file cut short since ends early and the size
 * check after the stream sees it. */
static gssize
maildir_msg_read(MpopMailbox *mb, char *buf, gsize len, GError **error)
{
	MaildirPriv *p = priv_of(mb);
	ssize_t n;

	if (p->msg_left == 0)
		return 0;
	n = mpop_read_some(p->msg_fd, buf, (gsize)MIN((guint64)len, p->msg_left));
	if (n < 0)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "cannot read message: %s",
			    g_strerror((int)-n));
	else if (p->msg_left != G_MAXUINT64)
		p->msg_left -= (guint64)n;
	return n;
}

/* The stream counted another size than the table gave: the name or the cache was wrong, or
 * the file changed. Store what was counted, under the inode of the file read, so that the next
 * session lists it (this one has already). */
static void
maildir_size_wrong(MpopMailbox *mb, guint idx, guint64 sent)
{
	MaildirPriv *p = priv_of(mb);
	const char *file = strchr(mb->msgs[idx].name, '/') + 1;
	struct stat sb;
	MpopSizeRecord rec;
	int rc;

	if (fstat(p->msg_fd, &sb) < 0)
		return;
	rec = (MpopSizeRecord){
		.base = file,
		.base_len = strcspn(file, ":"),
		.ino = sb.st_ino,
		.size = sent,
	};
	rc = mpop_sizes_store_one(p->dir_fd, &rec, mpop_sizes_max_bytes(mb->n_msgs));
	mpop_log_warning("maildir: message %u is %" G_GUINT64_FORMAT
			 " octets, not %" G_GUINT64_FORMAT "; %s",
			 idx + 1, sent, mb->msgs[idx].size,
			 rc == 0 ? "size cache corrected" : "size cache not written");
}

static void
maildir_msg_end(MpopMailbox *mb)
{
	mpop_close_fdp(&priv_of(mb)->msg_fd);
}

static void
sync_dir(MaildirPriv *p, const char *sub)
{
	mpop_autofd fd = openat(p->dir_fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	/* Make the unlinks durable; failing here can only bring a message back, never lose one. */
	if (fd >= 0 && fsync(fd) < 0)
		mpop_log_warning("maildir: fsync of %s/ failed: %s", sub, g_strerror(errno));
}

/* Unlink message idx if it is still the file we indexed. Returns 0 or -errno. */
static int
remove_message(MpopMailbox *mb, guint idx)
{
	MaildirPriv *p = priv_of(mb);
	struct stat sb;

	if (fstatat(p->dir_fd, mb->msgs[idx].name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
	    sb.st_ino != p->inos[idx]) {
		if (relocate(mb, idx) < 0)
			return 0; /* already gone: someone else removed it */
	}
	if (unlinkat(p->dir_fd, mb->msgs[idx].name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static gboolean
maildir_commit(MpopMailbox *mb, GError **error)
{
	MaildirPriv *p = priv_of(mb);
	gboolean ok = TRUE, touched_new = FALSE;

	if (p == NULL || p->dir_fd < 0)
		return TRUE;
	/* RFC 1939 §6: remove exactly the messages marked deleted; keep going after a failure
	 * (a message that stays is safe) and report the first one. */
	for (guint i = 0; i < mb->n_msgs; i++) {
		int rc;
		if (!mb->msgs[i].deleted)
			continue;
		rc = remove_message(mb, i);
		touched_new |= g_str_has_prefix(mb->msgs[i].name, "new/");
		if (rc < 0 && ok) {
			g_autofree char *esc =
				mpop_escape_excerpt(mb->msgs[i].name, strlen(mb->msgs[i].name), 80);
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP,
				    "cannot remove message %u (%s): %s", i + 1, esc,
				    g_strerror(-rc));
			ok = FALSE;
		}
	}
	sync_dir(p, "cur");
	if (touched_new)
		sync_dir(p, "new");
	return ok;
}

static void
maildir_close(MpopMailbox *mb)
{
	MaildirPriv *p = priv_of(mb);

	if (p == NULL)
		return;
	mpop_close_fdp(&p->msg_fd);
	/* Closing the only fd of the open file description releases the OFD lock. */
	mpop_close_fdp(&p->lock_fd);
	mpop_close_fdp(&p->dir_fd);
	g_free(p->inos);
	g_free(p);
	mb->priv = NULL;
}

const MpopMailboxOps mpop_mailbox_maildir_ops = {
	.name = "maildir",
	.open = maildir_open,
	.msg_begin = maildir_msg_begin,
	.msg_read = maildir_msg_read,
	.msg_end = maildir_msg_end,
	.size_wrong = maildir_size_wrong,
	.commit = maildir_commit,
	.close = maildir_close,
};
