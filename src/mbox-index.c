/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mbox index: message table, exact sizes, UIDLs and boundary hashes of a mapped file, in
 * one pass from the start or from a message start (what was appended since the last index). */
#include "mailbox-mbox.h"
#include "util.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * One pass on the session's own thread. Indexing parts of a large file on two threads gave
 * nothing measurable with 8 concurrent logins on a 2 000-message mbox (docs/performance.md):
 * the CPUs are busy with the other sessions, and with the persisted index (mbox-store.c) a
 * full scan is rare while a second login reads no message at all. Memory stays bounded by the
 * mapping being given back as the pass goes: every DROP_EVERY bytes between messages, and
 * through the progress reports inside a long message.
 */
#define DROP_EVERY (1u << 18) /* MADV_DONTNEED the indexed part every 256 KiB */
#define BAND (DROP_EVERY / 2) /* inside a long message: what trails the scan is given back */

guint32
mpop_mbox_hash(guint32 h, const char *s, size_t n)
{
	size_t i = 0;

	/* Eight bytes a step (a multiply-shift per word, FNV-1a for the tail): a call on a
	 * multiple of 8 bytes continues exactly where the next call starts, so chunked reads
	 * give what one call over the mapping gave. */
	for (; i + 8 <= n; i += 8) {
		guint64 w;
		memcpy(&w, s + i, 8);
		h = (guint32)(((h ^ w) * 0x9e3779b97f4a7c15ull) >> 32);
	}
	for (; i < n; i++)
		h = (h ^ (guint8)s[i]) * 16777619u;
	return h;
}

guint64
mpop_mbox_hash64(guint64 h, const void *data, size_t n)
{
	const char *s = data;
	size_t i = 0;

	/* The same shape with 64 bits kept: a multiply and a rotate per word. */
	for (; i + 8 <= n; i += 8) {
		guint64 w;
		memcpy(&w, s + i, 8);
		h = (h ^ w) * 0x9e3779b97f4a7c15ull;
		h = (h << 31) | (h >> 33);
	}
	for (; i < n; i++)
		h = (h ^ (guint8)s[i]) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

/* MADV_DONTNEED the whole pages of [from, to) of the mapping. */
static void
drop_pages(const char *map, guint64 from, guint64 to)
{
	const guint64 page = (guint64)sysconf(_SC_PAGESIZE);
	guint64 a = from - from % page, b = to - to % page;

	if (b > a)
		(void)madvise((char *)map + a, b - a, MADV_DONTNEED);
}

/* A scan of a long message has reached done: the band of pages one band behind it goes back
 * (the reports before gave back what lies before that), so a message of gigabytes maps no
 * more than two bands at a time in any of its passes. */
static void
trail(gpointer ctx, const char *done)
{
	const char *map = ctx;
	guint64 d = (guint64)(done - map);

	if (d >= 2 * BAND)
		drop_pages(map, d - 2 * BAND, d - BAND);
}

typedef struct {
	GArray *msgs, *hashes, *uidl_hashes, *fps;
} Tables;

static void
tables_free(Tables *t)
{
	g_array_free(t->msgs, TRUE);
	g_array_free(t->hashes, TRUE);
	g_array_free(t->uidl_hashes, TRUE);
	g_array_free(t->fps, TRUE);
}

gboolean
mpop_mbox_index(const MpopMboxIndexOpts *o, const char *map, size_t size, GStringChunk *strings,
		MpopMboxIndex *out, GError **error)
{
	const MpopProgress progress = {trail, (gpointer)map, BAND};
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	Tables t = {g_array_new(FALSE, TRUE, sizeof(MpopMessage)),
		    g_array_new(FALSE, FALSE, sizeof(guint32)),
		    g_array_new(FALSE, FALSE, sizeof(guint32)),
		    g_array_new(FALSE, FALSE, sizeof(guint64))};
	MpopUidlPlan plan;
	guint64 from, cend, dropped;

	memset(out, 0, sizeof(*out));
	mpop_mbox_uidl_plan(o->uidl_sources, &plan);
	if (o->from == 0) {
		out->first_from = mpop_mbox_first_progress(o->parser, map, size, &progress);
		from = cend = out->first_from;
	} else {
		g_assert(o->from < size && o->prev_end <= o->from && o->first_from <= o->prev_end);
		out->first_from = o->first_from;
		from = o->from;
		cend = o->prev_end;
	}
	/* UIDLs in Dovecot's form need the X-IMAPbase of the mailbox's first message. */
	mpop_mbox_uidl_plan_mailbox(&plan, map + out->first_from, size - out->first_from);
	dropped = from - from % page;
	while (from < size) {
		MpopMboxSpan sp;
		MpopMessage m = {0};
		char uidl[MPOP_UIDL_MAX + 1];
		size_t ulen;
		guint32 h, uh;
		guint64 fp;

		mpop_mbox_message_progress(o->parser, map, size, from, &sp, &progress);
		/* The message table keeps 32-bit lengths (32 bytes a message): no POP3 client
		 * takes a message of 4 GiB anyway, and the admin has to split such a file. */
		if (sp.length > G_MAXUINT32 || sp.offset - sp.from_offset > (G_MAXUINT32 >> 1)) {
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
				    "a message at byte %" G_GUINT64_FORMAT
				    " is 4 GiB or larger, which this server does not serve",
				    sp.from_offset);
			tables_free(&t);
			return FALSE;
		}
		m.from_len = (guint32)(sp.offset - sp.from_offset);
		m.offset = sp.offset;
		m.length = (guint32)sp.length;
		/* RFC 1939 §5: exactly what RETR will send, by the same converter. */
		m.size = mpop_stuffer_measure_at(o->stuff, map + sp.offset, sp.length,
						 sp.body - sp.offset, &progress);
		ulen = mpop_mbox_uidl_planned(map + sp.offset, sp.header_end - sp.offset, &plan,
					      uidl, &progress);
		m.uidl = g_string_chunk_insert_len(strings, uidl, (gssize)ulen);
		uh = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, uidl, ulen);
		h = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, map + cend, sp.offset - cend);
		/* What recognises the message in an older index: its From line (sender and
		 * delivery time), its UIDL from the content and its size. */
		fp = mpop_mbox_hash64(m.size, map + sp.from_offset, m.from_len);
		fp = mpop_mbox_hash64(fp, uidl, ulen);
		g_array_append_val(t.msgs, m);
		g_array_append_val(t.hashes, h);
		g_array_append_val(t.uidl_hashes, uh);
		g_array_append_val(t.fps, fp);
		cend = sp.offset + sp.length;
		from = sp.end;
		if (from - dropped >= DROP_EVERY) {
			drop_pages(map, dropped, from);
			dropped = from - from % page;
		}
	}
	out->n_msgs = t.msgs->len;
	out->tail_hash = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, map + cend, size - cend);
	/* The arrays grew by doubling: give back what the table does not use. */
	out->msgs = g_renew(MpopMessage, g_array_free(t.msgs, FALSE), MAX(out->n_msgs, 1));
	out->span_hash = g_renew(guint32, g_array_free(t.hashes, FALSE), MAX(out->n_msgs, 1));
	out->uidl_hash = (guint32 *)(void *)g_array_free(t.uidl_hashes, FALSE);
	out->fingerprint = (guint64 *)(void *)g_array_free(t.fps, FALSE);
	return TRUE;
}

void
mpop_mbox_index_clear(MpopMboxIndex *ix)
{
	g_free(ix->msgs);
	g_free(ix->span_hash);
	g_free(ix->uidl_hash);
	g_free(ix->fingerprint);
	memset(ix, 0, sizeof(*ix));
}
