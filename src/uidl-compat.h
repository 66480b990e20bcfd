/* SPDX-License-Identifier: GPL-2.0-or-later */
/* UIDLs other POP3 servers answered for the same mailbox, so clients keep their state. */
#pragma once

#include <glib.h>

/* Dovecot's default pop3_uidl_format %08Xu%08Xv: the IMAP UID and UIDVALIDITY as eight
 * lowercase hex digits each. out holds 17 bytes. */
void mpop_uidl_dovecot_format(guint32 uid, guint32 uidvalidity, char out[17]);

/* The id popa3d answers for an mbox message: its own MD5 over the header lines that stay
 * the same across MUA runs (the first Received:, Date: and Message-ID: above it,
 * Delivered-To:, X-Delivery-ID:), as 16 hex digits. header: the stored header lines after
 * the From line, each with its line end, untrusted. out holds 17 bytes. */
void mpop_uidl_popa3d(const char *header, size_t len, char out[17]);

/* Parse the "uidvalidity lastuid" value of an X-IMAPbase (or X-IMAP) header field (value:
 * len bytes, untrusted). Returns FALSE unless both are numbers in 1..2^32-1. */
gboolean mpop_uidl_imapbase_parse(const char *value, size_t len, guint32 *out_uidvalidity,
				  guint32 *out_last_uid);

/* An X-UID value: a decimal UID in 1..2^32-1 between blanks (value untrusted). */
gboolean mpop_uidl_uid_parse(const char *value, size_t len, guint32 *out_uid);

/* A Dovecot dovecot-uidlist file (data: len bytes, untrusted; versions 1 and 3) as a table
 * from Maildir base name (the file name up to ':') to the UIDL Dovecot answers with its
 * default pop3_uidl_format: a saved POP3 UIDL of the record ('P' extension) when it is a
 * valid one, else the UID and UIDVALIDITY. NULL when the header line is not understood.
 * Free with g_hash_table_unref(). */
GHashTable *mpop_uidl_dovecot_uidlist(const char *data, size_t len);
