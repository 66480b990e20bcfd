/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host rules checked before the greeting: the allow/deny/warn file, trusted networks and
 * forward-confirmed reverse DNS. */
#pragma once

#include <glib.h>
#include <sys/socket.h>

/* A network: 16 bytes (IPv4 as ::ffff:a.b.c.d, the form of mpop_addr_parse()) and the
 * number of leading bits that must match (an IPv4 /n is 96 + n). */
typedef struct {
	guint8 addr[16];
	guint8 bits;
} MpopNet;

/* Parse a network as the rules file and trusted_networks write it: an IPv4 or IPv6 address,
 * ADDR/BITS (no bits set past the prefix), or the dotted prefix "10.0." (also "10.0.*").
 * Returns NULL when text is one, else why not (a static string). */
const char *mpop_net_parse(const char *text, MpopNet *out);

/* Whether addr (16 bytes) is inside net. */
gboolean mpop_net_contains(const MpopNet *net, const guint8 addr[16]);

/* Whether addr is inside one of nets (texts mpop_net_parse() accepts; others never match). */
gboolean mpop_net_list_contains(const char *const *nets, const guint8 addr[16]);

typedef struct MpopHostRules MpopHostRules;

/* Parse the text of a rules file (untrusted as to its form: any bytes). name is the file
 * name for messages; a bad line is an MPOP_ERROR_CONFIG "name:LINE: ...". */
MpopHostRules *mpop_hostrules_parse(const char *text, gsize len, const char *name, GError **error);

/* Read and parse the rules file at path. */
MpopHostRules *mpop_hostrules_load(const char *path, GError **error);

void mpop_hostrules_free(MpopHostRules *rules);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopHostRules, mpop_hostrules_free)

/* The number of rules (DENY ALL included). */
guint mpop_hostrules_count(const MpopHostRules *rules);

/* Whether a rule names a host, so that the client's confirmed name is needed. */
gboolean mpop_hostrules_need_name(const MpopHostRules *rules);

typedef struct {
	gboolean denied;
	guint line;	 /* the rule that decided; for the default, DENY ALL's line or 0 */
	guint warn_line; /* the first WARN rule that matched before the decision; 0: none */
} MpopHostVerdict;

/* The verdict on a client at addr (16 bytes) whose forward-confirmed name is name (NULL:
 * none). In file order the first ALLOW or DENY rule that matches decides; WARN rules that
 * match before it are reported; no decision admits unless the file has DENY ALL. */
void mpop_hostrules_check(const MpopHostRules *rules, const guint8 addr[16], const char *name,
			  MpopHostVerdict *out);

/* The client's forward-confirmed reverse DNS name, lowercase, or NULL: the name the
 * address's PTR record gives (NI_NAMEREQD) must resolve back to the address. The lookup
 * runs in a child process that is killed after timeout_ms. */
char *mpop_hostrules_confirmed_name(const struct sockaddr *sa, socklen_t len, guint timeout_ms);
