/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the host rules file (mpop_hostrules_parse) and a check of the rules it
 * gives against a few clients. */
#include "hostrules.h"
#include "util.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const clients[] = {"127.0.0.1", "10.1.2.3", "2001:db8::1", "::1"};
	GError *error = NULL;
	MpopHostRules *r = mpop_hostrules_parse((const char *)data, size, "fuzz", &error);

	/* Exactly one of a result and an error, and an error names the file. */
	if ((r != NULL) == (error != NULL) || (error && strncmp(error->message, "fuzz:", 5) != 0))
		__builtin_trap();
	g_clear_error(&error);
	for (size_t i = 0; r && i < G_N_ELEMENTS(clients); i++) {
		MpopHostVerdict v;
		guint8 a[16];
		if (!mpop_addr_parse(clients[i], a))
			__builtin_trap();
		mpop_hostrules_check(r, a, i % 2 ? "mail.example.org" : NULL, &v);
		if (v.line > size + 1 || v.warn_line > size + 1 || (v.denied && !v.line))
			__builtin_trap();
	}
	mpop_hostrules_free(r);
	return 0;
}
