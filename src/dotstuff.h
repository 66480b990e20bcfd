/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Streaming message conversion for RETR/TOP: LF -> CRLF, byte-stuffing, TOP line limit,
 * with exact octet counting (RFC 1939 §3, §5, §7). */
#pragma once

#include <glib.h>
#include <stddef.h>

typedef struct {
	gboolean unquote_from;		 /* mboxrd: ">From " -> "From ", ">>From " -> ">From " */
	const char *const *hide_headers; /* header names (case-insensitive) not to send; NULL */
} MpopStuffOpts;

typedef struct {
	MpopStuffOpts opts;
	gboolean bol;	     /* at the beginning of a line */
	gboolean pending_cr; /* the last byte seen was CR */
	gboolean in_body;    /* past the empty line that ends the header */
	gboolean line_empty; /* nothing but (maybe) CR on this line so far */
	gint64 body_lines;   /* body lines still to send; < 0: unlimited */
	gboolean done;	     /* TOP limit reached: ignore further input */
	gboolean hiding;     /* inside a hidden header (and its continuation lines) */
	char hold[80];	     /* start of a line held back to decide quoting / hiding */
	size_t hold_len;
	guint64 size;	    /* octets produced before stuffing (CRLF line ends) */
	guint32 hide_first; /* first letters of the hidden names, a bit each */
} MpopStuffer;

/* top_lines < 0 means the whole message (RETR). */
void mpop_stuffer_init(MpopStuffer *st, const MpopStuffOpts *opts, gint64 top_lines);

/* The largest output mpop_stuffer_feed() can produce for len input bytes. */
#define MPOP_STUFF_OUT_MAX(len) (2 * (len) + 2 * 80 + 8)

/* Convert len bytes. out may be NULL to only count (st->size). Returns bytes written to
 * out (which must hold MPOP_STUFF_OUT_MAX(len)). */
size_t mpop_stuffer_feed(MpopStuffer *st, const char *in, size_t len, char *out);

/* End of message: terminate a last line that had no LF with CRLF (counted in size). Writes
 * at most 2 + 80 bytes... Returns bytes written. Does not write the ".\r\n" terminator. */
size_t mpop_stuffer_finish(MpopStuffer *st, char *out);

/* Size in octets as sent for a whole buffer (RETR size), convenience for tests/backends. */
guint64 mpop_stuffer_measure(const MpopStuffOpts *opts, const char *data, size_t len);

/* Count len more bytes of a message into st->size, as mpop_stuffer_feed() without output
 * does, whole body lines by a vector count: any chunking gives the same size (the index
 * measures a long message a window at a time). */
void mpop_stuffer_count(MpopStuffer *st, const char *data, size_t len);
