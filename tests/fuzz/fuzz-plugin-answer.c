/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the plugin backend's answer on stdout (mpop_plugin_parse_answer). */
#include "auth-plugin.h"
#include "auth.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Absolute, no control characters, no ".." component. */
static gboolean
path_ok(const char *p)
{
	size_t n = strlen(p);

	if (p[0] != '/' || strstr(p, "/../") || (n >= 3 && strcmp(p + n - 3, "/..") == 0))
		return FALSE;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return FALSE;
	return TRUE;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MpopPluginAnswer a = {0};
	const char *why = NULL;
	int r = mpop_plugin_parse_answer((const char *)data, size, &a, &why);

	if (r != 0 && r != -EINVAL && r != -EPERM)
		__builtin_trap();
	if (r != 0) {
		if (!why || a.mailbox || a.home || a.user)
			__builtin_trap();
		return 0;
	}
	/* What the parser promises the backend. */
	if (a.uid == 0 || a.uid == (uid_t)-1 || size > MPOP_PLUGIN_ANSWER_MAX)
		__builtin_trap();
	if ((a.mailbox && !path_ok(a.mailbox)) || (a.home && !path_ok(a.home)))
		__builtin_trap();
	if (a.user && !mpop_auth_user_name_acceptable(a.user))
		__builtin_trap();
	mpop_plugin_answer_clear(&a);
	return 0;
}
