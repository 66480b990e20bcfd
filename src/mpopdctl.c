/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopdctl: start, stop, refresh and reload mpopd (systemd or pid file), check config, make
 * hashes. The verb table and the command line; the verbs live in mpopdctl-*.c. */
#include "log.h"
#include "mpopdctl.h"
#include "mpopd-build.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

/* Which options a verb takes; -c applies to every verb. */
enum {
	MPOP_CTL_OPT_FORCE = 1 << 0,
	MPOP_CTL_OPT_PORT = 1 << 1,
	MPOP_CTL_OPT_EDIT = 1 << 2,
	MPOP_CTL_OPT_SCHEME = 1 << 3,
	MPOP_CTL_OPT_ARGS = 1 << 4, /* parses ctl->argc/argv itself: main leaves them alone */
};

typedef struct {
	const char *verb;
	int (*handler)(MpopCtl *ctl); /* the pid-file way for service verbs */
	gboolean service;	      /* goes to mpop_ctl_systemd_verb() on a systemd host */
	const char *help;
	guint options;	      /* MPOP_CTL_OPT_* */
	const char *synopsis; /* its options for --help, e.g. "[-f] [-p port]" */
} Verb;

static gboolean
ask_yes(const char *question)
{
	char answer[32];

	printf("%s [y/N]? ", question);
	fflush(stdout);
	if (!fgets(answer, sizeof answer, stdin))
		return FALSE;
	g_strstrip(answer);
	return g_ascii_strcasecmp(answer, "y") == 0 || g_ascii_strcasecmp(answer, "yes") == 0;
}

/* config -e: $VISUAL, else $EDITOR, else vi on the file, then check it and ask. Returns
 * -1 to go on and reload, else the exit status. */
static int
edit_config(MpopCtl *ctl)
{
	const char *editor = g_getenv("VISUAL");
	const char *path = mpop_ctl_config_path(ctl);
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) argv = NULL;
	int argc, r;

	if (!editor || !*editor)
		editor = g_getenv("EDITOR");
	/* The editor may carry options ("emacs -nw"): split it like a shell would, run no
	 * shell. */
	if (!editor || !*editor)
		editor = "vi";
	if (!g_shell_parse_argv(editor, &argc, &argv, &error)) {
		fprintf(stderr, "mpopdctl: editor \"%s\": %s\n", editor, error->message);
		return MPOP_CTL_USAGE;
	}
	argv = g_realloc_n(argv, (size_t)argc + 2, sizeof *argv);
	argv[argc] = g_strdup(path);
	argv[argc + 1] = NULL;
	if ((r = mpop_ctl_run(argv, MPOP_CTL_SPAWN_PATH)) != 0) {
		fprintf(stderr, "mpopdctl: %s exited with status %d; mpopd was not signalled\n",
			argv[0], r);
		return MPOP_CTL_FAILED;
	}
	if ((r = mpop_ctl_check_config(ctl, TRUE)) != MPOP_CTL_OK) {
		fprintf(stderr, "mpopdctl: %s is not valid; mpopd was not signalled\n", path);
		return r;
	}
	if (!ask_yes("Signal mpopd to re-read its configuration")) {
		printf("mpopd did not re-read its configuration\n");
		return MPOP_CTL_OK;
	}
	return -1;
}

/* config (reload): mpopd re-reads its file for new sessions; -e edits it first. */
static int
verb_config(MpopCtl *ctl)
{
	g_autofree char *sysctl = mpop_ctl_systemctl_path();
	int r;

	if (sysctl && !mpop_ctl_config_fits_units(ctl))
		return MPOP_CTL_USAGE;
	if (ctl->edit && (r = edit_config(ctl)) >= 0)
		return r;
	return sysctl ? mpop_ctl_systemd_verb(ctl, sysctl) : mpop_ctl_reload(ctl);
}

static int
verb_show_config(MpopCtl *ctl)
{
	return mpop_ctl_check_config(ctl, FALSE);
}

static int
verb_check(MpopCtl *ctl)
{
	int r = mpop_ctl_check_config(ctl, TRUE);

	if (r == MPOP_CTL_OK)
		printf("%s is valid\n", mpop_ctl_config_path(ctl));
	return r;
}

static int
verb_passwd(MpopCtl *ctl)
{
	return mpop_ctl_passwd(ctl->scheme);
}

static int
verb_stats(MpopCtl *ctl)
{
	return mpop_ctl_stats(ctl->argc, ctl->argv);
}

static int
verb_convert_config(MpopCtl *ctl)
{
	return mpop_ctl_convert_config(ctl->argc, ctl->argv);
}

/* ---- the verb table. A verb with arguments of its own sets MPOP_CTL_OPT_ARGS and reads
 * ctl->argc/argv (argv[0] is the verb) with its own getopt_long; -c before the verb is in
 * ctl->config. */

static const Verb verbs[] = {
	{"start", mpop_ctl_start, TRUE, "start mpopd (systemd: the socket unit)",
	 MPOP_CTL_OPT_FORCE | MPOP_CTL_OPT_PORT, "[-f] [-p port]"},
	{"stop", mpop_ctl_stop, TRUE, "stop mpopd and wait until it has exited", 0, NULL},
	{"restart", mpop_ctl_restart, TRUE, "stop, wait, start again (-p: on that port)",
	 MPOP_CTL_OPT_FORCE | MPOP_CTL_OPT_PORT, "[-f] [-p port]"},
	{"refresh", mpop_ctl_refresh, TRUE, "end sessions without UPDATE, bind the ports again", 0,
	 NULL},
	{"config", verb_config, FALSE, "re-read the configuration for new sessions (-e: edit)",
	 MPOP_CTL_OPT_EDIT, "[-e]"},
	{"reload", verb_config, TRUE, "the same as config", 0, NULL},
	{"status", mpop_ctl_status, TRUE, "tell whether mpopd is running", 0, NULL},
	{"show-config", verb_show_config, FALSE, "print the effective configuration", 0, NULL},
	{"check", verb_check, FALSE, "validate the configuration", 0, NULL},
	{"passwd", verb_passwd, FALSE, "read a password, print its crypt(5) hash",
	 MPOP_CTL_OPT_SCHEME, "[--scheme yescrypt|sha512|bcrypt]"},
	{"stats", verb_stats, FALSE, "per-user statistics from the journal or syslog",
	 MPOP_CTL_OPT_ARGS,
	 "[--since TIME] [--until TIME] [--user NAME] [--json]\n"
	 "[--file JOURNAL]... | [--directory DIR] | [--syslog FILE]..."},
	{"convert-config", verb_convert_config, FALSE,
	 "the Perl mpopd's mpopd.conf as mpopd.conf, with a report", MPOP_CTL_OPT_ARGS,
	 "[-o OUT] [--report FILE] [--hosts FILE]\n[--root DIR] OLD.conf"},
};

static const Verb *
find_verb(const char *name)
{
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++)
		if (strcmp(verbs[i].verb, name) == 0)
			return &verbs[i];
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage: mpopdctl [-c config] VERB [options]\n"
		   "       mpopdctl [-f] [-p port] start | stop | restart | refresh | [-e] config\n"
		   "\nVerbs:\n");
	for (size_t i = 0; i < G_N_ELEMENTS(verbs); i++) {
		/* A long synopsis has line breaks: continued under its first option. */
		g_autofree char *indent = g_strnfill(strlen(verbs[i].verb) + 3, ' ');
		g_autofree char *nl = g_strconcat("\n", indent, NULL);
		g_auto(GStrv) parts =
			g_strsplit(verbs[i].synopsis ? verbs[i].synopsis : "", "\n", -1);
		g_autofree char *synopsis = g_strjoinv(nl, parts);
		g_autofree char *head =
			g_strdup_printf("%s%s%s", verbs[i].verb, *synopsis ? " " : "", synopsis);
		if (strlen(head) > 22 || strchr(head, '\n'))
			fprintf(f, "  %s\n  %-22s %s\n", head, "", verbs[i].help);
		else
			fprintf(f, "  %-22s %s\n", head, verbs[i].help);
	}
	fprintf(f,
		"\nOptions (before or after the verb):\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -f, --force        start, restart: remove a stale pid file\n"
		"  -p, --port PORT    start, restart: the port (legacy daemon only)\n"
		"  -e, --edit         config: edit the file ($VISUAL, $EDITOR, vi), then ask\n"
		"      --scheme NAME  passwd: the hash scheme (default yescrypt)\n"
		"  -h, --help         print this help\n"
		"\nService verbs use systemctl on a systemd host, else the pid file\n"
		"([server] pid_file; MPOPDCTL_NO_SYSTEMD=1 forces that). Exit status: 0 ok,\n"
		"1 failed, 2 usage, 3 not running, 4 permission denied, 5 already running,\n"
		"6 invalid configuration, 7 stale pid file (status: 0, 1 stale, 3 not running).\n",
		MPOPD_DEFAULT_CONFIG);
}

static const struct option longopts[] = {
	{"force", no_argument, NULL, 'f'},
	{"port", required_argument, NULL, 'p'},
	{"config", required_argument, NULL, 'c'},
	{"edit", no_argument, NULL, 'e'},
	{"scheme", required_argument, NULL, 's'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* One run of getopt over argv; "+" stops at the first word that is not an option (the verb).
 * Returns -1 when done, else an exit status (help printed, or a usage error). */
static int
parse_options(MpopCtl *ctl, int argc, char **argv, const char *optstring)
{
	guint64 port;
	int c;

	while ((c = getopt_long(argc, argv, optstring, longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			ctl->force = TRUE;
			break;
		case 'p':
			if (!g_ascii_string_to_unsigned(optarg, 10, 1, 65535, &port, NULL)) {
				fprintf(stderr, "mpopdctl: \"%s\" is not a port number (1-65535)\n",
					optarg);
				return MPOP_CTL_USAGE;
			}
			ctl->port = optarg;
			break;
		case 'c':
			ctl->config = optarg;
			break;
		case 'e':
			ctl->edit = TRUE;
			break;
		case 's':
			ctl->scheme = optarg;
			break;
		case 'h':
			usage(stdout);
			return MPOP_CTL_OK;
		default:
			usage(stderr);
			return MPOP_CTL_USAGE;
		}
	}
	return -1;
}

/* Options that make no sense with the verb are errors, not silently ignored. */
static gboolean
options_fit(const MpopCtl *ctl, const Verb *verb)
{
	return (!ctl->force || (verb->options & MPOP_CTL_OPT_FORCE)) &&
	       (!ctl->port || (verb->options & MPOP_CTL_OPT_PORT)) &&
	       (!ctl->edit || (verb->options & MPOP_CTL_OPT_EDIT)) &&
	       (!ctl->scheme || (verb->options & MPOP_CTL_OPT_SCHEME));
}

int
main(int argc, char **argv)
{
	g_autofree char *sysctl = NULL;
	MpopCtl ctl = {0};
	const Verb *verb;
	int r;

	mpop_log_init("mpopdctl", MPOP_LOG_WARNING);
	if ((r = parse_options(&ctl, argc, argv, "+fp:c:eh")) >= 0)
		return r;
	if (optind >= argc) {
		fprintf(stderr, "mpopdctl: no verb given\n");
		usage(stderr);
		return MPOP_CTL_USAGE;
	}
	if (!(verb = find_verb(argv[optind]))) {
		g_autofree char *v = mpop_escape_excerpt(argv[optind], strlen(argv[optind]), 40);
		fprintf(stderr, "mpopdctl: unknown verb \"%s\"\n", v);
		usage(stderr);
		return MPOP_CTL_USAGE;
	}
	ctl.verb = verb->verb;
	ctl.argc = argc - optind;
	ctl.argv = argv + optind;
	if (!(verb->options & MPOP_CTL_OPT_ARGS)) {
		/* The original took options before the verb; after it is accepted as well. */
		optind = 0; /* glibc: 0 starts a new scan, "+" included */
		if ((r = parse_options(&ctl, ctl.argc, ctl.argv, "+fp:c:eh")) >= 0)
			return r;
		if (optind < ctl.argc) {
			fprintf(stderr, "mpopdctl: one verb at a time (\"%s\" is extra)\n",
				ctl.argv[optind]);
			usage(stderr);
			return MPOP_CTL_USAGE;
		}
	}
	if (!options_fit(&ctl, verb)) {
		fprintf(stderr, "mpopdctl: an option given does not apply to \"%s\"\n", ctl.verb);
		usage(stderr);
		return MPOP_CTL_USAGE;
	}
	if (verb->service && (sysctl = mpop_ctl_systemctl_path()))
		return mpop_ctl_systemd_verb(&ctl, sysctl);
	return verb->handler(&ctl);
}
