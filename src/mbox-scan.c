/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The mbox scanner: message boundaries by message_start/message_end, headers and UIDLs. */
#include "mailbox-mbox.h"
#include "uidl-compat.h"
#include "util.h"

#include <string.h>

struct MpopMboxParser {
	char *start_nl; /* "\n" + literal start prefix, NULL with start_re */
	size_t start_len;
	GRegex *start_re;
	GRegex *end_re; /* NULL: a whitespace-only line */
};

/* ---- the scanner (pure, over a buffer) ---- */

static gboolean
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static gboolean
regex_line(const GRegex *re, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	return g_regex_match_full(re, s, (gssize)n, 0, 0, NULL, NULL);
}

/* A line (without LF) that may precede a message start. */
static gboolean
match_end(const MpopMboxParser *p, const char *s, size_t n)
{
	if (p->end_re != NULL)
		return regex_line(p->end_re, s, n);
	for (size_t i = 0; i < n; i++)
		if (!is_wsp(s[i]))
			return FALSE;
	return TRUE;
}

static gboolean
match_start(const MpopMboxParser *p, const char *s, size_t n)
{
	if (p->start_re != NULL)
		return regex_line(p->start_re, s, n);
	return n >= p->start_len && memcmp(s, p->start_nl + 1, p->start_len) == 0;
}

static gboolean
is_literal(const char *s)
{
	return s[strcspn(s, ".[]()*+?{}|\\$^")] == '\0';
}

/* The message_end values that mean "a line of white space only": empty, the Perl 3.x
 * default and the Perl 2.x default, which 2.x matched with the newline still on the line
 * (so an empty line matched there too). */
static gboolean
is_blank_rule(const char *s)
{
	return s == NULL || s[0] == '\0' || strcmp(s, "^\\s*$") == 0 || strcmp(s, "^\\s+$") == 0 ||
	       strcmp(s, "\\s*") == 0;
}

/* A rule as a GRegex: PCRE, bytes rather than UTF-8, matched against one line without its
 * LF (and a CR before it). */
static GRegex *
compile(const char *re, const char *what, GRegexCompileFlags extra, GError **error)
{
	g_autoptr(GError) e = NULL;
	GRegex *r = g_regex_new(re, G_REGEX_RAW | G_REGEX_OPTIMIZE | extra, 0, &e);

	if (r == NULL)
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s %s: %s", what, re,
			    e->message);
	return r;
}

MpopMboxParser *
mpop_mbox_parser_new(const char *message_start, const char *message_end, GError **error)
{
	g_autoptr(MpopMboxParser) p = g_new0(MpopMboxParser, 1);
	const char *start =
		message_start != NULL && message_start[0] != '\0' ? message_start : "From ";
	const char *lit = start[0] == '^' ? start + 1 : start;

	/* message_start matches at the beginning of a line (G_REGEX_ANCHORED), as ^From did in
	 * Perl; a plain prefix takes the fast path. */
	if (lit[0] != '\0' && is_literal(lit)) {
		p->start_nl = g_strconcat("\n", lit, NULL);
		p->start_len = strlen(lit);
	} else {
		p->start_re = compile(start, "message_start", G_REGEX_ANCHORED, error);
		if (p->start_re == NULL)
			return NULL;
	}
	/* message_end must match the whole line: END is a line "END", not any line containing
	 * it. The rule is compiled alone first so that its own errors are reported as such,
	 * then inside \A(?:...)\z. */
	if (!is_blank_rule(message_end)) {
		g_autoptr(GRegex) alone = compile(message_end, "message_end", 0, error);
		g_autofree char *whole = NULL;

		if (alone == NULL)
			return NULL;
		whole = g_strconcat("\\A(?:", message_end, ")\\z", NULL);
		p->end_re = compile(whole, "message_end", 0, error);
		if (p->end_re == NULL)
			return NULL;
	}
	return g_steal_pointer(&p);
}

const char *
mpop_mbox_end_rule_note(const char *message_end)
{
	size_t n = message_end != NULL ? strlen(message_end) : 0;

	if (is_blank_rule(message_end))
		return NULL;
	if (message_end[0] == '^' && n >= 2 && message_end[n - 1] == '$' &&
	    message_end[n - 2] != '\\')
		return NULL;
	return "is matched against whole lines (as ^(?:...)$), where Perl mpopd matched it "
	       "anywhere in a line; write it with ^ and $ to say so, or .*RULE.* for a "
	       "line that contains RULE";
}

void
mpop_mbox_parser_free(MpopMboxParser *p)
{
	if (p == NULL)
		return;
	g_free(p->start_nl);
	if (p->start_re != NULL)
		g_regex_unref(p->start_re);
	if (p->end_re != NULL)
		g_regex_unref(p->end_re);
	g_free(p);
}

/* Literal start: jump from one occurrence of the prefix's first byte to the next (a
 * capital 'F' is rare in mail text, so memchr() skips far), keep those at a line start and
 * look one line back. */
static gboolean
next_literal(const MpopMboxParser *p, const char *data, size_t len, size_t pos, size_t *out_sep,
	     size_t *out_next)
{
	const char *lit = p->start_nl + 1;
	size_t q = pos + 1;

	while (q < len) {
		const char *h = memchr(data + q, lit[0], len - q);
		size_t hi, s;

		if (h == NULL)
			return FALSE;
		q = (size_t)(h - data) + 1;
		if (h[-1] != '\n' || (size_t)(data + len - h) < p->start_len ||
		    memcmp(h, lit, p->start_len) != 0)
			continue;
		hi = (size_t)(h - data) - 1; /* the LF ending the line before */
		if (p->end_re == NULL) {
			/* Walk back over whitespace only: a text line stops this at once. */
			s = hi;
			while (s > pos && data[s - 1] != '\n' && is_wsp(data[s - 1]))
				s--;
			if (s != pos && data[s - 1] != '\n')
				continue;
		} else {
			const char *lf = memrchr(data + pos, '\n', hi - pos);
			s = lf != NULL ? (size_t)(lf - data) + 1 : pos;
			if (!match_end(p, data + s, hi - s))
				continue;
		}
		*out_sep = s;
		*out_next = hi + 1;
		return TRUE;
	}
	return FALSE;
}

/* Regex start: line by line, a start only right after a (complete) end line. */
static gboolean
next_lines(const MpopMboxParser *p, const char *data, size_t len, size_t pos, size_t *out_sep,
	   size_t *out_next)
{
	gboolean prev_end = FALSE;
	size_t prev = pos, s = pos;

	while (s < len) {
		const char *lf = memchr(data + s, '\n', len - s);
		size_t e = lf != NULL ? (size_t)(lf - data) : len;

		if (prev_end && match_start(p, data + s, e - s)) {
			*out_sep = prev;
			*out_next = s;
			return TRUE;
		}
		prev_end = lf != NULL && match_end(p, data + s, e - s);
		prev = s;
		s = lf != NULL ? e + 1 : len;
	}
	return FALSE;
}

/* The next message start after content start pos: its separator line and its From line. */
static gboolean
find_next(const MpopMboxParser *p, const char *data, size_t len, size_t pos, size_t *out_sep,
	  size_t *out_next)
{
	if (p->start_re == NULL)
		return next_literal(p, data, len, pos, out_sep, out_next);
	return next_lines(p, data, len, pos, out_sep, out_next);
}

guint64
mpop_mbox_first(const MpopMboxParser *p, const char *data, size_t len)
{
	const char *lf;
	size_t sep, next;

	if (len == 0)
		return 0;
	lf = memchr(data, '\n', len);
	if (match_start(p, data, lf != NULL ? (size_t)(lf - data) : len))
		return 0;
	return find_next(p, data, len, 0, &sep, &next) ? next : len;
}

/* The last message's separator: a final complete line matching message_end. */
static size_t
trailing_end(const MpopMboxParser *p, const char *data, size_t len, size_t pos)
{
	const char *lf;
	size_t t;

	if (len <= pos || data[len - 1] != '\n')
		return len;
	lf = memrchr(data + pos, '\n', len - 1 - pos);
	t = lf != NULL ? (size_t)(lf - data) + 1 : pos;
	return match_end(p, data + t, len - 1 - t) ? t : len;
}

gboolean
mpop_mbox_next(const MpopMboxParser *p, const char *data, size_t len, size_t pos, size_t *out_cend,
	       size_t *out_next)
{
	if (find_next(p, data, len, pos, out_cend, out_next))
		return TRUE;
	*out_cend = trailing_end(p, data, len, pos);
	*out_next = len;
	return FALSE;
}

size_t
mpop_mbox_header_end(const char *data, size_t pos, size_t end)
{
	/* RFC 5322 §2.2: the header ends at the first empty line (CR allowed before LF). */
	for (size_t s = pos; s < end;) {
		const char *lf = memchr(data + s, '\n', end - s);
		size_t e = lf != NULL ? (size_t)(lf - data) : end;
		if (lf == NULL)
			return end;
		if (e == s || (e == s + 1 && data[s] == '\r'))
			return s;
		s = e + 1;
	}
	return end;
}

void
mpop_mbox_message(const MpopMboxParser *p, const char *data, size_t len, guint64 from,
		  MpopMboxSpan *out)
{
	const char *lf = memchr(data + from, '\n', len - from);
	size_t offset = lf != NULL ? (size_t)(lf - data) + 1 : len;
	size_t cend, next;

	mpop_mbox_next(p, data, len, offset, &cend, &next);
	out->end = next;
	out->from_offset = from;
	out->offset = offset;
	out->length = cend - offset;
	out->header_end = mpop_mbox_header_end(data, offset, cend);
	/* Past the empty line (LF or CRLF) that ends the header. */
	out->body = out->header_end == cend
			    ? cend
			    : out->header_end + (data[out->header_end] == '\r' ? 2 : 1);
}

/* ---- UIDLs ---- */

/* The unfolded, trimmed value of the field whose value starts at q (after the colon) on the
 * line ending at lf (or end), if it fits out (which holds more than a valid UIDL can be, so
 * a longer value is simply not valid). */
static gboolean
field_value(const char *q, const char *lf, const char *end, char *out, size_t cap, size_t *out_len)
{
	const char *le = lf != NULL ? lf : end;
	size_t n = 0, lead = 0;

	/* RFC 5322 §2.2.3: unfolding removes the line breaks only. */
	for (;;) {
		size_t seg = (size_t)(le - q);
		if (seg > 0 && le[-1] == '\r')
			seg--;
		if (n + seg > cap)
			return FALSE;
		memcpy(out + n, q, seg);
		n += seg;
		if (lf == NULL || lf + 1 >= end || (lf[1] != ' ' && lf[1] != '\t'))
			break;
		q = lf + 1;
		lf = memchr(q, '\n', (size_t)(end - q));
		le = lf != NULL ? lf : end;
	}
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	while (lead < n && (out[lead] == ' ' || out[lead] == '\t'))
		lead++;
	memmove(out, out + lead, n - lead);
	*out_len = n - lead;
	return TRUE;
}

/* Where the value of a field called name (lowercase) starts on the line p..le, or NULL.
 * ASCII case folding without a call: these lines are in every message. */
static const char *
field_named(const char *p, const char *le, const char *name, size_t nlen)
{
	const char *q = p + nlen;

	if ((size_t)(le - p) <= nlen)
		return NULL;
	for (size_t i = 0; i < nlen; i++) {
		char c = name[i];
		if (c >= 'a' && c <= 'z' ? (p[i] | 0x20) != c : p[i] != c)
			return NULL;
	}
	while (q < le && (*q == ' ' || *q == '\t'))
		q++;
	return q < le && *q == ':' ? q + 1 : NULL;
}

typedef MpopMboxField Field;

/* The header lines of h (len bytes) that start in [from, to): the first field of each wanted
 * name (n fields, *left of them wanted and not seen yet). Returns where the next line starts
 * (to when to is a line start), or len when none is left. A value may be read past to. */
static size_t
find_fields(const char *h, size_t len, size_t from, size_t to, Field *fields, guint n, guint *left)
{
	const char *p = h + from, *stop = h + MIN(to, len), *end = h + len;

	if (*left == 0)
		return len;
	while (p < stop) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *le = lf != NULL ? lf : end, *q;
		/* The names start with a letter: OR-ing 0x20 lowercases it and nothing else
		 * matches, so most lines are passed over without a call. */
		char c = (char)(*p | 0x20);

		for (guint i = 0; i < n; i++) {
			Field *f = &fields[i];
			if (f->name[0] == c && f->wanted && !f->seen &&
			    (q = field_named(p, le, f->name, f->nlen)) != NULL) {
				f->seen = TRUE;
				f->fits = field_value(q, lf, end, f->value, sizeof(f->value),
						      &f->len);
				if (--*left == 0)
					return len;
				break;
			}
		}
		p = lf != NULL ? lf + 1 : end;
	}
	return (size_t)(p - h);
}

/* A valid UIDL found in v (n bytes) goes to out. */
static size_t
take(char *out, const char *v, size_t n)
{
	memcpy(out, v, n);
	out[n] = '\0';
	return n;
}

void
mpop_mbox_uidl_plan(const char *const *sources, MpopUidlPlan *plan)
{
	static const char *const defaults[] = {"x-uidl", "message-id", "digest", NULL};
	static const struct {
		const char *name;
		MpopUidlField field;
	} known[] = {{"x-uidl", MPOP_UIDL_X_UIDL},
		     {"message-id", MPOP_UIDL_MESSAGE_ID},
		     {"dovecot", MPOP_UIDL_DOVECOT},
		     {"popa3d", MPOP_UIDL_POPA3D}};

	if (sources == NULL || sources[0] == NULL)
		sources = defaults;
	memset(plan, 0, sizeof(*plan));
	/* The list as sources to try, up to "digest" or popa3d's digest, which always answer
	 * (config-schema.c allows these names only, each once). */
	for (; *sources != NULL && plan->n < G_N_ELEMENTS(plan->field); sources++) {
		guint k = 0;
		while (k < G_N_ELEMENTS(known) && g_ascii_strcasecmp(*sources, known[k].name) != 0)
			k++;
		if (k == G_N_ELEMENTS(known))
			break;
		plan->field[plan->n++] = known[k].field;
		if (known[k].field == MPOP_UIDL_POPA3D)
			break;
	}
}

/* The header of the message whose From line starts data: after that line, up to the
 * first empty line, at most cap bytes. */
static size_t
first_header(const char *data, size_t len, size_t cap, const char **out)
{
	const char *lf = memchr(data, '\n', len), *p, *end;

	*out = data;
	if (lf == NULL)
		return 0;
	p = lf + 1;
	end = len - (size_t)(p - data) > cap ? p + cap : data + len;
	*out = p;
	for (const char *q = p; q < end;) {
		const char *nl = memchr(q, '\n', (size_t)(end - q));
		if (q[0] == '\n' || (q[0] == '\r' && q + 1 < end && q[1] == '\n'))
			return (size_t)(q - p);
		if (nl == NULL)
			break;
		q = nl + 1;
	}
	return (size_t)(end - p);
}

void
mpop_mbox_uidl_plan_mailbox(MpopUidlPlan *plan, const char *data, size_t len)
{
	/* Dovecot and UW-IMAP write X-IMAPbase among the first message's header fields (X-IMAP
	 * in a pseudo message): a megabyte is more than any header they leave. */
	Field base[] = {{.name = "x-imapbase", .nlen = 10, .wanted = TRUE},
			{.name = "x-imap", .nlen = 6, .wanted = TRUE}};
	const char *h = NULL;
	size_t hlen;
	guint left = G_N_ELEMENTS(base);

	plan->uidvalidity = plan->last_uid = 0;
	for (guint i = 0; i < plan->n; i++) {
		if (plan->field[i] != MPOP_UIDL_DOVECOT)
			continue;
		hlen = first_header(data, len, 1024 * 1024, &h);
		find_fields(h, hlen, 0, hlen, base, G_N_ELEMENTS(base), &left);
		for (guint k = 0; k < G_N_ELEMENTS(base); k++)
			if (base[k].seen && base[k].fits &&
			    mpop_uidl_imapbase_parse(base[k].value, base[k].len, &plan->uidvalidity,
						     &plan->last_uid))
				return;
		return;
	}
}

/* Dovecot's answer for a message with an X-UID field: valid only with the mailbox's
 * X-IMAPbase and at most its last UID (a higher one came with the mail, not from Dovecot). */
static gboolean
dovecot_uid(const Field *f, const MpopUidlPlan *plan, char out[MPOP_UIDL_MAX + 1])
{
	guint32 uid;

	if (!f->seen || !f->fits || plan->uidvalidity == 0 ||
	    !mpop_uidl_uid_parse(f->value, f->len, &uid) || uid > plan->last_uid)
		return FALSE;
	mpop_uidl_dovecot_format(uid, plan->uidvalidity, out);
	return TRUE;
}

void
mpop_mbox_uidl_fields_init(MpopUidlFields *f, const MpopUidlPlan *plan)
{
	static const char *const names[] = {"x-uidl", "message-id", "x-uid"};

	/* Per message: the value buffers are left as they are (only read once seen). */
	for (guint i = 0; i < MPOP_UIDL_F_N; i++) {
		Field *w = &f->field[i];
		w->name = names[i];
		w->nlen = strlen(names[i]);
		w->wanted = w->seen = w->fits = FALSE;
	}
	f->left = 0;
	for (guint i = 0; i < plan->n; i++) {
		Field *w = NULL;
		if (plan->field[i] == MPOP_UIDL_X_UIDL)
			w = &f->field[MPOP_UIDL_F_X_UIDL];
		else if (plan->field[i] == MPOP_UIDL_MESSAGE_ID)
			w = &f->field[MPOP_UIDL_F_MSGID];
		else if (plan->field[i] == MPOP_UIDL_DOVECOT)
			w = &f->field[MPOP_UIDL_F_X_UID];
		if (w != NULL && !w->wanted) {
			w->wanted = TRUE;
			f->left++;
		}
	}
}

size_t
mpop_mbox_uidl_fields(MpopUidlFields *f, const char *content, size_t header_len, size_t from,
		      size_t to)
{
	return find_fields(content, header_len, from, to, f->field, MPOP_UIDL_F_N, &f->left);
}

size_t
mpop_mbox_uidl_pick(const MpopUidlFields *fs, const MpopUidlPlan *plan, const char *content,
		    size_t header_len, char out[MPOP_UIDL_MAX + 1])
{
	for (guint i = 0; i < plan->n; i++) {
		const Field *f = NULL;
		switch (plan->field[i]) {
		case MPOP_UIDL_POPA3D:
			mpop_uidl_popa3d(content, header_len, out);
			return strlen(out);
		case MPOP_UIDL_DOVECOT:
			if (dovecot_uid(&fs->field[MPOP_UIDL_F_X_UID], plan, out))
				return strlen(out);
			continue;
		case MPOP_UIDL_X_UIDL:
			f = &fs->field[MPOP_UIDL_F_X_UIDL];
			/* Perl mpopd 2.x wrote "X-UIDL: mpop<uidl>" and announced <uidl>. */
			if (f->seen && f->fits && f->len > 4 && memcmp(f->value, "mpop", 4) == 0 &&
			    mpop_uidl_valid(f->value + 4, f->len - 4))
				return take(out, f->value + 4, f->len - 4);
			break;
		case MPOP_UIDL_MESSAGE_ID:
			f = &fs->field[MPOP_UIDL_F_MSGID];
			break;
		}
		if (f != NULL && f->seen && f->fits && mpop_uidl_valid(f->value, f->len))
			return take(out, f->value, f->len);
	}
	return 0;
}

size_t
mpop_mbox_uidl_planned(const char *content, size_t header_len, const MpopUidlPlan *plan,
		       char out[MPOP_UIDL_MAX + 1])
{
	MpopUidlFields f;
	g_autofree char *d = NULL;
	size_t n;

	mpop_mbox_uidl_fields_init(&f, plan);
	mpop_mbox_uidl_fields(&f, content, header_len, 0, header_len);
	n = mpop_mbox_uidl_pick(&f, plan, content, header_len, out);
	if (n > 0)
		return n;
	d = mpop_uidl_digest(content, header_len);
	return take(out, d, strlen(d));
}

size_t
mpop_mbox_uidl(const char *content, size_t header_len, const char *const *sources,
	       char out[MPOP_UIDL_MAX + 1])
{
	MpopUidlPlan plan;

	mpop_mbox_uidl_plan(sources, &plan);
	for (guint i = 0; i < plan.n; i++) {
		if (plan.field[i] != MPOP_UIDL_DOVECOT)
			continue;
		/* No From line here: a line of its own stands in for it. */
		g_autoptr(GString) s = g_string_new_len("From \n", 6);
		g_string_append_len(s, content, (gssize)header_len);
		mpop_mbox_uidl_plan_mailbox(&plan, s->str, s->len);
		break;
	}
	return mpop_mbox_uidl_planned(content, header_len, &plan, out);
}
