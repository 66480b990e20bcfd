/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The "plugin" auth backend's answer parser (the program's stdout, untrusted). */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* The most a plugin may write to stdout; more is garbage. */
#define MPOP_PLUGIN_ANSWER_MAX 4096

/* What an accepting plugin said: key=value lines uid, gid, mailbox, home, user. */
typedef struct {
	uid_t uid;     /* never 0 or (uid_t)-1 */
	gid_t gid;     /* (gid_t)-1 when absent */
	char *mailbox; /* absolute, no ".." component, no control characters; NULL when absent */
	char *home;    /* the same rules; NULL when absent */
	char *user;    /* canonical login name; NULL when absent */
} MpopPluginAnswer;

/* Parse the stdout of a plugin that exited 0. Returns 0 and fills *out (clear it with
 * mpop_plugin_answer_clear), -EPERM for uid 0, -EINVAL for anything malformed; on failure
 * *out_why (may be NULL) is a static text for the log and *out is left empty. */
int mpop_plugin_parse_answer(const char *data, size_t len, MpopPluginAnswer *out,
			     const char **out_why);
void mpop_plugin_answer_clear(MpopPluginAnswer *a);

/* ---- running the program (auth-plugin-run.c), for auth-plugin.c */

#define MPOP_PLUGIN_STDERR_KEEP 1024
#define MPOP_PLUGIN_GROUPS_MAX 256

typedef struct {
	char **argv; /* argv[0] is the program's path */
	char **envp;
	guint timeout; /* seconds */
	gboolean drop; /* run as uid, gid and groups (else as we are) */
	uid_t uid;
	gid_t gid;
	gid_t groups[MPOP_PLUGIN_GROUPS_MAX];
	int n_groups;
} MpopPluginExec;

typedef enum {
	MPOP_PLUGIN_EXITED,	 /* status is the exit code */
	MPOP_PLUGIN_SIGNALED,	 /* status is the signal */
	MPOP_PLUGIN_TIMEOUT,	 /* killed at the deadline */
	MPOP_PLUGIN_TOO_MUCH,	 /* killed: more than MPOP_PLUGIN_ANSWER_MAX bytes on stdout */
	MPOP_PLUGIN_NOT_STARTED, /* error says why */
	MPOP_PLUGIN_LOST,	 /* its exit status is lost (reaped elsewhere): error says why */
} MpopPluginEnd;

typedef struct {
	MpopPluginEnd end;
	int status;
	GString *out; /* stdout: at most MPOP_PLUGIN_ANSWER_MAX + 1 bytes */
	GString *err; /* the first MPOP_PLUGIN_STDERR_KEEP bytes of stderr */
	char *error;  /* NOT_STARTED, LOST: the step and errno that failed */
} MpopPluginOutcome;

/* Run the program in a session of its own with user\0password\0timestamp\0 on fd 3 (the
 * copy is wiped after the write), /dev/null on stdin, pipes on stdout and stderr, nothing
 * else open, umask 077; wait until it exits or the timeout, then kill what is left of its
 * process group and reap it. Always fills *out; clear it with mpop_plugin_outcome_clear. */
void mpop_plugin_run(const MpopPluginExec *x, const char *user, const char *password,
		     MpopPluginOutcome *out);
void mpop_plugin_outcome_clear(MpopPluginOutcome *o);
