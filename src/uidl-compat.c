/* SPDX-License-Identifier: GPL-2.0-or-later */
/* UIDLs other POP3 servers answered for the same mailbox, so clients keep their state. */
#include "uidl-compat.h"
#include "mailbox.h"

#include <stdio.h>
#include <string.h>

void
mpop_uidl_dovecot_format(guint32 uid, guint32 uidvalidity, char out[17])
{
	/* Dovecot's %X expands to lowercase hex, whatever the letter's case says. */
	g_snprintf(out, 17, "%08x%08x", uid, uidvalidity);
}

/* Whether the line p (n bytes) starts with name, case-insensitively, colon included. */
static gboolean
starts(const char *p, size_t n, const char *name)
{
	size_t k = strlen(name);

	return n >= k && g_ascii_strncasecmp(p, name, k) == 0;
}

void
mpop_uidl_popa3d(const char *header, size_t len, char out[17])
{
	g_autoptr(GChecksum) md5 = g_checksum_new(G_CHECKSUM_MD5);
	const char *p = header, *end = header + len;
	gboolean fixed = FALSE, received = FALSE;
	guint8 d[16];
	gsize dlen = sizeof(d);

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		size_t n = lf != NULL ? (size_t)(lf - p) + 1 : (size_t)(end - p);

		/* popa3d keeps the lines its users' MUAs do not rewrite: the first Received:
		 * (from the local MTA), Date: and Message-ID: above it, every Delivered-To: and
		 * X-Delivery-ID: (which its delivery agents add). A folded line belongs to the
		 * field it continues; the first letter decides as in popa3d ('X' uppercase). */
		switch (*p) {
		case ' ':
		case '\t':
			break;
		case 'R':
		case 'r':
			fixed = !received && starts(p, n, "Received:");
			received = received || fixed;
			break;
		case 'D':
		case 'd':
			fixed = starts(p, n, "Delivered-To:") ||
				(!received && starts(p, n, "Date:"));
			break;
		case 'M':
		case 'm':
			fixed = !received && starts(p, n, "Message-ID:");
			break;
		case 'X':
			fixed = starts(p, n, "X-Delivery-ID:");
			break;
		default:
			fixed = FALSE;
			break;
		}
		if (fixed)
			g_checksum_update(md5, (const guchar *)p, (gssize)n);
		p += n;
	}
	g_checksum_get_digest(md5, d, &dlen);
	/* popa3d prints the first two 32-bit words of the digest as little-endian numbers. */
	g_snprintf(out, 17, "%02x%02x%02x%02x%02x%02x%02x%02x", d[3], d[2], d[1], d[0], d[7], d[6],
		   d[5], d[4]);
}

/* A decimal number in 1..2^32-1 at *p (advanced past it). */
static gboolean
number(const char **p, const char *end, guint32 *out)
{
	guint64 v = 0;
	const char *q = *p;

	while (q < end && g_ascii_isdigit(*q) && q - *p < 11)
		v = v * 10 + (guint64)(*q++ - '0');
	if (q == *p || (q < end && g_ascii_isdigit(*q)) || v == 0 || v > G_MAXUINT32)
		return FALSE;
	*p = q;
	*out = (guint32)v;
	return TRUE;
}

gboolean
mpop_uidl_imapbase_parse(const char *value, size_t len, guint32 *out_uidvalidity,
			 guint32 *out_last_uid)
{
	const char *p = value, *end = value + len;
	guint32 v, last;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (!number(&p, end, &v) || p >= end || (*p != ' ' && *p != '\t'))
		return FALSE;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	/* Dovecot pads the last UID with zeros ("0000000003"); keywords may follow. */
	while (p + 1 < end && *p == '0' && g_ascii_isdigit(p[1]))
		p++;
	if (!number(&p, end, &last) || (p < end && *p != ' ' && *p != '\t'))
		return FALSE;
	*out_uidvalidity = v;
	*out_last_uid = last;
	return TRUE;
}

gboolean
mpop_uidl_uid_parse(const char *value, size_t len, guint32 *out_uid)
{
	const char *p = value, *end = value + len;
	guint32 uid;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (!number(&p, end, &uid))
		return FALSE;
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	if (p != end)
		return FALSE;
	*out_uid = uid;
	return TRUE;
}

/* ---- dovecot-uidlist ---- */

typedef struct {
	guint version;
	guint32 uidvalidity, next_uid;
} UidlistHeader;

/* "1 <uidvalidity> <nextuid>" or "3 V<uidvalidity> N<nextuid> G<guid> ...". */
static gboolean
uidlist_header(const char *p, const char *end, UidlistHeader *h)
{
	if (end - p < 2 || (p[0] != '1' && p[0] != '3') || p[1] != ' ')
		return FALSE;
	h->version = (guint)(p[0] - '0');
	p += 2;
	if (h->version == 1) {
		if (!number(&p, end, &h->uidvalidity) || p >= end || *p != ' ')
			return FALSE;
		p++;
		return number(&p, end, &h->next_uid);
	}
	while (p < end) {
		const char *sp = memchr(p, ' ', (size_t)(end - p)), *tok_end = sp ? sp : end;
		const char *v = p + 1;
		if (*p == 'V' && (!number(&v, tok_end, &h->uidvalidity) || v != tok_end))
			return FALSE;
		if (*p == 'N' && (!number(&v, tok_end, &h->next_uid) || v != tok_end))
			return FALSE;
		p = tok_end;
		while (p < end && *p == ' ')
			p++;
	}
	return h->uidvalidity != 0 && h->next_uid != 0;
}

/* One record: "<uid> <file>" (version 1) or "<uid> [<ext> ...] :<file>" (version 3), with
 * extensions an uppercase letter and a value, 'P' the POP3 UIDL Dovecot saved. Adds the
 * UIDL to t. FALSE for a line Dovecot would call broken (it then rebuilds the list with
 * new UIDs, so none of this file's survive). */
static gboolean
uidlist_record(const char *p, const char *end, const UidlistHeader *h, guint32 *prev_uid,
	       GHashTable *t)
{
	const char *pop3 = NULL, *pop3_end = NULL, *colon;
	char buf[17];
	guint32 uid;
	char *base;

	if (!number(&p, end, &uid) || p >= end || *p != ' ' || uid <= *prev_uid ||
	    uid == G_MAXUINT32 || (h->version == 1 && uid >= h->next_uid))
		return FALSE;
	*prev_uid = uid;
	while (p < end && *p == ' ')
		p++;
	if (h->version == 3) {
		while (p < end && *p != ':') {
			const char *sp = memchr(p, ' ', (size_t)(end - p)),
				   *tok_end = sp ? sp : end;
			if (*p == 'P') {
				pop3 = p + 1;
				pop3_end = tok_end;
			}
			p = tok_end;
			while (p < end && *p == ' ')
				p++;
		}
		if (p < end && *p == ':')
			p++;
	}
	if (p >= end || memchr(p, '/', (size_t)(end - p)) != NULL ||
	    memchr(p, '\0', (size_t)(end - p)))
		return FALSE;
	/* Dovecot finds a file by the name up to the ':' of its flags, as mpopd does. */
	colon = memchr(p, ':', (size_t)(end - p));
	base = g_strndup(p, (gsize)((colon != NULL ? colon : end) - p));
	if (pop3 != NULL && pop3 == pop3_end) {
		/* An empty saved UIDL stands for the base name: what mpopd answers for a file
		 * without a record (a valid UIDL or its digest). */
		g_hash_table_remove(t, base);
		g_free(base);
	} else if (pop3 != NULL && mpop_uidl_valid(pop3, (size_t)(pop3_end - pop3))) {
		g_hash_table_replace(t, base, g_strndup(pop3, (gsize)(pop3_end - pop3)));
	} else {
		mpop_uidl_dovecot_format(uid, h->uidvalidity, buf);
		g_hash_table_replace(t, base, g_strdup(buf));
	}
	return TRUE;
}

GHashTable *
mpop_uidl_dovecot_uidlist(const char *data, size_t len)
{
	g_autoptr(GHashTable) t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	const char *p = data, *end = data + len;
	UidlistHeader h = {0};
	guint32 prev_uid = 0;
	gboolean first = TRUE;

	while (p < end) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));

		/* A last line without its newline is one Dovecot was still writing (it reads
		 * whole lines only). */
		if (lf == NULL)
			break;
		if (first ? !uidlist_header(p, lf, &h) : !uidlist_record(p, lf, &h, &prev_uid, t))
			return NULL;
		first = FALSE;
		p = lf + 1;
	}
	return first ? NULL : g_steal_pointer(&t);
}
