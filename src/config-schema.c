/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The configuration schema: every key with its type, default, range, checks and help (the
 * one place a key is described), and the value checks. */
#include "config-schema.h"
#include "hostrules.h"
#include "mpopd-build.h"
#include "proxy.h"
#include "util.h"

#include <arpa/inet.h>
#include <string.h>

G_STATIC_ASSERT(sizeof(MpopMailboxFormat) == sizeof(int));
G_STATIC_ASSERT(sizeof(MpopLogLevel) == sizeof(int));
G_STATIC_ASSERT(sizeof(MpopLogTarget) == sizeof(int));

/* The backend names [auth] default and [user_auth] accept: exactly the backends built in
 * (auth.c registers them; test-auth checks the two lists agree). */
const Choice mpop_config_auth_backends[] = {
	{"userlist"}, {"pam"},	    {"system"}, {"passwd"},  {"shadow"},
	{"plugin"},   {"hostname"}, {"email"},	{"central"}, {NULL},
};
static const Choice formats[] = {
	{"maildir", MPOP_FORMAT_MAILDIR}, {"mbox", MPOP_FORMAT_MBOX}, {NULL}};
static const Choice quotings[] = {{"mboxrd", MPOP_FROM_MBOXRD}, {"raw", MPOP_FROM_RAW}, {NULL}};
static const Choice locks[] = {{"dotlock", MPOP_LOCK_DOTLOCK},
			       {"fcntl", MPOP_LOCK_FCNTL},
			       {"flock", MPOP_LOCK_FLOCK},
			       {NULL}};
static const Choice mbox_modes[] = {{"snapshot", MPOP_MBOX_SNAPSHOT},
				    {"session-lock", MPOP_MBOX_SESSION_LOCK},
				    {"spool", MPOP_MBOX_SPOOL},
				    {NULL}};
static const Choice plaintext_auths[] = {{"auto", MPOP_PLAINTEXT_AUTO},
					 {"tls-only", MPOP_PLAINTEXT_TLS_ONLY},
					 {"loopback", MPOP_PLAINTEXT_LOOPBACK},
					 {"always", MPOP_PLAINTEXT_ALWAYS},
					 {NULL}};
static const Choice tls_versions[] = {{"TLSv1.2", MPOP_TLS_1_2}, {"TLSv1.3", MPOP_TLS_1_3}, {NULL}};
static const Choice uidl_sources[] = {{"x-uidl"}, {"message-id"}, {"dovecot"},
				      {"popa3d"}, {"digest"},	  {NULL}};
static const Choice maildir_uidl_sources[] = {{"dovecot"}, {"filename"}, {NULL}};
static const Choice proxy_versions[] = {{"off", 0},
					{"v1", MPOP_PROXY_V1},
					{"v2", MPOP_PROXY_V2},
					{"any", MPOP_PROXY_V1 | MPOP_PROXY_V2},
					{NULL}};
static const Choice log_levels[] = {{"err", MPOP_LOG_ERR},	 {"warning", MPOP_LOG_WARNING},
				    {"notice", MPOP_LOG_NOTICE}, {"info", MPOP_LOG_INFO},
				    {"debug", MPOP_LOG_DEBUG},	 {NULL}};
static const Choice log_targets[] = {{"auto", MPOP_LOG_TARGET_AUTO},
				     {"journal", MPOP_LOG_TARGET_JOURNAL},
				     {"syslog", MPOP_LOG_TARGET_SYSLOG},
				     {"stderr", MPOP_LOG_TARGET_STDERR},
				     {NULL}};

/* The mbox header fields of other programs' bookkeeping that RETR and TOP leave out unless
 * [mailbox] show_headers names them. */
const char *const mpop_config_hidden_headers[] = {
	"Status", "X-Status", "X-UID", "X-IMAP", "X-IMAPbase", "X-Keywords", "Content-Length", NULL,
};

static const char *check_greeting(const char *s);
static const char *check_name(const char *s);
static const char *check_listen(const char *s);
static const char *check_pattern(const char *s);
static const char *check_line(const char *s);
static const char *check_header(const char *s);
static const char *check_separators(const char *s);
static const char *check_address(const char *s);
static const char *check_network(const char *s);

#define OFF(field) offsetof(MpopConfig, field)

const Key mpop_config_keys[] = {
	{"server", "greeting", KT_STRING, "mpopd ready.", .check = check_greeting,
	 .flags = F_NONEMPTY, .offset = OFF(greeting),
	 .help = "Text sent after \"+OK \" in the greeting (RFC 1939 section 4): printable ASCII, "
		 "at most 200 characters. Perl mpopd: $greeting."},
	{"server", "idle_timeout", KT_UINT, "600", 10, 86400, .offset = OFF(idle_timeout),
	 .help = "Seconds a client may stay silent before the session is closed without UPDATE "
		 "(nothing is deleted). RFC 1939 section 3 asks for at least 600; shorter timeouts "
		 "cut off slow clients. Perl mpopd: $timeout (10 there)."},
	{"server", "max_bad_commands", KT_UINT, "10", 1, 1000, .offset = OFF(max_bad_commands),
	 .help = "Unknown or malformed commands tolerated in one session; the next one is "
		 "answered with -ERR and the connection is closed."},
	{"server", "login_timeout", KT_UINT, "60", 5, 3600, .offset = OFF(login_timeout),
	 .help = "Seconds from connect to a successful login; a connection that has not logged "
		 "in by then is closed, however it trickles bytes."},
	{"server", "login_user", KT_STRING, "mpopd-login", .check = check_name, .flags = F_NONEMPTY,
	 .offset = OFF(login_user),
	 .help = "Unprivileged user that runs the dialogue before authentication (and, with "
		 "TLS, the encryption for the whole connection) when privsep is on and mpopd "
		 "starts as root. The package creates it with sysusers.d; use a user of its own, "
		 "not one shared with other services."},
	{"server", "login_chroot", KT_STRING, "/var/empty", .flags = F_PATH,
	 .offset = OFF(login_chroot),
	 .help = "Empty directory the pre-authentication process chroots into; empty: no "
		 "chroot."},
	{"server", "login_reuse", KT_UINT, "1", 1, 10000, .offset = OFF(login_reuse),
	 .help = "Connections one pre-login process serves, one after the other, in the daemon "
		 "(Accept=no socket or legacy): 1 forks a fresh one for every connection. More "
		 "saves a fork and a sandbox setup at each login (like Dovecot's login "
		 "service_count = 0), at a cost: a pre-login process that a client took over "
		 "sees the user names and passwords of the connections it serves after, and "
		 "may keep their sockets. inetd and Accept=yes processes serve one connection "
		 "and ignore it."},
	{"server", "listen", KT_LIST, "0.0.0.0:110", .check = check_listen, .flags = F_NODUP,
	 .offset = OFF(listen),
	 .help = "Addresses the legacy daemon binds itself: numeric IPv4 host:port, "
		 "[IPv6]:port, or :port for every address; mpopd PORT replaces the port. An entry "
		 "may end in \" proxy=off\", \" proxy=v1\", \" proxy=v2\" or \" proxy=any\": "
		 "proxy_protocol for the connections to that address (10.0.0.5:1110 proxy=v2). "
		 "Not used when systemd or inetd passes the sockets. Perl mpopd: $port."},
	{"server", "listen_tls", KT_LIST, "", .check = check_listen, .flags = F_NODUP,
	 .offset = OFF(listen_tls),
	 .help = "Addresses the legacy daemon binds for implicit TLS (RFC 8314, port 995), in the "
		 "form of listen (with proxy= too); needs [tls] certificate. Under systemd the "
		 "socket units decide."},
	{"server", "pid_file", KT_STRING, "/run/mpopd.pid", .flags = F_PATH,
	 .offset = OFF(pid_file),
	 .help = "Where the legacy daemon writes its process id and the port it has bound, "
		 "again after a reload that binds another (mpopdctl reads it); empty: none. "
		 "Perl mpopd: $mpopd_pid_file."},
	{"server", "max_sessions", KT_UINT, "100", 1, 100000, .offset = OFF(max_sessions),
	 .help = "Concurrent sessions the daemon serves when it accepts connections itself; "
		 "further connections are closed at once. Perl mpopd: $max_servers."},
	{"server", "max_sessions_per_source", KT_UINT, "10", 1, 100000,
	 .offset = OFF(max_sessions_per_source),
	 .help = "Concurrent sessions from one client address."},
	{"server", "proxy_protocol", KT_ENUM, "off", .choices = proxy_versions,
	 .offset = OFF(proxy_protocol),
	 .help = "Whether every connection starts with a HAProxy PROXY protocol header naming the "
		 "real client (a load balancer in front of mpopd, docs/scaling.md): off, v1 (the "
		 "text header, HAProxy send-proxy), v2 (the binary one, send-proxy-v2) or any. "
		 "It applies to every listener but the listen and listen_tls entries that say "
		 "otherwise (proxy=); under systemd and inetd to every socket but those named "
		 "pop3-proxy or pop3s-proxy (FileDescriptorName=) and connections started with "
		 "--proxy-protocol, which expect a header anyway. When it is on, a "
		 "connection from outside "
		 "proxy_trusted_networks is closed at once without a greeting, and one from "
		 "inside must send a valid header within proxy_header_timeout or it is closed; "
		 "the header is read before the greeting and before the TLS handshake of an "
		 "implicit TLS port. The client and the address it reached then stand for the "
		 "connection's own in host rules, the failure penalty, [host:NAME] addresses, "
		 "plaintext_auth loopback and the logs (MPOPD_PEER; MPOPD_PROXY is the "
		 "balancer). A header without addresses (v2 LOCAL, as in health checks; v1 "
		 "UNKNOWN) keeps the balancer's own. The daemon's max_sessions_per_source does "
		 "not count connections from proxy_trusted_networks (they all come from the "
		 "balancer): limit clients in the balancer."},
	{"server", "proxy_trusted_networks", KT_LIST, "", .check = check_network, .flags = F_NODUP,
	 .offset = OFF(proxy_trusted_networks),
	 .help = "The load balancers: addresses, ADDR/BITS or dotted prefixes as in [access] "
		 "trusted_networks (10.0.0.0/24;2001:db8::/64). Needed when proxy_protocol is "
		 "on."},
	{"server", "proxy_header_timeout", KT_UINT, "5", 1, 60, .offset = OFF(proxy_header_timeout),
	 .help = "Seconds a connection from a balancer has to send its whole PROXY header."},
	{"server", "privsep", KT_BOOL, "true", .offset = OFF(privsep),
	 .help = "Run the pre-authentication dialogue in a child process that has dropped to "
		 "login_user. Turn it off only to debug."},

	{"access", "hosts_allow_deny", KT_STRING, "", .flags = F_PATH,
	 .offset = OFF(hosts_allow_deny),
	 .help = "The host rules file, checked before the greeting; empty: none. Each line is "
		 "ALLOW, DENY or WARN followed by an IPv4 or IPv6 address, a network "
		 "(192.0.2.0/24, 2001:db8::/32, or the dotted prefix 192.0.2. also written "
		 "192.0.2.*), a host name (mail.example.org), a domain (.example.org or "
		 "*.example.org: any name below it) or ALL; # starts a comment. In file order the "
		 "first ALLOW or DENY line that matches the client decides; a matching WARN line "
		 "before it is logged and the client admitted unless a later line refuses it; DENY "
		 "ALL anywhere in the file refuses every client that no ALLOW or DENY line "
		 "matched, else such a client is admitted. A host name or domain matches only the "
		 "client's forward-confirmed reverse DNS name (its PTR name resolves back to its "
		 "address); the lookup is made only when the file names a host. A refused client "
		 "gets -ERR [SYS/PERM] and is disconnected before the greeting. Every process "
		 "that serves connections reads the file (inetd and Accept=yes: each connection); "
		 "a bad line is an error naming the file and line, at --check-config, at the start "
		 "and at a reload, which reads the file again. See "
		 "/usr/share/doc/mpopd/hosts.allow-deny.example. Perl mpopd: "
		 "$hosts_allow_deny."},
	{"access", "trusted_networks", KT_LIST, "", .check = check_network, .flags = F_NODUP,
	 .offset = OFF(trusted_networks),
	 .help = "Networks (addresses, ADDR/BITS or dotted prefixes, as in the rules file) whose "
		 "clients are exempt from the failure penalty, from max_sessions_per_source and "
		 "from the reverse DNS requirement of allow_non_fqdn. The host rules still apply "
		 "to them. Perl mpopd: $trusted_networks (a file of prefixes there)."},
	{"access", "allow_non_fqdn", KT_BOOL, "true", .offset = OFF(allow_non_fqdn),
	 .help = "false: a client outside trusted_networks whose address has no "
		 "forward-confirmed reverse DNS name is refused like a DENY rule (a DNS lookup for "
		 "every such connection). Perl mpopd: $allow_non_fqdn (0 in its sample)."},
	{"access", "resolver_timeout", KT_UINT, "2", 1, 30, .offset = OFF(resolver_timeout),
	 .help = "Seconds the reverse and forward DNS lookup for one client may take; a lookup "
		 "that takes longer gives no name (host name rules do not match, allow_non_fqdn "
		 "false refuses)."},

	{"mailbox", "format", KT_ENUM, "maildir", .choices = formats, .offset = OFF(format),
	 .help = "Mailbox format. Perl mpopd: $use_maildir."},
	{"mailbox", "location", KT_STRING, "", .check = check_pattern, .offset = OFF(location),
	 .help = "Where a user's mailbox is, as a pattern: %u the login name, %n its local part "
		 "(before '@'), %d its domain, %h the home directory, %s mail_spool_dir, %% a "
		 "percent sign; it starts with /, %h or %s. A login whose %u, %n or %d would be "
		 "empty, start with a dot or contain '/' is refused. Empty: %h/Maildir for "
		 "maildir, %s/%u for mbox. A mailbox given in the user list wins. Perl mpopd: "
		 "$mail_spool_dir, $path_to_homedir."},
	{"mailbox", "mail_spool_dir", KT_STRING, "/var/mail", .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(mail_spool_dir),
	 .help = "The mail spool directory, %s in location. Perl mpopd: $mail_spool_dir."},
	{"mailbox", "message_start", KT_STRING, "From\\s", .check = check_line, .flags = F_NONEMPTY,
	 .offset = OFF(message_start),
	 .help = "mbox: the line that starts a message, a regular expression (PCRE, the syntax "
		 "of Perl's) matched from the first character of a line, as if it began with ^, "
		 "against the line without its LF and a CR before it. A message starts at the "
		 "file's first line or at a line right after a message_end line, if that line "
		 "matches; a matching line anywhere else is text of the message, and text before "
		 "the first start belongs to no message (never sent, never removed). The start "
		 "line is not part of the message. A plain prefix (From\\s, ^From\\s) is read "
		 "fastest. The file's own escapes apply first: \\s is a space and a backslash of "
		 "the expression is written \\\\ (^From\\\\s+\\\\d for Perl's ^From\\s+\\d); "
		 "an invalid expression is an error. Perl mpopd: $message_start ('^From ')."},
	{"mailbox", "message_end", KT_STRING, "", .check = check_line, .offset = OFF(message_end),
	 .help = "mbox: the line that ends a message when a message_start line follows it, a "
		 "regular expression that must match the whole line (as if written ^(?:...)$), "
		 "without its LF and a CR before it: END is a line that says END and nothing "
		 "else, never a line that contains END. That line is not part of the message "
		 "(not sent, not counted); UPDATE keeps it with the message before it and removes "
		 "it with that message. Empty (and ^\\\\s*$, and Perl mpopd 2.x's ^\\\\s+$): a "
		 "line of white space only, the blank line of an mbox. --check-config warns about "
		 "an expression without ^ and $, which Perl mpopd matched anywhere in a line, and "
		 "about \\s in the value, which is a space here. Perl mpopd: $message_end "
		 "('^\\s*$')."},
	{"mailbox", "from_quoting", KT_ENUM, "mboxrd", .choices = quotings,
	 .offset = OFF(from_quoting),
	 .help = "mbox: mboxrd removes one '>' from \">From \" lines (with any number of '>') "
		 "when sending; raw sends lines as stored."},
	{"mailbox", "mbox_locks", KT_FLAGS, "dotlock;fcntl", .choices = locks,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(mbox_locks),
	 .help = "mbox: the locks to take, always in the order dotlock (NFS-safe, link()-based), "
		 "fcntl, flock. Use the ones your delivery agent uses. Perl mpopd: the "
		 "<user>.lock dotlock."},
	{"mailbox", "lock_retries", KT_UINT, "10", 0, 1000, .offset = OFF(lock_retries),
	 .help = "mbox: extra attempts after the first while the mailbox is locked; then the "
		 "client gets -ERR [IN-USE]. Perl mpopd: $retry_on_lock."},
	{"mailbox", "lock_wait_ms", KT_UINT, "1000", 0, 60000, .offset = OFF(lock_wait_ms),
	 .help = "mbox: milliseconds between lock attempts."},
	{"mailbox", "lock_stale_age", KT_UINT, "300", 0, 86400, .offset = OFF(lock_stale_age),
	 .help = "mbox: seconds after which a dotlock counts as stale and is taken over; 0: "
		 "never."},
	{"mailbox", "mbox_mode", KT_ENUM, "snapshot", .choices = mbox_modes,
	 .offset = OFF(mbox_mode),
	 .help = "mbox: snapshot locks, indexes and unlocks, then verifies the file before "
		 "every read and at QUIT; session-lock holds the locks for the whole session; "
		 "spool copies the mailbox to spool_dir at login. Perl mpopd: $parse_to_disk."},
	{"mailbox", "mbox_index", KT_BOOL, "true", .offset = OFF(mbox_index),
	 .help = "mbox: keep an index of the mailbox in .NAME.mpopd-index beside it (mode 0600, "
		 "written with the mail_privileged_group where the spool needs it), so that a "
		 "login reads only mail appended since the last one, and remember the UIDLs given "
		 "out: a UIDL stays with its message and is never given to another one later "
		 "(RFC 1939 §7). The index is used only as far as the mbox confirms it; a missing, "
		 "stale or foreign one means a full scan. false: every login scans the whole file "
		 "and UIDLs come from the messages alone (duplicates numbered in file order)."},
	{"mailbox", "spool_dir", KT_STRING, "/var/spool/mpopd", .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(spool_dir),
	 .help = "mbox_mode=spool: the directory where each session, running as the mailbox "
		 "owner, keeps its private copy of the mbox, a file without a name (O_TMPFILE) "
		 "that disappears with the session. It must exist and be writable by every user: "
		 "the tmpfiles.d entry of the package creates /var/spool/mpopd as root:root 1733 "
		 "(sticky, world-writable, not listable); without it a login in spool mode fails "
		 "(-ERR [SYS/TEMP], or [SYS/PERM] when the user may not write there). A pattern "
		 "with %u names a directory per user, which the "
		 "session creates (0700) where it may. Perl mpopd: $mpopd_spool."},
	{"mailbox", "mail_privileged_group", KT_STRING, "mail", .check = check_name,
	 .offset = OFF(mail_privileged_group),
	 .help = "Group the session takes on only while it creates or removes a dotlock and "
		 "while UPDATE replaces an mbox, for spools such as Debian's root:mail 2775 "
		 "/var/mail (Dovecot's mail_privileged_group): only where the mbox's directory "
		 "is writable by this group and not by the user (never for an mbox in a home "
		 "directory); the rest of the session runs without it. Empty: none. Perl "
		 "mpopd: $mailgroup, the gid it gave its dotlocks (12, mail, in its sample): "
		 "name that group here."},
	{"mailbox", "uidl_source", KT_LIST, "x-uidl;message-id;digest", .choices = uidl_sources,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(uidl_source),
	 .help = "mbox: where a message's UIDL comes from, the first usable one wins: x-uidl the "
		 "X-UIDL header (without the \"mpop\" prefix of the Perl mpopd 2.x, whose "
		 "X-UIDL: mpop<user><time><number><pid> it added), message-id the Message-ID "
		 "header (what Perl mpopd 3.x answered), dovecot the X-UID header with the "
		 "X-IMAPbase UIDVALIDITY of the first message (what Dovecot answers with its "
		 "default pop3_uidl_format %08Xu%08Xv), popa3d popa3d's digest of some header "
		 "lines (always usable), digest a SHA-256 digest of the header. After the list, "
		 "the digest. README.md, Migrating, says which to use after which server."},
	{"mailbox", "maildir_uidl_source", KT_LIST, "filename", .choices = maildir_uidl_sources,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(maildir_uidl_source),
	 .help = "maildir: where a message's UIDL comes from, the first usable one wins: "
		 "dovecot the UID and UIDVALIDITY in Dovecot's dovecot-uidlist in the maildir "
		 "(read only; what Dovecot answers with its default pop3_uidl_format "
		 "%08Xu%08Xv, or a UIDL it saved there), filename the file name up to its ':' "
		 "(Perl mpopd; Dovecot's %f). After the list, the file name."},
	{"mailbox", "show_headers", KT_LIST, "", .check = check_header, .flags = F_NODUP,
	 .offset = OFF(show_headers),
	 .help = "mbox: the header fields that other programs keep for themselves and mpopd "
		 "does not send, Status, X-Status, X-UID, X-IMAP, X-IMAPbase, X-Keywords and "
		 "Content-Length, that should be sent after all (no other name is accepted). "
		 "Everything else, X-UIDL included, is always sent: the Perl mpopd 2.x sent the "
		 "X-UIDL it wrote too."},

	{"auth", "default", KT_LIST, "userlist", .choices = mpop_config_auth_backends,
	 .flags = F_NONEMPTY | F_NODUP, .offset = OFF(auth_default),
	 .help = "The chain of authentication backends for users without a [user_auth] entry, "
		 "asked in order: the next one only when the previous one does not know the "
		 "user, never after a wrong password or a refused account: userlist the user "
		 "list, system (also spelled passwd or shadow) the system accounts, pam Linux-PAM, "
		 "hostname and email virtual hosts ([host:NAME]), central one list and one spool "
		 "directory, plugin a checkpassword program (see AUTHENTICATION BACKENDS). Perl "
		 "mpopd: $auth_type."},
	{"auth", "failure_delay", KT_UINT, "1000", 0, 60000, .offset = OFF(failure_delay),
	 .help = "Milliseconds from a login attempt (USER/PASS or AUTH PLAIN) to the answer when "
		 "it fails, whatever the reason (unknown user, wrong password, refused account, "
		 "backend failure, an address blocked by the failure penalty), so that the time "
		 "tells nothing; the failure penalty adds to it. Keep it above the slowest "
		 "password check (a yescrypt hash takes tens of milliseconds, PAM may take "
		 "longer). Perl mpopd: none (a wrong password closed the connection)."},
	{"auth", "userlist", KT_STRING, MPOPD_SYSCONFDIR "/users", .flags = F_PATH,
	 .offset = OFF(userlist),
	 .help = "The user list of the userlist backend, lines of "
		 "name:crypt-hash:uid[:gid[:mailbox]]; mpopdctl passwd makes a hash. Perl mpopd: "
		 "$userlist."},
	{"auth", "plaintext_auth", KT_ENUM, "auto", .choices = plaintext_auths,
	 .offset = OFF(plaintext_auth),
	 .help = "Where USER/PASS and AUTH PLAIN are accepted: tls-only inside TLS, loopback also "
		 "on connections from a loopback address, always everywhere. auto is tls-only when "
		 "[tls] certificate is set, else always. Refused commands get -ERR [AUTH] (RFC "
		 "3206) and CAPA does not offer them."},
	{"auth", "pam_service", KT_STRING, "mpopd", .check = check_name, .flags = F_NONEMPTY,
	 .offset = OFF(pam_service),
	 .help = "PAM service name of the pam backend. Perl mpopd: $mpopd_pam_service."},
	{"auth", "pam_session", KT_BOOL, "false", .offset = OFF(pam_session),
	 .help = "pam backend: after a successful login also pam_setcred (establish) and "
		 "pam_open_session (the service's session stack), and when the session ends "
		 "pam_close_session and pam_setcred (delete), in a root process that waits for the "
		 "session and keeps the PAM handle; false: only the auth and account stacks run "
		 "and no root process stays."},
	{"auth", "system_min_uid", KT_UINT, "1000", 1, 4294967294u, .offset = OFF(system_min_uid),
	 .help = "system backend (also passwd, shadow): the lowest uid that may log in, so "
		 "system and service accounts cannot. uid 0 never logs in."},
	{"auth", "system_group", KT_STRING, "", .check = check_name, .offset = OFF(system_group),
	 .help = "system backend (also passwd, shadow): only members of this group (primary "
		 "or supplementary) may log in; empty: any account that passes the other checks."},
	{"auth", "plugin", KT_STRING, "", .flags = F_PATH, .offset = OFF(plugin),
	 .help = "plugin backend: absolute path of a program with qmail's checkpassword "
		 "interface, run without a shell for every login it is asked about. It reads "
		 "user\\0password\\0timestamp\\0 (the time in seconds since 1970) from fd 3; stdin "
		 "is /dev/null, stdout a pipe, stderr goes to the log (at most 1 KiB, escaped). "
		 "The environment holds only PATH=/usr/bin:/bin, MPOPD_PEER (the client address), "
		 "MPOPD_LOCAL (the address it connected to; absent when unknown) and "
		 "MPOPD_SESSION (the session id of the log); it runs in a session and process "
		 "group of its own with umask 077 and every other fd closed. Exit 0 accepts, 1 "
		 "rejects (no further backend is asked), 2 means the user is unknown to the plugin "
		 "(an mpopd extension: a chain asks its next backend), 111 is a temporary failure; "
		 "any other status, a signal or plugin_timeout is a temporary failure too. On "
		 "accept, stdout holds key=value lines, each ending in a newline: uid=N "
		 "(required, never 0), gid=N (else the primary group of uid's passwd entry, else "
		 "uid), mailbox=/path and home=/path (absolute, no '..'), user=NAME (the canonical "
		 "login name); anything else, a repeated key or more than 4 KiB is a temporary "
		 "failure. The file must be a regular executable owned by root (or by the user "
		 "mpopd runs as) in directories likewise, and not writable by group or others: "
		 "--check-config and the start refuse it otherwise when the plugin backend is "
		 "used. Perl mpopd: $auth_type 7."},
	{"auth", "plugin_args", KT_LIST, "", .offset = OFF(plugin_args),
	 .help = "plugin backend: arguments passed to the program as argv[1], argv[2], ... "
		 "(argv[0] is the path); no shell expands them."},
	{"auth", "plugin_timeout", KT_UINT, "10", 1, 300, .offset = OFF(plugin_timeout),
	 .help = "plugin backend: seconds the program may take; then its process group is "
		 "killed and the login answered -ERR [SYS/TEMP]."},
	{"auth", "plugin_user", KT_STRING, "", .check = check_name, .offset = OFF(plugin_user),
	 .help = "plugin backend: user (with its groups) the program runs as. Empty: the user "
		 "mpopd runs as, root for a system daemon, which a checkpassword program that "
		 "reads /etc/shadow needs; name an unprivileged user for a program that does not. "
		 "Whatever it runs as, the session never runs as root."},
	{"auth", "domain_separators", KT_STRING, "@%", .check = check_separators,
	 .flags = F_NONEMPTY, .offset = OFF(domain_separators),
	 .help = "email backend: the characters that split a login name into local part and "
		 "domain (the last one in the name splits it), so that clients that cannot send "
		 "an @ may use local%domain. Punctuation only, not . - _ : / \\ or ;."},
	{"auth", "central_userlist", KT_STRING, "", .flags = F_PATH,
	 .offset = OFF(central_userlist),
	 .help = "central backend: its user list, in the format of userlist; a uid of 0 never "
		 "logs in. Perl mpopd: auth type 6."},
	{"auth", "central_spool", KT_STRING, "", .flags = F_PATH, .offset = OFF(central_spool),
	 .help = "central backend: the one directory that holds every mailbox of "
		 "central_userlist, each named after its user (an mbox file or a Maildir), unless "
		 "the user list names a mailbox. Perl mpopd: $mail_spool_dir with auth type 6."},

	{"auth", "penalty_delay_after", KT_UINT, "3", 0, 1000, .offset = OFF(penalty_delay_after),
	 .help = "The failure penalty, which remembers failed logins per client address (an IPv6 "
		 "client by its /64 network) and per user name across connections and restarts: "
		 "the first this many recent failures are answered after failure_delay; from the "
		 "next one on the delay doubles with each failure (the larger of the address's and "
		 "the user name's count), up to penalty_max_delay."},
	{"auth", "penalty_max_delay", KT_UINT, "15", 1, 600, .offset = OFF(penalty_max_delay),
	 .help = "Seconds: the longest a failed login is answered after, whatever the penalty."},
	{"auth", "penalty_block_after", KT_UINT, "10", 0, 100000,
	 .offset = OFF(penalty_block_after),
	 .help = "Recent failures from one client address after which its logins are refused "
		 "with -ERR [SYS/TEMP] without checking the password, until penalty_period has "
		 "passed since its last failure; refused logins do not count. 0: never refuse."},
	{"auth", "penalty_user_block_after", KT_UINT, "30", 0, 100000,
	 .offset = OFF(penalty_user_block_after),
	 .help = "Recent failures for one user name (case-insensitive), from any address, after "
		 "which logins as that name are refused like a blocked address. 0: never refuse."},
	{"auth", "penalty_period", KT_UINT, "900", 10, 604800, .offset = OFF(penalty_period),
	 .help = "Seconds after its last failure that an address's or a user name's failures "
		 "are forgotten. A successful login forgets the address's and the user name's "
		 "failures at once."},
	{"auth", "penalty_state", KT_STRING, "/run/mpopd/penalty", .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(penalty_state),
	 .help = "File that holds the failure penalty when each connection is its own process "
		 "(systemd Accept=yes, inetd): a fixed-size table (about 256 KiB) that a flood of "
		 "addresses cannot grow, locked by each process that updates it. Its directory is "
		 "created (0700) when missing; the file must be root's and 0600. The long-running "
		 "daemon keeps the table in memory instead. When it cannot be opened (mpopd not "
		 "started as root) mpopd logs a warning and runs without the penalty."},

	{"tls", "certificate", KT_STRING, "", .flags = F_PATH, .offset = OFF(tls_certificate),
	 .help = "PEM file with the server certificate followed by its chain; empty: no TLS (no "
		 "STLS, no implicit TLS). Read as root at start and at every reload."},
	{"tls", "key", KT_STRING, "", .flags = F_PATH, .offset = OFF(tls_key),
	 .help = "PEM file with the private key; empty: the key is in the certificate file. Keep "
		 "it readable by root only: mpopd reads it before it drops privileges."},
	{"tls", "min_protocol", KT_ENUM, "TLSv1.2", .choices = tls_versions,
	 .offset = OFF(tls_min_protocol),
	 .help = "Oldest TLS version accepted (RFC 8996 retired 1.0 and 1.1)."},
	{"tls", "ciphers", KT_STRING, "", .check = check_line, .offset = OFF(tls_ciphers),
	 .help = "OpenSSL cipher list for TLS 1.2; empty: OpenSSL's defaults at security level 2."},
	{"tls", "ciphersuites", KT_STRING, "", .check = check_line, .offset = OFF(tls_ciphersuites),
	 .help = "OpenSSL TLS 1.3 cipher suites in the server's order of preference; empty: "
		 "OpenSSL's three default suites with AES-128-GCM first (Mozilla's order: a third "
		 "less CPU per byte than AES-256 at both ends), and ChaCha20 for a client that "
		 "lists it first."},

	{"log", "level", KT_ENUM, "info", .choices = log_levels, .offset = OFF(log_level),
	 .help = "Log records up to this priority. Perl mpopd: $debug."},
	{"log", "target", KT_ENUM, "auto", .choices = log_targets, .offset = OFF(log_target),
	 .help = "Where records go. journal: structured records to journald. syslog: lines of "
		 "key=value pairs (session, peer, user, event, msg, and the fields of the record "
		 "in lower case), facility mail, ident mpopd with the pid. stderr: lines on "
		 "standard error. auto: the journal when standard error is the journal stream "
		 "or journald runs, else syslog; standard error only in the foreground (-F) and "
		 "for --check-config. mpopd never writes a log line to the client: when standard "
		 "error is the connection (classic inetd, xinetd, tcpd hand it over on fds 0, 1 "
		 "and 2) or another socket, or is /dev/null (the detached legacy daemon points "
		 "fds 0-2 there), stderr falls back to the journal or syslog as auto does for a "
		 "daemon. [log] users applies to every target."},
	{"log", "syslog_socket", KT_STRING, MPOP_LOG_SYSLOG_SOCKET, .flags = F_PATH | F_NONEMPTY,
	 .offset = OFF(log_syslog_socket),
	 .help = "The datagram socket syslog reads, for target syslog (and auto without the "
		 "journal). Only tests and chroots with their own log socket change it."},
	{"log", "users", KT_LIST, "", .check = mpop_config_check_user, .flags = F_NODUP,
	 .offset = OFF(log_users),
	 .help = "Users whose sessions are logged at debug detail whatever the level. Perl mpopd: "
		 "%user_log."},
};

const size_t mpop_config_n_keys = G_N_ELEMENTS(mpop_config_keys);

#define HOFF(field) offsetof(MpopHostConfig, field)

const char mpop_config_host_help[] =
	"A virtual host for the hostname and email backends, with its own user list and "
	"mailboxes; NAME is its canonical name (lowercase letters, digits, '-' and '.'), %d in "
	"its location. A connection selects the host whose names hold the TLS server name (SNI) "
	"the client sent, else the host whose addresses hold the local address it connected "
	"to, else none: the [auth] userlist and [mailbox] location. The client's address and its "
	"reverse DNS never select a host. An address or a name may belong to one host only. "
	"Perl mpopd: $host_mail_path with auth types 2 to 5.";

const Key mpop_config_host_keys[] = {
	{"host:NAME", "addresses", KT_LIST, "", .check = check_address, .flags = F_NODUP,
	 .offset = HOFF(addresses),
	 .help = "Numeric local addresses (IPv4 or IPv6, no port) that select this host when the "
		 "client connects to one of them; an IPv4 address also matches on an IPv6 "
		 "socket."},
	{"host:NAME", "names", KT_LIST, "", .check = mpop_config_check_host_name, .flags = F_NODUP,
	 .offset = HOFF(names),
	 .help = "Further DNS names of this host, compared without regard to case: TLS server "
		 "names that select it and the domains of the e-mail addresses that log in to "
		 "it. NAME is always one of them."},
	{"host:NAME", "userlist", KT_STRING, "", .flags = F_PATH | F_NONEMPTY | F_REQUIRED,
	 .offset = HOFF(userlist),
	 .help = "The host's user list, in the format of [auth] userlist, with local parts "
		 "(without a domain) as names, compared exactly."},
	{"host:NAME", "location", KT_STRING, "", .check = check_pattern,
	 .flags = F_NONEMPTY | F_REQUIRED, .offset = HOFF(location),
	 .help = "Where the host's users' mailboxes are, a pattern as [mailbox] location: %d is "
		 "NAME, %n the local part, %u both as local@NAME. A mailbox given in the user list "
		 "wins."},
};

const size_t mpop_config_n_host_keys = G_N_ELEMENTS(mpop_config_host_keys);

/* ---- value checks ---- */

gboolean
mpop_config_has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return TRUE;
	return FALSE;
}

static const char *
check_greeting(const char *s)
{
	if (strlen(s) > 200)
		return "is longer than 200 characters";
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return "is not printable ASCII";
	return NULL;
}

/* System user names and PAM service names: portable characters only. */
static const char *
check_name(const char *s)
{
	if (strlen(s) > 64 || s[0] == '-')
		return "is not a valid name";
	for (; *s; s++)
		if (!g_ascii_isalnum(*s) && !strchr("._-", *s))
			return "is not a valid name";
	return NULL;
}

const char *
mpop_config_check_user(const char *s)
{
	if (!*s || strlen(s) > 255)
		return "is not a valid user name";
	for (; *s; s++)
		if (*s == ' ')
			return "is not a valid user name";
	return NULL;
}

static gboolean
valid_port(const char *s)
{
	guint64 v;
	return g_ascii_string_to_unsigned(s, 10, 1, 65535, &v, NULL);
}

char *
mpop_config_listen_split(const char *item, int *out_proxy)
{
	const char *sp = strchr(item, ' ');
	const Choice *c;

	if (!sp) {
		if (out_proxy)
			*out_proxy = -1;
		return g_strdup(item);
	}
	if (!g_str_has_prefix(sp + 1, "proxy="))
		return NULL;
	c = mpop_config_find_choice(proxy_versions, sp + 1 + strlen("proxy="));
	if (!c)
		return NULL;
	if (out_proxy)
		*out_proxy = c->value;
	return g_strndup(item, (gsize)(sp - item));
}

static const char *
check_listen(const char *item)
{
	static const char why[] = "is not host:port, [IPv6]:port or :port with a numeric address, "
				  "optionally followed by \" proxy=off|v1|v2|any\"";
	g_autofree char *s = mpop_config_listen_split(item, NULL);
	const char *colon = s ? strrchr(s, ':') : NULL;
	g_autofree char *host = NULL;
	unsigned char addr[16];

	if (!colon || !valid_port(colon + 1))
		return why;
	host = g_strndup(s, (gsize)(colon - s));
	if (!*host)
		return NULL;
	if (host[0] == '[') {
		size_t n = strlen(host);
		if (n < 3 || host[n - 1] != ']')
			return why;
		host[n - 1] = '\0';
		return inet_pton(AF_INET6, host + 1, addr) == 1 ? NULL : why;
	}
	return inet_pton(AF_INET, host, addr) == 1 ? NULL : why;
}

/* The grammar is util.c's; empty means the format's default. */
static const char *
check_pattern(const char *s)
{
	return *s ? mpop_pattern_check(s) : NULL;
}

static const char *
check_line(const char *s)
{
	return strlen(s) > 200 ? "is longer than 200 characters" : NULL;
}

/* Only the hidden fields: any other name would be accepted and change nothing. Field names
 * are case-insensitive (RFC 5322 section 1.2.2). */
static const char *
check_header(const char *s)
{
	for (const char *const *h = mpop_config_hidden_headers; *h != NULL; h++)
		if (g_ascii_strcasecmp(s, *h) == 0)
			return NULL;
	return "is not one of the hidden fields Status, X-Status, X-UID, X-IMAP, X-IMAPbase, "
	       "X-Keywords and Content-Length (every other field is sent anyway)";
}

/* Characters that would make local@domain ambiguous or reach a path or a list. */
static const char *
check_separators(const char *s)
{
	if (strlen(s) > 8)
		return "is longer than 8 characters";
	for (const char *p = s; *p; p++) {
		if (!g_ascii_ispunct(*p) || strchr(".-_:/\\;", *p))
			return "is not punctuation other than . - _ : / \\ and ;";
		if (strchr(p + 1, *p))
			return "lists a character twice";
	}
	return NULL;
}

static const char *
check_network(const char *s)
{
	MpopNet net;
	return mpop_net_parse(s, &net);
}

static const char *
check_address(const char *s)
{
	guint8 a[16];
	return mpop_addr_parse(s, a) ? NULL : "is not a numeric IPv4 or IPv6 address";
}

const char *
mpop_config_check_host_name(const char *s)
{
	g_autofree char *lower = g_ascii_strdown(s, -1);

	return mpop_dns_name_valid(lower, FALSE)
		       ? NULL
		       : "is not a DNS name (letters, digits, '-' and '.')";
}

const Choice *
mpop_config_find_choice(const Choice *choices, const char *name)
{
	for (const Choice *c = choices; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

int
mpop_config_choice_value(const Choice *choices, const char *name)
{
	const Choice *c = mpop_config_find_choice(choices, name);
	return c ? c->value : 0;
}

char *
mpop_config_choice_names(const Choice *choices)
{
	GString *s = g_string_new(NULL);
	for (const Choice *c = choices; c->name; c++)
		g_string_append_printf(s, "%s%s", s->len ? ", " : "", c->name);
	return g_string_free(s, FALSE);
}

char *
mpop_config_why_not(const Key *k, const char *s, gboolean item)
{
	const char *why = NULL;

	if (mpop_config_has_control(s))
		why = "contains a control character";
	else if (!*s && (item || (k->flags & F_NONEMPTY)))
		why = "must not be empty";
	else if (*s && (k->flags & F_PATH) && s[0] != '/')
		why = "is not an absolute path";
	else if (k->choices && !mpop_config_find_choice(k->choices, s)) {
		g_autofree char *names = mpop_config_choice_names(k->choices);
		return g_strdup_printf("is not one of %s", names);
	} else if (k->check)
		why = k->check(s);
	return g_strdup(why);
}
