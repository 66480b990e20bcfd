/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "session.h"
typedef int mpop_stub_session_t;
