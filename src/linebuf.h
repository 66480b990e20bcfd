/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Bounded command line reader: CRLF or bare LF, NUL => invalid, overlong => one error. */
#pragma once

#include <glib.h>
#include <stddef.h>

/* RFC 2449 §4: a command line is at most 255 octets including CRLF. */
#define MPOP_LINE_MAX 255
/* How many not-yet-consumed bytes (pipelined commands) the buffer holds. */
#define MPOP_LINEBUF_SIZE 4096

typedef enum {
	MPOP_LINE_NONE,	   /* no complete line buffered: read more */
	MPOP_LINE_OK,	   /* *out_line is a NUL-terminated line without its CRLF/LF */
	MPOP_LINE_TOOLONG, /* one over-long line was discarded (reported once) */
	MPOP_LINE_INVALID, /* a line containing NUL was discarded */
} MpopLineStatus;

typedef struct {
	char buf[MPOP_LINEBUF_SIZE];
	size_t start;	     /* first unconsumed byte */
	size_t end;	     /* one past the last buffered byte */
	size_t max;	     /* maximum line length including CRLF */
	gboolean discarding; /* inside an over-long line: drop to its LF */
	char line[MPOP_LINE_MAX + 1];
} MpopLinebuf;

void mpop_linebuf_init(MpopLinebuf *lb, size_t max_line);

/* Where the caller may read new bytes into, and how many (compacts first). */
char *mpop_linebuf_space(MpopLinebuf *lb, size_t *out_len);
/* Account for n bytes written at mpop_linebuf_space(). */
void mpop_linebuf_commit(MpopLinebuf *lb, size_t n);
/* Copy data in (tests, privsep hand-over). Returns bytes taken (less when full). */
size_t mpop_linebuf_push(MpopLinebuf *lb, const char *data, size_t len);

/* Take the next line. For MPOP_LINE_OK, *out_line points into lb and stays valid until the
 * next call; *out_len excludes the line end. */
MpopLineStatus mpop_linebuf_next(MpopLinebuf *lb, const char **out_line, size_t *out_len);

/* Bytes received but not yet returned as lines (pipelined input). */
const char *mpop_linebuf_pending(const MpopLinebuf *lb, size_t *out_len);
/* Drop all pending input (after STLS: RFC 2595 §4). */
void mpop_linebuf_clear(MpopLinebuf *lb);
