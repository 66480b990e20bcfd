/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals of the mbox backend exposed for tests, fuzzing and the benchmark. */
#pragma once

#include <glib.h>
#include <sys/stat.h>
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

/* The message whose From line starts at from (< len). out->end is where the next starts. */
void mpop_mbox_message(const MpopMboxParser *p, const char *data, size_t len, guint64 from,
		       MpopMboxSpan *out);

/* Where the content that starts at pos (a line start) ends: TRUE with *out_cend at the
 * separator before the next message start and *out_next at that start; FALSE when no message
 * starts in data (*out_cend then leaves out a final separator line, *out_next = len). Reads
 * nothing before pos, so data may be a window of a file that ends after a line end: FALSE
 * then means no start before len, and the search goes on from the window's last line. */
gboolean mpop_mbox_next(const MpopMboxParser *p, const char *data, size_t len, size_t pos,
			size_t *out_cend, size_t *out_next);

/* RFC 5322 §2.2: the first empty line (LF or CRLF) among the lines that start in [pos, end)
 * (pos a line start), or end. */
size_t mpop_mbox_header_end(const char *data, size_t pos, size_t end);

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
size_t mpop_mbox_uidl_planned(const char *content, size_t header_len, const MpopUidlPlan *plan,
			      char out[MPOP_UIDL_MAX + 1]);

/* The same in steps, for a header read a window at a time: the fields the plan looks at,
 * then its choice among them, 0 when it falls back to the digest of the whole header. */
typedef struct {
	const char *name; /* lowercase */
	size_t nlen;
	gboolean wanted, seen, fits;
	char value[2 * MPOP_UIDL_MAX];
	size_t len;
} MpopMboxField;
enum { MPOP_UIDL_F_X_UIDL, MPOP_UIDL_F_MSGID, MPOP_UIDL_F_X_UID, MPOP_UIDL_F_N };
typedef struct {
	MpopMboxField field[MPOP_UIDL_F_N];
	guint left; /* wanted and not seen yet */
} MpopUidlFields;
void mpop_mbox_uidl_fields_init(MpopUidlFields *f, const MpopUidlPlan *plan);
/* The lines of content (header_len bytes, untrusted) that start in [from, to). Returns where
 * the next starts (to, when to is a line start), or header_len when no field is left to find.
 * A field's value may be read past to (at most its first 140 bytes and a line). */
size_t mpop_mbox_uidl_fields(MpopUidlFields *f, const char *content, size_t header_len, size_t from,
			     size_t to);
size_t mpop_mbox_uidl_pick(const MpopUidlFields *f, const MpopUidlPlan *plan, const char *content,
			   size_t header_len, char out[MPOP_UIDL_MAX + 1]);

/* The hash of the bytes between messages (separator + From line), checked before a read
 * and at UPDATE: detects rewrites by other programs, not adversaries. Chunked calls on
 * multiples of 8 bytes continue exactly like one call. */
#define MPOP_MBOX_HASH_INIT 2166136261u
guint32 mpop_mbox_hash(guint32 h, const char *s, size_t n);

/* A 64-bit hash of the same shape (fingerprints, the persisted index's probes and checksum). */
guint64 mpop_mbox_hash64(guint64 h, const void *data, size_t n);

typedef struct {
	const MpopMboxParser *parser;
	const MpopStuffOpts *stuff;	 /* what RETR sends: the sizes */
	const char *const *uidl_sources; /* NULL: the default list */
	guint64 from;	    /* 0: the whole file; else a message's From line to index from */
	guint64 prev_end;   /* with from: the content end of the message before it (or the end
			     * of the text before the first message) */
	guint64 first_from; /* with from: the end of the text before the first message */
	size_t window;	    /* bytes read at a time (0: 256 KiB); tests use tiny ones */
} MpopMboxIndexOpts;

typedef struct {
	MpopMessage *msgs; /* UIDLs valid, not yet made unique */
	guint n_msgs;
	guint32 *span_hash;   /* per message: from the previous content end to its content */
	guint32 *uidl_hash;   /* per message: a hash of its UIDL (for the duplicate check) */
	guint64 *fingerprint; /* per message: its From line, UIDL and size, hashed */
	guint32 tail_hash;    /* from the last content end to the end of the file */
	guint64 first_from;   /* text before the first message (given as o->first_from with o->from)
			       */
} MpopMboxIndex;

/* Index size bytes at map (a read-only mapping of the locked file, read a window at a time:
 * the pages behind the window are given back) from the start, or from o->from: what a pass from the
 * start finds from that message start on. UIDLs go to strings. */
gboolean mpop_mbox_index(const MpopMboxIndexOpts *o, const char *map, size_t size,
			 GStringChunk *strings, MpopMboxIndex *out, GError **error);
void mpop_mbox_index_clear(MpopMboxIndex *ix);

/* ---- the persisted index (mbox-store.c) ---- */

/* What is remembered of one mbox between sessions. Arrays are owned after
 * mpop_mbox_store_parse() (freed by mpop_mbox_store_clear()), borrowed for formatting. */
typedef struct {
	guint32 rules;		   /* hash of the settings the index depends on */
	guint64 dev, ino;	   /* the mbox indexed */
	guint64 size;		   /* the indexed part: bytes [0, size) */
	gint64 mtime_ns, ctime_ns; /* its times then */
	gint64 stat_ns;		   /* the file clock when they were read (> ctime: not racy) */
	guint64 head_probe;	   /* mpop_mbox_hash64() of the first MPOP_MBOX_PROBE bytes */
	guint64 tail_probe;	   /* ... and of the last MPOP_MBOX_PROBE bytes of [0, size) */
	guint64 first_from;
	guint32 tail_hash;
	guint64 counter; /* the next fresh UIDL suffix; never goes down */
	guint n_msgs;
	MpopMessage *msgs; /* uidl in the strings given to the parser */
	guint32 *span_hash;
	guint64 *fingerprint;
	guint n_retired;
	guint64 *retired; /* hashes of UIDLs that were given out and are gone, oldest first */
} MpopMboxStore;

#define MPOP_MBOX_PROBE 4096
#define MPOP_MBOX_STORE_SEED 0x6d706f7064696478ull /* of the checksum and the UIDL keys */
#define MPOP_MBOX_STORE_MAX (64u << 20)		   /* bytes: a larger index is not written */
#define MPOP_MBOX_RETIRED_MAX 65536u		   /* UIDLs remembered after their message left */

/* mpop_mbox_hash() of n bytes at off of fd, read in pieces. Returns 0 or -errno (-ESPIPE
 * when the file is shorter). */
int mpop_mbox_hash_fd(int fd, guint64 off, guint64 n, guint32 *out);

/* What an index is good for against the locked mbox fd (stat sb): */
typedef enum {
	MPOP_MBOX_STORE_FULL,	/* nothing: scan the whole file */
	MPOP_MBOX_STORE_APPEND, /* all but its last message: index from that one on */
	MPOP_MBOX_STORE_REUSE,	/* all of it */
} MpopMboxStoreUse;
/* Decide by dev, ino, size, times and the probes (every boundary too when the times were
 * read in the clock tick of the last change). *out_why says why (not). */
MpopMboxStoreUse mpop_mbox_store_check(int fd, const struct stat *sb, const MpopMboxStore *st,
				       const char **out_why);
/* Fill the file fields of st (dev, ino, times, probes) from fd, with st->size set: the
 * indexed part. Called with the mailbox locks held: may wait for the clock's next tick so
 * that a later change shows in the times. Returns 0 or -errno. */
int mpop_mbox_store_describe(MpopMboxStore *st, int fd);

/* Where the index of the mbox at mbox_path lives: ".NAME.mpopd-index" beside it. */
char *mpop_mbox_store_path(const char *mbox_path);

/* Parse len untrusted bytes. Everything that can be checked without the mbox is: version,
 * checksum, bounds, ordered non-overlapping messages inside size, valid unique UIDLs. FALSE
 * with *out_why set: treat as absent. */
gboolean mpop_mbox_store_parse(const char *data, size_t len, GStringChunk *strings,
			       MpopMboxStore *out, const char **out_why);
/* The file form of st (newly allocated). */
GByteArray *mpop_mbox_store_format(const MpopMboxStore *st);
void mpop_mbox_store_clear(MpopMboxStore *st);

/* Read the index at path if it is a regular file of ours (not a symbolic link, owned by the
 * effective user, mode 0600 or stricter, one link, at most MPOP_MBOX_STORE_MAX bytes) and
 * parses. FALSE with *out_why: treat as absent. */
gboolean mpop_mbox_store_load(const char *path, GStringChunk *strings, MpopMboxStore *out,
			      const char **out_why);
/* Write st to path atomically (a new file renamed over it), mode 0600. durable: fsync the
 * file before the rename. Returns 0 or -errno. */
int mpop_mbox_store_save(const char *path, const MpopMboxStore *st, gboolean durable);

/* Persistent UIDLs (RFC 1939 §7). msgs[0, first_new) have their final UIDLs; the others
 * carry the UIDL from their content and fp[i] their fingerprint. A message that matches an
 * unclaimed old entry (old[k], k >= old_first, by fingerprint, in order) takes that entry's
 * UIDL; the others keep the one from their content unless it is in use, was given out
 * before (in *retired) or belongs to an old entry, and then get "-N" with N from *counter.
 * Old entries nobody claimed are appended to *retired (a GArray of guint64, trimmed to the
 * newest MPOP_MBOX_RETIRED_MAX). New strings go to strings. */
void mpop_mbox_assign_uidls(MpopMessage *msgs, guint n, guint first_new, const guint64 *fp,
			    const MpopMboxStore *old, guint old_first, GArray *retired,
			    guint64 *counter, GStringChunk *strings);
/* The hash a retired UIDL is remembered by. */
guint64 mpop_mbox_uidl_key(const char *uidl);
