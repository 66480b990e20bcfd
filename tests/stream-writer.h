/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Tests and benchmarks: an MpopStream whose writes go to a callback, and RETR through it. */
#pragma once

#include "mailbox.h"
#include "stream.h"
#include "util.h"

typedef int (*TestWriteFn)(gpointer ctx, const void *data, size_t len); /* 0 or -errno */

typedef struct {
	TestWriteFn fn;
	gpointer ctx;
} TestWriter;

static int
test_writer_write(MpopStream *st, const void *buf, size_t len)
{
	TestWriter *w = st->impl;
	return w->fn(w->ctx, buf, len);
}

static void
test_writer_free(MpopStream *st)
{
	g_free(st->impl);
}

static const MpopStreamOps test_writer_ops = {.write = test_writer_write, .free = test_writer_free};

static inline MpopStream *
test_writer_stream(TestWriteFn fn, gpointer ctx)
{
	TestWriter *w = g_new0(TestWriter, 1);

	w->fn = fn;
	w->ctx = ctx;
	return mpop_stream_new_with_ops(&test_writer_ops, w, -1, -1, 10);
}

/* What the session does for RETR/TOP: prefix (the +OK line) queued, the message after it,
 * the queue written at the end. */
static inline gboolean
test_stream_message(MpopMailbox *mb, guint idx, gint64 top, const char *prefix, TestWriteFn fn,
		    gpointer ctx, gboolean *out_broken, GError **error)
{
	g_autoptr(MpopStream) st = test_writer_stream(fn, ctx);
	gboolean broken = FALSE;

	g_string_append(st->out, prefix);
	if (!mpop_mailbox_stream(mb, idx, top, st, &broken, error)) {
		if (out_broken)
			*out_broken = broken;
		return FALSE;
	}
	if (!mpop_stream_flush(st)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "write failed");
		broken = TRUE;
	}
	if (out_broken)
		*out_broken = broken;
	return !broken;
}
