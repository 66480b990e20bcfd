/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Berkeley mbox backend (placeholder until the backend lands: refuses to open). */
#include "mailbox.h"
#include "util.h"

static gboolean
mbox_open(MpopMailbox *mb, GError **error)
{
	g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM, "mbox backend not available yet");
	return FALSE;
}

const MpopMailboxOps mpop_mailbox_mbox_ops = {
	.name = "mbox",
	.open = mbox_open,
};
