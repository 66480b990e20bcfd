/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
#include "auth.h"
typedef int mpop_stub_auth_userlist_t;
