/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals of the mbox backend exposed for tests, fuzzing and the benchmark. */
#pragma once

#include <glib.h>
#include "mailbox.h"

/* Compiled message_start / message_end rules. */
typedef struct MpopMboxParser MpopMboxParser;

/* start: a literal ("^From " or "From ": a line prefix, the fast path) or a regex; end:
 * "^\s*$" style (whitespace-only line, the fast path) or a regex. Regexes see one line
 * without its CR/LF, as the Perl original did. NULL or "" means the default. */
MpopMboxParser *mpop_mbox_parser_new(const char *message_start, const char *message_end,
				     GError **error);
void mpop_mbox_parser_free(MpopMboxParser *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopMboxParser, mpop_mbox_parser_free)

typedef struct {
	guint64 from_offset; /* the From line */
	guint64 offset;	     /* first content byte */
	guint64 length;	     /* content bytes (without the separator line) */
	guint64 end;	     /* next message's From line, or the end of the data */
	guint64 header_end;  /* end of the header block (where the empty line starts) */
} MpopMboxSpan;

/* Offset of the first message's From line in data, or len when there is none (all of it
 * is text before the first message, which is never touched). */
guint64 mpop_mbox_first(const MpopMboxParser *p, const char *data, size_t len);

/* The message whose From line starts at from (< len). out->end is where the next starts. */
void mpop_mbox_message(const MpopMboxParser *p, const char *data, size_t len, guint64 from,
		       MpopMboxSpan *out);

/* The UIDL of a message by the uidl_source list (NULL: x-uidl message-id digest), written
 * NUL-terminated to out (no allocation per message): valid (RFC 1939 §7), not yet made
 * unique. Returns its length. */
size_t mpop_mbox_uidl(const char *content, size_t header_len, const char *const *sources,
		      char out[MPOP_UIDL_MAX + 1]);
