/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Streaming message conversion for RETR/TOP: LF -> CRLF, byte-stuffing, TOP line limit. */
#include "dotstuff.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

/*
 * The message is a sequence of lines split at LF; a CR directly before a LF belongs to the
 * line end, any other CR is data (also a CR that ends the message). Each line is sent as
 * content + CRLF, with an extra '.' in front when the content starts with '.'
 * (RFC 1939 §3). st->size counts what is sent before stuffing.
 *
 * The start of a line decides what happens to it (hidden header, mboxrd unquoting, dot).
 * While undecided the prefix is kept in st->hold (st->bol is TRUE); the decision only ever
 * looks at the prefix, so it is the same whatever the chunking.
 */

#define HOLD_MAX (sizeof(((MpopStuffer *)0)->hold))

typedef enum {
	DEC_NONE,    /* need more bytes */
	DEC_EMPTY,   /* an empty line */
	DEC_EMIT,    /* send as is */
	DEC_STUFF,   /* send with a '.' in front */
	DEC_UNQUOTE, /* mboxrd ">+From ": send without the first '>' */
	DEC_DROP,    /* hidden header line or its continuation */
} Decision;
/* A lone CR kept as data (not followed by LF). */
static const char lone_cr[] = "\r";

static inline void
put(char **o, const char *data, size_t n)
{
	if (*o != NULL) {
		memcpy(*o, data, n);
		*o += n;
	}
}

/* A bit for the first character of a header name, the same for both cases of a letter
 * (other characters may share bits: it only filters). */
static inline guint32
first_bit(char c)
{
	return 1u << ((guint8)(c | 0x20) & 31);
}

void
mpop_stuffer_init(MpopStuffer *st, const MpopStuffOpts *opts, gint64 top_lines)
{
	memset(st, 0, sizeof(*st));
	if (opts != NULL)
		st->opts = *opts;
	st->bol = TRUE;
	st->line_empty = TRUE;
	st->body_lines = top_lines < 0 ? -1 : top_lines;
	for (const char *const *n = st->opts.hide_headers; n != NULL && *n != NULL; n++)
		st->hide_first |= first_bit((*n)[0]);
}

typedef enum { HIDE_NO, HIDE_YES, HIDE_MAYBE } HideMatch;

static inline char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
}

static HideMatch
hide_match_one(const char *name, const char *p, size_t n)
{
	size_t k = 0;

	/* Header names are ASCII; this runs for every header line of every message while
	 * the index measures sizes, so no function call per byte. */
	for (; name[k] != '\0'; k++) {
		if (k == n)
			return HIDE_MAYBE;
		if ((name[k] | 0x20) != (p[k] | 0x20) || ascii_lower(name[k]) != ascii_lower(p[k]))
			return HIDE_NO;
	}
	while (k < n && (p[k] == ' ' || p[k] == '\t'))
		k++;
	if (k == n)
		return HIDE_MAYBE;
	return p[k] == ':' ? HIDE_YES : HIDE_NO;
}

/* Does the header line starting with p (n bytes seen) name a hidden field? Only the first
 * HOLD_MAX bytes count, because that is all a byte-at-a-time feed can hold back. Lines
 * starting with '.' or '>' are never hidden, so those decisions need no hold space. */
static HideMatch
hide_match(const MpopStuffer *st, const char *p, size_t n, gboolean terminated)
{
	const char *const *names = st->opts.hide_headers;
	HideMatch res = HIDE_NO;

	if (p[0] == '.' || p[0] == '>' || !(st->hide_first & first_bit(p[0])))
		return HIDE_NO;
	if (n >= HOLD_MAX) {
		n = HOLD_MAX;
		terminated = TRUE;
	}
	for (; *names != NULL; names++) {
		HideMatch m;
		if ((*names)[0] == '\0')
			continue;
		m = hide_match_one(*names, p, n);
		if (m == HIDE_YES)
			return HIDE_YES;
		if (m == HIDE_MAYBE && !terminated)
			res = HIDE_MAYBE;
	}
	return res;
}

/* mboxrd (">+From " loses one '>'); p[0] == '>'. */
static Decision
unquote_match(const char *p, size_t n, gboolean terminated)
{
	static const char from[] = "From ";
	size_t j = 1, k;

	while (j < n && p[j] == '>')
		j++;
	for (k = 0; k < 5 && j + k < n; k++)
		if (p[j + k] != from[k])
			return DEC_EMIT;
	if (k == 5)
		return DEC_UNQUOTE;
	return terminated ? DEC_EMIT : DEC_NONE;
}

static Decision
classify(const MpopStuffer *st, const char *p, size_t n, gboolean terminated)
{
	if (n == 0)
		return terminated ? DEC_EMPTY : DEC_NONE;
	if (!st->in_body && st->opts.hide_headers != NULL) {
		/* RFC 5322 §2.2.3: continuation lines start with WSP. */
		if (st->hiding && (p[0] == ' ' || p[0] == '\t'))
			return DEC_DROP;
		switch (hide_match(st, p, n, terminated)) {
		case HIDE_YES:
			return DEC_DROP;
		case HIDE_MAYBE:
			return DEC_NONE;
		case HIDE_NO:
			break;
		}
	}
	if (p[0] == '.')
		return DEC_STUFF;
	if (p[0] == '>' && st->opts.unquote_from)
		return unquote_match(p, n, terminated);
	return DEC_EMIT;
}

/* Carry out a decision at the start of a line; returns how many content bytes to skip. */
static size_t
act(MpopStuffer *st, Decision dec, char **o)
{
	st->bol = FALSE;
	st->hiding = dec == DEC_DROP;
	if (dec != DEC_EMPTY)
		st->line_empty = FALSE;
	if (dec == DEC_STUFF)
		put(o, ".", 1);
	return dec == DEC_UNQUOTE ? 1 : 0;
}

static void
flush_hold(MpopStuffer *st, Decision dec, char **o)
{
	size_t skip = act(st, dec, o);

	if (!st->hiding && st->hold_len > skip) {
		put(o, st->hold + skip, st->hold_len - skip);
		st->size += st->hold_len - skip;
	}
	st->hold_len = 0;
}

/* An undecided prefix of '>' characters: all but one are sent whatever the decision, so
 * only one is held and a run of any length fits (the bytes are all the same). */
static void
shrink_hold(MpopStuffer *st, char **o)
{
	size_t j = 1;

	if (st->hold_len < 2 || st->hold[0] != '>')
		return;
	while (j < st->hold_len && st->hold[j] == '>')
		j++;
	put(o, st->hold, j - 1);
	st->size += j - 1;
	st->line_empty = FALSE;
	memmove(st->hold + 1, st->hold + j, st->hold_len - j);
	st->hold_len -= j - 1;
}

/* Line content p..cend at the start of a line. Returns where the decided line's content
 * continues; st->bol stays TRUE when more bytes are needed (all of p..cend then held). */
static const char *
line_start(MpopStuffer *st, const char *p, const char *cend, gboolean terminated, char **o)
{
	Decision dec;

	if (st->hold_len == 0) {
		dec = classify(st, p, (size_t)(cend - p), terminated);
		if (dec != DEC_NONE)
			return p + act(st, dec, o);
	}
	for (;;) {
		size_t n = MIN((size_t)(cend - p), HOLD_MAX - st->hold_len);
		memcpy(st->hold + st->hold_len, p, n);
		st->hold_len += n;
		p += n;
		dec = classify(st, st->hold, st->hold_len, terminated && p == cend);
		if (dec != DEC_NONE) {
			flush_hold(st, dec, o);
			return p;
		}
		shrink_hold(st, o);
		/* An undecided hold is short: hide_match() decides at HOLD_MAX bytes and a
		 * '>' run shrinks to one byte. */
		g_assert(st->hold_len < HOLD_MAX);
		if (p == cend)
			return p;
	}
}

/* Content bytes p..cend of the current line; terminated: cend is the end of the line. */
static void
content(MpopStuffer *st, const char *p, const char *cend, gboolean terminated, char **o)
{
	if (st->bol) {
		p = line_start(st, p, cend, terminated, o);
		if (st->bol)
			return;
	}
	if (!st->hiding && cend > p) {
		put(o, p, (size_t)(cend - p));
		st->size += (size_t)(cend - p);
	}
}

static void
end_line(MpopStuffer *st, char **o)
{
	if (st->bol)
		content(st, st->hold, st->hold, TRUE, o); /* decide with what is held */
	if (!st->hiding) {
		put(o, "\r\n", 2);
		st->size += 2;
	}
	if (!st->in_body) {
		/* RFC 1939 §7: TOP sends the header, the blank line, then n body lines. */
		if (st->line_empty) {
			st->in_body = TRUE;
			st->hiding = FALSE;
			if (st->body_lines == 0)
				st->done = TRUE;
		}
	} else if (st->body_lines > 0 && --st->body_lines == 0) {
		st->done = TRUE;
	}
	st->bol = TRUE;
	st->line_empty = TRUE;
	st->hold_len = 0;
}

#ifdef __SSE2__
/* RETR's whole body lines (no TOP limit, output wanted), 16 bytes at a time: a block without
 * LF is stored as it is, the first LF in a block ends the line. The store of a block may
 * run past the line's end; what follows overwrites it or is never committed. Stores stay
 * within MPOP_STUFF_OUT_MAX: a block is stored only with 16 input bytes left, and the output
 * so far is at most twice the input consumed. Stops at a line start as body_lines_fast(). */
static const char *
body_lines_vec(MpopStuffer *st, const char *p, const char *end, char **op)
{
	const __m128i nl = _mm_set1_epi8('\n');
	char *o = *op;
	guint64 size = st->size;

	while (p < end) {
		const char *q = p;
		char *line_out = o;

		if (*p == '>' && st->opts.unquote_from)
			break;
		if (*p == '.') /* RFC 1939 §3 */
			*o++ = '.';
		for (;;) {
			__m128i v;
			unsigned m;

			if (end - q < 16) {
				const char *lf = memchr(q, '\n', (size_t)(end - q));
				/* Not a whole line: it starts the next call. */
				if (lf == NULL) {
					*op = line_out;
					st->size = size;
					return p;
				}
				memcpy(o, q, (size_t)(lf - q));
				o += lf - q;
				q = lf;
				break;
			}
			v = _mm_loadu_si128((const __m128i *)q);
			m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
			_mm_storeu_si128((__m128i *)o, v);
			if (m == 0) {
				o += 16;
				q += 16;
				continue;
			}
			o += __builtin_ctz(m);
			q += __builtin_ctz(m);
			break;
		}
		/* q is the LF; a CR before it was copied and is the line end's own. */
		if (q == p || q[-1] != '\r')
			*o++ = '\r';
		*o++ = '\n';
		size += (guint64)(o - line_out) - (*p == '.');
		p = q + 1;
	}
	st->size = size;
	*op = o;
	return p;
}
#endif

/* The hot path of RETR: whole body lines that need no hold, one memchr and one memcpy each.
 * Stops before a line it cannot finish alone (no LF yet, or a possible mboxrd quote). */
static const char *
body_lines_fast(MpopStuffer *st, const char *p, const char *end, char **op)
{
	char *o = *op;
	guint64 size = st->size;

#ifdef __SSE2__
	if (o != NULL && st->body_lines < 0)
		return body_lines_vec(st, p, end, op);
#endif
	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n;

		if (lf == NULL || (*p == '>' && st->opts.unquote_from))
			break;
		n = (size_t)(lf - p);
		if (n > 0 && lf[-1] == '\r')
			n--;
		if (o != NULL) {
			if (*p == '.') /* RFC 1939 §3 */
				*o++ = '.';
			memcpy(o, p, n);
			o += n;
			*o++ = '\r';
			*o++ = '\n';
		}
		size += n + 2;
		p = lf + 1;
		if (st->body_lines > 0 && --st->body_lines == 0) {
			st->done = TRUE;
			break;
		}
	}
	st->size = size;
	*op = o;
	return p;
}

/* One line, or what the chunk holds of it, starting at p. Returns where the next starts. */
static const char *
one_line(MpopStuffer *st, const char *p, const char *end, char **o)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	const char *cend = lf != NULL ? lf : end;
	gboolean cr = cend > p && cend[-1] == '\r';

	/* The CR of CRLF is no data; at the chunk end it may still be. */
	if (cr)
		cend--;
	content(st, p, cend, lf != NULL, o);
	if (lf == NULL) {
		st->pending_cr = cr;
		return end;
	}
	end_line(st, o);
	return lf + 1;
}

size_t
mpop_stuffer_feed(MpopStuffer *st, const char *in, size_t len, char *out)
{
	const char *p = in, *end = in + len;
	char *o = out;

	if (st->done || len == 0)
		return 0;
	if (st->pending_cr) {
		st->pending_cr = FALSE;
		if (*p == '\n') {
			end_line(st, &o);
			p++;
		} else {
			content(st, lone_cr, lone_cr + 1, FALSE, &o); /* a lone CR is data */
		}
	}
	while (p < end && !st->done) {
		if (st->in_body && st->bol && st->hold_len == 0) {
			p = body_lines_fast(st, p, end, &o);
			if (p == end || st->done)
				break;
		}
		p = one_line(st, p, end, &o);
	}
	return out != NULL ? (size_t)(o - out) : 0;
}

size_t
mpop_stuffer_finish(MpopStuffer *st, char *out)
{
	char *o = out;

	if (st->done)
		return 0;
	if (st->pending_cr) {
		st->pending_cr = FALSE;
		content(st, lone_cr, lone_cr + 1, FALSE, &o);
	}
	/* A last line without LF still gets its CRLF, so the client receives size octets. */
	if (!st->bol || st->hold_len > 0)
		end_line(st, &o);
	return out != NULL ? (size_t)(o - out) : 0;
}

/* Byte counters in 16-byte vectors (a GNU C extension: SSE2 on x86-64, NEON on arm64). */
#define VEC 16
typedef unsigned char Vec __attribute__((vector_size(VEC)));
typedef guint64 Vec64 __attribute__((vector_size(VEC)));

static inline Vec
load_vec(const char *p)
{
	Vec v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The sum of the byte lanes (each at most 255). */
static inline guint64
vec_sum(Vec v)
{
	const guint64 m = 0x00ff00ff00ff00ffull;
	Vec64 w = (Vec64)v;
	guint64 s = 0;

	w = (w & m) + ((w >> 8) & m); /* four 16-bit sums per word, each < 512 */
	for (size_t i = 0; i < VEC / 8; i++)
		s += (w[i] * 0x0001000100010001ull) >> 48;
	return s;
}

/* LFs in p[0..n), and those among them that follow a CR (p[-1] is not looked at). */
static void
count_line_ends(const char *p, size_t n, guint64 *out_lf, guint64 *out_crlf)
{
	const Vec zero = {0}, lf = zero + '\n', cr = zero + '\r';
	guint64 nl = 0, ncrlf = 0;
	size_t i = 1;

	/* A lane counts up to 255 before the counters are emptied. */
	while (n >= VEC + 1 && i <= n - VEC) {
		Vec a = {0}, b = {0};
		for (int k = 0; k < 255 && i <= n - VEC; k++, i += VEC) {
			Vec is_lf = (Vec)(load_vec(p + i) == lf);
			a -= is_lf;
			b -= is_lf & (Vec)(load_vec(p + i - 1) == cr);
		}
		nl += vec_sum(a);
		ncrlf += vec_sum(b);
	}
	if (n > 0 && p[0] == '\n')
		nl++;
	for (; i < n; i++) {
		if (p[i] == '\n') {
			nl++;
			ncrlf += p[i - 1] == '\r';
		}
	}
	*out_lf = nl;
	*out_crlf = ncrlf;
}

/* Body lines that mboxrd sends one '>' shorter: ">+From " at a line start. */
static guint64
count_quoted(const char *p, size_t n)
{
	size_t q = 0;
	guint64 count = 0;

	while (q < n) {
		const char *s = memchr(p + q, '>', n - q);

		if (s == NULL)
			break;
		q = (size_t)(s - p);
		if (q == 0 || p[q - 1] == '\n') {
			while (q < n && p[q] == '>')
				q++;
			if (n - q >= 5 && memcmp(p + q, "From ", 5) == 0)
				count++;
		} else {
			q++;
		}
	}
	return count;
}

/*
 * The size the stuffer would count for whole body lines (at a line start, past the header,
 * n bytes ending with LF): every LF becomes CRLF unless a CR is already there, mboxrd drops
 * one '>' of each quoted From line. The index measures every message this way in one vector
 * pass instead of a call per line; the fuzz target and unit tests hold it to the stuffer's
 * own count.
 */
static guint64
body_size(const MpopStuffOpts *opts, const char *p, size_t n)
{
	guint64 lf, crlf, size;

	count_line_ends(p, n, &lf, &crlf);
	size = n + lf - crlf;
	if (opts->unquote_from)
		size -= count_quoted(p, n);
	return size;
}

/* Where the body starts: past the first empty line (CR allowed), or len without one. */
static size_t
body_offset(const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		if (lf == NULL)
			return len;
		if (lf == p || (lf == p + 1 && *p == '\r'))
			return (size_t)(lf + 1 - data);
		p = lf + 1;
	}
	return len;
}

void
mpop_stuffer_count(MpopStuffer *st, const char *p, size_t n)
{
	/* The header by the stuffer itself (hidden fields, quoting), up to its first empty
	 * line; then whole body lines by counting, a last partial line by the stuffer. */
	if (!st->in_body && st->bol) {
		size_t k = body_offset(p, n);
		mpop_stuffer_feed(st, p, k, NULL);
		p += k;
		n -= k;
	}
	while (n > 0) {
		const char *lf;
		size_t k;

		if (st->in_body && st->bol && st->hold_len == 0 && !st->pending_cr &&
		    st->body_lines < 0) {
			lf = memrchr(p, '\n', n);
			k = lf != NULL ? (size_t)(lf - p) + 1 : 0;
			st->size += body_size(&st->opts, p, k);
			mpop_stuffer_feed(st, p + k, n - k, NULL);
			return;
		}
		lf = memchr(p, '\n', n); /* one line through the stuffer, then look again */
		k = lf != NULL ? (size_t)(lf - p) + 1 : n;
		mpop_stuffer_feed(st, p, k, NULL);
		p += k;
		n -= k;
	}
}

guint64
mpop_stuffer_measure(const MpopStuffOpts *opts, const char *data, size_t len)
{
	MpopStuffer st;

	mpop_stuffer_init(&st, opts, -1);
	mpop_stuffer_count(&st, data, len);
	mpop_stuffer_finish(&st, NULL);
	return st.size;
}
