/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Configuration: one schema table, GKeyFile loading, validation, an immutable result. */
#pragma once

#include <glib.h>
#include "log.h"

typedef enum {
	MPOP_FORMAT_MAILDIR,
	MPOP_FORMAT_MBOX,
} MpopMailboxFormat;

typedef enum {
	MPOP_MBOX_SNAPSHOT,	/* lock, index, unlock; verify before reads and at QUIT */
	MPOP_MBOX_SESSION_LOCK, /* hold the lock for the whole session */
	MPOP_MBOX_SPOOL,	/* copy to a private spool at login */
} MpopMboxMode;

typedef enum {
	MPOP_FROM_MBOXRD, /* remove one '>' from ">+From " lines when sending */
	MPOP_FROM_RAW,	  /* send as stored */
} MpopFromQuoting;

/* Lock kinds for mbox_locks, a bit set. */
enum {
	MPOP_LOCK_DOTLOCK = 1 << 0,
	MPOP_LOCK_FCNTL = 1 << 1,
	MPOP_LOCK_FLOCK = 1 << 2,
};

typedef enum {
	MPOP_PLAINTEXT_AUTO,	 /* tls-only when a certificate is configured, else always */
	MPOP_PLAINTEXT_TLS_ONLY, /* USER/PASS/AUTH PLAIN only inside TLS */
	MPOP_PLAINTEXT_LOOPBACK, /* ... or on a loopback connection */
	MPOP_PLAINTEXT_ALWAYS,
} MpopPlaintextAuth;

typedef enum {
	MPOP_TLS_1_2,
	MPOP_TLS_1_3,
} MpopTlsVersion;

/* One [host:NAME] group: a virtual host with its own user list and mailboxes. */
typedef struct {
	char *name;	  /* NAME, lowercase: %d in location, and always one of its names */
	char **addresses; /* numeric local addresses that select it, as written */
	char **names;	  /* further TLS server names and e-mail domains, lowercase */
	char *userlist;	  /* its user list, same format as [auth] userlist */
	char *location;	  /* its mailbox pattern (%d is name) */
} MpopHostConfig;

/* The validated configuration. Immutable once loaded; free with mpop_config_free(). */
typedef struct {
	char *path; /* the file it came from, or "(defaults)" */

	/* [server] */
	char *greeting;
	guint idle_timeout;	/* seconds */
	guint max_bad_commands; /* then -ERR and close */
	char *login_user;	/* unprivileged user for the pre-auth dialogue */
	char *login_chroot;	/* empty: no chroot */
	guint login_reuse;	/* daemon: connections a pre-login process serves in turn */
	char **listen;		/* legacy daemon / Accept=no bind addresses "host:port" */
	char *pid_file;
	guint max_sessions;
	guint max_sessions_per_source;
	gboolean privsep;    /* run the pre-auth dialogue in a dropped child */
	guint login_timeout; /* seconds from connect to a successful login */
	char **listen_tls;   /* legacy daemon: implicit TLS bind addresses */
	int proxy_protocol;  /* MPOP_PROXY_* bits (proxy.h): the PROXY header versions; 0: off */
	char **proxy_trusted_networks; /* addresses/prefixes that may send a PROXY header */
	guint proxy_header_timeout;    /* seconds */

	/* [access] */
	char *hosts_allow_deny;	 /* the rules file; "": none */
	char **trusted_networks; /* networks exempt from the penalty, limits and FCrDNS */
	gboolean allow_non_fqdn; /* FALSE: untrusted clients need forward-confirmed rDNS */
	guint resolver_timeout;	 /* seconds for one client's reverse and forward lookup */

	/* [mailbox] */
	MpopMailboxFormat format;
	char *location; /* pattern: %u user, %h home, %d domain, %n local part */
	char *mail_spool_dir;
	char *message_start;
	char *message_end;
	MpopFromQuoting from_quoting;
	guint mbox_locks; /* MPOP_LOCK_* bits */
	guint lock_retries;
	guint lock_wait_ms;
	guint lock_stale_age; /* seconds; 0 = never take over */
	MpopMboxMode mbox_mode;
	gboolean mbox_index; /* keep a persisted index beside the mbox */
	char *spool_dir;
	char *mail_privileged_group; /* "": none */
	char **uidl_source; /* mbox: "x-uidl", "message-id", "dovecot", "popa3d", "digest" */
	char **maildir_uidl_source; /* "dovecot", "filename" */
	char **show_headers;	    /* bookkeeping headers to show anyway */

	/* [auth] */
	char **auth_default;   /* the default chain: backend names in order */
	char *userlist;	       /* path of the user list file */
	GHashTable *user_auth; /* user name -> chain (char **), from [user_auth] */
	char *pam_service;
	gboolean pam_session; /* pam: setcred + open/close_session */
	guint system_min_uid; /* passwd/shadow: lowest uid that may log in (0 is never allowed) */
	char *system_group;   /* passwd/shadow: group a user must be in; "": any */
	guint failure_delay;  /* ms from attempt to a failure's answer */
	char *plugin;	      /* plugin: absolute path of the checkpassword program; "": none */
	char **plugin_args;   /* plugin: argv[1..] */
	guint plugin_timeout; /* plugin: seconds until the program is killed */
	char *plugin_user;    /* plugin: user the program runs as; "": the user mpopd runs as */
	char *domain_separators;	    /* email backend: characters that split local@domain */
	char *central_userlist;		    /* central backend: its user list */
	char *central_spool;		    /* central backend: the one spool directory */
	gboolean reject_unknown_user_early; /* never used for enumeration: kept false */
	MpopPlaintextAuth plaintext_auth;   /* as configured (may be AUTO) */
	guint penalty_delay_after;	    /* recent failures answered without extra delay */
	guint penalty_max_delay;	    /* seconds, the longest a failure is answered after */
	guint penalty_block_after;	    /* failures per source that block it; 0: never */
	guint penalty_user_block_after;	    /* failures per user name that block it; 0: never */
	guint penalty_period;		    /* seconds a failure is remembered */
	char *penalty_state;		    /* the table's file (one process per connection) */

	/* [tls] */
	char *tls_certificate; /* PEM chain; "" : no TLS */
	char *tls_key;	       /* PEM key; "": in the certificate file */
	MpopTlsVersion tls_min_protocol;
	char *tls_ciphers;	/* TLS 1.2 cipher list; "": OpenSSL's default */
	char *tls_ciphersuites; /* TLS 1.3 suites; "": OpenSSL's default */

	/* [log] */
	MpopLogLevel log_level;
	MpopLogTarget log_target;
	char *log_syslog_socket; /* AF_UNIX datagram socket of syslog */
	char **log_users;	 /* users logged at debug detail */

	/* [host:NAME] groups, in file order */
	MpopHostConfig *hosts;
	guint n_hosts;

	GPtrArray *warnings; /* NULL or strings naming file, group and key: valid but doubtful */
} MpopConfig;

/* The mbox header fields RETR and TOP leave out unless [mailbox] show_headers names them
 * (NULL-terminated). */
extern const char *const mpop_config_hidden_headers[];

/* Load and validate path (NULL: MPOPD_DEFAULT_CONFIG). A missing file is an error when
 * must_exist. Errors name the file, group and key. */
MpopConfig *mpop_config_load(const char *path, gboolean must_exist, GError **error);

/* Load from an in-memory key file text (tests, fuzzing); name is used in messages. */
MpopConfig *mpop_config_load_data(const char *data, gsize len, const char *name, GError **error);

/* All defaults, as if from an empty file. */
MpopConfig *mpop_config_new_default(void);

void mpop_config_free(MpopConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopConfig, mpop_config_free)

/* The effective configuration as key file text (for --check-config). */
char *mpop_config_dump(const MpopConfig *cfg);

/* The sample configuration file text: every key with its default and help (conf/mpopd.conf
 * is generated from this, so they cannot drift). */
char *mpop_config_sample(void);

/* The man page section listing every key, in roff (for man/mpopd.conf.5). */
char *mpop_config_man_section(void);

/* The chain of backend names for a user: its [user_auth] entry or auth_default. */
const char *const *mpop_config_auth_for_user(const MpopConfig *cfg, const char *user);

/* plaintext_auth with AUTO resolved. */
MpopPlaintextAuth mpop_config_plaintext_auth(const MpopConfig *cfg);
/* Whether TLS is configured (a certificate is set). */
gboolean mpop_config_has_tls(const MpopConfig *cfg);

/* A [server] listen or listen_tls item: "host:port", optionally followed by " proxy=MODE" (off,
 * v1, v2, any). Returns the address part (caller frees), NULL when the suffix is malformed;
 * *out_proxy (may be NULL) is MODE's MPOP_PROXY_* bits, or -1 without a suffix. */
char *mpop_config_listen_split(const char *item, int *out_proxy);

/* Whether user is listed in [log] users. */
gboolean mpop_config_user_logged(const MpopConfig *cfg, const char *user);
