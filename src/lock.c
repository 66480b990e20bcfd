/* SPDX-License-Identifier: GPL-2.0-or-later */
/* STUB: to be written. */
typedef int mpop_stub_lock_t;
