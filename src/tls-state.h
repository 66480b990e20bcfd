/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A TLS 1.3 connection's record-layer state, handed from the pre-login process to the
 * session after a login, so that the session protects its own records (RFC 8446 §5) and no
 * relay process stays between it and the client. No OpenSSL types: the record passes
 * through the connection process, which parses it as untrusted bytes. */
#pragma once

#include <glib.h>

/* The TLS 1.3 cipher suites whose records the session can protect (RFC 8446 B.4). */
#define MPOP_TLS_AES_128_GCM_SHA256 0x1301
#define MPOP_TLS_AES_256_GCM_SHA384 0x1302
#define MPOP_TLS_CHACHA20_POLY1305_SHA256 0x1303

#define MPOP_TLS_MAX_SECRET 48		 /* SHA-384's output */
#define MPOP_TLS_MAX_PLAINTEXT 16384	 /* 2^14, RFC 8446 5.1 */
#define MPOP_TLS_STATE_MAX_PENDING 16384 /* decrypted, not yet read: at most one record's */
/* No state record is longer than this. */
#define MPOP_TLS_STATE_MAX_RECORD (128 + MPOP_TLS_STATE_MAX_PENDING)

typedef struct {
	guint16 suite;				  /* one of the MPOP_TLS_* suites above */
	guint8 secret_len;			  /* the suite's hash length: 32 or 48 */
	guint8 read_secret[MPOP_TLS_MAX_SECRET];  /* client_application_traffic_secret_N */
	guint8 write_secret[MPOP_TLS_MAX_SECRET]; /* server_application_traffic_secret_N */
	guint64 read_seq;			  /* records received under read_secret */
	guint64 write_seq;			  /* records sent under write_secret */
	guint8 *pending;			  /* plaintext the pre-login process decrypted */
	gsize pending_len;			  /* and did not consume (owned) */
} MpopTlsState;

/* The traffic secret's length (the suite's hash) of a suite the session can run, else 0. */
static inline guint8
mpop_tls_suite_secret_len(guint16 suite)
{
	switch (suite) {
	case MPOP_TLS_AES_128_GCM_SHA256:
	case MPOP_TLS_CHACHA20_POLY1305_SHA256:
		return 32;
	case MPOP_TLS_AES_256_GCM_SHA384:
		return 48;
	default:
		return 0; /* the CCM suites, or nothing TLS 1.3 knows */
	}
}

/* Wipe the secrets and free the pending bytes. */
void mpop_tls_state_clear(MpopTlsState *s);

/* The record the pre-login process sends after a successful login over TLS: "MPOPT", then
 * either 'R' (no state: it keeps the TLS connection and relays) or 'S' and the state. */
GBytes *mpop_tls_state_encode(const MpopTlsState *s); /* NULL s: the 'R' record */
/* Parse an untrusted record: 1 with *out filled ('S'), 0 for 'R', -EINVAL otherwise. */
int mpop_tls_state_decode(const guint8 *data, gsize len, MpopTlsState *out);
