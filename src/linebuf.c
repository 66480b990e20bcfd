/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "linebuf.h"
typedef int mpop_stub_linebuf_t;
