/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests of the session's TLS 1.3 record layer: the client's side, written independently of
 * src/tls-record.c (keys from OpenSSL's own TLS13-KDF, records sealed and opened here). */
#pragma once

#include "tls-state.h"

#include <glib.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <string.h>

typedef struct {
	const EVP_CIPHER *cipher;
	const char *digest;
	gsize key_len, secret_len;
	guint8 secret[MPOP_TLS_MAX_SECRET];
	guint8 key[32], iv[12];
	guint64 seq;
} SealKey;

/* HKDF-Expand-Label through OpenSSL's TLS13-KDF. */
static void
seal_expand(const char *digest, const guint8 *secret, gsize secret_len, const char *label,
	    guint8 *out, gsize out_len)
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "TLS13-KDF", NULL);
	EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(kdf);
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)digest, 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, (void *)"tls13 ", 6),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label,
						  strlen(label)),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)"", 0),
		OSSL_PARAM_construct_end(),
	};

	g_assert_nonnull(kctx);
	g_assert_cmpint(EVP_KDF_derive(kctx, out, out_len, params), ==, 1);
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
}

static void
seal_key_set(SealKey *k, guint16 suite, const guint8 *secret)
{
	k->digest = suite == MPOP_TLS_AES_256_GCM_SHA384 ? "SHA384" : "SHA256";
	k->secret_len = suite == MPOP_TLS_AES_256_GCM_SHA384 ? 48 : 32;
	k->key_len = suite == MPOP_TLS_AES_128_GCM_SHA256 ? 16 : 32;
	k->cipher = suite == MPOP_TLS_AES_128_GCM_SHA256   ? EVP_aes_128_gcm()
		    : suite == MPOP_TLS_AES_256_GCM_SHA384 ? EVP_aes_256_gcm()
							   : EVP_chacha20_poly1305();
	memmove(k->secret, secret, k->secret_len);
	seal_expand(k->digest, k->secret, k->secret_len, "key", k->key, k->key_len);
	seal_expand(k->digest, k->secret, k->secret_len, "iv", k->iv, 12);
	k->seq = 0;
}

static void
seal_key_update(SealKey *k, guint16 suite)
{
	guint8 next[MPOP_TLS_MAX_SECRET];

	seal_expand(k->digest, k->secret, k->secret_len, "traffic upd", next, k->secret_len);
	seal_key_set(k, suite, next);
}

static void
seal_nonce(const SealKey *k, guint8 nonce[12])
{
	memcpy(nonce, k->iv, 12);
	for (int i = 0; i < 8; i++)
		nonce[11 - i] ^= (guint8)(k->seq >> (8 * i));
}

/* Append one record: data, the content type, then pad zero bytes, sealed under k. */
static void
seal_record(GByteArray *out, SealKey *k, guint8 type, const void *data, gsize len, gsize pad)
{
	gsize inner = len + 1 + pad, body = inner + 16;
	g_autofree guint8 *plain = g_malloc0(inner);
	guint8 hdr[5] = {23, 3, 3, (guint8)(body >> 8), (guint8)body}, nonce[12];
	guint8 *ct = g_malloc(body);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n;

	if (len)
		memcpy(plain, data, len);
	plain[len] = type;
	seal_nonce(k, nonce);
	g_assert_cmpint(EVP_EncryptInit_ex(ctx, k->cipher, NULL, k->key, nonce), ==, 1);
	g_assert_cmpint(EVP_EncryptUpdate(ctx, NULL, &n, hdr, 5), ==, 1);
	g_assert_cmpint(EVP_EncryptUpdate(ctx, ct, &n, plain, (int)inner), ==, 1);
	g_assert_cmpint(EVP_EncryptFinal_ex(ctx, ct + inner, &n), ==, 1);
	g_assert_cmpint(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, ct + inner), ==, 1);
	EVP_CIPHER_CTX_free(ctx);
	g_byte_array_append(out, hdr, 5);
	g_byte_array_append(out, ct, (guint)body);
	g_free(ct);
	k->seq++;
}

/* Open the record at *p (bytes left *len) under k: its content type, or -1 when it does not
 * authenticate or is incomplete. The plaintext (padding removed) is appended to plain. */
static inline int
seal_open(const guint8 **p, gsize *len, SealKey *k, GByteArray *plain)
{
	gsize body, inner;
	guint8 nonce[12], *pt;
	EVP_CIPHER_CTX *ctx;
	int n, ok;

	if (*len < 5)
		return -1;
	body = (gsize)(*p)[3] << 8 | (*p)[4];
	if (*len < 5 + body || body < 17)
		return -1;
	inner = body - 16;
	pt = g_malloc(inner);
	seal_nonce(k, nonce);
	ctx = EVP_CIPHER_CTX_new();
	ok = EVP_DecryptInit_ex(ctx, k->cipher, NULL, k->key, nonce) == 1 &&
	     EVP_DecryptUpdate(ctx, NULL, &n, *p, 5) == 1 &&
	     EVP_DecryptUpdate(ctx, pt, &n, *p + 5, (int)inner) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(*p + 5 + inner)) == 1 &&
	     EVP_DecryptFinal_ex(ctx, pt + inner, &n) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok) {
		g_free(pt);
		return -1;
	}
	while (inner > 0 && pt[inner - 1] == 0)
		inner--;
	g_assert_cmpuint(inner, >, 0);
	g_byte_array_append(plain, pt, (guint)(inner - 1));
	n = pt[inner - 1];
	g_free(pt);
	*p += 5 + body;
	*len -= 5 + body;
	k->seq++;
	return n;
}
