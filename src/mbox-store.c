/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The persisted mbox index: message boundaries, sizes and UIDLs kept between sessions, and the
 * UIDL assignment that makes mbox UIDLs persistent and never reused (RFC 1939 §7). */
#include "mailbox-mbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Where it lives: ".NAME.mpopd-index" in the mbox's own directory (/var/mail/.alice.mpopd-index
 * for /var/mail/alice, ~/.mbox.mpopd-index for ~/mbox). Not in a state directory: a session
 * runs as the mailbox owner, and the mbox's directory is the one place it can already write
 * (with the mail group in a root:mail 2775 spool, as for the dotlock and UPDATE's rename);
 * hosts sharing the spool over NFS share the index too, so every host hands out the same
 * UIDLs. No login can be called ".NAME" (a leading dot is refused), so it never names a mailbox.
 *
 * Format (integers little-endian): a 112-byte header {"mpopdidx", version 1, a hash of the
 * settings the index depends on, the mbox's dev, ino, indexed size, mtime and ctime in ns,
 * when they were read, hashes of the first and last 4 KiB of the indexed part, the text
 * before the first message, the hash of what follows the last message, the UIDL counter,
 * the message and retired counts}, per message {offset u64, length u32, From line length
 * u32, size u64, fingerprint u64, boundary hash u32, UIDL length u8, UIDL}, the retired UIDL
 * hashes (u64 each), and a 64-bit checksum of all that.
 *
 * Trust: the file is read only if it is ours (O_NOFOLLOW, owned by the session's user, mode
 * 0600, one link, bounded) and parses completely (mpop_mbox_store_parse checks every bound);
 * anything else is treated as absent and replaced at the end of the open. It is then used
 * only as far as the mbox confirms it (mailbox-mbox.c): the same dev and ino, and the first
 * and last 4 KiB of the indexed part unchanged; the same size, mtime and ctime to reuse it
 * whole, a larger size to index only what follows the last message (which is indexed again,
 * as appended bytes may extend it); when the times were read in the same clock tick as a
 * change could have been made, every boundary is checked too. Anything else (rewritten,
 * truncated, another inode, other settings) is a full scan. The checks before every read and
 * at UPDATE stay; a failed one removes the index.
 *
 * UIDLs: a message's UIDL comes from its content as before (the Perl mpopd's X-UIDL, the
 * Message-ID, a digest) unless that one is taken: by another message, or by one that left
 * the mailbox (the "retired" hashes, the newest 65 536) — then it gets "-N" with N from a
 * per-mailbox counter that never goes down. Once given, a UIDL stays with its message: the
 * index carries it over appends and our own UPDATEs, and after a rewrite by another program
 * a message takes back the UIDL of the old entry with the same fingerprint (From line, size,
 * UIDL from content). Without an index (the first login, or one lost) UIDLs are those of a
 * plain scan, duplicates numbered "-2", "-3" in file order: the ids earlier versions gave.
 */

#define MAGIC "mpopdidx"
#define VERSION 1
#define HEADER_LEN 112
#define RECORD_FIXED 37
#define MSGS_MAX (1u << 20)
#define CHECKSUM_SEED MPOP_MBOX_STORE_SEED

/* ---- little-endian fields ---- */

static guint64
get_le(const guint8 *p, guint n)
{
	guint64 v = 0;

	for (guint i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void
put_le(GByteArray *b, guint64 v, guint n)
{
	guint8 tmp[8];

	for (guint i = 0; i < n; i++, v >>= 8)
		tmp[i] = (guint8)v;
	g_byte_array_append(b, tmp, n);
}

char *
mpop_mbox_store_path(const char *mbox_path)
{
	g_autofree char *dir = g_path_get_dirname(mbox_path);
	g_autofree char *base = g_path_get_basename(mbox_path);
	g_autofree char *name = g_strconcat(".", base, ".mpopd-index", NULL);

	return g_build_filename(dir, name, NULL);
}

guint64
mpop_mbox_uidl_key(const char *uidl)
{
	return mpop_mbox_hash64(CHECKSUM_SEED, uidl, strlen(uidl));
}

void
mpop_mbox_store_clear(MpopMboxStore *st)
{
	g_free(st->msgs);
	g_free(st->span_hash);
	g_free(st->fingerprint);
	g_free(st->retired);
	memset(st, 0, sizeof(*st));
}

GByteArray *
mpop_mbox_store_format(const MpopMboxStore *st)
{
	GByteArray *b = g_byte_array_sized_new(HEADER_LEN + st->n_msgs * 64 + st->n_retired * 8);

	g_byte_array_append(b, (const guint8 *)MAGIC, 8);
	put_le(b, VERSION, 4);
	put_le(b, st->rules, 4);
	put_le(b, st->dev, 8);
	put_le(b, st->ino, 8);
	put_le(b, st->size, 8);
	put_le(b, (guint64)st->mtime_ns, 8);
	put_le(b, (guint64)st->ctime_ns, 8);
	put_le(b, (guint64)st->stat_ns, 8);
	put_le(b, st->head_probe, 8);
	put_le(b, st->tail_probe, 8);
	put_le(b, st->first_from, 8);
	put_le(b, st->counter, 8);
	put_le(b, st->tail_hash, 4);
	put_le(b, st->n_msgs, 4);
	put_le(b, st->n_retired, 4);
	put_le(b, 0, 4);
	g_assert(b->len == HEADER_LEN);
	for (guint i = 0; i < st->n_msgs; i++) {
		const MpopMessage *m = &st->msgs[i];
		size_t ulen = strlen(m->uidl);

		put_le(b, m->offset, 8);
		put_le(b, m->length, 4);
		put_le(b, m->from_len, 4);
		put_le(b, m->size, 8);
		put_le(b, st->fingerprint[i], 8);
		put_le(b, st->span_hash[i], 4);
		put_le(b, ulen, 1);
		g_byte_array_append(b, (const guint8 *)m->uidl, (guint)ulen);
	}
	for (guint i = 0; i < st->n_retired; i++)
		put_le(b, st->retired[i], 8);
	put_le(b, mpop_mbox_hash64(CHECKSUM_SEED, b->data, b->len), 8);
	return b;
}

static gboolean
bad(const char **out_why, const char *why)
{
	*out_why = why;
	return FALSE;
}

/* The messages: in order, not overlapping, inside the indexed part; valid unique UIDLs. */
static gboolean
parse_messages(const guint8 *p, const guint8 *end, GStringChunk *strings, MpopMboxStore *st,
	       const guint8 **out_next, const char **out_why)
{
	g_autoptr(GHashTable) seen = g_hash_table_new(g_str_hash, g_str_equal);
	guint64 floor = st->first_from;

	for (guint i = 0; i < st->n_msgs; i++) {
		MpopMessage *m = &st->msgs[i];
		guint64 from_len, ulen;

		if ((size_t)(end - p) < RECORD_FIXED)
			return bad(out_why, "truncated");
		m->offset = get_le(p, 8);
		m->length = (guint32)get_le(p + 8, 4);
		from_len = get_le(p + 12, 4);
		m->size = get_le(p + 16, 8);
		st->fingerprint[i] = get_le(p + 24, 8);
		st->span_hash[i] = (guint32)get_le(p + 32, 4);
		ulen = p[36];
		p += RECORD_FIXED;
		/* The first message starts where the text before it ends; each From line after
		 * the previous content; LF -> CRLF at most doubles a message, plus a final CRLF. */
		if (from_len == 0 || from_len > (G_MAXUINT32 >> 1) || m->offset < from_len ||
		    m->offset - from_len < floor || (i == 0 && m->offset - from_len != floor) ||
		    m->offset > st->size || m->length > st->size - m->offset ||
		    m->size > 2 * (guint64)m->length + 2)
			return bad(out_why, "message out of bounds");
		m->from_len = (guint32)from_len;
		floor = m->offset + m->length;
		if ((size_t)(end - p) < ulen || !mpop_uidl_valid((const char *)p, ulen))
			return bad(out_why, "invalid UIDL");
		m->uidl = g_string_chunk_insert_len(strings, (const char *)p, (gssize)ulen);
		if (!g_hash_table_add(seen, m->uidl))
			return bad(out_why, "duplicate UIDL");
		p += ulen;
	}
	*out_next = p;
	return TRUE;
}

gboolean
mpop_mbox_store_parse(const char *data, size_t len, GStringChunk *strings, MpopMboxStore *out,
		      const char **out_why)
{
	const guint8 *p = (const guint8 *)data, *end;
	MpopMboxStore st = {0};

	if (len < HEADER_LEN + 8 || len > MPOP_MBOX_STORE_MAX)
		return bad(out_why, "bad size");
	if (memcmp(p, MAGIC, 8) != 0 || get_le(p + 8, 4) != VERSION || get_le(p + 108, 4) != 0)
		return bad(out_why, "not an index of this version");
	end = p + len - 8;
	if (get_le(end, 8) != mpop_mbox_hash64(CHECKSUM_SEED, p, len - 8))
		return bad(out_why, "bad checksum");
	st.rules = (guint32)get_le(p + 12, 4);
	st.dev = get_le(p + 16, 8);
	st.ino = get_le(p + 24, 8);
	st.size = get_le(p + 32, 8);
	st.mtime_ns = (gint64)get_le(p + 40, 8);
	st.ctime_ns = (gint64)get_le(p + 48, 8);
	st.stat_ns = (gint64)get_le(p + 56, 8);
	st.head_probe = get_le(p + 64, 8);
	st.tail_probe = get_le(p + 72, 8);
	st.first_from = get_le(p + 80, 8);
	st.counter = get_le(p + 88, 8);
	st.tail_hash = (guint32)get_le(p + 96, 4);
	st.n_msgs = (guint)get_le(p + 100, 4);
	st.n_retired = (guint)get_le(p + 104, 4);
	if (st.n_msgs > MSGS_MAX || st.n_retired > MPOP_MBOX_RETIRED_MAX ||
	    st.first_from > st.size || st.size > G_MAXINT64 || st.counter > G_MAXINT64 ||
	    (size_t)(end - p) < HEADER_LEN + (size_t)st.n_msgs * RECORD_FIXED + st.n_retired * 8)
		return bad(out_why, "bad counts");
	p += HEADER_LEN;
	st.msgs = g_new0(MpopMessage, MAX(st.n_msgs, 1));
	st.span_hash = g_new(guint32, MAX(st.n_msgs, 1));
	st.fingerprint = g_new(guint64, MAX(st.n_msgs, 1));
	st.retired = g_new(guint64, MAX(st.n_retired, 1));
	if (!parse_messages(p, end, strings, &st, &p, out_why)) {
		mpop_mbox_store_clear(&st);
		return FALSE;
	}
	if ((size_t)(end - p) != (size_t)st.n_retired * 8) {
		mpop_mbox_store_clear(&st);
		return bad(out_why, "bad length");
	}
	for (guint i = 0; i < st.n_retired; i++)
		st.retired[i] = get_le(p + 8 * i, 8);
	*out = st;
	return TRUE;
}

gboolean
mpop_mbox_store_load(const char *path, GStringChunk *strings, MpopMboxStore *out,
		     const char **out_why)
{
	/* O_NONBLOCK: a FIFO planted at the name must not hang the login. */
	mpop_autofd fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	g_autofree char *buf = NULL;
	struct stat sb;
	size_t have = 0;

	if (fd < 0)
		return bad(out_why, errno == ENOENT ? "absent" : "cannot be opened");
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode))
		return bad(out_why, "not a regular file");
	if (sb.st_uid != geteuid() || (sb.st_mode & 077) != 0 || sb.st_nlink != 1)
		return bad(out_why, "not private to the user");
	if (sb.st_size > MPOP_MBOX_STORE_MAX)
		return bad(out_why, "too large");
	buf = g_malloc((size_t)sb.st_size + 1);
	while (have < (size_t)sb.st_size + 1) {
		ssize_t n = read(fd, buf + have, (size_t)sb.st_size + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	if (have != (size_t)sb.st_size)
		return bad(out_why, "changed while read");
	return mpop_mbox_store_parse(buf, have, strings, out, out_why);
}

int
mpop_mbox_store_save(const char *path, const MpopMboxStore *st, gboolean durable)
{
	g_autofree char *tmp = g_strdup_printf("%s.%08x%08x", path, g_random_int(), g_random_int());
	g_autoptr(GByteArray) b = NULL;
	mpop_autofd fd = -1;
	int rc = 0;

	if (st->n_msgs > MSGS_MAX)
		return -EFBIG;
	b = mpop_mbox_store_format(st);
	if (b->len > MPOP_MBOX_STORE_MAX)
		return -EFBIG;
	fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = mpop_write_all(fd, b->data, b->len);
	if (rc == 0 && durable && fsync(fd) < 0)
		rc = -errno;
	if (rc == 0 && close(g_steal_fd(&fd)) < 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		(void)unlink(tmp);
	return rc;
}

/* ---- persistent UIDLs ---- */

/* Old entries by fingerprint, claimed in file order: head[fp] is the first unclaimed one,
 * next[k] the one after k with the same fingerprint. */
typedef struct {
	GHashTable *head; /* guint64 * -> guint + 1 */
	guint *next;
} Candidates;

static void
candidates_init(Candidates *c, const MpopMboxStore *old, guint first)
{
	guint n = old != NULL ? old->n_msgs : 0;

	c->head = g_hash_table_new(g_int64_hash, g_int64_equal);
	c->next = g_new(guint, MAX(n, 1));
	/* From the end, so that each head is the earliest entry. */
	for (guint k = n; k-- > first;) {
		gpointer prev = g_hash_table_lookup(c->head, &old->fingerprint[k]);
		c->next[k] = GPOINTER_TO_UINT(prev);
		g_hash_table_insert(c->head, &old->fingerprint[k], GUINT_TO_POINTER(k + 1));
	}
}

/* The first unclaimed old entry with fingerprint fp, claimed; or -1. */
static gint64
candidates_take(Candidates *c, const guint64 *fp)
{
	guint v = GPOINTER_TO_UINT(g_hash_table_lookup(c->head, fp));

	if (v == 0)
		return -1;
	if (c->next[v - 1] != 0)
		g_hash_table_insert(c->head, (gpointer)fp, GUINT_TO_POINTER(c->next[v - 1]));
	else
		g_hash_table_remove(c->head, fp);
	return (gint64)v - 1;
}

static void
retire(GArray *retired, const char *uidl)
{
	guint64 key = mpop_mbox_uidl_key(uidl);

	g_array_append_val(retired, key);
}

void
mpop_mbox_assign_uidls(MpopMessage *msgs, guint n, guint first_new, const guint64 *fp,
		       const MpopMboxStore *old, guint old_first, GArray *retired, guint64 *counter,
		       GStringChunk *strings)
{
	g_autoptr(GHashTable) used = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GHashTable) gone = g_hash_table_new(g_int64_hash, g_int64_equal);
	g_autofree gboolean *claimed = g_new0(gboolean, MAX(old != NULL ? old->n_msgs : 0, 1));
	g_autofree gboolean *kept = g_new0(gboolean, MAX(n, 1));
	Candidates c;

	candidates_init(&c, old, old_first);
	/* A message an old entry recognises keeps that entry's UIDL. */
	for (guint i = first_new; i < n; i++) {
		gint64 k = candidates_take(&c, &fp[i]);
		if (k < 0)
			continue;
		msgs[i].uidl = old->msgs[k].uidl;
		claimed[k] = kept[i] = TRUE;
	}
	g_hash_table_unref(c.head);
	g_free(c.next);
	for (guint i = 0; i < n; i++)
		if (i < first_new || kept[i])
			g_hash_table_add(used, msgs[i].uidl);
	/* Entries whose message is gone: their UIDLs are never handed out again. */
	for (guint k = old_first; old != NULL && k < old->n_msgs; k++)
		if (!claimed[k]) {
			g_hash_table_add(used, old->msgs[k].uidl);
			retire(retired, old->msgs[k].uidl);
		}
	if (retired->len > MPOP_MBOX_RETIRED_MAX)
		g_array_remove_range(retired, 0, retired->len - MPOP_MBOX_RETIRED_MAX);
	for (guint i = 0; i < retired->len; i++)
		g_hash_table_add(gone, &g_array_index(retired, guint64, i));
	for (guint i = first_new; i < n; i++) {
		const char *base = msgs[i].uidl;
		guint64 key = mpop_mbox_uidl_key(base);

		if (kept[i])
			continue;
		while (g_hash_table_contains(used, msgs[i].uidl) ||
		       g_hash_table_contains(gone, &key)) {
			g_autofree char *v = mpop_uidl_variant(base, (*counter)++);
			msgs[i].uidl = g_string_chunk_insert(strings, v);
			key = mpop_mbox_uidl_key(msgs[i].uidl);
		}
		g_hash_table_add(used, msgs[i].uidl);
	}
}

/* ---- checked against the mbox ---- */

#define VERIFY_CHUNK 4096

int
mpop_mbox_hash_fd(int fd, guint64 off, guint64 n, guint32 *out)
{
	char buf[VERIFY_CHUNK];
	guint32 h = MPOP_MBOX_HASH_INIT;
	size_t have = 0;

	/* Full VERIFY_CHUNK pieces whatever pread() returns: chunked hashing must continue
	 * exactly like one call (mpop_mbox_hash on multiples of 8 bytes). */
	G_STATIC_ASSERT(VERIFY_CHUNK % 8 == 0);
	while (n > 0) {
		ssize_t r = pread(fd, buf + have, (size_t)MIN(n, sizeof(buf) - have), (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ESPIPE;
		have += (size_t)r;
		off += (guint64)r;
		n -= (guint64)r;
		if (have == sizeof(buf) || n == 0) {
			h = mpop_mbox_hash(h, buf, have);
			have = 0;
		}
	}
	*out = h;
	return 0;
}

/* mpop_mbox_hash64 of n (<= MPOP_MBOX_PROBE) bytes at off. */
static int
probe(int fd, guint64 off, size_t n, guint64 *out)
{
	char buf[MPOP_MBOX_PROBE];
	size_t have = 0;

	while (have < n) {
		ssize_t r = pread(fd, buf + have, n - have, (off_t)(off + have));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ESPIPE;
		have += (size_t)r;
	}
	*out = mpop_mbox_hash64(CHECKSUM_SEED, buf, n);
	return 0;
}

static int
probes(int fd, guint64 size, guint64 *head, guint64 *tail)
{
	size_t n = (size_t)MIN(size, MPOP_MBOX_PROBE);
	int rc = probe(fd, 0, n, head);

	return rc < 0 ? rc : probe(fd, size - n, n, tail);
}

static gint64
ns_of(const struct timespec *ts)
{
	return (gint64)ts->tv_sec * G_GINT64_CONSTANT(1000000000) + ts->tv_nsec;
}

/* The clock file times are taken from (a tick old at most). */
static gint64
coarse_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ns_of(&ts);
}

int
mpop_mbox_store_describe(MpopMboxStore *st, int fd)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -errno;
	st->dev = (guint64)sb.st_dev;
	st->ino = (guint64)sb.st_ino;
	st->mtime_ns = ns_of(&sb.st_mtim);
	st->ctime_ns = ns_of(&sb.st_ctim);
	/* A change in the clock tick of the last one would leave ctime as it is: with the
	 * mailbox locks held, wait for the next tick (a few ms, after UPDATE and after a
	 * delivery just before the login); then any later change shows. A clock that does
	 * not get there (ctime from another host's clock) leaves the index "racy". */
	for (int i = 0; i < 50 && (st->stat_ns = coarse_now()) <= st->ctime_ns; i++)
		g_usleep(1000);
	return probes(fd, st->size, &st->head_probe, &st->tail_probe);
}

/* Every boundary (separator + From line) and what follows the last message. */
static gboolean
spans_match(int fd, const MpopMboxStore *st, gboolean with_tail)
{
	guint64 prev = st->first_from;
	guint32 h;

	for (guint i = 0; i < st->n_msgs; i++) {
		if (mpop_mbox_hash_fd(fd, prev, st->msgs[i].offset - prev, &h) < 0 ||
		    h != st->span_hash[i])
			return FALSE;
		prev = st->msgs[i].offset + st->msgs[i].length;
	}
	return !with_tail ||
	       (mpop_mbox_hash_fd(fd, prev, st->size - prev, &h) == 0 && h == st->tail_hash);
}

MpopMboxStoreUse
mpop_mbox_store_check(int fd, const struct stat *sb, const MpopMboxStore *st, const char **out_why)
{
	guint64 head = 0, tail = 0, size = (guint64)sb->st_size;
	gboolean same_times =
		ns_of(&sb->st_mtim) == st->mtime_ns && ns_of(&sb->st_ctim) == st->ctime_ns;

	if ((guint64)sb->st_dev != st->dev || (guint64)sb->st_ino != st->ino)
		return *out_why = "another file", MPOP_MBOX_STORE_FULL;
	if (size < st->size)
		return *out_why = "truncated", MPOP_MBOX_STORE_FULL;
	if (size == st->size && !same_times)
		return *out_why = "modified", MPOP_MBOX_STORE_FULL;
	if (size > st->size && st->n_msgs == 0)
		return *out_why = "no message indexed", MPOP_MBOX_STORE_FULL;
	if (probes(fd, st->size, &head, &tail) < 0 || head != st->head_probe ||
	    tail != st->tail_probe)
		return *out_why = "rewritten", MPOP_MBOX_STORE_FULL;
	/* The times were read in the clock tick of the last change, so a change in the same
	 * tick would not show in them: believe the boundaries only after reading them. */
	if (st->ctime_ns >= st->stat_ns && !spans_match(fd, st, size == st->size))
		return *out_why = "rewritten", MPOP_MBOX_STORE_FULL;
	*out_why = size == st->size ? "unchanged" : "appended";
	return size == st->size ? MPOP_MBOX_STORE_REUSE : MPOP_MBOX_STORE_APPEND;
}
