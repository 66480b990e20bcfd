/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "mailbox.h"
typedef int mpop_stub_mailbox_mbox_t;
