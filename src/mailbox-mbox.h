/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals of the mbox backend exposed for tests, fuzzing and the benchmark. */
#pragma once

#include <glib.h>
#include "mailbox.h"

/* Compiled message_start / message_end rules. */
typedef struct MpopMboxParser MpopMboxParser;

/* Both rules are regular expressions (PCRE, as Perl's) matched against one line without its
 * LF and a CR before it: start at the beginning of the line (a plain prefix such as "From "
 * or "^From " takes a fast path), end against the whole line; "", "^\s*$", "^\s+$" and "\s*"
 * mean a line of white space only (the fast path). A line starts a message when it matches
 * start and is the first line or follows a line matching end. NULL or "" means the default.
 * An invalid expression is MPOP_ERROR_CONFIG naming the key. */
MpopMboxParser *mpop_mbox_parser_new(const char *message_start, const char *message_end,
				     GError **error);
/* A warning for --check-config when message_end is not anchored at both ends (Perl mpopd
 * searched it anywhere in a line), or NULL. Static text. */
const char *mpop_mbox_end_rule_note(const char *message_end);
void mpop_mbox_parser_free(MpopMboxParser *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopMboxParser, mpop_mbox_parser_free)

typedef struct {
	guint64 from_offset; /* the From line */
	guint64 offset;	     /* first content byte */
	guint64 length;	     /* content bytes (without the separator line) */
	guint64 end;	     /* next message's From line, or the end of the data */
	guint64 header_end;  /* end of the header block (where the empty line starts) */
	guint64 body;	     /* past that empty line, or the content end without one */
} MpopMboxSpan;

/* Offset of the first message's From line in data, or len when there is none (all of it
 * is text before the first message, which is never touched). */
guint64 mpop_mbox_first(const MpopMboxParser *p, const char *data, size_t len);
guint64 mpop_mbox_first_progress(const MpopMboxParser *p, const char *data, size_t len,
				 const MpopProgress *progress);

/* The message whose From line starts at from (< len). out->end is where the next starts. */
void mpop_mbox_message(const MpopMboxParser *p, const char *data, size_t len, guint64 from,
		       MpopMboxSpan *out);

/* The same for a mapped file: progress (NULL: none) is told how far a long message's scans
 * have gone, so that the pages behind can be given back while a huge message is read. */
void mpop_mbox_message_progress(const MpopMboxParser *p, const char *data, size_t len, guint64 from,
				MpopMboxSpan *out, const MpopProgress *progress);

/* A message start (its From line) after the line containing pos that the sequential scan of
 * the whole file also finds, or len when there is none or the rules need more than one line
 * of history to decide (a regex message_start or message_end). */
guint64 mpop_mbox_split_point(const MpopMboxParser *p, const char *data, size_t len, guint64 pos);

/* The UIDL of a message by the uidl_source list (NULL: x-uidl message-id digest), written
 * NUL-terminated to out (no allocation per message): valid (RFC 1939 §7), not yet made
 * unique. Returns its length. "dovecot" finds the X-IMAPbase in this header only. */
size_t mpop_mbox_uidl(const char *content, size_t header_len, const char *const *sources,
		      char out[MPOP_UIDL_MAX + 1]);

/* The uidl_source list resolved once, for the index. */
typedef enum {
	MPOP_UIDL_X_UIDL,
	MPOP_UIDL_MESSAGE_ID,
	MPOP_UIDL_DOVECOT, /* X-UID with the mailbox's X-IMAPbase UIDVALIDITY */
	MPOP_UIDL_POPA3D,  /* popa3d's digest of some header lines: always answers */
} MpopUidlField;
typedef struct {
	MpopUidlField field[4]; /* sources to try in order, then the digest */
	guint n;
	/* MPOP_UIDL_DOVECOT: from the first message's X-IMAPbase; 0 when it has none */
	guint32 uidvalidity, last_uid;
} MpopUidlPlan;
void mpop_mbox_uidl_plan(const char *const *sources, MpopUidlPlan *plan);
/* For a plan with MPOP_UIDL_DOVECOT: the UIDVALIDITY and last UID of the mailbox from the
 * X-IMAPbase (or X-IMAP) field of the first message, whose From line starts data (len
 * bytes, untrusted). */
void mpop_mbox_uidl_plan_mailbox(MpopUidlPlan *plan, const char *data, size_t len);
/* progress: NULL, or reports while a long header is read. */
size_t mpop_mbox_uidl_planned(const char *content, size_t header_len, const MpopUidlPlan *plan,
			      char out[MPOP_UIDL_MAX + 1], const MpopProgress *progress);

/* The hash of the bytes between messages (separator + From line), checked before a read
 * and at UPDATE: detects rewrites by other programs, not adversaries. Chunked calls on
 * multiples of 8 bytes continue exactly like one call. */
#define MPOP_MBOX_HASH_INIT 2166136261u
guint32 mpop_mbox_hash(guint32 h, const char *s, size_t n);

typedef struct {
	const MpopMboxParser *parser;
	const MpopStuffOpts *stuff;	 /* what RETR sends: the sizes */
	const char *const *uidl_sources; /* NULL: the default list */
	guint max_parts;		 /* 0: one per CPU it may run on, at most 2 */
	guint64 part_min;		 /* 0: 8 MiB; smaller parts are not split off */
} MpopMboxIndexOpts;

typedef struct {
	MpopMessage *msgs; /* UIDLs valid, not yet made unique */
	guint n_msgs;
	guint32 *span_hash; /* per message: from the previous content end to its content */
	guint32 *uidl_hash; /* per message: a hash of its UIDL (for the duplicate check) */
	guint32 tail_hash;  /* from the last content end to the end of the file */
	guint64 first_from; /* text before the first message */
	GPtrArray *chunks;  /* GStringChunks with the UIDLs of parts after the first */
	guint n_parts;	    /* how many parts were indexed side by side */
} MpopMboxIndex;

/* Index size bytes at map (a read-only mapping of the locked file; pages are dropped as the
 * scan passes them). UIDLs of the first part go to strings. Large files with the default
 * boundary rules are cut at message starts into parts indexed on one thread each; the
 * result is the same as one sequential pass. */
gboolean mpop_mbox_index(const MpopMboxIndexOpts *o, const char *map, size_t size,
			 GStringChunk *strings, MpopMboxIndex *out, GError **error);
