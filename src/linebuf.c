/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Bounded command line reader: CRLF or bare LF, NUL => invalid, overlong => one error. */
#include "linebuf.h"

#include <string.h>

/* The length a line occupies on the wire when terminated by CRLF: a bare LF counts as if it
 * were CRLF, so the limit does not depend on which line end the client uses. */
static size_t
wire_len(size_t content_len)
{
	return content_len + 2;
}

void
mpop_linebuf_init(MpopLinebuf *lb, size_t max_line)
{
	memset(lb, 0, sizeof(*lb));
	/* RFC 2449 §4: 255 octets including CRLF. lb->line cannot hold more, and a limit
	 * below 2 could not even admit an empty line. */
	if (max_line < 2 || max_line > MPOP_LINE_MAX)
		max_line = MPOP_LINE_MAX;
	lb->max = max_line;
}

static void
compact(MpopLinebuf *lb)
{
	if (lb->start == 0)
		return;
	memmove(lb->buf, lb->buf + lb->start, lb->end - lb->start);
	lb->end -= lb->start;
	lb->start = 0;
}

char *
mpop_linebuf_space(MpopLinebuf *lb, size_t *out_len)
{
	compact(lb);
	*out_len = sizeof(lb->buf) - lb->end;
	return lb->buf + lb->end;
}

void
mpop_linebuf_commit(MpopLinebuf *lb, size_t n)
{
	g_assert(n <= sizeof(lb->buf) - lb->end);
	lb->end += n;
}

size_t
mpop_linebuf_push(MpopLinebuf *lb, const char *data, size_t len)
{
	size_t room;
	char *dst = mpop_linebuf_space(lb, &room);
	size_t n = MIN(len, room);

	if (n > 0)
		memcpy(dst, data, n);
	lb->end += n;
	return n;
}

/* Drop bytes of an over-long line up to and including its LF. TRUE when the LF was found. */
static gboolean
skip_discarded(MpopLinebuf *lb)
{
	const char *p = lb->buf + lb->start;
	const char *lf = memchr(p, '\n', lb->end - lb->start);

	if (lf == NULL) {
		lb->start = lb->end = 0;
		return FALSE;
	}
	lb->start = (size_t)(lf - lb->buf) + 1;
	lb->discarding = FALSE;
	return TRUE;
}

MpopLineStatus
mpop_linebuf_next(MpopLinebuf *lb, const char **out_line, size_t *out_len)
{
	const char *p, *lf;
	size_t avail, n;

	if (lb->discarding && !skip_discarded(lb))
		return MPOP_LINE_NONE;

	p = lb->buf + lb->start;
	avail = lb->end - lb->start;
	lf = memchr(p, '\n', avail);
	if (lf == NULL) {
		/* An unterminated line that is already too long is reported now, so that the
		 * buffer never fills up with one line and the error does not wait for a LF
		 * that may never come. A trailing CR may still be the CR of CRLF. */
		n = avail;
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (wire_len(n) <= lb->max)
			return MPOP_LINE_NONE;
		lb->start = lb->end = 0;
		lb->discarding = TRUE;
		return MPOP_LINE_TOOLONG;
	}

	n = (size_t)(lf - p);
	lb->start += n + 1;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	/* Length wins over NUL so the result does not depend on how the line was chunked. */
	if (wire_len(n) > lb->max)
		return MPOP_LINE_TOOLONG;
	if (memchr(p, '\0', n) != NULL)
		return MPOP_LINE_INVALID;
	memcpy(lb->line, p, n);
	lb->line[n] = '\0';
	*out_line = lb->line;
	*out_len = n;
	return MPOP_LINE_OK;
}

const char *
mpop_linebuf_pending(const MpopLinebuf *lb, size_t *out_len)
{
	const char *p = lb->buf + lb->start;
	size_t avail = lb->end - lb->start;

	/* The rest of a line being discarded is not input anyone should see. */
	if (lb->discarding) {
		const char *lf = memchr(p, '\n', avail);
		if (lf == NULL) {
			*out_len = 0;
			return lb->buf + lb->end;
		}
		avail -= (size_t)(lf + 1 - p);
		p = lf + 1;
	}
	*out_len = avail;
	return p;
}

void
mpop_linebuf_clear(MpopLinebuf *lb)
{
	lb->start = lb->end = 0;
	lb->discarding = FALSE;
}
