/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The TLS 1.3 record layer of a session (RFC 8446 5.2-5.4, KeyUpdate 4.6.3, alerts 6).
 *
 * The pre-login process does the handshake with OpenSSL and, after the login, hands over
 * the application traffic secrets and the sequence numbers it reached (mpop_tls_export).
 * The session then protects its records itself with OpenSSL's AEAD ciphers: one process
 * between the mailbox and the client instead of two, as the kernel's TLS offload (kTLS)
 * does with the same state. Only application data, KeyUpdate and alerts can follow a
 * TLS 1.3 handshake on a server that sends no tickets and asks for no post-handshake
 * authentication; anything else ends the connection with an alert. */
#include "tls-record.h"
#include "util.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <poll.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#define HEADER_LEN 5
#define TAG_LEN 16
#define IV_LEN 12
/* A protected record's body: the plaintext, its type byte, up to 255 bytes of padding and
 * the tag (RFC 8446 5.2: at most 2^14 + 256). */
#define MAX_BODY (MPOP_TLS_MAX_PLAINTEXT + 256)
#define MAX_RECORD (HEADER_LEN + MAX_BODY)
/* What one record costs over its plaintext when we send it (no padding). */
#define OVERHEAD (HEADER_LEN + 1 + TAG_LEN)
/* Records encrypted before one write: a whole MPOP_STREAM_OUT_CAP reply and a KeyUpdate. */
#define OUT_RECORDS (MPOP_STREAM_OUT_CAP / MPOP_TLS_MAX_PLAINTEXT + 2)

enum {
	TYPE_ALERT = 21,
	TYPE_HANDSHAKE = 22,
	TYPE_APPLICATION_DATA = 23,
	HANDSHAKE_KEY_UPDATE = 24,
	ALERT_CLOSE_NOTIFY = 0,
	ALERT_UNEXPECTED_MESSAGE = 10,
	ALERT_BAD_RECORD_MAC = 20,
	ALERT_RECORD_OVERFLOW = 22,
	ALERT_DECODE_ERROR = 50,
	ALERT_INTERNAL_ERROR = 80,
	ALERT_USER_CANCELED = 90,
};

typedef struct {
	EVP_CIPHER_CTX *ctx;
	guint8 secret[MPOP_TLS_MAX_SECRET];
	guint8 iv[IV_LEN];
	guint64 seq;
} Direction;

typedef struct {
	const EVP_CIPHER *cipher;
	const char *digest; /* the suite's hash, for HKDF */
	gsize key_len, secret_len;
	Direction rd, wr;
	guint8 in[2 * MAX_RECORD]; /* bytes read from the client, not yet a whole record */
	gsize in_len;
	guint8 plain[MAX_BODY]; /* decrypted application data not yet returned */
	gsize plain_off, plain_len;
	guint8 *out;	      /* records to send */
	gboolean eof;	      /* close_notify came */
	gboolean fatal;	      /* the connection failed: nothing more is sent */
	gboolean update_owed; /* the client asked for a KeyUpdate before our next data */
} Records;

/* The core's logger (set once when the module is loaded): the module has no log of its own. */
static const MpopTlsHost *host;

void
mpop_tls_record_set_host(const MpopTlsHost *h)
{
	host = h;
}

static void G_GNUC_PRINTF(2, 3) log_info(const char *event, const char *fmt, ...)
{
	g_autofree char *msg = NULL;
	va_list ap;

	if (!host)
		return;
	va_start(ap, fmt);
	msg = g_strdup_vprintf(fmt, ap);
	va_end(ap);
	host->log_info(event, msg);
}

/* HKDF-Expand-Label(secret, label, "", out_len) of RFC 8446 7.1. */
static gboolean
expand_label(const char *digest, const guint8 *secret, gsize secret_len, const char *label,
	     guint8 *out, gsize out_len)
{
	guint8 info[2 + 1 + 255 + 1];
	gsize llen = strlen(label), n = 0;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx;
	gboolean ok;

	g_return_val_if_fail(llen <= 255 - 6, FALSE);
	info[n++] = (guint8)(out_len >> 8);
	info[n++] = (guint8)out_len;
	info[n++] = (guint8)(6 + llen);
	memcpy(info + n, "tls13 ", 6);
	memcpy(info + n + 6, label, llen);
	n += 6 + llen;
	info[n++] = 0; /* empty context */
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	{
		OSSL_PARAM params[] = {
			OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
			OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret,
							  secret_len),
			OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, n),
			OSSL_PARAM_construct_end(),
		};
		ok = kctx && EVP_KDF_derive(kctx, out, out_len, params) == 1;
	}
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return ok;
}

/* Take secret as d's traffic secret: its key and IV, sequence number 0 (7.3). */
static gboolean
direction_set(Records *r, Direction *d, const guint8 *secret, gboolean encrypt)
{
	guint8 key[32];
	gboolean ok;

	if (secret != d->secret)
		memcpy(d->secret, secret, r->secret_len);
	ok = expand_label(r->digest, d->secret, r->secret_len, "key", key, r->key_len) &&
	     expand_label(r->digest, d->secret, r->secret_len, "iv", d->iv, IV_LEN) &&
	     EVP_CipherInit_ex(d->ctx, r->cipher, NULL, key, NULL, encrypt) == 1;
	explicit_bzero(key, sizeof(key));
	d->seq = 0;
	return ok;
}

/* The next generation of d's secret (7.2, "traffic upd"). */
static gboolean
direction_update(Records *r, Direction *d, gboolean encrypt)
{
	guint8 next[MPOP_TLS_MAX_SECRET];
	gboolean ok = expand_label(r->digest, d->secret, r->secret_len, "traffic upd", next,
				   r->secret_len) &&
		      direction_set(r, d, next, encrypt);

	explicit_bzero(next, sizeof(next));
	return ok;
}

/* The per-record nonce: the IV XOR the sequence number, left-padded (5.3). */
static void
record_nonce(const Direction *d, guint8 nonce[IV_LEN])
{
	memcpy(nonce, d->iv, IV_LEN);
	for (int i = 0; i < 8; i++)
		nonce[IV_LEN - 1 - i] ^= (guint8)(d->seq >> (8 * i));
}

/* Protect len bytes of type as one record at out (room for len + OVERHEAD). Returns the
 * record's length, 0 on failure. */
static gsize
seal(Records *r, guint8 type, const guint8 *data, gsize len, guint8 *out)
{
	Direction *d = &r->wr;
	gsize body = len + 1 + TAG_LEN;
	guint8 nonce[IV_LEN];
	int n;

	/* A sequence number never wraps (5.3); 2^64 records are not sent in practice. */
	if (len > MPOP_TLS_MAX_PLAINTEXT || d->seq == G_MAXUINT64)
		return 0;
	out[0] = TYPE_APPLICATION_DATA;
	out[1] = 3;
	out[2] = 3;
	out[3] = (guint8)(body >> 8);
	out[4] = (guint8)body;
	record_nonce(d, nonce);
	if (EVP_EncryptInit_ex(d->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(d->ctx, NULL, &n, out, HEADER_LEN) != 1 ||
	    (len && EVP_EncryptUpdate(d->ctx, out + HEADER_LEN, &n, data, (int)len) != 1) ||
	    EVP_EncryptUpdate(d->ctx, out + HEADER_LEN + len, &n, &type, 1) != 1 ||
	    EVP_EncryptFinal_ex(d->ctx, out + HEADER_LEN + len + 1, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN,
				out + HEADER_LEN + len + 1) != 1)
		return 0;
	d->seq++;
	return HEADER_LEN + body;
}

/* Write all of buf to the client, waiting for it at most timeout_ms (< 0: no limit). */
static int
send_all(int fd, const guint8 *buf, gsize len, int timeout_ms)
{
	guint64 deadline = mpop_deadline_in(timeout_ms);

	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		int r;

		if (n > 0) {
			buf += n;
			len -= (gsize)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		r = mpop_wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}

/* End the connection with an alert (best effort: it is not waited for). */
static void
send_alert(MpopStream *st, guint8 description)
{
	Records *r = st->impl;
	guint8 alert[2] = {description == ALERT_CLOSE_NOTIFY ? 1 : 2, description};
	guint8 rec[2 + OVERHEAD];
	gsize n;

	if (r->fatal)
		return;
	n = seal(r, TYPE_ALERT, alert, sizeof(alert), rec);
	if (n)
		(void)!write(st->fd_out, rec, n);
	r->fatal = TRUE;
}

static ssize_t
fail(MpopStream *st, guint8 alert, const char *why)
{
	log_info("tls", "TLS error: %s", why);
	send_alert(st, alert);
	return -EPROTO;
}

/* Decrypt the whole record at the start of r->in and act on it. 0, or -EPROTO. */
static ssize_t
open_record(MpopStream *st, gsize body)
{
	Records *r = st->impl;
	Direction *d = &r->rd;
	const guint8 *rec = r->in;
	gsize len;
	guint8 nonce[IV_LEN], type;
	int n;

	if (body < 1 + TAG_LEN)
		return fail(st, ALERT_DECODE_ERROR, "record too short");
	len = body - TAG_LEN;
	record_nonce(d, nonce);
	if (EVP_DecryptInit_ex(d->ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(d->ctx, NULL, &n, rec, HEADER_LEN) != 1 ||
	    EVP_DecryptUpdate(d->ctx, r->plain, &n, rec + HEADER_LEN, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(d->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN,
				(void *)(rec + HEADER_LEN + len)) != 1 ||
	    EVP_DecryptFinal_ex(d->ctx, r->plain + len, &n) != 1)
		return fail(st, ALERT_BAD_RECORD_MAC, "a record failed authentication");
	d->seq++;
	/* The content type is the last non-zero byte; zeros after it are padding (5.4). */
	while (len > 0 && r->plain[len - 1] == 0)
		len--;
	if (len == 0)
		return fail(st, ALERT_UNEXPECTED_MESSAGE, "a record without a content type");
	type = r->plain[--len];
	if (len > MPOP_TLS_MAX_PLAINTEXT)
		return fail(st, ALERT_RECORD_OVERFLOW, "a record over 2^14 bytes");
	switch (type) {
	case TYPE_APPLICATION_DATA:
		r->plain_off = 0;
		r->plain_len = len;
		return 0;
	case TYPE_ALERT:
		if (len != 2)
			return fail(st, ALERT_DECODE_ERROR, "a malformed alert");
		if (r->plain[1] == ALERT_CLOSE_NOTIFY) {
			r->eof = TRUE;
			return 0;
		}
		if (r->plain[1] == ALERT_USER_CANCELED)
			return 0; /* a close_notify follows */
		r->fatal = TRUE;  /* the client ended it: no alert back (6.2) */
		log_info("tls", "TLS alert %u from the client", r->plain[1]);
		return -EPROTO;
	case TYPE_HANDSHAKE:
		/* KeyUpdate (4.6.3) is the one handshake message a client may send now; it is
		 * the last in its record, as the key changes after it (5.1). */
		if (len != 5 || r->plain[0] != HANDSHAKE_KEY_UPDATE || r->plain[1] != 0 ||
		    r->plain[2] != 0 || r->plain[3] != 1 || r->plain[4] > 1)
			return fail(st, ALERT_UNEXPECTED_MESSAGE,
				    "an unexpected handshake message");
		if (!direction_update(r, &r->rd, FALSE))
			return fail(st, ALERT_INTERNAL_ERROR, "cannot update the key");
		if (r->plain[4] == 1)
			r->update_owed = TRUE;
		return 0;
	default:
		return fail(st, ALERT_UNEXPECTED_MESSAGE, "an unexpected record type");
	}
}

static ssize_t
records_read(MpopStream *st, void *buf, size_t len, int timeout_ms)
{
	Records *r = st->impl;
	guint64 deadline = mpop_deadline_in(timeout_ms);

	for (;;) {
		ssize_t n;

		if (r->plain_off < r->plain_len) {
			n = (ssize_t)MIN(len, r->plain_len - r->plain_off);
			memcpy(buf, r->plain + r->plain_off, (size_t)n);
			r->plain_off += (gsize)n;
			return n;
		}
		if (r->eof)
			return 0;
		if (r->fatal)
			return -EPROTO;
		if (r->in_len >= HEADER_LEN) {
			gsize body = (gsize)r->in[3] << 8 | r->in[4];

			/* Only protected records after the handshake; their legacy version is
			 * always 0x0303 (5.1-5.2). */
			if (r->in[0] != TYPE_APPLICATION_DATA || r->in[1] != 3 || r->in[2] != 3)
				return fail(st, ALERT_UNEXPECTED_MESSAGE, "an unprotected record");
			if (body > MAX_BODY)
				return fail(st, ALERT_RECORD_OVERFLOW,
					    "a record over 2^14 + 256 bytes");
			if (r->in_len >= HEADER_LEN + body) {
				n = open_record(st, body);
				r->in_len -= HEADER_LEN + body;
				memmove(r->in, r->in + HEADER_LEN + body, r->in_len);
				if (n < 0)
					return n;
				continue;
			}
		}
		n = read(st->fd_in, r->in + r->in_len, sizeof(r->in) - r->in_len);
		if (n > 0) {
			r->in_len += (gsize)n;
			continue;
		}
		if (n == 0)
			return 0; /* closed without close_notify: for POP3 the end all the same */
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN) {
			r->fatal = TRUE;
			return -errno;
		}
		n = mpop_wait_fd(st->fd_in, POLLIN, deadline);
		if (n < 0)
			return n;
	}
}

static int
records_write(MpopStream *st, const void *buf, size_t len)
{
	Records *r = st->impl;
	const guint8 *p = buf;

	while (len > 0 || r->update_owed) {
		gsize o = 0, n;
		int ret;

		if (r->fatal)
			return -EPIPE;
		if (r->update_owed) {
			/* Our KeyUpdate goes before our next data, and then our key changes. */
			static const guint8 key_update[5] = {HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0};

			n = seal(r, TYPE_HANDSHAKE, key_update, sizeof(key_update), r->out);
			if (!n || !direction_update(r, &r->wr, TRUE)) {
				r->fatal = TRUE;
				return -EPROTO;
			}
			o += n;
			r->update_owed = FALSE;
		}
		while (len > 0 && o + MPOP_TLS_MAX_PLAINTEXT + OVERHEAD <=
					  OUT_RECORDS * (MPOP_TLS_MAX_PLAINTEXT + OVERHEAD)) {
			gsize chunk = MIN(len, MPOP_TLS_MAX_PLAINTEXT);

			n = seal(r, TYPE_APPLICATION_DATA, p, chunk, r->out + o);
			if (!n) {
				r->fatal = TRUE;
				return -EPROTO;
			}
			o += n;
			p += chunk;
			len -= chunk;
		}
		ret = send_all(st->fd_out, r->out, o, st->write_timeout_ms);
		if (ret < 0) {
			r->fatal = TRUE; /* a record may be half sent: no alert can follow */
			return ret;
		}
	}
	return 0;
}

static void
records_free(MpopStream *st)
{
	Records *r = st->impl;

	if (!r)
		return;
	/* close_notify, best effort, unless the connection failed or is someone else's now. */
	if (!st->broken)
		send_alert(st, ALERT_CLOSE_NOTIFY);
	EVP_CIPHER_CTX_free(r->rd.ctx);
	EVP_CIPHER_CTX_free(r->wr.ctx);
	explicit_bzero(r->out, OUT_RECORDS * (MPOP_TLS_MAX_PLAINTEXT + OVERHEAD));
	g_free(r->out);
	explicit_bzero(r, sizeof(*r));
	g_free(r);
	st->impl = NULL;
}

static const MpopStreamOps records_ops = {
	.read = records_read,
	.write = records_write,
	.free = records_free,
};

gboolean
mpop_tls_record_resume(MpopStream *st, const MpopTlsState *state, GError **error)
{
	Records *r = g_new0(Records, 1);

	switch (state->suite) {
	case MPOP_TLS_AES_128_GCM_SHA256:
		r->cipher = EVP_aes_128_gcm();
		r->digest = "SHA256";
		r->key_len = 16;
		break;
	case MPOP_TLS_AES_256_GCM_SHA384:
		r->cipher = EVP_aes_256_gcm();
		r->digest = "SHA384";
		r->key_len = 32;
		break;
	case MPOP_TLS_CHACHA20_POLY1305_SHA256:
		r->cipher = EVP_chacha20_poly1305();
		r->digest = "SHA256";
		r->key_len = 32;
		break;
	default:
		break;
	}
	r->secret_len = state->secret_len;
	r->rd.ctx = EVP_CIPHER_CTX_new();
	r->wr.ctx = EVP_CIPHER_CTX_new();
	if (!r->cipher || r->secret_len > MPOP_TLS_MAX_SECRET || !r->rd.ctx || !r->wr.ctx ||
	    state->pending_len > sizeof(r->plain) ||
	    !direction_set(r, &r->rd, state->read_secret, FALSE) ||
	    !direction_set(r, &r->wr, state->write_secret, TRUE)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
			    "cannot take over the TLS connection (suite 0x%04x)", state->suite);
		EVP_CIPHER_CTX_free(r->rd.ctx);
		EVP_CIPHER_CTX_free(r->wr.ctx);
		explicit_bzero(r, sizeof(*r));
		g_free(r);
		return FALSE;
	}
	r->rd.seq = state->read_seq;
	r->wr.seq = state->write_seq;
	if (state->pending_len)
		memcpy(r->plain, state->pending, state->pending_len);
	r->plain_len = state->pending_len;
	r->out = g_malloc(OUT_RECORDS * (MPOP_TLS_MAX_PLAINTEXT + OVERHEAD));
	/* Reads and writes wait in poll() with the session's timeouts. */
	mpop_set_nonblocking(st->fd_in);
	mpop_set_nonblocking(st->fd_out);
	if (st->ops->free)
		st->ops->free(st);
	st->ops = &records_ops;
	st->impl = r;
	return TRUE;
}
