/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "listener.h"
typedef int mpop_stub_listener_t;
