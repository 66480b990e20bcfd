/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The backend-neutral message table, UIDL helpers and bounded RETR/TOP streaming. */
#include "mailbox.h"
#include "util.h"

#include <errno.h>
#include <string.h>

/* Raw bytes read from the store at a time: the converted output (at most
 * MPOP_STUFF_OUT_MAX of it) goes straight into the stream's queue. */
#define STREAM_RAW_MAX (48 * 1024)
#define STREAM_RAW_MIN (4 * 1024)
#define STREAM_TAIL_MAX (MPOP_STUFF_OUT_MAX(0) + 3) /* finish() + ".\r\n" */

G_STATIC_ASSERT(MPOP_STUFF_OUT_MAX(STREAM_RAW_MAX) < MPOP_STREAM_OUT_CAP);

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

const char *
mpop_mailbox_location_pattern(const MpopConfig *cfg)
{
	if (cfg->location != NULL && *cfg->location != '\0')
		return cfg->location;
	return cfg->format == MPOP_FORMAT_MAILDIR ? "%h/Maildir" : "%s/%u";
}

char *
mpop_mailbox_location(const MpopConfig *cfg, const char *user, const char *home,
		      const char *override, GError **error)
{
	const char *loc;

	g_return_val_if_fail(cfg != NULL, NULL);
	if (override != NULL)
		return g_strdup(override);
	loc = mpop_mailbox_location_pattern(cfg);
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
	g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);

	g_checksum_update(sum, data, (gssize)len);
	return mpop_uidl_digest_of(sum);
}

char *
mpop_uidl_digest_of(GChecksum *sum)
{
	/* g_checksum_get_string() is lowercase hex. */
	return g_strndup(g_checksum_get_string(sum), 40);
}

char *
mpop_uidl_variant(const char *base, guint64 n)
{
	char suffix[24];
	size_t slen = (size_t)g_snprintf(suffix, sizeof(suffix), "-%" G_GUINT64_FORMAT, n);
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
				g_autofree char *v = mpop_uidl_variant(m->uidl, k);
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

/* Convert the message into the stream's queue. Raw chunks are sized to what the queue can
 * still take, so it is written only when full: a small message leaves with the replies
 * queued before it (one write), a large one in writes of about MPOP_STREAM_OUT_CAP. */
static gboolean
stream_body(MpopMailbox *mb, MpopStuffer *st, MpopStream *out, char *raw, GError **error)
{
	char *dst;

	while (!st->done) {
		size_t room = mpop_stream_room(out);
		size_t want = room > MPOP_STUFF_OUT_MAX(0) ? (room - MPOP_STUFF_OUT_MAX(0)) / 2 : 0;
		gssize n;

		if (want < STREAM_RAW_MIN)
			want = STREAM_RAW_MAX; /* reserve() below flushes the queue first */
		n = mb->ops->msg_read(mb, raw, MIN(want, STREAM_RAW_MAX), error);
		if (n < 0) {
			if (error != NULL && *error == NULL)
				g_set_error(error, MPOP_ERROR, MPOP_ERROR_TEMP,
					    "cannot read message");
			return FALSE;
		}
		if (n == 0)
			break;
		dst = mpop_stream_reserve(out, MPOP_STUFF_OUT_MAX((size_t)n));
		if (!dst)
			goto broken;
		mpop_stream_commit(out, mpop_stuffer_feed(st, raw, (size_t)n, dst));
	}
	dst = mpop_stream_reserve(out, STREAM_TAIL_MAX);
	if (!dst)
		goto broken;
	mpop_stream_commit(out, mpop_stuffer_finish(st, dst));
	return TRUE;
broken:
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "write failed");
	return FALSE;
}

gboolean
mpop_mailbox_stream(MpopMailbox *mb, guint idx, gint64 top_lines, MpopStream *out,
		    gboolean *out_broken, GError **error)
{
	guint64 written = out->written;
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
	/* Allocated once per session: a RETR costs no allocation. */
	if (mb->stream_raw == NULL)
		mb->stream_raw = g_malloc(STREAM_RAW_MAX);
	mpop_stuffer_init(&st, &mb->stuff_opts, top_lines);
	ok = stream_body(mb, &st, out, mb->stream_raw, error);
	/* RFC 1939 §5: LIST gave the exact size. A message that differs (changed since it was
	 * indexed, or a size from a name or cache that was wrong) never ends as if complete: the
	 * reply fails, before anything was written (-ERR) or by ending the connection. */
	if (ok && top_lines < 0 && st.size != mb->msgs[idx].size) {
		if (mb->ops->size_wrong != NULL)
			mb->ops->size_wrong(mb, idx, st.size);
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CHANGED,
			    "message is %" G_GUINT64_FORMAT " octets, listed as %" G_GUINT64_FORMAT,
			    st.size, mb->msgs[idx].size);
		ok = FALSE;
	}
	/* RFC 1939 §3: a multi-line response ends with "." CRLF (room kept by STREAM_TAIL_MAX). */
	if (ok)
		g_string_append_len(out->out, ".\r\n", 3);
	mb->ops->msg_end(mb);
	/* Once part of the reply has left, the client cannot be told: end the connection. */
	if (!ok && out_broken != NULL)
		*out_broken = out->written != written || out->broken;
	return ok;
}
