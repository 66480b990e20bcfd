/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the persisted mbox index reader (mbox-store.c) on untrusted file bytes. */
#include "mailbox-mbox.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* Whatever it accepts is within its own bounds, has valid unique UIDLs, and formats back
 * to exactly the bytes it was read from. Inputs that start with anything but the magic get
 * it put in front (with a correct checksum appended) half the time, so that the parser's
 * checks past the checksum are reached. */
int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	GStringChunk *strings = g_string_chunk_new(256);
	GByteArray *in = g_byte_array_new();
	MpopMboxStore st;
	const char *why = NULL;

	if (size > 0 && (data[0] & 1) && size >= 8) {
		guint64 sum;
		g_byte_array_append(in, (const guint8 *)"mpopdidx\1\0\0\0", 12);
		g_byte_array_append(in, data + 1, (guint)(size - 1));
		/* the same checksum the writer appends (mbox-store.c) */
		sum = mpop_mbox_hash64(MPOP_MBOX_STORE_SEED, in->data, in->len);
		for (int i = 0; i < 8; i++, sum >>= 8) {
			guint8 c = (guint8)sum;
			g_byte_array_append(in, &c, 1);
		}
	} else {
		g_byte_array_append(in, data, (guint)size);
	}
	if (mpop_mbox_store_parse((const char *)in->data, in->len, strings, &st, &why)) {
		GByteArray *out = mpop_mbox_store_format(&st);
		guint64 floor = st.first_from;
		g_assert(st.first_from <= st.size && st.n_retired <= MPOP_MBOX_RETIRED_MAX);
		for (guint i = 0; i < st.n_msgs; i++) {
			const MpopMessage *m = &st.msgs[i];
			g_assert(m->offset - m->from_len >= floor);
			g_assert(m->offset + m->length <= st.size);
			g_assert(mpop_uidl_valid(m->uidl, strlen(m->uidl)));
			floor = m->offset + m->length;
		}
		g_assert(out->len == in->len && memcmp(out->data, in->data, in->len) == 0);
		g_byte_array_unref(out);
		mpop_mbox_store_clear(&st);
	} else {
		g_assert(why != NULL);
	}
	g_byte_array_unref(in);
	g_string_chunk_free(strings);
	return 0;
}
