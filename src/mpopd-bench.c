/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench entry: options, the users file, and the choice of mode. */
#include "mpopd-bench.h"

#include "mpopd-build.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const struct {
	const char *name;
	int (*run)(const BenchOptions *o);
	gboolean needs_server;
} modes[] = {
	{"sessions", bench_sessions, TRUE}, {"retrieve", bench_retrieve, TRUE},
	{"bigbox", bench_bigbox, TRUE},	    {"top", bench_top, TRUE},
	{"memory", bench_memory, TRUE},	    {"generate", bench_generate, FALSE},
};

static void
usage(FILE *f)
{
	fputs("Usage: mpopd-bench MODE [OPTIONS]\n"
	      "Drive a POP3 server on HOST:PORT, or generate a mailbox.\n\n"
	      "Modes:\n"
	      "  sessions   concurrent clients: connect, USER, PASS, STAT, QUIT; sessions/s, "
	      "latency\n"
	      "  retrieve   RETR every message, each checked against LIST; MB/s, messages/s\n"
	      "  top        TOP every message (--lines), checked\n"
	      "  bigbox     connect to first STAT answer, UIDL and LIST times (--repeat logins)\n"
	      "  memory     hold --clients sessions logged in and idle for --seconds\n"
	      "  generate   write a deterministic Maildir (--maildir) or mbox (--mbox)\n\n"
	      "Options:\n"
	      "  -H, --host HOST        server (default 127.0.0.1)\n"
	      "  -p, --port PORT        port (default 110, 995 with --tls)\n"
	      "      --tls              implicit TLS (certificate not checked)\n"
	      "  -u, --user USER        user; \"%d\" in it is the client number\n"
	      "  -w, --pass PASSWORD    password\n"
	      "  -U, --users FILE       user:password lines, cycled over the clients\n"
	      "  -c, --clients N        concurrent clients or held sessions (default 8; memory "
	      "100)\n"
	      "  -n, --sessions N       sessions in all (default: until --seconds)\n"
	      "  -t, --seconds S        sessions: run time (default 10); memory: hold time "
	      "(default 300)\n"
	      "  -P, --pipeline N       commands in flight for retrieve and top (default 1)\n"
	      "  -r, --repeat N         bigbox logins (default 3)\n"
	      "  -l, --lines N          TOP's line count (default 0)\n"
	      "  -T, --timeout S        longest wait for any answer (default 60)\n"
	      "      --json             one JSON object instead of the table\n"
	      "  -q, --quiet            no progress on stderr\n"
	      "      --maildir DIR      generate: the Maildir to create\n"
	      "      --mbox FILE        generate: the mbox file to create\n"
	      "      --messages N       generate: how many messages (default 100)\n"
	      "      --seed S           generate: the seed (default 1)\n"
	      "      --name-sizes       generate: ,S= and ,W= sizes in Maildir file names\n"
	      "  -h, --help             this text\n"
	      "  -V, --version          the version\n",
	      f);
}

/* "user:password" lines; '#' starts a comment line. */
static GPtrArray *
read_users(const char *path)
{
	g_autofree char *text = NULL;
	g_autoptr(GError) err = NULL;
	g_auto(GStrv) lines = NULL;
	GPtrArray *users;

	if (!g_file_get_contents(path, &text, NULL, &err)) {
		fprintf(stderr, "mpopd-bench: %s\n", err->message);
		exit(2);
	}
	users = g_ptr_array_new_with_free_func(g_free);
	lines = g_strsplit(text, "\n", -1);
	for (char **l = lines; *l != NULL; l++) {
		char *colon;

		g_strchomp(*l);
		if (**l == '\0' || **l == '#')
			continue;
		colon = strchr(*l, ':');
		if (colon == NULL) {
			fprintf(stderr, "mpopd-bench: %s: a line without \"user:password\"\n",
				path);
			exit(2);
		}
		g_ptr_array_add(users, g_strndup(*l, (gsize)(colon - *l)));
		g_ptr_array_add(users, g_strdup(colon + 1));
	}
	if (users->len == 0) {
		fprintf(stderr, "mpopd-bench: %s has no users\n", path);
		exit(2);
	}
	return users;
}

static long
number(const char *opt, const char *s, long lo, long hi)
{
	guint64 v = 0;

	if (!g_ascii_string_to_unsigned(s, 10, (guint64)lo, (guint64)hi, &v, NULL)) {
		fprintf(stderr, "mpopd-bench: %s wants a number from %ld to %ld\n", opt, lo, hi);
		exit(2);
	}
	return (long)v;
}

static double
seconds(const char *opt, const char *s)
{
	char *end = NULL;
	double v = g_ascii_strtod(s, &end);

	if (end == s || *end != '\0' || !(v > 0 && v <= 86400)) {
		fprintf(stderr, "mpopd-bench: %s wants seconds (0 < S <= 86400)\n", opt);
		exit(2);
	}
	return v;
}

enum { OPT_TLS = 256, OPT_JSON, OPT_MAILDIR, OPT_MBOX, OPT_MESSAGES, OPT_SEED, OPT_NAME_SIZES };

static void
parse(int argc, char **argv, BenchOptions *o)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'H'},
		{"port", required_argument, NULL, 'p'},
		{"tls", no_argument, NULL, OPT_TLS},
		{"user", required_argument, NULL, 'u'},
		{"pass", required_argument, NULL, 'w'},
		{"users", required_argument, NULL, 'U'},
		{"clients", required_argument, NULL, 'c'},
		{"sessions", required_argument, NULL, 'n'},
		{"seconds", required_argument, NULL, 't'},
		{"pipeline", required_argument, NULL, 'P'},
		{"repeat", required_argument, NULL, 'r'},
		{"lines", required_argument, NULL, 'l'},
		{"timeout", required_argument, NULL, 'T'},
		{"json", no_argument, NULL, OPT_JSON},
		{"quiet", no_argument, NULL, 'q'},
		{"maildir", required_argument, NULL, OPT_MAILDIR},
		{"mbox", required_argument, NULL, OPT_MBOX},
		{"messages", required_argument, NULL, OPT_MESSAGES},
		{"seed", required_argument, NULL, OPT_SEED},
		{"name-sizes", no_argument, NULL, OPT_NAME_SIZES},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "H:p:u:w:U:c:n:t:P:r:l:T:qhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			o->host = optarg;
			break;
		case 'p':
			o->port = optarg;
			break;
		case OPT_TLS:
			o->tls = TRUE;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'w':
			o->pass = optarg;
			break;
		case 'U':
			o->users = read_users(optarg);
			break;
		case 'c':
			o->clients = (int)number("--clients", optarg, 1, 100000);
			break;
		case 'n':
			o->sessions = number("--sessions", optarg, 1, G_MAXINT);
			break;
		case 't':
			o->seconds = seconds("--seconds", optarg);
			break;
		case 'P':
			o->pipeline = (int)number("--pipeline", optarg, 1, 10000);
			break;
		case 'r':
			o->repeat = (int)number("--repeat", optarg, 1, 100000);
			break;
		case 'l':
			o->lines = (int)number("--lines", optarg, 0, G_MAXINT);
			break;
		case 'T':
			o->timeout = seconds("--timeout", optarg);
			break;
		case OPT_JSON:
			o->json = TRUE;
			break;
		case 'q':
			o->quiet = TRUE;
			break;
		case OPT_MAILDIR:
			o->maildir = optarg;
			break;
		case OPT_MBOX:
			o->mbox = optarg;
			break;
		case OPT_MESSAGES:
			o->messages = number("--messages", optarg, 1, 100000000);
			break;
		case OPT_SEED:
			o->seed = (guint64)number("--seed", optarg, 0, G_MAXLONG);
			break;
		case OPT_NAME_SIZES:
			o->name_sizes = TRUE;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case 'V':
			printf("mpopd-bench %s\n", MPOPD_VERSION);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
}

/* Enough descriptors for --clients held sessions. */
static void
raise_fd_limit(int want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)want + 16) {
		rl.rlim_cur = MIN(rl.rlim_max, (rlim_t)want + 16);
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int
main(int argc, char **argv)
{
	BenchOptions o = {.host = "127.0.0.1", .seconds = -1, .timeout = 60, .seed = 1};
	const char *mode;
	size_t m;

	parse(argc, argv, &o);
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	mode = argv[optind];
	for (m = 0; m < G_N_ELEMENTS(modes) && strcmp(modes[m].name, mode) != 0; m++)
		;
	if (m == G_N_ELEMENTS(modes)) {
		fprintf(stderr, "mpopd-bench: unknown mode \"%s\" (see --help)\n", mode);
		return 2;
	}
	if (!modes[m].needs_server) {
		if ((o.maildir == NULL) == (o.mbox == NULL)) {
			fprintf(stderr,
				"mpopd-bench: generate wants --maildir DIR or --mbox FILE\n");
			return 2;
		}
		o.messages = o.messages ? o.messages : 100;
		return modes[m].run(&o);
	}
	if (o.users == NULL && (o.user == NULL || o.pass == NULL)) {
		fprintf(stderr, "mpopd-bench: %s wants --user and --pass, or --users FILE\n", mode);
		return 2;
	}
	o.port = o.port ? o.port : o.tls ? "995" : "110";
	o.clients = o.clients ? o.clients : strcmp(mode, "memory") == 0 ? 100 : 8;
	if (o.seconds < 0)
		o.seconds = strcmp(mode, "memory") == 0 ? 300 : o.sessions ? 0 : 10;
	raise_fd_limit(o.clients);
	signal(SIGPIPE, SIG_IGN);
	return modes[m].run(&o);
}
