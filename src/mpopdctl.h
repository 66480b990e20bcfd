/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Pieces of mpopdctl in files of their own. */
#pragma once

#include <glib.h>

/* The passwd verb: scheme yescrypt (NULL), sha512, bcrypt or md5. Returns the exit status. */
int mpop_ctl_passwd(const char *scheme);

/* The stats verb with its own options (argv[0] is "stats"). Returns the exit status. */
int mpop_ctl_stats(int argc, char **argv);
