/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The brute-force penalty table: a fixed-size file (or memory file) of failure records,
 * shared by every connection process and locked around each read-modify-write. */
#include "penalty.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "MPOPPEN"
#define VERSION 1
/* Set-associative: a key lives in one bucket of WAYS slots, read and written with one
 * pread/pwrite. A flood of new keys can only evict inside a bucket, never grow the file. */
#define WAYS 16
#define BUCKETS (MPOP_PENALTY_SLOTS / WAYS)

G_STATIC_ASSERT(MPOP_PENALTY_SLOTS % WAYS == 0);

typedef enum {
	KIND_EMPTY = 0,
	KIND_IPV4 = 1,
	KIND_IPV6_64 = 2,
	KIND_USER = 3,
} Kind;

typedef struct {
	char magic[8];
	guint32 version;
	guint32 slots;
	guint8 key[16]; /* SipHash key: made at creation, never leaves the file */
} Header;

typedef struct {
	guint64 hash; /* SipHash of kind and key bytes */
	guint32 failures;
	guint32 kind;
	gint64 first; /* CLOCK_REALTIME seconds: the table outlives restarts */
	gint64 last;
} Slot;

G_STATIC_ASSERT(sizeof(Header) == 32);
G_STATIC_ASSERT(sizeof(Slot) == 32);

#define FILE_SIZE ((off_t)sizeof(Header) + (off_t)MPOP_PENALTY_SLOTS * (off_t)sizeof(Slot))

struct MpopPenalty {
	int fd;
};

typedef struct {
	Kind kind;
	guint64 hash;
} Key;

/* ---- SipHash-2-4 (Aumasson, Bernstein): keyed, so clients cannot aim at one bucket ---- */

#define ROTL(x, b) (guint64)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

static guint64
load64(const guint8 *p)
{
	guint64 v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static guint64
siphash24(const guint8 key[16], const guint8 *in, gsize len)
{
	guint64 k0 = load64(key), k1 = load64(key + 8);
	guint64 v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
	guint64 v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
	guint64 b = (guint64)len << 56, m;
	gsize i;

	for (i = 0; i + 8 <= len; i += 8) {
		m = load64(in + i);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (gsize j = 0; i + j < len; j++)
		b |= (guint64)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- keys ---- */

static Key
key_of(const guint8 hkey[16], Kind kind, const void *data, gsize len)
{
	guint8 buf[1 + 256];

	len = MIN(len, sizeof(buf) - 1);
	buf[0] = (guint8)kind;
	memcpy(buf + 1, data, len);
	return (Key){kind, siphash24(hkey, buf, len + 1)};
}

/* IPv4 by address (also when mapped into IPv6); IPv6 by its /64, which one host or one
 * customer usually gets whole. FALSE for anything else (a pipe, a Unix socket). */
static gboolean
source_key(const guint8 hkey[16], const struct sockaddr *sa, socklen_t len, Key *out)
{
	if (!sa)
		return FALSE;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		*out = key_of(hkey, KIND_IPV4, &in->sin_addr, 4);
		return TRUE;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			*out = key_of(hkey, KIND_IPV4, &a->s6_addr[12], 4);
		else
			*out = key_of(hkey, KIND_IPV6_64, a->s6_addr, 8);
		return TRUE;
	}
	return FALSE;
}

/* Spellings of a name are one name for the penalty, whatever the backend makes of them:
 * case variants, and an e-mail login with any of the domain separators (bob%example.org is
 * bob@example.org). */
static gboolean
user_key(const guint8 hkey[16], const MpopConfig *cfg, const char *user, Key *out)
{
	const char *seps =
		cfg->domain_separators && *cfg->domain_separators ? cfg->domain_separators : "@";
	g_autofree char *name = NULL;

	if (!user || !*user)
		return FALSE;
	name = g_ascii_strdown(user, -1);
	for (char *p = name + strlen(name); p > name; p--)
		if (strchr(seps, p[-1])) {
			p[-1] = '@';
			break;
		}
	*out = key_of(hkey, KIND_USER, name, strlen(name));
	return TRUE;
}

/* ---- the file ---- */

/* A POSIX record lock, not flock(): forked processes share the memory file's open file
 * description, and flock() locks belong to that (a second child would get the lock its
 * sibling holds). fcntl() locks belong to the process. */
static int
lock_table(int fd, short type)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET};

	while (fcntl(fd, F_SETLKW, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int
pread_all(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static int
pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n;

	do
		n = pwrite(fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Zero slots first and the header last, so that a crash half-way leaves a file whose
 * header still does not match. Called with the lock held. */
static int
reinit(int fd, Header *out)
{
	Header h = {.magic = MAGIC, .version = VERSION, .slots = MPOP_PENALTY_SLOTS};
	g_autofree guint8 *zero = g_malloc0(sizeof(Header) + sizeof(Slot) * MPOP_PENALTY_SLOTS);
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size != FILE_SIZE && ftruncate(fd, FILE_SIZE) < 0)
		return -errno;
	r = pwrite_all(fd, zero, (size_t)FILE_SIZE, 0);
	if (r < 0)
		return r;
	if (getrandom(h.key, sizeof(h.key), 0) != sizeof(h.key))
		return -EIO;
	r = pwrite_all(fd, &h, sizeof(h), 0);
	if (r == 0)
		*out = h;
	return r;
}

/* The header, reinitialising the table when it is not ours. Called with the lock held. */
static int
read_header(int fd, Header *out)
{
	Header h;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size == FILE_SIZE && pread_all(fd, &h, sizeof(h), 0) == 0 &&
	    memcmp(h.magic, MAGIC, sizeof(h.magic)) == 0 && h.version == VERSION &&
	    h.slots == MPOP_PENALTY_SLOTS) {
		*out = h;
		return 0;
	}
	return reinit(fd, out);
}

static off_t
bucket_offset(const Key *k)
{
	return (off_t)sizeof(Header) + (off_t)(k->hash % BUCKETS) * WAYS * (off_t)sizeof(Slot);
}

/* A record counts while its last failure is less than penalty_period old. One whose time
 * lies beyond that in the future (the clock was set back) is stale too. */
static gboolean
slot_live(const Slot *s, const MpopConfig *cfg, gint64 now)
{
	gint64 period = cfg->penalty_period;

	return s->kind != KIND_EMPTY && s->failures > 0 && s->last > now - period &&
	       s->last < now + period;
}

static int
find(const Slot *bucket, const Key *k, const MpopConfig *cfg, gint64 now)
{
	for (int i = 0; i < WAYS; i++)
		if (bucket[i].kind == (guint32)k->kind && bucket[i].hash == k->hash &&
		    slot_live(&bucket[i], cfg, now))
			return i;
	return -1;
}

/* The slot a new record takes: a free or stale one, else the one with the fewest failures
 * and, among those, the oldest. A flood of new addresses (one failure each) thus evicts its
 * own kind before a record that many failures built up. */
static int
victim(const Slot *bucket, const MpopConfig *cfg, gint64 now)
{
	int best = 0;

	for (int i = 0; i < WAYS; i++) {
		if (!slot_live(&bucket[i], cfg, now))
			return i;
		if (bucket[i].failures < bucket[best].failures ||
		    (bucket[i].failures == bucket[best].failures &&
		     bucket[i].last < bucket[best].last))
			best = i;
	}
	return best;
}

static guint
count_of(int fd, const Key *k, const MpopConfig *cfg, gint64 now, int *err)
{
	Slot bucket[WAYS];
	int i, r = pread_all(fd, bucket, sizeof(bucket), bucket_offset(k));

	if (r < 0) {
		*err = r;
		return 0;
	}
	i = find(bucket, k, cfg, now);
	return i < 0 ? 0 : bucket[i].failures;
}

static int
update(int fd, const Key *k, gboolean success, const MpopConfig *cfg, gint64 now)
{
	Slot bucket[WAYS];
	off_t off = bucket_offset(k);
	int i, r = pread_all(fd, bucket, sizeof(bucket), off);

	if (r < 0)
		return r;
	i = find(bucket, k, cfg, now);
	if (success) {
		if (i < 0)
			return 0;
		bucket[i] = (Slot){0};
	} else if (i >= 0) {
		if (bucket[i].failures < G_MAXUINT32)
			bucket[i].failures++;
		bucket[i].last = now;
	} else {
		i = victim(bucket, cfg, now);
		bucket[i] = (Slot){.hash = k->hash,
				   .failures = 1,
				   .kind = (guint32)k->kind,
				   .first = now,
				   .last = now};
	}
	return pwrite_all(fd, &bucket[i], sizeof(Slot), off + (off_t)i * (off_t)sizeof(Slot));
}

/* ---- opening ---- */

static int
open_memory(void)
{
	int fd = memfd_create("mpopd-penalty", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, FILE_SIZE) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* The directory is made (0700) when missing; the file must be a regular file of ours that
 * no one else may read (the hash key is in it) or write. */
static int
open_file(const char *path, GError **error)
{
	g_autofree char *dir = g_path_get_dirname(path);
	struct stat st;
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "penalty state %s: %s", dir,
			    g_strerror(errno));
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "penalty state %s: %s", path,
			    g_strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 077)) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_PERM,
			    "penalty state %s: not a regular file of uid %u that only it may read "
			    "and write",
			    path, (unsigned)geteuid());
		close(fd);
		return -1;
	}
	return fd;
}

MpopPenalty *
mpop_penalty_open(const char *path, GError **error)
{
	mpop_autofd fd = -1;
	MpopPenalty *pen;
	Header h;
	int r;

	if (path) {
		fd = open_file(path, error);
		if (fd < 0)
			return NULL;
	} else {
		fd = open_memory();
		if (fd < 0) {
			g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED,
				    "penalty table in memory: %s", g_strerror(-fd));
			return NULL;
		}
	}
	r = lock_table(fd, F_WRLCK);
	if (r == 0) {
		r = read_header(fd, &h);
		explicit_bzero(&h, sizeof(h));
		lock_table(fd, F_UNLCK);
	}
	if (r < 0) {
		g_set_error(error, MPOP_ERROR, MPOP_ERROR_FAILED, "penalty state %s: %s",
			    path ? path : "in memory", g_strerror(-r));
		return NULL;
	}
	pen = g_new0(MpopPenalty, 1);
	pen->fd = fd;
	fd = -1;
	return pen;
}

int
mpop_penalty_fd(const MpopPenalty *pen)
{
	return pen ? pen->fd : -1;
}

void
mpop_penalty_close(MpopPenalty *pen)
{
	if (pen)
		mpop_close_fdp(&pen->fd);
}

void
mpop_penalty_free(MpopPenalty *pen)
{
	if (!pen)
		return;
	mpop_penalty_close(pen);
	g_free(pen);
}

/* ---- policy ---- */

guint64
mpop_penalty_delay_usec(const MpopConfig *cfg, guint failures)
{
	guint64 base = (guint64)cfg->failure_delay * 1000;
	guint64 max = (guint64)cfg->penalty_max_delay * G_USEC_PER_SEC, total;
	guint n = failures + 1; /* the attempt being answered */

	if (n <= cfg->penalty_delay_after || base == 0)
		return 0;
	/* Doubling stops well before it could overflow; max caps it anyway. */
	total = n - cfg->penalty_delay_after >= 40 ? G_MAXUINT64 / 2
						   : base << (n - cfg->penalty_delay_after);
	total = MIN(total, MAX(max, base));
	return total - base;
}

int
mpop_penalty_query(MpopPenalty *pen, const MpopConfig *cfg, const struct sockaddr *peer,
		   socklen_t peer_len, const char *user, gint64 now, MpopPenaltyVerdict *out)
{
	Key sk, uk;
	gboolean has_s, has_u;
	Header h;
	int r, err = 0;

	*out = (MpopPenaltyVerdict){0};
	if (!pen || pen->fd < 0)
		return 0;
	r = lock_table(pen->fd, F_WRLCK);
	if (r < 0)
		return r;
	r = read_header(pen->fd, &h);
	if (r == 0) {
		has_s = source_key(h.key, peer, peer_len, &sk);
		has_u = user_key(h.key, cfg, user, &uk);
		if (has_s)
			out->source_failures = count_of(pen->fd, &sk, cfg, now, &err);
		if (has_u)
			out->user_failures = count_of(pen->fd, &uk, cfg, now, &err);
		r = err;
	}
	explicit_bzero(&h, sizeof(h));
	lock_table(pen->fd, F_UNLCK);
	if (r < 0) {
		*out = (MpopPenaltyVerdict){0};
		return r;
	}
	out->blocked =
		(cfg->penalty_block_after && out->source_failures >= cfg->penalty_block_after) ||
		(cfg->penalty_user_block_after &&
		 out->user_failures >= cfg->penalty_user_block_after);
	out->delay_usec =
		mpop_penalty_delay_usec(cfg, MAX(out->source_failures, out->user_failures));
	return 0;
}

int
mpop_penalty_record(MpopPenalty *pen, const MpopConfig *cfg, const struct sockaddr *peer,
		    socklen_t peer_len, const char *user, gboolean success, gint64 now)
{
	Key k;
	Header h;
	int r;

	if (!pen || pen->fd < 0)
		return 0;
	r = lock_table(pen->fd, F_WRLCK);
	if (r < 0)
		return r;
	r = read_header(pen->fd, &h);
	if (r == 0 && source_key(h.key, peer, peer_len, &k))
		r = update(pen->fd, &k, success, cfg, now);
	if (r == 0 && user_key(h.key, cfg, user, &k))
		r = update(pen->fd, &k, success, cfg, now);
	explicit_bzero(&h, sizeof(h));
	lock_table(pen->fd, F_UNLCK);
	return r;
}
