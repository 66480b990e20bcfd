/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "privsep.h"
typedef int mpop_stub_privsep_t;
