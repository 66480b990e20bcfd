/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd entry: options, configuration, then the listener decides how connections arrive. */
#include "auth.h"
#include "config.h"
#include "hostrules.h"
#include "listener.h"
#include "proxy.h"
#include "log.h"
#include "tls.h"
#include "mpopd-build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: mpopd [OPTION]... [PORT]\n"
		"POP3 server for Maildir and mbox.\n\n"
		"  -c, --config FILE   configuration file (default %s)\n"
		"      --inetd         serve one session on standard input and output\n"
		"      --tls           the connection (inetd, Accept=yes) is implicit TLS (port "
		"995)\n"
		"      --proxy-protocol=off|v1|v2|any\n"
		"                      the connection (inetd, Accept=yes) starts with a PROXY\n"
		"                      header of that version; overrides [server] proxy_protocol\n"
		"  -F, --foreground    legacy daemon: stay in the foreground\n"
		"      --check-config  validate the configuration, print it and exit\n"
		"  -q, --quiet         with --check-config: print only errors (no warnings)\n"
		"  -V, --version       print the version and exit\n"
		"  -h, --help          print this help and exit\n\n"
		"Under systemd the way in is detected: one connected socket (Accept=yes),\n"
		"listening sockets (Accept=no), or a socket on standard input (inetd).\n"
		"Otherwise mpopd binds [server] listen itself; PORT overrides the port.\n",
		MPOPD_DEFAULT_CONFIG);
}

/* An error before the configuration is in force: on stderr as "mpopd: ..." when a person may
 * read it there, else where the log goes (never on a client's connection). */
static void
report(const char *msg)
{
	if (mpop_log_get_target() == MPOP_LOG_TARGET_STDERR)
		fprintf(stderr, "mpopd: %s\n", msg);
	else
		mpop_log_err("%s", msg);
}

static gboolean
valid_port(const char *s)
{
	guint64 v;

	return g_ascii_string_to_unsigned(s, 10, 1, 65535, &v, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"inetd", no_argument, NULL, 'i'},
		{"foreground", no_argument, NULL, 'F'},
		{"check-config", no_argument, NULL, 'C'},
		{"quiet", no_argument, NULL, 'q'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"tls", no_argument, NULL, 'T'},
		{"proxy-protocol", required_argument, NULL, 'P'},
		{NULL, 0, NULL, 0},
	};
	MpopListenOptions opts = {.mode = MPOP_MODE_AUTO, .proxy = -1};
	g_autoptr(GError) error = NULL;
	g_autofree char *config_path = NULL;
	gboolean check = FALSE, quiet = FALSE;
	MpopConfig *cfg;
	int c;

	mpop_log_init("mpopd", MPOP_LOG_INFO);
	/* getopt's own complaints would reach a client when stderr is the connection */
	opterr = mpop_log_get_target() == MPOP_LOG_TARGET_STDERR;
	while ((c = getopt_long(argc, argv, "c:FqVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			/* Absolute: the daemon reads it again after chdir("/") (reload). */
			g_free(config_path);
			config_path = g_canonicalize_filename(optarg, NULL);
			opts.config_path = config_path;
			break;
		case 'i':
			opts.mode = MPOP_MODE_INETD;
			break;
		case 'F':
			opts.foreground = TRUE;
			break;
		case 'T':
			opts.tls = TRUE;
			break;
		case 'P':
			opts.proxy = mpop_proxy_versions_from_name(optarg);
			if (opts.proxy < 0) {
				mpop_log_err("--proxy-protocol=%s: not off, v1, v2 or any", optarg);
				return 2;
			}
			break;
		case 'C':
			check = TRUE;
			break;
		case 'q':
			quiet = TRUE;
			break;
		case 'V':
			printf("mpopd %s\n", MPOPD_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (mpop_log_get_target() == MPOP_LOG_TARGET_STDERR)
				usage(stderr);
			else
				report("invalid command line (see mpopd --help)");
			return 2;
		}
	}
	if (optind < argc) {
		if (optind + 1 < argc || !valid_port(argv[optind])) {
			g_autofree char *msg = g_strdup_printf(
				"\"%s\" is not a port number (1-65535)", argv[optind]);
			report(msg);
			return 2;
		}
		opts.port = argv[optind];
		opts.mode = MPOP_MODE_DAEMON;
	}
	cfg = mpop_config_load(opts.config_path, opts.config_path != NULL, &error);
	if (!cfg) {
		report(error->message);
		return 1;
	}
	/* Every backend a chain names is built in and has what it needs. */
	if (!mpop_auth_check_config(cfg, &error)) {
		report(error->message);
		mpop_config_free(cfg);
		return 1;
	}
	if (check) {
		g_autofree char *dump = quiet ? NULL : mpop_config_dump(cfg);
		/* So is the host rules file: every line must parse. */
		if (*cfg->hosts_allow_deny) {
			g_autoptr(MpopHostRules) rules =
				mpop_hostrules_load(cfg->hosts_allow_deny, &error);
			if (!rules) {
				fprintf(stderr, "mpopd: %s\n", error->message);
				mpop_config_free(cfg);
				return 1;
			}
		}
		/* The certificate and key are part of the configuration: they must load. */
		if (mpop_config_has_tls(cfg)) {
			MpopTlsContext *ctx = mpop_tls_context_new(cfg, &error);
			if (!ctx) {
				report(error->message);
				mpop_config_free(cfg);
				return 1;
			}
			mpop_tls_context_free(ctx);
		}
		for (guint i = 0; !quiet && cfg->warnings != NULL && i < cfg->warnings->len; i++)
			fprintf(stderr, "mpopd: warning: %s\n",
				(const char *)g_ptr_array_index(cfg->warnings, i));
		if (dump != NULL)
			fputs(dump, stdout);
		mpop_config_free(cfg);
		return 0;
	}
	mpop_log_set_level(cfg->log_level);
	return mpop_listener_run(cfg, &opts);
}
