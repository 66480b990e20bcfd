/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The connection as a byte stream (plain socket or TLS) and the session's one output buffer. */
#pragma once

#include <glib.h>
#include <sys/types.h>

/* Queued output is written once it reaches this size, even while more commands wait. */
#define MPOP_STREAM_FLUSH_AT (64 * 1024)
/* A reply being built (a message streamed by the mailbox) grows the buffer up to this. */
#define MPOP_STREAM_OUT_CAP (128 * 1024)

typedef struct MpopStream MpopStream;

typedef struct {
	/* Read up to len bytes: > 0, 0 at end of stream, -ETIMEDOUT when nothing came within
	 * timeout_ms (< 0: wait for ever), other -errno on errors. */
	ssize_t (*read)(MpopStream *st, void *buf, size_t len, int timeout_ms);
	/* Write all of buf: 0 or -errno. */
	int (*write)(MpopStream *st, const void *buf, size_t len);
	/* Release the implementation's state (not the descriptors). */
	void (*free)(MpopStream *st);
} MpopStreamOps;

struct MpopStream {
	const MpopStreamOps *ops;
	int fd_in;
	int fd_out;
	int write_timeout_ms; /* a client that stops reading is given up after this */
	GString *out;	      /* replies and message data not yet written */
	guint64 written;      /* bytes handed to ops->write so far */
	gboolean corked;      /* TCP_CORK is on */
	gboolean broken;      /* a write failed: nothing more is sent */
	gpointer impl;	      /* the implementation's state (TLS: the SSL object) */
	char *tls_info;	      /* "TLSv1.3 TLS_AES_256_GCM_SHA384" once TLS is up */
	char *tls_sni;	      /* the server name the client sent, lowercased, if a valid one */
};

/* A plain stream on connected descriptors (a socket, or the two ends of a pipe). Sets
 * TCP_NODELAY and the send timeout where the descriptor is a TCP socket. */
MpopStream *mpop_stream_new(int fd_in, int fd_out, guint write_timeout_s);
/* What mpop_stream_new() sets on the client's socket (TCP_NODELAY, the write timeout). */
void mpop_stream_socket_options(int fd_out, guint write_timeout_s);
/* A stream with other ops (TLS, tests), or the plain ones when ops is NULL (without setting
 * the socket's options); impl is the ops' state. */
MpopStream *mpop_stream_new_with_ops(const MpopStreamOps *ops, gpointer impl, int fd_in, int fd_out,
				     guint write_timeout_s);
/* Frees the implementation and the buffer; the descriptors stay open. NULL is accepted. */
void mpop_stream_free(MpopStream *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(MpopStream, mpop_stream_free)

/* Read into buf (see MpopStreamOps.read). */
ssize_t mpop_stream_read(MpopStream *st, void *buf, size_t len, int timeout_ms);

/* Write the queued output. FALSE once the stream is broken (logged once, as a disconnect). */
gboolean mpop_stream_flush(MpopStream *st);
/* Flush when the queue has reached MPOP_STREAM_FLUSH_AT. */
gboolean mpop_stream_flush_if_full(MpopStream *st);

/* Hold back partial TCP segments while pipelined replies are queued (no-op elsewhere). */
void mpop_stream_set_cork(MpopStream *st, gboolean on);

/* Room for n more bytes at the end of the queue, flushing first when the queue would pass
 * MPOP_STREAM_OUT_CAP. Returns where to write, or NULL when that flush failed. Account for
 * what was written with mpop_stream_commit(). */
char *mpop_stream_reserve(MpopStream *st, size_t n);
void mpop_stream_commit(MpopStream *st, size_t n);
/* Bytes the queue can take before it reaches MPOP_STREAM_OUT_CAP. */
size_t mpop_stream_room(const MpopStream *st);
