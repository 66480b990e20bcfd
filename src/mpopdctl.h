/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl's pieces: the command line every verb gets, running programs, the two ways of
 * managing mpopd (systemd units, a legacy daemon's pid file), verbs in files of their own. */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* Exit statuses (mpopdctl(8) EXIT STATUS). The status verb follows the LSB instead:
 * 0 running, 1 stale pid file, 3 not running, 4 unknown. */
enum {
	MPOP_CTL_OK = 0,
	MPOP_CTL_FAILED = 1,
	MPOP_CTL_USAGE = 2,
	MPOP_CTL_NOT_RUNNING = 3,
	MPOP_CTL_PERMISSION = 4,
	MPOP_CTL_RUNNING = 5,
	MPOP_CTL_CONFIG = 6,
	MPOP_CTL_STALE = 7,
};

/* The command line. Verbs with arguments of their own (MPOP_CTL_OPT_ARGS in the verb table)
 * read argc/argv, where argv[0] is the verb; for the others main has parsed them. */
typedef struct {
	gboolean force;
	gboolean edit;
	const char *port;
	const char *config; /* -c, NULL: the default file */
	const char *scheme;
	const char *verb;
	int argc;
	char **argv;
} MpopCtl;

/* The passwd verb: scheme yescrypt (NULL), sha512, bcrypt or md5. Returns the exit status. */
int mpop_ctl_passwd(const char *scheme);

/* The stats verb with its own options (argv[0] is "stats"). Returns the exit status. */
int mpop_ctl_stats(int argc, char **argv);

/* The convert-config verb with its own arguments (argv[0] is the verb): the Perl mpopd's
 * configuration to mpopd.conf. Returns the exit status. */
int mpop_ctl_convert_config(int argc, char **argv);

/* ---- mpopdctl-run.c */

enum {
	MPOP_CTL_SPAWN_PATH = 1 << 0,	    /* search PATH (the editor) */
	MPOP_CTL_SPAWN_NULL_STDIN = 1 << 1, /* a daemon must not inherit our terminal or a socket */
	MPOP_CTL_SPAWN_NULL_STDOUT = 1 << 2,
	MPOP_CTL_SPAWN_NULL_STDERR = 1 << 3, /* a question whose answer is the exit status */
};

/* Start argv (MPOP_CTL_SPAWN_* flags), never through a shell. Returns the pid or -1. */
pid_t mpop_ctl_spawn(char **argv, int flags);

/* Run argv to completion. Returns its exit status, or 127/128+signal like a shell. */
int mpop_ctl_run(char **argv, int flags);

/* argv for "mpopd [-c config] [arg1] [arg2]" (NULL args are left out); mpopd is looked for
 * next to mpopdctl first. */
GStrv mpop_ctl_mpopd_argv(const MpopCtl *ctl, const char *arg1, const char *arg2);

/* -c, else the default configuration file. */
const char *mpop_ctl_config_path(const MpopCtl *ctl);

/* mpopd --check-config [--quiet]: the file, the auth backends, the host rules, the
 * certificate. Its message (file, group and key) goes to our stderr. Returns MPOP_CTL_OK,
 * MPOP_CTL_CONFIG or MPOP_CTL_FAILED (mpopd did not run). */
int mpop_ctl_check_config(const MpopCtl *ctl, gboolean quiet);

/* MPOP_CTL_PERMISSION (said on stderr) when the configuration file exists but we may not
 * read it, else MPOP_CTL_OK. */
int mpop_ctl_config_readable(const MpopCtl *ctl);

/* ---- mpopdctl-systemd.c */

/* systemctl when the host runs systemd and MPOPDCTL_NO_SYSTEMD is unset, else NULL. */
char *mpop_ctl_systemctl_path(void);

/* -c is unset or names the file the units read; else FALSE with the reason on stderr. */
gboolean mpop_ctl_config_fits_units(const MpopCtl *ctl);

/* A service verb (ctl->verb) as systemctl calls. Returns the exit status. */
int mpop_ctl_systemd_verb(const MpopCtl *ctl, const char *systemctl);

/* ---- mpopdctl-pidfile.c: a legacy daemon. Each returns the exit status. */

int mpop_ctl_start(MpopCtl *ctl);
int mpop_ctl_stop(MpopCtl *ctl);
/* Only a -p given to this command pins a port on the new daemon's command line. */
int mpop_ctl_restart(MpopCtl *ctl);
/* SIGHUP: sessions end without UPDATE, the file is read again, the ports bound again. */
int mpop_ctl_refresh(MpopCtl *ctl);
/* SIGUSR1: the file is read again for new sessions. */
int mpop_ctl_reload(MpopCtl *ctl);
int mpop_ctl_status(MpopCtl *ctl);
