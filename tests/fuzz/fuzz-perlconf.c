/* SPDX-License-Identifier: GPL-2.0-or-later */
/* libFuzzer target: the Perl mpopd's configuration read as data (mpop_perlconf_parse), and a
 * walk over every value it gives. */
#include "perlconf.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t
walk(const MpopPerlValue *v, guint depth)
{
	size_t n = 1;

	if (!v || depth > 40)
		__builtin_trap();
	switch (v->type) {
	case MPOP_PERL_UNDEF:
		break;
	case MPOP_PERL_STRING:
	case MPOP_PERL_CODE:
		n += strlen(v->str);
		break;
	case MPOP_PERL_HASH:
		if (v->keys->len != v->items->len)
			__builtin_trap();
		for (guint i = 0; i < v->keys->len; i++) {
			const char *k = g_ptr_array_index(v->keys, i);
			if (mpop_perl_hash_get(v, k) != g_ptr_array_index(v->items, i))
				__builtin_trap(); /* keys are unique */
		}
		/* fall through */
	case MPOP_PERL_LIST:
		for (guint i = 0; i < v->items->len; i++)
			n += walk(g_ptr_array_index(v->items, i), depth + 1);
		break;
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	GError *error = NULL;
	MpopPerlConf *c = mpop_perlconf_parse((const char *)data, size, "fuzz", &error);

	/* Exactly one of a result and an error, and an error names the file. */
	if ((c != NULL) == (error != NULL) || (error && strncmp(error->message, "fuzz", 4) != 0))
		__builtin_trap();
	g_clear_error(&error);
	for (guint i = 0; c && i < c->settings->len; i++) {
		const MpopPerlSetting *s = g_ptr_array_index(c->settings, i);
		if (mpop_perlconf_get(c, s->name) != s || walk(s->value, 0) == 0)
			__builtin_trap();
	}
	for (guint i = 0; c && i < c->problems->len; i++) {
		const MpopPerlProblem *p = g_ptr_array_index(c->problems, i);
		if (!p->what || !p->message || p->line == 0)
			__builtin_trap();
	}
	mpop_perlconf_free(c);
	return 0;
}
