/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench: the checking reader of multi-line answers, as a state machine over chunks. */
#include "mpopd-bench.h"

#include <string.h>

enum {
	BODY_LINE_START,
	BODY_DOT,    /* a line started with "." */
	BODY_DOT_CR, /* ".CR" at a line start: the terminator if LF follows */
	BODY_IN_LINE,
};

static void
defect(BenchBody *b, const char *what)
{
	if (b->defect == NULL)
		b->defect = what;
}

static void
add(BenchBody *b, GString *keep, const char *p, size_t n)
{
	b->octets += n;
	if (keep != NULL)
		g_string_append_len(keep, p, (gssize)n);
}

void
bench_body_init(BenchBody *b)
{
	*b = (BenchBody){.state = BODY_LINE_START};
}

/* RFC 1939 §3: a line that starts with "." is sent with one more "."; ".CRLF" ends the
 * answer. A lone "." line of the message that was not stuffed ends it early, which the
 * octet count against LIST catches; a line ".x" can only come from a server that stuffs
 * nothing, and a bare LF from one that sends stored line ends. */
size_t
bench_body_feed(BenchBody *b, const char *data, size_t n, GString *keep, gboolean *out_done)
{
	const char *p = data, *end = data + n, *nl;

	*out_done = FALSE;
	while (p < end) {
		switch (b->state) {
		case BODY_LINE_START:
			b->state = *p == '.' ? BODY_DOT : BODY_IN_LINE;
			p += *p == '.';
			break;
		case BODY_DOT:
			if (*p == '\r') {
				b->state = BODY_DOT_CR;
				p++;
				break;
			}
			if (*p == '\n') {
				defect(b, "bare LF line end");
				*out_done = TRUE;
				return (size_t)(p + 1 - data);
			}
			if (*p == '.')
				p++; /* the stuffed dot: the next one is the message's */
			else
				defect(b, "a line starting with \".\" not byte-stuffed");
			add(b, keep, ".", 1);
			b->prev_cr = FALSE;
			b->state = BODY_IN_LINE;
			break;
		case BODY_DOT_CR:
			if (*p == '\n') {
				*out_done = TRUE;
				return (size_t)(p + 1 - data);
			}
			defect(b, "a line starting with \".\" not byte-stuffed");
			add(b, keep, ".\r", 2);
			b->prev_cr = TRUE;
			b->state = BODY_IN_LINE;
			break;
		case BODY_IN_LINE:
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL) {
				add(b, keep, p, (size_t)(end - p));
				b->prev_cr = end[-1] == '\r';
				p = end;
				break;
			}
			if (nl == p ? !b->prev_cr : nl[-1] != '\r')
				defect(b, "bare LF line end");
			add(b, keep, p, (size_t)(nl + 1 - p));
			b->lines++;
			b->prev_cr = FALSE;
			b->state = BODY_LINE_START;
			p = nl + 1;
			break;
		default:
			g_assert_not_reached();
		}
	}
	return n;
}
