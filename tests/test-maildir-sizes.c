/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests for maildir-sizes.c: sizes in file names, the cache's parser, reader and writer. */
#include "maildir-sizes.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_from_name(void)
{
	static const struct {
		const char *base;
		guint64 file_size;
		gboolean ok;
		guint64 size;
	} cases[] = {
		/* Dovecot: both fields, ,S= equal to st_size. */
		{"1700000000.M1P2.host,S=100,W=104", 100, TRUE, 104},
		{"1700000000.M1P2.host,W=104,S=100", 100, TRUE, 104},
		{"1700000000.M1P2.host,S=0,W=0", 0, TRUE, 0},
		{"1.2.h,S=100,W=202", 100, TRUE, 202},
		{"1.2.h,X=7,S=100,W=100,Y", 100, TRUE, 100},
		/* ,S= that is not the file's size: another file, nothing believed. */
		{"1.2.h,S=101,W=104", 100, FALSE, 0},
		{"1.2.h,S=99,W=104", 100, FALSE, 0},
		/* Only one of the two: ,S= alone says nothing about CRLF, ,W= alone is unchecked.
		 */
		{"1.2.h,S=100", 100, FALSE, 0},
		{"1.2.h,W=104", 100, FALSE, 0},
		{"1.2.host", 100, FALSE, 0},
		/* Impossible sizes with CRLF line ends. */
		{"1.2.h,S=100,W=99", 100, FALSE, 0},
		{"1.2.h,S=100,W=203", 100, FALSE, 0},
		/* Not canonical numbers, twice, empty, overflow. */
		{"1.2.h,S=0100,W=104", 100, FALSE, 0},
		{"1.2.h,S=100,W=+104", 100, FALSE, 0},
		{"1.2.h,S=100,W=104x", 100, FALSE, 0},
		{"1.2.h,S=100,W=", 100, FALSE, 0},
		{"1.2.h,S=100,W=104,W=104", 100, FALSE, 0},
		{"1.2.h,S=100,S=100,W=104", 100, FALSE, 0},
		{"1.2.h,S=100,W=99999999999999999999999", 100, FALSE, 0},
		{"1.2.h,S=18446744073709551615,W=18446744073709551615", G_MAXUINT64, FALSE, 0},
		/* Lower case is not the field. */
		{"1.2.h,s=100,w=104", 100, FALSE, 0},
	};

	for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
		guint64 size = 7;
		gboolean ok = mpop_sizes_from_name(cases[i].base, strlen(cases[i].base),
						   cases[i].file_size, &size);
		g_test_message("%s", cases[i].base);
		g_assert_cmpint(ok, ==, cases[i].ok);
		g_assert_cmpuint(size, ==, cases[i].ok ? cases[i].size : 7);
	}
	/* Only the given length is read. */
	{
		guint64 size = 0;
		g_assert_false(mpop_sizes_from_name("1,S=5,W=6", 5, 5, &size));
		g_assert_true(mpop_sizes_from_name("1,S=5,W=6,W=6", 9, 5, &size));
		g_assert_cmpuint(size, ==, 6);
	}
}

/* Every byte value, against the rule written out. */
static void
test_name_ok(void)
{
	char name[300];

	for (guint c = 0; c < 256; c++) {
		gboolean want = c >= 0x21 && c <= 0x7e && c != '/' && c != ':';
		char mid[3] = {'a', (char)c, 'b'};
		char one[1] = {(char)c};
		g_assert_cmpint(mpop_sizes_name_ok(mid, 3), ==, want);
		g_assert_cmpint(mpop_sizes_name_ok(one, 1), ==, want && c != '.');
	}
	g_assert_false(mpop_sizes_name_ok("", 0));
	g_assert_false(mpop_sizes_name_ok(".a", 2));
	g_assert_true(mpop_sizes_name_ok("a.", 2));
	memset(name, 'n', sizeof(name));
	g_assert_true(mpop_sizes_name_ok(name, 255));
	g_assert_false(mpop_sizes_name_ok(name, 256));
}

static void
test_parse_line(void)
{
	static const char *const bad[] = {
		"",
		"1",
		"6 12",
		"6 12 ",
		"6 name",
		"6  12 name",
		"6 12  name",
		"06 12 name",
		"6 012 name",
		"-6 12 name",
		"6 -12 name",
		"+6 12 name",
		"6 12 na/me",
		"6 12 na:me",
		"6 12 .name",
		"6 12 na me",
		"6 12 name\r",
		"6 12 name\t",
		"6 12 n\x7fme",
		"6 18446744073709551616 name",
		"18446744073709551616 12 name",
		/* The first format's records: not read (such a cache is rebuilt). */
		"6 4 12 1700000000.000000001 name",
	};
	MpopSizesParser p;
	MpopSizeRecord r;
	char line[MPOP_SIZES_LINE_MAX + 300];

	mpop_sizes_parser_init(&p);
	/* The header first, exactly; a cache of the first format is absent. */
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 12 a", 6, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "mpopd-sizes 1", 13, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "mpopd-sizes 2 ", 14, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "mpopd-sizes 2", 13, &r), ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		MpopSizesParser q = p;
		g_test_message("%s", bad[i]);
		g_assert_cmpint(mpop_sizes_parse_line(&q, bad[i], strlen(bad[i]), &r), ==, -EINVAL);
	}
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 12 b", 6, &r), ==, 1);
	g_assert_cmpuint(r.size, ==, 6);
	g_assert_cmpuint(r.ino, ==, 12);
	g_assert_cmpuint(r.base_len, ==, 1);
	g_assert_cmpint(r.base[0], ==, 'b');
	/* Strictly increasing by name, then inode. */
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 12 b", 6, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 11 b", 6, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 9 a", 5, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "6 13 b", 6, &r), ==, 1);
	g_assert_cmpint(mpop_sizes_parse_line(&p, "0 1 ba", 6, &r), ==, 1);
	g_assert_cmpint(
		mpop_sizes_parse_line(&p, "18446744073709551615 18446744073709551615 bb", 44, &r),
		==, 1);
	g_assert_cmpuint(r.size, ==, G_MAXUINT64);
	g_assert_cmpuint(r.ino, ==, G_MAXUINT64);
	/* Names up to 255 bytes; longer lines are refused. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "6 1 ", 4);
	g_assert_cmpint(mpop_sizes_parse_line(&p, line, 4 + 255, &r), ==, 1);
	g_assert_cmpint(mpop_sizes_parse_line(&p, line, 4 + 256, &r), ==, -EINVAL);
	g_assert_cmpint(mpop_sizes_parse_line(&p, line, sizeof(line), &r), ==, -EINVAL);
}

static void
test_format(void)
{
	char buf[MPOP_SIZES_LINE_MAX];
	char name[300];
	MpopSizeRecord r = {.base = "1.2.host,S=4", .base_len = 12, .ino = 77, .size = 6};
	MpopSizesParser p;
	MpopSizeRecord back;
	size_t n = mpop_sizes_format(&r, buf);

	g_assert_cmpuint(n, >, 0);
	g_assert_cmpstr(buf, ==, "6 77 1.2.host,S=4\n");
	mpop_sizes_parser_init(&p);
	p.header_seen = TRUE;
	g_assert_cmpint(mpop_sizes_parse_line(&p, buf, n - 1, &back), ==, 1);
	g_assert_cmpuint(back.size, ==, 6);
	g_assert_cmpuint(back.ino, ==, 77);
	/* What the parser refuses is never written. */
	r.base = "a b";
	r.base_len = 3;
	g_assert_cmpuint(mpop_sizes_format(&r, buf), ==, 0);
	r.base = ".ab";
	g_assert_cmpuint(mpop_sizes_format(&r, buf), ==, 0);
	memset(name, 'n', sizeof(name));
	r.base = name;
	r.base_len = 255;
	r.size = G_MAXUINT64;
	r.ino = G_MAXUINT64;
	n = mpop_sizes_format(&r, buf);
	g_assert_cmpuint(n, >, 0);
	g_assert_cmpuint(n, <, MPOP_SIZES_LINE_MAX);
	r.base_len = 256;
	g_assert_cmpuint(mpop_sizes_format(&r, buf), ==, 0);
}

/* ---- reader and writer on files ---- */

static char *
tmpdir(void)
{
	g_autoptr(GError) error = NULL;
	char *d = g_dir_make_tmp("mpop-sizes-XXXXXX", &error);

	g_assert_no_error(error);
	return d;
}

static void
rm_rf(const char *dir)
{
	g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
	g_assert_cmpint(system(cmd), ==, 0);
}

static int
open_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	g_assert_cmpint(fd, >=, 0);
	return fd;
}

static void
write_cache(const char *dir, const char *data, gssize len)
{
	g_autofree char *p = g_build_filename(dir, MPOP_SIZES_FILE, NULL);
	g_autoptr(GError) error = NULL;

	g_file_set_contents(p, data, len, &error);
	g_assert_no_error(error);
}

/* The records of the cache in dir as "size:name" lines; NULL when it is treated as absent. */
static char *
read_cache(int dir_fd, guint64 max)
{
	g_autoptr(MpopSizesReader) r = mpop_sizes_reader_open(dir_fd, max);
	GString *s;
	MpopSizeRecord rec;

	if (r == NULL)
		return NULL;
	s = g_string_new(NULL);
	while (mpop_sizes_reader_next(r, &rec))
		g_string_append_printf(s, "%" G_GUINT64_FORMAT ":%.*s;", rec.size,
				       (int)rec.base_len, rec.base);
	return g_string_free(s, FALSE);
}

#define VALID                                                                                      \
	"mpopd-sizes 2\n"                                                                          \
	"6 12 a\n"                                                                                 \
	"9 3 b\n"

static void
test_reader(void)
{
	g_autofree char *dir = tmpdir();
	g_autofree char *cache = g_build_filename(dir, MPOP_SIZES_FILE, NULL);
	g_autofree char *other = g_build_filename(dir, "other", NULL);
	int dfd = open_dir(dir);
	g_autofree char *got = NULL;
	size_t vlen = strlen(VALID);

	g_assert_null(read_cache(dfd, 1 << 20)); /* missing */
	write_cache(dir, VALID, -1);
	got = read_cache(dfd, 1 << 20);
	g_assert_cmpstr(got, ==, "6:a;9:b;");
	g_clear_pointer(&got, g_free);
	/* Every truncation: a cut inside a line makes the whole file absent; a cut at a line end
	 * is a valid shorter cache. */
	for (size_t n = 0; n < vlen; n++) {
		write_cache(dir, VALID, (gssize)n);
		got = read_cache(dfd, 1 << 20);
		if (n == 14)
			g_assert_cmpstr(got, ==, "");
		else if (n == 14 + 7)
			g_assert_cmpstr(got, ==, "6:a;");
		else
			g_assert_null(got);
		g_clear_pointer(&got, g_free);
	}
	/* One bad line anywhere, NUL bytes, a torn block of zeros, out of order: absent. */
	write_cache(dir, VALID "garbage\n", -1);
	g_assert_null(read_cache(dfd, 1 << 20));
	write_cache(dir, "mpopd-sizes 2\n6 12 a\n\0\0\0\0\n", 26);
	g_assert_null(read_cache(dfd, 1 << 20));
	write_cache(dir, "mpopd-sizes 2\n9 3 b\n6 12 a\n", -1);
	g_assert_null(read_cache(dfd, 1 << 20));
	/* The first format (a file size and mtime in each record): absent, so rebuilt. */
	write_cache(dir, "mpopd-sizes 1\n6 4 12 1700000000.000000001 a\n", -1);
	g_assert_null(read_cache(dfd, 1 << 20));
	/* Larger than the bound the Maildir allows. */
	write_cache(dir, VALID, -1);
	g_assert_null(read_cache(dfd, vlen - 1));
	got = read_cache(dfd, vlen);
	g_assert_cmpstr(got, ==, "6:a;9:b;");
	g_clear_pointer(&got, g_free);
	/* A cache larger than the reader's buffer is read from the file twice (checked whole,
	 * then used), one that fits from the buffer: the same records either way. */
	{
		g_autoptr(GString) big = g_string_new("mpopd-sizes 2\n");
		g_autoptr(GString) want = g_string_new(NULL);

		for (guint i = 0; i < 4000; i++) {
			g_string_append_printf(big, "%u %u m%05u.host\n", 1000 + i, 50000 + i, i);
			g_string_append_printf(want, "%u:m%05u.host;", 1000 + i, i);
		}
		g_assert_cmpuint(big->len, >, 64 * 1024);
		write_cache(dir, big->str, -1);
		got = read_cache(dfd, 1 << 20);
		g_assert_cmpstr(got, ==, want->str);
		g_clear_pointer(&got, g_free);
	}
	/* A line longer than any record, without a newline. */
	{
		g_autofree char *big = g_strnfill(100000, '7');
		g_autofree char *s = g_strconcat("mpopd-sizes 2\n", big, NULL);
		write_cache(dir, s, -1);
		g_assert_null(read_cache(dfd, 1 << 20));
	}
	/* A symlink to a valid cache is not followed. */
	unlink(cache);
	g_file_set_contents(other, VALID, -1, NULL);
	g_assert_cmpint(symlink("other", cache), ==, 0);
	g_assert_null(read_cache(dfd, 1 << 20));
	unlink(cache);
	/* A directory or a FIFO (which must not block the login) in its place. */
	g_assert_cmpint(mkfifo(cache, 0600), ==, 0);
	g_assert_null(read_cache(dfd, 1 << 20));
	unlink(cache);
	g_assert_cmpint(mkdir(cache, 0700), ==, 0);
	g_assert_null(read_cache(dfd, 1 << 20));
	rmdir(cache);
	/* Another owner's file says nothing (needs root to make one). */
	if (geteuid() == 0) {
		write_cache(dir, VALID, -1);
		g_assert_cmpint(chown(cache, 12345, 12345), ==, 0);
		g_assert_null(read_cache(dfd, 1 << 20));
	}
	close(dfd);
	rm_rf(dir);
}

static MpopSizeRecord
rec(const char *base, guint64 ino, guint64 size)
{
	return (MpopSizeRecord){.base = base, .base_len = strlen(base), .ino = ino, .size = size};
}

static void
test_writer(void)
{
	g_autofree char *dir = tmpdir();
	g_autofree char *tmp = g_build_filename(dir, MPOP_SIZES_TMP, NULL);
	g_autofree char *target = g_build_filename(dir, "target", NULL);
	g_autofree char *got = NULL;
	g_autofree char *data = NULL;
	int dfd = open_dir(dir);
	MpopSizesWriter *w;
	MpopSizeRecord r;
	int err = 0;

	/* Records out of order or not storable are left out; the result always reads back. */
	w = mpop_sizes_writer_new(dfd, &err);
	g_assert_nonnull(w);
	r = rec("b", 5, 10);
	mpop_sizes_writer_add(w, &r);
	r = rec("a", 1, 10);
	mpop_sizes_writer_add(w, &r);
	r = rec("b", 5, 10);
	mpop_sizes_writer_add(w, &r);
	r = rec("b", 6, 10);
	mpop_sizes_writer_add(w, &r);
	r = rec("c d", 1, 10);
	mpop_sizes_writer_add(w, &r);
	r = rec(".e", 1, 10);
	mpop_sizes_writer_add(w, &r);
	g_assert_cmpint(mpop_sizes_writer_commit(w), ==, 0);
	got = read_cache(dfd, 1 << 20);
	g_assert_cmpstr(got, ==, "10:b;10:b;");
	g_clear_pointer(&got, g_free);
	g_assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));

	/* store_one replaces the record of the same name and inode, inserts in order. */
	r = rec("b", 5, 10);
	r.size = 12;
	g_assert_cmpint(mpop_sizes_store_one(dfd, &r, 1 << 20), ==, 0);
	r = rec("a", 9, 3);
	g_assert_cmpint(mpop_sizes_store_one(dfd, &r, 1 << 20), ==, 0);
	r = rec("z", 1, 3);
	g_assert_cmpint(mpop_sizes_store_one(dfd, &r, 1 << 20), ==, 0);
	got = read_cache(dfd, 1 << 20);
	g_assert_cmpstr(got, ==, "3:a;12:b;10:b;3:z;");
	g_clear_pointer(&got, g_free);

	/* A leftover temporary file that is a symlink: replaced, its target untouched. */
	g_file_set_contents(target, "keep", -1, NULL);
	g_assert_cmpint(symlink("target", tmp), ==, 0);
	w = mpop_sizes_writer_new(dfd, &err);
	g_assert_nonnull(w);
	mpop_sizes_writer_free(w); /* dropped: the old cache stays, no temporary file */
	g_assert_false(g_file_test(tmp, G_FILE_TEST_EXISTS));
	got = read_cache(dfd, 1 << 20);
	g_assert_cmpstr(got, ==, "3:a;12:b;10:b;3:z;");
	g_clear_pointer(&got, g_free);
	g_file_get_contents(target, &data, NULL, NULL);
	g_assert_cmpstr(data, ==, "keep");
	close(dfd);
	rm_rf(dir);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
	g_test_add_func("/maildir-sizes/from-name", test_from_name);
	g_test_add_func("/maildir-sizes/name-ok", test_name_ok);
	g_test_add_func("/maildir-sizes/parse-line", test_parse_line);
	g_test_add_func("/maildir-sizes/format", test_format);
	g_test_add_func("/maildir-sizes/reader", test_reader);
	g_test_add_func("/maildir-sizes/writer", test_writer);
	return g_test_run();
}
