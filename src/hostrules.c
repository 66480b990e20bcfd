/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host rules checked before the greeting: the allow/deny/warn file, trusted networks and
 * forward-confirmed reverse DNS. */
#include "hostrules.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* A rules file is a list of lines, not a database: anything larger is a mistake. */
#define RULES_MAX_SIZE (4 * 1024 * 1024)
#define EXCERPT_MAX 80

typedef enum {
	ACT_ALLOW,
	ACT_DENY,
	ACT_WARN,
} Action;

typedef enum {
	KIND_NET,    /* an address or a network */
	KIND_NAME,   /* a host name, exactly */
	KIND_SUFFIX, /* .example.org: any name that ends so */
	KIND_ALL,
} Kind;

typedef struct {
	guint8 action, kind;
	guint line;
	MpopNet net;
	const char *name; /* KIND_NAME, KIND_SUFFIX (with its leading '.'): in names */
} Rule;

struct MpopHostRules {
	GArray *rules; /* Rule, in file order */
	GStringChunk *names;
	guint deny_all_line; /* the first DENY ALL, 0: none */
	gboolean need_name;
};

/* ---- networks ---- */

static gboolean
octet(const char *s, size_t n, guint8 *out)
{
	guint v = 0;

	if (n == 0 || n > 3)
		return FALSE;
	for (size_t i = 0; i < n; i++) {
		if (!g_ascii_isdigit(s[i]))
			return FALSE;
		v = v * 10 + (guint)(s[i] - '0');
	}
	if (v > 255 || (n > 1 && s[0] == '0'))
		return FALSE;
	*out = (guint8)v;
	return TRUE;
}

/* The Perl mpopd's prefix form: "10.0." or "10.0.*" (also "10.0.*.*") is 10.0.0.0/16. */
static const char *
parse_dotted_prefix(const char *text, MpopNet *out)
{
	g_autofree char *s = g_strdup(text);
	size_t n = strlen(s);
	guint count = 0, dots = 0;
	const char *p;

	/* trailing "*" parts: 10.0.*.* is 10.0. */
	for (;;) {
		if (n >= 2 && s[n - 1] == '*' && s[n - 2] == '.')
			s[--n] = '\0';
		else if (n >= 3 && s[n - 1] == '.' && s[n - 2] == '*' && s[n - 3] == '.')
			s[n -= 2] = '\0';
		else
			break;
	}
	if (strchr(s, '*'))
		return "is not an IPv4 address prefix (a * stands only for whole trailing parts)";
	for (p = s; *p; p++)
		dots += *p == '.';
	if (n == 0 || s[n - 1] != '.')
		return dots == 3 ? "is not an IPv4 address"
				 : "is an incomplete address (write 10.0.0. or 10.0.0.0/24 for a "
				   "network)";
	memset(out, 0, sizeof(*out));
	out->addr[10] = out->addr[11] = 0xff;
	for (p = s; *p;) {
		const char *dot = strchr(p, '.');
		if (count == 3 || !octet(p, (size_t)(dot - p), &out->addr[12 + count]))
			return "is not an IPv4 address prefix";
		count++;
		p = dot + 1;
	}
	out->bits = (guint8)(96 + 8 * count);
	return NULL;
}

static gboolean
host_bits_clear(const MpopNet *net)
{
	for (guint i = net->bits; i < 128; i++)
		if (net->addr[i / 8] & (0x80 >> (i % 8)))
			return FALSE;
	return TRUE;
}

const char *
mpop_net_parse(const char *text, MpopNet *out)
{
	const char *slash = strchr(text, '/');
	g_autofree char *addr = g_strndup(text, slash ? (gsize)(slash - text) : strlen(text));
	gboolean v6 = strchr(addr, ':') != NULL;
	MpopNet net = {0};
	guint64 bits;

	if (!mpop_addr_parse(addr, net.addr)) {
		if (v6 || slash)
			return v6 ? "is not an IPv6 address" : "is not an IPv4 address";
		return parse_dotted_prefix(text, out);
	}
	net.bits = 128;
	if (slash) {
		if (!g_ascii_string_to_unsigned(slash + 1, 10, 0, v6 ? 128 : 32, &bits, NULL))
			return v6 ? "has a prefix length that is not 0 to 128"
				  : "has a prefix length that is not 0 to 32";
		net.bits = (guint8)(v6 ? bits : 96 + bits);
		if (!host_bits_clear(&net))
			return "has address bits set past the prefix length";
	}
	*out = net;
	return NULL;
}

gboolean
mpop_net_contains(const MpopNet *net, const guint8 addr[16])
{
	guint full = net->bits / 8, rest = net->bits % 8;

	if (memcmp(net->addr, addr, full) != 0)
		return FALSE;
	return rest == 0 || ((net->addr[full] ^ addr[full]) & (guint8)(0xff00 >> rest)) == 0;
}

gboolean
mpop_net_list_contains(const char *const *nets, const guint8 addr[16])
{
	for (; nets && *nets; nets++) {
		MpopNet net;
		if (!mpop_net_parse(*nets, &net) && mpop_net_contains(&net, addr))
			return TRUE;
	}
	return FALSE;
}

/* ---- the rules file ---- */

static gboolean
line_error(GError **error, const char *name, guint line, const char *excerpt, size_t len,
	   const char *why)
{
	g_autofree char *e = mpop_escape_excerpt(excerpt, len, EXCERPT_MAX);

	g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s:%u: \"%s\" %s", name, line, e, why);
	return FALSE;
}

static gboolean
parse_action(const char *s, guint8 *out)
{
	if (g_ascii_strcasecmp(s, "ALLOW") == 0)
		*out = ACT_ALLOW;
	else if (g_ascii_strcasecmp(s, "DENY") == 0)
		*out = ACT_DENY;
	else if (g_ascii_strcasecmp(s, "WARN") == 0)
		*out = ACT_WARN;
	else
		return FALSE;
	return TRUE;
}

static gboolean
looks_numeric(const char *s)
{
	return strspn(s, "0123456789.*/") == strlen(s);
}

/* The peer of one rule. Returns NULL or why not. */
static const char *
parse_peer(MpopHostRules *r, const char *peer, Rule *rule)
{
	g_autofree char *lower = NULL;
	const char *name;

	if (g_ascii_strcasecmp(peer, "ALL") == 0) {
		rule->kind = KIND_ALL;
		return NULL;
	}
	if (strchr(peer, ':') || looks_numeric(peer)) {
		rule->kind = KIND_NET;
		return mpop_net_parse(peer, &rule->net);
	}
	lower = g_ascii_strdown(peer, -1);
	name = lower;
	rule->kind = KIND_NAME;
	if (g_str_has_prefix(name, "*.") || name[0] == '.') {
		rule->kind = KIND_SUFFIX;
		name += name[0] == '*' ? 2 : 1;
	}
	if (!mpop_dns_name_valid(name, FALSE))
		return "is not an address, a network, a host name or ALL";
	/* the suffix keeps its leading '.', so that .example.org never matches badexample.org */
	rule->name =
		g_string_chunk_insert_const(r->names, rule->kind == KIND_SUFFIX ? name - 1 : name);
	r->need_name = TRUE;
	return NULL;
}

/* One line, without its end; FALSE with error set when it is not a rule, a comment or
 * blank. */
static gboolean
parse_line(MpopHostRules *r, char *text, size_t len, const char *name, guint lineno, GError **error)
{
	g_auto(GStrv) tok = NULL;
	Rule rule = {.line = lineno};
	const char *why;
	guint n;

	if (memchr(text, '\0', len))
		return line_error(error, name, lineno, text, len, "contains a NUL byte");
	g_strstrip(text);
	if (!*text || *text == '#')
		return TRUE;
	for (char *p = text; *p; p++)
		if (*p == '\t')
			*p = ' ';
	tok = g_strsplit(text, " ", 0);
	n = 0;
	for (guint i = 0; tok[i]; i++)
		if (*tok[i]) /* runs of blanks give empty tokens */
			tok[n++] = tok[i];
		else
			g_free(tok[i]);
	tok[n] = NULL;
	if (n < 2 || !parse_action(tok[0], &rule.action))
		return line_error(error, name, lineno, text, strlen(text),
				  "is not ALLOW, DENY or WARN followed by an address, a network, "
				  "a host name or ALL");
	if (n > 2 && tok[2][0] != '#')
		return line_error(error, name, lineno, text, strlen(text),
				  "has more than one address or name (a comment starts with #)");
	why = parse_peer(r, tok[1], &rule);
	if (why)
		return line_error(error, name, lineno, tok[1], strlen(tok[1]), why);
	if (rule.action == ACT_DENY && rule.kind == KIND_ALL && !r->deny_all_line)
		r->deny_all_line = lineno;
	g_array_append_val(r->rules, rule);
	return TRUE;
}

MpopHostRules *
mpop_hostrules_parse(const char *text, gsize len, const char *name, GError **error)
{
	g_autoptr(MpopHostRules) r = g_new0(MpopHostRules, 1);
	g_autofree char *line = NULL;
	gsize pos = 0, cap = 0;
	guint lineno = 0;

	r->rules = g_array_new(FALSE, FALSE, sizeof(Rule));
	r->names = g_string_chunk_new(256);
	if (len > RULES_MAX_SIZE) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s: file too large", name);
		return NULL;
	}
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		gsize end = nl ? (gsize)(nl - text) : len, n = end - pos;
		if (n + 1 > cap) {
			cap = MAX(n + 1, 128);
			g_free(line);
			line = g_malloc(cap);
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (!parse_line(r, line, n, name, ++lineno, error))
			return NULL;
		pos = end + 1;
	}
	return g_steal_pointer(&r);
}

MpopHostRules *
mpop_hostrules_load(const char *path, GError **error)
{
	g_autoptr(GError) e = NULL;
	g_autofree char *data = NULL;
	gsize len = 0;

	if (!g_file_get_contents(path, &data, &len, &e)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_CONFIG, "%s", e->message);
		return NULL;
	}
	return mpop_hostrules_parse(data, len, path, error);
}

void
mpop_hostrules_free(MpopHostRules *rules)
{
	if (!rules)
		return;
	if (rules->rules)
		g_array_free(rules->rules, TRUE);
	if (rules->names)
		g_string_chunk_free(rules->names);
	g_free(rules);
}

guint
mpop_hostrules_count(const MpopHostRules *rules)
{
	return rules ? rules->rules->len : 0;
}

gboolean
mpop_hostrules_need_name(const MpopHostRules *rules)
{
	return rules && rules->need_name;
}

static gboolean
rule_matches(const Rule *rule, const guint8 addr[16], const char *name)
{
	size_t n, s;

	switch ((Kind)rule->kind) {
	case KIND_ALL:
		return TRUE;
	case KIND_NET:
		return mpop_net_contains(&rule->net, addr);
	case KIND_NAME:
		return name && g_ascii_strcasecmp(name, rule->name) == 0;
	case KIND_SUFFIX:
		if (!name)
			return FALSE;
		n = strlen(name);
		s = strlen(rule->name);
		return n > s && g_ascii_strcasecmp(name + n - s, rule->name) == 0;
	}
	return FALSE;
}

void
mpop_hostrules_check(const MpopHostRules *rules, const guint8 addr[16], const char *name,
		     MpopHostVerdict *out)
{
	*out = (MpopHostVerdict){0};
	if (!rules)
		return;
	for (guint i = 0; i < rules->rules->len; i++) {
		const Rule *rule = &g_array_index(rules->rules, Rule, i);
		/* DENY ALL sets the default wherever it stands (the Perl mpopd's rule). */
		if ((rule->action == ACT_DENY && rule->kind == KIND_ALL) ||
		    !rule_matches(rule, addr, name))
			continue;
		if (rule->action == ACT_WARN) {
			if (!out->warn_line)
				out->warn_line = rule->line;
			continue;
		}
		out->denied = rule->action == ACT_DENY;
		out->line = rule->line;
		return;
	}
	out->denied = rules->deny_all_line != 0;
	out->line = rules->deny_all_line;
}

/* ---- forward-confirmed reverse DNS ---- */

/* In the lookup child: the PTR name of addr if it resolves back to addr. */
static gboolean
confirm(const struct sockaddr *sa, socklen_t len, const guint8 addr[16], char *name, size_t size)
{
	const struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	gboolean ok = FALSE;
	guint8 other[16];

	if (getnameinfo(sa, len, name, (socklen_t)size, NULL, 0, NI_NAMEREQD) != 0)
		return FALSE;
	/* A PTR record that holds an address in text would "confirm" itself. */
	if (mpop_addr_parse(name, other) || getaddrinfo(name, NULL, &hints, &ai) != 0)
		return FALSE;
	for (const struct addrinfo *a = ai; a && !ok; a = a->ai_next)
		ok = mpop_addr_from_sockaddr(a->ai_addr, a->ai_addrlen, other) &&
		     memcmp(other, addr, 16) == 0;
	freeaddrinfo(ai);
	return ok;
}

static G_GNUC_NORETURN void
lookup_child(const guint8 addr[16], int out)
{
	struct sockaddr_storage ss = {0};
	socklen_t len;
	char name[NI_MAXHOST];

	/* A v4-mapped address is looked up as IPv4 (in-addr.arpa, not ip6.arpa). */
	if (memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		memcpy(&in->sin_addr, addr + 12, 4);
		len = sizeof(*in);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		memcpy(&in6->sin6_addr, addr, 16);
		len = sizeof(*in6);
	}
	if (confirm((struct sockaddr *)&ss, len, addr, name, sizeof(name)) &&
	    mpop_write_all(out, name, strlen(name)) < 0)
		_exit(1);
	_exit(0);
}

/* Read the child's answer until EOF or the deadline. */
static char *
read_answer(int fd, guint timeout_ms)
{
	guint64 deadline = mpop_now_usec() + (guint64)timeout_ms * 1000;
	char buf[NI_MAXHOST + 1];
	size_t got = 0;

	for (;;) {
		guint64 now = mpop_now_usec();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (now >= deadline)
			return NULL;
		if (poll(&p, 1, (int)((deadline - now + 999) / 1000)) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (!p.revents)
			continue;
		n = mpop_read_some(fd, buf + got, sizeof(buf) - 1 - got);
		if (n < 0)
			return NULL;
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == sizeof(buf) - 1)
			return NULL;
	}
	buf[got] = '\0';
	return got ? g_strndup(buf, got) : NULL;
}

char *
mpop_hostrules_confirmed_name(const struct sockaddr *sa, socklen_t len, guint timeout_ms)
{
	guint8 addr[16];
	g_autofree char *name = NULL;
	int p[2];
	pid_t pid;
	size_t n;

	if (!mpop_addr_from_sockaddr(sa, len, addr) || pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		close(p[0]);
		lookup_child(addr, p[1]);
	}
	close(p[1]);
	name = read_answer(p[0], timeout_ms);
	close(p[0]);
	/* A resolver that hangs past the timeout is not waited for. */
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	if (!name)
		return NULL;
	n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		name[n - 1] = '\0';
	for (char *c = name; *c; c++)
		*c = g_ascii_tolower(*c);
	return mpop_dns_name_valid(name, FALSE) ? g_steal_pointer(&name) : NULL;
}
