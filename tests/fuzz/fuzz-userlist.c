/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: user list lines (mpop_userlist_parse_line), fed whole and line by line. */
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_one(const char *line, size_t len)
{
	MpopUserlistEntry e = {0};
	int r = mpop_userlist_parse_line(line, len, &e);

	if (r != 0 && r != 1 && r != -EINVAL)
		__builtin_trap();
	if (r == 0) {
		/* What the parser promises the backend. */
		if (!e.name || !*e.name || !e.hash || !*e.hash || strchr(e.name, ':') ||
		    e.uid == (uid_t)-1 || (e.mailbox && e.mailbox[0] != '/'))
			__builtin_trap();
	} else if (e.name || e.hash || e.mailbox) {
		__builtin_trap();
	}
	mpop_userlist_entry_clear(&e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t pos = 0;

	check_one(p, size);
	/* The way the backend walks a file: one line at a time, newline included. */
	while (pos < size) {
		const char *nl = memchr(p + pos, '\n', size - pos);
		size_t end = nl ? (size_t)(nl - p) + 1 : size;
		check_one(p + pos, end - pos);
		pos = end;
	}
	return 0;
}
