/* SPDX-License-Identifier: GPL-2.0-or-later */
/* mpopd-bench: a POP3 load and verification client for any server, and a deterministic mailbox
 * generator. Shared types of its modes; nothing here is linked into mpopd. */
#pragma once

#include <glib.h>
#include <openssl/ssl.h>
#include <stdint.h>

typedef struct {
	const char *host;
	const char *port;
	gboolean tls;
	const char *user; /* "%d" stands for the client number */
	const char *pass;
	GPtrArray *users; /* from --users: "user", "password" pairs, or NULL */
	int clients;
	long sessions;	/* 0: until --seconds */
	double seconds; /* sessions: run time; memory: hold time */
	int pipeline;	/* commands in flight for retrieve and top */
	int repeat;	/* bigbox logins */
	int lines;	/* TOP's line count */
	double timeout; /* for any one read or write */
	gboolean json;
	gboolean quiet;
	/* generate */
	const char *maildir;
	const char *mbox;
	long messages;
	guint64 seed;
	gboolean name_sizes;
} BenchOptions;

/* One client connection, plain or implicit TLS, with its read buffer. */
typedef struct {
	int fd;
	SSL *ssl; /* NULL in plaintext */
	char *buf;
	size_t cap, off, len;
	guint64 wire; /* bytes received */
} BenchConn;

/* What one multi-line answer held, checked against RFC 1939 §3, and where its reader is. */
typedef struct {
	guint64 octets;	    /* after removing the byte-stuffing, CRLF counted, terminator not */
	guint64 lines;	    /* body lines */
	const char *defect; /* the first framing error seen, or NULL */
	int state;	    /* of the reader: line start, after a dot, in a line ... */
	gboolean prev_cr;   /* the last byte of the line so far was CR */
} BenchBody;

/* Starts reading a multi-line answer (after its status line). */
void bench_body_init(BenchBody *b);
/* Reads data[0..n) of an answer from the server (untrusted): un-stuffs it, counts octets and
 * lines, notes the first framing defect, appends the un-stuffed lines to keep if not NULL.
 * Returns the bytes consumed: all of them, or fewer with *out_done set when the terminator
 * ended the answer (the rest belongs to the next answer). Any chunking gives the same result. */
size_t bench_body_feed(BenchBody *b, const char *data, size_t n, GString *keep, gboolean *out_done);

/* A report: named figures printed as an aligned table or as one JSON object. */
typedef struct BenchReport BenchReport;

/* The last error, for the caller to print; set by the functions below that fail. */
extern char bench_errmsg[512];
void bench_fail(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
double bench_now(void);

/* Connects to o->host:o->port (TLS handshake included with o->tls; no certificate check: a
 * benchmark client). FALSE on failure (bench_errmsg says why). */
gboolean bench_conn_open(BenchConn *c, const BenchOptions *o);
void bench_conn_close(BenchConn *c);
gboolean bench_conn_write(BenchConn *c, const char *p, size_t n);
/* Reads one status line into line (cut to size - 1, CRLF removed). Returns 1 for "+OK",
 * 0 for anything else, -1 if the connection ended first. */
int bench_conn_status(BenchConn *c, char *line, size_t size);
/* Sends cmd (CRLF added) and reads the status line, as bench_conn_status. */
int bench_conn_command(BenchConn *c, const char *cmd, char *line, size_t size);
/* Reads the rest of a multi-line answer through its terminator, un-stuffing and checking
 * it; appends the body lines (LF-terminated) to keep if not NULL. FALSE if the connection
 * ended first. */
gboolean bench_conn_body(BenchConn *c, BenchBody *out, GString *keep);
/* Greeting, USER and PASS. FALSE with bench_errmsg set otherwise. */
gboolean bench_login(BenchConn *c, const char *user, const char *pass);

/* The user and password client i logs in with (--users cycles, --user expands "%d"). */
void bench_user(const BenchOptions *o, int i, char **out_user, const char **out_pass);
/* Percentile p (0..100) of n sorted values, nearest rank. */
double bench_percentile(const double *sorted, size_t n, double p);
/* Progress on stderr, unless --quiet; one line each call. */
void bench_progress(const BenchOptions *o, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* "mpopd-bench: " and the formatted message, a line on stderr. */
void bench_vwarn(const char *fmt, va_list ap) G_GNUC_PRINTF(1, 0);

BenchReport *bench_report_new(const char *mode, const BenchOptions *o);
void bench_report_num(BenchReport *r, const char *key, const char *label, double v, int decimals,
		      const char *unit);
void bench_report_text(BenchReport *r, const char *key, const char *label, const char *text);
/* Prints the report to stdout (and flushes it) and frees it. */
void bench_report_print(BenchReport *r, const BenchOptions *o);

/* The modes; each returns the process exit status. */
int bench_sessions(const BenchOptions *o);
int bench_memory(const BenchOptions *o);
int bench_retrieve(const BenchOptions *o);
int bench_top(const BenchOptions *o);
int bench_bigbox(const BenchOptions *o);
int bench_generate(const BenchOptions *o);
