/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The TLS state record between the pre-login process and the connection process. */
#include "tls-state.h"

#include <errno.h>
#include <string.h>

#define MAGIC "MPOPT"
#define MAGIC_LEN 5
/* magic, kind, suite (2), secret length (1), two secrets, two sequence numbers (8 each),
 * pending length (4) */
#define FIXED_LEN (MAGIC_LEN + 1 + 2 + 1 + 2 * MPOP_TLS_MAX_SECRET + 8 + 8 + 4)

void
mpop_tls_state_clear(MpopTlsState *s)
{
	if (s->pending) {
		explicit_bzero(s->pending, s->pending_len);
		g_free(s->pending);
	}
	explicit_bzero(s, sizeof(*s));
}

static void
put_be(guint8 *p, guint64 v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (guint8)v;
}

static guint64
get_be(const guint8 *p, int n)
{
	guint64 v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

GBytes *
mpop_tls_state_encode(const MpopTlsState *s)
{
	guint8 *b, *p;
	gsize len;

	if (!s)
		return g_bytes_new(MAGIC "R", MAGIC_LEN + 1);
	len = FIXED_LEN + s->pending_len;
	p = b = g_malloc0(len);
	memcpy(p, MAGIC "S", MAGIC_LEN + 1);
	p += MAGIC_LEN + 1;
	put_be(p, s->suite, 2);
	p[2] = s->secret_len;
	p += 3;
	memcpy(p, s->read_secret, MPOP_TLS_MAX_SECRET);
	memcpy(p + MPOP_TLS_MAX_SECRET, s->write_secret, MPOP_TLS_MAX_SECRET);
	p += 2 * MPOP_TLS_MAX_SECRET;
	put_be(p, s->read_seq, 8);
	put_be(p + 8, s->write_seq, 8);
	put_be(p + 16, s->pending_len, 4);
	if (s->pending_len)
		memcpy(p + 20, s->pending, s->pending_len);
	return g_bytes_new_take(b, len);
}

int
mpop_tls_state_decode(const guint8 *data, gsize len, MpopTlsState *out)
{
	const guint8 *p = data + MAGIC_LEN + 1;
	MpopTlsState s = {0};
	guint8 want;

	if (len < MAGIC_LEN + 1 || memcmp(data, MAGIC, MAGIC_LEN) != 0)
		return -EINVAL;
	if (data[MAGIC_LEN] == 'R')
		return len == MAGIC_LEN + 1 ? 0 : -EINVAL;
	if (data[MAGIC_LEN] != 'S' || len < FIXED_LEN)
		return -EINVAL;
	s.suite = (guint16)get_be(p, 2);
	s.secret_len = p[2];
	want = mpop_tls_suite_secret_len(s.suite);
	if (!want || s.secret_len != want)
		return -EINVAL;
	p += 3;
	memcpy(s.read_secret, p, MPOP_TLS_MAX_SECRET);
	memcpy(s.write_secret, p + MPOP_TLS_MAX_SECRET, MPOP_TLS_MAX_SECRET);
	p += 2 * MPOP_TLS_MAX_SECRET;
	s.read_seq = get_be(p, 8);
	s.write_seq = get_be(p + 8, 8);
	s.pending_len = get_be(p + 16, 4);
	if (s.pending_len > MPOP_TLS_STATE_MAX_PENDING || len != FIXED_LEN + s.pending_len) {
		explicit_bzero(&s, sizeof(s));
		return -EINVAL;
	}
	if (s.pending_len)
		s.pending = g_memdup2(p + 20, s.pending_len);
	*out = s;
	return 1;
}
