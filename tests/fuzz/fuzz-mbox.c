/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the mbox scanner, the UIDL picker and the size count on untrusted mailbox bytes. */
#include "mailbox-mbox.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The first byte picks the rules: the literal fast path or the regex path. */
int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static MpopMboxParser *parsers[2];
	static const char *const hide[] = {"Status", "Content-Length", NULL};
	const char *buf;
	size_t len;
	guint64 from;
	MpopMboxParser *p;

	if (parsers[0] == NULL) {
		parsers[0] = mpop_mbox_parser_new("^From ", "^\\s*$", NULL);
		parsers[1] = mpop_mbox_parser_new("^From\\s", "^[ \\t]*$", NULL);
	}
	if (size == 0)
		return 0;
	p = parsers[data[0] & 1];
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
	return 0;
}
