/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The server's mmap(): a wrapper that populates the work area of a password hash in one call.
 *
 * libxcrypt's yescrypt maps a fresh anonymous 16 MiB region for every check (the default
 * cost) and writes all of it; each login is a new process, so that is 4096 page faults on
 * every login (a third of the hash's time in a virtual machine, where a fault is dear).
 * libxcrypt has no allocator hook, so the executable defines mmap() (the dynamic linker binds
 * libxcrypt's call to it, as it does for a malloc() defined by a program) and, only while
 * auth.c is inside crypt_rn() (mpop_auth_in_hash()), asks the kernel to populate a large
 * anonymous writable mapping with MADV_POPULATE_WRITE (Linux 5.14). Same memory, same
 * algorithm and cost parameters, fewer traps. Every other mapping passes through untouched;
 * an older kernel's EINVAL is ignored.
 *
 * Linked into mpopd (and test-auth), never into the library, and only on 64-bit targets,
 * where mmap() takes a 64-bit offset whatever _FILE_OFFSET_BITS says.
 */
/* The symbol must be "mmap", what libxcrypt imports: with _FILE_OFFSET_BITS=64 glibc's
 * header would rename a definition to mmap64 (the same function on 64-bit targets). */
#undef _FILE_OFFSET_BITS

#include "auth.h"

#include <dlfcn.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define POPULATE_MIN (1u << 20)

static gint populated;

#if defined(__LP64__) && defined(MADV_POPULATE_WRITE) && defined(SYS_mmap)

typedef void *(*MmapFn)(void *, size_t, int, int, int, off_t);

static void *
raw_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);

void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	static MmapFn next;
	MmapFn fn = g_atomic_pointer_get(&next);
	void *p;

	if (fn == NULL) {
		/* The next definition (libc's, or a sanitizer's in front of it). */
		fn = (MmapFn)dlsym(RTLD_NEXT, "mmap");
		if (fn == NULL || fn == mmap)
			fn = raw_mmap;
		g_atomic_pointer_set(&next, fn);
	}
	p = fn(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED && len >= POPULATE_MIN && (flags & MAP_ANONYMOUS) &&
	    (prot & PROT_WRITE) && mpop_auth_in_hash()) {
		int saved = errno;
		if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
			g_atomic_int_inc(&populated);
		errno = saved;
	}
	return p;
}

#endif

guint
mpop_populated_maps(void)
{
	return (guint)g_atomic_int_get(&populated);
}
