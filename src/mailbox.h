/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The backend-neutral message table and the mailbox registry. Backends implement only
 * open (lock + index), stream one message, commit (UPDATE) and close. */
#pragma once

#include <glib.h>
#include <sys/types.h>
#include "config.h"
#include "dotstuff.h"
#include "stream.h"

/* RFC 1939 §7: a unique-id is 1 to 70 characters in the range 0x21 to 0x7E. */
#define MPOP_UIDL_MAX 70

/* One message: 32 bytes, so a 50 000-message maildrop indexes in about 1.6 MB. */
typedef struct {
	char *uidl;   /* in MpopMailbox.strings; valid, unique, stable across sessions */
	guint64 size; /* exact octets as sent (CRLF line ends, before stuffing) */
	union {
		guint64 offset; /* mbox: offset of the first content byte (after the From line) */
		char *name;	/* maildir: path relative to the maildir ("cur/NAME:2,S"),
				 * in strings below */
	};
	guint32 length;	       /* mbox: raw length of the content (a message is < 4 GiB) */
	guint32 from_len : 31; /* mbox: bytes from the From line's start to offset */
	guint32 deleted : 1;   /* marked by DELE, cleared by RSET */
} MpopMessage;

typedef struct MpopMailbox MpopMailbox;

typedef struct {
	const char *name;
	/* Lock the maildrop and fill mb->msgs. Errors: MPOP_ERROR_IN_USE when another session
	 * holds it, MPOP_ERROR_TEMP / MPOP_ERROR_PERM otherwise. */
	gboolean (*open)(MpopMailbox *mb, GError **error);
	/* Start reading the raw stored bytes of message idx (0-based). May verify the store
	 * (mbox snapshot) and fail with MPOP_ERROR_CHANGED before anything was sent. */
	gboolean (*msg_begin)(MpopMailbox *mb, guint idx, GError **error);
	/* Read the next raw bytes of the current message: > 0 bytes, 0 at its end, < 0 error. */
	gssize (*msg_read)(MpopMailbox *mb, char *buf, gsize len, GError **error);
	void (*msg_end)(MpopMailbox *mb);
	/* Optional, called between msg_begin and msg_end: RETR counted sent octets for message
	 * idx where the table says msgs[idx].size (which stays, LIST has given it); the reply
	 * fails. The backend makes the next session list the size sent. */
	void (*size_wrong)(MpopMailbox *mb, guint idx, guint64 sent);
	/* UPDATE (RFC 1939 §6): remove exactly the messages marked deleted, keep everything
	 * else, including messages delivered since open. */
	gboolean (*commit)(MpopMailbox *mb, GError **error);
	/* Release locks and backend state (not mb itself). Must not remove anything. */
	void (*close)(MpopMailbox *mb);
} MpopMailboxOps;

struct MpopMailbox {
	const MpopMailboxOps *ops;
	const MpopConfig *cfg;
	char *path; /* the maildir directory or the mbox file */
	char *user;
	MpopMessage *msgs;
	guint n_msgs;
	char *stream_raw;	  /* RETR/TOP read buffer, allocated at the first one */
	GStringChunk *strings;	  /* UIDLs, Maildir file names: one block, not one allocation
				   * per message */
	MpopStuffOpts stuff_opts; /* how stored bytes are turned into what is sent */
	gpointer priv;		  /* backend state */
};

/* Find the backend for a format. */
const MpopMailboxOps *mpop_mailbox_ops_for(MpopMailboxFormat format);

/* The maildrop path for user (newly allocated): override (a user list's mailbox field, trusted)
 * when set, else cfg->location, or the format's default (%h/Maildir, %s/%u), expanded by
 * mpop_pattern_expand() with %s = mail_spool_dir. A user name or home that is not safe in a path
 * is refused with MPOP_ERROR_PERM naming the component. */
/* The location pattern in force for a user whose entry names no mailbox: [mailbox] location,
 * else the format's default ("%h/Maildir", "%s/%u"). */
const char *mpop_mailbox_location_pattern(const MpopConfig *cfg);

char *mpop_mailbox_location(const MpopConfig *cfg, const char *user, const char *home,
			    const char *override, GError **error);

/* Open (lock and index) the maildrop at path for user with the given backend. */
MpopMailbox *mpop_mailbox_open(const MpopMailboxOps *ops, const MpopConfig *cfg, const char *user,
			       const char *path, GError **error);

/* Non-deleted count and octets (STAT). */
void mpop_mailbox_stat(const MpopMailbox *mb, guint *out_count, guint64 *out_octets);

/* Queue message idx on out after what is already queued there (the +OK line): the
 * converted message (top_lines < 0: all of it), then ".\r\n"; the queue is written
 * whenever it is full. If the backend fails before any of this reply was written, returns
 * FALSE with *out_broken unset (the caller replaces the +OK with -ERR); if it fails later,
 * returns FALSE with *out_broken set: the connection must be closed. */
gboolean mpop_mailbox_stream(MpopMailbox *mb, guint idx, gint64 top_lines, MpopStream *out,
			     gboolean *out_broken, GError **error);

/* DELE (RFC 1939 §5): mark message idx (0-based) deleted. FALSE when there is no such message
 * or it is already marked. */
gboolean mpop_mailbox_dele(MpopMailbox *mb, guint idx);

/* RSET: unmark every message marked deleted. */
void mpop_mailbox_rset(MpopMailbox *mb);

/* UPDATE: commit deletions. On failure nothing is lost and the error says why. */
gboolean mpop_mailbox_commit(MpopMailbox *mb, GError **error);

/* Count of messages marked deleted. */
guint mpop_mailbox_deleted_count(const MpopMailbox *mb, guint64 *out_octets);

/* Close without UPDATE and free. NULL is accepted. */
void mpop_mailbox_close(MpopMailbox *mb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopMailbox, mpop_mailbox_close)

/* TRUE when s (len bytes) is a valid UIDL: 1..70 chars of 0x21..0x7E. */
gboolean mpop_uidl_valid(const char *s, size_t len);

/* A stable UIDL from arbitrary bytes: lowercase hex of a SHA-256 prefix (40 chars). */
char *mpop_uidl_digest(const void *data, size_t len);
/* The same of what sum (a G_CHECKSUM_SHA256) was fed: a long input read in pieces. */
char *mpop_uidl_digest_of(GChecksum *sum);

/* The n-th variant of the UIDL base: "-n" appended, base cut so the result stays within 70
 * characters (newly allocated). */
char *mpop_uidl_variant(const char *base, guint64 n);

/* Copy s into the mailbox's string block (UIDLs). */
char *mpop_mailbox_intern(MpopMailbox *mb, const char *s);

/* Make the UIDLs of mb->msgs valid and unique: an invalid one (or NULL) becomes a digest of
 * itself, later duplicates get a deterministic "-N" suffix (keeping the 70-char limit); new
 * strings go to mb->strings. Costs one pass through a hash table of message numbers when
 * nothing needs changing. */
void mpop_uidl_make_unique(MpopMailbox *mb);

/* The same for UIDLs the backend made valid, with hashes[i] a hash of msgs[i].uidl (equal
 * strings, equal hashes), so that the check reads no string twice. */
void mpop_uidl_make_unique_hashed(MpopMailbox *mb, const guint32 *hashes);

/* Backends. */
extern const MpopMailboxOps mpop_mailbox_maildir_ops;
extern const MpopMailboxOps mpop_mailbox_mbox_ops;
