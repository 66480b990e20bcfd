/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "pop3.h"
typedef int mpop_stub_pop3_t;
