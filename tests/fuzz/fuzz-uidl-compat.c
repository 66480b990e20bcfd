/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz the readers of other servers' UIDL state: a dovecot-uidlist file, an mbox's first
 * message with X-IMAPbase, X-UID and popa3d's header lines. Every answer is a valid UIDL. */
#include "mailbox-mbox.h"
#include "uidl-compat.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_uidlist(const char *d, size_t n)
{
	g_autoptr(GHashTable) t = mpop_uidl_dovecot_uidlist(d, n);
	GHashTableIter it;
	gpointer k, v;

	if (t == NULL)
		return;
	g_hash_table_iter_init(&it, t);
	while (g_hash_table_iter_next(&it, &k, &v))
		if (strchr(k, '/') != NULL || strchr(k, ':') != NULL ||
		    !mpop_uidl_valid(v, strlen(v)))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const sources[] = {"dovecot", "popa3d", NULL};
	static const char *const dovecot[] = {"dovecot", NULL};
	const char *d = (const char *)data;
	char out[MPOP_UIDL_MAX + 1];
	MpopUidlPlan plan;
	guint32 a, b;

	check_uidlist(d, size);
	if (mpop_uidl_imapbase_parse(d, size, &a, &b) && (a == 0 || b == 0))
		abort();
	mpop_mbox_uidl_plan(dovecot, &plan);
	mpop_mbox_uidl_plan_mailbox(&plan, d, size);
	if ((plan.uidvalidity == 0) != (plan.last_uid == 0))
		abort();
	if (mpop_mbox_uidl(d, size, sources, out) != strlen(out) ||
	    !mpop_uidl_valid(out, strlen(out)))
		abort();
	if (mpop_mbox_uidl_planned(d, size, &plan, out) != strlen(out) ||
	    !mpop_uidl_valid(out, strlen(out)))
		abort();
	return 0;
}
