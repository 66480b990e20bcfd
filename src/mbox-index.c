/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mbox index: message table, exact sizes, UIDLs and boundary hashes of a mapped file,
 * in parts on several CPUs when the file is large. */
#include "mailbox-mbox.h"
#include "util.h"

#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DROP_EVERY (1u << 18) /* MADV_DONTNEED the indexed part every 256 KiB */
#define BAND (DROP_EVERY / 2) /* inside a long message: what trails the scan is given back */
#define PART_MIN (8u << 20)   /* a part smaller than this is not worth a thread */
#define PARTS_MAX 4	      /* what max_parts may ask for */
/* By default: every part holds up to DROP_EVERY of the file mapped (and its own allocator
 * arena), and the session's peak memory stays under 8 MB with two on 50 000 messages. */
#define PARTS_AUTO 2
#define JOIN_PIECE (64 * 1024)	/* joining parts: copied and given back in pieces */
#define SPLIT_SEARCH (1u << 20) /* how far past a cut's target a message start is looked for */

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

/* One part: the messages whose From line lies in [from, stop), indexed as if the file
 * ended at stop (where the next part's first From line is). */
typedef struct {
	const MpopMboxIndexOpts *opts;
	const MpopUidlPlan *plan;
	const MpopProgress *progress; /* gives back the pages behind long scans */
	const char *map;
	guint64 from, stop;
	GStringChunk *strings; /* where this part's UIDLs go */
	GArray *msgs, *hashes, *uidl_hashes;
	guint64 cend; /* content end of the last message (the first part: first_from) */
	GError *error;
} Part;

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

static gpointer
index_part(gpointer data)
{
	Part *pt = data;
	const MpopMboxIndexOpts *o = pt->opts;
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	guint64 from = pt->from, dropped = from - from % page;

	pt->msgs = g_array_new(FALSE, TRUE, sizeof(MpopMessage));
	pt->hashes = g_array_new(FALSE, FALSE, sizeof(guint32));
	pt->uidl_hashes = g_array_new(FALSE, FALSE, sizeof(guint32));
	while (from < pt->stop) {
		MpopMboxSpan sp;
		MpopMessage m = {0};
		char uidl[MPOP_UIDL_MAX + 1];
		size_t ulen;
		guint32 h, uh;

		mpop_mbox_message_progress(o->parser, pt->map, pt->stop, from, &sp, pt->progress);
		/* The message table keeps 32-bit lengths (32 bytes a message): no POP3 client
		 * takes a message of 4 GiB anyway, and the admin has to split such a file. */
		if (sp.length > G_MAXUINT32 || sp.offset - sp.from_offset > (G_MAXUINT32 >> 1)) {
			g_set_error(&pt->error, MPOP_ERROR, MPOP_ERROR_PERM,
				    "a message at byte %" G_GUINT64_FORMAT
				    " is 4 GiB or larger, which this server does not serve",
				    sp.from_offset);
			return NULL;
		}
		m.from_len = (guint32)(sp.offset - sp.from_offset);
		m.offset = sp.offset;
		m.length = (guint32)sp.length;
		/* RFC 1939 §5: exactly what RETR will send, by the same converter. */
		m.size = mpop_stuffer_measure_at(o->stuff, pt->map + sp.offset, sp.length,
						 sp.body - sp.offset, pt->progress);
		ulen = mpop_mbox_uidl_planned(pt->map + sp.offset, sp.header_end - sp.offset,
					      pt->plan, uidl, pt->progress);
		m.uidl = g_string_chunk_insert_len(pt->strings, uidl, (gssize)ulen);
		uh = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, uidl, ulen);
		h = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, pt->map + pt->cend, sp.offset - pt->cend);
		g_array_append_val(pt->msgs, m);
		g_array_append_val(pt->hashes, h);
		g_array_append_val(pt->uidl_hashes, uh);
		pt->cend = sp.offset + sp.length;
		from = sp.end;
		if (from - dropped >= DROP_EVERY) {
			drop_pages(pt->map, dropped, from);
			dropped = from - from % page;
		}
	}
	return NULL;
}

static guint
online_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return 1;
	return (guint)MAX(CPU_COUNT(&set), 1);
}

/* Split points: message starts near size/n, 2 size/n, ... that the sequential scan finds
 * too. Returns the number of parts; starts[k] is where part k begins, starts[n] == size. */
static guint
plan_parts(const MpopMboxIndexOpts *o, const char *map, size_t size, guint64 first,
	   guint64 starts[PARTS_MAX + 1])
{
	guint want = o->max_parts > 0 ? o->max_parts : MIN(online_cpus(), PARTS_AUTO);
	guint64 part_min = o->part_min > 0 ? o->part_min : PART_MIN;
	guint n = 1;

	want = MIN(want, PARTS_MAX);
	want = (guint)MIN((guint64)want, MAX((size - first) / part_min, 1));
	starts[0] = first;
	for (guint k = 1; k < want; k++) {
		guint64 from = MAX(first + (size - first) / want * k, starts[n - 1]);
		guint64 stop = MIN(size, from + SPLIT_SEARCH), s;

		/* A bounded look (one huge message must not map the rest of the file), and what
		 * it mapped is given back: the parts map their ranges again as they go. */
		s = mpop_mbox_split_point(o->parser, map, stop, from);
		drop_pages(map, from, MIN(s, stop));
		if (s < stop && s > starts[n - 1])
			starts[n++] = s;
	}
	starts[n] = size;
	return n;
}

/* dst (dst_len elements of elem bytes) with the elements of src appended; src is freed.
 * Copied from the end in pieces, each piece given back as soon as it is copied (shrinking a
 * large block returns its tail pages), so a part's table and its copy never both exist
 * whole: the peak stays at the joined size. */
static gpointer
join_array(gpointer dst, guint dst_len, GArray *src, size_t elem)
{
	size_t left = (size_t)src->len * elem;
	char *res = g_realloc(dst, dst_len * elem + left + elem);
	char *from = g_array_free(src, FALSE);

	while (left > 0) {
		size_t piece = MIN(left, JOIN_PIECE);
		left -= piece;
		memcpy(res + dst_len * elem + left, from + left, piece);
		from = g_realloc(from, MAX(left, 1));
	}
	g_free(from);
	return res;
}

gboolean
mpop_mbox_index(const MpopMboxIndexOpts *o, const char *map, size_t size, GStringChunk *strings,
		MpopMboxIndex *out, GError **error)
{
	guint64 starts[PARTS_MAX + 1];
	Part parts[PARTS_MAX];
	MpopUidlPlan plan;
	/* The same for every pass of every part: trail() only looks at the mapping. */
	const MpopProgress progress = {trail, (gpointer)map, BAND};
	GThread *threads[PARTS_MAX] = {NULL};
	gboolean ok = TRUE;
	guint n;

	memset(out, 0, sizeof(*out));
	mpop_mbox_uidl_plan(o->uidl_sources, &plan);
	out->first_from = mpop_mbox_first_progress(o->parser, map, size, &progress);
	mpop_mbox_uidl_plan_mailbox(&plan, map + out->first_from, size - out->first_from);
	n = plan_parts(o, map, size, out->first_from, starts);
	out->chunks = g_ptr_array_new_with_free_func((GDestroyNotify)g_string_chunk_free);
	for (guint k = 0; k < n; k++) {
		parts[k] = (Part){.opts = o,
				  .plan = &plan,
				  .progress = &progress,
				  .map = map,
				  .from = starts[k],
				  .stop = starts[k + 1],
				  .strings = strings,
				  .cend = starts[k]};
		if (k == 0)
			continue;
		parts[k].strings = g_string_chunk_new(16 * 1024);
		g_ptr_array_add(out->chunks, parts[k].strings);
		/* The only threads of mpopd (STYLE.md: none in forking code): they live in the
		 * session process, which never forks, and are joined before this returns. */
		threads[k] = g_thread_try_new("mpopd-index", index_part, &parts[k], NULL);
	}
	index_part(&parts[0]);
	/* A part whose thread could not start is done here (a full RLIMIT_NPROC). */
	for (guint k = 1; k < n; k++) {
		if (threads[k] != NULL)
			g_thread_join(threads[k]);
		else
			index_part(&parts[k]);
	}

	for (guint k = 0; k < n; k++) {
		if (ok && parts[k].error != NULL) {
			g_propagate_error(error, g_steal_pointer(&parts[k].error));
			ok = FALSE;
		}
		g_clear_error(&parts[k].error);
	}
	if (!ok) {
		for (guint k = 0; k < n; k++) {
			g_array_free(parts[k].msgs, TRUE);
			g_array_free(parts[k].hashes, TRUE);
			g_array_free(parts[k].uidl_hashes, TRUE);
		}
		g_clear_pointer(&out->chunks, g_ptr_array_unref);
		return FALSE;
	}
	out->n_parts = n;
	out->n_msgs = parts[0].msgs->len;
	out->msgs = (MpopMessage *)(void *)g_array_free(parts[0].msgs, FALSE);
	out->span_hash = (guint32 *)(void *)g_array_free(parts[0].hashes, FALSE);
	out->uidl_hash = (guint32 *)(void *)g_array_free(parts[0].uidl_hashes, FALSE);
	for (guint k = 1; k < n; k++) {
		guint first = out->n_msgs, len = parts[k].msgs->len;
		guint64 prev_end = parts[k - 1].cend;

		out->msgs = join_array(out->msgs, first, parts[k].msgs, sizeof(MpopMessage));
		out->span_hash =
			join_array(out->span_hash, first, parts[k].hashes, sizeof(guint32));
		out->uidl_hash =
			join_array(out->uidl_hash, first, parts[k].uidl_hashes, sizeof(guint32));
		out->n_msgs += len;
		/* A part's first boundary (separator + From line) begins in the part before. */
		if (len > 0)
			out->span_hash[first] = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, map + prev_end,
							       out->msgs[first].offset - prev_end);
		else
			parts[k].cend = prev_end;
	}
	/* The arrays grew by doubling: give back what the table does not use. */
	out->msgs = g_renew(MpopMessage, out->msgs, MAX(out->n_msgs, 1));
	out->span_hash = g_renew(guint32, out->span_hash, MAX(out->n_msgs, 1));
	out->tail_hash = mpop_mbox_hash(MPOP_MBOX_HASH_INIT, map + parts[n - 1].cend,
					size - parts[n - 1].cend);
	return TRUE;
}
