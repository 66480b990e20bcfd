/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the Maildir size cache (reader over the whole input, parser line by line,
 * the same verdict both ways) and the sizes in file names (the first 8 bytes: st_size). */
#include "maildir-sizes.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_name(const uint8_t *data, size_t size)
{
	guint64 file_size = 0, out = 0;

	if (size < 8)
		return;
	for (int i = 0; i < 8; i++)
		file_size = file_size << 8 | data[i];
	/* A believed size is one that a file of that size can have. */
	if (mpop_sizes_from_name((const char *)data + 8, size - 8, file_size, &out) &&
	    !mpop_sizes_plausible(file_size, out))
		__builtin_trap();
}

/* The records the parser accepts, line by line, as "size:ino:name;"; NULL when the input as a
 * whole is not a valid cache. */
static GString *
parse_lines(const char *s, size_t len)
{
	GString *res = g_string_new(NULL);
	MpopSizesParser p;
	size_t off = 0;

	mpop_sizes_parser_init(&p);
	while (off < len) {
		const char *lf = memchr(s + off, '\n', len - off);
		MpopSizeRecord r;
		int rc;

		if (lf == NULL)
			goto bad;
		rc = mpop_sizes_parse_line(&p, s + off, (size_t)(lf - s - off), &r);
		if (rc < 0)
			goto bad;
		if (rc > 0) {
			char buf[MPOP_SIZES_LINE_MAX];
			size_t n = mpop_sizes_format(&r, buf);
			/* A record reads back as the line it came from. */
			if (n != (size_t)(lf - s - off) + 1 || memcmp(buf, s + off, n) != 0)
				__builtin_trap();
			g_string_append_printf(res,
					       "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT ":%.*s;",
					       r.size, r.ino, (int)r.base_len, r.base);
		}
		off = (size_t)(lf - s) + 1;
	}
	if (p.header_seen)
		return res;
bad:
	g_string_free(res, TRUE);
	return NULL;
}

static GString *
read_all(const uint8_t *data, size_t size)
{
	int fd = memfd_create("cache", MFD_CLOEXEC);
	g_autoptr(MpopSizesReader) r = NULL;
	GString *res;
	MpopSizeRecord rec;

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) ||
	    lseek(fd, 0, SEEK_SET) != 0)
		__builtin_trap();
	r = mpop_sizes_reader_new(fd, 1 << 20);
	if (r == NULL)
		return NULL;
	res = g_string_new(NULL);
	while (mpop_sizes_reader_next(r, &rec))
		g_string_append_printf(res, "%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT ":%.*s;",
				       rec.size, rec.ino, (int)rec.base_len, rec.base);
	return res;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GString *a, *b;

	check_name(data, size);
	if (size > 1 << 20)
		return 0;
	a = parse_lines((const char *)data, size);
	b = read_all(data, size);
	if ((a == NULL) != (b == NULL) || (a != NULL && !g_string_equal(a, b)))
		__builtin_trap();
	if (a != NULL)
		g_string_free(a, TRUE);
	if (b != NULL)
		g_string_free(b, TRUE);
	return 0;
}
