/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the mbox scanner, the UIDL picker and the size count on untrusted mailbox bytes. */
#include "mailbox-mbox.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The index (through a real mapping: it gives back the pages it has passed) is what the
 * scanners find message by message, read through a window of a few bytes as well as the
 * default one; indexed again from any message's From line (what a login does after an
 * append), it is the one of a pass from the start for those messages. */
static void
check_index(MpopMboxParser *p, const MpopStuffOpts *opts, const char *buf, size_t len, guint pick)
{
	MpopMboxIndexOpts o = {p, opts, NULL, 0, 0};
	GStringChunk *s1 = g_string_chunk_new(256), *s2 = g_string_chunk_new(256);
	MpopMboxIndex a, b;
	int fd = memfd_create("fuzz-mbox", MFD_CLOEXEC);
	guint64 from;
	char *map;
	guint k;

	g_assert(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
	map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	g_assert(map != MAP_FAILED);
	g_assert(mpop_mbox_index(&o, map, len, s1, &a, NULL));
	from = mpop_mbox_first(p, buf, len);
	g_assert(a.first_from == from);
	for (k = 0; from < len; k++) {
		MpopMboxSpan sp;
		char uidl[MPOP_UIDL_MAX + 1];
		mpop_mbox_message(p, buf, len, from, &sp);
		mpop_mbox_uidl(buf + sp.offset, sp.header_end - sp.offset, NULL, uidl);
		g_assert(k < a.n_msgs && a.msgs[k].offset == sp.offset);
		g_assert(a.msgs[k].length == sp.length && a.msgs[k].from_len == sp.offset - from);
		g_assert(a.msgs[k].size == mpop_stuffer_measure(opts, buf + sp.offset, sp.length));
		g_assert(strcmp(a.msgs[k].uidl, uidl) == 0);
		from = sp.end;
	}
	g_assert(k == a.n_msgs);
	k = a.n_msgs > 0 ? pick % a.n_msgs : 0;
	if (a.n_msgs > 0) {
		/* from 0 is the whole file again */
		o.from = a.msgs[k].offset - a.msgs[k].from_len;
		o.prev_end = k > 0 ? a.msgs[k - 1].offset + a.msgs[k - 1].length : a.first_from;
		o.first_from = a.first_from;
		o.window = 1 + pick % 13;
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
		check_index(p, &opts, buf, len, data[0] >> 3);
	}
	return 0;
}
