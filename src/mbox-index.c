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
 * full scan is rare while a second login reads no message at all.
 *
 * The pass reads the mapping through a window of whole lines that slides forward: the
 * scanners see the file cut after the window's last line, and the pages behind the window
 * are given back as it moves. A message longer than the window is followed through several
 * (the search for its end resumes at the window's last line, its size and header end are
 * counted a window at a time), so the session maps about one window and the longest line,
 * whatever the size of the messages and of the file.
 */
#define WINDOW (1u << 18) /* 256 KiB */

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

typedef struct {
	const MpopMboxParser *parser;
	const char *map;
	size_t size, window;
	size_t lo; /* the window: [lo, hi), hi after a line end or at the end of the file */
	size_t hi;
	size_t low; /* what may be mapped starts here: lo, or lower after a read behind it */
} Pass;

/* Past the first LF at or after pos, or the end of the file. */
static size_t
line_end(const Pass *ps, size_t pos)
{
	const char *lf = pos < ps->size ? memchr(ps->map + pos, '\n', ps->size - pos) : NULL;

	return lf != NULL ? (size_t)(lf - ps->map) + 1 : ps->size;
}

/* The window moves on from pos (a line start): the pages before keep (<= pos) go back, and
 * it reaches a window past pos, at least a line past its old end. */
static void
slide(Pass *ps, size_t keep, size_t pos)
{
	drop_pages(ps->map, ps->low, keep);
	ps->lo = ps->low = keep;
	ps->hi = line_end(ps, MAX(ps->hi, MIN(ps->size, pos + ps->window)));
}

/* What a message's content is counted into as the window passes over it. */
typedef struct {
	size_t start;	   /* what is read again when it is complete: from the content before */
	size_t done;	   /* counted up to here */
	size_t header_end; /* G_MAXSIZE until found */
	MpopStuffer st;
} Content;

static void
count_content(const Pass *ps, Content *c, size_t upto)
{
	if (c->header_end == G_MAXSIZE) {
		size_t h = mpop_mbox_header_end(ps->map, c->done, upto);
		if (h < upto) { /* the header, up to its empty line, by the stuffer itself */
			size_t body = h + (ps->map[h] == '\r' ? 2 : 1);
			mpop_stuffer_feed(&c->st, ps->map + c->done, body - c->done, NULL);
			c->header_end = h;
			c->done = body;
		}
	}
	mpop_stuffer_count(&c->st, ps->map + c->done, upto - c->done);
	c->done = upto;
}

/* The content starting at pos (a line start in the window) up to the next message start
 * (TRUE) or the end of the file (FALSE): *out_cend and *out_next as mpop_mbox_next() says.
 * With c, what the window holds of it is counted before the window moves on. */
static gboolean
follow(Pass *ps, size_t pos, Content *c, size_t *out_cend, size_t *out_next)
{
	for (;;) {
		gboolean found =
			mpop_mbox_next(ps->parser, ps->map, ps->hi, pos, out_cend, out_next);
		const char *lf;

		if (found || ps->hi == ps->size) {
			if (c != NULL)
				count_content(ps, c, *out_cend);
			return found;
		}
		/* Its last line may be the separator before a start in the next window. */
		lf = ps->hi - pos > 1 ? memrchr(ps->map + pos, '\n', ps->hi - 1 - pos) : NULL;
		pos = lf != NULL ? (size_t)(lf - ps->map) + 1 : pos;
		if (c != NULL)
			count_content(ps, c, pos);
		/* A message shorter than a window stays in it: it is read again at the end. */
		slide(ps, c != NULL && pos - c->start <= ps->window ? c->start : pos, pos);
	}
}

/* The pages of [from, to) that the window has left behind go back (again). */
static void
give_back(const Pass *ps, size_t from, size_t to)
{
	if (from < ps->lo)
		drop_pages(ps->map, from, MIN(to, ps->lo));
}

/* The UIDL of the header at offset (len bytes), read a window at a time: behind the window
 * when its message was longer than one. */
static size_t
header_uidl(const Pass *ps, const MpopUidlPlan *plan, size_t offset, size_t len,
	    char out[MPOP_UIDL_MAX + 1])
{
	const char *h = ps->map + offset;
	g_autoptr(GChecksum) sum = NULL;
	g_autofree char *d = NULL;
	MpopUidlFields f;
	size_t n, k;

	mpop_mbox_uidl_fields_init(&f, plan);
	for (size_t a = 0; a < len; a = k) {
		k = mpop_mbox_uidl_fields(&f, h, len, a, a + ps->window);
		give_back(ps, offset + a, offset + k);
	}
	n = mpop_mbox_uidl_pick(&f, plan, h, len, out);
	give_back(ps, offset, offset + len);
	if (n > 0)
		return n;
	sum = g_checksum_new(G_CHECKSUM_SHA256);
	for (size_t a = 0; a < len; a = k) {
		k = MIN(len, a + ps->window);
		g_checksum_update(sum, (const guchar *)h + a, (gssize)(k - a));
		give_back(ps, offset + a, offset + k);
	}
	d = mpop_uidl_digest_of(sum);
	n = strlen(d);
	memcpy(out, d, n + 1);
	return n;
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
	Pass ps = {o->parser, map, size, o->window > 0 ? o->window : WINDOW, o->from, 0, o->from};
	Tables t = {g_array_new(FALSE, TRUE, sizeof(MpopMessage)),
		    g_array_new(FALSE, FALSE, sizeof(guint32)),
		    g_array_new(FALSE, FALSE, sizeof(guint32)),
		    g_array_new(FALSE, FALSE, sizeof(guint64))};
	const size_t page = (size_t)sysconf(_SC_PAGESIZE), table = page / 8 * page;
	MpopUidlPlan plan;
	size_t from, cend, next;

	memset(out, 0, sizeof(*out));
	mpop_mbox_uidl_plan(o->uidl_sources, &plan);
	ps.hi = line_end(&ps, MIN(size, o->from + ps.window));
	if (o->from == 0) {
		/* The first line, or the first start after the text before the first message. */
		out->first_from = mpop_mbox_first(o->parser, map, ps.hi);
		if (out->first_from == ps.hi && ps.hi < size)
			out->first_from = follow(&ps, 0, NULL, &cend, &next) ? next : size;
		from = cend = out->first_from;
	} else {
		g_assert(o->from < size && o->prev_end <= o->from && o->first_from <= o->prev_end);
		out->first_from = o->first_from;
		from = o->from;
		cend = o->prev_end;
	}
	/* UIDLs in Dovecot's form need the X-IMAPbase of the mailbox's first message. */
	mpop_mbox_uidl_plan_mailbox(&plan, map + out->first_from, size - out->first_from);
	while (from < size) {
		size_t offset = line_end(&ps, from);
		Content c = {cend, offset, G_MAXSIZE};
		MpopMessage m = {0};
		char uidl[MPOP_UIDL_MAX + 1];
		size_t ulen, end;
		guint32 h, uh;
		guint64 fp;

		mpop_stuffer_init(&c.st, o->stuff, -1);
		if (!follow(&ps, offset, &c, &end, &next))
			next = size;
		/* The message table keeps 32-bit lengths (32 bytes a message): no POP3 client
		 * takes a message of 4 GiB anyway, and the admin has to split such a file. */
		if (end - offset > G_MAXUINT32 || offset - from > (G_MAXUINT32 >> 1)) {
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
				    "a message at byte %" G_GSIZE_FORMAT
				    " is 4 GiB or larger, which this server does not serve",
				    from);
			tables_free(&t);
			return FALSE;
		}
		m.from_len = (guint32)(offset - from);
		m.offset = offset;
		m.length = (guint32)(end - offset);
		/* RFC 1939 §5: exactly what RETR will send, by the same converter. */
		mpop_stuffer_finish(&c.st, NULL);
		m.size = c.st.size;
		ulen = header_uidl(&ps, &plan, offset, MIN(c.header_end, end) - offset, uidl);
		m.uidl = g_string_chunk_insert_len(strings, uidl, (gssize)ulen);
		uh = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, uidl, ulen);
		h = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, map + cend, offset - cend);
		/* What recognises the message in an older index: its From line (sender and
		 * delivery time), its UIDL from the content and its size. */
		fp = mpop_mbox_hash64(m.size, map + from, m.from_len);
		fp = mpop_mbox_hash64(fp, uidl, ulen);
		g_array_append_val(t.msgs, m);
		g_array_append_val(t.hashes, h);
		g_array_append_val(t.uidl_hashes, uh);
		g_array_append_val(t.fps, fp);
		/* A message that began behind the window was read there again (separator, From
		 * line, header): the pages the kernel mapped for that, around each fault but
		 * within one page table, go back when the window next moves. */
		if (cend < ps.lo)
			ps.low = MIN(ps.low, cend - cend % table);
		cend = end;
		from = next;
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
