/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Berkeley mbox backend: one-pass index, snapshot/session-lock/spool modes, safe UPDATE. */
#include "mailbox-mbox.h"
#include "lock.h"
#include "privsep.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * The file is indexed once, under the locks, through a read-only mapping: the scanner needs
 * to look one line back (is the line before "From " a separator?) and the mapping gives that
 * for free. Pages behind the cursor are dropped as it goes, so the resident set stays small
 * whatever the file size. Messages are later read with pread(), never through a mapping that
 * a concurrent truncation could turn into SIGBUS.
 *
 * What a session may rely on between index and UPDATE is the message boundaries: each
 * message's separator line plus From line is remembered as a hash and checked before every
 * read (for that message) and at UPDATE (all of them), together with the inode and a size
 * no smaller than what was indexed. Appends are fine; a rewrite by another program is
 * MPOP_ERROR_CHANGED and nothing is deleted.
 *
 * UPDATE writes the new mailbox to a unique file in the same directory under the locks (the
 * untouched text before the first message, every kept message byte for byte with its From
 * line and separator, then every byte appended since login), fsyncs it, gives it the
 * original's owner, group and mode, renames it over the original and fsyncs the directory.
 * A kill at any instant leaves either the old or the new file (a stray temporary at worst),
 * never a mix; ENOSPC/EDQUOT leave the original untouched. An in-place rewrite (mutt,
 * Dovecot) keeps the inode but a crash in the middle truncates mail, which is the one thing
 * this server must never do. The rename is safe against delivery agents because they take
 * the dotlock before opening the mailbox (procmail, Postfix local, Exim appendfile) or check
 * the inode again after locking (Dovecot).
 *
 * With mbox_index, what a login found is kept beside the mbox (mbox-store.c says where, in
 * what form and how far it is trusted): the next login reuses it when the file is provably
 * the one indexed and scans only what was appended; UPDATE writes the index of the file it
 * renames into place.
 */

#define COPY_CHUNK (256 * 1024)
#define CACHE_MAX (64 * 1024)

typedef struct {
	int fd;		/* what messages are read from: the mbox, or the spool copy */
	MpopLock *lock; /* held for the whole session in session-lock mode */
	int session_fd; /* flock()ed for the session in snapshot and spool modes, or -1 */
	MpopMboxParser *parser;
	const char *hide[8];
	dev_t dev;
	ino_t ino;
	guint64 indexed_end; /* file size when indexed */
	guint64 first_from;  /* bytes before the first message */
	guint32 *span_hash;  /* per message: separator + From line */
	guint32 tail_hash;   /* after the last message's content */
	guint64 *fp;	     /* per message: its fingerprint (for the persisted index) */
	char *store_path;    /* the persisted index, or NULL without mbox_index */
	guint32 rules;	     /* hash of the settings the index depends on */
	GArray *retired;     /* guint64 keys of UIDLs given out and gone */
	guint64 counter;     /* the next fresh UIDL suffix */
	guint cur;
	guint64 cur_pos;
	char *cache;	 /* a small message with its boundaries, read in one pread() */
	gboolean cached; /* the current message is in cache (at cache_skip) */
	size_t cache_skip;
} MboxPriv;

/* ---- boundary hashes ---- */

/* ---- the backend ---- */

static MboxPriv *
priv_of(MpopMailbox *mb)
{
	return mb->priv;
}

static int
errno_class(int err)
{
	return err == EACCES || err == EPERM || err == ELOOP || err == ENOTDIR || err == EROFS
		       ? MPOP_ERROR_PERM
		       : MPOP_ERROR_TEMP;
}

static gboolean
fail_errno(GError **error, int err, const char *what)
{
	g_set_error(error, MPOP_ERROR, errno_class(err), "%s: %s", what,
		    err == ELOOP ? "it is a symbolic link" : g_strerror(err));
	return FALSE;
}

static gboolean
fail_changed(GError **error)
{
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED,
		    "mailbox was rewritten by another program");
	return FALSE;
}

/* Bookkeeping headers of other programs are not shown unless show_headers names them. */
static void
setup_stuff(MpopMailbox *mb, MboxPriv *p)
{
	guint n = 0;

	for (const char *const *h = mpop_config_hidden_headers; *h != NULL; h++) {
		gboolean shown = FALSE;
		for (char **s = mb->cfg->show_headers; s != NULL && *s != NULL; s++)
			shown |= g_ascii_strcasecmp(*s, *h) == 0;
		if (!shown)
			p->hide[n++] = *h;
	}
	p->hide[n] = NULL;
	mb->stuff_opts.unquote_from = mb->cfg->from_quoting == MPOP_FROM_MBOXRD;
	mb->stuff_opts.hide_headers = n > 0 ? p->hide : NULL;
}

/* Open and lock the mailbox, making sure the locked fd is still the file at the path (an
 * UPDATE of another session may have renamed a new one over it while we waited). Returns
 * the fd, -ENOENT when there is no mailbox, or -1 with error set. */
static int
open_locked(MpopMailbox *mb, MpopLock **out_lock, GError **error)
{
	const MpopConfig *cfg = mb->cfg;
	MpopLockOpts lo = {cfg->mbox_locks, cfg->lock_retries, cfg->lock_wait_ms,
			   cfg->lock_stale_age};

	for (int tries = 0; tries < 5; tries++) {
		/* O_NOFOLLOW: in a 1777 spool a symlink may have been planted by anyone. */
		mpop_autofd fd = open(mb->path, O_RDWR | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
		struct stat sb, now;
		MpopLock *lk;

		if (fd < 0 && errno == ENOENT)
			return -ENOENT;
		if (fd < 0)
			return fail_errno(error, errno, "cannot open mailbox"), -1;
		if (fstat(fd, &sb) < 0)
			return fail_errno(error, errno, "cannot stat mailbox"), -1;
		if (!S_ISREG(sb.st_mode))
			return fail_errno(error, EPERM, "mailbox is not a regular file"), -1;
		if (sb.st_uid != geteuid() && geteuid() != 0)
			return fail_errno(error, EPERM, "mailbox is not owned by the user"), -1;
		lk = mpop_lock_acquire(mb->path, fd, &lo, error);
		if (lk == NULL)
			return -1;
		if (lstat(mb->path, &now) == 0 && now.st_ino == sb.st_ino &&
		    now.st_dev == sb.st_dev) {
			*out_lock = lk;
			return g_steal_fd(&fd);
		}
		mpop_lock_release(lk);
	}
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP, "mailbox keeps being replaced");
	return -1;
}

/* ---- the index: from the persisted one where the file confirms it, else by a scan ---- */

/* Settings that change boundaries, sizes or UIDLs: an index made under others is not used. */
static guint32
rules_hash(MpopMailbox *mb, MboxPriv *p)
{
	const MpopConfig *cfg = mb->cfg;
	g_autoptr(GString) s = g_string_new("1\n");

	g_string_append_printf(s, "%s\n%s\n%d\n", cfg->message_start ? cfg->message_start : "",
			       cfg->message_end ? cfg->message_end : "", (int)cfg->from_quoting);
	for (char **u = cfg->uidl_source; u != NULL && *u != NULL; u++)
		g_string_append_printf(s, "u:%s\n", *u);
	for (const char **h = p->hide; *h != NULL; h++)
		g_string_append_printf(s, "h:%s\n", *h);
	return mpop_mbox_hash(MPOP_MBOX_HASH_INIT, s->str, s->len);
}

/* Index [from, size) of the locked file (from 0: all of it) into ix. */
static gboolean
scan(MpopMailbox *mb, MboxPriv *p, guint64 size, guint64 from, guint64 prev_end, guint64 first_from,
     MpopMboxIndex *ix, GError **error)
{
	const MpopMboxIndexOpts o = {.parser = p->parser,
				     .stuff = &mb->stuff_opts,
				     .uidl_sources = (const char *const *)mb->cfg->uidl_source,
				     .from = from,
				     .prev_end = prev_end,
				     .first_from = first_from};
	gboolean ok;
	char *map;

	if (size > (guint64)SIZE_MAX)
		return fail_errno(error, EFBIG, "cannot index mailbox");
	if (size == 0) {
		memset(ix, 0, sizeof(*ix));
		ix->tail_hash = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, "", 0);
		return TRUE;
	}
	map = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, p->fd, 0);
	if (map == MAP_FAILED)
		return fail_errno(error, errno, "cannot map mailbox");
	/* No MADV_SEQUENTIAL: it maps read-ahead pages into the process (they count as its
	 * memory until dropped); plain read-ahead still fills the page cache. */
	ok = mpop_mbox_index(&o, map, (size_t)size, mb->strings, ix, error);
	munmap(map, (size_t)size);
	return ok;
}

/* What was appended after the index st, from its last message on (appended bytes may extend
 * that one). ix is left empty when that message is not where the index says. */
static gboolean
scan_appended(MpopMailbox *mb, MboxPriv *p, const struct stat *sb, const MpopMboxStore *st,
	      MpopMboxIndex *ix, GError **error)
{
	guint last = st->n_msgs - 1;
	const MpopMessage *m = &st->msgs[last];
	guint64 prev =
		last > 0 ? st->msgs[last - 1].offset + st->msgs[last - 1].length : st->first_from;

	if (!scan(mb, p, (guint64)sb->st_size, m->offset - m->from_len, prev, st->first_from, ix,
		  error))
		return FALSE;
	if (ix->n_msgs == 0 || ix->msgs[0].offset != m->offset ||
	    ix->span_hash[0] != st->span_hash[last])
		mpop_mbox_index_clear(ix);
	return TRUE;
}

/* The table: msgs[0, keep) of the index st, then the scanned ones; arrays that are whole are
 * taken over rather than copied (a table of 50 000 messages is 2 MB). */
static void
take_tables(MpopMailbox *mb, MboxPriv *p, MpopMboxStore *st, guint keep, MpopMboxIndex *ix)
{
	guint n = keep + ix->n_msgs;

	mb->n_msgs = n;
	p->tail_hash = ix->tail_hash;
	if (keep == 0) {
		mb->msgs = g_steal_pointer(&ix->msgs);
		p->span_hash = g_steal_pointer(&ix->span_hash);
		p->fp = g_steal_pointer(&ix->fingerprint);
		return;
	}
	if (ix->n_msgs == 0 && keep == st->n_msgs) {
		mb->msgs = g_steal_pointer(&st->msgs);
		p->span_hash = g_steal_pointer(&st->span_hash);
		p->fp = g_steal_pointer(&st->fingerprint);
		return;
	}
	mb->msgs = g_new(MpopMessage, n);
	p->span_hash = g_new(guint32, n);
	p->fp = g_new(guint64, n);
	memcpy(mb->msgs, st->msgs, keep * sizeof(*mb->msgs));
	memcpy(p->span_hash, st->span_hash, keep * sizeof(guint32));
	memcpy(p->fp, st->fingerprint, keep * sizeof(guint64));
	memcpy(mb->msgs + keep, ix->msgs, ix->n_msgs * sizeof(*mb->msgs));
	memcpy(p->span_hash + keep, ix->span_hash, ix->n_msgs * sizeof(guint32));
	memcpy(p->fp + keep, ix->fingerprint, ix->n_msgs * sizeof(guint64));
}

/* Write the tables in st (the indexed part of fd: size, messages, boundary hashes) with what
 * this session remembers of UIDLs to the persisted index. It is an optimisation and a
 * memory of UIDLs, so a failure is logged and the session goes on. */
static void
store_write(MpopMailbox *mb, MboxPriv *p, MpopMboxStore *st, int fd, gboolean durable)
{
	gboolean group;
	int rc;

	st->rules = p->rules;
	st->first_from = p->first_from;
	st->counter = p->counter;
	st->n_retired = p->retired->len;
	st->retired = (guint64 *)(void *)p->retired->data;
	rc = mpop_mbox_store_describe(st, fd);
	if (rc == 0) {
		group = mpop_privsep_mail_group_enter(mb->path);
		rc = mpop_mbox_store_save(p->store_path, st, durable);
		mpop_privsep_mail_group_leave(group);
	}
	if (rc < 0)
		mpop_log_debug("mbox index not written: %s", g_strerror(-rc));
}

/* A boundary check failed: the index described another file; the next login scans. */
static void
store_forget(MboxPriv *p)
{
	if (p->store_path != NULL && unlink(p->store_path) < 0 && errno != ENOENT)
		mpop_log_debug("mbox index not removed: %s", g_strerror(errno));
}

static gboolean
mbox_index(MpopMailbox *mb, MboxPriv *p, GError **error)
{
	MpopMboxStore st = {0};
	MpopMboxStoreUse use = MPOP_MBOX_STORE_FULL;
	MpopMboxIndex ix = {0};
	const char *why = "disabled";
	gboolean have = FALSE;
	guint keep = 0;
	struct stat sb;

	if (fstat(p->fd, &sb) < 0)
		return fail_errno(error, errno, "cannot stat mailbox");
	p->dev = sb.st_dev;
	p->ino = sb.st_ino;
	p->indexed_end = (guint64)sb.st_size;
	p->retired = g_array_new(FALSE, FALSE, sizeof(guint64));
	if (p->store_path != NULL && mpop_mbox_store_load(p->store_path, mb->strings, &st, &why)) {
		have = st.rules == p->rules || (why = "made with other settings", FALSE);
		if (!have)
			mpop_mbox_store_clear(&st);
	}
	if (have) {
		g_array_append_vals(p->retired, st.retired, st.n_retired);
		p->counter = st.counter;
		use = mpop_mbox_store_check(p->fd, &sb, &st, &why);
	}
	if (use == MPOP_MBOX_STORE_REUSE) {
		keep = st.n_msgs;
		p->first_from = st.first_from;
		ix.tail_hash = st.tail_hash;
		take_tables(mb, p, &st, keep, &ix);
	} else {
		if (use == MPOP_MBOX_STORE_APPEND && !scan_appended(mb, p, &sb, &st, &ix, error)) {
			mpop_mbox_store_clear(&st);
			return FALSE;
		}
		if (use == MPOP_MBOX_STORE_APPEND && ix.n_msgs == 0) {
			use = MPOP_MBOX_STORE_FULL;
			why = "rewritten";
		}
		keep = use == MPOP_MBOX_STORE_APPEND ? st.n_msgs - 1 : 0;
		if (use == MPOP_MBOX_STORE_FULL &&
		    !scan(mb, p, (guint64)sb.st_size, 0, 0, 0, &ix, error)) {
			mpop_mbox_store_clear(&st);
			return FALSE;
		}
		p->first_from = use == MPOP_MBOX_STORE_APPEND ? st.first_from : ix.first_from;
		take_tables(mb, p, &st, keep, &ix);
		if (have) {
			mpop_mbox_assign_uidls(mb->msgs, mb->n_msgs, keep, p->fp, &st, keep,
					       p->retired, &p->counter, mb->strings);
		} else {
			/* No memory of earlier sessions: the UIDLs a plain scan gives, and fresh
			 * suffixes from above any that numbering can have used. */
			mpop_uidl_make_unique_hashed(mb, ix.uidl_hash);
			p->counter = (guint64)mb->n_msgs + 2;
		}
	}
	mpop_log_debug(
		"mbox indexed: %u messages, %" G_GUINT64_FORMAT " bytes, %u from the index (%s)",
		mb->n_msgs, (guint64)sb.st_size, use == MPOP_MBOX_STORE_FULL ? 0 : keep, why);
	if (use != MPOP_MBOX_STORE_REUSE && p->store_path != NULL) {
		MpopMboxStore now = {.size = p->indexed_end,
				     .tail_hash = p->tail_hash,
				     .n_msgs = mb->n_msgs,
				     .msgs = mb->msgs,
				     .span_hash = p->span_hash,
				     .fingerprint = p->fp};
		store_write(mb, p, &now, p->fd, FALSE);
	}
	mpop_mbox_index_clear(&ix);
	mpop_mbox_store_clear(&st);
	return TRUE;
}

/* The file at the path is still the one indexed, and no shorter. */
static gboolean
verify_file(MpopMailbox *mb, MboxPriv *p, int fd, GError **error)
{
	struct stat sb, now;

	if (fstat(fd, &sb) < 0)
		return fail_errno(error, errno, "cannot stat mailbox");
	if (lstat(mb->path, &now) < 0 || now.st_ino != p->ino || now.st_dev != p->dev ||
	    sb.st_ino != p->ino || (guint64)sb.st_size < p->indexed_end)
		return fail_changed(error);
	return TRUE;
}

static guint64
span_start(MpopMailbox *mb, MboxPriv *p, guint i)
{
	return i == 0 ? p->first_from : mb->msgs[i - 1].offset + mb->msgs[i - 1].length;
}

static guint64
span_stop(MpopMailbox *mb, MboxPriv *p, guint i)
{
	return i < mb->n_msgs ? mb->msgs[i].offset : p->indexed_end;
}

static guint32
span_want(MpopMailbox *mb, MboxPriv *p, guint i)
{
	return i < mb->n_msgs ? p->span_hash[i] : p->tail_hash;
}

/* Separator + From line before message i (i == n_msgs: what follows the last one). */
static gboolean
verify_span(MpopMailbox *mb, MboxPriv *p, int fd, guint i, GError **error)
{
	guint64 start = span_start(mb, p, i), stop = span_stop(mb, p, i);
	guint32 want = span_want(mb, p, i), h = 0;
	int rc = mpop_mbox_hash_fd(fd, start, stop - start, &h);

	if (rc < 0 && rc != -ESPIPE)
		return fail_errno(error, -rc, "cannot read mailbox");
	if (rc < 0 || h != want)
		return fail_changed(error);
	return TRUE;
}

/* Most messages are small: one pread() of the From line, the message and the next
 * boundary verifies both boundaries and serves the whole RETR. FALSE: not done (too big, or
 * a short read), fall back to verifying with separate reads. */
static gboolean
begin_cached(MpopMailbox *mb, MboxPriv *p, guint idx, GError **error)
{
	guint64 start = span_start(mb, p, idx), stop = span_stop(mb, p, idx + 1);
	guint64 mid = span_start(mb, p, idx + 1), off = mb->msgs[idx].offset;
	ssize_t n;

	if (stop - start > CACHE_MAX)
		return FALSE;
	if (p->cache == NULL)
		p->cache = g_malloc(CACHE_MAX);
	do
		n = pread(p->fd, p->cache, (size_t)(stop - start), (off_t)start);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)(stop - start))
		return FALSE;
	if (mpop_mbox_hash(MPOP_MBOX_HASH_INIT, p->cache, off - start) != span_want(mb, p, idx) ||
	    mpop_mbox_hash(MPOP_MBOX_HASH_INIT, p->cache + (mid - start), stop - mid) !=
		    span_want(mb, p, idx + 1))
		return FALSE; /* the slow path reports it */
	p->cached = TRUE;
	p->cache_skip = (size_t)(off - start);
	return TRUE;
}

/* A size taken from the persisted index is believed for LIST and STAT; RETR counts what it
 * sends (mpop_mailbox_stream(): a message never ends as complete with other octets than
 * LIST said). When the count differs the index is wrong: the next session scans the file. */
static void
mbox_size_wrong(MpopMailbox *mb, guint idx, guint64 sent)
{
	(void)idx;
	(void)sent;
	store_forget(priv_of(mb));
}

static gboolean
mbox_msg_begin(MpopMailbox *mb, guint idx, GError **error)
{
	MboxPriv *p = priv_of(mb);

	if (idx >= mb->n_msgs) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "no such message");
		return FALSE;
	}
	p->cur = idx;
	p->cur_pos = 0;
	p->cached = FALSE;
	/* The spool copy is private; the mailbox itself may have been rewritten. */
	if (mb->cfg->mbox_mode != MPOP_MBOX_SPOOL &&
	    (!verify_file(mb, p, p->fd, error) ||
	     (!begin_cached(mb, p, idx, error) && (!verify_span(mb, p, p->fd, idx, error) ||
						   !verify_span(mb, p, p->fd, idx + 1, error))))) {
		store_forget(p);
		return FALSE;
	}
	mpop_lock_touch(p->lock);
	return TRUE;
}

static gssize
mbox_msg_read(MpopMailbox *mb, char *buf, gsize len, GError **error)
{
	MboxPriv *p = priv_of(mb);
	const MpopMessage *m = &mb->msgs[p->cur];
	guint64 left = m->length - p->cur_pos;
	ssize_t n;

	if (left == 0 || len == 0)
		return 0;
	if (p->cached) {
		n = (ssize_t)MIN(left, len);
		memcpy(buf, p->cache + p->cache_skip + p->cur_pos, (size_t)n);
		p->cur_pos += (guint64)n;
		return n;
	}
	do
		n = pread(p->fd, buf, (size_t)MIN(left, len), (off_t)(m->offset + p->cur_pos));
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		fail_errno(error, errno, "cannot read mailbox");
		return -1;
	}
	if (n == 0) {
		fail_changed(error); /* truncated under us */
		return -1;
	}
	p->cur_pos += (guint64)n;
	return n;
}

static void
mbox_msg_end(MpopMailbox *mb)
{
	priv_of(mb)->cur_pos = 0;
}

static int
copy_slow(int in, guint64 off, guint64 n, int out)
{
	g_autofree char *buf = g_malloc(COPY_CHUNK);

	while (n > 0) {
		ssize_t r = pread(in, buf, (size_t)MIN(n, COPY_CHUNK), (off_t)off);
		int rc;
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ESPIPE;
		rc = mpop_write_all(out, buf, (size_t)r);
		if (rc < 0)
			return rc;
		off += (guint64)r;
		n -= (guint64)r;
	}
	return 0;
}

/* Append n bytes at off of in to out, in the kernel where it can. Returns 0 or -errno. */
static int
copy_range(int in, guint64 off, guint64 n, int out)
{
	loff_t o = (loff_t)off;

	while (n > 0) {
		ssize_t r = copy_file_range(in, &o, out, NULL, (size_t)MIN(n, 1u << 30), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL ||
			      errno == EOPNOTSUPP || errno == EBADF))
			return copy_slow(in, (guint64)o, n, out);
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ESPIPE;
		n -= (guint64)r;
	}
	return 0;
}

/* The prefix, every kept message with its From line and separator, then all appended. */
static int
copy_kept(MpopMailbox *mb, MboxPriv *p, int in, guint64 size_now, int out)
{
	guint64 run_start = 0, run_end = p->first_from;

	for (guint i = 0; i < mb->n_msgs; i++) {
		guint64 end = i + 1 < mb->n_msgs ? mb->msgs[i + 1].offset - mb->msgs[i + 1].from_len
						 : p->indexed_end;
		if (!mb->msgs[i].deleted) {
			run_end = end;
			continue;
		}
		if (run_end > run_start) {
			int rc = copy_range(in, run_start, run_end - run_start, out);
			if (rc < 0)
				return rc;
		}
		run_start = run_end = end;
	}
	return copy_range(in, run_start, size_now - run_start, out);
}

static int
keep_owner(int out, const struct stat *sb)
{
	struct stat now;

	if (fstat(out, &now) < 0)
		return -errno;
	/* Usually nothing to change: the new file has the session's group, or the spool's
	 * (setgid directory). Otherwise this works as the owner when the session has the
	 * mailbox's group (its own, or mail taken on for a root:mail spool). */
	if ((now.st_uid != sb->st_uid || now.st_gid != sb->st_gid) &&
	    fchown(out, sb->st_uid, sb->st_gid) < 0)
		return -errno;
	return fchmod(out, sb->st_mode & 0777) < 0 ? -errno : 0;
}

static void
fsync_dir(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);
	mpop_autofd fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0)
		(void)fsync(fd);
}

static gboolean
fail_write(GError **error, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP,
			    "mailbox not updated, nothing deleted: %s", g_strerror(err));
	else
		fail_errno(error, err, "mailbox not updated, nothing deleted");
	return FALSE;
}

/* A session killed during UPDATE leaves its temporary file (never the mailbox) behind. Under
 * the mailbox locks no other UPDATE of this mailbox is running, so every such file of ours
 * is debris and is removed. */
static void
remove_debris(const char *path)
{
	g_autofree char *dir = g_path_get_dirname(path);
	g_autofree char *base = g_path_get_basename(path);
	g_autofree char *prefix = g_strconcat(base, ".mpopd-", NULL);
	g_autofree char *index_prefix = g_strconcat(".", base, ".mpopd-index.", NULL);
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *n;

	/* The persisted index's temporaries (mbox-store.c) are debris of the same kind. */
	while (d != NULL && (n = g_dir_read_name(d)) != NULL) {
		g_autofree char *p = NULL;
		struct stat sb;
		if (!(g_str_has_prefix(n, prefix) && strlen(n) == strlen(prefix) + 16) &&
		    !(g_str_has_prefix(n, index_prefix) && strlen(n) == strlen(index_prefix) + 16))
			continue;
		p = g_build_filename(dir, n, NULL);
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid())
			(void)unlink(p);
	}
	if (d != NULL)
		g_dir_close(d);
}

/* The index of the file UPDATE wrote (fd, read-only): the kept messages moved up by what was
 * removed before them, the UIDLs of the deleted ones retired. Boundaries after a removed
 * run are hashed again from the new file; the bytes appended since login follow the
 * indexed part and are scanned at the next login. */
static void
store_after_update(MpopMailbox *mb, MboxPriv *p, int fd)
{
	guint n = mb->n_msgs - mpop_mailbox_deleted_count(mb, NULL), k = 0;
	g_autofree MpopMessage *msgs = g_new(MpopMessage, MAX(n, 1));
	g_autofree guint32 *span = g_new(guint32, MAX(n, 1));
	g_autofree guint64 *fp = g_new(guint64, MAX(n, 1));
	guint64 removed = 0, prev_end = p->first_from;
	gboolean moved = FALSE;
	MpopMboxStore st = {0};

	for (guint i = 0; i < mb->n_msgs; i++) {
		const MpopMessage *m = &mb->msgs[i];
		guint64 start = m->offset - m->from_len;
		guint64 end = i + 1 < mb->n_msgs ? mb->msgs[i + 1].offset - mb->msgs[i + 1].from_len
						 : p->indexed_end;
		if (m->deleted) {
			guint64 key = mpop_mbox_uidl_key(m->uidl);
			g_array_append_val(p->retired, key);
			removed += end - start;
			moved = TRUE;
			continue;
		}
		msgs[k] = *m;
		msgs[k].offset -= removed;
		span[k] = p->span_hash[i];
		fp[k] = p->fp[i];
		if (moved &&
		    mpop_mbox_hash_fd(fd, prev_end, msgs[k].offset - prev_end, &span[k]) < 0)
			return;
		moved = FALSE;
		prev_end = msgs[k].offset + msgs[k].length;
		k++;
	}
	if (p->retired->len > MPOP_MBOX_RETIRED_MAX)
		g_array_remove_range(p->retired, 0, p->retired->len - MPOP_MBOX_RETIRED_MAX);
	st.size = p->indexed_end - removed;
	if (mpop_mbox_hash_fd(fd, prev_end, st.size - prev_end, &st.tail_hash) < 0)
		return;
	st.n_msgs = n;
	st.msgs = msgs;
	st.span_hash = span;
	st.fingerprint = fp;
	store_write(mb, p, &st, fd, TRUE);
}

/* Write the new mailbox next to the old one and rename it over (see the top comment). */
static gboolean
rewrite(MpopMailbox *mb, MboxPriv *p, int fd, const struct stat *sb, GError **error)
{
	g_autofree char *tmp =
		g_strdup_printf("%s.mpopd-%08x%08x", mb->path, g_random_int(), g_random_int());
	mpop_autofd out = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	mpop_autofd now = -1;
	struct stat made, found;
	int rc;

	if (out < 0)
		return fail_write(error, errno);
	rc = copy_kept(mb, p, fd, (guint64)sb->st_size, out);
	if (rc == 0)
		rc = keep_owner(out, sb);
	if (rc == 0 && fsync(out) < 0)
		rc = -errno;
	if (rc == 0 && fstat(out, &made) < 0)
		rc = -errno;
	if (rc == 0) {
		rc = close(out) < 0 ? -errno : 0; /* NFS reports quota errors here */
		out = -1;
	}
	if (rc == 0 && rename(tmp, mb->path) < 0)
		rc = -errno;
	if (rc < 0) {
		(void)unlink(tmp);
		return fail_write(error, -rc);
	}
	/* Under the locks nobody replaces it: the file just renamed, read for its index. */
	if (p->store_path != NULL) {
		now = open(mb->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (now >= 0 && fstat(now, &found) == 0 && found.st_ino == made.st_ino &&
		    found.st_dev == made.st_dev)
			store_after_update(mb, p, now);
		else
			store_forget(p);
	}
	fsync_dir(mb->path);
	return TRUE;
}

static gboolean
mbox_commit(MpopMailbox *mb, GError **error)
{
	MboxPriv *p = priv_of(mb);
	g_autoptr(MpopLock) lk = NULL;
	mpop_autofd own = -1;
	struct stat sb;
	gboolean group, ok;
	int fd = p->fd;

	if (p->lock == NULL) {
		own = open_locked(mb, &lk, error);
		if (own == -ENOENT)
			return fail_changed(error);
		if (own < 0)
			return FALSE;
		fd = own;
	}
	if (!verify_file(mb, p, fd, error)) {
		store_forget(p);
		return FALSE;
	}
	for (guint i = 0; i <= mb->n_msgs; i++)
		if (!verify_span(mb, p, fd, i, error)) {
			store_forget(p);
			return FALSE;
		}
	if (fstat(fd, &sb) < 0)
		return fail_errno(error, errno, "cannot stat mailbox");
	/* Creating the new file and renaming it in a root:mail 2775 spool needs group mail
	 * (mail_privileged_group), taken on for this step only; not in a directory the user
	 * may write (a home directory), where the new file keeps the user's own group. */
	group = mpop_privsep_mail_group_enter(mb->path);
	remove_debris(mb->path);
	ok = rewrite(mb, p, fd, &sb, error);
	mpop_privsep_mail_group_leave(group);
	return ok;
}

/* spool mode: a private, nameless copy of the indexed part, read for the whole session. */
static int
spool_copy(MpopMailbox *mb, MboxPriv *p, GError **error)
{
	g_autofree char *dir = mpop_pattern_expand(mb->cfg->spool_dir, mb->user, NULL, NULL, error);
	mpop_autofd fd = -1;
	int rc;

	if (dir == NULL)
		return -1;
	/* A per-user pattern is created on demand; a shared spool (1733/1777, from the package)
	 * must exist. */
	if (strchr(mb->cfg->spool_dir, '%') != NULL && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail_errno(error, errno, "cannot create spool directory"), -1;
	/* O_TMPFILE: no name at all, so nothing to guess, race or leave behind. */
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		g_autofree char *name = g_strdup_printf("%s/.mpopd-spool-%08x%08x", dir,
							g_random_int(), g_random_int());
		fd = open(name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			(void)unlink(name);
	}
	if (fd < 0)
		return fail_errno(error, errno, "cannot create spool file"), -1;
	rc = copy_range(p->fd, 0, p->indexed_end, fd);
	if (rc < 0)
		return fail_write(error, -rc), -1;
	return g_steal_fd(&fd);
}

/* RFC 1939 §8: one POP3 session per maildrop. In snapshot and spool modes the delivery
 * agents' locks are released after indexing, so the session holds flock() on its own open
 * file description of the mbox: procmail, Postfix and Exim lock with dotlock and fcntl on
 * Debian, which flock() does not conflict with, so deliveries never wait for it. Not used
 * when mbox_locks names flock (delivery agents would then wait for the whole session). */
static gboolean
session_exclusive(MpopMailbox *mb, MboxPriv *p, GError **error)
{
	if (mb->cfg->mbox_mode == MPOP_MBOX_SESSION_LOCK || (mb->cfg->mbox_locks & MPOP_LOCK_FLOCK))
		return TRUE;
	p->session_fd = dup(p->fd);
	if (p->session_fd < 0)
		return fail_errno(error, errno, "cannot lock the maildrop for this session");
	if (flock(p->session_fd, LOCK_EX | LOCK_NB) == 0)
		return TRUE;
	if (errno == EWOULDBLOCK) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_IN_USE,
			    "maildrop is in use by another POP3 session");
		return FALSE;
	}
	return fail_errno(error, errno, "cannot lock the maildrop for this session");
}

static gboolean
mbox_open(MpopMailbox *mb, GError **error)
{
	MboxPriv *p = g_new0(MboxPriv, 1);
	g_autoptr(MpopLock) lk = NULL;
	GError *local = NULL;
	int fd;

	mb->priv = p;
	p->fd = -1;
	p->session_fd = -1;
	setup_stuff(mb, p);
	p->parser = mpop_mbox_parser_new(mb->cfg->message_start, mb->cfg->message_end, &local);
	if (p->parser == NULL) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM, "bad message_start/message_end: %s",
			    local->message);
		g_error_free(local);
		return FALSE;
	}
	if (mb->cfg->mbox_index) {
		p->store_path = mpop_mbox_store_path(mb->path);
		p->rules = rules_hash(mb, p);
	}
	fd = open_locked(mb, &lk, error);
	if (fd == -ENOENT)
		return TRUE; /* nothing delivered yet: an empty maildrop */
	if (fd < 0)
		return FALSE;
	p->fd = fd;
	if (!session_exclusive(mb, p, error))
		return FALSE;
	if (!mbox_index(mb, p, error))
		return FALSE;
	switch (mb->cfg->mbox_mode) {
	case MPOP_MBOX_SESSION_LOCK:
		p->lock = g_steal_pointer(&lk);
		break;
	case MPOP_MBOX_SPOOL:
		fd = spool_copy(mb, p, error);
		if (fd < 0)
			return FALSE;
		g_clear_pointer(&lk, mpop_lock_release);
		close(p->fd);
		p->fd = fd;
		break;
	case MPOP_MBOX_SNAPSHOT:
		break;
	}
	return TRUE;
}

static void
mbox_close(MpopMailbox *mb)
{
	MboxPriv *p = priv_of(mb);

	if (p == NULL)
		return;
	mpop_lock_release(p->lock); /* before the fd its fcntl/flock locks are on */
	mpop_close_fdp(&p->fd);
	mpop_close_fdp(&p->session_fd); /* ends this session's claim on the maildrop */
	mpop_mbox_parser_free(p->parser);
	g_free(p->span_hash);
	g_free(p->fp);
	g_free(p->store_path);
	if (p->retired != NULL)
		g_array_unref(p->retired);
	g_free(p->cache);
	g_free(p);
	mb->priv = NULL;
	mb->stuff_opts.hide_headers = NULL;
}

const MpopMailboxOps mpop_mailbox_mbox_ops = {
	.name = "mbox",
	.open = mbox_open,
	.msg_begin = mbox_msg_begin,
	.msg_read = mbox_msg_read,
	.msg_end = mbox_msg_end,
	.size_wrong = mbox_size_wrong,
	.commit = mbox_commit,
	.close = mbox_close,
};
