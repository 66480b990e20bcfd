/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Confinement of the pre-login process: resource limits, no new privileges, a seccomp allow-list.
 */
#pragma once

/* The kernel refuses poll()/ppoll() on more descriptors than RLIMIT_NOFILE (EINVAL), so the
 * confined process keeps this limit: it may poll at most this many descriptors at once. */
#define MPOP_SANDBOX_POLL_FDS 2

/* Confine the calling process for good; it must already be unprivileged and chrooted.
 * Afterwards it can only use descriptors it already has (read, write, poll, send, recv),
 * memory, time and randomness; any other system call fails with EPERM, and SIGXFSZ is
 * ignored (a write to a regular file fails with EFBIG). Returns 0; -ENOSYS with the limits
 * set but no filter on an architecture the filter does not know (only x86_64 and aarch64);
 * any other -errno with the process partly confined: the caller must then exit. */
int mpop_sandbox_prelogin(void);

/* The same for a pre-login process that serves connections in turn ([server] login_reuse):
 * it receives each connection's descriptors (SCM_RIGHTS), so its descriptor numbers may go
 * up to this limit instead. */
#define MPOP_SANDBOX_POOL_FDS 64
int mpop_sandbox_prelogin_reusable(void);
