/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Pre-login confinement: rlimits, no-new-privs, non-dumpable and a hand-written seccomp filter. */
#include "sandbox.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef MPOP_HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#endif

#ifdef FILTER_ARCH

/* seccomp_data.args[] are 64 bits wide. Every argument checked here is an int for the kernel
 * (fcntl cmd, mmap prot, tgkill pid and signal, setsockopt level and name), which truncates it
 * to its low 32 bits, so comparing those bits compares what the kernel will use. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG_LO(i) (offsetof(struct seccomp_data, args[i]))
#define ARG_HI(i) (offsetof(struct seccomp_data, args[i]) + sizeof(__u32))
#else
#define ARG_LO(i) (offsetof(struct seccomp_data, args[i]) + sizeof(__u32))
#define ARG_HI(i) (offsetof(struct seccomp_data, args[i]))
#endif

#define LOAD(off) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off))
#define RET(action) BPF_STMT(BPF_RET | BPF_K, (action))
#define ALLOW RET(SECCOMP_RET_ALLOW)
#define KILL RET(SECCOMP_RET_KILL_PROCESS)
/* A call outside the list fails with EPERM instead of killing the process: a call missed
 * here (a new glibc or OpenSSL code path) becomes an error the session reports and survives,
 * not a dead process with a SIGSYS; the call is refused either way. */
#define DENY RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define JEQ(k, jt, jf) BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (k), (jt), (jf))

/* Each rule below is a self-contained block: the syscall number is in the accumulator when
 * it starts, a mismatch skips the whole block, and a block that loads an argument ends in
 * returns on every path, so no jump crosses a block. */
#define SYS(name) JEQ(__NR_##name, 0, 1), ALLOW
/* Allowed when argument i has none of the bits in mask. */
#define SYS_ARG_NONE_OF(name, i, mask)                                                             \
	JEQ(__NR_##name, 0, 4), LOAD(ARG_LO(i)),                                                   \
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, (mask), 0, 1), DENY, ALLOW
/* Allowed when argument i is one of a, b, c. */
#define SYS_ARG_IN3(name, i, a, b, c)                                                              \
	JEQ(__NR_##name, 0, 6), LOAD(ARG_LO(i)), JEQ((a), 3, 0), JEQ((b), 2, 0), JEQ((c), 1, 0),   \
		DENY, ALLOW
/* Allowed when the 32-bit word at offset o1 is a and the one at o2 is b. */
#define SYS_WORDS_EQ2(name, o1, a, o2, b)                                                          \
	JEQ(__NR_##name, 0, 6), LOAD(o1), JEQ((a), 0, 2), LOAD(o2), JEQ((b), 1, 0), DENY, ALLOW

/* No valid pid is this large (PID_MAX_LIMIT is 2^22): replaced by getpid() at install time. */
#define SELF_PID_PLACEHOLDER 0xfffffff0u

static const struct sock_filter filter_template[] = {
	/* Syscall numbers mean something else on another architecture: such a call is an
	 * attack, never a bug of ours, so it kills. */
	LOAD(offsetof(struct seccomp_data, arch)),
	JEQ(FILTER_ARCH, 1, 0),
	KILL,
	LOAD(offsetof(struct seccomp_data, nr)),
#ifdef __x86_64__
	/* x32 calls share AUDIT_ARCH_X86_64 and are told apart by this bit. */
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, __X32_SYSCALL_BIT, 0, 1),
	KILL,
#endif
	/* The POP3/TLS dialogue on descriptors the process already has, most frequent first. */
	SYS(read),
	SYS(write),
	SYS(recvfrom), /* recv() */
	SYS(sendto),   /* send() */
#ifdef __NR_poll
	SYS(poll),
#endif
	SYS(ppoll), /* poll() on aarch64 */
	SYS(readv),
	SYS(writev),
	SYS(recvmsg),
	SYS(sendmsg),
	SYS(close),
	/* The TLS relay (tls.c) half-closes the session's plaintext channel at the client's end. */
	SYS(shutdown),
	/* O_NONBLOCK on and off; F_GETFD for libraries that look before they set. No F_DUPFD. */
	SYS_ARG_IN3(fcntl, 1, F_GETFL, F_SETFL, F_GETFD),
	/* session.c corks the client socket while it answers pipelined commands. */
	SYS_WORDS_EQ2(setsockopt, ARG_LO(1), IPPROTO_TCP, ARG_LO(2), TCP_CORK),
	/* malloc (brk, mmap, mremap, madvise, mprotect of a non-main arena); never executable
	 * memory, so injected code cannot be mapped to run. */
	SYS(brk),
	SYS_ARG_NONE_OF(mmap, 2, PROT_EXEC),
	SYS_ARG_NONE_OF(mprotect, 2, PROT_EXEC),
	SYS(munmap),
	SYS(mremap),
	SYS(madvise),
	/* OpenSSL's DRBG seeds and reseeds from getrandom (a fork is detected and reseeds). */
	SYS(getrandom),
	/* Timeouts and delays: the vDSO answers most clock reads, the rest land here. */
	SYS(clock_gettime),
	SYS(gettimeofday),
	SYS(clock_nanosleep),
	SYS(nanosleep),
	SYS(futex),
	SYS(getpid),
	SYS(gettid),
	/* glibc blocks signals around abort() and other critical sections; a handler returns
	 * through rt_sigreturn and an interrupted call resumes through restart_syscall. */
	SYS(rt_sigprocmask),
	SYS(rt_sigreturn),
	SYS(restart_syscall),
	/* abort() (a failed g_assert) raises SIGABRT with tgkill(getpid(), gettid(), SIGABRT): the
	 * process may end itself that way, but signal no other process. */
	SYS_WORDS_EQ2(tgkill, ARG_LO(0), SELF_PID_PLACEHOLDER, ARG_LO(2), SIGABRT),
#ifdef MPOP_HAVE_ASAN
	/* AddressSanitizer asks whether it runs on the alternate signal stack before every
	 * noreturn call (_exit, abort) and dies when it cannot: sigaltstack(NULL, &old) only. */
	SYS_WORDS_EQ2(sigaltstack, ARG_LO(0), 0, ARG_HI(0), 0),
#endif
	SYS(exit),
	SYS(exit_group),
	DENY,
};

/* The kernel refuses longer programs; checked when this file is compiled. */
G_STATIC_ASSERT(G_N_ELEMENTS(filter_template) <= BPF_MAXINSNS);

static int
install_filter(void)
{
	struct sock_filter insns[G_N_ELEMENTS(filter_template)];
	struct sock_fprog prog = {.len = G_N_ELEMENTS(insns), .filter = insns};
	guint patched = 0;

	memcpy(insns, filter_template, sizeof(insns));
	for (gsize i = 0; i < G_N_ELEMENTS(insns); i++) {
		if (BPF_CLASS(insns[i].code) == BPF_JMP && insns[i].k == SELF_PID_PLACEHOLDER) {
			insns[i].k = (__u32)getpid();
			patched++;
		}
	}
	g_assert(patched == 1);
	/* TSYNC: every thread of the process gets the filter, or the call fails. */
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		return errno > 0 ? -errno : -EINVAL;
	return 0;
}

#else

static int
install_filter(void)
{
	return -ENOSYS;
}

#endif

static int
limit(int resource, rlim_t value)
{
	const struct rlimit rl = {.rlim_cur = value, .rlim_max = value};

	return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int
confine(rlim_t max_fds)
{
	int r;

	/* Lowering the hard limits too means they cannot be raised again. NPROC 0: no fork even
	 * if the filter had a hole. FSIZE 0: no file grows. NOFILE: no descriptor numbered
	 * MPOP_SANDBOX_POLL_FDS or above can be created, which also covers descriptors received
	 * with SCM_RIGHTS (recvmsg is allowed, its payload is beyond the filter). It cannot be 0:
	 * poll() needs nfds <= NOFILE. */
	r = limit(RLIMIT_NPROC, 0);
	if (r == 0)
		r = limit(RLIMIT_FSIZE, 0);
	if (r == 0)
		r = limit(RLIMIT_NOFILE, max_fds);
	if (r < 0)
		return r;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	/* Without a file to grow, a write to a regular file (stderr sent to a log file by an
	 * admin) fails with EFBIG instead of killing the process with SIGXFSZ. */
	if (sigaction(SIGXFSZ, &(const struct sigaction){.sa_handler = SIG_IGN}, NULL) < 0)
		return -errno;
#ifdef MPOP_HAVE_ASAN
	/* AddressSanitizer reads /proc/self/maps for its reports: this is its documented hook to
	 * cache what it needs before a sandbox. A sandboxed process must leave with _exit():
	 * LeakSanitizer's check at exit() needs clone and ptrace and fails with an error. */
	__sanitizer_sandbox_on_notify(&(__sanitizer_sandbox_arguments){.coverage_fd = -1});
#endif
	return install_filter();
}

int
mpop_sandbox_prelogin(void)
{
	return confine(MPOP_SANDBOX_POLL_FDS);
}

int
mpop_sandbox_prelogin_reusable(void)
{
	return confine(MPOP_SANDBOX_POOL_FDS);
}
