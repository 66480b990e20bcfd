/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Maildir sizes from file names and the "mpopd-sizes" cache: parser, reader, writer. */
#include "maildir-sizes.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER "mpopd-sizes 2"
#define IO_CHUNK (64 * 1024)

gboolean
mpop_sizes_plausible(guint64 file_size, guint64 size)
{
	return file_size <= G_MAXUINT64 / 4 && size >= file_size && size <= 2 * file_size + 2;
}

/* A decimal number in canonical form (no sign, no leading zero, at most 20 digits) from
 * [*p, end); stops at the first non-digit. */
static gboolean
parse_u64(const char **p, const char *end, guint64 *out)
{
	const char *s = *p;
	guint64 v = 0;

	if (s == end || !g_ascii_isdigit(*s) || (*s == '0' && s + 1 < end && g_ascii_isdigit(s[1])))
		return FALSE;
	for (; s < end && g_ascii_isdigit(*s); s++) {
		guint d = (guint)(*s - '0');
		if (v > (G_MAXUINT64 - d) / 10)
			return FALSE;
		v = v * 10 + d;
	}
	*p = s;
	*out = v;
	return TRUE;
}

gboolean
mpop_sizes_from_name(const char *base, size_t len, guint64 file_size, guint64 *out_size)
{
	const char *p = memchr(base, ',', len), *end = base + len;
	gboolean have_s = FALSE, have_w = FALSE;
	guint64 s = 0, w = 0;

	/* Fields after the unique part: ",S=<file size>" (Courier, Dovecot), ",W=<size with
	 * CRLF line ends>" (Dovecot); anything else is left alone. */
	while (p != NULL && p < end) {
		const char *f = p + 1;
		const char *next = memchr(f, ',', (size_t)(end - f));
		const char *fend = next != NULL ? next : end;

		if (fend - f > 2 && (f[0] == 'S' || f[0] == 'W') && f[1] == '=') {
			gboolean *have = f[0] == 'S' ? &have_s : &have_w;
			guint64 *v = f[0] == 'S' ? &s : &w;
			const char *q = f + 2;
			/* A field given twice, or not a number: the name cannot be believed. */
			if (*have || !parse_u64(&q, fend, v) || q != fend)
				return FALSE;
			*have = TRUE;
		}
		p = next;
	}
	/* ,S= checked against the file proves the name describes this file; ,W= is still a claim,
	 * which the stream checks when the message is sent (mailbox.c). */
	if (!have_s || !have_w || s != file_size || !mpop_sizes_plausible(file_size, w))
		return FALSE;
	*out_size = w;
	return TRUE;
}

gboolean
mpop_sizes_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > MPOP_SIZES_NAME_MAX || name[0] == '.')
		return FALSE;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x21 || c > 0x7e || c == '/' || c == ':')
			return FALSE;
	}
	return TRUE;
}

int
mpop_sizes_cmp(const char *a, size_t alen, guint64 aino, const char *b, size_t blen, guint64 bino)
{
	/* Names hold no NUL, so this is strcmp()'s order. */
	int c = memcmp(a, b, MIN(alen, blen));

	if (c != 0)
		return c < 0 ? -1 : 1;
	if (alen != blen)
		return alen < blen ? -1 : 1;
	return aino < bino ? -1 : aino > bino;
}

void
mpop_sizes_parser_init(MpopSizesParser *p)
{
	memset(p, 0, sizeof(*p));
}

/* "<size> <inode> <base name>" */
static gboolean
parse_record(const char *p, const char *end, MpopSizeRecord *r)
{
	if (!parse_u64(&p, end, &r->size) || p == end || *p++ != ' ' ||
	    !parse_u64(&p, end, &r->ino) || p == end || *p++ != ' ')
		return FALSE;
	r->base = p;
	r->base_len = (size_t)(end - p);
	return mpop_sizes_name_ok(r->base, r->base_len);
}

int
mpop_sizes_parse_line(MpopSizesParser *p, const char *line, size_t len, MpopSizeRecord *out)
{
	MpopSizeRecord r;

	if (!p->header_seen) {
		if (len != strlen(HEADER) || memcmp(line, HEADER, len) != 0)
			return -EINVAL;
		p->header_seen = TRUE;
		return 0;
	}
	if (len >= MPOP_SIZES_LINE_MAX || !parse_record(line, line + len, &r))
		return -EINVAL;
	/* Strictly increasing: the reader can walk it beside the sorted directory listing, and a
	 * name and inode appear once. */
	if (p->have_prev &&
	    mpop_sizes_cmp(p->prev, p->prev_len, p->prev_ino, r.base, r.base_len, r.ino) >= 0)
		return -EINVAL;
	memcpy(p->prev, r.base, r.base_len);
	p->prev_len = r.base_len;
	p->prev_ino = r.ino;
	p->have_prev = TRUE;
	*out = r;
	return 1;
}

gboolean
mpop_sizes_storable(const MpopSizeRecord *rec)
{
	return mpop_sizes_name_ok(rec->base, rec->base_len);
}

size_t
mpop_sizes_format(const MpopSizeRecord *rec, char *buf)
{
	int n;

	if (!mpop_sizes_storable(rec))
		return 0;
	n = g_snprintf(buf, MPOP_SIZES_LINE_MAX,
		       "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT " %.*s\n", rec->size, rec->ino,
		       (int)rec->base_len, rec->base);
	return n > 0 && n < MPOP_SIZES_LINE_MAX ? (size_t)n : 0;
}

/* ---- reader ---- */

struct MpopSizesReader {
	int fd;
	guint64 max_bytes, total;
	char *buf;
	size_t len, pos;
	gboolean eof;
	MpopSizesParser parser;
};

/* The next line (without its '\n'): 1, 0 at a clean end, -EINVAL for a line that is too long,
 * has no '\n' (a truncated file) or takes the file past max_bytes; -errno for a read error. */
static int
next_line(MpopSizesReader *r, const char **out_line, size_t *out_len)
{
	for (;;) {
		const char *lf = memchr(r->buf + r->pos, '\n', r->len - r->pos);
		ssize_t n;

		if (lf != NULL) {
			*out_line = r->buf + r->pos;
			*out_len = (size_t)(lf - *out_line);
			r->pos += *out_len + 1;
			return *out_len < MPOP_SIZES_LINE_MAX ? 1 : -EINVAL;
		}
		if (r->len - r->pos >= MPOP_SIZES_LINE_MAX)
			return -EINVAL;
		if (r->eof)
			return r->len == r->pos ? 0 : -EINVAL;
		/* Lines already used are dropped only when the buffer is nearly full, so a file
		 * that fits stays whole in it (mpop_sizes_reader_new reads it twice from there). */
		if (IO_CHUNK - r->len < MPOP_SIZES_LINE_MAX) {
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = 0;
		}
		n = mpop_read_some(r->fd, r->buf + r->len, IO_CHUNK - r->len);
		if (n < 0)
			return (int)n;
		r->total += (guint64)n;
		if (r->total > r->max_bytes)
			return -EINVAL;
		r->eof = n == 0;
		r->len += (size_t)n;
	}
}

static void
reader_rewind(MpopSizesReader *r)
{
	r->len = r->pos = 0;
	r->total = 0;
	r->eof = FALSE;
	mpop_sizes_parser_init(&r->parser);
}

MpopSizesReader *
mpop_sizes_reader_new(int fd, guint64 max_bytes)
{
	g_autoptr(MpopSizesReader) r = g_new0(MpopSizesReader, 1);
	struct stat sb;
	const char *line;
	size_t len;
	int rc;

	r->fd = fd;
	r->max_bytes = max_bytes;
	/* Only the owner's own cache: a file someone else could have written says nothing. */
	if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (guint64)sb.st_size > max_bytes)
		return NULL;
	r->buf = g_malloc(IO_CHUNK);
	/* Checked whole before any record is used: a truncated or damaged cache is absent. */
	while ((rc = next_line(r, &line, &len)) > 0) {
		MpopSizeRecord rec;
		if (mpop_sizes_parse_line(&r->parser, line, len, &rec) < 0)
			return NULL;
	}
	if (rc < 0 || !r->parser.header_seen)
		return NULL;
	if (r->total == r->len) {
		/* The whole file is still in the buffer (the usual case: a cache of up to ~1 000
		 * messages fits): read it again from there, not from the file. */
		r->pos = 0;
		mpop_sizes_parser_init(&r->parser);
	} else {
		if (lseek(fd, 0, SEEK_SET) != 0)
			return NULL;
		reader_rewind(r);
	}
	return g_steal_pointer(&r);
}

MpopSizesReader *
mpop_sizes_reader_open(int dir_fd, guint64 max_bytes)
{
	/* O_NONBLOCK: a FIFO in its place must not block the login. */
	int fd = openat(dir_fd, MPOP_SIZES_FILE,
			O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	return mpop_sizes_reader_new(fd, max_bytes);
}

gboolean
mpop_sizes_reader_next(MpopSizesReader *r, MpopSizeRecord *out)
{
	const char *line;
	size_t len;

	/* The file was valid when checked; if it changed since, stop at the first bad line. */
	while (next_line(r, &line, &len) > 0) {
		int rc = mpop_sizes_parse_line(&r->parser, line, len, out);
		if (rc < 0)
			break;
		if (rc > 0)
			return TRUE;
	}
	r->eof = TRUE;
	r->pos = r->len;
	return FALSE;
}

void
mpop_sizes_reader_free(MpopSizesReader *r)
{
	if (r == NULL)
		return;
	mpop_close_fdp(&r->fd);
	g_free(r->buf);
	g_free(r);
}

/* ---- writer ---- */

struct MpopSizesWriter {
	int dir_fd;
	int fd;
	int err; /* the first write error */
	GString *out;
	MpopSizesParser order; /* the last record added, for the order check */
};

MpopSizesWriter *
mpop_sizes_writer_new(int dir_fd, int *out_err)
{
	MpopSizesWriter *w;
	int fd;

	/* A fresh file, never one found under the name (a leftover, a link someone made). */
	if (unlinkat(dir_fd, MPOP_SIZES_TMP, 0) < 0 && errno != ENOENT) {
		*out_err = -errno;
		return NULL;
	}
	fd = openat(dir_fd, MPOP_SIZES_TMP, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		*out_err = -errno;
		return NULL;
	}
	w = g_new0(MpopSizesWriter, 1);
	w->dir_fd = dir_fd;
	w->fd = fd;
	w->out = g_string_sized_new(IO_CHUNK + MPOP_SIZES_LINE_MAX);
	g_string_append(w->out, HEADER "\n");
	mpop_sizes_parser_init(&w->order);
	w->order.header_seen = TRUE;
	return w;
}

static void
writer_flush(MpopSizesWriter *w)
{
	if (w->err == 0 && w->out->len > 0)
		w->err = mpop_write_all(w->fd, w->out->str, w->out->len);
	g_string_truncate(w->out, 0);
}

void
mpop_sizes_writer_add(MpopSizesWriter *w, const MpopSizeRecord *rec)
{
	char line[MPOP_SIZES_LINE_MAX];
	size_t n = mpop_sizes_format(rec, line);
	MpopSizeRecord check;

	/* What the writer writes is exactly what the parser accepts. */
	if (n == 0 || mpop_sizes_parse_line(&w->order, line, n - 1, &check) != 1)
		return;
	g_string_append_len(w->out, line, (gssize)n);
	if (w->out->len >= IO_CHUNK)
		writer_flush(w);
}

int
mpop_sizes_writer_commit(MpopSizesWriter *w)
{
	int rc;

	writer_flush(w);
	rc = w->err;
	/* No fsync: a cache torn by a crash fails the whole-file check and is rebuilt, and a
	 * record names the file (name and inode) it describes. */
	if (close(w->fd) < 0 && rc == 0)
		rc = -errno;
	w->fd = -1;
	if (rc == 0 && renameat(w->dir_fd, MPOP_SIZES_TMP, w->dir_fd, MPOP_SIZES_FILE) < 0)
		rc = -errno;
	if (rc == 0)
		w->dir_fd = -1; /* nothing to remove */
	mpop_sizes_writer_free(w);
	return rc;
}

void
mpop_sizes_writer_free(MpopSizesWriter *w)
{
	if (w == NULL)
		return;
	mpop_close_fdp(&w->fd);
	if (w->dir_fd >= 0)
		unlinkat(w->dir_fd, MPOP_SIZES_TMP, 0);
	g_string_free(w->out, TRUE);
	g_free(w);
}

int
mpop_sizes_store_one(int dir_fd, const MpopSizeRecord *rec, guint64 max_bytes)
{
	g_autoptr(MpopSizesReader) r = mpop_sizes_reader_open(dir_fd, max_bytes);
	MpopSizesWriter *w;
	MpopSizeRecord old;
	gboolean added = FALSE;
	int err = 0;

	w = mpop_sizes_writer_new(dir_fd, &err);
	if (w == NULL)
		return err;
	while (r != NULL && mpop_sizes_reader_next(r, &old)) {
		int c = mpop_sizes_cmp(old.base, old.base_len, old.ino, rec->base, rec->base_len,
				       rec->ino);
		if (c >= 0 && !added) {
			mpop_sizes_writer_add(w, rec);
			added = TRUE;
		}
		if (c != 0)
			mpop_sizes_writer_add(w, &old);
	}
	if (!added)
		mpop_sizes_writer_add(w, rec);
	return mpop_sizes_writer_commit(w);
}

guint64
mpop_sizes_max_bytes(guint n)
{
	return sizeof(HEADER) + (2 * (guint64)n + 1024) * MPOP_SIZES_LINE_MAX;
}
