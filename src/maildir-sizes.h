/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Maildir message sizes without reading the messages: the sizes delivery agents put in file
 * names, and the size cache "mpopd-sizes" kept in the Maildir (written by the mailbox owner,
 * read as untrusted input). */
#pragma once

#include <glib.h>
#include <sys/types.h>

#define MPOP_SIZES_FILE "mpopd-sizes"
#define MPOP_SIZES_TMP "mpopd-sizes.tmp"
/* The longest base name a record holds (NAME_MAX), and the longest record line. */
#define MPOP_SIZES_NAME_MAX 255
#define MPOP_SIZES_LINE_MAX 384

/* One cached size: what the message with this unique name and inode sends. */
typedef struct {
	const char *base; /* the unique name (file name up to ':'), base_len bytes, not
			   * NUL-terminated; points into the reader until its next call */
	size_t base_len;
	guint64 ino;
	guint64 size; /* octets as sent (RFC 1939 §5: CRLF line ends, before stuffing) */
} MpopSizeRecord;

/* TRUE when size is possible for a file of file_size bytes sent with CRLF line ends and
 * nothing hidden: every byte kept, at most one CR added per byte, and a last CRLF. */
gboolean mpop_sizes_plausible(guint64 file_size, guint64 size);

/* The size a name gives (base: the unique name, untrusted): Dovecot's ",W=<size with CRLF>",
 * believed only next to a ",S=<file size>" equal to file_size (the file's st_size) and when
 * plausible. FALSE when the name gives no size that can be believed. */
gboolean mpop_sizes_from_name(const char *base, size_t len, guint64 file_size, guint64 *out_size);

/* TRUE when name (len bytes) can be a record's base name: 1..255 bytes of 0x21..0x7E other
 * than '/' and ':', not starting with '.'. */
gboolean mpop_sizes_name_ok(const char *name, size_t len);

/* Record order: base names as strcmp() orders them, then inodes (the Maildir backend's
 * order). */
int mpop_sizes_cmp(const char *a, size_t alen, guint64 aino, const char *b, size_t blen,
		   guint64 bino);

/* The line parser: the header line first, then records in strictly increasing order. */
typedef struct {
	gboolean header_seen;
	gboolean have_prev;
	guint64 prev_ino;
	size_t prev_len;
	char prev[MPOP_SIZES_NAME_MAX];
} MpopSizesParser;

void mpop_sizes_parser_init(MpopSizesParser *p);

/* Parse one line (len bytes, the '\n' excluded; untrusted). Returns 1 with *out set (out->base
 * points into line), 0 for the header, -EINVAL for anything else. */
int mpop_sizes_parse_line(MpopSizesParser *p, const char *line, size_t len, MpopSizeRecord *out);

/* TRUE when rec can be stored: a name that is mpop_sizes_name_ok(). */
gboolean mpop_sizes_storable(const MpopSizeRecord *rec);

/* Format rec as one line with its '\n' into buf (MPOP_SIZES_LINE_MAX bytes). Returns its length,
 * or 0 when rec cannot be stored (a name that is not mpop_sizes_name_ok()). */
size_t mpop_sizes_format(const MpopSizeRecord *rec, char *buf);

typedef struct MpopSizesReader MpopSizesReader;

/* Read a cache from fd (taken over, closed by free): checked whole first, so a cache that is
 * not a regular file owned by the effective uid, is larger than max_bytes, or holds one line
 * that is not valid, is treated as absent (NULL). */
MpopSizesReader *mpop_sizes_reader_new(int fd, guint64 max_bytes);

/* The cache of the Maildir dir_fd, opened without following a symlink; NULL when absent or
 * not valid (as above). */
MpopSizesReader *mpop_sizes_reader_open(int dir_fd, guint64 max_bytes);

/* The next record: TRUE with *out set (valid until the next call), FALSE at the end. */
gboolean mpop_sizes_reader_next(MpopSizesReader *r, MpopSizeRecord *out);

void mpop_sizes_reader_free(MpopSizesReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopSizesReader, mpop_sizes_reader_free)

typedef struct MpopSizesWriter MpopSizesWriter;

/* Start a new cache in dir_fd (a temporary file, created afresh). NULL with -errno in *out_err
 * when it cannot be created (a read-only Maildir). */
MpopSizesWriter *mpop_sizes_writer_new(int dir_fd, int *out_err);

/* Add a record; records must come in mpop_sizes_cmp() order: one that does not, or that cannot
 * be stored, is left out. */
void mpop_sizes_writer_add(MpopSizesWriter *w, const MpopSizeRecord *rec);

/* Replace the cache with what was added (rename over it) and free w. Returns 0 or -errno (the
 * old cache is then untouched and the temporary file removed). */
int mpop_sizes_writer_commit(MpopSizesWriter *w);

/* Drop what was written and free w. NULL is accepted. */
void mpop_sizes_writer_free(MpopSizesWriter *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopSizesWriter, mpop_sizes_writer_free)

/* Store one record in the cache of dir_fd, replacing the record of the same name and inode:
 * the cache is rewritten with its other valid records. Returns 0 or -errno. */
int mpop_sizes_store_one(int dir_fd, const MpopSizeRecord *rec, guint64 max_bytes);

/* The largest cache file read for a Maildir of n messages: room for twice as many records. */
guint64 mpop_sizes_max_bytes(guint n);
