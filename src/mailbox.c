/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The backend-neutral message table, UIDL helpers and bounded RETR/TOP streaming. */
#include "mailbox.h"
#include "util.h"

#include <errno.h>
#include <string.h>

/* Streaming buffers: the converted output is collected in OUT_CAP bytes and written only
 * when the next raw chunk might not fit, so memory is fixed whatever the message size
 * and a small message leaves in one write (prefix + body + terminator). */
#define STREAM_OUT_CAP (128 * 1024)
#define STREAM_RAW_MAX (48 * 1024)
#define STREAM_RAW_MIN (4 * 1024)
#define STREAM_TAIL_MAX (MPOP_STUFF_OUT_MAX(0) + 3) /* finish() + ".\r\n" */

G_STATIC_ASSERT(MPOP_STUFF_OUT_MAX(STREAM_RAW_MAX) < STREAM_OUT_CAP);

const MpopMailboxOps *
mpop_mailbox_ops_for(MpopMailboxFormat format)
{
	switch (format) {
	case MPOP_FORMAT_MAILDIR:
		return &mpop_mailbox_maildir_ops;
	case MPOP_FORMAT_MBOX:
		return &mpop_mailbox_mbox_ops;
	}
	return NULL;
}

char *
mpop_mailbox_location(const MpopConfig *cfg, const char *user, const char *home,
		      const char *override, GError **error)
{
	const char *loc;

	g_return_val_if_fail(cfg != NULL, NULL);
	if (override != NULL)
		return g_strdup(override);
	loc = cfg->location;
	if (loc == NULL || *loc == '\0')
		loc = cfg->format == MPOP_FORMAT_MAILDIR ? "%h/Maildir" : "%s/%u";
	return mpop_pattern_expand(loc, user, home, cfg->mail_spool_dir, error);
}

MpopMailbox *
mpop_mailbox_open(const MpopMailboxOps *ops, const MpopConfig *cfg, const char *user,
		  const char *path, GError **error)
{
	MpopMailbox *mb;

	g_return_val_if_fail(ops != NULL && ops->open != NULL, NULL);
	g_return_val_if_fail(path != NULL, NULL);

	mb = g_new0(MpopMailbox, 1);
	mb->ops = ops;
	mb->cfg = cfg;
	mb->path = g_strdup(path);
	mb->user = g_strdup(user);
	mb->strings = g_string_chunk_new(16 * 1024);
	if (!ops->open(mb, error)) {
		mpop_mailbox_close(mb);
		return NULL;
	}
	return mb;
}

void
mpop_mailbox_stat(const MpopMailbox *mb, guint *out_count, guint64 *out_octets)
{
	guint count = 0;
	guint64 octets = 0;

	for (guint i = 0; i < mb->n_msgs; i++) {
		if (mb->msgs[i].deleted)
			continue;
		count++;
		octets += mb->msgs[i].size;
	}
	if (out_count != NULL)
		*out_count = count;
	if (out_octets != NULL)
		*out_octets = octets;
}

guint
mpop_mailbox_deleted_count(const MpopMailbox *mb, guint64 *out_octets)
{
	guint count = 0;
	guint64 octets = 0;

	for (guint i = 0; i < mb->n_msgs; i++) {
		if (!mb->msgs[i].deleted)
			continue;
		count++;
		octets += mb->msgs[i].size;
	}
	if (out_octets != NULL)
		*out_octets = octets;
	return count;
}

gboolean
mpop_mailbox_dele(MpopMailbox *mb, guint idx)
{
	if (idx >= mb->n_msgs || mb->msgs[idx].deleted)
		return FALSE;
	mb->msgs[idx].deleted = TRUE;
	return TRUE;
}

void
mpop_mailbox_rset(MpopMailbox *mb)
{
	for (guint i = 0; i < mb->n_msgs; i++)
		mb->msgs[i].deleted = FALSE;
}

gboolean
mpop_mailbox_commit(MpopMailbox *mb, GError **error)
{
	g_return_val_if_fail(mb != NULL, FALSE);
	if (mpop_mailbox_deleted_count(mb, NULL) == 0)
		return TRUE;
	return mb->ops->commit(mb, error);
}

void
mpop_mailbox_close(MpopMailbox *mb)
{
	if (mb == NULL)
		return;
	if (mb->ops != NULL && mb->ops->close != NULL)
		mb->ops->close(mb);
	g_free(mb->msgs);
	g_free(mb->stream_out);
	g_free(mb->stream_raw);
	if (mb->strings != NULL)
		g_string_chunk_free(mb->strings);
	g_free(mb->path);
	g_free(mb->user);
	g_free(mb);
}

char *
mpop_mailbox_intern(MpopMailbox *mb, const char *s)
{
	return g_string_chunk_insert(mb->strings, s);
}

gboolean
mpop_uidl_valid(const char *s, size_t len)
{
	/* RFC 1939 §7: 1 to 70 characters in the range 0x21 to 0x7E. */
	if (s == NULL || len == 0 || len > MPOP_UIDL_MAX)
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x21 || c > 0x7e)
			return FALSE;
	}
	return TRUE;
}

char *
mpop_uidl_digest(const void *data, size_t len)
{
	return mpop_uidl_digest_progress(data, len, NULL);
}

char *
mpop_uidl_digest_progress(const void *data, size_t len, const MpopProgress *pr)
{
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
	const guchar *p = data;

	/* In steps when reporting (a header of megabytes), each step reported. */
	for (size_t off = 0; off < len;) {
		size_t k = pr != NULL ? MIN(len - off, pr->step) : len - off;
		g_checksum_update(sum, p + off, (gssize)k);
		off += k;
		if (pr != NULL && off < len)
			pr->fn(pr->ctx, (const char *)p + off);
	}
	/* g_checksum_get_string() is lowercase hex. */
	return g_strndup(g_checksum_get_string(sum), 40);
}

/* The n-th variant of base: "-n" appended, base cut so the result stays within 70. */
static char *
uidl_variant(const char *base, guint n)
{
	char suffix[16];
	size_t slen = (size_t)g_snprintf(suffix, sizeof(suffix), "-%u", n);
	size_t blen = MIN(strlen(base), MPOP_UIDL_MAX - slen);

	return g_strdup_printf("%.*s%s", (int)blen, base, suffix);
}

/* The fast path: one open-addressing table of message numbers (4 bytes a slot, two thirds
 * full at most) finds an equal pair without copying a single UIDL. hashes: NULL, or a hash of
 * each UIDL made by the backend, compared before the strings. */
static gboolean
has_duplicates(const MpopMessage *msgs, guint n, const guint32 *hashes)
{
	g_autofree guint32 *slots = NULL;
	size_t cap = (size_t)n + n / 2 + 1;

	if (n < 2)
		return FALSE;
	slots = g_new(guint32, cap);
	memset(slots, 0xff, cap * sizeof(*slots)); /* G_MAXUINT32: empty */
	for (guint i = 0; i < n; i++) {
		guint32 h = hashes != NULL ? hashes[i] : g_str_hash(msgs[i].uidl);
		/* Mixed, then mapped onto 0..cap-1 by a multiply (no power of two needed). */
		size_t k = (size_t)(((guint64)(guint32)(h * 0x9e3779b1u) * cap) >> 32);

		for (; slots[k] != G_MAXUINT32; k = k + 1 == cap ? 0 : k + 1) {
			guint32 j = slots[k];
			if ((hashes == NULL || hashes[j] == h) &&
			    strcmp(msgs[j].uidl, msgs[i].uidl) == 0)
				return TRUE;
		}
		slots[k] = i;
	}
	return FALSE;
}

/* Later duplicates get "-2", "-3", ...: every original UIDL is reserved, so a later
 * message whose own UIDL happens to look like "x-2" keeps it, and UIDLs stay the same
 * across sessions whenever possible. */
static void
suffix_duplicates(MpopMailbox *mb)
{
	g_autoptr(GHashTable) all = g_hash_table_new(g_str_hash, g_str_equal);
	g_autoptr(GHashTable) taken = g_hash_table_new(g_str_hash, g_str_equal);

	for (guint i = 0; i < mb->n_msgs; i++)
		g_hash_table_add(all, mb->msgs[i].uidl);
	for (guint i = 0; i < mb->n_msgs; i++) {
		MpopMessage *m = &mb->msgs[i];
		if (g_hash_table_contains(taken, m->uidl)) {
			for (guint k = 2;; k++) {
				g_autofree char *v = uidl_variant(m->uidl, k);
				if (!g_hash_table_contains(all, v) &&
				    !g_hash_table_contains(taken, v)) {
					m->uidl = mpop_mailbox_intern(mb, v);
					break;
				}
			}
		}
		g_hash_table_add(taken, m->uidl);
	}
}

void
mpop_uidl_make_unique(MpopMailbox *mb)
{
	for (guint i = 0; i < mb->n_msgs; i++) {
		MpopMessage *m = &mb->msgs[i];
		if (m->uidl == NULL || !mpop_uidl_valid(m->uidl, strlen(m->uidl))) {
			const char *src = m->uidl != NULL ? m->uidl : "";
			g_autofree char *d = mpop_uidl_digest(src, strlen(src));
			m->uidl = mpop_mailbox_intern(mb, d);
		}
	}
	if (has_duplicates(mb->msgs, mb->n_msgs, NULL))
		suffix_duplicates(mb);
}

void
mpop_uidl_make_unique_hashed(MpopMailbox *mb, const guint32 *hashes)
{
	if (has_duplicates(mb->msgs, mb->n_msgs, hashes))
		suffix_duplicates(mb);
}

typedef struct {
	MpopWriteFn write_fn;
	gpointer ctx;
	char *buf;
	size_t used;
	gboolean wrote; /* something reached write_fn: a failure now breaks the connection */
} StreamOut;

static gboolean
stream_flush(StreamOut *so, GError **error)
{
	int rc;

	if (so->used == 0)
		return TRUE;
	so->wrote = TRUE;
	rc = so->write_fn(so->ctx, so->buf, so->used);
	so->used = 0;
	if (rc < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "write failed: %s",
			    g_strerror(-rc));
		return FALSE;
	}
	return TRUE;
}

static gboolean
stream_prefix(StreamOut *so, const char *prefix, GError **error)
{
	size_t len = prefix != NULL ? strlen(prefix) : 0;

	if (len <= STREAM_OUT_CAP - MPOP_STUFF_OUT_MAX(STREAM_RAW_MAX)) {
		memcpy(so->buf, prefix, len);
		so->used = len;
		return TRUE;
	}
	/* An unusually long prefix goes out on its own. */
	so->wrote = TRUE;
	int rc = so->write_fn(so->ctx, prefix, len);
	if (rc < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "write failed: %s",
			    g_strerror(-rc));
		return FALSE;
	}
	return TRUE;
}

/* Convert the message body into the buffer, flushing only when the next chunk may not fit. */
static gboolean
stream_body(MpopMailbox *mb, MpopStuffer *st, StreamOut *so, char *raw, GError **error)
{
	while (!st->done) {
		size_t room = STREAM_OUT_CAP - so->used;
		size_t want = room > MPOP_STUFF_OUT_MAX(0) ? (room - MPOP_STUFF_OUT_MAX(0)) / 2 : 0;
		gssize n;

		if (want < STREAM_RAW_MIN) {
			if (!stream_flush(so, error))
				return FALSE;
			continue;
		}
		n = mb->ops->msg_read(mb, raw, MIN(want, STREAM_RAW_MAX), error);
		if (n < 0) {
			if (error != NULL && *error == NULL)
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP,
					    "cannot read message");
			return FALSE;
		}
		if (n == 0)
			break;
		so->used += mpop_stuffer_feed(st, raw, (size_t)n, so->buf + so->used);
	}
	if (STREAM_OUT_CAP - so->used < STREAM_TAIL_MAX && !stream_flush(so, error))
		return FALSE;
	so->used += mpop_stuffer_finish(st, so->buf + so->used);
	/* RFC 1939 §3: a multi-line response ends with "." CRLF. */
	memcpy(so->buf + so->used, ".\r\n", 3);
	so->used += 3;
	return stream_flush(so, error);
}

gboolean
mpop_mailbox_stream(MpopMailbox *mb, guint idx, gint64 top_lines, const char *prefix,
		    MpopWriteFn write_fn, gpointer ctx, gboolean *out_broken, GError **error)
{
	StreamOut so = {.write_fn = write_fn, .ctx = ctx};
	MpopStuffer st;
	gboolean ok;

	if (out_broken != NULL)
		*out_broken = FALSE;
	if (idx >= mb->n_msgs) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "no such message");
		return FALSE;
	}
	if (!mb->ops->msg_begin(mb, idx, error))
		return FALSE;

	/* Allocated once per session: a RETR costs no allocation (nor, for buffers this size,
	 * a fresh mapping and its page faults). */
	if (mb->stream_out == NULL) {
		mb->stream_out = g_malloc(STREAM_OUT_CAP);
		mb->stream_raw = g_malloc(STREAM_RAW_MAX);
	}
	so.buf = mb->stream_out;
	mpop_stuffer_init(&st, &mb->stuff_opts, top_lines);
	ok = stream_prefix(&so, prefix, error) && stream_body(mb, &st, &so, mb->stream_raw, error);
	mb->ops->msg_end(mb);
	if (!ok && out_broken != NULL)
		*out_broken = so.wrote;
	return ok;
}
