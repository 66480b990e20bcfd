/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "dotstuff.h"
typedef int mpop_stub_dotstuff_t;
