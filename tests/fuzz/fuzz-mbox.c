/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the mbox scanner, the UIDL picker and the size count on untrusted mailbox bytes. */
#include "mailbox-mbox.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Indexed again from any message's From line (what a login does after an append), the index
 * is the one of a pass from the start for those messages (through a real mapping: the index
 * drops the pages it has passed). */
static void
check_from(MpopMboxParser *p, const MpopStuffOpts *opts, const char *buf, size_t len, guint pick)
{
	MpopMboxIndexOpts o = {p, opts, NULL, 0, 0};
	GStringChunk *s1 = g_string_chunk_new(256), *s2 = g_string_chunk_new(256);
	MpopMboxIndex a, b;
	int fd = memfd_create("fuzz-mbox", MFD_CLOEXEC);
	char *map;
	guint k;

	g_assert(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	g_assert(map != MAP_FAILED);
	g_assert(mpop_mbox_index(&o, map, len, s1, &a, NULL));
	k = a.n_msgs > 0 ? pick % a.n_msgs : 0;
	if (a.n_msgs > 0 && a.msgs[k].offset - a.msgs[k].from_len > 0) {
		o.from = a.msgs[k].offset - a.msgs[k].from_len;
		o.prev_end = k > 0 ? a.msgs[k - 1].offset + a.msgs[k - 1].length : a.first_from;
		o.first_from = a.first_from;
		g_assert(mpop_mbox_index(&o, map, len, s2, &b, NULL));
		g_assert(b.n_msgs == a.n_msgs - k && a.tail_hash == b.tail_hash);
		for (guint i = 0; i < b.n_msgs; i++) {
			const MpopMessage *x = &a.msgs[k + i], *y = &b.msgs[i];
			g_assert(x->offset == y->offset && x->size == y->size);
			g_assert(x->length == y->length && x->from_len == y->from_len);
			g_assert(strcmp(x->uidl, y->uidl) == 0);
			g_assert(a.span_hash[k + i] == b.span_hash[i]);
			g_assert(a.fingerprint[k + i] == b.fingerprint[i]);
		}
		mpop_mbox_index_clear(&b);
	}
	mpop_mbox_index_clear(&a);
	g_string_chunk_free(s1);
	g_string_chunk_free(s2);
	munmap(map, len);
	close(fd);
}

static void
ignore_progress(gpointer ctx, const char *done)
{
}

/* The first byte picks the rules: the literal fast path or the regex path (bit 0), blank
 * separator lines or END marker lines (bit 7). */
int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static MpopMboxParser *parsers[4];
	static const char *const hide[] = {"Status", "Content-Length", NULL};
	const char *buf;
	size_t len;
	guint64 from;
	MpopMboxParser *p;

	if (parsers[0] == NULL) {
		parsers[0] = mpop_mbox_parser_new("^From ", "^\\s*$", NULL);
		parsers[1] = mpop_mbox_parser_new("^From\\s", "^[ \\t]*$", NULL);
		parsers[2] = mpop_mbox_parser_new("From ", "END", NULL);
		parsers[3] = mpop_mbox_parser_new("From\\s", "END|--", NULL);
	}
	if (size == 0)
		return 0;
	p = parsers[(data[0] & 1) | ((data[0] >> 6) & 2)];
	buf = (const char *)data + 1;
	len = size - 1;
	from = mpop_mbox_first(p, buf, len);
	g_assert(from <= len);
	while (from < len) {
		MpopMboxSpan sp;
		MpopStuffOpts opts = {.unquote_from = (data[0] & 2) != 0,
				      .hide_headers = (data[0] & 4) ? hide : NULL};
		char uidl[MPOP_UIDL_MAX + 1];
		size_t n;

		mpop_mbox_message(p, buf, len, from, &sp);
		/* Scans that report their progress in small steps find the same message. */
		{
			MpopMboxSpan sp2;
			MpopProgress pr = {ignore_progress, NULL, 1 + (size_t)(data[0] >> 3) % 13};
			mpop_mbox_message_progress(p, buf, len, from, &sp2, &pr);
			g_assert(memcmp(&sp, &sp2, sizeof(sp)) == 0);
		}
		g_assert(sp.from_offset == from && sp.offset > from);
		g_assert(sp.offset + sp.length <= sp.end && sp.end <= len && sp.end > from);
		g_assert(sp.header_end >= sp.offset && sp.header_end <= sp.offset + sp.length);
		n = mpop_mbox_uidl(buf + sp.offset, sp.header_end - sp.offset, NULL, uidl);
		g_assert(n == strlen(uidl) && mpop_uidl_valid(uidl, n));
		/* The count the index stores is what a chunked RETR produces. */
		{
			MpopStuffer st;
			guint64 whole = mpop_stuffer_measure(&opts, buf + sp.offset, sp.length);
			mpop_stuffer_init(&st, &opts, -1);
			for (guint64 k = 0; k < sp.length; k += 7)
				mpop_stuffer_feed(&st, buf + sp.offset + k, MIN(7, sp.length - k),
						  NULL);
			mpop_stuffer_finish(&st, NULL);
			g_assert(st.size == whole);
		}
		from = sp.end;
	}
	if (len > 0) {
		MpopStuffOpts opts = {.unquote_from = (data[0] & 2) != 0,
				      .hide_headers = (data[0] & 4) ? hide : NULL};
		check_from(p, &opts, buf, len, data[0] >> 3);
	}
	return 0;
}
