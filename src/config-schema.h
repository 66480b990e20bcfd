/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The configuration schema (private to config.c and config-schema.c): one row per key, with
 * its type, default, range, checks and help, driving loading, validation, the dump, the
 * sample file and the man page. */
#pragma once

#include <stddef.h>
#include "config.h"

typedef enum {
	KT_STRING, /* a string; with choices: one of them, stored as the string */
	KT_UINT,   /* guint in min..max */
	KT_BOOL,
	KT_LIST,  /* char **, ';'-separated; with choices: each one of them */
	KT_ENUM,  /* int, one of choices */
	KT_FLAGS, /* guint bit set, a ';'-separated list of choices */
} KeyType;

enum {
	F_NONEMPTY = 1 << 0, /* a string or list that must not be empty */
	F_NODUP = 1 << 1,    /* a list in which no item may appear twice */
	F_PATH = 1 << 2,     /* an absolute path when not empty */
	F_REQUIRED = 1 << 3, /* [host:NAME] keys: the group must set it (def is "") */
};

typedef struct {
	const char *name;
	int value;
} Choice;

/* Returns NULL when s is acceptable, else why not ("is not ..."). */
typedef const char *(*CheckFn)(const char *s);

typedef struct {
	const char *group;
	const char *key;
	KeyType type;
	const char *def; /* the default as key-file text, in canonical (dump) form */
	guint min, max;
	const Choice *choices; /* NULL-name terminated */
	CheckFn check;
	guint flags;
	size_t offset;
	const char *help;
} Key;

/* Every key of every group but [user_auth], in the order of the dump and the man page. */
extern const Key mpop_config_keys[];
extern const size_t mpop_config_n_keys;

/* The keys of each [host:NAME] group (group "host:NAME" in the docs), offsets into
 * MpopHostConfig. */
#define MPOP_CONFIG_HOST_PREFIX "host:"
extern const Key mpop_config_host_keys[];
extern const size_t mpop_config_n_host_keys;
/* What [host:NAME] groups are, for the sample and the man page. */
extern const char mpop_config_host_help[];

/* Returns NULL when s is a DNS name in any case (mpop_dns_name_valid() of its lowercase form),
 * else why not. */
const char *mpop_config_check_host_name(const char *s);

/* The backend names [auth] default and [user_auth] accept. */
extern const Choice mpop_config_auth_backends[];

gboolean mpop_config_has_control(const char *s);
/* Returns NULL when s is acceptable as a login name, else why not. */
const char *mpop_config_check_user(const char *s);
const Choice *mpop_config_find_choice(const Choice *choices, const char *name);
/* The value of a name mpop_config_why_not() has already accepted. */
int mpop_config_choice_value(const Choice *choices, const char *name);
/* "a, b, c" */
char *mpop_config_choice_names(const Choice *choices);
/* Why a string (or a list item) is unacceptable for k, or NULL (caller frees). */
char *mpop_config_why_not(const Key *k, const char *s, gboolean item);
